//! Cancel and void, end to end on the production NATS permissions (each service its own
//! user, stores through the auth callout): Magento's `invoice.canceled` voids the Sage
//! invoice after the payments service has deleted its receipt, a document canceled before it
//! reached Sage is skipped as `canceled`, and stores may publish the new events.

use std::time::Duration;

use ledger_stack::events;
use ledger_stack::{Merchant, Stack, StackOptions};
use ledger_testkit::{TestDb, TestNats};
use serde_json::Value;

async fn secured() -> (Stack, TestNats, TestDb) {
    let _ = ledger_runtime::telemetry::init("cancel-void");
    let nats = TestNats::start_secured().await.unwrap();
    let db = TestDb::create().await.unwrap();
    let stack = Stack::start(StackOptions::secured(&nats, db.url(), 300))
        .await
        .unwrap();
    (stack, nats, db)
}

fn live(docs: Vec<Value>) -> Vec<Value> {
    docs.into_iter()
        .filter(|d| d["deleted_at"].is_null() && d["void_reason"].is_null())
        .collect()
}

async fn post(stack: &Stack, merchant: &Merchant, body: &[u8]) {
    let (status, answer) = stack.post_event(merchant, body).await.unwrap();
    assert_eq!(status, 202, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_voided_paid_invoice_loses_its_receipt_then_is_voided_once() {
    let (stack, _nats, _db) = secured().await;
    let merchant = stack.onboard("void-shop").await.unwrap();
    post(
        &stack,
        &merchant,
        &events::invoice_created("void-shop", 5).body,
    )
    .await;
    post(
        &stack,
        &merchant,
        &events::invoice_paid("void-shop", 5).body,
    )
    .await;
    assert!(
        stack
            .wait_until(Duration::from_secs(60), || {
                !live(stack.documents(&merchant, "contact_payments")).is_empty()
            })
            .await,
        "the receipt reached Sage"
    );

    // Voided after capture: the receipt must go first, or Sage refuses the void.
    post(
        &stack,
        &merchant,
        &events::invoice_canceled("void-shop", 5, 2).body,
    )
    .await;
    assert!(
        stack
            .wait_until(Duration::from_secs(60), || {
                stack
                    .documents(&merchant, "sales_invoices")
                    .iter()
                    .any(|i| i["void_reason"].is_string())
            })
            .await,
        "the invoice was voided"
    );
    let invoices = stack.documents(&merchant, "sales_invoices");
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0]["status"]["id"], "VOID");
    assert!(invoices[0]["void_reason"]
        .as_str()
        .unwrap()
        .contains("voided after capture"));
    let receipts = stack.documents(&merchant, "contact_payments");
    assert_eq!(receipts.len(), 1, "{receipts:#?}");
    assert!(
        receipts[0]["deleted_at"].is_string(),
        "the receipt was deleted"
    );

    // The cancel re-published under a new event id, and the payment again: nothing new.
    post(
        &stack,
        &merchant,
        &events::invoice_canceled("void-shop", 5, 2).body,
    )
    .await;
    post(
        &stack,
        &merchant,
        &events::invoice_paid("void-shop", 5).body,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(live(stack.documents(&merchant, "contact_payments")).is_empty());
    assert!(live(stack.documents(&merchant, "sales_invoices")).is_empty());
    for service in ["documents", "payments"] {
        let dead = stack
            .wait_for_dead_letters(service, "void-shop")
            .await
            .unwrap();
        assert!(dead.is_empty(), "{service}: {dead:#?}");
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invoice_canceled_before_it_reached_sage_is_skipped_as_canceled() {
    let (stack, _nats, _db) = secured().await;
    let merchant = stack.onboard("cancel-shop").await.unwrap();
    // The cancel overtakes the invoice (a backfill sends both, the cancel first).
    let cancel = events::invoice_canceled("cancel-shop", 6, 1);
    post(&stack, &merchant, &cancel.body).await;
    let held = || async {
        let held: ledger_rpc::Reply<Vec<ledger_rpc::HeldDocument>> =
            ledger_runtime::bus::request_json(
                &stack.nats,
                ledger_rpc::HELD_DOCUMENTS_SUBJECT,
                &ledger_rpc::HeldDocumentsRequest {
                    merchant: "cancel-shop".into(),
                },
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        match held {
            ledger_rpc::Reply::Ok(h) => h,
            ledger_rpc::Reply::Err(e) => panic!("{e:?}"),
        }
    };
    let mut found = Vec::new();
    for _ in 0..100 {
        found = held().await;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].reason, "canceled");
    assert_eq!(found[0].event_id, cancel.event_id.to_string());
    assert!(
        found[0].detail.contains("canceled in Magento"),
        "{}",
        found[0].detail
    );

    post(
        &stack,
        &merchant,
        &events::invoice_created("cancel-shop", 6).body,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(stack.documents(&merchant, "sales_invoices").is_empty());
    assert!(
        stack.documents(&merchant, "contacts").is_empty(),
        "no contact either"
    );
    assert_eq!(held().await.len(), 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_publish_refunded_and_canceled_credit_memos() {
    let (stack, _nats, _db) = secured().await;
    let merchant = stack.onboard("memo-shop").await.unwrap();
    for example in [
        include_str!("../../../schemas/examples/creditmemo-refunded-after-pending.json"),
        include_str!("../../../schemas/examples/creditmemo-canceled-after-pending.json"),
    ] {
        let event = events::from_template(example, "memo-shop", Some(7));
        post(&stack, &merchant, &event.body).await;
    }
    stack.stop().await;
}
