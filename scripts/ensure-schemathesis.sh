#!/usr/bin/env bash
# Creates .venv-contract with schemathesis from PyPI (pinned to 4.x) unless it is already
# there. Its own venv, so its dependencies never meet Synapse's (.venv). The contract test
# (tests/tests/it/contract.rs) runs it against every served OpenAPI document.
set -euo pipefail
cd "$(dirname "$0")/.."
SPEC='schemathesis==4.32.*'
if .venv-contract/bin/schemathesis --version 2>/dev/null | grep -q 'version 4\.32\.'; then
  exit 0
fi
echo ">> creating .venv-contract with $SPEC (first run only)"
python3 -m venv .venv-contract
.venv-contract/bin/pip install --quiet --upgrade pip
.venv-contract/bin/pip install --quiet "$SPEC"
.venv-contract/bin/schemathesis --version
