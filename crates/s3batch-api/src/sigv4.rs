//! AWS Signature Version 4 verification, as S3 does it (the S3 Control API signs as service `s3`).
//!
//! The canonical request is rebuilt from the request exactly as received: the path as sent (S3 does not encode
//! it twice), the query re-encoded and sorted, the signed headers trimmed, and the payload hash from
//! `x-amz-content-sha256` (checked against the body). The region comes from the credential scope, so `snow` and
//! any other region work. The secret is looked up by access key; the signature is compared in constant time.

use axum::http::{HeaderMap, Method, Uri};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub use crate::signature::AuthError;
use crate::signature::{constant_time_eq, denied};

/// How far a request's `x-amz-date` may be from the server's clock, in seconds (S3 allows 15 minutes).
pub const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// A request signed well: who signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub access_key_id: String,
    pub region: String,
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(h: &str) -> Result<Authorization<'_>, AuthError> {
    let malformed = || denied("AuthorizationHeaderMalformed", "the Authorization header is malformed");
    let rest = h.strip_prefix(ALGORITHM).ok_or_else(|| {
        denied("AccessDenied", format!("only {ALGORITHM} signatures are accepted (AWS Signature Version 4)"))
    })?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or_else(malformed)?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => return Err(malformed()),
        }
    }
    let (credential, signed, signature) =
        (credential.ok_or_else(malformed)?, signed.ok_or_else(malformed)?, signature.ok_or_else(malformed)?);
    let mut scope = credential.split('/');
    let (Some(access_key_id), Some(date), Some(region), Some(service), Some("aws4_request"), None) =
        (scope.next(), scope.next(), scope.next(), scope.next(), scope.next(), scope.next())
    else {
        return Err(malformed());
    };
    if access_key_id.is_empty() || date.len() != 8 || region.is_empty() {
        return Err(malformed());
    }
    let signed_headers: Vec<&str> = signed.split(';').collect();
    if signed_headers.iter().any(|h| h.is_empty() || h.bytes().any(|b| b.is_ascii_uppercase())) {
        return Err(malformed());
    }
    Ok(Authorization { access_key_id, date, region, service, signed_headers, signature })
}

/// Verify the request's signature. `secret_for` gives the secret of an access key, if it is known.
pub fn verify<'s>(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    now_secs: i64,
    secret_for: impl Fn(&str) -> Option<&'s str>,
) -> Result<Verified, AuthError> {
    check(method, uri, headers, now_secs, secret_for, || payload_hash(headers, body).map(Some))
}

/// Verify what can be verified before the body is read, so that a request that is not signed well is refused
/// before its body is taken in. With `x-amz-content-sha256` (the SDKs send it), that is the whole signature over
/// the hash the header claims ([`verify`] checks the body against it once read); without it, everything but the
/// signature itself (the header's form, the scope, the date, the signed headers and the key).
pub fn verify_head<'s>(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    now_secs: i64,
    secret_for: impl Fn(&str) -> Option<&'s str>,
) -> Result<Verified, AuthError> {
    let has_body = headers.contains_key(axum::http::header::TRANSFER_ENCODING)
        || header_str(headers, "content-length").is_some_and(|n| n.trim() != "0");
    check(method, uri, headers, now_secs, secret_for, || {
        Ok(match header_str(headers, "x-amz-content-sha256") {
            Some(UNSIGNED_PAYLOAD) if has_body => return Err(unsigned_with_body()),
            Some(UNSIGNED_PAYLOAD) => Some(UNSIGNED_PAYLOAD.to_string()),
            Some(h) if h.starts_with("STREAMING-") => return Err(streaming()),
            Some(h) => Some(h.to_ascii_lowercase()),
            None => None,
        })
    })
}

/// The body against the hash `x-amz-content-sha256` claims, for a request whose signature [`verify_head`] checked
/// over that hash: together they are [`verify`].
pub fn verify_payload(headers: &HeaderMap, body: &[u8]) -> Result<(), AuthError> {
    payload_hash(headers, body).map(drop)
}

/// The signature check over the payload hash `payload` gives (`None`: not known yet, so the signature itself is
/// not checked).
fn check<'s>(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    now_secs: i64,
    secret_for: impl Fn(&str) -> Option<&'s str>,
    payload: impl FnOnce() -> Result<Option<String>, AuthError>,
) -> Result<Verified, AuthError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| denied("AccessDenied", "the request is not signed; sign it with AWS Signature Version 4"))?
        .to_str()
        .map_err(|_| denied("AuthorizationHeaderMalformed", "the Authorization header is not ASCII"))?;
    let auth = parse_authorization(header)?;
    if auth.service != "s3" {
        return Err(denied(
            "SignatureDoesNotMatch",
            format!("the credential scope names service '{}'; S3 Control requests are signed for 's3'", auth.service),
        ));
    }
    let amz_date = check_date(headers, &auth, now_secs)?;
    check_signed_headers(headers, &auth)?;
    let payload_hash = payload()?;

    let secret = secret_for(auth.access_key_id).ok_or_else(|| {
        denied("InvalidAccessKeyId", "the AWS access key id you provided does not exist in our records")
    })?;
    let verified = Verified { access_key_id: auth.access_key_id.to_string(), region: auth.region.to_string() };
    let Some(payload_hash) = payload_hash else {
        return Ok(verified);
    };
    let canonical = canonical_request(method, uri, headers, &auth.signed_headers, &payload_hash)?;
    let scope = format!("{}/{}/{}/aws4_request", auth.date, auth.region, auth.service);
    let string_to_sign = format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(&canonical)));
    let key = signing_key(secret, auth.date, auth.region, auth.service);
    let expected = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    if !constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        return Err(denied(
            "SignatureDoesNotMatch",
            "the request signature we calculated does not match the signature you provided; check your key and \
             signing method",
        ));
    }
    Ok(verified)
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `20240101T000000Z` as seconds since the epoch.
fn parse_amz_date(s: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ").ok().map(|t| t.and_utc().timestamp())
}

fn canonical_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    signed: &[&str],
    payload_hash: &str,
) -> Result<String, AuthError> {
    let mut out = String::with_capacity(512);
    out.push_str(method.as_str());
    out.push('\n');
    // S3 signs the path as sent: it is URI-encoded once, never twice.
    out.push_str(if uri.path().is_empty() { "/" } else { uri.path() });
    out.push('\n');
    out.push_str(&canonical_query(uri.query().unwrap_or("")));
    out.push('\n');
    for name in signed {
        let values: Vec<String> = headers
            .get_all(*name)
            .iter()
            .map(|v| v.to_str().map(trim_all))
            .collect::<Result<_, _>>()
            .map_err(|_| denied("SignatureDoesNotMatch", format!("the {name} header is not ASCII")))?;
        if values.is_empty() {
            return Err(denied("AccessDenied", format!("the signed header {name} is not in the request")));
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    Ok(out)
}

/// Trim and collapse runs of spaces, as SigV4 does for header values.
fn trim_all(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The query, each name and value decoded and encoded again the SigV4 way, sorted.
fn canonical_query(q: &str) -> String {
    let mut pairs: Vec<(String, String)> = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (uri_encode(&decode(k)), uri_encode(&decode(v)))
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

fn decode(s: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(s).collect()
}

/// Percent-encode everything but `A-Z a-z 0-9 - _ . ~`.
fn uri_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, b"aws4_request")
}

/// Credentials to sign requests with, the way the SDKs do (tests and the CLI use it).
#[derive(Clone)]
pub struct Signer<'a> {
    pub access_key_id: &'a str,
    pub secret: &'a str,
    pub region: &'a str,
}

impl std::fmt::Debug for Signer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("access_key_id", &self.access_key_id).field("region", &self.region).finish()
    }
}

impl Signer<'_> {
    /// Add `x-amz-date`, `x-amz-content-sha256` and `Authorization` to a request with a `host` header. A header
    /// to sign that is not ASCII, or an access key id that is not, cannot be signed: an error.
    pub fn sign(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &mut HeaderMap,
        body: &[u8],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), AuthError> {
        sign(method, uri, headers, body, self, now)
    }
}

fn sign(
    method: &Method,
    uri: &Uri,
    headers: &mut HeaderMap,
    body: &[u8],
    signer: &Signer<'_>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), AuthError> {
    let Signer { access_key_id, secret, region } = *signer;
    let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let date = &amz_date[..8];
    let payload_hash = hex::encode(Sha256::digest(body));
    headers.insert("x-amz-date", amz_date.parse().expect("ASCII"));
    headers.insert("x-amz-content-sha256", payload_hash.parse().expect("ASCII"));
    let mut signed: Vec<String> = headers
        .keys()
        .map(|k| k.as_str().to_string())
        .filter(|k| k == "host" || k.starts_with("x-amz-") || k == "content-type" || k == "x-cos-appid")
        .collect();
    signed.sort();
    signed.dedup();
    let signed_refs: Vec<&str> = signed.iter().map(String::as_str).collect();
    let canonical = canonical_request(method, uri, headers, &signed_refs, &payload_hash)?;
    let scope = format!("{date}/{region}/s3/aws4_request");
    let string_to_sign = format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(&canonical)));
    let signature = hex::encode(hmac(&signing_key(secret, date, region, "s3"), string_to_sign.as_bytes()));
    let value = format!(
        "{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={}, Signature={signature}",
        signed_refs.join(";")
    );
    let value = value.parse().map_err(|_| denied("AccessDenied", "the access key id is not ASCII"))?;
    headers.insert(axum::http::header::AUTHORIZATION, value);
    Ok(())
}

/// `x-amz-date`: well formed, the credential scope's date, and within the clock skew allowed.
fn check_date<'h>(headers: &'h HeaderMap, auth: &Authorization<'_>, now_secs: i64) -> Result<&'h str, AuthError> {
    let amz_date = header_str(headers, "x-amz-date")
        .ok_or_else(|| denied("AccessDenied", "the signed request has no x-amz-date header"))?;
    let when = parse_amz_date(amz_date).ok_or_else(|| {
        denied("AccessDenied", format!("x-amz-date '{amz_date}' is not of the form 20240101T000000Z"))
    })?;
    if !amz_date.starts_with(auth.date) {
        return Err(denied("SignatureDoesNotMatch", "the credential scope's date is not the date of x-amz-date"));
    }
    if (now_secs - when).abs() > MAX_CLOCK_SKEW_SECS {
        return Err(denied(
            "RequestTimeTooSkewed",
            "the difference between the request time and the server's time is too large",
        ));
    }
    Ok(amz_date)
}

/// The signature covers `host`, `x-amz-date`, and every header sent that changes what the request means.
fn check_signed_headers(headers: &HeaderMap, auth: &Authorization<'_>) -> Result<(), AuthError> {
    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.contains(&required) {
            return Err(denied("AccessDenied", format!("the signature must cover the {required} header")));
        }
    }
    for name in ["x-amz-account-id", "x-amz-content-sha256", "x-cos-appid"] {
        if headers.contains_key(name) && !auth.signed_headers.contains(&name) {
            return Err(denied("AccessDenied", format!("the signature must cover the {name} header")));
        }
    }
    Ok(())
}

/// The payload hash the signature covers: `x-amz-content-sha256` (checked against the body) or the body's.
fn payload_hash(headers: &HeaderMap, body: &[u8]) -> Result<String, AuthError> {
    Ok(match header_str(headers, "x-amz-content-sha256") {
        Some(UNSIGNED_PAYLOAD) if body.is_empty() => UNSIGNED_PAYLOAD.to_string(),
        // A signature that does not cover the body lets whoever sees the request send another body under it. The
        // SDKs sign S3 Control bodies (botocore leaves a body unsigned only over HTTPS with a Content-MD5 or
        // checksum header, which no S3 Control job operation sends).
        Some(UNSIGNED_PAYLOAD) => return Err(unsigned_with_body()),
        Some(h) if h.starts_with("STREAMING-") => return Err(streaming()),
        Some(h) => {
            let actual = hex::encode(Sha256::digest(body));
            if !h.eq_ignore_ascii_case(&actual) {
                return Err(AuthError {
                    code: "XAmzContentSHA256Mismatch",
                    status: 400,
                    message: "the x-amz-content-sha256 header does not match the body".into(),
                });
            }
            actual
        }
        None => hex::encode(Sha256::digest(body)),
    })
}

fn unsigned_with_body() -> AuthError {
    denied(
        "AccessDenied",
        "x-amz-content-sha256: UNSIGNED-PAYLOAD is not accepted on a request with a body; sign the payload",
    )
}

fn streaming() -> AuthError {
    AuthError {
        code: "NotImplemented",
        status: 501,
        message: "chunked (streaming) signatures are not accepted here".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The "get-vanilla" case of the AWS SigV4 test suite (service `service`, so checked below the service rule).
    #[test]
    fn aws_test_suite_signing_key_and_signature() {
        let key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1", "iam");
        assert_eq!(hex::encode(&key), "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
        let sts = "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\n\
                   f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59";
        assert_eq!(
            hex::encode(hmac(&key, sts.as_bytes())),
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    fn request(body: &[u8]) -> (Method, Uri, HeaderMap) {
        let uri: Uri = "/v20180820/jobs?jobStatuses=Active&maxResults=5&x=a%20b".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("host", "127.0.0.1:9000".parse().unwrap());
        h.insert("x-amz-account-id", "111111111111".parse().unwrap());
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        Signer { access_key_id: "AKID", secret: "secret", region: "snow" }
            .sign(&Method::GET, &uri, &mut h, body, now)
            .unwrap();
        (Method::GET, uri, h)
    }

    /// A header to sign that is not ASCII is an error of the signer, not a panic (found by the sigv4 fuzz target).
    #[test]
    fn a_header_that_is_not_ascii_cannot_be_signed() {
        let uri: Uri = "/v20180820/jobs".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("host", "h".parse().unwrap());
        h.insert("x-amz-account-id", axum::http::HeaderValue::from_bytes(b"12\xda\x8b").unwrap());
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let signer = Signer { access_key_id: "AKID", secret: "secret", region: "snow" };
        let e = signer.sign(&Method::GET, &uri, &mut h, b"", now).unwrap_err();
        assert_eq!(e.code, "SignatureDoesNotMatch");
        assert!(!h.contains_key("authorization"));
    }

    #[test]
    fn round_trip_and_every_refusal() {
        let secrets = |k: &str| (k == "AKID").then_some("secret");
        let (m, u, h) = request(b"");
        let v = verify(&m, &u, &h, b"", 1_700_000_000, secrets).unwrap();
        assert_eq!(v.region, "snow");

        assert_eq!(
            verify(&m, &u, &h, b"", 1_700_000_000, |_| Some("other")).unwrap_err().code,
            "SignatureDoesNotMatch"
        );
        assert_eq!(verify(&m, &u, &h, b"", 1_700_000_000, |_| None).unwrap_err().code, "InvalidAccessKeyId");
        assert_eq!(verify(&m, &u, &h, b"", 1_700_000_000 + 3600, secrets).unwrap_err().code, "RequestTimeTooSkewed");
        assert_eq!(verify(&m, &u, &h, b"x", 1_700_000_000, secrets).unwrap_err().code, "XAmzContentSHA256Mismatch");

        let mut tampered = h.clone();
        tampered.insert("x-amz-account-id", "222222222222".parse().unwrap());
        assert_eq!(verify(&m, &u, &tampered, b"", 1_700_000_000, secrets).unwrap_err().code, "SignatureDoesNotMatch");
        let other_query: Uri = "/v20180820/jobs?jobStatuses=Complete&maxResults=5&x=a%20b".parse().unwrap();
        assert!(verify(&m, &other_query, &h, b"", 1_700_000_000, secrets).is_err());
        assert!(verify(&Method::POST, &u, &h, b"", 1_700_000_000, secrets).is_err());

        let mut unsigned = h.clone();
        unsigned.remove("authorization");
        assert_eq!(verify(&m, &u, &unsigned, b"", 1_700_000_000, secrets).unwrap_err().status, 403);
        for bad in ["AWS4-HMAC-SHA256 garbage", "Basic abc", "AWS4-HMAC-SHA256 Credential=a/b/c, Signature=x"] {
            let mut hh = h.clone();
            hh.insert("authorization", bad.parse().unwrap());
            assert_eq!(verify(&m, &u, &hh, b"", 1_700_000_000, secrets).unwrap_err().status, 403, "{bad}");
        }
    }

    /// A request signed with `x-amz-content-sha256: UNSIGNED-PAYLOAD` (as a client with payload signing off
    /// sends it).
    fn unsigned_payload_request(method: Method) -> (Method, Uri, HeaderMap) {
        let uri: Uri = "/v20180820/jobs".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("host", "127.0.0.1:9000".parse().unwrap());
        h.insert("x-amz-account-id", "111111111111".parse().unwrap());
        h.insert("x-amz-date", "20231114T221320Z".parse().unwrap());
        h.insert("x-amz-content-sha256", UNSIGNED_PAYLOAD.parse().unwrap());
        let signed = ["host", "x-amz-account-id", "x-amz-content-sha256", "x-amz-date"];
        let canonical = canonical_request(&method, &uri, &h, &signed, UNSIGNED_PAYLOAD).unwrap();
        let scope = "20231114/snow/s3/aws4_request";
        let sts = format!("{ALGORITHM}\n20231114T221320Z\n{scope}\n{}", hex::encode(Sha256::digest(&canonical)));
        let signature = hex::encode(hmac(&signing_key("secret", "20231114", "snow", "s3"), sts.as_bytes()));
        let auth =
            format!("{ALGORITHM} Credential=AKID/{scope}, SignedHeaders={}, Signature={signature}", signed.join(";"));
        h.insert("authorization", auth.parse().unwrap());
        (method, uri, h)
    }

    #[test]
    fn unsigned_payload_only_without_a_body() {
        let secrets = |k: &str| (k == "AKID").then_some("secret");
        let (m, u, h) = unsigned_payload_request(Method::GET);
        assert!(verify(&m, &u, &h, b"", 1_700_000_000, secrets).is_ok(), "no body: nothing is left unsigned");
        let (m, u, h) = unsigned_payload_request(Method::POST);
        let e = verify(&m, &u, &h, b"<CreateJobRequest/>", 1_700_000_000, secrets).unwrap_err();
        assert_eq!((e.code, e.status), ("AccessDenied", 403));
        assert!(e.message.contains("UNSIGNED-PAYLOAD"), "{}", e.message);
    }

    /// Before the body: the signature over the claimed payload hash is checked whole; the body is checked against
    /// that hash later, by `verify`.
    #[test]
    fn the_head_is_checked_before_the_body() {
        let secrets = |k: &str| (k == "AKID").then_some("secret");
        let body = b"<CreateJobRequest/>";
        let (m, u, mut h) = request(body);
        h.insert("content-length", body.len().to_string().parse().unwrap());
        assert!(verify_head(&m, &u, &h, 1_700_000_000, secrets).is_ok(), "a good signature");
        let e = verify(&m, &u, &h, b"<Another/>", 1_700_000_000, secrets).unwrap_err();
        assert_eq!(e.code, "XAmzContentSHA256Mismatch", "another body under the signed hash");
        assert!(verify_payload(&h, body).is_ok(), "the signed body");
        let e = verify_payload(&h, b"<Another/>").unwrap_err();
        assert_eq!((e.code, e.status), ("XAmzContentSHA256Mismatch", 400), "the rest of verify, after the head");

        let mut forged = h.clone();
        let auth = forged["authorization"].to_str().unwrap().replace("Signature=", "Signature=0");
        forged.insert("authorization", auth[..auth.len() - 1].parse().unwrap());
        let e = verify_head(&m, &u, &forged, 1_700_000_000, secrets).unwrap_err();
        assert_eq!(e.code, "SignatureDoesNotMatch");
        let e = verify_head(&m, &u, &h, 1_700_000_000, |_| None).unwrap_err();
        assert_eq!(e.code, "InvalidAccessKeyId");

        // Without x-amz-content-sha256 the signature waits for the body; the rest is checked.
        let mut no_hash = forged.clone();
        no_hash.remove("x-amz-content-sha256");
        assert!(verify_head(&m, &u, &no_hash, 1_700_000_000, secrets).is_ok());
        assert!(verify(&m, &u, &no_hash, body, 1_700_000_000, secrets).is_err(), "then the forged signature is caught");
        assert_eq!(
            verify_head(&m, &u, &no_hash, 1_700_000_000 + 3600, secrets).unwrap_err().code,
            "RequestTimeTooSkewed"
        );

        let (m, u, mut h) = unsigned_payload_request(Method::POST);
        h.insert("content-length", "19".parse().unwrap());
        assert_eq!(verify_head(&m, &u, &h, 1_700_000_000, secrets).unwrap_err().code, "AccessDenied");
    }

    #[test]
    fn query_canonicalisation() {
        assert_eq!(canonical_query("b=2&a=1&a=0&c"), "a=0&a=1&b=2&c=");
        assert_eq!(canonical_query("statusUpdateReason=No%20longer+needed"), "statusUpdateReason=No%20longer%2Bneeded");
        assert_eq!(canonical_query("k=%7e"), "k=~");
    }
}
