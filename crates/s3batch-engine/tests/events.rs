//! Job events end to end: a real engine on a SQLite job store and in-memory object stores runs a job, and webhook
//! servers started here (axum on 127.0.0.1:0) and an audit log file receive its events — signed, in order, retried
//! — while a webhook that never answers or cannot be reached holds up neither the job nor the other sinks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use s3batch_core::JobStatus;
use s3batch_engine::events::{EventsConfig, SinkStats, WebhookConfig};
use s3batch_engine::service::JobService;
use s3batch_engine::{CancellationToken, Engine, EngineConfig};
use s3batch_storage::memory::MemoryStore;
use s3batch_storage::{ObjectStore, PutBody, PutOptions, Router};
use s3batch_store::Job;
use s3batch_store::sqlite::SqliteStore;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::watch;

mod common;

use common::ACCOUNT;

const TIMEOUT: Duration = Duration::from_secs(30);
const REGION: &str = "eu-west-1";
/// The statuses a job without confirmation goes through, in order: its JobCreated event, then one
/// JobStatusChanged per change.
const PATH: [JobStatus; 6] = [
    JobStatus::New,
    JobStatus::Preparing,
    JobStatus::Ready,
    JobStatus::Active,
    JobStatus::Completing,
    JobStatus::Complete,
];

// ---------------------------------------------------------------------------------------------------------------
// Webhook servers

/// One request a webhook server got.
#[derive(Debug, Clone)]
struct Request {
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone)]
struct HookState {
    /// Answer 500 to the first this many attempts at each event.
    fail_each: usize,
    /// Requests wait until this is true before they are answered (a webhook that hangs).
    open: watch::Receiver<bool>,
    attempts: Arc<Mutex<Vec<Request>>>,
    /// Requests answered 200, in the order answered.
    accepted: Arc<Mutex<Vec<Request>>>,
    tries: Arc<Mutex<HashMap<String, usize>>>,
}

/// A webhook receiver listening on 127.0.0.1.
struct Hook {
    url: String,
    attempts: Arc<Mutex<Vec<Request>>>,
    accepted: Arc<Mutex<Vec<Request>>>,
    open: watch::Sender<bool>,
}

impl Hook {
    /// Answers 200 at once, except 500 to the first `fail_each` attempts at each event.
    async fn start(fail_each: usize) -> Hook {
        Self::start_with(fail_each, true).await
    }

    /// Takes requests and answers none until [`Hook::release`].
    async fn hanging() -> Hook {
        Self::start_with(0, false).await
    }

    async fn start_with(fail_each: usize, open: bool) -> Hook {
        let (open_tx, open_rx) = watch::channel(open);
        let state = HookState {
            fail_each,
            open: open_rx,
            attempts: Arc::default(),
            accepted: Arc::default(),
            tries: Arc::default(),
        };
        let (attempts, accepted) = (state.attempts.clone(), state.accepted.clone());
        let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Hook { url, attempts, accepted, open: open_tx }
    }

    fn release(&self) {
        self.open.send_replace(true);
    }

    fn accepted(&self) -> Vec<Request> {
        self.accepted.lock().unwrap().clone()
    }

    fn attempts(&self) -> Vec<Request> {
        self.attempts.lock().unwrap().clone()
    }
}

async fn receive(State(st): State<HookState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let req = Request { headers, body };
    st.attempts.lock().unwrap().push(req.clone());
    let id = header(&req.headers, "x-s3batch-event-id").to_string();
    let tries = {
        let mut tries = st.tries.lock().unwrap();
        let n = tries.entry(id).or_default();
        *n += 1;
        *n
    };
    if tries <= st.fail_each {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let _ = st.open.clone().wait_for(|open| *open).await;
    st.accepted.lock().unwrap().push(req);
    StatusCode::OK
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).unwrap_or_else(|| panic!("no {name} header")).to_str().unwrap()
}

/// Check a request as a receiver would: the timestamp is recent and the signature is the HMAC-SHA256 of
/// "<timestamp>.<body>" with `secret`. Returns the event.
fn verify(secret: &str, r: &Request) -> Value {
    assert!(signature_ok(secret, r), "the signature does not verify: {:?}", r.headers);
    assert!(!signature_ok("another secret", r), "a signature that any key verifies proves nothing");
    let ts: i64 = header(&r.headers, "x-s3batch-timestamp").parse().unwrap();
    assert!((s3batch_engine::now() / 1000 - ts).abs() < 300, "timestamp {ts} is not now");
    assert_eq!(header(&r.headers, "content-type"), "application/json");
    let event: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(header(&r.headers, "x-s3batch-event-id"), event["eventID"].as_str().unwrap());
    event
}

fn signature_ok(secret: &str, r: &Request) -> bool {
    let ts = header(&r.headers, "x-s3batch-timestamp");
    let Some(sig) = header(&r.headers, "x-s3batch-signature").strip_prefix("sha256=") else { return false };
    let Ok(sig) = hex::decode(sig) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(&r.body);
    mac.verify_slice(&sig).is_ok()
}

/// A URL nothing listens on: connections are refused.
async fn unreachable_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    drop(listener);
    url
}

fn webhook(url: &str, secret: &str) -> WebhookConfig {
    WebhookConfig {
        max_attempts: 5,
        timeout_ms: 5_000,
        backoff_base_ms: 5,
        backoff_max_ms: 20,
        ..WebhookConfig::new(url, secret)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Engine

struct Harness {
    dir: tempfile::TempDir,
    data: MemoryStore,
    meta: MemoryStore,
    engine: Arc<Engine>,
    service: JobService,
    token: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

impl Harness {
    /// An engine delivering events to `webhooks`, and to an audit log in its directory if `audit`.
    async fn new(webhooks: Vec<WebhookConfig>, audit: bool) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let events = EventsConfig {
            audit_log: audit.then(|| Self::audit_path(dir.path())),
            webhooks,
            poll_ms: 20,
            region: Some(REGION.into()),
            ..Default::default()
        };
        let cfg = EngineConfig {
            tick_ms: 20,
            lease_ms: 2000,
            backoff_base_ms: 1,
            backoff_max_ms: 5,
            events,
            ..Default::default()
        };
        cfg.validate().expect("a usable engine config");
        let store = Arc::new(SqliteStore::open(&dir.path().join("jobs.db")).await.unwrap());
        let (data, meta) = (MemoryStore::new(), MemoryStore::new());
        data.create_bucket("data").await.unwrap();
        for b in ["manifests", "reports"] {
            meta.create_bucket(b).await.unwrap();
        }
        let mut router = Router::default();
        router.add("data", vec!["data".into()], Arc::new(data.clone()));
        router.add("meta", vec!["*".into()], Arc::new(meta.clone()));
        let engine = Engine::new(store.clone(), Arc::new(router), cfg);
        let token = CancellationToken::new();
        tokio::spawn(engine.clone().run(token.clone()));
        let service = JobService::new(store, engine.wake.clone(), 90);
        Harness { dir, data, meta, engine, service, token }
    }

    fn audit_path(dir: &Path) -> PathBuf {
        dir.join("audit").join("events.jsonl")
    }

    /// A tagging job over three objects, run until it is Complete.
    async fn run_job(&self) -> Job {
        for k in ["a", "b", "c"] {
            self.data
                .put_object("data", k, PutBody::Bytes(Bytes::from_static(b"x")), &PutOptions::default())
                .await
                .unwrap();
        }
        let op = json!({"S3PutObjectTagging": {"TagSet": [{"Key": "k", "Value": "v"}]}});
        let lines: [&[&str]; 3] = [&["data", "a"], &["data", "b"], &["data", "c"]];
        let (job, rows) = common::run_job(&self.service, &self.meta, "m.csv", op, &lines, TIMEOUT).await;
        assert_eq!(rows.succeeded.len(), 3);
        job
    }

    fn stats(&self, hook_url: &str) -> SinkStats {
        let name = format!("webhook {hook_url}");
        self.engine.event_stats.snapshot().get(&name).copied().unwrap_or_else(|| panic!("no sink {name}"))
    }

    fn audit_lines(&self) -> Vec<Value> {
        let path = Self::audit_path(self.dir.path());
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line {l:?}: {e}"))).collect()
    }
}

/// Wait until `f` holds.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The webhook's accepted events are the job's, in order, each signed and in the AWS shape; returns them.
fn check_events(secret: &str, requests: &[Request], job: &Job) -> Vec<Value> {
    let events: Vec<Value> = requests.iter().map(|r| verify(secret, r)).collect();
    let statuses: Vec<&str> = events.iter().map(|e| e["serviceEventDetails"]["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, PATH.map(|s| s.as_str()), "every status, in order, once");
    let names: Vec<&str> = events.iter().map(|e| e["eventName"].as_str().unwrap()).collect();
    assert_eq!(names[0], "JobCreated");
    assert!(names[1..].iter().all(|n| *n == "JobStatusChanged"), "{names:?}");
    let seqs: Vec<i64> = requests.iter().map(|r| header(&r.headers, "x-s3batch-event-seq").parse().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seqs increase: {seqs:?}");
    for e in &events {
        assert_eq!(e["eventVersion"], "1.05");
        assert_eq!(e["eventSource"], "s3.amazonaws.com");
        assert_eq!(e["eventType"], "AwsServiceEvent");
        assert_eq!(e["awsRegion"], REGION);
        assert_eq!(e["recipientAccountId"], ACCOUNT);
        assert_eq!(e["readOnly"], false);
        let d = &e["serviceEventDetails"];
        assert_eq!(d["jobId"], job.id.as_str());
        assert_eq!(d["jobArn"], format!("arn:aws:s3:{REGION}:{ACCOUNT}:job/{}", job.id));
        assert_eq!(d["failureCodes"], json!([]));
        assert!(d["statusChangeReason"].is_array());
        assert_eq!(d["jobEventId"].as_str().unwrap().len(), 32);
        let t = e["eventTime"].as_str().unwrap();
        assert!(t.ends_with('Z') && t.len() == 20, "eventTime {t} in CloudTrail's form");
    }
    events
}

// ---------------------------------------------------------------------------------------------------------------
// Tests

/// The test: a webhook receives the job's events, signed and in order; a webhook that answers 500 twice
/// to every event gets them all on retry, still in order; the audit log has a line for each, with the same event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_receives_signed_events_in_order() {
    let good = Hook::start(0).await;
    let flaky = Hook::start(2).await;
    let hooks = vec![webhook(&good.url, "good secret"), webhook(&flaky.url, "flaky secret")];
    let h = Harness::new(hooks, true).await;
    let job = h.run_job().await;

    until("the good webhook has every event", || good.accepted().len() >= PATH.len()).await;
    until("the flaky webhook has every event", || flaky.accepted().len() >= PATH.len()).await;
    until("the audit log has every event", || h.audit_lines().len() >= PATH.len()).await;
    tokio::time::sleep(Duration::from_millis(200)).await; // anything extra (a duplicate) would arrive by now

    let got = check_events("good secret", &good.accepted(), &job);
    assert_eq!(good.attempts().len(), PATH.len(), "one attempt each");
    let flaky_events = check_events("flaky secret", &flaky.accepted(), &job);
    assert_eq!(flaky.attempts().len(), 3 * PATH.len(), "two 500s, then 200, for every event");
    // The flaky webhook got the same events (same ids), signed with its own secret.
    let ids = |evs: &[Value]| evs.iter().map(|e| e["eventID"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&got), ids(&flaky_events));
    assert_eq!(h.stats(&good.url), SinkStats { delivered: 6, failed_attempts: 0, given_up: 0 });
    assert_eq!(h.stats(&flaky.url), SinkStats { delivered: 6, failed_attempts: 12, given_up: 0 });

    // The audit log: one line per event, with who, what and when, and the very event the webhooks got.
    let lines = h.audit_lines();
    assert_eq!(lines.len(), PATH.len());
    for (i, (line, event)) in lines.iter().zip(&got).enumerate() {
        assert_eq!(line["account"], ACCOUNT);
        assert_eq!(line["job"], job.id.as_str());
        assert_eq!(line["to"], PATH[i].as_str());
        let from = if i == 0 { Value::Null } else { json!(PATH[i - 1].as_str()) };
        assert_eq!(line["from"], from, "line {i}");
        assert!(line.get("reason").is_some(), "line {i} has a reason field");
        let t = s3batch_core::time::parse_iso(line["time"].as_str().unwrap()).expect("an ISO time");
        assert!(t >= job.created_at && t <= job.terminated_at.unwrap(), "line {i}: time {t}");
        assert_eq!(&line["event"], event, "line {i}: the same event as the webhook's");
    }
    assert_eq!(h.engine.event_stats.snapshot()["audit_log"].delivered, 6);
}

/// A webhook that never answers and one nothing listens on: the job completes all the same while the first has
/// not taken a single event, the good webhook and the audit log get everything meanwhile, the unreachable one's
/// events are given up after its attempts (and counted), and the hanging one, once it answers, gets them all in
/// order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_webhook_holds_up_nothing() {
    let good = Hook::start(0).await;
    let hanging = Hook::hanging().await;
    let unreachable = unreachable_url().await;
    let hooks = vec![
        webhook(&hanging.url, "s1"),
        WebhookConfig { max_attempts: 3, ..webhook(&unreachable, "s2") },
        webhook(&good.url, "s3"),
    ];
    let h = Harness::new(hooks, true).await;
    let job = h.run_job().await;
    assert_eq!(job.status, JobStatus::Complete);
    assert!(hanging.accepted().is_empty(), "the hanging webhook answered nothing, and the job is done");
    assert!(hanging.attempts().len() <= 1, "it holds the first event; the rest wait behind it");

    until("the good webhook has every event", || good.accepted().len() >= PATH.len()).await;
    until("the audit log has every event", || h.audit_lines().len() >= PATH.len()).await;
    check_events("s3", &good.accepted(), &job);
    assert!(hanging.accepted().is_empty());
    until("the unreachable webhook's events are given up", || h.stats(&unreachable).given_up == PATH.len() as u64)
        .await;
    let s = h.stats(&unreachable);
    assert_eq!(s, SinkStats { delivered: 0, failed_attempts: 3 * PATH.len() as u64, given_up: PATH.len() as u64 });

    hanging.release();
    until("the hanging webhook, answering now, has every event", || hanging.accepted().len() >= PATH.len()).await;
    check_events("s1", &hanging.accepted(), &job);
    assert_eq!(h.stats(&good.url).given_up, 0);
}

/// Two engines on one job store (a fleet): only the holder of the events lease delivers, so each event reaches
/// the webhook once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_delivers_each_event_once() {
    let hook = Hook::start(0).await;
    let h = Harness::new(vec![webhook(&hook.url, "fleet")], false).await;
    // A second engine on the same database file, with the same webhook.
    let store = Arc::new(SqliteStore::open(&h.dir.path().join("jobs.db")).await.unwrap());
    let mut router = Router::default();
    router.add("data", vec!["data".into()], Arc::new(h.data.clone()));
    router.add("meta", vec!["*".into()], Arc::new(h.meta.clone()));
    let second = Engine::new(store, Arc::new(router), h.engine.config.clone());
    let token = h.token.child_token();
    tokio::spawn(second.clone().run(token));

    let job = h.run_job().await;
    until("the webhook has every event", || hook.accepted().len() >= PATH.len()).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // a second delivery would arrive by now
    check_events("fleet", &hook.accepted(), &job);
    assert_eq!(hook.attempts().len(), PATH.len());
    let delivered = |e: &Engine| e.event_stats.snapshot().values().map(|s| s.delivered).sum::<u64>();
    assert_eq!(delivered(&h.engine) + delivered(&second), PATH.len() as u64);
}

/// Events are in the job store, not in a process: a job run by an engine with no sink at all, then an engine
/// started later on the same database with a webhook — the webhook gets the whole job's events, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_outlive_the_process_that_recorded_them() {
    let h = Harness::new(vec![], false).await;
    let job = h.run_job().await;
    h.token.cancel();

    let hook = Hook::start(0).await;
    let store = Arc::new(SqliteStore::open(&h.dir.path().join("jobs.db")).await.unwrap());
    let cfg = EngineConfig {
        events: EventsConfig { webhooks: vec![webhook(&hook.url, "later")], ..h.engine.config.events.clone() },
        ..h.engine.config.clone()
    };
    let later = Engine::new(store, Arc::new(Router::default()), cfg);
    let token = CancellationToken::new();
    let running = tokio::spawn(later.clone().run(token.clone()));
    until("the later webhook has every event", || hook.accepted().len() >= PATH.len()).await;
    check_events("later", &hook.accepted(), &job);
    token.cancel();
    tokio::time::timeout(TIMEOUT, running).await.expect("the engine stops").unwrap();
}
