//! s3batch's JSON API, under `/api/v1`:
//!
//! | call | route |
//! |---|---|
//! | create | `POST /api/v1/jobs` (body: a [`CreateJobBody`]) |
//! | list | `GET /api/v1/jobs?status=Active&status=…&maxResults=N&nextToken=T` |
//! | describe | `GET /api/v1/jobs/{id}` |
//! | confirm / cancel | `POST /api/v1/jobs/{id}/status` `{"RequestedJobStatus": "Ready"\|"Cancelled", "StatusUpdateReason": …}` |
//! | priority | `POST /api/v1/jobs/{id}/priority` `{"Priority": N}` |
//! | tags | `GET` / `PUT` (`{"Tags": […]}`) / `DELETE` `/api/v1/jobs/{id}/tagging` |
//! | workers | `GET /api/v1/workers`: the processes running an engine on this database ([`WorkersResult`]) |
//! | rate limit | `POST /api/v1/jobs/{id}/rate-limit` `{"RateLimit": N}` (tasks/s for the whole job) or `{"RateLimit": null}` |
//! | preview | `GET /api/v1/jobs/{id}/preview`: tasks, bytes, requests, estimated duration ([`Preview`]) |
//! | report | `GET /api/v1/jobs/{id}/report`: where the completion report is and its files ([`ReportResult`]) |
//! | report file | `GET /api/v1/jobs/{id}/report/files/{n}`: the report's `n`th results file (CSV), streamed |
//!
//! A create body may also carry `"DryRun": true` and `"RateLimit": N` (extensions of the job spec).
//!
//! Errors are `{"Code": "<S3 Control exception name>", "Message": "…"}` with a 4xx/5xx status.

use axum::extract::Path;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use s3batch_core::{JobSpec, JobStatus, Tag, time};
use s3batch_engine::service::{RequestedStatus, ServiceError, WorkerStatus};
use s3batch_store::Job;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::pipeline::{self, ApiError, Dialect, WireError};
use crate::s3control::RequestId;
pub use crate::view::{JobDescriptor, ProgressSummary, Timers};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/jobs", post(create).get(list))
        .route("/api/v1/jobs/{id}", get(describe))
        .route("/api/v1/jobs/{id}/status", post(update_status))
        .route("/api/v1/jobs/{id}/priority", post(update_priority))
        .route("/api/v1/jobs/{id}/rerun", post(rerun))
        .route("/api/v1/jobs/{id}/tagging", get(get_tags).put(put_tags).delete(delete_tags))
        .route("/api/v1/workers", get(workers))
        .route("/api/v1/roles", get(roles))
        .route("/api/v1/jobs/{id}/rate-limit", post(update_rate_limit))
        .route("/api/v1/jobs/{id}/preview", get(preview))
        .route("/api/v1/jobs/{id}/report", get(report))
        .route("/api/v1/jobs/{id}/report/files/{n}", get(report_file))
}

/// An error response.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// The JSON API's dialect of the [pipeline](crate::pipeline): HTTP Basic, JSON bodies, errors named as the
/// S3 Control API names them.
pub struct JsonApi;

type Call = pipeline::Call<JsonApi>;
type ApiResult = Result<Response, ApiError>;

impl Dialect for JsonApi {
    const NAME: &'static str = "JSON API";
    const ID: &'static str = "json";
    type Caller = String;
    type RequestId = RequestId;

    fn authenticate(call: &Call) -> Result<String, ApiError> {
        call.state.accounts.authenticate_basic(&call.headers).map_err(|d| ApiError::Unauthenticated(d.0))
    }
    /// Basic credentials cover no body: the whole check.
    fn authenticate_head(
        state: &AppState,
        _: &Method,
        _: &Uri,
        headers: &HeaderMap,
    ) -> Result<Option<String>, ApiError> {
        let account = state.accounts.authenticate_basic(headers).map_err(|d| ApiError::Unauthenticated(d.0))?;
        Ok(Some(account))
    }
    /// As HTML forms and `reqwest` encode them: `+` is a space.
    fn decode_query(raw: &str) -> Result<Vec<(String, String)>, ApiError> {
        pipeline::decode_pairs(raw, true)
    }
    fn wire_error(e: ApiError) -> WireError {
        crate::s3control::wire_error(e)
    }
    fn error_response(e: &WireError, _: &Call) -> Response {
        (e.status, Json(ErrorBody { code: e.code.into(), message: e.message.clone() })).into_response()
    }
}

fn ok<T: Serialize>(v: &T) -> ApiResult {
    Ok(Json(v).into_response())
}

/// `POST /api/v1/jobs`: a [`JobSpec`] plus an optional ClientRequestToken.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateJobBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_token: Option<String>,
    #[serde(flatten)]
    pub spec: JobSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateJobResult {
    pub job_id: String,
}

/// A job as the JSON API shows it: DescribeJob's [`JobDescriptor`], plus where the report is and the job it
/// re-runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobView {
    #[serde(flatten)]
    pub job: JobDescriptor,
    /// Extension: `s3://<bucket>/<prefix>/job-<id>/manifest.json` once the report is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_location: Option<String>,
    /// Extension: the job whose failed tasks this one runs again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<String>,
}

impl JobView {
    pub fn new(job: &Job, region: &str) -> JobView {
        let report_location = job.report_key.as_ref().and_then(|k| {
            let bucket = job.spec.report.bucket.as_deref().and_then(s3batch_core::arn::parse_bucket_arn)?;
            Some(format!("s3://{bucket}/{k}"))
        });
        JobView { job: JobDescriptor::new(job, region), report_location, rerun_of: job.spec.rerun_of.clone() }
    }
}

impl std::ops::Deref for JobView {
    type Target = JobDescriptor;
    fn deref(&self) -> &JobDescriptor {
        &self.job
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListJobsResult {
    pub jobs: Vec<JobView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateStatusBody {
    pub requested_job_status: String,
    #[serde(default)]
    pub status_update_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PriorityBody {
    pub priority: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagsBody {
    pub tags: Vec<Tag>,
}

async fn create(call: Call) -> Response {
    call.answer(async |c| {
        let account = c.caller()?;
        let body: CreateJobBody = c.json()?;
        let job = c.state.service.create(&account, body.client_request_token, body.spec).await?;
        ok(&CreateJobResult { job_id: job.id })
    })
    .await
}

async fn list(call: Call) -> Response {
    call.answer(async |c| {
        let account = c.caller()?;
        let invalid = |m: String| ApiError::Service(ServiceError::InvalidListing(m));
        let (mut statuses, mut token, mut max) = (Vec::new(), None, None);
        for (k, v) in c.query()? {
            match k.as_str() {
                "status" | "jobStatuses" => statuses.push(v.parse::<JobStatus>().map_err(|e| invalid(e.to_string()))?),
                "nextToken" => token = Some(v),
                "maxResults" => {
                    max = Some(v.parse::<i64>().map_err(|_| invalid(format!("maxResults '{v}' is not a number")))?)
                }
                other => return Err(invalid(format!("unknown query parameter '{other}'"))),
            }
        }
        let (jobs, next) = c.state.service.list(&account, statuses, token.as_deref(), max).await?;
        let jobs = jobs.iter().map(|j| JobView::new(j, &c.state.region)).collect();
        ok(&ListJobsResult { jobs, next_token: next })
    })
    .await
}

async fn describe(Path(id): Path<String>, call: Call) -> Response {
    call.answer(async |c| {
        let account = c.caller()?;
        ok(&JobView::new(&c.state.service.describe(&account, &id).await?, &c.state.region))
    })
    .await
}

async fn update_status(Path(id): Path<String>, call: Call) -> Response {
    call.answer(async |c| {
        let account = c.caller()?;
        let b: UpdateStatusBody = c.json()?;
        let requested = b.requested_job_status.parse::<RequestedStatus>()?;
        let job = c.state.service.update_status(&account, &id, requested, b.status_update_reason).await?;
        ok(&JobView::new(&job, &c.state.region))
    })
    .await
}

async fn update_priority(Path(id): Path<String>, call: Call) -> Response {
    call.answer(async |c| {
        let account = c.caller()?;
        let b: PriorityBody = c.json()?;
        ok(&JobView::new(&c.state.service.update_priority(&account, &id, b.priority).await?, &c.state.region))
    })
    .await
}

/// Re-run a finished job's failed tasks as a new job (extension).
async fn rerun(Path(id): Path<String>, call: Call) -> Response {
    call.answer(async |c| {
        let account = c.caller()?;
        ok(&JobView::new(&c.state.service.rerun_failed(&account, &id).await?, &c.state.region))
    })
    .await
}

async fn get_tags(Path(id): Path<String>, call: Call) -> Response {
    call.answer(async |c| {
        let account = c.caller()?;
        ok(&TagsBody { tags: c.state.service.tags(&account, &id).await? })
    })
    .await
}

async fn put_tags(Path(id): Path<String>, call: Call) -> Response {
    call.answer(async |c| {
        let account = c.caller()?;
        let b: TagsBody = c.json()?;
        c.state.service.put_tags(&account, &id, &b.tags).await?;
        Ok(StatusCode::OK.into_response())
    })
    .await
}

async fn delete_tags(Path(id): Path<String>, call: Call) -> Response {
    call.answer(async |c| {
        let account = c.caller()?;
        c.state.service.put_tags(&account, &id, &[]).await?;
        Ok(StatusCode::OK.into_response())
    })
    .await
}

/// `GET /api/v1/workers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WorkersResult {
    pub workers: Vec<WorkerView>,
}

/// A process running an engine (`s3batch worker`, or `s3batch serve` with its engine).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WorkerView {
    pub worker_id: String,
    pub host: String,
    pub pid: i64,
    /// `worker` or `serve`.
    pub role: String,
    /// `running`, `draining` (shutting down) or `lost` (no heartbeat for two lease periods).
    pub state: String,
    pub chunks_in_flight: i64,
    pub started_at: String,
    pub last_heartbeat: String,
    /// Milliseconds since the last heartbeat, by the server's clock.
    pub heartbeat_age_ms: i64,
    /// Holds the scheduler lease: ranks jobs and sweeps for the whole fleet.
    pub scheduler: bool,
}

/// Any caller the server accepts may look: workers belong to no account.
async fn workers(call: Call) -> Response {
    call.answer(async |c| {
        c.caller()?;
        let now = time::now_millis();
        ok(&WorkersResult { workers: worker_views(c.state.service.workers(now).await?, now) })
    })
    .await
}

fn worker_views(workers: Vec<WorkerStatus>, now: s3batch_core::Millis) -> Vec<WorkerView> {
    workers
        .into_iter()
        .map(|s| WorkerView {
            worker_id: s.worker.id,
            host: s.worker.host,
            pid: s.worker.pid,
            role: s.worker.role,
            state: s.state.as_str().into(),
            chunks_in_flight: s.worker.chunks_in_flight,
            started_at: time::format_iso(s.worker.started_at),
            last_heartbeat: time::format_iso(s.worker.heartbeat_at),
            heartbeat_age_ms: (now - s.worker.heartbeat_at).max(0),
            scheduler: s.scheduler,
        })
        .collect()
}

/// `GET /api/v1/roles`: the caller's account's roles and what each allows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RolesResult {
    /// Whether every job must name one of them (the server has accounts).
    pub required: bool,
    pub roles: Vec<RoleView>,
}

/// One role as `s3batch roles` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoleView {
    pub role_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cos_role_arn: Option<String>,
    /// Bucket names or patterns it may read and list.
    pub read: Vec<String>,
    /// Bucket names or patterns it may change.
    pub write: Vec<String>,
    /// The operations it may run; `None`: every operation.
    pub operations: Option<Vec<String>>,
    /// The function ARNs LambdaInvoke jobs may name.
    pub functions: Vec<String>,
    /// The `[[storage]]` entries it signs its own requests to.
    pub own_credentials_for: Vec<String>,
}

async fn roles(call: Call) -> Response {
    call.answer(async |c| {
        let account = c.caller()?;
        ok(&RolesResult { required: c.state.service.roles_required(), roles: role_views(&c.state, &account) })
    })
    .await
}

fn role_views(state: &AppState, account: &str) -> Vec<RoleView> {
    state
        .service
        .roles(account)
        .iter()
        .map(|r| RoleView {
            role_arn: r.arn.clone(),
            cos_role_arn: r.cos_arn.clone(),
            read: r.read.clone(),
            write: r.write.clone(),
            operations: r.operations.clone(),
            functions: r.functions.clone(),
            own_credentials_for: r.credentials_for.clone(),
        })
        .collect()
}

/// `POST /api/v1/jobs/{id}/rate-limit`: tasks per second for the whole job, or `null` for none.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RateLimitBody {
    pub rate_limit: Option<i64>,
}

async fn update_rate_limit(Path(id): Path<String>, call: Call) -> Response {
    call.answer(async |c| {
        let account = c.caller()?;
        let b: RateLimitBody = c.json()?;
        ok(&JobView::new(&c.state.service.update_rate_limit(&account, &id, b.rate_limit).await?, &c.state.region))
    })
    .await
}

/// `GET /api/v1/jobs/{id}/preview`.
async fn preview(Path(id): Path<String>, call: Call) -> Response {
    call.answer(async |c| {
        let account = c.caller()?;
        ok(&c.state.service.preview(&account, &id).await?)
    })
    .await
}

/// `GET /api/v1/jobs/{id}/report`: the written completion report (404 `NotFoundException` while there is none).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReportResult {
    /// `s3://bucket/…/job-<id>/manifest.json`.
    pub location: String,
    /// The report's `manifest.json`, as written: `Results` lists its files, by task status.
    pub manifest: s3batch_core::report::ReportManifest,
}

async fn written_report(c: &Call, id: &str) -> Result<(String, s3batch_engine::service::JobReportFiles), ApiError> {
    let account = c.caller()?;
    match c.state.service.report(&account, id).await? {
        Some(files) => Ok((account, files)),
        None => Err(WireError::new("NotFoundException", 404, format!("job {id} has no report (yet)")).into()),
    }
}

async fn report(Path(id): Path<String>, call: Call) -> Response {
    call.answer(async |c| {
        let (_, files) = written_report(c, &id).await?;
        let location = format!("s3://{}/{}", files.bucket, files.manifest_key);
        ok(&ReportResult { location, manifest: files.manifest })
    })
    .await
}

async fn report_file(Path((id, n)): Path<(String, String)>, call: Call) -> Response {
    call.answer(async |c| {
        let (_, files) = written_report(c, &id).await?;
        let Some(f) = n.parse::<usize>().ok().and_then(|i| files.manifest.results.get(i)) else {
            return Err(WireError::new("NotFoundException", 404, format!("the report has no file {n}")).into());
        };
        let got = files.open(&f.bucket, &f.key).await?;
        let body =
            axum::body::Body::from_stream(futures::StreamExt::map(got.body, |b| b.map_err(std::io::Error::other)));
        Ok(([(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response())
    })
    .await
}
