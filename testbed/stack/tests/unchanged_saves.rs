//! No Sage call that changes nothing, end to end through NATS and the Sage sandbox: a
//! customer or product saved again without a change the contract carries sends nothing to
//! Sage; a changed one still writes.

mod common;

use std::time::Duration;

use ledger_stack::events::{self, Draft, PRODUCT_SIMPLE};
use ledger_stack::{Merchant, Stack};
use serde_json::json;
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(60);

/// Publishes `draft` with a fresh event id and waits until the contacts service has an audit
/// record of it; returns its outcome.
async fn handled(stack: &Stack, merchant: &Merchant, contacts: &PgPool, draft: &Draft) -> String {
    let event = draft.build();
    let (status, answer) = stack.post_event(merchant, &event.body).await.unwrap();
    assert_eq!(status, 202, "{answer}");
    let id = event.event_id.to_string();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let outcome: Option<String> = sqlx::query_scalar(
            "SELECT outcome FROM audit_records WHERE event_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(&id)
        .fetch_optional(contacts)
        .await
        .unwrap();
        match outcome {
            Some(outcome) if outcome != "retry" => return outcome,
            _ if tokio::time::Instant::now() > deadline => panic!("event {id} not handled"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Sage writes of the merchant with `method` on paths under `prefix` (`/v3.1/contacts`).
fn writes(stack: &Stack, merchant: &Merchant, method: &str, prefix: &str) -> usize {
    stack
        .sandbox
        .inspect()
        .calls(Some(&merchant.business_id), 10_000)
        .iter()
        .filter(|c| c.method == method && c.path.starts_with(prefix) && c.status < 300)
        .count()
}

/// The example B2B customer as customer 412 of `merchant`, billing postcode `postcode`.
fn customer_saved(merchant: &str, postcode: &str) -> Draft {
    let mut d = Draft::from_template(events::CUSTOMER_SAVED, merchant, None);
    d.value_mut()["payload"]["customer"]["addresses"][0]["postcode"] = json!(postcode);
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_customer_saved_again_unchanged_sends_nothing_and_a_change_still_writes() {
    let (stack, _nats, db) = common::stack("unchanged-customer", 8).await;
    let m = stack.onboard("unchanged").await.unwrap();
    let contacts = common::schema(&db, "contacts").await;
    // The customer's first order creates the contact (from the order's addresses).
    let order = Draft::invoice("unchanged", 1).customer(412, "compta@atelier-lune.example");
    common::publish(&stack, &m, &order).await;
    common::wait_count(&stack, &m, "sales_invoices", 1).await;
    assert_eq!(writes(&stack, &m, "POST", "/v3.1/contacts"), 1);

    // The account differs from the order (company, VAT number, a French address): one PUT.
    let first = customer_saved("unchanged", "69002");
    assert_eq!(handled(&stack, &m, &contacts, &first).await, "applied");
    assert_eq!(writes(&stack, &m, "PUT", "/v3.1/contacts"), 1);

    // Saved again with the next order, nothing changed: no call, already in Sage.
    let again = customer_saved("unchanged", "69002");
    assert_eq!(handled(&stack, &m, &contacts, &again).await, "already_done");
    assert_eq!(writes(&stack, &m, "PUT", "/v3.1/contacts"), 1);

    // A new billing postcode: written.
    let moved = customer_saved("unchanged", "69003");
    assert_eq!(handled(&stack, &m, &contacts, &moved).await, "applied");
    assert_eq!(writes(&stack, &m, "PUT", "/v3.1/contacts"), 2);
    let contact = &stack.documents(&m, "contacts")[0];
    assert_eq!(contact["main_address"]["postal_code"], json!("69003"));

    // And back to the first postcode: a change again, written again.
    assert_eq!(handled(&stack, &m, &contacts, &first).await, "applied");
    assert_eq!(writes(&stack, &m, "PUT", "/v3.1/contacts"), 3);
    assert_eq!(stack.documents(&m, "contacts").len(), 1, "one contact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_product_saved_again_unchanged_sends_nothing_and_a_change_still_writes() {
    let (stack, _nats, db) = common::stack("unchanged-product", 8).await;
    let m = stack.onboard("unchanged-p").await.unwrap();
    stack
        .put_settings(&m, json!({"product_sync": true}))
        .await
        .unwrap();
    let contacts = common::schema(&db, "contacts").await;
    // Sage's product carries the name, not the stock level (nor the price without a price
    // type configured).
    let product = |name: &str, qty: &str| {
        let mut d = events::product_saved(PRODUCT_SIMPLE, "unchanged-p", 101, "TOTE-1");
        let p = &mut d.value_mut()["payload"]["product"];
        p["name"] = json!(name);
        p["extension_attributes"]["stock_item"] =
            json!({"manage_stock": true, "qty": qty, "is_in_stock": true});
        d
    };
    assert_eq!(
        handled(&stack, &m, &contacts, &product("Tote", "40")).await,
        "applied"
    );
    assert_eq!(writes(&stack, &m, "POST", "/v3.1/products"), 1);

    // A stock-only save (an order took two): the same Sage body, nothing sent.
    assert_eq!(
        handled(&stack, &m, &contacts, &product("Tote", "38")).await,
        "already_done"
    );
    assert_eq!(writes(&stack, &m, "PUT", "/v3.1/products"), 0);

    // A new name: written.
    assert_eq!(
        handled(&stack, &m, &contacts, &product("Waxed Tote", "38")).await,
        "applied"
    );
    assert_eq!(writes(&stack, &m, "PUT", "/v3.1/products"), 1);
    assert_eq!(writes(&stack, &m, "POST", "/v3.1/products"), 1);
    assert_eq!(
        stack.documents(&m, "products")[0]["description"],
        json!("Waxed Tote")
    );
}
