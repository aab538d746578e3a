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

# Start only NATS and PostgreSQL.
infra:
    ./dev infra

# Stop everything the dev stack started.
down:
    ./dev down

# Exactly-once under crashes and faults; size with CHAOS_EVENTS, CHAOS_MERCHANTS (see ledger-chaos).
chaos:
    ./dev chaos
