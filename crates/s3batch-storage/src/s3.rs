//! [`S3Store`]: any S3-compatible store through the official `aws-sdk-s3`.
//!
//! The client is built from the `[[storage]]` entry alone (static credentials, no `aws-config` loader). Every SDK
//! error goes through one function, [`storage_error`]: the store's own error code and HTTP status are kept (a HEAD
//! has no error body: a 404 is then `NoSuchKey`, `NoSuchVersion` or — after a HeadBucket — `NoSuchBucket`);
//! timeouts, dispatch failures and unreadable responses are [`StorageError::connection`] (transient).
//!
//! Listing tokens are S3's own `NextContinuationToken`s: opaque, pass them back unchanged.

use std::collections::HashMap;
use std::ops::Range;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, MetadataDirective, ObjectCannedAcl, StorageClass, Tagging,
    TaggingDirective,
};
use futures::StreamExt;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::common;
use crate::config::StorageConfig;
use crate::{
    CopyRequest, GetResult, ListPage, ListedObject, Metadata, Millis, ObjectInfo, ObjectRef, ObjectStore, PutBody,
    PutOptions, Result, StorageError, Tag, WriteResult,
};

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
}

impl std::fmt::Debug for S3Store {
    /// Never the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// A client for a `kind = "s3"` entry: static credentials, the region (default `us-east-1`), the endpoint and
    /// path style if given, and checksums only when required unless `checksum_when_required = false`.
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
        let region = c.region.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| "us-east-1".into());
        let mut b = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.clone()))
            .force_path_style(c.force_path_style)
            .credentials_provider(Credentials::new(access_key, secret, None, None, "s3batch-config"));
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
        Ok(S3Store { client: Client::from_conf(b.build()), region, endpoint: c.endpoint.clone() })
    }

    /// Wrap a client built elsewhere.
    pub fn from_client(client: Client) -> S3Store {
        let region = client.config().region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into());
        S3Store { client, region, endpoint: None }
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
            },
        }
    }
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
        Ok(Head {
            size: out.content_length().unwrap_or(0).max(0) as u64,
            etag: out.e_tag(),
            last_modified: out.last_modified(),
            version_id: out.version_id(),
            storage_class: out.storage_class(),
            content_type: out.content_type(),
            cache_control: out.cache_control(),
            content_disposition: out.content_disposition(),
            content_encoding: out.content_encoding(),
            content_language: out.content_language(),
            user: out.metadata(),
        }
        .info())
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
        let info = Head {
            size: total_from_content_range(out.content_range()).unwrap_or(length),
            etag: out.e_tag(),
            last_modified: out.last_modified(),
            version_id: out.version_id(),
            storage_class: out.storage_class(),
            content_type: out.content_type(),
            cache_control: out.cache_control(),
            content_disposition: out.content_disposition(),
            content_encoding: out.content_encoding(),
            content_language: out.content_language(),
            user: out.metadata(),
        }
        .info();
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
        let mut r = self
            .client
            .copy_object()
            .copy_source(copy_source(&req.source))
            .bucket(&req.dest_bucket)
            .key(&req.dest_key)
            .set_storage_class(req.storage_class.as_deref().map(StorageClass::from))
            .set_acl(req.canned_acl.as_deref().map(ObjectCannedAcl::from))
            .set_copy_source_if_modified_since(req.if_modified_since.map(DateTime::from_millis))
            .set_copy_source_if_unmodified_since(req.if_unmodified_since.map(DateTime::from_millis));
        r = match &req.replace_metadata {
            Some(m) => r
                .metadata_directive(MetadataDirective::Replace)
                .set_content_type(m.content_type.clone())
                .set_cache_control(m.cache_control.clone())
                .set_content_disposition(m.content_disposition.clone())
                .set_content_encoding(m.content_encoding.clone())
                .set_content_language(m.content_language.clone())
                .set_metadata(user_metadata(m)),
            None => r.metadata_directive(MetadataDirective::Copy),
        };
        r = match &req.tags {
            Some(tags) => r.tagging_directive(TaggingDirective::Replace).tagging(encode_tagging(tags)),
            None => r.tagging_directive(TaggingDirective::Copy),
        };
        let out = r.send().await.map_err(|e| storage_error(e, not_found_code(&req.source)))?;
        Ok(WriteResult {
            version_id: out.version_id().map(str::to_string),
            etag: out.copy_object_result().and_then(|c| c.e_tag()).map(|e| unquote(Some(e))),
        })
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
        let out = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .set_prefix(non_empty(prefix))
            .max_keys(common::page_size(max_keys) as i32)
            .set_continuation_token(continuation)
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
            })
            .collect();
        let next_token =
            if out.is_truncated() == Some(true) { out.next_continuation_token().map(str::to_string) } else { None };
        Ok(ListPage { objects, next_token })
    }
}

#[cfg(test)]
mod tests {
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
    fn content_range_total() {
        assert_eq!(total_from_content_range(Some("bytes 0-9/200000")), Some(200_000));
        assert_eq!(total_from_content_range(Some("bytes 0-9/*")), None);
        assert_eq!(total_from_content_range(None), None);
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
}
