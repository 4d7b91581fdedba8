#!/usr/bin/env bash
# `make run`: the whole system on this machine, on embedded defaults.
# Synapse (SQLite) on :8008, assisto (SQLite) on :8009, data in .dev/. Ctrl-C stops both.
# A second run reuses the data and rewrites what this script owns (.dev/assisto.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEV=$ROOT/.dev
HS_PORT=8008
AS_PORT=8009
mkdir -p "$DEV"
chmod 700 "$DEV"

for port in $HS_PORT $AS_PORT; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "Port $port is already in use. Is another 'make run' still running?" >&2
    exit 1
  fi
done

bash scripts/ensure-venv.sh
# Emoji in PDF exports (fonts-noto-color-emoji); without it exports still work.
bash scripts/ensure-export-tools.sh || echo ">> could not install fonts-noto-color-emoji: PDF exports draw emoji with DejaVu Sans" >&2
echo ">> building assisto (release)"
cargo build --release --quiet -p assisto-appservice

# Development secrets, generated once, never committed.
if [ ! -f "$DEV/secrets.env" ]; then
  umask 077
  printf 'MODULE_TOKEN=%s\nADMIN_API_TOKEN=%s\n' \
    "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
    "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$DEV/secrets.env"
  umask 022
fi
# shellcheck disable=SC1091
. "$DEV/secrets.env"

# The homeserver config, rewritten at every run too (its secrets and signing key are kept),
# so that an older .dev/ gets the settings the rules and the deletion routine rely on.
echo ">> writing the homeserver config (with the assisto rules module)"
module=$(printf '{"module":"assisto_synapse.AssistoRules","config":{"timeout_seconds":5,"backends":[{"url":"http://127.0.0.1:%s","token":"%s","bot":"@assisto:localhost","users":"@.*:localhost","puppets":"@(rs_|guest_).+:localhost"}]}}' "$AS_PORT" "$MODULE_TOKEN")
.venv/bin/python scripts/synapse_config.py --dir "$DEV/synapse" --port $HS_PORT \
  --registration "$ROOT/registration.yaml" --profile dev --module "$module" >/dev/null

# assisto's configuration, rewritten at every run so that older .dev/ directories are
# upgraded: everything the service and the CLI need, the development secrets included, so
# that `ASSISTO_CONFIG=.dev/assisto.yaml target/release/assisto …` works on its own.
write_assisto_config() {
  local tmp="$DEV/assisto.yaml.tmp"
  (
    umask 077
    cat >"$tmp" <<YAML
# Written by scripts/run.sh at every \`make run\`: changes here are overwritten. It holds the
# development secrets (mode 0600, never committed). See docs/operations.md for every field.
homeserver:
  url: http://127.0.0.1:$HS_PORT
  server_name: localhost
  admin_token: '$1'
appservice:
  bind: 127.0.0.1:$AS_PORT
  registration: '$ROOT/registration.yaml'
  public_url: http://localhost:$AS_PORT
  module_token: '$MODULE_TOKEN'
  admin_api_token: '$ADMIN_API_TOKEN'
database:
  url: 'sqlite://$DEV/assisto.db'
files:
  dir: '$DEV/files'
logging:
  format: text
  level: info
YAML
  )
  chmod 600 "$tmp"
  mv -f "$tmp" "$DEV/assisto.yaml"
}

# Synapse and assisto run in sessions of their own (setsid): the SIGINT the terminal sends
# to its foreground process group on Ctrl-C reaches only this script (and make), whose trap
# then stops them with SIGTERM. Otherwise they would die of the SIGINT themselves, and the
# `wait -n` below would take that for a crash.
pids=()
cleanup() {
  local status=${1:-0}
  trap - INT TERM HUP EXIT
  echo
  echo ">> stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo ">> stopped. Data stays in .dev/ (delete it to start over)."
  exit "$status"
}
trap 'cleanup 0' INT TERM HUP
trap 'cleanup $?' EXIT

echo ">> starting Synapse (log: .dev/synapse/homeserver.log)"
setsid .venv/bin/python -m synapse.app.homeserver -c "$DEV/synapse/homeserver.yaml" \
  >"$DEV/synapse/stdout.log" 2>&1 </dev/null &
pids+=($!)
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$HS_PORT/_matrix/client/versions" >/dev/null 2>&1 && break
  if ! kill -0 "${pids[0]}" 2>/dev/null; then cat "$DEV/synapse/stdout.log" >&2; exit 1; fi
  sleep 0.5
done

ADMIN_TOKEN=$(.venv/bin/python scripts/demo_setup.py admin --homeserver "http://127.0.0.1:$HS_PORT" \
  --secrets "$DEV/synapse/secrets.yaml" --state "$DEV/demo.json")

write_assisto_config "$ADMIN_TOKEN"

echo ">> starting assisto (log: .dev/assisto.log)"
ASSISTO_CONFIG="$DEV/assisto.yaml" setsid "$ROOT/target/release/assisto" >"$DEV/assisto.log" 2>&1 </dev/null &
pids+=($!)
for _ in $(seq 1 60); do
  curl -fsS "http://127.0.0.1:$AS_PORT/health" >/dev/null 2>&1 && break
  if ! kill -0 "${pids[1]}" 2>/dev/null; then cat "$DEV/assisto.log" >&2; exit 1; fi
  sleep 0.5
done

.venv/bin/python scripts/demo_setup.py demo --assisto "http://127.0.0.1:$AS_PORT" \
  --admin-api-token "$ADMIN_API_TOKEN" --homeserver "http://127.0.0.1:$HS_PORT" --state "$DEV/demo.json"

cat <<TXT

  assisto is running.

  Homeserver:  http://localhost:$HS_PORT   (server name: localhost)
  assisto:     http://localhost:$AS_PORT/health   ·   /metrics

  Log in with any Matrix client (Element Web/Desktop: "Anmelden" → "Bearbeiten" →
  homeserver http://localhost:$HS_PORT) as one of the demo counsellors:
$(.venv/bin/python scripts/demo_setup.py print-credentials --state "$DEV/demo.json")

  Institution "Beratungsstelle Demo" (id: demo) with its spaces Live, Ratsuchende,
  Kolleg:innen and Gruppenchats; clients "Maria" and "Jonas". The colleague group
  "Willkommen" has both counsellors and the bot. Try: !assisto hilfe
  The README's walkthrough shows the rest (client chat, groups, the 9th colleague).

  Web embed (a client's view): http://localhost:$AS_PORT/_assisto/embed/v1/demo
             open the chat bubble and write; the chat appears in Element in the
             "Live" space as "Gast 1" — join it there to answer.

  Admin API: http://localhost:$AS_PORT/_assisto/admin/v1/openapi.yaml
             (token: ADMIN_API_TOKEN in .dev/secrets.env)
  CLI:       ASSISTO_CONFIG=.dev/assisto.yaml target/release/assisto institution show demo

  Ctrl-C stops everything.
TXT
# Returns only when Synapse or assisto ends by itself (Ctrl-C runs the trap instead).
wait -n "${pids[@]}" || true
echo ">> a process ended unexpectedly; see .dev/synapse/homeserver.log and .dev/assisto.log" >&2
exit 1
