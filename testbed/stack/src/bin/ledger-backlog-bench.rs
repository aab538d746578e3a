//! `ledger-backlog-bench` (`just bench-backlog`): one merchant's backlog against Sage's call
//! limit, in one run, on a private nats-server and a fresh database:
//!
//! 1. **Calls per paid order** on a realistic mix: registered customers who come back, each
//!    order arriving as `customer.saved` (the address saved again), `invoice.created` and
//!    `invoice.paid`. The floor is 2 (the invoice and its receipt).
//! 2. **Backlog**: `BACKLOG_DOCS` historical invoices (dated a year back, as the module's
//!    backfill dates them) drain for one merchant while live invoices of the same merchant
//!    arrive at `BACKLOG_LIVE_RATE` a second; prints the live publish→Sage p50/p99, the budget
//!    used (the most Sage calls in any rolling minute against the budget), and the 429s.
//!    Sage's limit (the sandbox's rolling window) is `BACKLOG_SAGE_LIMIT` calls a minute;
//!    Ledger's own budget `BACKLOG_BUDGET` (both scaled up so a run takes minutes; the ratios
//!    count).
//! 3. **Replay** of the merchant's already-synced stream, once with a look-up per event
//!    (the baseline) and once batched: events/s and Sage writes (must be 0).
//!
//! Every line is printed even when a target is missed; the run fails (exit 1) on a 429 or a
//! replay that wrote to Sage.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use ledger_stack::events::{self, Draft};
use ledger_stack::{ms, percentile, Merchant, Stack, StackOptions};
use ledger_testkit::{TestDb, TestNats};
use sage_sandbox::{CallRecord, SandboxConfig};
use serde_json::json;

/// The run's size; each option also reads the environment variable of the same name.
#[derive(Debug, clap::Parser)]
#[command(
    name = "ledger-backlog-bench",
    about = "A backlog against Sage's call limit"
)]
struct Args {
    /// Historical invoices in the backlog.
    #[arg(long, env = "BACKLOG_DOCS", default_value_t = 10_000)]
    docs: u64,
    /// Live invoices sent while the backlog drains.
    #[arg(long, env = "BACKLOG_LIVE", default_value_t = 60)]
    live: u64,
    /// Live invoices a second.
    #[arg(long, env = "BACKLOG_LIVE_RATE", default_value_t = 1.0)]
    live_rate: f64,
    /// Sage's limit: calls a minute per business in any rolling minute (the sandbox's window).
    #[arg(long, env = "BACKLOG_SAGE_LIMIT", default_value_t = 12_000)]
    sage_limit: u32,
    /// Ledger's own call budget a minute per business.
    #[arg(long, env = "BACKLOG_BUDGET", default_value_t = 10_000)]
    budget: u32,
    /// Paid orders of the calls-per-order mix.
    #[arg(long, env = "BACKLOG_ORDERS", default_value_t = 200)]
    orders: u64,
    /// Registered customers the mix's orders come from.
    #[arg(long, env = "BACKLOG_CUSTOMERS", default_value_t = 40)]
    customers: u64,
    /// Seconds the backlog may take to drain.
    #[arg(long, env = "BACKLOG_TIMEOUT_SECS", default_value_t = 1_800)]
    timeout_secs: u64,
}

/// The Sage API calls (not OAuth) of a business, as the sandbox logged them.
fn api_calls(calls: &[CallRecord]) -> impl Iterator<Item = &CallRecord> {
    calls.iter().filter(|c| c.path.starts_with("/v3.1"))
}

/// The most calls in any window of `window` (timestamps sorted).
fn max_in_window(times: &[DateTime<Utc>], window: chrono::Duration) -> usize {
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] >= window {
            start += 1;
        }
        best = best.max(end + 1 - start);
    }
    best
}

/// Follows the sandbox's call log of one business from now on (it keeps the last 10,000
/// calls, so it is read often) until `stop` is set; returns every call seen.
fn follow_calls(
    stack: &Stack,
    business: &str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<anyhow::Result<Vec<CallRecord>>> {
    let inspector = stack.sandbox.inspect();
    let business = business.to_string();
    let mut last = inspector.calls(None, 1).last().map(|c| c.seq).unwrap_or(0);
    tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            let done = stop.load(std::sync::atomic::Ordering::SeqCst);
            let calls = inspector.calls(None, sage_sandbox::CALL_LOG_CAPACITY);
            anyhow::ensure!(
                calls.first().is_none_or(|c| c.seq <= last + 1),
                "the sandbox call log moved faster than it was read"
            );
            let floor = last;
            for call in calls.into_iter().filter(|c| c.seq > floor) {
                last = call.seq;
                if call.business_id.as_deref() == Some(business.as_str()) {
                    seen.push(call);
                }
            }
            if done {
                return Ok(seen);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

/// Publishes one event as the module does (straight into JetStream, `Nats-Msg-Id` = event id).
async fn publish(js: &async_nats::jetstream::Context, body: Vec<u8>) -> anyhow::Result<()> {
    let envelope = ledger_events::parse(&body)?;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", envelope.event_id.to_string().as_str());
    js.publish_with_headers(envelope.subject(), headers, body.into())
        .await?
        .await?;
    Ok(())
}

/// Waits until the merchant has `n` records of `resource` in Sage.
async fn wait_for(
    stack: &Stack,
    m: &Merchant,
    resource: &str,
    n: usize,
    timeout: Duration,
) -> bool {
    stack
        .wait_until(timeout, || stack.documents(m, resource).len() >= n)
        .await
}

/// 1. Sage calls per paid order on a mix of returning registered customers.
async fn calls_per_order(stack: &Stack, args: &Args) -> anyhow::Result<()> {
    let m = stack.onboard("mix").await?;
    let js = async_nats::jetstream::new(stack.nats.clone());
    let customers = args.customers.max(1);
    for i in 0..args.orders {
        let c = 1_000 + i % customers;
        let email = format!("customer{c}@example.com");
        // The account as Magento saves it with each order: same details every time.
        let mut saved = Draft::from_template(events::CUSTOMER_SAVED, "mix", None);
        saved.value_mut()["payload"]["customer"]["id"] = json!(c);
        saved.value_mut()["payload"]["customer"]["email"] = json!(email);
        let invoice = Draft::invoice("mix", i).customer(c, &email);
        publish(&js, saved.build().body).await?;
        publish(&js, invoice.build().body).await?;
        publish(&js, invoice.paid().build().body).await?;
    }
    let orders = args.orders as usize;
    let timeout = Duration::from_secs(args.timeout_secs);
    anyhow::ensure!(
        wait_for(stack, &m, "contact_payments", orders, timeout).await,
        "the mix's payments did not all reach Sage"
    );
    // The last customer.saved may still be on its way: give it a moment to write (or not).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls = stack.sandbox.inspect().calls(Some(&m.business_id), 10_000);
    let api: Vec<&CallRecord> = api_calls(&calls).collect();
    let count = |method: &str, prefix: &str| {
        api.iter()
            .filter(|c| c.method == method && c.path.starts_with(prefix))
            .count()
    };
    let mut other: std::collections::BTreeMap<String, usize> = Default::default();
    for c in &api {
        let known = [
            "/v3.1/sales_invoices",
            "/v3.1/contact_payments",
            "/v3.1/contacts",
        ];
        if !(c.method == "POST" && known.iter().any(|k| c.path.starts_with(k))
            || c.method == "PUT" && c.path.starts_with("/v3.1/contacts"))
        {
            *other.entry(format!("{} {}", c.method, c.path)).or_default() += 1;
        }
    }
    println!(
        "calls per paid order: {:.2} (floor 2) over {orders} orders of {customers} returning customers: {} calls = invoices {} + receipts {} + contact POST {} + contact PUT {} + other {} {other:?}",
        api.len() as f64 / orders.max(1) as f64,
        api.len(),
        count("POST", "/v3.1/sales_invoices"),
        count("POST", "/v3.1/contact_payments"),
        count("POST", "/v3.1/contacts"),
        count("PUT", "/v3.1/contacts"),
        api.len()
            - count("POST", "/v3.1/sales_invoices")
            - count("POST", "/v3.1/contact_payments")
            - count("POST", "/v3.1/contacts")
            - count("PUT", "/v3.1/contacts"),
    );
    Ok(())
}

/// 2. The backlog with live invoices beside it; returns the merchant and its 429s.
async fn backlog(stack: &Stack, args: &Args) -> anyhow::Result<(Merchant, usize)> {
    let m = stack.onboard("backlog").await?;
    let js = async_nats::jetstream::new(stack.nats.clone());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let follower = follow_calls(stack, &m.business_id, stop.clone());
    let started = Instant::now();
    // Historical documents, dated when they happened (a year back), as the backfill sends them.
    let docs = args.docs;
    let history = {
        let js = js.clone();
        let at = (Utc::now() - chrono::Duration::days(365)).to_rfc3339();
        tokio::spawn(async move {
            for n in 0..docs {
                let mut d = Draft::invoice("backlog", n);
                d.value_mut()["occurred_at"] = json!(at);
                publish(&js, d.build().body).await?;
            }
            Ok::<_, anyhow::Error>(())
        })
    };
    let mut sent: Vec<(String, DateTime<Utc>)> = Vec::new();
    for i in 0..args.live {
        let d = Draft::invoice("backlog", 10_000_000 + i);
        sent.push((d.increment_id(), Utc::now()));
        publish(&js, d.build().body).await?;
        let due = started + Duration::from_secs_f64((i + 1) as f64 / args.live_rate.max(0.01));
        tokio::time::sleep_until(due.into()).await;
    }
    history.await??;
    let total = (args.docs + args.live) as usize;
    let timeout = Duration::from_secs(args.timeout_secs);
    // Live invoices: when each appeared in Sage (polled, so within the poll interval).
    let mut landed: std::collections::HashMap<String, DateTime<Utc>> = Default::default();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let docs = stack.documents(&m, "sales_invoices");
        let now = Utc::now();
        for d in &docs {
            if let Some(r) = d["reference"].as_str() {
                if sent.iter().any(|(s, _)| s == r) {
                    landed.entry(r.to_string()).or_insert(now);
                }
            }
        }
        if docs.len() >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let drained = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let calls = follower.await??;
    let in_sage = stack.documents(&m, "sales_invoices").len();
    let mut times: Vec<DateTime<Utc>> = api_calls(&calls).map(|c| c.at).collect();
    times.sort();
    let most = max_in_window(&times, chrono::Duration::seconds(60));
    let rejected = api_calls(&calls).filter(|c| c.status == 429).count();
    let mut latencies: Vec<Duration> = sent
        .iter()
        .filter_map(|(r, at)| {
            landed
                .get(r)
                .map(|l| (*l - *at).to_std().unwrap_or_default())
        })
        .collect();
    latencies.sort();
    println!(
        "backlog: {} historical + {} live invoices of one merchant, {in_sage} in Sage after {:.1} s",
        args.docs,
        args.live,
        drained.as_secs_f64()
    );
    println!(
        "budget: most Sage calls in any rolling minute {most} = {:.1}% of the budget {} (Sage's limit {}); 429s: {rejected} (target 0)",
        100.0 * most as f64 / args.budget.max(1) as f64,
        args.budget,
        args.sage_limit,
    );
    println!(
        "live: publish→Sage p50 {} p99 {} over {} of {} live invoices, while the backlog drained",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        latencies.len(),
        args.live,
    );
    Ok((m, rejected))
}

/// Sage writes (POST, PUT, DELETE) of a business so far.
fn writes(stack: &Stack, business: &str) -> u64 {
    stack
        .sandbox
        .inspect()
        .stats_for(business)
        .calls
        .iter()
        .filter(|c| matches!(c.method.as_str(), "POST" | "PUT" | "DELETE"))
        .filter(|c| c.path.starts_with("/v3.1"))
        .map(|c| c.count)
        .sum()
}

/// 3. Replays the merchant's synced stream per event, then batched; returns the writes.
async fn replays(stack: &Stack, m: &Merchant) -> anyhow::Result<u64> {
    let mut wrote = 0;
    for (label, per_event_lookups) in [("per-event look-ups (baseline)", true), ("batched", false)]
    {
        let before = writes(stack, &m.business_id);
        let started = Instant::now();
        let summary = ledger_runtime::replay::request(
            &stack.nats,
            "documents",
            &ledger_runtime::replay::Command {
                merchant: m.id.clone(),
                since: None,
                until: None,
                dry_run: false,
                per_event_lookups,
            },
            Duration::from_secs(600),
            |_| {},
        )
        .await
        .map_err(anyhow::Error::msg)?;
        let took = started.elapsed();
        let w = writes(stack, &m.business_id) - before;
        wrote += w;
        println!(
            "replay {label}: {} events in {:.2} s = {:.0} ev/s (target ≥ 20000), already synced {}, Sage writes {w} (target 0)",
            summary.seen,
            took.as_secs_f64(),
            summary.seen as f64 / took.as_secs_f64().max(1e-9),
            summary.already_synced,
        );
    }
    Ok(wrote)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    std::env::set_var("LEDGER_SAGE_CALLS_PER_MINUTE", args.budget.to_string());
    println!(
        "bench-backlog: {} historical + {} live invoices; {} paid orders of {} customers; budget {}/min, Sage limit {}/min; {} cores",
        args.docs,
        args.live,
        args.orders,
        args.customers,
        args.budget,
        args.sage_limit,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let nats = TestNats::start().await.context("nats-server")?;
    let db = TestDb::create().await.context("database")?;
    let stack = Stack::start(StackOptions {
        sandbox: SandboxConfig {
            rate_limit_per_minute: Some(args.sage_limit),
            ..SandboxConfig::default()
        },
        concurrency: 64,
        ..StackOptions::new(nats.url(), db.url())
    })
    .await?;
    calls_per_order(&stack, &args).await?;
    let (m, rejected) = backlog(&stack, &args).await?;
    let wrote = replays(&stack, &m).await?;
    println!(
        "rss: per-service RSS at 100 / 1,000 / 10,000 merchants is not measured by this run (the engine runs in one process here)"
    );
    stack.stop().await;
    drop(db);
    drop(nats);
    anyhow::ensure!(rejected == 0, "Sage answered 429 {rejected} times");
    anyhow::ensure!(wrote == 0, "a replay of synced events wrote to Sage");
    Ok(())
}
