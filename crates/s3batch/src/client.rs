//! `s3batch job …`: a client of a running server's JSON API.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use s3batch_api::json::{
    CreateJobBody, CreateJobResult, ErrorBody, JobView, ListJobsResult, PriorityBody, RateLimitBody, ReportResult,
    RolesResult, UpdateStatusBody, WorkersResult,
};
use s3batch_core::JobSpec;
use s3batch_engine::preview::Preview;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::progress::Progress;

/// Where the server is and who is calling.
#[derive(Debug, Clone, clap::Args)]
pub struct Conn {
    /// The server's address.
    #[arg(long, env = "S3BATCH_ENDPOINT", default_value = "http://127.0.0.1:8080", global = true)]
    pub endpoint: String,
    /// Access key id (when the server has [[accounts]]).
    #[arg(long, env = "S3BATCH_ACCESS_KEY_ID", global = true)]
    pub access_key_id: Option<String>,
    /// Secret access key.
    #[arg(long, env = "S3BATCH_SECRET_ACCESS_KEY", global = true, hide_env_values = true)]
    pub secret_access_key: Option<String>,
    /// Account id to act for (an open server's jobs are grouped by it).
    #[arg(long, env = "S3BATCH_ACCOUNT_ID", global = true)]
    pub account_id: Option<String>,
    /// How to print results (`csv` is for `job report`'s rows).
    #[arg(long, value_enum, default_value = "table", global = true)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
    Csv,
}

pub struct Client {
    http: reqwest::Client,
    conn: Conn,
}

impl Client {
    pub fn new(conn: Conn) -> Result<Client> {
        if !conn.endpoint.starts_with("http://") {
            bail!("--endpoint must be an http:// URL (got '{}')", conn.endpoint);
        }
        Ok(Client { http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?, conn })
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}/api/v1{path}", self.conn.endpoint.trim_end_matches('/'));
        let mut r = self.http.request(method, url);
        if let Some(k) = &self.conn.access_key_id {
            r = r.basic_auth(k, self.conn.secret_access_key.as_deref());
        }
        if let Some(a) = &self.conn.account_id {
            r = r.header("x-amz-account-id", a);
        }
        r
    }

    async fn send<T: DeserializeOwned>(&self, r: reqwest::RequestBuilder) -> Result<T> {
        let resp = r.send().await.with_context(|| format!("cannot reach s3batch at {}", self.conn.endpoint))?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if !status.is_success() {
            match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(e) => bail!("{}: {}", e.code, e.message),
                Err(_) => bail!("HTTP {status}: {}", String::from_utf8_lossy(&bytes)),
            }
        }
        if bytes.is_empty() {
            return serde_json::from_slice(b"null").context("empty response");
        }
        serde_json::from_slice(&bytes).context("the server's answer is not what this CLI expects")
    }

    pub async fn create(&self, body: &CreateJobBody) -> Result<String> {
        let r: CreateJobResult = self.send(self.req(reqwest::Method::POST, "/jobs").json(body)).await?;
        Ok(r.job_id)
    }

    pub async fn describe(&self, id: &str) -> Result<JobView> {
        self.send(self.req(reqwest::Method::GET, &format!("/jobs/{}", path_seg(id)))).await
    }

    pub async fn list(&self, statuses: &[String], max: Option<i64>, token: Option<&str>) -> Result<ListJobsResult> {
        let mut q: Vec<(&str, String)> = statuses.iter().map(|s| ("status", s.clone())).collect();
        if let Some(m) = max {
            q.push(("maxResults", m.to_string()));
        }
        if let Some(t) = token {
            q.push(("nextToken", t.to_string()));
        }
        self.send(self.req(reqwest::Method::GET, "/jobs").query(&q)).await
    }

    pub async fn update_status(&self, id: &str, status: &str, reason: Option<String>) -> Result<JobView> {
        let body = UpdateStatusBody { requested_job_status: status.into(), status_update_reason: reason };
        self.send(self.req(reqwest::Method::POST, &format!("/jobs/{}/status", path_seg(id))).json(&body)).await
    }

    pub async fn priority(&self, id: &str, priority: i64) -> Result<JobView> {
        self.send(
            self.req(reqwest::Method::POST, &format!("/jobs/{}/priority", path_seg(id)))
                .json(&PriorityBody { priority }),
        )
        .await
    }

    /// Re-run a finished job's failed tasks as a new job.
    pub async fn rerun(&self, id: &str) -> Result<JobView> {
        self.send(self.req(reqwest::Method::POST, &format!("/jobs/{}/rerun", path_seg(id)))).await
    }

    /// Set (`Some`) or lift (`None`) a job's rate limit.
    pub async fn rate_limit(&self, id: &str, rate_limit: Option<i64>) -> Result<JobView> {
        self.send(
            self.req(reqwest::Method::POST, &format!("/jobs/{}/rate-limit", path_seg(id)))
                .json(&RateLimitBody { rate_limit }),
        )
        .await
    }

    /// The impact preview of a prepared job.
    pub async fn preview(&self, id: &str) -> Result<Preview> {
        self.send(self.req(reqwest::Method::GET, &format!("/jobs/{}/preview", path_seg(id)))).await
    }

    pub async fn roles(&self) -> Result<RolesResult> {
        self.send(self.req(reqwest::Method::GET, "/roles")).await
    }

    pub async fn workers(&self) -> Result<WorkersResult> {
        self.send(self.req(reqwest::Method::GET, "/workers")).await
    }

    /// Follow a job with a progress bar until it ends.
    pub async fn watch(&self, id: &str) -> Result<JobView> {
        let first = self.describe(id).await?;
        let bar = Progress::new(first.progress_summary.total_number_of_tasks.unwrap_or(0) as u64);
        loop {
            let j = self.describe(id).await?;
            let p = &j.progress_summary;
            bar.set(p.total_number_of_tasks, p.number_of_tasks_succeeded, p.number_of_tasks_failed, j.status.as_str());
            if j.status.is_terminal() {
                bar.finish_plain();
                return Ok(j);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub fn print<T: Serialize>(&self, v: &T, table: impl FnOnce(&T)) -> Result<()> {
        match self.conn.output {
            Output::Json => println!("{}", serde_json::to_string_pretty(v)?),
            Output::Table => table(v),
            Output::Csv => bail!("--output csv prints the rows of `s3batch job report`; use table or json here"),
        }
        Ok(())
    }

    pub fn output(&self) -> Output {
        self.conn.output
    }

    /// Where a job's completion report is, and its files.
    pub async fn report(&self, id: &str) -> Result<ReportResult> {
        self.send(self.req(reqwest::Method::GET, &format!("/jobs/{}/report", path_seg(id)))).await
    }

    /// The `n`th results file of a job's report, as a response whose body is still to be read.
    pub async fn report_file(&self, id: &str, n: usize) -> Result<reqwest::Response> {
        let path = format!("/jobs/{}/report/files/{n}", path_seg(id));
        // A large file takes longer than one API call: no overall timeout, only the connect one.
        let r = self.req(reqwest::Method::GET, &path).timeout(Duration::from_secs(24 * 3600));
        let resp = r.send().await.with_context(|| format!("cannot reach s3batch at {}", self.conn.endpoint))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let bytes = resp.bytes().await?;
            match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(e) => bail!("{}: {}", e.code, e.message),
                Err(_) => bail!("HTTP {status}: {}", String::from_utf8_lossy(&bytes)),
            }
        }
        Ok(resp)
    }
}

fn path_seg(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A JSON argument given inline or as `file://path` (as the aws CLI takes them).
pub fn json_arg<T: DeserializeOwned>(what: &str, raw: &str) -> Result<T> {
    let text = match raw.strip_prefix("file://") {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("{what}: reading {p}"))?,
        None => raw.to_string(),
    };
    serde_json::from_str(&text).with_context(|| format!("{what} is not valid JSON for this argument"))
}

/// A job spec from `create`'s flags.
#[allow(clippy::too_many_arguments)]
pub fn spec_from_flags(
    operation: &str,
    manifest: Option<&str>,
    manifest_csv: Option<&str>,
    manifest_etag: Option<String>,
    report: Option<&str>,
    report_bucket: Option<&str>,
    report_prefix: Option<String>,
    report_scope: &str,
    priority: i64,
    confirmation_required: bool,
    description: Option<String>,
) -> Result<JobSpec> {
    let operation = json_arg("--operation", operation)?;
    let manifest = match (manifest, manifest_csv) {
        (Some(m), None) => json_arg("--manifest", m)?,
        (None, Some(url)) => {
            let (bucket, key) = parse_s3_url(url)?;
            serde_json::from_value(serde_json::json!({
                "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                "Location": {"ObjectArn": format!("arn:aws:s3:::{bucket}/{key}"), "ETag": manifest_etag}
            }))?
        }
        _ => bail!("give exactly one of --manifest (JSON) and --manifest-csv s3://bucket/key"),
    };
    let report = match (report, report_bucket) {
        (Some(r), None) => json_arg("--report", r)?,
        (None, Some(b)) => serde_json::from_value(serde_json::json!({
            "Enabled": true, "Bucket": format!("arn:aws:s3:::{b}"), "Format": "Report_CSV_20180820",
            "Prefix": report_prefix, "ReportScope": report_scope,
        }))?,
        (None, None) => serde_json::from_value(serde_json::json!({"Enabled": false}))?,
        (Some(_), Some(_)) => bail!("give at most one of --report (JSON) and --report-bucket"),
    };
    Ok(JobSpec {
        operation,
        manifest: Some(manifest),
        manifest_generator: None,
        report,
        priority,
        confirmation_required,
        description,
        role_arn: None,
        tags: vec![],
        cos_request: None,
        rerun_of: None,
        dry_run: false,
        rate_limit: None,
    })
}

fn parse_s3_url(url: &str) -> Result<(String, String)> {
    let rest = url.strip_prefix("s3://").with_context(|| format!("'{url}' is not an s3://bucket/key URL"))?;
    match rest.split_once('/') {
        Some((b, k)) if !b.is_empty() && !k.is_empty() => Ok((b.into(), k.into())),
        _ => bail!("'{url}' is not an s3://bucket/key URL"),
    }
}

pub fn print_job(j: &JobView) {
    let p = &j.progress_summary;
    println!("Job:            {}", j.job_id);
    println!("Status:         {}", j.status);
    println!(
        "Operation:      {}",
        serde_json::to_value(&j.operation)
            .ok()
            .and_then(|v| v.as_object().and_then(|o| o.keys().next().cloned()))
            .unwrap_or_default()
    );
    println!("Priority:       {}", j.priority);
    if let Some(d) = &j.description {
        println!("Description:    {d}");
    }
    println!(
        "Tasks:          {} total, {} succeeded, {} failed",
        p.total_number_of_tasks.map(|t| t.to_string()).unwrap_or_else(|| "?".into()),
        p.number_of_tasks_succeeded,
        p.number_of_tasks_failed
    );
    println!("Active time:    {}s", p.timers.elapsed_time_in_active_seconds);
    println!("Created:        {}", j.creation_time);
    if let Some(t) = &j.termination_date {
        println!("Ended:          {t}");
    }
    if let Some(c) = &j.suspended_cause {
        println!("Suspended:      {c} (since {})", j.suspended_date.as_deref().unwrap_or("?"));
    }
    if let Some(r) = &j.status_update_reason {
        println!("Reason:         {r}");
    }
    for f in &j.failure_reasons {
        println!("Failure:        {}: {}", f.failure_code, f.failure_reason);
    }
    if let Some(r) = &j.report_location {
        println!("Report:         {r}");
    }
    if let Some(r) = j.rate_limit {
        println!("Rate limit:     {r} tasks/s");
    }
    if j.dry_run {
        println!("Dry run:        yes (checks every task, changes nothing)");
    }
}

/// `<N|none>`: a rate limit in tasks per second, or none.
pub fn parse_rate_limit(s: &str) -> Result<Option<i64>> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    match s.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(Some(n)),
        _ => bail!("the rate limit must be a whole number of tasks per second (at least 1) or 'none', got '{s}'"),
    }
}

pub fn print_preview(p: &Preview) {
    println!("Job:            {} ({}, {})", p.job_id, p.status, p.operation);
    if p.dry_run {
        println!("Dry run:        yes");
    }
    println!("Tasks:          {} ({} done)", p.total_number_of_tasks, p.tasks_done);
    let how = if p.total_bytes_exact { "exact" } else { "estimated" };
    println!("Total bytes:    {} ({how}, from a HEAD of {} objects)", p.total_bytes, p.sample_size);
    for (code, n) in &p.sample_failures {
        println!("Sample failed:  {n} × {code}");
    }
    println!("Requests:       {} ({} per task)", p.expected_requests, p.requests_per_task);
    if let Some(r) = p.rate_limit {
        println!("Rate limit:     {r} tasks/s");
    }
    println!(
        "Throughput:     {} tasks/s ({}; sample HEAD latency {} ms)",
        p.throughput_tasks_per_second, p.throughput_basis, p.sample_latency_ms
    );
    println!("Estimated time: {}", human_duration(p.estimated_seconds));
}

fn human_duration(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{secs:.1} s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

pub fn print_list(l: &ListJobsResult) {
    println!(
        "{:<36}  {:<10}  {:>8}  {:<22}  {:>10}  {:>9}  {:>7}",
        "JOB", "STATUS", "PRIORITY", "OPERATION", "TOTAL", "SUCCEEDED", "FAILED"
    );
    for j in &l.jobs {
        let op = serde_json::to_value(&j.operation)
            .ok()
            .and_then(|v| v.as_object().and_then(|o| o.keys().next().cloned()))
            .unwrap_or_default();
        let p = &j.progress_summary;
        println!(
            "{:<36}  {:<10}  {:>8}  {:<22}  {:>10}  {:>9}  {:>7}",
            j.job_id,
            j.status.as_str(),
            j.priority,
            op,
            p.total_number_of_tasks.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
            p.number_of_tasks_succeeded,
            p.number_of_tasks_failed
        );
    }
    if let Some(t) = &l.next_token {
        println!("(more: --next-token {t})");
    }
}

pub fn print_roles(r: &RolesResult) {
    let list = |v: &[String]| if v.is_empty() { "-".to_string() } else { v.join(", ") };
    for role in &r.roles {
        println!("{}", role.role_arn);
        if let Some(cos) = &role.cos_role_arn {
            println!("  COS role:    {cos}");
        }
        println!("  read:        {}", list(&role.read));
        println!("  write:       {}", list(&role.write));
        println!("  operations:  {}", role.operations.as_deref().map_or("every operation".into(), list));
        println!("  functions:   {}", list(&role.functions));
        if !role.own_credentials_for.is_empty() {
            println!("  own keys on: {}", list(&role.own_credentials_for));
        }
    }
    if r.roles.is_empty() {
        if r.required {
            println!(
                "this account has no role: an operator adds one as a [[roles]] entry; until then it cannot create jobs"
            );
        } else {
            println!("no roles: jobs run with the server's own storage credentials (no [[accounts]] configured)");
        }
    }
}

pub fn print_workers(w: &WorkersResult) {
    println!(
        "{:<30}  {:<20}  {:>8}  {:<6}  {:>16}  {:>14}  {:<8}",
        "WORKER", "HOST", "PID", "ROLE", "CHUNKS IN FLIGHT", "LAST HEARTBEAT", "STATE"
    );
    for v in &w.workers {
        let state = if v.scheduler { format!("{} (scheduler)", v.state) } else { v.state.clone() };
        println!(
            "{:<30}  {:<20}  {:>8}  {:<6}  {:>16}  {:>14}  {:<8}",
            v.worker_id,
            v.host,
            v.pid,
            v.role,
            v.chunks_in_flight,
            format!("{:.1}s ago", v.heartbeat_age_ms as f64 / 1000.0),
            state
        );
    }
    if w.workers.is_empty() {
        println!("(no engine is running on this server's database)");
    }
}
