# Ledger developer recipes. `./dev` installs `just` into .stack/venv/bin on first use.

# Bring up NATS, PostgreSQL, the Sage sandbox and every service (foreground; Ctrl-C stops).
up:
    ./dev up

# Bring everything up, run a demo merchant's documents through, print what landed in Sage.
demo:
    ./dev demo

# Run the whole test suite against real nats-server and PostgreSQL.
test *ARGS:
    ./dev test {{ARGS}}

# Benchmark: throughput, latency percentiles and Sage calls per document, with a raw
# JetStream baseline measured in the same run. Size with BENCH_DOCS and BENCH_MERCHANTS.
bench:
    ./dev bench

# The alert rules: promtool check rules and their unit tests (deploy/prometheus/tests/).
rules:
    ./dev rules

# Start only NATS and PostgreSQL.
infra:
    ./dev infra

# Stop everything the dev stack started.
down:
    ./dev down

# Exactly-once under crashes and faults; size with CHAOS_EVENTS, CHAOS_MERCHANTS (see ledger-chaos).
chaos:
    ./dev chaos

# Ports and replicas from deploy/cluster/topology.yaml; own PostgreSQL, the Sage sandbox.
# The engine as a cluster (3 NATS nodes, 3 stream replicas, 2 of each service), foreground.
cluster:
    ./dev cluster

# Node kill, leader move, replica SIGKILL, rolling restart; prints the verdict and stalls.
# Cluster faults under a steady load, full size (4000 invoices, 200 merchants, 20 s a fault).
cluster-chaos:
    ./dev cluster-chaos

# The accounting corpus: Magento documents with hand-worked Sage expectations, through the
# whole engine; prints one line per difference and `corpus: N documents, mismatches=M`.
# Run a subset with CORPUS_FILTER=<name part>.
corpus:
    ./dev corpus

# The module inside a real Magento 2.4 (LEDGER_MAGENTO_ROOT, default ../magento-root): Magento
# installed into a throwaway MariaDB database when needed, the module installed
# (LEDGER_MAGENTO_INSTALL=app-code|composer), setup:upgrade, setup:di:compile, cache:flush, real
# documents and the grid column; `just magento --timing` adds the invoice-save timings.
magento *ARGS:
    ./dev magento {{ARGS}}

# Hostile-tenant suite: every attack against the real stack; prints
# `isolation: attacks=N refused=N crossings=0 other_failures=0`. Size the flood with ATTACK_FLOOD.
attack:
    ./dev attack

# What one merchant costs the others: B's latency alone, beside A's paused flood and A's
# backlog at its call budget. Size with FAIR_FLOOD, FAIR_B_DOCS, FAIR_B_RATE.
bench-fairness:
    BENCH_MODE=fairness ./dev bench

# The portal's sync history at 100,000 documents of one merchant (plus other merchants'): p50
# and p99 per query over HTTP; fails above HISTORY_TARGET_MS (300). Starts NATS and PostgreSQL if needed.
bench-history:
    ./dev infra >/dev/null && eval "$(./dev env)" && cargo run --release -q -p ledger-stack --bin ledger-history-bench

# One merchant's backfill (BACKLOG_DOCS, default 10,000 historical invoices on the history lane)
# against Sage's call limit, with Ledger's budget equal to it, while live invoices of the same
# merchant arrive: calls per paid order, budget used, 429s, the busiest rolling minute, live
# publish→Sage p50/p99, replay of a 100,000-event synced stream per event vs batched, each service
# binary's RSS at 100 / 1,000 / 10,000 merchants. Fails on any 429 or a replay that writes to
# Sage. Starts NATS and PostgreSQL if needed.
bench-backlog:
    ./dev infra >/dev/null && eval "$(./dev env)" && cargo build --release -q -p gateway -p contacts -p documents -p payments --bin gateway --bin contacts --bin documents --bin payments && cargo run --release -q -p ledger-stack --bin ledger-backlog-bench
