//! Per-task audit events (`[engine.events] data_events = true`): one JSON line per task, in the shape CloudTrail
//! gives an S3 data event (`eventName` the S3 call, `requestParameters` with `bucketName`, `key` and `versionId`,
//! `errorCode` / `errorMessage` when it failed, `additionalEventData.jobId`), appended to `data_events_log`.
//!
//! The job never waits for this file. A task's event goes into a bounded buffer (`data_events_buffer` lines); a
//! writer task appends what the buffer holds in batches and fsyncs each batch. When the buffer is full (the disk
//! is slower than the tasks), the event is dropped and counted in `s3batch_data_events_dropped_total`: the job
//! runs on at full speed, and the counter says how much of the trail is missing. Written lines are counted in
//! `s3batch_data_events_written_total`. Events in the buffer when the process dies are lost with it; every batch
//! written before is on disk.

use std::path::{Path, PathBuf};

use metrics::Counter;
use s3batch_core::Operation;
use s3batch_storage::StorageError;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Lines a batch may hold before it is written.
const BATCH: usize = 4096;

/// Where per-task events go.
#[derive(Debug, Clone)]
pub struct DataEvents {
    tx: mpsc::Sender<String>,
    dropped: Counter,
    region: String,
}

/// One task, as its event tells it.
#[derive(Debug, Clone, Copy)]
pub struct TaskEvent<'a> {
    pub job_id: &'a str,
    pub account: &'a str,
    pub role: Option<&'a str>,
    pub operation: &'a Operation,
    pub bucket: &'a str,
    pub key: &'a str,
    pub version_id: Option<&'a str>,
    /// `None`: the task succeeded.
    pub error: Option<&'a StorageError>,
    pub dry_run: bool,
}

impl DataEvents {
    /// Open (append to) `path` and start the writer (on the current Tokio runtime); `buffer` lines may wait for it.
    pub fn start(path: &Path, buffer: usize, region: &str) -> std::io::Result<DataEvents> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let file = tokio::fs::File::from_std(file);
        let (tx, rx) = mpsc::channel(buffer.max(1));
        tokio::spawn(write_batches(file, rx, path.to_path_buf()));
        Ok(DataEvents {
            tx,
            dropped: metrics::counter!("s3batch_data_events_dropped_total"),
            region: region.to_string(),
        })
    }

    /// Queue a task's event; never waits (a full buffer drops it and counts the drop).
    pub fn record(&self, t: &TaskEvent<'_>) {
        if self.tx.try_send(self.line(t)).is_err() {
            self.dropped.increment(1);
        }
    }

    /// The CloudTrail-shaped line of a task.
    pub fn line(&self, t: &TaskEvent<'_>) -> String {
        let mut request = serde_json::json!({ "bucketName": t.bucket, "key": t.key });
        if let Some(v) = t.version_id {
            request["versionId"] = serde_json::json!(v);
        }
        let mut e = serde_json::json!({
            "eventVersion": "1.09",
            "userIdentity": {
                "type": "AssumedRole",
                "accountId": t.account,
                "arn": t.role,
                "invokedBy": "batchoperations.s3.amazonaws.com",
            },
            "eventTime": s3batch_core::time::format_iso(crate::now()),
            "eventSource": "s3.amazonaws.com",
            "eventName": event_name(t.operation),
            "awsRegion": self.region,
            "sourceIPAddress": "batchoperations.s3.amazonaws.com",
            "userAgent": concat!("s3batch/", env!("CARGO_PKG_VERSION")),
            "requestParameters": request,
            "responseElements": null,
            "additionalEventData": {
                "jobId": t.job_id,
                "operation": t.operation.name(),
                "dryRun": t.dry_run,
            },
            "eventID": uuid::Uuid::new_v4().to_string(),
            "readOnly": false,
            "resources": [
                {"type": "AWS::S3::Object", "ARN": format!("arn:aws:s3:::{}/{}", t.bucket, t.key)},
                {"type": "AWS::S3::Bucket", "ARN": format!("arn:aws:s3:::{}", t.bucket)},
            ],
            "eventType": "AwsApiCall",
            "managementEvent": false,
            "recipientAccountId": t.account,
            "eventCategory": "Data",
        });
        if let Some(err) = t.error {
            e["errorCode"] = serde_json::json!(err.code);
            e["errorMessage"] = serde_json::json!(err.message);
        }
        e.to_string()
    }
}

/// The S3 call a task of `op` makes (its main one: a copy may also read tags or ACLs).
pub fn event_name(op: &Operation) -> &'static str {
    match op {
        Operation::LambdaInvoke(_) => "Invoke",
        Operation::S3PutObjectCopy(_) | Operation::S3ReplicateObject(_) | Operation::S3UpdateObjectEncryption(_) => {
            "CopyObject"
        }
        Operation::S3PutObjectAcl(_) => "PutObjectAcl",
        Operation::S3PutObjectTagging(_) | Operation::S3AddObjectTagging(_) | Operation::S3RemoveObjectTagging(_) => {
            "PutObjectTagging"
        }
        Operation::S3DeleteObjectTagging(_) => "DeleteObjectTagging",
        Operation::S3InitiateRestoreObject(_) => "RestoreObject",
        Operation::S3PutObjectLegalHold(_) => "PutObjectLegalHold",
        Operation::S3PutObjectRetention(_) => "PutObjectRetention",
        Operation::S3ComputeObjectChecksum(_) => "GetObject",
        Operation::S3DeleteObject(_) => "DeleteObject",
    }
}

async fn write_batches(mut file: tokio::fs::File, mut rx: mpsc::Receiver<String>, path: PathBuf) {
    let written = metrics::counter!("s3batch_data_events_written_total");
    let mut batch = String::new();
    while let Some(first) = rx.recv().await {
        batch.clear();
        batch.push_str(&first);
        batch.push('\n');
        let mut n = 1;
        while n < BATCH
            && let Ok(line) = rx.try_recv()
        {
            batch.push_str(&line);
            batch.push('\n');
            n += 1;
        }
        let done = async {
            file.write_all(batch.as_bytes()).await?;
            file.sync_data().await
        };
        match done.await {
            Ok(()) => written.increment(n as u64),
            Err(e) => tracing::error!(path = %path.display(), error = %e, lines = n, "writing data events failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_cloudtrail_shaped_and_a_full_buffer_drops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/events.jsonl");
        let events = DataEvents::start(&path, 4, "us-east-1").unwrap();
        let op: Operation = serde_json::from_value(serde_json::json!({"S3DeleteObject": {}})).unwrap();
        let missing = StorageError::no_such_key();
        let t = TaskEvent {
            job_id: "job-1",
            account: "111111111111",
            role: Some("arn:aws:iam::111111111111:role/r"),
            operation: &op,
            bucket: "b",
            key: "k 1",
            version_id: Some("v1"),
            error: Some(&missing),
            dry_run: false,
        };
        let v: serde_json::Value = serde_json::from_str(&events.line(&t)).unwrap();
        assert_eq!(v["eventName"], "DeleteObject");
        assert_eq!(v["requestParameters"], serde_json::json!({"bucketName": "b", "key": "k 1", "versionId": "v1"}));
        assert_eq!(
            (v["errorCode"].as_str(), v["additionalEventData"]["jobId"].as_str()),
            (Some("NoSuchKey"), Some("job-1"))
        );
        for _ in 0..100 {
            events.record(&t);
        }
        drop(events);
        // The writer drains what the buffer held, then ends with the channel.
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            if std::fs::read_to_string(&path).map(|s| s.lines().count()).unwrap_or(0) >= 4 {
                break;
            }
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let n = text.lines().count();
        assert!((4..100).contains(&n), "a 4-line buffer keeps some and drops the rest: {n}");
        assert!(text.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    }
}
