//! The backend-neutral test suite: what every [`ObjectStore`] must do, written once and run against the local and
//! memory backends (unit tests) and against S3 through a real moto server (`tests/s3_moto.rs`).
//!
//! Each check takes a fresh or shared store, creates its own buckets (`conf-<check>`), and panics with a message
//! naming the backend when the store misbehaves. [`run_all`] runs them one after the other.
//!
//! This is test support: it is compiled only for this crate's tests and with the `conformance` feature.

use std::collections::BTreeMap;
use std::fmt::Debug;

use bytes::Bytes;

use crate::{
    ALL_USERS, AUTHENTICATED_USERS, Acl, AclPolicy, CompletedPart, CopyRequest, DeleteKey, Grant, Grantee,
    MAX_DELETE_KEYS, MIN_PART_SIZE, Metadata, MultipartOptions, ObjectInfo, ObjectRef, ObjectStore, Permission,
    PutBody, PutOptions, RestoreTier, Result, Retention, RetentionMode, StorageError, Tag, WriteResult, md5_hex,
};

/// The key every backend must take byte for byte.
pub const WEIRD_KEY: &str = "dir/sub/a b+c%d#e?f ü.txt";

/// More keys that must round-trip unchanged (including the same letter composed and decomposed).
pub const ODD_KEYS: &[&str] = &[
    "a%2Fb",
    "100%",
    "+plus+",
    "x?versionId=1&y=2",
    "日本語/ファイル.txt",
    "#hash#",
    "sp  ace ",
    "punct~!$'()*,;=@:[]",
    "nfc-\u{fc}.txt",
    "nfd-u\u{308}.txt",
];

/// What a backend is known not to do, so that the suite can skip exactly that and nothing else. Where a backend
/// does not do something by design (`acl: false`, …), the suite checks that it answers `NotImplemented` (501).
#[derive(Debug, Clone)]
pub struct Profile {
    /// `x-amz-copy-source-if-(un)modified-since` is enforced (moto 5 ignores these headers).
    pub copy_preconditions: bool,
    /// DeleteObjectTagging of a missing key answers `NoSuchKey` (moto 5 answers a 500 without a body).
    pub delete_tagging_of_missing_key: bool,
    /// PutObjectTagging accepts an empty tag set (moto 5 answers a 500 without a body).
    pub put_empty_tag_set: bool,
    /// The buckets the suite names `conf-list-versions` and `conf-object-lock` keep every version and make delete
    /// markers (S3 with versioning on); else one version a key (memory, local).
    pub versioning: bool,
    /// ACLs: PutObjectAcl, GetObjectAcl, ACLs on copies and uploads.
    pub acl: bool,
    /// `emailAddress` grantees read back as such (moto 5 turns them into groups).
    pub acl_email_grantee: bool,
    /// Several grantees of one permission read back (moto 5 keeps only the first of an `x-amz-grant-*` header).
    pub acl_multiple_grantees: bool,
    /// Object lock: retention and legal hold, on objects, copies and uploads (`conf-object-lock` must have it on).
    pub object_lock: bool,
    /// Invalid requests are refused as S3 refuses them (moto 5 takes many): retention changes that object lock
    /// forbids, an AES256 copy naming a KMS key, part lists out of order, part-copy ranges beyond the source,
    /// part number 0.
    pub strict: bool,
    /// GetObjectRetention is served (moto 5 has none: the suite reads retention with HEAD).
    pub get_object_retention: bool,
    /// Server-side encryption asked for on copies and uploads, reported by HEAD.
    pub encryption: bool,
    /// Additional checksums asked for on copies, reported by listings.
    pub checksums: bool,
}

impl Profile {
    /// Everything checked: what S3 does.
    pub fn full() -> Profile {
        Profile {
            copy_preconditions: true,
            delete_tagging_of_missing_key: true,
            put_empty_tag_set: true,
            versioning: true,
            acl: true,
            acl_email_grantee: true,
            acl_multiple_grantees: true,
            object_lock: true,
            strict: true,
            get_object_retention: true,
            encryption: true,
            checksums: true,
        }
    }

    /// The memory backend: all of S3 but versions.
    pub fn memory() -> Profile {
        Profile { versioning: false, ..Profile::full() }
    }

    /// The local backend: no versions, ACLs, object lock, encryption or additional checksums.
    pub fn local() -> Profile {
        Profile {
            versioning: false,
            acl: false,
            acl_email_grantee: false,
            acl_multiple_grantees: false,
            object_lock: false,
            get_object_retention: false,
            encryption: false,
            checksums: false,
            ..Profile::full()
        }
    }

    /// What moto 5 does not do as S3 does.
    pub fn moto() -> Profile {
        Profile {
            copy_preconditions: false,
            delete_tagging_of_missing_key: false,
            put_empty_tag_set: false,
            acl_email_grantee: false,
            acl_multiple_grantees: false,
            strict: false,
            get_object_retention: false,
            ..Profile::full()
        }
    }
}

/// Every check, in order.
pub async fn run_all(s: &dyn ObjectStore, p: &Profile) {
    buckets(s, p).await;
    put_head_get(s, p).await;
    odd_keys(s, p).await;
    ranges(s, p).await;
    empty_object(s, p).await;
    missing_keys(s, p).await;
    overwrite(s, p).await;
    tagging(s, p).await;
    copy(s, p).await;
    copy_in_place(s, p).await;
    copy_preconditions(s, p).await;
    listing(s, p).await;
    delete(s, p).await;
    delete_objects(s, p).await;
    put_file(s, p).await;
    versions(s, p).await;
    list_versions(s, p).await;
    acl(s, p).await;
    object_lock(s, p).await;
    restore(s, p).await;
    encryption(s, p).await;
    checksums(s, p).await;
    multipart(s, p).await;
}

/// One `#[tokio::test]` per check, in a `conformance` module, for a factory `async fn() -> (store, guard)` and a
/// [`Profile`].
#[cfg(test)]
macro_rules! conformance_tests {
    ($make:ident, $profile:expr) => {
        $crate::conformance::conformance_tests!(@each $make, $profile,
            buckets, put_head_get, odd_keys, ranges, empty_object, missing_keys, overwrite, tagging, copy,
            copy_in_place, copy_preconditions, listing, delete, delete_objects, put_file, versions, list_versions, acl,
            object_lock, restore, encryption, checksums, multipart);
    };
    (@each $make:ident, $profile:expr, $($name:ident),*) => {
        mod conformance_suite {
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _guard) = super::$make().await;
                    $crate::conformance::$name(&store, &$profile).await;
                }
            )*
        }
    };
}
#[cfg(test)]
pub(crate) use conformance_tests;

// ---------------------------------------------------------------------------------------------------------------
// Helpers

fn body(data: &[u8]) -> PutBody {
    PutBody::Bytes(Bytes::copy_from_slice(data))
}

/// Deterministic pseudo-random bytes.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as u8
        })
        .collect()
}

#[track_caller]
fn ok<T>(s: &dyn ObjectStore, r: Result<T>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("[{}] {what}: unexpected error {e:?}", s.kind()),
    }
}

#[track_caller]
fn fails<T: Debug>(s: &dyn ObjectStore, r: Result<T>, code: &str, status: u16, what: &str) -> StorageError {
    match r {
        Ok(v) => panic!("[{}] {what}: expected {code} ({status}), got Ok({v:?})", s.kind()),
        Err(e) => {
            assert_eq!((e.code.as_str(), e.http_status), (code, status), "[{}] {what}: {e:?}", s.kind());
            assert_eq!(
                e.transient,
                crate::is_transient(code, status),
                "[{}] {what}: transient flag of {e:?}",
                s.kind()
            );
            e
        }
    }
}

async fn bucket(s: &dyn ObjectStore, name: &str) -> String {
    ok(s, s.create_bucket(name).await, &format!("create_bucket {name}"));
    name.to_string()
}

async fn put(s: &dyn ObjectStore, bucket: &str, key: &str, data: &[u8], opts: &PutOptions) -> WriteResult {
    let w = ok(s, s.put_object(bucket, key, body(data), opts).await, &format!("put {bucket}/{key}"));
    if let Some(etag) = &w.etag {
        assert_eq!(etag, &md5_hex(data), "[{}] etag answered by put {key}", s.kind());
    }
    w
}

async fn head(s: &dyn ObjectStore, bucket: &str, key: &str) -> ObjectInfo {
    ok(s, s.head_object(&ObjectRef::new(bucket, key)).await, &format!("head {bucket}/{key}"))
}

async fn read(s: &dyn ObjectStore, bucket: &str, key: &str) -> Bytes {
    let g = ok(s, s.get_object(&ObjectRef::new(bucket, key), None).await, &format!("get {bucket}/{key}"));
    ok(s, g.bytes().await, &format!("read body of {bucket}/{key}"))
}

async fn tags_of(s: &dyn ObjectStore, bucket: &str, key: &str) -> Vec<Tag> {
    sorted(ok(s, s.get_object_tagging(&ObjectRef::new(bucket, key)).await, &format!("get tags of {key}")))
}

fn sorted(mut tags: Vec<Tag>) -> Vec<Tag> {
    tags.sort_by(|a, b| a.key.cmp(&b.key));
    tags
}

fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
    pairs.iter().map(|(k, v)| Tag::new(*k, *v)).collect()
}

/// Rich metadata: every system field and some user metadata.
pub fn rich_metadata() -> Metadata {
    Metadata {
        content_type: Some("text/plain; charset=utf-8".into()),
        cache_control: Some("max-age=60".into()),
        content_disposition: Some("attachment; filename=\"report.txt\"".into()),
        content_encoding: Some("identity".into()),
        content_language: Some("en-GB".into()),
        user: BTreeMap::from([("color".to_string(), "blue".to_string()), ("two-words".to_string(), "x y".to_string())]),
        // 2030-03-17T17:46:40Z: whole seconds, as an HTTP date carries them.
        expires: Some(1_900_000_000_000),
    }
}

fn other_metadata() -> Metadata {
    Metadata {
        content_type: Some("application/json".into()),
        user: BTreeMap::from([("replaced".to_string(), "yes".to_string())]),
        ..Default::default()
    }
}

/// Metadata as expected, allowing for the content type S3 sets when none was given.
#[track_caller]
fn assert_metadata(s: &dyn ObjectStore, actual: &Metadata, expected: &Metadata, what: &str) {
    let mut a = actual.clone();
    if expected.content_type.is_none()
        && matches!(a.content_type.as_deref(), Some("binary/octet-stream" | "application/octet-stream"))
    {
        a.content_type = None;
    }
    assert_eq!(&a, expected, "[{}] metadata of {what}", s.kind());
}

#[track_caller]
fn assert_recent(s: &dyn ObjectStore, ms: i64, what: &str) {
    let now = chrono::Utc::now().timestamp_millis();
    assert!((now - ms).abs() < 10 * 60 * 1000, "[{}] last_modified of {what} is {ms}, now is {now}", s.kind());
}

// ---------------------------------------------------------------------------------------------------------------
// Checks

/// Buckets: creation is idempotent; every call on a missing bucket is `NoSuchBucket`.
pub async fn buckets(s: &dyn ObjectStore, _p: &Profile) {
    let b = bucket(s, "conf-buckets").await;
    ok(s, s.create_bucket(&b).await, "create_bucket again");
    let page = ok(s, s.list_objects(&b, "", None, 10).await, "list empty bucket");
    assert!(page.objects.is_empty() && page.next_token.is_none(), "[{}] empty bucket lists {page:?}", s.kind());

    let missing = "conf-no-such-bucket";
    let obj = ObjectRef::new(missing, "k");
    fails(s, s.head_object(&obj).await, "NoSuchBucket", 404, "head in missing bucket");
    fails(s, s.get_object(&obj, None).await.map(|g| g.info), "NoSuchBucket", 404, "get in missing bucket");
    fails(s, s.put_object(missing, "k", body(b"x"), &PutOptions::default()).await, "NoSuchBucket", 404, "put");
    fails(s, s.list_objects(missing, "", None, 10).await, "NoSuchBucket", 404, "list missing bucket");
    fails(s, s.get_object_tagging(&obj).await, "NoSuchBucket", 404, "get tags in missing bucket");
    fails(s, s.put_object_tagging(&obj, &tags(&[("a", "b")])).await, "NoSuchBucket", 404, "put tags");
    fails(s, s.delete_object(&obj).await, "NoSuchBucket", 404, "delete in missing bucket");

    put(s, &b, "src", b"data", &PutOptions::default()).await;
    let c = CopyRequest::new(ObjectRef::new(&b, "src"), missing, "dst");
    fails(s, s.copy_object(&c).await, "NoSuchBucket", 404, "copy to missing bucket");
    let c = CopyRequest::new(obj.clone(), &b, "dst");
    fails(s, s.copy_object(&c).await, "NoSuchBucket", 404, "copy from missing bucket");
}

/// PUT, HEAD, GET with metadata and tags on a key full of characters that need encoding.
pub async fn put_head_get(s: &dyn ObjectStore, _p: &Profile) {
    let b = bucket(s, "conf-put-head-get").await;
    let data = b"hello, conformance".to_vec();
    // Tags may hold letters, digits, spaces and `_ . : / = + - @` (S3's rule; moto allows ASCII letters only).
    let t = tags(&[("project", "s3 batch"), ("path", "a+b=c/d e:f@g-h_i.j")]);
    let opts = PutOptions { metadata: rich_metadata(), tags: t.clone() };
    let w = put(s, &b, WEIRD_KEY, &data, &opts).await;

    let info = head(s, &b, WEIRD_KEY).await;
    assert_eq!(info.size, data.len() as u64, "[{}] size", s.kind());
    assert_eq!(info.etag, md5_hex(&data), "[{}] etag", s.kind());
    assert!(!info.etag.contains('"'), "[{}] etag must be unquoted", s.kind());
    assert_metadata(s, &info.metadata, &rich_metadata(), WEIRD_KEY);
    assert_recent(s, info.last_modified, WEIRD_KEY);
    if w.version_id.is_some() {
        assert_eq!(info.version_id, w.version_id, "[{}] version of head", s.kind());
    }

    let g = ok(s, s.get_object(&ObjectRef::new(&b, WEIRD_KEY), None).await, "get");
    assert_eq!(g.info.size, info.size, "[{}] size of get", s.kind());
    assert_eq!(g.info.etag, info.etag, "[{}] etag of get", s.kind());
    assert_metadata(s, &g.info.metadata, &rich_metadata(), "get");
    assert_eq!(ok(s, g.bytes().await, "body").as_ref(), data.as_slice(), "[{}] body", s.kind());
    assert_eq!(tags_of(s, &b, WEIRD_KEY).await, sorted(t), "[{}] tags", s.kind());

    // User metadata names come back in lower case, as HTTP header names.
    let mixed =
        Metadata { user: BTreeMap::from([("Mixed-Case".to_string(), "Value".to_string())]), ..Default::default() };
    put(s, &b, "mixed", b"m", &PutOptions { metadata: mixed, ..Default::default() }).await;
    let lower =
        Metadata { user: BTreeMap::from([("mixed-case".to_string(), "Value".to_string())]), ..Default::default() };
    assert_metadata(s, &head(s, &b, "mixed").await.metadata, &lower, "mixed-case metadata");

    let page = ok(s, s.list_objects(&b, "dir/sub/", None, 10).await, "list");
    assert_eq!(page.objects.len(), 1, "[{}] listing {page:?}", s.kind());
    let o = &page.objects[0];
    assert_eq!((o.key.as_str(), o.size, o.etag.as_str()), (WEIRD_KEY, data.len() as u64, info.etag.as_str()));
    assert_recent(s, o.last_modified, "listed object");
}

/// Keys with reserved, percent, unicode and look-alike characters round-trip through every call.
pub async fn odd_keys(s: &dyn ObjectStore, _p: &Profile) {
    let b = bucket(s, "conf-odd-keys").await;
    for (i, key) in ODD_KEYS.iter().enumerate() {
        let data = format!("object {i}: {key}");
        put(s, &b, key, data.as_bytes(), &PutOptions { tags: tags(&[("k", "v")]), ..Default::default() }).await;
        assert_eq!(read(s, &b, key).await.as_ref(), data.as_bytes(), "[{}] body of {key:?}", s.kind());
        assert_eq!(tags_of(s, &b, key).await, tags(&[("k", "v")]), "[{}] tags of {key:?}", s.kind());
        let copy = format!("copies/{key}");
        ok(s, s.copy_object(&CopyRequest::new(ObjectRef::new(&b, *key), &b, &copy)).await, &format!("copy {key:?}"));
        assert_eq!(read(s, &b, &copy).await.as_ref(), data.as_bytes(), "[{}] body of copy of {key:?}", s.kind());
    }
    let page = ok(s, s.list_objects(&b, "", None, 1000).await, "list odd keys");
    let listed: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
    let mut expected: Vec<String> = ODD_KEYS.iter().map(|k| k.to_string()).collect();
    expected.extend(ODD_KEYS.iter().map(|k| format!("copies/{k}")));
    expected.sort();
    assert_eq!(listed, expected, "[{}] odd keys listed", s.kind());
    for key in ODD_KEYS {
        ok(s, s.delete_object(&ObjectRef::new(&b, *key)).await, "delete odd key");
        fails(s, s.head_object(&ObjectRef::new(&b, *key)).await, "NoSuchKey", 404, "head after delete");
    }
}

/// Ranged GETs: within, across 64 KiB boundaries, clamped at the end, unsatisfiable.
pub async fn ranges(s: &dyn ObjectStore, _p: &Profile) {
    let b = bucket(s, "conf-ranges").await;
    let data = pattern(200_000, 7);
    put(s, &b, "big.bin", &data, &PutOptions::default()).await;
    let obj = ObjectRef::new(&b, "big.bin");
    for r in [0..1, 0..200_000, 3..8, 65_530..131_080, 65_536..65_537, 199_990..1_000_000, 0..u64::MAX] {
        let g = ok(s, s.get_object(&obj, Some(r.clone())).await, &format!("get range {r:?}"));
        assert_eq!(g.info.size, 200_000, "[{}] size in ranged get {r:?}", s.kind());
        assert_eq!(g.info.etag, md5_hex(&data), "[{}] etag in ranged get", s.kind());
        let got = ok(s, g.bytes().await, "ranged body");
        let end = r.end.min(200_000) as usize;
        assert_eq!(got.as_ref(), &data[r.start as usize..end], "[{}] bytes of range {r:?}", s.kind());
    }
    fails(s, s.get_object(&obj, Some(200_000..200_010)).await.map(|g| g.info), "InvalidRange", 416, "at end");
    fails(s, s.get_object(&obj, Some(500_000..500_001)).await.map(|g| g.info), "InvalidRange", 416, "beyond end");
    fails(s, s.get_object(&obj, Some(10..10)).await.map(|g| g.info), "InvalidArgument", 400, "empty range");
    // The whole object, streamed.
    assert_eq!(read(s, &b, "big.bin").await.as_ref(), data.as_slice(), "[{}] whole big object", s.kind());
}

/// The empty object.
pub async fn empty_object(s: &dyn ObjectStore, _p: &Profile) {
    let b = bucket(s, "conf-empty").await;
    put(s, &b, "empty", b"", &PutOptions::default()).await;
    let info = head(s, &b, "empty").await;
    assert_eq!((info.size, info.etag.as_str()), (0, md5_hex(b"").as_str()), "[{}] empty object", s.kind());
    assert!(read(s, &b, "empty").await.is_empty());
}

/// Every call on a missing key is `NoSuchKey` (404, permanent), except DELETE, which succeeds.
pub async fn missing_keys(s: &dyn ObjectStore, p: &Profile) {
    let b = bucket(s, "conf-missing-keys").await;
    put(s, &b, "nope/other", b"x", &PutOptions::default()).await;
    let obj = ObjectRef::new(&b, "nope/x y");
    let e = fails(s, s.head_object(&obj).await, "NoSuchKey", 404, "head missing");
    assert!(!e.transient);
    fails(s, s.get_object(&obj, None).await.map(|g| g.info), "NoSuchKey", 404, "get missing");
    fails(s, s.get_object(&obj, Some(0..1)).await.map(|g| g.info), "NoSuchKey", 404, "ranged get missing");
    fails(s, s.get_object_tagging(&obj).await, "NoSuchKey", 404, "get tags missing");
    fails(s, s.put_object_tagging(&obj, &tags(&[("a", "b")])).await, "NoSuchKey", 404, "put tags missing");
    if p.delete_tagging_of_missing_key {
        fails(s, s.delete_object_tagging(&obj).await, "NoSuchKey", 404, "delete tags missing");
    }
    fails(s, s.copy_object(&CopyRequest::new(obj.clone(), &b, "dst")).await, "NoSuchKey", 404, "copy missing");
    // A prefix of an existing key is not an object either.
    fails(s, s.head_object(&ObjectRef::new(&b, "nope")).await, "NoSuchKey", 404, "head of a prefix");
    ok(s, s.delete_object(&obj).await, "delete missing key");
    ok(s, s.delete_object(&ObjectRef::new(&b, "nope")).await, "delete a prefix");
    assert_eq!(read(s, &b, "nope/other").await.as_ref(), b"x");
}

/// A second PUT replaces content, metadata and tags.
pub async fn overwrite(s: &dyn ObjectStore, _p: &Profile) {
    let b = bucket(s, "conf-overwrite").await;
    put(s, &b, "k", b"first", &PutOptions { metadata: rich_metadata(), tags: tags(&[("a", "1")]) }).await;
    put(s, &b, "k", b"second version", &PutOptions::default()).await;
    let info = head(s, &b, "k").await;
    assert_eq!((info.size, info.etag), (14, md5_hex(b"second version")), "[{}] overwritten", s.kind());
    assert_metadata(s, &info.metadata, &Metadata::default(), "overwritten object");
    assert_eq!(tags_of(s, &b, "k").await, vec![], "[{}] tags after overwrite", s.kind());
    assert_eq!(read(s, &b, "k").await.as_ref(), b"second version");
}

/// Object tagging: put replaces the set, delete empties it, invalid sets are refused.
pub async fn tagging(s: &dyn ObjectStore, p: &Profile) {
    let b = bucket(s, "conf-tagging").await;
    put(s, &b, WEIRD_KEY, b"x", &PutOptions::default()).await;
    let obj = ObjectRef::new(&b, WEIRD_KEY);
    assert_eq!(tags_of(s, &b, WEIRD_KEY).await, vec![]);
    let t1 = tags(&[("b", "2"), ("a", "1"), ("with space", "and = + / : @ - _ .")]);
    ok(s, s.put_object_tagging(&obj, &t1).await, "put tags");
    assert_eq!(tags_of(s, &b, WEIRD_KEY).await, sorted(t1), "[{}] tags", s.kind());
    let t2 = tags(&[("only", "")]);
    ok(s, s.put_object_tagging(&obj, &t2).await, "replace tags");
    assert_eq!(tags_of(s, &b, WEIRD_KEY).await, t2, "[{}] replaced tags", s.kind());
    ok(s, s.delete_object_tagging(&obj).await, "delete tags");
    assert_eq!(tags_of(s, &b, WEIRD_KEY).await, vec![], "[{}] deleted tags", s.kind());
    if p.put_empty_tag_set {
        ok(s, s.put_object_tagging(&obj, &t2).await, "put tags again");
        ok(s, s.put_object_tagging(&obj, &[]).await, "put empty tag set");
        assert_eq!(tags_of(s, &b, WEIRD_KEY).await, vec![], "[{}] empty tag set", s.kind());
    }
    let ten: Vec<Tag> = (0..10).map(|i| Tag::new(format!("k{i}"), "v")).collect();
    ok(s, s.put_object_tagging(&obj, &ten).await, "put 10 tags");
    assert_eq!(tags_of(s, &b, WEIRD_KEY).await.len(), 10);
    let eleven: Vec<Tag> = (0..11).map(|i| Tag::new(format!("k{i}"), "v")).collect();
    // S3 answers InvalidTag; moto BadRequest: both 400 and permanent.
    let e = s.put_object_tagging(&obj, &eleven).await.expect_err("11 tags must be refused");
    assert_eq!((e.http_status, e.transient), (400, false), "[{}] 11 tags: {e:?}", s.kind());
    assert_eq!(tags_of(s, &b, WEIRD_KEY).await.len(), 10, "[{}] refused tags changed nothing", s.kind());
    // Tagging does not touch content or metadata.
    assert_eq!(head(s, &b, WEIRD_KEY).await.etag, md5_hex(b"x"));
}

/// Server-side copy: COPY and REPLACE of metadata and tags, storage class, across buckets.
pub async fn copy(s: &dyn ObjectStore, _p: &Profile) {
    let src_b = bucket(s, "conf-copy-src").await;
    let dst_b = bucket(s, "conf-copy-dst").await;
    let data = pattern(100_000, 3);
    let src_tags = tags(&[("origin", "source"), ("x", "y z")]);
    put(s, &src_b, WEIRD_KEY, &data, &PutOptions { metadata: rich_metadata(), tags: src_tags.clone() }).await;
    let src = ObjectRef::new(&src_b, WEIRD_KEY);

    // COPY / COPY.
    let w = ok(s, s.copy_object(&CopyRequest::new(src.clone(), &dst_b, WEIRD_KEY)).await, "copy");
    if let Some(etag) = &w.etag {
        assert_eq!(etag, &md5_hex(&data), "[{}] etag answered by copy", s.kind());
    }
    let info = head(s, &dst_b, WEIRD_KEY).await;
    assert_eq!((info.size, info.etag.as_str()), (100_000, md5_hex(&data).as_str()), "[{}] copy", s.kind());
    assert_metadata(s, &info.metadata, &rich_metadata(), "copy with COPY");
    assert_eq!(tags_of(s, &dst_b, WEIRD_KEY).await, sorted(src_tags.clone()), "[{}] copied tags", s.kind());
    assert_eq!(read(s, &dst_b, WEIRD_KEY).await.as_ref(), data.as_slice(), "[{}] copied bytes", s.kind());
    assert_eq!(info.storage_class, None, "[{}] class of a plain copy", s.kind());

    // REPLACE / REPLACE.
    let mut c = CopyRequest::new(src.clone(), &dst_b, "replaced");
    c.replace_metadata = Some(other_metadata());
    c.tags = Some(tags(&[("new", "tag")]));
    ok(s, s.copy_object(&c).await, "copy with REPLACE");
    assert_metadata(s, &head(s, &dst_b, "replaced").await.metadata, &other_metadata(), "copy with REPLACE");
    assert_eq!(tags_of(s, &dst_b, "replaced").await, tags(&[("new", "tag")]), "[{}] replaced tags", s.kind());

    // Metadata COPY, tags replaced by none.
    let mut c = CopyRequest::new(src.clone(), &dst_b, "untagged");
    c.tags = Some(vec![]);
    ok(s, s.copy_object(&c).await, "copy without tags");
    assert_metadata(s, &head(s, &dst_b, "untagged").await.metadata, &rich_metadata(), "copy without tags");
    assert_eq!(tags_of(s, &dst_b, "untagged").await, vec![], "[{}] tags replaced by none", s.kind());

    // Metadata replaced by none, tags copied.
    let mut c = CopyRequest::new(src.clone(), &dst_b, "bare");
    c.replace_metadata = Some(Metadata::default());
    ok(s, s.copy_object(&c).await, "copy with empty metadata");
    assert_metadata(s, &head(s, &dst_b, "bare").await.metadata, &Metadata::default(), "copy with empty metadata");
    assert_eq!(tags_of(s, &dst_b, "bare").await, sorted(src_tags.clone()), "[{}] tags copied", s.kind());

    // Storage class.
    let mut c = CopyRequest::new(src.clone(), &dst_b, "infrequent");
    c.storage_class = Some("STANDARD_IA".into());
    ok(s, s.copy_object(&c).await, "copy to STANDARD_IA");
    let info = head(s, &dst_b, "infrequent").await;
    assert_eq!(info.storage_class.as_deref(), Some("STANDARD_IA"), "[{}] storage class", s.kind());
    let page = ok(s, s.list_objects(&dst_b, "infrequent", None, 10).await, "list copy");
    assert_eq!(page.objects[0].storage_class.as_deref(), Some("STANDARD_IA"), "[{}] listed class", s.kind());

    // The source is unchanged.
    assert_eq!(tags_of(s, &src_b, WEIRD_KEY).await, sorted(src_tags), "[{}] source tags", s.kind());
    assert_metadata(s, &head(s, &src_b, WEIRD_KEY).await.metadata, &rich_metadata(), "source after copies");
}

/// Copy onto itself: refused unless something changes (metadata or storage class).
pub async fn copy_in_place(s: &dyn ObjectStore, _p: &Profile) {
    let b = bucket(s, "conf-copy-in-place").await;
    put(s, &b, "k", b"same bytes", &PutOptions { metadata: rich_metadata(), tags: tags(&[("keep", "me")]) }).await;
    let obj = ObjectRef::new(&b, "k");
    fails(s, s.copy_object(&CopyRequest::new(obj.clone(), &b, "k")).await, "InvalidRequest", 400, "copy to itself");

    let mut c = CopyRequest::new(obj.clone(), &b, "k");
    c.replace_metadata = Some(other_metadata());
    ok(s, s.copy_object(&c).await, "copy to itself with new metadata");
    let info = head(s, &b, "k").await;
    assert_metadata(s, &info.metadata, &other_metadata(), "metadata changed in place");
    assert_eq!(info.etag, md5_hex(b"same bytes"));
    assert_eq!(tags_of(s, &b, "k").await, tags(&[("keep", "me")]), "[{}] tags kept in place", s.kind());

    let mut c = CopyRequest::new(obj.clone(), &b, "k");
    c.storage_class = Some("GLACIER_IR".into());
    ok(s, s.copy_object(&c).await, "copy to itself with a new storage class");
    let info = head(s, &b, "k").await;
    assert_eq!(info.storage_class.as_deref(), Some("GLACIER_IR"), "[{}] class changed in place", s.kind());
    assert_metadata(s, &info.metadata, &other_metadata(), "metadata kept by a class change");
    assert_eq!(read(s, &b, "k").await.as_ref(), b"same bytes");
}

/// `if_modified_since` / `if_unmodified_since` on the source of a copy.
pub async fn copy_preconditions(s: &dyn ObjectStore, p: &Profile) {
    if !p.copy_preconditions {
        return;
    }
    let b = bucket(s, "conf-copy-preconditions").await;
    put(s, &b, "src", b"x", &PutOptions::default()).await;
    let src = ObjectRef::new(&b, "src");
    let now = chrono::Utc::now().timestamp_millis();
    let (past, future) = (now - 3_600_000, now + 3_600_000);
    let req = |ims: Option<i64>, iums: Option<i64>| {
        let mut c = CopyRequest::new(src.clone(), &b, "dst");
        c.if_modified_since = ims;
        c.if_unmodified_since = iums;
        c
    };
    fails(s, s.copy_object(&req(Some(future), None)).await, "PreconditionFailed", 412, "not modified since");
    fails(s, s.copy_object(&req(None, Some(past))).await, "PreconditionFailed", 412, "modified since");
    fails(s, s.head_object(&ObjectRef::new(&b, "dst")).await, "NoSuchKey", 404, "failed copy wrote nothing");
    ok(s, s.copy_object(&req(Some(past), None)).await, "modified since an hour ago");
    ok(s, s.copy_object(&req(None, Some(future))).await, "unmodified until an hour from now");
    ok(s, s.copy_object(&req(Some(past), Some(future))).await, "both");
}

/// Listing: byte order (including keys that sort around `/`), prefixes, pages and tokens.
pub async fn listing(s: &dyn ObjectStore, _p: &Profile) {
    let b = bucket(s, "conf-listing").await;
    let special = ["p/a b", "p/a+b", "p/a-b", "p/a.b", "p/a/b", "p/a0", "p/\u{fc}"];
    let mut keys: Vec<String> = (0..18).map(|i| format!("p/{i:02}")).collect();
    keys.extend(special.iter().map(|k| k.to_string()));
    assert_eq!(keys.len(), 25);
    for k in &keys {
        put(s, &b, k, k.as_bytes(), &PutOptions::default()).await;
    }
    for k in ["o", "q/x", "p-x"] {
        put(s, &b, k, b"outside", &PutOptions::default()).await;
    }
    keys.sort();

    // Pages of 10 under "p/": 10, 10, 5.
    let mut all = Vec::new();
    let mut token = None;
    let mut sizes = Vec::new();
    loop {
        let page = ok(s, s.list_objects(&b, "p/", token.clone(), 10).await, "list page");
        sizes.push(page.objects.len());
        for o in &page.objects {
            assert_eq!(o.size, o.key.len() as u64, "[{}] listed size of {}", s.kind(), o.key);
            assert_eq!(o.etag, md5_hex(o.key.as_bytes()), "[{}] listed etag of {}", s.kind(), o.key);
            assert_eq!(o.storage_class.as_deref(), Some("STANDARD"), "[{}] listed class", s.kind());
        }
        all.extend(page.objects.into_iter().map(|o| o.key));
        match page.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
        assert!(sizes.len() < 10, "[{}] listing does not end", s.kind());
    }
    assert_eq!(sizes, vec![10, 10, 5], "[{}] page sizes", s.kind());
    assert_eq!(all, keys, "[{}] keys in byte order", s.kind());

    // A page that ends exactly at the end has no token.
    let page = ok(s, s.list_objects(&b, "p/", None, 25).await, "list 25");
    assert_eq!((page.objects.len(), page.next_token.is_none()), (25, true), "[{}] exact page", s.kind());

    let bucket_name: &str = &b;
    let list = |prefix: &'static str| async move {
        let page = ok(s, s.list_objects(bucket_name, prefix, None, 1000).await, &format!("list {prefix:?}"));
        assert!(page.next_token.is_none());
        page.objects.into_iter().map(|o| o.key).collect::<Vec<_>>()
    };
    let mut under_a: Vec<&str> = special[..6].to_vec();
    under_a.sort();
    assert_eq!(list("p/a").await, under_a, "[{}] prefix inside a segment", s.kind());
    assert_eq!(list("p/a/").await, vec!["p/a/b"], "[{}] prefix of a directory", s.kind());
    assert_eq!(list("p/0").await.len(), 10, "[{}] prefix p/0", s.kind());
    assert!(list("zzz").await.is_empty(), "[{}] prefix matching nothing", s.kind());
    let everything = list("").await;
    assert_eq!(everything.len(), 28, "[{}] everything: {everything:?}", s.kind());
    assert!(everything.windows(2).all(|w| w[0] < w[1]), "[{}] order: {everything:?}", s.kind());
    assert_eq!(list("p").await.len(), 26, "[{}] prefix p", s.kind());
}

/// DELETE removes the object (and, in a directory store, makes room for a key that was a directory).
pub async fn delete(s: &dyn ObjectStore, _p: &Profile) {
    let b = bucket(s, "conf-delete").await;
    put(s, &b, "d/x/y/z", b"deep", &PutOptions { tags: tags(&[("a", "b")]), ..Default::default() }).await;
    put(s, &b, "d/x/keep", b"keep", &PutOptions::default()).await;
    ok(s, s.delete_object(&ObjectRef::new(&b, "d/x/y/z")).await, "delete");
    fails(s, s.head_object(&ObjectRef::new(&b, "d/x/y/z")).await, "NoSuchKey", 404, "head deleted");
    fails(s, s.get_object_tagging(&ObjectRef::new(&b, "d/x/y/z")).await, "NoSuchKey", 404, "tags of deleted");
    let page = ok(s, s.list_objects(&b, "d/", None, 10).await, "list after delete");
    let keys: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, vec!["d/x/keep"], "[{}] after delete", s.kind());
    ok(s, s.delete_object(&ObjectRef::new(&b, "d/x/y/z")).await, "delete again");
    // What was a directory can now be an object.
    put(s, &b, "d/x/y", b"now a file", &PutOptions::default()).await;
    assert_eq!(read(s, &b, "d/x/y").await.as_ref(), b"now a file");
    // A re-created key starts without the old tags.
    put(s, &b, "d/x/y2", b"v", &PutOptions { tags: tags(&[("old", "tag")]), ..Default::default() }).await;
    ok(s, s.delete_object(&ObjectRef::new(&b, "d/x/y2")).await, "delete y2");
    put(s, &b, "d/x/y2", b"v", &PutOptions::default()).await;
    assert_eq!(tags_of(s, &b, "d/x/y2").await, vec![], "[{}] tags of a re-created key", s.kind());
}

/// DeleteObjects: each key's own answer, in order; a missing key is deleted; odd keys pass byte for byte; version
/// ids are honoured (`conf-delete-versions` keeps versions where the store can); more than 1,000 keys or a missing
/// bucket fail the whole request; an object that object lock protects is refused on its own.
pub async fn delete_objects(s: &dyn ObjectStore, p: &Profile) {
    let b = bucket(s, "conf-delete-objects").await;
    let mut doomed: Vec<String> = ODD_KEYS.iter().chain([&WEIRD_KEY]).map(|k| k.to_string()).collect();
    doomed.extend((0..120).map(|i| format!("many/{i:03}")));
    for k in &doomed {
        put(s, &b, k, k.as_bytes(), &PutOptions::default()).await;
    }
    put(s, &b, "keep", b"keep", &PutOptions::default()).await;
    let mut keys: Vec<DeleteKey> = doomed.iter().map(|k| DeleteKey::new(k, None)).collect();
    keys.insert(3, DeleteKey::new("never-written", None));
    let answers = ok(s, s.delete_objects(&b, &keys).await, "delete_objects");
    assert_eq!(answers.len(), keys.len(), "[{}] one answer a key", s.kind());
    for (k, a) in keys.iter().zip(&answers) {
        ok(s, a.clone(), &format!("delete_objects: key {:?}", k.key));
    }
    let left: Vec<String> =
        ok(s, s.list_objects(&b, "", None, 1000).await, "list").objects.into_iter().map(|o| o.key).collect();
    assert_eq!(left, ["keep"], "[{}] after delete_objects", s.kind());
    assert!(ok(s, s.delete_objects(&b, &[]).await, "delete no keys").is_empty());

    let too_many: Vec<DeleteKey> = (0..=MAX_DELETE_KEYS).map(|i| DeleteKey::new(format!("k{i}"), None)).collect();
    fails(s, s.delete_objects(&b, &too_many).await, "MalformedXML", 400, "1,001 keys");
    let one = [DeleteKey::new("x", None)];
    fails(s, s.delete_objects("conf-no-such-bucket", &one).await, "NoSuchBucket", 404, "missing bucket");
    assert_eq!(read(s, &b, "keep").await.as_ref(), b"keep");

    // Versions: a version id deletes that version only.
    let vb = bucket(s, "conf-delete-versions").await;
    let w = put(s, &vb, "v", b"only", &PutOptions::default()).await;
    let v = w.version_id.clone().unwrap_or_else(|| "null".into());
    let r = ok(s, s.delete_objects(&vb, &[DeleteKey::new("v", Some(v.clone()))]).await, "delete a version");
    ok(s, r.into_iter().next().expect("one answer"), "delete a version: the key");
    fails(s, s.head_object(&ObjectRef::new(&vb, "v")).await, "NoSuchKey", 404, "head after version delete");
    if p.versioning {
        let old = put(s, &vb, "w", b"old", &PutOptions::default()).await.version_id.expect("a version id");
        let new = put(s, &vb, "w", b"new", &PutOptions::default()).await.version_id.expect("a version id");
        let r = ok(s, s.delete_objects(&vb, &[DeleteKey::new("w", Some(old.clone()))]).await, "delete old version");
        ok(s, r.into_iter().next().expect("one answer"), "delete old version: the key");
        assert_eq!(read(s, &vb, "w").await.as_ref(), b"new", "[{}] the current version stays", s.kind());
        let versions = ok(s, s.list_object_versions(&vb, "w", None, None, 10).await, "list versions of w");
        let ids: Vec<&str> = versions.versions.iter().map(|v| v.version_id.as_str()).collect();
        assert_eq!(ids, [new.as_str()], "[{}] the old version is gone", s.kind());
    }

    // A protected object: its own AccessDenied, the others deleted.
    if p.object_lock {
        let lb = bucket(s, "conf-object-lock").await;
        let held = put(s, &lb, "batch-held", b"held", &PutOptions::default()).await;
        let free = put(s, &lb, "batch-free", b"free", &PutOptions::default()).await;
        let held_obj = ObjectRef::new(&lb, "batch-held");
        ok(s, s.put_object_legal_hold(&held_obj, true).await, "legal hold on");
        // With versions, only deleting the version itself is what the lock forbids.
        let v = |w: &WriteResult| if p.versioning { w.version_id.clone() } else { None };
        let keys = [DeleteKey::new("batch-held", v(&held)), DeleteKey::new("batch-free", v(&free))];
        let r = ok(s, s.delete_objects(&lb, &keys).await, "delete a held and a free object");
        assert_eq!(r.len(), 2, "[{}] two answers", s.kind());
        fails(s, r[0].clone(), "AccessDenied", 403, "the held object");
        ok(s, r[1].clone(), "the free object");
        assert_eq!(read(s, &lb, "batch-held").await.as_ref(), b"held");
        fails(s, s.head_object(&ObjectRef::new(&lb, "batch-free")).await, "NoSuchKey", 404, "the free object is gone");
        ok(s, s.put_object_legal_hold(&held_obj, false).await, "legal hold off");
    }
}

/// PUT from a local file.
pub async fn put_file(s: &dyn ObjectStore, _p: &Profile) {
    let b = bucket(s, "conf-put-file").await;
    let data = pattern(150_000, 11);
    let path = std::env::temp_dir().join(format!("s3batch-conformance-{}.bin", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, &data).expect("write temp file");
    let opts = PutOptions { metadata: rich_metadata(), tags: tags(&[("from", "file")]) };
    let r = s.put_object(&b, "from/file.bin", PutBody::File(path.clone()), &opts).await;
    let _ = std::fs::remove_file(&path);
    ok(s, r, "put file");
    let info = head(s, &b, "from/file.bin").await;
    assert_eq!((info.size, info.etag), (150_000, md5_hex(&data)), "[{}] file upload", s.kind());
    assert_metadata(s, &info.metadata, &rich_metadata(), "file upload");
    assert_eq!(read(s, &b, "from/file.bin").await.as_ref(), data.as_slice());
    assert_eq!(tags_of(s, &b, "from/file.bin").await, tags(&[("from", "file")]));
}

/// Version ids: the one a write answers (or `"null"` when it answers none) names the object; another does not.
pub async fn versions(s: &dyn ObjectStore, _p: &Profile) {
    let b = bucket(s, "conf-versions").await;
    let w = put(s, &b, "v", b"versioned", &PutOptions::default()).await;
    let v = w.version_id.clone().unwrap_or_else(|| "null".into());
    let obj = ObjectRef::new(&b, "v").with_version(Some(v.clone()));
    let info = ok(s, s.head_object(&obj).await, "head with version");
    assert_eq!(info.version_id, w.version_id, "[{}] version of head", s.kind());
    let g = ok(s, s.get_object(&obj, None).await, "get with version");
    assert_eq!(ok(s, g.bytes().await, "body").as_ref(), b"versioned");
    ok(s, s.put_object_tagging(&obj, &tags(&[("v", "1")])).await, "put tags with version");
    assert_eq!(ok(s, s.get_object_tagging(&obj).await, "tags with version"), tags(&[("v", "1")]));
    ok(s, s.delete_object_tagging(&obj).await, "delete tags with version");
    let mut c = CopyRequest::new(obj.clone(), &b, "copied");
    c.tags = Some(vec![]);
    ok(s, s.copy_object(&c).await, "copy a version");
    assert_eq!(read(s, &b, "copied").await.as_ref(), b"versioned");

    let other = ObjectRef::new(&b, "v").with_version(Some("0000000000000000000000000000000a".into()));
    fails(s, s.head_object(&other).await, "NoSuchVersion", 404, "head of another version");
    fails(s, s.get_object(&other, None).await.map(|g| g.info), "NoSuchVersion", 404, "get of another version");
    fails(s, s.get_object_tagging(&other).await, "NoSuchVersion", 404, "tags of another version");

    ok(s, s.delete_object(&obj).await, "delete with version");
    fails(s, s.head_object(&ObjectRef::new(&b, "v")).await, "NoSuchKey", 404, "head after version delete");
}

/// ListObjectVersions: every current object once, with its version; old versions and delete markers where the
/// store keeps them; pages of one entry walk the same list.
pub async fn list_versions(s: &dyn ObjectStore, p: &Profile) {
    let b = bucket(s, "conf-list-versions").await;
    let a1 = put(s, &b, "a", b"first", &PutOptions::default()).await;
    let a2 = put(s, &b, "a", b"second", &PutOptions::default()).await;
    put(s, &b, "b", b"gone", &PutOptions::default()).await;
    put(s, &b, "c/d", b"deep", &PutOptions::default()).await;
    put(s, &b, "z", b"outside", &PutOptions::default()).await;
    ok(s, s.delete_object(&ObjectRef::new(&b, "b")).await, "delete b");

    let all = ok(s, s.list_object_versions(&b, "", None, None, 1000).await, "list versions");
    assert_eq!((all.next_key_marker.as_deref(), all.next_version_marker.as_deref()), (None, None));
    let current: Vec<(&str, &str)> = all
        .versions
        .iter()
        .filter(|v| v.is_latest && !v.delete_marker)
        .map(|v| (v.key.as_str(), v.etag.as_str()))
        .collect();
    let (second, deep, outside) = (md5_hex(b"second"), md5_hex(b"deep"), md5_hex(b"outside"));
    assert_eq!(
        current,
        vec![("a", second.as_str()), ("c/d", deep.as_str()), ("z", outside.as_str())],
        "[{}] current versions: {all:?}",
        s.kind()
    );
    let latest_a = all.versions.iter().find(|v| v.key == "a" && v.is_latest).expect("a is listed");
    assert_eq!(latest_a.size, 6, "[{}] size of a", s.kind());
    assert_eq!(latest_a.storage_class.as_deref(), Some("STANDARD"), "[{}] class of a", s.kind());
    assert_recent(s, latest_a.last_modified, "listed version");
    if let Some(v) = &a2.version_id {
        assert_eq!(&latest_a.version_id, v, "[{}] version id of a", s.kind());
    }
    let keys: Vec<(&str, bool, bool)> =
        all.versions.iter().map(|v| (v.key.as_str(), v.is_latest, v.delete_marker)).collect();
    if p.versioning {
        assert_eq!(
            keys,
            vec![
                ("a", true, false),
                ("a", false, false),
                ("b", true, true),
                ("b", false, false),
                ("c/d", true, false),
                ("z", true, false)
            ],
            "[{}] versions and delete markers",
            s.kind()
        );
        let old_a = &all.versions[1];
        assert_eq!(old_a.etag, md5_hex(b"first"), "[{}] old version of a", s.kind());
        if let Some(v) = &a1.version_id {
            assert_eq!(&old_a.version_id, v, "[{}] old version id", s.kind());
        }
        assert_eq!((all.versions[2].size, all.versions[2].etag.as_str()), (0, ""), "[{}] delete marker", s.kind());
    } else {
        assert_eq!(keys, vec![("a", true, false), ("c/d", true, false), ("z", true, false)], "[{}] versions", s.kind());
    }

    // Pages of one entry.
    let (mut km, mut vm) = (None, None);
    let mut paged = Vec::new();
    loop {
        let page = ok(s, s.list_object_versions(&b, "", km.clone(), vm.clone(), 1).await, "list a page of versions");
        assert!(page.versions.len() <= 1, "[{}] page of {} entries", s.kind(), page.versions.len());
        paged.extend(page.versions);
        match page.next_key_marker {
            Some(k) => {
                km = Some(k);
                vm = page.next_version_marker;
            }
            None => break,
        }
        assert!(paged.len() <= all.versions.len(), "[{}] paged listing does not end", s.kind());
    }
    assert_eq!(paged, all.versions, "[{}] paged versions", s.kind());

    let under_c = ok(s, s.list_object_versions(&b, "c/", None, None, 10).await, "list versions under c/");
    let keys: Vec<&str> = under_c.versions.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(keys, vec!["c/d"], "[{}] versions under c/", s.kind());
    fails(
        s,
        s.list_object_versions("conf-no-such-bucket", "", None, None, 10).await,
        "NoSuchBucket",
        404,
        "list versions of missing bucket",
    );
}

/// An ACL as compared: grants without display names, sorted.
fn grant_set(g: &[Grant]) -> Vec<Grant> {
    AclPolicy { owner: Default::default(), grants: g.to_vec() }.normalized_grants()
}

/// ACLs: default private, canned, explicit grants, on copies; or `NotImplemented` everywhere.
pub async fn acl(s: &dyn ObjectStore, p: &Profile) {
    let b = bucket(s, "conf-acl").await;
    put(s, &b, WEIRD_KEY, b"acl", &PutOptions::default()).await;
    let obj = ObjectRef::new(&b, WEIRD_KEY);
    if !p.acl {
        fails(s, s.get_object_acl(&obj).await, "NotImplemented", 501, "get acl");
        fails(s, s.put_object_acl(&obj, &Acl::Canned("public-read".into())).await, "NotImplemented", 501, "put acl");
        let mut c = CopyRequest::new(obj.clone(), &b, "copy");
        c.grant_read = vec![Grantee::Group(ALL_USERS.into()).header_value()];
        fails(s, s.copy_object(&c).await, "NotImplemented", 501, "copy with grants");
        let opts = MultipartOptions { canned_acl: Some("private".into()), ..Default::default() };
        fails(s, s.create_multipart_upload(&b, "mpu", &opts).await, "NotImplemented", 501, "upload with an acl");
        return;
    }
    let policy = ok(s, s.get_object_acl(&obj).await, "get acl");
    let owner = policy.owner.clone();
    assert!(!owner.id.is_empty(), "[{}] owner of {policy:?}", s.kind());
    let me = Grantee::canonical(owner.id.clone());
    assert_eq!(
        policy.normalized_grants(),
        vec![Grant::new(me.clone(), Permission::FullControl)],
        "[{}] default acl",
        s.kind()
    );

    ok(s, s.put_object_acl(&obj, &Acl::Canned("public-read".into())).await, "put canned acl");
    let got = ok(s, s.get_object_acl(&obj).await, "get canned acl");
    let expected = grant_set(&[
        Grant::new(me.clone(), Permission::FullControl),
        Grant::new(Grantee::Group(ALL_USERS.into()), Permission::Read),
    ]);
    assert_eq!(got.normalized_grants(), expected, "[{}] public-read", s.kind());
    assert_eq!(got.owner.id, owner.id, "[{}] owner kept", s.kind());

    let other = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be";
    let mut grants = vec![
        Grant::new(me.clone(), Permission::FullControl),
        Grant::new(Grantee::canonical(other), Permission::ReadAcp),
        Grant::new(Grantee::Group(AUTHENTICATED_USERS.into()), Permission::Read),
        Grant::new(Grantee::Group(ALL_USERS.into()), Permission::WriteAcp),
    ];
    if p.acl_multiple_grantees {
        grants.push(Grant::new(Grantee::canonical(other), Permission::Read));
        if p.acl_email_grantee {
            grants.push(Grant::new(Grantee::Email("someone@example.com".into()), Permission::Read));
        }
    }
    let explicit = AclPolicy { owner: owner.clone(), grants: grants.clone() };
    ok(s, s.put_object_acl(&obj, &Acl::Policy(explicit)).await, "put explicit acl");
    let got = ok(s, s.get_object_acl(&obj).await, "get explicit acl");
    assert_eq!(got.normalized_grants(), grant_set(&grants), "[{}] explicit grants", s.kind());

    // Copies: explicit grants, canned, both (refused).
    let mut c = CopyRequest::new(obj.clone(), &b, "granted");
    c.grant_read = vec![Grantee::Group(ALL_USERS.into()).header_value()];
    c.grant_read_acp = vec![Grantee::canonical(other).header_value()];
    c.grant_full_control = vec![me.header_value()];
    ok(s, s.copy_object(&c).await, "copy with grants");
    let got = ok(s, s.get_object_acl(&ObjectRef::new(&b, "granted")).await, "acl of copy with grants");
    let expected = grant_set(&[
        Grant::new(Grantee::Group(ALL_USERS.into()), Permission::Read),
        Grant::new(Grantee::canonical(other), Permission::ReadAcp),
        Grant::new(me.clone(), Permission::FullControl),
    ]);
    assert_eq!(got.normalized_grants(), expected, "[{}] grants of a copy", s.kind());
    let mut c = CopyRequest::new(obj.clone(), &b, "canned");
    c.canned_acl = Some("authenticated-read".into());
    ok(s, s.copy_object(&c).await, "copy with a canned acl");
    let got = ok(s, s.get_object_acl(&ObjectRef::new(&b, "canned")).await, "acl of copy with a canned acl");
    let expected = grant_set(&[
        Grant::new(me.clone(), Permission::FullControl),
        Grant::new(Grantee::Group(AUTHENTICATED_USERS.into()), Permission::Read),
    ]);
    assert_eq!(got.normalized_grants(), expected, "[{}] canned acl of a copy", s.kind());
    // A copy without ACL is private, whatever the source's ACL.
    ok(s, s.copy_object(&CopyRequest::new(obj.clone(), &b, "plain")).await, "copy without acl");
    let got = ok(s, s.get_object_acl(&ObjectRef::new(&b, "plain")).await, "acl of a plain copy");
    assert_eq!(
        got.normalized_grants(),
        vec![Grant::new(me.clone(), Permission::FullControl)],
        "[{}] plain copy",
        s.kind()
    );
    let mut c = CopyRequest::new(obj.clone(), &b, "both");
    c.canned_acl = Some("private".into());
    c.grant_read = vec![me.header_value()];
    let e = s.copy_object(&c).await.expect_err("canned ACL and grants together must be refused");
    assert_eq!((e.http_status, e.transient), (400, false), "[{}] canned and grants: {e:?}", s.kind());

    let missing = ObjectRef::new(&b, "missing");
    fails(s, s.get_object_acl(&missing).await, "NoSuchKey", 404, "get acl of missing key");
}

/// Reads the retention the way the profile allows.
async fn retention_of(s: &dyn ObjectStore, p: &Profile, obj: &ObjectRef) -> Retention {
    if p.get_object_retention {
        ok(s, s.get_object_retention(obj).await, "get retention")
    } else {
        let info = ok(s, s.head_object(obj).await, "head for retention");
        Retention { mode: info.object_lock_mode, retain_until: info.object_lock_retain_until }
    }
}

/// Whole seconds, as the stores keep dates.
fn secs(t: Option<i64>) -> Option<i64> {
    t.map(|t| t.div_euclid(1000))
}

/// Object lock: legal hold on and off, retention set, extended, removed, on copies; protected objects cannot be
/// deleted. Or `NotImplemented` everywhere.
pub async fn object_lock(s: &dyn ObjectStore, p: &Profile) {
    let b = bucket(s, "conf-object-lock").await;
    let w = put(s, &b, "locked", b"keep me", &PutOptions::default()).await;
    let obj = ObjectRef::new(&b, "locked");
    let day = 86_400_000;
    let now = chrono::Utc::now().timestamp_millis() / 1000 * 1000;
    if !p.object_lock {
        fails(s, s.put_object_legal_hold(&obj, true).await, "NotImplemented", 501, "put legal hold");
        fails(s, s.get_object_legal_hold(&obj).await, "NotImplemented", 501, "get legal hold");
        let r = s.put_object_retention(&obj, Some(RetentionMode::Governance), Some(now + day), false, None).await;
        fails(s, r, "NotImplemented", 501, "put retention");
        fails(s, s.get_object_retention(&obj).await, "NotImplemented", 501, "get retention");
        let mut c = CopyRequest::new(obj.clone(), &b, "copy");
        c.object_lock_legal_hold = Some(true);
        fails(s, s.copy_object(&c).await, "NotImplemented", 501, "copy with a legal hold");
        return;
    }
    // Legal hold.
    assert!(!ok(s, s.get_object_legal_hold(&obj).await, "get legal hold"), "[{}] no legal hold at first", s.kind());
    ok(s, s.put_object_legal_hold(&obj, true).await, "legal hold on");
    assert!(ok(s, s.get_object_legal_hold(&obj).await, "get legal hold"), "[{}] legal hold on", s.kind());
    assert_eq!(head(s, &b, "locked").await.object_lock_legal_hold, Some(true), "[{}] head: legal hold", s.kind());
    // A protected version cannot be deleted.
    let version = if p.versioning { w.version_id.clone() } else { None };
    let e = s
        .delete_object(&obj.clone().with_version(version.clone()))
        .await
        .expect_err("a held object must not be deleted");
    assert_eq!((e.code.as_str(), e.http_status), ("AccessDenied", 403), "[{}] delete held: {e:?}", s.kind());
    ok(s, s.put_object_legal_hold(&obj, false).await, "legal hold off");
    assert!(!ok(s, s.get_object_legal_hold(&obj).await, "get legal hold"), "[{}] legal hold off", s.kind());

    // Retention.
    assert_eq!(retention_of(s, p, &obj).await, Retention::default(), "[{}] no retention at first", s.kind());
    let gov = |t| (Some(RetentionMode::Governance), Some(t));
    let (m, t) = gov(now + day);
    ok(s, s.put_object_retention(&obj, m, t, false, None).await, "put retention");
    let r = retention_of(s, p, &obj).await;
    assert_eq!((r.mode, secs(r.retain_until)), (m, secs(t)), "[{}] retention", s.kind());
    let info = head(s, &b, "locked").await;
    assert_eq!(
        (info.object_lock_mode, secs(info.object_lock_retain_until)),
        (m, secs(t)),
        "[{}] head: retention",
        s.kind()
    );
    let (m, t) = gov(now + 2 * day);
    ok(s, s.put_object_retention(&obj, m, t, false, None).await, "extend retention");
    let r = retention_of(s, p, &obj).await;
    assert_eq!((r.mode, secs(r.retain_until)), (m, secs(t)), "[{}] extended retention", s.kind());
    let e = s
        .delete_object(&obj.clone().with_version(version.clone()))
        .await
        .expect_err("a retained object must not be deleted");
    assert_eq!((e.code.as_str(), e.http_status), ("AccessDenied", 403), "[{}] delete retained: {e:?}", s.kind());
    if p.strict {
        let (m, t) = gov(now + day);
        fails(s, s.put_object_retention(&obj, m, t, false, None).await, "AccessDenied", 403, "shorten without bypass");
        fails(
            s,
            s.put_object_retention(&obj, None, None, false, None).await,
            "AccessDenied",
            403,
            "remove without bypass",
        );
        let (m, t) = gov(now - day);
        fails(s, s.put_object_retention(&obj, m, t, true, None).await, "InvalidArgument", 400, "date in the past");
    }
    ok(s, s.put_object_retention(&obj, None, None, true, None).await, "remove retention with bypass");
    let r = retention_of(s, p, &obj).await;
    assert_eq!(r, Retention::default(), "[{}] removed retention", s.kind());

    // A copy with object lock.
    let mut c = CopyRequest::new(obj.clone(), &b, "locked-copy");
    c.object_lock_mode = Some(RetentionMode::Governance);
    c.object_lock_retain_until = Some(now + day);
    c.object_lock_legal_hold = Some(true);
    ok(s, s.copy_object(&c).await, "copy with object lock");
    let info = head(s, &b, "locked-copy").await;
    assert_eq!(
        (info.object_lock_mode, secs(info.object_lock_retain_until), info.object_lock_legal_hold),
        (Some(RetentionMode::Governance), secs(Some(now + day)), Some(true)),
        "[{}] object lock of a copy",
        s.kind()
    );
    let copy = ObjectRef::new(&b, "locked-copy");
    assert!(ok(s, s.get_object_legal_hold(&copy).await, "legal hold of copy"), "[{}] copy held", s.kind());
    ok(s, s.put_object_legal_hold(&copy, false).await, "release the copy");
    ok(s, s.put_object_retention(&copy, None, None, true, None).await, "remove the copy's retention");

    ok(s, s.delete_object(&obj.clone().with_version(version)).await, "delete once unprotected");
    let missing = ObjectRef::new(&b, "missing");
    fails(s, s.get_object_legal_hold(&missing).await, "NoSuchKey", 404, "legal hold of missing key");
}

/// Restore: an archived object cannot be read or copied until restored; the restore shows in HEAD.
pub async fn restore(s: &dyn ObjectStore, _p: &Profile) {
    let b = bucket(s, "conf-restore").await;
    let data = b"frozen data".to_vec();
    put(s, &b, "cold", &data, &PutOptions { metadata: rich_metadata(), ..Default::default() }).await;
    put(s, &b, "warm", b"warm", &PutOptions::default()).await;
    let obj = ObjectRef::new(&b, "cold");
    let mut c = CopyRequest::new(obj.clone(), &b, "cold");
    c.storage_class = Some("GLACIER".into());
    ok(s, s.copy_object(&c).await, "archive to GLACIER");
    let info = head(s, &b, "cold").await;
    assert_eq!(info.storage_class.as_deref(), Some("GLACIER"), "[{}] archived", s.kind());
    assert_eq!(info.restore, None, "[{}] no restore yet", s.kind());
    assert_metadata(s, &info.metadata, &rich_metadata(), "archived object");
    let e = s.get_object(&obj, None).await.map(|g| g.info).expect_err("an archived object cannot be read");
    assert_eq!(
        (e.code.as_str(), e.http_status, e.transient),
        ("InvalidObjectState", 403, false),
        "[{}] get archived: {e:?}",
        s.kind()
    );
    let e = s
        .copy_object(&CopyRequest::new(obj.clone(), &b, "thawed"))
        .await
        .expect_err("an archived object cannot be copied");
    assert_eq!((e.http_status, e.transient), (403, false), "[{}] copy archived: {e:?}", s.kind());

    ok(s, s.restore_object(&obj, Some(1), Some(RestoreTier::Standard)).await, "restore");
    let info = head(s, &b, "cold").await;
    let status = info.restore_status().unwrap_or_else(|| panic!("[{}] no restore status: {info:?}", s.kind()));
    assert_eq!(info.storage_class.as_deref(), Some("GLACIER"), "[{}] still archived", s.kind());
    if !status.ongoing {
        let expiry = status.expiry.unwrap_or_else(|| panic!("[{}] no expiry in {:?}", s.kind(), info.restore));
        assert!(expiry > chrono::Utc::now().timestamp_millis(), "[{}] expiry {expiry}", s.kind());
        assert_eq!(read(s, &b, "cold").await.as_ref(), data.as_slice(), "[{}] restored bytes", s.kind());
        ok(s, s.copy_object(&CopyRequest::new(obj.clone(), &b, "thawed")).await, "copy restored");
        assert_eq!(read(s, &b, "thawed").await.as_ref(), data.as_slice());
        assert_eq!(head(s, &b, "thawed").await.storage_class, None, "[{}] the copy is STANDARD", s.kind());
        ok(s, s.restore_object(&obj, Some(2), Some(RestoreTier::Bulk)).await, "restore again, longer");
        let later = head(s, &b, "cold").await.restore_status().and_then(|r| r.expiry);
        assert!(later >= Some(expiry), "[{}] extended restore {later:?} vs {expiry}", s.kind());
    }
    let e = s
        .restore_object(&ObjectRef::new(&b, "warm"), Some(1), None)
        .await
        .expect_err("STANDARD objects cannot be restored");
    assert_eq!((e.code.as_str(), e.http_status), ("InvalidObjectState", 403), "[{}] restore STANDARD: {e:?}", s.kind());
    fails(
        s,
        s.restore_object(&ObjectRef::new(&b, "missing"), Some(1), None).await,
        "NoSuchKey",
        404,
        "restore missing",
    );
}

/// Server-side encryption asked for on copies (and in place, as S3UpdateObjectEncryption does), reported by
/// HEAD. Or `NotImplemented`.
pub async fn encryption(s: &dyn ObjectStore, p: &Profile) {
    let b = bucket(s, "conf-encryption").await;
    put(s, &b, "plain", b"secret", &PutOptions::default()).await;
    let obj = ObjectRef::new(&b, "plain");
    let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    if !p.encryption {
        let mut c = CopyRequest::new(obj.clone(), &b, "kms");
        c.server_side_encryption = Some("AES256".into());
        fails(s, s.copy_object(&c).await, "NotImplemented", 501, "copy with encryption");
        return;
    }
    let mut c = CopyRequest::new(obj.clone(), &b, "kms");
    c.server_side_encryption = Some("aws:kms".into());
    c.sse_kms_key_id = Some(key.into());
    c.bucket_key_enabled = Some(true);
    ok(s, s.copy_object(&c).await, "copy with SSE-KMS");
    let info = head(s, &b, "kms").await;
    assert_eq!(
        (info.server_side_encryption.as_deref(), info.sse_kms_key_id.as_deref(), info.bucket_key_enabled),
        (Some("aws:kms"), Some(key), Some(true)),
        "[{}] SSE-KMS",
        s.kind()
    );
    assert_eq!(read(s, &b, "kms").await.as_ref(), b"secret");

    // A key alone means aws:kms.
    let mut c = CopyRequest::new(obj.clone(), &b, "kms-implied");
    c.sse_kms_key_id = Some(key.into());
    ok(s, s.copy_object(&c).await, "copy with a KMS key only");
    let info = head(s, &b, "kms-implied").await;
    assert_eq!(info.server_side_encryption.as_deref(), Some("aws:kms"), "[{}] implied aws:kms", s.kind());

    // In place: the encryption changes, the bytes do not.
    let mut c = CopyRequest::new(ObjectRef::new(&b, "kms"), &b, "kms");
    c.server_side_encryption = Some("AES256".into());
    ok(s, s.copy_object(&c).await, "re-encrypt in place");
    let info = head(s, &b, "kms").await;
    assert_eq!(info.server_side_encryption.as_deref(), Some("AES256"), "[{}] re-encrypted", s.kind());
    assert_eq!(info.sse_kms_key_id, None, "[{}] no KMS key with AES256", s.kind());
    assert_eq!(info.etag, md5_hex(b"secret"), "[{}] same bytes", s.kind());

    if p.strict {
        let mut c = CopyRequest::new(obj.clone(), &b, "bad");
        c.server_side_encryption = Some("AES256".into());
        c.sse_kms_key_id = Some(key.into());
        let e = s.copy_object(&c).await.expect_err("a KMS key with AES256 must be refused");
        assert_eq!((e.http_status, e.transient), (400, false), "[{}] AES256 with a KMS key: {e:?}", s.kind());
    }
}

/// An additional checksum asked for on a copy shows in the listing. Or `NotImplemented`.
pub async fn checksums(s: &dyn ObjectStore, p: &Profile) {
    let b = bucket(s, "conf-checksums").await;
    put(s, &b, "src", b"check me", &PutOptions::default()).await;
    let mut c = CopyRequest::new(ObjectRef::new(&b, "src"), &b, "summed");
    c.checksum_algorithm = Some("SHA256".into());
    if !p.checksums {
        fails(s, s.copy_object(&c).await, "NotImplemented", 501, "copy with a checksum");
        return;
    }
    ok(s, s.copy_object(&c).await, "copy with a checksum");
    assert_eq!(read(s, &b, "summed").await.as_ref(), b"check me");
    let page = ok(s, s.list_objects(&b, "summed", None, 10).await, "list");
    assert_eq!(page.objects[0].checksum_algorithm.as_deref(), Some("SHA256"), "[{}] listed checksum", s.kind());
}

/// Multipart uploads: parts uploaded and copied (ranges and whole objects), completed with the new object's
/// attributes; the rules of completion; abort.
pub async fn multipart(s: &dyn ObjectStore, p: &Profile) {
    let b = bucket(s, "conf-multipart").await;
    let src_data = pattern(MIN_PART_SIZE as usize + 1000, 21);
    put(s, &b, "src", &src_data, &PutOptions { tags: tags(&[("src", "1")]), ..Default::default() }).await;
    let src = ObjectRef::new(&b, "src");
    let opts = MultipartOptions {
        metadata: rich_metadata(),
        tags: tags(&[("mpu", "yes"), ("n", "2")]),
        storage_class: Some("STANDARD_IA".into()),
        ..Default::default()
    };

    // A part uploaded, then a range copied.
    let head_part = pattern(MIN_PART_SIZE as usize, 22);
    let up = ok(s, s.create_multipart_upload(&b, WEIRD_KEY, &opts).await, "create upload");
    assert_eq!((up.bucket.as_str(), up.key.as_str()), (b.as_str(), WEIRD_KEY));
    let p1 = ok(s, s.upload_part(&up, 1, Bytes::from(head_part.clone())).await, "upload part 1");
    assert_eq!(p1.etag, md5_hex(&head_part), "[{}] etag of part 1", s.kind());
    let p2 = ok(s, s.upload_part_copy(&up, 2, &src, Some(100..1100)).await, "copy part 2");
    assert_eq!(p2.etag, md5_hex(&src_data[100..1100]), "[{}] etag of part 2", s.kind());
    let w = ok(s, s.complete_multipart_upload(&up, &[p1.clone(), p2.clone()]).await, "complete");
    let mut expected = head_part.clone();
    expected.extend_from_slice(&src_data[100..1100]);
    let info = head(s, &b, WEIRD_KEY).await;
    assert_eq!(info.size, expected.len() as u64, "[{}] size of the assembled object", s.kind());
    assert!(info.etag.ends_with("-2"), "[{}] multipart etag {}", s.kind(), info.etag);
    if let Some(e) = &w.etag {
        assert_eq!(e, &info.etag, "[{}] etag answered by complete", s.kind());
    }
    assert_metadata(s, &info.metadata, &rich_metadata(), "assembled object");
    assert_eq!(info.storage_class.as_deref(), Some("STANDARD_IA"), "[{}] class of the assembled object", s.kind());
    assert_eq!(
        tags_of(s, &b, WEIRD_KEY).await,
        sorted(opts.tags.clone()),
        "[{}] tags of the assembled object",
        s.kind()
    );
    assert_eq!(read(s, &b, WEIRD_KEY).await.as_ref(), expected.as_slice(), "[{}] assembled bytes", s.kind());
    if p.strict {
        fails(s, s.upload_part(&up, 3, Bytes::from_static(b"late")).await, "NoSuchUpload", 404, "part after complete");
    }

    // A whole object copied as part 1, a small last part.
    let up = ok(s, s.create_multipart_upload(&b, "whole", &MultipartOptions::default()).await, "create upload 2");
    let p1 = ok(s, s.upload_part_copy(&up, 1, &src, None).await, "copy a whole object");
    let p2 = ok(s, s.upload_part(&up, 2, Bytes::from_static(b"end")).await, "upload the last part");
    ok(s, s.complete_multipart_upload(&up, &[p1, p2]).await, "complete 2");
    let mut expected = src_data.clone();
    expected.extend_from_slice(b"end");
    assert_eq!(read(s, &b, "whole").await.as_ref(), expected.as_slice(), "[{}] whole-object part", s.kind());
    assert_eq!(tags_of(s, &b, "whole").await, vec![], "[{}] no tags asked, none given", s.kind());

    // Completion rules.
    let up = ok(s, s.create_multipart_upload(&b, "rules", &MultipartOptions::default()).await, "create upload 3");
    let small = ok(s, s.upload_part(&up, 1, Bytes::from_static(b"small")).await, "small part");
    let last = ok(s, s.upload_part(&up, 2, Bytes::from_static(b"last")).await, "last part");
    fails(
        s,
        s.complete_multipart_upload(&up, &[small.clone(), last.clone()]).await,
        "EntityTooSmall",
        400,
        "small part",
    );
    let wrong = CompletedPart { etag: md5_hex(b"other"), ..last.clone() };
    fails(s, s.complete_multipart_upload(&up, &[wrong]).await, "InvalidPart", 400, "wrong etag");
    if p.strict {
        fails(
            s,
            s.complete_multipart_upload(&up, &[last.clone(), small.clone()]).await,
            "InvalidPartOrder",
            400,
            "order",
        );
        let e = s.upload_part_copy(&up, 3, &src, Some(0..src_data.len() as u64 + 1)).await.expect_err("range beyond");
        assert_eq!((e.http_status, e.transient), (400, false), "[{}] range beyond the source: {e:?}", s.kind());
        fails(s, s.upload_part(&up, 0, Bytes::from_static(b"x")).await, "InvalidArgument", 400, "part 0");
    }
    fails(
        s,
        s.head_object(&ObjectRef::new(&b, "rules")).await,
        "NoSuchKey",
        404,
        "nothing written by failed completes",
    );
    ok(s, s.abort_multipart_upload(&up).await, "abort");
    if p.strict {
        fails(s, s.upload_part(&up, 3, Bytes::from_static(b"x")).await, "NoSuchUpload", 404, "part after abort");
        fails(s, s.complete_multipart_upload(&up, &[small]).await, "NoSuchUpload", 404, "complete after abort");
    }
    fails(s, s.abort_multipart_upload(&up).await, "NoSuchUpload", 404, "abort twice");
    fails(
        s,
        s.create_multipart_upload("conf-no-such-bucket", "k", &MultipartOptions::default()).await,
        "NoSuchBucket",
        404,
        "upload to missing bucket",
    );
    fails(s, s.head_object(&ObjectRef::new(&b, "rules")).await, "NoSuchKey", 404, "nothing written by an abort");
}
