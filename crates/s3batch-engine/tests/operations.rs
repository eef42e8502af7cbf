//! Component tests of every operation, each run as a job on in-memory object stores: a SQLite job store, a real
//! engine ticking every 20 ms, jobs created through the [`JobService`], objects read back and the report's rows
//! checked. LambdaInvoke goes to a small HTTP function server started in the test.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use s3batch_core::Tag;
use s3batch_core::report::OwnedReportRow;
use s3batch_engine::lambda::FunctionConfig;
use s3batch_engine::service::JobService;
use s3batch_engine::{CancellationToken, Engine, EngineConfig};
use s3batch_storage::memory::{Faults, MemoryStore};
use s3batch_storage::{
    ALL_USERS, Acl, CopyRequest, Grant, Grantee, Metadata, ObjectRef, ObjectStore, Permission, PutBody, PutOptions,
    RetentionMode, Router,
};
use s3batch_store::Job;
use s3batch_store::sqlite::SqliteStore;
use serde_json::{Value, json};

mod common;

use common::{Rows, get};

const TIMEOUT: Duration = Duration::from_secs(30);
const KMS_KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fn config() -> EngineConfig {
    EngineConfig { tick_ms: 20, lease_ms: 2000, backoff_base_ms: 1, backoff_max_ms: 5, ..Default::default() }
}

// ---------------------------------------------------------------------------------------------------------------
// Harness

struct Harness {
    _dir: tempfile::TempDir,
    /// Buckets `data` and `copies`.
    data: MemoryStore,
    /// Bucket `remote`: another backend, for copies between stores.
    remote: MemoryStore,
    /// `manifests` and `reports`.
    meta: MemoryStore,
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
    async fn new() -> Harness {
        Harness::with_config(config()).await
    }

    async fn with_config(cfg: EngineConfig) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("jobs.db")).await.unwrap());
        let (data, remote, meta) = (MemoryStore::new(), MemoryStore::new(), MemoryStore::new());
        for b in ["data", "copies"] {
            data.create_bucket(b).await.unwrap();
        }
        remote.create_bucket("remote").await.unwrap();
        for b in ["manifests", "reports"] {
            meta.create_bucket(b).await.unwrap();
        }
        let mut router = Router::default();
        router.add("data", vec!["data".into(), "copies".into()], Arc::new(data.clone()));
        router.add("remote", vec!["remote".into()], Arc::new(remote.clone()));
        router.add("meta", vec!["*".into()], Arc::new(meta.clone()));
        cfg.validate().unwrap();
        let engine = Engine::new(store.clone(), Arc::new(router), cfg);
        let token = CancellationToken::new();
        tokio::spawn(engine.clone().run(token.clone()));
        let service = JobService::new(store, engine.wake.clone(), 90);
        Harness { _dir: dir, data, remote, meta, service, token, manifests: AtomicUsize::new(0) }
    }

    async fn put(&self, bucket: &str, key: &str, body: &[u8], opts: PutOptions) -> String {
        let w = self.data.put_object(bucket, key, PutBody::Bytes(Bytes::copy_from_slice(body)), &opts).await.unwrap();
        w.version_id.unwrap()
    }

    async fn put_tagged(&self, key: &str, tags: &[(&str, &str)]) {
        let tags = tags.iter().map(|(k, v)| Tag::new(*k, *v)).collect();
        self.put("data", key, key.as_bytes(), PutOptions { tags, ..Default::default() }).await;
    }

    /// Run `operation` on the manifest `lines` (`bucket, key[, version]`: all with a version or none) until the job
    /// is finished; its report's rows.
    async fn run(&self, operation: Value, lines: &[&[&str]]) -> (Job, Rows) {
        let key = format!("m{}.csv", self.manifests.fetch_add(1, Ordering::Relaxed));
        common::run_job(&self.service, &self.meta, &key, operation, lines, TIMEOUT).await
    }
}

fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
    pairs.iter().map(|(k, v)| Tag::new(*k, *v)).collect()
}

/// Rows by key.
fn by_key(rows: &[OwnedReportRow]) -> BTreeMap<String, OwnedReportRow> {
    rows.iter().map(|r| (r.key.clone(), r.clone())).collect()
}

fn assert_ok(r: &OwnedReportRow, bucket: &str, key: &str, version: &str) {
    let got = (r.bucket.as_str(), r.key.as_str(), r.version_id.as_str(), r.status.as_str(), r.http_status.as_str());
    assert_eq!(got, (bucket, key, version, "succeeded", "200"), "{r:?}");
    assert_eq!((r.error_code.as_str(), r.result_message.as_str()), ("", "Successful"), "{r:?}");
}

fn assert_failed(r: &OwnedReportRow, http: &str, code: &str, message_part: &str) {
    assert_eq!((r.status.as_str(), r.http_status.as_str(), r.error_code.as_str()), ("failed", http, code), "{r:?}");
    assert!(r.result_message.contains(message_part), "{:?} does not contain {message_part:?}", r.result_message);
}

// ---------------------------------------------------------------------------------------------------------------
// Tagging

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_and_remove_tagging() {
    let h = Harness::new().await;
    h.put_tagged("a", &[("keep", "1"), ("swap", "old")]).await;
    let nine: Vec<(String, String)> = (0..9).map(|i| (format!("t{i}"), "v".to_string())).collect();
    let nine_ref: Vec<(&str, &str)> = nine.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    h.put_tagged("full", &nine_ref).await;

    let add = json!({"S3AddObjectTagging": {"TagSet": [{"Key": "swap", "Value": "new"}, {"Key": "n1", "Value": "x"},
                                                        {"Key": "n2", "Value": "y"}]}});
    let (_, rows) = h.run(add, &[&["data", "a"], &["data", "full"], &["data", "missing"]]).await;
    assert_ok(&rows.succeeded[0], "data", "a", "");
    let failed = by_key(&rows.failed);
    assert_failed(&failed["full"], "400", "BadRequest", "cannot be greater than 10");
    assert_failed(&failed["missing"], "404", "NoSuchKey", "The specified key does not exist.");
    let a = ObjectRef::new("data", "a");
    assert_eq!(
        h.data.get_object_tagging(&a).await.unwrap(),
        tags(&[("keep", "1"), ("swap", "new"), ("n1", "x"), ("n2", "y")])
    );
    assert_eq!(h.data.get_object_tagging(&ObjectRef::new("data", "full")).await.unwrap().len(), 9, "unchanged");

    let remove = json!({"S3RemoveObjectTagging": {"TagKeys": ["swap", "n2", "absent"]}});
    let (_, rows) = h.run(remove, &[&["data", "a"]]).await;
    assert_ok(&rows.succeeded[0], "data", "a", "");
    assert_eq!(h.data.get_object_tagging(&a).await.unwrap(), tags(&[("keep", "1"), ("n1", "x")]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_ids_are_honoured() {
    let h = Harness::new().await;
    let old = h.put("data", "v", b"1", PutOptions::default()).await;
    let current = h.put("data", "v", b"2", PutOptions::default()).await;
    let op = json!({"S3PutObjectTagging": {"TagSet": [{"Key": "k", "Value": "v"}]}});
    let (_, rows) = h.run(op, &[&["data", "v", &current], &["data", "v", &old]]).await;
    assert_eq!(rows.succeeded.len(), 1);
    assert_ok(&rows.succeeded[0], "data", "v", &current);
    assert_eq!(rows.failed[0].version_id, old);
    assert_failed(&rows.failed[0], "404", "NoSuchVersion", "The specified version does not exist.");
}

// ---------------------------------------------------------------------------------------------------------------
// Copies

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_maps_every_field() {
    let h = Harness::new().await;
    let meta = Metadata { content_type: Some("text/plain".into()), ..Default::default() };
    h.put("data", "src/a", b"hello", PutOptions { metadata: meta, tags: tags(&[("from", "src")]) }).await;
    let until = "2099-01-01T00:00:00Z";
    let op = json!({"S3PutObjectCopy": {
        "TargetResource": "arn:aws:s3:::copies",
        "TargetKeyPrefix": "dst/",
        "SourceKeyPrefix": "src/",
        "MetadataDirective": "REPLACE",
        "NewObjectMetadata": {"ContentType": "application/x-new", "CacheControl": "no-cache",
                              "UserMetadata": {"owner": "batch"}, "SSEAlgorithm": "KMS"},
        "NewObjectTagging": [{"Key": "copied", "Value": "yes"}],
        "AccessControlGrants": [
            {"Grantee": {"TypeIdentifier": "uri", "Identifier": ALL_USERS}, "Permission": "READ"},
            {"Grantee": {"TypeIdentifier": "id", "Identifier": "abc123"}, "Permission": "FULL_CONTROL"}],
        "SSEAwsKmsKeyId": KMS_KEY,
        "BucketKeyEnabled": true,
        "ObjectLockMode": "GOVERNANCE",
        "ObjectLockRetainUntilDate": until,
        "ObjectLockLegalHoldStatus": "ON",
        "ChecksumAlgorithm": "CRC32",
        "RequesterPays": true,
        "RedirectLocation": "/elsewhere",
        "StorageClass": "STANDARD_IA"
    }});
    let (_, rows) = h.run(op, &[&["data", "src/a"], &["data", "src/missing"]]).await;
    assert_ok(&rows.succeeded[0], "data", "src/a", "");
    assert_failed(&rows.failed[0], "404", "NoSuchKey", "does not exist");

    let dst = ObjectRef::new("copies", "dst/a");
    assert_eq!(get(&h.data, "copies", "dst/a").await, "hello");
    let info = h.data.head_object(&dst).await.unwrap();
    assert_eq!(info.metadata.content_type.as_deref(), Some("application/x-new"));
    assert_eq!(info.metadata.cache_control.as_deref(), Some("no-cache"));
    assert_eq!(info.metadata.user.get("owner").map(String::as_str), Some("batch"));
    assert_eq!(info.server_side_encryption.as_deref(), Some("aws:kms"));
    assert_eq!(info.sse_kms_key_id.as_deref(), Some(KMS_KEY));
    assert_eq!(info.bucket_key_enabled, Some(true));
    assert_eq!(info.object_lock_mode, Some(RetentionMode::Governance));
    assert_eq!(info.object_lock_retain_until, s3batch_core::time::parse_iso(until));
    assert_eq!(info.object_lock_legal_hold, Some(true));
    assert_eq!(info.website_redirect_location.as_deref(), Some("/elsewhere"));
    assert_eq!(info.storage_class.as_deref(), Some("STANDARD_IA"));
    assert_eq!(h.data.get_object_tagging(&dst).await.unwrap(), tags(&[("copied", "yes")]));
    let acl = h.data.get_object_acl(&dst).await.unwrap().normalized_grants();
    assert!(acl.contains(&Grant::new(Grantee::Group(ALL_USERS.into()), Permission::Read)), "{acl:?}");
    assert!(acl.contains(&Grant::new(Grantee::canonical("abc123"), Permission::FullControl)), "{acl:?}");
    let listed = h.data.list_objects("copies", "dst/", None, 10).await.unwrap();
    assert_eq!(listed.objects[0].checksum_algorithm.as_deref(), Some("CRC32"));
}

/// The merge extensions (COS's `Add` directives): new metadata, tags and grants join the source's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_merges_metadata_tags_and_grants_into_the_sources() {
    let h = Harness::new().await;
    let meta = Metadata {
        content_type: Some("text/plain".into()),
        cache_control: Some("max-age=5".into()),
        user: BTreeMap::from([("keep".to_string(), "1".to_string()), ("over".to_string(), "old".to_string())]),
        ..Default::default()
    };
    h.put("data", "m", b"merge me", PutOptions { metadata: meta, tags: tags(&[("a", "1"), ("b", "old")]) }).await;
    let src = ObjectRef::new("data", "m");
    let owner = h.data.get_object_acl(&src).await.unwrap().owner;
    let source_grant = Grant::new(Grantee::Group(ALL_USERS.into()), Permission::Read);
    h.data
        .put_object_acl(&src, &Acl::Policy(s3batch_storage::AclPolicy { owner, grants: vec![source_grant.clone()] }))
        .await
        .unwrap();
    let op = json!({"S3PutObjectCopy": {
        "TargetResource": "arn:aws:s3:::copies",
        "MetadataDirective": "REPLACE", "MergeMetadata": true,
        "NewObjectMetadata": {"ContentType": "application/x-new", "UserMetadata": {"over": "new", "added": "2"}},
        "MergeTagging": true, "NewObjectTagging": [{"Key": "b", "Value": "new"}, {"Key": "c", "Value": "3"}],
        "MergeAccessControlGrants": true,
        "AccessControlGrants": [{"Grantee": {"TypeIdentifier": "id", "Identifier": "abc123"}, "Permission": "READ_ACP"}]
    }});
    let (_, rows) = h.run(op, &[&["data", "m"]]).await;
    assert_ok(&rows.succeeded[0], "data", "m", "");
    let dst = ObjectRef::new("copies", "m");
    let info = h.data.head_object(&dst).await.unwrap();
    assert_eq!(info.metadata.content_type.as_deref(), Some("application/x-new"), "new values win");
    assert_eq!(info.metadata.cache_control.as_deref(), Some("max-age=5"), "the source's are kept");
    let user: Vec<(&str, &str)> = info.metadata.user.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(user, [("added", "2"), ("keep", "1"), ("over", "new")]);
    let mut got = h.data.get_object_tagging(&dst).await.unwrap();
    got.sort_by(|x, y| x.key.cmp(&y.key));
    assert_eq!(got, tags(&[("a", "1"), ("b", "new"), ("c", "3")]));
    let acl = h.data.get_object_acl(&dst).await.unwrap().normalized_grants();
    assert!(acl.contains(&source_grant), "{acl:?}");
    assert!(acl.contains(&Grant::new(Grantee::canonical("abc123"), Permission::ReadAcp)), "{acl:?}");

    // Merged past 10 tags: the task fails with the reason, the job goes on.
    let many: Vec<_> = (0..10).map(|i| json!({"Key": format!("k{i}"), "Value": "v"})).collect();
    let op = json!({"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::copies", "TargetKeyPrefix": "too-many/",
                                        "MergeTagging": true, "NewObjectTagging": many}});
    let (_, rows) = h.run(op, &[&["data", "m"]]).await;
    assert_failed(&rows.failed[0], "400", "BadRequest", "greater than 10");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_between_stores_streams_large_objects_in_parts() {
    let h = Harness::new().await;
    // 20 MiB + 3 bytes: three parts of 8 MiB at most.
    let big: Vec<u8> = (0..20 * 1024 * 1024 + 3).map(|i: usize| (i % 251) as u8).collect();
    let meta = Metadata {
        content_type: Some("application/octet-stream".into()),
        user: BTreeMap::from([("a".to_string(), "1".to_string())]),
        ..Default::default()
    };
    h.put("data", "big", &big, PutOptions { metadata: meta.clone(), tags: tags(&[("t", "1")]) }).await;
    h.put("data", "small", b"tiny", PutOptions { metadata: meta.clone(), tags: tags(&[("t", "2")]) }).await;
    h.put("data", "classy", b"tiny", PutOptions::default()).await;

    let op = json!({"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::remote"}});
    let (_, rows) = h.run(op, &[&["data", "big"], &["data", "small"]]).await;
    assert_eq!(rows.succeeded.len(), 2, "{rows:?}");
    let big_ref = ObjectRef::new("remote", "big");
    assert!(get(&h.remote, "remote", "big").await == big, "the large object's bytes");
    let info = h.remote.head_object(&big_ref).await.unwrap();
    assert!(info.etag.ends_with("-3"), "a multipart upload of 3 parts: {}", info.etag);
    assert_eq!(info.metadata, meta);
    assert_eq!(h.remote.get_object_tagging(&big_ref).await.unwrap(), tags(&[("t", "1")]));
    let small = ObjectRef::new("remote", "small");
    assert_eq!(get(&h.remote, "remote", "small").await, "tiny");
    assert_eq!(h.remote.head_object(&small).await.unwrap().metadata, meta);
    assert_eq!(h.remote.get_object_tagging(&small).await.unwrap(), tags(&[("t", "2")]));

    // Replaced metadata and tags, and attributes a PUT cannot carry (a one-part multipart upload).
    let op = json!({"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::remote", "TargetKeyPrefix": "r/",
        "MetadataDirective": "REPLACE", "NewObjectMetadata": {"ContentType": "text/new"},
        "NewObjectTagging": [], "StorageClass": "STANDARD_IA", "CannedAccessControlList": "public-read"}});
    let (_, rows) = h.run(op, &[&["data", "small"], &["data", "classy"]]).await;
    assert_eq!(rows.succeeded.len(), 2, "{rows:?}");
    let r = ObjectRef::new("remote", "r/small");
    let info = h.remote.head_object(&r).await.unwrap();
    assert_eq!(info.metadata, Metadata { content_type: Some("text/new".into()), ..Default::default() });
    assert_eq!(info.storage_class.as_deref(), Some("STANDARD_IA"));
    assert!(h.remote.get_object_tagging(&r).await.unwrap().is_empty());
    let acl = h.remote.get_object_acl(&r).await.unwrap().normalized_grants();
    assert!(acl.contains(&Grant::new(Grantee::Group(ALL_USERS.into()), Permission::Read)), "{acl:?}");
    assert_eq!(get(&h.remote, "remote", "r/classy").await, "tiny");

    // Preconditions hold across stores too.
    let op = json!({"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::remote", "TargetKeyPrefix": "p/",
        "ModifiedSinceConstraint": "2099-01-01T00:00:00Z"}});
    let (_, rows) = h.run(op, &[&["data", "small"]]).await;
    assert_failed(&rows.failed[0], "412", "PreconditionFailed", "pre-conditions");
}

#[tokio::test]
async fn cross_store_copy_holds_at_most_one_part() {
    // The function directly, with a source whose body arrives in many small chunks: each part sent is at most
    // the part size (the part buffer is the only copy of the body held).
    let (src, dst) = (MemoryStore::new(), MemoryStore::new());
    src.create_bucket("a").await.unwrap();
    dst.create_bucket("b").await.unwrap();
    let data: Vec<u8> = (0..(11 * 1024 * 1024)).map(|i: usize| (i % 13) as u8).collect();
    src.put_object("a", "k", PutBody::Bytes(data.clone().into()), &PutOptions::default()).await.unwrap();
    let req = CopyRequest::new(ObjectRef::new("a", "k"), "b", "k");
    let part = 5 * 1024 * 1024;
    let w = s3batch_engine::ops::cross_store_copy(&src, &dst, &req, part).await.unwrap();
    assert!(w.etag.unwrap().ends_with("-3"));
    assert!(get(&dst, "b", "k").await == data);
}

// ---------------------------------------------------------------------------------------------------------------
// ACL, restore, object lock

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_object_acl_canned_and_explicit() {
    let h = Harness::new().await;
    h.put_tagged("canned", &[]).await;
    h.put_tagged("explicit", &[]).await;
    let canned = json!({"S3PutObjectAcl": {"AccessControlPolicy": {"CannedAccessControlList": "public-read"}}});
    let (_, rows) = h.run(canned, &[&["data", "canned"], &["data", "nope"]]).await;
    assert_ok(&rows.succeeded[0], "data", "canned", "");
    assert_failed(&rows.failed[0], "404", "NoSuchKey", "does not exist");
    let acl = h.data.get_object_acl(&ObjectRef::new("data", "canned")).await.unwrap().normalized_grants();
    assert!(acl.contains(&Grant::new(Grantee::Group(ALL_USERS.into()), Permission::Read)), "{acl:?}");

    let explicit = json!({"S3PutObjectAcl": {"AccessControlPolicy": {"AccessControlList": {
        "Owner": {"ID": "owner1"},
        "Grants": [{"Grantee": {"TypeIdentifier": "id", "Identifier": "owner1"}, "Permission": "FULL_CONTROL"},
                   {"Grantee": {"TypeIdentifier": "emailAddress", "Identifier": "x@example.com"},
                    "Permission": "READ_ACP"}]}}}});
    let (_, rows) = h.run(explicit, &[&["data", "explicit"]]).await;
    assert_ok(&rows.succeeded[0], "data", "explicit", "");
    let acl = h.data.get_object_acl(&ObjectRef::new("data", "explicit")).await.unwrap().normalized_grants();
    assert_eq!(
        acl,
        vec![
            Grant::new(Grantee::canonical("owner1"), Permission::FullControl),
            Grant::new(Grantee::Email("x@example.com".into()), Permission::ReadAcp),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initiate_restore() {
    let h = Harness::new().await;
    h.put_tagged("hot", &[]).await;
    h.put_tagged("src", &[]).await;
    let mut req = CopyRequest::new(ObjectRef::new("data", "src"), "data", "cold");
    req.storage_class = Some("GLACIER".into());
    h.data.copy_object(&req).await.unwrap();
    let cold = ObjectRef::new("data", "cold");
    assert!(h.data.get_object(&cold, None).await.is_err(), "archived");

    let op = json!({"S3InitiateRestoreObject": {"ExpirationInDays": 3, "GlacierJobTier": "BULK"}});
    let (_, rows) = h.run(op, &[&["data", "cold"], &["data", "hot"]]).await;
    assert_ok(&rows.succeeded[0], "data", "cold", "");
    assert_failed(&rows.failed[0], "403", "InvalidObjectState", "storage class");
    let status = h.data.head_object(&cold).await.unwrap().restore_status().expect("a restore status");
    assert!(!status.ongoing);
    assert!(status.expiry.unwrap() > s3batch_core::time::now_millis() + 2 * 86_400_000);
    assert_eq!(get(&h.data, "data", "cold").await, "src", "readable once restored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legal_hold_and_retention() {
    let h = Harness::new().await;
    h.put_tagged("locked", &[]).await;
    let obj = ObjectRef::new("data", "locked");

    let (_, rows) =
        h.run(json!({"S3PutObjectLegalHold": {"LegalHold": {"Status": "ON"}}}), &[&["data", "locked"]]).await;
    assert_ok(&rows.succeeded[0], "data", "locked", "");
    assert!(h.data.get_object_legal_hold(&obj).await.unwrap());
    let (_, rows) =
        h.run(json!({"S3PutObjectLegalHold": {"LegalHold": {"Status": "OFF"}}}), &[&["data", "locked"]]).await;
    assert_ok(&rows.succeeded[0], "data", "locked", "");
    assert!(!h.data.get_object_legal_hold(&obj).await.unwrap());

    let until = "2099-06-01T00:00:00Z";
    let set = json!({"S3PutObjectRetention": {"Retention": {"Mode": "GOVERNANCE", "RetainUntilDate": until}}});
    let (_, rows) = h.run(set, &[&["data", "locked"]]).await;
    assert_ok(&rows.succeeded[0], "data", "locked", "");
    let r = h.data.get_object_retention(&obj).await.unwrap();
    assert_eq!((r.mode, r.retain_until), (Some(RetentionMode::Governance), s3batch_core::time::parse_iso(until)));

    // Removing governance retention needs the bypass.
    let (_, rows) = h.run(json!({"S3PutObjectRetention": {"Retention": {}}}), &[&["data", "locked"]]).await;
    assert_eq!(rows.failed.len(), 1, "{rows:?}");
    assert_eq!(rows.failed[0].error_code, "AccessDenied", "{rows:?}");
    let remove = json!({"S3PutObjectRetention": {"BypassGovernanceRetention": true, "Retention": {}}});
    let (_, rows) = h.run(remove, &[&["data", "locked"]]).await;
    assert_ok(&rows.succeeded[0], "data", "locked", "");
    assert_eq!(h.data.get_object_retention(&obj).await.unwrap().mode, None);
}

// ---------------------------------------------------------------------------------------------------------------
// Replication, encryption, deletes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicate_to_the_configured_destination() {
    let replication = BTreeMap::from([("data".to_string(), "remote".to_string())]);
    let h = Harness::with_config(EngineConfig { replication, ..config() }).await;
    let meta = Metadata { content_language: Some("de".into()), ..Default::default() };
    h.put("data", "r/1", b"one", PutOptions { metadata: meta.clone(), tags: tags(&[("x", "y")]) }).await;
    h.put("copies", "c", b"c", PutOptions::default()).await;
    let (_, rows) = h.run(json!({"S3ReplicateObject": {}}), &[&["data", "r/1"], &["copies", "c"]]).await;
    assert_ok(&rows.succeeded[0], "data", "r/1", "");
    assert_failed(
        &rows.failed[0],
        "400",
        "InvalidRequest",
        "no replication destination is configured for bucket copies",
    );
    let replica = ObjectRef::new("remote", "r/1");
    assert_eq!(get(&h.remote, "remote", "r/1").await, "one");
    assert_eq!(h.remote.head_object(&replica).await.unwrap().metadata, meta);
    assert_eq!(h.remote.get_object_tagging(&replica).await.unwrap(), tags(&[("x", "y")]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_object_encryption_keeps_metadata_tags_and_acl() {
    let h = Harness::new().await;
    let meta = Metadata { content_type: Some("image/png".into()), ..Default::default() };
    h.put("data", "e", b"secret", PutOptions { metadata: meta.clone(), tags: tags(&[("k", "v")]) }).await;
    let obj = ObjectRef::new("data", "e");
    h.data.put_object_acl(&obj, &Acl::Canned("public-read".into())).await.unwrap();
    let before = h.data.get_object_acl(&obj).await.unwrap().normalized_grants();

    let op = json!({"S3UpdateObjectEncryption": {"ObjectEncryption": {"SSE-KMS": {"KMSKeyArn": KMS_KEY,
        "BucketKeyEnabled": true}}}});
    let (_, rows) = h.run(op, &[&["data", "e"], &["data", "gone"]]).await;
    assert_ok(&rows.succeeded[0], "data", "e", "");
    assert_failed(&rows.failed[0], "404", "NoSuchKey", "does not exist");
    let info = h.data.head_object(&obj).await.unwrap();
    assert_eq!(info.server_side_encryption.as_deref(), Some("aws:kms"));
    assert_eq!(info.sse_kms_key_id.as_deref(), Some(KMS_KEY));
    assert_eq!(info.bucket_key_enabled, Some(true));
    assert_eq!(info.metadata, meta);
    assert_eq!(get(&h.data, "data", "e").await, "secret");
    assert_eq!(h.data.get_object_tagging(&obj).await.unwrap(), tags(&[("k", "v")]));
    assert_eq!(h.data.get_object_acl(&obj).await.unwrap().normalized_grants(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_object_with_noncurrent_versions() {
    let h = Harness::new().await;
    h.put_tagged("d/1", &[]).await;
    h.put_tagged("d/1/longer", &[]).await;
    h.put_tagged("d/2", &[]).await;
    let op = json!({"S3DeleteObject": {"DeleteNoncurrentVersions": true}});
    let (_, rows) = h.run(op, &[&["data", "d/1"]]).await;
    assert_ok(&rows.succeeded[0], "data", "d/1", "");
    assert!(h.data.head_object(&ObjectRef::new("data", "d/1")).await.is_err());
    h.data.head_object(&ObjectRef::new("data", "d/1/longer")).await.expect("a longer key is not a version");
    let (_, rows) = h.run(json!({"S3DeleteObject": {}}), &[&["data", "d/2"]]).await;
    assert_ok(&rows.succeeded[0], "data", "d/2", "");
    assert_eq!(h.data.list_objects("data", "d/", None, 10).await.unwrap().objects.len(), 1);
}

/// `n` objects `b/<i>` in `data`.
async fn put_many(h: &Harness, n: usize) -> Vec<String> {
    let keys: Vec<String> = (0..n).map(|i| format!("b/{i:04}")).collect();
    for k in &keys {
        h.put("data", k, k.as_bytes(), PutOptions::default()).await;
    }
    keys
}

fn data_lines(keys: &[String]) -> Vec<Vec<&str>> {
    keys.iter().map(|k| vec!["data", k.as_str()]).collect()
}

/// S3DeleteObject goes out as DeleteObjects requests: a few requests for many keys, each key's own row, a missing
/// key deleted (as S3 answers), a protected object refused on its own, and nothing else touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_goes_out_in_batches_with_each_keys_own_result() {
    let h = Harness::new().await;
    let keys = put_many(&h, 150).await;
    h.put("data", "keep", b"keep", PutOptions::default()).await;
    h.put("data", "held", b"held", PutOptions::default()).await;
    h.data.put_object_legal_hold(&ObjectRef::new("data", "held"), true).await.unwrap();
    let mut lines = data_lines(&keys);
    lines.push(vec!["data", "never-written"]);
    lines.push(vec!["data", "held"]);
    let lines: Vec<&[&str]> = lines.iter().map(Vec::as_slice).collect();
    let before = h.data.request_count();
    let (job, rows) = h.run(json!({"S3DeleteObject": {}}), &lines).await;
    let requests = h.data.request_count() - before;
    assert!(requests <= 5, "152 keys in {requests} requests");
    assert_eq!((job.succeeded, job.failed), (151, 1));
    let ok = by_key(&rows.succeeded);
    for k in keys.iter().map(String::as_str).chain(["never-written"]) {
        assert_ok(&ok[k], "data", k, "");
    }
    assert_failed(&rows.failed[0], "403", "AccessDenied", "");
    assert_eq!(rows.failed[0].key, "held");
    let left: Vec<String> =
        h.data.list_objects("data", "", None, 1000).await.unwrap().objects.into_iter().map(|o| o.key).collect();
    assert_eq!(left, ["held", "keep"]);
}

/// A versioned line deletes that version only: the current one goes, a version that is not there is a success
/// that deletes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_delete_sends_version_ids() {
    let h = Harness::new().await;
    let old = h.put("data", "v1", b"1", PutOptions::default()).await;
    h.put("data", "v1", b"2", PutOptions::default()).await;
    let current = h.put("data", "v2", b"1", PutOptions::default()).await;
    let (_, rows) = h.run(json!({"S3DeleteObject": {}}), &[&["data", "v1", &old], &["data", "v2", &current]]).await;
    assert_eq!(rows.succeeded.len(), 2, "{rows:?}");
    let ok = by_key(&rows.succeeded);
    assert_ok(&ok["v1"], "data", "v1", &old);
    assert_ok(&ok["v2"], "data", "v2", &current);
    assert_eq!(get(&h.data, "data", "v1").await, "2", "another version than the current one: kept");
    assert!(h.data.head_object(&ObjectRef::new("data", "v2")).await.is_err());
}

fn retrying() -> EngineConfig {
    EngineConfig { max_attempts: 30, ..config() }
}

/// Keys answered `SlowDown` in the `Errors` list are sent again, alone; every object goes in the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_delete_retries_a_keys_transient_error_for_that_key() {
    let h = Harness::with_config(retrying()).await;
    let keys = put_many(&h, 300).await;
    h.data.set_faults(Faults {
        error_rate: 0.3,
        error_code: "SlowDown".into(),
        error_status: 503,
        only_ops: vec!["delete_object".into()],
        ..Default::default()
    });
    let lines = data_lines(&keys);
    let lines: Vec<&[&str]> = lines.iter().map(Vec::as_slice).collect();
    let (job, rows) = h.run(json!({"S3DeleteObject": {}}), &lines).await;
    assert_eq!((job.succeeded, job.failed), (300, 0), "{:?}", rows.failed.first());
    assert_eq!(h.data.object_count(), 0);

    // A permanent error of a key is that key's row, with the store's code, status and message.
    h.data.set_faults(Faults::default());
    let keys = put_many(&h, 40).await;
    h.data.set_faults(Faults {
        error_rate: 1.0,
        error_code: "AccessDenied".into(),
        error_status: 403,
        only_ops: vec!["delete_object".into()],
        ..Default::default()
    });
    let lines = data_lines(&keys);
    let lines: Vec<&[&str]> = lines.iter().map(Vec::as_slice).collect();
    let (job, rows) = h.run(json!({"S3DeleteObject": {}}), &lines).await;
    assert_eq!((job.succeeded, job.failed), (0, 40));
    for r in &rows.failed {
        assert_failed(r, "403", "AccessDenied", "injected fault in delete_object");
    }
    h.data.set_faults(Faults::default());
    assert_eq!(h.data.object_count(), 40, "nothing deleted");
}

/// A whole DeleteObjects request that fails transiently is sent again; one that fails permanently fails each of
/// its keys with the store's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_delete_retries_a_whole_request_as_a_batch() {
    let h = Harness::with_config(retrying()).await;
    let keys = put_many(&h, 300).await;
    let whole = |rate: f64, code: &str, status: u16| Faults {
        error_rate: rate,
        error_code: code.into(),
        error_status: status,
        only_ops: vec!["delete_objects".into()],
        ..Default::default()
    };
    h.data.set_faults(Faults { reset_rate: 0.2, ..whole(0.3, "InternalError", 500) });
    let lines = data_lines(&keys);
    let lines: Vec<&[&str]> = lines.iter().map(Vec::as_slice).collect();
    let (job, _) = h.run(json!({"S3DeleteObject": {}}), &lines).await;
    assert_eq!((job.succeeded, job.failed), (300, 0));
    assert_eq!(h.data.object_count(), 0);

    h.data.set_faults(Faults::default());
    let keys = put_many(&h, 30).await;
    h.data.set_faults(whole(1.0, "AccessDenied", 403));
    let lines = data_lines(&keys);
    let lines: Vec<&[&str]> = lines.iter().map(Vec::as_slice).collect();
    let (job, rows) = h.run(json!({"S3DeleteObject": {}}), &lines).await;
    assert_eq!((job.succeeded, job.failed), (0, 30));
    for r in &rows.failed {
        assert_failed(r, "403", "AccessDenied", "injected fault in delete_objects");
    }
    // Out of attempts: a transient answer is the row (one request per attempt, no more).
    h.data.set_faults(Faults::default());
    let keys = put_many(&h, 10).await;
    h.data.set_faults(whole(1.0, "SlowDown", 503));
    let before = h.data.request_count();
    let lines = data_lines(&keys);
    let lines: Vec<&[&str]> = lines.iter().map(Vec::as_slice).collect();
    let (job, rows) = h.run(json!({"S3DeleteObject": {}}), &lines).await;
    assert_eq!((job.succeeded, job.failed), (0, 10));
    assert_failed(&rows.failed[0], "503", "SlowDown", "injected");
    assert_eq!(h.data.request_count() - before, 30, "max_attempts requests of the one batch");
}

// ---------------------------------------------------------------------------------------------------------------
// Checksums

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compute_checksums() {
    let h = Harness::new().await;
    h.put("data", "c", b"123456789", PutOptions::default()).await;
    for (alg, hex) in [
        ("CRC32", "cbf43926"),
        ("CRC32C", "e3069283"),
        ("SHA256", "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225"),
    ] {
        let op = json!({"S3ComputeObjectChecksum": {"ChecksumAlgorithm": alg, "ChecksumType": "FULL_OBJECT"}});
        let (_, rows) = h.run(op, &[&["data", "c"], &["data", "missing"]]).await;
        let r = &rows.succeeded[0];
        assert_eq!((r.status.as_str(), r.http_status.as_str()), ("succeeded", "200"));
        // AWS's keys, in AWS's order; s3batch's own `size` after them.
        let v: Value = serde_json::from_str(&r.result_message).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["checksum_base64", "etag", "checksumAlgorithm", "checksumType", "checksum_hex", "size"]);
        assert_eq!(v["checksum_hex"], hex.to_uppercase(), "{alg}");
        let b64 = base64::engine::general_purpose::STANDARD.encode(hex::decode(hex).unwrap());
        assert_eq!(v["checksum_base64"], b64.as_str(), "{alg}");
        assert_eq!(v["checksumAlgorithm"], alg);
        assert_eq!(v["checksumType"], "FULL_OBJECT");
        assert_eq!(v["etag"], s3batch_storage::md5_hex(b"123456789"));
        assert_eq!(v["size"], 9);
        // A missing object: AWS's failed-task row (200, PermanentFailure, error details with the HTTP status).
        let f = &rows.failed[0];
        assert_eq!(
            (f.status.as_str(), f.http_status.as_str(), f.error_code.as_str()),
            ("failed", "200", "PermanentFailure")
        );
        assert_eq!(
            f.result_message,
            r#"error details: {"failureMessage":"NoSuchKey: The specified key does not exist.", "errorCode": "404"}"#
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// LambdaInvoke

/// A function endpoint: answers by the task's key. `ok*`: Succeeded with the key and schema; `temp*`:
/// TemporaryFailure the first two times; `perm*`: PermanentFailure; `junk*`: not JSON; `slow*`: too late.
async fn function_server() -> (String, Arc<AtomicUsize>) {
    use axum::routing::post;
    let temp_calls = Arc::new(AtomicUsize::new(0));
    let calls = temp_calls.clone();
    let app = axum::Router::new().route(
        "/fn",
        post(move |axum::Json(event): axum::Json<Value>| {
            let calls = calls.clone();
            async move {
                let task = &event["tasks"][0];
                let key = task["s3Key"].as_str().unwrap_or_default().to_string();
                let bucket = task["s3Bucket"].as_str().or(task["s3BucketArn"].as_str()).unwrap_or_default().to_string();
                let answer = |code: &str, s: String| {
                    json!({"invocationSchemaVersion": event["invocationSchemaVersion"], "treatMissingKeysAs": "PermanentFailure",
                           "invocationId": event["invocationId"],
                           "results": [{"taskId": task["taskId"], "resultCode": code, "resultString": s}]})
                    .to_string()
                };
                if key.starts_with("temp") {
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    if n < 2 {
                        return answer("TemporaryFailure", format!("busy {n}"));
                    }
                }
                if key.starts_with("perm") {
                    return answer("PermanentFailure", "no way".into());
                }
                if key.starts_with("junk") {
                    return "this is not JSON".to_string();
                }
                if key.starts_with("slow") {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                let args = event["job"]["userArguments"].to_string();
                answer("Succeeded", format!("{} {bucket} {key} {args}", event["invocationSchemaVersion"].as_str().unwrap_or("")))
            }
        }),
    );
    // Hostile endpoints: an answer that never ends (no Content-Length), one that declares 7 MiB, and a redirect to
    // the good function above.
    let app = app
        .route(
            "/endless",
            post(|| async {
                let part = bytes::Bytes::from(vec![b' '; 64 * 1024]);
                let parts = futures::stream::repeat_with(move || Ok::<_, std::io::Error>(part.clone()));
                axum::body::Body::from_stream(parts)
            }),
        )
        .route("/declared", post(|| async { vec![b' '; 7 << 20] }))
        .route("/moved", post(|| async { (axum::http::StatusCode::TEMPORARY_REDIRECT, [("location", "/fn")], "") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/fn", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, temp_calls)
}

/// An answer past Lambda's 6 MB response limit, declared or not, fails its task without being read to its end; a
/// redirect is not followed (the configured URL is the function) and fails its task too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_answers_are_capped_and_redirects_not_followed() {
    let (url, _) = function_server().await;
    let at = |path: &str| url.replace("/fn", path);
    let functions = ["endless", "declared", "moved"]
        .map(|f| FunctionConfig { function: f.into(), url: at(&format!("/{f}")), timeout_ms: 10_000 })
        .to_vec();
    let h = Harness::with_config(EngineConfig { functions, ..config() }).await;
    for (function, message) in [
        ("endless", "Response payload size exceeded maximum allowed payload size (6291456 bytes)"),
        ("declared", "Response payload size exceeded maximum allowed payload size (6291456 bytes)"),
        ("moved", "answered 307 Temporary Redirect, a redirect to /fn; redirects are not followed"),
    ] {
        let op = json!({"LambdaInvoke": {"FunctionArn": format!("arn:aws:lambda:us-east-1:123456789012:function:{function}")}});
        let started = std::time::Instant::now();
        let (_, rows) = h.run(op, &[&["data", "ok"]]).await;
        assert!(rows.succeeded.is_empty(), "{function}: {rows:?}");
        assert_failed(&rows.failed[0], "200", "PermanentFailure", message);
        assert!(started.elapsed() < Duration::from_secs(8), "{function}: failed at the cap, not at the timeout");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_invoke() {
    let (url, temp_calls) = function_server().await;
    let functions = vec![FunctionConfig { function: "batchfn".into(), url, timeout_ms: 500 }];
    let h = Harness::with_config(EngineConfig { functions, ..config() }).await;
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:batchfn";

    let v1 = json!({"LambdaInvoke": {"FunctionArn": arn}});
    let lines: &[&[&str]] =
        &[&["data", "ok%20one"], &["data", "temp"], &["data", "perm"], &["data", "junk"], &["data", "slow"]];
    let (_, rows) = h.run(v1, lines).await;
    let ok = by_key(&rows.succeeded);
    let failed = by_key(&rows.failed);
    assert_eq!(ok["ok%20one"].result_message, "1.0 arn:aws:s3:::data ok%20one null", "{rows:?}");
    assert_eq!(ok["temp"].result_message, "1.0 arn:aws:s3:::data temp null", "retried until it succeeded");
    assert_eq!(temp_calls.load(Ordering::SeqCst), 3, "two temporary failures, then success");
    assert_failed(&failed["perm"], "200", "PermanentFailure", "no way");
    assert_failed(&failed["junk"], "200", "PermanentFailure", "this is not JSON");
    assert_failed(&failed["slow"], "200", "PermanentFailure", "timed out");
    assert_eq!(failed["perm"].result_message, "no way");

    let v2 = json!({"LambdaInvoke": {"FunctionArn": arn, "InvocationSchemaVersion": "2.0",
                                     "UserArguments": {"mode": "fast"}}});
    let (_, rows) = h.run(v2, &[&["data", "ok2"]]).await;
    assert_eq!(rows.succeeded[0].result_message, "2.0 data ok2 {\"mode\":\"fast\"}");
    assert_eq!((rows.succeeded[0].status.as_str(), rows.succeeded[0].http_status.as_str()), ("succeeded", "200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_store_copy_failures_carry_the_store_error() {
    let h = Harness::new().await;
    let big: Vec<u8> = vec![7u8; 9 * 1024 * 1024];
    h.put("data", "big", &big, PutOptions::default()).await;
    h.remote.set_faults(s3batch_storage::memory::Faults {
        error_rate: 1.0,
        error_code: "AccessDenied".into(),
        error_status: 403,
        only_ops: vec!["upload_part".into()],
        ..Default::default()
    });
    let op = json!({"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::remote"}});
    let (_, rows) = h.run(op, &[&["data", "big"]]).await;
    assert_failed(&rows.failed[0], "403", "AccessDenied", "injected fault in upload_part");
    assert!(h.remote.head_object(&ObjectRef::new("remote", "big")).await.is_err(), "no object was completed");
}
