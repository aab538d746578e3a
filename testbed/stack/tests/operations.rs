//! Operations end to end: dead letters are kept, listed and retried through the normal path;
//! a revoked Sage connection pauses a merchant without burning its events.

mod common;

use std::time::Duration;

use ledger_runtime::dead_letters::{Answer, Command};
use ledger_stack::{events, Merchant, Stack};
use ledger_testkit::{TestDb, TestNats};
use sage_sandbox::SandboxConfig;
use serde_json::json;

async fn stack() -> (Stack, TestNats, TestDb) {
    // Settings changes and reconnections must show within the test's patience.
    std::env::set_var("LEDGER_SETTINGS_TTL_SECS", "0");
    std::env::set_var("LEDGER_PAUSED_DELAY_SECS", "1");
    common::stack("operations", 8).await
}

async fn ask(stack: &Stack, service: &str, command: &Command) -> Answer {
    common::ask(
        stack,
        &ledger_runtime::dead_letters::subject(service),
        command,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rejected_invoice_is_dead_lettered_with_sages_reason_and_retried_once_fixed() {
    let (stack, _nats, _db) = stack().await;
    let merchant = stack.onboard("dlq").await.unwrap();
    // A ledger account Sage does not know: Sage refuses the invoice, permanently.
    let real_account = stack.break_sales_ledger_account(&merchant).await.unwrap();
    let event = events::invoice_created("dlq", 1);
    assert_eq!(
        stack.post_event(&merchant, &event.body).await.unwrap().0,
        202
    );

    let mut listed = Vec::new();
    for _ in 0..300 {
        if let Answer::Listed { dead_letters } = ask(
            &stack,
            "documents",
            &Command::List {
                merchant: Some("dlq".into()),
            },
        )
        .await
        {
            if !dead_letters.is_empty() {
                listed = dead_letters;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(listed.len(), 1, "one dead letter");
    let dead = &listed[0];
    assert!(dead.code.starts_with("sage."), "{dead:?}");
    assert!(
        dead.field
            .as_deref()
            .unwrap_or_default()
            .contains("ledger_account_id"),
        "Sage's $source names the field: {dead:?}"
    );
    assert_eq!(
        dead.event_id.as_deref(),
        Some(event.event_id.to_string().as_str())
    );
    assert!(stack.documents(&merchant, "sales_invoices").is_empty());

    // Fixed by the operator, retried through the normal path.
    stack
        .put_settings(&merchant, json!({"sales_ledger_account_id": real_account}))
        .await
        .unwrap();
    let Answer::Retried { results } = ask(
        &stack,
        "documents",
        &Command::Retry {
            ids: vec![dead.id],
            merchant: None,
        },
    )
    .await
    else {
        panic!("retry answer");
    };
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].outcome, "applied", "{results:?}");
    assert_eq!(stack.documents(&merchant, "sales_invoices").len(), 1);

    // Nothing left to retry, and retrying everything again creates nothing.
    let Answer::Listed { dead_letters } = ask(
        &stack,
        "documents",
        &Command::List {
            merchant: Some("dlq".into()),
        },
    )
    .await
    else {
        panic!("list answer");
    };
    assert!(dead_letters.is_empty());
    let Answer::Retried { results } = ask(
        &stack,
        "documents",
        &Command::Retry {
            ids: vec![dead.id],
            merchant: None,
        },
    )
    .await
    else {
        panic!("retry answer");
    };
    assert!(results.is_empty());
    assert_eq!(stack.documents(&merchant, "sales_invoices").len(), 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_connection_pauses_the_merchant_until_it_reconnects() {
    let (stack, _nats, _db) = stack().await;
    let merchant = stack.onboard("revoked").await.unwrap();
    let other = stack.onboard("unaffected").await.unwrap();
    // A first invoice proves the connection works and warms every token cache.
    assert_eq!(
        stack
            .post_event(&merchant, &events::invoice_created("revoked", 1).body)
            .await
            .unwrap()
            .0,
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

    // The merchant revokes Ledger's access in Sage.
    stack.sandbox.revoke_tokens(&merchant.business_id);
    assert_eq!(
        stack
            .post_event(&merchant, &events::invoice_created("revoked", 2).body)
            .await
            .unwrap()
            .0,
        202
    );
    assert_eq!(
        stack
            .post_event(&other, &events::invoice_created("unaffected", 2).body)
            .await
            .unwrap()
            .0,
        202
    );
    // Others go on; this merchant's event waits.
    assert!(
        stack
            .wait_until(Duration::from_secs(30), || stack
                .documents(&other, "sales_invoices")
                .len()
                == 1)
            .await
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        stack.documents(&merchant, "sales_invoices").len(),
        1,
        "paused, nothing posted"
    );
    let Answer::Listed { dead_letters } = ask(
        &stack,
        "documents",
        &Command::List {
            merchant: Some("revoked".into()),
        },
    )
    .await
    else {
        panic!("list answer");
    };
    assert!(
        dead_letters.is_empty(),
        "a pause is not a dead letter: {dead_letters:?}"
    );

    // Reconnected: the waiting event flows.
    stack
        .connect_sage("revoked", &merchant.business_id)
        .await
        .unwrap();
    assert!(
        stack
            .wait_until(Duration::from_secs(30), || stack
                .documents(&merchant, "sales_invoices")
                .len()
                == 2)
            .await,
        "resumed after reconnecting"
    );
    stack.stop().await;
}

/// Sage will save the next POST to `resource` of the merchant's business but answer 500, so
/// our side cannot know it landed.
fn applied_then_500(stack: &Stack, merchant: &Merchant, resource: &str) {
    stack.sandbox.faults().set(
        sage_sandbox::FaultPlan::new(sage_sandbox::FaultKind::AppliedThen500)
            .for_business(merchant.business_id.clone())
            .on_resource(resource)
            .on_method("POST")
            .times(1),
    );
}

/// Posts `body` through the gateway and waits until Sage holds a `resource` of the merchant,
/// then lets redeliveries settle.
async fn post_and_settle(stack: &Stack, merchant: &Merchant, body: &[u8], resource: &str) {
    assert_eq!(stack.post_event(merchant, body).await.unwrap().0, 202);
    assert!(
        stack
            .wait_until(Duration::from_secs(30), || !stack
                .documents(merchant, resource)
                .is_empty())
            .await,
        "no {resource} reached Sage"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
}

/// A stack whose Sage forgets idempotency ids at once (Sage: after 7 days), so that only a
/// lookup can tell an in-doubt write from a new one.
async fn forgetful_stack() -> (Stack, TestNats, TestDb) {
    std::env::set_var("LEDGER_SETTINGS_TTL_SECS", "0");
    let sandbox = SandboxConfig {
        idempotency_window: Duration::from_millis(1),
        ..ledger_stack::sandbox_config()
    };
    common::stack_with("operations", 8, sandbox).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_in_doubt_invoice_past_sages_idempotency_window_is_found_not_posted_again() {
    let (stack, _nats, _db) = forgetful_stack().await;
    let merchant = stack.onboard("in-doubt").await.unwrap();
    applied_then_500(&stack, &merchant, "sales_invoices");
    let created = events::invoice_created("in-doubt", 5);
    post_and_settle(&stack, &merchant, &created.body, "sales_invoices").await;
    assert_eq!(
        stack.documents(&merchant, "sales_invoices").len(),
        1,
        "found by reference, not posted twice"
    );
    assert!(stack
        .sandbox
        .inspect()
        .all_duplicate_references()
        .is_empty());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_in_doubt_receipt_past_sages_idempotency_window_is_found_not_posted_again() {
    let (stack, _nats, db) = forgetful_stack().await;
    let merchant = stack.onboard("receipt-in-doubt").await.unwrap();
    let created = events::invoice_created("receipt-in-doubt", 6);
    assert_eq!(
        stack.post_event(&merchant, &created.body).await.unwrap().0,
        202
    );
    assert!(
        stack
            .wait_until(Duration::from_secs(30), || !stack
                .documents(&merchant, "sales_invoices")
                .is_empty())
            .await
    );
    applied_then_500(&stack, &merchant, "contact_payments");
    let paid = events::invoice_paid("receipt-in-doubt", 6);
    post_and_settle(&stack, &merchant, &paid.body, "contact_payments").await;
    let receipts = stack.documents(&merchant, "contact_payments");
    assert_eq!(
        receipts.len(),
        1,
        "found in Sage, not posted twice: {receipts:#?}"
    );
    let invoice = stack.documents(&merchant, "sales_invoices").remove(0);
    assert_eq!(
        events::amount(&receipts[0]["total_amount"]),
        events::amount(&invoice["total_amount"])
    );
    // And the payments service knows it as synced: adopted, not refused by Sage as an
    // over-allocation and dead-lettered.
    let recorded: Vec<(String,)> = sqlx::query_as(
        "SELECT sage_id FROM payments.payments WHERE merchant_id = 'receipt-in-doubt'",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(
        recorded,
        vec![(receipts[0]["id"].as_str().unwrap().to_string(),)]
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_in_doubt_contact_past_sages_idempotency_window_is_adopted_not_duplicated() {
    let (stack, _nats, _db) = forgetful_stack().await;
    let merchant = stack.onboard("contact-doubt").await.unwrap();
    applied_then_500(&stack, &merchant, "contacts");
    let created = events::invoice_created("contact-doubt", 9);
    post_and_settle(&stack, &merchant, &created.body, "sales_invoices").await;
    let contacts = stack.documents(&merchant, "contacts");
    assert_eq!(
        contacts.len(),
        1,
        "adopted, not created twice: {contacts:#?}"
    );
    assert_eq!(
        stack.documents(&merchant, "sales_invoices")[0]["contact"]["id"],
        contacts[0]["id"]
    );
    stack.stop().await;
}
