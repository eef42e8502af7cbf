//! The generated manifest (`S3InventoryReport_CSV_20211130`): what S3 Batch Operations' ManifestGenerator writes
//! when `EnableManifestOutput` is set. It has the S3 Inventory shape: gzip CSV data files (no header, every field
//! quoted, keys form-encoded as S3 Inventory writes them), then `manifest.json` listing them with their sizes and
//! MD5s, and `manifest.checksum` holding the MD5 of `manifest.json`. The column set is `Bucket, Key` or
//! `Bucket, Key, VersionId`; AWS does not document the exact columns or file names of its generated manifest, so
//! these are this crate's choice, readable by [`crate::parse_manifest`] and [`crate::csv_gz_rows`] (and by any
//! S3 Inventory CSV reader).

use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Serialize;

use crate::InventoryError;
use crate::columns::form_encode_into;
use crate::hashing::Md5Writer;
use crate::manifest::{DataFile, md5_hex};

/// Where the data files go: `open` is called with each data file's key, `close` when it is complete.
pub trait DataSink {
    type Writer: Write;
    fn open(&mut self, key: &str) -> io::Result<Self::Writer>;
    fn close(&mut self, key: &str, writer: Self::Writer) -> io::Result<()>;
}

/// A [`DataSink`] that writes each key as a file under a directory (creating subdirectories).
#[derive(Debug, Clone)]
pub struct DirSink {
    root: PathBuf,
}

impl DirSink {
    pub fn new(root: impl Into<PathBuf>) -> DirSink {
        DirSink { root: root.into() }
    }

    /// The path a key is written to; keys with `..`, a root or a prefix component are refused.
    pub fn path_of(&self, key: &str) -> io::Result<PathBuf> {
        let rel = Path::new(key);
        if key.is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("'{key}' is not a relative file key")));
        }
        Ok(self.root.join(rel))
    }
}

impl DataSink for DirSink {
    type Writer = io::BufWriter<fs::File>;

    fn open(&mut self, key: &str) -> io::Result<Self::Writer> {
        let path = self.path_of(key)?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        Ok(io::BufWriter::with_capacity(256 * 1024, fs::File::create(path)?))
    }

    fn close(&mut self, _key: &str, writer: Self::Writer) -> io::Result<()> {
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    }
}

/// What the generated manifest describes and how its data files are cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedManifestOptions {
    /// The bucket the objects are in (`sourceBucket`).
    pub source_bucket: String,
    /// Where the manifest is written (`destinationBucket`), as S3 Inventory writes it: an ARN.
    pub destination_bucket: String,
    /// Data files are named `{data_prefix}{n:05}.csv.gz`, n from 1.
    pub data_prefix: String,
    /// At most this many rows per data file (at least 1).
    pub max_rows_per_file: u64,
    /// Whether rows carry a VersionId column.
    pub with_versions: bool,
    /// `creationTimestamp`, epoch milliseconds.
    pub creation_timestamp_ms: i64,
}

/// The finished generated manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedManifest {
    /// The bytes of `manifest.json`.
    pub manifest_json: Vec<u8>,
    /// The bytes of `manifest.checksum` (hex MD5 of `manifest.json`).
    pub manifest_checksum: Vec<u8>,
    pub files: Vec<DataFile>,
    pub rows: u64,
}

struct OpenFile<W: Write> {
    key: String,
    gz: GzEncoder<Md5Writer<W>>,
    rows: u64,
}

/// Writes the generated manifest (`S3InventoryReport_CSV_20211130`), in the S3 Inventory shape: rows go into gzip
/// CSV data files of at most `max_rows_per_file` rows (no header, every field quoted, keys form-encoded as S3
/// Inventory writes them), named `{data_prefix}00001.csv.gz`, …; [`GeneratedManifestWriter::finish`] then gives
/// `manifest.json` (`version` `2016-11-30`, `fileFormat` `CSV`, `fileSchema` `Bucket, Key` or
/// `Bucket, Key, VersionId`, `files` with each file's size and MD5) and `manifest.checksum`. AWS does not document
/// its generated manifest's columns or file names; these are this crate's choice, readable by
/// [`crate::parse_manifest`] and [`crate::csv_gz_rows`] and by any S3 Inventory CSV reader.
pub struct GeneratedManifestWriter<S: DataSink> {
    sink: S,
    opts: GeneratedManifestOptions,
    current: Option<OpenFile<S::Writer>>,
    files: Vec<DataFile>,
    rows: u64,
    line: String,
}

#[derive(Serialize)]
struct ManifestJson<'a> {
    #[serde(rename = "sourceBucket")]
    source_bucket: &'a str,
    #[serde(rename = "destinationBucket")]
    destination_bucket: &'a str,
    version: &'a str,
    #[serde(rename = "creationTimestamp")]
    creation_timestamp: String,
    #[serde(rename = "fileFormat")]
    file_format: &'a str,
    #[serde(rename = "fileSchema")]
    file_schema: &'a str,
    files: Vec<FileJson<'a>>,
}

#[derive(Serialize)]
struct FileJson<'a> {
    key: &'a str,
    size: u64,
    #[serde(rename = "MD5checksum")]
    md5: &'a str,
}

fn io_err(what: &str, key: &str, e: io::Error) -> InventoryError {
    InventoryError::Write(format!("{what} {key}: {e}"))
}

fn push_quoted(line: &mut String, field: &str) {
    line.push('"');
    for c in field.chars() {
        if c == '"' {
            line.push('"');
        }
        line.push(c);
    }
    line.push('"');
}

impl<S: DataSink> GeneratedManifestWriter<S> {
    pub fn new(sink: S, opts: GeneratedManifestOptions) -> Result<GeneratedManifestWriter<S>, InventoryError> {
        if opts.max_rows_per_file == 0 {
            return Err(InventoryError::Write("max_rows_per_file must be at least 1".into()));
        }
        if !s3batch_core::arn::valid_bucket_name(&opts.source_bucket) {
            return Err(InventoryError::Write(format!("'{}' is not a valid bucket name", opts.source_bucket)));
        }
        Ok(GeneratedManifestWriter { sink, opts, current: None, files: Vec::new(), rows: 0, line: String::new() })
    }

    /// The `fileSchema` the data files follow.
    pub fn file_schema(&self) -> &'static str {
        if self.opts.with_versions { "Bucket, Key, VersionId" } else { "Bucket, Key" }
    }

    /// Add one object: `key` decoded (it is encoded here). With versions, `version_id` is required (write `null`
    /// for an object's null version); without, it must be `None`.
    pub fn push(&mut self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<(), InventoryError> {
        if !s3batch_core::arn::valid_bucket_name(bucket) {
            return Err(InventoryError::Write(format!("'{bucket}' is not a valid bucket name")));
        }
        crate::row::check_key(key).map_err(InventoryError::Write)?;
        match (self.opts.with_versions, version_id) {
            (true, None) | (true, Some("")) => {
                return Err(InventoryError::Write(format!("key '{key}' has no version id, but rows carry versions")));
            }
            (false, Some(_)) => {
                return Err(InventoryError::Write(format!("key '{key}' has a version id, but rows carry none")));
            }
            _ => {}
        }
        if self.current.is_none() {
            let key = format!("{}{:05}.csv.gz", self.opts.data_prefix, self.files.len() + 1);
            let w = self.sink.open(&key).map_err(|e| io_err("opening", &key, e))?;
            self.current = Some(OpenFile { gz: GzEncoder::new(Md5Writer::new(w), Compression::fast()), key, rows: 0 });
        }
        self.line.clear();
        push_quoted(&mut self.line, bucket);
        self.line.push_str(",\"");
        form_encode_into(key, &mut self.line);
        self.line.push('"');
        if let Some(v) = version_id {
            self.line.push(',');
            push_quoted(&mut self.line, v);
        }
        self.line.push('\n');
        let Some(cur) = self.current.as_mut() else {
            return Err(InventoryError::Write("no data file is open".into()));
        };
        cur.gz.write_all(self.line.as_bytes()).map_err(|e| io_err("writing", &cur.key, e))?;
        cur.rows += 1;
        self.rows += 1;
        if cur.rows >= self.opts.max_rows_per_file {
            self.close_current()?;
        }
        Ok(())
    }

    fn close_current(&mut self) -> Result<(), InventoryError> {
        let Some(cur) = self.current.take() else { return Ok(()) };
        let hashing = cur.gz.finish().map_err(|e| io_err("compressing", &cur.key, e))?;
        let (mut w, size, md5) = hashing.finish();
        w.flush().map_err(|e| io_err("flushing", &cur.key, e))?;
        self.sink.close(&cur.key, w).map_err(|e| io_err("closing", &cur.key, e))?;
        self.files.push(DataFile { key: cur.key, size, md5 });
        Ok(())
    }

    /// Close the last data file and build `manifest.json` and `manifest.checksum`. With no rows there are no data
    /// files and `files` is empty.
    pub fn finish(mut self) -> Result<GeneratedManifest, InventoryError> {
        self.close_current()?;
        let json = ManifestJson {
            source_bucket: &self.opts.source_bucket,
            destination_bucket: &self.opts.destination_bucket,
            version: "2016-11-30",
            creation_timestamp: self.opts.creation_timestamp_ms.to_string(),
            file_format: "CSV",
            file_schema: self.file_schema(),
            files: self.files.iter().map(|f| FileJson { key: &f.key, size: f.size, md5: &f.md5 }).collect(),
        };
        let manifest_json =
            serde_json::to_vec_pretty(&json).map_err(|e| InventoryError::Write(format!("manifest.json: {e}")))?;
        let manifest_checksum = md5_hex(&manifest_json).into_bytes();
        Ok(GeneratedManifest { manifest_json, manifest_checksum, files: self.files, rows: self.rows })
    }
}
