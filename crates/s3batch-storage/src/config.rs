//! `[[storage]]` entries of the config file: where buckets live.

use serde::{Deserialize, Serialize};

/// Which backend a `[[storage]]` entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    S3,
    Local,
    Memory,
}

/// One `[[storage]]` entry. The first entry whose `buckets` match a bucket serves it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// A name for logs and errors.
    pub name: String,
    pub kind: BackendKind,
    /// Bucket names this entry serves; `"*"` matches every bucket, `"logs-*"` every name starting `logs-`.
    #[serde(default = "all_buckets")]
    pub buckets: Vec<String>,
    /// The 12-digit account that owns this entry's buckets: a job's `ExpectedBucketOwner` (report, manifest
    /// generator source, generated manifest) must name it, else the job fails with `AccessDenied`. Default: none
    /// (no owner to check against).
    #[serde(default)]
    pub owner: Option<String>,

    // --- kind = "s3"
    /// e.g. `http://127.0.0.1:3900`; absent means AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most self-hosted stores need.
    #[serde(default)]
    pub force_path_style: bool,
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Read the secret from this file instead.
    #[serde(default)]
    pub secret_access_key_file: Option<std::path::PathBuf>,
    /// Send request checksums only when an operation requires them (default `true`): Garage and many other
    /// stores reject the SDK's default streaming checksums.
    #[serde(default = "yes")]
    pub checksum_when_required: bool,
    /// A copy whose source is larger than this many bytes is a multipart upload of UploadPartCopy parts
    /// (default 5 GiB, the most a single CopyObject may copy).
    #[serde(default = "default_multipart_threshold")]
    pub multipart_threshold: u64,
    /// The part size of such a copy (default 512 MiB; at least 5 MiB, at most 5 GiB; raised when the object
    /// would need more than 10,000 parts).
    #[serde(default = "default_multipart_part_size")]
    pub multipart_part_size: u64,

    // --- kind = "local"
    /// `<root>/<bucket>/<key>`.
    #[serde(default)]
    pub root: Option<std::path::PathBuf>,

    // --- kind = "memory"
    /// Added to every request, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Objects that were never written exist as empty objects and writes to them are not kept, so that a
    /// benchmark can run millions of tasks without holding millions of objects. For benchmarks only.
    #[serde(default)]
    pub virtual_objects: bool,
}

fn all_buckets() -> Vec<String> {
    vec!["*".into()]
}

fn yes() -> bool {
    true
}

/// 5 GiB.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 5 * 1024 * 1024 * 1024;
/// 512 MiB.
pub const DEFAULT_MULTIPART_PART_SIZE: u64 = 512 * 1024 * 1024;

fn default_multipart_threshold() -> u64 {
    DEFAULT_MULTIPART_THRESHOLD
}

fn default_multipart_part_size() -> u64 {
    DEFAULT_MULTIPART_PART_SIZE
}

impl std::fmt::Debug for StorageConfig {
    /// Secrets never appear in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("buckets", &self.buckets)
            .field("owner", &self.owner)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("force_path_style", &self.force_path_style)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<redacted>"))
            .field("multipart_threshold", &self.multipart_threshold)
            .field("multipart_part_size", &self.multipart_part_size)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl StorageConfig {
    /// A `local` entry serving every bucket from `root`.
    pub fn local(name: &str, root: impl Into<std::path::PathBuf>) -> Self {
        StorageConfig {
            name: name.into(),
            kind: BackendKind::Local,
            buckets: all_buckets(),
            owner: None,
            endpoint: None,
            region: None,
            force_path_style: false,
            access_key_id: None,
            secret_access_key: None,
            secret_access_key_file: None,
            checksum_when_required: true,
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            multipart_part_size: DEFAULT_MULTIPART_PART_SIZE,
            root: Some(root.into()),
            latency_ms: 0,
            virtual_objects: false,
        }
    }

    /// A `memory` entry serving every bucket.
    pub fn memory(name: &str) -> Self {
        StorageConfig { kind: BackendKind::Memory, root: None, ..StorageConfig::local(name, "") }
    }
}
