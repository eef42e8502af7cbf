//! The one request pipeline every API front end runs: **extract** the request ([`Call`]), **authenticate** the
//! caller the dialect's way, apply the per-account **rate limit**, **call** the job service, **render** the answer
//! or the error in the dialect's envelope, and stamp the request id on it.
//!
//! What differs between the S3 Control, COS and JSON front ends is a [`Dialect`]: how a caller proves who it is,
//! how the query string is decoded, how each [`ApiError`] is named (one match per dialect), the error envelope and
//! the request-id headers. A new front end is one `Dialect` impl and its routes. A new kind of error is one variant
//! of [`ServiceError`] (the engine's) or [`ApiError`] (the wire's) plus one arm in each dialect's `wire_error`:
//! the compiler asks for the `ApiError` arms; `ServiceError` is `#[non_exhaustive]`, so a kind a dialect has not
//! named yet answers as that dialect's internal error until it does.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use s3batch_engine::service::ServiceError;

use crate::AppState;
use crate::signature::AuthError;

/// Why a call failed: the job service's errors, and what only the wire knows.
#[derive(Debug)]
#[non_exhaustive]
pub enum ApiError {
    /// The job service refused or failed the call.
    Service(ServiceError),
    /// The body is not a document of the expected shape (bad XML, bad JSON, a wrong root element, …).
    Malformed(String),
    /// A query parameter or header is missing or not valid.
    BadParameter(String),
    /// The body could not be read (too large, or the connection failed).
    Body { too_large: bool, message: String },
    /// The signature check refused the request (its code is the dialect's: SignatureDoesNotMatch, …).
    Auth(AuthError),
    /// HTTP Basic credentials missing or wrong (the JSON API).
    Unauthenticated(String),
    /// The account made more requests than its rate allows.
    RateLimited,
    /// The path exists, the method does not.
    MethodNotAllowed { method: Method, path: String },
    /// An operation of the API that s3batch does not implement.
    NotImplemented(String),
    /// A rule of one dialect only, already named in that dialect.
    Dialect(WireError),
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        ApiError::Service(e)
    }
}

impl From<s3batch_core::ValidationError> for ApiError {
    fn from(e: s3batch_core::ValidationError) -> Self {
        ApiError::Service(e.into())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::Auth(e)
    }
}

impl From<crate::xml::XmlError> for ApiError {
    fn from(e: crate::xml::XmlError) -> Self {
        ApiError::Malformed(e.0)
    }
}

impl From<WireError> for ApiError {
    fn from(e: WireError) -> Self {
        ApiError::Dialect(e)
    }
}

/// An error as one dialect puts it on the wire: its code, the HTTP status and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    pub code: &'static str,
    pub status: StatusCode,
    pub message: String,
}

impl WireError {
    pub fn new(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        WireError { code, status, message: message.into() }
    }
}

/// Who a request comes from, as a dialect authenticated it.
pub trait Caller: Send {
    /// The account its jobs belong to (the rate limit's key).
    fn account(&self) -> &str;
}

impl Caller for String {
    fn account(&self) -> &str {
        self
    }
}

/// The request id a dialect puts on every answer.
pub trait RequestId: Send + Sync {
    fn new() -> Self;
    /// The id as logs print it.
    fn log_id(&self) -> &str;
    /// Put the id on an answer.
    fn stamp(&self, resp: &mut Response);
}

/// What one front end does its own way; everything else is the pipeline's.
pub trait Dialect: Sized + Send + Sync + 'static {
    /// For logs: `S3 Control`, `COS`, `JSON API`.
    const NAME: &'static str;
    /// For metrics' `dialect` label: `s3control`, `cos`, `json`.
    const ID: &'static str;
    type Caller: Caller;
    type RequestId: RequestId;

    /// Check who is calling (the body is there for signatures that cover it), when
    /// [`authenticate_head`](Self::authenticate_head) could not tell alone.
    fn authenticate(call: &Call<Self>) -> Result<Self::Caller, ApiError>;
    /// What of [`authenticate`](Self::authenticate) can be checked before the body is read: a request refused
    /// here is answered without taking its body in (so unauthenticated callers cannot make the server buffer
    /// bodies). `Some(caller)` when the headers alone tell who calls: then only
    /// [`confirm_body`](Self::confirm_body) runs once the body is read, and the signature is not checked twice.
    fn authenticate_head(
        state: &AppState,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Option<Self::Caller>, ApiError> {
        let _ = (state, method, uri, headers);
        Ok(None)
    }
    /// What remains to check of a caller [`authenticate_head`](Self::authenticate_head) found, once the body is
    /// there (a body hash the signature covers).
    fn confirm_body(call: &Call<Self>, caller: Self::Caller) -> Result<Self::Caller, ApiError> {
        let _ = call;
        Ok(caller)
    }
    /// The query string's pairs, decoded as the dialect's clients encode them.
    fn decode_query(raw: &str) -> Result<Vec<(String, String)>, ApiError>;
    /// The dialect's name and HTTP status for an error: the one place a dialect names errors.
    fn wire_error(e: ApiError) -> WireError;
    /// The error envelope.
    fn error_response(e: &WireError, call: &Call<Self>) -> Response;
    /// The operation a request is, for metrics (`CreateJob`, `ListJobs`, …).
    fn operation(method: &Method, path: &str) -> &'static str {
        operation(method, path)
    }
}

/// Put on an answer that shows an error itself (a form shown again with the error beside it) instead of as an
/// `Err`: [`Call::finish`] counts the call under this error code rather than `OK`.
#[derive(Debug, Clone, Copy)]
pub struct Shown(pub &'static str);

/// `resp`, counted as the error `code` (see [`Shown`]).
pub fn shown(mut resp: Response, code: &'static str) -> Response {
    resp.extensions_mut().insert(Shown(code));
    resp
}

/// A request as every handler sees it: the state, the request line, the headers and the buffered body.
pub struct Call<D: Dialect> {
    pub state: AppState,
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    /// Why the request was refused before its body was read (the body is then left unread).
    refused: Option<WireError>,
    /// The caller the headers alone identified, taken by the first [`Call::caller`].
    head_caller: std::sync::Mutex<Option<D::Caller>>,
    pub rid: D::RequestId,
    started: std::time::Instant,
}

impl<D: Dialect> FromRequest<AppState> for Call<D> {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let started = std::time::Instant::now();
        let (parts, body) = req.into_parts();
        let (method, uri, headers) = (parts.method.clone(), parts.uri.clone(), parts.headers.clone());
        let (head_caller, refused) = match D::authenticate_head(state, &method, &uri, &headers) {
            Ok(caller) => (caller, None),
            Err(e) => (None, Some(D::wire_error(e))),
        };
        let body = match refused {
            Some(_) => Ok(Bytes::new()),
            None => Bytes::from_request(Request::from_parts(parts, body), state).await,
        };
        let head_caller = std::sync::Mutex::new(head_caller);
        let rid = D::RequestId::new();
        Ok(Call { state: state.clone(), method, uri, headers, body, refused, head_caller, rid, started })
    }
}

impl<D: Dialect> Call<D> {
    /// Who is calling, within the account's request rate.
    pub fn caller(&self) -> Result<D::Caller, ApiError> {
        self.not_refused()?;
        let head = self.head_caller.lock().unwrap_or_else(|e| e.into_inner()).take();
        let caller = match head {
            Some(c) => D::confirm_body(self, c)?,
            None => D::authenticate(self)?,
        };
        within_rate(&self.state, caller)
    }

    fn not_refused(&self) -> Result<(), ApiError> {
        match &self.refused {
            Some(e) => Err(ApiError::Dialect(e.clone())),
            None => Ok(()),
        }
    }

    /// The request body.
    pub fn body(&self) -> Result<&[u8], ApiError> {
        self.not_refused()?;
        match &self.body {
            Ok(b) => Ok(b),
            Err(e) => Err(ApiError::Body {
                too_large: e.status() == StatusCode::PAYLOAD_TOO_LARGE,
                message: format!("the request body could not be read: {}", e.body_text()),
            }),
        }
    }

    /// The body as JSON of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        let body = self.body()?;
        let de = &mut serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let at = e.path().to_string();
            let at = if at == "." { String::new() } else { format!(" at {at}") };
            ApiError::Malformed(format!("the request body is not valid{at}: {}", e.into_inner()))
        })
    }

    /// The query string's pairs, in order.
    pub fn query(&self) -> Result<Vec<(String, String)>, ApiError> {
        D::decode_query(self.uri.query().unwrap_or(""))
    }

    /// The last value of a query parameter.
    pub fn param(&self, name: &str) -> Result<Option<String>, ApiError> {
        Ok(self.query()?.into_iter().rev().find(|(k, _)| k == name).map(|(_, v)| v))
    }

    pub fn wrong_method(&self) -> ApiError {
        ApiError::MethodNotAllowed { method: self.method.clone(), path: self.uri.path().to_string() }
    }

    /// The answer: the handler's response, or its error in the dialect's envelope; the request id on both.
    pub fn finish(&self, outcome: Result<Response, ApiError>) -> Response {
        let mut code = "OK";
        let mut resp = match outcome {
            Ok(r) => {
                if let Some(&Shown(c)) = r.extensions().get::<Shown>() {
                    code = c;
                }
                r
            }
            Err(e) => {
                let e = D::wire_error(e);
                code = e.code;
                let rid = self.rid.log_id();
                if e.status.is_server_error() {
                    tracing::error!(code = e.code, message = %e.message, request = rid, "{} call failed", D::NAME);
                } else {
                    tracing::debug!(code = e.code, message = %e.message, request = rid, "{} call refused", D::NAME);
                }
                D::error_response(&e, self)
            }
        };
        self.rid.stamp(&mut resp);
        let operation = D::operation(&self.method, self.uri.path());
        metrics::counter!("s3batch_api_requests_total", "dialect" => D::ID, "operation" => operation, "code" => code)
            .increment(1);
        metrics::histogram!("s3batch_api_request_duration_seconds", "dialect" => D::ID, "operation" => operation)
            .record(self.started.elapsed().as_secs_f64());
        resp
    }

    /// Run a handler's body and [`finish`](Self::finish) its outcome.
    pub async fn answer(self, handler: impl AsyncFnOnce(&Self) -> Result<Response, ApiError>) -> Response {
        let outcome = handler(&self).await;
        self.finish(outcome)
    }
}

/// The rate limit step of every front end (the console's too): the caller, if its account is within its request
/// rate.
pub fn within_rate<C: Caller>(state: &AppState, caller: C) -> Result<C, ApiError> {
    if state.limiter.admit(caller.account()) { Ok(caller) } else { Err(ApiError::RateLimited) }
}

/// The API operation a request is, by its method and the last part of its path (the same in every dialect):
/// `CreateJob`, `ListJobs`, `DescribeJob`, … (`Other` for anything else).
pub fn operation(method: &Method, path: &str) -> &'static str {
    let mut parts = path.trim_end_matches('/').rsplit('/');
    let last = parts.next().unwrap_or("");
    let before = parts.next().unwrap_or("");
    match (method.as_str(), before, last) {
        ("POST", _, "jobs") => "CreateJob",
        ("GET", _, "jobs") => "ListJobs",
        ("GET", "jobs", _) => "DescribeJob",
        ("DELETE", "jobs", _) => "DeleteJob",
        (_, _, "priority") => "UpdateJobPriority",
        (_, _, "status") => "UpdateJobStatus",
        ("GET", _, "tagging") => "GetJobTagging",
        ("PUT", _, "tagging") => "PutJobTagging",
        ("DELETE", _, "tagging") => "DeleteJobTagging",
        (_, _, "rerun") => "RerunFailedTasks",
        (_, _, "rate-limit") => "UpdateJobRateLimit",
        (_, _, "preview") => "PreviewJob",
        (_, _, "workers") => "ListWorkers",
        (_, _, "roles") => "ListRoles",
        _ => "Other",
    }
}

/// Decode `k=v&k2=v2` percent-encoding; with `plus_is_space`, a `+` is a space (HTML forms, the COS SDKs).
pub fn decode_pairs(raw: &str, plus_is_space: bool) -> Result<Vec<(String, String)>, ApiError> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                let s = if plus_is_space { s.replace('+', " ") } else { s.to_string() };
                percent_encoding::percent_decode_str(&s)
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .map_err(|_| ApiError::BadParameter("the query string is not UTF-8".into()))
            };
            Ok((dec(k)?, dec(v)?))
        })
        .collect()
}
