//! The cross-site guard, in front of every route.
//!
//! A browser lets any web page send a "simple" request (a form POST, or a `fetch` with a `text/plain` body) to
//! any address, without a preflight. An open server (no `[[accounts]]`) acts for whoever calls it, so a page the
//! user visits could create a job on `http://127.0.0.1:8080` that deletes their data through a generated manifest.
//! Two checks stop that:
//!
//! - a state-changing request (any method but GET, HEAD and OPTIONS) whose `Origin` is not this server's own
//!   (its host and port are not the request's `Host`), or that the browser marks `Sec-Fetch-Site: cross-site` or
//!   `same-site`, is refused on every route, open server or not. Programs (the SDKs, the `aws` CLI, curl) send
//!   neither header, so they are not affected;
//! - on an open server, a request whose `Host` is not a loopback name or address (`localhost`, `*.localhost`,
//!   `127.0.0.0/8`, `[::1]`, optionally after an account-id label as the SDKs' host-style S3 Control addressing
//!   adds) is refused, unless `server.allowed_hosts` lists it: that stops a DNS-rebinding page from reading and
//!   writing through the user's browser under its own name.
//!
//! Refusals are `403` with the JSON API's error body, code `AccessDenied`.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What the guard lets through.
#[derive(Debug, Clone, Default)]
pub struct SiteGuard {
    /// No accounts are configured: the `Host` check applies.
    pub open: bool,
    /// Host names (without port) an open server also answers to, lower case.
    pub allowed_hosts: Vec<String>,
}

impl SiteGuard {
    pub fn new(open: bool, allowed_hosts: &[String]) -> SiteGuard {
        SiteGuard { open, allowed_hosts: allowed_hosts.iter().map(|h| h.trim().to_ascii_lowercase()).collect() }
    }

    /// Why `headers` (of a `method` request) are refused, if they are.
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), String> {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase);
        if self.open {
            let Some(host) = host.as_deref() else {
                return Err("a request to an open server must carry a Host header".into());
            };
            let name = host_name(host);
            if !is_loopback_name(name) && !self.allowed_hosts.iter().any(|h| h == name) {
                return Err(format!(
                    "this server has no accounts configured and answers only to loopback names, not '{name}' \
                     (list it in server.allowed_hosts to allow it)"
                ));
            }
        }
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return Ok(());
        }
        if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
            && matches!(site, "cross-site" | "same-site")
        {
            return Err(format!("a {site} request from a browser cannot change anything here"));
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("").to_ascii_lowercase();
            let authority = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
            let same = match (authority, host.as_deref()) {
                (Some(a), Some(h)) => a.trim_end_matches('/') == h,
                _ => false,
            };
            if !same {
                return Err(format!("a request from the origin '{origin}' cannot change anything here"));
            }
        }
        Ok(())
    }
}

/// The axum middleware.
pub async fn guard(State(g): State<std::sync::Arc<SiteGuard>>, req: Request, next: Next) -> Response {
    match g.check(req.method(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(message) => {
            tracing::warn!(method = %req.method(), path = req.uri().path(), %message, "cross-site request refused");
            let body = crate::json::ErrorBody { code: "AccessDenied".into(), message };
            (StatusCode::FORBIDDEN, axum::Json(body)).into_response()
        }
    }
}

/// `host[:port]` → `host` (`[::1]:8080` → `[::1]`).
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// `localhost`, `*.localhost`, a loopback address, or one of those after a 12-digit account label.
fn is_loopback_name(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    let bare = match name.split_once('.') {
        Some((label, rest)) if label.len() == 12 && label.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => name,
    };
    if bare == "localhost" || bare.ends_with(".localhost") {
        return true;
    }
    let ip = bare.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn an_open_server_answers_loopback_names_only() {
        let g = SiteGuard::new(true, &["batch.internal".into()]);
        for ok in
            ["127.0.0.1:8080", "localhost", "api.localhost:1", "[::1]:8080", "111111111111.127.0.0.1:9", "127.1.2.3"]
        {
            assert_eq!(g.check(&Method::GET, &headers(&[("host", ok)])), Ok(()), "{ok}");
        }
        assert_eq!(g.check(&Method::GET, &headers(&[("host", "Batch.Internal:8080")])), Ok(()));
        for bad in ["evil.example:8080", "127.0.0.1.evil.example", "10.0.0.1", "localhost.evil.example"] {
            assert!(g.check(&Method::GET, &headers(&[("host", bad)])).is_err(), "{bad}");
        }
        assert!(g.check(&Method::GET, &HeaderMap::new()).is_err());
        // With accounts, any Host.
        assert_eq!(SiteGuard::new(false, &[]).check(&Method::GET, &headers(&[("host", "evil.example")])), Ok(()));
    }

    #[test]
    fn changes_from_another_origin_are_refused() {
        let g = SiteGuard::new(false, &[]);
        let host = ("host", "127.0.0.1:8080");
        assert_eq!(g.check(&Method::POST, &headers(&[host])), Ok(()));
        assert_eq!(g.check(&Method::POST, &headers(&[host, ("origin", "http://127.0.0.1:8080")])), Ok(()));
        assert_eq!(g.check(&Method::POST, &headers(&[host, ("sec-fetch-site", "same-origin")])), Ok(()));
        assert!(g.check(&Method::POST, &headers(&[host, ("origin", "http://evil.example")])).is_err());
        assert!(g.check(&Method::POST, &headers(&[host, ("origin", "http://127.0.0.1:3000")])).is_err());
        assert!(g.check(&Method::DELETE, &headers(&[host, ("origin", "null")])).is_err());
        assert!(g.check(&Method::PUT, &headers(&[host, ("sec-fetch-site", "cross-site")])).is_err());
        // A link from another site may open a page.
        assert_eq!(g.check(&Method::GET, &headers(&[host, ("sec-fetch-site", "cross-site")])), Ok(()));
    }
}
