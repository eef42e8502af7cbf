//! The console's pages (maud templates). Everything is server-rendered; `console.js` only refreshes live
//! regions, asks before irreversible actions and shows the fields of the chosen operation.

use maud::{DOCTYPE, Markup, html};
use s3batch_core::report::OwnedReportRow;
use s3batch_core::{JobStatus, time};
use s3batch_engine::preview::Preview;
use s3batch_store::Job;

use super::form::{self, Errors, Kind, Values};
use crate::json::JobView;

/// What the header shows about who is signed in.
pub struct Who<'a> {
    pub account: &'a str,
    pub access_key_id: Option<&'a str>,
    pub csrf: &'a str,
}

pub fn layout(title: &str, who: Option<&Who>, live: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · s3batch" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body data-live=(if live { "true" } else { "false" }) {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console" { "s3batch" }
                    @if let Some(w) = who {
                        nav aria-label="Console" {
                            a href="/console" { "Jobs" }
                        }
                        span.who { "Account " (w.account) }
                        @if let Some(k) = w.access_key_id {
                            form.inline method="post" action="/console/sign-out" {
                                input type="hidden" name="csrf" value=(w.csrf);
                                button.link type="submit" title=(format!("Signed in as {k}")) { "Sign out" }
                            }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

pub fn sign_in(token: &str, error: Option<&str>, key: &str) -> Markup {
    layout(
        "Sign in",
        None,
        false,
        html! {
            section.card.narrow {
                h1 { "Sign in" }
                p.muted { "Use the access key of an account configured on this server." }
                @if let Some(e) = error { p.error role="alert" { (e) } }
                form method="post" action="/console/sign-in" {
                    input type="hidden" name="csrf" value=(token);
                    label for="access_key_id" { "Access key ID" }
                    input #access_key_id type="text" name="access_key_id" value=(key) autocomplete="username" required autofocus;
                    label for="secret" { "Secret access key" }
                    input #secret type="password" name="secret" autocomplete="current-password" required;
                    button.primary type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// One page of the jobs list.
pub struct ListPage<'a> {
    pub jobs: Vec<&'a Job>,
    pub counts: Vec<(JobStatus, usize)>,
    pub total: usize,
    pub matching: usize,
    pub statuses: Vec<JobStatus>,
    pub q: String,
    pub sort: String,
    pub page: usize,
    pub pages: usize,
    pub notice: Option<String>,
}

fn list_link(statuses: &[JobStatus], q: &str, sort: &str, page: usize) -> String {
    let mut parts: Vec<String> = statuses.iter().map(|s| format!("status={s}")).collect();
    if !q.is_empty() {
        parts.push(format!("q={}", urlencode(q)));
    }
    if sort != "created" {
        parts.push(format!("sort={sort}"));
    }
    if page > 1 {
        parts.push(format!("page={page}"));
    }
    if parts.is_empty() { "/console".into() } else { format!("/console?{}", parts.join("&")) }
}

pub fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The list's search, status filter and sort order.
fn list_filters(p: &ListPage) -> Markup {
    html! {
        form.filters method="get" action="/console" role="search" {
            div {
                label for="q" { "Search jobs" }
                input #q type="search" name="q" value=(p.q) placeholder="Description or part of a job ID";
            }
            div {
                label for="status" { "Status" }
                select #status name="status" multiple size="4" {
                    @for s in JobStatus::ALL {
                        option value=(s.as_str()) selected[p.statuses.contains(&s)] { (s.as_str()) }
                    }
                }
            }
            div {
                label for="sort" { "Sort by" }
                select #sort name="sort" {
                    option value="created" selected[p.sort != "priority"] { "Creation time (newest first)" }
                    option value="priority" selected[p.sort == "priority"] { "Priority (highest first)" }
                }
            }
            div { button type="submit" { "Apply" } }
        }
    }
}

/// The list's counts by status, its page of jobs and the pager (refreshed live).
fn list_results(p: &ListPage) -> Markup {
    html! {
        div #live-list {
            nav.counts aria-label="Jobs by status" {
                a href=(list_link(&[], &p.q, &p.sort, 1)) aria-current=[p.statuses.is_empty().then_some("true")] {
                    "All " span.count { (p.total) }
                }
                @for (s, n) in &p.counts {
                    a href=(list_link(&[*s], &p.q, &p.sort, 1)) aria-current=[(p.statuses == [*s]).then_some("true")] {
                        (s.as_str()) " " span.count { (n) }
                    }
                }
            }
            p.muted { (p.matching) " of " (p.total) " jobs from the last 90 days" }
            @if p.jobs.is_empty() {
                p.empty { "No jobs match." }
            } @else {
                table.jobs {
                    thead { tr {
                        th scope="col" { "Job ID" } th scope="col" { "Description" } th scope="col" { "Operation" }
                        th scope="col" { "Priority" } th scope="col" { "Status" } th scope="col" { "Progress" }
                        th scope="col" { "Created" }
                    } }
                    tbody {
                        @for j in &p.jobs {
                            tr data-job=(j.id) {
                                td.id { a href=(format!("/console/jobs/{}", j.id)) { (j.id) } }
                                td { (j.spec.description.as_deref().unwrap_or("")) }
                                td { (j.spec.operation.name()) }
                                td.num { (j.priority) }
                                td { (status_badge(j.status)) }
                                td { (progress(j)) }
                                td.time { (time::format_iso(j.created_at)) }
                            }
                        }
                    }
                }
            }
            @if p.pages > 1 {
                nav.pager aria-label="Pages" {
                    @if p.page > 1 { a href=(list_link(&p.statuses, &p.q, &p.sort, p.page - 1)) rel="prev" { "Previous" } }
                    span { "Page " (p.page) " of " (p.pages) }
                    @if p.page < p.pages { a href=(list_link(&p.statuses, &p.q, &p.sort, p.page + 1)) rel="next" { "Next" } }
                }
            }
        }
    }
}

pub fn list(who: &Who, p: &ListPage) -> Markup {
    let live = p.jobs.iter().any(|j| !j.status.is_terminal());
    layout(
        "Jobs",
        Some(who),
        live,
        html! {
            div.titlebar {
                h1 { "Batch jobs" }
                a.button.primary href="/console/jobs/new" { "Create job" }
            }
            @if let Some(n) = &p.notice { p.notice role="status" { (n) } }
            (list_filters(p))
            (list_results(p))
        },
    )
}

fn status_badge(s: JobStatus) -> Markup {
    let class = match s {
        JobStatus::Complete => "ok",
        JobStatus::Failed | JobStatus::Failing => "bad",
        JobStatus::Cancelled | JobStatus::Cancelling => "off",
        JobStatus::Suspended | JobStatus::Paused | JobStatus::Pausing => "wait",
        _ => "run",
    };
    html! { span class=(format!("badge {class}")) { (s.as_str()) } }
}

fn progress(j: &Job) -> Markup {
    let done = j.succeeded + j.failed;
    html! {
        @match j.total_tasks {
            Some(total) => {
                progress value=(done) max=(total.max(1)) aria-label=(format!("{done} of {total} tasks done")) {}
                span.small { (j.succeeded) " succeeded · " (j.failed) " failed · " (total) " total" }
            }
            None => { span.small.muted { "not yet known" } }
        }
    }
}

fn field_row(label: &str, value: Markup) -> Markup {
    html! { div.row { dt { (label) } dd { (value) } } }
}

fn text_or_dash(v: Option<&str>) -> Markup {
    html! { @match v { Some(s) if !s.is_empty() => { (s) } _ => { span.muted { "–" } } } }
}

fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h {:02}m {:02}s", s / 3600, (s % 3600) / 60, s % 60)
    } else if s >= 60 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// What a job detail page shows besides the job.
pub struct DetailExtras {
    pub notice: Option<String>,
    pub error: Option<String>,
    pub history: Vec<(String, String, Option<String>)>,
}

pub fn detail(who: &Who, job: &Job, view: &JobView, x: &DetailExtras, now: i64) -> Markup {
    let live = !job.status.is_terminal();
    layout(
        &format!("Job {}", job.id),
        Some(who),
        live,
        html! {
            nav.crumbs aria-label="Breadcrumb" { a href="/console" { "Batch jobs" } " / " span { (job.id) } }
            div.titlebar {
                h1 { "Job " span.id { (job.id) } }
                (status_badge(job.status))
            }
            @if let Some(n) = &x.notice { p.notice role="status" { (n) } }
            @if let Some(e) = &x.error { p.error role="alert" { (e) } }
            (detail_progress(job, now))
            (detail_actions(job, who.csrf))
            (detail_configuration(job, view))
            (detail_history(&x.history))
        },
    )
}

/// A job's progress: its counts, its rate and the time it has left, and why it failed.
fn detail_progress(job: &Job, now: i64) -> Markup {
    let live = !job.status.is_terminal();
    let s = job.status;
    let done = job.succeeded + job.failed;
    let active = job.active_seconds(now) as f64;
    let rate = if active > 0.0 { done as f64 / active } else { 0.0 };
    let eta = match job.total_tasks {
        Some(t) if rate > 0.0 && t > done && live => Some(duration((t - done) as f64 / rate)),
        _ => None,
    };
    html! {
        section.card #live-detail aria-label="Progress" {
            h2 { "Progress" }
            (progress(job))
            dl.grid {
                (field_row("Status", html! { (s.as_str()) }))
                (field_row("Tasks succeeded", html! { (job.succeeded) }))
                (field_row("Tasks failed", html! { (job.failed) }))
                (field_row("Total tasks", html! { @match job.total_tasks { Some(t) => (t), None => span.muted { "not yet known" } } }))
                (field_row("Elapsed time (active)", html! { (duration(active)) }))
                (field_row("Tasks per second", if active > 0.0 { html! { (format!("{rate:.1}")) } } else { text_or_dash(None) }))
                (field_row("Estimated time left", text_or_dash(eta.as_deref())))
                (field_row("Rate limit", html! { @match job.rate_limit { Some(r) => { (r) " tasks/s" }, None => span.muted { "none" } } }))
                @if let Some(c) = &job.suspended_cause { (field_row("Suspended cause", html! { (c) })) }
                @if let Some(r) = &job.status_update_reason { (field_row("Last status update reason", html! { (r) })) }
            }
            @if !job.failure_reasons.is_empty() {
                h3 { "Failure reasons" }
                ul.failures { @for f in &job.failure_reasons { li { strong { (f.failure_code) } ": " (f.failure_reason) } } }
            }
            @if job.report_key.is_some() {
                p { a.button href=(format!("/console/jobs/{}/report", job.id)) { "View completion report" } }
            }
        }
    }
}

/// What can be done to a job in its status: confirm, pause, resume, re-run, clone, priority, rate limit, cancel,
/// tags.
fn detail_actions(job: &Job, csrf: &str) -> Markup {
    let s = job.status;
    let can_cancel =
        !s.is_terminal() && !matches!(s, JobStatus::Cancelling | JobStatus::Failing | JobStatus::Completing);
    html! {
        section.card.actions aria-label="Actions" {
            h2 { "Actions" }
            (detail_buttons(job, csrf))
            @if !s.is_terminal() {
                form.row-form method="post" action=(format!("/console/jobs/{}/priority", job.id)) {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="priority" { "Priority" }
                    input #priority type="number" name="priority" min="0" max="2147483647" value=(job.priority) required;
                    button type="submit" { "Update priority" }
                }
                form.row-form method="post" action=(format!("/console/jobs/{}/rate-limit", job.id)) {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="rate_limit" { "Rate limit (tasks/s, empty for none)" }
                    input #rate_limit type="number" name="rate_limit" min="1" value=[job.rate_limit];
                    button type="submit" { "Update rate limit" }
                }
            }
            @if can_cancel {
                form.row-form method="post" action=(format!("/console/jobs/{}/status", job.id)) data-confirm="Cancel this job? Tasks not yet run will not run, and a cancelled job cannot be resumed." {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="requested" value="Cancelled";
                    label for="reason" { "Reason for cancelling" }
                    input #reason type="text" name="reason" maxlength="256";
                    button.danger type="submit" { "Cancel job" }
                }
            }
            form.row-form method="post" action=(format!("/console/jobs/{}/tags", job.id)) {
                input type="hidden" name="csrf" value=(csrf);
                label for="job_tags" { "Job tags (key=value, one per line)" }
                textarea #job_tags name="tags" rows="2" {
                    (job.tags.iter().map(|t| format!("{}={}", t.key, t.value)).collect::<Vec<_>>().join("\n"))
                }
                button type="submit" { "Save tags" }
            }
        }
    }
}

/// The job's buttons: confirm, pause or resume, re-run the failed tasks, clone.
fn detail_buttons(job: &Job, csrf: &str) -> Markup {
    let s = job.status;
    let can_pause = matches!(s, JobStatus::Ready | JobStatus::Active) && !job.user_paused;
    let can_resume = job.user_paused && matches!(s, JobStatus::Pausing | JobStatus::Paused);
    html! {
        div.buttons {
            @if s == JobStatus::Suspended {
                a.button.primary href=(format!("/console/jobs/{}/confirm", job.id)) { "Confirm and run" }
            }
            @if can_pause {
                form.inline method="post" action=(format!("/console/jobs/{}/status", job.id)) {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="requested" value="Paused";
                    button type="submit" { "Pause" }
                }
            }
            @if can_resume {
                form.inline method="post" action=(format!("/console/jobs/{}/status", job.id)) {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="requested" value="Active";
                    button type="submit" { "Resume" }
                }
            }
            @if s.is_terminal() && job.failed > 0 {
                form.inline method="post" action=(format!("/console/jobs/{}/rerun", job.id)) data-confirm="Create a new job that runs this job's failed tasks again?" {
                    input type="hidden" name="csrf" value=(csrf);
                    button type="submit" { "Re-run failed tasks" }
                }
            }
            a.button href=(format!("/console/jobs/new?clone={}", job.id)) { "Clone job" }
        }
    }
}

/// How a job was created: its settings, operation, manifest and completion report.
fn detail_configuration(job: &Job, view: &JobView) -> Markup {
    html! {
        section.card #live-config aria-label="Configuration" {
            h2 { "Configuration" }
            dl.grid {
                (field_row("Job ARN", html! { code { (view.job_arn) } }))
                (field_row("Description", text_or_dash(job.spec.description.as_deref())))
                (field_row("Priority", html! { (job.priority) }))
                (field_row("Created", html! { (view.creation_time) }))
                (field_row("Suspended", text_or_dash(view.suspended_date.as_deref())))
                (field_row("Finished", text_or_dash(view.termination_date.as_deref())))
                (field_row("Confirmation required", html! { (if job.spec.confirmation_required { "Yes" } else { "No" }) }))
                (field_row("Role", text_or_dash(job.spec.role_arn.as_deref())))
                (field_row("Dry run", html! { (if job.spec.dry_run { "Yes: checks every task and changes nothing" } else { "No" }) }))
                @if let Some(r) = &job.spec.rerun_of {
                    (field_row("Re-runs the failed tasks of", html! { a href=(format!("/console/jobs/{r}")) { (r) } }))
                }
                (field_row("Job tags", html! {
                    @if job.tags.is_empty() { span.muted { "none" } }
                    @for t in &job.tags { span.tag { (t.key) "=" (t.value) } " " }
                }))
            }
            h3 { "Operation: " (job.spec.operation.name()) }
            (operation_parameters(&job.spec))
            h3 { "Manifest" }
            @if let Some(m) = &job.spec.manifest {
                dl.grid {
                    (field_row("Object", html! { code { (m.location.object_arn) } }))
                    (field_row("ETag", text_or_dash(m.location.etag.as_deref().or(job.manifest_etag.as_deref()))))
                    (field_row("Version", text_or_dash(m.location.object_version_id.as_deref())))
                    (field_row("Format", html! { (serde_json::to_value(m.spec.format).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()) }))
                    (field_row("Fields", html! { (m.spec.fields.iter().map(|f| serde_json::to_value(f).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()).collect::<Vec<_>>().join(", ")) }))
                }
            }
            @if let Some(g) = &view.manifest_generator {
                p { "Generated from a bucket listing:" }
                (value_fields(&serde_json::to_value(g).unwrap_or_default()))
            }
            @if let Some(d) = &view.generated_manifest_descriptor {
                p { "Generated manifest:" }
                (value_fields(d))
            }
            h3 { "Completion report" }
            dl.grid {
                (field_row("Enabled", html! { (if job.spec.report.enabled { "Yes" } else { "No" }) }))
                @if job.spec.report.enabled {
                    (field_row("Bucket", text_or_dash(job.spec.report.bucket.as_deref())))
                    (field_row("Prefix", text_or_dash(job.spec.report.prefix.as_deref())))
                    (field_row("Scope", html! { (serde_json::to_value(job.spec.report.report_scope).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| "AllTasks".into())) }))
                    (field_row("Location", text_or_dash(view.report_location.as_deref())))
                }
            }
        }
    }
}

/// A job's status changes: time, status, reason.
fn detail_history(history: &[(String, String, Option<String>)]) -> Markup {
    html! {
        section.card #live-history aria-label="Status history" {
            h2 { "Status history" }
            @if history.is_empty() {
                p.muted { "No status changes recorded yet." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Time" } th scope="col" { "Status" } th scope="col" { "Reason" } } }
                    tbody { @for (t, st, r) in history { tr { td.time { (t) } td { (st) } td { (r.as_deref().unwrap_or("")) } } } }
                }
            }
        }
    }
}

/// The operation's parameters under the create form's labels (the same table reads them back), and any other
/// member as JSON.
fn operation_parameters(spec: &s3batch_core::JobSpec) -> Markup {
    let v = form::from_spec(spec);
    let fields = form::op_form(spec.operation.name()).map_or(&[][..], |f| f.fields);
    let set: Vec<&form::Field> = fields.iter().filter(|f| !v.get(f.name).is_empty()).collect();
    html! {
        @if set.is_empty() && v.get("op.extra").is_empty() { p.muted { "No parameters." } }
        @if !set.is_empty() {
            dl.grid {
                @for f in set {
                    (field_row(f.label, html! {
                        @match f.kind {
                            Kind::Bool => { "Yes" }
                            _ => { @for line in v.get(f.name).lines() { span.tag { (line) } " " } }
                        }
                    }))
                }
            }
        }
        @if !v.get("op.extra").is_empty() {
            p { "Other parameters:" }
            pre.json { (v.get("op.extra")) }
        }
    }
}

pub fn confirm(who: &Who, job: &Job, preview: Result<&Preview, String>) -> Markup {
    layout(
        "Confirm job",
        Some(who),
        false,
        html! {
            nav.crumbs aria-label="Breadcrumb" {
                a href="/console" { "Batch jobs" } " / " a href=(format!("/console/jobs/{}", job.id)) { (job.id) } " / " span { "Confirm" }
            }
            h1 { "Confirm and run job " span.id { (job.id) } }
            section.card aria-label="Impact" {
                h2 { "What this job will do" }
                p { strong { (job.spec.operation.name()) } " on every object of the manifest" @if job.spec.dry_run { " (dry run: nothing changes)" } "." }
                @match preview {
                    Ok(p) => {
                        dl.grid {
                            (field_row("Tasks", html! { (p.total_number_of_tasks) }))
                            (field_row("Bytes", html! { (human_bytes(p.total_bytes)) @if !p.total_bytes_exact { " (estimated from a sample of " (p.sample_size) ")" } }))
                            (field_row("Storage requests", html! { (p.expected_requests) }))
                            (field_row("Estimated duration", html! { (duration(p.estimated_seconds)) " at " (format!("{:.0}", p.throughput_tasks_per_second)) " tasks/s (" (p.throughput_basis) ")" }))
                        }
                        @if !p.sample_failures.is_empty() {
                            p.warn role="alert" { "Some sampled objects cannot be read; their tasks would fail: "
                                @for (code, n) in &p.sample_failures { (code) " × " (n) " " } }
                        }
                    }
                    Err(e) => { p.warn { "No preview: " (e) } }
                }
            }
            @if job.status == JobStatus::Suspended {
                form method="post" action=(format!("/console/jobs/{}/status", job.id)) {
                    input type="hidden" name="csrf" value=(who.csrf);
                    input type="hidden" name="requested" value="Ready";
                    button.primary type="submit" { "Confirm and run" }
                    " "
                    a href=(format!("/console/jobs/{}", job.id)) { "Back" }
                }
            } @else {
                p { "This job is " (job.status.as_str()) " and does not wait for a confirmation." }
            }
        },
    )
}

pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{b} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// The report page's data.
pub struct ReportPage {
    pub files: Vec<(String, String, String)>,
    pub rows: Vec<OwnedReportRow>,
    pub failed_only: bool,
    pub page: usize,
    pub more: bool,
    pub failure_counts: Vec<((String, String), u64)>,
    pub location: String,
}

pub fn report(who: &Who, job: &Job, r: Option<&ReportPage>) -> Markup {
    layout(
        "Completion report",
        Some(who),
        false,
        html! {
            nav.crumbs aria-label="Breadcrumb" {
                a href="/console" { "Batch jobs" } " / " a href=(format!("/console/jobs/{}", job.id)) { (job.id) } " / " span { "Report" }
            }
            h1 { "Completion report" }
            @match r {
                None => { p { "This job has no completion report yet (it is written when the job finishes, if the job asks for one)." } }
                Some(r) => {
                    (report_written(job, r))
                }
            }
        },
    )
}

/// A report's failed tasks counted by (HTTP status, error code).
fn report_failures(failure_counts: &[((String, String), u64)]) -> Markup {
    html! {
        section.card aria-label="Failures by error" {
            h2 { "Failures by error" }
            @if failure_counts.is_empty() { p.muted { "No task failed." } } @else {
                table {
                    thead { tr { th scope="col" { "HTTP status" } th scope="col" { "Error code" } th scope="col" { "Tasks" } } }
                    tbody { @for ((status, code), n) in failure_counts { tr { td { (status) } td { (code) } td.num { (n) } } } }
                }
            }
        }
    }
}

/// A written report: where it is, its failures by error, a page of its rows and its files.
fn report_written(job: &Job, r: &ReportPage) -> Markup {
    let base = format!("/console/jobs/{}/report", job.id);
    let q = |failed: bool, page: usize| {
        let mut parts = vec![];
        if failed {
            parts.push("failed=1".to_string());
        }
        if page > 1 {
            parts.push(format!("page={page}"));
        }
        if parts.is_empty() { base.clone() } else { format!("{base}?{}", parts.join("&")) }
    };
    html! {
        p { "Written to " code { (r.location) } }
        (report_failures(&r.failure_counts))
        div.titlebar {
            nav.tabs aria-label="Rows" {
                a href=(q(false, 1)) aria-current=[(!r.failed_only).then_some("true")] { "All rows" }
                a href=(q(true, 1)) aria-current=[r.failed_only.then_some("true")] { "Failed only" }
            }
            a.button href=(format!("/console/jobs/{}/report.csv{}", job.id, if r.failed_only { "?failed=1" } else { "" })) download { "Download CSV" }
        }
        table.report {
            thead { tr {
                th scope="col" { "Bucket" } th scope="col" { "Key" } th scope="col" { "Version" } th scope="col" { "Task status" }
                th scope="col" { "HTTP status" } th scope="col" { "Error code" } th scope="col" { "Result message" }
            } }
            tbody {
                @for row in &r.rows {
                    tr class=(if row.status == "failed" { "failed" } else { "" }) {
                        td { (row.bucket) } td.key { (row.key) } td { (row.version_id) } td { (row.status) }
                        td { (row.http_status) } td { (row.error_code) } td.msg { (row.result_message) }
                    }
                }
            }
        }
        @if r.rows.is_empty() { p.empty { "No rows." } }
        nav.pager aria-label="Pages" {
            @if r.page > 1 { a href=(q(r.failed_only, r.page - 1)) rel="prev" { "Previous" } }
            span { "Page " (r.page) }
            @if r.more { a href=(q(r.failed_only, r.page + 1)) rel="next" { "Next" } }
        }
        h2 { "Report files" }
        ul {
            li { a href=(format!("/console/jobs/{}/report/file?n=manifest", job.id)) { "manifest.json" } }
            @for (i, (status, bucket, key)) in r.files.iter().enumerate() {
                li {
                    a href=(format!("/console/jobs/{}/report/file?n={i}", job.id)) { (status) " results" }
                    " " code { "s3://" (bucket) "/" (key) }
                }
            }
        }
    }
}

fn err(errors: &Errors, k: &str) -> Markup {
    html! { @if let Some(e) = errors.get(k) { p.field-error id=(format!("{k}-error")) role="alert" { (e) } } }
}

fn text_input(v: &Values, errors: &Errors, name: &str, label: &str, hint: &str, kind: &str) -> Markup {
    let id = name.replace('.', "-");
    html! {
        div.field {
            label for=(id) { (label) }
            input id=(id) type=(kind) name=(name) value=(v.get(name)) placeholder=[(!hint.is_empty()).then_some(hint)]
                aria-invalid=[errors.contains_key(name).then_some("true")]
                aria-describedby=[errors.contains_key(name).then(|| format!("{name}-error"))];
            (err(errors, name))
        }
    }
}

fn checkbox(v: &Values, name: &str, label: &str) -> Markup {
    let id = name.replace('.', "-");
    html! { div.field.check { input id=(id) type="checkbox" name=(name) checked[v.checked(name)]; label for=(id) { (label) } } }
}

fn multi_select(v: &Values, name: &str, label: &str, choices: &[&str]) -> Markup {
    let id = name.replace('.', "-");
    let chosen = v.all(name);
    html! {
        div.field {
            label for=(id) { (label) }
            select id=(id) name=(name) multiple size=(choices.len().min(5)) {
                @for c in choices { option value=(c) selected[chosen.contains(c)] { (c) } }
            }
        }
    }
}

fn op_field(v: &Values, errors: &Errors, f: &form::Field) -> Markup {
    let id = f.name.replace('.', "-");
    html! {
        @match f.kind {
            Kind::Bool => { (checkbox(v, f.name, f.label)) }
            Kind::Select(choices) | Kind::Optional(choices) => {
                div.field {
                    label for=(id) { (f.label) }
                    select id=(id) name=(f.name) {
                        @if matches!(f.kind, Kind::Optional(_)) { option value="" selected[v.get(f.name).is_empty()] { "(default)" } }
                        @for c in choices { option value=(c) selected[v.get(f.name) == *c] { (c) } }
                    }
                    (err(errors, f.name))
                }
            }
            Kind::Tags | Kind::Map => {
                div.field {
                    label for=(id) { (f.label) }
                    textarea id=(id) name=(f.name) rows="3" placeholder=(f.hint) { (v.get(f.name)) }
                    (err(errors, f.name))
                }
            }
            Kind::Int => { (text_input(v, errors, f.name, f.label, f.hint, "number")) }
            Kind::Text | Kind::List => { (text_input(v, errors, f.name, f.label, f.hint, "text")) }
        }
    }
}

/// The create-job form (also Clone job's, filled in).
pub fn create(who: &Who, v: &Values, errors: &Errors, token: &str, roles: &[String]) -> Markup {
    layout(
        "Create job",
        Some(who),
        false,
        html! {
            nav.crumbs aria-label="Breadcrumb" { a href="/console" { "Batch jobs" } " / " span { "Create job" } }
            h1 { "Create job" }
            p.muted { "Jobs created here wait in Suspended until you confirm them, after a preview of what they will do." }
            @if let Some(e) = errors.get("general") { p.error role="alert" { (e) } }
            @if !errors.is_empty() && !errors.contains_key("general") { p.error role="alert" { "The job was not created: see the fields marked below." } }
            form.create method="post" action="/console/jobs" novalidate {
                input type="hidden" name="csrf" value=(who.csrf);
                input type="hidden" name="token" value=(token);
                (create_manifest(v, errors))
                (create_operation(v, errors))
                (create_report(v, errors))
                (create_options(v, errors, roles))
                button.primary type="submit" { "Create job" }
            }
        },
    )
}

/// Part 1 of the create form: the manifest, as a CSV file, an inventory report or a generator.
fn create_manifest(v: &Values, errors: &Errors) -> Markup {
    let source = v.get("source");
    html! {
        fieldset.card {
            legend { "1. Manifest: the objects to run on" }
            (err(errors, "source"))
            (err(errors, "manifest"))
            div.choices role="radiogroup" aria-label="Manifest source" {
                label { input type="radio" name="source" value="csv" checked[source == "csv"]; " CSV manifest" }
                label { input type="radio" name="source" value="inventory" checked[source == "inventory"]; " S3 Inventory report (manifest.json)" }
                label { input type="radio" name="source" value="generate" checked[source == "generate"]; " Generate from a bucket listing" }
            }
            div.part data-source="csv" {
                (text_input(v, errors, "manifest.bucket", "Manifest bucket", "", "text"))
                (text_input(v, errors, "manifest.key", "Manifest key", "manifests/list.csv", "text"))
                div.field.with-button {
                    (text_input(v, errors, "manifest.etag", "Manifest ETag", "looked up when left empty", "text"))
                    button type="button" data-etag="manifest" { "Look up ETag" }
                }
                (checkbox(v, "manifest.versions", "The manifest has a version ID column (Bucket, Key, VersionId)"))
            }
            div.part data-source="inventory" {
                (text_input(v, errors, "inventory.bucket", "Inventory bucket", "", "text"))
                (text_input(v, errors, "inventory.key", "Inventory manifest.json key", "inventory/src/config/2026-01-01T00-00Z/manifest.json", "text"))
                div.field.with-button {
                    (text_input(v, errors, "inventory.etag", "Inventory manifest ETag", "looked up when left empty", "text"))
                    button type="button" data-etag="inventory" { "Look up ETag" }
                }
            }
            div.part data-source="generate" {
                (err(errors, "gen.bucket"))
                (text_input(v, errors, "gen.bucket", "Source bucket", "", "text"))
                (text_input(v, errors, "gen.prefixes", "Key prefixes (any of, comma-separated)", "", "text"))
                (text_input(v, errors, "gen.suffixes", "Key suffixes (any of)", "", "text"))
                (text_input(v, errors, "gen.substrings", "Key substrings (any of)", "", "text"))
                (text_input(v, errors, "gen.created_after", "Created after", "2026-01-01", "text"))
                (text_input(v, errors, "gen.created_before", "Created before", "2026-12-31", "text"))
                (text_input(v, errors, "gen.larger_than", "Larger than (bytes)", "", "number"))
                (text_input(v, errors, "gen.smaller_than", "Smaller than (bytes)", "", "number"))
                (multi_select(v, "gen.storage_class", "Storage classes (any of)", &s3batch_core::spec::STORAGE_CLASSES))
                (multi_select(v, "gen.encryption", "Encryption (any of)", form::GEN_ENCRYPTIONS))
                (multi_select(v, "gen.replication", "Replication statuses (any of)", &s3batch_core::spec::REPLICATION_STATUSES))
                (checkbox(v, "gen.eligible", "Only objects eligible for replication"))
                (checkbox(v, "gen.output", "Save the generated manifest"))
                (text_input(v, errors, "gen.output_bucket", "Generated manifest bucket", "", "text"))
                (text_input(v, errors, "gen.output_prefix", "Generated manifest prefix", "", "text"))
            }
        }
    }
}

/// Part 2 of the create form: the operation and its parameters.
fn create_operation(v: &Values, errors: &Errors) -> Markup {
    let op = v.get("operation");
    html! {
        fieldset.card {
            legend { "2. Operation" }
            (err(errors, "operation"))
            div.field {
                label for="operation" { "Operation" }
                select #operation name="operation" {
                    @for o in form::OPERATIONS { option value=(o.op) selected[op == o.op] { (o.op) " – " (o.title) } }
                }
            }
            @for o in form::OPERATIONS {
                div.part data-op=(o.op) {
                    @for f in o.fields { (op_field(v, errors, f)) }
                    @if o.fields.is_empty() { p.muted { "This operation has no parameters." } }
                }
            }
            div.field {
                label for="op-extra" { "More parameters (JSON, any member of the operation)" }
                textarea #op-extra name="op.extra" rows="2" placeholder="{\"NewObjectMetadata\": {\"CacheControl\": \"max-age=60\"}}" { (v.get("op.extra")) }
                (err(errors, "op.extra"))
            }
        }
    }
}

/// Part 3 of the create form: the completion report.
fn create_report(v: &Values, errors: &Errors) -> Markup {
    html! {
        fieldset.card {
            legend { "3. Completion report" }
            (err(errors, "report"))
            (checkbox(v, "report.enabled", "Write a completion report"))
            (text_input(v, errors, "report.bucket", "Report bucket", "", "text"))
            (text_input(v, errors, "report.prefix", "Report prefix", "", "text"))
            div.field {
                label for="report-scope" { "Report scope" }
                select #report-scope name="report.scope" {
                    option value="AllTasks" selected[v.get("report.scope") != "FailedTasksOnly"] { "All tasks" }
                    option value="FailedTasksOnly" selected[v.get("report.scope") == "FailedTasksOnly"] { "Failed tasks only" }
                }
            }
        }
    }
}

/// Part 4 of the create form: description, priority, role, tags, rate limit, dry run.
fn create_options(v: &Values, errors: &Errors, roles: &[String]) -> Markup {
    html! {
        fieldset.card {
            legend { "4. Job options" }
            (text_input(v, errors, "description", "Description", "", "text"))
            (text_input(v, errors, "priority", "Priority", "", "number"))
            div.field {
                label for="role" { "Role" }
                @if roles.is_empty() {
                    input #role type="text" name="role" value=(v.get("role")) placeholder="arn:aws:iam::123456789012:role/batch";
                } @else {
                    select #role name="role" {
                        option value="" { "(none)" }
                        @for r in roles { option value=(r) selected[v.get("role") == r] { (r) } }
                    }
                }
                (err(errors, "role"))
            }
            div.field {
                label for="tags" { "Job tags (key=value, one per line)" }
                textarea #tags name="tags" rows="2" { (v.get("tags")) }
                (err(errors, "tags"))
            }
            (text_input(v, errors, "rate_limit", "Rate limit (tasks per second, empty for none)", "", "number"))
            (checkbox(v, "dry_run", "Dry run: check every task, change nothing"))
        }
    }
}

pub fn message(who: Option<&Who>, title: &str, text: &str) -> Markup {
    layout(
        title,
        who,
        false,
        html! { h1 { (title) } p.error role="alert" { (text) } p { a href="/console" { "Back to the jobs" } } },
    )
}

/// A structure's members as labelled rows: nested members as `Filter · Key name constraint · Match any prefix`,
/// lists of values joined, `true` as Yes.
fn value_fields(v: &serde_json::Value) -> Markup {
    let mut rows = Vec::new();
    flatten_value(&mut rows, "", v);
    html! {
        dl.grid {
            @for (label, value) in &rows {
                (field_row(label, html! { (value) }))
            }
        }
    }
}

fn flatten_value(rows: &mut Vec<(String, String)>, at: &str, v: &serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(m) if m.is_empty() => rows.push((at.to_string(), "Yes".into())),
        Value::Object(m) => {
            for (k, inner) in m {
                let label = words(k);
                let at = if at.is_empty() { label } else { format!("{at} · {}", label.to_lowercase()) };
                flatten_value(rows, &at, inner);
            }
        }
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            let parts: Vec<String> = items.iter().map(scalar_text).collect();
            rows.push((at.to_string(), parts.join(", ")));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten_value(rows, &format!("{at} {}", i + 1), item);
            }
        }
        other => rows.push((at.to_string(), scalar_text(other))),
    }
}

fn scalar_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Bool(true) => "Yes".into(),
        serde_json::Value::Bool(false) => "No".into(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "—".into(),
        other => other.to_string(),
    }
}

/// `KeyNameConstraint` → `Key name constraint`, `SSE-KMS` stays.
fn words(name: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        let starts_word = i > 0
            && c.is_uppercase()
            && (chars[i - 1].is_lowercase() || chars.get(i + 1).is_some_and(|n| n.is_lowercase()));
        if starts_word {
            out.push(' ');
            out.extend(c.to_lowercase());
        } else {
            out.push(*c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structures_read_as_labelled_rows() {
        assert_eq!(words("KeyNameConstraint"), "Key name constraint");
        assert_eq!(words("SSE-KMS"), "SSE-KMS");
        assert_eq!(words("ObjectSizeGreaterThanBytes"), "Object size greater than bytes");
        let g = serde_json::json!({
            "SourceBucket": "arn:aws:s3:::photos",
            "Filter": {"KeyNameConstraint": {"MatchAnyPrefix": ["a/", "b/"]}, "CreatedAfter": "2026-01-01T00:00:00Z",
                       "MatchAnyObjectEncryption": [{"SSE-S3": {}}]},
            "EnableManifestOutput": false,
        });
        let mut rows = Vec::new();
        flatten_value(&mut rows, "", &g);
        let html = value_fields(&g).into_string();
        assert!(
            rows.contains(&("Filter · key name constraint · match any prefix".into(), "a/, b/".into())),
            "{rows:?}"
        );
        assert!(rows.contains(&("Enable manifest output".into(), "No".into())), "{rows:?}");
        assert!(rows.contains(&("Filter · match any object encryption 1 · sse-s3".into(), "Yes".into())), "{rows:?}");
        assert!(!html.contains('{'), "no JSON on the page: {html}");
    }
}
