#!/usr/bin/env bash
# Benchmark of the web embed: connections one assisto process holds, memory per idle
# connection, and the latency the bridge adds to a visitor's message (embed → counsellor's
# /sync, against the same puppet's message sent straight to Synapse, in the same run).
#
# Runs the real stack: Synapse from .venv (test profile, SQLite) and the release `assisto`
# binary in its own process; the load comes from target/release/embed-bench
# (tests/src/bin/embed_bench.rs). The table goes between the embed-bench markers of
# docs/benchmarks.md.
#
# Usage: scripts/bench-embed.sh
# Environment (optional): BENCH_CONNECTIONS (10000), BENCH_SESSIONS (20), BENCH_SAMPLES (200),
#   BENCH_OUT (docs/benchmarks.md; "-" for none)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/ensure-venv.sh
# Two sockets per connection on this machine (client and server): raise the soft limit.
ulimit -n "$(ulimit -Hn)" || true
echo ">> building (release)"
cargo build --release --locked -p assisto-appservice -p assisto-tests --bin assisto --bin embed-bench

OUT=${BENCH_OUT:-docs/benchmarks.md}
TABLE=$(mktemp)
trap 'rm -f "$TABLE"' EXIT
echo ">> running embed-bench"
BENCH_OUT="$TABLE" target/release/embed-bench

if [ "$OUT" != "-" ]; then
  python3 scripts/write_bench.py "$OUT" "$TABLE" embed-bench scripts/bench-embed.sh "The web embed" \
    BENCH_CONNECTIONS BENCH_SESSIONS BENCH_SAMPLES
  echo ">> written to $OUT"
fi
