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
use s3batch_inventory::{DirSink, GeneratedManifestOptions, GeneratedManifestWriter};
use s3batch_storage::{PutBody, PutOptions, StorageError};
use s3batch_store::{Job, StoreError};
use serde_json::json;

use crate::prepare::{ManifestProblem, problem};
use crate::{Engine, now, retry};

/// Rows per data file.
const ROWS_PER_FILE: u64 = 1_000_000;
/// Chunks read from the store at a time.
const CHUNKS_PER_READ: i64 = 50;

/// The format the generated manifest is written in.
pub const FORMAT: &str = "S3InventoryReport_CSV_20211130";

/// Write the generated manifest. `Err(None)`: transient trouble, try again later (the job stays as it is).
pub async fn write(
    engine: &Arc<Engine>,
    job: &Job,
    g: &S3JobManifestGenerator,
) -> Result<Result<(), Option<ManifestProblem>>, StoreError> {
    let Some(out) = &g.manifest_output_location else {
        return Ok(Err(Some(problem(
            "InvalidManifestGenerator",
            "EnableManifestOutput is true but ManifestOutputLocation is missing",
        ))));
    };
    let Some(out_bucket) = arn::parse_bucket_arn(&out.bucket) else {
        return Ok(Err(Some(problem(
            "InvalidManifestGenerator",
            format!("ManifestOutputLocation.Bucket '{}' is not a bucket ARN", out.bucket),
        ))));
    };
    let source = arn::parse_bucket_arn(&g.source_bucket).unwrap_or_default();
    let base = match out.manifest_prefix.as_deref().map(|p| p.trim_end_matches('/')) {
        Some(p) if !p.is_empty() => format!("{p}/job-{}", job.id),
        _ => format!("job-{}", job.id),
    };
    let dir = match &engine.config.work_dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    };
    let dir = match dir {
        Ok(d) => d,
        Err(e) => return Ok(Err(Some(problem("ManifestOutputNotWritten", format!("no temporary directory: {e}"))))),
    };
    let opts = GeneratedManifestOptions {
        source_bucket: source,
        destination_bucket: out.bucket.clone(),
        data_prefix: format!("{base}/data/"),
        max_rows_per_file: ROWS_PER_FILE,
        with_versions: false,
        creation_timestamp_ms: now(),
    };
    let sink = DirSink::new(dir.path());
    let mut writer = match GeneratedManifestWriter::new(sink.clone(), opts) {
        Ok(w) => w,
        Err(e) => return Ok(Err(Some(problem("ManifestOutputNotWritten", e.to_string())))),
    };
    // Assemble the data files from the chunks, in order.
    let mut after = -1;
    loop {
        let batch = engine.store.chunk_payloads(&job.id, after, CHUNKS_PER_READ).await?;
        let Some(last) = batch.last() else { break };
        after = last.0;
        let res = tokio::task::spawn_blocking(move || {
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
        .await;
        writer = match res {
            Ok(Ok(w)) => w,
            Ok(Err(e)) => return Ok(Err(Some(problem("ManifestOutputNotWritten", e)))),
            Err(e) => return Ok(Err(Some(problem("InternalError", format!("the manifest writer stopped: {e}"))))),
        };
    }
    let done = match tokio::task::spawn_blocking(move || writer.finish()).await {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return Ok(Err(Some(problem("ManifestOutputNotWritten", e.to_string())))),
        Err(e) => return Ok(Err(Some(problem("InternalError", format!("the manifest writer stopped: {e}"))))),
    };

    // Upload: data files first, then manifest.checksum, then manifest.json (whose presence means complete).
    let store = match engine.router_for(job).store_for(&out_bucket) {
        Ok(s) => s,
        Err(e) => return Ok(Err(Some(not_written(&out_bucket, &e)))),
    };
    let opts = PutOptions::default();
    let put = |key: String, body: PutBody| {
        let (store, bucket, opts) = (store.clone(), out_bucket.clone(), &opts);
        async move {
            retry::storage_call(&engine.config, || false, || store.put_object(&bucket, &key, body.clone(), opts)).await
        }
    };
    for f in &done.files {
        let path = match sink.path_of(&f.key) {
            Ok(p) => p,
            Err(e) => return Ok(Err(Some(problem("ManifestOutputNotWritten", e.to_string())))),
        };
        if let Err(e) = put(f.key.clone(), PutBody::File(path)).await {
            return Ok(Err(classify(&out_bucket, e)));
        }
    }
    if let Err(e) =
        put(format!("{base}/manifest.checksum"), PutBody::Bytes(done.manifest_checksum.clone().into())).await
    {
        return Ok(Err(classify(&out_bucket, e)));
    }
    let manifest_key = format!("{base}/manifest.json");
    let written = match put(manifest_key.clone(), PutBody::Bytes(done.manifest_json.clone().into())).await {
        Ok(w) => w,
        Err(e) => return Ok(Err(classify(&out_bucket, e))),
    };
    let mut location = json!({
        "ObjectArn": arn::object_arn(&out_bucket, &manifest_key),
        "ETag": written.etag.unwrap_or_default(),
    });
    if let Some(v) = written.version_id {
        location["ObjectVersionId"] = json!(v);
    }
    let descriptor = json!({ "Format": FORMAT, "Location": location });
    engine.store.set_generated_manifest(&job.id, &descriptor.to_string()).await?;
    tracing::info!(job = %job.id, rows = done.rows, key = %manifest_key, "generated manifest written");
    Ok(Ok(()))
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
