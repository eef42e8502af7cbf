//! A fleet: `s3batch serve` and several `s3batch worker` processes sharing one PostgreSQL job store, each with its
//! own memory backend (virtual objects, so every process sees the same 200,000 objects without setting them up)
//! and one local directory for the manifest and the reports (the buckets every process must share).
//!
//! - `kill -9` of a worker, then of `serve`, mid-job (serve restarted): the job completes, every manifest line is
//!   in the report exactly once, the counters equal the rows; the killed processes show as lost;
//! - `kill -9` loops (serve --no-engine, three workers): a worker killed at random moments, every other time the
//!   one holding the scheduler lease, and a new one started; sized by `S3BATCH_KILL_LOOPS` / `S3BATCH_KILL_TASKS`;
//! - SIGTERM of a worker mid-job: it exits 0 promptly, leaves the list of workers, and nothing is lost or doubled;
//! - SIGTERM while tasks outlast the grace period: the worker exits soon after it and gives its chunks back, so
//!   another worker runs them at once instead of waiting for the (long) lease to expire;
//! - PostgreSQL restarted mid-job: every process loses its connections; they reconnect and the job completes.
//!
//! Each test creates a database of its own (`s3batch_fleet_<uuid>`) on the PostgreSQL server at
//! `postgres://postgres@127.0.0.1:5432/postgres` (or `S3BATCH_TEST_DATABASE_URL`) and drops it afterwards. If the
//! server cannot be reached the tests fail: they never skip. The restart test restarts that (shared) server: it
//! holds the server lock of `s3batch_store::testing` exclusive, which every other test using the server holds
//! shared, so none of them runs meanwhile.

mod common;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use rand::Rng;
use s3batch_store::testing::{ServerUse, postgres_server_lock};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, PgConnection};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The tests start several processes each and time what they do: one at a time on a 2-core machine.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------------------------
// Harness

/// A database that exists for one test, dropped when the test ends (passed or not), on the server held as the test
/// uses it (see `s3batch_store::testing`) until then.
struct TestDb {
    admin: PgConnectOptions,
    name: String,
    url: String,
    _server: std::fs::File,
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

impl TestDb {
    fn create(server: ServerUse) -> TestDb {
        let server = postgres_server_lock(server);
        let url = std::env::var("S3BATCH_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_string());
        let admin = PgConnectOptions::from_str(&url)
            .unwrap_or_else(|e| panic!("S3BATCH_TEST_DATABASE_URL is not a PostgreSQL URL: {e}"));
        let name = format!("s3batch_fleet_{}", uuid::Uuid::new_v4().simple());
        block_on(async {
            let mut conn = admin_connection(&admin).await;
            conn.execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .unwrap_or_else(|e| panic!("creating the test database {name}: {e}"));
            let _ = conn.close().await;
        });
        let url = admin.clone().database(&name).to_url_lossy().to_string();
        TestDb { admin, name, url, _server: server }
    }
}

async fn admin_connection(admin: &PgConnectOptions) -> PgConnection {
    PgConnection::connect_with(admin).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {}:{} as user {:?}: {e}\n\
             The fleet tests need a server: start the local one with \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` (scripts/test.sh does), \
             or point S3BATCH_TEST_DATABASE_URL at one (a user that may CREATE DATABASE).",
            admin.get_host(),
            admin.get_port(),
            admin.get_username(),
        )
    })
}

impl Drop for TestDb {
    fn drop(&mut self) {
        block_on(async {
            let mut conn = admin_connection(&self.admin).await;
            // FORCE: processes of a failed test may still hold connections.
            if let Err(e) = conn.execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str()).await {
                eprintln!("dropping the test database {}: {e}", self.name);
            }
            let _ = conn.close().await;
        });
    }
}

/// A fleet's shared setting: one database, one directory for manifests and reports, tasks on a memory backend.
struct Fleet {
    _dir: tempfile::TempDir,
    objects: PathBuf,
    config: PathBuf,
    db: TestDb,
}

impl Fleet {
    /// `engine` and `latency_ms` (of every task's request) vary by test.
    fn new(engine: &str, latency_ms: u64) -> Fleet {
        Fleet::on_server(ServerUse::Shared, engine, latency_ms)
    }

    /// [`Fleet::new`], using the PostgreSQL server as `server` says.
    fn on_server(server: ServerUse, engine: &str, latency_ms: u64) -> Fleet {
        let db = TestDb::create(server);
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("objects");
        for b in ["fleet-manifests", "fleet-reports"] {
            std::fs::create_dir_all(objects.join(b)).unwrap();
        }
        let config = write_config(
            dir.path(),
            &format!(
                r#"[engine]
{engine}

[[storage]]
name = "disk"
kind = "local"
buckets = ["fleet-manifests", "fleet-reports"]
root = "{objects}"

[[storage]]
name = "mem"
kind = "memory"
buckets = ["*"]
virtual_objects = true
latency_ms = {latency_ms}
"#,
                objects = objects.display(),
            ),
        );
        // Every process of the fleet names the same database.
        let text = std::fs::read_to_string(&config).unwrap();
        let text = text.replacen("[server]\n", &format!("[server]\ndatabase_url = \"{}\"\n", db.url), 1);
        std::fs::write(&config, text).unwrap();
        Fleet { _dir: dir, objects, config, db }
    }

    /// A manifest of `n` lines (keys that need escaping, in 13 prefixes); returns its text.
    fn manifest(&self, n: usize) -> String {
        let manifest = manifest_lines("fleet-data", n);
        std::fs::write(self.objects.join("fleet-manifests/manifest.csv"), &manifest).unwrap();
        manifest
    }
}

impl Fleet {
    /// The process holding the job's duty lease (preparing or finishing it), straight from the database.
    fn duty_owner(&self, job_id: &str) -> Option<String> {
        block_on(async {
            let opts = PgConnectOptions::from_str(&self.db.url).unwrap();
            let mut conn = PgConnection::connect_with(&opts).await.unwrap();
            let owner: Option<String> = sqlx::query_scalar("SELECT duty_owner FROM jobs WHERE id = $1")
                .bind(job_id)
                .fetch_one(&mut conn)
                .await
                .unwrap();
            let _ = conn.close().await;
            owner
        })
    }

    /// Chunks leased to `owner` right now, straight from the database.
    fn leased_by(&self, owner: &str) -> i64 {
        block_on(async {
            let opts = PgConnectOptions::from_str(&self.db.url).unwrap();
            let mut conn = PgConnection::connect_with(&opts).await.unwrap();
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chunks WHERE state = 'leased' AND lease_owner = $1")
                .bind(owner)
                .fetch_one(&mut conn)
                .await
                .unwrap();
            let _ = conn.close().await;
            n
        })
    }
}

/// Wait until `fraction` of the tasks are done; panics if the job finished first (it must be longer).
fn wait_progress(endpoint: &str, id: &str, total: usize, fraction: f64, what: &str) {
    let target = (total as f64 * fraction) as i64;
    let job = wait_until(180, what, || {
        let j = describe(endpoint, id);
        (tasks_done(&j) >= target || is_terminal(&j)).then_some(j)
    });
    assert!(!is_terminal(&job), "the job finished before {what}: make it longer ({job})");
}

fn wait_finished(endpoint: &str, id: &str, secs: u64) -> serde_json::Value {
    wait_until(secs, "the job to finish", || {
        let j = describe(endpoint, id);
        is_terminal(&j).then_some(j)
    })
}

/// `s3batch workers --output json` against `endpoint`.
fn workers(endpoint: &str) -> Vec<serde_json::Value> {
    let out = std::process::Command::new(BIN)
        .args(["workers", "--output", "json", "--endpoint", endpoint])
        .output()
        .expect("running s3batch workers");
    assert!(out.status.success(), "s3batch workers failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("s3batch workers prints JSON");
    v["Workers"].as_array().expect("a Workers array").clone()
}

fn worker<'a>(list: &'a [serde_json::Value], id: &str) -> Option<&'a serde_json::Value> {
    list.iter().find(|w| w["WorkerId"] == id)
}

/// The job completed; every manifest line is in its report exactly once; the counters equal the rows.
fn assert_reported_exactly_once(objects: &Path, job: &serde_json::Value, manifest: &str) {
    common::assert_reported_exactly_once(objects, "fleet-reports", job, manifest);
}

// ---------------------------------------------------------------------------------------------------------------
// Tests

const BIG: usize = 200_000;

/// serve (with its engine) and three workers; kill -9 a worker at 25 %, serve at 55 % (and restart it).
#[test]
fn kill_9_of_a_worker_and_of_serve_loses_and_doubles_nothing() {
    let _serial = serial();
    let fleet = Fleet::new("lease_ms = 1500\ntick_ms = 100\nconcurrency = 16\nchunk_size = 500", 10);
    let manifest = fleet.manifest(BIG);

    let serve = Server::start(&fleet.config);
    let mut ws: Vec<Worker> = (0..3).map(|_| Worker::start(&fleet.config)).collect();
    let listed = workers(&serve.endpoint);
    assert_eq!(listed.len(), 4, "serve's engine and three workers registered: {listed:?}");
    for w in &ws {
        let row = worker(&listed, &w.id).unwrap_or_else(|| panic!("{} is not listed: {listed:?}", w.id));
        assert_eq!((row["Role"].as_str(), row["State"].as_str()), (Some("worker"), Some("running")), "{row}");
        assert_eq!(row["Pid"], w.child.id());
    }
    let serve_engine = listed.iter().find(|w| w["Role"] == "serve").expect("serve's engine is listed");
    let serve_engine_id = serve_engine["WorkerId"].as_str().unwrap().to_string();

    let id = create_tagging_job(&serve.endpoint, "fleet");
    wait_progress(&serve.endpoint, &id, BIG, 0.25, "the worker was killed");
    let victim = ws.remove(0);
    let victim_id = victim.id.clone();
    victim.kill9();

    wait_progress(&serve.endpoint, &id, BIG, 0.55, "serve was killed");
    serve.kill9();
    let serve = Server::start(&fleet.config);

    let job = wait_finished(&serve.endpoint, &id, 300);
    assert_reported_exactly_once(&fleet.objects, &job, &manifest);

    // The killed processes are lost (no heartbeat for two lease periods); the others run; one is the scheduler.
    let listed = wait_until(30, "the killed processes to show as lost", || {
        let l = workers(&serve.endpoint);
        let lost = |id: &str| worker(&l, id).is_some_and(|w| w["State"] == "lost");
        (lost(&victim_id) && lost(&serve_engine_id)).then_some(l)
    });
    for w in &ws {
        assert_eq!(worker(&listed, &w.id).unwrap()["State"], "running", "{listed:?}");
    }
    assert_eq!(listed.len(), 5, "2 lost, 2 workers, the new serve's engine: {listed:?}");
    let schedulers: Vec<_> = listed.iter().filter(|w| w["Scheduler"] == true).collect();
    assert_eq!(schedulers.len(), 1, "{listed:?}");
    assert_eq!(schedulers[0]["State"], "running", "{listed:?}");
}

/// serve --no-engine and three workers on PostgreSQL: `kill -9` of a worker at random moments of a job, each time
/// starting a new one. Every other kill hits the worker holding the scheduler lease (as the workers list shows it
/// right before the kill), the others a worker drawn at random; and one more kill of the worker finishing the job
/// (writing its report) when it is caught at it. The job completes; every line is reported once.
/// The suite runs 5 kills during 60,000 tasks; the campaign `S3BATCH_KILL_LOOPS=10 S3BATCH_KILL_TASKS=100000`.
#[test]
fn kill_9_loop_of_workers_and_the_scheduler_loses_and_doubles_nothing() {
    let _serial = serial();
    let mut run = KillLoop::from_env(5, 60_000);
    let fleet = Fleet::new("lease_ms = 1500\ntick_ms = 100\nconcurrency = 16\nchunk_size = 500", 10);
    let manifest = fleet.manifest(run.tasks);
    let serve = Server::start_with(&fleet.config, &["--no-engine"]);
    let mut ws: Vec<Worker> = (0..3).map(|_| Worker::start(&fleet.config)).collect();
    let id = create_tagging_job(&serve.endpoint, "fleet");
    let t0 = Instant::now();
    let mut scheduler_kills = 0;
    for (n, (fraction, delay)) in run.moments().into_iter().enumerate() {
        wait_progress(&serve.endpoint, &id, run.tasks, fraction, "a kill");
        std::thread::sleep(delay);
        let scheduler = scheduler_among(&serve.endpoint, &ws);
        let i = if n % 2 == 0 { scheduler } else { run.rng.random_range(0..ws.len()) };
        let job = describe(&serve.endpoint, &id);
        assert!(!is_terminal(&job), "the job finished before kill {}: make it longer ({job})", n + 1);
        let victim = ws.remove(i);
        let what = if i == scheduler { "the scheduler" } else { "a worker" };
        let done = tasks_done(&job);
        eprintln!(
            "kill {}: {what} {} (#{i}, scheduler #{scheduler}) at {done} tasks done, {:?}",
            n + 1,
            victim.id,
            t0.elapsed()
        );
        victim.kill9();
        scheduler_kills += usize::from(i == scheduler);
        ws.push(Worker::start(&fleet.config));
    }
    assert!(scheduler_kills >= run.kills.div_ceil(2), "{scheduler_kills} kills hit the scheduler");
    // One more if a worker is caught finishing the job (writing its report): it dies mid-report.
    let finisher = wait_until(900, "the job to finish its tasks", || {
        let j = describe(&serve.endpoint, &id);
        if is_terminal(&j) {
            return Some(None);
        }
        let owner = (j["Status"] == "Completing").then(|| fleet.duty_owner(&id)).flatten()?;
        Some(ws.iter().position(|w| w.id == owner))
    });
    if let Some(i) = finisher {
        let victim = ws.remove(i);
        eprintln!("one more kill: {} while it finished the job, {:?}", victim.id, t0.elapsed());
        victim.kill9();
        ws.push(Worker::start(&fleet.config));
    }

    let job = wait_finished(&serve.endpoint, &id, 900);
    let kills = run.kills + usize::from(finisher.is_some());
    eprintln!("{kills} kills ({scheduler_kills} of the scheduler), {} tasks: {:?}", run.tasks, t0.elapsed());
    assert_reported_exactly_once(&fleet.objects, &job, &manifest);
}

/// The index in `ws` of the worker holding the scheduler lease, as the workers list shows it; waits (a lease
/// period or two) while the lease is free or still held by a killed worker.
fn scheduler_among(endpoint: &str, ws: &[Worker]) -> usize {
    wait_until(30, "a running worker to hold the scheduler lease", || {
        let listed = workers(endpoint);
        let holder = listed.iter().find(|w| w["Scheduler"] == true)?;
        ws.iter().position(|w| holder["WorkerId"] == w.id.as_str())
    })
}

/// serve --no-engine and two workers; SIGTERM one at 30 %: it exits 0 at once (its tasks take milliseconds), leaves
/// the list of workers, and the other finishes the job.
#[test]
fn sigterm_stops_a_worker_gracefully_mid_job() {
    let _serial = serial();
    const N: usize = 60_000;
    let fleet = Fleet::new("lease_ms = 30000\ntick_ms = 100\nconcurrency = 16\nchunk_size = 500", 10);
    let manifest = fleet.manifest(N);
    let serve = Server::start_with(&fleet.config, &["--no-engine"]);
    assert!(workers(&serve.endpoint).is_empty(), "serve --no-engine runs no engine");
    let a = Worker::start(&fleet.config);
    let b = Worker::start(&fleet.config);
    let (a_id, b_id) = (a.id.clone(), b.id.clone());

    let id = create_tagging_job(&serve.endpoint, "fleet");
    wait_progress(&serve.endpoint, &id, N, 0.3, "SIGTERM");
    let (status, took) = a.sigterm(20);
    assert!(status.success(), "the worker exited with {status}");
    assert!(took < Duration::from_secs(10), "the worker took {took:?} to stop");
    let listed = workers(&serve.endpoint);
    assert!(worker(&listed, &a_id).is_none(), "a graceful exit leaves the list: {listed:?}");
    assert_eq!(worker(&listed, &b_id).map(|w| w["State"].clone()), Some("running".into()), "{listed:?}");

    // Nothing waits for a lease to expire (30 s here): the job ends well before that would matter.
    let job = wait_finished(&serve.endpoint, &id, 120);
    assert_reported_exactly_once(&fleet.objects, &job, &manifest);
}

/// Each worker's `--metrics-listen` endpoint shows the tasks that worker ran: together, the job's.
#[test]
fn each_worker_shows_its_own_tasks_in_its_metrics() {
    let _serial = serial();
    const N: usize = 20_000;
    let fleet = Fleet::new("lease_ms = 30000\ntick_ms = 100\nconcurrency = 16\nchunk_size = 500", 2);
    let manifest = fleet.manifest(N);
    let serve = Server::start_with(&fleet.config, &["--no-engine"]);
    let ports: Vec<u16> =
        (0..2).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()).collect();
    let _workers: Vec<Worker> = ports
        .iter()
        .map(|p| Worker::start_with(&fleet.config, &["--metrics-listen", &format!("127.0.0.1:{p}")]))
        .collect();
    let id = create_tagging_job(&serve.endpoint, "fleet");
    let job = wait_finished(&serve.endpoint, &id, 180);
    assert_reported_exactly_once(&fleet.objects, &job, &manifest);
    let ran: Vec<f64> = ports
        .iter()
        .map(|p| {
            let (status, text) = block_on(async {
                let r = reqwest::get(format!("http://127.0.0.1:{p}/metrics")).await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            });
            assert_eq!(status, 200);
            let line = text
                .lines()
                .find(|l| {
                    l.starts_with("s3batch_tasks_total{")
                        && l.contains("operation=\"S3PutObjectTagging\"")
                        && l.contains("outcome=\"succeeded\"")
                })
                .unwrap_or_else(|| panic!("worker on port {p} shows no tasks:\n{text}"));
            line.rsplit(' ').next().unwrap().parse::<f64>().unwrap()
        })
        .collect();
    assert_eq!(ran.iter().sum::<f64>(), N as f64, "the workers' tasks together are the job's: {ran:?}");
    assert!(ran.iter().all(|n| *n > 0.0), "each worker ran some: {ran:?}");
}

/// Tasks of 3 s, a grace period of 0.5 s, leases of a minute: SIGTERM a worker holding chunks. It exits 0 within
/// the grace period and the margin; the chunks it gave back run on the other worker at once (had they been left
/// to expire, the job would need more than a minute); nothing is doubled.
#[test]
fn sigterm_past_the_grace_period_gives_the_chunks_back() {
    let _serial = serial();
    const N: usize = 240;
    let fleet = Fleet::new(
        "lease_ms = 60000\ntick_ms = 100\nconcurrency = 40\nchunk_size = 20\nchunks_in_flight = 2\n\
         shutdown_grace_ms = 500",
        3000,
    );
    let manifest = fleet.manifest(N);
    let serve = Server::start_with(&fleet.config, &["--no-engine"]);
    let a = Worker::start(&fleet.config);
    let _b = Worker::start(&fleet.config);
    let a_id = a.id.clone();

    let id = create_tagging_job(&serve.endpoint, "fleet");
    wait_until(60, "the worker to hold chunks", || (fleet.leased_by(&a_id) > 0).then_some(()));
    let t0 = Instant::now();
    let (status, took) = a.sigterm(20);
    assert!(status.success(), "the worker exited with {status}");
    assert!(took < Duration::from_secs(5), "the worker took {took:?} to stop (grace 0.5 s)");

    let job = wait_finished(&serve.endpoint, &id, 120);
    assert!(
        t0.elapsed() < Duration::from_secs(50),
        "the job took {:?} after the SIGTERM: the abandoned chunks waited for their lease",
        t0.elapsed()
    );
    assert_reported_exactly_once(&fleet.objects, &job, &manifest);
}

/// Restart the PostgreSQL server the tests use: `S3BATCH_TEST_POSTGRES_RESTART` (a shell command) if set, else
/// `pg_ctlcluster --skip-systemctl-redirect <version> main restart` on the machine's one cluster (fast mode:
/// every connection is cut). Returns once the server accepts connections again.
fn restart_postgres() -> Duration {
    let command = std::env::var("S3BATCH_TEST_POSTGRES_RESTART").unwrap_or_else(|_| {
        let versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
            .expect("no /etc/postgresql: set S3BATCH_TEST_POSTGRES_RESTART to a command that restarts the server")
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(versions.len(), 1, "one PostgreSQL cluster expected in /etc/postgresql: {versions:?}");
        format!("pg_ctlcluster --skip-systemctl-redirect {} main restart", versions[0])
    });
    let t0 = Instant::now();
    let out = std::process::Command::new("sh").args(["-c", &command]).output().expect("running the restart command");
    assert!(
        out.status.success(),
        "{command}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    t0.elapsed()
}

/// PostgreSQL restarted in the middle of a fleet job (serve --no-engine and two workers, leases of 5 s): every
/// process loses every connection at once, and statements fail until the server is back. The processes keep
/// running and reconnect; the job completes with every line once in the report and the counters equal to the rows.
/// This restarts the machine's shared PostgreSQL server, holding the server lock exclusive (see the module's docs).
#[test]
fn a_postgres_restart_mid_job_loses_and_doubles_nothing() {
    let _serial = serial();
    const N: usize = 60_000;
    let engine = "lease_ms = 5000\ntick_ms = 100\nconcurrency = 16\nchunk_size = 500";
    let fleet = Fleet::on_server(ServerUse::Exclusive, engine, 10);
    let manifest = fleet.manifest(N);
    let serve = Server::start_with(&fleet.config, &["--no-engine"]);
    let mut ws: Vec<Worker> = (0..2).map(|_| Worker::start(&fleet.config)).collect();

    let id = create_tagging_job(&serve.endpoint, "fleet");
    wait_progress(&serve.endpoint, &id, N, 0.3, "PostgreSQL was restarted");
    let took = restart_postgres();
    eprintln!("PostgreSQL restarted in {took:?}");
    let during = describe(&serve.endpoint, &id);
    assert!(!is_terminal(&during), "the job finished during the restart: make it longer ({during})");

    let job = wait_finished(&serve.endpoint, &id, 180);
    assert_reported_exactly_once(&fleet.objects, &job, &manifest);
    for w in &mut ws {
        assert!(w.child.try_wait().unwrap().is_none(), "worker {} exited after the restart", w.id);
    }
    let listed = workers(&serve.endpoint);
    for w in &ws {
        assert_eq!(worker(&listed, &w.id).map(|r| r["State"].clone()), Some("running".into()), "{listed:?}");
    }
}
