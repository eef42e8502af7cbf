//! The configuration: defaults ⇒ `s3batch.toml` (or `--config FILE`) ⇒ `S3BATCH_<SECTION>__<KEY>` environment
//! variables ⇒ command-line flags. Secrets are never logged (the `Debug` impls redact them).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use s3batch_api::Account;
use s3batch_engine::EngineConfig;
use s3batch_engine::roles::RoleConfig;
use s3batch_storage::StorageConfig;
use serde::{Deserialize, Serialize};

/// Everything `serve` and `demo` read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    /// Who may call the API. None: the server is open (bound to 127.0.0.1 by default).
    pub accounts: Vec<Account>,
    pub engine: EngineConfig,
    /// Where buckets live, first match wins. None: one `local` store under `<data_dir>/objects` for every bucket.
    pub storage: Vec<StorageConfig>,
    /// What jobs may touch: with `[[accounts]]`, every job must name one of its account's roles.
    pub roles: Vec<RoleConfig>,
}

/// `[server]`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Default: `127.0.0.1:8080`.
    pub listen: String,
    /// Default: `./s3batch-data`.
    pub data_dir: PathBuf,
    /// Default: SQLite at `<data_dir>/s3batch.db`.
    pub database_url: Option<String>,
    /// The region in job ARNs. Default: `us-east-1`.
    pub region: String,
    /// Requests per second each account may make on the S3 Control API; 0 (the default) means no limit.
    pub requests_per_second: f64,
    /// Burst allowed above `requests_per_second`. Default: 50.
    pub request_burst: u32,
    /// Host names (without port) an open server (no `[[accounts]]`) answers to besides loopback names and
    /// addresses; requests under any other `Host` are refused (DNS rebinding). Default: none.
    pub allowed_hosts: Vec<String>,
    /// Connections served at once; more wait in the listen queue until one closes. Default: 512.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, and how long an idle kept-alive connection stays
    /// open. Default: 10000.
    pub header_timeout_ms: u64,
    /// How long a request body may go without sending a byte. Default: 10000.
    pub body_timeout_ms: u64,
    /// How long a request may take from its headers to the answer's headers (408 beyond it). Default: 60000.
    pub request_timeout_ms: u64,
}

/// The database URL's password never reaches a log line or an error.
impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url.as_deref().map(redact_url))
            .field("region", &self.region)
            .field("requests_per_second", &self.requests_per_second)
            .field("request_burst", &self.request_burst)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("max_connections", &self.max_connections)
            .field("header_timeout_ms", &self.header_timeout_ms)
            .field("body_timeout_ms", &self.body_timeout_ms)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .finish()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./s3batch-data"),
            database_url: None,
            region: "us-east-1".into(),
            requests_per_second: 0.0,
            request_burst: 50,
            allowed_hosts: Vec::new(),
            max_connections: 512,
            header_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            request_timeout_ms: 60_000,
        }
    }
}

impl Config {
    /// Load from `file` (or `./s3batch.toml` if present), then apply `S3BATCH_*` variables from `env`.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config> {
        let default_file = Path::new("s3batch.toml");
        match file.or(default_file.exists().then_some(default_file)) {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).with_context(|| format!("reading config file {}", p.display()))?;
                Config::from_text(Some((&text, p)), env)
            }
            None => Config::from_text(None, env),
        }
    }

    /// [`Config::load`] of a config file's text (`file`: its text and where it came from, for errors), then the
    /// `S3BATCH_*` variables from `env`.
    pub fn from_text(file: Option<(&str, &Path)>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config> {
        let mut value = toml::Value::Table(Default::default());
        if let Some((text, p)) = file {
            value = toml::from_str(text).with_context(|| format!("config file {}", p.display()))?;
        }
        let mut from_env: Vec<EnvValue> = Vec::new();
        for (k, v) in env {
            if let Some(rest) = k.strip_prefix("S3BATCH_")
                && rest.contains("__")
            {
                let at = set_path(&mut value, rest, scalar(&v)).with_context(|| format!("environment variable {k}"))?;
                from_env.push(EnvValue { at, var: rest.to_string(), raw: v, as_text: false });
            }
        }
        let config = deserialize(value, &mut from_env)?;
        config.engine.validate().map_err(anyhow::Error::msg)?;
        // Roles are checked now, so that a bad one stops every command that reads the config.
        let storage = config.storage_or_default();
        let routes = std::sync::Arc::new(s3batch_storage::Router::default());
        s3batch_engine::roles::Roles::new(&config.roles, &storage, routes, !config.accounts.is_empty())
            .map_err(anyhow::Error::msg)?;
        Ok(config)
    }

    /// The storage entries, or the embedded default.
    pub fn storage_or_default(&self) -> Vec<StorageConfig> {
        if self.storage.is_empty() {
            vec![StorageConfig::local("local", self.server.data_dir.join("objects"))]
        } else {
            self.storage.clone()
        }
    }

    /// The database URL, or SQLite in the data dir.
    pub fn database_url(&self) -> String {
        self.server
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.server.data_dir.join("s3batch.db").display()))
    }
}

/// The config from its TOML value. An environment value read as a number or a boolean where the config wants
/// text (`S3BATCH_ACCOUNTS__0__ACCOUNT_ID=123456789012`, an all-digit secret) is taken as the text it was
/// given. Errors name the key and never repeat the value (it may be a secret).
fn deserialize(mut value: toml::Value, from_env: &mut [EnvValue]) -> Result<Config> {
    for _ in 0..=from_env.len() {
        let err = match serde_path_to_error::deserialize::<_, Config>(value.clone()) {
            Ok(c) => return Ok(c),
            Err(e) => e,
        };
        let at = err.path().to_string();
        let message = err.inner().to_string();
        let wants_text = message.contains("expected a string") || message.contains("expected a borrowed string");
        match from_env.iter_mut().find(|e| e.at == at && !e.as_text) {
            Some(e) if wants_text => {
                set_path(&mut value, &e.var, toml::Value::String(e.raw.clone()))?;
                e.as_text = true;
            }
            _ => bail!("configuration: {at}: {}", without_values(&message)),
        }
    }
    bail!("configuration: the environment's values do not fit")
}

/// A deserializer message without the value it quotes (`invalid type: integer `123`, expected …`); messages about
/// names (an unknown field) keep them.
fn without_values(message: &str) -> String {
    if !message.starts_with("invalid") {
        return message.to_string();
    }
    let mut out = String::new();
    for (i, part) in message.split('`').enumerate() {
        out.push_str(if i % 2 == 1 { "…" } else { part });
    }
    out
}

/// A value set from the environment: where it went in the config (as [`serde_path_to_error`] names it), the
/// variable's path (`ACCOUNTS__0__ACCOUNT_ID`), its text, and whether it was set again as text.
struct EnvValue {
    at: String,
    var: String,
    raw: String,
    as_text: bool,
}

/// The most `__`-separated parts an environment variable's path may have. The deepest key of the config has 5
/// (`ENGINE__EVENTS__WEBHOOKS__0__URL`); each part is a level of tables that deserializing, cloning and dropping
/// the value recurse into: a name of 2,242 parts (4.5 KB, found by the config fuzz target) overflowed a 2 MiB
/// thread stack in a debug build, which aborts the process.
const MAX_ENV_DEPTH: usize = 8;

/// `ENGINE__CONCURRENCY=32` sets `engine.concurrency`; `STORAGE__0__ENDPOINT=…` sets `storage[0].endpoint`.
/// The environment's values are read as TOML scalars ([`scalar`]). Returns the place it set, as
/// [`serde_path_to_error`] names it (`storage[0].endpoint`).
fn set_path(root: &mut toml::Value, path: &str, new: toml::Value) -> Result<String> {
    let parts: Vec<String> = path.split("__").map(|p| p.to_ascii_lowercase()).collect();
    if parts.len() > MAX_ENV_DEPTH {
        bail!("it names a key {} levels deep; at most {MAX_ENV_DEPTH} are read", parts.len());
    }
    let mut at = String::new();
    for part in &parts {
        if part.parse::<usize>().is_ok() {
            at.push_str(&format!("[{part}]"));
        } else {
            if !at.is_empty() {
                at.push('.');
            }
            at.push_str(part);
        }
    }
    let mut cur = root;
    for (i, part) in parts.iter().enumerate() {
        let last = i == parts.len() - 1;
        if let Ok(idx) = part.parse::<usize>() {
            let arr = match cur {
                toml::Value::Array(a) => a,
                other => {
                    *other = toml::Value::Array(vec![]);
                    let toml::Value::Array(a) = other else { unreachable!() };
                    a
                }
            };
            if idx > arr.len() {
                bail!("index {idx} skips entries (there are {})", arr.len());
            }
            if idx == arr.len() {
                arr.push(toml::Value::Table(Default::default()));
            }
            cur = &mut arr[idx];
        } else {
            let toml::Value::Table(t) = cur else { bail!("'{part}' is not inside a section") };
            if last {
                t.insert(part.clone(), new);
                return Ok(at);
            }
            cur = t.entry(part.clone()).or_insert_with(|| toml::Value::Table(Default::default()));
        }
    }
    bail!("the variable names no key")
}

/// A database URL with its password replaced by `***` (for logs, errors and `Debug`).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    // The last '@' ends the user info, even when an unescaped password holds a '/' or an '@'.
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// A value as TOML reads a scalar: a number or a boolean where it parses as one, else a string.
fn scalar(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(b) = raw.parse::<bool>() {
        return toml::Value::Boolean(b);
    }
    if let Ok(f) = raw.parse::<f64>()
        && raw.contains('.')
    {
        return toml::Value::Float(f);
    }
    if raw.starts_with('[')
        && let Ok(v) = toml::from_str::<toml::Table>(&format!("v = {raw}"))
    {
        return v["v"].clone();
    }
    toml::Value::String(raw.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The README's example configuration is a valid one (so the documentation stays true).
    #[test]
    fn the_readme_example_loads() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("```toml\n[server]").expect("the README has the example") + "```toml\n".len();
        let block = &readme[start..start + readme[start..].find("```").expect("the block ends")];
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("readme.toml");
        std::fs::write(&f, block.replace("\"…\"", "\"x\"")).unwrap();
        let c = Config::load(Some(&f), Vec::new()).unwrap();
        assert_eq!(c.engine.functions.len(), 1);
        assert_eq!(c.engine.replication.get("photos").map(String::as_str), Some("photos-replica"));
        assert_eq!(c.storage.len(), 2);
        assert_eq!((c.roles.len(), c.storage[0].owner.as_deref()), (1, Some("123456789012")));
        assert_eq!(c.engine.events.webhooks.len(), 1);
        assert!(c.engine.events.audit_log.is_some());
    }

    #[test]
    fn a_bad_role_is_an_error_that_names_it() {
        let e = Config::load(
            None,
            env(&[("S3BATCH_ROLES__0__ARN", "arn:aws:iam::12345:role/short"), ("S3BATCH_ROLES__0__READ", "[\"a\"]")]),
        );
        let e = format!("{:#}", e.unwrap_err());
        assert!(e.contains("roles[0] (arn:aws:iam::12345:role/short)") && e.contains("'12345'"), "{e}");
        let ok = Config::load(None, env(&[("S3BATCH_ROLES__0__ARN", "arn:aws:iam::123456789012:role/ok")])).unwrap();
        assert_eq!(ok.roles.len(), 1);
    }

    #[test]
    fn a_bad_webhook_is_a_clear_error() {
        let e = Config::load(None, env(&[("S3BATCH_ENGINE__EVENTS__WEBHOOKS__0__URL", "http://127.0.0.1:9/x")]));
        let e = format!("{:#}", e.unwrap_err());
        assert!(e.contains("secret"), "{e}");
        let e = Config::load(
            None,
            env(&[
                ("S3BATCH_ENGINE__EVENTS__WEBHOOKS__0__URL", "localhost:9/x"),
                ("S3BATCH_ENGINE__EVENTS__WEBHOOKS__0__SECRET", "k"),
            ]),
        );
        let e = format!("{:#}", e.unwrap_err());
        assert!(e.contains("engine.events.webhooks[0].url"), "{e}");
        let ok = Config::load(
            None,
            env(&[
                ("S3BATCH_ENGINE__EVENTS__WEBHOOKS__0__URL", "http://127.0.0.1:9/x"),
                ("S3BATCH_ENGINE__EVENTS__WEBHOOKS__0__SECRET", "WEBHOOK-SECRET"),
            ]),
        )
        .unwrap();
        assert!(!format!("{ok:?}").contains("WEBHOOK-SECRET"), "webhook secrets stay out of Debug output");
    }

    /// A variable whose name nests thousands of levels is refused by name (it overflowed the stack before).
    #[test]
    fn an_environment_path_nests_at_most_eight_levels() {
        let deep = format!("S3BATCH_ENGINE{}", "__X".repeat(3000));
        let e = format!("{:#}", Config::load(None, env(&[(deep.as_str(), "1")])).unwrap_err());
        assert_eq!(e, format!("environment variable {deep}: it names a key 3001 levels deep; at most 8 are read"));
        let e = format!("{:#}", Config::load(None, env(&[("S3BATCH_ENGINE__A__B__C__D__E__F__G", "1")])).unwrap_err());
        assert!(e.starts_with("configuration: engine.a: unknown field `a`"), "{e}");
    }

    #[test]
    fn file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            r#"
[engine]
concurrency = 8
[[storage]]
name = "g"
kind = "s3"
endpoint = "http://127.0.0.1:3900"
access_key_id = "AK"
secret_access_key = "SECRET"
"#,
        )
        .unwrap();
        let c = Config::load(
            Some(&f),
            env(&[
                ("S3BATCH_ENGINE__MAX_ACTIVE_JOBS", "2"),
                ("S3BATCH_STORAGE__0__REGION", "garage"),
                ("S3BATCH_STORAGE__0__BUCKETS", "[\"a\", \"b\"]"),
                ("S3BATCH_SERVER__LISTEN", "0.0.0.0:9000"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.engine.concurrency, 8);
        assert_eq!(c.engine.max_active_jobs, 2);
        assert_eq!(c.storage[0].region.as_deref(), Some("garage"));
        assert_eq!(c.storage[0].buckets, vec!["a", "b"]);
        assert_eq!(c.server.listen, "0.0.0.0:9000");
        assert!(!format!("{c:?}").contains("SECRET"), "secrets stay out of Debug output");
    }

    #[test]
    fn bad_config_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[engine]\nconcurency = 8\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&f), vec![]).unwrap_err());
        assert!(e.contains("concurency"), "{e}");
        let e = format!("{:#}", Config::load(None, env(&[("S3BATCH_ENGINE__CONCURRENCY", "0")])).unwrap_err());
        assert!(e.contains("concurrency"), "{e}");
        let e = format!("{:#}", Config::load(None, env(&[("S3BATCH_ENGINE__CONCURRENCY", "lots")])).unwrap_err());
        assert!(e.contains("concurrency") || e.contains("invalid type"), "{e}");
    }

    #[test]
    fn fleet_settings_from_the_environment() {
        let c = Config::load(
            None,
            env(&[
                ("S3BATCH_SERVER__DATABASE_URL", "postgres://s3batch:pw@db.internal:5432/s3batch"),
                ("S3BATCH_ENGINE__SHUTDOWN_GRACE_MS", "5000"),
            ]),
        )
        .unwrap();
        assert_eq!(c.database_url(), "postgres://s3batch:pw@db.internal:5432/s3batch");
        assert_eq!(c.engine.shutdown_grace_ms, 5000);
        assert_eq!(Config::load(None, vec![]).unwrap().engine.shutdown_grace_ms, 30_000);
    }

    /// All-digit values that the config wants as text (account ids, APPIDs, secrets) can come from the
    /// environment, and no error or Debug output repeats a secret or a database password.
    #[test]
    fn numeric_text_from_the_environment_and_no_secret_in_errors() {
        let c = Config::load(
            None,
            env(&[
                ("S3BATCH_ACCOUNTS__0__ACCOUNT_ID", "123456789012"),
                ("S3BATCH_ACCOUNTS__0__ACCESS_KEY_ID", "12345"),
                ("S3BATCH_ACCOUNTS__0__SECRET_ACCESS_KEY", "987654321"),
                ("S3BATCH_ACCOUNTS__0__COS_APPID", "1250000000"),
                ("S3BATCH_SERVER__DATABASE_URL", "postgres://u:pw-77@db/x"),
            ]),
        )
        .unwrap();
        let a = &c.accounts[0];
        assert_eq!((a.account_id.as_str(), a.access_key_id.as_str()), ("123456789012", "12345"));
        assert_eq!(a.cos_appid.as_deref(), Some("1250000000"));
        let debug = format!("{c:?}");
        assert!(!debug.contains("987654321") && !debug.contains("pw-77"), "{debug}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "[[accounts]]\naccount_id = \"123456789012\"\naccess_key_id = \"AK\"\nsecret_access_key = 424242\n",
        )
        .unwrap();
        let e = format!("{:#}", Config::load(Some(&f), vec![]).unwrap_err());
        assert!(e.contains("accounts[0].secret_access_key") && !e.contains("424242"), "{e}");
    }

    #[test]
    fn defaults() {
        let c = Config::load(None, vec![]).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:8080");
        assert!(c.database_url().ends_with("s3batch-data/s3batch.db"));
        assert_eq!(c.storage_or_default()[0].kind, s3batch_storage::BackendKind::Local);
    }
}
