#!/usr/bin/env bash
# Benchmark of the search: 1,000,000 generated German messages indexed into the embedded
# index (messages per second, size on disk, peak memory), one-, two- and prefix-word
# queries at that size (p50/p99), and in the same run the same queries against Synapse's
# `/search` on as many of the same messages as Synapse takes in a few minutes (with
# assisto's own search route and an in-process index of exactly those messages beside
# it). Runs the real stack for that part: Synapse from .venv (test profile, SQLite) and
# the release `assisto` binary in its own process; everything comes from
# target/release/search-bench (tests/src/bin/search_bench.rs). The tables go between the
# search-bench markers of docs/benchmarks.md.
#
# Usage: scripts/bench-search.sh
# Environment (optional): BENCH_MESSAGES (1000000), BENCH_ROOMS (2000),
#   BENCH_COUNSELLOR_ROOMS (50), BENCH_RUNS (200), BENCH_COMMIT_EVERY (10000),
#   BENCH_SYNAPSE_MESSAGES (20000; 0 skips Synapse), BENCH_SYNAPSE_SECONDS (240),
#   BENCH_SYNAPSE_ROOMS (10), BENCH_SYNAPSE_RUNS (100), BENCH_SYNAPSE_IN_FLIGHT (4),
#   BENCH_OUT (docs/benchmarks.md; "-" for none)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/ensure-venv.sh
echo ">> building (release)"
cargo build --release --locked -p assisto-appservice -p assisto-tests --bin assisto --bin search-bench

OUT=${BENCH_OUT:-docs/benchmarks.md}
TABLE=$(mktemp)
trap 'rm -f "$TABLE"' EXIT
echo ">> running search-bench"
BENCH_OUT="$TABLE" target/release/search-bench
if [ "$OUT" != "-" ]; then
  python3 scripts/write_bench.py "$OUT" "$TABLE" search-bench scripts/bench-search.sh "Search" \
    BENCH_MESSAGES BENCH_ROOMS BENCH_COUNSELLOR_ROOMS BENCH_RUNS BENCH_COMMIT_EVERY \
    BENCH_SYNAPSE_MESSAGES BENCH_SYNAPSE_SECONDS BENCH_SYNAPSE_ROOMS BENCH_SYNAPSE_RUNS BENCH_SYNAPSE_IN_FLIGHT
  echo ">> written to $OUT"
fi
