//! The two error types: [`InventoryError`] for a manifest or a whole data file, [`RowError`] for one line or row.

/// A manifest (or a data file as a whole) that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    /// `manifest.json` is not JSON, is not an object, or misses or mistypes a field.
    #[error("manifest.json {0}")]
    Manifest(String),
    /// `fileFormat` is none of CSV, ORC, Parquet.
    #[error("manifest.json fileFormat '{0}' is not one of CSV, ORC, Parquet")]
    UnknownFormat(String),
    /// `fileSchema` does not name the columns a reader needs.
    #[error("manifest.json fileSchema '{schema}' {message}")]
    Schema { schema: String, message: String },
    /// `manifest.checksum` does not hold the MD5 of `manifest.json`.
    #[error("manifest.checksum holds {expected}, but the MD5 of manifest.json is {got}")]
    ChecksumMismatch { expected: String, got: String },
    /// A data file whose bytes do not match the manifest's MD5 (`expected`), or that cannot be opened as its format.
    #[error("{file}: {message}")]
    DataFile { file: String, message: String },
    /// Writing a generated manifest failed.
    #[error("generated manifest: {0}")]
    Write(String),
}

/// How [`RowError::undecodable`] begins.
const UNDECODABLE: &str = "cannot be decoded";

/// One line (CSV) or row (Parquet, ORC) of a data file that cannot be a task, or a data file that turned out bad
/// while it was read (corrupt gzip, MD5 mismatch at its end).
///
/// `line` counts from 1: the line a CSV record starts on, or the row number in a Parquet or ORC file. `0` means
/// the file as a whole (for example an MD5 mismatch found at its end).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct RowError {
    pub file: String,
    pub line: u64,
    pub message: String,
}

impl RowError {
    pub(crate) fn new(file: &str, line: u64, message: impl Into<String>) -> RowError {
        RowError { file: file.to_string(), line, message: message.into() }
    }

    /// A Parquet or ORC file whose record batch cannot be decoded (its decoder returned an error or panicked).
    pub(crate) fn undecodable(file: &str, line: u64, why: impl std::fmt::Display) -> RowError {
        RowError::new(file, line, format!("{UNDECODABLE}: {why}"))
    }

    /// The error concerns the data file itself (its bytes do not hash to the listed MD5, or a Parquet or ORC batch
    /// cannot be decoded), not the content of one line or row.
    pub fn is_invalid_file(&self) -> bool {
        (self.line == 0 && self.message.starts_with("MD5 mismatch")) || self.message.starts_with(UNDECODABLE)
    }

    fn render(&self) -> String {
        if self.line == 0 {
            format!("{}: {}", self.file, self.message)
        } else {
            format!("{} line {}: {}", self.file, self.line, self.message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the file's own MD5 check and an undecodable batch make the file invalid; a row that says "MD5" does not.
    #[test]
    fn what_makes_a_data_file_invalid() {
        assert!(
            RowError::new("f", 0, "MD5 mismatch: manifest.json says a, the file's bytes hash to b").is_invalid_file()
        );
        assert!(RowError::undecodable("f", 3, "External error: boom").is_invalid_file());
        assert!(!RowError::new("f", 2, "'my-bucMD5 mismatchket' is not a valid bucket name").is_invalid_file());
        assert!(!RowError::new("f", 0, "the file is empty (not gzip data)").is_invalid_file());
    }
}
