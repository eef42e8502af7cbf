//! Crash safety: `kill -9` of `serve` in the middle of a job, several times, then a restart ⇒ the job goes on and
//! completes; its report lists every manifest line exactly once; the counters equal the report rows.

mod common;

use std::collections::HashMap;

use common::*;

const LINES: usize = 30_000;

#[test]
fn kill_9_during_a_job_loses_and_doubles_nothing() {
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
    let mut manifest = String::new();
    for i in 0..LINES {
        manifest += &format!("crash-data,dir%20{}/obj+{i}%E2%9C%93\n", i % 13);
    }
    std::fs::write(objects.join("crash-manifests/manifest.csv"), &manifest).unwrap();

    let mut server = Server::start(&config);
    let (status, created) = api(
        "POST",
        &format!("{}/api/v1/jobs", server.endpoint),
        Some(serde_json::json!({
            "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "crash", "Value": "test"}]}},
            "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                         "Location": {"ObjectArn": "arn:aws:s3:::crash-manifests/manifest.csv"}},
            "Report": {"Enabled": true, "Bucket": "arn:aws:s3:::crash-reports", "Format": "Report_CSV_20180820",
                       "Prefix": "reports", "ReportScope": "AllTasks"},
            "Priority": 5,
            "ConfirmationRequired": false
        })),
    );
    assert_eq!(status, 200, "{created}");
    let id = created["JobId"].as_str().unwrap().to_string();
    let describe = |endpoint: &str| api("GET", &format!("{endpoint}/api/v1/jobs/{id}"), None).1;

    // Kill at three points of progress, restarting each time.
    let mut kills = 0;
    for fraction in [0.15, 0.45, 0.75] {
        let target = (LINES as f64 * fraction) as i64;
        let endpoint = server.endpoint.clone();
        let progressed = wait_until(120, "progress before the kill", || {
            let j = describe(&endpoint);
            let p = &j["ProgressSummary"];
            let done =
                p["NumberOfTasksSucceeded"].as_i64().unwrap_or(0) + p["NumberOfTasksFailed"].as_i64().unwrap_or(0);
            (done >= target || j["Status"] == "Complete").then_some(j)
        });
        if progressed["Status"] == "Complete" {
            break;
        }
        server.kill9();
        kills += 1;
        server = Server::start(&config);
    }
    assert_eq!(kills, 3, "the job finished before it could be killed three times: make it longer");

    let endpoint = server.endpoint.clone();
    let job = wait_until(180, "the job to finish after the restarts", || {
        let j = describe(&endpoint);
        j["Status"].as_str().is_some_and(|s| matches!(s, "Complete" | "Failed" | "Cancelled")).then_some(j)
    });
    assert_eq!(job["Status"], "Complete", "{job}");
    let p = &job["ProgressSummary"];
    assert_eq!(p["TotalNumberOfTasks"], LINES as i64);
    assert_eq!(p["NumberOfTasksSucceeded"], LINES as i64, "{job}");
    assert_eq!(p["NumberOfTasksFailed"], 0);

    // The report: every manifest line exactly once.
    let report_manifest = objects.join("crash-reports").join(format!("reports/job-{id}/manifest.json"));
    let rm: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_manifest).unwrap()).unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut rows = 0;
    for r in rm["Results"].as_array().unwrap() {
        let csv = std::fs::read(objects.join(r["Bucket"].as_str().unwrap()).join(r["Key"].as_str().unwrap())).unwrap();
        for row in s3batch_core::report::parse_rows(&csv).unwrap() {
            assert_eq!(row.status, "succeeded");
            *seen.entry(format!("{},{}", row.bucket, row.key)).or_default() += 1;
            rows += 1;
        }
    }
    assert_eq!(rows, LINES, "the counters equal the report rows");
    let duplicates: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "lines reported twice: {:?}", &duplicates[..duplicates.len().min(5)]);
    for line in manifest.lines() {
        assert_eq!(seen.get(line), Some(&1), "manifest line {line} missing from the report");
    }
}
