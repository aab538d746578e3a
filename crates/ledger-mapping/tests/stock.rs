//! Stock items: managed-stock simple products with the `stock_items` policy, and their
//! opening stock movement with `opening_stock`.

mod common;

use chrono::NaiveDate;
use common::{definition_for, sage_structure_problems, settings};
use ledger_events::ProductSnapshot;
use ledger_mapping::{
    is_stock_item, map_opening_stock, map_product, MappingError, MerchantSettings,
};
use serde_json::{json, Value};

/// A product snapshot; `stock` becomes `extension_attributes.stock_item`, `cost` the
/// `cost` custom attribute.
fn product(type_id: &str, sku: &str, stock: Option<Value>, cost: Option<Value>) -> ProductSnapshot {
    let mut p = json!({"product": {"id": 9, "sku": sku, "name": "Tea caddy", "type_id": type_id,
        "status": 1, "price": "12.00"}});
    if let Some(stock) = stock {
        p["product"]["extension_attributes"] = json!({ "website_ids": [1], "stock_item": stock });
    }
    if let Some(cost) = cost {
        p["product"]["custom_attributes"] = json!([{ "attribute_code": "cost", "value": cost }]);
    }
    serde_json::from_value(p).unwrap()
}

fn managed(qty: Value) -> Option<Value> {
    Some(json!({ "manage_stock": true, "qty": qty, "is_in_stock": true }))
}

fn policy(stock_items: bool, opening_stock: bool) -> MerchantSettings {
    MerchantSettings {
        product_sync: true,
        stock_items,
        opening_stock,
        ..settings()
    }
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 4, 1).unwrap()
}

#[test]
fn stock_item_table() {
    let long_sku = "S".repeat(31);
    let cases: Vec<(&str, ProductSnapshot, MerchantSettings, &str)> = vec![
        (
            "policy off: a managed simple product stays a product",
            product("simple", "TEA-1", managed(json!("5.0000")), None),
            policy(false, false),
            "products",
        ),
        (
            "policy on, managed simple product",
            product(
                "simple",
                "TEA-1",
                managed(json!("5.0000")),
                Some(json!("3.2000")),
            ),
            policy(true, false),
            "stock_items",
        ),
        (
            "manage_stock printed as \"1\"",
            product(
                "simple",
                "TEA-1",
                Some(json!({"manage_stock": "1", "qty": 2})),
                None,
            ),
            policy(true, false),
            "stock_items",
        ),
        (
            "stock not managed",
            product(
                "simple",
                "TEA-1",
                Some(json!({"manage_stock": false, "qty": 5})),
                None,
            ),
            policy(true, false),
            "products",
        ),
        (
            "no stock data in the payload",
            product("simple", "TEA-1", None, None),
            policy(true, false),
            "products",
        ),
        (
            "stock_item not an object",
            product("simple", "TEA-1", Some(json!("yes")), None),
            policy(true, false),
            "products",
        ),
        (
            "virtual products stay services",
            product("virtual", "TEA-1", managed(json!(5)), None),
            policy(true, false),
            "services",
        ),
        (
            "a SKU longer than a stock item code stays a product",
            product("simple", &long_sku, managed(json!(5)), None),
            policy(true, false),
            "products",
        ),
    ];
    for (name, snap, s, resource) in cases {
        let plan = map_product(&snap, &s).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(plan.resource, resource, "{name}");
        assert_eq!(
            is_stock_item(&snap.product, &s),
            resource == "stock_items",
            "{name}"
        );
        let problems = sage_structure_problems(definition_for(plan.resource), &plan.request_body());
        assert!(problems.is_empty(), "{name}: {problems:?}");
    }
}

#[test]
fn stock_item_body_carries_cost_but_not_quantity() {
    let snap = product(
        "simple",
        "TEA-1",
        managed(json!("5.0000")),
        Some(json!("3.2")),
    );
    let plan = map_product(&snap, &policy(true, false)).unwrap();
    assert_eq!(plan.root, "stock_item");
    assert_eq!(
        plan.body,
        json!({
            "description": "Tea caddy", "item_code": "TEA-1", "sales_ledger_account_id": "LEDGER-SALES",
            "purchase_ledger_account_id": "LEDGER-PURCHASES", "active": true, "cost_price": "3.20"
        })
    );
    let negative = product("simple", "TEA-1", managed(json!(5)), Some(json!("-1")));
    assert_eq!(
        map_product(&negative, &policy(true, false)),
        Err(MappingError::invalid("product.cost", "negative"))
    );
}

#[test]
fn opening_stock_table() {
    type Expected = Result<(&'static str, &'static str), &'static str>;
    let cases: Vec<(&str, ProductSnapshot, MerchantSettings, Expected)> = vec![
        (
            "quantity and cost",
            product(
                "simple",
                "TEA-1",
                managed(json!("5.0000")),
                Some(json!("3.2000")),
            ),
            policy(true, true),
            Ok(("5.0", "3.20")),
        ),
        (
            "fractional quantity as a number",
            product("simple", "TEA-1", managed(json!(2.5)), Some(json!(4))),
            policy(true, true),
            Ok(("2.5", "4.00")),
        ),
        (
            "opening_stock off",
            product("simple", "TEA-1", managed(json!(5)), Some(json!(3))),
            policy(true, false),
            Err("opening_stock_off"),
        ),
        (
            "not a stock item",
            product("simple", "TEA-1", managed(json!(5)), Some(json!(3))),
            policy(false, true),
            Err("opening_stock_off"),
        ),
        (
            "no cost attribute",
            product("simple", "TEA-1", managed(json!(5)), None),
            policy(true, true),
            Err("no_cost_price"),
        ),
        (
            "empty cost attribute",
            product("simple", "TEA-1", managed(json!(5)), Some(json!(""))),
            policy(true, true),
            Err("no_cost_price"),
        ),
        (
            "zero quantity",
            product("simple", "TEA-1", managed(json!("0.0000")), Some(json!(3))),
            policy(true, true),
            Err("nothing_to_post"),
        ),
        (
            "negative quantity (backorders)",
            product("simple", "TEA-1", managed(json!(-2)), Some(json!(3))),
            policy(true, true),
            Err("nothing_to_post"),
        ),
        (
            "no quantity",
            product(
                "simple",
                "TEA-1",
                Some(json!({"manage_stock": true})),
                Some(json!(3)),
            ),
            policy(true, true),
            Err("nothing_to_post"),
        ),
    ];
    for (name, snap, s, want) in cases {
        match (map_opening_stock(&snap, &s, "STOCK-ITEM-1", day()), want) {
            (Ok(plan), Ok((quantity, cost))) => {
                assert_eq!(plan.body["quantity"], json!(quantity), "{name}");
                assert_eq!(plan.body["cost_price"], json!(cost), "{name}");
                assert_eq!(plan.body["stock_item_id"], json!("STOCK-ITEM-1"), "{name}");
                assert_eq!(plan.body["date"], json!("2026-04-01"), "{name}");
                let problems = sage_structure_problems(
                    definition_for("stock_movements"),
                    &plan.request_body(),
                );
                assert!(problems.is_empty(), "{name}: {problems:?}");
            }
            (Err(e), Err(reason)) => {
                assert_eq!(e.reason(), reason, "{name}");
                assert!(matches!(e, MappingError::Skipped { .. }), "{name}: {e:?}");
            }
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn opening_stock_details_fit_sage() {
    let sku = "LONG-SKU-123456789012345678901";
    let snap = product("simple", sku, managed(json!(1)), Some(json!(1)));
    let plan = map_opening_stock(&snap, &policy(true, true), "STOCK-ITEM-1", day()).unwrap();
    let details = plan.body["details"].as_str().unwrap();
    assert!(details.chars().count() <= 50, "{details}");
    assert!(
        details.starts_with("Opening stock of LONG-SKU"),
        "{details}"
    );
    assert_eq!(
        map_opening_stock(&snap, &policy(true, true), " ", day()),
        Err(MappingError::invalid("stock_item_id", "missing"))
    );
}

#[test]
fn contract_example_with_stock_becomes_a_stock_item_with_opening_stock() {
    let path = common::workspace_root().join("schemas/examples/product-saved-stocked.json");
    let env = ledger_events::parse(&std::fs::read(&path).unwrap()).expect("valid example");
    let ledger_events::Payload::ProductSaved(snap) = &env.payload else {
        panic!("not a product.saved example");
    };
    assert_eq!(
        map_product(snap, &policy(false, false)).unwrap().resource,
        "products"
    );
    assert_eq!(
        map_product(snap, &policy(true, true)).unwrap().resource,
        "stock_items"
    );
    let movement = map_opening_stock(snap, &policy(true, true), "STOCK-ITEM-1", day()).unwrap();
    assert_eq!(
        (&movement.body["quantity"], &movement.body["cost_price"]),
        (&json!("40.0"), &json!("3.25"))
    );
}
