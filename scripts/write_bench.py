#!/usr/bin/env python3
"""Writes a benchmark's table into docs/benchmarks.md between its markers, with when, on
what machine and at which revision it was measured.

    write_bench.py OUT TABLE_FILE NAME SCRIPT SECTION ENV_VAR...

NAME names the markers (`<!-- NAME:begin … -->`); SECTION is the heading added when the
markers are not there yet; the ENV_VARs that are set are named in the header.
"""
import datetime
import os
import platform
import subprocess
import sys

out, table_file, name, script, section, *env_vars = sys.argv[1:]
table = open(table_file).read().strip()
rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) // 1024 // 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
env = {k: os.environ.get(k) for k in env_vars if os.environ.get(k)}
head = (f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC with `{script}`"
        + (f" ({', '.join(f'{k}={v}' for k, v in env.items())})" if env else "") + ".\n\n"
        + f"- Machine: {os.cpu_count()} cores ({cpu}), {mem} GiB RAM, Linux {platform.release()}.\n"
        + f"- assisto {rev} (release build), Synapse from .venv (test profile, SQLite), all on loopback.\n\n")
doc = open(out).read()
begin, end = f"<!-- {name}:begin (written by {script}) -->", f"<!-- {name}:end -->"
block = f"{begin}\n{head}{table}\n{end}"
if begin in doc:
    doc = doc[:doc.index(begin)] + block + doc[doc.index(end) + len(end):]
else:
    doc = doc.rstrip() + f"\n\n## {section}\n\n" + block + "\n"
open(out, "w").write(doc)
