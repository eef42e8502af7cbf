//! Tencent COS request signatures (the XML API's "q-sign" HMAC-SHA1 scheme), verified the way COS does it, for
//! the COS dialect (`cos`).
//!
//! ```text
//! KeyTime      = "<start>;<end>"                     (q-key-time; q-sign-time is the same for every SDK)
//! SignKey      = hex(HMAC-SHA1(SecretKey, KeyTime))
//! HttpString   = lower(method) \n decoded-path \n k=v&… (q-url-param-list) \n k=v&… (q-header-list) \n
//! StringToSign = "sha1" \n SignTime \n hex(SHA1(HttpString)) \n
//! Signature    = hex(HMAC-SHA1(SignKey as hex text, StringToSign))
//! ```
//!
//! Names are lower-cased and encoded, values encoded, with an encoder that leaves only `A-Z a-z 0-9 - _ . ~`; pairs
//! are sorted by name. Only the parameters and headers the client listed are signed, so the server rebuilds
//! exactly those (a listed one that is missing fails the check). Query values are decoded with `+` as a space
//! before they are encoded again (`statusUpdateReason=to+test` is signed as `to%20test`). The signed `host` is
//! tried as sent and then without its port: the Python SDK signs the host name alone. The values come from the
//! `Authorization` header or, in the presigned form, from the query string. `now` must lie inside the signed
//! time window, give or take [`MAX_CLOCK_SKEW_SECS`]; signatures are compared in constant time.

use axum::http::{HeaderMap, Method, Uri};
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha1::{Digest, Sha1};

use crate::signature::{AuthError, constant_time_eq, denied};

/// How far outside the signed time window a request may arrive, in seconds.
pub const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;

/// What the COS signature encoder leaves as it is.
const COS_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// A request signed well: who signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub access_key_id: String,
}

/// The longest signature window accepted, in seconds (7 days, as for presigned S3 URLs).
pub const MAX_SIGN_WINDOW_SECS: i64 = 7 * 24 * 3600;

/// The `q-*` values of a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Signed {
    access_key_id: String,
    sign_time: String,
    key_time: String,
    header_list: Vec<String>,
    param_list: Vec<String>,
    signature: String,
}

/// `start;end` in Unix seconds.
fn window(t: &str) -> Option<(i64, i64)> {
    let (a, b) = t.split_once(';')?;
    let (a, b) = (a.trim().parse::<i64>().ok()?, b.trim().parse::<i64>().ok()?);
    (a <= b).then_some((a, b))
}

fn list(v: &str) -> Vec<String> {
    v.split(';').filter(|s| !s.is_empty()).map(|s| s.trim().to_ascii_lowercase()).collect()
}

/// `q-url-param-list`: like [`list`], but an empty entry is a name too. The SDKs sign a parameter with an empty
/// name (`?=x`) as `=x` and list it as an empty name (`;maxresults`); a list that is empty as a whole is no name.
fn param_list(v: &str) -> Vec<String> {
    if v.trim().is_empty() {
        return Vec::new();
    }
    v.split(';').map(|s| s.trim().to_ascii_lowercase()).collect()
}

/// Parse `q-sign-algorithm=sha1&q-ak=…&…` (values already decoded).
fn parse_pairs<'a>(pairs: impl Iterator<Item = (String, String)> + 'a) -> Result<Signed, AuthError> {
    let malformed = |m: &str| denied("AccessDenied", format!("the COS signature is malformed: {m}"));
    let (mut alg, mut ak, mut st, mut kt, mut hl, mut pl, mut sig) = (None, None, None, None, None, None, None);
    for (k, v) in pairs {
        match k.as_str() {
            "q-sign-algorithm" => alg = Some(v),
            "q-ak" => ak = Some(v),
            "q-sign-time" => st = Some(v),
            "q-key-time" => kt = Some(v),
            "q-header-list" => hl = Some(v),
            "q-url-param-list" => pl = Some(v),
            "q-signature" => sig = Some(v),
            _ => {}
        }
    }
    let alg = alg.ok_or_else(|| malformed("q-sign-algorithm is missing"))?;
    if alg != "sha1" {
        return Err(malformed(&format!("q-sign-algorithm is '{alg}'; only sha1 is accepted")));
    }
    let access_key_id = ak.filter(|a| !a.is_empty()).ok_or_else(|| malformed("q-ak is missing"))?;
    let sign_time = st.ok_or_else(|| malformed("q-sign-time is missing"))?;
    let key_time = kt.unwrap_or_else(|| sign_time.clone());
    let signature = sig.filter(|s| !s.is_empty()).ok_or_else(|| malformed("q-signature is missing"))?;
    Ok(Signed {
        access_key_id,
        sign_time,
        key_time,
        header_list: list(hl.as_deref().unwrap_or("")),
        param_list: param_list(pl.as_deref().unwrap_or("")),
        signature: signature.to_ascii_lowercase(),
    })
}

/// Decode a query component: `+` is a space, then percent-decoding (invalid UTF-8 is replaced).
fn decode_query(s: &str) -> String {
    percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
}

fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode_query(k), decode_query(v))
        })
        .collect()
}

/// The COS signature encoding of one name or value.
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, COS_ENCODE).to_string()
}

/// `k=v&k=v`, names lower-cased and encoded, values encoded, sorted by encoded name and then, as the Go SDK
/// sorts the values of a repeated name, by value before encoding.
fn canonical<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut v: Vec<(String, &str)> = pairs.map(|(k, v)| (encode(k).to_ascii_lowercase(), v)).collect();
    v.sort();
    v.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect::<Vec<_>>().join("&")
}

/// `HttpString`: method, decoded path, signed parameters, signed headers.
pub fn http_string(method: &str, path: &str, params: &[(&str, &str)], headers: &[(&str, &str)]) -> String {
    format!(
        "{}\n{}\n{}\n{}\n",
        method.to_ascii_lowercase(),
        path,
        canonical(params.iter().copied()),
        canonical(headers.iter().copied())
    )
}

fn hmac_sha1_hex(key: &[u8], msg: &[u8]) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg);
    hex::encode(mac.finalize().into_bytes())
}

/// `SignKey` = hex(HMAC-SHA1(SecretKey, KeyTime)).
pub fn sign_key(secret_key: &str, key_time: &str) -> String {
    hmac_sha1_hex(secret_key.as_bytes(), key_time.as_bytes())
}

/// The signature of an `HttpString`.
pub fn signature(secret_key: &str, key_time: &str, sign_time: &str, http_string: &str) -> String {
    let string_to_sign = format!("sha1\n{sign_time}\n{}\n", hex::encode(Sha1::digest(http_string.as_bytes())));
    hmac_sha1_hex(sign_key(secret_key, key_time).as_bytes(), string_to_sign.as_bytes())
}

/// A complete `Authorization` value, as the SDKs build it (`KeyTime` = `SignTime` = `start;end`). Parameters and
/// headers are the decoded ones to sign; the path is the decoded path.
#[allow(clippy::too_many_arguments)]
pub fn authorization(
    secret_id: &str,
    secret_key: &str,
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    headers: &[(&str, &str)],
    start: i64,
    end: i64,
) -> String {
    let time = format!("{start};{end}");
    let names = |pairs: &[(&str, &str)]| {
        let mut n: Vec<String> = pairs.iter().map(|(k, _)| encode(k).to_ascii_lowercase()).collect();
        n.sort();
        n.join(";")
    };
    let sig = signature(secret_key, &time, &time, &http_string(method, path, params, headers));
    format!(
        "q-sign-algorithm=sha1&q-ak={secret_id}&q-sign-time={time}&q-key-time={time}&q-header-list={}&q-url-param-list={}&q-signature={sig}",
        names(headers),
        names(params)
    )
}

/// Check a request's COS signature at `now` (Unix seconds); `secret_of` looks up a SecretKey by SecretId.
pub fn verify<'s>(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    now: i64,
    secret_of: impl Fn(&str) -> Option<&'s str>,
) -> Result<Verified, AuthError> {
    let query = query_pairs(uri);
    let signed = find_signature(headers, &query)?;
    if !signed.header_list.iter().any(|h| h == "host") {
        return Err(denied("AccessDenied", "q-header-list must name host: a signature must be bound to the server"));
    }
    // q-sign covers no body: a Content-MD5 is what binds the body to the signature, so one that is sent must be
    // signed (else a body and a fresh digest could replace the signed request's).
    if headers.contains_key("content-md5") && !signed.header_list.iter().any(|h| h == "content-md5") {
        return Err(denied("AccessDenied", "q-header-list must name content-md5 when the request sends Content-MD5"));
    }
    let secret = secret_of(&signed.access_key_id).ok_or_else(|| {
        denied("InvalidAccessKeyId", format!("the SecretId {} is not known to this server", signed.access_key_id))
    })?;
    check_window(&signed, now)?;
    let param_candidates = signed_param_candidates(&signed, &query)?;
    let header_candidates = signed_header_candidates(&signed, headers, uri)?;
    let path = percent_decode_str(uri.path()).decode_utf8_lossy().into_owned();
    let mut first_http_string = None;
    for (params, hs) in param_candidates.iter().flat_map(|p| header_candidates.iter().map(move |h| (p, h))) {
        let refs: Vec<(&str, &str)> = hs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let http = http_string(method.as_str(), &path, params, &refs);
        let expected = signature(secret, &signed.key_time, &signed.sign_time, &http);
        if constant_time_eq(expected.as_bytes(), signed.signature.as_bytes()) {
            return Ok(Verified { access_key_id: signed.access_key_id });
        }
        first_http_string.get_or_insert(http);
    }
    Err(denied(
        "SignatureDoesNotMatch",
        format!(
            "the request signature we calculated does not match the signature you provided; the HttpString \
             signed here was '{}'",
            first_http_string.unwrap_or_default().replace('\n', "\\n")
        ),
    ))
}

/// The signature's values, from `Authorization` or else from the query string.
fn find_signature(headers: &HeaderMap, query: &[(String, String)]) -> Result<Signed, AuthError> {
    let auth_header = headers.get(axum::http::header::AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
    match auth_header {
        Some(h) if !h.trim().is_empty() => {
            let h = h.trim();
            if !h.starts_with("q-sign-algorithm=") {
                return Err(denied(
                    "AccessDenied",
                    "the Authorization header is not a COS signature (q-sign-algorithm=sha1&q-ak=…)",
                ));
            }
            parse_pairs(h.split('&').map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.trim().to_string(), v.trim().to_string())
            }))
        }
        _ if query.iter().any(|(k, _)| k == "q-sign-algorithm") => parse_pairs(query.iter().cloned()),
        _ => Err(denied("AccessDenied", "the request is not signed: send a COS signature in Authorization")),
    }
}

/// `q-sign-time` and `q-key-time` cover `now` (give or take the clock skew allowed), and are no longer than
/// [`MAX_SIGN_WINDOW_SECS`]: a signature good for years would be a bearer token.
fn check_window(signed: &Signed, now: i64) -> Result<(), AuthError> {
    let bad_time = |t: &str| denied("AccessDenied", format!("q-sign-time/q-key-time '{t}' is not <start>;<end>"));
    let (start, end) = window(&signed.sign_time).ok_or_else(|| bad_time(&signed.sign_time))?;
    let (kstart, kend) = window(&signed.key_time).ok_or_else(|| bad_time(&signed.key_time))?;
    // Checked: `i64::MIN;i64::MAX` is a window too long, not an overflow.
    let too_long = |a: i64, b: i64| b.checked_sub(a).is_none_or(|d| d > MAX_SIGN_WINDOW_SECS);
    if too_long(start, end) || too_long(kstart, kend) {
        return Err(denied(
            "AccessDenied",
            format!("the signature's q-sign-time/q-key-time is longer than {MAX_SIGN_WINDOW_SECS} seconds (7 days)"),
        ));
    }
    if now > end.min(kend).saturating_add(MAX_CLOCK_SKEW_SECS) {
        return Err(denied("AccessDenied", "Request has expired: the signature's q-sign-time has passed"));
    }
    if now < start.max(kstart).saturating_sub(MAX_CLOCK_SKEW_SECS) {
        return Err(denied(
            "RequestTimeTooSkewed",
            "the signature's q-sign-time starts in the future: the client's clock is too far from the server's",
        ));
    }
    Ok(())
}

/// The parameters the client signed, from the decoded query, as lists to try: an empty `q-url-param-list` is
/// also tried with the parameters whose name is empty (the SDKs list `?=x` alone as an empty list, yet sign it).
fn signed_param_candidates<'q>(
    signed: &Signed,
    query: &'q [(String, String)],
) -> Result<Vec<Vec<(&'q str, &'q str)>>, AuthError> {
    let mut candidates = vec![signed_params(signed, query)?];
    let unnamed: Vec<(&str, &str)> =
        query.iter().filter(|(k, _)| k.is_empty()).map(|(k, v)| (k.as_str(), v.as_str())).collect();
    if signed.param_list.is_empty() && !unnamed.is_empty() {
        candidates.push(unnamed);
    }
    Ok(candidates)
}

/// The parameters the client signed, from the decoded query. A name listed twice (the Go SDK lists a repeated
/// parameter once per value) takes its values once.
fn signed_params<'q>(signed: &Signed, query: &'q [(String, String)]) -> Result<Vec<(&'q str, &'q str)>, AuthError> {
    let mut params: Vec<(&str, &str)> = Vec::new();
    let mut names: Vec<&String> = signed.param_list.iter().collect();
    names.sort();
    names.dedup();
    for name in names {
        let before = params.len();
        params.extend(
            query
                .iter()
                .filter(|(k, _)| encode(k).to_ascii_lowercase() == *name)
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        if params.len() == before {
            return Err(denied(
                "SignatureDoesNotMatch",
                format!("q-url-param-list names '{name}', which the request does not have"),
            ));
        }
    }
    Ok(params)
}

/// The headers the client signed, as (name, value) lists to try: a signed `host` with a port is also tried
/// without it (the Python SDK signs the host without its port).
fn signed_header_candidates(
    signed: &Signed,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Vec<Vec<(String, String)>>, AuthError> {
    let mut signed_headers: Vec<(String, String)> = Vec::new();
    let mut host_at = None;
    for name in &signed.header_list {
        // q-header-list holds names encoded; the HttpString encodes the name as sent (`x!y`, listed `x%21y`).
        let mut sent_name = name.clone();
        let mut values = Vec::new();
        for (k, v) in headers.iter().filter(|(k, _)| encode(k.as_str()).to_ascii_lowercase() == *name) {
            sent_name = k.as_str().to_string();
            values.push(String::from_utf8_lossy(v.as_bytes()).into_owned());
        }
        if values.is_empty()
            && name == "host"
            && let Some(a) = uri.authority()
        {
            values.push(a.to_string());
        }
        if values.is_empty() {
            return Err(denied(
                "SignatureDoesNotMatch",
                format!("q-header-list names '{name}', which the request does not have"),
            ));
        }
        if name == "host" {
            host_at = Some(signed_headers.len());
        }
        signed_headers.push((sent_name, values.join(",")));
    }
    let mut candidates = vec![signed_headers.clone()];
    if let Some(i) = host_at
        && let Some((host, port)) = signed_headers[i].1.rsplit_once(':')
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
    {
        let host = host.to_string();
        let mut without_port = signed_headers;
        without_port[i].1 = host;
        candidates.push(without_port);
    }
    Ok(candidates)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q";
    const KEY: &str = "BQYIM75p8x0iWVFSIgqEKwFprpRSVHlz";
    const HOST: &str = "100000000001.cos-control.ap-chengdu.myqcloud.com";

    fn secret(k: &str) -> Option<&'static str> {
        (k == ID).then_some(KEY)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    /// The official PUT object example of the COS "Request Signature" page, byte for byte.
    #[test]
    fn official_put_object_vector() {
        let time = "1557989151;1557996351";
        assert_eq!(sign_key(KEY, time), "eb2519b498b02ac213cb1f3d1a3d27a3b3c9bc5f");
        let hs = [
            ("Content-Length", "13"),
            ("Content-MD5", "mQ/fVh815F3k6TAUm8m0eg=="),
            ("Content-Type", "text/plain"),
            ("Date", "Thu, 16 May 2019 06:45:51 GMT"),
            ("Host", "examplebucket-1250000000.cos.ap-beijing.myqcloud.com"),
            ("x-cos-acl", "private"),
            ("x-cos-grant-read", "uin=\"100000000011\""),
        ];
        let http = http_string("PUT", "/exampleobject(腾讯云)", &[], &hs);
        assert_eq!(
            http,
            "put\n/exampleobject(腾讯云)\n\ncontent-length=13&content-md5=mQ%2FfVh815F3k6TAUm8m0eg%3D%3D&content-type=text%2Fplain&date=Thu%2C%2016%20May%202019%2006%3A45%3A51%20GMT&host=examplebucket-1250000000.cos.ap-beijing.myqcloud.com&x-cos-acl=private&x-cos-grant-read=uin%3D%22100000000011%22\n"
        );
        assert_eq!(hex::encode(Sha1::digest(http.as_bytes())), "8b2751e77f43a0995d6e9eb9477f4b685cca4172");
        assert_eq!(signature(KEY, time, time, &http), "3b8851a11a569213c17ba8fa7dcf2abec6935172");
    }

    /// The batch vectors of the wire reference (§6.3), cross-checked there against cos-go-sdk-v5.
    #[test]
    fn batch_vectors() {
        let time = "1576812701;1576819901";
        assert_eq!(sign_key(KEY, time), "27625c7763cff067ba1c39113de7061becf2cfcf");
        let hs = [("host", HOST), ("x-cos-appid", "1250000000")];
        let http = http_string("GET", "/jobs", &[("maxResults", "2")], &hs);
        assert_eq!(http, format!("get\n/jobs\nmaxresults=2\nhost={HOST}&x-cos-appid=1250000000\n"));
        assert_eq!(hex::encode(Sha1::digest(http.as_bytes())), "334920f78d2c0ab95a3e65472e9167f09a8a0406");
        assert_eq!(signature(KEY, time, time, &http), "ce2a459bad076351f7d4d23c15af3558171ef563");

        let with_date = [("date", "Fri, 20 Dec 2019 03:31:41 GMT"), ("host", HOST), ("x-cos-appid", "1250000000")];
        let http = http_string("GET", "/jobs", &[("maxResults", "2")], &with_date);
        assert_eq!(signature(KEY, time, time, &http), "1d56ceb33f975870eb132e099ca89a95ca31b7c6");

        let hs = [("content-length", "0"), ("host", HOST), ("x-cos-appid", "1250000000")];
        let params = [("requestedJobStatus", "Ready"), ("statusUpdateReason", "to test")];
        let path = "/jobs/53dc6228-c50b-46f7-8ad7-65e7159f1aae/status";
        let http = http_string("POST", path, &params, &hs);
        assert!(http.contains("\nrequestedjobstatus=Ready&statusupdatereason=to%20test\n"), "{http}");
        assert_eq!(signature(KEY, time, time, &http), "3f9a12022b6b2ff058296a21bae0aa39b1dd560b");
    }

    fn status_request(auth: &str, host: &str) -> (Method, Uri, HeaderMap) {
        let uri: Uri =
            "/jobs/53dc6228-c50b-46f7-8ad7-65e7159f1aae/status?requestedJobStatus=Ready&statusUpdateReason=to+test"
                .parse()
                .unwrap();
        let h = headers(&[
            ("authorization", auth),
            ("content-length", "0"),
            ("host", host),
            ("X-Cos-Appid", "1250000000"),
            ("user-agent", "cos-go-sdk-v5/0.7.75"),
        ]);
        (Method::POST, uri, h)
    }

    const GO_STATUS_AUTH: &str = "q-sign-algorithm=sha1&q-ak=AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q&q-sign-time=1576812701;1576819901&q-key-time=1576812701;1576819901&q-header-list=content-length;host;x-cos-appid&q-url-param-list=requestedjobstatus;statusupdatereason&q-signature=3f9a12022b6b2ff058296a21bae0aa39b1dd560b";

    /// A signed header whose name the encoder escapes (`c!x`, listed as `c%21x`) is encoded once in the HttpString,
    /// as the SDKs do (found by the qsign fuzz target: the server encoded it twice).
    #[test]
    fn a_header_name_that_needs_encoding_is_encoded_once() {
        let now = 1_700_000_000;
        let headers = [("host", "h.example"), ("c!x", "1")];
        let auth = authorization(ID, KEY, "get", "/jobs", &[], &headers, now - 60, now + 60);
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h.insert("authorization", auth.parse().unwrap());
        let v = verify(&Method::GET, &"/jobs".parse().unwrap(), &h, now, secret).unwrap();
        assert_eq!(v.access_key_id, ID);
    }

    /// Windows at the ends of i64 are refused, not an arithmetic overflow (a panic in a debug build).
    #[test]
    fn extreme_sign_times_are_refused() {
        let now = 1_700_000_000;
        for time in [
            "-9223372036854775808;9223372036854775807",
            "-9223372036854775808;-9223372036854775808",
            "9223372036854775807;9223372036854775807",
        ] {
            let auth = format!(
                "q-sign-algorithm=sha1&q-ak={ID}&q-sign-time={time}&q-key-time={time}&q-header-list=host\
                 &q-url-param-list=&q-signature=0000"
            );
            let mut h = HeaderMap::new();
            h.insert("host", "h".parse().unwrap());
            h.insert("authorization", auth.parse().unwrap());
            let e = verify(&Method::GET, &"/jobs".parse().unwrap(), &h, now, secret).unwrap_err();
            assert!(matches!(e.code, "AccessDenied" | "RequestTimeTooSkewed"), "{time}: {}", e.message);
        }
    }

    #[test]
    fn verifies_a_go_sdk_request() {
        let (m, u, h) = status_request(GO_STATUS_AUTH, HOST);
        let v = verify(&m, &u, &h, 1576812701 + 5, secret).unwrap();
        assert_eq!(v.access_key_id, ID);
    }

    #[test]
    fn refusals() {
        let now = 1576812701 + 5;
        let (m, u, h) = status_request(GO_STATUS_AUTH, "other.example.com");
        assert_eq!(verify(&m, &u, &h, now, secret).unwrap_err().code, "SignatureDoesNotMatch");

        let tampered = GO_STATUS_AUTH.replace("3f9a1202", "3f9a1203");
        let (m, u, h) = status_request(&tampered, HOST);
        assert_eq!(verify(&m, &u, &h, now, secret).unwrap_err().code, "SignatureDoesNotMatch");

        let (m, u, h) = status_request(GO_STATUS_AUTH, HOST);
        assert_eq!(verify(&m, &u, &h, now, |_| None).unwrap_err().code, "InvalidAccessKeyId");
        let late = verify(&m, &u, &h, 1576819901 + MAX_CLOCK_SKEW_SECS + 1, secret).unwrap_err();
        assert_eq!((late.code, late.status), ("AccessDenied", 403));
        assert!(late.message.contains("expired"), "{}", late.message);
        let early = verify(&m, &u, &h, 1576812701 - MAX_CLOCK_SKEW_SECS - 1, secret).unwrap_err();
        assert_eq!(early.code, "RequestTimeTooSkewed");
        assert!(verify(&m, &u, &h, 1576812701 - 60, secret).is_ok(), "a little skew is allowed");

        // A window of years is a bearer token; a signature not bound to the host could be replayed elsewhere.
        let forever = GO_STATUS_AUTH.replace("1576812701;1576819901", "0;4102444800");
        let (m, u, h) = status_request(&forever, HOST);
        assert!(verify(&m, &u, &h, now, secret).unwrap_err().message.contains("7 days"));
        let hostless = GO_STATUS_AUTH.replace("content-length;host;x-cos-appid", "content-length;x-cos-appid");
        let (m, u, h) = status_request(&hostless, HOST);
        assert!(verify(&m, &u, &h, now, secret).unwrap_err().message.contains("host"));

        // A listed header or parameter that is not there.
        let (m, _, h) = status_request(GO_STATUS_AUTH, HOST);
        let u: Uri = "/jobs/53dc6228-c50b-46f7-8ad7-65e7159f1aae/status?requestedJobStatus=Ready".parse().unwrap();
        assert!(verify(&m, &u, &h, now, secret).unwrap_err().message.contains("statusupdatereason"));
        let mut h2 = h.clone();
        h2.remove("x-cos-appid");
        let (_, u, _) = status_request(GO_STATUS_AUTH, HOST);
        assert!(verify(&m, &u, &h2, now, secret).unwrap_err().message.contains("x-cos-appid"));

        for bad in [
            "AWS4-HMAC-SHA256 Credential=x",
            "q-sign-algorithm=md5&q-ak=a&q-sign-time=1;2&q-signature=x",
            "q-sign-algorithm=sha1&q-sign-time=1;2&q-signature=x",
            "q-sign-algorithm=sha1&q-ak=AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q&q-sign-time=9;2&q-signature=x",
        ] {
            let (m, u, h) = status_request(bad, HOST);
            assert_eq!(verify(&m, &u, &h, now, secret).unwrap_err().status, 403, "{bad}");
        }
        let (m, u, mut h) = status_request("", HOST);
        h.remove("authorization");
        assert!(verify(&m, &u, &h, now, secret).unwrap_err().message.contains("not signed"));
    }

    #[test]
    fn python_sdk_signs_the_host_without_its_port() {
        let now = 1_700_000_000;
        let hs = [("content-length", "0"), ("host", "127.0.0.1"), ("x-cos-appid", "1250000000")];
        let auth =
            authorization(ID, KEY, "POST", "/jobs/abcde/priority", &[("priority", "7")], &hs, now - 60, now + 3600);
        let uri: Uri = "/jobs/abcde/priority?priority=7".parse().unwrap();
        let h = headers(&[
            ("authorization", &auth),
            ("content-length", "0"),
            ("host", "127.0.0.1:39123"),
            ("x-cos-appid", "1250000000"),
        ]);
        assert!(verify(&Method::POST, &uri, &h, now, secret).is_ok());
        // …and Go / Node sign it with the port.
        let hs = [("content-length", "0"), ("host", "127.0.0.1:39123"), ("x-cos-appid", "1250000000")];
        let auth = authorization(ID, KEY, "POST", "/jobs/abcde/priority", &[("priority", "7")], &hs, now, now + 60);
        let mut h = h.clone();
        h.insert("authorization", auth.parse().unwrap());
        assert!(verify(&Method::POST, &uri, &h, now, secret).is_ok());
    }

    /// A Content-MD5 that is sent must be signed: else a new body and its digest could replace the signed ones.
    #[test]
    fn a_sent_content_md5_must_be_signed() {
        let now = 1_700_000_000;
        let uri: Uri = "/jobs".parse().unwrap();
        let md5 = "mQ/fVh815F3k6TAUm8m0eg==";
        let request = |signed: &[(&str, &str)]| {
            let auth = authorization(ID, KEY, "POST", "/jobs", &[], signed, now, now + 60);
            headers(&[("authorization", &auth), ("content-md5", md5), ("host", "127.0.0.1:8080")])
        };
        let unsigned = request(&[("host", "127.0.0.1:8080")]);
        let e = verify(&Method::POST, &uri, &unsigned, now, secret).unwrap_err();
        assert_eq!((e.code, e.status), ("AccessDenied", 403));
        assert!(e.message.contains("content-md5"), "{}", e.message);
        let signed = request(&[("content-md5", md5), ("host", "127.0.0.1:8080")]);
        assert!(verify(&Method::POST, &uri, &signed, now, secret).is_ok());
        // Without a Content-MD5 (the Node and Python SDKs send none) nothing changes.
        let auth = authorization(ID, KEY, "POST", "/jobs", &[], &[("host", "127.0.0.1:8080")], now, now + 60);
        let none = headers(&[("authorization", &auth), ("host", "127.0.0.1:8080")]);
        assert!(verify(&Method::POST, &uri, &none, now, secret).is_ok());
    }

    /// Vectors of the COS Python SDK (qcloud_cos 5, `CosS3Auth` at 1700000060, host 127.0.0.1): a parameter with
    /// an empty name is signed as `=x` and listed as an empty name, also when it is the only one (`q-url-param-list=`).
    #[test]
    fn python_sdk_signs_a_parameter_with_an_empty_name() {
        let now = 1_700_000_060;
        let common = "q-sign-algorithm=sha1&q-ak=AKIDFUZZ&q-sign-time=1700000000;1700003660&q-key-time=1700000000;\
                      1700003660&q-header-list=host;x-cos-appid&q-url-param-list=";
        for (uri, rest) in [
            ("/jobs?=x&maxResults=5", ";maxresults&q-signature=7aafcd1cbe2d48b446a400111640ad45794f57a6"),
            ("/jobs?=x", "&q-signature=153bd99a579fffdd6da95758e545c694a7313a70"),
        ] {
            let auth = format!("{common}{rest}");
            let h = headers(&[("authorization", &auth), ("host", "127.0.0.1:8080"), ("x-cos-appid", "1250000000")]);
            let verdict = verify(&Method::GET, &uri.parse().unwrap(), &h, now, |k| {
                (k == "AKIDFUZZ").then_some("fuzz-secret-key")
            });
            assert!(verdict.is_ok(), "{uri}: {:?}", verdict.err().map(|e| e.message));
        }
    }

    /// cos-go-sdk-v5 lists a repeated parameter once per value (`jobstatuses;jobstatuses`) and signs its values
    /// sorted as they are, before encoding (`~` before `é`, whose encoding `%C3%A9` sorts first).
    #[test]
    fn go_sdk_signs_a_repeated_parameter_once_per_value() {
        let now = 1_700_000_000;
        let hs = [("host", "127.0.0.1:8080")];
        let time = format!("{};{}", now, now + 60);
        let http = "get\n/jobs\njobstatuses=Active&jobstatuses=~&jobstatuses=%C3%A9\nhost=127.0.0.1%3A8080\n";
        let sig = signature(KEY, &time, &time, http);
        let auth = format!(
            "q-sign-algorithm=sha1&q-ak={ID}&q-sign-time={time}&q-key-time={time}&q-header-list=host&\
             q-url-param-list=jobstatuses;jobstatuses;jobstatuses&q-signature={sig}"
        );
        let uri: Uri = "/jobs?jobStatuses=%C3%A9&jobStatuses=Active&jobStatuses=~".parse().unwrap();
        let h = headers(&[("authorization", &auth), ("host", hs[0].1)]);
        let verdict = verify(&Method::GET, &uri, &h, now, secret);
        assert!(verdict.is_ok(), "{:?}", verdict.err().map(|e| e.message));
    }

    #[test]
    fn presigned_query_form() {
        let now = 1_700_000_000;
        let hs = [("host", "127.0.0.1:8080")];
        let auth = authorization(ID, KEY, "GET", "/jobs", &[("maxResults", "5")], &hs, now, now + 60);
        let query: String = auth
            .split('&')
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                format!("{k}={}", encode(v))
            })
            .collect::<Vec<_>>()
            .join("&");
        let uri: Uri = format!("/jobs?maxResults=5&{query}").parse().unwrap();
        let h = headers(&[("host", "127.0.0.1:8080")]);
        assert_eq!(verify(&Method::GET, &uri, &h, now, secret).unwrap().access_key_id, ID);
    }
}
