//! Contacts (from orders and customer accounts) and products / services.

mod common;

use common::{definition_for, examples, sage_structure_problems, settings, Doc, Line};
use ledger_events::{Payload, ProductSnapshot};
use ledger_mapping::{
    contact_reference, map_contact, map_product, MappingError, Party, TaxRateEntry,
};
use rust_decimal_macros::dec;
use serde_json::json;

fn product(
    type_id: &str,
    name: &str,
    price: Option<&str>,
    tax_class: Option<u64>,
) -> ProductSnapshot {
    let mut p = json!({"product": {"id": 7, "sku": "SKU-7", "name": name, "type_id": type_id, "status": 1}});
    if let Some(price) = price {
        p["product"]["price"] = json!(price);
    }
    if let Some(class) = tax_class {
        p["product"]["tax_class_id"] = json!(class);
    }
    serde_json::from_value(p).unwrap()
}

#[test]
fn party_from_order_and_contact_body() {
    let d = Doc::new(vec![Line::new("Item", dec!(1), dec!(10), dec!(20))]);
    let snap = d.invoice();
    let party = Party::from_order(&snap.order);
    assert_eq!(party.customer_key, "customer:42");
    assert_eq!(party.person_name, "Ada Lovelace");
    assert_eq!(party.email.as_deref(), Some("ada@example.com"));
    assert!(
        party.delivery_address.is_some(),
        "shipping address differs from billing"
    );
    let reference = contact_reference(&party.customer_key, "GBP", 0);
    assert_eq!(reference, "C42GBP");
    let body = map_contact(&party, "GBP", &reference);
    assert_eq!(body["name"], json!("Ada Lovelace"));
    assert_eq!(body["contact_type_ids"], json!(["CUSTOMER"]));
    assert_eq!(
        body["delivery_address"]["address_line_1"],
        json!("2 Difference Lane")
    );
    let problems = sage_structure_problems("postContacts", &json!({ "contact": body }));
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn guest_party_is_keyed_by_email() {
    let d = Doc::new(vec![Line::new("Item", dec!(1), dec!(10), dec!(20))]);
    let mut snap = d.invoice();
    snap.order.customer_id = None;
    snap.order.customer_is_guest = true;
    let party = Party::from_order(&snap.order);
    assert_eq!(party.customer_key, "guest:ada@example.com");
    let r = contact_reference(&party.customer_key, "GBP", 0);
    assert!(r.starts_with("GBP") && r.len() == 10, "{r}");
}

#[test]
fn b2b_customer_example_maps_company_vat_and_addresses() {
    let env = examples()
        .into_iter()
        .find(|(_, e)| matches!(e.payload, Payload::CustomerSaved(_)))
        .expect("a customer.saved example");
    let Payload::CustomerSaved(snap) = &env.1.payload else {
        unreachable!()
    };
    let party = Party::from_customer_snapshot(snap);
    let body = map_contact(
        &party,
        "EUR",
        &contact_reference(&party.customer_key, "EUR", 0),
    );
    if let Some(company) = &party.company {
        assert_eq!(body["name"], json!(company));
        assert_eq!(
            body["main_contact_person"]["name"],
            json!(party.person_name)
        );
    }
    if party.tax_number.is_some() {
        assert!(body["tax_number"].is_string());
    }
    assert_eq!(body["currency_id"], json!("EUR"));
    let problems = sage_structure_problems("postContacts", &json!({ "contact": body }));
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn product_table() {
    let mut s = settings();
    s.product_sync = true;
    s.product_sales_price_type_id = Some("PRICE-TYPE".into());
    s.service_rate_type_id = Some("RATE-TYPE".into());
    s.tax_rates.push(TaxRateEntry {
        tax_class: Some("2".into()),
        ..TaxRateEntry::percent(dec!(20), "GB_STANDARD")
    });
    type Expected = Result<(&'static str, &'static str), &'static str>;
    let cases: Vec<(&str, ProductSnapshot, Expected)> = vec![
        (
            "simple",
            product("simple", "Tote&trade;", Some("25.00"), Some(2)),
            Ok(("products", "product")),
        ),
        (
            "virtual",
            product("virtual", "Warranty", Some("19.99"), Some(2)),
            Ok(("services", "service")),
        ),
        (
            "downloadable",
            product("downloadable", "E-book", None, None),
            Ok(("services", "service")),
        ),
        (
            "configurable",
            product("configurable", "Shirt", None, Some(2)),
            Err("composite_product"),
        ),
        (
            "bundle",
            product("bundle", "Kit", None, Some(2)),
            Err("composite_product"),
        ),
        (
            "grouped",
            product("grouped", "Set", None, None),
            Err("composite_product"),
        ),
    ];
    for (name, snap, want) in cases {
        match (map_product(&snap, &s), want) {
            (Ok(plan), Ok((resource, root))) => {
                assert_eq!((plan.resource, plan.root), (resource, root), "{name}");
                assert_eq!(plan.item_code, "SKU-7");
                let problems =
                    sage_structure_problems(definition_for(plan.resource), &plan.request_body());
                assert!(problems.is_empty(), "{name}: {problems:?}");
            }
            (Err(e), Err(reason)) => assert_eq!(e.reason(), reason, "{name}"),
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
    let simple = map_product(&product("simple", "Tote&trade;", Some("25"), Some(2)), &s).unwrap();
    assert_eq!(
        simple.body,
        json!({
            "description": "Tote™", "item_code": "SKU-7", "sales_ledger_account_id": "LEDGER-SALES",
            "purchase_ledger_account_id": "LEDGER-PURCHASES", "sales_tax_rate_id": "GB_STANDARD",
            "active": true,
            "sales_prices": [{"product_sales_price_type_id": "PRICE-TYPE", "price": "25.00", "price_includes_tax": false}]
        })
    );
    let service = map_product(&product("virtual", "Warranty", Some("19.99"), None), &s).unwrap();
    assert_eq!(service.body["sales_rates"][0]["rate"], json!("19.99"));
    assert!(
        service.body.get("sales_tax_rate_id").is_none(),
        "no class, no guessed rate"
    );
}

#[test]
fn product_sync_off_and_missing_purchase_ledger() {
    let s = settings();
    assert_eq!(
        map_product(&product("simple", "Tote", None, None), &s)
            .unwrap_err()
            .reason(),
        "product_sync_disabled"
    );
    let mut s = settings();
    s.product_sync = true;
    s.purchase_ledger_account_id = None;
    assert_eq!(
        map_product(&product("simple", "Tote", None, None), &s),
        Err(MappingError::Invalid {
            field: "purchase_ledger_account_id".into(),
            reason: "missing".into()
        })
    );
    // Services do not need one (Sage only requires it on products).
    assert!(map_product(&product("virtual", "Warranty", None, None), &s).is_ok());
}
