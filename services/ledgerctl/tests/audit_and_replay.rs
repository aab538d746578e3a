//! `ledgerctl audit` and `ledgerctl replay` against a running engine: the operator sees every
//! Sage call of an event, a broken chain named at its link, and a replay's summary.

mod common;

use std::time::Duration;

use ledger_stack::{events, Stack, StackOptions};
use ledger_testkit::{TestDb, TestNats};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_show_verify_and_replay_from_the_command_line() {
    let nats = TestNats::start().await.unwrap();
    let db = TestDb::create().await.unwrap();
    let stack = Stack::start(StackOptions::new(nats.url(), db.url()))
        .await
        .unwrap();
    let merchant = stack.onboard("cli").await.unwrap();
    let event = events::invoice_created("cli", 1);
    assert_eq!(
        stack.post_event(&merchant, &event.body).await.unwrap().0,
        202
    );
    assert!(
        stack
            .wait_until(Duration::from_secs(30), || stack
                .documents(&merchant, "sales_invoices")
                .len()
                == 1)
            .await
    );
    let url = nats.url();
    let event_id = event.event_id.to_string();
    let mut shown = String::new();
    for _ in 0..100 {
        let (ok, out) = ledgerctl(&url, &["audit", "show", "--event", &event_id]).await;
        assert!(ok, "{out}");
        shown = out;
        if shown.contains("POST /sales_invoices → 201") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(shown.contains("POST /sales_invoices → 201"), "{shown}");
    assert!(shown.contains("POST /contacts → 201"), "{shown}");

    let (ok, out) = ledgerctl(&url, &["audit", "verify", "--merchant", "cli"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("documents: ok, 1 records"), "{out}");

    let (ok, out) = ledgerctl(&url, &["replay", "--merchant", "cli", "--dry-run"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("documents: seen 1, already synced 1, applied 0, skipped 0, failed 0, would post 0 (dry run)"),
        "{out}"
    );
    let (ok, out) = ledgerctl(
        &url,
        &["replay", "--merchant", "cli", "--only", "documents"],
    )
    .await;
    assert!(ok, "{out}");
    assert!(
        out.contains("documents: seen 1, already synced 1, applied 0, skipped 0, failed 0"),
        "{out}"
    );
    assert_eq!(stack.documents(&merchant, "sales_invoices").len(), 1);

    sqlx::query(
        "UPDATE documents.audit_records SET content = replace(content, '\"applied\"', '\"skipped\"') WHERE merchant_id = 'cli'",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let (ok, out) = ledgerctl(
        &url,
        &[
            "audit",
            "verify",
            "--merchant",
            "cli",
            "--service",
            "documents",
        ],
    )
    .await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("documents: BROKEN at chain position 1"),
        "{out}"
    );
    stack.stop().await;
}

async fn ledgerctl(nats: &str, args: &[&str]) -> (bool, String) {
    let mut all = vec!["--nats", nats];
    all.extend_from_slice(args);
    common::ledgerctl(&all, &[]).await
}
