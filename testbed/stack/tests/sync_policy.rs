//! The merchant's sync policy end to end, through the gateway, NATS, the real services and
//! the Sage sandbox: a cutover date, website and store view allow-lists, zero-value and
//! unpaid invoices, a reference prefix (and a change of it that never doubles a document)
//! and the contact name priority. Each skipped document is recorded with its code and
//! shown in the status feed; a credit memo of a skipped invoice follows it, naming the
//! invoice and its reason. Nothing is dead-lettered.

mod common;

use common::{by_reference, free_samples, no_dead_letters, publish, schema, wait_count, wait_skip};

use ledger_stack::events::{Draft, Refund};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_document_is_posted_or_skipped_as_the_merchant_set() {
    // The prefix changes mid-test: the services read settings afresh each time.
    std::env::set_var("LEDGER_SETTINGS_TTL_SECS", "0");
    let (stack, _nats, db) = common::stack("policy", 8).await;
    let m = stack.onboard("policy").await.expect("onboard");
    for bad in [
        json!({"sync_since": "1 January 2025"}),
        json!({"store_ids": "1"}),
        json!({"reference_prefix": "WEB"}),
        json!({"unpaid_invoices": "hold"}),
    ] {
        assert!(
            stack.put_settings(&m, bad.clone()).await.is_err(),
            "{bad} was stored"
        );
    }
    stack
        .put_settings(
            &m,
            json!({
                "sync_since": "2025-03-10",
                "website_ids": [1],
                "store_ids": [1],
                "zero_value_invoices": "post",
                "unpaid_invoices": "skip",
                "reference_prefix": "WEB-",
                "contact_name_priority": "person",
            }),
        )
        .await
        .unwrap();

    // Posted: dated 2025-03-14, website 1, store view 1, paid; a company and a person.
    let posted = Draft::invoice("policy", 1).company(Some("Analytical Engines Ltd"));
    // Before the cutover; its credit memo (2025-03-20, after it) follows the invoice.
    let mut early = Draft::invoice("policy", 2);
    early.value_mut()["payload"]["invoice"]["created_at"] = json!("2025-03-05 10:00:00");
    let early_refund = early.credit_memo(2, &Refund::lines(&[(1, 1)]));
    let early_paid = early.paid();
    // Refunded offline from the order page (no invoice id): the order's only invoice decides.
    let mut early_offline = early.credit_memo(3, &Refund::lines(&[(0, 1)]));
    {
        let invoice = early.document().clone();
        let v = early_offline.value_mut();
        v["payload"]["creditmemo"]["invoice_id"] = json!(null);
        v["payload"]["order"]["invoices"] = json!([{
            "entity_id": invoice["entity_id"],
            "increment_id": invoice["increment_id"],
            "created_at": invoice["created_at"],
            "grand_total": invoice["grand_total"],
            "base_grand_total": invoice["base_grand_total"],
            "state": 2,
        }]);
    }
    // A website and a store view the merchant does not sync.
    let mut b2b_site = Draft::invoice("policy", 3);
    b2b_site.value_mut()["website_id"] = json!(2);
    let mut staging = Draft::invoice("policy", 4);
    staging.value_mut()["store_id"] = json!(2);
    staging.value_mut()["payload"]["invoice"]["store_id"] = json!(2);
    // Created open: the payment was not captured.
    let mut unpaid = Draft::invoice("policy", 5);
    unpaid.value_mut()["payload"]["invoice"]["state"] = json!(1);
    // Free samples: posted, as the merchant asked.
    let free = free_samples(Draft::invoice("policy", 6));
    let refund = posted.credit_memo(7, &Refund::lines(&[(1, 1)]));
    for draft in [
        &posted,
        &early,
        &early_refund,
        &early_paid,
        &early_offline,
        &b2b_site,
        &staging,
        &unpaid,
        &free,
        &refund,
    ] {
        publish(&stack, &m, draft).await;
    }

    let documents = schema(&db, "documents").await;
    let skips = [
        (
            format!("invoice:1:{}", early.increment_id()),
            "before_cutover",
            "2025-03-10",
        ),
        (
            format!("creditmemo:1:{}", early_refund.increment_id()),
            "before_cutover",
            "follows its invoice",
        ),
        (
            format!("invoice:1:{}", b2b_site.increment_id()),
            "website_not_synced",
            "website 2",
        ),
        (
            format!("invoice:2:{}", staging.increment_id()),
            "store_not_synced",
            "store view 2",
        ),
        (
            format!("invoice:1:{}", unpaid.increment_id()),
            "unpaid_at_creation",
            "open",
        ),
    ];
    for (key, code, says) in &skips {
        let (reason, detail) = wait_skip(&documents, "skipped_documents", key).await;
        assert_eq!(reason, *code, "{key}: {detail}");
        assert!(detail.contains(says), "{key}: {detail}");
    }
    let (_, detail) = wait_skip(&documents, "skipped_documents", &skips[1].0).await;
    assert!(detail.contains(&skips[0].0), "names the invoice: {detail}");
    let offline_key = format!("creditmemo:1:{}", early_offline.increment_id());
    let (reason, detail) = wait_skip(&documents, "skipped_documents", &offline_key).await;
    assert_eq!(reason, "before_cutover", "{detail}");
    assert!(
        detail.contains(&skips[0].0) && detail.contains("order"),
        "names the order's invoice: {detail}"
    );
    // Its payment follows it too (skipped, not held waiting for a release).
    let payments = schema(&db, "payments").await;
    let (reason, detail) = wait_skip(&payments, "skipped_payments", &skips[0].0).await;
    assert_eq!(reason, "before_cutover", "{detail}");
    assert!(detail.contains("follows its invoice"), "{detail}");

    // Posted under the prefix: the invoice, the free one and the credit note.
    let invoices = wait_count(&stack, &m, "sales_invoices", 2).await;
    let inv = by_reference(&invoices, &format!("WEB-{}", posted.increment_id()));
    let zero = by_reference(&invoices, &format!("WEB-{}", free.increment_id()));
    assert_eq!(
        common::dec(&zero["total_amount"]),
        rust_decimal::Decimal::ZERO
    );
    let credit_notes = wait_count(&stack, &m, "sales_credit_notes", 1).await;
    assert_eq!(
        credit_notes[0]["reference"],
        json!(format!(
            "WEB-{}/{}",
            refund.increment_id(),
            posted.increment_id()
        ))
    );
    // The person is the contact's name and the document's; the company is in the notes.
    let person = "Eleanor Pryce";
    assert_eq!(inv["contact_name"], json!(person), "{inv:#}");
    let contacts = stack.documents(&m, "contacts");
    assert_eq!(contacts.len(), 1, "{contacts:#?}");
    assert_eq!(contacts[0]["name"], json!(person));
    assert!(contacts[0]["notes"]
        .as_str()
        .unwrap_or_default()
        .contains("Company: Analytical Engines Ltd"));

    // A new prefix, then the store re-publishes the posted invoice (new event id): it is
    // found under its old reference and never doubled.
    stack
        .put_settings(&m, json!({"reference_prefix": "SHOP-"}))
        .await
        .unwrap();
    let mut again = posted.clone();
    again.value_mut()["event_id"] = json!(uuid::Uuid::new_v4().to_string());
    publish(&stack, &m, &again).await;
    let later = Draft::invoice("policy", 8);
    publish(&stack, &m, &later).await;
    let invoices = wait_count(&stack, &m, "sales_invoices", 3).await;
    by_reference(&invoices, &format!("SHOP-{}", later.increment_id()));
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let invoices = stack.documents(&m, "sales_invoices");
    assert_eq!(invoices.len(), 3, "{invoices:#?}");

    no_dead_letters(&stack, &m).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn managed_stock_products_become_stock_items_with_one_opening_movement() {
    use ledger_stack::events::{self, PRODUCT_SIMPLE};
    std::env::set_var("LEDGER_SETTINGS_TTL_SECS", "0");
    let (stack, _nats, _db) = common::stack("stock", 4).await;
    let m = stack.onboard("stock").await.expect("onboard");
    for bad in [json!({"stock_items": "yes"}), json!({"opening_stock": 1})] {
        assert!(
            stack.put_settings(&m, bad.clone()).await.is_err(),
            "{bad} was stored"
        );
    }
    let stocked = |id: u64, sku: &str, cost: Option<&str>, updated_at: &str| {
        let mut d = events::product_saved(PRODUCT_SIMPLE, "stock", id, sku);
        let p = &mut d.value_mut()["payload"]["product"];
        p["extension_attributes"]["stock_item"] =
            json!({"manage_stock": true, "qty": "40", "is_in_stock": true});
        if let Some(cost) = cost {
            p["custom_attributes"]
                .as_array_mut()
                .unwrap()
                .push(json!({"attribute_code": "cost", "value": cost}));
        }
        p["updated_at"] = json!(updated_at);
        d
    };

    // Policy off: a managed-stock product is a Sage product, as before.
    stack
        .put_settings(&m, json!({"product_sync": true}))
        .await
        .unwrap();
    publish(
        &stack,
        &m,
        &stocked(101, "MUG-OFF", Some("3.25"), "2025-02-01 08:00:00"),
    )
    .await;
    let products = wait_count(&stack, &m, "products", 1).await;
    assert_eq!(products[0]["item_code"], "MUG-OFF");

    // Policy on: a stock item; with opening stock, one movement of its quantity at its cost.
    stack
        .put_settings(&m, json!({"stock_items": true, "opening_stock": true}))
        .await
        .unwrap();
    publish(
        &stack,
        &m,
        &stocked(102, "MUG-ON", Some("3.25"), "2025-02-01 08:00:00"),
    )
    .await;
    // No cost: the item is created, the movement refused.
    publish(
        &stack,
        &m,
        &stocked(103, "MUG-NOCOST", None, "2025-02-01 08:00:00"),
    )
    .await;
    let items = wait_count(&stack, &m, "stock_items", 2).await;
    let on = items
        .iter()
        .find(|i| i["item_code"] == "MUG-ON")
        .expect("MUG-ON");
    let movements = wait_count(&stack, &m, "stock_movements", 1).await;
    assert_eq!(movements[0]["stock_item"]["id"], on["id"]);
    assert_eq!(movements[0]["quantity"], json!("40.00"));
    assert_eq!(movements[0]["cost_price"], json!("3.25"));

    // The next save updates the item and moves no stock.
    publish(
        &stack,
        &m,
        &stocked(102, "MUG-ON", Some("3.40"), "2025-02-02 08:00:00"),
    )
    .await;
    let updated = stack
        .wait_until(common::WAIT, || {
            stack
                .documents(&m, "stock_items")
                .iter()
                .any(|i| i["item_code"] == "MUG-ON" && i["cost_price"] == json!("3.40"))
        })
        .await;
    assert!(updated, "{:#?}", stack.documents(&m, "stock_items"));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let stats = stack.sandbox.inspect().stats_for(&m.business_id);
    assert_eq!(
        stats.count("POST", "/v3.1/stock_movements"),
        1,
        "opening stock once"
    );
    assert_eq!(stats.count("POST", "/v3.1/stock_items"), 2);
    assert_eq!(stats.count("PUT", "/v3.1/stock_items/{id}"), 1);
    assert_eq!(stack.documents(&m, "stock_items").len(), 2);
    assert_eq!(stack.documents(&m, "products").len(), 1);
    stack.stop().await;
}
