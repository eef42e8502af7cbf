//! # s3batch-api
//!
//! The HTTP front ends over the [`JobService`]:
//!
//! - [`json`]: s3batch's own JSON API under `/api/v1` (the CLI and the console use it). Its bodies mirror the
//!   S3 Control shapes in JSON (`JobId`, `Status`, `ProgressSummary`, …), so what a user knows from
//!   `aws s3control` reads the same here;
//! - [`auth`]: who is calling, and which account their jobs belong to.
//!
//! [`router`] puts them together; `/healthz` answers `ok`.

pub mod auth;
pub mod json;

use std::sync::Arc;

use axum::Router;
use s3batch_engine::service::JobService;

pub use auth::{Account, Accounts};

/// What every handler needs.
#[derive(Debug, Clone)]
pub struct AppState {
    pub service: JobService,
    pub accounts: Arc<Accounts>,
    /// Region used in job ARNs (`arn:aws:s3:<region>:<account>:job/<id>`).
    pub region: String,
}

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// All routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .merge(json::routes())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
