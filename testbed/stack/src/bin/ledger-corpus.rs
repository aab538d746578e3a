//! `ledger-corpus`: runs the accounting corpus (testbed/stack/corpus) through the whole
//! engine into the Sage sandbox and compares what Sage holds with what an accountant expects.
//!
//! Prints one line per difference and ends with `corpus: N documents, mismatches=M`; exits
//! non-zero when M > 0. Needs `LEDGER_TEST_PG_URL` and a nats-server (`./dev corpus` provides
//! both). `CORPUS_FILTER=<substring>` (or `--filter`) runs only the cases whose name contains it.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::stream::{self, StreamExt};
use ledger_stack::corpus::{self, Case, Reasons, SageView, RESOURCES};
use ledger_stack::{Merchant, Stack, StackOptions};
use ledger_testkit::{TestDb, TestNats};
use serde_json::Value;

/// How long one case may take to settle.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// What to run; each option also reads the environment variable of the same name.
#[derive(Debug, clap::Parser)]
#[command(
    name = "ledger-corpus",
    about = "The accounting corpus through the whole engine"
)]
struct Args {
    /// Runs only the cases whose name contains this text (all when empty).
    #[arg(long, env = "CORPUS_FILTER", default_value = "")]
    filter: String,
    /// Seconds the services cache merchant settings; short so that a `settings` step changes
    /// them mid-case (production caches them for 30 s).
    #[arg(long, env = "LEDGER_SETTINGS_TTL_SECS", default_value_t = 1)]
    settings_ttl_secs: u64,
}

struct Outcome {
    name: String,
    documents: usize,
    differences: Vec<String>,
}

fn view(stack: &Stack, merchant: &Merchant) -> SageView {
    RESOURCES
        .iter()
        .map(|r| (r.to_string(), stack.documents(merchant, r)))
        .collect()
}

async fn run_case(stack: &Stack, index: usize, case: &Case, events: Vec<Value>) -> Outcome {
    let fail = |msg: String| Outcome {
        name: case.name.clone(),
        documents: corpus::documents_in(&case.expect),
        differences: vec![msg],
    };
    let merchant_id = format!("corpus-{index:03}");
    let merchant = match stack.onboard(&merchant_id).await {
        Ok(m) => m,
        Err(e) => return fail(format!("onboarding failed: {e:#}")),
    };
    if let Some(business) = &case.business {
        if let Err(e) = business_setup(stack, &merchant, business).await {
            return fail(format!("sandbox business setup failed: {e:#}"));
        }
    }
    if let Some(patch) = &case.settings {
        if let Err(e) = stack.put_settings(&merchant, patch.clone()).await {
            return fail(format!("settings refused: {e:#}"));
        }
    }
    let event_ids: Vec<String> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap_or_default().to_string())
        .collect();
    let order: Vec<usize> = case
        .publish_order
        .clone()
        .unwrap_or_else(|| (0..events.len()).collect());
    for i in order {
        let Some(event) = events.get(i) else {
            return fail(format!(
                "publish_order names event {i}, which does not exist"
            ));
        };
        if corpus::is_step(event) {
            if let Err(e) = run_step(stack, &merchant, event, &event_ids).await {
                return fail(format!("step {i} failed: {e:#}"));
            }
            continue;
        }
        let mut event = event.clone();
        event["merchant_id"] = Value::String(merchant_id.clone());
        let body = serde_json::to_vec(&event).unwrap_or_default();
        match stack.post_event(&merchant, &body).await {
            Ok((status, _)) if status == 202 || status == 200 => {}
            Ok((status, answer)) => {
                return fail(format!(
                    "event {i} refused by the gateway ({status}): {answer}"
                ))
            }
            Err(e) => return fail(format!("event {i} not sent: {e:#}")),
        }
    }
    let started = Instant::now();
    let mut reasons: Reasons;
    loop {
        let sage = view(stack, &merchant);
        reasons = ledger_reconcile::reasons(&stack.nats, &merchant_id).await;
        if corpus::settled(&case.expect, &sage, &reasons, &event_ids)
            || started.elapsed() > CASE_TIMEOUT
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Time for a duplicate or a late write to show before comparing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sage = view(stack, &merchant);
    let mut differences = corpus::check(&case.expect, &sage, &reasons, &event_ids);
    // Anything refused that the case did not expect to be held is a difference too.
    for (i, id) in event_ids.iter().enumerate() {
        if let Some(r) = reasons.get(id) {
            let expected = case
                .expect
                .iter()
                .any(|w| w.get("held").and_then(Value::as_u64) == Some(i as u64));
            if !expected {
                differences.push(format!("event {i}: {r}"));
            }
        }
    }
    // The operator's view must agree: `ledgerctl reconcile` over the merchant's whole event
    // log finds every document in Sage exactly once, cent-exact, or held on purpose.
    match reconcile(stack, &merchant_id).await {
        Ok(lines) => differences.extend(lines),
        Err(e) => differences.push(format!("reconcile failed: {e:#}")),
    }
    Outcome {
        name: case.name.clone(),
        documents: corpus::documents_in(&case.expect),
        differences,
    }
}

/// Runs the reconciliation `ledgerctl reconcile` runs, for one merchant, and returns one
/// line per finding that is not a document held on purpose (held documents are the case's
/// own expectations) or one entered in Sage by hand.
async fn reconcile(stack: &Stack, merchant: &str) -> anyhow::Result<Vec<String>> {
    let js = async_nats::jetstream::new(stack.nats.clone());
    let mut report = ledger_reconcile::run(
        &js,
        &stack.sage(),
        merchant,
        ledger_reconcile::Range::default(),
    )
    .await?;
    report.explain(&ledger_reconcile::reasons(&stack.nats, merchant).await);
    Ok(report
        .findings
        .iter()
        .filter(|f| match f {
            ledger_reconcile::Finding::Missing { why, .. } => {
                !why.as_deref().is_some_and(|w| w.starts_with("held:"))
            }
            ledger_reconcile::Finding::NotFromMagento { .. } => false,
            _ => true,
        })
        .map(|f| format!("reconcile: {}", ledger_reconcile::describe(f)))
        .collect())
}

/// Runs a step of a case (see `corpus::is_step`).
async fn run_step(
    stack: &Stack,
    merchant: &Merchant,
    step: &Value,
    event_ids: &[String],
) -> anyhow::Result<()> {
    match step["step"].as_str().unwrap_or_default() {
        "wait_held" => {
            let wanted: Vec<String> = step["events"]
                .as_array()
                .context("wait_held needs events: [i, ..]")?
                .iter()
                .filter_map(Value::as_u64)
                .filter_map(|i| event_ids.get(i as usize).cloned())
                .collect();
            let started = Instant::now();
            loop {
                let reasons = ledger_reconcile::reasons(&stack.nats, &merchant.id).await;
                if wanted.iter().all(|id| reasons.contains_key(id)) {
                    // Let the services handle what depends on the held events (a payment
                    // of a held invoice) before the case goes on.
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    return Ok(());
                }
                anyhow::ensure!(started.elapsed() < CASE_TIMEOUT, "events never held");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        "wait_sage" => {
            let resource = step["resource"]
                .as_str()
                .context("wait_sage needs a resource")?;
            let count = step["count"].as_u64().unwrap_or(1) as usize;
            let reached = stack
                .wait_until(CASE_TIMEOUT, || {
                    stack.documents(merchant, resource).len() >= count
                })
                .await;
            anyhow::ensure!(reached, "{resource} never reached {count} in Sage");
            Ok(())
        }
        "settings" => {
            stack.put_settings(merchant, step["patch"].clone()).await?;
            // The services' settings cache (1 s in the corpus) lets the change through.
            tokio::time::sleep(Duration::from_millis(1200)).await;
            Ok(())
        }
        "replay" => {
            let service = step["service"].as_str().unwrap_or("documents");
            ledger_runtime::replay::request(
                &stack.nats,
                service,
                &ledger_runtime::replay::Command {
                    merchant: merchant.id.clone(),
                    since: None,
                    until: None,
                    dry_run: false,
                    per_event_lookups: false,
                    limit: None,
                },
                Duration::from_secs(120),
                |_| {},
            )
            .await
            .map_err(|e| anyhow::anyhow!("replay: {e}"))?;
            Ok(())
        }
        other => anyhow::bail!("unknown step {other}"),
    }
}

/// Puts the case's Sage business into the state it needs before the events:
/// `{"financial_settings": {"accounts_start_date": "2024-01-01", "year_end_lockdown_date":
/// "2025-03-31"}}` (start omitted: the sandbox default; lockdown omitted: none).
async fn business_setup(
    stack: &Stack,
    merchant: &Merchant,
    business: &Value,
) -> anyhow::Result<()> {
    let Some(fields) = business.as_object() else {
        anyhow::bail!("business must be an object, not {business}");
    };
    for (key, value) in fields {
        match key.as_str() {
            "financial_settings" => {
                let date = |field: &str| -> anyhow::Result<Option<chrono::NaiveDate>> {
                    match value.get(field) {
                        None | Some(Value::Null) => Ok(None),
                        Some(v) => Ok(Some(
                            v.as_str()
                                .and_then(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                                .with_context(|| {
                                    format!(
                                        "financial_settings.{field}: {v} is not a YYYY-MM-DD date"
                                    )
                                })?,
                        )),
                    }
                };
                let start = date("accounts_start_date")?
                    .unwrap_or_else(sage_sandbox::default_accounts_start_date);
                stack.sandbox.set_financial_dates(
                    &merchant.business_id,
                    start,
                    date("year_end_lockdown_date")?,
                );
            }
            other => anyhow::bail!("the sandbox cannot be set up with {other} yet"),
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = ledger_runtime::telemetry::init("ledger-corpus");
    let args = <Args as clap::Parser>::parse();
    let filter = args.filter;
    let mut cases = corpus::load(&corpus::corpus_dir())?;
    cases.retain(|c| c.name.contains(&filter));

    // Real Magento documents come from the project's shared material when it is present.
    let shared = ledger_testkit::shared_dir().map(|d| d.join("magento/real-documents"));
    let mut prepared: Vec<(usize, Case, Vec<Value>)> = Vec::new();
    let mut skipped_real = 0usize;
    for (i, case) in cases.into_iter().enumerate() {
        let events = if let Some(real) = &case.real {
            let Some(dir) = shared.as_ref().filter(|d| d.is_dir()) else {
                skipped_real += 1;
                continue;
            };
            let read = |name: &str| -> anyhow::Result<Value> {
                let text = std::fs::read_to_string(dir.join(name))
                    .with_context(|| format!("reading {name}"))?;
                let v: Value = serde_json::from_str(&text)?;
                Ok(match v {
                    Value::Array(mut a) if a.len() == 1 => a.remove(0),
                    other => other,
                })
            };
            vec![corpus::reshape_real("corpus", real, &read)
                .with_context(|| format!("case {}", case.name))?]
        } else {
            corpus::build_events("corpus", &case).with_context(|| format!("case {}", case.name))?
        };
        prepared.push((i, case, events));
    }
    if skipped_real > 0 {
        println!("corpus: {skipped_real} real-document cases skipped (../shared/magento/real-documents not found)");
    }

    // A `settings` step changes settings mid-case: the in-process services read their
    // cache time from the environment.
    std::env::set_var(
        "LEDGER_SETTINGS_TTL_SECS",
        args.settings_ttl_secs.to_string(),
    );
    let nats = TestNats::start().await.context("nats-server")?;
    let db = TestDb::create().await.context("database")?;
    let stack = Stack::start(StackOptions {
        concurrency: 16,
        ..StackOptions::new(nats.url(), db.url())
    })
    .await?;
    let started = Instant::now();
    let outcomes: Vec<Outcome> = stream::iter(prepared.iter())
        .map(|(i, case, events)| run_case(&stack, *i, case, events.clone()))
        .buffer_unordered(12)
        .collect()
        .await;
    let mut documents = 0usize;
    let mut mismatches = 0usize;
    let mut outcomes = outcomes;
    outcomes.sort_by(|a, b| a.name.cmp(&b.name));
    for o in &outcomes {
        documents += o.documents;
        if !o.differences.is_empty() {
            mismatches += o.differences.len();
            for d in &o.differences {
                println!("FAIL {}: {d}", o.name);
            }
        }
    }
    println!(
        "corpus: {} cases in {:.1}s",
        outcomes.len(),
        started.elapsed().as_secs_f64()
    );
    println!("corpus: {documents} documents, mismatches={mismatches}");
    stack.stop().await;
    drop(db);
    drop(nats);
    if mismatches > 0 {
        std::process::exit(1);
    }
    Ok(())
}
