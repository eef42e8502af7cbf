//! The real AWS clients against a real `s3batch serve`: boto3 and the `aws` CLI (PyPI `awscli`, installed by
//! `scripts/test.sh`), driven by `tests/clients/aws_clients.py`, with SigV4 credentials and region `snow`.
//! A missing client fails the test.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Server, write_config};

const ACCOUNT: &str = "111111111111";

/// A server whose local storage holds `data/a,b,c`, the manifest `manifests/m.csv` and a `reports` bucket.
fn server(dir: &Path) -> (Server, String) {
    let objects = dir.join("data").join("objects");
    for b in ["data", "manifests", "reports"] {
        std::fs::create_dir_all(objects.join(b)).unwrap();
    }
    for k in ["a", "b", "c"] {
        std::fs::write(objects.join("data").join(k), b"x").unwrap();
    }
    let manifest = b"data,a\ndata,b\ndata,c\n";
    std::fs::write(objects.join("manifests").join("m.csv"), manifest).unwrap();
    let etag = s3batch_storage::md5_hex(manifest);
    let config = write_config(
        dir,
        &format!(
            "[[accounts]]\naccount_id = \"{ACCOUNT}\"\naccess_key_id = \"AKIDTEST\"\nsecret_access_key = \"s3cr3t\"\n\n\
             [[roles]]\narn = \"arn:aws:iam::{ACCOUNT}:role/batch\"\nread = [\"manifests\", \"data\"]\n\
             write = [\"data\", \"reports\"]\n\n\
             [engine]\ntick_ms = 20\n"
        ),
    );
    (Server::start(&config), etag)
}

fn run(mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (server, etag) = server(dir.path());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/aws_clients.py");
    let out = Command::new("python3")
        .arg(&script)
        .args([mode, &server.endpoint, ACCOUNT, "AKIDTEST", "s3cr3t", &etag])
        .output()
        .expect("running python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{mode} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("{mode}: ok")), "{stdout}");
}

#[test]
fn boto3_drives_every_call() {
    run("boto3");
}

#[test]
fn the_aws_cli_runs_the_user_guide_commands() {
    run("cli");
}
