//! Preparing from an inventory report (`S3InventoryReport_CSV_20161130`, COS `COSInventoryReport_CSV_V1`): the
//! manifest ARN names the inventory's `manifest.json`; its `manifest.checksum` (when present) must hold its MD5;
//! every data file it lists (gzip CSV, Parquet or ORC) is read in turn, its MD5 checked, each row becoming a task.
//!
//! Data files are not byte-addressable the way a CSV manifest is (gzip has no random access), so chunks carry their
//! lines. gzip CSV is streamed; Parquet and ORC files (which are read from their footer) are first streamed to a
//! temporary file. Memory stays bounded by a chunk batch and a record batch, whatever the inventory's size.

use std::io::{self, Write};
use std::sync::Arc;

use futures::TryStreamExt;
use s3batch_core::manifest::{encode_key, write_payload_line};
use s3batch_inventory::{CsvGzReader, FileFormat, InventoryError, RowError};
use s3batch_storage::{ObjectRef, StorageError};
use s3batch_store::NewChunk;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::problem::{ManifestProblem, problem};
use crate::{Engine, resume, retry};

/// Longest `manifest.checksum` read: it holds 32 hex digits and perhaps an end of line.
const MAX_CHECKSUM_BYTES: usize = 1024;

/// Builds chunks that carry their lines: one every `chunk_size` lines.
#[derive(Debug)]
pub struct PayloadChunker {
    chunk_size: i64,
    seq: i64,
    /// Line number (from 1) of the next line.
    next_line: i64,
    lines: Vec<u8>,
    in_chunk: i64,
}

impl PayloadChunker {
    /// Start at chunk `seq`, line `next_line`.
    pub fn new(chunk_size: i64, seq: i64, next_line: i64) -> PayloadChunker {
        PayloadChunker { chunk_size, seq, next_line, lines: Vec::new(), in_chunk: 0 }
    }

    /// Add a line (`raw_key` URL-encoded); returns the chunk it completed, if any.
    pub fn push(&mut self, bucket: &str, raw_key: &str, version_id: Option<&str>) -> Option<NewChunk> {
        write_payload_line(&mut self.lines, bucket, raw_key, version_id);
        self.in_chunk += 1;
        self.next_line += 1;
        (self.in_chunk == self.chunk_size).then(|| self.cut())
    }

    /// The last, partial chunk, if lines are left.
    pub fn finish(&mut self) -> Option<NewChunk> {
        (self.in_chunk > 0).then(|| self.cut())
    }

    /// Lines pushed since line 1.
    pub fn total(&self) -> i64 {
        self.next_line - 1
    }

    fn cut(&mut self) -> NewChunk {
        let payload = std::mem::take(&mut self.lines);
        let c = NewChunk {
            seq: self.seq,
            start_offset: 0,
            end_offset: payload.len() as i64,
            first_line: self.next_line - self.in_chunk,
            line_count: self.in_chunk,
            payload: Some(payload),
        };
        self.seq += 1;
        self.in_chunk = 0;
        c
    }
}

/// Read the inventory whose `manifest.json` (already fetched: `manifest_json`) is at `bucket`/`key`, sending
/// chunks in batches. Returns the number of tasks. Runs on a blocking thread; storage calls go through `rt`.
pub fn read(
    engine: Arc<Engine>,
    router: Arc<s3batch_storage::Router>,
    rt: Handle,
    manifest_json: Vec<u8>,
    (bucket, key): (String, String),
    tx: mpsc::Sender<Vec<NewChunk>>,
) -> Result<i64, ManifestProblem> {
    let inv = s3batch_inventory::parse_manifest(&manifest_json).map_err(inventory_problem)?;
    check_checksum(&engine, &router, &rt, &bucket, &key, &manifest_json)?;
    let data_bucket = inv.destination_bucket_name();
    let objects = router.store_for(&data_bucket).map_err(|e| unreadable(&data_bucket, "", &e))?;
    let mut chunker = PayloadChunker::new(engine.config.chunk_size as i64, 0, 1);
    let mut batch = Vec::new();
    let emit = |c: Option<NewChunk>, batch: &mut Vec<NewChunk>, force: bool| -> Result<(), ManifestProblem> {
        batch.extend(c);
        if batch.len() >= 100 || (force && !batch.is_empty()) {
            tx.blocking_send(std::mem::take(batch)).map_err(|_| problem("Abandoned", "preparing stopped"))?;
        }
        Ok(())
    };
    for file in &inv.files {
        let obj = ObjectRef::new(&data_bucket, &file.key);
        let got = rt
            .block_on(resume::get_whole(&engine.config, objects.clone(), &obj))
            .map_err(|e| unreadable(&data_bucket, &file.key, &e))?;
        let body = got.body.map_err(|e| io::Error::other(e.to_string()));
        let reader = SyncIoBridge::new_with_handle(StreamReader::new(body), rt.clone());
        match inv.file_format {
            FileFormat::Csv => {
                let cols = inv.columns().map_err(inventory_problem)?;
                let mut rows = CsvGzReader::new(&file.key, reader, &cols, Some(&file.md5));
                while let Some(row) = rows.next_row() {
                    let row = row.map_err(row_problem)?;
                    let c = chunker.push(row.bucket, &encode_key(row.key), row.version_id.filter(|v| !v.is_empty()));
                    emit(c, &mut batch, false)?;
                }
            }
            FileFormat::Parquet | FileFormat::Orc => {
                let tmp = spool(&engine, reader, &file.key, got.info.size)?;
                let f = tmp.reopen().map_err(|e| problem("InternalError", format!("reopening a spooled file: {e}")))?;
                let rows = match inv.file_format {
                    FileFormat::Parquet => s3batch_inventory::parquet_rows(&file.key, f, Some(&file.md5)),
                    _ => s3batch_inventory::orc_rows(&file.key, f, Some(&file.md5)),
                }
                .map_err(inventory_problem)?;
                for row in rows {
                    let row = row.map_err(row_problem)?;
                    let version = row.version_id.as_deref().filter(|v| !v.is_empty());
                    emit(chunker.push(&row.bucket, &row.raw_key, version), &mut batch, false)?;
                }
            }
        }
    }
    let last = chunker.finish();
    emit(last, &mut batch, true)?;
    Ok(chunker.total())
}

/// `manifest.checksum` next to `manifest.json`: checked when present.
fn check_checksum(
    engine: &Engine,
    router: &s3batch_storage::Router,
    rt: &Handle,
    bucket: &str,
    key: &str,
    json: &[u8],
) -> Result<(), ManifestProblem> {
    let Some(dir) = key.strip_suffix("manifest.json") else { return Ok(()) };
    let sum = ObjectRef::new(bucket, format!("{dir}manifest.checksum"));
    let objects = router.store_for(bucket).map_err(|e| unreadable(bucket, key, &e))?;
    let got = rt.block_on(async {
        let g = retry::storage_call(&engine.config, || false, || objects.get_object(&sum, None)).await?;
        g.bytes_up_to(MAX_CHECKSUM_BYTES).await
    });
    match got {
        Ok(Some(bytes)) => s3batch_inventory::check_manifest_checksum(json, &bytes).map_err(inventory_problem),
        Ok(None) => Err(problem(
            "ManifestChecksumMismatch",
            format!(
                "s3://{bucket}/{} is longer than {MAX_CHECKSUM_BYTES} bytes: it must hold the hex MD5 of manifest.json",
                sum.key
            ),
        )),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(unreadable(bucket, &sum.key, &e)),
    }
}

/// Stream a data file to a temporary file (Parquet and ORC are read from the end), at most
/// `engine.max_spool_bytes` of it: a file the store says is larger is refused before a byte is written, and one that
/// turns out larger than it said is refused once that many bytes are written (and the file removed).
fn spool(
    engine: &Engine,
    reader: impl io::Read,
    key: &str,
    declared_size: u64,
) -> Result<tempfile::NamedTempFile, ManifestProblem> {
    let cap = engine.config.max_spool_bytes;
    let too_large = || {
        problem(
            "InventoryDataFileInvalid",
            format!(
                "the inventory data file {key} is larger than engine.max_spool_bytes ({cap} bytes), the most a \
                 Parquet or ORC data file is copied to disk to be read"
            ),
        )
    };
    if declared_size > cap {
        return Err(too_large());
    }
    let tmp = match &engine.config.work_dir {
        Some(d) => tempfile::NamedTempFile::new_in(d),
        None => tempfile::NamedTempFile::new(),
    };
    let fail =
        |e: io::Error| problem("ManifestNotReadable", format!("reading the inventory data file {key} failed: {e}"));
    let mut tmp = tmp.map_err(fail)?;
    let copied = io::copy(&mut reader.take(cap.saturating_add(1)), &mut tmp).map_err(fail)?;
    if copied > cap {
        return Err(too_large());
    }
    tmp.flush().map_err(fail)?;
    Ok(tmp)
}

fn unreadable(bucket: &str, key: &str, e: &StorageError) -> ManifestProblem {
    problem(
        "ManifestNotReadable",
        format!("reading s3://{bucket}/{key} failed: {} ({}): {}", e.code, e.http_status, e.message),
    )
}

fn inventory_problem(e: InventoryError) -> ManifestProblem {
    let code = match &e {
        InventoryError::ChecksumMismatch { .. } => "ManifestChecksumMismatch",
        InventoryError::DataFile { .. } => "InventoryDataFileInvalid",
        _ => "InvalidManifestContent",
    };
    problem(code, e.to_string())
}

fn row_problem(e: RowError) -> ManifestProblem {
    let code = if e.is_invalid_file() { "InventoryDataFileInvalid" } else { "InvalidManifestContent" };
    problem(code, e.to_string())
}
