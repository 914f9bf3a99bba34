#!/usr/bin/env bash
# What authentication costs: the `browse` scenario (root page, a filtered search, node
# metadata) against the demo tree served with one login provider, by anonymous clients, with
# an API key and with an access token; and the same scenario on `serve demo` (no
# authentication at all) as the reference. One table.
# Usage: loadtest/auth-bench.sh [CLIENTS] [SECONDS]   (default 16 10)
# Needs a release build (cargo build --release --bin tessera --bin loadgen) and curl, python3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
clients=${1:-16}
seconds=${2:-10}
bin=${TESSERA_BIN:-$here/../target/release/tessera}
loadgen=${LOADGEN_BIN:-$here/../target/release/loadgen}
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { # URL
  for _ in $(seq 100); do curl -sf "$1/healthz" >/dev/null && return; sleep 0.1; done
  echo "no answer from $1" >&2; exit 1
}
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

plain=$(free_port)
"$bin" serve demo --host 127.0.0.1 --port "$plain" >"$dir/plain.log" 2>&1 &
pids+=($!)
multi=$(free_port)
cat >"$dir/config.yml" <<YAML
trees: [{path: /, tree: "tiled.examples.generated:tree"}]
authentication:
  providers:
    - provider: local
      authenticator: tiled.authenticators:DictionaryAuthenticator
      args: {users_to_passwords: {bench: bench-password}}
  secret_keys: [bench-signing-key]
  allow_anonymous_access: true
database: {uri: "sqlite:///$dir/auth.db", init_if_not_exists: true}
uvicorn: {host: 127.0.0.1, port: $multi}
YAML
"$bin" serve config "$dir/config.yml" >"$dir/multi.log" 2>&1 &
pids+=($!)
wait_ready "http://127.0.0.1:$plain"
wait_ready "http://127.0.0.1:$multi"
api="http://127.0.0.1:$multi/api/v1"
token=$(curl -sf -d 'username=bench&password=bench-password' "$api/auth/provider/local/token" | field access_token)
key=$(curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d '{}' \
  "$api/auth/apikey" | field secret)

run() { # LABEL PORT ARGS...
  local label=$1 port=$2
  shift 2
  "$loadgen" --url "http://127.0.0.1:$port" --scenario browse --clients "$clients" \
    --seconds "$seconds" --label "$label" $header "$@"
  header=""
}
header=--header
run "serve demo (no authentication)" "$plain"
run "multi-user, anonymous" "$multi"
run "multi-user, API key" "$multi" --api-key "$key"
run "multi-user, access token" "$multi" --bearer "$token"
