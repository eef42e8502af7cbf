//! # s3batch-engine
//!
//! Takes jobs through their statuses and runs their tasks:
//!
//! - [`prepare`]: streams the manifest once, checks its ETag, validates every line, records a chunk every
//!   `chunk_size` lines;
//! - [`schedule`]: the scheduler tick: starts preparing, ranks jobs by priority and lets at most `max_active_jobs`
//!   run, pauses the ones that fall out, completes, fails (threshold, expired confirmation) and finishes jobs;
//! - [`execute`]: claims chunks under a lease, runs their tasks with bounded concurrency and retries, and commits
//!   each chunk's results and counters in one transaction;
//! - [`ops`]: one function per operation;
//! - [`report`]: the completion report in the AWS layout;
//! - [`service`]: what the API front ends call (create, describe, list, confirm, cancel, priority, tags).
//!
//! Everything a process does hangs off one [`CancellationToken`]; [`Engine::run`] returns once it has stopped
//! claiming, finished its in-flight tasks and released its leases.

pub mod execute;
pub mod ops;
pub mod prepare;
pub mod report;
pub mod retry;
pub mod schedule;
pub mod service;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use s3batch_core::JobStatus;
use s3batch_storage::Router;
use s3batch_store::JobStore;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
pub use tokio_util::sync::CancellationToken;

/// `[engine]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Jobs running at once; the rest wait in Ready or Paused. Default: 4.
    pub max_active_jobs: usize,
    /// Storage requests in flight per process. Default: 64.
    pub concurrency: usize,
    /// Manifest lines per chunk. Default: 1000.
    pub chunk_size: usize,
    /// Chunks a process works on at once (enough to keep `concurrency` requests in flight). Default: 4.
    pub chunks_in_flight: usize,
    /// How long a chunk lease lasts without a heartbeat, in milliseconds. Default: 30000.
    pub lease_ms: i64,
    /// Attempts per task for transient errors (throttling, 5xx, resets). Default: 5.
    pub max_attempts: u32,
    /// First retry delay in milliseconds; doubles each attempt, with full jitter. Default: 100.
    pub backoff_base_ms: u64,
    /// Longest retry delay in milliseconds. Default: 5000.
    pub backoff_max_ms: u64,
    /// Scheduler tick in milliseconds. Default: 200.
    pub tick_ms: u64,
    /// A job left Suspended (unconfirmed) this long fails. Default: 30 days.
    pub suspended_expiry_days: i64,
    /// Finished jobs are kept this long, then removed. Default: 90 days.
    pub retention_days: i64,
    /// Where report files are assembled before upload. Default: the system temp dir.
    pub work_dir: Option<PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_active_jobs: 4,
            concurrency: 64,
            chunk_size: 1000,
            chunks_in_flight: 4,
            lease_ms: 30_000,
            max_attempts: 5,
            backoff_base_ms: 100,
            backoff_max_ms: 5_000,
            tick_ms: 200,
            suspended_expiry_days: 30,
            retention_days: 90,
            work_dir: None,
        }
    }
}

impl EngineConfig {
    /// Settings that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("max_active_jobs", self.max_active_jobs as i64),
            ("concurrency", self.concurrency as i64),
            ("chunk_size", self.chunk_size as i64),
            ("chunks_in_flight", self.chunks_in_flight as i64),
            ("lease_ms", self.lease_ms),
            ("max_attempts", i64::from(self.max_attempts)),
            ("tick_ms", self.tick_ms as i64),
            ("suspended_expiry_days", self.suspended_expiry_days),
            ("retention_days", self.retention_days),
        ];
        for (name, v) in positive {
            if v <= 0 {
                return Err(format!("engine.{name} must be at least 1, got {v}"));
            }
        }
        if self.lease_ms < 3 * self.tick_ms as i64 {
            return Err(format!("engine.lease_ms ({}) must be at least 3 × tick_ms ({})", self.lease_ms, self.tick_ms));
        }
        Ok(())
    }

    pub(crate) fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }
}

/// The engine of one process: shared by the scheduler, the preparers and the executor.
#[derive(Debug)]
pub struct Engine {
    pub store: Arc<dyn JobStore>,
    pub router: Arc<Router>,
    pub config: EngineConfig,
    /// This process's identity in leases.
    pub worker_id: String,
    /// Poked when something happened that the loops should look at now rather than at the next tick.
    pub wake: Arc<Notify>,
    /// The last status the scheduler saw for each live job; the executor stops starting tasks of jobs that are
    /// no longer Active or Pausing.
    statuses: RwLock<HashMap<String, JobStatus>>,
}

impl Engine {
    pub fn new(store: Arc<dyn JobStore>, router: Arc<Router>, config: EngineConfig) -> Arc<Engine> {
        let worker_id = format!("{}-{}", hostname(), &uuid::Uuid::new_v4().simple().to_string()[..12]);
        Arc::new(Engine {
            store,
            router,
            config,
            worker_id,
            wake: Arc::new(Notify::new()),
            statuses: RwLock::new(HashMap::new()),
        })
    }

    /// Run the scheduler and the executor until `shutdown` is cancelled, then drain.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let sched = tokio::spawn(schedule::run(self.clone(), shutdown.clone()));
        let exec = tokio::spawn(execute::run(self.clone(), shutdown.clone()));
        let _ = tokio::join!(sched, exec);
    }

    pub(crate) fn job_status(&self, id: &str) -> Option<JobStatus> {
        self.statuses.read().expect("status map poisoned").get(id).copied()
    }

    pub(crate) fn set_statuses(&self, map: HashMap<String, JobStatus>) {
        *self.statuses.write().expect("status map poisoned") = map;
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "s3batch".into())
}

/// Wall-clock now, in milliseconds.
pub fn now() -> s3batch_core::Millis {
    s3batch_core::time::now_millis()
}
