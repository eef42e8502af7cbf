//! Every operation run as a job by a real engine against a real moto server (`python3 -m moto.server`, started as
//! a child process on a free port, killed at the end), the results read back with the storage API. A missing
//! moto fails the test: it is never skipped.
//!
//! Buckets `data` (versioned), `lock` (object lock), `copies`, `manifests` and `reports` are on moto; `remote`
//! is a memory store, so that copies between backends run both ways (moto → memory, memory → moto multipart).
//!
//! moto 5.2.1 answers CompleteMultipartUpload with a misnamed root element (getmoto/moto#10055); [`MotoCompleteFix`]
//! reads it for the SDK, as in `s3batch-storage/tests/s3_moto.rs`. moto has no GetObjectRetention (retention is
//! read back with HEAD) and answers a 500 to PutObjectTagging of an empty set.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_s3::config::interceptors::FinalizerInterceptorContextMut;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use aws_smithy_runtime_api::client::interceptors::context::Output;
use bytes::Bytes;
use s3batch_core::Tag;
use s3batch_engine::service::JobService;
use s3batch_engine::{CancellationToken, Engine, EngineConfig};
use s3batch_storage::memory::MemoryStore;
use s3batch_storage::s3::S3Store;
use s3batch_storage::{
    ALL_USERS, BackendKind, CopyRequest, Grant, Grantee, Metadata, ObjectRef, ObjectStore, Permission, PutBody,
    PutOptions, RetentionMode, Router, StorageConfig,
};
use s3batch_store::sqlite::SqliteStore;
use serde_json::{Value, json};

mod common;
mod peers;

use common::Rows;
use peers::{Moto, start_moto};

const TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------------------------
// moto

/// Reads moto 5.2.1's CompleteMultipartUpload answer (`CompleteMultipartUploadResponse`) for the SDK.
#[derive(Debug, Clone, Default)]
struct MotoCompleteFix;

impl Intercept for MotoCompleteFix {
    fn name(&self) -> &'static str {
        "MotoCompleteFix"
    }

    fn modify_before_attempt_completion(
        &self,
        ctx: &mut FinalizerInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(resp) = ctx.response() else { return Ok(()) };
        if resp.status().as_u16() != 200 {
            return Ok(());
        }
        let Some(body) = resp.body().bytes().map(|b| String::from_utf8_lossy(b).to_string()) else { return Ok(()) };
        if !body.contains("<CompleteMultipartUploadResponse") || !matches!(ctx.output_or_error(), Some(Err(_))) {
            return Ok(());
        }
        let element = |name: &str| {
            let start = body.find(&format!("<{name}>"))? + name.len() + 2;
            let end = body[start..].find(&format!("</{name}>"))? + start;
            Some(body[start..end].replace("&quot;", "\""))
        };
        let version = resp.headers().get("x-amz-version-id").map(str::to_string);
        let out = CompleteMultipartUploadOutput::builder()
            .set_e_tag(element("ETag"))
            .set_bucket(element("Bucket"))
            .set_key(element("Key"))
            .set_version_id(version)
            .build();
        if let Some(slot) = ctx.output_or_error_mut() {
            *slot = Ok(Output::erase(out));
        }
        Ok(())
    }
}

fn moto_store(endpoint: &str) -> S3Store {
    let c = StorageConfig {
        kind: BackendKind::S3,
        endpoint: Some(endpoint.to_string()),
        region: Some("us-east-1".into()),
        force_path_style: true,
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing".into()),
        root: None,
        ..StorageConfig::local("moto", "")
    };
    let base = S3Store::from_config(&c).expect("S3 config");
    let b = base.client().config().to_builder().interceptor(MotoCompleteFix);
    S3Store::from_client(aws_sdk_s3::Client::from_conf(b.build()))
        .with_multipart_sizes(c.multipart_threshold, c.multipart_part_size)
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
    async fn new(moto: &Moto) -> Harness {
        let s3 = moto_store(&moto.endpoint);
        for b in ["data", "copies", "manifests", "reports"] {
            s3.create_bucket(b).await.unwrap();
        }
        s3.client()
            .put_bucket_versioning()
            .bucket("data")
            .versioning_configuration(
                VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build(),
            )
            .send()
            .await
            .expect("enable versioning");
        s3.client().create_bucket().bucket("lock").object_lock_enabled_for_bucket(true).send().await.unwrap();
        let remote = MemoryStore::new();
        remote.create_bucket("remote").await.unwrap();

        let mut router = Router::default();
        router.add("remote", vec!["remote".into()], Arc::new(remote.clone()));
        router.add("moto", vec!["*".into()], Arc::new(s3.clone()));
        let cfg = EngineConfig {
            tick_ms: 20,
            lease_ms: 2000,
            backoff_base_ms: 1,
            backoff_max_ms: 5,
            replication: BTreeMap::from([("data".to_string(), "remote".to_string())]),
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("jobs.db")).await.unwrap());
        let engine = Engine::new(store.clone(), Arc::new(router), cfg);
        let token = CancellationToken::new();
        tokio::spawn(engine.clone().run(token.clone()));
        let service = JobService::new(store, engine.wake.clone(), 90);
        Harness { _dir: dir, s3, remote, service, token, manifests: AtomicUsize::new(0) }
    }

    async fn put(&self, bucket: &str, key: &str, body: &[u8], opts: PutOptions) -> Option<String> {
        let body = PutBody::Bytes(Bytes::copy_from_slice(body));
        self.s3.put_object(bucket, key, body, &opts).await.unwrap().version_id
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

fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
    pairs.iter().map(|(k, v)| Tag::new(*k, *v)).collect()
}

/// One succeeded row for this line, and no failures.
fn assert_ok(rows: &Rows, bucket: &str, key: &str, version: &str) {
    assert!(rows.failed.is_empty(), "{rows:?}");
    assert_eq!(rows.succeeded.len(), 1, "{rows:?}");
    let r = &rows.succeeded[0];
    let got = (r.bucket.as_str(), r.key.as_str(), r.version_id.as_str(), r.status.as_str(), r.http_status.as_str());
    assert_eq!(got, (bucket, key, version, "succeeded", "200"), "{r:?}");
    assert_eq!((r.error_code.as_str(), r.result_message.as_str()), ("", "Successful"), "{r:?}");
}

// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_against_moto() {
    let moto = start_moto();
    let h = Harness::new(&moto).await;
    let obj = |b: &str, k: &str| ObjectRef::new(b, k);

    // --- tagging: put, add, remove, delete; a missing key is moto's NoSuchKey.
    let v1 = h.put("data", "t", b"tagged", PutOptions { tags: tags(&[("a", "1")]), ..Default::default() }).await;
    let v1 = v1.expect("a version id in a versioned bucket");
    let rows =
        h.run(json!({"S3PutObjectTagging": {"TagSet": [{"Key": "p", "Value": "1"}]}}), &[&["data", "t", &v1]]).await;
    assert_ok(&rows, "data", "t", &v1);
    let rows = h
        .run(
            json!({"S3AddObjectTagging": {"TagSet": [{"Key": "q", "Value": "2"}, {"Key": "p", "Value": "3"}]}}),
            &[&["data", "t"]],
        )
        .await;
    assert_ok(&rows, "data", "t", "");
    assert_eq!(h.s3.get_object_tagging(&obj("data", "t")).await.unwrap(), tags(&[("p", "3"), ("q", "2")]));
    let rows = h.run(json!({"S3RemoveObjectTagging": {"TagKeys": ["p"]}}), &[&["data", "t"], &["data", "nope"]]).await;
    assert_eq!(h.s3.get_object_tagging(&obj("data", "t")).await.unwrap(), tags(&[("q", "2")]));
    assert_eq!(rows.succeeded.len(), 1, "{rows:?}");
    let f = &rows.failed[0];
    assert_eq!(
        (f.key.as_str(), f.status.as_str(), f.http_status.as_str(), f.error_code.as_str()),
        ("nope", "failed", "404", "NoSuchKey")
    );
    let rows = h.run(json!({"S3DeleteObjectTagging": {}}), &[&["data", "t"]]).await;
    assert_ok(&rows, "data", "t", "");
    assert!(h.s3.get_object_tagging(&obj("data", "t")).await.unwrap().is_empty());

    // --- copy with every field moto keeps.
    let meta = Metadata { content_type: Some("text/plain".into()), ..Default::default() };
    h.put("data", "c", b"copy me", PutOptions { metadata: meta, tags: tags(&[("src", "1")]) }).await;
    let op = json!({"S3PutObjectCopy": {
        "TargetResource": "arn:aws:s3:::copies", "TargetKeyPrefix": "out/",
        "MetadataDirective": "REPLACE",
        "NewObjectMetadata": {"ContentType": "application/x-copied", "ContentLanguage": "fr",
                              "HttpExpiresDate": "2030-03-17T17:46:40Z", "UserMetadata": {"by": "batch"}},
        "NewObjectTagging": [{"Key": "copied", "Value": "yes"}],
        "AccessControlGrants": [{"Grantee": {"TypeIdentifier": "uri", "Identifier": ALL_USERS}, "Permission": "READ"}],
        "StorageClass": "STANDARD_IA", "RedirectLocation": "/moved", "ChecksumAlgorithm": "CRC32"}});
    let rows = h.run(op, &[&["data", "c"]]).await;
    assert_ok(&rows, "data", "c", "");
    let dst = obj("copies", "out/c");
    assert_eq!(h.get("copies", "out/c").await, "copy me");
    let info = h.s3.head_object(&dst).await.unwrap();
    assert_eq!(info.metadata.content_type.as_deref(), Some("application/x-copied"));
    assert_eq!(info.metadata.content_language.as_deref(), Some("fr"));
    assert_eq!(info.metadata.expires, Some(1_900_000_000_000), "HttpExpiresDate");
    assert_eq!(info.metadata.user.get("by").map(String::as_str), Some("batch"));
    assert_eq!(info.storage_class.as_deref(), Some("STANDARD_IA"));
    assert_eq!(info.website_redirect_location.as_deref(), Some("/moved"));
    assert_eq!(h.s3.get_object_tagging(&dst).await.unwrap(), tags(&[("copied", "yes")]));
    let acl = h.s3.get_object_acl(&dst).await.unwrap().normalized_grants();
    assert!(acl.contains(&Grant::new(Grantee::Group(ALL_USERS.into()), Permission::Read)), "{acl:?}");
    let listed = h.s3.list_objects("copies", "out/c", None, 10).await.unwrap();
    assert_eq!(listed.objects[0].checksum_algorithm.as_deref(), Some("CRC32"), "{listed:?}");

    // --- copy into an object lock bucket: mode, retain-until, legal hold.
    let until = "2099-01-01T00:00:00Z";
    let op = json!({"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::lock", "ObjectLockMode": "GOVERNANCE",
        "ObjectLockRetainUntilDate": until, "ObjectLockLegalHoldStatus": "ON"}});
    let rows = h.run(op, &[&["data", "c"]]).await;
    assert_ok(&rows, "data", "c", "");
    let info = h.s3.head_object(&obj("lock", "c")).await.unwrap();
    assert_eq!(info.object_lock_mode, Some(RetentionMode::Governance));
    assert_eq!(info.object_lock_retain_until, s3batch_core::time::parse_iso(until));
    assert_eq!(info.object_lock_legal_hold, Some(true));

    // --- ACL.
    h.put("data", "acl", b"x", PutOptions::default()).await;
    let op = json!({"S3PutObjectAcl": {"AccessControlPolicy": {"CannedAccessControlList": "public-read"}}});
    assert_ok(&h.run(op, &[&["data", "acl"]]).await, "data", "acl", "");
    let acl = h.s3.get_object_acl(&obj("data", "acl")).await.unwrap().normalized_grants();
    assert!(acl.contains(&Grant::new(Grantee::Group(ALL_USERS.into()), Permission::Read)), "{acl:?}");

    // --- legal hold and retention on an object lock bucket.
    h.put("lock", "l", b"locked", PutOptions::default()).await;
    let l = obj("lock", "l");
    let rows = h.run(json!({"S3PutObjectLegalHold": {"LegalHold": {"Status": "ON"}}}), &[&["lock", "l"]]).await;
    assert_ok(&rows, "lock", "l", "");
    assert!(h.s3.get_object_legal_hold(&l).await.unwrap());
    let rows = h.run(json!({"S3PutObjectLegalHold": {"LegalHold": {"Status": "OFF"}}}), &[&["lock", "l"]]).await;
    assert_ok(&rows, "lock", "l", "");
    assert!(!h.s3.get_object_legal_hold(&l).await.unwrap());
    let op = json!({"S3PutObjectRetention": {"Retention": {"Mode": "GOVERNANCE", "RetainUntilDate": until}}});
    assert_ok(&h.run(op, &[&["lock", "l"]]).await, "lock", "l", "");
    let info = h.s3.head_object(&l).await.unwrap();
    assert_eq!(
        (info.object_lock_mode, info.object_lock_retain_until),
        (Some(RetentionMode::Governance), s3batch_core::time::parse_iso(until))
    );

    // --- restore of a GLACIER object.
    let mut req = CopyRequest::new(obj("data", "c"), "copies", "cold");
    req.storage_class = Some("GLACIER".into());
    h.s3.copy_object(&req).await.unwrap();
    let op = json!({"S3InitiateRestoreObject": {"ExpirationInDays": 2, "GlacierJobTier": "STANDARD"}});
    assert_ok(&h.run(op, &[&["copies", "cold"]]).await, "copies", "cold", "");
    let info = h.s3.head_object(&obj("copies", "cold")).await.unwrap();
    assert!(info.restore_status().is_some(), "a restore status: {info:?}");

    // --- checksum.
    h.put("data", "sum", b"123456789", PutOptions::default()).await;
    let rows = h.run(json!({"S3ComputeObjectChecksum": {"ChecksumAlgorithm": "CRC32"}}), &[&["data", "sum"]]).await;
    let v: Value = serde_json::from_str(&rows.succeeded[0].result_message).unwrap();
    assert_eq!(v["checksum_hex"], "CBF43926");

    // --- replication to another backend (moto → memory), keeping metadata and tags.
    let meta = Metadata { cache_control: Some("max-age=1".into()), ..Default::default() };
    h.put("data", "rep", b"replicated", PutOptions { metadata: meta.clone(), tags: tags(&[("r", "1")]) }).await;
    assert_ok(&h.run(json!({"S3ReplicateObject": {}}), &[&["data", "rep"]]).await, "data", "rep", "");
    let replica = obj("remote", "rep");
    let got = h.remote.get_object(&replica, None).await.unwrap();
    assert_eq!(got.info.metadata.cache_control.as_deref(), Some("max-age=1"));
    assert_eq!(got.bytes().await.unwrap(), "replicated");
    assert_eq!(h.remote.get_object_tagging(&replica).await.unwrap(), tags(&[("r", "1")]));

    // --- a large copy from the memory backend into moto: a streamed multipart upload.
    let big: Vec<u8> = (0..(17 * 1024 * 1024)).map(|i: usize| (i % 241) as u8).collect();
    let big_meta = Metadata { content_type: Some("application/x-big".into()), ..Default::default() };
    let opts = PutOptions { metadata: big_meta, tags: tags(&[("size", "big")]) };
    h.remote.put_object("remote", "big", PutBody::Bytes(big.clone().into()), &opts).await.unwrap();
    let op = json!({"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::copies"}});
    assert_ok(&h.run(op, &[&["remote", "big"]]).await, "remote", "big", "");
    let info = h.s3.head_object(&obj("copies", "big")).await.unwrap();
    assert!(info.etag.ends_with("-3"), "three parts: {}", info.etag);
    assert_eq!(info.metadata.content_type.as_deref(), Some("application/x-big"));
    assert!(h.get("copies", "big").await == big, "the large object's bytes");
    assert_eq!(h.s3.get_object_tagging(&obj("copies", "big")).await.unwrap(), tags(&[("size", "big")]));

    // --- encryption update: SSE-KMS in place, metadata, tags and ACL kept.
    let meta = Metadata { content_type: Some("image/gif".into()), ..Default::default() };
    h.put("copies", "enc", b"secret", PutOptions { metadata: meta, tags: tags(&[("e", "1")]) }).await;
    let enc = obj("copies", "enc");
    h.s3.put_object_acl(&enc, &s3batch_storage::Acl::Canned("public-read".into())).await.unwrap();
    let kms = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let op = json!({"S3UpdateObjectEncryption": {"ObjectEncryption": {"SSE-KMS": {"KMSKeyArn": kms}}}});
    assert_ok(&h.run(op.clone(), &[&["copies", "enc"]]).await, "copies", "enc", "");
    let info = h.s3.head_object(&enc).await.unwrap();
    assert_eq!(info.server_side_encryption.as_deref(), Some("aws:kms"), "{info:?}");
    assert_eq!(info.sse_kms_key_id.as_deref(), Some(kms));
    assert_eq!(info.metadata.content_type.as_deref(), Some("image/gif"));
    assert_eq!(h.s3.get_object_tagging(&enc).await.unwrap(), tags(&[("e", "1")]));
    let acl = h.s3.get_object_acl(&enc).await.unwrap().normalized_grants();
    assert!(acl.contains(&Grant::new(Grantee::Group(ALL_USERS.into()), Permission::Read)), "{acl:?}");
    assert_eq!(h.get("copies", "enc").await, "secret");
    // A non-current version is refused (re-encrypting it by a copy would make it current again).
    let old = h.put("data", "enc", b"old", PutOptions::default()).await.unwrap();
    let current = h.put("data", "enc", b"new", PutOptions::default()).await.unwrap();
    let rows = h.run(op.clone(), &[&["data", "enc", &old], &["data", "enc", &current]]).await;
    assert_eq!(rows.succeeded.len(), 1, "{rows:?}");
    assert_eq!(rows.succeeded[0].version_id, current);
    let f = &rows.failed[0];
    assert_eq!(
        (f.version_id.as_str(), f.http_status.as_str(), f.error_code.as_str()),
        (old.as_str(), "400", "InvalidRequest")
    );
    assert!(f.result_message.contains("non-current version"), "{f:?}");
    assert_eq!(h.get("data", "enc").await, "new", "the current version is still the newest content");

    // --- delete with every non-current version, in the versioned bucket.
    for body in [&b"1"[..], b"2", b"3"] {
        h.put("data", "del", body, PutOptions::default()).await;
    }
    h.put("data", "del/other", b"keep", PutOptions::default()).await;
    let op = json!({"S3DeleteObject": {"DeleteNoncurrentVersions": true}});
    assert_ok(&h.run(op, &[&["data", "del"]]).await, "data", "del", "");
    let page = h.s3.list_object_versions("data", "del", None, None, 100).await.unwrap();
    let left: Vec<_> = page.versions.iter().filter(|v| v.key == "del").collect();
    assert_eq!(left.len(), 1, "only the delete marker is left: {page:?}");
    assert!(left[0].delete_marker && left[0].is_latest, "{left:?}");
    assert!(page.versions.iter().any(|v| v.key == "del/other"), "{page:?}");

    // --- batch deletes (DeleteObjects) in the versioned bucket: a version id deletes that version only.
    let a1 = h.put("data", "vd/a", b"a1", PutOptions::default()).await.unwrap();
    h.put("data", "vd/a", b"a2", PutOptions::default()).await.unwrap();
    let b1 = h.put("data", "vd/b", b"b1", PutOptions::default()).await.unwrap();
    h.put("data", "vd/c", b"c1", PutOptions::default()).await.unwrap();
    h.put("data", "vd/keep", b"keep", PutOptions::default()).await.unwrap();
    let rows = h.run(json!({"S3DeleteObject": {}}), &[&["data", "vd/a", &a1], &["data", "vd/b", &b1]]).await;
    assert!(rows.failed.is_empty(), "{rows:?}");
    let mut got: Vec<(&str, &str, &str)> =
        rows.succeeded.iter().map(|r| (r.key.as_str(), r.version_id.as_str(), r.result_message.as_str())).collect();
    got.sort();
    assert_eq!(got, [("vd/a", a1.as_str(), "Successful"), ("vd/b", b1.as_str(), "Successful")]);
    assert_eq!(h.get("data", "vd/a").await, "a2", "the current version stays");
    let page = h.s3.list_object_versions("data", "vd/", None, None, 100).await.unwrap();
    let versions: Vec<(&str, bool)> = page.versions.iter().map(|v| (v.key.as_str(), v.delete_marker)).collect();
    assert_eq!(versions, [("vd/a", false), ("vd/c", false), ("vd/keep", false)], "{page:?}");
    // Without version ids: a delete marker each, and a missing key is deleted too.
    let rows = h.run(json!({"S3DeleteObject": {}}), &[&["data", "vd/c"], &["data", "vd/never-written"]]).await;
    assert!(rows.failed.is_empty(), "{rows:?}");
    assert_eq!(rows.succeeded.len(), 2, "{rows:?}");
    assert_eq!(h.s3.head_object(&obj("data", "vd/c")).await.unwrap_err().http_status, 404);
    assert_eq!(h.get("data", "vd/keep").await, "keep");
    assert_eq!(h.get("data", "vd/a").await, "a2");
}
