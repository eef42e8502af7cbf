//! The CSV manifest (`S3BatchOperations_CSV_20180820`): no header, one object a line, columns in the order of
//! `Spec.Fields`, keys URL-encoded the way S3 Inventory writes them (form encoding: `+` is a space, a literal `+` is
//! `%2B`), version ids all or nothing.

use serde::{Deserialize, Serialize};

/// `JobManifestFormat` values s3batch reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ManifestFormat {
    #[serde(rename = "S3BatchOperations_CSV_20180820")]
    S3BatchOperationsCsv20180820,
    /// An S3 Inventory report's `manifest.json` (read in the manifests issue; until then such a job fails in
    /// Preparing with a clear reason).
    #[serde(rename = "S3InventoryReport_CSV_20161130")]
    S3InventoryReportCsv20161130,
}

/// `JobManifestFieldName`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldName {
    Ignore,
    Bucket,
    Key,
    VersionId,
}

/// Longest object key S3 accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// One manifest line: one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestTask {
    pub bucket: String,
    /// The key the task acts on, decoded ([`decode_key`]).
    pub key: String,
    /// The key exactly as the manifest wrote it (URL-encoded); the report echoes this form.
    pub raw_key: String,
    pub version_id: Option<String>,
}

/// A manifest line that cannot be a task. `line` counts from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ManifestError {
    pub line: u64,
    pub message: String,
}

/// Which column holds what, from `Spec.Fields`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvLayout {
    bucket: usize,
    key: usize,
    version: Option<usize>,
    columns: usize,
    /// Lines may leave the version id empty (the null version): chunk payloads, inventories.
    version_optional: bool,
}

/// `Spec.Fields` does not describe a usable layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Manifest.Spec.Fields {0}")]
pub struct LayoutError(String);

impl CsvLayout {
    /// Exactly one Bucket and one Key, at most one VersionId, any number of Ignore.
    pub fn new(fields: &[FieldName]) -> Result<CsvLayout, LayoutError> {
        let find = |name: FieldName| -> Result<Option<usize>, LayoutError> {
            let mut at = fields.iter().enumerate().filter(|(_, f)| **f == name).map(|(i, _)| i);
            let first = at.next();
            if at.next().is_some() {
                return Err(LayoutError(format!("names {name:?} more than once")));
            }
            Ok(first)
        };
        let bucket = find(FieldName::Bucket)?.ok_or_else(|| LayoutError("must name a Bucket column".into()))?;
        let key = find(FieldName::Key)?.ok_or_else(|| LayoutError("must name a Key column".into()))?;
        let version = find(FieldName::VersionId)?;
        Ok(CsvLayout { bucket, key, version, columns: fields.len(), version_optional: false })
    }

    /// The layout of lines a chunk carries itself ([`write_payload_line`]): `bucket,key,version id`, the version
    /// id empty where there is none.
    pub fn payload() -> CsvLayout {
        CsvLayout { bucket: 0, key: 1, version: Some(2), columns: 3, version_optional: true }
    }

    /// Whether every line carries a version id.
    pub fn has_versions(&self) -> bool {
        self.version.is_some()
    }

    /// Read one CSV record (line `line`, counting from 1) into a task.
    pub fn parse(&self, record: &csv::ByteRecord, line: u64) -> Result<ManifestTask, ManifestError> {
        let err = |message: String| ManifestError { line, message };
        if record.len() != self.columns {
            return Err(err(format!("has {} columns; Spec.Fields names {}", record.len(), self.columns)));
        }
        let field = |i: usize, name: &str| -> Result<&str, ManifestError> {
            std::str::from_utf8(&record[i]).map_err(|_| err(format!("the {name} column is not UTF-8")))
        };
        let bucket = field(self.bucket, "Bucket")?;
        if !crate::arn::valid_bucket_name(bucket) {
            return Err(err(format!("'{bucket}' is not a valid bucket name")));
        }
        let raw_key = field(self.key, "Key")?;
        let key = decode_key(raw_key).map_err(|m| err(m.to_string()))?;
        if key.is_empty() {
            return Err(err("the Key column is empty".into()));
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(err(format!("the key is {} bytes long; at most {MAX_KEY_BYTES} are allowed", key.len())));
        }
        let version_id = match self.version {
            None => None,
            Some(i) => {
                let v = field(i, "VersionId")?;
                if v.is_empty() && self.version_optional {
                    None
                } else if v.is_empty() {
                    return Err(err(
                        "has no version id, but version ids are all or nothing: every line must have one".into()
                    ));
                } else {
                    Some(v.to_string())
                }
            }
        };
        Ok(ManifestTask { bucket: bucket.to_string(), key, raw_key: raw_key.to_string(), version_id })
    }
}

/// Longest manifest record (one CSV line, its end of line included) read, in bytes. A real line is far shorter: a
/// bucket name is at most 63 bytes, a key at most 1,024 bytes (3,072 URL-encoded), a version id about 32, so even
/// with quoting and a few `Ignore` columns a line stays under 4 KiB. The cap stops a line with an unclosed quote (or
/// no end of line at all) from growing in memory until the process dies; such a line fails the job instead.
pub const MAX_RECORD_BYTES: u64 = 8 * 1024;

/// The error [`BoundedRecords`] reads fail with once a record passes its cap (inside an [`std::io::Error`] of kind
/// `InvalidData`; find it with [`RecordTooLong::find`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the record is longer than {limit} bytes (an unclosed quote, or no end of line?)")]
pub struct RecordTooLong {
    pub limit: u64,
}

impl RecordTooLong {
    /// The cap a CSV reader error reports, if a [`BoundedRecords`] caused it.
    pub fn find(e: &csv::Error) -> Option<RecordTooLong> {
        match e.kind() {
            csv::ErrorKind::Io(io) => io.get_ref().and_then(|inner| inner.downcast_ref::<RecordTooLong>()).copied(),
            _ => None,
        }
    }
}

/// A reader under a CSV reader that lets one record grow to at most `limit` bytes. Before each record, the caller
/// says where it starts ([`BoundedRecords::record_starts_at`], the CSV reader's byte position); reads then hand out
/// bytes only up to `limit + slack` past that start, and fail with [`RecordTooLong`] beyond. `slack` is the CSV
/// reader's buffer size, so read-ahead stays full-sized; a record between `limit` and `limit + slack` bytes is caught
/// by [`BoundedRecords::check`] once read. Memory stays within the buffer and `limit + slack` for the record.
#[derive(Debug)]
pub struct BoundedRecords<R> {
    inner: R,
    limit: u64,
    slack: u64,
    delivered: u64,
    record_start: u64,
}

impl<R> BoundedRecords<R> {
    pub fn new(inner: R, limit: u64, slack: u64) -> BoundedRecords<R> {
        BoundedRecords { inner, limit, slack, delivered: 0, record_start: 0 }
    }

    /// The next record starts at byte `start` of the stream.
    pub fn record_starts_at(&mut self, start: u64) {
        self.record_start = start;
    }

    /// A record from byte `start` to byte `end`: within the cap?
    pub fn check(&self, start: u64, end: u64) -> Result<(), RecordTooLong> {
        if end.saturating_sub(start) > self.limit { Err(RecordTooLong { limit: self.limit }) } else { Ok(()) }
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

impl<R: std::io::Read> std::io::Read for BoundedRecords<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let allowed = self.record_start + self.limit + self.slack;
        let room = allowed.saturating_sub(self.delivered);
        if room == 0 && !buf.is_empty() {
            let e = RecordTooLong { limit: self.limit };
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
        }
        let take = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..take])?;
        self.delivered += n as u64;
        Ok(n)
    }
}

/// A CSV reader set up for manifests: no header, fixed columns checked by [`CsvLayout::parse`].
pub fn csv_reader<R: std::io::Read>(r: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(r)
}

/// The CSV reader's buffer when it reads a whole manifest: [`bounded_csv_reader`].
const MANIFEST_BUFFER: usize = 64 * 1024;

/// [`csv_reader`] over a stream of unknown length (a whole manifest): each record is capped at
/// [`MAX_RECORD_BYTES`] through [`BoundedRecords`], whose `record_starts_at` the caller sets before each record.
pub fn bounded_csv_reader<R: std::io::Read>(r: R) -> csv::Reader<BoundedRecords<R>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(MANIFEST_BUFFER)
        .from_reader(BoundedRecords::new(r, MAX_RECORD_BYTES, MANIFEST_BUFFER as u64))
}

/// Append one line in the [`CsvLayout::payload`] layout: `raw_key` is the URL-encoded key, as a manifest or a
/// report writes it; fields are quoted only where CSV needs it.
pub fn write_payload_line(out: &mut Vec<u8>, bucket: &str, raw_key: &str, version_id: Option<&str>) {
    fn field(out: &mut Vec<u8>, v: &str) {
        if v.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
            out.push(b'"');
            for b in v.bytes() {
                if b == b'"' {
                    out.push(b'"');
                }
                out.push(b);
            }
            out.push(b'"');
        } else {
            out.extend_from_slice(v.as_bytes());
        }
    }
    field(out, bucket);
    out.push(b',');
    field(out, raw_key);
    out.push(b',');
    field(out, version_id.unwrap_or(""));
    out.push(b'\n');
}

/// Decode a manifest key strictly, as S3 Batch Operations reads `S3BatchOperations_CSV_20180820` manifests and S3
/// Inventory CSV reports (both form-encoded, `unquote_plus` in Python): `+` is a space, `%` must start a
/// two-hex-digit escape (so a literal `+` is `%2B` and a literal `%` is `%25`), and the result must be UTF-8.
/// `my+file.jpg` and `my%20file.jpg` both name `my file.jpg`; `a%2Bb.jpg` names `a+b.jpg`; `100%25.jpg` names
/// `100%.jpg`.
pub fn decode_key(raw: &str) -> Result<String, &'static str> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => return Err("the key has a '%' that does not start a %XX escape (write a literal % as %25)"),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "the key does not decode to UTF-8")
}

/// Percent-encode a key for a manifest line: everything but unreserved characters and `/` is escaped
/// (a space becomes `%20`, never `+`).
pub fn encode_key(key: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');
    utf8_percent_encode(key, KEEP).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(s: &str) -> csv::ByteRecord {
        let mut r = csv_reader(s.as_bytes());
        r.byte_records().next().unwrap().unwrap()
    }

    #[test]
    fn decoding_is_form_decoding() {
        assert_eq!(decode_key("a%20b+c").unwrap(), "a b c");
        assert_eq!(decode_key("my+file.jpg").unwrap(), "my file.jpg");
        assert_eq!(decode_key("my%20file.jpg").unwrap(), "my file.jpg");
        assert_eq!(decode_key("a%2Bb.jpg").unwrap(), "a+b.jpg");
        assert_eq!(decode_key("100%25.jpg").unwrap(), "100%.jpg");
        assert_eq!(decode_key("caf%C3%A9/%2B%25%23%3F").unwrap(), "café/+%#?");
        assert!(decode_key("bad%zz").is_err());
        assert!(decode_key("cut%2").is_err());
        assert!(decode_key("%FF").is_err());
    }

    #[test]
    fn encode_then_decode_is_identity() {
        for k in ["a b", "x+y", "100%", "#?&=", "dir/sub/ü ñ", "quote\"comma,"] {
            let e = encode_key(k);
            assert!(!e.contains(' ') && !e.contains('+') && !e.contains(','), "{e}");
            assert_eq!(decode_key(&e).unwrap(), k);
        }
    }

    #[test]
    fn field_order_and_ignore() {
        let l = CsvLayout::new(&[FieldName::Ignore, FieldName::Key, FieldName::Bucket]).unwrap();
        let t = l.parse(&rec("x,my%20key,bkt\n"), 1).unwrap();
        assert_eq!(t.bucket, "bkt");
        assert_eq!(t.key, "my key");
        assert_eq!(t.raw_key, "my%20key");
        assert_eq!(t.version_id, None);
    }

    #[test]
    fn versions_are_all_or_nothing() {
        let l = CsvLayout::new(&[FieldName::Bucket, FieldName::Key, FieldName::VersionId]).unwrap();
        assert!(l.has_versions());
        assert_eq!(l.parse(&rec("b1b,k,v1\n"), 3).unwrap().version_id.as_deref(), Some("v1"));
        let e = l.parse(&rec("b1b,k,\n"), 4).unwrap_err();
        assert_eq!(e.line, 4);
        assert!(e.message.contains("all or nothing"));
    }

    #[test]
    fn column_count_and_bad_values() {
        let l = CsvLayout::new(&[FieldName::Bucket, FieldName::Key]).unwrap();
        assert!(l.parse(&rec("bkt,k,extra\n"), 1).unwrap_err().message.contains("3 columns"));
        assert!(l.parse(&rec("BAD_Bucket!,k\n"), 1).is_err());
        assert!(l.parse(&rec("bkt,\n"), 1).is_err());
        assert!(l.parse(&rec("bkt,%g1\n"), 1).unwrap_err().message.contains("escape"));
        assert_eq!(l.parse(&rec("bkt,\"quoted,key\"\n"), 1).unwrap().key, "quoted,key");
    }

    #[test]
    fn payload_lines_round_trip() {
        let mut out = Vec::new();
        write_payload_line(&mut out, "bkt", "a%20b", None);
        write_payload_line(&mut out, "bkt", "odd,\"raw\"", Some("v\"1"));
        let l = CsvLayout::payload();
        let mut r = csv_reader(&out[..]);
        let recs: Vec<_> = r.byte_records().map(|r| r.unwrap()).collect();
        let a = l.parse(&recs[0], 1).unwrap();
        assert_eq!((a.key.as_str(), a.raw_key.as_str(), a.version_id), ("a b", "a%20b", None));
        let b = l.parse(&recs[1], 2).unwrap();
        assert_eq!((b.raw_key.as_str(), b.version_id.as_deref()), ("odd,\"raw\"", Some("v\"1")));
    }

    #[test]
    fn layouts() {
        assert!(CsvLayout::new(&[FieldName::Bucket]).is_err());
        assert!(CsvLayout::new(&[FieldName::Bucket, FieldName::Key, FieldName::Key]).is_err());
        assert!(CsvLayout::new(&[]).is_err());
    }
}
