//! Throughput of the gzip CSV path (ignored by default; run with `--ignored --nocapture`).

mod common;

use std::time::Instant;

use common::{form_encode, gzip};
use s3batch_inventory::{Columns, CsvGzReader, csv_gz_rows};

#[test]
#[ignore = "measures throughput; run explicitly"]
fn csv_gz_one_million_rows() {
    let n_rows: usize = std::env::var("PERF_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    #[allow(non_snake_case)]
    let N = n_rows;
    let cols = Columns::from_schema("Bucket, Key, Size, LastModifiedDate, ETag, StorageClass").unwrap();
    let mut csv = String::with_capacity(N * 140);
    // Pseudo-random hex (an ETag, a path segment) so the gzip ratio is like a real inventory's, not 15:1.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..N {
        let key = format!("logs/2024/01/{:02}/host-{:x}/file {i}.log", i % 31, next() % 100_000);
        csv.push_str(&format!(
            "\"my-source-bucket\",\"{}\",\"{}\",\"2024-01-02T03:04:05.000Z\",\"{:016x}{:016x}\",\"STANDARD\"\n",
            form_encode(&key),
            next() % 10_000_000,
            next(),
            next()
        ));
    }
    let gz = gzip(csv.as_bytes());
    let md5 = common::md5_hex(&gz);
    // PERF_PHASE=<name> runs one part only (for instruction counts under callgrind).
    let run = |name: &str| std::env::var("PERF_PHASE").map_or(true, |p| p == name);
    println!("fixture: {N} rows, {} MB CSV, {} MB gzip", csv.len() / 1_000_000, gz.len() / 1_000_000);

    // The parts: gunzip alone, then CSV splitting alone over the decompressed bytes.
    if run("gunzip") {
        let t = Instant::now();
        let plain = std::io::copy(&mut flate2::read::MultiGzDecoder::new(&gz[..]), &mut std::io::sink()).unwrap();
        let s = t.elapsed().as_secs_f64();
        println!("gunzip alone: {:.0} MB/s ({s:.2} s)", plain as f64 / s / 1e6);
    }
    if run("split") {
        let t = Instant::now();
        let mut rdr = csv::ReaderBuilder::new().has_headers(false).from_reader(csv.as_bytes());
        let mut rec = csv::ByteRecord::new();
        let mut n = 0usize;
        while rdr.read_byte_record(&mut rec).unwrap() {
            n += rec.len();
        }
        let s = t.elapsed().as_secs_f64();
        assert_eq!(n, N * 6);
        println!("csv splitting alone: {:.0} rows/s ({s:.2} s)", N as f64 / s);
    }

    if run("gunzip_split") {
        let t = Instant::now();
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .buffer_capacity(256 * 1024)
            .from_reader(flate2::read::MultiGzDecoder::new(&gz[..]));
        let mut rec = csv::ByteRecord::new();
        let mut n = 0usize;
        while rdr.read_byte_record(&mut rec).unwrap() {
            n += rec.len();
        }
        let s = t.elapsed().as_secs_f64();
        assert_eq!(n, N * 6);
        println!("gunzip + csv splitting: {:.0} rows/s ({s:.2} s)", N as f64 / s);
    }

    if run("borrow") {
        let t = Instant::now();
        let mut r = CsvGzReader::new("perf", &gz[..], &cols, Some(&md5));
        let mut bytes = 0usize;
        let mut n = 0usize;
        while let Some(row) = r.next_row() {
            let row = row.unwrap();
            bytes += row.key.len() + row.bucket.len();
            n += 1;
        }
        let s = t.elapsed().as_secs_f64();
        assert_eq!(n, N);
        println!("borrowing next_row: {:.0} rows/s ({s:.2} s, {bytes} key+bucket bytes)", N as f64 / s);
    }

    if run("task") {
        let t = Instant::now();
        let task_cols = cols.clone().task_fields_only();
        let mut r = CsvGzReader::new("perf", &gz[..], &task_cols, Some(&md5));
        let mut n = 0usize;
        while let Some(row) = r.next_row() {
            assert!(!row.unwrap().key.is_empty());
            n += 1;
        }
        let s = t.elapsed().as_secs_f64();
        assert_eq!(n, N);
        println!("borrowing next_row, task fields only: {:.0} rows/s ({s:.2} s)", N as f64 / s);
    }

    if run("threaded") {
        let t = Instant::now();
        let mut r = CsvGzReader::threaded("perf", std::io::Cursor::new(gz.clone()), &cols, Some(&md5)).unwrap();
        let mut n = 0usize;
        while let Some(row) = r.next_row() {
            assert!(!row.unwrap().key.is_empty());
            n += 1;
        }
        let s = t.elapsed().as_secs_f64();
        assert_eq!(n, N);
        println!("borrowing next_row, gunzip on a second thread: {:.0} rows/s ({s:.2} s)", N as f64 / s);
    }

    if run("owned") {
        let t = Instant::now();
        let mut n = 0usize;
        for row in csv_gz_rows("perf", &gz[..], &cols, Some(&md5)) {
            assert!(!row.unwrap().raw_key.is_empty());
            n += 1;
        }
        let s = t.elapsed().as_secs_f64();
        assert_eq!(n, N);
        println!("owned Row iterator (with raw_key): {:.0} rows/s ({s:.2} s)", N as f64 / s);
    }
}
