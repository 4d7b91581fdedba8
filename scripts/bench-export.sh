#!/usr/bin/env bash
# Benchmark of the chat export: a client chat with 10,000 messages of real Synapse history,
# exported as CSV and PDF through the tools API; time to the first byte and to the whole
# file, size, and assisto's memory. Runs the real stack: Synapse from .venv (test profile,
# SQLite) and the release `assisto` binary in its own process; the load comes from
# target/release/export-bench (tests/src/bin/export_bench.rs). The table goes between the
# export-bench markers of docs/benchmarks.md.
#
# Usage: scripts/bench-export.sh
# Environment (optional): BENCH_MESSAGES (10000), BENCH_RUNS (3), BENCH_OUT
#   (docs/benchmarks.md; "-" for none)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/ensure-venv.sh
bash scripts/ensure-export-tools.sh
echo ">> building (release)"
cargo build --release --locked -p assisto-appservice -p assisto-tests --bin assisto --bin export-bench

OUT=${BENCH_OUT:-docs/benchmarks.md}
TABLE=$(mktemp)
trap 'rm -f "$TABLE"' EXIT
echo ">> running export-bench"
BENCH_OUT="$TABLE" target/release/export-bench
if [ "$OUT" != "-" ]; then
  python3 scripts/write_bench.py "$OUT" "$TABLE" export-bench scripts/bench-export.sh "Chat export" \
    BENCH_MESSAGES BENCH_RUNS
  echo ">> written to $OUT"
fi
