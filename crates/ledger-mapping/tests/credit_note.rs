//! Table tests for `map_sales_credit_note`.

mod common;

use chrono::NaiveDate;
use common::{assert_invariant, settings, Doc, Line};
use ledger_mapping::{map_sales_credit_note, MappingError, OriginalInvoice};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{json, Value};

fn original() -> OriginalInvoice {
    OriginalInvoice {
        sage_id: "SAGE-INV-1".into(),
        reference: "000001042".into(),
        date: NaiveDate::from_ymd_opt(2025, 3, 14).unwrap(),
    }
}

fn lines(plan: &ledger_mapping::DocumentPlan) -> &Vec<Value> {
    plan.body["credit_note_lines"].as_array().unwrap()
}

#[test]
fn credit_note_header_reference_and_original_invoice_date() {
    let mut doc = Doc::new(vec![
        Line::new("Key Fob", dec!(1), dec!(12.5), dec!(20)).discounted(dec!(1.25))
    ])
    .shipping(dec!(4.95), dec!(20));
    doc.increment_id = "000000301".into();
    doc.adjustment_positive = dec!(5);
    let s = settings();
    let plan =
        map_sales_credit_note(&doc.credit_memo(), &s, "CONTACT-1", Some(&original())).unwrap();
    assert_eq!(plan.resource, "sales_credit_notes");
    assert_eq!(plan.root, "sales_credit_note");
    assert_eq!(plan.reference, "000000301/000001042");
    let b = &plan.body;
    assert_eq!(b["original_invoice_date"], json!("2025-03-14"));
    assert_eq!(b["date"], json!("2025-03-14"));
    assert!(b.get("due_date").is_none(), "credit notes have no due date");
    assert!(b.get("invoice_lines").is_none());
    assert!(b.get("shipping_net_amount").is_none());
    let l = lines(&plan);
    assert_eq!(l.len(), 3);
    assert_eq!(l[1]["description"], json!("Shipping"));
    assert_eq!(l[1]["tax_amount"], json!("0.99"));
    // The 5.00 adjustment refund is gross at the refunded line's 20 %:
    // VAT 5.00 × 20 / 120 = 0.833 → 0.83, net 4.17.
    assert_eq!(
        l[2],
        json!({"description": "Adjustment refund", "ledger_account_id": "LEDGER-ADJUST", "quantity": "1.0",
               "unit_price": "4.17", "tax_rate_id": "GB_STANDARD", "tax_amount": "0.83"})
    );
    assert_invariant(&plan, &s, doc.computed_grand_total(), "credit note");
    assert_eq!(doc.computed_grand_total(), dec!(24.44));
    // Out of scope only when the merchant chooses it.
    let mut oos = settings();
    oos.adjustment_vat = ledger_mapping::AdjustmentVat::OutOfScope;
    let plan =
        map_sales_credit_note(&doc.credit_memo(), &oos, "CONTACT-1", Some(&original())).unwrap();
    assert_eq!(
        lines(&plan)[2],
        json!({"description": "Adjustment refund", "ledger_account_id": "LEDGER-ADJUST", "quantity": "1.0",
               "unit_price": "5.00", "tax_rate_id": "GB_NO_TAX", "tax_amount": "0.00"})
    );
    assert_invariant(
        &plan,
        &oos,
        doc.computed_grand_total(),
        "credit note, out of scope",
    );
}

#[test]
fn credit_note_table_keeps_the_totals_invariant() {
    struct Case {
        name: &'static str,
        doc: Doc,
        original: Option<OriginalInvoice>,
        line_count: usize,
        reference: &'static str,
    }
    let with_adjustments = |pos: Decimal, neg: Decimal, lines: Vec<Line>| {
        let mut d = Doc::new(lines);
        d.increment_id = "000000302".into();
        d.adjustment_positive = pos;
        d.adjustment_negative = neg;
        d
    };
    let cases = vec![
        Case {
            name: "restocking fee is a negative line",
            doc: with_adjustments(
                dec!(0),
                dec!(5.85),
                vec![Line::new("Scarf", dec!(1), dec!(58.50), dec!(20))],
            ),
            original: None,
            line_count: 2,
            reference: "CM-000000302",
        },
        Case {
            name: "both adjustments",
            doc: with_adjustments(
                dec!(2.50),
                dec!(1.00),
                vec![Line::new("Mug", dec!(2), dec!(6.25), dec!(20))],
            ),
            original: Some(original()),
            line_count: 3,
            reference: "000000302/000001042",
        },
        Case {
            name: "unrefunded lines (qty 0) are skipped",
            doc: {
                let mut zero = Line::new("Tote", dec!(0), dec!(25), dec!(20));
                zero.row_total = Some(dec!(0));
                zero.tax = dec!(0);
                with_adjustments(
                    dec!(0),
                    dec!(0),
                    vec![zero, Line::new("Fob", dec!(1), dec!(12.5), dec!(20))],
                )
            },
            original: Some(original()),
            line_count: 1,
            reference: "000000302/000001042",
        },
        Case {
            name: "odd prices round",
            doc: with_adjustments(
                dec!(0),
                dec!(0),
                vec![Line::new("Odd", dec!(3), dec!(41.625), dec!(20))],
            ),
            original: Some(original()),
            line_count: 1,
            reference: "000000302/000001042",
        },
    ];
    let s = settings();
    for case in cases {
        let plan = map_sales_credit_note(&case.doc.credit_memo(), &s, "C", case.original.as_ref())
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(lines(&plan).len(), case.line_count, "{}", case.name);
        assert_eq!(plan.reference, case.reference, "{}", case.name);
        assert_invariant(&plan, &s, case.doc.computed_grand_total(), case.name);
    }
}

#[test]
fn adjustment_fee_line_is_negative() {
    let mut d = Doc::new(vec![Line::new("Scarf", dec!(1), dec!(58.50), dec!(20))]);
    d.adjustment_negative = dec!(5.85);
    let plan = map_sales_credit_note(&d.credit_memo(), &settings(), "C", None).unwrap();
    let fee = &lines(&plan)[1];
    assert_eq!(fee["description"], json!("Adjustment fee"));
    // -5.85 gross at 20 %: VAT -5.85 / 6 = -0.975 → -0.98, net -4.87.
    assert_eq!(fee["unit_price"], json!("-4.87"));
    assert_eq!(fee["tax_amount"], json!("-0.98"));
    assert_eq!(fee["tax_rate_id"], json!("GB_STANDARD"));
    assert_eq!(fee["ledger_account_id"], json!("LEDGER-ADJUST"));
}

#[test]
fn adjustments_need_the_adjustment_ledger() {
    let mut d = Doc::new(vec![Line::new("Scarf", dec!(1), dec!(10), dec!(20))]);
    d.adjustment_positive = dec!(1);
    let mut s = settings();
    s.adjustment_ledger_account_id = None;
    assert_eq!(
        map_sales_credit_note(&d.credit_memo(), &s, "C", None),
        Err(MappingError::Invalid {
            field: "adjustment_ledger_account_id".into(),
            reason: "missing".into()
        })
    );
}

#[test]
fn shipping_only_refund_becomes_a_line_on_the_shipping_ledger() {
    let mut zero = Line::new("Tote", dec!(0), dec!(25), dec!(20));
    zero.row_total = Some(dec!(0));
    zero.tax = dec!(0);
    let d = Doc::new(vec![zero]).shipping(dec!(4.95), dec!(20));
    let s = settings();
    let plan = map_sales_credit_note(&d.credit_memo(), &s, "C", Some(&original())).unwrap();
    assert!(plan.body.get("shipping_net_amount").is_none());
    assert_eq!(
        lines(&plan)[0],
        json!({"description": "Shipping", "ledger_account_id": "LEDGER-CARRIAGE", "quantity": "1.0",
               "unit_price": "4.95", "tax_rate_id": "GB_STANDARD", "tax_amount": "0.99"})
    );
    assert_invariant(&plan, &s, d.computed_grand_total(), "shipping only");
}

#[test]
fn credit_note_reference_is_deterministically_truncated() {
    let mut d = Doc::new(vec![Line::new("Item", dec!(1), dec!(10), dec!(20))]);
    d.increment_id = "CM-FR-000000012".into();
    let mut o = original();
    o.reference = "INV-FR-STORE-000000034".into();
    let a = map_sales_credit_note(&d.credit_memo(), &settings(), "C", Some(&o)).unwrap();
    let b = map_sales_credit_note(&d.credit_memo(), &settings(), "C", Some(&o)).unwrap();
    assert_eq!(a.reference, b.reference);
    assert_eq!(a.reference, "CM-FR-000000012/~00000034");
    assert!(a.body["notes"]
        .as_str()
        .unwrap()
        .contains("INV-FR-STORE-000000034"));
}

#[test]
fn cross_border_credit_note() {
    let mut d = Doc::new(vec![
        Line::new("Licence", dec!(1), dec!(99), dec!(0)).typed("virtual")
    ])
    .country("US");
    d.adjustment_negative = dec!(10);
    let s = settings();
    let plan = map_sales_credit_note(&d.credit_memo(), &s, "C", None).unwrap();
    for l in lines(&plan) {
        assert_eq!(l["tax_rate_id"], json!("GB_ZERO"));
        assert_eq!(l["eu_goods_services_type_id"], json!("SERVICES"));
    }
    assert_invariant(&plan, &s, d.computed_grand_total(), "cross-border credit");
}

#[test]
fn unmapped_rate_on_credit_note_is_held() {
    let d = Doc::new(vec![Line::new("Item", dec!(1), dec!(10), dec!(8))]);
    let err = map_sales_credit_note(&d.credit_memo(), &settings(), "C", None).unwrap_err();
    assert_eq!(err.reason(), "unmapped_tax_rate");
}
