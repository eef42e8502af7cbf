//! Job events: every job creation and status change, delivered to the audit log and to webhooks.
//!
//! The store records an event ([`JobEventRecord`]) in the transaction of each change (an outbox), numbered in
//! commit order; nothing here is on a job's path, so a job never waits for a delivery. The dispatcher runs in every
//! engine, but only the holder of the [`EVENTS_LEASE`] singleton delivers, so a fleet delivers each event once per
//! sink (at least once: a crash between a delivery and the cursor update repeats it). Each sink — the audit log,
//! each webhook — has its own cursor in the store and its own task, and goes through the events in order:
//!
//! - the **audit log** appends a batch of JSON lines (time, account, job, from, to, reason, and the AWS-shaped
//!   event) and fsyncs it before its cursor moves; a write that fails is retried (with backoff) until it works;
//! - a **webhook** gets one HTTP POST per event: the body is the event in the shape AWS CloudTrail gives S3 Batch
//!   Operations events ([`aws_event`]), signed with HMAC-SHA256 over `"<timestamp>.<body>"` ([`sign`]). An answer
//!   other than 2xx, a timeout or a refused connection is retried with exponential backoff and full jitter, up to
//!   the webhook's `max_attempts`; then the event is given up for that webhook (logged, counted in
//!   [`EventStats`]) and the next one goes. A broken webhook holds up only itself.
//!
//! Events every sink has are pruned once they are `retention_hours` old.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::SecondsFormat;
use hmac::{Hmac, Mac};
use s3batch_core::time::{format_iso, to_datetime};
use s3batch_store::{JobEventRecord, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::retry::backoff;
use crate::{Engine, now};

/// The singleton lease held by the one process of a fleet that delivers events.
pub const EVENTS_LEASE: &str = "events";
/// The event's id (CloudTrail's `eventID`): the same on every delivery of one event.
pub const EVENT_ID_HEADER: &str = "x-s3batch-event-id";
/// The event's sequence number: increasing, in the order events happened.
pub const EVENT_SEQ_HEADER: &str = "x-s3batch-event-seq";
/// Unix seconds when this attempt was signed.
pub const TIMESTAMP_HEADER: &str = "x-s3batch-timestamp";
/// `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the webhook's secret>`.
pub const SIGNATURE_HEADER: &str = "x-s3batch-signature";
/// The region in events when none is configured.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Events read per batch.
const BATCH: i64 = 100;
/// How often the lease holder prunes delivered events.
const PRUNE_EVERY_MS: i64 = 60_000;
const HOUR_MS: i64 = 3600 * 1000;

/// `[engine.events]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Append every event to this file, one JSON object a line (created if missing). Default: none.
    pub audit_log: Option<PathBuf>,
    /// Where events are POSTed (`[[engine.events.webhooks]]`). Default: none.
    pub webhooks: Vec<WebhookConfig>,
    /// `awsRegion` and the region in `jobArn`. Default: the server's `region` (`s3batch serve`), else `us-east-1`.
    pub region: Option<String>,
    /// How often the sinks look for events recorded by other processes, in milliseconds (this process's own
    /// changes wake them at once). Default: 500.
    pub poll_ms: u64,
    /// Events every sink has are kept this long, then pruned, in hours. Default: 24.
    pub retention_hours: i64,
    /// Per-task audit events, one CloudTrail-shaped JSON line per task ([`crate::data_events`]). Default: off.
    pub data_events: bool,
    /// Where they go. Default: `data-events.jsonl` in the server's data dir.
    pub data_events_log: Option<PathBuf>,
    /// Lines that may wait for the disk; beyond that, events are dropped and counted, never the job slowed.
    /// Default: 65536.
    pub data_events_buffer: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            audit_log: None,
            webhooks: Vec::new(),
            region: None,
            poll_ms: 500,
            retention_hours: 24,
            data_events: false,
            data_events_log: None,
            data_events_buffer: 65_536,
        }
    }
}

/// One `[[engine.events.webhooks]]` entry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where each event is POSTed: an `http://` URL.
    pub url: String,
    /// The HMAC-SHA256 key of the `X-S3Batch-Signature` header; the receiver checks signatures with it.
    pub secret: String,
    /// Attempts per event before it is given up for this webhook. Default: 8.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Longest wait for an answer, in milliseconds. Default: 10000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// First retry delay in milliseconds; doubles each attempt, with full jitter. Default: 500.
    #[serde(default = "default_backoff_base_ms")]
    pub backoff_base_ms: u64,
    /// Longest retry delay in milliseconds. Default: 60000.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
}

fn default_max_attempts() -> u32 {
    8
}
fn default_timeout_ms() -> u64 {
    10_000
}
fn default_backoff_base_ms() -> u64 {
    500
}
fn default_backoff_max_ms() -> u64 {
    60_000
}

impl WebhookConfig {
    /// A webhook at `url` signing with `secret`, with the default attempts, timeout and backoff.
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> Self {
        WebhookConfig {
            url: url.into(),
            secret: secret.into(),
            max_attempts: default_max_attempts(),
            timeout_ms: default_timeout_ms(),
            backoff_base_ms: default_backoff_base_ms(),
            backoff_max_ms: default_backoff_max_ms(),
        }
    }

    /// The URL as logs and [`EventStats`] show it: without credentials or query (either may carry a secret).
    pub fn display_url(&self) -> String {
        match reqwest::Url::parse(&self.url) {
            Ok(mut u) => {
                let _ = u.set_username("");
                let _ = u.set_password(None);
                u.set_query(None);
                u.set_fragment(None);
                u.to_string()
            }
            Err(_) => "(invalid URL)".into(),
        }
    }

    /// The name of this webhook's cursor in the store: a digest of the URL (which may carry a token).
    fn cursor_name(&self) -> String {
        format!("webhook:{}", &hex::encode(Sha256::digest(self.url.as_bytes()))[..16])
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.display_url())
            .field("secret", &"<redacted>")
            .field("max_attempts", &self.max_attempts)
            .field("timeout_ms", &self.timeout_ms)
            .field("backoff_base_ms", &self.backoff_base_ms)
            .field("backoff_max_ms", &self.backoff_max_ms)
            .finish()
    }
}

impl EventsConfig {
    /// Settings that cannot work, named by their path in the config file.
    pub fn validate(&self) -> Result<(), String> {
        if self.poll_ms == 0 {
            return Err("engine.events.poll_ms must be at least 1, got 0".into());
        }
        if self.retention_hours <= 0 {
            return Err(format!("engine.events.retention_hours must be at least 1, got {}", self.retention_hours));
        }
        if self.audit_log.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err("engine.events.audit_log is empty: give a file path, or leave it out".into());
        }
        if self.region.as_ref().is_some_and(|r| r.trim().is_empty()) {
            return Err("engine.events.region is empty: give a region, or leave it out".into());
        }
        let mut seen = HashSet::new();
        for (i, w) in self.webhooks.iter().enumerate() {
            let at = format!("engine.events.webhooks[{i}]");
            let url = reqwest::Url::parse(&w.url).map_err(|e| format!("{at}.url '{}' is not a URL: {e}", w.url))?;
            match url.scheme() {
                "http" => {}
                "https" => {
                    return Err(format!(
                        "{at}.url '{}': https is not supported by this build (its HTTP client has no TLS); use an \
                         http:// URL, e.g. a TLS-terminating proxy on the same host",
                        w.display_url()
                    ));
                }
                other => return Err(format!("{at}.url '{}' must be an http:// URL, not {other}:", w.display_url())),
            }
            if url.host_str().is_none_or(str::is_empty) {
                return Err(format!("{at}.url '{}' has no host", w.display_url()));
            }
            if w.secret.trim().is_empty() {
                return Err(format!(
                    "{at}.secret is empty: set the key the receiver checks the X-S3Batch-Signature header with"
                ));
            }
            if w.max_attempts == 0 {
                return Err(format!("{at}.max_attempts must be at least 1, got 0"));
            }
            if w.timeout_ms == 0 {
                return Err(format!("{at}.timeout_ms must be at least 1, got 0"));
            }
            if !seen.insert(w.url.as_str()) {
                return Err(format!("{at}.url '{}' is listed twice", w.display_url()));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The event, as AWS writes it

/// The event in the shape AWS CloudTrail records S3 Batch Operations' `JobCreated` and `JobStatusChanged` service
/// events (and EventBridge rules match): the job is in `serviceEventDetails`.
pub fn aws_event(e: &JobEventRecord, region: &str) -> Value {
    json!({
        "eventVersion": "1.05",
        "userIdentity": {"accountId": e.account_id, "invokedBy": "s3.amazonaws.com"},
        "eventTime": to_datetime(e.time).to_rfc3339_opts(SecondsFormat::Secs, true),
        "eventSource": "s3.amazonaws.com",
        "eventName": e.name,
        "awsRegion": region,
        "sourceIPAddress": "s3.amazonaws.com",
        "userAgent": "s3.amazonaws.com",
        "requestParameters": null,
        "responseElements": null,
        "eventID": e.event_id,
        "readOnly": false,
        "eventType": "AwsServiceEvent",
        "recipientAccountId": e.account_id,
        "serviceEventDetails": {
            "jobId": e.job_id,
            "jobArn": format!("arn:aws:s3:{region}:{}:job/{}", e.account_id, e.job_id),
            "status": e.to.as_str(),
            "jobEventId": e.job_event_id,
            "failureCodes": e.failure_codes,
            "statusChangeReason": e.reason.iter().collect::<Vec<_>>(),
        },
    })
}

/// One line of the audit log: who, what, when, and the AWS-shaped event.
pub fn audit_line(e: &JobEventRecord, region: &str) -> Value {
    json!({
        "time": format_iso(e.time),
        "seq": e.seq,
        "account": e.account_id,
        "job": e.job_id,
        "from": e.from.map(|s| s.as_str()),
        "to": e.to.as_str(),
        "reason": e.reason,
        "failureCodes": e.failure_codes,
        "event": aws_event(e, region),
    })
}

/// The `X-S3Batch-Signature` value: `sha256=` and the hex HMAC-SHA256, keyed with `secret`, of
/// `"<timestamp>.<body>"`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

// ---------------------------------------------------------------------------------------------------------------
// Counters

/// What one sink did, since this process started.
#[derive(Debug, Default)]
struct SinkCounters {
    delivered: AtomicU64,
    failed_attempts: AtomicU64,
    given_up: AtomicU64,
}

/// A sink's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Events the sink has (audit lines written and synced, webhook answers 2xx).
    pub delivered: u64,
    /// Webhook attempts that failed (non-2xx, timeout, connection error) or audit batches that could not be written.
    pub failed_attempts: u64,
    /// Events a webhook never took within `max_attempts`, skipped for it.
    pub given_up: u64,
}

/// Delivery counters of this process's sinks, by sink name (`audit_log` and `webhook <url>`).
#[derive(Debug, Default)]
pub struct EventStats {
    sinks: Mutex<BTreeMap<String, Arc<SinkCounters>>>,
}

impl EventStats {
    fn sink(&self, name: &str) -> Arc<SinkCounters> {
        self.sinks.lock().expect("event stats poisoned").entry(name.to_string()).or_default().clone()
    }

    /// Every sink's counters now.
    pub fn snapshot(&self) -> BTreeMap<String, SinkStats> {
        let sinks = self.sinks.lock().expect("event stats poisoned");
        sinks
            .iter()
            .map(|(name, c)| {
                let stats = SinkStats {
                    delivered: c.delivered.load(Ordering::Relaxed),
                    failed_attempts: c.failed_attempts.load(Ordering::Relaxed),
                    given_up: c.given_up.load(Ordering::Relaxed),
                };
                (name.clone(), stats)
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The dispatcher

#[derive(Debug, thiserror::Error)]
enum SinkError {
    #[error("job store: {0}")]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

#[derive(Debug)]
enum SinkKind {
    AuditLog(PathBuf),
    Webhook(WebhookConfig),
}

impl Sink {
    /// The sink in metrics' `sink` label: `audit_log`, or `webhook:` and a digest of its URL (never the URL, which
    /// may carry a token).
    fn label(&self) -> String {
        match &self.kind {
            SinkKind::AuditLog(_) => "audit_log".into(),
            SinkKind::Webhook(_) => self.cursor.clone(),
        }
    }
}

/// One place events go, with its own cursor and task.
#[derive(Debug)]
struct Sink {
    /// Its cursor's name in the store.
    cursor: String,
    /// Its name in logs and [`EventStats`].
    name: String,
    kind: SinkKind,
    counters: Arc<SinkCounters>,
}

/// What the sinks of one process share.
struct Shared {
    engine: Arc<Engine>,
    region: String,
    client: reqwest::Client,
    /// This process holds the events lease: its sinks deliver.
    leader: AtomicBool,
    /// Fires when this process takes the lease, so that its sinks start at once.
    took_lease: tokio::sync::Notify,
    shutdown: CancellationToken,
}

fn sinks(engine: &Engine) -> Vec<Sink> {
    let cfg = &engine.config.events;
    let mut sinks = Vec::new();
    if let Some(path) = &cfg.audit_log {
        let name = "audit_log".to_string();
        sinks.push(Sink {
            cursor: "audit_log".into(),
            counters: engine.event_stats.sink(&name),
            name,
            kind: SinkKind::AuditLog(path.clone()),
        });
    }
    for w in &cfg.webhooks {
        let name = format!("webhook {}", w.display_url());
        sinks.push(Sink {
            cursor: w.cursor_name(),
            counters: engine.event_stats.sink(&name),
            name,
            kind: SinkKind::Webhook(w.clone()),
        });
    }
    sinks
}

/// Deliver events until `shutdown`, while this process holds the [`EVENTS_LEASE`]; prune delivered ones.
pub async fn run(engine: Arc<Engine>, shutdown: CancellationToken) {
    let sinks = sinks(&engine);
    let cursors: Vec<String> = sinks.iter().map(|s| s.cursor.clone()).collect();
    let shared = Arc::new(Shared {
        region: engine.config.events.region.clone().unwrap_or_else(|| DEFAULT_REGION.into()),
        engine: engine.clone(),
        client: reqwest::Client::new(),
        leader: AtomicBool::new(false),
        took_lease: tokio::sync::Notify::new(),
        shutdown: shutdown.clone(),
    });
    let mut tasks = JoinSet::new();
    for sink in sinks {
        tasks.spawn(deliver(shared.clone(), sink));
    }
    let mut leader = false;
    let mut last_prune = 0;
    loop {
        let held =
            match engine.store.claim_singleton(EVENTS_LEASE, &engine.worker_id, now(), engine.config.lease_ms).await {
                Ok(outcome) => outcome.is_applied(),
                Err(e) => {
                    tracing::warn!(error = %e, "renewing the events lease failed");
                    false
                }
            };
        shared.leader.store(held, Ordering::SeqCst);
        if held != leader {
            tracing::info!(worker = %engine.worker_id, leader = held, "events lease {}", if held { "taken" } else { "lost" });
            if held {
                shared.took_lease.notify_waiters();
            }
        }
        leader = held;
        if leader && now() - last_prune > PRUNE_EVERY_MS {
            last_prune = now();
            if let Err(e) = prune(&engine, &cursors).await {
                tracing::warn!(error = %e, "pruning delivered events failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(engine.config.heartbeat_every()) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    shared.leader.store(false, Ordering::SeqCst);
    while tasks.join_next().await.is_some() {}
    if leader && let Err(e) = engine.store.release_singleton(EVENTS_LEASE, &engine.worker_id).await {
        tracing::warn!(error = %e, "giving back the events lease failed; it expires by itself");
    }
}

/// Forget the events every configured sink has (all of them, if there is no sink) once they are old enough.
async fn prune(engine: &Engine, cursors: &[String]) -> Result<(), StoreError> {
    let mut up_to = i64::MAX;
    for c in cursors {
        up_to = up_to.min(engine.store.event_cursor(c).await?.unwrap_or(0));
    }
    let before = now() - engine.config.events.retention_hours * HOUR_MS;
    let pruned = engine.store.prune_events(up_to, before).await?;
    if pruned > 0 {
        tracing::info!(pruned, "delivered events pruned");
    }
    Ok(())
}

/// One sink's loop: while this process leads, deliver the events after its cursor, in order.
async fn deliver(shared: Arc<Shared>, sink: Sink) {
    let mut failures = 0;
    loop {
        let idle = if shared.leader.load(Ordering::SeqCst) {
            match step(&shared, &sink).await {
                Ok(n) => {
                    failures = 0;
                    n == 0
                }
                Err(e) => {
                    failures += 1;
                    sink.counters.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(sink = %sink.name, error = %e, "delivering events failed; will retry");
                    let wait = backoff(failures, 200, 30_000);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shared.shutdown.cancelled() => return,
                    }
                    false
                }
            }
        } else {
            true
        };
        if shared.shutdown.is_cancelled() {
            return;
        }
        if idle {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(shared.engine.config.events.poll_ms)) => {}
                _ = shared.engine.wake.notified() => {}
                _ = shared.took_lease.notified() => {}
                _ = shared.shutdown.cancelled() => return,
            }
        }
    }
}

/// Deliver the next batch after the sink's cursor. Returns how many events it went through (delivered or given
/// up); 0: there was nothing to do, or the lease went.
async fn step(shared: &Shared, sink: &Sink) -> Result<usize, SinkError> {
    let store = &shared.engine.store;
    let cursor = store.event_cursor(&sink.cursor).await?.unwrap_or(0);
    let events = store.events_after(cursor, BATCH).await?;
    let pending = metrics::gauge!("s3batch_events_pending", "sink" => sink.label());
    let Some(last) = events.last() else {
        pending.set(0.0);
        return Ok(0);
    };
    pending.set(events.len() as f64);
    let delivered =
        metrics::counter!("s3batch_events_delivered_total", "sink" => sink.label(), "outcome" => "delivered");
    match &sink.kind {
        SinkKind::AuditLog(path) => {
            let mut lines = Vec::new();
            for e in &events {
                serde_json::to_writer(&mut lines, &audit_line(e, &shared.region)).expect("JSON values serialise");
                lines.push(b'\n');
            }
            append_synced(path, &lines)
                .await
                .map_err(|source| SinkError::Io { path: path.display().to_string(), source })?;
            store.advance_event_cursor(&sink.cursor, last.seq, now()).await?;
            sink.counters.delivered.fetch_add(events.len() as u64, Ordering::Relaxed);
            delivered.increment(events.len() as u64);
            pending.set(0.0);
            Ok(events.len())
        }
        SinkKind::Webhook(w) => {
            let mut done = 0;
            for e in &events {
                match post(shared, sink, w, e).await {
                    Posted::Delivered => {
                        sink.counters.delivered.fetch_add(1, Ordering::Relaxed);
                        delivered.increment(1);
                    }
                    Posted::GaveUp => {
                        sink.counters.given_up.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("s3batch_events_delivered_total", "sink" => sink.label(), "outcome" => "given_up")
                            .increment(1);
                    }
                    Posted::Stopped => return Ok(done),
                }
                store.advance_event_cursor(&sink.cursor, e.seq, now()).await?;
                done += 1;
                pending.set((events.len() - done) as f64);
            }
            Ok(done)
        }
    }
}

/// Append `bytes` to the file at `path` (creating it and its directory) and sync them to disk.
async fn append_synced(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir).await?;
    }
    let mut f = tokio::fs::OpenOptions::new().create(true).append(true).open(path).await?;
    f.write_all(bytes).await?;
    f.sync_data().await
}

enum Posted {
    /// The webhook answered 2xx.
    Delivered,
    /// Every attempt failed: the event is skipped for this webhook.
    GaveUp,
    /// Shutting down, or the lease went: leave the event to whoever delivers next.
    Stopped,
}

/// POST one event to a webhook, retrying up to its `max_attempts`.
async fn post(shared: &Shared, sink: &Sink, w: &WebhookConfig, e: &JobEventRecord) -> Posted {
    let body = serde_json::to_vec(&aws_event(e, &shared.region)).expect("JSON values serialise");
    let mut attempt = 1;
    loop {
        if shared.shutdown.is_cancelled() || !shared.leader.load(Ordering::SeqCst) {
            return Posted::Stopped;
        }
        let timestamp = now() / 1000;
        let request = shared
            .client
            .post(&w.url)
            .timeout(Duration::from_millis(w.timeout_ms))
            .header("content-type", "application/json")
            .header("user-agent", concat!("s3batch/", env!("CARGO_PKG_VERSION")))
            .header(EVENT_ID_HEADER, &e.event_id)
            .header(EVENT_SEQ_HEADER, e.seq.to_string())
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, sign(&w.secret, timestamp, &body))
            .body(body.clone())
            .send();
        let outcome = tokio::select! {
            r = request => r,
            _ = shared.shutdown.cancelled() => return Posted::Stopped,
        };
        let problem = match outcome {
            Ok(resp) if resp.status().is_success() => return Posted::Delivered,
            Ok(resp) => format!("answered HTTP {}", resp.status()),
            Err(err) if err.is_timeout() => format!("no answer within {} ms", w.timeout_ms),
            Err(err) => err.without_url().to_string(),
        };
        sink.counters.failed_attempts.fetch_add(1, Ordering::Relaxed);
        if attempt >= w.max_attempts {
            tracing::warn!(
                sink = %sink.name, event = %e.event_id, seq = e.seq, job = %e.job_id, attempts = attempt, %problem,
                "webhook never took the event; skipped for this webhook"
            );
            return Posted::GaveUp;
        }
        tracing::info!(sink = %sink.name, seq = e.seq, attempt, %problem, "webhook delivery failed; will retry");
        tokio::select! {
            _ = tokio::time::sleep(backoff(attempt, w.backoff_base_ms, w.backoff_max_ms)) => {}
            _ = shared.shutdown.cancelled() => return Posted::Stopped,
        }
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use s3batch_core::JobStatus;

    use super::*;

    fn record() -> JobEventRecord {
        JobEventRecord {
            seq: 7,
            event_id: "f907577b-bf3d-4c53-b9ed-8a83a118a554".into(),
            job_event_id: "b268784cf0a66749f1a05bce259804f5".into(),
            time: 1_580_927_130_123,
            account_id: "123456789012".into(),
            job_id: "d6e58ec4-897a-4b6d-975f-10d7f0fb63ce".into(),
            name: "JobStatusChanged".into(),
            from: Some(JobStatus::Completing),
            to: JobStatus::Complete,
            reason: None,
            failure_codes: vec![],
        }
    }

    /// The AWS documentation's example completion event, field for field (ours names the job's account where the
    /// example's identities differ).
    #[test]
    fn the_event_has_the_cloudtrail_shape() {
        let got = aws_event(&record(), "us-west-2");
        let want = json!({
            "eventVersion": "1.05",
            "userIdentity": {"accountId": "123456789012", "invokedBy": "s3.amazonaws.com"},
            "eventTime": "2020-02-05T18:25:30Z",
            "eventSource": "s3.amazonaws.com",
            "eventName": "JobStatusChanged",
            "awsRegion": "us-west-2",
            "sourceIPAddress": "s3.amazonaws.com",
            "userAgent": "s3.amazonaws.com",
            "requestParameters": null,
            "responseElements": null,
            "eventID": "f907577b-bf3d-4c53-b9ed-8a83a118a554",
            "readOnly": false,
            "eventType": "AwsServiceEvent",
            "recipientAccountId": "123456789012",
            "serviceEventDetails": {
                "jobId": "d6e58ec4-897a-4b6d-975f-10d7f0fb63ce",
                "jobArn": "arn:aws:s3:us-west-2:123456789012:job/d6e58ec4-897a-4b6d-975f-10d7f0fb63ce",
                "status": "Complete",
                "jobEventId": "b268784cf0a66749f1a05bce259804f5",
                "failureCodes": [],
                "statusChangeReason": []
            }
        });
        assert_eq!(got, want);
        // Field order as AWS writes it (serde_json keeps insertion order here).
        let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
        assert_eq!(keys[..4], ["eventVersion", "userIdentity", "eventTime", "eventSource"]);

        let mut failed = record();
        failed.to = JobStatus::Failed;
        failed.reason = Some("too many tasks failed".into());
        failed.failure_codes = vec!["TaskFailureThresholdExceeded".into()];
        let d = &aws_event(&failed, "us-east-1")["serviceEventDetails"];
        assert_eq!(d["failureCodes"], json!(["TaskFailureThresholdExceeded"]));
        assert_eq!(d["statusChangeReason"], json!(["too many tasks failed"]));
    }

    #[test]
    fn audit_lines_carry_who_what_when() {
        let line = audit_line(&record(), "eu-west-1");
        assert_eq!(line["time"], "2020-02-05T18:25:30.123Z");
        assert_eq!(line["seq"], 7);
        assert_eq!(line["account"], "123456789012");
        assert_eq!(line["job"], "d6e58ec4-897a-4b6d-975f-10d7f0fb63ce");
        assert_eq!(line["from"], "Completing");
        assert_eq!(line["to"], "Complete");
        assert_eq!(line["reason"], Value::Null);
        assert_eq!(line["event"], aws_event(&record(), "eu-west-1"));
        let text = serde_json::to_string(&line).unwrap();
        assert!(!text.contains('\n'), "one line");
    }

    /// The signature is HMAC-SHA256 of "<timestamp>.<body>": the value here is Python's
    /// `hmac.new(b"Jefe", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()`, as a receiver would compute it.
    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_dot_body() {
        assert_eq!(
            sign("Jefe", 1_700_000_000, br#"{"a":1}"#),
            "sha256=fa5f6481efc59da48b19c9dc10196c9953e5651f8304b3a318b6b87d70272e0a"
        );
        let sig = sign("Jefe", 0, b"x");
        assert_ne!(sig, sign("Jefe", 1, b"x"), "the timestamp is signed");
        assert_ne!(sig, sign("Jefe", 0, b"y"), "the body is signed");
        assert_ne!(sig, sign("jefe", 0, b"x"), "the key matters");
    }

    #[test]
    fn bad_webhooks_are_clear_errors() {
        let with = |w: WebhookConfig| EventsConfig { webhooks: vec![w], ..Default::default() }.validate();
        assert!(with(WebhookConfig::new("http://127.0.0.1:9000/hook", "s3cret")).is_ok());
        let cases = [
            (WebhookConfig::new("not a url", "s"), "engine.events.webhooks[0].url 'not a url' is not a URL"),
            (WebhookConfig::new("ftp://h/x", "s"), "must be an http:// URL"),
            (WebhookConfig::new("https://h/x", "s"), "https is not supported"),
            (WebhookConfig::new("http://h/x", ""), "engine.events.webhooks[0].secret is empty"),
            (WebhookConfig::new("http://h/x", "  "), "secret is empty"),
            (WebhookConfig { max_attempts: 0, ..WebhookConfig::new("http://h/x", "s") }, "max_attempts"),
            (WebhookConfig { timeout_ms: 0, ..WebhookConfig::new("http://h/x", "s") }, "timeout_ms"),
        ];
        for (w, want) in cases {
            let e = with(w).unwrap_err();
            assert!(e.contains(want), "{e:?} should say {want:?}");
        }
        let twice = EventsConfig {
            webhooks: vec![WebhookConfig::new("http://h/x", "a"), WebhookConfig::new("http://h/x", "b")],
            ..Default::default()
        };
        assert!(twice.validate().unwrap_err().contains("webhooks[1].url 'http://h/x' is listed twice"));
        let e = EventsConfig { audit_log: Some(PathBuf::new()), ..Default::default() }.validate().unwrap_err();
        assert!(e.contains("engine.events.audit_log"), "{e}");
        let e = EventsConfig { retention_hours: 0, ..Default::default() }.validate().unwrap_err();
        assert!(e.contains("retention_hours"), "{e}");
    }

    #[test]
    fn secrets_stay_out_of_debug_and_logs() {
        let w = WebhookConfig::new("http://user:pw@hooks.example:8080/in?token=TOKEN", "SECRET");
        let shown = format!("{:?}", EventsConfig { webhooks: vec![w.clone()], ..Default::default() });
        for secret in ["SECRET", "TOKEN", "pw"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert_eq!(w.display_url(), "http://hooks.example:8080/in");
        assert!(!w.cursor_name().contains("TOKEN"));
    }
}
