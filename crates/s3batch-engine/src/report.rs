//! The completion report, as AWS writes it: `<prefix>/job-<id>/results/<sha1>.csv` (one file of succeeded and one
//! of failed tasks, each only if it has rows; FailedTasksOnly writes only failures) and
//! `<prefix>/job-<id>/manifest.json` listing them with their MD5. Rows are streamed from the store into temporary
//! files, so a report of any size takes the same memory.
//!
//! An upload that fails for a passing reason is retried at once (with backoff, `max_attempts`); a report that still
//! cannot be written is tried again later, less and less often, for `report_retry_ms` ([`Retries`]): the finisher
//! then gives up, and the job fails with `ReportNotWritten` (its results stay in the job store). A job never
//! reports success without its report.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use md5::{Digest, Md5};
use s3batch_core::report::{REPORT_SCHEMA, ReportManifest, ReportResultFile, TaskStatus, job_prefix};
use s3batch_core::spec::{REPORT_FORMAT, ReportScope};
use s3batch_core::{Millis, arn, time};
use s3batch_storage::{ObjectStore, PutBody, PutOptions, StorageError};
use s3batch_store::{Job, StoreError};
use sha1::Sha1;

use crate::{Engine, EngineConfig, now, retry};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("local file: {0}")]
    Local(#[from] std::io::Error),
}

/// Chunks' result rows read from the store at once while assembling a report (about 60 KB of rows each).
const REPORT_PAGE_CHUNKS: i64 = 8;

/// One results file being assembled.
struct Part {
    file: tempfile::NamedTempFile,
    md5: Md5,
    sha1: Sha1,
    rows: u64,
}

impl Part {
    fn new(dir: &Option<PathBuf>) -> std::io::Result<Part> {
        let file = match dir {
            Some(d) => tempfile::NamedTempFile::new_in(d)?,
            None => tempfile::NamedTempFile::new()?,
        };
        Ok(Part { file, md5: Md5::new(), sha1: Sha1::new(), rows: 0 })
    }

    fn append(&mut self, rows: &[u8]) -> std::io::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.file.write_all(rows)?;
        self.md5.update(rows);
        self.sha1.update(rows);
        self.rows += rows.iter().filter(|b| **b == b'\n').count() as u64;
        Ok(())
    }
}

/// Write the report of `job`; returns the key of its manifest.json.
pub async fn write(engine: &Engine, job: &Job) -> Result<String, ReportError> {
    let r = &job.spec.report;
    let bucket = r
        .bucket
        .as_deref()
        .and_then(arn::parse_bucket_arn)
        .ok_or_else(|| StorageError::invalid_argument("the report bucket is not a bucket ARN"))?;
    let failed_only = r.report_scope == Some(ReportScope::FailedTasksOnly);
    let dir = engine.config.work_dir.clone();
    let mut succeeded = Part::new(&dir)?;
    let mut failed = Part::new(&dir)?;
    let mut after = -1;
    loop {
        let page = engine.store.chunk_results(&job.id, after, REPORT_PAGE_CHUNKS).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for c in &page {
            if !failed_only {
                succeeded.append(&c.succeeded_rows)?;
            }
            failed.append(&c.failed_rows)?;
        }
    }

    let store = engine.router_for(job).store_for(&bucket)?;
    let prefix = job_prefix(r.prefix.as_deref(), &job.id);
    let mut results = Vec::new();
    for (status, mut part) in [(TaskStatus::Succeeded, succeeded), (TaskStatus::Failed, failed)] {
        if part.rows == 0 {
            continue;
        }
        part.file.flush()?;
        let key = format!("{prefix}/results/{}.csv", hex::encode(part.sha1.finalize()));
        let body = PutBody::File(part.file.path().to_path_buf());
        upload(&engine.config, &*store, &bucket, &key, body, &PutOptions::default()).await?;
        results.push(ReportResultFile {
            task_execution_status: status,
            bucket: bucket.clone(),
            md5_checksum: hex::encode(part.md5.finalize()),
            key,
        });
    }
    let manifest = ReportManifest {
        format: REPORT_FORMAT.into(),
        report_creation_date: time::format_iso(now()),
        results,
        report_schema: REPORT_SCHEMA.into(),
    };
    let key = format!("{prefix}/manifest.json");
    let body = serde_json::to_vec(&manifest).expect("plain data always serialises");
    let mut opts = PutOptions::default();
    opts.metadata.content_type = Some("application/json".into());
    upload(&engine.config, &*store, &bucket, &key, PutBody::Bytes(body.into()), &opts).await?;
    tracing::info!(job = %job.id, %bucket, %key, "report written");
    Ok(key)
}

/// Put one file of the report, retrying passing failures with backoff (`max_attempts` in all).
async fn upload(
    c: &EngineConfig,
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
    body: PutBody,
    opts: &PutOptions,
) -> Result<(), StorageError> {
    retry::storage_call(c, || false, || store.put_object(bucket, key, body.clone(), opts)).await.map(|_| ())
}

/// Longest wait between two attempts at a report that keeps failing.
const MAX_RETRY_DELAY_MS: u64 = 60_000;
/// First wait after a failed attempt.
const FIRST_RETRY_DELAY_MS: u64 = 1_000;

/// This process's failed attempts at writing reports, by job: when the first failed, how many did, when the next
/// may start. The finisher of a job may change between attempts (each attempt takes the job's duty lease anew), so
/// each process counts its own: none of them retries for longer than `report_retry_ms`.
#[derive(Debug, Default)]
pub struct Retries(Mutex<HashMap<String, Retry>>);

#[derive(Debug, Clone, Copy)]
struct Retry {
    first: Millis,
    attempts: u32,
    next: Millis,
}

impl Retries {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Retry>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether an attempt at `job_id`'s report may start at `now` (its last failure's backoff is over).
    pub fn due(&self, job_id: &str, now: Millis) -> bool {
        self.map().get(job_id).is_none_or(|r| now >= r.next)
    }

    /// The report was written (or the job is no longer this process's business): forget its failures.
    pub fn forget(&self, job_id: &str) {
        self.map().remove(job_id);
    }

    /// An attempt failed with `error` at `now`: `None` to try again later, or the reason to fail the job with
    /// (a permanent error, or failures for `retry_ms` and more).
    pub fn failed(&self, job_id: &str, error: &ReportError, now: Millis, retry_ms: i64) -> Option<String> {
        let mut map = self.map();
        // Entries of jobs finished elsewhere would stay forever: drop the ones long past any retry.
        map.retain(|_, r| now - r.first <= 2 * retry_ms);
        let r = map.entry(job_id.to_string()).or_insert(Retry { first: now, attempts: 0, next: now });
        r.attempts += 1;
        let permanent = matches!(error, ReportError::Storage(e) if !e.transient);
        let waited = now - r.first;
        if !permanent && waited < retry_ms {
            let delay = retry::backoff(r.attempts, FIRST_RETRY_DELAY_MS, MAX_RETRY_DELAY_MS).as_millis() as i64;
            r.next = now + delay.max(FIRST_RETRY_DELAY_MS as i64 / 2);
            return None;
        }
        let attempts = r.attempts;
        map.remove(job_id);
        Some(give_up_reason(error, permanent, waited, attempts))
    }
}

/// The FailureReason's text when a report cannot be written.
fn give_up_reason(error: &ReportError, permanent: bool, waited: Millis, attempts: u32) -> String {
    let cause = match error {
        ReportError::Storage(e) => format!("{} ({}): {}", e.code, e.http_status, e.message),
        other => other.to_string(),
    };
    if permanent {
        format!("the completion report could not be written: {cause}")
    } else {
        format!(
            "the completion report could not be written: still failing after {} s ({attempts} attempts): {cause}",
            waited / 1000
        )
    }
}
