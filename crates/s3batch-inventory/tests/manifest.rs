//! `manifest.json` (S3 and COS shapes) and `manifest.checksum`.

use s3batch_inventory::{
    Columns, FileFormat, Flavor, InventoryError, check_manifest_checksum, md5_hex, parse_manifest,
};

const S3_CSV: &str = r#"{
  "sourceBucket" : "example-source-bucket",
  "destinationBucket" : "arn:aws:s3:::example-inventory-destination-bucket",
  "version" : "2016-11-30",
  "creationTimestamp" : "1514944800000",
  "fileFormat" : "CSV",
  "fileSchema" : "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, ReplicationStatus, EncryptionStatus, ObjectLockRetainUntilDate, ObjectLockMode, ObjectLockLegalHoldStatus",
  "files" : [ {
    "key" : "Inventory/example-source-bucket/2016-11-06T21-32Z/files/939c6d46-85a9-4ba8-87bd-9db705a579ce.csv.gz",
    "size" : 2147483647,
    "MD5checksum" : "f11166069f1990abeb9c97ace9cdfabc"
  } ]
}"#;

const S3_ORC: &str = r#"{
    "sourceBucket": "example-source-bucket",
    "destinationBucket": "arn:aws:s3:::example-destination-bucket",
    "version": "2016-11-30",
    "creationTimestamp" : "1514944800000",
    "fileFormat": "ORC",
    "fileSchema": "struct<bucket:string,key:string,version_id:string,is_latest:boolean,is_delete_marker:boolean,size:bigint,last_modified_date:timestamp,e_tag:string,storage_class:string>",
    "files": [ { "key": "inventory/example-source-bucket/data/d794c570.orc", "size": 56291, "MD5checksum": "5925f4e78e1695c2d020b9f6eeab2f5c" } ]
}"#;

const S3_PARQUET: &str = r#"{
    "sourceBucket": "example-source-bucket",
    "destinationBucket": "arn:aws:s3:::example-destination-bucket",
    "version": "2016-11-30",
    "creationTimestamp" : "1514944800000",
    "fileFormat": "Parquet",
    "fileSchema": "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); optional binary version_id (UTF8); optional boolean is_latest; optional int64 size; optional int64 last_modified_date (TIMESTAMP_MILLIS); }",
    "files": [ { "key": "inventory/example-source-bucket/data/d754c470.parquet", "size": 56291, "MD5checksum": "5825f2e18e1695c2d030b9f6ee0a3e2c" } ]
}"#;

/// The COS documentation's example (sizes are strings, the MD5 is `md5Checksum`).
const COS_CSV: &str = r#"{
 "sourceAppid": "1250000000",
 "sourceBucket": "example-source-bucket",
 "destinationAppid": "1250000000",
 "destinationBucket": "example-inventory-destination-bucket",
 "fileFormat": "CSV",
 "listObjectCount": "13",
 "listStorageSize": "7212835",
 "filterObjectCount": "13",
 "filterStorageSize": "7212835",
 "fileSchema": "Appid, Bucket, Key, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, ReplicationStatus",
 "files": [
  {
   "key": "cos_bucket_inventory/1250000000/examplebucket/inventory01/04d73d9debc73d9f0bf85af461abde6c.csv.gz",
   "size": "502",
   "md5Checksum": "7d40288a09c25b302ad6cb5fced54f35"
  }
 ]
}"#;

#[test]
fn s3_csv_manifest() {
    let m = parse_manifest(S3_CSV.as_bytes()).unwrap();
    assert_eq!(m.flavor, Flavor::S3);
    assert_eq!(m.source_bucket, "example-source-bucket");
    assert_eq!(m.destination_bucket, "arn:aws:s3:::example-inventory-destination-bucket");
    assert_eq!(m.destination_bucket_name(), "example-inventory-destination-bucket");
    assert_eq!(m.file_format, FileFormat::Csv);
    assert_eq!(m.version.as_deref(), Some("2016-11-30"));
    assert_eq!(m.creation_timestamp.as_deref(), Some("1514944800000"));
    assert_eq!(m.files.len(), 1);
    assert_eq!(m.files[0].size, 2147483647);
    assert_eq!(m.files[0].md5, "f11166069f1990abeb9c97ace9cdfabc");
    let c = m.columns().unwrap();
    assert_eq!((c.count, c.bucket, c.key, c.version_id, c.size), (15, 0, 1, Some(2), Some(5)));
    assert_eq!(
        (c.is_latest, c.is_delete_marker, c.last_modified, c.etag, c.storage_class),
        (Some(3), Some(4), Some(6), Some(7), Some(8))
    );
}

#[test]
fn s3_orc_and_parquet_manifests() {
    let m = parse_manifest(S3_ORC.as_bytes()).unwrap();
    assert_eq!(m.file_format, FileFormat::Orc);
    assert_eq!(m.files[0].key, "inventory/example-source-bucket/data/d794c570.orc");
    let m = parse_manifest(S3_PARQUET.as_bytes()).unwrap();
    assert_eq!(m.file_format, FileFormat::Parquet);
    assert_eq!(
        s3batch_inventory::columnar_schema_names(&m.file_schema),
        vec!["bucket", "key", "version_id", "is_latest", "size", "last_modified_date"]
    );
}

#[test]
fn cos_manifest_maps_onto_the_same_shape() {
    let m = parse_manifest(COS_CSV.as_bytes()).unwrap();
    assert_eq!(m.flavor, Flavor::Cos);
    assert_eq!(m.source_appid.as_deref(), Some("1250000000"));
    assert_eq!(m.destination_appid.as_deref(), Some("1250000000"));
    assert_eq!(m.source_bucket, "example-source-bucket");
    assert_eq!(m.destination_bucket_name(), "example-inventory-destination-bucket");
    assert_eq!(m.file_format, FileFormat::Csv);
    assert_eq!(m.version, None);
    assert_eq!(m.files[0].size, 502);
    assert_eq!(m.files[0].md5, "7d40288a09c25b302ad6cb5fced54f35");
    let c = m.columns().unwrap();
    assert_eq!((c.appid, c.bucket, c.key, c.size, c.count), (Some(0), 1, 2, Some(3), 9));
}

fn manifest_err(json: &str) -> String {
    parse_manifest(json.as_bytes()).unwrap_err().to_string()
}

fn with(field: &str, value: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(S3_CSV).unwrap();
    if value == "<remove>" {
        v.as_object_mut().unwrap().remove(field);
    } else {
        v[field] = serde_json::from_str(value).unwrap();
    }
    v.to_string()
}

#[test]
fn malformed_manifests_get_precise_errors() {
    assert!(manifest_err("{ not json").starts_with("manifest.json is not JSON: "), "{}", manifest_err("{ not json"));
    assert!(manifest_err("").starts_with("manifest.json is not JSON: "));
    assert_eq!(manifest_err("[1,2]"), "manifest.json is an array, not a JSON object");
    assert_eq!(manifest_err(&with("sourceBucket", "<remove>")), "manifest.json has no sourceBucket");
    assert_eq!(manifest_err(&with("sourceBucket", "\"\"")), "manifest.json sourceBucket is empty");
    assert_eq!(manifest_err(&with("destinationBucket", "<remove>")), "manifest.json has no destinationBucket");
    assert_eq!(manifest_err(&with("sourceBucket", "7")), "manifest.json sourceBucket is a number, not a string");
    assert_eq!(manifest_err(&with("fileFormat", "<remove>")), "manifest.json has no fileFormat");
    assert_eq!(manifest_err(&with("fileSchema", "<remove>")), "manifest.json has no fileSchema");
    assert_eq!(manifest_err(&with("files", "<remove>")), "manifest.json has no files");
    assert_eq!(manifest_err(&with("files", "{}")), "manifest.json files is an object, not an array");
    assert_eq!(manifest_err(&with("files", "[3]")), "manifest.json files[0] is a number, not an object");
    assert_eq!(
        manifest_err(&with("files", r#"[{"size":1,"MD5checksum":"f11166069f1990abeb9c97ace9cdfabc"}]"#)),
        "manifest.json files[0] has no key"
    );
    assert_eq!(
        manifest_err(&with("files", r#"[{"key":"","size":1,"MD5checksum":"f11166069f1990abeb9c97ace9cdfabc"}]"#)),
        "manifest.json files[0] has an empty key"
    );
    assert_eq!(
        manifest_err(&with("files", r#"[{"key":"k","MD5checksum":"f11166069f1990abeb9c97ace9cdfabc"}]"#)),
        "manifest.json files[0] has no size"
    );
    assert_eq!(
        manifest_err(&with("files", r#"[{"key":"k","size":-1,"MD5checksum":"f11166069f1990abeb9c97ace9cdfabc"}]"#)),
        "manifest.json files[0] size -1 is not a byte count"
    );
    assert_eq!(
        manifest_err(&with("files", r#"[{"key":"k","size":"12a","MD5checksum":"f11166069f1990abeb9c97ace9cdfabc"}]"#)),
        "manifest.json files[0] size '12a' is not a byte count"
    );
    assert_eq!(manifest_err(&with("files", r#"[{"key":"k","size":1}]"#)), "manifest.json files[0] has no MD5checksum");
    assert_eq!(
        manifest_err(&with("files", r#"[{"key":"k","size":1,"MD5checksum":"xyz"}]"#)),
        "manifest.json files[0] MD5checksum 'xyz' is not 32 hex digits"
    );
}

#[test]
fn unknown_format_and_unusable_schema() {
    let e = parse_manifest(with("fileFormat", "\"JSON\"").as_bytes()).unwrap_err();
    assert_eq!(e, InventoryError::UnknownFormat("JSON".into()));
    assert_eq!(e.to_string(), "manifest.json fileFormat 'JSON' is not one of CSV, ORC, Parquet");
    // Any case is accepted.
    assert_eq!(parse_manifest(with("fileFormat", "\"csv\"").as_bytes()).unwrap().file_format, FileFormat::Csv);
    assert_eq!(
        manifest_err(&with("fileSchema", "\"Bucket, Size\"")),
        "manifest.json fileSchema 'Bucket, Size' has no Key column"
    );
    assert_eq!(
        manifest_err(&with("fileSchema", "\"Key, Size\"")),
        "manifest.json fileSchema 'Key, Size' has no Bucket column"
    );
    let orc_without_key = S3_ORC.replace("key:string,", "");
    assert!(manifest_err(&orc_without_key).ends_with("has no key column"), "{}", manifest_err(&orc_without_key));
    let parquet_without_bucket = S3_PARQUET.replace("required binary bucket (UTF8); ", "");
    assert!(manifest_err(&parquet_without_bucket).ends_with("has no bucket column"));
    assert!(Columns::from_schema("Bucket,Key").is_ok());
}

#[test]
fn manifest_checksum() {
    let json = S3_CSV.as_bytes();
    let sum = md5_hex(json);
    check_manifest_checksum(json, sum.as_bytes()).unwrap();
    check_manifest_checksum(json, format!("{}\n", sum.to_uppercase()).as_bytes()).unwrap();
    let e = check_manifest_checksum(json, b"00000000000000000000000000000000").unwrap_err();
    assert_eq!(
        e,
        InventoryError::ChecksumMismatch { expected: "00000000000000000000000000000000".into(), got: sum.clone() }
    );
    assert_eq!(
        e.to_string(),
        format!("manifest.checksum holds 00000000000000000000000000000000, but the MD5 of manifest.json is {sum}")
    );
    // One changed byte in manifest.json.
    let mut changed = json.to_vec();
    changed[10] ^= 1;
    assert!(check_manifest_checksum(&changed, sum.as_bytes()).is_err());
}
