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
//!
//! A create body may also carry `"DryRun": true` and `"RateLimit": N` (extensions of the job spec).
//!
//! Errors are `{"Code": "<S3 Control exception name>", "Message": "…"}` with a 4xx/5xx status.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use s3batch_core::spec::{JobManifest, JobReport, ManifestGenerator};
use s3batch_core::{JobSpec, JobStatus, Operation, Tag, time};
use s3batch_engine::preview::Preview;
use s3batch_engine::service::ServiceError;
use s3batch_store::{FailureReason, Job};
use serde::{Deserialize, Serialize};

use crate::AppState;

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
}

/// An error response.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// What handlers return on failure.
#[derive(Debug)]
pub struct ApiError(pub ServiceError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(ErrorBody { code: self.0.code.into(), message: self.0.message })).into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        ApiError(e)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        ApiError(ServiceError::bad_request(format!("the request body is not valid: {}", e.body_text())))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError(ServiceError::bad_request(format!("the query string is not valid: {}", e.body_text())))
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn account(state: &AppState, headers: &HeaderMap) -> ApiResult<String> {
    state.accounts.authenticate_basic(headers).map_err(|d| ApiError(ServiceError::new("AccessDenied", 403, d.0)))
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

/// `ProgressSummary`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProgressSummary {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_number_of_tasks: Option<i64>,
    pub number_of_tasks_succeeded: i64,
    pub number_of_tasks_failed: i64,
    pub timers: Timers,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Timers {
    pub elapsed_time_in_active_seconds: i64,
}

/// A job as the JSON API shows it: the JobDescriptor of DescribeJob (members in the model's order), plus where
/// the report is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobView {
    pub job_id: String,
    pub confirmation_required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub job_arn: String,
    pub status: JobStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<JobManifest>,
    pub operation: Operation,
    pub priority: i64,
    pub progress_summary: ProgressSummary,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_update_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failure_reasons: Vec<FailureReason>,
    pub report: JobReport,
    pub creation_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_cause: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_generator: Option<ManifestGenerator>,
    /// Extension: `s3://<bucket>/<prefix>/job-<id>/manifest.json` once the report is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_location: Option<String>,
    /// The manifest a ManifestGenerator job wrote (EnableManifestOutput): `{Format, Location {ObjectArn, ETag}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_manifest_descriptor: Option<serde_json::Value>,
    /// Extension: the job whose failed tasks this one runs again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<String>,
    /// Extension: the job's rate limit, in tasks per second for the whole job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<i64>,
    /// Extension: a dry run (checks every task, changes nothing).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

impl JobView {
    pub fn new(job: &Job, region: &str) -> JobView {
        let now = time::now_millis();
        let report_location = job.report_key.as_ref().and_then(|k| {
            let bucket = job.spec.report.bucket.as_deref().and_then(s3batch_core::arn::parse_bucket_arn)?;
            Some(format!("s3://{bucket}/{k}"))
        });
        JobView {
            job_id: job.id.clone(),
            confirmation_required: job.spec.confirmation_required,
            description: job.spec.description.clone(),
            job_arn: format!("arn:aws:s3:{region}:{}:job/{}", job.account_id, job.id),
            status: job.status,
            manifest: job.spec.manifest.clone(),
            operation: job.spec.operation.clone(),
            priority: job.priority,
            progress_summary: ProgressSummary {
                total_number_of_tasks: job.total_tasks,
                number_of_tasks_succeeded: job.succeeded,
                number_of_tasks_failed: job.failed,
                timers: Timers { elapsed_time_in_active_seconds: job.active_seconds(now) },
            },
            status_update_reason: job.status_update_reason.clone(),
            failure_reasons: job.failure_reasons.clone(),
            report: job.spec.report.clone(),
            creation_time: time::format_iso(job.created_at),
            termination_date: job.terminated_at.map(time::format_iso),
            role_arn: job.spec.role_arn.clone(),
            suspended_date: job.suspended_at.map(time::format_iso),
            suspended_cause: job.suspended_cause.clone(),
            manifest_generator: job.spec.manifest_generator.clone(),
            report_location,
            generated_manifest_descriptor: job.generated_manifest.as_deref().and_then(|d| serde_json::from_str(d).ok()),
            rerun_of: job.spec.rerun_of.clone(),
            rate_limit: job.rate_limit,
            dry_run: job.spec.dry_run,
        }
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

async fn create(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<CreateJobBody>, JsonRejection>,
) -> ApiResult<Json<CreateJobResult>> {
    let account = account(&st, &headers)?;
    let Json(body) = body?;
    let job = st.service.create(&account, body.client_request_token, body.spec).await?;
    Ok(Json(CreateJobResult { job_id: job.id }))
}

async fn list(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult<Json<ListJobsResult>> {
    let account = account(&st, &headers)?;
    let (mut statuses, mut token, mut max) = (Vec::new(), None, None);
    for (k, v) in q {
        match k.as_str() {
            "status" | "jobStatuses" => statuses.push(
                v.parse::<JobStatus>()
                    .map_err(|e| ApiError(ServiceError::new("InvalidRequestException", 400, e.to_string())))?,
            ),
            "nextToken" => token = Some(v),
            "maxResults" => {
                max = Some(v.parse::<i64>().map_err(|_| {
                    ApiError(ServiceError::new(
                        "InvalidRequestException",
                        400,
                        format!("maxResults '{v}' is not a number"),
                    ))
                })?)
            }
            other => {
                return Err(ApiError(ServiceError::new(
                    "InvalidRequestException",
                    400,
                    format!("unknown query parameter '{other}'"),
                )));
            }
        }
    }
    let (jobs, next) = st.service.list(&account, statuses, token.as_deref(), max).await?;
    Ok(Json(ListJobsResult { jobs: jobs.iter().map(|j| JobView::new(j, &st.region)).collect(), next_token: next }))
}

async fn describe(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Json<JobView>> {
    let account = account(&st, &headers)?;
    Ok(Json(JobView::new(&st.service.describe(&account, &id).await?, &st.region)))
}

async fn update_status(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<UpdateStatusBody>, JsonRejection>,
) -> ApiResult<Json<JobView>> {
    let account = account(&st, &headers)?;
    let Json(b) = body?;
    let job = st.service.update_status(&account, &id, &b.requested_job_status, b.status_update_reason).await?;
    Ok(Json(JobView::new(&job, &st.region)))
}

async fn update_priority(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<PriorityBody>, JsonRejection>,
) -> ApiResult<Json<JobView>> {
    let account = account(&st, &headers)?;
    let Json(b) = body?;
    Ok(Json(JobView::new(&st.service.update_priority(&account, &id, b.priority).await?, &st.region)))
}

/// Re-run a finished job's failed tasks as a new job (extension).
async fn rerun(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Json<JobView>> {
    let account = account(&st, &headers)?;
    Ok(Json(JobView::new(&st.service.rerun_failed(&account, &id).await?, &st.region)))
}

async fn get_tags(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Json<TagsBody>> {
    let account = account(&st, &headers)?;
    Ok(Json(TagsBody { tags: st.service.tags(&account, &id).await? }))
}

async fn put_tags(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<TagsBody>, JsonRejection>,
) -> ApiResult<StatusCode> {
    let account = account(&st, &headers)?;
    let Json(b) = body?;
    st.service.put_tags(&account, &id, &b.tags).await?;
    Ok(StatusCode::OK)
}

async fn delete_tags(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let account = account(&st, &headers)?;
    st.service.put_tags(&account, &id, &[]).await?;
    Ok(StatusCode::OK)
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
async fn workers(State(st): State<AppState>, headers: HeaderMap) -> ApiResult<Json<WorkersResult>> {
    account(&st, &headers)?;
    let now = time::now_millis();
    let workers = st.service.workers(now).await?;
    let workers = workers
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
        .collect();
    Ok(Json(WorkersResult { workers }))
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

async fn roles(State(st): State<AppState>, headers: HeaderMap) -> ApiResult<Json<RolesResult>> {
    let account = account(&st, &headers)?;
    let roles = st
        .service
        .roles(&account)
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
        .collect();
    Ok(Json(RolesResult { required: st.service.roles_required(), roles }))
}

/// `POST /api/v1/jobs/{id}/rate-limit`: tasks per second for the whole job, or `null` for none.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RateLimitBody {
    pub rate_limit: Option<i64>,
}

async fn update_rate_limit(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<RateLimitBody>, JsonRejection>,
) -> ApiResult<Json<JobView>> {
    let account = account(&st, &headers)?;
    let Json(b) = body?;
    Ok(Json(JobView::new(&st.service.update_rate_limit(&account, &id, b.rate_limit).await?, &st.region)))
}

/// `GET /api/v1/jobs/{id}/preview`.
async fn preview(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Json<Preview>> {
    let account = account(&st, &headers)?;
    Ok(Json(st.service.preview(&account, &id).await?))
}
