//! The sync status feed end to end: a synced invoice and a held one appear in the merchant's
//! `GET /v1/status` feed with their states, and the cursor resumes where the last read ended.

mod common;

use std::time::Duration;

use ledger_stack::events::Draft;
use ledger_stack::{Merchant, Stack};
use ledger_testkit::{TestDb, TestNats};
use rust_decimal_macros::dec;
use serde_json::Value;

async fn stack() -> (Stack, TestNats, TestDb) {
    common::stack("status", 8).await
}

async fn feed(stack: &Stack, key: &str, cursor: u64, limit: usize) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}/v1/status", stack.gateway_url))
        .bearer_auth(key)
        .query(&[("cursor", cursor.to_string()), ("limit", limit.to_string())])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Reads the whole feed after `cursor` until it holds at least `n` items.
async fn wait_items(stack: &Stack, merchant: &Merchant, cursor: u64, n: usize) -> Vec<Value> {
    for _ in 0..400 {
        let (status, page) = feed(stack, &merchant.ingest_key, cursor, 100).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap().clone();
        if items.len() >= n {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "feed of {} never held {n} items after {cursor}",
        merchant.id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn synced_and_held_invoices_appear_in_the_feed_and_the_cursor_resumes() {
    let (stack, _nats, _db) = stack().await;
    let merchant = stack.onboard("fed").await.unwrap();
    let other = stack.onboard("elsewhere").await.unwrap();

    let synced = Draft::invoice("fed", 1);
    assert_eq!(
        stack
            .post_event(&merchant, &synced.build().body)
            .await
            .unwrap()
            .0,
        202
    );
    let synced_key = format!("invoice:1:{}", synced.increment_id());
    let is = |key: &str| {
        let key = key.to_string();
        move |item: &&Value| item["document_key"] == key.as_str()
    };
    // The invoice's customer got its contact on the way: the customer is synced too.
    let items = wait_items(&stack, &merchant, 0, 2).await;
    // An invoice with a tax rate the merchant has not mapped is held.
    let held = Draft::invoice("fed", 2)
        .customer(900, "held@example.com")
        .retax(dec!(17.5));
    assert_eq!(
        stack
            .post_event(&merchant, &held.build().body)
            .await
            .unwrap()
            .0,
        202
    );
    let held_key = format!("invoice:1:{}", held.increment_id());
    let items = wait_items(&stack, &merchant, 0, items.len() + 1).await;
    assert_eq!(items.len(), 3, "{items:#?}");

    let invoice = stack.documents(&merchant, "sales_invoices").remove(0);
    let synced_item = items.iter().find(is(&synced_key)).expect("synced invoice");
    assert_eq!(synced_item["entity"], "invoice");
    assert_eq!(synced_item["state"], "synced");
    assert_eq!(synced_item["sage_reference"], invoice["reference"]);
    assert_eq!(synced_item["sage_id"], invoice["id"]);
    // Sage's own number beside the id: what the merchant finds the invoice by in Sage.
    assert_eq!(synced_item["sage_number"], invoice["invoice_number"]);
    assert!(invoice["invoice_number"]
        .as_str()
        .unwrap()
        .starts_with("SI-"));
    assert!(synced_item["at"].is_string());
    let customer = items
        .iter()
        .find(|i| i["entity"] == "customer")
        .expect("customer");
    assert_eq!(customer["state"], "synced");
    assert_eq!(customer["sage_id"], invoice["contact"]["id"]);
    let held_item = items.iter().find(is(&held_key)).expect("held invoice");
    assert_eq!(held_item["entity"], "invoice");
    assert_eq!(held_item["state"], "skipped");
    assert_eq!(held_item["skip_reason"], "unmapped_tax_rate");
    // The human-readable detail beside the code: which rate.
    let detail = held_item["detail"].as_str().expect("detail");
    assert!(detail.contains("17.5"), "{detail}");
    assert!(held_item.get("sage_reference").is_none());
    // Oldest first.
    let cursors: Vec<u64> = items
        .iter()
        .map(|i| i["cursor"].as_u64().unwrap())
        .collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");

    // Page by page: the cursor of the last item read resumes right after it.
    let mut cursor = 0;
    let mut paged = Vec::new();
    loop {
        let (_, page) = feed(&stack, &merchant.ingest_key, cursor, 1).await;
        let got = page["items"].as_array().unwrap();
        assert_eq!(got.len(), 1, "{page}");
        paged.push(got[0].clone());
        assert_eq!(page["next_cursor"], got[0]["cursor"]);
        cursor = page["next_cursor"].as_u64().unwrap();
        if page["more"] == false {
            break;
        }
    }
    assert_eq!(paged, items);
    let (_, page) = feed(&stack, &merchant.ingest_key, cursor, 10).await;
    assert!(page["items"].as_array().unwrap().is_empty(), "{page}");
    assert_eq!(page["next_cursor"], cursor);
    assert_eq!(page["more"], false);

    // A later change comes after that cursor, alone.
    let later = Draft::invoice("fed", 3);
    assert_eq!(
        stack
            .post_event(&merchant, &later.build().body)
            .await
            .unwrap()
            .0,
        202
    );
    let items = wait_items(&stack, &merchant, cursor, 1).await;
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0]["document_key"],
        format!("invoice:1:{}", later.increment_id())
    );
    assert_eq!(items[0]["state"], "synced");

    // Each merchant reads only its own feed, and only with its key.
    let (_, page) = feed(&stack, &other.ingest_key, 0, 100).await;
    assert!(page["items"].as_array().unwrap().is_empty(), "{page}");
    let (status, _) = feed(&stack, "not-a-key", 0, 100).await;
    assert_eq!(status, 401);
    stack.stop().await;
}
