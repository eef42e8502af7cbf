//! What an operator watches: `/metrics` read by a real Prometheus text parser (the `prometheus_client` Python
//! package's) after a job against a real moto server, checked against the job, its report and moto's own request
//! log; `/healthz` and `/readyz`; `job report` on a large report with flat memory; JSON log lines.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Server, block, moto_put, start_moto_logged, write_config};

const PRESENT: usize = 40;
const MISSING: usize = 7;

/// A sample's labels, sorted.
type Labels = Vec<(String, String)>;
/// (name, labels) → value, as the prometheus_client parser reads the exposition.
type Samples = BTreeMap<(String, Labels), f64>;

fn parse_metrics(text: &str) -> Samples {
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, sorted(s.labels.items()), s.value])
print(json.dumps(out))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused /metrics (pip install prometheus_client): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<(String, Labels, f64)> = serde_json::from_slice(&out.stdout).unwrap();
    rows.into_iter().map(|(n, l, v)| ((n, l), v)).collect()
}

fn sample(m: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut l: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    l.sort();
    *m.get(&(name.to_string(), l.clone())).unwrap_or_else(|| {
        let near: Vec<_> = m.keys().filter(|(n, _)| n == name).collect();
        panic!("no sample {name} {l:?}; {name} has {near:?}")
    })
}

fn get(url: &str) -> (u16, String) {
    block(async {
        let r = reqwest::get(url).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

fn wait_done(endpoint: &str, id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, j) = common::api("GET", &format!("{endpoint}/api/v1/jobs/{id}"), None);
        if matches!(j["Status"].as_str(), Some("Complete" | "Failed" | "Cancelled")) {
            return j;
        }
        assert!(Instant::now() < deadline, "job {id} did not finish: {j}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn metrics_match_the_job_and_what_moto_saw() {
    let dir = tempfile::tempdir().unwrap();
    let moto_log = dir.path().join("moto.log");
    let moto = start_moto_logged(Some(&moto_log));
    for b in ["photos", "manifests", "reports"] {
        moto_put(&moto, b, "");
    }
    let mut manifest = String::new();
    for i in 0..PRESENT {
        moto_put(&moto, &format!("photos/img/{i:03}.jpg"), "jpeg");
        manifest.push_str(&format!("photos,img/{i:03}.jpg\n"));
    }
    for i in 0..MISSING {
        manifest.push_str(&format!("photos,missing/{i}.jpg\n"));
    }
    moto_put(&moto, "manifests/m.csv", &manifest);
    let config = write_config(
        dir.path(),
        &format!(
            "[engine]\ntick_ms = 50\n\n[engine.events]\ndata_events = true\n\n[[storage]]\nname = \"moto\"\n\
             kind = \"s3\"\nbuckets = [\"*\"]\nendpoint = \"{}\"\nregion = \"us-east-1\"\nforce_path_style = true\n\
             access_key_id = \"testing\"\nsecret_access_key = \"testing\"\n",
            moto.endpoint
        ),
    );
    let server = Server::start(&config);
    let base = &server.endpoint;
    assert_eq!(get(&format!("{base}/healthz")), (200, "ok".into()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&format!("{base}/readyz")).0 != 200 {
        assert!(Instant::now() < deadline, "never ready: {:?}", get(&format!("{base}/readyz")));
        std::thread::sleep(Duration::from_millis(100));
    }

    let tagged_before = moto_requests(&moto_log, "PUT", "?tagging");
    let (status, created) = common::api(
        "POST",
        &format!("{base}/api/v1/jobs"),
        Some(serde_json::json!({
            "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "k", "Value": "v"}]}},
            "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                         "Location": {"ObjectArn": "arn:aws:s3:::manifests/m.csv"}},
            "Report": {"Enabled": true, "Bucket": "arn:aws:s3:::reports", "Format": "Report_CSV_20180820",
                       "ReportScope": "AllTasks", "Prefix": "out"},
            "Priority": 1, "ConfirmationRequired": false,
        })),
    );
    assert_eq!(status, 200, "{created}");
    let id = created["JobId"].as_str().unwrap().to_string();
    let job = wait_done(base, &id);
    assert_eq!(job["Status"], "Complete", "{job}");
    let p = &job["ProgressSummary"];
    assert_eq!((p["NumberOfTasksSucceeded"].as_u64(), p["NumberOfTasksFailed"].as_u64()), (Some(40), Some(7)));

    let (status, text) = get(&format!("{base}/metrics"));
    assert_eq!(status, 200);
    let m = parse_metrics(&text);

    // Storage calls: every task's PutObjectTagging, by the status moto answered, and as many as moto logged.
    let tagging = |status: &str| {
        sample(
            &m,
            "s3batch_storage_requests_total",
            &[("backend", "s3"), ("request", "PutObjectTagging"), ("status", status)],
        )
    };
    assert_eq!((tagging("200"), tagging("404")), (PRESENT as f64, MISSING as f64));
    let moto_saw = moto_requests(&moto_log, "PUT", "?tagging") - tagged_before;
    assert_eq!(moto_saw, PRESENT + MISSING, "moto logged every tagging request once");
    let timed = sample(
        &m,
        "s3batch_storage_request_duration_seconds_count",
        &[("backend", "s3"), ("request", "PutObjectTagging")],
    );
    assert_eq!(timed, (PRESENT + MISSING) as f64, "every call is in the histogram");
    let le_inf = sample(
        &m,
        "s3batch_storage_request_duration_seconds_bucket",
        &[("backend", "s3"), ("request", "PutObjectTagging"), ("le", "+Inf")],
    );
    assert_eq!(le_inf, timed);

    // The API and the store's view.
    let created_calls =
        sample(&m, "s3batch_api_requests_total", &[("dialect", "json"), ("operation", "CreateJob"), ("code", "OK")]);
    assert_eq!(created_calls, 1.0);
    assert_eq!(sample(&m, "s3batch_jobs", &[("status", "Complete")]), 1.0);
    assert_eq!(sample(&m, "s3batch_jobs", &[("status", "Active")]), 0.0);
    assert_eq!(sample(&m, "s3batch_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);

    // Tasks, as the job counted them (committed chunks only).
    let tasks =
        |outcome: &str| sample(&m, "s3batch_tasks_total", &[("operation", "S3PutObjectTagging"), ("outcome", outcome)]);
    assert_eq!((tasks("succeeded"), tasks("failed")), (PRESENT as f64, MISSING as f64));
    assert!(sample(&m, "s3batch_chunk_commit_duration_seconds_count", &[]) >= 1.0);
    assert!(sample(&m, "s3batch_chunks_in_flight", &[]) >= 0.0, "the gauge is there");

    // Data events: one line per task, each with the key and the outcome of its report row.
    let log = dir.path().join("data/data-events.jsonl");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&log).map(|t| t.lines().count()).unwrap_or(0) < PRESENT + MISSING {
        assert!(Instant::now() < deadline, "the data events were not all written");
        std::thread::sleep(Duration::from_millis(50));
    }
    let data_events = std::fs::read_to_string(&log).unwrap();
    let mut events: Vec<(String, Option<String>)> = data_events
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert_eq!(
                (v["eventName"].as_str(), v["eventSource"].as_str()),
                (Some("PutObjectTagging"), Some("s3.amazonaws.com"))
            );
            assert_eq!(v["additionalEventData"]["jobId"].as_str(), Some(id.as_str()));
            assert_eq!(v["requestParameters"]["bucketName"], "photos");
            let key = v["requestParameters"]["key"].as_str().unwrap().to_string();
            (key, v["errorCode"].as_str().map(str::to_string))
        })
        .collect();
    events.sort();
    let (status, rows) = {
        let out =
            Command::new(BIN).args(["job", "report", &id, "--endpoint", base, "--output", "csv"]).output().unwrap();
        (out.status, String::from_utf8(out.stdout).unwrap())
    };
    assert!(status.success());
    let mut reported: Vec<(String, Option<String>)> = rows
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1].to_string(), (f[3] == "failed").then(|| f[5].to_string()))
        })
        .collect();
    reported.sort();
    assert_eq!(events, reported, "the data events are the report's rows");

    // `job report`: the report's rows, counted as the job counted them.
    let out =
        Command::new(BIN).args(["job", "report", &id, "--endpoint", base]).output().expect("s3batch job report runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("Rows:       47") && text.contains("Succeeded:  40") && text.contains("Failed:     7"),
        "{text}"
    );
    assert!(text.contains("404") && text.contains("NoSuchKey") && text.contains("s3://photos/missing/"), "{text}");
}

/// Requests moto's log shows with this method and a path containing `needle`.
fn moto_requests(log: &Path, method: &str, needle: &str) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().filter(|l| l.contains(&format!("\"{method} ")) && l.contains(needle)).count()
}

/// `job report` streams: its peak memory on a 100,000-row report is about that on a 1,000-row one.
#[test]
fn job_report_streams_a_large_report() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("objects");
    for b in ["data", "manifests", "reports"] {
        std::fs::create_dir_all(root.join(b)).unwrap();
    }
    let config = write_config(
        dir.path(),
        &format!(
            "[engine]\ntick_ms = 50\nconcurrency = 256\n\n[[storage]]\nname = \"disk\"\nkind = \"local\"\n\
             buckets = [\"*\"]\nroot = \"{}\"\n",
            root.display()
        ),
    );
    let server = Server::start(&config);
    let base = server.endpoint.clone();
    let mut runs = Vec::new();
    for (name, lines) in [("small", 10_000usize), ("large", 200_000)] {
        // One line in a hundred names an object that does not exist; the rest are there (the job is a dry run:
        // a HEAD per task, nothing changed).
        let missing = lines / 100;
        let objects = root.join("data").join(name);
        std::fs::create_dir_all(&objects).unwrap();
        let mut manifest = String::with_capacity(lines * 24);
        for i in 0..lines {
            if i % 100 == 7 {
                manifest.push_str(&format!("data,none/{i:06}\n"));
            } else {
                std::fs::write(objects.join(format!("{i:06}")), b"x").unwrap();
                manifest.push_str(&format!("data,{name}/{i:06}\n"));
            }
        }
        std::fs::write(root.join("manifests").join(format!("{name}.csv")), manifest).unwrap();
        let (status, created) = common::api(
            "POST",
            &format!("{base}/api/v1/jobs"),
            Some(serde_json::json!({
                "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "k", "Value": "v"}]}},
                "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                             "Location": {"ObjectArn": format!("arn:aws:s3:::manifests/{name}.csv")}},
                "Report": {"Enabled": true, "Bucket": "arn:aws:s3:::reports", "Format": "Report_CSV_20180820",
                           "ReportScope": "AllTasks"},
                "Priority": 1, "ConfirmationRequired": false, "DryRun": true,
            })),
        );
        assert_eq!(status, 200, "{created}");
        let id = created["JobId"].as_str().unwrap().to_string();
        let job = wait_done(&base, &id);
        assert_eq!(job["Status"], "Complete", "{job}");
        assert_eq!(job["ProgressSummary"]["NumberOfTasksFailed"].as_u64(), Some(missing as u64), "{job}");

        let (summary, _) = report_cli(&base, &id, &[]);
        assert!(summary.contains(&format!("Rows:       {lines}\n")), "{summary}");
        assert!(summary.contains(&format!("Succeeded:  {}\n", lines - missing)), "{summary}");
        assert!(summary.contains(&format!("Failed:     {missing}\n")), "{summary}");
        assert!(summary.contains("NoSuchKey") && summary.contains("s3://data/none/"), "{summary}");
        let (failed, _) = report_cli(&base, &id, &["--output", "csv", "--failed"]);
        assert_eq!(failed.lines().count(), missing);
        assert!(failed.lines().all(|l| l.starts_with("data,none/") && l.contains(",failed,404,NoSuchKey,")));
        let (json, _) = report_cli(&base, &id, &["--output", "json"]);
        assert_eq!(json.lines().count(), lines);
        let row: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
        assert!(row["Bucket"] == "data" && row["TaskStatus"].is_string(), "{row}");
        let (all, peak_kib) = report_cli(&base, &id, &["--output", "csv"]);
        assert_eq!(all.lines().count(), lines);
        runs.push(peak_kib);
    }
    let (small, large) = (runs[0], runs[1]);
    println!("job report --output csv: peak RSS {small} KiB for 10,000 rows, {large} KiB for 200,000 rows");
    // The large report's CSV is about 12 MiB: a client that held it would show it here. The small one is large
    // enough to warm the same buffers (1,000 rows left the peak 2 to 4 MiB lower, at the edge of the bound).
    assert!(large < small + 4 * 1024, "memory grew with the report: {small} KiB → {large} KiB");
}

/// Run `job report` with stdout to a file; its stdout and its peak RSS (KiB, sampled every 5 ms).
fn report_cli(endpoint: &str, id: &str, extra: &[&str]) -> (String, u64) {
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(BIN)
        .args(["job", "report", id, "--endpoint", endpoint])
        .args(extra)
        .stdout(Stdio::from(out.reopen().unwrap()))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(&status_file)
            && let Some(v) = s.lines().find_map(|l| l.strip_prefix("VmHWM:"))
        {
            peak = peak.max(v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0));
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "job report {extra:?} failed: {err}");
    (std::fs::read_to_string(out.path()).unwrap(), peak)
}

/// A child process killed (and reaped) however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `--log-format json`: every line on stderr is one JSON object, with the job id as a field where a job is
/// concerned.
#[test]
fn json_logs() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[engine]\ntick_ms = 50\n");
    let objects = dir.path().join("data/objects");
    std::fs::create_dir_all(objects.join("manifests")).unwrap();
    std::fs::write(objects.join("manifests/m.csv"), "manifests,none-1\nmanifests,none-2\n").unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = KillOnDrop(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&config)
            .args(["--log-format", "json"])
            .env("S3BATCH_LOG", "info,s3batch_engine=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.0.stdout.take().unwrap()), &mut line).unwrap();
    let endpoint = line.trim().strip_prefix("s3batch listening on ").expect("the ready line").to_string();
    let (status, created) = common::api(
        "POST",
        &format!("{endpoint}/api/v1/jobs"),
        Some(serde_json::json!({
            "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "k", "Value": "v"}]}},
            "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                         "Location": {"ObjectArn": "arn:aws:s3:::manifests/m.csv"}},
            "Report": {"Enabled": false}, "Priority": 1, "ConfirmationRequired": false,
        })),
    );
    assert_eq!(status, 200, "{created}");
    let id = created["JobId"].as_str().unwrap().to_string();
    wait_done(&endpoint, &id);
    drop(child);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 2, "{text}");
    assert!(lines.iter().all(|l| l["level"].is_string() && l["timestamp"].is_string()), "{text}");
    let about_job: Vec<_> = lines.iter().filter(|l| l["job"].as_str() == Some(id.as_str())).collect();
    assert!(about_job.iter().any(|l| l["message"] == "job created"), "{text}");
    // An engine line inside a chunk carries the job, the chunk and the worker.
    let chunk = lines.iter().find(|l| l["message"] == "chunk committed").unwrap_or_else(|| panic!("{text}"));
    assert_eq!(chunk["span"]["job"].as_str(), Some(id.as_str()), "{chunk}");
    assert!(chunk["span"]["chunk"].is_number() && chunk["span"]["worker"].is_string(), "{chunk}");
}

/// The Grafana dashboard in the repository graphs only metrics the process describes.
#[test]
fn the_dashboard_uses_the_metrics_s3batch_exports() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dashboard = std::fs::read_to_string(root.join("docs/grafana/s3batch.json")).unwrap();
    let _: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let described = std::fs::read_to_string(root.join("crates/s3batch/src/metrics.rs")).unwrap();
    let mut used: Vec<&str> = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("s3batch_"))
        .map(|w| w.trim_end_matches("_bucket"))
        .collect();
    used.sort();
    used.dedup();
    assert!(used.len() >= 12, "{used:?}");
    for name in used {
        assert!(
            described.contains(&format!("\"{name}\"")),
            "the dashboard graphs {name}, which s3batch does not describe"
        );
    }
}

/// The console is a front end of the same pipeline as the APIs: its requests are counted in
/// `s3batch_api_requests_total{dialect="console"}` under the operation they perform and the code of their answer,
/// also when the console shows the error on a page, and carry a request id.
#[test]
fn console_requests_are_counted_like_api_calls() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let server = Server::start(&config);
    let base = server.endpoint.clone();
    let (list, job_page, forged) = block(async {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let list = client.get(format!("{base}/console")).send().await.unwrap();
        let cookie = list.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
        let list = (list.status().as_u16(), list.headers().contains_key("x-amz-request-id"));
        let job =
            client.get(format!("{base}/console/jobs/no-such-job")).header("cookie", &cookie).send().await.unwrap();
        let job_page = (job.status().as_u16(), job.text().await.unwrap());
        let forged = client
            .post(format!("{base}/console/jobs/no-such-job/priority"))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("csrf=guess&priority=7")
            .send()
            .await
            .unwrap();
        (list, job_page, (forged.status().as_u16(), forged.text().await.unwrap()))
    });
    assert_eq!(list, (200, true), "the job list, with a request id");
    assert_eq!(job_page.0, 404);
    assert!(job_page.1.contains("NotFoundException"), "{}", job_page.1);
    assert_eq!(forged.0, 403);
    assert!(forged.1.contains("AccessDenied"), "{}", forged.1);

    let (_, text) = get(&format!("{base}/metrics"));
    let m = parse_metrics(&text);
    let console = |operation: &str, code: &str| {
        sample(&m, "s3batch_api_requests_total", &[("dialect", "console"), ("operation", operation), ("code", code)])
    };
    assert_eq!(console("ListJobs", "OK"), 1.0);
    assert_eq!(console("DescribeJob", "NotFoundException"), 1.0);
    assert_eq!(console("UpdateJobPriority", "AccessDenied"), 1.0);
}
