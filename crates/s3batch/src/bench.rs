//! `s3batch bench`: the whole pipeline (prepare → schedule → execute → report) on a manifest of N lines, tasks on
//! the in-memory backend, manifest and report on a local directory. Each size runs in its own child process so that
//! its peak RSS is its own. Prints a table.
//!
//! `s3batch bench fleet`: the same job run by 1, 2, 3, … `s3batch worker` processes sharing a PostgreSQL job
//! store; prints tasks/s for each count and the ratio to one worker.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use s3batch_core::{JobSpec, JobStatus};
use s3batch_engine::CancellationToken;
use s3batch_engine::service::JobService;
use s3batch_storage::{ObjectRef, ObjectStore, StorageConfig};
use s3batch_store::WorkerState;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt;
use tokio::sync::Notify;

use crate::config::Config;
use crate::serve;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub mode: Option<BenchMode>,
    /// Manifest sizes, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = [100_000u64, 1_000_000])]
    pub lines: Vec<u64>,
    /// Requests in flight.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Latency of every in-memory request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Manifest formats, comma separated: csv, inventory (an S3 Inventory report: gzip CSV).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [BenchFormat::Csv])]
    pub format: Vec<BenchFormat>,
    /// Where the tasks' objects live, comma separated: memory (virtual objects), local (a directory).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [BenchBackend::Memory])]
    pub backend: Vec<BenchBackend>,
    /// What each task does: tagging, noop (the cheapest full-pipeline task).
    #[arg(long, value_enum, default_value = "tagging")]
    pub operation: BenchOperation,
    /// Distinct objects the `local` backend holds (a manifest longer than that names them in turn).
    #[arg(long, default_value_t = 100_000)]
    pub local_objects: u64,
    /// The job store: postgres://… (a scratch database; the bench's jobs stay in it). Default: a fresh SQLite
    /// file per row.
    #[arg(long)]
    pub database_url: Option<String>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchMode {
    /// The same job with 1, 2, 3, … `s3batch worker` processes on one PostgreSQL database: tasks/s, and the ratio
    /// to one worker. Use a scratch database: its jobs table gets the bench's jobs (removed afterwards).
    Fleet(FleetArgs),
    /// S3PutObjectCopy, S3DeleteObject and S3PutObjectTagging jobs against a real S3 server (a single-node Garage
    /// started for the run, or `--endpoint`), in the same rounds as a raw aws-sdk-s3 loop doing the same requests
    /// at the same concurrency with a client as a user writes one, a raw DeleteObjects loop (1,000 keys a request)
    /// and, when installed, s5cmd and rclone (copy and delete): objects/s, client CPU per object and each ratio to
    /// s3batch (medians over `--rounds`).
    Garage(Box<GarageArgs>),
    /// A ManifestGenerator job over a `local` bucket of N objects: listing time, first committed chunk, whether
    /// listing and execution overlap, tasks/s, peak RSS.
    Generator(GeneratorArgs),
    /// The web console's job list with N jobs of one account in a SQLite store: how long the first page, a
    /// search, a priority sort and a status filter take to serve (median and p95 over --requests), and the bytes.
    Console(ConsoleArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ConsoleArgs {
    /// Jobs in the store (all of one account, created in the last 90 days).
    #[arg(long, default_value_t = 10_000)]
    pub jobs: u64,
    /// Requests per page measured.
    #[arg(long, default_value_t = 50)]
    pub requests: usize,
}

#[derive(Debug, Clone, clap::Args)]
pub struct GarageArgs {
    /// Objects in the source bucket (1 KiB each); every job and raw loop handles all of them.
    #[arg(long, default_value_t = 100_000)]
    pub objects: u64,
    /// Requests in flight (engine.concurrency and the raw loop's), comma separated: one round each.
    #[arg(long, value_delimiter = ',', default_values_t = [64usize])]
    pub concurrency: Vec<usize>,
    /// The script that starts Garage (default: scripts/garage.sh of the working directory or of the source tree).
    #[arg(long)]
    pub garage_script: Option<PathBuf>,
    /// Use this S3 server instead of starting Garage (with --access-key-id and --secret-access-key); the buckets
    /// are created if missing.
    #[arg(long, requires_all = ["access_key_id", "secret_access_key"])]
    pub endpoint: Option<String>,
    #[arg(long, default_value = "garage")]
    pub region: String,
    #[arg(long)]
    pub access_key_id: Option<String>,
    #[arg(long)]
    pub secret_access_key: Option<String>,
    /// Bytes in each object.
    #[arg(long, default_value_t = 1024)]
    pub object_size: usize,
    /// Rounds at each concurrency; each round runs every tool once, in an order rotated by one from the last
    /// round's, and the table shows the medians.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Only these tools, comma separated (default: s3batch, both raw loops, and s5cmd and rclone when installed).
    /// One tool alone lets a profiler (`perf record -p`, `perf stat -p`) see only its work.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub tools: Vec<Tool>,
    /// Only these operations, comma separated (default: all three; delete deletes the copies, so it needs copy).
    /// One operation alone lets a profiler (`valgrind --tool=callgrind`, `strace -c`) count only its work.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub operations: Vec<GarageOperation>,
    /// Pace s3batch and the raw SDK loop to this many objects a second (the job's RateLimit; the loop starts its
    /// i-th request at i/N s), below what the store can do, so that their client CPU per object is compared at
    /// the same request rate: unpaced, a round the store serves faster costs less CPU per object (more answers
    /// per wake-up), and the store's speed moves from round to round. Only with `--tools s3batch,raw-sdk`.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=s3batch_core::spec::MAX_RATE_LIMIT))]
    pub rate: Option<u32>,
}

/// The operations of a `bench garage` round, in the order a round runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GarageOperation {
    /// S3PutObjectCopy of every source object (CopyObject).
    Copy,
    /// S3DeleteObject of the copies.
    Delete,
    /// S3PutObjectTagging of every source object (skipped on a store without tagging, such as Garage).
    Tagging,
}

#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// The job store the workers share: postgres://… (a scratch database).
    #[arg(long, env = "S3BATCH_SERVER__DATABASE_URL")]
    pub database_url: String,
    /// Worker counts to run the job with, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2, 3])]
    pub workers: Vec<usize>,
    /// Tasks in the job (manifest lines).
    #[arg(long, default_value_t = 200_000)]
    pub tasks: u64,
    /// Latency of every in-memory request, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub latency_ms: u64,
    /// Requests in flight per worker (engine.concurrency).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Manifest lines per chunk (engine.chunk_size).
    #[arg(long, default_value_t = 1000)]
    pub chunk_size: usize,
    /// Chunks each worker works on at once (engine.chunks_in_flight).
    #[arg(long, default_value_t = 4)]
    pub chunks_in_flight: usize,
}

/// Manifest shape of a bench row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum BenchFormat {
    /// `S3BatchOperations_CSV_20180820`.
    Csv,
    /// `S3InventoryReport_CSV_20161130`: gzip CSV data files, `manifest.json`, `manifest.checksum`.
    Inventory,
}

/// Where the objects the tasks act on live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum BenchBackend {
    /// The in-memory backend with virtual objects (every key exists).
    Memory,
    /// A `local` directory: the bench creates the objects first (empty files).
    Local,
}

/// What every task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum BenchOperation {
    /// S3PutObjectTagging (one tag).
    Tagging,
    /// The cheapest full-pipeline task: an S3PutObjectTagging job with `DryRun` (every task HEADs its object and
    /// changes nothing; the report says what it would do).
    Noop,
}

impl BenchFormat {
    fn name(self) -> &'static str {
        match self {
            BenchFormat::Csv => "csv",
            BenchFormat::Inventory => "inventory",
        }
    }
}

impl BenchOperation {
    fn name(self) -> &'static str {
        match self {
            BenchOperation::Tagging => "tagging",
            BenchOperation::Noop => "noop",
        }
    }
}

impl BenchBackend {
    fn name(self) -> &'static str {
        match self {
            BenchBackend::Memory => "memory",
            BenchBackend::Local => "local",
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct GeneratorArgs {
    /// Objects in the `local` source bucket (empty files); the job lists them all.
    #[arg(long, default_value_t = 1_000_000)]
    pub objects: u64,
    /// Requests in flight.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[arg(long)]
    pub lines: u64,
    #[arg(long)]
    pub concurrency: usize,
    #[arg(long)]
    pub latency_ms: u64,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: BenchFormat,
    #[arg(long, value_enum, default_value = "memory")]
    pub backend: BenchBackend,
    /// Distinct objects on the `local` backend; the manifest names them in turn.
    #[arg(long, default_value_t = 100_000)]
    pub local_objects: u64,
    /// Run a ManifestGenerator job over a `local` bucket of `--lines` objects instead of a manifest.
    #[arg(long)]
    pub generator: bool,
    #[arg(long, value_enum, default_value = "tagging")]
    pub operation: BenchOperation,
    #[arg(long)]
    pub database_url: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Measured {
    lines: u64,
    prepare_s: f64,
    run_s: f64,
    tasks_per_s: f64,
    peak_rss_mib: f64,
    status: String,
    succeeded: i64,
    failed: i64,
    /// Writing the manifest (not timed in the job figures).
    #[serde(default)]
    manifest_s: f64,
    /// Creating the `local` objects (not timed in the job figures).
    #[serde(default)]
    create_objects_s: f64,
    /// The first HEAD of every `local` object, which hashes it and caches its ETag (not timed in the job figures).
    #[serde(default)]
    first_head_s: f64,
    /// Distinct objects the tasks act on (`local` backend), 0 for virtual objects.
    #[serde(default)]
    distinct_objects: u64,
    /// Ready (the job left Preparing) → the first chunk committed (succeeded + failed > 0).
    #[serde(default)]
    first_chunk_s: Option<f64>,
    /// Creation → Complete.
    #[serde(default)]
    total_s: f64,
    /// Tasks / (creation → Complete).
    #[serde(default)]
    e2e_tasks_per_s: f64,
    /// Creation → TotalNumberOfTasks known (the listing ended, or the manifest was read).
    #[serde(default)]
    listing_s: Option<f64>,
    /// Creation → first committed chunk.
    #[serde(default)]
    first_chunk_since_create_s: Option<f64>,
}

pub async fn run(args: BenchArgs) -> Result<()> {
    match args.mode {
        Some(BenchMode::Fleet(f)) => return fleet(f).await,
        Some(BenchMode::Garage(g)) => return garage(*g).await,
        Some(BenchMode::Generator(g)) => return generator(g).await,
        Some(BenchMode::Console(c)) => return console(c).await,
        None => {}
    }
    if args.lines.is_empty() || args.lines.contains(&0) {
        bail!("--lines: sizes of at least 1");
    }
    let exe = std::env::current_exe()?;
    let operation = match args.operation {
        BenchOperation::Tagging => "S3PutObjectTagging",
        BenchOperation::Noop => "noop = S3PutObjectTagging with DryRun (a HEAD per task, nothing changed)",
    };
    let store = match &args.database_url {
        Some(url) if serve::is_postgres(url) => format!("PostgreSQL {}", serve::redact_url(url)),
        Some(url) => bail!("--database-url: a postgres:// URL, got {}", serve::redact_url(url)),
        None => "SQLite (a fresh file per row)".to_string(),
    };
    println!(
        "s3batch bench: {operation}, concurrency {}, memory latency {} ms; job store {store}; manifest and report \
         on a local directory; one child process per row",
        args.concurrency, args.latency_ms
    );
    if args.backend.contains(&BenchBackend::Local) {
        println!(
            "  local backend: {} distinct objects (empty files, created before the job, not timed), named in turn \
             by the manifest",
            args.local_objects
        );
    }
    println!(
        "  first chunk = Ready → the job's succeeded+failed counter first moves (a chunk of 1000 committed), \
         polled every 5 ms; e2e tasks/s = tasks / (creation → Complete)"
    );
    println!(
        "{:>9}  {:>7}  {:>10}  {:>11}  {:>13}  {:>8}  {:>10}  {:>13}  {:>12}  {:>9}",
        "format",
        "backend",
        "lines",
        "preparing s",
        "first chunk s",
        "run s",
        "run task/s",
        "e2e tasks/s",
        "peak RSS MiB",
        "status"
    );
    let mut results: Vec<(BenchFormat, BenchBackend, Measured)> = Vec::new();
    for &backend in &args.backend {
        for &format in &args.format {
            for n in &args.lines {
                let out = tokio::process::Command::new(&exe)
                    .args(["bench-run", "--lines", &n.to_string(), "--concurrency", &args.concurrency.to_string()])
                    .args(["--latency-ms", &args.latency_ms.to_string()])
                    .args(["--format", format.name(), "--backend", backend.name()])
                    .args(["--local-objects", &args.local_objects.to_string()])
                    .args(["--operation", args.operation.name()])
                    .args(args.database_url.iter().flat_map(|u| ["--database-url", u.as_str()]))
                    .stderr(std::process::Stdio::inherit())
                    .output()
                    .await?;
                if !out.status.success() {
                    bail!("the {n}-line {} {} run failed", format.name(), backend.name());
                }
                let m: Measured = serde_json::from_slice(&out.stdout).context("reading the child's figures")?;
                println!(
                    "{:>9}  {:>7}  {:>10}  {:>11.2}  {:>13}  {:>8.2}  {:>10.0}  {:>13.0}  {:>12.1}  {:>9}",
                    format.name(),
                    backend.name(),
                    m.lines,
                    m.prepare_s,
                    m.first_chunk_s.map_or("-".to_string(), |s| format!("{s:.3}")),
                    m.run_s,
                    m.tasks_per_s,
                    m.e2e_tasks_per_s,
                    m.peak_rss_mib,
                    m.status
                );
                if m.status != "Complete" || m.succeeded as u64 != m.lines {
                    bail!("the {n}-line job ended {} with {} succeeded, {} failed", m.status, m.succeeded, m.failed);
                }
                results.push((format, backend, m));
            }
        }
    }
    for (format, backend, m) in &results {
        if *backend == BenchBackend::Local {
            println!(
                "{} / local, {} lines: {} objects created in {:.1} s; their first HEAD (ETag hashed and cached) took \
                 {:.1} s, {:.0} objects/s (both before the job, not in the figures)",
                format.name(),
                m.lines,
                m.distinct_objects,
                m.create_objects_s,
                m.first_head_s,
                m.distinct_objects as f64 / m.first_head_s.max(1e-3)
            );
        }
    }
    for &backend in &args.backend {
        for &format in &args.format {
            let rows: Vec<&Measured> =
                results.iter().filter(|(f, b, _)| *f == format && *b == backend).map(|(_, _, m)| m).collect();
            let small = rows.iter().min_by_key(|m| m.lines);
            let large = rows.iter().max_by_key(|m| m.lines);
            if let (Some(a), Some(b)) = (small, large)
                && rows.len() > 1
            {
                println!(
                    "{} / {}: peak RSS {:.1} MiB at {} lines, {:.1} MiB at {} lines ({:+.1}%)",
                    format.name(),
                    backend.name(),
                    a.peak_rss_mib,
                    a.lines,
                    b.peak_rss_mib,
                    b.lines,
                    (b.peak_rss_mib / a.peak_rss_mib - 1.0) * 100.0
                );
            }
        }
    }
    Ok(())
}

/// The key of object `j`: spread over 97 directories, with a space (URL-encoded in the CSV manifest).
fn object_key(j: u64) -> String {
    format!("objects/{:02}/key {j}.dat", j % 97)
}

/// Create `n` empty objects in `bucket_dir` (keys of [`object_key`]), on two threads.
fn create_objects(bucket_dir: &std::path::Path, n: u64) -> Result<()> {
    for d in 0..97u64.min(n) {
        std::fs::create_dir_all(bucket_dir.join(format!("objects/{d:02}")))?;
    }
    let threads = 2u64;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || -> Result<()> {
                    let mut j = t;
                    while j < n {
                        std::fs::File::create(bucket_dir.join(object_key(j)))?;
                        j += threads;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("an object-creating thread panicked"))??;
        }
        Ok(())
    })
}

/// A writer that counts and hashes (MD5) what passes through it.
struct HashingWriter<W: Write> {
    inner: W,
    md5: md5::Md5,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use md5::Digest;
        let n = self.inner.write(buf)?;
        self.md5.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Rows per inventory data file.
const INVENTORY_ROWS_PER_FILE: u64 = 1_000_000;

/// Write an S3 Inventory report (gzip CSV data files, `manifest.json`, `manifest.checksum`) naming `lines`
/// objects of `bench-data` (object `i % distinct`) under `bucket_dir` (the `bench-manifests` bucket), streaming.
/// Returns the key of `manifest.json`.
fn write_inventory(bucket_dir: &std::path::Path, lines: u64, distinct: u64) -> Result<String> {
    use md5::Digest;
    let prefix = "inventory/bench-data/bench";
    std::fs::create_dir_all(bucket_dir.join(format!("{prefix}/data")))?;
    let mut files = Vec::new();
    let mut row = String::with_capacity(128);
    let mut first = 0u64;
    let mut n = 0u32;
    while first < lines {
        let last = (first + INVENTORY_ROWS_PER_FILE).min(lines);
        let key = format!("{prefix}/data/part-{n:05}.csv.gz");
        let file = std::fs::File::create(bucket_dir.join(&key))?;
        let hashing = HashingWriter { inner: std::io::BufWriter::new(file), md5: md5::Md5::new(), bytes: 0 };
        let mut gz = flate2::write::GzEncoder::new(hashing, flate2::Compression::fast());
        for i in first..last {
            row.clear();
            row.push_str("\"bench-data\",\"");
            s3batch_inventory::form_encode_into(&object_key(i % distinct), &mut row);
            row.push_str("\",\"0\",\"2026-11-24T00:00:00.000Z\",\"STANDARD\"\n");
            gz.write_all(row.as_bytes())?;
        }
        let mut hashing = gz.finish()?;
        hashing.flush()?;
        files.push(serde_json::json!({
            "key": key, "size": hashing.bytes, "MD5checksum": hex::encode(hashing.md5.finalize()),
        }));
        first = last;
        n += 1;
    }
    let manifest = serde_json::json!({
        "sourceBucket": "bench-data",
        "destinationBucket": "arn:aws:s3:::bench-manifests",
        "version": "2016-11-30",
        "creationTimestamp": "1795478400000",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate, StorageClass",
        "files": files,
    });
    let json = serde_json::to_vec_pretty(&manifest)?;
    let dir = format!("{prefix}/2026-11-24T00-00Z");
    std::fs::create_dir_all(bucket_dir.join(&dir))?;
    std::fs::write(bucket_dir.join(format!("{dir}/manifest.json")), &json)?;
    std::fs::write(bucket_dir.join(format!("{dir}/manifest.checksum")), s3batch_inventory::md5_hex(&json))?;
    Ok(format!("{dir}/manifest.json"))
}

/// The role a benchmark job runs under (reads and writes the `bench-*` buckets).
const BENCH_ROLE: &str = "arn:aws:iam::123456789012:role/bench";

/// One row, in this (child) process; prints its figures as JSON on stdout.
pub async fn run_child(args: RunArgs) -> Result<()> {
    if args.lines == 0 || args.local_objects == 0 {
        bail!("--lines and --local-objects: at least 1");
    }
    let dir = tempfile::tempdir()?;
    let mut config = Config::default();
    config.server.data_dir = dir.path().to_path_buf();
    config.engine.concurrency = args.concurrency;
    config.engine.tick_ms = 50;
    config.server.database_url = args.database_url.clone();
    let local_backend = args.generator || args.backend == BenchBackend::Local;
    let mut local = StorageConfig::local("disk", dir.path().join("objects"));
    local.buckets = vec!["bench-manifests".into(), "bench-reports".into()];
    if local_backend {
        local.buckets.push("bench-data".into());
    }
    let mut mem = StorageConfig::memory("mem");
    mem.virtual_objects = true;
    mem.latency_ms = args.latency_ms;
    config.storage = vec![local, mem];
    // The job runs under a role, as on a server with accounts: every storage call is checked against it.
    config.roles = vec![s3batch_engine::roles::RoleConfig {
        arn: BENCH_ROLE.into(),
        cos_arn: None,
        read: vec!["bench-*".into()],
        write: vec!["bench-*".into()],
        operations: None,
        functions: vec![],
        credentials: vec![],
    }];

    let objects = dir.path().join("objects");
    let mdir = objects.join("bench-manifests");
    std::fs::create_dir_all(&mdir)?;
    std::fs::create_dir_all(objects.join("bench-reports"))?;
    std::fs::create_dir_all(objects.join("bench-data"))?;

    // The objects of the local backend (the generator lists all of them; a manifest names them in turn).
    let distinct = match (args.generator, local_backend) {
        (true, _) => args.lines,
        (false, true) => args.local_objects.min(args.lines),
        (false, false) => args.lines,
    };
    let t = Instant::now();
    if local_backend {
        create_objects(&objects.join("bench-data"), distinct)?;
    }
    let create_objects_s = t.elapsed().as_secs_f64();
    // A file the local backend has not seen yet gets its ETag hashed and cached on its first read. A manifest job
    // HEADs the objects the way a bucket written through the backend would be: seen before (its cold first pass is
    // timed here, apart).
    let t = Instant::now();
    if local_backend && !args.generator {
        let store = s3batch_storage::local::LocalStore::new(&objects)?;
        let store = &store;
        futures::stream::iter(0..distinct)
            .map(|j| async move {
                let key = object_key(j);
                store
                    .head_object(&ObjectRef::new("bench-data", &key))
                    .await
                    .with_context(|| format!("first HEAD of {key}"))
            })
            .buffer_unordered(args.concurrency.max(1))
            .try_for_each(|_| async { Ok(()) })
            .await?;
    }
    let first_head_s = t.elapsed().as_secs_f64();

    // The manifest is streamed to disk, never held in memory.
    let t = Instant::now();
    let manifest = if args.generator {
        serde_json::json!({"ManifestGenerator": {"S3JobManifestGenerator": {
            "SourceBucket": "arn:aws:s3:::bench-data", "EnableManifestOutput": false}}})
    } else {
        match args.format {
            BenchFormat::Csv => {
                let mut w = std::io::BufWriter::new(std::fs::File::create(mdir.join("manifest.csv"))?);
                for i in 0..args.lines {
                    let j = i % distinct;
                    writeln!(w, "bench-data,objects/{:02}/key%20{j}.dat", j % 97)?;
                }
                w.flush()?;
                serde_json::json!({"Manifest": {
                    "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                    "Location": {"ObjectArn": "arn:aws:s3:::bench-manifests/manifest.csv"}}})
            }
            BenchFormat::Inventory => {
                let key = write_inventory(&mdir, args.lines, distinct)?;
                serde_json::json!({"Manifest": {
                    "Spec": {"Format": "S3InventoryReport_CSV_20161130"},
                    "Location": {"ObjectArn": format!("arn:aws:s3:::bench-manifests/{key}")}}})
            }
        }
    };
    let manifest_s = t.elapsed().as_secs_f64();

    let parts = serve::build(&config, "bench").await?;
    let shutdown = CancellationToken::new();
    let engine = tokio::spawn(parts.engine.clone().run(shutdown.clone()));
    let mut spec = serde_json::json!({
        "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "bench", "Value": "1"}]}},
        "Report": {"Enabled": true, "Bucket": "arn:aws:s3:::bench-reports", "Format": "Report_CSV_20180820",
                   "ReportScope": "AllTasks"},
        "Priority": 1,
        "ConfirmationRequired": false,
        "DryRun": args.operation == BenchOperation::Noop,
        "RoleArn": BENCH_ROLE,
    });
    if let (Some(spec), Some(m)) = (spec.as_object_mut(), manifest.as_object()) {
        spec.extend(m.clone());
    }
    let spec: JobSpec = serde_json::from_value(spec)?;
    let t0 = Instant::now();
    let job = parts.service.create("123456789012", None, spec).await?;
    let mut prepared_at = None;
    let mut active_at = None;
    let mut first_chunk_at = None;
    let mut listed_at = None;
    let done = loop {
        let j = parts.service.describe("123456789012", &job.id).await?;
        let now = t0.elapsed();
        if prepared_at.is_none() && !matches!(j.status, JobStatus::New | JobStatus::Preparing) {
            prepared_at = Some(now);
        }
        if active_at.is_none() && j.status == JobStatus::Active {
            active_at = Some(now);
        }
        if listed_at.is_none() && j.total_tasks.is_some() {
            listed_at = Some(now);
        }
        if first_chunk_at.is_none() && j.succeeded + j.failed > 0 {
            first_chunk_at = Some(now);
        }
        if j.status.is_terminal() {
            break j;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let total = t0.elapsed();
    shutdown.cancel();
    engine.await?;
    let prepare = prepared_at.unwrap_or(total);
    let run = total - active_at.unwrap_or(prepare);
    let tasks = (done.succeeded + done.failed) as f64;
    let m = Measured {
        lines: args.lines,
        prepare_s: prepare.as_secs_f64(),
        run_s: run.as_secs_f64(),
        tasks_per_s: tasks / run.as_secs_f64().max(1e-3),
        peak_rss_mib: peak_rss_kib()? as f64 / 1024.0,
        status: done.status.to_string(),
        succeeded: done.succeeded,
        failed: done.failed,
        manifest_s,
        create_objects_s,
        first_head_s,
        distinct_objects: if local_backend { distinct } else { 0 },
        first_chunk_s: first_chunk_at.map(|f| f.saturating_sub(prepare).as_secs_f64()),
        total_s: total.as_secs_f64(),
        e2e_tasks_per_s: tasks / total.as_secs_f64().max(1e-3),
        listing_s: listed_at.map(|l| l.as_secs_f64()),
        first_chunk_since_create_s: first_chunk_at.map(|f| f.as_secs_f64()),
    };
    println!("{}", serde_json::to_string(&m)?);
    Ok(())
}

/// `bench generator`: a ManifestGenerator job over a `local` bucket of N empty objects, S3PutObjectTagging on
/// each (on the local backend: a sidecar write), in a child process.
async fn console(args: ConsoleArgs) -> Result<()> {
    if args.jobs == 0 || args.requests == 0 {
        bail!("--jobs and --requests: at least 1");
    }
    let dir = tempfile::tempdir()?;
    let mut config = Config::default();
    config.server.data_dir = dir.path().to_path_buf();
    let parts = serve::build(&config, "bench").await?;
    let account = s3batch_api::auth::DEFAULT_ACCOUNT;
    println!("s3batch bench console: {} jobs of one account in SQLite; {} requests per row", args.jobs, args.requests);
    let started = Instant::now();
    for i in 0..args.jobs {
        let spec: JobSpec = serde_json::from_value(serde_json::json!({
            "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "k", "Value": "v"}]}},
            "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                         "Location": {"ObjectArn": "arn:aws:s3:::manifests/m.csv"}},
            "Report": {"Enabled": false},
            "Priority": (i % 100) as i64,
            "Description": format!("bench job {i}"),
        }))?;
        parts.service.create(account, None, spec).await?;
    }
    println!("creating the jobs: {:.1} s (not in the figures below)", started.elapsed().as_secs_f64());
    let state = s3batch_api::AppState::new(parts.service, Arc::new(s3batch_api::Accounts::default()), "us-east-1");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, s3batch_api::router(state)).await });
    let client = reqwest::Client::new();
    let first = client.get(format!("{base}/console")).send().await?;
    let cookie = first
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .context("the console set no session cookie")?
        .to_string();
    println!("{:<32}  {:>10}  {:>10}  {:>10}  {:>8}", "page", "median ms", "p95 ms", "KiB", "status");
    let last = format!("bench job {}", args.jobs / 2);
    for (name, path) in [
        ("list, first page", "/console".to_string()),
        ("search by description", format!("/console?q={}", last.replace(' ', "+"))),
        ("sort by priority", "/console?sort=priority".to_string()),
        ("status filter, page 2", "/console?status=New&page=2".to_string()),
    ] {
        let mut times = Vec::with_capacity(args.requests);
        let (mut bytes, mut status) = (0, 0);
        for _ in 0..args.requests {
            let t = Instant::now();
            let resp = client.get(format!("{base}{path}")).header(reqwest::header::COOKIE, &cookie).send().await?;
            status = resp.status().as_u16();
            bytes = resp.bytes().await?.len();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let p95 = times[((times.len() as f64 * 0.95).ceil() as usize).clamp(1, times.len()) - 1];
        println!(
            "{name:<32}  {:>10.1}  {p95:>10.1}  {:>10.1}  {status:>8}",
            times[times.len() / 2],
            bytes as f64 / 1024.0
        );
        if status != 200 {
            bail!("{path} answered {status}");
        }
    }
    server.abort();
    Ok(())
}

async fn generator(args: GeneratorArgs) -> Result<()> {
    if args.objects == 0 {
        bail!("--objects: at least 1");
    }
    let exe = std::env::current_exe()?;
    println!(
        "s3batch bench generator: ManifestGenerator over a local bucket of {} empty objects, S3PutObjectTagging \
         on the local backend, concurrency {}",
        args.objects, args.concurrency
    );
    let out = tokio::process::Command::new(&exe)
        .args(["bench-run", "--generator", "--lines", &args.objects.to_string()])
        .args(["--concurrency", &args.concurrency.to_string(), "--latency-ms", "0", "--backend", "local"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .await?;
    if !out.status.success() {
        bail!("the generator run failed");
    }
    let m: Measured = serde_json::from_slice(&out.stdout).context("reading the child's figures")?;
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |s| format!("{s:.2}"));
    let overlap = match (m.first_chunk_since_create_s, m.listing_s) {
        (Some(f), Some(l)) => if f < l { "yes" } else { "no" }.to_string(),
        _ => "-".to_string(),
    };
    println!("creating the {} objects: {:.1} s (not in the figures below)", m.distinct_objects, m.create_objects_s);
    println!(
        "{:>10}  {:>9}  {:>13}  {:>8}  {:>8}  {:>10}  {:>12}  {:>12}  {:>9}",
        "objects",
        "listing s",
        "first chunk s",
        "overlap",
        "total s",
        "run task/s",
        "e2e tasks/s",
        "peak RSS MiB",
        "status"
    );
    println!(
        "{:>10}  {:>9}  {:>13}  {:>8}  {:>8.2}  {:>10.0}  {:>12.0}  {:>12.1}  {:>9}",
        m.lines,
        opt(m.listing_s),
        opt(m.first_chunk_since_create_s),
        overlap,
        m.total_s,
        m.tasks_per_s,
        m.e2e_tasks_per_s,
        m.peak_rss_mib,
        m.status
    );
    println!(
        "  listing s = creation → TotalNumberOfTasks known; first chunk s = creation → first committed chunk; \
         overlap = the first chunk committed before the listing ended"
    );
    if m.status != "Complete" || m.succeeded as u64 != m.lines {
        bail!("the generator job ended {} with {} succeeded, {} failed", m.status, m.succeeded, m.failed);
    }
    Ok(())
}

/// VmHWM: this process's peak resident set, in KiB.
fn peak_rss_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status_number(&status, "VmHWM:").context("no VmHWM in /proc/self/status")
}

/// The number on the line of a /proc status file that starts with `key` (a size's `kB` dropped).
fn status_number(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

// ---------------------------------------------------------------------------------------------------------------
// Fleet

/// One worker count's figures.
struct FleetRun {
    workers: usize,
    /// Active → every task counted.
    run_s: f64,
    /// Every task counted → Complete (the report).
    report_s: f64,
    tasks_per_s: f64,
    /// CPU time of the worker processes, over the whole run.
    worker_cpu_s: f64,
    /// Share of the machine's CPU in use while the tasks ran (everything: workers, PostgreSQL, others).
    machine_cpu: f64,
}

async fn fleet(args: FleetArgs) -> Result<()> {
    if !serve::is_postgres(&args.database_url) {
        bail!("bench fleet needs a PostgreSQL database (--database-url postgres://…)");
    }
    if args.workers.is_empty() || args.workers.contains(&0) {
        bail!("--workers: counts of at least 1");
    }
    let dir = tempfile::tempdir()?;
    let objects = dir.path().join("objects");
    for b in ["bench-manifests", "bench-reports"] {
        std::fs::create_dir_all(objects.join(b))?;
    }
    let mut w = std::io::BufWriter::new(std::fs::File::create(objects.join("bench-manifests/manifest.csv"))?);
    for i in 0..args.tasks {
        writeln!(w, "bench-data,objects/{:02}/key%20{i}.dat", i % 97)?;
    }
    w.flush()?;
    drop(w);
    let config = dir.path().join("worker.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
data_dir = "{data}"
database_url = "{url}"

[engine]
concurrency = {concurrency}
chunk_size = {chunk_size}
chunks_in_flight = {chunks_in_flight}
tick_ms = 50

[[storage]]
name = "disk"
kind = "local"
buckets = ["bench-manifests", "bench-reports"]
root = "{objects}"

[[storage]]
name = "mem"
kind = "memory"
buckets = ["*"]
virtual_objects = true
latency_ms = {latency}
"#,
            data = dir.path().join("data").display(),
            url = args.database_url.replace('\\', "\\\\").replace('"', "\\\""),
            concurrency = args.concurrency,
            chunk_size = args.chunk_size,
            chunks_in_flight = args.chunks_in_flight,
            objects = objects.display(),
            latency = args.latency_ms,
        ),
    )?;

    let store = serve::open_store(&args.database_url).await?;
    let now = s3batch_engine::now();
    let alive: Vec<_> = store.list_workers().await?.into_iter().filter(|w| w.state(now) != WorkerState::Lost).collect();
    if !alive.is_empty() {
        bail!(
            "{} worker(s) already run on this database ({}): they would take part; use a scratch database",
            alive.len(),
            alive.iter().map(|w| w.id.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    let service = JobService::new(store.clone(), Arc::new(Notify::new()), 90);

    let ideal = args.concurrency as f64 * 1000.0 / args.latency_ms.max(1) as f64;
    println!(
        "s3batch bench fleet: {} S3PutObjectTagging tasks on the memory backend ({} ms a request), per worker \
         concurrency {} (at most {:.0} tasks/s each), chunks of {}, {} in flight; PostgreSQL {}",
        args.tasks,
        args.latency_ms,
        args.concurrency,
        ideal,
        args.chunk_size,
        args.chunks_in_flight,
        serve::redact_url(&args.database_url)
    );
    let mut runs: Vec<FleetRun> = Vec::new();
    for &n in &args.workers {
        let r = fleet_run(&args, &config, &service, n).await?;
        if runs.is_empty() {
            println!(
                "{:>7}  {:>8}  {:>8}  {:>10}  {:>12}  {:>12}  {:>13}",
                "workers", "run s", "report s", "tasks/s", "vs 1 worker", "worker CPU s", "machine CPU %"
            );
        }
        let base = runs.iter().find(|b| b.workers == 1).or(runs.first()).map(|b| b.tasks_per_s / b.workers as f64);
        let ratio = r.tasks_per_s / base.unwrap_or(r.tasks_per_s / r.workers as f64);
        println!(
            "{:>7}  {:>8.2}  {:>8.2}  {:>10.0}  {:>11.2}x  {:>12.1}  {:>13.0}",
            r.workers,
            r.run_s,
            r.report_s,
            r.tasks_per_s,
            ratio,
            r.worker_cpu_s,
            r.machine_cpu * 100.0
        );
        runs.push(r);
    }
    Ok(())
}

/// Start `n` workers, run the job, stop them (SIGTERM), remove the job.
async fn fleet_run(args: &FleetArgs, config: &std::path::Path, service: &JobService, n: usize) -> Result<FleetRun> {
    let exe = std::env::current_exe()?;
    let mut workers = Vec::new();
    for _ in 0..n {
        let mut child = tokio::process::Command::new(&exe)
            .args(["worker", "--config"])
            .arg(config)
            .env("S3BATCH_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting s3batch worker")?;
        let stdout = child.stdout.take().context("the worker's stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
        match ready {
            Ok(Ok(Some(l))) if l.contains("running") => {}
            other => bail!("a worker did not start: {other:?}"),
        }
        // Keep reading (and dropping) what it prints, so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        workers.push(child);
    }
    let spec: JobSpec = serde_json::from_value(serde_json::json!({
        "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "bench", "Value": "1"}]}},
        "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                     "Location": {"ObjectArn": "arn:aws:s3:::bench-manifests/manifest.csv"}},
        "Report": {"Enabled": true, "Bucket": "arn:aws:s3:::bench-reports", "Format": "Report_CSV_20180820",
                   "ReportScope": "AllTasks"},
        "Priority": 1,
        "ConfirmationRequired": false,
    }))?;
    let job = service.create("123456789012", None, spec).await?;
    let t0 = Instant::now();
    let (mut active_at, mut counted_at) = (None, None);
    let mut cpu_at_active = None;
    let mut machine = (0.0, 0.0);
    let done = loop {
        let j = service.describe("123456789012", &job.id).await?;
        if active_at.is_none() && j.status == JobStatus::Active {
            active_at = Some(t0.elapsed());
            cpu_at_active = machine_cpu().ok();
        }
        if counted_at.is_none() && j.total_tasks.is_some_and(|t| j.succeeded + j.failed >= t) {
            counted_at = Some(t0.elapsed());
            if let (Some(a), Ok(b)) = (cpu_at_active, machine_cpu()) {
                machine = (b.0 - a.0, b.1 - a.1);
            }
        }
        if j.status.is_terminal() {
            break j;
        }
        if t0.elapsed() > Duration::from_secs(3600) {
            bail!("the job did not finish within an hour");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let total = t0.elapsed();
    let mut cpu = 0.0;
    for w in &workers {
        cpu += w.id().and_then(|pid| process_cpu_s(pid).ok()).unwrap_or(0.0);
    }
    for w in &workers {
        if let Some(pid) = w.id() {
            let _ = tokio::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
        }
    }
    for mut w in workers {
        match tokio::time::timeout(Duration::from_secs(60), w.wait()).await {
            Ok(Ok(s)) if s.success() => {}
            other => tracing::warn!("a worker did not stop cleanly: {other:?}"),
        }
    }
    service.store().delete_job(&job.id).await?;
    if done.status != JobStatus::Complete || done.succeeded as u64 != args.tasks {
        bail!("the job ended {} with {} succeeded, {} failed", done.status, done.succeeded, done.failed);
    }
    let active = active_at.unwrap_or_default();
    let counted = counted_at.unwrap_or(total);
    let run_s = (counted - active).as_secs_f64().max(1e-3);
    Ok(FleetRun {
        workers: n,
        run_s,
        report_s: (total - counted).as_secs_f64(),
        tasks_per_s: args.tasks as f64 / run_s,
        worker_cpu_s: cpu,
        machine_cpu: if machine.1 > 0.0 { machine.0 / machine.1 } else { 0.0 },
    })
}

/// (busy, total) jiffies of the whole machine, from /proc/stat.
fn machine_cpu() -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let v: Vec<f64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: f64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    Ok((total - idle, total))
}

/// User + system CPU seconds of a process so far, from /proc/<pid>/stat.
fn process_cpu_s(pid: u32) -> Result<f64> {
    let (user, sys) = stat_times(&format!("/proc/{pid}/stat"), 11)?;
    Ok(user + sys)
}

/// Two clock-tick fields of a /proc stat file, in seconds (ticks of 1/100 s): `at` counts from the field after the
/// command, so 11 is utime (field 14 over the whole line) and stime beside it, 13 cutime and cstime.
fn stat_times(path: &str, at: usize) -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string(path)?;
    let after = stat.rsplit_once(')').context("no ')' in stat")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        let x = f.get(i).with_context(|| format!("{path}: no field {}", i + 3))?;
        Ok(x.parse::<f64>().with_context(|| format!("{path}: field {} is {x:?}", i + 3))? / 100.0)
    };
    Ok((ticks(at)?, ticks(at + 1)?))
}

/// The CPU a process used (so far, or between two readings): user and system seconds, and context switches.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    user_s: f64,
    sys_s: f64,
    /// Voluntary and involuntary context switches of the threads alive at the reading; NaN when not known (a
    /// child process).
    switches: f64,
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, o: Cpu) -> Cpu {
        Cpu { user_s: self.user_s - o.user_s, sys_s: self.sys_s - o.sys_s, switches: self.switches - o.switches }
    }
}

impl Cpu {
    fn total_s(&self) -> f64 {
        self.user_s + self.sys_s
    }

    /// This process so far. The switches are those of its live threads: a thread that ended took its own along
    /// (the runtime's workers, the SQLite connection's thread and the timer live as long as the bench).
    fn of_self() -> Cpu {
        let (user_s, sys_s) = stat_times("/proc/self/stat", 11).unwrap_or_default();
        let mut switches = 0.0;
        for task in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
            let Ok(status) = std::fs::read_to_string(task.path().join("status")) else { continue };
            for key in ["voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"] {
                switches += status_number(&status, key).unwrap_or(0) as f64;
            }
        }
        Cpu { user_s, sys_s, switches }
    }

    /// This process's waited-for children so far (`cutime`, `cstime`); their switches are not known.
    fn of_children() -> Cpu {
        let (user_s, sys_s) = stat_times("/proc/self/stat", 13).unwrap_or_default();
        Cpu { user_s, sys_s, switches: f64::NAN }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Garage: s3batch against a raw SDK loop on a real S3 server

const GARAGE_SRC: &str = "bench-src";
const GARAGE_DST_BATCH: &str = "bench-dst-batch";
const GARAGE_DST_RAW: &str = "bench-dst-raw";
const GARAGE_DST_RAW_BATCH: &str = "bench-dst-raw-batch";
const GARAGE_DST_S5CMD: &str = "bench-dst-s5cmd";
const GARAGE_DST_RCLONE: &str = "bench-dst-rclone";
/// Every bucket the bench uses.
const GARAGE_BUCKETS: &[&str] =
    &[GARAGE_SRC, GARAGE_DST_BATCH, GARAGE_DST_RAW, GARAGE_DST_RAW_BATCH, GARAGE_DST_S5CMD, GARAGE_DST_RCLONE];

/// A Garage started by the script: killed (SIGTERM) when dropped.
struct GarageProc {
    pid: u32,
    _dir: tempfile::TempDir,
}

impl Drop for GarageProc {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").arg(self.pid.to_string()).status();
        // Let it go before its directory is removed.
        for _ in 0..50 {
            if !std::path::Path::new(&format!("/proc/{}", self.pid)).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Endpoint, region, key id, secret of the server under test.
struct S3Target {
    endpoint: String,
    region: String,
    key_id: String,
    secret: String,
}

fn garage_script(given: Option<&PathBuf>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.clone());
    }
    let here = PathBuf::from("scripts/garage.sh");
    if here.exists() {
        return Ok(here);
    }
    let tree = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/garage.sh"));
    if tree.exists() {
        return Ok(tree);
    }
    bail!("scripts/garage.sh not found: give --garage-script PATH (or --endpoint of a running S3 server)")
}

async fn start_garage(script: &std::path::Path) -> Result<(GarageProc, S3Target)> {
    let dir = tempfile::tempdir()?;
    let out = tokio::process::Command::new("bash")
        .arg(script)
        .arg(dir.path())
        .args(GARAGE_BUCKETS)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .with_context(|| format!("running {}", script.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let var = |name: &str| {
        text.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix('='))).map(str::to_string)
    };
    // Whatever happened, a Garage that printed its pid is stopped.
    let pid = var("GARAGE_PID").and_then(|p| p.parse().ok());
    let pid = match pid {
        Some(pid) => pid,
        None => {
            if let Ok(p) = std::fs::read_to_string(dir.path().join("garage.pid"))
                && let Ok(pid) = p.trim().parse::<u32>()
            {
                drop(GarageProc { pid, _dir: dir });
            }
            bail!("{} failed ({}) or printed no GARAGE_PID", script.display(), out.status);
        }
    };
    let proc = GarageProc { pid, _dir: dir };
    if !out.status.success() {
        bail!("{} failed: {}", script.display(), out.status);
    }
    let get = |name: &str| var(name).with_context(|| format!("{} printed no {name}", script.display()));
    let target = S3Target {
        endpoint: get("GARAGE_ENDPOINT")?,
        region: get("GARAGE_REGION")?,
        key_id: get("GARAGE_KEY_ID")?,
        secret: get("GARAGE_SECRET")?,
    };
    Ok((proc, target))
}

/// An aws-sdk-s3 client as a user writes one: the SDK's defaults, with only the region, the credentials, the
/// endpoint and path style given. The raw loops use it, so that s3batch is measured against what a user would
/// write rather than against its own client settings. The one setting added is the HTTP client: this build has no
/// SDK default one (see `s3batch_storage::s3::http_client`); it is the SDK's own hyper client, which a user's
/// default client is too, with rustls on ring instead of aws-lc (no TLS on the benchmark's plain-HTTP endpoints).
fn user_client(t: &S3Target) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(t.region.clone()))
        .credentials_provider(Credentials::new(&t.key_id, &t.secret, None, None, "bench"))
        .endpoint_url(&t.endpoint)
        .force_path_style(true)
        .http_client(s3batch_storage::s3::http_client())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

fn s3_storage_config(t: &S3Target) -> StorageConfig {
    StorageConfig {
        kind: s3batch_storage::BackendKind::S3,
        root: None,
        endpoint: Some(t.endpoint.clone()),
        region: Some(t.region.clone()),
        force_path_style: true,
        access_key_id: Some(t.key_id.clone()),
        secret_access_key: Some(t.secret.clone()),
        ..StorageConfig::local("s3", "")
    }
}

fn garage_key(i: u64) -> String {
    format!("objects/{:03}/obj-{i:08}.dat", i % 251)
}

/// Run `f(i)` for every i in 0..n with `concurrency` in flight; objects/s and the CPU seconds this process used.
/// Fails on the first error.
async fn raw_loop<F, Fut>(n: u64, concurrency: usize, rate: Option<u32>, f: F) -> Result<(f64, Cpu)>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    use futures::StreamExt;
    let (t0, cpu0) = (Instant::now(), Cpu::of_self());
    // Paced: the i-th request starts no earlier than i/rate seconds in.
    let starts = futures::stream::iter(0..n).then(|i| async move {
        if let Some(r) = rate {
            tokio::time::sleep_until((t0 + Duration::from_secs_f64(i as f64 / f64::from(r))).into()).await;
        }
        i
    });
    let mut s = std::pin::pin!(starts.map(f).buffer_unordered(concurrency.max(1)));
    while let Some(r) = s.next().await {
        r?;
    }
    Ok((n as f64 / t0.elapsed().as_secs_f64().max(1e-6), Cpu::of_self() - cpu0))
}

/// One job's figures.
struct JobRun {
    /// In Active: the tasks (ElapsedTimeInActiveSeconds, to the millisecond).
    tasks_s: f64,
    /// Created → Complete (prepare, tasks, report).
    whole_s: f64,
    /// Created → Active.
    prepare_s: f64,
    /// Out of Active → Complete (the report).
    report_s: f64,
    /// The CPU this process used over the whole job.
    cpu: Cpu,
}

/// Run a job to Complete and time it by the job's own record: when it was created, entered Active (read while it
/// is Active), how long it was Active and when it ended. The job is looked at every 10 ms until it is Active, then
/// every 100 ms: the times do not depend on how often it is looked at, and the looking, charged to s3batch's CPU,
/// stays a few dozen statements a job.
async fn run_job(
    service: &JobService,
    operation: serde_json::Value,
    manifest: &str,
    n: u64,
    rate: Option<u32>,
) -> Result<JobRun> {
    let mut spec = serde_json::json!({
        "Operation": operation,
        "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                     "Location": {"ObjectArn": format!("arn:aws:s3:::bench-manifests/{manifest}")}},
        "Report": {"Enabled": true, "Bucket": "arn:aws:s3:::bench-reports", "Format": "Report_CSV_20180820",
                   "ReportScope": "AllTasks"},
        "Priority": 1,
        "ConfirmationRequired": false,
    });
    if let Some(r) = rate {
        spec["RateLimit"] = r.into();
    }
    let spec: JobSpec = serde_json::from_value(spec)?;
    let (t0, cpu0) = (Instant::now(), Cpu::of_self());
    let job = service.create("123456789012", None, spec).await?;
    let mut active_since = None;
    let done = loop {
        let j = service.describe("123456789012", &job.id).await?;
        if active_since.is_none() {
            active_since = j.active_since;
        }
        if j.status.is_terminal() {
            break j;
        }
        if t0.elapsed() > Duration::from_secs(3600) {
            bail!("the job did not finish within an hour");
        }
        let pause = if active_since.is_some() { 100 } else { 10 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    };
    let cpu = Cpu::of_self() - cpu0;
    if done.status != JobStatus::Complete || done.succeeded as u64 != n {
        bail!("the job ended {} with {} succeeded, {} failed", done.status, done.succeeded, done.failed);
    }
    let ended = done.terminated_at.context("a Complete job without its end time")?;
    let secs = |ms: i64| ms.max(0) as f64 / 1000.0;
    let whole_s = secs(ended - done.created_at).max(1e-3);
    let tasks_s = secs(done.active_ms).max(1e-3);
    // Entered Active and left it within one look (a job of a few objects): what is not Active is all preparing.
    let prepare_s = active_since.map_or(whole_s - tasks_s, |a| secs(a - done.created_at));
    Ok(JobRun { tasks_s, whole_s, prepare_s, report_s: (whole_s - tasks_s - prepare_s).max(0.0), cpu })
}

async fn garage(args: GarageArgs) -> Result<()> {
    if args.objects == 0 || args.concurrency.is_empty() || args.concurrency.contains(&0) {
        bail!("--objects and --concurrency: at least 1");
    }
    if args.operations.contains(&GarageOperation::Delete) && !args.operations.contains(&GarageOperation::Copy) {
        bail!("--operations delete needs copy too: the delete round deletes the copies the copy round made");
    }
    if args.rate.is_some()
        && (args.tools.is_empty() || args.tools.iter().any(|t| !matches!(t, Tool::S3batch | Tool::RawSdk)))
    {
        bail!("--rate paces s3batch and the raw SDK loop only: give --tools s3batch,raw-sdk (or one of them)");
    }
    let (proc, target) = match &args.endpoint {
        Some(e) => (
            None,
            S3Target {
                endpoint: e.clone(),
                region: args.region.clone(),
                key_id: args.access_key_id.clone().unwrap_or_default(),
                secret: args.secret_access_key.clone().unwrap_or_default(),
            },
        ),
        None => {
            let script = garage_script(args.garage_script.as_ref())?;
            let (p, t) = start_garage(&script).await?;
            (Some(p), t)
        }
    };
    // On a worker thread of the runtime, as a server's work is: the raw loops' futures run where the SDK's
    // connections do. Run in `main`'s own thread instead (as `#[tokio::main]` runs a loop written there), a raw
    // loop paid about 40 µs of client CPU more per copy, in wake-ups between that thread and the workers.
    let r = tokio::spawn(async move { garage_rounds(&args, &target).await }).await.context("the bench's rounds")?;
    drop(proc); // Garage stops here, whatever the result
    r
}

/// The tools a round runs, each into its own destination bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Tool {
    /// s3batch jobs (S3PutObjectCopy, then S3DeleteObject through DeleteObjects, then S3PutObjectTagging of the
    /// source objects).
    S3batch,
    /// aws-sdk-s3: one CopyObject, one DeleteObject, one PutObjectTagging per key.
    #[value(name = "raw-sdk")]
    RawSdk,
    /// aws-sdk-s3: DeleteObjects of 1,000 keys a request (its copies are made, not measured).
    #[value(name = "raw-batch")]
    RawBatch,
    /// `s5cmd cp 's3://src/*' s3://dst/`, `s5cmd rm 's3://dst/*'`.
    S5cmd,
    /// `rclone copy`, `rclone delete`.
    Rclone,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::S3batch => "s3batch",
            Tool::RawSdk => "raw SDK loop",
            Tool::RawBatch => "raw DeleteObjects loop",
            Tool::S5cmd => "s5cmd",
            Tool::Rclone => "rclone",
        }
    }

    /// The program a peer runs; s3batch and the raw loops run in this process.
    fn program(self) -> Option<&'static str> {
        match self {
            Tool::S5cmd => Some("s5cmd"),
            Tool::Rclone => Some("rclone"),
            Tool::S3batch | Tool::RawSdk | Tool::RawBatch => None,
        }
    }

    fn bucket(self) -> &'static str {
        match self {
            Tool::S3batch => GARAGE_DST_BATCH,
            Tool::RawSdk => GARAGE_DST_RAW,
            Tool::RawBatch => GARAGE_DST_RAW_BATCH,
            Tool::S5cmd => GARAGE_DST_S5CMD,
            Tool::Rclone => GARAGE_DST_RCLONE,
        }
    }
}

/// The tools to run: the ones asked for, each of which must be installed, or else all, the peers when installed.
fn chosen_tools(asked: &[Tool]) -> Result<Vec<Tool>> {
    if asked.is_empty() {
        let mut tools = Vec::new();
        for tool in [Tool::S3batch, Tool::RawSdk, Tool::RawBatch, Tool::S5cmd, Tool::Rclone] {
            match tool.program() {
                Some(p) if !installed(p) => println!("{p} is not installed: its rows are left out"),
                _ => tools.push(tool),
            }
        }
        return Ok(tools);
    }
    let mut tools = Vec::new();
    for &tool in asked {
        if let Some(p) = tool.program()
            && !installed(p)
        {
            bail!("--tools {p}: {p} is not installed (no `{p}` on PATH that answers `{p} version`)");
        }
        if !tools.contains(&tool) {
            tools.push(tool);
        }
    }
    Ok(tools)
}

/// Whether a program is on PATH (it answers `version`, as s5cmd and rclone both do).
fn installed(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Run a peer's command to the end: objects/s over `n` objects and its CPU seconds. Fails if it fails.
async fn run_peer(mut cmd: tokio::process::Command, n: u64) -> Result<(f64, Cpu)> {
    let what = format!("{:?}", cmd.as_std());
    let (t0, cpu0) = (Instant::now(), Cpu::of_children());
    let out = cmd.stdin(std::process::Stdio::null()).output().await.with_context(|| format!("running {what}"))?;
    let secs = t0.elapsed().as_secs_f64().max(1e-6);
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).lines().take(5).collect::<Vec<_>>().join(" / ")
        );
    }
    Ok((n as f64 / secs, Cpu::of_children() - cpu0))
}

fn s5cmd(target: &S3Target, c: usize, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("s5cmd");
    cmd.env("AWS_ACCESS_KEY_ID", &target.key_id)
        .env("AWS_SECRET_ACCESS_KEY", &target.secret)
        .env("AWS_REGION", &target.region)
        .args(["--endpoint-url", &target.endpoint, "--numworkers", &c.to_string()])
        .args(args)
        .stdout(std::process::Stdio::null());
    cmd
}

fn rclone(target: &S3Target, c: usize, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("rclone");
    // rclone 1.60 fails to load a custom CA bundle into its own HTTP transport, even for a plain-HTTP endpoint.
    cmd.env_remove("AWS_CA_BUNDLE")
        .env("RCLONE_CONFIG_BENCH_TYPE", "s3")
        .env("RCLONE_CONFIG_BENCH_PROVIDER", "Other")
        .env("RCLONE_CONFIG_BENCH_ENV_AUTH", "false")
        .env("RCLONE_CONFIG_BENCH_ACCESS_KEY_ID", &target.key_id)
        .env("RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY", &target.secret)
        .env("RCLONE_CONFIG_BENCH_REGION", &target.region)
        .env("RCLONE_CONFIG_BENCH_ENDPOINT", &target.endpoint)
        .env("RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE", "true")
        .args(args)
        .args(["--transfers", &c.to_string(), "--checkers", &c.to_string()])
        .stdout(std::process::Stdio::null());
    cmd
}

/// The median of some figures (the lower middle of an even count).
fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[(v.len() - 1) / 2]
}

/// One tool's figures for one operation, a sample a round: objects/s and client CPU.
#[derive(Debug, Default, Clone)]
struct Samples {
    rate: Vec<f64>,
    cpu: Vec<Cpu>,
}

impl Samples {
    fn push(&mut self, (rate, cpu): (f64, Cpu)) {
        self.rate.push(rate);
        self.cpu.push(cpu);
    }
}

/// What a round does, in order: copy the source objects, delete the copies, tag the source objects.
const GARAGE_OPERATIONS: [&str; 3] = ["S3PutObjectCopy", "S3DeleteObject", "S3PutObjectTagging"];
/// The tag key the tagging round sets; its value names the tool, so the check after it sees who wrote it.
const BENCH_TAG: &str = "bench";

/// Every figure of one concurrency, over the rounds.
#[derive(Default)]
struct Figures {
    /// s3batch jobs: copy, delete, tagging.
    jobs: [Vec<JobRun>; 3],
    /// (tool, operation index) → samples; operations as in [`GARAGE_OPERATIONS`].
    peers: std::collections::BTreeMap<(usize, usize), Samples>,
}

/// Whether the store tags objects: one PutObjectTagging of the first source object. `NotImplemented` is a no;
/// any other error fails the bench.
async fn tags_objects(client: &aws_sdk_s3::Client) -> Result<bool> {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    match client
        .put_object_tagging()
        .bucket(GARAGE_SRC)
        .key(garage_key(0))
        .tagging(bench_tagging(Tool::RawSdk))
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some("NotImplemented") => Ok(false),
        Err(e) => Err(anyhow::Error::new(e).context("PutObjectTagging")),
    }
}

/// The tag set the tagging round gives every object when `tool` runs it.
/// The one tag a tool's tagging round puts on every object: `bench` = the tool's name.
fn bench_tagging(tool: Tool) -> aws_sdk_s3::types::Tagging {
    let tag = aws_sdk_s3::types::Tag::builder().key(BENCH_TAG).value(tool.name()).build().expect("key and value set");
    aws_sdk_s3::types::Tagging::builder().tag_set(tag).build().expect("a tag set")
}

async fn garage_rounds(args: &GarageArgs, target: &S3Target) -> Result<()> {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    use aws_sdk_s3::primitives::ByteStream;
    let s3cfg = s3_storage_config(target);
    let client = user_client(target);
    if args.endpoint.is_some() {
        for b in GARAGE_BUCKETS {
            match client.create_bucket().bucket(*b).send().await {
                Ok(_) => {}
                Err(e) if matches!(e.code(), Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")) => {}
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!(
                        "CreateBucket {b} at {} (region {}): check --region and the credentials",
                        target.endpoint, target.region
                    )));
                }
            }
        }
    }
    let tools = chosen_tools(&args.tools)?;
    let asked = |o: GarageOperation| args.operations.is_empty() || args.operations.contains(&o);
    let n = args.objects;
    let fill_c = args.concurrency.iter().copied().max().unwrap_or(64).max(64);
    println!(
        "s3batch bench garage: {n} objects of {} B at {}, creating them ({fill_c} in flight)…",
        args.object_size, target.endpoint
    );
    let body = vec![b'x'; args.object_size];
    let (put_rate, _) = raw_loop(n, fill_c, None, |i| {
        let (client, body) = (client.clone(), body.clone());
        async move {
            client
                .put_object()
                .bucket(GARAGE_SRC)
                .key(garage_key(i))
                .body(ByteStream::from(body))
                .send()
                .await
                .with_context(|| format!("PutObject {}", garage_key(i)))?;
            Ok(())
        }
    })
    .await?;
    println!("created at {put_rate:.0} objects/s");
    let mut operations: Vec<usize> = [GarageOperation::Copy, GarageOperation::Delete, GarageOperation::Tagging]
        .into_iter()
        .enumerate()
        .filter(|(_, o)| asked(*o))
        .map(|(i, _)| i)
        .collect();
    // Garage has no object tagging (it answers NotImplemented): the tagging round needs a store that has it.
    if asked(GarageOperation::Tagging) && !tags_objects(&client).await? {
        println!(
            "the store does not implement PutObjectTagging (Garage does not): the tagging rows are left out; \
             measure them with --endpoint of a store that has it"
        );
        operations.retain(|&op| op != 2);
    }
    if operations.is_empty() {
        bail!("--operations tagging: the store does not tag objects, so there is nothing to measure");
    }

    let dir = tempfile::tempdir()?;
    let mdir = dir.path().join("objects/bench-manifests");
    std::fs::create_dir_all(&mdir)?;
    std::fs::create_dir_all(dir.path().join("objects/bench-reports"))?;
    for (name, bucket) in [("copy.csv", GARAGE_SRC), ("delete.csv", GARAGE_DST_BATCH)] {
        let mut w = std::io::BufWriter::new(std::fs::File::create(mdir.join(name))?);
        for i in 0..n {
            writeln!(w, "{bucket},{}", garage_key(i))?;
        }
        w.flush()?;
    }

    let rounds = args.rounds.max(1);
    for &c in &args.concurrency {
        let data = tempfile::tempdir()?;
        let mut config = Config::default();
        config.server.data_dir = data.path().to_path_buf();
        config.engine.concurrency = c;
        config.engine.tick_ms = 50;
        let mut local = StorageConfig::local("disk", dir.path().join("objects"));
        local.buckets = vec!["bench-manifests".into(), "bench-reports".into()];
        config.storage = vec![local, s3cfg.clone()];
        let parts = serve::build(&config, "bench").await?;
        let shutdown = CancellationToken::new();
        let engine = tokio::spawn(parts.engine.clone().run(shutdown.clone()));

        let mut figures = Figures::default();
        for round in 0..rounds {
            let mut order = tools.clone();
            order.rotate_left(round % tools.len());
            let names: Vec<&str> = order.iter().map(|t| t.name()).collect();
            println!("concurrency {c}{}, round {}/{rounds}: {}", paced(args.rate), round + 1, names.join(", "));
            for &op in &operations {
                for &tool in &order {
                    let ti = tools.iter().position(|t| *t == tool).unwrap_or(0);
                    let dst = tool.bucket();
                    let sample = match (tool, op) {
                        (Tool::S3batch, 0) => {
                            let op = serde_json::json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{dst}")}});
                            figures.jobs[0].push(run_job(&parts.service, op, "copy.csv", n, args.rate).await?);
                            None
                        }
                        (Tool::S3batch, 1) => {
                            let op = serde_json::json!({"S3DeleteObject": {}});
                            figures.jobs[1].push(run_job(&parts.service, op, "delete.csv", n, args.rate).await?);
                            None
                        }
                        (Tool::S3batch, _) => {
                            let tags = serde_json::json!([{"Key": BENCH_TAG, "Value": tool.name()}]);
                            let op = serde_json::json!({"S3PutObjectTagging": {"TagSet": tags}});
                            figures.jobs[2].push(run_job(&parts.service, op, "copy.csv", n, args.rate).await?);
                            None
                        }
                        (Tool::RawSdk | Tool::RawBatch, 0) => {
                            let copied = raw_loop(n, c, args.rate, |i| {
                                let client = client.clone();
                                async move {
                                    let key = garage_key(i);
                                    client
                                        .copy_object()
                                        .bucket(dst)
                                        .key(&key)
                                        .copy_source(format!("{GARAGE_SRC}/{key}"))
                                        .send()
                                        .await
                                        .with_context(|| format!("CopyObject {key}"))?;
                                    Ok(())
                                }
                            })
                            .await?;
                            // The DeleteObjects loop's copies only give it something to delete.
                            (tool == Tool::RawSdk).then_some(copied)
                        }
                        (Tool::RawSdk, 2) => Some(
                            raw_loop(n, c, args.rate, |i| {
                                let client = client.clone();
                                async move {
                                    let key = garage_key(i);
                                    client
                                        .put_object_tagging()
                                        .bucket(GARAGE_SRC)
                                        .key(&key)
                                        .tagging(bench_tagging(tool))
                                        .send()
                                        .await
                                        .with_context(|| format!("PutObjectTagging {key}"))?;
                                    Ok(())
                                }
                            })
                            .await?,
                        ),
                        // Only s3batch and the raw loop tag: s5cmd and rclone have no tagging command.
                        (_, 2) => continue,
                        (Tool::RawSdk, _) => Some(
                            raw_loop(n, c, args.rate, |i| {
                                let client = client.clone();
                                async move {
                                    let key = garage_key(i);
                                    client
                                        .delete_object()
                                        .bucket(dst)
                                        .key(&key)
                                        .send()
                                        .await
                                        .with_context(|| format!("DeleteObject {key}"))?;
                                    Ok(())
                                }
                            })
                            .await?,
                        ),
                        (Tool::RawBatch, _) => Some(raw_delete_objects_loop(&client, dst, n, c).await?),
                        (Tool::S5cmd, 0) => {
                            let (from, to) = (format!("s3://{GARAGE_SRC}/*"), format!("s3://{dst}/"));
                            Some(run_peer(s5cmd(target, c, &["cp", &from, &to]), n).await?)
                        }
                        (Tool::S5cmd, _) => {
                            let all = format!("s3://{dst}/*");
                            Some(run_peer(s5cmd(target, c, &["rm", &all]), n).await?)
                        }
                        (Tool::Rclone, 0) => {
                            let (from, to) = (format!("bench:{GARAGE_SRC}"), format!("bench:{dst}"));
                            Some(run_peer(rclone(target, c, &["copy", &from, &to]), n).await?)
                        }
                        (Tool::Rclone, _) => {
                            let all = format!("bench:{dst}");
                            Some(run_peer(rclone(target, c, &["delete", &all]), n).await?)
                        }
                    };
                    if let Some(sample) = sample {
                        figures.peers.entry((ti, op)).or_default().push(sample);
                    }
                    if op == 2 {
                        // The first, a middle and the last object carry this tool's tag.
                        for i in [0, n / 2, n - 1] {
                            let key = garage_key(i);
                            let got = client.get_object_tagging().bucket(GARAGE_SRC).key(&key).send().await?;
                            if got.tag_set() != bench_tagging(tool).tag_set() {
                                bail!("{} left {key} tagged {:?}", tool.name(), got.tag_set());
                            }
                        }
                        continue;
                    }
                    // Every tool did the whole job: all copied, or nothing left.
                    let listed = client.list_objects_v2().bucket(dst).max_keys(1000).send().await?;
                    let left = listed.key_count().unwrap_or(0) as u64;
                    let want = if op == 0 { n.min(1000) } else { 0 };
                    if left != want {
                        bail!("{} left {left} objects in {dst} after the {}", tool.name(), ["copy", "delete"][op]);
                    }
                }
            }
        }
        shutdown.cancel();
        engine.await?;
        print_garage_table(&tools, &figures, n, (c, args.rate), rounds, &config);
    }
    Ok(())
}

/// DeleteObjects of 1,000 keys a request over `garage_key(0..n)` in `bucket`, `concurrency` requests in flight:
/// objects/s and CPU seconds. Fails on any key's error.
async fn raw_delete_objects_loop(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    n: u64,
    concurrency: usize,
) -> Result<(f64, Cpu)> {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let (t0, cpu0) = (Instant::now(), Cpu::of_self());
    let batches = n.div_ceil(1000);
    let mut s = futures::stream::iter(0..batches)
        .map(|b| {
            let client = client.clone();
            async move {
                let objects = (b * 1000..((b + 1) * 1000).min(n))
                    .map(|i| ObjectIdentifier::builder().key(garage_key(i)).build())
                    .collect::<Result<Vec<_>, _>>()?;
                let delete = Delete::builder().set_objects(Some(objects)).quiet(false).build()?;
                let out =
                    client.delete_objects().bucket(bucket).delete(delete).send().await.context("DeleteObjects")?;
                if let Some(e) = out.errors().first() {
                    bail!("DeleteObjects: {:?} {:?} {:?}", e.key(), e.code(), e.message());
                }
                Ok(())
            }
        })
        .buffer_unordered(concurrency.max(1));
    while let Some(r) = s.next().await {
        r?;
    }
    Ok((n as f64 / t0.elapsed().as_secs_f64().max(1e-6), Cpu::of_self() - cpu0))
}

/// A figure and its unit, right-aligned in `width`; a dash where there is none (the tool that gives it did not run,
/// or it divides by nothing).
fn figure(x: f64, width: usize, decimals: usize, unit: &str) -> String {
    let text = if x.is_finite() { format!("{x:.decimals$}{unit}") } else { "–".to_string() };
    format!("{text:>width$}")
}

/// How a run was paced (`--rate`), for its headings.
fn paced(rate: Option<u32>) -> String {
    rate.map(|r| format!(", paced to {r} objects/s")).unwrap_or_default()
}

fn print_garage_table(
    tools: &[Tool],
    f: &Figures,
    n: u64,
    (c, rate): (usize, Option<u32>),
    rounds: usize,
    config: &Config,
) {
    let per_k = |cpu_s: f64| cpu_s * 1e6 / n as f64;
    let ran = |op: usize| !f.jobs[op].is_empty() || f.peers.keys().any(|(_, o)| *o == op);
    println!();
    println!(
        "concurrency {c}{} ({n} objects, medians of {rounds} round(s); s3batch: chunks of {}, {} in flight)",
        paced(rate),
        config.engine.chunk_size,
        config.engine.chunks_in_flight
    );
    // s3batch's jobs: tasks/s and job/s against the raw SDK loop.
    let raw = tools.iter().position(|t| *t == Tool::RawSdk);
    let mut s3batch = [(f64::NAN, f64::NAN); GARAGE_OPERATIONS.len()];
    if tools.contains(&Tool::S3batch) {
        println!(
            "{:<18}  {:>14}  {:>14}  {:>10}  {:>11}  {:>11}  {:>9}  {:>8}  {:>17}  {:>13}",
            "operation",
            "s3batch tasks/s",
            "s3batch job/s",
            "raw SDK/s",
            "ratio tasks",
            "ratio job",
            "prepare s",
            "report s",
            "CPU ms/1k s3batch",
            "CPU ms/1k raw"
        );
    }
    for (op, name) in GARAGE_OPERATIONS.into_iter().enumerate().filter(|(op, _)| !f.jobs[*op].is_empty()) {
        let jobs = &f.jobs[op];
        let tasks = median(jobs.iter().map(|j| n as f64 / j.tasks_s).collect());
        let whole = median(jobs.iter().map(|j| n as f64 / j.whole_s).collect());
        s3batch[op] = (tasks, whole);
        let peer = raw.and_then(|r| f.peers.get(&(r, op))).cloned().unwrap_or_default();
        let raw_rate = median(peer.rate);
        let raw_cpu = median(peer.cpu.iter().map(Cpu::total_s).collect());
        println!(
            "{:<18}  {:>14.0}  {:>14.0}  {}  {}  {}  {:>9.2}  {:>8.2}  {:>17.0}  {}",
            name,
            tasks,
            whole,
            figure(raw_rate, 10, 0, ""),
            figure(tasks / raw_rate * 100.0, 11, 1, "%"),
            figure(whole / raw_rate * 100.0, 11, 1, "%"),
            median(jobs.iter().map(|j| j.prepare_s).collect()),
            median(jobs.iter().map(|j| j.report_s).collect()),
            per_k(median(jobs.iter().map(|j| j.cpu.total_s()).collect())),
            figure(per_k(raw_cpu), 13, 0, ""),
        );
    }
    println!();
    println!(
        "every tool, same round, same store (medians; CPU: user + system, of it system; switches: context switches \
         of this process's threads per object; ratio: s3batch's objects/s ÷ the tool's)"
    );
    println!(
        "{:<18}  {:<22}  {:>10}  {:>13}  {:>10}  {:>12}  {:>13}  {:>15}",
        "operation",
        "tool",
        "objects/s",
        "CPU ms/1k obj",
        "of it sys",
        "switches/obj",
        "s3batch job ÷",
        "s3batch tasks ÷"
    );
    let row = |op: &str, tool: &str, rate: f64, cpu: &[Cpu], ratios: (f64, f64)| {
        let med = |g: fn(&Cpu) -> f64| median(cpu.iter().map(g).collect());
        println!(
            "{:<18}  {:<22}  {:>10.0}  {:>13.0}  {:>10.0}  {}  {}  {}",
            op,
            tool,
            rate,
            per_k(med(Cpu::total_s)),
            per_k(med(|c| c.sys_s)),
            figure(med(|c| c.switches) / n as f64, 12, 2, ""),
            figure(ratios.0, 13, 2, "×"),
            figure(ratios.1, 15, 2, "×"),
        );
    };
    for (op, name) in GARAGE_OPERATIONS.into_iter().enumerate().filter(|(op, _)| ran(*op)) {
        let (tasks, whole) = s3batch[op];
        let mut first = name;
        if !f.jobs[op].is_empty() {
            let cpu: Vec<Cpu> = f.jobs[op].iter().map(|j| j.cpu).collect();
            row(first, "s3batch job", whole, &cpu, (f64::NAN, f64::NAN));
            first = "";
        }
        for (ti, tool) in tools.iter().enumerate() {
            let Some(p) = f.peers.get(&(ti, op)) else { continue };
            let rate = median(p.rate.clone());
            row(first, tool.name(), rate, &p.cpu, (whole / rate, tasks / rate));
            first = "";
        }
    }
    print_paired_ratios(tools, f, n, rounds);
}

/// s3batch's job against each tool round by round: the ratios of figures measured minutes apart in one round, so
/// less moved by a store or a machine whose speed drifts between rounds than the ratio of two medians.
fn print_paired_ratios(tools: &[Tool], f: &Figures, n: u64, rounds: usize) {
    if rounds < 2 || !tools.contains(&Tool::S3batch) {
        return;
    }
    // A ratio of CPU times either of which rounds to nothing (a few objects' CPU, counted in clock ticks of
    // /proc/self/stat) is shown as a dash and left out of the median.
    let list = |v: &[f64]| v.iter().map(|&x| figure(x, 0, 2, "")).collect::<Vec<_>>().join(" ");
    let mid = |v: &[f64]| figure(median(v.iter().copied().filter(|x| x.is_finite()).collect()), 0, 2, "×");
    println!();
    println!(
        "s3batch job ÷ tool, round by round (objects/s, then client CPU per object; below 1× CPU is less CPU than the \
         tool's); median of the rounds' ratios"
    );
    for (op, name) in GARAGE_OPERATIONS.into_iter().enumerate() {
        let jobs = &f.jobs[op];
        for (ti, tool) in tools.iter().enumerate() {
            let Some(p) = f.peers.get(&(ti, op)) else { continue };
            let pairs = jobs.len().min(p.rate.len());
            if pairs == 0 {
                continue;
            }
            let rate: Vec<f64> = (0..pairs).map(|i| n as f64 / jobs[i].whole_s / p.rate[i]).collect();
            let cpu_ratio = |a: f64, b: f64| if a > 0.0 && b > 0.0 { a / b } else { f64::NAN };
            let cpu: Vec<f64> = (0..pairs).map(|i| cpu_ratio(jobs[i].cpu.total_s(), p.cpu[i].total_s())).collect();
            println!(
                "{name:<18}  {:<22}  rate {} (median {})   CPU {} (median {})",
                tool.name(),
                list(&rate),
                mid(&rate),
                list(&cpu),
                mid(&cpu),
            );
        }
    }
}
