#!/usr/bin/env bash
# Benchmark of the live-chat desk: visitors arriving within a minute, counsellors taking
# their chats; time to visible and to taken (p50/p99), races lost, queue-position updates
# delivered per second.
#
# Runs the real stack: Synapse from .venv (test profile, SQLite) and the release `assisto`
# binary in its own process; the load comes from target/release/live-bench
# (tests/src/bin/live_bench.rs). The table goes between the live-bench markers of
# docs/benchmarks.md.
#
# Usage: scripts/bench-live.sh
# Environment (optional): BENCH_VISITORS (1000), BENCH_SECONDS (60), BENCH_COUNSELLORS (20),
#   BENCH_OUT (docs/benchmarks.md; "-" for none), BENCH_SYNAPSE_LOG (a file to copy
#   Synapse's log to, with the time of each request), BENCH_POSTGRES=1 (Synapse and assisto
#   on a throw-away PostgreSQL cluster, the production set-up, instead of SQLite),
#   BENCH_TAKE=join (counsellors take by joining from the Live space, not in the widget)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/ensure-venv.sh
ulimit -n "$(ulimit -Hn)" || true
echo ">> building (release)"
cargo build --release --locked -p assisto-appservice -p assisto-tests --bin assisto --bin live-bench

OUT=${BENCH_OUT:-docs/benchmarks.md}
TABLE=$(mktemp)
PGDIR=$(mktemp -d) && chmod 755 "$PGDIR"
trap 'rm -f "$TABLE"; [ "${BENCH_POSTGRES:-}" = 1 ] && bash scripts/test-postgres.sh stop "$PGDIR/pg"; rm -rf "$PGDIR"' EXIT
if [ "${BENCH_POSTGRES:-}" = 1 ]; then
  echo ">> starting PostgreSQL for Synapse and assisto"
  PGURL=$(bash scripts/test-postgres.sh start "$PGDIR/pg" "${BENCH_PG_PORT:-55499}" | tail -n1)
  # Synapse wants its own database with C collation.
  psql "$PGURL" -qc "CREATE DATABASE synapse TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
  export TEST_POSTGRES_URL="$PGURL" TEST_SYNAPSE_POSTGRES_URL="${PGURL%/*}/synapse"
fi
echo ">> running live-bench"
BENCH_OUT="$TABLE" target/release/live-bench

if [ "$OUT" != "-" ]; then
  python3 scripts/write_bench.py "$OUT" "$TABLE" live-bench scripts/bench-live.sh "The live-chat desk" \
    BENCH_VISITORS BENCH_SECONDS BENCH_COUNSELLORS BENCH_POSTGRES BENCH_TAKE
  echo ">> written to $OUT"
fi
