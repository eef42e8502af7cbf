//! The conformance suite against [`S3Store`] talking to a real moto server (`python3 -m moto.server`), started as a
//! child process on a free port and killed when the test ends. If moto cannot be started the test fails: it is
//! never skipped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use bytes::Bytes;
use s3batch_storage::conformance::{self, Profile};
use s3batch_storage::s3::S3Store;
use s3batch_storage::{BackendKind, CopyRequest, ObjectRef, ObjectStore, PutBody, PutOptions, StorageConfig};

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
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("moto.log");
    let out = std::fs::File::create(&log).expect("moto log file");
    let err = out.try_clone().expect("moto log file");
    let port = free_port();
    let child = Command::new("python3")
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
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

/// Records the headers of every CopyObject request.
#[derive(Debug, Clone, Default)]
struct CopyHeaders(Arc<Mutex<Vec<Headers>>>);

/// The headers of one request.
type Headers = Vec<(String, String)>;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_against_moto() {
    let moto = start_moto();
    let store = S3Store::from_config(&config(&moto.endpoint)).expect("S3 config");
    // moto refuses any versionId (even "null") in an unversioned bucket, which S3 accepts: the version checks run
    // in a versioned bucket, where they also see real version ids.
    store.create_bucket("conf-versions").await.unwrap();
    store
        .client()
        .put_bucket_versioning()
        .bucket("conf-versions")
        .versioning_configuration(VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build())
        .send()
        .await
        .expect("enable versioning");
    // moto 5 ignores x-amz-copy-source-if-(un)modified-since (checked below that the headers are sent) and answers
    // a 500 to DeleteObjectTagging of a missing key and to PutObjectTagging of an empty tag set.
    conformance::run_all(&store, &Profile::moto()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_specifics_against_moto() {
    let moto = start_moto();
    let base = S3Store::from_config(&config(&moto.endpoint)).expect("S3 config");
    let seen = CopyHeaders::default();
    let client = aws_sdk_s3::Client::from_conf(base.client().config().to_builder().interceptor(seen.clone()).build());
    let s = S3Store::from_client(client);
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
