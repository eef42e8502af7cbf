//! The scheduler tick: everything that moves a job between statuses without a user asking.
//!
//! - New / Preparing (lease free or expired) → prepare it; a ManifestGenerator job whose listing stopped before it
//!   ended (it runs while it lists) → resume the listing;
//! - Suspended longer than `suspended_expiry_days` → Failing;
//! - Active with ≥ 1,000 tasks run and > 50 % failed → Failing;
//! - Active with every chunk done → Completing;
//! - rank Ready / Active / Pausing / Paused by priority then age: the top `max_active_jobs` run, the others pause;
//! - Pausing with nothing in flight → Paused;
//! - Completing / Failing / Cancelling with nothing in flight → write the report → Complete / Failed / Cancelled;
//! - finished jobs older than `retention_days` are removed; lost workers are forgotten after an hour.
//!
//! Every write is a compare-and-set, so several processes ticking at once (a fleet) cannot double-apply a change;
//! long duties (preparing, reports) run under the job's duty lease, renewed while they run, so exactly one process
//! does each. What spans jobs — ranking (activation and preemption), expiring unconfirmed jobs, the sweeps — is done
//! only by the holder of the [`SCHEDULER_LEASE`] singleton: processes that each ranked their own snapshot of the jobs
//! would together run more than `max_active_jobs` (each activating a different job), or fight over jobs if their
//! settings differed. The holder renews it every tick; if it dies, another process takes it over once it expires
//! (one lease period), and a graceful exit gives it back at once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use s3batch_core::status::{PREEMPTED_CAUSE, USER_PAUSE_CAUSE};
use s3batch_core::{Event, JobStatus};
use s3batch_store::{JobState, StatusChange, StoreError};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{Engine, duty, now, prepare, report, status_write};

/// The singleton lease held by the one process of a fleet that ranks jobs and sweeps.
pub const SCHEDULER_LEASE: &str = "scheduler";
/// Lost workers are forgotten once their last heartbeat is this old (or ten of their lease periods, if longer).
const FORGET_LOST_WORKERS_MS: i64 = 3600 * 1000;

/// The failure code of a job whose completion report could not be written.
pub const REPORT_NOT_WRITTEN: &str = "ReportNotWritten";

/// Tasks that must have run before the failure threshold applies.
pub const THRESHOLD_MIN_TASKS: i64 = 1000;
/// Most jobs prepared or finished at once by one process.
const MAX_DUTIES: usize = 4;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// Jobs this process is preparing or finishing.
#[derive(Default)]
struct Duties {
    running: HashSet<String>,
    tasks: JoinSet<String>,
}

/// How often a failure that repeats on every tick (the database is down, its disk is full) is logged again.
const REPEAT_LOG_MS: i64 = 60_000;

/// One kind of failure the scheduler meets on every tick while it lasts: logged when it starts, then at most once
/// every [`REPEAT_LOG_MS`] with how often it happened, and once when it ends — not once a tick.
struct Failing {
    what: &'static str,
    since_logged: u64,
    last_logged: Option<i64>,
}

impl Failing {
    fn new(what: &'static str) -> Self {
        Failing { what, since_logged: 0, last_logged: None }
    }

    /// Note a failure at `at` (ms); true when it was logged.
    fn failed(&mut self, error: &dyn std::fmt::Display, at: i64) -> bool {
        match self.last_logged {
            None => {
                tracing::warn!(error = %error, "{} failed", self.what);
                self.last_logged = Some(at);
                true
            }
            Some(t) if at - t >= REPEAT_LOG_MS => {
                tracing::warn!(error = %error, repeats = self.since_logged + 1, "{} still failing", self.what);
                self.last_logged = Some(at);
                self.since_logged = 0;
                true
            }
            Some(_) => {
                self.since_logged += 1;
                false
            }
        }
    }

    /// Note a success; true when it ended a failure (and that was logged).
    fn succeeded(&mut self) -> bool {
        self.since_logged = 0;
        if self.last_logged.take().is_some() {
            tracing::info!("{} works again", self.what);
            return true;
        }
        false
    }
}

/// Tick until `shutdown`.
pub async fn run(engine: Arc<Engine>, shutdown: CancellationToken) {
    let mut duties = Duties::default();
    let mut last_sweep = 0;
    let mut leader = false;
    let mut lease_failing = Failing::new("renewing the scheduler lease");
    let mut tick_failing = Failing::new("the scheduler tick");
    loop {
        while let Some(r) = duties.tasks.try_join_next() {
            if let Ok(id) = r {
                duties.running.remove(&id);
            }
        }
        let was_leader = leader;
        leader =
            match engine.store.claim_singleton(SCHEDULER_LEASE, &engine.worker_id, now(), engine.config.lease_ms).await
            {
                Ok(outcome) => {
                    lease_failing.succeeded();
                    outcome.is_applied()
                }
                Err(e) => {
                    lease_failing.failed(&e, now());
                    false
                }
            };
        if leader != was_leader {
            tracing::info!(worker = %engine.worker_id, leader, "scheduler lease {}", if leader { "taken" } else { "lost" });
        }
        match tick(&engine, &mut duties, leader).await {
            Ok(()) => {
                tick_failing.succeeded();
            }
            Err(e) => {
                tick_failing.failed(&e, now());
            }
        }
        if leader && now() - last_sweep > 60_000 {
            last_sweep = now();
            if let Err(e) = sweep(&engine).await {
                tracing::warn!(error = %e, "retention sweep failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(engine.config.tick()) => {}
            _ = engine.wake.notified() => {}
            _ = shutdown.cancelled() => break,
        }
    }
    // Duties in progress hold a lease; stopping them lets another process (or the next start) take over at once.
    duties.tasks.abort_all();
    while duties.tasks.join_next().await.is_some() {}
    for id in duties.running {
        let _ = engine.store.release_duty(&id, &engine.worker_id).await;
    }
    if leader {
        let _ = engine.store.release_singleton(SCHEDULER_LEASE, &engine.worker_id).await;
    }
}

/// Move job `id`, in status `from` when the tick read it, along `event`. False if the job moved meanwhile (or the
/// event is illegal there).
async fn apply(
    engine: &Engine,
    id: &str,
    from: JobStatus,
    event: Event,
    change: StatusChange,
) -> Result<bool, StoreError> {
    let applied = status_write::apply(&*engine.store, id, from, event, &change).await?.is_applied();
    if applied {
        engine.wake.notify_waiters();
    }
    Ok(applied)
}

/// One look at every live job (its state only: no spec is read). `leader`: this process holds the scheduler lease
/// (ranks, expires confirmations).
async fn tick(engine: &Arc<Engine>, duties: &mut Duties, leader: bool) -> Result<(), StoreError> {
    let live: Vec<JobStatus> = JobStatus::ALL.into_iter().filter(|s| !s.is_terminal()).collect();
    let jobs = engine.store.job_states(&live).await?;
    engine.set_statuses(jobs.iter().map(|j| (j.id.clone(), j.status)).collect::<HashMap<_, _>>());
    engine.set_priorities(jobs.iter().map(|j| (j.id.clone(), j.priority)).collect::<HashMap<_, _>>());
    let t = now();
    let cfg = &engine.config;

    for job in &jobs {
        if still_listing(job) {
            // A ManifestGenerator job runs while its listing goes on; if the lister stopped, take it over.
            start_preparing(engine, duties, job).await?;
        }
        match job.status {
            JobStatus::New | JobStatus::Preparing => start_preparing(engine, duties, job).await?,
            JobStatus::Suspended
                if leader && job.suspended_at.is_some_and(|s| t - s > cfg.suspended_expiry_days * DAY_MS) =>
            {
                let reason = format!("the job was not confirmed within {} days", cfg.suspended_expiry_days);
                let change = StatusChange::default().failure("ConfirmationExpired", reason);
                apply(engine, &job.id, job.status, Event::Fail, change).await?;
            }
            JobStatus::Active => {
                let run = job.succeeded + job.failed;
                if run >= THRESHOLD_MIN_TASKS && job.failed * 2 > run {
                    let reason = format!(
                        "{} of {run} tasks failed: more than 50% of at least {THRESHOLD_MIN_TASKS} tasks run",
                        job.failed
                    );
                    let change = StatusChange::default().failure("TaskFailureThresholdExceeded", reason);
                    apply(engine, &job.id, job.status, Event::Fail, change).await?;
                } else if run >= job.total_tasks.unwrap_or(i64::MAX) {
                    let c = engine.store.chunk_counts(&job.id, t).await?;
                    if c.pending == 0 && c.leased == 0 && c.expired == 0 {
                        apply(engine, &job.id, job.status, Event::TasksDone, StatusChange::default()).await?;
                    }
                }
            }
            JobStatus::Pausing => drain(engine, job, t).await?,
            JobStatus::Completing | JobStatus::Failing | JobStatus::Cancelling => {
                start_finishing(engine, duties, job).await?;
            }
            _ => {}
        }
    }
    if leader { rank(engine, &jobs).await } else { Ok(()) }
}

/// A ManifestGenerator job that left Preparing before its listing ended (its total is still unknown).
fn still_listing(job: &JobState) -> bool {
    job.total_tasks.is_none()
        && job.generated
        && matches!(
            job.status,
            JobStatus::Suspended | JobStatus::Ready | JobStatus::Active | JobStatus::Pausing | JobStatus::Paused
        )
}

/// A pausing job with no chunk in flight is Paused.
async fn drain(engine: &Engine, job: &JobState, t: i64) -> Result<(), StoreError> {
    if engine.store.chunk_counts(&job.id, t).await?.leased == 0 {
        let cause = if job.user_paused { USER_PAUSE_CAUSE } else { PREEMPTED_CAUSE };
        apply(engine, &job.id, job.status, Event::Drained, StatusChange::default().cause(cause)).await?;
    }
    Ok(())
}

/// The top `max_active_jobs` of Ready/Active/Pausing/Paused (priority, then age) run; Active jobs below pause.
async fn rank(engine: &Engine, jobs: &[JobState]) -> Result<(), StoreError> {
    let n = engine.config.max_active_jobs;
    // `jobs_in` orders by priority desc, then creation.
    // Jobs a user paused take no part, but one still draining holds its slot until it is Paused.
    let candidates: Vec<&JobState> = jobs
        .iter()
        .filter(|j| matches!(j.status, JobStatus::Ready | JobStatus::Active | JobStatus::Pausing | JobStatus::Paused))
        .filter(|j| !j.user_paused)
        .collect();
    let top: HashSet<&str> = candidates.iter().take(n).map(|j| j.id.as_str()).collect();
    let mut slots_used = jobs.iter().filter(|j| j.user_paused && j.status == JobStatus::Pausing).count();
    for j in &candidates {
        match j.status {
            JobStatus::Active if !top.contains(j.id.as_str()) => {
                apply(engine, &j.id, j.status, Event::Pause, StatusChange::default()).await?;
                slots_used += 1; // draining still occupies its slot
            }
            JobStatus::Active | JobStatus::Pausing => slots_used += 1,
            _ => {}
        }
    }
    for j in candidates {
        if slots_used >= n {
            break;
        }
        if matches!(j.status, JobStatus::Ready | JobStatus::Paused)
            && top.contains(j.id.as_str())
            && apply(engine, &j.id, j.status, Event::Activate, StatusChange::default()).await?
        {
            slots_used += 1;
        }
    }
    Ok(())
}

async fn start_preparing(engine: &Arc<Engine>, duties: &mut Duties, state: &JobState) -> Result<(), StoreError> {
    if duties.running.contains(&state.id) || duties.running.len() >= MAX_DUTIES {
        return Ok(());
    }
    if !engine.store.claim_duty(&state.id, &engine.worker_id, now(), engine.config.lease_ms).await?.is_applied() {
        return Ok(());
    }
    // Preparing needs the whole job (its spec): read it now, under the duty lease.
    let mut job = match engine.store.get_job(None, &state.id).await? {
        Some(job) if !job.status.is_terminal() => job,
        _ => {
            engine.store.release_duty(&state.id, &engine.worker_id).await?;
            return Ok(());
        }
    };
    if job.status == JobStatus::New {
        if !apply(engine, &job.id, job.status, Event::Start, StatusChange::default()).await? {
            engine.store.release_duty(&job.id, &engine.worker_id).await?;
            return Ok(());
        }
        job.status = JobStatus::Preparing;
    } else {
        tracing::info!(job = %job.id, "preparing again: the previous preparer stopped");
    }
    duties.running.insert(job.id.clone());
    let engine = engine.clone();
    duties.tasks.spawn(async move {
        if let Err(e) = prepare::prepare(&engine, &job).await {
            tracing::warn!(job = %job.id, error = %e, "preparing failed; will try again");
        }
        let _ = engine.store.release_duty(&job.id, &engine.worker_id).await;
        engine.wake.notify_waiters();
        job.id
    });
    Ok(())
}

async fn start_finishing(engine: &Arc<Engine>, duties: &mut Duties, job: &JobState) -> Result<(), StoreError> {
    if duties.running.contains(&job.id) || duties.running.len() >= MAX_DUTIES {
        return Ok(());
    }
    if !engine.report_retries.due(&job.id, now()) {
        return Ok(()); // the last attempt at its report failed a moment ago
    }
    if engine.store.chunk_counts(&job.id, now()).await?.leased > 0 {
        return Ok(()); // tasks still in flight
    }
    let claimed_at = now();
    if !engine.store.claim_duty(&job.id, &engine.worker_id, claimed_at, engine.config.lease_ms).await?.is_applied() {
        return Ok(());
    }
    duties.running.insert(job.id.clone());
    let engine = engine.clone();
    let id = job.id.clone();
    duties.tasks.spawn(async move {
        // The report of a large job (or to a slow store) can take longer than the lease: renew it meanwhile, and
        // stop if it is lost, so that no two processes write the report and finish the job at once.
        match duty::hold(&engine, &id, claimed_at, finish(&engine, &id)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(job = %id, error = %e, "finishing failed; will try again"),
            Err(lost) => tracing::warn!(job = %id, reason = %lost, "finishing stopped"),
        }
        let _ = engine.store.release_duty(&id, &engine.worker_id).await;
        engine.wake.notify_waiters();
        id
    });
    Ok(())
}

/// Write the report (if enabled and a task ran), then leave the transitional status.
async fn finish(engine: &Arc<Engine>, id: &str) -> Result<(), StoreError> {
    // No chunk may commit from here on: a worker that stalled past its lease would otherwise add results (and
    // counts) after the report was read. Completing jobs have no unfinished chunk, so this only bites when
    // cancelling or failing.
    let fenced = engine.store.fence_chunks(id).await?;
    if fenced > 0 {
        tracing::info!(job = %id, fenced, "unfinished chunks fenced");
    }
    // Counters may have moved since the tick read them: read the job (spec and all) under the duty lease.
    let Some(job) = engine.store.get_job(None, id).await? else { return Ok(()) };
    let mut change = StatusChange::default();
    // A job that failed because its report could not be written (Completing → Failing) is not tried again.
    let given_up = job.failure_reasons.iter().any(|r| r.failure_code == REPORT_NOT_WRITTEN);
    if job.spec.report.enabled && job.succeeded + job.failed > 0 && !given_up {
        match report::write(engine, &job).await {
            Ok(key) => {
                engine.report_retries.forget(&job.id);
                engine.store.set_report_key(&job.id, &key).await?;
            }
            Err(report::ReportError::Store(e)) => return Err(e),
            Err(e) => {
                let retries = &engine.report_retries;
                let Some(reason) = retries.failed(&job.id, &e, now(), engine.config.report_retry_ms) else {
                    tracing::warn!(job = %job.id, error = %e, "writing the report failed; will retry");
                    return Ok(());
                };
                tracing::warn!(job = %job.id, %reason, "giving up on the report");
                // A job that would have completed fails (Failing, then Failed at once: see `given_up`): its report,
                // which is what the user asked for, is missing. One that was already failing or cancelling ends as
                // it would have, with the reason on record.
                if job.status == JobStatus::Completing {
                    let change = StatusChange::default().failure(REPORT_NOT_WRITTEN, reason);
                    apply(engine, &job.id, job.status, Event::Fail, change).await?;
                    return Ok(());
                }
                change = change.failure(REPORT_NOT_WRITTEN, reason);
            }
        }
    }
    apply(engine, &job.id, job.status, Event::Finished, change).await?;
    Ok(())
}

/// Remove finished jobs past retention, and forget workers lost long ago.
async fn sweep(engine: &Engine) -> Result<(), StoreError> {
    let forget = FORGET_LOST_WORKERS_MS.max(10 * engine.config.lease_ms);
    let pruned = engine.store.prune_workers(now() - forget).await?;
    if pruned > 0 {
        tracing::info!(pruned, "lost workers forgotten");
    }
    let cutoff = now() - engine.config.retention_days * DAY_MS;
    for job in engine.store.job_states(&[JobStatus::Complete, JobStatus::Failed, JobStatus::Cancelled]).await? {
        if job.terminated_at.is_some_and(|t| t < cutoff) {
            tracing::info!(job = %job.id, "removed after the retention period");
            engine.store.delete_job(&job.id).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod failing_tests {
    use super::{Failing, REPEAT_LOG_MS};

    #[test]
    fn a_failure_on_every_tick_is_logged_when_it_starts_then_once_a_minute_then_when_it_ends() {
        let mut f = Failing::new("renewing the scheduler lease");
        let e = "database or disk is full";
        // One tick a second for three minutes.
        let logged: Vec<i64> = (0..180).map(|s| s * 1000).filter(|&at| f.failed(&e, at)).collect();
        assert_eq!(logged, vec![0, REPEAT_LOG_MS, 2 * REPEAT_LOG_MS]);
        assert!(f.succeeded(), "the end of a failure is logged");
        assert!(!f.succeeded(), "a success after a success is not");
        assert!(f.failed(&e, 200_000), "a new failure is logged at once");
    }
}
