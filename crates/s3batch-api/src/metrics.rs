//! `GET /metrics` (the OpenMetrics text format, which Prometheus scrapes, rendered by [`crate::recorder`] from what
//! every part of the process recorded through the `metrics` facade) and `GET /readyz`.
//!
//! `/metrics` refreshes the scrape-time gauge `s3batch_jobs{status}` (every account's jobs by status, as this
//! process's store sees them) before it renders. It shows counts only: no account id, key or bucket name.
//! `/readyz` answers 200 when the job store answers (its migrations ran when it was opened) and, in a process
//! that runs an engine, the engine's heartbeat is recent; 503 with the reason otherwise.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use s3batch_core::{JobStatus, time};
use s3batch_store::WorkerState;

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics)).route("/readyz", get(readyz))
}

async fn metrics(State(st): State<AppState>) -> Response {
    let Some(registry) = &st.metrics else {
        return (StatusCode::NOT_FOUND, "metrics are off in this process\n").into_response();
    };
    match st.service.store().count_by_status().await {
        Ok(counts) => {
            for s in JobStatus::ALL {
                let n = counts.iter().find(|(c, _)| *c == s).map_or(0, |(_, n)| *n);
                metrics::gauge!("s3batch_jobs", "status" => s.as_str()).set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "counting jobs for /metrics failed"),
    }
    ([(header::CONTENT_TYPE, crate::recorder::CONTENT_TYPE)], registry.render()).into_response()
}

async fn readyz(State(st): State<AppState>) -> Response {
    let unready = |why: String| (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")).into_response();
    if let Err(e) = st.service.store().count_by_status().await {
        return unready(format!("the job store does not answer: {e}"));
    }
    if let Some(id) = &st.engine_worker {
        let now = time::now_millis();
        match st.service.workers(now).await {
            Ok(workers) => match workers.iter().find(|w| &w.worker.id == id) {
                Some(w) if w.state == WorkerState::Running => {}
                Some(w) => return unready(format!("the engine is {}", w.state.as_str())),
                None => return unready("the engine has not registered yet".into()),
            },
            Err(e) => return unready(format!("reading the workers failed: {e}")),
        }
    }
    (StatusCode::OK, "ready\n").into_response()
}
