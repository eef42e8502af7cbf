//! A fault-injecting HTTP proxy for the wire tests: it stands between an S3 client and a real store (moto server,
//! Garage) and, for a share of the requests picked by a seeded random generator, does what a bad network or a
//! store under load does:
//!
//! - [`Fault::SlowDown`]: answers `503 SlowDown` (an S3 XML error body) itself, in bursts of [`SLOWDOWN_BURST`]
//!   requests in a row; the store never sees them;
//! - [`Fault::InternalError`]: answers `500 InternalError` itself;
//! - [`Fault::ResetBefore`]: closes the connection as soon as the request's head is read, before its body is read
//!   and before anything is forwarded (nothing was applied);
//! - [`Fault::ResetAfter`]: forwards the request, reads the store's whole answer, then closes the connection
//!   without answering (the request WAS applied, and the client cannot know);
//! - [`Fault::CutBody`]: forwards, then sends the answer's head (with its full `Content-Length`) and the first half
//!   of its body, and closes the connection (a request whose answer has no body is reset instead, and counted as
//!   [`Fault::ResetAfter`]);
//! - [`Fault::Stall`]: waits (5 s by default) before forwarding, then answers normally.
//!
//! Each request is counted by [`Op`] (what kind of S3 request it is), and each fault injected by kind and `Op`, so
//! that a test can check the faults really happened. [`FaultProxy::force`] queues a fault for the next request of
//! one kind, on top of the random ones, to hit a request a job makes only once (the manifest's read, the report's
//! upload).
//!
//! Requests and answers are buffered whole (the wire tests move small objects); headers pass unchanged, `Host`
//! included, so SigV4 signatures made for the proxy's address stay valid.

#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, EXPECT, HeaderValue, TRANSFER_ENCODING};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;
use tokio_util::task::AbortOnDropHandle;

/// `503 SlowDown` answers come in bursts of this many requests in a row.
pub const SLOWDOWN_BURST: u32 = 4;
/// How long a [`Fault::Stall`] holds a request before forwarding it.
pub const STALL: Duration = Duration::from_secs(5);

/// What the proxy can do to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    SlowDown,
    InternalError,
    ResetBefore,
    ResetAfter,
    CutBody,
    Stall,
}

impl Fault {
    pub const ALL: [Fault; 6] =
        [Fault::SlowDown, Fault::InternalError, Fault::ResetBefore, Fault::ResetAfter, Fault::CutBody, Fault::Stall];
}

/// The kind of an S3 request, as the proxy tells it from the method, the query and the headers (path-style URLs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// GetObject of a whole object.
    Get,
    /// GetObject with a `Range`.
    RangeGet,
    Head,
    List,
    /// PutObject, UploadPart.
    Put,
    /// CopyObject, UploadPartCopy (`x-amz-copy-source`).
    Copy,
    /// DeleteObject.
    Delete,
    /// DeleteObjects (`POST ?delete`).
    DeleteObjects,
    /// Anything else (multipart create and complete, bucket requests, …).
    Other,
}

impl Op {
    fn of<B>(req: &Request<B>) -> Op {
        let query = req.uri().query().unwrap_or("");
        let has = |name: &str| query.split('&').any(|p| p.split('=').next() == Some(name));
        // `/bucket` or `/bucket/`: a bucket request; `/bucket/key…`: an object's.
        let object = req.uri().path().trim_start_matches('/').split_once('/').is_some_and(|(_, k)| !k.is_empty());
        let m = req.method();
        if m == Method::HEAD {
            Op::Head
        } else if m == Method::GET {
            match (object, req.headers().contains_key("range")) {
                (false, _) => Op::List,
                (true, true) => Op::RangeGet,
                (true, false) => Op::Get,
            }
        } else if m == Method::PUT && req.headers().contains_key("x-amz-copy-source") {
            Op::Copy
        } else if m == Method::PUT && object {
            Op::Put
        } else if m == Method::POST && has("delete") {
            Op::DeleteObjects
        } else if m == Method::DELETE && object && !has("uploadId") {
            Op::Delete
        } else {
            Op::Other
        }
    }
}

/// What the proxy saw and did.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Requests received, by kind.
    pub requests: BTreeMap<Op, u64>,
    /// Requests the store received (all but the ones answered or reset by the proxy first), by kind.
    pub forwarded: BTreeMap<Op, u64>,
    /// Faults injected, by kind and request kind.
    pub faults: BTreeMap<(Fault, Op), u64>,
    /// Requests by kind and by the SDK's attempt number (its `amz-sdk-request: attempt=N` header; 0 without
    /// one): attempt 1 is a call of the SDK (an attempt of the engine's), the others the SDK's own retries.
    pub sdk_attempts: BTreeMap<(Op, u32), u64>,
    /// Keys named in the DeleteObjects requests forwarded.
    pub delete_keys: u64,
    /// Requests the store itself failed to answer (not injected).
    pub upstream_errors: u64,
}

impl Counts {
    pub fn requests(&self) -> u64 {
        self.requests.values().sum()
    }

    pub fn requests_of(&self, op: Op) -> u64 {
        self.requests.get(&op).copied().unwrap_or(0)
    }

    /// Requests of kind `op` that were the SDK's attempt number `n`.
    pub fn sdk_attempt(&self, op: Op, n: u32) -> u64 {
        self.sdk_attempts.get(&(op, n)).copied().unwrap_or(0)
    }

    pub fn forwarded_of(&self, op: Op) -> u64 {
        self.forwarded.get(&op).copied().unwrap_or(0)
    }

    /// Faults of this kind, over every request kind.
    pub fn faults_of(&self, fault: Fault) -> u64 {
        self.faults.iter().filter(|((f, _), _)| *f == fault).map(|(_, n)| n).sum()
    }

    /// Faults of any kind on this request kind.
    pub fn faults_on(&self, op: Op) -> u64 {
        self.faults.iter().filter(|((_, o), _)| *o == op).map(|(_, n)| n).sum()
    }

    pub fn faults(&self) -> u64 {
        self.faults.values().sum()
    }

    /// What happened since `before`, a snapshot of the same proxy.
    pub fn since(&self, before: &Counts) -> Counts {
        fn minus<K: Ord + Clone>(a: &BTreeMap<K, u64>, b: &BTreeMap<K, u64>) -> BTreeMap<K, u64> {
            a.iter().map(|(k, n)| (k.clone(), n - b.get(k).copied().unwrap_or(0))).filter(|(_, n)| *n > 0).collect()
        }
        Counts {
            requests: minus(&self.requests, &before.requests),
            forwarded: minus(&self.forwarded, &before.forwarded),
            faults: minus(&self.faults, &before.faults),
            sdk_attempts: minus(&self.sdk_attempts, &before.sdk_attempts),
            delete_keys: self.delete_keys - before.delete_keys,
            upstream_errors: self.upstream_errors - before.upstream_errors,
        }
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total = self.requests();
        let faults = self.faults();
        let share = if total == 0 { 0.0 } else { 100.0 * faults as f64 / total as f64 };
        writeln!(
            f,
            "requests {total}, faults {faults} ({share:.1} %), DeleteObjects keys {}, upstream errors {}",
            self.delete_keys, self.upstream_errors
        )?;
        for fault in Fault::ALL {
            let by_op: Vec<String> = self
                .faults
                .iter()
                .filter(|((x, _), _)| *x == fault)
                .map(|((_, op), n)| format!("{op:?} {n}"))
                .collect();
            writeln!(f, "  {fault:?}: {} ({})", self.faults_of(fault), by_op.join(", "))?;
        }
        let ops: Vec<String> =
            self.requests.iter().map(|(op, n)| format!("{op:?} {n} (forwarded {})", self.forwarded_of(*op))).collect();
        writeln!(f, "  by request: {}", ops.join(", "))?;
        let attempts: Vec<String> =
            self.sdk_attempts.iter().map(|((op, n), count)| format!("{op:?} #{n} {count}")).collect();
        write!(f, "  by SDK attempt: {}", attempts.join(", "))
    }
}

/// The random half of the proxy's choices, and its counts.
struct State {
    rng: StdRng,
    /// Chance that a request not in a SlowDown burst starts a fault.
    roll: f64,
    /// The faults picked from, each as likely.
    kinds: Vec<Fault>,
    /// SlowDown answers still due in the current burst.
    burst_left: u32,
    forced: VecDeque<(Op, Fault)>,
    /// Every request of this kind whose SDK attempt number is at most this gets this fault.
    early_attempts: Option<(Op, u32, Fault)>,
    counts: Counts,
}

struct Inner {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    stall: Duration,
    state: Mutex<State>,
}

type ProxyBody = UnsyncBoxBody<Bytes, io::Error>;

/// A running proxy to one store; it stops when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:<port>`: give it to the client as the store's endpoint.
    pub endpoint: String,
    inner: Arc<Inner>,
    _server: AbortOnDropHandle<()>,
}

impl FaultProxy {
    /// A proxy to `upstream` (`http://host:port`) on a free local port, injecting faults into about `rate` of
    /// the requests (0 to 1), chosen by a generator seeded with `seed`. Call inside a tokio runtime.
    pub async fn start(upstream: &str, rate: f64, seed: u64) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a local port for the proxy");
        let endpoint = format!("http://{}", listener.local_addr().expect("the proxy's address"));
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
        let state = State {
            rng: StdRng::seed_from_u64(seed),
            roll: 0.0,
            kinds: Fault::ALL.to_vec(),
            burst_left: 0,
            forced: VecDeque::new(),
            early_attempts: None,
            counts: Counts::default(),
        };
        let inner = Arc::new(Inner {
            upstream,
            client: Client::builder(TokioExecutor::new()).build_http(),
            stall: STALL,
            state: Mutex::new(state),
        });
        let proxy = FaultProxy {
            endpoint,
            _server: AbortOnDropHandle::new(tokio::spawn(serve(listener, inner.clone()))),
            inner,
        };
        proxy.set_rate(rate);
        proxy
    }

    /// Inject faults into about `rate` of the requests from now on. A SlowDown starts a burst of
    /// [`SLOWDOWN_BURST`] answers, so the chance that a request starts a fault is set lower than `rate`: with `k`
    /// the extra answers a burst adds for each fault started (`(burst − 1) / kinds`), the share of faulty requests
    /// is `q (1 + k) / (1 + q k)` for a chance `q`, which is `rate` for `q = rate / (1 + k − k·rate)`.
    pub fn set_rate(&self, rate: f64) {
        let mut s = self.inner.state.lock().unwrap();
        let rate = rate.clamp(0.0, 1.0);
        let k =
            if s.kinds.contains(&Fault::SlowDown) { f64::from(SLOWDOWN_BURST - 1) / s.kinds.len() as f64 } else { 0.0 };
        s.roll = rate / (1.0 + k - k * rate);
    }

    /// Pick the random faults among `kinds` only (all of them at first); call before [`FaultProxy::set_rate`].
    pub fn set_kinds(&self, kinds: &[Fault]) {
        assert!(!kinds.is_empty(), "no fault to pick from");
        self.inner.state.lock().unwrap().kinds = kinds.to_vec();
    }

    /// Inject `fault` into the next request of kind `op` (whatever the rate; in the order queued).
    pub fn force(&self, op: Op, fault: Fault) {
        self.inner.state.lock().unwrap().forced.push_back((op, fault));
    }

    /// Inject `fault` into every request of kind `op` that is one of the SDK's first `attempts` attempts of its
    /// call (so a call succeeds only if the SDK gets to retry it that often).
    pub fn fail_early_attempts(&self, op: Op, attempts: u32, fault: Fault) {
        self.inner.state.lock().unwrap().early_attempts = Some((op, attempts, fault));
    }

    /// Forced faults not injected yet.
    pub fn forced_left(&self) -> Vec<(Op, Fault)> {
        self.inner.state.lock().unwrap().forced.iter().copied().collect()
    }

    /// A snapshot of the counts.
    pub fn counts(&self) -> Counts {
        self.inner.state.lock().unwrap().counts.clone()
    }
}

async fn serve(listener: TcpListener, inner: Arc<Inner>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let inner = inner.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(inner.clone(), req));
            // A connection ends with an error whenever a fault closes it: that is the point.
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

impl Inner {
    /// Count the request (of the SDK's attempt number `attempt`) and pick its fault, if any.
    fn pick(&self, op: Op, attempt: u32) -> Option<Fault> {
        let mut s = self.state.lock().unwrap();
        *s.counts.requests.entry(op).or_default() += 1;
        *s.counts.sdk_attempts.entry((op, attempt)).or_default() += 1;
        let roll = s.roll;
        let early = s.early_attempts.filter(|(o, n, _)| *o == op && (1..=*n).contains(&attempt));
        let fault = if let Some((_, _, f)) = early {
            Some(f)
        } else if let Some(i) = s.forced.iter().position(|(o, _)| *o == op) {
            s.forced.remove(i).map(|(_, f)| f)
        } else if s.burst_left > 0 {
            s.burst_left -= 1;
            Some(Fault::SlowDown)
        } else if roll > 0.0 && s.rng.random_bool(roll) {
            let n = s.kinds.len();
            let pick = s.rng.random_range(0..n);
            let f = s.kinds[pick];
            if f == Fault::SlowDown {
                s.burst_left = SLOWDOWN_BURST - 1;
            }
            Some(f)
        } else {
            None
        };
        // A reset or a cut is counted once it happens (a cut of an empty answer is a reset after forwarding).
        if let Some(f) = fault.filter(|f| !matches!(f, Fault::ResetAfter | Fault::CutBody)) {
            *s.counts.faults.entry((f, op)).or_default() += 1;
        }
        fault
    }

    fn count(&self, fault: Fault, op: Op) {
        *self.state.lock().unwrap().counts.faults.entry((fault, op)).or_default() += 1;
    }

    /// Send the request to the store and read its whole answer.
    async fn forward(&self, op: Op, req: Request<Incoming>) -> io::Result<Response<Bytes>> {
        let (mut parts, body) = req.into_parts();
        let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
        let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        parts.uri = format!("http://{}{path}", self.upstream).parse().map_err(io::Error::other)?;
        for h in [CONNECTION, TRANSFER_ENCODING, EXPECT] {
            parts.headers.remove(h);
        }
        parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        {
            let mut s = self.state.lock().unwrap();
            *s.counts.forwarded.entry(op).or_default() += 1;
            if op == Op::DeleteObjects {
                s.counts.delete_keys += body.windows(5).filter(|w| w == b"<Key>").count() as u64;
            }
        }
        let answer = self.client.request(Request::from_parts(parts, Full::new(body))).await;
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                self.state.lock().unwrap().counts.upstream_errors += 1;
                return Err(io::Error::other(e));
            }
        };
        let (mut parts, body) = answer.into_parts();
        let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
        for h in [CONNECTION, TRANSFER_ENCODING] {
            parts.headers.remove(h);
        }
        Ok(Response::from_parts(parts, body))
    }
}

async fn handle(inner: Arc<Inner>, req: Request<Incoming>) -> io::Result<Response<ProxyBody>> {
    let op = Op::of(&req);
    let head = req.method() == Method::HEAD;
    let fault = inner.pick(op, sdk_attempt(&req));
    match fault {
        Some(Fault::SlowDown) => {
            return Ok(s3_error(StatusCode::SERVICE_UNAVAILABLE, "SlowDown", "Please reduce your request rate."));
        }
        Some(Fault::InternalError) => {
            return Ok(s3_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "We encountered an internal error. Please try again.",
            ));
        }
        Some(Fault::ResetBefore) => return Err(io::Error::other("fault: reset before forwarding")),
        Some(Fault::Stall) => tokio::time::sleep(inner.stall).await,
        _ => {}
    }
    let answer = inner.forward(op, req).await?;
    match fault {
        Some(Fault::CutBody) if !head && answer.body().len() >= 2 => {
            inner.count(Fault::CutBody, op);
            Ok(cut(answer))
        }
        Some(Fault::CutBody | Fault::ResetAfter) => {
            inner.count(Fault::ResetAfter, op);
            Err(io::Error::other("fault: reset after forwarding"))
        }
        _ => Ok(answer.map(|b| Full::new(b).map_err(|e: Infallible| match e {}).boxed_unsync())),
    }
}

/// The SDK's attempt number of a request (`amz-sdk-request: attempt=2; max=3`), 0 if it does not say.
fn sdk_attempt<B>(req: &Request<B>) -> u32 {
    let header = req.headers().get("amz-sdk-request").and_then(|v| v.to_str().ok()).unwrap_or("");
    header.split(';').find_map(|p| p.trim().strip_prefix("attempt=")?.parse().ok()).unwrap_or(0)
}

/// The answer's head, with its whole length, and the first half of its body; then the connection breaks.
fn cut(answer: Response<Bytes>) -> Response<ProxyBody> {
    let (mut parts, body) = answer.into_parts();
    parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    let half = body.slice(..body.len() / 2);
    let frames = futures::stream::iter([Ok(Frame::data(half))]).chain(futures::stream::once(async {
        // Pending for a moment first, so that the head and the half are flushed before the connection breaks.
        tokio::time::sleep(Duration::from_millis(20)).await;
        Err(io::Error::other("fault: answer cut in the middle"))
    }));
    Response::from_parts(parts, StreamBody::new(frames).boxed_unsync())
}

/// An S3 error answer made by the proxy.
fn s3_error(status: StatusCode, code: &str, message: &str) -> Response<ProxyBody> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>\
         <RequestId>fault-proxy</RequestId></Error>"
    );
    let mut r = Response::new(Full::new(Bytes::from(body)).map_err(|e: Infallible| match e {}).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    r
}
