//! The web console end to end, in a real headless browser: Debian's `chromium` driven by playwright-core (from
//! npm, installed under the test target directory), against a real `s3batch serve` whose buckets live on a real
//! moto server. `tests/clients/console.mjs` is the user: it signs in, creates a tagging job through the form over
//! a CSV manifest with missing keys, confirms it after the preview, watches it complete, reads the report,
//! searches and filters, changes a running job's priority, cancels it, and checks that another account's job is
//! invisible and that cross-site forms are refused. Screenshots of every page go to `target/console-screenshots/`.
//! A missing browser, Node or moto fails the test; nothing is skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Server, block, moto_put, start_moto, write_config};

const A: (&str, &str, &str) = ("111111111111", "AKIDCONSOLEA", "secret-a");
const B: (&str, &str, &str) = ("222222222222", "AKIDCONSOLEB", "secret-b");
const OBJECTS: usize = 30;
const MISSING: usize = 5;

/// A JSON API call with HTTP Basic credentials.
fn api(
    server: &Server,
    who: (&str, &str, &str),
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let url = format!("{}{path}", server.endpoint);
    block(async {
        let resp = reqwest::Client::new()
            .request(method.parse().unwrap(), &url)
            .basic_auth(who.1, Some(who.2))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let v: serde_json::Value = resp.json().await.unwrap_or_default();
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v
    })
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("S3BATCH_CHROMIUM").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/chromium".into());
    assert!(
        path.exists(),
        "no Chromium at {} (install Debian's with `apt-get install -y chromium`, or set S3BATCH_CHROMIUM)",
        path.display()
    );
    path
}

/// playwright-core under the test target directory, installed with npm when missing; its `node_modules`.
fn playwright() -> PathBuf {
    let prefix = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-e2e");
    let modules = prefix.join("node_modules");
    if !modules.join("playwright-core").join("package.json").exists() {
        std::fs::create_dir_all(&prefix).unwrap();
        let out = Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .arg("playwright-core@1")
            .output()
            .expect("npm must be installed to run the console test");
        assert!(out.status.success(), "installing playwright-core failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    modules
}

fn screenshots() -> PathBuf {
    // CARGO_TARGET_TMPDIR is target/tmp.
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("console-screenshots")
}

fn run_driver(mode: &str, endpoint: &str, data: serde_json::Value) {
    let modules = playwright();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/console.mjs");
    // An .mjs file resolves packages from its own directory upwards, not NODE_PATH: run a copy next to them.
    let copy = modules.parent().unwrap().join("console.mjs");
    std::fs::copy(&script, &copy).unwrap();
    let out = Command::new("node")
        .arg(&copy)
        .args([mode, endpoint])
        .arg(chromium())
        .arg(screenshots())
        .arg(data.to_string())
        .output()
        .expect("node must be installed to run the console test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "console {mode} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("console {mode}: ok")), "{stdout}");
}

#[test]
fn a_user_manages_jobs_in_the_console() {
    let moto = start_moto();
    for b in ["photos", "manifests", "reports"] {
        moto_put(&moto, b, "");
    }
    let mut manifest = String::new();
    for i in 0..OBJECTS {
        moto_put(&moto, &format!("photos/img/{i:03}.jpg"), "jpeg");
        manifest.push_str(&format!("photos,img/{i:03}.jpg\n"));
    }
    for i in 0..MISSING {
        manifest.push_str(&format!("photos,missing/{i}.jpg\n"));
    }
    moto_put(&moto, "manifests/photos.csv", &manifest);
    let slow: String = (0..200).map(|i| format!("photos,img/{:03}.jpg\n", i % OBJECTS)).collect();
    moto_put(&moto, "manifests/slow.csv", &slow);

    let dir = tempfile::tempdir().unwrap();
    let mut accounts = String::new();
    for (id, key, secret) in [A, B] {
        accounts.push_str(&format!(
            "[[accounts]]\naccount_id = \"{id}\"\naccess_key_id = \"{key}\"\nsecret_access_key = \"{secret}\"\n\n\
             [[roles]]\narn = \"arn:aws:iam::{id}:role/console\"\nread = [\"manifests\", \"photos\", \"reports\"]\n\
             write = [\"photos\", \"reports\"]\n\n"
        ));
    }
    let config = write_config(
        dir.path(),
        &format!(
            "{accounts}[engine]\ntick_ms = 50\n\n[[storage]]\nname = \"moto\"\nkind = \"s3\"\nbuckets = [\"*\"]\n\
             endpoint = \"{}\"\nregion = \"us-east-1\"\nforce_path_style = true\naccess_key_id = \"testing\"\n\
             secret_access_key = \"testing\"\n",
            moto.endpoint
        ),
    );
    let server = Server::start(&config);

    let job = |who: (&str, &str, &str), description: &str, key: &str, extra: serde_json::Value| {
        let mut body = serde_json::json!({
            "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "k", "Value": "v"}]}},
            "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                         "Location": {"ObjectArn": format!("arn:aws:s3:::manifests/{key}")}},
            "Report": {"Enabled": false},
            "Priority": 5,
            "Description": description,
            "RoleArn": format!("arn:aws:iam::{}:role/console", who.0),
        });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        api(&server, who, "POST", "/api/v1/jobs", body)["JobId"].as_str().unwrap().to_string()
    };
    // A job that stays Active for a while (one task a second), and one of the other account.
    let active = job(A, "slow tagging", "slow.csv", serde_json::json!({"ConfirmationRequired": false, "RateLimit": 1}));
    let other = job(B, "account B's job", "photos.csv", serde_json::json!({}));

    run_driver(
        "accounts",
        &server.endpoint,
        serde_json::json!({
            "account": A.0, "key": A.1, "secret": A.2,
            "manifestBucket": "manifests", "manifestKey": "photos.csv", "reportBucket": "reports",
            "manifestLines": OBJECTS + MISSING, "missing": MISSING,
            "activeJob": active, "otherAccountJob": other,
        }),
    );

    // What the browser did is what the service holds.
    let jobs = api(&server, A, "GET", "/api/v1/jobs", serde_json::Value::Null);
    let mine: Vec<&serde_json::Value> = jobs["Jobs"].as_array().unwrap().iter().collect();
    let created = mine.iter().find(|j| j["Description"] == "Tag the photos from the console").expect("the form's job");
    assert_eq!(created["Status"], "Complete");
    assert_eq!(created["ProgressSummary"]["NumberOfTasksFailed"], MISSING as i64);
    assert_eq!(created["ProgressSummary"]["NumberOfTasksSucceeded"], OBJECTS as i64);
    assert_eq!(created["Priority"], 20);
    let slow = mine.iter().find(|j| j["JobId"] == active.as_str()).unwrap();
    assert_eq!(slow["Status"], "Cancelled");
    assert_eq!(slow["Priority"], 77);
    assert_eq!(slow["StatusUpdateReason"], "enough for today");
    assert_eq!(slow["RateLimit"], 2);
    let rerun = mine.iter().find(|j| j["RerunOf"] == created["JobId"]).expect("the re-run job");
    assert_eq!(rerun["Status"], "Suspended");
    let b = api(&server, B, "GET", &format!("/api/v1/jobs/{other}"), serde_json::Value::Null);
    assert_eq!(b["Status"], "Suspended", "account B's job was not touched");
}

#[test]
fn a_cross_site_page_cannot_use_an_open_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[engine]\ntick_ms = 50\n");
    let server = Server::start(&config);
    run_driver("open", &server.endpoint, serde_json::json!({}));
    let (status, jobs) = common::api("GET", &format!("{}/api/v1/jobs", server.endpoint), None);
    assert_eq!(status, 200);
    assert_eq!(jobs["Jobs"].as_array().map(Vec::len), Some(0), "no job was created: {jobs}");
}

/// Guessing secrets online does not work: console sign-ins are throttled per access key id, and the JSON API
/// answers an unknown key and a wrong secret alike and has the same per-account request rate as the other APIs.
#[test]
fn sign_in_and_api_calls_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("s3batch.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nrequests_per_second = 0.001\nrequest_burst = 3\n\n\
             [engine]\ntick_ms = 50\n\n[[accounts]]\naccount_id = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n\n\
             [[accounts]]\naccount_id = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
            dir.path().join("data").display(),
            A.0,
            A.1,
            A.2,
            B.0,
            B.1,
            B.2
        ),
    )
    .unwrap();
    let server = Server::start(&config);
    let base = server.endpoint.clone();
    block(async move {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let sign_in = |key: &'static str, secret: &'static str| {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let page = client.get(format!("{base}/console/sign-in")).send().await.unwrap();
                let cookie = page
                    .headers()
                    .get_all("set-cookie")
                    .iter()
                    .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                let html = page.text().await.unwrap();
                let token = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap();
                let form = [("csrf", token), ("access_key_id", key), ("secret", secret)];
                let resp = client
                    .post(format!("{base}/console/sign-in"))
                    .header("cookie", cookie)
                    .header("origin", base.as_str())
                    .form(&form)
                    .send()
                    .await
                    .unwrap();
                resp.status().as_u16()
            }
        };
        for i in 0..10 {
            assert_eq!(sign_in(A.1, "guess").await, 401, "attempt {i}");
        }
        assert_eq!(sign_in(A.1, "guess").await, 429, "the 11th attempt in a row is throttled");
        assert_eq!(sign_in(A.1, A.2).await, 429, "even with the right secret, until the key's bucket refills");
        assert_eq!(sign_in(B.1, B.2).await, 303, "another key signs in");

        let jobs = format!("{base}/api/v1/jobs");
        let call = |key: &'static str, secret: &'static str| {
            let (client, jobs) = (client.clone(), jobs.clone());
            async move {
                let r = client.get(&jobs).basic_auth(key, Some(secret)).send().await.unwrap();
                (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap())
            }
        };
        let (s1, wrong_secret) = call(A.1, "guess").await;
        let (s2, unknown_key) = call("AKIDNOSUCHKEY", A.2).await;
        assert_eq!((s1, s2), (403, 403));
        assert_eq!(wrong_secret, unknown_key, "the answer does not tell which keys exist");
        for i in 0..3 {
            assert_eq!(call(A.1, A.2).await.0, 200, "call {i} is within the burst");
        }
        let (status, body) = call(A.1, A.2).await;
        assert_eq!((status, body["Code"].as_str()), (429, Some("TooManyRequestsException")), "{body}");
        assert_eq!(call(B.1, B.2).await.0, 200, "accounts have their own rate");
    });
}
