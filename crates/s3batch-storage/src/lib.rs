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
//!
//! The trait covers every S3 Batch Operations operation: tagging, copies with all of S3PutObjectCopy's fields
//! ([`CopyRequest`]; the `s3` backend switches to a multipart UploadPartCopy above `multipart_threshold`), ACLs
//! ([`Acl`], [`AclPolicy`]), object lock (retention, legal hold), restores ([`ObjectInfo::restore`]), multipart
//! uploads ([`MultipartOptions`], [`MultipartUpload`]) and version listings ([`VersionPage`]). What a backend
//! cannot do it answers with `NotImplemented` (501): the local backend has no ACLs, object lock, server-side
//! encryption or additional checksums; the memory backend keeps all of them.

mod beneath;
mod common;
pub mod config;
/// A backend-neutral test suite every [`ObjectStore`] must pass: test support, compiled for this crate's tests and
/// with the `conformance` feature (which the crate's own integration tests turn on through a dev-dependency).
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod local;
pub mod memory;
pub mod metered;
pub mod router;
pub mod s3;
pub mod sigv4;

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
        StorageError::internal(e.to_string())
    }

    /// `InternalError`, 500.
    pub fn internal(message: impl Into<String>) -> Self {
        StorageError::new("InternalError", 500, message)
    }

    /// `InvalidRequest`, 400: the task asks for what its job or the configuration cannot give.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        StorageError::new("InvalidRequest", 400, message)
    }

    /// `InvalidArgument`, 400.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        StorageError::new("InvalidArgument", 400, message)
    }

    /// `BadRequest`, 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        StorageError::new("BadRequest", 400, message)
    }

    /// `AccessDenied`, 403: a store's refusal, or a role's, which reads the same.
    pub fn access_denied(message: impl Into<String>) -> Self {
        StorageError::new("AccessDenied", 403, message)
    }

    /// `PreconditionFailed`, 412.
    pub fn precondition_failed(message: impl Into<String>) -> Self {
        StorageError::new("PreconditionFailed", 412, message)
    }

    /// Lambda's `ResourceNotFoundException`, 404: no such function.
    pub fn function_not_found(message: impl Into<String>) -> Self {
        StorageError::new("ResourceNotFoundException", 404, message)
    }

    /// Lambda's `TooManyRequestsException`, with the status the endpoint answered (429 or 5xx).
    pub fn function_throttled(http_status: u16, message: impl Into<String>) -> Self {
        StorageError::new("TooManyRequestsException", http_status, message)
    }

    /// A task that reached its target and failed there in the target's own terms, as the report shows it: HTTP
    /// status 200 and `code` (a function's `TemporaryFailure` / `PermanentFailure`, a checksum's
    /// `PermanentFailure`).
    pub fn task_result(code: impl Into<String>, message: impl Into<String>) -> Self {
        StorageError::new(code, 200, message)
    }

    /// The store answered that the object (or version, or bucket) does not exist: 404.
    pub fn is_not_found(&self) -> bool {
        self.http_status == 404
    }

    /// The store answered 400 Bad Request (an SSE-C object answers a HEAD without its key so).
    pub fn is_bad_request(&self) -> bool {
        self.http_status == 400
    }

    /// The store answered with a server error (5xx).
    pub fn is_server_error(&self) -> bool {
        self.http_status >= 500
    }

    /// The HTTP status a completion report shows for this error: the store's, or 500 when no answer came (a
    /// connection failure has none).
    pub fn report_status(&self) -> u16 {
        if self.http_status == 0 { NO_ANSWER_STATUS } else { self.http_status }
    }
}

/// The status a report row shows for a task whose request got no answer (`InternalError`'s).
pub const NO_ANSWER_STATUS: u16 = 500;

/// Whether an HTTP status is worth another try whatever the error code: 429, and the server errors but 501 (Not
/// Implemented will not change). Stores' answers and function endpoints' are read alike.
pub fn is_retryable_status(http_status: u16) -> bool {
    http_status == 429 || (http_status >= 500 && http_status != 501)
}

/// Whether an answer is the store asking to slow down (`SlowDown`, 503, 429 and the throttling codes).
pub fn is_throttling(e: &StorageError) -> bool {
    matches!(
        e.code.as_str(),
        "SlowDown" | "Throttling" | "ThrottlingException" | "TooManyRequests" | "RequestLimitExceeded"
    ) || e.http_status == 429
        || e.http_status == 503
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
    ) || is_retryable_status(http_status)
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

/// Most keys one DeleteObjects request may name (S3's limit).
pub const MAX_DELETE_KEYS: usize = 1000;

/// Single deletes in flight at once when a batch delete falls back to one DeleteObject per key ([`delete_each`]).
pub const FALLBACK_DELETES_IN_FLIGHT: usize = 8;

/// One key (or one version of it) of a batch delete; the bucket is the request's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeleteKey {
    pub key: String,
    pub version_id: Option<String>,
}

impl DeleteKey {
    pub fn new(key: impl Into<String>, version_id: Option<String>) -> Self {
        DeleteKey { key: key.into(), version_id }
    }

    /// The object this key names in `bucket`.
    pub fn object(&self, bucket: &str) -> ObjectRef {
        ObjectRef::new(bucket, &self.key).with_version(self.version_id.clone())
    }
}

/// The answer of a batch delete: each key's own result, in the order the keys were given.
pub type DeleteResults = Vec<Result<WriteResult>>;

/// A batch of more than [`MAX_DELETE_KEYS`] keys: `MalformedXML` (400), as S3 answers it.
pub fn check_delete_batch(keys: &[DeleteKey]) -> Result<()> {
    if keys.len() > MAX_DELETE_KEYS {
        return Err(StorageError::new(
            "MalformedXML",
            400,
            format!("a DeleteObjects request names at most {MAX_DELETE_KEYS} keys, this one {}", keys.len()),
        ));
    }
    Ok(())
}

/// A batch delete done as one DeleteObject per key, [`FALLBACK_DELETES_IN_FLIGHT`] at a time: the default of
/// [`ObjectStore::delete_objects`], and what a store that answers `NotImplemented` to DeleteObjects falls back to.
pub async fn delete_each<S: ObjectStore + ?Sized>(
    store: &S,
    bucket: &str,
    keys: &[DeleteKey],
) -> Result<DeleteResults> {
    use futures::StreamExt;
    check_delete_batch(keys)?;
    let objects: Vec<ObjectRef> = keys.iter().map(|k| k.object(bucket)).collect();
    let results = futures::stream::iter(objects)
        .map(|obj| async move { store.delete_object(&obj).await })
        .buffered(FALLBACK_DELETES_IN_FLIGHT)
        .collect()
        .await;
    Ok(results)
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
    /// `Expires`: when the object stops being cacheable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Millis>,
}

/// What HEAD tells about an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    /// Without quotes.
    pub etag: String,
    pub last_modified: Millis,
    pub version_id: Option<String>,
    /// `None` for `STANDARD`, which S3 leaves out of HEAD.
    pub storage_class: Option<String>,
    pub metadata: Metadata,
    /// The `x-amz-restore` header as the store sent it, e.g. `ongoing-request="false", expiry-date="Fri, 21 Dec
    /// 2012 00:00:00 GMT"`; [`ObjectInfo::restore_status`] parses it. `None`: no restore was asked for (or it
    /// expired).
    pub restore: Option<String>,
    /// `x-amz-archive-status` (`ARCHIVE_ACCESS`, `DEEP_ARCHIVE_ACCESS`) of an Intelligent-Tiering object.
    pub archive_status: Option<String>,
    /// `x-amz-server-side-encryption`: `AES256`, `aws:kms`, `aws:kms:dsse`.
    pub server_side_encryption: Option<String>,
    /// `x-amz-server-side-encryption-aws-kms-key-id`.
    pub sse_kms_key_id: Option<String>,
    /// `x-amz-server-side-encryption-bucket-key-enabled`.
    pub bucket_key_enabled: Option<bool>,
    /// `x-amz-object-lock-mode`.
    pub object_lock_mode: Option<RetentionMode>,
    /// `x-amz-object-lock-retain-until-date`.
    pub object_lock_retain_until: Option<Millis>,
    /// `x-amz-object-lock-legal-hold`: `Some(true)` for `ON`.
    pub object_lock_legal_hold: Option<bool>,
    /// `x-amz-replication-status`: `COMPLETED`, `PENDING`, `FAILED`, `REPLICA`.
    pub replication_status: Option<String>,
    /// `x-amz-website-redirect-location`.
    pub website_redirect_location: Option<String>,
}

impl ObjectInfo {
    /// The parsed `x-amz-restore` header, if there is one.
    pub fn restore_status(&self) -> Option<RestoreStatus> {
        self.restore.as_deref().and_then(RestoreStatus::parse)
    }
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

    /// Read the whole body into memory if it is at most `limit` bytes long; `None` (having read no more than
    /// `limit` bytes and one more part) if it is longer, whatever size the store declared.
    pub async fn bytes_up_to(self, limit: usize) -> Result<Option<Bytes>> {
        use futures::TryStreamExt;
        let mut body = self.body;
        let mut out = Vec::new();
        while let Some(part) = body.try_next().await? {
            if out.len() + part.len() > limit {
                return Ok(None);
            }
            out.extend_from_slice(&part);
        }
        Ok(Some(out.into()))
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
///
/// The `s3` backend copies a source larger than its `multipart_threshold` with a multipart upload
/// (UploadPartCopy) that carries the same attributes as a single CopyObject would.
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
    /// Explicit ACL grants (`x-amz-grant-read`, …): each entry one grantee as S3's headers write it,
    /// `id="…"`, `emailAddress="…"` or `uri="…"` (see [`Grantee::header_value`]). Not together with `canned_acl`.
    pub grant_read: Vec<String>,
    pub grant_read_acp: Vec<String>,
    pub grant_write_acp: Vec<String>,
    pub grant_full_control: Vec<String>,
    /// `AES256`, `aws:kms` or `aws:kms:dsse`. A `sse_kms_key_id` without it means `aws:kms`.
    pub server_side_encryption: Option<String>,
    pub sse_kms_key_id: Option<String>,
    pub bucket_key_enabled: Option<bool>,
    /// Object lock of the new object: mode and retain-until date go together.
    pub object_lock_mode: Option<RetentionMode>,
    pub object_lock_retain_until: Option<Millis>,
    pub object_lock_legal_hold: Option<bool>,
    /// An object lock event hold on the new object.
    pub object_lock_event_hold: Option<EventHold>,
    /// `None`: the store's default (S3: `COPY`). Backends without annotations have none to copy or exclude.
    pub annotation_directive: Option<AnnotationDirective>,
    /// `x-amz-checksum-algorithm`: `CRC32`, `CRC32C`, `SHA1`, `SHA256`, `CRC64NVME`, …
    pub checksum_algorithm: Option<String>,
    /// `x-amz-request-payer: requester`.
    pub requester_pays: bool,
    /// `x-amz-website-redirect-location`.
    pub website_redirect_location: Option<String>,
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
            grant_read: Vec::new(),
            grant_read_acp: Vec::new(),
            grant_write_acp: Vec::new(),
            grant_full_control: Vec::new(),
            server_side_encryption: None,
            sse_kms_key_id: None,
            bucket_key_enabled: None,
            object_lock_mode: None,
            object_lock_retain_until: None,
            object_lock_legal_hold: None,
            object_lock_event_hold: None,
            annotation_directive: None,
            checksum_algorithm: None,
            requester_pays: false,
            website_redirect_location: None,
        }
    }

    /// Whether any explicit grant is set.
    pub fn has_grants(&self) -> bool {
        !(self.grant_read.is_empty()
            && self.grant_read_acp.is_empty()
            && self.grant_write_acp.is_empty()
            && self.grant_full_control.is_empty())
    }

    /// The attributes of the new object as a multipart upload would carry them, given the metadata, tags and
    /// redirect location the copy resolves to (the source's under `COPY`).
    pub fn new_object_options(
        &self,
        metadata: Metadata,
        tags: Vec<Tag>,
        website_redirect_location: Option<String>,
    ) -> MultipartOptions {
        MultipartOptions {
            metadata,
            tags,
            storage_class: self.storage_class.clone(),
            canned_acl: self.canned_acl.clone(),
            grant_read: self.grant_read.clone(),
            grant_read_acp: self.grant_read_acp.clone(),
            grant_write_acp: self.grant_write_acp.clone(),
            grant_full_control: self.grant_full_control.clone(),
            server_side_encryption: self.server_side_encryption.clone(),
            sse_kms_key_id: self.sse_kms_key_id.clone(),
            bucket_key_enabled: self.bucket_key_enabled,
            object_lock_mode: self.object_lock_mode,
            object_lock_retain_until: self.object_lock_retain_until,
            object_lock_legal_hold: self.object_lock_legal_hold,
            object_lock_event_hold: self.object_lock_event_hold,
            checksum_algorithm: self.checksum_algorithm.clone(),
            requester_pays: self.requester_pays,
            website_redirect_location: self.website_redirect_location.clone().or(website_redirect_location),
        }
    }
}

/// The attributes of an object a multipart upload creates (CreateMultipartUpload's headers).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct MultipartOptions {
    pub metadata: Metadata,
    pub tags: Vec<Tag>,
    pub storage_class: Option<String>,
    pub canned_acl: Option<String>,
    /// As in [`CopyRequest`]: one grantee per entry, `id="…"`, `emailAddress="…"` or `uri="…"`.
    pub grant_read: Vec<String>,
    pub grant_read_acp: Vec<String>,
    pub grant_write_acp: Vec<String>,
    pub grant_full_control: Vec<String>,
    pub server_side_encryption: Option<String>,
    pub sse_kms_key_id: Option<String>,
    pub bucket_key_enabled: Option<bool>,
    pub object_lock_mode: Option<RetentionMode>,
    pub object_lock_retain_until: Option<Millis>,
    pub object_lock_legal_hold: Option<bool>,
    pub object_lock_event_hold: Option<EventHold>,
    /// Every part then carries a checksum of this algorithm, and the completed object a composite one.
    pub checksum_algorithm: Option<String>,
    pub requester_pays: bool,
    pub website_redirect_location: Option<String>,
}

impl MultipartOptions {
    /// Whether any explicit grant is set.
    pub fn has_grants(&self) -> bool {
        !(self.grant_read.is_empty()
            && self.grant_read_acp.is_empty()
            && self.grant_write_acp.is_empty()
            && self.grant_full_control.is_empty())
    }

    /// The encryption algorithm asked for: a KMS key id alone means `aws:kms`.
    pub fn effective_sse(&self) -> Option<String> {
        effective_sse(self.server_side_encryption.as_deref(), self.sse_kms_key_id.as_deref())
    }
}

/// The encryption algorithm asked for: a KMS key id alone means `aws:kms`.
pub(crate) fn effective_sse(sse: Option<&str>, kms_key_id: Option<&str>) -> Option<String> {
    match (sse, kms_key_id) {
        (Some(a), _) => Some(a.to_string()),
        (None, Some(_)) => Some("aws:kms".to_string()),
        (None, None) => None,
    }
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartUpload {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    /// The checksum algorithm the upload was created with: parts carry checksums of it.
    pub checksum_algorithm: Option<String>,
    /// Send `x-amz-request-payer: requester` with every call of the upload.
    pub requester_pays: bool,
}

/// A part uploaded (or copied) into a multipart upload: what CompleteMultipartUpload needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    /// 1 to 10,000.
    pub part_number: i32,
    /// Without quotes.
    pub etag: String,
    /// The part's checksum (base64) in the upload's checksum algorithm, when it has one.
    pub checksum: Option<String>,
}

/// Multipart limits of S3.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
pub const MAX_PARTS: u64 = 10_000;
/// The largest source a single CopyObject may copy.
pub const MAX_SINGLE_COPY: u64 = 5 * 1024 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------------------------
// ACLs

/// A permission an ACL grant gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    FullControl,
    Read,
    Write,
    ReadAcp,
    WriteAcp,
}

impl Permission {
    pub const ALL: [Permission; 5] =
        [Permission::FullControl, Permission::Read, Permission::Write, Permission::ReadAcp, Permission::WriteAcp];

    /// `FULL_CONTROL`, `READ`, `WRITE`, `READ_ACP`, `WRITE_ACP`.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::FullControl => "FULL_CONTROL",
            Permission::Read => "READ",
            Permission::Write => "WRITE",
            Permission::ReadAcp => "READ_ACP",
            Permission::WriteAcp => "WRITE_ACP",
        }
    }

    /// The permission S3 names so; anything else is `InvalidArgument` (400).
    pub fn parse(s: &str) -> Result<Permission> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| StorageError::new("InvalidArgument", 400, format!("Invalid ACL permission: {s:?}")))
    }
}

/// The group of all users (anonymous included).
pub const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
/// The group of all authenticated AWS users.
pub const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
/// The log delivery group.
pub const LOG_DELIVERY: &str = "http://acs.amazonaws.com/groups/s3/LogDelivery";

/// The canned ACLs S3 knows for objects.
pub const CANNED_ACLS: &[&str] = &[
    "private",
    "public-read",
    "public-read-write",
    "aws-exec-read",
    "authenticated-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
    "log-delivery-write",
];

/// Who an ACL grant is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grantee {
    /// `xsi:type="CanonicalUser"`, `id="…"`.
    CanonicalUser { id: String, display_name: Option<String> },
    /// `xsi:type="AmazonCustomerByEmail"`, `emailAddress="…"`.
    Email(String),
    /// `xsi:type="Group"`, `uri="…"` (e.g. [`ALL_USERS`]).
    Group(String),
}

impl Grantee {
    /// A canonical user without display name.
    pub fn canonical(id: impl Into<String>) -> Grantee {
        Grantee::CanonicalUser { id: id.into(), display_name: None }
    }

    /// From S3 Batch Operations' `S3Grantee`: `TypeIdentifier` `id`, `emailAddress` or `uri`.
    pub fn from_type_identifier(
        type_identifier: &str,
        identifier: &str,
        display_name: Option<String>,
    ) -> Result<Grantee> {
        match type_identifier {
            "id" => Ok(Grantee::CanonicalUser { id: identifier.to_string(), display_name }),
            "emailAddress" => Ok(Grantee::Email(identifier.to_string())),
            "uri" => Ok(Grantee::Group(identifier.to_string())),
            other => Err(StorageError::new(
                "InvalidArgument",
                400,
                format!("Invalid grantee type identifier {other:?}: expected id, emailAddress or uri"),
            )),
        }
    }

    /// As an `x-amz-grant-*` header names it: `id="…"`, `emailAddress="…"`, `uri="…"`.
    pub fn header_value(&self) -> String {
        match self {
            Grantee::CanonicalUser { id, .. } => format!("id=\"{id}\""),
            Grantee::Email(e) => format!("emailAddress=\"{e}\""),
            Grantee::Group(u) => format!("uri=\"{u}\""),
        }
    }

    /// Parse one grantee of an `x-amz-grant-*` header (quotes optional); anything else is `InvalidArgument`.
    pub fn parse_header_value(s: &str) -> Result<Grantee> {
        let bad = || StorageError::new("InvalidArgument", 400, format!("Invalid grantee in a grant header: {s:?}"));
        let (kind, value) = s.trim().split_once('=').ok_or_else(bad)?;
        let value = value.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        if value.is_empty() || value.contains('"') {
            return Err(bad());
        }
        match kind.trim().to_ascii_lowercase().as_str() {
            "id" => Ok(Grantee::canonical(value)),
            "emailaddress" => Ok(Grantee::Email(value.to_string())),
            "uri" => Ok(Grantee::Group(value.to_string())),
            _ => Err(bad()),
        }
    }

    /// The same grantee without a display name (stores fill it in; compare without it).
    pub fn without_display_name(&self) -> Grantee {
        match self {
            Grantee::CanonicalUser { id, .. } => Grantee::canonical(id.clone()),
            g => g.clone(),
        }
    }
}

/// One grant of an ACL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grant {
    pub grantee: Grantee,
    pub permission: Permission,
}

impl Grant {
    pub fn new(grantee: Grantee, permission: Permission) -> Grant {
        Grant { grantee, permission }
    }
}

/// The owner of an object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Owner {
    pub id: String,
    pub display_name: Option<String>,
}

/// An object's access control policy: its owner and the grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclPolicy {
    pub owner: Owner,
    pub grants: Vec<Grant>,
}

impl AclPolicy {
    /// The grants without display names, sorted: for comparisons.
    pub fn normalized_grants(&self) -> Vec<Grant> {
        let mut g: Vec<Grant> =
            self.grants.iter().map(|g| Grant::new(g.grantee.without_display_name(), g.permission)).collect();
        g.sort();
        g.dedup();
        g
    }
}

/// What PutObjectAcl sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acl {
    /// A canned ACL (`private`, `public-read`, …, see [`CANNED_ACLS`]).
    Canned(String),
    /// An explicit policy. The `s3` backend sends the grants as `x-amz-grant-*` headers (the same grants S3 would
    /// take from an `AccessControlPolicy` body); the owner cannot be changed by PutObjectAcl and is not sent.
    Policy(AclPolicy),
}

// ---------------------------------------------------------------------------------------------------------------
// Object lock and restore

/// An object lock retention mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RetentionMode {
    Governance,
    Compliance,
}

impl RetentionMode {
    /// `GOVERNANCE` or `COMPLIANCE`.
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionMode::Governance => "GOVERNANCE",
            RetentionMode::Compliance => "COMPLIANCE",
        }
    }

    /// `GOVERNANCE` or `COMPLIANCE`; anything else is `InvalidArgument` (400).
    pub fn parse(s: &str) -> Result<RetentionMode> {
        match s {
            "GOVERNANCE" => Ok(RetentionMode::Governance),
            "COMPLIANCE" => Ok(RetentionMode::Compliance),
            _ => Err(StorageError::new("InvalidArgument", 400, format!("Unknown object lock mode {s:?}"))),
        }
    }
}

/// An object lock event hold (S3's `x-amz-object-lock-event-hold` on a new object, `EventHold` in
/// PutObjectRetention): while `on`, the object cannot be deleted or overwritten; once released, it stays protected
/// for `duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventHold {
    pub on: bool,
    pub duration: Option<EventHoldDuration>,
}

/// How long an object stays protected after its event hold is released: days or years, as S3 takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EventHoldDuration {
    Days(i32),
    Years(i32),
}

/// `x-amz-object-annotation-directive` of a copy: whether the new object carries the source's annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnotationDirective {
    Copy,
    Exclude,
}

impl AnnotationDirective {
    /// `COPY` or `EXCLUDE`.
    pub fn as_str(self) -> &'static str {
        match self {
            AnnotationDirective::Copy => "COPY",
            AnnotationDirective::Exclude => "EXCLUDE",
        }
    }
}

/// An object's retention: both set, or neither (no retention).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub mode: Option<RetentionMode>,
    pub retain_until: Option<Millis>,
}

/// The retrieval tier of a restore from an archive storage class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RestoreTier {
    Bulk,
    Standard,
    Expedited,
}

impl RestoreTier {
    /// `Bulk`, `Standard`, `Expedited` (the case S3's `Tier` element takes).
    pub fn as_str(self) -> &'static str {
        match self {
            RestoreTier::Bulk => "Bulk",
            RestoreTier::Standard => "Standard",
            RestoreTier::Expedited => "Expedited",
        }
    }

    /// `BULK`/`Bulk`, `STANDARD`/`Standard`, `EXPEDITED`/`Expedited`; else `InvalidArgument` (400).
    pub fn parse(s: &str) -> Result<RestoreTier> {
        match s.to_ascii_uppercase().as_str() {
            "BULK" => Ok(RestoreTier::Bulk),
            "STANDARD" => Ok(RestoreTier::Standard),
            "EXPEDITED" => Ok(RestoreTier::Expedited),
            _ => Err(StorageError::new("InvalidArgument", 400, format!("Unknown restore tier {s:?}"))),
        }
    }
}

/// The `x-amz-restore` header, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreStatus {
    /// `ongoing-request="true"`: the restore is still running.
    pub ongoing: bool,
    /// When the restored copy goes away (`expiry-date`), once the restore is done.
    pub expiry: Option<Millis>,
}

impl RestoreStatus {
    /// Parse `ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"`.
    pub fn parse(header: &str) -> Option<RestoreStatus> {
        let field = |name: &str| {
            let start = header.find(&format!("{name}=\""))? + name.len() + 2;
            let len = header[start..].find('"')?;
            Some(header[start..start + len].to_string())
        };
        let ongoing = match field("ongoing-request")?.as_str() {
            "true" => true,
            "false" => false,
            _ => return None,
        };
        let expiry = field("expiry-date")
            .and_then(|d| chrono::DateTime::parse_from_rfc2822(&d).ok())
            .map(|d| d.timestamp_millis());
        Some(RestoreStatus { ongoing, expiry })
    }

    /// The header S3 sends for a finished restore that expires at `expiry`.
    pub fn done_header(expiry: Millis) -> String {
        let date = chrono::DateTime::from_timestamp_millis(expiry).unwrap_or_default();
        format!("ongoing-request=\"false\", expiry-date=\"{}\"", date.format("%a, %d %b %Y %H:%M:%S GMT"))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Versions

/// One entry of ListObjectVersions: a version or a delete marker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectVersion {
    pub key: String,
    /// `"null"` for an object written while versioning was off (and in unversioned stores).
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
    /// 0 for delete markers.
    pub size: u64,
    /// Without quotes; empty for delete markers.
    pub etag: String,
    pub last_modified: Millis,
    /// `None` for delete markers.
    pub storage_class: Option<String>,
}

/// One page of ListObjectVersions: versions and delete markers together, in key order and, within a key, newest
/// first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionPage {
    pub versions: Vec<ObjectVersion>,
    /// Pass both back to get the next page; `None` on the last page.
    pub next_key_marker: Option<String>,
    pub next_version_marker: Option<String>,
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

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: Millis,
    /// Always named in a listing (`STANDARD` included).
    pub storage_class: Option<String>,
    /// The algorithm of the object's additional checksum (`CRC32`, `CRC64NVME`, …), if it has one.
    pub checksum_algorithm: Option<String>,
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
    /// DeleteObjects: up to [`MAX_DELETE_KEYS`] keys (or versions) of one bucket in one request. `Ok` holds each
    /// key's own result, in the order given, as a DeleteObject of that key would have answered it (a missing key
    /// is deleted: success); `Err` is a failure of the whole request (a missing bucket, throttling, a broken
    /// connection). The default sends one DeleteObject per key ([`delete_each`]).
    async fn delete_objects(&self, bucket: &str, keys: &[DeleteKey]) -> Result<DeleteResults> {
        delete_each(self, bucket, keys).await
    }
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

    /// ListObjectsV2 under a prefix starting after the key `start_after` (`StartAfter`): where a listing that
    /// stopped resumes. Backends whose continuation token is the last key listed (memory, local) need not
    /// override it.
    async fn list_objects_after(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<String>,
        max_keys: usize,
    ) -> Result<ListPage> {
        self.list_objects(bucket, prefix, start_after, max_keys).await
    }

    /// ListObjectVersions under a prefix: versions and delete markers, at most `max_keys` a page. Pass the
    /// page's `next_key_marker` and `next_version_marker` back for the next one.
    async fn list_object_versions(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: Option<String>,
        version_marker: Option<String>,
        max_keys: usize,
    ) -> Result<VersionPage>;

    /// PutObjectAcl: a canned ACL or explicit grants.
    async fn put_object_acl(&self, obj: &ObjectRef, acl: &Acl) -> Result<()>;
    /// GetObjectAcl: the owner and the grants.
    async fn get_object_acl(&self, obj: &ObjectRef) -> Result<AclPolicy>;

    /// PutObjectRetention. Mode and date go together; both `None` removes the retention (governance mode needs
    /// `bypass_governance` for that, compliance mode refuses it). `event_hold` also sets an object lock event hold
    /// (`EventHold`, `EventHoldDuration`); backends without event holds answer `NotImplemented` for one.
    async fn put_object_retention(
        &self,
        obj: &ObjectRef,
        mode: Option<RetentionMode>,
        retain_until: Option<Millis>,
        bypass_governance: bool,
        event_hold: Option<EventHold>,
    ) -> Result<()>;
    /// GetObjectRetention: both `None` when the object has no retention.
    async fn get_object_retention(&self, obj: &ObjectRef) -> Result<Retention>;
    /// PutObjectLegalHold: `ON` or `OFF`.
    async fn put_object_legal_hold(&self, obj: &ObjectRef, on: bool) -> Result<()>;
    /// GetObjectLegalHold: whether it is `ON` (an object that never had one is `OFF`).
    async fn get_object_legal_hold(&self, obj: &ObjectRef) -> Result<bool>;

    /// RestoreObject of an archived object (GLACIER, DEEP_ARCHIVE: `days` required; Intelligent-Tiering archive
    /// tiers: `days` left out). Its progress shows in [`ObjectInfo::restore`].
    async fn restore_object(&self, obj: &ObjectRef, days: Option<i32>, tier: Option<RestoreTier>) -> Result<()>;

    /// CreateMultipartUpload with the new object's attributes.
    async fn create_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        opts: &MultipartOptions,
    ) -> Result<MultipartUpload>;
    /// UploadPartCopy: `range` (`start..end`, end exclusive) of the source, or all of it.
    async fn upload_part_copy(
        &self,
        upload: &MultipartUpload,
        part_number: i32,
        source: &ObjectRef,
        range: Option<Range<u64>>,
    ) -> Result<CompletedPart>;
    /// UploadPart.
    async fn upload_part(&self, upload: &MultipartUpload, part_number: i32, data: Bytes) -> Result<CompletedPart>;
    /// CompleteMultipartUpload with the parts in ascending order.
    async fn complete_multipart_upload(&self, upload: &MultipartUpload, parts: &[CompletedPart])
    -> Result<WriteResult>;
    /// AbortMultipartUpload.
    async fn abort_multipart_upload(&self, upload: &MultipartUpload) -> Result<()>;
}

/// Hex MD5 of some bytes: the ETag of a single-part upload.
pub fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_by_name() {
        assert!(is_retryable_status(429) && is_retryable_status(500) && is_retryable_status(503));
        assert!(!is_retryable_status(501), "Not Implemented will not change");
        assert!(!is_retryable_status(400) && !is_retryable_status(404) && !is_retryable_status(200));
        assert!(StorageError::no_such_key().is_not_found() && !StorageError::internal("").is_not_found());
        assert!(StorageError::bad_request("").is_bad_request() && !StorageError::access_denied("").is_bad_request());
        assert!(
            StorageError::internal("").is_server_error() && StorageError::not_implemented("x", "y").is_server_error()
        );
        assert!(!StorageError::connection("reset").is_server_error(), "no answer is no server error");
        assert_eq!(StorageError::connection("reset").report_status(), NO_ANSWER_STATUS);
        assert_eq!(StorageError::access_denied("").report_status(), 403);
        assert_eq!(StorageError::task_result("PermanentFailure", "").report_status(), 200);
    }
}
