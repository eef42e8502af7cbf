//! The job service's errors: what went wrong, not how a dialect spells it. Each front end (S3 Control, COS, the
//! JSON API, the console) turns a [`ServiceError`] into its own error code and HTTP status in one match.

use s3batch_core::{JobStatus, ValidationError, ValidationKind};
use s3batch_store::StoreError;

/// Why the job service refused or failed a call. The kinds are semantic: each front end names them in its own
/// dialect (exception name, error code, HTTP status) in one match of its own, so adding a kind here makes every
/// front end's match fail to compile until it says how it answers.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The request is not valid: a member missing, out of range or inconsistent with another.
    #[error("{0}")]
    Invalid(String),
    /// A listing parameter out of its range (ListJobs' maxResults, an unknown status to filter by).
    #[error("{0}")]
    InvalidListing(String),
    /// A page token this server did not issue, or not for this account.
    #[error("{0}")]
    InvalidPageToken(String),
    /// More tags than allowed.
    #[error("{0}")]
    TooManyTags(String),
    /// No such job for this account (or it is past its retention).
    #[error("The specified job does not exist: {0}")]
    NoSuchJob(String),
    /// The job's status does not allow the call (confirming a running job, deleting an unfinished one, …).
    #[error("{reason}")]
    WrongStatus { status: JobStatus, reason: String },
    /// The ClientRequestToken was used before for a different request.
    #[error("the ClientRequestToken was already used for a different request (job {job})")]
    Idempotency { job: String },
    /// The account has as many live (unfinished) jobs as it may have; it may create more once some finish.
    #[error("{0}")]
    TooManyJobs(String),
    /// The job kept changing status under the call; the caller may try again.
    #[error("the job is changing status; try again")]
    Contended,
    /// A role does not allow it.
    #[error("{0}")]
    AccessDenied(String),
    /// A storage call made for the caller (an object's HEAD, a report file) failed with the storage's error.
    #[error("{0}")]
    Storage(s3batch_storage::StorageError),
    /// Something on the server's side failed (the job store, a missing storage); the message says what.
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    pub fn bad_request(m: impl Into<String>) -> Self {
        ServiceError::Invalid(m.into())
    }
    pub fn not_found(id: &str) -> Self {
        ServiceError::NoSuchJob(id.to_string())
    }
    pub fn wrong_status(status: JobStatus, reason: impl Into<String>) -> Self {
        ServiceError::WrongStatus { status, reason: reason.into() }
    }
}

impl From<ValidationError> for ServiceError {
    fn from(e: ValidationError) -> Self {
        match e.kind {
            ValidationKind::TooManyTags => ServiceError::TooManyTags(e.message),
            _ => ServiceError::Invalid(e.message),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::IdempotencyMismatch(job) => ServiceError::Idempotency { job },
            other => {
                tracing::error!(error = %other, "job store failed");
                ServiceError::Internal("the job store failed; try again".into())
            }
        }
    }
}
