//! Lists (envelope, paging, attributes, filters), reference data, and
//! idempotency.

mod common;

use common::*;
use reqwest::StatusCode;
use sage_sandbox::SandboxConfig;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn pagination_envelope_and_past_last_page() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    for i in 0..5 {
        api.customer(&format!("Customer {i}"), json!({})).await;
    }
    let r = api.get("/contacts?items_per_page=2").await;
    assert_eq!(r.status, StatusCode::OK);
    let b = &r.body;
    assert_eq!(
        (
            b["$total"].as_u64(),
            b["$page"].as_u64(),
            b["$itemsPerPage"].as_u64()
        ),
        (Some(5), Some(1), Some(2))
    );
    assert_eq!(b["$back"], serde_json::Value::Null);
    assert_eq!(b["$next"], "/contacts?page=2&items_per_page=2");
    // Minimal attributes by default.
    let item = b["$items"][0].as_object().unwrap();
    let mut keys: Vec<&str> = item.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, vec!["$path", "displayed_as", "id"]);

    let last = api.get("/contacts?items_per_page=2&page=3").await.body;
    let beyond = api.get("/contacts?items_per_page=2&page=99").await.body;
    assert_eq!(beyond["$items"], last["$items"]);
    assert_eq!(beyond["$next"], serde_json::Value::Null);
    assert_eq!(beyond["$page"], 3);
    assert_eq!(beyond["$items"][0]["displayed_as"], "Customer 4");

    // Walking $next visits every item once.
    let mut seen = Vec::new();
    let mut next = Some("/contacts?items_per_page=2".to_owned());
    while let Some(path) = next {
        let page = api.get(&path).await.body;
        for it in page["$items"].as_array().unwrap() {
            seen.push(it["id"].as_str().unwrap().to_owned());
        }
        next = page["$next"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), 5);

    let r = api.get("/contacts?items_per_page=201").await;
    r.assert_422("items_per_page");
    assert_eq!(
        api.get("/contacts?items_per_page=200").await.status,
        StatusCode::OK
    );
    assert_eq!(api.get("/contacts").await.body["$itemsPerPage"], 20);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn attributes_parameter() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    api.customer("Ada", json!({"reference": "ADA"})).await;
    let r = api.get("/contacts?attributes=reference,name").await;
    let item = &r.body["$items"][0];
    assert_eq!(item["reference"], "ADA");
    assert_eq!(item["name"], "Ada");
    assert!(item.get("currency").is_none());
    let r = api.get("/contacts?attributes=all").await;
    assert_eq!(r.body["$items"][0]["currency"]["id"], "GBP");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn filters() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let ada = api
        .customer(
            "Ada Lovelace",
            json!({"reference": "ADA", "main_contact_person": {"email": "ada@example.com"}}),
        )
        .await;
    let bob = api.customer("Bob", json!({"reference": "BOB1"})).await;
    api.post(
        "/contacts",
        json!({"contact": {"name": "Supplier", "contact_type_ids": ["VENDOR"]}}),
    )
    .await;
    assert_eq!(api.get("/contacts?search=lovelace").await.body["$total"], 1);
    assert_eq!(api.get("/contacts?search=bob1").await.body["$total"], 1);
    let r = api
        .get("/contacts?email=ADA@example.com&attributes=email")
        .await;
    assert_eq!(r.body["$total"], 1);
    assert_eq!(r.body["$items"][0]["id"], ada.as_str());
    assert_eq!(
        api.get("/contacts?contact_type_id=VENDOR").await.body["$total"],
        1
    );
    // Changing the email moves the contact in the email lookup.
    let r = api
        .put(
            &format!("/contacts/{ada}"),
            json!({"contact": {"main_contact_person": {"email": "countess@example.com"}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        api.get("/contacts?email=ada@example.com").await.body["$total"],
        0
    );
    assert_eq!(
        api.get("/contacts?email=countess@example.com").await.body["$items"][0]["id"],
        ada.as_str()
    );

    for (contact, date, reference) in [
        (&ada, "2024-01-10", "ORDER-100"),
        (&ada, "2024-02-10", "ORDER-101"),
        (&bob, "2024-03-10", "ORDER-102"),
    ] {
        let body = json!({"sales_invoice": {"contact_id": contact, "date": date, "reference": reference, "invoice_lines": [api.line("W", "1", "10", "2")]}});
        assert_eq!(
            api.post("/sales_invoices", body).await.status,
            StatusCode::CREATED
        );
    }
    assert_eq!(
        api.get("/sales_invoices?search=ORDER-101").await.body["$total"],
        1
    );
    assert_eq!(
        api.get("/sales_invoices?search=lovelace").await.body["$total"],
        2
    );
    assert_eq!(
        api.get(&format!("/sales_invoices?contact_id={bob}"))
            .await
            .body["$total"],
        1
    );
    assert_eq!(
        api.get("/sales_invoices?from_date=2024-02-01&to_date=2024-03-10")
            .await
            .body["$total"],
        2
    );
    assert_eq!(
        api.get("/sales_invoices?status_id=UNPAID").await.body["$total"],
        3
    );
    let sorted = api
        .get("/sales_invoices?sort=date:desc&attributes=date")
        .await
        .body;
    assert_eq!(sorted["$items"][0]["date"], "2024-03-10");
    api.get("/sales_invoices?from_date=2024-13-01")
        .await
        .assert_422("from_date");

    api.post("/products", json!({"product": {"description": "Red mug", "item_code": "MUG-R", "sales_ledger_account_id": api.ledger("4000"), "purchase_ledger_account_id": api.ledger("5000")}})).await;
    api.post("/products", json!({"product": {"description": "Teapot", "item_code": "POT", "active": false, "sales_ledger_account_id": api.ledger("4000"), "purchase_ledger_account_id": api.ledger("5000")}})).await;
    assert_eq!(api.get("/products?search=mug-r").await.body["$total"], 1);
    assert_eq!(api.get("/products?search=teapot").await.body["$total"], 1);
    assert_eq!(api.get("/products?active=true").await.body["$total"], 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn reference_data() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let rates = api
        .get("/tax_rates?attributes=percentage,is_visible")
        .await
        .body;
    let ids: Vec<&str> = rates["$items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            "GB_STANDARD",
            "GB_LOWER",
            "GB_ZERO",
            "GB_EXEMPT",
            "GB_NO_TAX"
        ]
    );
    assert_eq!(rates["$items"][0]["percentage"], "20.0");
    assert_eq!(
        api.get("/tax_rates/GB_LOWER").await.body["percentage"],
        "5.0"
    );
    let currencies = api.get("/currencies?items_per_page=200").await.body;
    for c in ["GBP", "EUR", "USD"] {
        assert!(currencies["$items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == c));
    }
    let methods = api.get("/payment_methods").await.body;
    assert!(methods["$items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["id"] == "CREDIT_DEBIT"));
    let sales = api
        .get("/ledger_accounts?visible_in=sales&attributes=nominal_code")
        .await
        .body;
    let codes: Vec<u64> = sales["$items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["nominal_code"].as_u64().unwrap())
        .collect();
    assert!(
        codes.contains(&4000)
            && codes.contains(&4900)
            && codes.contains(&4905)
            && !codes.contains(&5000),
        "{codes:?}"
    );
    let banks = api.get("/bank_accounts?attributes=all").await.body;
    let listed: Vec<(&str, &str, bool)> = banks["$items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["currency"]["id"].as_str().unwrap(),
                i["bank_account_type"]["id"].as_str().unwrap(),
                i["is_active"].as_bool().unwrap(),
            )
        })
        .collect();
    // An archived current account, a credit card and a loan come first (discovery must skip
    // them), then one current account per currency.
    assert_eq!(
        listed,
        vec![
            ("GBP", "CHECKING", false),
            ("GBP", "CREDIT_CARD", true),
            ("GBP", "LOAN", true),
            ("GBP", "CHECKING", true),
            ("EUR", "CHECKING", true),
            ("USD", "CHECKING", true),
        ]
    );
    let la = api.ledger("4905");
    assert_eq!(
        api.get(&format!("/ledger_accounts/{la}")).await.body["nominal_code"],
        4905
    );
    assert_eq!(api.get("/eu_goods_services_types").await.body["$total"], 2);
    assert_eq!(api.get("/contact_types").await.body["$total"], 2);
    // Ids are 32 hex characters.
    assert!(la.len() == 32 && la.chars().all(|c| c.is_ascii_hexdigit()));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn idempotent_replay_returns_first_answer_and_creates_nothing() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let key = idem();
    let body = json!({"contact": {"name": "Ada", "contact_type_ids": ["CUSTOMER"], "idempotency_id": key}});
    let first = api.post("/contacts", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let second = api.post("/contacts", body).await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.body, first.body);
    // Even a different body under the same id replays the first answer.
    let third = api.post("/contacts", json!({"contact": {"name": "Someone else", "contact_type_ids": ["CUSTOMER"], "idempotency_id": key}})).await;
    assert_eq!(third.id(), first.id());
    assert_eq!(
        sandbox
            .inspect()
            .documents(&api.business.id, "contacts")
            .len(),
        1
    );
    let stats = sandbox.inspect().stats_for(&api.business.id);
    assert_eq!(stats.replays(), 2);
    assert_eq!(stats.count_status("POST", "/v3.1/contacts", 201), 3);

    // Invoices too.
    let c = first.id();
    let key = idem();
    let inv = json!({"sales_invoice": {"contact_id": c, "date": "2024-05-01", "idempotency_id": key, "invoice_lines": [api.line("W", "1", "10", "2")]}});
    let a = api.post("/sales_invoices", inv.clone()).await;
    let b = api.post("/sales_invoices", inv).await;
    assert_eq!(a.id(), b.id());
    assert_eq!(
        sandbox
            .inspect()
            .documents(&api.business.id, "sales_invoices")
            .len(),
        1
    );

    // Failed requests are not remembered: fixing the body under the same id works.
    let key = idem();
    let bad = api.post("/contacts", json!({"contact": {"name": "n".repeat(101), "contact_type_ids": ["CUSTOMER"], "idempotency_id": key}})).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let good = api.post("/contacts", json!({"contact": {"name": "Fixed", "contact_type_ids": ["CUSTOMER"], "idempotency_id": key}})).await;
    assert_eq!(good.status, StatusCode::CREATED);

    // Works on PUT.
    let key = idem();
    let put = json!({"contact": {"notes": "hello", "idempotency_id": key}});
    let p1 = api.put(&format!("/contacts/{c}"), put.clone()).await;
    let p2 = api.put(&format!("/contacts/{c}"), put).await;
    assert_eq!(p1.status, StatusCode::OK);
    assert_eq!(p1.body, p2.body);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn idempotency_id_on_another_resource_is_a_mismatch() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let key = idem();
    let r = api.post("/contacts", json!({"contact": {"name": "Ada", "contact_type_ids": ["CUSTOMER"], "idempotency_id": key}})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = api
        .post("/services", json!({"service": {"description": "Wrap", "sales_ledger_account_id": api.ledger("4000"), "idempotency_id": key}}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.body,
        json!([{"$severity": "error", "$dataCode": "IdempotencyResourceMismatch", "$message": "Entity type mismatch", "$source": ""}])
    );
    assert!(sandbox
        .inspect()
        .documents(&api.business.id, "services")
        .is_empty());
    // Ids are per business: another business may reuse it.
    let other = uk(&sandbox).await;
    let r = other.post("/services", json!({"service": {"description": "Wrap", "sales_ledger_account_id": other.ledger("4000"), "idempotency_id": key}})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn idempotency_window_expires() {
    let sandbox = start_with(SandboxConfig {
        idempotency_window: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let api = uk(&sandbox).await;
    let key = idem();
    let body = json!({"contact": {"name": "Ada", "contact_type_ids": ["CUSTOMER"], "idempotency_id": key}});
    let a = api.post("/contacts", body.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = api.post("/contacts", body).await;
    assert_eq!(b.status, StatusCode::CREATED);
    assert_ne!(a.id(), b.id());
    sandbox.shutdown().await;
}
