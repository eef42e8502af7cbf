//! The Tencent COS dialect of the batch job API (COS "Batch Operations", `cos-control`): what cos-go-sdk-v5's
//! `client.Batch`, Terraform's `tencentcloud_cos_batch` and the Node and Python COS SDKs' signed-request helpers
//! send, answered the way they parse it. The wire reference is `cos-batch-api.md`.
//!
//! | operation | route |
//! |---|---|
//! | CreateJob | `POST /jobs` (body `<CreateJobRequest>`) |
//! | ListJobs | `GET /jobs?jobStatuses=…&maxResults=…&nextToken=…` |
//! | DescribeJob | `GET /jobs/{id}` |
//! | UpdateJobPriority | `POST /jobs/{id}/priority?priority=N` (empty body) |
//! | UpdateJobStatus | `POST /jobs/{id}/status?requestedJobStatus=Ready\|Cancelled&statusUpdateReason=…` (empty body) |
//! | DeleteJob (SDK-only) | `DELETE /jobs/{id}` → `204`; only a finished job (Complete, Failed, Cancelled) |
//!
//! **Who is calling.** Every call needs `x-cos-appid` (`400 InvalidArgument` without it). With `[[accounts]]`
//! configured, the request must carry a q-sign signature ([`crate::qsign`]) by one of their keys (SecretId =
//! `access_key_id`, SecretKey = the secret), and `x-cos-appid` must be that account's `cos_appid`
//! (`403 AccessDenied` otherwise, and for a key whose account has no `cos_appid`); the jobs belong to the key's
//! 12-digit `account_id`, so the JSON and S3 Control APIs see the same jobs. A server without accounts checks no
//! signature and maps an APPID of 1 to 12 digits to the account id made by left-padding it with zeros
//! (`1250000000` → `001250000000`, see [`crate::auth::open_cos_account`]); other APPIDs are refused there. The UIN
//! in a `<uin>.cos-control.<region>…` Host is not checked: s3batch has no UINs.
//!
//! **ARNs and shapes.** A COS job is stored as the same [`JobSpec`] the engine runs, in AWS shapes: the
//! `qcs::cos:<region>:[uid/<appid>]:<bucket>[/<key>]` ARNs become `arn:aws:s3:::<bucket>[/<key>]` at this boundary
//! (the engine, the report writer and the other front ends read one form), `COSBatchOperations_CSV_V1` /
//! `COSInventoryReport_CSV_V1` become the AWS manifest formats, `Report_CSV_V1` the AWS report format, and
//! `COSPutObjectCopy`, `COSInitiateRestoreObject`, `COSDeleteObject` and `COSPutObjectTagging` the matching
//! S3 operations (`PrefixReplace` + `ResourcesPrefix` is the `SourceKeyPrefix` extension of S3PutObjectCopy,
//! tagging with `TaggingDirective=Add` the `S3AddObjectTagging` extension, a copy's `Add` directives the
//! `MergeMetadata` / `MergeTagging` / `MergeAccessControlGrants` extensions). The request's Manifest, Operation,
//! Report and RoleArn as the caller wrote them — COS names, formats, ARN spelling, the quoted ETag — are kept in
//! [`JobSpec::cos_request`], and DescribeJob/ListJobs echo them; the echo is used only while converting it again
//! gives exactly the stored AWS job, so this view never shows something other than what runs. A job created
//! through another front end is shown in COS names where one exists (with `qcs::cos:<server region>:uid/<appid>:`
//! ARNs), otherwise under its S3 operation name.
//!
//! **Rules.** `ConfirmationRequired` defaults to false (COS), a true one parks the job in Suspended until
//! `requestedJobStatus=Ready`; `Cancelled` is accepted from any unfinished status; a finished job refuses status
//! changes (`400 InvalidRequest`) and priority changes (`404 NoSuchJob`); priority is 0..=2147483647. A reused
//! ClientRequestToken is `400 InvalidRequest`, not the earlier job. ListJobs shows the jobs **created in the last
//! 90 days**, newest first (the store's order and index; COS does not document its order), `maxResults` 1..=1000
//! (default 1000), and `nextToken` is the last JobId of the previous page, sent only when more jobs follow.
//!
//! **Errors** are `<Error><Code/><Message/><Resource/><RequestId/><TraceId/></Error>` with the COS codes:
//! `InvalidArgument`, `InvalidRequest`, `MalformedXML`, `NoSuchJob` (404), `AccessDenied`,
//! `SignatureDoesNotMatch`, `InvalidAccessKeyId`, `RequestTimeTooSkewed` (403), `BadDigest`/`InvalidDigest` (a
//! wrong `Content-MD5`), `MethodNotAllowed` (405), `SlowDown` (503: the per-account request rate), `ServiceUnavailable`/
//! `InternalError` (500). Every answer carries `x-cos-request-id`.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use chrono::SecondsFormat;
use s3batch_core::manifest::{FieldName, ManifestFormat};
use s3batch_core::spec::{
    DeleteObject, Empty, Grant, Grantee, InitiateRestoreObject, JobManifest, JobReport, ManifestLocation, ManifestSpec,
    MetadataDirective, ObjectMetadata, PutObjectCopy, PutObjectTagging, REPORT_FORMAT, ReportScope,
};
use s3batch_core::{JobSpec, JobStatus, Operation, Tag, arn, time};
use s3batch_engine::service::ServiceError;
use s3batch_store::{CreateOutcome, Job};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::auth::CosCaller;
use crate::xml::{self, Shapes, XmlError};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/jobs", any(jobs))
        .route("/jobs/{id}", any(job))
        .route("/jobs/{id}/priority", any(priority))
        .route("/jobs/{id}/status", any(status))
}

/// The COS shapes, by element name (see [`Shapes`]).
pub static COS: Shapes = Shapes {
    lists: &["Fields", "Jobs", "UserMetadata", "AccessControlGrants", "NewObjectTagging", "TagSet", "FailureReasons"],
    struct_lists: &["Jobs", "UserMetadata", "AccessControlGrants", "NewObjectTagging", "TagSet", "FailureReasons"],
    maps: &[],
    integers: &["Priority", "ExpirationInDays", "TotalNumberOfTasks", "NumberOfTasksSucceeded", "NumberOfTasksFailed"],
    booleans: &["ConfirmationRequired", "Enabled", "PrefixReplace"],
    structs: &[
        "Operation",
        "Manifest",
        "Spec",
        "Location",
        "Report",
        "COSPutObjectCopy",
        "COSInitiateRestoreObject",
        "COSDeleteObject",
        "COSPutObjectTagging",
        "NewObjectMetadata",
        "Grantee",
        "ProgressSummary",
        "Job",
    ],
    item_names: &[
        ("AccessControlGrants", "COSGrant"),
        ("NewObjectTagging", "COSTag"),
        ("TagSet", "COSTag"),
        ("FailureReasons", "JobFailure"),
    ],
};

/// Jobs created longer ago than this are not listed.
pub const LIST_WINDOW_DAYS: i64 = 90;

/// The operations COS defines, in the order its docs list them.
pub const COS_OPERATIONS: [&str; 4] =
    ["COSPutObjectCopy", "COSInitiateRestoreObject", "COSDeleteObject", "COSPutObjectTagging"];

// ---------------------------------------------------------------------------------------------------------------
// Errors and answers

/// An error on the wire: a COS error code, the HTTP status and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosError {
    pub code: &'static str,
    pub status: u16,
    pub message: String,
}

impl CosError {
    pub fn new(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        CosError { code, status, message: message.into() }
    }
    fn invalid_argument(m: impl Into<String>) -> Self {
        Self::new("InvalidArgument", 400, m)
    }
    fn invalid_request(m: impl Into<String>) -> Self {
        Self::new("InvalidRequest", 400, m)
    }
    fn malformed(m: impl Into<String>) -> Self {
        Self::new("MalformedXML", 400, m)
    }
    fn no_such_job(id: &str) -> Self {
        Self::new("NoSuchJob", 404, format!("The specified job does not exist: {id}"))
    }
}

/// The job service's S3 Control exception names, as COS error codes.
impl From<ServiceError> for CosError {
    fn from(e: ServiceError) -> Self {
        let (code, status) = match e.code {
            "NotFoundException" => ("NoSuchJob", 404),
            "JobStatusException" | "IdempotencyException" => ("InvalidRequest", 400),
            "TooManyRequestsException" => ("SlowDown", 503),
            "TooManyJobsException" => ("TooManyJobs", 500),
            "InternalServiceException" => ("ServiceUnavailable", 500),
            "AccessDenied" => ("AccessDenied", 403),
            _ if e.status >= 500 => ("InternalError", 500),
            // BadRequestException, InvalidRequestException, InvalidNextTokenException, TooManyTagsException.
            _ => ("InvalidArgument", 400),
        };
        CosError { code, status, message: e.message }
    }
}

impl From<s3batch_core::ValidationError> for CosError {
    fn from(e: s3batch_core::ValidationError) -> Self {
        CosError::from(ServiceError::from(e))
    }
}

impl From<XmlError> for CosError {
    fn from(e: XmlError) -> Self {
        CosError::malformed(e.0)
    }
}

impl From<crate::sigv4::AuthError> for CosError {
    fn from(e: crate::sigv4::AuthError) -> Self {
        CosError { code: e.code, status: e.status, message: e.message }
    }
}

type CosResult = Result<Response, CosError>;

/// `x-cos-request-id` (and the error body's `TraceId`): opaque base64 text, as COS writes them.
#[derive(Debug, Clone)]
pub struct CosRequestId {
    pub request_id: String,
    pub trace_id: String,
}

impl CosRequestId {
    pub fn new() -> Self {
        let id = || crate::auth::encode_base64(&uuid::Uuid::new_v4().simple().to_string().as_bytes()[..24]);
        CosRequestId { request_id: id(), trace_id: id() }
    }
}

impl Default for CosRequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CosRequestId {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(_: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(CosRequestId::new())
    }
}

/// The `<Error>` body COS sends.
pub fn error_body(e: &CosError, resource: &str, rid: &CosRequestId) -> String {
    let esc = |s: &str| quick_xml::escape::escape(s).into_owned();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><Resource>{}</Resource>\
         <RequestId>{}</RequestId><TraceId>{}</TraceId></Error>",
        e.code,
        esc(&e.message),
        esc(resource),
        rid.request_id,
        rid.trace_id
    )
}

fn finish(rid: &CosRequestId, call: &Call, outcome: CosResult) -> Response {
    let mut resp = match outcome {
        Ok(r) => r,
        Err(e) => {
            if e.status >= 500 {
                tracing::error!(code = e.code, message = %e.message, request = %rid.request_id, "COS call failed");
            } else {
                tracing::debug!(code = e.code, message = %e.message, request = %rid.request_id, "COS call refused");
            }
            let host = call.headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
            let body = error_body(&e, &format!("{host}{}", call.uri.path()), rid);
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut r = (status, [(axum::http::header::CONTENT_TYPE, "application/xml")], body).into_response();
            if let Ok(v) = HeaderValue::from_str(&rid.trace_id) {
                r.headers_mut().insert("x-cos-trace-id", v);
            }
            r
        }
    };
    if let Ok(v) = HeaderValue::from_str(&rid.request_id) {
        resp.headers_mut().insert("x-cos-request-id", v);
    }
    resp
}

/// `200` with `<{root}>{content}</{root}>`: no namespace, as COS writes it.
fn xml_ok(root: &str, content: &Value) -> Response {
    (StatusCode::OK, [(axum::http::header::CONTENT_TYPE, "application/xml")], render(root, content)).into_response()
}

/// The XML document `<{root}>…</{root}>` for `content`'s members.
pub fn render(root: &str, content: &Value) -> String {
    let mut inner = String::new();
    if let Value::Object(m) = content {
        for (k, v) in m {
            COS.render(&mut inner, k, v);
        }
    }
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root}>{inner}</{root}>")
}

// ---------------------------------------------------------------------------------------------------------------
// Requests

/// A request as every handler sees it.
struct Call {
    state: AppState,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
}

impl Call {
    /// Authenticate (q-sign when accounts are configured), check `Content-MD5` when sent, apply the rate limit.
    fn caller(&self) -> Result<CosCaller, CosError> {
        let c = self.state.accounts.authenticate_qsign(&self.method, &self.uri, &self.headers)?;
        if let Some(md5) = self.headers.get("content-md5") {
            check_content_md5(md5.as_bytes(), self.body_bytes()?)?;
        }
        if !self.state.limiter.admit(&c.account) {
            return Err(CosError::new("SlowDown", 503, "too many requests for this account; slow down and try again"));
        }
        Ok(c)
    }

    fn body_bytes(&self) -> Result<&[u8], CosError> {
        match &self.body {
            Ok(b) => Ok(b),
            Err(e) => Err(CosError::new(
                if e.status().as_u16() == 413 { "EntityTooLarge" } else { "InvalidRequest" },
                e.status().as_u16(),
                format!("the request body could not be read: {}", e.body_text()),
            )),
        }
    }

    /// The query string, decoded as the COS SDKs encode it (`+` is a space).
    fn query(&self) -> Vec<(String, String)> {
        let dec = |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
        self.uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (dec(k), dec(v))
            })
            .collect()
    }

    fn param(&self, name: &str) -> Option<String> {
        self.query().into_iter().rev().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    fn wrong_method(&self) -> CosError {
        CosError::new("MethodNotAllowed", 405, format!("{} is not allowed on {}", self.method, self.uri.path()))
    }
}

/// `Content-MD5` = base64(MD5(body)), when the client sends one (cos-go-sdk-v5 does on CreateJob).
fn check_content_md5(header: &[u8], body: &[u8]) -> Result<(), CosError> {
    use base64::Engine as _;
    use md5::Digest as _;
    let sent = base64::engine::general_purpose::STANDARD
        .decode(header.trim_ascii())
        .ok()
        .filter(|d| d.len() == 16)
        .ok_or_else(|| CosError::new("InvalidDigest", 400, "Content-MD5 is not the base64 of an MD5 digest"))?;
    if sent.as_slice() != md5::Md5::digest(body).as_slice() {
        return Err(CosError::new("BadDigest", 400, "the Content-MD5 you specified did not match what we received"));
    }
    Ok(())
}

/// A JobId that can name a job here: 5..36 of `[A-Za-z0-9-_]` (COS allows 1..64 bytes; nothing else can exist).
fn check_job_id(id: &str) -> Result<(), CosError> {
    let ok = (5..=36).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(()) } else { Err(CosError::no_such_job(id)) }
}

macro_rules! handler {
    ($name:ident, $inner:ident, path) => {
        async fn $name(
            State(state): State<AppState>,
            rid: CosRequestId,
            method: Method,
            uri: Uri,
            headers: HeaderMap,
            Path(id): Path<String>,
            body: Result<Bytes, BytesRejection>,
        ) -> Response {
            let call = Call { state, method, uri, headers, body };
            let outcome = $inner(&call, &id).await;
            finish(&rid, &call, outcome)
        }
    };
    ($name:ident, $inner:ident) => {
        async fn $name(
            State(state): State<AppState>,
            rid: CosRequestId,
            method: Method,
            uri: Uri,
            headers: HeaderMap,
            body: Result<Bytes, BytesRejection>,
        ) -> Response {
            let call = Call { state, method, uri, headers, body };
            let outcome = $inner(&call).await;
            finish(&rid, &call, outcome)
        }
    };
}

handler!(jobs, jobs_inner);
handler!(job, job_inner, path);
handler!(priority, priority_inner, path);
handler!(status, status_inner, path);

async fn jobs_inner(call: &Call) -> CosResult {
    match call.method {
        Method::POST => create_job(call).await,
        Method::GET => list_jobs(call).await,
        _ => Err(call.wrong_method()),
    }
}

async fn job_inner(call: &Call, id: &str) -> CosResult {
    match call.method {
        Method::GET => describe_job(call, id).await,
        Method::DELETE => delete_job(call, id).await,
        _ => Err(call.wrong_method()),
    }
}

async fn create_job(call: &Call) -> CosResult {
    let caller = call.caller()?;
    let body = call.body_bytes()?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(CosError::invalid_request("the request body is empty; send a <CreateJobRequest>"));
    }
    let (token, spec) = parse_create_job(body)?;
    match call.state.service.create_outcome(&caller.account, Some(token.clone()), spec).await? {
        CreateOutcome::Created(job) => Ok(xml_ok("CreateJobResult", &json!({ "JobId": job.id }))),
        CreateOutcome::Existing(job) => Err(CosError::invalid_request(format!(
            "duplicate request: the ClientRequestToken '{token}' already exists (job {})",
            job.id
        ))),
    }
}

async fn describe_job(call: &Call, id: &str) -> CosResult {
    let caller = call.caller()?;
    check_job_id(id)?;
    let job = call.state.service.describe(&caller.account, id).await?;
    let view = job_view(&job, &call.state.region, &caller.appid);
    Ok(xml_ok("DescribeJobResult", &json!({ "Job": view })))
}

async fn delete_job(call: &Call, id: &str) -> CosResult {
    let caller = call.caller()?;
    check_job_id(id)?;
    call.state.service.delete(&caller.account, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_jobs(call: &Call) -> CosResult {
    let caller = call.caller()?;
    let (mut statuses, mut token, mut max) = (Vec::<JobStatus>::new(), None, None);
    for (k, v) in call.query() {
        match k.as_str() {
            "jobStatuses" => {
                for s in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let st = s.parse::<JobStatus>().map_err(|_| {
                        CosError::invalid_argument(format!(
                            "jobStatuses '{s}' is not one of {}",
                            JobStatus::ALL.map(|s| s.to_string()).join(", ")
                        ))
                    })?;
                    if !statuses.contains(&st) {
                        statuses.push(st);
                    }
                }
            }
            "maxResults" => {
                let n = v.trim().parse::<i64>().ok().filter(|n| (1..=1000).contains(n)).ok_or_else(|| {
                    CosError::invalid_argument(format!("maxResults '{v}' is not an integer from 1 to 1000"))
                })?;
                max = Some(n);
            }
            "nextToken" => {
                if !(1..=64).contains(&v.len()) {
                    return Err(CosError::invalid_argument("nextToken must be 1 to 64 bytes long"));
                }
                token = Some(v);
            }
            _ => {}
        }
    }
    let since = time::now_millis() - LIST_WINDOW_DAYS * 24 * 3600 * 1000;
    let (jobs, more) = call
        .state
        .service
        .list_created_since(&caller.account, statuses, token.as_deref(), max.unwrap_or(1000), since)
        .await?;
    let items: Vec<Value> = jobs.iter().map(list_member).collect();
    let next = if more { jobs.last().map(|j| Value::String(j.id.clone())) } else { None };
    Ok(xml_ok("ListJobsResult", &json!({ "Jobs": items, "NextToken": next })))
}

async fn priority_inner(call: &Call, id: &str) -> CosResult {
    if call.method != Method::POST {
        return Err(call.wrong_method());
    }
    let caller = call.caller()?;
    let raw = call
        .param("priority")
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| CosError::invalid_request("the priority query parameter is required"))?;
    let priority =
        raw.trim().parse::<i64>().ok().filter(|p| (0..=s3batch_core::spec::MAX_PRIORITY).contains(p)).ok_or_else(
            || CosError::invalid_argument(format!("priority '{raw}' is not an integer from 0 to 2147483647")),
        )?;
    check_job_id(id)?;
    let job = call.state.service.describe(&caller.account, id).await?;
    let finished =
        || CosError::new("NoSuchJob", 404, format!("The specified job does not exist or has already finished: {id}"));
    if job.status.is_terminal() {
        return Err(finished());
    }
    let job = match call.state.service.update_priority(&caller.account, id, priority).await {
        Ok(j) => j,
        // The range was checked above: what is left is a job that finished meanwhile.
        Err(e) if e.code == "BadRequestException" => return Err(finished()),
        Err(e) => return Err(e.into()),
    };
    Ok(xml_ok("UpdateJobPriorityResult", &json!({ "JobId": job.id, "Priority": job.priority })))
}

async fn status_inner(call: &Call, id: &str) -> CosResult {
    if call.method != Method::POST {
        return Err(call.wrong_method());
    }
    let caller = call.caller()?;
    let requested = call.param("requestedJobStatus").unwrap_or_default();
    if requested != "Ready" && requested != "Cancelled" {
        return Err(CosError::invalid_argument(format!(
            "requestedJobStatus must be Ready or Cancelled, got '{requested}'"
        )));
    }
    let reason = call.param("statusUpdateReason").filter(|r| !r.is_empty());
    if let Some(r) = &reason
        && r.len() > 256
    {
        return Err(CosError::invalid_argument("statusUpdateReason is longer than 256 bytes"));
    }
    check_job_id(id)?;
    let job = call.state.service.describe(&caller.account, id).await?;
    if job.status.is_terminal() {
        return Err(CosError::invalid_request(format!(
            "the job has already finished ({}); its status cannot change",
            job.status
        )));
    }
    let job = call.state.service.update_status(&caller.account, id, &requested, reason).await?;
    Ok(xml_ok(
        "UpdateJobStatusResult",
        &json!({ "JobId": job.id, "Status": job.status, "StatusUpdateReason": job.status_update_reason }),
    ))
}

// ---------------------------------------------------------------------------------------------------------------
// The COS request shapes

/// `<CreateJobRequest>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CosCreateJobRequest {
    pub client_request_token: String,
    #[serde(default)]
    pub confirmation_required: Option<bool>,
    #[serde(default)]
    pub description: Option<String>,
    pub manifest: CosManifest,
    pub operation: CosOperation,
    pub priority: i64,
    pub report: CosReport,
    pub role_arn: String,
}

/// What is kept of a COS request to echo it: [`JobSpec::cos_request`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CosEcho {
    pub manifest: CosManifest,
    pub operation: CosOperation,
    pub report: CosReport,
    pub role_arn: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CosManifest {
    pub location: CosManifestLocation,
    pub spec: CosManifestSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CosManifestLocation {
    #[serde(default, rename = "ETag", skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    pub object_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_version_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CosManifestSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<FieldName>>,
    pub format: String,
}

/// `<Operation>`: exactly one of the COS operations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum CosOperation {
    #[serde(rename = "COSPutObjectCopy")]
    PutObjectCopy(Box<CosPutObjectCopy>),
    #[serde(rename = "COSInitiateRestoreObject")]
    InitiateRestoreObject(CosInitiateRestoreObject),
    #[serde(rename = "COSDeleteObject")]
    DeleteObject(Empty),
    #[serde(rename = "COSPutObjectTagging")]
    PutObjectTagging(CosPutObjectTagging),
}

impl CosOperation {
    pub fn name(&self) -> &'static str {
        match self {
            CosOperation::PutObjectCopy(_) => "COSPutObjectCopy",
            CosOperation::InitiateRestoreObject(_) => "COSInitiateRestoreObject",
            CosOperation::DeleteObject(_) => "COSDeleteObject",
            CosOperation::PutObjectTagging(_) => "COSPutObjectTagging",
        }
    }
}

/// `<COSPutObjectCopy>`, members in the docs' order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CosPutObjectCopy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control_directive: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control_grants: Option<Vec<CosGrant>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_replace: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_key_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canned_access_control_list: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_directive: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_since_constraint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub un_modified_since_constraint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_object_metadata: Option<CosObjectMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tagging_directive: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_object_tagging: Option<Vec<Tag>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_resource: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CosGrant {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grantee: Option<CosGrantee>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CosGrantee {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_identifier: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CosObjectMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_expires_date: Option<String>,
    #[serde(default, rename = "SSEAlgorithm", skip_serializing_if = "Option::is_none")]
    pub sse_algorithm: Option<String>,
    /// `<UserMetadata><member><Key/><Value/></member>…</UserMetadata>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_metadata: Option<Vec<Tag>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CosInitiateRestoreObject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_in_days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_tier: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CosPutObjectTagging {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tagging_directive: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_set: Option<Vec<Tag>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CosReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_scope: Option<String>,
}

/// The COS manifest format names and the AWS ones they stand for.
pub const COS_BATCH_CSV: &str = "COSBatchOperations_CSV_V1";
pub const COS_INVENTORY_CSV: &str = "COSInventoryReport_CSV_V1";
/// The COS report format.
pub const COS_REPORT_FORMAT: &str = "Report_CSV_V1";

// ---------------------------------------------------------------------------------------------------------------
// COS -> AWS

/// A `<CreateJobRequest>` body: its ClientRequestToken and the job, in AWS shapes with the COS request kept for
/// echoing. Structure errors are `MalformedXML`, missing or invalid values `InvalidArgument`, a priority out of
/// range `InvalidRequest`.
pub fn parse_create_job(body: &[u8]) -> Result<(String, JobSpec), CosError> {
    let root = xml::parse(body)?;
    if root.name != "CreateJobRequest" {
        return Err(CosError::malformed(format!("the body's root element is <{}>, not <CreateJobRequest>", root.name)));
    }
    let Value::Object(m) = COS.to_json(&root)? else {
        return Err(CosError::malformed("<CreateJobRequest> must hold elements"));
    };
    match m.get("ClientRequestToken") {
        Some(Value::String(t)) if (1..=64).contains(&t.len()) => {}
        Some(Value::String(t)) if t.is_empty() => {
            return Err(CosError::invalid_argument("ClientRequestToken cannot be empty"));
        }
        Some(_) => return Err(CosError::invalid_argument("ClientRequestToken must be 1 to 64 bytes long")),
        None => return Err(CosError::invalid_argument("ClientRequestToken is required")),
    }
    for required in ["Manifest", "Operation", "Priority", "Report", "RoleArn"] {
        if !m.contains_key(required) {
            return Err(CosError::invalid_argument(format!("{required} is required")));
        }
    }
    match m.get("Operation") {
        Some(Value::Object(op)) if op.len() == 1 => {
            let name = op.keys().next().map(String::as_str).unwrap_or("");
            if !COS_OPERATIONS.contains(&name) {
                return Err(CosError::invalid_argument(format!(
                    "Operation {name} is not one of {}",
                    COS_OPERATIONS.join(", ")
                )));
            }
        }
        Some(Value::Object(op)) if op.is_empty() => {
            return Err(CosError::malformed("Operation is empty; it must hold one operation"));
        }
        Some(Value::Object(op)) => {
            return Err(CosError::malformed(format!(
                "Operation must hold exactly one operation, not {}",
                op.keys().cloned().collect::<Vec<_>>().join(" and ")
            )));
        }
        _ => return Err(CosError::malformed("Operation must hold elements")),
    }
    let req: CosCreateJobRequest = xml::from_json("CreateJobRequest", Value::Object(m))?;
    let token = req.client_request_token.clone();
    Ok((token, to_spec(req)?))
}

/// The job a COS request describes.
pub fn to_spec(req: CosCreateJobRequest) -> Result<JobSpec, CosError> {
    if !(0..=s3batch_core::spec::MAX_PRIORITY).contains(&req.priority) {
        return Err(CosError::invalid_request(format!(
            "Priority must be between 0 and 2147483647, got {}",
            req.priority
        )));
    }
    let description = req.description.filter(|d| !d.is_empty());
    if let Some(d) = &description
        && d.len() > 256
    {
        return Err(CosError::invalid_argument(format!("Description is {} bytes; at most 256", d.len())));
    }
    if !(1..=1024).contains(&req.role_arn.len()) || !req.role_arn.starts_with("qcs::cam::") {
        return Err(CosError::invalid_argument(format!(
            "RoleArn '{}' is not a CAM role (qcs::cam::uin/<uin>:roleName/<role>)",
            req.role_arn
        )));
    }
    let echo = CosEcho { manifest: req.manifest, operation: req.operation, report: req.report, role_arn: req.role_arn };
    let (operation, manifest, report) = echo_to_aws(&echo)?;
    let spec = JobSpec {
        operation,
        manifest: Some(manifest),
        manifest_generator: None,
        report,
        priority: req.priority,
        confirmation_required: req.confirmation_required.unwrap_or(false),
        description,
        role_arn: None,
        tags: vec![],
        cos_request: Some(serde_json::to_value(&echo).expect("plain data always serialises")),
        rerun_of: None,
        dry_run: false,
        rate_limit: None,
    };
    spec.validate()?;
    Ok(spec)
}

/// The AWS operation, manifest and report of a COS request.
pub fn echo_to_aws(echo: &CosEcho) -> Result<(Operation, JobManifest, JobReport), CosError> {
    Ok((operation_to_aws(&echo.operation)?, manifest_to_aws(&echo.manifest)?, report_to_aws(&echo.report)?))
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

fn bucket_arn(what: &str, v: &str) -> Result<String, CosError> {
    match arn::parse_cos_arn(v) {
        Some(a) if a.key.is_none() => Ok(arn::bucket_arn(&a.bucket)),
        _ => Err(CosError::invalid_argument(format!(
            "{what} '{v}' is not a COS bucket ARN (qcs::cos:<region>:uid/<appid>:<bucket>)"
        ))),
    }
}

fn manifest_to_aws(m: &CosManifest) -> Result<JobManifest, CosError> {
    let loc = &m.location;
    let etag = non_empty(&loc.etag).ok_or_else(|| CosError::invalid_argument("Manifest.Location.ETag is required"))?;
    if etag.len() > 1024 {
        return Err(CosError::invalid_argument("Manifest.Location.ETag is longer than 1024 bytes"));
    }
    let object_arn = match arn::parse_cos_arn(&loc.object_arn) {
        Some(arn::CosArn { bucket, key: Some(key), .. }) => arn::object_arn(&bucket, &key),
        _ => {
            return Err(CosError::invalid_argument(format!(
                "Manifest.Location.ObjectArn '{}' is not a COS object ARN (qcs::cos:<region>:uid/<appid>:<bucket>/<key>)",
                loc.object_arn
            )));
        }
    };
    let format = match m.spec.format.as_str() {
        COS_BATCH_CSV => {
            if m.spec.fields.as_ref().is_none_or(Vec::is_empty) {
                return Err(CosError::invalid_argument(format!(
                    "Manifest.Spec.Fields is required for {COS_BATCH_CSV}"
                )));
            }
            ManifestFormat::S3BatchOperationsCsv20180820
        }
        COS_INVENTORY_CSV => ManifestFormat::S3InventoryReportCsv20161130,
        other => {
            return Err(CosError::invalid_argument(format!(
                "Manifest.Spec.Format '{other}' is not {COS_BATCH_CSV} or {COS_INVENTORY_CSV}"
            )));
        }
    };
    Ok(JobManifest {
        spec: ManifestSpec { format, fields: m.spec.fields.clone().unwrap_or_default() },
        location: ManifestLocation {
            object_arn,
            object_version_id: non_empty(&loc.object_version_id).map(str::to_string),
            etag: Some(etag.to_string()),
        },
    })
}

fn report_to_aws(r: &CosReport) -> Result<JobReport, CosError> {
    let enabled = r.enabled.ok_or_else(|| CosError::invalid_argument("Report.Enabled is required"))?;
    let bucket = non_empty(&r.bucket).map(|b| bucket_arn("Report.Bucket", b)).transpose()?;
    let format = match non_empty(&r.format) {
        None => None,
        Some(COS_REPORT_FORMAT) => Some(REPORT_FORMAT.to_string()),
        Some(other) => {
            return Err(CosError::invalid_argument(format!("Report.Format '{other}' is not {COS_REPORT_FORMAT}")));
        }
    };
    let prefix = non_empty(&r.prefix).map(str::to_string);
    if let Some(p) = &prefix
        && p.len() > 256
    {
        return Err(CosError::invalid_argument("Report.Prefix is longer than 256 bytes"));
    }
    let report_scope = match non_empty(&r.report_scope) {
        None => None,
        Some("AllTasks") => Some(ReportScope::AllTasks),
        Some("FailedTasksOnly") => Some(ReportScope::FailedTasksOnly),
        Some(other) => {
            return Err(CosError::invalid_argument(format!(
                "Report.ReportScope '{other}' is not AllTasks or FailedTasksOnly"
            )));
        }
    };
    if enabled {
        for (name, missing) in
            [("Bucket", bucket.is_none()), ("Format", format.is_none()), ("ReportScope", report_scope.is_none())]
        {
            if missing {
                return Err(CosError::invalid_argument(format!(
                    "Report.{name} is required when the report is enabled"
                )));
            }
        }
    }
    Ok(JobReport { bucket, format, enabled, prefix, report_scope, expected_bucket_owner: None })
}

/// `Copy`, `Replaced` (or `Replace`), `Add`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Directive {
    Copy,
    Replaced,
    Add,
}

fn directive(what: &str, v: &Option<String>) -> Result<Option<Directive>, CosError> {
    match non_empty(v) {
        None => Ok(None),
        Some("Copy") => Ok(Some(Directive::Copy)),
        Some("Replaced" | "Replace") => Ok(Some(Directive::Replaced)),
        Some("Add") => Ok(Some(Directive::Add)),
        Some(other) => Err(CosError::invalid_argument(format!("{what} '{other}' is not Copy, Replaced or Add"))),
    }
}

/// A COS copy constraint: Unix seconds (cos-go-sdk-v5 sends int64) or an ISO-8601 timestamp; ISO-8601 for AWS.
fn constraint(what: &str, v: &Option<String>) -> Result<Option<String>, CosError> {
    let Some(v) = non_empty(v) else { return Ok(None) };
    let v = v.trim();
    let ms = if let Ok(secs) = v.parse::<i64>() {
        secs.checked_mul(1000).filter(|ms| time::to_datetime(*ms).timestamp_millis() == *ms)
    } else {
        time::parse_iso(v)
    };
    let ms = ms.ok_or_else(|| {
        CosError::invalid_argument(format!("{what} '{v}' is not a Unix time in seconds or an ISO-8601 timestamp"))
    })?;
    Ok(Some(time::format_iso(ms)))
}

/// `HttpExpiresDate`: ISO-8601, or the HTTP date form (`Thu, 16 May 2019 06:45:51 GMT`); ISO-8601 for AWS.
fn http_date(v: &str) -> Result<String, CosError> {
    if let Some(ms) = time::parse_iso(v) {
        return Ok(time::format_iso(ms));
    }
    chrono::DateTime::parse_from_rfc2822(v.trim())
        .map(|d| time::format_iso(d.timestamp_millis()))
        .map_err(|_| CosError::invalid_argument(format!("NewObjectMetadata.HttpExpiresDate '{v}' is not a date")))
}

fn operation_to_aws(op: &CosOperation) -> Result<Operation, CosError> {
    match op {
        CosOperation::PutObjectCopy(c) => Ok(Operation::S3PutObjectCopy(Box::new(copy_to_aws(c)?))),
        CosOperation::InitiateRestoreObject(r) => {
            let p = "COSInitiateRestoreObject";
            let days = r
                .expiration_in_days
                .ok_or_else(|| CosError::invalid_argument(format!("{p}.ExpirationInDays is required")))?;
            if !(1..=365).contains(&days) {
                return Err(CosError::invalid_argument(format!("{p}.ExpirationInDays must be 1 to 365, got {days}")));
            }
            let tier = match non_empty(&r.job_tier) {
                Some("Bulk") => "BULK",
                Some("Standard") => "STANDARD",
                Some(other) => {
                    return Err(CosError::invalid_argument(format!("{p}.JobTier '{other}' is not Bulk or Standard")));
                }
                None => return Err(CosError::invalid_argument(format!("{p}.JobTier is required"))),
            };
            Ok(Operation::S3InitiateRestoreObject(InitiateRestoreObject {
                expiration_in_days: Some(days),
                glacier_job_tier: Some(tier.into()),
            }))
        }
        CosOperation::DeleteObject(_) => Ok(Operation::S3DeleteObject(DeleteObject::default())),
        CosOperation::PutObjectTagging(t) => {
            let tagging = PutObjectTagging { tag_set: t.tag_set.clone().unwrap_or_default() };
            match directive("COSPutObjectTagging.TaggingDirective", &t.tagging_directive)? {
                None | Some(Directive::Replaced) => Ok(Operation::S3PutObjectTagging(tagging)),
                Some(Directive::Add) => Ok(Operation::S3AddObjectTagging(tagging)),
                Some(Directive::Copy) => Err(CosError::invalid_argument(
                    "COSPutObjectTagging.TaggingDirective must be Replaced or Add (Copy has nothing to copy from)",
                )),
            }
        }
    }
}

fn copy_to_aws(c: &CosPutObjectCopy) -> Result<PutObjectCopy, CosError> {
    let p = "COSPutObjectCopy";
    let target = non_empty(&c.target_resource)
        .ok_or_else(|| CosError::invalid_argument(format!("{p}.TargetResource is required")))?;
    let mut out =
        PutObjectCopy { target_resource: bucket_arn(&format!("{p}.TargetResource"), target)?, ..Default::default() };

    // Keys: PrefixReplace replaces ResourcesPrefix with TargetKeyPrefix.
    let (resources, target_prefix) = (non_empty(&c.resources_prefix), non_empty(&c.target_key_prefix));
    for (name, v) in [("ResourcesPrefix", resources), ("TargetKeyPrefix", target_prefix)] {
        if let Some(v) = v
            && v.len() > 1024
        {
            return Err(CosError::invalid_argument(format!("{p}.{name} is longer than 1024 bytes")));
        }
    }
    if c.prefix_replace == Some(true) {
        out.source_key_prefix = resources.map(str::to_string);
        out.target_key_prefix = target_prefix.map(str::to_string);
    } else if resources.is_some() || target_prefix.is_some() {
        return Err(CosError::invalid_argument(format!(
            "{p}.ResourcesPrefix and TargetKeyPrefix need PrefixReplace true"
        )));
    }

    // Metadata.
    match directive(&format!("{p}.MetadataDirective"), &c.metadata_directive)? {
        None | Some(Directive::Copy) => {
            if c.new_object_metadata.is_some() {
                return Err(CosError::invalid_argument(format!(
                    "{p}.NewObjectMetadata needs MetadataDirective Replaced"
                )));
            }
            out.metadata_directive = c.metadata_directive.as_ref().map(|_| MetadataDirective::Copy);
        }
        Some(Directive::Replaced) => {
            out.metadata_directive = Some(MetadataDirective::Replace);
            out.new_object_metadata = Some(metadata_to_aws(c.new_object_metadata.as_ref())?);
        }
        Some(Directive::Add) => {
            if c.new_object_metadata.is_none() {
                return Err(CosError::invalid_argument(format!("{p}.MetadataDirective Add needs NewObjectMetadata")));
            }
            out.metadata_directive = Some(MetadataDirective::Replace);
            out.new_object_metadata = Some(metadata_to_aws(c.new_object_metadata.as_ref())?);
            out.merge_metadata = Some(true);
        }
    }

    // ACL: Copy (the default) leaves it to the storage's copy; Replaced sets a canned ACL and/or grants.
    let acl_given = non_empty(&c.canned_access_control_list).is_some() || c.access_control_grants.is_some();
    match directive(&format!("{p}.AccessControlDirective"), &c.access_control_directive)? {
        Some(Directive::Copy) if acl_given => {
            return Err(CosError::invalid_argument(format!(
                "{p}.CannedAccessControlList and AccessControlGrants need AccessControlDirective Replaced"
            )));
        }
        None | Some(Directive::Copy) => {}
        Some(Directive::Replaced) if !acl_given => {
            return Err(CosError::invalid_argument(format!(
                "{p}.AccessControlDirective Replaced needs CannedAccessControlList or AccessControlGrants"
            )));
        }
        Some(Directive::Replaced) => {}
        Some(Directive::Add) => {
            if c.access_control_grants.is_none() || non_empty(&c.canned_access_control_list).is_some() {
                return Err(CosError::invalid_argument(format!(
                    "{p}.AccessControlDirective Add takes AccessControlGrants (and no CannedAccessControlList)"
                )));
            }
            out.merge_access_control_grants = Some(true);
        }
    }
    if let Some(acl) = non_empty(&c.canned_access_control_list) {
        if !["private", "public-read"].contains(&acl) {
            return Err(CosError::invalid_argument(format!(
                "{p}.CannedAccessControlList '{acl}' is not private or public-read"
            )));
        }
        out.canned_access_control_list = Some(acl.to_string());
    }
    if let Some(grants) = &c.access_control_grants {
        out.access_control_grants = Some(grants.iter().map(grant_to_aws).collect::<Result<_, _>>()?);
    }

    // Tags.
    match directive(&format!("{p}.TaggingDirective"), &c.tagging_directive)? {
        Some(Directive::Copy) => {
            if c.new_object_tagging.is_some() {
                return Err(CosError::invalid_argument(format!(
                    "{p}.NewObjectTagging needs TaggingDirective Replaced"
                )));
            }
        }
        None => out.new_object_tagging = c.new_object_tagging.clone(),
        Some(Directive::Replaced) => {
            out.new_object_tagging = Some(c.new_object_tagging.clone().ok_or_else(|| {
                CosError::invalid_argument(format!("{p}.NewObjectTagging is required with TaggingDirective Replaced"))
            })?);
        }
        Some(Directive::Add) => {
            out.new_object_tagging = Some(c.new_object_tagging.clone().ok_or_else(|| {
                CosError::invalid_argument(format!("{p}.NewObjectTagging is required with TaggingDirective Add"))
            })?);
            out.merge_tagging = Some(true);
        }
    }

    if let Some(sc) = non_empty(&c.storage_class) {
        if !["STANDARD", "STANDARD_IA"].contains(&sc) {
            return Err(CosError::invalid_argument(format!("{p}.StorageClass '{sc}' is not STANDARD or STANDARD_IA")));
        }
        out.storage_class = Some(sc.to_string());
    }
    out.modified_since_constraint = constraint(&format!("{p}.ModifiedSinceConstraint"), &c.modified_since_constraint)?;
    out.un_modified_since_constraint =
        constraint(&format!("{p}.UnModifiedSinceConstraint"), &c.un_modified_since_constraint)?;
    Ok(out)
}

fn metadata_to_aws(m: Option<&CosObjectMetadata>) -> Result<ObjectMetadata, CosError> {
    let Some(m) = m else { return Ok(ObjectMetadata::default()) };
    let p = "COSPutObjectCopy.NewObjectMetadata";
    let own = |v: &Option<String>| non_empty(v).map(str::to_string);
    if let Some(a) = non_empty(&m.sse_algorithm)
        && a != "AES256"
    {
        return Err(CosError::invalid_argument(format!("{p}.SSEAlgorithm '{a}' is not AES256")));
    }
    let mut user_metadata = BTreeMap::new();
    for kv in m.user_metadata.iter().flatten() {
        if kv.key.is_empty() {
            return Err(CosError::invalid_argument(format!("{p}.UserMetadata has an empty Key")));
        }
        if user_metadata.insert(kv.key.clone(), kv.value.clone()).is_some() {
            return Err(CosError::invalid_argument(format!("{p}.UserMetadata has the key '{}' twice", kv.key)));
        }
    }
    Ok(ObjectMetadata {
        cache_control: own(&m.cache_control),
        content_disposition: own(&m.content_disposition),
        content_encoding: own(&m.content_encoding),
        content_type: own(&m.content_type),
        http_expires_date: non_empty(&m.http_expires_date).map(http_date).transpose()?,
        sse_algorithm: own(&m.sse_algorithm),
        user_metadata,
        ..Default::default()
    })
}

fn grant_to_aws(g: &CosGrant) -> Result<Grant, CosError> {
    let p = "COSPutObjectCopy.AccessControlGrants.COSGrant";
    let grantee = g.grantee.as_ref().ok_or_else(|| CosError::invalid_argument(format!("{p}.Grantee is required")))?;
    let id = non_empty(&grantee.identifier)
        .ok_or_else(|| CosError::invalid_argument(format!("{p}.Grantee.Identifier is required")))?;
    if id.len() > 1024 {
        return Err(CosError::invalid_argument(format!("{p}.Grantee.Identifier is longer than 1024 bytes")));
    }
    match non_empty(&grantee.type_identifier) {
        Some("ID") => {}
        other => {
            return Err(CosError::invalid_argument(format!(
                "{p}.Grantee.TypeIdentifier '{}' is not ID",
                other.unwrap_or("")
            )));
        }
    }
    let permission = match non_empty(&g.permission) {
        Some(x @ ("READ" | "WRITE" | "FULL_CONTROL")) => x.to_string(),
        other => {
            return Err(CosError::invalid_argument(format!(
                "{p}.Permission '{}' is not READ, WRITE or FULL_CONTROL",
                other.unwrap_or("")
            )));
        }
    };
    Ok(Grant {
        grantee: Some(Grantee {
            type_identifier: Some("id".into()),
            identifier: Some(id.to_string()),
            display_name: non_empty(&grantee.display_name).map(str::to_string),
        }),
        permission: Some(permission),
    })
}

// ---------------------------------------------------------------------------------------------------------------
// AWS -> COS: what DescribeJob and ListJobs show

/// The COS request kept with a job, if it still describes exactly what the job runs.
pub fn echo_of(spec: &JobSpec) -> Option<CosEcho> {
    let echo: CosEcho = serde_json::from_value(spec.cos_request.clone()?).ok()?;
    let (operation, manifest, report) = echo_to_aws(&echo).ok()?;
    (operation == spec.operation && Some(&manifest) == spec.manifest.as_ref() && report == spec.report).then_some(echo)
}

/// `2019-12-19T18:00:30Z`: COS timestamps have no fractional seconds.
pub fn cos_time(ms: s3batch_core::Millis) -> String {
    time::to_datetime(ms).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("plain data always serialises")
}

/// Manifest, Operation, Report and RoleArn of any job, in COS shapes.
fn cos_parts(spec: &JobSpec, region: &str, appid: &str) -> (Value, Value, Value, Value) {
    if let Some(echo) = echo_of(spec) {
        return (to_value(&echo.manifest), to_value(&echo.operation), to_value(&echo.report), json!(echo.role_arn));
    }
    let cos_bucket = |aws: &str| {
        arn::parse_bucket_arn(aws).map_or_else(|| aws.to_string(), |b| arn::cos_bucket_arn(region, appid, &b))
    };
    let manifest = match &spec.manifest {
        Some(m) => {
            let object_arn = arn::parse_object_arn(&m.location.object_arn)
                .map_or_else(|| m.location.object_arn.clone(), |(b, k)| arn::cos_object_arn(region, appid, &b, &k));
            let format = match m.spec.format {
                ManifestFormat::S3BatchOperationsCsv20180820 => COS_BATCH_CSV,
                ManifestFormat::S3InventoryReportCsv20161130 => COS_INVENTORY_CSV,
            };
            to_value(&CosManifest {
                location: CosManifestLocation {
                    etag: Some(m.location.etag.clone().unwrap_or_default()),
                    object_arn,
                    object_version_id: m.location.object_version_id.clone(),
                },
                spec: CosManifestSpec {
                    fields: (!m.spec.fields.is_empty()).then(|| m.spec.fields.clone()),
                    format: format.into(),
                },
            })
        }
        // A generated manifest has no COS form; the elements are there (clients read them unchecked), empty.
        None => json!({ "Location": { "ETag": "", "ObjectArn": "" }, "Spec": { "Format": "" } }),
    };
    let r = &spec.report;
    let report = to_value(&CosReport {
        bucket: Some(r.bucket.as_deref().map(cos_bucket).unwrap_or_default()),
        enabled: Some(r.enabled),
        format: Some(if r.format.is_some() { COS_REPORT_FORMAT.to_string() } else { String::new() }),
        prefix: r.prefix.clone(),
        report_scope: Some(r.report_scope.map(|s| to_value(&s).as_str().unwrap_or("").to_string()).unwrap_or_default()),
    });
    // An operation COS has no form for is shown by its S3 name alone.
    let operation = operation_to_cos(&spec.operation, region, appid).map(|op| to_value(&op)).unwrap_or_else(|| {
        Value::Object(Map::from_iter([(spec.operation.name().to_string(), Value::Object(Map::new()))]))
    });
    (manifest, operation, report, json!(spec.role_arn.clone().unwrap_or_default()))
}

/// A COS form of an S3 operation, where COS has one.
fn operation_to_cos(op: &Operation, region: &str, appid: &str) -> Option<CosOperation> {
    let cos_bucket = |aws: &str| {
        arn::parse_bucket_arn(aws).map_or_else(|| aws.to_string(), |b| arn::cos_bucket_arn(region, appid, &b))
    };
    Some(match op {
        Operation::S3PutObjectCopy(c) => {
            let replaced = |yes: bool| Some(if yes { "Replaced" } else { "Copy" }.to_string());
            let add_or = |merge: Option<bool>, other: &str| {
                if merge == Some(true) { "Add".to_string() } else { other.to_string() }
            };
            let acl = c.canned_access_control_list.is_some() || c.access_control_grants.is_some();
            let prefixes = c.source_key_prefix.is_some() || c.target_key_prefix.is_some();
            CosOperation::PutObjectCopy(Box::new(CosPutObjectCopy {
                access_control_directive: acl.then(|| add_or(c.merge_access_control_grants, "Replaced")),
                access_control_grants: c.access_control_grants.as_ref().map(|gs| {
                    gs.iter()
                        .map(|g| CosGrant {
                            grantee: g.grantee.as_ref().map(|e| CosGrantee {
                                display_name: e.display_name.clone(),
                                identifier: e.identifier.clone(),
                                type_identifier: e
                                    .type_identifier
                                    .as_deref()
                                    .map(|t| if t == "id" { "ID".to_string() } else { t.to_string() }),
                            }),
                            permission: g.permission.clone(),
                        })
                        .collect()
                }),
                prefix_replace: prefixes.then_some(true),
                resources_prefix: c.source_key_prefix.clone(),
                target_key_prefix: c.target_key_prefix.clone(),
                canned_access_control_list: c.canned_access_control_list.clone(),
                metadata_directive: c
                    .metadata_directive
                    .and_then(|d| replaced(d == MetadataDirective::Replace))
                    .map(|d| if d == "Replaced" { add_or(c.merge_metadata, &d) } else { d }),
                modified_since_constraint: c.modified_since_constraint.clone(),
                un_modified_since_constraint: c.un_modified_since_constraint.clone(),
                new_object_metadata: c.new_object_metadata.as_ref().map(|m| CosObjectMetadata {
                    cache_control: m.cache_control.clone(),
                    content_disposition: m.content_disposition.clone(),
                    content_encoding: m.content_encoding.clone(),
                    content_type: m.content_type.clone(),
                    http_expires_date: m.http_expires_date.clone(),
                    sse_algorithm: m.sse_algorithm.clone(),
                    user_metadata: (!m.user_metadata.is_empty())
                        .then(|| m.user_metadata.iter().map(|(k, v)| Tag::new(k, v)).collect()),
                }),
                tagging_directive: c.new_object_tagging.as_ref().map(|_| add_or(c.merge_tagging, "Replaced")),
                new_object_tagging: c.new_object_tagging.clone(),
                storage_class: c.storage_class.clone(),
                target_resource: Some(cos_bucket(&c.target_resource)),
            }))
        }
        Operation::S3InitiateRestoreObject(r) => CosOperation::InitiateRestoreObject(CosInitiateRestoreObject {
            expiration_in_days: r.expiration_in_days,
            job_tier: r.glacier_job_tier.as_deref().map(|t| match t {
                "BULK" => "Bulk".to_string(),
                "STANDARD" => "Standard".to_string(),
                other => other.to_string(),
            }),
        }),
        Operation::S3DeleteObject(d) if d.delete_noncurrent_versions != Some(true) => {
            CosOperation::DeleteObject(Empty {})
        }
        Operation::S3PutObjectTagging(t) => CosOperation::PutObjectTagging(CosPutObjectTagging {
            tagging_directive: Some("Replaced".into()),
            tag_set: Some(t.tag_set.clone()),
        }),
        Operation::S3AddObjectTagging(t) => CosOperation::PutObjectTagging(CosPutObjectTagging {
            tagging_directive: Some("Add".into()),
            tag_set: Some(t.tag_set.clone()),
        }),
        _ => return None,
    })
}

fn progress(job: &Job) -> Value {
    json!({
        "NumberOfTasksFailed": job.failed,
        "NumberOfTasksSucceeded": job.succeeded,
        "TotalNumberOfTasks": job.total_tasks.unwrap_or(0),
    })
}

/// DescribeJob's `<Job>`, members in the docs' order.
pub fn job_view(job: &Job, region: &str, appid: &str) -> Value {
    let (manifest, operation, report, role_arn) = cos_parts(&job.spec, region, appid);
    let failures: Vec<Value> = if job.failure_reasons.is_empty() {
        // COS lists an empty JobFailure for a job without failures.
        vec![json!({ "FailureCode": "", "FailureReason": "" })]
    } else {
        job.failure_reasons
            .iter()
            .map(|f| json!({ "FailureCode": f.failure_code, "FailureReason": f.failure_reason }))
            .collect()
    };
    json!({
        "ConfirmationRequired": job.spec.confirmation_required,
        "CreationTime": cos_time(job.created_at),
        "Description": job.spec.description.clone().unwrap_or_default(),
        "FailureReasons": failures,
        "JobId": job.id,
        "Manifest": manifest,
        "Operation": operation,
        "Priority": job.priority,
        "ProgressSummary": progress(job),
        "Report": report,
        "RoleArn": role_arn,
        "Status": job.status,
        "StatusUpdateReason": job.status_update_reason,
        "SuspendedCause": job.suspended_cause,
        "SuspendedDate": job.suspended_at.map(cos_time),
        "TerminationDate": job.terminated_at.map(cos_time),
    })
}

/// The operation's name as ListJobs shows it: the COS name where there is one.
pub fn operation_name(spec: &JobSpec) -> String {
    if let Some(echo) = echo_of(spec) {
        return echo.operation.name().to_string();
    }
    operation_to_cos(&spec.operation, "", "").map_or_else(|| spec.operation.name().to_string(), |op| op.name().into())
}

fn list_member(job: &Job) -> Value {
    json!({
        "CreationTime": cos_time(job.created_at),
        "Description": job.spec.description.clone().unwrap_or_default(),
        "JobId": job.id,
        "Operation": operation_name(&job.spec),
        "Priority": job.priority,
        "ProgressSummary": progress(job),
        "Status": job.status,
        "TerminationDate": job.terminated_at.map(cos_time),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// cos-go-sdk-v5's CreateJob body (wire reference §2.1), with its `&#34;` quotes.
    const GO_CREATE: &str = "<CreateJobRequest><ClientRequestToken>184ce261-aaaa-bbbb-cccc-0123456789ab</ClientRequestToken><Description>example-job</Description><Manifest><Location><ETag>&#34;15150651828fa9cdcb8356b6d1c7638b&#34;</ETag><ObjectArn>qcs::cos:ap-chengdu::sourcebucket-1250000000/manifests/batch-copy-manifest.csv</ObjectArn></Location><Spec><Fields><member>Bucket</member><member>Key</member></Fields><Format>COSBatchOperations_CSV_V1</Format></Spec></Manifest><Operation><COSPutObjectCopy><TargetResource>qcs::cos:ap-chengdu:uid/1250000000:destinationbucket-1250000000</TargetResource></COSPutObjectCopy></Operation><Priority>0</Priority><Report><Bucket>qcs::cos:ap-chengdu:uid/1250000000:sourcebucket-1250000000</Bucket><Enabled>true</Enabled><Format>Report_CSV_V1</Format><Prefix>job-result</Prefix><ReportScope>AllTasks</ReportScope></Report><RoleArn>qcs::cam::uin/100000000001:roleName/COS_Batch_QcsRole</RoleArn></CreateJobRequest>";

    /// The docs' CreateJob example with the inventory manifest and every copy option (pretty-printed, as the
    /// docs write it).
    const DOCS_CREATE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<CreateJobRequest>
  <ClientRequestToken>tok-1</ClientRequestToken>
  <ConfirmationRequired>true</ConfirmationRequired>
  <Description>copy with options</Description>
  <Manifest>
    <Location>
      <ETag>"15150651828fa9cdcb8356b6d1c7638b"</ETag>
      <ObjectArn>qcs::cos:ap-chengdu:uid/1250000000:sourcebucket-1250000000/cos_bucket_inventory/1250000000/sourcebucket/inv/20240101/manifest.json</ObjectArn>
    </Location>
    <Spec><Format>COSInventoryReport_CSV_V1</Format></Spec>
  </Manifest>
  <Operation>
    <COSPutObjectCopy>
      <AccessControlDirective>Replaced</AccessControlDirective>
      <AccessControlGrants>
        <COSGrant><Grantee><DisplayName>u</DisplayName><Identifier>qcs::cam::uin/100000000011:uin/100000000011</Identifier><TypeIdentifier>ID</TypeIdentifier></Grantee><Permission>READ</Permission></COSGrant>
      </AccessControlGrants>
      <PrefixReplace>true</PrefixReplace>
      <ResourcesPrefix>pic</ResourcesPrefix>
      <TargetKeyPrefix>abc</TargetKeyPrefix>
      <CannedAccessControlList>private</CannedAccessControlList>
      <MetadataDirective>Replaced</MetadataDirective>
      <ModifiedSinceConstraint>1576812701</ModifiedSinceConstraint>
      <NewObjectMetadata>
        <CacheControl>no-cache</CacheControl>
        <ContentType>image/jpeg</ContentType>
        <HttpExpiresDate>Thu, 16 May 2019 06:45:51 GMT</HttpExpiresDate>
        <SSEAlgorithm>AES256</SSEAlgorithm>
        <UserMetadata><member><Key>x-cos-meta-a</Key><Value>1</Value></member></UserMetadata>
      </NewObjectMetadata>
      <TaggingDirective>Replaced</TaggingDirective>
      <NewObjectTagging><COSTag><Key>stage</Key><Value>copied</Value></COSTag></NewObjectTagging>
      <StorageClass>STANDARD_IA</StorageClass>
      <TargetResource>qcs::cos:ap-chengdu:uid/1250000000:destinationbucket-1250000000</TargetResource>
    </COSPutObjectCopy>
  </Operation>
  <Priority>10</Priority>
  <Report>
    <Bucket>qcs::cos:ap-chengdu:uid/1250000000:sourcebucket-1250000000</Bucket>
    <Enabled>true</Enabled>
    <Format>Report_CSV_V1</Format>
    <Prefix>job-result</Prefix>
    <ReportScope>FailedTasksOnly</ReportScope>
  </Report>
  <RoleArn>qcs::cam::uin/100000000001:roleName/COS_Batch_QcsRole</RoleArn>
</CreateJobRequest>"#;

    fn job_of(spec: JobSpec) -> Job {
        Job {
            id: "53dc6228-c50b-46f7-8ad7-65e7159f1aae".into(),
            account_id: "001250000000".into(),
            status: JobStatus::Suspended,
            priority: spec.priority,
            spec,
            client_request_token: "t".into(),
            tags: vec![],
            created_at: 1_576_812_701_000,
            updated_at: 1_576_812_701_000,
            suspended_at: Some(1_576_812_702_500),
            suspended_cause: Some("waiting for confirmation".into()),
            terminated_at: None,
            status_update_reason: None,
            failure_reasons: vec![],
            total_tasks: Some(3),
            succeeded: 0,
            failed: 0,
            active_ms: 0,
            active_since: None,
            manifest_etag: None,
            report_key: None,
            user_paused: false,
            generated_manifest: None,
            rate_limit: None,
        }
    }

    #[test]
    fn the_go_sdk_body_maps_onto_the_aws_job() {
        let (token, spec) = parse_create_job(GO_CREATE.as_bytes()).unwrap();
        assert_eq!(token, "184ce261-aaaa-bbbb-cccc-0123456789ab");
        assert!(!spec.confirmation_required, "COS defaults to no confirmation");
        assert_eq!(spec.priority, 0);
        assert_eq!(spec.description.as_deref(), Some("example-job"));
        assert_eq!(spec.role_arn, None, "the CAM role is kept in the echo only");
        let m = spec.manifest.as_ref().unwrap();
        assert_eq!(m.location.object_arn, "arn:aws:s3:::sourcebucket-1250000000/manifests/batch-copy-manifest.csv");
        assert_eq!(m.location.etag.as_deref(), Some("\"15150651828fa9cdcb8356b6d1c7638b\""));
        assert_eq!(m.spec.format, ManifestFormat::S3BatchOperationsCsv20180820);
        assert_eq!(m.spec.fields, vec![FieldName::Bucket, FieldName::Key]);
        let Operation::S3PutObjectCopy(c) = &spec.operation else { panic!("{:?}", spec.operation) };
        assert_eq!(c.target_resource, "arn:aws:s3:::destinationbucket-1250000000");
        assert_eq!(spec.report.bucket.as_deref(), Some("arn:aws:s3:::sourcebucket-1250000000"));
        assert_eq!(spec.report.format.as_deref(), Some(REPORT_FORMAT));
        assert_eq!(spec.report.report_scope, Some(ReportScope::AllTasks));
        spec.validate().unwrap();
    }

    #[test]
    fn every_copy_option_maps_and_echoes() {
        let (_, spec) = parse_create_job(DOCS_CREATE.as_bytes()).unwrap();
        assert!(spec.confirmation_required);
        assert_eq!(spec.manifest.as_ref().unwrap().spec.format, ManifestFormat::S3InventoryReportCsv20161130);
        let Operation::S3PutObjectCopy(c) = &spec.operation else { panic!() };
        assert_eq!(c.source_key_prefix.as_deref(), Some("pic"));
        assert_eq!(c.target_key_prefix.as_deref(), Some("abc"));
        assert_eq!(c.destination_key("picture.jpg"), "abcture.jpg");
        assert_eq!(c.metadata_directive, Some(MetadataDirective::Replace));
        let md = c.new_object_metadata.as_ref().unwrap();
        assert_eq!(md.http_expires_date.as_deref(), Some("2019-05-16T06:45:51.000Z"));
        assert_eq!(md.user_metadata.get("x-cos-meta-a").map(String::as_str), Some("1"));
        assert_eq!(c.modified_since_constraint.as_deref(), Some("2019-12-20T03:31:41.000Z"));
        assert_eq!(c.new_object_tagging, Some(vec![Tag::new("stage", "copied")]));
        assert_eq!(c.canned_access_control_list.as_deref(), Some("private"));
        let g = &c.access_control_grants.as_ref().unwrap()[0];
        assert_eq!(g.grantee.as_ref().unwrap().type_identifier.as_deref(), Some("id"));
        assert_eq!(c.storage_class.as_deref(), Some("STANDARD_IA"));

        // DescribeJob renders the request back, in COS names and spelling.
        let view = job_view(&job_of(spec), "ap-guangzhou", "1250000000");
        let xml = render("DescribeJobResult", &json!({ "Job": view }));
        for needle in [
            "<DescribeJobResult><Job><ConfirmationRequired>true</ConfirmationRequired><CreationTime>2019-12-20T03:31:41Z</CreationTime>",
            "<ETag>&quot;15150651828fa9cdcb8356b6d1c7638b&quot;</ETag>",
            "<ObjectArn>qcs::cos:ap-chengdu:uid/1250000000:sourcebucket-1250000000/cos_bucket_inventory/",
            "<Spec><Format>COSInventoryReport_CSV_V1</Format></Spec>",
            "<AccessControlGrants><COSGrant><Grantee><DisplayName>u</DisplayName>",
            "<TypeIdentifier>ID</TypeIdentifier></Grantee><Permission>READ</Permission></COSGrant></AccessControlGrants>",
            "<PrefixReplace>true</PrefixReplace><ResourcesPrefix>pic</ResourcesPrefix><TargetKeyPrefix>abc</TargetKeyPrefix>",
            "<ModifiedSinceConstraint>1576812701</ModifiedSinceConstraint>",
            "<HttpExpiresDate>Thu, 16 May 2019 06:45:51 GMT</HttpExpiresDate>",
            "<UserMetadata><member><Key>x-cos-meta-a</Key><Value>1</Value></member></UserMetadata>",
            "<NewObjectTagging><COSTag><Key>stage</Key><Value>copied</Value></COSTag></NewObjectTagging>",
            "<TargetResource>qcs::cos:ap-chengdu:uid/1250000000:destinationbucket-1250000000</TargetResource>",
            "<FailureReasons><JobFailure><FailureCode></FailureCode><FailureReason></FailureReason></JobFailure></FailureReasons>",
            "<ProgressSummary><NumberOfTasksFailed>0</NumberOfTasksFailed><NumberOfTasksSucceeded>0</NumberOfTasksSucceeded><TotalNumberOfTasks>3</TotalNumberOfTasks></ProgressSummary>",
            "<Report><Bucket>qcs::cos:ap-chengdu:uid/1250000000:sourcebucket-1250000000</Bucket><Enabled>true</Enabled><Format>Report_CSV_V1</Format><Prefix>job-result</Prefix><ReportScope>FailedTasksOnly</ReportScope></Report>",
            "<RoleArn>qcs::cam::uin/100000000001:roleName/COS_Batch_QcsRole</RoleArn><Status>Suspended</Status>",
            "<SuspendedCause>waiting for confirmation</SuspendedCause><SuspendedDate>2019-12-20T03:31:42Z</SuspendedDate></Job>",
        ] {
            assert!(xml.contains(needle), "missing {needle} in {xml}");
        }
        assert!(!xml.contains("xmlns") && !xml.contains("TerminationDate"), "{xml}");
        // What was rendered parses back into the same request.
        let back = COS.to_json(&xml::parse(xml.as_bytes()).unwrap()).unwrap();
        let echo: CosEcho = serde_json::from_value(json!({
            "Manifest": back["Job"]["Manifest"], "Operation": back["Job"]["Operation"],
            "Report": back["Job"]["Report"], "RoleArn": back["Job"]["RoleArn"],
        }))
        .unwrap();
        let (_, spec2) = parse_create_job(DOCS_CREATE.as_bytes()).unwrap();
        assert_eq!(Some(echo), echo_of(&spec2));
    }

    #[test]
    fn restore_delete_and_tagging() {
        let op = |inner: &str| {
            GO_CREATE.replace(
            "<COSPutObjectCopy><TargetResource>qcs::cos:ap-chengdu:uid/1250000000:destinationbucket-1250000000</TargetResource></COSPutObjectCopy>",
            inner,
        )
        };
        let (_, s) = parse_create_job(
            op("<COSInitiateRestoreObject><ExpirationInDays>3</ExpirationInDays><JobTier>Bulk</JobTier></COSInitiateRestoreObject>")
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            s.operation,
            Operation::S3InitiateRestoreObject(InitiateRestoreObject {
                expiration_in_days: Some(3),
                glacier_job_tier: Some("BULK".into())
            })
        );
        assert_eq!(operation_name(&s), "COSInitiateRestoreObject");
        let (_, s) = parse_create_job(op("<COSDeleteObject/>").as_bytes()).unwrap();
        assert_eq!(s.operation, Operation::S3DeleteObject(DeleteObject::default()));
        let tagging = "<COSPutObjectTagging><TaggingDirective>Add</TaggingDirective><TagSet><COSTag><Key>a</Key><Value>b</Value></COSTag></TagSet></COSPutObjectTagging>";
        let (_, s) = parse_create_job(op(tagging).as_bytes()).unwrap();
        assert_eq!(s.operation, Operation::S3AddObjectTagging(PutObjectTagging { tag_set: vec![Tag::new("a", "b")] }));
        let (_, s) = parse_create_job(op(&tagging.replace(">Add<", ">Replaced<")).as_bytes()).unwrap();
        assert!(matches!(s.operation, Operation::S3PutObjectTagging(_)));
        assert_eq!(operation_name(&s), "COSPutObjectTagging");
        let xml = render("R", &json!({ "Job": job_view(&job_of(s), "r", "1") }));
        assert!(xml.contains("<TagSet><COSTag><Key>a</Key><Value>b</Value></COSTag></TagSet>"), "{xml}");

        for (inner, code, needle) in [
            (
                "<COSInitiateRestoreObject><ExpirationInDays>366</ExpirationInDays><JobTier>Bulk</JobTier></COSInitiateRestoreObject>",
                "InvalidArgument",
                "1 to 365",
            ),
            (
                "<COSInitiateRestoreObject><ExpirationInDays>3</ExpirationInDays><JobTier>Expedited</JobTier></COSInitiateRestoreObject>",
                "InvalidArgument",
                "JobTier",
            ),
            (
                "<COSInitiateRestoreObject><JobTier>Bulk</JobTier></COSInitiateRestoreObject>",
                "InvalidArgument",
                "ExpirationInDays is required",
            ),
            (
                "<COSPutObjectTagging><TaggingDirective>Copy</TaggingDirective></COSPutObjectTagging>",
                "InvalidArgument",
                "Replaced or Add",
            ),
            ("<COSFrobnicate/>", "InvalidArgument", "COSPutObjectCopy, COSInitiateRestoreObject"),
            ("<COSDeleteObject/><COSPutObjectTagging/>", "MalformedXML", "exactly one"),
            ("", "MalformedXML", "empty"),
        ] {
            let e = parse_create_job(op(inner).as_bytes()).unwrap_err();
            assert_eq!(e.code, code, "{inner}: {e:?}");
            assert!(e.message.contains(needle), "{inner}: {}", e.message);
        }
    }

    #[test]
    fn refusals_name_the_problem() {
        let copy = |inner: &str| GO_CREATE.replace("<TargetResource>", &format!("{inner}<TargetResource>"));
        let cases: Vec<(String, &str, &str)> = vec![
            ("not xml".into(), "MalformedXML", "malformed"),
            (GO_CREATE.replace("CreateJobRequest", "CreateJobRequests"), "MalformedXML", "root"),
            (GO_CREATE.replace("<Priority>0</Priority>", "<Priority>x</Priority>"), "MalformedXML", "integer"),
            (
                GO_CREATE.replace("<Priority>0</Priority>", "<Priority>2147483648</Priority>"),
                "InvalidRequest",
                "Priority",
            ),
            (GO_CREATE.replace("<Priority>0</Priority>", "<Priority>-1</Priority>"), "InvalidRequest", "Priority"),
            (GO_CREATE.replace("<Priority>0</Priority>", ""), "InvalidArgument", "Priority is required"),
            (GO_CREATE.replace("184ce261-aaaa-bbbb-cccc-0123456789ab", ""), "InvalidArgument", "ClientRequestToken"),
            (GO_CREATE.replace("<Priority>", "<Frobnicate>1</Frobnicate><Priority>"), "MalformedXML", "Frobnicate"),
            (
                GO_CREATE.replace("COSBatchOperations_CSV_V1", "S3BatchOperations_CSV_20180820"),
                "InvalidArgument",
                "Format",
            ),
            (
                GO_CREATE.replace("<Fields><member>Bucket</member><member>Key</member></Fields>", ""),
                "InvalidArgument",
                "Fields",
            ),
            (GO_CREATE.replace("<member>Key</member>", "<member>Bogus</member>"), "MalformedXML", "Bogus"),
            (GO_CREATE.replace("<member>Key</member>", ""), "InvalidArgument", "Key"),
            (
                GO_CREATE.replace("qcs::cos:ap-chengdu::sourcebucket-1250000000/manifests/", "arn:aws:s3:::b/"),
                "InvalidArgument",
                "ObjectArn",
            ),
            (
                GO_CREATE.replace("<ETag>&#34;15150651828fa9cdcb8356b6d1c7638b&#34;</ETag>", ""),
                "InvalidArgument",
                "ETag",
            ),
            (
                GO_CREATE.replace(
                    "uid/1250000000:destinationbucket-1250000000",
                    "uid/1250000000:destinationbucket-1250000000/key",
                ),
                "InvalidArgument",
                "TargetResource",
            ),
            (
                GO_CREATE.replace("<Format>Report_CSV_V1</Format>", "<Format>Report_CSV_20180820</Format>"),
                "InvalidArgument",
                "Report.Format",
            ),
            (GO_CREATE.replace("<Format>Report_CSV_V1</Format>", ""), "InvalidArgument", "Report.Format is required"),
            (GO_CREATE.replace("<Enabled>true</Enabled>", ""), "InvalidArgument", "Report.Enabled"),
            (GO_CREATE.replace("<Enabled>true</Enabled>", "<Enabled>yes</Enabled>"), "MalformedXML", "true or false"),
            (
                GO_CREATE.replace(
                    "qcs::cam::uin/100000000001:roleName/COS_Batch_QcsRole",
                    "arn:aws:iam::123456789012:role/r",
                ),
                "InvalidArgument",
                "RoleArn",
            ),
            (GO_CREATE.replace("example-job", &"d".repeat(257)), "InvalidArgument", "Description"),
            (copy("<MetadataDirective>Add</MetadataDirective>"), "InvalidArgument", "needs NewObjectMetadata"),
            (copy("<TaggingDirective>Add</TaggingDirective>"), "InvalidArgument", "required with TaggingDirective Add"),
            (
                copy("<AccessControlDirective>Add</AccessControlDirective>"),
                "InvalidArgument",
                "takes AccessControlGrants",
            ),
            (copy("<MetadataDirective>Sometimes</MetadataDirective>"), "InvalidArgument", "MetadataDirective"),
            (
                copy("<NewObjectMetadata><ContentType>a/b</ContentType></NewObjectMetadata>"),
                "InvalidArgument",
                "Replaced",
            ),
            (
                copy("<AccessControlDirective>Replaced</AccessControlDirective>"),
                "InvalidArgument",
                "CannedAccessControlList",
            ),
            (
                copy("<CannedAccessControlList>public-read-write</CannedAccessControlList>"),
                "InvalidArgument",
                "private",
            ),
            (copy("<StorageClass>ARCHIVE</StorageClass>"), "InvalidArgument", "StorageClass"),
            (copy("<TargetKeyPrefix>x/</TargetKeyPrefix>"), "InvalidArgument", "PrefixReplace"),
            (
                copy("<ModifiedSinceConstraint>yesterday</ModifiedSinceConstraint>"),
                "InvalidArgument",
                "ModifiedSinceConstraint",
            ),
            (copy("<TaggingDirective>Replaced</TaggingDirective>"), "InvalidArgument", "NewObjectTagging is required"),
            (
                copy(
                    "<AccessControlGrants><COSGrant><Grantee><Identifier>x</Identifier><TypeIdentifier>uri</TypeIdentifier></Grantee><Permission>READ</Permission></COSGrant></AccessControlGrants>",
                ),
                "InvalidArgument",
                "TypeIdentifier",
            ),
            (
                copy(
                    "<MetadataDirective>Replaced</MetadataDirective><NewObjectMetadata><SSEAlgorithm>KMS</SSEAlgorithm></NewObjectMetadata>",
                ),
                "InvalidArgument",
                "SSEAlgorithm",
            ),
        ];
        for (body, code, needle) in cases {
            let e = parse_create_job(body.as_bytes()).unwrap_err();
            assert_eq!(e.code, code, "{needle}: {e:?}");
            assert!(e.message.contains(needle), "{needle}: {}", e.message);
        }
        // A disabled report needs nothing else; Go sends its empty members.
        let off = GO_CREATE.replace(
            "<Report><Bucket>qcs::cos:ap-chengdu:uid/1250000000:sourcebucket-1250000000</Bucket><Enabled>true</Enabled><Format>Report_CSV_V1</Format><Prefix>job-result</Prefix><ReportScope>AllTasks</ReportScope></Report>",
            "<Report><Bucket></Bucket><Enabled>false</Enabled><Format></Format><ReportScope></ReportScope></Report>",
        );
        let (_, s) = parse_create_job(off.as_bytes()).unwrap();
        assert!(!s.report.enabled && s.report.bucket.is_none());

        // The `Add` directives become the merge extensions of S3PutObjectCopy.
        let add = copy(
            "<MetadataDirective>Add</MetadataDirective><NewObjectMetadata><ContentType>a/b</ContentType></NewObjectMetadata>\
             <TaggingDirective>Add</TaggingDirective><NewObjectTagging><COSTag><Key>k</Key><Value>v</Value></COSTag></NewObjectTagging>\
             <AccessControlDirective>Add</AccessControlDirective><AccessControlGrants><COSGrant><Grantee><Identifier>1</Identifier><TypeIdentifier>ID</TypeIdentifier></Grantee><Permission>READ</Permission></COSGrant></AccessControlGrants>",
        );
        let (_, s) = parse_create_job(add.as_bytes()).unwrap();
        let Operation::S3PutObjectCopy(c) = &s.operation else { panic!("{:?}", s.operation) };
        assert_eq!(
            (c.merge_metadata, c.merge_tagging, c.merge_access_control_grants),
            (Some(true), Some(true), Some(true))
        );
        assert_eq!(c.metadata_directive, Some(MetadataDirective::Replace));
        assert_eq!(c.new_object_tagging.as_deref(), Some(&[Tag::new("k", "v")][..]));
        s.validate().unwrap();
    }

    #[test]
    fn jobs_from_other_front_ends_are_shown_in_cos_names() {
        let spec: JobSpec = serde_json::from_value(json!({
            "Operation": {"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::dst", "TargetKeyPrefix": "copies/",
                                              "MetadataDirective": "COPY"}},
            "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                         "Location": {"ObjectArn": "arn:aws:s3:::mbk/m.csv", "ETag": "abc"}},
            "Report": {"Enabled": false},
            "Priority": 5,
            "RoleArn": "arn:aws:iam::123456789012:role/batch"
        }))
        .unwrap();
        let xml = render("R", &json!({ "Job": job_view(&job_of(spec.clone()), "ap-chengdu", "1250000000") }));
        for needle in [
            "<ObjectArn>qcs::cos:ap-chengdu:uid/1250000000:mbk/m.csv</ObjectArn>",
            "<Format>COSBatchOperations_CSV_V1</Format>",
            "<COSPutObjectCopy><PrefixReplace>true</PrefixReplace><TargetKeyPrefix>copies/</TargetKeyPrefix><MetadataDirective>Copy</MetadataDirective><TargetResource>qcs::cos:ap-chengdu:uid/1250000000:dst</TargetResource></COSPutObjectCopy>",
            "<RoleArn>arn:aws:iam::123456789012:role/batch</RoleArn>",
            "<Report><Bucket></Bucket><Enabled>false</Enabled><Format></Format><ReportScope></ReportScope></Report>",
        ] {
            assert!(xml.contains(needle), "missing {needle} in {xml}");
        }
        assert_eq!(operation_name(&spec), "COSPutObjectCopy");
        let mut acl = spec.clone();
        acl.operation = serde_json::from_value(
            json!({"S3PutObjectAcl": {"AccessControlPolicy": {"CannedAccessControlList": "private"}}}),
        )
        .unwrap();
        assert_eq!(operation_name(&acl), "S3PutObjectAcl");
        let xml = render("R", &json!({ "Job": job_view(&job_of(acl), "ap-chengdu", "1") }));
        assert!(xml.contains("<Operation><S3PutObjectAcl/></Operation>"), "{xml}");

        // An echo that does not match what runs is not shown.
        let (_, mut cos) = parse_create_job(GO_CREATE.as_bytes()).unwrap();
        assert!(echo_of(&cos).is_some());
        cos.priority = 7;
        assert!(echo_of(&cos).is_some(), "priority lives outside the echo");
        cos.operation = Operation::S3DeleteObject(DeleteObject::default());
        assert!(echo_of(&cos).is_none());
        assert_eq!(operation_name(&cos), "COSDeleteObject");
    }

    #[test]
    fn service_errors_become_cos_codes() {
        let map = |code: &'static str, status: u16| {
            let e = CosError::from(ServiceError::new(code, status, "m"));
            (e.code, e.status)
        };
        assert_eq!(map("NotFoundException", 404), ("NoSuchJob", 404));
        assert_eq!(map("JobStatusException", 400), ("InvalidRequest", 400));
        assert_eq!(map("IdempotencyException", 400), ("InvalidRequest", 400));
        assert_eq!(map("BadRequestException", 400), ("InvalidArgument", 400));
        assert_eq!(map("InvalidNextTokenException", 400), ("InvalidArgument", 400));
        assert_eq!(map("InvalidRequestException", 400), ("InvalidArgument", 400));
        assert_eq!(map("TooManyRequestsException", 429), ("SlowDown", 503));
        assert_eq!(map("TooManyJobsException", 400), ("TooManyJobs", 500));
        assert_eq!(map("InternalServiceException", 500), ("ServiceUnavailable", 500));
        assert_eq!(map("SomethingNew", 503), ("InternalError", 500));
        let e = CosError::from(XmlError("bad".into()));
        assert_eq!((e.code, e.status), ("MalformedXML", 400));
    }

    #[test]
    fn error_bodies_and_ids() {
        let rid = CosRequestId::new();
        assert!(rid.request_id.len() == 32 && HeaderValue::from_str(&rid.request_id).is_ok());
        let body = error_body(&CosError::no_such_job("a<b"), "127.0.0.1:1/jobs/a<b", &rid);
        assert!(body.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchJob</Code><Message>"));
        assert!(body.contains("a&lt;b") && body.contains(&format!("<RequestId>{}</RequestId>", rid.request_id)));
        let parsed = xml::parse(body.as_bytes()).unwrap();
        assert_eq!(parsed.child("TraceId").unwrap().text, rid.trace_id);
    }

    #[test]
    fn content_md5() {
        use base64::Engine as _;
        use md5::Digest as _;
        let good = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(b"body"));
        check_content_md5(good.as_bytes(), b"body").unwrap();
        assert_eq!(check_content_md5(good.as_bytes(), b"other").unwrap_err().code, "BadDigest");
        assert_eq!(check_content_md5(b"!!", b"body").unwrap_err().code, "InvalidDigest");
    }

    #[test]
    fn timestamps_have_no_fractions() {
        assert_eq!(cos_time(1_576_812_701_999), "2019-12-20T03:31:41Z");
    }
}
