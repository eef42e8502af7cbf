//! The conformance suite against [`S3Store`] talking to a real moto server (`python3 -m moto.server`), started as a
//! child process on a free port and killed when the test ends. If moto cannot be started the test fails: it is
//! never skipped.
//!
//! moto 5.2.1 answers CompleteMultipartUpload with the root element `CompleteMultipartUploadResponse` instead of
//! S3's `CompleteMultipartUploadResult` (getmoto/moto#10055, fixed in later releases), which the Rust SDK
//! refuses. [`MotoCompleteFix`] reads such an answer for the SDK, in these tests only: the backend itself speaks
//! S3's protocol.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::interceptors::{BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextMut};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use aws_smithy_runtime_api::client::interceptors::context::Output;
use bytes::Bytes;
use s3batch_storage::conformance::{self, Profile, rich_metadata};
use s3batch_storage::s3::S3Store;
use s3batch_storage::{
    ALL_USERS, AnnotationDirective, BackendKind, CopyRequest, DeleteKey, EventHold, EventHoldDuration, Grant, Grantee,
    Metadata, ObjectRef, ObjectStore, Permission, PutBody, PutOptions, RetentionMode, StorageConfig, Tag,
};

/// A moto server, killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind a free port").local_addr().unwrap().port()
}

/// Whether an HTTP server answers on the port.
fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).is_ok() && &buf == b"HTTP/"
}

fn start_moto() -> Moto {
    start_moto_with(&[])
}

/// A moto server with extra environment variables.
fn start_moto_with(env: &[(&str, &str)]) -> Moto {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("moto.log");
    let out = std::fs::File::create(&log).expect("moto log file");
    let err = out.try_clone().expect("moto log file");
    let port = free_port();
    let child = Command::new("python3")
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start moto: `python3 -m moto.server` failed to spawn ({e}); install it with `pip install 'moto[server]'`")
        });
    let mut moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}"), log, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if answers(port) {
            return moto;
        }
        if let Ok(Some(status)) = moto.child.try_wait() {
            let log = std::fs::read_to_string(&moto.log).unwrap_or_default();
            panic!("moto server exited with {status} before answering; is `moto[server]` installed?\n{log}");
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(&moto.log).unwrap_or_default();
            panic!("moto server did not answer on port {port} within 60 s\n{log}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn config(endpoint: &str) -> StorageConfig {
    StorageConfig {
        kind: BackendKind::S3,
        endpoint: Some(endpoint.to_string()),
        region: Some("us-east-1".into()),
        force_path_style: true,
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing".into()),
        root: None,
        ..StorageConfig::local("moto", "")
    }
}

/// Reads moto 5.2.1's CompleteMultipartUpload answer (root element `CompleteMultipartUploadResponse`) for the
/// SDK, which wants S3's `CompleteMultipartUploadResult`: a 200 whose body the SDK refused becomes the output,
/// with the ETag of the body and the version id of the header. Answers that parse are left alone.
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
        if !body.contains("<CompleteMultipartUploadResponse") {
            return Ok(());
        }
        if !matches!(ctx.output_or_error(), Some(Err(_))) {
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

/// A store for a moto server: the config's client, with the CompleteMultipartUpload fix and `more` interceptors.
fn moto_store(
    c: &StorageConfig,
    more: &[&dyn Fn(aws_sdk_s3::config::Builder) -> aws_sdk_s3::config::Builder],
) -> S3Store {
    let base = S3Store::from_config(c).expect("S3 config");
    let mut b = base.client().config().to_builder().interceptor(MotoCompleteFix);
    for f in more {
        b = f(b);
    }
    S3Store::from_client(aws_sdk_s3::Client::from_conf(b.build()))
        .with_multipart_sizes(c.multipart_threshold, c.multipart_part_size)
}

/// Records the headers of every request that names a copy source (CopyObject, UploadPartCopy).
#[derive(Debug, Clone, Default)]
struct CopyHeaders(Arc<Mutex<Vec<Headers>>>);

/// The headers of one request.
type Headers = Vec<(String, String)>;

fn header(h: &Headers, name: &str) -> Option<String> {
    h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
}

impl Intercept for CopyHeaders {
    fn name(&self) -> &'static str {
        "CopyHeaders"
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let headers = ctx.request().headers();
        if headers.get("x-amz-copy-source").is_some() {
            let all = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            self.0.lock().unwrap().push(all);
        }
        Ok(())
    }
}

/// Records the body of every PutObjectRetention request.
#[derive(Debug, Clone, Default)]
struct RetentionBodies(Arc<Mutex<Vec<String>>>);

impl Intercept for RetentionBodies {
    fn name(&self) -> &'static str {
        "RetentionBodies"
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let r = ctx.request();
        if r.method() == "PUT" && r.uri().contains("retention") {
            let body = r.body().bytes().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
            self.0.lock().unwrap().push(body);
        }
        Ok(())
    }
}

/// Records the method and URI of every request.
#[derive(Debug, Clone, Default)]
struct Requests(Arc<Mutex<Vec<(String, String)>>>);

impl Requests {
    fn take(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for Requests {
    fn name(&self) -> &'static str {
        "Requests"
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let r = ctx.request();
        self.0.lock().unwrap().push((r.method().to_string(), r.uri().to_string()));
        Ok(())
    }
}

/// Fails the UploadPartCopy of part 2 before it is sent.
#[derive(Debug, Clone, Default)]
struct FailPart2;

impl Intercept for FailPart2 {
    fn name(&self) -> &'static str {
        "FailPart2"
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let r = ctx.request();
        if r.headers().get("x-amz-copy-source").is_some() && r.uri().contains("partNumber=2&") {
            return Err("injected failure of part 2".into());
        }
        Ok(())
    }
}

async fn enable_versioning(store: &S3Store, bucket: &str) {
    store
        .client()
        .put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build())
        .send()
        .await
        .expect("enable versioning");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_against_moto() {
    let moto = start_moto();
    let store = moto_store(&config(&moto.endpoint), &[]);
    // moto refuses any versionId (even "null") in an unversioned bucket, which S3 accepts: the version checks run
    // in a versioned bucket, where they also see real version ids.
    for b in ["conf-versions", "conf-list-versions", "conf-delete-versions"] {
        store.create_bucket(b).await.unwrap();
        enable_versioning(&store, b).await;
    }
    // Object lock needs a bucket created with it (which turns versioning on).
    store
        .client()
        .create_bucket()
        .bucket("conf-object-lock")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("create a bucket with object lock");
    // moto 5 ignores x-amz-copy-source-if-(un)modified-since (checked below that the headers are sent), answers
    // a 500 to DeleteObjectTagging of a missing key and to PutObjectTagging of an empty tag set, has no
    // GetObjectRetention, keeps one grantee per x-amz-grant-* header and takes many invalid requests: see
    // `Profile::moto`.
    let signed_before = s3batch_storage::sigv4::signed_here();
    conformance::run_all(&store, &Profile::moto()).await;
    // s3batch's own signer signed the suite's requests (the SDK's signs only what it cannot; the signatures are the
    // same, so only this count tells).
    let signed = s3batch_storage::sigv4::signed_here() - signed_before;
    assert!(signed >= 200, "only {signed} requests of the conformance suite were signed by s3batch's signer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_specifics_against_moto() {
    let moto = start_moto();
    let seen = CopyHeaders::default();
    let requests = Requests::default();
    let bodies = RetentionBodies::default();
    let s = moto_store(
        &config(&moto.endpoint),
        &[&|b| b.interceptor(seen.clone()), &|b| b.interceptor(requests.clone()), &|b| b.interceptor(bodies.clone())],
    );
    assert_eq!(s.kind(), "s3");

    s.create_bucket("specifics").await.unwrap();
    s.put_object("specifics", "src", PutBody::Bytes(Bytes::from_static(b"x")), &PutOptions::default()).await.unwrap();

    // Copy preconditions are sent as HTTP dates.
    let mut c = CopyRequest::new(ObjectRef::new("specifics", "src"), "specifics", "dst");
    c.if_modified_since = Some(1_704_164_645_678);
    c.if_unmodified_since = Some(4_102_444_800_000);
    c.canned_acl = Some("bucket-owner-full-control".into());
    c.storage_class = Some("STANDARD_IA".into());
    s.copy_object(&c).await.unwrap();
    let headers = seen.0.lock().unwrap().pop().expect("the copy request was seen");
    let get = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    assert_eq!(get("x-amz-copy-source-if-modified-since").as_deref(), Some("Tue, 02 Jan 2024 03:04:05 GMT"));
    assert_eq!(get("x-amz-copy-source-if-unmodified-since").as_deref(), Some("Fri, 01 Jan 2100 00:00:00 GMT"));
    assert_eq!(get("x-amz-acl").as_deref(), Some("bucket-owner-full-control"));
    assert_eq!(get("x-amz-metadata-directive").as_deref(), Some("COPY"));
    assert_eq!(get("x-amz-tagging-directive").as_deref(), Some("COPY"));
    assert_eq!(get("x-amz-storage-class").as_deref(), Some("STANDARD_IA"));
    assert_eq!(get("x-amz-copy-source").as_deref(), Some("specifics/src"));

    // Every S3PutObjectCopy field is sent; with the default threshold, a copy is one request (no HEAD first).
    requests.take();
    let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let mut c = CopyRequest::new(ObjectRef::new("specifics", "src"), "specifics", "all-fields");
    c.grant_read = vec![Grantee::Group(ALL_USERS.into()).header_value(), "id=\"abc\"".into()];
    c.grant_read_acp = vec!["id=\"def\"".into()];
    c.grant_write_acp = vec!["emailAddress=\"a@example.com\"".into()];
    c.grant_full_control = vec!["id=\"owner\"".into()];
    c.sse_kms_key_id = Some(key.into());
    c.bucket_key_enabled = Some(true);
    c.checksum_algorithm = Some("CRC32C".into());
    c.requester_pays = true;
    c.website_redirect_location = Some("/elsewhere".into());
    c.replace_metadata = Some(Metadata { content_type: Some("text/csv".into()), ..Default::default() });
    c.tags = Some(vec![Tag::new("a b", "c+d")]);
    s.copy_object(&c).await.unwrap();
    let all = requests.take();
    assert_eq!(all.len(), 1, "one request: {all:?}");
    assert_eq!(all[0].0, "PUT");
    let h = seen.0.lock().unwrap().pop().expect("the copy request was seen");
    let get = |name: &str| header(&h, name);
    assert_eq!(get("x-amz-grant-read").as_deref(), Some(format!("uri=\"{ALL_USERS}\", id=\"abc\"").as_str()));
    assert_eq!(get("x-amz-grant-read-acp").as_deref(), Some("id=\"def\""));
    assert_eq!(get("x-amz-grant-write-acp").as_deref(), Some("emailAddress=\"a@example.com\""));
    assert_eq!(get("x-amz-grant-full-control").as_deref(), Some("id=\"owner\""));
    assert_eq!(get("x-amz-server-side-encryption").as_deref(), Some("aws:kms"), "a KMS key implies aws:kms");
    assert_eq!(get("x-amz-server-side-encryption-aws-kms-key-id").as_deref(), Some(key));
    assert_eq!(get("x-amz-server-side-encryption-bucket-key-enabled").as_deref(), Some("true"));
    assert_eq!(get("x-amz-checksum-algorithm").as_deref(), Some("CRC32C"));
    assert_eq!(get("x-amz-request-payer").as_deref(), Some("requester"));
    assert_eq!(get("x-amz-website-redirect-location").as_deref(), Some("/elsewhere"));
    assert_eq!(get("x-amz-metadata-directive").as_deref(), Some("REPLACE"));
    assert_eq!(get("content-type").as_deref(), Some("text/csv"));
    assert_eq!(get("x-amz-tagging").as_deref(), Some("a%20b=c%2Bd"));
    assert_eq!(get("content-md5"), None, "no Content-MD5 without object lock");
    let info = s.head_object(&ObjectRef::new("specifics", "all-fields")).await.unwrap();
    assert_eq!(info.website_redirect_location.as_deref(), Some("/elsewhere"));
    assert_eq!((info.server_side_encryption.as_deref(), info.sse_kms_key_id.as_deref()), (Some("aws:kms"), Some(key)));

    // Object lock headers come with the MD5 of the empty body (moto wants an integrity header).
    s.client().create_bucket().bucket("specifics-lock").object_lock_enabled_for_bucket(true).send().await.unwrap();
    let mut c = CopyRequest::new(ObjectRef::new("specifics", "src"), "specifics-lock", "locked");
    c.object_lock_mode = Some(RetentionMode::Compliance);
    c.object_lock_retain_until = Some(4_102_444_800_000);
    c.object_lock_legal_hold = Some(false);
    s.copy_object(&c).await.unwrap();
    let h = seen.0.lock().unwrap().pop().expect("the copy request was seen");
    assert_eq!(header(&h, "x-amz-object-lock-mode").as_deref(), Some("COMPLIANCE"));
    assert_eq!(header(&h, "x-amz-object-lock-retain-until-date").as_deref(), Some("2100-01-01T00:00:00Z"));
    assert_eq!(header(&h, "x-amz-object-lock-legal-hold").as_deref(), Some("OFF"));
    assert_eq!(header(&h, "content-md5").as_deref(), Some("1B2M2Y8AsgTpgAmY7PhCfg=="));
    let info = s.head_object(&ObjectRef::new("specifics-lock", "locked")).await.unwrap();
    assert_eq!(
        (info.object_lock_mode, info.object_lock_retain_until, info.object_lock_legal_hold),
        (Some(RetentionMode::Compliance), Some(4_102_444_800_000), Some(false))
    );
    // moto has no GetObjectRetention: it answers the object itself, which is an error here, never a retention.
    let e = s.get_object_retention(&ObjectRef::new("specifics-lock", "locked")).await.unwrap_err();
    assert!(!e.transient, "{e:?}");

    // The newest CopyObject members: an object lock event hold with its duration, and the annotation directive.
    let mut c = CopyRequest::new(ObjectRef::new("specifics", "src"), "specifics-lock", "event-held");
    c.object_lock_event_hold = Some(EventHold { on: true, duration: Some(EventHoldDuration::Days(30)) });
    c.annotation_directive = Some(AnnotationDirective::Exclude);
    s.copy_object(&c).await.unwrap();
    let h = seen.0.lock().unwrap().pop().expect("the copy request was seen");
    assert_eq!(header(&h, "x-amz-object-lock-event-hold").as_deref(), Some("ON"));
    assert_eq!(header(&h, "x-amz-object-lock-event-hold-duration-days").as_deref(), Some("30"));
    assert_eq!(header(&h, "x-amz-object-lock-event-hold-duration-years"), None);
    assert_eq!(header(&h, "x-amz-object-annotation-directive").as_deref(), Some("EXCLUDE"));
    assert_eq!(header(&h, "content-md5").as_deref(), Some("1B2M2Y8AsgTpgAmY7PhCfg=="), "an object lock header");

    // PutObjectRetention carries EventHold and EventHoldDuration in its body.
    let hold = EventHold { on: false, duration: Some(EventHoldDuration::Years(2)) };
    s.put_object_retention(&ObjectRef::new("specifics-lock", "event-held"), None, None, false, Some(hold))
        .await
        .unwrap();
    let body = bodies.0.lock().unwrap().pop().expect("the retention request was seen");
    assert!(body.contains("<EventHold>OFF</EventHold>"), "{body}");
    assert!(body.contains("<EventHoldDuration><Years>2</Years></EventHoldDuration>"), "{body}");

    // With the SDK's default checksums (streaming uploads in aws-chunked encoding) too.
    let mut c = config(&moto.endpoint);
    c.checksum_when_required = false;
    let plain = S3Store::from_config(&c).unwrap();
    let data = conformance::pattern(300_000, 5);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upload.bin");
    std::fs::write(&file, &data).unwrap();
    plain.put_object("specifics", "checksummed/file", PutBody::File(file), &PutOptions::default()).await.unwrap();
    plain
        .put_object("specifics", "checksummed/bytes", PutBody::Bytes(data.clone().into()), &PutOptions::default())
        .await
        .unwrap();
    for key in ["checksummed/file", "checksummed/bytes"] {
        let got = plain.get_object(&ObjectRef::new("specifics", key), None).await.unwrap();
        assert_eq!(got.info.etag, s3batch_storage::md5_hex(&data), "{key}");
        assert_eq!(got.bytes().await.unwrap().as_ref(), data.as_slice(), "{key}");
    }

    // Creating a bucket twice is fine; errors keep the store's code and status.
    s.create_bucket("specifics").await.unwrap();
    let e = s.head_object(&ObjectRef::new("specifics", "missing")).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.http_status, e.transient), ("NoSuchKey", 404, false));
    let e = s.list_objects("no-such-bucket-here", "", None, 10).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.http_status), ("NoSuchBucket", 404));
}

/// A copy above the threshold is a multipart upload of UploadPartCopy parts that carries what a single copy
/// would: metadata, content type, tags, storage class, ACL, encryption. moto enforces S3's 5 MiB minimum part
/// size: 5 MiB parts of an 11 MiB object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_copy_against_moto() {
    let moto = start_moto();
    let mut c = config(&moto.endpoint);
    c.multipart_threshold = 6 * 1024 * 1024;
    c.multipart_part_size = 5 * 1024 * 1024;
    let seen = CopyHeaders::default();
    let requests = Requests::default();
    let s = moto_store(&c, &[&|b| b.interceptor(seen.clone()), &|b| b.interceptor(requests.clone())]);
    for b in ["mp-src", "mp-dst"] {
        s.create_bucket(b).await.unwrap();
    }
    enable_versioning(&s, "mp-src").await;
    let data = conformance::pattern(11 * 1024 * 1024 + 12_345, 42);
    let src_tags = vec![Tag::new("origin", "source"), Tag::new("x", "y z")];
    let w = s
        .put_object(
            "mp-src",
            "big/object.bin",
            PutBody::Bytes(data.clone().into()),
            &PutOptions { metadata: rich_metadata(), tags: src_tags.clone() },
        )
        .await
        .unwrap();
    let src_version = w.version_id.clone().expect("a versioned bucket answers a version");
    let src = ObjectRef::new("mp-src", "big/object.bin");
    requests.take();

    // COPY metadata and tags; a storage class, a canned ACL, SSE-KMS.
    let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let mut req = CopyRequest::new(src.clone(), "mp-dst", "copied.bin");
    req.storage_class = Some("STANDARD_IA".into());
    req.canned_acl = Some("public-read".into());
    req.server_side_encryption = Some("aws:kms".into());
    req.sse_kms_key_id = Some(key.into());
    let w = s.copy_object(&req).await.unwrap();
    let reqs = requests.take();
    assert!(w.etag.as_deref().is_some_and(|e| e.ends_with("-3")), "multipart etag: {w:?}");
    let info = s.head_object(&ObjectRef::new("mp-dst", "copied.bin")).await.unwrap();
    assert_eq!(info.size, data.len() as u64);
    assert!(info.etag.ends_with("-3"), "{info:?}");
    assert_eq!(info.metadata, rich_metadata(), "metadata and content type copied");
    assert_eq!(info.storage_class.as_deref(), Some("STANDARD_IA"));
    assert_eq!((info.server_side_encryption.as_deref(), info.sse_kms_key_id.as_deref()), (Some("aws:kms"), Some(key)));
    let mut tags = s.get_object_tagging(&ObjectRef::new("mp-dst", "copied.bin")).await.unwrap();
    tags.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(tags, src_tags, "tags copied");
    let acl = s.get_object_acl(&ObjectRef::new("mp-dst", "copied.bin")).await.unwrap();
    assert!(
        acl.normalized_grants().contains(&Grant::new(Grantee::Group(ALL_USERS.into()), Permission::Read)),
        "public-read: {acl:?}"
    );
    let got = s.get_object(&ObjectRef::new("mp-dst", "copied.bin"), None).await.unwrap().bytes().await.unwrap();
    assert!(got.as_ref() == data.as_slice(), "copied bytes differ");

    // The requests: HEAD, the source's tags, create, three part copies, complete.
    let methods: Vec<&str> = reqs.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(methods, vec!["HEAD", "GET", "POST", "PUT", "PUT", "PUT", "POST"], "{reqs:#?}");
    assert!(reqs[1].1.contains("tagging"), "{reqs:#?}");
    assert!(reqs[2].1.contains("uploads"), "{reqs:#?}");
    let mut parts: Vec<Headers> = std::mem::take(&mut *seen.0.lock().unwrap());
    parts.sort_by_key(|h| header(h, "x-amz-copy-source-range"));
    let ranges: Vec<Option<String>> = parts.iter().map(|h| header(h, "x-amz-copy-source-range")).collect();
    let total = data.len() - 1;
    assert_eq!(
        ranges,
        vec![
            Some("bytes=0-5242879".to_string()),
            Some("bytes=10485760-".to_string() + &total.to_string()),
            Some("bytes=5242880-10485759".to_string()),
        ]
    );
    for h in &parts {
        assert_eq!(
            header(h, "x-amz-copy-source-if-match"),
            Some(format!("\"{}\"", crate_md5(&data))),
            "pinned to the ETag"
        );
        assert_eq!(
            header(h, "x-amz-copy-source"),
            Some(format!("mp-src/big/object.bin?versionId={src_version}")),
            "pinned to the version"
        );
    }
    let create = s.client().list_multipart_uploads().bucket("mp-dst").send().await.unwrap();
    assert!(create.uploads().is_empty(), "no upload left: {create:?}");

    // REPLACE metadata, explicit tags and grants, an object lock-free bucket.
    let mut req = CopyRequest::new(src.clone(), "mp-dst", "replaced.bin");
    req.replace_metadata = Some(Metadata { content_type: Some("application/x-big".into()), ..Default::default() });
    req.tags = Some(vec![Tag::new("new", "tag")]);
    req.grant_read = vec![Grantee::Group(ALL_USERS.into()).header_value()];
    req.server_side_encryption = Some("AES256".into());
    requests.take();
    s.copy_object(&req).await.unwrap();
    let reqs = requests.take();
    let info = s.head_object(&ObjectRef::new("mp-dst", "replaced.bin")).await.unwrap();
    assert_eq!(info.metadata, Metadata { content_type: Some("application/x-big".into()), ..Default::default() });
    assert_eq!(info.server_side_encryption.as_deref(), Some("AES256"));
    let tags = s.get_object_tagging(&ObjectRef::new("mp-dst", "replaced.bin")).await.unwrap();
    assert_eq!(tags, vec![Tag::new("new", "tag")]);
    let acl = s.get_object_acl(&ObjectRef::new("mp-dst", "replaced.bin")).await.unwrap();
    assert_eq!(acl.normalized_grants(), vec![Grant::new(Grantee::Group(ALL_USERS.into()), Permission::Read)]);
    assert!(!reqs.iter().any(|(m, u)| m == "GET" && u.contains("tagging")), "tags given: not read: {reqs:#?}");
    seen.0.lock().unwrap().clear();

    // Copy preconditions are checked against the HEAD: nothing is created.
    let mut req = CopyRequest::new(src.clone(), "mp-dst", "not-copied.bin");
    req.if_modified_since = Some(chrono::Utc::now().timestamp_millis() + 3_600_000);
    let e = s.copy_object(&req).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.http_status), ("PreconditionFailed", 412));
    // A missing source is NoSuchKey, a missing source bucket NoSuchBucket (from the HEAD).
    let e = s.copy_object(&CopyRequest::new(ObjectRef::new("mp-src", "nope"), "mp-dst", "x")).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.http_status), ("NoSuchKey", 404));
    let e = s.copy_object(&CopyRequest::new(ObjectRef::new("mp-nope", "nope"), "mp-dst", "x")).await.unwrap_err();
    assert_eq!(e.code, "NoSuchBucket");
    // Small sources are still one CopyObject, after the HEAD.
    s.put_object("mp-src", "small", PutBody::Bytes(Bytes::from_static(b"small")), &PutOptions::default())
        .await
        .unwrap();
    requests.take();
    s.copy_object(&CopyRequest::new(ObjectRef::new("mp-src", "small"), "mp-dst", "small")).await.unwrap();
    let methods: Vec<String> = requests.take().into_iter().map(|(m, _)| m).collect();
    assert_eq!(methods, vec!["HEAD", "PUT"]);

    // A part that fails aborts the upload: no upload is left, nothing is written.
    let failing = moto_store(&c, &[&|b| b.interceptor(FailPart2)]);
    let e = failing.copy_object(&CopyRequest::new(src.clone(), "mp-dst", "failed.bin")).await.unwrap_err();
    assert!(e.message.contains("injected failure of part 2"), "{e:?}");
    let uploads = s.client().list_multipart_uploads().bucket("mp-dst").send().await.unwrap();
    assert!(uploads.uploads().is_empty(), "the failed copy's upload was aborted: {uploads:?}");
    let e = s.head_object(&ObjectRef::new("mp-dst", "failed.bin")).await.unwrap_err();
    assert_eq!(e.code, "NoSuchKey");
}

fn crate_md5(data: &[u8]) -> String {
    s3batch_storage::md5_hex(data)
}

/// Many small parts, on a moto that takes parts under 5 MiB (`S3_UPLOAD_PART_MIN_SIZE`): the parts are copied a
/// few at a time and completed in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_parts_against_moto() {
    let moto = start_moto_with(&[("S3_UPLOAD_PART_MIN_SIZE", "1024")]);
    let s = moto_store(&config(&moto.endpoint), &[]).with_multipart_sizes(100_000, 64 * 1024);
    s.create_bucket("parts").await.unwrap();
    let data = conformance::pattern(1_000_000, 9);
    s.put_object("parts", "src", PutBody::Bytes(data.clone().into()), &PutOptions::default()).await.unwrap();
    let w = s.copy_object(&CopyRequest::new(ObjectRef::new("parts", "src"), "parts", "dst")).await.unwrap();
    assert!(w.etag.as_deref().is_some_and(|e| e.ends_with("-16")), "{w:?}");
    let got = s.get_object(&ObjectRef::new("parts", "dst"), None).await.unwrap().bytes().await.unwrap();
    assert!(got.as_ref() == data.as_slice(), "bytes of a 16-part copy differ");
    // Under the threshold: one CopyObject.
    s.put_object("parts", "small", PutBody::Bytes(data[..100_000].to_vec().into()), &PutOptions::default())
        .await
        .unwrap();
    let w = s.copy_object(&CopyRequest::new(ObjectRef::new("parts", "small"), "parts", "small-copy")).await.unwrap();
    assert_eq!(w.etag, Some(crate_md5(&data[..100_000])));
}

/// Plays a store without DeleteObjects: every DeleteObjects request is sent to a bucket that does not exist (so
/// moto deletes nothing) and its answer becomes `501 NotImplemented`. Counts the DeleteObjects requests.
#[derive(Debug, Clone, Default)]
struct NoDeleteObjects(Arc<std::sync::atomic::AtomicUsize>, Arc<std::sync::atomic::AtomicBool>);

impl Intercept for NoDeleteObjects {
    fn name(&self) -> &'static str {
        "NoDeleteObjects"
    }

    fn modify_before_transmit(
        &self,
        ctx: &mut aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let r = ctx.request_mut();
        if r.method() == "POST" && r.uri().contains("?delete") {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.1.store(true, std::sync::atomic::Ordering::Relaxed);
            let uri = r.uri().replacen("/nodelete/", "/nodelete-not-there/", 1).replacen(
                "/nodelete?",
                "/nodelete-not-there?",
                1,
            );
            r.set_uri(uri)?;
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        ctx: &mut aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let resp = ctx.response_mut();
        if resp.status().as_u16() == 404 && self.1.swap(false, std::sync::atomic::Ordering::Relaxed) {
            *resp.status_mut() = 501u16.try_into()?;
            *resp.body_mut() = aws_smithy_types::body::SdkBody::from(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NotImplemented</Code>\
                 <Message>DeleteObjects is not implemented</Message></Error>",
            );
        }
        Ok(())
    }
}

/// A store that answers `NotImplemented` to DeleteObjects: the batch is done as single deletes, each key's result
/// in place, and later batches go straight to single deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_objects_falls_back_to_single_deletes() {
    let moto = start_moto();
    let plain = moto_store(&config(&moto.endpoint), &[]);
    plain.create_bucket("nodelete").await.unwrap();
    for k in ["a", "b", "c", "keep"] {
        plain
            .put_object("nodelete", k, PutBody::Bytes(Bytes::from_static(b"x")), &PutOptions::default())
            .await
            .unwrap();
    }
    let seen = NoDeleteObjects::default();
    let s = {
        let seen = seen.clone();
        moto_store(&config(&moto.endpoint), &[&move |b| b.interceptor(seen.clone())])
    };
    let keys: Vec<DeleteKey> = ["a", "missing", "b"].iter().map(|k| DeleteKey::new(*k, None)).collect();
    let answers = s.delete_objects("nodelete", &keys).await.expect("answered by single deletes");
    assert_eq!(answers.len(), 3);
    assert!(answers.iter().all(|a| a.is_ok()), "{answers:?}");
    assert_eq!(seen.0.load(std::sync::atomic::Ordering::Relaxed), 1, "DeleteObjects was tried once");
    let answers = s.delete_objects("nodelete", &[DeleteKey::new("c", None)]).await.unwrap();
    assert!(answers[0].is_ok(), "{answers:?}");
    assert_eq!(seen.0.load(std::sync::atomic::Ordering::Relaxed), 1, "and not again");
    let left: Vec<String> =
        plain.list_objects("nodelete", "", None, 10).await.unwrap().objects.into_iter().map(|o| o.key).collect();
    assert_eq!(left, ["keep"]);
}
