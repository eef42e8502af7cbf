//! Parquet and ORC data files, written here with parquet's ArrowWriter and orc-rust's writer.

mod common;

use std::collections::BTreeSet;
use std::fs::File;
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use common::{TRICKY_KEYS, md5_hex};
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use s3batch_core::manifest::encode_key;
use s3batch_inventory::{BATCH_ROWS, ColumnarRows, InventoryError, Row, RowError, orc_rows, parquet_rows};

/// One entry for a fixture: (bucket, key, version, size).
type Entry = (Option<String>, Option<String>, Option<String>, Option<i64>);

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("bucket", DataType::Utf8, true),
        Field::new("key", DataType::Utf8, true),
        Field::new("version_id", DataType::Utf8, true),
        Field::new("is_latest", DataType::Boolean, true),
        Field::new("is_delete_marker", DataType::Boolean, true),
        Field::new("size", DataType::Int64, true),
        Field::new("last_modified_date", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("e_tag", DataType::Utf8, true),
        Field::new("storage_class", DataType::Utf8, true),
    ]))
}

fn batch(entries: &[Entry]) -> RecordBatch {
    let strs = |f: &dyn Fn(&Entry) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(entries.iter().map(f).collect::<Vec<_>>()))
    };
    let n = entries.len();
    RecordBatch::try_new(
        schema(),
        vec![
            strs(&|e| e.0.clone()),
            strs(&|e| e.1.clone()),
            strs(&|e| e.2.clone()),
            Arc::new(BooleanArray::from(vec![Some(true); n])),
            Arc::new(BooleanArray::from(vec![Some(false); n])),
            Arc::new(Int64Array::from(entries.iter().map(|e| e.3).collect::<Vec<_>>())),
            Arc::new(TimestampMillisecondArray::from(vec![Some(1_704_164_645_123); n])),
            strs(&|_| Some("etag".into())),
            strs(&|_| Some("STANDARD".into())),
        ],
    )
    .unwrap()
}

fn entries_for(keys: &[&str]) -> Vec<Entry> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| (Some("src-bucket".into()), Some(k.to_string()), Some(format!("v{i}")), Some(i as i64)))
        .collect()
}

fn write_parquet(path: &std::path::Path, entries: &[Entry], compression: Compression) {
    let props =
        WriterProperties::builder().set_compression(compression).set_max_row_group_row_count(Some(5000)).build();
    let mut w = parquet::arrow::ArrowWriter::try_new(File::create(path).unwrap(), schema(), Some(props)).unwrap();
    for chunk in entries.chunks(3000) {
        w.write(&batch(chunk)).unwrap();
    }
    w.close().unwrap();
}

fn write_orc(path: &std::path::Path, entries: &[Entry], compression: orc_rust::compression::CompressionType) {
    let mut w = orc_rust::ArrowWriterBuilder::new(File::create(path).unwrap(), schema())
        .with_compression(compression)
        .try_build()
        .unwrap();
    for chunk in entries.chunks(3000) {
        w.write(&batch(chunk)).unwrap();
    }
    w.close().unwrap();
}

fn md5_of(path: &std::path::Path) -> String {
    md5_hex(&std::fs::read(path).unwrap())
}

fn open(kind: &str, path: &std::path::Path, md5: Option<&str>) -> Result<ColumnarRows, InventoryError> {
    let f = File::open(path).unwrap();
    match kind {
        "parquet" => parquet_rows("data/f", f, md5),
        _ => orc_rows("data/f", f, md5),
    }
}

fn check_tricky(kind: &str, path: &std::path::Path) {
    let md5 = md5_of(path);
    let rows: Vec<Row> = open(kind, path, Some(&md5)).unwrap().map(Result::unwrap).collect();
    let got: BTreeSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(got, TRICKY_KEYS.iter().copied().collect::<BTreeSet<_>>());
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.key, TRICKY_KEYS[i], "{kind}");
        assert_eq!(r.raw_key, encode_key(TRICKY_KEYS[i]));
        assert_eq!(r.bucket, "src-bucket");
        assert_eq!(r.version_id, Some(format!("v{i}")));
        assert_eq!(r.size, Some(i as u64));
        assert_eq!((r.is_latest, r.is_delete_marker), (Some(true), Some(false)));
        assert_eq!(r.last_modified.as_deref(), Some("2024-01-02T03:04:05.123Z"));
        assert_eq!(r.etag.as_deref(), Some("etag"));
        assert_eq!(r.storage_class.as_deref(), Some("STANDARD"));
        assert_eq!(r.line, i as u64 + 1);
    }
}

#[test]
fn parquet_keys_are_verbatim_under_each_codec() {
    let dir = tempfile::tempdir().unwrap();
    for (name, c) in [
        ("none", Compression::UNCOMPRESSED),
        ("snappy", Compression::SNAPPY),
        ("gzip", Compression::GZIP(GzipLevel::default())),
        ("zstd", Compression::ZSTD(ZstdLevel::default())),
    ] {
        let path = dir.path().join(format!("{name}.parquet"));
        write_parquet(&path, &entries_for(TRICKY_KEYS), c);
        check_tricky("parquet", &path);
    }
}

#[test]
fn orc_keys_are_verbatim_under_each_codec() {
    use orc_rust::compression::CompressionType;
    let dir = tempfile::tempdir().unwrap();
    for (name, c) in
        [("zlib", CompressionType::Zlib), ("snappy", CompressionType::Snappy), ("zstd", CompressionType::Zstd)]
    {
        let path = dir.path().join(format!("{name}.orc"));
        write_orc(&path, &entries_for(TRICKY_KEYS), c);
        check_tricky("orc", &path);
    }
}

#[test]
fn many_batches_keep_every_row_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let n = BATCH_ROWS * 2 + 123;
    let keys: Vec<String> = (0..n).map(|i| format!("k/{i:06}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let entries = entries_for(&refs);
    let pq = dir.path().join("big.parquet");
    write_parquet(&pq, &entries, Compression::SNAPPY);
    let orc = dir.path().join("big.orc");
    write_orc(&orc, &entries, orc_rust::compression::CompressionType::Zstd);
    for (kind, path) in [("parquet", &pq), ("orc", &orc)] {
        let mut count = 0u64;
        for (i, r) in open(kind, path, None).unwrap().enumerate() {
            let r = r.unwrap();
            assert_eq!(r.key, keys[i]);
            assert_eq!(r.line, i as u64 + 1);
            count += 1;
        }
        assert_eq!(count, n as u64, "{kind}");
    }
}

#[test]
fn bad_rows_name_their_row_number() {
    let dir = tempfile::tempdir().unwrap();
    let mut entries = entries_for(&["a", "b", "c", "d", "e"]);
    entries[1].1 = None; // null key
    entries[2].0 = Some("Not_A_Bucket".into());
    entries[3].1 = Some(String::new());
    entries[4].3 = Some(-5);
    for kind in ["parquet", "orc"] {
        let path = dir.path().join(format!("bad.{kind}"));
        if kind == "parquet" {
            write_parquet(&path, &entries, Compression::SNAPPY);
        } else {
            write_orc(&path, &entries, orc_rust::compression::CompressionType::Zlib);
        }
        let results: Vec<Result<Row, RowError>> = open(kind, &path, None).unwrap().collect();
        assert_eq!(results.len(), 5, "{kind}");
        assert_eq!(results[0].as_ref().unwrap().key, "a");
        let msg = |i: usize| results[i].as_ref().unwrap_err().to_string();
        assert_eq!(msg(1), "data/f line 2: the key column is null");
        assert_eq!(msg(2), "data/f line 3: 'Not_A_Bucket' is not a valid bucket name");
        assert_eq!(msg(3), "data/f line 4: the Key column is empty");
        assert_eq!(msg(4), "data/f line 5: the size column is negative (-5)");
    }
}

#[test]
fn md5_mismatch_and_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let pq = dir.path().join("a.parquet");
    write_parquet(&pq, &entries_for(&["x"]), Compression::SNAPPY);
    let orc = dir.path().join("a.orc");
    write_orc(&orc, &entries_for(&["x"]), orc_rust::compression::CompressionType::Zlib);
    for (kind, path) in [("parquet", &pq), ("orc", &orc)] {
        let got = md5_of(path);
        let e = open(kind, path, Some("ffffffffffffffffffffffffffffffff")).err().unwrap();
        assert_eq!(
            e.to_string(),
            format!(
                "data/f: MD5 mismatch: manifest.json says ffffffffffffffffffffffffffffffff, the file's bytes hash to {got}"
            )
        );
        // Truncated file: the MD5 catches it, and without an MD5 the format reader does.
        let cut = dir.path().join(format!("cut.{kind}"));
        let bytes = std::fs::read(path).unwrap();
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        assert!(open(kind, &cut, Some(&got)).err().unwrap().to_string().contains("MD5 mismatch"));
        let e = open(kind, &cut, None).err().unwrap().to_string();
        assert!(
            e.starts_with(&format!(
                "data/f: is not a readable {} file: ",
                if kind == "orc" { "ORC" } else { "Parquet" }
            )),
            "{e}"
        );
    }
}

#[test]
fn a_file_without_a_key_column_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("bucket", DataType::Utf8, false)]));
    let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec!["bkt"]))]).unwrap();
    let pq = dir.path().join("nokey.parquet");
    let mut w = parquet::arrow::ArrowWriter::try_new(File::create(&pq).unwrap(), schema.clone(), None).unwrap();
    w.write(&b).unwrap();
    w.close().unwrap();
    assert_eq!(open("parquet", &pq, None).err().unwrap().to_string(), "data/f: has no key column");
    let orc = dir.path().join("nokey.orc");
    let mut w = orc_rust::ArrowWriterBuilder::new(File::create(&orc).unwrap(), schema).try_build().unwrap();
    w.write(&b).unwrap();
    w.close().unwrap();
    assert_eq!(open("orc", &orc, None).err().unwrap().to_string(), "data/f: has no key column");
}

/// Writes the fuzz seeds of the Parquet and ORC targets (`fuzz/corpus/inventory_{parquet,orc}`): small files of
/// the kinds above, under each codec, with good and bad rows. Run by hand: `cargo test --test columnar -- --ignored`.
#[test]
#[ignore = "writes the fuzz seeds"]
fn write_fuzz_seeds() {
    use orc_rust::compression::CompressionType;
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let mut bad = entries_for(&["a", "b", "c", "d"]);
    bad[1].1 = None;
    bad[2].0 = Some("Not_A_Bucket".into());
    bad[3].3 = Some(-5);
    let sets = [("tricky", entries_for(&TRICKY_KEYS[..4])), ("bad", bad)];
    let dir = fuzz.join("inventory_parquet");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, c) in [("none", Compression::UNCOMPRESSED), ("snappy", Compression::SNAPPY)] {
        for (set, entries) in &sets {
            write_parquet(&dir.join(format!("seed-{set}-{name}")), entries, c);
        }
    }
    let dir = fuzz.join("inventory_orc");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, c) in [("zlib", CompressionType::Zlib), ("snappy", CompressionType::Snappy)] {
        for (set, entries) in &sets {
            write_orc(&dir.join(format!("seed-{set}-{name}")), entries, c);
        }
    }
}

/// The time to open (footer and chunk checks included) and read a 300,000-row ORC file under each codec, best of
/// three. Run by hand: `cargo test --workspace --locked --test columnar -- --ignored --nocapture orc_read_time`.
#[test]
#[ignore = "measures time; run explicitly"]
fn orc_read_time() {
    use orc_rust::compression::CompressionType;
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<String> =
        (0..300_000).map(|i| format!("logs/2024/01/{:02}/host-{}/file {i}.log", i % 31, i % 97)).collect();
    let entries = entries_for(&keys.iter().map(String::as_str).collect::<Vec<_>>());
    for (name, c) in
        [("snappy", CompressionType::Snappy), ("zlib", CompressionType::Zlib), ("zstd", CompressionType::Zstd)]
    {
        let path = dir.path().join(format!("{name}.orc"));
        write_orc(&path, &entries, c);
        let (mut open_s, mut read_s) = (f64::MAX, f64::MAX);
        for _ in 0..3 {
            let t = std::time::Instant::now();
            let rows = open("orc", &path, None).unwrap();
            open_s = open_s.min(t.elapsed().as_secs_f64());
            assert_eq!(rows.count(), keys.len());
            read_s = read_s.min(t.elapsed().as_secs_f64());
        }
        let size = std::fs::metadata(&path).unwrap().len();
        println!(
            "orc {name}: {size} bytes, 300000 rows: open {:.1} ms, open and read {:.1} ms",
            open_s * 1e3,
            read_s * 1e3
        );
    }
}
