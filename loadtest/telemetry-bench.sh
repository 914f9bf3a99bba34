#!/usr/bin/env bash
# What metrics and traces cost: metadata req/s of `serve demo` (the `browse` scenario) with
# metrics on (the default), with metrics off (`metrics: {prometheus: false}`), and with
# traces exported for every request to an OTLP receiver on loopback. The runs alternate,
# ROUNDS times, so drift on a shared machine falls on every configuration alike.
#
#   loadtest/telemetry-bench.sh [CLIENTS] [SECONDS] [ROUNDS]
#
# TESSERA_BIN and LOADGEN_BIN default to the release builds; PYTHON must import
# opentelemetry-proto (tests/compat/requirements.txt).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
clients=${1:-16}
seconds=${2:-10}
rounds=${3:-3}
bin=${TESSERA_BIN:-$here/../target/release/tessera}
loadgen=${LOADGEN_BIN:-$here/../target/release/loadgen}
python=${PYTHON:-python3}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT

free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

sink_port=$(free_port)
"$python" "$here/../tests/compat/otlp_receiver.py" "$sink_port" >"$dir/sink.log" 2>&1 &

config() { # NAME PORT METRICS [OTLP]
  {
    echo "trees: [{path: /, tree: 'tiled.examples.generated:tree'}]"
    echo "uvicorn: {host: 127.0.0.1, port: $2}"
    echo "metrics: {prometheus: $3}"
    echo "authentication: {allow_anonymous_access: true}"
    if [ -n "${4:-}" ]; then
      echo "tessera: {otlp_endpoint: '$4', trace_sample_ratio: 1.0}"
    fi
  } >"$dir/$1.yml"
}

run() { # NAME: one run, prints its row
  local port
  port=$(free_port)
  case "$1" in
    metrics-on) config "$1" "$port" true ;;
    metrics-off) config "$1" "$port" false ;;
    traces-100) config "$1" "$port" true "http://127.0.0.1:$sink_port" ;;
  esac
  "$bin" serve config "$dir/$1.yml" >"$dir/$1.log" 2>&1 &
  local pid=$!
  for _ in $(seq 300); do curl -fs -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
  "$loadgen" --url "http://127.0.0.1:$port" --scenario browse --clients "$clients" \
    --seconds "$seconds" --label "$1" $header
  header=""
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

header=--header
for _ in $(seq "$rounds"); do
  for name in metrics-on metrics-off traces-100; do
    run "$name"
  done
done
kill %1 2>/dev/null || true
sleep 0.5
cat "$dir/sink.log"
