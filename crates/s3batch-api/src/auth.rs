//! Accounts and credentials. Each access key belongs to one 12-digit account; a job belongs to the account of the
//! key that created it, and no account sees another's jobs.
//!
//! With no `[[accounts]]` configured, the server is open: every caller acts for the account in
//! `x-amz-account-id` (or [`DEFAULT_ACCOUNT`]). That is the embedded default for one user on one machine and is
//! why `serve` listens on 127.0.0.1 unless told otherwise.

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::signature::AuthError;

/// The account of an open server's callers that name none.
pub const DEFAULT_ACCOUNT: &str = "000000000000";

/// One `[[accounts]]` entry.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub account_id: String,
    pub access_key_id: String,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Read the secret from this file instead.
    #[serde(default)]
    pub secret_access_key_file: Option<std::path::PathBuf>,
    /// The Tencent COS APPID of this account (e.g. `1250000000`): callers of the COS dialect sign with
    /// `access_key_id` as SecretId and the secret as SecretKey, and must send this in `x-cos-appid`. Without it,
    /// the key cannot call the COS dialect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cos_appid: Option<String>,
}

impl std::fmt::Debug for Account {
    /// Secrets never appear in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("account_id", &self.account_id)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("cos_appid", &self.cos_appid)
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
            if let Some(appid) = &a.cos_appid {
                if !valid_cos_appid(appid) {
                    return Err(format!("accounts: cos_appid '{appid}' is not 1 to 64 letters and digits"));
                }
                if let Some((other, _)) = entries.iter().find(|(e, _): &&(Account, String)| {
                    e.cos_appid.as_ref() == Some(appid) && e.account_id != a.account_id
                }) {
                    return Err(format!(
                        "accounts: cos_appid {appid} is given to two accounts, {} and {}",
                        other.account_id, a.account_id
                    ));
                }
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
        // An unknown key and a wrong secret get the same answer: which keys exist is not for callers to learn.
        let wrong = || Denied("the access key id or the secret access key is not valid".into());
        let (account, expected) = self.lookup(key).ok_or_else(wrong)?;
        if !constant_time_eq(secret.as_bytes(), expected.as_bytes()) {
            return Err(wrong());
        }
        if let Some(c) = claimed
            && c != account
        {
            return Err(Denied(format!("the credentials belong to another account than {c}")));
        }
        Ok(account.to_string())
    }
}

impl Accounts {
    /// The S3 Control check: a valid SigV4 signature by a known key, and an `x-amz-account-id` (and a Host whose
    /// first label is an account id, as the SDKs build it) naming that key's account. An open server takes the
    /// account from `x-amz-account-id` without checking signatures. `body` is `None` before the body is read: then
    /// the signature is checked over the payload hash the request claims ([`crate::sigv4::verify_head`]).
    pub fn authenticate_sigv4(
        &self,
        method: &axum::http::Method,
        uri: &axum::http::Uri,
        headers: &HeaderMap,
        body: Option<&[u8]>,
    ) -> Result<String, AuthError> {
        let bad = |m: String| AuthError { code: "BadRequestException", status: 400, message: m };
        let claimed = match headers.get("x-amz-account-id") {
            Some(v) => {
                let v = v.to_str().unwrap_or("");
                if !s3batch_core::spec::valid_account_id(v) {
                    return Err(bad(format!("x-amz-account-id '{v}' is not a 12-digit account id")));
                }
                Some(v.to_string())
            }
            None => None,
        };
        let account = if self.is_open() {
            claimed.clone().unwrap_or_else(|| DEFAULT_ACCOUNT.into())
        } else {
            let now = s3batch_core::time::now_millis() / 1000;
            let secret_for = |k: &str| self.lookup(k).map(|(_, s)| s);
            let v = match body {
                Some(body) => crate::sigv4::verify(method, uri, headers, body, now, secret_for)?,
                None => crate::sigv4::verify_head(method, uri, headers, now, secret_for)?,
            };
            let (account, _) = self.lookup(&v.access_key_id).expect("verify found the key");
            if let Some(c) = &claimed
                && c != account
            {
                return Err(AuthError {
                    code: "AccessDenied",
                    status: 403,
                    message: format!("the signing key belongs to another account than {c}"),
                });
            }
            account.to_string()
        };
        // `<account>.host:port`, as the SDKs' endpoint rules build it: the label must agree.
        let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).or(uri.host()).unwrap_or("");
        if let Some((label, _)) = host.split_once('.')
            && s3batch_core::spec::valid_account_id(label)
            && label != account
        {
            return Err(AuthError {
                code: "AccessDenied",
                status: 403,
                message: format!("the Host names account {label}, the request is for {account}"),
            });
        }
        Ok(account)
    }
}

impl Accounts {
    /// The COS dialect's check. `x-cos-appid` is required (1..64 letters and digits). With accounts configured,
    /// the request must carry a valid q-sign signature ([`crate::qsign`]) by a known key whose account's
    /// `cos_appid` is the one sent; the job account is that key's `account_id`. An open server checks no
    /// signature and maps the APPID to an account id by [`open_cos_account`].
    pub fn authenticate_qsign(
        &self,
        method: &axum::http::Method,
        uri: &axum::http::Uri,
        headers: &HeaderMap,
    ) -> Result<CosCaller, AuthError> {
        let invalid = |m: String| AuthError { code: "InvalidArgument", status: 400, message: m };
        let appid = match headers.get("x-cos-appid").map(|v| v.to_str()) {
            None => return Err(invalid("x-cos-appid cannot be empty".into())),
            Some(Ok(v)) if !v.trim().is_empty() => v.trim().to_string(),
            Some(Ok(_)) => return Err(invalid("x-cos-appid cannot be empty".into())),
            Some(Err(_)) => return Err(invalid("x-cos-appid is not a valid APPID".into())),
        };
        if !valid_cos_appid(&appid) {
            return Err(invalid(format!("x-cos-appid '{appid}' is not 1 to 64 letters and digits")));
        }
        if self.is_open() {
            let account = open_cos_account(&appid).ok_or_else(|| {
                invalid(format!(
                    "x-cos-appid '{appid}': a server without [[accounts]] maps an APPID of 1 to 12 digits to an account \
                     id; configure accounts with a cos_appid for other APPIDs"
                ))
            })?;
            return Ok(CosCaller { account, appid });
        }
        let now = s3batch_core::time::now_millis() / 1000;
        let v = crate::qsign::verify(method, uri, headers, now, |k| self.lookup(k).map(|(_, s)| s))?;
        let entry = self
            .entries
            .iter()
            .find(|(a, _)| a.access_key_id == v.access_key_id)
            .map(|(a, _)| a)
            .expect("verify found the key");
        match &entry.cos_appid {
            Some(own) if *own == appid => Ok(CosCaller { account: entry.account_id.clone(), appid }),
            Some(_) => Err(AuthError {
                code: "AccessDenied",
                status: 403,
                message: format!("the SecretId {} does not belong to APPID {appid}", v.access_key_id),
            }),
            None => Err(AuthError {
                code: "AccessDenied",
                status: 403,
                message: format!(
                    "the SecretId {} has no COS APPID: set cos_appid in its [[accounts]] entry to use the COS API",
                    v.access_key_id
                ),
            }),
        }
    }
}

/// Who called the COS dialect: the account the jobs belong to, and the APPID the caller sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosCaller {
    pub account: String,
    pub appid: String,
}

/// An APPID as configured or sent: 1..64 ASCII letters and digits (real ones are 10 digits).
pub fn valid_cos_appid(a: &str) -> bool {
    (1..=64).contains(&a.len()) && a.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// An open server's account for an APPID: an APPID of 1 to 12 digits, left-padded with zeros to the 12-digit
/// account id the job service requires (`1250000000` acts for `001250000000`; the JSON and S3 Control APIs reach
/// the same jobs with `x-amz-account-id: 001250000000`). Other APPIDs have no account on an open server.
pub fn open_cos_account(appid: &str) -> Option<String> {
    ((1..=12).contains(&appid.len()) && appid.bytes().all(|b| b.is_ascii_digit())).then(|| format!("{appid:0>12}"))
}

pub use crate::signature::constant_time_eq;

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
            cos_appid: None,
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
        let unknown = format!("Basic {}", encode_base64(b"AKIDX:s3cret"));
        let wrong_secret = a.authenticate_basic(&headers(&[("authorization", &bad)])).unwrap_err();
        let unknown_key = a.authenticate_basic(&headers(&[("authorization", &unknown)])).unwrap_err();
        assert_eq!(wrong_secret.0, unknown_key.0, "the answer does not tell which keys exist");
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
    fn cos_appids() {
        assert_eq!(open_cos_account("1250000000").as_deref(), Some("001250000000"));
        assert_eq!(open_cos_account("123456789012").as_deref(), Some("123456789012"));
        assert_eq!(open_cos_account("1234567890123"), None);
        assert_eq!(open_cos_account("app1"), None);
        let entry = |id: &str, key: &str, appid: Option<&str>| Account {
            account_id: id.into(),
            access_key_id: key.into(),
            secret_access_key: Some("s".into()),
            cos_appid: appid.map(str::to_string),
            ..Default::default()
        };
        Accounts::new(vec![entry("111111111111", "K1", Some("125")), entry("111111111111", "K2", Some("125"))])
            .expect("two keys of one account share its APPID");
        let e = Accounts::new(vec![entry("111111111111", "K1", Some("125")), entry("222222222222", "K2", Some("125"))])
            .unwrap_err();
        assert!(e.contains("two accounts"), "{e}");
        assert!(Accounts::new(vec![entry("111111111111", "K1", Some("12 5"))]).is_err());
        assert!(Accounts::new(vec![entry("111111111111", "K1", Some(""))]).is_err());
    }

    #[test]
    fn cos_open_server_needs_an_appid() {
        let a = Accounts::default();
        let m = axum::http::Method::GET;
        let u: axum::http::Uri = "/jobs".parse().unwrap();
        assert_eq!(a.authenticate_qsign(&m, &u, &headers(&[])).unwrap_err().code, "InvalidArgument");
        let c = a.authenticate_qsign(&m, &u, &headers(&[("x-cos-appid", "1250000000")])).unwrap();
        assert_eq!(c, CosCaller { account: "001250000000".into(), appid: "1250000000".into() });
        assert_eq!(
            a.authenticate_qsign(&m, &u, &headers(&[("x-cos-appid", "abc")])).unwrap_err().code,
            "InvalidArgument"
        );
    }

    #[test]
    fn secrets_are_not_printed() {
        let s = format!("{:?}", accounts());
        assert!(!s.contains("s3cret"), "{s}");
    }
}
