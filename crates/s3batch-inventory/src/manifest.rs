//! An inventory's `manifest.json` (S3 and COS shapes) and `manifest.checksum`.
//!
//! S3 writes `{sourceBucket, destinationBucket (an ARN), version, creationTimestamp (epoch ms as a string),
//! fileFormat (CSV | ORC | Parquet), fileSchema, files: [{key, size, MD5checksum}]}`. COS writes
//! `{sourceAppid, sourceBucket, destinationAppid, destinationBucket, fileFormat: "CSV", listObjectCount, …,
//! fileSchema: "Appid, Bucket, Key, …", files: [{key, size (a string), md5Checksum}]}`. Both map onto
//! [`InventoryManifest`]. `manifest.checksum` holds the hex MD5 of the `manifest.json` bytes.

use md5::{Digest, Md5};
use serde_json::{Map, Value};

use crate::InventoryError;
use crate::columns::Columns;

/// The data files' format (`fileFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// gzip-compressed CSV, no header, keys URL-encoded.
    Csv,
    /// Apache Parquet, keys as they are.
    Parquet,
    /// Apache ORC, keys as they are.
    Orc,
}

impl FileFormat {
    /// The name `manifest.json` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            FileFormat::Csv => "CSV",
            FileFormat::Parquet => "Parquet",
            FileFormat::Orc => "ORC",
        }
    }
}

/// Who wrote the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Amazon S3 Inventory (or a generated manifest in its shape).
    S3,
    /// Tencent COS inventory (`sourceAppid`, an `Appid` column, `md5Checksum`).
    Cos,
}

/// One data file of an inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    /// Object key of the data file in the destination bucket.
    pub key: String,
    /// Its size in bytes (compressed size for CSV).
    pub size: u64,
    /// MD5 of its bytes, lower-case hex.
    pub md5: String,
}

/// A parsed `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryManifest {
    pub flavor: Flavor,
    pub source_bucket: String,
    /// S3: the destination bucket's ARN (`arn:aws:s3:::name`); COS: the bucket name.
    pub destination_bucket: String,
    pub file_format: FileFormat,
    pub file_schema: String,
    pub files: Vec<DataFile>,
    /// `version` (S3: `2016-11-30`), if present.
    pub version: Option<String>,
    /// `creationTimestamp` as written (S3: epoch milliseconds), if present.
    pub creation_timestamp: Option<String>,
    /// COS `sourceAppid`, if present.
    pub source_appid: Option<String>,
    /// COS `destinationAppid`, if present.
    pub destination_appid: Option<String>,
}

impl InventoryManifest {
    /// The CSV column layout from `fileSchema` (only for [`FileFormat::Csv`]; Parquet and ORC files are read by
    /// column name from the file itself).
    pub fn columns(&self) -> Result<Columns, InventoryError> {
        Columns::from_schema(&self.file_schema)
    }

    /// The bucket name of `destinationBucket` (S3 gives an ARN, COS a name).
    pub fn destination_bucket_name(&self) -> String {
        s3batch_core::arn::parse_bucket_arn(&self.destination_bucket).unwrap_or_else(|| self.destination_bucket.clone())
    }
}

fn err(message: impl Into<String>) -> InventoryError {
    InventoryError::Manifest(message.into())
}

fn get_str(obj: &Map<String, Value>, name: &str, required: bool) -> Result<Option<String>, InventoryError> {
    match obj.get(name) {
        None | Some(Value::Null) if required => Err(err(format!("has no {name}"))),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) if !required => Ok(Some(n.to_string())),
        Some(other) => Err(err(format!("{name} is {}, not a string", kind(other)))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parse `manifest.json` in the S3 or the COS shape. Every required field is checked: `sourceBucket`,
/// `destinationBucket`, `fileFormat`, `fileSchema`, `files` (each with `key`, `size`, `MD5checksum`/`md5Checksum`).
/// A CSV manifest's `fileSchema` must name Bucket and Key; a Parquet/ORC one must name bucket and key.
pub fn parse_manifest(bytes: &[u8]) -> Result<InventoryManifest, InventoryError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| err(format!("is not JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(err(format!("is {}, not a JSON object", kind(&value))));
    };
    let source_bucket = get_str(&obj, "sourceBucket", true)?.unwrap_or_default();
    if source_bucket.is_empty() {
        return Err(err("sourceBucket is empty"));
    }
    let destination_bucket = get_str(&obj, "destinationBucket", true)?.unwrap_or_default();
    if destination_bucket.is_empty() {
        return Err(err("destinationBucket is empty"));
    }
    let format_name = get_str(&obj, "fileFormat", true)?.unwrap_or_default();
    let file_format = match format_name.to_ascii_lowercase().as_str() {
        "csv" => FileFormat::Csv,
        "parquet" => FileFormat::Parquet,
        "orc" => FileFormat::Orc,
        _ => return Err(InventoryError::UnknownFormat(format_name)),
    };
    let file_schema = get_str(&obj, "fileSchema", true)?.unwrap_or_default();
    match file_format {
        FileFormat::Csv => {
            Columns::from_schema(&file_schema)?;
        }
        FileFormat::Parquet | FileFormat::Orc => check_columnar_schema(&file_schema)?,
    }
    let files = match obj.get("files") {
        None | Some(Value::Null) => return Err(err("has no files")),
        Some(Value::Array(a)) => a.iter().enumerate().map(|(i, f)| data_file(i, f)).collect::<Result<Vec<_>, _>>()?,
        Some(other) => return Err(err(format!("files is {}, not an array", kind(other)))),
    };
    let source_appid = get_str(&obj, "sourceAppid", false)?;
    let destination_appid = get_str(&obj, "destinationAppid", false)?;
    let cos_schema = file_schema.split(',').next().is_some_and(|c| c.trim().eq_ignore_ascii_case("appid"));
    let flavor = if source_appid.is_some() || cos_schema { Flavor::Cos } else { Flavor::S3 };
    Ok(InventoryManifest {
        flavor,
        source_bucket,
        destination_bucket,
        file_format,
        file_schema,
        files,
        version: get_str(&obj, "version", false)?,
        creation_timestamp: get_str(&obj, "creationTimestamp", false)?,
        source_appid,
        destination_appid,
    })
}

fn data_file(i: usize, f: &Value) -> Result<DataFile, InventoryError> {
    let at = |m: String| err(format!("files[{i}] {m}"));
    let Value::Object(o) = f else {
        return Err(at(format!("is {}, not an object", kind(f))));
    };
    let key = match o.get("key") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) => return Err(at("has an empty key".into())),
        None | Some(Value::Null) => return Err(at("has no key".into())),
        Some(other) => return Err(at(format!("key is {}, not a string", kind(other)))),
    };
    let size = match o.get("size") {
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| at(format!("size {n} is not a byte count")))?,
        Some(Value::String(s)) => s.parse::<u64>().map_err(|_| at(format!("size '{s}' is not a byte count")))?,
        None | Some(Value::Null) => return Err(at("has no size".into())),
        Some(other) => return Err(at(format!("size is {}, not a number", kind(other)))),
    };
    // S3 spells it MD5checksum, COS md5Checksum.
    let md5 = match o.iter().find(|(k, _)| k.eq_ignore_ascii_case("md5checksum")).map(|(_, v)| v) {
        Some(Value::String(s)) => s.to_ascii_lowercase(),
        None | Some(Value::Null) => return Err(at("has no MD5checksum".into())),
        Some(other) => return Err(at(format!("MD5checksum is {}, not a string", kind(other)))),
    };
    if md5.len() != 32 || !md5.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(at(format!("MD5checksum '{md5}' is not 32 hex digits")));
    }
    Ok(DataFile { key, size, md5 })
}

/// Column names of a Parquet (`message s3.inventory { required binary bucket (UTF8); … }`) or ORC
/// (`struct<bucket:string,key:string,…>`) `fileSchema`.
pub fn columnar_schema_names(schema: &str) -> Vec<String> {
    let s = schema.trim();
    if let Some(body) = s.strip_prefix("struct<").and_then(|b| b.strip_suffix('>')) {
        return body.split(',').filter_map(|f| f.split(':').next()).map(|n| n.trim().to_string()).collect();
    }
    let body = match (s.find('{'), s.rfind('}')) {
        (Some(a), Some(b)) if a < b => &s[a + 1..b],
        _ => s,
    };
    body.split(';')
        .filter_map(|field| {
            let before_annotation = field.split('(').next().unwrap_or("");
            before_annotation.split_whitespace().last().map(str::to_string)
        })
        .collect()
}

fn check_columnar_schema(schema: &str) -> Result<(), InventoryError> {
    let names = columnar_schema_names(schema);
    for needed in ["bucket", "key"] {
        if !names.iter().any(|n| n == needed) {
            return Err(InventoryError::Schema {
                schema: schema.to_string(),
                message: format!("has no {needed} column"),
            });
        }
    }
    Ok(())
}

/// Hex MD5 of some bytes.
pub fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

/// Check that `manifest.checksum` (hex MD5, surrounding whitespace ignored, any case) is the MD5 of
/// `manifest.json`.
pub fn check_manifest_checksum(manifest_json: &[u8], checksum_file: &[u8]) -> Result<(), InventoryError> {
    let got = md5_hex(manifest_json);
    let expected = String::from_utf8_lossy(checksum_file).trim().to_ascii_lowercase();
    if expected == got { Ok(()) } else { Err(InventoryError::ChecksumMismatch { expected, got }) }
}
