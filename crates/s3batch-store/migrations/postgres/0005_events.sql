-- In step with migrations/sqlite/0005_events.sql (same tables, columns and meaning).

-- Job events (the transactional outbox): one row per job creation and per status change, written in the same
-- transaction as the change itself. A reader that delivers `seq > cursor` in order must never see seq n+1 before
-- seq n is committed, or it would move its cursor past n for good. A plain sequence does not give that (numbers
-- are taken in one order and committed in another), so each writer takes the next number from the one-row
-- `event_seq` table with an UPDATE as the last statement of its transaction: the row lock is held until commit,
-- so numbers are committed in the order they are taken. Every writer locks its job row first and this row last,
-- so the lock order is the same everywhere.
-- No foreign key to jobs: the events of a job outlive it (retention removes the job, not its audit trail).
CREATE TABLE events (
    seq            BIGINT PRIMARY KEY,
    event_id       TEXT NOT NULL,
    job_event_id   TEXT NOT NULL,
    time           BIGINT NOT NULL,
    account_id     TEXT COLLATE "C" NOT NULL,
    job_id         TEXT COLLATE "C" NOT NULL,
    name           TEXT NOT NULL,
    from_status    TEXT,
    to_status      TEXT NOT NULL,
    reason         TEXT,
    failure_codes  TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX events_time ON events (time);

CREATE TABLE event_seq (
    id    BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    last  BIGINT NOT NULL
);
INSERT INTO event_seq (id, last) VALUES (TRUE, 0);

-- How far each sink (the audit log, each webhook) got: every event with seq <= its cursor was delivered (or given up).
CREATE TABLE event_cursors (
    sink        TEXT COLLATE "C" PRIMARY KEY,
    seq         BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
