-- Chunks whose lines are not a byte range of the job's manifest object (an S3 Inventory report's data files, a
-- generated listing, the failed tasks of another job) carry their lines themselves, as
-- S3BatchOperations_CSV_20180820 lines `bucket,url-encoded key,version id`.
ALTER TABLE chunks ADD COLUMN payload BYTEA;
-- The manifest a ManifestGenerator job wrote (GeneratedManifestDescriptor, JSON).
ALTER TABLE jobs ADD COLUMN generated_manifest TEXT;
