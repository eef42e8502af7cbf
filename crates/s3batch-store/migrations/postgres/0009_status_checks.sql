-- The database itself refuses a status that is not one of the 13 (s3batch_core::JobStatus), or a chunk state that is
-- not one of the three, whatever wrote it.
ALTER TABLE jobs ADD CONSTRAINT jobs_status_known CHECK (status IN ('New', 'Preparing', 'Suspended', 'Ready', 'Active', 'Pausing', 'Paused', 'Completing', 'Complete', 'Cancelling', 'Cancelled', 'Failing', 'Failed'));
ALTER TABLE events ADD CONSTRAINT events_to_status_known CHECK (to_status IN ('New', 'Preparing', 'Suspended', 'Ready', 'Active', 'Pausing', 'Paused', 'Completing', 'Complete', 'Cancelling', 'Cancelled', 'Failing', 'Failed'));
ALTER TABLE events ADD CONSTRAINT events_from_status_known CHECK (from_status IS NULL OR from_status IN ('New', 'Preparing', 'Suspended', 'Ready', 'Active', 'Pausing', 'Paused', 'Completing', 'Complete', 'Cancelling', 'Cancelled', 'Failing', 'Failed'));
ALTER TABLE chunks ADD CONSTRAINT chunks_state_known CHECK (state IN ('pending', 'leased', 'done'));
