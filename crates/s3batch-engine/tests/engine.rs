//! Component tests of the engine: a SQLite job store in a temporary directory, in-memory object stores (with
//! injected faults), real engines ticking every 20 ms, and jobs created through the [`JobService`].
//!
//! Real time, not paused time: the job store compares leases with wall-clock milliseconds.

mod wrapped;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use s3batch_core::manifest::encode_key;
use s3batch_core::report::{OwnedReportRow, ReportManifest, TaskStatus, parse_rows};
use s3batch_core::{JobSpec, JobStatus, Tag};
use s3batch_engine::service::{JobService, RequestedStatus, ServiceError};
use s3batch_engine::{CancellationToken, Engine, EngineConfig, now};
use s3batch_storage::memory::{Faults, MemoryStore};
use s3batch_storage::{Metadata, ObjectRef, ObjectStore, PutBody, PutOptions, Router, md5_hex};
use s3batch_store::sqlite::SqliteStore;
use s3batch_store::{ChunkCounts, Job, JobStore};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wrapped::{Gate, Wrapped};

const ACCOUNT: &str = "123456789012";
/// Longest a test waits for a job to reach a status.
const TIMEOUT: Duration = Duration::from_secs(20);
const NO_SUCH_KEY: &str = "The specified key does not exist.";
const REPORT_SCHEMA: &str = "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage";

fn config() -> EngineConfig {
    EngineConfig { tick_ms: 20, lease_ms: 2000, backoff_base_ms: 1, backoff_max_ms: 5, ..Default::default() }
}

// ---------------------------------------------------------------------------------------------------------------
// Harness

/// One engine process: its `run` task and the token that stops it.
struct Running {
    engine: Arc<Engine>,
    token: CancellationToken,
    handle: JoinHandle<()>,
}

impl Running {
    fn start(store: Arc<dyn JobStore>, router: Arc<Router>, cfg: EngineConfig) -> Running {
        cfg.validate().expect("a usable engine config");
        let engine = Engine::new(store, router, cfg);
        let token = CancellationToken::new();
        let handle = tokio::spawn(engine.clone().run(token.clone()));
        Running { engine, token, handle }
    }

    /// Graceful shutdown: stop claiming, finish in-flight tasks, release leases.
    async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(TIMEOUT, self.handle).await.expect("the engine stops").expect("the engine ran");
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    store: Arc<dyn JobStore>,
    router: Arc<Router>,
    /// Buckets `data` and `copies`: only tasks touch it, so its request count is the number of task attempts.
    data: MemoryStore,
    /// Every other bucket: `manifests`, `reports`.
    meta: MemoryStore,
    running: Option<Running>,
    service: JobService,
    manifests: AtomicUsize,
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(r) = &self.running {
            r.token.cancel();
        }
    }
}

impl Harness {
    async fn new() -> Harness {
        Harness::with_config(config()).await
    }

    async fn with_config(cfg: EngineConfig) -> Harness {
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
        let running = Running::start(store.clone(), router.clone(), cfg);
        let service = JobService::new(store.clone(), running.engine.wake.clone(), 90);
        Harness {
            _dir: dir,
            store,
            router,
            data,
            meta,
            running: Some(running),
            service,
            manifests: AtomicUsize::new(0),
        }
    }

    /// Start an engine (after [`Harness::stop`]); the service now wakes this one.
    fn start(&mut self, cfg: EngineConfig) {
        assert!(self.running.is_none(), "an engine is already running");
        let running = Running::start(self.store.clone(), self.router.clone(), cfg);
        self.service = JobService::new(self.store.clone(), running.engine.wake.clone(), 90);
        self.running = Some(running);
    }

    async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }

    // --- objects

    /// Objects in `data`, each holding its own key as its body, tagged `old=1`.
    async fn put_objects<S: AsRef<str>>(&self, keys: impl IntoIterator<Item = S>) {
        let opts = PutOptions { tags: vec![Tag::new("old", "1")], ..Default::default() };
        for k in keys {
            let body = PutBody::Bytes(Bytes::copy_from_slice(k.as_ref().as_bytes()));
            self.data.put_object("data", k.as_ref(), body, &opts).await.unwrap();
        }
    }

    async fn tags(&self, bucket: &str, key: &str) -> Vec<Tag> {
        self.data.get_object_tagging(&ObjectRef::new(bucket, key)).await.unwrap()
    }

    async fn get(store: &MemoryStore, bucket: &str, key: &str) -> Bytes {
        let got = store.get_object(&ObjectRef::new(bucket, key), None).await;
        got.unwrap_or_else(|e| panic!("s3://{bucket}/{key}: {e}")).bytes().await.unwrap()
    }

    // --- manifests and jobs

    /// A manifest in `manifests` with these `(bucket, key as written)` lines, CSV-quoted where needed.
    async fn manifest(&self, lines: Vec<(String, String)>) -> Manifest {
        let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
        for (b, k) in &lines {
            w.write_record([b, k]).unwrap();
        }
        let mut m = self.manifest_text(&w.into_inner().unwrap()).await;
        m.lines = lines;
        m
    }

    /// A manifest with exactly this content.
    async fn manifest_text(&self, text: &[u8]) -> Manifest {
        let key = format!("m{}.csv", self.manifests.fetch_add(1, Ordering::Relaxed));
        let body = PutBody::Bytes(Bytes::copy_from_slice(text));
        let w = self.meta.put_object("manifests", &key, body, &PutOptions::default()).await.unwrap();
        Manifest { key, etag: w.etag.expect("an ETag"), lines: vec![] }
    }

    async fn create(&self, spec: Value) -> String {
        let spec: JobSpec = serde_json::from_value(spec).expect("a JobSpec in the AWS JSON shapes");
        self.service.create(ACCOUNT, None, spec).await.expect("the job is created").id
    }

    async fn job(&self, id: &str) -> Job {
        self.service.describe(ACCOUNT, id).await.unwrap()
    }

    /// Poll until `done(job)`; on timeout, panic with the job's state.
    async fn wait_for(&self, id: &str, what: &str, done: impl Fn(&Job) -> bool) -> Job {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let job = self.job(id).await;
            if done(&job) {
                return job;
            }
            if Instant::now() > deadline {
                let chunks = self.store.chunk_counts(id, now()).await.unwrap();
                panic!(
                    "job {id} is not {what} after {TIMEOUT:?}: status {}, total {:?}, succeeded {}, failed {}, \
                     failures {:?}, chunks {chunks:?}",
                    job.status, job.total_tasks, job.succeeded, job.failed, job.failure_reasons
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn wait_status(&self, id: &str, status: JobStatus) -> Job {
        self.wait_for(id, status.as_str(), |j| j.status == status).await
    }

    async fn finished(&self, id: &str) -> Job {
        self.wait_for(id, "finished", |j| j.status.is_terminal()).await
    }

    /// Create, wait until finished, read the report.
    async fn run_job(&self, spec: Value) -> (Job, Report) {
        let id = self.create(spec).await;
        let job = self.finished(&id).await;
        let report = self.report(&job).await;
        (job, report)
    }

    // --- reports

    /// Read the report of `job` and check its layout: `out/job-<id>/manifest.json` in the AWS shape, at most one
    /// results file per status under `out/job-<id>/results/`, each non-empty, with its MD5, holding only its status.
    async fn report(&self, job: &Job) -> Report {
        let prefix = format!("out/job-{}", job.id);
        let manifest_key = format!("{prefix}/manifest.json");
        assert_eq!(job.report_key.as_deref(), Some(manifest_key.as_str()), "the job names its report");
        let json = Harness::get(&self.meta, "reports", &manifest_key).await;
        let raw: Value = serde_json::from_slice(&json).unwrap();
        let names: HashSet<&str> = raw.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(names, HashSet::from(["Format", "ReportCreationDate", "Results", "ReportSchema"]));
        let files: ReportManifest = serde_json::from_value(raw).unwrap();
        assert_eq!(files.format, "Report_CSV_20180820");
        assert_eq!(files.report_schema, REPORT_SCHEMA);
        assert!(s3batch_core::time::parse_iso(&files.report_creation_date).is_some(), "{files:?}");

        let mut report = Report {
            files: files.clone(),
            succeeded: vec![],
            failed: vec![],
            succeeded_csv: String::new(),
            failed_csv: String::new(),
        };
        let mut seen = HashSet::new();
        for f in &files.results {
            assert!(seen.insert(f.task_execution_status), "one results file per status: {files:?}");
            assert_eq!(f.bucket, "reports", "Bucket is the report bucket's name");
            assert!(f.key.starts_with(&format!("{prefix}/results/")) && f.key.ends_with(".csv"), "{}", f.key);
            let csv = Harness::get(&self.meta, "reports", &f.key).await;
            assert_eq!(f.md5_checksum, md5_hex(&csv), "MD5Checksum of {}", f.key);
            let rows = parse_rows(&csv).unwrap();
            assert!(!rows.is_empty(), "{} is listed but empty", f.key);
            for r in &rows {
                assert_eq!(r.status, f.task_execution_status.as_str(), "{r:?} in {}", f.key);
            }
            let text = String::from_utf8(csv.to_vec()).unwrap();
            match f.task_execution_status {
                TaskStatus::Succeeded => (report.succeeded, report.succeeded_csv) = (rows, text),
                TaskStatus::Failed => (report.failed, report.failed_csv) = (rows, text),
            }
        }
        report
    }

    /// Every object under the job's report prefix.
    async fn report_objects(&self, id: &str) -> Vec<String> {
        let page = self.meta.list_objects("reports", &format!("out/job-{id}/"), None, 1000).await.unwrap();
        page.objects.into_iter().map(|o| o.key).collect()
    }

    /// A job that failed while preparing: one FailureReason with `code` (returned: its reason), no task count,
    /// nothing run, no report.
    async fn assert_failed_preparing(&self, id: &str, code: &str) -> String {
        let job = self.finished(id).await;
        assert_eq!(job.status, JobStatus::Failed, "{job:?}");
        assert_eq!(job.failure_reasons.len(), 1, "{:?}", job.failure_reasons);
        assert_eq!(job.failure_reasons[0].failure_code, code, "{:?}", job.failure_reasons);
        assert_eq!(job.total_tasks, None, "TotalNumberOfTasks stays unset");
        assert_eq!((job.succeeded, job.failed), (0, 0));
        assert!(job.terminated_at.is_some());
        assert_eq!(job.report_key, None);
        assert!(self.report_objects(id).await.is_empty(), "no report after failing in Preparing");
        job.failure_reasons[0].failure_reason.clone()
    }
}

/// A manifest object and its lines as `(bucket, key as written)`.
struct Manifest {
    key: String,
    etag: String,
    lines: Vec<(String, String)>,
}

/// A report read back: the parsed manifest.json and each results file, parsed and raw.
#[derive(Debug)]
struct Report {
    files: ReportManifest,
    succeeded: Vec<OwnedReportRow>,
    failed: Vec<OwnedReportRow>,
    succeeded_csv: String,
    failed_csv: String,
}

impl Report {
    fn statuses(&self) -> Vec<TaskStatus> {
        self.files.results.iter().map(|f| f.task_execution_status).collect()
    }
}

/// The counters equal the report's rows, every row is a manifest line, and no line is reported twice; with `all`,
/// every line is reported.
fn assert_reported_once(job: &Job, m: &Manifest, r: &Report, all: bool) {
    assert_eq!(job.succeeded, r.succeeded.len() as i64, "succeeded counter vs report rows");
    assert_eq!(job.failed, r.failed.len() as i64, "failed counter vs report rows");
    let lines: HashSet<(&str, &str)> = m.lines.iter().map(|(b, k)| (b.as_str(), k.as_str())).collect();
    assert_eq!(lines.len(), m.lines.len(), "test manifests have distinct lines");
    let mut seen = HashSet::new();
    for row in r.succeeded.iter().chain(&r.failed) {
        let line = (row.bucket.as_str(), row.key.as_str());
        assert!(lines.contains(&line), "{row:?} is not a manifest line");
        assert!(seen.insert(line), "{line:?} is reported twice");
    }
    if all {
        assert_eq!(seen.len(), lines.len(), "every manifest line is reported");
    }
}

fn assert_succeeded_row(r: &OwnedReportRow) {
    let got = (r.version_id.as_str(), r.status.as_str(), r.http_status.as_str(), r.error_code.as_str());
    assert_eq!(got, ("", "succeeded", "200", ""), "{r:?}");
    assert_eq!(r.result_message, "Successful", "{r:?}");
}

fn assert_failed_row(r: &OwnedReportRow, http: &str, code: &str, message: &str) {
    let got = (r.version_id.as_str(), r.status.as_str(), r.http_status.as_str(), r.error_code.as_str());
    assert_eq!(got, ("", "failed", http, code), "{r:?}");
    assert_eq!(r.result_message, message, "{r:?}");
}

/// A job spec in the AWS JSON shapes: `operation` on the manifest `m` (CSV `Bucket, Key`, ETag checked), report
/// of all tasks to `reports/out`, no confirmation.
fn spec(m: &Manifest, operation: Value) -> Value {
    json!({
        "Operation": operation,
        "Manifest": {
            "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
            "Location": {"ObjectArn": format!("arn:aws:s3:::manifests/{}", m.key), "ETag": m.etag}
        },
        "Report": {"Enabled": true, "Bucket": "arn:aws:s3:::reports", "Format": "Report_CSV_20180820",
                   "ReportScope": "AllTasks", "Prefix": "out"},
        "Priority": 10,
        "ConfirmationRequired": false,
        "RoleArn": "arn:aws:iam::123456789012:role/batch"
    })
}

fn tagging() -> Value {
    json!({"S3PutObjectTagging": {"TagSet": [{"Key": "batch", "Value": "done"}]}})
}

fn done_tag() -> Vec<Tag> {
    vec![Tag::new("batch", "done")]
}

/// Manifest lines in bucket `data`.
fn data_lines<S: Into<String>>(raw_keys: impl IntoIterator<Item = S>) -> Vec<(String, String)> {
    raw_keys.into_iter().map(|k| ("data".to_string(), k.into())).collect()
}

/// Object `i`'s key and that key as a manifest writes it, in a mix of forms: plain; spaces escaped with a literal
/// `+`; fully escaped UTF-8; literal UTF-8; an escaped `%` with a literal comma and quote (CSV-quoted).
fn key_forms(i: usize) -> (String, String) {
    // A manifest key is form-decoded: '%' and '+' are escaped, a space may be "%20" or "+".
    let escape_spaces = |k: &str| k.replace('%', "%25").replace('+', "%2B").replace(' ', "%20");
    match i % 5 {
        0 => (format!("plain/{i}.txt"), format!("plain/{i}.txt")),
        1 => {
            let k = format!("with space/{i} a+b.txt");
            (k.clone(), escape_spaces(&k))
        }
        2 => {
            let k = format!("ünïcødé/{i}/ß €");
            (k.clone(), encode_key(&k))
        }
        3 => (format!("literal/ü-{i}"), format!("literal/ü-{i}")),
        _ => {
            let k = format!("100% sure/{i},\"q\"");
            (k.clone(), escape_spaces(&k))
        }
    }
}

fn tagging_faults(code: &str, status: u16, rate: f64) -> Faults {
    Faults {
        error_rate: rate,
        error_code: code.into(),
        error_status: status,
        only_ops: vec!["put_object_tagging".into()],
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 1. The happy path

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tagging_reports_every_line_once() {
    let h = Harness::new().await;
    let objects: Vec<(String, String)> = (0..2500).map(key_forms).collect();
    h.put_objects(objects.iter().map(|(k, _)| k)).await;
    let mut lines = data_lines(objects.iter().map(|(_, raw)| raw.clone()));
    let missing = ["missing/one", "missing%20two", "missing+three%20%C3%BC"];
    lines.insert(7, ("data".into(), missing[0].into()));
    lines.insert(1500, ("data".into(), missing[1].into()));
    lines.push(("data".into(), missing[2].into()));
    let m = h.manifest(lines).await;

    let (job, report) = h.run_job(spec(&m, tagging())).await;

    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.failure_reasons);
    assert_eq!((job.total_tasks, job.succeeded, job.failed), (Some(2503), 2500, 3));
    assert!(job.failure_reasons.is_empty());
    assert!(job.terminated_at.is_some());
    let chunks = h.store.chunk_counts(&job.id, now()).await.unwrap();
    assert_eq!(chunks, ChunkCounts { done: 3, ..Default::default() }, "2,503 lines in chunks of 1,000");

    assert_eq!(report.statuses(), [TaskStatus::Succeeded, TaskStatus::Failed]);
    assert_reported_once(&job, &m, &report, true);
    for r in &report.succeeded {
        assert_succeeded_row(r);
    }
    for r in &report.failed {
        assert_eq!(r.bucket, "data");
        assert_failed_row(r, "404", "NoSuchKey", NO_SUCH_KEY);
    }
    let failed_keys: HashSet<&str> = report.failed.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(failed_keys, HashSet::from(missing));
    // The exact bytes: keys echoed as the manifest wrote them, HTTP status before the error code.
    assert!(
        report.failed_csv.contains("data,missing%20two,,failed,404,NoSuchKey,The specified key does not exist.\n"),
        "{}",
        report.failed_csv
    );
    assert!(report.succeeded_csv.contains("data,with%20space/1%20a%2Bb.txt,,succeeded,200,,Successful\n"));
    assert!(report.succeeded_csv.contains("data,literal/ü-3,,succeeded,200,,Successful\n"));
    assert!(report.succeeded_csv.contains("data,\"100%25%20sure/4,\"\"q\"\"\",,succeeded,200,,Successful\n"));
    assert!(report.succeeded.iter().any(|r| r.key == encode_key("ünïcødé/2/ß €")));

    for (key, _) in &objects {
        assert_eq!(h.tags("data", key).await, done_tag(), "tags of {key}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Report scope

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_tasks_only_lists_only_failures() {
    let h = Harness::new().await;
    let keys: Vec<String> = (0..20).map(|i| format!("obj-{i}")).collect();
    h.put_objects(&keys).await;
    let mut lines = data_lines(keys.clone());
    lines.extend(data_lines(["gone-1", "gone-2"]));
    let with_failures = h.manifest(lines).await;
    let all_good = h.manifest(data_lines(keys.clone())).await;

    // FailedTasksOnly with failures: only the failed file.
    let mut s = spec(&with_failures, tagging());
    s["Report"]["ReportScope"] = json!("FailedTasksOnly");
    let (job, report) = h.run_job(s).await;
    assert_eq!(job.status, JobStatus::Complete);
    assert_eq!((job.succeeded, job.failed), (20, 2));
    assert_eq!(report.statuses(), [TaskStatus::Failed]);
    assert!(report.succeeded.is_empty());
    let failed: Vec<&str> = report.failed.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(failed, ["gone-1", "gone-2"]);
    for r in &report.failed {
        assert_failed_row(r, "404", "NoSuchKey", NO_SUCH_KEY);
    }

    // AllTasks, every task succeeds: no "failed" entry.
    let (job, report) = h.run_job(spec(&all_good, tagging())).await;
    assert_eq!((job.status, job.succeeded, job.failed), (JobStatus::Complete, 20, 0));
    assert_eq!(report.statuses(), [TaskStatus::Succeeded]);
    assert_reported_once(&job, &all_good, &report, true);

    // FailedTasksOnly, every task succeeds: a report (tasks ran) that lists nothing.
    let mut s = spec(&all_good, tagging());
    s["Report"]["ReportScope"] = json!("FailedTasksOnly");
    let (job, report) = h.run_job(s).await;
    assert_eq!((job.status, job.succeeded, job.failed), (JobStatus::Complete, 20, 0));
    assert!(report.files.results.is_empty(), "{:?}", report.files);
    assert_eq!(h.report_objects(&job.id).await, [format!("out/job-{}/manifest.json", job.id)]);
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Confirmation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmation_required_waits_in_suspended() {
    let h = Harness::new().await;
    let keys: Vec<String> = (0..50).map(|i| format!("c-{i}")).collect();
    h.put_objects(&keys).await;
    let m = h.manifest(data_lines(keys.clone())).await;
    let mut s = spec(&m, tagging());
    s["ConfirmationRequired"] = json!(true);
    let id = h.create(s).await;

    let job = h.wait_status(&id, JobStatus::Suspended).await;
    assert!(job.suspended_at.is_some(), "SuspendedDate is set");
    assert!(job.suspended_cause.as_deref().is_some_and(|c| !c.is_empty()), "SuspendedCause is set");
    assert_eq!(job.total_tasks, Some(50), "prepared before waiting");
    let requests = h.data.request_count();
    tokio::time::sleep(Duration::from_millis(300)).await; // 15 ticks
    let job = h.job(&id).await;
    assert_eq!(job.status, JobStatus::Suspended);
    assert_eq!((job.succeeded, job.failed), (0, 0));
    assert_eq!(h.data.request_count(), requests, "no task runs before confirmation");
    assert_eq!(h.tags("data", "c-0").await, [Tag::new("old", "1")]);

    let confirmed = h.service.update_status(ACCOUNT, &id, RequestedStatus::Ready, Some("go".into())).await.unwrap();
    assert!(!matches!(confirmed.status, JobStatus::Suspended), "{:?}", confirmed.status);
    assert_eq!(confirmed.status_update_reason.as_deref(), Some("go"));
    let job = h.finished(&id).await;
    assert_eq!((job.status, job.succeeded, job.failed), (JobStatus::Complete, 50, 0));
    assert_eq!(job.suspended_at, None, "SuspendedDate is cleared once confirmed");
    for k in &keys {
        assert_eq!(h.tags("data", k).await, done_tag());
    }

    // Confirming a job that is not Suspended.
    let e = h.service.update_status(ACCOUNT, &id, RequestedStatus::Ready, None).await.unwrap_err();
    assert!(matches!(e, ServiceError::WrongStatus { .. }), "{e:?}");
    assert_eq!(h.job(&id).await.status, JobStatus::Complete);
}

// ---------------------------------------------------------------------------------------------------------------
// 4. Faults

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_until_every_task_succeeds() {
    let h = Harness::with_config(EngineConfig { max_attempts: 20, ..config() }).await;
    let keys: Vec<String> = (0..500).map(|i| format!("t-{i}")).collect();
    h.put_objects(&keys).await;
    let m = h.manifest(data_lines(keys.clone())).await;
    let before = h.data.request_count();
    h.data.set_faults(tagging_faults("SlowDown", 503, 0.3));

    let id = h.create(spec(&m, tagging())).await;
    let job = h.finished(&id).await;
    h.data.set_faults(Faults::default());

    assert_eq!((job.status, job.succeeded, job.failed), (JobStatus::Complete, 500, 0), "{:?}", job.failure_reasons);
    let attempts = h.data.request_count() - before;
    assert!(attempts > 600, "about 30% of {attempts} attempts were throttled and retried");
    let report = h.report(&job).await;
    assert_reported_once(&job, &m, &report, true);
    for k in &keys {
        assert_eq!(h.tags("data", k).await, done_tag());
    }
}

/// Resets on every request of every store: task calls, the manifest read, chunk reads and report writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets_are_retried_everywhere() {
    let h = Harness::with_config(EngineConfig { max_attempts: 20, ..config() }).await;
    let keys: Vec<String> = (0..500).map(|i| format!("r-{i}")).collect();
    h.put_objects(&keys).await;
    let m = h.manifest(data_lines(keys.clone())).await;
    let resets = Faults { reset_rate: 0.3, ..Default::default() };
    h.data.set_faults(resets.clone());
    h.meta.set_faults(resets);

    let id = h.create(spec(&m, tagging())).await;
    let job = h.finished(&id).await;
    h.data.set_faults(Faults::default());
    h.meta.set_faults(Faults::default());

    assert_eq!((job.status, job.succeeded, job.failed), (JobStatus::Complete, 500, 0), "{:?}", job.failure_reasons);
    let report = h.report(&job).await;
    assert_reported_once(&job, &m, &report, true);
    for k in &keys {
        assert_eq!(h.tags("data", k).await, done_tag());
    }
}

/// A throttled manifest read is retried, as task calls are, and fails the job only after `max_attempts`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_throttling_is_retried_then_fails_the_job() {
    let h = Harness::with_config(EngineConfig { max_attempts: 5, ..config() }).await;
    let m = h.manifest(data_lines(["a"])).await;
    let before = h.meta.request_count();
    h.meta.set_faults(Faults {
        error_rate: 1.0,
        error_code: "SlowDown".into(),
        error_status: 503,
        only_ops: vec!["get_object".into()],
        ..Default::default()
    });

    let id = h.create(spec(&m, tagging())).await;
    let job = h.finished(&id).await;
    h.meta.set_faults(Faults::default());

    assert_eq!(h.meta.request_count() - before, 5, "the manifest GET is tried max_attempts times");
    let reason = h.assert_failed_preparing(&job.id, "ManifestNotReadable").await;
    assert!(reason.contains("SlowDown (503)"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_are_reported_without_retry() {
    let h = Harness::with_config(EngineConfig { max_attempts: 20, ..config() }).await;
    let keys: Vec<String> = (0..300).map(|i| format!("p-{i}")).collect();
    h.put_objects(&keys).await;
    let m = h.manifest(data_lines(keys.clone())).await;
    let before = h.data.request_count();
    h.data.set_faults(tagging_faults("AccessDenied", 403, 1.0));

    let id = h.create(spec(&m, tagging())).await;
    let job = h.finished(&id).await;
    h.data.set_faults(Faults::default());

    // All failed, but fewer than 1,000 tasks ran: the threshold does not apply.
    assert_eq!((job.status, job.succeeded, job.failed), (JobStatus::Complete, 0, 300), "{:?}", job.failure_reasons);
    assert_eq!(h.data.request_count() - before, 300, "one attempt per task: AccessDenied is not retried");
    let report = h.report(&job).await;
    assert_eq!(report.statuses(), [TaskStatus::Failed]);
    assert_reported_once(&job, &m, &report, true);
    for r in &report.failed {
        assert_failed_row(r, "403", "AccessDenied", "injected fault in put_object_tagging (memory backend)");
    }
    assert_eq!(h.tags("data", "p-0").await, [Tag::new("old", "1")]);
}

// ---------------------------------------------------------------------------------------------------------------
// 5. The task-failure threshold

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_half_failed_of_1000_fails_the_job() {
    let h = Harness::new().await;
    let m = h.manifest(data_lines((0..1200).map(|i| format!("f-{i}")))).await;
    h.data.set_faults(tagging_faults("AccessDenied", 403, 1.0));

    let (job, report) = h.run_job(spec(&m, tagging())).await;

    assert_eq!(job.status, JobStatus::Failed);
    let codes: Vec<&str> = job.failure_reasons.iter().map(|f| f.failure_code.as_str()).collect();
    assert_eq!(codes, ["TaskFailureThresholdExceeded"], "{:?}", job.failure_reasons);
    assert_eq!(job.total_tasks, Some(1200));
    assert_eq!(job.succeeded, 0);
    assert!(job.failed >= 1000, "the threshold applies once 1,000 tasks ran: {}", job.failed);
    assert_reported_once(&job, &m, &report, false);
    for r in &report.failed {
        assert_failed_row(r, "403", "AccessDenied", "injected fault in put_object_tagging (memory backend)");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_half_failed_completes() {
    let h = Harness::new().await;
    let keys: Vec<String> = (0..1000).map(|i| format!("h-{i}")).collect();
    h.put_objects(keys.iter().step_by(2)).await; // the odd ones are missing
    let m = h.manifest(data_lines(keys.clone())).await;

    let (job, report) = h.run_job(spec(&m, tagging())).await;

    assert_eq!(job.status, JobStatus::Complete, "50% is not more than 50%: {:?}", job.failure_reasons);
    assert_eq!((job.total_tasks, job.succeeded, job.failed), (Some(1000), 500, 500));
    assert_reported_once(&job, &m, &report, true);
    assert!(report.failed.iter().all(|r| r.error_code == "NoSuchKey"));
}

// ---------------------------------------------------------------------------------------------------------------
// 6. Manifests that cannot be used

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_manifests_fail_while_preparing() {
    let h = Harness::new().await;
    h.put_objects(["a", "b"]).await;
    let good = h.manifest(data_lines(["a", "b"])).await;

    let mut wrong_etag = spec(&good, tagging());
    wrong_etag["Manifest"]["Location"]["ETag"] = json!("0123456789abcdef0123456789abcdef");
    let wrong_etag = h.create(wrong_etag).await;

    let mut quoted_etag = spec(&good, tagging());
    quoted_etag["Manifest"]["Location"]["ETag"] = json!(format!("\"{}\"", good.etag));
    let quoted_etag = h.create(quoted_etag).await;

    let mut missing = spec(&good, tagging());
    missing["Manifest"]["Location"] = json!({"ObjectArn": "arn:aws:s3:::manifests/nope.csv"});
    let missing = h.create(missing).await;

    let bad_escape = h.manifest_text(b"data,a\ndata,b\ndata,bad%zz\ndata,c\n").await;
    let bad_escape = h.create(spec(&bad_escape, tagging())).await;

    let columns = h.manifest_text(b"data,a\ndata,b,extra\n").await;
    let columns = h.create(spec(&columns, tagging())).await;

    let versions = h.manifest_text(b"data,a,v1\ndata,b,\n").await;
    let mut versions_spec = spec(&versions, tagging());
    versions_spec["Manifest"]["Spec"]["Fields"] = json!(["Bucket", "Key", "VersionId"]);
    let versions = h.create(versions_spec).await;

    let empty = h.manifest_text(b"").await;
    let empty = h.create(spec(&empty, tagging())).await;

    let reason = h.assert_failed_preparing(&wrong_etag, "ManifestETagMismatch").await;
    assert!(reason.contains(&good.etag) && reason.contains("0123456789abcdef0123456789abcdef"), "{reason}");

    let reason = h.assert_failed_preparing(&missing, "ManifestNotReadable").await;
    assert!(reason.contains("NoSuchKey") && reason.contains("manifests/nope.csv"), "{reason}");

    let reason = h.assert_failed_preparing(&bad_escape, "InvalidManifestContent").await;
    assert!(reason.starts_with("line 3"), "{reason}");

    let reason = h.assert_failed_preparing(&columns, "InvalidManifestContent").await;
    assert!(reason.starts_with("line 2") && reason.contains("3 columns"), "{reason}");

    let reason = h.assert_failed_preparing(&versions, "InvalidManifestContent").await;
    assert!(reason.starts_with("line 2") && reason.contains("version"), "{reason}");

    let reason = h.assert_failed_preparing(&empty, "InvalidManifestContent").await;
    assert!(reason.contains("empty"), "{reason}");

    // The correct ETag in quotes, as a console copy-paste gives it, is accepted.
    let job = h.finished(&quoted_etag).await;
    assert_eq!((job.status, job.succeeded, job.failed), (JobStatus::Complete, 2, 0), "{:?}", job.failure_reasons);
    assert_eq!(h.tags("data", "a").await, done_tag());
}

// ---------------------------------------------------------------------------------------------------------------
// 7. Cancellation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_active_reports_only_tasks_that_ran() {
    let h = Harness::new().await;
    let keys: Vec<String> = (0..3000).map(|i| format!("k-{i}")).collect();
    h.put_objects(&keys).await;
    let m = h.manifest(data_lines(keys.clone())).await;
    h.data.set_faults(Faults {
        latency: Duration::from_millis(50),
        only_ops: vec!["put_object_tagging".into()],
        ..Default::default()
    });

    let id = h.create(spec(&m, tagging())).await;
    h.wait_status(&id, JobStatus::Active).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cancelling =
        h.service.update_status(ACCOUNT, &id, RequestedStatus::Cancelled, Some("stop".into())).await.unwrap();
    assert_eq!(cancelling.status, JobStatus::Cancelling, "tasks are in flight");
    let job = h.finished(&id).await;
    h.data.set_faults(Faults::default());

    assert_eq!(job.status, JobStatus::Cancelled, "{:?}", job.failure_reasons);
    assert_eq!(job.status_update_reason.as_deref(), Some("stop"));
    assert_eq!(job.total_tasks, Some(3000));
    let ran = job.succeeded + job.failed;
    assert!(ran > 0 && ran < 3000, "{ran} of 3000 tasks ran before the cancel took effect");
    assert_eq!(job.failed, 0);
    let report = h.report(&job).await;
    assert_reported_once(&job, &m, &report, false);
    // The report lists exactly the tasks that ran.
    let reported: HashSet<&str> = report.succeeded.iter().map(|r| r.key.as_str()).collect();
    for k in &keys {
        let tagged = h.tags("data", k).await == done_tag();
        assert_eq!(tagged, reported.contains(k.as_str()), "{k} is tagged only if it is reported");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_suspended_job_runs_nothing_and_writes_no_report() {
    let h = Harness::new().await;
    h.put_objects(["s-1", "s-2"]).await;
    let m = h.manifest(data_lines(["s-1", "s-2"])).await;
    let mut s = spec(&m, tagging());
    s["ConfirmationRequired"] = json!(true);
    let id = h.create(s).await;
    h.wait_status(&id, JobStatus::Suspended).await;
    let requests = h.data.request_count();

    let r = h.service.update_status(ACCOUNT, &id, RequestedStatus::Cancelled, None).await.unwrap();
    assert!(matches!(r.status, JobStatus::Cancelling | JobStatus::Cancelled), "{:?}", r.status);
    let job = h.finished(&id).await;

    assert_eq!(job.status, JobStatus::Cancelled);
    assert_eq!((job.succeeded, job.failed), (0, 0));
    assert!(job.terminated_at.is_some());
    assert_eq!(job.report_key, None, "no task ran: no report");
    assert!(h.report_objects(&id).await.is_empty());
    assert_eq!(h.data.request_count(), requests, "no task ran");
    assert_eq!(h.tags("data", "s-1").await, [Tag::new("old", "1")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_finished_job_is_refused() {
    let h = Harness::new().await;
    h.put_objects(["x"]).await;
    let m = h.manifest(data_lines(["x"])).await;
    let (job, _) = h.run_job(spec(&m, tagging())).await;
    assert_eq!(job.status, JobStatus::Complete);

    let e = h.service.update_status(ACCOUNT, &job.id, RequestedStatus::Cancelled, None).await.unwrap_err();
    assert!(matches!(e, ServiceError::WrongStatus { .. }), "{e:?}");
    assert_eq!(h.job(&job.id).await.status, JobStatus::Complete);
}

// ---------------------------------------------------------------------------------------------------------------
// 8. The other operations

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_delete_tagging_and_delete() {
    let h = Harness::new().await;
    let objects =
        [("docs/a b.txt", "docs/a%20b.txt"), ("docs/ü+.txt", "docs/%C3%BC%2B.txt"), ("docs/plain", "docs/plain")];
    let source_meta = Metadata {
        content_type: Some("text/plain".into()),
        user: BTreeMap::from([("orig".into(), "1".into())]),
        ..Default::default()
    };
    for (key, _) in objects {
        let opts = PutOptions { metadata: source_meta.clone(), tags: vec![Tag::new("src", "yes")] };
        h.data.put_object("data", key, PutBody::Bytes(Bytes::from(key)), &opts).await.unwrap();
    }
    let sources = h.manifest(data_lines(objects.map(|(_, raw)| raw))).await;
    let head = |bucket: &'static str, key: String| {
        let data = h.data.clone();
        async move { data.head_object(&ObjectRef::new(bucket, key)).await }
    };

    // Copy with new metadata and new tags.
    let copy = json!({"S3PutObjectCopy": {
        "TargetResource": "arn:aws:s3:::copies",
        "TargetKeyPrefix": "new/",
        "MetadataDirective": "REPLACE",
        "NewObjectMetadata": {"ContentType": "application/json", "UserMetadata": {"k": "v"}},
        "NewObjectTagging": [{"Key": "copied", "Value": "yes"}]
    }});
    let (job, report) = h.run_job(spec(&sources, copy)).await;
    assert_eq!((job.status, job.succeeded, job.failed), (JobStatus::Complete, 3, 0), "{report:?}");
    assert_reported_once(&job, &sources, &report, true);
    report.succeeded.iter().for_each(assert_succeeded_row);
    for (key, _) in objects {
        let dest = format!("new/{key}");
        let info = head("copies", dest.clone()).await.unwrap();
        assert_eq!(info.metadata.content_type.as_deref(), Some("application/json"), "{dest}");
        assert_eq!(info.metadata.user, BTreeMap::from([("k".into(), "v".into())]), "{dest}");
        assert_eq!(h.tags("copies", &dest).await, [Tag::new("copied", "yes")]);
        assert_eq!(Harness::get(&h.data, "copies", &dest).await, key.as_bytes());
        assert_eq!(h.tags("data", key).await, [Tag::new("src", "yes")], "the source is untouched");
    }

    // Copy without NewObjectTagging (and the default COPY directive): the source's tags and metadata come along.
    let copy = json!({"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::copies", "TargetKeyPrefix": "same/"}});
    let (job, _) = h.run_job(spec(&sources, copy)).await;
    assert_eq!((job.status, job.succeeded, job.failed), (JobStatus::Complete, 3, 0));
    for (key, _) in objects {
        let dest = format!("same/{key}");
        assert_eq!(head("copies", dest.clone()).await.unwrap().metadata, source_meta, "{dest}");
        assert_eq!(h.tags("copies", &dest).await, [Tag::new("src", "yes")], "{dest}");
    }

    // Delete the sources' tags.
    let (job, _) = h.run_job(spec(&sources, json!({"S3DeleteObjectTagging": {}}))).await;
    assert_eq!((job.status, job.succeeded, job.failed), (JobStatus::Complete, 3, 0));
    for (key, _) in objects {
        assert_eq!(h.tags("data", key).await, Vec::<Tag>::new(), "{key}");
        assert!(head("data", key.to_string()).await.is_ok(), "{key} still exists");
    }

    // Delete the first copies.
    let copies =
        h.manifest(objects.iter().map(|(_, raw)| ("copies".to_string(), format!("new/{raw}"))).collect()).await;
    let (job, report) = h.run_job(spec(&copies, json!({"S3DeleteObject": {}}))).await;
    assert_eq!((job.status, job.succeeded, job.failed), (JobStatus::Complete, 3, 0));
    assert_reported_once(&job, &copies, &report, true);
    for (key, _) in objects {
        let e = head("copies", format!("new/{key}")).await.unwrap_err();
        assert_eq!(e.code, "NoSuchKey", "new/{key} is gone");
        assert!(head("copies", format!("same/{key}")).await.is_ok(), "same/{key} is kept");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 9. A worker that dies holding a lease

/// A job store that can be frozen: every call waits until it thaws, then goes through (late). An engine on a
/// frozen store is a worker that stopped dead while holding leases: no heartbeat, no release, no commit, and its
/// calls arrive after another worker took over.
#[derive(Debug)]
struct Frost(watch::Sender<bool>);

impl Frost {
    fn freeze(&self, frozen: bool) {
        self.0.send_replace(frozen);
    }
}

impl Gate for Frost {
    fn around<'a, T: Send + 'a>(&'a self, call: BoxFuture<'a, T>) -> BoxFuture<'a, T> {
        Box::pin(async move {
            let _ = self.0.subscribe().wait_for(|frozen| !frozen).await;
            call.await
        })
    }
}

type Freezable = Wrapped<Frost>;

/// Worker A, whose job store can be frozen, holding the lease of a chunk it is in the middle of.
struct StalledWorker {
    a: Running,
    store: Arc<Freezable>,
    id: String,
    manifest: Manifest,
    /// Task attempts before the job started.
    requests_before: u64,
}

/// Run a 600-line job on worker A alone (one chunk of 200 lines at a time, about 250 ms each); once A has committed
/// its first chunk, freeze it in the middle of the next one.
async fn stall_a_worker_mid_chunk(h: &mut Harness) -> StalledWorker {
    h.stop().await; // these tests run their own engines
    let keys: Vec<String> = (0..600).map(|i| format!("l-{i}")).collect();
    h.put_objects(&keys).await;
    let manifest = h.manifest(data_lines(keys)).await;
    h.data.set_faults(Faults {
        latency: Duration::from_millis(20),
        only_ops: vec!["put_object_tagging".into()],
        ..Default::default()
    });
    let store = Arc::new(Freezable::new(h.store.clone(), Frost(watch::Sender::new(false))));
    let a_config = EngineConfig { chunk_size: 200, chunks_in_flight: 1, concurrency: 16, ..config() };
    let a = Running::start(store.clone(), h.router.clone(), a_config);
    h.service = JobService::new(h.store.clone(), a.engine.wake.clone(), 90);
    let requests_before = h.data.request_count();
    let id = h.create(spec(&manifest, tagging())).await;

    h.wait_for(&id, "past its first chunk", |j| j.succeeded >= 200).await;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        store.gate.freeze(true);
        if h.store.chunk_counts(&id, now()).await.unwrap().leased == 1 {
            break; // A holds a lease it can neither renew nor release
        }
        store.gate.freeze(false);
        assert!(Instant::now() < deadline, "A never held a chunk");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    StalledWorker { a, store, id, manifest, requests_before }
}

/// Start worker B on the plain store; the service now wakes B.
fn start_b(h: &mut Harness) -> Running {
    let b = Running::start(h.store.clone(), h.router.clone(), config());
    h.service = JobService::new(h.store.clone(), b.engine.wake.clone(), 90);
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_chunk_is_reclaimed_and_reported_once() {
    let mut h = Harness::new().await;
    let w = stall_a_worker_mid_chunk(&mut h).await;

    // Worker B takes over: the pending chunk at once, A's chunk once its lease expires.
    let b = start_b(&mut h);
    let job = h.finished(&w.id).await;
    assert_eq!((job.status, job.total_tasks, job.succeeded, job.failed), (JobStatus::Complete, Some(600), 600, 0));
    assert_eq!(h.data.request_count() - w.requests_before, 800, "A's last chunk ran twice: on A, then on B");

    // A comes back: its late commit and heartbeats must change nothing.
    w.store.gate.freeze(false);
    tokio::time::sleep(Duration::from_millis(500)).await;
    w.a.stop().await;
    b.stop().await;
    h.data.set_faults(Faults::default());
    let job = h.job(&w.id).await;
    assert_eq!((job.status, job.succeeded, job.failed), (JobStatus::Complete, 600, 0), "A's late commit was refused");
    let report = h.report(&job).await;
    assert_reported_once(&job, &w.manifest, &report, true);
    report.succeeded.iter().for_each(assert_succeeded_row);
}

/// A Cancelling or Failing job is finished once no lease is *live*; an expired lease of a stalled worker is not
/// reclaimed (only Active jobs' chunks are claimed). The finisher fences such chunks before it reads the results,
/// so the stalled worker's late commit is refused: the counters equal the report's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_workers_late_commit_after_cancel_is_not_counted() {
    let mut h = Harness::new().await;
    let w = stall_a_worker_mid_chunk(&mut h).await;
    let b = start_b(&mut h);
    h.service.update_status(ACCOUNT, &w.id, RequestedStatus::Cancelled, None).await.unwrap();
    let job = h.finished(&w.id).await;
    assert_eq!(job.status, JobStatus::Cancelled);

    w.store.gate.freeze(false);
    tokio::time::sleep(Duration::from_millis(500)).await;
    w.a.stop().await;
    b.stop().await;
    let job = h.job(&w.id).await;
    let report = h.report(&job).await;
    assert_reported_once(&job, &w.manifest, &report, false);
}

// ---------------------------------------------------------------------------------------------------------------
// 10. Priority

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn higher_priority_runs_first_and_the_other_waits_in_ready() {
    let cfg = EngineConfig { max_active_jobs: 1, concurrency: 8, ..config() };
    let mut h = Harness::with_config(cfg.clone()).await;
    let keys: Vec<String> = (0..200).map(|i| format!("q-{i}")).collect();
    h.put_objects(&keys).await;
    let m = h.manifest(data_lines(keys.clone())).await;
    h.data.set_faults(Faults {
        latency: Duration::from_millis(25),
        only_ops: vec!["put_object_tagging".into()],
        ..Default::default()
    });

    // Both prepared and waiting for confirmation; the low-priority one is older.
    let job_with = |priority: i64| {
        let mut s = spec(&m, tagging());
        s["Priority"] = json!(priority);
        s["ConfirmationRequired"] = json!(true);
        s
    };
    let low = h.create(job_with(1)).await;
    let high = h.create(job_with(50)).await;
    h.wait_status(&low, JobStatus::Suspended).await;
    h.wait_status(&high, JobStatus::Suspended).await;
    // Confirm both with no engine running, so the next engine's first tick sees both Ready.
    h.stop().await;
    for id in [&low, &high] {
        assert_eq!(
            h.service.update_status(ACCOUNT, id, RequestedStatus::Ready, None).await.unwrap().status,
            JobStatus::Ready
        );
    }
    h.start(cfg);

    let mut saw_high_active_low_ready = false;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        // Read the low one first: if it has started, the high one must already be done with its tasks.
        let l = h.job(&low).await;
        let hi = h.job(&high).await;
        if l.status == JobStatus::Complete && hi.status == JobStatus::Complete {
            break;
        }
        let low_started = l.status != JobStatus::Ready || l.succeeded + l.failed > 0;
        if low_started {
            assert!(
                matches!(hi.status, JobStatus::Completing | JobStatus::Complete),
                "the low-priority job is {} ({} run) while the high-priority one is {}",
                l.status,
                l.succeeded + l.failed,
                hi.status
            );
        } else if hi.status == JobStatus::Active {
            saw_high_active_low_ready = true;
        }
        assert!(Instant::now() < deadline, "low {:?}, high {:?}", l.status, hi.status);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(saw_high_active_low_ready, "the high-priority job ran while the other waited in Ready");
    let (l, hi) = (h.job(&low).await, h.job(&high).await);
    assert_eq!((l.succeeded, hi.succeeded), (200, 200));
    assert!(hi.terminated_at <= l.terminated_at);
}

// ---------------------------------------------------------------------------------------------------------------
// 11. Graceful shutdown

/// Shutdown while tasks outlast the grace period: the engine stops soon after it, abandons those tasks, gives their
/// chunks back (released, not left to expire: the lease here is a minute long), gives back the scheduler lease
/// and leaves the list of workers. The next engine runs the chunks at once; every line is reported once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_past_the_grace_period_gives_the_chunks_back() {
    let cfg = EngineConfig { lease_ms: 60_000, shutdown_grace_ms: 200, chunk_size: 50, concurrency: 20, ..config() };
    let mut h = Harness::with_config(cfg.clone()).await;
    let keys: Vec<String> = (0..200).map(|i| format!("g-{i}")).collect();
    h.put_objects(&keys).await;
    let m = h.manifest(data_lines(keys)).await;
    h.data.set_faults(Faults {
        latency: Duration::from_secs(10),
        only_ops: vec!["put_object_tagging".into()],
        ..Default::default()
    });
    let id = h.create(spec(&m, tagging())).await;
    h.wait_status(&id, JobStatus::Active).await;
    let deadline = Instant::now() + TIMEOUT;
    while h.store.chunk_counts(&id, now()).await.unwrap().leased == 0 {
        assert!(Instant::now() < deadline, "no chunk was claimed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let me = h.running.as_ref().unwrap().engine.worker_id.clone();
    let listed = h.store.list_workers().await.unwrap();
    assert_eq!(listed.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(), vec![me.as_str()], "registered");
    assert_eq!(h.store.singleton_owner("scheduler", now()).await.unwrap().as_deref(), Some(me.as_str()));

    let t0 = Instant::now();
    h.stop().await;
    assert!(t0.elapsed() < Duration::from_secs(2), "stopped {:?} after the signal (grace 200 ms)", t0.elapsed());
    let c = h.store.chunk_counts(&id, now()).await.unwrap();
    assert_eq!((c.leased, c.expired, c.done), (0, 0, 0), "every chunk given back: {c:?}");
    assert!(h.store.list_workers().await.unwrap().is_empty(), "a graceful exit leaves the list of workers");
    assert_eq!(h.store.singleton_owner("scheduler", now()).await.unwrap(), None, "the scheduler lease is free");

    h.data.set_faults(Faults::default());
    h.start(cfg);
    let job = h.finished(&id).await;
    assert_eq!((job.status, job.succeeded, job.failed), (JobStatus::Complete, 200, 0));
    let report = h.report(&job).await;
    assert_reported_once(&job, &m, &report, true);
}

/// The service (the console) reads a report through the job's storage and only within the report's own
/// directory: a file elsewhere is refused, and so is a manifest.json rewritten to list one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_is_read_only_within_its_directory() {
    let h = Harness::new().await;
    h.put_objects(["a", "b"]).await;
    let m = h.manifest(data_lines(["a", "b", "gone"])).await;
    let (job, _) = h.run_job(spec(&m, tagging())).await;
    assert_eq!(job.status, JobStatus::Complete);
    let service = h.service.clone().with_storage(h.router.clone(), 8);

    let files = service.report(ACCOUNT, &job.id).await.unwrap().expect("a written report");
    assert!(files.manifest_key.ends_with(&format!("job-{}/manifest.json", job.id)), "{}", files.manifest_key);
    for f in &files.manifest.results {
        assert!(!files.read(&f.bucket, &f.key).await.unwrap().is_empty(), "{}", f.key);
    }
    let e = files.read("data", "a").await.unwrap_err();
    assert!(matches!(e, ServiceError::Invalid(_)), "{e:?}");
    let e = files.read("reports", "out/elsewhere.csv").await.unwrap_err();
    assert!(matches!(e, ServiceError::Invalid(_)), "{e:?}");

    let mut tampered = files.manifest.clone();
    tampered.results[0].bucket = "data".into();
    tampered.results[0].key = "a".into();
    let body = PutBody::Bytes(Bytes::from(serde_json::to_vec(&tampered).unwrap()));
    h.meta.put_object("reports", &files.manifest_key, body, &PutOptions::default()).await.unwrap();
    let e = service.report(ACCOUNT, &job.id).await.unwrap_err();
    assert!(matches!(&e, ServiceError::Internal(m) if m.contains("not in the report's directory")), "{e:?}");
}

/// `engine.max_live_jobs_per_account`: an account with that many unfinished jobs cannot create another until one
/// finishes; other accounts are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_has_at_most_its_cap_of_unfinished_jobs() {
    let mut h = Harness::new().await;
    let wake = h.running.as_ref().unwrap().engine.wake.clone();
    h.service = JobService::new(h.store.clone(), wake, 90).with_max_live_jobs(2);
    h.put_objects(["a"]).await;
    let m = h.manifest(data_lines(["a"])).await;
    let mut s = spec(&m, tagging());
    s["ConfirmationRequired"] = json!(true);
    let first = h.create(s.clone()).await;
    h.create(s.clone()).await;
    let parsed = || serde_json::from_value::<JobSpec>(s.clone()).unwrap();
    let e = h.service.create(ACCOUNT, None, parsed()).await.unwrap_err();
    assert!(matches!(&e, ServiceError::TooManyJobs(m) if m.contains("has 2 unfinished jobs")), "{e:?}");
    h.service.create("210987654321", None, parsed()).await.expect("another account has its own cap");

    h.service.update_status(ACCOUNT, &first, RequestedStatus::Cancelled, None).await.unwrap();
    h.wait_status(&first, JobStatus::Cancelled).await;
    h.service.create(ACCOUNT, None, parsed()).await.expect("a finished job no longer counts");
}

/// A ListJobs page stops reading jobs once their specs pass 8 MiB and hands out a token for the rest: 120 jobs of
/// 100 KiB come in pages of 100 and 20, each job once, not in one page of 12 MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_of_big_jobs_stay_bounded() {
    let h = Harness::new().await;
    h.put_objects(["a"]).await;
    let m = h.manifest(data_lines(["a"])).await;
    let mut s = spec(&m, tagging());
    s["ConfirmationRequired"] = json!(true);
    s["CosRequest"] = json!({"Padding": "x".repeat(100 * 1024)});
    let mut ids = std::collections::BTreeSet::new();
    for _ in 0..120 {
        ids.insert(h.create(s.clone()).await);
    }
    let (first, mut token) = h.service.list(ACCOUNT, vec![], None, None).await.unwrap();
    assert_eq!(first.len(), 100, "the page ends once 8 MiB of specs are read");
    assert!(token.is_some());
    let mut seen: Vec<String> = first.into_iter().map(|j| j.id).collect();
    while let Some(t) = token {
        let (page, next) = h.service.list(ACCOUNT, vec![], Some(&t), None).await.unwrap();
        seen.extend(page.into_iter().map(|j| j.id));
        token = next;
    }
    assert_eq!(seen.len(), 120, "each job once");
    assert_eq!(seen.into_iter().collect::<std::collections::BTreeSet<_>>(), ids);
}

/// The scheduler's tick reads each live job's state, never whole jobs with their specs (up to 256 KiB each, several
/// times a second): a job runs from New to Complete on an engine whose store counts whole-job listings, and there
/// is none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tick_reads_job_states_not_specs() {
    let mut h = Harness::new().await;
    h.stop().await;
    let store = Arc::new(Freezable::new(h.store.clone(), Frost(watch::Sender::new(false))));
    let running = Running::start(store.clone(), h.router.clone(), config());
    h.service = JobService::new(h.store.clone(), running.engine.wake.clone(), 90);
    let keys: Vec<String> = (0..20).map(|i| format!("t-{i}")).collect();
    h.put_objects(&keys).await;
    let m = h.manifest(data_lines(keys)).await;
    let id = h.create(spec(&m, tagging())).await;
    let job = h.finished(&id).await;
    assert_eq!((job.status, job.succeeded), (JobStatus::Complete, 20));
    running.stop().await;
    assert_eq!(store.jobs_in_calls.load(Ordering::Relaxed), 0, "no tick listed whole jobs");
}
