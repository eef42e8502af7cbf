//! The executor: claims chunks under a lease, runs their tasks with bounded concurrency, and commits each chunk's
//! result rows and the job's counters in one transaction while the lease is still held.
//!
//! A chunk whose lease is lost (this process was too slow, or another took it over after expiry) is dropped
//! without committing: the new holder's results are the ones that count, so every line is reported once.
//!
//! Shutdown: no chunk is claimed and no task started any more; tasks in flight may finish for `shutdown_grace_ms`,
//! and chunks whose tasks all ran are committed. Then the tasks still running are abandoned, and every chunk not
//! committed is given back (released, not left to expire), so another worker runs it again at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use s3batch_core::manifest::{CsvLayout, ManifestTask, csv_reader};
use s3batch_core::report::{ReportRow, TaskStatus};
use s3batch_core::{JobSpec, JobStatus, arn};
use s3batch_storage::{ObjectRef, StorageError};
use s3batch_store::{Chunk, ChunkId, ChunkResult, StatusChange};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::prepare::unquote_etag;
use crate::{Engine, Held, now, ops, retry};

/// After the grace period, how long chunks get to give themselves back before they are stopped where they are
/// (a manifest read or a commit still retrying) and released from here.
const RELEASE_MARGIN: Duration = Duration::from_secs(3);

/// Run until `shutdown`; then stop claiming, let in-flight tasks finish within the grace period, abandon the rest,
/// release unfinished chunks.
pub async fn run(engine: Arc<Engine>, shutdown: CancellationToken) {
    let sem = Arc::new(Semaphore::new(engine.config.concurrency));
    let held: Held = engine.held.clone();
    // Fires once the grace period after `shutdown` is over: tasks still running are abandoned.
    let abandon = CancellationToken::new();
    let heartbeat_stop = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeats(engine.clone(), held.clone(), heartbeat_stop.clone()));
    let mut chunks = JoinSet::new();
    let mut specs = SpecCache::default();
    loop {
        while chunks.len() < engine.config.chunks_in_flight && !shutdown.is_cancelled() {
            match engine.store.claim_chunk(&engine.worker_id, now(), engine.config.lease_ms).await {
                Ok(Some(chunk)) => {
                    let lost = CancellationToken::new();
                    held.lock().expect("held poisoned").insert(chunk.id.clone(), lost.clone());
                    let job = match specs.get(&engine, &chunk.id.job_id).await {
                        Some(j) => j,
                        None => {
                            release(&engine, &held, &chunk.id).await;
                            break;
                        }
                    };
                    let ctx = ChunkRun {
                        engine: engine.clone(),
                        job,
                        chunk,
                        sem: sem.clone(),
                        lost,
                        shutdown: shutdown.clone(),
                        abandon: abandon.clone(),
                        held: held.clone(),
                    };
                    chunks.spawn(ctx.run());
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming a chunk failed");
                    break;
                }
            }
        }
        tokio::select! {
            Some(_) = chunks.join_next(), if !chunks.is_empty() => {}
            _ = engine.wake.notified() => {}
            _ = tokio::time::sleep(engine.config.tick()) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    drain(&engine, &held, &mut chunks, &abandon).await;
    heartbeat_stop.cancel();
    let _ = heartbeat.await;
}

/// Shutting down: wait for the chunks in flight; past the grace period abandon their tasks; past the margin stop
/// them outright and give back whatever they still hold.
async fn drain(engine: &Engine, held: &Held, chunks: &mut JoinSet<()>, abandon: &CancellationToken) {
    if chunks.is_empty() {
        return;
    }
    let grace = Duration::from_millis(engine.config.shutdown_grace_ms);
    tracing::info!(chunks = chunks.len(), grace_ms = engine.config.shutdown_grace_ms, "finishing the tasks in flight");
    let abandon_at = tokio::time::Instant::now() + grace;
    let stop_at = abandon_at + RELEASE_MARGIN;
    loop {
        tokio::select! {
            r = chunks.join_next() => if r.is_none() { return },
            _ = tokio::time::sleep_until(abandon_at), if !abandon.is_cancelled() => {
                tracing::warn!(chunks = chunks.len(), "grace period over: abandoning the tasks still running; their chunks run again elsewhere");
                abandon.cancel();
            }
            _ = tokio::time::sleep_until(stop_at) => break,
        }
    }
    chunks.abort_all();
    while chunks.join_next().await.is_some() {}
    let left: Vec<ChunkId> = held.lock().expect("held poisoned").keys().cloned().collect();
    for id in left {
        release(engine, held, &id).await;
    }
}

/// What a chunk needs to know about its job; specs never change, so they are cached.
#[derive(Debug)]
struct JobCtx {
    id: String,
    spec: JobSpec,
    manifest: ObjectRef,
    manifest_etag: String,
    layout: CsvLayout,
}

#[derive(Default)]
struct SpecCache(HashMap<String, Arc<JobCtx>>);

impl SpecCache {
    async fn get(&mut self, engine: &Engine, id: &str) -> Option<Arc<JobCtx>> {
        if let Some(j) = self.0.get(id) {
            return Some(j.clone());
        }
        let job = match engine.store.get_job(None, id).await {
            Ok(Some(j)) => j,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(job = id, error = %e, "loading a job failed");
                return None;
            }
        };
        let manifest = job.spec.manifest.as_ref()?;
        let loc = &manifest.location;
        let (bucket, key) = arn::parse_object_arn(&loc.object_arn)?;
        let layout = CsvLayout::new(&manifest.spec.fields).ok()?;
        let ctx = Arc::new(JobCtx {
            id: job.id.clone(),
            manifest: ObjectRef::new(bucket, key).with_version(loc.object_version_id.clone()),
            manifest_etag: job.manifest_etag.clone().unwrap_or_default(),
            spec: job.spec,
            layout,
        });
        if self.0.len() > 256 {
            self.0.clear();
        }
        self.0.insert(id.to_string(), ctx.clone());
        Some(ctx)
    }
}

async fn release(engine: &Engine, held: &Held, id: &ChunkId) {
    held.lock().expect("held poisoned").remove(id);
    if let Err(e) = engine.store.release_chunk(&engine.worker_id, id).await {
        tracing::warn!(job = %id.job_id, chunk = id.seq, error = %e, "releasing a chunk failed");
    }
}

async fn heartbeats(engine: Arc<Engine>, held: Held, stop: CancellationToken) {
    let every = engine.config.heartbeat_every();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        let ids: Vec<ChunkId> = held.lock().expect("held poisoned").keys().cloned().collect();
        if ids.is_empty() {
            continue;
        }
        match engine.store.heartbeat(&engine.worker_id, &ids, now(), engine.config.lease_ms).await {
            Ok(renewed) => {
                let map = held.lock().expect("held poisoned");
                for id in ids.iter().filter(|id| !renewed.contains(id)) {
                    if let Some(lost) = map.get(id) {
                        tracing::warn!(job = %id.job_id, chunk = id.seq, "lease lost; dropping the chunk");
                        lost.cancel();
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}

/// Statuses in which no further task of a job may start: cancelled, failing, or finished. (A job that the
/// scheduler's last look saw as Ready may already be Active: only these statuses stop a chunk.)
fn stops_tasks(s: JobStatus) -> bool {
    matches!(s, JobStatus::Cancelling | JobStatus::Failing) || s.is_terminal()
}

/// How one task ended.
#[derive(Debug, Clone)]
enum Outcome {
    Succeeded(String),
    Failed(StorageError),
}

struct ChunkRun {
    engine: Arc<Engine>,
    job: Arc<JobCtx>,
    chunk: Chunk,
    sem: Arc<Semaphore>,
    lost: CancellationToken,
    shutdown: CancellationToken,
    /// The grace period is over: stop waiting for tasks.
    abandon: CancellationToken,
    held: Held,
}

impl ChunkRun {
    /// Whether the job wants no more tasks started (cancelled, failing, gone).
    fn job_stopping(&self) -> bool {
        self.engine.job_status(&self.job.id).is_some_and(stops_tasks)
    }

    async fn run(self) {
        let tasks = match self.read_tasks().await {
            Ok(t) => t,
            Err(ReadError::Transient(e)) => {
                tracing::warn!(job = %self.job.id, chunk = self.chunk.id.seq, error = %e, "manifest chunk unreadable; will retry");
                release(&self.engine, &self.held, &self.chunk.id).await;
                return;
            }
            Err(ReadError::Fatal(code, reason)) => {
                let change = StatusChange::to(JobStatus::Failing).failure(code, reason);
                for from in [JobStatus::Active, JobStatus::Pausing] {
                    if let Ok(true) = self.engine.store.update_status(&self.job.id, from, &change, now()).await {
                        break;
                    }
                }
                release(&self.engine, &self.held, &self.chunk.id).await;
                self.engine.wake.notify_waiters();
                return;
            }
        };

        let mut outcomes: Vec<Option<Outcome>> = vec![None; tasks.len()];
        let mut set = JoinSet::new();
        let tasks = Arc::new(tasks);
        for i in 0..tasks.len() {
            if self.lost.is_cancelled() || self.shutdown.is_cancelled() || self.job_stopping() {
                break;
            }
            let permit = tokio::select! {
                p = self.sem.clone().acquire_owned() => p.expect("semaphore never closes"),
                _ = self.shutdown.cancelled() => break,
                _ = self.lost.cancelled() => break,
            };
            let (engine, job, tasks, lost) = (self.engine.clone(), self.job.clone(), tasks.clone(), self.lost.clone());
            set.spawn(async move {
                let out = run_task(&engine, &job, &tasks[i], &lost).await;
                drop(permit);
                (i, out)
            });
            while let Some(r) = set.try_join_next() {
                record(&mut outcomes, r);
            }
        }
        loop {
            tokio::select! {
                r = set.join_next() => match r {
                    Some(r) => record(&mut outcomes, r),
                    None => break,
                },
                _ = self.abandon.cancelled() => {
                    // Their results are lost with them: the chunk is given back below, and runs again elsewhere.
                    set.abort_all();
                    while let Some(r) = set.join_next().await {
                        record(&mut outcomes, r);
                    }
                    break;
                }
            }
        }

        let ran = outcomes.iter().filter(|o| o.is_some()).count();
        if self.lost.is_cancelled() {
            self.held.lock().expect("held poisoned").remove(&self.chunk.id);
            return;
        }
        if ran < tasks.len() && !self.job_stopping() {
            // Shutting down part-way: give the chunk back; its tasks run again elsewhere (at least once).
            release(&self.engine, &self.held, &self.chunk.id).await;
            return;
        }
        let result = build_result(&tasks, &outcomes);
        let mut attempt = 0;
        loop {
            match self.engine.store.complete_chunk(&self.engine.worker_id, &self.chunk.id, &result, now()).await {
                Ok(true) => break,
                Ok(false) => {
                    tracing::warn!(job = %self.job.id, chunk = self.chunk.id.seq, "lease lost before commit; results dropped");
                    break;
                }
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "committing a chunk failed; retrying");
                    tokio::time::sleep(retry::backoff(attempt, 200, 2000)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "committing a chunk failed; it will run again after its lease expires");
                    break;
                }
            }
        }
        self.held.lock().expect("held poisoned").remove(&self.chunk.id);
        self.engine.wake.notify_waiters();
    }

    /// Range-read the chunk's bytes of the manifest and parse its lines.
    async fn read_tasks(&self) -> Result<Vec<ManifestTask>, ReadError> {
        let range = self.chunk.start_offset as u64..self.chunk.end_offset as u64;
        let read = || async {
            let store = self.engine.router.store_for(&self.job.manifest.bucket)?;
            let got = store.get_object(&self.job.manifest, Some(range.clone())).await?;
            let etag = got.info.etag.clone();
            Ok::<_, StorageError>((etag, got.bytes().await?))
        };
        let got = match retry::storage_call(&self.engine.config, || false, read).await {
            Ok(x) => x,
            Err(e) if e.transient => return Err(ReadError::Transient(e)),
            Err(e) => {
                return Err(ReadError::Fatal(
                    "ManifestNotReadable",
                    format!("reading the manifest failed: {} ({}): {}", e.code, e.http_status, e.message),
                ));
            }
        };
        let (etag, bytes) = got;
        if unquote_etag(&etag) != unquote_etag(&self.job.manifest_etag) {
            return Err(ReadError::Fatal(
                "ManifestChanged",
                format!("the manifest changed while the job ran (ETag {} is now {})", self.job.manifest_etag, etag),
            ));
        }
        let mut rdr = csv_reader(&bytes[..]);
        let mut rec = csv::ByteRecord::new();
        let mut tasks = Vec::with_capacity(self.chunk.line_count as usize);
        while rdr.read_byte_record(&mut rec).map_err(|e| ReadError::Fatal("InvalidManifestContent", e.to_string()))? {
            let line = self.chunk.first_line as u64 + tasks.len() as u64;
            let task = self
                .job
                .layout
                .parse(&rec, line)
                .map_err(|e| ReadError::Fatal("InvalidManifestContent", e.to_string()))?;
            tasks.push(task);
        }
        if tasks.len() as i64 != self.chunk.line_count {
            return Err(ReadError::Fatal(
                "ManifestChanged",
                format!(
                    "chunk {} has {} lines, {} when prepared",
                    self.chunk.id.seq,
                    tasks.len(),
                    self.chunk.line_count
                ),
            ));
        }
        Ok(tasks)
    }
}

enum ReadError {
    Transient(StorageError),
    Fatal(&'static str, String),
}

fn record(outcomes: &mut [Option<Outcome>], r: Result<(usize, Outcome), tokio::task::JoinError>) {
    match r {
        Ok((i, o)) => outcomes[i] = Some(o),
        Err(e) if e.is_cancelled() => {} // abandoned at shutdown
        Err(e) => tracing::error!(error = %e, "a task panicked"),
    }
}

/// One task, with retries for transient errors (exponential backoff, full jitter), none once the job stops.
async fn run_task(engine: &Engine, job: &JobCtx, task: &ManifestTask, lost: &CancellationToken) -> Outcome {
    let stopping = || lost.is_cancelled() || engine.job_status(&job.id).is_some_and(stops_tasks);
    let ctx = ops::OpCtx {
        router: &engine.router,
        functions: &engine.functions,
        job_id: &job.id,
        replication: &engine.config.replication,
    };
    match retry::storage_call(&engine.config, stopping, || ops::run(&job.spec.operation, &ctx, task)).await {
        Ok(msg) => Outcome::Succeeded(msg),
        Err(e) => Outcome::Failed(e),
    }
}

/// Report rows, in manifest order, for the tasks that ran.
fn build_result(tasks: &[ManifestTask], outcomes: &[Option<Outcome>]) -> ChunkResult {
    let mut r = ChunkResult::default();
    for (task, outcome) in tasks.iter().zip(outcomes) {
        let Some(outcome) = outcome else { continue };
        let (status, http, code, msg, out) = match outcome {
            Outcome::Succeeded(m) => (TaskStatus::Succeeded, 200, "", m.as_str(), &mut r.succeeded_rows),
            Outcome::Failed(e) => {
                let http = if e.http_status == 0 { 500 } else { e.http_status };
                (TaskStatus::Failed, http, e.code.as_str(), e.message.as_str(), &mut r.failed_rows)
            }
        };
        ReportRow {
            bucket: &task.bucket,
            key: &task.raw_key,
            version_id: task.version_id.as_deref(),
            status,
            http_status: http,
            error_code: code,
            result_message: msg,
        }
        .write_to(out);
        match status {
            TaskStatus::Succeeded => r.succeeded += 1,
            TaskStatus::Failed => r.failed += 1,
        }
    }
    r
}
