//! Credit notes end to end (NATS, the services, PostgreSQL, the Sage sandbox): a credit
//! memo without `invoice_id` linked through its order's invoices, a refund pending at the
//! gateway completed by the credit memo arriving again as refunded, and a credit note
//! larger than what Sage says is outstanding (the excess left on account).

mod common;

use common::{by_reference, dec, publish, wait_count};

use std::time::Duration;

use ledger_stack::events::{Draft, Refund};
use ledger_stack::Stack;
use rust_decimal::Decimal;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

/// The order context entry Magento's module sends for an invoice of the order.
fn order_invoice(invoice: &Draft) -> Value {
    let inv = &invoice.value()["payload"]["invoice"];
    json!({
        "entity_id": inv["entity_id"],
        "increment_id": inv["increment_id"],
        "created_at": inv["created_at"],
        "grand_total": inv["grand_total"],
        "base_grand_total": inv["base_grand_total"],
        "state": 2
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refund_offline_from_the_order_page_is_allocated_to_the_orders_invoice() {
    let (stack, _nats, _db) = common::stack("credits", 8).await;
    let m = stack.onboard("po-order").await.expect("onboard");
    // A purchase-order invoice (paid later), then "Refund Offline" from the order page:
    // Magento's credit memo has no invoice_id; the order context lists the invoice.
    let invoice = Draft::invoice("po-order", 41).payment_method("purchaseorder");
    publish(&stack, &m, &invoice).await;
    let invoices = wait_count(&stack, &m, "sales_invoices", 1).await;
    let mut credit = invoice.credit_memo(1, &Refund::lines(&[(0, 1)]));
    credit.value_mut()["payload"]["creditmemo"]["invoice_id"] = Value::Null;
    credit.value_mut()["payload"]["order"]["invoices"] = json!([order_invoice(&invoice)]);
    publish(&stack, &m, &credit).await;

    let allocations = wait_count(&stack, &m, "contact_allocations", 1).await;
    let notes = stack.documents(&m, "sales_credit_notes");
    assert_eq!(notes.len(), 1);
    let note = &notes[0];
    let inv = by_reference(&invoices, &invoice.increment_id());
    // Linked: the reference names the invoice and original_invoice_date is the invoice's.
    let cm = credit.increment_id();
    assert_eq!(
        note["reference"].as_str().unwrap(),
        format!("{cm}/{}", invoice.increment_id())
    );
    assert_eq!(note["original_invoice_date"], inv["date"]);
    // The whole credit note (less than the invoice) is allocated: invoice +x, note -x.
    let x = credit.grand_total();
    assert!(x < invoice.grand_total());
    let arts = allocations[0]["allocated_artefacts"].as_array().unwrap();
    assert_eq!(arts.len(), 2, "{arts:#?}");
    assert_eq!(dec(&arts[0]["amount"]), x);
    assert_eq!(dec(&arts[1]["amount"]), -x);
    assert!(stack.documents(&m, "contact_payments").is_empty());
    let invoices = stack.documents(&m, "sales_invoices");
    // Outstanding afterwards: the invoice total less the credit.
    assert_eq!(
        dec(&by_reference(&invoices, &invoice.increment_id())["outstanding_amount"]),
        invoice.grand_total() - x
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pending_card_refund_is_posted_when_the_credit_memo_arrives_refunded() {
    let (stack, _nats, _db) = common::stack("credits", 8).await;
    let m = stack.onboard("pending").await.expect("onboard");
    let invoice = Draft::invoice("pending", 42);
    publish(&stack, &m, &invoice).await;
    publish(&stack, &m, &invoice.paid()).await;
    wait_count(&stack, &m, "contact_payments", 1).await;
    // The gateway has not confirmed the refund yet: state open.
    let mut pending = Refund::lines(&[(0, 1)]).online("re_pending_42");
    pending.refunded = false;
    let open = invoice.credit_memo(1, &pending);
    publish(&stack, &m, &open).await;
    wait_count(&stack, &m, "sales_credit_notes", 1).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Waiting: the credit note is in Sage, no refund and no allocation yet.
    let refunds = |stack: &Stack| {
        stack
            .documents(&m, "contact_payments")
            .into_iter()
            .filter(|p| p["transaction_type"]["id"] == "CUSTOMER_REFUND")
            .count()
    };
    assert_eq!(refunds(&stack), 0);
    assert!(stack.documents(&m, "contact_allocations").is_empty());

    // The gateway confirmed: the same credit memo, state refunded, under a new event id.
    let done = invoice.credit_memo(1, &Refund::lines(&[(0, 1)]).online("re_pending_42"));
    publish(&stack, &m, &done).await;
    assert!(stack.wait_until(WAIT, || refunds(&stack) == 1).await);
    let payments = stack.documents(&m, "contact_payments");
    let refund = payments
        .iter()
        .find(|p| p["transaction_type"]["id"] == "CUSTOMER_REFUND")
        .unwrap();
    assert_eq!(dec(&refund["total_amount"]), done.grand_total());
    let notes = stack.documents(&m, "sales_credit_notes");
    assert_eq!(notes.len(), 1, "one credit note for the one credit memo");
    assert_eq!(dec(&notes[0]["outstanding_amount"]), Decimal::ZERO);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn credit_larger_than_outstanding_leaves_the_excess_on_account() {
    let (stack, _nats, _db) = common::stack("credits", 8).await;
    let m = stack.onboard("excess").await.expect("onboard");
    let invoice = Draft::invoice("excess", 43).payment_method("purchaseorder");
    publish(&stack, &m, &invoice).await;
    wait_count(&stack, &m, "sales_invoices", 1).await;
    // First credit memo takes one unit; the second refunds another unit plus
    // an adjustment refund of 60.00 - more than what is left outstanding.
    let first = invoice.credit_memo(1, &Refund::lines(&[(0, 1)]));
    publish(&stack, &m, &first).await;
    wait_count(&stack, &m, "contact_allocations", 1).await;
    let second = invoice.credit_memo(
        2,
        &Refund::lines(&[(0, 1)]).adjustments(Decimal::from(60), Decimal::ZERO),
    );
    publish(&stack, &m, &second).await;
    let allocations = wait_count(&stack, &m, "contact_allocations", 2).await;
    let outstanding_before = invoice.grand_total() - first.grand_total();
    let excess = second.grand_total() - outstanding_before;
    assert!(excess > Decimal::ZERO, "the case needs an excess");
    let notes = stack.documents(&m, "sales_credit_notes");
    let second_note = notes
        .iter()
        .find(|n| dec(&n["total_amount"]) == second.grand_total())
        .unwrap();
    // Allocated up to what Sage said was outstanding; the excess stays open, visibly.
    let amounts: Vec<Decimal> = allocations
        .iter()
        .map(|a| dec(&a["allocated_artefacts"][0]["amount"]))
        .collect();
    assert!(amounts.contains(&outstanding_before), "{amounts:?}");
    assert_eq!(dec(&second_note["outstanding_amount"]), excess);
    let invoices = stack.documents(&m, "sales_invoices");
    assert_eq!(dec(&invoices[0]["outstanding_amount"]), Decimal::ZERO);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_settlement_sage_refuses_for_its_amount_is_decided_again() {
    let (stack, _nats, db) = common::stack("credits", 8).await;
    let m = stack.onboard("redecide").await.expect("onboard");
    let invoice = Draft::invoice("redecide", 44).payment_method("purchaseorder");
    publish(&stack, &m, &invoice).await;
    let invoices = wait_count(&stack, &m, "sales_invoices", 1).await;
    let inv = invoices[0].clone();
    // The allocation reaches Sage slowly; meanwhile the bookkeeper records a payment of all
    // but 10.00 of the invoice in Sage, so the planned amount is above what is outstanding.
    stack.sandbox.faults().set(
        sage_sandbox::FaultPlan::new(sage_sandbox::FaultKind::Latency { ms: 2000 })
            .for_business(m.business_id.clone())
            .on_resource("contact_allocations")
            .on_method("POST")
            .times(1),
    );
    let credit = invoice.credit_memo(1, &Refund::lines(&[(0, 1)]));
    publish(&stack, &m, &credit).await;
    wait_count(&stack, &m, "sales_credit_notes", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let business = &stack.sandbox.inspect().businesses()[0];
    let bank = business
        .bank_accounts
        .get("GBP")
        .expect("a GBP account")
        .clone();
    let ten = Decimal::from(10);
    let paid = invoice.grand_total() - ten;
    stack
        .sage()
        .post(
            &m.id,
            "contact_payments",
            "contact_payment",
            json!({
                "transaction_type_id": "CUSTOMER_RECEIPT",
                "contact_id": inv["contact"]["id"],
                "bank_account_id": bank,
                "payment_method_id": "BANK_TRANSFER",
                "date": inv["date"],
                "total_amount": paid.to_string(),
                "allocated_artefacts": [{"artefact_id": inv["id"], "amount": paid.to_string()}]
            }),
            None,
        )
        .await
        .expect("the bookkeeper's receipt");
    // Refused for its amount, decided again from Sage's 10.00 and allocated for that; the
    // rest of the credit note stays on account.
    let allocations = wait_count(&stack, &m, "contact_allocations", 1).await;
    assert_eq!(
        dec(&allocations[0]["allocated_artefacts"][0]["amount"]),
        ten
    );
    let notes = stack.documents(&m, "sales_credit_notes");
    assert_eq!(
        dec(&notes[0]["outstanding_amount"]),
        credit.grand_total() - ten
    );
    let invoices = stack.documents(&m, "sales_invoices");
    assert_eq!(dec(&invoices[0]["outstanding_amount"]), Decimal::ZERO);
    // Decided again: the second attempt has its own step (its own idempotency id).
    let pool = ledger_runtime::db::connect_schema(db.url(), "documents", 2)
        .await
        .expect("schema pool");
    let again: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sync_steps WHERE state = 'done' AND step = 'credit_note_allocation#1'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(again, 1);
    stack.stop().await;
}
