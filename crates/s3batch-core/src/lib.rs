//! # s3batch-core
//!
//! The pure domain of s3batch, with no I/O:
//!
//! - [`status`]: the 13 job statuses of S3 Batch Operations and the one [`status::transition`] function;
//! - [`spec`]: what a job is made of (manifest, operation, report, tags) and its validation;
//! - [`manifest`]: the CSV manifest format (`S3BatchOperations_CSV_20180820`) and its strict parsing;
//! - [`report`]: the completion-report rows and `manifest.json`, exactly as AWS writes them;
//! - [`arn`]: bucket and object ARNs.

pub mod arn;
pub mod manifest;
pub mod report;
pub mod spec;
pub mod status;
pub mod time;

pub use spec::{JobSpec, Operation, Tag, ValidationError, ValidationKind};
pub use status::{Event, JobStatus, Transition};

/// Milliseconds since the Unix epoch; every timestamp in the store is one of these.
pub type Millis = i64;
