//! `s3batch bench`: the whole pipeline (prepare → schedule → execute → report) on a manifest of N lines, tasks on
//! the in-memory backend, manifest and report on a local directory. Each size runs in its own child process so that
//! its peak RSS is its own. Prints a table.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use s3batch_core::{JobSpec, JobStatus};
use s3batch_engine::CancellationToken;
use s3batch_storage::StorageConfig;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::serve;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
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

    let parts = serve::build(&config).await?;
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
