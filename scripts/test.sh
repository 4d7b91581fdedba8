#!/usr/bin/env bash
# `make test`: installs what the tests need (Synapse in .venv, Chromium and ChromeDriver,
# axe-core, schemathesis, the emoji font and pdftotext for exports), then runs every test
# against a real Synapse:
# the whole suite with SQLite as the project's database, then the integration suite again
# with PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-venv.sh
bash scripts/ensure-browser.sh
bash scripts/ensure-schemathesis.sh
bash scripts/ensure-export-tools.sh
echo ">> building"
cargo build --workspace --all-targets --locked

echo ">> tests (project database: SQLite)"
cargo test --workspace --locked

PGDIR=$(mktemp -d /tmp/assisto-test-pg.XXXXXX)
chmod 755 "$PGDIR"  # the postgres user must reach its cluster inside
PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { bash scripts/test-postgres.sh stop "$PGDIR/cluster" >/dev/null 2>&1 || true; rm -rf "$PGDIR"; }
trap cleanup EXIT
PGURL=$(bash scripts/test-postgres.sh start "$PGDIR/cluster" "$PGPORT")
echo ">> integration tests (project database: PostgreSQL)"
TEST_POSTGRES_URL="$PGURL" cargo test --locked -p assisto-tests --test it
