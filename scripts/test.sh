#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh machine: installs what the tests need, then runs
# formatting and lint checks and every test. A missing server fails the run; nothing is skipped silently.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

# moto server (PyPI) is the real S3 protocol peer of the s3 backend's tests.
say "moto server"
if ! python3 -c 'import moto.server, flask, werkzeug' 2>/dev/null; then
  python3 -m pip install --quiet 'moto[server]'
fi
python3 -c 'import moto; print("moto", moto.__version__)'

# The Tencent COS Python SDK (PyPI) drives the COS dialect in crates/s3batch-api/tests/cos_sdk.rs (the Node SDK
# that test also uses is installed by the test itself, under the cargo target directory).
say "cos-python-sdk-v5"
if ! python3 -c 'import qcloud_cos' 2>/dev/null; then
  python3 -m pip install --quiet cos-python-sdk-v5
fi
python3 -c 'import importlib.metadata as m; print("cos-python-sdk-v5", m.version("cos-python-sdk-v5"))'

# The Prometheus text parser of the `prometheus_client` package (PyPI) reads /metrics in
# crates/s3batch/tests/observability.rs.
say "prometheus_client"
if ! python3 -c 'import prometheus_client.parser' 2>/dev/null; then
  python3 -m pip install --quiet prometheus_client
fi
python3 -c 'import importlib.metadata as m; print("prometheus_client", m.version("prometheus_client"))'

# The real AWS clients (the `aws` CLI and boto3) drive the S3 Control API in the wire tests.
say "aws CLI and boto3"
if ! command -v aws >/dev/null || ! python3 -c 'import boto3' 2>/dev/null; then
  python3 -m pip install --quiet awscli boto3
fi
aws --version

# PostgreSQL (local cluster, user postgres, trust auth) is the peer of the PostgreSQL job store's conformance tests.
say "PostgreSQL"
if ! pg_isready -h 127.0.0.1 -p 5432; then
  if ! pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start; then
    echo "starting the local PostgreSQL cluster failed" >&2
  fi
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 1
  done
  if ! pg_isready -h 127.0.0.1 -p 5432; then
    echo "PostgreSQL is not ready on 127.0.0.1:5432: the PostgreSQL store tests cannot run" >&2
    exit 1
  fi
fi

# Garage (crates.io) is the production S3 store of crates/s3batch-engine/tests/garage_operations.rs, started there
# by scripts/garage.sh. Building it takes a while the first time (several minutes); later runs find it installed.
say "Garage"
command -v garage >/dev/null || cargo install garage --locked
garage --version

# Debian's Chromium is the browser of the console's end-to-end test (crates/s3batch/tests/console.rs), driven by
# playwright-core from npm (installed by the test itself, under the cargo target directory). A missing browser or
# Node fails the run.
say "Chromium and Node"
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; else sudo apt-get update -qq && sudo apt-get install -y -qq chromium; fi
fi
chromium --version
node --version
npm --version

# crates/s3batch/tests/full_disk.rs mounts a small tmpfs in a private mount namespace (`unshare`, `nsenter` from
# util-linux; the tests run as root) and checks the SQLite database with the `sqlite3` shell (Debian's sqlite3).
say "sqlite3 and util-linux"
if ! command -v sqlite3 >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq sqlite3; else sudo apt-get update -qq && sudo apt-get install -y -qq sqlite3; fi
fi
sqlite3 --version
command -v unshare nsenter

say "cargo fmt --check"
cargo fmt --all -- --check

# Clippy lints the workspace while the tests compile: with clippy-driver as the workspace's rustc wrapper, one
# compile of every crate (lib, binaries, test targets; the workspace has no benches or examples) both lints it and
# builds the test binaries, where `cargo clippy --all-targets` then `cargo test` compiled everything twice (a
# metadata-only check, then the real build: about 8 minutes of a cold CI run). Locally,
# `cargo clippy --workspace --all-targets --locked -- -D warnings` checks the same.
say "cargo clippy and cargo test (one compile)"
command -v clippy-driver >/dev/null || { echo "clippy-driver is not installed (rustup component add clippy)" >&2; exit 1; }
# `-D warnings` for the workspace's own crates only, the way `cargo clippy -- -D warnings` hands it to clippy-driver
# (CLIPPY_ARGS, arguments joined by __CLIPPY_HACKERY__): every rustc and clippy warning of ours fails the build. Only
# clippy-driver reads it, so the dependencies compile exactly as for a plain `cargo test` and are shared with it
# (RUSTFLAGS would change every crate's fingerprint, and the next plain `cargo test` would rebuild them all).
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
# That hand-over is clippy's, not a documented interface: check that this clippy-driver fails on a lint with it, so
# that a clippy which stopped reading it cannot let lint errors pass as warnings.
probe=$(mktemp -d)
printf 'fn main() {\n    let x = 5u32;\n    let _y = x.clone();\n}\n' >"$probe/probe.rs"
if clippy-driver rustc "$probe/probe.rs" --edition 2021 --emit=metadata --out-dir "$probe" >"$probe/out" 2>&1 \
  || ! grep -q 'error: using `clone` on type `u32`' "$probe/out"; then
  cat "$probe/out" >&2
  echo "clippy-driver did not turn a clippy lint into an error with CLIPPY_ARGS=$CLIPPY_ARGS" >&2
  exit 1
fi
rm -rf "$probe"
RUSTC_WORKSPACE_WRAPPER=clippy-driver cargo test --workspace --locked
