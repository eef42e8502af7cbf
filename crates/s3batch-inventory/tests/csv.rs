//! gzip CSV data files: exact keys, COS mapping, and every malformed case with its precise error.

mod common;

use std::collections::BTreeSet;

use common::{TRICKY_KEYS, form_encode, gzip, md5_hex, quoted_line};
use s3batch_core::manifest::encode_key;
use s3batch_inventory::{Columns, CsvGzReader, KeyEncoding, Row, RowError, csv_gz_rows};

fn read_all(file: &str, gz: &[u8], cols: &Columns, md5: Option<&str>) -> Vec<Result<Row, RowError>> {
    csv_gz_rows(file, gz, cols, md5).collect()
}

fn ok_rows(results: Vec<Result<Row, RowError>>) -> Vec<Row> {
    results.into_iter().map(|r| r.unwrap()).collect()
}

#[test]
fn tricky_keys_come_back_byte_exact() {
    let cols = Columns::from_schema("Bucket, Key, Size, LastModifiedDate, ETag, StorageClass").unwrap();
    let mut csv = String::new();
    for (i, k) in TRICKY_KEYS.iter().enumerate() {
        let size = (i * 10).to_string();
        csv.push_str(&quoted_line(&[
            "my-bucket",
            &form_encode(k),
            &size,
            "2024-01-02T03:04:05.000Z",
            "d41d8cd98f00b204e9800998ecf8427e",
            "STANDARD",
        ]));
    }
    let gz = gzip(csv.as_bytes());
    let rows = ok_rows(read_all("data/a.csv.gz", &gz, &cols, Some(&md5_hex(&gz))));
    let got: BTreeSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    let want: BTreeSet<&str> = TRICKY_KEYS.iter().copied().collect();
    assert_eq!(got, want);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.key, TRICKY_KEYS[i]);
        assert_eq!(r.raw_key, encode_key(TRICKY_KEYS[i]));
        assert_eq!(r.bucket, "my-bucket");
        assert_eq!(r.size, Some(i as u64 * 10));
        assert_eq!(r.line, i as u64 + 1);
        assert_eq!(r.version_id, None);
        assert_eq!(r.last_modified.as_deref(), Some("2024-01-02T03:04:05.000Z"));
        assert_eq!(r.etag.as_deref(), Some("d41d8cd98f00b204e9800998ecf8427e"));
        assert_eq!(r.storage_class.as_deref(), Some("STANDARD"));
    }
}

#[test]
fn plus_is_a_space_in_form_encoding_and_a_plus_in_percent_encoding() {
    let gz = gzip(quoted_line(&["bkt", "a+b%2Bc"]).as_bytes());
    let cols = Columns::from_schema("Bucket, Key").unwrap();
    assert_eq!(ok_rows(read_all("f", &gz, &cols, None))[0].key, "a b+c");
    let cols = cols.with_key_encoding(KeyEncoding::Percent);
    assert_eq!(ok_rows(read_all("f", &gz, &cols, None))[0].key, "a+b+c");
}

#[test]
fn versions_delete_markers_and_unquoted_fields() {
    let cols = Columns::from_schema("Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size").unwrap();
    let csv = "\"bkt\",\"k1\",\"v1\",\"true\",\"false\",\"5\"\n\
               bkt,k1,v0,false,true,\n\
               \"bkt\",\"old\",\"\",\"true\",\"false\",\"7\"\n";
    let rows = ok_rows(read_all("f", &gzip(csv.as_bytes()), &cols, None));
    assert_eq!(rows.len(), 3);
    assert_eq!(
        (rows[0].version_id.as_deref(), rows[0].is_latest, rows[0].is_delete_marker),
        (Some("v1"), Some(true), Some(false))
    );
    assert_eq!((rows[1].version_id.as_deref(), rows[1].is_delete_marker, rows[1].size), (Some("v0"), Some(true), None));
    // An empty version id (an object stored before versioning) is kept as such for the engine to judge.
    assert_eq!(rows[2].version_id.as_deref(), Some(""));
}

#[test]
fn cos_rows_get_the_appid_suffix() {
    let cols = Columns::from_schema("Appid, Bucket, Key, Size, LastModifiedDate, ETag, StorageClass").unwrap();
    let mut csv =
        quoted_line(&["1250000000", "examplebucket", "a%20b", "1", "2019-07-15T00:00:00.000Z", "e", "STANDARD"]);
    csv += &quoted_line(&["1250000000", "examplebucket-1250000000", "c", "2", "", "", ""]);
    csv += &quoted_line(&["1250000001", "examplebucket", "d", "3", "", "", ""]);
    let rows = ok_rows(read_all("cos.csv.gz", &gzip(csv.as_bytes()), &cols, None));
    let got: Vec<(&str, &str)> = rows.iter().map(|r| (r.bucket.as_str(), r.key.as_str())).collect();
    assert_eq!(
        got,
        vec![("examplebucket-1250000000", "a b"), ("examplebucket-1250000000", "c"), ("examplebucket-1250000001", "d")]
    );
    assert_eq!(rows[1].last_modified, None);
}

#[test]
fn borrowing_reader_matches_owned_rows() {
    let cols = Columns::from_schema("Bucket, Key, VersionId").unwrap();
    let mut csv = String::new();
    for k in TRICKY_KEYS {
        csv += &quoted_line(&["bkt", &form_encode(k), "v"]);
    }
    let gz = gzip(csv.as_bytes());
    let mut r = CsvGzReader::new("f", &gz[..], &cols, Some(&md5_hex(&gz)));
    let mut keys = Vec::new();
    while let Some(row) = r.next_row() {
        let row = row.unwrap();
        assert_eq!(row.raw_key(), encode_key(row.key));
        keys.push(row.key.to_string());
    }
    assert_eq!(keys, TRICKY_KEYS);
    assert_eq!(r.rows_read(), TRICKY_KEYS.len() as u64);
}

#[test]
fn multi_member_gzip_is_one_file() {
    let cols = Columns::from_schema("Bucket, Key").unwrap();
    let mut gz = gzip(quoted_line(&["bkt", "one"]).as_bytes());
    gz.extend(gzip(quoted_line(&["bkt", "two"]).as_bytes()));
    let keys: Vec<String> =
        ok_rows(read_all("f", &gz, &cols, Some(&md5_hex(&gz)))).into_iter().map(|r| r.key).collect();
    assert_eq!(keys, ["one", "two"]);
}

/// The errors of a file whose line 2 is bad; lines 1 and 3 are good.
fn line_two_error(schema: &str, bad: &[u8]) -> RowError {
    let cols = Columns::from_schema(schema).unwrap();
    let good = |key: &str| {
        let extra = schema.split(", ").skip(2).map(|c| match c {
            "Size" => "1",
            "IsLatest" => "true",
            _ => "v",
        });
        quoted_line(&["bkt", key].into_iter().chain(extra).collect::<Vec<_>>())
    };
    let mut csv = good("good1").into_bytes();
    csv.extend_from_slice(bad);
    csv.extend_from_slice(good("good3").as_bytes());
    let results = read_all("data/x.csv.gz", &gzip(&csv), &cols, None);
    assert_eq!(results.len(), 3, "{results:?}");
    assert_eq!(results[0].as_ref().unwrap().key, "good1");
    assert_eq!(results[2].as_ref().unwrap().key, "good3");
    results[1].clone().unwrap_err()
}

#[test]
fn malformed_lines_get_precise_errors() {
    let e = line_two_error("Bucket, Key", b"\"bkt\",\"bad%zzescape\"\n");
    assert_eq!(
        e,
        RowError {
            file: "data/x.csv.gz".into(),
            line: 2,
            message: "the key has a '%' that does not start a %XX escape".into()
        }
    );
    assert_eq!(e.to_string(), "data/x.csv.gz line 2: the key has a '%' that does not start a %XX escape");
    assert_eq!(
        line_two_error("Bucket, Key", b"\"bkt\",\"cut%2\"\n").message,
        "the key has a '%' that does not start a %XX escape"
    );
    assert_eq!(
        line_two_error("Bucket, Key", b"\"bkt\",\"k\",\"extra\"\n").message,
        "has 3 columns; fileSchema names 2"
    );
    assert_eq!(line_two_error("Bucket, Key", b"\"bkt\"\n").message, "has 1 columns; fileSchema names 2");
    assert_eq!(line_two_error("Bucket, Key", b"\"bkt\",\"\"\n").message, "the Key column is empty");
    assert_eq!(line_two_error("Bucket, Key", b"\"bkt\",\"%FF%FE\"\n").message, "the key does not decode to UTF-8");
    assert_eq!(line_two_error("Bucket, Key", b"\"bkt\",\"raw\xff\"\n").message, "the key does not decode to UTF-8");
    assert_eq!(line_two_error("Bucket, Key", b"\"bk\xfft\",\"k\"\n").message, "the Bucket column is not UTF-8");
    assert_eq!(
        line_two_error("Bucket, Key", b"\"Bad_Bucket\",\"k\"\n").message,
        "'Bad_Bucket' is not a valid bucket name"
    );
    assert_eq!(line_two_error("Bucket, Key", b"\"b\",\"k\"\n").message, "'b' is not a valid bucket name");
    let long = format!("\"bkt\",\"{}\"\n", "k".repeat(1025));
    assert_eq!(
        line_two_error("Bucket, Key", long.as_bytes()).message,
        "the key is 1025 bytes long; at most 1024 are allowed"
    );
    assert_eq!(
        line_two_error("Bucket, Key, Size", b"\"bkt\",\"k\",\"12x\"\n").message,
        "the Size column '12x' is not a byte count"
    );
    assert_eq!(
        line_two_error("Bucket, Key, IsLatest", b"\"bkt\",\"k\",\"yes\"\n").message,
        "the IsLatest column 'yes' is not true or false"
    );
    assert_eq!(
        line_two_error("Bucket, Key, VersionId", b"\"bkt\",\"k\",\"v\xff\"\n").message,
        "the VersionId column is not UTF-8"
    );
}

#[test]
fn a_key_with_a_newline_inside_quotes_reports_its_starting_line() {
    // Keys are URL-encoded in real inventories, but a raw newline inside a quoted field must not shift lines.
    let cols = Columns::from_schema("Bucket, Key").unwrap();
    let csv = b"\"bkt\",\"multi\nline\"\n\"bkt\",\"bad%\"\n";
    let results = read_all("f", &gzip(csv), &cols, None);
    assert_eq!(results[0].as_ref().unwrap().key, "multi\nline");
    assert_eq!(results[1].as_ref().unwrap_err().line, 3);
}

#[test]
fn md5_mismatch_names_expected_and_got() {
    let cols = Columns::from_schema("Bucket, Key").unwrap();
    let gz = gzip(quoted_line(&["bkt", "k"]).as_bytes());
    let got = md5_hex(&gz);
    let results = read_all("data/f.csv.gz", &gz, &cols, Some("00112233445566778899AABBCCDDEEFF"));
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].as_ref().unwrap().key, "k");
    let e = results[1].clone().unwrap_err();
    assert_eq!(e.line, 0);
    assert_eq!(
        e.to_string(),
        format!(
            "data/f.csv.gz: MD5 mismatch: manifest.json says 00112233445566778899aabbccddeeff, the file's bytes hash to {got}"
        )
    );
    // Upper-case hex in the manifest matches too.
    assert!(read_all("f", &gz, &cols, Some(&got.to_uppercase())).iter().all(Result::is_ok));
}

#[test]
fn truncated_and_corrupt_gzip() {
    let cols = Columns::from_schema("Bucket, Key").unwrap();
    let mut csv = String::new();
    for i in 0..2000 {
        csv += &quoted_line(&["bkt", &format!("key-{i}")]);
    }
    let gz = gzip(csv.as_bytes());

    let truncated = &gz[..gz.len() / 2];
    let results = read_all("t.csv.gz", truncated, &cols, None);
    let last = results.last().unwrap().clone().unwrap_err();
    assert!(last.message.starts_with("the gzip data is corrupt or truncated: "), "{last}");
    assert!(results[..results.len() - 1].iter().all(Result::is_ok));

    let no_trailer = &gz[..gz.len() - 4];
    let last = read_all("t.csv.gz", no_trailer, &cols, None).pop().unwrap().unwrap_err();
    assert!(last.message.starts_with("the gzip data is corrupt or truncated: "), "{last}");

    let mut corrupt = gz.clone();
    let mid = corrupt.len() / 2;
    for b in &mut corrupt[mid..mid + 16] {
        *b ^= 0x5a;
    }
    let last = read_all("c.csv.gz", &corrupt, &cols, None).pop().unwrap().unwrap_err();
    assert!(last.message.starts_with("the gzip data is corrupt or truncated: "), "{last}");
    assert!(last.to_string().starts_with("c.csv.gz line "), "{last}");

    let not_gzip = b"\"bkt\",\"plain csv, not gzip\"\n";
    let last = read_all("p.csv", not_gzip, &cols, None).pop().unwrap().unwrap_err();
    assert!(last.message.starts_with("the gzip data is corrupt or truncated: "), "{last}");

    let last = read_all("empty.csv.gz", b"", &cols, None).pop().unwrap().unwrap_err();
    assert_eq!(last.to_string(), "empty.csv.gz: the file is empty (not gzip data)");
}

#[test]
fn an_empty_csv_inside_gzip_has_no_rows() {
    let cols = Columns::from_schema("Bucket, Key").unwrap();
    let gz = gzip(b"");
    assert!(read_all("e", &gz, &cols, Some(&md5_hex(&gz))).is_empty());
}

/// The threaded reader gives exactly what the inline one gives, rows and errors alike.
#[test]
fn threaded_reader_behaves_the_same() {
    let cols = Columns::from_schema("Bucket, Key, Size").unwrap();
    let mut csv = String::new();
    for i in 0..30_000 {
        let key = TRICKY_KEYS[i % TRICKY_KEYS.len()];
        csv += &quoted_line(&["bkt", &format!("{}{i}", form_encode(key)), &i.to_string()]);
        if i == 777 {
            csv += &quoted_line(&["bkt", "bad%", "1"]);
        }
    }
    let gz = gzip(csv.as_bytes());
    let good_md5 = md5_hex(&gz);
    let mut corrupt = gz.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid..mid + 8].iter_mut().for_each(|b| *b ^= 0x33);
    let cases: Vec<(Vec<u8>, Option<&str>)> = vec![
        (gz.clone(), Some(&good_md5)),
        (gz.clone(), Some("00000000000000000000000000000000")),
        (gz[..gz.len() / 3].to_vec(), None),
        (corrupt, None),
        (Vec::new(), None),
        (gzip(b""), None),
    ];
    for (n, (bytes, md5)) in cases.into_iter().enumerate() {
        let inline: Vec<_> = csv_gz_rows("f", &bytes[..], &cols, md5).collect();
        let reader = CsvGzReader::threaded("f", std::io::Cursor::new(bytes), &cols, md5).unwrap();
        let threaded: Vec<_> = s3batch_inventory::CsvGzRows::from_reader(reader).collect();
        assert_eq!(inline.len(), threaded.len(), "case {n}");
        assert_eq!(inline, threaded, "case {n}");
        if n == 0 {
            assert_eq!(inline.iter().filter(|r| r.is_err()).count(), 1);
            assert_eq!(inline.len(), 30_001);
        }
    }
    // Dropping a threaded reader early ends its thread (the send fails); nothing hangs.
    let mut r = CsvGzReader::threaded("f", std::io::Cursor::new(gz), &cols, None).unwrap();
    assert!(r.next_row().unwrap().is_ok());
    drop(r);
}

/// Reads through to `inner` at most 1 KiB at a time (so a reader's buffer cannot hide how far it got), counting
/// the bytes it hands out.
struct Counted<R> {
    inner: R,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(1024);
        let n = self.inner.read(&mut buf[..n])?;
        self.read.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// One good line, then a line whose quote never closes: 100 MiB of `a` (100 gzip members of 1 MiB each, about 100
/// KiB compressed). Returns the file and the size of one of those members.
fn gzip_bomb_line() -> (Vec<u8>, usize) {
    let mut gz = gzip(format!("{}\"bkt\",\"", quoted_line(&["bkt", "first"])).as_bytes());
    let member = gzip(&vec![b'a'; 1 << 20]);
    for _ in 0..100 {
        gz.extend_from_slice(&member);
    }
    (gz, member.len())
}

#[test]
fn a_100_mib_line_fails_at_the_record_cap_without_reading_on() {
    let (gz, member) = gzip_bomb_line();
    let cols = Columns::from_schema("Bucket, Key").unwrap();
    for threaded in [false, true] {
        let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let input = Counted { inner: std::io::Cursor::new(gz.clone()), read: read.clone() };
        let mut r = if threaded {
            CsvGzReader::threaded("data/bomb.csv.gz", input, &cols, None).unwrap()
        } else {
            CsvGzReader::new("data/bomb.csv.gz", input, &cols, None)
        };
        assert_eq!(r.next_row().unwrap().unwrap().key, "first");
        let e = r.next_row().unwrap().unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("data/bomb.csv.gz", 2), "{e}");
        assert_eq!(
            e.to_string(),
            "data/bomb.csv.gz line 2: the record is longer than 65536 bytes (an unclosed quote, or no end of line?)"
        );
        assert!(r.next_row().is_none(), "the file is done after a record past the cap");
        drop(r);
        // A few MiB decompressed at most (the record cap, the CSV buffer, the gunzip thread's chunks), not 100.
        let consumed = read.load(std::sync::atomic::Ordering::Relaxed) as usize;
        assert!(consumed < 8 * member + 2048, "threaded {threaded}: read {consumed} compressed bytes of {}", gz.len());
    }
}

#[test]
fn a_line_just_over_the_cap_is_refused_and_one_just_under_is_read() {
    let cols = Columns::from_schema("Bucket, Key, Ignored").unwrap();
    let line = |filler: usize| quoted_line(&["bkt", "k", &"x".repeat(filler)]);
    let overhead = line(0).len();
    let fits = line(65536 - overhead);
    let over = line(65537 - overhead);
    let csv = format!("{fits}{over}");
    let results = read_all("f", &gzip(csv.as_bytes()), &cols, None);
    assert!(results[0].is_ok(), "{:?}", results[0]);
    let e = results[1].as_ref().unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("longer than 65536 bytes"), "{e}");
}
