//! The SQLite job store: the embedded default. WAL mode; one writer connection (so write transactions never fight
//! over the lock) and a small pool of readers. What it shares with the PostgreSQL store (most statements, the row
//! mappers, the binders) is in `common.rs`; what is here is what SQLite does its own way.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use s3batch_core::{JobStatus, Millis, Tag, Transition};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Row, SqliteConnection, SqlitePool};

use crate::common::*;
use crate::*;

/// SQLite-backed [`JobStore`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

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
        // No ping before each acquire (the pool's default): a SQLite connection is a thread of this process, not a
        // socket that a server or the network can drop, and the ping is a round trip to that thread (a wake-up and
        // a context switch each way) before every statement: with the one after every write, two of a write's three
        // trips to the thread. The ping can only find the thread gone, and the driver ends it only after a failed
        // ROLLBACK, which leaves a transaction counted on the connection: `out_of_transaction` closes it then.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .after_release(|conn, _| Box::pin(out_of_transaction(conn)))
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        // Readers scan result blobs when reports are written; a small page cache each keeps memory flat.
        let reader_opts = opts.read_only(true).pragma("cache_size", "-512");
        let reader =
            SqlitePoolOptions::new().max_connections(4).test_before_acquire(false).connect_with(reader_opts).await?;
        Ok(SqliteStore { writer, reader })
    }

    /// A write transaction that takes the database's write lock at its start (`BEGIN IMMEDIATE`). A deferred
    /// transaction that reads first and writes next cannot wait for the lock when another connection (another
    /// process on the same file) wrote in between: SQLite answers it SQLITE_BUSY at once, whatever the busy
    /// timeout. Taking the lock first makes it wait (up to the busy timeout) instead.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// SQLite reads a negative LIMIT as "no limit".
    fn sql_limit(n: i64) -> i64 {
        n
    }

    /// Applied if `changed`, else what the job row says (see [`job_conflict`]).
    async fn job_outcome(&self, changed: bool, account: Option<&str>, id: &str) -> Result<CasOutcome> {
        if changed { Ok(CasOutcome::Applied) } else { job_conflict_in(&self.writer, account, id).await }
    }

    /// Move the job out of Preparing along `t` with `sql` ([`OPEN_PREPARING`] or [`FINISH_PREPARING`] and its
    /// extra values), recording the event in the same transaction.
    async fn leave_preparing<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
        job_id: &str,
        t: Transition,
        now: Millis,
    ) -> Result<CasOutcome> {
        let mut tx = self.write_tx().await?;
        let Some(row) = query.fetch_optional(&mut *tx).await? else {
            return job_conflict_in(&mut *tx, None, job_id).await;
        };
        if let Some(e) = left_preparing_event(&row, job_id, t, now)? {
            insert_event(&mut tx, &e).await?;
        }
        tx.commit().await?;
        Ok(CasOutcome::Applied)
    }
}

/// The first pending chunk of the job `j`, by the `chunks_claim` index (a seek, however many chunks are done).
const PENDING: &str =
    "(SELECT c.seq FROM chunks c WHERE c.job_id = j.id AND c.state = 'pending' ORDER BY c.seq LIMIT 1)";
/// The first chunk of the job `j` whose lease expired (`$3` is now); only the few leased chunks are looked at.
const EXPIRED: &str = "(SELECT c.seq FROM chunks c WHERE c.job_id = j.id AND c.state = 'leased' \
    AND c.lease_expires < $3 ORDER BY c.seq LIMIT 1)";

fn status_list(statuses: &[JobStatus]) -> String {
    statuses.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(",")
}

job_store_impl! {
    SqliteStore, writer: writer, reader: reader, lock_row: "",

    async fn create_job(&self, new: &NewJob, now: Millis) -> Result<CreateOutcome> {
        let mut tx = self.write_tx().await?;
        let existing = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS}, request_hash FROM jobs WHERE account_id = $1 AND client_request_token = $2"
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
        bind_new_job(sqlx::query(INSERT_JOB), new, now).execute(&mut *tx).await?;
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(&new.id)
            .fetch_one(&mut *tx)
            .await?;
        let job = job_from_row(&row)?;
        insert_event(&mut tx, &JobEventRecord::new((&job.account_id, &job.id), None, job.status, None, &[], now))
            .await?;
        tx.commit().await?;
        Ok(CreateOutcome::Created(job))
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

    async fn job_states(&self, statuses: &[JobStatus]) -> Result<Vec<JobState>> {
        if statuses.is_empty() {
            return Ok(vec![]);
        }
        let rows = sqlx::query(&format!(
            "SELECT {JOB_STATE_COLUMNS}, json_type(spec, '$.ManifestGenerator') IS NOT NULL AS generated \
             FROM jobs WHERE status IN ({}) ORDER BY priority DESC, created_at, id",
            status_list(statuses)
        ))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(job_state_from_row).collect()
    }

    async fn insert_chunks(&self, job_id: &str, owner: &str, chunks: &[NewChunk]) -> Result<CasOutcome> {
        let mut tx = self.write_tx().await?;
        let held = sqlx::query("SELECT 1 FROM jobs WHERE id = $1 AND duty_owner = $2")
            .bind(job_id)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !held {
            return job_conflict_in(&mut *tx, None, job_id).await;
        }
        for c in chunks {
            sqlx::query(
                "INSERT INTO chunks (job_id, seq, start_offset, end_offset, first_line, line_count, payload)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
        Ok(CasOutcome::Applied)
    }

    async fn claim_chunk(&self, owner: &str, now: Millis, lease_ms: i64) -> Result<Option<Chunk>> {
        // One UPDATE: SQLite takes the database's write lock when the statement starts, before it reads the job's
        // status, and a status write and a fence take the same lock. A claim and the write that takes a job out of
        // Active are therefore serialised (across processes too): a claim never leases a chunk of a job that left
        // Active, and a later fence sees every lease.
        let row = sqlx::query(&format!(
            "UPDATE chunks SET state = 'leased', lease_owner = $1, lease_expires = $2, attempts = attempts + 1
                 WHERE (job_id, seq) = (
                   SELECT job_id, seq FROM (
                     SELECT id AS job_id, priority, created_at, MIN(COALESCE(p, e), COALESCE(e, p)) AS seq FROM (
                       SELECT j.id, j.priority, j.created_at, {PENDING} AS p, {EXPIRED} AS e
                       FROM jobs j WHERE j.status = 'Active'))
                   WHERE seq IS NOT NULL ORDER BY priority DESC, created_at, job_id LIMIT 1)
                 RETURNING {CHUNK_COLUMNS}"
        ))
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(chunk_from_row).transpose()
    }

    async fn claim_chunk_of(&self, owner: &str, job_id: &str, now: Millis, lease_ms: i64) -> Result<Option<Chunk>> {
        let row = sqlx::query(&format!(
            "UPDATE chunks SET state = 'leased', lease_owner = $1, lease_expires = $2, attempts = attempts + 1
                 WHERE (job_id, seq) = (
                   SELECT id, MIN(COALESCE(p, e), COALESCE(e, p)) AS seq FROM (
                     SELECT j.id, {PENDING} AS p, {EXPIRED} AS e FROM jobs j WHERE j.id = $4 AND j.status = 'Active')
                   WHERE seq IS NOT NULL)
                 RETURNING {CHUNK_COLUMNS}"
        ))
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .bind(job_id)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(chunk_from_row).transpose()
    }

    async fn heartbeat(&self, owner: &str, chunks: &[ChunkId], now: Millis, lease_ms: i64) -> Result<Vec<ChunkId>> {
        let mut renewed = Vec::new();
        let mut tx = self.write_tx().await?;
        for c in chunks {
            let res = sqlx::query(
                "UPDATE chunks SET lease_expires = $1 WHERE job_id = $2 AND seq = $3 AND state = 'leased'
                 AND lease_owner = $4",
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

    async fn complete_chunk(&self, owner: &str, chunk: &ChunkId, r: &ChunkResult, now: Millis) -> Result<CasOutcome> {
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "UPDATE chunks SET state = 'done', lease_owner = NULL, lease_expires = NULL,
               succeeded = $1, failed = $2, succeeded_rows = $3, failed_rows = $4
             WHERE job_id = $5 AND seq = $6 AND state = 'leased' AND lease_owner = $7",
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
            let exists =
                sqlx::query(CHUNK_EXISTS).bind(&chunk.job_id).bind(chunk.seq).fetch_optional(&mut *tx).await?.is_some();
            return Ok(if exists { CasOutcome::Conflict { found: None } } else { CasOutcome::NotFound });
        }
        sqlx::query("UPDATE jobs SET succeeded = succeeded + $1, failed = failed + $2, updated_at = $3 WHERE id = $4")
            .bind(r.succeeded)
            .bind(r.failed)
            .bind(now)
            .bind(&chunk.job_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(CasOutcome::Applied)
    }

    async fn chunk_counts(&self, job_id: &str, now: Millis) -> Result<ChunkCounts> {
        let r = sqlx::query(
            "SELECT
               COALESCE(SUM(state = 'pending'), 0) AS pending,
               COALESCE(SUM(state = 'leased' AND lease_expires >= $1), 0) AS leased,
               COALESCE(SUM(state = 'leased' AND lease_expires < $1), 0) AS expired,
               COALESCE(SUM(state = 'done'), 0) AS done
             FROM chunks WHERE job_id = $2",
        )
        .bind(now)
        .bind(job_id)
        .fetch_one(&self.reader)
        .await?;
        chunk_counts_from_row(&r)
    }

    async fn chunks_at(&self, job_id: &str, seqs: &[i64]) -> Result<Vec<NewChunk>> {
        let rows = sqlx::query(
            "SELECT seq, start_offset, end_offset, first_line, line_count, payload FROM chunks
             WHERE job_id = $1 AND seq IN (SELECT value FROM json_each($2)) ORDER BY seq",
        )
        .bind(job_id)
        .bind(json(&seqs))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(new_chunk_from_row).collect()
    }

    async fn register_worker(&self, w: &Worker) -> Result<()> {
        let sql =
            format!("INSERT OR REPLACE INTO workers ({WORKER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)");
        bind_worker(sqlx::query(&sql), w).execute(&self.writer).await?;
        Ok(())
    }

}

/// Whether the writer connection, given back to its pool, is out of any transaction (else the pool closes it and
/// opens another). A write that fails with SQLITE_FULL (a full disk) or SQLITE_IOERR makes SQLite roll the whole
/// transaction back itself; the driver's own ROLLBACK, when the transaction is dropped, then fails ("no transaction
/// is active") and the driver goes on counting one open transaction on the connection, refusing every later
/// `BEGIN` on it: the store's only writer could then never write again, even once the disk has room. The ping
/// waits for that queued ROLLBACK to have run (commands run in order on the connection's thread).
///
/// A connection that counts no transaction needs no ping: the driver counts a transaction from its `BEGIN` until its
/// `COMMIT` or `ROLLBACK` has run on the connection's thread, so a dropped transaction whose ROLLBACK is still queued
/// counts. Single statements and committed transactions (nearly every release) so skip the round trip to the thread.
async fn out_of_transaction(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    if !conn.is_in_transaction() {
        return Ok(true);
    }
    conn.ping().await?;
    Ok(!conn.is_in_transaction())
}

/// What a job-level compare-and-set that changed nothing found (see [`job_conflict`]).
async fn job_conflict_in<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Sqlite>,
    account: Option<&str>,
    id: &str,
) -> Result<CasOutcome> {
    job_conflict(sqlx::query(JOB_STATUS).bind(id).bind(account).fetch_optional(db).await?.as_ref())
}

/// Record `e` in the caller's transaction (the one making the change it tells of); its seq is the row id.
async fn insert_event(tx: &mut SqliteConnection, e: &JobEventRecord) -> Result<()> {
    let q = sqlx::query(
        "INSERT INTO events (event_id, job_event_id, time, account_id, job_id, name, from_status, to_status, reason,
           failure_codes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    );
    bind_event(q, e).execute(&mut *tx).await?;
    Ok(())
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

    crate::conformance::single_store_tests!(conformance);

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

    crate::conformance::shared_store_tests!(conformance_shared);

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

        crate::conformance::shared_store_tests!(two_stores);
    }

    #[tokio::test]
    async fn unknown_status_is_refused() {
        let (_dir, s) = store().await;
        let writer = s.writer.clone();
        crate::conformance::unknown_status_is_refused(&s, |sql| {
            let writer = writer.clone();
            async move { sqlx::query(&sql).execute(&writer).await.is_ok() }
        })
        .await;
    }

    /// A database made before the status CHECKs (migration 0009 rebuilds two tables) keeps its jobs, its chunks
    /// and its event numbering.
    #[tokio::test]
    async fn the_status_checks_keep_existing_rows() {
        let dir = tempfile::tempdir().unwrap();
        let opts =
            SqliteConnectOptions::new().filename(dir.path().join("t.db")).create_if_missing(true).foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.unwrap();
        let mut migrator = sqlx::migrate!("./migrations/sqlite");
        let all = migrator.migrations.to_vec();
        migrator.migrations = std::borrow::Cow::Owned(all.iter().filter(|m| m.version < 9).cloned().collect());
        migrator.run(&pool).await.unwrap();
        for sql in [
            "INSERT INTO jobs (id, account_id, status, priority, operation, spec, client_request_token, request_hash, \
             created_at, updated_at) VALUES ('j1', 'a', 'Active', 1, 'op', '{}', 't', 'h', 1, 1)",
            "INSERT INTO chunks (job_id, seq, start_offset, end_offset, first_line, line_count) VALUES ('j1', 0, 0, 1, 1, 1)",
            "INSERT INTO events (event_id, job_event_id, time, account_id, job_id, name, to_status) \
             VALUES ('e1', 'x', 1, 'a', 'j1', 'JobCreated', 'New')",
            "DELETE FROM events",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
        let s = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        let chunks: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chunks").fetch_one(&s.reader).await.unwrap();
        assert_eq!(chunks, 1, "the chunks of the rebuilt jobs table are kept");
        let job = crate::conformance::new_job("123456789012", "tok");
        s.create_job(&job, 2).await.unwrap();
        let seq = s.events_after(0, 10).await.unwrap()[0].seq;
        assert_eq!(seq, 2, "an event seq is never reused, even across the rebuild");
        sqlx::query("DELETE FROM jobs WHERE id = 'j1'").execute(&s.writer).await.unwrap();
        let chunks: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chunks").fetch_one(&s.reader).await.unwrap();
        assert_eq!(chunks, 0, "chunks still belong to their job (ON DELETE CASCADE)");
    }

    /// A full disk (here the page limit, which fails writes with the same SQLITE_FULL) fails a write transaction,
    /// and SQLite rolls it back itself; once there is room again, the writes succeed again.
    #[tokio::test]
    async fn writes_succeed_again_once_a_full_disk_has_room() {
        let (_dir, s) = store().await;
        let job = crate::conformance::new_job("123456789012", "tok");
        s.create_job(&job, 1).await.unwrap();
        assert!(s.claim_duty(&job.id, "w", 1, 60_000).await.unwrap().is_applied());
        let chunk = |seq: i64, bytes: usize| NewChunk {
            seq,
            start_offset: 0,
            end_offset: 1,
            first_line: 1,
            line_count: 1,
            payload: Some(vec![b'x'; bytes]),
        };
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count").fetch_one(&s.writer).await.unwrap();
        sqlx::query(&format!("PRAGMA max_page_count = {pages}")).execute(&s.writer).await.unwrap();
        let full = s.insert_chunks(&job.id, "w", &[chunk(0, 1 << 20)]).await.unwrap_err();
        assert!(full.to_string().contains("database or disk is full"), "{full}");
        // Room again (a fresh writer connection has no page limit; the one that failed, if kept, loses it).
        let _ = sqlx::query("PRAGMA max_page_count = 1073741823").execute(&s.writer).await;
        let again = s.insert_chunks(&job.id, "w", &[chunk(0, 1 << 20)]).await;
        assert!(matches!(again, Ok(CasOutcome::Applied)), "the writer is stuck after a full disk: {again:?}");
        assert_eq!(s.last_chunk(&job.id).await.unwrap().map(|c| c.id.seq), Some(0));
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
