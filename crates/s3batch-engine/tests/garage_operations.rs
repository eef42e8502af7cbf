//! Operations run as jobs by a real engine against a real Garage (<https://garagehq.deuxfleurs.fr>), a production
//! S3 store, started by `scripts/garage.sh` in a temporary directory and killed at the end; the results are read
//! back with the storage API. A missing Garage fails the test: it is never skipped (`scripts/test.sh` installs
//! it with `cargo install garage --locked`).
//!
//! Buckets `data`, `copies`, `manifests` and `reports` are on Garage; `remote` is a memory store, so that a copy
//! runs between backends (memory → Garage, a streamed multipart upload). The Garage store is configured as a
//! deployment would configure it (`kind = "s3"`, region `garage`, path style, checksums only when required), with
//! a low multipart threshold so that a copy of an 11 MiB object is a multipart UploadPartCopy.
//!
//! Garage has no object tagging, ACLs, object lock or restore: it answers `501 NotImplemented`, which must become a
//! clean failed row of the report while the job itself completes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use s3batch_engine::service::JobService;
use s3batch_engine::{CancellationToken, Engine, EngineConfig};
use s3batch_storage::memory::MemoryStore;
use s3batch_storage::s3::S3Store;
use s3batch_storage::{BackendKind, Metadata, ObjectRef, ObjectStore, PutBody, PutOptions, Router, StorageConfig};
use s3batch_store::sqlite::SqliteStore;
use serde_json::{Value, json};

mod common;
mod peers;

use common::Rows;
use peers::{Garage, start_garage};

const TIMEOUT: Duration = Duration::from_secs(120);
const MIB: u64 = 1024 * 1024;
const BUCKETS: [&str; 4] = ["data", "copies", "manifests", "reports"];

// ---------------------------------------------------------------------------------------------------------------
// Garage

/// A single-node Garage started by `scripts/garage.sh`; killed (by its pid) when dropped, before its directory
/// is removed.
/// The storage entry for Garage as a deployment writes it, with a low multipart threshold (6 MiB) and 5 MiB parts.
fn garage_config(g: &Garage) -> StorageConfig {
    StorageConfig {
        kind: BackendKind::S3,
        endpoint: Some(g.endpoint.clone()),
        region: Some("garage".into()),
        force_path_style: true,
        access_key_id: Some(g.key_id.clone()),
        secret_access_key: Some(g.secret.clone()),
        checksum_when_required: true,
        multipart_threshold: 6 * MIB,
        multipart_part_size: 5 * MIB,
        root: None,
        ..StorageConfig::local("garage", "")
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Harness

struct Harness {
    _dir: tempfile::TempDir,
    s3: S3Store,
    remote: MemoryStore,
    service: JobService,
    token: CancellationToken,
    manifests: AtomicUsize,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

impl Harness {
    async fn new(garage: &Garage) -> Harness {
        let s3 = S3Store::from_config(&garage_config(garage)).expect("the Garage storage config");
        // The S3 API answers once the layout is applied; give it a moment.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match s3.list_objects("data", "", None, 1).await {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("Garage not ready yet: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("Garage's S3 API does not answer at {}: {e}\n{}", garage.endpoint, garage.log()),
            }
        }
        let remote = MemoryStore::new();
        remote.create_bucket("remote").await.unwrap();

        let mut router = Router::default();
        router.add("remote", vec!["remote".into()], Arc::new(remote.clone()));
        router.add("garage", vec!["*".into()], Arc::new(s3.clone()));
        let cfg =
            EngineConfig { tick_ms: 20, lease_ms: 2000, backoff_base_ms: 1, backoff_max_ms: 5, ..Default::default() };
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("jobs.db")).await.unwrap());
        let engine = Engine::new(store.clone(), Arc::new(router), cfg);
        let token = CancellationToken::new();
        tokio::spawn(engine.clone().run(token.clone()));
        let service = JobService::new(store, engine.wake.clone(), 90);
        Harness { _dir: dir, s3, remote, service, token, manifests: AtomicUsize::new(0) }
    }

    async fn put(&self, bucket: &str, key: &str, body: &[u8], opts: PutOptions) {
        let body = PutBody::Bytes(Bytes::copy_from_slice(body));
        self.s3.put_object(bucket, key, body, &opts).await.unwrap_or_else(|e| panic!("PUT s3://{bucket}/{key}: {e}"));
    }

    async fn get(&self, bucket: &str, key: &str) -> Bytes {
        common::get(&self.s3, bucket, key).await
    }

    /// Run `operation` over the manifest `lines` as one job, which must complete; its report rows.
    async fn run(&self, operation: Value, lines: &[&[&str]]) -> Rows {
        let key = format!("m{}.csv", self.manifests.fetch_add(1, Ordering::Relaxed));
        common::run_job(&self.service, &self.s3, &key, operation, lines, TIMEOUT).await.1
    }
}

/// One succeeded row for this line, and no failures.
fn assert_ok(rows: &Rows, bucket: &str, key: &str) {
    assert!(rows.failed.is_empty(), "{rows:?}");
    assert_eq!(rows.succeeded.len(), 1, "{rows:?}");
    let r = &rows.succeeded[0];
    let got = (r.bucket.as_str(), r.key.as_str(), r.status.as_str(), r.http_status.as_str());
    assert_eq!(got, (bucket, key, "succeeded", "200"), "{r:?}");
    assert_eq!(r.error_code.as_str(), "", "{r:?}");
}

/// Bytes that are not one repeated pattern, so that a misplaced part shows.
fn pattern(len: u64, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_against_garage() {
    let garage = start_garage(&BUCKETS);
    let h = Harness::new(&garage).await;
    let obj = |b: &str, k: &str| ObjectRef::new(b, k);

    // --- copy with new metadata (REPLACE), and with the source's (COPY).
    let meta = Metadata {
        content_type: Some("text/plain".into()),
        user: BTreeMap::from([("origin".to_string(), "source".to_string())]),
        ..Default::default()
    };
    h.put("data", "c", b"copy me", PutOptions { metadata: meta, ..Default::default() }).await;
    let op = json!({"S3PutObjectCopy": {
        "TargetResource": "arn:aws:s3:::copies", "TargetKeyPrefix": "out/",
        "MetadataDirective": "REPLACE",
        "NewObjectMetadata": {"ContentType": "application/x-copied", "CacheControl": "max-age=60",
                              "UserMetadata": {"by": "batch"}}}});
    assert_ok(&h.run(op, &[&["data", "c"]]).await, "data", "c");
    assert_eq!(h.get("copies", "out/c").await, "copy me");
    let info = h.s3.head_object(&obj("copies", "out/c")).await.unwrap();
    assert_eq!(info.metadata.content_type.as_deref(), Some("application/x-copied"), "{info:?}");
    assert_eq!(info.metadata.cache_control.as_deref(), Some("max-age=60"), "{info:?}");
    assert_eq!(info.metadata.user, BTreeMap::from([("by".to_string(), "batch".to_string())]), "{info:?}");
    let op = json!({"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::copies", "TargetKeyPrefix": "kept/"}});
    assert_ok(&h.run(op, &[&["data", "c"]]).await, "data", "c");
    assert_eq!(h.get("copies", "kept/c").await, "copy me");
    let info = h.s3.head_object(&obj("copies", "kept/c")).await.unwrap();
    assert_eq!(info.metadata.content_type.as_deref(), Some("text/plain"), "{info:?}");
    assert_eq!(info.metadata.user.get("origin").map(String::as_str), Some("source"), "{info:?}");

    // --- a multipart copy inside Garage: 11 MiB over the 6 MiB threshold, in 5 MiB UploadPartCopy parts.
    let big = pattern(11 * MIB, 7);
    let big_meta = Metadata { content_type: Some("application/x-big".into()), ..Default::default() };
    h.put("data", "big", &big, PutOptions { metadata: big_meta, ..Default::default() }).await;
    // A multipart copy carries the source's tags over with GetObjectTagging; Garage has no tagging (501), so there
    // are none to carry and the copy goes ahead without them.
    let op = json!({"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::copies"}});
    assert_ok(&h.run(op, &[&["data", "big"]]).await, "data", "big");
    let info = h.s3.head_object(&obj("copies", "big")).await.unwrap();
    assert!(info.etag.ends_with("-3"), "three parts (5 + 5 + 1 MiB): {info:?}");
    assert_eq!(info.size, 11 * MIB);
    assert_eq!(info.metadata.content_type.as_deref(), Some("application/x-big"), "{info:?}");
    assert!(h.get("copies", "big").await == big, "the multipart copy's bytes");

    // --- a copy between backends, memory → Garage: 17 MiB streamed into a multipart upload of 8 MiB parts.
    let remote_big = pattern(17 * MIB, 11);
    let remote_meta = Metadata {
        content_type: Some("application/x-remote".into()),
        user: BTreeMap::from([("from".to_string(), "memory".to_string())]),
        ..Default::default()
    };
    let opts = PutOptions { metadata: remote_meta, ..Default::default() };
    h.remote.put_object("remote", "rbig", PutBody::Bytes(remote_big.clone().into()), &opts).await.unwrap();
    h.remote.put_object("remote", "small", PutBody::Bytes(Bytes::from_static(b"tiny")), &opts).await.unwrap();
    let op = json!({"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::copies", "TargetKeyPrefix": "x/"}});
    let rows = h.run(op, &[&["remote", "rbig"], &["remote", "small"]]).await;
    assert!(rows.failed.is_empty(), "{rows:?}");
    assert_eq!(rows.succeeded.len(), 2, "{rows:?}");
    let info = h.s3.head_object(&obj("copies", "x/rbig")).await.unwrap();
    assert!(info.etag.ends_with("-3"), "three parts (8 + 8 + 1 MiB): {info:?}");
    assert_eq!(info.metadata.content_type.as_deref(), Some("application/x-remote"), "{info:?}");
    assert_eq!(info.metadata.user.get("from").map(String::as_str), Some("memory"), "{info:?}");
    assert!(h.get("copies", "x/rbig").await == remote_big, "the cross-store copy's bytes");
    assert_eq!(h.get("copies", "x/small").await, "tiny");
    let info = h.s3.head_object(&obj("copies", "x/small")).await.unwrap();
    assert_eq!(info.metadata.content_type.as_deref(), Some("application/x-remote"), "{info:?}");

    // --- checksums, compared with values computed here.
    let sum_body = pattern(300 * 1024, 3);
    h.put("data", "sum", &sum_body, PutOptions::default()).await;
    let rows = h.run(json!({"S3ComputeObjectChecksum": {"ChecksumAlgorithm": "SHA256"}}), &[&["data", "sum"]]).await;
    assert_ok(&rows, "data", "sum");
    let v: Value = serde_json::from_str(&rows.succeeded[0].result_message).unwrap();
    let expected = {
        use sha2::Digest;
        hex::encode_upper(sha2::Sha256::digest(&sum_body))
    };
    assert_eq!(v["checksum_hex"], expected.as_str(), "{v}");
    assert_eq!(v["size"], sum_body.len());
    let rows = h.run(json!({"S3ComputeObjectChecksum": {"ChecksumAlgorithm": "CRC32"}}), &[&["copies", "big"]]).await;
    assert_ok(&rows, "copies", "big");
    let v: Value = serde_json::from_str(&rows.succeeded[0].result_message).unwrap();
    assert_eq!(v["checksum_hex"], format!("{:08X}", crc32fast::hash(&big)).as_str(), "of the multipart copy: {v}");

    // --- delete; a missing key is deleted too (S3 answers 204 either way).
    h.put("data", "del", b"bye", PutOptions::default()).await;
    h.put("data", "del/other", b"keep", PutOptions::default()).await;
    let rows = h.run(json!({"S3DeleteObject": {}}), &[&["data", "del"]]).await;
    assert_ok(&rows, "data", "del");
    let gone = h.s3.head_object(&obj("data", "del")).await.expect_err("deleted");
    assert_eq!(gone.http_status, 404, "{gone:?}");
    assert_eq!(h.get("data", "del/other").await, "keep");

    // --- many deletes: DeleteObjects requests, each key's own row; a missing key succeeds; nothing else goes.
    let many: Vec<String> = (0..130).map(|i| format!("del/many/{i:03}")).collect();
    for k in &many {
        h.put("data", k, k.as_bytes(), PutOptions::default()).await;
    }
    let mut lines: Vec<Vec<&str>> = many.iter().map(|k| vec!["data", k.as_str()]).collect();
    lines.insert(7, vec!["data", "del/never-written"]);
    let lines: Vec<&[&str]> = lines.iter().map(Vec::as_slice).collect();
    let rows = h.run(json!({"S3DeleteObject": {}}), &lines).await;
    assert!(rows.failed.is_empty(), "{:?}", rows.failed);
    assert_eq!(rows.succeeded.len(), 131);
    for r in &rows.succeeded {
        assert_eq!(
            (r.bucket.as_str(), r.http_status.as_str(), r.result_message.as_str()),
            ("data", "200", "Successful")
        );
    }
    let left: Vec<String> =
        h.s3.list_objects("data", "del", None, 1000).await.unwrap().objects.into_iter().map(|o| o.key).collect();
    assert_eq!(left, ["del/other"]);

    // --- what Garage does not implement: a clean failed row each (501 NotImplemented), and a complete job.
    h.put("data", "ni", b"not implemented", PutOptions::default()).await;
    let until = "2099-01-01T00:00:00Z";
    let unsupported = [
        json!({"S3PutObjectTagging": {"TagSet": [{"Key": "p", "Value": "1"}]}}),
        json!({"S3PutObjectAcl": {"AccessControlPolicy": {"CannedAccessControlList": "public-read"}}}),
        json!({"S3PutObjectLegalHold": {"LegalHold": {"Status": "ON"}}}),
        json!({"S3PutObjectRetention": {"Retention": {"Mode": "GOVERNANCE", "RetainUntilDate": until}}}),
        json!({"S3InitiateRestoreObject": {"ExpirationInDays": 2, "GlacierJobTier": "STANDARD"}}),
    ];
    for op in unsupported {
        let rows = h.run(op.clone(), &[&["data", "ni"]]).await;
        assert!(rows.succeeded.is_empty(), "{op}: {rows:?}");
        assert_eq!(rows.failed.len(), 1, "{op}: {rows:?}");
        let f = &rows.failed[0];
        let got = (f.bucket.as_str(), f.key.as_str(), f.status.as_str(), f.http_status.as_str(), f.error_code.as_str());
        assert_eq!(got, ("data", "ni", "failed", "501", "NotImplemented"), "{op}: {f:?}");
        assert!(!f.result_message.is_empty(), "{op}: a message: {f:?}");
    }
    assert_eq!(h.get("data", "ni").await, "not implemented", "the object is untouched");

    drop(h);
    drop(garage);
}
