-- Processes running an engine, for `s3batch workers` and GET /api/v1/workers. Each registers on start, beats every
-- third of its lease, and deletes its row on a graceful exit; a row whose heartbeat is old is a lost worker.
CREATE TABLE workers (
    id                TEXT PRIMARY KEY NOT NULL,
    host              TEXT NOT NULL,
    pid               INTEGER NOT NULL,
    role              TEXT NOT NULL,
    started_at        INTEGER NOT NULL,
    heartbeat_at      INTEGER NOT NULL,
    chunks_in_flight  INTEGER NOT NULL DEFAULT 0,
    lease_ms          INTEGER NOT NULL,
    draining          INTEGER NOT NULL DEFAULT 0
);

-- Process-wide leases: a duty that spans jobs (the scheduler's ranking and sweeps) is done by the one holder.
CREATE TABLE singletons (
    name     TEXT PRIMARY KEY NOT NULL,
    owner    TEXT NOT NULL,
    expires  INTEGER NOT NULL
);
