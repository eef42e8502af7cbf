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
use s3batch_core::{JobSpec, JobStatus};
use s3batch_engine::CancellationToken;
use s3batch_engine::service::JobService;
use s3batch_storage::StorageConfig;
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
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchMode {
    /// The same job with 1, 2, 3, … `s3batch worker` processes on one PostgreSQL database: tasks/s, and the ratio
    /// to one worker. Use a scratch database: its jobs table gets the bench's jobs (removed afterwards).
    Fleet(FleetArgs),
    /// S3PutObjectCopy and S3DeleteObject jobs against a real S3 server (a single-node Garage started for the
    /// run, or `--endpoint`), each next to a raw aws-sdk-s3 loop doing the same requests at the same
    /// concurrency: objects/s of both and their ratio.
    Garage(GarageArgs),
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

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[arg(long)]
    pub lines: u64,
    #[arg(long)]
    pub concurrency: usize,
    #[arg(long)]
    pub latency_ms: u64,
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
}

pub async fn run(args: BenchArgs) -> Result<()> {
    match args.mode {
        Some(BenchMode::Fleet(f)) => return fleet(f).await,
        Some(BenchMode::Garage(g)) => return garage(g).await,
        None => {}
    }
    let exe = std::env::current_exe()?;
    println!(
        "s3batch bench: S3PutObjectTagging on the memory backend, concurrency {}, latency {} ms",
        args.concurrency, args.latency_ms
    );
    println!(
        "{:>10}  {:>10}  {:>10}  {:>12}  {:>13}  {:>9}",
        "lines", "prepare s", "run s", "tasks/s", "peak RSS MiB", "status"
    );
    let mut results = Vec::new();
    for n in &args.lines {
        let out = tokio::process::Command::new(&exe)
            .args(["bench-run", "--lines", &n.to_string(), "--concurrency", &args.concurrency.to_string()])
            .args(["--latency-ms", &args.latency_ms.to_string()])
            .stderr(std::process::Stdio::inherit())
            .output()
            .await?;
        if !out.status.success() {
            bail!("the {n}-line run failed");
        }
        let m: Measured = serde_json::from_slice(&out.stdout).context("reading the child's figures")?;
        println!(
            "{:>10}  {:>10.2}  {:>10.2}  {:>12.0}  {:>13.1}  {:>9}",
            m.lines, m.prepare_s, m.run_s, m.tasks_per_s, m.peak_rss_mib, m.status
        );
        if m.status != "Complete" || m.succeeded as u64 != m.lines {
            bail!("the {n}-line job ended {} with {} succeeded, {} failed", m.status, m.succeeded, m.failed);
        }
        results.push(m);
    }
    if let (Some(a), Some(b)) = (results.first(), results.last())
        && results.len() > 1
    {
        println!(
            "peak RSS {:.1} MiB at {} lines, {:.1} MiB at {} lines ({:+.1}%)",
            a.peak_rss_mib,
            a.lines,
            b.peak_rss_mib,
            b.lines,
            (b.peak_rss_mib / a.peak_rss_mib - 1.0) * 100.0
        );
    }
    Ok(())
}

/// One size, in this (child) process; prints its figures as JSON on stdout.
pub async fn run_child(args: RunArgs) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::default();
    config.server.data_dir = dir.path().to_path_buf();
    config.engine.concurrency = args.concurrency;
    config.engine.tick_ms = 50;
    let mut local = StorageConfig::local("disk", dir.path().join("objects"));
    local.buckets = vec!["bench-manifests".into(), "bench-reports".into()];
    let mut mem = StorageConfig::memory("mem");
    mem.virtual_objects = true;
    mem.latency_ms = args.latency_ms;
    config.storage = vec![local, mem];

    // The manifest is streamed to disk, never held in memory.
    let mdir = dir.path().join("objects/bench-manifests");
    std::fs::create_dir_all(&mdir)?;
    std::fs::create_dir_all(dir.path().join("objects/bench-reports"))?;
    let path: PathBuf = mdir.join("manifest.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path)?);
    for i in 0..args.lines {
        writeln!(w, "bench-data,objects/{:02}/key%20{i}.dat", i % 97)?;
    }
    w.flush()?;
    drop(w);

    let parts = serve::build(&config, "bench").await?;
    let shutdown = CancellationToken::new();
    let engine = tokio::spawn(parts.engine.clone().run(shutdown.clone()));
    let spec: JobSpec = serde_json::from_value(serde_json::json!({
        "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "bench", "Value": "1"}]}},
        "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                     "Location": {"ObjectArn": "arn:aws:s3:::bench-manifests/manifest.csv"}},
        "Report": {"Enabled": true, "Bucket": "arn:aws:s3:::bench-reports", "Format": "Report_CSV_20180820",
                   "ReportScope": "AllTasks"},
        "Priority": 1,
        "ConfirmationRequired": false,
    }))?;
    let t0 = Instant::now();
    let job = parts.service.create("123456789012", None, spec).await?;
    let mut prepared_at = None;
    let mut active_at = None;
    let done = loop {
        let j = parts.service.describe("123456789012", &job.id).await?;
        if prepared_at.is_none() && !matches!(j.status, JobStatus::New | JobStatus::Preparing) {
            prepared_at = Some(t0.elapsed());
        }
        if active_at.is_none() && j.status == JobStatus::Active {
            active_at = Some(t0.elapsed());
        }
        if j.status.is_terminal() {
            break j;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let total = t0.elapsed();
    shutdown.cancel();
    engine.await?;
    let prepare = prepared_at.unwrap_or(total);
    let run = total - active_at.unwrap_or(prepare);
    let m = Measured {
        lines: args.lines,
        prepare_s: prepare.as_secs_f64(),
        run_s: run.as_secs_f64(),
        tasks_per_s: (done.succeeded + done.failed) as f64 / run.as_secs_f64().max(1e-3),
        peak_rss_mib: peak_rss_kib()? as f64 / 1024.0,
        status: done.status.to_string(),
        succeeded: done.succeeded,
        failed: done.failed,
    };
    println!("{}", serde_json::to_string(&m)?);
    Ok(())
}

/// VmHWM: this process's peak resident set, in KiB.
fn peak_rss_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/self/status")
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

/// User + system CPU seconds of a process so far, from /proc/<pid>/stat (clock ticks of 1/100 s).
fn process_cpu_s(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("no ')' in stat")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based over the whole line).
    let ticks: f64 =
        f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0) + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    Ok(ticks / 100.0)
}

// ---------------------------------------------------------------------------------------------------------------
// Garage: s3batch against a raw SDK loop on a real S3 server

const GARAGE_SRC: &str = "bench-src";
const GARAGE_DST_BATCH: &str = "bench-dst-batch";
const GARAGE_DST_RAW: &str = "bench-dst-raw";

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
        .args([GARAGE_SRC, GARAGE_DST_BATCH, GARAGE_DST_RAW])
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
async fn raw_loop<F, Fut>(n: u64, concurrency: usize, f: F) -> Result<(f64, f64)>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    use futures::StreamExt;
    let (t0, cpu0) = (Instant::now(), self_cpu_s());
    let mut s = futures::stream::iter(0..n).map(f).buffer_unordered(concurrency.max(1));
    while let Some(r) = s.next().await {
        r?;
    }
    Ok((n as f64 / t0.elapsed().as_secs_f64().max(1e-6), self_cpu_s() - cpu0))
}

/// One job's figures.
struct JobRun {
    /// Active → every task counted.
    tasks_s: f64,
    /// Created → Complete (prepare, tasks, report).
    whole_s: f64,
    /// Created → Active.
    prepare_s: f64,
    /// Every task counted → Complete.
    report_s: f64,
    /// CPU seconds this process used over the whole job.
    cpu_s: f64,
}

/// CPU seconds this process has used so far.
fn self_cpu_s() -> f64 {
    process_cpu_s(std::process::id()).unwrap_or(0.0)
}

async fn run_job(service: &JobService, operation: serde_json::Value, manifest: &str, n: u64) -> Result<JobRun> {
    let spec: JobSpec = serde_json::from_value(serde_json::json!({
        "Operation": operation,
        "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                     "Location": {"ObjectArn": format!("arn:aws:s3:::bench-manifests/{manifest}")}},
        "Report": {"Enabled": true, "Bucket": "arn:aws:s3:::bench-reports", "Format": "Report_CSV_20180820",
                   "ReportScope": "AllTasks"},
        "Priority": 1,
        "ConfirmationRequired": false,
    }))?;
    let (t0, cpu0) = (Instant::now(), self_cpu_s());
    let job = service.create("123456789012", None, spec).await?;
    let (mut active_at, mut counted_at) = (None, None);
    let done = loop {
        let j = service.describe("123456789012", &job.id).await?;
        if active_at.is_none() && j.status == JobStatus::Active {
            active_at = Some(t0.elapsed());
        }
        if counted_at.is_none() && j.total_tasks.is_some_and(|t| j.succeeded + j.failed >= t) {
            counted_at = Some(t0.elapsed());
        }
        if j.status.is_terminal() {
            break j;
        }
        if t0.elapsed() > Duration::from_secs(3600) {
            bail!("the job did not finish within an hour");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let total = t0.elapsed();
    if done.status != JobStatus::Complete || done.succeeded as u64 != n {
        bail!("the job ended {} with {} succeeded, {} failed", done.status, done.succeeded, done.failed);
    }
    let active = active_at.unwrap_or_default();
    let counted = counted_at.unwrap_or(total);
    Ok(JobRun {
        tasks_s: (counted - active).as_secs_f64().max(1e-3),
        whole_s: total.as_secs_f64().max(1e-3),
        prepare_s: active.as_secs_f64(),
        report_s: (total - counted).as_secs_f64(),
        cpu_s: self_cpu_s() - cpu0,
    })
}

async fn garage(args: GarageArgs) -> Result<()> {
    if args.objects == 0 || args.concurrency.is_empty() || args.concurrency.contains(&0) {
        bail!("--objects and --concurrency: at least 1");
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
    let r = garage_rounds(&args, &target).await;
    drop(proc); // Garage stops here, whatever the result
    r
}

async fn garage_rounds(args: &GarageArgs, target: &S3Target) -> Result<()> {
    use aws_sdk_s3::primitives::ByteStream;
    let s3cfg = s3_storage_config(target);
    // The raw loops use the very client the s3 backend builds: same settings, same connection pool type.
    let client = s3batch_storage::s3::S3Store::from_config(&s3cfg).map_err(anyhow::Error::msg)?.client().clone();
    if args.endpoint.is_some() {
        for b in [GARAGE_SRC, GARAGE_DST_BATCH, GARAGE_DST_RAW] {
            let _ = client.create_bucket().bucket(b).send().await; // already there is fine
        }
    }
    let n = args.objects;
    let fill_c = args.concurrency.iter().copied().max().unwrap_or(64).max(64);
    println!(
        "s3batch bench garage: {n} objects of {} B at {}, creating them ({fill_c} in flight)…",
        args.object_size, target.endpoint
    );
    let body = vec![b'x'; args.object_size];
    let (put_rate, _) = raw_loop(n, fill_c, |i| {
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

        let copy_job = run_job(
            &parts.service,
            serde_json::json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{GARAGE_DST_BATCH}")}}),
            "copy.csv",
            n,
        )
        .await?;
        let copy_raw = raw_loop(n, c, |i| {
            let client = client.clone();
            async move {
                let key = garage_key(i);
                client
                    .copy_object()
                    .bucket(GARAGE_DST_RAW)
                    .key(&key)
                    .copy_source(format!("{GARAGE_SRC}/{key}"))
                    .send()
                    .await
                    .with_context(|| format!("CopyObject {key}"))?;
                Ok(())
            }
        })
        .await?;
        let del_job = run_job(&parts.service, serde_json::json!({"S3DeleteObject": {}}), "delete.csv", n).await?;
        let del_raw = raw_loop(n, c, |i| {
            let client = client.clone();
            async move {
                let key = garage_key(i);
                client
                    .delete_object()
                    .bucket(GARAGE_DST_RAW)
                    .key(&key)
                    .send()
                    .await
                    .with_context(|| format!("DeleteObject {key}"))?;
                Ok(())
            }
        })
        .await?;
        shutdown.cancel();
        engine.await?;

        println!();
        println!(
            "concurrency {c} ({n} objects; s3batch: chunks of {}, {} in flight)",
            config.engine.chunk_size, config.engine.chunks_in_flight
        );
        println!(
            "{:<16}  {:>14}  {:>14}  {:>10}  {:>11}  {:>11}  {:>9}  {:>8}  {:>17}  {:>13}",
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
        for (name, job, (raw, raw_cpu)) in
            [("S3PutObjectCopy", &copy_job, copy_raw), ("S3DeleteObject", &del_job, del_raw)]
        {
            let tasks = n as f64 / job.tasks_s;
            let whole = n as f64 / job.whole_s;
            println!(
                "{:<16}  {:>14.0}  {:>14.0}  {:>10.0}  {:>10.1}%  {:>10.1}%  {:>9.2}  {:>8.2}  {:>17.0}  {:>13.0}",
                name,
                tasks,
                whole,
                raw,
                tasks / raw * 100.0,
                whole / raw * 100.0,
                job.prepare_s,
                job.report_s,
                job.cpu_s * 1e6 / n as f64,
                raw_cpu * 1e6 / n as f64
            );
        }
    }
    Ok(())
}
