//! The web console, at `/console` (and `/` redirects there): the job list, a job's detail with its actions, the
//! completion report, and a create-job form, server-rendered (maud) with a little plain JavaScript, all inside the
//! binary. It calls the same [`JobService`](s3batch_engine::service::JobService) as the APIs, with the same errors.
//!
//! It is a [`Dialect`] of the one request [pipeline](crate::pipeline), as the APIs are: the session cookie
//! authenticates, the account's rate limit applies, errors are named as the S3 Control API names them and shown
//! as pages (or, for a caller that is not signed in, as a redirect to sign in), and every request is counted in
//! `s3batch_api_requests_total{dialect="console"}`.
//!
//! Who: with `[[accounts]]`, a user signs in with an access key id and secret and acts for that key's account
//! only (see [`session`]); on an open server (no accounts) the console opens without sign-in, as the default
//! account. Every state-changing request is a same-origin POST (the [`crate::crosssite`] guard) carrying the
//! session's CSRF token; pages forbid framing and inline scripts.

pub mod form;
pub mod session;
mod views;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::Markup;
use s3batch_core::{JobStatus, Tag, time};
use s3batch_engine::service::{RequestedStatus, ServiceError};
use s3batch_store::Browse;

use crate::AppState;
use crate::auth::{DEFAULT_ACCOUNT, constant_time_eq};
use crate::json::JobView;
use crate::pipeline::{self, ApiError, Caller, Dialect, WireError, shown};
use crate::s3control::RequestId;
use form::Values;
use session::{COOKIE, IDLE_MS, PRE_COOKIE, Session, set_cookie};
use views::Who;

/// Jobs a list page shows.
pub const PAGE_SIZE: usize = 25;
/// Rows a report page shows.
pub const REPORT_PAGE_SIZE: usize = 100;
/// The list covers jobs created in the last this many days, as the S3 console's does.
pub const LIST_DAYS: i64 = 90;
/// Sign-in attempts for one access key id: a burst of this many, then one every five seconds.
pub const SIGN_IN_BURST: u32 = 10;
pub const SIGN_INS_PER_SECOND: f64 = 0.2;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console", get(list))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/jobs", post(create))
        .route("/console/jobs/new", get(new_job))
        .route("/console/jobs/{id}", get(detail))
        .route("/console/jobs/{id}/confirm", get(confirm_page))
        .route("/console/jobs/{id}/status", post(set_status))
        .route("/console/jobs/{id}/priority", post(set_priority))
        .route("/console/jobs/{id}/rate-limit", post(set_rate_limit))
        .route("/console/jobs/{id}/rerun", post(rerun))
        .route("/console/jobs/{id}/tags", post(set_tags))
        .route("/console/jobs/{id}/report", get(report_page))
        .route("/console/jobs/{id}/report.csv", get(report_csv))
        .route("/console/jobs/{id}/report/file", get(report_file))
        .route("/console/etag", get(etag))
        .route("/console/assets/console.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route("/console/assets/console.js", get(|| async { asset("text/javascript; charset=utf-8", JS) }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

fn now() -> i64 {
    time::now_millis()
}

/// The console's dialect of the pipeline: a session cookie instead of a signature, HTML pages instead of an error
/// envelope, errors named as the S3 Control API names them (with its HTTP statuses).
pub struct Console;

type Call = pipeline::Call<Console>;
type Answer = Result<Response, ApiError>;

/// The code of "sign in first": its envelope is a redirect to the sign-in page.
const SIGN_IN_FIRST: &str = "SignInRequired";

impl Dialect for Console {
    const NAME: &'static str = "console";
    const ID: &'static str = "console";
    type Caller = Ctx;
    type RequestId = RequestId;

    fn authenticate(call: &Call) -> Result<Ctx, ApiError> {
        session_of(&call.state, &call.headers)
    }
    /// As browsers encode forms and links: `+` is a space.
    fn decode_query(raw: &str) -> Result<Vec<(String, String)>, ApiError> {
        pipeline::decode_pairs(raw, true)
    }
    fn wire_error(e: ApiError) -> WireError {
        match e {
            ApiError::Unauthenticated(m) => WireError::new(SIGN_IN_FIRST, 303, m),
            e => crate::s3control::wire_error(e),
        }
    }
    /// A page that names the error (with the signed-in user's header when there is one), or a redirect to sign in.
    fn error_response(e: &WireError, call: &Call) -> Response {
        if e.code == SIGN_IN_FIRST {
            return see_other("/console/sign-in");
        }
        let s = session::cookie(&call.headers, COOKIE).and_then(|id| call.state.sessions.get(id, now()));
        let title = match e.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::TOO_MANY_REQUESTS => "Slow down",
            _ => "That did not work",
        };
        let who = s.as_ref().map(who_of);
        page(None, e.status, views::message(who.as_ref(), title, &format!("{}: {}", e.code, e.message)))
    }
    fn operation(method: &Method, path: &str) -> &'static str {
        operation(method, path)
    }
}

/// What a console request does, for metrics: the API operation it performs where there is one.
fn operation(method: &Method, path: &str) -> &'static str {
    let parts: Vec<&str> = path.strip_prefix("/console").unwrap_or(path).trim_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", [""]) => "ListJobs",
        ("GET", ["sign-in"]) => "SignInPage",
        ("POST", ["sign-in"]) => "SignIn",
        ("POST", ["sign-out"]) => "SignOut",
        ("POST", ["jobs"]) => "CreateJob",
        ("GET", ["jobs", "new"]) => "CreateJobPage",
        ("GET", ["jobs", _]) => "DescribeJob",
        ("GET", ["jobs", _, "confirm"]) => "ConfirmJobPage",
        ("POST", ["jobs", _, "status"]) => "UpdateJobStatus",
        ("POST", ["jobs", _, "priority"]) => "UpdateJobPriority",
        ("POST", ["jobs", _, "rate-limit"]) => "UpdateJobRateLimit",
        ("POST", ["jobs", _, "rerun"]) => "RerunFailedTasks",
        ("POST", ["jobs", _, "tags"]) => "PutJobTagging",
        ("GET", ["jobs", _, "report"]) => "JobReport",
        ("GET", ["jobs", _, "report.csv"]) => "JobReportCsv",
        ("GET", ["jobs", _, "report", "file"]) => "JobReportFile",
        ("GET", ["etag"]) => "HeadManifest",
        _ => "Other",
    }
}

/// The caller's session, and the cookie to set when it was just opened.
pub struct Ctx {
    s: Session,
    set_cookie: Option<String>,
}

impl Ctx {
    fn who(&self) -> Who<'_> {
        who_of(&self.s)
    }
}

fn who_of(s: &Session) -> Who<'_> {
    Who { account: &s.account, access_key_id: s.access_key_id.as_deref(), csrf: &s.csrf }
}

/// A console caller is its session: the session's account is the one the rate limit counts.
impl Caller for Ctx {
    fn account(&self) -> &str {
        &self.s.account
    }
}

/// The session of this request; on an open server a new one for the default account; else "sign in first".
fn session_of(st: &AppState, headers: &HeaderMap) -> Result<Ctx, ApiError> {
    if let Some(id) = session::cookie(headers, COOKIE)
        && let Some(s) = st.sessions.get(id, now())
    {
        return Ok(Ctx { s, set_cookie: None });
    }
    if st.accounts.is_open() {
        let s = st.sessions.create(DEFAULT_ACCOUNT, None, now());
        let c = set_cookie(COOKIE, &s.id, IDLE_MS / 1000);
        return Ok(Ctx { s, set_cookie: Some(c) });
    }
    Err(ApiError::Unauthenticated("sign in to use the console".into()))
}

impl Call {
    /// The query string's values (a query that cannot be read is an empty one: every console page has defaults).
    fn values(&self) -> Values {
        Values::from_pairs(self.query().unwrap_or_default())
    }

    /// The POSTed form's values, unchecked (the sign-in form, before there is a session).
    fn form_values(&self) -> Result<Values, ApiError> {
        let unreadable = || ApiError::Malformed("the form could not be read".into());
        let is_form = self.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
            v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
        });
        if !is_form {
            return Err(unreadable());
        }
        let body = std::str::from_utf8(self.body()?).map_err(|_| unreadable())?;
        Ok(Values::from_pairs(pipeline::decode_pairs(body, true).map_err(|_| unreadable())?))
    }

    /// The POSTed form's values, checked against the session's CSRF token.
    fn form(&self, ctx: &Ctx) -> Result<Values, ApiError> {
        let v = self.form_values()?;
        if !constant_time_eq(v.get("csrf").as_bytes(), ctx.s.csrf.as_bytes()) {
            return Err(WireError::new(
                "AccessDenied",
                403,
                "this form did not come from your console session (or the session ended). Reload the page and try \
                 again.",
            )
            .into());
        }
        Ok(v)
    }
}

/// Add a `Set-Cookie` (the cookies are built here, so they are always valid header values).
fn add_cookie(r: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A page, with the console's security headers.
fn page(ctx: Option<&Ctx>, status: StatusCode, markup: Markup) -> Response {
    let mut r = (status, markup).into_response();
    secure(r.headers_mut());
    if let Some(c) = ctx.and_then(|c| c.set_cookie.as_deref()) {
        add_cookie(&mut r, c);
    }
    r
}

fn secure(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
}

fn see_other(to: &str) -> Response {
    let mut r = Redirect::to(to).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    r
}

/// An error as the console names it: as the APIs name it (the S3 Control exception names), with the same HTTP
/// status.
fn named(e: impl Into<ApiError>) -> WireError {
    Console::wire_error(e.into())
}

// ---- sign in and out ----

async fn sign_in_page(call: Call) -> Response {
    call.answer(async |c| {
        if c.state.accounts.is_open() {
            return Ok(see_other("/console"));
        }
        Ok(sign_in_form(StatusCode::OK, None, ""))
    })
    .await
}

/// The sign-in form, with a fresh CSRF token in its own cookie.
fn sign_in_form(status: StatusCode, error: Option<&str>, key: &str) -> Response {
    let token = session::random_token();
    let mut r = page(None, status, views::sign_in(&token, error, key));
    add_cookie(&mut r, &set_cookie(PRE_COOKIE, &token, 3600));
    r
}

async fn sign_in(call: Call) -> Response {
    call.answer(async |c| {
        let st = &c.state;
        if st.accounts.is_open() {
            return Ok(see_other("/console"));
        }
        let v = c.form_values().unwrap_or_default();
        let pre = session::cookie(&c.headers, PRE_COOKIE).unwrap_or("");
        let again = |status: StatusCode, code: &'static str, msg: &str| {
            shown(sign_in_form(status, Some(msg), v.get("access_key_id")), code)
        };
        if pre.is_empty() || !constant_time_eq(pre.as_bytes(), v.get("csrf").as_bytes()) {
            return Ok(again(StatusCode::FORBIDDEN, "AccessDenied", "The sign-in form expired. Try again."));
        }
        let key = v.get("access_key_id");
        let secret = v.get("secret");
        if !st.sign_ins.admit(key) {
            tracing::info!(access_key_id = key, "console sign-in throttled");
            let msg = "Too many sign-in attempts for this access key. Wait a minute.";
            return Ok(again(StatusCode::TOO_MANY_REQUESTS, "TooManyRequestsException", msg));
        }
        let ok =
            st.accounts.lookup(key).filter(|(_, expected)| constant_time_eq(secret.as_bytes(), expected.as_bytes()));
        let Some((account, _)) = ok else {
            tracing::info!(access_key_id = key, "console sign-in refused");
            let msg = "The access key ID or the secret access key is not right.";
            return Ok(again(StatusCode::UNAUTHORIZED, "AccessDenied", msg));
        };
        let s = st.sessions.create(account, Some(key), now());
        tracing::info!(account, access_key_id = key, "console sign-in");
        let mut r = see_other("/console");
        add_cookie(&mut r, &set_cookie(COOKIE, &s.id, IDLE_MS / 1000));
        add_cookie(&mut r, &set_cookie(PRE_COOKIE, "", 0));
        Ok(r)
    })
    .await
}

async fn sign_out(call: Call) -> Response {
    call.answer(async |c| {
        let ctx = c.caller()?;
        c.form(&ctx)?;
        c.state.sessions.remove(&ctx.s.id);
        let mut r = see_other(if c.state.accounts.is_open() { "/console" } else { "/console/sign-in" });
        add_cookie(&mut r, &set_cookie(COOKIE, "", 0));
        Ok(r)
    })
    .await
}

// ---- the list ----

async fn list(call: Call) -> Response {
    call.answer(async |c| {
        let ctx = c.caller()?;
        let q = c.values();
        let mut statuses: Vec<JobStatus> = Vec::new();
        for s in q.all("status").into_iter().filter_map(|v| v.parse::<JobStatus>().ok()) {
            if !statuses.contains(&s) {
                statuses.push(s);
            }
        }
        let search = q.get("q").to_string();
        let sort = if q.get("sort") == "priority" { "priority" } else { "created" };
        let page_no = q.get("page").parse::<usize>().unwrap_or(1).max(1);
        let per_page = PAGE_SIZE as i64;
        let query = Browse {
            statuses: statuses.clone(),
            search: Some(search.clone()).filter(|s| !s.is_empty()),
            created_after: now() - LIST_DAYS * 24 * 3600 * 1000,
            by_priority: sort == "priority",
            offset: (page_no as i64 - 1) * per_page,
            limit: per_page,
            ..Default::default()
        };
        let mut found = c.state.service.browse(&ctx.s.account, query.clone()).await?;
        let pages = (found.matching.max(0) as usize).div_ceil(PAGE_SIZE).max(1);
        if page_no > pages {
            // Past the last page (the list shrank): show the last one.
            let last = Browse { offset: (pages as i64 - 1) * per_page, ..query };
            found = c.state.service.browse(&ctx.s.account, last).await?;
        }
        let mut counts: Vec<(JobStatus, usize)> = found.counts.iter().map(|(s, n)| (*s, *n as usize)).collect();
        counts.sort_by_key(|(s, _)| JobStatus::ALL.iter().position(|x| x == s));
        let p = views::ListPage {
            jobs: found.jobs.iter().collect(),
            total: counts.iter().map(|(_, n)| n).sum(),
            counts,
            matching: found.matching as usize,
            statuses,
            q: search,
            sort: sort.into(),
            page: page_no.min(pages),
            pages,
            notice: Some(q.get("notice").to_string()).filter(|n| !n.is_empty()),
        };
        Ok(page(Some(&ctx), StatusCode::OK, views::list(&ctx.who(), &p)))
    })
    .await
}

// ---- a job ----

async fn detail(Path(id): Path<String>, call: Call) -> Response {
    call.answer(async |c| {
        let ctx = c.caller()?;
        let notice = Some(c.values().get("notice").to_string()).filter(|n| !n.is_empty());
        render_detail(&c.state, &ctx, &id, notice, None).await
    })
    .await
}

/// A job's page, with a notice or the error of an action beside it (then with the error's status).
async fn render_detail(st: &AppState, ctx: &Ctx, id: &str, notice: Option<String>, error: Option<WireError>) -> Answer {
    let job = st.service.describe(&ctx.s.account, id).await?;
    let history = st.service.history(&ctx.s.account, id).await?;
    let history =
        history.into_iter().map(|e| (time::format_iso(e.time), e.to.as_str().to_string(), e.reason)).collect();
    let view = JobView::new(&job, &st.region);
    let status = error.as_ref().map_or(StatusCode::OK, |e| e.status);
    let code = error.as_ref().map(|e| e.code);
    let x = views::DetailExtras { notice, error: error.map(|e| format!("{}: {}", e.code, e.message)), history };
    let r = page(Some(ctx), status, views::detail(&ctx.who(), &job, &view, &x, now()));
    Ok(match code {
        Some(code) => shown(r, code),
        None => r,
    })
}

async fn confirm_page(Path(id): Path<String>, call: Call) -> Response {
    call.answer(async |c| {
        let ctx = c.caller()?;
        let job = c.state.service.describe(&ctx.s.account, &id).await?;
        let preview = c.state.service.preview(&ctx.s.account, &id).await.map_err(|e| named(e).message);
        Ok(page(Some(&ctx), StatusCode::OK, views::confirm(&ctx.who(), &job, preview.as_ref().map_err(Clone::clone))))
    })
    .await
}

/// Run an action on a job from a checked form, then show the job (with a notice) or the error beside it.
async fn act(
    id: String,
    call: Call,
    f: impl AsyncFnOnce(&AppState, &str, &str, &Values) -> Result<(String, String), ApiError>,
) -> Response {
    call.answer(async |c| {
        let ctx = c.caller()?;
        let v = c.form(&ctx)?;
        match f(&c.state, &ctx.s.account, &id, &v).await {
            Ok((job, notice)) => Ok(see_other(&format!("/console/jobs/{job}?notice={}", views::urlencode(&notice)))),
            Err(e) => render_detail(&c.state, &ctx, &id, None, Some(named(e))).await,
        }
    })
    .await
}

async fn set_status(Path(id): Path<String>, call: Call) -> Response {
    act(id, call, async |st, account, id, v| {
        let requested: RequestedStatus = v.get("requested").parse()?;
        let reason = Some(v.get("reason").to_string()).filter(|r| !r.is_empty());
        let job = st.service.update_status(account, id, requested, reason).await?;
        let notice = match requested {
            RequestedStatus::Ready => "Confirmed: the job runs when its priority comes up.".to_string(),
            RequestedStatus::Cancelled => format!("Cancel requested: the job is {}.", job.status),
            RequestedStatus::Paused => format!("Pause requested: the job is {}.", job.status),
            RequestedStatus::Active => "Resumed.".to_string(),
        };
        Ok((id.to_string(), notice))
    })
    .await
}

async fn set_priority(Path(id): Path<String>, call: Call) -> Response {
    act(id, call, async |st, account, id, v| {
        let p = v.get("priority").parse::<i64>().map_err(|_| {
            ServiceError::bad_request(format!("priority '{}' is not a whole number", v.get("priority")))
        })?;
        st.service.update_priority(account, id, p).await?;
        Ok((id.to_string(), format!("Priority set to {p}.")))
    })
    .await
}

async fn set_rate_limit(Path(id): Path<String>, call: Call) -> Response {
    act(id, call, async |st, account, id, v| {
        let r = match v.get("rate_limit") {
            "" => None,
            t => Some(
                t.parse::<i64>()
                    .map_err(|_| ServiceError::bad_request(format!("rate limit '{t}' is not a whole number")))?,
            ),
        };
        st.service.update_rate_limit(account, id, r).await?;
        Ok((id.to_string(), r.map_or("Rate limit lifted.".to_string(), |r| format!("Rate limit set to {r} tasks/s."))))
    })
    .await
}

async fn rerun(Path(id): Path<String>, call: Call) -> Response {
    act(id, call, async |st, account, id, _| {
        let job = st.service.rerun_failed(account, id).await?;
        Ok((job.id, format!("This job re-runs the failed tasks of {id}. Confirm it to run.")))
    })
    .await
}

async fn set_tags(Path(id): Path<String>, call: Call) -> Response {
    act(id, call, async |st, account, id, v| {
        let mut tags = Vec::new();
        for line in v.get("tags").lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (k, val) = line
                .split_once('=')
                .ok_or_else(|| ServiceError::bad_request(format!("tag '{line}' is not key=value")))?;
            tags.push(Tag { key: k.trim().into(), value: val.trim().into() });
        }
        st.service.put_tags(account, id, &tags).await?;
        Ok((id.to_string(), "Tags saved.".to_string()))
    })
    .await
}

// ---- create ----

async fn new_job(call: Call) -> Response {
    call.answer(async |c| {
        let ctx = c.caller()?;
        let clone = Some(c.values().get("clone").to_string()).filter(|c| !c.is_empty());
        let mut values = match clone {
            None => form::defaults(),
            Some(id) => {
                let job = c.state.service.describe(&ctx.s.account, &id).await?;
                let mut v = form::from_spec(&job.spec);
                if let Some(m) = &job.spec.manifest
                    && m.location.etag.is_none()
                {
                    // A clone reads the manifest as it is now.
                    v.set("manifest.etag", "");
                }
                v
            }
        };
        let roles = c.state.role_arns(&ctx.s.account);
        // A new job runs under one of the account's roles: the first is offered.
        if values.get("role").is_empty()
            && let Some(first) = roles.first()
        {
            values.set("role", first.clone());
        }
        let token = &session::random_token()[..32];
        Ok(page(Some(&ctx), StatusCode::OK, views::create(&ctx.who(), &values, &form::Errors::new(), token, &roles)))
    })
    .await
}

async fn create(call: Call) -> Response {
    call.answer(async |c| {
        let ctx = c.caller()?;
        let v = c.form(&ctx)?;
        let st = &c.state;
        let roles = st.role_arns(&ctx.s.account);
        let token = Some(v.get("token").to_string()).filter(|t| !t.is_empty());
        // The form again, with the errors beside their fields.
        let again = |errors: form::Errors, e: WireError| {
            let r = page(Some(&ctx), e.status, views::create(&ctx.who(), &v, &errors, v.get("token"), &roles));
            Ok(shown(r, e.code))
        };
        let (mut spec, etag_field) = match form::to_spec(&v) {
            Ok(x) => x,
            Err(errors) => return again(errors, named(ServiceError::bad_request("the form has errors"))),
        };
        if let (Some(field), Some(m)) = (etag_field, spec.manifest.as_mut()) {
            let arn = m.location.object_arn.trim_start_matches("arn:aws:s3:::").to_string();
            let (bucket, key) = arn.split_once('/').unwrap_or((&arn, ""));
            match st.service.head_object(&ctx.s.account, spec.role_arn.as_deref(), bucket, key).await {
                Ok(info) => m.location.etag = Some(info.etag),
                Err(e) => {
                    let e = named(e);
                    let mut errors = form::Errors::new();
                    let key_field = field.replace(".etag", ".key");
                    errors.insert(key_field, format!("cannot read s3://{bucket}/{key}: {}", e.message));
                    return again(errors, e);
                }
            }
        }
        match st.service.create(&ctx.s.account, token, spec).await {
            Ok(job) => Ok(see_other(&format!(
                "/console/jobs/{}?notice={}",
                job.id,
                views::urlencode("Job created. It waits in Suspended until you confirm it.")
            ))),
            Err(e) => {
                let e = named(e);
                let mut errors = form::Errors::new();
                errors.insert(form::field_of(&e.message).into(), format!("{}: {}", e.code, e.message));
                again(errors, e)
            }
        }
    })
    .await
}

/// `GET /console/etag?bucket=…&key=…`: the ETag the create form fills in (`{"ETag": …}` or `{"Message": …}`).
async fn etag(call: Call) -> Response {
    call.answer(async |c| {
        let json = |e: WireError| {
            let message = if e.code == SIGN_IN_FIRST { "sign in first".to_string() } else { e.message };
            let status = if e.code == SIGN_IN_FIRST { StatusCode::FORBIDDEN } else { e.status };
            Ok(shown((status, axum::Json(serde_json::json!({"Message": message}))).into_response(), e.code))
        };
        let ctx = match c.caller() {
            Ok(ctx) => ctx,
            Err(e) => return json(named(e)),
        };
        let q = c.values();
        let role = Some(q.get("role")).filter(|r| !r.is_empty());
        match c.state.service.head_object(&ctx.s.account, role, q.get("bucket"), q.get("key")).await {
            Ok(info) => Ok(axum::Json(serde_json::json!({"ETag": info.etag})).into_response()),
            Err(e) => json(named(e)),
        }
    })
    .await
}

// ---- the report ----

async fn report_page(Path(id): Path<String>, call: Call) -> Response {
    call.answer(async |c| {
        let ctx = c.caller()?;
        let q = c.values();
        let failed_only = q.get("failed") == "1";
        let page_no = q.get("page").parse::<usize>().unwrap_or(1).max(1);
        let job = c.state.service.describe(&ctx.s.account, &id).await?;
        let Some(files) = c.state.service.report(&ctx.s.account, &id).await? else {
            return Ok(page(Some(&ctx), StatusCode::OK, views::report(&ctx.who(), &job, None)));
        };
        let r = read_report(&files, failed_only, page_no).await?;
        Ok(page(Some(&ctx), StatusCode::OK, views::report(&ctx.who(), &job, Some(&r))))
    })
    .await
}

/// One page of a report's rows, and its failures counted by (HTTP status, error code). Files are read one at a
/// time; the rows before the page are skipped, not kept.
async fn read_report(
    files: &s3batch_engine::service::JobReportFiles,
    failed_only: bool,
    page_no: usize,
) -> Result<views::ReportPage, ServiceError> {
    use s3batch_core::report::{TaskStatus, parse_rows};
    let skip = (page_no - 1) * REPORT_PAGE_SIZE;
    let (mut seen, mut rows, mut more) = (0usize, Vec::new(), false);
    let mut counts: std::collections::BTreeMap<(String, String), u64> = Default::default();
    let bad = |e: csv::Error| ServiceError::Internal(format!("a report file is not CSV: {e}"));
    for f in &files.manifest.results {
        let failed_file = f.task_execution_status == TaskStatus::Failed;
        if failed_only && !failed_file {
            continue;
        }
        let need_rows = rows.len() < REPORT_PAGE_SIZE || !more;
        if !failed_file && !need_rows {
            continue;
        }
        let bytes = files.read(&f.bucket, &f.key).await?;
        for row in parse_rows(&bytes).map_err(bad)? {
            if row.status == "failed" {
                *counts.entry((row.http_status.clone(), row.error_code.clone())).or_default() += 1;
            }
            if seen >= skip {
                if rows.len() < REPORT_PAGE_SIZE {
                    rows.push(row);
                } else {
                    more = true;
                }
            }
            seen += 1;
        }
    }
    let mut failure_counts: Vec<_> = counts.into_iter().collect();
    failure_counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(views::ReportPage {
        files: files
            .manifest
            .results
            .iter()
            .map(|f| (f.task_execution_status.as_str().to_string(), f.bucket.clone(), f.key.clone()))
            .collect(),
        rows,
        failed_only,
        page: page_no,
        more,
        failure_counts,
        location: format!("s3://{}/{}", files.bucket, files.manifest_key),
    })
}

/// One file of the report (`?n=` its index in the report's manifest.json; `n=manifest` the manifest.json itself),
/// as it is in the report bucket. Only the files the job's report lists can be read this way.
async fn report_file(Path(id): Path<String>, call: Call) -> Response {
    call.answer(async |c| {
        let ctx = c.caller()?;
        let n = c.values().get("n").to_string();
        let files = written_report(&c.state, &ctx, &id).await?;
        let (bucket, key, content_type) = if n == "manifest" {
            (files.bucket.clone(), files.manifest_key.clone(), "application/json")
        } else {
            match n.parse::<usize>().ok().and_then(|i| files.manifest.results.get(i)) {
                Some(f) => (f.bucket.clone(), f.key.clone(), "text/csv; charset=utf-8"),
                None => {
                    return Err(
                        WireError::new("NotFoundException", 404, format!("the report has no file '{n}'")).into()
                    );
                }
            }
        };
        Ok(streamed(files.open(&bucket, &key).await?.body, content_type))
    })
    .await
}

/// The job's written report, or why there is none.
async fn written_report(
    st: &AppState,
    ctx: &Ctx,
    id: &str,
) -> Result<s3batch_engine::service::JobReportFiles, ApiError> {
    st.service
        .report(&ctx.s.account, id)
        .await?
        .ok_or_else(|| WireError::new("NotFoundException", 404, "this job has no report").into())
}

/// A stored object's bytes as a response body, with the console's headers.
fn streamed<S, E>(body: S, content_type: &'static str) -> Response
where
    S: futures::Stream<Item = Result<axum::body::Bytes, E>> + Send + 'static,
    E: Into<axum::BoxError>,
{
    let mut r = axum::body::Body::from_stream(body).into_response();
    let h = r.headers_mut();
    secure(h);
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// The report's rows as one CSV file (all, or `?failed=1`), streamed file by file.
async fn report_csv(Path(id): Path<String>, call: Call) -> Response {
    use futures::StreamExt;
    call.answer(async |c| {
        let ctx = c.caller()?;
        let failed_only = c.values().get("failed") == "1";
        let files = written_report(&c.state, &ctx, &id).await?;
        let wanted: Vec<(String, String)> = files
            .manifest
            .results
            .iter()
            .filter(|f| !failed_only || f.task_execution_status == s3batch_core::report::TaskStatus::Failed)
            .map(|f| (f.bucket.clone(), f.key.clone()))
            .collect();
        let files = std::sync::Arc::new(files);
        let body = futures::stream::iter(wanted)
            .then(move |(bucket, key)| {
                let files = files.clone();
                async move { files.open(&bucket, &key).await }
            })
            .flat_map(|r| match r {
                Ok(get) => get.body.map(|b| b.map_err(std::io::Error::other)).boxed(),
                Err(e) => futures::stream::once(async move { Err(std::io::Error::other(e.to_string())) }).boxed(),
            });
        let mut r = streamed(body, "text/csv; charset=utf-8");
        let name = format!("attachment; filename=\"job-{id}-report{}.csv\"", if failed_only { "-failed" } else { "" });
        if let Ok(v) = HeaderValue::from_str(&name) {
            r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
        Ok(r)
    })
    .await
}
