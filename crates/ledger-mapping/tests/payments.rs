//! Receipts, refunds and allocations.

mod common;

use chrono::NaiveDate;
use common::{definition_for, sage_structure_problems, settings, Doc, Line};
use ledger_events::CreditMemoState;
use ledger_mapping::{
    map_allocation, map_customer_receipt, map_refund, CreditNoteRef, InvoiceRef, MappingError,
    PaymentMethodMapping,
};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::json;

fn invoice_ref(currency: &str, rate: Decimal, total: Decimal) -> InvoiceRef {
    InvoiceRef {
        sage_id: "SAGE-INV-1".into(),
        contact_id: "CONTACT-1".into(),
        currency: currency.into(),
        exchange_rate: rate,
        total,
    }
}

fn credit_ref(total: Decimal) -> CreditNoteRef {
    CreditNoteRef {
        sage_id: "SAGE-CN-1".into(),
        contact_id: "CONTACT-1".into(),
        currency: "GBP".into(),
        exchange_rate: dec!(1),
        total,
    }
}

fn doc() -> Doc {
    Doc::new(vec![Line::new("Notebook", dec!(3), dec!(8), dec!(20))]).shipping(dec!(3.50), dec!(20))
}

#[test]
fn card_receipt_is_allocated_to_the_invoice() {
    let d = doc();
    let total = d.computed_grand_total();
    let paid = d.paid(total, Some("bt_7kq2m9xz"));
    let plan = map_customer_receipt(
        &paid,
        &invoice_ref("GBP", dec!(1), total),
        &settings(),
        "BANK-GBP",
    )
    .unwrap();
    assert_eq!(plan.resource, "contact_payments");
    assert_eq!(plan.root, "contact_payment");
    assert_eq!(
        plan.body,
        json!({
            "transaction_type_id": "CUSTOMER_RECEIPT",
            "contact_id": "CONTACT-1",
            "bank_account_id": "BANK-GBP",
            "payment_method_id": "CREDIT_DEBIT",
            "date": "2025-03-15",
            "total_amount": "33.00",
            "currency_id": "GBP",
            "reference": "bt_7kq2m9xz",
            "allocated_artefacts": [{"artefact_id": "SAGE-INV-1", "amount": "33.00"}]
        })
    );
    assert_eq!(plan.amount, dec!(33.00));
    assert_eq!(plan.allocated, dec!(33.00));
    let problems = sage_structure_problems(definition_for(plan.resource), &plan.request_body());
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn receipt_table() {
    let d = doc();
    let total = d.computed_grand_total();
    let mut s = settings();
    s.payment_methods.insert(
        "paypal_express".into(),
        PaymentMethodMapping {
            payment_method_id: "ELECTRONIC".into(),
            bank_account_ids: [("EUR".to_string(), "BANK-PAYPAL-EUR".to_string())].into(),
        },
    );
    struct Case {
        name: &'static str,
        method: &'static str,
        currency: (&'static str, &'static str, Decimal),
        amount: Decimal,
        txn: Option<&'static str>,
        want: Result<
            (
                &'static str,
                &'static str,
                Option<&'static str>,
                &'static str,
            ),
            &'static str,
        >,
    }
    let cases = [
        Case {
            name: "mapped method, own EUR bank account",
            method: "paypal_express",
            currency: ("EUR", "GBP", dec!(1.17)),
            amount: total,
            txn: Some("8AB1"),
            want: Ok(("ELECTRONIC", "BANK-PAYPAL-EUR", Some("0.854701"), "8AB1")),
        },
        Case {
            name: "unmapped method falls back",
            method: "braintree",
            currency: ("GBP", "GBP", dec!(1)),
            amount: total,
            txn: None,
            want: Ok(("CREDIT_DEBIT", "BANK-DEFAULT", None, "000000101")),
        },
        Case {
            name: "net terms: checkmo",
            method: "checkmo",
            currency: ("GBP", "GBP", dec!(1)),
            amount: total,
            txn: None,
            want: Err("net_terms"),
        },
        Case {
            name: "net terms: purchaseorder",
            method: "purchaseorder",
            currency: ("GBP", "GBP", dec!(1)),
            amount: total,
            txn: None,
            want: Err("net_terms"),
        },
        Case {
            name: "net terms: companycredit",
            method: "companycredit",
            currency: ("GBP", "GBP", dec!(1)),
            amount: total,
            txn: None,
            want: Err("net_terms"),
        },
        Case {
            name: "zero paid",
            method: "braintree",
            currency: ("GBP", "GBP", dec!(1)),
            amount: dec!(0),
            txn: None,
            want: Err("nothing_to_post"),
        },
    ];
    for c in cases {
        let mut d = d.clone().currency(c.currency.0, c.currency.1, c.currency.2);
        d.method = c.method.into();
        let paid = d.paid(c.amount, c.txn);
        let inv = invoice_ref(
            c.currency.0,
            // The rate the invoice was posted with (see map_sales_invoice).
            ledger_mapping::document_exchange_rate(
                total,
                ledger_mapping::round2(total / c.currency.2),
                c.currency.2,
            ),
            total,
        );
        let got = map_customer_receipt(&paid, &inv, &s, "BANK-DEFAULT");
        match (got, c.want) {
            (Ok(plan), Ok((method, bank, rate, reference))) => {
                assert_eq!(plan.body["payment_method_id"], json!(method), "{}", c.name);
                assert_eq!(plan.body["bank_account_id"], json!(bank), "{}", c.name);
                assert_eq!(
                    plan.body.get("exchange_rate").and_then(|v| v.as_str()),
                    rate,
                    "{}",
                    c.name
                );
                assert_eq!(plan.reference, reference, "{}", c.name);
                assert_eq!(plan.body["currency_id"], json!(c.currency.0), "{}", c.name);
            }
            (Err(e), Err(reason)) => assert_eq!(e.reason(), reason, "{}", c.name),
            (got, want) => panic!("{}: got {got:?}, want {want:?}", c.name),
        }
    }
}

#[test]
fn overpayment_stays_on_account() {
    let d = doc();
    let paid = d.paid(dec!(40.00), None);
    let plan = map_customer_receipt(
        &paid,
        &invoice_ref("GBP", dec!(1), dec!(33.00)),
        &settings(),
        "B",
    )
    .unwrap();
    assert_eq!(plan.body["total_amount"], json!("40.00"));
    assert_eq!(
        plan.body["allocated_artefacts"][0]["amount"],
        json!("33.00")
    );
}

#[test]
fn receipt_in_another_currency_than_the_invoice_is_invalid() {
    let d = doc();
    let paid = d.paid(dec!(33), None);
    assert_eq!(
        map_customer_receipt(
            &paid,
            &invoice_ref("EUR", dec!(0.85), dec!(33)),
            &settings(),
            "B"
        ),
        Err(MappingError::Invalid {
            field: "invoice.currency".into(),
            reason: "currency_mismatch".into()
        })
    );
    assert_eq!(
        map_customer_receipt(
            &paid,
            &invoice_ref("GBP", dec!(1), dec!(33)),
            &settings(),
            " "
        ),
        Err(MappingError::Invalid {
            field: "bank_account_id".into(),
            reason: "missing".into()
        })
    );
}

#[test]
fn refund_is_allocated_to_the_credit_note() {
    let mut d = doc();
    d.increment_id = "000000301".into();
    let cm = d.credit_memo();
    let total = d.computed_grand_total();
    let plan = map_refund(&cm, &credit_ref(total), &settings(), "BANK-GBP").unwrap();
    assert_eq!(plan.body["transaction_type_id"], json!("CUSTOMER_REFUND"));
    assert_eq!(plan.body["total_amount"], json!("33.00"));
    assert_eq!(
        plan.body["allocated_artefacts"],
        json!([{"artefact_id": "SAGE-CN-1", "amount": "33.00"}])
    );
    assert_eq!(plan.reference, "000000301");
    let problems = sage_structure_problems("postContactPayments", &plan.request_body());
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn prepaid_offline_refund_comes_from_the_methods_account() {
    // A bank-transfer order was paid up front: its refund is money leaving the account
    // the method's transfers arrive in (33.00 = 3 × 8.00 + 3.50 shipping, + 20 % VAT).
    let mut d = doc();
    d.method = "banktransfer".into();
    let mut s = settings();
    s.payment_methods.insert(
        "banktransfer".into(),
        PaymentMethodMapping {
            payment_method_id: "BANK_TRANSFER".into(),
            bank_account_ids: [("GBP".to_string(), "BANK-TRANSFERS".to_string())].into(),
        },
    );
    let total = d.computed_grand_total();
    let plan = map_refund(&d.credit_memo(), &credit_ref(total), &s, "BANK-GBP").unwrap();
    assert_eq!(plan.body["transaction_type_id"], json!("CUSTOMER_REFUND"));
    assert_eq!(plan.body["bank_account_id"], json!("BANK-TRANSFERS"));
    assert_eq!(plan.body["payment_method_id"], json!("BANK_TRANSFER"));
    assert_eq!(plan.body["total_amount"], json!("33.00"));
}

#[test]
fn refund_table_of_refusals() {
    let d = doc();
    let total = d.computed_grand_total();
    let mut open = d.credit_memo();
    open.creditmemo.state = CreditMemoState::Open;
    let mut net_terms = d.clone();
    // Paid later: no money came in, so none goes back (a bank transfer, paid up front,
    // is refunded: see `prepaid_offline_refund_comes_from_the_methods_account`).
    net_terms.method = "purchaseorder".into();
    let cases = [
        (
            "not refunded",
            map_refund(&open, &credit_ref(total), &settings(), "B"),
            "not_refunded",
        ),
        (
            "net terms",
            map_refund(
                &net_terms.credit_memo(),
                &credit_ref(total),
                &settings(),
                "B",
            ),
            "net_terms",
        ),
        (
            "larger than the credit note",
            map_refund(&d.credit_memo(), &credit_ref(dec!(10)), &settings(), "B"),
            "exceeds_document_total",
        ),
    ];
    for (name, got, reason) in cases {
        assert_eq!(got.unwrap_err().reason(), reason, "{name}");
    }
}

#[test]
fn allocation_sums_to_zero() {
    let date = NaiveDate::from_ymd_opt(2025, 3, 20).unwrap();
    let plan = map_allocation(
        &invoice_ref("GBP", dec!(1), dec!(73.44)),
        &credit_ref(dec!(24.44)),
        dec!(24.44),
        date,
    )
    .unwrap();
    assert_eq!(plan.resource, "contact_allocations");
    assert_eq!(
        plan.body,
        json!({
            "transaction_type_id": "CUSTOMER_ALLOCATION",
            "contact_id": "CONTACT-1",
            "date": "2025-03-20",
            "allocated_artefacts": [
                {"artefact_id": "SAGE-INV-1", "amount": "24.44"},
                {"artefact_id": "SAGE-CN-1", "amount": "-24.44"}
            ]
        })
    );
    let sum: Decimal = plan.body["allocated_artefacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["amount"].as_str().unwrap().parse::<Decimal>().unwrap())
        .sum();
    assert_eq!(sum, Decimal::ZERO);
    let problems = sage_structure_problems("postContactAllocations", &plan.request_body());
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn allocation_refusals() {
    let date = NaiveDate::from_ymd_opt(2025, 3, 20).unwrap();
    let inv = invoice_ref("GBP", dec!(1), dec!(20));
    let mut other_contact = credit_ref(dec!(10));
    other_contact.contact_id = "CONTACT-2".into();
    let mut other_currency = credit_ref(dec!(10));
    other_currency.currency = "EUR".into();
    let cases = [
        (
            "contact",
            map_allocation(&inv, &other_contact, dec!(5), date),
            "credit_note.contact_id",
            "contact_mismatch",
        ),
        (
            "currency",
            map_allocation(&inv, &other_currency, dec!(5), date),
            "credit_note.currency",
            "currency_mismatch",
        ),
        (
            "zero",
            map_allocation(&inv, &credit_ref(dec!(10)), dec!(0), date),
            "amount",
            "not_positive",
        ),
        (
            "over credit",
            map_allocation(&inv, &credit_ref(dec!(10)), dec!(15), date),
            "credit_note.total",
            "exceeds_document_total",
        ),
        (
            "over invoice",
            map_allocation(&inv, &credit_ref(dec!(50)), dec!(25), date),
            "invoice.total",
            "exceeds_document_total",
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

/// A receipt is dated on the books' calendar day of the payment, like the invoice.
#[test]
fn receipt_date_is_the_calendar_day_in_the_books_time_zone() {
    let d = doc();
    let total = d.computed_grand_total();
    let mut paid = d.paid(total, Some("bt_7kq2m9xz"));
    paid.payment.paid_at =
        chrono::NaiveDateTime::parse_from_str("2025-09-30 23:15:00", "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc();
    let mut s = settings();
    for (zone, date) in [("Europe/London", "2025-10-01"), ("UTC", "2025-09-30")] {
        s.timezone = zone.into();
        let plan = map_customer_receipt(&paid, &invoice_ref("GBP", dec!(1), total), &s, "BANK-GBP")
            .unwrap();
        assert_eq!(plan.body["date"], json!(date), "{zone}");
    }
}

fn receipt_with(
    paid: &ledger_events::InvoicePaidSnapshot,
    invoice: &InvoiceRef,
    outstanding: Decimal,
    bank_use: ledger_mapping::BankUse,
) -> ledger_mapping::ReceiptPlan {
    let context = ledger_mapping::ReceiptContext {
        invoice,
        outstanding,
        bank_account_id: "BANK-1",
        bank_use,
    };
    ledger_mapping::map_receipt(paid, &context, &settings()).unwrap()
}

#[test]
fn receipt_allocates_what_sage_says_is_outstanding() {
    // £120.00 paid; a £20.00 credit note was allocated first, so Sage says 100.00 is
    // outstanding: 100.00 allocated, 20.00 stays on account.
    let d = doc();
    let paid = d.paid(dec!(120.00), Some("ch_1"));
    let invoice = invoice_ref("GBP", dec!(1), dec!(120.00));
    let plan = receipt_with(
        &paid,
        &invoice,
        dec!(100.00),
        ledger_mapping::BankUse::SameCurrency,
    );
    assert_eq!(plan.amount, dec!(120.00));
    assert_eq!(plan.allocated, dec!(100.00));
    assert_eq!(plan.body["total_amount"], json!("120.00"));
    assert_eq!(
        plan.body["allocated_artefacts"],
        json!([{ "artefact_id": "SAGE-INV-1", "amount": "100.00" }])
    );
    // Nothing outstanding (a credit note settled the invoice): all on account, no allocation.
    let plan = receipt_with(
        &paid,
        &invoice,
        dec!(0),
        ledger_mapping::BankUse::SameCurrency,
    );
    assert_eq!(plan.allocated, dec!(0));
    assert_eq!(plan.body["allocated_artefacts"], json!([]));
    assert!(plan.body.get("base_currency_total_amount").is_none());
}

#[test]
fn receipt_carries_the_base_amount_received() {
    // €117.00 at Magento's base_to_order_rate 1.17: the invoice went at 1/1.17 = 0.854701
    // (117.00 × 0.854701 = 99.999 → £100.00). The gateway settled £100.62 (Magento's
    // base_amount_paid): the receipt sends 100.62 and the rate 100.62 / 117.00 = 0.86, so Sage
    // books a £0.62 gain.
    let d = doc().currency("EUR", "GBP", dec!(1.17));
    let mut paid = d.paid(dec!(117.00), Some("ch_2"));
    let invoice = invoice_ref("EUR", dec!(0.854701), dec!(117.00));
    paid.payment.base_amount_paid = dec!(100.62);
    let plan = receipt_with(
        &paid,
        &invoice,
        dec!(117.00),
        ledger_mapping::BankUse::SameCurrency,
    );
    assert_eq!(plan.body["base_currency_total_amount"], json!("100.62"));
    assert_eq!(plan.body["exchange_rate"], json!("0.86"));
    assert_eq!(plan.allocated, dec!(117.00));
    // Received at the invoice's own rate (£100.00): the invoice's rate, no base amount.
    paid.payment.base_amount_paid = dec!(100.00);
    let plan = receipt_with(
        &paid,
        &invoice,
        dec!(117.00),
        ledger_mapping::BankUse::SameCurrency,
    );
    assert!(plan.body.get("base_currency_total_amount").is_none());
    assert_eq!(plan.body["exchange_rate"], json!("0.854701"));
    // Into an account that takes foreign money: the base amount is always sent.
    let plan = receipt_with(
        &paid,
        &invoice,
        dec!(117.00),
        ledger_mapping::BankUse::ForeignMoney,
    );
    assert_eq!(plan.body["base_currency_total_amount"], json!("100.00"));
}

#[test]
fn captured_currency_must_be_the_invoices() {
    let d = doc();
    let mut paid = d.paid(dec!(10.00), None);
    let invoice = invoice_ref("GBP", dec!(1), dec!(10.00));
    paid.payment.currency = Some("GBP".into());
    let context = ledger_mapping::ReceiptContext {
        invoice: &invoice,
        outstanding: dec!(10.00),
        bank_account_id: "BANK-1",
        bank_use: ledger_mapping::BankUse::SameCurrency,
    };
    assert!(ledger_mapping::map_receipt(&paid, &context, &settings()).is_ok());
    paid.payment.currency = Some("EUR".into());
    match ledger_mapping::map_receipt(&paid, &context, &settings()) {
        Err(MappingError::Invalid { field, reason }) => {
            assert_eq!(field, "payment.currency");
            assert_eq!(reason, "currency_mismatch");
        }
        other => panic!("{other:?}"),
    }
}
