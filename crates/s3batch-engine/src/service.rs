//! The job service: what every front end (JSON API, S3 Control, COS, CLI, demo) calls. Errors carry the
//! S3 Control exception names, so each front end only has to choose its envelope.

use std::sync::Arc;

use s3batch_core::spec::{MAX_JOB_TAGS, MAX_PRIORITY, validate_tags};
use s3batch_core::status::transition;
use s3batch_core::{Event, JobSpec, JobStatus, Tag, ValidationError};
use s3batch_store::{CreateOutcome, Job, JobStore, ListFilter, NewJob, StatusChange, StoreError};
use sha1::{Digest, Sha1};
use tokio::sync::Notify;

use crate::now;

/// A refused or failed call: `code` is the S3 Control exception name, `status` the HTTP status to send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ServiceError {
    pub code: &'static str,
    pub status: u16,
    pub message: String,
}

impl ServiceError {
    pub fn new(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        ServiceError { code, status, message: message.into() }
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new("BadRequestException", 400, m)
    }
    pub fn not_found(id: &str) -> Self {
        Self::new("NotFoundException", 404, format!("The specified job does not exist: {id}"))
    }
    pub fn job_status(m: impl Into<String>) -> Self {
        Self::new("JobStatusException", 400, m)
    }
}

impl From<ValidationError> for ServiceError {
    fn from(e: ValidationError) -> Self {
        ServiceError::new(e.code, 400, e.message)
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::IdempotencyMismatch(id) => ServiceError::new(
                "IdempotencyException",
                400,
                format!("the ClientRequestToken was already used for a different request (job {id})"),
            ),
            other => {
                tracing::error!(error = %other, "job store failed");
                ServiceError::new("InternalServiceException", 500, "the job store failed; try again")
            }
        }
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// The largest page ListJobs returns.
pub const MAX_LIST_RESULTS: i64 = 1000;

/// Job operations shared by every front end.
#[derive(Debug, Clone)]
pub struct JobService {
    store: Arc<dyn JobStore>,
    wake: Arc<Notify>,
    retention_days: i64,
}

impl JobService {
    /// `wake` is the engine's: a new job or a confirmation is looked at at once, not at the next tick.
    pub fn new(store: Arc<dyn JobStore>, wake: Arc<Notify>, retention_days: i64) -> Self {
        JobService { store, wake, retention_days }
    }

    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.store
    }

    /// CreateJob. `token` is the ClientRequestToken (generated when absent, as the SDKs do).
    pub async fn create(&self, account: &str, token: Option<String>, spec: JobSpec) -> Result<Job> {
        if !s3batch_core::spec::valid_account_id(account) {
            return Err(ServiceError::bad_request(format!("account id '{account}' is not 12 digits")));
        }
        spec.validate()?;
        let token = token.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if !(1..=64).contains(&token.chars().count()) {
            return Err(ServiceError::bad_request("ClientRequestToken must be 1 to 64 characters long"));
        }
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
        Ok(outcome.job().clone())
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
            return Err(ServiceError::new(
                "InvalidRequestException",
                400,
                format!("maxResults must be between 0 and {MAX_LIST_RESULTS}, got {limit}"),
            ));
        }
        let after = next_token.map(decode_token).transpose()?;
        if limit == 0 {
            return Ok((vec![], None));
        }
        let filter = ListFilter { statuses, after, limit: limit + 1, terminated_after: Some(self.retention_cutoff()) };
        let mut jobs = self.store.list_jobs(account, &filter).await?;
        let next = if jobs.len() as i64 > limit {
            jobs.truncate(limit as usize);
            jobs.last().map(|j| encode_token(j.created_at, &j.id))
        } else {
            None
        };
        Ok((jobs, next))
    }

    /// UpdateJobStatus: `Ready` confirms a Suspended job, `Cancelled` cancels any job that has not finished.
    /// Returns the job after the change (its status may be the transitional Cancelling).
    pub async fn update_status(&self, account: &str, id: &str, requested: &str, reason: Option<String>) -> Result<Job> {
        if let Some(r) = &reason
            && !(1..=256).contains(&r.chars().count())
        {
            return Err(ServiceError::bad_request("statusUpdateReason must be 1 to 256 characters long"));
        }
        let event = match requested {
            "Ready" => Event::Confirm,
            "Cancelled" => Event::Cancel,
            other => {
                return Err(ServiceError::bad_request(format!(
                    "requestedJobStatus must be Ready or Cancelled, got '{other}'"
                )));
            }
        };
        // A compare-and-set can lose to the engine moving the job; read again and retry a few times.
        for _ in 0..10 {
            let job = self.describe(account, id).await?;
            let Ok(to) = transition(job.status, event) else {
                return Err(ServiceError::job_status(format!(
                    "a job in status {} cannot be set to {requested}",
                    job.status
                )));
            };
            let change = StatusChange::to(to).reason(reason.clone());
            if self.store.update_status(id, job.status, &change, now()).await? {
                tracing::info!(job = id, from = %job.status, to = %to, "status requested");
                self.wake.notify_waiters();
                return self.describe(account, id).await;
            }
        }
        Err(ServiceError::new("TooManyRequestsException", 429, "the job is changing status; try again"))
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
        if !self.store.set_priority(account, id, priority, now()).await? {
            return Err(ServiceError::not_found(id));
        }
        self.wake.notify_waiters();
        self.describe(account, id).await
    }

    /// GetJobTagging.
    pub async fn tags(&self, account: &str, id: &str) -> Result<Vec<Tag>> {
        Ok(self.describe(account, id).await?.tags)
    }

    /// PutJobTagging (replaces the whole set; empty removes all). DeleteJobTagging is `put_tags(&[])`.
    pub async fn put_tags(&self, account: &str, id: &str, tags: &[Tag]) -> Result<()> {
        validate_tags("job tag", tags, MAX_JOB_TAGS)?;
        self.describe(account, id).await?;
        if !self.store.set_tags(account, id, tags, now()).await? {
            return Err(ServiceError::not_found(id));
        }
        Ok(())
    }
}

/// JobId: 5..36 characters of `[a-zA-Z0-9\-_]`.
fn check_id(id: &str) -> Result<()> {
    let ok = (5..=36).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(()) } else { Err(ServiceError::bad_request(format!("'{id}' is not a valid job id"))) }
}

fn encode_token(created_at: i64, id: &str) -> String {
    hex::encode(format!("{created_at}.{id}"))
}

fn decode_token(t: &str) -> Result<(i64, String)> {
    let bad = || ServiceError::new("InvalidNextTokenException", 400, "the nextToken is not one this server issued");
    let raw = String::from_utf8(hex::decode(t).map_err(|_| bad())?).map_err(|_| bad())?;
    let (ts, id) = raw.split_once('.').ok_or_else(bad)?;
    let ts: i64 = ts.parse().map_err(|_| bad())?;
    check_id(id).map_err(|_| bad())?;
    Ok((ts, id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_forgeries_fail() {
        let t = encode_token(1_700_000_000_000, "0b2a3c4d-aaaa-bbbb-cccc-123456789012");
        assert_eq!(decode_token(&t).unwrap(), (1_700_000_000_000, "0b2a3c4d-aaaa-bbbb-cccc-123456789012".into()));
        for forged in ["zz", "abcd", &hex::encode("x.y"), &hex::encode("12.bad id!")] {
            assert_eq!(decode_token(forged).unwrap_err().code, "InvalidNextTokenException");
        }
    }

    #[test]
    fn job_ids() {
        assert!(check_id("abc-123").is_ok());
        assert!(check_id("ab").is_err());
        assert!(check_id("has space").is_err());
    }
}
