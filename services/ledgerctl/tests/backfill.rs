//! `ledgerctl backfill status|pause|resume|cancel` against a running engine: a paused backfill
//! holds only its history lane (live invoices still land), a resumed one goes on, a canceled
//! one skips what it had not handled yet with `backfill_canceled`.

mod common;

use std::time::Duration;

use ledger_stack::{events, Stack, StackOptions};
use ledger_testkit::{TestDb, TestNats};
use sage_sandbox::{FaultKind, FaultPlan, SandboxConfig};

const TOTAL: u64 = 80;
const ID: &str = "bf-ctl";

async fn ledgerctl(nats: &str, args: &[&str]) -> (bool, String) {
    let mut all = vec!["--nats", nats];
    all.extend_from_slice(args);
    common::ledgerctl(&all, &[]).await
}

/// Backfilled invoices in Sage (live ones are numbered from 1001).
fn backfilled(stack: &Stack, merchant: &ledger_stack::Merchant) -> usize {
    stack
        .documents(merchant, "sales_invoices")
        .iter()
        .filter(|i| i["reference"].as_str().unwrap_or("") < "000101000")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pause_resume_and_cancel_a_backfill_from_the_command_line() {
    // A paused lane looks again every second.
    std::env::set_var("LEDGER_PAUSED_DELAY_SECS", "1");
    let _ = ledger_runtime::telemetry::init("backfill-ctl");
    let nats = TestNats::start().await.unwrap();
    let db = TestDb::create().await.unwrap();
    let stack = Stack::start(StackOptions {
        sandbox: SandboxConfig::default(),
        concurrency: 4,
        ..StackOptions::new(nats.url(), db.url())
    })
    .await
    .unwrap();
    let merchant = stack.onboard("ctl").await.unwrap();
    stack
        .sandbox
        .faults()
        .set(FaultPlan::new(FaultKind::Latency { ms: 40 }));
    let url = nats.url();

    // Unknown backfills are refused by name.
    let (ok, out) = ledgerctl(&url, &["backfill", "pause", "--merchant", "ctl", "bf-nope"]).await;
    assert!(!ok && out.contains("no backfill bf-nope"), "{out}");

    stack
        .publish_backfill_header(&events::backfill_header("ctl", ID, TOTAL))
        .await
        .unwrap();
    for n in 1..=TOTAL {
        let event = events::as_history(&events::invoice_created("ctl", n), ID);
        let envelope = ledger_events::parse(&event.body).unwrap();
        stack.publish_direct(&envelope, &event.body).await.unwrap();
    }
    assert!(
        stack
            .wait_until(Duration::from_secs(60), || backfilled(&stack, &merchant)
                >= 5)
            .await
    );

    let (ok, out) = ledgerctl(&url, &["backfill", "pause", "--merchant", "ctl", ID]).await;
    assert!(ok, "{out}");
    assert!(out.contains("ctl bf-ctl: paused"), "{out}");
    // What was under way finishes; then nothing more of the backfill lands.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held_at = backfilled(&stack, &merchant);
    // A live invoice is not held by the paused backfill.
    let live = events::invoice_created("ctl", 1001);
    let envelope = ledger_events::parse(&live.body).unwrap();
    stack.publish_direct(&envelope, &live.body).await.unwrap();
    assert!(
        stack
            .wait_until(Duration::from_secs(20), || stack
                .documents(&merchant, "sales_invoices")
                .iter()
                .any(|i| i["reference"] == "000101001"))
            .await,
        "the live invoice landed while the backfill was paused"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        backfilled(&stack, &merchant),
        held_at,
        "paused: nothing more"
    );
    let (ok, out) = ledgerctl(&url, &["backfill", "status", "--merchant", "ctl"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("bf-ctl paused"), "{out}");
    assert!(out.contains(&format!("/{TOTAL} (")), "{out}");
    println!("while paused: {}", out.trim());

    let (ok, out) = ledgerctl(&url, &["backfill", "resume", "--merchant", "ctl", ID]).await;
    assert!(ok, "{out}");
    assert!(
        stack
            .wait_until(Duration::from_secs(30), || backfilled(&stack, &merchant)
                > held_at + 3)
            .await,
        "resumed: the backfill goes on"
    );

    let (ok, out) = ledgerctl(&url, &["backfill", "cancel", "--merchant", "ctl", ID]).await;
    assert!(ok, "{out}");
    let js = async_nats::jetstream::new(stack.nats.clone());
    let mut report = None;
    let mut last = None;
    for _ in 0..300 {
        let reports = ledger_rpc::backfill::reports(&js, "ctl").await.unwrap();
        if reports[0].finished {
            report = Some(reports[0].clone());
            break;
        }
        last = Some(reports[0].clone());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = report.unwrap_or_else(|| {
        panic!(
            "the canceled backfill ends: {last:?}, {} in Sage",
            backfilled(&stack, &merchant)
        )
    });
    let landed = backfilled(&stack, &merchant) as u64;
    println!(
        "canceled: {landed} backfilled invoices in Sage, {} skipped backfill_canceled",
        report.canceled
    );
    assert!(report.canceled > 0, "{report:?}");
    assert!(landed < TOTAL);
    assert_eq!(landed + report.canceled, TOTAL, "{report:?}");
    let (ok, out) = ledgerctl(&url, &["backfill", "status", "--merchant", "ctl"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("bf-ctl canceled"), "{out}");
    assert!(out.contains("finished"), "{out}");
    stack.stop().await;
}
