#!/usr/bin/env bash
# Installs the module into a real Magento 2.4 and proves Magento accepts it. Run by `./dev magento`.
#
#   LEDGER_MAGENTO_ROOT     the Magento tree (default: magento-root beside the clone, i.e.
#                           <clone>/../magento-root). Magento Open Source 2.4.7-p3 with its full
#                           vendor/ (github.com/AbdelhamidYousef/vanilla-magento) is what is tested.
#   LEDGER_MAGENTO_INSTALL  how the module goes in: `app-code` (a plain copy to
#                           app/code/Ledger/SageSync; registration.php loads src/) or
#                           `composer` (a Composer path repository and `composer require`).
#                           Default: app-code.
#   LEDGER_MAGENTO_DB       the throwaway MariaDB database (default ledger_magento); created,
#                           with the user ledger_magento, when Magento is not installed yet.
#   LEDGER_MAGENTO_URL      the store's base URL (default http://127.0.0.1:8082/).
#
# Steps (each one fails the run on error):
#   1. PHP 8.2 CLI and the extensions Magento needs (apt-get install php8.2-<ext> when missing)
#   2. the tree made installable here: MariaDB 10.7-10.11 added to SqlVersionProvider in
#      app/etc/di.xml; the search-engine modules and two-factor auth disabled in app/etc/config.php
#   3. setup:install into the throwaway database (GBP base currency) when not installed
#   4. the module installed the merchant's way (see LEDGER_MAGENTO_INSTALL), module:enable
#   5. setup:upgrade, setup:di:compile, cache:flush; any line of their output naming the module
#      together with an error/warning/exception word fails the run
#   6. the module's tables and grid columns exist; module:status lists it enabled
#   7. real documents made through Magento's service contracts (dev/real-documents.php): one
#      outbox row each with its payload; every envelope accepted by `ledgerctl validate` (cargo, or
#      LEDGER_LEDGERCTL_BIN); cron:run --group=ledger_sage_sync and ledger:outbox:status clean;
#      nothing about the module in var/log/exception.log
#   8. the invoice and credit-memo listings as Magento merges and prepares them (dev/real-grid.php):
#      the Sage Status column, its select filter's four labelled options, and the grid rows of the
#      new invoice and credit memo carrying "pending" and the tooltip text
#   9. with --timing: the median of 50 invoice saves with Ledger down (refused, timing out) and
#      with the module disabled (dev/real-timing.php)
# Ends with one line:  magento: real host <version> ok (<install mode>)  — or FAIL and exit 1.
set -uo pipefail

MODULE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="$(cd "$MODULE/.." && pwd)"
MAGENTO="${LEDGER_MAGENTO_ROOT:-$(cd "$ROOT/.." && pwd)/magento-root}"
MODE="${LEDGER_MAGENTO_INSTALL:-app-code}"
DB="${LEDGER_MAGENTO_DB:-ledger_magento}"
DB_USER="${LEDGER_MAGENTO_DB_USER:-ledger_magento}"
DB_PASS="${LEDGER_MAGENTO_DB_PASS:-ledger-magento-pw}"
BASE_URL="${LEDGER_MAGENTO_URL:-http://127.0.0.1:8082/}"
LOG_DIR="${LEDGER_MAGENTO_LOG_DIR:-$ROOT/target/magento}"
NICE=(nice -n 10)
# PHP extensions Magento 2.4.7 requires beyond what php-cli, php-xml and php-mbstring bring.
PHP_EXTENSIONS=(bcmath curl gd intl mysql soap zip)
# Modules that cannot run here: no Elasticsearch/OpenSearch server; 2FA would block the test admin.
DISABLED_MODULES=(Magento_Elasticsearch Magento_Elasticsearch7 Magento_OpenSearch
  Magento_InventoryElasticsearch Magento_TwoFactorAuth Magento_AdminAdobeImsTwoFactorAuth)

mkdir -p "$LOG_DIR"
say() { printf '== %s\n' "$*"; }
die() { printf 'magento: FAIL %s\n' "$*"; exit 1; }

[[ -f "$MAGENTO/bin/magento" && -d "$MAGENTO/vendor/magento" ]] \
  || die "no Magento tree at $MAGENTO (set LEDGER_MAGENTO_ROOT)"
[[ "$MODE" == app-code || "$MODE" == composer ]] || die "LEDGER_MAGENTO_INSTALL must be app-code or composer"

magento() { (cd "$MAGENTO" && "${NICE[@]}" php -d memory_limit=4G bin/magento "$@"); }

# Runs one bin/magento step, logs it, fails on a non-zero status or on any line that mentions the
# module (Ledger / SageSync / ledger_sage) together with an error, warning or exception.
step() {
  local name="$1"; shift
  local log="$LOG_DIR/$name.log"
  say "bin/magento $*"
  local started=$SECONDS
  magento "$@" >"$log" 2>&1
  local rc=$?
  if [[ $rc -ne 0 ]]; then
    tail -30 "$log"
    die "bin/magento $* exited $rc (log: $log)"
  fi
  if grep -Ei 'ledger|sagesync|sage_sync' "$log" | grep -Eiq 'error|warning|exception|deprecated|notice'; then
    grep -Ei 'ledger|sagesync|sage_sync' "$log" | grep -Ei 'error|warning|exception|deprecated|notice' | head -20
    die "bin/magento $*: the module caused the lines above (log: $log)"
  fi
  printf '   ok in %ss\n' $((SECONDS - started))
}

# 1. PHP extensions
missing=()
# A fresh machine may have no PHP at all: the CLI and the extensions every PHP tool here needs.
command -v php >/dev/null || missing+=(php8.2-cli php8.2-xml php8.2-mbstring)
for ext in "${PHP_EXTENSIONS[@]}"; do
  mod="$ext"; [[ "$ext" == mysql ]] && mod=pdo_mysql
  command -v php >/dev/null && php -m | grep -ix "$mod" >/dev/null || missing+=("php8.2-$ext")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  say "installing ${missing[*]}"
  sudo=""; [[ "$(id -u)" -ne 0 ]] && sudo="sudo"
  if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${missing[@]}" >"$LOG_DIR/apt.log" 2>&1; then
    $sudo apt-get update >>"$LOG_DIR/apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${missing[@]}" >>"$LOG_DIR/apt.log" 2>&1 \
      || { tail -20 "$LOG_DIR/apt.log"; die "could not install ${missing[*]}"; }
  fi
fi

# 2. the tree made installable on MariaDB 10.11 without a search engine
if ! grep -q 'MariaDB-(10.7-10.11)' "$MAGENTO/app/etc/di.xml"; then
  say "adding MariaDB 10.7-10.11 to SqlVersionProvider (app/etc/di.xml)"
  sed -i 's#^\(\s*\)<item name="MariaDB-(10.2-10.6)" xsi:type="string">^10\\.\[2-6\]\\.</item>#&\n\1<item name="MariaDB-(10.7-10.11)" xsi:type="string">^10\\.([7-9]|1[01])\\.</item>#' \
    "$MAGENTO/app/etc/di.xml"
  grep -q 'MariaDB-(10.7-10.11)' "$MAGENTO/app/etc/di.xml" || die "could not patch app/etc/di.xml"
fi
for m in "${DISABLED_MODULES[@]}"; do
  sed -i "s/'$m' => 1,/'$m' => 0,/" "$MAGENTO/app/etc/config.php"
done

# 3. setup:install into the throwaway database when not installed
installed_db() {
  [[ -f "$MAGENTO/app/etc/env.php" ]] || return 1
  php -r '$e = include $argv[1]; echo $e["db"]["connection"]["default"]["dbname"] ?? "";' "$MAGENTO/app/etc/env.php"
}
if [[ "$(installed_db)" != "$DB" ]] \
  || ! mysql -uroot -N -e "select 1 from information_schema.tables where table_schema='$DB' and table_name='core_config_data'" | grep -q 1; then
  say "installing Magento into the database $DB"
  mysql -uroot -e "DROP DATABASE IF EXISTS \`$DB\`; CREATE DATABASE \`$DB\`;
    CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
    CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
    GRANT ALL ON \`$DB\`.* TO '$DB_USER'@'localhost'; GRANT ALL ON \`$DB\`.* TO '$DB_USER'@'127.0.0.1';" \
    || die "could not create the database $DB (is MariaDB running? mysql -uroot must work)"
  # The tree may ship another store's install: start from its code only.
  rm -f "$MAGENTO/app/etc/env.php"
  rm -rf "$MAGENTO/generated/code" "$MAGENTO/generated/metadata" "$MAGENTO/var/cache" \
    "$MAGENTO/var/page_cache" "$MAGENTO/var/di" "$MAGENTO/var/view_preprocessed"
  step setup-install setup:install \
    --base-url="$BASE_URL" --db-host=127.0.0.1 --db-name="$DB" --db-user="$DB_USER" \
    --db-password="$DB_PASS" --admin-firstname=Ledger --admin-lastname=Test \
    --admin-email=admin@example.com --admin-user=admin --admin-password=ledger-admin-1 \
    --language=en_GB --currency=GBP --timezone=Europe/London --use-rewrites=0 \
    --backend-frontname=admin --cleanup-database
  # Index on save, so a product saved by the end-to-end run is salable at once (no indexer cron).
  step indexer-mode indexer:set-mode realtime
fi

# 4. the module, installed the merchant's way
APP_CODE="$MAGENTO/app/code/Ledger/SageSync"
# Adds (or removes) "Ledger\\SageSync\\": "app/code/Ledger/SageSync/src/" in the store's
# composer.json autoload.psr-4, the one line the app/code install needs (the classes are in src/).
root_autoload() {
  php -r '
    [$_, $action, $file] = $argv;
    $json = json_decode(file_get_contents($file), true, 512, JSON_THROW_ON_ERROR);
    if ($action === "add") {
        $json["autoload"]["psr-4"]["Ledger\\SageSync\\"] = "app/code/Ledger/SageSync/src/";
    } else {
        unset($json["autoload"]["psr-4"]["Ledger\\SageSync\\"]);
    }
    $out = json_encode($json, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE) . "\n";
    file_put_contents($file, $out);
  ' "$1" "$2"
}
composer_bin=("${NICE[@]}" php "$MAGENTO/vendor/bin/composer")
if [[ "$MODE" == app-code ]]; then
  say "copying the module to app/code/Ledger/SageSync (a plain copy)"
  rm -rf "$APP_CODE" && mkdir -p "$APP_CODE"
  if grep -q '"ledger/module-sage-sync"' "$MAGENTO/composer.json" "$MAGENTO/composer.lock"; then
    # Installed with Composer before (LEDGER_MAGENTO_INSTALL=composer): take that copy out first,
    # or Magento finds the module twice.
    rmdir "$APP_CODE"
    (cd "$MAGENTO" && COMPOSER_ALLOW_SUPERUSER=1 "${composer_bin[@]}" require --no-interaction --no-update \
      ledger/module-sage-sync:'*@dev' >/dev/null 2>&1)
    (cd "$MAGENTO" && COMPOSER_ALLOW_SUPERUSER=1 "${composer_bin[@]}" remove --no-interaction --no-audit \
      --no-scripts --no-plugins ledger/module-sage-sync >"$LOG_DIR/composer.log" 2>&1) \
      || { tail -20 "$LOG_DIR/composer.log"; die "composer remove ledger/module-sage-sync failed"; }
    mkdir -p "$APP_CODE"
  fi
  (cd "$MODULE" && tar -c --exclude=./dev --exclude=./Test --exclude=./vendor . | tar -x -C "$APP_CODE") \
    || die "could not copy the module"
  # No line in the store's composer.json: registration.php brings the autoloader for src/, so a
  # plain copy is all a merchant does (an older psr-4 line from a previous run is taken out).
  root_autoload remove "$MAGENTO/composer.json" || die "could not edit composer.json"
  (cd "$MAGENTO" && "${composer_bin[@]}" dump-autoload >"$LOG_DIR/composer.log" 2>&1) \
    || { tail -20 "$LOG_DIR/composer.log"; die "composer dump-autoload failed"; }
else
  say "requiring ledger/module-sage-sync from a Composer path repository ($MODULE)"
  rm -rf "$MAGENTO/app/code/Ledger"
  root_autoload remove "$MAGENTO/composer.json" || die "could not remove the autoload line from composer.json"
  (cd "$MAGENTO" && "${composer_bin[@]}" config repositories.ledger \
    "{\"type\": \"path\", \"url\": \"$MODULE\", \"options\": {\"symlink\": false}}") \
    || die "composer config repositories.ledger failed"
  # Offline machines: a remote Composer repository that cannot be reached (Packagist, the
  # store's mirror) is switched off, said so; every other package is already locked in vendor/.
  php -r '
    $file = $argv[1];
    $json = json_decode(file_get_contents($file), true, 512, JSON_THROW_ON_ERROR);
    $repos = $json["repositories"] ?? [];
    $remote = ["packagist.org" => "https://repo.packagist.org/"];
    foreach ($repos as $name => $repo) {
        if (is_array($repo) && ($repo["type"] ?? "") === "composer") {
            $remote[$name] = rtrim($repo["url"], "/") . "/";
        }
    }
    foreach ($remote as $name => $url) {
        if (($repos[$name] ?? null) === false) {
            continue;
        }
        $ctx = stream_context_create(["http" => ["timeout" => 5]]);
        if (@file_get_contents($url . "packages.json", false, $ctx) === false) {
            fwrite(STDOUT, "   $url unreachable: repository \"$name\" switched off\n");
            $repos[$name] = false;
        }
    }
    $json["repositories"] = $repos;
    file_put_contents($file, json_encode($json, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES) . "\n");
  ' "$MAGENTO/composer.json" || die "could not read the store's composer.json"
  (cd "$MAGENTO" && COMPOSER_ALLOW_SUPERUSER=1 "${composer_bin[@]}" require --no-interaction --no-audit \
    --no-scripts --no-plugins ledger/module-sage-sync:'*@dev' >"$LOG_DIR/composer.log" 2>&1) \
    || { tail -30 "$LOG_DIR/composer.log"; die "composer require ledger/module-sage-sync failed"; }
fi
step module-enable module:enable Ledger_SageSync

# 5. Magento's own steps
step setup-upgrade setup:upgrade --keep-generated
step di-compile setup:di:compile
step cache-flush cache:flush

# 6. what setup:upgrade must have made
magento module:status Ledger_SageSync 2>&1 | grep -q 'Module is enabled' || die "Ledger_SageSync is not enabled"
for table in ledger_sage_outbox ledger_sage_dead_letter ledger_sage_invoice_status ledger_sage_creditmemo_status; do
  mysql -uroot -N -e "select 1 from information_schema.tables where table_schema='$DB' and table_name='$table'" \
    | grep -q 1 || die "setup:upgrade did not create $table"
done
for grid in sales_invoice_grid sales_creditmemo_grid; do
  for column in sage_status sage_status_message; do
    mysql -uroot -N -e "select 1 from information_schema.columns where table_schema='$DB' and table_name='$grid' and column_name='$column'" \
      | grep -q 1 || die "setup:upgrade did not add $grid.$column"
  done
done
# 7. real documents through Magento's service contracts: one outbox row per document, each
#    envelope accepted by the Rust contract, the cron group and the CLI run without an error.
# A UK store.
magento config:set general/country/default GB >/dev/null || die "config:set general/country/default failed"
magento config:set general/country/allow GB,IE,FR,DE,NL,ES,IT,US >/dev/null || die "config:set general/country/allow failed"
say "real documents: product, customer, order, invoice, partial credit memo (service contracts)"
ENVELOPES="$LOG_DIR/envelopes"
rm -rf "$ENVELOPES"
make_documents() {
  rm -rf "$ENVELOPES"
  (cd "$MAGENTO" && "${NICE[@]}" php -d memory_limit=2G "$MODULE/dev/real-documents.php" "$MAGENTO" "$ENVELOPES") \
    >"$LOG_DIR/documents.json" 2>"$LOG_DIR/documents.err"
}
if ! make_documents; then
  # Right after setup:install, Magento 2.4.7 refuses the very first order ("Some addresses can't
  # be used due to the configurations for specific countries"); the next process places it.
  if grep -q "configurations for specific countries" "$LOG_DIR/documents.err"; then
    echo "   the first order after the install was refused by Magento's country check; placing it again"
    make_documents || { cat "$LOG_DIR/documents.err" "$LOG_DIR/documents.json" | tail -20; die "creating real documents failed"; }
  else
    cat "$LOG_DIR/documents.err" "$LOG_DIR/documents.json" | tail -20
    die "creating real documents failed"
  fi
fi
recorded="$(php -r '
  $d = json_decode(file_get_contents($argv[1]), true);
  $types = array_column($d["outbox"], "event_type");
  $want = ["product.saved", "customer.saved", "invoice.created", "invoice.paid", "creditmemo.created"];
  $errors = array_filter(array_column($d["outbox"], "last_error"));
  $missing = array_diff($want, $types);
  $twice = array_keys(array_filter(array_count_values($types), fn ($n) => $n > 1));
  if ($missing || $twice || $errors || count(array_filter(array_column($d["outbox"], "has_payload"))) !== count($types)) {
      echo "missing=", implode(",", $missing), " doubled=", implode(",", $twice), " errors=", implode(" | ", $errors);
      exit(1);
  }
  printf("order %s grand total %s %s, invoice %s, credit memo %s: outbox %s",
      $d["order"]["increment_id"], $d["order"]["grand_total"], $d["order"]["currency"],
      $d["invoice"]["grand_total"], $d["creditmemo"]["grand_total"], implode(" ", $types));
' "$LOG_DIR/documents.json")" || die "the outbox is not one row per document with its payload: $recorded"
echo "   $recorded"
if [[ -n "${LEDGER_LEDGERCTL_BIN:-}" ]]; then
  validate=("$LEDGER_LEDGERCTL_BIN" validate)
elif command -v cargo >/dev/null; then
  validate=(cargo run -q --locked -p ledgerctl -- validate)
else
  die "cargo not found: the envelopes cannot be checked against the Rust contract (or set LEDGER_LEDGERCTL_BIN)"
fi
(cd "$ROOT" && "${NICE[@]}" "${validate[@]}" "$ENVELOPES"/*.json) >"$LOG_DIR/validate.log" 2>&1
sed "s#$ENVELOPES/#   #" "$LOG_DIR/validate.log"
envelope_count="$(find "$ENVELOPES" -name '*.json' | wc -l)"
[[ "$(grep -c ': ok (' "$LOG_DIR/validate.log")" -eq "$envelope_count" && "$envelope_count" -gt 0 ]] \
  || die "the Rust contract refused an envelope built from real Magento data (log: $LOG_DIR/validate.log)"
say "the Sage Status column of the invoice and credit-memo grids (listings as Magento merges them)"
ids="$(php -r '$d = json_decode(file_get_contents($argv[1]), true); echo $d["invoice"]["id"], " ", $d["creditmemo"]["id"];' "$LOG_DIR/documents.json")"
# shellcheck disable=SC2086
(cd "$MAGENTO" && "${NICE[@]}" php "$MODULE/dev/real-grid.php" "$MAGENTO" $ids) || die "the Sage Status grid column is not right"
step cron-run cron:run --group=ledger_sage_sync
step outbox-status ledger:outbox:status
if grep -Ei 'ledger|sagesync' "$MAGENTO/var/log/exception.log" 2>/dev/null | grep -q .; then
  grep -Ei 'ledger|sagesync' "$MAGENTO/var/log/exception.log" | tail -5
  die "var/log/exception.log names the module"
fi

# 9. (--timing) Magento's invoice save with Ledger down, and without the module: median of
#    LEDGER_MAGENTO_SAVES (default 50) saves each, through dev/real-timing.php.
timing_line=""
if [[ "${1:-}" == "--timing" ]]; then
  saves="${LEDGER_MAGENTO_SAVES:-50}"
  set_config() { magento config:set "ledger_sage_sync/$1" "$2" >/dev/null || die "config:set $1 failed"; }
  time_saves() {
    local label="$1" out
    out="$(cd "$MAGENTO" && "${NICE[@]}" php -d memory_limit=2G "$MODULE/dev/real-timing.php" "$MAGENTO" "$saves")" \
      || die "timing ($label) failed: $out"
    php -r '$d = json_decode($argv[1], true); if ($d["failed"] > 0) { exit(1); }' "$out" || die "saves failed ($label): $out"
    printf '   %-46s %s\n' "$label" "$out" >&2
    php -r 'echo json_decode($argv[1], true)["median_ms"];' "$out"
  }
  say "timing: $saves invoice saves each (admin area, offline capture)"
  # Hand-typed settings that point at a Ledger that is down; the outbox is emptied of waiting
  # rows first so nothing older holds the new events back (throwaway store).
  mysql -uroot "$DB" -e "UPDATE ledger_sage_outbox SET status = 'published', published_at = UTC_TIMESTAMP() WHERE status IN ('pending', 'retry'); DELETE FROM flag WHERE flag_code = 'ledger_sage_sync_flush_paused_until'"
  set_config general/merchant_id real-magento
  set_config general/transport nats_https
  set_config nats/user outage
  set_config nats/password outage-pw
  set_config https/ingest_key outage-key
  set_config nats/url tls://127.0.0.1:1
  set_config https/url https://127.0.0.1:1
  unpause() { mysql -uroot "$DB" -e "DELETE FROM flag WHERE flag_code = 'ledger_sage_sync_flush_paused_until'"; }
  unpause
  refused="$(time_saves "module on, Ledger down (connection refused)")" || die "timing failed: $refused"
  # A Ledger that never answers, on this machine: a listening socket that accepts nothing, its
  # queue filled, so a connection attempt gets no answer and runs into the module's timeout.
  port_file="$LOG_DIR/silent-port"
  rm -f "$port_file"
  php -r '
    $context = stream_context_create(["socket" => ["backlog" => 0]]);
    $server = stream_socket_server("tcp://127.0.0.1:0", $errno, $error, STREAM_SERVER_BIND | STREAM_SERVER_LISTEN, $context)
        or exit(1);
    $name = stream_socket_get_name($server, false);
    $port = substr($name, strrpos($name, ":") + 1);
    $queued = [];
    for ($i = 0; $i < 2; $i++) {
        $client = @stream_socket_client("tcp://127.0.0.1:$port", $errno, $error, 1);
        if ($client !== false) {
            $queued[] = $client;
        }
    }
    file_put_contents($argv[1], $port);
    sleep(3600);
  ' "$port_file" &
  silent_pid=$!
  trap 'kill "$silent_pid" 2>/dev/null' EXIT
  for _ in $(seq 50); do [[ -s "$port_file" ]] && break; sleep 0.1; done
  [[ -s "$port_file" ]] || die "could not start the silent listener"
  silent_port="$(cat "$port_file")"
  set_config nats/url "tls://127.0.0.1:$silent_port"
  set_config https/url "https://127.0.0.1:$silent_port"
  unpause
  dropped="$(time_saves "module on, Ledger down (connections time out)")" || die "timing failed: $dropped"
  kill "$silent_pid" 2>/dev/null
  mysql -uroot "$DB" -e "DELETE FROM core_config_data WHERE path LIKE 'ledger_sage_sync/%'"
  magento module:disable Ledger_SageSync >/dev/null && magento cache:flush >/dev/null || die "module:disable failed"
  without="$(time_saves "module disabled")" \
    || { magento module:enable Ledger_SageSync >/dev/null; die "timing failed: $without"; }
  magento module:enable Ledger_SageSync >/dev/null && magento cache:flush >/dev/null || die "module:enable failed"
  timing_line="; invoice save median: ${without} ms without the module, ${refused} ms with Ledger refusing, ${dropped} ms with Ledger timing out ($saves saves each)"
fi

version="$(magento --version 2>/dev/null | grep -Eo '[0-9]+\.[0-9]+\.[0-9]+(-p[0-9]+)?' | head -1)"
echo "magento: real host $version ok ($MODE): setup:upgrade, setup:di:compile, cache:flush clean; 4 tables and 2 grid columns present; $envelope_count real envelopes valid; grid column and filter ok$timing_line"
