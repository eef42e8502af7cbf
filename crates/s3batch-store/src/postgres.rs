//! The PostgreSQL job store: for a fleet. Many processes (API servers and workers) share one database, which is the
//! only coordination between them, so nothing here relies on state kept in the process:
//!
//! - every status write is a compare-and-set, `UPDATE … WHERE status = $expected`; a concurrent writer waits for
//!   the row lock and then re-checks the condition on the row as committed (READ COMMITTED), so exactly one of two
//!   writers from the same status wins;
//! - `(account, ClientRequestToken)` is a unique index and `create_job` inserts with `ON CONFLICT DO NOTHING`, so
//!   two processes creating the same job at once get the same job;
//! - chunks are claimed with `FOR UPDATE SKIP LOCKED`: claimers never wait for each other and never get the same
//!   chunk; a lease-expired chunk is claimable again; a claim holds a share lock on its job row until it commits,
//!   and re-checks under it that the job is Active, so a claim and the status write that takes the job out of
//!   Active are serialised: no chunk is leased after the finisher fenced the job's chunks;
//! - a chunk's results and the job's counters are written by one statement, only while the lease is held;
//! - the job-level duty lease is a conditional `UPDATE` on the job row: free, expired, or already ours;
//! - a process-wide singleton lease (the scheduler's) is an upsert whose `ON CONFLICT DO UPDATE … WHERE` checks
//!   the same three cases on the row's latest version, so two processes racing for it get one winner;
//! - a job event is recorded by the transaction that makes the change, as its last statement, numbered from the
//!   one-row `event_seq` table whose lock is held until commit: events commit in seq order, so a reader following
//!   them with a cursor never skips one.
//!
//! Migrations run on connect under sqlx's advisory lock, so processes starting together do not race.

use std::str::FromStr;

use s3batch_core::{JobStatus, Millis, Tag, Transition};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Row};

use crate::common::*;
use crate::*;

/// PostgreSQL-backed [`JobStore`].
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

/// Connections per process. Store calls are short; the engine's task concurrency does not need one each.
const MAX_CONNECTIONS: u32 = 10;

impl PgStore {
    /// Connect to a `postgres://…` URL and run the migrations.
    pub async fn connect(url: &str) -> Result<PgStore> {
        Self::connect_with(PgConnectOptions::from_str(url)?).await
    }

    /// Connect with options built in code and run the migrations.
    pub async fn connect_with(opts: PgConnectOptions) -> Result<PgStore> {
        // One plain connection first: a wrong host, password or database fails at once with the server's own
        // answer, where the pool would retry until its acquire timeout and then say only "timed out".
        sqlx::Connection::close(<sqlx::PgConnection as sqlx::Connection>::connect_with(&opts).await?).await?;
        let pool = PgPoolOptions::new().max_connections(MAX_CONNECTIONS).connect_with(opts).await?;
        Self::from_pool(pool).await
    }

    /// Use a pool the caller built, after running the migrations on it.
    pub async fn from_pool(pool: PgPool) -> Result<PgStore> {
        // sqlx holds a PostgreSQL advisory lock while migrating: concurrent starts apply each migration once.
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool })
    }

    /// Close every connection (waits for the ones in use to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A transaction for a write (READ COMMITTED: a compare-and-set re-checks its condition on the row it locks).
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }

    /// A negative LIMIT means "no limit": PostgreSQL refuses it, and reads NULL that way.
    fn sql_limit(n: i64) -> Option<i64> {
        (n >= 0).then_some(n)
    }

    /// Applied if `changed`, else what the job row says (see [`job_conflict`]).
    async fn job_outcome(&self, changed: bool, account: Option<&str>, id: &str) -> Result<CasOutcome> {
        if changed { Ok(CasOutcome::Applied) } else { job_conflict_in(&self.pool, account, id).await }
    }

    /// Move the job out of Preparing along `t` with `query` ([`OPEN_PREPARING`] or [`FINISH_PREPARING`] and its
    /// extra values), recording the event in the same transaction.
    async fn leave_preparing<'q>(
        &self,
        query: sqlx::query::Query<'q, Postgres, PgArguments>,
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

/// The job of the chunk a claim chose (`next`), if it is still Active, locked `FOR KEY SHARE` until the claim
/// commits. The claim's first step reads the job's status in the statement's snapshot and locks only the chunk row,
/// so without this a claim could read Active, the job leave Active and the finisher fence its chunks (which takes
/// away only the leases it sees) and read the counters, and the claim then lease a chunk that no fence will ever
/// see: its commit would land after the report. The status write locks the job row `FOR UPDATE` (see
/// `update_status`), which this lock conflicts with: a claim that took it first commits before the job can leave
/// Active, so the fence sees its lease; a claim that comes second waits, reads the row as committed (READ
/// COMMITTED re-checks `status = 'Active'` on the new version) and claims nothing. `KEY SHARE` conflicts with
/// nothing else the engine does to a job row (counter and lease updates take `FOR NO KEY UPDATE`), so claims do
/// not queue behind chunk commits.
const LIVE_JOB: &str = "SELECT id FROM jobs WHERE id = (SELECT job_id FROM next) AND status = 'Active' FOR KEY SHARE";

fn status_names(statuses: &[JobStatus]) -> Vec<&'static str> {
    statuses.iter().map(|s| s.as_str()).collect()
}

job_store_impl! {
    PgStore, writer: pool, reader: pool, lock_row: " FOR UPDATE",

    async fn create_job(&self, new: &NewJob, now: Millis) -> Result<CreateOutcome> {
        loop {
            // The unique index decides between two processes creating the same job at once: the loser's insert
            // waits for the winner's commit, does nothing, and reads the winner's job below. The winner records
            // the JobCreated event in the same transaction.
            let mut tx = self.write_tx().await?;
            let sql = format!(
                "{INSERT_JOB} ON CONFLICT (account_id, client_request_token) DO NOTHING RETURNING {JOB_COLUMNS}"
            );
            let inserted = bind_new_job(sqlx::query(&sql), new, now).fetch_optional(&mut *tx).await?;
            if let Some(row) = inserted {
                let job = job_from_row(&row)?;
                let event = JobEventRecord::new((&job.account_id, &job.id), None, job.status, None, &[], now);
                insert_event(&mut tx, &event).await?;
                tx.commit().await?;
                return Ok(CreateOutcome::Created(job));
            }
            tx.rollback().await?;
            let existing = sqlx::query(&format!(
                "SELECT {JOB_COLUMNS}, request_hash FROM jobs WHERE account_id = $1 AND client_request_token = $2"
            ))
            .bind(&new.account_id)
            .bind(&new.client_request_token)
            .fetch_optional(&self.pool)
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
            // The job holding the token was deleted (retention) between the two statements: insert again.
        }
    }

    async fn list_jobs(&self, account: &str, f: &ListFilter) -> Result<Vec<Job>> {
        let mut q = QueryBuilder::<Postgres>::new(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE account_id = "));
        q.push_bind(account);
        if !f.statuses.is_empty() {
            q.push(" AND status = ANY(").push_bind(status_names(&f.statuses)).push(")");
        }
        if let Some((t, id)) = &f.after {
            q.push(" AND (created_at, id) < (").push_bind(*t).push(", ").push_bind(id.as_str()).push(")");
        }
        if let Some(t) = f.terminated_after {
            q.push(" AND (terminated_at IS NULL OR terminated_at >= ").push_bind(t).push(")");
        }
        q.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(PgStore::sql_limit(f.limit));
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn jobs_in(&self, statuses: &[JobStatus]) -> Result<Vec<Job>> {
        if statuses.is_empty() {
            return Ok(vec![]);
        }
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE status = ANY($1) ORDER BY priority DESC, created_at, id"
        ))
        .bind(status_names(statuses))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn job_states(&self, statuses: &[JobStatus]) -> Result<Vec<JobState>> {
        if statuses.is_empty() {
            return Ok(vec![]);
        }
        let rows = sqlx::query(&format!(
            "SELECT {JOB_STATE_COLUMNS}, (spec::jsonb -> 'ManifestGenerator') IS NOT NULL AS generated \
             FROM jobs WHERE status = ANY($1) ORDER BY priority DESC, created_at, id"
        ))
        .bind(status_names(statuses))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_state_from_row).collect()
    }

    async fn insert_chunks(&self, job_id: &str, owner: &str, chunks: &[NewChunk]) -> Result<CasOutcome> {
        let mut tx = self.write_tx().await?;
        // FOR SHARE keeps the duty lease from changing hands until these chunks are committed.
        let held = sqlx::query("SELECT 1 FROM jobs WHERE id = $1 AND duty_owner = $2 FOR SHARE")
            .bind(job_id)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !held {
            return job_conflict_in(&mut *tx, None, job_id).await;
        }
        if !chunks.is_empty() {
            let column = |f: fn(&NewChunk) -> i64| chunks.iter().map(f).collect::<Vec<i64>>();
            sqlx::query(
                "INSERT INTO chunks (job_id, seq, start_offset, end_offset, first_line, line_count, payload)
                 SELECT $1, * FROM UNNEST($2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
                   $7::bytea[])",
            )
            .bind(job_id)
            .bind(column(|c| c.seq))
            .bind(column(|c| c.start_offset))
            .bind(column(|c| c.end_offset))
            .bind(column(|c| c.first_line))
            .bind(column(|c| c.line_count))
            .bind(chunks.iter().map(|c| c.payload.as_deref()).collect::<Vec<Option<&[u8]>>>())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(CasOutcome::Applied)
    }

    async fn claim_chunk(&self, owner: &str, now: Millis, lease_ms: i64) -> Result<Option<Chunk>> {
        // Active jobs in claim order (priority, then age), and for each its first claimable chunk, until one is
        // found: the jobs are sorted first so that only the winning job's chunk index is walked and locked
        // (the outer ORDER BY keeps the order whatever plan is chosen). SKIP LOCKED: a chunk another claimer is
        // taking right now is passed over, not waited for. A chunk claimed and committed since this statement
        // began is re-checked under its lock (READ COMMITTED) and, now leased, passed over too: no two claimers
        // ever get the same chunk. Then the chosen chunk's job is locked and checked again (see [`LIVE_JOB`]).
        let row = sqlx::query(&format!(
            "WITH next AS (
               SELECT c.job_id, c.seq
               FROM (SELECT id, priority, created_at FROM jobs WHERE status = 'Active'
                     ORDER BY priority DESC, created_at, id) j
               CROSS JOIN LATERAL (
                 SELECT c.job_id, c.seq FROM chunks c
                 WHERE c.job_id = j.id
                   AND (c.state = 'pending' OR (c.state = 'leased' AND c.lease_expires < $3))
                 ORDER BY c.seq
                 LIMIT 1
                 FOR UPDATE SKIP LOCKED) c
               ORDER BY j.priority DESC, j.created_at, j.id
               LIMIT 1),
             live AS ({LIVE_JOB})
             UPDATE chunks c SET state = 'leased', lease_owner = $1, lease_expires = $2, attempts = c.attempts + 1
             FROM next, live WHERE c.job_id = next.job_id AND c.seq = next.seq AND live.id = next.job_id
             RETURNING c.job_id, c.seq, c.start_offset, c.end_offset, c.first_line, c.line_count, c.attempts,
               c.lease_expires, c.payload"
        ))
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(chunk_from_row).transpose()
    }

    async fn claim_chunk_of(&self, owner: &str, job_id: &str, now: Millis, lease_ms: i64) -> Result<Option<Chunk>> {
        // As claim_chunk, for one job: its first claimable chunk, passing over the ones being claimed right now.
        let row = sqlx::query(&format!(
            "WITH next AS (
               SELECT c.job_id, c.seq FROM chunks c JOIN jobs j ON j.id = c.job_id
               WHERE c.job_id = $4 AND j.status = 'Active'
                 AND (c.state = 'pending' OR (c.state = 'leased' AND c.lease_expires < $3))
               ORDER BY c.seq
               LIMIT 1
               FOR UPDATE OF c SKIP LOCKED),
             live AS ({LIVE_JOB})
             UPDATE chunks c SET state = 'leased', lease_owner = $1, lease_expires = $2, attempts = c.attempts + 1
             FROM next, live WHERE c.job_id = next.job_id AND c.seq = next.seq AND live.id = next.job_id
             RETURNING c.job_id, c.seq, c.start_offset, c.end_offset, c.first_line, c.line_count, c.attempts,
               c.lease_expires, c.payload"
        ))
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(chunk_from_row).transpose()
    }

    async fn heartbeat(&self, owner: &str, chunks: &[ChunkId], now: Millis, lease_ms: i64) -> Result<Vec<ChunkId>> {
        if chunks.is_empty() {
            return Ok(vec![]);
        }
        let job_ids: Vec<&str> = chunks.iter().map(|c| c.job_id.as_str()).collect();
        let seqs: Vec<i64> = chunks.iter().map(|c| c.seq).collect();
        let rows = sqlx::query(
            "UPDATE chunks c SET lease_expires = $1
             FROM UNNEST($2::text[], $3::bigint[]) AS u (job_id, seq)
             WHERE c.job_id = u.job_id AND c.seq = u.seq AND c.state = 'leased' AND c.lease_owner = $4
             RETURNING c.job_id, c.seq",
        )
        .bind(now + lease_ms)
        .bind(job_ids)
        .bind(seqs)
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        let renewed = rows
            .iter()
            .map(|r| Ok(ChunkId { job_id: r.text("job_id")?, seq: r.int("seq")? }))
            .collect::<Result<std::collections::HashSet<ChunkId>>>()?;
        // In the caller's order, as the SQLite store answers.
        Ok(chunks.iter().filter(|c| renewed.contains(c)).cloned().collect())
    }

    async fn complete_chunk(&self, owner: &str, chunk: &ChunkId, r: &ChunkResult, now: Millis) -> Result<CasOutcome> {
        // One statement, so one transaction: the chunk's rows and the job's counters commit together, and only if
        // the chunk is still leased to `owner` (the chunk row's lock orders this against a reclaim or a fence).
        let res = sqlx::query(
            "WITH done AS (
               UPDATE chunks SET state = 'done', lease_owner = NULL, lease_expires = NULL,
                 succeeded = $1, failed = $2, succeeded_rows = $3, failed_rows = $4
               WHERE job_id = $5 AND seq = $6 AND state = 'leased' AND lease_owner = $7
               RETURNING job_id)
             UPDATE jobs SET succeeded = jobs.succeeded + $1, failed = jobs.failed + $2, updated_at = $8
             FROM done WHERE jobs.id = done.job_id",
        )
        .bind(r.succeeded)
        .bind(r.failed)
        .bind(&r.succeeded_rows)
        .bind(&r.failed_rows)
        .bind(&chunk.job_id)
        .bind(chunk.seq)
        .bind(owner)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if res.rows_affected() == 1 {
            return Ok(CasOutcome::Applied);
        }
        let exists = sqlx::query(CHUNK_EXISTS).bind(&chunk.job_id).bind(chunk.seq).fetch_optional(&self.pool).await?;
        Ok(if exists.is_some() { CasOutcome::Conflict { found: None } } else { CasOutcome::NotFound })
    }

    async fn chunk_counts(&self, job_id: &str, now: Millis) -> Result<ChunkCounts> {
        let r = sqlx::query(
            "SELECT
               COUNT(*) FILTER (WHERE state = 'pending') AS pending,
               COUNT(*) FILTER (WHERE state = 'leased' AND lease_expires >= $1) AS leased,
               COUNT(*) FILTER (WHERE state = 'leased' AND lease_expires < $1) AS expired,
               COUNT(*) FILTER (WHERE state = 'done') AS done
             FROM chunks WHERE job_id = $2",
        )
        .bind(now)
        .bind(job_id)
        .fetch_one(&self.pool)
        .await?;
        chunk_counts_from_row(&r)
    }

    async fn chunks_at(&self, job_id: &str, seqs: &[i64]) -> Result<Vec<NewChunk>> {
        let rows = sqlx::query(
            "SELECT seq, start_offset, end_offset, first_line, line_count, payload FROM chunks
             WHERE job_id = $1 AND seq = ANY($2) ORDER BY seq",
        )
        .bind(job_id)
        .bind(seqs)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(new_chunk_from_row).collect()
    }

    async fn register_worker(&self, w: &Worker) -> Result<()> {
        let sql = format!(
            "INSERT INTO workers ({WORKER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (id) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid, role = EXCLUDED.role,
               started_at = EXCLUDED.started_at, heartbeat_at = EXCLUDED.heartbeat_at,
               chunks_in_flight = EXCLUDED.chunks_in_flight, lease_ms = EXCLUDED.lease_ms,
               draining = EXCLUDED.draining"
        );
        bind_worker(sqlx::query(&sql), w).execute(&self.pool).await?;
        Ok(())
    }

}

/// What a job-level compare-and-set that changed nothing found (see [`job_conflict`]).
async fn job_conflict_in<'e>(
    db: impl sqlx::Executor<'e, Database = Postgres>,
    account: Option<&str>,
    id: &str,
) -> Result<CasOutcome> {
    job_conflict(sqlx::query(JOB_STATUS).bind(id).bind(account).fetch_optional(db).await?.as_ref())
}

/// Record `e` in the caller's transaction (the one making the change it tells of), as its last statement: the
/// number comes from the `event_seq` row, whose lock is then held until commit, so numbers commit in order (see
/// migrations/postgres/0005_events.sql).
async fn insert_event(tx: &mut PgConnection, e: &JobEventRecord) -> Result<()> {
    let q = sqlx::query(
        "WITH n AS (UPDATE event_seq SET last = last + 1 RETURNING last)
         INSERT INTO events (seq, event_id, job_event_id, time, account_id, job_id, name, from_status, to_status,
           reason, failure_codes)
         SELECT n.last, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM n",
    );
    bind_event(q, e).execute(&mut *tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The conformance suite against a real PostgreSQL. Each test gets a database of its own (created here,
    //! dropped afterwards, even when the test fails), so the tests run in parallel. The server is
    //! `postgres://postgres@127.0.0.1:5432/postgres` unless `S3BATCH_TEST_DATABASE_URL` names another; if it
    //! cannot be reached the tests fail: they never skip.

    use std::future::Future;

    use sqlx::{Connection, Executor, PgConnection};

    use super::*;
    use crate::testing::{ServerUse, postgres_server_lock};

    const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

    /// A database that exists for one test, on the shared server held shared meanwhile (see [`crate::testing`]).
    struct TestDb {
        admin: PgConnectOptions,
        name: String,
        _server: std::fs::File,
    }

    impl TestDb {
        async fn create() -> TestDb {
            let server =
                tokio::task::spawn_blocking(|| postgres_server_lock(ServerUse::Shared)).await.expect("taking the lock");
            let url = std::env::var("S3BATCH_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_string());
            let admin = PgConnectOptions::from_str(&url)
                .unwrap_or_else(|e| panic!("S3BATCH_TEST_DATABASE_URL is not a PostgreSQL URL: {e}"));
            let name = format!("s3batch_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = Self::admin_connection(&admin).await;
            conn.execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .unwrap_or_else(|e| panic!("creating the test database {name}: {e}"));
            let _ = conn.close().await;
            TestDb { admin, name, _server: server }
        }

        async fn admin_connection(admin: &PgConnectOptions) -> PgConnection {
            PgConnection::connect_with(admin).await.unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is not reachable at {}:{} as user {:?} (database {:?}): {e}\n\
                     The PostgreSQL store tests need a server: start the local one with \
                     `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` (scripts/test.sh \
                     does), or point S3BATCH_TEST_DATABASE_URL at one (a user that may CREATE DATABASE).",
                    admin.get_host(),
                    admin.get_port(),
                    admin.get_username(),
                    admin.get_database().unwrap_or("postgres"),
                )
            })
        }

        fn options(&self) -> PgConnectOptions {
            self.admin.clone().database(&self.name)
        }

        async fn drop_db(self) {
            let mut conn = Self::admin_connection(&self.admin).await;
            // FORCE: a failed test may have left connections open.
            conn.execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
                .await
                .unwrap_or_else(|e| panic!("dropping the test database {}: {e}", self.name));
            let _ = conn.close().await;
        }
    }

    /// Run `test` on a fresh database; drop the database whatever happens, then pass on the test's panic.
    async fn on_fresh_database<F, Fut>(test: F)
    where
        F: FnOnce(PgConnectOptions) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let db = TestDb::create().await;
        let outcome = tokio::spawn(test(db.options())).await;
        db.drop_db().await;
        if let Err(e) = outcome {
            match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => panic!("the test did not finish: {e}"),
            }
        }
    }

    async fn store(opts: &PgConnectOptions) -> PgStore {
        PgStore::connect_with(opts.clone()).await.expect("connecting to the test database")
    }

    macro_rules! conformance {
        ($($name:ident),* $(,)?) => {$(
            #[tokio::test]
            async fn $name() {
                on_fresh_database(|opts| async move {
                    let s = store(&opts).await;
                    crate::conformance::$name(&s).await;
                    s.close().await;
                })
                .await;
            }
        )*};
    }

    crate::conformance::single_store_tests!(conformance);

    /// Tests of several processes sharing one database: each handle has its own pool, as a process would.
    macro_rules! conformance_shared {
        ($($name:ident),* $(,)?) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                on_fresh_database(|opts| async move {
                    let a = store(&opts).await;
                    let b = store(&opts).await;
                    crate::conformance::$name(&a, &b).await;
                    a.close().await;
                    b.close().await;
                })
                .await;
            }
        )*};
    }

    crate::conformance::shared_store_tests!(conformance_shared);

    #[tokio::test]
    async fn unknown_status_is_refused() {
        on_fresh_database(|opts| async move {
            let s = store(&opts).await;
            let pool = s.pool.clone();
            crate::conformance::unknown_status_is_refused(&s, |sql| {
                let pool = pool.clone();
                async move { sqlx::query(&sql).execute(&pool).await.is_ok() }
            })
            .await;
            s.close().await;
        })
        .await;
    }

    #[tokio::test]
    async fn survives_reconnect() {
        on_fresh_database(|opts| async move {
            let s = store(&opts).await;
            let job = crate::conformance::new_job("123456789012", "tok");
            s.create_job(&job, 1).await.unwrap();
            s.close().await;
            // Connecting again runs the migrations again: nothing to do, nothing lost.
            let s = store(&opts).await;
            assert!(s.get_job(None, &job.id).await.unwrap().is_some());
            s.close().await;
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn processes_starting_together_migrate_once() {
        on_fresh_database(|opts| async move {
            let (a, b, c) = tokio::join!(store(&opts), store(&opts), store(&opts));
            let job = crate::conformance::new_job("123456789012", "tok");
            a.create_job(&job, 1).await.unwrap();
            assert!(b.get_job(None, &job.id).await.unwrap().is_some());
            assert!(c.get_job(None, &job.id).await.unwrap().is_some());
            for s in [a, b, c] {
                s.close().await;
            }
        })
        .await;
    }
}
