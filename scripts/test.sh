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

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "cargo test"
cargo test --workspace --locked
