//! Sage's documented rules and quirks, one test each, over HTTP.

mod common;

use common::*;
use reqwest::StatusCode;
use sage_sandbox::BusinessSpec;
use serde_json::{json, Value};

#[tokio::test]
async fn contact_reference_at_most_10() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let r = api.post("/contacts", json!({"contact": {"name": "A", "contact_type_ids": ["CUSTOMER"], "reference": "ABCDEFGHIJK"}})).await;
    r.assert_422("contact.reference");
    let r = api.post("/contacts", json!({"contact": {"name": "A", "contact_type_ids": ["CUSTOMER"], "reference": "ABCDEFGHIJ"}})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["displayed_as"], "A (ABCDEFGHIJ)");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn contact_reference_unique_including_soft_deleted() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let first = api.customer("First", json!({"reference": "CUST1"})).await;
    let r = api.post("/contacts", json!({"contact": {"name": "Second", "contact_type_ids": ["CUSTOMER"], "reference": "cust1"}})).await;
    r.assert_422("contact.reference");

    let r = api.delete(&format!("/contacts/{first}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get(&format!("/contacts/{first}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(api.get("/contacts").await.body["$total"], 0);
    // Still reserved after the soft delete.
    let r = api.post("/contacts", json!({"contact": {"name": "Third", "contact_type_ids": ["CUSTOMER"], "reference": "CUST1"}})).await;
    r.assert_422("contact.reference");
    let stored = sandbox
        .inspect()
        .document(&api.business.id, "contacts", &first)
        .unwrap();
    assert!(stored["deleted_at"].is_string());

    // Updating a contact to another's reference is also refused; keeping its own is fine.
    let other = api.customer("Other", json!({"reference": "OTH"})).await;
    let r = api
        .put(
            &format!("/contacts/{other}"),
            json!({"contact": {"reference": "CUST1"}}),
        )
        .await;
    r.assert_422("contact.reference");
    let r = api
        .put(
            &format!("/contacts/{other}"),
            json!({"contact": {"reference": "OTH", "notes": "n"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["notes"], "n");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn contact_name_at_most_100() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let r = api
        .post(
            "/contacts",
            json!({"contact": {"name": "n".repeat(101), "contact_type_ids": ["CUSTOMER"]}}),
        )
        .await;
    r.assert_422("contact.name");
    let r = api
        .post(
            "/contacts",
            json!({"contact": {"name": "n".repeat(100), "contact_type_ids": ["CUSTOMER"]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn contact_has_exactly_one_type() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let r = api
        .post(
            "/contacts",
            json!({"contact": {"name": "A", "contact_type_ids": ["CUSTOMER", "VENDOR"]}}),
        )
        .await;
    r.assert_422("contact.contact_type_ids");
    let r = api
        .post(
            "/contacts",
            json!({"contact": {"name": "A", "contact_type_ids": []}}),
        )
        .await;
    r.assert_422("contact.contact_type_ids");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn contact_address_line_and_postcode_limits() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let r = api
        .post("/contacts", json!({"contact": {"name": "A", "contact_type_ids": ["CUSTOMER"], "main_address": {"address_line_1": "x".repeat(51)}}}))
        .await;
    r.assert_422("contact.main_address.address_line_1");
    let r = api
        .post("/contacts", json!({"contact": {"name": "A", "contact_type_ids": ["CUSTOMER"], "main_address": {"postal_code": "SW1A 1AA XX"}}}))
        .await;
    r.assert_422("contact.main_address.postal_code");
    let r = api
        .post(
            "/contacts",
            json!({"contact": {"name": "A", "contact_type_ids": ["CUSTOMER"], "main_address": {"address_line_1": "x".repeat(50), "postal_code": "SW1A 1AA", "country_id": "GB"}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    // Sage copies the billing address into the delivery address.
    assert_eq!(r.body["delivery_address"]["postal_code"], "SW1A 1AA");
    assert_eq!(r.body["main_address"]["country"]["id"], "GB");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn document_reference_at_most_25() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let c = api.customer("A", json!({})).await;
    let r = api
        .post(
            "/sales_invoices",
            json!({"sales_invoice": {"contact_id": c, "date": "2024-05-01", "reference": "R".repeat(26), "invoice_lines": [api.line("W", "1", "1", "0.20")]}}),
        )
        .await;
    r.assert_422("sales_invoice.reference");
    let r = api
        .post(
            "/sales_credit_notes",
            json!({"sales_credit_note": {"contact_id": c, "date": "2024-05-01", "reference": "R".repeat(26), "credit_note_lines": [api.line("W", "1", "1", "0.20")]}}),
        )
        .await;
    r.assert_422("sales_credit_note.reference");
    let r = api
        .post(
            "/sales_invoices",
            json!({"sales_invoice": {"contact_id": c, "date": "2024-05-01", "reference": "R".repeat(25), "invoice_lines": [api.line("W", "1", "1", "0.20")]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn contact_person_and_notes_within_limits() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let person = |field: &str, len: usize| {
        let mut p = json!({"contact_person_type_ids": ["ACCOUNTS"], "is_main_contact": true});
        p[field] = json!("x".repeat(len));
        json!({"contact": {"name": "A", "contact_type_ids": ["CUSTOMER"], "main_contact_person": p}})
    };
    for (field, max) in [
        ("name", 50),
        ("telephone", 50),
        ("mobile", 50),
        ("email", 100),
    ] {
        let r = api.post("/contacts", person(field, max + 1)).await;
        r.assert_422(&format!("contact.main_contact_person.{field}"));
        let r = api.post("/contacts", person(field, max)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{field}: {}", r.body);
    }
    let r = api
        .post(
            "/contacts",
            json!({"contact": {"name": "B", "contact_type_ids": ["CUSTOMER"], "notes": "n".repeat(4001)}}),
        )
        .await;
    r.assert_422("contact.notes");
    let c = api.customer("C", json!({"notes": "n".repeat(4000)})).await;
    let r = api
        .post(
            "/sales_invoices",
            json!({"sales_invoice": {"contact_id": c, "date": "2024-05-01", "notes": "n".repeat(2001), "invoice_lines": [api.line("W", "1", "1", "0.20")]}}),
        )
        .await;
    r.assert_422("sales_invoice.notes");
    let r = api
        .post(
            "/sales_credit_notes",
            json!({"sales_credit_note": {"contact_id": c, "date": "2024-05-01", "notes": "n".repeat(2001), "credit_note_lines": [api.line("W", "1", "1", "0.20")]}}),
        )
        .await;
    r.assert_422("sales_credit_note.notes");
    let r = api
        .post(
            "/sales_invoices",
            json!({"sales_invoice": {"contact_id": c, "date": "2024-05-01", "notes": "é".repeat(2000), "invoice_lines": [api.line("W", "1", "1", "0.20")]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn status_is_not_writable() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let c = api.customer("A", json!({})).await;
    let r = api
        .post(
            "/sales_invoices",
            json!({"sales_invoice": {"contact_id": c, "date": "2024-05-01", "status_id": "PAID", "invoice_lines": [api.line("W", "1", "1", "0.20")]}}),
        )
        .await;
    r.assert_422("sales_invoice.status_id");
    let r = api
        .invoice(&c, json!([api.line("W", "1", "1", "0.20")]))
        .await;
    assert_eq!(r.body["status"]["id"], "UNPAID");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn referenced_records_must_exist() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let c = api.customer("A", json!({})).await;
    let missing = "0123456789abcdef0123456789abcdef";
    let check = |r: Resp, source: &str| {
        r.assert_422(source);
        assert_eq!(r.data_code(), "RecordNotFound", "{}", r.body);
    };

    check(
        api.invoice(missing, json!([api.line("W", "1", "1", "0.20")]))
            .await,
        "sales_invoice.contact_id",
    );
    let mut l = api.line("W", "1", "1", "0.20");
    l["ledger_account_id"] = json!(missing);
    check(
        api.invoice(&c, json!([l])).await,
        "sales_invoice.invoice_lines[0].ledger_account_id",
    );
    // A purchase ledger account is not usable on a sales line.
    let mut l = api.line("W", "1", "1", "0.20");
    l["ledger_account_id"] = json!(api.ledger("5000"));
    check(
        api.invoice(&c, json!([l])).await,
        "sales_invoice.invoice_lines[0].ledger_account_id",
    );
    let mut l = api.line("W", "1", "1", "0.20");
    l["tax_rate_id"] = json!("GB_REDUCED");
    check(
        api.invoice(&c, json!([l])).await,
        "sales_invoice.invoice_lines[0].tax_rate_id",
    );
    let mut l = api.line("W", "1", "1", "0.20");
    l["product_id"] = json!(missing);
    check(
        api.invoice(&c, json!([l])).await,
        "sales_invoice.invoice_lines[0].product_id",
    );
    let mut l = api.line("W", "1", "1", "0.20");
    l["service_id"] = json!(missing);
    check(
        api.invoice(&c, json!([l])).await,
        "sales_invoice.invoice_lines[0].service_id",
    );
    let r = api
        .post("/sales_invoices", json!({"sales_invoice": {"contact_id": c, "date": "2024-05-01", "currency_id": "XXX", "invoice_lines": [api.line("W", "1", "1", "0.20")]}}))
        .await;
    check(r, "sales_invoice.currency_id");
    let r = api.post("/contacts", json!({"contact": {"name": "B", "contact_type_ids": ["CUSTOMER"], "currency_id": "ZZZ"}})).await;
    check(r, "contact.currency_id");
    let r = api
        .post("/products", json!({"product": {"description": "P", "sales_ledger_account_id": api.ledger("4000"), "purchase_ledger_account_id": missing}}))
        .await;
    check(r, "product.purchase_ledger_account_id");

    let inv = api
        .invoice(&c, json!([api.line("W", "1", "10", "2")]))
        .await
        .id();
    let pay = |bank: &str, method: &str| {
        json!({"contact_payment": {"transaction_type_id": "CUSTOMER_RECEIPT", "contact_id": c, "bank_account_id": bank, "payment_method_id": method,
            "date": "2024-05-03", "total_amount": "12.00", "allocated_artefacts": [{"artefact_id": inv, "amount": "12.00"}]}})
    };
    check(
        api.post("/contact_payments", pay(missing, "CREDIT_DEBIT"))
            .await,
        "contact_payment.bank_account_id",
    );
    check(
        api.post("/contact_payments", pay(&api.bank("GBP"), "BITCOIN"))
            .await,
        "contact_payment.payment_method_id",
    );
    let mut body = pay(&api.bank("GBP"), "CREDIT_DEBIT");
    body["contact_payment"]["allocated_artefacts"][0]["artefact_id"] = json!(missing);
    check(
        api.post("/contact_payments", body).await,
        "contact_payment.allocated_artefacts[0].artefact_id",
    );
    // Valid ids pass.
    let r = api
        .post("/contact_payments", pay(&api.bank("GBP"), "CREDIT_DEBIT"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    // A supplier is not a customer.
    let vendor = api
        .post(
            "/contacts",
            json!({"contact": {"name": "V", "contact_type_ids": ["VENDOR"]}}),
        )
        .await
        .id();
    check(
        api.invoice(&vendor, json!([api.line("W", "1", "1", "0.20")]))
            .await,
        "sales_invoice.contact_id",
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn contact_currency_locked_after_first_document() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let c = api
        .customer("Euro Kunde", json!({"currency_id": "EUR"}))
        .await;
    // Before any document the currency may change.
    let r = api
        .put(
            &format!("/contacts/{c}"),
            json!({"contact": {"currency_id": "USD"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = api
        .put(
            &format!("/contacts/{c}"),
            json!({"contact": {"currency_id": "EUR"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = api
        .invoice(&c, json!([api.line("W", "1", "10", "2")]))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["currency"]["id"], "EUR");
    let r = api
        .put(
            &format!("/contacts/{c}"),
            json!({"contact": {"currency_id": "GBP"}}),
        )
        .await;
    r.assert_422("contact.currency_id");
    // Unchanged currency in a PUT is fine.
    let r = api
        .put(
            &format!("/contacts/{c}"),
            json!({"contact": {"currency_id": "EUR", "notes": "x"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // And a contact with transactions cannot be deleted.
    assert_eq!(
        api.delete(&format!("/contacts/{c}")).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn document_currency_must_equal_contact_currency() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let c = api
        .customer("Euro Kunde", json!({"currency_id": "EUR"}))
        .await;
    let r = api
        .post("/sales_invoices", json!({"sales_invoice": {"contact_id": c, "date": "2024-05-01", "currency_id": "USD", "invoice_lines": [api.line("W", "1", "1", "0.20")]}}))
        .await;
    r.assert_422("sales_invoice.currency_id");
    let r = api
        .post("/sales_invoices", json!({"sales_invoice": {"contact_id": c, "date": "2024-05-01", "currency_id": "EUR", "exchange_rate": "0.85", "invoice_lines": [api.line("W", "1", "1", "0.20")]}}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn multi_currency_disabled_refuses_foreign_contacts() {
    let sandbox = start().await;
    let api = connect(
        &sandbox,
        BusinessSpec {
            multi_currency_enabled: false,
            ..Default::default()
        },
    )
    .await;
    let r = api.post("/contacts", json!({"contact": {"name": "E", "contact_type_ids": ["CUSTOMER"], "currency_id": "EUR"}})).await;
    r.assert_422("contact.currency_id");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn html_entities_in_line_descriptions_are_refused() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let c = api.customer("A", json!({})).await;
    let r = api
        .invoice(&c, json!([api.line("Widget&trade; Pro", "1", "10", "2")]))
        .await;
    r.assert_422("sales_invoice.invoice_lines[0].description");
    let r = api
        .credit_note(
            &c,
            json!([
                api.line("ok", "1", "1", "0.20"),
                api.line("Fish &amp; Chips", "1", "10", "2")
            ]),
        )
        .await;
    r.assert_422("sales_credit_note.credit_note_lines[1].description");
    let r = api
        .invoice(
            &c,
            json!([api.line("Widget™ Fish & Chips", "1", "10", "2")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn tax_amount_required_unless_zero_rate() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let c = api.customer("A", json!({})).await;
    let mut l = api.line("W", "1", "10", "2");
    l.as_object_mut().unwrap().remove("tax_amount");
    api.invoice(&c, json!([l.clone()]))
        .await
        .assert_422("sales_invoice.invoice_lines[0].tax_amount");
    for zero in ["GB_ZERO", "GB_EXEMPT", "GB_NO_TAX"] {
        l["tax_rate_id"] = json!(zero);
        let r = api.invoice(&c, json!([l.clone()])).await;
        assert_eq!(r.status, StatusCode::CREATED, "{zero}: {}", r.body);
        assert_eq!(r.body["tax_amount"], "0.00");
    }
    // No explicit rate: the ledger account's default (standard) applies, so tax_amount is required.
    l.as_object_mut().unwrap().remove("tax_rate_id");
    api.invoice(&c, json!([l]))
        .await
        .assert_422("sales_invoice.invoice_lines[0].tax_amount");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn lines_are_rounded_to_2dp_before_totalling() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let c = api.customer("A", json!({})).await;
    // Sage's example: 41.625 + 8.325 gives 49.96.
    let r = api
        .invoice(&c, json!([api.line("A", "1", "41.625", "8.325")]))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let line = &r.body["invoice_lines"][0];
    assert_eq!(
        (
            line["unit_price"].as_str(),
            line["net_amount"].as_str(),
            line["tax_amount"].as_str(),
            line["total_amount"].as_str()
        ),
        (Some("41.63"), Some("41.63"), Some("8.33"), Some("49.96"))
    );

    // Unit price rounded first, then quantity × price rounded, minus rounded discount.
    let mut l = api.line("B", "3", "0.335", "0.2");
    l["discount_amount"] = json!("0.005");
    let mut l2 = api.line("C", "0.333", "10", "0.666");
    l2["tax_amount"] = json!("0.666");
    let r = api.invoice(&c, json!([l, l2])).await;
    let lines = &r.body["invoice_lines"];
    assert_eq!(lines[0]["net_amount"], "1.01"); // 3 × 0.34 = 1.02 − 0.01
    assert_eq!(lines[0]["discount_amount"], "0.01");
    assert_eq!(lines[1]["net_amount"], "3.33");
    assert_eq!(lines[1]["tax_amount"], "0.67");
    assert_eq!(r.body["net_amount"], "4.34");
    assert_eq!(r.body["tax_amount"], "0.87");
    assert_eq!(r.body["total_amount"], "5.21");
    assert_eq!(r.body["total_discount_amount"], "0.01");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn shipping_vat_is_recomputed_and_totals_are_sums() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let c = api.customer("A", json!({})).await;
    let r = api
        .post(
            "/sales_invoices",
            json!({"sales_invoice": {
                "contact_id": c, "date": "2024-05-01",
                "shipping_net_amount": "4.99", "shipping_tax_rate_id": "GB_STANDARD", "shipping_tax_amount": "0.00", "shipping_total_amount": "4.99",
                "net_amount": "1.00", "tax_amount": "1.00", "total_amount": "1.00",
                "invoice_lines": [api.line("A", "2", "10.00", "4.00"), api.line("B", "1", "5.00", "1.00")]
            }}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let b = &r.body;
    assert_eq!(b["shipping_tax_amount"], "1.00");
    assert_eq!(b["shipping_total_amount"], "5.99");
    assert_eq!(b["net_amount"], "29.99");
    assert_eq!(b["tax_amount"], "6.00");
    assert_eq!(b["total_amount"], "35.99");
    assert_eq!(b["outstanding_amount"], "35.99");
    let analysis = b["tax_analysis"].as_array().unwrap();
    assert_eq!(analysis.len(), 1);
    assert_eq!(analysis[0]["net_amount"], "29.99");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn exchange_rate_gives_base_amounts_and_sent_base_totals_are_ignored() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let c = api
        .customer("Euro Kunde", json!({"currency_id": "EUR"}))
        .await;
    let r = api
        .post(
            "/sales_invoices",
            json!({"sales_invoice": {"contact_id": c, "date": "2024-05-01", "exchange_rate": "0.8547008547",
                "base_currency_total_amount": "999.99", "base_currency_net_amount": "1.00",
                "invoice_lines": [api.line("Ware", "1", "100.00", "20.00")]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let b = &r.body;
    assert_eq!(b["total_amount"], "120.00");
    assert_eq!(b["base_currency_total_amount"], "102.56"); // 120 × 0.8547008547
    assert_eq!(b["base_currency_net_amount"], "85.47");
    assert_eq!(b["base_currency_tax_amount"], "17.09");
    assert_eq!(b["invoice_lines"][0]["base_currency_net_amount"], "85.47");
    assert_eq!(b["inverse_exchange_rate"], "1.17");

    // Base-currency documents use 1 whatever is sent.
    let g = api.customer("Pound", json!({})).await;
    let r = api
        .post("/sales_invoices", json!({"sales_invoice": {"contact_id": g, "date": "2024-05-01", "exchange_rate": "2", "invoice_lines": [api.line("W", "1", "10", "2")]}}))
        .await;
    assert_eq!(r.body["exchange_rate"], "1.0");
    assert_eq!(r.body["base_currency_total_amount"], "12.00");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn cross_border_lines_zero_rated_with_one_goods_services_type() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let c = api
        .customer(
            "Client FR",
            json!({"main_address": {"country_id": "FR"}, "currency_id": "EUR"}),
        )
        .await;
    let zero = |desc: &str, ty: &str| json!({"description": desc, "ledger_account_id": api.ledger("4000"), "unit_price": "10", "tax_rate_id": "GB_ZERO", "eu_goods_services_type_id": ty});
    // Standard rate abroad.
    let r = api
        .invoice(&c, json!([api.line("W", "1", "10", "2")]))
        .await;
    r.assert_422("sales_invoice.invoice_lines[0].tax_rate_id");
    // Mixed goods and services.
    let r = api
        .invoice(&c, json!([zero("A", "GOODS"), zero("B", "SERVICES")]))
        .await;
    r.assert_422("sales_invoice.invoice_lines[1].eu_goods_services_type_id");
    assert!(r.message().contains("must be the same"), "{}", r.body);
    // All goods, zero-rated: fine.
    let r = api
        .invoice(&c, json!([zero("A", "GOODS"), zero("B", "GOODS")]))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // The document's own address counts too: a UK contact shipping to Germany.
    let uk_contact = api
        .customer("UK", json!({"main_address": {"country_id": "GB"}}))
        .await;
    let r = api
        .post("/sales_invoices", json!({"sales_invoice": {"contact_id": uk_contact, "date": "2024-05-01", "main_address": {"country_id": "DE"}, "invoice_lines": [api.line("W", "1", "10", "2")]}}))
        .await;
    r.assert_422("sales_invoice.invoice_lines[0].tax_rate_id");
    sandbox.shutdown().await;
}

async fn invoice_total(api: &Api, contact: &str, price: &str, tax: &str) -> String {
    let r = api
        .invoice(contact, json!([api.line("W", "1", price, tax)]))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.id()
}

fn receipt(api: &Api, contact: &str, total: &str, allocations: Value) -> Value {
    json!({"contact_payment": {"transaction_type_id": "CUSTOMER_RECEIPT", "contact_id": contact, "bank_account_id": api.bank("GBP"),
        "payment_method_id": "CREDIT_DEBIT", "date": "2024-05-03", "total_amount": total, "allocated_artefacts": allocations}})
}

#[tokio::test]
async fn receipts_reduce_outstanding_and_move_status() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let c = api.customer("A", json!({})).await;
    let inv = invoice_total(&api, &c, "100", "20").await;
    let r = api
        .post(
            "/contact_payments",
            receipt(
                &api,
                &c,
                "50.00",
                json!([{"artefact_id": inv, "amount": "50.00"}]),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let i = api.get(&format!("/sales_invoices/{inv}")).await.body;
    assert_eq!(
        (
            i["outstanding_amount"].as_str(),
            i["status"]["id"].as_str(),
            i["total_paid"].as_str()
        ),
        (Some("70.00"), Some("PART_PAID"), Some("50.00"))
    );

    // Over-allocation beyond what is outstanding.
    let r = api
        .post(
            "/contact_payments",
            receipt(
                &api,
                &c,
                "80.00",
                json!([{"artefact_id": inv, "amount": "70.01"}]),
            ),
        )
        .await;
    r.assert_422("contact_payment.allocated_artefacts[0].amount");
    // Allocated more than the payment total.
    let r = api
        .post(
            "/contact_payments",
            receipt(
                &api,
                &c,
                "10.00",
                json!([{"artefact_id": inv, "amount": "20.00"}]),
            ),
        )
        .await;
    r.assert_422("contact_payment.total_amount");

    let r = api
        .post(
            "/contact_payments",
            receipt(
                &api,
                &c,
                "70.00",
                json!([{"artefact_id": inv, "amount": "70.00"}]),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let i = api.get(&format!("/sales_invoices/{inv}")).await.body;
    assert_eq!(
        (i["outstanding_amount"].as_str(), i["status"]["id"].as_str()),
        (Some("0.00"), Some("PAID"))
    );
    assert_eq!(i["payments_allocations"].as_array().unwrap().len(), 2);

    // A paid invoice takes no more money.
    let r = api
        .post(
            "/contact_payments",
            receipt(
                &api,
                &c,
                "1.00",
                json!([{"artefact_id": inv, "amount": "1.00"}]),
            ),
        )
        .await;
    r.assert_422("contact_payment.allocated_artefacts[0].amount");
    assert!(r.message().contains("unpaid or part-paid"));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn payment_artefacts_must_belong_to_the_contact() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let a = api.customer("A", json!({})).await;
    let b = api.customer("B", json!({})).await;
    let inv_b = invoice_total(&api, &b, "10", "2").await;
    let r = api
        .post(
            "/contact_payments",
            receipt(
                &api,
                &a,
                "12.00",
                json!([{"artefact_id": inv_b, "amount": "12.00"}]),
            ),
        )
        .await;
    r.assert_422("contact_payment.allocated_artefacts[0].artefact_id");
    // Receipts only settle invoices.
    let cn = api
        .credit_note(&a, json!([api.line("R", "1", "5", "1")]))
        .await
        .id();
    let r = api
        .post(
            "/contact_payments",
            receipt(
                &api,
                &a,
                "6.00",
                json!([{"artefact_id": cn, "amount": "6.00"}]),
            ),
        )
        .await;
    r.assert_422("contact_payment.allocated_artefacts[0].artefact_id");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn excess_receipt_becomes_payment_on_account() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let c = api.customer("A", json!({})).await;
    let inv = invoice_total(&api, &c, "10", "2").await;
    let r = api
        .post(
            "/contact_payments",
            receipt(
                &api,
                &c,
                "20.00",
                json!([{"artefact_id": inv, "amount": "12.00"}]),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["payment_on_account"]["outstanding_amount"], "8.00");
    assert_eq!(
        sandbox
            .inspect()
            .documents(&api.business.id, "payments_on_account")
            .len(),
        1
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn refund_settles_a_credit_note() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let c = api.customer("A", json!({})).await;
    let cn = api
        .credit_note(&c, json!([api.line("Return", "1", "10", "2")]))
        .await;
    assert_eq!(cn.status, StatusCode::CREATED, "{}", cn.body);
    assert_eq!(cn.body["credit_note_number"], "SCN-1");
    let cn = cn.id();
    let refund = |total: &str, amount: &str| {
        json!({"contact_payment": {"transaction_type_id": "CUSTOMER_REFUND", "contact_id": c, "bank_account_id": api.bank("GBP"),
            "date": "2024-05-04", "total_amount": total, "allocated_artefacts": [{"artefact_id": cn, "amount": amount}]}})
    };
    // A refund cannot exceed what it is allocated to.
    api.post("/contact_payments", refund("12.00", "5.00"))
        .await
        .assert_422("contact_payment.total_amount");
    let r = api
        .post("/contact_payments", refund("12.00", "12.00"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let n = api.get(&format!("/sales_credit_notes/{cn}")).await.body;
    assert_eq!(
        (n["outstanding_amount"].as_str(), n["status"]["id"].as_str()),
        (Some("0.00"), Some("PAID"))
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn allocations_sum_to_zero_and_share_the_contact() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let c = api.customer("A", json!({})).await;
    let other = api.customer("B", json!({})).await;
    let inv = invoice_total(&api, &c, "100", "20").await;
    let cn = api
        .credit_note(&c, json!([api.line("Return", "1", "25", "5")]))
        .await
        .id();
    let cn_other = api
        .credit_note(&other, json!([api.line("Return", "1", "25", "5")]))
        .await
        .id();
    let alloc = |contact: &str, arts: Value| json!({"contact_allocation": {"transaction_type_id": "CUSTOMER_ALLOCATION", "contact_id": contact, "date": "2024-05-05", "allocated_artefacts": arts}});

    let r = api.post("/contact_allocations", alloc(&c, json!([{"artefact_id": inv, "amount": "30.00"}, {"artefact_id": cn, "amount": "-29.99"}]))).await;
    r.assert_422("contact_allocation.allocated_artefacts");
    let r = api.post("/contact_allocations", alloc(&c, json!([{"artefact_id": inv, "amount": "30.00"}, {"artefact_id": cn_other, "amount": "-30.00"}]))).await;
    r.assert_422("contact_allocation.allocated_artefacts[1].artefact_id");
    let r = api.post("/contact_allocations", alloc(&c, json!([{"artefact_id": inv, "amount": "-30.00"}, {"artefact_id": cn, "amount": "30.00"}]))).await;
    r.assert_422("contact_allocation.allocated_artefacts[0].amount");
    let r = api.post("/contact_allocations", alloc(&c, json!([{"artefact_id": inv, "amount": "31.00"}, {"artefact_id": cn, "amount": "-31.00"}]))).await;
    r.assert_422("contact_allocation.allocated_artefacts[1].amount");

    let r = api.post("/contact_allocations", alloc(&c, json!([{"artefact_id": inv, "amount": "30.00"}, {"artefact_id": cn, "amount": "-30.00"}]))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let i = api.get(&format!("/sales_invoices/{inv}")).await.body;
    assert_eq!(
        (i["outstanding_amount"].as_str(), i["status"]["id"].as_str()),
        (Some("90.00"), Some("PART_PAID"))
    );
    let n = api.get(&format!("/sales_credit_notes/{cn}")).await.body;
    assert_eq!(
        (n["outstanding_amount"].as_str(), n["status"]["id"].as_str()),
        (Some("0.00"), Some("PAID"))
    );
    let listed = api
        .get(&format!("/contact_allocations?contact_id={c}"))
        .await;
    assert_eq!(listed.body["$total"], 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn products_and_services_round_trip() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let r = api
        .post(
            "/products",
            json!({"product": {"description": "Blue mug", "item_code": "MUG-1", "sales_ledger_account_id": api.ledger("4000"),
                "purchase_ledger_account_id": api.ledger("5000"), "sales_tax_rate_id": "GB_STANDARD",
                "sales_prices": [{"price_name": "Selling Price", "price": "7.5", "price_includes_tax": false}]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["sales_prices"][0]["price"], "7.50");
    let pid = r.id();
    let r = api
        .put(
            &format!("/products/{pid}"),
            json!({"product": {"description": "Big blue mug"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["description"], "Big blue mug");
    assert_eq!(r.body["item_code"], "MUG-1");

    let r = api.post("/services", json!({"service": {"description": "Gift wrap", "sales_ledger_account_id": api.ledger("4900"), "sales_rates": [{"rate_name": "Std", "rate": 2}]}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let sid = r.id();
    assert_eq!(r.body["sales_rates"][0]["rate"], "2.00");

    // Used on invoice lines.
    let c = api.customer("A", json!({})).await;
    let mut l = api.line("Mug", "1", "7.50", "1.50");
    l["product_id"] = json!(pid);
    let mut l2 = api.line("Wrap", "1", "2", "0.40");
    l2["service_id"] = json!(sid);
    let r = api.invoice(&c, json!([l, l2])).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["invoice_lines"][0]["product"]["id"], pid.as_str());
    sandbox.shutdown().await;
}

#[tokio::test]
async fn documents_and_payments_refused_outside_the_open_period() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let c = api.customer("A", json!({})).await;
    // Open while the year is open: invoice 2024-05-01, credit note 2024-05-02.
    let inv = invoice_total(&api, &c, "100", "20").await;
    let cn = api
        .credit_note(&c, json!([api.line("Return", "1", "25", "5")]))
        .await
        .id();
    // The bookkeeper closes the year up to 2024-05-31 through the admin API.
    let http = client();
    let r = http
        .put(format!(
            "{}/businesses/{}/financial_settings",
            sandbox.admin_url(),
            api.business.id
        ))
        .json(&json!({"accounts_start_date": "2024-01-01", "year_end_lockdown_date": "2024-05-31"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let fs = api.get("/financial_settings").await.body;
    assert_eq!(fs["accounts_start_date"], "2024-01-01");
    assert_eq!(fs["year_end_lockdown_date"], "2024-05-31");

    // Every kind of write dated on or before the lockdown date is refused on `date`.
    api.invoice(&c, json!([api.line("W", "1", "10", "2")]))
        .await
        .assert_422("sales_invoice.date");
    api.credit_note(&c, json!([api.line("R", "1", "10", "2")]))
        .await
        .assert_422("sales_credit_note.date");
    api.post(
        "/contact_payments",
        receipt(
            &api,
            &c,
            "12.00",
            json!([{"artefact_id": inv, "amount": "12.00"}]),
        ),
    )
    .await
    .assert_422("contact_payment.date");
    let alloc = |date: &str| json!({"contact_allocation": {"transaction_type_id": "CUSTOMER_ALLOCATION", "contact_id": c, "date": date, "allocated_artefacts": [{"artefact_id": inv, "amount": "30.00"}, {"artefact_id": cn, "amount": "-30.00"}]}});
    api.post("/contact_allocations", alloc("2024-05-31"))
        .await
        .assert_422("contact_allocation.date");
    // The first open day is accepted.
    let r = api.post("/contact_allocations", alloc("2024-06-01")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    // Before the accounts start date is refused too, with no lockdown at all.
    sandbox.set_financial_dates(
        &api.business.id,
        chrono::NaiveDate::from_ymd_opt(2024, 6, 1).unwrap(),
        None,
    );
    let r = api
        .post("/sales_invoices", json!({"sales_invoice": {"contact_id": c, "date": "2024-05-31", "invoice_lines": [api.line("W", "1", "10", "2")]}}))
        .await;
    r.assert_422("sales_invoice.date");
    assert!(r.message().contains("2024-06-01"), "{}", r.body);
    let r = api
        .post("/sales_invoices", json!({"sales_invoice": {"contact_id": c, "date": "2024-06-01", "invoice_lines": [api.line("W", "1", "10", "2")]}}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_paid_invoice_is_voided_only_after_its_receipt_is_deleted() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let c = api.customer("A", json!({})).await;
    // 100.00 net + 20.00 VAT = 120.00, paid in full.
    let inv = invoice_total(&api, &c, "100", "20").await;
    let r = api
        .post(
            "/contact_payments",
            receipt(
                &api,
                &c,
                "120.00",
                json!([{"artefact_id": inv, "amount": "120.00"}]),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let payment = r.id();

    // Sage refuses to void a paid invoice: the payment has to go first.
    let r = api
        .delete(&format!("/sales_invoices/{inv}?void_reason=Canceled"))
        .await;
    r.assert_422("sales_invoice.void_reason");
    assert!(r
        .message()
        .contains("delete the payments and allocations first"));

    let r = api.delete(&format!("/contact_payments/{payment}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get(&format!("/contact_payments/{payment}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get(&format!("/contact_payments?contact_id={c}"))
            .await
            .body["$total"],
        0
    );
    let i = api.get(&format!("/sales_invoices/{inv}")).await.body;
    assert_eq!(
        (i["outstanding_amount"].as_str(), i["status"]["id"].as_str()),
        (Some("120.00"), Some("UNPAID"))
    );
    assert_eq!(i["payments_allocations"].as_array().unwrap().len(), 0);

    // Without a reason the void is refused (the invoice is not a draft).
    api.delete(&format!("/sales_invoices/{inv}"))
        .await
        .assert_422("sales_invoice.void_reason");
    // Quirk 21: the guide's body form is read as well as the swagger's query parameter.
    let r = api
        .call(
            reqwest::Method::DELETE,
            &format!("/sales_invoices/{inv}"),
            Some(json!({"void_reason": "Voided in Magento"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let i = api.get(&format!("/sales_invoices/{inv}")).await.body;
    assert_eq!(
        (
            i["status"]["id"].as_str(),
            i["void_reason"].as_str(),
            i["outstanding_amount"].as_str()
        ),
        (Some("VOID"), Some("Voided in Magento"), Some("0.00"))
    );
    // A void invoice takes no payment and is not voided twice.
    api.post(
        "/contact_payments",
        receipt(
            &api,
            &c,
            "1.00",
            json!([{"artefact_id": inv, "amount": "1.00"}]),
        ),
    )
    .await
    .assert_422("contact_payment.allocated_artefacts[0].amount");
    api.delete(&format!("/sales_invoices/{inv}?void_reason=again"))
        .await
        .assert_422("sales_invoice.void_reason");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn an_allocated_credit_note_is_voided_after_its_allocation_is_deleted() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let c = api.customer("A", json!({})).await;
    let inv = invoice_total(&api, &c, "100", "20").await;
    // 25.00 + 5.00 VAT = 30.00 credit, allocated to the 120.00 invoice: 90.00 left.
    let cn = api
        .credit_note(&c, json!([api.line("Return", "1", "25", "5")]))
        .await
        .id();
    let r = api.post("/contact_allocations", json!({"contact_allocation": {"transaction_type_id": "CUSTOMER_ALLOCATION", "contact_id": c, "date": "2024-05-05",
        "allocated_artefacts": [{"artefact_id": inv, "amount": "30.00"}, {"artefact_id": cn, "amount": "-30.00"}]}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let allocation = r.id();
    api.delete(&format!("/sales_credit_notes/{cn}?void_reason=Canceled"))
        .await
        .assert_422("sales_credit_note.void_reason");
    let r = api
        .delete(&format!("/contact_allocations/{allocation}"))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let i = api.get(&format!("/sales_invoices/{inv}")).await.body;
    assert_eq!(i["outstanding_amount"].as_str(), Some("120.00"));
    let r = api
        .delete(&format!("/sales_credit_notes/{cn}?void_reason=Canceled"))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let n = api.get(&format!("/sales_credit_notes/{cn}")).await.body;
    assert_eq!(n["status"]["id"], "VOID");
    sandbox.shutdown().await;
}
