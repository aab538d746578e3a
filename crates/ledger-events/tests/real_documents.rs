//! Contract test against real Magento REST responses kept (read-only, third-party) in
//! `../shared/magento/real-documents/`. Each invoice and credit memo is used verbatim as the
//! payload document; the order context is the matching real order where one exists, else a
//! minimal invented one. Every real order is also used verbatim as an order context. This proves
//! the schemas accept what Magento actually sends, and that the helpers read it correctly.
//!
//! The files are not part of this repository; when they are absent the tests print a line and
//! pass without checking anything.

use std::fs;
use std::path::{Path, PathBuf};

use ledger_events::{parse, validate, Envelope, Payload, SalesDocument};
use rust_decimal::Decimal;
use serde_json::{json, Value};

fn real_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/magento/real-documents");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "skipped: real Magento documents not found at {}",
            dir.display()
        );
        None
    }
}

fn load(dir: &Path, name: &str) -> Value {
    let text = fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    // One source publishes its order inside a one-element array.
    match v {
        Value::Array(mut a) if a.len() == 1 => a.remove(0),
        other => other,
    }
}

fn files(dir: &Path, kind: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && n.contains(kind))
        .collect();
    names.sort();
    names
}

/// The real order this document belongs to: same order id, and every document line's order item
/// exists in it with the same SKU (ids alone collide across the independent sources).
fn matching_order<'a>(doc: &Value, orders: &'a [(String, Value)]) -> Option<&'a (String, Value)> {
    orders.iter().find(|(_, order)| {
        order["entity_id"] == doc["order_id"]
            && order["order_currency_code"] == doc["order_currency_code"]
            && doc["items"].as_array().unwrap().iter().all(|item| {
                order["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|oi| oi["item_id"] == item["order_item_id"] && oi["sku"] == item["sku"])
            })
    })
}

/// A minimal order context for a document without a matching real order (invented values).
fn invented_order(doc: &Value) -> Value {
    json!({
        "entity_id": doc["order_id"],
        "increment_id": format!("INV-CTX-{}", doc["order_id"]),
        "base_currency_code": doc["base_currency_code"],
        "order_currency_code": doc["order_currency_code"],
        "base_to_order_rate": doc["base_to_order_rate"],
        "customer_id": null,
        "customer_is_guest": 1,
        "customer_email": "Contract.Test@Example.com",
        "billing_address": {
            "firstname": "Contract", "lastname": "Test", "street": ["1 Test Street"],
            "city": "Testville", "postcode": "00000", "country_id": "US"
        },
        "payment": { "method": "checkmo" }
    })
}

fn envelope(event_type: &str, store_id: &Value, payload: Value) -> Value {
    json!({
        "event_id": "6f1c2e3d-4b5a-4c6d-8e7f-0a1b2c3d4e5f",
        "schema_version": 1,
        "event_type": event_type,
        "merchant_id": "contract-test",
        "website_id": 1,
        "store_id": store_id,
        "occurred_at": "2024-01-01T00:00:00Z",
        "source": { "module_version": "0.0.0-test", "magento_version": "2.4.x" },
        "payload": payload
    })
}

fn parse_value(name: &str, v: &Value) -> Envelope {
    if let Err(e) = validate(v) {
        panic!("{name}: real Magento document rejected by the schema: {e}");
    }
    let bytes = serde_json::to_vec(v).unwrap();
    parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn dec(v: &Value) -> Decimal {
    serde_json::from_value(v.clone()).unwrap()
}

/// Magento's own arithmetic, checked on the typed document: it holds only if every amount was
/// read exactly and the dummy lines were recognised.
fn assert_reconciles<D: SalesDocument>(name: &str, doc: &D, raw: &Value, adjustments: Decimal) {
    let lines: Decimal = doc
        .accounting_items()
        .map(|i| i.row_total.unwrap_or_default())
        .sum();
    assert_eq!(
        lines,
        dec(&raw["subtotal"]),
        "{name}: non-dummy row totals vs subtotal"
    );
    let total = dec(&raw["subtotal"])
        + dec(&raw["discount_amount"])
        + dec(&raw["shipping_amount"])
        + dec(&raw["tax_amount"])
        + adjustments;
    assert_eq!(
        total,
        dec(&raw["grand_total"]),
        "{name}: grand total formula"
    );
}

#[test]
fn real_invoices_and_credit_memos_validate_and_parse() {
    let Some(dir) = real_dir() else { return };
    let orders: Vec<(String, Value)> = files(&dir, "order")
        .into_iter()
        .map(|n| (n.clone(), load(&dir, &n)))
        .collect();
    let invoices = files(&dir, "invoice");
    let memos = files(&dir, "creditmemo");
    assert!(
        !invoices.is_empty() && !memos.is_empty(),
        "expected real invoices and credit memos"
    );
    let mut matched = 0;

    for name in &invoices {
        let doc = load(&dir, name);
        let order = match matching_order(&doc, &orders) {
            Some((order_name, order)) => {
                println!("{name}: order context from {order_name}");
                matched += 1;
                order.clone()
            }
            None => invented_order(&doc),
        };
        let v = envelope(
            "invoice.created",
            &doc["store_id"],
            json!({ "invoice": doc, "order": order }),
        );
        let env = parse_value(name, &v);
        let Payload::InvoiceCreated(p) = &env.payload else {
            panic!("{name}: wrong payload")
        };
        assert_eq!(
            p.invoice.grand_total.to_string(),
            doc["grand_total"].to_string(),
            "{name}"
        );
        assert_eq!(
            p.invoice.increment_id,
            doc["increment_id"].as_str().unwrap()
        );
        assert_eq!(
            p.invoice.items.len(),
            doc["items"].as_array().unwrap().len()
        );
        assert_reconciles(name, &p.invoice, &doc, Decimal::ZERO);

        // A paid real invoice is also a valid invoice.paid snapshot.
        if doc["state"] == 2 {
            let paid = envelope(
                "invoice.paid",
                &doc["store_id"],
                json!({
                    "invoice": doc, "order": v["payload"]["order"],
                    "payment": {
                        "method": v["payload"]["order"]["payment"]["method"],
                        "amount_paid": doc["grand_total"], "base_amount_paid": doc["base_grand_total"],
                        "transaction_id": null, "paid_at": "2024-01-01T00:00:00Z"
                    }
                }),
            );
            parse_value(name, &paid);
        }

        // Where the order is known, the row_total rule for dummy lines agrees with Magento's
        // isDummy(): configurable children and (dynamic) bundle parents.
        if !p.order.items.is_empty() {
            for item in &p.invoice.items {
                let oi = p.order.order_item(item.order_item_id).expect("order item");
                let parent_type = oi
                    .parent_item_id
                    .and_then(|id| p.order.order_item(id))
                    .map(|o| o.product_type.as_str());
                let magento_dummy =
                    parent_type == Some("configurable") || oi.product_type == "bundle";
                assert_eq!(
                    item.is_dummy_line(),
                    magento_dummy,
                    "{name}: line {}",
                    item.order_item_id
                );
                assert_eq!(
                    p.order.product_type_for(item),
                    Some(oi.product_type.as_str())
                );
            }
        }

        // Mutations of the real document must be caught (the test can fail).
        let mut bad = v.clone();
        bad["payload"]["invoice"]["discount_amount"] = json!(12.5);
        assert!(
            validate(&bad).is_err(),
            "{name}: positive header discount accepted"
        );
        let mut bad = v.clone();
        bad["payload"]["invoice"]["items"][0]["qty"] = json!(0);
        let err = validate(&bad).unwrap_err();
        assert_eq!(
            err.issues()[0].path,
            "/payload/invoice/items/0/qty",
            "{name}"
        );
    }

    for name in &memos {
        let doc = load(&dir, name);
        let order = match matching_order(&doc, &orders) {
            Some((_, order)) => order.clone(),
            None => invented_order(&doc),
        };
        let v = envelope(
            "creditmemo.created",
            &doc["store_id"],
            json!({ "creditmemo": doc, "order": order }),
        );
        let env = parse_value(name, &v);
        let Payload::CreditMemoCreated(p) = &env.payload else {
            panic!("{name}: wrong payload")
        };
        let cm = &p.creditmemo;
        assert_eq!(
            cm.grand_total.to_string(),
            doc["grand_total"].to_string(),
            "{name}"
        );
        // REST drops null columns: a missing invoice_id is an unlinked refund.
        assert_eq!(cm.invoice_id, doc["invoice_id"].as_u64(), "{name}");
        assert_reconciles(name, cm, &doc, cm.adjustment_refund() - cm.adjustment_fee());

        let mut bad = v.clone();
        bad["payload"]["creditmemo"]["adjustment_positive"] = json!(-1);
        let err = validate(&bad).unwrap_err();
        assert_eq!(
            err.issues()[0].path,
            "/payload/creditmemo/adjustment_positive",
            "{name}"
        );
    }
    assert!(
        matched >= 1,
        "expected at least one invoice with its real order"
    );
}

#[test]
fn real_orders_are_valid_order_contexts() {
    let Some(dir) = real_dir() else { return };
    let names = files(&dir, "order");
    assert!(!names.is_empty());
    let template: Value = serde_json::from_str(
        &fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../schemas/examples/invoice-created-guest.json"),
        )
        .unwrap(),
    )
    .unwrap();
    for name in names {
        let order = load(&dir, &name);
        let mut v = template.clone();
        v["payload"]["order"] = order.clone();
        let env = parse_value(&name, &v);
        let Payload::InvoiceCreated(p) = &env.payload else {
            panic!()
        };
        let o = &p.order;
        let guest = order["customer_is_guest"] == 1;
        assert_eq!(o.is_guest(), guest, "{name}");
        let key = o.customer_key();
        if guest {
            let email = order["customer_email"]
                .as_str()
                .unwrap()
                .trim()
                .to_lowercase();
            assert_eq!(key, format!("guest:{email}"), "{name}");
        } else {
            assert_eq!(key, format!("customer:{}", order["customer_id"]), "{name}");
        }
        assert_eq!(
            o.base_to_order_rate,
            dec(&order["base_to_order_rate"]),
            "{name}"
        );
        assert_eq!(
            o.payment.method,
            order["payment"]["method"].as_str().unwrap()
        );
        assert_eq!(
            o.items.len(),
            order["items"].as_array().unwrap().len(),
            "{name}"
        );
        // REST has no top-level shipping address; it comes from the shipping assignments.
        let ship = o.effective_shipping_address().expect("shipping address");
        assert!(!ship.street.is_empty(), "{name}");

        // A registered order that lost its customer id must be rejected.
        if !guest {
            let mut bad = v.clone();
            bad["payload"]["order"]
                .as_object_mut()
                .unwrap()
                .remove("customer_id");
            let err = validate(&bad).unwrap_err();
            assert_eq!(err.issues()[0].path, "/payload/order/customer_id", "{name}");
        }
    }
}
