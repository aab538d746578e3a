//! Replay end to end: after an outage that dead-lettered a merchant's invoices, a dry run
//! reports what would be posted and posts nothing; a replay posts each missing document once;
//! a second replay finds everything already synced.

mod common;

use std::time::Duration;

use ledger_runtime::dead_letters::{Answer as DeadLetters, Command as DeadLetterCommand};
use ledger_runtime::replay::{Command, Summary};
use ledger_stack::{events, Merchant, Stack};
use ledger_testkit::{TestDb, TestNats};
use serde_json::json;

async fn stack() -> (Stack, TestNats, TestDb) {
    // Settings changes must show at once.
    std::env::set_var("LEDGER_SETTINGS_TTL_SECS", "0");
    common::stack("replay", 8).await
}

async fn replay(stack: &Stack, service: &str, merchant: &str, dry_run: bool) -> Summary {
    replay_with(stack, service, merchant, dry_run, false).await
}

async fn replay_with(
    stack: &Stack,
    service: &str,
    merchant: &str,
    dry_run: bool,
    per_event_lookups: bool,
) -> Summary {
    replay_limited(stack, service, merchant, dry_run, per_event_lookups, None).await
}

async fn replay_limited(
    stack: &Stack,
    service: &str,
    merchant: &str,
    dry_run: bool,
    per_event_lookups: bool,
    limit: Option<u64>,
) -> Summary {
    ledger_runtime::replay::request(
        &stack.nats,
        service,
        &Command {
            merchant: merchant.into(),
            since: None,
            until: None,
            dry_run,
            per_event_lookups,
            limit,
        },
        Duration::from_secs(120),
        |_| {},
    )
    .await
    .unwrap()
}

async fn dead_letters(stack: &Stack, merchant: &Merchant) -> usize {
    let answer: DeadLetters = ledger_runtime::bus::request_json(
        &stack.nats,
        &ledger_runtime::dead_letters::subject("documents"),
        &DeadLetterCommand::List {
            merchant: Some(merchant.id.clone()),
        },
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    match answer {
        DeadLetters::Listed { dead_letters } => dead_letters.len(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_after_an_outage_posts_each_missing_document_once_and_then_finds_all_synced() {
    let (stack, _nats, _db) = stack().await;
    let merchant = stack.onboard("replayed").await.unwrap();
    let real_account = stack
        .sandbox
        .inspect()
        .businesses()
        .into_iter()
        .find(|b| b.id == merchant.business_id)
        .unwrap()
        .ledger_accounts["4000"]
        .clone();
    // One invoice lands before the outage.
    let first = events::invoice_created("replayed", 1);
    assert_eq!(
        stack.post_event(&merchant, &first.body).await.unwrap().0,
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

    // The outage: Sage refuses every invoice (a ledger account it does not know), so the next
    // three are dead-lettered.
    stack
        .put_settings(
            &merchant,
            json!({"sales_ledger_account_id": "0000000000000000000000000000dead"}),
        )
        .await
        .unwrap();
    for n in 2..=4 {
        let event = events::invoice_created("replayed", n);
        assert_eq!(
            stack.post_event(&merchant, &event.body).await.unwrap().0,
            202
        );
    }
    let mut dead = 0;
    for _ in 0..400 {
        dead = dead_letters(&stack, &merchant).await;
        if dead == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(dead, 3);
    assert_eq!(stack.documents(&merchant, "sales_invoices").len(), 1);
    stack
        .put_settings(&merchant, json!({"sales_ledger_account_id": real_account}))
        .await
        .unwrap();

    // A dry run says what would be posted and posts nothing.
    let dry = replay(&stack, "documents", "replayed", true).await;
    assert!(dry.dry_run);
    assert_eq!(dry.seen, 4, "{dry:#?}");
    assert_eq!(dry.already_synced, 1, "{dry:#?}");
    assert_eq!(dry.would_post, 3, "{dry:#?}");
    assert_eq!(dry.applied + dry.failed, 0, "{dry:#?}");
    for e in &dry.events {
        assert_eq!(e.outcome, "would_post");
        assert!(
            e.detail
                .iter()
                .any(|d| d.starts_with("POST sales_invoices {\"sales_invoice\"")),
            "{e:?}"
        );
    }
    assert_eq!(stack.documents(&merchant, "sales_invoices").len(), 1);

    // The replay posts the three missing invoices, once each, and clears their dead letters.
    let mut applied = Summary::default();
    for service in ["contacts", "documents", "payments"] {
        let s = replay(&stack, service, "replayed", false).await;
        if service == "documents" {
            applied = s;
        } else {
            assert_eq!(s.seen, 0, "{s:?}");
        }
    }
    assert_eq!(applied.seen, 4, "{applied:#?}");
    assert_eq!(applied.already_synced, 1, "{applied:#?}");
    assert_eq!(applied.applied, 3, "{applied:#?}");
    assert_eq!(applied.failed + applied.skipped, 0, "{applied:#?}");
    assert_eq!(stack.documents(&merchant, "sales_invoices").len(), 4);
    assert!(stack
        .sandbox
        .inspect()
        .duplicate_references(&merchant.business_id)
        .is_empty());
    assert_eq!(dead_letters(&stack, &merchant).await, 0);

    // Again: everything is already synced and nothing new lands.
    let again = replay(&stack, "documents", "replayed", false).await;
    assert_eq!(again.seen, 4, "{again:#?}");
    assert_eq!(again.already_synced, 4, "{again:#?}");
    assert_eq!(
        again.applied + again.skipped + again.failed,
        0,
        "{again:#?}"
    );
    assert!(again.events.is_empty());
    assert_eq!(stack.documents(&merchant, "sales_invoices").len(), 4);

    // The replayed invoices are in the audit trail as applied.
    let answer: ledger_runtime::audit::Answer = ledger_runtime::bus::request_json(
        &stack.nats,
        &ledger_runtime::audit::subject("documents"),
        &ledger_runtime::audit::Command::Verify {
            merchant: "replayed".into(),
        },
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    match answer {
        ledger_runtime::audit::Answer::Verified(report) => assert!(report.ok, "{report:?}"),
        other => panic!("{other:?}"),
    }
    stack.stop().await;
}

/// Audit records of the documents service for `merchant`.
async fn audit_records(db: &TestDb, merchant: &str) -> i64 {
    let pool = ledger_runtime::db::connect_schema(db.url(), "documents", 1)
        .await
        .unwrap();
    sqlx::query_scalar("SELECT count(*) FROM audit_records WHERE merchant_id = $1")
        .bind(merchant)
        .fetch_one(&pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replay_of_synced_events_looks_them_up_in_batches_without_running_the_handler() {
    let (stack, _nats, db) = stack().await;
    let merchant = stack.onboard("batched").await.unwrap();
    for n in 1..=6 {
        let event = events::invoice_created("batched", n);
        assert_eq!(
            stack.post_event(&merchant, &event.body).await.unwrap().0,
            202
        );
    }
    assert!(
        stack
            .wait_until(Duration::from_secs(60), || stack
                .documents(&merchant, "sales_invoices")
                .len()
                == 6)
            .await
    );
    // Each handling is audited once it is over; wait for the sixth record.
    for _ in 0..400 {
        if audit_records(&db, "batched").await >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let records = audit_records(&db, "batched").await;
    assert_eq!(records, 6);
    let calls = |stack: &Stack| {
        stack
            .sandbox
            .inspect()
            .stats_for(&merchant.business_id)
            .calls
            .iter()
            .map(|c| c.count)
            .sum::<u64>()
    };
    let calls_before = calls(&stack);

    // Batched: all six found in the audit trail; the handler never runs (no new record, no
    // Sage call of any kind, reads included).
    let batched = replay_with(&stack, "documents", "batched", false, false).await;
    assert_eq!(batched.seen, 6, "{batched:#?}");
    assert_eq!(batched.already_synced, 6, "{batched:#?}");
    assert_eq!(batched.applied + batched.skipped + batched.failed, 0);
    assert_eq!(audit_records(&db, "batched").await, 6);
    assert_eq!(calls(&stack), calls_before);

    // Per event: the same answer, each event through the handler (one record each).
    let per_event = replay_with(&stack, "documents", "batched", false, true).await;
    assert_eq!(per_event.seen, 6, "{per_event:#?}");
    assert_eq!(per_event.already_synced, 6, "{per_event:#?}");
    assert_eq!(per_event.applied + per_event.skipped + per_event.failed, 0);
    assert_eq!(audit_records(&db, "batched").await, 12);
    assert_eq!(stack.documents(&merchant, "sales_invoices").len(), 6);

    // A limit replays only the earliest events of the range: 4 of the 6, each per event.
    let limited = replay_limited(&stack, "documents", "batched", false, true, Some(4)).await;
    assert_eq!(limited.seen, 4, "{limited:#?}");
    assert_eq!(limited.already_synced, 4, "{limited:#?}");
    assert_eq!(audit_records(&db, "batched").await, 16);
    stack.stop().await;
}
