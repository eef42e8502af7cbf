//! Fuzz harnesses of the inventory readers: `manifest.json`, gzip CSV, Parquet and ORC data files. The targets
//! under `fuzz/` call these, and so does `crates/s3batch/tests/fuzz_replay.rs` on every committed corpus and crash
//! input. Each one panics only where a reader breaks a rule (a panic of its own, or an answer it must never give).

use std::io::Write;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Columns, InventoryError, KeyEncoding, Row, csv_gz_rows, md5_hex, orc_rows, parquet_rows};

/// More rows than any fuzz input can hold: a reader that yields this many has stopped advancing.
const MAX_ROWS: usize = 1 << 20;

/// A `manifest.json`. A good one has a usable bucket name and checks against its own MD5.
pub fn manifest_json(data: &[u8]) {
    let _ = crate::check_manifest_checksum(data, data);
    let Ok(m) = crate::parse_manifest(data) else { return };
    let _ = m.columns();
    let _ = m.destination_bucket_name();
    let _ = crate::columnar_schema_names(&m.file_schema);
    let md5 = md5_hex(data);
    crate::check_manifest_checksum(data, format!(" {}\n", md5.to_uppercase()).as_bytes())
        .expect("a manifest checks against its own MD5");
}

/// Every row of a data file, until the reader ends; it must end.
fn drain<E>(rows: impl Iterator<Item = Result<Row, E>>) -> Vec<Result<Row, E>> {
    let all: Vec<_> = rows.take(MAX_ROWS).collect();
    assert!(all.len() < MAX_ROWS, "the reader never ends");
    all
}

/// A gzip CSV data file: a flags byte, the `fileSchema` on the first line, then the file. Flags: 1 = the rest is
/// plain CSV, gzipped here (else it is read as gzip data as it is); 2 = keys percent-encoded; 4 = task fields
/// only; 8 = check the MD5 of the gzip bytes (which must then not fail).
pub fn csv_gz(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else { return };
    let (schema, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(mut cols) = Columns::from_schema(&String::from_utf8_lossy(schema)) else { return };
    if flags & 2 != 0 {
        cols = cols.with_key_encoding(KeyEncoding::Percent);
    }
    if flags & 4 != 0 {
        cols = cols.task_fields_only();
    }
    let gz = if flags & 1 != 0 { gzip(body) } else { body.to_vec() };
    let md5 = (flags & 8 != 0).then(|| md5_hex(&gz));
    let rows = drain(csv_gz_rows("fuzz.csv.gz", &gz[..], &cols, md5.as_deref()));
    // A row's line is the line (counted in '\n', as `grep -n` and `sed -n` count) where its record starts. csv ends
    // a record at a lone '\r' too, so records of a file with old Mac line ends share a line: lines only go up
    // where every record ends with '\n'. In a plain input the harness also knows how many lines there are.
    let plain = flags & 1 != 0;
    let strictly = plain && !body.contains(&b'\r');
    let lines = body.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    let mut last_line = 0;
    for r in &rows {
        match r {
            Ok(row) => {
                assert!(row.line > last_line || (!strictly && row.line == last_line), "lines count up");
                assert!(row.line >= 1 && (!plain || row.line <= lines), "a row's line is in the file");
                last_line = row.line;
                assert!(!row.key.is_empty() && !row.bucket.is_empty(), "a row has a bucket and a key");
            }
            // The harness hashed the bytes itself: the file's MD5 never mismatches (a row's text may say "MD5").
            Err(e) => assert!(!(e.line == 0 && e.message.starts_with("MD5 mismatch")), "{e}"),
        }
    }
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(body).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

/// A Parquet data file, read through a file as the engine reads it.
pub fn parquet(data: &[u8]) {
    columnar(data, |f, md5| parquet_rows("fuzz.parquet", f, md5));
}

/// An ORC data file, read through a file as the engine reads it.
pub fn orc(data: &[u8]) {
    columnar(data, |f, md5| orc_rows("fuzz.orc", f, md5));
}

fn columnar(data: &[u8], open: impl Fn(std::fs::File, Option<&str>) -> Result<crate::ColumnarRows, InventoryError>) {
    static N: AtomicU64 = AtomicU64::new(0);
    let path =
        std::env::temp_dir().join(format!("s3batch-fuzz-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&path, data).expect("writing a temporary file");
    let f = std::fs::File::open(&path).expect("opening the temporary file");
    std::fs::remove_file(&path).expect("removing the temporary file");
    let md5 = md5_hex(data);
    let Ok(rows) = open(f, Some(&md5)) else { return };
    for r in drain(rows).into_iter().flatten() {
        assert!(!r.key.is_empty() && !r.bucket.is_empty(), "a row has a bucket and a key");
    }
}

/// True where a panic happened in a dependency from a registry (its source under `…/registry/src/…`), not in the
/// project's code nor in the standard library. The Parquet and ORC targets tolerate those panics, which the
/// readers catch and turn into errors (see `fuzz/README.md`); every other panic still aborts the run.
pub fn is_third_party(location: Option<&Location<'_>>) -> bool {
    location.is_some_and(|l| is_registry_source(l.file()))
}

/// The panic hook of the Parquet and ORC fuzz targets, set in their `init`: libfuzzer-sys's own hook aborts on
/// every panic, caught or not; this one (called with the hook it replaces) aborts only where
/// [`is_third_party`] is false. A third-party panic the readers do not catch still aborts, in libfuzzer-sys's
/// `catch_unwind` around each input.
pub fn abort_only_on_own_panics() {
    let abort = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !is_third_party(info.location()) {
            abort(info);
        }
    }));
}

fn is_registry_source(file: &str) -> bool {
    file.replace('\\', "/").contains("/registry/src/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_registry_sources_are_third_party() {
        let bytes = "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/bytes-1.12.2/src/bytes_mut.rs";
        assert!(is_registry_source(bytes));
        assert!(is_registry_source(r"C:\Users\u\.cargo\registry\src\index.crates.io-x\orc-rust-0.9.0\src\a.rs"));
        assert!(!is_registry_source("crates/s3batch-inventory/src/columnar.rs"));
        assert!(!is_registry_source("/rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/core/src/slice/index.rs"));
        assert!(!is_third_party(Some(Location::caller())), "this file is the project's");
        assert!(!is_third_party(None));
    }
}
