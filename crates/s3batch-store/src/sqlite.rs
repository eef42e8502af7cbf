//! The SQLite job store: the embedded default. WAL mode; one writer connection (so write transactions never fight
//! over the lock) and a small pool of readers.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use s3batch_core::{JobStatus, Millis, Tag};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::*;

/// SQLite-backed [`JobStore`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

const JOB_COLUMNS: &str = "id, account_id, status, priority, spec, client_request_token, tags, created_at, \
    updated_at, suspended_at, suspended_cause, terminated_at, status_update_reason, failure_reasons, total_tasks, \
    succeeded, failed, active_ms, active_since, manifest_etag, report_key, user_paused, generated_manifest, rate_limit";

impl SqliteStore {
    /// Open (creating if missing) the database file and run the migrations.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        let opts = SqliteConnectOptions::new().filename(path).create_if_missing(true);
        Self::connect(opts).await
    }

    /// Open from a `sqlite://…` URL (`sqlite::memory:` is not supported: readers and the writer must share a file).
    pub async fn open_url(url: &str) -> Result<SqliteStore> {
        let opts = SqliteConnectOptions::from_str(url)?.create_if_missing(true);
        Self::connect(opts).await
    }

    async fn connect(opts: SqliteConnectOptions) -> Result<SqliteStore> {
        let opts = opts
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            .pragma("temp_store", "memory");
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(opts.clone()).await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        // Readers scan result blobs when reports are written; a small page cache each keeps memory flat.
        let reader_opts = opts.read_only(true).pragma("cache_size", "-512");
        let reader = SqlitePoolOptions::new().max_connections(4).connect_with(reader_opts).await?;
        Ok(SqliteStore { writer, reader })
    }

    /// A write transaction that takes the database's write lock at its start (`BEGIN IMMEDIATE`). A deferred
    /// transaction that reads first and writes next cannot wait for the lock when another connection (another
    /// process on the same file) wrote in between: SQLite answers it SQLITE_BUSY at once, whatever the busy
    /// timeout. Taking the lock first makes it wait (up to the busy timeout) instead.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data always serialises")
}

fn parse_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn job_from_row(r: &SqliteRow) -> Result<Job> {
    let status: String = r.try_get("status")?;
    Ok(Job {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        status: JobStatus::from_str(&status).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        priority: r.try_get("priority")?,
        spec: parse_json("spec", &r.try_get::<String, _>("spec")?)?,
        client_request_token: r.try_get("client_request_token")?,
        tags: parse_json("tags", &r.try_get::<String, _>("tags")?)?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        suspended_at: r.try_get("suspended_at")?,
        suspended_cause: r.try_get("suspended_cause")?,
        terminated_at: r.try_get("terminated_at")?,
        status_update_reason: r.try_get("status_update_reason")?,
        failure_reasons: parse_json("failure_reasons", &r.try_get::<String, _>("failure_reasons")?)?,
        total_tasks: r.try_get("total_tasks")?,
        succeeded: r.try_get("succeeded")?,
        failed: r.try_get("failed")?,
        active_ms: r.try_get("active_ms")?,
        active_since: r.try_get("active_since")?,
        manifest_etag: r.try_get("manifest_etag")?,
        report_key: r.try_get("report_key")?,
        user_paused: r.try_get::<i64, _>("user_paused")? != 0,
        generated_manifest: r.try_get("generated_manifest")?,
        rate_limit: r.try_get("rate_limit")?,
    })
}

/// The first pending chunk of the job `j`, by the `chunks_claim` index (a seek, however many chunks are done).
const PENDING: &str =
    "(SELECT c.seq FROM chunks c WHERE c.job_id = j.id AND c.state = 'pending' ORDER BY c.seq LIMIT 1)";
/// The first chunk of the job `j` whose lease expired (`?3` is now); only the few leased chunks are looked at.
const EXPIRED: &str = "(SELECT c.seq FROM chunks c WHERE c.job_id = j.id AND c.state = 'leased' \
    AND c.lease_expires < ?3 ORDER BY c.seq LIMIT 1)";

fn chunk_from_row(r: &SqliteRow) -> Result<Chunk> {
    Ok(Chunk {
        id: ChunkId { job_id: r.try_get("job_id")?, seq: r.try_get("seq")? },
        start_offset: r.try_get("start_offset")?,
        end_offset: r.try_get("end_offset")?,
        first_line: r.try_get("first_line")?,
        line_count: r.try_get("line_count")?,
        attempts: r.try_get("attempts")?,
        lease_expires: r.try_get::<Option<Millis>, _>("lease_expires")?.unwrap_or(0),
        payload: r.try_get("payload")?,
    })
}

/// The `WHERE` of a [`Browse`] (binds: account, created_after, terminated_after if set, the pattern twice if set)
/// and its search pattern.
fn browse_where(q: &Browse, with_statuses: bool) -> (String, Option<String>) {
    let mut w = "account_id = ? AND created_at >= ?".to_string();
    if q.terminated_after.is_some() {
        w += " AND (terminated_at IS NULL OR terminated_at >= ?)";
    }
    if with_statuses && !q.statuses.is_empty() {
        w += &format!(" AND status IN ({})", status_list(&q.statuses));
    }
    let pattern = q.like_pattern();
    if pattern.is_some() {
        w += " AND (lower(id) LIKE ? ESCAPE '\\' OR lower(coalesce(description, '')) LIKE ? ESCAPE '\\')";
    }
    (w, pattern)
}

fn status_list(statuses: &[JobStatus]) -> String {
    statuses.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(",")
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn create_job(&self, new: &NewJob, now: Millis) -> Result<CreateOutcome> {
        let mut tx = self.write_tx().await?;
        let existing = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS}, request_hash FROM jobs WHERE account_id = ? AND client_request_token = ?"
        ))
        .bind(&new.account_id)
        .bind(&new.client_request_token)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            let hash: String = row.try_get("request_hash")?;
            let job = job_from_row(&row)?;
            return if hash == new.request_hash {
                Ok(CreateOutcome::Existing(job))
            } else {
                Err(StoreError::IdempotencyMismatch(job.id))
            };
        }
        sqlx::query(
            "INSERT INTO jobs (id, account_id, status, priority, operation, description, spec, client_request_token, \
             request_hash, tags, created_at, updated_at, rate_limit) VALUES (?, ?, 'New', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&new.id)
        .bind(&new.account_id)
        .bind(new.spec.priority)
        .bind(new.spec.operation.name())
        .bind(&new.spec.description)
        .bind(json(&new.spec))
        .bind(&new.client_request_token)
        .bind(&new.request_hash)
        .bind(json(&new.spec.tags))
        .bind(now)
        .bind(now)
        .bind(new.spec.rate_limit)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"))
            .bind(&new.id)
            .fetch_one(&mut *tx)
            .await?;
        let job = job_from_row(&row)?;
        insert_event(&mut tx, &JobEventRecord::new((&job.account_id, &job.id), None, job.status, None, &[], now))
            .await?;
        tx.commit().await?;
        Ok(CreateOutcome::Created(job))
    }

    async fn get_job(&self, account: Option<&str>, id: &str) -> Result<Option<Job>> {
        let row =
            sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ? AND (? IS NULL OR account_id = ?)"))
                .bind(id)
                .bind(account)
                .bind(account)
                .fetch_optional(&self.reader)
                .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn list_jobs(&self, account: &str, f: &ListFilter) -> Result<Vec<Job>> {
        let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE account_id = ?");
        if !f.statuses.is_empty() {
            sql += &format!(" AND status IN ({})", status_list(&f.statuses));
        }
        if f.after.is_some() {
            sql += " AND (created_at < ? OR (created_at = ? AND id < ?))";
        }
        if f.terminated_after.is_some() {
            sql += " AND (terminated_at IS NULL OR terminated_at >= ?)";
        }
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?";
        let mut q = sqlx::query(&sql).bind(account);
        if let Some((t, id)) = &f.after {
            q = q.bind(t).bind(t).bind(id);
        }
        if let Some(t) = f.terminated_after {
            q = q.bind(t);
        }
        let rows = q.bind(f.limit).fetch_all(&self.reader).await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn browse_jobs(&self, account: &str, q: &Browse) -> Result<Vec<Job>> {
        let (filter, pattern) = browse_where(q, true);
        let order = if q.by_priority { "priority DESC, created_at DESC, id DESC" } else { "created_at DESC, id DESC" };
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE {filter} ORDER BY {order} LIMIT ? OFFSET ?");
        let mut query = sqlx::query(&sql).bind(account).bind(q.created_after);
        if let Some(t) = q.terminated_after {
            query = query.bind(t);
        }
        if let Some(p) = &pattern {
            query = query.bind(p).bind(p);
        }
        let rows = query.bind(q.limit).bind(q.offset.max(0)).fetch_all(&self.reader).await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn count_by_status(&self) -> Result<Vec<(JobStatus, i64)>> {
        let rows =
            sqlx::query("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetch_all(&self.reader).await?;
        rows.iter()
            .map(|r| {
                let status: String = r.try_get("status")?;
                let status = JobStatus::from_str(&status).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok((status, r.try_get("n")?))
            })
            .collect()
    }

    async fn count_jobs(&self, account: &str, q: &Browse) -> Result<Vec<(JobStatus, i64)>> {
        let (filter, pattern) = browse_where(q, false);
        let sql = format!("SELECT status, COUNT(*) AS n FROM jobs WHERE {filter} GROUP BY status");
        let mut query = sqlx::query(&sql).bind(account).bind(q.created_after);
        if let Some(t) = q.terminated_after {
            query = query.bind(t);
        }
        if let Some(p) = &pattern {
            query = query.bind(p).bind(p);
        }
        let rows = query.fetch_all(&self.reader).await?;
        rows.iter()
            .map(|r| {
                let status: String = r.try_get("status")?;
                let status = JobStatus::from_str(&status).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok((status, r.try_get("n")?))
            })
            .collect()
    }

    async fn jobs_in(&self, statuses: &[JobStatus]) -> Result<Vec<Job>> {
        if statuses.is_empty() {
            return Ok(vec![]);
        }
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE status IN ({}) ORDER BY priority DESC, created_at, id",
            status_list(statuses)
        ))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn update_status(&self, id: &str, expected: JobStatus, ch: &StatusChange, now: Millis) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let Some(row) = sqlx::query("SELECT failure_reasons, account_id FROM jobs WHERE id = ? AND status = ?")
            .bind(id)
            .bind(expected.as_str())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(false);
        };
        let mut reasons: Vec<FailureReason> = parse_json("failure_reasons", &row.try_get::<String, _>(0)?)?;
        let account: String = row.try_get(1)?;
        if let Some(f) = &ch.failure {
            reasons.push(f.clone());
        }
        let to = ch.to.unwrap_or(expected);
        let res = sqlx::query(
            "UPDATE jobs SET status = ?1, updated_at = ?2,
               active_ms = active_ms + CASE WHEN active_since IS NOT NULL AND ?1 <> 'Active'
                                            THEN MAX(?2 - active_since, 0) ELSE 0 END,
               active_since = CASE WHEN ?1 = 'Active' THEN COALESCE(active_since, ?2) ELSE NULL END,
               suspended_at = CASE WHEN ?1 IN ('Suspended', 'Paused') AND status <> ?1 THEN ?2
                                   WHEN ?1 IN ('Suspended', 'Paused') THEN suspended_at ELSE NULL END,
               suspended_cause = CASE WHEN ?1 IN ('Suspended', 'Paused') THEN COALESCE(?3, suspended_cause)
                                      ELSE NULL END,
               terminated_at = CASE WHEN ?1 IN ('Complete', 'Failed', 'Cancelled') THEN ?2 ELSE terminated_at END,
               status_update_reason = COALESCE(?4, status_update_reason),
               failure_reasons = ?5,
               user_paused = COALESCE(?8, user_paused)
             WHERE id = ?6 AND status = ?7",
        )
        .bind(to.as_str())
        .bind(now)
        .bind(&ch.suspended_cause)
        .bind(&ch.reason)
        .bind(json(&reasons))
        .bind(id)
        .bind(expected.as_str())
        .bind(ch.user_paused)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() != 1 {
            return Ok(false);
        }
        if let Some(e) = JobEventRecord::status_changed((&account, id), expected, to, ch, &reasons, now) {
            insert_event(&mut tx, &e).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn set_priority(&self, account: &str, id: &str, priority: i64, now: Millis) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE jobs SET priority = ?, updated_at = ? WHERE id = ? AND account_id = ?
             AND status NOT IN ('Complete', 'Failed', 'Cancelled')",
        )
        .bind(priority)
        .bind(now)
        .bind(id)
        .bind(account)
        .execute(&self.writer)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    async fn set_tags(&self, account: &str, id: &str, tags: &[Tag], now: Millis) -> Result<bool> {
        let res = sqlx::query("UPDATE jobs SET tags = ?, updated_at = ? WHERE id = ? AND account_id = ?")
            .bind(json(&tags))
            .bind(now)
            .bind(id)
            .bind(account)
            .execute(&self.writer)
            .await?;
        Ok(res.rows_affected() == 1)
    }

    async fn claim_duty(&self, id: &str, owner: &str, now: Millis, ttl_ms: i64) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE jobs SET duty_owner = ?, duty_expires = ? WHERE id = ?
             AND (duty_owner IS NULL OR duty_owner = ? OR duty_expires < ?)",
        )
        .bind(owner)
        .bind(now + ttl_ms)
        .bind(id)
        .bind(owner)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    async fn release_duty(&self, id: &str, owner: &str) -> Result<()> {
        sqlx::query("UPDATE jobs SET duty_owner = NULL, duty_expires = NULL WHERE id = ? AND duty_owner = ?")
            .bind(id)
            .bind(owner)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn clear_chunks(&self, job_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM chunks WHERE job_id = ?").bind(job_id).execute(&self.writer).await?;
        Ok(())
    }

    async fn insert_chunks(&self, job_id: &str, owner: &str, chunks: &[NewChunk]) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let held = sqlx::query("SELECT 1 FROM jobs WHERE id = ? AND duty_owner = ?")
            .bind(job_id)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !held {
            return Ok(false);
        }
        for c in chunks {
            sqlx::query(
                "INSERT INTO chunks (job_id, seq, start_offset, end_offset, first_line, line_count, payload)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(job_id)
            .bind(c.seq)
            .bind(c.start_offset)
            .bind(c.end_offset)
            .bind(c.first_line)
            .bind(c.line_count)
            .bind(c.payload.as_deref())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn finish_preparing(
        &self,
        job_id: &str,
        owner: &str,
        total_tasks: i64,
        manifest_etag: &str,
        to: JobStatus,
        now: Millis,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let Some(row) = sqlx::query(
            "UPDATE jobs SET status = ?1, total_tasks = ?2, manifest_etag = ?3, updated_at = ?4,
               suspended_at = CASE WHEN ?1 = 'Suspended' THEN ?4 ELSE NULL END,
               suspended_cause = CASE WHEN ?1 = 'Suspended' THEN 'AwaitingConfirmation' ELSE NULL END,
               duty_owner = NULL, duty_expires = NULL
             WHERE id = ?5 AND status = 'Preparing' AND duty_owner = ?6
             RETURNING account_id, failure_reasons, suspended_cause",
        )
        .bind(to.as_str())
        .bind(total_tasks)
        .bind(manifest_etag)
        .bind(now)
        .bind(job_id)
        .bind(owner)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(false);
        };
        record_left_preparing(&mut tx, &row, job_id, to, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn claim_chunk(&self, owner: &str, now: Millis, lease_ms: i64) -> Result<Option<Chunk>> {
        let row = sqlx::query(&format!(
            "UPDATE chunks SET state = 'leased', lease_owner = ?1, lease_expires = ?2, attempts = attempts + 1
                 WHERE (job_id, seq) = (
                   SELECT job_id, seq FROM (
                     SELECT id AS job_id, priority, created_at, MIN(COALESCE(p, e), COALESCE(e, p)) AS seq FROM (
                       SELECT j.id, j.priority, j.created_at, {PENDING} AS p, {EXPIRED} AS e
                       FROM jobs j WHERE j.status = 'Active'))
                   WHERE seq IS NOT NULL ORDER BY priority DESC, created_at, job_id LIMIT 1)
                 RETURNING job_id, seq, start_offset, end_offset, first_line, line_count, attempts, lease_expires,
                   payload"
        ))
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(chunk_from_row).transpose()
    }

    async fn heartbeat(&self, owner: &str, chunks: &[ChunkId], now: Millis, lease_ms: i64) -> Result<Vec<ChunkId>> {
        let mut renewed = Vec::new();
        let mut tx = self.write_tx().await?;
        for c in chunks {
            let res = sqlx::query(
                "UPDATE chunks SET lease_expires = ? WHERE job_id = ? AND seq = ? AND state = 'leased'
                 AND lease_owner = ?",
            )
            .bind(now + lease_ms)
            .bind(&c.job_id)
            .bind(c.seq)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
            if res.rows_affected() == 1 {
                renewed.push(c.clone());
            }
        }
        tx.commit().await?;
        Ok(renewed)
    }

    async fn complete_chunk(&self, owner: &str, chunk: &ChunkId, r: &ChunkResult, now: Millis) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "UPDATE chunks SET state = 'done', lease_owner = NULL, lease_expires = NULL,
               succeeded = ?, failed = ?, succeeded_rows = ?, failed_rows = ?
             WHERE job_id = ? AND seq = ? AND state = 'leased' AND lease_owner = ?",
        )
        .bind(r.succeeded)
        .bind(r.failed)
        .bind(&r.succeeded_rows)
        .bind(&r.failed_rows)
        .bind(&chunk.job_id)
        .bind(chunk.seq)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("UPDATE jobs SET succeeded = succeeded + ?, failed = failed + ?, updated_at = ? WHERE id = ?")
            .bind(r.succeeded)
            .bind(r.failed)
            .bind(now)
            .bind(&chunk.job_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn release_chunk(&self, owner: &str, chunk: &ChunkId) -> Result<()> {
        sqlx::query(
            "UPDATE chunks SET state = 'pending', lease_owner = NULL, lease_expires = NULL
             WHERE job_id = ? AND seq = ? AND state = 'leased' AND lease_owner = ?",
        )
        .bind(&chunk.job_id)
        .bind(chunk.seq)
        .bind(owner)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn fence_chunks(&self, job_id: &str) -> Result<u64> {
        let res = sqlx::query(
            "UPDATE chunks SET state = 'pending', lease_owner = NULL, lease_expires = NULL
             WHERE job_id = ? AND state = 'leased'",
        )
        .bind(job_id)
        .execute(&self.writer)
        .await?;
        Ok(res.rows_affected())
    }

    async fn chunk_counts(&self, job_id: &str, now: Millis) -> Result<ChunkCounts> {
        let r = sqlx::query(
            "SELECT
               COALESCE(SUM(state = 'pending'), 0),
               COALESCE(SUM(state = 'leased' AND lease_expires >= ?), 0),
               COALESCE(SUM(state = 'leased' AND lease_expires < ?), 0),
               COALESCE(SUM(state = 'done'), 0)
             FROM chunks WHERE job_id = ?",
        )
        .bind(now)
        .bind(now)
        .bind(job_id)
        .fetch_one(&self.reader)
        .await?;
        Ok(ChunkCounts { pending: r.try_get(0)?, leased: r.try_get(1)?, expired: r.try_get(2)?, done: r.try_get(3)? })
    }

    async fn chunk_results(&self, job_id: &str, after_seq: i64, limit: i64) -> Result<Vec<ChunkRows>> {
        let rows = sqlx::query(
            "SELECT seq, COALESCE(succeeded_rows, x''), COALESCE(failed_rows, x'') FROM chunks
             WHERE job_id = ? AND seq > ? AND state = 'done' ORDER BY seq LIMIT ?",
        )
        .bind(job_id)
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| Ok(ChunkRows { seq: r.try_get(0)?, succeeded_rows: r.try_get(1)?, failed_rows: r.try_get(2)? }))
            .collect()
    }

    async fn set_report_key(&self, job_id: &str, key: &str) -> Result<()> {
        sqlx::query("UPDATE jobs SET report_key = ? WHERE id = ?").bind(key).bind(job_id).execute(&self.writer).await?;
        Ok(())
    }

    async fn delete_job(&self, job_id: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM chunks WHERE job_id = ?").bind(job_id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM jobs WHERE id = ?").bind(job_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_singleton(&self, name: &str, owner: &str, now: Millis, lease_ms: i64) -> Result<bool> {
        // The upsert's WHERE decides: a row held by someone else whose lease is live is left alone (no change).
        let res = sqlx::query(
            "INSERT INTO singletons (name, owner, expires) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires
             WHERE singletons.owner = excluded.owner OR singletons.expires < ?4",
        )
        .bind(name)
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    async fn release_singleton(&self, name: &str, owner: &str) -> Result<()> {
        sqlx::query("DELETE FROM singletons WHERE name = ? AND owner = ?")
            .bind(name)
            .bind(owner)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn singleton_owner(&self, name: &str, now: Millis) -> Result<Option<String>> {
        let owner = sqlx::query_scalar("SELECT owner FROM singletons WHERE name = ? AND expires >= ?")
            .bind(name)
            .bind(now)
            .fetch_optional(&self.reader)
            .await?;
        Ok(owner)
    }

    async fn register_worker(&self, w: &Worker) -> Result<()> {
        sqlx::query(
            "INSERT OR REPLACE INTO workers
               (id, host, pid, role, started_at, heartbeat_at, chunks_in_flight, lease_ms, draining)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&w.id)
        .bind(&w.host)
        .bind(w.pid)
        .bind(&w.role)
        .bind(w.started_at)
        .bind(w.heartbeat_at)
        .bind(w.chunks_in_flight)
        .bind(w.lease_ms)
        .bind(w.draining)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn worker_heartbeat(&self, id: &str, chunks_in_flight: i64, draining: bool, now: Millis) -> Result<bool> {
        let res = sqlx::query("UPDATE workers SET heartbeat_at = ?, chunks_in_flight = ?, draining = ? WHERE id = ?")
            .bind(now)
            .bind(chunks_in_flight)
            .bind(draining)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(res.rows_affected() == 1)
    }

    async fn deregister_worker(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM workers WHERE id = ?").bind(id).execute(&self.writer).await?;
        Ok(())
    }

    async fn list_workers(&self) -> Result<Vec<Worker>> {
        let rows = sqlx::query(
            "SELECT id, host, pid, role, started_at, heartbeat_at, chunks_in_flight, lease_ms, draining
             FROM workers ORDER BY started_at, id",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Worker {
                    id: r.try_get("id")?,
                    host: r.try_get("host")?,
                    pid: r.try_get("pid")?,
                    role: r.try_get("role")?,
                    started_at: r.try_get("started_at")?,
                    heartbeat_at: r.try_get("heartbeat_at")?,
                    chunks_in_flight: r.try_get("chunks_in_flight")?,
                    lease_ms: r.try_get("lease_ms")?,
                    draining: r.try_get("draining")?,
                })
            })
            .collect()
    }

    async fn prune_workers(&self, heartbeat_before: Millis) -> Result<u64> {
        let res = sqlx::query("DELETE FROM workers WHERE heartbeat_at < ?")
            .bind(heartbeat_before)
            .execute(&self.writer)
            .await?;
        Ok(res.rows_affected())
    }

    async fn open_preparing(&self, job_id: &str, owner: &str, to: JobStatus, now: Millis) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let Some(row) = sqlx::query(
            "UPDATE jobs SET status = ?1, updated_at = ?2,
               suspended_at = CASE WHEN ?1 = 'Suspended' THEN ?2 ELSE NULL END,
               suspended_cause = CASE WHEN ?1 = 'Suspended' THEN 'AwaitingConfirmation' ELSE NULL END
             WHERE id = ?3 AND status = 'Preparing' AND duty_owner = ?4
             RETURNING account_id, failure_reasons, suspended_cause",
        )
        .bind(to.as_str())
        .bind(now)
        .bind(job_id)
        .bind(owner)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(false);
        };
        record_left_preparing(&mut tx, &row, job_id, to, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn finish_listing(&self, job_id: &str, owner: &str, total_tasks: i64, now: Millis) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE jobs SET total_tasks = ?1, updated_at = ?2 WHERE id = ?3 AND duty_owner = ?4 AND total_tasks IS NULL",
        )
        .bind(total_tasks)
        .bind(now)
        .bind(job_id)
        .bind(owner)
        .execute(&self.writer)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    async fn last_chunk(&self, job_id: &str) -> Result<Option<Chunk>> {
        let row = sqlx::query(
            "SELECT job_id, seq, start_offset, end_offset, first_line, line_count, attempts, lease_expires, payload
             FROM chunks WHERE job_id = ? ORDER BY seq DESC LIMIT 1",
        )
        .bind(job_id)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(chunk_from_row).transpose()
    }

    async fn chunk_payloads(&self, job_id: &str, after_seq: i64, limit: i64) -> Result<Vec<(i64, Vec<u8>)>> {
        let rows = sqlx::query(
            "SELECT seq, COALESCE(payload, x'') FROM chunks WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(job_id)
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    async fn set_generated_manifest(&self, job_id: &str, descriptor: &str) -> Result<()> {
        sqlx::query("UPDATE jobs SET generated_manifest = ? WHERE id = ?")
            .bind(descriptor)
            .bind(job_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
    async fn events_after(&self, after_seq: i64, limit: i64) -> Result<Vec<JobEventRecord>> {
        let rows = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?"))
            .bind(after_seq)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn job_events(&self, job_id: &str, limit: i64) -> Result<Vec<JobEventRecord>> {
        let rows = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE job_id = ? ORDER BY seq LIMIT ?"))
            .bind(job_id)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn event_cursor(&self, sink: &str) -> Result<Option<i64>> {
        let seq = sqlx::query_scalar("SELECT seq FROM event_cursors WHERE sink = ?")
            .bind(sink)
            .fetch_optional(&self.reader)
            .await?;
        Ok(seq)
    }

    async fn advance_event_cursor(&self, sink: &str, seq: i64, now: Millis) -> Result<()> {
        sqlx::query(
            "INSERT INTO event_cursors (sink, seq, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (sink) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at
             WHERE event_cursors.seq < excluded.seq",
        )
        .bind(sink)
        .bind(seq)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn prune_events(&self, up_to_seq: i64, before: Millis) -> Result<u64> {
        let res = sqlx::query("DELETE FROM events WHERE seq <= ? AND time < ?")
            .bind(up_to_seq)
            .bind(before)
            .execute(&self.writer)
            .await?;
        Ok(res.rows_affected())
    }

    async fn set_rate_limit(&self, account: &str, id: &str, rate_limit: Option<i64>, now: Millis) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE jobs SET rate_limit = ?, updated_at = ? WHERE id = ? AND account_id = ?
             AND status NOT IN ('Complete', 'Failed', 'Cancelled')",
        )
        .bind(rate_limit)
        .bind(now)
        .bind(id)
        .bind(account)
        .execute(&self.writer)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    async fn job_controls(&self, job_id: &str, now: Millis) -> Result<Option<JobControls>> {
        let row = sqlx::query(
            "SELECT rate_limit, (SELECT COUNT(DISTINCT lease_owner) FROM chunks
               WHERE job_id = jobs.id AND state = 'leased' AND lease_expires >= ?) FROM jobs WHERE id = ?",
        )
        .bind(now)
        .bind(job_id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| Ok(JobControls { rate_limit: r.try_get(0)?, lease_holders: r.try_get(1)? })).transpose()
    }

    async fn claim_chunk_of(&self, owner: &str, job_id: &str, now: Millis, lease_ms: i64) -> Result<Option<Chunk>> {
        let row = sqlx::query(&format!(
            "UPDATE chunks SET state = 'leased', lease_owner = ?1, lease_expires = ?2, attempts = attempts + 1
                 WHERE (job_id, seq) = (
                   SELECT id, MIN(COALESCE(p, e), COALESCE(e, p)) AS seq FROM (
                     SELECT j.id, {PENDING} AS p, {EXPIRED} AS e FROM jobs j WHERE j.id = ?4 AND j.status = 'Active')
                   WHERE seq IS NOT NULL)
                 RETURNING job_id, seq, start_offset, end_offset, first_line, line_count, attempts, lease_expires,
                   payload"
        ))
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .bind(job_id)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(chunk_from_row).transpose()
    }

    async fn chunks_at(&self, job_id: &str, seqs: &[i64]) -> Result<Vec<NewChunk>> {
        let rows = sqlx::query(
            "SELECT seq, start_offset, end_offset, first_line, line_count, payload FROM chunks
             WHERE job_id = ? AND seq IN (SELECT value FROM json_each(?)) ORDER BY seq",
        )
        .bind(job_id)
        .bind(json(&seqs))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(NewChunk {
                    seq: r.try_get(0)?,
                    start_offset: r.try_get(1)?,
                    end_offset: r.try_get(2)?,
                    first_line: r.try_get(3)?,
                    line_count: r.try_get(4)?,
                    payload: r.try_get(5)?,
                })
            })
            .collect()
    }
}

const EVENT_COLUMNS: &str =
    "seq, event_id, job_event_id, time, account_id, job_id, name, from_status, to_status, reason, failure_codes";

/// The JobStatusChanged event of a job leaving Preparing for `to`, in the transaction that moved it: `row` is the
/// move's `RETURNING account_id, failure_reasons, suspended_cause`.
async fn record_left_preparing(
    tx: &mut sqlx::SqliteConnection,
    row: &SqliteRow,
    job_id: &str,
    to: JobStatus,
    now: Millis,
) -> Result<()> {
    let account: String = row.try_get(0)?;
    let reasons: Vec<FailureReason> = parse_json("failure_reasons", &row.try_get::<String, _>(1)?)?;
    let change = StatusChange { suspended_cause: row.try_get(2)?, ..StatusChange::to(to) };
    if let Some(e) =
        JobEventRecord::status_changed((&account, job_id), JobStatus::Preparing, to, &change, &reasons, now)
    {
        insert_event(tx, &e).await?;
    }
    Ok(())
}

/// Record `e` in the caller's transaction (the one making the change it tells of); its seq is the row id.
async fn insert_event(tx: &mut sqlx::SqliteConnection, e: &JobEventRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO events (event_id, job_event_id, time, account_id, job_id, name, from_status, to_status, reason,
           failure_codes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&e.event_id)
    .bind(&e.job_event_id)
    .bind(e.time)
    .bind(&e.account_id)
    .bind(&e.job_id)
    .bind(&e.name)
    .bind(e.from.map(JobStatus::as_str))
    .bind(e.to.as_str())
    .bind(&e.reason)
    .bind(json(&e.failure_codes))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

fn event_from_row(r: &SqliteRow) -> Result<JobEventRecord> {
    let status = |s: &str| JobStatus::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()));
    Ok(JobEventRecord {
        seq: r.try_get("seq")?,
        event_id: r.try_get("event_id")?,
        job_event_id: r.try_get("job_event_id")?,
        time: r.try_get("time")?,
        account_id: r.try_get("account_id")?,
        job_id: r.try_get("job_id")?,
        name: r.try_get("name")?,
        from: r.try_get::<Option<String>, _>("from_status")?.as_deref().map(status).transpose()?,
        to: status(&r.try_get::<String, _>("to_status")?)?,
        reason: r.try_get("reason")?,
        failure_codes: parse_json("failure_codes", &r.try_get::<String, _>("failure_codes")?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        (dir, s)
    }

    macro_rules! conformance {
        ($($name:ident),* $(,)?) => {$(
            #[tokio::test]
            async fn $name() {
                let (_dir, s) = store().await;
                crate::conformance::$name(&s).await;
            }
        )*};
    }

    conformance!(
        create_and_idempotency,
        status_compare_and_set,
        timers_and_dates,
        list_filter_and_paging,
        browse_filters_searches_and_counts,
        chunks_leases_and_commit,
        expired_leases_are_reclaimed,
        fenced_chunks_refuse_late_commits,
        claim_order_follows_priority,
        duty_lease,
        priority_tags_and_delete,
        singleton_lease,
        payload_chunks_and_open_preparing,
        rate_limit_and_job_controls,
        claims_of_one_job_and_chunk_samples,
        workers_register_beat_and_prune,
        events_record_creation_and_changes,
        event_cursors_and_pruning,
    );

    /// One process, one store: the "two handles" of the shared-database tests are the same store.
    macro_rules! conformance_shared {
        ($($name:ident),* $(,)?) => {$(
            #[tokio::test]
            async fn $name() {
                let (_dir, s) = store().await;
                crate::conformance::$name(&s, &s).await;
            }
        )*};
    }

    conformance_shared!(
        concurrent_claims_are_exclusive,
        concurrent_duty_claims_have_one_winner,
        concurrent_creates_are_idempotent,
        concurrent_singleton_claims_have_one_winner,
        concurrent_events_are_read_without_gaps,
    );

    /// Two stores on one database file, as two processes would open it: each has its own writer connection, so
    /// their write transactions contend for SQLite's lock rather than for one pool's connection.
    mod two_stores_on_one_file {
        use super::*;

        macro_rules! two_stores {
            ($($name:ident),* $(,)?) => {$(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (dir, a) = store().await;
                    let b = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
                    crate::conformance::$name(&a, &b).await;
                }
            )*};
        }

        two_stores!(
            concurrent_claims_are_exclusive,
            concurrent_duty_claims_have_one_winner,
            concurrent_creates_are_idempotent,
            concurrent_singleton_claims_have_one_winner,
            concurrent_events_are_read_without_gaps,
        );
    }

    #[tokio::test]
    async fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let s = SqliteStore::open(&path).await.unwrap();
        let job = crate::conformance::new_job("123456789012", "tok");
        s.create_job(&job, 1).await.unwrap();
        drop(s);
        let s = SqliteStore::open(&path).await.unwrap();
        assert!(s.get_job(None, &job.id).await.unwrap().is_some());
    }
}
