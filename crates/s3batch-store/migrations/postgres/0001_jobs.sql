-- The PostgreSQL schema, in step with migrations/sqlite/0001_jobs.sql (same tables, columns and meaning).
-- Times are milliseconds since the epoch (BIGINT), always passed in by the caller: the database clock is never used.
-- Keys compare bytewise (COLLATE "C"), as in SQLite, so ordering and paging do not depend on the server's locale.
-- JSON is kept as TEXT, byte for byte as serde_json wrote it (JSONB would refuse a "\u0000" a user may send).

-- Jobs: one row each. Counters are updated in the same transaction as the chunk results they count.
CREATE TABLE jobs (
    id                    TEXT COLLATE "C" PRIMARY KEY,
    account_id            TEXT COLLATE "C" NOT NULL,
    status                TEXT COLLATE "C" NOT NULL,
    priority              BIGINT NOT NULL,
    operation             TEXT NOT NULL,
    description           TEXT,
    spec                  TEXT NOT NULL,
    client_request_token  TEXT COLLATE "C" NOT NULL,
    request_hash          TEXT NOT NULL,
    tags                  TEXT NOT NULL DEFAULT '[]',
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    suspended_at          BIGINT,
    suspended_cause       TEXT,
    terminated_at         BIGINT,
    status_update_reason  TEXT,
    failure_reasons       TEXT NOT NULL DEFAULT '[]',
    total_tasks           BIGINT,
    succeeded             BIGINT NOT NULL DEFAULT 0,
    failed                BIGINT NOT NULL DEFAULT 0,
    active_ms             BIGINT NOT NULL DEFAULT 0,
    active_since          BIGINT,
    manifest_etag         TEXT,
    report_key            TEXT,
    -- The job-level duty lease (preparing, finishing): one process at a time.
    duty_owner            TEXT COLLATE "C",
    duty_expires          BIGINT
);
CREATE UNIQUE INDEX jobs_idempotency ON jobs (account_id, client_request_token);
CREATE INDEX jobs_status ON jobs (status);
CREATE INDEX jobs_account_created ON jobs (account_id, created_at, id);

-- Chunks: a byte range of the manifest. Claimed under a lease; results kept as report CSV lines.
CREATE TABLE chunks (
    job_id          TEXT COLLATE "C" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    start_offset    BIGINT NOT NULL,
    end_offset      BIGINT NOT NULL,
    first_line      BIGINT NOT NULL,
    line_count      BIGINT NOT NULL,
    state           TEXT COLLATE "C" NOT NULL DEFAULT 'pending',
    lease_owner     TEXT COLLATE "C",
    lease_expires   BIGINT,
    attempts        BIGINT NOT NULL DEFAULT 0,
    succeeded       BIGINT NOT NULL DEFAULT 0,
    failed          BIGINT NOT NULL DEFAULT 0,
    succeeded_rows  BYTEA,
    failed_rows     BYTEA,
    PRIMARY KEY (job_id, seq)
);
CREATE INDEX chunks_state ON chunks (job_id, state);
-- What claim_chunk walks: a job's unfinished chunks in order. Done chunks (most of a big job) are not in it.
CREATE INDEX chunks_open ON chunks (job_id, seq) WHERE state <> 'done';
