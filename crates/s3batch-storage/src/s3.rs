//! [`S3Store`]: any S3-compatible store through the official `aws-sdk-s3`.
//!
//! The client is built from the `[[storage]]` entry alone (static credentials, no `aws-config` loader). Every SDK
//! error goes through one function, [`storage_error`]: the store's own error code and HTTP status are kept (a HEAD
//! has no error body: a 404 is then `NoSuchKey`, `NoSuchVersion` or — after a HeadBucket — `NoSuchBucket`);
//! timeouts, dispatch failures and unreadable responses are [`StorageError::connection`] (transient).
//!
//! Listing tokens are S3's own `NextContinuationToken`s: opaque, pass them back unchanged.
//!
//! A copy whose source is larger than `multipart_threshold` (default 5 GiB, the most one CopyObject may copy) is
//! a multipart upload: CreateMultipartUpload with the attributes the single copy would have given the new object
//! (metadata and tags of the source under `COPY`, storage class, ACL, encryption, object lock, checksum
//! algorithm), UploadPartCopy of `multipart_part_size` ranges (a few at a time, each pinned to the source's ETag
//! with `x-amz-copy-source-if-match`, so that a source overwritten meanwhile fails the copy instead of mixing
//! two objects), then CompleteMultipartUpload; any failure aborts the upload. With the default threshold no HEAD
//! is spent on a copy: the single CopyObject is tried and only a source the store refuses as too large goes
//! multipart. With a lower threshold every copy starts with a HEAD of the source.
//!
//! Explicit ACL grants (PutObjectAcl with a policy) are sent as `x-amz-grant-*` headers, which express the same
//! grants as an `AccessControlPolicy` body (moto ignores such a body); only a policy without grants is sent as a
//! body.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use aws_runtime::invocation_id::InvocationIdInterceptor;
use aws_runtime::user_agent::UserAgentInterceptor;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::endpoint::{DefaultResolver, Endpoint, EndpointFuture, Params, ParamsBuilder, ResolveEndpoint};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::interceptors::{BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextMut};
use aws_sdk_s3::config::{
    BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    RuntimeComponents, SharedInterceptor,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::copy_object::builders::CopyObjectFluentBuilder;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    AccessControlPolicy, AnnotationDirective, BucketLocationConstraint, ChecksumAlgorithm, CompletedMultipartUpload,
    CreateBucketConfiguration, Delete, EventHoldDuration as SdkEventHoldDuration, GlacierJobParameters,
    MetadataDirective, ObjectCannedAcl, ObjectIdentifier, ObjectLockEventHold, ObjectLockLegalHold,
    ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode, RequestPayer,
    RestoreRequest, ServerSideEncryption, StorageClass, Tagging, TaggingDirective, Tier, Type,
};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::disable_interceptor;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::common;
use crate::config::StorageConfig;
use crate::{
    Acl, AclPolicy, CompletedPart, CopyRequest, DeleteKey, DeleteResults, EventHold, GetResult, Grant, Grantee,
    ListPage, ListedObject, Metadata, Millis, MultipartOptions, MultipartUpload, ObjectInfo, ObjectRef, ObjectStore,
    ObjectVersion, Owner, Permission, PutBody, PutOptions, RestoreTier, Result, Retention, RetentionMode, StorageError,
    Tag, VersionPage, WriteResult,
};

/// `Content-MD5` of an empty body.
const EMPTY_BODY_MD5: &str = "1B2M2Y8AsgTpgAmY7PhCfg==";

/// Part copies of one multipart copy in flight at once.
const PART_COPIES_IN_FLIGHT: usize = 4;

/// What stays unencoded in a URL component: RFC 3986 unreserved characters.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
/// A path: the same, keeping `/`.
const PATH: &AsciiSet = &COMPONENT.remove(b'/');

/// An S3-compatible store.
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    region: String,
    endpoint: Option<String>,
    multipart_threshold: u64,
    multipart_part_size: u64,
    /// Cleared once the store answers `NotImplemented` to DeleteObjects: batch deletes are then single deletes.
    batch_delete: Arc<AtomicBool>,
}

impl std::fmt::Debug for S3Store {
    /// Never the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("multipart_threshold", &self.multipart_threshold)
            .field("multipart_part_size", &self.multipart_part_size)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// ListObjectsV2, one page, from a continuation token or a StartAfter key.
    async fn list_v2(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
        start_after: Option<String>,
        max_keys: usize,
    ) -> Result<ListPage> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .set_prefix(non_empty(prefix))
            .max_keys(common::page_size(max_keys) as i32)
            .set_continuation_token(continuation)
            .set_start_after(start_after)
            .send()
            .await
            .map_err(|e| storage_error(e, "NoSuchBucket"))?;
        let objects = out
            .contents()
            .iter()
            .map(|o| ListedObject {
                key: o.key().unwrap_or_default().to_string(),
                size: o.size().unwrap_or(0).max(0) as u64,
                etag: unquote(o.e_tag()),
                last_modified: millis(o.last_modified()),
                storage_class: o.storage_class().map(|c| c.as_str().to_string()),
                checksum_algorithm: o.checksum_algorithm().first().map(|a| a.as_str().to_string()),
            })
            .collect();
        let next_token =
            if out.is_truncated() == Some(true) { out.next_continuation_token().map(str::to_string) } else { None };
        Ok(ListPage { objects, next_token })
    }

    /// A client for a `kind = "s3"` entry: static credentials, the region (default `us-east-1`), the endpoint and
    /// path style if given, checksums only when required unless `checksum_when_required = false`, and the SDK's
    /// endpoint rules run once per bucket ([`CachingResolver`]).
    pub fn from_config(c: &StorageConfig) -> Result<S3Store, String> {
        let access_key = c
            .access_key_id
            .as_deref()
            .filter(|k| !k.is_empty())
            .ok_or("kind = \"s3\" needs `access_key_id` and `secret_access_key` (or `secret_access_key_file`)")?;
        let secret = match (&c.secret_access_key, &c.secret_access_key_file) {
            (Some(s), None) => s.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read secret_access_key_file {}: {e}", path.display()))?
                .trim()
                .to_string(),
            (Some(_), Some(_)) => {
                return Err("give `secret_access_key` or `secret_access_key_file`, not both".into());
            }
            (None, None) => {
                return Err("kind = \"s3\" needs `secret_access_key` or `secret_access_key_file`".into());
            }
        };
        if secret.is_empty() {
            return Err("the secret access key is empty".into());
        }
        if !(crate::MIN_PART_SIZE..=crate::MAX_PART_SIZE).contains(&c.multipart_part_size) {
            return Err(format!(
                "`multipart_part_size` must be between 5 MiB ({}) and 5 GiB ({}) bytes, got {}",
                crate::MIN_PART_SIZE,
                crate::MAX_PART_SIZE,
                c.multipart_part_size
            ));
        }
        let region = c.region.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| "us-east-1".into());
        let mut b = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.clone()))
            .force_path_style(c.force_path_style)
            .credentials_provider(Credentials::new(access_key, secret, None, None, "s3batch-config"))
            .retry_partition(unrationed_retries())
            .http_client(http_client())
            .endpoint_resolver(CachingResolver::new());
        // Permanent: the SDK then skips asking the config bag, before each of its hooks, whether it is turned off.
        b.push_interceptor(SharedInterceptor::permanent(LeanRequests));
        // SigV4 with the day's signing key kept (`crate::sigv4`); it replaces the SDK's scheme of the same id.
        let (sigv4, clock_watch) = crate::sigv4::LeanSigV4::new();
        b = b.push_auth_scheme(sigv4);
        b.push_interceptor(SharedInterceptor::permanent(clock_watch));
        if let Some(endpoint) = &c.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(format!("`endpoint` must start with http:// or https://, got {endpoint:?}"));
            }
            b = b.endpoint_url(endpoint);
        }
        if c.checksum_when_required {
            b = b
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        Ok(S3Store {
            client: Client::from_conf(b.build()),
            region,
            endpoint: c.endpoint.clone(),
            multipart_threshold: c.multipart_threshold,
            multipart_part_size: c.multipart_part_size,
            batch_delete: Arc::new(AtomicBool::new(true)),
        })
    }

    /// Wrap a client built elsewhere (default multipart sizes; its own retry settings).
    pub fn from_client(client: Client) -> S3Store {
        let region = client.config().region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into());
        S3Store {
            client,
            region,
            endpoint: None,
            multipart_threshold: crate::config::DEFAULT_MULTIPART_THRESHOLD,
            multipart_part_size: crate::config::DEFAULT_MULTIPART_PART_SIZE,
            batch_delete: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Other multipart sizes, without the 5 MiB minimum part size the config enforces: for tests against a
    /// store that takes smaller parts (moto with `S3_UPLOAD_PART_MIN_SIZE`).
    pub fn with_multipart_sizes(mut self, threshold: u64, part_size: u64) -> S3Store {
        self.multipart_threshold = threshold;
        self.multipart_part_size = part_size.max(1);
        self
    }

    /// The SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A bodiless 404 of a HEAD: `NoSuchBucket` if the bucket is missing too (a HeadBucket tells), else `fallback`.
    async fn refine_not_found(&self, bucket: &str, e: StorageError) -> StorageError {
        if e.http_status != 404 || !matches!(e.code.as_str(), "NoSuchKey" | "NoSuchVersion") {
            return e;
        }
        match self.client.head_bucket().bucket(bucket).send().await {
            Err(SdkError::ServiceError(se)) if se.raw().status().as_u16() == 404 => {
                StorageError::no_such_bucket(bucket)
            }
            _ => e,
        }
    }
}

/// The HTTP client of the S3 clients s3batch builds: the SDK's own (hyper, rustls with the platform's trusted
/// roots, its connection pool and timeouts), with rustls on the `ring` crypto provider. The SDK's default client is
/// the same but on `aws-lc`, a C library that took about 75 s of a cold release build; the project leaves that
/// feature off, so a client built without this one has no HTTP client at all (the SDK says so on its first call).
pub fn http_client() -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https()
}

/// The SDK's retries (standard mode: 3 attempts per call) without its retry quota. By default every S3 client of
/// a process with the same region draws its retries from one token bucket (500 tokens, 5 a retry, given back when
/// the retry succeeds), and once a store has failed enough requests in a row the SDK stops retrying at all: under a
/// burst of faults the engine's `max_attempts` were then the only retries left, and tasks failed that a retry
/// would have saved. The engine paces and bounds retries itself (its backoff, its adaptive window, `max_attempts`
/// SDK calls a task), so the quota only turned a passing storm into failed tasks: a task's request goes out at
/// most `max_attempts × 3` times.
fn unrationed_retries() -> aws_sdk_s3::config::retry::RetryPartition {
    use aws_sdk_s3::config::retry::{RetryPartition, TokenBucket};
    RetryPartition::custom("s3batch").token_bucket(TokenBucket::unlimited()).build()
}

// ---------------------------------------------------------------------------------------------------------------
// Per-request headers

/// The `User-Agent` of s3batch's S3 requests, in place of the SDK's.
pub const USER_AGENT: &str = concat!("s3batch/", env!("CARGO_PKG_VERSION"));

/// Turns off two of the SDK's per-request interceptors that a batch engine does not need, and sends a constant
/// `User-Agent` instead of the SDK's.
///
/// - `UserAgentInterceptor` built the SDK's user agent anew for every request (environment, feature metrics,
///   formatting: about 26k instructions of a 480k-instruction CopyObject) for `User-Agent` and `x-amz-user-agent`.
///   Stores log the user agent; the ones s3batch is tested against (moto, Garage) answer the same without the SDK's.
///   s3batch's requests now say `s3batch/<version>`, as its event webhooks do.
/// - `InvocationIdInterceptor` made a random UUID per call for `amz-sdk-invocation-id`, an advisory header for
///   AWS's service-side metrics: no store answers differently without it, and retries are the SDK's retry strategy
///   and the engine's, which do not read it.
///
/// Kept: `RequestInfoInterceptor` (`amz-sdk-request: attempt=N; max=M`, about 3.6k instructions a request: it tells a
/// store or a proxy which attempt of a call a request is, and the engine's wire-fault tests count the SDK's retries
/// by it), `ServiceClockSkewInterceptor` (it measures the store's clock from each answer's `Date` and shifts the
/// signing time, which keeps a client with a wrong clock working), `RecursionDetectionInterceptor` (the SDK does
/// not let it be turned off), the checksum, stalled-stream and connection-poisoning interceptors.
///
/// How: the SDK asks every interceptor that can be turned off whether a `DisableInterceptor<T>` is in the
/// request's config bag, before each of its hooks (its own presigning turns off the same ones so). This
/// interceptor is a client interceptor, so its `read_before_execution` runs first, before any hook of the two.
#[derive(Debug)]
struct LeanRequests;

impl Intercept for LeanRequests {
    fn name(&self) -> &'static str {
        "s3batch::LeanRequests"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        const WHY: &str = "s3batch: not needed per request";
        let state = cfg.interceptor_state();
        state.store_put(disable_interceptor::<UserAgentInterceptor>(WHY));
        state.store_put(disable_interceptor::<InvocationIdInterceptor>(WHY));
        Ok(())
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        context.request_mut().headers_mut().insert("user-agent", USER_AGENT);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Endpoint resolution

/// Endpoints one client remembers: one per bucket it talks to (and per client setting, which do not change). A job
/// touches few buckets; past this many the oldest entry goes.
const ENDPOINT_CACHE_ENTRIES: usize = 64;

/// aws-sdk-s3's own endpoint rules, run once per bucket instead of once per request.
///
/// The SDK's `DefaultResolver` remembers the last `Params` it resolved, but `Params` holds the request's key,
/// prefix and copy source, so with a new key on every request it ran the whole rule set every time (a decision
/// diagram of 553 nodes, URL parsing, string building). The rules read neither of the three (the unit tests compare
/// this resolver with `DefaultResolver` on keys, prefixes and copy sources, so an SDK whose rules start reading
/// them fails there), so this cache keys on every other parameter: the bucket and the client's settings. A miss,
/// or parameters the rules refuse, go to `DefaultResolver` unchanged; errors are not remembered.
#[derive(Debug, Default)]
pub struct CachingResolver {
    rules: DefaultResolver,
    /// Parameters without key, prefix and copy source, and what the rules gave for them; the oldest first.
    cache: RwLock<VecDeque<(Params, Endpoint)>>,
}

impl CachingResolver {
    pub fn new() -> CachingResolver {
        CachingResolver::default()
    }

    /// The endpoint remembered for these parameters, if any.
    fn cached(&self, params: &Params) -> Option<Endpoint> {
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        cache.iter().find(|(p, _)| same_but_object(p, params)).map(|(_, e)| e.clone())
    }

    fn remember(&self, params: &Params, endpoint: &Endpoint) {
        let Some(key) = without_object(params) else { return };
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.iter().any(|(p, _)| same_but_object(p, &key)) {
            return; // another request got there first
        }
        if cache.len() >= ENDPOINT_CACHE_ENTRIES {
            cache.pop_front();
        }
        cache.push_back((key, endpoint.clone()));
    }

    /// Entries held (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.cache.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl ResolveEndpoint for CachingResolver {
    fn resolve_endpoint<'a>(&'a self, params: &'a Params) -> EndpointFuture<'a> {
        if let Some(endpoint) = self.cached(params) {
            return EndpointFuture::ready(Ok(endpoint));
        }
        EndpointFuture::new(async move {
            let endpoint = self.rules.resolve_endpoint(params).await?;
            self.remember(params, &endpoint);
            Ok(endpoint)
        })
    }
}

/// Every parameter equal except key, prefix and copy source (the object the request names).
fn same_but_object(a: &Params, b: &Params) -> bool {
    a.bucket() == b.bucket()
        && a.region() == b.region()
        && a.endpoint() == b.endpoint()
        && a.force_path_style() == b.force_path_style()
        && a.use_fips() == b.use_fips()
        && a.use_dual_stack() == b.use_dual_stack()
        && a.accelerate() == b.accelerate()
        && a.use_global_endpoint() == b.use_global_endpoint()
        && a.use_object_lambda_endpoint() == b.use_object_lambda_endpoint()
        && a.disable_access_points() == b.disable_access_points()
        && a.disable_multi_region_access_points() == b.disable_multi_region_access_points()
        && a.use_arn_region() == b.use_arn_region()
        && a.use_s3_express_control_endpoint() == b.use_s3_express_control_endpoint()
        && a.disable_s3_express_session_auth() == b.disable_s3_express_session_auth()
}

/// The parameters with key, prefix and copy source left out: what the cache keys on. `None` if the SDK will not
/// build them, or if putting those three back does not give `p` again: `p` then holds a parameter this code does
/// not know (a newer SDK), and nothing is cached rather than two requests that differ in it sharing an endpoint.
fn without_object(p: &Params) -> Option<Params> {
    let key = all_but_object(p).build().ok()?;
    let back = all_but_object(p)
        .set_key(p.key().map(str::to_string))
        .set_prefix(p.prefix().map(str::to_string))
        .set_copy_source(p.copy_source().map(str::to_string))
        .build()
        .ok()?;
    (back == *p).then_some(key)
}

/// A builder with every parameter of `p` but key, prefix and copy source.
fn all_but_object(p: &Params) -> ParamsBuilder {
    Params::builder()
        .set_bucket(p.bucket().map(str::to_string))
        .set_region(p.region().map(str::to_string))
        .set_endpoint(p.endpoint().map(str::to_string))
        .set_force_path_style(p.force_path_style())
        .set_use_fips(p.use_fips())
        .set_use_dual_stack(p.use_dual_stack())
        .set_accelerate(p.accelerate())
        .set_use_global_endpoint(p.use_global_endpoint())
        .set_use_object_lambda_endpoint(p.use_object_lambda_endpoint())
        .set_disable_access_points(p.disable_access_points())
        .set_disable_multi_region_access_points(p.disable_multi_region_access_points())
        .set_use_arn_region(p.use_arn_region())
        .set_use_s3_express_control_endpoint(p.use_s3_express_control_endpoint())
        .set_disable_s3_express_session_auth(p.disable_s3_express_session_auth())
}

// ---------------------------------------------------------------------------------------------------------------
// Errors

/// The one mapping of SDK errors. `not_found` is the code for a 404 without an error body (HEAD requests).
pub fn storage_error<E>(e: SdkError<E, HttpResponse>, not_found: &str) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match e {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let err = se.err();
            let code = match err.code() {
                // The SDK's own name for a bodiless 404.
                Some("NotFound") | None if status == 404 => not_found.to_string(),
                Some(c) if !c.is_empty() => c.to_string(),
                _ => code_for_status(status, not_found).to_string(),
            };
            let message = match err.message() {
                Some(m) if !m.is_empty() => m.to_string(),
                _ => match code.as_str() {
                    "NoSuchKey" => "The specified key does not exist.".to_string(),
                    "NoSuchVersion" => "The specified version does not exist.".to_string(),
                    _ => format!("HTTP {status}: {}", DisplayErrorContext(err)),
                },
            };
            StorageError::new(code, status, message)
        }
        SdkError::ConstructionFailure(_) => StorageError::new(
            "InvalidRequest",
            400,
            format!("the request could not be built: {}", DisplayErrorContext(&e)),
        ),
        SdkError::TimeoutError(_) => StorageError::connection(format!("timeout: {}", DisplayErrorContext(&e))),
        SdkError::DispatchFailure(_) => {
            StorageError::connection(format!("dispatch failure: {}", DisplayErrorContext(&e)))
        }
        SdkError::ResponseError(_) => StorageError::connection(format!("bad response: {}", DisplayErrorContext(&e))),
        _ => StorageError::connection(DisplayErrorContext(&e).to_string()),
    }
}

/// An error code for a response without an error body.
fn code_for_status(status: u16, not_found: &str) -> &str {
    match status {
        301 | 307 => "PermanentRedirect",
        304 => "NotModified",
        400 => "BadRequest",
        403 => "AccessDenied",
        404 => not_found,
        405 => "MethodNotAllowed",
        409 => "Conflict",
        412 => "PreconditionFailed",
        416 => "InvalidRange",
        429 => "TooManyRequests",
        500 => "InternalError",
        501 => "NotImplemented",
        503 => "ServiceUnavailable",
        _ => "UnknownError",
    }
}

/// The HTTP status a single DeleteObject would have answered with a key's error code from a DeleteObjects
/// `Errors` list (which carries no status).
fn delete_error_status(code: &str) -> u16 {
    match code {
        "AccessDenied" | "AllAccessDisabled" | "AccountProblem" | "InvalidObjectState" => 403,
        "NoSuchKey" | "NoSuchVersion" | "NoSuchBucket" => 404,
        "MethodNotAllowed" => 405,
        "Conflict" | "OperationAborted" => 409,
        "PreconditionFailed" => 412,
        "TooManyRequests" => 429,
        "InternalError" => 500,
        "NotImplemented" => 501,
        "SlowDown" | "ServiceUnavailable" => 503,
        _ => 400,
    }
}

/// Each key's answer in a DeleteObjects response, matched by key and version id (a store that ignores version
/// ids, or leaves them out of an answer, is matched by key alone), in the order of `keys`. A key the response
/// does not mention is an `InternalError` (transient: tried again).
fn match_delete_answers<'a>(
    keys: &[DeleteKey],
    answers: impl Iterator<Item = (&'a str, Option<&'a str>, Result<WriteResult>)>,
) -> DeleteResults {
    let mut waiting: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, k) in keys.iter().enumerate() {
        waiting.entry(k.key.as_str()).or_default().push(i);
    }
    let mut results: Vec<Option<Result<WriteResult>>> = vec![None; keys.len()];
    for (key, version, answer) in answers {
        let Some(idx) = waiting.get_mut(key) else { continue };
        let pos = idx.iter().position(|&i| version.is_some() && keys[i].version_id.as_deref() == version).unwrap_or(0);
        if pos < idx.len() {
            results[idx.remove(pos)] = Some(answer);
        }
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(StorageError::new("InternalError", 500, "the DeleteObjects response did not mention this key"))
            })
        })
        .collect()
}

fn not_found_code(obj: &ObjectRef) -> &'static str {
    if obj.version_id.is_some() { "NoSuchVersion" } else { "NoSuchKey" }
}

// ---------------------------------------------------------------------------------------------------------------
// Conversions

/// `key=value&…`, form-encoded, for the `x-amz-tagging` header.
pub fn encode_tagging(tags: &[Tag]) -> String {
    tags.iter()
        .map(|t| format!("{}={}", utf8_percent_encode(&t.key, COMPONENT), utf8_percent_encode(&t.value, COMPONENT)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `x-amz-copy-source`: `bucket/key[?versionId=…]`, URL-encoded with `/` kept.
pub fn copy_source(obj: &ObjectRef) -> String {
    let mut s = format!("{}/{}", utf8_percent_encode(&obj.bucket, PATH), utf8_percent_encode(&obj.key, PATH));
    if let Some(v) = &obj.version_id {
        s.push_str("?versionId=");
        s.push_str(&utf8_percent_encode(v, COMPONENT).to_string());
    }
    s
}

fn millis(t: Option<&DateTime>) -> Millis {
    t.and_then(|t| t.to_millis().ok()).unwrap_or(0)
}

fn unquote(etag: Option<&str>) -> String {
    etag.unwrap_or_default().trim_matches('"').to_string()
}

fn user_metadata(m: &Metadata) -> Option<HashMap<String, String>> {
    (!m.user.is_empty()).then(|| m.user.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// The total size from `Content-Range: bytes a-b/total`.
fn total_from_content_range(r: Option<&str>) -> Option<u64> {
    r?.rsplit_once('/')?.1.trim().parse().ok()
}

/// The fields HEAD and GET share.
struct Head<'a> {
    size: u64,
    etag: Option<&'a str>,
    last_modified: Option<&'a DateTime>,
    version_id: Option<&'a str>,
    storage_class: Option<&'a StorageClass>,
    content_type: Option<&'a str>,
    cache_control: Option<&'a str>,
    content_disposition: Option<&'a str>,
    content_encoding: Option<&'a str>,
    content_language: Option<&'a str>,
    user: Option<&'a HashMap<String, String>>,
    expires: Option<&'a str>,
    restore: Option<&'a str>,
    archive_status: Option<&'a str>,
    sse: Option<&'a ServerSideEncryption>,
    sse_kms_key_id: Option<&'a str>,
    bucket_key_enabled: Option<bool>,
    lock_mode: Option<&'a ObjectLockMode>,
    lock_until: Option<&'a DateTime>,
    legal_hold: Option<&'a ObjectLockLegalHoldStatus>,
    replication_status: Option<&'a str>,
    redirect: Option<&'a str>,
}

/// An HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`, as S3 answers `Expires`) in milliseconds.
fn parse_http_date(s: &str) -> Option<Millis> {
    chrono::DateTime::parse_from_rfc2822(s).ok().map(|t| t.timestamp_millis())
}

/// A [`Head`] from a HeadObject or GetObject output (the same accessors), with the size given.
macro_rules! head_of {
    ($out:expr, $size:expr, $archive_status:expr) => {
        Head {
            size: $size,
            etag: $out.e_tag(),
            last_modified: $out.last_modified(),
            version_id: $out.version_id(),
            storage_class: $out.storage_class(),
            content_type: $out.content_type(),
            cache_control: $out.cache_control(),
            content_disposition: $out.content_disposition(),
            content_encoding: $out.content_encoding(),
            content_language: $out.content_language(),
            user: $out.metadata(),
            expires: $out.expires_string(),
            restore: $out.restore(),
            archive_status: $archive_status,
            sse: $out.server_side_encryption(),
            sse_kms_key_id: $out.ssekms_key_id(),
            bucket_key_enabled: $out.bucket_key_enabled(),
            lock_mode: $out.object_lock_mode(),
            lock_until: $out.object_lock_retain_until_date(),
            legal_hold: $out.object_lock_legal_hold_status(),
            replication_status: $out.replication_status().map(|r| r.as_str()),
            redirect: $out.website_redirect_location(),
        }
    };
}

impl Head<'_> {
    fn info(self) -> ObjectInfo {
        let s = |v: Option<&str>| v.map(str::to_string);
        ObjectInfo {
            size: self.size,
            etag: unquote(self.etag),
            last_modified: millis(self.last_modified),
            version_id: s(self.version_id),
            storage_class: common::normalize_storage_class(self.storage_class.map(|c| c.as_str())),
            metadata: Metadata {
                content_type: s(self.content_type),
                cache_control: s(self.cache_control),
                content_disposition: s(self.content_disposition),
                content_encoding: s(self.content_encoding),
                content_language: s(self.content_language),
                user: self.user.map(|u| u.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default(),
                expires: self.expires.and_then(parse_http_date),
            },
            restore: s(self.restore),
            archive_status: s(self.archive_status),
            server_side_encryption: self.sse.map(|e| e.as_str().to_string()),
            sse_kms_key_id: s(self.sse_kms_key_id),
            bucket_key_enabled: self.bucket_key_enabled,
            object_lock_mode: self.lock_mode.and_then(|m| RetentionMode::parse(m.as_str()).ok()),
            object_lock_retain_until: self.lock_until.and_then(|t| t.to_millis().ok()),
            object_lock_legal_hold: self.legal_hold.map(|h| *h == ObjectLockLegalHoldStatus::On),
            replication_status: s(self.replication_status),
            website_redirect_location: s(self.redirect),
        }
    }
}

/// `x-amz-grant-*`: the grantees, comma separated.
fn grant_header(grantees: &[String]) -> Option<String> {
    (!grantees.is_empty()).then(|| grantees.join(", "))
}

fn request_payer(requester_pays: bool) -> Option<RequestPayer> {
    requester_pays.then_some(RequestPayer::Requester)
}

fn sse_of(sse: Option<String>) -> Option<ServerSideEncryption> {
    sse.as_deref().map(ServerSideEncryption::from)
}

fn legal_hold_status(on: bool) -> ObjectLockLegalHoldStatus {
    if on { ObjectLockLegalHoldStatus::On } else { ObjectLockLegalHoldStatus::Off }
}

/// The checksum named `algorithm` among an output's `checksum_*` fields.
macro_rules! checksum_of {
    ($out:expr, $algorithm:expr) => {
        match $algorithm {
            Some("CRC32") => $out.checksum_crc32(),
            Some("CRC32C") => $out.checksum_crc32_c(),
            Some("CRC64NVME") => $out.checksum_crc64_nvme(),
            Some("SHA1") => $out.checksum_sha1(),
            Some("SHA256") => $out.checksum_sha256(),
            Some("SHA512") => $out.checksum_sha512(),
            Some("MD5") => $out.checksum_md5(),
            Some("XXHASH64") => $out.checksum_xxhash64(),
            Some("XXHASH3") => $out.checksum_xxhash3(),
            Some("XXHASH128") => $out.checksum_xxhash128(),
            _ => None,
        }
        .map(str::to_string)
    };
}

/// A part as CompleteMultipartUpload lists it (ETag in quotes, the checksum in the upload's algorithm).
fn sdk_completed_part(p: &CompletedPart, algorithm: Option<&str>) -> aws_sdk_s3::types::CompletedPart {
    let b = aws_sdk_s3::types::CompletedPart::builder()
        .part_number(p.part_number)
        .e_tag(format!("\"{}\"", p.etag.trim_matches('"')));
    let c = p.checksum.clone();
    match algorithm {
        Some("CRC32") => b.set_checksum_crc32(c),
        Some("CRC32C") => b.set_checksum_crc32_c(c),
        Some("CRC64NVME") => b.set_checksum_crc64_nvme(c),
        Some("SHA1") => b.set_checksum_sha1(c),
        Some("SHA256") => b.set_checksum_sha256(c),
        Some("SHA512") => b.set_checksum_sha512(c),
        Some("MD5") => b.set_checksum_md5(c),
        Some("XXHASH64") => b.set_checksum_xxhash64(c),
        Some("XXHASH3") => b.set_checksum_xxhash3(c),
        Some("XXHASH128") => b.set_checksum_xxhash128(c),
        _ => b,
    }
    .build()
}

/// An SDK grantee as ours.
fn grantee_of(g: &aws_sdk_s3::types::Grantee) -> Option<Grantee> {
    let s = |v: Option<&str>| v.map(str::to_string);
    match (g.r#type(), g.id(), g.email_address(), g.uri()) {
        (Type::CanonicalUser, Some(id), _, _) => {
            Some(Grantee::CanonicalUser { id: id.to_string(), display_name: s(g.display_name()) })
        }
        (Type::AmazonCustomerByEmail, _, Some(e), _) => Some(Grantee::Email(e.to_string())),
        (Type::Group, _, _, Some(u)) => Some(Grantee::Group(u.to_string())),
        (_, Some(id), _, _) => Some(Grantee::CanonicalUser { id: id.to_string(), display_name: s(g.display_name()) }),
        (_, _, Some(e), _) => Some(Grantee::Email(e.to_string())),
        (_, _, _, Some(u)) => Some(Grantee::Group(u.to_string())),
        _ => None,
    }
}

/// The byte ranges of a multipart copy of `size` bytes in parts of `part_size`, raised so that at most 10,000
/// parts are needed.
pub fn plan_parts(size: u64, part_size: u64) -> Vec<std::ops::Range<u64>> {
    let part = part_size.max(size.div_ceil(crate::MAX_PARTS)).max(1);
    (0..size.div_ceil(part)).map(|i| i * part..((i + 1) * part).min(size)).collect()
}

/// Whether a CopyObject error says the source is too large for one copy (S3: `InvalidRequest`, "The specified
/// copy source is larger than the maximum allowable size for a copy source: 5368709120").
fn source_too_large(e: &StorageError) -> bool {
    e.code == "EntityTooLarge"
        || (e.code == "InvalidRequest" && e.message.contains("larger than the maximum allowable size"))
}

fn sdk_tags(tags: &[Tag]) -> Result<Vec<aws_sdk_s3::types::Tag>> {
    tags.iter()
        .map(|t| {
            aws_sdk_s3::types::Tag::builder()
                .key(&t.key)
                .value(&t.value)
                .build()
                .map_err(|e| StorageError::new("InvalidTag", 400, e.to_string()))
        })
        .collect()
}

fn non_empty(prefix: &str) -> Option<String> {
    (!prefix.is_empty()).then(|| prefix.to_string())
}

// ---------------------------------------------------------------------------------------------------------------

/// A CopyObject's metadata and tagging: replaced by the request's, or copied from the source.
fn with_metadata_and_tags(r: CopyObjectFluentBuilder, req: &CopyRequest) -> CopyObjectFluentBuilder {
    let r = match &req.replace_metadata {
        Some(m) => r
            .metadata_directive(MetadataDirective::Replace)
            .set_content_type(m.content_type.clone())
            .set_cache_control(m.cache_control.clone())
            .set_content_disposition(m.content_disposition.clone())
            .set_content_encoding(m.content_encoding.clone())
            .set_content_language(m.content_language.clone())
            .set_expires(m.expires.map(DateTime::from_millis))
            .set_metadata(user_metadata(m)),
        None => r.metadata_directive(MetadataDirective::Copy),
    };
    match &req.tags {
        Some(tags) => r.tagging_directive(TaggingDirective::Replace).tagging(encode_tagging(tags)),
        None => r.tagging_directive(TaggingDirective::Copy),
    }
}

impl S3Store {
    /// One CopyObject.
    async fn single_copy(&self, req: &CopyRequest) -> Result<WriteResult> {
        let mut r = self
            .client
            .copy_object()
            .copy_source(copy_source(&req.source))
            .bucket(&req.dest_bucket)
            .key(&req.dest_key)
            .set_storage_class(req.storage_class.as_deref().map(StorageClass::from))
            .set_acl(req.canned_acl.as_deref().map(ObjectCannedAcl::from))
            .set_grant_read(grant_header(&req.grant_read))
            .set_grant_read_acp(grant_header(&req.grant_read_acp))
            .set_grant_write_acp(grant_header(&req.grant_write_acp))
            .set_grant_full_control(grant_header(&req.grant_full_control))
            .set_server_side_encryption(sse_of(crate::effective_sse(
                req.server_side_encryption.as_deref(),
                req.sse_kms_key_id.as_deref(),
            )))
            .set_ssekms_key_id(req.sse_kms_key_id.clone())
            .set_bucket_key_enabled(req.bucket_key_enabled)
            .set_object_lock_mode(req.object_lock_mode.map(|m| ObjectLockMode::from(m.as_str())))
            .set_object_lock_retain_until_date(req.object_lock_retain_until.map(DateTime::from_millis))
            .set_object_lock_legal_hold_status(req.object_lock_legal_hold.map(legal_hold_status))
            .set_object_lock_event_hold(req.object_lock_event_hold.map(|h| event_hold_status(h.on)))
            .set_object_lock_event_hold_duration_days(event_hold_days(req.object_lock_event_hold))
            .set_object_lock_event_hold_duration_years(event_hold_years(req.object_lock_event_hold))
            .set_annotation_directive(req.annotation_directive.map(|d| AnnotationDirective::from(d.as_str())))
            .set_checksum_algorithm(req.checksum_algorithm.as_deref().map(ChecksumAlgorithm::from))
            .set_request_payer(request_payer(req.requester_pays))
            .set_website_redirect_location(req.website_redirect_location.clone())
            .set_copy_source_if_modified_since(req.if_modified_since.map(DateTime::from_millis))
            .set_copy_source_if_unmodified_since(req.if_unmodified_since.map(DateTime::from_millis));
        r = with_metadata_and_tags(r, req);
        let locked = req.object_lock_mode.is_some()
            || req.object_lock_retain_until.is_some()
            || req.object_lock_legal_hold.is_some()
            || req.object_lock_event_hold.is_some();
        let sent = if locked {
            // Some stores (moto) want an integrity header on any write with object lock headers, as S3 does on
            // PutObject: the MD5 of the (empty) body is always right.
            r.customize()
                .mutate_request(|http| {
                    http.headers_mut().insert("Content-MD5", EMPTY_BODY_MD5);
                })
                .send()
                .await
        } else {
            r.send().await
        };
        let out = sent.map_err(|e| storage_error(e, not_found_code(&req.source)))?;
        Ok(WriteResult {
            version_id: out.version_id().map(str::to_string),
            etag: out.copy_object_result().and_then(|c| c.e_tag()).map(|e| unquote(Some(e))),
        })
    }

    /// A copy as a multipart upload of UploadPartCopy parts (see the module documentation); `src` is the
    /// source's HEAD.
    async fn multipart_copy(&self, req: &CopyRequest, src: ObjectInfo) -> Result<WriteResult> {
        common::check_copy_preconditions(req, src.last_modified)?;
        // Pin the version the HEAD saw, where the store has versions.
        let source = ObjectRef {
            version_id: req.source.version_id.clone().or(src.version_id.clone().filter(|v| v != "null")),
            ..req.source.clone()
        };
        let tags = match &req.tags {
            Some(t) => t.clone(),
            // A store without object tagging (Garage answers NotImplemented) has no tags to carry over, as its
            // own single-request CopyObject would copy none.
            None => match self.get_object_tagging(&source).await {
                Err(e) if e.code == "NotImplemented" => Vec::new(),
                other => other?,
            },
        };
        let (metadata, redirect) = match &req.replace_metadata {
            Some(m) => (m.clone(), None),
            None => (src.metadata.clone(), src.website_redirect_location.clone()),
        };
        let opts = req.new_object_options(metadata, tags, redirect);
        let upload = self.create_multipart_upload(&req.dest_bucket, &req.dest_key, &opts).await?;
        let etag = src.etag.clone();
        let result = async {
            let ranges = plan_parts(src.size, self.multipart_part_size);
            let mut parts: Vec<CompletedPart> = futures::stream::iter(ranges.into_iter().enumerate())
                .map(|(i, r)| self.copy_part(&upload, i as i32 + 1, &source, Some(r), Some(&etag)))
                .buffer_unordered(PART_COPIES_IN_FLIGHT)
                .try_collect()
                .await?;
            parts.sort_by_key(|p| p.part_number);
            self.complete_multipart_upload(&upload, &parts).await
        }
        .await;
        if result.is_err()
            && let Err(e) = self.abort_multipart_upload(&upload).await
        {
            tracing::warn!(bucket = %upload.bucket, key = %upload.key, upload_id = %upload.upload_id, error = %e,
                "could not abort the multipart upload of a failed copy");
        }
        result
    }

    /// UploadPartCopy, optionally only while the source has the ETag `if_match`.
    async fn copy_part(
        &self,
        upload: &MultipartUpload,
        part_number: i32,
        source: &ObjectRef,
        range: Option<Range<u64>>,
        if_match: Option<&str>,
    ) -> Result<CompletedPart> {
        if let Some(r) = &range {
            common::check_range(r)?;
        }
        let out = self
            .client
            .upload_part_copy()
            .bucket(&upload.bucket)
            .key(&upload.key)
            .upload_id(&upload.upload_id)
            .part_number(part_number)
            .copy_source(copy_source(source))
            .set_copy_source_range(range.map(|r| format!("bytes={}-{}", r.start, r.end - 1)))
            .set_copy_source_if_match(if_match.map(|e| format!("\"{e}\"")))
            .set_request_payer(request_payer(upload.requester_pays))
            .send()
            .await
            .map_err(|e| storage_error(e, not_found_code(source)))?;
        let result = out.copy_part_result();
        Ok(CompletedPart {
            part_number,
            etag: unquote(result.and_then(|r| r.e_tag())),
            checksum: result.and_then(|r| checksum_of!(r, upload.checksum_algorithm.as_deref())),
        })
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    fn kind(&self) -> &'static str {
        "s3"
    }

    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        let mut req = self.client.create_bucket().bucket(bucket);
        if self.region != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(self.region.as_str()))
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = storage_error(e, "NoSuchBucket");
                if e.code == "BucketAlreadyOwnedByYou" { Ok(()) } else { Err(e) }
            }
        }
    }

    async fn head_object(&self, obj: &ObjectRef) -> Result<ObjectInfo> {
        let r = self
            .client
            .head_object()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .set_version_id(obj.version_id.clone())
            .send()
            .await;
        let out = match r {
            Ok(out) => out,
            Err(e) => {
                return Err(self.refine_not_found(&obj.bucket, storage_error(e, not_found_code(obj))).await);
            }
        };
        let size = out.content_length().unwrap_or(0).max(0) as u64;
        Ok(head_of!(out, size, out.archive_status().map(|a| a.as_str())).info())
    }

    async fn get_object(&self, obj: &ObjectRef, range: Option<Range<u64>>) -> Result<GetResult> {
        if let Some(r) = &range {
            common::check_range(r)?;
        }
        let range = range.map(|r| match r.end {
            u64::MAX => format!("bytes={}-", r.start),
            end => format!("bytes={}-{}", r.start, end - 1),
        });
        let r = self
            .client
            .get_object()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .set_version_id(obj.version_id.clone())
            .set_range(range)
            .send()
            .await;
        let mut out = match r {
            Ok(out) => out,
            Err(e) => {
                return Err(self.refine_not_found(&obj.bucket, storage_error(e, not_found_code(obj))).await);
            }
        };
        let length = out.content_length().unwrap_or(0).max(0) as u64;
        let size = total_from_content_range(out.content_range()).unwrap_or(length);
        let info = head_of!(out, size, None).info();
        let stream = std::mem::take(&mut out.body);
        let body = futures::stream::unfold(Some(stream), |state| async move {
            let mut stream = state?;
            match stream.next().await {
                Some(Ok(bytes)) => Some((Ok(bytes), Some(stream))),
                Some(Err(e)) => Some((
                    Err(StorageError::connection(format!("reading the body: {}", DisplayErrorContext(&e)))),
                    None,
                )),
                None => None,
            }
        });
        Ok(GetResult { info, body: body.boxed() })
    }

    async fn put_object(&self, bucket: &str, key: &str, body: PutBody, opts: &PutOptions) -> Result<WriteResult> {
        let body = match body {
            PutBody::Bytes(b) => ByteStream::from(b),
            PutBody::File(path) => ByteStream::from_path(&path).await.map_err(|e| {
                StorageError::new(
                    "InvalidArgument",
                    400,
                    format!("cannot read {}: {}", path.display(), DisplayErrorContext(&e)),
                )
            })?,
        };
        let m = &opts.metadata;
        let tagging = (!opts.tags.is_empty()).then(|| encode_tagging(&opts.tags));
        let out = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body)
            .set_content_type(m.content_type.clone())
            .set_cache_control(m.cache_control.clone())
            .set_content_disposition(m.content_disposition.clone())
            .set_content_encoding(m.content_encoding.clone())
            .set_content_language(m.content_language.clone())
            .set_expires(m.expires.map(DateTime::from_millis))
            .set_metadata(user_metadata(m))
            .set_tagging(tagging)
            .send()
            .await
            .map_err(|e| storage_error(e, "NoSuchBucket"))?;
        Ok(WriteResult {
            version_id: out.version_id().map(str::to_string),
            etag: out.e_tag().map(|e| unquote(Some(e))),
        })
    }

    async fn copy_object(&self, req: &CopyRequest) -> Result<WriteResult> {
        if self.multipart_threshold < crate::MAX_SINGLE_COPY {
            let src = self.head_object(&req.source).await?;
            if src.size > self.multipart_threshold {
                return self.multipart_copy(req, src).await;
            }
            return self.single_copy(req).await;
        }
        match self.single_copy(req).await {
            Err(e) if source_too_large(&e) => {
                let src = self.head_object(&req.source).await?;
                self.multipart_copy(req, src).await
            }
            r => r,
        }
    }

    async fn delete_object(&self, obj: &ObjectRef) -> Result<WriteResult> {
        let out = self
            .client
            .delete_object()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .set_version_id(obj.version_id.clone())
            .send()
            .await
            .map_err(|e| storage_error(e, "NoSuchBucket"))?;
        Ok(WriteResult { version_id: out.version_id().map(str::to_string), etag: None })
    }

    /// One DeleteObjects request (`Quiet` off, so every key's `Deleted` or `Error` comes back), version ids sent.
    /// A store that answers `NotImplemented` gets single deletes from then on.
    async fn delete_objects(&self, bucket: &str, keys: &[DeleteKey]) -> Result<DeleteResults> {
        crate::check_delete_batch(keys)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if !self.batch_delete.load(Ordering::Relaxed) {
            return crate::delete_each(self, bucket, keys).await;
        }
        let objects = keys
            .iter()
            .map(|k| ObjectIdentifier::builder().key(&k.key).set_version_id(k.version_id.clone()).build())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| StorageError::new("InvalidRequest", 400, e.to_string()))?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(false)
            .build()
            .map_err(|e| StorageError::new("InvalidRequest", 400, e.to_string()))?;
        let out = match self.client.delete_objects().bucket(bucket).delete(delete).send().await {
            Ok(out) => out,
            Err(e) => {
                let e = storage_error(e, "NoSuchBucket");
                if e.code == "NotImplemented" {
                    tracing::info!(bucket, "the store has no DeleteObjects: deleting one key at a time");
                    self.batch_delete.store(false, Ordering::Relaxed);
                    return crate::delete_each(self, bucket, keys).await;
                }
                return Err(e);
            }
        };
        let answers = out
            .deleted()
            .iter()
            .map(|d| {
                let written = WriteResult {
                    version_id: d.delete_marker_version_id().or(d.version_id()).map(str::to_string),
                    etag: None,
                };
                (d.key().unwrap_or_default(), d.version_id(), Ok(written))
            })
            .chain(out.errors().iter().map(|e| {
                let code = e.code().filter(|c| !c.is_empty()).unwrap_or("InternalError");
                let message = e.message().filter(|m| !m.is_empty()).unwrap_or(code);
                let err = StorageError::new(code, delete_error_status(code), message);
                (e.key().unwrap_or_default(), e.version_id(), Err(err))
            }));
        Ok(match_delete_answers(keys, answers))
    }

    async fn get_object_tagging(&self, obj: &ObjectRef) -> Result<Vec<Tag>> {
        let out = self
            .client
            .get_object_tagging()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .set_version_id(obj.version_id.clone())
            .send()
            .await
            .map_err(|e| storage_error(e, not_found_code(obj)))?;
        Ok(out.tag_set().iter().map(|t| Tag::new(t.key(), t.value())).collect())
    }

    async fn put_object_tagging(&self, obj: &ObjectRef, tags: &[Tag]) -> Result<WriteResult> {
        let tagging = Tagging::builder()
            .set_tag_set(Some(sdk_tags(tags)?))
            .build()
            .map_err(|e| StorageError::new("InvalidTag", 400, e.to_string()))?;
        let out = self
            .client
            .put_object_tagging()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .set_version_id(obj.version_id.clone())
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| storage_error(e, not_found_code(obj)))?;
        Ok(WriteResult { version_id: out.version_id().map(str::to_string), etag: None })
    }

    async fn delete_object_tagging(&self, obj: &ObjectRef) -> Result<WriteResult> {
        let out = self
            .client
            .delete_object_tagging()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .set_version_id(obj.version_id.clone())
            .send()
            .await
            .map_err(|e| storage_error(e, not_found_code(obj)))?;
        Ok(WriteResult { version_id: out.version_id().map(str::to_string), etag: None })
    }

    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
        max_keys: usize,
    ) -> Result<ListPage> {
        self.list_v2(bucket, prefix, continuation, None, max_keys).await
    }

    async fn list_objects_after(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<String>,
        max_keys: usize,
    ) -> Result<ListPage> {
        let mut page = self.list_v2(bucket, prefix, None, start_after, max_keys).await?;
        // The next call passes the last key back as StartAfter.
        if page.next_token.is_some() {
            page.next_token = page.objects.last().map(|o| o.key.clone());
        }
        Ok(page)
    }

    async fn list_object_versions(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: Option<String>,
        version_marker: Option<String>,
        max_keys: usize,
    ) -> Result<VersionPage> {
        let out = self
            .client
            .list_object_versions()
            .bucket(bucket)
            .set_prefix(non_empty(prefix))
            .max_keys(common::page_size(max_keys) as i32)
            .set_key_marker(key_marker)
            .set_version_id_marker(version_marker)
            .send()
            .await
            .map_err(|e| storage_error(e, "NoSuchBucket"))?;
        let versions = out.versions().iter().map(|v| ObjectVersion {
            key: v.key().unwrap_or_default().to_string(),
            version_id: v.version_id().unwrap_or("null").to_string(),
            is_latest: v.is_latest() == Some(true),
            delete_marker: false,
            size: v.size().unwrap_or(0).max(0) as u64,
            etag: unquote(v.e_tag()),
            last_modified: millis(v.last_modified()),
            storage_class: v.storage_class().map(|c| c.as_str().to_string()),
        });
        let markers = out.delete_markers().iter().map(|m| ObjectVersion {
            key: m.key().unwrap_or_default().to_string(),
            version_id: m.version_id().unwrap_or("null").to_string(),
            is_latest: m.is_latest() == Some(true),
            delete_marker: true,
            last_modified: millis(m.last_modified()),
            ..Default::default()
        });
        // The SDK splits what S3 sends in one order; merge back: key order, the latest first, then newest first.
        let mut all: Vec<(usize, ObjectVersion)> = versions.chain(markers).enumerate().collect();
        all.sort_by(|(i, a), (j, b)| {
            a.key
                .cmp(&b.key)
                .then(b.is_latest.cmp(&a.is_latest))
                .then(b.last_modified.cmp(&a.last_modified))
                .then(i.cmp(j))
        });
        let truncated = out.is_truncated() == Some(true);
        Ok(VersionPage {
            versions: all.into_iter().map(|(_, v)| v).collect(),
            next_key_marker: out.next_key_marker().filter(|_| truncated).map(str::to_string),
            next_version_marker: out.next_version_id_marker().filter(|_| truncated).map(str::to_string),
        })
    }

    async fn put_object_acl(&self, obj: &ObjectRef, acl: &Acl) -> Result<()> {
        let mut r =
            self.client.put_object_acl().bucket(&obj.bucket).key(&obj.key).set_version_id(obj.version_id.clone());
        match acl {
            Acl::Canned(c) => r = r.acl(ObjectCannedAcl::from(c.as_str())),
            Acl::Policy(p) if !p.grants.is_empty() => {
                let header = |perm: Permission| {
                    let g: Vec<String> =
                        p.grants.iter().filter(|g| g.permission == perm).map(|g| g.grantee.header_value()).collect();
                    grant_header(&g)
                };
                r = r
                    .set_grant_read(header(Permission::Read))
                    .set_grant_write(header(Permission::Write))
                    .set_grant_read_acp(header(Permission::ReadAcp))
                    .set_grant_write_acp(header(Permission::WriteAcp))
                    .set_grant_full_control(header(Permission::FullControl));
            }
            Acl::Policy(p) => {
                let owner = aws_sdk_s3::types::Owner::builder()
                    .id(&p.owner.id)
                    .set_display_name(p.owner.display_name.clone())
                    .build();
                r = r.access_control_policy(
                    AccessControlPolicy::builder().owner(owner).set_grants(Some(vec![])).build(),
                );
            }
        }
        r.send().await.map_err(|e| storage_error(e, not_found_code(obj)))?;
        Ok(())
    }

    async fn get_object_acl(&self, obj: &ObjectRef) -> Result<AclPolicy> {
        let out = self
            .client
            .get_object_acl()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .set_version_id(obj.version_id.clone())
            .send()
            .await
            .map_err(|e| storage_error(e, not_found_code(obj)))?;
        let owner = out
            .owner()
            .map(|o| Owner {
                id: o.id().unwrap_or_default().to_string(),
                display_name: o.display_name().map(str::to_string),
            })
            .unwrap_or_default();
        let mut grants = Vec::new();
        for g in out.grants() {
            let (Some(grantee), Some(p)) = (g.grantee().and_then(grantee_of), g.permission()) else { continue };
            grants.push(Grant::new(grantee, Permission::parse(p.as_str())?));
        }
        Ok(AclPolicy { owner, grants })
    }

    async fn put_object_retention(
        &self,
        obj: &ObjectRef,
        mode: Option<RetentionMode>,
        retain_until: Option<Millis>,
        bypass_governance: bool,
        event_hold: Option<EventHold>,
    ) -> Result<()> {
        let retention = ObjectLockRetention::builder()
            .set_mode(mode.map(|m| ObjectLockRetentionMode::from(m.as_str())))
            .set_retain_until_date(retain_until.map(DateTime::from_millis))
            .set_event_hold(event_hold.map(|h| event_hold_status(h.on)))
            .set_event_hold_duration(event_hold.and_then(|h| h.duration).map(|_| {
                SdkEventHoldDuration::builder()
                    .set_days(event_hold_days(event_hold))
                    .set_years(event_hold_years(event_hold))
                    .build()
            }))
            .build();
        self.client
            .put_object_retention()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .set_version_id(obj.version_id.clone())
            .retention(retention)
            .set_bypass_governance_retention(bypass_governance.then_some(true))
            .send()
            .await
            .map_err(|e| storage_error(e, not_found_code(obj)))?;
        Ok(())
    }

    async fn get_object_retention(&self, obj: &ObjectRef) -> Result<Retention> {
        let r = self
            .client
            .get_object_retention()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .set_version_id(obj.version_id.clone())
            .send()
            .await
            .map_err(|e| storage_error(e, not_found_code(obj)));
        let out = match r {
            Ok(out) => out,
            Err(e) if e.code == "NoSuchObjectLockConfiguration" => return Ok(Retention::default()),
            Err(e) => return Err(e),
        };
        let Some(r) = out.retention() else { return Ok(Retention::default()) };
        Ok(Retention {
            mode: r.mode().map(|m| RetentionMode::parse(m.as_str())).transpose()?,
            retain_until: r.retain_until_date().and_then(|t| t.to_millis().ok()),
        })
    }

    async fn put_object_legal_hold(&self, obj: &ObjectRef, on: bool) -> Result<()> {
        self.client
            .put_object_legal_hold()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .set_version_id(obj.version_id.clone())
            .legal_hold(ObjectLockLegalHold::builder().status(legal_hold_status(on)).build())
            .send()
            .await
            .map_err(|e| storage_error(e, not_found_code(obj)))?;
        Ok(())
    }

    async fn get_object_legal_hold(&self, obj: &ObjectRef) -> Result<bool> {
        let r = self
            .client
            .get_object_legal_hold()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .set_version_id(obj.version_id.clone())
            .send()
            .await
            .map_err(|e| storage_error(e, not_found_code(obj)));
        match r {
            Ok(out) => Ok(out.legal_hold().and_then(|h| h.status()) == Some(&ObjectLockLegalHoldStatus::On)),
            Err(e) if e.code == "NoSuchObjectLockConfiguration" => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn restore_object(&self, obj: &ObjectRef, days: Option<i32>, tier: Option<RestoreTier>) -> Result<()> {
        let params = match tier {
            Some(t) => Some(
                GlacierJobParameters::builder()
                    .tier(Tier::from(t.as_str()))
                    .build()
                    .map_err(|e| StorageError::new("InvalidArgument", 400, e.to_string()))?,
            ),
            None => None,
        };
        self.client
            .restore_object()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .set_version_id(obj.version_id.clone())
            .restore_request(RestoreRequest::builder().set_days(days).set_glacier_job_parameters(params).build())
            .send()
            .await
            .map_err(|e| storage_error(e, not_found_code(obj)))?;
        Ok(())
    }

    async fn create_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        opts: &MultipartOptions,
    ) -> Result<MultipartUpload> {
        let m = &opts.metadata;
        let out = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .set_content_type(m.content_type.clone())
            .set_cache_control(m.cache_control.clone())
            .set_content_disposition(m.content_disposition.clone())
            .set_content_encoding(m.content_encoding.clone())
            .set_content_language(m.content_language.clone())
            .set_expires(m.expires.map(DateTime::from_millis))
            .set_metadata(user_metadata(m))
            .set_tagging((!opts.tags.is_empty()).then(|| encode_tagging(&opts.tags)))
            .set_storage_class(opts.storage_class.as_deref().map(StorageClass::from))
            .set_acl(opts.canned_acl.as_deref().map(ObjectCannedAcl::from))
            .set_grant_read(grant_header(&opts.grant_read))
            .set_grant_read_acp(grant_header(&opts.grant_read_acp))
            .set_grant_write_acp(grant_header(&opts.grant_write_acp))
            .set_grant_full_control(grant_header(&opts.grant_full_control))
            .set_server_side_encryption(sse_of(opts.effective_sse()))
            .set_ssekms_key_id(opts.sse_kms_key_id.clone())
            .set_bucket_key_enabled(opts.bucket_key_enabled)
            .set_object_lock_mode(opts.object_lock_mode.map(|m| ObjectLockMode::from(m.as_str())))
            .set_object_lock_retain_until_date(opts.object_lock_retain_until.map(DateTime::from_millis))
            .set_object_lock_legal_hold_status(opts.object_lock_legal_hold.map(legal_hold_status))
            .set_object_lock_event_hold(opts.object_lock_event_hold.map(|h| event_hold_status(h.on)))
            .set_object_lock_event_hold_duration_days(event_hold_days(opts.object_lock_event_hold))
            .set_object_lock_event_hold_duration_years(event_hold_years(opts.object_lock_event_hold))
            .set_checksum_algorithm(opts.checksum_algorithm.as_deref().map(ChecksumAlgorithm::from))
            .set_request_payer(request_payer(opts.requester_pays))
            .set_website_redirect_location(opts.website_redirect_location.clone())
            .send()
            .await
            .map_err(|e| storage_error(e, "NoSuchBucket"))?;
        let upload_id = out
            .upload_id()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| StorageError::connection("CreateMultipartUpload answered no UploadId"))?;
        Ok(MultipartUpload {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: upload_id.to_string(),
            checksum_algorithm: opts.checksum_algorithm.clone(),
            requester_pays: opts.requester_pays,
        })
    }

    async fn upload_part_copy(
        &self,
        upload: &MultipartUpload,
        part_number: i32,
        source: &ObjectRef,
        range: Option<Range<u64>>,
    ) -> Result<CompletedPart> {
        self.copy_part(upload, part_number, source, range, None).await
    }

    async fn upload_part(&self, upload: &MultipartUpload, part_number: i32, data: Bytes) -> Result<CompletedPart> {
        let out = self
            .client
            .upload_part()
            .bucket(&upload.bucket)
            .key(&upload.key)
            .upload_id(&upload.upload_id)
            .part_number(part_number)
            .body(ByteStream::from(data))
            .set_checksum_algorithm(upload.checksum_algorithm.as_deref().map(ChecksumAlgorithm::from))
            .set_request_payer(request_payer(upload.requester_pays))
            .send()
            .await
            .map_err(|e| storage_error(e, "NoSuchUpload"))?;
        Ok(CompletedPart {
            part_number,
            etag: unquote(out.e_tag()),
            checksum: checksum_of!(out, upload.checksum_algorithm.as_deref()),
        })
    }

    async fn complete_multipart_upload(
        &self,
        upload: &MultipartUpload,
        parts: &[CompletedPart],
    ) -> Result<WriteResult> {
        let algorithm = upload.checksum_algorithm.as_deref();
        let parts: Vec<_> = parts.iter().map(|p| sdk_completed_part(p, algorithm)).collect();
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(&upload.bucket)
            .key(&upload.key)
            .upload_id(&upload.upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .set_request_payer(request_payer(upload.requester_pays))
            .send()
            .await
            .map_err(|e| storage_error(e, "NoSuchUpload"))?;
        Ok(WriteResult {
            version_id: out.version_id().map(str::to_string),
            etag: out.e_tag().map(|e| unquote(Some(e))),
        })
    }

    async fn abort_multipart_upload(&self, upload: &MultipartUpload) -> Result<()> {
        self.client
            .abort_multipart_upload()
            .bucket(&upload.bucket)
            .key(&upload.key)
            .upload_id(&upload.upload_id)
            .set_request_payer(request_payer(upload.requester_pays))
            .send()
            .await
            .map_err(|e| storage_error(e, "NoSuchUpload"))?;
        Ok(())
    }
}

fn event_hold_status(on: bool) -> ObjectLockEventHold {
    if on { ObjectLockEventHold::On } else { ObjectLockEventHold::Off }
}

fn event_hold_days(h: Option<EventHold>) -> Option<i32> {
    match h?.duration? {
        crate::EventHoldDuration::Days(n) => Some(n),
        crate::EventHoldDuration::Years(_) => None,
    }
}

fn event_hold_years(h: Option<EventHold>) -> Option<i32> {
    match h?.duration? {
        crate::EventHoldDuration::Years(n) => Some(n),
        crate::EventHoldDuration::Days(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    #[test]
    fn copy_source_is_url_encoded_keeping_slashes() {
        let o = ObjectRef::new("bucket", "dir/sub/a b+c%d#e?f ü.txt");
        assert_eq!(copy_source(&o), "bucket/dir/sub/a%20b%2Bc%25d%23e%3Ff%20%C3%BC.txt");
        let o = o.with_version(Some("a+b/c=".into()));
        assert!(copy_source(&o).ends_with("?versionId=a%2Bb%2Fc%3D"));
    }

    #[test]
    fn tagging_is_form_encoded() {
        let t = vec![Tag::new("a b", "c&d=e"), Tag::new("ü", "+/%")];
        assert_eq!(encode_tagging(&t), "a%20b=c%26d%3De&%C3%BC=%2B%2F%25");
        assert_eq!(encode_tagging(&[]), "");
    }

    #[test]
    fn parts_are_planned_within_s3_limits() {
        let mib = 1024 * 1024;
        assert_eq!(plan_parts(11 * mib, 5 * mib), vec![0..5 * mib, 5 * mib..10 * mib, 10 * mib..11 * mib]);
        assert_eq!(plan_parts(10 * mib, 5 * mib), vec![0..5 * mib, 5 * mib..10 * mib]);
        assert_eq!(plan_parts(1, 5 * mib), vec![0..1]);
        assert!(plan_parts(0, 5 * mib).is_empty());
        // 5 TiB in 512 MiB parts: 10,240 parts are too many, so the parts grow.
        let tib5 = 5 * 1024 * 1024 * mib;
        let parts = plan_parts(tib5, 512 * mib);
        assert!(parts.len() as u64 <= crate::MAX_PARTS, "{} parts", parts.len());
        assert_eq!(parts.last().unwrap().end, tib5);
        assert!(parts.windows(2).all(|w| w[0].end == w[1].start));
    }

    #[test]
    fn too_large_sources_are_recognised() {
        let s3 = StorageError::new(
            "InvalidRequest",
            400,
            "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120",
        );
        assert!(source_too_large(&s3));
        assert!(source_too_large(&StorageError::new("EntityTooLarge", 400, "too large")));
        assert!(!source_too_large(&StorageError::new("InvalidRequest", 400, "something else")));
        assert!(!source_too_large(&StorageError::no_such_key()));
    }

    #[test]
    fn grantees_and_parts_convert() {
        let g = aws_sdk_s3::types::Grantee::builder().r#type(Type::Group).uri(crate::ALL_USERS).build().unwrap();
        assert_eq!(grantee_of(&g), Some(Grantee::Group(crate::ALL_USERS.into())));
        let g = aws_sdk_s3::types::Grantee::builder()
            .r#type(Type::CanonicalUser)
            .id("abc")
            .display_name("me")
            .build()
            .unwrap();
        assert_eq!(grantee_of(&g), Some(Grantee::CanonicalUser { id: "abc".into(), display_name: Some("me".into()) }));
        let g = aws_sdk_s3::types::Grantee::builder()
            .r#type(Type::AmazonCustomerByEmail)
            .email_address("a@b.c")
            .build()
            .unwrap();
        assert_eq!(grantee_of(&g), Some(Grantee::Email("a@b.c".into())));
        let p = CompletedPart { part_number: 3, etag: "abc".into(), checksum: Some("AAAA".into()) };
        let sdk = sdk_completed_part(&p, Some("CRC32C"));
        assert_eq!((sdk.part_number(), sdk.e_tag(), sdk.checksum_crc32_c()), (Some(3), Some("\"abc\""), Some("AAAA")));
        assert_eq!(sdk_completed_part(&p, None).checksum_crc32_c(), None);
        assert_eq!(grant_header(&[]), None);
        assert_eq!(grant_header(&["id=\"a\"".into(), "uri=\"b\"".into()]).as_deref(), Some("id=\"a\", uri=\"b\""));
    }

    #[test]
    fn content_range_total() {
        assert_eq!(total_from_content_range(Some("bytes 0-9/200000")), Some(200_000));
        assert_eq!(total_from_content_range(Some("bytes 0-9/*")), None);
        assert_eq!(total_from_content_range(None), None);
    }

    /// Endpoint parameters as the SDK's operations set them, over the settings and bucket kinds that lead the
    /// rules down different paths: custom endpoints (path style and virtual host), AWS partitions, FIPS, dual
    /// stack, accelerate, the global endpoint, access point, Outposts and multi-region ARNs, S3 Express buckets,
    /// object lambda, and parameters the rules refuse.
    fn endpoint_settings() -> Vec<ParamsBuilder> {
        let b = |region: &str| Params::builder().region(region);
        let mut all = Vec::new();
        for endpoint in
            [None, Some("http://127.0.0.1:3900"), Some("http://localhost:9000"), Some("https://s3.example.com")]
        {
            for path_style in [false, true] {
                for bucket in [None, Some("bucket"), Some("my.dotted.bucket"), Some("Not_DNS")] {
                    all.push(
                        b("us-east-1")
                            .set_endpoint(endpoint.map(str::to_string))
                            .force_path_style(path_style)
                            .set_bucket(bucket.map(str::to_string)),
                    );
                }
            }
        }
        for region in ["us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1", "garage", "aws-global"] {
            all.push(b(region).bucket("bucket"));
            all.push(b(region).bucket("bucket").use_fips(true));
            all.push(b(region).bucket("bucket").use_dual_stack(true));
            all.push(b(region).bucket("bucket").accelerate(true));
            all.push(b(region).bucket("bucket").use_global_endpoint(true));
        }
        for bucket in [
            "arn:aws:s3:us-west-2:123456789012:accesspoint:myendpoint",
            "arn:aws:s3:us-west-2:123456789012:accesspoint/myendpoint",
            "arn:aws:s3-outposts:us-west-2:123456789012:outpost:op-01234567890123456:accesspoint:reports",
            "arn:aws:s3::123456789012:accesspoint:mfzwi23gnjvgw.mrap",
            "arn:aws:s3-object-lambda:us-west-2:123456789012:accesspoint/mybanner",
            "arn:aws:not-s3:us-west-2:123456789012:accesspoint:myendpoint",
            "mybucket--use1-az1--x-s3",
        ] {
            all.push(b("us-west-2").bucket(bucket));
            all.push(b("us-east-1").bucket(bucket).use_arn_region(true));
            all.push(b("us-east-1").bucket(bucket).use_arn_region(false));
            all.push(b("us-west-2").bucket(bucket).disable_access_points(true));
            all.push(b("us-west-2").bucket(bucket).disable_multi_region_access_points(true));
        }
        all.push(b("us-west-2").bucket("mybucket--use1-az1--x-s3").disable_s3_express_session_auth(true));
        all.push(b("us-east-1").bucket("mybucket--use1-az1--x-s3").use_s3_express_control_endpoint(true));
        all.push(b("us-west-2").use_object_lambda_endpoint(true));
        all.push(b("a b").bucket("bucket"));
        all.push(Params::builder().bucket("bucket"));
        all
    }

    /// What the SDK's own rules give: an endpoint, or the error's text.
    fn by_rules(params: &Params) -> std::result::Result<Endpoint, String> {
        DefaultResolver::new().resolve_endpoint(params).now_or_never().unwrap().map_err(|e| e.to_string())
    }

    #[test]
    fn cached_endpoints_are_the_rules_endpoints_whatever_the_key() {
        let objects: [(Option<&str>, Option<&str>, Option<&str>); 6] = [
            (None, None, None),
            (Some("a"), None, None),
            (Some("dir/sub/a b+c%d#e?f ü.txt"), None, None),
            (Some("x"), None, Some("src-bucket/dir/a%20b")),
            (None, Some("logs/2026/"), None),
            (Some(".."), Some("p"), Some("arn:aws:s3:us-west-2:123456789012:accesspoint/src/object/k")),
        ];
        let resolver = CachingResolver::new();
        let (mut ok, mut refused) = (0, 0);
        for settings in endpoint_settings() {
            for (key, prefix, copy_source) in objects {
                let params = settings
                    .clone()
                    .set_key(key.map(str::to_string))
                    .set_prefix(prefix.map(str::to_string))
                    .set_copy_source(copy_source.map(str::to_string))
                    .build()
                    .unwrap();
                let want = by_rules(&params);
                let got = resolver.resolve_endpoint(&params).now_or_never().unwrap().map_err(|e| e.to_string());
                assert_eq!(got, want, "{params:?}");
                if want.is_ok() { ok += 1 } else { refused += 1 }
            }
        }
        // Both paths were exercised, and the cache served most of the answers.
        assert!(ok > 300 && refused > 20, "{ok} resolved, {refused} refused");
        assert!(resolver.len() <= ENDPOINT_CACHE_ENTRIES);
    }

    #[test]
    fn the_endpoint_cache_is_bounded_and_keeps_recent_buckets() {
        let resolver = CachingResolver::new();
        let params = |bucket: String, key: &str| {
            Params::builder()
                .region("garage")
                .endpoint("http://127.0.0.1:3900")
                .force_path_style(true)
                .bucket(bucket)
                .key(key)
                .build()
                .unwrap()
        };
        for i in 0..ENDPOINT_CACHE_ENTRIES + 10 {
            let p = params(format!("bucket-{i}"), "k");
            let e = resolver.resolve_endpoint(&p).now_or_never().unwrap().unwrap();
            assert_eq!(e.url(), format!("http://127.0.0.1:3900/bucket-{i}"));
            assert!(resolver.len() <= ENDPOINT_CACHE_ENTRIES);
        }
        assert_eq!(resolver.len(), ENDPOINT_CACHE_ENTRIES);
        let last = params(format!("bucket-{}", ENDPOINT_CACHE_ENTRIES + 9), "other key");
        assert!(resolver.cached(&last).is_some());
        assert!(resolver.cached(&params("bucket-0".into(), "k")).is_none());
    }

    /// The cache compares every parameter but three by name: a parameter a newer SDK adds must be added to
    /// [`same_but_object`] and [`all_but_object`] (or shown not to matter) before this passes again.
    #[test]
    fn endpoint_parameters_are_all_known() {
        let debug = format!("{:?}", Params::builder().build().unwrap());
        let inner = debug.strip_prefix("Params { ").and_then(|d| d.strip_suffix(" }")).unwrap();
        let names: Vec<&str> = inner.split(", ").map(|f| f.split(':').next().unwrap()).collect();
        assert_eq!(
            names,
            [
                "bucket",
                "region",
                "use_fips",
                "use_dual_stack",
                "endpoint",
                "force_path_style",
                "accelerate",
                "use_global_endpoint",
                "use_object_lambda_endpoint",
                "key",
                "prefix",
                "copy_source",
                "disable_access_points",
                "disable_multi_region_access_points",
                "use_arn_region",
                "use_s3_express_control_endpoint",
                "disable_s3_express_session_auth",
            ]
        );
        // Parameters round-trip through the cache's key with their object parameters put back.
        for settings in endpoint_settings() {
            let p = settings.key("k").copy_source("b/k").build().unwrap();
            let key = without_object(&p).unwrap();
            assert!(same_but_object(&key, &p));
            assert_eq!((key.key(), key.prefix(), key.copy_source()), (None, None, None));
        }
    }

    #[test]
    fn the_client_uses_the_caching_resolver() {
        let s = S3Store::from_config(&s3_config()).unwrap();
        let resolver = format!("{:?}", s.client.config().endpoint_resolver());
        assert!(resolver.contains("CachingResolver"), "{resolver}");
    }

    fn s3_config() -> StorageConfig {
        StorageConfig {
            kind: crate::BackendKind::S3,
            access_key_id: Some("AKIDEXAMPLE".into()),
            secret_access_key: Some("secret".into()),
            endpoint: Some("http://127.0.0.1:9".into()),
            force_path_style: true,
            root: None,
            ..StorageConfig::local("s3", "")
        }
    }

    /// The clients speak TLS to an `https://` endpoint (rustls on ring; the SDK's default aws-lc client is not
    /// built): the first bytes a listener gets are a TLS ClientHello, and the failed handshake is the call's error.
    #[tokio::test]
    async fn an_https_endpoint_gets_a_tls_handshake() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut c = s3_config();
        c.endpoint = Some(format!("https://{}", listener.local_addr().unwrap()));
        let store = S3Store::from_config(&c).unwrap();
        let call = tokio::spawn(async move { store.client().head_bucket().bucket("b").send().await });
        let accepted = tokio::time::timeout(std::time::Duration::from_secs(20), listener.accept()).await;
        let (mut conn, _) = accepted.expect("the client never connected").unwrap();
        let mut hello = [0u8; 6];
        conn.read_exact(&mut hello).await.unwrap();
        assert_eq!(hello[0], 0x16, "a TLS handshake record");
        assert_eq!(hello[5], 0x01, "a ClientHello");
        drop((conn, listener));
        let e = call.await.unwrap().expect_err("no TLS server answered");
        assert!(matches!(e, SdkError::DispatchFailure(_)), "{}", DisplayErrorContext(&e));
    }

    #[test]
    fn config_needs_credentials() {
        assert!(S3Store::from_config(&s3_config()).is_ok());
        let mut c = s3_config();
        c.access_key_id = None;
        assert!(S3Store::from_config(&c).unwrap_err().contains("access_key_id"));
        let mut c = s3_config();
        c.secret_access_key = None;
        assert!(S3Store::from_config(&c).unwrap_err().contains("secret_access_key"));
        let mut c = s3_config();
        c.endpoint = Some("127.0.0.1:9000".into());
        assert!(S3Store::from_config(&c).unwrap_err().contains("http://"));
        let mut c = s3_config();
        c.multipart_part_size = 1024 * 1024;
        assert!(S3Store::from_config(&c).unwrap_err().contains("multipart_part_size"));
        c.multipart_part_size = 6 * 1024 * 1024 * 1024;
        assert!(S3Store::from_config(&c).unwrap_err().contains("multipart_part_size"));
        c.multipart_part_size = 5 * 1024 * 1024;
        c.multipart_threshold = 1;
        let s = S3Store::from_config(&c).unwrap();
        assert!(format!("{s:?}").contains("multipart_threshold: 1"));
        let s = s.with_multipart_sizes(10, 0);
        assert_eq!((s.multipart_threshold, s.multipart_part_size), (10, 1));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "from-file\n").unwrap();
        let mut c = s3_config();
        c.secret_access_key = None;
        c.secret_access_key_file = Some(file);
        let s = S3Store::from_config(&c).unwrap();
        assert_eq!(s.kind(), "s3");
        assert!(!format!("{s:?}").contains("from-file"));
        c.secret_access_key_file = Some(dir.path().join("missing"));
        assert!(S3Store::from_config(&c).unwrap_err().contains("secret_access_key_file"));
    }

    #[tokio::test]
    async fn unreachable_endpoint_is_a_transient_connection_error() {
        let mut c = s3_config();
        // Port 9 (discard) on localhost: refused at once.
        c.endpoint = Some("http://127.0.0.1:9".into());
        let s = S3Store::from_config(&c).unwrap();
        let s = S3Store::from_client(Client::from_conf(
            s.client.config().to_builder().retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled()).build(),
        ));
        let e = s.head_object(&ObjectRef::new("b", "k")).await.unwrap_err();
        assert_eq!(e.code, "ConnectionReset", "{e:?}");
        assert!(e.transient);
    }

    /// A one-request-per-connection HTTP server that answers with `answers` in turn (the last one again once they
    /// run out) and hands back the head of every request it got, lower-cased header names.
    async fn canned_server(
        answers: Vec<String>,
    ) -> (String, tokio::sync::mpsc::UnboundedReceiver<Vec<(String, String)>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            for n in 0.. {
                let Ok((mut conn, _)) = listener.accept().await else { return };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).await.unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let headers: Vec<(String, String)> = String::from_utf8_lossy(&head)
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let length = headers.iter().find(|(k, _)| k == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
                let mut body = vec![0u8; length];
                conn.read_exact(&mut body).await.unwrap();
                let _ = tx.send(headers);
                let answer = &answers[n.min(answers.len() - 1)];
                conn.write_all(answer.as_bytes()).await.unwrap();
                conn.shutdown().await.unwrap();
            }
        });
        (endpoint, rx)
    }

    /// A DeleteObject through a client of the config, against a `canned_server` of `answers`; its requests.
    async fn delete_against(answers: Vec<String>) -> tokio::sync::mpsc::UnboundedReceiver<Vec<(String, String)>> {
        let (endpoint, requests) = canned_server(answers).await;
        let mut c = s3_config();
        c.endpoint = Some(endpoint);
        let store = S3Store::from_config(&c).unwrap();
        store.client().delete_object().bucket("b").key("k").send().await.unwrap();
        requests
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
        headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    fn answer(status: &str, extra_headers: &str, body: &str) -> String {
        format!("HTTP/1.1 {status}\r\n{extra_headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
    }

    /// s3batch's requests say `User-Agent: s3batch/<version>` and carry neither the SDK's user agent nor its
    /// invocation id (`LeanRequests`), on the first attempt and on a retry, and are still signed; a retryable answer
    /// is still retried by the SDK, and each attempt still says its number.
    #[tokio::test]
    async fn requests_carry_s3batchs_user_agent_and_no_sdk_invocation_id() {
        let slow_down = answer(
            "503 Service Unavailable",
            "Content-Type: application/xml\r\n",
            "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
        );
        let mut requests = delete_against(vec![slow_down, answer("204 No Content", "", "")]).await;
        for attempt in 1..=2 {
            let headers = requests.try_recv().unwrap_or_else(|_| panic!("attempt {attempt} was not sent"));
            assert_eq!(header(&headers, "user-agent"), [USER_AGENT], "{headers:?}");
            assert_eq!(header(&headers, "amz-sdk-request"), [format!("attempt={attempt}; max=3")], "{headers:?}");
            for sdk_only in ["x-amz-user-agent", "amz-sdk-invocation-id"] {
                assert!(header(&headers, sdk_only).is_empty(), "{sdk_only} sent: {headers:?}");
            }
            let auth = header(&headers, "authorization");
            assert!(auth.len() == 1 && auth[0].starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), "{auth:?}");
        }
        assert!(requests.try_recv().is_err(), "a third request");
        assert!(USER_AGENT.starts_with("s3batch/") && USER_AGENT.len() > "s3batch/".len());
    }

    /// The SDK's clock-skew correction stays on: after a `RequestTimeTooSkewed` from a store whose clock is an hour
    /// ahead, the retry is signed with the store's time.
    #[tokio::test]
    async fn clock_skew_correction_stays_on() {
        let ahead = chrono::Utc::now() + chrono::Duration::hours(1);
        let skewed = answer(
            "403 Forbidden",
            &format!("Content-Type: application/xml\r\nDate: {}\r\n", ahead.format("%a, %d %b %Y %H:%M:%S GMT")),
            "<Error><Code>RequestTimeTooSkewed</Code><Message>The difference is too large.</Message></Error>",
        );
        let mut requests = delete_against(vec![skewed, answer("204 No Content", "", "")]).await;
        let signed_at = |headers: Vec<(String, String)>| {
            let date = header(&headers, "x-amz-date")[0].to_string();
            chrono::NaiveDateTime::parse_from_str(&date, "%Y%m%dT%H%M%SZ").unwrap()
        };
        let first = signed_at(requests.try_recv().unwrap());
        let retry = signed_at(requests.try_recv().expect("the skewed answer was not retried"));
        let shift = retry - first;
        assert!(shift > chrono::Duration::minutes(55) && shift < chrono::Duration::minutes(65), "{shift}");
    }
}
