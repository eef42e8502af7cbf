//! The operations: one function each, from a manifest line to storage calls. A success returns the report's
//! ResultMessage; a failure returns the storage's own error, classified once.
//!
//! Every operation acts on the version the manifest names (or the current object). Copies between buckets on
//! the same backend are server-side ([`ObjectStore::copy_object`]); between backends they are streamed: a GET of
//! the source into a PUT, or into a multipart upload of [`CROSS_STORE_PART_SIZE`] parts for larger objects, so
//! that at most one part is held in memory.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use s3batch_core::manifest::ManifestTask;
use s3batch_core::spec::{
    self, InitiateRestoreObject, MetadataDirective, ObjectMetadata, PutObjectCopy, PutObjectRetention,
};
use s3batch_core::{Operation, Tag, arn};
use s3batch_storage::{
    Acl, AclPolicy, AnnotationDirective, CompletedPart, CopyRequest, DeleteKey, EventHold, EventHoldDuration, Grant,
    Grantee, MAX_DELETE_KEYS, Metadata, MultipartOptions, MultipartUpload, ObjectInfo, ObjectRef, ObjectStore, Owner,
    Permission, PutBody, PutOptions, RestoreTier, RetentionMode, Router, StorageError, WriteResult,
};

use crate::lambda::Functions;

/// Most tags an object may carry (S3's limit).
pub const MAX_OBJECT_TAGS: usize = 10;
/// Part size of a copy between backends; a source up to this size is one GET and one PUT. Raised for objects
/// that would need more than 10,000 parts.
pub const CROSS_STORE_PART_SIZE: u64 = 8 * 1024 * 1024;

/// What an operation may need besides its object.
#[derive(Debug, Clone, Copy)]
pub struct OpCtx<'a> {
    pub router: &'a Router,
    pub functions: &'a Functions,
    pub job_id: &'a str,
    /// `S3ReplicateObject` destinations: source bucket → destination bucket.
    pub replication: &'a BTreeMap<String, String>,
}

/// Run `op` on one object.
pub async fn run(op: &Operation, ctx: &OpCtx<'_>, task: &ManifestTask) -> Result<String, StorageError> {
    let router = ctx.router;
    let obj = ObjectRef::new(&task.bucket, &task.key).with_version(task.version_id.clone());
    // The backend of the task's bucket (LambdaInvoke needs none).
    let store = || router.store_for(&task.bucket);
    match op {
        Operation::LambdaInvoke(l) => return ctx.functions.invoke(ctx.job_id, l, task).await,
        Operation::S3ComputeObjectChecksum(c) => return crate::checksum::compute(store()?.as_ref(), &obj, c).await,
        Operation::S3PutObjectTagging(t) => {
            store()?.put_object_tagging(&obj, &t.tag_set).await?;
        }
        Operation::S3DeleteObjectTagging(_) => {
            store()?.delete_object_tagging(&obj).await?;
        }
        Operation::S3DeleteObject(d) => {
            delete(store()?.as_ref(), &obj, d.delete_noncurrent_versions == Some(true)).await?
        }
        Operation::S3PutObjectCopy(c) => copy(c, router, obj).await?,
        Operation::S3PutObjectAcl(a) => store()?.put_object_acl(&obj, &acl(a)?).await?,
        Operation::S3InitiateRestoreObject(r) => restore(store()?.as_ref(), &obj, r).await?,
        Operation::S3PutObjectLegalHold(l) => {
            let on = match l.legal_hold.status.as_str() {
                "ON" => true,
                "OFF" => false,
                other => return Err(invalid(format!("LegalHold Status must be ON or OFF, got {other:?}"))),
            };
            store()?.put_object_legal_hold(&obj, on).await?;
        }
        Operation::S3PutObjectRetention(r) => retention(store()?.as_ref(), &obj, r).await?,
        Operation::S3ReplicateObject(_) => replicate(ctx, obj).await?,
        Operation::S3UpdateObjectEncryption(u) => update_encryption(store()?.as_ref(), obj, u).await?,
        Operation::S3AddObjectTagging(t) => add_tags(store()?.as_ref(), &obj, &t.tag_set).await?,
        Operation::S3RemoveObjectTagging(t) => {
            let tags = store()?.get_object_tagging(&obj).await?;
            let kept: Vec<Tag> = tags.iter().filter(|tag| !t.tag_keys.contains(&tag.key)).cloned().collect();
            if kept.len() != tags.len() {
                store()?.put_object_tagging(&obj, &kept).await?;
            }
        }
    }
    Ok("Successful".into())
}

/// S3InitiateRestoreObject.
async fn restore(store: &dyn ObjectStore, obj: &ObjectRef, r: &InitiateRestoreObject) -> Result<(), StorageError> {
    let days = match r.expiration_in_days {
        None => None,
        Some(d) => Some(i32::try_from(d).map_err(|_| invalid(format!("ExpirationInDays {d} is too large")))?),
    };
    let tier = r.glacier_job_tier.as_deref().map(RestoreTier::parse).transpose()?;
    store.restore_object(obj, days, tier).await
}

/// S3PutObjectRetention: set (both Mode and RetainUntilDate) or remove (neither) the retention, and the event hold.
async fn retention(store: &dyn ObjectStore, obj: &ObjectRef, r: &PutObjectRetention) -> Result<(), StorageError> {
    let (mode, until) = match (&r.retention.mode, &r.retention.retain_until_date) {
        (Some(m), Some(d)) => (Some(RetentionMode::parse(m)?), Some(date("RetainUntilDate", d)?)),
        (None, None) => (None, None),
        _ => return Err(invalid("Retention needs both Mode and RetainUntilDate, or neither to remove it")),
    };
    let bypass = r.bypass_governance_retention.unwrap_or(false);
    let hold = event_hold(r.retention.event_hold.as_deref(), r.retention.event_hold_duration.as_ref())?;
    store.put_object_retention(obj, mode, until, bypass, hold).await
}

/// S3AddObjectTagging (extension): the object's tags with these added (a key it has takes the new value).
async fn add_tags(store: &dyn ObjectStore, obj: &ObjectRef, add: &[Tag]) -> Result<(), StorageError> {
    let mut tags = store.get_object_tagging(obj).await?;
    for new in add {
        match tags.iter_mut().find(|old| old.key == new.key) {
            Some(old) => old.value = new.value.clone(),
            None => tags.push(new.clone()),
        }
    }
    if tags.len() > MAX_OBJECT_TAGS {
        return Err(StorageError::bad_request(format!(
            "Object tags cannot be greater than {MAX_OBJECT_TAGS}: adding the tags would give the object {} tags",
            tags.len()
        )));
    }
    store.put_object_tagging(obj, &tags).await?;
    Ok(())
}

fn invalid(message: impl Into<String>) -> StorageError {
    StorageError::invalid_argument(message)
}

/// An event hold of the job spec (`ON`/`OFF` and an optional duration in days or years).
fn event_hold(
    status: Option<&str>,
    duration: Option<&spec::EventHoldDuration>,
) -> Result<Option<EventHold>, StorageError> {
    let on = match status {
        None => return Ok(None),
        Some("ON") => true,
        Some("OFF") => false,
        Some(other) => return Err(invalid(format!("the event hold must be ON or OFF, got {other:?}"))),
    };
    let n = |v: i64| i32::try_from(v).map_err(|_| invalid(format!("event hold duration {v} is too large")));
    let duration = match duration.map(|d| (d.days, d.years)) {
        None => None,
        Some((Some(d), None)) => Some(EventHoldDuration::Days(n(d)?)),
        Some((None, Some(y))) => Some(EventHoldDuration::Years(n(y)?)),
        Some(_) => return Err(invalid("an event hold duration has exactly one of Days and Years")),
    };
    Ok(Some(EventHold { on, duration }))
}

/// An ISO 8601 timestamp of the job spec.
fn date(field: &str, s: &str) -> Result<i64, StorageError> {
    s3batch_core::time::parse_iso(s).ok_or_else(|| invalid(format!("{field} is not an ISO 8601 timestamp: {s:?}")))
}

// ---------------------------------------------------------------------------------------------------------------
// Delete

/// Delete the object (or the version named); with `noncurrent`, then every non-current version of the key too
/// (in a versioned bucket that includes the version the delete just made non-current, so only the new delete
/// marker remains).
async fn delete(store: &dyn ObjectStore, obj: &ObjectRef, noncurrent: bool) -> Result<(), StorageError> {
    store.delete_object(obj).await?;
    if !noncurrent {
        return Ok(());
    }
    let mut doomed = Vec::new();
    let (mut key_marker, mut version_marker) = (None, None);
    'pages: loop {
        let page = store.list_object_versions(&obj.bucket, &obj.key, key_marker, version_marker, 1000).await?;
        for v in page.versions {
            // The key itself sorts before every longer key with it as prefix: past it, we are done.
            if v.key != obj.key {
                break 'pages;
            }
            if !v.is_latest {
                doomed.push(v.version_id);
            }
        }
        match page.next_key_marker {
            Some(k) => (key_marker, version_marker) = (Some(k), page.next_version_marker),
            None => break,
        }
    }
    // The versions go out as DeleteObjects requests, as the batch path sends keys; the first failure fails the task.
    let doomed: Vec<DeleteKey> = doomed.into_iter().map(|v| DeleteKey::new(&obj.key, Some(v))).collect();
    for batch in doomed.chunks(MAX_DELETE_KEYS) {
        let answered = store.delete_objects(&obj.bucket, batch).await?;
        if answered.len() != batch.len() {
            return Err(short_answer(answered.len(), batch.len()));
        }
        for r in answered {
            r?;
        }
    }
    Ok(())
}

/// A batch delete that answered for fewer (or more) keys than it was given: transient, tried again.
pub fn short_answer(answered: usize, sent: usize) -> StorageError {
    StorageError::internal(format!("the store answered {answered} results for {sent} keys"))
}

/// Whether the tasks of a chunk of `op` go out as batch deletes: S3DeleteObject of the objects named (deleting
/// non-current versions too is a listing per key, and batches only those versions), not a dry run.
pub fn batches_deletes(op: &Operation, dry_run: bool) -> bool {
    matches!(op, Operation::S3DeleteObject(d) if d.delete_noncurrent_versions != Some(true)) && !dry_run
}

/// The DeleteObjects requests of a chunk's tasks: task indices grouped by bucket (in manifest order within a
/// group), cut into batches of at most `max_keys` keys (1 to [`MAX_DELETE_KEYS`]).
pub fn delete_batches(buckets: &[&str], max_keys: usize) -> Vec<Vec<usize>> {
    let max_keys = max_keys.clamp(1, MAX_DELETE_KEYS);
    let mut open: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut done = Vec::new();
    for (i, b) in buckets.iter().enumerate() {
        let at = match open.iter().position(|(ob, _)| ob == b) {
            Some(at) => at,
            None => {
                open.push((b, Vec::new()));
                open.len() - 1
            }
        };
        open[at].1.push(i);
        if open[at].1.len() == max_keys {
            done.push(std::mem::take(&mut open[at].1));
        }
    }
    done.extend(open.into_iter().map(|(_, v)| v).filter(|v| !v.is_empty()));
    done
}

/// Keys per DeleteObjects request for a chunk of `tasks` tasks: the chunk's share of the requests in flight
/// (`concurrency / chunks_in_flight`) kept busy, each request as large as that allows, at least
/// [`MIN_DELETE_BATCH`] keys and at most [`MAX_DELETE_KEYS`]. A store runs the keys of one request one after
/// another (Garage does), so 4 chunks of 1,000 keys as 4 requests would leave most of the concurrency unused.
pub fn delete_batch_size(tasks: usize, concurrency: usize, chunks_in_flight: usize) -> usize {
    let share = (concurrency / chunks_in_flight.max(1)).max(1);
    tasks.div_ceil(share).clamp(MIN_DELETE_BATCH, MAX_DELETE_KEYS)
}

/// Fewest keys a batch delete is cut into (a smaller one costs a request for too few keys).
pub const MIN_DELETE_BATCH: usize = 50;

// ---------------------------------------------------------------------------------------------------------------
// ACLs

fn permission(p: Option<&str>) -> Result<Permission, StorageError> {
    Permission::parse(p.ok_or_else(|| invalid("a grant has no Permission"))?)
}

fn grantee(g: Option<&spec::Grantee>) -> Result<Grantee, StorageError> {
    let g = g.ok_or_else(|| invalid("a grant has no Grantee"))?;
    let kind = g.type_identifier.as_deref().ok_or_else(|| invalid("a Grantee has no TypeIdentifier"))?;
    let id = g.identifier.as_deref().ok_or_else(|| invalid("a Grantee has no Identifier"))?;
    Grantee::from_type_identifier(kind, id, g.display_name.clone())
}

/// `S3PutObjectAcl`'s policy as the storage takes it: a canned ACL or the explicit grants.
fn acl(a: &spec::PutObjectAcl) -> Result<Acl, StorageError> {
    let p = a.access_control_policy.as_ref().ok_or_else(|| invalid("S3PutObjectAcl needs an AccessControlPolicy"))?;
    match (&p.canned_access_control_list, &p.access_control_list) {
        (Some(c), None) => Ok(Acl::Canned(c.clone())),
        (None, Some(list)) => {
            let grants = list
                .grants
                .iter()
                .flatten()
                .map(|g| Ok(Grant::new(grantee(g.grantee.as_ref())?, permission(g.permission.as_deref())?)))
                .collect::<Result<Vec<_>, StorageError>>()?;
            let owner =
                Owner { id: list.owner.id.clone().unwrap_or_default(), display_name: list.owner.display_name.clone() };
            Ok(Acl::Policy(AclPolicy { owner, grants }))
        }
        (Some(_), Some(_)) => {
            Err(invalid("AccessControlPolicy has both AccessControlList and CannedAccessControlList"))
        }
        (None, None) => Err(invalid("AccessControlPolicy needs AccessControlList or CannedAccessControlList")),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Copies

/// The `CopyRequest` of an `S3PutObjectCopy`, every field mapped.
pub fn copy_request(c: &PutObjectCopy, source: ObjectRef) -> Result<CopyRequest, StorageError> {
    let dest_bucket = arn::parse_bucket_arn(&c.target_resource)
        .ok_or_else(|| invalid(format!("TargetResource is not a bucket ARN: {:?}", c.target_resource)))?;
    let dest_key = c.destination_key(&source.key);
    let mut req = CopyRequest::new(source, dest_bucket, dest_key);
    let replace = match c.metadata_directive {
        Some(MetadataDirective::Replace) => true,
        Some(MetadataDirective::Copy) => false,
        None => c.new_object_metadata.is_some(),
    };
    if let Some(m) = &c.new_object_metadata {
        req.server_side_encryption = match m.sse_algorithm.as_deref() {
            None => None,
            Some("AES256") => Some("AES256".into()),
            Some("KMS") | Some("aws:kms") => Some("aws:kms".into()),
            Some(other) => return Err(invalid(format!("SSEAlgorithm must be AES256 or KMS, got {other:?}"))),
        };
    }
    if replace {
        req.replace_metadata = Some(metadata(c.new_object_metadata.as_ref()));
    }
    req.tags = c.new_object_tagging.clone();
    req.storage_class = c.storage_class.clone();
    req.canned_acl = c.canned_access_control_list.clone();
    set_grants(&mut req, c)?;
    req.if_modified_since =
        c.modified_since_constraint.as_deref().map(|d| date("ModifiedSinceConstraint", d)).transpose()?;
    req.if_unmodified_since =
        c.un_modified_since_constraint.as_deref().map(|d| date("UnModifiedSinceConstraint", d)).transpose()?;
    req.sse_kms_key_id = c.sse_aws_kms_key_id.clone();
    req.bucket_key_enabled = c.bucket_key_enabled;
    set_object_lock(&mut req, c)?;
    req.annotation_directive = match c.annotation_directive.as_deref() {
        None => None,
        Some("COPY") => Some(AnnotationDirective::Copy),
        Some("EXCLUDE") => Some(AnnotationDirective::Exclude),
        Some(other) => return Err(invalid(format!("AnnotationDirective must be COPY or EXCLUDE, got {other:?}"))),
    };
    req.checksum_algorithm = c.checksum_algorithm.clone();
    req.requester_pays = c.requester_pays.unwrap_or(false);
    req.website_redirect_location = c.redirect_location.clone();
    Ok(req)
}

/// The copy's `AccessControlGrants` as the request's `x-amz-grant-*` lists.
fn set_grants(req: &mut CopyRequest, c: &PutObjectCopy) -> Result<(), StorageError> {
    for g in c.access_control_grants.iter().flatten() {
        let who = grantee(g.grantee.as_ref())?.header_value();
        match permission(g.permission.as_deref())? {
            Permission::Read => req.grant_read.push(who),
            Permission::ReadAcp => req.grant_read_acp.push(who),
            Permission::WriteAcp => req.grant_write_acp.push(who),
            Permission::FullControl => req.grant_full_control.push(who),
            Permission::Write => return Err(invalid("the WRITE permission cannot be granted on an object")),
        }
    }
    Ok(())
}

/// The copy's object lock: retention mode and date (both or neither), legal hold and event hold.
fn set_object_lock(req: &mut CopyRequest, c: &PutObjectCopy) -> Result<(), StorageError> {
    req.object_lock_mode = c.object_lock_mode.as_deref().map(RetentionMode::parse).transpose()?;
    req.object_lock_retain_until =
        c.object_lock_retain_until_date.as_deref().map(|d| date("ObjectLockRetainUntilDate", d)).transpose()?;
    if req.object_lock_mode.is_some() != req.object_lock_retain_until.is_some() {
        return Err(invalid("ObjectLockMode and ObjectLockRetainUntilDate go together"));
    }
    req.object_lock_legal_hold = match c.object_lock_legal_hold_status.as_deref() {
        None => None,
        Some("ON") => Some(true),
        Some("OFF") => Some(false),
        Some(other) => return Err(invalid(format!("ObjectLockLegalHoldStatus must be ON or OFF, got {other:?}"))),
    };
    req.object_lock_event_hold =
        event_hold(c.object_lock_event_hold.as_deref(), c.object_lock_event_hold_duration.as_ref())?;
    Ok(())
}

async fn copy(c: &PutObjectCopy, router: &Router, source: ObjectRef) -> Result<(), StorageError> {
    let mut req = copy_request(c, source)?;
    merge_from_source(c, router, &mut req).await?;
    copy_anywhere(router, &req).await?;
    Ok(())
}

/// The merge extensions (COS's `Add` directives): the new metadata, tags or grants are merged into the source's.
async fn merge_from_source(c: &PutObjectCopy, router: &Router, req: &mut CopyRequest) -> Result<(), StorageError> {
    let on = |f: Option<bool>| f == Some(true);
    if !on(c.merge_metadata) && !on(c.merge_tagging) && !on(c.merge_access_control_grants) {
        return Ok(());
    }
    let store = router.store_for(&req.source.bucket)?;
    if on(c.merge_metadata) {
        let new = req.replace_metadata.take().unwrap_or_default();
        let mut m = store.head_object(&req.source).await?.metadata;
        m.content_type = new.content_type.or(m.content_type);
        m.cache_control = new.cache_control.or(m.cache_control);
        m.content_disposition = new.content_disposition.or(m.content_disposition);
        m.content_encoding = new.content_encoding.or(m.content_encoding);
        m.content_language = new.content_language.or(m.content_language);
        m.expires = new.expires.or(m.expires);
        m.user.extend(new.user);
        req.replace_metadata = Some(m);
    }
    if on(c.merge_tagging) {
        let mut tags = store.get_object_tagging(&req.source).await?;
        for t in req.tags.take().unwrap_or_default() {
            match tags.iter_mut().find(|x| x.key == t.key) {
                Some(x) => x.value = t.value,
                None => tags.push(t),
            }
        }
        if tags.len() > s3batch_core::spec::MAX_OBJECT_TAGS {
            return Err(StorageError::bad_request(format!(
                "Object tags cannot be greater than 10: the merged set has {}",
                tags.len()
            )));
        }
        req.tags = Some(tags);
    }
    if on(c.merge_access_control_grants) {
        for g in store.get_object_acl(&req.source).await?.grants {
            let who = g.grantee.header_value();
            let list = match g.permission {
                Permission::Read => &mut req.grant_read,
                Permission::ReadAcp => &mut req.grant_read_acp,
                Permission::WriteAcp => &mut req.grant_write_acp,
                Permission::FullControl => &mut req.grant_full_control,
                Permission::Write => continue,
            };
            if !list.contains(&who) {
                list.push(who);
            }
        }
    }
    Ok(())
}

/// A copy server-side when both buckets are on one backend, else streamed between the two.
async fn copy_anywhere(router: &Router, req: &CopyRequest) -> Result<WriteResult, StorageError> {
    let dest = router.store_for(&req.dest_bucket)?;
    if router.same_backend(&req.source.bucket, &req.dest_bucket) {
        return dest.copy_object(req).await;
    }
    let source = router.store_for(&req.source.bucket)?;
    cross_store_copy(source.as_ref(), dest.as_ref(), req, CROSS_STORE_PART_SIZE).await
}

/// Copy between two backends: GET the source once as a stream; an object up to `part_size` goes into one PUT,
/// a larger one into a multipart upload, one part at a time (at most one part in memory). The new object gets
/// the request's metadata (the source's under `COPY`), tags (the source's unless given) and attributes.
pub async fn cross_store_copy(
    source: &dyn ObjectStore,
    dest: &dyn ObjectStore,
    req: &CopyRequest,
    part_size: u64,
) -> Result<WriteResult, StorageError> {
    let got = source.get_object(&req.source, None).await?;
    let info = got.info;
    check_copy_conditions(req, &info)?;
    let tags = match &req.tags {
        Some(t) => t.clone(),
        None => source.get_object_tagging(&req.source).await?,
    };
    let (metadata, redirect) = match &req.replace_metadata {
        Some(m) => (m.clone(), None),
        None => (info.metadata.clone(), info.website_redirect_location.clone()),
    };
    let opts = req.new_object_options(metadata, tags, redirect);
    let mut body = got.body;
    let plain = MultipartOptions { metadata: opts.metadata.clone(), tags: opts.tags.clone(), ..Default::default() };
    if info.size <= part_size && opts == plain {
        // Small and nothing a PUT cannot carry: one request.
        let mut buf = BytesMut::with_capacity(info.size as usize);
        while let Some(chunk) = body.next().await {
            buf.extend_from_slice(&chunk?);
        }
        let put = PutOptions { metadata: opts.metadata, tags: opts.tags };
        return dest.put_object(&req.dest_bucket, &req.dest_key, PutBody::Bytes(buf.freeze()), &put).await;
    }
    let part_size = part_size.max(info.size.div_ceil(s3batch_storage::MAX_PARTS)).max(1) as usize;
    let upload = dest.create_multipart_upload(&req.dest_bucket, &req.dest_key, &opts).await?;
    let uploaded = upload_in_parts(dest, &upload, body, part_size, info.size).await;
    if uploaded.is_err()
        && let Err(e) = dest.abort_multipart_upload(&upload).await
    {
        tracing::warn!(error = %e, bucket = %upload.bucket, key = %upload.key, "aborting a multipart upload failed");
    }
    uploaded
}

/// The copy's `if-modified-since` / `if-unmodified-since` conditions, against the source as it was read.
fn check_copy_conditions(req: &CopyRequest, info: &ObjectInfo) -> Result<(), StorageError> {
    if let Some(t) = req.if_modified_since
        && info.last_modified <= t
    {
        return Err(precondition_failed("x-amz-copy-source-if-modified-since"));
    }
    if let Some(t) = req.if_unmodified_since
        && info.last_modified > t
    {
        return Err(precondition_failed("x-amz-copy-source-if-unmodified-since"));
    }
    Ok(())
}

/// Send `body` (`size` bytes) as the parts of `upload`, `part_size` bytes each (the last shorter, at least one
/// part), and complete the upload. A body that ends short of `size` is a connection error.
async fn upload_in_parts(
    dest: &dyn ObjectStore,
    upload: &MultipartUpload,
    mut body: BoxStream<'static, Result<Bytes, StorageError>>,
    part_size: usize,
    size: u64,
) -> Result<WriteResult, StorageError> {
    let mut parts: Vec<CompletedPart> = Vec::new();
    let mut buf = BytesMut::with_capacity(part_size.min(size as usize));
    let mut sent: u64 = 0;
    while let Some(chunk) = body.next().await {
        let mut chunk: Bytes = chunk?;
        while !chunk.is_empty() {
            let take = (part_size - buf.len()).min(chunk.len());
            buf.extend_from_slice(&chunk.split_to(take));
            if buf.len() == part_size {
                let n = parts.len() as i32 + 1;
                sent += buf.len() as u64;
                parts.push(dest.upload_part(upload, n, buf.split().freeze()).await?);
            }
        }
    }
    if !buf.is_empty() || parts.is_empty() {
        let n = parts.len() as i32 + 1;
        sent += buf.len() as u64;
        parts.push(dest.upload_part(upload, n, buf.split().freeze()).await?);
    }
    if sent != size {
        return Err(StorageError::connection(format!("the source body ended after {sent} of {size} bytes")));
    }
    dest.complete_multipart_upload(upload, &parts).await
}

fn precondition_failed(condition: &str) -> StorageError {
    StorageError::precondition_failed(format!(
        "At least one of the pre-conditions you specified did not hold: {condition}"
    ))
}

/// `S3ReplicateObject`: copy the object to the destination configured for its bucket, same key, keeping its
/// metadata, tags and storage class (streamed when the destination is on another backend).
async fn replicate(ctx: &OpCtx<'_>, obj: ObjectRef) -> Result<(), StorageError> {
    let dest_bucket = ctx.replication.get(&obj.bucket).ok_or_else(|| {
        StorageError::invalid_request(format!(
            "no replication destination is configured for bucket {} ([engine.replication])",
            obj.bucket
        ))
    })?;
    if *dest_bucket == obj.bucket {
        return Err(StorageError::invalid_request(format!(
            "bucket {} is configured to replicate to itself",
            obj.bucket
        )));
    }
    let source = ctx.router.store_for(&obj.bucket)?;
    let info = source.head_object(&obj).await?;
    let key = obj.key.clone();
    let mut req = CopyRequest::new(obj, dest_bucket.clone(), key);
    req.storage_class = info.storage_class;
    copy_anywhere(ctx.router, &req).await?;
    Ok(())
}

/// `S3UpdateObjectEncryption`: copy the object onto itself with the SSE-KMS key, keeping its metadata, tags,
/// storage class and object lock settings, then put its ACL back (when the backend has ACLs).
async fn update_encryption(
    store: &dyn ObjectStore,
    obj: ObjectRef,
    u: &spec::UpdateObjectEncryption,
) -> Result<(), StorageError> {
    let kms = u
        .object_encryption
        .as_ref()
        .and_then(|e| e.sse_kms.as_ref())
        .ok_or_else(|| invalid("S3UpdateObjectEncryption needs ObjectEncryption.SSE-KMS"))?;
    let acl = match store.get_object_acl(&obj).await {
        Ok(p) => Some(p),
        Err(e) if e.code == "NotImplemented" => None,
        Err(e) => return Err(e),
    };
    let info = store.head_object(&obj).await?;
    let (bucket, key) = (obj.bucket.clone(), obj.key.clone());
    if obj.version_id.is_some() {
        // The copy makes a new current version: of a non-current version that would bring old content back.
        let current = store.head_object(&ObjectRef::new(&bucket, &key)).await?;
        if current.version_id != obj.version_id {
            return Err(StorageError::invalid_request(
                "S3UpdateObjectEncryption of a non-current version is not supported: s3batch re-encrypts by copying \
                 the object onto itself, which would make that version current again",
            ));
        }
    }
    let mut req = CopyRequest::new(obj, bucket.clone(), key.clone());
    req.server_side_encryption = Some("aws:kms".into());
    req.sse_kms_key_id = Some(kms.kms_key_arn.clone());
    req.bucket_key_enabled = kms.bucket_key_enabled;
    req.storage_class = info.storage_class;
    if info.object_lock_mode.is_some() && info.object_lock_retain_until.is_some() {
        req.object_lock_mode = info.object_lock_mode;
        req.object_lock_retain_until = info.object_lock_retain_until;
    }
    if info.object_lock_legal_hold == Some(true) {
        req.object_lock_legal_hold = Some(true);
    }
    let written = store.copy_object(&req).await?;
    if let Some(policy) = acl {
        let new = ObjectRef::new(bucket, key).with_version(written.version_id);
        store.put_object_acl(&new, &Acl::Policy(policy)).await?;
    }
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
        expires: m.http_expires_date.as_deref().and_then(s3batch_core::time::parse_iso),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Dry run

/// A dry run of `op` on one object: check what the real run would need and change nothing. The object must exist
/// (HEAD, with the manifest's version); a copy's target bucket must be reachable (a one-key listing); the spec's
/// settings are checked as the real run checks them. The ResultMessage says what the task would do; an error is
/// the one the real run would hit first.
pub async fn dry_run(op: &Operation, ctx: &OpCtx<'_>, task: &ManifestTask) -> Result<String, StorageError> {
    let router = ctx.router;
    let obj = ObjectRef::new(&task.bucket, &task.key).with_version(task.version_id.clone());
    if let Operation::LambdaInvoke(l) = op {
        if !ctx.functions.is_configured(&l.function_arn) {
            return Err(StorageError::function_not_found(format!(
                "no [[engine.functions]] entry for {}",
                l.function_arn
            )));
        }
        return Ok(format!("DryRun: would invoke {}", l.function_arn));
    }
    // The settings first: a spec the real run would refuse fails every task the same way.
    match op {
        Operation::S3PutObjectAcl(a) => drop(acl(a)?),
        Operation::S3InitiateRestoreObject(r) => {
            r.glacier_job_tier.as_deref().map(RestoreTier::parse).transpose()?;
        }
        Operation::S3PutObjectRetention(r) => {
            if let Some(m) = &r.retention.mode {
                RetentionMode::parse(m)?;
            }
            if let Some(d) = &r.retention.retain_until_date {
                date("RetainUntilDate", d)?;
            }
        }
        Operation::S3ReplicateObject(_) if !ctx.replication.contains_key(&obj.bucket) => {
            return Err(StorageError::invalid_request(format!(
                "no replication destination is configured for bucket {} ([engine.replication])",
                obj.bucket
            )));
        }
        _ => {}
    }
    let info = router.store_for(&obj.bucket)?.head_object(&obj).await?;
    let what = match op {
        Operation::S3PutObjectCopy(c) => {
            let req = copy_request(c, obj.clone())?;
            reachable(router, &req.dest_bucket, &req.dest_key).await?;
            format!("would copy {} bytes to s3://{}/{}", info.size, req.dest_bucket, req.dest_key)
        }
        Operation::S3ReplicateObject(_) => {
            let dest = &ctx.replication[&obj.bucket];
            reachable(router, dest, &obj.key).await?;
            format!("would replicate {} bytes to s3://{dest}/{}", info.size, obj.key)
        }
        Operation::S3DeleteObject(d) if d.delete_noncurrent_versions == Some(true) => {
            format!("would delete the object ({} bytes) and its non-current versions", info.size)
        }
        Operation::S3DeleteObject(_) => format!("would delete the object ({} bytes)", info.size),
        Operation::S3ComputeObjectChecksum(_) => format!("would read {} bytes to compute a checksum", info.size),
        other => format!("would run {} on the object ({} bytes)", other.name(), info.size),
    };
    match &task.version_id {
        Some(v) => Ok(format!("DryRun: {what} (version {v})")),
        None => Ok(format!("DryRun: {what}")),
    }
}

/// A bucket answers a one-key listing (it exists and we may use it).
async fn reachable(router: &Router, bucket: &str, key: &str) -> Result<(), StorageError> {
    router.store_for(bucket)?.list_objects(bucket, key, None, 1).await.map(drop)
}
