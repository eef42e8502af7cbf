//! The impact preview of a prepared job (typically while it waits in Suspended for confirmation): how many tasks,
//! how many bytes, how many storage requests, and how long at the current throughput.
//!
//! Bytes come from a HEAD of a bounded sample of the manifest's lines: up to [`SAMPLE_OBJECTS`] lines from up to
//! [`SAMPLE_CHUNKS`] chunks spread evenly over the manifest (a random run of lines in each), extrapolated to every
//! task. The number of requests per task depends on the operation and on each sampled object's size (a copy above
//! the multipart threshold is CreateMultipartUpload + one UploadPartCopy per part + CompleteMultipartUpload; a
//! copy between two backends is a GET and a PUT, or a multipart upload of parts). The duration uses the job's own
//! measured throughput once tasks have run, else what the sample's HEAD latency allows at the process's
//! concurrency; a rate limit caps either.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use rand::Rng;
use s3batch_core::manifest::{CsvLayout, ManifestFormat, ManifestTask, csv_reader};
use s3batch_core::{JobStatus, Operation, arn};
use s3batch_storage::config::{DEFAULT_MULTIPART_PART_SIZE, DEFAULT_MULTIPART_THRESHOLD};
use s3batch_storage::{ObjectInfo, ObjectRef, Router, StorageError};
use s3batch_store::{Job, JobStore};
use serde::{Deserialize, Serialize};

use crate::error::ServiceError;
use crate::ops::{CROSS_STORE_PART_SIZE, copy_request};

/// Most objects a preview HEADs.
pub const SAMPLE_OBJECTS: usize = 64;
/// Most chunks (spread over the manifest) the sample is drawn from.
pub const SAMPLE_CHUNKS: usize = 16;
/// HEADs in flight at once.
const SAMPLE_CONCURRENCY: usize = 8;

/// What a job would do, as far as a sample tells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Preview {
    pub job_id: String,
    pub status: JobStatus,
    pub operation: String,
    pub dry_run: bool,
    pub total_number_of_tasks: i64,
    /// Tasks that already ran (succeeded or failed).
    pub tasks_done: i64,
    /// Objects HEADed for the estimate.
    pub sample_size: u64,
    /// Sampled objects the HEAD failed for, by error code (`NoSuchKey`, `AccessDenied`, …): the real run would
    /// fail these tasks too.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sample_failures: BTreeMap<String, u64>,
    /// Bytes of every object, extrapolated from the sample (exact when the sample is every task).
    pub total_bytes: u64,
    /// Whether `total_bytes` is exact (every task was sampled) rather than extrapolated.
    pub total_bytes_exact: bool,
    /// Mean storage requests per task (from the operation and the sampled sizes).
    pub requests_per_task: f64,
    /// Storage requests the whole job should take (without retries).
    pub expected_requests: u64,
    /// Mean HEAD latency of the sample, in milliseconds.
    pub sample_latency_ms: f64,
    /// Tasks per second the estimate assumes.
    pub throughput_tasks_per_second: f64,
    /// Where that throughput comes from: `measured` (the job's own progress), `sample` (the sample's latency ×
    /// the concurrency), or `rate-limit` (the job's limit, lower than either).
    pub throughput_basis: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<i64>,
    /// Seconds the tasks not yet run should take.
    pub estimated_seconds: f64,
}

/// The preview of `job` (which must be prepared), sampling through `router`. `concurrency` is the engine's
/// requests in flight per process.
pub async fn preview(
    store: &dyn JobStore,
    router: &Router,
    concurrency: usize,
    job: &Job,
    now: s3batch_core::Millis,
) -> Result<Preview, ServiceError> {
    let total = job.total_tasks.ok_or_else(|| {
        ServiceError::wrong_status(
            job.status,
            format!(
                "job {} is {}: the preview is ready once the manifest is prepared (Suspended, Ready or later)",
                job.id, job.status
            ),
        )
    })?;
    let tasks = sample_tasks(store, router, job, total, now).await?;
    let heads = head_sample(router, tasks).await;
    let op = &job.spec.operation;
    let sample = Sample::of(&heads, |task, size| requests_per_task(op, router, task, size, job.spec.dry_run));
    let n = heads.len() as u64;
    let exact = n as i64 == total;
    let total_bytes = match (exact, sample.found) {
        (true, _) => sample.bytes,
        (false, 0) => 0,
        (false, f) => ((sample.bytes as f64 / f as f64) * total as f64).round() as u64,
    };
    let per_task = if n == 0 { 1.0 } else { sample.requests as f64 / n as f64 };
    let latency_ms = if n == 0 { 0.0 } else { sample.latency.as_secs_f64() * 1000.0 / n as f64 };
    let done = job.succeeded + job.failed;
    let (rate, basis) = throughput(job, now, concurrency, latency_ms, per_task);
    let remaining = (total - done).max(0);
    Ok(Preview {
        job_id: job.id.clone(),
        status: job.status,
        operation: op.name().into(),
        dry_run: job.spec.dry_run,
        total_number_of_tasks: total,
        tasks_done: done,
        sample_size: n,
        sample_failures: sample.failures,
        total_bytes,
        total_bytes_exact: exact,
        requests_per_task: (per_task * 100.0).round() / 100.0,
        expected_requests: (per_task * total as f64).round() as u64,
        sample_latency_ms: (latency_ms * 100.0).round() / 100.0,
        throughput_tasks_per_second: (rate * 100.0).round() / 100.0,
        throughput_basis: basis.into(),
        rate_limit: job.rate_limit,
        estimated_seconds: ((remaining as f64 / rate) * 1000.0).round() / 1000.0,
    })
}

/// A sampled task, what its HEAD answered, and how long that took.
type Head = (ManifestTask, Result<ObjectInfo, StorageError>, Duration);

/// HEAD every sampled task's object, [`SAMPLE_CONCURRENCY`] at a time.
async fn head_sample(router: &Router, tasks: Vec<ManifestTask>) -> Vec<Head> {
    // Boxed: a stream of borrowing futures would not be `Send` for every lifetime, as an axum handler needs.
    type Pending<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Head> + Send + 'a>>;
    futures::stream::iter(tasks.into_iter().map(|t| -> Pending<'_> {
        Box::pin(async move {
            let obj = ObjectRef::new(&t.bucket, &t.key).with_version(t.version_id.clone());
            let start = tokio::time::Instant::now();
            let r = match router.store_for(&t.bucket) {
                Ok(s) => s.head_object(&obj).await,
                Err(e) => Err(e),
            };
            let took = start.elapsed();
            (t, r, took)
        })
    }))
    .buffer_unordered(SAMPLE_CONCURRENCY)
    .collect::<Vec<_>>()
    .await
}

/// What the sample's HEADs add up to.
struct Sample {
    bytes: u64,
    found: u64,
    requests: u64,
    latency: Duration,
    failures: BTreeMap<String, u64>,
}

impl Sample {
    /// Tally the HEADs; `requests(task, size)` is what a found object's task costs.
    fn of(heads: &[Head], requests: impl Fn(&ManifestTask, u64) -> u64) -> Sample {
        let mut s = Sample { bytes: 0, found: 0, requests: 0, latency: Duration::ZERO, failures: BTreeMap::new() };
        for (task, r, took) in heads {
            s.latency += *took;
            match r {
                Ok(info) => {
                    s.bytes += info.size;
                    s.found += 1;
                    s.requests += requests(task, info.size);
                }
                Err(e) => {
                    *s.failures.entry(e.code.clone()).or_insert(0) += 1;
                    // The real run sends its first request and fails there.
                    s.requests += 1;
                }
            }
        }
        s
    }
}

/// Tasks per second the job will run at, and what that figure rests on: the job's own measured rate, or else
/// the sample's latency at `concurrency` tasks at once; capped by the job's rate limit.
fn throughput(
    job: &Job,
    now: s3batch_core::Millis,
    concurrency: usize,
    latency_ms: f64,
    per_task: f64,
) -> (f64, &'static str) {
    let done = job.succeeded + job.failed;
    let active = job.active_seconds(now);
    let (mut rate, mut basis) = if done > 0 && active > 0 {
        (done as f64 / active as f64, "measured")
    } else {
        // Each task's requests one after the other, `concurrency` tasks at once.
        let per_task_s = (latency_ms / 1000.0).max(1e-4) * per_task;
        (concurrency.max(1) as f64 / per_task_s, "sample")
    };
    if let Some(l) = job.rate_limit
        && (l as f64) < rate
    {
        (rate, basis) = (l as f64, "rate-limit");
    }
    (rate, basis)
}

async fn sample_tasks(
    store: &dyn JobStore,
    router: &Router,
    job: &Job,
    total: i64,
    now: s3batch_core::Millis,
) -> Result<Vec<ManifestTask>, ServiceError> {
    // Chunks of inventories, generated manifests and re-runs carry their lines; the others are byte ranges of the
    // CSV manifest.
    let csv = match &job.spec.manifest {
        Some(m) if m.spec.format == ManifestFormat::S3BatchOperationsCsv20180820 => {
            let (bucket, key) = arn::parse_object_arn(&m.location.object_arn)
                .ok_or_else(|| ServiceError::bad_request("the manifest ARN is not an object ARN"))?;
            let layout = CsvLayout::new(&m.spec.fields).map_err(|e| ServiceError::bad_request(e.to_string()))?;
            Some((ObjectRef::new(bucket, key).with_version(m.location.object_version_id.clone()), layout))
        }
        _ => None,
    };
    let c = store.chunk_counts(&job.id, now).await?;
    let chunks = c.pending + c.leased + c.expired + c.done;
    if chunks == 0 || total == 0 {
        return Ok(Vec::new());
    }
    let k = (chunks as usize).min(SAMPLE_CHUNKS) as i64;
    let mut seqs: Vec<i64> = (0..k).map(|i| i * chunks / k).collect();
    seqs.dedup();
    let picked = store.chunks_at(&job.id, &seqs).await?;
    let per_chunk = SAMPLE_OBJECTS.div_ceil(picked.len().max(1));
    let payload_layout = CsvLayout::payload();
    let mut tasks = Vec::new();
    for ch in picked {
        let (bytes, layout) = match (&ch.payload, &csv) {
            (Some(p), _) => (bytes::Bytes::from(p.clone()), &payload_layout),
            (None, Some((mref, layout))) => {
                let mstore = router.store_for(&mref.bucket).map_err(storage_failed)?;
                let range = Some(ch.start_offset as u64..ch.end_offset as u64);
                let got = mstore.get_object(mref, range).await.map_err(storage_failed)?;
                (got.bytes().await.map_err(storage_failed)?, layout)
            }
            (None, None) => return Err(ServiceError::bad_request("a chunk of the job carries no lines")),
        };
        let lines = ch.line_count.max(0) as usize;
        let take = per_chunk.min(lines);
        let start = if lines > take { rand::rng().random_range(0..=lines - take) } else { 0 };
        let mut rdr = csv_reader(&bytes[..]);
        let mut rec = csv::ByteRecord::new();
        let mut i = 0usize;
        while i < start + take
            && rdr.read_byte_record(&mut rec).map_err(|e| ServiceError::bad_request(format!("manifest: {e}")))?
        {
            if i >= start {
                let line = (ch.first_line as u64) + i as u64;
                tasks.push(layout.parse(&rec, line).map_err(|e| ServiceError::bad_request(e.to_string()))?);
            }
            i += 1;
        }
    }
    tasks.truncate(SAMPLE_OBJECTS);
    Ok(tasks)
}

fn storage_failed(e: StorageError) -> ServiceError {
    ServiceError::Internal(format!("reading the manifest for the preview failed: {e}"))
}

/// Storage requests one task sends (without retries), for an object of `size` bytes.
pub fn requests_per_task(op: &Operation, router: &Router, task: &ManifestTask, size: u64, dry_run: bool) -> u64 {
    let parts = |part: u64| size.div_ceil(part.max(1)).max(1);
    if dry_run {
        // A HEAD, and for copies a listing of the target bucket.
        return match op {
            Operation::LambdaInvoke(_) => 0,
            Operation::S3PutObjectCopy(_) | Operation::S3ReplicateObject(_) => 2,
            _ => 1,
        };
    }
    match op {
        // An invocation, not a storage request.
        Operation::LambdaInvoke(_) => 0,
        Operation::S3PutObjectCopy(c) => {
            let merges = [c.merge_metadata, c.merge_tagging, c.merge_access_control_grants]
                .iter()
                .filter(|f| **f == Some(true))
                .count() as u64;
            let obj = ObjectRef::new(&task.bucket, &task.key);
            let dest = copy_request(c, obj).map(|r| r.dest_bucket).unwrap_or_default();
            merges + copy_requests(router.same_backend(&task.bucket, &dest), size)
        }
        // A HEAD of the source, then the copy.
        Operation::S3ReplicateObject(_) => 1 + copy_requests(true, size),
        // GET (+ PUT) of the tag set.
        Operation::S3AddObjectTagging(_) | Operation::S3RemoveObjectTagging(_) => 2,
        // GetObjectAcl, HEAD, the copy onto itself, PutObjectAcl.
        Operation::S3UpdateObjectEncryption(_) => 3 + copy_requests(true, size),
        Operation::S3ComputeObjectChecksum(_) => parts(DEFAULT_MULTIPART_PART_SIZE),
        Operation::S3DeleteObject(d) if d.delete_noncurrent_versions == Some(true) => 3,
        _ => 1,
    }
}

/// Requests of one copy: a CopyObject, or above the multipart threshold Create + one UploadPartCopy per part +
/// Complete; between backends a GET and a PUT, or Create + a GET and an UploadPart per part + Complete.
fn copy_requests(same_backend: bool, size: u64) -> u64 {
    if same_backend {
        if size > DEFAULT_MULTIPART_THRESHOLD { size.div_ceil(DEFAULT_MULTIPART_PART_SIZE) + 2 } else { 1 }
    } else if size > CROSS_STORE_PART_SIZE {
        2 * size.div_ceil(CROSS_STORE_PART_SIZE) + 2
    } else {
        2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_cost_parts_plus_two_above_the_threshold() {
        assert_eq!(copy_requests(true, 1024), 1);
        assert_eq!(copy_requests(true, DEFAULT_MULTIPART_THRESHOLD), 1);
        let six_gib = 6 * 1024 * 1024 * 1024;
        assert_eq!(copy_requests(true, six_gib), six_gib / DEFAULT_MULTIPART_PART_SIZE + 2);
        assert_eq!(copy_requests(false, 1024), 2);
        assert_eq!(copy_requests(false, 3 * CROSS_STORE_PART_SIZE), 8);
    }
}
