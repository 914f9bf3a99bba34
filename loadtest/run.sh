#!/usr/bin/env bash
# Loads one server (tessera or the real Tiled, same requests) with wrk and prints a table:
# scenario, requests/s, p50, p99, transfer/s. Compare two servers by running it against each
# in the same session. Usage: loadtest/run.sh http://127.0.0.1:8000 [seconds] [connections]
# Needs wrk (Debian package wrk).
set -euo pipefail
base=${1:?usage: loadtest/run.sh BASE_URL [seconds] [connections]}
seconds=${2:-10}
conns=${3:-16}
here=$(dirname "$0")
printf '| scenario | req/s | p50 | p99 | transfer/s |\n|---|---|---|---|---|\n'
while IFS='|' read -r name accept path; do
  [ -z "$name" ] || [ "${name:0:1}" = "#" ] && continue
  hdr=()
  [ -n "$accept" ] && hdr=(-H "Accept: $accept")
  out=$(wrk -t2 -c"$conns" -d"${seconds}s" --latency "${hdr[@]}" "$base$path" 2>&1)
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  tps=$(awk '/Transfer\/sec/ {print $2}' <<<"$out")
  printf '| %s | %s | %s | %s | %s |\n' "$name" "$rps" "$p50" "$p99" "$tps"
done < "$here/scenarios.txt"
