//! # s3batch-storage
//!
//! The narrow [`ObjectStore`] trait that the engine runs tasks against, and its backends:
//!
//! - [`s3::S3Store`]: any S3-compatible store through the official `aws-sdk-s3` (AWS, MinIO, Ceph, Garage, …);
//! - [`local::LocalStore`]: a directory whose sub-directories are buckets (`<root>/<bucket>/<key>`), with tags and
//!   metadata kept in sidecar files so they survive restarts; the embedded default;
//! - [`memory::MemoryStore`]: in memory, with injectable faults (error rate by code, latency, connection resets),
//!   for engine tests and benchmarks.
//!
//! Keys pass through byte for byte: nothing is normalised. [`Router`] sends each bucket to its backend, from config.
//! Every failure is a [`StorageError`] carrying the store's own error code and HTTP status, classified once as
//! transient (retry) or permanent (report it).

mod common;
pub mod config;
/// A backend-neutral test suite every [`ObjectStore`] must pass: test support, compiled for this crate's tests and
/// with the `conformance` feature (which the crate's own integration tests turn on through a dev-dependency).
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod local;
pub mod memory;
pub mod router;
pub mod s3;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::Range;
use std::path::PathBuf;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

pub use config::{BackendKind, StorageConfig};
pub use router::Router;
pub use s3batch_core::Tag;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// What a storage call answered when it did not succeed: the store's error code (`NoSuchKey`, `AccessDenied`,
/// `SlowDown`, `NotImplemented`, …), the HTTP status, a message, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} ({http_status}): {message}")]
pub struct StorageError {
    pub code: String,
    pub http_status: u16,
    pub message: String,
    /// Throttling, 5xx, timeouts and connection resets are transient; everything else is permanent.
    pub transient: bool,
}

impl StorageError {
    /// An error classified from its code and status: the one place that decides what is worth a retry.
    pub fn new(code: impl Into<String>, http_status: u16, message: impl Into<String>) -> Self {
        let code = code.into();
        let transient = is_transient(&code, http_status);
        StorageError { code, http_status, message: message.into(), transient }
    }

    /// `NoSuchKey`, 404.
    pub fn no_such_key() -> Self {
        StorageError::new("NoSuchKey", 404, "The specified key does not exist.")
    }

    /// `NoSuchVersion`, 404.
    pub fn no_such_version() -> Self {
        StorageError::new("NoSuchVersion", 404, "The specified version does not exist.")
    }

    /// `NoSuchBucket`, 404.
    pub fn no_such_bucket(bucket: &str) -> Self {
        StorageError::new("NoSuchBucket", 404, format!("The specified bucket does not exist: {bucket}"))
    }

    /// `NotImplemented`, 501: the backend cannot do this, as a real store would answer.
    pub fn not_implemented(what: &str, backend: &str) -> Self {
        StorageError::new("NotImplemented", 501, format!("{what} is not implemented by the {backend} backend"))
    }

    /// A connection that broke before an answer came: transient.
    pub fn connection(message: impl Into<String>) -> Self {
        StorageError { code: "ConnectionReset".into(), http_status: 0, message: message.into(), transient: true }
    }

    /// `InternalError`, 500, for local I/O failures.
    pub fn io(e: &std::io::Error) -> Self {
        StorageError::new("InternalError", 500, e.to_string())
    }
}

/// Throttling and server-side trouble are worth another try; client errors are not.
pub fn is_transient(code: &str, http_status: u16) -> bool {
    matches!(
        code,
        "SlowDown"
            | "Throttling"
            | "ThrottlingException"
            | "RequestTimeout"
            | "RequestTimeTooSkewed"
            | "InternalError"
            | "ServiceUnavailable"
            | "TooManyRequests"
            | "ConnectionReset"
            | "Timeout"
    ) || http_status == 429
        || (http_status >= 500 && http_status != 501)
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// One object (or one version of it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
}

impl ObjectRef {
    pub fn new(bucket: impl Into<String>, key: impl Into<String>) -> Self {
        ObjectRef { bucket: bucket.into(), key: key.into(), version_id: None }
    }
    pub fn with_version(mut self, v: Option<String>) -> Self {
        self.version_id = v;
        self
    }
}

/// System and user metadata of an object.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Metadata {
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    /// `x-amz-meta-*`, names without the prefix.
    pub user: BTreeMap<String, String>,
}

/// What HEAD tells about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    /// Without quotes.
    pub etag: String,
    pub last_modified: Millis,
    pub version_id: Option<String>,
    pub storage_class: Option<String>,
    pub metadata: Metadata,
}

/// A GET: the object's info and its bytes as a stream.
pub struct GetResult {
    pub info: ObjectInfo,
    pub body: BoxStream<'static, Result<Bytes>>,
}

impl Debug for GetResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetResult").field("info", &self.info).finish_non_exhaustive()
    }
}

impl GetResult {
    /// Read the whole body into memory (for small objects: manifests' chunks, test read-backs).
    pub async fn bytes(self) -> Result<Bytes> {
        use futures::TryStreamExt;
        let parts: Vec<Bytes> = self.body.try_collect().await?;
        Ok(parts.concat().into())
    }
}

/// What to upload.
#[derive(Debug, Clone)]
pub enum PutBody {
    Bytes(Bytes),
    /// A local file, streamed (reports are written to a temporary file first, never held in memory).
    File(PathBuf),
}

/// Options of a PUT.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub metadata: Metadata,
    pub tags: Vec<Tag>,
}

/// A server-side copy (same backend). Cross-store copies are the engine's business.
#[derive(Debug, Clone)]
pub struct CopyRequest {
    pub source: ObjectRef,
    pub dest_bucket: String,
    pub dest_key: String,
    /// `None`: copy the source's metadata (`COPY`). `Some`: replace it (`REPLACE`).
    pub replace_metadata: Option<Metadata>,
    /// `None`: copy the source's tags. `Some(empty)`: no tags.
    pub tags: Option<Vec<Tag>>,
    pub storage_class: Option<String>,
    pub canned_acl: Option<String>,
    /// Copy only if the source changed after this time (else `PreconditionFailed`, 412).
    pub if_modified_since: Option<Millis>,
    /// Copy only if the source did not change after this time (else `PreconditionFailed`, 412).
    pub if_unmodified_since: Option<Millis>,
}

impl CopyRequest {
    pub fn new(source: ObjectRef, dest_bucket: impl Into<String>, dest_key: impl Into<String>) -> Self {
        CopyRequest {
            source,
            dest_bucket: dest_bucket.into(),
            dest_key: dest_key.into(),
            replace_metadata: None,
            tags: None,
            storage_class: None,
            canned_acl: None,
            if_modified_since: None,
            if_unmodified_since: None,
        }
    }
}

/// What a write answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteResult {
    pub version_id: Option<String>,
    pub etag: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<ListedObject>,
    /// Pass back to get the next page; `None` on the last page.
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: Millis,
    pub storage_class: Option<String>,
}

/// The storage calls s3batch makes. Each backend implements what it can and answers
/// [`StorageError::not_implemented`] for the rest.
#[async_trait]
pub trait ObjectStore: Debug + Send + Sync + 'static {
    /// `s3`, `local` or `memory`.
    fn kind(&self) -> &'static str;

    async fn create_bucket(&self, bucket: &str) -> Result<()>;
    async fn head_object(&self, obj: &ObjectRef) -> Result<ObjectInfo>;
    /// GET, optionally a byte range `start..end` (end exclusive).
    async fn get_object(&self, obj: &ObjectRef, range: Option<Range<u64>>) -> Result<GetResult>;
    async fn put_object(&self, bucket: &str, key: &str, body: PutBody, opts: &PutOptions) -> Result<WriteResult>;
    async fn copy_object(&self, req: &CopyRequest) -> Result<WriteResult>;
    async fn delete_object(&self, obj: &ObjectRef) -> Result<WriteResult>;
    async fn get_object_tagging(&self, obj: &ObjectRef) -> Result<Vec<Tag>>;
    async fn put_object_tagging(&self, obj: &ObjectRef, tags: &[Tag]) -> Result<WriteResult>;
    async fn delete_object_tagging(&self, obj: &ObjectRef) -> Result<WriteResult>;
    /// ListObjectsV2 under a prefix, in key order, at most `max_keys` a page.
    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
        max_keys: usize,
    ) -> Result<ListPage>;
}

/// Hex MD5 of some bytes: the ETag of a single-part upload.
pub fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(data))
}
