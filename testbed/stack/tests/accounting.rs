//! The accounting projections end to end: credit notes and how they are settled (allocation
//! or refund), multi-currency and cross-border documents, held documents, net-terms
//! payments, contacts (concurrency, currency variants, reserved references, B2C
//! consolidation) and product sync. Every test runs the real services on a real NATS and
//! PostgreSQL against the Sage sandbox, and checks Sage's totals against Magento's to the cent.

mod common;

use common::{by_reference, dec, publish, schema, wait_count};

use std::time::Duration;

use ledger_stack::events::{self, Draft, Refund};
use ledger_stack::Stack;
use ledger_testkit::{TestDb, TestNats};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{json, Value};
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(60);

async fn stack() -> (Stack, TestNats, TestDb) {
    common::stack("accounting", 16).await
}

/// Waits until `sql` (one text bind) returns a row, and returns its first column.
async fn wait_row(pool: &PgPool, sql: &str, key: &str) -> String {
    let started = std::time::Instant::now();
    loop {
        let row: Option<String> = sqlx::query_scalar(sql)
            .bind(key)
            .fetch_optional(pool)
            .await
            .expect("query");
        if let Some(v) = row {
            return v;
        }
        assert!(started.elapsed() < WAIT, "no row for {key}: {sql}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn by_id<'a>(docs: &'a [Value], id: &Value) -> &'a Value {
    docs.iter()
        .find(|d| &d["id"] == id)
        .unwrap_or_else(|| panic!("no document {id}"))
}

/// Give a duplicate or a late write the chance to appear before counting.
async fn settle_down() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn documents_just_after_midnight_in_summer_time_are_dated_on_the_books_day() {
    let (stack, _nats, _db) = stack().await;
    let m = stack.onboard("midnight").await.expect("onboard");
    // The merchant's books are in Europe/London (the default). 23:30 UTC on 30 June is
    // 00:30 BST on 1 July: the third quarter, while the UTC day is still in the second.
    let mut invoice = Draft::invoice("midnight", 1).payment_method("checkmo");
    invoice.value_mut()["payload"]["invoice"]["created_at"] = json!("2026-06-30 23:30:00");
    invoice.value_mut()["payload"]["invoice"]["updated_at"] = json!("2026-06-30 23:30:00");
    // Credited 20 minutes later, still 30 June in UTC (00:50 BST on 1 July).
    let mut credit = invoice.credit_memo(1, &Refund::lines(&[(1, 1)]));
    credit.value_mut()["payload"]["creditmemo"]["created_at"] = json!("2026-06-30 23:50:00");
    credit.value_mut()["payload"]["creditmemo"]["updated_at"] = json!("2026-06-30 23:50:00");
    publish(&stack, &m, &invoice).await;
    publish(&stack, &m, &credit).await;

    let allocations = wait_count(&stack, &m, "contact_allocations", 1).await;
    let invoices = stack.documents(&m, "sales_invoices");
    let notes = stack.documents(&m, "sales_credit_notes");
    let (inv, note) = (&invoices[0], &notes[0]);
    assert_eq!(
        inv["date"],
        json!("2026-07-01"),
        "invoice on the books' day"
    );
    assert_eq!(
        note["date"],
        json!("2026-07-01"),
        "credit note on the books' day"
    );
    assert_eq!(
        note["original_invoice_date"], inv["date"],
        "the credit note names the invoice's own Sage date, not its UTC day"
    );
    // ISO dates compare as text.
    let allocated_on = allocations[0]["date"].as_str().expect("allocation date");
    assert!(
        allocated_on >= note["date"].as_str().unwrap()
            && allocated_on >= inv["date"].as_str().unwrap(),
        "allocation dated {allocated_on}, before its documents ({} / {})",
        inv["date"],
        note["date"]
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn credit_memo_on_an_unpaid_invoice_is_allocated_and_reduces_what_is_outstanding() {
    let (stack, _nats, _db) = stack().await;
    let m = stack.onboard("allocate").await.expect("onboard");
    // Cheque: Magento calls the invoice paid, but no money moved, so Sage keeps it open.
    let invoice = Draft::invoice("allocate", 1).payment_method("checkmo");
    let credit = invoice.credit_memo(
        1,
        &Refund::lines(&[(1, 1)])
            .with_shipping()
            .adjustments(dec!(5), dec!(0)),
    );
    assert_eq!(credit.grand_total(), dec!(24.44));
    publish(&stack, &m, &invoice).await;
    publish(&stack, &m, &credit).await;

    let allocations = wait_count(&stack, &m, "contact_allocations", 1).await;
    settle_down().await;
    let invoices = stack.documents(&m, "sales_invoices");
    let notes = stack.documents(&m, "sales_credit_notes");
    assert_eq!((invoices.len(), notes.len()), (1, 1));
    let (inv, note) = (&invoices[0], &notes[0]);
    assert_eq!(
        dec(&inv["total_amount"]),
        invoice.grand_total(),
        "invoice total = Magento"
    );
    assert_eq!(
        dec(&note["total_amount"]),
        credit.grand_total(),
        "credit note total = Magento"
    );
    assert_eq!(
        note["contact"]["id"], inv["contact"]["id"],
        "same contact as the invoice"
    );
    assert_eq!(note["original_invoice_date"], inv["date"]);
    let reference = note["reference"].as_str().unwrap();
    assert!(reference.contains(&invoice.increment_id()), "{reference}");

    assert_eq!(allocations.len(), 1);
    let artefacts = allocations[0]["allocated_artefacts"].as_array().unwrap();
    let amount_on = |id: &Value| {
        artefacts
            .iter()
            .find(|a| &a["artefact"]["id"] == id)
            .map(|a| dec(&a["amount"]))
            .expect("artefact allocated")
    };
    assert_eq!(amount_on(&inv["id"]), dec!(24.44));
    assert_eq!(amount_on(&note["id"]), dec!(-24.44));
    assert_eq!(
        artefacts.iter().map(|a| dec(&a["amount"])).sum::<Decimal>(),
        Decimal::ZERO
    );
    assert_eq!(
        dec(&inv["outstanding_amount"]),
        invoice.grand_total() - credit.grand_total()
    );
    assert_eq!(dec(&inv["outstanding_amount"]), dec!(49.00));
    assert_eq!(dec(&note["outstanding_amount"]), Decimal::ZERO);
    assert!(
        stack.documents(&m, "contact_payments").is_empty(),
        "no money moved"
    );
    assert!(stack.sandbox.inspect().concurrency_violations().is_empty());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn allocation_is_capped_at_what_sage_says_is_outstanding() {
    let (stack, _nats, _db) = stack().await;
    let m = stack.onboard("capped").await.expect("onboard");
    let invoice = Draft::invoice("capped", 16).payment_method("banktransfer");
    publish(&stack, &m, &invoice).await;
    let invoices = wait_count(&stack, &m, "sales_invoices", 1).await;
    // The merchant records most of the bank transfer in Sage by hand.
    let business = &stack.sandbox.inspect().businesses()[0];
    stack
        .sage()
        .post(
            &m.id,
            "contact_payments",
            "contact_payment",
            json!({
                "transaction_type_id": "CUSTOMER_RECEIPT",
                "contact_id": invoices[0]["contact"]["id"],
                "bank_account_id": business.bank_accounts["GBP"],
                "date": "2025-03-20",
                "total_amount": "60.00",
                "allocated_artefacts": [{"artefact_id": invoices[0]["id"], "amount": "60.00"}],
            }),
            None,
        )
        .await
        .expect("receipt by hand");
    let credit = invoice.credit_memo(
        16,
        &Refund::lines(&[(1, 1)])
            .with_shipping()
            .adjustments(dec!(5), dec!(0)),
    );
    publish(&stack, &m, &credit).await;

    let allocations = wait_count(&stack, &m, "contact_allocations", 1).await;
    settle_down().await;
    let inv = &stack.documents(&m, "sales_invoices")[0];
    let note = &stack.documents(&m, "sales_credit_notes")[0];
    assert_eq!(dec(&note["total_amount"]), credit.grand_total());
    let allocated: Vec<Decimal> = allocations[0]["allocated_artefacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| dec(&a["amount"]))
        .collect();
    assert_eq!(
        allocated.iter().copied().max(),
        Some(dec!(13.44)),
        "only what was still outstanding"
    );
    assert_eq!(allocated.iter().copied().sum::<Decimal>(), Decimal::ZERO);
    assert_eq!(dec(&inv["outstanding_amount"]), Decimal::ZERO);
    assert_eq!(
        dec(&note["outstanding_amount"]),
        credit.grand_total() - dec!(13.44),
        "the rest stays as credit"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interrupted_credit_memo_resumes_each_step_without_duplicates() {
    let (stack, _nats, db) = stack().await;
    let m = stack.onboard("resume").await.expect("onboard");
    let invoice = Draft::invoice("resume", 17).payment_method("checkmo");
    publish(&stack, &m, &invoice).await;
    wait_count(&stack, &m, "sales_invoices", 1).await;
    // Sage stores the credit note and the allocation but each answer is lost (500).
    for resource in ["sales_credit_notes", "contact_allocations"] {
        stack.sandbox.faults().set(
            sage_sandbox::FaultPlan::new(sage_sandbox::FaultKind::AppliedThen500)
                .for_business(m.business_id.clone())
                .on_resource(resource)
                .on_method("POST")
                .times(1),
        );
    }
    let credit = invoice.credit_memo(
        17,
        &Refund::lines(&[(1, 1)])
            .with_shipping()
            .adjustments(dec!(5), dec!(0)),
    );
    publish(&stack, &m, &credit).await;
    let pool = schema(&db, "documents").await;
    wait_row(
        &pool,
        "SELECT sage_id FROM credit_note_settlements WHERE document_key = $1 AND state = 'done'",
        &format!("creditmemo:1:{}", credit.increment_id()),
    )
    .await;
    settle_down().await;
    let notes = stack.documents(&m, "sales_credit_notes");
    let allocations = stack.documents(&m, "contact_allocations");
    assert_eq!(
        (notes.len(), allocations.len()),
        (1, 1),
        "each write landed once"
    );
    let stats = stack.sandbox.inspect().stats_for(&m.business_id);
    // The in-doubt credit note is found in Sage by its reference instead of being re-sent.
    assert_eq!(
        stats.count("POST", "/v3.1/sales_credit_notes"),
        1,
        "credit note posted once"
    );
    assert!(
        stats.count("GET", "/v3.1/sales_credit_notes") >= 1,
        "credit note looked up by reference"
    );
    assert_eq!(
        stats.count("POST", "/v3.1/contact_allocations"),
        2,
        "allocation re-sent once"
    );
    assert!(
        stats.replays() >= 1,
        "the allocation was answered from Sage's idempotency record"
    );
    let inv = &stack.documents(&m, "sales_invoices")[0];
    assert_eq!(
        dec(&inv["outstanding_amount"]),
        invoice.grand_total() - credit.grand_total()
    );
    assert_eq!(dec(&notes[0]["total_amount"]), credit.grand_total());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refunded_credit_memo_of_a_paid_invoice_gets_a_customer_refund() {
    let (stack, _nats, _db) = stack().await;
    let m = stack.onboard("refund").await.expect("onboard");
    let invoice = Draft::invoice("refund", 2);
    publish(&stack, &m, &invoice).await;
    publish(&stack, &m, &invoice.paid()).await;
    wait_count(&stack, &m, "contact_payments", 1).await;
    let credit = invoice.credit_memo(
        2,
        &Refund::lines(&[(1, 1)])
            .with_shipping()
            .adjustments(dec!(5), dec!(0))
            .online("re_3P0Example"),
    );
    publish(&stack, &m, &credit).await;

    let payments = wait_count(&stack, &m, "contact_payments", 2).await;
    settle_down().await;
    let inv = &stack.documents(&m, "sales_invoices")[0];
    let notes = stack.documents(&m, "sales_credit_notes");
    assert_eq!(notes.len(), 1);
    let note = &notes[0];
    assert_eq!(dec(&inv["total_amount"]), invoice.grand_total());
    assert_eq!(dec(&note["total_amount"]), credit.grand_total());
    let refund = payments
        .iter()
        .find(|p| p["transaction_type"]["id"] == "CUSTOMER_REFUND")
        .expect("a customer refund");
    assert_eq!(dec(&refund["total_amount"]), credit.grand_total());
    assert_eq!(refund["allocated_artefacts"].as_array().unwrap().len(), 1);
    assert_eq!(
        refund["allocated_artefacts"][0]["artefact"]["id"],
        note["id"]
    );
    assert_eq!(
        dec(&refund["allocated_artefacts"][0]["amount"]),
        dec!(24.44)
    );
    assert_eq!(refund["contact"]["id"], inv["contact"]["id"]);
    assert_eq!(refund["reference"], "re_3P0Example");
    // A card refund leaves from the card's clearing account, where its receipt went.
    assert_eq!(
        refund["bank_account"]["displayed_as"],
        "Clearing stripe_payments GBP"
    );
    assert_eq!(
        dec(&note["outstanding_amount"]),
        Decimal::ZERO,
        "the refund settles the credit note"
    );
    assert_eq!(
        dec(&inv["outstanding_amount"]),
        Decimal::ZERO,
        "the receipt paid the invoice"
    );
    assert!(
        stack.documents(&m, "contact_allocations").is_empty(),
        "money went back: no allocation"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_partial_refunds_on_one_invoice_each_settle() {
    let (stack, _nats, db) = stack().await;
    let m = stack.onboard("partial").await.expect("onboard");
    // Bank transfer, not yet paid: two credit memos together credit the whole invoice.
    let unpaid = Draft::invoice("partial", 3).payment_method("banktransfer");
    let first = unpaid.credit_memo(31, &Refund::lines(&[(1, 1)]));
    let second = unpaid.credit_memo(32, &Refund::lines(&[(0, 2)]).with_shipping());
    assert_eq!(
        first.grand_total() + second.grand_total(),
        unpaid.grand_total()
    );
    // Card, paid: two online refunds of part of it.
    let paid = Draft::invoice("partial", 4);
    let refund_a = paid.credit_memo(41, &Refund::lines(&[(0, 1)]).online("re_a"));
    let refund_b = paid.credit_memo(42, &Refund::lines(&[(1, 1)]).online("re_b"));
    for draft in [
        &unpaid,
        &first,
        &second,
        &paid,
        &paid.paid(),
        &refund_a,
        &refund_b,
    ] {
        publish(&stack, &m, draft).await;
    }

    wait_count(&stack, &m, "contact_allocations", 2).await;
    let payments = wait_count(&stack, &m, "contact_payments", 3).await;
    settle_down().await;
    let invoices = stack.documents(&m, "sales_invoices");
    let notes = stack.documents(&m, "sales_credit_notes");
    assert_eq!((invoices.len(), notes.len()), (2, 4));
    for (draft, docs) in [
        (&unpaid, &invoices),
        (&paid, &invoices),
        (&first, &notes),
        (&second, &notes),
        (&refund_a, &notes),
        (&refund_b, &notes),
    ] {
        let doc = docs
            .iter()
            .find(|d| {
                d["reference"]
                    .as_str()
                    .is_some_and(|r| r.starts_with(&draft.increment_id()))
            })
            .expect("document in Sage");
        assert_eq!(
            dec(&doc["total_amount"]),
            draft.grand_total(),
            "{}",
            draft.increment_id()
        );
        if docs == &notes {
            assert_eq!(
                dec(&doc["outstanding_amount"]),
                Decimal::ZERO,
                "credit note {} settled",
                draft.increment_id()
            );
        }
    }
    let unpaid_inv = by_reference(&invoices, &unpaid.increment_id());
    assert_eq!(
        dec(&unpaid_inv["outstanding_amount"]),
        Decimal::ZERO,
        "fully credited"
    );
    assert_eq!(unpaid_inv["status"]["id"], "PAID");
    let allocations = stack.documents(&m, "contact_allocations");
    assert_eq!(allocations.len(), 2, "one allocation per credit memo");
    let mut allocated: Vec<Decimal> = allocations
        .iter()
        .map(|a| {
            let inv = a["allocated_artefacts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["artefact"]["id"] == unpaid_inv["id"]);
            dec(&inv.expect("allocated to the invoice")["amount"])
        })
        .collect();
    allocated.sort();
    let mut want = vec![first.grand_total(), second.grand_total()];
    want.sort();
    assert_eq!(allocated, want);

    let refunds: Vec<&Value> = payments
        .iter()
        .filter(|p| p["transaction_type"]["id"] == "CUSTOMER_REFUND")
        .collect();
    assert_eq!(refunds.len(), 2);
    let mut refunded: Vec<Decimal> = refunds.iter().map(|r| dec(&r["total_amount"])).collect();
    refunded.sort();
    let mut want = vec![refund_a.grand_total(), refund_b.grand_total()];
    want.sort();
    assert_eq!(refunded, want);
    let paid_inv = by_reference(&invoices, &paid.increment_id());
    assert_eq!(dec(&paid_inv["outstanding_amount"]), Decimal::ZERO);

    // Every settlement is journaled as its own step with its own idempotency id.
    let pool = schema(&db, "documents").await;
    let steps: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sync_steps WHERE state = 'done' AND step IN ('credit_note_refund', 'credit_note_allocation')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(steps, 4);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offline_credit_memos_without_an_invoice() {
    let (stack, _nats, db) = stack().await;
    let m = stack.onboard("offline").await.expect("onboard");
    // Purchase order (net terms), no invoice: the credit note stays open as credit.
    // An older module sends no `order.invoices`, so nothing links them to an invoice.
    let mut open = Draft::from_template(events::CREDIT_MEMO_OFFLINE, "offline", None);
    open.value_mut()["payload"]["order"]
        .as_object_mut()
        .unwrap()
        .remove("invoices");
    // The same refunded by card: the money went back, from the EUR bank account.
    let mut refunded = Draft::from_template(events::CREDIT_MEMO_OFFLINE, "offline", None)
        .payment_method("stripe_payments");
    refunded.value_mut()["payload"]["creditmemo"]["increment_id"] = json!("300000010");
    refunded.value_mut()["payload"]["creditmemo"]["entity_id"] = json!(303);
    refunded.value_mut()["payload"]["order"]
        .as_object_mut()
        .unwrap()
        .remove("invoices");
    publish(&stack, &m, &open).await;
    publish(&stack, &m, &refunded).await;

    let payments = wait_count(&stack, &m, "contact_payments", 1).await;
    let pool = schema(&db, "documents").await;
    let reason = wait_row(
        &pool,
        "SELECT reason FROM credit_note_settlements WHERE document_key = $1 AND state = 'done'",
        "creditmemo:3:300000009",
    )
    .await;
    assert_eq!(reason, "no_parent_invoice");
    settle_down().await;
    let notes = stack.documents(&m, "sales_credit_notes");
    assert_eq!(notes.len(), 2);
    // Six decimals already reproduce Magento's base total here: 52.65 / 1.17 = 45.00 and
    // 52.65 × 0.854701 = 45.0000077 → 45.00, so the rate is sent as 0.854701.
    let rate = dec!(0.854701);
    for (draft, note) in [
        (&open, by_reference(&notes, "CM-300000009")),
        (&refunded, by_reference(&notes, "CM-300000010")),
    ] {
        assert_eq!(dec(&note["total_amount"]), draft.grand_total());
        assert_eq!(dec(&note["total_amount"]), dec!(52.65));
        assert_eq!(note["currency"]["id"], "EUR");
        assert_eq!(dec(&note["exchange_rate"]), rate);
        assert_eq!(
            dec(&note["base_currency_total_amount"]),
            draft.base_grand_total()
        );
        assert!(note.get("original_invoice_date").is_none_or(Value::is_null));
        // Cross-border: zero-rated, one goods/services type.
        for line in note["credit_note_lines"].as_array().unwrap() {
            assert_eq!(line["tax_rate"]["id"], "GB_ZERO", "{line:#}");
            assert_eq!(line["eu_goods_services_type"]["id"], "GOODS");
        }
    }
    assert_eq!(
        dec(&by_reference(&notes, "CM-300000009")["outstanding_amount"]),
        dec!(52.65)
    );
    let refund = &payments[0];
    assert_eq!(refund["transaction_type"]["id"], "CUSTOMER_REFUND");
    assert_eq!(refund["currency"]["id"], "EUR");
    assert_eq!(dec(&refund["exchange_rate"]), rate);
    assert_eq!(dec(&refund["total_amount"]), dec!(52.65));
    assert_eq!(
        refund["allocated_artefacts"][0]["artefact"]["id"],
        by_reference(&notes, "CM-300000010")["id"]
    );
    assert_eq!(
        refund["bank_account"]["displayed_as"],
        "Clearing stripe_payments EUR"
    );
    assert_eq!(
        dec(&by_reference(&notes, "CM-300000010")["outstanding_amount"]),
        Decimal::ZERO
    );
    assert!(stack.documents(&m, "contact_allocations").is_empty());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eur_invoice_lands_with_the_exchange_rate_and_base_total() {
    let (stack, _nats, _db) = stack().await;
    let m = stack.onboard("euro").await.expect("onboard");
    let invoice = Draft::from_template(events::INVOICE_CREATED_EUR, "euro", Some(5));
    publish(&stack, &m, &invoice).await;
    let invoices = wait_count(&stack, &m, "sales_invoices", 1).await;
    let inv = &invoices[0];
    assert_eq!(inv["currency"]["id"], "EUR");
    assert_eq!(dec(&inv["total_amount"]), invoice.grand_total());
    assert_eq!(dec(&inv["total_amount"]), dec!(70.20));
    // 1 EUR = 1/1.17 GBP, so 70.20 EUR is Magento's 60.00 GBP base total.
    // 1 / 1.17 = 0.854700854…; to 6 dp 0.854701, and 70.20 × 0.854701 = 60.0000102 →
    // 60.00 already, so no more digits are needed.
    assert_eq!(dec(&inv["exchange_rate"]), dec!(0.854701));
    assert_eq!(
        dec(&inv["base_currency_total_amount"]),
        invoice.base_grand_total()
    );
    assert_eq!(dec(&inv["base_currency_total_amount"]), dec!(60.00));
    let contacts = stack.documents(&m, "contacts");
    assert_eq!(contacts.len(), 1);
    assert_eq!(
        contacts[0]["currency"]["id"], "EUR",
        "contact locked to the document currency"
    );
    assert_eq!(contacts[0]["reference"], "C412EUR");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cross_border_invoice_is_zero_rated() {
    let (stack, _nats, _db) = stack().await;
    let m = stack.onboard("export").await.expect("onboard");
    // A GBP order shipped to Germany on which Magento charged no VAT.
    let invoice = Draft::invoice("export", 6).country("DE").retax(dec!(0));
    assert_eq!(invoice.grand_total(), dec!(61.20));
    publish(&stack, &m, &invoice).await;
    let invoices = wait_count(&stack, &m, "sales_invoices", 1).await;
    let inv = &invoices[0];
    assert_eq!(dec(&inv["total_amount"]), invoice.grand_total());
    assert_eq!(dec(&inv["tax_amount"]), Decimal::ZERO);
    assert_eq!(
        inv["main_address"]["country"]["id"]
            .as_str()
            .or(inv["main_address"]["country_id"].as_str()),
        Some("DE")
    );
    for line in inv["invoice_lines"].as_array().unwrap() {
        assert_eq!(line["tax_rate"]["id"], "GB_ZERO", "{line:#}");
        assert_eq!(line["eu_goods_services_type"]["id"], "GOODS");
    }
    // Shipping is a zero-rated line of its own, not header shipping.
    assert_eq!(dec(&inv["shipping_net_amount"]), Decimal::ZERO);
    assert!(
        inv["invoice_lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["description"] == "Shipping"),
        "{inv:#}"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn net_terms_payment_is_skipped_and_the_invoice_stays_open() {
    let (stack, _nats, db) = stack().await;
    let m = stack.onboard("net-terms").await.expect("onboard");
    let invoice = Draft::invoice("net-terms", 7).payment_method("checkmo");
    publish(&stack, &m, &invoice).await;
    publish(&stack, &m, &invoice.paid()).await;
    let pool = schema(&db, "payments").await;
    let reason = wait_row(
        &pool,
        "SELECT reason FROM skipped_payments WHERE document_key = $1",
        &format!("invoice:1:{}", invoice.increment_id()),
    )
    .await;
    assert_eq!(reason, "net_terms");
    let invoices = wait_count(&stack, &m, "sales_invoices", 1).await;
    settle_down().await;
    assert!(
        stack.documents(&m, "contact_payments").is_empty(),
        "no receipt for a cheque"
    );
    let inv = &stack.documents(&m, "sales_invoices")[0];
    assert_eq!(invoices.len(), 1);
    assert_eq!(dec(&inv["total_amount"]), invoice.grand_total());
    assert_eq!(
        dec(&inv["outstanding_amount"]),
        invoice.grand_total(),
        "still owed"
    );
    assert_eq!(inv["status"]["id"], "UNPAID");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invoice_with_an_unmapped_tax_rate_is_held_with_its_reason() {
    let (stack, _nats, db) = stack().await;
    let m = stack.onboard("held").await.expect("onboard");
    // Another customer than `fine`'s, so a contact made for the held invoice would show.
    let held = Draft::invoice("held", 8)
        .customer(900, "held@example.com")
        .retax(dec!(17.5));
    let fine = Draft::invoice("held", 9);
    let held_credit = held.credit_memo(8, &Refund::lines(&[(1, 1)]));
    publish(&stack, &m, &held).await;
    publish(&stack, &m, &held_credit).await;
    publish(&stack, &m, &fine).await;
    let pool = schema(&db, "documents").await;
    // Its credit memo is held with it instead of waiting for an invoice that will not come.
    let reason = wait_row(
        &pool,
        "SELECT reason FROM skipped_documents WHERE document_key = $1",
        &format!("creditmemo:1:{}", held_credit.increment_id()),
    )
    .await;
    assert_eq!(reason, "original_invoice_held");
    let key = format!("invoice:1:{}", held.increment_id());
    let reason = wait_row(
        &pool,
        "SELECT reason FROM skipped_documents WHERE document_key = $1",
        &key,
    )
    .await;
    assert_eq!(reason, "unmapped_tax_rate");
    let detail = wait_row(
        &pool,
        "SELECT detail FROM skipped_documents WHERE document_key = $1",
        &key,
    )
    .await;
    assert!(detail.contains("17.5"), "{detail}");
    // The next invoice of the merchant is not held up behind it.
    let invoices = wait_count(&stack, &m, "sales_invoices", 1).await;
    settle_down().await;
    assert_eq!(invoices.len(), 1);
    assert_eq!(
        invoices[0]["reference"].as_str(),
        Some(fine.increment_id().as_str())
    );
    assert_eq!(dec(&invoices[0]["total_amount"]), fine.grand_total());
    // Nothing of the held one reached Sage; its contact exists only because of `fine`.
    assert_eq!(stack.documents(&m, "contacts").len(), 1);
    let stats = stack.sandbox.inspect().stats_for(&m.business_id);
    assert_eq!(stats.count("POST", "/v3.1/sales_invoices"), 1);
    assert!(stack.documents(&m, "sales_credit_notes").is_empty());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn documents_of_a_new_customer_at_once_make_one_contact() {
    let (stack, _nats, _db) = stack().await;
    let m = stack.onboard("together").await.expect("onboard");
    // Two invoices of the same new customer, published together straight into JetStream.
    let a = Draft::invoice("together", 10)
        .customer(777, "new@example.com")
        .build();
    let b = Draft::invoice("together", 11)
        .customer(777, "new@example.com")
        .build();
    let (ea, eb) = (
        ledger_events::parse(&a.body).unwrap(),
        ledger_events::parse(&b.body).unwrap(),
    );
    let (ra, rb) = tokio::join!(
        stack.publish_direct(&ea, &a.body),
        stack.publish_direct(&eb, &b.body)
    );
    ra.unwrap();
    rb.unwrap();
    // And a burst of contact requests for another new customer, as replicas would send them.
    let order = Draft::invoice("together", 12).customer(778, "burst@example.com");
    let order_json = order.value()["payload"]["order"].clone();
    let asks = (0..8).map(|i| {
        let request = ledger_rpc::EnsureContactRequest {
            merchant: m.id.clone(),
            customer_key: "customer:778".into(),
            currency: "GBP".into(),
            party: json!({ "order": order_json }),
            event_id: format!("burst-{i}"),
            document_total: Some(dec!(10)),
            stream_sequence: None,
            dry_run: false,
        };
        let nats = stack.nats.clone();
        async move {
            ledger_rpc::ask::<_, ledger_rpc::ContactRef>(
                &nats,
                ledger_rpc::ENSURE_CONTACT_SUBJECT,
                &request,
                Duration::from_secs(30),
            )
            .await
            .expect("contact")
        }
    });
    let answers = futures::future::join_all(asks).await;
    assert!(
        answers
            .iter()
            .all(|c| c.contact_id == answers[0].contact_id),
        "{answers:?}"
    );
    assert_eq!(answers[0].reference, "C778GBP");

    let invoices = wait_count(&stack, &m, "sales_invoices", 2).await;
    settle_down().await;
    let contacts = stack.documents(&m, "contacts");
    assert_eq!(contacts.len(), 2, "one contact per customer: {contacts:#?}");
    assert_eq!(invoices[0]["contact"]["id"], invoices[1]["contact"]["id"]);
    for inv in &invoices {
        assert_eq!(dec(&inv["total_amount"]), dec!(73.44));
    }
    assert!(stack.sandbox.inspect().concurrency_violations().is_empty());
    assert!(stack
        .sandbox
        .inspect()
        .duplicate_references(&m.business_id)
        .is_empty());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn customer_saved_updates_every_currency_variant() {
    let (stack, _nats, _db) = stack().await;
    let m = stack.onboard("variants").await.expect("onboard");
    // Customer 412 buys in EUR (the example) and in GBP.
    let eur = Draft::from_template(events::INVOICE_CREATED_EUR, "variants", Some(13));
    let gbp = Draft::invoice("variants", 14).customer(412, "compta@atelier-lune.example");
    publish(&stack, &m, &eur).await;
    publish(&stack, &m, &gbp).await;
    let invoices = wait_count(&stack, &m, "sales_invoices", 2).await;
    for (draft, currency) in [(&eur, "EUR"), (&gbp, "GBP")] {
        let inv = by_reference(&invoices, &draft.increment_id());
        assert_eq!(dec(&inv["total_amount"]), draft.grand_total());
        assert_eq!(inv["currency"]["id"], currency);
    }
    let before = stack.documents(&m, "contacts");
    assert_eq!(before.len(), 2);

    let mut saved = Draft::from_template(events::CUSTOMER_SAVED, "variants", None);
    saved.value_mut()["payload"]["customer"]["addresses"][0]["company"] =
        json!("Atelier Lune Paris SARL");
    saved.value_mut()["payload"]["customer"]["addresses"][0]["city"] = json!("Paris");
    publish(&stack, &m, &saved).await;
    let updated = stack
        .wait_until(WAIT, || {
            stack
                .documents(&m, "contacts")
                .iter()
                .all(|c| c["name"] == "Atelier Lune Paris SARL")
        })
        .await;
    let after = stack.documents(&m, "contacts");
    assert!(updated, "both variants renamed: {after:#?}");
    assert_eq!(after.len(), 2, "updated, not duplicated");
    let mut currencies: Vec<&str> = after
        .iter()
        .map(|c| c["currency"]["id"].as_str().unwrap())
        .collect();
    currencies.sort();
    assert_eq!(currencies, ["EUR", "GBP"]);
    for c in &after {
        assert_eq!(c["main_address"]["city"], "Paris");
        let old = by_id(&before, &c["id"]);
        assert_eq!(c["reference"], old["reference"], "reference kept");
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reference_held_by_a_deleted_contact_is_skipped() {
    let (stack, _nats, _db) = stack().await;
    let m = stack.onboard("reserved").await.expect("onboard");
    // Someone created C318GBP in Sage by hand and deleted it: Sage keeps the reference.
    let sage = stack.sage();
    let created = sage
        .post(
            &m.id,
            "contacts",
            "contact",
            json!({"name": "Old contact", "contact_type_ids": ["CUSTOMER"], "reference": "C318GBP"}),
            None,
        )
        .await
        .expect("create by hand");
    let id = created.id().unwrap().to_string();
    sage.delete(&m.id, &format!("contacts/{id}"), &[])
        .await
        .expect("delete");

    let invoice = Draft::invoice("reserved", 15);
    publish(&stack, &m, &invoice).await;
    let invoices = wait_count(&stack, &m, "sales_invoices", 1).await;
    assert_eq!(dec(&invoices[0]["total_amount"]), invoice.grand_total());
    let contacts = stack.documents(&m, "contacts");
    let live: Vec<&Value> = contacts
        .iter()
        .filter(|c| c["deleted_at"].is_null())
        .collect();
    assert_eq!(live.len(), 1);
    let next = ledger_mapping::contact_reference("customer:318", "GBP", 1);
    assert_eq!(live[0]["reference"].as_str(), Some(next.as_str()));
    assert_ne!(next, "C318GBP");
    assert_eq!(invoices[0]["contact"]["id"], live[0]["id"]);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn product_sync_creates_updates_and_follows_the_setting() {
    let (stack, _nats, db) = stack().await;
    let on = stack.onboard("catalog-on").await.expect("onboard");
    let off = stack.onboard("catalog-off").await.expect("onboard");
    stack
        .put_settings(&on, json!({"product_sync": true}))
        .await
        .unwrap();
    let ledger_lookups = |stack: &Stack| {
        stack
            .sandbox
            .inspect()
            .stats_for(&on.business_id)
            .count("GET", "/v3.1/ledger_accounts")
    };
    // The gateway's own discovery at connect time reads them too.
    let lookups_before = ledger_lookups(&stack);

    let simple = events::product_saved(events::PRODUCT_SIMPLE, "catalog-on", 101, "TOTE-WAX-OLV");
    let virt = events::product_saved(events::PRODUCT_VIRTUAL, "catalog-on", 150, "WARRANTY-2Y");
    let mut configurable = events::product_saved(events::PRODUCT_SIMPLE, "catalog-on", 200, "LSH");
    configurable.value_mut()["payload"]["product"]["type_id"] = json!("configurable");
    publish(&stack, &on, &simple).await;
    publish(&stack, &on, &virt).await;
    publish(&stack, &on, &configurable).await;
    publish(
        &stack,
        &off,
        &events::product_saved(events::PRODUCT_SIMPLE, "catalog-off", 101, "TOTE-WAX-OLV"),
    )
    .await;

    let products = wait_count(&stack, &on, "products", 1).await;
    let services = wait_count(&stack, &on, "services", 1).await;
    let business = stack
        .sandbox
        .inspect()
        .businesses()
        .into_iter()
        .find(|b| b.id == on.business_id)
        .unwrap();
    let product = &products[0];
    assert_eq!(product["item_code"], "TOTE-WAX-OLV");
    assert_eq!(product["description"], "Waxed Canvas Tote - Olive");
    assert_eq!(
        product["purchase_ledger_account"]["id"].as_str(),
        business.ledger_accounts.get("5000").map(String::as_str)
    );
    assert_eq!(
        product["sales_ledger_account"]["id"].as_str(),
        business.ledger_accounts.get("4000").map(String::as_str)
    );
    assert_eq!(services[0]["item_code"], "WARRANTY-2Y");

    let pool = schema(&db, "contacts").await;
    let reason = wait_row(
        &pool,
        "SELECT reason FROM skipped_products WHERE product_key = $1 AND merchant_id = 'catalog-on'",
        "product:200",
    )
    .await;
    assert_eq!(reason, "composite_product");
    let reason = wait_row(&pool, "SELECT reason FROM skipped_products WHERE product_key = $1 AND merchant_id = 'catalog-off'", "product:101").await;
    assert_eq!(reason, "product_sync_disabled");

    // A later save updates the same Sage product.
    let mut renamed =
        events::product_saved(events::PRODUCT_SIMPLE, "catalog-on", 101, "TOTE-WAX-OLV");
    renamed.value_mut()["payload"]["product"]["name"] = json!("Waxed Canvas Tote - Forest");
    renamed.value_mut()["payload"]["product"]["updated_at"] = json!("2025-02-02 08:00:00");
    publish(&stack, &on, &renamed).await;
    let updated = stack
        .wait_until(WAIT, || {
            stack
                .documents(&on, "products")
                .first()
                .is_some_and(|p| p["description"] == "Waxed Canvas Tote - Forest")
        })
        .await;
    assert!(
        updated,
        "product updated: {:#?}",
        stack.documents(&on, "products")
    );
    settle_down().await;
    assert_eq!(
        stack.documents(&on, "products").len(),
        1,
        "updated, not duplicated"
    );
    assert_eq!(stack.documents(&on, "services").len(), 1);
    assert!(
        stack.documents(&off, "products").is_empty(),
        "sync off: nothing posted"
    );
    let stats = stack.sandbox.inspect().stats_for(&on.business_id);
    assert_eq!(stats.count("POST", "/v3.1/products"), 1);
    assert_eq!(stats.count("PUT", "/v3.1/products/{id}"), 1);
    assert_eq!(
        ledger_lookups(&stack) - lookups_before,
        1,
        "purchase ledger looked up once, then cached"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn b2c_consolidation_puts_first_low_value_guest_orders_on_one_contact() {
    let (stack, _nats, _db) = stack().await;
    let m = stack.onboard("b2c").await.expect("onboard");
    stack
        .put_settings(
            &m,
            json!({"b2c_consolidation": {"enabled": true, "thresholds": {"GBP": "50.00"}}}),
        )
        .await
        .unwrap();
    let guest = |n: u64, email: &str, first: &str| {
        Draft::from_template(events::INVOICE_CREATED_GUEST, "b2c", Some(n))
            .guest(email, first, "Guest")
    };
    let sam = guest(20, "sam@example.com", "Sam");
    let kim = guest(21, "kim@example.com", "Kim");
    let firm = guest(22, "buyer@firm.example", "Pat").company(Some("Firm Ltd"));
    let sam_again = guest(23, "sam@example.com", "Sam");
    let big = Draft::invoice("b2c", 24).guest("lee@example.com", "Lee", "Guest");
    let registered = Draft::invoice("b2c", 25);
    assert_eq!(sam.grand_total(), dec!(48.00));
    assert!(big.grand_total() > dec!(50));
    let all = [&sam, &kim, &firm, &sam_again, &big, &registered];
    for draft in all {
        publish(&stack, &m, draft).await;
    }
    // Sam's consolidated order is refunded: the credit note follows its invoice's contact.
    let refund = sam.credit_memo(20, &Refund::lines(&[(0, 1)]).online("re_sam"));
    publish(&stack, &m, &refund).await;

    let invoices = wait_count(&stack, &m, "sales_invoices", all.len()).await;
    wait_count(&stack, &m, "contact_payments", 1).await;
    settle_down().await;
    let notes = stack.documents(&m, "sales_credit_notes");
    assert_eq!(notes.len(), 1);
    let contacts = stack.documents(&m, "contacts");
    let fallback = contacts
        .iter()
        .find(|c| c["reference"] == "WEBGBP")
        .expect("fallback contact");
    assert_eq!(fallback["name"], "Web sales GBP");
    let contact_of =
        |d: &Draft| by_reference(&invoices, &d.increment_id())["contact"]["id"].clone();
    assert_eq!(contact_of(&sam), fallback["id"]);
    assert_eq!(
        contact_of(&kim),
        fallback["id"],
        "two guests, one fallback contact"
    );
    for individual in [&firm, &sam_again, &big, &registered] {
        assert_ne!(
            contact_of(individual),
            fallback["id"],
            "{} stays individual",
            individual.increment_id()
        );
    }
    assert_ne!(contact_of(&sam_again), contact_of(&firm));
    // Fallback + Pat (B2B) + Sam (repeat) + Lee (above threshold) + customer 318.
    assert_eq!(contacts.len(), 5, "{contacts:#?}");
    for draft in all {
        assert_eq!(
            dec(&by_reference(&invoices, &draft.increment_id())["total_amount"]),
            draft.grand_total()
        );
    }
    assert_eq!(notes[0]["contact"]["id"], fallback["id"]);
    assert_eq!(dec(&notes[0]["total_amount"]), refund.grand_total());
    assert_eq!(dec(&notes[0]["outstanding_amount"]), Decimal::ZERO);
    stack.stop().await;
}

/// A summer sale just after midnight in London is dated on the London day in Sage (the UTC day
/// would put it in the previous month and VAT quarter), and an unknown zone is refused when
/// the settings are saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn documents_are_dated_on_the_books_calendar_day() {
    let (stack, _nats, _db) = stack().await;
    let merchant = stack.onboard("london").await.expect("onboard");
    let refused = stack
        .put_settings(&merchant, json!({"timezone": "Europe/Atlantis"}))
        .await;
    assert!(refused.is_err(), "an unknown time zone was stored");
    stack
        .put_settings(
            &merchant,
            json!({"timezone": "Europe/London", "due_days": 14}),
        )
        .await
        .expect("settings");

    let mut draft = Draft::invoice("london", 1);
    draft.value_mut()["payload"]["invoice"]["created_at"] = json!("2025-06-30 23:30:00");
    publish(&stack, &merchant, &draft).await;
    let invoice = wait_count(&stack, &merchant, "sales_invoices", 1)
        .await
        .remove(0);
    assert_eq!(invoice["date"], "2025-07-01");
    assert_eq!(invoice["due_date"], "2025-07-15");
    assert_eq!(dec(&invoice["total_amount"]), draft.grand_total());
    stack.stop().await;
}
