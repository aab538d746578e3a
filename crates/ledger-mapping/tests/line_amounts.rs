//! Magento's line amounts and VAT, exactly: every Sage line books Magento's row net and
//! tax to the cent, shipping carries Magento's own VAT, the tax map follows tax class
//! and place of supply, credit-memo adjustments carry VAT, and foreign-currency base
//! totals are Magento's. Named cases from the "books right to the day and the penny"
//! findings, then a property test over random baskets.

mod common;

use common::{assert_invariant, assert_lines_match, settings, Doc, Line};
use ledger_mapping::{
    map_sales_credit_note, map_sales_invoice, round2, rules, sage_line_figures,
    CrossBorderVatCharged, DocumentPlan, MappingError, TaxRateEntry,
};
use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{json, Value};

fn lines(plan: &DocumentPlan) -> &Vec<Value> {
    plan.body
        .get("invoice_lines")
        .or_else(|| plan.body.get("credit_note_lines"))
        .and_then(Value::as_array)
        .unwrap()
}

fn held(result: Result<DocumentPlan, MappingError>) -> (String, String) {
    match result {
        Err(MappingError::Skipped { reason, detail }) => (reason, detail),
        other => panic!("expected a hold, got {other:?}"),
    }
}

#[test]
fn tax_inclusive_store_with_a_10_percent_cart_rule_books_78_72() {
    // The real store's case: 4 × £26.24 incl. 20 % VAT = 104.96; Magento's row net
    // 104.96 − round2(104.96 / 6) = 104.96 − 17.49 = 87.47 (price ex tax 21.8667).
    // A 10 % cart rule takes 10.50 off the gross: 94.46 left, VAT round2(94.46 / 6) =
    // 15.74, net 94.46 − 15.74 = 78.72 (Magento: 87.47 − 10.50 + compensation 1.75).
    let line =
        Line::incl("Enamel mug", dec!(4), dec!(26.24), dec!(20)).incl_discounted(dec!(10.50));
    assert_eq!(
        (line.net(), line.tax, line.compensation),
        (dec!(78.72), dec!(15.74), dec!(1.75))
    );
    let mut doc = Doc::new(vec![line]);
    doc.tax_config = Some(json!({"price_includes_tax": true, "discount_tax": true}));
    let s = settings();
    let plan = map_sales_invoice(&doc.invoice(), &s, "C").unwrap();
    assert_eq!(
        lines(&plan)[0],
        json!({
            "description": "Enamel mug", "ledger_account_id": "LEDGER-SALES",
            "quantity": "4.0", "unit_price": "26.24", "unit_price_includes_tax": true,
            "discount_amount": "10.50", "tax_rate_id": "GB_STANDARD", "tax_amount": "15.74"
        })
    );
    let f = &sage_line_figures(&plan.body, &s.rates())[0];
    assert_eq!((f.net, f.tax), (dec!(78.72), dec!(15.74)));
    assert_eq!(plan.rounding_line, None, "no -0.01 out-of-scope line");
    assert_invariant(&plan, &s, dec!(94.46), "78.72");
    assert_lines_match(&plan, &doc, &s, "78.72");
    // The old ex-tax form: 4 × round2(21.8667) = 87.48 − net discount 8.75 = 78.73.
    let (old_net, _) = rules::sage_line_amounts(
        dec!(4),
        dec!(21.8667),
        dec!(8.75),
        dec!(15.74),
        false,
        false,
    );
    assert_eq!(old_net, dec!(78.73));
    // A store that does not say it is tax-inclusive still lands on 78.72 (ex-tax price
    // 21.87 × 4 = 87.48, discount 8.76).
    let mut plain = doc.clone();
    plain.tax_config = None;
    let plan = map_sales_invoice(&plain.invoice(), &s, "C").unwrap();
    assert_eq!(lines(&plan)[0]["discount_amount"], json!("8.76"));
    assert_lines_match(&plan, &plain, &s, "78.72 ex-tax form");
}

#[test]
fn shipping_taxed_before_discount_books_magentos_2_00() {
    // "Apply tax before discount": £10.00 shipping, VAT 20 % of 10.00 = 2.00, then a
    // £5.00 shipping discount. Header shipping would get round2(5.00 × 20 %) = 1.00 from
    // Sage; the shipping line carries Magento's 2.00.
    let mut doc = Doc::new(vec![Line::new("Lamp", dec!(1), dec!(20), dec!(20))]);
    doc.shipping_discount = dec!(5.00);
    doc = doc.shipping(dec!(10.00), dec!(20));
    doc.shipping_tax = dec!(2.00);
    // 20.00 + 4.00 + (10.00 − 5.00) + 2.00
    assert_eq!(doc.computed_grand_total(), dec!(31.00));
    assert_eq!(rules::sage_shipping_tax(dec!(5.00), dec!(20)), dec!(1.00));
    let s = settings();
    let plan = map_sales_invoice(&doc.invoice(), &s, "C").unwrap();
    assert_eq!(
        lines(&plan)[1],
        json!({
            "description": "Shipping", "ledger_account_id": "LEDGER-CARRIAGE",
            "quantity": "1.0", "unit_price": "10.00", "discount_amount": "5.00",
            "tax_rate_id": "GB_STANDARD", "tax_amount": "2.00"
        })
    );
    assert!(plan.body.get("shipping_net_amount").is_none());
    assert_eq!(plan.rounding_line, None);
    assert_invariant(&plan, &s, dec!(31.00), "tax before discount");
    assert_lines_match(&plan, &doc, &s, "tax before discount");
}

#[test]
fn free_shipping_coupon_with_shipping_tax_is_posted() {
    // Shipping 5.00 taxed 1.00 before a free-shipping coupon takes the 5.00 off: net 0,
    // VAT 1.00. This used to be dead-lettered as `tax_without_shipping`.
    let mut doc = Doc::new(vec![Line::new("Lamp", dec!(1), dec!(20), dec!(20))]);
    doc.shipping_discount = dec!(5.00);
    doc = doc.shipping(dec!(5.00), dec!(20));
    doc.shipping_tax = dec!(1.00);
    let s = settings();
    let plan = map_sales_invoice(&doc.invoice(), &s, "C").unwrap();
    let shipping = &lines(&plan)[1];
    assert_eq!(shipping["unit_price"], json!("5.00"));
    assert_eq!(shipping["discount_amount"], json!("5.00"));
    assert_eq!(shipping["tax_amount"], json!("1.00"));
    assert_eq!(shipping["tax_rate_id"], json!("GB_STANDARD"));
    // 20.00 + 4.00 + 0.00 + 1.00
    assert_invariant(&plan, &s, dec!(25.00), "free shipping coupon");
    assert_lines_match(&plan, &doc, &s, "free shipping coupon");
}

#[test]
fn exempt_and_out_of_scope_classes_leave_the_zero_rate() {
    let mut s = settings();
    s.exempt.tax_classes = vec!["Exempt".into()];
    s.out_of_scope.tax_classes = vec!["Out of Scope".into()];
    let doc = Doc::new(vec![
        Line::new("Breakage cover", dec!(1), dec!(4.99), dec!(0)).class("Exempt"),
        Line::new("Charity donation", dec!(1), dec!(2.00), dec!(0)).class("Out of Scope"),
        Line::new("Paperback", dec!(1), dec!(8.99), dec!(0)).class("Zero Rated"),
        Line::new("Lamp", dec!(1), dec!(20), dec!(20)).class("Taxable Goods"),
    ]);
    let plan = map_sales_invoice(&doc.invoice(), &s, "C").unwrap();
    let rates: Vec<&Value> = lines(&plan).iter().map(|l| &l["tax_rate_id"]).collect();
    assert_eq!(
        rates,
        [
            &json!("GB_EXEMPT"),
            &json!("GB_NO_TAX"),
            &json!("GB_ZERO"),
            &json!("GB_STANDARD")
        ]
    );
    assert_invariant(&plan, &s, doc.computed_grand_total(), "classes");
    assert_lines_match(&plan, &doc, &s, "classes");
    // A (percent, class) row is more specific than the class names.
    s.tax_rates.push(TaxRateEntry {
        tax_class: Some("Exempt".into()),
        ..TaxRateEntry::percent(dec!(0), "GB_ZERO")
    });
    let plan = map_sales_invoice(&doc.invoice(), &s, "C").unwrap();
    assert_eq!(lines(&plan)[0]["tax_rate_id"], json!("GB_ZERO"));
}

/// A GB-billed gift delivered to Paris on which Magento charged French VAT under IOSS.
fn paris_gift(with_code: bool) -> Doc {
    let mut line = Line::new("Silk scarf", dec!(1), dec!(50), dec!(20));
    if with_code {
        line = line.code("FR-IOSS-20");
    }
    let mut doc = Doc::new(vec![line]);
    doc.delivery_country = Some("FR".into());
    doc
}

#[test]
fn goods_to_paris_with_french_ioss_vat_never_land_on_gb_standard() {
    let s = settings();
    // Magento named the rate: unmapped foreign VAT is held with what is missing.
    let (reason, detail) = held(map_sales_invoice(&paris_gift(true).invoice(), &s, "C"));
    assert_eq!(reason, "unmapped_foreign_vat");
    assert!(
        detail.contains("FR-IOSS-20") && detail.contains("FR"),
        "{detail}"
    );
    // Even a merchant who posts VAT abroad on home rates does not get GB_STANDARD when
    // Magento says the VAT is French.
    let mut domestic = settings();
    domestic.cross_border_vat_charged = CrossBorderVatCharged::DomesticRates;
    let (reason, _) = held(map_sales_invoice(
        &paris_gift(true).invoice(),
        &domestic,
        "C",
    ));
    assert_eq!(reason, "unmapped_foreign_vat");
    // Older modules send no code: held by the cross-border policy.
    let (reason, detail) = held(map_sales_invoice(&paris_gift(false).invoice(), &s, "C"));
    assert_eq!(reason, "cross_border_tax_charged");
    assert!(detail.contains("FR"), "{detail}");
    // Mapped by code to the destination rate: posted there, VAT intact.
    let mut mapped = settings();
    mapped.tax_rates.push(TaxRateEntry {
        code: Some("FR-IOSS-20".into()),
        ..TaxRateEntry::percent(dec!(20), "FR_DEST_STANDARD")
    });
    let doc = paris_gift(true);
    let plan = map_sales_invoice(&doc.invoice(), &mapped, "C").unwrap();
    assert_eq!(lines(&plan)[0]["tax_rate_id"], json!("FR_DEST_STANDARD"));
    assert_eq!(lines(&plan)[0]["tax_amount"], json!("10.00"));
    assert_invariant(&plan, &mapped, dec!(60.00), "ioss mapped");
    assert_lines_match(&plan, &doc, &mapped, "ioss mapped");
    // Or by (country, percent).
    let mut by_country = settings();
    by_country.tax_rates.push(TaxRateEntry {
        country: Some("FR".into()),
        ..TaxRateEntry::percent(dec!(20), "FR_DEST_STANDARD")
    });
    let plan = map_sales_invoice(&paris_gift(false).invoice(), &by_country, "C").unwrap();
    assert_eq!(lines(&plan)[0]["tax_rate_id"], json!("FR_DEST_STANDARD"));
    // Delivered to Paris without VAT: an export on the cross-border zero rate.
    let mut export = paris_gift(false);
    export.lines[0].tax = Decimal::ZERO;
    export.lines[0].tax_percent = Some(Decimal::ZERO);
    let plan = map_sales_invoice(&export.invoice(), &s, "C").unwrap();
    assert_eq!(lines(&plan)[0]["tax_rate_id"], json!("GB_ZERO"));
}

#[test]
fn virtual_item_follows_a_french_billing_address() {
    // Billed in France, "delivered" (the order's shipping address) in the UK: a
    // virtual item has no delivery, so its place of supply is France.
    let mut doc = Doc::new(vec![
        Line::new("E-book", dec!(1), dec!(9.99), dec!(0)).typed("virtual")
    ])
    .country("FR");
    doc.delivery_country = Some("GB".into());
    let s = settings();
    let plan = map_sales_invoice(&doc.invoice(), &s, "C").unwrap();
    assert_eq!(lines(&plan)[0]["tax_rate_id"], json!("GB_ZERO"));
    assert_eq!(
        lines(&plan)[0]["eu_goods_services_type_id"],
        json!("SERVICES")
    );
    assert_invariant(&plan, &s, dec!(9.99), "virtual FR");
    // With French VAT charged under OSS and the code unmapped: held, never GB_STANDARD.
    let mut taxed = Doc::new(vec![Line::new("E-book", dec!(1), dec!(10), dec!(20))
        .typed("virtual")
        .code("FR-OSS-20")])
    .country("FR");
    taxed.delivery_country = Some("GB".into());
    let (reason, detail) = held(map_sales_invoice(&taxed.invoice(), &s, "C"));
    assert_eq!(reason, "unmapped_foreign_vat");
    assert!(detail.contains("FR-OSS-20"), "{detail}");
    // A physical item on the same order is supplied where it is delivered (GB): home VAT
    // on a customer billed abroad, which Sage only takes by the merchant's policy.
    let mut goods = Doc::new(vec![Line::new("Lamp", dec!(1), dec!(20), dec!(20))]).country("FR");
    goods.delivery_country = Some("GB".into());
    let (reason, _) = held(map_sales_invoice(&goods.invoice(), &s, "C"));
    assert_eq!(reason, "cross_border_tax_charged");
    let mut domestic = settings();
    domestic.cross_border_vat_charged = CrossBorderVatCharged::DomesticRates;
    let plan = map_sales_invoice(&goods.invoice(), &domestic, "C").unwrap();
    assert_eq!(lines(&plan)[0]["tax_rate_id"], json!("GB_STANDARD"));
    // "Tax Calculation Based On: billing": a GB-billed lamp delivered to France was
    // taxed (UK VAT) by its billing address, and that is its place of supply. By
    // Magento's default (shipping) the same VAT would be VAT charged abroad: held.
    let mut billed_home = Doc::new(vec![Line::new("Lamp", dec!(1), dec!(20), dec!(20))]);
    billed_home.delivery_country = Some("FR".into());
    let (reason, _) = held(map_sales_invoice(&billed_home.invoice(), &s, "C"));
    assert_eq!(reason, "cross_border_tax_charged");
    billed_home.tax_config = Some(json!({"based_on": "billing"}));
    let plan = map_sales_invoice(&billed_home.invoice(), &s, "C").unwrap();
    assert_eq!(lines(&plan)[0]["tax_rate_id"], json!("GB_STANDARD"));
    assert_lines_match(&plan, &billed_home, &s, "based on billing");
}

#[test]
fn goodwill_adjustment_refund_on_a_20_percent_sale_reclaims_its_vat() {
    // A goodwill-only credit memo: the lamp is listed (qty 0, nothing refunded) and
    // £12.00 is refunded as "Adjustment Refund". At the sale's 20 %: VAT
    // 12.00 × 20 / 120 = 2.00, net 10.00.
    let mut lamp = Line::new("Lamp", dec!(0), dec!(20), dec!(20));
    lamp.row_total = Some(Decimal::ZERO);
    lamp.tax = Decimal::ZERO;
    let mut doc = Doc::new(vec![lamp]);
    doc.adjustment_positive = dec!(12.00);
    let s = settings();
    let plan = map_sales_credit_note(&doc.credit_memo(), &s, "C", None).unwrap();
    assert_eq!(
        lines(&plan)[0],
        json!({
            "description": "Adjustment refund", "ledger_account_id": "LEDGER-ADJUST",
            "quantity": "1.0", "unit_price": "10.00", "tax_rate_id": "GB_STANDARD",
            "tax_amount": "2.00"
        })
    );
    assert_invariant(&plan, &s, dec!(12.00), "goodwill");
    // Refunding lines at two rates apportions by their gross: 60.00 at 20 % (50 + 10)
    // and 42.00 at 5 % (40 + 2). 10.00 × 60/102 = 5.88 at 20 % (VAT 5.88 / 6 = 0.98,
    // net 4.90) and 10.00 × 42/102 = 4.12 at 5 % (VAT 4.12 × 5/105 = 0.196 → 0.20,
    // net 3.92).
    let mut doc = Doc::new(vec![
        Line::new("Lamp", dec!(1), dec!(50), dec!(20)),
        Line::new("Car seat", dec!(1), dec!(40), dec!(5)),
    ]);
    doc.adjustment_positive = dec!(10.00);
    let plan = map_sales_credit_note(&doc.credit_memo(), &s, "C", None).unwrap();
    let adj: Vec<(Value, Value, Value)> = lines(&plan)[2..]
        .iter()
        .map(|l| {
            (
                l["tax_rate_id"].clone(),
                l["unit_price"].clone(),
                l["tax_amount"].clone(),
            )
        })
        .collect();
    assert_eq!(
        adj,
        vec![
            (json!("GB_STANDARD"), json!("4.90"), json!("0.98")),
            (json!("GB_LOWER"), json!("3.92"), json!("0.20")),
        ]
    );
    assert_invariant(&plan, &s, dec!(112.00), "apportioned");
}

#[test]
fn yen_sale_of_10000_pounds_books_10000_00_in_base() {
    // ¥1,912,345 at base_to_order_rate 191.2345 is £10,000.00 exactly. Sent to 6 dp
    // (0.005229) Sage's base total would be 1,912,345 × 0.005229 = 9,999.65.
    let doc = Doc::new(vec![Line::new(
        "Antique clock",
        dec!(1),
        dec!(1912345),
        dec!(0),
    )])
    .currency("JPY", "GBP", dec!(191.2345));
    let s = settings();
    let plan = map_sales_invoice(&doc.invoice(), &s, "C").unwrap();
    assert_eq!(plan.body["exchange_rate"], json!("0.00522918"));
    // Sage: base total = round2(1,912,345 × 0.00522918) = round2(9,999.9962271).
    assert_eq!(round2(dec!(1912345) * plan.exchange_rate), dec!(10000.00));
    assert_invariant(&plan, &s, dec!(1912345), "yen");
    // Magento's base total far from its own rate is held with the figures.
    let mut off = doc.clone();
    off.base_grand_total = Some(dec!(10000.50));
    let (reason, detail) = held(map_sales_invoice(&off.invoice(), &s, "C"));
    assert_eq!(reason, "base_totals_mismatch");
    assert!(
        detail.contains("10000.50") && detail.contains("10000.00"),
        "{detail}"
    );
}

/// One random Magento line: (qty, price in cents, rate index, discount %, tax-inclusive).
fn arb_line() -> impl Strategy<Value = (Decimal, i64, usize, u32, u32)> {
    (
        prop_oneof![
            (1i64..6).prop_map(Decimal::from),
            Just(dec!(1.5)),
            Just(dec!(12))
        ],
        50i64..50_000,
        0usize..3,
        prop_oneof![Just(0u32), Just(10), Just(15), Just(33)],
        0u32..10_000,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random baskets: every Sage line (as Sage computes it from the body) books
    /// Magento's row net and tax, Sage's VAT per rate is Magento's, and no rounding
    /// line is needed because Magento's grand total is the sum of its rows.
    #[test]
    fn every_line_books_magentos_row(
        items in prop::collection::vec(arb_line(), 1..5),
        rates in prop::sample::subsequence(vec![dec!(20), dec!(5), dec!(0)], 2..=3),
        inclusive in any::<bool>(),
        shipping_cents in prop_oneof![Just(0i64), 100i64..2_500],
        shipping_rate in 0usize..3,
        shipping_discount_pct in prop_oneof![Just(0u32), Just(50), Just(100)],
        tax_before_discount in any::<bool>(),
        currency in prop::sample::select(vec![
            ("GBP", dec!(1)),
            ("EUR", dec!(1.17)),
            ("USD", dec!(1.2734)),
            ("JPY", dec!(191.2345)),
        ]),
    ) {
        let mut lines = Vec::new();
        for (i, (qty, cents, rate_idx, disc, frac)) in items.into_iter().enumerate() {
            let pct = rates[rate_idx % rates.len()];
            let name = format!("L{i}");
            let line = if inclusive {
                let gross = Decimal::new(cents, 2);
                let l = Line::incl(&name, qty, gross, pct);
                let d = round2(l.row_total_incl_tax.unwrap() * Decimal::from(disc) / dec!(100));
                l.incl_discounted(d)
            } else {
                // Ex-tax catalogs may hold 4-dp prices.
                let price = Decimal::new(cents, 2) + Decimal::new(i64::from(frac), 6);
                let price = price.round_dp(4);
                let l = Line::new(&name, qty, price, pct);
                let d = round2(l.row_total.unwrap() * Decimal::from(disc) / dec!(100));
                l.discounted(d)
            };
            lines.push(line);
        }
        let mut doc = Doc::new(lines);
        if inclusive {
            doc.tax_config = Some(json!({"price_includes_tax": true}));
        }
        let ship = Decimal::new(shipping_cents, 2);
        let ship_pct = rates[shipping_rate % rates.len()];
        doc.shipping_discount = round2(ship * Decimal::from(shipping_discount_pct) / dec!(100));
        doc = doc.shipping(ship, ship_pct);
        if tax_before_discount {
            doc.shipping_tax = round2(ship * ship_pct / dec!(100));
        }
        doc.shipping_codes = vec![(format!("GB-VAT-{ship_pct}"), ship_pct)];
        if currency.0 != "GBP" {
            doc = doc.currency(currency.0, "GBP", currency.1);
        }
        let s = settings();
        let plan = map_sales_invoice(&doc.invoice(), &s, "C")
            .map_err(|e| TestCaseError::fail(format!("{e}")))?;
        assert_invariant(&plan, &s, doc.computed_grand_total(), "random basket");
        assert_lines_match(&plan, &doc, &s, "random basket");
        prop_assert_eq!(plan.rounding_line, None);
        // Sage's base total (round2(total × exchange_rate)) is Magento's base grand
        // total, here the grand total at Magento's rate to the cent.
        let grand = doc.computed_grand_total();
        prop_assert_eq!(
            round2(round2(grand) * plan.exchange_rate),
            round2(grand / currency.1)
        );
        // Magento's shipping VAT, not Sage's recomputation.
        let figures = sage_line_figures(&plan.body, &s.rates());
        if let Some(ship_line) = figures.iter().find(|f| f.description == "Shipping") {
            prop_assert_eq!(ship_line.tax, round2(doc.shipping_tax));
        }
    }

    /// A Magento grand total a few pence off its rows: a rounding line of at most 1p
    /// per line on a product line's rate, or a hold with the figures.
    #[test]
    fn rounding_line_is_at_most_a_penny_per_line(
        n in 1usize..4,
        pence in -6i64..=6,
    ) {
        let lines: Vec<Line> = (0..n)
            .map(|i| Line::new(&format!("L{i}"), dec!(1), dec!(10), if i % 2 == 0 { dec!(20) } else { dec!(5) }))
            .collect();
        let mut doc = Doc::new(lines);
        let exact = doc.computed_grand_total();
        doc.grand_total = Some(exact + Decimal::new(pence, 2));
        let s = settings();
        match map_sales_invoice(&doc.invoice(), &s, "C") {
            Ok(plan) => {
                prop_assert!(Decimal::from(pence.abs()) <= Decimal::from(n as u64));
                assert_invariant(&plan, &s, exact + Decimal::new(pence, 2), "pence");
                assert_lines_match(&plan, &doc, &s, "pence");
            }
            Err(e) => {
                prop_assert!(Decimal::from(pence.abs()) > Decimal::from(n as u64), "{}", e);
                let want = if pence.unsigned_abs() as usize > n + 2 { "totals_mismatch" } else { "rounding_too_large" };
                prop_assert_eq!(e.reason(), want);
            }
        }
    }
}
