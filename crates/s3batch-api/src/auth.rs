//! Accounts and credentials. Each access key belongs to one 12-digit account; a job belongs to the account of the
//! key that created it, and no account sees another's jobs.
//!
//! With no `[[accounts]]` configured, the server is open: every caller acts for the account in
//! `x-amz-account-id` (or [`DEFAULT_ACCOUNT`]). That is the embedded default for one user on one machine and is
//! why `serve` listens on 127.0.0.1 unless told otherwise.

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

/// The account of an open server's callers that name none.
pub const DEFAULT_ACCOUNT: &str = "000000000000";

/// One `[[accounts]]` entry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub account_id: String,
    pub access_key_id: String,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Read the secret from this file instead.
    #[serde(default)]
    pub secret_access_key_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Account {
    /// Secrets never appear in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("account_id", &self.account_id)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Every configured account, with secrets resolved.
#[derive(Clone, Default)]
pub struct Accounts {
    entries: Vec<(Account, String)>,
}

impl std::fmt::Debug for Accounts {
    /// Secrets never appear in logs: only the accounts are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.entries.iter().map(|(a, _)| a)).finish()
    }
}

/// Why a caller is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub String);

impl Accounts {
    /// Resolve secrets (reading `secret_access_key_file`s) and check the entries.
    pub fn new(accounts: Vec<Account>) -> Result<Accounts, String> {
        let mut entries = Vec::new();
        for a in accounts {
            if !s3batch_core::spec::valid_account_id(&a.account_id) {
                return Err(format!("accounts: '{}' is not a 12-digit account id", a.account_id));
            }
            let secret = match (&a.secret_access_key, &a.secret_access_key_file) {
                (Some(s), None) => s.clone(),
                (None, Some(p)) => std::fs::read_to_string(p)
                    .map_err(|e| format!("accounts: reading {}: {e}", p.display()))?
                    .trim()
                    .to_string(),
                _ => {
                    return Err(format!(
                        "accounts: key {} needs exactly one of secret_access_key and secret_access_key_file",
                        a.access_key_id
                    ));
                }
            };
            if secret.is_empty() {
                return Err(format!("accounts: key {} has an empty secret", a.access_key_id));
            }
            if entries.iter().any(|(e, _): &(Account, String)| e.access_key_id == a.access_key_id) {
                return Err(format!("accounts: key {} appears twice", a.access_key_id));
            }
            entries.push((a, secret));
        }
        Ok(Accounts { entries })
    }

    /// Whether callers must authenticate.
    pub fn is_open(&self) -> bool {
        self.entries.is_empty()
    }

    /// The secret of an access key, and its account.
    pub fn lookup(&self, access_key_id: &str) -> Option<(&str, &str)> {
        self.entries
            .iter()
            .find(|(a, _)| a.access_key_id == access_key_id)
            .map(|(a, s)| (a.account_id.as_str(), s.as_str()))
    }

    /// The JSON API's check: HTTP Basic with access key id and secret. The account is the key's; an
    /// `x-amz-account-id` naming another account is refused.
    pub fn authenticate_basic(&self, headers: &HeaderMap) -> Result<String, Denied> {
        let claimed = headers.get("x-amz-account-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        if self.is_open() {
            return Ok(claimed.unwrap_or_else(|| DEFAULT_ACCOUNT.into()));
        }
        let header = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Denied("this server requires credentials".into()))?;
        let encoded = header.strip_prefix("Basic ").ok_or_else(|| Denied("use HTTP Basic credentials".into()))?;
        let decoded = decode_base64(encoded.trim()).ok_or_else(|| Denied("malformed credentials".into()))?;
        let (key, secret) = decoded.split_once(':').ok_or_else(|| Denied("malformed credentials".into()))?;
        let (account, expected) = self.lookup(key).ok_or_else(|| Denied("the access key is not known".into()))?;
        if !constant_time_eq(secret.as_bytes(), expected.as_bytes()) {
            return Err(Denied("the secret does not match the access key".into()));
        }
        if let Some(c) = claimed
            && c != account
        {
            return Err(Denied(format!("the credentials belong to another account than {c}")));
        }
        Ok(account.to_string())
    }
}

/// Compare secrets without leaking where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Standard base64 (with padding), as HTTP Basic uses.
pub fn encode_base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn decode_base64(s: &str) -> Option<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> Accounts {
        Accounts::new(vec![Account {
            account_id: "111111111111".into(),
            access_key_id: "AKID1".into(),
            secret_access_key: Some("s3cret".into()),
            secret_access_key_file: None,
        }])
        .unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn base64_round_trip() {
        for s in ["", "a", "ab", "abc", "AKID1:s3cret", "ü:ñ+/="] {
            assert_eq!(decode_base64(&encode_base64(s.as_bytes())).unwrap(), s);
        }
        assert_eq!(encode_base64(b"AKID1:s3cret"), "QUtJRDE6czNjcmV0");
    }

    #[test]
    fn basic_auth() {
        let a = accounts();
        let good = format!("Basic {}", encode_base64(b"AKID1:s3cret"));
        assert_eq!(a.authenticate_basic(&headers(&[("authorization", &good)])).unwrap(), "111111111111");
        let bad = format!("Basic {}", encode_base64(b"AKID1:wrong"));
        assert!(a.authenticate_basic(&headers(&[("authorization", &bad)])).is_err());
        assert!(a.authenticate_basic(&headers(&[])).is_err());
        let other = headers(&[("authorization", &good), ("x-amz-account-id", "222222222222")]);
        assert!(a.authenticate_basic(&other).is_err(), "a key of account A cannot act for B");
    }

    #[test]
    fn open_server_uses_the_claimed_account() {
        let a = Accounts::default();
        assert_eq!(a.authenticate_basic(&headers(&[])).unwrap(), DEFAULT_ACCOUNT);
        assert_eq!(a.authenticate_basic(&headers(&[("x-amz-account-id", "123456789012")])).unwrap(), "123456789012");
    }

    #[test]
    fn secrets_are_not_printed() {
        let s = format!("{:?}", accounts());
        assert!(!s.contains("s3cret"), "{s}");
    }
}
