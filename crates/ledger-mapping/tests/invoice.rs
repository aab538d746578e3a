//! Table tests for `map_sales_invoice`.

mod common;

use common::{assert_invariant, assert_lines_match, settings, Doc, Line};
use ledger_mapping::{
    map_sales_invoice, CrossBorderVatCharged, GoodsServices, MappingError, TaxRateEntry,
};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{json, Value};

fn lines(plan: &ledger_mapping::DocumentPlan) -> &Vec<Value> {
    plan.body["invoice_lines"].as_array().unwrap()
}

#[test]
fn uk_b2c_invoice_header_and_lines() {
    let doc = Doc::new(vec![
        Line::new("Waxed Tote", dec!(2), dec!(25), dec!(20)).discounted(dec!(5)),
        Line::new("Key Fob", dec!(1), dec!(12.5), dec!(5)),
    ])
    .shipping(dec!(4.95), dec!(20));
    let s = settings();
    let plan = map_sales_invoice(&doc.invoice(), &s, "CONTACT-1").unwrap();
    assert_eq!(plan.resource, "sales_invoices");
    assert_eq!(plan.root, "sales_invoice");
    assert_eq!(plan.reference, "000000101");
    assert_eq!(plan.currency, "GBP");
    assert_eq!(plan.exchange_rate, dec!(1));
    let b = &plan.body;
    assert_eq!(b["contact_id"], json!("CONTACT-1"));
    // Magento's created_at is UTC; the date is its calendar day in the books' zone (GMT here).
    assert_eq!(b["date"], json!("2025-03-14"));
    assert_eq!(b["due_date"], json!("2025-04-13"));
    assert_eq!(b["reference"], json!("000000101"));
    assert_eq!(b["currency_id"], json!("GBP"));
    assert!(
        b.get("exchange_rate").is_none(),
        "no rate for a base-currency invoice"
    );
    assert_eq!(
        b["main_address"]["address_line_1"],
        json!("1 Analytical Row")
    );
    assert_eq!(
        b["delivery_address"]["address_line_1"],
        json!("2 Difference Lane")
    );
    // Quirk 3: header shipping would have its VAT recomputed by Sage, so shipping is a
    // line on the shipping ledger with Magento's tax: 4.95 × 20 % = 0.99.
    assert!(b.get("shipping_net_amount").is_none());
    assert!(b.get("shipping_tax_rate_id").is_none());
    let l = lines(&plan);
    assert_eq!(l.len(), 3);
    assert_eq!(
        l[2],
        json!({
            "description": "Shipping", "ledger_account_id": "LEDGER-CARRIAGE",
            "quantity": "1.0", "unit_price": "4.95",
            "tax_rate_id": "GB_STANDARD", "tax_amount": "0.99"
        })
    );
    assert_eq!(
        l[0],
        json!({
            "description": "Waxed Tote", "ledger_account_id": "LEDGER-SALES",
            "quantity": "2.0", "unit_price": "25.00", "discount_amount": "5.00",
            "tax_rate_id": "GB_STANDARD", "tax_amount": "9.00"
        })
    );
    assert_eq!(l[1]["tax_rate_id"], json!("GB_LOWER"));
    assert_eq!(l[1]["tax_amount"], json!("0.63"));
    assert!(l[1].get("discount_amount").is_none());
    assert!(plan.rounding_line.is_none());
    assert_invariant(&plan, &s, doc.computed_grand_total(), "uk b2c");
    assert_lines_match(&plan, &doc, &s, "uk b2c");
}

#[test]
fn table_of_invoices_keeps_the_totals_invariant() {
    struct Case {
        name: &'static str,
        doc: Doc,
        rounding: Option<Decimal>,
    }
    let cases = vec![
        Case {
            // Sage's own example: 41.625 becomes 41.63 per unit, 3 units drift by 1p
            // (124.89 against Magento's 124.88): the penny goes on the line's discount.
            name: "41.625 x 3 at 20%",
            doc: Doc::new(vec![Line::new("Odd", dec!(3), dec!(41.625), dec!(20))]),
            rounding: None,
        },
        Case {
            name: "exact prices need no rounding line",
            doc: Doc::new(vec![Line::new("Even", dec!(3), dec!(8), dec!(20))])
                .shipping(dec!(3.50), dec!(20)),
            rounding: None,
        },
        Case {
            // Tax-inclusive shipping of 5.01 gives Magento 4.17 net + 0.84 VAT; header
            // shipping would get round2(4.17 × 20 %) = 0.83 from Sage, the shipping line
            // carries Magento's 0.84.
            name: "shipping vat is Magento's",
            doc: {
                let mut d = Doc::new(vec![Line::new("Item", dec!(1), dec!(10), dec!(20))])
                    .shipping(dec!(4.17), dec!(20));
                d.shipping_tax = dec!(0.84); // Magento rounded differently (tax-inclusive shipping)
                d
            },
            rounding: None,
        },
        Case {
            // 5 × 1.333 is 6.67 in Magento but 5 × 1.33 = 6.65 in Sage: 1.34 × 5 = 6.70
            // with a 0.03 discount lands on 6.67.
            name: "zero rated and standard mixed",
            doc: Doc::new(vec![
                Line::new("Book", dec!(2), dec!(7.99), dec!(0)),
                Line::new("Pen", dec!(5), dec!(1.333), dec!(20)),
            ]),
            rounding: None,
        },
        Case {
            name: "shipping discount comes off the shipping net",
            doc: {
                let mut d = Doc::new(vec![
                    Line::new("Item", dec!(1), dec!(20), dec!(20)).discounted(dec!(2))
                ]);
                d.shipping_discount = dec!(1.00);
                d.shipping(dec!(5.00), dec!(20))
            },
            rounding: None,
        },
    ];
    let s = settings();
    for case in cases {
        let plan = map_sales_invoice(&case.doc.invoice(), &s, "C")
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(plan.rounding_line, case.rounding, "{}", case.name);
        assert_invariant(&plan, &s, case.doc.computed_grand_total(), case.name);
        assert_lines_match(&plan, &case.doc, &s, case.name);
    }
}

#[test]
fn shipping_discount_net_is_sent() {
    let mut d = Doc::new(vec![
        Line::new("Item", dec!(1), dec!(20), dec!(20)).discounted(dec!(2))
    ]);
    d.shipping_discount = dec!(1.00);
    let d = d.shipping(dec!(5.00), dec!(20));
    let plan = map_sales_invoice(&d.invoice(), &settings(), "C").unwrap();
    // Shipping 5.00 less its 1.00 discount: net 4.00, Magento's tax 0.80.
    let shipping = lines(&plan).last().unwrap();
    assert_eq!(shipping["description"], json!("Shipping"));
    assert_eq!(shipping["unit_price"], json!("5.00"));
    assert_eq!(shipping["discount_amount"], json!("1.00"));
    assert_eq!(shipping["tax_amount"], json!("0.80"));
    assert_lines_match(&plan, &d, &settings(), "shipping discount");
}

#[test]
fn rounding_line_is_explicit_and_on_the_rounding_ledger() {
    // Magento's grand total a penny under its rows (100 + 20 = 120.00, total 119.99):
    // one -0.01 line, on the rate of the line it corrects, without VAT.
    let mut doc = Doc::new(vec![Line::new("Item", dec!(1), dec!(100), dec!(20))]);
    doc.grand_total = Some(dec!(119.99));
    let s = settings();
    let plan = map_sales_invoice(&doc.invoice(), &s, "C").unwrap();
    let last = lines(&plan).last().unwrap().clone();
    assert_eq!(
        last,
        json!({
            "description": "Rounding adjustment", "ledger_account_id": "LEDGER-ROUNDING",
            "quantity": "1.0", "unit_price": "-0.01", "tax_rate_id": "GB_STANDARD", "tax_amount": "0.00"
        })
    );
    assert_invariant(&plan, &s, dec!(119.99), "rounding line");
    assert_lines_match(&plan, &doc, &s, "rounding line");
    // Without a rounding ledger the invoice cannot be balanced: say so, do not drop it.
    let mut no_ledger = settings();
    no_ledger.rounding_ledger_account_id = None;
    assert_eq!(
        map_sales_invoice(&doc.invoice(), &no_ledger, "C"),
        Err(MappingError::Invalid {
            field: "rounding_ledger_account_id".into(),
            reason: "missing".into()
        })
    );
}

#[test]
fn dummy_composite_lines_are_skipped() {
    let mut parent = Line::new("Linen Shirt", dec!(1), dec!(40), dec!(20)).typed("configurable");
    parent.sku = "SHIRT".into();
    let doc = Doc::new(vec![parent, Line::dummy("Linen Shirt-M-White")]);
    let s = settings();
    let plan = map_sales_invoice(&doc.invoice(), &s, "C").unwrap();
    assert_eq!(lines(&plan).len(), 1);
    assert_eq!(lines(&plan)[0]["description"], json!("Linen Shirt"));
    assert_invariant(&plan, &s, doc.computed_grand_total(), "dummy");

    // Without the explicit flag, a line without row_total is the dummy.
    let mut implicit = Line::dummy("child");
    implicit.is_dummy = None;
    let doc = Doc::new(vec![
        Line::new("Parent", dec!(1), dec!(10), dec!(20)),
        implicit,
    ]);
    let plan = map_sales_invoice(&doc.invoice(), &s, "C").unwrap();
    assert_eq!(lines(&plan).len(), 1);
}

#[test]
fn descriptions_are_decoded_and_trimmed() {
    let mut l = Line::new("x", dec!(1), dec!(10), dec!(20));
    l.name = format!("Yoga Mat&trade; &amp; Strap {}", "z".repeat(300));
    let plan = map_sales_invoice(&Doc::new(vec![l]).invoice(), &settings(), "C").unwrap();
    let d = lines(&plan)[0]["description"].as_str().unwrap();
    assert!(d.starts_with("Yoga Mat™ & Strap zzz"), "{d}");
    assert_eq!(d.chars().count(), 255);
}

#[test]
fn unmapped_tax_rate_is_held() {
    let doc = Doc::new(vec![Line::new("Old rate", dec!(1), dec!(10), dec!(17.5))]);
    match map_sales_invoice(&doc.invoice(), &settings(), "C") {
        Err(MappingError::Skipped { reason, detail }) => {
            assert_eq!(reason, "unmapped_tax_rate");
            assert!(detail.contains("17.5"), "{detail}");
            assert!(detail.contains("invoice.items[0]"), "{detail}");
        }
        other => panic!("expected a hold, got {other:?}"),
    }
    // A merchant-added row makes it map.
    let mut s = settings();
    s.tax_rates
        .push(TaxRateEntry::percent(dec!(17.5), "GB_OLD"));
    let plan = map_sales_invoice(&doc.invoice(), &s, "C").unwrap();
    assert_eq!(lines(&plan)[0]["tax_rate_id"], json!("GB_OLD"));
}

#[test]
fn unmapped_shipping_tax_is_held() {
    let mut d =
        Doc::new(vec![Line::new("Item", dec!(1), dec!(10), dec!(20))]).shipping(dec!(10), dec!(20));
    d.shipping_tax = dec!(1.30); // 13 %: no mapped rate reproduces it
    let err = map_sales_invoice(&d.invoice(), &settings(), "C").unwrap_err();
    assert_eq!(err.reason(), "unmapped_tax_rate");
}

#[test]
fn shipping_tax_at_lower_rate_is_recognised() {
    let d = Doc::new(vec![Line::new("Seat", dec!(1), dec!(100), dec!(5))])
        .shipping(dec!(9.99), dec!(5));
    let s = settings();
    let plan = map_sales_invoice(&d.invoice(), &s, "C").unwrap();
    // 9.99 × 5 % = 0.4995 → 0.50 in Magento, booked as such on GB_LOWER.
    let shipping = lines(&plan).last().unwrap();
    assert_eq!(shipping["tax_rate_id"], json!("GB_LOWER"));
    assert_eq!(shipping["tax_amount"], json!("0.50"));
    assert_invariant(&plan, &s, d.computed_grand_total(), "lower shipping");
    assert_lines_match(&plan, &d, &s, "lower shipping");
    // Untaxed shipping uses the mapped 0 % rate.
    let d =
        Doc::new(vec![Line::new("Book", dec!(1), dec!(10), dec!(0))]).shipping(dec!(2.50), dec!(0));
    let plan = map_sales_invoice(&d.invoice(), &s, "C").unwrap();
    assert_eq!(
        lines(&plan).last().unwrap()["tax_rate_id"],
        json!("GB_ZERO")
    );
}

#[test]
fn cross_border_zero_rates_every_line_with_one_type() {
    let doc = Doc::new(vec![
        Line::new("Scarf", dec!(1), dec!(58.50), dec!(0)),
        Line::new("Gift wrap", dec!(1), dec!(2.00), dec!(0)),
    ])
    .shipping(dec!(11.70), dec!(0))
    .country("FR");
    let s = settings();
    let plan = map_sales_invoice(&doc.invoice(), &s, "C").unwrap();
    for l in lines(&plan) {
        assert_eq!(l["tax_rate_id"], json!("GB_ZERO"));
        assert_eq!(l["eu_goods_services_type_id"], json!("GOODS"));
        assert_eq!(l["tax_amount"], json!("0.00"));
    }
    assert_eq!(lines(&plan).len(), 3, "two products and the shipping line");
    assert_invariant(&plan, &s, doc.computed_grand_total(), "cross-border");
}

#[test]
fn cross_border_goods_services_table() {
    let s = settings();
    let table = [
        (vec!["virtual", "downloadable"], "SERVICES"),
        (vec!["simple", "simple"], "GOODS"),
        (vec!["simple", "virtual"], "GOODS"), // mixed → configured default (GOODS)
    ];
    for (types, want) in table {
        let ls = types
            .iter()
            .enumerate()
            .map(|(i, t)| Line::new(&format!("L{i}"), dec!(1), dec!(10.005), dec!(0)).typed(t))
            .collect();
        let doc = Doc::new(ls).country("US");
        let plan = map_sales_invoice(&doc.invoice(), &s, "C").unwrap();
        for l in lines(&plan) {
            assert_eq!(l["eu_goods_services_type_id"], json!(want), "{types:?}");
        }
        assert_invariant(&plan, &s, doc.computed_grand_total(), "types");
    }
    let mut services_default = settings();
    services_default.cross_border_goods_services.default = GoodsServices::Services;
    let doc = Doc::new(vec![
        Line::new("A", dec!(1), dec!(1), dec!(0)),
        Line::new("B", dec!(1), dec!(1), dec!(0)).typed("virtual"),
    ])
    .country("US");
    let plan = map_sales_invoice(&doc.invoice(), &services_default, "C").unwrap();
    assert_eq!(
        lines(&plan)[0]["eu_goods_services_type_id"],
        json!("SERVICES")
    );
}

#[test]
fn cross_border_rounding_line_uses_the_zero_rate_and_type() {
    // Magento's rows add up to 124.88, its grand total says 124.89.
    let mut doc = Doc::new(vec![
        Line::new("Odd", dec!(3), dec!(41.625), dec!(0)).typed("virtual")
    ])
    .country("DE");
    doc.grand_total = Some(dec!(124.89));
    let s = settings();
    let plan = map_sales_invoice(&doc.invoice(), &s, "C").unwrap();
    let last = lines(&plan).last().unwrap();
    assert_eq!(last["description"], json!("Rounding adjustment"));
    assert_eq!(last["tax_rate_id"], json!("GB_ZERO"));
    assert_eq!(last["eu_goods_services_type_id"], json!("SERVICES"));
    assert_eq!(last["unit_price"], json!("0.01"));
    assert_invariant(&plan, &s, dec!(124.89), "cross-border rounding");
}

#[test]
fn cross_border_with_vat_charged_is_held_or_posted_domestic_by_policy() {
    let doc = Doc::new(vec![Line::new("Scarf", dec!(1), dec!(58.50), dec!(20))])
        .shipping(dec!(11.70), dec!(20))
        .country("FR");
    let err = map_sales_invoice(&doc.invoice(), &settings(), "C").unwrap_err();
    assert_eq!(err.reason(), "cross_border_tax_charged");

    let mut s = settings();
    s.cross_border_vat_charged = CrossBorderVatCharged::DomesticRates;
    let plan = map_sales_invoice(&doc.invoice(), &s, "C").unwrap();
    assert_eq!(lines(&plan)[0]["tax_rate_id"], json!("GB_STANDARD"));
    assert!(lines(&plan)[0].get("eu_goods_services_type_id").is_none());
    assert_invariant(&plan, &s, doc.computed_grand_total(), "domestic policy");
}

#[test]
fn domestic_countries_setting_widens_the_home_vat_area() {
    let doc = Doc::new(vec![Line::new("Item", dec!(1), dec!(10), dec!(20))]).country("IM");
    // By default the Isle of Man is abroad, so Magento's VAT makes it a hold.
    assert_eq!(
        map_sales_invoice(&doc.invoice(), &settings(), "C")
            .unwrap_err()
            .reason(),
        "cross_border_tax_charged"
    );
    let mut s = settings();
    s.domestic_countries.push("IM".into());
    let plan = map_sales_invoice(&doc.invoice(), &s, "C").unwrap();
    assert_eq!(lines(&plan)[0]["tax_rate_id"], json!("GB_STANDARD"));
}

#[test]
fn foreign_currency_invoice_carries_the_exchange_rate() {
    let doc = Doc::new(vec![Line::new("Scarf", dec!(1), dec!(58.50), dec!(20))])
        .shipping(dec!(11.70), dec!(20))
        .currency("EUR", "GBP", dec!(1.17));
    let s = settings();
    let plan = map_sales_invoice(&doc.invoice(), &s, "C").unwrap();
    assert_eq!(plan.currency, "EUR");
    assert_eq!(plan.exchange_rate, dec!(0.854701));
    assert_eq!(plan.body["currency_id"], json!("EUR"));
    assert_eq!(plan.body["exchange_rate"], json!("0.854701"));
    assert_invariant(&plan, &s, doc.computed_grand_total(), "fx");
}

#[test]
fn grand_total_that_is_not_the_sum_of_its_parts_is_held() {
    // e.g. an Adobe Commerce gift card reduced the grand total: the mapping cannot see it
    // and must not turn it into a 25.00 "rounding" line.
    let mut doc = Doc::new(vec![Line::new("Item", dec!(1), dec!(100), dec!(20))]);
    doc.grand_total = Some(dec!(95.00));
    let err = map_sales_invoice(&doc.invoice(), &settings(), "C").unwrap_err();
    assert_eq!(err.reason(), "totals_mismatch");
    // One cent of Magento rounding is absorbed by the rounding line.
    doc.grand_total = Some(dec!(120.01));
    let s = settings();
    let plan = map_sales_invoice(&doc.invoice(), &s, "C").unwrap();
    assert_eq!(plan.rounding_line, Some(dec!(0.01)));
    assert_invariant(&plan, &s, dec!(120.01), "1p");
    // Two pence on one line is more than a penny per line: held with the figures.
    doc.grand_total = Some(dec!(120.02));
    match map_sales_invoice(&doc.invoice(), &s, "C") {
        Err(MappingError::Skipped { reason, detail }) => {
            assert_eq!(reason, "rounding_too_large");
            assert!(
                detail.contains("120.02") && detail.contains("120.00"),
                "{detail}"
            );
        }
        other => panic!("expected rounding_too_large, got {other:?}"),
    }
    // Beyond rounding size (1p per line + 2p): an amount the mapping cannot see.
    doc.grand_total = Some(dec!(120.04));
    assert_eq!(
        map_sales_invoice(&doc.invoice(), &s, "C")
            .unwrap_err()
            .reason(),
        "totals_mismatch"
    );
}

#[test]
fn invalid_input_names_the_field() {
    let s = settings();
    let base = Doc::new(vec![Line::new("Item", dec!(1), dec!(10), dec!(20))]);

    let mut missing_pct = base.clone();
    missing_pct.lines[0].tax_percent = None;
    let mut zero_rate_with_tax = base.clone();
    zero_rate_with_tax.lines[0].tax_percent = Some(dec!(0));
    let mut no_ledger = settings();
    no_ledger.sales_ledger_account_id = None;
    let mut bad_rate = base.clone();
    bad_rate.rate = dec!(0);

    let cases: Vec<(
        &str,
        Result<ledger_mapping::DocumentPlan, MappingError>,
        &str,
        &str,
    )> = vec![
        (
            "tax percent",
            map_sales_invoice(&missing_pct.invoice(), &s, "C"),
            "invoice.items[0].tax_percent",
            "missing",
        ),
        (
            "zero rate taxed",
            map_sales_invoice(&zero_rate_with_tax.invoice(), &s, "C"),
            "invoice.items[0].tax_amount",
            "tax_on_zero_rate",
        ),
        (
            "ledger",
            map_sales_invoice(&base.invoice(), &no_ledger, "C"),
            "sales_ledger_account_id",
            "missing",
        ),
        (
            "contact",
            map_sales_invoice(&base.invoice(), &s, " "),
            "contact_id",
            "missing",
        ),
        (
            "rate",
            map_sales_invoice(&bad_rate.invoice(), &s, "C"),
            "invoice.base_to_order_rate",
            "not_positive",
        ),
    ];
    for (name, got, field, reason) in cases {
        assert_eq!(
            got,
            Err(MappingError::Invalid {
                field: field.into(),
                reason: reason.into()
            }),
            "{name}"
        );
    }
}

#[test]
fn long_increment_ids_and_addresses_fit_sage_limits() {
    let mut doc = Doc::new(vec![Line::new("Item", dec!(1), dec!(10), dec!(20))]);
    doc.increment_id = "WEBSITE-EUROPE-STORE-FR-000004567".into();
    let mut snapshot = doc.invoice();
    snapshot.order.billing_address.street =
        vec!["Unit 7, The Old Granary Business Park, Long Meadow Industrial Estate".into()];
    snapshot.order.billing_address.postcode = Some("XX-1234567890".into());
    let s = settings();
    let plan = map_sales_invoice(&snapshot, &s, "C").unwrap();
    assert_eq!(plan.reference.chars().count(), 25);
    assert!(plan.reference.ends_with("000004567"));
    let notes = plan.body["notes"].as_str().unwrap();
    assert!(notes.contains("Long Meadow Industrial Estate"), "{notes}");
    assert!(notes.contains("XX-1234567890"), "{notes}");
    assert!(
        notes.contains("WEBSITE-EUROPE-STORE-FR-000004567"),
        "{notes}"
    );
    assert_invariant(&plan, &s, doc.computed_grand_total(), "limits");
}

#[test]
fn virtual_order_sends_billing_as_delivery_address() {
    let doc = Doc::new(vec![
        Line::new("E-book", dec!(1), dec!(5), dec!(0)).typed("downloadable")
    ]);
    let mut snapshot = doc.invoice();
    snapshot.order.shipping_address = None;
    let plan = map_sales_invoice(&snapshot, &settings(), "C").unwrap();
    assert_eq!(plan.body["delivery_address"], plan.body["main_address"]);
}

#[test]
fn tax_inclusive_catalog_discount_compensation() {
    // Price incl. VAT 49.95 → 41.625 net; a 10 % discount of 4.995 incl. VAT hides
    // 0.8325 VAT ("compensation"): the Sage discount is the net part.
    let mut l = Line::new("Incl", dec!(1), dec!(41.625), dec!(20));
    l.row_total = Some(dec!(41.63));
    l.discount = dec!(5.00);
    l.compensation = dec!(0.83);
    l.tax = dec!(7.49); // (49.95 - 5.00) / 1.2 * 0.2 = 7.4916
    let doc = Doc::new(vec![l]);
    let s = settings();
    let plan = map_sales_invoice(&doc.invoice(), &s, "C").unwrap();
    assert_eq!(lines(&plan)[0]["discount_amount"], json!("4.17"));
    assert_invariant(&plan, &s, doc.computed_grand_total(), "incl tax");
    assert_eq!(doc.computed_grand_total(), dec!(44.95));
}

fn utc(at: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M:%S")
        .unwrap()
        .and_utc()
}

/// Rule "document dates are the books' calendar day": Magento stores UTC, accountants close
/// periods in local time.
#[test]
fn document_date_is_the_calendar_day_in_the_books_time_zone() {
    let cases = [
        // (created_at UTC, settings.timezone, date, due date at 30 days)
        (
            "2025-03-14 23:59:59",
            "Europe/London",
            "2025-03-14",
            "2025-04-13",
        ), // GMT
        (
            "2025-06-30 23:30:00",
            "Europe/London",
            "2025-07-01",
            "2025-07-31",
        ), // BST: next quarter
        ("2025-06-30 23:30:00", "UTC", "2025-06-30", "2025-07-30"),
        (
            "2025-07-01 03:00:00",
            "America/New_York",
            "2025-06-30",
            "2025-07-30",
        ),
        (
            "2025-12-31 13:30:00",
            "Pacific/Auckland",
            "2026-01-01",
            "2026-01-31",
        ), // next year
    ];
    let doc = Doc::new(vec![Line::new("Waxed Tote", dec!(1), dec!(25), dec!(20))]);
    for (created_at, zone, date, due) in cases {
        let mut invoice = doc.invoice();
        invoice.invoice.created_at = utc(created_at);
        let mut s = settings();
        s.timezone = zone.into();
        let plan = map_sales_invoice(&invoice, &s, "CONTACT-1").unwrap();
        assert_eq!(plan.body["date"], json!(date), "{created_at} in {zone}");
        assert_eq!(plan.body["due_date"], json!(due), "{created_at} in {zone}");
    }
}

#[test]
fn an_unknown_time_zone_is_refused_naming_the_setting() {
    let doc = Doc::new(vec![Line::new("Waxed Tote", dec!(1), dec!(25), dec!(20))]);
    let mut s = settings();
    s.timezone = "Europe/Atlantis".into();
    assert_eq!(
        map_sales_invoice(&doc.invoice(), &s, "CONTACT-1").unwrap_err(),
        MappingError::invalid("settings.timezone", "unknown_time_zone")
    );
}
