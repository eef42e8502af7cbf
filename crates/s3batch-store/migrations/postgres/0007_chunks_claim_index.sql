-- Claims seek the first pending (or lease-expired) chunk of a job by (job_id, state, seq) instead of walking
-- past the job's done chunks: a claim costs the same at the last chunk of a 10-million-line job as at the first.
CREATE INDEX chunks_claim ON chunks (job_id, state, seq);
