//! Roles: the walls around a job. A job runs under the role it names (`RoleArn`); a role belongs to one account
//! (the one in its ARN) and lists the buckets it may read and write, the operations it may run and the functions
//! it may invoke, and may carry its own storage credentials per `[[storage]]` entry (like an assumed role, so the
//! storage enforces the role too).
//!
//! The check is made where storage is touched, not only at creation: every storage call of a job goes through
//! its role's [`Router`], whose backends are wrapped in a [`GuardedStore`] that answers `AccessDenied` (403) for
//! a bucket the role does not allow, before any request leaves the process. Preparing, every task, the report,
//! the generated manifest and the impact preview all take their backends from [`Roles::router_for`].
//!
//! - With `[[accounts]]` configured ([`Roles::required`]), a job must name a configured role of its own account;
//!   a job whose role is gone (the config changed) is denied everything.
//! - Without accounts (the open loopback server, the demo), a job that names no configured role runs with the
//!   server's own credentials and no walls, as before; a job that names a configured role is held to it.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use s3batch_core::spec::{OPERATION_NAMES, role_arn_account, valid_account_id};
use s3batch_core::{JobSpec, Operation, Tag};
use s3batch_storage::router::matches;
use s3batch_storage::{
    Acl, AclPolicy, BackendKind, CompletedPart, CopyRequest, DeleteKey, DeleteResults, GetResult, ListPage,
    MultipartOptions, MultipartUpload, ObjectInfo, ObjectRef, ObjectStore, PutBody, PutOptions, RestoreTier, Retention,
    RetentionMode, Router, StorageConfig, StorageError, VersionPage, WriteResult,
};
use serde::{Deserialize, Serialize};

/// One `[[roles]]` entry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// The RoleArn jobs name, `arn:aws:iam::<12-digit account>:role/<name>`; its account is the only one whose
    /// jobs may use the role.
    pub arn: String,
    /// The CAM role (`qcs::cam::uin/<uin>:roleName/<name>`) that jobs created through the COS dialect name for this
    /// role. Default: none (COS jobs cannot use the role).
    #[serde(default)]
    pub cos_arn: Option<String>,
    /// Buckets (names, `"prefix-*"` or `"*"`) the job may read and list: manifests, inventories, generator
    /// sources, copy sources, objects it HEADs or reads tags and ACLs of. Default: none.
    #[serde(default)]
    pub read: Vec<String>,
    /// Buckets the job may change: tags, ACLs, object lock, restores, deletes, copy targets, reports, generated
    /// manifests. Writing does not imply reading. Default: none.
    #[serde(default)]
    pub write: Vec<String>,
    /// The operations (`OperationName`s, e.g. `S3PutObjectTagging`) jobs under this role may run. Default: every
    /// operation.
    #[serde(default)]
    pub operations: Option<Vec<String>>,
    /// The function ARNs `LambdaInvoke` jobs under this role may name, matched exactly. Default: none.
    #[serde(default)]
    pub functions: Vec<String>,
    /// Storage credentials of this role, per `[[storage]]` entry (kind `s3`): the job's requests to that entry are
    /// signed with them instead of the entry's own, so the storage enforces the role too. Default: none.
    #[serde(default)]
    pub credentials: Vec<RoleCredentials>,
}

impl std::fmt::Debug for RoleConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleConfig")
            .field("arn", &self.arn)
            .field("cos_arn", &self.cos_arn)
            .field("read", &self.read)
            .field("write", &self.write)
            .field("operations", &self.operations)
            .field("functions", &self.functions)
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// `[[roles.credentials]]`: the keys a role uses on one `[[storage]]` entry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleCredentials {
    /// The `name` of a `[[storage]]` entry of kind `s3`.
    pub storage: String,
    pub access_key_id: String,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Read the secret from this file instead.
    #[serde(default)]
    pub secret_access_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for RoleCredentials {
    /// Secrets never appear in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleCredentials")
            .field("storage", &self.storage)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<redacted>"))
            .field("secret_access_key_file", &self.secret_access_key_file)
            .finish()
    }
}

/// A configured role, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub arn: String,
    pub cos_arn: Option<String>,
    /// The account in the ARN.
    pub account: String,
    pub read: Vec<String>,
    pub write: Vec<String>,
    /// `None`: every operation.
    pub operations: Option<Vec<String>>,
    pub functions: Vec<String>,
    /// The `[[storage]]` entries this role signs its own requests to.
    pub credentials_for: Vec<String>,
}

impl Role {
    pub fn may_read(&self, bucket: &str) -> bool {
        self.read.iter().any(|p| matches(p, bucket))
    }

    pub fn may_write(&self, bucket: &str) -> bool {
        self.write.iter().any(|p| matches(p, bucket))
    }

    pub fn may_run(&self, operation: &str) -> bool {
        self.operations.as_ref().is_none_or(|ops| ops.iter().any(|o| o == operation))
    }

    /// Exact ARNs only: a bare function name matches nothing.
    pub fn may_invoke(&self, function_arn: &str) -> bool {
        self.functions.iter().any(|f| f == function_arn)
    }

    /// Whether a job naming `named` means this role.
    fn is_named(&self, named: &str) -> bool {
        self.arn == named || self.cos_arn.as_deref() == Some(named)
    }

    /// Why a job of this role may not run `op`, if it may not (an operation or a function the role does not list).
    pub fn refuses(&self, op: &Operation) -> Option<String> {
        if !self.may_run(op.name()) {
            return Some(format!("role {} does not allow the operation {}", self.arn, op.name()));
        }
        if let Operation::LambdaInvoke(l) = op
            && !self.may_invoke(&l.function_arn)
        {
            return Some(format!(
                "role {} does not allow invoking {} (a role lists the function ARNs it may invoke, exactly)",
                self.arn, l.function_arn
            ));
        }
        None
    }
}

/// Whether a call reads or changes a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// What a [`GuardedStore`] lets through.
#[derive(Debug, Clone)]
pub struct Walls {
    /// The role, as messages name it.
    role: String,
    read: Vec<String>,
    write: Vec<String>,
    /// Set when the job may touch nothing (its role is not configured, or belongs to another account): why.
    refusal: Option<String>,
}

impl Walls {
    fn of(role: &Role) -> Walls {
        Walls { role: role.arn.clone(), read: role.read.clone(), write: role.write.clone(), refusal: None }
    }

    fn nothing(role: &str, why: String) -> Walls {
        Walls { role: role.into(), read: vec![], write: vec![], refusal: Some(why) }
    }

    /// `AccessDenied` (403) naming the role, unless it may `access` `bucket`.
    pub fn check(&self, bucket: &str, access: Access) -> Result<(), StorageError> {
        if let Some(why) = &self.refusal {
            return Err(StorageError::access_denied(format!("Access Denied: {why}")));
        }
        let (patterns, verb) = match access {
            Access::Read => (&self.read, "read"),
            Access::Write => (&self.write, "write to"),
        };
        if patterns.iter().any(|p| matches(p, bucket)) {
            Ok(())
        } else {
            Err(StorageError::access_denied(format!(
                "Access Denied: role {} may not {verb} bucket {bucket}",
                self.role
            )))
        }
    }
}

/// A backend seen through a role: every call is checked against the role's buckets before it is made.
#[derive(Debug)]
pub struct GuardedStore {
    inner: Arc<dyn ObjectStore>,
    walls: Arc<Walls>,
}

impl GuardedStore {
    pub fn new(inner: Arc<dyn ObjectStore>, walls: Arc<Walls>) -> Self {
        GuardedStore { inner, walls }
    }

    fn read(&self, bucket: &str) -> Result<(), StorageError> {
        self.walls.check(bucket, Access::Read)
    }

    fn write(&self, bucket: &str) -> Result<(), StorageError> {
        self.walls.check(bucket, Access::Write)
    }
}

type SResult<T> = Result<T, StorageError>;

/// A guarded call: the walls are checked, then the backend's own future is handed back as it is, so the guard adds
/// no future (and no allocation) of its own to a call; a refusal is a ready `AccessDenied`. The signature is the one
/// `async_trait` gives the trait's method (a lifetime per reference, each outliving `'async_trait`).
macro_rules! checked {
    (fn $name:ident<$($lt:lifetime),+>(&$slt:lifetime $this:ident $(, $arg:ident: $ty:ty)* $(,)?) -> $out:ty $check:block) => {
        fn $name<$($lt,)+ 'async_trait>(
            &$slt $this $(, $arg: $ty)*
        ) -> Pin<Box<dyn Future<Output = SResult<$out>> + Send + 'async_trait>>
        where
            $($lt: 'async_trait,)+
            Self: 'async_trait,
        {
            match $check {
                Ok(()) => $this.inner.$name($($arg),*),
                Err(denied) => Box::pin(std::future::ready(Err(denied))),
            }
        }
    };
}

/// Every method is written out, defaults included: a method the guard does not forward would answer with the
/// trait's default instead of the backend's (a past bug), so clippy refuses a missing one.
#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for GuardedStore {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    checked!(
        fn create_bucket<'life0, 'life1>(&'life0 self, bucket: &'life1 str) -> () {
            self.write(bucket)
        }
    );

    checked!(
        fn head_object<'life0, 'life1>(&'life0 self, obj: &'life1 ObjectRef) -> ObjectInfo {
            self.read(&obj.bucket)
        }
    );

    checked!(
        fn get_object<'life0, 'life1>(&'life0 self, obj: &'life1 ObjectRef, range: Option<Range<u64>>) -> GetResult {
            self.read(&obj.bucket)
        }
    );

    checked!(
        fn put_object<'life0, 'life1, 'life2, 'life3>(
            &'life0 self,
            bucket: &'life1 str,
            key: &'life2 str,
            body: PutBody,
            opts: &'life3 PutOptions,
        ) -> WriteResult {
            self.write(bucket)
        }
    );

    checked!(
        fn copy_object<'life0, 'life1>(&'life0 self, req: &'life1 CopyRequest) -> WriteResult {
            self.read(&req.source.bucket).and_then(|()| self.write(&req.dest_bucket))
        }
    );

    checked!(
        fn delete_object<'life0, 'life1>(&'life0 self, obj: &'life1 ObjectRef) -> WriteResult {
            self.write(&obj.bucket)
        }
    );

    checked!(
        fn get_object_tagging<'life0, 'life1>(&'life0 self, obj: &'life1 ObjectRef) -> Vec<Tag> {
            self.read(&obj.bucket)
        }
    );

    checked!(
        fn put_object_tagging<'life0, 'life1, 'life2>(
            &'life0 self,
            obj: &'life1 ObjectRef,
            tags: &'life2 [Tag],
        ) -> WriteResult {
            self.write(&obj.bucket)
        }
    );

    checked!(
        fn delete_object_tagging<'life0, 'life1>(&'life0 self, obj: &'life1 ObjectRef) -> WriteResult {
            self.write(&obj.bucket)
        }
    );

    checked!(
        fn list_objects<'life0, 'life1, 'life2>(
            &'life0 self,
            bucket: &'life1 str,
            prefix: &'life2 str,
            continuation: Option<String>,
            max_keys: usize,
        ) -> ListPage {
            self.read(bucket)
        }
    );

    checked!(
        fn list_objects_after<'life0, 'life1, 'life2>(
            &'life0 self,
            bucket: &'life1 str,
            prefix: &'life2 str,
            start_after: Option<String>,
            max_keys: usize,
        ) -> ListPage {
            self.read(bucket)
        }
    );

    checked!(
        fn list_object_versions<'life0, 'life1, 'life2>(
            &'life0 self,
            bucket: &'life1 str,
            prefix: &'life2 str,
            key_marker: Option<String>,
            version_marker: Option<String>,
            max_keys: usize,
        ) -> VersionPage {
            self.read(bucket)
        }
    );

    checked!(
        fn put_object_acl<'life0, 'life1, 'life2>(&'life0 self, obj: &'life1 ObjectRef, acl: &'life2 Acl) -> () {
            self.write(&obj.bucket)
        }
    );

    checked!(
        fn get_object_acl<'life0, 'life1>(&'life0 self, obj: &'life1 ObjectRef) -> AclPolicy {
            self.read(&obj.bucket)
        }
    );

    checked!(
        fn put_object_retention<'life0, 'life1>(
            &'life0 self,
            obj: &'life1 ObjectRef,
            mode: Option<RetentionMode>,
            retain_until: Option<i64>,
            bypass_governance: bool,
            event_hold: Option<s3batch_storage::EventHold>,
        ) -> () {
            self.write(&obj.bucket)
        }
    );

    checked!(
        fn get_object_retention<'life0, 'life1>(&'life0 self, obj: &'life1 ObjectRef) -> Retention {
            self.read(&obj.bucket)
        }
    );

    checked!(
        fn put_object_legal_hold<'life0, 'life1>(&'life0 self, obj: &'life1 ObjectRef, on: bool) -> () {
            self.write(&obj.bucket)
        }
    );

    checked!(
        fn get_object_legal_hold<'life0, 'life1>(&'life0 self, obj: &'life1 ObjectRef) -> bool {
            self.read(&obj.bucket)
        }
    );

    checked!(
        fn restore_object<'life0, 'life1>(
            &'life0 self,
            obj: &'life1 ObjectRef,
            days: Option<i32>,
            tier: Option<RestoreTier>,
        ) -> () {
            self.write(&obj.bucket)
        }
    );

    checked!(
        fn create_multipart_upload<'life0, 'life1, 'life2, 'life3>(
            &'life0 self,
            bucket: &'life1 str,
            key: &'life2 str,
            opts: &'life3 MultipartOptions,
        ) -> MultipartUpload {
            self.write(bucket)
        }
    );

    checked!(
        fn upload_part_copy<'life0, 'life1, 'life2>(
            &'life0 self,
            upload: &'life1 MultipartUpload,
            part_number: i32,
            source: &'life2 ObjectRef,
            range: Option<Range<u64>>,
        ) -> CompletedPart {
            self.read(&source.bucket).and_then(|()| self.write(&upload.bucket))
        }
    );

    checked!(
        fn upload_part<'life0, 'life1>(
            &'life0 self,
            upload: &'life1 MultipartUpload,
            part_number: i32,
            data: Bytes,
        ) -> CompletedPart {
            self.write(&upload.bucket)
        }
    );

    checked!(
        fn complete_multipart_upload<'life0, 'life1, 'life2>(
            &'life0 self,
            upload: &'life1 MultipartUpload,
            parts: &'life2 [CompletedPart],
        ) -> WriteResult {
            self.write(&upload.bucket)
        }
    );

    checked!(
        fn abort_multipart_upload<'life0, 'life1>(&'life0 self, upload: &'life1 MultipartUpload) -> () {
            self.write(&upload.bucket)
        }
    );

    /// Each key is checked as its own DeleteObject would be: a key the role may not delete gets its own
    /// `AccessDenied`, and only the others are sent.
    async fn delete_objects(&self, bucket: &str, keys: &[DeleteKey]) -> SResult<DeleteResults> {
        let verdicts: Vec<SResult<()>> = keys.iter().map(|k| self.write(&k.object(bucket).bucket)).collect();
        let allowed: Vec<DeleteKey> =
            keys.iter().zip(&verdicts).filter(|(_, v)| v.is_ok()).map(|(k, _)| k.clone()).collect();
        let mut sent = if allowed.is_empty() {
            Vec::new().into_iter()
        } else {
            self.inner.delete_objects(bucket, &allowed).await?.into_iter()
        };
        Ok(verdicts
            .into_iter()
            .map(|v| match v {
                Err(denied) => Err(denied),
                Ok(()) => sent
                    .next()
                    .unwrap_or_else(|| Err(StorageError::internal("the store answered fewer results than keys"))),
            })
            .collect())
    }
}

/// A refused CreateJob: why, in words that do not tell whether another account's role exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RoleRefusal(pub String);

/// Every configured role, with the router each one's jobs use.
#[derive(Debug)]
pub struct Roles {
    roles: Vec<(Arc<Role>, Arc<Router>)>,
    /// The server's own routes, for jobs that run without walls (no accounts, no configured role named).
    base: Arc<Router>,
    required: bool,
}

impl Roles {
    /// No roles, nothing required: every job runs on `base` (the open server, tests).
    pub fn open(base: Arc<Router>) -> Roles {
        Roles { roles: Vec::new(), base, required: false }
    }

    /// Check `[[roles]]` and build each role's router over `base` (built from `storage`). `required`: accounts
    /// are configured, so every job must name a role of its account. Every problem names the role.
    pub fn new(
        configs: &[RoleConfig],
        storage: &[StorageConfig],
        base: Arc<Router>,
        required: bool,
    ) -> Result<Roles, String> {
        let mut roles: Vec<(Arc<Role>, Arc<Router>)> = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            let err = |m: String| format!("roles[{i}] ({}): {m}", c.arn);
            let role = check_role(c).map_err(err)?;
            if let Some((other, _)) = roles
                .iter()
                .find(|(r, _)| r.is_named(&role.arn) || role.cos_arn.as_deref().is_some_and(|a| r.is_named(a)))
            {
                return Err(err(format!("the same role as {} is configured twice", other.arn)));
            }
            let mut own: HashMap<String, Arc<dyn ObjectStore>> = HashMap::new();
            for cred in &c.credentials {
                let entry = storage.iter().find(|s| s.name == cred.storage).ok_or_else(|| {
                    err(format!("credentials name the storage '{}', which no [[storage]] entry is", cred.storage))
                })?;
                if entry.kind != BackendKind::S3 {
                    return Err(err(format!(
                        "credentials for the storage '{}': only kind = \"s3\" entries take credentials",
                        cred.storage
                    )));
                }
                if own.contains_key(&cred.storage) {
                    return Err(err(format!("two sets of credentials for the storage '{}'", cred.storage)));
                }
                let mut e = entry.clone();
                e.access_key_id = Some(cred.access_key_id.clone());
                e.secret_access_key = cred.secret_access_key.clone();
                e.secret_access_key_file = cred.secret_access_key_file.clone();
                let s3 = s3batch_storage::s3::S3Store::from_config(&e)
                    .map_err(|m| err(format!("credentials for the storage '{}': {m}", cred.storage)))?;
                own.insert(cred.storage.clone(), Arc::new(s3));
            }
            let walls = Arc::new(Walls::of(&role));
            let router = base.map_stores(|name, store| {
                let inner = own.get(name).cloned().unwrap_or_else(|| store.clone());
                Arc::new(GuardedStore::new(inner, walls.clone()))
            });
            roles.push((Arc::new(role), Arc::new(router)));
        }
        Ok(Roles { roles, base, required })
    }

    /// Whether every job must name a configured role of its account (`[[accounts]]` are configured).
    pub fn required(&self) -> bool {
        self.required
    }

    /// The server's own routes.
    pub fn base(&self) -> &Arc<Router> {
        &self.base
    }

    /// The role a job of `account` names, if it is one of that account's.
    pub fn find(&self, account: &str, named: &str) -> Option<&Arc<Role>> {
        self.roles.iter().map(|(r, _)| r).find(|r| r.account == account && r.is_named(named))
    }

    /// The roles of `account`, in config order.
    pub fn of_account(&self, account: &str) -> Vec<Arc<Role>> {
        self.roles.iter().filter(|(r, _)| r.account == account).map(|(r, _)| r.clone()).collect()
    }

    /// CreateJob's check: the role the spec names must be one of `account`'s (always when roles are required;
    /// otherwise when it names a configured role), and allow the job's operation (and function).
    pub fn check_create(&self, account: &str, spec: &JobSpec) -> Result<(), RoleRefusal> {
        let Some(named) = spec.named_role() else {
            if self.required {
                return Err(RoleRefusal(format!(
                    "this server requires every job to name a role (RoleArn; `s3batch job create --role-arn ARN`); \
                     account {account} has {}. An operator adds one as a [[roles]] entry with \
                     arn = \"arn:aws:iam::{account}:role/<name>\" and the buckets it may read and write",
                    self.role_list(account)
                )));
            }
            return Ok(());
        };
        match self.find(account, named) {
            Some(role) => role.refuses(&spec.operation).map_or(Ok(()), |why| Err(RoleRefusal(why))),
            // Another account's role, or none: the same words either way.
            None if self.required || self.roles.iter().any(|(r, _)| r.is_named(named)) => Err(RoleRefusal(format!(
                "the role {named} is not a role of account {account} on this server ({}); \
                 `s3batch roles` lists them",
                self.role_list(account)
            ))),
            None => Ok(()),
        }
    }

    fn role_list(&self, account: &str) -> String {
        let mine = self.of_account(account);
        if mine.is_empty() {
            "it has no role".into()
        } else {
            format!("its roles: {}", mine.iter().map(|r| r.arn.as_str()).collect::<Vec<_>>().join(", "))
        }
    }

    /// The routes a job of `account` naming `named` touches storage through.
    pub fn router_for(&self, account: &str, named: Option<&str>) -> Arc<Router> {
        match self.walls_for(account, named) {
            JobWalls::None => self.base.clone(),
            JobWalls::Role(i) => self.roles[i].1.clone(),
            JobWalls::Nothing(w) => {
                let w = Arc::new(w);
                Arc::new(self.base.map_stores(|_, store| Arc::new(GuardedStore::new(store.clone(), w.clone()))))
            }
        }
    }

    /// Whether a job of `account` naming `named` may `access` `bucket`: `AccessDenied` (403) naming the role if
    /// not. (The same answer its router gives, without a request.)
    pub fn check(&self, account: &str, named: Option<&str>, bucket: &str, access: Access) -> Result<(), StorageError> {
        match self.walls_for(account, named) {
            JobWalls::None => Ok(()),
            JobWalls::Role(i) => Walls::of(&self.roles[i].0).check(bucket, access),
            JobWalls::Nothing(w) => w.check(bucket, access),
        }
    }

    fn walls_for(&self, account: &str, named: Option<&str>) -> JobWalls {
        match named {
            Some(n) => {
                if let Some(i) = self.roles.iter().position(|(r, _)| r.account == account && r.is_named(n)) {
                    return JobWalls::Role(i);
                }
                if self.required || self.roles.iter().any(|(r, _)| r.is_named(n)) {
                    return JobWalls::Nothing(Walls::nothing(
                        n,
                        format!("the role {n} is not a role of account {account} on this server"),
                    ));
                }
                JobWalls::None
            }
            None if self.required => JobWalls::Nothing(Walls::nothing(
                "(none)",
                "the job names no role, and this server requires one".into(),
            )),
            None => JobWalls::None,
        }
    }

    /// Why the tasks of a job of `account` naming `named` may not run `op`, if they may not (the operation, the
    /// function, or a copy's target bucket): every such task fails with this (`AccessDenied`, 403).
    pub fn task_refusal(&self, account: &str, named: Option<&str>, op: &Operation) -> Option<StorageError> {
        // A copy's target is the job's, not the task's: refused before any task reads its source.
        if let Operation::S3PutObjectCopy(c) = op
            && let Some(target) = s3batch_core::arn::parse_bucket_arn(&c.target_resource)
            && let Err(e) = self.check(account, named, &target, Access::Write)
        {
            return Some(e);
        }
        let denied = |m: String| Some(StorageError::access_denied(format!("Access Denied: {m}")));
        match named.and_then(|n| self.find(account, n)) {
            Some(role) => role.refuses(op).and_then(denied),
            None => match named {
                Some(n) if self.required || self.roles.iter().any(|(r, _)| r.is_named(n)) => {
                    denied(format!("the role {n} is not a role of account {account} on this server"))
                }
                None if self.required => denied("the job names no role, and this server requires one".into()),
                _ => None,
            },
        }
    }
}

/// What a job's storage calls go through.
enum JobWalls {
    /// No walls: the server's own routes.
    None,
    /// The role at this index.
    Role(usize),
    /// Nothing at all, for this reason.
    Nothing(Walls),
}

/// Check one `[[roles]]` entry.
fn check_role(c: &RoleConfig) -> Result<Role, String> {
    let account = match role_arn_account(&c.arn) {
        Some(a) => a.to_string(),
        None => {
            let acct = c.arn.split(':').nth(4).unwrap_or("");
            return Err(
                if c.arn.starts_with("arn:") && c.arn.split(':').nth(2) == Some("iam") && !valid_account_id(acct) {
                    format!("the account '{acct}' in the role ARN is not 12 digits")
                } else {
                    "arn is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)".into()
                },
            );
        }
    };
    if let Some(cos) = &c.cos_arn
        && !(cos.starts_with("qcs::cam::") && cos.contains(":roleName/"))
    {
        return Err(format!("cos_arn '{cos}' is not a CAM role (qcs::cam::uin/<uin>:roleName/<name>)"));
    }
    for (what, patterns) in [("read", &c.read), ("write", &c.write)] {
        for p in patterns {
            let name = p.strip_suffix('*').unwrap_or(p);
            if p.is_empty() || name.contains('*') || name.contains('/') {
                return Err(format!("{what}: '{p}' is not a bucket name, \"prefix-*\" or \"*\""));
            }
        }
    }
    if let Some(ops) = &c.operations {
        for o in ops {
            if !OPERATION_NAMES.contains(&o.as_str()) {
                return Err(format!("operations: '{o}' is not an operation (one of {})", OPERATION_NAMES.join(", ")));
            }
        }
    }
    for f in &c.functions {
        if !is_function_arn(f) {
            return Err(format!(
                "functions: '{f}' is not a function ARN (arn:aws:lambda:<region>:<account>:function:<name>); \
                 a bare name would match no function"
            ));
        }
    }
    Ok(Role {
        arn: c.arn.clone(),
        cos_arn: c.cos_arn.clone(),
        account,
        read: c.read.clone(),
        write: c.write.clone(),
        operations: c.operations.clone(),
        functions: c.functions.clone(),
        credentials_for: c.credentials.iter().map(|c| c.storage.clone()).collect(),
    })
}

/// `arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]`.
fn is_function_arn(f: &str) -> bool {
    let p: Vec<&str> = f.split(':').collect();
    (7..=8).contains(&p.len())
        && p[0] == "arn"
        && !p[1].is_empty()
        && p[2] == "lambda"
        && !p[3].is_empty()
        && valid_account_id(p[4])
        && p[5] == "function"
        && !p[6].is_empty()
        && p.get(7).is_none_or(|q| !q.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(arn: &str) -> RoleConfig {
        RoleConfig {
            arn: arn.into(),
            cos_arn: None,
            read: vec!["photos".into(), "inv-*".into()],
            write: vec!["reports".into()],
            operations: Some(vec!["S3PutObjectTagging".into()]),
            functions: vec!["arn:aws:lambda:us-east-1:111111111111:function:resize".into()],
            credentials: vec![],
        }
    }

    fn roles(configs: &[RoleConfig], required: bool) -> Result<Roles, String> {
        Roles::new(configs, &[], Arc::new(Router::default()), required)
    }

    #[test]
    fn patterns_operations_and_functions() {
        let r = check_role(&role("arn:aws:iam::111111111111:role/a")).unwrap();
        assert_eq!(r.account, "111111111111");
        assert!(r.may_read("photos") && r.may_read("inv-2024") && !r.may_read("photos2") && !r.may_read("inv"));
        assert!(!r.may_write("photos") && r.may_write("reports"));
        assert!(r.may_run("S3PutObjectTagging") && !r.may_run("S3DeleteObject"));
        assert!(r.may_invoke("arn:aws:lambda:us-east-1:111111111111:function:resize"));
        assert!(!r.may_invoke("resize"), "a bare name matches nothing");
        assert!(!r.may_invoke("arn:aws:lambda:us-east-1:111111111111:function:resize:2"));
    }

    #[test]
    fn bad_roles_are_errors_that_name_them() {
        let e = roles(&[role("arn:aws:iam::1234:role/a")], true).unwrap_err();
        assert!(e.contains("roles[0] (arn:aws:iam::1234:role/a)") && e.contains("'1234'"), "{e}");
        let e = roles(&[role("arn:aws:s3:::bucket")], true).unwrap_err();
        assert!(e.contains("not an IAM role ARN"), "{e}");
        let mut bare = role("arn:aws:iam::111111111111:role/a");
        bare.functions = vec!["resize".into()];
        assert!(roles(&[bare], true).unwrap_err().contains("bare name"));
        let mut op = role("arn:aws:iam::111111111111:role/a");
        op.operations = Some(vec!["S3Nuke".into()]);
        assert!(roles(&[op], true).unwrap_err().contains("'S3Nuke'"));
        let mut pat = role("arn:aws:iam::111111111111:role/a");
        pat.write = vec!["a*b".into()];
        assert!(roles(&[pat], true).unwrap_err().contains("'a*b'"));
        let twice = [role("arn:aws:iam::111111111111:role/a"), role("arn:aws:iam::111111111111:role/a")];
        assert!(roles(&twice, true).unwrap_err().contains("twice"));
        let mut creds = role("arn:aws:iam::111111111111:role/a");
        creds.credentials = vec![RoleCredentials {
            storage: "nowhere".into(),
            access_key_id: "k".into(),
            secret_access_key: Some("SECRET".into()),
            secret_access_key_file: None,
        }];
        assert!(!format!("{creds:?}").contains("SECRET"));
        assert!(roles(&[creds], true).unwrap_err().contains("'nowhere'"));
        // Bucket patterns that match no storage entry are fine.
        assert!(roles(&[role("arn:aws:iam::111111111111:role/a")], true).is_ok());
    }

    #[test]
    fn creation_needs_a_role_of_the_callers_account() {
        let r = roles(&[role("arn:aws:iam::111111111111:role/a")], true).unwrap();
        let spec = |arn: Option<&str>, op: Operation| {
            let mut s: JobSpec = serde_json::from_value(serde_json::json!({
                "Operation": {"S3PutObjectTagging": {"TagSet": []}},
                "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                             "Location": {"ObjectArn": "arn:aws:s3:::photos/m.csv"}},
                "Report": {"Enabled": false}, "Priority": 1
            }))
            .unwrap();
            s.role_arn = arn.map(String::from);
            s.operation = op;
            s
        };
        let tagging = || Operation::S3PutObjectTagging(s3batch_core::spec::PutObjectTagging { tag_set: vec![] });
        assert!(r.check_create("111111111111", &spec(Some("arn:aws:iam::111111111111:role/a"), tagging())).is_ok());
        let none = r.check_create("111111111111", &spec(None, tagging())).unwrap_err().0;
        assert!(none.contains("[[roles]]") && none.contains("arn:aws:iam::111111111111:role/a"), "{none}");
        // Another account's role and a role that does not exist are refused in the same words.
        let other = r.check_create("222222222222", &spec(Some("arn:aws:iam::111111111111:role/a"), tagging()));
        let missing = r.check_create("222222222222", &spec(Some("arn:aws:iam::111111111111:role/zz"), tagging()));
        let words = |e: RoleRefusal, arn: &str| e.0.replace(arn, "ROLE");
        assert_eq!(
            words(other.unwrap_err(), "arn:aws:iam::111111111111:role/a"),
            words(missing.unwrap_err(), "arn:aws:iam::111111111111:role/zz")
        );
        let delete = Operation::S3DeleteObject(Default::default());
        let e = r.check_create("111111111111", &spec(Some("arn:aws:iam::111111111111:role/a"), delete)).unwrap_err();
        assert!(e.0.contains("S3DeleteObject"), "{e}");
        // Without accounts, a job naming no configured role runs as before.
        let open = roles(&[role("arn:aws:iam::111111111111:role/a")], false).unwrap();
        assert!(open.check_create("000000000000", &spec(None, tagging())).is_ok());
        assert!(open.check_create("000000000000", &spec(Some("arn:aws:iam::000000000000:role/x"), tagging())).is_ok());
        assert!(open.check_create("000000000000", &spec(Some("arn:aws:iam::111111111111:role/a"), tagging())).is_err());
    }

    #[test]
    fn cos_jobs_name_the_cam_role_and_tasks_are_checked_again() {
        let mut a = role("arn:aws:iam::111111111111:role/a");
        a.cos_arn = Some("qcs::cam::uin/100000000001:roleName/COS_Batch_QcsRole".into());
        let r = roles(&[a], true).unwrap();
        let spec: JobSpec = serde_json::from_value(serde_json::json!({
            "Operation": {"S3PutObjectTagging": {"TagSet": []}},
            "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                         "Location": {"ObjectArn": "arn:aws:s3:::photos/m.csv"}},
            "Report": {"Enabled": false}, "Priority": 1,
            "CosRequest": {"RoleArn": "qcs::cam::uin/100000000001:roleName/COS_Batch_QcsRole"}
        }))
        .unwrap();
        assert!(r.check_create("111111111111", &spec).is_ok());
        assert!(r.check_create("222222222222", &spec).is_err(), "another account cannot name the CAM role");
        // At run time: a function or a copy target the role does not allow refuses every task.
        let named = Some("arn:aws:iam::111111111111:role/a");
        let lambda: Operation = serde_json::from_value(serde_json::json!(
            {"LambdaInvoke": {"FunctionArn": "arn:aws:lambda:us-east-1:222222222222:function:theirs"}}
        ))
        .unwrap();
        let e = r.task_refusal("111111111111", named, &lambda).unwrap();
        assert_eq!((e.code.as_str(), e.http_status), ("AccessDenied", 403));
        let copy = |b: &str| -> Operation {
            serde_json::from_value(
                serde_json::json!({"S3PutObjectCopy": {"TargetResource": format!("arn:aws:s3:::{b}")}}),
            )
            .unwrap()
        };
        let tagging = || Operation::S3PutObjectTagging(s3batch_core::spec::PutObjectTagging { tag_set: vec![] });
        assert!(
            r.task_refusal("111111111111", named, &copy("photos")).unwrap().message.contains("write to bucket photos")
        );
        assert!(r.task_refusal("111111111111", named, &tagging()).is_none());
        assert!(r.task_refusal("111111111111", None, &tagging()).is_some(), "no role on a server that requires one");
        assert!(r.task_refusal("222222222222", named, &tagging()).is_some(), "another account's role");
    }

    #[tokio::test]
    async fn guarded_routes_refuse_before_any_request() {
        let mem = Arc::new(s3batch_storage::memory::MemoryStore::new());
        let mut base = Router::default();
        base.add("mem", vec!["*".into()], mem.clone());
        let r = Roles::new(&[role("arn:aws:iam::111111111111:role/a")], &[], Arc::new(base), true).unwrap();
        for b in ["photos", "reports", "other"] {
            mem.create_bucket(b).await.unwrap();
            mem.put_object(b, "k", PutBody::Bytes(Bytes::from_static(b"x")), &PutOptions::default()).await.unwrap();
        }
        let router = r.router_for("111111111111", Some("arn:aws:iam::111111111111:role/a"));
        let obj = |b: &str| ObjectRef::new(b, "k");
        let photos = router.store_for("photos").unwrap();
        assert!(photos.head_object(&obj("photos")).await.is_ok());
        let e = photos.put_object_tagging(&obj("photos"), &[]).await.unwrap_err();
        assert_eq!((e.code.as_str(), e.http_status, e.transient), ("AccessDenied", 403, false));
        assert!(e.message.contains("arn:aws:iam::111111111111:role/a") && e.message.contains("photos"), "{e}");
        let other = router.store_for("other").unwrap();
        assert_eq!(other.delete_object(&obj("other")).await.unwrap_err().code, "AccessDenied");
        assert_eq!(other.list_objects("other", "", None, 10).await.unwrap_err().code, "AccessDenied");
        let copy = CopyRequest::new(obj("other"), "reports", "stolen");
        assert_eq!(router.store_for("reports").unwrap().copy_object(&copy).await.unwrap_err().code, "AccessDenied");
        // A batch delete: each key of a bucket the role may not write to gets its own AccessDenied, none is sent;
        // the keys of a writable bucket reach the backend.
        let keys = [DeleteKey::new("k", None), DeleteKey::new("absent", None)];
        let answers = other.delete_objects("other", &keys).await.unwrap();
        assert_eq!(answers.len(), 2);
        for a in &answers {
            assert_eq!(a.as_ref().unwrap_err().code, "AccessDenied", "{a:?}");
        }
        let reports = router.store_for("reports").unwrap();
        let answers = reports.delete_objects("reports", &keys).await.unwrap();
        assert!(answers.iter().all(|a| a.is_ok()), "{answers:?}");
        assert_eq!(mem.head_object(&obj("reports")).await.unwrap_err().code, "NoSuchKey", "forwarded: deleted");
        assert!(mem.head_object(&obj("other")).await.is_ok(), "nothing was deleted");
        assert_eq!(mem.head_object(&ObjectRef::new("reports", "stolen")).await.unwrap_err().code, "NoSuchKey");
        assert!(router.same_backend("photos", "reports"), "one guarded backend for routes that shared one");
        // Another account naming the role, or a job naming none, touches nothing.
        let theirs = r.router_for("222222222222", Some("arn:aws:iam::111111111111:role/a"));
        assert_eq!(
            theirs.store_for("photos").unwrap().head_object(&obj("photos")).await.unwrap_err().code,
            "AccessDenied"
        );
        let none = r.router_for("111111111111", None);
        assert_eq!(
            none.store_for("photos").unwrap().head_object(&obj("photos")).await.unwrap_err().code,
            "AccessDenied"
        );
    }
}
