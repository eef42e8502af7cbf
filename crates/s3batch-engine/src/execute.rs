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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use s3batch_core::manifest::{CsvLayout, ManifestFormat, ManifestTask, csv_reader};
use s3batch_core::report::{ReportRow, RowWriter, TaskStatus};
use s3batch_core::{Event, JobSpec, JobStatus, Operation, arn};
use s3batch_storage::{DeleteKey, ObjectRef, StorageError};
use s3batch_store::{CasOutcome, Chunk, ChunkId, ChunkResult, StatusChange};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::control::{self, Controls, JobControl, REFRESH};
use crate::data_events::{DataEvents, TaskEvent};
use crate::prepare::unquote_etag;
use crate::{Engine, Held, now, ops, retry, status_write};

/// After the grace period, how long chunks get to give themselves back before they are stopped where they are
/// (a manifest read or a commit still retrying) and released from here.
const RELEASE_MARGIN: Duration = Duration::from_secs(3);

/// Run until `shutdown`; then stop claiming, let in-flight tasks finish within the grace period, abandon the rest,
/// release unfinished chunks.
pub async fn run(engine: Arc<Engine>, shutdown: CancellationToken) {
    let held: Held = engine.held.clone();
    let heartbeat_stop = CancellationToken::new();
    // Stop with this future, should it be dropped (see [`Engine::run`]).
    let heartbeat =
        AbortOnDropHandle::new(tokio::spawn(heartbeats(engine.clone(), held.clone(), heartbeat_stop.clone())));
    let controls = engine.controls.clone();
    let refresher = AbortOnDropHandle::new(tokio::spawn(refresh_controls(
        engine.clone(),
        controls.clone(),
        heartbeat_stop.clone(),
    )));
    let mut launcher = Launcher {
        sem: Arc::new(Semaphore::new(engine.config.concurrency)),
        engine: engine.clone(),
        held: held.clone(),
        controls,
        shutdown: shutdown.clone(),
        abandon: CancellationToken::new(),
        specs: SpecCache::default(),
        turn: 0,
        starting: Arc::new(AtomicUsize::new(0)),
        present: Arc::new(AtomicUsize::new(0)),
    };
    let mut chunks = JoinSet::new();
    // Set at every turn of the loop: after a claim, a finished chunk, a wake-up or a tick.
    let in_flight = metrics::gauge!("s3batch_chunks_in_flight");
    loop {
        in_flight.set(engine.chunks_in_flight() as f64);
        launcher.fill(&mut chunks).await;
        tokio::select! {
            Some(_) = chunks.join_next(), if !chunks.is_empty() => {}
            _ = engine.wake.notified() => {}
            _ = tokio::time::sleep(engine.config.tick()) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    drain(&engine, &held, &mut chunks, &launcher.abandon).await;
    heartbeat_stop.cancel();
    let _ = heartbeat.await;
    let _ = refresher.await;
}

/// What the executor's loop shares with every chunk it starts, and how it claims them.
struct Launcher {
    engine: Arc<Engine>,
    /// The tasks running at once in this process.
    sem: Arc<Semaphore>,
    held: Held,
    controls: Controls,
    shutdown: CancellationToken,
    /// Fires once the grace period after `shutdown` is over: tasks still running are abandoned.
    abandon: CancellationToken,
    specs: SpecCache,
    /// Whose turn it is among the Active jobs (see [`claim_fair`]).
    turn: usize,
    /// Chunks here still starting requests (see [`Starting`]).
    starting: Arc<AtomicUsize>,
    /// Chunks held here (see [`control::Present`]).
    present: Arc<AtomicUsize>,
}

impl Launcher {
    /// Claim and start chunks until as many start requests as the config allows (`chunks_in_flight`), none is left
    /// to claim, or shutdown began.
    ///
    /// A chunk whose requests have all started (they are still running) no longer counts once a request slot is
    /// free: the next chunk is claimed and read while the last requests run and the chunk commits, and takes the
    /// slots they leave. A DeleteObjects chunk's requests all start at once and end about together, and every slot
    /// of a chunk waited for its slowest request: `bench garage` delete at 100,000 objects went from 0.91× to 1.10×
    /// the raw DeleteObjects loop. At most twice `chunks_in_flight` chunks are held.
    async fn fill(&mut self, chunks: &mut JoinSet<()>) {
        let engine = self.engine.clone();
        let most = engine.config.chunks_in_flight;
        while self.starting.load(Ordering::Acquire) < most && chunks.len() < 2 * most && !self.shutdown.is_cancelled() {
            match claim_fair(&engine, &self.held, &mut self.turn).await {
                Ok(Some(chunk)) => {
                    let Some(ctx) = self.start(chunk).await else { break };
                    let span = tracing::info_span!(
                        "chunk",
                        job = %ctx.chunk.id.job_id,
                        chunk = ctx.chunk.id.seq,
                        worker = %engine.worker_id
                    );
                    let starting = Starting::new(engine.wake.clone(), self.starting.clone());
                    chunks.spawn(tracing::Instrument::instrument(ctx.run(starting), span));
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming a chunk failed");
                    break;
                }
            }
        }
    }

    /// A claimed chunk, held and ready to run; none (and the chunk released) when its job cannot be read.
    async fn start(&mut self, chunk: Chunk) -> Option<ChunkRun> {
        let engine = &self.engine;
        let lost = CancellationToken::new();
        self.held.lock().expect("held poisoned").insert(chunk.id.clone(), lost.clone());
        let Some(job) = self.specs.get(engine, &chunk.id.job_id).await else {
            release(engine, &self.held, &chunk.id).await;
            return None;
        };
        let control = control_of(engine, &self.controls, &job.id).await;
        Some(ChunkRun {
            engine: engine.clone(),
            job,
            present: control::Present::new(control.clone(), self.present.clone()),
            control,
            chunk,
            sem: self.sem.clone(),
            lost,
            shutdown: self.shutdown.clone(),
            abandon: self.abandon.clone(),
            held: self.held.clone(),
        })
    }
}

/// Claim the next chunk, sharing this worker fairly between the Active jobs: the job with the fewest chunks held
/// here first, ties taken in turn. With one Active job (or when the ones the scheduler last saw have nothing left)
/// it is the store's own order: priority, then age.
async fn claim_fair(engine: &Engine, held: &Held, turn: &mut usize) -> s3batch_store::Result<Option<Chunk>> {
    let (t, lease) = (now(), engine.config.lease_ms);
    let mut jobs = engine.active_jobs();
    if jobs.len() > 1 {
        jobs.sort();
        let n = jobs.len();
        *turn = turn.wrapping_add(1);
        jobs.rotate_left(*turn % n);
        let counts: HashMap<String, usize> = {
            let map = held.lock().expect("held poisoned");
            let mut c = HashMap::new();
            for id in map.keys() {
                *c.entry(id.job_id.clone()).or_insert(0) += 1;
            }
            c
        };
        // Stable: among equal counts the rotated order stands.
        jobs.sort_by_key(|j| counts.get(j).copied().unwrap_or(0));
        for job in &jobs {
            if let Some(c) = engine.store.claim_chunk_of(&engine.worker_id, job, t, lease).await? {
                return Ok(Some(c));
            }
        }
    }
    engine.store.claim_chunk(&engine.worker_id, t, lease).await
}

/// The job's controls in this process; made (with the job's limit read at once) for its first chunk here.
async fn control_of(engine: &Engine, controls: &Controls, job_id: &str) -> Arc<JobControl> {
    if let Some(c) = controls.lock().expect("controls poisoned").get(job_id) {
        return c.clone();
    }
    let c = Arc::new(JobControl::new(engine.config.concurrency));
    match engine.store.job_controls(job_id, now()).await {
        Ok(Some(jc)) => c.set_limit(jc.rate_limit, jc.lease_holders),
        Ok(None) => {}
        Err(e) => tracing::warn!(job = job_id, error = %e, "reading the job's rate limit failed; will retry"),
    }
    controls.lock().expect("controls poisoned").entry(job_id.to_string()).or_insert(c).clone()
}

/// About once a second: re-read the rate limit of every job running here and how many workers share it; forget
/// the controls of jobs no longer running here.
async fn refresh_controls(engine: Arc<Engine>, controls: Controls, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(REFRESH) => {}
            _ = stop.cancelled() => return,
        }
        let running: std::collections::HashSet<String> =
            engine.held.lock().expect("held poisoned").keys().map(|c| c.job_id.clone()).collect();
        let jobs: Vec<(String, Arc<JobControl>)> = {
            let mut map = controls.lock().expect("controls poisoned");
            for (id, _) in map.iter().filter(|(id, _)| !running.contains(*id)) {
                metrics::gauge!("s3batch_job_concurrency", "job" => id.clone()).set(0.0);
            }
            map.retain(|id, _| running.contains(id));
            map.iter().map(|(id, c)| (id.clone(), c.clone())).collect()
        };
        for (id, control) in jobs {
            metrics::gauge!("s3batch_job_concurrency", "job" => id.clone()).set(control.window() as f64);
            match engine.store.job_controls(&id, now()).await {
                Ok(Some(jc)) => control.set_limit(jc.rate_limit, jc.lease_holders),
                Ok(None) => {}
                Err(e) => tracing::warn!(job = %id, error = %e, "reading the job's rate limit failed"),
            }
        }
    }
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
    /// The manifest object that byte-range chunks are read from; `None` for a job whose chunks all carry their
    /// lines (a ManifestGenerator job, a re-run).
    manifest: Option<ObjectRef>,
    manifest_etag: String,
    layout: CsvLayout,
    /// The routes the job's tasks touch storage through (its role's).
    router: Arc<s3batch_storage::Router>,
    /// Why every task of the job is refused (its role does not allow the operation or the function), if it is.
    refusal: Option<StorageError>,
    account: String,
    /// `s3batch_tasks_total{operation, outcome}`, counted when a chunk commits.
    tasks_succeeded: metrics::Counter,
    tasks_failed: metrics::Counter,
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
        // Inventory manifests name no fields: their chunks carry their lines.
        let (manifest, layout) = match &job.spec.manifest {
            Some(m) if m.spec.format == ManifestFormat::S3BatchOperationsCsv20180820 => {
                let loc = &m.location;
                let (bucket, key) = arn::parse_object_arn(&loc.object_arn)?;
                let object = ObjectRef::new(bucket, key).with_version(loc.object_version_id.clone());
                (Some(object), CsvLayout::new(&m.spec.fields).ok()?)
            }
            _ => (None, CsvLayout::payload()),
        };
        let router = engine.router_for(&job);
        let refusal = engine.roles.task_refusal(&job.account_id, job.spec.named_role(), &job.spec.operation);
        let op = job.spec.operation.name();
        let ctx = Arc::new(JobCtx {
            router,
            refusal,
            account: job.account_id.clone(),
            tasks_succeeded: metrics::counter!("s3batch_tasks_total", "operation" => op, "outcome" => "succeeded"),
            tasks_failed: metrics::counter!("s3batch_tasks_total", "operation" => op, "outcome" => "failed"),
            id: job.id.clone(),
            manifest,
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
                        metrics::counter!("s3batch_chunk_lease_lost_total").increment(1);
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

/// One request of a chunk: a task, or S3DeleteObject tasks sent as one DeleteObjects (indices into the chunk's
/// tasks).
enum Request {
    One(usize),
    Batch(Vec<usize>),
}

impl Request {
    /// The tasks it carries.
    fn len(&self) -> usize {
        match self {
            Request::One(_) => 1,
            Request::Batch(keys) => keys.len(),
        }
    }
}

/// How one task ended.
#[derive(Debug, Clone)]
enum Outcome {
    Succeeded(String),
    Failed(StorageError),
}

/// A chunk that has not yet started all of its requests: counted in the executor's `starting` while this lives.
/// `run_tasks` drops it once every request has started and a request slot is free (earlier if the chunk stops);
/// the executor is then woken to look for the next chunk at once.
struct Starting {
    wake: Arc<Notify>,
    count: Arc<AtomicUsize>,
}

impl Starting {
    fn new(wake: Arc<Notify>, count: Arc<AtomicUsize>) -> Starting {
        count.fetch_add(1, Ordering::AcqRel);
        Starting { wake, count }
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
        self.wake.notify_waiters();
    }
}

struct ChunkRun {
    engine: Arc<Engine>,
    job: Arc<JobCtx>,
    /// The job's rate limit and adaptive window in this process.
    control: Arc<JobControl>,
    present: control::Present,
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

    async fn run(self, starting: Starting) {
        let Some(tasks) = self.tasks_or_give_up().await else { return };
        let outcomes = self.run_tasks(&tasks, starting).await;
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
        if self.commit(&result).await {
            tracing::debug!(succeeded = result.succeeded, failed = result.failed, "chunk committed");
            self.job.tasks_succeeded.increment(result.succeeded as u64);
            self.job.tasks_failed.increment(result.failed as u64);
            if let Some(events) = &self.engine.data_events {
                self.record_data_events(events, &tasks, &outcomes);
            }
        }
        self.held.lock().expect("held poisoned").remove(&self.chunk.id);
        self.engine.wake.notify_waiters();
    }

    /// The chunk's tasks; None once the chunk was given back (unreadable for now) or the job failed (unreadable
    /// for good).
    async fn tasks_or_give_up(&self) -> Option<Vec<ManifestTask>> {
        match self.read_tasks().await {
            Ok(t) => Some(t),
            Err(ReadError::Transient(e)) => {
                tracing::warn!(job = %self.job.id, chunk = self.chunk.id.seq, error = %e, "manifest chunk unreadable; will retry");
                release(&self.engine, &self.held, &self.chunk.id).await;
                None
            }
            Err(ReadError::Fatal(code, reason)) => {
                // The job fails from wherever it is now (Active, or Pausing: a leased chunk keeps it from Paused).
                let change = StatusChange::default().failure(code, reason);
                if let Err(e) =
                    status_write::apply_current(&*self.engine.store, &self.job.id, Event::Fail, &change).await
                {
                    tracing::warn!(job = %self.job.id, error = %e, "failing the job failed");
                }
                release(&self.engine, &self.held, &self.chunk.id).await;
                self.engine.wake.notify_waiters();
                None
            }
        }
    }

    /// Run the tasks with bounded concurrency until they are done, the job stops wanting them, the lease is lost
    /// or the process shuts down. Each task's outcome, `None` for the ones that did not run.
    ///
    /// The requests in flight are futures of this chunk's task, not tasks of their own: a spawned task per request
    /// cost an allocation, a trip through the scheduler and often a wake-up of the other worker thread, about a
    /// tenth of a copy's client CPU on Garage (`bench garage`: 247–263 against 212–240 ms per 1,000 copies). The
    /// chunks in flight (`chunks_in_flight`) spread the work over the worker threads, and a request's connection
    /// I/O runs in the HTTP client's own tasks. A task that panics fails only itself: it counts as not run.
    async fn run_tasks(&self, tasks: &[ManifestTask], starting: Starting) -> Vec<Option<Outcome>> {
        use futures::{FutureExt, StreamExt};
        let mut outcomes: Vec<Option<Outcome>> = vec![None; tasks.len()];
        // S3DeleteObject: the chunk's keys go out as DeleteObjects requests, one bucket each; every other operation
        // is one task a request.
        let batched =
            self.job.refusal.is_none() && ops::batches_deletes(&self.job.spec.operation, self.job.spec.dry_run);
        let requests: Vec<Request> = if batched {
            let buckets: Vec<&str> = tasks.iter().map(|t| t.bucket.as_str()).collect();
            let c = &self.engine.config;
            let size = ops::delete_batch_size(tasks.len(), c.concurrency, c.chunks_in_flight);
            ops::delete_batches(&buckets, size).into_iter().map(Request::Batch).collect()
        } else {
            (0..tasks.len()).map(Request::One).collect()
        };
        let mut running = futures::stream::FuturesUnordered::new();
        // A request gives its place back to its chunk: its slot in the job's window and its request slot.
        let run = |request: Request, place: Place| {
            std::panic::AssertUnwindSafe(async move {
                let out = match request {
                    Request::Batch(keys) => {
                        run_delete_batch(&self.engine, &self.job, &self.control, tasks, keys, &self.lost).await
                    }
                    Request::One(i) => {
                        vec![(i, run_task(&self.engine, &self.job, &self.control, &tasks[i], &self.lost).await)]
                    }
                };
                (out, place)
            })
            .catch_unwind()
        };
        'requests: for request in requests {
            if self.lost.is_cancelled() || self.shutdown.is_cancelled() || self.job_stopping() {
                break;
            }
            // Every request slot taken and requests of this chunk running: the next starts in the place of the
            // first of them to end, if the chunk keeps places (see `keeps_places`).
            let mut kept = None;
            if !running.is_empty() && self.sem.available_permits() == 0 && self.keeps_places() {
                tokio::select! {
                    biased;
                    Some(r) = running.next() => kept = record(&mut outcomes, r),
                    _ = self.shutdown.cancelled() => break 'requests,
                    _ = self.lost.cancelled() => break 'requests,
                }
                if self.job_stopping() {
                    break 'requests;
                }
                if !self.keeps_places() {
                    kept = None;
                }
            }
            let place = match kept {
                Some(place) => place,
                None => match self.admit(request.len(), &mut running, &mut outcomes).await {
                    Some(place) => place,
                    None => break 'requests,
                },
            };
            running.push(run(request, place));
        }
        // Every request has started (or none more will). The chunk makes way for the next as soon as a request slot
        // is free for it: now, or when the first of its own requests ends. (Not before: a chunk claimed only to wait
        // would have been claimed a whole chunk early, ahead of a job raised or started above this one meanwhile.)
        let mut starting = Some(starting);
        if self.sem.available_permits() > 0 {
            drop(starting.take());
        }
        loop {
            tokio::select! {
                r = running.next() => match r {
                    Some(r) => {
                        drop(record(&mut outcomes, r));
                        drop(starting.take());
                    }
                    None => break,
                },
                // The grace period is over: the requests still running are dropped with `running` (their results
                // are lost with them; the chunk is given back and runs again elsewhere).
                _ = self.abandon.cancelled() => break,
            }
        }
        outcomes
    }

    /// Whether a request that ended hands its place to the chunk's next request, instead of giving it back for any
    /// chunk to take: while this job is the only one with chunks here (they share this process's request slots
    /// with no other job) and its controls allow it (see [`JobControl::keeps_places`]). A place given back wakes a
    /// chunk waiting for one, most often on the other worker thread, which had to be woken too: the cost of about
    /// one thread wake-up per request, that a single loop of requests does not pay.
    fn keeps_places(&self) -> bool {
        self.present.alone() && self.control.keeps_places()
    }

    /// Wait for a place for a request of `tasks` tasks: the job's share first (rate limit, counted in tasks;
    /// adaptive window, counted in requests), then a request slot of the process, so that a job held back by its
    /// own limit keeps no slot from the others. The chunk's requests running meanwhile go on and are recorded.
    /// None: the chunk stops starting requests.
    async fn admit<F>(
        &self,
        tasks: usize,
        running: &mut futures::stream::FuturesUnordered<F>,
        outcomes: &mut [Option<Outcome>],
    ) -> Option<Place>
    where
        F: std::future::Future<Output = std::thread::Result<(Vec<(usize, Outcome)>, Place)>>,
    {
        use futures::StreamExt;
        let admit = async {
            let slot = self.control.admit_tasks(tasks).await;
            if self.job_stopping() {
                return None;
            }
            let permit = self.sem.clone().acquire_owned().await.expect("semaphore never closes");
            Some(Place { _permit: permit, _slot: slot })
        };
        tokio::pin!(admit);
        loop {
            tokio::select! {
                biased;
                Some(r) = running.next() => drop(record(outcomes, r)),
                a = &mut admit => return a,
                _ = self.shutdown.cancelled() => return None,
                _ = self.lost.cancelled() => return None,
            }
        }
    }

    /// Commit the chunk's results and the job's counters (retried a few times on a store error). Whether they
    /// are in: only committed tasks count (in the job, the report and the metrics).
    async fn commit(&self, result: &ChunkResult) -> bool {
        let mut attempt = 0;
        loop {
            let started = std::time::Instant::now();
            let outcome = self.engine.store.complete_chunk(&self.engine.worker_id, &self.chunk.id, result, now()).await;
            metrics::histogram!("s3batch_chunk_commit_duration_seconds").record(started.elapsed().as_secs_f64());
            match outcome {
                Ok(CasOutcome::Applied) => return true,
                Ok(CasOutcome::Conflict { .. } | CasOutcome::NotFound) => {
                    tracing::warn!(job = %self.job.id, chunk = self.chunk.id.seq, "lease lost before commit; results dropped");
                    metrics::counter!("s3batch_chunk_lease_lost_total").increment(1);
                    return false;
                }
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "committing a chunk failed; retrying");
                    tokio::time::sleep(retry::backoff(attempt, 200, 2000)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "committing a chunk failed; it will run again after its lease expires");
                    return false;
                }
            }
        }
    }

    /// One data event per committed task, in manifest order (the report's rows, as events).
    fn record_data_events(&self, events: &DataEvents, tasks: &[ManifestTask], outcomes: &[Option<Outcome>]) {
        for (task, outcome) in tasks.iter().zip(outcomes) {
            let Some(outcome) = outcome else { continue };
            events.record(&TaskEvent {
                job_id: &self.job.id,
                account: &self.job.account,
                role: self.job.spec.named_role(),
                operation: &self.job.spec.operation,
                bucket: &task.bucket,
                key: &task.key,
                version_id: task.version_id.as_deref(),
                error: match outcome {
                    Outcome::Succeeded(_) => None,
                    Outcome::Failed(e) => Some(e),
                },
                dry_run: self.job.spec.dry_run,
            });
        }
    }

    /// The chunk's lines: the ones it carries, or its byte range of the manifest, range-read.
    async fn read_tasks(&self) -> Result<Vec<ManifestTask>, ReadError> {
        if let Some(payload) = &self.chunk.payload {
            return self.parse_lines(payload, &CsvLayout::payload());
        }
        let Some(manifest) = &self.job.manifest else {
            return Err(ReadError::Fatal(
                "InternalError",
                format!("chunk {} carries no lines and the job has no CSV manifest", self.chunk.id.seq),
            ));
        };
        let range = self.chunk.start_offset as u64..self.chunk.end_offset as u64;
        let read = || async {
            let store = self.job.router.store_for(&manifest.bucket)?;
            let got = store.get_object(manifest, Some(range.clone())).await?;
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
        self.parse_lines(&bytes, &self.job.layout)
    }

    fn parse_lines(&self, bytes: &[u8], layout: &CsvLayout) -> Result<Vec<ManifestTask>, ReadError> {
        let mut rdr = csv_reader(bytes);
        let mut rec = csv::ByteRecord::new();
        let mut tasks = Vec::with_capacity(self.chunk.line_count as usize);
        while rdr.read_byte_record(&mut rec).map_err(|e| ReadError::Fatal("InvalidManifestContent", e.to_string()))? {
            let line = self.chunk.first_line as u64 + tasks.len() as u64;
            let task =
                layout.parse(&rec, line).map_err(|e| ReadError::Fatal("InvalidManifestContent", e.to_string()))?;
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

/// Where a request runs: its request slot in this process and its slot in the job's window (given back in that
/// order when dropped, the fields' order).
struct Place {
    _permit: tokio::sync::OwnedSemaphorePermit,
    _slot: control::Slot,
}

/// A request's results into the chunk's outcomes; its place back, unless it panicked.
fn record(outcomes: &mut [Option<Outcome>], r: std::thread::Result<(Vec<(usize, Outcome)>, Place)>) -> Option<Place> {
    match r {
        Ok((done, place)) => {
            for (i, o) in done {
                outcomes[i] = Some(o);
            }
            Some(place)
        }
        Err(panic) => {
            let message = (panic.downcast_ref::<&str>().copied())
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)");
            tracing::error!(panic = message, "a task panicked");
            None
        }
    }
}

/// One task, with retries for transient errors (exponential backoff, full jitter), none once the job stops. Every
/// attempt's answer feeds the job's adaptive window. A dry run only checks what the task would need.
async fn run_task(
    engine: &Engine,
    job: &JobCtx,
    control: &JobControl,
    task: &ManifestTask,
    lost: &CancellationToken,
) -> Outcome {
    if let Some(refused) = &job.refusal {
        return Outcome::Failed(refused.clone());
    }
    let stopping = || lost.is_cancelled() || engine.job_status(&job.id).is_some_and(stops_tasks);
    let ctx = ops::OpCtx {
        router: &job.router,
        functions: &engine.functions,
        job_id: &job.id,
        replication: &engine.config.replication,
    };
    // The previous attempt's transient error: the next attempt is a retry because of it.
    let previous: std::sync::Mutex<Option<&'static str>> = std::sync::Mutex::new(None);
    let attempt = || async {
        if let Some(reason) = previous.lock().unwrap_or_else(|e| e.into_inner()).take() {
            metrics::counter!("s3batch_task_retries_total", "operation" => job.spec.operation.name(), "reason" => reason)
                .increment(1);
        }
        let r = if job.spec.dry_run {
            ops::dry_run(&job.spec.operation, &ctx, task).await
        } else {
            ops::run(&job.spec.operation, &ctx, task).await
        };
        control.observe(&r);
        if let Err(e) = &r
            && e.transient
        {
            *previous.lock().unwrap_or_else(|e| e.into_inner()) = Some(retry_reason(e));
        }
        r
    };
    match retry::storage_call(&engine.config, stopping, attempt).await {
        Ok(msg) => Outcome::Succeeded(msg),
        // AWS reports a failed compute-checksum task in its own shape (200, PermanentFailure, error details).
        Err(e) if !job.spec.dry_run && matches!(job.spec.operation, Operation::S3ComputeObjectChecksum(_)) => {
            Outcome::Failed(crate::checksum::permanent_failure(e))
        }
        Err(e) => Outcome::Failed(e),
    }
}

/// Why a transient error is retried, as the retry metric's `reason` label says it.
fn retry_reason(e: &StorageError) -> &'static str {
    if crate::control::is_throttling(e) {
        "throttled"
    } else if e.http_status == 0 {
        "connection"
    } else if e.is_server_error() {
        "server_error"
    } else {
        "other"
    }
}

/// The S3DeleteObject tasks `request` (indices into `tasks`, all of one bucket) as DeleteObjects requests: each
/// key's own answer is its task's outcome, exactly as its DeleteObject would have been. A transient failure of
/// the whole request sends it again; a key's own transient error (`SlowDown`, `InternalError`, 5xx in the
/// `Errors` list) sends that key again, with the other such keys; both after a backoff, until `max_attempts`
/// requests carried the key, none once the job stops. Every request's answer feeds the job's adaptive window.
async fn run_delete_batch(
    engine: &Engine,
    job: &JobCtx,
    control: &JobControl,
    tasks: &[ManifestTask],
    request: Vec<usize>,
    lost: &CancellationToken,
) -> Vec<(usize, Outcome)> {
    let mut done = Vec::with_capacity(request.len());
    let Some(&first) = request.first() else { return done };
    let bucket = tasks[first].bucket.as_str();
    let store = match job.router.store_for(bucket) {
        Ok(s) => s,
        Err(e) => return request.into_iter().map(|i| (i, Outcome::Failed(e.clone()))).collect(),
    };
    let stopping = || lost.is_cancelled() || engine.job_status(&job.id).is_some_and(stops_tasks);
    let config = &engine.config;
    let mut pending = request;
    let mut attempt = 1;
    loop {
        let keys: Vec<DeleteKey> =
            pending.iter().map(|&i| DeleteKey::new(&tasks[i].key, tasks[i].version_id.clone())).collect();
        let answer = match store.delete_objects(bucket, &keys).await {
            Ok(results) if results.len() != keys.len() => Err(ops::short_answer(results.len(), keys.len())),
            r => r,
        };
        let may_retry = attempt < config.max_attempts && !stopping();
        let again = match answer {
            Err(e) => {
                control.observe::<()>(&Err(e.clone()));
                if e.transient && may_retry {
                    pending
                } else {
                    done.extend(pending.into_iter().map(|i| (i, Outcome::Failed(e.clone()))));
                    return done;
                }
            }
            Ok(results) => sort_deleted(control, pending, results, may_retry, &mut done),
        };
        if again.is_empty() {
            return done;
        }
        tokio::time::sleep(retry::backoff(attempt, config.backoff_base_ms, config.backoff_max_ms)).await;
        attempt += 1;
        pending = again;
    }
}

/// One DeleteObjects answer, key by key: each key's outcome into `done`, except the keys to send again (a
/// transient error while `may_retry`), which it returns. The answer feeds the job's adaptive window: throttled if
/// any key was.
fn sort_deleted(
    control: &JobControl,
    pending: Vec<usize>,
    results: s3batch_storage::DeleteResults,
    may_retry: bool,
    done: &mut Vec<(usize, Outcome)>,
) -> Vec<usize> {
    let mut again = Vec::new();
    let mut throttled = None;
    for (i, r) in pending.into_iter().zip(results) {
        match r {
            Ok(_) => done.push((i, Outcome::Succeeded("Successful".into()))),
            Err(e) if e.transient && may_retry => {
                if throttled.is_none() && control::is_throttling(&e) {
                    throttled = Some(e);
                }
                again.push(i);
            }
            Err(e) => done.push((i, Outcome::Failed(e))),
        }
    }
    match throttled {
        Some(e) => control.observe::<()>(&Err(e)),
        None => control.observe::<()>(&Ok(())),
    }
    again
}

/// Report rows, in manifest order, for the tasks that ran.
fn build_result(tasks: &[ManifestTask], outcomes: &[Option<Outcome>]) -> ChunkResult {
    let (mut succeeded_rows, mut failed_rows) = (Vec::new(), Vec::new());
    let (mut succeeded, mut failed) = (RowWriter::new(&mut succeeded_rows), RowWriter::new(&mut failed_rows));
    let (mut ok, mut bad) = (0, 0);
    for (task, outcome) in tasks.iter().zip(outcomes) {
        let Some(outcome) = outcome else { continue };
        let (status, http, code, msg) = match outcome {
            Outcome::Succeeded(m) => (TaskStatus::Succeeded, 200, "", m.as_str()),
            Outcome::Failed(e) => (TaskStatus::Failed, e.report_status(), e.code.as_str(), e.message.as_str()),
        };
        let row = ReportRow {
            bucket: &task.bucket,
            key: &task.raw_key,
            version_id: task.version_id.as_deref(),
            status,
            http_status: http,
            error_code: code,
            result_message: msg,
        };
        match status {
            TaskStatus::Succeeded => {
                succeeded.write(&row);
                ok += 1;
            }
            TaskStatus::Failed => {
                failed.write(&row);
                bad += 1;
            }
        }
    }
    succeeded.finish();
    failed.finish();
    ChunkResult { succeeded: ok, failed: bad, succeeded_rows, failed_rows }
}
