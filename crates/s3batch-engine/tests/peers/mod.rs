//! The real S3 peers of the engine's wire tests: a moto server and a single-node Garage (`scripts/garage.sh`),
//! each stopped when dropped. A peer that is not installed or does not start fails the test that asked for it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A moto server on a free port, killed when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).is_ok() && &buf == b"HTTP/"
}

pub fn start_moto() -> Moto {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("moto.log");
    let out = std::fs::File::create(&log).expect("moto log file");
    let err = out.try_clone().expect("moto log file");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("python3")
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start moto ({e}); install it with `pip install 'moto[server]'`"));
    let mut moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}"), log, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if answers(port) {
            return moto;
        }
        if let Ok(Some(status)) = moto.child.try_wait() {
            let log = std::fs::read_to_string(&moto.log).unwrap_or_default();
            panic!("moto server exited with {status} before answering; is `moto[server]` installed?\n{log}");
        }
        assert!(Instant::now() < deadline, "moto did not answer on port {port} within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A single-node Garage started by `scripts/garage.sh`, killed by its pid when dropped.
pub struct Garage {
    pid: Option<u32>,
    pub endpoint: String,
    pub key_id: String,
    pub secret: String,
    dir: tempfile::TempDir,
}

impl Drop for Garage {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            kill(pid);
        }
    }
}

fn kill(pid: u32) {
    let _ = Command::new("kill").arg(pid.to_string()).status();
    // Not our child (the script started it in the background): wait until it is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if Path::new(&format!("/proc/{pid}")).exists() {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}

/// Start Garage with these buckets (its key may read and write them). The script picks free ports just before
/// Garage binds them, so a test starting Garage at the same time can take one first: a start that fails is tried
/// again, on new ports, up to three times.
pub fn start_garage(buckets: &[&str]) -> Garage {
    for _ in 1..3 {
        if let Ok(g) = std::panic::catch_unwind(|| start_garage_once(buckets)) {
            return g;
        }
    }
    start_garage_once(buckets)
}

fn start_garage_once(buckets: &[&str]) -> Garage {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/garage.sh");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new("bash")
        .arg(&script)
        .arg(dir.path())
        .args(buckets)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let pid_file = std::fs::read_to_string(dir.path().join("garage.pid")).ok();
    let pid = pid_file.as_deref().and_then(|p| p.trim().parse::<u32>().ok());
    if !out.status.success() {
        if let Some(pid) = pid {
            kill(pid);
        }
        panic!(
            "Garage did not start ({}); is it installed (`cargo install garage --locked`, see scripts/test.sh)?\n\
             stdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let vars: BTreeMap<&str, &str> = stdout.lines().filter_map(|l| l.split_once('=')).collect();
    let var = |name: &str| {
        vars.get(name)
            .map(|v| v.to_string())
            .unwrap_or_else(|| panic!("scripts/garage.sh printed no {name}:\n{stdout}"))
    };
    let garage = Garage {
        pid: Some(var("GARAGE_PID").parse().expect("GARAGE_PID is a pid")),
        endpoint: var("GARAGE_ENDPOINT"),
        key_id: var("GARAGE_KEY_ID"),
        secret: var("GARAGE_SECRET"),
        dir,
    };
    assert_eq!(var("GARAGE_REGION"), "garage");
    garage
}

impl Garage {
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
    }

    /// `garage` against this node.
    pub fn cli(&self, args: &[&str]) {
        let out = Command::new("garage")
            .arg("-c")
            .arg(self.dir.path().join("garage.toml"))
            .args(args)
            .output()
            .expect("running garage");
        assert!(out.status.success(), "garage {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A new key allowed to read and write `buckets` only.
    pub fn key(&self, id: &str, secret: &str, buckets: &[&str]) {
        self.cli(&["key", "import", "--yes", id, secret, "-n", id]);
        for b in buckets {
            self.cli(&["bucket", "allow", "--read", "--write", b, "--key", id]);
        }
    }
}
