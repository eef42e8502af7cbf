//! # s3batch-api
//!
//! The HTTP front ends over the [`JobService`]:
//!
//! - [`json`]: s3batch's own JSON API under `/api/v1` (the CLI and the console use it). Its bodies mirror the
//!   S3 Control shapes in JSON (`JobId`, `Status`, `ProgressSummary`, …), so what a user knows from
//!   `aws s3control` reads the same here;
//! - [`s3control`]: the S3 Control job API on the wire (`/v20180820/jobs…`, rest-xml, SigV4), so the `aws` CLI,
//!   boto3 and the AWS SDKs work unmodified; [`xml`] and [`sigv4`] are its parser/renderer and verifier;
//! - [`cos`]: the Tencent COS dialect of the same job API (`/jobs…`, `x-cos-appid`, COS names, formats and `qcs::`
//!   ARNs, `<Error>` bodies), so the COS SDKs' clients work; [`qsign`] is its signature verifier;
//! - [`auth`]: who is calling, and which account their jobs belong to; [`limit`]: per-account request rates.
//!
//! - [`console`]: the web console at `/console`, for people (sessions, CSRF tokens, server-rendered pages);
//! - [`crosssite`]: the guard in front of every route that refuses cross-site state changes from browsers and,
//!   on an open server, requests under a non-loopback `Host`.
//!
//! - [`metrics`]: `/metrics` (Prometheus) and `/readyz`; [`pipeline`]: the request pipeline every API front end
//!   runs.
//!
//! [`router`] puts them together; `/healthz` answers `ok` while the process runs.

pub mod auth;
pub mod console;
pub mod cos;
pub mod crosssite;
pub mod fuzzing;
pub mod json;
pub mod limit;
pub mod metrics;
pub mod pipeline;
pub mod qsign;
pub mod recorder;
pub mod s3control;
pub mod signature;
pub mod sigv4;
pub mod view;
pub mod xml;

use std::sync::Arc;

use axum::Router;
use s3batch_engine::service::JobService;

pub use auth::{Account, Accounts};
pub use limit::RateLimiter;

/// What every handler needs.
#[derive(Debug, Clone)]
pub struct AppState {
    pub service: JobService,
    pub accounts: Arc<Accounts>,
    /// Region used in job ARNs (`arn:aws:s3:<region>:<account>:job/<id>`).
    pub region: String,
    /// Requests per second each account may make (TooManyRequestsException beyond it).
    pub limiter: Arc<RateLimiter>,
    /// The console's sessions.
    pub sessions: Arc<console::session::Sessions>,
    /// Console sign-in attempts per access key id: a secret cannot be guessed online.
    pub sign_ins: Arc<RateLimiter>,
    /// Host names an open server answers to besides loopback ones (`server.allowed_hosts`).
    pub allowed_hosts: Vec<String>,
    /// The process's metrics, rendered at `/metrics` (none: `/metrics` answers 404).
    pub metrics: Option<recorder::MetricsRegistry>,
    /// The worker id of the engine running in this process, if one does: `/readyz` checks its heartbeat.
    pub engine_worker: Option<String>,
}

impl AppState {
    /// State with no request rate limit.
    pub fn new(service: JobService, accounts: Arc<Accounts>, region: impl Into<String>) -> Self {
        AppState {
            service,
            accounts,
            region: region.into(),
            limiter: Arc::new(RateLimiter::unlimited()),
            sessions: Arc::default(),
            sign_ins: Arc::new(RateLimiter::new(console::SIGN_INS_PER_SECOND, console::SIGN_IN_BURST)),
            allowed_hosts: Vec::new(),
            metrics: None,
            engine_worker: None,
        }
    }

    /// The role ARNs the console offers an account in its create form.
    pub fn role_arns(&self, account: &str) -> Vec<String> {
        self.service.roles(account).iter().map(|r| r.arn.clone()).collect()
    }
}

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// All routes.
pub fn router(state: AppState) -> Router {
    let guard = Arc::new(crosssite::SiteGuard::new(state.accounts.is_open(), &state.allowed_hosts));
    Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .merge(metrics::routes())
        .merge(json::routes())
        .merge(s3control::routes())
        .merge(cos::routes())
        .merge(console::routes())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(guard, crosssite::guard))
        .with_state(state)
}
