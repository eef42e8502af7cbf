//! Shared by the operation tests (memory, moto, Garage): one job over a manifest, run to the end, and its report.

use std::time::{Duration, Instant};

use bytes::Bytes;
use s3batch_core::report::{OwnedReportRow, ReportManifest, TaskStatus, parse_rows};
use s3batch_core::{JobSpec, JobStatus};
use s3batch_engine::service::JobService;
use s3batch_storage::{ObjectRef, ObjectStore, PutBody, PutOptions};
use s3batch_store::Job;
use serde_json::{Value, json};

pub const ACCOUNT: &str = "123456789012";

/// A report: its succeeded and failed rows.
#[derive(Debug)]
pub struct Rows {
    pub succeeded: Vec<OwnedReportRow>,
    pub failed: Vec<OwnedReportRow>,
}

/// The whole object, or a panic that names it.
pub async fn get(store: &dyn ObjectStore, bucket: &str, key: &str) -> Bytes {
    let got = store.get_object(&ObjectRef::new(bucket, key), None).await;
    got.unwrap_or_else(|e| panic!("s3://{bucket}/{key}: {e}")).bytes().await.unwrap()
}

/// Write the manifest `lines` (`bucket, key[, version]`: all with a version or none) to `manifests/<key>` on `meta`,
/// run `operation` over it as one job until it finishes (it must be Complete, within `timeout`), and read its
/// report from the bucket `reports` on `meta`. The job's counters must equal the report's rows.
pub async fn run_job(
    service: &JobService,
    meta: &dyn ObjectStore,
    key: &str,
    operation: Value,
    lines: &[&[&str]],
    timeout: Duration,
) -> (Job, Rows) {
    let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    for l in lines {
        w.write_record(*l).unwrap();
    }
    let body = PutBody::Bytes(w.into_inner().unwrap().into());
    let etag = meta.put_object("manifests", key, body, &PutOptions::default()).await.unwrap().etag.unwrap();
    let fields = if lines[0].len() == 3 { json!(["Bucket", "Key", "VersionId"]) } else { json!(["Bucket", "Key"]) };
    let spec = json!({
        "Operation": operation,
        "Manifest": {
            "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": fields},
            "Location": {"ObjectArn": format!("arn:aws:s3:::manifests/{key}"), "ETag": etag}
        },
        "Report": {"Enabled": true, "Bucket": "arn:aws:s3:::reports", "Format": "Report_CSV_20180820",
                   "ReportScope": "AllTasks", "Prefix": "out"},
        "Priority": 10,
        "ConfirmationRequired": false,
        "RoleArn": "arn:aws:iam::123456789012:role/batch"
    });
    let spec: JobSpec = serde_json::from_value(spec).expect("a JobSpec");
    let id = service.create(ACCOUNT, None, spec).await.expect("created").id;
    let deadline = Instant::now() + timeout;
    let job = loop {
        let job = service.describe(ACCOUNT, &id).await.unwrap();
        if job.status.is_terminal() {
            break job;
        }
        assert!(Instant::now() < deadline, "job {id} not finished: {job:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.failure_reasons);
    let rows = report_rows(meta, &job).await;
    (job, rows)
}

/// The rows of a job's report in the bucket `reports` of `meta`; the job's counters must equal them.
pub async fn report_rows(meta: &dyn ObjectStore, job: &Job) -> Rows {
    report_rows_in(meta, "reports", job).await
}

/// The rows of a job's report in `bucket` of `meta`; the job's counters must equal them.
pub async fn report_rows_in(meta: &dyn ObjectStore, bucket: &str, job: &Job) -> Rows {
    let manifest = get(meta, bucket, job.report_key.as_deref().expect("a report")).await;
    let files: ReportManifest = serde_json::from_slice(&manifest).unwrap();
    let mut rows = Rows { succeeded: vec![], failed: vec![] };
    for f in files.results {
        let parsed = parse_rows(&get(meta, bucket, &f.key).await).unwrap();
        match f.task_execution_status {
            TaskStatus::Succeeded => rows.succeeded = parsed,
            TaskStatus::Failed => rows.failed = parsed,
        }
    }
    assert_eq!(job.succeeded as usize, rows.succeeded.len());
    assert_eq!(job.failed as usize, rows.failed.len());
    rows
}
