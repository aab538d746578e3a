//! `ledger-backlog-bench` (`just bench-backlog`): one merchant's backlog against Sage's call
//! limit, in one run, on a private nats-server and a fresh database:
//!
//! 1. **Calls per paid order** on a realistic mix: registered customers who come back, each
//!    order arriving as `customer.saved` (the address saved again), `invoice.created` and
//!    `invoice.paid`. The floor is 2 (the invoice and its receipt).
//! 2. **Backlog**: a backfill of `BACKLOG_DOCS` historical invoices (the module's header, then
//!    each invoice with the run's `backfill_id`, so they travel the history lane) drains for
//!    one merchant while live invoices of the same merchant arrive on the live subjects at
//!    `BACKLOG_LIVE_RATE` a second; prints the live publish→Sage p50/p99 and the pace
//!    ([`ledger_stack::PaceReport`]: budget used, 429s, busiest rolling minute against the
//!    budget). Sage's limit (the sandbox's rolling minute) is `BACKLOG_SAGE_LIMIT` calls and
//!    Ledger's budget `BACKLOG_BUDGET` (by default the same: the budget is meant to be used to
//!    the last call without a 429); both are scaled up so a run takes minutes, the ratios
//!    count.
//! 3. **Replay** of the merchant's already-synced stream of `BACKLOG_REPLAY_EVENTS` events,
//!    once with a look-up per event (the baseline, over the stream's first
//!    `BACKLOG_REPLAY_BASELINE` events) and once batched: events/s and Sage writes
//!    (must be 0). The stream is the backlog's invoices, synced through Sage, topped up with
//!    invoices the module sent again (`invoice.created` of an invoice already in Sage, with a
//!    new event id); the engine handles those itself (already in Sage, recorded in its audit
//!    trail) before the replay starts.
//!
//! 4. **Memory**: the service binaries (gateway, contacts, documents, payments) as separate
//!    processes on their own nats-server and database, with `BACKLOG_RSS_MERCHANTS` merchants
//!    onboarded in turn (through the gateway's admin API and OAuth callback), each with an
//!    invoice and its payment synced so that every service holds per-merchant state; the
//!    `VmRSS` of each process at each size against the 64 MiB target. The binaries are looked
//!    for beside this one (`cargo build -p gateway -p contacts -p documents -p payments`).
//!
//! Every line is printed even when a target is missed; the run fails (exit 1) on a 429 or a
//! replay that wrote to Sage.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use ledger_stack::events::{self, Draft};
use ledger_stack::{ms, percentile, Merchant, PaceReport, Stack, StackOptions};
use ledger_testkit::{TestDb, TestNats};
use sage_sandbox::{CallRecord, SandboxConfig};
use serde_json::json;
use std::future::IntoFuture;

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
    #[arg(long, env = "BACKLOG_SAGE_LIMIT", default_value_t = 6_000)]
    sage_limit: u32,
    /// Ledger's own call budget a minute per business; by default Sage's limit.
    #[arg(long, env = "BACKLOG_BUDGET")]
    budget: Option<u32>,
    /// Events of the already-synced stream the replay reads (at least the backlog's invoices).
    #[arg(long, env = "BACKLOG_REPLAY_EVENTS", default_value_t = 100_000)]
    replay_events: u64,
    /// Events the per-event baseline replays (the stream's first; it is slow by design).
    #[arg(long, env = "BACKLOG_REPLAY_BASELINE", default_value_t = 10_000)]
    replay_baseline: u64,
    /// Paid orders of the calls-per-order mix.
    #[arg(long, env = "BACKLOG_ORDERS", default_value_t = 200)]
    orders: u64,
    /// Registered customers the mix's orders come from.
    #[arg(long, env = "BACKLOG_CUSTOMERS", default_value_t = 40)]
    customers: u64,
    /// Merchant counts at which each service process's RSS is read (comma-separated,
    /// ascending; empty: no RSS step).
    #[arg(long, env = "BACKLOG_RSS_MERCHANTS", default_value = "100,1000,10000")]
    rss_merchants: String,
    /// Seconds the backlog may take to drain.
    #[arg(long, env = "BACKLOG_TIMEOUT_SECS", default_value_t = 1_800)]
    timeout_secs: u64,
}

impl Args {
    /// The merchant counts of the memory step, ascending.
    fn rss_sizes(&self) -> anyhow::Result<Vec<u64>> {
        let mut sizes = Vec::new();
        for part in self.rss_merchants.split(',').map(str::trim) {
            if !part.is_empty() {
                sizes.push(part.parse::<u64>().with_context(|| {
                    format!("BACKLOG_RSS_MERCHANTS: {part:?} is not a merchant count")
                })?);
            }
        }
        anyhow::ensure!(
            sizes.windows(2).all(|w| w[0] < w[1]),
            "BACKLOG_RSS_MERCHANTS: the counts must ascend ({})",
            self.rss_merchants
        );
        Ok(sizes)
    }

    /// Ledger's budget: `--budget`, or Sage's limit.
    fn budget(&self) -> u32 {
        self.budget.unwrap_or(self.sage_limit)
    }
}

/// The backfill run of the backlog.
const BACKFILL_ID: &str = "bf-bench-backlog";
/// Events published before their acknowledgements are awaited.
const PUBLISH_WINDOW: usize = 500;

/// The Sage API calls (not OAuth) of a business, as the sandbox logged them.
fn api_calls(calls: &[CallRecord]) -> impl Iterator<Item = &CallRecord> {
    calls.iter().filter(|c| c.path.starts_with("/v3.1"))
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

/// Publishes events as [`publish`] does, [`PUBLISH_WINDOW`] at a time before awaiting their
/// acknowledgements (the order on a subject is kept: one connection, published in turn).
async fn publish_all(
    js: &async_nats::jetstream::Context,
    bodies: impl IntoIterator<Item = Vec<u8>>,
) -> anyhow::Result<()> {
    let mut acks = Vec::with_capacity(PUBLISH_WINDOW);
    for body in bodies {
        let envelope = ledger_events::parse(&body)?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", envelope.event_id.to_string().as_str());
        acks.push(
            js.publish_with_headers(envelope.subject(), headers, body.into())
                .await?
                .into_future(),
        );
        if acks.len() >= PUBLISH_WINDOW {
            futures::future::try_join_all(acks.drain(..)).await?;
        }
    }
    futures::future::try_join_all(acks).await?;
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
        // The account as Magento saves it with each order: the person the order bills, with
        // the order's addresses as the default ones, the same details every time.
        let invoice = Draft::invoice("mix", i).customer(c, &email);
        let saved = invoice.customer_saved();
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

/// 2. The backfill with live invoices beside it; returns the merchant and its 429s.
async fn backlog(stack: &Stack, db: &sqlx::PgPool, args: &Args) -> anyhow::Result<(Merchant, u64)> {
    let m = stack.onboard("backlog").await?;
    let js = async_nats::jetstream::new(stack.nats.clone());
    let window = Duration::from_secs(60);
    // Onboarding's calls (the gateway's) are not the run's.
    let before = stack.sandbox.inspect().stats_for(&m.business_id);
    let started = Instant::now();
    // The module announces the backfill, then sends each historical invoice as history,
    // dated when it happened (within the header's year).
    stack
        .publish_backfill_header(&events::backfill_header(&m.id, BACKFILL_ID, args.docs))
        .await?;
    let docs = args.docs;
    let history = {
        let js = js.clone();
        tokio::spawn(async move {
            publish_all(
                &js,
                (0..docs).map(|n| {
                    let mut d = Draft::invoice("backlog", n);
                    d.value_mut()["occurred_at"] = json!("2025-06-15T10:00:00+00:00");
                    events::as_history(&d.build(), BACKFILL_ID).body
                }),
            )
            .await
        })
    };
    let mut sent: Vec<(String, DateTime<Utc>)> = Vec::new();
    for i in 0..args.live {
        let event = Draft::invoice("backlog", 10_000_000 + i).build();
        sent.push((event.event_id.to_string(), Utc::now()));
        publish(&js, event.body).await?;
        let due = started + Duration::from_secs_f64((i + 1) as f64 / args.live_rate.max(0.01));
        tokio::time::sleep_until(due.into()).await;
    }
    history.await??;
    let total = (args.docs + args.live) as i64;
    // Drained when the documents service has handled every invoice to the end (its audit
    // trail; a cheap query, so the bench takes no CPU from the engine while it waits).
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    while handled(db, &m.id).await? < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let drained = started.elapsed();
    // Live invoices: when the engine recorded each as applied (after Sage answered).
    let ids: Vec<String> = sent.iter().map(|(id, _)| id.clone()).collect();
    let applied: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT event_id, min(recorded_at) FROM documents.audit_records
         WHERE merchant_id = $1 AND outcome = 'applied' AND event_id = ANY($2)
         GROUP BY event_id",
    )
    .bind(&m.id)
    .bind(&ids)
    .fetch_all(db)
    .await?;
    let landed: std::collections::HashMap<String, DateTime<Utc>> = applied.into_iter().collect();
    let in_sage = stack.documents(&m, "sales_invoices").len();
    let stats = stack.sandbox.inspect().stats_for(&m.business_id);
    let mut pace = PaceReport::from_stats(&stats, &m.business_id, args.budget(), window, drained);
    let earlier = PaceReport::from_stats(&before, &m.business_id, args.budget(), window, drained);
    pace.calls -= earlier.calls;
    pace.rejected_429 -= earlier.rejected_429;
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
        "backlog: backfill of {} historical invoices (history lane) + {} live invoices of the same merchant, {in_sage} in Sage after {:.1} s",
        args.docs,
        args.live,
        drained.as_secs_f64()
    );
    println!(
        "budget: {pace} (budget = {}/min, Sage's limit {}/min; targets: used ≥ 95 %, 429s 0, busiest window ≤ budget)",
        args.budget(),
        args.sage_limit,
    );
    println!(
        "live: publish→applied (Sage answered, outcome recorded) p50 {} p99 {} (target ≤ 5000 ms) over {} of {} live invoices, while the backfill drained",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        latencies.len(),
        args.live,
    );
    Ok((m, pace.rejected_429))
}

/// Stream sequences of `merchant`'s events the documents service has handled to the end
/// (its audit trail: what a batched replay counts as already synced).
async fn handled(db: &sqlx::PgPool, merchant: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(DISTINCT stream_sequence) FROM documents.audit_records
         WHERE merchant_id = $1 AND outcome IN ('applied', 'already_done')",
    )
    .bind(merchant)
    .fetch_one(db)
    .await?)
}

/// Tops the merchant's synced stream up to `args.replay_events` events with invoices the
/// module sent again (already in Sage) and waits until the engine has handled them all;
/// returns how many were sent.
async fn top_up(
    stack: &Stack,
    db: &sqlx::PgPool,
    m: &Merchant,
    args: &Args,
) -> anyhow::Result<u64> {
    let synced = args.docs + args.live;
    let extra = args.replay_events.saturating_sub(synced);
    let js = async_nats::jetstream::new(stack.nats.clone());
    let docs = args.docs.max(1);
    let started = Instant::now();
    publish_all(
        &js,
        (0..extra).map(|i| Draft::invoice("backlog", i % docs).build().body),
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let want = (synced + extra) as i64;
    let mut done = handled(db, &m.id).await?;
    while done < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        done = handled(db, &m.id).await?;
    }
    anyhow::ensure!(
        done >= want,
        "the engine handled {done} of the {want} events before the replay"
    );
    println!(
        "replay stream: {synced} invoices synced through Sage + {extra} re-sent invoice.created of the same invoices, handled by the engine (already in Sage) in {:.1} s = {:.0} ev/s",
        started.elapsed().as_secs_f64(),
        extra as f64 / started.elapsed().as_secs_f64().max(1e-9),
    );
    Ok(extra)
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
async fn replays(stack: &Stack, m: &Merchant, args: &Args) -> anyhow::Result<u64> {
    let mut wrote = 0;
    for (label, per_event_lookups, limit) in [
        (
            "per-event look-ups (baseline)",
            true,
            Some(args.replay_baseline),
        ),
        ("batched", false, None),
    ] {
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
                limit,
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

/// The resident set (`VmRSS` of `/proc/<pid>/status`) of a process in MiB, when readable.
fn rss_mib(pid: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The per-service memory target.
const RSS_TARGET_MIB: f64 = 64.0;

/// Onboards merchant `id` on the gateway at `gateway_url` as [`Stack::onboard`] does (admin
/// API, a sandbox business, the OAuth start and callback).
async fn onboard_remote(
    http: &reqwest::Client,
    sandbox: &sage_sandbox::Sandbox,
    gateway_url: &str,
    id: &str,
) -> anyhow::Result<()> {
    http.post(format!("{gateway_url}/v1/admin/merchants"))
        .bearer_auth(ledger_stack::ADMIN_TOKEN)
        .json(&json!({"merchant_id": id, "name": format!("Shop {id}")}))
        .send()
        .await?
        .error_for_status()
        .with_context(|| format!("register merchant {id}"))?;
    let business = sandbox
        .create_business(sage_sandbox::BusinessSpec {
            name: format!("Shop {id} Ltd"),
            ..sage_sandbox::BusinessSpec::default()
        })
        .await;
    let code = sandbox.issue_authorization_code(&business.id).await;
    ledger_stack::connect_through_gateway(http, gateway_url, ledger_stack::ADMIN_TOKEN, id, &code)
        .await
        .with_context(|| format!("connect merchant {id}"))?;
    Ok(())
}

/// Merchants whose payment the payments service has posted (its audit trail).
async fn paid_merchants(db: &sqlx::PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(DISTINCT merchant_id) FROM payments.audit_records WHERE outcome = 'applied'",
    )
    .fetch_one(db)
    .await?)
}

/// Starts one service binary on ports of its own and waits until it answers its health URL;
/// returns it and its base URL. A port picked free can be taken by another process before
/// the service binds it (its health URL then answers for someone else): a service that exits
/// right after coming up is started again on new ports.
async fn start_service(
    service: &str,
    bin_dir: &std::path::Path,
    nats: &TestNats,
    db: &TestDb,
    sandbox: &sage_sandbox::Sandbox,
    logs: &std::path::Path,
) -> anyhow::Result<(ledger_stack::cluster::Proc, String)> {
    use ledger_stack::cluster::{sage_env, Proc};
    for _attempt in 0..5 {
        let http_port = ledger_testkit::free_port();
        let gateway_url = format!("http://127.0.0.1:{http_port}");
        let metrics = ledger_testkit::free_port();
        let mut env: Vec<(String, String)> = vec![
            ("LEDGER_NATS_URL".into(), nats.url()),
            ("LEDGER_DATABASE_URL".into(), db.url().to_string()),
            ("LEDGER_METRICS_ADDR".into(), format!("127.0.0.1:{metrics}")),
            ("SAGE_API_BASE_URL".into(), sandbox.api_base_url()),
            ("LEDGER_LOG_FORMAT".into(), "text".into()),
            ("RUST_LOG".into(), "warn".into()),
            // A test build's futures are deeper than its default 2 MiB worker stacks allow
            // (contacts overflows them); a release build's are not. No effect on the heap.
            ("RUST_MIN_STACK".into(), (8 * 1024 * 1024).to_string()),
        ];
        let health = if service == "gateway" {
            env.extend(sage_env(&sandbox).into_iter().skip(1));
            let relaxed = [
                ("LEDGER_HTTP_ADDR", format!("127.0.0.1:{http_port}")),
                ("LEDGER_PUBLIC_URL", gateway_url.clone()),
                ("LEDGER_TOKEN_KEY", "a1".repeat(32)),
                ("LEDGER_ADMIN_TOKEN", ledger_stack::ADMIN_TOKEN.to_string()),
                ("LEDGER_NATS_ALLOW_PLAIN", "true".into()),
                // One client onboards every merchant: no per-IP or per-key throttle.
                ("LEDGER_LIMIT_IP_PER_SECOND", "100000".into()),
                ("LEDGER_LIMIT_IP_BURST", "100000".into()),
                ("LEDGER_LIMIT_KEY_PER_SECOND", "100000".into()),
                ("LEDGER_LIMIT_KEY_BURST", "100000".into()),
                ("LEDGER_MAX_OPEN_PAIRINGS_PER_IP", "100000".into()),
                ("LEDGER_BOOKS_CHECK_INTERVAL_SECS", "0".into()),
            ];
            env.extend(relaxed.into_iter().map(|(k, v)| (k.to_string(), v)));
            format!("{gateway_url}/healthz")
        } else {
            format!("http://127.0.0.1:{metrics}/healthz")
        };
        let mut proc = Proc::new(
            service,
            0,
            bin_dir.join(service),
            env,
            logs.join(format!("{service}.log")),
            health,
        );
        proc.spawn()?;
        proc.wait_healthy()
            .await
            .with_context(|| format!("{service} did not come up; see {}", logs.display()))?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if proc.exited()? {
            eprintln!("rss: {service} exited right after starting (a port taken?); starting again");
            continue;
        }
        let url = if service == "gateway" {
            gateway_url
        } else {
            format!("http://127.0.0.1:{metrics}")
        };
        return Ok((proc, url));
    }
    anyhow::bail!(
        "{service} exited right after starting five times; see {}",
        logs.display()
    )
}

/// 4. Each service binary's RSS with more and more merchants; returns the largest reading.
async fn memory(args: &Args) -> anyhow::Result<f64> {
    use futures::StreamExt;
    use ledger_stack::cluster::SERVICES;
    let bin_dir = std::env::current_exe()?
        .parent()
        .context("the bench's directory")?
        .to_path_buf();
    for service in SERVICES {
        anyhow::ensure!(
            bin_dir.join(service).exists(),
            "rss: no {service} binary in {} (cargo build -p gateway -p contacts -p documents -p payments, same profile)",
            bin_dir.display()
        );
    }
    let nats = TestNats::start().await.context("nats-server")?;
    let db = TestDb::create().await.context("database")?;
    let sandbox = sage_sandbox::Sandbox::start(SandboxConfig::default()).await?;
    let logs = std::env::temp_dir().join(format!("ledger-backlog-bench-{}", std::process::id()));
    std::fs::create_dir_all(&logs)?;
    let mut gateway_url = String::new();
    let mut procs = Vec::new();
    for service in SERVICES {
        let (proc, url) = start_service(service, &bin_dir, &nats, &db, &sandbox, &logs).await?;
        if service == "gateway" {
            gateway_url = url;
        }
        procs.push(proc);
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let client = ledger_runtime::bus::connect(&nats.url(), "backlog-bench-rss").await?;
    let js = async_nats::jetstream::new(client);
    let pool = sqlx::PgPool::connect(db.url()).await?;
    let mut onboarded = 0u64;
    let mut largest: f64 = 0.0;
    for size in args.rss_sizes()? {
        let started = Instant::now();
        let ids: Vec<String> = (onboarded..size).map(|i| format!("m{i:05}")).collect();
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(ids.iter())
            .map(|id| onboard_remote(&http, &sandbox, &gateway_url, id))
            .buffer_unordered(16)
            .collect()
            .await;
        for r in results {
            r?;
        }
        // Each merchant's first invoice and its payment: a contact, an invoice, a receipt.
        publish_all(
            &js,
            ids.iter().flat_map(|id| {
                let invoice = Draft::invoice(id, 1);
                [invoice.build().body, invoice.paid().build().body]
            }),
        )
        .await?;
        onboarded = onboarded.max(size);
        let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
        let mut paid = paid_merchants(&pool).await?;
        while paid < onboarded as i64 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            paid = paid_merchants(&pool).await?;
        }
        // Let the last requests finish before reading.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut readings = Vec::new();
        for proc in &procs {
            let mib = proc
                .pid()
                .and_then(|pid| rss_mib(&pid.to_string()))
                .with_context(|| {
                    format!("{} is not running; see {}", proc.service, logs.display())
                })?;
            largest = largest.max(mib);
            readings.push(format!("{} {mib:.1} MiB", proc.service));
        }
        println!(
            "rss at {onboarded} merchants ({paid} with an invoice and its payment in Sage, {:.1} s to onboard and sync): {} (target ≤ {RSS_TARGET_MIB:.0} MiB each)",
            started.elapsed().as_secs_f64(),
            readings.join(", "),
        );
        anyhow::ensure!(
            paid >= onboarded as i64,
            "only {paid} of {onboarded} merchants' payments reached Sage"
        );
    }
    for proc in &mut procs {
        proc.stop();
    }
    sandbox.shutdown().await;
    Ok(largest)
}

fn main() -> anyhow::Result<()> {
    // The whole engine runs in this process; its futures are deeper than a test build's
    // default 2 MiB worker stacks allow.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 * 1024 * 1024)
        .build()?
        .block_on(run())
}

/// The benchmark: every step in turn, then the verdict.
async fn run() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    args.rss_sizes()?;
    println!(
        "bench-backlog: {} historical + {} live invoices; {} paid orders of {} customers; budget {}/min, Sage limit {}/min; replay of {} events; {} cores",
        args.docs,
        args.live,
        args.orders,
        args.customers,
        args.budget(),
        args.sage_limit,
        args.replay_events,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let nats = TestNats::start().await.context("nats-server")?;
    let db = TestDb::create().await.context("database")?;
    let stack = Stack::start(StackOptions {
        sandbox: SandboxConfig {
            rate_limit_per_minute: Some(args.sage_limit),
            ..SandboxConfig::default()
        },
        gate: Some(ledger_rpc::GateLimits {
            calls_per_minute: args.budget(),
            ..ledger_stack::gate_limits()
        }),
        concurrency: 64,
        ..StackOptions::new(nats.url(), db.url())
    })
    .await?;
    calls_per_order(&stack, &args).await?;
    let pool = sqlx::PgPool::connect(db.url()).await?;
    let (m, rejected) = backlog(&stack, &pool, &args).await?;
    top_up(&stack, &pool, &m, &args).await?;
    let wrote = replays(&stack, &m, &args).await?;
    stack.stop().await;
    drop(db);
    drop(nats);
    if !args.rss_sizes()?.is_empty() {
        let largest = memory(&args).await?;
        println!(
            "rss: largest service process {largest:.1} MiB (target ≤ {RSS_TARGET_MIB:.0} MiB)"
        );
    }
    anyhow::ensure!(rejected == 0, "Sage answered 429 {rejected} times");
    anyhow::ensure!(wrote == 0, "a replay of synced events wrote to Sage");
    Ok(())
}
