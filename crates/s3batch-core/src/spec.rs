//! What a job is made of, in the shapes of the S3 Control API (PascalCase members, AWS names), and the checks a
//! server makes that clients do not.
//!
//! The JSON form of these types is the one the `aws s3control create-job` CLI takes for `--operation`,
//! `--manifest` and `--report`, so a user can paste the same JSON into `s3batch job create`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::arn;
use crate::manifest::{FieldName, ManifestFormat};

/// Highest priority a job may have (the S3 Control range is 0..=2147483647).
pub const MAX_PRIORITY: i64 = i32::MAX as i64;
/// Most tags a job may carry.
pub const MAX_JOB_TAGS: usize = 50;
/// Most grants an ACL may hold (S3's own limit), in `S3PutObjectAcl` and `S3PutObjectCopy.AccessControlGrants`.
pub const MAX_GRANTS: usize = 100;
/// Most keys `S3RemoveObjectTagging.TagKeys` may name: an object holds at most 10 tags, but objects of one job may
/// hold different ones; 50, as many as a job's own tags.
pub const MAX_TAG_KEYS: usize = 50;
/// Most columns `Manifest.Spec.Fields` may name (Bucket, Key, VersionId and `Ignore` columns).
pub const MAX_MANIFEST_FIELDS: usize = 32;
/// Most values a generator filter's list (`ObjectReplicationStatuses`, `MatchAnyStorageClass`) may hold: each value
/// once.
pub const MAX_FILTER_VALUES: usize = 10;
/// Largest job spec stored, in bytes of its JSON (as `JobSpec` serialises, the COS echo included). The largest
/// real spec (100 grants with 1 KiB identifiers, 8 KiB of metadata, 50 job tags, 10 object tags) is about 120 KiB;
/// a spec is read on every describe, so one far larger is refused rather than stored.
pub const MAX_SPEC_BYTES: usize = 256 * 1024;

/// An object or job tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

impl Tag {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Tag { key: key.into(), value: value.into() }
    }
}

/// A job as its creator described it. Stored as JSON; echoed back by DescribeJob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct JobSpec {
    pub operation: Operation,
    /// Exactly one of `Manifest` and `ManifestGenerator`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<JobManifest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_generator: Option<ManifestGenerator>,
    pub report: JobReport,
    pub priority: i64,
    /// Absent means required, as in AWS: a job created without `--no-confirmation-required` waits in Suspended.
    #[serde(default = "default_true")]
    pub confirmation_required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    /// Extension: the job as a caller of the Tencent COS dialect wrote it (its `Manifest`, `Operation`, `Report`
    /// and `RoleArn` in COS element names, formats and `qcs::` ARNs), so that dialect can echo it back exactly.
    /// Opaque to everything else: the members above hold the same job in AWS shapes, and they are what runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cos_request: Option<serde_json::Value>,
    /// Extension: this job re-runs the failed tasks of that job (same account, finished): its tasks are exactly
    /// the ones that failed there. The rest of the spec is the original's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<String>,
    /// Extension: a dry run. Every task checks what the real run would need (the object, with its version; for a
    /// copy, that the target bucket is reachable) and changes nothing; the report says what each task would do, or
    /// the error the real run would hit.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dry_run: bool,
    /// Extension: the job's rate limit at creation, in tasks per second for the whole job. The live value is the
    /// job's own (changed while it runs); this one is only where it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<i64>,
}

fn default_true() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Highest per-job rate limit, in tasks per second.
pub const MAX_RATE_LIMIT: i64 = 1_000_000;

/// A per-job rate limit must be 1 to [`MAX_RATE_LIMIT`] tasks per second.
pub fn validate_rate_limit(r: i64) -> Result<(), ValidationError> {
    check((1..=MAX_RATE_LIMIT).contains(&r), || {
        format!("RateLimit must be between 1 and {MAX_RATE_LIMIT} tasks per second, got {r}")
    })
}

/// The one operation a job runs on every object. The variant name is the S3 Control `OperationName`; the
/// variants marked *extension* are s3batch's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Operation {
    LambdaInvoke(LambdaInvoke),
    S3PutObjectCopy(Box<PutObjectCopy>),
    S3PutObjectAcl(PutObjectAcl),
    S3PutObjectTagging(PutObjectTagging),
    S3DeleteObjectTagging(Empty),
    S3InitiateRestoreObject(InitiateRestoreObject),
    S3PutObjectLegalHold(PutObjectLegalHold),
    S3PutObjectRetention(PutObjectRetention),
    S3ReplicateObject(Empty),
    S3ComputeObjectChecksum(ComputeObjectChecksum),
    S3UpdateObjectEncryption(UpdateObjectEncryption),
    /// Extension: delete each object (the version named in the manifest, or the current object).
    S3DeleteObject(DeleteObject),
    /// Extension: merge the tags into each object's tag set (same key: the new value wins).
    S3AddObjectTagging(PutObjectTagging),
    /// Extension: remove the named tag keys from each object's tag set, keeping the others.
    S3RemoveObjectTagging(RemoveObjectTagging),
}

/// Every `OperationName` a job may run (the S3 Control names and s3batch's extensions): what a role's
/// `operations` list may name.
pub const OPERATION_NAMES: &[&str] = &[
    "LambdaInvoke",
    "S3PutObjectCopy",
    "S3PutObjectAcl",
    "S3PutObjectTagging",
    "S3DeleteObjectTagging",
    "S3InitiateRestoreObject",
    "S3PutObjectLegalHold",
    "S3PutObjectRetention",
    "S3ReplicateObject",
    "S3ComputeObjectChecksum",
    "S3UpdateObjectEncryption",
    "S3DeleteObject",
    "S3AddObjectTagging",
    "S3RemoveObjectTagging",
];

impl Operation {
    /// The `OperationName` string (ListJobs shows it).
    pub fn name(&self) -> &'static str {
        match self {
            Operation::LambdaInvoke(_) => "LambdaInvoke",
            Operation::S3PutObjectCopy(_) => "S3PutObjectCopy",
            Operation::S3PutObjectAcl(_) => "S3PutObjectAcl",
            Operation::S3PutObjectTagging(_) => "S3PutObjectTagging",
            Operation::S3DeleteObjectTagging(_) => "S3DeleteObjectTagging",
            Operation::S3InitiateRestoreObject(_) => "S3InitiateRestoreObject",
            Operation::S3PutObjectLegalHold(_) => "S3PutObjectLegalHold",
            Operation::S3PutObjectRetention(_) => "S3PutObjectRetention",
            Operation::S3ReplicateObject(_) => "S3ReplicateObject",
            Operation::S3ComputeObjectChecksum(_) => "S3ComputeObjectChecksum",
            Operation::S3UpdateObjectEncryption(_) => "S3UpdateObjectEncryption",
            Operation::S3DeleteObject(_) => "S3DeleteObject",
            Operation::S3AddObjectTagging(_) => "S3AddObjectTagging",
            Operation::S3RemoveObjectTagging(_) => "S3RemoveObjectTagging",
        }
    }

    /// Whether this is one of the `OperationName` values of the S3 Control model (ListJobs may show it to an
    /// AWS SDK, which knows only those).
    pub fn is_aws(&self) -> bool {
        !matches!(
            self,
            Operation::S3DeleteObject(_) | Operation::S3AddObjectTagging(_) | Operation::S3RemoveObjectTagging(_)
        )
    }
}

/// An operation with no members, written `{}` in JSON and `<S3DeleteObjectTagging />` in XML.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PutObjectTagging {
    #[serde(default)]
    pub tag_set: Vec<Tag>,
}

/// Extension `S3RemoveObjectTagging`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RemoveObjectTagging {
    pub tag_keys: Vec<String>,
}

/// Extension `S3DeleteObject`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DeleteObject {
    /// Also delete every non-current version of each key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_noncurrent_versions: Option<bool>,
}

/// `LambdaInvoke`: call a function once per object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct LambdaInvoke {
    pub function_arn: String,
    /// `1.0` (the default) or `2.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_schema_version: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user_arguments: BTreeMap<String, String>,
}

/// `S3PutObjectCopy`: copy each object into `TargetResource`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PutObjectCopy {
    /// The destination bucket's ARN.
    pub target_resource: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canned_access_control_list: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control_grants: Option<Vec<Grant>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_directive: Option<MetadataDirective>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_since_constraint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_object_metadata: Option<ObjectMetadata>,
    /// Absent: the source's tags are copied. Present and empty: the copy has no tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_object_tagging: Option<Vec<Tag>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester_pays: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub un_modified_since_constraint: Option<String>,
    #[serde(default, rename = "SSEAwsKmsKeyId", skip_serializing_if = "Option::is_none")]
    pub sse_aws_kms_key_id: Option<String>,
    /// Put in front of each key (in place of `SourceKeyPrefix`, when that is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_key_prefix: Option<String>,
    /// Extension (COS `PrefixReplace` + `ResourcesPrefix`): a source key that starts with this prefix is copied
    /// to `TargetKeyPrefix` + the rest of the key, i.e. the prefix is *replaced*; other keys keep their name. See
    /// [`PutObjectCopy::destination_key`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_key_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock_legal_hold_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock_retain_until_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_key_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<String>,
    /// `COPY` (the default) or `EXCLUDE`: whether each copy carries the source's object annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation_directive: Option<String>,
    /// `ON` or `OFF`: an object lock event hold on each copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock_event_hold: Option<String>,
    /// How long each copy stays protected after its event hold is released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock_event_hold_duration: Option<EventHoldDuration>,
    /// Extension (COS `MetadataDirective=Add`): `NewObjectMetadata` is merged into the source's metadata (its
    /// values win) instead of replacing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_metadata: Option<bool>,
    /// Extension (COS `TaggingDirective=Add`): `NewObjectTagging` is merged into the source's tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_tagging: Option<bool>,
    /// Extension (COS `AccessControlDirective=Add`): `AccessControlGrants` are added to the source's grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_access_control_grants: Option<bool>,
}

impl PutObjectCopy {
    /// The key a copy of `source_key` gets: `TargetKeyPrefix` + the key, or, with `SourceKeyPrefix`, the key with
    /// that prefix replaced by `TargetKeyPrefix` (a key without that prefix keeps its name).
    pub fn destination_key(&self, source_key: &str) -> String {
        let target = self.target_key_prefix.as_deref().unwrap_or("");
        match self.source_key_prefix.as_deref() {
            None => format!("{target}{source_key}"),
            Some(from) => match source_key.strip_prefix(from) {
                Some(rest) => format!("{target}{rest}"),
                None => source_key.to_string(),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MetadataDirective {
    Copy,
    Replace,
}

/// `S3ObjectMetadata`: what a copy with `MetadataDirective=REPLACE` gives the new object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ObjectMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user_metadata: BTreeMap<String, String>,
    /// Deprecated in the model; accepted and echoed, not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_length: Option<i64>,
    /// Deprecated in the model; accepted and echoed, not used.
    #[serde(default, rename = "ContentMD5", skip_serializing_if = "Option::is_none")]
    pub content_md5: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_expires_date: Option<String>,
    /// Deprecated in the model; accepted and echoed, not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester_charged: Option<bool>,
    /// `AES256` or `KMS`.
    #[serde(default, rename = "SSEAlgorithm", skip_serializing_if = "Option::is_none")]
    pub sse_algorithm: Option<String>,
}

/// `S3Grant`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Grant {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grantee: Option<Grantee>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
}

/// `S3Grantee`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Grantee {
    /// `id`, `emailAddress` or `uri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// `S3SetObjectAclOperation`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PutObjectAcl {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control_policy: Option<AccessControlPolicy>,
}

/// `S3AccessControlPolicy`: an explicit list, or a canned ACL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AccessControlPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control_list: Option<AccessControlList>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canned_access_control_list: Option<String>,
}

/// `S3AccessControlList`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AccessControlList {
    pub owner: ObjectOwner,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<Vec<Grant>>,
}

/// `S3ObjectOwner`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ObjectOwner {
    #[serde(default, rename = "ID", skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// `S3InitiateRestoreObjectOperation`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct InitiateRestoreObject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_in_days: Option<i64>,
    /// `BULK` or `STANDARD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glacier_job_tier: Option<String>,
}

/// `S3SetObjectLegalHoldOperation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PutObjectLegalHold {
    pub legal_hold: LegalHold,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct LegalHold {
    /// `ON` or `OFF`.
    pub status: String,
}

/// `S3SetObjectRetentionOperation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PutObjectRetention {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bypass_governance_retention: Option<bool>,
    pub retention: Retention,
}

/// `S3Retention`: both members absent removes the retention.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Retention {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_until_date: Option<String>,
    /// `COMPLIANCE` or `GOVERNANCE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `ON` or `OFF`: an object lock event hold on each object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_hold: Option<String>,
    /// How long each object stays protected after its event hold is released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_hold_duration: Option<EventHoldDuration>,
}

/// `S3ObjectLockEventHoldDuration` / `S3ObjectLockRetentionEventHoldDuration`: days or years (exactly one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct EventHoldDuration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub years: Option<i64>,
}

/// `S3ComputeObjectChecksumOperation`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ComputeObjectChecksum {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<String>,
    /// `FULL_OBJECT` (the default) or `COMPOSITE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_type: Option<String>,
}

/// `S3UpdateObjectEncryptionOperation`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct UpdateObjectEncryption {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_encryption: Option<ObjectEncryption>,
}

/// `ObjectEncryption` of `S3UpdateObjectEncryption` (a union with one member).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectEncryption {
    #[serde(default, rename = "SSE-KMS", skip_serializing_if = "Option::is_none")]
    pub sse_kms: Option<SseKmsEncryption>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SseKmsEncryption {
    #[serde(rename = "KMSKeyArn")]
    pub kms_key_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_key_enabled: Option<bool>,
}

/// `JobManifestGenerator` (a union with one member).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ManifestGenerator {
    S3JobManifestGenerator(S3JobManifestGenerator),
}

/// `S3JobManifestGenerator`: list a bucket and filter it instead of reading a manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct S3JobManifestGenerator {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_bucket_owner: Option<String>,
    /// The source bucket's ARN.
    pub source_bucket: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_output_location: Option<ManifestOutputLocation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<ManifestGeneratorFilter>,
    pub enable_manifest_output: bool,
}

/// `S3ManifestOutputLocation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ManifestOutputLocation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_manifest_bucket_owner: Option<String>,
    pub bucket: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_encryption: Option<GeneratedManifestEncryption>,
    /// `S3InventoryReport_CSV_20211130`.
    pub manifest_format: String,
}

/// `GeneratedManifestEncryption`: `<SSE-S3/>` or `<SSE-KMS><KeyId/></SSE-KMS>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratedManifestEncryption {
    #[serde(default, rename = "SSE-S3", skip_serializing_if = "Option::is_none")]
    pub sse_s3: Option<Empty>,
    #[serde(default, rename = "SSE-KMS", skip_serializing_if = "Option::is_none")]
    pub sse_kms: Option<SseKmsKeyId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SseKmsKeyId {
    pub key_id: String,
}

/// `JobManifestGeneratorFilter`: every member optional, all ANDed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ManifestGeneratorFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eligible_for_replication: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_replication_statuses: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name_constraint: Option<KeyNameConstraint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_size_greater_than_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_size_less_than_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_any_storage_class: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_any_object_encryption: Option<Vec<ObjectEncryptionFilter>>,
}

/// `KeyNameConstraint`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct KeyNameConstraint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_any_prefix: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_any_suffix: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_any_substring: Option<Vec<String>>,
}

/// `ObjectEncryptionFilter` (a union).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectEncryptionFilter {
    #[serde(rename = "SSE-S3")]
    SseS3(Empty),
    #[serde(rename = "SSE-KMS")]
    SseKms(KmsFilter),
    #[serde(rename = "DSSE-KMS")]
    DsseKms(KmsFilter),
    #[serde(rename = "SSE-C")]
    SseC(Empty),
    #[serde(rename = "NOT-SSE")]
    NotSse(Empty),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct KmsFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_key_enabled: Option<bool>,
}

/// `JobManifest`: where the list of objects is and how to read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct JobManifest {
    pub spec: ManifestSpec,
    pub location: ManifestLocation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ManifestSpec {
    pub format: ManifestFormat,
    #[serde(default)]
    pub fields: Vec<FieldName>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ManifestLocation {
    pub object_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_version_id: Option<String>,
    /// Required on the S3 Control wire; optional on s3batch's JSON API, where it is checked only when given.
    #[serde(default, rename = "ETag", skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// `JobReport`: where the completion report goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct JobReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_scope: Option<ReportScope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_bucket_owner: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReportScope {
    AllTasks,
    FailedTasksOnly,
}

/// Report format name, the only one AWS has.
pub const REPORT_FORMAT: &str = "Report_CSV_20180820";

/// Why a job spec (or a part of one) is refused. Each front end names the kind in its own dialect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    pub kind: ValidationKind,
    pub message: String,
}

/// What kind of rule a refused spec broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValidationKind {
    /// A member is missing, out of range or inconsistent with another.
    Invalid,
    /// More tags than the limit.
    TooManyTags,
}

impl ValidationError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ValidationError { kind: ValidationKind::Invalid, message: message.into() }
    }
}

fn check(ok: bool, message: impl FnOnce() -> String) -> Result<(), ValidationError> {
    if ok { Ok(()) } else { Err(ValidationError::bad_request(message())) }
}

/// At most `max` members in a list.
fn check_count(field: &str, n: usize, max: usize) -> Result<(), ValidationError> {
    check(n <= max, || format!("{field} has {n} members; at most {max} are allowed"))
}

fn check_len(field: &str, v: &str, min: usize, max: usize) -> Result<(), ValidationError> {
    let n = v.chars().count();
    check((min..=max).contains(&n), || format!("{field} must be {min} to {max} characters long, got {n}"))
}

/// Tag rules shared by job tags and object tags: unique keys, key 1..128, value 0..256, the AWS character set.
pub fn validate_tags(what: &str, tags: &[Tag], max: usize) -> Result<(), ValidationError> {
    if tags.len() > max {
        return Err(ValidationError {
            kind: ValidationKind::TooManyTags,
            message: format!("{what} has {} tags; at most {max} are allowed", tags.len()),
        });
    }
    let allowed = |c: char| {
        c.is_alphanumeric() || c.is_whitespace() || matches!(c, '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@')
    };
    let mut seen = std::collections::HashSet::new();
    for t in tags {
        check_len(&format!("{what} key"), &t.key, 1, 128)?;
        check_len(&format!("{what} value"), &t.value, 0, 256)?;
        check(t.key.chars().all(allowed) && t.value.chars().all(allowed), || {
            format!("{what} '{}' has characters outside letters, digits, spaces and _ . : / = + - @", t.key)
        })?;
        check(seen.insert(t.key.as_str()), || format!("{what} key '{}' appears twice", t.key))?;
    }
    Ok(())
}

impl JobSpec {
    /// The role the job runs under, as its creator named it: `RoleArn`, or for a job created through the COS
    /// dialect, the CAM role (`qcs::cam::…`) its request named.
    pub fn named_role(&self) -> Option<&str> {
        self.role_arn.as_deref().or_else(|| self.cos_request.as_ref()?.get("RoleArn")?.as_str())
    }

    /// Every check a server makes that clients do not: ranges, lengths, patterns, enums, ARNs, exactly one
    /// manifest source, report fields, tag limits.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check((0..=MAX_PRIORITY).contains(&self.priority), || {
            format!("Priority must be between 0 and {MAX_PRIORITY}, got {}", self.priority)
        })?;
        if let Some(d) = &self.description {
            check_len("Description", d, 1, 256)?;
        }
        if let Some(r) = &self.role_arn {
            check_len("RoleArn", r, 1, 2048)?;
            check(valid_role_arn(r), || {
                format!("RoleArn '{r}' is not of the form arn:aws:iam::<12 digits>:role/<name>")
            })?;
        }
        validate_tags("job tag", &self.tags, MAX_JOB_TAGS)?;
        if let Some(r) = self.rate_limit {
            validate_rate_limit(r)?;
        }
        match (&self.manifest, &self.manifest_generator) {
            (Some(m), None) => validate_manifest(m)?,
            (None, Some(ManifestGenerator::S3JobManifestGenerator(g))) => validate_generator(g)?,
            (Some(_), Some(_)) => {
                return Err(ValidationError::bad_request("Give Manifest or ManifestGenerator, not both"));
            }
            (None, None) => return Err(ValidationError::bad_request("Manifest or ManifestGenerator is required")),
        }
        self.validate_report()?;
        validate_operation(&self.operation)?;
        let size = serde_json::to_vec(self).map_or(usize::MAX, |v| v.len());
        check(size <= MAX_SPEC_BYTES, || {
            format!("the job spec is {size} bytes of JSON; at most {MAX_SPEC_BYTES} are allowed")
        })
    }

    fn validate_report(&self) -> Result<(), ValidationError> {
        let r = &self.report;
        if let Some(o) = &r.expected_bucket_owner {
            check(valid_account_id(o), || format!("Report.ExpectedBucketOwner '{o}' is not a 12-digit account id"))?;
        }
        if let Some(f) = r.format.as_deref() {
            check(f == REPORT_FORMAT, || format!("Report.Format '{f}' is not {REPORT_FORMAT}"))?;
        }
        if let Some(p) = &r.prefix {
            check_len("Report.Prefix", p, 1, 512)?;
        }
        if let Some(bucket) = r.bucket.as_deref() {
            check_len("Report.Bucket", bucket, 1, 128)?;
            check(arn::parse_bucket_arn(bucket).is_some(), || {
                format!("Report.Bucket '{bucket}' is not a bucket ARN (arn:aws:s3:::bucket)")
            })?;
        }
        if !r.enabled {
            return Ok(());
        }
        check(r.bucket.is_some(), || "Report.Bucket is required when the report is enabled".into())?;
        check(r.format.is_some(), || "Report.Format is required when the report is enabled".into())?;
        check(r.report_scope.is_some(), || "Report.ReportScope is required when the report is enabled".into())
    }
}

fn validate_manifest(m: &JobManifest) -> Result<(), ValidationError> {
    check_len("Manifest.Location.ObjectArn", &m.location.object_arn, 1, 2000)?;
    check(arn::parse_object_arn(&m.location.object_arn).is_some(), || {
        format!(
            "Manifest.Location.ObjectArn '{}' is not an object ARN (arn:aws:s3:::bucket/key)",
            m.location.object_arn
        )
    })?;
    if let Some(e) = &m.location.etag {
        check_len("Manifest.Location.ETag", e, 1, 1024)?;
    }
    if let Some(v) = &m.location.object_version_id {
        check_len("Manifest.Location.ObjectVersionId", v, 1, 2000)?;
    }
    check_count("Manifest.Spec.Fields", m.spec.fields.len(), MAX_MANIFEST_FIELDS)?;
    match m.spec.format {
        ManifestFormat::S3BatchOperationsCsv20180820 => {
            crate::manifest::CsvLayout::new(&m.spec.fields).map_err(|e| ValidationError::bad_request(e.to_string()))?;
        }
        ManifestFormat::S3InventoryReportCsv20161130 => {}
    }
    Ok(())
}

fn validate_generator(g: &S3JobManifestGenerator) -> Result<(), ValidationError> {
    let p = "ManifestGenerator.S3JobManifestGenerator";
    check_len(&format!("{p}.SourceBucket"), &g.source_bucket, 1, 128)?;
    check(arn::parse_bucket_arn(&g.source_bucket).is_some(), || {
        format!("{p}.SourceBucket '{}' is not a bucket ARN", g.source_bucket)
    })?;
    if let Some(o) = &g.expected_bucket_owner {
        check(valid_account_id(o), || format!("{p}.ExpectedBucketOwner '{o}' is not a 12-digit account id"))?;
    }
    validate_generator_output(p, g)?;
    match &g.filter {
        Some(f) => validate_generator_filter(&format!("{p}.Filter"), f),
        None => Ok(()),
    }
}

/// Where a generator writes its manifest: required with `EnableManifestOutput`.
fn validate_generator_output(p: &str, g: &S3JobManifestGenerator) -> Result<(), ValidationError> {
    match &g.manifest_output_location {
        Some(out) => {
            check(arn::parse_bucket_arn(&out.bucket).is_some(), || {
                format!("{p}.ManifestOutputLocation.Bucket '{}' is not a bucket ARN", out.bucket)
            })?;
            one_of(
                &format!("{p}.ManifestOutputLocation.ManifestFormat"),
                &out.manifest_format,
                &GENERATED_MANIFEST_FORMATS,
            )?;
            if let Some(prefix) = &out.manifest_prefix {
                check_len(&format!("{p}.ManifestOutputLocation.ManifestPrefix"), prefix, 1, 512)?;
            }
            if let Some(o) = &out.expected_manifest_bucket_owner {
                check(valid_account_id(o), || {
                    format!("{p}.ManifestOutputLocation.ExpectedManifestBucketOwner '{o}' is not a 12-digit account id")
                })?;
            }
            if let Some(enc) = &out.manifest_encryption {
                check(enc.sse_s3.is_some() != enc.sse_kms.is_some(), || {
                    format!("{p}.ManifestOutputLocation.ManifestEncryption needs exactly one of SSE-S3 and SSE-KMS")
                })?;
            }
        }
        None => check(!g.enable_manifest_output, || {
            format!("{p}.ManifestOutputLocation is required when EnableManifestOutput is true")
        })?,
    }
    Ok(())
}

/// A generator's filter: dates, replication statuses, storage classes, sizes, key name constraints, encryption.
fn validate_generator_filter(fp: &str, f: &ManifestGeneratorFilter) -> Result<(), ValidationError> {
    for (name, v) in [("CreatedAfter", &f.created_after), ("CreatedBefore", &f.created_before)] {
        if let Some(v) = v {
            timestamp(&format!("{fp}.{name}"), v)?;
        }
    }
    let count = |list: &Option<Vec<String>>| list.as_ref().map_or(0, Vec::len);
    check_count(&format!("{fp}.ObjectReplicationStatuses"), count(&f.object_replication_statuses), MAX_FILTER_VALUES)?;
    check_count(&format!("{fp}.MatchAnyStorageClass"), count(&f.match_any_storage_class), MAX_FILTER_VALUES)?;
    for s in f.object_replication_statuses.iter().flatten() {
        one_of(&format!("{fp}.ObjectReplicationStatuses"), s, &REPLICATION_STATUSES)?;
    }
    for s in f.match_any_storage_class.iter().flatten() {
        one_of(&format!("{fp}.MatchAnyStorageClass"), s, &STORAGE_CLASSES)?;
    }
    for (name, v) in [
        ("ObjectSizeGreaterThanBytes", f.object_size_greater_than_bytes),
        ("ObjectSizeLessThanBytes", f.object_size_less_than_bytes),
    ] {
        if let Some(v) = v {
            check(v >= 0, || format!("{fp}.{name} must not be negative, got {v}"))?;
        }
    }
    if let Some(k) = &f.key_name_constraint {
        for (name, list) in [
            ("MatchAnyPrefix", &k.match_any_prefix),
            ("MatchAnySuffix", &k.match_any_suffix),
            ("MatchAnySubstring", &k.match_any_substring),
        ] {
            if let Some(list) = list {
                check(list.len() == 1, || format!("{fp}.KeyNameConstraint.{name} must hold exactly one string"))?;
                for v in list {
                    check_len(&format!("{fp}.KeyNameConstraint.{name}"), v, 1, 1024)?;
                }
            }
        }
    }
    if let Some(list) = &f.match_any_object_encryption {
        check(list.len() == 1, || format!("{fp}.MatchAnyObjectEncryption must hold exactly one ObjectEncryption"))?;
    }
    Ok(())
}

fn validate_operation(op: &Operation) -> Result<(), ValidationError> {
    match op {
        Operation::S3PutObjectTagging(t) | Operation::S3AddObjectTagging(t) => {
            validate_tags("object tag", &t.tag_set, MAX_OBJECT_TAGS)
        }
        Operation::S3RemoveObjectTagging(r) => {
            check(!r.tag_keys.is_empty(), || "S3RemoveObjectTagging.TagKeys must name at least one key".into())?;
            check_count("S3RemoveObjectTagging.TagKeys", r.tag_keys.len(), MAX_TAG_KEYS)?;
            for k in &r.tag_keys {
                check_len("S3RemoveObjectTagging.TagKeys", k, 1, 128)?;
            }
            Ok(())
        }
        Operation::S3DeleteObjectTagging(_) | Operation::S3DeleteObject(_) | Operation::S3ReplicateObject(_) => Ok(()),
        Operation::S3PutObjectCopy(c) => validate_copy(c),
        Operation::LambdaInvoke(l) => validate_lambda(l),
        Operation::S3PutObjectAcl(a) => validate_put_acl(a),
        Operation::S3InitiateRestoreObject(r) => {
            if let Some(d) = r.expiration_in_days {
                check((0..=i32::MAX as i64).contains(&d), || {
                    format!("S3InitiateRestoreObject.ExpirationInDays must be 0 or more, got {d}")
                })?;
            }
            if let Some(t) = &r.glacier_job_tier {
                one_of("S3InitiateRestoreObject.GlacierJobTier", t, &["BULK", "STANDARD"])?;
            }
            Ok(())
        }
        Operation::S3PutObjectLegalHold(h) => {
            one_of("S3PutObjectLegalHold.LegalHold.Status", &h.legal_hold.status, &["OFF", "ON"])
        }
        Operation::S3PutObjectRetention(r) => validate_retention(r),
        Operation::S3ComputeObjectChecksum(c) => {
            let alg = c
                .checksum_algorithm
                .as_deref()
                .ok_or_else(|| ValidationError::bad_request("S3ComputeObjectChecksum.ChecksumAlgorithm is required"))?;
            one_of("S3ComputeObjectChecksum.ChecksumAlgorithm", alg, &CHECKSUM_ALGORITHMS)?;
            if let Some(t) = &c.checksum_type {
                one_of("S3ComputeObjectChecksum.ChecksumType", t, &["FULL_OBJECT", "COMPOSITE"])?;
            }
            Ok(())
        }
        Operation::S3UpdateObjectEncryption(u) => {
            let kms = u.object_encryption.as_ref().and_then(|e| e.sse_kms.as_ref()).ok_or_else(|| {
                ValidationError::bad_request("S3UpdateObjectEncryption.ObjectEncryption.SSE-KMS is required")
            })?;
            check_len("S3UpdateObjectEncryption.ObjectEncryption.SSE-KMS.KMSKeyArn", &kms.kms_key_arn, 20, 2048)?;
            check(kms.kms_key_arn.starts_with("arn:") && kms.kms_key_arn.contains(":kms:"), || {
                format!("KMSKeyArn '{}' is not a KMS key ARN", kms.kms_key_arn)
            })
        }
    }
}

/// A Lambda function ARN (or name), a known schema version, and user arguments only with schema 2.0.
fn validate_lambda(l: &LambdaInvoke) -> Result<(), ValidationError> {
    check_len("LambdaInvoke.FunctionArn", &l.function_arn, 1, 1024)?;
    check(valid_function_arn(&l.function_arn), || {
        format!("LambdaInvoke.FunctionArn '{}' is not a Lambda function ARN or name", l.function_arn)
    })?;
    let version = l.invocation_schema_version.as_deref().unwrap_or("1.0");
    one_of("LambdaInvoke.InvocationSchemaVersion", version, &["1.0", "2.0"])?;
    if !l.user_arguments.is_empty() {
        check(version == "2.0", || "LambdaInvoke.UserArguments needs InvocationSchemaVersion 2.0".into())?;
        check(l.user_arguments.len() <= 10, || "LambdaInvoke.UserArguments holds at most 10 entries".into())?;
        for (k, v) in &l.user_arguments {
            check_len("LambdaInvoke.UserArguments key", k, 1, 64)?;
            check_len("LambdaInvoke.UserArguments value", v, 0, 1024)?;
        }
    }
    Ok(())
}

/// An ACL: a list of grants (with its owner) or a canned ACL, exactly one of the two.
fn validate_put_acl(a: &PutObjectAcl) -> Result<(), ValidationError> {
    let policy = a
        .access_control_policy
        .as_ref()
        .ok_or_else(|| ValidationError::bad_request("S3PutObjectAcl.AccessControlPolicy is required"))?;
    match (&policy.access_control_list, &policy.canned_access_control_list) {
        (Some(list), None) => {
            if let Some(id) = &list.owner.id {
                check_len("S3PutObjectAcl owner ID", id, 1, 1024)?;
            }
            let grants = list.grants.as_ref().map_or(0, Vec::len);
            check_count("S3PutObjectAcl.AccessControlPolicy.AccessControlList.Grants", grants, MAX_GRANTS)?;
            for g in list.grants.iter().flatten() {
                validate_grant("S3PutObjectAcl.AccessControlPolicy.AccessControlList.Grants", g)?;
            }
            Ok(())
        }
        (None, Some(acl)) => one_of("S3PutObjectAcl CannedAccessControlList", acl, &CANNED_ACLS),
        _ => Err(ValidationError::bad_request(
            "S3PutObjectAcl.AccessControlPolicy needs exactly one of AccessControlList and CannedAccessControlList",
        )),
    }
}

/// A retention: a mode and a date together (or neither, to remove it), and an event hold.
fn validate_retention(r: &PutObjectRetention) -> Result<(), ValidationError> {
    let ret = &r.retention;
    if let Some(m) = &ret.mode {
        one_of("S3PutObjectRetention.Retention.Mode", m, &OBJECT_LOCK_MODES)?;
    }
    if let Some(d) = &ret.retain_until_date {
        timestamp("S3PutObjectRetention.Retention.RetainUntilDate", d)?;
    }
    check(ret.mode.is_some() == ret.retain_until_date.is_some(), || {
        "S3PutObjectRetention.Retention needs both Mode and RetainUntilDate, or neither (to remove it)".into()
    })?;
    validate_event_hold(
        "S3PutObjectRetention.Retention.EventHold",
        ret.event_hold.as_deref(),
        ret.event_hold_duration.as_ref(),
    )
}

/// An event hold is `ON` or `OFF`; its duration (only with a hold) is 1 to 36,500 days or 1 to 100 years, one of
/// the two.
fn validate_event_hold(
    field: &str,
    hold: Option<&str>,
    duration: Option<&EventHoldDuration>,
) -> Result<(), ValidationError> {
    if let Some(h) = hold {
        one_of(field, h, &["OFF", "ON"])?;
    }
    let Some(d) = duration else { return Ok(()) };
    check(hold.is_some(), || format!("{field}Duration needs {field}"))?;
    match (d.days, d.years) {
        (Some(n), None) => {
            check((1..=36_500).contains(&n), || format!("{field}Duration.Days must be 1 to 36500, got {n}"))
        }
        (None, Some(n)) => check((1..=100).contains(&n), || format!("{field}Duration.Years must be 1 to 100, got {n}")),
        _ => Err(ValidationError::bad_request(format!("{field}Duration needs exactly one of Days and Years"))),
    }
}

fn validate_copy(c: &PutObjectCopy) -> Result<(), ValidationError> {
    let p = "S3PutObjectCopy";
    if let Some(d) = &c.annotation_directive {
        one_of(&format!("{p}.AnnotationDirective"), d, &["COPY", "EXCLUDE"])?;
    }
    validate_event_hold(
        &format!("{p}.ObjectLockEventHold"),
        c.object_lock_event_hold.as_deref(),
        c.object_lock_event_hold_duration.as_ref(),
    )?;
    check_len(&format!("{p}.TargetResource"), &c.target_resource, 1, 128)?;
    check(arn::parse_bucket_arn(&c.target_resource).is_some(), || {
        format!("{p}.TargetResource '{}' is not a bucket ARN", c.target_resource)
    })?;
    if let Some(x) = &c.target_key_prefix {
        check_len(&format!("{p}.TargetKeyPrefix"), x, 1, 1024)?;
    }
    if let Some(x) = &c.source_key_prefix {
        check_len(&format!("{p}.SourceKeyPrefix"), x, 1, 1024)?;
    }
    if let Some(tags) = &c.new_object_tagging {
        validate_tags(&format!("{p}.NewObjectTagging"), tags, MAX_OBJECT_TAGS)?;
    }
    validate_copy_metadata(p, c)?;
    validate_copy_object_settings(p, c)
}

/// The merge flags need what they merge; new metadata needs `REPLACE` and fits S3's limits.
fn validate_copy_metadata(p: &str, c: &PutObjectCopy) -> Result<(), ValidationError> {
    if c.merge_metadata == Some(true) {
        check(c.new_object_metadata.is_some(), || format!("{p}.MergeMetadata needs NewObjectMetadata"))?;
    }
    if c.merge_tagging == Some(true) {
        check(c.new_object_tagging.is_some(), || format!("{p}.MergeTagging needs NewObjectTagging"))?;
    }
    if c.merge_access_control_grants == Some(true) {
        check(c.access_control_grants.is_some(), || format!("{p}.MergeAccessControlGrants needs AccessControlGrants"))?;
    }
    if c.new_object_metadata.is_some() {
        check(c.metadata_directive == Some(MetadataDirective::Replace), || {
            format!("{p}.NewObjectMetadata needs MetadataDirective REPLACE")
        })?;
    }
    if let Some(m) = &c.new_object_metadata {
        if let Some(a) = &m.sse_algorithm {
            one_of(&format!("{p}.NewObjectMetadata.SSEAlgorithm"), a, &["AES256", "KMS"])?;
        }
        if let Some(d) = &m.http_expires_date {
            timestamp(&format!("{p}.NewObjectMetadata.HttpExpiresDate"), d)?;
        }
        let size: usize = m.user_metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        check(size <= 8192, || format!("{p}.NewObjectMetadata.UserMetadata is {size} bytes; at most 8192"))?;
    }
    Ok(())
}

/// The new object's storage class, ACL, redirect, encryption key, object lock, checksum and date conditions.
fn validate_copy_object_settings(p: &str, c: &PutObjectCopy) -> Result<(), ValidationError> {
    if let Some(sc) = &c.storage_class {
        one_of(&format!("{p}.StorageClass"), sc, &STORAGE_CLASSES)?;
    }
    if let Some(acl) = &c.canned_access_control_list {
        one_of(&format!("{p}.CannedAccessControlList"), acl, &CANNED_ACLS)?;
    }
    check_count(&format!("{p}.AccessControlGrants"), c.access_control_grants.as_ref().map_or(0, Vec::len), MAX_GRANTS)?;
    for g in c.access_control_grants.iter().flatten() {
        validate_grant(&format!("{p}.AccessControlGrants"), g)?;
    }
    if let Some(r) = &c.redirect_location {
        check_len(&format!("{p}.RedirectLocation"), r, 1, 2048)?;
    }
    if let Some(k) = &c.sse_aws_kms_key_id {
        check_len(&format!("{p}.SSEAwsKmsKeyId"), k, 1, 2000)?;
    }
    if let Some(s) = &c.object_lock_legal_hold_status {
        one_of(&format!("{p}.ObjectLockLegalHoldStatus"), s, &["OFF", "ON"])?;
    }
    if let Some(m) = &c.object_lock_mode {
        one_of(&format!("{p}.ObjectLockMode"), m, &OBJECT_LOCK_MODES)?;
    }
    if let Some(a) = &c.checksum_algorithm {
        one_of(&format!("{p}.ChecksumAlgorithm"), a, &CHECKSUM_ALGORITHMS)?;
    }
    for (name, v) in [
        ("ModifiedSinceConstraint", &c.modified_since_constraint),
        ("UnModifiedSinceConstraint", &c.un_modified_since_constraint),
        ("ObjectLockRetainUntilDate", &c.object_lock_retain_until_date),
    ] {
        if let Some(v) = v {
            timestamp(&format!("{p}.{name}"), v)?;
        }
    }
    Ok(())
}

fn validate_grant(what: &str, g: &Grant) -> Result<(), ValidationError> {
    if let Some(p) = &g.permission {
        one_of(&format!("{what} Permission"), p, &PERMISSIONS)?;
    }
    if let Some(grantee) = &g.grantee {
        if let Some(t) = &grantee.type_identifier {
            one_of(&format!("{what} Grantee.TypeIdentifier"), t, &["id", "emailAddress", "uri"])?;
        }
        if let Some(i) = &grantee.identifier {
            check_len(&format!("{what} Grantee.Identifier"), i, 1, 1024)?;
        }
    }
    Ok(())
}

fn one_of(what: &str, v: &str, allowed: &[&str]) -> Result<(), ValidationError> {
    check(allowed.contains(&v), || format!("{what} '{v}' is not one of {}", allowed.join(", ")))
}

fn timestamp(what: &str, v: &str) -> Result<(), ValidationError> {
    check(crate::time::parse_iso(v).is_some(), || format!("{what} '{v}' is not an ISO-8601 timestamp"))
}

/// A function name, a partial ARN or a full Lambda ARN, with an optional version or alias.
fn valid_function_arn(f: &str) -> bool {
    let ok_chars = f.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '$' | '.'));
    ok_chars && !f.is_empty() && (!f.starts_with("arn:") || f.split(':').nth(2) == Some("lambda"))
}

/// Most tags an object may carry.
pub const MAX_OBJECT_TAGS: usize = 10;
/// `GeneratedManifestFormat` values.
pub const GENERATED_MANIFEST_FORMATS: [&str; 1] = ["S3InventoryReport_CSV_20211130"];
/// `ReplicationStatus` values.
pub const REPLICATION_STATUSES: [&str; 4] = ["COMPLETED", "FAILED", "REPLICA", "NONE"];
/// `S3ObjectLockMode` values.
pub const OBJECT_LOCK_MODES: [&str; 2] = ["COMPLIANCE", "GOVERNANCE"];
/// `S3Permission` values.
pub const PERMISSIONS: [&str; 5] = ["FULL_CONTROL", "READ", "WRITE", "READ_ACP", "WRITE_ACP"];
/// `S3ChecksumAlgorithm` / `ComputeObjectChecksumAlgorithm` values.
pub const CHECKSUM_ALGORITHMS: [&str; 10] =
    ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME", "SHA512", "MD5", "XXHASH64", "XXHASH3", "XXHASH128"];

/// `S3StorageClass` values.
pub const STORAGE_CLASSES: [&str; 7] =
    ["STANDARD", "STANDARD_IA", "ONEZONE_IA", "GLACIER", "INTELLIGENT_TIERING", "DEEP_ARCHIVE", "GLACIER_IR"];
/// `S3CannedAccessControlList` values.
pub const CANNED_ACLS: [&str; 7] = [
    "private",
    "public-read",
    "public-read-write",
    "aws-exec-read",
    "authenticated-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
];

/// `arn:<partition>:iam::<12 digits>:role/<anything>`.
fn valid_role_arn(r: &str) -> bool {
    role_arn_account(r).is_some()
}

/// The account of an IAM role ARN (`arn:<partition>:iam::<12 digits>:role/<name>`), or `None` when `r` is not one.
pub fn role_arn_account(r: &str) -> Option<&str> {
    let mut p = r.splitn(6, ':');
    match (p.next(), p.next(), p.next(), p.next(), p.next(), p.next()) {
        (Some("arn"), Some(part), Some("iam"), Some(""), Some(acct), Some(res))
            if !part.is_empty() && valid_account_id(acct) && res.starts_with("role/") =>
        {
            Some(acct)
        }
        _ => None,
    }
}

/// A 12-digit account id.
pub fn valid_account_id(a: &str) -> bool {
    a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        serde_json::from_value(serde_json::json!({
            "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "k", "Value": "v"}]}},
            "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                         "Location": {"ObjectArn": "arn:aws:s3:::mbk/manifest.csv", "ETag": "\"abc\""}},
            "Report": {"Enabled": true, "Bucket": "arn:aws:s3:::rbk", "Format": "Report_CSV_20180820",
                       "ReportScope": "AllTasks", "Prefix": "reports"},
            "Priority": 10,
            "RoleArn": "arn:aws:iam::123456789012:role/batch"
        }))
        .unwrap()
    }

    #[test]
    fn the_aws_json_shapes_parse_and_validate() {
        let s = spec();
        assert!(s.confirmation_required, "absent ConfirmationRequired means true");
        s.validate().unwrap();
        let back: JobSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn list_members_and_the_whole_spec_are_capped() {
        let too_many = |s: &JobSpec, field: &str| {
            let e = s.validate().unwrap_err();
            assert_eq!(e.kind, ValidationKind::Invalid);
            assert!(e.message.starts_with(field) && e.message.contains("at most"), "{e}");
        };
        let op = |v: serde_json::Value| -> Operation { serde_json::from_value(v).unwrap() };
        let mut s = spec();
        let keys: Vec<String> = (0..51).map(|i| format!("k{i}")).collect();
        s.operation = op(serde_json::json!({"S3RemoveObjectTagging": {"TagKeys": keys}}));
        too_many(&s, "S3RemoveObjectTagging.TagKeys has 51 members");
        s.operation = op(serde_json::json!({"S3RemoveObjectTagging": {"TagKeys": &keys[..50]}}));
        s.validate().unwrap();

        let grant = serde_json::json!({"Grantee": {"TypeIdentifier": "id", "Identifier": "abc"}, "Permission": "READ"});
        let grants = vec![grant; 101];
        s.operation = op(serde_json::json!({"S3PutObjectAcl": {"AccessControlPolicy": {
            "AccessControlList": {"Owner": {"ID": "o"}, "Grants": grants}}}}));
        too_many(&s, "S3PutObjectAcl.AccessControlPolicy.AccessControlList.Grants has 101 members");
        s.operation = op(serde_json::json!({"S3PutObjectCopy": {
            "TargetResource": "arn:aws:s3:::dst", "AccessControlGrants": grants}}));
        too_many(&s, "S3PutObjectCopy.AccessControlGrants has 101 members");
        s.operation = op(serde_json::json!({"S3PutObjectCopy": {
            "TargetResource": "arn:aws:s3:::dst", "AccessControlGrants": &grants[..100]}}));
        s.validate().unwrap();

        let mut s = spec();
        s.manifest.as_mut().unwrap().spec.fields.extend([crate::manifest::FieldName::Ignore; 31]);
        too_many(&s, "Manifest.Spec.Fields has 33 members");

        // Every list within its cap, and still too big as a whole (the COS echo is opaque).
        let mut s = spec();
        s.cos_request = Some(serde_json::json!({"Padding": "x".repeat(MAX_SPEC_BYTES)}));
        let e = s.validate().unwrap_err();
        assert!(e.message.starts_with("the job spec is") && e.message.contains("at most 262144"), "{e}");
    }

    #[test]
    fn server_side_checks() {
        let mut s = spec();
        s.priority = MAX_PRIORITY + 1;
        assert_eq!(s.validate().unwrap_err().kind, ValidationKind::Invalid);

        let mut s = spec();
        s.report.report_scope = None;
        assert!(s.validate().unwrap_err().message.contains("ReportScope"));

        let mut s = spec();
        s.tags = (0..51).map(|i| Tag::new(format!("k{i}"), "v")).collect();
        assert_eq!(s.validate().unwrap_err().kind, ValidationKind::TooManyTags);

        let mut s = spec();
        s.tags = vec![Tag::new("a", "1"), Tag::new("a", "2")];
        assert!(s.validate().unwrap_err().message.contains("twice"));

        let mut s = spec();
        s.role_arn = Some("arn:aws:iam::12:role/x".into());
        assert!(s.validate().is_err());

        let mut s = spec();
        s.manifest.as_mut().unwrap().location.object_arn = "arn:aws:s3:::mbk".into();
        assert!(s.validate().is_err());

        let mut s = spec();
        s.manifest.as_mut().unwrap().spec.fields = vec![FieldName::Key];
        assert!(s.validate().is_err());

        let mut s = spec();
        s.operation = Operation::S3PutObjectCopy(Box::new(PutObjectCopy {
            target_resource: "arn:aws:s3:::dst".into(),
            storage_class: Some("COLD".into()),
            ..Default::default()
        }));
        assert!(s.validate().unwrap_err().message.contains("StorageClass"));
    }

    #[test]
    fn disabled_report_needs_nothing_else() {
        let mut s = spec();
        s.report = JobReport {
            enabled: false,
            bucket: None,
            format: None,
            prefix: None,
            report_scope: None,
            expected_bucket_owner: None,
        };
        s.validate().unwrap();
    }

    #[test]
    fn copy_destination_keys() {
        let mut c = PutObjectCopy { target_resource: "arn:aws:s3:::dst".into(), ..Default::default() };
        assert_eq!(c.destination_key("picture.jpg"), "picture.jpg");
        c.target_key_prefix = Some("abc".into());
        assert_eq!(c.destination_key("picture.jpg"), "abcpicture.jpg");
        c.source_key_prefix = Some("pic".into());
        assert_eq!(c.destination_key("picture.jpg"), "abcture.jpg", "the prefix is replaced, as COS does");
        assert_eq!(c.destination_key("other.jpg"), "other.jpg", "keys without the prefix keep their name");
        c.target_key_prefix = None;
        assert_eq!(c.destination_key("pic/a.jpg"), "/a.jpg", "no TargetKeyPrefix deletes the prefix");
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["SourceKeyPrefix"], "pic");
        let plain = PutObjectCopy { target_resource: "arn:aws:s3:::dst".into(), ..Default::default() };
        assert!(serde_json::to_value(&plain).unwrap().get("SourceKeyPrefix").is_none(), "skipped when None");
    }

    #[test]
    fn event_holds_and_the_annotation_directive() {
        let copy = |json: serde_json::Value| {
            let mut s = spec();
            s.operation = serde_json::from_value(serde_json::json!({"S3PutObjectCopy": json})).unwrap();
            s.validate()
        };
        let target = "arn:aws:s3:::dst";
        copy(serde_json::json!({"TargetResource": target, "AnnotationDirective": "EXCLUDE",
            "ObjectLockEventHold": "ON", "ObjectLockEventHoldDuration": {"Days": 30}}))
        .unwrap();
        let refused = |json, what: &str| {
            let e = copy(json).unwrap_err();
            assert!(e.message.contains(what), "{what}: {e}");
        };
        refused(serde_json::json!({"TargetResource": target, "AnnotationDirective": "MOVE"}), "AnnotationDirective");
        refused(serde_json::json!({"TargetResource": target, "ObjectLockEventHold": "YES"}), "ObjectLockEventHold");
        refused(
            serde_json::json!({"TargetResource": target, "ObjectLockEventHoldDuration": {"Days": 1}}),
            "ObjectLockEventHoldDuration needs S3PutObjectCopy.ObjectLockEventHold",
        );
        refused(
            serde_json::json!({"TargetResource": target, "ObjectLockEventHold": "ON",
                "ObjectLockEventHoldDuration": {"Days": 1, "Years": 1}}),
            "exactly one of Days and Years",
        );
        refused(
            serde_json::json!({"TargetResource": target, "ObjectLockEventHold": "ON",
                "ObjectLockEventHoldDuration": {"Years": 0}}),
            "Years must be 1 to 100",
        );
        let mut s = spec();
        s.operation = serde_json::from_value(serde_json::json!({"S3PutObjectRetention": {"Retention": {
            "EventHold": "OFF", "EventHoldDuration": {"Years": 2}}}}))
        .unwrap();
        s.validate().unwrap();
        let back: JobSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s, "the new members round-trip");
    }

    #[test]
    fn the_cos_echo_is_optional_and_skipped_when_none() {
        let s = spec();
        assert!(s.cos_request.is_none());
        assert!(serde_json::to_value(&s).unwrap().get("CosRequest").is_none());
        let mut with = spec();
        with.cos_request = Some(serde_json::json!({"RoleArn": "qcs::cam::uin/1:roleName/r"}));
        let back: JobSpec = serde_json::from_str(&serde_json::to_string(&with).unwrap()).unwrap();
        assert_eq!(back, with);
    }

    #[test]
    fn unknown_operation_members_are_refused() {
        let r: Result<Operation, _> = serde_json::from_str(r#"{"S3DeleteObjectTagging":{"X":1}}"#);
        assert!(r.is_err());
        let r: Result<Operation, _> = serde_json::from_str(r#"{"S3Frobnicate":{}}"#);
        assert!(r.is_err());
    }
}
