//! Hostile clients against the real `s3batch serve`: slow and idle connections, stalled bodies.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// A connection that sends a request line and then one header line now and then, never finishing its headers.
struct Slow {
    stream: TcpStream,
    opened: Instant,
    closed: Option<Instant>,
    answered: bool,
}

impl Slow {
    fn open(addr: &str) -> Slow {
        let mut stream = TcpStream::connect(addr).expect("connecting a slow client");
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n").expect("sending the request line");
        stream.set_nonblocking(true).unwrap();
        Slow { stream, opened: Instant::now(), closed: None, answered: false }
    }

    /// One more header line; notice whether the server closed the connection.
    fn dribble(&mut self, n: usize) {
        if self.closed.is_some() {
            return;
        }
        let mut buf = [0u8; 512];
        match self.stream.read(&mut buf) {
            Ok(0) => self.closed = Some(Instant::now()),
            Ok(_) => self.answered = true, // a server that answers an unfinished request: caught below
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if let Err(e) = self.stream.write_all(format!("X-Slow-{n}: a\r\n").as_bytes())
                    && e.kind() != ErrorKind::WouldBlock
                {
                    self.closed = Some(Instant::now());
                }
            }
            Err(_) => self.closed = Some(Instant::now()),
        }
    }
}

/// A whole `GET /healthz` on a fresh connection: how long until "ok" came back (None: not within `limit`).
fn healthz(addr: &str, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(limit)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    (answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok")).then(|| t0.elapsed())
}

fn addr(server: &Server) -> String {
    server.endpoint.trim_start_matches("http://").to_string()
}

/// Many connections that dribble their headers, more than the server has file descriptors for: each is cut
/// `header_timeout_ms` after it is taken in, at most `max_connections` are taken in at once, and a normal client
/// queued behind all of them is answered as soon as the slow ones ahead of it have timed out. The old server
/// (no header timeout, no cap) kept them all, ran out of descriptors and never answered the normal client.
#[test]
fn slow_connections_are_cut_and_capped() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "max_connections = 40\nheader_timeout_ms = 1000\n");
    // 128 descriptors for the whole server: 150 slow connections would take them all without the cap.
    let server = Server::start_with_nofile(&config, 128);
    let addr = addr(&server);

    // Fewer slow connections than the cap: a normal client is answered at once.
    let mut slow: Vec<Slow> = (0..30).map(|_| Slow::open(&addr)).collect();
    let quick = healthz(&addr, Duration::from_secs(5)).expect("a normal client beside 30 slow ones got no answer");
    assert!(quick < Duration::from_secs(1), "a normal client beside 30 slow ones waited {quick:?}");

    // 150 in all, more than the server's descriptors; a normal client queues behind them.
    slow.extend((0..120).map(|_| Slow::open(&addr)));
    let t0 = Instant::now();
    let normal = {
        let addr = addr.clone();
        std::thread::spawn(move || healthz(&addr, Duration::from_secs(20)))
    };
    let mut n = 0;
    while slow.iter().any(|s| s.closed.is_none()) && t0.elapsed() < Duration::from_secs(20) {
        n += 1;
        for s in &mut slow {
            s.dribble(n);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let waited = normal.join().unwrap().expect("the normal client behind 150 slow ones got no answer within 20 s");
    // 150 slow ones, 40 at a time, each cut after 1 s: the normal client is taken in within about 4 s.
    assert!(waited < Duration::from_secs(8), "the normal client waited {waited:?}");
    let open = slow.iter().filter(|s| s.closed.is_none()).count();
    assert_eq!(open, 0, "{open} of 150 slow connections were still open after 20 s");
    assert!(slow.iter().all(|s| !s.answered), "a request whose headers never ended was answered");
    // None was cut before its header timeout (the first 30 had been open longest).
    let earliest = slow.iter().map(|s| s.closed.unwrap() - s.opened).min().unwrap();
    assert!(earliest >= Duration::from_millis(900), "a slow connection was cut after {earliest:?}");
    let last = slow.iter().map(|s| s.closed.unwrap()).max().unwrap() - t0;
    assert!(last < Duration::from_secs(10), "the last slow connection was cut {last:?} after the flood began");

    // Afterwards the server answers at once, and its engine is still alive.
    let after = healthz(&addr, Duration::from_secs(5)).expect("no answer after the slow clients were gone");
    assert!(after < Duration::from_secs(1), "answered {after:?} after the slow clients were gone");
    let (status, _) = api("GET", &format!("{}/readyz", server.endpoint), None);
    assert_eq!(status, 200, "/readyz after the flood");
}

/// An idle kept-alive connection is closed after `header_timeout_ms`.
#[test]
fn idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "header_timeout_ms = 1000\n");
    let server = Server::start(&config);
    let mut s = TcpStream::connect(addr(&server)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "first answer");
    let t0 = Instant::now();
    let n = s.read(&mut buf).unwrap_or(0); // a reset counts as closed
    let idle = t0.elapsed();
    assert_eq!(n, 0, "the idle connection got more bytes");
    assert!(
        idle > Duration::from_millis(800) && idle < Duration::from_secs(5),
        "the idle connection was closed after {idle:?}"
    );
}

/// Send the headers of a POST with a 100-byte body, then `sent` of its bytes, one every `every`; return the status
/// line the server answers with and how long after the headers it came.
fn stalled_post(addr: &str, sent: usize, every: Duration) -> (String, Duration) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        b"POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
    )
    .unwrap();
    let t0 = Instant::now();
    s.set_nonblocking(true).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let mut written = 0;
    let mut next = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
        if written < sent && Instant::now() >= next {
            if s.write_all(b" ").is_err() {
                break;
            }
            written += 1;
            next = Instant::now() + every;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let answer = String::from_utf8_lossy(&answer);
    (answer.lines().next().unwrap_or("").to_string(), t0.elapsed())
}

/// A body that stops coming fails its request after `body_timeout_ms`; one that trickles in forever is cut at
/// `request_timeout_ms` with a 408. The old server waited for both for ever.
#[test]
fn stalled_bodies_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "body_timeout_ms = 1000\nrequest_timeout_ms = 3000\n");
    let server = Server::start(&config);
    let addr = addr(&server);

    let (status, after) = stalled_post(&addr, 10, Duration::ZERO);
    assert!(status.starts_with("HTTP/1.1 400"), "a stalled body answered {status:?}");
    assert!(
        after > Duration::from_millis(800) && after < Duration::from_secs(3),
        "a stalled body failed after {after:?}"
    );

    let (status, after) = stalled_post(&addr, 100, Duration::from_millis(300));
    assert!(status.starts_with("HTTP/1.1 408"), "a trickling body answered {status:?}");
    assert!(
        after > Duration::from_millis(2800) && after < Duration::from_secs(6),
        "a trickling body was cut after {after:?}"
    );
}

/// Send the headers of a POST that announces a 10 MB body and send none of it; return the status line the server
/// answers with and how long after the headers it came (None: no answer within 8 s).
fn announced_body(addr: &str, path: &str, headers: &str) -> Option<(String, Duration)> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10000000\r\n{headers}\r\n").as_bytes(),
    )
    .unwrap();
    let t0 = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).ok().filter(|n| *n > 0)?;
    Some((String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or("").to_string(), t0.elapsed()))
}

/// A request whose signature (or Basic credentials) is wrong is refused from its headers, before its body is read:
/// a caller without credentials cannot make the server wait for, or buffer, a body. The old server read the whole
/// body (here: waited for it until the body timeout) before checking who was calling.
#[test]
fn bad_credentials_are_refused_before_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "body_timeout_ms = 6000\n\n[[accounts]]\naccount_id = \"111111111111\"\naccess_key_id = \"AKIDTEST\"\n\
         secret_access_key = \"s3cr3t\"\ncos_appid = \"1250000000\"\n",
    );
    let server = Server::start(&config);
    let addr = addr(&server);
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let day = &now[..8];
    let sha = "0".repeat(64);
    let cases = [
        // S3 Control: an unknown key, and a known key with a wrong signature over the claimed payload hash.
        (
            "/v20180820/jobs",
            format!(
                "x-amz-account-id: 111111111111\r\nx-amz-date: {now}\r\nx-amz-content-sha256: {sha}\r\n\
                 Authorization: AWS4-HMAC-SHA256 Credential=NOPE/{day}/us-east-1/s3/aws4_request, \
                 SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={sha}\r\n"
            ),
            "403",
        ),
        (
            "/v20180820/jobs",
            format!(
                "x-amz-account-id: 111111111111\r\nx-amz-date: {now}\r\nx-amz-content-sha256: {sha}\r\n\
                 Authorization: AWS4-HMAC-SHA256 Credential=AKIDTEST/{day}/us-east-1/s3/aws4_request, \
                 SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={sha}\r\n"
            ),
            "403",
        ),
        // The JSON API: a wrong secret (AKIDTEST:nope).
        (
            "/api/v1/jobs",
            "Authorization: Basic QUtJRFRFU1Q6bm9wZQ==\r\nContent-Type: application/json\r\n".into(),
            "403",
        ),
        // COS: no signature at all.
        ("/jobs", "x-cos-appid: 1250000000\r\n".into(), "403"),
    ];
    for (path, headers, want) in &cases {
        let (status, after) = announced_body(&addr, path, headers)
            .unwrap_or_else(|| panic!("POST {path} with bad credentials: no answer before its body came"));
        assert!(status.starts_with(&format!("HTTP/1.1 {want}")), "POST {path} with bad credentials: {status:?}");
        assert!(after < Duration::from_secs(3), "POST {path} with bad credentials was answered after {after:?}");
    }
}

/// A request whose headers are signed well but whose body is not the one signed is refused once the body is read:
/// the head check found the caller, and the body is still checked against the hash the signature covers. A good
/// request on the same connection setup goes through.
#[test]
fn a_body_other_than_the_signed_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[accounts]]\naccount_id = \"111111111111\"\naccess_key_id = \"AKIDTEST\"\nsecret_access_key = \"s3cr3t\"\n",
    );
    let server = Server::start(&config);
    let addr = addr(&server);
    let signer = s3batch_api::sigv4::Signer { access_key_id: "AKIDTEST", secret: "s3cr3t", region: "us-east-1" };
    let send = |signed_body: &[u8], sent_body: &[u8]| -> String {
        let uri: axum::http::Uri = "/v20180820/jobs".parse().unwrap();
        let mut h = axum::http::HeaderMap::new();
        h.insert("host", addr.parse().unwrap());
        h.insert("x-amz-account-id", "111111111111".parse().unwrap());
        signer.sign(&axum::http::Method::GET, &uri, &mut h, signed_body, chrono::Utc::now()).unwrap();
        let mut req =
            format!("GET /v20180820/jobs HTTP/1.1\r\nContent-Length: {}\r\nConnection: close\r\n", sent_body.len());
        for (k, v) in &h {
            req += &format!("{k}: {}\r\n", v.to_str().unwrap());
        }
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(format!("{req}\r\n").as_bytes()).unwrap();
        s.write_all(sent_body).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let good = send(b"", b"");
    assert!(good.starts_with("HTTP/1.1 200"), "a signed ListJobs: {good}");
    let swapped = send(b"", b"<Another/>");
    assert!(swapped.starts_with("HTTP/1.1 400"), "another body under the signed hash: {swapped}");
    assert!(swapped.contains("XAmzContentSHA256Mismatch"), "{swapped}");
}
