//! `ledger-bench`: throughput, latency and Sage calls per document of the engine, with a raw
//! JetStream baseline measured in the same run on the same machine.
//!
//! Runs the real services in this process (see `ledger_stack::Stack`) against the dev stack's
//! NATS and PostgreSQL (`./dev bench` starts them). Size: `BENCH_DOCS` (default 2000) invoice
//! events spread over `BENCH_MERCHANTS` (default 20) merchants, at each sandbox latency in
//! `BENCH_LATENCIES_MS` (default "0,100"). Every knob is also an option (`ledger-bench --help`).
//!
//! `BENCH_MODE=fairness` measures instead what one merchant costs the others (see
//! [`fairness`]): merchant B's publish→Sage latency alone, and while merchant A (a) has Sage
//! disconnected and floods the log, (b) drains a backlog at its call budget.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use ledger_stack::{events, ms, percentile, Stack, StackOptions};
use sage_sandbox::{FaultKind, FaultPlan, SandboxConfig};

/// Publish acknowledgements awaited at a time: the client stops sending when too many are
/// outstanding, so a large run must collect them as it goes.
const ACK_BATCH: usize = 1_000;

/// What the benchmark measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// Throughput, latency and Sage calls per document, beside a raw JetStream baseline.
    Throughput,
    /// What one merchant costs the others: B's latency alone, beside A's paused flood and A's
    /// backlog at its call budget.
    Fairness,
}

/// The run's size and knobs; each option also reads the environment variable of the same name.
#[derive(Debug, clap::Parser)]
#[command(
    name = "ledger-bench",
    about = "Throughput, latency and fairness of the engine"
)]
struct Args {
    /// What to measure.
    #[arg(long, env = "BENCH_MODE", value_enum, default_value_t = Mode::Throughput)]
    mode: Mode,
    /// Invoice events per run.
    #[arg(long, env = "BENCH_DOCS", default_value_t = 2000)]
    docs: usize,
    /// Merchants the events are spread over.
    #[arg(long, env = "BENCH_MERCHANTS", default_value_t = 20)]
    merchants: usize,
    /// Sandbox latencies to run at, in milliseconds, comma separated.
    #[arg(
        long,
        env = "BENCH_LATENCIES_MS",
        value_delimiter = ',',
        default_value = "0,100"
    )]
    latencies_ms: Vec<u64>,
    /// Seconds a run may take to bring every document to Sage.
    #[arg(long, env = "BENCH_TIMEOUT_SECS", default_value_t = 600)]
    timeout_secs: u64,
    /// Fairness: events merchant A floods.
    #[arg(long, env = "FAIR_FLOOD", default_value_t = 50_000)]
    fair_flood: usize,
    /// Fairness: invoices merchant B sends.
    #[arg(long, env = "FAIR_B_DOCS", default_value_t = 150)]
    fair_b_docs: usize,
    /// Fairness: invoices per second merchant B sends.
    #[arg(long, env = "FAIR_B_RATE", default_value_t = 5.0)]
    fair_b_rate: f64,
    /// Fairness: Sage calls a minute per business.
    #[arg(long, env = "FAIR_BUDGET_PER_MINUTE", default_value_t = 6_000)]
    fair_budget_per_minute: u32,
    /// NATS with JetStream the engine runs on.
    #[arg(
        long,
        env = "LEDGER_NATS_URL",
        default_value = "nats://127.0.0.1:42229"
    )]
    nats_url: String,
    /// Administrative URL of the PostgreSQL cluster the runs' databases are made on.
    #[arg(
        long,
        env = "LEDGER_TEST_PG_URL",
        default_value = "postgres://postgres@127.0.0.1:54329/postgres"
    )]
    pg_admin_url: String,
}

/// Starts the engine on a fresh database and an empty events stream.
async fn fresh_stack(
    nats_url: &str,
    admin_url: &str,
    db_name: &str,
    concurrency: usize,
) -> anyhow::Result<Stack> {
    let db = fresh_database(admin_url, db_name).await?;
    // Each run gets its own stream contents: drop the events stream of the previous run.
    {
        let client = ledger_runtime::bus::connect(nats_url, "bench-reset").await?;
        let js = async_nats::jetstream::new(client);
        let _ = js.delete_stream(ledger_runtime::bus::EVENTS_STREAM).await;
        let _ = js
            .delete_stream(ledger_runtime::bus::QUARANTINE_STREAM)
            .await;
        let _ = js
            .delete_key_value(ledger_runtime::parking::PARKED_BUCKET)
            .await;
    }
    // Sage's rolling-minute limit at the engine's budget, so a run that overruns it meets 429s;
    // none when the budget is off (the throughput runs, which are not about pace).
    let budget = std::env::var("LEDGER_SAGE_CALLS_PER_MINUTE")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(ledger_rpc::GateLimits::default().calls_per_minute);
    Stack::start(StackOptions {
        nats_url: nats_url.to_string(),
        database_url: db,
        sandbox: SandboxConfig {
            rate_limit_per_minute: (budget > 0).then_some(budget),
            ..SandboxConfig::default()
        },
        concurrency,
        store_access: None,
        limits: ledger_stack::relaxed_limits(),
        gate: None,
    })
    .await
}

/// Publishes `events` into JetStream as the Magento module does; returns when all are stored.
async fn publish_all(
    js: &async_nats::jetstream::Context,
    events: impl Iterator<Item = events::SyntheticEvent>,
) -> anyhow::Result<usize> {
    let mut acks = Vec::with_capacity(ACK_BATCH);
    let mut n = 0;
    for event in events {
        let envelope = ledger_events::parse(&event.body)?;
        if acks.len() >= ACK_BATCH {
            for ack in acks.drain(..) {
                ack.await?;
            }
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", envelope.event_id.to_string().as_str());
        acks.push(
            js.publish_with_headers(envelope.subject(), headers, event.body.into())
                .await?,
        );
        n += 1;
    }
    for ack in acks {
        ack.await?;
    }
    Ok(n)
}

/// One merchant's invoices published at `rate` per second; returns the publish→Sage 201
/// latency of each, read from the sandbox's call log for that merchant's business.
async fn paced_latencies(
    stack: &Stack,
    merchant: &ledger_stack::Merchant,
    docs: usize,
    rate: f64,
    timeout: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let inspector = stack.sandbox.inspect();
    let business = merchant.business_id.clone();
    let first_seq = inspector
        .calls(Some(&business), 1)
        .last()
        .map(|c| c.seq)
        .unwrap_or(0);
    let watcher = tokio::spawn(async move {
        let mut answers = Vec::with_capacity(docs);
        let mut last_seq = first_seq;
        let deadline = Instant::now() + timeout;
        while answers.len() < docs && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let floor = last_seq;
            for call in inspector
                .calls(Some(&business), 1_000)
                .iter()
                .filter(|c| c.seq > floor)
            {
                last_seq = call.seq;
                if call.method == "POST"
                    && call.path.ends_with("/sales_invoices")
                    && call.status == 201
                {
                    answers.push(call.at);
                }
            }
        }
        answers
    });
    let js = async_nats::jetstream::new(stack.nats.clone());
    let started = Instant::now();
    let mut sent = Vec::with_capacity(docs);
    for i in 0..docs {
        sent.push(chrono::Utc::now());
        publish_all(
            &js,
            std::iter::once(events::invoice_created(&merchant.id, i as u64)),
        )
        .await?;
        let due = started + Duration::from_secs_f64((i + 1) as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
    }
    let answers = watcher.await?;
    anyhow::ensure!(
        answers.len() == docs,
        "only {} of {docs} of {}'s documents reached Sage",
        answers.len(),
        merchant.id
    );
    let mut latencies: Vec<Duration> = sent
        .iter()
        .zip(&answers)
        .map(|(s, a)| (*a - *s).to_std().unwrap_or_default())
        .collect();
    latencies.sort();
    Ok(latencies)
}

/// What one merchant costs the others: B's publish→Sage latency at a steady pace, alone and
/// while A (a) has Sage disconnected and floods `FAIR_FLOOD` events (default 50,000), (b)
/// drains a backlog of as many at its Sage call budget (`FAIR_BUDGET_PER_MINUTE` per
/// business, default 6,000, so the run takes minutes). B sends `FAIR_B_DOCS` invoices
/// (default 150) at `FAIR_B_RATE` per second (default 5), starting with A's flood.
async fn fairness(args: &Args) -> anyhow::Result<()> {
    let (nats_url, admin_url) = (args.nats_url.as_str(), args.pg_admin_url.as_str());
    let flood = args.fair_flood;
    let b_docs = args.fair_b_docs;
    let b_rate = args.fair_b_rate;
    let budget = args.fair_budget_per_minute;
    let timeout = Duration::from_secs(args.timeout_secs);
    std::env::set_var("LEDGER_SAGE_CALLS_PER_MINUTE", budget.to_string());
    println!(
        "fairness: B sends {b_docs} invoices at {b_rate}/s; A floods {flood} events; Sage budget {budget} calls/min per business; {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let mut alone_p99 = Duration::ZERO;
    for scenario in ["alone", "paused_flood", "backlog_at_budget"] {
        let stack = fresh_stack(nats_url, admin_url, "ledger_bench_fairness", 64).await?;
        let a = stack.onboard("fair-a").await?;
        let b = stack.onboard("fair-b").await?;
        if scenario == "paused_flood" {
            stack.sandbox.revoke_tokens(&a.business_id);
        }
        let flooding = if scenario == "alone" {
            None
        } else {
            let js = async_nats::jetstream::new(stack.nats.clone());
            let merchant = a.id.clone();
            Some(tokio::spawn(async move {
                let started = Instant::now();
                let n = publish_all(
                    &js,
                    (0..flood as u64).map(|i| events::invoice_created(&merchant, i)),
                )
                .await?;
                Ok::<_, anyhow::Error>((n, started.elapsed()))
            }))
        };
        let latencies = paced_latencies(&stack, &b, b_docs, b_rate, timeout).await?;
        let flood_note = match flooding {
            Some(task) => {
                let (n, took) = task.await??;
                format!(
                    "; A published {n} events in {:.1} s, {} of them in Sage by the end",
                    took.as_secs_f64(),
                    stack.documents(&a, "sales_invoices").len()
                )
            }
            None => String::new(),
        };
        let p99 = percentile(&latencies, 0.99);
        if scenario == "alone" {
            alone_p99 = p99;
        }
        println!(
            "fairness  {scenario:<17} B publish→Sage 201 p50 {} p99 {} max {}{}{flood_note}",
            ms(percentile(&latencies, 0.50)),
            ms(p99),
            ms(percentile(&latencies, 1.0)),
            if scenario == "alone" {
                String::new()
            } else {
                format!(
                    " (p99 {:+.1} ms against alone; goal ≤ +1000 ms)",
                    (p99.as_secs_f64() - alone_p99.as_secs_f64()) * 1000.0
                )
            },
        );
        stack.stop().await;
    }
    Ok(())
}

/// Fresh database per run so schemas and journals start empty.
async fn fresh_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let admin = sqlx::PgPool::connect(admin_url)
        .await
        .context("connect to PostgreSQL")?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await?;
    admin.close().await;
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(admin_url);
    Ok(format!("{base}/{name}"))
}

/// Raw JetStream publish → pull → ack throughput, the ceiling the engine works under.
async fn baseline(nats_url: &str, n: usize) -> anyhow::Result<(f64, f64)> {
    let client = ledger_runtime::bus::connect(nats_url, "bench-baseline").await?;
    let js = async_nats::jetstream::new(client);
    let name = format!("BENCH_BASELINE_{}", std::process::id());
    let _ = js.delete_stream(&name).await;
    let stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![format!("bench.{}.>", std::process::id())],
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    let payload = events::invoice_created("baseline", 1).body;
    let started = Instant::now();
    let mut acks = Vec::with_capacity(n);
    for i in 0..n {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("b-{i}").as_str());
        if acks.len() >= ACK_BATCH {
            for ack in acks.drain(..) {
                ack.await?;
            }
        }
        acks.push(
            js.publish_with_headers(
                format!("bench.{}.m{}.invoice.created", std::process::id(), i % 20),
                headers,
                payload.clone().into(),
            )
            .await?,
        );
    }
    for ack in acks {
        ack.await?;
    }
    let publish_rate = n as f64 / started.elapsed().as_secs_f64();
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("baseline".into()),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    let started = Instant::now();
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(256)
        .messages()
        .await?;
    let mut seen = 0;
    while seen < n {
        let m = messages.next().await.context("stream ended")??;
        let _ = ledger_events::parse(&m.payload);
        m.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        seen += 1;
    }
    let consume_rate = n as f64 / started.elapsed().as_secs_f64();
    let _ = js.delete_stream(&name).await;
    Ok((publish_rate, consume_rate))
}

/// What replaying every merchant's already-synced events did.
struct ReplayResult {
    seen: u64,
    already_synced: u64,
    applied: u64,
    elapsed: Duration,
    sage_writes: u64,
}

fn sage_writes(stats: &sage_sandbox::Stats) -> u64 {
    stats
        .calls
        .iter()
        .filter(|c| {
            matches!(c.method.as_str(), "POST" | "PUT" | "DELETE") && c.path.starts_with("/v3.1")
        })
        .map(|c| c.count)
        .sum()
}

struct RunResult {
    replay: Option<ReplayResult>,
    docs: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    sage_calls: u64,
    token_calls: u64,
}

/// One run of `args.docs` invoices over `args.merchants` merchants at a sandbox latency,
/// as a backlog (`rate` None) or paced at `rate` per second.
async fn run_engine(
    args: &Args,
    latency_ms: u64,
    rate: Option<f64>,
    replay: bool,
) -> anyhow::Result<RunResult> {
    let (docs, merchants) = (args.docs, args.merchants);
    let timeout = Duration::from_secs(args.timeout_secs);
    let stack = fresh_stack(
        &args.nats_url,
        &args.pg_admin_url,
        &format!("ledger_bench_{latency_ms}"),
        64,
    )
    .await?;
    let mut onboarded = Vec::new();
    for m in 0..merchants {
        onboarded.push(stack.onboard(&format!("bench-{m}")).await?);
    }
    if latency_ms > 0 {
        stack
            .sandbox
            .faults()
            .set(FaultPlan::new(FaultKind::Latency { ms: latency_ms }));
    }
    let calls_before: u64 = stack
        .sandbox
        .inspect()
        .stats()
        .calls
        .iter()
        .map(|c| c.count)
        .sum();
    let tokens_before = stack.sandbox.inspect().stats().token_requests.len() as u64;

    // Watch the sandbox's call log (cheap to read, unlike its documents) for invoice 201s,
    // from before the first publish so no answer is missed.
    let inspector = stack.sandbox.inspect();
    let first_seq = inspector.calls(None, 1).last().map(|c| c.seq).unwrap_or(0);
    let watcher = tokio::spawn(async move {
        let mut answers: Vec<(String, chrono::DateTime<chrono::Utc>)> = Vec::with_capacity(docs);
        let mut last_seq = first_seq;
        let deadline = Instant::now() + timeout;
        while answers.len() < docs && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let calls = inspector.calls(None, 4_000);
            if calls.first().is_some_and(|c| c.seq > last_seq + 1) {
                return Err(anyhow::anyhow!(
                    "the sandbox call log moved faster than it was read"
                ));
            }
            for call in calls.iter().filter(|c| c.seq > last_seq) {
                if call.method == "POST"
                    && call.path.ends_with("/sales_invoices")
                    && call.status == 201
                {
                    answers.push((call.business_id.clone().unwrap_or_default(), call.at));
                }
            }
            last_seq = calls.last().map(|c| c.seq).unwrap_or(last_seq);
        }
        Ok(answers)
    });

    // Publish straight into JetStream as the Magento module does, recording when. A merchant's
    // documents are handled in publish order, so its k-th Sage 201 answers its k-th event.
    let js = async_nats::jetstream::new(stack.nats.clone());
    let mut published: HashMap<String, Vec<chrono::DateTime<chrono::Utc>>> = HashMap::new();
    let started = Instant::now();
    let mut acks = Vec::with_capacity(docs);
    for i in 0..docs {
        let merchant = &onboarded[i % merchants];
        let event = events::invoice_created(&merchant.id, i as u64);
        let envelope = ledger_events::parse(&event.body)?;
        if acks.len() >= ACK_BATCH {
            for ack in acks.drain(..) {
                ack.await?;
            }
        }
        published
            .entry(merchant.business_id.clone())
            .or_default()
            .push(chrono::Utc::now());
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", envelope.event_id.to_string().as_str());
        acks.push(
            js.publish_with_headers(envelope.subject(), headers, event.body.into())
                .await?,
        );
        if let Some(rate) = rate {
            // Paced like a busy store rather than a backlog: latency then measures the engine,
            // not the queue.
            let due = started + Duration::from_secs_f64((i + 1) as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
    }
    for ack in acks {
        ack.await?;
    }
    let answers = watcher.await??;
    let mut latencies = Vec::with_capacity(docs);
    let mut answered: HashMap<&str, usize> = HashMap::new();
    for (business, at) in &answers {
        let k = answered.entry(business.as_str()).or_default();
        if let Some(sent) = published.get(business).and_then(|p| p.get(*k)) {
            latencies.push((*at - *sent).to_std().unwrap_or_default());
        }
        *k += 1;
    }
    let elapsed = started.elapsed();
    let stats = stack.sandbox.inspect().stats();
    let calls_after: u64 = stats.calls.iter().map(|c| c.count).sum();
    let token_calls = stats.token_requests.len() as u64 - tokens_before;
    let duplicates = stack.sandbox.inspect().all_duplicate_references().len();
    anyhow::ensure!(
        duplicates == 0,
        "duplicate references in Sage: {duplicates}"
    );
    let replay = if replay {
        // Every event again, through the same handlers: all already in Sage, so nothing may
        // be written.
        let writes_before = sage_writes(&stack.sandbox.inspect().stats());
        let started = Instant::now();
        let mut result = ReplayResult {
            seen: 0,
            already_synced: 0,
            applied: 0,
            elapsed: Duration::ZERO,
            sage_writes: 0,
        };
        for group in onboarded.chunks(16) {
            let asks = group.iter().map(|m| {
                let command = ledger_runtime::replay::Command {
                    merchant: m.id.clone(),
                    since: None,
                    until: None,
                    dry_run: false,
                    per_event_lookups: false,
                    limit: None,
                };
                let nats = stack.nats.clone();
                async move {
                    ledger_runtime::replay::request(
                        &nats,
                        "documents",
                        &command,
                        Duration::from_secs(600),
                        |_| {},
                    )
                    .await
                }
            });
            for summary in futures::future::join_all(asks).await {
                let summary = summary.map_err(anyhow::Error::msg)?;
                result.seen += summary.seen;
                result.already_synced += summary.already_synced;
                result.applied += summary.applied;
            }
        }
        result.elapsed = started.elapsed();
        result.sage_writes = sage_writes(&stack.sandbox.inspect().stats()) - writes_before;
        Some(result)
    } else {
        None
    };
    stack.stop().await;
    latencies.sort();
    Ok(RunResult {
        replay,
        docs: latencies.len(),
        elapsed,
        latencies,
        sage_calls: calls_after - calls_before,
        token_calls,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The engine's throughput is measured without Ledger's per-business Sage call budget (200 a
    // minute per business in production), which would otherwise be the only thing measured.
    if std::env::var_os("LEDGER_SAGE_CALLS_PER_MINUTE").is_none() {
        std::env::set_var("LEDGER_SAGE_CALLS_PER_MINUTE", "0");
    }
    let args = <Args as clap::Parser>::parse();
    if args.mode == Mode::Fairness {
        return fairness(&args).await;
    }
    let (docs, merchants) = (args.docs, args.merchants);

    println!(
        "ledger bench: {docs} invoice events, {merchants} merchants, {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let (publish_rate, consume_rate) = baseline(&args.nats_url, docs.max(1000)).await?;
    println!("baseline  raw JetStream: publish {publish_rate:.0} msg/s, pull+ack {consume_rate:.0} msg/s");
    for &latency in &args.latencies_ms {
        let burst = run_engine(&args, latency, None, latency == 0).await?;
        anyhow::ensure!(
            burst.docs == docs,
            "only {} of {docs} documents reached Sage",
            burst.docs
        );
        let throughput = burst.docs as f64 / burst.elapsed.as_secs_f64();
        println!(
            "engine    sandbox latency {latency:>3} ms, backlog of {docs}: {throughput:.0} docs/s ({:.1}% of raw pull+ack); publish→Sage 201 p50 {} p99 {}; Sage calls/doc {:.3} (+{} token calls)",
            100.0 * throughput / consume_rate,
            ms(percentile(&burst.latencies, 0.50)),
            ms(percentile(&burst.latencies, 0.99)),
            burst.sage_calls as f64 / burst.docs.max(1) as f64,
            burst.token_calls,
        );
        if let Some(r) = &burst.replay {
            println!(
                "replay    {} already-synced events of {merchants} merchants through the documents service: {:.0} events/s; already synced {}, applied {}; Sage writes {}",
                r.seen,
                r.seen as f64 / r.elapsed.as_secs_f64(),
                r.already_synced,
                r.applied,
                r.sage_writes,
            );
            anyhow::ensure!(
                r.sage_writes == 0,
                "a replay of synced events wrote to Sage"
            );
        }
        let paced_rate = (throughput * 0.5).max(1.0);
        let paced = run_engine(&args, latency, Some(paced_rate), false).await?;
        anyhow::ensure!(
            paced.docs == docs,
            "only {} of {docs} documents reached Sage",
            paced.docs
        );
        println!(
            "engine    sandbox latency {latency:>3} ms, paced at {paced_rate:.0} docs/s (half the backlog rate): publish→Sage 201 p50 {} p99 {} max {}; Sage calls/doc {:.3}",
            ms(percentile(&paced.latencies, 0.50)),
            ms(percentile(&paced.latencies, 0.99)),
            ms(percentile(&paced.latencies, 1.0)),
            paced.sage_calls as f64 / paced.docs.max(1) as f64,
        );
    }
    Ok(())
}
