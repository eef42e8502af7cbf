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
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use s3batch_core::{JobSpec, JobStatus, Tag};
use s3batch_engine::service::{RequestedStatus, ServiceError};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::pipeline::{self, ApiError, Dialect, WireError};
use crate::view::JobDescriptor;
use crate::xml::{self, S3CONTROL};

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

/// The S3 Control dialect of the [pipeline](crate::pipeline): SigV4, `x-amz-request-id`, `<ErrorResponse>`.
pub struct S3Control;

type Call = pipeline::Call<S3Control>;
type WireResult = Result<Response, ApiError>;

/// `x-amz-request-id`: 16 upper-case hex digits, as S3 writes them.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl pipeline::RequestId for RequestId {
    fn new() -> Self {
        RequestId(uuid::Uuid::new_v4().simple().to_string()[..16].to_uppercase())
    }
    fn log_id(&self) -> &str {
        &self.0
    }
    fn stamp(&self, resp: &mut Response) {
        let h = resp.headers_mut();
        let id = HeaderValue::from_str(&self.0).expect("hex is a valid header value");
        h.insert("x-amz-request-id", id.clone());
        h.insert("x-amz-id-2", id);
    }
}

impl Dialect for S3Control {
    const NAME: &'static str = "S3 Control";
    const ID: &'static str = "s3control";
    type Caller = String;
    type RequestId = RequestId;

    /// SigV4 when accounts are configured; the account is `x-amz-account-id`'s, which must be the key's.
    fn authenticate(call: &Call) -> Result<String, ApiError> {
        let body = call.body()?;
        Ok(call.state.accounts.authenticate_sigv4(&call.method, &call.uri, &call.headers, Some(body))?)
    }
    /// The signature over the payload hash the request claims, before the body is read. With
    /// `x-amz-content-sha256` that is the whole signature (and an open server checks none): only the body against
    /// the hash remains ([`confirm_body`](Dialect::confirm_body)).
    fn authenticate_head(
        state: &AppState,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Option<String>, ApiError> {
        let account = state.accounts.authenticate_sigv4(method, uri, headers, None)?;
        let whole = state.accounts.is_open() || headers.contains_key("x-amz-content-sha256");
        Ok(whole.then_some(account))
    }
    fn confirm_body(call: &Call, account: String) -> Result<String, ApiError> {
        if !call.state.accounts.is_open() {
            crate::sigv4::verify_payload(&call.headers, call.body()?)?;
        }
        Ok(account)
    }
    /// Percent-decoded; `+` stays `+`, as SigV4 reads it.
    fn decode_query(raw: &str) -> Result<Vec<(String, String)>, ApiError> {
        pipeline::decode_pairs(raw, false)
    }
    fn wire_error(e: ApiError) -> WireError {
        wire_error(e)
    }
    fn error_response(e: &WireError, call: &Call) -> Response {
        let rid = &call.rid.0;
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse><Error><Code>{}</Code><Message>{}</Message>\
             </Error><RequestId>{rid}</RequestId><HostId>{rid}</HostId></ErrorResponse>",
            e.code,
            quick_xml::escape::escape(e.message.as_str()),
        );
        (e.status, [(axum::http::header::CONTENT_TYPE, "application/xml")], body).into_response()
    }
}

/// Every error by its S3 Control exception name (the JSON API and the console name errors the same way).
pub fn wire_error(e: ApiError) -> WireError {
    use ServiceError as S;
    let w = WireError::new;
    match e {
        ApiError::Service(e) => match e {
            S::Invalid(m) => w("BadRequestException", 400, m),
            S::InvalidListing(m) => w("InvalidRequestException", 400, m),
            S::InvalidPageToken(m) => w("InvalidNextTokenException", 400, m),
            S::TooManyTags(m) => w("TooManyTagsException", 400, m),
            e @ S::NoSuchJob(_) => w("NotFoundException", 404, e.to_string()),
            S::WrongStatus { reason, .. } => w("JobStatusException", 400, reason),
            e @ S::Idempotency { .. } => w("IdempotencyException", 400, e.to_string()),
            e @ S::Contended => w("TooManyRequestsException", 429, e.to_string()),
            S::TooManyJobs(m) => w("TooManyRequestsException", 429, m),
            S::AccessDenied(m) => w("AccessDenied", 403, m),
            S::Storage(e) => {
                let (code, status) = match e.http_status {
                    404 => ("NotFoundException", 404),
                    403 => ("AccessDenied", 403),
                    _ => ("InternalServiceException", 500),
                };
                w(code, status, format!("{}: {}", e.code, e.message))
            }
            S::Internal(m) => w("InternalServiceException", 500, m),
            other => w("InternalServiceException", 500, other.to_string()),
        },
        ApiError::Malformed(m) | ApiError::BadParameter(m) => w("BadRequestException", 400, m),
        ApiError::Body { too_large, message } => w("BadRequestException", if too_large { 413 } else { 400 }, message),
        ApiError::Auth(e) => w(e.code, e.status, e.message),
        ApiError::Unauthenticated(m) => w("AccessDenied", 403, m),
        ApiError::RateLimited => w(
            "TooManyRequestsException",
            429,
            "too many requests for this account; slow down and try again".to_string(),
        ),
        ApiError::MethodNotAllowed { method, path } => {
            w("MethodNotAllowed", 405, format!("{method} is not allowed on {path}"))
        }
        ApiError::NotImplemented(m) => w("NotImplemented", 501, m),
        ApiError::Dialect(e) => e,
    }
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

async fn jobs(call: Call) -> Response {
    call.answer(jobs_inner).await
}

async fn job(Path(id): Path<String>, call: Call) -> Response {
    call.answer(async |c| job_inner(c, &id).await).await
}

async fn priority(Path(id): Path<String>, call: Call) -> Response {
    call.answer(async |c| priority_inner(c, &id).await).await
}

async fn status(Path(id): Path<String>, call: Call) -> Response {
    call.answer(async |c| status_inner(c, &id).await).await
}

async fn tagging(Path(id): Path<String>, call: Call) -> Response {
    call.answer(async |c| tagging_inner(c, &id).await).await
}

async fn other_operation(call: Call) -> Response {
    call.answer(other_inner).await
}

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
    let account = call.caller()?;
    let job = call.state.service.describe(&account, id).await?;
    let descriptor = JobDescriptor::new(&job, &call.state.region);
    Ok(xml_ok("DescribeJobResult", &json!({ "Job": descriptor })))
}

async fn other_inner(call: &Call) -> WireResult {
    call.caller()?;
    Err(ApiError::NotImplemented(format!(
        "s3batch implements the S3 Control job operations only, not {} {}",
        call.method,
        call.uri.path()
    )))
}

async fn create_job(call: &Call) -> WireResult {
    if !matches!(call.method, Method::POST) {
        return Err(call.wrong_method());
    }
    let account = call.caller()?;
    let (token, spec) = parse_create_job(call.body()?)?;
    let job = call.state.service.create(&account, Some(token), spec).await?;
    Ok(xml_ok("CreateJobResult", &json!({ "JobId": job.id })))
}

/// A `CreateJobRequest` body: its ClientRequestToken and the job.
pub fn parse_create_job(body: &[u8]) -> Result<(String, JobSpec), ApiError> {
    let root = xml::parse(body)?;
    if root.name != "CreateJobRequest" {
        return Err(ApiError::Malformed(format!("the body's root element is <{}>, not <CreateJobRequest>", root.name)));
    }
    let Value::Object(mut m) = S3CONTROL.to_json(&root)? else {
        return Err(ApiError::Malformed("<CreateJobRequest> must hold elements".into()));
    };
    let token = match m.remove("ClientRequestToken") {
        Some(Value::String(t)) if (1..=64).contains(&t.chars().count()) => t,
        Some(_) => return Err(ApiError::Malformed("ClientRequestToken must be 1 to 64 characters long".into())),
        None => return Err(ApiError::Malformed("ClientRequestToken is required".into())),
    };
    if m.contains_key("CosRequest") {
        return Err(ApiError::Malformed("CreateJobRequest: unknown element CosRequest".into()));
    }
    for required in ["Operation", "Report", "Priority", "RoleArn"] {
        if !m.contains_key(required) {
            return Err(ApiError::Malformed(format!("{required} is required")));
        }
    }
    exactly_one(&m, "Operation", "an operation")?;
    if m.contains_key("ManifestGenerator") {
        exactly_one(&m, "ManifestGenerator", "a manifest generator")?;
    }
    if let Some(loc) = m.get("Manifest").and_then(|x| x.get("Location"))
        && loc.get("ETag").is_none()
    {
        return Err(ApiError::Malformed("Manifest.Location.ETag is required".into()));
    }
    let spec: JobSpec = xml::from_json("CreateJobRequest", Value::Object(m))?;
    Ok((token, spec))
}

/// A structure that must have exactly one member set (a union, or JobOperation).
fn exactly_one(m: &Map<String, Value>, name: &str, what: &str) -> Result<(), ApiError> {
    match m.get(name) {
        Some(Value::Object(inner)) if inner.len() == 1 => Ok(()),
        Some(Value::Object(inner)) if inner.is_empty() => {
            Err(ApiError::Malformed(format!("{name} is empty; it must name {what}")))
        }
        Some(Value::Object(inner)) => Err(ApiError::Malformed(format!(
            "{name} must name exactly one {what}, not {}",
            inner.keys().cloned().collect::<Vec<_>>().join(" and ")
        ))),
        _ => Err(ApiError::Malformed(format!("{name} must hold elements"))),
    }
}

async fn list_jobs(call: &Call) -> WireResult {
    let account = call.caller()?;
    let invalid = |m: String| ApiError::Service(ServiceError::InvalidListing(m));
    let (mut statuses, mut token, mut max) = (Vec::new(), None, None);
    for (k, v) in call.query()? {
        match k.as_str() {
            "jobStatuses" => statuses.push(v.parse::<JobStatus>().map_err(|e| invalid(e.to_string()))?),
            "nextToken" => {
                if !(1..=1024).contains(&v.len()) {
                    return Err(ServiceError::InvalidPageToken("nextToken must be 1 to 1024 characters".into()).into());
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
            let v = JobDescriptor::new(j, &call.state.region);
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
    let account = call.caller()?;
    let raw = call
        .query()?
        .into_iter()
        .find(|(k, _)| k == "priority")
        .map(|(_, v)| v)
        .ok_or_else(|| ApiError::BadParameter("the priority query parameter is required".into()))?;
    let priority: i64 =
        raw.parse().map_err(|_| ApiError::BadParameter(format!("priority '{raw}' is not an integer")))?;
    let job = call.state.service.update_priority(&account, id, priority).await?;
    Ok(xml_ok("UpdateJobPriorityResult", &json!({ "JobId": job.id, "Priority": job.priority })))
}

async fn status_inner(call: &Call, id: &str) -> WireResult {
    if call.method != Method::POST {
        return Err(call.wrong_method());
    }
    let account = call.caller()?;
    let (mut requested, mut reason) = (None, None);
    for (k, v) in call.query()? {
        match k.as_str() {
            "requestedJobStatus" => requested = Some(v),
            "statusUpdateReason" => reason = Some(v),
            _ => {}
        }
    }
    let requested = requested
        .ok_or_else(|| ApiError::BadParameter("the requestedJobStatus query parameter is required".into()))?
        .parse::<RequestedStatus>()?;
    let job = call.state.service.update_status(&account, id, requested, reason).await?;
    Ok(xml_ok(
        "UpdateJobStatusResult",
        &json!({ "JobId": job.id, "Status": job.status, "StatusUpdateReason": job.status_update_reason }),
    ))
}

async fn tagging_inner(call: &Call, id: &str) -> WireResult {
    let account = call.caller()?;
    match call.method {
        Method::GET => {
            let tags = call.state.service.tags(&account, id).await?;
            Ok(xml_ok("GetJobTaggingResult", &json!({ "Tags": tags })))
        }
        Method::PUT => {
            let tags = parse_put_tagging(call.body()?)?;
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
pub fn parse_put_tagging(body: &[u8]) -> Result<Vec<Tag>, ApiError> {
    let root = xml::parse(body)?;
    if root.name != "PutJobTaggingRequest" {
        return Err(ApiError::Malformed(format!(
            "the body's root element is <{}>, not <PutJobTaggingRequest>",
            root.name
        )));
    }
    let tags = root.child("Tags").ok_or_else(|| ApiError::Malformed("Tags is required".into()))?;
    if root.children.len() != 1 {
        return Err(ApiError::Malformed("<PutJobTaggingRequest> holds only <Tags>".into()));
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
            let e = wire_error(e);
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
