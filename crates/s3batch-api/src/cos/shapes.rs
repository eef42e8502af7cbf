//! The COS request and response shapes: `<CreateJobRequest>` and its parts as COS names them, and the element
//! rules ([`Shapes`]) the XML parser and renderer follow.

use s3batch_core::Tag;
use s3batch_core::manifest::FieldName;
use s3batch_core::spec::Empty;
use serde::{Deserialize, Serialize};

use crate::xml::Shapes;

/// The COS shapes, by element name (see [`Shapes`]).
pub static COS: Shapes = Shapes {
    lists: &["Fields", "Jobs", "UserMetadata", "AccessControlGrants", "NewObjectTagging", "TagSet", "FailureReasons"],
    struct_lists: &["Jobs", "UserMetadata", "AccessControlGrants", "NewObjectTagging", "TagSet", "FailureReasons"],
    maps: &[],
    integers: &["Priority", "ExpirationInDays", "TotalNumberOfTasks", "NumberOfTasksSucceeded", "NumberOfTasksFailed"],
    booleans: &["ConfirmationRequired", "Enabled", "PrefixReplace"],
    structs: &[
        "Operation",
        "Manifest",
        "Spec",
        "Location",
        "Report",
        "COSPutObjectCopy",
        "COSInitiateRestoreObject",
        "COSDeleteObject",
        "COSPutObjectTagging",
        "NewObjectMetadata",
        "Grantee",
        "ProgressSummary",
        "Job",
    ],
    item_names: &[
        ("AccessControlGrants", "COSGrant"),
        ("NewObjectTagging", "COSTag"),
        ("TagSet", "COSTag"),
        ("FailureReasons", "JobFailure"),
    ],
};

/// `<CreateJobRequest>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CosCreateJobRequest {
    pub client_request_token: String,
    #[serde(default)]
    pub confirmation_required: Option<bool>,
    #[serde(default)]
    pub description: Option<String>,
    pub manifest: CosManifest,
    pub operation: CosOperation,
    pub priority: i64,
    pub report: CosReport,
    pub role_arn: String,
}

/// What is kept of a COS request to echo it: [`JobSpec::cos_request`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CosEcho {
    pub manifest: CosManifest,
    pub operation: CosOperation,
    pub report: CosReport,
    pub role_arn: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CosManifest {
    pub location: CosManifestLocation,
    pub spec: CosManifestSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CosManifestLocation {
    #[serde(default, rename = "ETag", skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    pub object_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_version_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CosManifestSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<FieldName>>,
    pub format: String,
}

/// `<Operation>`: exactly one of the COS operations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum CosOperation {
    #[serde(rename = "COSPutObjectCopy")]
    PutObjectCopy(Box<CosPutObjectCopy>),
    #[serde(rename = "COSInitiateRestoreObject")]
    InitiateRestoreObject(CosInitiateRestoreObject),
    #[serde(rename = "COSDeleteObject")]
    DeleteObject(Empty),
    #[serde(rename = "COSPutObjectTagging")]
    PutObjectTagging(CosPutObjectTagging),
}

impl CosOperation {
    pub fn name(&self) -> &'static str {
        match self {
            CosOperation::PutObjectCopy(_) => "COSPutObjectCopy",
            CosOperation::InitiateRestoreObject(_) => "COSInitiateRestoreObject",
            CosOperation::DeleteObject(_) => "COSDeleteObject",
            CosOperation::PutObjectTagging(_) => "COSPutObjectTagging",
        }
    }
}

/// `<COSPutObjectCopy>`, members in the docs' order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CosPutObjectCopy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control_directive: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control_grants: Option<Vec<CosGrant>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_replace: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_key_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canned_access_control_list: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_directive: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_since_constraint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub un_modified_since_constraint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_object_metadata: Option<CosObjectMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tagging_directive: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_object_tagging: Option<Vec<Tag>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_resource: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CosGrant {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grantee: Option<CosGrantee>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CosGrantee {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_identifier: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CosObjectMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_expires_date: Option<String>,
    #[serde(default, rename = "SSEAlgorithm", skip_serializing_if = "Option::is_none")]
    pub sse_algorithm: Option<String>,
    /// `<UserMetadata><member><Key/><Value/></member>…</UserMetadata>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_metadata: Option<Vec<Tag>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CosInitiateRestoreObject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_in_days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_tier: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CosPutObjectTagging {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tagging_directive: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_set: Option<Vec<Tag>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CosReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_scope: Option<String>,
}

/// The COS manifest format names and the AWS ones they stand for.
pub const COS_BATCH_CSV: &str = "COSBatchOperations_CSV_V1";
pub const COS_INVENTORY_CSV: &str = "COSInventoryReport_CSV_V1";
/// The COS report format.
pub const COS_REPORT_FORMAT: &str = "Report_CSV_V1";
