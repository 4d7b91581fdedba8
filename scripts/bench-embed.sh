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
  python3 - "$OUT" "$TABLE" <<'PY'
import datetime, os, platform, subprocess, sys
out, table = sys.argv[1], open(sys.argv[2]).read().strip()
rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) // 1024 // 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
env = {k: os.environ.get(k) for k in ("BENCH_CONNECTIONS", "BENCH_SESSIONS", "BENCH_SAMPLES") if os.environ.get(k)}
head = (f"Measured {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC with `scripts/bench-embed.sh`"
        + (f" ({', '.join(f'{k}={v}' for k, v in env.items())})" if env else "") + ".\n\n"
        + f"- Machine: {os.cpu_count()} cores ({cpu}), {mem} GiB RAM, Linux {platform.release()}.\n"
        + f"- assisto {rev} (release build), Synapse from .venv (test profile, SQLite), all on loopback.\n\n")
doc = open(out).read()
begin, end = "<!-- embed-bench:begin (written by scripts/bench-embed.sh) -->", "<!-- embed-bench:end -->"
block = f"{begin}\n{head}{table}\n{end}"
if begin in doc:
    doc = doc[:doc.index(begin)] + block + doc[doc.index(end) + len(end):]
else:
    doc = doc.rstrip() + "\n\n## The web embed\n\n" + block + "\n"
open(out, "w").write(doc)
PY
  echo ">> written to $OUT"
fi
