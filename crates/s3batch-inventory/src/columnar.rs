//! Parquet and ORC data files (S3 Inventory `Parquet` / `ORC`), read one record batch at a time. Columns are found
//! by name in the file's own schema (`bucket`, `key`, `version_id`, `is_latest`, `is_delete_marker`, `size`,
//! `last_modified_date`, `e_tag`, `storage_class`); keys are stored as they are, not URL-encoded.

use std::fs::File;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Schema, TimeUnit};

use crate::hashing::md5_of_file;
use crate::row::{Row, check_key};
use crate::{InventoryError, RowError};

/// Rows per record batch: memory stays bounded by one batch whatever the file size.
pub const BATCH_ROWS: usize = 8192;

/// The columns read, by their S3 Inventory names.
const WANTED: [&str; 9] = [
    "bucket",
    "key",
    "version_id",
    "is_latest",
    "is_delete_marker",
    "size",
    "last_modified_date",
    "e_tag",
    "storage_class",
];

type Batches = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>;

/// Iterator of [`Row`]s over a Parquet or ORC data file, one record batch in memory at a time. After an error that
/// concerns the whole file (a batch that cannot be decoded) it ends.
pub struct ColumnarRows {
    file: String,
    batches: Batches,
    batch: Option<RecordBatch>,
    cols: Vec<Option<usize>>,
    index: usize,
    row: u64,
    done: bool,
}

fn data_err(file: &str, message: String) -> InventoryError {
    InventoryError::DataFile { file: file.to_string(), message }
}

fn check_md5(file_key: &str, f: &mut File, md5: Option<&str>) -> Result<(), InventoryError> {
    let Some(expected) = md5 else { return Ok(()) };
    let got = md5_of_file(f).map_err(|e| data_err(file_key, format!("reading failed: {e}")))?;
    if got != expected.to_ascii_lowercase() {
        return Err(data_err(
            file_key,
            format!(
                "MD5 mismatch: manifest.json says {}, the file's bytes hash to {got}",
                expected.to_ascii_lowercase()
            ),
        ));
    }
    Ok(())
}

/// Run third-party decoding that may panic on a hostile file (a bucket's files are input like any other): a panic
/// becomes an error naming the file, never a crash of the engine. What `f` was doing is dropped with it.
fn guarded<T>(file_key: &str, format: &str, f: impl FnOnce() -> T) -> Result<T, InventoryError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        data_err(file_key, format!("is not a readable {format} file: its decoder failed ({})", panic_message(&*p)))
    })
}

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic")
}

fn check_schema(file_key: &str, schema: &Schema) -> Result<(), InventoryError> {
    for needed in ["bucket", "key"] {
        if schema.index_of(needed).is_err() {
            return Err(data_err(file_key, format!("has no {needed} column")));
        }
    }
    Ok(())
}

/// Open a Parquet data file. `md5` (hex, from `manifest.json`) is checked against the whole file before any row
/// is read. The embedded Arrow schema (`ARROW:schema`, which only Arrow writers add) is not read: the columns
/// are found in the Parquet schema, and decoding that IPC blob is where hostile files made arrow-ipc panic. The
/// footer and the pages of the columns read are checked before parquet reads them (see `parquet_check`): the
/// footer's and the headers' lists, page sizes and the file's row count are bounded.
pub fn parquet_rows(file_key: &str, mut f: File, md5: Option<&str>) -> Result<ColumnarRows, InventoryError> {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
    check_md5(file_key, &mut f, md5)?;
    let unreadable = |m: String| data_err(file_key, format!("is not a readable Parquet file: {m}"));
    let pages = f.try_clone().map_err(|e| data_err(file_key, format!("reading failed: {e}")))?;
    crate::parquet_check::check_footer(&pages).map_err(unreadable)?;
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    let builder = guarded(file_key, "Parquet", || ParquetRecordBatchReaderBuilder::try_new_with_options(f, options))?
        .map_err(|e| unreadable(e.to_string()))?;
    check_schema(file_key, builder.schema())?;
    let roots: Vec<usize> = WANTED.iter().filter_map(|n| builder.schema().index_of(n).ok()).collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let leaves: Vec<usize> = (0..builder.parquet_schema().num_columns()).filter(|&i| mask.leaf_included(i)).collect();
    crate::parquet_check::check(&pages, builder.metadata(), &leaves).map_err(unreadable)?;
    let reader = guarded(file_key, "Parquet", || builder.with_batch_size(BATCH_ROWS).with_projection(mask).build())?
        .map_err(|e| unreadable(e.to_string()))?;
    Ok(ColumnarRows::new(file_key, Box::new(reader)))
}

/// Open an ORC data file. `md5` (hex, from `manifest.json`) is checked against the whole file before any row is
/// read.
pub fn orc_rows(file_key: &str, mut f: File, md5: Option<&str>) -> Result<ColumnarRows, InventoryError> {
    use orc_rust::projection::ProjectionMask;
    check_md5(file_key, &mut f, md5)?;
    crate::orc_check::check(&mut f, &WANTED)
        .map_err(|m| data_err(file_key, format!("is not a readable ORC file: {m}")))?;
    let builder = guarded(file_key, "ORC", || orc_rust::ArrowReaderBuilder::try_new(f))?
        .map_err(|e| data_err(file_key, format!("is not a readable ORC file: {e}")))?;
    check_schema(file_key, &builder.schema())?;
    let reader = guarded(file_key, "ORC", || {
        let mask = ProjectionMask::named_roots(builder.file_metadata().root_data_type(), &WANTED);
        builder.with_batch_size(BATCH_ROWS).with_projection(mask).build()
    })?;
    Ok(ColumnarRows::new(file_key, Box::new(reader)))
}

impl ColumnarRows {
    fn new(file: &str, batches: Batches) -> ColumnarRows {
        ColumnarRows { file: file.to_string(), batches, batch: None, cols: Vec::new(), index: 0, row: 0, done: false }
    }

    fn load_batch(&mut self, batch: RecordBatch) -> Result<(), String> {
        let schema = batch.schema();
        self.cols = WANTED.iter().map(|n| schema.index_of(n).ok()).collect();
        if self.cols[0].is_none() || self.cols[1].is_none() {
            return Err("a record batch has no bucket or key column".into());
        }
        self.batch = Some(batch);
        self.index = 0;
        Ok(())
    }
}

fn row_at(cols: &[Option<usize>], batch: &RecordBatch, i: usize, line: u64) -> Result<Row, String> {
    let col = |w: usize| cols[w].map(|c| batch.column(c));
    let bucket_col = col(0).ok_or("no bucket column")?;
    let key_col = col(1).ok_or("no key column")?;
    let bucket = str_at(bucket_col, i, "bucket")?.ok_or("the bucket column is null")?;
    if !s3batch_core::arn::valid_bucket_name(&bucket) {
        return Err(format!("'{bucket}' is not a valid bucket name"));
    }
    let key = str_at(key_col, i, "key")?.ok_or("the key column is null")?;
    check_key(&key)?;
    let opt_str = |w: usize, name: &str| col(w).map(|a| str_at(a, i, name)).transpose().map(Option::flatten);
    let opt_bool = |w: usize, name: &str| col(w).map(|a| bool_at(a, i, name)).transpose().map(Option::flatten);
    Ok(Row {
        raw_key: s3batch_core::manifest::encode_key(&key),
        bucket,
        key,
        version_id: opt_str(2, "version_id")?,
        is_latest: opt_bool(3, "is_latest")?,
        is_delete_marker: opt_bool(4, "is_delete_marker")?,
        size: col(5).map(|a| size_at(a, i)).transpose()?.flatten(),
        last_modified: col(6).map(|a| time_at(a, i)).transpose()?.flatten(),
        etag: opt_str(7, "e_tag")?,
        storage_class: opt_str(8, "storage_class")?,
        line,
    })
}

impl Iterator for ColumnarRows {
    type Item = Result<Row, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            if let Some(batch) = &self.batch
                && self.index < batch.num_rows()
            {
                let i = self.index;
                self.index += 1;
                self.row += 1;
                let line = self.row;
                return Some(row_at(&self.cols, batch, i, line).map_err(|m| RowError::new(&self.file, line, m)));
            }
            // A decoder that panics on a hostile file ends the file with an error, as a decoding error does.
            let batches = &mut self.batches;
            let next = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| batches.next())) {
                Ok(next) => next,
                Err(p) => {
                    Some(Err(ArrowError::ExternalError(format!("the decoder failed ({})", panic_message(&*p)).into())))
                }
            };
            match next {
                None => {
                    self.done = true;
                    return None;
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(RowError::undecodable(&self.file, self.row + 1, e)));
                }
                Some(Ok(batch)) => {
                    if let Err(m) = self.load_batch(batch) {
                        self.done = true;
                        return Some(Err(RowError::new(&self.file, self.row + 1, m)));
                    }
                }
            }
        }
    }
}

fn str_at(a: &ArrayRef, i: usize, name: &str) -> Result<Option<String>, String> {
    if a.is_null(i) {
        return Ok(None);
    }
    let bytes_to_string =
        |b: &[u8]| std::str::from_utf8(b).map(str::to_string).map_err(|_| format!("the {name} column is not UTF-8"));
    Ok(Some(match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().value(i).to_string(),
        DataType::LargeUtf8 => a.as_string::<i64>().value(i).to_string(),
        DataType::Utf8View => a.as_string_view().value(i).to_string(),
        DataType::Binary => bytes_to_string(a.as_binary::<i32>().value(i))?,
        DataType::LargeBinary => bytes_to_string(a.as_binary::<i64>().value(i))?,
        DataType::BinaryView => bytes_to_string(a.as_binary_view().value(i))?,
        other => return Err(format!("the {name} column has type {other}, not a string")),
    }))
}

fn bool_at(a: &ArrayRef, i: usize, name: &str) -> Result<Option<bool>, String> {
    if a.is_null(i) {
        return Ok(None);
    }
    match a.data_type() {
        DataType::Boolean => Ok(Some(a.as_boolean().value(i))),
        other => Err(format!("the {name} column has type {other}, not boolean")),
    }
}

fn size_at(a: &ArrayRef, i: usize) -> Result<Option<u64>, String> {
    if a.is_null(i) {
        return Ok(None);
    }
    let signed = match a.data_type() {
        DataType::Int64 => a.as_primitive::<Int64Type>().value(i),
        DataType::Int32 => i64::from(a.as_primitive::<Int32Type>().value(i)),
        DataType::UInt64 => return Ok(Some(a.as_primitive::<UInt64Type>().value(i))),
        other => return Err(format!("the size column has type {other}, not an integer")),
    };
    u64::try_from(signed).map(Some).map_err(|_| format!("the size column is negative ({signed})"))
}

fn time_at(a: &ArrayRef, i: usize) -> Result<Option<String>, String> {
    use arrow_array::types::{
        TimestampMicrosecondType as Us, TimestampMillisecondType as Ms, TimestampNanosecondType as Ns,
        TimestampSecondType as S,
    };
    if a.is_null(i) {
        return Ok(None);
    }
    let millis = match a.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => a.as_primitive::<S>().value(i).checked_mul(1000),
        DataType::Timestamp(TimeUnit::Millisecond, _) => Some(a.as_primitive::<Ms>().value(i)),
        DataType::Timestamp(TimeUnit::Microsecond, _) => Some(a.as_primitive::<Us>().value(i).div_euclid(1000)),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => Some(a.as_primitive::<Ns>().value(i).div_euclid(1_000_000)),
        DataType::Int64 => Some(a.as_primitive::<Int64Type>().value(i)),
        other => return Err(format!("the last_modified_date column has type {other}, not a timestamp")),
    };
    let t = millis
        .and_then(chrono::DateTime::from_timestamp_millis)
        .ok_or("the last_modified_date column is out of range")?;
    Ok(Some(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoder that panics in the middle of a file ends it with an error that names the file and counts as the
    /// file being invalid, and the reader ends there.
    #[test]
    fn a_decoder_panic_ends_the_file_with_an_error() {
        let panicking = std::iter::from_fn(|| -> Option<Result<RecordBatch, ArrowError>> { panic!("boom") });
        let mut rows = ColumnarRows::new("inv/data/0.orc", Box::new(panicking));
        let e = rows.next().expect("an item").expect_err("an error");
        assert!(e.is_invalid_file(), "{e}");
        assert!(e.to_string().starts_with("inv/data/0.orc line 1: cannot be decoded") && e.message.contains("boom"));
        assert!(rows.next().is_none());
    }

    #[test]
    fn an_opening_panic_is_an_error_naming_the_file() {
        let e = guarded("inv/data/0.parquet", "Parquet", || -> u8 { panic!("bit width of {}", 0) }).unwrap_err();
        assert_eq!(
            e.to_string(),
            "inv/data/0.parquet: is not a readable Parquet file: its decoder failed (bit width of 0)"
        );
    }
}
