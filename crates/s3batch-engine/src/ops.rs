//! The operations: one function each, from a manifest line to a storage call. A success returns the report's
//! ResultMessage; a failure returns the storage's own error, classified once.

use s3batch_core::manifest::ManifestTask;
use s3batch_core::spec::{MetadataDirective, ObjectMetadata, PutObjectCopy};
use s3batch_core::{Operation, arn};
use s3batch_storage::{CopyRequest, Metadata, ObjectRef, Router, StorageError};

/// Run `op` on one object.
pub async fn run(op: &Operation, router: &Router, task: &ManifestTask) -> Result<String, StorageError> {
    let obj = ObjectRef::new(&task.bucket, &task.key).with_version(task.version_id.clone());
    let store = router.store_for(&task.bucket)?;
    match op {
        Operation::S3PutObjectTagging(t) => {
            store.put_object_tagging(&obj, &t.tag_set).await?;
        }
        Operation::S3DeleteObjectTagging(_) => {
            store.delete_object_tagging(&obj).await?;
        }
        Operation::S3DeleteObject(_) => {
            store.delete_object(&obj).await?;
        }
        Operation::S3PutObjectCopy(c) => copy(c, router, obj).await?,
    }
    Ok("Successful".into())
}

async fn copy(c: &PutObjectCopy, router: &Router, source: ObjectRef) -> Result<(), StorageError> {
    let dest_bucket = arn::parse_bucket_arn(&c.target_resource)
        .ok_or_else(|| StorageError::new("InvalidArgument", 400, "TargetResource is not a bucket ARN"))?;
    if !router.same_backend(&source.bucket, &dest_bucket) {
        router.store_for(&dest_bucket)?;
        return Err(StorageError::not_implemented(
            "copying between buckets on different storage backends",
            "s3batch engine (yet)",
        ));
    }
    let dest_key = format!("{}{}", c.target_key_prefix.as_deref().unwrap_or(""), source.key);
    let store = router.store_for(&dest_bucket)?;
    let mut req = CopyRequest::new(source, dest_bucket, dest_key);
    if c.metadata_directive == Some(MetadataDirective::Replace) {
        req.replace_metadata = Some(metadata(c.new_object_metadata.as_ref()));
    }
    req.tags = c.new_object_tagging.clone();
    req.storage_class = c.storage_class.clone();
    req.canned_acl = c.canned_access_control_list.clone();
    req.if_modified_since = c.modified_since_constraint.as_deref().and_then(s3batch_core::time::parse_iso);
    req.if_unmodified_since = c.un_modified_since_constraint.as_deref().and_then(s3batch_core::time::parse_iso);
    store.copy_object(&req).await?;
    Ok(())
}

fn metadata(m: Option<&ObjectMetadata>) -> Metadata {
    let Some(m) = m else { return Metadata::default() };
    Metadata {
        content_type: m.content_type.clone(),
        cache_control: m.cache_control.clone(),
        content_disposition: m.content_disposition.clone(),
        content_encoding: m.content_encoding.clone(),
        content_language: m.content_language.clone(),
        user: m.user_metadata.clone(),
    }
}
