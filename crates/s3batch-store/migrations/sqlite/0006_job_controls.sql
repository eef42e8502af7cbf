-- Per-job rate limit (extension), in tasks per second for the whole job; NULL: no limit. Set at creation from the
-- spec's RateLimit and changed while the job runs; running workers read it about once a second.
ALTER TABLE jobs ADD COLUMN rate_limit BIGINT;
