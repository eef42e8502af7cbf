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

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use s3batch_core::{JobStatus, time};
use s3batch_engine::service::{RequestedStatus, ServiceError};
use s3batch_store::CreateOutcome;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::CosCaller;
use crate::pipeline::{self, ApiError, Dialect, WireError};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/jobs", any(jobs))
        .route("/jobs/{id}", any(job))
        .route("/jobs/{id}/priority", any(priority))
        .route("/jobs/{id}/status", any(status))
}

/// Jobs created longer ago than this are not listed.
pub const LIST_WINDOW_DAYS: i64 = 90;

/// The operations COS defines, in the order its docs list them.
pub const COS_OPERATIONS: [&str; 4] =
    ["COSPutObjectCopy", "COSInitiateRestoreObject", "COSDeleteObject", "COSPutObjectTagging"];

mod convert;
mod shapes;

pub use convert::*;
pub use shapes::*;

// ---------------------------------------------------------------------------------------------------------------
// The dialect: q-sign, `x-cos-request-id`, `<Error>` bodies, COS error codes

/// The COS dialect of the [pipeline](crate::pipeline).
pub struct Cos;

type Call = pipeline::Call<Cos>;
type CosResult = Result<Response, ApiError>;

/// `x-cos-request-id` (and the error body's `TraceId`): opaque base64 text, as COS writes them.
#[derive(Debug, Clone)]
pub struct CosRequestId {
    pub request_id: String,
    pub trace_id: String,
}

impl pipeline::RequestId for CosRequestId {
    fn new() -> Self {
        let id = || crate::auth::encode_base64(&uuid::Uuid::new_v4().simple().to_string().as_bytes()[..24]);
        CosRequestId { request_id: id(), trace_id: id() }
    }
    fn log_id(&self) -> &str {
        &self.request_id
    }
    fn stamp(&self, resp: &mut Response) {
        if let Ok(v) = HeaderValue::from_str(&self.request_id) {
            resp.headers_mut().insert("x-cos-request-id", v);
        }
    }
}

impl pipeline::Caller for CosCaller {
    fn account(&self) -> &str {
        &self.account
    }
}

impl Dialect for Cos {
    const NAME: &'static str = "COS";
    const ID: &'static str = "cos";
    type Caller = CosCaller;
    type RequestId = CosRequestId;

    /// q-sign when accounts are configured, and `Content-MD5` when sent.
    fn authenticate(call: &Call) -> Result<CosCaller, ApiError> {
        let c = call.state.accounts.authenticate_qsign(&call.method, &call.uri, &call.headers)?;
        Self::confirm_body(call, c)
    }
    /// The whole signature (q-sign covers no body; `Content-MD5` is checked once the body is read).
    fn authenticate_head(
        state: &AppState,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Option<CosCaller>, ApiError> {
        Ok(Some(state.accounts.authenticate_qsign(method, uri, headers)?))
    }
    fn confirm_body(call: &Call, caller: CosCaller) -> Result<CosCaller, ApiError> {
        if let Some(md5) = call.headers.get("content-md5") {
            check_content_md5(md5.as_bytes(), call.body()?)?;
        }
        Ok(caller)
    }
    /// As the COS SDKs encode it: `+` is a space.
    fn decode_query(raw: &str) -> Result<Vec<(String, String)>, ApiError> {
        pipeline::decode_pairs(raw, true).map_err(|_| invalid_argument("the query string is not UTF-8"))
    }
    fn wire_error(e: ApiError) -> WireError {
        wire_error(e)
    }
    fn error_response(e: &WireError, call: &Call) -> Response {
        let host = call.headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        let body = error_body(e, &format!("{host}{}", call.uri.path()), &call.rid);
        let mut r = (e.status, [(axum::http::header::CONTENT_TYPE, "application/xml")], body).into_response();
        if let Ok(v) = HeaderValue::from_str(&call.rid.trace_id) {
            r.headers_mut().insert("x-cos-trace-id", v);
        }
        r
    }
}

/// Every error by its COS error code.
pub fn wire_error(e: ApiError) -> WireError {
    use ServiceError as S;
    let w = WireError::new;
    match e {
        ApiError::Service(e) => match e {
            e @ S::NoSuchJob(_) => w("NoSuchJob", 404, e.to_string()),
            S::WrongStatus { reason, .. } => w("InvalidRequest", 400, reason),
            e @ S::Idempotency { .. } => w("InvalidRequest", 400, e.to_string()),
            e @ S::Contended => w("SlowDown", 503, e.to_string()),
            S::TooManyJobs(m) => w("SlowDown", 503, m),
            S::AccessDenied(m) => w("AccessDenied", 403, m),
            S::Internal(m) => w("ServiceUnavailable", 500, m),
            S::Invalid(m) | S::InvalidListing(m) | S::InvalidPageToken(m) | S::TooManyTags(m) => {
                w("InvalidArgument", 400, m)
            }
            S::Storage(e) => {
                let (code, status) = match e.http_status {
                    404 => ("NoSuchKey", 404),
                    403 => ("AccessDenied", 403),
                    _ => ("InternalError", 500),
                };
                w(code, status, format!("{}: {}", e.code, e.message))
            }
            other => w("InternalError", 500, other.to_string()),
        },
        ApiError::Malformed(m) => w("MalformedXML", 400, m),
        ApiError::BadParameter(m) => w("InvalidArgument", 400, m),
        ApiError::Body { too_large: true, message } => w("EntityTooLarge", 413, message),
        ApiError::Body { message, .. } => w("InvalidRequest", 400, message),
        ApiError::Auth(e) => w(e.code, e.status, e.message),
        ApiError::Unauthenticated(m) => w("AccessDenied", 403, m),
        ApiError::RateLimited => {
            w("SlowDown", 503, "too many requests for this account; slow down and try again".to_string())
        }
        ApiError::MethodNotAllowed { method, path } => {
            w("MethodNotAllowed", 405, format!("{method} is not allowed on {path}"))
        }
        ApiError::NotImplemented(m) => w("NotImplemented", 501, m),
        ApiError::Dialect(e) => e,
    }
}

fn invalid_argument(m: impl Into<String>) -> ApiError {
    WireError::new("InvalidArgument", 400, m).into()
}

fn invalid_request(m: impl Into<String>) -> ApiError {
    WireError::new("InvalidRequest", 400, m).into()
}

fn malformed(m: impl Into<String>) -> ApiError {
    ApiError::Malformed(m.into())
}

fn no_such_job(id: &str) -> ApiError {
    ServiceError::NoSuchJob(id.to_string()).into()
}

/// The `<Error>` body COS sends.
pub fn error_body(e: &WireError, resource: &str, rid: &CosRequestId) -> String {
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

/// `Content-MD5` = base64(MD5(body)), when the client sends one (cos-go-sdk-v5 does on CreateJob).
fn check_content_md5(header: &[u8], body: &[u8]) -> Result<(), ApiError> {
    use base64::Engine as _;
    use md5::Digest as _;
    let sent = base64::engine::general_purpose::STANDARD
        .decode(header.trim_ascii())
        .ok()
        .filter(|d| d.len() == 16)
        .ok_or_else(|| WireError::new("InvalidDigest", 400, "Content-MD5 is not the base64 of an MD5 digest"))?;
    if sent.as_slice() != md5::Md5::digest(body).as_slice() {
        return Err(
            WireError::new("BadDigest", 400, "the Content-MD5 you specified did not match what we received").into()
        );
    }
    Ok(())
}

/// A JobId that can name a job here: 5..36 of `[A-Za-z0-9-_]` (COS allows 1..64 bytes; nothing else can exist).
fn check_job_id(id: &str) -> Result<(), ApiError> {
    let ok = (5..=36).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(()) } else { Err(no_such_job(id)) }
}

// ---------------------------------------------------------------------------------------------------------------
// The calls

async fn jobs(call: Call) -> Response {
    call.answer(async |c| match c.method {
        Method::POST => create_job(c).await,
        Method::GET => list_jobs(c).await,
        _ => Err(c.wrong_method()),
    })
    .await
}

async fn job(Path(id): Path<String>, call: Call) -> Response {
    call.answer(async |c| match c.method {
        Method::GET => describe_job(c, &id).await,
        Method::DELETE => delete_job(c, &id).await,
        _ => Err(c.wrong_method()),
    })
    .await
}

async fn priority(Path(id): Path<String>, call: Call) -> Response {
    call.answer(async |c| priority_inner(c, &id).await).await
}

async fn status(Path(id): Path<String>, call: Call) -> Response {
    call.answer(async |c| status_inner(c, &id).await).await
}

async fn create_job(call: &Call) -> CosResult {
    let caller = call.caller()?;
    let body = call.body()?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(invalid_request("the request body is empty; send a <CreateJobRequest>"));
    }
    let (token, spec) = parse_create_job(body)?;
    match call.state.service.create_outcome(&caller.account, Some(token.clone()), spec).await? {
        CreateOutcome::Created(job) => Ok(xml_ok("CreateJobResult", &json!({ "JobId": job.id }))),
        CreateOutcome::Existing(job) => Err(invalid_request(format!(
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
    for (k, v) in call.query()? {
        match k.as_str() {
            "jobStatuses" => {
                for s in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let st = s.parse::<JobStatus>().map_err(|_| {
                        invalid_argument(format!(
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
                let n =
                    v.trim().parse::<i64>().ok().filter(|n| (1..=1000).contains(n)).ok_or_else(|| {
                        invalid_argument(format!("maxResults '{v}' is not an integer from 1 to 1000"))
                    })?;
                max = Some(n);
            }
            "nextToken" => {
                if !(1..=64).contains(&v.len()) {
                    return Err(invalid_argument("nextToken must be 1 to 64 bytes long"));
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
        .param("priority")?
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| invalid_request("the priority query parameter is required"))?;
    let priority = raw
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|p| (0..=s3batch_core::spec::MAX_PRIORITY).contains(p))
        .ok_or_else(|| invalid_argument(format!("priority '{raw}' is not an integer from 0 to 2147483647")))?;
    check_job_id(id)?;
    let job = call.state.service.describe(&caller.account, id).await?;
    let finished =
        || WireError::new("NoSuchJob", 404, format!("The specified job does not exist or has already finished: {id}"));
    if job.status.is_terminal() {
        return Err(finished().into());
    }
    let job = match call.state.service.update_priority(&caller.account, id, priority).await {
        Ok(j) => j,
        // The range was checked above: what is left is a job that finished meanwhile.
        Err(ServiceError::Invalid(_)) => return Err(finished().into()),
        Err(e) => return Err(e.into()),
    };
    Ok(xml_ok("UpdateJobPriorityResult", &json!({ "JobId": job.id, "Priority": job.priority })))
}

async fn status_inner(call: &Call, id: &str) -> CosResult {
    if call.method != Method::POST {
        return Err(call.wrong_method());
    }
    let caller = call.caller()?;
    let requested = match call.param("requestedJobStatus")?.as_deref() {
        Some("Ready") => RequestedStatus::Ready,
        Some("Cancelled") => RequestedStatus::Cancelled,
        other => {
            let other = other.unwrap_or_default();
            return Err(invalid_argument(format!("requestedJobStatus must be Ready or Cancelled, got '{other}'")));
        }
    };
    let reason = call.param("statusUpdateReason")?.filter(|r| !r.is_empty());
    if let Some(r) = &reason
        && r.len() > 256
    {
        return Err(invalid_argument("statusUpdateReason is longer than 256 bytes"));
    }
    check_job_id(id)?;
    let job = call.state.service.describe(&caller.account, id).await?;
    if job.status.is_terminal() {
        return Err(invalid_request(format!(
            "the job has already finished ({}); its status cannot change",
            job.status
        )));
    }
    let job = call.state.service.update_status(&caller.account, id, requested, reason).await?;
    Ok(xml_ok(
        "UpdateJobStatusResult",
        &json!({ "JobId": job.id, "Status": job.status, "StatusUpdateReason": job.status_update_reason }),
    ))
}

#[cfg(test)]
mod tests {
    use s3batch_core::manifest::{FieldName, ManifestFormat};
    use s3batch_core::spec::{
        DeleteObject, InitiateRestoreObject, MetadataDirective, PutObjectTagging, REPORT_FORMAT, ReportScope,
    };
    use s3batch_core::{JobSpec, Operation, Tag};
    use s3batch_store::Job;

    use super::*;
    use crate::xml::{self, XmlError};

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
            let e = wire_error(parse_create_job(op(inner).as_bytes()).unwrap_err());
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
            let e = wire_error(parse_create_job(body.as_bytes()).unwrap_err());
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
        let map = |e: ServiceError| {
            let e = wire_error(e.into());
            (e.code, e.status.as_u16())
        };
        let m = || "m".to_string();
        assert_eq!(map(ServiceError::NoSuchJob(m())), ("NoSuchJob", 404));
        assert_eq!(map(ServiceError::wrong_status(JobStatus::Complete, m())), ("InvalidRequest", 400));
        assert_eq!(map(ServiceError::Idempotency { job: m() }), ("InvalidRequest", 400));
        assert_eq!(map(ServiceError::Invalid(m())), ("InvalidArgument", 400));
        assert_eq!(map(ServiceError::InvalidPageToken(m())), ("InvalidArgument", 400));
        assert_eq!(map(ServiceError::InvalidListing(m())), ("InvalidArgument", 400));
        assert_eq!(map(ServiceError::TooManyTags(m())), ("InvalidArgument", 400));
        assert_eq!(map(ServiceError::Contended), ("SlowDown", 503));
        assert_eq!(map(ServiceError::TooManyJobs(m())), ("SlowDown", 503));
        assert_eq!(map(ServiceError::AccessDenied(m())), ("AccessDenied", 403));
        assert_eq!(map(ServiceError::Internal(m())), ("ServiceUnavailable", 500));
        let e = wire_error(XmlError("bad".into()).into());
        assert_eq!((e.code, e.status.as_u16()), ("MalformedXML", 400));
    }

    #[test]
    fn error_bodies_and_ids() {
        let rid = <CosRequestId as pipeline::RequestId>::new();
        assert!(rid.request_id.len() == 32 && HeaderValue::from_str(&rid.request_id).is_ok());
        let body = error_body(&wire_error(no_such_job("a<b")), "127.0.0.1:1/jobs/a<b", &rid);
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
        let code = |r: Result<(), ApiError>| wire_error(r.unwrap_err()).code;
        assert_eq!(code(check_content_md5(good.as_bytes(), b"other")), "BadDigest");
        assert_eq!(code(check_content_md5(b"!!", b"body")), "InvalidDigest");
    }

    #[test]
    fn timestamps_have_no_fractions() {
        assert_eq!(cos_time(1_576_812_701_999), "2019-12-20T03:31:41Z");
    }
}
