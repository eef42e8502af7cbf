//! The generated manifest (`S3InventoryReport_CSV_20211130`), read back with this crate's own readers.

mod common;

use std::io;

use common::TRICKY_KEYS;
use s3batch_core::manifest::encode_key;
use s3batch_inventory::{
    DataSink, DirSink, FileFormat, GeneratedManifestOptions, GeneratedManifestWriter, InventoryError, Row,
    check_manifest_checksum, csv_gz_rows, parse_manifest,
};

fn opts(with_versions: bool, max_rows_per_file: u64) -> GeneratedManifestOptions {
    GeneratedManifestOptions {
        source_bucket: "src-bucket".into(),
        destination_bucket: "arn:aws:s3:::manifest-out".into(),
        data_prefix: "gen/job-1/data/".into(),
        max_rows_per_file,
        with_versions,
        creation_timestamp_ms: 1_700_000_000_000,
    }
}

/// Reads a generated manifest back from a directory: parse, checksum, every data file with its MD5.
fn read_back(dir: &std::path::Path, json: &[u8], checksum: &[u8]) -> Vec<Row> {
    check_manifest_checksum(json, checksum).unwrap();
    let m = parse_manifest(json).unwrap();
    assert_eq!(m.file_format, FileFormat::Csv);
    let cols = m.columns().unwrap();
    let sink = DirSink::new(dir);
    let mut rows = Vec::new();
    for f in &m.files {
        let path = sink.path_of(&f.key).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), f.size);
        let file = std::fs::File::open(path).unwrap();
        rows.extend(csv_gz_rows(&f.key, file, &cols, Some(&f.md5)).map(Result::unwrap));
    }
    rows
}

#[test]
fn rows_split_into_files_and_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = GeneratedManifestWriter::new(DirSink::new(dir.path()), opts(true, 5)).unwrap();
    for (i, k) in TRICKY_KEYS.iter().enumerate() {
        w.push("src-bucket", k, Some(&format!("ver\"{i}"))).unwrap();
    }
    let g = w.finish().unwrap();
    assert_eq!(g.rows, TRICKY_KEYS.len() as u64);
    assert_eq!(g.files.len(), TRICKY_KEYS.len().div_ceil(5));
    assert_eq!(g.files[0].key, "gen/job-1/data/00001.csv.gz");
    let m = parse_manifest(&g.manifest_json).unwrap();
    assert_eq!(m.source_bucket, "src-bucket");
    assert_eq!(m.destination_bucket, "arn:aws:s3:::manifest-out");
    assert_eq!(m.file_schema, "Bucket, Key, VersionId");
    assert_eq!(m.creation_timestamp.as_deref(), Some("1700000000000"));
    assert_eq!(m.files, g.files);

    let rows = read_back(dir.path(), &g.manifest_json, &g.manifest_checksum);
    assert_eq!(rows.len(), TRICKY_KEYS.len());
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.key, TRICKY_KEYS[i]);
        assert_eq!(r.raw_key, encode_key(TRICKY_KEYS[i]));
        assert_eq!(r.bucket, "src-bucket");
        assert_eq!(r.version_id, Some(format!("ver\"{i}")));
    }
}

#[test]
fn without_versions_and_exact_file_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = GeneratedManifestWriter::new(DirSink::new(dir.path()), opts(false, 3)).unwrap();
    for i in 0..6 {
        w.push("src-bucket", &format!("k {i}"), None).unwrap();
    }
    let g = w.finish().unwrap();
    assert_eq!(g.files.len(), 2, "six rows at three a file make two files, not a third empty one");
    let rows = read_back(dir.path(), &g.manifest_json, &g.manifest_checksum);
    let keys: Vec<String> = rows.iter().map(|r| r.key.clone()).collect();
    assert_eq!(keys, ["k 0", "k 1", "k 2", "k 3", "k 4", "k 5"]);
    assert!(rows.iter().all(|r| r.version_id.is_none()));
    assert_eq!(parse_manifest(&g.manifest_json).unwrap().file_schema, "Bucket, Key");
}

#[test]
fn no_rows_no_data_files() {
    let dir = tempfile::tempdir().unwrap();
    let g = GeneratedManifestWriter::new(DirSink::new(dir.path()), opts(false, 3)).unwrap().finish().unwrap();
    assert!(g.files.is_empty());
    assert!(parse_manifest(&g.manifest_json).unwrap().files.is_empty());
    check_manifest_checksum(&g.manifest_json, &g.manifest_checksum).unwrap();
}

#[test]
fn bad_rows_and_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = |r: Result<(), InventoryError>| r.unwrap_err().to_string();
    let mut w = GeneratedManifestWriter::new(DirSink::new(dir.path()), opts(true, 3)).unwrap();
    assert_eq!(err(w.push("Bad", "k", Some("v"))), "generated manifest: 'Bad' is not a valid bucket name");
    assert_eq!(err(w.push("src-bucket", "", Some("v"))), "generated manifest: the Key column is empty");
    assert_eq!(
        err(w.push("src-bucket", "k", None)),
        "generated manifest: key 'k' has no version id, but rows carry versions"
    );
    let mut w = GeneratedManifestWriter::new(DirSink::new(dir.path()), opts(false, 3)).unwrap();
    assert_eq!(
        err(w.push("src-bucket", "k", Some("v"))),
        "generated manifest: key 'k' has a version id, but rows carry none"
    );
    let e = GeneratedManifestWriter::new(DirSink::new(dir.path()), opts(false, 0)).err().unwrap();
    assert_eq!(e.to_string(), "generated manifest: max_rows_per_file must be at least 1");
}

#[test]
fn dir_sink_refuses_keys_outside_its_root() {
    let sink = DirSink::new("/tmp/x");
    for k in ["../escape", "/abs", "a/../../b", ""] {
        assert!(sink.path_of(k).is_err(), "{k}");
    }
    assert!(sink.path_of("a/b/c.csv.gz").is_ok());
}

/// A sink whose writes fail: the error names the data file.
struct FailingSink;

impl DataSink for FailingSink {
    type Writer = FailingWriter;
    fn open(&mut self, _key: &str) -> io::Result<FailingWriter> {
        Ok(FailingWriter)
    }
    fn close(&mut self, _key: &str, _w: FailingWriter) -> io::Result<()> {
        Ok(())
    }
}

struct FailingWriter;

impl io::Write for FailingWriter {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(io::Error::other("disk full"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn sink_errors_name_the_file() {
    let mut w = GeneratedManifestWriter::new(FailingSink, opts(false, 1)).unwrap();
    // Whether the failure shows on the write or when the file is finished (one row a file) depends on the gzip
    // encoder's buffering; either way it names the file.
    let e = w.push("src-bucket", "k", None).unwrap_err().to_string();
    assert!(e.starts_with("generated manifest: "), "{e}");
    assert!(e.ends_with(" gen/job-1/data/00001.csv.gz: disk full"), "{e}");
}
