//! `ledger-history-bench`: how fast the portal's sync history answers for a merchant with
//! 100,000 documents.
//!
//! Starts the engine (see `ledger_stack::Stack`) on its own NATS server and a throwaway
//! database of the test cluster (`LEDGER_TEST_PG_URL`, `LEDGER_NATS_SERVER_BIN`; `just
//! bench-history` sets both), writes `--docs` documents' latest states for one merchant and
//! `--other-docs` for each of `--others` other merchants straight into the gateway's
//! projection (`status_documents`, as the status projector leaves it), signs in to the portal
//! as the first merchant and times each query over HTTP `--runs` times: the first page, a
//! filtered page, a date range, a deep page, a Magento number search, the front page with its
//! checklist, and a filtered CSV export. Prints p50 and p99 per query; exits non-zero when a
//! history page's p99 exceeds `--target-ms`.

use std::time::{Duration, Instant};

use anyhow::Context;
use ledger_stack::{ms, percentile, Stack, StackOptions};
use ledger_testkit::{TestDb, TestNats};
use serde_json::Value;

/// The run's size; each option also reads the environment variable of the same name.
#[derive(Debug, clap::Parser)]
#[command(
    name = "ledger-history-bench",
    about = "Latency of the portal's sync history at 100,000 documents"
)]
struct Args {
    /// Documents of the measured merchant.
    #[arg(long, env = "HISTORY_DOCS", default_value_t = 100_000)]
    docs: i64,
    /// Other merchants sharing the table.
    #[arg(long, env = "HISTORY_OTHERS", default_value_t = 4)]
    others: usize,
    /// Documents of each other merchant.
    #[arg(long, env = "HISTORY_OTHER_DOCS", default_value_t = 50_000)]
    other_docs: i64,
    /// Timed requests per query (after one untimed).
    #[arg(long, env = "HISTORY_RUNS", default_value_t = 50)]
    runs: usize,
    /// Highest acceptable p99 of a history page, in milliseconds.
    #[arg(long, env = "HISTORY_TARGET_MS", default_value_t = 300)]
    target_ms: u64,
}

/// Writes `n` documents' latest states for `merchant`: mostly synced, some skipped, failed
/// and waiting, of every type, changed over the last year (position order is time order).
async fn seed(db: &sqlx::PgPool, merchant: &str, n: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO status_documents
             (merchant_id, document_key, position, entity, magento_number, state, at,
              sage_number, sage_reference, sage_id, skip_reason, error_code, detail, message)
         SELECT $1, kind || ':1:' || num, g, kind, num, state,
                now() - make_interval(secs => ($2 - g) * 31536000.0 / $2),
                CASE WHEN state = 'synced' THEN 'SI-' || g END,
                CASE WHEN state = 'synced' THEN num END,
                CASE WHEN state = 'synced' THEN md5(num) END,
                CASE WHEN state = 'skipped' THEN 'unmapped_tax_rate' END,
                CASE WHEN state IN ('failed', 'pending') THEN 'sage.validation' END,
                CASE WHEN state = 'skipped' THEN 'invoice.items[0]: 17.5% has no Sage rate' END,
                CASE WHEN state = 'failed' THEN 'ledger_account_id: not found' END
         FROM (
             SELECT g, lpad(g::text, 9, '0') AS num,
                    (ARRAY['invoice', 'invoice', 'invoice', 'payment', 'payment', 'creditmemo',
                           'customer', 'product'])[1 + g % 8] AS kind,
                    CASE WHEN g % 20 = 0 THEN 'failed' WHEN g % 20 = 1 THEN 'pending'
                         WHEN g % 10 = 2 THEN 'skipped' ELSE 'synced' END AS state
             FROM generate_series(1, $2) AS g
         ) docs",
    )
    .bind(merchant)
    .bind(n)
    .execute(db)
    .await
    .with_context(|| format!("seeding {merchant}"))?;
    Ok(())
}

/// Signs in to `merchant`'s portal as a browser would; returns the session cookie.
async fn sign_in(stack: &Stack, http: &reqwest::Client, merchant: &str) -> anyhow::Result<String> {
    let link: Value = http
        .post(format!(
            "{}/v1/admin/merchants/{merchant}/portal-links",
            stack.gateway_url
        ))
        .bearer_auth(ledger_stack::ADMIN_TOKEN)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let url = reqwest::Url::parse(link["url"].as_str().context("link url")?)?;
    let token = url
        .query_pairs()
        .find(|(k, _)| k == "token")
        .context("link token")?
        .1
        .to_string();
    let response = http
        .post(format!("{}/portal/login", stack.gateway_url))
        .form(&[("token", token)])
        .send()
        .await?;
    let cookie = response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{}=", gateway::portal::COOKIE)))
        .context("session cookie")?;
    Ok(cookie.split(';').next().unwrap_or_default().to_string())
}

/// Times `runs` GETs of `path`; each must answer 200 and contain `must_contain`.
async fn time(
    stack: &Stack,
    http: &reqwest::Client,
    cookie: &str,
    path: &str,
    must_contain: &str,
    runs: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut took = Vec::with_capacity(runs);
    for run in 0..=runs {
        let started = Instant::now();
        let response = http
            .get(format!("{}{path}", stack.gateway_url))
            .header(reqwest::header::COOKIE, cookie)
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        let elapsed = started.elapsed();
        anyhow::ensure!(status.is_success(), "{path}: {status}");
        anyhow::ensure!(
            body.contains(must_contain),
            "{path}: no `{must_contain}` in the answer"
        );
        if run > 0 {
            took.push(elapsed);
        }
    }
    took.sort();
    Ok(took)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let nats = TestNats::start().await.context("nats-server")?;
    let db = TestDb::create().await.context("test database")?;
    let stack = Stack::start(StackOptions::new(nats.url(), db.url())).await?;
    let result = run(&args, &stack, db.url()).await;
    stack.stop().await;
    result
}

async fn run(args: &Args, stack: &Stack, db_url: &str) -> anyhow::Result<()> {
    let merchant = "history-bench";
    stack.onboard(merchant).await?;
    let pool = ledger_runtime::db::connect_schema(db_url, "gateway", 2).await?;
    let started = Instant::now();
    seed(&pool, merchant, args.docs).await?;
    for i in 0..args.others {
        let other = format!("history-bench-other-{i}");
        stack.onboard(&other).await?;
        seed(&pool, &other, args.other_docs).await?;
    }
    sqlx::query("ANALYZE status_documents")
        .execute(&pool)
        .await?;
    println!(
        "history bench: {} documents of {merchant}, {} × {} of other merchants, written in {:.1} s; {} runs per query",
        args.docs,
        args.others,
        args.other_docs,
        started.elapsed().as_secs_f64(),
        args.runs
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let cookie = sign_in(stack, &http, merchant).await?;
    // A month a quarter of the way through the year, and a page a tenth from the oldest.
    let from = (chrono::Utc::now() - chrono::Duration::days(270)).date_naive();
    let to = from + chrono::Duration::days(30);
    let deep = args.docs / 10;
    let number = format!("{:09}", args.docs / 2);
    let queries = [
        (
            "first page",
            "/portal/history".to_string(),
            "data-document",
            true,
        ),
        (
            "failed invoices",
            "/portal/history?state=failed&type=invoice".to_string(),
            "data-document",
            true,
        ),
        (
            "date range",
            format!("/portal/history?from={from}&to={to}"),
            "data-document",
            true,
        ),
        (
            "deep page",
            format!("/portal/history?before={deep}"),
            "data-document",
            true,
        ),
        (
            "number search",
            format!("/portal/history?q={}", &number[..8]),
            "data-document",
            true,
        ),
        (
            "front page",
            "/portal".to_string(),
            "id=\"checklist\"",
            false,
        ),
        (
            "CSV, failed",
            "/portal/history.csv?state=failed".to_string(),
            "sage.validation",
            false,
        ),
    ];
    let mut over = Vec::new();
    for (name, path, must_contain, page) in queries {
        let took = time(stack, &http, &cookie, &path, must_contain, args.runs).await?;
        let (p50, p99) = (percentile(&took, 0.50), percentile(&took, 0.99));
        println!(
            "{name:<16} p50 {:>10}  p99 {:>10}  {path}",
            ms(p50),
            ms(p99)
        );
        if page && p99 > Duration::from_millis(args.target_ms) {
            over.push(name);
        }
    }
    anyhow::ensure!(
        over.is_empty(),
        "p99 above {} ms: {}",
        args.target_ms,
        over.join(", ")
    );
    println!("every history page's p99 is under {} ms", args.target_ms);
    Ok(())
}
