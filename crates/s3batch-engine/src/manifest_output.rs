//! `EnableManifestOutput`: write the manifest a ManifestGenerator job generated, in `S3InventoryReport_CSV_20211130`
//! form (gzip CSV data files, `manifest.json`, `manifest.checksum`), to `ManifestOutputLocation`, and record the
//! GeneratedManifestDescriptor.
//!
//! Layout: `<ManifestPrefix>/job-<id>/data/<n>.csv.gz`, `<ManifestPrefix>/job-<id>/manifest.json` and
//! `manifest.checksum` (AWS does not document its file names). The lines come from the job's chunks, read from the
//! store in order, so the output is the same whoever wrote it and whenever the listing was resumed. Data files are
//! assembled in a temporary directory (`engine.work_dir`) and streamed up; memory stays flat.

use std::sync::Arc;

use s3batch_core::arn;
use s3batch_core::manifest::{CsvLayout, csv_reader};
use s3batch_core::spec::S3JobManifestGenerator;
use s3batch_inventory::{DirSink, GeneratedManifest, GeneratedManifestOptions, GeneratedManifestWriter};
use s3batch_storage::{PutBody, PutOptions, StorageError};
use s3batch_store::{Job, StoreError};
use serde_json::json;

use crate::problem::{ManifestProblem, problem};
use crate::{Engine, now, retry};

/// Rows per data file.
const ROWS_PER_FILE: u64 = 1_000_000;
/// Chunks read from the store at a time.
const CHUNKS_PER_READ: i64 = 50;

/// The format the generated manifest is written in.
pub const FORMAT: &str = "S3InventoryReport_CSV_20211130";

/// What writing the generated manifest ended with.
#[derive(Debug)]
pub enum Outcome {
    /// Written, and its descriptor recorded on the job.
    Written,
    /// It cannot be written: the job fails for this.
    Refused(ManifestProblem),
    /// Transient trouble: try again later (the job stays as it is).
    TryLater,
}

/// Why writing stopped part-way.
enum Stop {
    Store(StoreError),
    Refused(ManifestProblem),
    TryLater,
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Store(e)
    }
}

impl From<ManifestProblem> for Stop {
    fn from(p: ManifestProblem) -> Self {
        Stop::Refused(p)
    }
}

/// A storage failure while uploading: transient ones are tried again later, others fail the job.
fn upload_failed(bucket: &str, e: StorageError) -> Stop {
    classify(bucket, e).map_or(Stop::TryLater, Stop::Refused)
}

/// Where the generated manifest goes: the output bucket and the key prefix of this job's files.
struct Destination {
    bucket: String,
    base: String,
}

/// Write the generated manifest: assemble its data files from the job's chunks, upload them, then record the
/// GeneratedManifestDescriptor.
pub async fn write(engine: &Arc<Engine>, job: &Job, g: &S3JobManifestGenerator) -> Result<Outcome, StoreError> {
    match write_all(engine, job, g).await {
        Ok(()) => Ok(Outcome::Written),
        Err(Stop::Store(e)) => Err(e),
        Err(Stop::Refused(p)) => Ok(Outcome::Refused(p)),
        Err(Stop::TryLater) => Ok(Outcome::TryLater),
    }
}

async fn write_all(engine: &Arc<Engine>, job: &Job, g: &S3JobManifestGenerator) -> Result<(), Stop> {
    let dest = destination(job, g)?;
    let dir = match &engine.config.work_dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .map_err(|e| problem("ManifestOutputNotWritten", format!("no temporary directory: {e}")))?;
    let opts = GeneratedManifestOptions {
        source_bucket: arn::parse_bucket_arn(&g.source_bucket).unwrap_or_default(),
        destination_bucket: g.manifest_output_location.as_ref().map(|o| o.bucket.clone()).unwrap_or_default(),
        data_prefix: format!("{}/data/", dest.base),
        max_rows_per_file: ROWS_PER_FILE,
        with_versions: false,
        creation_timestamp_ms: now(),
    };
    let sink = DirSink::new(dir.path());
    let done = assemble(engine, job, GeneratedManifestWriter::new(sink.clone(), opts).map_err(output_problem)?).await?;
    let manifest_key = upload(engine, job, &dest, &sink, &done).await?;
    tracing::info!(job = %job.id, rows = done.rows, key = %manifest_key, "generated manifest written");
    Ok(())
}

/// The output bucket and prefix `ManifestOutputLocation` names.
fn destination(job: &Job, g: &S3JobManifestGenerator) -> Result<Destination, ManifestProblem> {
    let Some(out) = &g.manifest_output_location else {
        return Err(problem(
            "InvalidManifestGenerator",
            "EnableManifestOutput is true but ManifestOutputLocation is missing",
        ));
    };
    let Some(bucket) = arn::parse_bucket_arn(&out.bucket) else {
        return Err(problem(
            "InvalidManifestGenerator",
            format!("ManifestOutputLocation.Bucket '{}' is not a bucket ARN", out.bucket),
        ));
    };
    let base = match out.manifest_prefix.as_deref().map(|p| p.trim_end_matches('/')) {
        Some(p) if !p.is_empty() => format!("{p}/job-{}", job.id),
        _ => format!("job-{}", job.id),
    };
    Ok(Destination { bucket, base })
}

fn output_problem(e: impl std::fmt::Display) -> ManifestProblem {
    problem("ManifestOutputNotWritten", e.to_string())
}

fn writer_stopped(e: tokio::task::JoinError) -> ManifestProblem {
    problem("InternalError", format!("the manifest writer stopped: {e}"))
}

/// Assemble the data files from the job's chunks, in order, on a blocking thread.
async fn assemble(
    engine: &Engine,
    job: &Job,
    mut writer: GeneratedManifestWriter<DirSink>,
) -> Result<GeneratedManifest, Stop> {
    let mut after = -1;
    loop {
        let batch = engine.store.chunk_payloads(&job.id, after, CHUNKS_PER_READ).await?;
        let Some(last) = batch.last() else { break };
        after = last.0;
        writer = tokio::task::spawn_blocking(move || {
            let layout = CsvLayout::payload();
            for (seq, payload) in &batch {
                let mut rdr = csv_reader(&payload[..]);
                for (i, rec) in rdr.byte_records().enumerate() {
                    let rec = rec.map_err(|e| format!("chunk {seq}: {e}"))?;
                    let t = layout.parse(&rec, i as u64 + 1).map_err(|e| format!("chunk {seq}: {e}"))?;
                    writer.push(&t.bucket, &t.key, None).map_err(|e| e.to_string())?;
                }
            }
            Ok::<_, String>(writer)
        })
        .await
        .map_err(writer_stopped)?
        .map_err(output_problem)?;
    }
    Ok(tokio::task::spawn_blocking(move || writer.finish()).await.map_err(writer_stopped)?.map_err(output_problem)?)
}

/// Upload the data files first, then manifest.checksum, then manifest.json (whose presence means complete), and
/// record the descriptor. Returns manifest.json's key.
async fn upload(
    engine: &Engine,
    job: &Job,
    dest: &Destination,
    sink: &DirSink,
    done: &GeneratedManifest,
) -> Result<String, Stop> {
    let bucket = dest.bucket.as_str();
    let store = engine.router_for(job).store_for(bucket).map_err(|e| not_written(bucket, &e))?;
    let opts = PutOptions::default();
    let put = |key: String, body: PutBody| {
        let (store, opts) = (store.clone(), &opts);
        async move {
            retry::storage_call(&engine.config, || false, || store.put_object(bucket, &key, body.clone(), opts))
                .await
                .map_err(|e| upload_failed(bucket, e))
        }
    };
    for f in &done.files {
        put(f.key.clone(), PutBody::File(sink.path_of(&f.key).map_err(output_problem)?)).await?;
    }
    put(format!("{}/manifest.checksum", dest.base), PutBody::Bytes(done.manifest_checksum.clone().into())).await?;
    let manifest_key = format!("{}/manifest.json", dest.base);
    let written = put(manifest_key.clone(), PutBody::Bytes(done.manifest_json.clone().into())).await?;
    let mut location = json!({
        "ObjectArn": arn::object_arn(bucket, &manifest_key),
        "ETag": written.etag.unwrap_or_default(),
    });
    if let Some(v) = written.version_id {
        location["ObjectVersionId"] = json!(v);
    }
    let descriptor = json!({ "Format": FORMAT, "Location": location });
    engine.store.set_generated_manifest(&job.id, &descriptor.to_string()).await?;
    Ok(manifest_key)
}

fn not_written(bucket: &str, e: &StorageError) -> ManifestProblem {
    problem(
        "ManifestOutputNotWritten",
        format!("writing the generated manifest to {bucket} failed: {} ({}): {}", e.code, e.http_status, e.message),
    )
}

fn classify(bucket: &str, e: StorageError) -> Option<ManifestProblem> {
    if e.transient { None } else { Some(not_written(bucket, &e)) }
}
