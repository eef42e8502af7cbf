//! # s3batch-store
//!
//! Where jobs and their chunks live. [`JobStore`] is the one interface the engine and the API use;
//! [`sqlite::SqliteStore`] is the embedded default; [`postgres::PgStore`] is for a fleet of processes sharing one
//! database. [`conformance`] holds the tests every implementation must pass; both run the same functions.
//!
//! Rules every implementation keeps:
//! - every status write is a compare-and-set on the expected status;
//! - a chunk is claimed under a lease; its results and the job's counters are committed in one transaction, and
//!   only while the lease is still held, so the report holds every manifest line exactly once;
//! - `(account, ClientRequestToken)` is unique: the same request returns the same job;
//! - a singleton lease (`claim_singleton`) has at most one live holder, however many processes race for it.
//!
//! The store also keeps the list of processes running an engine ([`Worker`]): each registers, beats, and leaves on
//! a graceful exit; one that stops beating is shown as lost, then pruned.
//!
//! Every status write takes a [`Transition`] (made only by `s3batch_core::status::transition`) and is a
//! compare-and-set on the status it starts from; every compare-and-set says what it did as a [`CasOutcome`].
//!
//! Job events ([`JobEventRecord`]) are an outbox: every job creation and every status change records one in the
//! same transaction, numbered in commit order, and each event sink keeps a cursor of how far it got.

mod common;
pub mod conformance;
mod model;
pub mod postgres;
pub mod sqlite;
pub mod testing;

use async_trait::async_trait;
use s3batch_core::{JobStatus, Millis, Tag, Transition};

pub use model::*;

/// What went wrong in the store. The database's own error is kept as the source (its message, its chain), not as
/// a type: callers do not depend on the driver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Same ClientRequestToken, different request.
    #[error("the ClientRequestToken was already used for a different request (job {0})")]
    IdempotencyMismatch(String),
    /// The database failed a statement, or could not be reached.
    #[error("database: {0}")]
    Database(#[source] BoxError),
    /// Bringing the schema up to date failed.
    #[error("migration: {0}")]
    Migrate(#[source] BoxError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// The database's error behind a [`StoreError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(Box::new(e))
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(Box::new(e))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What a compare-and-set did.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOutcome {
    /// The condition held: the change is written.
    Applied,
    /// The row is there but not as the write expected (another status, a lease someone else holds, a finished
    /// job): nothing changed. `found` is the job's status, for a write on a job row.
    Conflict { found: Option<JobStatus> },
    /// There is no such job (in that account), chunk or worker.
    NotFound,
}

impl CasOutcome {
    pub fn is_applied(self) -> bool {
        self == CasOutcome::Applied
    }
}

/// The job store. All times are passed in (`now`), so tests control the clock.
///
/// The methods come in five groups: **jobs** (create, read, list, and the compare-and-set writes of a job's status
/// and settings), **preparing** (the job-level duty lease and the chunks it records), **chunks** (claims under a
/// lease, commits, the report's rows), **leases** (the process-wide singletons), **events** (the outbox and its
/// cursors) and **workers** (the processes running an engine).
#[async_trait]
pub trait JobStore: std::fmt::Debug + Send + Sync + 'static {
    // ---- Jobs: one row each; every write that depends on the row's state is a compare-and-set. ----

    /// Insert a job in status New, or return the job an earlier identical request created.
    async fn create_job(&self, new: &NewJob, now: Millis) -> Result<CreateOutcome>;
    /// A job by id; `account` limits the lookup to that account's jobs.
    async fn get_job(&self, account: Option<&str>, id: &str) -> Result<Option<Job>>;
    /// An account's jobs, newest first, filtered by status, after a cursor.
    async fn list_jobs(&self, account: &str, filter: &ListFilter) -> Result<Vec<Job>>;
    /// Jobs in any of these statuses, any account, highest priority first, then oldest.
    async fn jobs_in(&self, statuses: &[JobStatus]) -> Result<Vec<Job>>;
    /// [`JobState`]s (a job without its spec, tags and texts) of the jobs in any of these statuses, in the order of
    /// [`jobs_in`](Self::jobs_in): the scheduler's tick, which looks at every live job several times a second and
    /// needs none of their specs. The SQL stores read only those columns; this default reads whole jobs.
    async fn job_states(&self, statuses: &[JobStatus]) -> Result<Vec<JobState>> {
        Ok(self.jobs_in(statuses).await?.iter().map(JobState::of).collect())
    }
    /// How many jobs of every account are in each status (statuses with none left out): the metrics' view.
    async fn count_by_status(&self) -> Result<Vec<(JobStatus, i64)>>;
    /// A page of an account's recent jobs, filtered, searched and ordered in the database (see [`Browse`]).
    async fn browse_jobs(&self, account: &str, q: &Browse) -> Result<Vec<Job>>;
    /// How many of the jobs [`browse_jobs`](Self::browse_jobs) would page through are in each status (its
    /// `statuses`, `offset` and `limit` aside); statuses with no job are left out.
    async fn count_jobs(&self, account: &str, q: &Browse) -> Result<Vec<(JobStatus, i64)>>;
    /// Move the job along `t` if it is still in `t.from()`, with what goes with it (reason, failure, cause, the
    /// user's pause); keeps timers and dates in step and records the event of a status change. Conflict names the
    /// status the job was found in.
    async fn update_status(&self, id: &str, t: Transition, change: &StatusChange, now: Millis) -> Result<CasOutcome>;
    /// Set the priority of `account`'s job unless it has finished (a conflict, with its terminal status).
    async fn set_priority(&self, account: &str, id: &str, priority: i64, now: Millis) -> Result<CasOutcome>;
    /// Replace `account`'s job's tags (applied, or not found).
    async fn set_tags(&self, account: &str, id: &str, tags: &[Tag], now: Millis) -> Result<CasOutcome>;
    /// Set (or with `None` remove) the rate limit of `account`'s job unless it has finished (a conflict, with its
    /// terminal status).
    async fn set_rate_limit(&self, account: &str, id: &str, rate_limit: Option<i64>, now: Millis)
    -> Result<CasOutcome>;
    /// The job's rate limit and how many workers hold live leases on its chunks; `None` if there is no such job.
    async fn job_controls(&self, job_id: &str, now: Millis) -> Result<Option<JobControls>>;
    /// Remember where the report's manifest.json was written.
    async fn set_report_key(&self, job_id: &str, key: &str) -> Result<()>;
    /// Remember the manifest a ManifestGenerator job wrote (GeneratedManifestDescriptor, JSON).
    async fn set_generated_manifest(&self, job_id: &str, descriptor: &str) -> Result<()>;
    /// Remove a job and its chunks (retention).
    async fn delete_job(&self, job_id: &str) -> Result<()>;

    // ---- Preparing: done under the job's duty lease, by one process at a time. ----

    /// Take (or renew) the job-level duty lease (preparing, finishing): free, expired, or already ours. Conflict:
    /// another process holds it.
    async fn claim_duty(&self, id: &str, owner: &str, now: Millis, ttl_ms: i64) -> Result<CasOutcome>;
    /// Give the duty lease back.
    async fn release_duty(&self, id: &str, owner: &str) -> Result<()>;
    /// Drop every chunk of a job (a preparer starting over after a crash).
    async fn clear_chunks(&self, job_id: &str) -> Result<()>;
    /// Record chunks while holding the duty lease. Conflict: the lease was lost.
    async fn insert_chunks(&self, job_id: &str, owner: &str, chunks: &[NewChunk]) -> Result<CasOutcome>;
    /// Preparing is done: set the totals and move the job along `t` (out of Preparing: `Prepared` or
    /// `PreparedNeedsConfirmation`) under the duty lease, which is given back.
    async fn finish_preparing(
        &self,
        job_id: &str,
        owner: &str,
        total_tasks: i64,
        manifest_etag: &str,
        t: Transition,
        now: Millis,
    ) -> Result<CasOutcome>;
    /// Preparing goes on in the background (a ManifestGenerator still listing): move the job along `t` (out of
    /// Preparing) now, with the total still unknown, and keep the duty lease. Tasks of the chunks recorded so far
    /// may run.
    async fn open_preparing(&self, job_id: &str, owner: &str, t: Transition, now: Millis) -> Result<CasOutcome>;
    /// The background part of preparing is done: set the total, under the duty lease, whatever the status.
    /// Conflict: the lease was lost, or the total is already set.
    async fn finish_listing(&self, job_id: &str, owner: &str, total_tasks: i64, now: Millis) -> Result<CasOutcome>;
    /// The job's last recorded chunk (with its payload): where a preparer that stopped resumes.
    async fn last_chunk(&self, job_id: &str) -> Result<Option<Chunk>>;

    // ---- Chunks: claimed under a lease; results committed with the job's counters, only while it is held. ----

    /// Claim the next pending (or lease-expired) chunk of an Active job: highest priority first, then oldest.
    /// A claim and a status write that takes the job out of Active are serialised: a chunk is leased only if the job
    /// is still Active when the claim commits, so a fence (done once the job has left Active) sees every lease.
    async fn claim_chunk(&self, owner: &str, now: Millis, lease_ms: i64) -> Result<Option<Chunk>>;
    /// Like [`JobStore::claim_chunk`], but only a chunk of the one job `job_id` (if it is Active): lets a worker
    /// share itself fairly between the jobs it runs.
    async fn claim_chunk_of(&self, owner: &str, job_id: &str, now: Millis, lease_ms: i64) -> Result<Option<Chunk>>;
    /// Extend the leases `owner` holds on these chunks. Returns the chunks whose lease was renewed.
    async fn heartbeat(&self, owner: &str, chunks: &[ChunkId], now: Millis, lease_ms: i64) -> Result<Vec<ChunkId>>;
    /// Commit a chunk's results and the job's counters in one transaction, if `owner` still holds the lease.
    /// Conflict: the lease was lost (expired and claimed again, fenced, or already committed).
    async fn complete_chunk(
        &self,
        owner: &str,
        chunk: &ChunkId,
        result: &ChunkResult,
        now: Millis,
    ) -> Result<CasOutcome>;
    /// Give a claimed chunk back unfinished (shutdown, pause).
    async fn release_chunk(&self, owner: &str, chunk: &ChunkId) -> Result<()>;
    /// Take every lease on the job's unfinished chunks away (a finishing job: cancelled, failing). A worker that
    /// stalled past its lease can then no longer commit results after the report is read. Returns how many.
    /// Called once the job has left Active: no claim can lease one of its chunks afterwards (see `claim_chunk`).
    async fn fence_chunks(&self, job_id: &str) -> Result<u64>;
    /// How a job's chunks stand.
    async fn chunk_counts(&self, job_id: &str, now: Millis) -> Result<ChunkCounts>;
    /// Finished chunks' result rows in manifest order, `seq > after_seq`, at most `limit` chunks.
    async fn chunk_results(&self, job_id: &str, after_seq: i64, limit: i64) -> Result<Vec<ChunkRows>>;
    /// Chunk payloads in order, `seq > after_seq`, at most `limit` chunks: the lines of a generated manifest.
    async fn chunk_payloads(&self, job_id: &str, after_seq: i64, limit: i64) -> Result<Vec<(i64, Vec<u8>)>>;
    /// The chunks of `job_id` with these sequence numbers (those that exist), in sequence order: a spread sample
    /// of the manifest for the impact preview.
    async fn chunks_at(&self, job_id: &str, seqs: &[i64]) -> Result<Vec<NewChunk>>;

    // ---- Leases: process-wide duties that span jobs, done by one process of a fleet at a time. ----

    /// Take (or renew) the process-wide lease named `name`: free, expired, or already ours. For duties that span
    /// jobs and must be done by one process of a fleet at a time (the scheduler's ranking and sweeps). Conflict:
    /// another process holds it.
    async fn claim_singleton(&self, name: &str, owner: &str, now: Millis, lease_ms: i64) -> Result<CasOutcome>;
    /// Give the lease back (if `owner` holds it), so that another process takes over at once.
    async fn release_singleton(&self, name: &str, owner: &str) -> Result<()>;
    /// Who holds the lease `name` as of `now` (None: free or expired).
    async fn singleton_owner(&self, name: &str, now: Millis) -> Result<Option<String>>;

    // ---- Events: the outbox, recorded in the transaction of each change, read in order by each sink. ----

    /// Job events (recorded by `create_job`, `update_status`, `finish_preparing` and `open_preparing` in the
    /// transaction of the change) with `seq > after_seq`, in `seq` order, at most `limit`. A reader that moves its
    /// cursor to the last seq it got never skips an event: seqs are committed in order.
    async fn events_after(&self, after_seq: i64, limit: i64) -> Result<Vec<JobEventRecord>>;
    /// The recorded events of one job (its status history, as far as events are kept), oldest first, at most
    /// `limit`.
    async fn job_events(&self, job_id: &str, limit: i64) -> Result<Vec<JobEventRecord>>;
    /// How far the event sink `sink` got (the last seq delivered or given up); None if it never delivered one.
    async fn event_cursor(&self, sink: &str) -> Result<Option<i64>>;
    /// Move the sink's cursor forward to `seq` (never back: a smaller seq leaves it where it is).
    async fn advance_event_cursor(&self, sink: &str, seq: i64, now: Millis) -> Result<()>;
    /// Forget the events with `seq <= up_to_seq` recorded before `before` (every sink has them). Returns how many.
    async fn prune_events(&self, up_to_seq: i64, before: Millis) -> Result<u64>;

    // ---- Workers: the processes running an engine, as they registered and beat. ----

    /// Record a process running an engine (again, if its id is known: the row is replaced).
    async fn register_worker(&self, worker: &Worker) -> Result<()>;
    /// A registered worker's periodic sign of life. Not found if it is not registered (pruned as lost): register
    /// again.
    async fn worker_heartbeat(
        &self,
        id: &str,
        chunks_in_flight: i64,
        draining: bool,
        now: Millis,
    ) -> Result<CasOutcome>;
    /// A worker that stopped gracefully leaves the list.
    async fn deregister_worker(&self, id: &str) -> Result<()>;
    /// Every registered worker, oldest first.
    async fn list_workers(&self) -> Result<Vec<Worker>>;
    /// Forget the workers whose last heartbeat is older than `heartbeat_before`. Returns how many.
    async fn prune_workers(&self, heartbeat_before: Millis) -> Result<u64>;
}
