#!/usr/bin/env bash
# Start a single-node Garage (https://garagehq.deuxfleurs.fr) on loopback for tests and benchmarks.
#
#   scripts/garage.sh DIR [BUCKET...]
#
# Writes DIR/garage.toml, starts `garage server` in the background (pid in DIR/garage.pid, log in
# DIR/garage.log), lays out the one node, imports a fixed test key and creates the buckets with read/write
# for it. Prints shell assignments: GARAGE_ENDPOINT, GARAGE_REGION, GARAGE_KEY_ID, GARAGE_SECRET, GARAGE_PID.
# Fails (exit 1) if garage is not installed or does not come up: nothing is skipped.
set -euo pipefail
dir=$1; shift
command -v garage >/dev/null || { echo "garage is not installed (cargo install garage --locked)" >&2; exit 1; }
mkdir -p "$dir/meta" "$dir/data"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
s3=$(free_port); rpc=$(free_port); admin=$(free_port)
secret=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
cat > "$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin"
TOML
g() { garage -c "$dir/garage.toml" "$@"; }
garage -c "$dir/garage.toml" server > "$dir/garage.log" 2>&1 &
pid=$!
echo "$pid" > "$dir/garage.pid"
node=""
for _ in $(seq 1 100); do
  node=$(g node id -q 2>/dev/null | cut -d@ -f1) && [ -n "$node" ] && break
  sleep 0.2
done
[ -n "$node" ] || { echo "garage did not start; see $dir/garage.log" >&2; cat "$dir/garage.log" >&2; exit 1; }
# The node answers on its RPC port before the layout can be changed (`node id` alone can answer earlier).
for _ in $(seq 1 100); do
  g status >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { echo "garage exited; see its log:" >&2; cat "$dir/garage.log" >&2; exit 1; }
  sleep 0.2
done
g layout assign -z dc1 -c 1G "$node" >/dev/null
g layout apply --version 1 >/dev/null
key_id=GK31c2f218a2e44f485b94239e
key_secret=b892c0665f0ada8a4755dae98baa3b133590e11dae3bcc1f9d769d67f16c3835
g key import --yes "$key_id" "$key_secret" -n s3batch-test >/dev/null
for b in "$@"; do
  g bucket create "$b" >/dev/null
  g bucket allow --read --write --owner "$b" --key "$key_id" >/dev/null
done
echo "GARAGE_ENDPOINT=http://127.0.0.1:$s3"
echo "GARAGE_REGION=garage"
echo "GARAGE_KEY_ID=$key_id"
echo "GARAGE_SECRET=$key_secret"
echo "GARAGE_PID=$pid"
