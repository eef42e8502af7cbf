//! The job service: what every front end (JSON API, S3 Control, COS, console, CLI, demo) calls. Its errors
//! ([`ServiceError`]) say what went wrong, not how a dialect spells it: each front end maps them once.

use std::sync::Arc;

use s3batch_core::spec::{MAX_JOB_TAGS, MAX_PRIORITY, validate_tags};
use s3batch_core::{Event, JobSpec, JobStatus, Millis, Tag};
use s3batch_store::{Browse, CreateOutcome, Job, JobStore, ListFilter, NewJob, StatusChange, Worker, WorkerState};
use sha1::{Digest, Sha1};
use tokio::sync::Notify;

pub use crate::error::ServiceError;
use crate::now;
use crate::roles::{Role, Roles};
use crate::status_write::{self, Written};

/// The statuses a caller may ask a job to go to (UpdateJobStatus' `requestedJobStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestedStatus {
    /// Confirm a Suspended job.
    Ready,
    /// Cancel a job that has not finished.
    Cancelled,
    /// Extension: pause a Ready or running job.
    Paused,
    /// Extension: resume a job a user paused.
    Active,
}

impl RequestedStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestedStatus::Ready => "Ready",
            RequestedStatus::Cancelled => "Cancelled",
            RequestedStatus::Paused => "Paused",
            RequestedStatus::Active => "Active",
        }
    }
}

impl std::fmt::Display for RequestedStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RequestedStatus {
    type Err = ServiceError;
    fn from_str(s: &str) -> Result<Self, ServiceError> {
        match s {
            "Ready" => Ok(RequestedStatus::Ready),
            "Cancelled" => Ok(RequestedStatus::Cancelled),
            "Paused" => Ok(RequestedStatus::Paused),
            "Active" => Ok(RequestedStatus::Active),
            other => Err(ServiceError::Invalid(format!(
                "requestedJobStatus must be Ready or Cancelled (or the extensions Paused and Active), got '{other}'"
            ))),
        }
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

pub use s3batch_core::status::USER_PAUSE_CAUSE;

/// The largest page ListJobs returns.
pub const MAX_LIST_RESULTS: i64 = 1000;
/// Bytes of job specs (JSON) one ListJobs page reads before it ends early, with a token for the rest: a thousand
/// real jobs take a few MiB; a thousand of the largest specs allowed would take 256 MiB.
pub const MAX_LIST_PAGE_BYTES: usize = 8 << 20;
/// Jobs a ListJobs page reads from the store at a time.
const LIST_BATCH: i64 = 50;
/// Default of `engine.max_live_jobs_per_account`: far more unfinished jobs than anyone runs (at most
/// `engine.max_active_jobs` run at once; the rest wait), few enough that a runaway script cannot fill the store.
pub const DEFAULT_MAX_LIVE_JOBS: u64 = 10_000;

/// A registered worker and how it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStatus {
    pub worker: Worker,
    pub state: WorkerState,
    /// It holds the scheduler lease: it ranks jobs and sweeps for the whole fleet.
    pub scheduler: bool,
}

/// Job operations shared by every front end.
#[derive(Debug, Clone)]
pub struct JobService {
    store: Arc<dyn JobStore>,
    wake: Arc<Notify>,
    retention_days: i64,
    /// Where the impact preview HEADs its sample, and the engine's concurrency its estimate assumes.
    storage: Option<(Arc<s3batch_storage::Router>, usize)>,
    /// The configured roles: CreateJob checks the one a job names; the preview samples through it.
    roles: Option<Arc<Roles>>,
    /// Most live (not finished) jobs an account may have; CreateJob beyond it is refused.
    max_live_jobs: i64,
}

impl JobService {
    /// `wake` is the engine's: a new job or a confirmation is looked at at once, not at the next tick.
    pub fn new(store: Arc<dyn JobStore>, wake: Arc<Notify>, retention_days: i64) -> Self {
        JobService {
            store,
            wake,
            retention_days,
            storage: None,
            roles: None,
            max_live_jobs: DEFAULT_MAX_LIVE_JOBS as i64,
        }
    }

    /// Cap the live (not finished) jobs of each account at `n` (default [`DEFAULT_MAX_LIVE_JOBS`]).
    pub fn with_max_live_jobs(mut self, n: u64) -> Self {
        self.max_live_jobs = i64::try_from(n).unwrap_or(i64::MAX);
        self
    }

    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.store
    }

    /// CreateJob. `token` is the ClientRequestToken (generated when absent, as the SDKs do).
    pub async fn create(&self, account: &str, token: Option<String>, spec: JobSpec) -> Result<Job> {
        Ok(self.create_outcome(account, token, spec).await?.job().clone())
    }

    /// CreateJob, telling a new job from the one an earlier request with the same token and body created (the
    /// COS dialect refuses a reused token instead of answering with the earlier job).
    pub async fn create_outcome(&self, account: &str, token: Option<String>, spec: JobSpec) -> Result<CreateOutcome> {
        if !s3batch_core::spec::valid_account_id(account) {
            return Err(ServiceError::bad_request(format!("account id '{account}' is not 12 digits")));
        }
        spec.validate()?;
        if let Some(roles) = &self.roles {
            roles.check_create(account, &spec).map_err(|r| ServiceError::AccessDenied(r.0))?;
        }
        let token = token.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if !(1..=64).contains(&token.chars().count()) {
            return Err(ServiceError::bad_request("ClientRequestToken must be 1 to 64 characters long"));
        }
        self.check_live_jobs(account).await?;
        let canonical = serde_json::to_vec(&spec).expect("plain data always serialises");
        let new = NewJob {
            id: uuid::Uuid::new_v4().to_string(),
            account_id: account.into(),
            client_request_token: token,
            request_hash: hex::encode(Sha1::digest(&canonical)),
            spec,
        };
        let outcome = self.store.create_job(&new, now()).await?;
        if let CreateOutcome::Created(j) = &outcome {
            tracing::info!(job = %j.id, account, operation = j.spec.operation.name(), "job created");
            self.wake.notify_waiters();
        }
        Ok(outcome)
    }

    /// Refuse a new job when the account already has `max_live_jobs` unfinished ones. A soft cap: creates racing
    /// each other may pass it by the number in flight.
    async fn check_live_jobs(&self, account: &str) -> Result<()> {
        let counts = self.store.count_jobs(account, &Browse::default()).await?;
        let live: i64 = counts.iter().filter(|(s, _)| !s.is_terminal()).map(|(_, n)| n).sum();
        if live >= self.max_live_jobs {
            return Err(ServiceError::TooManyJobs(format!(
                "account {account} has {live} unfinished jobs, the most it may have (engine.max_live_jobs_per_account \
                 = {}); create more once some finish",
                self.max_live_jobs
            )));
        }
        Ok(())
    }

    /// Re-run the failed tasks of a finished job (extension): a new job with the original's spec whose tasks are
    /// exactly the original's failed tasks, linked by `RerunOf`. Asking again returns the same re-run job.
    pub async fn rerun_failed(&self, account: &str, id: &str) -> Result<Job> {
        let original = self.describe(account, id).await?;
        if !original.status.is_terminal() {
            return Err(ServiceError::wrong_status(
                original.status,
                format!("job {id} is {}; only a finished job's failed tasks can run again", original.status),
            ));
        }
        if original.failed == 0 {
            return Err(ServiceError::bad_request(format!("job {id} has no failed task")));
        }
        let mut spec = original.spec.clone();
        spec.rerun_of = Some(original.id.clone());
        spec.description = Some(format!("Re-run of the failed tasks of job {}", original.id));
        // COS echoes its own request; the re-run is an s3batch job.
        spec.cos_request = None;
        self.create(account, Some(format!("rerun-{}", original.id)), spec).await
    }

    /// DescribeJob: the job, if it belongs to `account` and is within retention.
    pub async fn describe(&self, account: &str, id: &str) -> Result<Job> {
        check_id(id)?;
        let job = self.store.get_job(Some(account), id).await?.ok_or_else(|| ServiceError::not_found(id))?;
        if job.terminated_at.is_some_and(|t| t < self.retention_cutoff()) {
            return Err(ServiceError::not_found(id));
        }
        Ok(job)
    }

    fn retention_cutoff(&self) -> i64 {
        now() - self.retention_days * 24 * 3600 * 1000
    }

    /// ListJobs: newest first, optional status filter, `max_results` (0..=1000, default 1000) a page.
    pub async fn list(
        &self,
        account: &str,
        statuses: Vec<JobStatus>,
        next_token: Option<&str>,
        max_results: Option<i64>,
    ) -> Result<(Vec<Job>, Option<String>)> {
        let limit = max_results.unwrap_or(MAX_LIST_RESULTS);
        if !(0..=MAX_LIST_RESULTS).contains(&limit) {
            return Err(ServiceError::InvalidListing(format!(
                "maxResults must be between 0 and {MAX_LIST_RESULTS}, got {limit}"
            )));
        }
        let after = next_token.map(|t| decode_token(account, t)).transpose()?;
        if limit == 0 {
            return Ok((vec![], None));
        }
        let (jobs, more) = self.page(account, statuses, after, limit).await?;
        let next = if more { jobs.last().map(|j| encode_token(account, j.created_at, &j.id)) } else { None };
        Ok((jobs, next))
    }

    /// Up to `limit` of the account's jobs (within retention) after `after`, newest first, and whether more may
    /// follow. Jobs are read [`LIST_BATCH`] at a time, and the page ends early once the jobs read hold
    /// [`MAX_LIST_PAGE_BYTES`] of specs, so a page of big jobs stays bounded in memory (the caller pages on).
    async fn page(
        &self,
        account: &str,
        statuses: Vec<JobStatus>,
        mut after: Option<(Millis, String)>,
        limit: i64,
    ) -> Result<(Vec<Job>, bool)> {
        let (mut jobs, mut bytes) = (Vec::new(), 0usize);
        loop {
            let want = (limit + 1 - jobs.len() as i64).min(LIST_BATCH);
            let terminated_after = Some(self.retention_cutoff());
            let filter = ListFilter { statuses: statuses.clone(), after, limit: want, terminated_after };
            let batch = self.store.list_jobs(account, &filter).await?;
            let full = batch.len() as i64 == want;
            bytes += batch.iter().map(|j| serde_json::to_vec(&j.spec).map_or(0, |v| v.len())).sum::<usize>();
            jobs.extend(batch);
            if jobs.len() as i64 > limit {
                jobs.truncate(limit as usize);
                return Ok((jobs, true));
            }
            if !full {
                return Ok((jobs, false));
            }
            if bytes >= MAX_LIST_PAGE_BYTES {
                return Ok((jobs, true));
            }
            after = jobs.last().map(|j| (j.created_at, j.id.clone()));
        }
    }

    /// ListJobs the COS way: jobs *created* at or after `created_after`, newest first, `limit` (1..=1000) a page,
    /// continuing after the job `after_job` (the last JobId of the previous page). Returns the page and whether
    /// more jobs follow. An `after_job` that is not one of the account's jobs is an InvalidNextTokenException.
    pub async fn list_created_since(
        &self,
        account: &str,
        statuses: Vec<JobStatus>,
        after_job: Option<&str>,
        limit: i64,
        created_after: s3batch_core::Millis,
    ) -> Result<(Vec<Job>, bool)> {
        if !(1..=MAX_LIST_RESULTS).contains(&limit) {
            return Err(ServiceError::InvalidListing(format!(
                "maxResults must be between 1 and {MAX_LIST_RESULTS}, got {limit}"
            )));
        }
        let after = match after_job {
            None => None,
            Some(id) => {
                let bad = || ServiceError::InvalidPageToken(format!("nextToken '{id}' is not a job of this account"));
                check_id(id).map_err(|_| bad())?;
                let job = self.store.get_job(Some(account), id).await?.ok_or_else(bad)?;
                Some((job.created_at, job.id))
            }
        };
        let (mut jobs, mut more) = self.page(account, statuses, after, limit).await?;
        // Newest first: the jobs created before the window are a tail.
        if let Some(i) = jobs.iter().position(|j| j.created_at < created_after) {
            jobs.truncate(i);
            more = false;
        }
        Ok((jobs, more))
    }

    /// A page of the account's jobs created at or after `created_after` (and within retention), as a person browses
    /// them: filtered by status and search in the store, in the order asked, with the count in each status (over
    /// all of them, search and status filter aside) and how many match.
    pub async fn browse(&self, account: &str, mut q: Browse) -> Result<BrowsePage> {
        q.terminated_after = Some(self.retention_cutoff());
        let all = self.store.count_jobs(account, &Browse { search: None, ..q.clone() }).await?;
        let searched = if q.like_pattern().is_some() { self.store.count_jobs(account, &q).await? } else { all.clone() };
        let matching =
            searched.iter().filter(|(s, _)| q.statuses.is_empty() || q.statuses.contains(s)).map(|(_, n)| n).sum();
        let jobs = self.store.browse_jobs(account, &q).await?;
        Ok(BrowsePage { jobs, counts: all, matching })
    }

    /// Delete a finished job (Complete, Failed or Cancelled) and its chunks. A job that has not finished is a
    /// JobStatusException: cancel it first. Its report, if written, stays where it is.
    pub async fn delete(&self, account: &str, id: &str) -> Result<()> {
        let job = self.describe(account, id).await?;
        if !job.status.is_terminal() {
            return Err(ServiceError::wrong_status(
                job.status,
                format!(
                    "the job is {}; only a finished job (Complete, Failed or Cancelled) can be deleted: cancel it first",
                    job.status
                ),
            ));
        }
        self.store.delete_job(&job.id).await?;
        tracing::info!(job = id, account, "job deleted");
        Ok(())
    }

    /// UpdateJobStatus: `Ready` confirms a Suspended job, `Cancelled` cancels any job that has not finished.
    /// Extensions: `Paused` pauses a Ready or running job until `Active` resumes it.
    /// Returns the job after the change (its status may be the transitional Cancelling or Pausing).
    pub async fn update_status(
        &self,
        account: &str,
        id: &str,
        requested: RequestedStatus,
        reason: Option<String>,
    ) -> Result<Job> {
        if let Some(r) = &reason
            && !(1..=256).contains(&r.chars().count())
        {
            return Err(ServiceError::bad_request("statusUpdateReason must be 1 to 256 characters long"));
        }
        let event = match requested {
            RequestedStatus::Ready => Event::Confirm,
            RequestedStatus::Cancelled => Event::Cancel,
            RequestedStatus::Paused => return self.pause_or_resume(account, id, true, reason).await,
            RequestedStatus::Active => return self.pause_or_resume(account, id, false, reason).await,
        };
        // A compare-and-set can lose to the engine moving the job; read again and retry a few times.
        let change = StatusChange::default().reason(reason);
        for _ in 0..10 {
            let job = self.describe(account, id).await?;
            match status_write::apply(&*self.store, id, job.status, event, &change).await? {
                Written::Applied(t) => {
                    tracing::info!(job = id, from = %t.from(), to = %t.to(), "status requested");
                    self.wake.notify_waiters();
                    return self.describe(account, id).await;
                }
                Written::Illegal(_) => {
                    return Err(ServiceError::wrong_status(
                        job.status,
                        format!("a job in status {} cannot be set to {requested}", job.status),
                    ));
                }
                Written::NotFound => return Err(ServiceError::not_found(id)),
                Written::Conflict { .. } => {}
            }
        }
        Err(ServiceError::Contended)
    }

    /// The user pause (extension): a Ready job goes Paused, an Active one Pausing (tasks in flight finish) and then
    /// Paused, a job already paused for a higher-priority job stays Paused; the scheduler then leaves it alone.
    /// Resume clears the pause: the job runs again when it ranks among the top `max_active_jobs`.
    async fn pause_or_resume(&self, account: &str, id: &str, pause: bool, reason: Option<String>) -> Result<Job> {
        let (event, change) = if pause {
            (Event::UserPause, StatusChange::default().reason(reason).user_paused(true).cause(USER_PAUSE_CAUSE))
        } else {
            (Event::UserResume, StatusChange::default().reason(reason).user_paused(false))
        };
        for _ in 0..10 {
            let job = self.describe(account, id).await?;
            // Only a job a user paused can be resumed: the scheduler's own pauses are not the user's to lift.
            let written = if pause || job.user_paused {
                status_write::apply(&*self.store, id, job.status, event, &change).await?
            } else {
                Written::Illegal(s3batch_core::status::IllegalTransition { from: job.status, event })
            };
            match written {
                Written::Applied(t) => {
                    tracing::info!(job = id, from = %t.from(), to = %t.to(), pause, "pause requested");
                    self.wake.notify_waiters();
                    return self.describe(account, id).await;
                }
                Written::Illegal(_) if pause => {
                    return Err(ServiceError::wrong_status(
                        job.status,
                        format!(
                            "a job in status {} cannot be paused; only Ready, Active, Pausing and Paused jobs can",
                            job.status
                        ),
                    ));
                }
                Written::Illegal(_) => {
                    return Err(ServiceError::wrong_status(
                        job.status,
                        format!("only a job paused by a user can be resumed; this one is {}", job.status),
                    ));
                }
                Written::NotFound => return Err(ServiceError::not_found(id)),
                Written::Conflict { .. } => {}
            }
        }
        Err(ServiceError::Contended)
    }

    /// UpdateJobPriority.
    pub async fn update_priority(&self, account: &str, id: &str, priority: i64) -> Result<Job> {
        if !(0..=MAX_PRIORITY).contains(&priority) {
            return Err(ServiceError::bad_request(format!(
                "priority must be between 0 and {MAX_PRIORITY}, got {priority}"
            )));
        }
        let job = self.describe(account, id).await?;
        if job.status.is_terminal() {
            return Err(ServiceError::bad_request(format!(
                "the job has finished ({}); its priority cannot change",
                job.status
            )));
        }
        if !self.store.set_priority(account, id, priority, now()).await?.is_applied() {
            return Err(ServiceError::not_found(id));
        }
        self.wake.notify_waiters();
        self.describe(account, id).await
    }

    /// GetJobTagging.
    pub async fn tags(&self, account: &str, id: &str) -> Result<Vec<Tag>> {
        Ok(self.describe(account, id).await?.tags)
    }

    /// The processes running an engine on this job store, oldest first, as of `now`. Not scoped to an account:
    /// the fleet serves every account.
    pub async fn workers(&self, now: Millis) -> Result<Vec<WorkerStatus>> {
        let scheduler = self.store.singleton_owner(crate::schedule::SCHEDULER_LEASE, now).await?;
        let workers = self.store.list_workers().await?;
        Ok(workers
            .into_iter()
            .map(|w| WorkerStatus {
                state: w.state(now),
                scheduler: scheduler.as_deref() == Some(w.id.as_str()),
                worker: w,
            })
            .collect())
    }

    /// PutJobTagging (replaces the whole set; empty removes all). DeleteJobTagging is `put_tags(&[])`.
    pub async fn put_tags(&self, account: &str, id: &str, tags: &[Tag]) -> Result<()> {
        validate_tags("job tag", tags, MAX_JOB_TAGS)?;
        self.describe(account, id).await?;
        if !self.store.set_tags(account, id, tags, now()).await?.is_applied() {
            return Err(ServiceError::not_found(id));
        }
        Ok(())
    }

    /// The service with the storage the impact preview samples, and the engine's `concurrency` (requests in flight
    /// per process) its duration estimate assumes.
    pub fn with_storage(mut self, router: Arc<s3batch_storage::Router>, concurrency: usize) -> Self {
        self.storage = Some((router, concurrency));
        self
    }

    /// The service with the configured roles: CreateJob checks the role a job names (see [`Roles::check_create`]),
    /// and the impact preview samples through the job's role.
    pub fn with_roles(mut self, roles: Arc<Roles>) -> Self {
        self.roles = Some(roles);
        self
    }

    /// The roles of `account` and what each allows (none on a server without `[[roles]]`).
    pub fn roles(&self, account: &str) -> Vec<Arc<Role>> {
        self.roles.as_ref().map(|r| r.of_account(account)).unwrap_or_default()
    }

    /// Whether jobs must name a role (the server has `[[accounts]]`).
    pub fn roles_required(&self) -> bool {
        self.roles.as_ref().is_some_and(|r| r.required())
    }

    /// Set (or with `None` lift) the job's rate limit, in tasks per second for the whole job: the workers running
    /// it take the new limit within about a second.
    pub async fn update_rate_limit(&self, account: &str, id: &str, rate_limit: Option<i64>) -> Result<Job> {
        if let Some(r) = rate_limit {
            s3batch_core::spec::validate_rate_limit(r)?;
        }
        let job = self.describe(account, id).await?;
        if job.status.is_terminal() {
            return Err(ServiceError::wrong_status(
                job.status,
                format!("the job has finished ({}); its rate limit cannot change", job.status),
            ));
        }
        if !self.store.set_rate_limit(account, id, rate_limit, now()).await?.is_applied() {
            return Err(ServiceError::not_found(id));
        }
        tracing::info!(job = id, ?rate_limit, "rate limit changed");
        self.describe(account, id).await
    }

    /// The impact preview of a prepared job: tasks, bytes (from a HEAD of a sample), storage requests and the
    /// estimated duration (see [`crate::preview`]).
    pub async fn preview(&self, account: &str, id: &str) -> Result<crate::preview::Preview> {
        let job = self.describe(account, id).await?;
        let Some((router, concurrency)) = &self.storage else {
            return Err(ServiceError::Internal("this server has no storage to sample".into()));
        };
        let router = match &self.roles {
            Some(roles) => roles.router_for(&job.account_id, job.spec.named_role()),
            None => router.clone(),
        };
        crate::preview::preview(self.store.as_ref(), &router, *concurrency, &job, now()).await
    }
}

impl JobService {
    /// The storage this service reaches (the console looks up a manifest's ETag through it), if it has one.
    pub fn storage(&self) -> Option<&Arc<s3batch_storage::Router>> {
        self.storage.as_ref().map(|(r, _)| r)
    }

    /// A HEAD of one object, for a front end that helps a user of `account` fill in a manifest location (its
    /// ETag). With roles, it goes through the role the user named, or else through a role of the account that may
    /// read the bucket (none: `AccessDenied`): a user sees nothing its jobs could not read.
    pub async fn head_object(
        &self,
        account: &str,
        role: Option<&str>,
        bucket: &str,
        key: &str,
    ) -> Result<s3batch_storage::ObjectInfo> {
        let mut router = self.storage().ok_or_else(no_storage)?.clone();
        if let Some(roles) = &self.roles {
            let mine = roles.of_account(account);
            let role = match role {
                Some(r) => Some(r.to_string()),
                None if roles.required() || !mine.is_empty() => match mine.iter().find(|r| r.may_read(bucket)) {
                    Some(r) => Some(r.arn.clone()),
                    None => {
                        return Err(ServiceError::AccessDenied(format!(
                            "Access Denied: no role of account {account} may read bucket {bucket}"
                        )));
                    }
                },
                None => None,
            };
            router = roles.router_for(account, role.as_deref());
        }
        let obj = s3batch_storage::ObjectRef::new(bucket, key);
        let store = router.store_for(bucket).map_err(storage_error)?;
        store.head_object(&obj).await.map_err(storage_error)
    }

    /// A job's status history: its recorded events, oldest first (as far as `engine.events.retention_hours`
    /// keeps them), at most 1,000.
    pub async fn history(&self, account: &str, id: &str) -> Result<Vec<s3batch_store::JobEventRecord>> {
        let job = self.describe(account, id).await?;
        Ok(self.store.job_events(&job.id, 1000).await?)
    }

    /// The completion report of a job of `account`: where its manifest.json is and what it lists. `None` while
    /// no report was written (the job has not finished, or it has none). The report is read through the job's
    /// role, as the job wrote it, and only within the report's own directory (`…/job-<id>/`): a manifest.json
    /// that lists a file anywhere else is refused, whoever wrote it.
    pub async fn report(&self, account: &str, id: &str) -> Result<Option<JobReportFiles>> {
        let job = self.describe(account, id).await?;
        let (Some(key), Some(bucket)) =
            (job.report_key.as_ref(), job.spec.report.bucket.as_deref().and_then(s3batch_core::arn::parse_bucket_arn))
        else {
            return Ok(None);
        };
        let dir = match key.rsplit_once('/') {
            Some((d, _)) => format!("{d}/"),
            None => String::new(),
        };
        let router = match &self.roles {
            Some(roles) => roles.router_for(&job.account_id, job.spec.named_role()),
            None => self.storage().ok_or_else(no_storage)?.clone(),
        };
        let store = router.store_for(&bucket).map_err(storage_error)?;
        let got = store.get_object(&s3batch_storage::ObjectRef::new(&bucket, key), None).await;
        let bytes = got.map_err(storage_error)?.bytes().await.map_err(storage_error)?;
        let manifest = serde_json::from_slice(&bytes).map_err(|e| {
            ServiceError::Internal(format!("the report's manifest s3://{bucket}/{key} is not valid: {e}"))
        })?;
        let files = JobReportFiles { bucket: bucket.to_string(), manifest_key: key.clone(), manifest, dir, router };
        if let Some(f) = files.manifest.results.iter().find(|f| !files.holds(&f.bucket, &f.key)) {
            return Err(ServiceError::Internal(format!(
                "the report's manifest lists s3://{}/{}, which is not in the report's directory s3://{}/{}",
                f.bucket, f.key, files.bucket, files.dir
            )));
        }
        Ok(Some(files))
    }
}

/// One page of [`JobService::browse`].
#[derive(Debug, Clone)]
pub struct BrowsePage {
    pub jobs: Vec<Job>,
    /// Jobs in each status (statuses with none left out).
    pub counts: Vec<(JobStatus, i64)>,
    /// Jobs that match the status filter and the search.
    pub matching: i64,
}

/// A written completion report, and the way to read its files.
#[derive(Debug, Clone)]
pub struct JobReportFiles {
    pub bucket: String,
    /// The key of its `manifest.json`.
    pub manifest_key: String,
    pub manifest: s3batch_core::report::ReportManifest,
    /// The report's directory (`<prefix>/job-<id>/`): every file of the report is in it.
    dir: String,
    /// The job's storage, through its role.
    router: Arc<s3batch_storage::Router>,
}

impl JobReportFiles {
    /// Whether `s3://bucket/key` is a file of this report's directory.
    pub fn holds(&self, bucket: &str, key: &str) -> bool {
        bucket == self.bucket && key.starts_with(&self.dir)
    }

    /// A file of the report, as a stream (for a download).
    pub async fn open(&self, bucket: &str, key: &str) -> Result<s3batch_storage::GetResult> {
        if !self.holds(bucket, key) {
            return Err(ServiceError::Invalid(format!("s3://{bucket}/{key} is not a file of this job's report")));
        }
        let store = self.router.store_for(bucket).map_err(storage_error)?;
        store.get_object(&s3batch_storage::ObjectRef::new(bucket, key), None).await.map_err(storage_error)
    }

    /// A file's bytes (one results file: a part of the report, never the whole of a large one).
    pub async fn read(&self, bucket: &str, key: &str) -> Result<bytes::Bytes> {
        self.open(bucket, key).await?.bytes().await.map_err(storage_error)
    }
}

fn no_storage() -> ServiceError {
    ServiceError::Internal("this server has no storage".into())
}

fn storage_error(e: s3batch_storage::StorageError) -> ServiceError {
    ServiceError::Storage(e)
}

/// JobId: 5..36 characters of `[a-zA-Z0-9\-_]`.
fn check_id(id: &str) -> Result<()> {
    let ok = (5..=36).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(()) } else { Err(ServiceError::bad_request(format!("'{id}' is not a valid job id"))) }
}

/// A ListJobs page token: the last job's (creation time, id), bound to the account by a check value, hex-encoded.
fn encode_token(account: &str, created_at: i64, id: &str) -> String {
    hex::encode(format!("{created_at}.{id}.{}", token_check(account, created_at, id)))
}

fn token_check(account: &str, created_at: i64, id: &str) -> String {
    hex::encode(&Sha1::digest(format!("s3batch-list-token\n{account}\n{created_at}\n{id}"))[..8])
}

fn decode_token(account: &str, t: &str) -> Result<(i64, String)> {
    let bad = || ServiceError::InvalidPageToken("the nextToken is not one this server issued".into());
    let raw = String::from_utf8(hex::decode(t).map_err(|_| bad())?).map_err(|_| bad())?;
    let mut parts = raw.splitn(3, '.');
    let (Some(ts), Some(id), Some(check)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let ts: i64 = ts.parse().map_err(|_| bad())?;
    check_id(id).map_err(|_| bad())?;
    if check != token_check(account, ts, id) {
        return Err(bad());
    }
    Ok((ts, id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_forgeries_fail() {
        let id = "0b2a3c4d-aaaa-bbbb-cccc-123456789012";
        let t = encode_token("111111111111", 1_700_000_000_000, id);
        assert_eq!(decode_token("111111111111", &t).unwrap(), (1_700_000_000_000, id.into()));
        assert!(decode_token("222222222222", &t).is_err(), "a token is only good for its account");
        let unchecked = hex::encode(format!("1700000000000.{id}.0000000000000000"));
        for forged in ["zz", "abcd", &hex::encode("x.y"), &hex::encode("12.bad id!"), &unchecked] {
            assert!(matches!(decode_token("111111111111", forged), Err(ServiceError::InvalidPageToken(_))));
        }
    }

    #[test]
    fn job_ids() {
        assert!(check_id("abc-123").is_ok());
        assert!(check_id("ab").is_err());
        assert!(check_id("has space").is_err());
    }
}
