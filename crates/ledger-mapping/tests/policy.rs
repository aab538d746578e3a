//! Table tests for the sync policy on whole snapshots: which invoices and credit memos
//! are posted, and the references and contact names they carry.

mod common;

use chrono::NaiveDate;
use common::{settings, Doc, Line};
use ledger_events::InvoiceState;
use ledger_mapping::{
    credit_memo_decision, invoice_decision, is_reference_of_number, map_sales_credit_note,
    map_sales_invoice, reasons, ContactNamePriority, MerchantSettings, OriginalInvoice,
    UnpaidInvoices, ZeroValueInvoices,
};
use rust_decimal_macros::dec;
use serde_json::json;

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn paid_doc() -> Doc {
    Doc::new(vec![Line::new("Key Fob", dec!(1), dec!(12.5), dec!(20))])
}

fn free_doc() -> Doc {
    Doc::new(vec![
        Line::new("Free sample", dec!(1), dec!(10), dec!(20)).discounted(dec!(10))
    ])
}

fn decide(doc: &Doc, state: InvoiceState, website: u32, s: &MerchantSettings) -> Option<String> {
    let mut snapshot = doc.invoice();
    snapshot.invoice.state = state;
    invoice_decision(&snapshot, website, snapshot.invoice.store_id, s)
        .err()
        .map(|e| e.reason().to_owned())
}

/// (name, document, state, website, settings, expected skip reason)
type Case<'a> = (
    &'a str,
    Doc,
    InvoiceState,
    u32,
    MerchantSettings,
    Option<&'a str>,
);

#[test]
fn invoice_policy_table() {
    // The fixture invoice is dated 2025-03-14 (London) in store view 1.
    let base = settings();
    let with = |f: &dyn Fn(&mut MerchantSettings)| {
        let mut s = base.clone();
        f(&mut s);
        s
    };
    let open = InvoiceState::Open;
    let paid = InvoiceState::Paid;
    let table: Vec<Case> = vec![
        (
            "defaults post a paid invoice",
            paid_doc(),
            paid,
            1,
            base.clone(),
            None,
        ),
        (
            "defaults post an open invoice",
            paid_doc(),
            open,
            1,
            base.clone(),
            None,
        ),
        (
            "defaults skip a zero invoice",
            free_doc(),
            paid,
            1,
            base.clone(),
            Some(reasons::ZERO_VALUE),
        ),
        (
            "zero invoices posted on request",
            free_doc(),
            paid,
            1,
            with(&|s| s.zero_value_invoices = ZeroValueInvoices::Post),
            None,
        ),
        (
            "unpaid skipped on request",
            paid_doc(),
            open,
            1,
            with(&|s| s.unpaid_invoices = UnpaidInvoices::Skip),
            Some(reasons::UNPAID_AT_CREATION),
        ),
        (
            "a paid invoice is not unpaid",
            paid_doc(),
            paid,
            1,
            with(&|s| s.unpaid_invoices = UnpaidInvoices::Skip),
            None,
        ),
        (
            "cutover: the day itself is synced",
            paid_doc(),
            paid,
            1,
            with(&|s| s.sync_since = Some(day("2025-03-14"))),
            None,
        ),
        (
            "cutover: the day after skips",
            paid_doc(),
            paid,
            1,
            with(&|s| s.sync_since = Some(day("2025-03-15"))),
            Some(reasons::BEFORE_CUTOVER),
        ),
        (
            "website not listed",
            paid_doc(),
            paid,
            2,
            with(&|s| s.website_ids = Some(vec![1])),
            Some(reasons::WEBSITE_NOT_SYNCED),
        ),
        (
            "store view not listed",
            paid_doc(),
            paid,
            1,
            with(&|s| s.store_ids = Some(vec![2])),
            Some(reasons::STORE_NOT_SYNCED),
        ),
        (
            "scope is decided before value: a zero invoice before the cutover",
            free_doc(),
            paid,
            1,
            with(&|s| s.sync_since = Some(day("2026-01-01"))),
            Some(reasons::BEFORE_CUTOVER),
        ),
    ];
    for (name, doc, state, website, s, want) in table {
        assert_eq!(decide(&doc, state, website, &s).as_deref(), want, "{name}");
    }
}

#[test]
fn cutover_uses_the_books_day_not_the_utc_day() {
    // 23:30 UTC on 31 December 2025 is 31 December in London but 1 January in Berlin.
    let mut snapshot = paid_doc().invoice();
    snapshot.invoice.created_at = "2025-12-31T23:30:00Z".parse().unwrap();
    let mut s = settings();
    s.sync_since = Some(day("2026-01-01"));
    let decided = |s: &MerchantSettings| {
        invoice_decision(&snapshot, 1, 1, s)
            .err()
            .map(|e| e.reason().to_owned())
    };
    assert_eq!(decided(&s).as_deref(), Some(reasons::BEFORE_CUTOVER));
    s.timezone = "Europe/Berlin".into();
    assert_eq!(decided(&s), None);
}

#[test]
fn credit_memo_scope() {
    let mut doc = paid_doc();
    doc.increment_id = "000000301".into();
    let snapshot = doc.credit_memo();
    let mut s = settings();
    assert_eq!(credit_memo_decision(&snapshot, 1, 1, &s), Ok(()));
    s.store_ids = Some(vec![1]);
    assert_eq!(
        credit_memo_decision(&snapshot, 1, 4, &s)
            .unwrap_err()
            .reason(),
        reasons::STORE_NOT_SYNCED
    );
    s.sync_since = Some(day("2025-04-01"));
    assert_eq!(
        credit_memo_decision(&snapshot, 1, 1, &s)
            .unwrap_err()
            .reason(),
        reasons::BEFORE_CUTOVER
    );
}

#[test]
fn reference_prefix_on_invoices_and_credit_notes() {
    let mut s = settings();
    s.reference_prefix = "WEB-".into();
    let invoice = map_sales_invoice(&paid_doc().invoice(), &s, "CONTACT-1").unwrap();
    assert_eq!(invoice.reference, "WEB-000000101");
    assert_eq!(invoice.body["reference"], json!("WEB-000000101"));
    assert_eq!(invoice.magento_reference, "000000101");
    let mut doc = paid_doc();
    doc.increment_id = "000000301".into();
    let original = OriginalInvoice {
        sage_id: "SAGE-INV-1".into(),
        reference: "000000101".into(),
        date: day("2025-03-14"),
    };
    let linked =
        map_sales_credit_note(&doc.credit_memo(), &s, "CONTACT-1", Some(&original)).unwrap();
    assert_eq!(linked.reference, "WEB-000000301/000000101");
    assert_eq!(linked.magento_reference, "000000301/000000101");
    let unlinked = map_sales_credit_note(&doc.credit_memo(), &s, "CONTACT-1", None).unwrap();
    assert_eq!(unlinked.reference, "WEB-CM-000000301");
    // Under today's prefix, an earlier one, or none, the document is the same one.
    for sent in ["WEB-000000101", "SHOP_000000101", "000000101"] {
        assert!(
            is_reference_of_number(sent, &invoice.magento_reference),
            "{sent}"
        );
    }
    // Without a prefix nothing changes.
    let plain = map_sales_invoice(&paid_doc().invoice(), &settings(), "CONTACT-1").unwrap();
    assert_eq!(plain.reference, "000000101");
    assert_eq!(plain.reference, plain.magento_reference);
}

#[test]
fn document_contact_name_follows_the_priority() {
    let mut snapshot = paid_doc().invoice();
    snapshot.order.billing_address.company = Some("Analytical Engines Ltd".into());
    let mut s = settings();
    let plan = map_sales_invoice(&snapshot, &s, "CONTACT-1").unwrap();
    assert_eq!(plan.body["contact_name"], json!("Analytical Engines Ltd"));
    s.contact_name_priority = ContactNamePriority::Person;
    let plan = map_sales_invoice(&snapshot, &s, "CONTACT-1").unwrap();
    let person = snapshot.order.billing_address.full_name();
    assert_eq!(plan.body["contact_name"], json!(person));
}
