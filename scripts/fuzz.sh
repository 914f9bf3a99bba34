#!/usr/bin/env bash
# Fuzzes tessera's parsers and decoders with cargo fuzz (libFuzzer), one target at a time.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Runs each target (all of them unless some are named) for SECONDS_PER_TARGET seconds
# (default 120), starting from the committed corpus (fuzz/corpus/<target>/), the inputs that
# once crashed (fuzz/regressions/<target>/) and what earlier runs learnt (kept, uncommitted,
# in fuzz/artifacts/corpus/<target>/). Prints the executions and crashes of each target and
# exits non-zero if one crashed; the crashing input is in fuzz/artifacts/<target>/ and the
# fuzzer's output in fuzz/artifacts/<target>.log. Reproduce a crash with
# `cargo fuzz run <target> fuzz/artifacts/<target>/<file>` (with the flags below), then add
# the input to fuzz/regressions/<target>/ so `cargo test` replays it. To grow the committed
# corpus by the inputs that add coverage (small), run the target's binary with
# `-merge=1 fuzz/corpus/<target> fuzz/artifacts/corpus/<target>`.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-120}
shift || true

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

# cargo fuzz passes compiler flags that only nightly compilers accept; the pinned stable
# compiler accepts them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
# No sanitizer: tessera's code forbids `unsafe`, so the bugs to find are panics, arithmetic
# overflows (cargo fuzz builds with debug assertions), unbounded allocations (libFuzzer's
# RSS limit) and hangs (its timeout), which libFuzzer reports by itself. AddressSanitizer
# would watch only the C libraries linked in, at about twice the cost per execution, and needs
# the standard library rebuilt. More codegen units: a faster build of the large dependency
# tree for slightly slower executions.
flags=(--sanitizer none --codegen-units 16)

# The longest input each target gets: request parts are short; files need room for a header,
# a few variables or pages and their data.
max_len() {
  case $1 in
    slice_parser | query_filters) echo 1024 ;;
    metadata_patch | json_body | msgpack_body) echo 4096 ;;
    npy_header | bitshuffle_lz4 | gzip_shuffle) echo 8192 ;;
    arrow_ipc_upload | zarr_metadata | netcdf3_header | tiff) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

# Built before the clock starts (the targets share one build of the dependencies).
if [ ${#targets[@]} -eq 1 ]; then
  cargo fuzz build "${flags[@]}" "${targets[0]}"
else
  cargo fuzz build "${flags[@]}"
fi

status=0
total=0
summary=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/artifacts/corpus/$t" "fuzz/artifacts/$t"
  # libFuzzer adds what it learns to the first directory only.
  dirs=("fuzz/artifacts/corpus/$t" "fuzz/corpus/$t")
  [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
  log="fuzz/artifacts/$t.log"
  echo "== $t: ${seconds}s, max_len $(max_len "$t")"
  start=$(date +%s)
  rc=0
  cargo fuzz run "${flags[@]}" "$t" "${dirs[@]}" -- \
    -max_total_time="$seconds" -max_len="$(max_len "$t")" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1 || rc=$?
  took=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  # A crash stops libFuzzer before it prints its final stats: take the last status line.
  if [ -z "$execs" ]; then
    execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  fi
  execs=${execs:-0}
  crashes=0
  if [ "$rc" -ne 0 ]; then
    crashes=1
    status=1
    echo "$t CRASHED (exit $rc); see $log and fuzz/artifacts/$t/"
    grep -E "panicked at|ERROR: libFuzzer|Test unit written|==[0-9]+== ERROR" "$log" | head -5 || true
  fi
  total=$((total + execs))
  summary+=("$(printf '%-18s %6ss %12s execs %2s crashes' "$t" "$took" "$execs" "$crashes")")
done

echo
printf '%s\n' "${summary[@]}"
echo "total executions: $total"
exit $status
