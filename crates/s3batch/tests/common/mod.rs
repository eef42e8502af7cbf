//! Test support: run the real `s3batch` binary as a child process.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_s3batch");

/// A running `s3batch serve`.
pub struct Server {
    pub child: Child,
    pub endpoint: String,
}

impl Server {
    /// Start `serve --config <config>` and wait for its "listening on" line.
    pub fn start(config: &Path) -> Server {
        Server::start_with(config, &[])
    }

    /// The same, with more arguments (e.g. `--no-engine`).
    pub fn start_with(config: &Path, args: &[&str]) -> Server {
        Server::spawn(Command::new(BIN), config, args, None)
    }

    /// Start `serve` in a mount namespace of its own (`unshare -m`) where a tmpfs of `size` (e.g. `"16m"`) is
    /// mounted on `mount` (an existing, empty directory), with the directories `dirs` made in it; its log goes to
    /// `log`. The tmpfs is seen only by serve, and by the test through `/proc/<pid>/root` ([`Server::in_ns`]); it
    /// goes away with serve. Panics (the test fails) if the namespace or the mount is refused: run as root.
    pub fn start_on_tmpfs(config: &Path, mount: &Path, size: &str, dirs: &[&str], log: &Path) -> Server {
        let script = r#"set -e; size=$1; mnt=$2; shift 2
mount -t tmpfs -o "size=$size" s3batch-test "$mnt"
while [ "$1" != -- ]; do mkdir -p "$mnt/$1"; shift; done; shift
exec "$@""#;
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c", script, "sh", size]).arg(mount);
        cmd.args(dirs).arg("--").arg(BIN);
        Server::spawn(cmd, config, &[], Some(log))
    }

    /// `path` as serve sees it (its mount namespace), for this process to read and write.
    pub fn in_ns(&self, path: &Path) -> PathBuf {
        let relative = path.strip_prefix("/").expect("an absolute path");
        PathBuf::from(format!("/proc/{}/root", self.child.id())).join(relative)
    }

    /// Start `serve` with at most `nofile` open file descriptors (run under prlimit(1), from util-linux).
    pub fn start_with_nofile(config: &Path, nofile: u32) -> Server {
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--nofile={nofile}:{nofile}")).arg(BIN);
        Server::spawn(cmd, config, &[], None)
    }

    /// Run `cmd serve --config <config> <args>`; its log (stderr) to `log`, else to the test's.
    fn spawn(mut cmd: Command, config: &Path, args: &[&str], log: Option<&Path>) -> Server {
        let stderr = match log {
            Some(p) => Stdio::from(std::fs::File::create(p).expect("creating serve's log")),
            None => Stdio::inherit(),
        };
        let mut child = cmd
            .args(["serve", "--config"])
            .arg(config)
            .args(args)
            .env("S3BATCH_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("starting s3batch serve");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| {
            let said = log.map(|p| std::fs::read_to_string(p).unwrap_or_default()).unwrap_or_default();
            match child.try_wait() {
                Ok(Some(status)) => panic!("serve exited with {status} before it listened: {said}"),
                _ => panic!("serve printed no address within 30 s: {said}"),
            }
        });
        let endpoint =
            line.strip_prefix("s3batch listening on ").expect("the ready line names the address").to_string();
        Server { child, endpoint }
    }

    /// SIGKILL: no shutdown, no lease released.
    pub fn kill9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaping the child");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `s3batch worker`.
pub struct Worker {
    pub child: Child,
    /// The id it holds leases under (and `s3batch workers` lists).
    pub id: String,
}

impl Worker {
    /// Start `worker --config <config>` and wait for its "running" line.
    pub fn start(config: &Path) -> Worker {
        Worker::start_with(config, &[])
    }

    /// The same, with more arguments (e.g. `--metrics-listen`).
    pub fn start_with(config: &Path, args: &[&str]) -> Worker {
        let mut child = Command::new(BIN)
            .args(["worker", "--config"])
            .arg(config)
            .args(args)
            .env("S3BATCH_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting s3batch worker");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("the worker printed no ready line within 30 s");
        let id = line
            .strip_prefix("s3batch worker ")
            .and_then(|l| l.strip_suffix(" running"))
            .unwrap_or_else(|| panic!("unexpected ready line: {line}"))
            .to_string();
        Worker { child, id }
    }

    /// SIGKILL: no shutdown, no lease released, no goodbye.
    pub fn kill9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaping the child");
    }

    /// SIGTERM, then wait for it to exit (at most `secs`): its exit status and how long it took.
    pub fn sigterm(mut self, secs: u64) -> (std::process::ExitStatus, Duration) {
        let t0 = Instant::now();
        sigterm(self.child.id());
        let deadline = t0 + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the worker") {
                return (status, t0.elapsed());
            }
            assert!(Instant::now() < deadline, "the worker did not exit within {secs} s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Send SIGTERM to `pid` (with kill(1): the tests use no unsafe code).
pub fn sigterm(pid: u32) {
    let ok = Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("running kill").success();
    assert!(ok, "kill -TERM {pid} failed");
}

/// Write a config file whose server listens on a free port and keeps its data in `dir`.
pub fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("s3batch.toml");
    let text =
        format!("[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n{extra}\n", dir.join("data").display());
    std::fs::write(&path, text).unwrap();
    path
}

/// Run `s3batch job …` against `endpoint`; returns (success, stdout, stderr).
pub fn cli(endpoint: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("job")
        .args(args)
        .args(["--endpoint", endpoint])
        .env_remove("S3BATCH_ACCESS_KEY_ID")
        .env_remove("S3BATCH_SECRET_ACCESS_KEY")
        .env_remove("S3BATCH_ACCOUNT_ID")
        .envs(env.iter().copied())
        .output()
        .expect("running s3batch job");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Poll until `f` returns Some, or panic after `secs`.
pub fn wait_until<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A blocking JSON API call.
pub fn api(method: &str, url: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let mut req = client.request(method.parse().unwrap(), url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let bytes = resp.bytes().await.unwrap_or_default();
                (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
            }
            Err(e) => (0, serde_json::Value::String(e.to_string())),
        }
    })
}

/// A moto server (PyPI `moto[server]`), the S3 protocol peer; killed when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start moto on a free port; with `log`, its request log (one line per request) goes to that file.
pub fn start_moto_logged(log: Option<&Path>) -> Moto {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("python3")
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(match log {
            Some(p) => Stdio::from(std::fs::File::create(p).expect("creating moto's log")),
            None => Stdio::null(),
        })
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start moto ({e}); install it with `pip install 'moto[server]'`"));
    let mut moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
            let mut buf = [0u8; 5];
            if s.read_exact(&mut buf).is_ok() && &buf == b"HTTP/" {
                return moto;
            }
        }
        if let Ok(Some(status)) = moto.child.try_wait() {
            panic!("moto server exited with {status}; is `moto[server]` installed?");
        }
        assert!(Instant::now() < deadline, "moto did not answer within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// PUT to moto, path style (moto takes unsigned requests).
pub fn moto_put(moto: &Moto, path: &str, body: &str) {
    let url = format!("{}/{path}", moto.endpoint);
    let status =
        block(async { reqwest::Client::new().put(&url).body(body.to_string()).send().await.unwrap().status() });
    assert!(status.is_success(), "PUT {url}: {status}");
}

/// Start moto on a free port.
pub fn start_moto() -> Moto {
    start_moto_logged(None)
}

// ---------------------------------------------------------------------------------------------------------------
// Kill loops

/// The size of a kill loop: `S3BATCH_KILL_LOOPS` kills during a job of `S3BATCH_KILL_TASKS` tasks (the campaign's
/// sizes, e.g. 10 and 100000), else the suite's defaults; and the random moments of the kills, from the seed
/// `S3BATCH_KILL_SEED` (else a random one, printed so that a failure can be replayed).
pub struct KillLoop {
    pub kills: usize,
    pub tasks: usize,
    pub rng: rand::rngs::StdRng,
}

impl KillLoop {
    pub fn from_env(default_kills: usize, default_tasks: usize) -> KillLoop {
        use rand::SeedableRng;
        let var = |name: &str, default: u64| match std::env::var(name) {
            Ok(v) => v.parse().unwrap_or_else(|e| panic!("{name}={v:?}: {e}")),
            Err(_) => default,
        };
        let kills = var("S3BATCH_KILL_LOOPS", default_kills as u64) as usize;
        let tasks = var("S3BATCH_KILL_TASKS", default_tasks as u64) as usize;
        let seed = var("S3BATCH_KILL_SEED", rand::random());
        eprintln!("kill loop: {kills} kills, {tasks} tasks, S3BATCH_KILL_SEED={seed}");
        KillLoop { kills, tasks, rng: rand::rngs::StdRng::seed_from_u64(seed) }
    }

    /// When to kill: at each of `kills` progress points (fractions of the tasks done, random in [0, 0.8], in
    /// order; 0 is as soon as the job exists, still preparing), then after a random delay of up to a second, so
    /// that the kills land anywhere in a chunk's life (claiming, running, committing, recovering).
    pub fn moments(&mut self) -> Vec<(f64, Duration)> {
        use rand::Rng;
        let mut fractions: Vec<f64> = (0..self.kills).map(|_| self.rng.random_range(0.0..=0.8)).collect();
        fractions.sort_by(f64::total_cmp);
        fractions.into_iter().map(|f| (f, Duration::from_millis(self.rng.random_range(0..1000)))).collect()
    }
}

/// A manifest of `n` lines in `bucket` (keys that need escaping, in 13 prefixes).
pub fn manifest_lines(bucket: &str, n: usize) -> String {
    let mut manifest = String::with_capacity(n * 40);
    for i in 0..n {
        manifest += &format!("{bucket},dir%20{}/obj+{i}%E2%9C%93\n", i % 13);
    }
    manifest
}

/// Create, through the JSON API, an S3PutObjectTagging job over `<prefix>-manifests/manifest.csv` (bucket and key
/// columns) reporting every task to `<prefix>-reports` under `reports`; its id.
pub fn create_tagging_job(endpoint: &str, prefix: &str) -> String {
    let (status, created) = api(
        "POST",
        &format!("{endpoint}/api/v1/jobs"),
        Some(serde_json::json!({
            "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": prefix, "Value": "test"}]}},
            "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                         "Location": {"ObjectArn": format!("arn:aws:s3:::{prefix}-manifests/manifest.csv")}},
            "Report": {"Enabled": true, "Bucket": format!("arn:aws:s3:::{prefix}-reports"),
                       "Format": "Report_CSV_20180820", "Prefix": "reports", "ReportScope": "AllTasks"},
            "Priority": 5,
            "ConfirmationRequired": false
        })),
    );
    assert_eq!(status, 200, "{created}");
    created["JobId"].as_str().unwrap().to_string()
}

/// A job as the JSON API describes it.
pub fn describe(endpoint: &str, id: &str) -> serde_json::Value {
    api("GET", &format!("{endpoint}/api/v1/jobs/{id}"), None).1
}

/// Tasks done (succeeded or failed) of a described job.
pub fn tasks_done(job: &serde_json::Value) -> i64 {
    let p = &job["ProgressSummary"];
    p["NumberOfTasksSucceeded"].as_i64().unwrap_or(0) + p["NumberOfTasksFailed"].as_i64().unwrap_or(0)
}

pub fn is_terminal(job: &serde_json::Value) -> bool {
    job["Status"].as_str().is_some_and(|s| matches!(s, "Complete" | "Failed" | "Cancelled"))
}

/// The job completed with every task succeeded; its report (under `root`, the local backend's directory, in
/// `bucket`, prefix `reports`) holds every manifest line exactly once; the counters equal the report's rows.
pub fn assert_reported_exactly_once(root: &Path, bucket: &str, job: &serde_json::Value, manifest: &str) {
    let lines = manifest.lines().count() as i64;
    assert_eq!(job["Status"], "Complete", "{job}");
    let p = &job["ProgressSummary"];
    assert_eq!(p["TotalNumberOfTasks"], lines, "{job}");
    assert_eq!(p["NumberOfTasksSucceeded"], lines, "{job}");
    assert_eq!(p["NumberOfTasksFailed"], 0, "{job}");

    let id = job["JobId"].as_str().unwrap();
    let report_manifest = root.join(bucket).join(format!("reports/job-{id}/manifest.json"));
    let rm: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_manifest).unwrap()).unwrap();
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(lines as usize);
    let mut rows = 0;
    for r in rm["Results"].as_array().unwrap() {
        let csv = std::fs::read(root.join(r["Bucket"].as_str().unwrap()).join(r["Key"].as_str().unwrap())).unwrap();
        for row in s3batch_core::report::parse_rows(&csv).unwrap() {
            assert_eq!(row.status, "succeeded", "{row:?}");
            *seen.entry(format!("{},{}", row.bucket, row.key)).or_default() += 1;
            rows += 1;
        }
    }
    assert_eq!(rows, lines, "the counters equal the report rows");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "lines reported twice: {twice:?}");
    for line in manifest.lines() {
        assert_eq!(seen.get(line), Some(&1), "manifest line {line} missing from the report");
    }
}
