//! What the SQLite and PostgreSQL stores write once: the SQL both dialects run as it is (SQLite reads `$1` as
//! PostgreSQL does), the row mappers, the binding of a job, an event, a worker and a chunk, the JSON columns, and
//! the bookkeeping of a status change (the failure reasons it appends, the event it records, the outcome of a
//! compare-and-set that did not apply). What truly differs (claims, upserts, event numbering, batch inserts,
//! `LIMIT` semantics) stays in `sqlite.rs` and `postgres.rs`.
//!
//! Both dialects reach these helpers through two small traits with one blanket implementation each: [`Columns`]
//! (read a column of a row) and [`Binds`] (bind a value to a query), so the type bounds sqlx asks for are written
//! once, here.

use std::str::FromStr;

use s3batch_core::{JobStatus, Millis, Transition};
use sqlx::query::Query;
use sqlx::{ColumnIndex, Database, Decode, Encode, Row, Type};

use crate::*;

/// The columns of a [`Job`], in the order [`job_from_row`] does not care about (it reads by name).
pub(crate) const JOB_COLUMNS: &str = "id, account_id, status, priority, spec, client_request_token, tags, created_at, \
    updated_at, suspended_at, suspended_cause, terminated_at, status_update_reason, failure_reasons, total_tasks, \
    succeeded, failed, active_ms, active_since, manifest_etag, report_key, user_paused, generated_manifest, rate_limit";

/// The columns of a [`Chunk`].
pub(crate) const CHUNK_COLUMNS: &str =
    "job_id, seq, start_offset, end_offset, first_line, line_count, attempts, lease_expires, payload";

/// The columns of a [`JobEventRecord`].
pub(crate) const EVENT_COLUMNS: &str =
    "seq, event_id, job_event_id, time, account_id, job_id, name, from_status, to_status, reason, failure_codes";

/// The columns of a [`Worker`].
pub(crate) const WORKER_COLUMNS: &str =
    "id, host, pid, role, started_at, heartbeat_at, chunks_in_flight, lease_ms, draining";

/// Insert a job in New: bind with [`bind_new_job`] (`$10` is now, for both timestamps).
pub(crate) const INSERT_JOB: &str =
    "INSERT INTO jobs (id, account_id, status, priority, operation, description, spec, \
    client_request_token, request_hash, tags, created_at, updated_at, rate_limit)
    VALUES ($1, $2, 'New', $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)";

/// The status write of [`JobStore::update_status`] (bind with [`bind_status_update`]): keeps the timers (time in
/// Active), the dates (suspended, terminated), the reasons and the user's pause in step with the new status, only if
/// the job is still in the status the transition starts from.
pub(crate) const UPDATE_STATUS: &str = "UPDATE jobs SET status = $1, updated_at = $2,
       active_ms = active_ms + CASE WHEN active_since IS NOT NULL AND $1 <> 'Active' AND $2 > active_since
                                    THEN $2 - active_since ELSE 0 END,
       active_since = CASE WHEN $1 = 'Active' THEN COALESCE(active_since, $2) ELSE NULL END,
       suspended_at = CASE WHEN $1 IN ('Suspended', 'Paused') AND status <> $1 THEN $2
                           WHEN $1 IN ('Suspended', 'Paused') THEN suspended_at ELSE NULL END,
       suspended_cause = CASE WHEN $1 IN ('Suspended', 'Paused') THEN COALESCE($3, suspended_cause)
                              ELSE NULL END,
       terminated_at = CASE WHEN $1 IN ('Complete', 'Failed', 'Cancelled') THEN $2 ELSE terminated_at END,
       status_update_reason = COALESCE($4, status_update_reason),
       failure_reasons = $5,
       user_paused = COALESCE($8, user_paused)
     WHERE id = $6 AND status = $7";

/// Preparing is over (bind with [`bind_leave_preparing`]): the job leaves Preparing under the duty lease, which it
/// keeps (`open_preparing`: the listing goes on) or gives back (`finish_preparing`, with its total and ETag).
pub(crate) const OPEN_PREPARING: &str = "UPDATE jobs SET status = $1, updated_at = $2,
       suspended_at = CASE WHEN $1 = 'Suspended' THEN $2 ELSE NULL END,
       suspended_cause = CASE WHEN $1 = 'Suspended' THEN $5 ELSE NULL END
     WHERE id = $3 AND status = $6 AND duty_owner = $4
     RETURNING account_id, failure_reasons, suspended_cause";

/// See [`OPEN_PREPARING`]; `$7` is the total, `$8` the manifest's ETag.
pub(crate) const FINISH_PREPARING: &str = "UPDATE jobs SET status = $1, updated_at = $2, total_tasks = $7,
       manifest_etag = $8,
       suspended_at = CASE WHEN $1 = 'Suspended' THEN $2 ELSE NULL END,
       suspended_cause = CASE WHEN $1 = 'Suspended' THEN $5 ELSE NULL END,
       duty_owner = NULL, duty_expires = NULL
     WHERE id = $3 AND status = $6 AND duty_owner = $4
     RETURNING account_id, failure_reasons, suspended_cause";

pub(crate) const SET_PRIORITY: &str = "UPDATE jobs SET priority = $1, updated_at = $2 WHERE id = $3 AND account_id = $4
     AND status NOT IN ('Complete', 'Failed', 'Cancelled')";
pub(crate) const SET_RATE_LIMIT: &str = "UPDATE jobs SET rate_limit = $1, updated_at = $2
     WHERE id = $3 AND account_id = $4 AND status NOT IN ('Complete', 'Failed', 'Cancelled')";
pub(crate) const SET_TAGS: &str = "UPDATE jobs SET tags = $1, updated_at = $2 WHERE id = $3 AND account_id = $4";
/// The duty lease: free, expired, or already ours.
pub(crate) const CLAIM_DUTY: &str = "UPDATE jobs SET duty_owner = $1, duty_expires = $2 WHERE id = $3
     AND (duty_owner IS NULL OR duty_owner = $1 OR duty_expires < $4)";
pub(crate) const RELEASE_DUTY: &str =
    "UPDATE jobs SET duty_owner = NULL, duty_expires = NULL WHERE id = $1 AND duty_owner = $2";
pub(crate) const FINISH_LISTING: &str = "UPDATE jobs SET total_tasks = $1, updated_at = $2
     WHERE id = $3 AND duty_owner = $4 AND total_tasks IS NULL";
/// A job's status, scoped to an account when `$2` is not NULL: what a compare-and-set that did not apply found.
pub(crate) const JOB_STATUS: &str =
    "SELECT status FROM jobs WHERE id = $1 AND (CAST($2 AS TEXT) IS NULL OR account_id = $2)";
pub(crate) const CHUNK_EXISTS: &str = "SELECT 1 AS found FROM chunks WHERE job_id = $1 AND seq = $2";
pub(crate) const RELEASE_CHUNK: &str = "UPDATE chunks SET state = 'pending', lease_owner = NULL, lease_expires = NULL
     WHERE job_id = $1 AND seq = $2 AND state = 'leased' AND lease_owner = $3";
pub(crate) const FENCE_CHUNKS: &str = "UPDATE chunks SET state = 'pending', lease_owner = NULL, lease_expires = NULL
     WHERE job_id = $1 AND state = 'leased'";
pub(crate) const WORKER_HEARTBEAT: &str =
    "UPDATE workers SET heartbeat_at = $1, chunks_in_flight = $2, draining = $3 WHERE id = $4";
pub(crate) const ADVANCE_EVENT_CURSOR: &str = "INSERT INTO event_cursors (sink, seq, updated_at) VALUES ($1, $2, $3)
     ON CONFLICT (sink) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at
     WHERE event_cursors.seq < excluded.seq";
/// The process-wide lease: a row held by someone else whose lease is live is left alone (no change).
pub(crate) const CLAIM_SINGLETON: &str = "INSERT INTO singletons (name, owner, expires) VALUES ($1, $2, $3)
     ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires
     WHERE singletons.owner = excluded.owner OR singletons.expires < $4";
pub(crate) const JOB_CONTROLS: &str = "SELECT rate_limit, (SELECT COUNT(DISTINCT lease_owner) FROM chunks
       WHERE job_id = jobs.id AND state = 'leased' AND lease_expires >= $1) AS lease_holders
     FROM jobs WHERE id = $2";

/// A JSON column's text.
pub(crate) fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data always serialises")
}

/// A JSON column read back; `what` names it when the stored text is not what it should be.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn parse_status(s: &str) -> Result<JobStatus> {
    JobStatus::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Reading a row's columns by name, the same way on both databases.
pub(crate) trait Columns {
    fn text(&self, column: &str) -> Result<String>;
    fn opt_text(&self, column: &str) -> Result<Option<String>>;
    fn int(&self, column: &str) -> Result<i64>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>>;
    fn flag(&self, column: &str) -> Result<bool>;
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>>;

    fn status(&self, column: &str) -> Result<JobStatus> {
        parse_status(&self.text(column)?)
    }
    fn json<T: serde::de::DeserializeOwned>(&self, column: &str) -> Result<T> {
        parse_json(column, &self.text(column)?)
    }
    /// A BLOB/BYTEA column, empty when NULL.
    fn bytes(&self, column: &str) -> Result<Vec<u8>> {
        Ok(self.opt_bytes(column)?.unwrap_or_default())
    }
}

impl<R> Columns for R
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, column: &str) -> Result<String> {
        Ok(self.try_get(column)?)
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        Ok(self.try_get(column)?)
    }
    fn int(&self, column: &str) -> Result<i64> {
        Ok(self.try_get(column)?)
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        Ok(self.try_get(column)?)
    }
    fn flag(&self, column: &str) -> Result<bool> {
        Ok(self.try_get(column)?)
    }
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.try_get(column)?)
    }
}

/// Binding a query's values, the same way on both databases.
pub(crate) trait Binds<'q>: Sized {
    fn text(self, v: &'q str) -> Self;
    fn opt_text(self, v: Option<&'q str>) -> Self;
    fn owned(self, v: String) -> Self;
    fn int(self, v: i64) -> Self;
    fn opt_int(self, v: Option<i64>) -> Self;
    fn flag(self, v: bool) -> Self;
    fn opt_flag(self, v: Option<bool>) -> Self;
}

impl<'q, DB> Binds<'q> for Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    String: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
    Option<bool>: Encode<'q, DB> + Type<DB>,
{
    fn text(self, v: &'q str) -> Self {
        self.bind(v)
    }
    fn opt_text(self, v: Option<&'q str>) -> Self {
        self.bind(v)
    }
    fn owned(self, v: String) -> Self {
        self.bind(v)
    }
    fn int(self, v: i64) -> Self {
        self.bind(v)
    }
    fn opt_int(self, v: Option<i64>) -> Self {
        self.bind(v)
    }
    fn flag(self, v: bool) -> Self {
        self.bind(v)
    }
    fn opt_flag(self, v: Option<bool>) -> Self {
        self.bind(v)
    }
}

// ---- row mappers ----

pub(crate) fn job_from_row(r: &impl Columns) -> Result<Job> {
    Ok(Job {
        id: r.text("id")?,
        account_id: r.text("account_id")?,
        status: r.status("status")?,
        priority: r.int("priority")?,
        spec: r.json("spec")?,
        client_request_token: r.text("client_request_token")?,
        tags: r.json("tags")?,
        created_at: r.int("created_at")?,
        updated_at: r.int("updated_at")?,
        suspended_at: r.opt_int("suspended_at")?,
        suspended_cause: r.opt_text("suspended_cause")?,
        terminated_at: r.opt_int("terminated_at")?,
        status_update_reason: r.opt_text("status_update_reason")?,
        failure_reasons: r.json("failure_reasons")?,
        total_tasks: r.opt_int("total_tasks")?,
        succeeded: r.int("succeeded")?,
        failed: r.int("failed")?,
        active_ms: r.int("active_ms")?,
        active_since: r.opt_int("active_since")?,
        manifest_etag: r.opt_text("manifest_etag")?,
        report_key: r.opt_text("report_key")?,
        user_paused: r.flag("user_paused")?,
        generated_manifest: r.opt_text("generated_manifest")?,
        rate_limit: r.opt_int("rate_limit")?,
    })
}

/// The columns of a [`JobState`], but `generated`, which each store computes from the spec's JSON in SQL.
pub(crate) const JOB_STATE_COLUMNS: &str =
    "id, status, priority, created_at, suspended_at, terminated_at, total_tasks, succeeded, failed, user_paused";

pub(crate) fn job_state_from_row(r: &impl Columns) -> Result<JobState> {
    Ok(JobState {
        id: r.text("id")?,
        status: r.status("status")?,
        priority: r.int("priority")?,
        created_at: r.int("created_at")?,
        suspended_at: r.opt_int("suspended_at")?,
        terminated_at: r.opt_int("terminated_at")?,
        total_tasks: r.opt_int("total_tasks")?,
        succeeded: r.int("succeeded")?,
        failed: r.int("failed")?,
        user_paused: r.flag("user_paused")?,
        generated: r.flag("generated")?,
    })
}

pub(crate) fn chunk_from_row(r: &impl Columns) -> Result<Chunk> {
    Ok(Chunk {
        id: ChunkId { job_id: r.text("job_id")?, seq: r.int("seq")? },
        start_offset: r.int("start_offset")?,
        end_offset: r.int("end_offset")?,
        first_line: r.int("first_line")?,
        line_count: r.int("line_count")?,
        attempts: r.int("attempts")?,
        lease_expires: r.opt_int("lease_expires")?.unwrap_or(0),
        payload: r.opt_bytes("payload")?,
    })
}

/// A chunk as recorded (`seq, start_offset, end_offset, first_line, line_count, payload`).
pub(crate) fn new_chunk_from_row(r: &impl Columns) -> Result<NewChunk> {
    Ok(NewChunk {
        seq: r.int("seq")?,
        start_offset: r.int("start_offset")?,
        end_offset: r.int("end_offset")?,
        first_line: r.int("first_line")?,
        line_count: r.int("line_count")?,
        payload: r.opt_bytes("payload")?,
    })
}

/// A finished chunk's report lines (`seq, succeeded_rows, failed_rows`).
pub(crate) fn chunk_rows_from_row(r: &impl Columns) -> Result<ChunkRows> {
    Ok(ChunkRows {
        seq: r.int("seq")?,
        succeeded_rows: r.bytes("succeeded_rows")?,
        failed_rows: r.bytes("failed_rows")?,
    })
}

/// `pending, leased, expired, done`.
pub(crate) fn chunk_counts_from_row(r: &impl Columns) -> Result<ChunkCounts> {
    Ok(ChunkCounts {
        pending: r.int("pending")?,
        leased: r.int("leased")?,
        expired: r.int("expired")?,
        done: r.int("done")?,
    })
}

/// A `SELECT status, COUNT(*) AS n … GROUP BY status` row.
pub(crate) fn status_count_from_row(r: &impl Columns) -> Result<(JobStatus, i64)> {
    Ok((r.status("status")?, r.int("n")?))
}

pub(crate) fn job_controls_from_row(r: &impl Columns) -> Result<JobControls> {
    Ok(JobControls { rate_limit: r.opt_int("rate_limit")?, lease_holders: r.int("lease_holders")? })
}

pub(crate) fn event_from_row(r: &impl Columns) -> Result<JobEventRecord> {
    Ok(JobEventRecord {
        seq: r.int("seq")?,
        event_id: r.text("event_id")?,
        job_event_id: r.text("job_event_id")?,
        time: r.int("time")?,
        account_id: r.text("account_id")?,
        job_id: r.text("job_id")?,
        name: r.text("name")?,
        from: r.opt_text("from_status")?.as_deref().map(parse_status).transpose()?,
        to: r.status("to_status")?,
        reason: r.opt_text("reason")?,
        failure_codes: r.json("failure_codes")?,
    })
}

pub(crate) fn worker_from_row(r: &impl Columns) -> Result<Worker> {
    Ok(Worker {
        id: r.text("id")?,
        host: r.text("host")?,
        pid: r.int("pid")?,
        role: r.text("role")?,
        started_at: r.int("started_at")?,
        heartbeat_at: r.int("heartbeat_at")?,
        chunks_in_flight: r.int("chunks_in_flight")?,
        lease_ms: r.int("lease_ms")?,
        draining: r.flag("draining")?,
    })
}

// ---- binders ----

/// The values of [`INSERT_JOB`].
pub(crate) fn bind_new_job<'q, Q: Binds<'q>>(q: Q, new: &'q NewJob, now: Millis) -> Q {
    q.text(&new.id)
        .text(&new.account_id)
        .int(new.spec.priority)
        .text(new.spec.operation.name())
        .opt_text(new.spec.description.as_deref())
        .owned(json(&new.spec))
        .text(&new.client_request_token)
        .text(&new.request_hash)
        .owned(json(&new.spec.tags))
        .int(now)
        .opt_int(new.spec.rate_limit)
}

/// The values of an event insert: `event_id, job_event_id, time, account_id, job_id, name, from_status, to_status,
/// reason, failure_codes`, in that order.
pub(crate) fn bind_event<'q, Q: Binds<'q>>(q: Q, e: &'q JobEventRecord) -> Q {
    q.text(&e.event_id)
        .text(&e.job_event_id)
        .int(e.time)
        .text(&e.account_id)
        .text(&e.job_id)
        .text(&e.name)
        .opt_text(e.from.map(JobStatus::as_str))
        .text(e.to.as_str())
        .opt_text(e.reason.as_deref())
        .owned(json(&e.failure_codes))
}

/// The values of a worker insert, in [`WORKER_COLUMNS`] order.
pub(crate) fn bind_worker<'q, Q: Binds<'q>>(q: Q, w: &'q Worker) -> Q {
    q.text(&w.id)
        .text(&w.host)
        .int(w.pid)
        .text(&w.role)
        .int(w.started_at)
        .int(w.heartbeat_at)
        .int(w.chunks_in_flight)
        .int(w.lease_ms)
        .flag(w.draining)
}

/// The values of [`UPDATE_STATUS`].
pub(crate) fn bind_status_update<'q, Q: Binds<'q>>(
    q: Q,
    id: &'q str,
    t: Transition,
    change: &'q StatusChange,
    reasons: &[FailureReason],
    now: Millis,
) -> Q {
    q.text(t.to().as_str())
        .int(now)
        .opt_text(change.suspended_cause.as_deref())
        .opt_text(change.reason.as_deref())
        .owned(json(&reasons))
        .text(id)
        .text(t.from().as_str())
        .opt_flag(change.user_paused)
}

/// The values `$1`–`$6` of [`OPEN_PREPARING`] and [`FINISH_PREPARING`].
pub(crate) fn bind_leave_preparing<'q, Q: Binds<'q>>(
    q: Q,
    job_id: &'q str,
    owner: &'q str,
    t: Transition,
    now: Millis,
) -> Q {
    q.text(t.to().as_str())
        .int(now)
        .text(job_id)
        .text(owner)
        .text(s3batch_core::status::AWAITING_CONFIRMATION_CAUSE)
        .text(t.from().as_str())
}

// ---- status-change bookkeeping ----

/// The job row a status write locks and reads first (`status, failure_reasons, account_id`), and what the write
/// then does: refuse it (not found, or found in another status), or apply it with these failure reasons.
pub(crate) enum StatusWrite {
    Refused(CasOutcome),
    Apply { account: String, reasons: Vec<FailureReason> },
}

/// Decide a status write from the job row (`None`: no such job).
pub(crate) fn status_write(row: Option<&impl Columns>, t: Transition, change: &StatusChange) -> Result<StatusWrite> {
    let Some(row) = row else { return Ok(StatusWrite::Refused(CasOutcome::NotFound)) };
    let found = row.status("status")?;
    if found != t.from() {
        return Ok(StatusWrite::Refused(CasOutcome::Conflict { found: Some(found) }));
    }
    let mut reasons: Vec<FailureReason> = row.json("failure_reasons")?;
    reasons.extend(change.failure.clone());
    Ok(StatusWrite::Apply { account: row.text("account_id")?, reasons })
}

/// The event of a job leaving Preparing along `t`, in the transaction that moved it: `row` is the move's
/// `RETURNING account_id, failure_reasons, suspended_cause`.
pub(crate) fn left_preparing_event(
    row: &impl Columns,
    job_id: &str,
    t: Transition,
    now: Millis,
) -> Result<Option<JobEventRecord>> {
    let account = row.text("account_id")?;
    let reasons: Vec<FailureReason> = row.json("failure_reasons")?;
    let change = StatusChange { suspended_cause: row.opt_text("suspended_cause")?, ..StatusChange::default() };
    Ok(JobEventRecord::status_changed((&account, job_id), t.from(), t.to(), &change, &reasons, now))
}

/// What a job-level compare-and-set that changed no row found, from [`JOB_STATUS`]'s row: no such job, or a job
/// in this status.
pub(crate) fn job_conflict(row: Option<&impl Columns>) -> Result<CasOutcome> {
    match row {
        None => Ok(CasOutcome::NotFound),
        Some(r) => Ok(CasOutcome::Conflict { found: Some(r.status("status")?) }),
    }
}

/// The `WHERE` of a [`Browse`], as binds in either dialect: the account, the creation cutoff, the termination cutoff
/// (if set), the statuses (with `with_statuses`, if any) and the search pattern (on the id and the description).
pub(crate) fn browse_where<'a, DB: sqlx::Database>(
    b: &mut sqlx::QueryBuilder<'a, DB>,
    account: &str,
    q: &Browse,
    with_statuses: bool,
) where
    String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'static str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    b.push("account_id = ").push_bind(account.to_string());
    b.push(" AND created_at >= ").push_bind(q.created_after);
    if let Some(t) = q.terminated_after {
        b.push(" AND (terminated_at IS NULL OR terminated_at >= ").push_bind(t).push(")");
    }
    if with_statuses && !q.statuses.is_empty() {
        b.push(" AND status IN (");
        let mut list = b.separated(", ");
        for s in &q.statuses {
            list.push_bind(s.as_str());
        }
        b.push(")");
    }
    if let Some(p) = q.like_pattern() {
        b.push(" AND (lower(id) LIKE ").push_bind(p.clone()).push(" ESCAPE '\\'");
        b.push(" OR lower(coalesce(description, '')) LIKE ").push_bind(p).push(" ESCAPE '\\')");
    }
}

/// The `JobStore` implementation of a dialect: the methods it writes itself (`$own`), and the ones both dialects run
/// the same way, written once here. `writer` and `reader` name the store's pools (the same one on PostgreSQL),
/// `lock_row` what locks a job row read before it is written (nothing on SQLite, whose write transactions take the
/// database's lock first). A store provides `write_tx`, `job_outcome`, `leave_preparing` and `sql_limit`.
macro_rules! job_store_impl {
    ($store:ty, writer: $writer:ident, reader: $reader:ident, lock_row: $lock_row:literal, $($own:tt)*) => {
        #[async_trait::async_trait]
        impl JobStore for $store {
            $($own)*


            async fn browse_jobs(&self, account: &str, q: &Browse) -> Result<Vec<Job>> {
                let mut b = sqlx::QueryBuilder::new(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE "));
                browse_where(&mut b, account, q, true);
                let order = if q.by_priority { "priority DESC, created_at DESC, id DESC" } else { "created_at DESC, id DESC" };
                b.push(format!(" ORDER BY {order} LIMIT ")).push_bind(Self::sql_limit(q.limit));
                b.push(" OFFSET ").push_bind(q.offset.max(0));
                let rows = b.build().fetch_all(&self.$reader).await?;
                rows.iter().map(job_from_row).collect()
            }

            async fn count_jobs(&self, account: &str, q: &Browse) -> Result<Vec<(JobStatus, i64)>> {
                let mut b = sqlx::QueryBuilder::new("SELECT status, COUNT(*) AS n FROM jobs WHERE ");
                browse_where(&mut b, account, q, false);
                b.push(" GROUP BY status");
                let rows = b.build().fetch_all(&self.$reader).await?;
                rows.iter().map(status_count_from_row).collect()
            }

            async fn count_by_status(&self) -> Result<Vec<(JobStatus, i64)>> {
                let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
                    .fetch_all(&self.$reader)
                    .await?;
                rows.iter().map(status_count_from_row).collect()
            }

            async fn get_job(&self, account: Option<&str>, id: &str) -> Result<Option<Job>> {
                let row =
                    sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND (CAST($2 AS TEXT) IS NULL OR account_id = $2)"))
                        .bind(id)
                        .bind(account)
                        .fetch_optional(&self.$reader)
                        .await?;
                row.as_ref().map(job_from_row).transpose()
            }

            async fn update_status(&self, id: &str, t: Transition, ch: &StatusChange, now: Millis) -> Result<CasOutcome> {
                // The row is read under the write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: FOR UPDATE): the status is
                // checked, and the failure reasons read, appended to and written back, with no change slipping in between.
                let mut tx = self.write_tx().await?;
                let row = sqlx::query(concat!("SELECT status, failure_reasons, account_id FROM jobs WHERE id = $1", $lock_row))
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let (account, reasons) = match status_write(row.as_ref(), t, ch)? {
                    StatusWrite::Refused(outcome) => return Ok(outcome),
                    StatusWrite::Apply { account, reasons } => (account, reasons),
                };
                bind_status_update(sqlx::query(UPDATE_STATUS), id, t, ch, &reasons, now).execute(&mut *tx).await?;
                if let Some(e) = JobEventRecord::status_changed((&account, id), t.from(), t.to(), ch, &reasons, now) {
                    insert_event(&mut tx, &e).await?;
                }
                tx.commit().await?;
                Ok(CasOutcome::Applied)
            }

            async fn set_priority(&self, account: &str, id: &str, priority: i64, now: Millis) -> Result<CasOutcome> {
                let res =
                    sqlx::query(SET_PRIORITY).bind(priority).bind(now).bind(id).bind(account).execute(&self.$writer).await?;
                self.job_outcome(res.rows_affected() == 1, Some(account), id).await
            }

            async fn set_tags(&self, account: &str, id: &str, tags: &[Tag], now: Millis) -> Result<CasOutcome> {
                let res =
                    sqlx::query(SET_TAGS).bind(json(&tags)).bind(now).bind(id).bind(account).execute(&self.$writer).await?;
                self.job_outcome(res.rows_affected() == 1, Some(account), id).await
            }

            async fn set_rate_limit(
                &self,
                account: &str,
                id: &str,
                rate_limit: Option<i64>,
                now: Millis,
            ) -> Result<CasOutcome> {
                let res =
                    sqlx::query(SET_RATE_LIMIT).bind(rate_limit).bind(now).bind(id).bind(account).execute(&self.$writer).await?;
                self.job_outcome(res.rows_affected() == 1, Some(account), id).await
            }

            async fn job_controls(&self, job_id: &str, now: Millis) -> Result<Option<JobControls>> {
                let row = sqlx::query(JOB_CONTROLS).bind(now).bind(job_id).fetch_optional(&self.$reader).await?;
                row.as_ref().map(job_controls_from_row).transpose()
            }

            async fn set_report_key(&self, job_id: &str, key: &str) -> Result<()> {
                sqlx::query("UPDATE jobs SET report_key = $1 WHERE id = $2")
                    .bind(key)
                    .bind(job_id)
                    .execute(&self.$writer)
                    .await?;
                Ok(())
            }

            async fn set_generated_manifest(&self, job_id: &str, descriptor: &str) -> Result<()> {
                sqlx::query("UPDATE jobs SET generated_manifest = $1 WHERE id = $2")
                    .bind(descriptor)
                    .bind(job_id)
                    .execute(&self.$writer)
                    .await?;
                Ok(())
            }

            async fn delete_job(&self, job_id: &str) -> Result<()> {
                let mut tx = self.write_tx().await?;
                sqlx::query("DELETE FROM chunks WHERE job_id = $1").bind(job_id).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM jobs WHERE id = $1").bind(job_id).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn claim_duty(&self, id: &str, owner: &str, now: Millis, ttl_ms: i64) -> Result<CasOutcome> {
                let res =
                    sqlx::query(CLAIM_DUTY).bind(owner).bind(now + ttl_ms).bind(id).bind(now).execute(&self.$writer).await?;
                self.job_outcome(res.rows_affected() == 1, None, id).await
            }

            async fn release_duty(&self, id: &str, owner: &str) -> Result<()> {
                sqlx::query(RELEASE_DUTY).bind(id).bind(owner).execute(&self.$writer).await?;
                Ok(())
            }

            async fn clear_chunks(&self, job_id: &str) -> Result<()> {
                sqlx::query("DELETE FROM chunks WHERE job_id = $1").bind(job_id).execute(&self.$writer).await?;
                Ok(())
            }

            async fn finish_preparing(
                &self,
                job_id: &str,
                owner: &str,
                total_tasks: i64,
                manifest_etag: &str,
                t: Transition,
                now: Millis,
            ) -> Result<CasOutcome> {
                let q = bind_leave_preparing(sqlx::query(FINISH_PREPARING), job_id, owner, t, now)
                    .bind(total_tasks)
                    .bind(manifest_etag);
                self.leave_preparing(q, job_id, t, now).await
            }

            async fn open_preparing(&self, job_id: &str, owner: &str, t: Transition, now: Millis) -> Result<CasOutcome> {
                self.leave_preparing(bind_leave_preparing(sqlx::query(OPEN_PREPARING), job_id, owner, t, now), job_id, t, now)
                    .await
            }

            async fn finish_listing(&self, job_id: &str, owner: &str, total_tasks: i64, now: Millis) -> Result<CasOutcome> {
                let res = sqlx::query(FINISH_LISTING)
                    .bind(total_tasks)
                    .bind(now)
                    .bind(job_id)
                    .bind(owner)
                    .execute(&self.$writer)
                    .await?;
                self.job_outcome(res.rows_affected() == 1, None, job_id).await
            }

            async fn last_chunk(&self, job_id: &str) -> Result<Option<Chunk>> {
                let row =
                    sqlx::query(&format!("SELECT {CHUNK_COLUMNS} FROM chunks WHERE job_id = $1 ORDER BY seq DESC LIMIT 1"))
                        .bind(job_id)
                        .fetch_optional(&self.$reader)
                        .await?;
                row.as_ref().map(chunk_from_row).transpose()
            }

            async fn chunk_results(&self, job_id: &str, after_seq: i64, limit: i64) -> Result<Vec<ChunkRows>> {
                let rows = sqlx::query(
                    "SELECT seq, succeeded_rows, failed_rows FROM chunks
                     WHERE job_id = $1 AND seq > $2 AND state = 'done' ORDER BY seq LIMIT $3",
                )
                .bind(job_id)
                .bind(after_seq)
                .bind(Self::sql_limit(limit))
                .fetch_all(&self.$reader)
                .await?;
                rows.iter().map(chunk_rows_from_row).collect()
            }

            async fn chunk_payloads(&self, job_id: &str, after_seq: i64, limit: i64) -> Result<Vec<(i64, Vec<u8>)>> {
                let rows = sqlx::query("SELECT seq, payload FROM chunks WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3")
                    .bind(job_id)
                    .bind(after_seq)
                    .bind(Self::sql_limit(limit))
                    .fetch_all(&self.$reader)
                    .await?;
                rows.iter().map(|r| Ok((r.int("seq")?, r.bytes("payload")?))).collect()
            }

            async fn release_chunk(&self, owner: &str, chunk: &ChunkId) -> Result<()> {
                sqlx::query(RELEASE_CHUNK).bind(&chunk.job_id).bind(chunk.seq).bind(owner).execute(&self.$writer).await?;
                Ok(())
            }

            async fn fence_chunks(&self, job_id: &str) -> Result<u64> {
                Ok(sqlx::query(FENCE_CHUNKS).bind(job_id).execute(&self.$writer).await?.rows_affected())
            }

            async fn claim_singleton(&self, name: &str, owner: &str, now: Millis, lease_ms: i64) -> Result<CasOutcome> {
                let res = sqlx::query(CLAIM_SINGLETON)
                    .bind(name)
                    .bind(owner)
                    .bind(now + lease_ms)
                    .bind(now)
                    .execute(&self.$writer)
                    .await?;
                Ok(if res.rows_affected() == 1 { CasOutcome::Applied } else { CasOutcome::Conflict { found: None } })
            }

            async fn release_singleton(&self, name: &str, owner: &str) -> Result<()> {
                sqlx::query("DELETE FROM singletons WHERE name = $1 AND owner = $2")
                    .bind(name)
                    .bind(owner)
                    .execute(&self.$writer)
                    .await?;
                Ok(())
            }

            async fn singleton_owner(&self, name: &str, now: Millis) -> Result<Option<String>> {
                let owner = sqlx::query_scalar("SELECT owner FROM singletons WHERE name = $1 AND expires >= $2")
                    .bind(name)
                    .bind(now)
                    .fetch_optional(&self.$reader)
                    .await?;
                Ok(owner)
            }

            async fn events_after(&self, after_seq: i64, limit: i64) -> Result<Vec<JobEventRecord>> {
                let rows = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2"))
                    .bind(after_seq)
                    .bind(Self::sql_limit(limit))
                    .fetch_all(&self.$reader)
                    .await?;
                rows.iter().map(event_from_row).collect()
            }

            async fn job_events(&self, job_id: &str, limit: i64) -> Result<Vec<JobEventRecord>> {
                let rows = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE job_id = $1 ORDER BY seq LIMIT $2"))
                    .bind(job_id)
                    .bind(Self::sql_limit(limit))
                    .fetch_all(&self.$reader)
                    .await?;
                rows.iter().map(event_from_row).collect()
            }

            async fn event_cursor(&self, sink: &str) -> Result<Option<i64>> {
                let seq = sqlx::query_scalar("SELECT seq FROM event_cursors WHERE sink = $1")
                    .bind(sink)
                    .fetch_optional(&self.$reader)
                    .await?;
                Ok(seq)
            }

            async fn advance_event_cursor(&self, sink: &str, seq: i64, now: Millis) -> Result<()> {
                sqlx::query(ADVANCE_EVENT_CURSOR).bind(sink).bind(seq).bind(now).execute(&self.$writer).await?;
                Ok(())
            }

            async fn prune_events(&self, up_to_seq: i64, before: Millis) -> Result<u64> {
                let res = sqlx::query("DELETE FROM events WHERE seq <= $1 AND time < $2")
                    .bind(up_to_seq)
                    .bind(before)
                    .execute(&self.$writer)
                    .await?;
                Ok(res.rows_affected())
            }

            async fn worker_heartbeat(
                &self,
                id: &str,
                chunks_in_flight: i64,
                draining: bool,
                now: Millis,
            ) -> Result<CasOutcome> {
                let res = sqlx::query(WORKER_HEARTBEAT)
                    .bind(now)
                    .bind(chunks_in_flight)
                    .bind(draining)
                    .bind(id)
                    .execute(&self.$writer)
                    .await?;
                Ok(if res.rows_affected() == 1 { CasOutcome::Applied } else { CasOutcome::NotFound })
            }

            async fn deregister_worker(&self, id: &str) -> Result<()> {
                sqlx::query("DELETE FROM workers WHERE id = $1").bind(id).execute(&self.$writer).await?;
                Ok(())
            }

            async fn list_workers(&self) -> Result<Vec<Worker>> {
                let rows = sqlx::query(&format!("SELECT {WORKER_COLUMNS} FROM workers ORDER BY started_at, id"))
                    .fetch_all(&self.$reader)
                    .await?;
                rows.iter().map(worker_from_row).collect()
            }

            async fn prune_workers(&self, heartbeat_before: Millis) -> Result<u64> {
                let res = sqlx::query("DELETE FROM workers WHERE heartbeat_at < $1")
                    .bind(heartbeat_before)
                    .execute(&self.$writer)
                    .await?;
                Ok(res.rows_affected())
            }
        }
    };
}
pub(crate) use job_store_impl;
