//! `s3batch`: self-hosted S3 Batch Operations for any S3-compatible storage.

mod bench;
mod client;
mod demo;
mod metrics;
mod progress;
mod report;
mod serve;

use s3batch::config;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use s3batch_api::json::CreateJobBody;
use s3batch_engine::CancellationToken;

#[derive(Debug, Parser)]
#[command(name = "s3batch", version, about = "Self-hosted S3 Batch Operations for any S3-compatible storage")]
struct Cli {
    /// How log lines are written to stderr: `text` (the default) or `json` (one object per line, with the span
    /// fields — job, chunk, worker — of every engine line). Filtering stays `S3BATCH_LOG` (e.g. `info,sqlx=warn`).
    #[arg(long, global = true, value_enum, env = "S3BATCH_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the API and the engine in one process.
    Serve {
        /// TOML config file (default: ./s3batch.toml if present).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
        /// Where the SQLite database and the default local store live (default ./s3batch-data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Job store URL: sqlite://PATH (default sqlite://<data-dir>/s3batch.db) or postgres://… (a fleet).
        #[arg(long)]
        database_url: Option<String>,
        /// Serve the API only: `s3batch worker` processes on the same database run the jobs.
        #[arg(long)]
        no_engine: bool,
    },
    /// Run the engine only (no API): one of any number of processes sharing one database.
    ///
    /// Stops gracefully on SIGTERM or Ctrl-C: claims nothing new, lets tasks in flight finish within
    /// engine.shutdown_grace_ms, gives back the chunks left unfinished and every lease, exits 0.
    Worker {
        /// TOML config file (default: ./s3batch.toml if present). Storage and engine settings as for `serve`.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The job store the fleet shares: postgres://user:password@host/db (or server.database_url).
        #[arg(long)]
        database_url: Option<String>,
        /// Serve `/metrics` (Prometheus), `/healthz` and `/readyz` on this address (off unless set).
        #[arg(long)]
        metrics_listen: Option<String>,
    },
    /// List the processes running an engine on a server's database (id, host, pid, chunks in flight, state).
    Workers {
        #[command(flatten)]
        conn: client::Conn,
    },
    /// List the roles of the caller's account and what each allows (buckets read and written, operations,
    /// functions).
    Roles {
        #[command(flatten)]
        conn: client::Conn,
    },
    /// Create or upgrade the job store's tables (sqlite://PATH or postgres://…).
    Migrate {
        #[arg(long)]
        database_url: String,
    },
    /// The main job on the embedded default, end to end: sample objects, a manifest, a tagging job, a report.
    Demo {
        /// Where the demo's objects, database and report go.
        #[arg(long, default_value = "./s3batch-demo")]
        data_dir: PathBuf,
        /// How many sample objects to create.
        #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        objects: u32,
        /// How many manifest lines name objects that do not exist.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
        missing: u32,
    },
    /// Measure the whole pipeline on the in-memory backend; prints a table.
    Bench(bench::BenchArgs),
    #[command(hide = true)]
    BenchRun(bench::RunArgs),
    /// Manage jobs on a running server.
    Job {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: Box<JobCmd>,
    },
}

// Parsed once per process; boxing the big variant would only complicate the clap derive.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum JobCmd {
    /// Create a job.
    Create {
        /// The operation as JSON (inline or file://path), as `aws s3control create-job --operation` takes it,
        /// e.g. '{"S3PutObjectTagging":{"TagSet":[{"Key":"k","Value":"v"}]}}'.
        #[arg(long)]
        operation: String,
        /// The manifest as JSON (inline or file://path), as `aws s3control create-job --manifest` takes it.
        #[arg(long)]
        manifest: Option<String>,
        /// Shortcut: a CSV manifest (Bucket,Key) at s3://bucket/key.
        #[arg(long)]
        manifest_csv: Option<String>,
        /// The CSV manifest's ETag (checked before the job runs).
        #[arg(long)]
        manifest_etag: Option<String>,
        /// The report as JSON (inline or file://path). Without it and --report-bucket, no report.
        #[arg(long)]
        report: Option<String>,
        /// Shortcut: write the report to this bucket.
        #[arg(long)]
        report_bucket: Option<String>,
        #[arg(long)]
        report_prefix: Option<String>,
        #[arg(long, default_value = "AllTasks", value_parser = ["AllTasks", "FailedTasksOnly"])]
        report_scope: String,
        #[arg(long, default_value_t = 10)]
        priority: i64,
        /// Run without waiting for `job confirm` (AWS's --no-confirmation-required).
        #[arg(long)]
        no_confirmation_required: bool,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        client_request_token: Option<String>,
        /// Extension: tasks per second for the whole job (change it later with `job rate-limit`).
        #[arg(long)]
        rate_limit: Option<i64>,
        /// Extension: check every task (object exists, permission, target reachable) and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// The role the job runs under (arn:aws:iam::<account>:role/<name>): it limits the buckets, operations
        /// and functions the job may touch. Required by a server with accounts; `s3batch roles` lists them.
        #[arg(long)]
        role_arn: Option<String>,
    },
    /// List jobs, newest first.
    List {
        /// Only jobs in these statuses (repeatable).
        #[arg(long = "status")]
        statuses: Vec<String>,
        #[arg(long)]
        max_results: Option<i64>,
        #[arg(long)]
        next_token: Option<String>,
    },
    /// Show a job.
    Describe { id: String },
    /// Confirm a job that waits in Suspended (requestedJobStatus=Ready).
    Confirm {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Cancel a job.
    Cancel {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Pause a Ready or running job (extension): tasks in flight finish, then it stays Paused until resumed.
    Pause {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Resume a job paused with `job pause`.
    Resume {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Change a job's priority.
    Priority { id: String, priority: i64 },
    /// Run the failed tasks of a finished job again, as a new job (linked to the original by RerunOf).
    Rerun { id: String },
    /// Follow a job with a progress bar until it ends.
    Watch { id: String },
    /// Set a job's rate limit (tasks per second for the whole job), or `none` to lift it; running workers take it
    /// within about a second.
    RateLimit {
        id: String,
        /// `N` tasks per second, or `none`.
        limit: String,
    },
    /// Impact preview of a prepared job: tasks, bytes (from a HEAD of a sample), requests, estimated duration.
    Preview { id: String },
    /// A finished job's completion report: a summary (rows, succeeded, failed, failures by error code and HTTP
    /// status with an example key each); with `--output csv` or `--output json` the rows themselves (one JSON
    /// object a line). Reports are streamed file by file: memory stays flat however large they are.
    Report {
        id: String,
        /// Only the failed tasks' rows (in the table output, listed under the summary).
        #[arg(long)]
        failed: bool,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    // A server logs what it does; the demo and the client print their own lines and log only trouble.
    let default = if matches!(cli.command, Command::Serve { .. } | Command::Worker { .. }) {
        "warn,s3batch=info"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("S3BATCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(false).flatten_event(true).init(),
    }
    if let Err(e) = run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve { config, listen, data_dir, database_url, no_engine } => {
            let mut cfg = config::Config::load(config.as_deref(), std::env::vars())?;
            if let Some(l) = listen {
                cfg.server.listen = l;
            }
            if let Some(d) = data_dir {
                cfg.server.data_dir = d;
            }
            if let Some(u) = database_url {
                cfg.server.database_url = Some(u);
            }
            let shutdown = CancellationToken::new();
            serve::cancel_on_signal(shutdown.clone());
            serve::serve(cfg, shutdown, !no_engine, |addr| {
                println!("s3batch listening on http://{addr}");
                use std::io::Write;
                let _ = std::io::stdout().flush();
            })
            .await
        }
        Command::Worker { config, database_url, metrics_listen } => {
            let mut cfg = config::Config::load(config.as_deref(), std::env::vars())?;
            if let Some(u) = database_url {
                cfg.server.database_url = Some(u);
            }
            let shutdown = CancellationToken::new();
            serve::cancel_on_signal(shutdown.clone());
            serve::worker(cfg, metrics_listen, shutdown, |id| {
                println!("s3batch worker {id} running");
                use std::io::Write;
                let _ = std::io::stdout().flush();
            })
            .await
        }
        Command::Workers { conn } => {
            let c = client::Client::new(conn)?;
            c.print(&c.workers().await?, client::print_workers)
        }
        Command::Roles { conn } => {
            let c = client::Client::new(conn)?;
            c.print(&c.roles().await?, client::print_roles)
        }
        Command::Migrate { database_url } => {
            serve::open_store(&database_url).await?;
            println!("migrated {}", serve::redact_url(&database_url));
            Ok(())
        }
        Command::Demo { data_dir, objects, missing } => demo::run(data_dir, objects as usize, missing as usize).await,
        Command::Bench(args) => bench::run(args).await,
        Command::BenchRun(args) => bench::run_child(args).await,
        Command::Job { conn, cmd } => job(conn, *cmd).await,
    }
}

async fn job(conn: client::Conn, cmd: JobCmd) -> Result<()> {
    let c = client::Client::new(conn)?;
    match cmd {
        JobCmd::Create {
            operation,
            manifest,
            manifest_csv,
            manifest_etag,
            report,
            report_bucket,
            report_prefix,
            report_scope,
            priority,
            no_confirmation_required,
            description,
            client_request_token,
            rate_limit,
            dry_run,
            role_arn,
        } => {
            let mut spec = client::spec_from_flags(
                &operation,
                manifest.as_deref(),
                manifest_csv.as_deref(),
                manifest_etag,
                report.as_deref(),
                report_bucket.as_deref(),
                report_prefix,
                &report_scope,
                priority,
                !no_confirmation_required,
                description,
            )?;
            (spec.rate_limit, spec.dry_run, spec.role_arn) = (rate_limit, dry_run, role_arn);
            let id = c.create(&CreateJobBody { client_request_token, spec }).await?;
            c.print(&serde_json::json!({"JobId": id}), |_| println!("{id}"))
        }
        JobCmd::List { statuses, max_results, next_token } => {
            let l = c.list(&statuses, max_results, next_token.as_deref()).await?;
            c.print(&l, client::print_list)
        }
        JobCmd::Describe { id } => c.print(&c.describe(&id).await?, client::print_job),
        JobCmd::Confirm { id, reason } => c.print(&c.update_status(&id, "Ready", reason).await?, client::print_job),
        JobCmd::Cancel { id, reason } => c.print(&c.update_status(&id, "Cancelled", reason).await?, client::print_job),
        JobCmd::Pause { id, reason } => c.print(&c.update_status(&id, "Paused", reason).await?, client::print_job),
        JobCmd::Resume { id, reason } => c.print(&c.update_status(&id, "Active", reason).await?, client::print_job),
        JobCmd::Priority { id, priority } => c.print(&c.priority(&id, priority).await?, client::print_job),
        JobCmd::Rerun { id } => c.print(&c.rerun(&id).await?, client::print_job),
        JobCmd::Watch { id } => {
            let j = c.watch(&id).await.context("watching the job")?;
            c.print(&j, client::print_job)
        }
        JobCmd::RateLimit { id, limit } => {
            let limit = client::parse_rate_limit(&limit)?;
            c.print(&c.rate_limit(&id, limit).await?, client::print_job)
        }
        JobCmd::Preview { id } => c.print(&c.preview(&id).await?, client::print_preview),
        JobCmd::Report { id, failed } => report::print(&c, &id, failed).await,
    }
}
