//! Scheduling and job control, on paused time: priorities, preemption and automatic resume, priority changes,
//! confirmation expiry, cancellation in every status, the task-failure threshold, the Active timer, the user pause,
//! and a process killed in the middle of Pausing, Cancelling and Completing.
//!
//! A SQLite job store in a temporary directory, in-memory object stores (whose injected latency is a
//! `tokio::time::sleep`), engines ticking every 200 ms, jobs made through the [`JobService`]. Every test runs on a
//! current-thread runtime with paused time, and the engine's `now()` follows tokio's clock
//! ([`clock::follow_tokio_time`]), so a task that takes ten seconds, a lease that runs out, or thirty days in
//! Suspended cost no real time.
//!
//! Paused time moves on by itself whenever the runtime has nothing to do, and SQLite answers on a thread of its
//! own: left alone, time could leap ahead while a query is in flight (expiring leases, firing sqlx's own pool
//! timeouts). The job store every engine and test uses here is therefore [`Clocked`], which keeps a blocking task
//! alive for the duration of each call; tokio does not advance paused time while a blocking task runs. So simulated
//! time passes only while every task of the test waits on a timer: the order of events is fixed by the simulated
//! durations (a 10 s task, a 200 ms tick, a 30 s lease), not by how fast the machine is. Waits are bounded by a
//! real-time deadline.

#[allow(dead_code)]
mod common;
mod wrapped;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{ACCOUNT, Rows, report_rows};
use futures::future::BoxFuture;
use s3batch_core::{JobSpec, JobStatus, Tag};
use s3batch_engine::service::{JobService, RequestedStatus, ServiceError, USER_PAUSE_CAUSE};
use s3batch_engine::{CancellationToken, Engine, EngineConfig, clock, now};
use s3batch_storage::memory::{Faults, MemoryStore};
use s3batch_storage::{ObjectRef, ObjectStore, PutBody, PutOptions, Router};
use s3batch_store::sqlite::SqliteStore;
use s3batch_store::{ChunkCounts, Job, JobStore};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use wrapped::{Gate, Wrapped};

/// Longest a test waits (real time) for a condition.
const REAL_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the tests look at the jobs (simulated time).
const POLL: Duration = Duration::from_millis(100);
/// A task on a slowed store.
const TASK: Duration = Duration::from_secs(10);
/// Requests a memory store has seen before the test's own: its bucket's creation.
const BUCKET: u64 = 1;
const DAY: Duration = Duration::from_secs(24 * 3600);

use JobStatus::{Active, Cancelled, Cancelling, Complete, Completing, Failed, Paused, Pausing, Ready, Suspended};

/// Chunks of 10 lines, one chunk in flight, its 10 tasks at once; one job runs at a time; leases of a minute.
fn config() -> EngineConfig {
    EngineConfig {
        max_active_jobs: 1,
        tick_ms: 200,
        lease_ms: 60_000,
        chunk_size: 10,
        chunks_in_flight: 1,
        concurrency: 10,
        backoff_base_ms: 1,
        backoff_max_ms: 5,
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The clock-holding job store

/// Run `call` with tokio's paused clock held still: a blocking task lives as long as the call (tokio does not
/// auto-advance paused time while a blocking task runs on a current-thread runtime).
async fn hold<T>(call: impl Future<Output = T>) -> T {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let holder = tokio::task::spawn_blocking(move || {
        let _ = wait.recv(); // returns once `done` is dropped: the call ended, or was itself dropped
    });
    let out = call.await;
    drop(done);
    let _ = holder.await;
    out
}

/// Every job store call holds the paused clock still (see [`hold`]).
#[derive(Debug)]
struct Hold;

impl Gate for Hold {
    fn around<'a, T: Send + 'a>(&'a self, call: BoxFuture<'a, T>) -> BoxFuture<'a, T> {
        Box::pin(hold(call))
    }
}

/// A job store whose every call holds the paused clock still.
type Clocked = Wrapped<Hold>;

// ---------------------------------------------------------------------------------------------------------------
// Harness

/// One engine process: its `run` task and the token that stops it gracefully.
struct Running {
    engine: Arc<Engine>,
    token: CancellationToken,
    handle: JoinHandle<()>,
}

struct Harness {
    _dir: tempfile::TempDir,
    store: Arc<dyn JobStore>,
    router: Arc<Router>,
    /// Bucket `data`.
    data: MemoryStore,
    /// Bucket `other`: a second store, so that one job's tasks can be slow while another's are not.
    other: MemoryStore,
    /// Buckets `manifests` and `reports`.
    meta: MemoryStore,
    running: Option<Running>,
    service: JobService,
    manifests: AtomicUsize,
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(r) = &self.running {
            r.handle.abort();
        }
    }
}

/// A job and its manifest lines `(bucket, key)`.
struct TestJob {
    id: String,
    lines: Vec<(String, String)>,
}

impl TestJob {
    fn keys(&self) -> Vec<&str> {
        self.lines.iter().map(|(_, k)| k.as_str()).collect()
    }
}

impl Harness {
    async fn new(cfg: EngineConfig) -> Harness {
        clock::follow_tokio_time();
        let dir = tempfile::tempdir().unwrap();
        let sqlite = hold(SqliteStore::open(&dir.path().join("jobs.db"))).await.unwrap();
        let store: Arc<dyn JobStore> = Arc::new(Clocked::new(Arc::new(sqlite), Hold));
        let (data, other, meta) = (MemoryStore::new(), MemoryStore::new(), MemoryStore::new());
        data.create_bucket("data").await.unwrap();
        other.create_bucket("other").await.unwrap();
        for b in ["manifests", "reports"] {
            meta.create_bucket(b).await.unwrap();
        }
        let mut router = Router::default();
        router.add("data", vec!["data".into()], Arc::new(data.clone()));
        router.add("other", vec!["other".into()], Arc::new(other.clone()));
        router.add("meta", vec!["*".into()], Arc::new(meta.clone()));
        let router = Arc::new(router);
        let service = JobService::new(store.clone(), Default::default(), 90);
        let mut h = Harness {
            _dir: dir,
            store,
            router,
            data,
            other,
            meta,
            running: None,
            service,
            manifests: AtomicUsize::new(0),
        };
        h.start(cfg);
        h
    }

    /// Start an engine; the service now wakes this one.
    fn start(&mut self, cfg: EngineConfig) {
        assert!(self.running.is_none(), "an engine is already running");
        cfg.validate().expect("a usable engine config");
        let engine = Engine::new(self.store.clone(), self.router.clone(), cfg);
        let token = CancellationToken::new();
        let handle = tokio::spawn(engine.clone().run(token.clone()));
        self.service = JobService::new(self.store.clone(), engine.wake.clone(), 90);
        self.running = Some(Running { engine, token, handle });
    }

    /// Graceful shutdown.
    async fn stop(&mut self) {
        let r = self.running.take().expect("an engine runs");
        r.token.cancel();
        r.handle.await.expect("the engine ran");
    }

    /// The process dies: the engine's task is aborted where it is, releasing nothing.
    async fn kill(&mut self) {
        let r = self.running.take().expect("an engine runs");
        r.handle.abort();
        let e = r.handle.await.expect_err("aborted");
        assert!(e.is_cancelled(), "{e}");
        drop(r.engine);
    }

    fn worker_id(&self) -> String {
        self.running.as_ref().expect("an engine runs").engine.worker_id.clone()
    }

    // --- objects, manifests, jobs

    /// `n` objects `<prefix>-0000…` in `bucket` (on its store), or only those `present` says.
    async fn objects(&self, bucket: &str, prefix: &str, n: usize, present: impl Fn(usize) -> bool) -> Vec<String> {
        let store = self.store_of(bucket);
        let mut keys = Vec::with_capacity(n);
        for i in 0..n {
            let key = format!("{prefix}-{i:04}");
            if present(i) {
                let body = PutBody::Bytes(Bytes::from(key.clone()));
                store.put_object(bucket, &key, body, &PutOptions::default()).await.unwrap();
            }
            keys.push(key);
        }
        keys
    }

    fn store_of(&self, bucket: &str) -> &MemoryStore {
        match bucket {
            "data" => &self.data,
            "other" => &self.other,
            _ => &self.meta,
        }
    }

    /// A manifest of `keys` in `bucket`: its key and ETag.
    async fn manifest(&self, bucket: &str, keys: &[String]) -> (String, String) {
        let text: String = keys.iter().map(|k| format!("{bucket},{k}\n")).collect();
        let key = format!("m{}.csv", self.manifests.fetch_add(1, Ordering::Relaxed));
        let w = self.meta.put_object("manifests", &key, PutBody::Bytes(text.into()), &PutOptions::default()).await;
        (key, w.unwrap().etag.expect("an ETag"))
    }

    /// A tagging job over `n` existing objects `<prefix>-…` in `bucket`.
    async fn job(&self, bucket: &str, prefix: &str, n: usize, priority: i64, confirm: bool) -> TestJob {
        let keys = self.objects(bucket, prefix, n, |_| true).await;
        self.job_over(bucket, keys, priority, confirm).await
    }

    /// A tagging job over `keys` in `bucket` (which need not exist).
    async fn job_over(&self, bucket: &str, keys: Vec<String>, priority: i64, confirm: bool) -> TestJob {
        let (mkey, etag) = self.manifest(bucket, &keys).await;
        let id = self.create(&mkey, &etag, priority, confirm).await;
        TestJob { id, lines: keys.into_iter().map(|k| (bucket.to_string(), k)).collect() }
    }

    async fn create(&self, manifest_key: &str, etag: &str, priority: i64, confirm: bool) -> String {
        self.create_with(manifest_key, etag, priority, confirm, json!({})).await
    }

    /// [`Harness::create`] with more members of the job spec (`extra`).
    async fn create_with(&self, manifest_key: &str, etag: &str, priority: i64, confirm: bool, extra: Value) -> String {
        let mut spec = json!({
            "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "batch", "Value": "done"}]}},
            "Manifest": {
                "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                "Location": {"ObjectArn": format!("arn:aws:s3:::manifests/{manifest_key}"), "ETag": etag}
            },
            "Report": {"Enabled": true, "Bucket": "arn:aws:s3:::reports", "Format": "Report_CSV_20180820",
                       "ReportScope": "AllTasks", "Prefix": "out"},
            "Priority": priority,
            "ConfirmationRequired": confirm,
            "RoleArn": "arn:aws:iam::123456789012:role/batch"
        });
        for (k, v) in extra.as_object().expect("spec members") {
            spec[k] = v.clone();
        }
        let spec: JobSpec = serde_json::from_value(spec).expect("a JobSpec");
        self.service.create(ACCOUNT, None, spec).await.expect("the job is created").id
    }

    async fn get(&self, id: &str) -> Job {
        self.service.describe(ACCOUNT, id).await.unwrap()
    }

    async fn counts(&self, id: &str) -> ChunkCounts {
        self.store.chunk_counts(id, now()).await.unwrap()
    }

    async fn cancel(&self, id: &str) -> Job {
        self.service
            .update_status(ACCOUNT, id, RequestedStatus::Cancelled, Some("test".into()))
            .await
            .expect("cancel accepted")
    }

    async fn pause(&self, id: &str, pause: bool) -> Job {
        let requested = if pause { RequestedStatus::Paused } else { RequestedStatus::Active };
        self.service.update_status(ACCOUNT, id, requested, None).await.expect("pause/resume accepted")
    }

    /// Poll (every [`POLL`] of simulated time) until `done(job)`.
    async fn wait_for(&self, id: &str, what: &str, done: impl Fn(&Job, &ChunkCounts) -> bool) -> Job {
        let deadline = Instant::now() + REAL_TIMEOUT;
        loop {
            let (job, c) = (self.get(id).await, self.counts(id).await);
            if done(&job, &c) {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} is not {what}: status {}, priority {}, total {:?}, succeeded {}, failed {}, failures {:?}, \
                 chunks {c:?}",
                job.status,
                job.priority,
                job.total_tasks,
                job.succeeded,
                job.failed,
                job.failure_reasons
            );
            tokio::time::sleep(POLL).await;
        }
    }

    async fn wait_status(&self, id: &str, status: JobStatus) -> Job {
        self.wait_for(id, status.as_str(), |j, _| j.status == status).await
    }

    /// Active with a chunk in flight.
    async fn wait_running(&self, id: &str) -> Job {
        self.wait_for(id, "Active with a chunk in flight", |j, c| j.status == Active && c.leased > 0).await
    }

    /// Poll until `job` is Active with a chunk in flight and `store` has seen `requests` requests: the tasks
    /// of that chunk have started (they count as they begin, before the injected latency).
    async fn wait_started(&self, id: &str, store: &MemoryStore, requests: u64) -> Job {
        let job = self
            .wait_for(id, "running with its tasks started", |j, c| {
                j.status == Active && c.leased > 0 && store.request_count() >= requests
            })
            .await;
        assert_eq!(store.request_count(), requests, "no more tasks than that started");
        job
    }

    /// Poll every job in `ids` until `done(jobs)`, recording each one's statuses in `t`; at every look, at most
    /// `max_running` jobs are Active or Pausing.
    async fn watch(&self, t: &mut Timeline, ids: &[&str], max_running: usize, done: impl Fn(&[Job]) -> bool) {
        let deadline = Instant::now() + REAL_TIMEOUT;
        loop {
            // One query, so that the statuses are a consistent snapshot.
            let (all, _) = self.service.list(ACCOUNT, vec![], None, None).await.unwrap();
            let jobs: Vec<Job> =
                ids.iter().map(|id| all.iter().find(|j| j.id == *id).expect("a job of the account").clone()).collect();
            t.record(&jobs);
            let running: Vec<_> =
                jobs.iter().filter(|j| matches!(j.status, Active | Pausing)).map(|j| (&j.id, j.status)).collect();
            assert!(running.len() <= max_running, "more than {max_running} jobs run: {running:?}");
            if done(&jobs) {
                return;
            }
            let now: Vec<_> = jobs.iter().map(|j| (j.status, j.succeeded, j.failed)).collect();
            assert!(Instant::now() < deadline, "not there yet: {now:?}; seen {:?}", t.seen);
            tokio::time::sleep(POLL).await;
        }
    }

    async fn rows(&self, job: &Job) -> Rows {
        report_rows(&self.meta, job).await
    }

    async fn report_objects(&self, id: &str) -> Vec<String> {
        let page = self.meta.list_objects("reports", &format!("out/job-{id}/"), None, 1000).await.unwrap();
        page.objects.into_iter().map(|o| o.key).collect()
    }

    async fn tagged(&self, bucket: &str, key: &str) -> bool {
        let tags = self.store_of(bucket).get_object_tagging(&ObjectRef::new(bucket, key)).await.unwrap();
        tags == [Tag::new("batch", "done")]
    }

    /// The job's report lists each of its lines at most once (every line with `all`), its counters equal the rows,
    /// and exactly the objects it lists as succeeded carry the job's tag. Returns the reported keys.
    async fn assert_report(&self, job: &Job, t: &TestJob, all: bool) -> HashSet<String> {
        let rows = self.rows(job).await;
        let lines: HashSet<&(String, String)> = t.lines.iter().collect();
        let mut seen = HashSet::new();
        for r in rows.succeeded.iter().chain(&rows.failed) {
            let line = (r.bucket.clone(), r.key.clone());
            assert!(lines.contains(&line), "{r:?} is not a line of job {}", job.id);
            assert!(seen.insert(line), "{r:?} is reported twice");
        }
        if all {
            assert_eq!(seen.len(), t.lines.len(), "every line of job {} is reported", job.id);
        }
        let succeeded: HashSet<&str> = rows.succeeded.iter().map(|r| r.key.as_str()).collect();
        for (b, k) in &t.lines {
            if self.store_of(b).head_object(&ObjectRef::new(b, k)).await.is_ok() {
                assert_eq!(self.tagged(b, k).await, succeeded.contains(k.as_str()), "{k}: tagged iff reported");
            }
        }
        seen.into_iter().map(|(_, k)| k).collect()
    }
}

/// Slow every tagging call of `store` down by `latency` (simulated).
fn slow(store: &MemoryStore, latency: Duration) {
    store.set_faults(Faults { latency, only_ops: vec!["put_object_tagging".into()], ..Default::default() });
}

/// The statuses each job was seen in, in order, repeats removed.
#[derive(Debug, Default)]
struct Timeline {
    seen: HashMap<String, Vec<JobStatus>>,
}

impl Timeline {
    fn record(&mut self, jobs: &[Job]) {
        for j in jobs {
            let v = self.seen.entry(j.id.clone()).or_default();
            if v.last() != Some(&j.status) {
                v.push(j.status);
            }
        }
    }

    /// The statuses of `id` among Active, Pausing, Paused and Complete (the ones a poll cannot miss here), in order.
    fn path(&self, id: &str) -> Vec<JobStatus> {
        let mut out: Vec<JobStatus> = vec![];
        for s in self.seen.get(id).into_iter().flatten() {
            if matches!(s, Active | Pausing | Paused | Complete) && out.last() != Some(s) {
                out.push(*s);
            }
        }
        out
    }
}

/// Which objects of a test exist (by index).
type Present = Box<dyn Fn(usize) -> bool>;

fn all(status: JobStatus) -> impl Fn(&[Job]) -> bool {
    move |jobs| jobs.iter().all(|j| j.status == status)
}

fn assert_refused(r: Result<Job, ServiceError>, what: &str) {
    let e = r.expect_err(what);
    assert!(matches!(e, ServiceError::WrongStatus { .. }), "{what}: {e:?}");
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Preemption and automatic resume

/// One slot, three priorities arriving in turn: each newcomer pushes the running job out (Pausing: its chunk in
/// flight finishes, no new one is claimed; then Paused), and the pushed-out jobs come back by themselves, highest
/// first, once the slot is free.
#[tokio::test(start_paused = true)]
async fn preemption_and_automatic_resume_with_one_slot() {
    let h = Harness::new(config()).await;
    slow(&h.data, TASK);
    let low = h.job("data", "low", 30, 1, false).await;
    h.wait_running(&low.id).await;
    let mut t = Timeline::default();
    h.watch(&mut t, &[low.id.as_str()], 1, |_| true).await;

    let mid = h.job("data", "mid", 30, 5, false).await;
    let ids = [low.id.as_str(), mid.id.as_str()];
    h.watch(&mut t, &ids, 1, |j| j[0].status == Pausing).await;
    assert_eq!(h.counts(&low.id).await.leased, 1, "the chunk in flight goes on while Pausing");
    h.watch(&mut t, &ids, 1, |j| j[0].status == Paused).await;
    let l = h.get(&low.id).await;
    assert_eq!((l.succeeded, l.failed), (10, 0), "the chunk in flight finished, no other was claimed");
    assert!(l.suspended_cause.as_deref().is_some_and(|c| c.contains("higher priority")), "{:?}", l.suspended_cause);
    h.wait_running(&mid.id).await;
    h.watch(&mut t, &ids, 1, |_| true).await;

    let high = h.job("data", "high", 30, 9, false).await;
    let ids = [low.id.as_str(), mid.id.as_str(), high.id.as_str()];
    h.watch(&mut t, &ids, 1, |j| j[1].status == Paused).await;
    assert_eq!(h.get(&mid.id).await.succeeded, 10);
    assert_eq!(h.get(&low.id).await.status, Paused, "the low job waits for the mid one");
    h.watch(&mut t, &ids, 1, all(Complete)).await;

    let preempted = [Active, Pausing, Paused, Active, Complete];
    assert_eq!(t.path(&low.id), preempted);
    assert_eq!(t.path(&mid.id), preempted);
    assert_eq!(t.path(&high.id), [Active, Complete]);
    let (l, m, hi) = (h.get(&low.id).await, h.get(&mid.id).await, h.get(&high.id).await);
    assert!(hi.terminated_at < m.terminated_at && m.terminated_at < l.terminated_at, "high, then mid, then low");
    assert_eq!(
        h.data.request_count(),
        BUCKET + 90 + 90,
        "90 puts of the objects, one task per line: nothing ran twice"
    );
    for (job, tj) in [(&l, &low), (&m, &mid), (&hi, &high)] {
        assert_eq!((job.succeeded, job.failed), (30, 0));
        h.assert_report(job, tj, true).await;
    }
}

/// Two slots: a newcomer pushes out only the lowest of the two running jobs; the other runs on untouched.
#[tokio::test(start_paused = true)]
async fn preemption_and_automatic_resume_with_two_slots() {
    let h = Harness::new(EngineConfig { max_active_jobs: 2, chunks_in_flight: 4, ..config() }).await;
    slow(&h.data, TASK);
    slow(&h.other, 6 * TASK);
    // The mid job, slow, takes three of the four chunks in flight; the low one gets the fourth.
    let mid = h.job("other", "mid", 30, 5, false).await;
    h.wait_running(&mid.id).await;
    let low = h.job("data", "low", 30, 1, false).await;
    h.wait_running(&low.id).await;
    assert_eq!((h.counts(&mid.id).await.leased, h.counts(&low.id).await.leased), (3, 1));
    let mut t = Timeline::default();
    h.watch(&mut t, &[low.id.as_str(), mid.id.as_str()], 2, |_| true).await;

    let high = h.job("data", "high", 30, 9, false).await;
    let ids = [low.id.as_str(), mid.id.as_str(), high.id.as_str()];
    h.watch(&mut t, &ids, 2, |j| j[0].status == Paused).await;
    assert_eq!(h.get(&low.id).await.succeeded, 10, "the low job's chunk in flight finished, no other was claimed");
    h.watch(&mut t, &ids, 2, all(Complete)).await;

    assert_eq!(t.path(&low.id), [Active, Pausing, Paused, Active, Complete]);
    assert_eq!(t.path(&mid.id), [Active, Complete], "the mid job kept its slot");
    assert_eq!(t.path(&high.id), [Active, Complete]);
    let (l, m, hi) = (h.get(&low.id).await, h.get(&mid.id).await, h.get(&high.id).await);
    // Which of high and low ends first is not a rule: once mid is done, low has a slot again and runs beside
    // high (the watch above checks that no more than two jobs ever ran at once).
    assert!(hi.terminated_at.is_some() && l.terminated_at.is_some());
    for (job, tj) in [(&l, &low), (&m, &mid), (&hi, &high)] {
        assert_eq!((job.succeeded, job.failed), (30, 0));
        h.assert_report(job, tj, true).await;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Priority changes

/// One slot: a waiting job raised above the running one takes the slot (the running one pauses, finishing its
/// chunk in flight, and resumes once the raised job is done).
#[tokio::test(start_paused = true)]
async fn a_waiting_job_raised_above_the_running_one_takes_over() {
    let h = Harness::new(config()).await;
    slow(&h.data, TASK);
    let a = h.job("data", "a", 30, 10, false).await;
    h.wait_running(&a.id).await;
    let b = h.job("data", "b", 30, 5, false).await;
    h.wait_status(&b.id, Ready).await;
    let mut t = Timeline::default();
    let ids = [a.id.as_str(), b.id.as_str()];
    h.watch(&mut t, &ids, 1, |_| true).await;

    for bad in [-1, 2_147_483_648] {
        let e = h.service.update_priority(ACCOUNT, &b.id, bad).await.expect_err("out of range");
        assert!(matches!(e, ServiceError::Invalid(_)), "{e:?}");
    }
    let raised = h.service.update_priority(ACCOUNT, &b.id, 2_147_483_647).await.unwrap();
    assert_eq!((raised.priority, raised.status), (2_147_483_647, Ready));
    h.watch(&mut t, &ids, 1, |j| j[0].status == Paused).await;
    assert_eq!(h.get(&a.id).await.succeeded, 10, "A finished its chunk in flight and claimed no other");
    h.watch(&mut t, &ids, 1, all(Complete)).await;

    assert_eq!(t.path(&a.id), [Active, Pausing, Paused, Active, Complete]);
    assert_eq!(t.path(&b.id), [Active, Complete]);
    let (ja, jb) = (h.get(&a.id).await, h.get(&b.id).await);
    assert!(jb.terminated_at < ja.terminated_at);
    assert_eq!(ja.priority, 10);
    h.assert_report(&ja, &a, true).await;
    h.assert_report(&jb, &b, true).await;
}

/// Equal priorities: the older job runs first, and a newer one of the same priority does not pre-empt it.
#[tokio::test(start_paused = true)]
async fn equal_priorities_run_oldest_first_without_preemption() {
    let h = Harness::new(config()).await;
    slow(&h.data, TASK);
    let older = h.job("data", "older", 30, 7, false).await;
    h.wait_running(&older.id).await;
    let newer = h.job("data", "newer", 10, 7, false).await;
    let ids = [older.id.as_str(), newer.id.as_str()];
    let mut t = Timeline::default();
    h.watch(&mut t, &ids, 1, all(Complete)).await;
    assert_eq!(t.path(&older.id), [Active, Complete], "never paused");
    assert_eq!(t.path(&newer.id), [Active, Complete]);
    assert!(t.seen[&newer.id].contains(&Ready), "the newer job waited in Ready: {:?}", t.seen[&newer.id]);
    let (o, n) = (h.get(&older.id).await, h.get(&newer.id).await);
    assert!(o.terminated_at < n.terminated_at);
}

/// Two slots, one chunk at a time: chunks are claimed highest priority first, and a priority change counts from
/// the next claim on. A runs first; raised above A while A's first chunk is in flight, B gets every chunk after
/// it until B is done.
#[tokio::test(start_paused = true)]
async fn a_priority_change_takes_effect_at_the_next_claim() {
    let h = Harness::new(EngineConfig { max_active_jobs: 2, ..config() }).await;
    slow(&h.data, TASK);
    let a = h.job("data", "a", 30, 10, false).await;
    let b = h.job("data", "b", 30, 5, false).await;
    h.wait_running(&a.id).await;
    h.wait_status(&b.id, Active).await;
    assert_eq!(h.counts(&b.id).await.leased, 0, "the higher-priority job's chunks come first");
    let mut t = Timeline::default();
    let ids = [a.id.as_str(), b.id.as_str()];
    h.watch(&mut t, &ids, 2, |_| true).await;

    h.service.update_priority(ACCOUNT, &b.id, 20).await.unwrap();
    h.watch(&mut t, &ids, 2, |j| j[1].status == Complete).await;
    let ja = h.get(&a.id).await;
    assert_eq!(ja.succeeded, 10, "A ran only the chunk it held when B was raised");
    h.watch(&mut t, &ids, 2, all(Complete)).await;
    assert_eq!(t.path(&a.id), [Active, Complete], "nobody was paused: both jobs had a slot");
    assert_eq!(t.path(&b.id), [Active, Complete]);
    h.assert_report(&h.get(&a.id).await, &a, true).await;
    h.assert_report(&h.get(&b.id).await, &b, true).await;
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Confirmation and its expiry

/// A job left Suspended fails after `suspended_expiry_days` (30) and not before; a job that was confirmed never
/// returns to Suspended, and sitting Paused (pre-empted) for longer than that does not fail it.
#[tokio::test(start_paused = true)]
async fn unconfirmed_jobs_expire_after_30_days_confirmed_ones_never_return_to_suspended() {
    // Leases longer than the simulated month, so that jumping ahead expires no lease.
    let lease_ms = 60 * 24 * 3600 * 1000;
    let h = Harness::new(EngineConfig { lease_ms, ..config() }).await;
    slow(&h.data, TASK);
    slow(&h.other, 31 * DAY);
    let waiting = h.job("data", "waiting", 10, 1, true).await;
    let s = h.wait_status(&waiting.id, Suspended).await;
    assert!(s.suspended_at.is_some(), "SuspendedDate");
    assert!(s.suspended_cause.as_deref().is_some_and(|c| !c.is_empty()), "SuspendedCause");

    let confirmed = h.job("data", "confirmed", 30, 1, true).await;
    h.wait_status(&confirmed.id, Suspended).await;
    let c = h.service.update_status(ACCOUNT, &confirmed.id, RequestedStatus::Ready, None).await.unwrap();
    assert_ne!(c.status, Suspended);
    let mut t = Timeline::default();
    h.wait_running(&confirmed.id).await;
    h.watch(&mut t, &[confirmed.id.as_str()], 1, |_| true).await;
    // A month-long job of higher priority pre-empts it.
    let long = h.job("other", "long", 10, 9, false).await;
    let ids = [confirmed.id.as_str(), long.id.as_str(), waiting.id.as_str()];
    h.watch(&mut t, &ids, 1, |j| j[0].status == Paused && j[1].status == Active).await;
    // Its tasks must be under way before time jumps, or their month would only start after the jump.
    h.wait_started(&long.id, &h.other, BUCKET + 10 + 10).await;

    let waited = Duration::from_millis((now() - s.suspended_at.unwrap()) as u64);
    tokio::time::advance(30 * DAY - Duration::from_secs(3600) - waited).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // ten ticks
    h.watch(&mut t, &ids, 1, |_| true).await;
    let (w, c) = (h.get(&waiting.id).await, h.get(&confirmed.id).await);
    assert_eq!((w.status, c.status), (Suspended, Paused), "an hour short of 30 days");

    tokio::time::advance(Duration::from_secs(2 * 3600)).await;
    let w = h.wait_status(&waiting.id, Failed).await;
    let codes: Vec<&str> = w.failure_reasons.iter().map(|f| f.failure_code.as_str()).collect();
    assert_eq!(codes, ["ConfirmationExpired"], "{:?}", w.failure_reasons);
    assert!(w.failure_reasons[0].failure_reason.contains("30 days"), "{:?}", w.failure_reasons);
    assert_eq!((w.total_tasks, w.succeeded, w.failed, w.report_key.as_deref()), (Some(10), 0, 0, None));
    assert!(w.terminated_at.is_some());
    assert!(h.report_objects(&w.id).await.is_empty());
    for k in waiting.keys() {
        assert!(!h.tagged("data", k).await, "no task of the expired job ran");
    }
    h.watch(&mut t, &ids, 1, |_| true).await;
    assert_eq!(h.get(&confirmed.id).await.status, Paused, "a Paused job does not expire");

    // The long job ends on day 31; the confirmed one resumes and completes.
    tokio::time::advance(DAY).await;
    h.watch(&mut t, &ids, 1, |j| j[0].status == Complete && j[1].status == Complete).await;
    assert_eq!(t.path(&confirmed.id), [Active, Pausing, Paused, Active, Complete]);
    assert!(!t.seen[&confirmed.id].contains(&Suspended), "{:?}", t.seen[&confirmed.id]);
    let c = h.get(&confirmed.id).await;
    assert!(c.failure_reasons.is_empty());
    h.assert_report(&c, &confirmed, true).await;
}

// ---------------------------------------------------------------------------------------------------------------
// 4. Cancellation in every status

/// New (no engine running yet) and Preparing (the manifest read held up): Cancelling, then Cancelled, nothing run,
/// no report.
#[tokio::test(start_paused = true)]
async fn cancel_while_new_and_while_preparing() {
    let mut h = Harness::new(config()).await;
    h.stop().await;
    let new = h.job("data", "new", 10, 1, false).await;
    assert_eq!(h.get(&new.id).await.status, JobStatus::New);
    assert_eq!(h.cancel(&new.id).await.status, Cancelling);

    h.start(config());
    let c = h.wait_status(&new.id, Cancelled).await;
    assert_eq!((c.total_tasks, c.succeeded, c.failed, c.report_key.as_deref()), (None, 0, 0, None));
    assert_eq!(c.status_update_reason.as_deref(), Some("test"));

    let preparing = h.objects("data", "prep", 10, |_| true).await;
    let (mkey, etag) = h.manifest("data", &preparing).await;
    h.meta.set_faults(Faults {
        latency: Duration::from_secs(60),
        only_ops: vec!["get_object".into()],
        ..Default::default()
    });
    let id = h.create(&mkey, &etag, 1, false).await;
    h.wait_status(&id, JobStatus::Preparing).await;
    assert_eq!(h.cancel(&id).await.status, Cancelling);
    let c = h.wait_status(&id, Cancelled).await;
    assert_eq!((c.total_tasks, c.succeeded, c.failed, c.report_key.as_deref()), (None, 0, 0, None), "{c:?}");
    for id in [&new.id, &id] {
        assert!(h.report_objects(id).await.is_empty());
    }
    assert_eq!(h.data.request_count(), BUCKET + 20, "only the test's puts: no task ran");
}

/// Ready (waiting for the one slot) and Suspended: cancelled at once, nothing run, no report; the running job is
/// not disturbed.
#[tokio::test(start_paused = true)]
async fn cancel_while_ready_and_while_suspended() {
    let h = Harness::new(config()).await;
    slow(&h.data, TASK);
    let running = h.job("data", "run", 30, 9, false).await;
    h.wait_running(&running.id).await;
    let ready = h.job("other", "ready", 10, 1, false).await;
    let suspended = h.job("other", "susp", 10, 1, true).await;
    h.wait_status(&ready.id, Ready).await;
    h.wait_status(&suspended.id, Suspended).await;
    let puts = h.other.request_count();

    for tj in [&ready, &suspended] {
        let r = h.cancel(&tj.id).await;
        assert!(matches!(r.status, Cancelling | Cancelled), "{:?}", r.status);
        let c = h.wait_status(&tj.id, Cancelled).await;
        assert_eq!((c.total_tasks, c.succeeded, c.failed, c.report_key.as_deref()), (Some(10), 0, 0, None));
        assert!(h.report_objects(&tj.id).await.is_empty());
    }
    assert_eq!(h.other.request_count(), puts, "no task of theirs ran");
    let r = h.wait_status(&running.id, Complete).await;
    assert_eq!((r.succeeded, r.failed), (30, 0));
}

/// Active with tasks in flight that then fail transiently: Cancelling until they end, then Cancelled. The failures
/// are not retried (they would be, ten times, were the job not cancelled), no further chunk is claimed, and the
/// report lists exactly the tasks that ran.
#[tokio::test(start_paused = true)]
async fn cancel_while_active_stops_retries_and_reports_what_ran() {
    let h = Harness::new(EngineConfig { max_attempts: 10, ..config() }).await;
    let keys = h.objects("data", "act", 30, |_| true).await;
    h.data.set_faults(Faults {
        latency: TASK,
        error_rate: 1.0,
        error_code: "SlowDown".into(),
        error_status: 503,
        only_ops: vec!["put_object_tagging".into()],
        ..Default::default()
    });
    let job = h.job_over("data", keys, 1, false).await;
    h.wait_started(&job.id, &h.data, BUCKET + 30 + 10).await;
    assert_eq!(h.cancel(&job.id).await.status, Cancelling, "tasks are in flight");
    let c = h.wait_status(&job.id, Cancelled).await;
    h.data.set_faults(Faults::default());

    assert_eq!(h.data.request_count(), BUCKET + 30 + 10, "one attempt for each task of the chunk in flight");
    assert_eq!((c.succeeded, c.failed), (0, 10));
    assert_eq!(c.status_update_reason.as_deref(), Some("test"));
    let rows = h.rows(&c).await;
    let reported: Vec<&str> = rows.failed.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(reported, &job.keys()[..10], "exactly the first chunk");
    for r in &rows.failed {
        assert_eq!((r.http_status.as_str(), r.error_code.as_str()), ("503", "SlowDown"), "{r:?}");
    }
    h.assert_report(&c, &job, false).await;
}

/// Pausing (pre-empted, its chunk in flight) and Paused: the job ends Cancelled with a report of exactly the tasks
/// that ran.
#[tokio::test(start_paused = true)]
async fn cancel_while_pausing_and_while_paused() {
    let h = Harness::new(config()).await;
    slow(&h.data, TASK);
    slow(&h.other, Duration::from_secs(60));
    let first = h.job("data", "first", 30, 1, false).await;
    h.wait_started(&first.id, &h.data, BUCKET + 30 + 10).await;
    let second = h.job("data", "second", 30, 2, false).await;
    h.wait_for(&first.id, "Pausing", |j, c| j.status == Pausing && c.leased == 1).await;
    assert_eq!(h.cancel(&first.id).await.status, Cancelling, "its chunk is in flight");
    let f = h.wait_status(&first.id, Cancelled).await;
    assert_eq!((f.succeeded, f.failed), (10, 0), "the chunk in flight finished; nothing more ran");
    let reported = h.assert_report(&f, &first, false).await;
    assert_eq!(reported, first.keys()[..10].iter().map(|k| k.to_string()).collect());

    h.wait_running(&second.id).await;
    let top = h.job("other", "top", 10, 9, false).await;
    h.wait_status(&second.id, Paused).await;
    let r = h.cancel(&second.id).await;
    assert!(matches!(r.status, Cancelling | Cancelled), "{:?}", r.status);
    let s = h.wait_status(&second.id, Cancelled).await;
    assert_eq!((s.succeeded, s.failed), (10, 0));
    let reported = h.assert_report(&s, &second, false).await;
    assert_eq!(reported, second.keys()[..10].iter().map(|k| k.to_string()).collect());

    let t = h.wait_status(&top.id, Complete).await;
    assert_eq!((t.succeeded, t.failed), (10, 0));
}

/// Cancelling, Completing and the terminal statuses refuse a cancel (JobStatusException) and stay as they are.
#[tokio::test(start_paused = true)]
async fn cancel_is_refused_in_completing_cancelling_and_finished_jobs() {
    let h = Harness::new(config()).await;
    let quick = h.objects("data", "quick", 10, |_| true).await;
    let quick_manifest = h.manifest("data", &quick).await;
    let bad = h.manifest("data", &quick).await;

    // The report upload is held up: the job sits in Completing.
    h.meta.set_faults(Faults {
        latency: Duration::from_secs(60),
        only_ops: vec!["put_object".into()],
        ..Default::default()
    });
    let done = h.create(&quick_manifest.0, &quick_manifest.1, 1, false).await;
    h.wait_status(&done, Completing).await;
    assert_refused(h.service.update_status(ACCOUNT, &done, RequestedStatus::Cancelled, None).await, "Completing");
    assert_eq!(h.get(&done).await.status, Completing);
    let d = h.wait_status(&done, Complete).await;
    assert_eq!(d.succeeded, 10);
    assert_refused(h.service.update_status(ACCOUNT, &done, RequestedStatus::Cancelled, None).await, "Complete");

    slow(&h.data, TASK);
    let slow_job = h.job("data", "slow", 20, 1, false).await;
    h.wait_running(&slow_job.id).await;
    assert_eq!(h.cancel(&slow_job.id).await.status, Cancelling);
    assert_refused(
        h.service.update_status(ACCOUNT, &slow_job.id, RequestedStatus::Cancelled, None).await,
        "Cancelling",
    );
    h.wait_status(&slow_job.id, Cancelled).await;
    assert_refused(h.service.update_status(ACCOUNT, &slow_job.id, RequestedStatus::Cancelled, None).await, "Cancelled");

    // More than half of 1,000 tasks failed: Failing while the report is written.
    let gone: Vec<String> = (0..1000).map(|i| format!("gone-{i:04}")).collect();
    let failing = h.job_over("other", gone, 1, false).await;
    h.wait_status(&failing.id, JobStatus::Failing).await;
    assert_refused(h.service.update_status(ACCOUNT, &failing.id, RequestedStatus::Cancelled, None).await, "Failing");
    let f = h.wait_status(&failing.id, Failed).await;
    assert_eq!((f.succeeded, f.failed), (0, 1000));
    assert_eq!(f.failure_reasons[0].failure_code, "TaskFailureThresholdExceeded");

    let failed = h.create(&bad.0, "0123456789abcdef0123456789abcdef", 1, false).await;
    h.wait_status(&failed, Failed).await;
    assert_refused(h.service.update_status(ACCOUNT, &failed, RequestedStatus::Cancelled, None).await, "Failed");
    assert_eq!(h.get(&failed).await.status, Failed);
}

// ---------------------------------------------------------------------------------------------------------------
// 5. The task-failure threshold

/// At least 1,000 tasks run and more than 50 % failed: Failed, with a FailureReason and the report of the tasks that
/// ran. Exactly 50 % completes, 50.1 % fails, at 1,000 tasks and at 2,000; fewer than 1,000 tasks all failing
/// complete.
#[tokio::test(start_paused = true)]
async fn the_failure_threshold_is_more_than_half_of_at_least_1000_tasks() {
    let h = Harness::new(EngineConfig { max_active_jobs: 5, chunk_size: 1000, concurrency: 64, ..config() }).await;
    let odd = |i: usize| i.is_multiple_of(2); // the odd ones are missing
    let cases: [(&str, usize, Present, JobStatus); 5] = [
        ("t1000-500", 1000, Box::new(odd), Complete),
        ("t1000-501", 1000, Box::new(move |i| odd(i) && i != 0), Failed),
        ("t999-999", 999, Box::new(|_| false), Complete),
        ("t2000-1000", 2000, Box::new(odd), Complete),
        // 500 of the first chunk fail (50 % of the first 1,000), 502 of the second: 1,002 of 2,000.
        ("t2000-1002", 2000, Box::new(move |i| odd(i) && i != 1000 && i != 1002), Failed),
    ];
    let mut jobs = vec![];
    for (prefix, n, present, expected) in &cases {
        let keys = h.objects("data", prefix, *n, present).await;
        let missing = (0..*n).filter(|i| !present(*i)).count();
        jobs.push((h.job_over("data", keys, 1, false).await, *n, missing, *expected));
    }
    for (tj, n, missing, expected) in &jobs {
        let j = h.wait_for(&tj.id, "finished", |j, _| j.status.is_terminal()).await;
        assert_eq!(j.status, *expected, "{}: {missing} of {n} failed: {:?}", tj.keys()[0], j.failure_reasons);
        assert_eq!((j.succeeded + j.failed, j.failed), (*n as i64, *missing as i64), "every task ran");
        if *expected == Failed {
            assert_eq!(j.failure_reasons.len(), 1, "{:?}", j.failure_reasons);
            let f = &j.failure_reasons[0];
            assert_eq!(f.failure_code, "TaskFailureThresholdExceeded");
            assert!(f.failure_reason.contains(&format!("{missing} of {n} tasks failed")), "{}", f.failure_reason);
        } else {
            assert!(j.failure_reasons.is_empty(), "{:?}", j.failure_reasons);
        }
        let rows = h.rows(&j).await; // the report is written either way
        assert!(rows.failed.iter().all(|r| r.error_code == "NoSuchKey"));
        h.assert_report(&j, tj, true).await;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 6. Timers

/// ElapsedTimeInActiveSeconds counts only time in Active: not the Pausing drain, not a minute Paused.
#[tokio::test(start_paused = true)]
async fn elapsed_time_counts_only_time_in_active() {
    let cfg = EngineConfig { chunk_size: 1, concurrency: 1, ..config() };
    let h = Harness::new(cfg).await;
    slow(&h.data, TASK);
    let job = h.job("data", "timed", 4, 1, false).await;
    let a = h.wait_status(&job.id, Active).await;
    let started = now();
    assert_eq!(a.active_seconds(now()), 0);

    // After the first task (10 s Active), pause: the second, in flight, ends while Pausing.
    h.wait_for(&job.id, "one task done", |j, _| j.succeeded == 1).await;
    h.wait_started(&job.id, &h.data, BUCKET + 4 + 2).await; // the second task is in flight
    assert_eq!(h.pause(&job.id, true).await.status, Pausing);
    let p = h.wait_status(&job.id, Paused).await;
    assert_eq!(p.succeeded, 2, "the task in flight finished");
    assert_eq!(p.active_seconds(now()), 10, "{p:?}");
    tokio::time::sleep(Duration::from_secs(60)).await;
    let p = h.get(&job.id).await;
    assert_eq!((p.status, p.active_seconds(now())), (Paused, 10), "a minute Paused adds nothing");

    h.pause(&job.id, false).await;
    let c = h.wait_status(&job.id, Complete).await;
    assert_eq!(c.succeeded, 4);
    assert_eq!(c.active_seconds(now()), 30, "10 s, then 20 s for the last two tasks: {c:?}");
    assert!(now() - started >= 100_000, "it took 100 s of (simulated) time in all");
}

// ---------------------------------------------------------------------------------------------------------------
// 7. The user pause

/// A user pause takes a job out of the ranking (a Ready job at once, an Active one after its chunk in flight), even
/// when it is the top job or already pre-empted; resume puts it back, and it runs again when it ranks in the top.
#[tokio::test(start_paused = true)]
async fn user_pause_and_resume_including_while_outranked() {
    let h = Harness::new(config()).await;
    slow(&h.data, TASK);
    let a = h.job("data", "a", 30, 5, false).await;
    h.wait_running(&a.id).await;
    let b = h.job("data", "b", 30, 1, false).await;
    let d = h.job("data", "d", 10, 3, false).await;
    h.wait_status(&b.id, Ready).await;
    h.wait_status(&d.id, Ready).await;
    let ids = [a.id.as_str(), b.id.as_str(), d.id.as_str()];
    let mut t = Timeline::default();
    h.watch(&mut t, &ids, 1, |_| true).await;

    // A Ready job pauses at once.
    let pd = h.pause(&d.id, true).await;
    assert_eq!((pd.status, pd.user_paused, pd.suspended_cause.as_deref()), (Paused, true, Some(USER_PAUSE_CAUSE)));

    // The top job, paused by its user, finishes its chunk in flight; the slot goes to B (D, though above B, is
    // paused too).
    assert_eq!(h.pause(&a.id, true).await.status, Pausing);
    h.watch(&mut t, &ids, 1, |j| j[0].status == Paused).await;
    let pa = h.get(&a.id).await;
    assert_eq!((pa.succeeded, pa.user_paused, pa.suspended_cause.as_deref()), (10, true, Some(USER_PAUSE_CAUSE)));
    h.wait_running(&b.id).await;
    h.watch(&mut t, &ids, 1, |j| j[1].status == Active).await;
    assert_eq!(h.get(&d.id).await.status, Paused);

    // Resumed, A outranks B again.
    let ra = h.pause(&a.id, false).await;
    assert_eq!((ra.status, ra.user_paused), (Paused, false));
    h.watch(&mut t, &ids, 1, |j| j[1].status == Paused && j[0].status == Active).await;
    assert_eq!(h.get(&b.id).await.succeeded, 10);

    // B, pre-empted, is paused by its user as well: when A is done, neither B nor D moves.
    let pb = h.pause(&b.id, true).await;
    assert_eq!((pb.status, pb.user_paused, pb.suspended_cause.as_deref()), (Paused, true, Some(USER_PAUSE_CAUSE)));
    h.watch(&mut t, &ids, 1, |j| j[0].status == Complete).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    h.watch(&mut t, &ids, 1, |_| true).await;
    assert_eq!((h.get(&b.id).await.status, h.get(&d.id).await.status), (Paused, Paused), "user pauses hold");
    assert_eq!(h.counts(&b.id).await.leased + h.counts(&d.id).await.leased, 0);

    // Refused: resuming a job no user paused, pausing a finished job.
    assert_refused(
        h.service.update_status(ACCOUNT, &a.id, RequestedStatus::Active, None).await,
        "resume a Complete job",
    );
    assert_refused(
        h.service.update_status(ACCOUNT, &a.id, RequestedStatus::Paused, None).await,
        "pause a Complete job",
    );

    // Both resumed: D (priority 3) first, then B.
    // (D first: resumed first, B could start before D's resume and be pre-empted once more.)
    h.pause(&d.id, false).await;
    h.pause(&b.id, false).await;
    h.watch(&mut t, &ids, 1, all(Complete)).await;
    assert_eq!(t.path(&a.id), [Active, Pausing, Paused, Active, Complete]);
    assert_eq!(t.path(&b.id), [Active, Pausing, Paused, Active, Complete]);
    assert_eq!(t.path(&d.id), [Paused, Active, Complete]);
    let (jb, jd) = (h.get(&b.id).await, h.get(&d.id).await);
    assert!(jd.terminated_at < jb.terminated_at);
    for (tj, n) in [(&a, 30), (&b, 30), (&d, 10)] {
        let j = h.get(&tj.id).await;
        assert_eq!((j.succeeded, j.failed), (n, 0));
        h.assert_report(&j, tj, true).await;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 8. A process killed in the middle of a transition

/// Leases of 30 s: a killed engine's chunks and duties are taken over that long after it died.
fn restart_config() -> EngineConfig {
    EngineConfig { lease_ms: 30_000, ..config() }
}

/// Killed while Pausing (its chunk in flight): the next engine waits for the dead lease, then pauses the job, runs
/// the one that pre-empted it, resumes it and runs the lost chunk again; every line is reported once.
#[tokio::test(start_paused = true)]
async fn a_restart_in_the_middle_of_pausing() {
    let mut h = Harness::new(restart_config()).await;
    slow(&h.data, TASK);
    slow(&h.other, TASK);
    let low = h.job("data", "low", 30, 1, false).await;
    h.wait_started(&low.id, &h.data, BUCKET + 30 + 10).await;
    let high = h.job("other", "high", 10, 9, false).await;
    h.wait_for(&low.id, "Pausing", |j, c| j.status == Pausing && c.leased == 1).await;

    h.kill().await;
    let dead = now();
    h.start(restart_config());
    let ids = [low.id.as_str(), high.id.as_str()];
    let mut t = Timeline::default();
    h.watch(&mut t, &ids, 1, |j| j[0].status == Paused).await;
    assert!(now() - dead >= 20_000, "Paused only once the dead worker's lease ran out");
    h.watch(&mut t, &ids, 1, all(Complete)).await;

    assert_eq!(t.path(&low.id), [Pausing, Paused, Active, Complete]);
    let (l, hi) = (h.get(&low.id).await, h.get(&high.id).await);
    assert!(hi.terminated_at < l.terminated_at);
    assert_eq!((l.succeeded, l.failed, hi.succeeded), (30, 0, 10));
    assert_eq!(h.data.request_count(), BUCKET + 30 + 40, "30 puts; the killed chunk ran again: 40 tasks for 30 lines");
    h.assert_report(&l, &low, true).await;
    h.assert_report(&hi, &high, true).await;
}

/// Killed while Cancelling (its second chunk in flight): the next engine finishes the cancel once the dead lease
/// runs out; the report holds the first chunk, whose results were committed, and nothing of the lost one.
#[tokio::test(start_paused = true)]
async fn a_restart_in_the_middle_of_cancelling() {
    let mut h = Harness::new(restart_config()).await;
    slow(&h.data, TASK);
    let job = h.job("data", "c", 30, 1, false).await;
    h.wait_for(&job.id, "past its first chunk", |j, _| j.succeeded == 10).await;
    h.wait_started(&job.id, &h.data, BUCKET + 30 + 20).await; // the second chunk's tasks are in flight
    assert_eq!(h.cancel(&job.id).await.status, Cancelling);

    h.kill().await;
    h.start(restart_config());
    let c = h.wait_status(&job.id, Cancelled).await;
    assert_eq!((c.succeeded, c.failed), (10, 0), "{c:?}");
    let reported = h.assert_report(&c, &job, false).await;
    assert_eq!(reported, job.keys()[..10].iter().map(|k| k.to_string()).collect());
    let chunks = h.counts(&job.id).await;
    assert_eq!((chunks.leased, chunks.expired, chunks.done), (0, 0, 1), "{chunks:?}");
}

/// Killed while Completing (writing the report): the next engine takes the job's duty over once the dead lease
/// runs out and writes the report; every line once.
#[tokio::test(start_paused = true)]
async fn a_restart_in_the_middle_of_completing() {
    let mut h = Harness::new(restart_config()).await;
    let job = h.job("data", "done", 20, 1, false).await;
    h.meta.set_faults(Faults {
        latency: Duration::from_secs(3600),
        only_ops: vec!["put_object".into()],
        ..Default::default()
    });
    h.wait_status(&job.id, Completing).await;
    let first = h.worker_id();
    h.kill().await;
    h.meta.set_faults(Faults::default());
    h.start(restart_config());
    assert_ne!(h.worker_id(), first);

    let c = h.wait_status(&job.id, Complete).await;
    assert_eq!((c.succeeded, c.failed), (20, 0));
    assert!(c.failure_reasons.is_empty());
    h.assert_report(&c, &job, true).await;
}

// ---------------------------------------------------------------------------------------------------------------
// The finish duty: writing the report under a lease

/// A job store that can be frozen: every call waits until it thaws, then goes through (late). An engine on a
/// frozen store is a process cut off from its database (or stopped dead) while its other work goes on.
#[derive(Debug)]
struct Frost(tokio::sync::watch::Sender<bool>);

impl Gate for Frost {
    fn around<'a, T: Send + 'a>(&'a self, call: BoxFuture<'a, T>) -> BoxFuture<'a, T> {
        Box::pin(async move {
            let _ = self.0.subscribe().wait_for(|frozen| !frozen).await;
            call.await
        })
    }
}

/// Give the harness a router whose bucket `reports` is on a store of its own (returned), with `faults`: its request
/// count is then the report's uploads and nothing else. Stops the harness's engine (the next ones use the new
/// router).
async fn own_reports(h: &mut Harness, faults: Faults) -> MemoryStore {
    h.stop().await;
    let reports = MemoryStore::new();
    reports.create_bucket("reports").await.unwrap();
    reports.set_faults(faults);
    let mut router = Router::default();
    router.add("data", vec!["data".into()], Arc::new(h.data.clone()));
    router.add("reports", vec!["reports".into()], Arc::new(reports.clone()));
    router.add("meta", vec!["*".into()], Arc::new(h.meta.clone()));
    h.router = Arc::new(router);
    reports
}

/// Every upload takes `latency`.
fn slow_uploads(latency: Duration) -> Faults {
    Faults { latency, only_ops: vec!["put_object".into()], ..Default::default() }
}

/// Another engine process on `store`.
fn spawn_engine(store: Arc<dyn JobStore>, router: Arc<Router>) -> Running {
    let engine = Engine::new(store, router, restart_config());
    let token = CancellationToken::new();
    let handle = tokio::spawn(engine.clone().run(token.clone()));
    Running { engine, token, handle }
}

/// Every line of `t` is reported once (the report in `reports`), and the counters equal the rows.
async fn assert_reported_once(reports: &MemoryStore, job: &Job, t: &TestJob) {
    let rows = common::report_rows(reports, job).await;
    let mut keys: Vec<&str> = rows.succeeded.iter().chain(&rows.failed).map(|r| r.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, t.keys(), "every line once");
}

/// Uploading the report takes longer than the duty lease lasts (100 s a request, leases of 30 s). The finisher
/// renews its lease while it uploads, so the second engine, ticking all along, never takes the duty over: the
/// report is written once (two uploads, the results and manifest.json). Before the lease was renewed, the second
/// engine took over 30 s in and wrote the report again, while the first went on writing its own.
#[tokio::test(start_paused = true)]
async fn a_report_upload_longer_than_the_lease_is_written_once() {
    let mut h = Harness::new(restart_config()).await;
    let reports = own_reports(&mut h, slow_uploads(Duration::from_secs(100))).await;
    h.start(restart_config());
    let job = h.job("data", "slow-report", 20, 1, false).await;
    h.wait_for(&job.id, "writing its report", |j, _| j.status == Completing && reports.request_count() > BUCKET).await;
    let b = spawn_engine(h.store.clone(), h.router.clone());

    let c = h.wait_status(&job.id, Complete).await;
    assert_eq!(reports.request_count() - BUCKET, 2, "the results and manifest.json, each uploaded once");
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(reports.request_count() - BUCKET, 2, "and nothing more afterwards");
    assert_eq!((c.succeeded, c.failed), (20, 0));
    assert!(c.failure_reasons.is_empty(), "{:?}", c.failure_reasons);
    assert_reported_once(&reports, &c, &job).await;
    b.token.cancel();
    b.handle.await.unwrap();
}

/// The finisher's job store stops answering in the middle of its report upload (100 s a request, leases of 30 s):
/// unable to renew its duty lease, it drops the upload a margin before the lease runs out, so that when a second
/// engine takes the duty over, it writes the report alone. Before, the first went on uploading (and would have
/// finished the job) next to its successor.
#[tokio::test(start_paused = true)]
async fn a_finisher_that_cannot_renew_its_lease_stops_writing() {
    let mut h = Harness::new(restart_config()).await;
    let reports = own_reports(&mut h, slow_uploads(Duration::from_secs(100))).await;
    let cut_off = Arc::new(Wrapped::new(h.store.clone(), Frost(tokio::sync::watch::Sender::new(false))));
    let a = spawn_engine(cut_off.clone(), h.router.clone());
    h.service = JobService::new(h.store.clone(), a.engine.wake.clone(), 90);
    let job = h.job("data", "cut-off", 20, 1, false).await;
    h.wait_for(&job.id, "writing its report", |j, _| j.status == Completing && reports.request_count() > BUCKET).await;
    cut_off.gate.0.send_replace(true);
    let frozen_at = now();
    h.start(restart_config());

    let c = h.wait_status(&job.id, Complete).await;
    assert!(now() - frozen_at >= 20_000, "taken over only once the first finisher's lease ran out");
    assert_eq!(reports.request_count() - BUCKET, 3, "the first finisher's upload, dropped; then the second's two");
    tokio::time::sleep(Duration::from_secs(300)).await;
    cut_off.gate.0.send_replace(false);
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(reports.request_count() - BUCKET, 3, "the first finisher wrote nothing more once it thawed");
    let c2 = h.get(&job.id).await;
    assert_eq!((c2.status, c2.succeeded, c2.failed, &c2.report_key), (Complete, 20, 0, &c.report_key));
    assert_reported_once(&reports, &c2, &job).await;
    a.token.cancel();
    a.handle.await.unwrap();
}

/// Every upload to the report bucket is answered 503 SlowDown, for good. The finisher retries (each upload at
/// once, then the report less and less often) for `report_retry_ms`, then gives up: the job fails with
/// ReportNotWritten naming the error, and is never Complete; its results all stay in the job store. Before, it
/// tried again at every tick, for ever, and the job stayed in Completing.
#[tokio::test(start_paused = true)]
async fn a_report_upload_that_keeps_failing_fails_the_job_after_retrying() {
    let cfg = EngineConfig { report_retry_ms: 120_000, ..config() };
    let mut h = Harness::new(cfg.clone()).await;
    let throttled =
        Faults { error_rate: 1.0, error_code: "SlowDown".into(), error_status: 503, ..slow_uploads(Duration::ZERO) };
    let reports = own_reports(&mut h, throttled).await;
    h.start(cfg.clone());
    let job = h.job("data", "unwritable", 20, 1, false).await;
    h.wait_status(&job.id, Completing).await;
    let since = now();

    let mut t = Timeline::default();
    h.watch(&mut t, &[&job.id], 1, |j| j[0].status.is_terminal()).await;
    let f = h.get(&job.id).await;
    assert_eq!(f.status, Failed, "{:?}", t.seen);
    let waited = now() - since;
    assert!((120_000..200_000).contains(&waited), "gave up after {waited} ms (report_retry_ms 120000)");
    assert_eq!(f.report_key, None);
    assert_eq!(f.failure_reasons.len(), 1, "{:?}", f.failure_reasons);
    let r = &f.failure_reasons[0];
    assert_eq!(r.failure_code, "ReportNotWritten");
    assert!(r.failure_reason.contains("SlowDown (503)") && r.failure_reason.contains("attempts"), "{r:?}");
    let uploads = reports.request_count() - BUCKET;
    let per_attempt = u64::from(cfg.max_attempts);
    assert!(uploads >= 3 * per_attempt, "retried: {uploads} uploads");
    assert!(uploads <= 200 * per_attempt, "not at every tick: {uploads} uploads");
    // Nothing was lost: the results are all still there, and the counters equal them.
    assert_eq!((f.succeeded, f.failed), (20, 0));
    let rows = h.store.chunk_results(&job.id, -1, 100).await.unwrap();
    let lines: usize = rows.iter().map(|c| c.succeeded_rows.iter().filter(|b| **b == b'\n').count()).sum();
    assert_eq!(lines, 20);
}

/// The report bucket fails every upload for a minute, then recovers: the finisher keeps trying, and the job
/// completes with its report (each line once).
#[tokio::test(start_paused = true)]
async fn a_report_upload_that_fails_for_a_while_is_retried_until_written() {
    let cfg = EngineConfig { report_retry_ms: 600_000, ..config() };
    let mut h = Harness::new(cfg.clone()).await;
    let reports = own_reports(&mut h, Faults { reset_rate: 1.0, ..slow_uploads(Duration::ZERO) }).await;
    h.start(cfg);
    let job = h.job("data", "later", 20, 1, false).await;
    h.wait_for(&job.id, "failing to write its report", |j, _| {
        j.status == Completing && reports.request_count() > BUCKET
    })
    .await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(h.get(&job.id).await.status, Completing);
    reports.set_faults(Faults::default());
    let c = h.wait_status(&job.id, Complete).await;
    assert!(c.failure_reasons.is_empty(), "{:?}", c.failure_reasons);
    assert_reported_once(&reports, &c, &job).await;
}

// ---------------------------------------------------------------------------------------------------------------
// Rate limit, through the whole engine

/// A job limited to 20 tasks/s runs 200 ± 10 % tasks in 10 s of simulated time (the storage answers at once, so
/// only the limit holds it back), and a limit raised while it runs applies from the next refresh.
#[tokio::test(start_paused = true)]
async fn a_rate_limited_job_keeps_its_rate_over_ten_simulated_seconds() {
    let h = Harness::new(config()).await;
    let keys = h.objects("data", "r", 1000, |_| true).await;
    let (mkey, etag) = h.manifest("data", &keys).await;
    let id = h.create_with(&mkey, &etag, 1, false, json!({"RateLimit": 20})).await;
    h.wait_for(&id, "running", |j, _| j.status == Active && j.succeeded > 0).await;

    let (start, before) = (tokio::time::Instant::now(), h.data.request_count());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let ran = h.data.request_count() - before;
    assert_eq!(tokio::time::Instant::now() - start, Duration::from_secs(10));
    assert!((180..=220).contains(&ran), "{ran} tasks in 10 simulated seconds at 20 tasks/s");

    // Raised to 100/s: after a refresh (1 s), 3 more seconds run 300 ± 10 % tasks.
    h.service.update_rate_limit(ACCOUNT, &id, Some(100)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = h.data.request_count();
    assert!(before - BUCKET - 1000 < 700, "the job is not near its end yet");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ran = h.data.request_count() - before;
    assert!((270..=330).contains(&ran), "{ran} tasks in 3 simulated seconds at 100 tasks/s");
    let done = h.wait_status(&id, Complete).await;
    assert_eq!((done.succeeded, done.failed), (1000, 0));
}
