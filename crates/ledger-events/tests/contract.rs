//! Contract tests over the committed schemas and examples: every valid example parses, every
//! invalid example is rejected at the field its file name announces, amounts stay exact, and the
//! helpers consumers rely on read the examples correctly.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ledger_events::{
    parse, parse_subject, validate, ContractError, Envelope, EventType, Payload, ProductType,
    SalesDocument, SCHEMA_FILES,
};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::Value;

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

fn example(name: &str) -> Envelope {
    let path = schemas_dir().join("examples").join(name);
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn example_value(name: &str) -> Value {
    let path = schemas_dir().join("examples").join(name);
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

#[test]
fn every_valid_example_validates_parses_and_round_trips() {
    let files = json_files(&schemas_dir().join("examples"));
    assert!(
        files.len() >= 9,
        "expected at least 9 examples, found {}",
        files.len()
    );
    let mut seen = BTreeSet::new();
    for path in files {
        let name = file_name(&path);
        let bytes = fs::read(&path).unwrap();
        let env = parse(&bytes).unwrap_or_else(|e| panic!("{name} must be valid: {e}"));
        // The file name starts with the event type (dots as dashes), so a misfiled example shows.
        let prefix = env.event_type.as_str().replace('.', "-");
        assert!(
            name.starts_with(&prefix),
            "{name} holds a {} event",
            env.event_type
        );
        assert_eq!(env.payload.event_type(), env.event_type, "{name}");
        assert_eq!(env.schema_version, ledger_events::SCHEMA_VERSION);
        seen.insert(env.event_type);

        // Re-serialised form must still satisfy the contract and decode to the same values.
        let again = env.to_json_vec();
        let reparsed = parse(&again).unwrap_or_else(|e| panic!("{name} round trip: {e}"));
        assert_eq!(reparsed, env, "{name}: round trip changed the event");

        // The subject built from the envelope is one the subject parser accepts back.
        assert_eq!(
            parse_subject(&env.subject()),
            Some((env.merchant_id.as_str(), env.event_type))
        );
    }
    assert_eq!(
        seen.len(),
        EventType::ALL.len(),
        "every event type needs an example: {seen:?}"
    );
}

/// Expected JSON pointer of the first-class violation for each invalid example.
const INVALID: &[(&str, &str)] = &[
    (
        "creditmemo-created-creditmemo-adjustment_negative-negative.json",
        "/payload/creditmemo/adjustment_negative",
    ),
    (
        "creditmemo-created-order-invoices-0-increment_id-missing.json",
        "/payload/order/invoices/0/increment_id",
    ),
    (
        "customer-saved-customer-email-missing.json",
        "/payload/customer/email",
    ),
    ("envelope-event_id-not-a-uuid.json", "/event_id"),
    (
        "envelope-merchant_id-not-a-subject-token.json",
        "/merchant_id",
    ),
    ("envelope-occurred_at-without-zone.json", "/occurred_at"),
    ("envelope-schema_version-2.json", "/schema_version"),
    ("envelope-tenant-unexpected-property.json", "/tenant"),
    (
        "invoice-created-invoice-discount_amount-positive.json",
        "/payload/invoice/discount_amount",
    ),
    (
        "invoice-created-invoice-items-0-qty-zero.json",
        "/payload/invoice/items/0/qty",
    ),
    (
        "invoice-created-invoice-items-1-price-comma-decimal.json",
        "/payload/invoice/items/1/price",
    ),
    (
        "invoice-created-invoice-order_currency_code-lowercase.json",
        "/payload/invoice/order_currency_code",
    ),
    (
        "invoice-created-order-base_to_order_rate-zero.json",
        "/payload/order/base_to_order_rate",
    ),
    (
        "invoice-created-order-customer_id-missing-for-registered.json",
        "/payload/order/customer_id",
    ),
    (
        "invoice-paid-invoice-state-open.json",
        "/payload/invoice/state",
    ),
    (
        "invoice-paid-payment-paid_at-missing.json",
        "/payload/payment/paid_at",
    ),
    (
        "product-saved-product-tax_class_id-missing.json",
        "/payload/product/tax_class_id",
    ),
    (
        "product-saved-product-type_id-unknown.json",
        "/payload/product/type_id",
    ),
];

#[test]
fn every_invalid_example_is_rejected_at_the_named_field() {
    let files = json_files(&schemas_dir().join("examples/invalid"));
    let on_disk: BTreeSet<String> = files.iter().map(|p| file_name(p)).collect();
    let listed: BTreeSet<String> = INVALID.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(
        on_disk, listed,
        "examples/invalid and the INVALID table must list the same files"
    );

    for (name, pointer) in INVALID {
        let bytes = fs::read(schemas_dir().join("examples/invalid").join(name)).unwrap();
        let err = parse(&bytes).expect_err(name);
        let ContractError::Violations(issues) = &err else {
            panic!("{name}: expected schema violations, got {err}");
        };
        assert!(
            issues.iter().any(|i| i.path == *pointer),
            "{name}: no issue at {pointer}; got {issues:?}"
        );
        // Every issue of a single-fault example sits on the broken field, not elsewhere.
        assert!(
            issues.iter().all(|i| i.path == *pointer),
            "{name}: unrelated issues {issues:?}"
        );
        // The last pointer token is the field named in the file name.
        let field = pointer.rsplit('/').next().unwrap();
        assert!(name.contains(field), "{name} should name {field}");
        // Display names the field and says why.
        let shown = err.to_string();
        assert!(shown.contains(pointer), "{name}: {shown}");
        assert!(issues.iter().all(|i| !i.reason.is_empty()));
    }
}

#[test]
fn decimals_are_exact_from_numbers_and_strings() {
    // 396.87 has no exact binary representation; it must arrive as exactly 396.87.
    let d: Decimal = serde_json::from_str("396.87").unwrap();
    assert_eq!(d, Decimal::from_str("396.87").unwrap());
    assert_eq!(d.to_string(), "396.87");
    assert_eq!(d.scale(), 2);

    // The same through serde_json::Value, which is how parse() decodes.
    let v: Value =
        serde_json::from_str(r#"{"a": 396.87, "b": 12345678901234.5678, "c": "58.50", "d": 0.1}"#)
            .unwrap();
    let get = |k: &str| -> Decimal { serde_json::from_value(v[k].clone()).unwrap() };
    assert_eq!(get("a").to_string(), "396.87");
    // More significant digits than an f64 holds: only arbitrary precision keeps them.
    assert_eq!(get("b").to_string(), "12345678901234.5678");
    assert_eq!(get("c").to_string(), "58.50");
    assert_eq!(get("d"), dec!(0.1));
}

#[test]
fn envelope_amounts_are_exact_and_survive_round_trip() {
    // Put 396.87 (OCA order 9's grand total) into an example and read it back.
    let mut v = example_value("invoice-created-guest.json");
    let text = serde_json::to_string(&v)
        .unwrap()
        .replace("\"grand_total\":48,", "\"grand_total\":396.87,");
    v = serde_json::from_str(&text).unwrap();
    assert_eq!(v["payload"]["invoice"]["grand_total"].to_string(), "396.87");
    let env = parse(text.as_bytes()).unwrap();
    let Payload::InvoiceCreated(p) = &env.payload else {
        panic!()
    };
    assert_eq!(p.invoice.grand_total, dec!(396.87));
    assert_eq!(p.invoice.grand_total.to_string(), "396.87");

    // Written back as decimal strings, never floats; trailing zeros of string input are kept.
    let out: Value = serde_json::from_slice(&env.to_json_vec()).unwrap();
    assert_eq!(
        out["payload"]["invoice"]["grand_total"],
        Value::String("396.87".into())
    );
    let eur = example("invoice-created-eur-base-gbp.json");
    let out: Value = serde_json::from_slice(&eur.to_json_vec()).unwrap();
    assert_eq!(
        out["payload"]["invoice"]["subtotal"],
        Value::String("58.50".into())
    );
    assert_eq!(
        out["payload"]["invoice"]["base_to_order_rate"],
        Value::String("1.17".into())
    );
    assert_eq!(
        out["payload"]["invoice"]["items"][0]["qty"],
        Value::String("1.0000".into())
    );
}

#[test]
fn uk_invoice_helpers() {
    let env = example("invoice-created-uk-b2c-vat20.json");
    assert_eq!(env.subject(), "magento.hartley-goods.invoice.created");
    assert_eq!(env.document_key(), "invoice:1:000001042");
    assert_eq!(env.customer_key().as_deref(), Some("customer:318"));
    let Payload::InvoiceCreated(p) = &env.payload else {
        panic!("wrong payload")
    };
    let inv = &p.invoice;
    assert_eq!(p.document_currency(), "GBP");
    assert_eq!(p.base_currency(), "GBP");
    assert_eq!(p.base_to_order_rate(), Decimal::ONE);
    assert!(!inv.is_foreign_currency());
    assert_eq!(inv.discount_amount, dec!(-6.25));
    assert_eq!(inv.discount_description.as_deref(), Some("SPRING10"));

    // Totals reconcile the way consumers will post them.
    let lines: Vec<_> = inv.accounting_items().collect();
    assert_eq!(lines.len(), 2);
    let net: Decimal = lines.iter().map(|i| i.net_row_total()).sum();
    assert_eq!(net, dec!(56.25));
    let line_tax: Decimal = lines.iter().map(|i| i.tax_amount.unwrap_or_default()).sum();
    assert_eq!(line_tax + inv.shipping_tax_amount.unwrap(), inv.tax_amount);
    assert_eq!(
        inv.subtotal + inv.discount_amount + inv.shipping_amount + inv.tax_amount,
        inv.grand_total
    );
    for item in &inv.items {
        assert_eq!(p.order.tax_percent_for(item), Some(dec!(20)));
        assert_eq!(p.order.product_type_for(item), Some("simple"));
    }
    assert_eq!(
        p.order
            .effective_shipping_address()
            .unwrap()
            .postcode
            .as_deref(),
        Some("BS1 4AA")
    );

    // Idempotency keys derive deterministically from event_id and differ per purpose.
    assert_eq!(
        env.derived_id("sage.sales_invoice"),
        env.derived_id("sage.sales_invoice")
    );
    assert_ne!(
        env.derived_id("sage.sales_invoice"),
        env.derived_id("sage.contact")
    );
}

#[test]
fn foreign_currency_invoice_helpers() {
    let env = example("invoice-created-eur-base-gbp.json");
    let Payload::InvoiceCreated(p) = &env.payload else {
        panic!("wrong payload")
    };
    let inv = &p.invoice;
    assert_eq!(p.document_currency(), "EUR");
    assert_eq!(p.base_currency(), "GBP");
    assert_eq!(p.base_to_order_rate(), dec!(1.17));
    assert!(inv.is_foreign_currency());
    assert_eq!(
        inv.base_grand_total * inv.base_to_order_rate,
        inv.grand_total
    );
    assert_eq!(
        inv.order_to_base_rate().unwrap().round_dp(6),
        dec!(0.854701)
    );
    assert_eq!(env.document_key(), "invoice:3:300000031");
    // B2B identity: company, VAT number, purchase order.
    assert_eq!(
        p.order.billing_address.company.as_deref(),
        Some("Atelier Lune SARL")
    );
    assert_eq!(
        p.order.billing_address.vat_id.as_deref(),
        Some("FR12345678901")
    );
    assert_eq!(p.order.payment.method, "purchaseorder");
    assert_eq!(p.order.payment.po_number.as_deref(), Some("PO-4471"));
    // No top-level shipping_address: taken from Magento's shipping assignments.
    assert!(p.order.shipping_address.is_none());
    let ship = p
        .order
        .effective_shipping_address()
        .expect("shipping address from extension attributes");
    assert_eq!(ship.entity_id, Some(4404));
    assert_eq!(ship.country_id, "FR");
}

#[test]
fn guest_invoice_skips_the_dummy_line() {
    let env = example("invoice-created-guest.json");
    assert_eq!(
        env.customer_key().as_deref(),
        Some("guest:sam.guest@example.co.uk")
    );
    let Payload::InvoiceCreated(p) = &env.payload else {
        panic!("wrong payload")
    };
    assert!(p.order.is_guest());
    assert_eq!(p.order.customer_id, None);
    let lines: Vec<_> = p.invoice.accounting_items().collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].product_type.as_deref(), Some("configurable"));
    assert_eq!(
        lines.iter().filter_map(|i| i.row_total).sum::<Decimal>(),
        p.invoice.subtotal
    );
    let child = &p.invoice.items[1];
    assert!(child.is_dummy_line());
    assert_eq!(p.order.parent_item_id_for(child), Some(5504));
}

#[test]
fn invoice_paid_carries_payment_facts() {
    let env = example("invoice-paid-card-capture.json");
    assert_eq!(env.subject(), "magento.hartley-goods.invoice.paid");
    let Payload::InvoicePaid(p) = &env.payload else {
        panic!("wrong payload")
    };
    assert_eq!(p.invoice.state, ledger_events::InvoiceState::Paid);
    assert_eq!(p.payment.amount_paid, p.invoice.grand_total);
    assert_eq!(p.payment.transaction_id.as_deref(), Some("bt_7kq2m9xz"));
    assert_eq!(p.payment.paid_at.to_rfc3339(), "2025-03-15T09:02:11+00:00");
    // Same document key as the invoice.created event of that invoice would have.
    assert_eq!(env.document_key(), "invoice:1:000001045");
}

#[test]
fn credit_memos_with_adjustments_and_without_invoice() {
    let env = example("creditmemo-created-adjustment-and-shipping.json");
    assert_eq!(env.subject(), "magento.hartley-goods.creditmemo.created");
    let Payload::CreditMemoCreated(p) = &env.payload else {
        panic!("wrong payload")
    };
    let cm = &p.creditmemo;
    assert_eq!(env.document_key(), "creditmemo:1:000000301");
    assert_eq!(cm.invoice_id, Some(1042));
    assert_eq!(cm.adjustment_refund(), dec!(5));
    assert_eq!(cm.adjustment_fee(), Decimal::ZERO);
    assert_eq!(cm.shipping_amount, dec!(4.95));
    assert_eq!(
        cm.subtotal
            + cm.discount_amount
            + cm.shipping_amount
            + cm.tax_amount
            + cm.adjustment_refund()
            - cm.adjustment_fee(),
        cm.grand_total
    );
    assert_eq!(cm.items[0].qty, Decimal::ZERO);

    let env = example("creditmemo-created-offline-no-invoice.json");
    let Payload::CreditMemoCreated(p) = &env.payload else {
        panic!("wrong payload")
    };
    let cm = &p.creditmemo;
    assert!(cm.is_unlinked_refund());
    assert_eq!(cm.adjustment_fee(), dec!(5.85));
    assert_eq!(cm.adjustment, Some(dec!(-5.85)));
    assert_eq!(cm.base_adjustment_negative, Some(dec!(5.00)));
    assert_eq!(
        cm.subtotal + cm.discount_amount + cm.shipping_amount + cm.tax_amount - cm.adjustment_fee(),
        cm.grand_total
    );
    assert_eq!(cm.base_grand_total, dec!(45.00));
    assert_eq!(p.customer_key(), "customer:412");
}

#[test]
fn customer_and_products() {
    let env = example("customer-saved-b2b.json");
    assert_eq!(env.document_key(), "customer:412");
    let Payload::CustomerSaved(p) = &env.payload else {
        panic!("wrong payload")
    };
    let c = &p.customer;
    assert_eq!(c.default_billing, Some(87));
    let billing = c.default_billing_address().expect("default billing");
    assert_eq!(billing.id, Some(87));
    assert_eq!(billing.region.as_deref(), Some("Rhône"));
    assert_eq!(billing.vat_id.as_deref(), Some("FR12345678901"));
    assert_eq!(c.default_shipping_address().unwrap().id, Some(88));
    assert_eq!(c.taxvat.as_deref(), Some("FR12345678901"));

    let simple = example("product-saved-simple.json");
    let Payload::ProductSaved(p) = &simple.payload else {
        panic!("wrong payload")
    };
    assert_eq!(simple.document_key(), "product:101");
    assert_eq!(p.product.type_id, ProductType::Simple);
    assert_eq!(p.product.tax_class_id(), Some(2), "from custom_attributes");
    assert_eq!(p.product.price, Some(dec!(25)));
    assert!(p.product.is_enabled());

    let virt = example("product-saved-virtual.json");
    let Payload::ProductSaved(p) = &virt.payload else {
        panic!("wrong payload")
    };
    assert_eq!(p.product.type_id, ProductType::Virtual);
    assert!(p.product.type_id.is_service());
    assert_eq!(
        p.product.tax_class_id(),
        Some(2),
        "from the top-level field"
    );
    assert_eq!(p.product.price, Some(dec!(19.99)));
}

/// Removing any field the schema requires must be caught, at a pointer naming that field.
#[test]
fn every_required_field_is_enforced() {
    let base = example_value("invoice-created-uk-b2c-vat20.json");
    let cases: &[(&str, &[&str])] = &[
        (
            "",
            &[
                "event_id",
                "schema_version",
                "event_type",
                "merchant_id",
                "website_id",
                "store_id",
                "occurred_at",
                "source",
                "payload",
            ],
        ),
        ("/payload", &["invoice", "order"]),
        (
            "/payload/invoice",
            &[
                "entity_id",
                "increment_id",
                "order_id",
                "store_id",
                "state",
                "created_at",
                "base_currency_code",
                "order_currency_code",
                "base_to_order_rate",
                "grand_total",
                "base_grand_total",
                "subtotal",
                "base_subtotal",
                "tax_amount",
                "base_tax_amount",
                "shipping_amount",
                "base_shipping_amount",
                "discount_amount",
                "base_discount_amount",
                "items",
            ],
        ),
        (
            "/payload/invoice/items/0",
            &["order_item_id", "sku", "name", "qty", "price", "base_price"],
        ),
        (
            "/payload/order",
            &[
                "entity_id",
                "increment_id",
                "order_currency_code",
                "base_currency_code",
                "base_to_order_rate",
                "customer_is_guest",
                "customer_email",
                "billing_address",
                "payment",
            ],
        ),
        (
            "/payload/order/billing_address",
            &["firstname", "lastname", "street", "city", "country_id"],
        ),
        ("/payload/order/payment", &["method"]),
    ];
    for (parent, fields) in cases {
        for field in *fields {
            let mut v = base.clone();
            v.pointer_mut(parent)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .remove(*field)
                .unwrap();
            let err = validate(&v).expect_err(field);
            let want = format!("{parent}/{field}");
            assert!(
                err.issues().iter().any(|i| i.path == want),
                "removing {want} gave {:?}",
                err.issues()
            );
        }
    }
}

#[test]
fn wrong_shapes_are_rejected_at_their_field() {
    let base = example_value("invoice-created-uk-b2c-vat20.json");
    let cases: Vec<(&str, Value)> = vec![
        (
            "/payload/invoice/grand_total",
            Value::String("73.44 GBP".into()),
        ),
        ("/payload/invoice/grand_total", serde_json::json!(-1)),
        ("/payload/invoice/tax_amount", serde_json::json!(null)),
        ("/payload/invoice/items", serde_json::json!([])),
        (
            "/payload/invoice/items/0/discount_amount",
            serde_json::json!(-5),
        ),
        (
            "/payload/invoice/items/0/tax_percent",
            serde_json::json!(120),
        ),
        ("/payload/invoice/state", serde_json::json!(4)),
        (
            "/payload/invoice/created_at",
            serde_json::json!("14/03/2025"),
        ),
        ("/payload/order/customer_is_guest", serde_json::json!(2)),
        (
            "/payload/order/customer_email",
            serde_json::json!("not-an-email"),
        ),
        (
            "/payload/order/billing_address/country_id",
            serde_json::json!("GBR"),
        ),
        (
            "/payload/order/billing_address/street",
            serde_json::json!("14 Example Lane"),
        ),
        ("/payload/order/base_currency_code", serde_json::json!("£")),
        ("/website_id", serde_json::json!(-1)),
        ("/source/module_version", serde_json::json!("")),
        ("/payload/order/payment/method", serde_json::json!("")),
    ];
    for (pointer, bad) in cases {
        let mut v = base.clone();
        *v.pointer_mut(pointer).unwrap() = bad.clone();
        let err = validate(&v).expect_err(pointer);
        assert!(
            err.issues().iter().any(|i| i.path == pointer),
            "{pointer} = {bad}: {:?}",
            err.issues()
        );
    }
    // Extra properties: rejected in Ledger's own objects, tolerated in Magento documents.
    for (parent, ok) in [
        ("", false),
        ("/source", false),
        ("/payload", false),
        ("/payload/invoice", true),
        ("/payload/order", true),
        ("/payload/invoice/items/0", true),
    ] {
        let mut v = base.clone();
        v.pointer_mut(parent)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert("x_extra".into(), Value::Bool(true));
        assert_eq!(validate(&v).is_ok(), ok, "extra property under {parent:?}");
        if !ok {
            let err = validate(&v).unwrap_err();
            assert_eq!(err.issues()[0].path, format!("{parent}/x_extra"));
        }
    }
}

#[test]
fn payload_is_checked_against_its_own_event_type() {
    // A credit-memo payload labelled as an invoice must not pass.
    let mut v = example_value("creditmemo-created-offline-no-invoice.json");
    v["event_type"] = Value::String("invoice.created".into());
    let err = validate(&v).unwrap_err();
    let paths: Vec<_> = err.issues().iter().map(|i| i.path.as_str()).collect();
    assert!(paths.contains(&"/payload/invoice"), "{paths:?}");
    assert!(paths.contains(&"/payload/creditmemo"), "{paths:?}");
}

#[test]
fn malformed_and_undecodable_input_name_the_problem() {
    let err = parse(b"{\"event_id\": ").unwrap_err();
    assert!(matches!(err, ContractError::MalformedJson(_)), "{err}");
    assert!(err.to_string().contains("line 1"), "{err}");

    // Bypassing the schema, the decoder still names the field it cannot read.
    let mut v = example_value("invoice-created-uk-b2c-vat20.json");
    v["payload"]["invoice"]["items"][1]["qty"] = Value::String("two".into());
    let err = Envelope::from_value(&v).unwrap_err();
    assert!(matches!(err, ContractError::Decode(_)), "{err}");
    assert_eq!(err.issues()[0].path, "/payload/invoice/items/1/qty");
    assert!(
        err.to_string().contains("/payload/invoice/items/1/qty"),
        "{err}"
    );

    // serde's Deserialize for Envelope works without the schema step.
    let text = fs::read_to_string(schemas_dir().join("examples/customer-saved-b2b.json")).unwrap();
    let env: Envelope = serde_json::from_str(&text).unwrap();
    assert_eq!(env.event_type, EventType::CustomerSaved);
}

#[test]
fn schema_files_are_valid_2020_12_and_identified() {
    let dir = schemas_dir().join("events");
    let on_disk: BTreeSet<String> = json_files(&dir).iter().map(|p| file_name(p)).collect();
    let embedded: BTreeSet<String> = SCHEMA_FILES.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(on_disk, embedded, "every schema file must be embedded");
    for (file, text) in SCHEMA_FILES {
        assert_eq!(
            fs::read_to_string(dir.join(file)).unwrap(),
            text,
            "{file} embedded text is stale"
        );
        let schema: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{file}"
        );
        assert_eq!(
            schema["$id"],
            format!("{}{file}", ledger_events::SCHEMA_BASE_URI),
            "{file}"
        );
        jsonschema::meta::validate(&schema).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    // The envelope lists exactly the five event types.
    let env: Value = serde_json::from_str(SCHEMA_FILES[0].1).unwrap();
    let listed: Vec<&str> = env["properties"]["event_type"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    assert_eq!(listed, known);
}

#[test]
fn asyncapi_document_matches_the_crate() {
    let text = fs::read_to_string(schemas_dir().join("asyncapi.yaml")).expect("asyncapi.yaml");
    assert!(text.starts_with("asyncapi: 3.0.0"));
    for t in EventType::ALL {
        let address = format!(
            "address: magento.{{merchant_id}}.{}.{}",
            t.entity(),
            t.action()
        );
        assert!(text.contains(&address), "missing channel {address}");
        assert!(
            text.contains(&format!("const: {}", t.as_str())),
            "message for {t} not narrowed"
        );
    }
    assert!(text.contains("address: ledger.quarantine.{merchant_id}"));
    assert!(text.contains(&format!("name: {}", ledger_events::STREAM_NAME)));
    assert!(text.contains(&format!("- {}", ledger_events::STREAM_SUBJECTS)));
    for header in [
        ledger_events::HEADER_MSG_ID,
        ledger_events::HEADER_TRACEPARENT,
        ledger_events::HEADER_SCHEMA_VERSION,
        ledger_events::HEADER_ERROR,
    ] {
        assert!(
            text.contains(&format!("{header}:")),
            "header {header} not documented"
        );
    }
    // Every referenced schema file exists.
    let mut refs = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        let line = line.strip_prefix("- ").unwrap_or(line);
        if let Some(r) = line.strip_prefix("$ref: './") {
            let file = r.trim_end_matches('\'');
            *refs.entry(file.to_owned()).or_insert(0) += 1;
        }
    }
    assert!(refs.len() >= 6, "{refs:?}");
    for file in refs.keys() {
        assert!(
            schemas_dir().join(file).is_file(),
            "asyncapi refers to missing {file}"
        );
    }
}
