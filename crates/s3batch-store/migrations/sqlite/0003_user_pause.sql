-- A job a user paused (UpdateJobStatus requestedJobStatus=Paused): the scheduler leaves it Paused until resumed.
ALTER TABLE jobs ADD COLUMN user_paused INTEGER NOT NULL DEFAULT 0;
