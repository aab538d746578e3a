//! Structural validation against the swagger extract, over HTTP.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn unknown_field_is_rejected_with_its_path() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let contact = api.customer("Ada", json!({})).await;
    let mut line = api.line("Widget", "1", "10.00", "2.00");
    line["colour"] = json!("blue");
    let r = api.invoice(&contact, json!([line])).await;
    r.assert_422("sales_invoice.invoice_lines[0].colour");
    assert_eq!(r.data_code(), "RecordInvalid");

    let r = api.post("/contacts", json!({"contact": {"name": "X", "contact_type_ids": ["CUSTOMER"], "email": "x@example.com"}})).await;
    r.assert_422("contact.email");
    let r = api
        .post(
            "/contacts",
            json!({"contact": {"name": "X", "contact_type_ids": ["CUSTOMER"]}, "extra": 1}),
        )
        .await;
    r.assert_422("extra");
    assert!(sandbox
        .inspect()
        .documents(&api.business.id, "sales_invoices")
        .is_empty());
    sandbox.shutdown().await;
}

#[tokio::test]
async fn wrong_type_is_rejected() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let contact = api.customer("Ada", json!({})).await;
    let mut line = api.line("Widget", "1", "10.00", "2.00");
    line["unit_price"] = json!("ten pounds");
    let r = api.invoice(&contact, json!([line])).await;
    r.assert_422("sales_invoice.invoice_lines[0].unit_price");

    let r = api
        .post(
            "/contacts",
            json!({"contact": {"name": 5, "contact_type_ids": ["CUSTOMER"]}}),
        )
        .await;
    r.assert_422("contact.name");
    let r = api
        .post(
            "/contacts",
            json!({"contact": {"name": "A", "contact_type_ids": "CUSTOMER"}}),
        )
        .await;
    r.assert_422("contact.contact_type_ids");
    let r = api
        .post(
            "/contacts",
            json!({"contact": {"name": "A", "contact_type_ids": ["CUSTOMER"], "credit_days": 1.5}}),
        )
        .await;
    r.assert_422("contact.credit_days");
    let r = api.post("/contacts", json!({"contact": {"name": "A", "contact_type_ids": ["CUSTOMER"], "destination_vat_blocking": "no"}})).await;
    r.assert_422("contact.destination_vat_blocking");
    let r = api
        .post("/sales_invoices", json!({"sales_invoice": {"contact_id": contact, "date": "01/05/2024", "invoice_lines": [api.line("W", "1", "1", "0.20")]}}))
        .await;
    r.assert_422("sales_invoice.date");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn missing_required_field_is_named() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let r = api
        .post(
            "/contacts",
            json!({"contact": {"contact_type_ids": ["CUSTOMER"]}}),
        )
        .await;
    r.assert_422("contact.name");
    let contact = api.customer("Ada", json!({})).await;
    let r = api
        .post("/sales_invoices", json!({"sales_invoice": {"contact_id": contact, "invoice_lines": [api.line("W", "1", "1", "0.20")]}}))
        .await;
    r.assert_422("sales_invoice.date");
    let mut line = api.line("W", "1", "1", "0.20");
    line.as_object_mut().unwrap().remove("ledger_account_id");
    let r = api.invoice(&contact, json!([line])).await;
    r.assert_422("sales_invoice.invoice_lines[0].ledger_account_id");
    let r = api
        .post(
            "/products",
            json!({"product": {"description": "P", "sales_ledger_account_id": api.ledger("4000")}}),
        )
        .await;
    r.assert_422("product.purchase_ledger_account_id");
    let r = api.post("/contacts", json!({})).await;
    r.assert_422("contact");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn decimals_as_strings_and_numbers_are_accepted() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let contact = api.customer("Ada", json!({})).await;
    let lines = json!([
        {"description": "String decimals", "ledger_account_id": api.ledger("4000"), "quantity": "2", "unit_price": "9.99", "tax_rate_id": "GB_STANDARD", "tax_amount": "4.00"},
        {"description": "Number decimals", "ledger_account_id": api.ledger("4000"), "quantity": 1, "unit_price": 0.1, "tax_rate_id": "GB_STANDARD", "tax_amount": 0.02}
    ]);
    let r = api.invoice(&contact, lines).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["invoice_lines"][0]["net_amount"], "19.98");
    assert_eq!(r.body["invoice_lines"][1]["net_amount"], "0.10");
    assert_eq!(r.body["total_amount"], "24.10");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn malformed_json_is_422() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let r = api
        .http
        .post(format!("{}/contacts", api.base))
        .bearer_auth(&api.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body[0]["$dataCode"], "RecordInvalid");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_use_the_envelope() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let r = api.get("/purchase_invoices").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.data_code(), "RecordNotFound");
    let r = api.get("/contacts/0123456789abcdef0123456789abcdef").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api.put("/sales_invoices/abc", json!({})).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    sandbox.shutdown().await;
}
