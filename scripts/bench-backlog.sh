#!/usr/bin/env bash
# Benchmark: memory while working off a long backlog (issue 15, finding 5).
#
# 1. assisto starts with processing paused (ASSISTO_PROCESSING__PAUSED=true) on a fresh
#    SQLite database, and assisto-bench pushes BENCH_BACKLOG events (transactions of 100)
#    into it: all recorded, none processed.
# 2. assisto restarts with processing on; the processed counter is read every 100 ms
#    until it reaches the backlog. The report gives the RSS of the paused process after
#    recording, the peak RSS of the working one (VmHWM), and the time from its start.
#
# The processor reads the inbox through a bounded window (processing.window_events,
# processing.window_bytes), so the peak should not depend on the backlog's length: run it
# with two lengths to see (BENCH_BACKLOG="20000 200000", the default).
#
# Usage: scripts/bench-backlog.sh     (make bench-backlog)
# Environment: BENCH_BACKLOG (event counts, default "20000 200000"), BENCH_WORK (default
# target/bench-work).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BACKLOGS=${BENCH_BACKLOG:-"20000 200000"}
WORK=${BENCH_WORK:-$ROOT/target/bench-work}
BENCH_BIN=$ROOT/target/release/assisto-bench
ASSISTO_BIN=$ROOT/target/release/assisto

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench-backlog.sh: %s\n' "$*" >&2; exit 1; }
for b in $BACKLOGS; do
    [[ $b =~ ^[0-9]+$ && $((b % 100)) -eq 0 && $b -gt 0 ]] || die "BENCH_BACKLOG: '$b' is not a positive multiple of 100"
done

log "building release binaries (assisto, assisto-bench)"
cargo build --release -p assisto-bench -p assisto-appservice

mkdir -p "$WORK"
RUN_DIR=$(mktemp -d "$WORK/backlog.XXXXXX")
PID=""
stop() {
    if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    PID=""
}
trap stop EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
HS_TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
export BENCH_HS_TOKEN=$HS_TOKEN

# start DB PAUSED: starts assisto on database DB; sets PID and URL.
start() {
    local db=$1 paused=$2 port
    port=$(free_port)
    URL=http://127.0.0.1:$port
    ASSISTO_APPSERVICE__BIND=127.0.0.1:$port \
    ASSISTO_APPSERVICE__AS_TOKEN=bench-as-token \
    ASSISTO_APPSERVICE__HS_TOKEN=$HS_TOKEN \
    ASSISTO_DATABASE__URL=sqlite://$db \
    ASSISTO_HOMESERVER__URL=http://127.0.0.1:$(free_port) \
    ASSISTO_HOMESERVER__SERVER_NAME=localhost \
    ASSISTO_PROCESSING__PAUSED=$paused \
        "$ASSISTO_BIN" run >>"$RUN_DIR/server.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null "$URL/metrics" 2>/dev/null && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    tail -20 "$RUN_DIR/server.log" >&2
    die "assisto did not start"
}

processed() {
    curl -fsS "$URL/metrics" | awk '/^assisto_events_processed_total/ {s += $NF} END {printf "%d\n", s}'
}
rss() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status"; }

hwm() { awk '/^VmHWM/ {print $2}' "/proc/$PID/status"; }

ROWS=()
for backlog in $BACKLOGS; do
    db=$RUN_DIR/backlog-$backlog.db
    log "recording $backlog events with processing paused"
    start "$db" true
    "$BENCH_BIN" --target "$URL" --transactions $((backlog / 100)) --events 100 --warmup 0 >/dev/null
    before=$(rss)
    stop
    log "working them off"
    began=$(date +%s.%N)
    start "$db" false
    until [[ $(processed) -ge $backlog ]]; do
        kill -0 "$PID" 2>/dev/null || die "assisto stopped while working off the backlog"
        sleep 0.1
    done
    took=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$began" "$(date +%s.%N)")
    peak=$(hwm)
    stop
    ROWS+=("| $backlog | $(python3 -c "print(f'{$before/1024:.1f} MB')") | $(python3 -c "print(f'{$peak/1024:.1f} MB')") | $took s |")
done

echo
echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') with \`scripts/bench-backlog.sh\` (assisto $(git describe --always --dirty 2>/dev/null || echo unknown), release build, SQLite)."
echo
echo "| backlog (events) | RSS after recording it (paused) | RSS peak while working it off (VmHWM) | start and work-off took |"
echo "| ---: | ---: | ---: | ---: |"
printf '%s\n' "${ROWS[@]}"
