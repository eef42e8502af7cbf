//! The `s3batch job …` commands against a running `s3batch serve`, over the JSON API, on the embedded default
//! (local directory store, SQLite).

mod common;

use common::*;

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Objects dropped into `<data>/objects/<bucket>/<key>` by hand are the local store's objects.
fn put_file(dir: &std::path::Path, bucket: &str, key: &str, body: &str) {
    let p = dir.join("data/objects").join(bucket).join(key);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
}

const OP: &str = r#"{"S3PutObjectTagging":{"TagSet":[{"Key":"cli","Value":"yes"}]}}"#;

#[test]
fn create_confirm_watch_priority_cancel_list() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[engine]\ntick_ms = 50\n");
    let mut manifest = String::new();
    for i in 0..50 {
        put_file(dir.path(), "photos", &format!("img {i}.jpg"), "x");
        manifest += &format!("photos,img%20{i}.jpg\n");
    }
    manifest += "photos,not%20there.jpg\n";
    put_file(dir.path(), "manifests", "m.csv", &manifest);
    std::fs::create_dir_all(dir.path().join("data/objects/reports")).unwrap();
    let server = Server::start(&config);
    let ep = server.endpoint.as_str();
    let env = [("S3BATCH_ACCOUNT_ID", "123456789012")];

    let (ok, out, err) = cli(
        ep,
        &[
            "create",
            "--operation",
            OP,
            "--manifest-csv",
            "s3://manifests/m.csv",
            "--report-bucket",
            "reports",
            "--report-prefix",
            "cli",
            "--priority",
            "7",
            "--description",
            "from the CLI",
            "--output",
            "json",
        ],
        &env,
    );
    assert!(ok, "{err}");
    let id = json(&out)["JobId"].as_str().unwrap().to_string();

    // Confirmation is required by default: the job waits in Suspended.
    let j = wait_until(30, "Suspended", || {
        let (_, out, _) = cli(ep, &["describe", &id, "--output", "json"], &env);
        let j = json(&out);
        (j["Status"] == "Suspended").then_some(j)
    });
    assert_eq!(j["ProgressSummary"]["TotalNumberOfTasks"], 51);
    assert_eq!(j["Priority"], 7);
    assert_eq!(j["Description"], "from the CLI");
    assert!(j["SuspendedDate"].is_string() && j["SuspendedCause"].is_string(), "{j}");
    assert_eq!(j["JobArn"], format!("arn:aws:s3:us-east-1:123456789012:job/{id}"));

    let (ok, out, err) = cli(ep, &["priority", &id, "42", "--output", "json"], &env);
    assert!(ok, "{err}");
    assert_eq!(json(&out)["Priority"], 42);

    let (ok, out, _) = cli(ep, &["list", "--status", "Suspended"], &env);
    assert!(ok && out.contains(&id) && out.contains("S3PutObjectTagging"), "{out}");

    let (ok, _, err) = cli(ep, &["confirm", &id, "--reason", "looks right"], &env);
    assert!(ok, "{err}");
    let (ok, out, err) = cli(ep, &["watch", &id, "--output", "json"], &env);
    assert!(ok, "{err}");
    let done = json(&out);
    assert_eq!(done["Status"], "Complete", "{done}");
    assert_eq!(done["ProgressSummary"]["NumberOfTasksSucceeded"], 50);
    assert_eq!(done["ProgressSummary"]["NumberOfTasksFailed"], 1);
    assert_eq!(done["StatusUpdateReason"], "looks right");
    assert!(done["TerminationDate"].is_string());
    let location = done["ReportLocation"].as_str().unwrap();
    assert_eq!(location, format!("s3://reports/cli/job-{id}/manifest.json"));
    assert!(dir.path().join(format!("data/objects/reports/cli/job-{id}/manifest.json")).exists());

    // A finished job cannot be cancelled; the error names the modeled code.
    let (ok, _, err) = cli(ep, &["cancel", &id], &env);
    assert!(!ok && err.contains("JobStatusException"), "{err}");

    // A second job, cancelled while it waits for confirmation: Cancelled, no report (no task ran).
    let (_, out, _) = cli(
        ep,
        &[
            "create",
            "--operation",
            OP,
            "--manifest-csv",
            "s3://manifests/m.csv",
            "--report-bucket",
            "reports",
            "--output",
            "json",
        ],
        &env,
    );
    let id2 = json(&out)["JobId"].as_str().unwrap().to_string();
    wait_until(30, "Suspended", || {
        let (_, out, _) = cli(ep, &["describe", &id2, "--output", "json"], &env);
        (json(&out)["Status"] == "Suspended").then_some(())
    });
    let (ok, out, err) = cli(ep, &["cancel", &id2, "--reason", "No longer needed", "--output", "json"], &env);
    assert!(ok, "{err}");
    assert!(matches!(json(&out)["Status"].as_str(), Some("Cancelling" | "Cancelled")), "{out}");
    let j = wait_until(30, "Cancelled", || {
        let (_, out, _) = cli(ep, &["describe", &id2, "--output", "json"], &env);
        let j = json(&out);
        (j["Status"] == "Cancelled").then_some(j)
    });
    assert!(j.get("ReportLocation").is_none(), "no task ran, so no report: {j}");

    // Jobs belong to accounts: another account sees none of them.
    let (ok, _, err) = cli(ep, &["describe", &id], &[("S3BATCH_ACCOUNT_ID", "999999999999")]);
    assert!(!ok && err.contains("NotFoundException"), "{err}");
    let (_, out, _) = cli(ep, &["list", "--output", "json"], &[("S3BATCH_ACCOUNT_ID", "999999999999")]);
    assert_eq!(json(&out)["Jobs"], serde_json::json!([]));
}

#[test]
fn bad_input_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&write_config(dir.path(), ""));
    let ep = server.endpoint.as_str();
    let cases: &[(&[&str], &str)] = &[
        (&["create", "--operation", "{not json", "--manifest-csv", "s3://m/k"], "not valid JSON"),
        (&["create", "--operation", r#"{"S3Frobnicate":{}}"#, "--manifest-csv", "s3://mbk/k"], "not valid JSON"),
        (&["create", "--operation", OP, "--manifest-csv", "mbk/k"], "s3://bucket/key"),
        (&["create", "--operation", OP, "--manifest-csv", "s3://mbk/k", "--priority=-1"], "BadRequestException"),
        (
            &["create", "--operation", OP, "--manifest-csv", "s3://mbk/k", "--report-bucket", "NO"],
            "BadRequestException",
        ),
        (&["describe", "nope"], "BadRequestException"),
        (&["describe", "00000000-0000-0000-0000-000000000000"], "NotFoundException"),
        (&["priority", "00000000-0000-0000-0000-000000000000", "3000000000"], "BadRequestException"),
        (&["list", "--status", "Bogus"], "InvalidRequestException"),
        (&["list", "--next-token", "forged"], "InvalidNextTokenException"),
        (&["list", "--max-results", "1001"], "InvalidRequestException"),
    ];
    for (args, expected) in cases {
        let (ok, _, err) = cli(ep, args, &[]);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(expected), "{args:?}: expected '{expected}' in: {err}");
    }
    // Raw bodies the CLI would never send still get the modeled error, not a 500.
    let (status, body) = api("POST", &format!("{ep}/api/v1/jobs"), Some(serde_json::json!({"Priority": "high"})));
    assert_eq!((status, body["Code"].as_str()), (400, Some("BadRequestException")), "{body}");
}

#[test]
fn configured_accounts_require_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        r#"
[[accounts]]
account_id = "111111111111"
access_key_id = "AKIDONE"
secret_access_key = "secret-one"

[[accounts]]
account_id = "222222222222"
access_key_id = "AKIDTWO"
secret_access_key = "secret-two"

[[roles]]
arn = "arn:aws:iam::111111111111:role/tagger"
read = ["manifests", "photos"]
write = ["photos"]
operations = ["S3PutObjectTagging"]

[[roles]]
arn = "arn:aws:iam::222222222222:role/other"
read = ["*"]
write = ["*"]
"#,
    );
    put_file(dir.path(), "manifests", "m.csv", "photos,a\n");
    let server = Server::start(&config);
    let ep = server.endpoint.as_str();
    let one = [("S3BATCH_ACCESS_KEY_ID", "AKIDONE"), ("S3BATCH_SECRET_ACCESS_KEY", "secret-one")];
    let two = [("S3BATCH_ACCESS_KEY_ID", "AKIDTWO"), ("S3BATCH_SECRET_ACCESS_KEY", "secret-two")];

    let (ok, _, err) = cli(ep, &["list"], &[]);
    assert!(!ok && err.contains("AccessDenied"), "{err}");
    let (ok, _, err) =
        cli(ep, &["list"], &[("S3BATCH_ACCESS_KEY_ID", "AKIDONE"), ("S3BATCH_SECRET_ACCESS_KEY", "wrong")]);
    assert!(!ok && err.contains("AccessDenied"), "{err}");

    // With accounts, a job names a role of its account: none, or another account's, is refused.
    let create = ["create", "--operation", OP, "--manifest-csv", "s3://manifests/m.csv", "--output", "json"];
    let (ok, _, err) = cli(ep, &create, &one);
    assert!(!ok && err.contains("AccessDenied") && err.contains("[[roles]]") && err.contains("--role-arn"), "{err}");
    let with_role = |arn: &'static str| [&create[..], &["--role-arn", arn]].concat();
    let (ok, _, err) = cli(ep, &with_role("arn:aws:iam::222222222222:role/other"), &one);
    assert!(!ok && err.contains("AccessDenied") && err.contains("is not a role of account 111111111111"), "{err}");
    let (ok, _, err) = cli(ep, &with_role("arn:aws:iam::111111111111:role/tagger"), &two);
    assert!(!ok && err.contains("AccessDenied"), "{err}");
    let delete = ["create", "--operation", r#"{"S3DeleteObject":{}}"#, "--manifest-csv", "s3://manifests/m.csv"];
    let (ok, _, err) = cli(ep, &[&delete[..], &["--role-arn", "arn:aws:iam::111111111111:role/tagger"]].concat(), &one);
    assert!(!ok && err.contains("does not allow the operation S3DeleteObject"), "{err}");
    // `s3batch roles` lists the caller's account's roles only.
    let roles = |env: &[(&str, &str)]| {
        let out = std::process::Command::new(common::BIN)
            .args(["roles", "--endpoint", ep, "--output", "json"])
            .env_remove("S3BATCH_ACCOUNT_ID")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        json(&String::from_utf8_lossy(&out.stdout))
    };
    let listed = roles(&one);
    assert_eq!(listed["Required"], true);
    assert_eq!(listed["Roles"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["Roles"][0]["RoleArn"], "arn:aws:iam::111111111111:role/tagger");
    assert_eq!(listed["Roles"][0]["Write"], serde_json::json!(["photos"]));
    assert_eq!(listed["Roles"][0]["Operations"], serde_json::json!(["S3PutObjectTagging"]));
    assert_eq!(roles(&two)["Roles"][0]["RoleArn"], "arn:aws:iam::222222222222:role/other");

    let (ok, out, err) = cli(ep, &with_role("arn:aws:iam::111111111111:role/tagger"), &one);
    assert!(ok, "{err}");
    let id = json(&out)["JobId"].as_str().unwrap().to_string();
    let (ok, out, _) = cli(ep, &["describe", &id, "--output", "json"], &one);
    assert!(ok);
    assert_eq!(json(&out)["JobArn"], format!("arn:aws:s3:us-east-1:111111111111:job/{id}"));
    assert_eq!(json(&out)["RoleArn"], "arn:aws:iam::111111111111:role/tagger", "DescribeJob shows the role as given");
    // Account two cannot see or touch it, and key one cannot act for account two.
    let (ok, _, err) = cli(ep, &["cancel", &id], &two);
    assert!(!ok && err.contains("NotFoundException"), "{err}");
    let mut claim_two = one.to_vec();
    claim_two.push(("S3BATCH_ACCOUNT_ID", "222222222222"));
    let (ok, _, err) = cli(ep, &["list"], &claim_two);
    assert!(!ok && err.contains("AccessDenied"), "{err}");
}

#[test]
fn dry_run_rate_limit_and_preview() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[engine]\ntick_ms = 50\n");
    let mut manifest = String::new();
    for i in 0..20 {
        put_file(dir.path(), "photos", &format!("p{i}.jpg"), "0123456789");
        manifest += &format!("photos,p{i}.jpg\n");
    }
    manifest += "photos,gone.jpg\n";
    put_file(dir.path(), "manifests", "m.csv", &manifest);
    std::fs::create_dir_all(dir.path().join("data/objects/reports")).unwrap();
    let server = Server::start(&config);
    let ep = server.endpoint.as_str();
    let env = [("S3BATCH_ACCOUNT_ID", "123456789012")];

    let create = [
        "create",
        "--operation",
        r#"{"S3DeleteObject":{}}"#,
        "--manifest-csv",
        "s3://manifests/m.csv",
        "--report-bucket",
        "reports",
        "--rate-limit",
        "5",
        "--dry-run",
        "--output",
        "json",
    ];
    let (ok, out, err) = cli(ep, &create, &env);
    assert!(ok, "{err}");
    let id = json(&out)["JobId"].as_str().unwrap().to_string();
    let j = wait_until(30, "Suspended", || {
        let (_, out, _) = cli(ep, &["describe", &id, "--output", "json"], &env);
        let j = json(&out);
        (j["Status"] == "Suspended").then_some(j)
    });
    assert_eq!((j["RateLimit"].as_i64(), j["DryRun"].as_bool()), (Some(5), Some(true)), "{j}");

    // The preview while the job waits for confirmation: 21 lines, all sampled.
    let (ok, out, err) = cli(ep, &["preview", &id, "--output", "json"], &env);
    assert!(ok, "{err}");
    let p = json(&out);
    assert_eq!(p["TotalNumberOfTasks"], 21, "{p}");
    assert_eq!(p["SampleSize"], 21, "{p}");
    assert_eq!(p["TotalBytes"], 200, "{p}");
    assert_eq!(p["SampleFailures"]["NoSuchKey"], 1, "{p}");
    assert_eq!(p["ExpectedRequests"], 21, "{p}");
    assert_eq!(p["ThroughputBasis"], "rate-limit", "{p}");
    let (ok, out, _) = cli(ep, &["preview", &id], &env);
    assert!(ok && out.contains("Estimated time:") && out.contains("from a HEAD of 21 objects"), "{out}");

    // The limit changes and goes; bad limits are refused.
    let (ok, out, err) = cli(ep, &["rate-limit", &id, "50", "--output", "json"], &env);
    assert!(ok, "{err}");
    assert_eq!(json(&out)["RateLimit"], 50);
    let (ok, out, err) = cli(ep, &["rate-limit", &id, "none", "--output", "json"], &env);
    assert!(ok, "{err}");
    assert!(json(&out).get("RateLimit").is_none(), "{out}");
    let (ok, _, err) = cli(ep, &["rate-limit", &id, "0"], &env);
    assert!(!ok && err.contains("rate limit"), "{err}");

    // The dry run deletes nothing and reports the missing object.
    let (ok, _, err) = cli(ep, &["confirm", &id], &env);
    assert!(ok, "{err}");
    let j = wait_until(30, "Complete", || {
        let (_, out, _) = cli(ep, &["describe", &id, "--output", "json"], &env);
        let j = json(&out);
        (j["Status"] == "Complete").then_some(j)
    });
    assert_eq!(j["ProgressSummary"]["NumberOfTasksSucceeded"], 20, "{j}");
    assert_eq!(j["ProgressSummary"]["NumberOfTasksFailed"], 1, "{j}");
    for i in 0..20 {
        assert!(dir.path().join(format!("data/objects/photos/p{i}.jpg")).exists(), "p{i}.jpg was deleted");
    }
}
