//! # s3batch-engine
//!
//! Takes jobs through their statuses and runs their tasks:
//!
//! - [`prepare`]: streams the manifest once, checks its ETag, validates every line, records a chunk every
//!   `chunk_size` lines;
//! - [`problem`]: why a manifest cannot be used (preparing, listing, inventory reports, the generated manifest);
//! - [`schedule`]: the scheduler tick: starts preparing, ranks jobs by priority and lets at most `max_active_jobs`
//!   run, pauses the ones that fall out, completes, fails (threshold, expired confirmation) and finishes jobs;
//! - [`execute`]: claims chunks under a lease, runs their tasks with bounded concurrency and retries, and commits
//!   each chunk's results and counters in one transaction;
//! - [`ops`]: one function per operation;
//! - [`report`]: the completion report in the AWS layout;
//! - [`service`]: what the API front ends call (create, describe, list, confirm, cancel, priority, tags);
//! - [`status_write`]: every status write, as `transition(status, event)` and then a compare-and-set in the store;
//! - [`events`]: delivers the job events the store records (creation, every status change) to the audit log and
//!   to signed webhooks, under the `events` singleton lease.
//! - [`control`]: per-job rate limit (token bucket, shared by a fleet), adaptive back-off on throttling, fairness;
//! - [`resume`]: whole-object reads (the manifest, inventory files) that go on after a broken connection;
//! - [`preview`]: the impact preview (tasks, bytes, requests, duration) of a prepared job;
//! - [`roles`]: the walls around a job: the buckets, operations and functions its role allows, checked wherever
//!   a job touches storage or a function.
//!
//! Everything a process does hangs off one [`CancellationToken`]; [`Engine::run`] returns once it has stopped
//! claiming, finished its in-flight tasks (or, past `shutdown_grace_ms`, abandoned them and given their chunks
//! back) and released its leases.
//!
//! Any number of engines may share one job store (a fleet: `s3batch worker` processes and `s3batch serve` on one
//! PostgreSQL database). Each registers itself in the store as a [`Worker`](s3batch_store::Worker) and beats
//! while it runs; chunks are claimed under leases, per-job duties (preparing, finishing) under the job's duty
//! lease, and the duties that span jobs (ranking and preemption, expiry, retention) under the one `scheduler`
//! singleton lease, taken over when its holder dies.

pub mod checksum;
pub mod control;
pub mod data_events;
pub mod duty;
pub mod error;
pub mod events;
pub mod execute;
pub mod fuzzing;
pub mod generate;
pub mod inventory;
pub mod lambda;
pub mod manifest_output;
pub mod ops;
pub mod prepare;
pub mod preview;
pub mod problem;
pub mod report;
pub mod resume;
pub mod retry;
pub mod roles;
pub mod schedule;
pub mod service;
pub mod status_write;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use s3batch_core::JobStatus;
use s3batch_storage::Router;
use s3batch_store::{CasOutcome, ChunkId, JobStore, Worker};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
pub use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

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
    /// Chunks a process starts requests from at once (enough to keep `concurrency` requests in flight). A chunk
    /// whose requests have all started no longer counts: the next is claimed and read while they run, so at most
    /// twice as many chunks are held. Default: 4.
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
    /// Most live (not finished) jobs one account may have; CreateJob beyond it is refused (S3 Control:
    /// TooManyRequestsException, 429; COS: SlowDown, 503). Default: 10000.
    pub max_live_jobs_per_account: u64,
    /// Where report files are assembled before upload. Default: the system temp dir.
    pub work_dir: Option<PathBuf>,
    /// Largest Parquet or ORC inventory data file copied to `work_dir` to be read (those formats are read from their
    /// end, so each file is spooled to disk first); a larger one fails the job. S3 Inventory splits a report into
    /// many files, each far smaller. Default: 64 GiB.
    pub max_spool_bytes: u64,
    /// How long a finishing job's report is retried when it cannot be written for a passing reason (throttling,
    /// 5xx, connection failures, a local disk error while assembling it) before the job fails with
    /// `ReportNotWritten`, in milliseconds. Default: 1800000 (30 minutes).
    pub report_retry_ms: i64,
    /// On SIGTERM / Ctrl-C, how long tasks in flight may take to finish, in milliseconds; the ones still running
    /// then are abandoned and their chunks given back, to run again on another worker. Default: 30000.
    pub shutdown_grace_ms: u64,
    /// `LambdaInvoke` targets: function ARNs (or names) mapped to HTTP endpoints (`[[engine.functions]]`).
    pub functions: Vec<lambda::FunctionConfig>,
    /// `S3ReplicateObject` destinations: source bucket → destination bucket (`[engine.replication]`). A task on a
    /// bucket without an entry fails.
    pub replication: BTreeMap<String, String>,
    /// Job events: the audit log and the webhooks (`[engine.events]`, `[[engine.events.webhooks]]`).
    pub events: events::EventsConfig,
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
            max_live_jobs_per_account: service::DEFAULT_MAX_LIVE_JOBS,
            work_dir: None,
            max_spool_bytes: 64 << 30,
            report_retry_ms: 30 * 60 * 1000,
            shutdown_grace_ms: 30_000,
            functions: Vec::new(),
            replication: BTreeMap::new(),
            events: events::EventsConfig::default(),
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
            ("max_live_jobs_per_account", i64::try_from(self.max_live_jobs_per_account).unwrap_or(i64::MAX)),
            ("max_spool_bytes", i64::try_from(self.max_spool_bytes).unwrap_or(i64::MAX)),
            ("report_retry_ms", self.report_retry_ms),
        ];
        for (name, v) in positive {
            if v <= 0 {
                return Err(format!("engine.{name} must be at least 1, got {v}"));
            }
        }
        if self.lease_ms < 3 * self.tick_ms as i64 {
            return Err(format!("engine.lease_ms ({}) must be at least 3 × tick_ms ({})", self.lease_ms, self.tick_ms));
        }
        self.events.validate()?;
        Ok(())
    }

    pub(crate) fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }

    /// How often chunk leases are renewed: a third of the lease.
    pub(crate) fn heartbeat_every(&self) -> Duration {
        Duration::from_millis((self.lease_ms / 3).max(1) as u64)
    }

    /// How often a worker signs its row: as often as its leases, and at least every 5 s so that `s3batch
    /// workers` shows fresh chunk counts.
    pub(crate) fn worker_beat_every(&self) -> Duration {
        self.heartbeat_every().min(Duration::from_secs(5))
    }
}

/// Chunks this process holds, with the token that fires when a chunk's lease is lost.
pub(crate) type Held = Arc<Mutex<HashMap<ChunkId, CancellationToken>>>;

/// The engine of one process: shared by the scheduler, the preparers and the executor.
#[derive(Debug)]
pub struct Engine {
    pub store: Arc<dyn JobStore>,
    /// The server's own routes; a job touches storage through [`Engine::router_for`].
    pub router: Arc<Router>,
    /// The configured roles: what each job may touch.
    pub roles: Arc<roles::Roles>,
    /// Where `LambdaInvoke` tasks go.
    pub functions: lambda::Functions,
    pub config: EngineConfig,
    /// This process's identity in leases.
    pub worker_id: String,
    /// What kind of process this is, as `s3batch workers` shows it (`worker`, `serve`, …).
    pub role: String,
    /// When this engine was made (its registration's start time).
    pub started_at: s3batch_core::Millis,
    /// Poked when something happened that the loops should look at now rather than at the next tick.
    pub wake: Arc<Notify>,
    /// The last status the scheduler saw for each live job; the executor stops starting tasks of jobs that are
    /// no longer Active or Pausing.
    statuses: RwLock<HashMap<String, JobStatus>>,
    /// The priority the scheduler last saw for each live job.
    priorities: RwLock<HashMap<String, i64>>,
    /// The chunks the executor holds.
    pub(crate) held: Held,
    /// What this process's event sinks delivered.
    pub event_stats: events::EventStats,
    /// The rate limit and adaptive window of each job running here.
    pub(crate) controls: control::Controls,
    /// This process's failed attempts at writing reports, by job.
    pub(crate) report_retries: report::Retries,
    /// Where per-task data events go (`[engine.events] data_events`), if anywhere.
    pub(crate) data_events: Option<data_events::DataEvents>,
}

impl Engine {
    pub fn new(store: Arc<dyn JobStore>, router: Arc<Router>, config: EngineConfig) -> Arc<Engine> {
        Self::with_role(store, router, config, "engine")
    }

    /// An engine that `s3batch workers` lists as `role`.
    pub fn with_role(store: Arc<dyn JobStore>, router: Arc<Router>, config: EngineConfig, role: &str) -> Arc<Engine> {
        Self::with_roles(store, Arc::new(roles::Roles::open(router)), config, role)
    }

    /// An engine whose jobs run under `roles` (their base router is the server's own routes).
    pub fn with_roles(
        store: Arc<dyn JobStore>,
        roles: Arc<roles::Roles>,
        config: EngineConfig,
        role: &str,
    ) -> Arc<Engine> {
        let router = roles.base().clone();
        let worker_id = format!("{}-{}", hostname(), &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let data_events = config.events.data_events.then(|| {
            let path = config.events.data_events_log.clone().unwrap_or_else(|| PathBuf::from("data-events.jsonl"));
            let region = config.events.region.as_deref().unwrap_or("us-east-1");
            match data_events::DataEvents::start(&path, config.events.data_events_buffer, region) {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot open the data events log: none written");
                    None
                }
            }
        });
        let data_events = data_events.flatten();
        Arc::new(Engine {
            store,
            router,
            roles,
            functions: lambda::Functions::new(config.functions.clone()),
            config,
            worker_id,
            role: role.into(),
            started_at: now(),
            wake: Arc::new(Notify::new()),
            statuses: RwLock::new(HashMap::new()),
            priorities: RwLock::new(HashMap::new()),
            held: Held::default(),
            event_stats: events::EventStats::default(),
            controls: control::Controls::default(),
            report_retries: report::Retries::default(),
            data_events,
        })
    }

    /// Run the scheduler and the executor until `shutdown` is cancelled, then drain: stop claiming, let in-flight
    /// tasks finish within `shutdown_grace_ms` (abandon the rest and give their chunks back), release every lease
    /// and leave the list of workers.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        self.register().await;
        let beats_stop = CancellationToken::new();
        // Dropping this future (aborting the task that runs it) stops them all where they are, as if the process
        // died: nothing is released, leases expire.
        let beats =
            AbortOnDropHandle::new(tokio::spawn(worker_beats(self.clone(), shutdown.clone(), beats_stop.clone())));
        let sched = AbortOnDropHandle::new(tokio::spawn(schedule::run(self.clone(), shutdown.clone())));
        let exec = AbortOnDropHandle::new(tokio::spawn(execute::run(self.clone(), shutdown.clone())));
        let events = AbortOnDropHandle::new(tokio::spawn(events::run(self.clone(), shutdown.clone())));
        let _ = tokio::join!(sched, exec, events);
        beats_stop.cancel();
        let _ = beats.await;
        if let Err(e) = self.store.deregister_worker(&self.worker_id).await {
            tracing::warn!(error = %e, "leaving the list of workers failed; it will show as lost");
        }
        tracing::info!(worker = %self.worker_id, "engine stopped");
    }

    /// The routes `job` touches storage through: its role's (checked), or the server's own for a job without
    /// walls (see [`roles`]).
    pub fn router_for(&self, job: &s3batch_store::Job) -> Arc<Router> {
        self.roles.router_for(&job.account_id, job.spec.named_role())
    }

    /// Chunks held right now.
    pub fn chunks_in_flight(&self) -> usize {
        self.held.lock().expect("held poisoned").len()
    }

    /// Enter (or re-enter) this engine in the store's list of workers. [`Engine::run`] does it first thing; a
    /// process may call it before, to be listed by the time it says it is ready. A failure is logged, not returned:
    /// the engine runs all the same, and its heartbeats try again.
    pub async fn register(&self) {
        let w = Worker {
            id: self.worker_id.clone(),
            host: hostname(),
            pid: i64::from(std::process::id()),
            role: self.role.clone(),
            started_at: self.started_at,
            heartbeat_at: now(),
            chunks_in_flight: self.chunks_in_flight() as i64,
            lease_ms: self.config.lease_ms,
            draining: false,
        };
        if let Err(e) = self.store.register_worker(&w).await {
            tracing::warn!(error = %e, "registering this worker failed; will retry");
        }
    }

    pub(crate) fn job_status(&self, id: &str) -> Option<JobStatus> {
        self.statuses.read().expect("status map poisoned").get(id).copied()
    }

    pub(crate) fn set_statuses(&self, map: HashMap<String, JobStatus>) {
        *self.statuses.write().expect("status map poisoned") = map;
    }

    /// This process's share of a job's rate limit (tasks per second) and its adaptive window (tasks in flight), if
    /// the job runs here: what `[engine]` throttling and `job rate-limit` come to in this process.
    pub fn job_control(&self, job_id: &str) -> Option<(Option<f64>, usize)> {
        let map = self.controls.lock().expect("controls poisoned");
        map.get(job_id).map(|c| (c.rate(), c.window()))
    }

    /// The jobs the scheduler last saw Active with the highest priority among them: the ones a worker shares
    /// itself fairly between. (Between priorities, the higher goes first: the store's claim order, which also
    /// sees a priority change at once.)
    pub(crate) fn active_jobs(&self) -> Vec<String> {
        let map = self.statuses.read().expect("status map poisoned");
        let prio = self.priorities.read().expect("priority map poisoned");
        let active: Vec<(&String, i64)> = map
            .iter()
            .filter(|(_, s)| **s == JobStatus::Active)
            .map(|(id, _)| (id, prio.get(id).copied().unwrap_or(0)))
            .collect();
        let top = active.iter().map(|(_, p)| *p).max().unwrap_or(0);
        active.into_iter().filter(|(_, p)| *p == top).map(|(id, _)| id.clone()).collect()
    }

    pub(crate) fn set_priorities(&self, map: HashMap<String, i64>) {
        *self.priorities.write().expect("priority map poisoned") = map;
    }
}

/// The worker's sign of life (every third of a lease, at most 5 s apart), with its chunk count; once `shutdown`
/// fires, at once and then on, as draining. Registers again if the row is gone (pruned while it was cut off).
async fn worker_beats(engine: Arc<Engine>, shutdown: CancellationToken, stop: CancellationToken) {
    let mut draining_sent = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(engine.config.worker_beat_every()) => {}
            _ = shutdown.cancelled(), if !draining_sent => {}
            _ = stop.cancelled() => return,
        }
        let draining = shutdown.is_cancelled();
        draining_sent |= draining;
        let held = engine.chunks_in_flight() as i64;
        match engine.store.worker_heartbeat(&engine.worker_id, held, draining, now()).await {
            Ok(CasOutcome::NotFound) if !draining => engine.register().await,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "worker heartbeat failed"),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "s3batch".into())
}

/// Now, in milliseconds since the epoch: the wall clock, or, once a test called [`clock::follow_tokio_time`],
/// tokio's clock (which a paused-time test advances at will).
pub fn now() -> s3batch_core::Millis {
    clock::now()
}

/// Where [`now`] reads the time. Production stays on the wall clock; a test may switch the whole process to
/// tokio's clock, so that `tokio::time::advance` and paused time move leases, timers and expiries too.
pub mod clock {
    use std::sync::OnceLock;

    use s3batch_core::Millis;

    /// Wall-clock milliseconds at the moment the switch was made, and tokio's instant then.
    static TOKIO_ANCHOR: OnceLock<(Millis, tokio::time::Instant)> = OnceLock::new();

    /// From now on (for the rest of the process) [`now`](crate::now) is the wall-clock time of this call plus the
    /// time tokio's clock has moved since: in a runtime with paused time, the simulated time. For tests only;
    /// nothing turns it off again. Calling it again changes nothing.
    pub fn follow_tokio_time() {
        TOKIO_ANCHOR.get_or_init(|| (s3batch_core::time::now_millis(), tokio::time::Instant::now()));
    }

    pub(crate) fn now() -> Millis {
        let Some((wall, at)) = TOKIO_ANCHOR.get() else { return s3batch_core::time::now_millis() };
        // Each runtime with paused time has its own clock, started at the (real) instant it was built, which may be
        // just before the anchor: count both ways.
        let t = tokio::time::Instant::now();
        match t.checked_duration_since(*at) {
            Some(ahead) => wall + ahead.as_millis() as Millis,
            None => wall - at.duration_since(t).as_millis() as Millis,
        }
    }
}
