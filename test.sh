#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what it needs (Debian packages, a Python
# venv with the real Tiled client), checks formatting and lints, runs the Rust tests, then the
# compatibility suite that drives a running `tessera serve demo` with the Tiled client.
set -euo pipefail
cd "$(dirname "$0")"

scripts/system-deps.sh
# The catalog tests talk to a real PostgreSQL on 127.0.0.1:5432 (database `test`).
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && [ -d /etc/postgresql ]; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi
# The cluster tests use the machine's Redis (127.0.0.1:6379) and NATS (127.0.0.1:4222) under
# key prefixes of their own (and private instances for the fault tests).
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break; sleep 0.1; done
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
cargo build --bin tessera --bin loadgen

# The compatibility suite: the real Tiled client against a running `tessera serve demo`,
# the replay of the golden answers of the real Tiled server, and malformed requests.
venv=${TESSERA_TEST_VENV:-$HOME/.cache/tessera/test-venv}
if [ ! -x "$venv/bin/python" ] || ! cmp -s tests/compat/requirements.txt "$venv/.requirements"; then
  echo "creating the test venv in $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r tests/compat/requirements.txt
  cp tests/compat/requirements.txt "$venv/.requirements"
fi

target_dir=$(cargo metadata --format-version 1 --no-deps | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
TESSERA_BIN="$target_dir/debug/tessera" LOADGEN_BIN="$target_dir/debug/loadgen" "$venv/bin/python" -m pytest tests/compat -q -rsx "$@"
