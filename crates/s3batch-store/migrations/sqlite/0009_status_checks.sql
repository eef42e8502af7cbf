-- The database itself refuses a status that is not one of the 13 (s3batch_core::JobStatus), or a chunk state that is
-- not one of the three, whatever wrote it.
-- SQLite adds a CHECK only by rebuilding the table (https://www.sqlite.org/lang_altertable.html#otheralter). sqlx
-- runs a SQLite migration inside a transaction, where `PRAGMA foreign_keys = OFF` does nothing: with foreign keys on,
-- dropping `jobs` would delete every chunk (ON DELETE CASCADE), and renaming it makes the chunks' foreign key follow
-- the old table. So both tables are rebuilt: the old ones are renamed away (the chunks' key follows to `jobs_old`),
-- the new ones made under the real names and filled (new chunks reference the new jobs), and the old ones dropped,
-- child first, so that nothing cascades.
ALTER TABLE chunks RENAME TO chunks_old;
ALTER TABLE jobs RENAME TO jobs_old;
DROP INDEX jobs_idempotency;
DROP INDEX jobs_status;
DROP INDEX jobs_account_created;
DROP INDEX chunks_state;
DROP INDEX chunks_claim;

CREATE TABLE jobs (
    id                    TEXT PRIMARY KEY NOT NULL,
    account_id            TEXT NOT NULL,
    status                TEXT NOT NULL CHECK (status IN ('New', 'Preparing', 'Suspended', 'Ready', 'Active', 'Pausing', 'Paused', 'Completing', 'Complete', 'Cancelling', 'Cancelled', 'Failing', 'Failed')),
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
    duty_expires          INTEGER,
    user_paused           INTEGER NOT NULL DEFAULT 0,
    generated_manifest    TEXT,
    rate_limit            BIGINT
);
INSERT INTO jobs (id, account_id, status, priority, operation, description, spec, client_request_token,
    request_hash, tags, created_at, updated_at, suspended_at, suspended_cause, terminated_at, status_update_reason,
    failure_reasons, total_tasks, succeeded, failed, active_ms, active_since, manifest_etag, report_key, duty_owner,
    duty_expires, user_paused, generated_manifest, rate_limit)
SELECT id, account_id, status, priority, operation, description, spec, client_request_token,
    request_hash, tags, created_at, updated_at, suspended_at, suspended_cause, terminated_at, status_update_reason,
    failure_reasons, total_tasks, succeeded, failed, active_ms, active_since, manifest_etag, report_key, duty_owner,
    duty_expires, user_paused, generated_manifest, rate_limit
FROM jobs_old;
CREATE UNIQUE INDEX jobs_idempotency ON jobs (account_id, client_request_token);
CREATE INDEX jobs_status ON jobs (status);
CREATE INDEX jobs_account_created ON jobs (account_id, created_at, id);

CREATE TABLE chunks (
    job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    start_offset    INTEGER NOT NULL,
    end_offset      INTEGER NOT NULL,
    first_line      INTEGER NOT NULL,
    line_count      INTEGER NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'leased', 'done')),
    lease_owner     TEXT,
    lease_expires   INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,
    succeeded       INTEGER NOT NULL DEFAULT 0,
    failed          INTEGER NOT NULL DEFAULT 0,
    succeeded_rows  BLOB,
    failed_rows     BLOB,
    payload         BLOB,
    PRIMARY KEY (job_id, seq)
);
INSERT INTO chunks (job_id, seq, start_offset, end_offset, first_line, line_count, state, lease_owner, lease_expires,
    attempts, succeeded, failed, succeeded_rows, failed_rows, payload)
SELECT job_id, seq, start_offset, end_offset, first_line, line_count, state, lease_owner, lease_expires,
    attempts, succeeded, failed, succeeded_rows, failed_rows, payload
FROM chunks_old;
DROP TABLE chunks_old;
DROP TABLE jobs_old;
CREATE INDEX chunks_state ON chunks (job_id, state);
CREATE INDEX chunks_claim ON chunks (job_id, state, seq);

-- Events keep their seq, and the AUTOINCREMENT counter keeps its place (a seq is never reused, even when every
-- event was pruned): the counter of the old table is carried over to the new one before the old one goes.
CREATE TABLE events_new (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       TEXT NOT NULL,
    job_event_id   TEXT NOT NULL,
    time           INTEGER NOT NULL,
    account_id     TEXT NOT NULL,
    job_id         TEXT NOT NULL,
    name           TEXT NOT NULL,
    from_status    TEXT CHECK (from_status IS NULL OR from_status IN ('New', 'Preparing', 'Suspended', 'Ready', 'Active', 'Pausing', 'Paused', 'Completing', 'Complete', 'Cancelling', 'Cancelled', 'Failing', 'Failed')),
    to_status      TEXT NOT NULL CHECK (to_status IN ('New', 'Preparing', 'Suspended', 'Ready', 'Active', 'Pausing', 'Paused', 'Completing', 'Complete', 'Cancelling', 'Cancelled', 'Failing', 'Failed')),
    reason         TEXT,
    failure_codes  TEXT NOT NULL DEFAULT '[]'
);
INSERT INTO events_new (seq, event_id, job_event_id, time, account_id, job_id, name, from_status, to_status, reason,
    failure_codes)
SELECT seq, event_id, job_event_id, time, account_id, job_id, name, from_status, to_status, reason, failure_codes
FROM events;
DELETE FROM sqlite_sequence WHERE name = 'events_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'events_new', seq FROM sqlite_sequence WHERE name = 'events';
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
CREATE INDEX events_time ON events (time);
CREATE INDEX events_job ON events (job_id, seq);
