//! The S3 Control job API on the wire (`rest-xml`, `/v20180820/jobs…`): what the `aws` CLI, boto3 and the AWS
//! SDKs send, answered the way they parse it.
//!
//! | operation | route |
//! |---|---|
//! | CreateJob | `POST /v20180820/jobs` |
//! | ListJobs | `GET /v20180820/jobs?jobStatuses=…&maxResults=…&nextToken=…` |
//! | DescribeJob | `GET /v20180820/jobs/{id}` |
//! | UpdateJobPriority | `POST /v20180820/jobs/{id}/priority?priority=N` |
//! | UpdateJobStatus | `POST /v20180820/jobs/{id}/status?requestedJobStatus=…&statusUpdateReason=…` |
//! | Get/Put/DeleteJobTagging | `GET` / `PUT` / `DELETE /v20180820/jobs/{id}/tagging` |
//!
//! Routing looks at the method and path only: any `Host` works (`127.0.0.1:port`, `<account>.localhost:port`) and
//! so do absolute-form request targets (a client pointed at s3batch as an HTTP proxy). The account is the
//! `x-amz-account-id` header's, which must be the signing key's. Every answer carries `x-amz-request-id`; errors
//! are `<ErrorResponse><Error><Code>…` with the modeled exception names.

use axum::Router;
use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use s3batch_core::{JobSpec, JobStatus, Tag};
use s3batch_engine::service::ServiceError;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::json::JobView;
use crate::xml::{self, S3CONTROL, XmlError};

/// The S3 Control XML namespace.
pub const XMLNS: &str = "http://awss3control.amazonaws.com/doc/2018-08-20/";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v20180820/jobs", any(jobs))
        .route("/v20180820/jobs/{id}", any(job))
        .route("/v20180820/jobs/{id}/priority", any(priority))
        .route("/v20180820/jobs/{id}/status", any(status))
        .route("/v20180820/jobs/{id}/tagging", any(tagging))
        .route("/v20180820/{*rest}", any(other_operation))
}

/// An error on the wire: the job service's error (the exception name, the HTTP status and a message), which the
/// request parsers and the signature check answer too.
pub type WireError = ServiceError;

impl From<XmlError> for ServiceError {
    fn from(e: XmlError) -> Self {
        ServiceError::bad_request(e.0)
    }
}

impl From<crate::sigv4::AuthError> for ServiceError {
    fn from(e: crate::sigv4::AuthError) -> Self {
        ServiceError::new(e.code, e.status, e.message)
    }
}

type WireResult = Result<Response, WireError>;

/// A request as every handler sees it.
struct Call {
    state: AppState,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(_: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestId::new())
    }
}

/// `x-amz-request-id`: 16 upper-case hex digits, as S3 writes them.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl RequestId {
    pub fn new() -> Self {
        RequestId(uuid::Uuid::new_v4().simple().to_string()[..16].to_uppercase())
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

/// Wrap a handler's outcome: success or the error envelope, both with the request id headers.
fn finish(rid: &RequestId, outcome: WireResult) -> Response {
    let mut resp = match outcome {
        Ok(r) => r,
        Err(e) => {
            if e.status >= 500 {
                tracing::error!(code = e.code, message = %e.message, request = %rid.0, "S3 Control call failed");
            } else {
                tracing::debug!(code = e.code, message = %e.message, request = %rid.0, "S3 Control call refused");
            }
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse><Error><Code>{}</Code><Message>{}</Message>\
                 </Error><RequestId>{}</RequestId><HostId>{}</HostId></ErrorResponse>",
                e.code,
                quick_xml::escape::escape(e.message.as_str()),
                rid.0,
                rid.0
            );
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, [(axum::http::header::CONTENT_TYPE, "application/xml")], body).into_response()
        }
    };
    let h = resp.headers_mut();
    let id = HeaderValue::from_str(&rid.0).expect("hex is a valid header value");
    h.insert("x-amz-request-id", id.clone());
    h.insert("x-amz-id-2", id);
    resp
}

/// `200` with `<{root} xmlns=…>{content}</{root}>`.
fn xml_ok(root: &str, content: &Value) -> Response {
    let mut out = String::with_capacity(1024);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let mut inner = String::new();
    if let Value::Object(m) = content {
        for (k, v) in m {
            S3CONTROL.render(&mut inner, k, v);
        }
    }
    out.push_str(&format!("<{root} xmlns=\"{XMLNS}\">{inner}</{root}>"));
    (StatusCode::OK, [(axum::http::header::CONTENT_TYPE, "application/xml")], out).into_response()
}

fn empty_ok() -> Response {
    StatusCode::OK.into_response()
}

impl Call {
    /// Who is calling (SigV4 when accounts are configured), for which account, within the rate limit.
    fn account(&self) -> Result<String, WireError> {
        let body = self.body_bytes()?;
        let account = self.state.accounts.authenticate_sigv4(&self.method, &self.uri, &self.headers, body)?;
        if !self.state.limiter.admit(&account) {
            return Err(WireError::new(
                "TooManyRequestsException",
                429,
                "too many requests for this account; slow down and try again",
            ));
        }
        Ok(account)
    }

    fn body_bytes(&self) -> Result<&[u8], WireError> {
        match &self.body {
            Ok(b) => Ok(b),
            Err(e) => Err(WireError::new(
                "BadRequestException",
                e.status().as_u16(),
                format!("the request body could not be read: {}", e.body_text()),
            )),
        }
    }

    /// The query string, percent-decoded (`+` stays `+`, as SigV4 reads it).
    fn query(&self) -> Result<Vec<(String, String)>, WireError> {
        let q = self.uri.query().unwrap_or("");
        q.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                let dec = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8()
                        .map(|c| c.into_owned())
                        .map_err(|_| WireError::bad_request("the query string is not UTF-8"))
                };
                Ok((dec(k)?, dec(v)?))
            })
            .collect()
    }

    fn wrong_method(&self) -> WireError {
        WireError::new("MethodNotAllowed", 405, format!("{} is not allowed on {}", self.method, self.uri.path()))
    }
}

macro_rules! handler {
    ($name:ident, $inner:ident, path) => {
        async fn $name(
            State(state): State<AppState>,
            rid: RequestId,
            method: Method,
            uri: Uri,
            headers: HeaderMap,
            Path(id): Path<String>,
            body: Result<Bytes, BytesRejection>,
        ) -> Response {
            let call = Call { state, method, uri, headers, body };
            finish(&rid, $inner(&call, &id).await)
        }
    };
    ($name:ident, $inner:ident) => {
        async fn $name(
            State(state): State<AppState>,
            rid: RequestId,
            method: Method,
            uri: Uri,
            headers: HeaderMap,
            body: Result<Bytes, BytesRejection>,
        ) -> Response {
            let call = Call { state, method, uri, headers, body };
            finish(&rid, $inner(&call).await)
        }
    };
}

handler!(jobs, jobs_inner);
handler!(job, job_inner, path);
handler!(priority, priority_inner, path);
handler!(status, status_inner, path);
handler!(tagging, tagging_inner, path);
handler!(other_operation, other_inner);

async fn jobs_inner(call: &Call) -> WireResult {
    match call.method {
        Method::POST => create_job(call).await,
        Method::GET => list_jobs(call).await,
        _ => Err(call.wrong_method()),
    }
}

async fn job_inner(call: &Call, id: &str) -> WireResult {
    if call.method != Method::GET {
        return Err(call.wrong_method());
    }
    let account = call.account()?;
    let job = call.state.service.describe(&account, id).await?;
    let view = JobView::new(&job, &call.state.region);
    Ok(xml_ok("DescribeJobResult", &json!({ "Job": descriptor(&view) })))
}

async fn other_inner(call: &Call) -> WireResult {
    call.account()?;
    Err(WireError::new(
        "NotImplemented",
        501,
        format!("s3batch implements the S3 Control job operations only, not {} {}", call.method, call.uri.path()),
    ))
}

/// A `JobDescriptor`: the JSON API's view, in the model's members.
fn descriptor(view: &JobView) -> Value {
    let mut v = serde_json::to_value(view).expect("plain data always serialises");
    if let Value::Object(m) = &mut v {
        m.remove("ReportLocation");
        m.remove("RerunOf");
    }
    v
}

async fn create_job(call: &Call) -> WireResult {
    if !matches!(call.method, Method::POST) {
        return Err(call.wrong_method());
    }
    let account = call.account()?;
    let (token, spec) = parse_create_job(call.body_bytes()?)?;
    let job = call.state.service.create(&account, Some(token), spec).await?;
    Ok(xml_ok("CreateJobResult", &json!({ "JobId": job.id })))
}

/// A `CreateJobRequest` body: its ClientRequestToken and the job.
pub fn parse_create_job(body: &[u8]) -> Result<(String, JobSpec), WireError> {
    let root = xml::parse(body)?;
    if root.name != "CreateJobRequest" {
        return Err(WireError::bad_request(format!(
            "the body's root element is <{}>, not <CreateJobRequest>",
            root.name
        )));
    }
    let Value::Object(mut m) = S3CONTROL.to_json(&root)? else {
        return Err(WireError::bad_request("<CreateJobRequest> must hold elements"));
    };
    let token = match m.remove("ClientRequestToken") {
        Some(Value::String(t)) if (1..=64).contains(&t.chars().count()) => t,
        Some(_) => return Err(WireError::bad_request("ClientRequestToken must be 1 to 64 characters long")),
        None => return Err(WireError::bad_request("ClientRequestToken is required")),
    };
    if m.contains_key("CosRequest") {
        return Err(WireError::bad_request("CreateJobRequest: unknown element CosRequest"));
    }
    for required in ["Operation", "Report", "Priority", "RoleArn"] {
        if !m.contains_key(required) {
            return Err(WireError::bad_request(format!("{required} is required")));
        }
    }
    exactly_one(&m, "Operation", "an operation")?;
    if m.contains_key("ManifestGenerator") {
        exactly_one(&m, "ManifestGenerator", "a manifest generator")?;
    }
    if let Some(loc) = m.get("Manifest").and_then(|x| x.get("Location"))
        && loc.get("ETag").is_none()
    {
        return Err(WireError::bad_request("Manifest.Location.ETag is required"));
    }
    let spec: JobSpec = xml::from_json("CreateJobRequest", Value::Object(m))?;
    Ok((token, spec))
}

/// A structure that must have exactly one member set (a union, or JobOperation).
fn exactly_one(m: &Map<String, Value>, name: &str, what: &str) -> Result<(), WireError> {
    match m.get(name) {
        Some(Value::Object(inner)) if inner.len() == 1 => Ok(()),
        Some(Value::Object(inner)) if inner.is_empty() => {
            Err(WireError::bad_request(format!("{name} is empty; it must name {what}")))
        }
        Some(Value::Object(inner)) => Err(WireError::bad_request(format!(
            "{name} must name exactly one {what}, not {}",
            inner.keys().cloned().collect::<Vec<_>>().join(" and ")
        ))),
        _ => Err(WireError::bad_request(format!("{name} must hold elements"))),
    }
}

async fn list_jobs(call: &Call) -> WireResult {
    let account = call.account()?;
    let invalid = |m: String| WireError::new("InvalidRequestException", 400, m);
    let (mut statuses, mut token, mut max) = (Vec::new(), None, None);
    for (k, v) in call.query()? {
        match k.as_str() {
            "jobStatuses" => statuses.push(v.parse::<JobStatus>().map_err(|e| invalid(e.to_string()))?),
            "nextToken" => {
                if !(1..=1024).contains(&v.len()) {
                    return Err(WireError::new(
                        "InvalidNextTokenException",
                        400,
                        "nextToken must be 1 to 1024 characters",
                    ));
                }
                token = Some(v)
            }
            "maxResults" => {
                max = Some(v.parse::<i64>().map_err(|_| invalid(format!("maxResults '{v}' is not an integer")))?)
            }
            _ => {}
        }
    }
    let (jobs, next) = call.state.service.list(&account, statuses, token.as_deref(), max).await?;
    let items: Vec<Value> = jobs
        .iter()
        .map(|j| {
            let v = JobView::new(j, &call.state.region);
            json!({
                "JobId": v.job_id,
                "Description": v.description,
                "Operation": j.spec.operation.name(),
                "Priority": v.priority,
                "Status": v.status,
                "CreationTime": v.creation_time,
                "TerminationDate": v.termination_date,
                "ProgressSummary": v.progress_summary,
            })
        })
        .collect();
    Ok(xml_ok("ListJobsResult", &json!({ "NextToken": next, "Jobs": items })))
}

async fn priority_inner(call: &Call, id: &str) -> WireResult {
    if call.method != Method::POST {
        return Err(call.wrong_method());
    }
    let account = call.account()?;
    let raw = call
        .query()?
        .into_iter()
        .find(|(k, _)| k == "priority")
        .map(|(_, v)| v)
        .ok_or_else(|| WireError::bad_request("the priority query parameter is required"))?;
    let priority: i64 =
        raw.parse().map_err(|_| WireError::bad_request(format!("priority '{raw}' is not an integer")))?;
    let job = call.state.service.update_priority(&account, id, priority).await?;
    Ok(xml_ok("UpdateJobPriorityResult", &json!({ "JobId": job.id, "Priority": job.priority })))
}

async fn status_inner(call: &Call, id: &str) -> WireResult {
    if call.method != Method::POST {
        return Err(call.wrong_method());
    }
    let account = call.account()?;
    let (mut requested, mut reason) = (None, None);
    for (k, v) in call.query()? {
        match k.as_str() {
            "requestedJobStatus" => requested = Some(v),
            "statusUpdateReason" => reason = Some(v),
            _ => {}
        }
    }
    let requested =
        requested.ok_or_else(|| WireError::bad_request("the requestedJobStatus query parameter is required"))?;
    let job = call.state.service.update_status(&account, id, &requested, reason).await?;
    Ok(xml_ok(
        "UpdateJobStatusResult",
        &json!({ "JobId": job.id, "Status": job.status, "StatusUpdateReason": job.status_update_reason }),
    ))
}

async fn tagging_inner(call: &Call, id: &str) -> WireResult {
    let account = call.account()?;
    match call.method {
        Method::GET => {
            let tags = call.state.service.tags(&account, id).await?;
            Ok(xml_ok("GetJobTaggingResult", &json!({ "Tags": tags })))
        }
        Method::PUT => {
            let tags = parse_put_tagging(call.body_bytes()?)?;
            call.state.service.put_tags(&account, id, &tags).await?;
            Ok(empty_ok())
        }
        Method::DELETE => {
            call.state.service.put_tags(&account, id, &[]).await?;
            Ok(empty_ok())
        }
        _ => Err(call.wrong_method()),
    }
}

/// A `PutJobTaggingRequest` body: the new tag set.
pub fn parse_put_tagging(body: &[u8]) -> Result<Vec<Tag>, WireError> {
    let root = xml::parse(body)?;
    if root.name != "PutJobTaggingRequest" {
        return Err(WireError::bad_request(format!(
            "the body's root element is <{}>, not <PutJobTaggingRequest>",
            root.name
        )));
    }
    let tags = root.child("Tags").ok_or_else(|| WireError::bad_request("Tags is required"))?;
    if root.children.len() != 1 {
        return Err(WireError::bad_request("<PutJobTaggingRequest> holds only <Tags>"));
    }
    Ok(xml::from_json("PutJobTaggingRequest.Tags", S3CONTROL.to_json(tags)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATE: &str = r#"<CreateJobRequest xmlns="http://awss3control.amazonaws.com/doc/2018-08-20/"><ClientRequestToken>tok</ClientRequestToken><ConfirmationRequired>false</ConfirmationRequired><Manifest><Location><ETag>abc</ETag><ObjectArn>arn:aws:s3:::mbk/m.csv</ObjectArn></Location><Spec><Fields><member>Bucket</member><member>Key</member></Fields><Format>S3BatchOperations_CSV_20180820</Format></Spec></Manifest><Operation><S3PutObjectTagging><TagSet><member><Key>k</Key><Value>v</Value></member></TagSet></S3PutObjectTagging></Operation><Priority>10</Priority><Report><Enabled>false</Enabled></Report><RoleArn>arn:aws:iam::123456789012:role/r</RoleArn></CreateJobRequest>"#;

    #[test]
    fn create_job_body_parses_in_any_order() {
        let (token, spec) = parse_create_job(CREATE.as_bytes()).unwrap();
        assert_eq!(token, "tok");
        assert_eq!(spec.priority, 10);
        assert!(!spec.confirmation_required);
        spec.validate().unwrap();
    }

    #[test]
    fn dry_run_and_rate_limit_extensions_on_the_wire() {
        let body = CREATE.replace("<Priority>", "<DryRun>true</DryRun><RateLimit>25</RateLimit><Priority>");
        let (_, spec) = parse_create_job(body.as_bytes()).unwrap();
        assert!(spec.dry_run);
        assert_eq!(spec.rate_limit, Some(25));
        spec.validate().unwrap();
        let (_, plain) = parse_create_job(CREATE.as_bytes()).unwrap();
        assert_eq!((plain.dry_run, plain.rate_limit), (false, None));
        let bad = CREATE.replace("<Priority>", "<RateLimit>0</RateLimit><Priority>");
        let (_, spec) = parse_create_job(bad.as_bytes()).unwrap();
        assert!(spec.validate().unwrap_err().message.contains("RateLimit"));
    }

    #[test]
    fn create_job_refusals_name_the_problem() {
        let cases = [
            (CREATE.replace("<ClientRequestToken>tok</ClientRequestToken>", ""), "ClientRequestToken"),
            (CREATE.replace("<RoleArn>arn:aws:iam::123456789012:role/r</RoleArn>", ""), "RoleArn"),
            (CREATE.replace("<ETag>abc</ETag>", ""), "ETag"),
            (CREATE.replace("<Priority>10</Priority>", "<Priority>x</Priority>"), "integer"),
            (
                CREATE.replace("</S3PutObjectTagging>", "</S3PutObjectTagging><S3DeleteObjectTagging/>"),
                "exactly one",
            ),
            (CREATE.replace("<Operation><S3PutObjectTagging><TagSet><member><Key>k</Key><Value>v</Value></member></TagSet></S3PutObjectTagging></Operation>", "<Operation/>"), "is empty"),
            (CREATE.replace("<Fields>", "<Fields><member>Bogus</member>"), "Bogus"),
            (CREATE.replace("<Priority>", "<Frobnicate>1</Frobnicate><Priority>"), "Frobnicate"),
            (CREATE.replace("CreateJobRequest", "Other"), "root"),
        ];
        for (body, needle) in cases {
            let e = parse_create_job(body.as_bytes()).unwrap_err();
            assert_eq!(e.code, "BadRequestException");
            assert!(e.message.contains(needle), "{needle}: {}", e.message);
        }
    }

    #[test]
    fn put_tagging_body() {
        let tags = parse_put_tagging(
            b"<PutJobTaggingRequest><Tags><member><Key>a</Key><Value>b</Value></member></Tags></PutJobTaggingRequest>",
        )
        .unwrap();
        assert_eq!(tags, vec![Tag::new("a", "b")]);
        assert!(parse_put_tagging(b"<PutJobTaggingRequest><Tags /></PutJobTaggingRequest>").unwrap().is_empty());
        assert!(parse_put_tagging(b"<PutJobTaggingRequest/>").is_err());
    }
}
