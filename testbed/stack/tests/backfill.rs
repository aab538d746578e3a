//! Live first (decision record 0038): a merchant's backfill drains in the history lane while
//! the same merchant's live invoices arrive; every live invoice lands long before the backfill
//! is done, a live payment of a backfilled invoice waits for that invoice and no longer, and
//! the backfill's progress is reported.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ledger_stack::events;
use ledger_stack::{ms, percentile};
use rust_decimal::Decimal;
use sage_sandbox::{FaultKind, FaultPlan};

const BACKFILL: u64 = 300;
const LIVE: u64 = 20;
const BACKFILL_ID: &str = "bf-2025";

fn dec(v: &serde_json::Value) -> Decimal {
    match v {
        serde_json::Value::String(s) => s.parse().expect("decimal"),
        other => other.to_string().parse().expect("decimal"),
    }
}

/// The engine's settings for these tests: no per-minute Sage call budget (the budget's own
/// tests cover it; here it would only stretch the backfill by its minute windows), and a paused
/// lane that looks again every second.
fn settings() {
    // A run may set a budget on purpose (`LEDGER_SAGE_CALLS_PER_MINUTE=200`): the lane then
    // waits out the budget's windows mid-backfill.
    if std::env::var_os("LEDGER_SAGE_CALLS_PER_MINUTE").is_none() {
        std::env::set_var("LEDGER_SAGE_CALLS_PER_MINUTE", "0");
    }
    std::env::set_var("LEDGER_PAUSED_DELAY_SECS", "1");
}

/// Increment id of synthetic invoice `n` (see `events::invoice_created`).
fn reference(n: u64) -> String {
    format!("{:09}", 100_000 + n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_invoices_overtake_a_draining_backfill() {
    settings();
    let (stack, _nats, _db) = common::stack("backfill", 16).await;
    let merchant = stack.onboard("acme").await.expect("onboard");
    // Every Sage call takes 20 ms, so the backfill takes a while.
    stack
        .sandbox
        .faults()
        .set(FaultPlan::new(FaultKind::Latency { ms: 20 }));
    let grand_total = {
        let envelope = ledger_events::parse(&events::invoice_created("acme", 1).body).unwrap();
        let ledger_events::Payload::InvoiceCreated(s) = envelope.payload else {
            panic!("an invoice");
        };
        s.invoice.grand_total
    };

    // The module announces the run, then records 300 invoices as history.
    stack
        .publish_backfill_header(&events::backfill_header("acme", BACKFILL_ID, BACKFILL))
        .await
        .unwrap();
    let started = Instant::now();
    for n in 1..=BACKFILL {
        let event = events::as_history(&events::invoice_created("acme", n), BACKFILL_ID);
        let envelope = ledger_events::parse(&event.body).expect("history event is valid");
        assert!(ledger_events::is_history_subject(&envelope.subject()));
        stack.publish_direct(&envelope, &event.body).await.unwrap();
    }
    // The last backfilled invoice's payment arrives live, long before its invoice can land.
    let paid = events::invoice_paid("acme", BACKFILL);
    let paid_envelope = ledger_events::parse(&paid.body).unwrap();
    stack
        .publish_direct(&paid_envelope, &paid.body)
        .await
        .unwrap();

    // Live invoices, one every 150 ms, while the backfill drains.
    let mut published: HashMap<String, Instant> = HashMap::new();
    let mut landed: HashMap<String, Instant> = HashMap::new();
    let mut progress_seen = Vec::new();
    let mut next_live = 1001;
    let mut last_publish = Instant::now() - Duration::from_secs(1);
    let mut history_landed_when_live_done = None;
    let mut backfill_done_at = None;
    let mut payment_at = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    let js = async_nats::jetstream::new(stack.nats.clone());
    let mut last_report = Instant::now();
    while Instant::now() < deadline {
        if next_live < 1001 + LIVE && last_publish.elapsed() >= Duration::from_millis(150) {
            let event = events::invoice_created("acme", next_live);
            let envelope = ledger_events::parse(&event.body).unwrap();
            stack.publish_direct(&envelope, &event.body).await.unwrap();
            published.insert(reference(next_live), Instant::now());
            last_publish = Instant::now();
            next_live += 1;
        }
        let invoices = stack.documents(&merchant, "sales_invoices");
        let now = Instant::now();
        let mut history = 0;
        for invoice in &invoices {
            let r = invoice["reference"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if published.contains_key(&r) {
                landed.entry(r).or_insert(now);
            } else {
                landed.entry(r).or_insert(now);
                history += 1;
            }
        }
        if landed.keys().filter(|r| published.contains_key(*r)).count() == LIVE as usize
            && history_landed_when_live_done.is_none()
        {
            history_landed_when_live_done = Some(history);
        }
        if history == BACKFILL as usize && backfill_done_at.is_none() {
            backfill_done_at = Some(now);
        }
        if payment_at.is_none() && !stack.documents(&merchant, "contact_payments").is_empty() {
            payment_at = Some(now);
        }
        if last_report.elapsed() > Duration::from_millis(500) {
            last_report = Instant::now();
            if let Ok(reports) = ledger_rpc::backfill::reports(&js, "acme").await {
                if let Some(r) = reports.first() {
                    progress_seen.push(r.done);
                }
            }
        }
        if backfill_done_at.is_some() && payment_at.is_some() && next_live == 1001 + LIVE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if backfill_done_at.is_none() {
        let reports = ledger_rpc::backfill::reports(&js, "acme").await.unwrap();
        eprintln!("not finished: {reports:?}");
        let refs: std::collections::HashSet<String> = stack
            .documents(&merchant, "sales_invoices")
            .iter()
            .map(|i| i["reference"].as_str().unwrap_or_default().to_string())
            .collect();
        let missing: Vec<u64> = (1..=BACKFILL)
            .filter(|n| !refs.contains(&reference(*n)))
            .collect();
        eprintln!("missing: {missing:?}");
    }
    let backfill_done_at = backfill_done_at.expect("the backfill finished within 120 s");
    let backfill_took = backfill_done_at - started;

    // Every live invoice landed, before the backfill was done.
    let mut latencies: Vec<Duration> = published
        .iter()
        .map(|(r, at)| *landed.get(r).expect("live invoice landed") - *at)
        .collect();
    latencies.sort();
    let (p50, p99) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99));
    let history_then = history_landed_when_live_done.expect("every live invoice landed");
    println!(
        "live publish→Sage p50={} p99={} ({} live invoices); backfill of {BACKFILL} took {}; \
         backfilled invoices in Sage when the last live one landed: {history_then}",
        ms(p50),
        ms(p99),
        LIVE,
        ms(backfill_took)
    );
    assert!(
        history_then < BACKFILL as usize,
        "the live invoices landed before the backfill was done ({history_then} of {BACKFILL})"
    );
    assert!(
        p99 * 5 < backfill_took,
        "live p99 {} is well under the backfill's {}",
        ms(p99),
        ms(backfill_took)
    );

    // The live payment of the last backfilled invoice waited for it, and no longer.
    let payment_at = payment_at.expect("the payment landed");
    let invoice_at = landed[&reference(BACKFILL)];
    assert!(payment_at >= invoice_at, "the payment followed its invoice");
    println!(
        "payment of backfilled invoice {} landed {} after it",
        reference(BACKFILL),
        ms(payment_at - invoice_at)
    );
    assert!(
        payment_at - invoice_at < Duration::from_secs(3),
        "the payment landed {} after its invoice",
        ms(payment_at - invoice_at)
    );

    // One Sage document per Magento document, cent-exact.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let invoices = stack.documents(&merchant, "sales_invoices");
    assert_eq!(invoices.len(), (BACKFILL + LIVE) as usize);
    let mut references: Vec<&str> = invoices
        .iter()
        .map(|i| i["reference"].as_str().unwrap())
        .collect();
    references.sort();
    references.dedup();
    assert_eq!(references.len(), (BACKFILL + LIVE) as usize, "no doubles");
    for invoice in &invoices {
        assert_eq!(dec(&invoice["total_amount"]), grand_total, "{invoice}");
    }
    let payments = stack.documents(&merchant, "contact_payments");
    assert_eq!(payments.len(), 1);
    assert_eq!(dec(&payments[0]["total_amount"]), grand_total);

    // The engine reported the run: done of total rising, then all of it.
    let report = loop {
        let reports = ledger_rpc::backfill::reports(&js, "acme").await.unwrap();
        let report = reports
            .into_iter()
            .next()
            .expect("the backfill is reported");
        if report.finished || Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "backfill report: {}/{} done, {:.1}/s, held {}, failed {}; seen while running: {:?}",
        report.done, report.total, report.rate_per_sec, report.held, report.failed, progress_seen
    );
    assert_eq!((report.done, report.total), (BACKFILL, BACKFILL));
    assert_eq!((report.held, report.failed, report.canceled), (0, 0, 0));
    assert!(report.finished);
    assert!(
        progress_seen.iter().any(|d| *d > 0 && *d < BACKFILL),
        "progress was visible while the backfill ran: {progress_seen:?}"
    );
    stack.stop().await;
}

/// `done` of the first backfill row on the portal's backfill page, freshly loaded.
async fn portal_done(
    stack: &ledger_stack::Stack,
    browser: &ledger_testkit::browser::Browser,
) -> (u64, u64, String) {
    browser
        .goto(&format!("{}/portal/backfills", stack.gateway_url))
        .await
        .unwrap();
    let done = browser.wait_for("tr[data-backfill] .done").await.unwrap();
    let text = browser.text(&done).await.unwrap();
    let (d, t) = text.split_once(" of ").expect("N of M");
    let state = browser
        .text(&browser.find("tr[data-backfill] .state").await.unwrap())
        .await
        .unwrap();
    (d.trim().parse().unwrap(), t.trim().parse().unwrap(), state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_portal_shows_a_backfill_running_and_pauses_it() {
    use ledger_testkit::browser::Browser;
    const TOTAL: u64 = 60;
    settings();
    let (stack, _nats, _db) = common::stack("backfill-portal", 4).await;
    let merchant = stack.onboard("shown").await.expect("onboard");
    stack
        .sandbox
        .faults()
        .set(FaultPlan::new(FaultKind::Latency { ms: 60 }));
    stack
        .publish_backfill_header(&events::backfill_header("shown", "bf-portal", TOTAL))
        .await
        .unwrap();
    for n in 1..=TOTAL {
        let event = events::as_history(&events::invoice_created("shown", n), "bf-portal");
        let envelope = ledger_events::parse(&event.body).unwrap();
        stack.publish_direct(&envelope, &event.body).await.unwrap();
    }
    let browser = Browser::start().await.expect("headless Chromium");
    common::portal::sign_in(&stack, &browser, "shown").await;
    assert!(
        browser.find("#backfills").await.is_ok(),
        "the front page links to the backfills"
    );

    // Done of total rises while the backfill runs.
    let mut seen = Vec::new();
    for _ in 0..200 {
        let (done, total, state) = portal_done(&stack, &browser).await;
        assert_eq!(total, TOTAL);
        assert_eq!(state, "running");
        if seen.last() != Some(&done) {
            seen.push(done);
        }
        if seen.iter().filter(|d| **d > 0 && **d < TOTAL).count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("portal: done of {TOTAL} seen rising: {seen:?}");
    let between: Vec<_> = seen.iter().filter(|d| **d > 0 && **d < TOTAL).collect();
    assert!(between.len() >= 2, "done rose while running: {seen:?}");
    assert!(between.windows(2).all(|w| w[0] < w[1]));

    // Pause from the page: nothing more of it lands; resume: it finishes.
    browser
        .click(&browser.find("button.pause").await.unwrap())
        .await
        .unwrap();
    browser.wait_for("tr[data-state=paused]").await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held_at = stack.documents(&merchant, "sales_invoices").len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stack.documents(&merchant, "sales_invoices").len(), held_at);
    assert!((held_at as u64) < TOTAL);
    browser
        .click(&browser.find("button.resume").await.unwrap())
        .await
        .unwrap();
    browser.wait_for("tr[data-state=running]").await.unwrap();
    let finished = stack
        .wait_until(Duration::from_secs(90), || {
            stack.documents(&merchant, "sales_invoices").len() as u64 == TOTAL
        })
        .await;
    assert!(finished, "the resumed backfill finished");
    let mut last = (0, 0, String::new());
    for _ in 0..50 {
        last = portal_done(&stack, &browser).await;
        if last.0 == TOTAL {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!((last.0, last.1), (TOTAL, TOTAL));
    let left = browser
        .text(&browser.find("tr[data-backfill] .left").await.unwrap())
        .await
        .unwrap();
    assert_eq!(left, "finished");
    browser.close().await;
    stack.stop().await;
}
