//! Rules the local and memory backends share, so that both answer exactly as S3 would.

use std::ops::Range;

use crate::{
    CompletedPart, CopyRequest, Grant, Grantee, Metadata, Millis, MultipartOptions, Owner, Permission, Result,
    Retention, RetentionMode, StorageError, Tag,
};

/// S3's limit on a key, in UTF-8 bytes.
pub(crate) const MAX_KEY_BYTES: usize = 1024;

/// S3's limits on object tags.
const MAX_TAGS: usize = 10;
const MAX_TAG_KEY_CHARS: usize = 128;
const MAX_TAG_VALUE_CHARS: usize = 256;

/// The largest page a listing returns, as S3.
pub(crate) const MAX_LIST_KEYS: usize = 1000;

/// ETag of the empty object.
pub(crate) const EMPTY_ETAG: &str = "d41d8cd98f00b204e9800998ecf8427e";

pub(crate) fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// A key S3 would refuse: empty (`InvalidArgument`) or longer than 1024 bytes (`KeyTooLongError`).
pub(crate) fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(StorageError::new("InvalidArgument", 400, "An object key must not be empty."));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(StorageError::new(
            "KeyTooLongError",
            400,
            format!("Your key is too long: {} bytes, the limit is {MAX_KEY_BYTES}.", key.len()),
        ));
    }
    Ok(())
}

/// A tag set S3 would refuse gets `InvalidTag`, 400.
pub(crate) fn check_tags(tags: &[Tag]) -> Result<()> {
    let invalid = |m: String| Err(StorageError::new("InvalidTag", 400, m));
    if tags.len() > MAX_TAGS {
        return invalid(format!("Object tags cannot be greater than {MAX_TAGS} (got {}).", tags.len()));
    }
    for (i, t) in tags.iter().enumerate() {
        if t.key.is_empty() || t.key.chars().count() > MAX_TAG_KEY_CHARS {
            return invalid(format!("The TagKey you have provided is invalid: '{}'", t.key));
        }
        if !t.key.chars().all(tag_char) {
            return invalid(format!("The TagKey you have provided is invalid: '{}'", t.key));
        }
        if !t.value.chars().all(tag_char) {
            return invalid(format!("The TagValue you have provided is invalid: '{}'", t.value));
        }
        if t.key.starts_with("aws:") {
            return invalid(format!("Your TagKey cannot be prefixed with aws: '{}'", t.key));
        }
        if t.value.chars().count() > MAX_TAG_VALUE_CHARS {
            return invalid(format!("The TagValue you have provided is invalid: '{}'", t.value));
        }
        if tags[..i].iter().any(|o| o.key == t.key) {
            return invalid("Cannot provide multiple Tags with the same key".into());
        }
    }
    Ok(())
}

/// What a tag key or value may hold: letters, digits, white space and `_ . : / = + - @`.
fn tag_char(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c)
}

/// Metadata as S3 keeps it: user metadata names are HTTP header names, which S3 answers in lower case.
pub(crate) fn stored_metadata(m: &Metadata) -> Metadata {
    let mut m = m.clone();
    if m.user.keys().any(|k| k.bytes().any(|b| b.is_ascii_uppercase())) {
        m.user = m.user.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    }
    m
}

/// The bytes `start..end` a ranged GET of an object of `size` bytes returns: `end` is clamped to the size;
/// `start` at or beyond the size is `InvalidRange` (416); an empty range (`end <= start`) is `InvalidArgument`.
pub(crate) fn resolve_range(range: Option<&Range<u64>>, size: u64) -> Result<Range<u64>> {
    let Some(r) = range else { return Ok(0..size) };
    check_range(r)?;
    if r.start >= size {
        return Err(StorageError::new(
            "InvalidRange",
            416,
            format!(
                "The requested range is not satisfiable: bytes {}-{} of an object of {size} bytes.",
                r.start,
                r.end - 1
            ),
        ));
    }
    Ok(r.start..r.end.min(size))
}

/// A range that cannot be written as `bytes=start-(end-1)`.
pub(crate) fn check_range(r: &Range<u64>) -> Result<()> {
    if r.end <= r.start {
        return Err(StorageError::new(
            "InvalidArgument",
            400,
            format!(
                "Empty byte range {}..{}: the end is exclusive and must be greater than the start.",
                r.start, r.end
            ),
        ));
    }
    Ok(())
}

/// `x-amz-copy-source-if-modified-since` / `-if-unmodified-since`, compared at whole seconds like the HTTP dates
/// S3 compares.
pub(crate) fn check_copy_preconditions(req: &CopyRequest, source_last_modified: Millis) -> Result<()> {
    let secs = source_last_modified.div_euclid(1000);
    if let Some(t) = req.if_modified_since
        && secs <= t.div_euclid(1000)
    {
        return Err(precondition_failed("x-amz-copy-source-If-Modified-Since"));
    }
    if let Some(t) = req.if_unmodified_since
        && secs > t.div_euclid(1000)
    {
        return Err(precondition_failed("x-amz-copy-source-If-Unmodified-Since"));
    }
    Ok(())
}

fn precondition_failed(condition: &str) -> StorageError {
    StorageError::new(
        "PreconditionFailed",
        412,
        format!("At least one of the pre-conditions you specified did not hold: {condition}"),
    )
}

/// S3 refuses a copy of an object onto itself that changes nothing (`InvalidRequest`, 400): neither metadata,
/// storage class, website redirect location nor encryption (nor the checksum algorithm).
pub(crate) fn check_copy_changes_something(req: &CopyRequest) -> Result<()> {
    if req.source.bucket == req.dest_bucket
        && req.source.key == req.dest_key
        && req.replace_metadata.is_none()
        && req.storage_class.is_none()
        && req.website_redirect_location.is_none()
        && req.server_side_encryption.is_none()
        && req.sse_kms_key_id.is_none()
        && req.checksum_algorithm.is_none()
    {
        return Err(StorageError::new(
            "InvalidRequest",
            400,
            "This copy request is illegal because it is trying to copy an object to itself without changing the \
             object's metadata, storage class, website redirect location or encryption attributes.",
        ));
    }
    Ok(())
}

/// What a non-S3 backend can keep about an object beyond its bytes, metadata, tags and storage class.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Capabilities {
    pub acl: bool,
    pub encryption: bool,
    pub object_lock: bool,
    pub checksums: bool,
    pub event_hold: bool,
}

/// Checks every non-S3 backend makes before a copy, in S3's order.
pub(crate) fn check_copy_request(req: &CopyRequest, backend: &str, caps: Capabilities) -> Result<()> {
    let opts = req.new_object_options(Metadata::default(), Vec::new(), None);
    check_supported(&opts, backend, caps)?;
    check_key(&req.source.key)?;
    check_key(&req.dest_key)?;
    if let Some(tags) = &req.tags {
        check_tags(tags)?;
    }
    check_new_object(&opts)?;
    check_copy_changes_something(req)
}

/// `NotImplemented` for an attribute of a new object the backend cannot keep.
pub(crate) fn check_supported(o: &MultipartOptions, backend: &str, caps: Capabilities) -> Result<()> {
    if !caps.acl && (o.canned_acl.is_some() || o.has_grants()) {
        return Err(StorageError::not_implemented("ACLs", backend));
    }
    if !caps.encryption && (o.server_side_encryption.is_some() || o.sse_kms_key_id.is_some()) {
        return Err(StorageError::not_implemented("server-side encryption", backend));
    }
    if !caps.object_lock
        && (o.object_lock_mode.is_some() || o.object_lock_retain_until.is_some() || o.object_lock_legal_hold.is_some())
    {
        return Err(StorageError::not_implemented("object lock", backend));
    }
    if !caps.event_hold && o.object_lock_event_hold.is_some() {
        return Err(StorageError::not_implemented("object lock event holds", backend));
    }
    if !caps.checksums && o.checksum_algorithm.is_some() {
        return Err(StorageError::not_implemented("additional checksums", backend));
    }
    Ok(())
}

/// The attributes of a new object (copy or multipart upload) as S3 checks them.
pub(crate) fn check_new_object(o: &MultipartOptions) -> Result<()> {
    check_tags(&o.tags)?;
    if let Some(class) = &o.storage_class
        && !STORAGE_CLASSES.contains(&class.as_str())
    {
        return Err(StorageError::new(
            "InvalidStorageClass",
            400,
            format!("The storage class you specified is not valid: {class:?}"),
        ));
    }
    if o.canned_acl.is_some() && o.has_grants() {
        return Err(StorageError::new(
            "InvalidRequest",
            400,
            "Specifying both Canned ACLs and Header Grants is not allowed",
        ));
    }
    if let Some(acl) = &o.canned_acl {
        check_canned_acl(acl)?;
    }
    option_grants(o)?;
    match o.server_side_encryption.as_deref() {
        None | Some("aws:kms") | Some("aws:kms:dsse") => {}
        Some("AES256") if o.sse_kms_key_id.is_none() => {}
        Some("AES256") => {
            return Err(StorageError::new(
                "InvalidArgument",
                400,
                "Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms",
            ));
        }
        Some(other) => {
            return Err(StorageError::new(
                "InvalidArgument",
                400,
                format!("The encryption method specified is not supported: {other:?}"),
            ));
        }
    }
    check_lock_headers(o.object_lock_mode, o.object_lock_retain_until)?;
    if let Some(a) = &o.checksum_algorithm {
        check_checksum_algorithm(a)?;
    }
    Ok(())
}

/// `x-amz-object-lock-mode` and `-retain-until-date` go together, and the date lies ahead.
fn check_lock_headers(mode: Option<RetentionMode>, until: Option<Millis>) -> Result<()> {
    match (mode, until) {
        (None, None) => Ok(()),
        (Some(_), Some(t)) if t <= now_millis() => Err(past_retain_until()),
        (Some(_), Some(_)) => Ok(()),
        _ => Err(StorageError::new(
            "InvalidArgument",
            400,
            "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied",
        )),
    }
}

fn past_retain_until() -> StorageError {
    StorageError::new("InvalidArgument", 400, "The retain until date must be in the future!")
}

/// The checksum algorithms S3 knows (`x-amz-checksum-algorithm`).
pub(crate) const CHECKSUM_ALGORITHMS: &[&str] =
    &["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256", "SHA512", "MD5", "XXHASH64", "XXHASH3", "XXHASH128"];

fn check_checksum_algorithm(a: &str) -> Result<()> {
    if CHECKSUM_ALGORITHMS.contains(&a) {
        Ok(())
    } else {
        Err(StorageError::new(
            "InvalidRequest",
            400,
            format!("Value for x-amz-checksum-algorithm header is invalid: {a:?}"),
        ))
    }
}

fn check_canned_acl(acl: &str) -> Result<()> {
    if crate::CANNED_ACLS.contains(&acl) {
        Ok(())
    } else {
        Err(StorageError::new("InvalidArgument", 400, format!("Invalid canned ACL: {acl:?}")))
    }
}

/// The grants of a canned ACL, for an object owned by `owner` in a bucket the same owner owns. `aws-exec-read`
/// gives only the owner's grant here (S3 adds a read grant for Amazon EC2).
pub(crate) fn canned_grants(acl: &str, owner: &Owner) -> Result<Vec<Grant>> {
    check_canned_acl(acl)?;
    let owner = Grantee::CanonicalUser { id: owner.id.clone(), display_name: owner.display_name.clone() };
    let mut g = vec![Grant::new(owner, Permission::FullControl)];
    let group = |uri: &str, p| Grant::new(Grantee::Group(uri.to_string()), p);
    match acl {
        "public-read" => g.push(group(crate::ALL_USERS, Permission::Read)),
        "public-read-write" => {
            g.push(group(crate::ALL_USERS, Permission::Read));
            g.push(group(crate::ALL_USERS, Permission::Write));
        }
        "authenticated-read" => g.push(group(crate::AUTHENTICATED_USERS, Permission::Read)),
        "log-delivery-write" => {
            g.push(group(crate::LOG_DELIVERY, Permission::ReadAcp));
            g.push(group(crate::LOG_DELIVERY, Permission::Write));
        }
        _ => {}
    }
    Ok(g)
}

/// The grants of the `x-amz-grant-*` lists of new-object options.
pub(crate) fn option_grants(o: &MultipartOptions) -> Result<Vec<Grant>> {
    let mut out = Vec::new();
    for (list, p) in [
        (&o.grant_read, Permission::Read),
        (&o.grant_read_acp, Permission::ReadAcp),
        (&o.grant_write_acp, Permission::WriteAcp),
        (&o.grant_full_control, Permission::FullControl),
    ] {
        for g in list {
            out.push(Grant::new(Grantee::parse_header_value(g)?, p));
        }
    }
    Ok(out)
}

/// The ACL grants a new object gets: the canned ACL's, the explicit ones, or `private`.
pub(crate) fn new_object_grants(o: &MultipartOptions, owner: &Owner) -> Result<Vec<Grant>> {
    if o.has_grants() { option_grants(o) } else { canned_grants(o.canned_acl.as_deref().unwrap_or("private"), owner) }
}

/// A retention as PutObjectRetention may set it over `current`: S3's rules. Mode and date go together and the
/// date lies ahead; an active compliance retention may only be extended; an active governance retention may be
/// extended (or made compliance), anything else needs `bypass_governance`.
pub(crate) fn check_retention_change(current: Retention, new: Retention, bypass_governance: bool) -> Result<()> {
    let now = now_millis();
    match (new.mode, new.retain_until) {
        (Some(_), Some(t)) if t <= now => return Err(past_retain_until()),
        (Some(_), Some(_)) | (None, None) => {}
        _ => {
            return Err(StorageError::new(
                "MalformedXML",
                400,
                "The XML you provided was not well-formed or did not validate against our published schema: a \
                 retention needs both Mode and RetainUntilDate",
            ));
        }
    }
    let (Some(mode), Some(until)) = (current.mode, current.retain_until) else { return Ok(()) };
    if until <= now {
        return Ok(());
    }
    let extends = match (new.mode, new.retain_until) {
        (Some(m), Some(t)) => t >= until && (m == mode || m == RetentionMode::Compliance),
        _ => false,
    };
    if extends || (mode == RetentionMode::Governance && bypass_governance) {
        return Ok(());
    }
    Err(locked())
}

/// Whether an object lock protects an object from deletion now.
pub(crate) fn is_protected(retention: Retention, legal_hold: bool) -> bool {
    legal_hold || retention.retain_until.is_some_and(|t| t > now_millis())
}

/// `AccessDenied`, as S3 answers for what object lock forbids.
pub(crate) fn locked() -> StorageError {
    StorageError::new("AccessDenied", 403, "Access Denied because object protected by object lock.")
}

/// The storage classes whose objects must be restored before they can be read.
pub(crate) fn is_archived(storage_class: Option<&str>) -> bool {
    matches!(storage_class, Some("GLACIER" | "DEEP_ARCHIVE"))
}

/// The bytes of an archived object can be read only while a restored copy exists (`InvalidObjectState`, 403).
pub(crate) fn check_readable(storage_class: Option<&str>, restore_expiry: Option<Millis>) -> Result<()> {
    if is_archived(storage_class) && restore_expiry.is_none_or(|t| t <= now_millis()) {
        return Err(StorageError::new(
            "InvalidObjectState",
            403,
            "The operation is not valid for the object's storage class",
        ));
    }
    Ok(())
}

/// A RestoreObject as S3 checks it; answers the expiry of the restored copy: `days` after now, rounded up to the
/// next midnight UTC. Objects not in an archive class are `InvalidObjectState` (403).
pub(crate) fn restore_expiry(storage_class: Option<&str>, days: Option<i32>) -> Result<Millis> {
    if !is_archived(storage_class) {
        return Err(StorageError::new(
            "InvalidObjectState",
            403,
            "Restore is not allowed for the object's current storage class",
        ));
    }
    let days = match days {
        Some(d) if d >= 1 => d,
        _ => {
            return Err(StorageError::new(
                "InvalidArgument",
                400,
                "Days must be a positive number for a restore from the GLACIER or DEEP_ARCHIVE storage class",
            ));
        }
    };
    const DAY: Millis = 86_400_000;
    let t = now_millis() + Millis::from(days) * DAY;
    Ok((t.div_euclid(DAY) + 1) * DAY)
}

/// A part number S3 takes: 1 to 10,000.
pub(crate) fn check_part_number(n: i32) -> Result<()> {
    if (1..=crate::MAX_PARTS as i32).contains(&n) {
        Ok(())
    } else {
        Err(StorageError::new(
            "InvalidArgument",
            400,
            format!("Part number must be an integer between 1 and 10000, inclusive (got {n})"),
        ))
    }
}

/// `NoSuchUpload`, 404.
pub(crate) fn no_such_upload() -> StorageError {
    StorageError::new(
        "NoSuchUpload",
        404,
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
    )
}

/// The bytes `start..end` of an UploadPartCopy from a source of `size` bytes: no clamping, as S3.
pub(crate) fn part_copy_range(range: Option<&Range<u64>>, size: u64) -> Result<Range<u64>> {
    let Some(r) = range else { return Ok(0..size) };
    if r.end <= r.start || r.end > size {
        return Err(StorageError::new(
            "InvalidArgument",
            400,
            format!("Range specified is not valid for source object of size: {size}"),
        ));
    }
    Ok(r.clone())
}

/// The parts a CompleteMultipartUpload lists, against the parts uploaded (`(part number, etag, size)`, any
/// order): ascending, each uploaded with that ETag, every part but the last at least 5 MiB. Answers the indexes
/// into `uploaded` in order.
pub(crate) fn check_complete(parts: &[CompletedPart], uploaded: &[(i32, String, u64)]) -> Result<Vec<usize>> {
    if parts.is_empty() {
        return Err(StorageError::new(
            "MalformedXML",
            400,
            "The XML you provided was not well-formed or did not validate against our published schema: no parts",
        ));
    }
    if parts.windows(2).any(|w| w[1].part_number <= w[0].part_number) {
        return Err(StorageError::new(
            "InvalidPartOrder",
            400,
            "The list of parts was not in ascending order. The parts list must be specified in order by part number.",
        ));
    }
    let mut out = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        let etag = p.etag.trim_matches('"');
        let idx = uploaded.iter().position(|(n, e, _)| *n == p.part_number && e == etag).ok_or_else(|| {
            StorageError::new(
                "InvalidPart",
                400,
                format!("One or more of the specified parts could not be found (part {}). The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.", p.part_number),
            )
        })?;
        if i + 1 < parts.len() && uploaded[idx].2 < crate::MIN_PART_SIZE {
            return Err(StorageError::new(
                "EntityTooSmall",
                400,
                "Your proposed upload is smaller than the minimum allowed size",
            ));
        }
        out.push(idx);
    }
    Ok(out)
}

/// The ETag of a multipart object: the MD5 of the parts' binary MD5s, `-` and the part count.
pub(crate) fn multipart_etag<'a>(part_etags: impl IntoIterator<Item = &'a str>) -> String {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    let mut n = 0;
    for e in part_etags {
        h.update(hex::decode(e).unwrap_or_default());
        n += 1;
    }
    format!("{}-{n}", hex::encode(h.finalize()))
}

/// The storage classes S3 knows.
const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "OUTPOSTS",
    "GLACIER_IR",
    "SNOW",
    "EXPRESS_ONEZONE",
    "FSX_OPENZFS",
];

/// `STANDARD` is what S3 omits from HEAD: keep `None` for it.
pub(crate) fn normalize_storage_class(c: Option<&str>) -> Option<String> {
    match c {
        None | Some("") | Some("STANDARD") => None,
        Some(c) => Some(c.to_string()),
    }
}

/// What a listing shows: S3 always names the class there.
pub(crate) fn listed_storage_class(c: Option<&str>) -> Option<String> {
    Some(c.unwrap_or("STANDARD").to_string())
}

/// Page size of a listing: at least 1, at most 1000.
pub(crate) fn page_size(max_keys: usize) -> usize {
    max_keys.clamp(1, MAX_LIST_KEYS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AnnotationDirective, EventHold, EventHoldDuration, ObjectRef};

    #[test]
    fn ranges() {
        assert_eq!(resolve_range(None, 10).unwrap(), 0..10);
        assert_eq!(resolve_range(Some(&(2..5)), 10).unwrap(), 2..5);
        assert_eq!(resolve_range(Some(&(2..50)), 10).unwrap(), 2..10);
        assert_eq!(resolve_range(Some(&(10..50)), 10).unwrap_err().code, "InvalidRange");
        assert_eq!(resolve_range(Some(&(10..50)), 10).unwrap_err().http_status, 416);
        assert_eq!(resolve_range(Some(&(5..5)), 10).unwrap_err().code, "InvalidArgument");
    }

    #[test]
    fn tags() {
        assert!(check_tags(&[Tag::new("a", ""), Tag::new("b", "x")]).is_ok());
        assert_eq!(check_tags(&[Tag::new("a", "1"), Tag::new("a", "2")]).unwrap_err().code, "InvalidTag");
        let many: Vec<Tag> = (0..11).map(|i| Tag::new(format!("k{i}"), "v")).collect();
        assert_eq!(check_tags(&many).unwrap_err().code, "InvalidTag");
        assert_eq!(check_tags(&[Tag::new("", "v")]).unwrap_err().code, "InvalidTag");
        assert_eq!(check_tags(&[Tag::new("aws:x", "v")]).unwrap_err().code, "InvalidTag");
        assert!(check_tags(&[Tag::new("ü ml", "日本 a+b=c/d e:f@g-h_i.j")]).is_ok());
        assert_eq!(check_tags(&[Tag::new("k", "a&b")]).unwrap_err().code, "InvalidTag");
        assert_eq!(check_tags(&[Tag::new("k?", "v")]).unwrap_err().code, "InvalidTag");
        assert_eq!(check_tags(&[Tag::new("k".repeat(129), "v")]).unwrap_err().code, "InvalidTag");
    }

    #[test]
    fn preconditions_compare_whole_seconds() {
        let mut r = CopyRequest::new(ObjectRef::new("b", "k"), "b", "k2");
        r.if_modified_since = Some(10_999);
        assert_eq!(check_copy_preconditions(&r, 10_500).unwrap_err().http_status, 412);
        assert!(check_copy_preconditions(&r, 11_000).is_ok());
        r.if_modified_since = None;
        r.if_unmodified_since = Some(10_000);
        assert!(check_copy_preconditions(&r, 10_999).is_ok());
        assert_eq!(check_copy_preconditions(&r, 11_000).unwrap_err().code, "PreconditionFailed");
    }

    const ALL: Capabilities =
        Capabilities { acl: true, encryption: true, object_lock: true, checksums: true, event_hold: false };
    const NONE: Capabilities =
        Capabilities { acl: false, encryption: false, object_lock: false, checksums: false, event_hold: false };

    #[test]
    fn copy_requests() {
        let mut r = CopyRequest::new(ObjectRef::new("b", "k"), "b", "k2");
        assert!(check_copy_request(&r, "memory", NONE).is_ok());
        r.storage_class = Some("GLACIER_IR".into());
        assert!(check_copy_request(&r, "memory", NONE).is_ok());
        r.storage_class = Some("glacier".into());
        assert_eq!(check_copy_request(&r, "memory", ALL).unwrap_err().code, "InvalidStorageClass");
        r.storage_class = None;
        r.canned_acl = Some("private".into());
        assert_eq!(check_copy_request(&r, "local", NONE).unwrap_err().code, "NotImplemented");
        assert!(check_copy_request(&r, "memory", ALL).is_ok());
        r.grant_read = vec!["id=\"abc\"".into()];
        assert_eq!(check_copy_request(&r, "memory", ALL).unwrap_err().code, "InvalidRequest");
        r.canned_acl = Some("nope".into());
        r.grant_read.clear();
        assert_eq!(check_copy_request(&r, "memory", ALL).unwrap_err().code, "InvalidArgument");
        r.canned_acl = None;
        r.grant_write_acp = vec!["who=\"x\"".into()];
        assert_eq!(check_copy_request(&r, "memory", ALL).unwrap_err().code, "InvalidArgument");
        r.grant_write_acp.clear();

        r.server_side_encryption = Some("AES256".into());
        assert_eq!(check_copy_request(&r, "local", NONE).unwrap_err().code, "NotImplemented");
        assert!(check_copy_request(&r, "memory", ALL).is_ok());
        r.sse_kms_key_id = Some("key".into());
        assert_eq!(check_copy_request(&r, "memory", ALL).unwrap_err().code, "InvalidArgument");
        r.server_side_encryption = Some("rot13".into());
        assert_eq!(check_copy_request(&r, "memory", ALL).unwrap_err().code, "InvalidArgument");
        r.server_side_encryption = None;
        assert!(check_copy_request(&r, "memory", ALL).is_ok());
        r.sse_kms_key_id = None;

        r.object_lock_mode = Some(RetentionMode::Governance);
        assert_eq!(check_copy_request(&r, "local", NONE).unwrap_err().code, "NotImplemented");
        assert_eq!(check_copy_request(&r, "memory", ALL).unwrap_err().code, "InvalidArgument");
        r.object_lock_retain_until = Some(now_millis() - 1000);
        assert_eq!(check_copy_request(&r, "memory", ALL).unwrap_err().code, "InvalidArgument");
        r.object_lock_retain_until = Some(now_millis() + 60_000);
        assert!(check_copy_request(&r, "memory", ALL).is_ok());
        r.object_lock_mode = None;
        r.object_lock_retain_until = None;
        r.object_lock_legal_hold = Some(false);
        assert_eq!(check_copy_request(&r, "local", NONE).unwrap_err().code, "NotImplemented");
        r.object_lock_legal_hold = None;
        r.object_lock_event_hold = Some(EventHold { on: true, duration: Some(EventHoldDuration::Days(3)) });
        assert_eq!(check_copy_request(&r, "memory", ALL).unwrap_err().code, "NotImplemented");
        r.object_lock_event_hold = None;
        r.annotation_directive = Some(AnnotationDirective::Exclude);
        assert!(check_copy_request(&r, "local", NONE).is_ok(), "no annotations to exclude");
        r.annotation_directive = None;

        r.checksum_algorithm = Some("CRC32".into());
        assert_eq!(check_copy_request(&r, "local", NONE).unwrap_err().code, "NotImplemented");
        assert!(check_copy_request(&r, "memory", ALL).is_ok());
        r.checksum_algorithm = Some("crc32".into());
        assert_eq!(check_copy_request(&r, "memory", ALL).unwrap_err().code, "InvalidRequest");

        let mut r = CopyRequest::new(ObjectRef::new("b", "k"), "b", "k");
        assert_eq!(check_copy_request(&r, "memory", ALL).unwrap_err().code, "InvalidRequest");
        r.server_side_encryption = Some("AES256".into());
        assert!(check_copy_request(&r, "memory", ALL).is_ok(), "an encryption change is a change");
    }

    #[test]
    fn retention_changes() {
        let now = now_millis();
        let gov = |t| Retention { mode: Some(RetentionMode::Governance), retain_until: Some(t) };
        let comp = |t| Retention { mode: Some(RetentionMode::Compliance), retain_until: Some(t) };
        let none = Retention::default();
        let (soon, later) = (now + 60_000, now + 120_000);
        assert!(check_retention_change(none, gov(soon), false).is_ok());
        assert_eq!(check_retention_change(none, gov(now - 1), false).unwrap_err().code, "InvalidArgument");
        let half = Retention { mode: Some(RetentionMode::Governance), retain_until: None };
        assert_eq!(check_retention_change(none, half, false).unwrap_err().code, "MalformedXML");
        assert!(check_retention_change(gov(soon), gov(later), false).is_ok());
        assert!(check_retention_change(gov(soon), comp(later), false).is_ok());
        assert_eq!(check_retention_change(gov(later), gov(soon), false).unwrap_err().http_status, 403);
        assert!(check_retention_change(gov(later), gov(soon), true).is_ok());
        assert_eq!(check_retention_change(gov(soon), none, false).unwrap_err().code, "AccessDenied");
        assert!(check_retention_change(gov(soon), none, true).is_ok());
        assert!(check_retention_change(comp(soon), comp(later), true).is_ok());
        assert_eq!(check_retention_change(comp(soon), none, true).unwrap_err().code, "AccessDenied");
        assert_eq!(check_retention_change(comp(soon), gov(later), true).unwrap_err().code, "AccessDenied");
        // An expired retention protects nothing.
        assert!(check_retention_change(comp(now - 1), none, false).is_ok());
        assert!(is_protected(gov(soon), false));
        assert!(!is_protected(comp(now - 1), false));
        assert!(is_protected(none, true));
    }

    #[test]
    fn restores() {
        assert_eq!(restore_expiry(None, Some(1)).unwrap_err().code, "InvalidObjectState");
        assert_eq!(restore_expiry(Some("GLACIER_IR"), Some(1)).unwrap_err().http_status, 403);
        assert_eq!(restore_expiry(Some("GLACIER"), None).unwrap_err().code, "InvalidArgument");
        assert_eq!(restore_expiry(Some("GLACIER"), Some(0)).unwrap_err().code, "InvalidArgument");
        let t = restore_expiry(Some("DEEP_ARCHIVE"), Some(2)).unwrap();
        assert_eq!(t % 86_400_000, 0, "midnight UTC");
        assert!(t > now_millis() + 2 * 86_400_000 - 1 && t <= now_millis() + 3 * 86_400_000);
        assert_eq!(check_readable(Some("GLACIER"), None).unwrap_err().code, "InvalidObjectState");
        assert_eq!(check_readable(Some("GLACIER"), Some(now_millis() - 1)).unwrap_err().code, "InvalidObjectState");
        assert!(check_readable(Some("GLACIER"), Some(t)).is_ok());
        assert!(check_readable(Some("STANDARD_IA"), None).is_ok());
        let h = crate::RestoreStatus::done_header(t);
        let st = crate::RestoreStatus::parse(&h).unwrap();
        assert_eq!((st.ongoing, st.expiry), (false, Some(t)), "{h}");
        let st = crate::RestoreStatus::parse("ongoing-request=\"true\"").unwrap();
        assert_eq!((st.ongoing, st.expiry), (true, None));
        assert_eq!(crate::RestoreStatus::parse("garbage"), None);
    }

    #[test]
    fn grants() {
        let owner = Owner { id: "o".into(), display_name: None };
        let g = canned_grants("public-read", &owner).unwrap();
        assert_eq!(g[0], Grant::new(Grantee::canonical("o"), Permission::FullControl));
        assert_eq!(g[1], Grant::new(Grantee::Group(crate::ALL_USERS.into()), Permission::Read));
        assert_eq!(canned_grants("private", &owner).unwrap().len(), 1);
        assert_eq!(canned_grants("public", &owner).unwrap_err().code, "InvalidArgument");
        for s in ["id=\"abc\"", " emailAddress=\"a@b.c\" ", "uri=http://x/y"] {
            let g = Grantee::parse_header_value(s).unwrap();
            assert_eq!(Grantee::parse_header_value(&g.header_value()).unwrap(), g);
        }
        assert_eq!(Grantee::parse_header_value("id=\"\"").unwrap_err().code, "InvalidArgument");
        assert_eq!(Grantee::parse_header_value("nothing").unwrap_err().code, "InvalidArgument");
        assert_eq!(
            Grantee::from_type_identifier("uri", crate::ALL_USERS, None).unwrap().header_value(),
            format!("uri=\"{}\"", crate::ALL_USERS)
        );
        assert_eq!(Grantee::from_type_identifier("arn", "x", None).unwrap_err().code, "InvalidArgument");
        assert_eq!(Permission::parse("READ_ACP").unwrap(), Permission::ReadAcp);
        assert!(Permission::parse("read").is_err());
    }

    #[test]
    fn multipart_rules() {
        assert!(check_part_number(1).is_ok() && check_part_number(10_000).is_ok());
        assert_eq!(check_part_number(0).unwrap_err().code, "InvalidArgument");
        assert_eq!(check_part_number(10_001).unwrap_err().code, "InvalidArgument");
        assert_eq!(part_copy_range(None, 10).unwrap(), 0..10);
        assert_eq!(part_copy_range(Some(&(2..10)), 10).unwrap(), 2..10);
        assert_eq!(part_copy_range(Some(&(2..11)), 10).unwrap_err().code, "InvalidArgument");
        let big = crate::MIN_PART_SIZE;
        let up = vec![(2, "b".to_string(), 1), (1, "a".to_string(), big), (3, "c".to_string(), 1)];
        let part = |n, e: &str| CompletedPart { part_number: n, etag: e.into(), checksum: None };
        assert_eq!(check_complete(&[part(1, "a"), part(2, "\"b\"")], &up).unwrap(), vec![1, 0]);
        assert_eq!(check_complete(&[], &up).unwrap_err().code, "MalformedXML");
        assert_eq!(check_complete(&[part(2, "b"), part(1, "a")], &up).unwrap_err().code, "InvalidPartOrder");
        assert_eq!(check_complete(&[part(1, "x")], &up).unwrap_err().code, "InvalidPart");
        assert_eq!(check_complete(&[part(2, "b"), part(3, "c")], &up).unwrap_err().code, "EntityTooSmall");
        let e1 = crate::md5_hex(b"one");
        let e2 = crate::md5_hex(b"two");
        let mut cat = hex::decode(&e1).unwrap();
        cat.extend(hex::decode(&e2).unwrap());
        assert_eq!(multipart_etag([e1.as_str(), e2.as_str()]), format!("{}-2", crate::md5_hex(&cat)));
    }

    #[test]
    fn keys() {
        assert!(check_key("a").is_ok());
        assert_eq!(check_key("").unwrap_err().code, "InvalidArgument");
        assert!(check_key(&"k".repeat(1024)).is_ok());
        assert_eq!(check_key(&"k".repeat(1025)).unwrap_err().code, "KeyTooLongError");
    }
}
