//! A merchant's backlog drains at its Sage call budget, smoothly: with the sandbox enforcing
//! the same number of calls per rolling window as the engine's budget, Sage never answers 429
//! and the backlog takes about as long as its calls at the budget's pace.
//!
//! The minute is scaled down to 10 s (40 calls per 10 s, the pace of 240 a minute) so that the
//! test takes seconds; the product's window is a minute.

use std::time::{Duration, Instant};

use ledger_rpc::GateLimits;
use ledger_stack::{events, PaceReport, Stack, StackOptions};
use ledger_testkit::{TestDb, TestNats};
use sage_sandbox::SandboxConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backlog_drains_at_the_budget_without_a_429() {
    let _ = ledger_runtime::telemetry::init("budget");
    let (budget, window, invoices) = (40u32, Duration::from_secs(10), 100u64);
    let nats = TestNats::start().await.unwrap();
    let db = TestDb::create().await.unwrap();
    let stack = Stack::start(StackOptions {
        sandbox: SandboxConfig {
            rate_limit_per_minute: Some(budget),
            rate_window: window,
            ..SandboxConfig::default()
        },
        gate: Some(GateLimits {
            calls_per_minute: budget,
            window_ms: window.as_millis() as u64,
            // The product's 500 ms a minute, scaled: 100 ms per 10 s.
            margin_ms: 100,
            burst: 2,
            ..GateLimits::default()
        }),
        ..StackOptions::new(nats.url(), db.url())
    })
    .await
    .unwrap();
    let merchant = stack.onboard("backlog").await.unwrap();
    // Onboarding's own Sage calls (the gateway's, outside the budget) leave the window first.
    tokio::time::sleep(window).await;
    let before = stack.sandbox.inspect().stats_for(&merchant.business_id);

    let started = Instant::now();
    for n in 0..invoices {
        let event = events::invoice_created(&merchant.id, n);
        let envelope = ledger_events::parse(&event.body).unwrap();
        stack.publish_direct(&envelope, &event.body).await.unwrap();
    }
    let landed = stack
        .wait_until(Duration::from_secs(90), || {
            stack.documents(&merchant, "sales_invoices").len() >= invoices as usize
        })
        .await;
    let elapsed = started.elapsed();
    let stats = stack.sandbox.inspect().stats_for(&merchant.business_id);
    let mut report = PaceReport::from_stats(&stats, &merchant.business_id, budget, window, elapsed);
    let earlier = PaceReport::from_stats(&before, &merchant.business_id, budget, window, elapsed);
    report.calls -= earlier.calls;
    report.rejected_429 -= earlier.rejected_429;
    let per_invoice = report.calls as f64 / invoices as f64;
    let expected = window.as_secs_f64() * report.calls as f64 / f64::from(budget);
    println!(
        "backlog: {invoices} invoices, {per_invoice:.2} Sage calls each, budget {budget} per {} s: took {:.1} s, N·calls/B = {expected:.1} s",
        window.as_secs(),
        elapsed.as_secs_f64()
    );
    println!("{report}");
    assert!(landed, "the backlog did not drain in 90 s");
    assert_eq!(report.rejected_429, 0, "{report}");
    assert!(report.busiest_window <= u64::from(budget), "{report}");
    // The budget is used, not wasted: at least 85 % of it (the pace itself is 96.5 %:
    // 39 calls per 10.1 s against 40 per 10 s).
    assert!(report.used() >= 0.85, "{report}");
    stack.stop().await;
}
