//! What programs written for AWS S3 Batch Operations expect, checked with the real clients (boto3 and the `aws`
//! CLI, installed by `scripts/test.sh`) against a real `s3batch serve` on local storage, driven by
//! `tests/clients/fidelity.py`: form-encoded manifest keys, the compute-checksum report rows of the S3 User Guide,
//! and the README's recipe for running an unmodified program (`AWS_ENDPOINT_URL_S3_CONTROL` + `HTTP_PROXY`).
//! A missing client fails the test.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Server, write_config};

const ACCOUNT: &str = "111111111111";

/// Run `fidelity.py MODE` against a fresh server; with `recipe`, in the README's recipe environment (see
/// [`recipe`]) instead of the usual arguments.
fn run(mode: &str, recipe_env: bool) {
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("data").join("objects");
    for b in ["data", "manifests", "reports"] {
        std::fs::create_dir_all(objects.join(b)).unwrap();
    }
    let config = write_config(
        dir.path(),
        &format!(
            "[[accounts]]\naccount_id = \"{ACCOUNT}\"\naccess_key_id = \"AKIDTEST\"\nsecret_access_key = \"s3cr3t\"\n\n\
             [[roles]]\narn = \"arn:aws:iam::{ACCOUNT}:role/batch\"\nread = [\"manifests\", \"data\"]\n\
             write = [\"data\", \"reports\"]\n\n\
             [engine]\ntick_ms = 20\n"
        ),
    );
    let server = Server::start(&config);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/fidelity.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script).args([mode, &server.endpoint, ACCOUNT, "AKIDTEST", "s3cr3t"]).arg(&objects);
    for var in ["HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3_CONTROL"] {
        cmd.env_remove(var);
    }
    if recipe_env {
        cmd.env_remove("AWS_REGION").env_remove("AWS_PROFILE").envs(recipe(&server.endpoint));
    }
    let out = cmd.output().expect("running python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{mode} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("{mode}: ok")), "{stdout}");
}

/// The README's recipe, exactly: the S3 Control endpoint and the HTTP proxy are s3batch, the region is real, the
/// credentials are an `[[accounts]]` entry's, and nothing else is configured.
fn recipe(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL_S3_CONTROL", endpoint.to_string()),
        ("HTTP_PROXY", endpoint.to_string()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_string()),
        ("AWS_ACCESS_KEY_ID", "AKIDTEST".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "s3cr3t".to_string()),
        ("AWS_CONFIG_FILE", "/dev/null".to_string()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".to_string()),
        ("AWS_MAX_ATTEMPTS", "1".to_string()),
    ]
}

#[test]
fn form_encoded_manifest_keys() {
    run("plus", false);
}

#[test]
fn compute_checksum_report_rows_are_the_user_guides() {
    run("checksum", false);
}

#[test]
fn an_unmodified_boto3_program_through_the_recipe() {
    run("proxy-boto3", true);
}

#[test]
fn the_aws_cli_through_the_recipe() {
    run("proxy-cli", true);
}
