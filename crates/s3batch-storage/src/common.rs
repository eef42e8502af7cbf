//! Rules the local and memory backends share, so that both answer exactly as S3 would.

use std::ops::Range;

use crate::{CopyRequest, Metadata, Millis, Result, StorageError, Tag};

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

/// S3 refuses a copy of an object onto itself that changes nothing (`InvalidRequest`, 400).
pub(crate) fn check_copy_changes_something(req: &CopyRequest) -> Result<()> {
    if req.source.bucket == req.dest_bucket
        && req.source.key == req.dest_key
        && req.replace_metadata.is_none()
        && req.storage_class.is_none()
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

/// Checks every non-S3 backend makes before a copy, in S3's order.
pub(crate) fn check_copy_request(req: &CopyRequest, backend: &str) -> Result<()> {
    if req.canned_acl.is_some() {
        return Err(StorageError::not_implemented("ACLs", backend));
    }
    check_key(&req.source.key)?;
    check_key(&req.dest_key)?;
    if let Some(tags) = &req.tags {
        check_tags(tags)?;
    }
    if let Some(class) = &req.storage_class
        && !STORAGE_CLASSES.contains(&class.as_str())
    {
        return Err(StorageError::new(
            "InvalidStorageClass",
            400,
            format!("The storage class you specified is not valid: {class:?}"),
        ));
    }
    check_copy_changes_something(req)
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
    use crate::ObjectRef;

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

    #[test]
    fn copy_requests() {
        let mut r = CopyRequest::new(ObjectRef::new("b", "k"), "b", "k2");
        assert!(check_copy_request(&r, "memory").is_ok());
        r.storage_class = Some("GLACIER_IR".into());
        assert!(check_copy_request(&r, "memory").is_ok());
        r.storage_class = Some("glacier".into());
        assert_eq!(check_copy_request(&r, "memory").unwrap_err().code, "InvalidStorageClass");
        r.storage_class = None;
        r.canned_acl = Some("private".into());
        assert_eq!(check_copy_request(&r, "memory").unwrap_err().code, "NotImplemented");
        let r = CopyRequest::new(ObjectRef::new("b", "k"), "b", "k");
        assert_eq!(check_copy_request(&r, "memory").unwrap_err().code, "InvalidRequest");
    }

    #[test]
    fn keys() {
        assert!(check_key("a").is_ok());
        assert_eq!(check_key("").unwrap_err().code, "InvalidArgument");
        assert!(check_key(&"k".repeat(1024)).is_ok());
        assert_eq!(check_key(&"k".repeat(1025)).unwrap_err().code, "KeyTooLongError");
    }
}
