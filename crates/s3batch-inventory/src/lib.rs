//! # s3batch-inventory
//!
//! Readers for inventory reports used as job manifests, and the writer of generated manifests. No I/O beyond the
//! readers and writers handed in; no dependency on the engine, store or storage crates.
//!
//! - [`parse_manifest`] / [`check_manifest_checksum`]: an S3 Inventory `manifest.json` (CSV, ORC, Parquet) or a
//!   Tencent COS inventory `manifest.json` (`COSInventoryReport_CSV_V1`), and `manifest.checksum`;
//! - [`Columns`]: the CSV column layout from `fileSchema`;
//! - [`csv_gz_rows`] / [`CsvGzReader`]: gzip CSV data files, streamed, MD5 checked at the end (the borrowing
//!   [`CsvGzReader::next_row`] allocates nothing per row);
//! - [`parquet_rows`] / [`orc_rows`]: Parquet and ORC data files, one record batch at a time;
//! - [`GeneratedManifestWriter`]: the `S3InventoryReport_CSV_20211130` generated manifest.
//!
//! Keys come out decoded and byte-exact ([`Row::key`]), with [`Row::raw_key`] the form an
//! `S3BatchOperations_CSV_20180820` manifest (and so a completion report) carries.
//!
//! ## Facts this crate relies on, and choices where the sources say nothing
//!
//! - S3 Inventory CSV keys are form-encoded: a space is written `+` and a `+` as `%2B` (tools that read S3
//!   Inventory decode with `unquote_plus`), so [`KeyEncoding::Form`] is the default. ORC and Parquet keys are not
//!   encoded at all.
//! - With a VersionId column, S3 writes an empty version id for an object stored before versioning was enabled;
//!   S3 Batch Operations fails such tasks (it accepts the string `null`, not an empty one). [`Row::version_id`]
//!   keeps the empty string so the engine can do the same.
//! - COS inventories: `manifest.json` has `sourceAppid`, string sizes and `md5Checksum`; rows start with an
//!   `Appid` column. Whether the Bucket column carries the `-<appid>` suffix is not documented, so a bucket name
//!   without it gets it appended (one that already ends in `-<appid>` is kept). Whether COS writes a space as `+`
//!   or `%20` is not documented either; both decode right with [`KeyEncoding::Form`] unless COS leaves a literal
//!   `+` unescaped, for which [`Columns::with_key_encoding`] offers [`KeyEncoding::Percent`].
//! - The generated manifest's exact columns and file names are not documented by AWS; see [`GeneratedManifestWriter`].
//!
//! ## Throughput
//!
//! `tests/perf.rs` (ignored by default; `PERF_PHASE=<part>` runs one part) reads one million 146-byte inventory
//! lines (34 MB gzip). Per line, counted with callgrind: gunzip (zlib-rs) about 1,700 instructions, CSV splitting
//! (csv crate) about 2,000, the whole borrowing [`CsvGzReader::next_row`] about 5,400 (4,800 with
//! [`Columns::task_fields_only`]), the owned [`Row`] iterator about 8,800. A hand-written memchr record splitter
//! was tried and measured no cheaper than the csv crate, so the csv crate stays. [`CsvGzReader::threaded`] moves
//! gunzip to a second core.

mod columnar;
mod columns;
mod csv_gz;
mod error;
pub mod fuzzing;
mod hashing;
mod manifest;
mod orc_check;
mod parquet_check;
mod row;
mod source;
mod writer;

pub use columnar::{BATCH_ROWS, ColumnarRows, orc_rows, parquet_rows};
pub use columns::{Columns, KeyEncoding, form_encode_into};
pub use csv_gz::{CsvGzReader, CsvGzRows, csv_gz_rows};
pub use error::{InventoryError, RowError};
pub use manifest::{
    DataFile, FileFormat, Flavor, InventoryManifest, check_manifest_checksum, columnar_schema_names, md5_hex,
    parse_manifest,
};
pub use row::{Row, RowRef};
pub use writer::{DataSink, DirSink, GeneratedManifest, GeneratedManifestOptions, GeneratedManifestWriter};
