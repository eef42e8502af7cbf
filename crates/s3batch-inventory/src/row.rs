//! One inventory entry: [`Row`] (owned) and [`RowRef`] (borrowed, for the allocation-free CSV path).

use s3batch_core::manifest::encode_key;

/// One inventory entry, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub bucket: String,
    /// The object key, decoded, byte for byte.
    pub key: String,
    /// The key as an `S3BatchOperations_CSV_20180820` manifest carries it
    /// ([`s3batch_core::manifest::encode_key`] of `key`): the form a completion report echoes.
    pub raw_key: String,
    /// The VersionId column when the inventory has one (it may be empty: S3 writes an empty version id for an
    /// object stored before versioning was enabled, and S3 Batch Operations fails such a task); `None` without
    /// the column.
    pub version_id: Option<String>,
    pub size: Option<u64>,
    pub is_latest: Option<bool>,
    pub is_delete_marker: Option<bool>,
    /// LastModifiedDate as written in CSV (e.g. `2024-01-02T03:04:05.000Z`); Parquet/ORC timestamps are written
    /// in that form (UTC, milliseconds).
    pub last_modified: Option<String>,
    pub etag: Option<String>,
    pub storage_class: Option<String>,
    /// Line (CSV) or row (Parquet, ORC) number in its data file, from 1.
    pub line: u64,
}

/// One inventory entry borrowed from the reader's buffers; valid until the next call to `next_row`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRef<'a> {
    pub bucket: &'a str,
    /// The decoded key.
    pub key: &'a str,
    pub version_id: Option<&'a str>,
    pub size: Option<u64>,
    pub is_latest: Option<bool>,
    pub is_delete_marker: Option<bool>,
    pub last_modified: Option<&'a str>,
    pub etag: Option<&'a str>,
    pub storage_class: Option<&'a str>,
    pub line: u64,
}

impl RowRef<'_> {
    /// [`encode_key`] of the key.
    pub fn raw_key(&self) -> String {
        encode_key(self.key)
    }

    pub fn to_row(&self) -> Row {
        Row {
            bucket: self.bucket.to_string(),
            key: self.key.to_string(),
            raw_key: self.raw_key(),
            version_id: self.version_id.map(str::to_string),
            size: self.size,
            is_latest: self.is_latest,
            is_delete_marker: self.is_delete_marker,
            last_modified: self.last_modified.map(str::to_string),
            etag: self.etag.map(str::to_string),
            storage_class: self.storage_class.map(str::to_string),
            line: self.line,
        }
    }
}

/// Checks shared by every reader: the key is not empty and not longer than S3 allows.
pub(crate) fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("the Key column is empty".into());
    }
    if key.len() > s3batch_core::manifest::MAX_KEY_BYTES {
        return Err(format!(
            "the key is {} bytes long; at most {} are allowed",
            key.len(),
            s3batch_core::manifest::MAX_KEY_BYTES
        ));
    }
    Ok(())
}

/// `true`/`false` in any case; empty is `None`.
pub(crate) fn parse_bool(v: &[u8], name: &str) -> Result<Option<bool>, String> {
    if v.is_empty() {
        Ok(None)
    } else if v.eq_ignore_ascii_case(b"true") {
        Ok(Some(true))
    } else if v.eq_ignore_ascii_case(b"false") {
        Ok(Some(false))
    } else {
        Err(format!("the {name} column '{}' is not true or false", String::from_utf8_lossy(v)))
    }
}

/// A decimal byte count; empty is `None`.
pub(crate) fn parse_size(v: &[u8]) -> Result<Option<u64>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| format!("the Size column '{}' is not a byte count", String::from_utf8_lossy(v)))
}
