//! The records the store keeps.

use s3batch_core::{JobSpec, JobStatus, Millis, Tag};
use serde::{Deserialize, Serialize};

/// A job to insert.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    pub account_id: String,
    pub client_request_token: String,
    /// Hash of the request (without the token), to tell a retry from a different request.
    pub request_hash: String,
    pub spec: JobSpec,
}

/// What `create_job` did.
#[derive(Debug, Clone)]
pub enum CreateOutcome {
    Created(Job),
    /// The same token and request were seen before: this is that job.
    Existing(Job),
}

impl CreateOutcome {
    pub fn job(&self) -> &Job {
        match self {
            CreateOutcome::Created(j) | CreateOutcome::Existing(j) => j,
        }
    }
}

/// `{FailureCode, FailureReason}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FailureReason {
    pub failure_code: String,
    pub failure_reason: String,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    pub account_id: String,
    pub status: JobStatus,
    pub priority: i64,
    pub spec: JobSpec,
    pub client_request_token: String,
    pub tags: Vec<Tag>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub suspended_at: Option<Millis>,
    pub suspended_cause: Option<String>,
    pub terminated_at: Option<Millis>,
    pub status_update_reason: Option<String>,
    pub failure_reasons: Vec<FailureReason>,
    /// Known once Preparing is done.
    pub total_tasks: Option<i64>,
    pub succeeded: i64,
    pub failed: i64,
    /// Time spent in Active before the current stretch.
    pub active_ms: i64,
    /// When the current stretch in Active began.
    pub active_since: Option<Millis>,
    pub manifest_etag: Option<String>,
    pub report_key: Option<String>,
    /// Paused by a user (extension): the scheduler leaves it Paused until the user resumes it.
    pub user_paused: bool,
    /// The manifest a ManifestGenerator job wrote (GeneratedManifestDescriptor, JSON).
    pub generated_manifest: Option<String>,
    /// Extension: the job's rate limit in tasks per second (for the whole job, over every process), if any. Set
    /// from the spec's `RateLimit` at creation; changed with [`JobStore::set_rate_limit`](crate::JobStore).
    pub rate_limit: Option<i64>,
}

impl Job {
    /// ElapsedTimeInActiveSeconds as of `now`.
    pub fn active_seconds(&self, now: Millis) -> i64 {
        let running = self.active_since.map(|s| (now - s).max(0)).unwrap_or(0);
        (self.active_ms + running) / 1000
    }
}

/// What the scheduler's tick needs of a job ([`JobStore::job_states`]): no spec (up to 256 KiB of JSON), tags or
/// texts.
///
/// [`JobStore::job_states`]: crate::JobStore::job_states
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    pub id: String,
    pub status: JobStatus,
    pub priority: i64,
    pub created_at: Millis,
    pub suspended_at: Option<Millis>,
    pub terminated_at: Option<Millis>,
    pub total_tasks: Option<i64>,
    pub succeeded: i64,
    pub failed: i64,
    pub user_paused: bool,
    /// The spec has a `ManifestGenerator` (its listing may go on after the job left Preparing).
    pub generated: bool,
}

impl JobState {
    pub fn of(job: &Job) -> JobState {
        JobState {
            id: job.id.clone(),
            status: job.status,
            priority: job.priority,
            created_at: job.created_at,
            suspended_at: job.suspended_at,
            terminated_at: job.terminated_at,
            total_tasks: job.total_tasks,
            succeeded: job.succeeded,
            failed: job.failed,
            user_paused: job.user_paused,
            generated: job.spec.manifest_generator.is_some(),
        }
    }
}

/// What goes with a status write (the move itself is the [`Transition`](s3batch_core::Transition) given with it).
#[derive(Debug, Clone, Default)]
pub struct StatusChange {
    /// StatusUpdateReason (a user's reason for cancel or confirm).
    pub reason: Option<String>,
    /// Appended to FailureReasons.
    pub failure: Option<FailureReason>,
    /// SuspendedCause, when going to Suspended or Paused.
    pub suspended_cause: Option<String>,
    /// Set or clear the user's pause.
    pub user_paused: Option<bool>,
}

impl StatusChange {
    pub fn reason(mut self, r: Option<String>) -> Self {
        self.reason = r;
        self
    }
    pub fn failure(mut self, code: &str, reason: impl Into<String>) -> Self {
        let mut reason: String = reason.into();
        if reason.chars().count() > 256 {
            reason = reason.chars().take(253).collect::<String>() + "...";
        }
        self.failure = Some(FailureReason { failure_code: code.into(), failure_reason: reason });
        self
    }
    pub fn cause(mut self, c: impl Into<String>) -> Self {
        self.suspended_cause = Some(c.into());
        self
    }
    pub fn user_paused(mut self, paused: bool) -> Self {
        self.user_paused = Some(paused);
        self
    }
}

/// ListJobs filter and page.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub statuses: Vec<JobStatus>,
    /// Continue after this job (created_at, id) in newest-first order.
    pub after: Option<(Millis, String)>,
    pub limit: i64,
    /// Leave out jobs that ended before this time (retention).
    pub terminated_after: Option<Millis>,
}

/// A page of an account's recent jobs as a person browses them (the console): filtered by status and by a search,
/// in either order, by offset.
#[derive(Debug, Clone, Default)]
pub struct Browse {
    /// Only jobs in these statuses (all when empty); [`JobStore::count_jobs`] ignores it.
    pub statuses: Vec<JobStatus>,
    /// Only jobs whose id or description contains this, ignoring ASCII case.
    pub search: Option<String>,
    /// Only jobs created at or after this time.
    pub created_after: Millis,
    /// Leave out jobs that ended before this time (retention).
    pub terminated_after: Option<Millis>,
    /// Highest priority first (then newest); otherwise newest first.
    pub by_priority: bool,
    pub offset: i64,
    pub limit: i64,
}

impl Browse {
    /// The search as a `LIKE` pattern (lower-case, `\` escaping `%`, `_` and `\`), if there is one.
    pub fn like_pattern(&self) -> Option<String> {
        let s = self.search.as_deref().filter(|s| !s.is_empty())?.to_lowercase();
        let escaped = s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        Some(format!("%{escaped}%"))
    }
}

/// A chunk to record while preparing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChunk {
    pub seq: i64,
    pub start_offset: i64,
    pub end_offset: i64,
    /// Line number (from 1) of the chunk's first line.
    pub first_line: i64,
    pub line_count: i64,
    /// The chunk's lines themselves (`bucket,url-encoded key,version id`), when they are not a byte range of the
    /// manifest object.
    pub payload: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChunkId {
    pub job_id: String,
    pub seq: i64,
}

/// A claimed chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub id: ChunkId,
    pub start_offset: i64,
    pub end_offset: i64,
    pub first_line: i64,
    pub line_count: i64,
    pub attempts: i64,
    pub lease_expires: Millis,
    /// See [`NewChunk::payload`].
    pub payload: Option<Vec<u8>>,
}

/// What a chunk's tasks did: counts and report CSV lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkResult {
    pub succeeded: i64,
    pub failed: i64,
    pub succeeded_rows: Vec<u8>,
    pub failed_rows: Vec<u8>,
}

/// A finished chunk's report lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRows {
    pub seq: i64,
    pub succeeded_rows: Vec<u8>,
    pub failed_rows: Vec<u8>,
}

/// How a job's chunks stand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkCounts {
    pub pending: i64,
    /// Leased and not expired.
    pub leased: i64,
    /// Leased, but the lease ran out (its worker died).
    pub expired: i64,
    pub done: i64,
}

/// A process running an engine (`s3batch worker`, or `s3batch serve` with its engine), as it registered itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worker {
    /// The identity it holds leases under.
    pub id: String,
    pub host: String,
    pub pid: i64,
    /// `worker` or `serve`.
    pub role: String,
    pub started_at: Millis,
    pub heartbeat_at: Millis,
    /// Chunks it held at its last heartbeat.
    pub chunks_in_flight: i64,
    /// Its chunk lease period: it counts as lost once its heartbeat is [`LOST_AFTER_LEASES`] periods old.
    pub lease_ms: i64,
    /// Shutting down: claims nothing new, finishes (or gives back) what it holds.
    pub draining: bool,
}

/// A worker whose last heartbeat is this many lease periods old is lost: every lease it held has expired.
pub const LOST_AFTER_LEASES: i64 = 2;

/// How a worker stands, as of a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    Running,
    Draining,
    /// No heartbeat for [`LOST_AFTER_LEASES`] lease periods: killed, hung or cut off. Its chunks are claimed again.
    Lost,
}

impl WorkerState {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Running => "running",
            WorkerState::Draining => "draining",
            WorkerState::Lost => "lost",
        }
    }
}

impl Worker {
    /// Its state as of `now`.
    pub fn state(&self, now: Millis) -> WorkerState {
        if now - self.heartbeat_at > LOST_AFTER_LEASES * self.lease_ms {
            WorkerState::Lost
        } else if self.draining {
            WorkerState::Draining
        } else {
            WorkerState::Running
        }
    }
}

/// The two kinds of job event, named as CloudTrail names them.
pub const JOB_CREATED: &str = "JobCreated";
pub const JOB_STATUS_CHANGED: &str = "JobStatusChanged";

/// A job event as the store recorded it, in the same transaction as the change it tells of: the job's creation
/// (`JobCreated`, to New) or a status change (`JobStatusChanged`). Read back in `seq` order by the event dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEventRecord {
    /// Strictly increasing in commit order, never reused.
    pub seq: i64,
    /// A UUID, CloudTrail's `eventID`: the same on every delivery of this event (consumers deduplicate on it).
    pub event_id: String,
    /// 32 hex digits, the `jobEventId` of the service event details.
    pub job_event_id: String,
    pub time: Millis,
    pub account_id: String,
    pub job_id: String,
    /// [`JOB_CREATED`] or [`JOB_STATUS_CHANGED`].
    pub name: String,
    /// None for `JobCreated`.
    pub from: Option<JobStatus>,
    pub to: JobStatus,
    /// Why: the user's StatusUpdateReason, else the reason of the failure recorded with the change, else the
    /// SuspendedCause (`AwaitingConfirmation`, a preemption, a user's pause).
    pub reason: Option<String>,
    /// The job's FailureReasons codes as of this change (each once, first seen first).
    pub failure_codes: Vec<String>,
}

impl JobEventRecord {
    /// A new event (its `seq` is assigned when it is inserted).
    pub fn new(
        job: (&str, &str),
        from: Option<JobStatus>,
        to: JobStatus,
        reason: Option<String>,
        failures: &[FailureReason],
        now: Millis,
    ) -> Self {
        let (account_id, job_id) = job;
        let mut failure_codes: Vec<String> = Vec::new();
        for f in failures {
            if !failure_codes.contains(&f.failure_code) {
                failure_codes.push(f.failure_code.clone());
            }
        }
        JobEventRecord {
            seq: 0,
            event_id: uuid::Uuid::new_v4().to_string(),
            job_event_id: uuid::Uuid::new_v4().simple().to_string(),
            time: now,
            account_id: account_id.into(),
            job_id: job_id.into(),
            name: if from.is_none() { JOB_CREATED } else { JOB_STATUS_CHANGED }.into(),
            from,
            to,
            reason,
            failure_codes,
        }
    }

    /// The event of a status change `from` → `to` made with `change`, the job's failure reasons being `failures`
    /// afterwards. None if the status did not change (a reason or a pause flag alone is not a status change).
    pub fn status_changed(
        job: (&str, &str),
        from: JobStatus,
        to: JobStatus,
        change: &StatusChange,
        failures: &[FailureReason],
        now: Millis,
    ) -> Option<Self> {
        if from == to {
            return None;
        }
        let reason = change
            .reason
            .clone()
            .or_else(|| change.failure.as_ref().map(|f| f.failure_reason.clone()))
            .or_else(|| change.suspended_cause.clone());
        Some(Self::new(job, Some(from), to, reason, failures, now))
    }
}

/// What a running worker re-reads about a job about once a second: its rate limit and how many processes share it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobControls {
    /// Tasks per second for the whole job; `None`: no limit.
    pub rate_limit: Option<i64>,
    /// Distinct workers holding a live (unexpired) lease on one of the job's chunks.
    pub lease_holders: i64,
}
