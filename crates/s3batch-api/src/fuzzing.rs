//! Fuzz harnesses of the request parsers: the S3 Control and COS `CreateJob`/tagging XML bodies, and the SigV4
//! and COS q-sign `Authorization` checks. The targets under `fuzz/` call these, and so does
//! `crates/s3batch/tests/fuzz_replay.rs` on every committed corpus and crash input. Each one panics only where the
//! code under test breaks a rule (a panic of its own, or an answer it must never give).

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use s3batch_core::spec::JobSpec;

use crate::cos;
use crate::cos::COS;
use crate::xml::{self, S3CONTROL};
use crate::{qsign, s3control, sigv4};

/// The clock of the signature harnesses, in Unix seconds (2023-11-14T22:13:20Z). Seeds are signed at it.
pub const NOW: i64 = 1_700_000_000;
/// The one key the signature harnesses know.
pub const ACCESS_KEY: &str = "AKIDFUZZ";
pub const SECRET: &str = "fuzz-secret-key";

/// A first line `SIGN` before the request asks the signature harnesses to sign it themselves, as the clients
/// do, and then to check that the server accepts what was signed.
pub const SIGN_MARK: &str = "SIGN\n";

/// A parsed job is validated (as the service does next) and must survive the store's JSON round trip unchanged.
fn check_spec(spec: &JobSpec) {
    let _ = spec.validate();
    let json = serde_json::to_string(spec).expect("a job serialises");
    let back: JobSpec = serde_json::from_str(&json).expect("a stored job reads back");
    assert_eq!(&back, spec, "a job reads back as it was stored");
}

/// An S3 Control request body: `CreateJobRequest` or `PutJobTaggingRequest`. A bad one is a
/// `BadRequestException`.
pub fn s3control_xml(data: &[u8]) {
    if let Ok(el) = xml::parse(data) {
        let _ = S3CONTROL.to_json(&el);
    }
    match s3control::parse_create_job(data) {
        Ok((_, spec)) => check_spec(&spec),
        Err(e) => {
            let e = s3control::wire_error(e);
            assert_eq!((e.code, e.status.as_u16()), ("BadRequestException", 400), "{}", e.message);
        }
    }
    if let Err(e) = s3control::parse_put_tagging(data) {
        assert_eq!(s3control::wire_error(e).code, "BadRequestException");
    }
}

/// A COS `CreateJobRequest` body. A bad one is a 400 with a COS error code.
pub fn cos_xml(data: &[u8]) {
    if let Ok(el) = xml::parse(data) {
        let _ = COS.to_json(&el);
    }
    match cos::parse_create_job(data) {
        Ok((_, spec)) => {
            check_spec(&spec);
            assert!(cos::echo_of(&spec).is_some(), "a COS job echoes the request it was made from");
        }
        Err(e) => {
            let e = cos::wire_error(e);
            assert_eq!(e.status.as_u16(), 400, "{}: {}", e.code, e.message);
            assert!(matches!(e.code, "MalformedXML" | "InvalidArgument" | "InvalidRequest"), "{}", e.code);
        }
    }
}

/// A request as text: `METHOD URI` on the first line, `Name: value` header lines, an empty line, the body.
/// None where it is not one `http` can hold.
fn request(text: &[u8]) -> Option<(Method, Uri, HeaderMap, &[u8])> {
    let (head, body) = match text.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&text[..i], &text[i + 2..]),
        None => (text, &[][..]),
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.lines();
    let (method, uri) = lines.next()?.split_once(' ')?;
    let method = Method::from_bytes(method.as_bytes()).ok()?;
    let uri: Uri = uri.parse().ok()?;
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let name = HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
        headers.append(name, HeaderValue::from_str(value.trim()).ok()?);
    }
    Some((method, uri, headers, body))
}

fn secret_of(key: &str) -> Option<&'static str> {
    (key == ACCESS_KEY).then_some(SECRET)
}

/// A SigV4-signed S3 Control request (see [`request`]), checked at [`NOW`]. After [`SIGN_MARK`], the harness
/// signs the request first (it needs a `host` and ASCII headers) and the check must pass.
pub fn sigv4(data: &[u8]) {
    let (sign, text) = match data.strip_prefix(SIGN_MARK.as_bytes()) {
        Some(rest) => (true, rest),
        None => (false, data),
    };
    let Some((method, uri, mut headers, body)) = request(text) else { return };
    if sign {
        if !headers.contains_key("host") {
            return;
        }
        let signer = sigv4::Signer { access_key_id: ACCESS_KEY, secret: SECRET, region: "us-east-1" };
        let now = chrono::DateTime::from_timestamp(NOW, 0).expect("a valid time");
        if signer.sign(&method, &uri, &mut headers, body, now).is_err() {
            return; // a header that is not ASCII: nothing a client can sign
        }
    }
    let verdict = sigv4::verify(&method, &uri, &headers, body, NOW, secret_of);
    if sign {
        verdict.expect("a request signed as the clients sign it is accepted");
    }
}

/// A COS q-signed request (see [`request`]), checked at [`NOW`]. After [`SIGN_MARK`], the harness signs every
/// header and query parameter as the COS SDKs do (where header names are not repeated) and the check must pass.
pub fn qsign(data: &[u8]) {
    let (sign, text) = match data.strip_prefix(SIGN_MARK.as_bytes()) {
        Some(rest) => (true, rest),
        None => (false, data),
    };
    let Some((method, uri, mut headers, _)) = request(text) else { return };
    if sign && !sign_qsign(&method, &uri, &mut headers) {
        return;
    }
    let verdict = qsign::verify(&method, &uri, &headers, NOW, secret_of);
    if sign {
        verdict.expect("a request signed as the COS SDKs sign it is accepted");
    }
}

/// Sign like the SDKs: every header and query parameter, the path decoded. False where the request is not one
/// the SDKs send (a repeated header, no `host`, an `Authorization` of its own, a non-UTF-8 header).
fn sign_qsign(method: &Method, uri: &Uri, headers: &mut HeaderMap) -> bool {
    let decode = |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
    let params: Vec<(String, String)> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect();
    let mut pairs = Vec::new();
    for (k, v) in headers.iter() {
        let Ok(v) = v.to_str() else { return false };
        pairs.push((k.as_str().to_string(), v.to_string()));
    }
    let unique = |names: Vec<String>| {
        let n = names.len();
        let mut names = names;
        names.sort();
        names.dedup();
        names.len() == n
    };
    let lower = |v: &[(String, String)]| v.iter().map(|(k, _)| qsign::encode(k).to_ascii_lowercase()).collect();
    // A repeated parameter is signed as cos-go-sdk-v5 signs it (listed once per value); a repeated header is not
    // (the server joins its values with commas, as HTTP does).
    if !headers.contains_key("host") || headers.contains_key("authorization") || !unique(lower(&pairs)) {
        return false;
    }
    if params.iter().any(|(k, _)| k.starts_with("q-")) {
        return false;
    }
    let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let h: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let path = percent_encoding::percent_decode_str(uri.path()).decode_utf8_lossy().into_owned();
    let auth = qsign::authorization(ACCESS_KEY, SECRET, method.as_str(), &path, &p, &h, NOW - 60, NOW + 3600);
    match HeaderValue::from_str(&auth) {
        Ok(v) => {
            headers.insert(axum::http::header::AUTHORIZATION, v);
            true
        }
        Err(_) => false,
    }
}
