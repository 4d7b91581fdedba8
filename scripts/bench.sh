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
FLOOR_BIN=$ROOT/target/release/fsync-floor
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
FLOORS=$RUN_DIR/floors.jsonl
: >"$RESULTS"
: >"$FLOORS"
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
        EXTRA=()
        if [[ $impl == assisto ]]; then
            # The floor, right before assisto's run, on the disk of its database: append a
            # WAL frame's worth and fdatasync, 2,000 times.
            "$FLOOR_BIN" --dir "$RUN_DIR" |
                python3 -c 'import json,sys; r=json.load(sys.stdin); r["m"]=int(sys.argv[1]); print(json.dumps(r))' "$m" |
                tee -a "$FLOORS" >&2
            # Then the last 1,000 transactions once more: replays, answered without the disk.
            EXTRA=(--replays 1000)
        fi
        start_server "$impl" "$m"
        sleep 2 # let it settle: the RSS read before the warm-up is the idle RSS
        "$BENCH_BIN" --target "$TARGET" --transactions "$n" --events "$m" --warmup "$WARMUP" \
            "${PROCESSED_ARGS[@]}" --pid "$SERVER_PID" --label "$impl" --json "${EXTRA[@]}" |
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
python3 - "$RESULTS" "$STARTED_AT" "$COMMAND" "$MACHINE" "$VERSIONS" "$WARMUP" "$FLOORS" >"$REPORT" <<'PY'
import json, sys

results_file, started, command, machine, versions, warmup, floors_file = sys.argv[1:8]
rows = [json.loads(line) for line in open(results_file) if line.strip()]
floors = {f["m"]: f for f in (json.loads(line) for line in open(floors_file) if line.strip())}

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

# The floor and assisto against it.
print()
print("The floor, measured right before each assisto row on the same disk (`fsync-floor`: append 4,120 bytes, `fdatasync`, 2,000 times), "
      "and assisto's acknowledgements against it; \"replayed\" is the same service answering its last 1,000 transactions again, "
      "which it recognises without touching the disk (HTTP and parsing alone).")
print()
print("| M | floor p50 | floor p99 | assisto ack p50 | ÷ floor | assisto ack p99 | ÷ floor | replayed p50 / p99 |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    if r["label"] != "assisto" or r["events_per_transaction"] not in floors:
        continue
    f = floors[r["events_per_transaction"]]
    rep = "-" if r.get("replay_ack_p50_ms") is None else f"{r['replay_ack_p50_ms']:.2f} / {r['replay_ack_p99_ms']:.2f} ms"
    print(f"| {r['events_per_transaction']} | {f['p50_ms']:.2f} ms | {f['p99_ms']:.2f} ms | {r['ack_p50_ms']:.2f} ms "
          f"| {r['ack_p50_ms'] / f['p50_ms']:.2f}× | {r['ack_p99_ms']:.2f} ms | {r['ack_p99_ms'] / f['p99_ms']:.2f}× | {rep} |")

# The aims, each met or not.
by = {}
for r in rows:
    by.setdefault(r["events_per_transaction"], {})[r["label"]] = r
aims = []
def aim(text, ok, detail):
    aims.append(f"- {'met' if ok else '**not met**'}: {text} ({detail})")
one = by.get(1, {}).get("assisto")
if one and 1 in floors:
    f = floors[1]
    aim("M=1 ack p50 at most 1.25× the floor's p50", one["ack_p50_ms"] <= 1.25 * f["p50_ms"],
        f"{one['ack_p50_ms'] / f['p50_ms']:.2f}×")
    aim("M=1 ack p99 at most 2× the floor's p99", one["ack_p99_ms"] <= 2 * f["p99_ms"],
        f"{one['ack_p99_ms'] / f['p99_ms']:.2f}×")
for m in (10, 100):
    a = by.get(m, {}).get("assisto")
    peers = {k: v for k, v in by.get(m, {}).items() if k != "assisto"}
    if not a or not peers:
        continue
    best = max(peers.values(), key=lambda o: o["events_per_s"])
    aim(f"M={m} events/s ahead of both peers", all(a["events_per_s"] > o["events_per_s"] for o in peers.values()),
        f"{a['events_per_s']:,.0f} against {best['label']}'s {best['events_per_s']:,.0f}")
    low = min(peers.values(), key=lambda o: o["ack_p99_ms"])
    aim(f"M={m} ack p99 below both peers'", all(a["ack_p99_ms"] < o["ack_p99_ms"] for o in peers.values()),
        f"{a['ack_p99_ms']:.2f} ms against {low['label']}'s {low['ack_p99_ms']:.2f} ms")
idle = [r["rss_before_kib"] for r in rows if r["label"] == "assisto" and r["rss_before_kib"]]
if idle:
    aim("idle RSS under 20 MB", max(idle) < 20 * 1024, f"{mb(max(idle))} at most")
loaded = by.get(100, {}).get("assisto")
if loaded and loaded.get("rss_peak_kib"):
    aim("RSS under the 100-event workload under 40 MB", loaded["rss_peak_kib"] < 40 * 1024,
        f"peak {mb(loaded['rss_peak_kib'])}")
if aims:
    print()
    print("The aims (issue 15), in this run:")
    print()
    print("\n".join(aims))
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
