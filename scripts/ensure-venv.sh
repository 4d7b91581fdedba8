#!/usr/bin/env bash
# Creates .venv with Synapse from PyPI (pinned to 1.163.x) unless it is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
SYNAPSE_SPEC='matrix-synapse==1.163.*'
link_module() {
  # Makes the project's Synapse modules (synapse_module/, synapse_erasure/) importable in
  # the venv.
  local site
  site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  printf '%s\n' "$PWD/synapse_module" "$PWD/synapse_erasure" >"$site/assisto_synapse.pth"
}
if .venv/bin/python -c 'import synapse, sys; sys.exit(0 if synapse.__version__.startswith("1.163.") else 1)' 2>/dev/null; then
  link_module
  exit 0
fi
echo ">> creating .venv with $SYNAPSE_SPEC (first run only)"
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
# psycopg2 lets operators try Synapse on PostgreSQL from the same venv.
.venv/bin/pip install --quiet "$SYNAPSE_SPEC" 'psycopg2-binary>=2.9'
link_module
.venv/bin/python -c 'import synapse; print(">> Synapse", synapse.__version__)'
