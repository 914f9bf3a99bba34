#!/usr/bin/env bash
# One table, one run: the same scenario with the same clients against
#   (a) one embedded node, (b) the 2+2 cluster with both cache tiers off (every chunk decoded by
#   a worker), (c) the 2+2 cluster with L1 and Redis, (d) the same with L1 at 0 bytes (Redis
#   alone), (e) the real `tiled serve demo`.
# Usage: loadtest/cluster-bench.sh [SCENARIO] [CLIENTS] [SECONDS]   (default overlap 16 20)
# Needs a release build (cargo build --release --bin tessera --bin loadgen), nginx, and for (e)
# TILED_BIN (a `tiled` of version 0.2.20; skipped if unset). Uses the machine's Redis and NATS.
# The `stack` scenario serves a directory holding the full-size NeXus detector stack, written
# once into STACK_DIR by tests/fixtures/make_files.py with PYTHON (a Python with h5py, as the
# test venv); every server runs `serve directory` on it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
scenario=${1:-overlap}
clients=${2:-16}
seconds=${3:-20}
bin=${TESSERA_BIN:-$here/../target/release/tessera}
loadgen=${LOADGEN_BIN:-$here/../target/release/loadgen}
export TESSERA_BIN=$bin
run() { # LABEL URL METRICS...
  local label=$1 url=$2
  shift 2
  local m=()
  for page in "$@"; do m+=(--metrics "$page"); done
  # A short warm-up would hide the cold misses the cache must absorb: none.
  "$loadgen" --url "$url" --scenario "$scenario" --clients "$clients" --seconds "$seconds" \
    --label "$label" "${m[@]}" $header
  header=""
}
header=--header
if [ "$scenario" = stack ]; then
  stack_dir=${STACK_DIR:-${TMPDIR:-/tmp}/tessera-stack-bench}
  if [ ! -f "$stack_dir/raw/scan_0042.nxs" ]; then
    "${PYTHON:-python3}" "$here/../tests/fixtures/make_files.py" "$stack_dir" \
      --frames 60 --height 1065 --width 1030 >/dev/null
  fi
  serve=(directory "$stack_dir" --public)
  ready=/api/v1/metadata/raw/scan_0042/entry/instrument/detector/data
else
  serve=(demo)
  ready=/healthz
fi
export CLUSTER_SERVE="${serve[*]}"
wait_ready() { # BASE_URL...: until each serves the scenario's data, 5 min at most
  for base in "$@"; do
    for _ in $(seq 1500); do curl -fs -o /dev/null "$base$ready" && break; sleep 0.2; done
    curl -fs -o /dev/null "$base$ready"
  done
}
cluster_metrics=(http://127.0.0.1:8101/metrics http://127.0.0.1:8102/metrics
  http://127.0.0.1:9101/metrics http://127.0.0.1:9102/metrics)

"$bin" serve "${serve[@]}" --port 8201 >/dev/null 2>&1 &
embedded=$!
trap 'kill $embedded 2>/dev/null || true; "$here/cluster.sh" down' EXIT
wait_ready http://127.0.0.1:8201
run "(a) embedded" http://127.0.0.1:8201 http://127.0.0.1:8201/metrics
kill $embedded

"$here/cluster.sh" up --cache-bytes 0 --no-l2-cache >/dev/null
wait_ready http://127.0.0.1:8101 http://127.0.0.1:8102
run "(b) cluster, no cache" http://127.0.0.1:8080 "${cluster_metrics[@]}"
"$here/cluster.sh" up >/dev/null
wait_ready http://127.0.0.1:8101 http://127.0.0.1:8102
run "(c) cluster, L1+L2" http://127.0.0.1:8080 "${cluster_metrics[@]}"
"$here/cluster.sh" up --cache-bytes 0 >/dev/null
wait_ready http://127.0.0.1:8101 http://127.0.0.1:8102
run "(d) cluster, L2 only" http://127.0.0.1:8080 "${cluster_metrics[@]}"
"$here/cluster.sh" down

if [ -n "${TILED_BIN:-}" ]; then
  "$TILED_BIN" serve "${serve[@]}" --port 8202 >/dev/null 2>&1 &
  tiled=$!
  trap 'kill $tiled 2>/dev/null || true' EXIT
  until curl -fs -o /dev/null http://127.0.0.1:8202/api/v1/; do sleep 0.2; done
  wait_ready http://127.0.0.1:8202
  run "(e) tiled serve demo" http://127.0.0.1:8202
fi
