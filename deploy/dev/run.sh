#!/usr/bin/env bash
# Runs the Ledger services as separate processes against the dev stack (see ./dev).
#   run.sh up     start sandbox + services, stay in the foreground until Ctrl-C
#   run.sh demo   start them, run the demo merchant through, print what landed in Sage, stop
#   run.sh bench  run the benchmark (release build)
# Arguments after the mode go to ledger-bench or ledger-demo (see their --help). Ports:
# LEDGER_SANDBOX_PORT (18700), LEDGER_GATEWAY_PORT (18780), LEDGER_STORE_NATS_PORT (42230),
# LEDGER_METRICS_PORT (18781: contacts, then documents, payments and the gateway above it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
source deploy/dev/stack.sh
ensure_infra

mode="${1:-up}"
shift || true
LOGS="$STACK/logs"
mkdir -p "$LOGS"
DB_NAME="${LEDGER_DEV_DB:-ledger_dev}"
export LEDGER_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$DB_NAME"
export LEDGER_NATS_URL
dev_sandbox_env
GATEWAY_PORT="${LEDGER_GATEWAY_PORT:-18780}"
METRICS_PORT="${LEDGER_METRICS_PORT:-18781}"
CONTACTS_METRICS=$METRICS_PORT DOCUMENTS_METRICS=$((METRICS_PORT + 1))
PAYMENTS_METRICS=$((METRICS_PORT + 2)) GATEWAY_METRICS=$((METRICS_PORT + 3))
export LEDGER_GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT"
export LEDGER_ADMIN_TOKEN="${LEDGER_ADMIN_TOKEN:-dev-admin-token-not-for-production}"
# A fixed development key; production keys come from a secret store.
export LEDGER_TOKEN_KEY="${LEDGER_TOKEN_KEY:-6c65646765722d6465762d6b65792d6e6f742d666f722d70726f64756374696f}"

if [ "$mode" = bench ]; then
  log "building the benchmark (release)"
  cargo build --release -q -p ledger-stack --bin ledger-bench
  exec "${CARGO_TARGET_DIR:-target}/release/ledger-bench" "$@"
fi

log "building services"
cargo build -q -p sage-sandbox -p gateway -p contacts -p documents -p payments -p ledgerctl -p ledger-stack --bins
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug"

psql_cmd -qc "create database $DB_NAME" >/dev/null 2>&1 || true

pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT

start() {
  local name="$1"; shift
  env "$@" "$BIN/$name" >"$LOGS/$name.log" 2>&1 &
  pids+=($!)
}

wait_http() {
  for _ in $(seq 1 200); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "no answer from $1; see $LOGS" >&2
  return 1
}

wait_port() {
  for _ in $(seq 1 200); do
    (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1; see $LOGS" >&2
  return 1
}

# The services' own NATS, configured as in production (deploy/nats/nats-server.conf): each
# service logs in as its own user, Magento stores with the key they received by pairing,
# admitted by the gateway's auth callout (requests sealed to its xkey, the connected server's
# key pinned). Its keys and passwords are made once and kept in .stack/nats-stores.
STORE_NATS_PORT="${LEDGER_STORE_NATS_PORT:-42230}"
STORE_NATS_DIR="$STACK/nats-stores"
mkdir -p "$STORE_NATS_DIR"
# Secrets of an older layout (one shared `ledger` user, no xkey) are replaced.
if ! grep -q '^LEDGER_NATS_CALLOUT_XKEY_SEED=' "$STORE_NATS_DIR/secrets.env" 2>/dev/null; then
  ( umask 077
    "$BIN/ledgerctl" nats-issuer >"$STORE_NATS_DIR/secrets.env" )
fi
set -a
# shellcheck disable=SC1091
source "$STORE_NATS_DIR/secrets.env"
set +a
"$VENV/bin/nats-server" -c deploy/nats/nats-server.conf -a 127.0.0.1 -p "$STORE_NATS_PORT" \
  -js -sd "$STORE_NATS_DIR/store" >"$LOGS/nats-stores.log" 2>&1 &
pids+=($!)
wait_port "$STORE_NATS_PORT"
nats_url() { # user password
  echo "nats://$1:$2@127.0.0.1:$STORE_NATS_PORT"
}
# The demo and tools act as the operator.
export LEDGER_NATS_URL="$(nats_url operator "$LEDGER_NATS_OPERATOR_PASSWORD")"
# Development only: stores are handed a plain nats:// URL (production hands out tls://).
export LEDGER_NATS_PUBLIC_URLS="nats://127.0.0.1:$STORE_NATS_PORT" LEDGER_NATS_ALLOW_PLAIN=true
export LEDGER_NATS_SERVER_KEYS=connected

start sage-sandbox
wait_http "$SANDBOX_URL/_sandbox"
start gateway LEDGER_HTTP_ADDR="127.0.0.1:$GATEWAY_PORT" LEDGER_PUBLIC_URL="$LEDGER_GATEWAY_URL" LEDGER_METRICS_ADDR=127.0.0.1:$GATEWAY_METRICS \
  LEDGER_NATS_URL="$(nats_url gateway "$LEDGER_NATS_GATEWAY_PASSWORD")"
wait_http "$LEDGER_GATEWAY_URL/healthz"
start contacts LEDGER_METRICS_ADDR=127.0.0.1:$CONTACTS_METRICS \
  LEDGER_NATS_URL="$(nats_url contacts "$LEDGER_NATS_CONTACTS_PASSWORD")"
start documents LEDGER_METRICS_ADDR=127.0.0.1:$DOCUMENTS_METRICS \
  LEDGER_NATS_URL="$(nats_url documents "$LEDGER_NATS_DOCUMENTS_PASSWORD")"
start payments LEDGER_METRICS_ADDR=127.0.0.1:$PAYMENTS_METRICS \
  LEDGER_NATS_URL="$(nats_url payments "$LEDGER_NATS_PAYMENTS_PASSWORD")"
for port in $CONTACTS_METRICS $DOCUMENTS_METRICS $PAYMENTS_METRICS; do wait_http "http://127.0.0.1:$port/healthz"; done
log "sandbox $SANDBOX_URL  gateway $LEDGER_GATEWAY_URL  stores' NATS nats://127.0.0.1:$STORE_NATS_PORT (pairing)  metrics :$CONTACTS_METRICS-$GATEWAY_METRICS  logs $LOGS"

case "$mode" in
  demo)
    "$BIN/ledger-demo" "$@"
    ;;
  up)
    log "running; Ctrl-C stops"
    wait -n "${pids[@]}" || true
    ;;
esac
