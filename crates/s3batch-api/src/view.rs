//! A job as the wire shows it, shared by every front end: DescribeJob's `JobDescriptor` and its parts.

use s3batch_core::spec::{JobManifest, JobReport, ManifestGenerator};
use s3batch_core::{JobStatus, Operation, time};
use s3batch_store::{FailureReason, Job};
use serde::{Deserialize, Serialize};

/// `ProgressSummary`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProgressSummary {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_number_of_tasks: Option<i64>,
    pub number_of_tasks_succeeded: i64,
    pub number_of_tasks_failed: i64,
    pub timers: Timers,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Timers {
    pub elapsed_time_in_active_seconds: i64,
}

/// A job as DescribeJob's `JobDescriptor` shows it (members in the model's order, then s3batch's extensions
/// that the S3 Control wire carries too). Every front end builds its view of a job from this one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobDescriptor {
    pub job_id: String,
    pub confirmation_required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub job_arn: String,
    pub status: JobStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<JobManifest>,
    pub operation: Operation,
    pub priority: i64,
    pub progress_summary: ProgressSummary,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_update_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failure_reasons: Vec<FailureReason>,
    pub report: JobReport,
    pub creation_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_cause: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_generator: Option<ManifestGenerator>,
    /// The manifest a ManifestGenerator job wrote (EnableManifestOutput): `{Format, Location {ObjectArn, ETag}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_manifest_descriptor: Option<serde_json::Value>,
    /// Extension: the job's rate limit, in tasks per second for the whole job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<i64>,
    /// Extension: a dry run (checks every task, changes nothing).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

impl JobDescriptor {
    pub fn new(job: &Job, region: &str) -> JobDescriptor {
        let now = time::now_millis();
        JobDescriptor {
            job_id: job.id.clone(),
            confirmation_required: job.spec.confirmation_required,
            description: job.spec.description.clone(),
            job_arn: format!("arn:aws:s3:{region}:{}:job/{}", job.account_id, job.id),
            status: job.status,
            manifest: job.spec.manifest.clone(),
            operation: job.spec.operation.clone(),
            priority: job.priority,
            progress_summary: ProgressSummary {
                total_number_of_tasks: job.total_tasks,
                number_of_tasks_succeeded: job.succeeded,
                number_of_tasks_failed: job.failed,
                timers: Timers { elapsed_time_in_active_seconds: job.active_seconds(now) },
            },
            status_update_reason: job.status_update_reason.clone(),
            failure_reasons: job.failure_reasons.clone(),
            report: job.spec.report.clone(),
            creation_time: time::format_iso(job.created_at),
            termination_date: job.terminated_at.map(time::format_iso),
            role_arn: job.spec.role_arn.clone(),
            suspended_date: job.suspended_at.map(time::format_iso),
            suspended_cause: job.suspended_cause.clone(),
            manifest_generator: job.spec.manifest_generator.clone(),
            generated_manifest_descriptor: job.generated_manifest.as_deref().and_then(|d| serde_json::from_str(d).ok()),
            rate_limit: job.rate_limit,
            dry_run: job.spec.dry_run,
        }
    }
}
