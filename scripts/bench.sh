#!/usr/bin/env bash
# Benchmark: assisto against what a user would otherwise pick, in one run.
#
# assisto-bench plays the homeserver: N transactions of M m.room.message events, one in
# flight as Synapse does, against
#   - assisto            (release build, SQLite, acknowledges after a durable commit),
#   - mautrix            (PyPI mautrix, bench/peers/mautrix/server.py, keeps nothing),
#   - matrix-appservice  (npm matrix-appservice, bench/peers/matrix-appservice/server.js,
#                         keeps nothing),
# each on a loopback port, one after another, a fresh process (and for assisto a fresh
# database) per M. It prints a markdown table and writes it, with the command, the date and
# the machine, between the markers of docs/benchmarks.md.
#
# Usage: scripts/bench.sh
# Environment (all optional):
#   BENCH_WORKLOADS  "M:N ..." pairs            (default "1:5000 10:2000 100:500")
#   BENCH_IMPLS      implementations to run     (default "assisto mautrix matrix-appservice")
#   BENCH_WARMUP     warm-up transactions       (default 20)
#   BENCH_OUT        the document to update     (default docs/benchmarks.md; "-" for none)
#   BENCH_WORK       work directory (databases, logs, raw results; must be a real disk,
#                    not tmpfs, or fsync means nothing)   (default target/bench-work)
#
# Everything listens on and talks to 127.0.0.1 only. No homeserver is needed: assisto's
# bot setup retries in the background against a port nobody listens on, and plain messages
# from @c_bench:localhost make it call no homeserver.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

WORKLOADS=${BENCH_WORKLOADS:-"1:5000 10:2000 100:500"}
IMPLS=${BENCH_IMPLS:-"assisto mautrix matrix-appservice"}
WARMUP=${BENCH_WARMUP:-20}
OUT=${BENCH_OUT:-docs/benchmarks.md}
WORK=${BENCH_WORK:-$ROOT/target/bench-work}
COMMAND="scripts/bench.sh"
[[ -n ${BENCH_WORKLOADS:-} ]] && COMMAND="BENCH_WORKLOADS=\"$WORKLOADS\" $COMMAND"
[[ -n ${BENCH_IMPLS:-} ]] && COMMAND="BENCH_IMPLS=\"$IMPLS\" $COMMAND"
[[ -n ${BENCH_WARMUP:-} ]] && COMMAND="BENCH_WARMUP=$WARMUP $COMMAND"

PYVENV=$ROOT/bench/.pyvenv
NODE_PEER=$ROOT/bench/peers/matrix-appservice
PY_PEER=$ROOT/bench/peers/mautrix
BENCH_BIN=$ROOT/target/release/assisto-bench
ASSISTO_BIN=$ROOT/target/release/assisto

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench.sh: %s\n' "$*" >&2; exit 1; }

for tool in cargo python3 node npm curl; do
    command -v "$tool" >/dev/null || die "$tool is needed"
done
for w in $WORKLOADS; do
    [[ $w =~ ^[0-9]+:[0-9]+$ ]] || die "BENCH_WORKLOADS: '$w' is not M:N"
done
for impl in $IMPLS; do
    case $impl in assisto|mautrix|matrix-appservice) ;; *) die "BENCH_IMPLS: unknown '$impl'" ;; esac
done

# --- build and install -------------------------------------------------------------------
log "building release binaries (assisto, assisto-bench)"
cargo build --release -p assisto-bench -p assisto-appservice

if [[ $IMPLS == *mautrix* ]]; then
    log "installing the mautrix peer into bench/.pyvenv"
    [[ -x $PYVENV/bin/python ]] || python3 -m venv "$PYVENV"
    "$PYVENV/bin/pip" install --quiet --disable-pip-version-check -r "$PY_PEER/requirements.txt"
fi
if [[ $IMPLS == *matrix-appservice* ]]; then
    log "installing the matrix-appservice peer (npm ci)"
    if [[ ! -f $NODE_PEER/node_modules/.package-lock.json ||
          $NODE_PEER/package-lock.json -nt $NODE_PEER/node_modules/.package-lock.json ]]; then
        (cd "$NODE_PEER" && npm ci --no-audit --no-fund --loglevel=error)
    fi
fi

# --- helpers -----------------------------------------------------------------------------
mkdir -p "$WORK"
FSTYPE=$(df --output=fstype "$WORK" 2>/dev/null | tail -1 || stat -f -c %T "$WORK")
[[ $FSTYPE == tmpfs || $FSTYPE == ramfs ]] &&
    log "warning: $WORK is on $FSTYPE: fsync is free there, assisto's figures would flatter it"
RUN_DIR=$(mktemp -d "$WORK/run.XXXXXX")
RESULTS=$RUN_DIR/results.jsonl
: >"$RESULTS"
SERVER_PID=""

stop_server() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Waits until URL answers 200 (at most 30 s) while the server process lives.
wait_ready() {
    local url=$1
    for _ in $(seq 1 300); do
        kill -0 "$SERVER_PID" 2>/dev/null || return 1
        curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

HS_TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
export BENCH_HS_TOKEN=$HS_TOKEN

# Starts IMPL for workload M; sets SERVER_PID, TARGET, PROCESSED_ARGS.
start_server() {
    local impl=$1 m=$2 port dir
    port=$(free_port)
    dir=$RUN_DIR/$impl-m$m
    mkdir -p "$dir"
    TARGET=http://127.0.0.1:$port
    case $impl in
    assisto)
        ASSISTO_APPSERVICE__BIND=127.0.0.1:$port \
        ASSISTO_APPSERVICE__AS_TOKEN=bench-as-token \
        ASSISTO_APPSERVICE__HS_TOKEN=$HS_TOKEN \
        ASSISTO_DATABASE__URL=sqlite://$dir/bench.db \
        ASSISTO_HOMESERVER__URL=http://127.0.0.1:$(free_port) \
        ASSISTO_HOMESERVER__SERVER_NAME=localhost \
            "$ASSISTO_BIN" run >"$dir/server.log" 2>&1 &
        SERVER_PID=$!
        PROCESSED_ARGS=(--processed-url "$TARGET/metrics" --processed-metric assisto_events_processed_total)
        wait_ready "$TARGET/metrics" || { tail -20 "$dir/server.log" >&2; die "assisto did not start"; }
        ;;
    mautrix)
        "$PYVENV/bin/python" "$PY_PEER/server.py" --port "$port" --hs-token "$HS_TOKEN" \
            >"$dir/server.log" 2>&1 &
        SERVER_PID=$!
        PROCESSED_ARGS=(--processed-url "$TARGET/processed")
        wait_ready "$TARGET/processed" || { tail -20 "$dir/server.log" >&2; die "the mautrix peer did not start"; }
        ;;
    matrix-appservice)
        node "$NODE_PEER/server.js" --port "$port" --hs-token "$HS_TOKEN" >"$dir/server.log" 2>&1 &
        SERVER_PID=$!
        PROCESSED_ARGS=(--processed-url "$TARGET/processed")
        wait_ready "$TARGET/processed" || { tail -20 "$dir/server.log" >&2; die "the matrix-appservice peer did not start"; }
        ;;
    esac
}

# --- run ---------------------------------------------------------------------------------
STARTED_AT=$(date -u '+%Y-%m-%d %H:%M UTC')
SECONDS=0
for w in $WORKLOADS; do
    m=${w%%:*} n=${w##*:}
    for impl in $IMPLS; do
        log "$impl: $n transactions of $m events"
        start_server "$impl" "$m"
        sleep 2 # let it settle: the RSS read before the warm-up is the idle RSS
        "$BENCH_BIN" --target "$TARGET" --transactions "$n" --events "$m" --warmup "$WARMUP" \
            "${PROCESSED_ARGS[@]}" --pid "$SERVER_PID" --label "$impl" --json |
            tee -a "$RESULTS" >&2
        stop_server
    done
done
log "all runs done in ${SECONDS}s; raw results in $RESULTS"

# --- report ------------------------------------------------------------------------------
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
MEM=$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)
MACHINE="$(nproc) cores (${CPU:-unknown CPU}), $MEM RAM, Linux $(uname -r), databases on $FSTYPE"
VERSIONS="assisto $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown) \
(release build); mautrix $("$PYVENV/bin/python" -c 'import mautrix; print(mautrix.__version__)' 2>/dev/null || echo '?') \
on Python $("$PYVENV/bin/python" -c 'import platform; print(platform.python_version())' 2>/dev/null || echo '?'); \
matrix-appservice $(node -p 'require(process.argv[1]).version' "$NODE_PEER/node_modules/matrix-appservice/package.json" 2>/dev/null || echo '?') \
on Node $(node --version)"

REPORT=$RUN_DIR/report.md
python3 - "$RESULTS" "$STARTED_AT" "$COMMAND" "$MACHINE" "$VERSIONS" "$WARMUP" >"$REPORT" <<'PY'
import json, sys

results_file, started, command, machine, versions, warmup = sys.argv[1:7]
rows = [json.loads(line) for line in open(results_file) if line.strip()]

def mb(kib):
    return "-" if kib is None else f"{kib / 1024:.1f} MB"

def fmt_rate(x):
    return f"{x:,.0f}"

print(f"Measured {started} with `{command}` ({warmup} warm-up transactions per run, not counted).")
print()
print(f"- Machine: {machine}.")
print(f"- Versions: {versions}.")
print("- assisto acknowledges a transaction only after a durable SQLite commit (WAL, `synchronous = FULL`);"
      " the mautrix and matrix-appservice peers keep nothing.")
print()
print("| implementation | M | N | txn/s | events/s | ack p50 | ack p99 | all processed after | RSS idle → after |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    processed = "-" if r["all_processed_s"] is None else f"{r['all_processed_s']:.2f} s"
    print(
        f"| {r['label']} | {r['events_per_transaction']} | {r['transactions']} "
        f"| {fmt_rate(r['transactions_per_s'])} | {fmt_rate(r['events_per_s'])} "
        f"| {r['ack_p50_ms']:.2f} ms | {r['ack_p99_ms']:.2f} ms | {processed} "
        f"| {mb(r['rss_before_kib'])} → {mb(r['rss_after_kib'])} |"
    )

# Where assisto is not ahead, say so.
print()
by = {}
for r in rows:
    by.setdefault(r["events_per_transaction"], {})[r["label"]] = r
behind = []
for m, impls in sorted(by.items()):
    a = impls.get("assisto")
    if not a:
        continue
    for other, o in impls.items():
        if other == "assisto":
            continue
        checks = [
            ("txn/s", a["transactions_per_s"] >= o["transactions_per_s"]),
            ("ack p50", a["ack_p50_ms"] <= o["ack_p50_ms"]),
            ("ack p99", a["ack_p99_ms"] <= o["ack_p99_ms"]),
            ("all processed after", (a["all_processed_s"] or 0) <= (o["all_processed_s"] or 0)),
        ]
        lost = [name for name, ok in checks if not ok]
        if lost:
            behind.append(f"M={m}: behind {other} on {', '.join(lost)}")
if behind:
    print("assisto is **not** ahead everywhere in this run: " + "; ".join(behind) + ".")
else:
    print("assisto is ahead of both peers on every row and every column of this run.")
idle = [r["rss_before_kib"] for r in rows if r["label"] == "assisto" and r["rss_before_kib"]]
if idle:
    print(f"assisto's idle RSS: {mb(max(idle))} at most (aim: under 30 MB).")
PY

cat "$REPORT"

if [[ $OUT != "-" ]]; then
    BEGIN='<!-- bench:begin (written by scripts/bench.sh) -->'
    END='<!-- bench:end -->'
    if [[ ! -f $OUT ]] || ! grep -qF "$BEGIN" "$OUT"; then
        { printf '# Benchmarks\n\n%s\n%s\n' "$BEGIN" "$END"; } >>"$OUT"
    fi
    python3 - "$OUT" "$REPORT" "$BEGIN" "$END" <<'PY'
import sys
out, report, begin, end = sys.argv[1:5]
doc = open(out).read()
head, rest = doc.split(begin, 1)
_, tail = rest.split(end, 1)
table = open(report).read().rstrip("\n")
open(out, "w").write(f"{head}{begin}\n{table}\n{end}{tail}")
PY
    log "wrote the table into $OUT"
fi
