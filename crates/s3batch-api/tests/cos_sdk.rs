//! The COS dialect driven by the real Tencent COS Python SDK (`cos-python-sdk-v5`, through its signed-request
//! helper, as the wire reference's recipe does it), against a real s3batch server in this process: SQLite job
//! store, in-memory object storage, a running engine, q-sign credentials for two accounts with their APPIDs.
//! The driver is `tests/cos_client.py`; this test installs the SDK if it is missing (and fails if it cannot),
//! runs the driver, and checks what the job did to the storage.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use s3batch_api::{Account, Accounts, AppState};
use s3batch_engine::roles::{RoleConfig, Roles};
use s3batch_engine::service::JobService;
use s3batch_engine::{CancellationToken, Engine, EngineConfig};
use s3batch_storage::memory::MemoryStore;
use s3batch_storage::{ObjectRef, ObjectStore, PutBody, PutOptions, Router};
use s3batch_store::JobStore;
use s3batch_store::sqlite::SqliteStore;

const APPID: &str = "1250000000";
const OTHER_APPID: &str = "1250000001";
const DATA: &str = "data-1250000000";
const MANIFESTS: &str = "manifests-1250000000";
const TARGET: &str = "target-1250000000";
const REPORTS: &str = "reports-1250000000";

struct Server {
    _dir: tempfile::TempDir,
    addr: std::net::SocketAddr,
    objects: MemoryStore,
    manifest_etag: String,
    shutdown: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn JobStore> = Arc::new(SqliteStore::open(&dir.path().join("jobs.db")).await.unwrap());
    let objects = MemoryStore::new();
    for b in [DATA, MANIFESTS, TARGET, REPORTS] {
        objects.create_bucket(b).await.unwrap();
    }
    let opts = PutOptions::default();
    for k in ["a", "b", "c"] {
        objects.put_object(DATA, k, PutBody::Bytes(Bytes::from(format!("body of {k}"))), &opts).await.unwrap();
    }
    // COSBatchOperations_CSV_V1: `bucket-appid,key`, no header, the last line without a newline (as Go writes it).
    let manifest = Bytes::from(format!("{DATA},a\n{DATA},b\n{DATA},c"));
    objects.put_object(MANIFESTS, "manifests/m.csv", PutBody::Bytes(manifest), &opts).await.unwrap();
    let etag = objects.head_object(&ObjectRef::new(MANIFESTS, "manifests/m.csv")).await.unwrap().etag;
    // Clients pass the PUT response's ETag header, quotes included.
    let manifest_etag = format!("\"{}\"", etag.trim_matches('"'));

    let mut router = Router::default();
    router.add("mem", vec!["*".into()], Arc::new(objects.clone()));
    // The role the clients' jobs name (COS requests name its CAM role), allowing what they touch.
    let role = RoleConfig {
        arn: "arn:aws:iam::111111111111:role/cos-batch".into(),
        cos_arn: Some("qcs::cam::uin/100000000001:roleName/COS_Batch_QcsRole".into()),
        read: vec![DATA.into(), MANIFESTS.into()],
        write: vec![DATA.into(), TARGET.into(), REPORTS.into()],
        operations: None,
        functions: vec![],
        credentials: vec![],
    };
    let roles = Arc::new(Roles::new(&[role], &[], Arc::new(router), true).unwrap());
    let cfg = EngineConfig { tick_ms: 20, lease_ms: 2000, ..Default::default() };
    let engine = Engine::with_roles(store.clone(), roles.clone(), cfg, "engine");
    let shutdown = CancellationToken::new();
    tokio::spawn(engine.clone().run(shutdown.clone()));
    let account = |id: &str, key: &str, appid: &str| Account {
        account_id: id.into(),
        access_key_id: key.into(),
        secret_access_key: Some(format!("secret-of-{key}")),
        cos_appid: Some(appid.into()),
        ..Default::default()
    };
    let accounts = Accounts::new(vec![
        account("111111111111", "AKIDCOSA", APPID),
        account("222222222222", "AKIDCOSB", OTHER_APPID),
    ])
    .unwrap();
    let service = JobService::new(store, engine.wake.clone(), 90).with_roles(roles);
    let state = AppState::new(service, Arc::new(accounts), "ap-chengdu");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = s3batch_api::router(state);
    let stop = shutdown.clone();
    tokio::spawn(async move {
        axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await.unwrap();
    });
    Server { _dir: dir, addr, objects, manifest_etag, shutdown }
}

/// `python3` with `qcloud_cos` importable: installed with pip when missing. A machine where that fails fails
/// this test (it is not skipped).
async fn python_with_cos_sdk() {
    let importable = || async {
        tokio::process::Command::new("python3")
            .args(["-c", "import qcloud_cos"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success())
    };
    if importable().await {
        return;
    }
    let out = tokio::process::Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "cos-python-sdk-v5"])
        .output()
        .await
        .expect("python3 must be installed to run the COS SDK test");
    assert!(
        out.status.success() && importable().await,
        "installing cos-python-sdk-v5 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run a driver script against `s` with the fixtures in its environment; its stdout, once it succeeded.
async fn run_driver(s: &Server, program: &str, script: &str, extra_env: &[(&str, String)]) -> String {
    let mut cmd = tokio::process::Command::new(program);
    cmd.arg(script)
        .env("COS_ENDPOINT", format!("http://{}", s.addr))
        .env("COS_APPID", APPID)
        .env("COS_OTHER_APPID", OTHER_APPID)
        .env("COS_SECRET_ID", "AKIDCOSA")
        .env("COS_SECRET_KEY", "secret-of-AKIDCOSA")
        .env("COS_OTHER_SECRET_ID", "AKIDCOSB")
        .env("COS_OTHER_SECRET_KEY", "secret-of-AKIDCOSB")
        .env("COS_MANIFEST_ARN", format!("qcs::cos:ap-chengdu:uid/{APPID}:{MANIFESTS}/manifests/m.csv"))
        .env("COS_MANIFEST_ETAG", &s.manifest_etag)
        .env("COS_TARGET", format!("qcs::cos:ap-chengdu:uid/{APPID}:{TARGET}"))
        .env("COS_REPORT_BUCKET", format!("qcs::cos:ap-chengdu::{REPORTS}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap_or_else(|e| panic!("{program} must be installed to run {script}: {e}"));
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the COS client finishes within 2 minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "{script} failed ({}):\n{stdout}\n{stderr}", out.status);
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_cos_sdk_drives_every_call() {
    python_with_cos_sdk().await;
    let s = start().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cos_client.py");
    let stdout = run_driver(&s, "python3", script, &[]).await;
    for needle in [
        "PASS create: 200 <CreateJobResult>",
        "PASS describe: ETag with its quotes",
        "PASS describe: manifest qcs ARN as given",
        "PASS list: page 2 after the token",
        "PASS priority: describe shows 42",
        "PASS status: the reason, decoded",
        "PASS run: 3 tasks succeeded",
        "PASS status: the job ends Cancelled",
        "PASS delete: 204 for a finished job",
        "PASS error: bad signature",
        "PASS error: another account's APPID",
        "PASS error: bad XML",
        "PASS error: a reused ClientRequestToken",
        "PASS accounts: another account cannot see the job",
        "PASS roles: another account cannot use the role",
    ] {
        assert!(stdout.contains(needle), "missing '{needle}' in:\n{stdout}");
    }
    let last = stdout.lines().last().unwrap_or("");
    assert!(last.starts_with("cos_client: ") && last.ends_with(" checks passed"), "{stdout}");

    // What the COS job did: each object copied under copies/ in the target bucket, with the new tags…
    for k in ["a", "b", "c"] {
        let copy = ObjectRef::new(TARGET, format!("copies/{k}"));
        let info = s.objects.head_object(&copy).await.unwrap_or_else(|e| panic!("copies/{k}: {e:?}"));
        assert_eq!(info.size, format!("body of {k}").len() as u64);
        let tags = s.objects.get_object_tagging(&copy).await.unwrap();
        assert_eq!(tags.len(), 1, "{tags:?}");
        assert_eq!((tags[0].key.as_str(), tags[0].value.as_str()), ("stage", "copied"));
    }
    // …and the report in the report bucket under the prefix.
    let job_id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("COMPLETED_JOB "))
        .expect("the driver names the completed job")
        .trim()
        .to_string();
    let page = s.objects.list_objects(REPORTS, &format!("job-result/job-{job_id}/"), None, 100).await.unwrap();
    let keys: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
    assert!(keys.iter().any(|k| k.ends_with("/manifest.json")), "report objects: {keys:?}");
}

/// `cos-nodejs-sdk-v5` 3.x under the test target directory (installed with npm when missing); its
/// `node_modules`, for NODE_PATH. A machine where that fails fails this test.
async fn node_cos_sdk() -> std::path::PathBuf {
    let prefix = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cos-node");
    let modules = prefix.join("node_modules");
    if !modules.join("cos-nodejs-sdk-v5").join("package.json").exists() {
        std::fs::create_dir_all(&prefix).unwrap();
        let out = tokio::process::Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .arg("cos-nodejs-sdk-v5@3")
            .output()
            .await
            .expect("npm must be installed to run the COS Node SDK test");
        assert!(out.status.success(), "installing cos-nodejs-sdk-v5 failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    modules
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_cos_sdk_drives_the_calls() {
    let modules = node_cos_sdk().await;
    let s = start().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cos_client.js");
    let stdout = run_driver(&s, "node", script, &[("NODE_PATH", modules.display().to_string())]).await;
    for needle in [
        "PASS node describe: ETag echoed",
        "PASS node priority: 77",
        "PASS node status: Cancelled with a reason (spaces as %20)",
        "PASS node error: bad signature",
        "PASS node error: bad XML",
    ] {
        assert!(stdout.contains(needle), "missing '{needle}' in:\n{stdout}");
    }
    assert!(stdout.lines().last().is_some_and(|l| l.ends_with(" checks passed")), "{stdout}");
}
