//! COS ↔ AWS: a COS `<CreateJobRequest>` becomes the [`JobSpec`] the engine runs (`qcs::cos` ARNs, COS formats and
//! operation names become their AWS forms), and a job is shown back in COS shapes for DescribeJob and ListJobs.

use std::collections::BTreeMap;

use chrono::SecondsFormat;
use s3batch_core::manifest::ManifestFormat;
use s3batch_core::spec::{
    DeleteObject, Empty, Grant, Grantee, InitiateRestoreObject, JobManifest, JobReport, ManifestLocation, ManifestSpec,
    MetadataDirective, ObjectMetadata, PutObjectCopy, PutObjectTagging, REPORT_FORMAT, ReportScope,
};
use s3batch_core::{JobSpec, Operation, Tag, arn, time};
use s3batch_store::Job;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::shapes::*;
use super::{COS_OPERATIONS, invalid_argument, invalid_request, malformed};
use crate::pipeline::ApiError;
use crate::xml;

// ---------------------------------------------------------------------------------------------------------------
// COS -> AWS

/// A `<CreateJobRequest>` body: its ClientRequestToken and the job, in AWS shapes with the COS request kept for
/// echoing. Structure errors are `MalformedXML`, missing or invalid values `InvalidArgument`, a priority out of
/// range `InvalidRequest`.
pub fn parse_create_job(body: &[u8]) -> Result<(String, JobSpec), ApiError> {
    let root = xml::parse(body)?;
    if root.name != "CreateJobRequest" {
        return Err(malformed(format!("the body's root element is <{}>, not <CreateJobRequest>", root.name)));
    }
    let Value::Object(m) = COS.to_json(&root)? else {
        return Err(malformed("<CreateJobRequest> must hold elements"));
    };
    match m.get("ClientRequestToken") {
        Some(Value::String(t)) if (1..=64).contains(&t.len()) => {}
        Some(Value::String(t)) if t.is_empty() => {
            return Err(invalid_argument("ClientRequestToken cannot be empty"));
        }
        Some(_) => return Err(invalid_argument("ClientRequestToken must be 1 to 64 bytes long")),
        None => return Err(invalid_argument("ClientRequestToken is required")),
    }
    for required in ["Manifest", "Operation", "Priority", "Report", "RoleArn"] {
        if !m.contains_key(required) {
            return Err(invalid_argument(format!("{required} is required")));
        }
    }
    match m.get("Operation") {
        Some(Value::Object(op)) if op.len() == 1 => {
            let name = op.keys().next().map(String::as_str).unwrap_or("");
            if !COS_OPERATIONS.contains(&name) {
                return Err(invalid_argument(format!("Operation {name} is not one of {}", COS_OPERATIONS.join(", "))));
            }
        }
        Some(Value::Object(op)) if op.is_empty() => {
            return Err(malformed("Operation is empty; it must hold one operation"));
        }
        Some(Value::Object(op)) => {
            return Err(malformed(format!(
                "Operation must hold exactly one operation, not {}",
                op.keys().cloned().collect::<Vec<_>>().join(" and ")
            )));
        }
        _ => return Err(malformed("Operation must hold elements")),
    }
    let req: CosCreateJobRequest = xml::from_json("CreateJobRequest", Value::Object(m))?;
    let token = req.client_request_token.clone();
    Ok((token, to_spec(req)?))
}

/// The job a COS request describes.
pub fn to_spec(req: CosCreateJobRequest) -> Result<JobSpec, ApiError> {
    if !(0..=s3batch_core::spec::MAX_PRIORITY).contains(&req.priority) {
        return Err(invalid_request(format!("Priority must be between 0 and 2147483647, got {}", req.priority)));
    }
    let description = req.description.filter(|d| !d.is_empty());
    if let Some(d) = &description
        && d.len() > 256
    {
        return Err(invalid_argument(format!("Description is {} bytes; at most 256", d.len())));
    }
    if !(1..=1024).contains(&req.role_arn.len()) || !req.role_arn.starts_with("qcs::cam::") {
        return Err(invalid_argument(format!(
            "RoleArn '{}' is not a CAM role (qcs::cam::uin/<uin>:roleName/<role>)",
            req.role_arn
        )));
    }
    let echo = CosEcho { manifest: req.manifest, operation: req.operation, report: req.report, role_arn: req.role_arn };
    let (operation, manifest, report) = echo_to_aws(&echo)?;
    let spec = JobSpec {
        operation,
        manifest: Some(manifest),
        manifest_generator: None,
        report,
        priority: req.priority,
        confirmation_required: req.confirmation_required.unwrap_or(false),
        description,
        role_arn: None,
        tags: vec![],
        cos_request: Some(serde_json::to_value(&echo).expect("plain data always serialises")),
        rerun_of: None,
        dry_run: false,
        rate_limit: None,
    };
    spec.validate()?;
    Ok(spec)
}

/// The AWS operation, manifest and report of a COS request.
pub fn echo_to_aws(echo: &CosEcho) -> Result<(Operation, JobManifest, JobReport), ApiError> {
    Ok((operation_to_aws(&echo.operation)?, manifest_to_aws(&echo.manifest)?, report_to_aws(&echo.report)?))
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

fn bucket_arn(what: &str, v: &str) -> Result<String, ApiError> {
    match arn::parse_cos_arn(v) {
        Some(a) if a.key.is_none() => Ok(arn::bucket_arn(&a.bucket)),
        _ => Err(invalid_argument(format!(
            "{what} '{v}' is not a COS bucket ARN (qcs::cos:<region>:uid/<appid>:<bucket>)"
        ))),
    }
}

fn manifest_to_aws(m: &CosManifest) -> Result<JobManifest, ApiError> {
    let loc = &m.location;
    let etag = non_empty(&loc.etag).ok_or_else(|| invalid_argument("Manifest.Location.ETag is required"))?;
    if etag.len() > 1024 {
        return Err(invalid_argument("Manifest.Location.ETag is longer than 1024 bytes"));
    }
    let object_arn = match arn::parse_cos_arn(&loc.object_arn) {
        Some(arn::CosArn { bucket, key: Some(key), .. }) => arn::object_arn(&bucket, &key),
        _ => {
            return Err(invalid_argument(format!(
                "Manifest.Location.ObjectArn '{}' is not a COS object ARN (qcs::cos:<region>:uid/<appid>:<bucket>/<key>)",
                loc.object_arn
            )));
        }
    };
    let format = match m.spec.format.as_str() {
        COS_BATCH_CSV => {
            if m.spec.fields.as_ref().is_none_or(Vec::is_empty) {
                return Err(invalid_argument(format!("Manifest.Spec.Fields is required for {COS_BATCH_CSV}")));
            }
            ManifestFormat::S3BatchOperationsCsv20180820
        }
        COS_INVENTORY_CSV => ManifestFormat::S3InventoryReportCsv20161130,
        other => {
            return Err(invalid_argument(format!(
                "Manifest.Spec.Format '{other}' is not {COS_BATCH_CSV} or {COS_INVENTORY_CSV}"
            )));
        }
    };
    Ok(JobManifest {
        spec: ManifestSpec { format, fields: m.spec.fields.clone().unwrap_or_default() },
        location: ManifestLocation {
            object_arn,
            object_version_id: non_empty(&loc.object_version_id).map(str::to_string),
            etag: Some(etag.to_string()),
        },
    })
}

fn report_to_aws(r: &CosReport) -> Result<JobReport, ApiError> {
    let enabled = r.enabled.ok_or_else(|| invalid_argument("Report.Enabled is required"))?;
    let bucket = non_empty(&r.bucket).map(|b| bucket_arn("Report.Bucket", b)).transpose()?;
    let format = match non_empty(&r.format) {
        None => None,
        Some(COS_REPORT_FORMAT) => Some(REPORT_FORMAT.to_string()),
        Some(other) => {
            return Err(invalid_argument(format!("Report.Format '{other}' is not {COS_REPORT_FORMAT}")));
        }
    };
    let prefix = non_empty(&r.prefix).map(str::to_string);
    if let Some(p) = &prefix
        && p.len() > 256
    {
        return Err(invalid_argument("Report.Prefix is longer than 256 bytes"));
    }
    let report_scope = match non_empty(&r.report_scope) {
        None => None,
        Some("AllTasks") => Some(ReportScope::AllTasks),
        Some("FailedTasksOnly") => Some(ReportScope::FailedTasksOnly),
        Some(other) => {
            return Err(invalid_argument(format!("Report.ReportScope '{other}' is not AllTasks or FailedTasksOnly")));
        }
    };
    if enabled {
        for (name, missing) in
            [("Bucket", bucket.is_none()), ("Format", format.is_none()), ("ReportScope", report_scope.is_none())]
        {
            if missing {
                return Err(invalid_argument(format!("Report.{name} is required when the report is enabled")));
            }
        }
    }
    Ok(JobReport { bucket, format, enabled, prefix, report_scope, expected_bucket_owner: None })
}

/// `Copy`, `Replaced` (or `Replace`), `Add`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Directive {
    Copy,
    Replaced,
    Add,
}

fn directive(what: &str, v: &Option<String>) -> Result<Option<Directive>, ApiError> {
    match non_empty(v) {
        None => Ok(None),
        Some("Copy") => Ok(Some(Directive::Copy)),
        Some("Replaced" | "Replace") => Ok(Some(Directive::Replaced)),
        Some("Add") => Ok(Some(Directive::Add)),
        Some(other) => Err(invalid_argument(format!("{what} '{other}' is not Copy, Replaced or Add"))),
    }
}

/// A COS copy constraint: Unix seconds (cos-go-sdk-v5 sends int64) or an ISO-8601 timestamp; ISO-8601 for AWS.
fn constraint(what: &str, v: &Option<String>) -> Result<Option<String>, ApiError> {
    let Some(v) = non_empty(v) else { return Ok(None) };
    let v = v.trim();
    let ms = if let Ok(secs) = v.parse::<i64>() {
        secs.checked_mul(1000).filter(|ms| time::to_datetime(*ms).timestamp_millis() == *ms)
    } else {
        time::parse_iso(v)
    };
    let ms = ms.ok_or_else(|| {
        invalid_argument(format!("{what} '{v}' is not a Unix time in seconds or an ISO-8601 timestamp"))
    })?;
    Ok(Some(time::format_iso(ms)))
}

/// `HttpExpiresDate`: ISO-8601, or the HTTP date form (`Thu, 16 May 2019 06:45:51 GMT`); ISO-8601 for AWS.
fn http_date(v: &str) -> Result<String, ApiError> {
    if let Some(ms) = time::parse_iso(v) {
        return Ok(time::format_iso(ms));
    }
    chrono::DateTime::parse_from_rfc2822(v.trim())
        .map(|d| time::format_iso(d.timestamp_millis()))
        .map_err(|_| invalid_argument(format!("NewObjectMetadata.HttpExpiresDate '{v}' is not a date")))
}

fn operation_to_aws(op: &CosOperation) -> Result<Operation, ApiError> {
    match op {
        CosOperation::PutObjectCopy(c) => Ok(Operation::S3PutObjectCopy(Box::new(copy_to_aws(c)?))),
        CosOperation::InitiateRestoreObject(r) => {
            let p = "COSInitiateRestoreObject";
            let days =
                r.expiration_in_days.ok_or_else(|| invalid_argument(format!("{p}.ExpirationInDays is required")))?;
            if !(1..=365).contains(&days) {
                return Err(invalid_argument(format!("{p}.ExpirationInDays must be 1 to 365, got {days}")));
            }
            let tier = match non_empty(&r.job_tier) {
                Some("Bulk") => "BULK",
                Some("Standard") => "STANDARD",
                Some(other) => {
                    return Err(invalid_argument(format!("{p}.JobTier '{other}' is not Bulk or Standard")));
                }
                None => return Err(invalid_argument(format!("{p}.JobTier is required"))),
            };
            Ok(Operation::S3InitiateRestoreObject(InitiateRestoreObject {
                expiration_in_days: Some(days),
                glacier_job_tier: Some(tier.into()),
            }))
        }
        CosOperation::DeleteObject(_) => Ok(Operation::S3DeleteObject(DeleteObject::default())),
        CosOperation::PutObjectTagging(t) => {
            let tagging = PutObjectTagging { tag_set: t.tag_set.clone().unwrap_or_default() };
            match directive("COSPutObjectTagging.TaggingDirective", &t.tagging_directive)? {
                None | Some(Directive::Replaced) => Ok(Operation::S3PutObjectTagging(tagging)),
                Some(Directive::Add) => Ok(Operation::S3AddObjectTagging(tagging)),
                Some(Directive::Copy) => Err(invalid_argument(
                    "COSPutObjectTagging.TaggingDirective must be Replaced or Add (Copy has nothing to copy from)",
                )),
            }
        }
    }
}

const COPY: &str = "COSPutObjectCopy";

fn copy_to_aws(c: &CosPutObjectCopy) -> Result<PutObjectCopy, ApiError> {
    let p = COPY;
    let target =
        non_empty(&c.target_resource).ok_or_else(|| invalid_argument(format!("{p}.TargetResource is required")))?;
    let mut out =
        PutObjectCopy { target_resource: bucket_arn(&format!("{p}.TargetResource"), target)?, ..Default::default() };
    copy_keys(c, &mut out)?;
    copy_metadata(c, &mut out)?;
    copy_acl(c, &mut out)?;
    copy_tags(c, &mut out)?;
    if let Some(sc) = non_empty(&c.storage_class) {
        if !["STANDARD", "STANDARD_IA"].contains(&sc) {
            return Err(invalid_argument(format!("{p}.StorageClass '{sc}' is not STANDARD or STANDARD_IA")));
        }
        out.storage_class = Some(sc.to_string());
    }
    out.modified_since_constraint = constraint(&format!("{p}.ModifiedSinceConstraint"), &c.modified_since_constraint)?;
    out.un_modified_since_constraint =
        constraint(&format!("{p}.UnModifiedSinceConstraint"), &c.un_modified_since_constraint)?;
    Ok(out)
}

/// Keys: PrefixReplace replaces ResourcesPrefix with TargetKeyPrefix.
fn copy_keys(c: &CosPutObjectCopy, out: &mut PutObjectCopy) -> Result<(), ApiError> {
    let p = COPY;
    let (resources, target_prefix) = (non_empty(&c.resources_prefix), non_empty(&c.target_key_prefix));
    for (name, v) in [("ResourcesPrefix", resources), ("TargetKeyPrefix", target_prefix)] {
        if let Some(v) = v
            && v.len() > 1024
        {
            return Err(invalid_argument(format!("{p}.{name} is longer than 1024 bytes")));
        }
    }
    if c.prefix_replace == Some(true) {
        out.source_key_prefix = resources.map(str::to_string);
        out.target_key_prefix = target_prefix.map(str::to_string);
    } else if resources.is_some() || target_prefix.is_some() {
        return Err(invalid_argument(format!("{p}.ResourcesPrefix and TargetKeyPrefix need PrefixReplace true")));
    }
    Ok(())
}

/// Metadata: Copy (the default) keeps the source's, Replaced sets NewObjectMetadata, Add merges it.
fn copy_metadata(c: &CosPutObjectCopy, out: &mut PutObjectCopy) -> Result<(), ApiError> {
    let p = COPY;
    match directive(&format!("{p}.MetadataDirective"), &c.metadata_directive)? {
        None | Some(Directive::Copy) => {
            if c.new_object_metadata.is_some() {
                return Err(invalid_argument(format!("{p}.NewObjectMetadata needs MetadataDirective Replaced")));
            }
            out.metadata_directive = c.metadata_directive.as_ref().map(|_| MetadataDirective::Copy);
        }
        Some(Directive::Replaced) => {
            out.metadata_directive = Some(MetadataDirective::Replace);
            out.new_object_metadata = Some(metadata_to_aws(c.new_object_metadata.as_ref())?);
        }
        Some(Directive::Add) => {
            if c.new_object_metadata.is_none() {
                return Err(invalid_argument(format!("{p}.MetadataDirective Add needs NewObjectMetadata")));
            }
            out.metadata_directive = Some(MetadataDirective::Replace);
            out.new_object_metadata = Some(metadata_to_aws(c.new_object_metadata.as_ref())?);
            out.merge_metadata = Some(true);
        }
    }
    Ok(())
}

/// ACL: Copy (the default) leaves it to the storage's copy; Replaced sets a canned ACL and/or grants; Add merges
/// grants.
fn copy_acl(c: &CosPutObjectCopy, out: &mut PutObjectCopy) -> Result<(), ApiError> {
    let p = COPY;
    let acl_given = non_empty(&c.canned_access_control_list).is_some() || c.access_control_grants.is_some();
    match directive(&format!("{p}.AccessControlDirective"), &c.access_control_directive)? {
        Some(Directive::Copy) if acl_given => {
            return Err(invalid_argument(format!(
                "{p}.CannedAccessControlList and AccessControlGrants need AccessControlDirective Replaced"
            )));
        }
        None | Some(Directive::Copy) => {}
        Some(Directive::Replaced) if !acl_given => {
            return Err(invalid_argument(format!(
                "{p}.AccessControlDirective Replaced needs CannedAccessControlList or AccessControlGrants"
            )));
        }
        Some(Directive::Replaced) => {}
        Some(Directive::Add) => {
            if c.access_control_grants.is_none() || non_empty(&c.canned_access_control_list).is_some() {
                return Err(invalid_argument(format!(
                    "{p}.AccessControlDirective Add takes AccessControlGrants (and no CannedAccessControlList)"
                )));
            }
            out.merge_access_control_grants = Some(true);
        }
    }
    if let Some(acl) = non_empty(&c.canned_access_control_list) {
        if !["private", "public-read"].contains(&acl) {
            return Err(invalid_argument(format!("{p}.CannedAccessControlList '{acl}' is not private or public-read")));
        }
        out.canned_access_control_list = Some(acl.to_string());
    }
    if let Some(grants) = &c.access_control_grants {
        out.access_control_grants = Some(grants.iter().map(grant_to_aws).collect::<Result<_, _>>()?);
    }
    Ok(())
}

/// Tags: Copy keeps the source's, Replaced sets NewObjectTagging, Add merges it; without a directive the tags
/// given (if any) are set.
fn copy_tags(c: &CosPutObjectCopy, out: &mut PutObjectCopy) -> Result<(), ApiError> {
    let p = COPY;
    match directive(&format!("{p}.TaggingDirective"), &c.tagging_directive)? {
        Some(Directive::Copy) => {
            if c.new_object_tagging.is_some() {
                return Err(invalid_argument(format!("{p}.NewObjectTagging needs TaggingDirective Replaced")));
            }
        }
        None => out.new_object_tagging = c.new_object_tagging.clone(),
        Some(Directive::Replaced) => {
            out.new_object_tagging = Some(c.new_object_tagging.clone().ok_or_else(|| {
                invalid_argument(format!("{p}.NewObjectTagging is required with TaggingDirective Replaced"))
            })?);
        }
        Some(Directive::Add) => {
            out.new_object_tagging = Some(c.new_object_tagging.clone().ok_or_else(|| {
                invalid_argument(format!("{p}.NewObjectTagging is required with TaggingDirective Add"))
            })?);
            out.merge_tagging = Some(true);
        }
    }
    Ok(())
}

fn metadata_to_aws(m: Option<&CosObjectMetadata>) -> Result<ObjectMetadata, ApiError> {
    let Some(m) = m else { return Ok(ObjectMetadata::default()) };
    let p = "COSPutObjectCopy.NewObjectMetadata";
    let own = |v: &Option<String>| non_empty(v).map(str::to_string);
    if let Some(a) = non_empty(&m.sse_algorithm)
        && a != "AES256"
    {
        return Err(invalid_argument(format!("{p}.SSEAlgorithm '{a}' is not AES256")));
    }
    let mut user_metadata = BTreeMap::new();
    for kv in m.user_metadata.iter().flatten() {
        if kv.key.is_empty() {
            return Err(invalid_argument(format!("{p}.UserMetadata has an empty Key")));
        }
        if user_metadata.insert(kv.key.clone(), kv.value.clone()).is_some() {
            return Err(invalid_argument(format!("{p}.UserMetadata has the key '{}' twice", kv.key)));
        }
    }
    Ok(ObjectMetadata {
        cache_control: own(&m.cache_control),
        content_disposition: own(&m.content_disposition),
        content_encoding: own(&m.content_encoding),
        content_type: own(&m.content_type),
        http_expires_date: non_empty(&m.http_expires_date).map(http_date).transpose()?,
        sse_algorithm: own(&m.sse_algorithm),
        user_metadata,
        ..Default::default()
    })
}

fn grant_to_aws(g: &CosGrant) -> Result<Grant, ApiError> {
    let p = "COSPutObjectCopy.AccessControlGrants.COSGrant";
    let grantee = g.grantee.as_ref().ok_or_else(|| invalid_argument(format!("{p}.Grantee is required")))?;
    let id = non_empty(&grantee.identifier)
        .ok_or_else(|| invalid_argument(format!("{p}.Grantee.Identifier is required")))?;
    if id.len() > 1024 {
        return Err(invalid_argument(format!("{p}.Grantee.Identifier is longer than 1024 bytes")));
    }
    match non_empty(&grantee.type_identifier) {
        Some("ID") => {}
        other => {
            return Err(invalid_argument(format!("{p}.Grantee.TypeIdentifier '{}' is not ID", other.unwrap_or(""))));
        }
    }
    let permission = match non_empty(&g.permission) {
        Some(x @ ("READ" | "WRITE" | "FULL_CONTROL")) => x.to_string(),
        other => {
            return Err(invalid_argument(format!(
                "{p}.Permission '{}' is not READ, WRITE or FULL_CONTROL",
                other.unwrap_or("")
            )));
        }
    };
    Ok(Grant {
        grantee: Some(Grantee {
            type_identifier: Some("id".into()),
            identifier: Some(id.to_string()),
            display_name: non_empty(&grantee.display_name).map(str::to_string),
        }),
        permission: Some(permission),
    })
}

// ---------------------------------------------------------------------------------------------------------------
// AWS -> COS: what DescribeJob and ListJobs show

/// The COS request kept with a job, if it still describes exactly what the job runs.
pub fn echo_of(spec: &JobSpec) -> Option<CosEcho> {
    let echo: CosEcho = serde_json::from_value(spec.cos_request.clone()?).ok()?;
    let (operation, manifest, report) = echo_to_aws(&echo).ok()?;
    (operation == spec.operation && Some(&manifest) == spec.manifest.as_ref() && report == spec.report).then_some(echo)
}

/// `2019-12-19T18:00:30Z`: COS timestamps have no fractional seconds.
pub fn cos_time(ms: s3batch_core::Millis) -> String {
    time::to_datetime(ms).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("plain data always serialises")
}

/// Manifest, Operation, Report and RoleArn of any job, in COS shapes.
fn cos_parts(spec: &JobSpec, region: &str, appid: &str) -> (Value, Value, Value, Value) {
    if let Some(echo) = echo_of(spec) {
        return (to_value(&echo.manifest), to_value(&echo.operation), to_value(&echo.report), json!(echo.role_arn));
    }
    let cos_bucket = |aws: &str| {
        arn::parse_bucket_arn(aws).map_or_else(|| aws.to_string(), |b| arn::cos_bucket_arn(region, appid, &b))
    };
    let manifest = match &spec.manifest {
        Some(m) => {
            let object_arn = arn::parse_object_arn(&m.location.object_arn)
                .map_or_else(|| m.location.object_arn.clone(), |(b, k)| arn::cos_object_arn(region, appid, &b, &k));
            let format = match m.spec.format {
                ManifestFormat::S3BatchOperationsCsv20180820 => COS_BATCH_CSV,
                ManifestFormat::S3InventoryReportCsv20161130 => COS_INVENTORY_CSV,
            };
            to_value(&CosManifest {
                location: CosManifestLocation {
                    etag: Some(m.location.etag.clone().unwrap_or_default()),
                    object_arn,
                    object_version_id: m.location.object_version_id.clone(),
                },
                spec: CosManifestSpec {
                    fields: (!m.spec.fields.is_empty()).then(|| m.spec.fields.clone()),
                    format: format.into(),
                },
            })
        }
        // A generated manifest has no COS form; the elements are there (clients read them unchecked), empty.
        None => json!({ "Location": { "ETag": "", "ObjectArn": "" }, "Spec": { "Format": "" } }),
    };
    let r = &spec.report;
    let report = to_value(&CosReport {
        bucket: Some(r.bucket.as_deref().map(cos_bucket).unwrap_or_default()),
        enabled: Some(r.enabled),
        format: Some(if r.format.is_some() { COS_REPORT_FORMAT.to_string() } else { String::new() }),
        prefix: r.prefix.clone(),
        report_scope: Some(r.report_scope.map(|s| to_value(&s).as_str().unwrap_or("").to_string()).unwrap_or_default()),
    });
    // An operation COS has no form for is shown by its S3 name alone.
    let operation = operation_to_cos(&spec.operation, region, appid).map(|op| to_value(&op)).unwrap_or_else(|| {
        Value::Object(Map::from_iter([(spec.operation.name().to_string(), Value::Object(Map::new()))]))
    });
    (manifest, operation, report, json!(spec.role_arn.clone().unwrap_or_default()))
}

/// A COS form of an S3 operation, where COS has one.
fn operation_to_cos(op: &Operation, region: &str, appid: &str) -> Option<CosOperation> {
    Some(match op {
        Operation::S3PutObjectCopy(c) => {
            let target = arn::parse_bucket_arn(&c.target_resource)
                .map_or_else(|| c.target_resource.clone(), |b| arn::cos_bucket_arn(region, appid, &b));
            CosOperation::PutObjectCopy(Box::new(copy_to_cos(c, target)))
        }
        Operation::S3InitiateRestoreObject(r) => CosOperation::InitiateRestoreObject(CosInitiateRestoreObject {
            expiration_in_days: r.expiration_in_days,
            job_tier: r.glacier_job_tier.as_deref().map(|t| match t {
                "BULK" => "Bulk".to_string(),
                "STANDARD" => "Standard".to_string(),
                other => other.to_string(),
            }),
        }),
        Operation::S3DeleteObject(d) if d.delete_noncurrent_versions != Some(true) => {
            CosOperation::DeleteObject(Empty {})
        }
        Operation::S3PutObjectTagging(t) => CosOperation::PutObjectTagging(CosPutObjectTagging {
            tagging_directive: Some("Replaced".into()),
            tag_set: Some(t.tag_set.clone()),
        }),
        Operation::S3AddObjectTagging(t) => CosOperation::PutObjectTagging(CosPutObjectTagging {
            tagging_directive: Some("Add".into()),
            tag_set: Some(t.tag_set.clone()),
        }),
        _ => return None,
    })
}

/// A copy in COS's words: its directives say `Copy`, `Replaced` or (where S3 merges) `Add`; `target` is the
/// target bucket's COS ARN.
fn copy_to_cos(c: &PutObjectCopy, target: String) -> CosPutObjectCopy {
    let replaced = |yes: bool| Some(if yes { "Replaced" } else { "Copy" }.to_string());
    let add_or = |merge: Option<bool>, other: &str| {
        if merge == Some(true) { "Add".to_string() } else { other.to_string() }
    };
    let acl = c.canned_access_control_list.is_some() || c.access_control_grants.is_some();
    let prefixes = c.source_key_prefix.is_some() || c.target_key_prefix.is_some();
    CosPutObjectCopy {
        access_control_directive: acl.then(|| add_or(c.merge_access_control_grants, "Replaced")),
        access_control_grants: c.access_control_grants.as_ref().map(|gs| gs.iter().map(grant_to_cos).collect()),
        prefix_replace: prefixes.then_some(true),
        resources_prefix: c.source_key_prefix.clone(),
        target_key_prefix: c.target_key_prefix.clone(),
        canned_access_control_list: c.canned_access_control_list.clone(),
        metadata_directive: c
            .metadata_directive
            .and_then(|d| replaced(d == MetadataDirective::Replace))
            .map(|d| if d == "Replaced" { add_or(c.merge_metadata, &d) } else { d }),
        modified_since_constraint: c.modified_since_constraint.clone(),
        un_modified_since_constraint: c.un_modified_since_constraint.clone(),
        new_object_metadata: c.new_object_metadata.as_ref().map(metadata_to_cos),
        tagging_directive: c.new_object_tagging.as_ref().map(|_| add_or(c.merge_tagging, "Replaced")),
        new_object_tagging: c.new_object_tagging.clone(),
        storage_class: c.storage_class.clone(),
        target_resource: Some(target),
    }
}

/// A grant in COS's words (its grantee type `ID`, where S3 writes `id`).
fn grant_to_cos(g: &Grant) -> CosGrant {
    CosGrant {
        grantee: g.grantee.as_ref().map(|e| CosGrantee {
            display_name: e.display_name.clone(),
            identifier: e.identifier.clone(),
            type_identifier: e
                .type_identifier
                .as_deref()
                .map(|t| if t == "id" { "ID".to_string() } else { t.to_string() }),
        }),
        permission: g.permission.clone(),
    }
}

fn metadata_to_cos(m: &ObjectMetadata) -> CosObjectMetadata {
    CosObjectMetadata {
        cache_control: m.cache_control.clone(),
        content_disposition: m.content_disposition.clone(),
        content_encoding: m.content_encoding.clone(),
        content_type: m.content_type.clone(),
        http_expires_date: m.http_expires_date.clone(),
        sse_algorithm: m.sse_algorithm.clone(),
        user_metadata: (!m.user_metadata.is_empty())
            .then(|| m.user_metadata.iter().map(|(k, v)| Tag::new(k, v)).collect()),
    }
}

fn progress(job: &Job) -> Value {
    json!({
        "NumberOfTasksFailed": job.failed,
        "NumberOfTasksSucceeded": job.succeeded,
        "TotalNumberOfTasks": job.total_tasks.unwrap_or(0),
    })
}

/// DescribeJob's `<Job>`, members in the docs' order.
pub fn job_view(job: &Job, region: &str, appid: &str) -> Value {
    let (manifest, operation, report, role_arn) = cos_parts(&job.spec, region, appid);
    let failures: Vec<Value> = if job.failure_reasons.is_empty() {
        // COS lists an empty JobFailure for a job without failures.
        vec![json!({ "FailureCode": "", "FailureReason": "" })]
    } else {
        job.failure_reasons
            .iter()
            .map(|f| json!({ "FailureCode": f.failure_code, "FailureReason": f.failure_reason }))
            .collect()
    };
    json!({
        "ConfirmationRequired": job.spec.confirmation_required,
        "CreationTime": cos_time(job.created_at),
        "Description": job.spec.description.clone().unwrap_or_default(),
        "FailureReasons": failures,
        "JobId": job.id,
        "Manifest": manifest,
        "Operation": operation,
        "Priority": job.priority,
        "ProgressSummary": progress(job),
        "Report": report,
        "RoleArn": role_arn,
        "Status": job.status,
        "StatusUpdateReason": job.status_update_reason,
        "SuspendedCause": job.suspended_cause,
        "SuspendedDate": job.suspended_at.map(cos_time),
        "TerminationDate": job.terminated_at.map(cos_time),
    })
}

/// The operation's name as ListJobs shows it: the COS name where there is one.
pub fn operation_name(spec: &JobSpec) -> String {
    if let Some(echo) = echo_of(spec) {
        return echo.operation.name().to_string();
    }
    operation_to_cos(&spec.operation, "", "").map_or_else(|| spec.operation.name().to_string(), |op| op.name().into())
}

pub(super) fn list_member(job: &Job) -> Value {
    json!({
        "CreationTime": cos_time(job.created_at),
        "Description": job.spec.description.clone().unwrap_or_default(),
        "JobId": job.id,
        "Operation": operation_name(&job.spec),
        "Priority": job.priority,
        "ProgressSummary": progress(job),
        "Status": job.status,
        "TerminationDate": job.terminated_at.map(cos_time),
    })
}
