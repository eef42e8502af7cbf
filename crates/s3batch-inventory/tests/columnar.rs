//! Parquet and ORC data files, written here with parquet's ArrowWriter and orc-rust's writer.

mod common;

use std::collections::BTreeSet;
use std::fs::File;
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use common::{TRICKY_KEYS, md5_hex};
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::metadata::RowGroupMetaDataBuilder;
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
    write_parquet_dictionary(path, entries, compression, true);
}

/// [`write_parquet`], with or without dictionary encoding (without, every string page is PLAIN).
fn write_parquet_dictionary(path: &std::path::Path, entries: &[Entry], compression: Compression, dictionary: bool) {
    let props = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(5000))
        .set_dictionary_enabled(dictionary)
        .build();
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

/// The bytes of `path` (a file of `write_parquet`'s) before its footer.
fn data_len(path: &std::path::Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let footer = u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().unwrap());
    bytes.len() as u64 - 8 - u64::from(footer)
}

/// `path` (a file of `write_parquet`'s) with its footer rewritten: with `pages`, its `key` column chunk in the
/// first row group is those bytes, appended after the data (no dictionary page); `edit` changes that row group
/// further.
fn rewritten(
    path: &std::path::Path,
    pages: Option<&[u8]>,
    edit: impl FnOnce(RowGroupMetaDataBuilder) -> RowGroupMetaDataBuilder,
) -> Vec<u8> {
    use parquet::file::metadata::{ParquetMetaDataReader, ParquetMetaDataWriter};
    let meta = ParquetMetaDataReader::new().parse_and_finish(&File::open(path).unwrap()).unwrap();
    let mut out = std::fs::read(path).unwrap();
    out.truncate(data_len(path) as usize);
    let at = out.len() as i64;
    let key = meta.file_metadata().schema_descr().columns().iter().position(|c| c.name() == "key").unwrap();
    let mut groups = meta.row_groups().to_vec();
    let mut columns = groups[0].columns().to_vec();
    if let Some(pages) = pages {
        out.extend_from_slice(pages);
        columns[key] = columns[key]
            .clone()
            .into_builder()
            .set_data_page_offset(at)
            .set_dictionary_page_offset(None)
            .set_total_compressed_size(pages.len() as i64)
            .build()
            .unwrap();
    }
    groups[0] = edit(groups[0].clone().into_builder().set_column_metadata(columns)).build().unwrap();
    let meta = meta.into_builder().set_row_groups(groups).build();
    ParquetMetaDataWriter::new(&mut out, &meta).finish().unwrap();
    out
}

/// A Parquet data page header (PageHeader in the Thrift compact protocol): a DATA_PAGE of `raw` bytes stored in
/// `stored`, of one PLAIN value, then `extra` (more fields, after field 5), then the end of the struct.
fn page_header(raw: u32, stored: u32, extra: &[u8]) -> Vec<u8> {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut h = vec![0x15, 0x00, 0x15];
    varint(u64::from(raw) << 1, &mut h);
    h.push(0x15);
    varint(u64::from(stored) << 1, &mut h);
    h.extend([0x2c, 0x15, 0x02, 0x15, 0x00, 0x15, 0x06, 0x15, 0x06, 0x00]);
    h.extend(extra);
    h.push(0x00);
    h
}

/// The error opening `bytes` as a Parquet data file.
fn refused(dir: &std::path::Path, bytes: &[u8]) -> String {
    let path = dir.join("edited.parquet");
    std::fs::write(&path, bytes).unwrap();
    open("parquet", &path, None).err().expect("refused on opening").to_string()
}

const KEY_REFUSED: &str = "data/f: is not a readable Parquet file: row group 0, column key: ";

/// parquet skips a page header's unknown fields one list element at a time, whatever the elements: a list of
/// 2^31 - 1 booleans costs it 2^31 steps and no byte (in a header of 7 bytes), a list of UUIDs past the end of
/// the file a `read` each. Such a file is refused when it is opened, before any row is decoded; so is a page that
/// claims more than 16 MiB, and a header or a page longer than its column chunk.
#[test]
fn parquet_page_headers_are_checked_before_parquet_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.parquet");
    write_parquet(&good, &entries_for(&["a", "b"]), Compression::SNAPPY);
    let refused = |pages: &[u8]| refused(dir.path(), &rewritten(&good, Some(pages), |g| g));
    // Field 9 (after 5: delta 4), a list (type 9) of 2^31 - 1 booleans (element type 1, the size as a varint).
    let bools = page_header(0, 0, &[0x49, 0xf1, 0xff, 0xff, 0xff, 0xff, 0x07]);
    assert_eq!(
        refused(&bools),
        format!(
            "{KEY_REFUSED}a page header claims a list of 2147483647 elements in the 1 bytes left of its column chunk"
        )
    );
    // A map (type 11) of as many boolean pairs; 88 million UUIDs (element type 13), as in the fuzzer's slow unit.
    let map = page_header(0, 0, &[0x4b, 0xff, 0xff, 0xff, 0xff, 0x07, 0x11]);
    assert!(refused(&map).starts_with(&format!("{KEY_REFUSED}a page header claims a list of 2147483647 elements")));
    let uuids = page_header(0, 0, &[0x49, 0xfd, 0x80, 0x80, 0x80, 0x2a]);
    assert!(refused(&uuids).starts_with(&format!("{KEY_REFUSED}a page header claims a list of 88080384 elements")));
    // A page of 1 GiB (parquet would allocate it, zeroed, before decompressing 4 bytes).
    let mut big = page_header(1 << 30, 4, &[]);
    let at = data_len(&good) + big.len() as u64;
    big.extend([0; 4]);
    assert_eq!(
        refused(&big),
        format!("{KEY_REFUSED}the page at {at} is 1073741824 bytes (4 compressed); at most 16777216 are read")
    );
    // A header cut by the end of its chunk; a page longer than its chunk.
    let h = page_header(4, 4, &[]);
    assert_eq!(refused(&h[..h.len() - 1]), format!("{KEY_REFUSED}a page header runs past the end of its column chunk"));
    let at = data_len(&good) + h.len() as u64;
    assert_eq!(refused(&h), format!("{KEY_REFUSED}the page at {at} (4 bytes) ends past its column chunk"));
}

/// The fuzzer's slow unit is refused on opening. parquet took ~30 s on it: the second page header of its first
/// column chunk runs past the chunk (parquet reads it from the file, to its end) into a list of 88 million UUIDs,
/// each skipped with a `read` past the end of the file. It is refused at the first list in that header that
/// cannot fit in the chunk.
#[test]
fn the_fuzzers_slow_parquet_unit_is_refused_on_opening() {
    let unit = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/artifacts/inventory_parquet/slow-unit-f5d2c524808ce39b12fcb9963b6ddb981b71f571");
    assert_eq!(
        open("parquet", &unit, None).err().unwrap().to_string(),
        "data/f: is not a readable Parquet file: row group 0, column bucket: a page header claims a list of 101 \
         elements in the 24 bytes left of its column chunk"
    );
}

/// parquet inflates a GZIP page whole, whatever its header says; one that inflates to more (64 MiB of zeros in a
/// page that says 100 bytes) is refused before parquet reads it.
#[test]
fn a_gzip_page_that_inflates_past_its_header_is_refused() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.parquet");
    write_parquet(&good, &entries_for(&["a", "b"]), Compression::GZIP(GzipLevel::default()));
    assert_eq!(open("parquet", &good, None).unwrap().count(), 2);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![0; 64 << 20]).unwrap();
    let gz = gz.finish().unwrap();
    let mut page = page_header(100, gz.len() as u32, &[]);
    let at = data_len(&good) + page.len() as u64;
    page.extend(&gz);
    assert_eq!(
        refused(dir.path(), &rewritten(&good, Some(&page), |g| g)),
        format!("{KEY_REFUSED}the page at {at}: it inflates to more than the 100 bytes its header says")
    );
}

/// A file may claim at most 1,024 rows per byte (parquet decodes as many as the pages' run-length encoding
/// claims, from a few bytes), and no row group a negative count.
#[test]
fn a_parquet_file_claiming_more_rows_than_it_can_hold_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.parquet");
    write_parquet(&good, &entries_for(&["a", "b"]), Compression::SNAPPY);
    let same = rewritten(&good, None, |g| g);
    let path = dir.path().join("same.parquet");
    std::fs::write(&path, &same).unwrap();
    assert_eq!(open("parquet", &path, None).unwrap().count(), 2, "a footer rewritten as it was reads");
    let many = rewritten(&good, None, |g| g.set_num_rows(1 << 40));
    assert_eq!(
        refused(dir.path(), &many),
        format!(
            "data/f: is not a readable Parquet file: it claims 1099511627776 rows in {} bytes; at most 1024 rows per \
             byte are read",
            many.len()
        )
    );
    let negative = rewritten(&good, None, |g| g.set_num_rows(-1));
    assert_eq!(refused(dir.path(), &negative), "data/f: is not a readable Parquet file: row group 0 claims -1 rows");
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

/// The 300,000 entries the read-time measurements write.
fn timed_entries() -> Vec<Entry> {
    let keys: Vec<String> =
        (0..300_000).map(|i| format!("logs/2024/01/{:02}/host-{}/file {i}.log", i % 31, i % 97)).collect();
    entries_for(&keys.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Print the time to open `path` (a `kind` file of `rows` rows, written with codec `name`) and to read it all,
/// best of three.
fn print_read_time(kind: &str, name: &str, path: &std::path::Path, rows: usize) {
    let (mut open_s, mut read_s) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let it = open(kind, path, None).unwrap();
        open_s = open_s.min(t.elapsed().as_secs_f64());
        assert_eq!(it.count(), rows);
        read_s = read_s.min(t.elapsed().as_secs_f64());
    }
    let size = std::fs::metadata(path).unwrap().len();
    println!(
        "{kind} {name}: {size} bytes, {rows} rows: open {:.1} ms, open and read {:.1} ms",
        open_s * 1e3,
        read_s * 1e3
    );
}

/// The time to open (footer and chunk checks included) and read a 300,000-row ORC file under each codec, best of
/// three. Run by hand: `cargo test --workspace --locked --test columnar -- --ignored --nocapture orc_read_time`.
#[test]
#[ignore = "measures time; run explicitly"]
fn orc_read_time() {
    use orc_rust::compression::CompressionType;
    let dir = tempfile::tempdir().unwrap();
    let entries = timed_entries();
    for (name, c) in
        [("snappy", CompressionType::Snappy), ("zlib", CompressionType::Zlib), ("zstd", CompressionType::Zstd)]
    {
        let path = dir.path().join(format!("{name}.orc"));
        write_orc(&path, &entries, c);
        print_read_time("orc", name, &path, entries.len());
    }
}

/// The time to open (page checks included) and read a 300,000-row Parquet file under each codec, with dictionary
/// encoding (the writer's default) and without (PLAIN string pages, whose values the page checks decompress and
/// walk before parquet does), best of three. Run by hand:
/// `cargo test --workspace --locked --test columnar -- --ignored --nocapture parquet_read_time`.
#[test]
#[ignore = "measures time; run explicitly"]
fn parquet_read_time() {
    let dir = tempfile::tempdir().unwrap();
    let entries = timed_entries();
    for dictionary in [true, false] {
        for (name, c) in [
            ("snappy", Compression::SNAPPY),
            ("gzip", Compression::GZIP(GzipLevel::default())),
            ("zstd", Compression::ZSTD(ZstdLevel::default())),
        ] {
            let name = if dictionary { name.to_string() } else { format!("{name} PLAIN") };
            let path = dir.path().join(format!("{name}.parquet"));
            write_parquet_dictionary(&path, &entries, c, dictionary);
            print_read_time("parquet", &name, &path, entries.len());
        }
    }
}

/// Parquet files written by Arrow C++ (pyarrow 26, `tests/data/pyarrow/write.py`), V1 and V2 pages, string columns
/// dictionary, PLAIN, DELTA_LENGTH_BYTE_ARRAY and DELTA_BYTE_ARRAY encoded, Snappy, GZIP and ZSTD, an optional
/// column with nulls, pages of about 2 KiB, row groups of 1,000 rows: every row reads back, none refused by the page
/// checks (which decode what another writer encoded).
#[test]
fn parquet_files_of_arrow_cpp_read() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pyarrow");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "parquet"));
    files.sort();
    assert_eq!(files.len(), 8);
    let mut keys: Vec<String> =
        (0..1500).map(|i| format!("dir/{:02}/obj-{i}{}", i % 37, "x".repeat(i * 7 % 61))).collect();
    keys[234] = "k".repeat(1024);
    keys[1345] = "é".repeat(512);
    for path in files {
        let rows: Vec<Row> = open("parquet", &path, None)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .map(|r| r.unwrap_or_else(|e| panic!("{}: {}", path.display(), e.message)))
            .collect();
        assert_eq!(rows.len(), keys.len(), "{}", path.display());
        for (i, (row, key)) in rows.iter().zip(&keys).enumerate() {
            assert_eq!(
                (row.bucket.as_str(), &row.key, row.size),
                ("bkt", key, Some(i as u64 * 11)),
                "{}",
                path.display()
            );
            assert_eq!(row.version_id, (i % 3 != 0).then(|| format!("v{i}")), "{}", path.display());
        }
    }
}
