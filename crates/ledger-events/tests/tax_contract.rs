//! Contract tests for the tax facts the module adds to the order context: each order line's
//! product `tax_class`, Magento's applied taxes in `extension_attributes` (`applied_taxes`,
//! `item_applied_taxes`) and the store's `tax_config`. All are optional; these tests check that
//! the schema accepts what Magento and the module send, refuses wrong shapes at the field, and
//! still lets Magento's free-form extension attributes through.

use std::fs;
use std::path::Path;

use ledger_events::{parse, validate};
use serde_json::{json, Value};

const EXAMPLE: &str = "invoice-created-uk-zero-rated-and-exempt.json";

fn example_value(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../schemas/examples")
        .join(name);
    serde_json::from_slice(&fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
}

fn set(v: &mut Value, pointer: &str, value: Value) {
    *v.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer} not in the example")) = value;
}

fn remove(v: &mut Value, parent: &str, key: &str) {
    v.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("{parent} is not an object"))
        .remove(key)
        .unwrap_or_else(|| panic!("{parent}/{key} not in the example"));
}

#[test]
fn the_example_carries_every_tax_fact_and_parses() {
    let v = example_value(EXAMPLE);
    validate(&v).expect("example is valid");
    parse(&serde_json::to_vec(&v).unwrap()).expect("example parses");

    let order = &v["payload"]["order"];
    let classes: Vec<&str> = order["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["tax_class"].as_str().unwrap())
        .collect();
    assert_eq!(classes, ["Taxable Goods", "Zero Rated", "Exempt"]);

    // Magento saves no tax row for a 0 % rate: only the standard-rated line and shipping have one.
    let lines = order["extension_attributes"]["item_applied_taxes"]
        .as_array()
        .unwrap();
    let keys: Vec<(&str, Value)> = lines
        .iter()
        .map(|l| (l["type"].as_str().unwrap(), l["item_id"].clone()))
        .collect();
    assert_eq!(
        keys,
        [("product", json!(7101)), ("shipping", Value::Null)],
        "{lines:?}"
    );
    // Order total of the rate = line + shipping: 5.00 + 0.99 = 5.99 = invoice tax_amount.
    assert_eq!(
        order["extension_attributes"]["applied_taxes"][0]["amount"],
        "5.99"
    );
    assert_eq!(v["payload"]["invoice"]["tax_amount"], "5.99");
    assert_eq!(order["tax_config"]["based_on"], "shipping");
    assert_eq!(order["tax_config"]["price_includes_tax"], true);
}

#[test]
fn every_tax_fact_is_optional() {
    let base = example_value(EXAMPLE);
    let cases: &[(&str, &str)] = &[
        ("/payload/order/items/0", "tax_class"),
        ("/payload/order/extension_attributes", "applied_taxes"),
        ("/payload/order/extension_attributes", "item_applied_taxes"),
        ("/payload/order", "extension_attributes"),
        ("/payload/order", "tax_config"),
        ("/payload/order/tax_config", "based_on"),
        ("/payload/order/tax_config", "discount_tax"),
        (
            "/payload/order/extension_attributes/applied_taxes/0",
            "title",
        ),
        (
            "/payload/order/extension_attributes/applied_taxes/0",
            "amount",
        ),
        (
            "/payload/order/extension_attributes/item_applied_taxes/1",
            "item_id",
        ),
        (
            "/payload/order/extension_attributes/item_applied_taxes/1",
            "associated_item_id",
        ),
    ];
    for (parent, key) in cases {
        let mut v = base.clone();
        remove(&mut v, parent, key);
        validate(&v).unwrap_or_else(|e| panic!("without {parent}/{key}: {e}"));
    }
    // Nulls where Magento REST may print them.
    for pointer in [
        "/payload/order/items/0/tax_class",
        "/payload/order/extension_attributes/applied_taxes/0/title",
        "/payload/order/extension_attributes/applied_taxes/0/amount",
        "/payload/order/extension_attributes/item_applied_taxes/0/associated_item_id",
    ] {
        let mut v = base.clone();
        set(&mut v, pointer, Value::Null);
        validate(&v).unwrap_or_else(|e| panic!("{pointer} = null: {e}"));
    }
}

#[test]
fn magento_extension_attributes_stay_free_form() {
    let mut v = example_value(EXAMPLE);
    let ext = v
        .pointer_mut("/payload/order/extension_attributes")
        .unwrap()
        .as_object_mut()
        .unwrap();
    // Other extensions' keys, Magento's own rate breakdown inside an applied tax, a type Ledger
    // does not use (fixed product tax) and numbers instead of strings, as Magento REST prints.
    ext.insert(
        "gift_message".into(),
        json!({"sender": "A", "recipient": "B"}),
    );
    ext.insert("converting_from_quote".into(), json!(true));
    ext["applied_taxes"][0]["extension_attributes"] = json!({"rates": [
        {"code": "UK-VAT-20", "title": "VAT 20%", "percent": 20}
    ]});
    ext["item_applied_taxes"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "type": "weee", "item_id": null, "associated_item_id": 7101,
            "applied_taxes": [{"code": "UK-VAT-20", "title": "VAT 20%", "percent": 20,
                               "amount": 0.1, "base_amount": 0.1}]
        }));
    ext["item_applied_taxes"][0]["applied_taxes"][0]["percent"] = json!(20);
    ext["item_applied_taxes"][0]["applied_taxes"][0]["amount"] = json!(5);
    validate(&v).expect("free-form extension attributes are accepted");
}

#[test]
fn wrong_tax_shapes_are_rejected_at_their_field() {
    let base = example_value(EXAMPLE);
    let applied = "/payload/order/extension_attributes/applied_taxes";
    let lines = "/payload/order/extension_attributes/item_applied_taxes";
    let cases: Vec<(String, Value)> = vec![
        ("/payload/order/items/0/tax_class".into(), json!(2)),
        ("/payload/order/items/0/tax_class".into(), json!("")),
        (
            "/payload/order/tax_config/based_on".into(),
            json!("destination"),
        ),
        (
            "/payload/order/tax_config/price_includes_tax".into(),
            json!(1),
        ),
        (
            "/payload/order/tax_config/shipping_includes_tax".into(),
            json!("1"),
        ),
        (
            "/payload/order/tax_config/apply_after_discount".into(),
            json!(null),
        ),
        ("/payload/order/tax_config".into(), json!("shipping")),
        (applied.into(), json!({"code": "UK-VAT-20"})),
        (format!("{applied}/0/percent"), json!("20%")),
        (format!("{applied}/0/percent"), json!(120)),
        (format!("{applied}/0/percent"), json!(null)),
        (format!("{applied}/0/code"), json!("")),
        (format!("{applied}/0/amount"), json!("5,99")),
        (format!("{lines}/0/type"), json!("")),
        (format!("{lines}/0/item_id"), json!(0)),
        (format!("{lines}/0/item_id"), json!("7101")),
        (format!("{lines}/0/applied_taxes"), json!({})),
        (format!("{lines}/0/applied_taxes/0/percent"), json!(-20)),
    ];
    for (pointer, bad) in cases {
        let mut v = base.clone();
        set(&mut v, &pointer, bad.clone());
        let err = validate(&v).expect_err(&pointer);
        assert!(
            err.issues().iter().any(|i| i.path == pointer),
            "{pointer} = {bad}: {:?}",
            err.issues()
        );
    }
    // Required keys of Magento's applied-tax shapes.
    for (parent, key) in [
        (format!("{applied}/0"), "code"),
        (format!("{applied}/0"), "percent"),
        (format!("{lines}/0"), "type"),
        (format!("{lines}/0"), "applied_taxes"),
    ] {
        let mut v = base.clone();
        remove(&mut v, &parent, key);
        let err = validate(&v).expect_err(key);
        let want = format!("{parent}/{key}");
        assert!(
            err.issues().iter().any(|i| i.path == want),
            "removing {want}: {:?}",
            err.issues()
        );
    }
}

#[test]
fn tax_config_is_a_closed_ledger_object() {
    let mut v = example_value(EXAMPLE);
    v["payload"]["order"]["tax_config"]["prices_include_tax"] = json!(true);
    let err = validate(&v).expect_err("a misspelt setting must not pass silently");
    assert!(
        err.issues()
            .iter()
            .any(|i| i.path == "/payload/order/tax_config/prices_include_tax"),
        "{:?}",
        err.issues()
    );
}

#[test]
fn the_tax_facts_ride_on_every_event_with_an_order() {
    // invoice.paid and creditmemo.created share the order context: the same facts validate there.
    let tax = example_value(EXAMPLE)["payload"]["order"].clone();
    for name in [
        "invoice-paid-card-capture.json",
        "creditmemo-created-adjustment-and-shipping.json",
    ] {
        let mut v = example_value(name);
        let order = v.pointer_mut("/payload/order").unwrap();
        order["tax_config"] = tax["tax_config"].clone();
        order["extension_attributes"] = tax["extension_attributes"].clone();
        order["items"][0]["tax_class"] = json!("Taxable Goods");
        validate(&v).unwrap_or_else(|e| panic!("{name}: {e}"));
        order_check(&mut v, name);
    }
}

fn order_check(v: &mut Value, name: &str) {
    v["payload"]["order"]["tax_config"]["based_on"] = json!("store");
    let err = validate(v).expect_err(name);
    assert!(
        err.issues()
            .iter()
            .any(|i| i.path == "/payload/order/tax_config/based_on"),
        "{name}: {:?}",
        err.issues()
    );
}
