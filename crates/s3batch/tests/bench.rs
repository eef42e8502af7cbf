//! `s3batch bench garage` against a real S3 server (moto): the operations it is asked for and no others, and the
//! round-by-round ratios of s3batch's job to each tool.

mod common;

use common::*;

fn bench_garage(moto: &Moto, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(BIN)
        .args(["bench", "garage", "--endpoint", &moto.endpoint, "--region", "us-east-1"])
        .args(["--access-key-id", "testing", "--secret-access-key", "testing"])
        .args(args)
        .output()
        .expect("running s3batch bench garage");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// The ratios of one row of the round-by-round table: (rate ratios, CPU ratios); None for a dash (a ratio of CPU
/// times too small to count: a few objects' CPU is whole clock ticks, often none).
fn paired(stdout: &str, operation: &str, tool: &str) -> (Vec<Option<f64>>, Vec<Option<f64>>) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(operation) && l.contains(tool) && l.contains(" rate "))
        .unwrap_or_else(|| panic!("no round-by-round row for {operation} / {tool}:\n{stdout}"));
    let numbers = |after: &str, before: &str| -> Vec<Option<f64>> {
        let start = line.find(after).unwrap() + after.len();
        let end = start + line[start..].find(before).unwrap();
        let ratio = |x: &str| (x != "–").then(|| x.parse().unwrap_or_else(|_| panic!("not a ratio: {x:?} in {line}")));
        line[start..end].split_whitespace().map(ratio).collect()
    };
    (numbers(" rate ", " (median"), numbers(" CPU ", " (median"))
}

#[test]
fn bench_garage_runs_the_operations_asked_for_and_pairs_each_round() {
    let moto = start_moto();
    let (ok, out, err) = bench_garage(
        &moto,
        &["--objects", "20", "--rounds", "2", "--tools", "s3batch,raw-sdk", "--operations", "copy,tagging"],
    );
    assert!(ok, "{out}\n{err}");
    for operation in ["S3PutObjectCopy", "S3PutObjectTagging"] {
        let (rate, cpu) = paired(&out, operation, "raw SDK loop");
        assert_eq!((rate.len(), cpu.len()), (2, 2), "one ratio a round: {out}");
        assert!(rate.iter().all(|r| r.is_some_and(|r| r.is_finite() && r > 0.0)), "{out}");
        assert!(cpu.iter().flatten().all(|r| r.is_finite() && *r > 0.0), "{out}");
    }
    assert!(!out.contains("S3DeleteObject"), "delete was not asked for: {out}");

    // Paced: both at the same rate, the same rows; the headings say so.
    let (ok, out, err) = bench_garage(
        &moto,
        &["--objects", "20", "--rounds", "2", "--tools", "s3batch,raw-sdk", "--operations", "copy", "--rate", "50"],
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("concurrency 64, paced to 50 objects/s, round 2/2"), "{out}");
    let (rate, _) = paired(&out, "S3PutObjectCopy", "raw SDK loop");
    assert_eq!(rate.len(), 2, "{out}");
    // 20 objects at 50 a second take at least 0.38 s (the 20th starts 19/50 s in): at most about 52 objects/s.
    let raw_rate: f64 = out
        .lines()
        .find(|l| l.trim_start().starts_with("raw SDK loop") && !l.contains(" rate "))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|x| x.replace(',', "").parse().ok())
        .unwrap_or_else(|| panic!("no raw SDK loop row: {out}"));
    assert!(raw_rate <= 53.0, "the raw loop was not paced: {raw_rate} objects/s\n{out}");
    // Only s3batch and the raw SDK loop can be paced.
    let (ok, out, err) = bench_garage(&moto, &["--objects", "20", "--rate", "50"]);
    assert!(!ok, "{out}");
    assert!(err.contains("--rate paces s3batch and the raw SDK loop only"), "{err}");
    assert!(!out.contains("creating them"), "{out}");

    // Delete deletes the copies: alone it is refused before anything runs.
    let (ok, out, err) = bench_garage(&moto, &["--objects", "20", "--operations", "delete"]);
    assert!(!ok, "{out}");
    assert!(err.contains("--operations delete needs copy too"), "{err}");
    assert!(!out.contains("creating them"), "{out}");
}
