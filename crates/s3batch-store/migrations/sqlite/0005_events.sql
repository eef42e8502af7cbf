-- Job events (the transactional outbox): one row per job creation and per status change, written in the same
-- transaction as the change itself, so an event exists exactly when its change was committed. The engine's event
-- dispatcher reads them in `seq` order and delivers them to the audit log and the webhooks.
-- AUTOINCREMENT: a seq is never reused, even after every row was pruned, so a sink's cursor never skips an event.
-- The single writer connection commits transactions one at a time, so seq order is commit order.
-- No foreign key to jobs: the events of a job outlive it (retention removes the job, not its audit trail).
CREATE TABLE events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       TEXT NOT NULL,
    job_event_id   TEXT NOT NULL,
    time           INTEGER NOT NULL,
    account_id     TEXT NOT NULL,
    job_id         TEXT NOT NULL,
    name           TEXT NOT NULL,
    from_status    TEXT,
    to_status      TEXT NOT NULL,
    reason         TEXT,
    failure_codes  TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX events_time ON events (time);

-- How far each sink (the audit log, each webhook) got: every event with seq <= its cursor was delivered (or given up).
CREATE TABLE event_cursors (
    sink        TEXT PRIMARY KEY NOT NULL,
    seq         INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
