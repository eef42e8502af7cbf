//! A full disk. `serve` runs in a mount namespace of its own where a small tmpfs holds what is to fill up (the
//! SQLite database, or the report bucket of the local backend); the test fills it with a file mid-job, then
//! deletes the file.
//!
//! - The SQLite store on a full disk: while writes fail (SQLITE_FULL), the job neither completes nor loses a result,
//!   and serve keeps running; once there is space again, the job goes on and completes, every line once in its
//!   report, and the database is intact. (It waits rather than fails: a job cannot even record that it failed
//!   while its database cannot be written, and a disk filled by something else is freed by an operator, after
//!   which the user wants the job done, not started again.)
//! - The report bucket on a full disk: the job keeps its results (counters) and retries the report; it completes
//!   if space returns within `engine.report_retry_ms`, else it fails with a reason naming the full disk.
//!
//! The tests need root (mount namespaces, tmpfs): they fail, never skip, when it is refused.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

/// A test's directories and config; serve is started by the test.
struct Setup {
    _dir: tempfile::TempDir,
    /// The local backend's root on the test's disk (manifests; reports unless they are on the tmpfs).
    objects: PathBuf,
    /// Where the tmpfs is mounted in serve's namespace.
    mount: PathBuf,
    config: PathBuf,
    log: PathBuf,
    /// The SQLite database (on the tmpfs, as serve sees it, or on the test's disk).
    database: PathBuf,
}

/// A config with `engine` settings; the manifest of `n` lines in `fd-manifests` on the test's disk; the tasks on a
/// memory backend (5 ms each); `database_url` and `reports_root` as the test wants them.
fn setup(engine: &str, n: usize, on_tmpfs: &str) -> (Setup, String) {
    let dir = tempfile::tempdir().unwrap();
    let (objects, mount) = (dir.path().join("objects"), dir.path().join("disk"));
    for d in [objects.join("fd-manifests"), objects.join("fd-reports"), mount.clone()] {
        std::fs::create_dir_all(d).unwrap();
    }
    let (database, reports_root) = match on_tmpfs {
        "database" => (mount.join("data/s3batch.db"), objects.clone()),
        "reports" => (dir.path().join("s3batch.db"), mount.clone()),
        other => panic!("nothing to put on the tmpfs called {other}"),
    };
    let config = write_config(
        dir.path(),
        &format!(
            r#"[engine]
{engine}

[[storage]]
name = "manifests"
kind = "local"
buckets = ["fd-manifests"]
root = "{objects}"

[[storage]]
name = "reports"
kind = "local"
buckets = ["fd-reports"]
root = "{reports}"

[[storage]]
name = "mem"
kind = "memory"
buckets = ["*"]
virtual_objects = true
latency_ms = 5
"#,
            objects = objects.display(),
            reports = reports_root.display(),
        ),
    );
    let database_url = format!("sqlite://{}", database.display());
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replacen("[server]\n", &format!("[server]\ndatabase_url = \"{database_url}\"\n"), 1))
        .unwrap();
    let manifest = manifest_lines("fd-data", n);
    std::fs::write(objects.join("fd-manifests/manifest.csv"), &manifest).unwrap();
    let log = dir.path().join("serve.log");
    (Setup { _dir: dir, objects, mount, config, log, database }, manifest)
}

/// Write `path` until its filesystem is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    let block = vec![0u8; 64 << 10];
    let mut written = 0;
    loop {
        match f.write(&block) {
            Ok(0) => return written,
            Ok(n) => written += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => return written,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
}

fn log_has(log: &Path, text: &str) -> bool {
    std::fs::read_to_string(log).unwrap_or_default().contains(text)
}

/// Wait (at most `secs`) for the job to end; if it does not, fail with the end of serve's log.
fn wait_finished(serve: &Server, id: &str, secs: u64, log: &Path) -> serde_json::Value {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        let job = describe(&serve.endpoint, id);
        if is_terminal(&job) {
            return job;
        }
        if Instant::now() >= until {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(10)..];
            panic!("the job did not end within {secs} s: {job}\nserve's log ends with:\n{}", tail.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Serve is still running, and the job has not ended, for `secs` seconds.
fn holds_on(serve: &mut Server, id: &str, secs: u64) -> serde_json::Value {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        assert!(serve.child.try_wait().unwrap().is_none(), "serve died on a full disk");
        let job = describe(&serve.endpoint, id);
        assert!(!is_terminal(&job), "the job ended while the disk was full: {job}");
        if Instant::now() >= until {
            return job;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn sqlite_on_a_full_disk_waits_for_space_and_then_completes() {
    const N: usize = 20_000;
    let (s, manifest) = setup("lease_ms = 1500\ntick_ms = 100\nconcurrency = 16\nchunk_size = 500", N, "database");
    let mut serve = Server::start_on_tmpfs(&s.config, &s.mount, "64m", &["data"], &s.log);
    let id = create_tagging_job(&serve.endpoint, "fd");
    wait_until(120, "the job to be a fifth done", || {
        (tasks_done(&describe(&serve.endpoint, &id)) >= N as i64 / 5).then_some(())
    });

    let filler = serve.in_ns(&s.mount.join("filler"));
    let filled = fill(&filler);
    let at = describe(&serve.endpoint, &id);
    assert!(!is_terminal(&at), "the job finished before the disk was full: make it longer ({at})");
    eprintln!("disk filled ({filled} bytes) at {} tasks done", tasks_done(&at));
    wait_until(60, "a write to fail with SQLITE_FULL", || log_has(&s.log, "database or disk is full").then_some(()));
    let during = holds_on(&mut serve, &id, 10);
    eprintln!("10 s on a full disk: {} tasks done, status {}", tasks_done(&during), during["Status"]);

    std::fs::remove_file(&filler).unwrap();
    let job = wait_finished(&serve, &id, 180, &s.log);
    assert_reported_exactly_once(&s.objects, "fd-reports", &job, &manifest);
    assert_eq!(integrity_check(&serve, &s.database), "ok");
}

/// `PRAGMA integrity_check` of the SQLite database at `path` in serve's mount namespace, by the `sqlite3` shell
/// run there (SQLite resolves `/proc/<pid>/root`, a symbolic link, to this namespace's `/`: it cannot be opened
/// from here).
fn integrity_check(serve: &Server, path: &Path) -> String {
    let out = std::process::Command::new("nsenter")
        .args(["--target", &serve.child.id().to_string(), "--mount", "--", "sqlite3", "-readonly"])
        .arg(path)
        .arg("PRAGMA integrity_check")
        .output()
        .expect("running nsenter (util-linux)");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "nsenter … sqlite3 (apt-get install sqlite3) failed: {said}");
    said.trim().to_string()
}

/// The report bucket full from the start, `report_retry_ms` short: the tasks all run and count, then the job fails
/// with ReportNotWritten, naming the full disk; no report manifest is written; the results are kept in the store.
#[test]
fn a_report_to_a_full_disk_fails_the_job_after_the_retry_period() {
    const N: usize = 3_000;
    let engine = "lease_ms = 1500\ntick_ms = 100\nconcurrency = 16\nchunk_size = 500\nreport_retry_ms = 4000";
    let (s, manifest) = setup(engine, N, "reports");
    let mut serve = Server::start_on_tmpfs(&s.config, &s.mount, "1m", &["fd-reports"], &s.log);
    fill(&serve.in_ns(&s.mount.join("filler")));
    let id = create_tagging_job(&serve.endpoint, "fd");
    let job = wait_finished(&serve, &id, 120, &s.log);
    assert!(serve.child.try_wait().unwrap().is_none(), "serve died on a full disk");
    assert_eq!(job["Status"], "Failed", "{job}");
    let p = &job["ProgressSummary"];
    assert_eq!((p["NumberOfTasksSucceeded"].as_i64(), p["NumberOfTasksFailed"].as_i64()), (Some(N as i64), Some(0)));
    let reasons = job["FailureReasons"].as_array().expect("FailureReasons");
    let reason = reasons.iter().find(|r| r["FailureCode"] == "ReportNotWritten").unwrap_or_else(|| panic!("{job}"));
    let text = reason["FailureReason"].as_str().unwrap();
    eprintln!("FailureReason: {text}");
    assert!(text.contains("No space left on device"), "the reason names the full disk: {text}");
    let manifest_json = s.mount.join(format!("fd-reports/reports/job-{id}/manifest.json"));
    assert!(!serve.in_ns(&manifest_json).exists(), "a report manifest was written to a full disk");
    // The results stay in the job store: every manifest line once, as the report would have listed it.
    let kept = kept_results(&s.database, &id);
    assert_eq!(kept.len(), N, "lines kept");
    for line in manifest.lines() {
        assert_eq!(kept.get(line), Some(&1), "manifest line {line} kept once");
    }
}

/// The result rows of `id`'s finished chunks in the job store at `database`: how many times each line is there.
fn kept_results(database: &Path, id: &str) -> std::collections::HashMap<String, usize> {
    use s3batch_store::JobStore;
    let chunks = block(async {
        let store = s3batch_store::sqlite::SqliteStore::open(database).await.expect("opening the job store");
        store.chunk_results(id, -1, i64::MAX).await.expect("reading the results")
    });
    let mut kept = std::collections::HashMap::new();
    for c in chunks {
        assert!(c.failed_rows.is_empty(), "no task failed: {}", String::from_utf8_lossy(&c.failed_rows));
        for row in s3batch_core::report::parse_rows(&c.succeeded_rows).unwrap() {
            *kept.entry(format!("{},{}", row.bucket, row.key)).or_default() += 1;
        }
    }
    kept
}

/// The report bucket full from the start, `report_retry_ms` long: the job waits in Completing, retrying; once the
/// filler is deleted it completes with its report whole.
#[test]
fn a_report_to_a_full_disk_completes_when_space_returns() {
    const N: usize = 3_000;
    let engine = "lease_ms = 1500\ntick_ms = 100\nconcurrency = 16\nchunk_size = 500\nreport_retry_ms = 600000";
    let (s, manifest) = setup(engine, N, "reports");
    let mut serve = Server::start_on_tmpfs(&s.config, &s.mount, "1m", &["fd-reports"], &s.log);
    let filler = serve.in_ns(&s.mount.join("filler"));
    fill(&filler);
    let id = create_tagging_job(&serve.endpoint, "fd");
    wait_until(120, "a report upload to fail", || log_has(&s.log, "writing the report failed").then_some(()));
    let during = holds_on(&mut serve, &id, 3);
    assert_eq!(during["Status"], "Completing", "{during}");

    std::fs::remove_file(&filler).unwrap();
    let job = wait_finished(&serve, &id, 120, &s.log);
    assert_reported_exactly_once(&serve.in_ns(&s.mount), "fd-reports", &job, &manifest);
}
