//! The process's metrics recorder: installed once, before anything records, so the handles the storage and the
//! engine make up front are live. `/metrics` renders it (on `serve`, and on a worker's `--metrics-listen`).

use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow};
use s3batch_api::recorder::MetricsRegistry;

static REGISTRY: OnceLock<MetricsRegistry> = OnceLock::new();

/// Latency buckets in seconds, for every `*_duration_seconds` histogram: 1 ms to 1 min.
const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0];

/// Whether metrics are recorded: yes unless `S3BATCH_METRICS=off` (for measuring what they cost: with it, every
/// metric call is the facade's no-op and storage calls are not wrapped).
pub fn enabled() -> bool {
    std::env::var("S3BATCH_METRICS").map_or(true, |v| v != "off")
}

/// The recorder, installed on first use; every later call returns the same registry. With metrics off, the
/// registry is not installed as the global recorder, so nothing records into it and `/metrics` shows no metric.
pub fn install() -> Result<MetricsRegistry> {
    if let Some(r) = REGISTRY.get() {
        return Ok(r.clone());
    }
    let registry = MetricsRegistry::new(&BUCKETS).map_err(|e| anyhow!(e))?;
    if !enabled() {
        return Ok(REGISTRY.get_or_init(|| registry).clone());
    }
    metrics::set_global_recorder(registry.clone()).context("installing the metrics recorder")?;
    describe();
    metrics::gauge!("s3batch_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(REGISTRY.get_or_init(|| registry).clone())
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!("s3batch_build_info", "The running s3batch version (always 1).");
    describe_gauge!("s3batch_jobs", "Jobs by status, every account's, as this process's job store sees them.");
    describe_counter!("s3batch_tasks_total", "Tasks finished, by operation and outcome (succeeded, failed).");
    describe_counter!("s3batch_task_retries_total", "Task attempts retried, by operation and reason.");
    describe_counter!("s3batch_storage_requests_total", "Storage calls, by backend, S3 request and HTTP status.");
    describe_histogram!(
        "s3batch_storage_request_duration_seconds",
        Unit::Seconds,
        "Storage call time, by backend and S3 request."
    );
    describe_counter!("s3batch_throttled_total", "Storage answers that asked to slow down, by backend.");
    describe_gauge!("s3batch_job_concurrency", "Requests in flight the adaptive limit allows, per running job.");
    describe_gauge!("s3batch_chunks_in_flight", "Chunks this process holds leases on.");
    describe_counter!("s3batch_chunk_lease_lost_total", "Chunks whose lease this process lost before committing.");
    describe_histogram!(
        "s3batch_chunk_commit_duration_seconds",
        Unit::Seconds,
        "Time to commit a chunk's counters and report rows."
    );
    describe_gauge!("s3batch_events_pending", "Job events recorded but not yet delivered, per sink.");
    describe_counter!("s3batch_events_delivered_total", "Job events delivered, per sink and outcome.");
    describe_counter!("s3batch_data_events_written_total", "Per-task data events written (fsync'd).");
    describe_counter!("s3batch_data_events_dropped_total", "Per-task data events dropped: the buffer was full.");
    describe_counter!("s3batch_api_requests_total", "API calls, by dialect, operation and answer code.");
    describe_histogram!(
        "s3batch_api_request_duration_seconds",
        Unit::Seconds,
        "API call time, by dialect and operation."
    );
}
