#!/usr/bin/env bash
# A local cluster on this machine: 2 API nodes behind nginx, 2 workers, on the machine's
# Redis (127.0.0.1:6379) and NATS (127.0.0.1:4222) under a key prefix of its own, so runs never
# collide with each other or with tests.
#
#   loadtest/cluster.sh up [NODE_ARGS...]   # start; prints the load balancer's URL
#   loadtest/cluster.sh down                # stop everything and remove the prefix's Redis keys
#
# NODE_ARGS go to every `tessera serve` (e.g. `--cache-bytes 0`, `--no-l2-cache`). Environment:
# TESSERA_BIN (default target/release/tessera), CLUSTER_DIR (state; default
# ${TMPDIR:-/tmp}/tessera-cluster), CLUSTER_SERVE (what the nodes serve; default `demo`, e.g.
# `catalog postgresql://user@127.0.0.1/db --write /shared/data`), CLUSTER_PORT (nginx; 8080),
# REDIS_URL, NATS_URL, NODES (2), WORKERS (2), NODE_PORT (first node's port; 8101),
# METRICS_PORT (first worker's /metrics; 9101).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${TESSERA_BIN:-$here/../target/release/tessera}
dir=${CLUSTER_DIR:-${TMPDIR:-/tmp}/tessera-cluster}
port=${CLUSTER_PORT:-8080}
redis=${REDIS_URL:-redis://127.0.0.1:6379/}
nats=${NATS_URL:-nats://127.0.0.1:4222}
nodes=${NODES:-2}
workers=${WORKERS:-2}
node_port=${NODE_PORT:-8101}
metrics_port=${METRICS_PORT:-9101}
read -r -a serve <<<"${CLUSTER_SERVE:-demo}"

wait_http() { # URL: until it answers 200, 60 s at most
  for _ in $(seq 600); do
    curl -fs -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "no answer from $1" >&2
  return 1
}

down() {
  [ -d "$dir" ] || return 0
  for pidfile in "$dir"/*.pid; do
    [ -e "$pidfile" ] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  sleep 1
  for pidfile in "$dir"/*.pid; do
    [ -e "$pidfile" ] || continue
    kill -9 "$(cat "$pidfile")" 2>/dev/null || true
  done
  if [ -f "$dir/prefix" ] && command -v redis-cli >/dev/null; then
    host=$(sed -E 's#redis://([^:/]+):?([0-9]*)/?.*#\1#' <<<"$redis")
    rport=$(sed -E 's#redis://[^:/]+:?([0-9]*)/?.*#\1#' <<<"$redis")
    redis-cli -h "$host" -p "${rport:-6379}" --scan --pattern "$(cat "$dir/prefix"):*" |
      xargs -r -n 500 redis-cli -h "$host" -p "${rport:-6379}" DEL >/dev/null
  fi
  rm -rf "$dir"
}

up() {
  down
  mkdir -p "$dir"
  prefix="cluster$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
  echo "$prefix" >"$dir/prefix"
  for i in $(seq 0 $((workers - 1))); do
    "$bin" worker --nats-url "$nats" --redis-url "$redis" --key-prefix "$prefix" \
      --metrics "127.0.0.1:$((metrics_port + i))" >"$dir/worker$i.log" 2>&1 &
    echo $! >"$dir/worker$i.pid"
  done
  upstream=""
  for i in $(seq 0 $((nodes - 1))); do
    p=$((node_port + i))
    "$bin" serve "${serve[@]}" --host 127.0.0.1 --port "$p" --redis-url "$redis" \
      --nats-url "$nats" --key-prefix "$prefix" "$@" >"$dir/node$i.log" 2>&1 &
    echo $! >"$dir/node$i.pid"
    upstream+="    server 127.0.0.1:$p;"$'\n'
  done
  for i in $(seq 0 $((workers - 1))); do wait_http "http://127.0.0.1:$((metrics_port + i))/metrics"; done
  for i in $(seq 0 $((nodes - 1))); do wait_http "http://127.0.0.1:$((node_port + i))/healthz"; done
  cat >"$dir/nginx.conf" <<CONF
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream tessera {
$upstream    keepalive 64;
  }
  server {
    listen 127.0.0.1:$port;
    client_max_body_size 0;
    proxy_buffering off;
    location / {
      proxy_pass http://tessera;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host:\$server_port;
      proxy_read_timeout 300s;
    }
  }
}
CONF
  nginx -c "$dir/nginx.conf" -p "$dir"
  wait_http "http://127.0.0.1:$port/healthz"
  echo "cluster $prefix: http://127.0.0.1:$port (nodes on $node_port.., workers' metrics on $metrics_port..; logs in $dir)"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  *) echo "usage: $0 up [NODE_ARGS...] | down" >&2; exit 2 ;;
esac
