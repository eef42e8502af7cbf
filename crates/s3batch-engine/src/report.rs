//! The completion report, as AWS writes it: `<prefix>/job-<id>/results/<sha1>.csv` (one file of succeeded and one
//! of failed tasks, each only if it has rows; FailedTasksOnly writes only failures) and
//! `<prefix>/job-<id>/manifest.json` listing them with their MD5. Rows are streamed from the store into temporary
//! files, so a report of any size takes the same memory.

use std::io::Write;
use std::path::PathBuf;

use md5::{Digest, Md5};
use s3batch_core::report::{REPORT_SCHEMA, ReportManifest, ReportResultFile, TaskStatus, job_prefix};
use s3batch_core::spec::{REPORT_FORMAT, ReportScope};
use s3batch_core::{arn, time};
use s3batch_storage::{PutBody, PutOptions, StorageError};
use s3batch_store::{Job, StoreError};
use sha1::Sha1;

use crate::{Engine, now};

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
        store.put_object(&bucket, &key, body, &PutOptions::default()).await?;
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
    store.put_object(&bucket, &key, PutBody::Bytes(body.into()), &opts).await?;
    tracing::info!(job = %job.id, %bucket, %key, "report written");
    Ok(key)
}
