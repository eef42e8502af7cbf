//! Crash safety: `kill -9` of `serve` (on SQLite) at random moments of a job, several times, and once more if it is
//! caught writing the report, each time restarted ⇒ the job goes on and completes; its report lists every manifest line exactly once; the counters equal the report
//! rows.
//!
//! The suite runs a moderate loop (5 kills, 40,000 tasks); the campaign's size is set from the environment:
//! `S3BATCH_KILL_LOOPS=10 S3BATCH_KILL_TASKS=100000` (and `S3BATCH_KILL_SEED` replays a run's moments).

mod common;

use common::*;

#[test]
fn kill_9_loop_of_serve_loses_and_doubles_nothing() {
    let mut run = KillLoop::from_env(5, 40_000);
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    // Manifest and report on a local directory (they survive the kills); the tasks on a memory backend whose
    // objects always exist and answer after 5 ms, so the job runs long enough to be killed several times.
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[engine]
lease_ms = 1500
tick_ms = 100
concurrency = 16
chunk_size = 500

[[storage]]
name = "disk"
kind = "local"
buckets = ["crash-manifests", "crash-reports"]
root = "{}"

[[storage]]
name = "mem"
kind = "memory"
buckets = ["*"]
virtual_objects = true
latency_ms = 5
"#,
            objects.display()
        ),
    );
    std::fs::create_dir_all(objects.join("crash-manifests")).unwrap();
    std::fs::create_dir_all(objects.join("crash-reports")).unwrap();
    let manifest = manifest_lines("crash-data", run.tasks);
    std::fs::write(objects.join("crash-manifests/manifest.csv"), &manifest).unwrap();

    let t0 = std::time::Instant::now();
    let mut server = Server::start(&config);
    let id = create_tagging_job(&server.endpoint, "crash");

    // Kill at random points of progress, restarting each time.
    for (n, (fraction, delay)) in run.moments().into_iter().enumerate() {
        let target = (run.tasks as f64 * fraction) as i64;
        let endpoint = server.endpoint.clone();
        wait_until(300, "progress before the kill", || {
            let j = describe(&endpoint, &id);
            (tasks_done(&j) >= target || is_terminal(&j)).then_some(())
        });
        std::thread::sleep(delay);
        let job = describe(&endpoint, &id);
        assert!(!is_terminal(&job), "the job finished before kill {}: make it longer ({job})", n + 1);
        server.kill9();
        let done = tasks_done(&job);
        eprintln!("kill {}: at {done} tasks done (point {fraction:.3}, then {delay:?}), {:?}", n + 1, t0.elapsed());
        server = Server::start(&config);
    }

    // One more if the job is caught writing its report (Completing): the finisher dies mid-report. It is not
    // always caught (the report of 40,000 rows takes a second or so): the log says whether it was.
    let endpoint = server.endpoint.clone();
    let completing = wait_until(600, "the job to finish its tasks", || {
        let j = describe(&endpoint, &id);
        (j["Status"] == "Completing" || is_terminal(&j)).then_some(j["Status"] == "Completing")
    });
    if completing {
        server.kill9();
        eprintln!("one more kill while the job was Completing, {:?}", t0.elapsed());
        server = Server::start(&config);
    }

    let endpoint = server.endpoint.clone();
    let job = wait_until(600, "the job to finish after the restarts", || {
        let j = describe(&endpoint, &id);
        is_terminal(&j).then_some(j)
    });
    let kills = run.kills + usize::from(completing);
    eprintln!("{kills} kills, {} tasks: {} in {:?}", run.tasks, job["Status"], t0.elapsed());
    assert_reported_exactly_once(&objects, "crash-reports", &job, &manifest);
}
