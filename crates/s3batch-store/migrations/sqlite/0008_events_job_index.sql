-- A job's events (its status history in the console).
CREATE INDEX events_job ON events (job_id, seq);
