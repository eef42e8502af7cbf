-- In step with migrations/sqlite/0002_workers.sql (same tables, columns and meaning).

-- Processes running an engine, for `s3batch workers` and GET /api/v1/workers. Each registers on start, beats every
-- third of its lease, and deletes its row on a graceful exit; a row whose heartbeat is old is a lost worker.
CREATE TABLE workers (
    id                TEXT COLLATE "C" PRIMARY KEY,
    host              TEXT NOT NULL,
    pid               BIGINT NOT NULL,
    role              TEXT NOT NULL,
    started_at        BIGINT NOT NULL,
    heartbeat_at      BIGINT NOT NULL,
    chunks_in_flight  BIGINT NOT NULL DEFAULT 0,
    lease_ms          BIGINT NOT NULL,
    draining          BOOLEAN NOT NULL DEFAULT FALSE
);

-- Process-wide leases: a duty that spans jobs (the scheduler's ranking and sweeps) is done by the one holder.
CREATE TABLE singletons (
    name     TEXT COLLATE "C" PRIMARY KEY,
    owner    TEXT COLLATE "C" NOT NULL,
    expires  BIGINT NOT NULL
);
