-- Jobs: one row each. Counters are updated in the same transaction as the chunk results they count.
CREATE TABLE jobs (
    id                    TEXT PRIMARY KEY NOT NULL,
    account_id            TEXT NOT NULL,
    status                TEXT NOT NULL,
    priority              INTEGER NOT NULL,
    operation             TEXT NOT NULL,
    description           TEXT,
    spec                  TEXT NOT NULL,
    client_request_token  TEXT NOT NULL,
    request_hash          TEXT NOT NULL,
    tags                  TEXT NOT NULL DEFAULT '[]',
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    suspended_at          INTEGER,
    suspended_cause       TEXT,
    terminated_at         INTEGER,
    status_update_reason  TEXT,
    failure_reasons       TEXT NOT NULL DEFAULT '[]',
    total_tasks           INTEGER,
    succeeded             INTEGER NOT NULL DEFAULT 0,
    failed                INTEGER NOT NULL DEFAULT 0,
    active_ms             INTEGER NOT NULL DEFAULT 0,
    active_since          INTEGER,
    manifest_etag         TEXT,
    report_key            TEXT,
    duty_owner            TEXT,
    duty_expires          INTEGER
);
CREATE UNIQUE INDEX jobs_idempotency ON jobs (account_id, client_request_token);
CREATE INDEX jobs_status ON jobs (status);
CREATE INDEX jobs_account_created ON jobs (account_id, created_at, id);

-- Chunks: a byte range of the manifest. Claimed under a lease; results kept as report CSV lines.
CREATE TABLE chunks (
    job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    start_offset    INTEGER NOT NULL,
    end_offset      INTEGER NOT NULL,
    first_line      INTEGER NOT NULL,
    line_count      INTEGER NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    lease_owner     TEXT,
    lease_expires   INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,
    succeeded       INTEGER NOT NULL DEFAULT 0,
    failed          INTEGER NOT NULL DEFAULT 0,
    succeeded_rows  BLOB,
    failed_rows     BLOB,
    PRIMARY KEY (job_id, seq)
);
CREATE INDEX chunks_state ON chunks (job_id, state);
