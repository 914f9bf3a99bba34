#!/usr/bin/env bash
# Runs `tessera serve demo` (release build) on a fresh machine: installs the system packages
# it builds against first. Extra arguments go to `serve demo`, e.g. ./demo.sh --port 8001
set -euo pipefail
cd "$(dirname "$0")"
scripts/system-deps.sh
exec cargo run --release --bin tessera -- serve demo "$@"
