//! [`LocalStore`]: a directory whose sub-directories are buckets, the embedded default backend.
//!
//! Layout under the root:
//!
//! - `<bucket>/<key>`: the object's bytes. Keys are used byte for byte as relative paths and never normalised; a
//!   key that cannot be one (an empty segment as in `a//b` or a trailing `/`, a `.` or `..` segment, a NUL byte, a
//!   segment longer than 255 bytes) is refused with `InvalidArgument` (400). Nor can a key be both an object and
//!   the directory of other keys (`a` and `a/b`): the second write is refused with `InvalidArgument` (400).
//! - `.s3batch-meta/<bucket>/<key>.meta.json`: a sidecar with the metadata, tags, storage class and the cached ETag
//!   (hex MD5, keyed by size, mtime and inode so that a file changed by hand is hashed again). A file dropped in by
//!   hand has no sidecar: it is an object with no metadata, whose ETag is computed on first sight and cached.
//!   When `<leaf>.meta.json` would exceed 255 bytes the sidecar is `<md5 of leaf>.meta-long.json` instead.
//! - `.s3batch-tmp/`: writes go to a temporary file here, then are renamed into place (atomic, never listed).
//! - `.s3batch-uploads/<upload id>/`: a multipart upload in progress: `upload.json` (bucket, key, the new
//!   object's attributes) and its parts, `part-<n>` with the part's MD5 in `part-<n>.md5`. Completing it writes
//!   the object (ETag `<md5 of the parts' md5s>-<count>`, as S3) and removes the directory.
//!
//! Bucket names are single path segments that do not start with `.` (else `InvalidBucketName`, 400), so neither
//! hidden directory can be a bucket. The store is unversioned: a version id of `None` or `"null"` names the object;
//! any other version id answers `NoSuchVersion` (a DELETE of it is a no-op that succeeds, as S3 answers for a
//! version that does not exist); ListObjectVersions lists each object once, as version `null`.
//!
//! A directory cannot enforce ACLs, object lock or server-side encryption, nor does this backend compute
//! additional checksums: those calls, and copies or uploads asking for them, answer `NotImplemented` (501).
//! Restores work: an object in an archive class (GLACIER, DEEP_ARCHIVE) cannot be read or copied until
//! restored; a restore completes at once and is recorded in the sidecar with its expiry.
//!
//! Symbolic links inside a bucket are not followed: a link is neither an object nor a directory to walk (listings
//! skip it, so `x -> .` cannot make a listing loop or repeat), and a key whose path passes through one (a linked
//! directory, or the object itself) names no object: reads answer `NoSuchKey`, writes `InvalidArgument`, and a
//! DELETE removes nothing. So a link cannot reach files outside the bucket, even one swapped in for a directory
//! while a request runs: every open, create, rename, removal and walk goes from directory descriptor to directory
//! descriptor without following links (`crate::beneath`). (The bucket directory itself may be a link: that is the
//! operator's choice of where the bucket lives.)
//!
//! Filesystem work runs on the blocking pool; GETs stream the file 64 KiB at a time.

use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use md5::{Digest, Md5};
use rustix::fs::FileType;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::beneath::{self, Blocked, KeyDirs};
use crate::common;
use crate::{
    Acl, AclPolicy, CompletedPart, CopyRequest, DeleteKey, DeleteResults, GetResult, ListPage, ListedObject, Metadata,
    Millis, MultipartOptions, MultipartUpload, ObjectInfo, ObjectRef, ObjectStore, ObjectVersion, PutBody, PutOptions,
    RestoreTier, Result, Retention, RetentionMode, StorageError, Tag, VersionPage, WriteResult,
};

const META_DIR: &str = ".s3batch-meta";
const TMP_DIR: &str = ".s3batch-tmp";
const UPLOADS_DIR: &str = ".s3batch-uploads";
const UPLOAD_FILE: &str = "upload.json";

/// What a directory can keep: none of ACLs, object lock, encryption, additional checksums.
const CAPABILITIES: common::Capabilities =
    common::Capabilities { acl: false, encryption: false, object_lock: false, checksums: false, event_hold: false };
const META_SUFFIX: &str = ".meta.json";
const LONG_META_SUFFIX: &str = ".meta-long.json";
const NAME_MAX: usize = 255;
const CHUNK: usize = 64 * 1024;
const LOCK_STRIPES: usize = 64;
/// Temporary files older than this are left-overs of a crash: removed when a store opens the root.
const STALE_TMP: Duration = Duration::from_secs(3600);

/// A directory of buckets. Clones share the same root and locks.
#[derive(Debug, Clone)]
pub struct LocalStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    /// Striped per-key locks: a key's sidecar and data change together.
    locks: Vec<Mutex<()>>,
}

/// What the sidecar of an object holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Sidecar {
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    storage_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    etag: Option<CachedEtag>,
    /// When the restored copy of an archived object expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    restore_expiry: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    website_redirect_location: Option<String>,
}

/// What `upload.json` of a multipart upload holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UploadState {
    bucket: String,
    key: String,
    opts: MultipartOptions,
}

/// The MD5 of the data file as it was when hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CachedEtag {
    #[serde(flatten)]
    stamp: Stamp,
    etag: String,
}

/// What identifies one content of a data file: a write renames a new inode into place; an edit by hand changes
/// the mtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    size: u64,
    mtime_ns: i64,
    #[serde(default)]
    inode: u64,
}

impl Stamp {
    fn of(md: &fs::Metadata) -> Stamp {
        Stamp { size: md.len(), mtime_ns: mtime_ns(md), inode: inode(md) }
    }
}

fn mtime_ns(md: &fs::Metadata) -> i64 {
    match md.modified() {
        Ok(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
        },
        Err(_) => 0,
    }
}

#[cfg(unix)]
fn inode(md: &fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(md)
}

#[cfg(not(unix))]
fn inode(_md: &fs::Metadata) -> u64 {
    0
}

/// An object opened for reading: the open file, what HEAD says, its sidecar.
struct Opened {
    file: File,
    info: ObjectInfo,
    sidecar: Sidecar,
}

impl LocalStore {
    /// A store rooted at `root`, which is created if missing.
    pub fn new(root: impl AsRef<Path>) -> io::Result<LocalStore> {
        let root = root.as_ref().to_path_buf();
        fs::create_dir_all(&root)?;
        fs::create_dir_all(root.join(META_DIR))?;
        fs::create_dir_all(root.join(TMP_DIR))?;
        fs::create_dir_all(root.join(UPLOADS_DIR))?;
        remove_stale_tmp(&root.join(TMP_DIR));
        let locks = (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect();
        Ok(LocalStore { inner: Arc::new(Inner { root, locks }) })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Run `f` on the blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StorageError::new("InternalError", 500, format!("local store task failed: {e}")))?
    }
}

fn remove_stale_tmp(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > STALE_TMP);
        if old {
            let _ = fs::remove_file(e.path());
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Names and paths

fn invalid_key(key: &str, why: &str) -> StorageError {
    StorageError::new(
        "InvalidArgument",
        400,
        format!(
            "Object key {key:?} cannot be stored by the local backend: {why}. Keys are used as relative paths, byte for byte."
        ),
    )
}

/// A key the local store can hold: S3's rules, and a relative path with nothing to normalise.
fn check_local_key(key: &str) -> Result<()> {
    common::check_key(key)?;
    if key.contains('\0') {
        return Err(invalid_key(key, "it contains a NUL byte"));
    }
    for seg in key.split('/') {
        match seg {
            "" => {
                return Err(invalid_key(key, "it has an empty path segment (leading, trailing or doubled '/')"));
            }
            "." | ".." => return Err(invalid_key(key, "it has a '.' or '..' path segment")),
            s if s.len() > NAME_MAX => {
                return Err(invalid_key(key, &format!("a path segment is longer than {NAME_MAX} bytes")));
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_bucket_name(bucket: &str) -> Result<()> {
    let bad = bucket.is_empty()
        || bucket.starts_with('.')
        || bucket.contains('/')
        || bucket.contains('\\')
        || bucket.contains('\0')
        || bucket.len() > NAME_MAX;
    if bad {
        return Err(StorageError::new(
            "InvalidBucketName",
            400,
            format!(
                "The specified bucket is not valid: {bucket:?} (the local backend needs a single path segment not starting with '.')"
            ),
        ));
    }
    Ok(())
}

fn conflict(key: &str) -> StorageError {
    invalid_key(key, "it would be both an object and the directory of other keys (e.g. 'a' and 'a/b')")
}

fn io_error(what: &str, path: &Path, e: &io::Error) -> StorageError {
    let message = format!("{what} {}: {e}", path.display());
    match e.kind() {
        io::ErrorKind::PermissionDenied => StorageError::new("AccessDenied", 403, message),
        _ => StorageError::new("InternalError", 500, message),
    }
}

/// Whether an error means "nothing there" (a missing file, or a file where a directory was expected).
fn is_absent(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

impl Inner {
    fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.root.join(bucket)
    }

    fn data_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }

    fn meta_bucket_dir(&self, bucket: &str) -> PathBuf {
        self.root.join(META_DIR).join(bucket)
    }

    fn meta_path(&self, bucket: &str, key: &str) -> PathBuf {
        let (dir, leaf) = key.rsplit_once('/').unwrap_or(("", key));
        let name = if leaf.len() + META_SUFFIX.len() <= NAME_MAX {
            format!("{leaf}{META_SUFFIX}")
        } else {
            format!("{}{LONG_META_SUFFIX}", crate::md5_hex(leaf.as_bytes()))
        };
        let base = self.meta_bucket_dir(bucket);
        if dir.is_empty() { base.join(name) } else { base.join(dir).join(name) }
    }

    fn tmp_path(&self) -> PathBuf {
        self.root.join(TMP_DIR).join(format!("{}.tmp", uuid::Uuid::new_v4().simple()))
    }

    fn lock(&self, bucket: &str, key: &str) -> MutexGuard<'_, ()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (bucket, key).hash(&mut h);
        let i = (h.finish() % self.locks.len() as u64) as usize;
        self.locks[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The directories of `key` in `bucket`, opened without following links (see [`beneath`]); `NoSuchKey` where
    /// one is a link, missing or a file.
    fn key_dirs<'k>(&self, bucket: &str, key: &'k str) -> Result<KeyDirs<'k>> {
        match KeyDirs::open(&self.bucket_dir(bucket), key, false) {
            Ok(d) => Ok(d),
            Err(Blocked::Link | Blocked::Absent | Blocked::FileInTheWay) => Err(StorageError::no_such_key()),
            Err(Blocked::Io(e)) => Err(io_error("open", &self.data_path(bucket, key), &e)),
        }
    }

    /// `NoSuchKey` unless `key` is a regular file in `bucket`, reached through no link.
    fn object_file(&self, bucket: &str, key: &str) -> Result<()> {
        match self.key_dirs(bucket, key)?.leaf_type() {
            Ok(Some(FileType::RegularFile)) => Ok(()),
            Ok(_) => Err(StorageError::no_such_key()),
            Err(e) => Err(io_error("stat", &self.data_path(bucket, key), &e)),
        }
    }

    /// `NoSuchBucket` unless the bucket directory exists.
    fn check_bucket(&self, bucket: &str) -> Result<()> {
        check_bucket_name(bucket)?;
        let dir = self.bucket_dir(bucket);
        match fs::metadata(&dir) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(StorageError::no_such_bucket(bucket)),
            Err(e) if is_absent(&e) => Err(StorageError::no_such_bucket(bucket)),
            Err(e) => Err(io_error("stat", &dir, &e)),
        }
    }

    /// Bucket and key valid, bucket present, version `None` or `"null"`.
    fn check_object(&self, obj: &ObjectRef) -> Result<()> {
        check_bucket_name(&obj.bucket)?;
        check_local_key(&obj.key)?;
        self.check_bucket(&obj.bucket)?;
        match obj.version_id.as_deref() {
            None | Some("null") => Ok(()),
            Some(_) => Err(StorageError::no_such_version()),
        }
    }

    fn read_sidecar(&self, bucket: &str, key: &str) -> Result<Sidecar> {
        let path = self.meta_path(bucket, key);
        match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(s) => Ok(s),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "unreadable sidecar: ignored");
                    Ok(Sidecar::default())
                }
            },
            Err(e) if is_absent(&e) || e.kind() == io::ErrorKind::IsADirectory => Ok(Sidecar::default()),
            Err(e) => Err(io_error("read", &path, &e)),
        }
    }

    /// Write the sidecar atomically (temp file, rename).
    /// Write the sidecar through a temporary file in the sidecar's own directory. Not in the shared tmp directory:
    /// there, every writer's create contends for that one directory's lock, and each rename out of it takes the
    /// filesystem's cross-directory rename lock (in a profile of 64 tagging writers, renames took a third of the
    /// time and file opens another third). A crash can leave such a temporary file (a few hundred bytes) in the
    /// metadata tree, which nothing lists; it only keeps that directory from being pruned.
    fn write_sidecar(&self, bucket: &str, key: &str, s: &Sidecar) -> Result<()> {
        let path = self.meta_path(bucket, key);
        let json = serde_json::to_vec(s).map_err(|e| StorageError::new("InternalError", 500, e.to_string()))?;
        let parent = path.parent().expect("sidecar paths have a parent");
        let tmp = parent.join(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
        in_dir(parent, || fs::write(&tmp, &json)).map_err(|e| match e {
            Placement::Conflict => conflict(key),
            Placement::Io(e) => io_error("write", &tmp, &e),
        })?;
        let r = rename_into_place(&tmp, &path).map_err(|e| match e {
            Placement::Conflict => conflict(key),
            Placement::Io(e) => io_error("rename to", &path, &e),
        });
        if r.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        r
    }

    /// Open the object for reading; resolve its ETag (hashing the file if the cache is stale) under its lock.
    fn open(&self, obj: &ObjectRef) -> Result<Opened> {
        self.check_object(obj)?;
        let path = self.data_path(&obj.bucket, &obj.key);
        let _guard = self.lock(&obj.bucket, &obj.key);
        let opened = self.key_dirs(&obj.bucket, &obj.key)?.open_file();
        let mut file = opened.map_err(|e| io_error("open", &path, &e))?.ok_or_else(StorageError::no_such_key)?;
        let md = file.metadata().map_err(|e| io_error("stat", &path, &e))?;
        let mut sidecar = self.read_sidecar(&obj.bucket, &obj.key)?;
        let stamp = Stamp::of(&md);
        let etag = match &sidecar.etag {
            Some(c) if c.stamp == stamp => c.etag.clone(),
            _ => {
                let etag = md5_of(&mut file).map_err(|e| io_error("read", &path, &e))?;
                sidecar.etag = Some(CachedEtag { stamp, etag: etag.clone() });
                if let Err(e) = self.write_sidecar(&obj.bucket, &obj.key, &sidecar) {
                    tracing::warn!(path = %path.display(), error = %e, "could not cache the ETag");
                }
                etag
            }
        };
        let restore =
            sidecar.restore_expiry.filter(|t| *t > common::now_millis()).map(crate::RestoreStatus::done_header);
        let info = ObjectInfo {
            size: md.len(),
            etag,
            last_modified: mtime_ns(&md).div_euclid(1_000_000),
            version_id: None,
            storage_class: common::normalize_storage_class(sidecar.storage_class.as_deref()),
            metadata: sidecar.metadata.clone(),
            restore,
            website_redirect_location: sidecar.website_redirect_location.clone(),
            ..Default::default()
        };
        Ok(Opened { file, info, sidecar })
    }

    /// Write a new object: fill a temporary file (`fill` returns the hex MD5 of what it wrote), then, under the
    /// key's lock, write the sidecar and rename the data into place.
    fn write_object(
        &self,
        bucket: &str,
        key: &str,
        mut sidecar: Sidecar,
        fill: impl FnOnce(&mut File) -> io::Result<String>,
    ) -> Result<WriteResult> {
        check_bucket_name(bucket)?;
        check_local_key(key)?;
        self.check_bucket(bucket)?;
        let tmp = self.tmp_path();
        let result = self.write_object_via(&tmp, bucket, key, &mut sidecar, fill);
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn write_object_via(
        &self,
        tmp: &Path,
        bucket: &str,
        key: &str,
        sidecar: &mut Sidecar,
        fill: impl FnOnce(&mut File) -> io::Result<String>,
    ) -> Result<WriteResult> {
        let mut file = File::create(tmp).map_err(|e| io_error("create", tmp, &e))?;
        let etag = fill(&mut file).map_err(|e| io_error("write", tmp, &e))?;
        file.sync_all().map_err(|e| io_error("sync", tmp, &e))?;
        let md = file.metadata().map_err(|e| io_error("stat", tmp, &e))?;
        drop(file);
        sidecar.etag = Some(CachedEtag { stamp: Stamp::of(&md), etag: etag.clone() });
        let path = self.data_path(bucket, key);
        let through_link =
            || invalid_key(key, "its path passes through a symbolic link, which this store does not follow");
        let _guard = self.lock(bucket, key);
        let mut sidecar_written = false;
        let mut attempts = 0;
        loop {
            attempts += 1;
            // The directories are made and opened without following links, and the data renamed into the last
            // one's descriptor: a link swapped in for one of them is refused or not used, never followed.
            let dirs = match KeyDirs::open(&self.bucket_dir(bucket), key, true) {
                Ok(d) => d,
                Err(Blocked::Link) => return Err(through_link()),
                Err(Blocked::FileInTheWay) => return Err(conflict(key)),
                // A directory pruned by a concurrent delete as it was being made.
                Err(Blocked::Absent) if attempts < 5 => continue,
                Err(Blocked::Absent) => return Err(StorageError::no_such_bucket(bucket)),
                Err(Blocked::Io(e)) => return Err(io_error("create", &path, &e)),
            };
            // A directory where the object would go (the key is a prefix of other keys), or a link: refused
            // before the sidecar is touched.
            match dirs.leaf_type() {
                Ok(Some(FileType::Symlink)) => return Err(through_link()),
                Ok(Some(FileType::Directory)) => return Err(conflict(key)),
                Ok(_) => {}
                Err(e) => return Err(io_error("stat", &path, &e)),
            }
            if !sidecar_written {
                self.write_sidecar(bucket, key, sidecar)?;
                sidecar_written = true;
            }
            match dirs.rename_into(tmp) {
                Ok(()) => return Ok(WriteResult { version_id: None, etag: Some(etag) }),
                // The directory was pruned by a concurrent delete since it was opened: make it again.
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 5 => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::IsADirectory | io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::NotADirectory
                    ) =>
                {
                    return Err(conflict(key));
                }
                Err(e) => return Err(io_error("rename to", &path, &e)),
            }
        }
    }

    /// Change the sidecar of an existing object.
    fn update_sidecar(&self, obj: &ObjectRef, f: impl FnOnce(&mut Sidecar) -> Result<()>) -> Result<WriteResult> {
        self.check_object(obj)?;
        let _guard = self.lock(&obj.bucket, &obj.key);
        self.object_file(&obj.bucket, &obj.key)?;
        let mut sidecar = self.read_sidecar(&obj.bucket, &obj.key)?;
        f(&mut sidecar)?;
        self.write_sidecar(&obj.bucket, &obj.key, &sidecar)?;
        Ok(WriteResult::default())
    }

    fn delete(&self, obj: &ObjectRef) -> Result<WriteResult> {
        check_bucket_name(&obj.bucket)?;
        check_local_key(&obj.key)?;
        self.check_bucket(&obj.bucket)?;
        if !matches!(obj.version_id.as_deref(), None | Some("null")) {
            // S3 answers success for a version that does not exist.
            return Ok(WriteResult::default());
        }
        let path = self.data_path(&obj.bucket, &obj.key);
        let meta = self.meta_path(&obj.bucket, &obj.key);
        let _guard = self.lock(&obj.bucket, &obj.key);
        // A link (or a path through one) is no object: nothing to delete, and nothing outside the bucket is touched
        // (the object is removed from its directory's descriptor, reached through no link).
        let dirs = match KeyDirs::open(&self.bucket_dir(&obj.bucket), &obj.key, false) {
            Ok(d) => Some(d),
            Err(Blocked::Link) => return Ok(WriteResult::default()),
            Err(Blocked::Absent | Blocked::FileInTheWay) => None,
            Err(Blocked::Io(e)) => return Err(io_error("remove", &path, &e)),
        };
        if let Some(d) = &dirs {
            match d.leaf_type() {
                Ok(Some(FileType::Symlink)) => return Ok(WriteResult::default()),
                Ok(Some(FileType::RegularFile)) => match d.remove() {
                    Ok(()) => {}
                    Err(e) if is_absent(&e) => {}
                    Err(e) => return Err(io_error("remove", &path, &e)),
                },
                // Nothing there, or a directory (the key is only a prefix of other keys): no such object.
                Ok(_) => {}
                Err(e) => return Err(io_error("stat", &path, &e)),
            }
        }
        match fs::remove_file(&meta) {
            Ok(()) => {}
            Err(e) if is_absent(&e) || fs::symlink_metadata(&meta).is_ok_and(|m| m.is_dir()) => {}
            Err(e) => return Err(io_error("remove", &meta, &e)),
        }
        if let Some(d) = &dirs {
            d.prune();
        }
        prune_empty_dirs(&meta, &self.meta_bucket_dir(&obj.bucket));
        Ok(WriteResult::default())
    }

    fn list(&self, bucket: &str, prefix: &str, after: Option<&str>, page: usize) -> Result<ListPage> {
        self.check_bucket(bucket)?;
        let dir = self.bucket_dir(bucket);
        let mut found = Vec::new();
        match beneath::open_bucket(&dir) {
            Ok(fd) => walk(&fd, "", prefix, after, page + 1, &mut found).map_err(|e| io_error("list", &dir, &e))?,
            // Removed since it was checked: nothing to list, as a directory removed during the walk.
            Err(e) if is_absent(&e) => {}
            Err(e) => return Err(io_error("list", &dir, &e)),
        }
        let more = found.len() > page;
        found.truncate(page);
        let mut objects = Vec::with_capacity(found.len());
        for key in found {
            // The object may have gone since the walk: skip it then.
            match self.open(&ObjectRef::new(bucket, key.clone())) {
                Ok(o) => objects.push(ListedObject {
                    key,
                    size: o.info.size,
                    etag: o.info.etag,
                    last_modified: o.info.last_modified,
                    storage_class: common::listed_storage_class(o.sidecar.storage_class.as_deref()),
                    checksum_algorithm: None,
                }),
                Err(e) if e.code == "NoSuchKey" => {}
                Err(e) if e.code == "InvalidArgument" || e.code == "KeyTooLongError" => {
                    tracing::warn!(bucket, key, "file name that is not a valid key: not listed");
                }
                Err(e) => return Err(e),
            }
        }
        let next_token = if more { objects.last().map(|o| o.key.clone()) } else { None };
        Ok(ListPage { objects, next_token })
    }
}

impl Inner {
    /// The directory of a multipart upload; ids are ours (hex), anything else is no upload of ours.
    fn upload_dir(&self, upload_id: &str) -> Result<PathBuf> {
        if upload_id.is_empty() || upload_id.len() > 64 || !upload_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(common::no_such_upload());
        }
        Ok(self.root.join(UPLOADS_DIR).join(upload_id))
    }

    /// The state of the upload `u` names, if it is one of this bucket and key.
    fn upload_state(&self, u: &MultipartUpload) -> Result<(PathBuf, UploadState)> {
        let dir = self.upload_dir(&u.upload_id)?;
        let path = dir.join(UPLOAD_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if is_absent(&e) => return Err(common::no_such_upload()),
            Err(e) => return Err(io_error("read", &path, &e)),
        };
        let state: UploadState = serde_json::from_slice(&bytes)
            .map_err(|e| StorageError::new("InternalError", 500, format!("unreadable {}: {e}", path.display())))?;
        if state.bucket != u.bucket || state.key != u.key {
            return Err(common::no_such_upload());
        }
        Ok((dir, state))
    }

    fn create_upload(&self, bucket: &str, key: &str, opts: &MultipartOptions) -> Result<String> {
        check_bucket_name(bucket)?;
        check_local_key(key)?;
        self.check_bucket(bucket)?;
        let upload_id = uuid::Uuid::new_v4().simple().to_string();
        let dir = self.upload_dir(&upload_id)?;
        fs::create_dir_all(&dir).map_err(|e| io_error("create", &dir, &e))?;
        let state = UploadState { bucket: bucket.into(), key: key.into(), opts: opts.clone() };
        let json = serde_json::to_vec(&state).map_err(|e| StorageError::new("InternalError", 500, e.to_string()))?;
        let path = dir.join(UPLOAD_FILE);
        fs::write(&path, json).map_err(|e| io_error("write", &path, &e))?;
        Ok(upload_id)
    }

    /// Write part `n` of an upload from `fill` (which answers the hex MD5 of what it wrote): into a temporary
    /// file, then renamed into the upload's directory.
    fn write_part(
        &self,
        u: &MultipartUpload,
        n: i32,
        fill: impl FnOnce(&mut File) -> io::Result<String>,
    ) -> Result<CompletedPart> {
        common::check_part_number(n)?;
        let (dir, _) = self.upload_state(u)?;
        let tmp = self.tmp_path();
        let result = (|| {
            let mut file = File::create(&tmp).map_err(|e| io_error("create", &tmp, &e))?;
            let etag = fill(&mut file).map_err(|e| io_error("write", &tmp, &e))?;
            file.sync_all().map_err(|e| io_error("sync", &tmp, &e))?;
            let md5_path = dir.join(format!("part-{n}.md5"));
            fs::write(&md5_path, &etag).map_err(|e| io_error("write", &md5_path, &e))?;
            let part = dir.join(format!("part-{n}"));
            fs::rename(&tmp, &part).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => common::no_such_upload(),
                _ => io_error("rename to", &part, &e),
            })?;
            Ok(CompletedPart { part_number: n, etag, checksum: None })
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// The parts of an upload: `(part number, etag, size)`.
    fn parts(&self, dir: &Path) -> Result<Vec<(i32, String, u64)>> {
        let mut out = Vec::new();
        let entries = fs::read_dir(dir).map_err(|e| io_error("list", dir, &e))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(n) = name.strip_prefix("part-").and_then(|n| n.parse::<i32>().ok()) else { continue };
            let md = e.metadata().map_err(|err| io_error("stat", &e.path(), &err))?;
            let md5_path = dir.join(format!("part-{n}.md5"));
            let etag = fs::read_to_string(&md5_path).map_err(|err| io_error("read", &md5_path, &err))?;
            out.push((n, etag.trim().to_string(), md.len()));
        }
        Ok(out)
    }

    fn complete_upload(&self, u: &MultipartUpload, parts: &[CompletedPart]) -> Result<WriteResult> {
        let (dir, state) = self.upload_state(u)?;
        let uploaded = self.parts(&dir)?;
        let order = common::check_complete(parts, &uploaded)?;
        let etag = common::multipart_etag(order.iter().map(|&i| uploaded[i].1.as_str()));
        let o = &state.opts;
        let sidecar = Sidecar {
            metadata: common::stored_metadata(&o.metadata),
            tags: o.tags.clone(),
            storage_class: common::normalize_storage_class(o.storage_class.as_deref()),
            website_redirect_location: o.website_redirect_location.clone(),
            ..Default::default()
        };
        let result = self.write_object(&state.bucket, &state.key, sidecar, |f| {
            for &i in &order {
                let mut part = File::open(dir.join(format!("part-{}", uploaded[i].0)))?;
                io::copy(&mut part, f)?;
            }
            Ok(etag)
        })?;
        if let Err(e) = fs::remove_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove a completed upload");
        }
        Ok(result)
    }
}

/// Hex MD5 of a whole file, read from its start.
fn md5_of(file: &mut File) -> io::Result<String> {
    file.seek(SeekFrom::Start(0))?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Copy `src` into `dst`, returning the hex MD5 of what was copied.
fn copy_hashing(src: &mut impl Read, dst: &mut File) -> io::Result<String> {
    let mut h = Md5::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        dst.write_all(&buf[..n])?;
    }
    Ok(hex::encode(h.finalize()))
}

enum Placement {
    Conflict,
    Io(io::Error),
}

/// Run `op` (which makes an entry in `parent`) after creating `parent`; made again and retried when a concurrent
/// delete prunes it in between.
fn in_dir(parent: &Path, mut op: impl FnMut() -> io::Result<()>) -> std::result::Result<(), Placement> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        make_dirs(parent)?;
        match op() {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 5 => continue,
            Err(e) => return Err(Placement::Io(e)),
        }
    }
}

/// `fs::create_dir_all(dir)`, again when a concurrent delete prunes a directory between its being made and being
/// checked (std then answers `AlreadyExists`); `Conflict` when a file stands where one of the directories would go.
fn make_dirs(dir: &Path) -> std::result::Result<(), Placement> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match fs::create_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => return Err(Placement::Conflict),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let file_in_the_way = dir.ancestors().any(|d| fs::symlink_metadata(d).is_ok_and(|m| !m.is_dir()));
                if file_in_the_way || attempts >= 5 {
                    return Err(Placement::Conflict);
                }
            }
            Err(e) => return Err(Placement::Io(e)),
        }
    }
}

/// Rename `tmp` to `path`, creating parent directories; retried when a concurrent delete removes a parent that
/// was just made.
fn rename_into_place(tmp: &Path, path: &Path) -> std::result::Result<(), Placement> {
    let parent = path.parent().expect("object paths have a parent");
    in_dir(parent, || fs::rename(tmp, path)).map_err(|e| match e {
        Placement::Io(e)
            if matches!(
                e.kind(),
                io::ErrorKind::IsADirectory | io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::NotADirectory
            ) || fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) =>
        {
            Placement::Conflict
        }
        e => e,
    })
}

/// Remove the now-empty directories above `path`, up to (not including) `top`.
fn prune_empty_dirs(path: &Path, top: &Path) {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == top || !d.starts_with(top) {
            break;
        }
        if fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

/// Collect up to `limit` keys under `dir` (a directory's descriptor; its keys start with `rel`), in byte order:
/// entries are visited sorted by name, a directory's name taken with its trailing `/`, which is exactly the order
/// of the keys. Subtrees that cannot hold a key after `after` and under `prefix` are skipped. Links are not
/// followed, nor are directories reached through one: each is opened from its parent's descriptor.
fn walk(
    dir: &std::os::fd::OwnedFd,
    rel: &str,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
    out: &mut Vec<String>,
) -> io::Result<()> {
    // Not followed: a link is neither an object nor a directory to walk (`x -> .` would repeat the tree).
    let mut names: Vec<(String, bool)> = beneath::entries(dir, |_| {
        tracing::warn!(prefix = rel, "file name that is not UTF-8: not listed");
    })?
    .into_iter()
    .map(|(name, is_dir)| if is_dir { (format!("{name}/"), true) } else { (name, false) })
    .collect();
    names.sort_unstable();
    for (name, is_dir) in names {
        if out.len() >= limit {
            return Ok(());
        }
        let key = format!("{rel}{name}");
        if is_dir {
            let under_prefix = key.starts_with(prefix) || prefix.starts_with(&key);
            let may_follow = match after {
                None => true,
                Some(a) => a < key.as_str() || a.starts_with(&key),
            };
            // Keys are at most 1024 bytes: deeper trees hold no objects. A directory removed (a delete pruned it)
            // or replaced since it was listed is not walked.
            if under_prefix
                && may_follow
                && key.len() < common::MAX_KEY_BYTES
                && let Some(sub) = beneath::open_subdir(dir, name.trim_end_matches('/'))?
            {
                walk(&sub, &key, prefix, after, limit, out)?;
            }
        } else if key.starts_with(prefix) && after.is_none_or(|a| key.as_str() > a) {
            out.push(key);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------

#[async_trait]
impl ObjectStore for LocalStore {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        check_bucket_name(bucket)?;
        let bucket = bucket.to_string();
        self.blocking(move |s| {
            let dir = s.bucket_dir(&bucket);
            fs::create_dir_all(&dir).map_err(|e| io_error("create", &dir, &e))
        })
        .await
    }

    async fn head_object(&self, obj: &ObjectRef) -> Result<ObjectInfo> {
        let obj = obj.clone();
        self.blocking(move |s| s.open(&obj).map(|o| o.info)).await
    }

    async fn get_object(&self, obj: &ObjectRef, range: Option<Range<u64>>) -> Result<GetResult> {
        let obj = obj.clone();
        let (file, info, r) = self
            .blocking(move |s| {
                let mut o = s.open(&obj)?;
                common::check_readable(o.sidecar.storage_class.as_deref(), o.sidecar.restore_expiry)?;
                let r = common::resolve_range(range.as_ref(), o.info.size)?;
                o.file.seek(SeekFrom::Start(r.start)).map_err(|e| StorageError::io(&e))?;
                Ok((o.file, o.info, r))
            })
            .await?;
        let file = tokio::fs::File::from_std(file);
        let remaining = r.end - r.start;
        let body = futures::stream::try_unfold((file, remaining), |(mut file, remaining)| async move {
            if remaining == 0 {
                return Ok(None);
            }
            let want = remaining.min(CHUNK as u64) as usize;
            let mut buf = vec![0u8; want];
            let n = file.read(&mut buf).await.map_err(|e| StorageError::io(&e))?;
            if n == 0 {
                return Err(StorageError::new("InternalError", 500, "the file was truncated while being read"));
            }
            buf.truncate(n);
            Ok(Some((Bytes::from(buf), (file, remaining - n as u64))))
        });
        Ok(GetResult { info, body: body.boxed() })
    }

    async fn put_object(&self, bucket: &str, key: &str, body: PutBody, opts: &PutOptions) -> Result<WriteResult> {
        check_bucket_name(bucket)?;
        check_local_key(key)?;
        common::check_tags(&opts.tags)?;
        let (bucket, key) = (bucket.to_string(), key.to_string());
        let sidecar = Sidecar {
            metadata: common::stored_metadata(&opts.metadata),
            tags: opts.tags.clone(),
            ..Default::default()
        };
        self.blocking(move |s| match body {
            PutBody::Bytes(data) => s.write_object(&bucket, &key, sidecar, |f| {
                f.write_all(&data)?;
                Ok(crate::md5_hex(&data))
            }),
            PutBody::File(src) => {
                let mut input = File::open(&src).map_err(|e| io_error("open", &src, &e))?;
                s.write_object(&bucket, &key, sidecar, |f| copy_hashing(&mut input, f))
            }
        })
        .await
    }

    async fn copy_object(&self, req: &CopyRequest) -> Result<WriteResult> {
        common::check_copy_request(req, "local", CAPABILITIES)?;
        check_local_key(&req.source.key)?;
        check_local_key(&req.dest_key)?;
        check_bucket_name(&req.dest_bucket)?;
        let req = req.clone();
        self.blocking(move |s| {
            let mut src = s.open(&req.source)?;
            common::check_readable(src.sidecar.storage_class.as_deref(), src.sidecar.restore_expiry)?;
            common::check_copy_preconditions(&req, src.info.last_modified)?;
            s.check_bucket(&req.dest_bucket)?;
            let (metadata, redirect) = match &req.replace_metadata {
                Some(m) => (common::stored_metadata(m), None),
                None => (src.sidecar.metadata, src.sidecar.website_redirect_location),
            };
            let sidecar = Sidecar {
                metadata,
                tags: req.tags.clone().unwrap_or(src.sidecar.tags),
                storage_class: common::normalize_storage_class(req.storage_class.as_deref()),
                website_redirect_location: req.website_redirect_location.clone().or(redirect),
                ..Default::default()
            };
            let etag = src.info.etag;
            s.write_object(&req.dest_bucket, &req.dest_key, sidecar, |f| {
                src.file.seek(SeekFrom::Start(0))?;
                io::copy(&mut src.file, f)?;
                Ok(etag)
            })
        })
        .await
    }

    async fn delete_object(&self, obj: &ObjectRef) -> Result<WriteResult> {
        let obj = obj.clone();
        self.blocking(move |s| s.delete(&obj)).await
    }

    /// Every key in one blocking call; a missing bucket fails the whole request, as S3 answers it.
    async fn delete_objects(&self, bucket: &str, keys: &[DeleteKey]) -> Result<DeleteResults> {
        crate::check_delete_batch(keys)?;
        let (bucket, keys) = (bucket.to_string(), keys.to_vec());
        self.blocking(move |s| {
            check_bucket_name(&bucket)?;
            s.check_bucket(&bucket)?;
            Ok(keys.iter().map(|k| s.delete(&k.object(&bucket))).collect())
        })
        .await
    }

    async fn get_object_tagging(&self, obj: &ObjectRef) -> Result<Vec<Tag>> {
        let obj = obj.clone();
        self.blocking(move |s| {
            s.check_object(&obj)?;
            let _guard = s.lock(&obj.bucket, &obj.key);
            s.object_file(&obj.bucket, &obj.key)?;
            Ok(s.read_sidecar(&obj.bucket, &obj.key)?.tags)
        })
        .await
    }

    async fn put_object_tagging(&self, obj: &ObjectRef, tags: &[Tag]) -> Result<WriteResult> {
        common::check_tags(tags)?;
        let (obj, tags) = (obj.clone(), tags.to_vec());
        self.blocking(move |s| {
            s.update_sidecar(&obj, |sc| {
                sc.tags = tags;
                Ok(())
            })
        })
        .await
    }

    async fn delete_object_tagging(&self, obj: &ObjectRef) -> Result<WriteResult> {
        let obj = obj.clone();
        self.blocking(move |s| {
            s.update_sidecar(&obj, |sc| {
                sc.tags.clear();
                Ok(())
            })
        })
        .await
    }

    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
        max_keys: usize,
    ) -> Result<ListPage> {
        check_bucket_name(bucket)?;
        let (bucket, prefix) = (bucket.to_string(), prefix.to_string());
        let page = common::page_size(max_keys);
        self.blocking(move |s| s.list(&bucket, &prefix, continuation.as_deref(), page)).await
    }

    async fn list_object_versions(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: Option<String>,
        _version_marker: Option<String>,
        max_keys: usize,
    ) -> Result<VersionPage> {
        // Unversioned: every object is version `null`, so a page that ended inside a key ended with its only
        // version and the next page starts after the key marker.
        let page = self.list_objects(bucket, prefix, key_marker, max_keys).await?;
        let more = page.next_token.is_some();
        let versions: Vec<ObjectVersion> = page
            .objects
            .into_iter()
            .map(|o| ObjectVersion {
                key: o.key,
                version_id: "null".into(),
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
            next_version_marker: last.map(|_| "null".to_string()),
            versions,
        })
    }

    async fn put_object_acl(&self, _obj: &ObjectRef, _acl: &Acl) -> Result<()> {
        Err(StorageError::not_implemented("ACLs", "local"))
    }

    async fn get_object_acl(&self, _obj: &ObjectRef) -> Result<AclPolicy> {
        Err(StorageError::not_implemented("ACLs", "local"))
    }

    async fn put_object_retention(
        &self,
        _obj: &ObjectRef,
        _mode: Option<RetentionMode>,
        _retain_until: Option<Millis>,
        _bypass_governance: bool,
        _event_hold: Option<crate::EventHold>,
    ) -> Result<()> {
        Err(StorageError::not_implemented("object lock", "local"))
    }

    async fn get_object_retention(&self, _obj: &ObjectRef) -> Result<Retention> {
        Err(StorageError::not_implemented("object lock", "local"))
    }

    async fn put_object_legal_hold(&self, _obj: &ObjectRef, _on: bool) -> Result<()> {
        Err(StorageError::not_implemented("object lock", "local"))
    }

    async fn get_object_legal_hold(&self, _obj: &ObjectRef) -> Result<bool> {
        Err(StorageError::not_implemented("object lock", "local"))
    }

    async fn restore_object(&self, obj: &ObjectRef, days: Option<i32>, _tier: Option<RestoreTier>) -> Result<()> {
        let obj = obj.clone();
        self.blocking(move |s| {
            s.update_sidecar(&obj, |sc| {
                sc.restore_expiry = Some(common::restore_expiry(sc.storage_class.as_deref(), days)?);
                Ok(())
            })
        })
        .await?;
        Ok(())
    }

    async fn create_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        opts: &MultipartOptions,
    ) -> Result<MultipartUpload> {
        common::check_supported(opts, "local", CAPABILITIES)?;
        check_bucket_name(bucket)?;
        check_local_key(key)?;
        common::check_new_object(opts)?;
        let (b, k, o) = (bucket.to_string(), key.to_string(), opts.clone());
        let upload_id = self.blocking(move |s| s.create_upload(&b, &k, &o)).await?;
        Ok(MultipartUpload {
            bucket: bucket.into(),
            key: key.into(),
            upload_id,
            checksum_algorithm: None,
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
        let (upload, source) = (upload.clone(), source.clone());
        self.blocking(move |s| {
            s.upload_state(&upload)?;
            let mut src = s.open(&source)?;
            common::check_readable(src.sidecar.storage_class.as_deref(), src.sidecar.restore_expiry)?;
            let r = common::part_copy_range(range.as_ref(), src.info.size)?;
            s.write_part(&upload, part_number, |f| {
                src.file.seek(SeekFrom::Start(r.start))?;
                copy_hashing(&mut (&mut src.file).take(r.end - r.start), f)
            })
        })
        .await
    }

    async fn upload_part(&self, upload: &MultipartUpload, part_number: i32, data: Bytes) -> Result<CompletedPart> {
        let upload = upload.clone();
        self.blocking(move |s| {
            s.write_part(&upload, part_number, |f| {
                f.write_all(&data)?;
                Ok(crate::md5_hex(&data))
            })
        })
        .await
    }

    async fn complete_multipart_upload(
        &self,
        upload: &MultipartUpload,
        parts: &[CompletedPart],
    ) -> Result<WriteResult> {
        let (upload, parts) = (upload.clone(), parts.to_vec());
        self.blocking(move |s| s.complete_upload(&upload, &parts)).await
    }

    async fn abort_multipart_upload(&self, upload: &MultipartUpload) -> Result<()> {
        let upload = upload.clone();
        self.blocking(move |s| {
            let (dir, _) = s.upload_state(&upload)?;
            fs::remove_dir_all(&dir).map_err(|e| io_error("remove", &dir, &e))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;

    async fn store() -> (LocalStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (LocalStore::new(dir.path().join("root")).unwrap(), dir)
    }

    conformance::conformance_tests!(store, crate::conformance::Profile::local());

    fn bytes(b: &'static [u8]) -> PutBody {
        PutBody::Bytes(Bytes::from_static(b))
    }

    /// Every file below `dir`, relative, sorted.
    fn files_below(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap().flatten() {
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    out.push(e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        out
    }

    /// Sidecars are written through a temporary file in their own directory, while other keys of that directory
    /// are deleted (a delete prunes the directory when it empties, here again and again): every write lands, and no
    /// temporary file stays behind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sidecar_writes_beside_deletes_in_one_directory_leave_only_sidecars() {
        let (s, _dir) = store().await;
        s.create_bucket("b").await.unwrap();
        let s = Arc::new(s);
        for round in 0..50 {
            let mut tasks = Vec::new();
            for i in 0..8 {
                let s = s.clone();
                tasks.push(tokio::spawn(async move {
                    let obj = ObjectRef::new("b", format!("d/k{i}"));
                    s.put_object("b", &obj.key, bytes(b"x"), &PutOptions::default()).await.unwrap();
                    s.put_object_tagging(&obj, &[Tag::new("round", round.to_string())]).await.unwrap();
                    assert_eq!(s.get_object_tagging(&obj).await.unwrap(), vec![Tag::new("round", round.to_string())]);
                    // The last round keeps the odd keys.
                    if round < 49 || i % 2 == 0 {
                        s.delete_object(&obj).await.unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        }
        let meta = s.root().join(META_DIR).join("b");
        assert_eq!(files_below(&meta), ["d/k1.meta.json", "d/k3.meta.json", "d/k5.meta.json", "d/k7.meta.json"]);
        assert_eq!(fs::read_dir(s.root().join(TMP_DIR)).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn tags_and_metadata_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let key = "dir/sub/a b+c%d#e?f ü.txt";
        let meta = Metadata {
            content_type: Some("text/plain".into()),
            user: [("color".to_string(), "blue".to_string())].into(),
            ..Default::default()
        };
        {
            let s = LocalStore::new(dir.path()).unwrap();
            s.create_bucket("b").await.unwrap();
            let opts = PutOptions { metadata: meta.clone(), tags: vec![Tag::new("k", "v")] };
            s.put_object("b", key, bytes(b"hello"), &opts).await.unwrap();
            let mut c = CopyRequest::new(ObjectRef::new("b", key), "b", "copy");
            c.storage_class = Some("GLACIER_IR".into());
            s.copy_object(&c).await.unwrap();
        }
        let s = LocalStore::new(dir.path()).unwrap();
        let info = s.head_object(&ObjectRef::new("b", key)).await.unwrap();
        assert_eq!(info.metadata, meta);
        assert_eq!(info.etag, crate::md5_hex(b"hello"));
        assert_eq!(s.get_object_tagging(&ObjectRef::new("b", key)).await.unwrap(), vec![Tag::new("k", "v")]);
        assert_eq!(
            s.head_object(&ObjectRef::new("b", "copy")).await.unwrap().storage_class.as_deref(),
            Some("GLACIER_IR")
        );
        assert!(dir.path().join("b/dir/sub/a b+c%d#e?f ü.txt").is_file());
        assert!(dir.path().join(".s3batch-meta/b/dir/sub/a b+c%d#e?f ü.txt.meta.json").is_file());
    }

    #[tokio::test]
    async fn unrepresentable_keys_are_invalid_argument() {
        let (s, _d) = store().await;
        s.create_bucket("b").await.unwrap();
        let long = format!("x/{}", "y".repeat(256));
        for key in ["a//b", "a/", "/a", "./a", "a/./b", "a/../b", "..", "a\0b", long.as_str()] {
            let e = s.put_object("b", key, bytes(b"x"), &PutOptions::default()).await.unwrap_err();
            assert_eq!((e.code.as_str(), e.http_status, e.transient), ("InvalidArgument", 400, false), "{key:?}: {e}");
            let e = s.head_object(&ObjectRef::new("b", key)).await.unwrap_err();
            assert_eq!(e.code, "InvalidArgument", "{key:?}");
        }
        // 255 bytes is fine, and so is its sidecar name.
        let max = format!("x/{}", "y".repeat(255));
        s.put_object("b", &max, bytes(b"x"), &PutOptions { tags: vec![Tag::new("a", "b")], ..Default::default() })
            .await
            .unwrap();
        assert_eq!(s.get_object_tagging(&ObjectRef::new("b", &max)).await.unwrap(), vec![Tag::new("a", "b")]);
        let e = s.put_object("b", &"k".repeat(1025), bytes(b"x"), &PutOptions::default()).await.unwrap_err();
        assert_eq!(e.code, "KeyTooLongError");
        // A key cannot be both an object and a directory.
        s.put_object("b", "f", bytes(b"x"), &PutOptions::default()).await.unwrap();
        let e = s.put_object("b", "f/g", bytes(b"x"), &PutOptions::default()).await.unwrap_err();
        assert_eq!(e.code, "InvalidArgument", "{e}");
        assert!(!s.root().join(META_DIR).join("b/f").exists(), "no sidecar for a refused write");
        s.put_object("b", "d/e", bytes(b"x"), &PutOptions::default()).await.unwrap();
        let e = s.put_object("b", "d", bytes(b"x"), &PutOptions::default()).await.unwrap_err();
        assert_eq!(e.code, "InvalidArgument", "{e}");
        assert_eq!(s.head_object(&ObjectRef::new("b", "d")).await.unwrap_err().code, "NoSuchKey");
        // Invalid bucket names.
        for b in ["", ".s3batch-meta", ".s3batch-tmp", "a/b", ".."] {
            let e = s.list_objects(b, "", None, 10).await.unwrap_err();
            assert_eq!(e.code, "InvalidBucketName", "{b:?}");
        }
        // Nothing leaked into the listing or the temp dir.
        let keys: Vec<String> =
            s.list_objects("b", "", None, 100).await.unwrap().objects.into_iter().map(|o| o.key).collect();
        assert_eq!(keys, vec!["d/e".to_string(), "f".to_string(), max]);
        assert_eq!(fs::read_dir(s.root().join(TMP_DIR)).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn files_dropped_in_by_hand_are_objects() {
        let (s, _d) = store().await;
        s.create_bucket("b").await.unwrap();
        fs::create_dir_all(s.root().join("b/by/hand")).unwrap();
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(s.root().join("b/by/hand/file name.bin"), &content).unwrap();
        let obj = ObjectRef::new("b", "by/hand/file name.bin");
        let info = s.head_object(&obj).await.unwrap();
        assert_eq!(info.size, content.len() as u64);
        assert_eq!(info.etag, crate::md5_hex(&content));
        assert_eq!(info.metadata, Metadata::default());
        let page = s.list_objects("b", "by/", None, 10).await.unwrap();
        assert_eq!(page.objects.len(), 1);
        assert_eq!(page.objects[0].etag, crate::md5_hex(&content));
        // The ETag is cached in a sidecar ...
        let sidecar = s.inner.read_sidecar("b", "by/hand/file name.bin").unwrap();
        assert_eq!(sidecar.etag.unwrap().etag, crate::md5_hex(&content));
        // ... and computed again when the file changes by hand.
        fs::write(s.root().join("b/by/hand/file name.bin"), b"changed!").unwrap();
        assert_eq!(s.head_object(&obj).await.unwrap().etag, crate::md5_hex(b"changed!"));
        assert_eq!(s.get_object(&obj, None).await.unwrap().bytes().await.unwrap(), Bytes::from_static(b"changed!"));
    }

    /// Links inside a bucket are not followed: listings skip them (two `x -> .` loops list nothing extra, even
    /// under a prefix no key has), and no key through a link reads, writes, tags or deletes what it points at.
    #[cfg(unix)]
    #[tokio::test]
    async fn symbolic_links_are_neither_objects_nor_directories() {
        use std::os::unix::fs::symlink;
        let (s, _d) = store().await;
        s.create_bucket("b").await.unwrap();
        for key in ["real/obj", "top"] {
            s.put_object("b", key, bytes(b"mine"), &PutOptions::default()).await.unwrap();
        }
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"not yours").unwrap();
        let bucket = s.root().join("b");
        symlink(".", bucket.join("x")).unwrap();
        symlink(".", bucket.join("real/y")).unwrap();
        symlink("top", bucket.join("file-link")).unwrap();
        symlink(outside.path(), bucket.join("out")).unwrap();

        let page = s.list_objects("b", "", None, 1000).await.unwrap();
        let keys: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["real/obj", "top"]);
        assert!(s.list_objects("b", "zzz", None, 1000).await.unwrap().objects.is_empty());

        for key in ["x/top", "real/y/real/obj", "file-link", "out/secret"] {
            let obj = ObjectRef::new("b", key);
            assert_eq!(s.head_object(&obj).await.unwrap_err().code, "NoSuchKey", "{key}");
            assert_eq!(s.get_object(&obj, None).await.unwrap_err().code, "NoSuchKey", "{key}");
            assert_eq!(s.get_object_tagging(&obj).await.unwrap_err().code, "NoSuchKey", "{key}");
            let tagged = s.put_object_tagging(&obj, &[Tag::new("k", "v")]).await;
            assert_eq!(tagged.unwrap_err().code, "NoSuchKey", "{key}");
        }
        let put = s.put_object("b", "out/planted", bytes(b"x"), &PutOptions::default()).await;
        assert_eq!(put.unwrap_err().code, "InvalidArgument");
        assert!(!outside.path().join("planted").exists());
        s.delete_object(&ObjectRef::new("b", "out/secret")).await.unwrap();
        s.delete_object(&ObjectRef::new("b", "file-link")).await.unwrap();
        assert_eq!(fs::read(outside.path().join("secret")).unwrap(), b"not yours");
        assert!(fs::symlink_metadata(bucket.join("file-link")).is_ok(), "a link is not an object to delete");
        assert_eq!(s.get_object(&ObjectRef::new("b", "top"), None).await.unwrap().bytes().await.unwrap(), "mine");
    }

    /// A link swapped in for a directory while requests run (atomically, with `renameat2(RENAME_EXCHANGE)`, as
    /// often as a thread can) is never followed: no PUT lands outside the bucket, no GET reads there, no DELETE
    /// removes anything there. The store checked the path and then used it before: a PUT through the swapped link
    /// landed outside within the first tries.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_link_swapped_in_for_a_directory_is_never_followed() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let (s, _d) = store().await;
        s.create_bucket("b").await.unwrap();
        s.put_object("b", "d/mine", bytes(b"mine"), &PutOptions::default()).await.unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("victim"), b"not yours").unwrap();
        let bucket = s.root().join("b");
        std::os::unix::fs::symlink(outside.path(), bucket.join("swap")).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (stop, d, swap) = (stop.clone(), bucket.join("d"), bucket.join("swap"));
            std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let cwd = rustix::fs::CWD;
                    rustix::fs::renameat_with(cwd, &d, cwd, &swap, rustix::fs::RenameFlags::EXCHANGE).unwrap();
                    swaps += 1;
                }
                swaps
            })
        };
        let (mut stored, mut refused) = (0, 0);
        for i in 0..300 {
            match s.put_object("b", &format!("d/planted-{i}"), bytes(b"x"), &PutOptions::default()).await {
                Ok(_) => stored += 1,
                Err(e) => {
                    assert_eq!(e.code, "InvalidArgument", "{e}");
                    refused += 1;
                }
            }
            s.delete_object(&ObjectRef::new("b", "d/victim")).await.unwrap();
            let read = s.get_object(&ObjectRef::new("b", "d/victim"), None).await;
            assert_eq!(read.err().map(|e| e.code).as_deref(), Some("NoSuchKey"));
        }
        stop.store(true, Ordering::Relaxed);
        let swaps = swapper.join().unwrap();
        assert!(swaps > 0 && stored > 0, "{swaps} swaps, {stored} stored, {refused} refused");
        let outside_now: Vec<_> = fs::read_dir(outside.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(outside_now, ["victim"], "{swaps} swaps, {stored} stored, {refused} refused");
        assert_eq!(fs::read(outside.path().join("victim")).unwrap(), b"not yours");
    }

    #[tokio::test]
    async fn get_streams_in_chunks() {
        let (s, _d) = store().await;
        s.create_bucket("b").await.unwrap();
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        s.put_object("b", "big", PutBody::Bytes(content.clone().into()), &PutOptions::default()).await.unwrap();
        let mut got = s.get_object(&ObjectRef::new("b", "big"), None).await.unwrap();
        let mut chunks = Vec::new();
        while let Some(c) = got.body.next().await {
            chunks.push(c.unwrap());
        }
        assert_eq!(chunks.len(), 4);
        assert!(chunks.iter().all(|c| c.len() <= CHUNK));
        assert_eq!(chunks.concat(), content);
    }

    #[tokio::test]
    async fn versions_other_than_null_do_not_exist() {
        let (s, _d) = store().await;
        s.create_bucket("b").await.unwrap();
        let w = s.put_object("b", "k", bytes(b"x"), &PutOptions::default()).await.unwrap();
        assert_eq!(w.version_id, None);
        let k = ObjectRef::new("b", "k");
        assert_eq!(s.head_object(&k.clone().with_version(Some("null".into()))).await.unwrap().version_id, None);
        let other = k.clone().with_version(Some("3sL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY".into()));
        assert_eq!(s.head_object(&other).await.unwrap_err().code, "NoSuchVersion");
        assert_eq!(s.get_object_tagging(&other).await.unwrap_err().code, "NoSuchVersion");
        // Deleting a version that does not exist succeeds and changes nothing.
        s.delete_object(&other).await.unwrap();
        assert!(s.head_object(&k).await.is_ok());
        s.delete_object(&k.clone().with_version(Some("null".into()))).await.unwrap();
        assert_eq!(s.head_object(&k).await.unwrap_err().code, "NoSuchKey");
    }

    #[tokio::test]
    async fn restores_and_redirects_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = LocalStore::new(dir.path()).unwrap();
            s.create_bucket("b").await.unwrap();
            s.put_object("b", "k", bytes(b"cold"), &PutOptions::default()).await.unwrap();
            let mut c = CopyRequest::new(ObjectRef::new("b", "k"), "b", "k");
            c.storage_class = Some("DEEP_ARCHIVE".into());
            c.website_redirect_location = Some("/other".into());
            s.copy_object(&c).await.unwrap();
            let e = s.get_object(&ObjectRef::new("b", "k"), None).await.unwrap_err();
            assert_eq!(e.code, "InvalidObjectState");
            s.restore_object(&ObjectRef::new("b", "k"), Some(3), Some(RestoreTier::Bulk)).await.unwrap();
        }
        let s = LocalStore::new(dir.path()).unwrap();
        let info = s.head_object(&ObjectRef::new("b", "k")).await.unwrap();
        assert_eq!(info.website_redirect_location.as_deref(), Some("/other"));
        let status = info.restore_status().unwrap();
        assert!(!status.ongoing && status.expiry.unwrap() > common::now_millis() + 2 * 86_400_000);
        assert_eq!(
            s.get_object(&ObjectRef::new("b", "k"), None).await.unwrap().bytes().await.unwrap().as_ref(),
            b"cold"
        );
        // A copy is a new object: not archived, not restored, the redirect carried under COPY.
        s.copy_object(&CopyRequest::new(ObjectRef::new("b", "k"), "b", "copy")).await.unwrap();
        let info = s.head_object(&ObjectRef::new("b", "copy")).await.unwrap();
        assert_eq!((info.storage_class, info.restore), (None, None));
        assert_eq!(info.website_redirect_location.as_deref(), Some("/other"));
    }

    #[tokio::test]
    async fn uploads_live_in_their_own_directory() {
        let (s, _d) = store().await;
        s.create_bucket("b").await.unwrap();
        let up = s.create_multipart_upload("b", "k", &MultipartOptions::default()).await.unwrap();
        let dir = s.root().join(UPLOADS_DIR).join(&up.upload_id);
        assert!(dir.join(UPLOAD_FILE).is_file());
        let p = s.upload_part(&up, 1, Bytes::from_static(b"only part")).await.unwrap();
        assert!(dir.join("part-1").is_file());
        // Not listed while in progress.
        assert!(s.list_objects("b", "", None, 10).await.unwrap().objects.is_empty());
        s.complete_multipart_upload(&up, &[p]).await.unwrap();
        assert!(!dir.exists(), "a completed upload is removed");
        assert_eq!(s.head_object(&ObjectRef::new("b", "k")).await.unwrap().size, 9);
        // Upload ids that are not ours name nothing, and never a path.
        for id in ["../b", "..", "", "a/b", "x.y"] {
            let bad = MultipartUpload { upload_id: id.into(), ..up.clone() };
            assert_eq!(s.abort_multipart_upload(&bad).await.unwrap_err().code, "NoSuchUpload", "{id:?}");
        }
        // An upload of another key is not this one.
        let up = s.create_multipart_upload("b", "k2", &MultipartOptions::default()).await.unwrap();
        let other = MultipartUpload { key: "k3".into(), ..up.clone() };
        assert_eq!(s.upload_part(&other, 1, Bytes::new()).await.unwrap_err().code, "NoSuchUpload");
        s.abort_multipart_upload(&up).await.unwrap();
        assert_eq!(fs::read_dir(s.root().join(UPLOADS_DIR)).unwrap().count(), 0);
        assert_eq!(fs::read_dir(s.root().join(TMP_DIR)).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn acls_are_not_implemented() {
        let (s, _d) = store().await;
        s.create_bucket("b").await.unwrap();
        s.put_object("b", "k", bytes(b"x"), &PutOptions::default()).await.unwrap();
        let mut c = CopyRequest::new(ObjectRef::new("b", "k"), "b", "k2");
        c.canned_acl = Some("private".into());
        let e = s.copy_object(&c).await.unwrap_err();
        assert_eq!((e.code.as_str(), e.http_status, e.transient), ("NotImplemented", 501, false));
    }

    #[tokio::test]
    async fn delete_prunes_empty_directories() {
        let (s, _d) = store().await;
        s.create_bucket("b").await.unwrap();
        s.put_object("b", "x/y/z/deep", bytes(b"x"), &PutOptions::default()).await.unwrap();
        s.put_object("b", "x/keep", bytes(b"x"), &PutOptions::default()).await.unwrap();
        s.delete_object(&ObjectRef::new("b", "x/y/z/deep")).await.unwrap();
        assert!(!s.root().join("b/x/y").exists());
        assert!(!s.root().join(META_DIR).join("b/x/y").exists());
        assert!(s.root().join("b/x/keep").is_file());
        s.delete_object(&ObjectRef::new("b", "x/keep")).await.unwrap();
        assert!(!s.root().join("b/x").exists());
        assert!(s.root().join("b").is_dir());
    }

    /// A key of 400 directories (a 1,024-byte key has at most 512) is written, listed, read and deleted, and its
    /// directories pruned (each walked to again from the bucket: a key's walk keeps at most three descriptors).
    #[tokio::test]
    async fn deep_keys_are_stored_and_pruned() {
        let (s, _d) = store().await;
        s.create_bucket("b").await.unwrap();
        let key = format!("{}obj", "d/".repeat(400));
        s.put_object("b", &key, bytes(b"deep"), &PutOptions::default()).await.unwrap();
        let page = s.list_objects("b", "", None, 1000).await.unwrap();
        assert_eq!(page.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), [key.as_str()]);
        let obj = ObjectRef::new("b", &key);
        assert_eq!(s.get_object(&obj, None).await.unwrap().bytes().await.unwrap(), "deep");
        s.delete_object(&obj).await.unwrap();
        assert!(!s.root().join("b/d").exists());
        assert!(s.root().join("b").is_dir());
    }

    #[tokio::test]
    async fn concurrent_writes_and_deletes_in_one_directory() {
        let (s, _d) = store().await;
        s.create_bucket("b").await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..40 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let key = format!("shared/dir/k{i}");
                for _ in 0..5 {
                    s.put_object("b", &key, PutBody::Bytes(Bytes::from(key.clone())), &PutOptions::default())
                        .await
                        .unwrap();
                    s.put_object_tagging(&ObjectRef::new("b", &key), &[Tag::new("i", i.to_string())]).await.unwrap();
                    s.delete_object(&ObjectRef::new("b", &key)).await.unwrap();
                }
                s.put_object("b", &key, PutBody::Bytes(Bytes::from(key.clone())), &PutOptions::default())
                    .await
                    .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let page = s.list_objects("b", "shared/", None, 1000).await.unwrap();
        assert_eq!(page.objects.len(), 40);
    }
}
