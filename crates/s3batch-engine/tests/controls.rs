//! The per-job controls, end to end in the engine: a rate limit changed while the job runs and shared by a fleet,
//! adaptive back-off on `SlowDown`, fair shares between jobs, dry runs, and the impact preview. A SQLite job store
//! in a temporary directory, in-memory object stores (with faults), real engines.
//!
//! Real time (the job store's leases use the wall clock). Every timing assertion bounds the side the control
//! guarantees (never more tasks than the limit allows), with generous room on the other side, so a slow machine
//! cannot fail them. The token bucket's own accuracy (within 10 % over 10 s) is tested with simulated time in
//! `s3batch_engine::control`.

#[allow(dead_code)] // run_job is for the operation tests
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use s3batch_core::{JobSpec, JobStatus, Tag};
use s3batch_engine::service::{JobService, RequestedStatus, ServiceError};
use s3batch_engine::{CancellationToken, Engine, EngineConfig};
use s3batch_storage::memory::{Faults, MemoryStore};
use s3batch_storage::{ObjectRef, ObjectStore, PutBody, PutOptions, Router};
use s3batch_store::sqlite::SqliteStore;
use s3batch_store::{Job, JobStore};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use common::ACCOUNT;

const TIMEOUT: Duration = Duration::from_secs(30);

fn config() -> EngineConfig {
    EngineConfig {
        tick_ms: 20,
        lease_ms: 2000,
        backoff_base_ms: 1,
        backoff_max_ms: 5,
        chunk_size: 10,
        ..Default::default()
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    /// Buckets `data` and `copies`: only tasks touch it, so its request count is the number of task attempts.
    data: MemoryStore,
    /// `manifests` and `reports`.
    meta: MemoryStore,
    engines: Vec<(Arc<Engine>, CancellationToken, JoinHandle<()>)>,
    service: JobService,
}

impl Drop for Harness {
    fn drop(&mut self) {
        for (_, t, _) in &self.engines {
            t.cancel();
        }
    }
}

impl Harness {
    /// `engines` engines (a fleet on one job store) with `cfg`.
    async fn new(cfg: EngineConfig, engines: usize) -> Harness {
        cfg.validate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn JobStore> = Arc::new(SqliteStore::open(&dir.path().join("jobs.db")).await.unwrap());
        let (data, meta) = (MemoryStore::new(), MemoryStore::new());
        for b in ["data", "copies"] {
            data.create_bucket(b).await.unwrap();
        }
        for b in ["manifests", "reports"] {
            meta.create_bucket(b).await.unwrap();
        }
        let mut router = Router::default();
        router.add("data", vec!["data".into(), "copies".into()], Arc::new(data.clone()));
        router.add("meta", vec!["*".into()], Arc::new(meta.clone()));
        let router = Arc::new(router);
        let engines: Vec<_> = (0..engines)
            .map(|_| {
                let e = Engine::new(store.clone(), router.clone(), cfg.clone());
                let t = CancellationToken::new();
                let h = tokio::spawn(e.clone().run(t.clone()));
                (e, t, h)
            })
            .collect();
        let service = JobService::new(store, engines[0].0.wake.clone(), 90).with_storage(router, cfg.concurrency);
        Harness { _dir: dir, data, meta, engines, service }
    }

    fn engine(&self, i: usize) -> &Arc<Engine> {
        &self.engines[i].0
    }

    /// `n` objects `k0…` in `data`, `size` bytes each, tagged `old=1`.
    async fn put_objects(&self, n: usize, size: usize) {
        let opts = PutOptions { tags: vec![Tag::new("old", "1")], ..Default::default() };
        for i in 0..n {
            let body = PutBody::Bytes(Bytes::from(vec![b'x'; size]));
            self.data.put_object("data", &format!("k{i}"), body, &opts).await.unwrap();
        }
    }

    /// A job over the keys `keys` of `data` running `operation`; `extra` members are merged into the spec
    /// (`RateLimit`, `DryRun`, `ConfirmationRequired`).
    async fn create(&self, name: &str, keys: &[String], operation: Value, extra: Value) -> String {
        let mut csv = String::new();
        for k in keys {
            csv.push_str(&format!("data,{k}\n"));
        }
        let body = PutBody::Bytes(csv.into());
        let etag = self.meta.put_object("manifests", name, body, &PutOptions::default()).await.unwrap().etag.unwrap();
        let mut spec = json!({
            "Operation": operation,
            "Manifest": {
                "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                "Location": {"ObjectArn": format!("arn:aws:s3:::manifests/{name}"), "ETag": etag}
            },
            "Report": {"Enabled": true, "Bucket": "arn:aws:s3:::reports", "Format": "Report_CSV_20180820",
                       "ReportScope": "AllTasks", "Prefix": name},
            "Priority": 10,
            "ConfirmationRequired": false,
            "RoleArn": "arn:aws:iam::123456789012:role/batch"
        });
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let spec: JobSpec = serde_json::from_value(spec).expect("a JobSpec");
        self.service.create(ACCOUNT, None, spec).await.expect("created").id
    }

    async fn job(&self, id: &str) -> Job {
        self.service.describe(ACCOUNT, id).await.unwrap()
    }

    async fn wait_for(&self, id: &str, what: &str, done: impl Fn(&Job) -> bool) -> Job {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let j = self.job(id).await;
            if done(&j) {
                return j;
            }
            assert!(Instant::now() < deadline, "job {id}: waited for {what}: {j:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn finished(&self, id: &str) -> Job {
        let j = self.wait_for(id, "the end", |j| j.status.is_terminal()).await;
        assert_eq!(j.status, JobStatus::Complete, "{:?}", j.failure_reasons);
        j
    }
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("k{i}")).collect()
}

fn tagging() -> Value {
    json!({"S3PutObjectTagging": {"TagSet": [{"Key": "done", "Value": "1"}]}})
}

/// Sample `count()` every 20 ms for `span`, and check it never exceeds `allowed(seconds since start)`.
async fn never_above(span: Duration, count: impl Fn() -> u64, allowed: impl Fn(f64) -> f64) {
    let start = Instant::now();
    while start.elapsed() < span {
        let (n, t) = (count(), start.elapsed().as_secs_f64());
        assert!(n as f64 <= allowed(t), "{n} tasks after {t:.2} s; the limit allows {:.0}", allowed(t));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A delete job's keys go out as DeleteObjects requests, and its rate limit counts keys, not requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_of_a_batch_delete_counts_keys() {
    let h = Harness::new(config(), 1).await;
    h.put_objects(300, 8).await;
    let (created, base) = (Instant::now(), h.data.request_count());
    let id = h.create("rld", &keys(300), json!({"S3DeleteObject": {}}), json!({"RateLimit": 100})).await;
    let data = h.data.clone();
    let deleted = move || 300 - data.object_count() as u64;
    // Tokens for a batch are taken before it is sent: at most the limit's worth so far, plus one burst.
    never_above(Duration::from_millis(2000), deleted, |_| 12.0 + 100.0 * created.elapsed().as_secs_f64()).await;
    let j = h.finished(&id).await;
    assert_eq!((j.succeeded, j.failed), (300, 0));
    assert!(created.elapsed() >= Duration::from_millis(2700), "300 keys at 100/s took {:?}", created.elapsed());
    let requests = h.data.request_count() - base;
    assert_eq!(requests, 30, "300 keys in chunks of 10: one request a chunk");
    assert_eq!(h.data.object_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_holds_and_a_new_limit_applies_while_the_job_runs() {
    let h = Harness::new(config(), 1).await;
    h.put_objects(300, 8).await;
    let (created, base) = (Instant::now(), h.data.request_count());
    let id = h.create("rl", &keys(300), tagging(), json!({"RateLimit": 20})).await;
    assert_eq!(h.job(&id).await.rate_limit, Some(20));
    // 20 tasks/s from the moment the job exists (the bucket starts with one token and holds at most two).
    let data = h.data.clone();
    let done = move || data.request_count() - base;
    never_above(Duration::from_millis(2500), done, |_| 3.0 + 20.0 * created.elapsed().as_secs_f64()).await;
    let before = h.data.request_count() - base;
    assert!(before >= 10, "the job runs, if slowly: {before} tasks in 2.5 s");
    assert_eq!(h.engine(0).job_control(&id).map(|c| c.0), Some(Some(20.0)));

    // Raised while running: the rest (about 250 tasks, 12 s more at 20/s) is done in a few seconds.
    let changed = Instant::now();
    assert_eq!(h.service.update_rate_limit(ACCOUNT, &id, Some(500)).await.unwrap().rate_limit, Some(500));
    let j = h.finished(&id).await;
    assert!(changed.elapsed() < Duration::from_secs(8), "took {:?} after the limit was raised", changed.elapsed());
    assert_eq!((j.succeeded, j.failed), (300, 0));
    assert_eq!(h.data.request_count() - base, 300, "one request per task, no retries");

    // A finished job's limit cannot change; bad limits are refused.
    let e = h.service.update_rate_limit(ACCOUNT, &id, Some(5)).await.unwrap_err();
    assert!(matches!(e, ServiceError::WrongStatus { .. }), "{e:?}");
    let other = h.create("rl2", &keys(1), tagging(), json!({"ConfirmationRequired": true})).await;
    for bad in [0, -3, 1_000_001] {
        let e = h.service.update_rate_limit(ACCOUNT, &other, Some(bad)).await.unwrap_err();
        assert!(matches!(e, ServiceError::Invalid(_)), "{bad}: {e:?}");
    }
    assert_eq!(h.service.update_rate_limit(ACCOUNT, &other, Some(3)).await.unwrap().rate_limit, Some(3));
    assert_eq!(h.service.update_rate_limit(ACCOUNT, &other, None).await.unwrap().rate_limit, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lowered_limit_applies_within_about_a_second() {
    // 8 tasks in flight on slow storage (400 tasks/s): the unlimited job is still running when the limit comes.
    let h = Harness::new(EngineConfig { concurrency: 8, ..config() }, 1).await;
    h.put_objects(2000, 8).await;
    h.data.set_faults(Faults { latency: Duration::from_millis(20), ..Default::default() });
    let id = h.create("low", &keys(2000), tagging(), json!({})).await;
    h.wait_for(&id, "a first chunk", |j| j.succeeded > 0).await;
    h.service.update_rate_limit(ACCOUNT, &id, Some(10)).await.unwrap();
    // Within a refresh (1 s) plus the tasks in flight then, the job runs at 10/s.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let at = h.data.request_count();
    let data = h.data.clone();
    never_above(Duration::from_secs(2), || data.request_count() - at, |t| 2.0 + 10.0 * t).await;
    assert_eq!(h.engine(0).job_control(&id).map(|c| c.0), Some(Some(10.0)));
    h.service.update_status(ACCOUNT, &id, RequestedStatus::Cancelled, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_shares_the_job_limit() {
    let cfg = EngineConfig { chunks_in_flight: 2, ..config() };
    let h = Harness::new(cfg, 2).await;
    h.put_objects(600, 8).await;
    let id = h.create("fleet", &keys(600), tagging(), json!({"RateLimit": 40})).await;
    // Both workers hold chunks of the job: each takes half.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let shares: Vec<_> = (0..2).map(|i| h.engine(i).job_control(&id).and_then(|c| c.0)).collect();
        if shares == [Some(20.0), Some(20.0)] {
            break;
        }
        assert!(Instant::now() < deadline, "shares {shares:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Together no faster than the job's limit (unshared it would be 80/s): a worker between two chunks for a
    // moment may leave the other the whole limit until the next refresh, hence the margin.
    let at = h.data.request_count();
    let data = h.data.clone();
    never_above(Duration::from_secs(3), || data.request_count() - at, |t| 10.0 + 1.25 * 40.0 * t).await;
    h.service.update_status(ACCOUNT, &id, RequestedStatus::Cancelled, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowdown_shrinks_the_window_and_successes_grow_it_back() {
    let cfg = EngineConfig {
        concurrency: 16,
        chunks_in_flight: 2,
        chunk_size: 50,
        max_attempts: 100,
        backoff_base_ms: 5,
        backoff_max_ms: 20,
        ..config()
    };
    let h = Harness::new(cfg, 1).await;
    h.put_objects(800, 8).await;
    let slow_down = Faults {
        latency: Duration::from_millis(2),
        error_rate: 1.0,
        error_code: "SlowDown".into(),
        error_status: 503,
        only_ops: vec!["put_object_tagging".into()],
        ..Default::default()
    };
    h.data.set_faults(slow_down);
    let id = h.create("slow", &keys(800), tagging(), json!({})).await;
    // Every answer is SlowDown: the window halves (once per 100 ms) down to one task in flight.
    let deadline = Instant::now() + TIMEOUT;
    while h.engine(0).job_control(&id).is_none_or(|c| c.1 > 1) {
        assert!(Instant::now() < deadline, "window {:?}", h.engine(0).job_control(&id));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The storage recovers: successes open the window again, up to the whole concurrency.
    h.data.set_faults(Faults { latency: Duration::from_millis(2), ..Default::default() });
    let mut widest = 0;
    while widest < 16 {
        let Some((_, w)) = h.engine(0).job_control(&id) else {
            panic!("the job ended before its window was back at 16 (widest {widest})")
        };
        widest = widest.max(w);
        assert!(Instant::now() < deadline, "window {w}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Retries stayed within max_attempts: every task succeeded, each exactly once in the report.
    let j = h.finished(&id).await;
    assert_eq!((j.succeeded, j.failed), (800, 0));
    let rows = common::report_rows(&h.meta, &j).await;
    assert_eq!(rows.succeeded.len(), 800);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_equal_jobs_share_a_worker_evenly() {
    let cfg = EngineConfig { concurrency: 4, chunks_in_flight: 2, ..config() };
    let h = Harness::new(cfg, 1).await;
    h.put_objects(200, 8).await;
    h.data.set_faults(Faults { latency: Duration::from_millis(5), ..Default::default() });
    let confirm = json!({"ConfirmationRequired": true});
    let a = h.create("a", &keys(200), tagging(), confirm.clone()).await;
    let b = h.create("b", &keys(200), tagging(), confirm).await;
    for id in [&a, &b] {
        h.wait_for(id, "Suspended", |j| j.status == JobStatus::Suspended).await;
    }
    for id in [&a, &b] {
        h.service.update_status(ACCOUNT, id, RequestedStatus::Ready, None).await.unwrap();
    }
    // Halfway through the work of both, each has had about half of it.
    let deadline = Instant::now() + TIMEOUT;
    let (ja, jb) = loop {
        let (ja, jb) = (h.job(&a).await, h.job(&b).await);
        if ja.succeeded + jb.succeeded >= 200 {
            break (ja, jb);
        }
        // Without throttling the window stays at the whole concurrency.
        for id in [&a, &b] {
            if let Some((_, w)) = h.engine(0).job_control(id) {
                assert_eq!(w, 4, "no throttling, no back-off");
            }
        }
        assert!(Instant::now() < deadline, "{} + {} done", ja.succeeded, jb.succeeded);
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let (lo, hi) = (ja.succeeded.min(jb.succeeded), ja.succeeded.max(jb.succeeded));
    assert!(lo * 10 >= hi * 6, "uneven shares: {} and {} tasks", ja.succeeded, jb.succeeded);
    for id in [&a, &b] {
        assert_eq!(h.finished(id).await.succeeded, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_changes_nothing_and_reports_what_would_fail() {
    let h = Harness::new(config(), 1).await;
    h.put_objects(10, 100).await;
    let mut manifest = keys(10);
    manifest.extend(["missing-1".to_string(), "missing-2".to_string()]);
    let copy = json!({"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::copies"}});
    let id = h.create("dry-copy", &manifest, copy, json!({"DryRun": true})).await;
    let j = h.finished(&id).await;
    assert!(j.spec.dry_run);
    assert_eq!((j.succeeded, j.failed), (10, 2));
    let rows = common::report_rows(&h.meta, &j).await;
    for r in &rows.succeeded {
        assert_eq!(r.result_message, format!("DryRun: would copy 100 bytes to s3://copies/{}", r.key), "{r:?}");
    }
    for r in &rows.failed {
        assert!(r.key.starts_with("missing-"), "{r:?}");
        assert_eq!((r.http_status.as_str(), r.error_code.as_str()), ("404", "NoSuchKey"));
    }
    // Nothing was copied.
    let listed = h.data.list_objects("copies", "", None, 10).await.unwrap();
    assert!(listed.objects.is_empty(), "{listed:?}");

    // A copy to a bucket that does not exist fails every task as the real run would.
    let nowhere = json!({"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::nowhere"}});
    let id = h.create("dry-nowhere", &keys(3), nowhere, json!({"DryRun": true})).await;
    let j = h.finished(&id).await;
    let rows = common::report_rows(&h.meta, &j).await;
    assert_eq!(rows.failed.len(), 3);
    assert!(rows.failed.iter().all(|r| r.error_code == "NoSuchBucket"), "{:?}", rows.failed);

    // Deletes and tag changes change nothing either.
    let del = json!({"S3DeleteObject": {}});
    let j = h.finished(&h.create("dry-del", &keys(10), del, json!({"DryRun": true})).await).await;
    assert_eq!(j.succeeded, 10);
    let rows = common::report_rows(&h.meta, &j).await;
    assert!(rows.succeeded.iter().all(|r| r.result_message == "DryRun: would delete the object (100 bytes)"));
    let j = h.finished(&h.create("dry-tag", &keys(10), tagging(), json!({"DryRun": true})).await).await;
    assert_eq!(j.succeeded, 10);
    for i in 0..10 {
        let obj = ObjectRef::new("data", format!("k{i}"));
        assert!(h.data.head_object(&obj).await.is_ok(), "k{i} still exists");
        assert_eq!(h.data.get_object_tagging(&obj).await.unwrap(), vec![Tag::new("old", "1")]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_counts_tasks_bytes_requests_and_time() {
    let h = Harness::new(config(), 1).await;
    h.put_objects(36, 1000).await;
    let mut manifest = keys(36);
    manifest.extend((0..4).map(|i| format!("gone-{i}")));
    let copy = json!({"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::copies"}});
    let wait = json!({"ConfirmationRequired": true, "RateLimit": 4});
    let id = h.create("preview", &manifest, copy.clone(), wait).await;
    h.wait_for(&id, "Suspended", |j| j.status == JobStatus::Suspended).await;
    // 40 lines in 4 chunks: the sample is every line, so the figures are exact.
    let p = h.service.preview(ACCOUNT, &id).await.unwrap();
    assert_eq!((p.total_number_of_tasks, p.tasks_done, p.sample_size), (40, 0, 40));
    assert_eq!((p.total_bytes, p.total_bytes_exact), (36_000, true));
    assert_eq!(p.sample_failures.get("NoSuchKey"), Some(&4));
    assert_eq!((p.requests_per_task, p.expected_requests), (1.0, 40));
    // The limit is lower than what the sample's latency allows: 40 tasks at 4/s.
    assert_eq!((p.throughput_basis.as_str(), p.throughput_tasks_per_second), ("rate-limit", 4.0));
    assert_eq!(p.estimated_seconds, 10.0);
    assert_eq!(h.data.list_objects("copies", "", None, 10).await.unwrap().objects.len(), 0, "a preview copies nothing");

    // A large manifest: a bounded sample, extrapolated; with 10 ms a request and nothing run yet, the estimate is
    // the sample's latency over the concurrency (64).
    h.put_objects(500, 1000).await;
    h.data.set_faults(Faults { latency: Duration::from_millis(10), ..Default::default() });
    let id = h.create("preview-big", &keys(500), copy, json!({"ConfirmationRequired": true})).await;
    h.wait_for(&id, "Suspended", |j| j.status == JobStatus::Suspended).await;
    let p = h.service.preview(ACCOUNT, &id).await.unwrap();
    assert_eq!(p.total_number_of_tasks, 500);
    assert!(p.sample_size <= 64 && p.sample_size >= 16, "sample of {}", p.sample_size);
    assert_eq!((p.total_bytes, p.total_bytes_exact), (500_000, false));
    assert_eq!(p.throughput_basis, "sample");
    assert!(p.sample_latency_ms >= 10.0, "{p:?}");
    let want = 500.0 * p.sample_latency_ms / 1000.0 / 64.0;
    assert!((p.estimated_seconds - want).abs() <= want * 0.05 + 0.002, "{p:?}: want about {want} s");
    assert!(p.estimated_seconds >= 500.0 * 0.010 / 64.0, "{p:?}");

    // Not another account's job.
    let e = h.service.preview("210987654321", &id).await.unwrap_err();
    assert!(matches!(e, ServiceError::NoSuchJob(_)), "{e:?}");
}

/// A chunk whose requests have all started makes way: the next one is claimed and read while they run, and its
/// requests wait for room; no more than twice `chunks_in_flight` chunks are held, and every task runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_chunk_is_read_while_the_last_requests_run() {
    // Chunks of 10 tasks, one starting requests at a time, room for 15 requests: the first chunk starts all 10 of
    // its requests, so the second is claimed and starts 5; it waits for room, so no third is claimed.
    let h = Harness::new(EngineConfig { chunks_in_flight: 1, concurrency: 15, ..config() }, 1).await;
    h.put_objects(200, 8).await;
    h.data.set_faults(Faults { latency: Duration::from_millis(100), ..Default::default() });
    let base = h.data.request_count();
    let id = h.create("ahead", &keys(200), tagging(), json!({})).await;
    let mut most = 0;
    let deadline = Instant::now() + TIMEOUT;
    while !h.job(&id).await.status.is_terminal() {
        most = most.max(h.engine(0).chunks_in_flight());
        assert!(Instant::now() < deadline, "the job did not finish");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(most, 2, "chunks held at once");
    let j = h.finished(&id).await;
    assert_eq!((j.succeeded, j.failed), (200, 0));
    assert_eq!(h.data.request_count() - base, 200, "one request per task");
}

/// A job alone on a worker starts each chunk's next request in the place of its own request that ended: the
/// requests in flight reach `concurrency` and never pass it, and every task runs with one request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_alone_keeps_every_request_slot_busy_and_never_more() {
    let h = Harness::new(EngineConfig { concurrency: 8, chunk_size: 50, ..config() }, 1).await;
    h.put_objects(600, 8).await;
    h.data.set_faults(Faults { latency: Duration::from_millis(20), ..Default::default() });
    let base = h.data.request_count();
    let id = h.create("alone", &keys(600), tagging(), json!({})).await;
    let j = h.finished(&id).await;
    assert_eq!((j.succeeded, j.failed), (600, 0));
    assert_eq!(h.data.request_count() - base, 600, "one request per task");
    assert_eq!(h.data.most_in_flight(), 8, "requests in flight at once");
}
