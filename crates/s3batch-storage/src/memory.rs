//! [`MemoryStore`]: buckets in memory, with injectable faults, for engine tests and benchmarks.
//!
//! - Buckets must be created with [`ObjectStore::create_bucket`], unless virtual objects are on.
//! - Each key holds one current object; every write gives it a fresh version id (a UUID). A HEAD, GET, tagging call
//!   or copy naming any other version id answers `NoSuchVersion`; a DELETE naming another version is a no-op that
//!   succeeds, as S3 answers for a version that does not exist.
//! - Virtual objects ([`MemoryStore::set_virtual_objects`]): every bucket exists and every key that was never
//!   written is an empty object (any version id is accepted and echoed back). Tag writes to such an object and
//!   copies from it are accepted and not kept, so a benchmark of millions of tasks does not hold millions of
//!   objects; `put_object` still stores what it is given (reports, manifests), and objects that really exist
//!   behave as usual.
//! - [`Faults`] apply to every request (or only to the operations they name): latency, then an error with a chosen
//!   code and status at some rate, or a connection reset at some rate. A batch delete (`delete_objects`) draws
//!   once for the request (faults naming `delete_objects`) and once for each of its keys (faults naming
//!   `delete_object`): an injected error then fails that key alone, as a store's `Errors` list would.
//! - What S3 keeps beyond bytes, metadata and tags is kept too, and checked by S3's rules: ACLs (every object is
//!   owned by [`MEMORY_OWNER_ID`]), object lock (retention and legal hold; any bucket takes them, and a protected
//!   object cannot be deleted: `AccessDenied`; an overwrite replaces it, as the store holds one version a key),
//!   restores (instant: an archived object — GLACIER, DEEP_ARCHIVE — cannot be read or copied until restored),
//!   the encryption asked for (recorded, not applied), the checksum algorithm asked for (recorded, not computed)
//!   and multipart uploads (5 MiB minimum part size, as S3).

use std::collections::{BTreeMap, HashMap};
use std::ops::{Bound, Range};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use crate::common::{self, Capabilities, EMPTY_ETAG};
use crate::{
    Acl, AclPolicy, CompletedPart, CopyRequest, DeleteKey, DeleteResults, GetResult, Grant, ListPage, ListedObject,
    Metadata, Millis, MultipartOptions, MultipartUpload, ObjectInfo, ObjectRef, ObjectStore, ObjectVersion, Owner,
    PutBody, PutOptions, RestoreTier, Result, Retention, RetentionMode, StorageError, Tag, VersionPage, WriteResult,
};

/// The canonical user id that owns every object of a [`MemoryStore`].
pub const MEMORY_OWNER_ID: &str = "5e3b47c1d2a8f0960b7e4c3a1f2d8e9b0c6a5d4e3f2a1b0c9d8e7f6a5b4c3d2e";

/// Event holds are not kept: a request for one answers `NotImplemented`.
const CAPABILITIES: Capabilities =
    Capabilities { acl: true, encryption: true, object_lock: true, checksums: true, event_hold: false };

fn memory_owner() -> Owner {
    Owner { id: MEMORY_OWNER_ID.into(), display_name: Some("s3batch-memory".into()) }
}

/// Faults injected into every request of a [`MemoryStore`] (or only into the operations `only_ops` names).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Added to every request (`tokio::time::sleep`, so paused-time tests see it without waiting).
    pub latency: Duration,
    /// Fraction (0 to 1) of requests that fail with `error_code` / `error_status`.
    pub error_rate: f64,
    /// e.g. `SlowDown`; empty means `InternalError`.
    pub error_code: String,
    /// e.g. 503; 0 means 500.
    pub error_status: u16,
    /// Fraction (0 to 1) of requests that fail with [`StorageError::connection`].
    pub reset_rate: f64,
    /// Operation names (`"put_object_tagging"`, the [`ObjectStore`] method names) the faults apply to; empty
    /// means every operation.
    pub only_ops: Vec<String>,
}

/// The in-memory backend. Clones share the same buckets.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    buckets: Mutex<BTreeMap<String, BTreeMap<String, Obj>>>,
    uploads: Mutex<HashMap<String, Upload>>,
    faults: Mutex<Arc<Faults>>,
    virtual_objects: AtomicBool,
    requests: AtomicU64,
    /// Requests in their injected latency now, and the most there at once.
    waiting: AtomicUsize,
    most_waiting: AtomicUsize,
    /// Last-modified time of virtual objects.
    created: Millis,
}

#[derive(Debug, Clone)]
struct Obj {
    data: Bytes,
    etag: String,
    last_modified: Millis,
    version_id: String,
    storage_class: Option<String>,
    metadata: Metadata,
    tags: Vec<Tag>,
    grants: Vec<Grant>,
    retention: Retention,
    /// `None` until a legal hold is set.
    legal_hold: Option<bool>,
    restore_expiry: Option<Millis>,
    sse: Option<String>,
    sse_kms_key_id: Option<String>,
    bucket_key_enabled: Option<bool>,
    checksum_algorithm: Option<String>,
    website_redirect_location: Option<String>,
}

impl Obj {
    /// A new object with S3's defaults: private, no lock, no encryption.
    fn new(data: Bytes, etag: String, metadata: Metadata, tags: Vec<Tag>) -> Obj {
        Obj {
            data,
            etag,
            last_modified: common::now_millis(),
            version_id: new_version_id(),
            storage_class: None,
            metadata,
            tags,
            grants: common::canned_grants("private", &memory_owner()).unwrap_or_default(),
            retention: Retention::default(),
            legal_hold: None,
            restore_expiry: None,
            sse: None,
            sse_kms_key_id: None,
            bucket_key_enabled: None,
            checksum_algorithm: None,
            website_redirect_location: None,
        }
    }

    /// Apply the attributes a copy or multipart upload gives the new object (checked before).
    fn with_options(mut self, o: &MultipartOptions) -> Result<Obj> {
        self.storage_class = common::normalize_storage_class(o.storage_class.as_deref());
        self.grants = common::new_object_grants(o, &memory_owner())?;
        self.retention = Retention { mode: o.object_lock_mode, retain_until: o.object_lock_retain_until };
        self.legal_hold = o.object_lock_legal_hold;
        self.sse = o.effective_sse();
        let kms = matches!(self.sse.as_deref(), Some("aws:kms" | "aws:kms:dsse"));
        self.sse_kms_key_id = if kms { o.sse_kms_key_id.clone() } else { None };
        self.bucket_key_enabled = if kms { o.bucket_key_enabled } else { None };
        self.checksum_algorithm = o.checksum_algorithm.clone();
        self.website_redirect_location = o.website_redirect_location.clone();
        Ok(self)
    }

    fn info(&self) -> ObjectInfo {
        let restore = self.restore_expiry.filter(|t| *t > common::now_millis()).map(crate::RestoreStatus::done_header);
        ObjectInfo {
            size: self.data.len() as u64,
            etag: self.etag.clone(),
            last_modified: self.last_modified,
            version_id: Some(self.version_id.clone()),
            storage_class: self.storage_class.clone(),
            metadata: self.metadata.clone(),
            restore,
            server_side_encryption: self.sse.clone(),
            sse_kms_key_id: self.sse_kms_key_id.clone(),
            bucket_key_enabled: self.bucket_key_enabled,
            object_lock_mode: self.retention.mode,
            object_lock_retain_until: self.retention.retain_until,
            object_lock_legal_hold: self.legal_hold,
            website_redirect_location: self.website_redirect_location.clone(),
            ..Default::default()
        }
    }

    /// Archived and not restored: `InvalidObjectState`.
    fn check_readable(&self) -> Result<()> {
        common::check_readable(self.storage_class.as_deref(), self.restore_expiry)
    }
}

/// A multipart upload in progress.
#[derive(Debug, Clone)]
struct Upload {
    bucket: String,
    key: String,
    opts: MultipartOptions,
    /// Part number → (bytes, ETag).
    parts: BTreeMap<i32, (Bytes, String)>,
}

/// What a lookup found.
enum Found {
    Real(Box<Obj>),
    /// A virtual object: never written, empty.
    Virtual,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let objects = self.inner.buckets.try_lock().map(|b| b.values().map(BTreeMap::len).sum::<usize>()).ok();
        f.debug_struct("MemoryStore")
            .field("objects", &objects)
            .field("requests", &self.request_count())
            .field("virtual_objects", &self.inner.virtual_objects.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

fn new_version_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore {
            inner: Arc::new(Inner {
                buckets: Mutex::new(BTreeMap::new()),
                uploads: Mutex::new(HashMap::new()),
                faults: Mutex::new(Arc::new(Faults::default())),
                virtual_objects: AtomicBool::new(false),
                requests: AtomicU64::new(0),
                waiting: AtomicUsize::new(0),
                most_waiting: AtomicUsize::new(0),
                created: common::now_millis(),
            }),
        }
    }

    /// Replace the injected faults (`Faults::default()` turns them off).
    pub fn set_faults(&self, f: Faults) {
        *self.inner.faults.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(f);
    }

    /// Turn virtual objects on or off (see the module documentation).
    pub fn set_virtual_objects(&self, on: bool) {
        self.inner.virtual_objects.store(on, Ordering::Relaxed);
    }

    /// Requests received so far, failed ones included.
    pub fn request_count(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// The most requests that were in their injected latency at once (with a latency set: the most in flight).
    pub fn most_in_flight(&self) -> usize {
        self.inner.most_waiting.load(Ordering::Relaxed)
    }

    /// Objects stored, over all buckets (virtual objects are not stored).
    pub fn object_count(&self) -> usize {
        self.buckets().values().map(BTreeMap::len).sum()
    }

    fn virtual_on(&self) -> bool {
        self.inner.virtual_objects.load(Ordering::Relaxed)
    }

    fn buckets(&self) -> MutexGuard<'_, BTreeMap<String, BTreeMap<String, Obj>>> {
        self.inner.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count the request, then apply the faults.
    async fn enter(&self, op: &str) -> Result<()> {
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        let faults = self.inner.faults.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if !faults.only_ops.is_empty() && !faults.only_ops.iter().any(|o| o == op) {
            return Ok(());
        }
        if !faults.latency.is_zero() {
            /// Counts a request out of `waiting` however its wait ends (a dropped request too).
            struct Waiting<'a>(&'a AtomicUsize);
            impl Drop for Waiting<'_> {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::Relaxed);
                }
            }
            let now = self.inner.waiting.fetch_add(1, Ordering::Relaxed) + 1;
            let _waiting = Waiting(&self.inner.waiting);
            self.inner.most_waiting.fetch_max(now, Ordering::Relaxed);
            tokio::time::sleep(faults.latency).await;
        }
        if faults.error_rate <= 0.0 && faults.reset_rate <= 0.0 {
            return Ok(());
        }
        let draw: f64 = rand::random();
        if draw < faults.error_rate {
            let code = if faults.error_code.is_empty() { "InternalError" } else { faults.error_code.as_str() };
            let status = if faults.error_status == 0 { 500 } else { faults.error_status };
            return Err(StorageError::new(code, status, format!("injected fault in {op} (memory backend)")));
        }
        if draw < faults.error_rate + faults.reset_rate {
            return Err(StorageError::connection(format!("injected connection reset in {op} (memory backend)")));
        }
        Ok(())
    }

    /// One key's injected fault inside a batch request: `Ok(Some)` its own error, `Err` a reset of the whole request.
    fn key_fault(faults: &Faults) -> Result<Option<StorageError>> {
        if faults.error_rate <= 0.0 && faults.reset_rate <= 0.0 {
            return Ok(None);
        }
        let draw: f64 = rand::random();
        if draw < faults.error_rate {
            let code = if faults.error_code.is_empty() { "InternalError" } else { faults.error_code.as_str() };
            let status = if faults.error_status == 0 { 500 } else { faults.error_status };
            return Ok(Some(StorageError::new(code, status, "injected fault in delete_object (memory backend)")));
        }
        if draw < faults.error_rate + faults.reset_rate {
            return Err(StorageError::connection("injected connection reset in delete_objects (memory backend)"));
        }
        Ok(None)
    }

    /// Delete `key` (the version named, or the current object) from a bucket, under the lock: a version that is not
    /// the current one is a no-op that succeeds; a protected object is `AccessDenied`.
    fn delete_in(bucket: &mut BTreeMap<String, Obj>, key: &str, version_id: Option<&str>) -> Result<WriteResult> {
        let matches = match (version_id, bucket.get(key)) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(v), Some(o)) => v == o.version_id,
        };
        if matches {
            if let Some(o) = bucket.get(key)
                && common::is_protected(o.retention, o.legal_hold == Some(true))
            {
                return Err(common::locked());
            }
            bucket.remove(key);
        }
        Ok(WriteResult::default())
    }

    /// The object `obj` names, under the lock.
    fn lookup(map: &BTreeMap<String, BTreeMap<String, Obj>>, virtual_on: bool, obj: &ObjectRef) -> Result<Found> {
        let Some(bucket) = map.get(&obj.bucket) else {
            return if virtual_on { Ok(Found::Virtual) } else { Err(StorageError::no_such_bucket(&obj.bucket)) };
        };
        match (bucket.get(&obj.key), &obj.version_id) {
            (Some(o), Some(v)) if *v != o.version_id => Err(StorageError::no_such_version()),
            (Some(o), _) => Ok(Found::Real(Box::new(o.clone()))),
            (None, _) if virtual_on => Ok(Found::Virtual),
            (None, Some(_)) => Err(StorageError::no_such_version()),
            (None, None) => Err(StorageError::no_such_key()),
        }
    }

    fn find(&self, obj: &ObjectRef) -> Result<Found> {
        common::check_key(&obj.key)?;
        Self::lookup(&self.buckets(), self.virtual_on(), obj)
    }

    fn virtual_info(&self, obj: &ObjectRef) -> ObjectInfo {
        ObjectInfo {
            size: 0,
            etag: EMPTY_ETAG.into(),
            last_modified: self.inner.created,
            version_id: obj.version_id.clone(),
            ..Default::default()
        }
    }

    fn uploads(&self) -> MutexGuard<'_, HashMap<String, Upload>> {
        self.inner.uploads.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Change the object `obj` names with `f`; virtual objects accept it and keep nothing.
    fn update(&self, obj: &ObjectRef, f: impl FnOnce(&mut Obj) -> Result<()>) -> Result<WriteResult> {
        common::check_key(&obj.key)?;
        let virtual_on = self.virtual_on();
        let mut map = self.buckets();
        match Self::lookup(&map, virtual_on, obj)? {
            Found::Virtual => Ok(WriteResult { version_id: obj.version_id.clone(), etag: None }),
            Found::Real(_) => {
                let o =
                    map.get_mut(&obj.bucket).and_then(|b| b.get_mut(&obj.key)).ok_or_else(StorageError::no_such_key)?;
                f(o)?;
                Ok(WriteResult { version_id: Some(o.version_id.clone()), etag: None })
            }
        }
    }

    /// The upload `u` names, if it is one of this bucket and key.
    fn upload(&self, u: &MultipartUpload) -> Result<Upload> {
        match self.uploads().get(&u.upload_id) {
            Some(up) if up.bucket == u.bucket && up.key == u.key => Ok(up.clone()),
            _ => Err(common::no_such_upload()),
        }
    }

    /// Record a part of an upload.
    fn add_part(&self, u: &MultipartUpload, part_number: i32, data: Bytes) -> Result<CompletedPart> {
        common::check_part_number(part_number)?;
        let etag = crate::md5_hex(&data);
        let mut uploads = self.uploads();
        match uploads.get_mut(&u.upload_id) {
            Some(up) if up.bucket == u.bucket && up.key == u.key => {
                up.parts.insert(part_number, (data, etag.clone()));
                Ok(CompletedPart { part_number, etag, checksum: None })
            }
            _ => Err(common::no_such_upload()),
        }
    }

    /// Store `o` at `bucket`/`key` (the bucket must exist unless virtual objects are on).
    fn store(&self, bucket: &str, key: &str, o: Obj) -> Result<()> {
        let virtual_on = self.virtual_on();
        let mut map = self.buckets();
        let objects = match map.get_mut(bucket) {
            Some(b) => b,
            None if virtual_on => map.entry(bucket.to_string()).or_default(),
            None => return Err(StorageError::no_such_bucket(bucket)),
        };
        objects.insert(key.to_string(), o);
        Ok(())
    }

    fn check_bucket(&self, bucket: &str) -> Result<()> {
        if self.virtual_on() || self.buckets().contains_key(bucket) {
            Ok(())
        } else {
            Err(StorageError::no_such_bucket(bucket))
        }
    }

    /// Up to a page of objects under `prefix` after `after`, with their version ids; and whether more follow.
    fn listing(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<String>,
        max_keys: usize,
    ) -> Result<(Vec<(ListedObject, String)>, bool)> {
        let page = common::page_size(max_keys);
        let virtual_on = self.virtual_on();
        let map = self.buckets();
        let Some(objects) = map.get(bucket) else {
            return if virtual_on { Ok((Vec::new(), false)) } else { Err(StorageError::no_such_bucket(bucket)) };
        };
        let start = match after {
            Some(c) if c.as_str() >= prefix => Bound::Excluded(c),
            _ => Bound::Included(prefix.to_string()),
        };
        let mut out = Vec::with_capacity(page.min(objects.len()));
        for (key, o) in objects.range::<String, _>((start, Bound::Unbounded)) {
            if !key.starts_with(prefix) {
                break;
            }
            if out.len() == page {
                return Ok((out, true));
            }
            let listed = ListedObject {
                key: key.clone(),
                size: o.data.len() as u64,
                etag: o.etag.clone(),
                last_modified: o.last_modified,
                storage_class: common::listed_storage_class(o.storage_class.as_deref()),
                checksum_algorithm: o.checksum_algorithm.clone(),
            };
            out.push((listed, o.version_id.clone()));
        }
        Ok((out, false))
    }

    /// Replace the tags of the object `obj` names; virtual objects accept it and keep nothing.
    fn update_tags(&self, obj: &ObjectRef, tags: Vec<Tag>) -> Result<WriteResult> {
        self.update(obj, |o| {
            o.tags = tags;
            Ok(())
        })
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        self.enter("create_bucket").await?;
        if bucket.is_empty() {
            return Err(StorageError::new("InvalidBucketName", 400, "The specified bucket is not valid: empty name."));
        }
        self.buckets().entry(bucket.to_string()).or_default();
        Ok(())
    }

    async fn head_object(&self, obj: &ObjectRef) -> Result<ObjectInfo> {
        self.enter("head_object").await?;
        match self.find(obj)? {
            Found::Real(o) => Ok(o.info()),
            Found::Virtual => Ok(self.virtual_info(obj)),
        }
    }

    async fn get_object(&self, obj: &ObjectRef, range: Option<Range<u64>>) -> Result<GetResult> {
        self.enter("get_object").await?;
        let (info, data) = match self.find(obj)? {
            Found::Real(o) => {
                o.check_readable()?;
                (o.info(), o.data)
            }
            Found::Virtual => (self.virtual_info(obj), Bytes::new()),
        };
        let r = common::resolve_range(range.as_ref(), info.size)?;
        let body = data.slice(r.start as usize..r.end as usize);
        Ok(GetResult { info, body: futures::stream::iter([Ok(body)]).boxed() })
    }

    async fn put_object(&self, bucket: &str, key: &str, body: PutBody, opts: &PutOptions) -> Result<WriteResult> {
        self.enter("put_object").await?;
        common::check_key(key)?;
        common::check_tags(&opts.tags)?;
        self.check_bucket(bucket)?;
        let data = match body {
            PutBody::Bytes(b) => b,
            PutBody::File(path) => Bytes::from(tokio::fs::read(&path).await.map_err(|e| StorageError::io(&e))?),
        };
        let o =
            Obj::new(data.clone(), crate::md5_hex(&data), common::stored_metadata(&opts.metadata), opts.tags.clone());
        let result = WriteResult { version_id: Some(o.version_id.clone()), etag: Some(o.etag.clone()) };
        self.store(bucket, key, o)?;
        Ok(result)
    }

    async fn copy_object(&self, req: &CopyRequest) -> Result<WriteResult> {
        self.enter("copy_object").await?;
        common::check_copy_request(req, "memory", CAPABILITIES)?;
        let source = self.find(&req.source)?;
        let src_info = match &source {
            Found::Real(o) => o.info(),
            Found::Virtual => self.virtual_info(&req.source),
        };
        common::check_copy_preconditions(req, src_info.last_modified)?;
        self.check_bucket(&req.dest_bucket)?;
        let Found::Real(src) = source else {
            // A virtual source makes a virtual (empty) copy: nothing to keep.
            return Ok(WriteResult { version_id: Some(new_version_id()), etag: Some(EMPTY_ETAG.into()) });
        };
        src.check_readable()?;
        let src = *src;
        let (metadata, redirect) = match &req.replace_metadata {
            Some(m) => (common::stored_metadata(m), None),
            None => (src.metadata, src.website_redirect_location),
        };
        let tags = req.tags.clone().unwrap_or(src.tags);
        let opts = req.new_object_options(Metadata::default(), Vec::new(), redirect);
        let o = Obj::new(src.data, src.etag, metadata, tags).with_options(&opts)?;
        let result = WriteResult { version_id: Some(o.version_id.clone()), etag: Some(o.etag.clone()) };
        self.store(&req.dest_bucket, &req.dest_key, o)?;
        Ok(result)
    }

    async fn delete_object(&self, obj: &ObjectRef) -> Result<WriteResult> {
        self.enter("delete_object").await?;
        common::check_key(&obj.key)?;
        let virtual_on = self.virtual_on();
        let mut map = self.buckets();
        match map.get_mut(&obj.bucket) {
            Some(bucket) => Self::delete_in(bucket, &obj.key, obj.version_id.as_deref()),
            None if virtual_on => Ok(WriteResult::default()),
            None => Err(StorageError::no_such_bucket(&obj.bucket)),
        }
    }

    /// Faults named `delete_objects` (or all) hit the whole request; faults named `delete_object` (or all) hit
    /// each key on its own: an injected error becomes that key's error, an injected connection reset breaks the
    /// whole request.
    async fn delete_objects(&self, bucket: &str, keys: &[DeleteKey]) -> Result<DeleteResults> {
        self.enter("delete_objects").await?;
        crate::check_delete_batch(keys)?;
        let faults = self.inner.faults.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let per_key = faults.only_ops.is_empty() || faults.only_ops.iter().any(|o| o == "delete_object");
        let mut injected = Vec::with_capacity(keys.len());
        for _ in keys {
            injected.push(if per_key { Self::key_fault(&faults)? } else { None });
        }
        let virtual_on = self.virtual_on();
        let mut map = self.buckets();
        let Some(b) = map.get_mut(bucket) else {
            return if virtual_on {
                Ok(injected.into_iter().map(|f| f.map_or(Ok(WriteResult::default()), Err)).collect())
            } else {
                Err(StorageError::no_such_bucket(bucket))
            };
        };
        Ok(keys
            .iter()
            .zip(injected)
            .map(|(k, fault)| match fault {
                Some(e) => Err(e),
                None => common::check_key(&k.key).and_then(|()| Self::delete_in(b, &k.key, k.version_id.as_deref())),
            })
            .collect())
    }

    async fn get_object_tagging(&self, obj: &ObjectRef) -> Result<Vec<Tag>> {
        self.enter("get_object_tagging").await?;
        match self.find(obj)? {
            Found::Real(o) => Ok(o.tags),
            Found::Virtual => Ok(Vec::new()),
        }
    }

    async fn put_object_tagging(&self, obj: &ObjectRef, tags: &[Tag]) -> Result<WriteResult> {
        self.enter("put_object_tagging").await?;
        common::check_tags(tags)?;
        self.update_tags(obj, tags.to_vec())
    }

    async fn delete_object_tagging(&self, obj: &ObjectRef) -> Result<WriteResult> {
        self.enter("delete_object_tagging").await?;
        self.update_tags(obj, Vec::new())
    }

    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
        max_keys: usize,
    ) -> Result<ListPage> {
        self.enter("list_objects").await?;
        let (entries, more) = self.listing(bucket, prefix, continuation, max_keys)?;
        let objects: Vec<ListedObject> = entries.into_iter().map(|(o, _)| o).collect();
        let next_token = if more { objects.last().map(|o| o.key.clone()) } else { None };
        Ok(ListPage { objects, next_token })
    }

    async fn list_object_versions(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: Option<String>,
        _version_marker: Option<String>,
        max_keys: usize,
    ) -> Result<VersionPage> {
        self.enter("list_object_versions").await?;
        // One version a key: a page that ended inside a key ended with its only version, so the next page
        // starts after the key marker whatever the version marker says.
        let (entries, more) = self.listing(bucket, prefix, key_marker, max_keys)?;
        let versions: Vec<ObjectVersion> = entries
            .into_iter()
            .map(|(o, version_id)| ObjectVersion {
                key: o.key,
                version_id,
                is_latest: true,
                delete_marker: false,
                size: o.size,
                etag: o.etag,
                last_modified: o.last_modified,
                storage_class: o.storage_class,
            })
            .collect();
        let last = versions.last().filter(|_| more);
        Ok(VersionPage {
            next_key_marker: last.map(|v| v.key.clone()),
            next_version_marker: last.map(|v| v.version_id.clone()),
            versions,
        })
    }

    async fn put_object_acl(&self, obj: &ObjectRef, acl: &Acl) -> Result<()> {
        self.enter("put_object_acl").await?;
        let grants = match acl {
            Acl::Canned(c) => common::canned_grants(c, &memory_owner())?,
            Acl::Policy(p) => p.grants.clone(),
        };
        self.update(obj, |o| {
            o.grants = grants;
            Ok(())
        })?;
        Ok(())
    }

    async fn get_object_acl(&self, obj: &ObjectRef) -> Result<AclPolicy> {
        self.enter("get_object_acl").await?;
        let grants = match self.find(obj)? {
            Found::Real(o) => o.grants,
            Found::Virtual => common::canned_grants("private", &memory_owner())?,
        };
        Ok(AclPolicy { owner: memory_owner(), grants })
    }

    async fn put_object_retention(
        &self,
        obj: &ObjectRef,
        mode: Option<RetentionMode>,
        retain_until: Option<Millis>,
        bypass_governance: bool,
        event_hold: Option<crate::EventHold>,
    ) -> Result<()> {
        if event_hold.is_some() {
            return Err(StorageError::not_implemented("object lock event holds", "memory"));
        }
        self.enter("put_object_retention").await?;
        let new = Retention { mode, retain_until };
        common::check_retention_change(Retention::default(), new, false)?;
        self.update(obj, |o| {
            common::check_retention_change(o.retention, new, bypass_governance)?;
            o.retention = new;
            Ok(())
        })?;
        Ok(())
    }

    async fn get_object_retention(&self, obj: &ObjectRef) -> Result<Retention> {
        self.enter("get_object_retention").await?;
        match self.find(obj)? {
            Found::Real(o) => Ok(o.retention),
            Found::Virtual => Ok(Retention::default()),
        }
    }

    async fn put_object_legal_hold(&self, obj: &ObjectRef, on: bool) -> Result<()> {
        self.enter("put_object_legal_hold").await?;
        self.update(obj, |o| {
            o.legal_hold = Some(on);
            Ok(())
        })?;
        Ok(())
    }

    async fn get_object_legal_hold(&self, obj: &ObjectRef) -> Result<bool> {
        self.enter("get_object_legal_hold").await?;
        match self.find(obj)? {
            Found::Real(o) => Ok(o.legal_hold == Some(true)),
            Found::Virtual => Ok(false),
        }
    }

    async fn restore_object(&self, obj: &ObjectRef, days: Option<i32>, _tier: Option<RestoreTier>) -> Result<()> {
        self.enter("restore_object").await?;
        self.update(obj, |o| {
            o.restore_expiry = Some(common::restore_expiry(o.storage_class.as_deref(), days)?);
            Ok(())
        })?;
        Ok(())
    }

    async fn create_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        opts: &MultipartOptions,
    ) -> Result<MultipartUpload> {
        self.enter("create_multipart_upload").await?;
        common::check_supported(opts, "memory", CAPABILITIES)?;
        common::check_key(key)?;
        common::check_new_object(opts)?;
        self.check_bucket(bucket)?;
        let upload_id = new_version_id();
        let up = Upload { bucket: bucket.into(), key: key.into(), opts: opts.clone(), parts: BTreeMap::new() };
        self.uploads().insert(upload_id.clone(), up);
        Ok(MultipartUpload {
            bucket: bucket.into(),
            key: key.into(),
            upload_id,
            checksum_algorithm: opts.checksum_algorithm.clone(),
            requester_pays: opts.requester_pays,
        })
    }

    async fn upload_part_copy(
        &self,
        upload: &MultipartUpload,
        part_number: i32,
        source: &ObjectRef,
        range: Option<Range<u64>>,
    ) -> Result<CompletedPart> {
        self.enter("upload_part_copy").await?;
        self.upload(upload)?;
        let data = match self.find(source)? {
            Found::Real(o) => {
                o.check_readable()?;
                o.data
            }
            Found::Virtual => Bytes::new(),
        };
        let r = common::part_copy_range(range.as_ref(), data.len() as u64)?;
        self.add_part(upload, part_number, data.slice(r.start as usize..r.end as usize))
    }

    async fn upload_part(&self, upload: &MultipartUpload, part_number: i32, data: Bytes) -> Result<CompletedPart> {
        self.enter("upload_part").await?;
        self.add_part(upload, part_number, data)
    }

    async fn complete_multipart_upload(
        &self,
        upload: &MultipartUpload,
        parts: &[CompletedPart],
    ) -> Result<WriteResult> {
        self.enter("complete_multipart_upload").await?;
        let up = self.upload(upload)?;
        let uploaded: Vec<(i32, String, u64)> =
            up.parts.iter().map(|(n, (d, e))| (*n, e.clone(), d.len() as u64)).collect();
        let order = common::check_complete(parts, &uploaded)?;
        let datas: Vec<&(Bytes, String)> = up.parts.values().collect();
        let data: Vec<u8> = order.iter().flat_map(|&i| datas[i].0.iter().copied()).collect();
        let etag = common::multipart_etag(order.iter().map(|&i| datas[i].1.as_str()));
        let o = Obj::new(Bytes::from(data), etag, common::stored_metadata(&up.opts.metadata), up.opts.tags.clone())
            .with_options(&up.opts)?;
        let result = WriteResult { version_id: Some(o.version_id.clone()), etag: Some(o.etag.clone()) };
        self.store(&up.bucket, &up.key, o)?;
        self.uploads().remove(&upload.upload_id);
        Ok(result)
    }

    async fn abort_multipart_upload(&self, upload: &MultipartUpload) -> Result<()> {
        self.enter("abort_multipart_upload").await?;
        self.upload(upload)?;
        self.uploads().remove(&upload.upload_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;

    async fn store() -> (MemoryStore, ()) {
        (MemoryStore::new(), ())
    }

    conformance::conformance_tests!(store, crate::conformance::Profile::memory());

    #[tokio::test]
    async fn error_faults_are_transient_and_counted() {
        let m = MemoryStore::new();
        m.create_bucket("b").await.unwrap();
        m.set_faults(Faults {
            error_rate: 1.0,
            error_code: "SlowDown".into(),
            error_status: 503,
            ..Default::default()
        });
        let e = m.head_object(&ObjectRef::new("b", "k")).await.unwrap_err();
        assert_eq!((e.code.as_str(), e.http_status, e.transient), ("SlowDown", 503, true));
        let e = m.put_object("b", "k", PutBody::Bytes(Bytes::from_static(b"x")), &PutOptions::default()).await;
        assert!(e.unwrap_err().transient);
        assert_eq!(m.request_count(), 3);
        assert_eq!(m.object_count(), 0);

        m.set_faults(Faults {
            error_rate: 1.0,
            error_code: "AccessDenied".into(),
            error_status: 403,
            ..Default::default()
        });
        let e = m.head_object(&ObjectRef::new("b", "k")).await.unwrap_err();
        assert_eq!((e.code.as_str(), e.transient), ("AccessDenied", false));

        m.set_faults(Faults::default());
        m.put_object("b", "k", PutBody::Bytes(Bytes::from_static(b"x")), &PutOptions::default()).await.unwrap();
        assert_eq!(m.object_count(), 1);
    }

    #[tokio::test]
    async fn resets_are_transient() {
        let m = MemoryStore::new();
        m.create_bucket("b").await.unwrap();
        m.set_faults(Faults { reset_rate: 1.0, ..Default::default() });
        let e = m.list_objects("b", "", None, 10).await.unwrap_err();
        assert_eq!(e.code, "ConnectionReset");
        assert!(e.transient);
    }

    #[tokio::test]
    async fn partial_rates_fail_some_requests() {
        let m = MemoryStore::new();
        m.create_bucket("b").await.unwrap();
        m.set_faults(Faults {
            error_rate: 0.3,
            error_code: "SlowDown".into(),
            error_status: 503,
            reset_rate: 0.2,
            ..Default::default()
        });
        let (mut ok, mut slow, mut reset) = (0, 0, 0);
        for _ in 0..2000 {
            match m.list_objects("b", "", None, 10).await {
                Ok(_) => ok += 1,
                Err(e) if e.code == "SlowDown" => slow += 1,
                Err(e) if e.code == "ConnectionReset" => reset += 1,
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert!((800..1200).contains(&ok), "ok {ok}");
        assert!((450..750).contains(&slow), "slow {slow}");
        assert!((280..520).contains(&reset), "reset {reset}");
    }

    #[tokio::test]
    async fn only_ops_limits_faults() {
        let m = MemoryStore::new();
        m.create_bucket("b").await.unwrap();
        m.put_object("b", "k", PutBody::Bytes(Bytes::from_static(b"x")), &PutOptions::default()).await.unwrap();
        m.set_faults(Faults {
            error_rate: 1.0,
            error_code: "SlowDown".into(),
            error_status: 503,
            only_ops: vec!["put_object_tagging".into()],
            ..Default::default()
        });
        let k = ObjectRef::new("b", "k");
        m.head_object(&k).await.unwrap();
        m.get_object_tagging(&k).await.unwrap();
        assert_eq!(m.put_object_tagging(&k, &[Tag::new("a", "b")]).await.unwrap_err().code, "SlowDown");
    }

    #[tokio::test]
    async fn only_ops_names_the_new_operations() {
        let m = MemoryStore::new();
        m.create_bucket("b").await.unwrap();
        m.put_object("b", "k", PutBody::Bytes(Bytes::from_static(b"x")), &PutOptions::default()).await.unwrap();
        let k = ObjectRef::new("b", "k");
        let ops = [
            "put_object_acl",
            "get_object_acl",
            "put_object_retention",
            "get_object_retention",
            "put_object_legal_hold",
            "get_object_legal_hold",
            "restore_object",
            "list_object_versions",
            "create_multipart_upload",
            "upload_part",
            "upload_part_copy",
            "complete_multipart_upload",
            "abort_multipart_upload",
        ];
        for op in ops {
            m.set_faults(Faults {
                error_rate: 1.0,
                error_code: "SlowDown".into(),
                error_status: 503,
                only_ops: vec![op.into()],
                ..Default::default()
            });
            let upload = MultipartUpload {
                bucket: "b".into(),
                key: "u".into(),
                upload_id: "none".into(),
                checksum_algorithm: None,
                requester_pays: false,
            };
            let e = match op {
                "put_object_acl" => m.put_object_acl(&k, &Acl::Canned("private".into())).await.unwrap_err(),
                "get_object_acl" => m.get_object_acl(&k).await.unwrap_err(),
                "put_object_retention" => m.put_object_retention(&k, None, None, false, None).await.unwrap_err(),
                "get_object_retention" => m.get_object_retention(&k).await.unwrap_err(),
                "put_object_legal_hold" => m.put_object_legal_hold(&k, true).await.unwrap_err(),
                "get_object_legal_hold" => m.get_object_legal_hold(&k).await.unwrap_err(),
                "restore_object" => m.restore_object(&k, Some(1), None).await.unwrap_err(),
                "list_object_versions" => m.list_object_versions("b", "", None, None, 10).await.unwrap_err(),
                "create_multipart_upload" => {
                    m.create_multipart_upload("b", "u", &MultipartOptions::default()).await.unwrap_err()
                }
                "upload_part" => m.upload_part(&upload, 1, Bytes::new()).await.unwrap_err(),
                "upload_part_copy" => m.upload_part_copy(&upload, 1, &k, None).await.unwrap_err(),
                "complete_multipart_upload" => m.complete_multipart_upload(&upload, &[]).await.unwrap_err(),
                _ => m.abort_multipart_upload(&upload).await.unwrap_err(),
            };
            assert_eq!(e.code, "SlowDown", "{op}");
            // The other operations are untouched.
            m.head_object(&k).await.unwrap();
        }
        // Listing versions does not count as a listing of objects.
        m.set_faults(Faults { error_rate: 1.0, only_ops: vec!["list_objects".into()], ..Default::default() });
        assert_eq!(m.list_object_versions("b", "", None, None, 10).await.unwrap().versions.len(), 1);
    }

    #[tokio::test]
    async fn virtual_objects_take_the_new_writes() {
        let m = MemoryStore::new();
        m.set_virtual_objects(true);
        let k = ObjectRef::new("any", "never/written");
        m.put_object_acl(&k, &Acl::Canned("public-read".into())).await.unwrap();
        assert_eq!(m.get_object_acl(&k).await.unwrap().grants.len(), 1, "nothing kept");
        m.put_object_legal_hold(&k, true).await.unwrap();
        assert!(!m.get_object_legal_hold(&k).await.unwrap());
        let until = common::now_millis() + 60_000;
        m.put_object_retention(&k, Some(RetentionMode::Compliance), Some(until), false, None).await.unwrap();
        assert_eq!(m.get_object_retention(&k).await.unwrap(), Retention::default());
        m.restore_object(&k, Some(1), Some(RestoreTier::Bulk)).await.unwrap();
        m.delete_object(&k).await.unwrap();
        assert_eq!(m.object_count(), 0);
    }

    #[tokio::test]
    async fn object_lock_rules() {
        let m = MemoryStore::new();
        m.create_bucket("b").await.unwrap();
        m.put_object("b", "k", PutBody::Bytes(Bytes::from_static(b"x")), &PutOptions::default()).await.unwrap();
        let k = ObjectRef::new("b", "k");
        let soon = common::now_millis() + 60_000;
        let later = soon + 60_000;
        let comp = Some(RetentionMode::Compliance);
        m.put_object_retention(&k, comp, Some(soon), false, None).await.unwrap();
        assert_eq!(m.put_object_retention(&k, None, None, true, None).await.unwrap_err().code, "AccessDenied");
        assert_eq!(
            m.put_object_retention(&k, comp, Some(soon - 1000), true, None).await.unwrap_err().code,
            "AccessDenied"
        );
        let gov = Some(RetentionMode::Governance);
        assert_eq!(m.put_object_retention(&k, gov, Some(later), true, None).await.unwrap_err().code, "AccessDenied");
        m.put_object_retention(&k, comp, Some(later), false, None).await.unwrap();
        assert_eq!(m.delete_object(&k).await.unwrap_err().http_status, 403);
        assert_eq!(m.put_object_retention(&k, comp, None, false, None).await.unwrap_err().code, "MalformedXML");
        // An overwrite replaces the one version a key holds (documented), with no lock.
        m.put_object("b", "k", PutBody::Bytes(Bytes::from_static(b"y")), &PutOptions::default()).await.unwrap();
        assert_eq!(m.get_object_retention(&k).await.unwrap(), Retention::default());
        m.delete_object(&k).await.unwrap();
        assert_eq!(m.get_object_legal_hold(&k).await.unwrap_err().code, "NoSuchKey");
    }

    #[tokio::test(start_paused = true)]
    async fn latency_uses_tokio_time() {
        let m = MemoryStore::new();
        m.create_bucket("b").await.unwrap();
        m.set_faults(Faults { latency: Duration::from_secs(30), ..Default::default() });
        let t0 = tokio::time::Instant::now();
        let e = m.head_object(&ObjectRef::new("b", "missing")).await.unwrap_err();
        assert_eq!(e.code, "NoSuchKey");
        assert!(t0.elapsed() >= Duration::from_secs(30), "{:?}", t0.elapsed());
        // Concurrent requests wait concurrently.
        let t1 = tokio::time::Instant::now();
        let (a, b) = tokio::join!(m.list_objects("b", "", None, 1), m.list_objects("b", "", None, 1));
        a.unwrap();
        b.unwrap();
        assert!(t1.elapsed() < Duration::from_secs(60));
    }

    #[tokio::test]
    async fn virtual_objects_exist_and_do_not_grow() {
        let m = MemoryStore::new();
        m.set_virtual_objects(true);
        let k = ObjectRef::new("any-bucket", "never/written").with_version(Some("v1".into()));
        let info = m.head_object(&k).await.unwrap();
        assert_eq!((info.size, info.etag.as_str()), (0, crate::md5_hex(b"").as_str()));
        assert_eq!(info.version_id.as_deref(), Some("v1"));
        assert!(m.get_object(&k, None).await.unwrap().bytes().await.unwrap().is_empty());
        m.put_object_tagging(&k, &[Tag::new("a", "b")]).await.unwrap();
        assert!(m.get_object_tagging(&k).await.unwrap().is_empty());
        m.delete_object_tagging(&k).await.unwrap();
        let mut copy = CopyRequest::new(k.clone(), "other", "dest");
        copy.replace_metadata = Some(Metadata { content_type: Some("text/plain".into()), ..Default::default() });
        m.copy_object(&copy).await.unwrap();
        m.delete_object(&k).await.unwrap();
        assert_eq!(m.object_count(), 0);
        assert!(m.list_objects("nope", "", None, 10).await.unwrap().objects.is_empty());

        // Real writes are kept and behave as usual.
        m.put_object("reports", "r.csv", PutBody::Bytes(Bytes::from_static(b"row")), &PutOptions::default())
            .await
            .unwrap();
        assert_eq!(m.object_count(), 1);
        let r = ObjectRef::new("reports", "r.csv");
        m.put_object_tagging(&r, &[Tag::new("a", "b")]).await.unwrap();
        assert_eq!(m.get_object_tagging(&r).await.unwrap(), vec![Tag::new("a", "b")]);
        assert_eq!(m.head_object(&r).await.unwrap().size, 3);
        assert_eq!(m.list_objects("reports", "", None, 10).await.unwrap().objects.len(), 1);

        m.set_virtual_objects(false);
        assert_eq!(m.head_object(&ObjectRef::new("any-bucket", "x")).await.unwrap_err().code, "NoSuchBucket");
    }

    #[tokio::test]
    async fn versions_are_fresh_per_write() {
        let m = MemoryStore::new();
        m.create_bucket("b").await.unwrap();
        let put = |body: &'static [u8]| {
            let m = m.clone();
            async move {
                m.put_object("b", "k", PutBody::Bytes(Bytes::from_static(body)), &PutOptions::default()).await.unwrap()
            }
        };
        let v1 = put(b"one").await.version_id.unwrap();
        let v2 = put(b"two").await.version_id.unwrap();
        assert_ne!(v1, v2);
        let k = ObjectRef::new("b", "k");
        assert_eq!(
            m.head_object(&k.clone().with_version(Some(v2.clone()))).await.unwrap().version_id,
            Some(v2.clone())
        );
        let e = m.head_object(&k.clone().with_version(Some(v1.clone()))).await.unwrap_err();
        assert_eq!((e.code.as_str(), e.http_status), ("NoSuchVersion", 404));
        // Tagging does not make a new version.
        let w = m.put_object_tagging(&k, &[Tag::new("t", "1")]).await.unwrap();
        assert_eq!(w.version_id, Some(v2.clone()));
        // Deleting another version leaves the object.
        m.delete_object(&k.clone().with_version(Some(v1))).await.unwrap();
        assert!(m.head_object(&k).await.is_ok());
        m.delete_object(&k.clone().with_version(Some(v2))).await.unwrap();
        assert_eq!(m.head_object(&k).await.unwrap_err().code, "NoSuchKey");
    }

    #[test]
    fn is_debug_send_sync() {
        fn check<T: std::fmt::Debug + Send + Sync + Clone + 'static>() {}
        check::<MemoryStore>();
        assert!(format!("{:?}", MemoryStore::new()).contains("MemoryStore"));
    }
}
