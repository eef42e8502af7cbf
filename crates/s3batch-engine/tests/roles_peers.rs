//! Roles against real S3 peers: two accounts and three roles on one moto server, then on one Garage. Every way a
//! job of account A could reach account B's data is tried (manifest, inventory, generator listing, copy source,
//! copy target, tagging, ACL, delete, report bucket, function, ExpectedBucketOwner, B's RoleArn), each must be
//! refused the way the roles design says, and B's objects are read back unchanged. A job its role allows runs as
//! before. Last, per-role Garage keys: a role that signs with its own key cannot touch another key's bucket even
//! when its `read`/`write` lists allow everything, because Garage itself refuses.
//!
//! A missing moto or Garage fails the test: nothing is skipped (`scripts/test.sh` installs both).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use s3batch_core::{JobSpec, JobStatus, Tag};
use s3batch_engine::roles::{RoleConfig, RoleCredentials, Roles};
use s3batch_engine::service::{JobService, ServiceError};
use s3batch_engine::{CancellationToken, Engine, EngineConfig};
use s3batch_storage::s3::S3Store;
use s3batch_storage::{BackendKind, ObjectRef, ObjectStore, PutBody, PutOptions, Router, StorageConfig};
use s3batch_store::Job;
use s3batch_store::sqlite::SqliteStore;
use serde_json::{Value, json};

#[allow(dead_code)] // run_job: the operation tests' helper
mod common;
mod peers;

use peers::{Garage, start_garage, start_moto};

const TIMEOUT: Duration = Duration::from_secs(90);
const A: &str = "111111111111";
const B: &str = "222222222222";
/// Account A's roles: everything on its own buckets; tagging only.
const A_ALL: &str = "arn:aws:iam::111111111111:role/a-batch";
const A_TAGGER: &str = "arn:aws:iam::111111111111:role/a-tagger";
/// Account B's role.
const B_ALL: &str = "arn:aws:iam::222222222222:role/b-batch";
const A_FUNCTION: &str = "arn:aws:lambda:us-east-1:111111111111:function:a-fn";
const B_FUNCTION: &str = "arn:aws:lambda:us-east-1:222222222222:function:b-fn";
const A_BUCKETS: [&str; 4] = ["a-data", "a-copies", "a-manifests", "a-reports"];
const B_BUCKETS: [&str; 3] = ["b-data", "b-manifests", "b-reports"];

// ---------------------------------------------------------------------------------------------------------------
// Peers

/// Garage as a `[[storage]]` entry of the roles' config.
trait GarageConfig {
    fn config(&self, name: &str, buckets: Vec<String>, owner: Option<&str>) -> StorageConfig;
}

impl GarageConfig for Garage {
    fn config(&self, name: &str, buckets: Vec<String>, owner: Option<&str>) -> StorageConfig {
        StorageConfig {
            kind: BackendKind::S3,
            buckets,
            owner: owner.map(String::from),
            endpoint: Some(self.endpoint.clone()),
            region: Some("garage".into()),
            force_path_style: true,
            access_key_id: Some(self.key_id.clone()),
            secret_access_key: Some(self.secret.clone()),
            root: None,
            ..StorageConfig::local(name, "")
        }
    }
}

fn moto_config(endpoint: &str, name: &str, buckets: Vec<String>, owner: Option<&str>) -> StorageConfig {
    StorageConfig {
        kind: BackendKind::S3,
        buckets,
        owner: owner.map(String::from),
        endpoint: Some(endpoint.to_string()),
        region: Some("us-east-1".into()),
        force_path_style: true,
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing".into()),
        root: None,
        ..StorageConfig::local(name, "")
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Harness

struct Harness {
    _dir: tempfile::TempDir,
    /// The peer with the server's own keys, for setting up and reading back.
    s3: S3Store,
    service: JobService,
    token: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

impl Harness {
    /// An engine and a job service with accounts (roles required) over `storage`, with `roles`.
    async fn new(storage: &[StorageConfig], roles: &[RoleConfig]) -> Harness {
        let s3 = S3Store::from_config(&storage[0]).unwrap();
        let router = Arc::new(Router::from_config(storage).unwrap());
        let roles = Arc::new(Roles::new(roles, storage, router.clone(), true).unwrap());
        let cfg =
            EngineConfig { tick_ms: 20, lease_ms: 2000, backoff_base_ms: 1, backoff_max_ms: 5, ..Default::default() };
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("jobs.db")).await.unwrap());
        let engine = Engine::with_roles(store.clone(), roles.clone(), cfg, "engine");
        let token = CancellationToken::new();
        tokio::spawn(engine.clone().run(token.clone()));
        let service = JobService::new(store, engine.wake.clone(), 90).with_storage(router, 64).with_roles(roles);
        Harness { _dir: dir, s3, service, token }
    }

    async fn put(&self, bucket: &str, key: &str, body: &str) -> String {
        let opts = PutOptions::default();
        let put = self.s3.put_object(bucket, key, PutBody::Bytes(Bytes::from(body.to_string())), &opts);
        put.await.unwrap_or_else(|e| panic!("put s3://{bucket}/{key}: {e}")).etag.unwrap_or_default()
    }

    /// A CSV manifest of `lines` (bucket, key) at `bucket`/`key`; its location.
    async fn manifest(&self, bucket: &str, key: &str, lines: &[(&str, &str)]) -> Value {
        let body: String = lines.iter().map(|(b, k)| format!("{b},{k}\n")).collect();
        let etag = self.put(bucket, key, &body).await;
        json!({"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
               "Location": {"ObjectArn": format!("arn:aws:s3:::{bucket}/{key}"), "ETag": etag}})
    }

    /// Create a job of `account` from `spec` (Operation, Manifest or ManifestGenerator, Report; the rest is
    /// filled in) under `role`.
    async fn create(&self, account: &str, role: Option<&str>, mut spec: Value) -> Result<String, String> {
        let m = spec.as_object_mut().unwrap();
        m.insert("Priority".into(), json!(10));
        m.insert("ConfirmationRequired".into(), json!(false));
        m.entry("Report").or_insert(json!({"Enabled": false}));
        if let Some(r) = role {
            m.insert("RoleArn".into(), json!(r));
        }
        let spec: JobSpec = serde_json::from_value(spec).expect("a JobSpec");
        self.service.create(account, None, spec).await.map(|j| j.id).map_err(|e| match e {
            ServiceError::AccessDenied(message) => message,
            other => panic!("not AccessDenied: {other:?}"),
        })
    }

    /// The job once it finished.
    async fn finished(&self, account: &str, id: &str) -> Job {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let job = self.service.describe(account, id).await.unwrap();
            if job.status.is_terminal() {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} not finished: {job:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Run a job that must fail before any task: its one failure (code, reason).
    async fn fails(&self, role: &str, spec: Value) -> (String, String) {
        let id = self.create(A, Some(role), spec).await.expect("created");
        let job = self.finished(A, &id).await;
        assert_eq!(job.status, JobStatus::Failed, "{job:?}");
        assert_eq!((job.succeeded, job.failed), (0, 0), "no task ran: {job:?}");
        let f = &job.failure_reasons[0];
        (f.failure_code.clone(), f.failure_reason.clone())
    }

    /// Run a job (report to a-reports) that must complete; its report rows.
    async fn completes(&self, role: &str, mut spec: Value) -> common::Rows {
        spec["Report"] = json!({"Enabled": true, "Bucket": "arn:aws:s3:::a-reports", "Format": "Report_CSV_20180820",
                                "ReportScope": "AllTasks", "Prefix": "out"});
        let id = self.create(A, Some(role), spec).await.expect("created");
        let job = self.finished(A, &id).await;
        assert_eq!(job.status, JobStatus::Complete, "{job:?}");
        common::report_rows_in(&self.s3, "a-reports", &job).await
    }

    /// Every object of `buckets` with its bytes (and, where the peer has tagging, its tags).
    async fn snapshot(&self, buckets: &[&str], tagging: bool) -> BTreeMap<String, (Bytes, Vec<Tag>)> {
        let mut all = BTreeMap::new();
        for b in buckets {
            let page = self.s3.list_objects(b, "", None, 1000).await.unwrap();
            for o in page.objects {
                let obj = ObjectRef::new(*b, &o.key);
                let body = common::get(&self.s3, b, &o.key).await;
                let tags = if tagging { self.s3.get_object_tagging(&obj).await.unwrap() } else { vec![] };
                all.insert(format!("{b}/{}", o.key), (body, tags));
            }
        }
        all
    }
}

/// Every row failed with `403 AccessDenied` naming `role` and the bucket.
fn all_denied(rows: &common::Rows, n: usize, role: &str, bucket: &str) {
    assert!(rows.succeeded.is_empty(), "{rows:?}");
    assert_eq!(rows.failed.len(), n, "{rows:?}");
    for r in &rows.failed {
        assert_eq!((r.http_status.as_str(), r.error_code.as_str()), ("403", "AccessDenied"), "{r:?}");
        assert!(r.result_message.contains(role) && r.result_message.contains(bucket), "{r:?}");
    }
}

fn roles() -> Vec<RoleConfig> {
    let role = |arn: &str, read: &[&str], write: &[&str]| RoleConfig {
        arn: arn.into(),
        cos_arn: None,
        read: read.iter().map(|s| s.to_string()).collect(),
        write: write.iter().map(|s| s.to_string()).collect(),
        operations: None,
        functions: vec![],
        credentials: vec![],
    };
    let mut all = role(A_ALL, &["a-*"], &["a-data", "a-copies", "a-reports"]);
    all.functions = vec![A_FUNCTION.into()];
    let mut tagger = role(A_TAGGER, &["a-manifests", "a-data"], &["a-data", "a-reports"]);
    tagger.operations = Some(vec!["S3PutObjectTagging".into()]);
    vec![all, tagger, role(B_ALL, &["b-*"], &["b-*"])]
}

/// Two accounts' buckets on one peer (`storage`: the entries `a` for `a-*` owned by A, `b` for `b-*` owned by
/// B), every crossing tried. `tagging`: the peer keeps tags (moto), so B's tags are compared too.
async fn boundaries(storage: Vec<StorageConfig>, tagging: bool) {
    let h = Harness::new(&storage, &roles()).await;
    for b in A_BUCKETS.iter().chain(&B_BUCKETS) {
        // Garage's buckets were made by the script; moto's are made here.
        if h.s3.list_objects(b, "", None, 1).await.is_err() {
            h.s3.create_bucket(b).await.unwrap();
        }
    }
    for k in ["x", "y"] {
        h.put("a-data", k, &format!("A's {k}")).await;
        h.put("b-data", k, &format!("B's {k}")).await;
    }
    if tagging {
        let tags = [Tag::new("owner", "b")];
        for k in ["x", "y"] {
            h.s3.put_object_tagging(&ObjectRef::new("b-data", k), &tags).await.unwrap();
        }
    }
    let b_manifest = h.manifest("b-manifests", "m.csv", &[("b-data", "x")]).await;
    let before = h.snapshot(&B_BUCKETS, tagging).await;

    // A job its role allows runs as before.
    let own = h.manifest("a-manifests", "own.csv", &[("a-data", "x"), ("a-data", "y")]).await;
    let rows = h
        .completes(
            A_ALL,
            json!({"Operation": {"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::a-copies"}},
                                          "Manifest": own}),
        )
        .await;
    assert_eq!((rows.succeeded.len(), rows.failed.len()), (2, 0), "{rows:?}");
    assert_eq!(common::get(&h.s3, "a-copies", "y").await, "A's y");
    if tagging {
        // An event hold passes the role's guard and reaches the store: moto answers for it, not a NotImplemented
        // of s3batch's own.
        let op = json!({"S3PutObjectRetention": {"Retention": {"EventHold": "ON"}}});
        let rows = h.completes(A_ALL, json!({"Operation": op, "Manifest": own})).await;
        assert_eq!(rows.succeeded.len() + rows.failed.len(), 2, "{rows:?}");
        assert!(rows.failed.iter().all(|r| r.error_code != "NotImplemented"), "{rows:?}");
    }

    // Creation: B's role, a role that does not exist (same words), no role, an operation or function not allowed.
    let tag_op = json!({"S3PutObjectTagging": {"TagSet": [{"Key": "stolen", "Value": "1"}]}});
    let spec = |op: &Value| json!({"Operation": op, "Manifest": b_manifest});
    let theirs = h.create(A, Some(B_ALL), spec(&tag_op)).await.unwrap_err();
    let nowhere = h.create(A, Some("arn:aws:iam::222222222222:role/nowhere"), spec(&tag_op)).await.unwrap_err();
    assert_eq!(theirs.replace(B_ALL, "R"), nowhere.replace("arn:aws:iam::222222222222:role/nowhere", "R"));
    let none = h.create(A, None, spec(&tag_op)).await.unwrap_err();
    assert!(none.contains("[[roles]]"), "{none}");
    let delete = h.create(A, Some(A_TAGGER), spec(&json!({"S3DeleteObject": {}}))).await.unwrap_err();
    assert!(delete.contains("S3DeleteObject") && delete.contains(A_TAGGER), "{delete}");
    let lambda = |f: &str| json!({"LambdaInvoke": {"FunctionArn": f}});
    let e = h.create(A, Some(A_ALL), spec(&lambda(B_FUNCTION))).await.unwrap_err();
    assert!(e.contains(B_FUNCTION), "{e}");
    let e = h.create(A, Some(A_ALL), spec(&lambda("a-fn"))).await.unwrap_err();
    assert!(e.contains("'a-fn'") || e.contains("a-fn"), "a bare name matches no listed ARN: {e}");
    assert!(h.create(A, Some(A_ALL), json!({"Operation": lambda(A_FUNCTION), "Manifest": own})).await.is_ok());

    // Preparing: B's manifest, B's inventory, a listing of B's bucket.
    let (code, reason) = h.fails(A_ALL, spec(&tag_op)).await;
    assert_eq!(code, "ManifestNotReadable");
    assert!(reason.contains("b-manifests") && reason.contains("AccessDenied") && reason.contains(A_ALL), "{reason}");
    let inventory = json!({"Spec": {"Format": "S3InventoryReport_CSV_20161130"},
                           "Location": {"ObjectArn": "arn:aws:s3:::b-manifests/inv/manifest.json"}});
    let (_, reason) = h.fails(A_ALL, json!({"Operation": tag_op, "Manifest": inventory})).await;
    assert!(reason.contains("b-manifests") && reason.contains("AccessDenied"), "{reason}");
    let generator = |bucket: &str, owner: Option<&str>| {
        let mut g = json!({"SourceBucket": format!("arn:aws:s3:::{bucket}"), "EnableManifestOutput": false});
        if let Some(o) = owner {
            g["ExpectedBucketOwner"] = json!(o);
        }
        json!({"Operation": tag_op, "ManifestGenerator": {"S3JobManifestGenerator": g}})
    };
    let (_, reason) = h.fails(A_ALL, generator("b-data", None)).await;
    assert!(reason.contains("b-data") && reason.contains("AccessDenied"), "{reason}");

    // Tasks: B's objects as copy source, B's bucket as copy target, tagging, ACL and delete of B's objects. Each
    // task fails 403 naming the role; the job completes.
    let into_a = h.manifest("a-manifests", "from-b.csv", &[("b-data", "x"), ("b-data", "y")]).await;
    let copy_to = |b: &str| json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{b}")}});
    let rows = h.completes(A_ALL, json!({"Operation": copy_to("a-copies"), "Manifest": into_a})).await;
    all_denied(&rows, 2, A_ALL, "b-data");
    let rows = h.completes(A_ALL, json!({"Operation": copy_to("b-data"), "Manifest": own})).await;
    all_denied(&rows, 2, A_ALL, "b-data");
    let acl = json!({"S3PutObjectAcl": {"AccessControlPolicy": {"CannedAccessControlList": "public-read"}}});
    for op in [tag_op.clone(), acl, json!({"S3DeleteObject": {}})] {
        let rows = h.completes(A_ALL, json!({"Operation": op, "Manifest": into_a})).await;
        all_denied(&rows, 2, A_ALL, "b-data");
    }
    let rows = h.completes(A_TAGGER, json!({"Operation": tag_op, "Manifest": into_a})).await;
    all_denied(&rows, 2, A_TAGGER, "b-data");
    // The impact preview samples through the role too: B's objects are not even HEADed.
    let spec = json!({"Operation": tag_op, "Manifest": into_a, "Report": {"Enabled": false}, "Priority": 1,
                      "RoleArn": A_ALL});
    let id = h.service.create(A, None, serde_json::from_value(spec).unwrap()).await.unwrap().id;
    let deadline = Instant::now() + TIMEOUT;
    while h.service.describe(A, &id).await.unwrap().status != JobStatus::Suspended {
        assert!(Instant::now() < deadline, "job {id} not prepared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let preview = h.service.preview(A, &id).await.unwrap();
    assert_eq!(preview.sample_failures, BTreeMap::from([("AccessDenied".to_string(), 2)]), "{preview:?}");
    assert_eq!(preview.total_bytes, 0, "{preview:?}");

    // The report: into B's bucket, or with an ExpectedBucketOwner that is not the owner of A's. Nothing runs.
    let report = |bucket: &str, owner: Option<&str>| {
        let mut r = json!({"Enabled": true, "Bucket": format!("arn:aws:s3:::{bucket}"),
                           "Format": "Report_CSV_20180820", "ReportScope": "AllTasks"});
        if let Some(o) = owner {
            r["ExpectedBucketOwner"] = json!(o);
        }
        r
    };
    let (code, reason) =
        h.fails(A_ALL, json!({"Operation": tag_op, "Manifest": own, "Report": report("b-reports", None)})).await;
    assert_eq!(code, "AccessDenied");
    assert!(reason.contains("report bucket b-reports") && reason.contains(A_ALL), "{reason}");
    let (code, reason) =
        h.fails(A_ALL, json!({"Operation": tag_op, "Manifest": own, "Report": report("a-reports", Some(B))})).await;
    assert_eq!(code, "AccessDenied");
    assert!(reason.contains("ExpectedBucketOwner") && reason.contains("a-reports"), "{reason}");
    let (code, reason) = h.fails(A_ALL, generator("a-data", Some(B))).await;
    assert_eq!(code, "AccessDenied");
    assert!(reason.contains(B) && reason.contains("a-data"), "{reason}");
    // The right owner is accepted.
    let rows = h
        .completes(
            A_ALL,
            json!({"Operation": copy_to("a-copies"), "Manifest": own, "Report": report("a-reports", Some(A))}),
        )
        .await;
    assert_eq!(rows.succeeded.len(), 2, "{rows:?}");

    // B's objects are as they were: same keys, bytes and tags; nothing was written into B's buckets.
    assert_eq!(h.snapshot(&B_BUCKETS, tagging).await, before);
    // And B's own role reaches them.
    let theirs = h.manifest("b-manifests", "own.csv", &[("b-data", "x")]).await;
    let id = h.create(B, Some(B_ALL), json!({"Operation": copy_to("b-reports"), "Manifest": theirs})).await.unwrap();
    assert_eq!(h.finished(B, &id).await.status, JobStatus::Complete);
    assert_eq!(common::get(&h.s3, "b-reports", "x").await, "B's x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_crossing_is_refused_on_moto() {
    let moto = start_moto();
    let storage = vec![
        moto_config(&moto.endpoint, "a", vec!["a-*".into()], Some(A)),
        moto_config(&moto.endpoint, "b", vec!["b-*".into()], Some(B)),
    ];
    boundaries(storage, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_crossing_is_refused_on_garage() {
    let buckets: Vec<&str> = A_BUCKETS.iter().chain(&B_BUCKETS).copied().collect();
    let g = start_garage(&buckets);
    let storage = vec![g.config("a", vec!["a-*".into()], Some(A)), g.config("b", vec!["b-*".into()], Some(B))];
    boundaries(storage, false).await;
}

/// Each role signs with its own Garage key, allowed on its own bucket only. Role 1's `read`/`write` allow every
/// bucket (a misconfiguration): Garage itself refuses what its key may not do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_role_keys_are_enforced_by_garage() {
    let g = start_garage(&["k1-data", "k2-data"]);
    let (k1, s1) = ("GK0000000000000000000000a1", "a1".repeat(32));
    let (k2, s2) = ("GK0000000000000000000000b2", "b2".repeat(32));
    g.key(k1, &s1, &["k1-data"]);
    g.key(k2, &s2, &["k2-data"]);
    let storage = vec![g.config("garage", vec!["*".into()], None)];
    let role = |arn: &str, key: &str, secret: &str| RoleConfig {
        arn: arn.into(),
        cos_arn: None,
        read: vec!["*".into()],
        write: vec!["*".into()],
        operations: None,
        functions: vec![],
        credentials: vec![RoleCredentials {
            storage: "garage".into(),
            access_key_id: key.into(),
            secret_access_key: Some(secret.into()),
            secret_access_key_file: None,
        }],
    };
    let (r1, r2) = ("arn:aws:iam::111111111111:role/key-one", "arn:aws:iam::111111111111:role/key-two");
    let h = Harness::new(&storage, &[role(r1, k1, &s1), role(r2, k2, &s2)]).await;
    h.put("k1-data", "one", "one's").await;
    h.put("k2-data", "two", "two's").await;
    let before = h.snapshot(&["k2-data"], false).await;
    let report = json!({"Enabled": true, "Bucket": "arn:aws:s3:::k1-data", "Format": "Report_CSV_20180820",
                        "ReportScope": "AllTasks", "Prefix": "report"});
    let run = |role: &'static str, op: Value, manifest: Value| {
        let h = &h;
        let report = report.clone();
        async move {
            let id = h.create(A, Some(role), json!({"Operation": op, "Manifest": manifest, "Report": report})).await;
            let job = h.finished(A, &id.unwrap()).await;
            assert_eq!(job.status, JobStatus::Complete, "{job:?}");
            common::report_rows_in(&h.s3, "k1-data", &job).await
        }
    };
    // Role 1 copies within its bucket: fine.
    let own = h.manifest("k1-data", "m/own.csv", &[("k1-data", "one")]).await;
    let copy_to =
        |b: &str| json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{b}"), "TargetKeyPrefix": "c/"}});
    let rows = run(r1, copy_to("k1-data"), own.clone()).await;
    assert_eq!(rows.succeeded.len(), 1, "{rows:?}");
    assert_eq!(common::get(&h.s3, "k1-data", "c/one").await, "one's");
    // Into role 2's bucket, out of it, deleting in it: Garage answers 403 to key 1.
    let rows = run(r1, copy_to("k2-data"), own).await;
    assert_eq!(rows.failed.len(), 1, "{rows:?}");
    assert_eq!((rows.failed[0].http_status.as_str(), rows.failed[0].error_code.as_str()), ("403", "AccessDenied"));
    let theirs = h.manifest("k1-data", "m/theirs.csv", &[("k2-data", "two")]).await;
    for op in [copy_to("k1-data"), json!({"S3DeleteObject": {}})] {
        let rows = run(r1, op, theirs.clone()).await;
        assert_eq!(rows.failed.len(), 1, "{rows:?}");
        assert_eq!(rows.failed[0].http_status.as_str(), "403", "{rows:?}");
    }
    // A manifest in role 2's bucket cannot be read by role 1.
    let m2 = h.manifest("k2-data", "m.csv", &[("k2-data", "two")]).await;
    let id = h.create(A, Some(r1), json!({"Operation": json!({"S3DeleteObject": {}}), "Manifest": m2})).await.unwrap();
    let job = h.finished(A, &id).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.failure_reasons[0].failure_reason.contains("403"), "{:?}", job.failure_reasons);
    // Role 2's objects are untouched (the manifest written there by the test aside).
    let mut after = h.snapshot(&["k2-data"], false).await;
    after.remove("k2-data/m.csv");
    assert_eq!(after, before);
}
