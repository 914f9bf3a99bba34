#!/usr/bin/env bash
# Runs bench_sql.py with psycopg from a venv under /tmp (created on first use).
#   loadtest/catalog/bench_sql.sh [--schema tessera_bench] [--reps 200] [--budget 60] [--only a,b]
set -euo pipefail
venv=${BENCH_VENV:-${TMPDIR:-/tmp}/tessera-bench-venv}
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import psycopg, httpx' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "psycopg[binary]" httpx
fi
exec "$venv/bin/python" "$(dirname "$0")/bench_sql.py" "$@"
