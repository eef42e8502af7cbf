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

/// An object or job tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
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
#[serde(rename_all = "PascalCase")]
pub struct JobSpec {
    pub operation: Operation,
    pub manifest: JobManifest,
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
}

fn default_true() -> bool {
    true
}

/// The one operation a job runs on every object. The variant name is the S3 Control `OperationName`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Operation {
    S3PutObjectTagging(PutObjectTagging),
    S3DeleteObjectTagging(Empty),
    S3PutObjectCopy(Box<PutObjectCopy>),
    /// Extension: delete each object (the version named in the manifest, or the current object).
    S3DeleteObject(Empty),
}

impl Operation {
    /// The `OperationName` string (ListJobs shows it).
    pub fn name(&self) -> &'static str {
        match self {
            Operation::S3PutObjectTagging(_) => "S3PutObjectTagging",
            Operation::S3DeleteObjectTagging(_) => "S3DeleteObjectTagging",
            Operation::S3PutObjectCopy(_) => "S3PutObjectCopy",
            Operation::S3DeleteObject(_) => "S3DeleteObject",
        }
    }
}

/// An operation with no members, written `{}` in JSON and `<S3DeleteObjectTagging />` in XML.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutObjectTagging {
    #[serde(default)]
    pub tag_set: Vec<Tag>,
}

/// `S3PutObjectCopy`: copy each object into `TargetResource`, server-side.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutObjectCopy {
    /// The destination bucket's ARN.
    pub target_resource: String,
    /// Put in front of each key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_key_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_directive: Option<MetadataDirective>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_object_metadata: Option<ObjectMetadata>,
    /// Absent: the source's tags are copied. Present and empty: the copy has no tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_object_tagging: Option<Vec<Tag>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canned_access_control_list: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_since_constraint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub un_modified_since_constraint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MetadataDirective {
    Copy,
    Replace,
}

/// `S3ObjectMetadata`: what a copy with `MetadataDirective=REPLACE` gives the new object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ObjectMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user_metadata: BTreeMap<String, String>,
}

/// `JobManifest`: where the list of objects is and how to read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobManifest {
    pub spec: ManifestSpec,
    pub location: ManifestLocation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ManifestSpec {
    pub format: ManifestFormat,
    #[serde(default)]
    pub fields: Vec<FieldName>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
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
#[serde(rename_all = "PascalCase")]
pub struct JobReport {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_scope: Option<ReportScope>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReportScope {
    AllTasks,
    FailedTasksOnly,
}

/// Report format name, the only one AWS has.
pub const REPORT_FORMAT: &str = "Report_CSV_20180820";

/// Why a request is refused. `code` is the S3 Control exception name the wire would carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ValidationError {
    pub code: &'static str,
    pub message: String,
}

impl ValidationError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ValidationError { code: "BadRequestException", message: message.into() }
    }
}

fn check(ok: bool, message: impl FnOnce() -> String) -> Result<(), ValidationError> {
    if ok { Ok(()) } else { Err(ValidationError::bad_request(message())) }
}

fn check_len(field: &str, v: &str, min: usize, max: usize) -> Result<(), ValidationError> {
    let n = v.chars().count();
    check((min..=max).contains(&n), || format!("{field} must be {min} to {max} characters long, got {n}"))
}

/// Tag rules shared by job tags and object tags: unique keys, key 1..128, value 0..256, the AWS character set.
pub fn validate_tags(what: &str, tags: &[Tag], max: usize) -> Result<(), ValidationError> {
    if tags.len() > max {
        return Err(ValidationError {
            code: "TooManyTagsException",
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
    /// Every check a server makes that clients do not: ranges, lengths, ARNs, report fields, tag limits.
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
        self.validate_manifest()?;
        self.validate_report()?;
        self.validate_operation()
    }

    fn validate_manifest(&self) -> Result<(), ValidationError> {
        let m = &self.manifest;
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
        match m.spec.format {
            ManifestFormat::S3BatchOperationsCsv20180820 => {
                crate::manifest::CsvLayout::new(&m.spec.fields)
                    .map_err(|e| ValidationError::bad_request(e.to_string()))?;
            }
        }
        Ok(())
    }

    fn validate_report(&self) -> Result<(), ValidationError> {
        let r = &self.report;
        if !r.enabled {
            return Ok(());
        }
        let bucket = r
            .bucket
            .as_deref()
            .ok_or_else(|| ValidationError::bad_request("Report.Bucket is required when the report is enabled"))?;
        check(arn::parse_bucket_arn(bucket).is_some(), || {
            format!("Report.Bucket '{bucket}' is not a bucket ARN (arn:aws:s3:::bucket)")
        })?;
        match r.format.as_deref() {
            Some(REPORT_FORMAT) => {}
            Some(f) => return Err(ValidationError::bad_request(format!("Report.Format '{f}' is not {REPORT_FORMAT}"))),
            None => return Err(ValidationError::bad_request("Report.Format is required when the report is enabled")),
        }
        check(r.report_scope.is_some(), || "Report.ReportScope is required when the report is enabled".into())?;
        if let Some(p) = &r.prefix {
            check_len("Report.Prefix", p, 1, 512)?;
        }
        Ok(())
    }

    fn validate_operation(&self) -> Result<(), ValidationError> {
        match &self.operation {
            Operation::S3PutObjectTagging(t) => validate_tags("object tag", &t.tag_set, 10),
            Operation::S3DeleteObjectTagging(_) | Operation::S3DeleteObject(_) => Ok(()),
            Operation::S3PutObjectCopy(c) => {
                check(arn::parse_bucket_arn(&c.target_resource).is_some(), || {
                    format!("S3PutObjectCopy.TargetResource '{}' is not a bucket ARN", c.target_resource)
                })?;
                if let Some(p) = &c.target_key_prefix {
                    check_len("S3PutObjectCopy.TargetKeyPrefix", p, 1, 1024)?;
                }
                if let Some(tags) = &c.new_object_tagging {
                    validate_tags("S3PutObjectCopy.NewObjectTagging", tags, 10)?;
                }
                if c.new_object_metadata.is_some() {
                    check(c.metadata_directive == Some(MetadataDirective::Replace), || {
                        "S3PutObjectCopy.NewObjectMetadata needs MetadataDirective REPLACE".into()
                    })?;
                }
                if let Some(sc) = &c.storage_class {
                    check(STORAGE_CLASSES.contains(&sc.as_str()), || {
                        format!("S3PutObjectCopy.StorageClass '{sc}' is not one of {}", STORAGE_CLASSES.join(", "))
                    })?;
                }
                if let Some(acl) = &c.canned_access_control_list {
                    check(CANNED_ACLS.contains(&acl.as_str()), || {
                        format!(
                            "S3PutObjectCopy.CannedAccessControlList '{acl}' is not one of {}",
                            CANNED_ACLS.join(", ")
                        )
                    })?;
                }
                for (name, v) in [
                    ("ModifiedSinceConstraint", &c.modified_since_constraint),
                    ("UnModifiedSinceConstraint", &c.un_modified_since_constraint),
                ] {
                    if let Some(v) = v {
                        check(crate::time::parse_iso(v).is_some(), || {
                            format!("S3PutObjectCopy.{name} '{v}' is not an ISO-8601 timestamp")
                        })?;
                    }
                }
                Ok(())
            }
        }
    }
}

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
    let mut p = r.splitn(6, ':');
    matches!(
        (p.next(), p.next(), p.next(), p.next(), p.next(), p.next()),
        (Some("arn"), Some(part), Some("iam"), Some(""), Some(acct), Some(res))
            if !part.is_empty() && acct.len() == 12 && acct.bytes().all(|b| b.is_ascii_digit()) && res.starts_with("role/")
    )
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
    fn server_side_checks() {
        let mut s = spec();
        s.priority = MAX_PRIORITY + 1;
        assert_eq!(s.validate().unwrap_err().code, "BadRequestException");

        let mut s = spec();
        s.report.report_scope = None;
        assert!(s.validate().unwrap_err().message.contains("ReportScope"));

        let mut s = spec();
        s.tags = (0..51).map(|i| Tag::new(format!("k{i}"), "v")).collect();
        assert_eq!(s.validate().unwrap_err().code, "TooManyTagsException");

        let mut s = spec();
        s.tags = vec![Tag::new("a", "1"), Tag::new("a", "2")];
        assert!(s.validate().unwrap_err().message.contains("twice"));

        let mut s = spec();
        s.role_arn = Some("arn:aws:iam::12:role/x".into());
        assert!(s.validate().is_err());

        let mut s = spec();
        s.manifest.location.object_arn = "arn:aws:s3:::mbk".into();
        assert!(s.validate().is_err());

        let mut s = spec();
        s.manifest.spec.fields = vec![FieldName::Key];
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
        s.report = JobReport { enabled: false, bucket: None, format: None, prefix: None, report_scope: None };
        s.validate().unwrap();
    }

    #[test]
    fn unknown_operation_members_are_refused() {
        let r: Result<Operation, _> = serde_json::from_str(r#"{"S3DeleteObjectTagging":{"X":1}}"#);
        assert!(r.is_err());
        let r: Result<Operation, _> = serde_json::from_str(r#"{"S3Frobnicate":{}}"#);
        assert!(r.is_err());
    }
}
