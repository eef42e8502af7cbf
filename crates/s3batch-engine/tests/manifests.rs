//! Manifests beyond the CSV file, run as jobs on in-memory object stores with a SQLite job store and a real engine:
//! S3 Inventory reports (gzip CSV, Parquet and ORC, written here as S3 Inventory writes them), the ManifestGenerator
//! with its filters and its manifest output, listing that overlaps execution and resumes after a crash, re-running
//! the failed tasks of a finished job, and the FailureReasons of bad inventories.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use flate2::Compression;
use flate2::write::GzEncoder;
use s3batch_core::{JobSpec, JobStatus};
use s3batch_engine::service::{JobService, ServiceError};
use s3batch_engine::{CancellationToken, Engine, EngineConfig};
use s3batch_storage::memory::{Faults, MemoryStore};
use s3batch_storage::{ObjectStore, PutBody, PutOptions, Router, md5_hex};
use s3batch_store::sqlite::SqliteStore;
use s3batch_store::{Job, JobStore};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

#[allow(dead_code)] // run_job: the operation tests' helper
mod common;

use common::{ACCOUNT, get, report_rows};

const TIMEOUT: Duration = Duration::from_secs(30);

fn config() -> EngineConfig {
    EngineConfig { tick_ms: 20, lease_ms: 2000, backoff_base_ms: 1, backoff_max_ms: 5, ..Default::default() }
}

/// Keys that break naive readers.
const TRICKY: &[&str] = &["plain.txt", "dir/with space.txt", "a+b", "100% done", "comma,key", "quote\"d", "ü ñ 日本"];

struct Harness {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    /// Bucket `data` (the objects), `inv` (inventories), `manifests`, `reports`, `out`.
    mem: MemoryStore,
    router: Arc<Router>,
    service: JobService,
    engine: Option<(CancellationToken, JoinHandle<()>)>,
    cfg: EngineConfig,
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some((t, _)) = &self.engine {
            t.cancel();
        }
    }
}

impl Harness {
    async fn new(cfg: EngineConfig) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("jobs.db")).await.unwrap());
        let mem = MemoryStore::new();
        for b in ["data", "inv", "manifests", "reports", "out"] {
            mem.create_bucket(b).await.unwrap();
        }
        let mut router = Router::default();
        router.add("mem", vec!["*".into()], Arc::new(mem.clone()));
        let router = Arc::new(router);
        let service = JobService::new(store.clone(), Arc::new(tokio::sync::Notify::new()), 90);
        let mut h = Harness { _dir: dir, store, mem, router, service, engine: None, cfg };
        h.start();
        h
    }

    fn start(&mut self) {
        let engine = Engine::new(self.store.clone(), self.router.clone(), self.cfg.clone());
        let token = CancellationToken::new();
        let handle = tokio::spawn(engine.run(token.clone()));
        self.engine = Some((token, handle));
    }

    /// Stop the engine abruptly, as a crash would (no lease given back).
    async fn crash(&mut self) {
        if let Some((_, handle)) = self.engine.take() {
            handle.abort();
            let _ = handle.await;
        }
    }

    async fn put(&self, bucket: &str, key: &str, body: impl Into<bytes::Bytes>) -> String {
        let body = PutBody::Bytes(body.into());
        self.mem.put_object(bucket, key, body, &PutOptions::default()).await.unwrap().etag.unwrap_or_default()
    }

    async fn create(&self, spec: Value) -> String {
        let spec: JobSpec = serde_json::from_value(spec).expect("a JobSpec");
        self.service.create(ACCOUNT, None, spec).await.expect("created").id
    }

    async fn finished(&self, id: &str) -> Job {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let job = self.service.describe(ACCOUNT, id).await.unwrap();
            if job.status.is_terminal() {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} not finished: {job:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The keys of a finished job's report (succeeded and failed), decoded, each exactly once.
    async fn reported_keys(&self, job: &Job) -> (BTreeSet<String>, BTreeSet<String>) {
        let rows = report_rows(&self.mem, job).await;
        let decode = |r: &s3batch_core::report::OwnedReportRow| s3batch_core::manifest::decode_key(&r.key).unwrap();
        let ok: Vec<String> = rows.succeeded.iter().map(decode).collect();
        let failed: Vec<String> = rows.failed.iter().map(decode).collect();
        let (oks, fails): (BTreeSet<_>, BTreeSet<_>) = (ok.iter().cloned().collect(), failed.iter().cloned().collect());
        assert_eq!(oks.len() + fails.len(), ok.len() + failed.len(), "a key was reported twice");
        (oks, fails)
    }
}

fn report() -> Value {
    json!({"Enabled": true, "Bucket": "arn:aws:s3:::reports", "Format": "Report_CSV_20180820",
           "ReportScope": "AllTasks", "Prefix": "out"})
}

fn tagging() -> Value {
    json!({"S3PutObjectTagging": {"TagSet": [{"Key": "done", "Value": "yes"}]}})
}

fn inventory_spec(manifest_key: &str, etag: &str) -> Value {
    json!({
        "Operation": tagging(),
        "Manifest": {"Spec": {"Format": "S3InventoryReport_CSV_20161130"},
                     "Location": {"ObjectArn": format!("arn:aws:s3:::inv/{manifest_key}"), "ETag": etag}},
        "Report": report(), "Priority": 10, "ConfirmationRequired": false,
        "RoleArn": "arn:aws:iam::123456789012:role/batch"
    })
}

fn generator_spec(filter: Value, output: bool) -> Value {
    let mut g = json!({"SourceBucket": "arn:aws:s3:::data", "EnableManifestOutput": output, "Filter": filter});
    if output {
        g["ManifestOutputLocation"] = json!({"Bucket": "arn:aws:s3:::out", "ManifestPrefix": "generated",
                                             "ManifestFormat": "S3InventoryReport_CSV_20211130"});
    }
    json!({
        "Operation": tagging(),
        "ManifestGenerator": {"S3JobManifestGenerator": g},
        "Report": report(), "Priority": 10, "ConfirmationRequired": false,
        "RoleArn": "arn:aws:iam::123456789012:role/batch"
    })
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Form-encoded, as S3 Inventory CSV writes keys.
fn form(key: &str) -> String {
    let mut s = String::new();
    s3batch_inventory::form_encode_into(key, &mut s);
    s
}

fn quoted(fields: &[&str]) -> String {
    let q: Vec<String> = fields.iter().map(|f| format!("\"{}\"", f.replace('"', "\"\""))).collect();
    format!("{}\n", q.join(","))
}

/// Write an S3 Inventory (CSV) of `files` (each a list of keys in bucket `data`) under `inv/<dir>/`, with its
/// manifest.checksum; returns the manifest's key and ETag.
async fn inventory_csv(h: &Harness, dir: &str, files: &[Vec<String>]) -> (String, String) {
    let mut listed = Vec::new();
    for (i, keys) in files.iter().enumerate() {
        let mut csv = String::new();
        for k in keys {
            csv.push_str(&quoted(&["data", &form(k), "123", "2024-01-02T03:04:05.000Z", "STANDARD"]));
        }
        let gz = gzip(csv.as_bytes());
        let key = format!("{dir}/data/{i}.csv.gz");
        h.put("inv", &key, gz.clone()).await;
        listed.push(json!({"key": key, "size": gz.len(), "MD5checksum": md5_hex(&gz)}));
    }
    let manifest = json!({
        "sourceBucket": "data", "destinationBucket": "arn:aws:s3:::inv", "version": "2016-11-30",
        "creationTimestamp": "1700000000000", "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate, StorageClass", "files": listed
    });
    let body = serde_json::to_vec(&manifest).unwrap();
    h.put("inv", &format!("{dir}/manifest.checksum"), md5_hex(&body)).await;
    let key = format!("{dir}/manifest.json");
    let etag = h.put("inv", &key, body).await;
    (key, etag)
}

async fn objects(h: &Harness, keys: &[String]) {
    for k in keys {
        h.put("data", k, "x").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_inventory_csv_runs_every_listed_object() {
    let h = Harness::new(EngineConfig { chunk_size: 7, ..config() }).await;
    let mut all: Vec<String> = TRICKY.iter().map(|k| k.to_string()).collect();
    all.extend((0..40).map(|i| format!("bulk/{i:03}")));
    objects(&h, &all).await;
    let files = vec![all[..20].to_vec(), all[20..].to_vec()];
    let (key, etag) = inventory_csv(&h, "inv1", &files).await;
    let id = h.create(inventory_spec(&key, &etag)).await;
    let job = h.finished(&id).await;
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.failure_reasons);
    assert_eq!(job.total_tasks, Some(all.len() as i64));
    let (ok, failed) = h.reported_keys(&job).await;
    assert_eq!(ok, all.iter().cloned().collect::<BTreeSet<_>>());
    assert!(failed.is_empty());
    let tags = h.mem.get_object_tagging(&s3batch_storage::ObjectRef::new("data", "a+b")).await.unwrap();
    assert_eq!(tags[0].key, "done");
}

/// Parquet and ORC inventories, as S3 Inventory writes them: every listed object runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_inventory_parquet_and_orc_run_every_listed_object() {
    let h = Harness::new(config()).await;
    let keys: Vec<String> = TRICKY.iter().map(|k| k.to_string()).chain((0..30).map(|i| format!("p/{i}"))).collect();
    objects(&h, &keys).await;
    let schema = Arc::new(Schema::new(vec![
        Field::new("bucket", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, false),
        Field::new("storage_class", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["data"; keys.len()])) as ArrayRef,
            Arc::new(StringArray::from(keys.iter().map(String::as_str).collect::<Vec<_>>())),
            Arc::new(StringArray::from(vec!["STANDARD"; keys.len()])),
        ],
    )
    .unwrap();
    let mut parquet = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut parquet, schema.clone(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let mut orc = Vec::new();
    let mut w = orc_rust::ArrowWriterBuilder::new(&mut orc, schema).try_build().unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let formats = [
        (
            "pq",
            "Parquet",
            "parquet",
            parquet,
            "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); optional binary storage_class (UTF8); }",
        ),
        ("orc", "ORC", "orc", orc, "struct<bucket:string,key:string,storage_class:string>"),
    ];
    for (dir, format, ext, file, file_schema) in formats {
        let data_key = format!("{dir}/data/0.{ext}");
        h.put("inv", &data_key, file.clone()).await;
        let manifest = json!({
            "sourceBucket": "data", "destinationBucket": "arn:aws:s3:::inv", "version": "2016-11-30",
            "fileFormat": format, "fileSchema": file_schema,
            "files": [{"key": data_key, "size": file.len(), "MD5checksum": md5_hex(&file)}]
        });
        let key = format!("{dir}/manifest.json");
        let etag = h.put("inv", &key, serde_json::to_vec(&manifest).unwrap()).await;
        let id = h.create(inventory_spec(&key, &etag)).await;
        let job = h.finished(&id).await;
        assert_eq!(job.status, JobStatus::Complete, "{format}: {:?}", job.failure_reasons);
        assert_eq!(job.total_tasks, Some(keys.len() as i64), "{format}");
        let (ok, _) = h.reported_keys(&job).await;
        assert_eq!(ok, keys.iter().cloned().collect::<BTreeSet<_>>(), "{format}");
    }
}

/// Hostile Parquet and ORC data files that made their decoders panic (the fuzz campaign's crash inputs under
/// `fuzz/artifacts/`): the job fails in Preparing with InventoryDataFileInvalid naming the file, and the engine goes
/// on running jobs. (Before, the panic stopped the parser thread: the job failed as InternalError, naming nothing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_columnar_data_files_fail_the_job_not_the_engine() {
    let h = Harness::new(config()).await;
    objects(&h, &["a".to_string()]).await;
    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/artifacts");
    let inputs = [
        (
            "inventory_orc/crash-85e2fb2bfccd646406415ef48a6aecd91ed47f52",
            "ORC",
            "orc",
            "struct<bucket:string,key:string>",
        ),
        // A list type whose element type is itself: orc-rust recursed until the stack overflowed (a process abort).
        ("inventory_orc/by-hand-list-type-of-itself", "ORC", "orc", "struct<bucket:string,key:string>"),
        (
            "inventory_parquet/crash-7fb9cbf471296546998f7e2dd78b6b4a3deb9e89",
            "Parquet",
            "parquet",
            "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); }",
        ),
    ];
    for (input, format, ext, file_schema) in inputs {
        let file = std::fs::read(artifacts.join(input)).expect("the crash input");
        let data_key = format!("hostile/data/0.{ext}");
        h.put("inv", &data_key, file.clone()).await;
        let manifest = json!({
            "sourceBucket": "data", "destinationBucket": "arn:aws:s3:::inv", "version": "2016-11-30",
            "fileFormat": format, "fileSchema": file_schema,
            "files": [{"key": data_key, "size": file.len(), "MD5checksum": md5_hex(&file)}]
        });
        let etag = h.put("inv", "hostile/manifest.json", serde_json::to_vec(&manifest).unwrap()).await;
        let job = h.finished(&h.create(inventory_spec("hostile/manifest.json", &etag)).await).await;
        assert_eq!((job.status, job.total_tasks), (JobStatus::Failed, None), "{format}");
        let r = &job.failure_reasons[0];
        assert_eq!(r.failure_code, "InventoryDataFileInvalid", "{format}: {}", r.failure_reason);
        assert!(r.failure_reason.contains(&data_key), "{format}: {}", r.failure_reason);
    }
    // The engine is still there: a good inventory runs.
    let (key, etag) = inventory_csv(&h, "after", &[vec!["a".to_string()]]).await;
    let job = h.finished(&h.create(inventory_spec(&key, &etag)).await).await;
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.failure_reasons);
}

/// Each bad inventory fails the job in Preparing with a FailureReason that says what and where.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inventories_fail_while_preparing_with_precise_reasons() {
    let h = Harness::new(config()).await;
    let keys = vec!["a".to_string(), "b".to_string()];
    objects(&h, &keys).await;

    async fn failure(h: &Harness, key: &str, etag: &str) -> (String, String) {
        let id = h.create(inventory_spec(key, etag)).await;
        let job = h.finished(&id).await;
        assert_eq!(job.status, JobStatus::Failed, "{key}");
        assert_eq!(job.total_tasks, None, "{key}: failed while preparing");
        let r = &job.failure_reasons[0];
        (r.failure_code.clone(), r.failure_reason.clone())
    }

    // The manifest's ETag is not the one the job names.
    let (key, _) = inventory_csv(&h, "etag", std::slice::from_ref(&keys)).await;
    let (code, _) = failure(&h, &key, "\"0123456789abcdef0123456789abcdef\"").await;
    assert_eq!(code, "ManifestETagMismatch");

    // manifest.checksum does not match manifest.json.
    let (key, etag) = inventory_csv(&h, "sum", std::slice::from_ref(&keys)).await;
    h.put("inv", "sum/manifest.checksum", "00000000000000000000000000000000").await;
    let (code, reason) = failure(&h, &key, &etag).await;
    assert_eq!(code, "ManifestChecksumMismatch", "{reason}");

    // A data file whose bytes are not the listed MD5.
    let (key, etag) = inventory_csv(&h, "md5", std::slice::from_ref(&keys)).await;
    let other = quoted(&["data", "other", "1", "2024-01-02T03:04:05.000Z", "STANDARD"]);
    h.put("inv", "md5/data/0.csv.gz", gzip(other.as_bytes())).await;
    let (code, reason) = failure(&h, &key, &etag).await;
    assert_eq!(code, "InventoryDataFileInvalid", "{reason}");
    assert!(reason.contains("md5/data/0.csv.gz"), "{reason}");

    // A bad escape on line 2 of a data file.
    let row = |k: &str| quoted(&["data", k, "1", "2024-01-02T03:04:05.000Z", "STANDARD"]);
    let gz = gzip(format!("{}{}", row("a"), row("bad%zzkey")).as_bytes());
    h.put("inv", "esc/data/0.csv.gz", gz.clone()).await;
    let manifest = json!({"sourceBucket": "data", "destinationBucket": "arn:aws:s3:::inv", "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate, StorageClass",
        "files": [{"key": "esc/data/0.csv.gz", "size": gz.len(), "MD5checksum": md5_hex(&gz)}]});
    let etag = h.put("inv", "esc/manifest.json", serde_json::to_vec(&manifest).unwrap()).await;
    let (code, reason) = failure(&h, "esc/manifest.json", &etag).await;
    assert_eq!(code, "InvalidManifestContent");
    assert!(reason.contains("esc/data/0.csv.gz line 2"), "{reason}");

    // A line with too few columns.
    let csv = format!("{}{}", quoted(&["data", "a", "1", "2024-01-02T03:04:05.000Z", "STANDARD"]), quoted(&["data"]));
    let gz = gzip(csv.as_bytes());
    h.put("inv", "cols/data/0.csv.gz", gz.clone()).await;
    let manifest = json!({"sourceBucket": "data", "destinationBucket": "arn:aws:s3:::inv", "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate, StorageClass",
        "files": [{"key": "cols/data/0.csv.gz", "size": gz.len(), "MD5checksum": md5_hex(&gz)}]});
    let etag = h.put("inv", "cols/manifest.json", serde_json::to_vec(&manifest).unwrap()).await;
    let (code, reason) = failure(&h, "cols/manifest.json", &etag).await;
    assert_eq!(code, "InvalidManifestContent");
    assert!(reason.contains("line 2"), "{reason}");

    // manifest.json that is not JSON; an inventory with no data file.
    let etag = h.put("inv", "junk/manifest.json", "not json").await;
    let (code, reason) = failure(&h, "junk/manifest.json", &etag).await;
    assert_eq!(code, "InvalidManifestContent");
    assert!(reason.contains("not JSON"), "{reason}");
    let (key, etag) = inventory_csv(&h, "empty", &[]).await;
    let (code, reason) = failure(&h, &key, &etag).await;
    assert_eq!(code, "InvalidManifestContent");
    assert!(reason.contains("empty"), "{reason}");

    // A missing manifest.
    let (code, _) = failure(&h, "nowhere/manifest.json", "\"x\"").await;
    assert_eq!(code, "ManifestNotReadable");
}

/// Inputs past the caps (a record with an unclosed quote, a big `manifest.checksum`, a Parquet file larger than the
/// spool) fail the job in Preparing with a reason naming the file (and line), never growing memory or disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_manifest_inputs_fail_while_preparing_with_clear_reasons() {
    let h = Harness::new(EngineConfig { max_spool_bytes: 100, ..config() }).await;
    objects(&h, &["a".to_string()]).await;
    let failure = async |spec: Value| {
        let id = h.create(spec).await;
        let job = h.finished(&id).await;
        assert_eq!(job.status, JobStatus::Failed);
        assert_eq!(job.total_tasks, None, "failed while preparing");
        let r = &job.failure_reasons[0];
        (r.failure_code.clone(), r.failure_reason.clone())
    };

    // An inventory data file whose line 2 opens a quote and never closes it: 100 MiB of gzip members (100 KiB).
    let row = quoted(&["data", "a", "1", "2024-01-02T03:04:05.000Z", "STANDARD"]);
    let mut gz = gzip(format!("{row}\"data\",\"").as_bytes());
    let member = gzip(&vec![b'a'; 1 << 20]);
    (0..100).for_each(|_| gz.extend_from_slice(&member));
    h.put("inv", "bomb/data/0.csv.gz", gz.clone()).await;
    let manifest = json!({"sourceBucket": "data", "destinationBucket": "arn:aws:s3:::inv", "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate, StorageClass",
        "files": [{"key": "bomb/data/0.csv.gz", "size": gz.len(), "MD5checksum": md5_hex(&gz)}]});
    let etag = h.put("inv", "bomb/manifest.json", serde_json::to_vec(&manifest).unwrap()).await;
    let (code, reason) = failure(inventory_spec("bomb/manifest.json", &etag)).await;
    assert_eq!(code, "InvalidManifestContent");
    assert!(reason.contains("bomb/data/0.csv.gz line 2: the record is longer than 65536 bytes"), "{reason}");

    // A CSV manifest whose line 2 opens a quote and never closes it.
    let mut csv = b"data,a\ndata,\"".to_vec();
    csv.resize(csv.len() + (20 << 20), b'k');
    let etag = h.put("manifests", "unclosed.csv", csv).await;
    let spec = json!({
        "Operation": tagging(),
        "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                     "Location": {"ObjectArn": "arn:aws:s3:::manifests/unclosed.csv", "ETag": etag}},
        "Report": report(), "Priority": 10, "ConfirmationRequired": false,
        "RoleArn": "arn:aws:iam::123456789012:role/batch"
    });
    let (code, reason) = failure(spec).await;
    assert_eq!(code, "InvalidManifestContent");
    assert!(
        reason.starts_with("the manifest s3://manifests/unclosed.csv line 2: the record is longer than 8192 bytes"),
        "{reason}"
    );

    // A manifest.checksum of 2 KiB is not read whole.
    let (key, etag) = inventory_csv(&h, "bigsum", &[vec!["a".to_string()]]).await;
    h.put("inv", "bigsum/manifest.checksum", vec![b'0'; 2048]).await;
    let (code, reason) = failure(inventory_spec(&key, &etag)).await;
    assert_eq!(code, "ManifestChecksumMismatch");
    assert!(reason.contains("bigsum/manifest.checksum is longer than 1024 bytes"), "{reason}");

    // A Parquet data file larger than engine.max_spool_bytes (100 here) is not copied to disk.
    let file = vec![7u8; 500];
    h.put("inv", "spool/data/0.parquet", file.clone()).await;
    let manifest = json!({"sourceBucket": "data", "destinationBucket": "arn:aws:s3:::inv", "fileFormat": "Parquet",
        "fileSchema": "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); }",
        "files": [{"key": "spool/data/0.parquet", "size": file.len(), "MD5checksum": md5_hex(&file)}]});
    let etag = h.put("inv", "spool/manifest.json", serde_json::to_vec(&manifest).unwrap()).await;
    let (code, reason) = failure(inventory_spec("spool/manifest.json", &etag)).await;
    assert_eq!(code, "InventoryDataFileInvalid");
    assert!(reason.contains("spool/data/0.parquet is larger than engine.max_spool_bytes (100 bytes)"), "{reason}");
}

/// A bucket with mixed sizes, storage classes and prefixes: every filter keeps exactly the objects it should.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_filters_select_exactly_the_matching_objects() {
    let h = Harness::new(config()).await;
    struct O {
        key: String,
        size: usize,
        class: &'static str,
    }
    let mut all = Vec::new();
    for i in 0..60 {
        let prefix = ["logs/", "img/", "tmp/"][i % 3];
        let ext = [".txt", ".jpg", ".gz"][(i / 3) % 3];
        let class = ["STANDARD", "STANDARD_IA", "GLACIER"][(i / 9) % 3];
        all.push(O { key: format!("{prefix}{i:02}{ext}"), size: i * 10, class });
    }
    for o in &all {
        let opts = PutOptions::default();
        let body = PutBody::Bytes(vec![b'x'; o.size].into());
        h.mem.put_object("data", &o.key, body, &opts).await.unwrap();
        if o.class != "STANDARD" {
            // Change the class in place, as a lifecycle transition would.
            let req = s3batch_storage::CopyRequest {
                storage_class: Some(o.class.into()),
                ..s3batch_storage::CopyRequest::new(s3batch_storage::ObjectRef::new("data", &o.key), "data", &o.key)
            };
            h.mem.copy_object(&req).await.unwrap();
        }
    }
    type Keep = Box<dyn Fn(&O) -> bool>;
    let cases: Vec<(Value, Keep)> = vec![
        (json!({}), Box::new(|_| true)),
        (json!({"KeyNameConstraint": {"MatchAnyPrefix": ["img/0"]}}), Box::new(|o| o.key.starts_with("img/0"))),
        (
            json!({"KeyNameConstraint": {"MatchAnyPrefix": ["logs/"], "MatchAnySuffix": [".gz"], "MatchAnySubstring": ["1"]}}),
            Box::new(|o| o.key.starts_with("logs/") && o.key.ends_with(".gz") && o.key.contains('1')),
        ),
        (
            json!({"ObjectSizeGreaterThanBytes": 100, "ObjectSizeLessThanBytes": 300}),
            Box::new(|o| o.size > 100 && o.size < 300),
        ),
        (json!({"MatchAnyStorageClass": ["GLACIER", "STANDARD_IA"]}), Box::new(|o| o.class != "STANDARD")),
        (
            json!({"CreatedAfter": "2000-01-01T00:00:00Z", "CreatedBefore": "2999-01-01T00:00:00Z",
                "KeyNameConstraint": {"MatchAnyPrefix": ["tmp/"]}}),
            Box::new(|o| o.key.starts_with("tmp/")),
        ),
        (
            json!({"MatchAnyObjectEncryption": [{"NOT-SSE": {}}], "KeyNameConstraint": {"MatchAnyPrefix": ["img/"]}}),
            Box::new(|o| o.key.starts_with("img/")),
        ),
        (json!({"MatchAnyObjectEncryption": [{"SSE-S3": {}}]}), Box::new(|_| false)),
    ];
    for (filter, keep) in cases {
        let expected: BTreeSet<String> = all.iter().filter(|o| keep(o)).map(|o| o.key.clone()).collect();
        let id = h.create(generator_spec(filter.clone(), false)).await;
        let job = h.finished(&id).await;
        if expected.is_empty() {
            assert_eq!(job.status, JobStatus::Failed, "{filter}");
            assert_eq!(job.failure_reasons[0].failure_code, "EmptyGeneratedManifest");
            continue;
        }
        assert_eq!(job.status, JobStatus::Complete, "{filter}: {:?}", job.failure_reasons);
        assert_eq!(job.total_tasks, Some(expected.len() as i64), "{filter}");
        let (ok, failed) = h.reported_keys(&job).await;
        assert_eq!(ok, expected, "{filter}");
        assert!(failed.is_empty());
    }
    // Dates: everything was created now, so a CreatedAfter in the future keeps nothing.
    let id = h.create(generator_spec(json!({"CreatedAfter": "2999-01-01T00:00:00Z"}), false)).await;
    assert_eq!(h.finished(&id).await.failure_reasons[0].failure_code, "EmptyGeneratedManifest");
}

/// EnableManifestOutput writes the generated manifest (S3InventoryReport_CSV_20211130) and describes it; it reads
/// back as an inventory with exactly the job's keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_writes_its_manifest_when_asked() {
    let h = Harness::new(EngineConfig { chunk_size: 5, ..config() }).await;
    let keys: Vec<String> = TRICKY.iter().map(|k| format!("in/{k}")).collect();
    objects(&h, &keys).await;
    h.put("data", "elsewhere", "x").await;
    let id = h.create(generator_spec(json!({"KeyNameConstraint": {"MatchAnyPrefix": ["in/"]}}), true)).await;
    let job = h.finished(&id).await;
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.failure_reasons);
    let d: Value = serde_json::from_str(job.generated_manifest.as_deref().expect("a descriptor")).unwrap();
    assert_eq!(d["Format"], "S3InventoryReport_CSV_20211130");
    let arn = d["Location"]["ObjectArn"].as_str().unwrap();
    let key = arn.strip_prefix("arn:aws:s3:::out/").expect("in the output bucket");
    assert_eq!(key, format!("generated/job-{id}/manifest.json"));
    let json = get(&h.mem, "out", key).await;
    let sum = get(&h.mem, "out", &key.replace("manifest.json", "manifest.checksum")).await;
    s3batch_inventory::check_manifest_checksum(&json, &sum).unwrap();
    let inv = s3batch_inventory::parse_manifest(&json).unwrap();
    let cols = inv.columns().unwrap();
    let mut got = BTreeSet::new();
    for f in &inv.files {
        let data = get(&h.mem, "out", &f.key).await;
        for row in s3batch_inventory::csv_gz_rows(&f.key, &data[..], &cols, Some(&f.md5)) {
            let row = row.unwrap();
            assert_eq!(row.bucket, "data");
            assert!(got.insert(row.key));
        }
    }
    assert_eq!(got, keys.iter().cloned().collect::<BTreeSet<_>>());
    // Another job can use it as its manifest.
    let etag = d["Location"]["ETag"].as_str().unwrap().to_string();
    let mut spec = inventory_spec(key, &etag);
    spec["Manifest"]["Location"]["ObjectArn"] = json!(arn);
    let again = h.finished(&h.create(spec).await).await;
    assert_eq!(again.status, JobStatus::Complete, "{:?}", again.failure_reasons);
    assert_eq!(again.total_tasks, Some(keys.len() as i64));
}

/// A slow listing: tasks run before it ends (the job is Active with its total unknown), and a crash mid-listing
/// is taken over by the next engine, which resumes after the last recorded key: every object is reported once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_overlaps_execution_and_resumes_after_a_crash() {
    let mut h = Harness::new(EngineConfig { chunk_size: 50, lease_ms: 1000, ..config() }).await;
    let keys: Vec<String> = (0..3000).map(|i| format!("k/{i:05}")).collect();
    objects(&h, &keys).await;
    h.mem.set_faults(Faults {
        latency: Duration::from_millis(150),
        only_ops: vec!["list_objects".into()],
        ..Default::default()
    });
    let id = h.create(generator_spec(json!({}), false)).await;
    // Tasks run while the listing goes on.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let job = h.service.describe(ACCOUNT, &id).await.unwrap();
        if job.succeeded > 0 {
            assert_eq!(job.total_tasks, None, "tasks ran before the listing ended");
            assert_eq!(job.status, JobStatus::Active);
            break;
        }
        assert!(Instant::now() < deadline, "no task ran while listing: {job:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.crash().await;
    let mid = h.store.get_job(None, &id).await.unwrap().unwrap();
    assert!(mid.total_tasks.is_none(), "crashed before the listing ended");
    h.mem.set_faults(Faults {
        latency: Duration::from_millis(5),
        only_ops: vec!["list_objects".into()],
        ..Default::default()
    });
    h.start();
    let job = h.finished(&id).await;
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.failure_reasons);
    assert_eq!(job.total_tasks, Some(keys.len() as i64));
    assert_eq!(job.succeeded, keys.len() as i64);
    let (ok, _) = h.reported_keys(&job).await;
    assert_eq!(ok, keys.iter().cloned().collect::<BTreeSet<_>>());
}

/// Re-running a finished job's failed tasks makes a new job over exactly those keys, linked to the original.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_covers_exactly_the_failed_tasks() {
    let h = Harness::new(EngineConfig { chunk_size: 4, ..config() }).await;
    let present: Vec<String> = (0..20).map(|i| format!("here/{i}")).collect();
    let missing: Vec<String> = TRICKY.iter().map(|k| format!("gone/{k}")).collect();
    objects(&h, &present).await;
    let mut csv = String::new();
    for k in present.iter().chain(&missing) {
        csv.push_str(&format!("data,{}\n", s3batch_core::manifest::encode_key(k)));
    }
    let etag = h.put("manifests", "m.csv", csv).await;
    let id = h
        .create(json!({
            "Operation": tagging(),
            "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                         "Location": {"ObjectArn": "arn:aws:s3:::manifests/m.csv", "ETag": etag}},
            "Report": report(), "Priority": 10, "ConfirmationRequired": false,
            "RoleArn": "arn:aws:iam::123456789012:role/batch"
        }))
        .await;
    let first = h.finished(&id).await;
    assert_eq!((first.succeeded, first.failed), (present.len() as i64, missing.len() as i64));

    // Not while it runs; and the failures are fixed before the re-run.
    objects(&h, &missing).await;
    let rerun = h.service.rerun_failed(ACCOUNT, &id).await.unwrap();
    assert_eq!(rerun.spec.rerun_of.as_deref(), Some(id.as_str()));
    let again = h.service.rerun_failed(ACCOUNT, &id).await.unwrap();
    assert_eq!(again.id, rerun.id, "asking twice gives the same re-run");
    let job = h.finished(&rerun.id).await;
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.failure_reasons);
    assert_eq!(job.total_tasks, Some(missing.len() as i64));
    let (ok, failed) = h.reported_keys(&job).await;
    assert_eq!(ok, missing.iter().cloned().collect::<BTreeSet<_>>());
    assert!(failed.is_empty());

    // A job with nothing failed, another account, an unknown job: refused.
    let e = h.service.rerun_failed(ACCOUNT, &rerun.id).await.unwrap_err();
    assert!(matches!(e, ServiceError::Invalid(_)), "{e:?}");
    let e = h.service.rerun_failed("999999999999", &id).await.unwrap_err();
    assert!(matches!(e, ServiceError::NoSuchJob(_)), "{e:?}");
}
