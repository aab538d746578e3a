//! Locked periods and zero-value documents end to end, through NATS, the real services and
//! the Sage sandbox (which refuses dates before `accounts_start_date` or on or before
//! `year_end_lockdown_date`, as Sage does): a document in a locked period is moved to the
//! first open day or held with the dates named, by the merchant's `locked_period` setting; a
//! period locked after the financial settings were read is found on Sage's refusal; a zero
//! invoice is recorded as `zero_value` (the zero-value policy) and its zero payment as
//! `nothing_to_post`. Nothing is dead-lettered.

mod common;

use common::{no_dead_letters, publish, schema, wait_count, wait_skip, zero_total};

use std::time::Duration;

use chrono::NaiveDate;
use ledger_stack::events::{Draft, Refund};
use ledger_stack::{Merchant, Stack};
use serde_json::{json, Value};

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// The merchant's status feed until the item for `key` in `state` is there.
async fn feed_item(
    stack: &Stack,
    merchant: &Merchant,
    entity: &str,
    key: &str,
    state: &str,
) -> Value {
    for _ in 0..800 {
        let page: Value = reqwest::Client::new()
            .get(format!("{}/v1/status", stack.gateway_url))
            .bearer_auth(&merchant.ingest_key)
            .query(&[("cursor", "0"), ("limit", "1000")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(item) = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["document_key"] == key && i["entity"] == entity && i["state"] == state)
        {
            return item.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no {state} {entity} {key} in the feed of {}", merchant.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn documents_in_a_locked_period_are_moved_or_held_by_the_merchants_setting() {
    let (stack, _nats, db) = common::stack("periods", 8).await;
    let mover = stack.onboard("mover").await.expect("onboard");
    let holder = stack.onboard("holder").await.expect("onboard");
    let refused = stack
        .put_settings(&mover, json!({"locked_period": "move"}))
        .await;
    assert!(
        refused.is_err(),
        "an unknown locked_period policy was stored"
    );
    stack
        .put_settings(&mover, json!({"locked_period": "move_to_first_open_day"}))
        .await
        .unwrap();
    // The bookkeeper closed the year to 31 March 2025 in both businesses.
    for m in [&mover, &holder] {
        stack.sandbox.set_financial_dates(
            &m.business_id,
            day("2020-01-01"),
            Some(day("2025-03-31")),
        );
    }

    // Invoiced 2025-03-14 10:21 UTC (GMT, so the same day in London), paid 2025-03-15,
    // refunded by a credit memo of 2025-03-20: all three in the locked year.
    let invoice = Draft::invoice("mover", 1);
    let paid = invoice.paid();
    let credit = invoice.credit_memo(1, &Refund::lines(&[(1, 1)]));
    publish(&stack, &mover, &invoice).await;
    publish(&stack, &mover, &paid).await;
    publish(&stack, &mover, &credit).await;
    let held = Draft::invoice("holder", 2);
    publish(&stack, &holder, &held).await;

    // Moved: dated on the first open day, 2025-04-01; 30 days' terms from there
    // (2025-04-01 + 30 = 2025-05-01); the Magento date in the notes.
    let invoices = wait_count(&stack, &mover, "sales_invoices", 1).await;
    let inv = &invoices[0];
    assert_eq!(inv["date"], "2025-04-01");
    assert_eq!(inv["due_date"], "2025-05-01");
    let notes = inv["notes"].as_str().unwrap_or_default();
    assert!(
        notes.starts_with("Magento date 2025-03-14; period locked in Sage until 2025-03-31"),
        "{notes}"
    );
    // The receipt and the credit note (with its refund) follow to the same day.
    let receipts = wait_count(&stack, &mover, "contact_payments", 2).await;
    for receipt in &receipts {
        assert_eq!(receipt["date"], "2025-04-01", "{receipt:#}");
    }
    let notes_in_sage = wait_count(&stack, &mover, "sales_credit_notes", 1).await;
    assert_eq!(notes_in_sage[0]["date"], "2025-04-01");
    assert_eq!(notes_in_sage[0]["original_invoice_date"], "2025-04-01");
    assert!(notes_in_sage[0]["notes"]
        .as_str()
        .unwrap_or_default()
        .starts_with("Magento date 2025-03-20; period locked in Sage until 2025-03-31"));

    // The synced invoice carries Sage's own number next to its id.
    let key = format!("invoice:1:{}", invoice.increment_id());
    let synced = feed_item(&stack, &mover, "invoice", &key, "synced").await;
    assert_eq!(synced["sage_id"], inv["id"]);
    assert_eq!(synced["sage_number"], inv["invoice_number"]);
    assert!(
        synced["sage_number"].as_str().unwrap().starts_with("SI-"),
        "{synced}"
    );
    let payment = feed_item(&stack, &mover, "payment", &key, "synced").await;
    assert!(payment["sage_number"].is_string(), "{payment}");
    let credit_key = format!("creditmemo:1:{}", credit.increment_id());
    let credited = feed_item(&stack, &mover, "creditmemo", &credit_key, "synced").await;
    assert_eq!(credited["sage_id"], notes_in_sage[0]["id"]);
    assert!(
        credited["sage_number"]
            .as_str()
            .unwrap()
            .starts_with("SCN-"),
        "{credited}"
    );

    // Held (the default): reason and the dates, in the service's record and the feed.
    let documents = schema(&db, "documents").await;
    let held_key = format!("invoice:1:{}", held.increment_id());
    let (reason, detail) = wait_skip(&documents, "skipped_documents", &held_key).await;
    assert_eq!(reason, "period_locked");
    for date in ["2025-03-14", "2025-03-31", "2025-04-01"] {
        assert!(detail.contains(date), "{date} in {detail}");
    }
    let item = feed_item(&stack, &holder, "invoice", &held_key, "skipped").await;
    assert_eq!(item["skip_reason"], "period_locked");
    assert_eq!(item["detail"].as_str(), Some(detail.as_str()));
    assert!(stack.documents(&holder, "sales_invoices").is_empty());
    assert!(
        stack.documents(&holder, "contacts").is_empty(),
        "a held document leaves nothing behind in Sage"
    );

    no_dead_letters(&stack, &mover).await;
    no_dead_letters(&stack, &holder).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_period_locked_after_the_settings_were_read_is_found_on_sages_refusal() {
    let (stack, _nats, _db) = common::stack("periods-late", 8).await;
    let m = stack.onboard("late").await.expect("onboard");
    stack
        .put_settings(&m, json!({"locked_period": "move_to_first_open_day"}))
        .await
        .unwrap();
    let mut first = Draft::invoice("late", 1);
    first.value_mut()["payload"]["invoice"]["created_at"] = json!("2025-04-10 10:00:00");
    publish(&stack, &m, &first).await;
    let invoices = wait_count(&stack, &m, "sales_invoices", 1).await;
    assert_eq!(invoices[0]["date"], "2025-04-10");

    // The documents service has read the open period; now April is locked in Sage.
    stack
        .sandbox
        .set_financial_dates(&m.business_id, day("2020-01-01"), Some(day("2025-04-30")));
    let mut second = Draft::invoice("late", 2);
    second.value_mut()["payload"]["invoice"]["created_at"] = json!("2025-04-20 10:00:00");
    publish(&stack, &m, &second).await;
    let invoices = wait_count(&stack, &m, "sales_invoices", 2).await;
    let moved = invoices
        .iter()
        .find(|i| i["reference"] == second.increment_id().as_str())
        .expect("second invoice");
    // Refused once on its date, the financial settings read again, moved to 2025-05-01.
    assert_eq!(moved["date"], "2025-05-01");
    let stats = stack.sandbox.inspect().stats_for(&m.business_id);
    assert_eq!(
        stats.count("POST", "/v3.1/sales_invoices"),
        3,
        "1 + refused + moved"
    );
    assert_eq!(
        stats.count("GET", "/v3.1/financial_settings"),
        3,
        "read at connect (base currency), by the service, then again on the refusal"
    );
    no_dead_letters(&stack, &m).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zero_invoices_are_zero_value_and_their_payments_nothing_to_post() {
    let (stack, _nats, db) = common::stack("zero", 8).await;
    let m = stack.onboard("zero").await.expect("onboard");
    // A free order: a 100 % discount brings the grand total to 0.00.
    let free = zero_total(Draft::invoice("zero", 1));
    let paid = free.paid();
    publish(&stack, &m, &free).await;
    publish(&stack, &m, &paid).await;
    let key = format!("invoice:1:{}", free.increment_id());
    let documents = schema(&db, "documents").await;
    let payments = schema(&db, "payments").await;
    let (reason, detail) = wait_skip(&documents, "skipped_documents", &key).await;
    assert_eq!(reason, "zero_value");
    assert!(detail.contains("0.00"), "{detail}");
    let (reason, detail) = wait_skip(&payments, "skipped_payments", &key).await;
    assert_eq!(reason, "nothing_to_post");
    assert!(detail.contains("0.00"), "{detail}");
    // Shown as skipped on purpose, with the detail; not listed as held.
    let item = feed_item(&stack, &m, "invoice", &key, "skipped").await;
    assert_eq!(item["skip_reason"], "zero_value");
    assert!(item["detail"].as_str().unwrap().contains("0.00"));
    let item = feed_item(&stack, &m, "payment", &key, "skipped").await;
    assert_eq!(item["skip_reason"], "nothing_to_post");
    let held: Vec<ledger_rpc::HeldDocument> = ledger_rpc::ask(
        &stack.nats,
        ledger_rpc::HELD_DOCUMENTS_SUBJECT,
        &ledger_rpc::HeldDocumentsRequest {
            merchant: m.id.clone(),
        },
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    // Reconciliation gets the reason (a zero document is explained, not missing).
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].reason, "zero_value");
    assert!(stack.documents(&m, "sales_invoices").is_empty());
    assert!(stack.documents(&m, "contact_payments").is_empty());
    no_dead_letters(&stack, &m).await;
    stack.stop().await;
}
