//! `s3batch demo`: the main job on the embedded default, end to end. A `local` store with sample objects (keys with
//! spaces, unicode, `+`, `%`, `#`, `?` and slashes), a CSV manifest that also names objects that do not exist, a job
//! that replaces the tags of every object, confirmed like a user would, run with a progress line, and a summary.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use s3batch_core::manifest::encode_key;
use s3batch_core::report::parse_rows;
use s3batch_core::{JobSpec, JobStatus, Tag};
use s3batch_engine::CancellationToken;
use s3batch_engine::service::RequestedStatus;
use s3batch_storage::{ObjectRef, PutBody, PutOptions};

use crate::config::Config;
use crate::progress::Progress;
use crate::serve;

/// The open server's default account, so `serve` on the demo's data directory shows the job in the console.
pub const ACCOUNT: &str = s3batch_api::auth::DEFAULT_ACCOUNT;
const DATA: &str = "demo-photos";
const MANIFESTS: &str = "demo-manifests";
const REPORTS: &str = "demo-reports";

/// The sample keys: every character a manifest must survive.
fn sample_key(i: usize) -> String {
    match i % 8 {
        0 => format!("photos/2024/holiday {i}.jpg"),
        1 => format!("docs/résumé-{i}.pdf"),
        2 => format!("a+b/c+d {i}.txt"),
        3 => format!("100%/done-{i}%20literal"),
        4 => format!("notes/#{i} draft.md"),
        5 => format!("what?/really?-{i}"),
        6 => format!("日本/ファイル{i}.txt"),
        _ => format!("deep/a/b/c/d/{i}"),
    }
}

pub async fn run(data_dir: PathBuf, objects: usize, missing: usize) -> Result<()> {
    let mut config = Config::default();
    config.server.data_dir = data_dir.clone();
    let parts = serve::build(&config, "demo").await?;
    let shutdown = CancellationToken::new();
    let engine = tokio::spawn(parts.engine.clone().run(shutdown.clone()));
    let router = parts.engine.router.clone();
    let local = router.store_for(DATA)?;

    println!("s3batch demo — data in {}", data_dir.display());
    for b in [DATA, MANIFESTS, REPORTS] {
        local.create_bucket(b).await?;
    }
    let mut manifest = String::new();
    for i in 0..objects {
        let key = sample_key(i);
        let body = format!("sample object {i}\n");
        let opts = PutOptions { tags: vec![Tag::new("stage", "original")], ..Default::default() };
        local.put_object(DATA, &key, PutBody::Bytes(body.into()), &opts).await?;
        manifest += &format!("{DATA},{}\n", encode_key(&key));
    }
    for i in 0..missing {
        manifest += &format!("{DATA},{}\n", encode_key(&format!("missing/ghost {i}.jpg")));
    }
    let manifest_key = format!("manifests/tagging-{}.csv", s3batch_core::time::now_millis());
    let put =
        local.put_object(MANIFESTS, &manifest_key, PutBody::Bytes(manifest.into()), &PutOptions::default()).await?;
    println!(
        "  {objects} sample objects in bucket {DATA}; manifest s3://{MANIFESTS}/{manifest_key} names {} (incl. {missing} that do not exist)",
        objects + missing
    );

    let spec: JobSpec = serde_json::from_value(serde_json::json!({
        "Operation": {"S3PutObjectTagging": {"TagSet": [
            {"Key": "stage", "Value": "tagged-by-s3batch"}, {"Key": "demo", "Value": "yes"}]}},
        "Manifest": {
            "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
            "Location": {"ObjectArn": format!("arn:aws:s3:::{MANIFESTS}/{manifest_key}"), "ETag": put.etag}},
        "Report": {"Enabled": true, "Bucket": format!("arn:aws:s3:::{REPORTS}"), "Format": "Report_CSV_20180820",
                   "Prefix": "reports", "ReportScope": "AllTasks"},
        "Priority": 10,
        "ConfirmationRequired": true,
        "Description": "s3batch demo: replace the tags of every object",
    }))?;
    let job = parts.service.create(ACCOUNT, None, spec).await?;
    println!("  created job {} (S3PutObjectTagging, confirmation required)", job.id);

    let start = Instant::now();
    wait_for(&parts.service, &job.id, |s| s != JobStatus::New && s != JobStatus::Preparing).await?;
    let j = parts.service.describe(ACCOUNT, &job.id).await?;
    if j.status != JobStatus::Suspended {
        bail!("expected the job to wait for confirmation, it is {}: {:?}", j.status, j.failure_reasons);
    }
    println!(
        "  prepared: {} tasks; the job is Suspended, awaiting confirmation — confirming",
        j.total_tasks.unwrap_or(0)
    );
    parts.service.update_status(ACCOUNT, &job.id, RequestedStatus::Ready, Some("confirmed by the demo".into())).await?;

    let progress = Progress::new(j.total_tasks.unwrap_or(0) as u64);
    let run_start = Instant::now();
    let done = loop {
        let j = parts.service.describe(ACCOUNT, &job.id).await?;
        progress.update(&j);
        if j.status.is_terminal() {
            break j;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    progress.finish(&done);
    let elapsed = run_start.elapsed();
    shutdown.cancel();
    engine.await?;

    let ran = done.succeeded + done.failed;
    println!();
    println!("  status:      {}", done.status);
    println!(
        "  tasks:       {} total, {} succeeded, {} failed",
        done.total_tasks.unwrap_or(0),
        done.succeeded,
        done.failed
    );
    println!(
        "  elapsed:     {:.2}s (confirm to finish; {:.2}s since creation)",
        elapsed.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
    println!("  throughput:  {:.0} tasks/s", ran as f64 / elapsed.as_secs_f64().max(1e-3));
    let Some(report_key) = done.report_key.clone() else {
        bail!("the job finished without a report: {:?}", done.failure_reasons)
    };
    let report_path = data_dir.join("objects").join(REPORTS).join(&report_key);
    println!("  report:      s3://{REPORTS}/{report_key}");
    println!("               {}", report_path.display());

    // Show what happened, read back from storage.
    let tags = local.get_object_tagging(&ObjectRef::new(DATA, sample_key(0))).await?;
    let shown: Vec<String> = tags.iter().map(|t| format!("{}={}", t.key, t.value)).collect();
    println!("  tags now on s3://{DATA}/{}: {}", sample_key(0), shown.join(", "));
    let manifest: s3batch_core::report::ReportManifest =
        serde_json::from_slice(&std::fs::read(&report_path).context("reading the report manifest")?)?;
    for r in &manifest.results {
        let path = data_dir.join("objects").join(&r.bucket).join(&r.key);
        let rows = parse_rows(&std::fs::read(&path)?)?;
        println!("  {} rows: {} in {}", r.task_execution_status.as_str(), rows.len(), path.display());
        if let Some(row) = rows.first() {
            println!(
                "    e.g. {},{},{},{},{},{},{}",
                row.bucket, row.key, row.version_id, row.status, row.http_status, row.error_code, row.result_message
            );
        }
    }
    if done.status != JobStatus::Complete {
        bail!("the demo job ended {}", done.status);
    }
    println!();
    println!("  see it in the web console: run");
    println!("    cargo run --release -- serve --data-dir {}", data_dir.display());
    println!("  and open http://127.0.0.1:8080/console/jobs/{}", job.id);
    Ok(())
}

async fn wait_for(
    service: &s3batch_engine::service::JobService,
    id: &str,
    until: impl Fn(JobStatus) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let j = service.describe(ACCOUNT, id).await?;
        if until(j.status) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("job {id} stayed {} for two minutes", j.status);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
