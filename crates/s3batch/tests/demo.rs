//! `s3batch demo` runs the main job on the embedded default, end to end, with nothing else installed.

mod common;

#[test]
fn demo_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let out = std::process::Command::new(common::BIN)
        .args(["demo", "--objects", "120", "--missing", "3", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("status:      Complete"), "{stdout}");
    assert!(stdout.contains("tasks:       123 total, 120 succeeded, 3 failed"), "{stdout}");
    assert!(stdout.contains("tasks/s"), "{stdout}");
    assert!(stdout.contains(",failed,404,NoSuchKey,"), "{stdout}");
    assert!(stdout.contains("stage=tagged-by-s3batch"), "{stdout}");
    // The report is where the summary says.
    let line = stdout.lines().find(|l| l.trim_start().starts_with("report:")).unwrap();
    let key = line.trim().trim_start_matches("report:").trim().trim_start_matches("s3://demo-reports/");
    assert!(data.join("objects/demo-reports").join(key).exists(), "{key}");
    // A second run on the same data dir works too (a new job over the same objects).
    let again = std::process::Command::new(common::BIN)
        .args(["demo", "--objects", "10", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
}
