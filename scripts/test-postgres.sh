#!/usr/bin/env bash
# Starts a throw-away PostgreSQL cluster for the test suite and prints its admin URL.
#   scripts/test-postgres.sh start DIR PORT   -> prints postgres://…; the cluster runs in DIR
#   scripts/test-postgres.sh stop DIR
# Installs PostgreSQL from Debian's packages if it is missing (needs root, as in CI).
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?data dir}

find_bin() {
  local b
  b=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  [ -n "$b" ] && [ -x "$b/initdb" ] && echo "$b"
}

as_pg() {
  # PostgreSQL refuses to run as root; use the postgres system user then.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
start)
  port=${3:?port}
  bin=$(find_bin || true)
  if [ -z "$bin" ]; then
    echo ">> installing PostgreSQL from Debian's packages" >&2
    if [ "$(id -u)" != 0 ]; then echo "PostgreSQL is missing and this is not root: apt-get install postgresql" >&2; exit 1; fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    bin=$(find_bin)
  fi
  rm -rf "$dir"; mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
  as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/../pg-initdb.log" 2>&1 || { cat "$dir/../pg-initdb.log" >&2; exit 1; }
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/data/server.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=300" start >&2
  echo "postgres://postgres@127.0.0.1:$port/postgres"
  ;;
stop)
  bin=$(find_bin || true)
  if [ -n "$bin" ] && [ -d "$dir/data" ]; then as_pg "$bin/pg_ctl" -D "$dir/data" -m fast stop >&2 || true; fi
  rm -rf "$dir"
  ;;
*) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
