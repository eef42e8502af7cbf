//! Bucket → backend routing: the first `[[storage]]` entry whose `buckets` match serves the bucket.

use std::sync::Arc;

use crate::config::{BackendKind, StorageConfig};
use crate::{ObjectStore, StorageError};

/// Routes buckets to backends.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

#[derive(Debug, Clone)]
struct Route {
    name: String,
    patterns: Vec<String>,
    /// The account owning the buckets (`owner`), if declared.
    owner: Option<String>,
    store: Arc<dyn ObjectStore>,
}

/// A `[[storage]]` entry that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage '{name}': {message}")]
pub struct RouterError {
    pub name: String,
    pub message: String,
}

impl Router {
    /// Build every backend the config names.
    pub fn from_config(entries: &[StorageConfig]) -> Result<Router, RouterError> {
        let mut router = Router::default();
        for e in entries {
            let err = |message: String| RouterError { name: e.name.clone(), message };
            if e.buckets.is_empty() {
                return Err(err("`buckets` is empty: name bucket names or \"*\"".into()));
            }
            if let Some(o) = &e.owner
                && !s3batch_core::spec::valid_account_id(o)
            {
                return Err(err(format!("`owner` '{o}' is not a 12-digit account id")));
            }
            let store: Arc<dyn ObjectStore> = match e.kind {
                BackendKind::Local => {
                    let root = e.root.as_ref().ok_or_else(|| err("kind = \"local\" needs `root`".into()))?;
                    Arc::new(crate::local::LocalStore::new(root).map_err(|e| err(e.to_string()))?)
                }
                BackendKind::Memory => {
                    let m = crate::memory::MemoryStore::new();
                    m.set_virtual_objects(e.virtual_objects);
                    if e.latency_ms > 0 {
                        m.set_faults(crate::memory::Faults {
                            latency: std::time::Duration::from_millis(e.latency_ms),
                            ..Default::default()
                        });
                    }
                    Arc::new(m)
                }
                BackendKind::S3 => Arc::new(crate::s3::S3Store::from_config(e).map_err(|m| err(m.to_string()))?),
            };
            router.add(&e.name, e.buckets.clone(), store);
            if let Some(o) = &e.owner {
                router.set_owner(&e.name, o);
            }
        }
        Ok(router)
    }

    /// Declare the account owning the buckets of the entry `name` (`owner`).
    pub fn set_owner(&mut self, name: &str, owner: &str) {
        for r in self.routes.iter_mut().filter(|r| r.name == name) {
            r.owner = Some(owner.into());
        }
    }

    /// The account owning `bucket`, if its entry declares one.
    pub fn owner_of(&self, bucket: &str) -> Option<&str> {
        self.route(bucket).and_then(|r| r.owner.as_deref())
    }

    /// The names of the entries, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().map(|r| r.name.as_str())
    }

    /// The same routes with each backend replaced by `f(entry name, backend)`. Routes that shared a backend share
    /// its replacement (so [`Router::same_backend`] answers as before).
    pub fn map_stores(&self, mut f: impl FnMut(&str, &Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>) -> Router {
        let mut done: Vec<(Arc<dyn ObjectStore>, Arc<dyn ObjectStore>)> = Vec::new();
        let routes = self
            .routes
            .iter()
            .map(|r| {
                let store = match done.iter().find(|(old, _)| Arc::ptr_eq(old, &r.store)) {
                    Some((_, new)) => new.clone(),
                    None => {
                        let new = f(&r.name, &r.store);
                        done.push((r.store.clone(), new.clone()));
                        new
                    }
                };
                Route { store, ..r.clone() }
            })
            .collect();
        Router { routes }
    }

    /// Add a route (tests use this to put a prepared `MemoryStore` behind some buckets).
    /// The same routes with every backend's calls counted and timed ([`crate::metered`]).
    pub fn metered(&self) -> Router {
        self.map_stores(|_, store| Arc::new(crate::metered::MeteredStore::new(store.clone())))
    }

    pub fn add(&mut self, name: &str, patterns: Vec<String>, store: Arc<dyn ObjectStore>) {
        self.routes.push(Route { name: name.into(), patterns, owner: None, store });
    }

    /// The backend serving `bucket`, or `NoSuchBucket` when no entry matches.
    pub fn store_for(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>, StorageError> {
        self.route(bucket).map(|r| r.store.clone()).ok_or_else(|| StorageError::no_such_bucket(bucket))
    }

    /// The name of the entry serving `bucket`.
    pub fn route_name(&self, bucket: &str) -> Option<&str> {
        self.route(bucket).map(|r| r.name.as_str())
    }

    /// Whether two buckets are served by the same backend (a copy between them can be server-side).
    pub fn same_backend(&self, a: &str, b: &str) -> bool {
        match (self.route(a), self.route(b)) {
            (Some(x), Some(y)) => Arc::ptr_eq(&x.store, &y.store),
            _ => false,
        }
    }

    fn route(&self, bucket: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.patterns.iter().any(|p| matches(p, bucket)))
    }
}

/// Whether `bucket` matches `pattern`: a name, `"prefix-*"` (every name starting `prefix-`) or `"*"`.
pub fn matches(pattern: &str, bucket: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => bucket.starts_with(prefix),
        None => pattern == bucket,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_match_wins() {
        let dir = tempfile::tempdir().unwrap();
        let mut photos = StorageConfig::local("disk", dir.path());
        photos.buckets = vec!["photos".into(), "logs-*".into()];
        let rest = StorageConfig::memory("mem");
        let r = Router::from_config(&[photos, rest]).unwrap();
        assert_eq!(r.route_name("photos"), Some("disk"));
        assert_eq!(r.route_name("logs-2024"), Some("disk"));
        assert_eq!(r.route_name("photos2"), Some("mem"));
        assert_eq!(r.store_for("photos").unwrap().kind(), "local");
        assert_eq!(r.store_for("other").unwrap().kind(), "memory");
        assert!(r.same_backend("photos", "logs-x"));
        assert!(!r.same_backend("photos", "other"));
    }

    #[test]
    fn unrouted_bucket_is_no_such_bucket() {
        let r = Router::from_config(&[]).unwrap();
        assert_eq!(r.store_for("x").unwrap_err().code, "NoSuchBucket");
    }

    #[test]
    fn local_needs_a_root() {
        let mut c = StorageConfig::local("disk", "/tmp");
        c.root = None;
        assert!(Router::from_config(&[c]).unwrap_err().message.contains("root"));
    }
}
