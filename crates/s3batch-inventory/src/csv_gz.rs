//! gzip-compressed CSV data files (S3 Inventory `CSV`, COS inventory, generated manifests): no header, every field
//! quoted, keys URL-encoded. Streams with bounded memory; the MD5 of the compressed bytes is checked at the end.

use std::io::Read;

use s3batch_core::manifest::{BoundedRecords, RecordTooLong};

use crate::RowError;
use crate::columns::{Columns, decode_into, needs_decoding};
use crate::row::{Row, RowRef, check_key, parse_bool, parse_size};
use crate::source::Source;

/// Longest inventory record (one CSV line) read, in bytes. Inventory lines are longer than manifest lines: besides
/// the key (at most 1,024 bytes, 3,072 encoded) they may carry about twenty columns, among them
/// `ObjectAccessControlList`, the base64 JSON of an object's ACL (up to 100 grants, some 20 KiB at the very most).
/// 64 KiB is far above any real line and still a trifle in memory; a line past it (an unclosed quote, gzip-bombed
/// bytes without an end of line) is an error naming the file and line, never a record growing until memory runs out.
pub const MAX_INVENTORY_RECORD_BYTES: u64 = 64 * 1024;

/// The CSV reader's buffer.
const BUFFER: usize = 256 * 1024;

/// Streaming reader of one gzip CSV data file. [`CsvGzReader::next_row`] lends a [`RowRef`] without allocating
/// per row; [`csv_gz_rows`] wraps it as an iterator of owned [`Row`]s.
pub struct CsvGzReader<R: Read> {
    file: String,
    rdr: csv::Reader<BoundedRecords<Source<R>>>,
    cols: Columns,
    expected_md5: Option<String>,
    record: csv::ByteRecord,
    key_buf: Vec<u8>,
    /// The raw Bucket (and Appid) bytes last seen, and the bucket name they make, already validated.
    last_bucket_raw: Vec<u8>,
    bucket: String,
    rows: u64,
    done: bool,
}

impl<R: Read> CsvGzReader<R> {
    /// `file_key` names the file in errors; `md5` (hex, from `manifest.json`) is checked against the compressed
    /// bytes when the file ends. Decompresses on the calling thread.
    pub fn new(file_key: &str, r: R, cols: &Columns, md5: Option<&str>) -> CsvGzReader<R> {
        CsvGzReader::with_source(file_key, Source::inline(r), cols, md5)
    }

    fn with_source(file_key: &str, source: Source<R>, cols: &Columns, md5: Option<&str>) -> CsvGzReader<R> {
        let bounded = BoundedRecords::new(source, MAX_INVENTORY_RECORD_BYTES, BUFFER as u64);
        let rdr =
            csv::ReaderBuilder::new().has_headers(false).flexible(true).buffer_capacity(BUFFER).from_reader(bounded);
        CsvGzReader {
            file: file_key.to_string(),
            rdr,
            cols: cols.clone(),
            expected_md5: md5.map(str::to_ascii_lowercase),
            record: csv::ByteRecord::new(),
            key_buf: Vec::new(),
            last_bucket_raw: Vec::new(),
            bucket: String::new(),
            rows: 0,
            done: false,
        }
    }

    /// Rows read so far (good or bad).
    pub fn rows_read(&self) -> u64 {
        self.rows
    }

    /// The next row, borrowed. After an error that concerns the whole file (corrupt gzip, MD5 mismatch) the reader
    /// is done and returns `None`; after an error in one line it goes on with the next.
    pub fn next_row(&mut self) -> Option<Result<RowRef<'_>, RowError>> {
        if self.done {
            return None;
        }
        let (start, start_line) = (self.rdr.position().byte(), self.rdr.position().line());
        self.rdr.get_mut().record_starts_at(start);
        match self.rdr.read_byte_record(&mut self.record) {
            Err(e) => {
                self.done = true;
                if let Some(too_long) = RecordTooLong::find(&e) {
                    return Some(Err(RowError::new(&self.file, start_line, too_long.to_string())));
                }
                if self.rdr.get_mut().get_mut().compressed_bytes() == 0 {
                    return Some(Err(RowError::new(&self.file, 0, "the file is empty (not gzip data)")));
                }
                let line = e.position().map_or(self.rows + 1, |p| p.line());
                let message = match e.kind() {
                    csv::ErrorKind::Io(io) => format!("the gzip data is corrupt or truncated: {io}"),
                    _ => format!("not readable as CSV: {e}"),
                };
                Some(Err(RowError::new(&self.file, line, message)))
            }
            Ok(false) => {
                self.done = true;
                self.finish().err().map(Err)
            }
            Ok(true) => {
                if let Err(too_long) = self.rdr.get_ref().check(start, self.rdr.position().byte()) {
                    self.done = true;
                    return Some(Err(RowError::new(&self.file, start_line, too_long.to_string())));
                }
                self.rows += 1;
                let line = self.record.position().map_or(self.rows, |p| p.line());
                Some(
                    parse(
                        &self.cols,
                        &self.record,
                        &mut self.key_buf,
                        &mut self.last_bucket_raw,
                        &mut self.bucket,
                        line,
                    )
                    .map_err(|m| RowError::new(&self.file, line, m)),
                )
            }
        }
    }

    fn finish(&mut self) -> Result<(), RowError> {
        let source = self.rdr.get_mut().get_mut();
        let got = source.finish().map_err(|e| RowError::new(&self.file, 0, format!("reading failed: {e}")))?;
        if source.compressed_bytes() == 0 {
            return Err(RowError::new(&self.file, 0, "the file is empty (not gzip data)"));
        }
        match &self.expected_md5 {
            Some(expected) if *expected != got => Err(RowError::new(
                &self.file,
                0,
                format!("MD5 mismatch: manifest.json says {expected}, the file's bytes hash to {got}"),
            )),
            _ => Ok(()),
        }
    }
}

impl<R: Read + Send + 'static> CsvGzReader<R> {
    /// Like [`CsvGzReader::new`], but a helper thread decompresses while the caller parses (two cores instead of
    /// one; at most 1 MiB of decompressed data in flight). The thread ends with the file, or soon after the reader
    /// is dropped.
    pub fn threaded(file_key: &str, r: R, cols: &Columns, md5: Option<&str>) -> std::io::Result<CsvGzReader<R>> {
        Ok(CsvGzReader::with_source(file_key, Source::threaded(r)?, cols, md5))
    }
}

fn utf8<'a>(v: &'a [u8], name: &str) -> Result<&'a str, String> {
    std::str::from_utf8(v).map_err(|_| format!("the {name} column is not UTF-8"))
}

fn parse<'a>(
    cols: &Columns,
    rec: &'a csv::ByteRecord,
    key_buf: &'a mut Vec<u8>,
    last_bucket_raw: &mut Vec<u8>,
    bucket: &'a mut String,
    line: u64,
) -> Result<RowRef<'a>, String> {
    if rec.len() != cols.count {
        return Err(format!("has {} columns; fileSchema names {}", rec.len(), cols.count));
    }
    // Bucket (with the COS APPID), validated once per distinct value.
    let raw_bucket = &rec[cols.bucket];
    let raw_appid = cols.appid.map(|i| &rec[i]).unwrap_or(b"");
    let same = last_bucket_raw.len() == raw_bucket.len() + 1 + raw_appid.len()
        && last_bucket_raw[..raw_bucket.len()] == *raw_bucket
        && last_bucket_raw[raw_bucket.len() + 1..] == *raw_appid;
    if !same {
        let b = utf8(raw_bucket, "Bucket")?;
        let mut name = b.to_string();
        if cols.appid.is_some() {
            let appid = utf8(raw_appid, "Appid")?;
            if !appid.is_empty() && !b.ends_with(&format!("-{appid}")) {
                name = format!("{b}-{appid}");
            }
        }
        if !s3batch_core::arn::valid_bucket_name(&name) {
            last_bucket_raw.clear();
            return Err(format!("'{name}' is not a valid bucket name"));
        }
        *bucket = name;
        last_bucket_raw.clear();
        last_bucket_raw.extend_from_slice(raw_bucket);
        last_bucket_raw.push(b',');
        last_bucket_raw.extend_from_slice(raw_appid);
    }
    let bucket: &'a String = bucket;
    let raw_key = &rec[cols.key];
    let key: &str = if needs_decoding(raw_key, cols.key_encoding) {
        decode_into(raw_key, cols.key_encoding, key_buf)?;
        let decoded: &'a Vec<u8> = key_buf;
        std::str::from_utf8(decoded).map_err(|_| "the key does not decode to UTF-8".to_string())?
    } else {
        std::str::from_utf8(raw_key).map_err(|_| "the key does not decode to UTF-8".to_string())?
    };
    check_key(key)?;
    let opt_str = move |i: Option<usize>, name: &str| -> Result<Option<&'a str>, String> {
        i.map(|i| utf8(&rec[i], name)).transpose()
    };
    Ok(RowRef {
        bucket: bucket.as_str(),
        key,
        version_id: opt_str(cols.version_id, "VersionId")?,
        size: match cols.size {
            Some(i) => parse_size(&rec[i])?,
            None => None,
        },
        is_latest: match cols.is_latest {
            Some(i) => parse_bool(&rec[i], "IsLatest")?,
            None => None,
        },
        is_delete_marker: match cols.is_delete_marker {
            Some(i) => parse_bool(&rec[i], "IsDeleteMarker")?,
            None => None,
        },
        last_modified: opt_str(cols.last_modified, "LastModifiedDate")?.filter(|s| !s.is_empty()),
        etag: opt_str(cols.etag, "ETag")?.filter(|s| !s.is_empty()),
        storage_class: opt_str(cols.storage_class, "StorageClass")?.filter(|s| !s.is_empty()),
        line,
    })
}

/// Iterator of owned [`Row`]s over a gzip CSV data file; see [`CsvGzReader`].
pub struct CsvGzRows<R: Read>(CsvGzReader<R>);

impl<R: Read> Iterator for CsvGzRows<R> {
    type Item = Result<Row, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next_row().map(|r| r.map(|row| row.to_row()))
    }
}

/// Stream the rows of a gzip CSV data file. Ends with an error item if the gzip data is corrupt or truncated, or
/// if `md5` is given and the compressed bytes do not hash to it.
pub fn csv_gz_rows<R: Read>(file_key: &str, r: R, cols: &Columns, md5: Option<&str>) -> CsvGzRows<R> {
    CsvGzRows(CsvGzReader::new(file_key, r, cols, md5))
}

impl<R: Read> CsvGzRows<R> {
    /// Owned rows over an already built reader (for example a [`CsvGzReader::threaded`] one).
    pub fn from_reader(reader: CsvGzReader<R>) -> CsvGzRows<R> {
        CsvGzRows(reader)
    }
}
