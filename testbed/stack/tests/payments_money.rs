//! Money coming in, end to end through the gateway, NATS, the real services and the Sage
//! sandbox: Sage's base currency is checked (a EUR-base website on a GBP business is held,
//! naming both), a foreign-currency receipt carries the base amount received so Sage books
//! the realised exchange difference, receipts allocate what is outstanding (the rest stays
//! on account) from the engine's own figure when it is exact (a plain paid invoice takes two
//! document calls; a credited one is allocated what the credit left) and from Sage's when Sage
//! refuses it (an invoice paid in Sage by hand), a held invoice keeps its payment and the payment lands by itself
//! when the invoice is released, a missing bank account holds the payment instead of
//! dead-lettering it, settings refuse an account of another currency unless it takes foreign
//! money, discovery skips archived, credit-card and loan accounts, and card money lands in the
//! gateway's clearing account.

mod common;

use common::{no_dead_letters, publish, schema, wait_count, wait_skip_as};

use std::time::Duration;

use chrono::NaiveDate;
use ledger_stack::events::{self, Draft, Refund};
use ledger_stack::{Merchant, Stack};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

fn dec(v: &Value) -> Decimal {
    ledger_stack::events::amount(v)
}

async fn replay(stack: &Stack, service: &str, merchant: &Merchant) {
    ledger_runtime::replay::request(
        &stack.nats,
        service,
        &ledger_runtime::replay::Command {
            merchant: merchant.id.clone(),
            since: None,
            until: None,
            dry_run: false,
            per_event_lookups: false,
            limit: None,
        },
        Duration::from_secs(120),
        |_| {},
    )
    .await
    .expect("replay");
}

fn receipts(stack: &Stack, merchant: &Merchant) -> Vec<Value> {
    stack
        .documents(merchant, "contact_payments")
        .into_iter()
        .filter(|p| p["transaction_type"]["id"] == "CUSTOMER_RECEIPT")
        .collect()
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eur_base_website_and_its_payment_are_held_naming_both_currencies() {
    let (stack, _nats, db) = common::stack("money-base", 4).await;
    let m = stack.onboard("eurbase").await.expect("onboard");
    // Discovery read the business's base currency at connect.
    let settings = stack.put_settings(&m, json!({})).await.unwrap();
    assert_eq!(settings["sage_base_currency"], "GBP");
    // The website keeps its books in EUR: base currency EUR, documents in EUR at rate 1.
    let mut invoice = Draft::from_template(events::INVOICE_CREATED_EUR, "eurbase", Some(1))
        .payment_method("stripe_payments");
    for part in ["invoice", "order"] {
        invoice.value_mut()["payload"][part]["base_currency_code"] = json!("EUR");
    }
    let paid = invoice.paid();
    publish(&stack, &m, &invoice).await;
    publish(&stack, &m, &paid).await;
    let key = format!(
        "invoice:{}:{}",
        invoice.value()["store_id"],
        invoice.increment_id()
    );
    let documents = schema(&db, "documents").await;
    let detail = wait_skip_as(
        &documents,
        "skipped_documents",
        &key,
        "base_currency_mismatch",
    )
    .await;
    assert!(
        detail.contains("EUR") && detail.contains("GBP"),
        "both currencies named: {detail}"
    );
    let payments = schema(&db, "payments").await;
    let detail = wait_skip_as(
        &payments,
        "skipped_payments",
        &key,
        "base_currency_mismatch",
    )
    .await;
    assert!(detail.contains("EUR") && detail.contains("GBP"), "{detail}");
    assert!(stack.documents(&m, "sales_invoices").is_empty());
    assert!(stack.documents(&m, "contact_payments").is_empty());
    assert!(stack.documents(&m, "contacts").is_empty());
    no_dead_letters(&stack, &m).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eur_receipt_at_the_capture_rate_books_the_realised_gain_in_a_clearing_account() {
    let (stack, _nats, _db) = common::stack("money-fx", 4).await;
    let m = stack.onboard("fxgain").await.expect("onboard");
    let invoice = Draft::from_template(events::INVOICE_CREATED_EUR, "fxgain", Some(5))
        .payment_method("stripe_payments");
    let mut paid = invoice.paid();
    // €70.20 invoiced at Magento's rate 1.17 = £60.00; the gateway settled the capture at
    // its own rate, and Magento recorded £60.45 received.
    paid.value_mut()["payload"]["payment"]["base_amount_paid"] = json!(60.45);
    publish(&stack, &m, &invoice).await;
    publish(&stack, &m, &paid).await;
    let invoices = wait_count(&stack, &m, "sales_invoices", 1).await;
    assert_eq!(dec(&invoices[0]["base_currency_total_amount"]), dec!(60.00));
    let found = stack
        .wait_until(WAIT, || receipts(&stack, &m).len() == 1)
        .await;
    assert!(found, "no receipt");
    let receipt = &receipts(&stack, &m)[0];
    assert_eq!(dec(&receipt["total_amount"]), dec!(70.20));
    assert_eq!(dec(&receipt["base_currency_total_amount"]), dec!(60.45));
    // 60.45 / 70.20 = 0.861111…, kept to 10 dp.
    assert_eq!(dec(&receipt["exchange_rate"]), dec!(0.8611111111));
    // Realised: 60.45 received − 60.00 invoiced (70.20 × 0.854701 = 60.0000102 → 60.00) = 0.45.
    assert_eq!(dec(&receipt["realised_exchange_gain_loss"]), dec!(0.45));
    assert_eq!(
        receipt["allocated_artefacts"][0]["artefact"]["id"],
        invoices[0]["id"]
    );
    assert_eq!(
        dec(&receipt["allocated_artefacts"][0]["amount"]),
        dec!(70.20)
    );
    // Card money: the gateway's EUR clearing account, created for it, not the EUR current
    // account.
    assert_eq!(
        receipt["bank_account"]["displayed_as"],
        "Clearing stripe_payments EUR"
    );
    let business = stack
        .sandbox
        .inspect()
        .businesses()
        .into_iter()
        .find(|b| b.id == m.business_id)
        .unwrap();
    assert_ne!(
        receipt["bank_account"]["id"].as_str(),
        business.bank_accounts.get("EUR").map(String::as_str)
    );
    let invoices = stack.documents(&m, "sales_invoices");
    assert_eq!(dec(&invoices[0]["outstanding_amount"]), dec!(0));
    no_dead_letters(&stack, &m).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receipt_after_a_credit_note_allocates_what_sage_says_is_outstanding() {
    let (stack, _nats, _db) = common::stack("money-after", 4).await;
    let m = stack.onboard("after").await.expect("onboard");
    // A purchase order: the credit memo for a returned item is allocated to the invoice
    // (a paid-later method), so Sage's outstanding amount drops below Magento's grand total.
    let invoice = Draft::invoice("after", 2).payment_method("purchaseorder");
    let credit = invoice.credit_memo(2, &Refund::lines(&[(1, 1)]));
    publish(&stack, &m, &invoice).await;
    publish(&stack, &m, &credit).await;
    wait_count(&stack, &m, "contact_allocations", 1).await;
    // The customer then pays the whole invoice by card.
    let paid = invoice.paid().payment_method("stripe_payments");
    publish(&stack, &m, &paid).await;
    let found = stack
        .wait_until(WAIT, || receipts(&stack, &m).len() == 1)
        .await;
    assert!(found, "no receipt");
    let receipt = &receipts(&stack, &m)[0];
    // Magento's grand total is paid; Sage allocates only what is outstanding (grand total
    // less the credit memo's grand total), the rest stays on account.
    let outstanding = invoice.grand_total() - credit.grand_total();
    assert_eq!(dec(&receipt["total_amount"]), invoice.grand_total());
    assert_eq!(
        dec(&receipt["allocated_artefacts"][0]["amount"]),
        outstanding
    );
    assert_eq!(
        dec(&receipt["payment_on_account"]["total_amount"]),
        credit.grand_total()
    );
    let invoices = stack.documents(&m, "sales_invoices");
    assert_eq!(dec(&invoices[0]["outstanding_amount"]), dec!(0));
    no_dead_letters(&stack, &m).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payment_of_a_held_invoice_lands_by_itself_when_the_invoice_is_released() {
    std::env::set_var("LEDGER_SETTINGS_TTL_SECS", "0");
    let (stack, _nats, db) = common::stack("money-held", 4).await;
    let m = stack.onboard("released").await.expect("onboard");
    // The books are locked to 31 March 2025; the invoice of 14 March is held (the default).
    stack
        .sandbox
        .set_financial_dates(&m.business_id, day("2020-01-01"), Some(day("2025-03-31")));
    let invoice = Draft::invoice("released", 3);
    let paid = invoice.paid();
    publish(&stack, &m, &invoice).await;
    let key = format!("invoice:1:{}", invoice.increment_id());
    let documents = schema(&db, "documents").await;
    wait_skip_as(&documents, "skipped_documents", &key, "period_locked").await;
    publish(&stack, &m, &paid).await;
    // The payment is recorded `invoice_held`, never dead-lettered, with its event's place in
    // the log so it can be handled again.
    let payments = schema(&db, "payments").await;
    let detail = wait_skip_as(&payments, "skipped_payments", &key, "invoice_held").await;
    assert!(detail.contains("period_locked"), "{detail}");
    let sequence: Option<i64> =
        sqlx::query_scalar("SELECT stream_sequence FROM skipped_payments WHERE document_key = $1")
            .bind(&key)
            .fetch_one(&payments)
            .await
            .unwrap();
    assert!(sequence.is_some());
    no_dead_letters(&stack, &m).await;
    assert!(receipts(&stack, &m).is_empty());

    // Released: the merchant moves locked documents to the first open day and the operator
    // replays the documents service only. The payment follows by itself.
    stack
        .put_settings(&m, json!({"locked_period": "move_to_first_open_day"}))
        .await
        .unwrap();
    replay(&stack, "documents", &m).await;
    let invoices = wait_count(&stack, &m, "sales_invoices", 1).await;
    assert_eq!(invoices[0]["date"], "2025-04-01");
    let found = stack
        .wait_until(WAIT, || receipts(&stack, &m).len() == 1)
        .await;
    assert!(found, "the held payment never landed");
    let receipt = &receipts(&stack, &m)[0];
    assert_eq!(receipt["date"], "2025-04-01");
    assert_eq!(dec(&receipt["total_amount"]), invoice.grand_total());
    assert_eq!(
        receipt["allocated_artefacts"][0]["artefact"]["id"],
        invoices[0]["id"]
    );
    // Committed just after Sage answered: wait for it.
    let mut left = -1i64;
    for _ in 0..200 {
        left = sqlx::query_scalar("SELECT count(*) FROM skipped_payments")
            .fetch_one(&payments)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(left, 0, "the released payment is no longer listed as held");
    let still_held: i64 = sqlx::query_scalar("SELECT count(*) FROM skipped_documents")
        .fetch_one(&documents)
        .await
        .unwrap();
    assert_eq!(
        still_held, 0,
        "the released invoice is no longer listed as held"
    );
    no_dead_letters(&stack, &m).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_without_a_bank_account_is_held_then_posted_after_the_fix() {
    std::env::set_var("LEDGER_SETTINGS_TTL_SECS", "0");
    let (stack, _nats, db) = common::stack("money-nobank", 4).await;
    let m = stack.onboard("nobank").await.expect("onboard");
    let settings = stack.put_settings(&m, json!({})).await.unwrap();
    let gbp = settings["bank_accounts"]["GBP"].clone();
    stack
        .put_settings(&m, json!({"bank_accounts": {}, "clearing_accounts": "off"}))
        .await
        .unwrap();
    let invoice = Draft::invoice("nobank", 4);
    publish(&stack, &m, &invoice).await;
    publish(&stack, &m, &invoice.paid()).await;
    let key = format!("invoice:1:{}", invoice.increment_id());
    let payments = schema(&db, "payments").await;
    let detail = wait_skip_as(&payments, "skipped_payments", &key, "no_bank_account").await;
    assert!(detail.contains("GBP"), "{detail}");
    no_dead_letters(&stack, &m).await;

    stack
        .put_settings(&m, json!({"bank_accounts": {"GBP": gbp}}))
        .await
        .unwrap();
    replay(&stack, "payments", &m).await;
    let found = stack
        .wait_until(WAIT, || receipts(&stack, &m).len() == 1)
        .await;
    assert!(found, "no receipt after the fix");
    assert_eq!(receipts(&stack, &m)[0]["bank_account"]["id"], gbp);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn discovery_and_settings_keep_money_in_accounts_of_its_currency() {
    let (stack, _nats, _db) = common::stack("money-banks", 4).await;
    let m = stack.onboard("banks").await.expect("onboard");
    let business = stack
        .sandbox
        .inspect()
        .businesses()
        .into_iter()
        .find(|b| b.id == m.business_id)
        .unwrap();
    let settings = stack.put_settings(&m, json!({})).await.unwrap();
    // The sandbox lists an archived current account, a credit card and a loan (all GBP)
    // before the real current account: discovery picks the active current account.
    assert_eq!(
        settings["bank_accounts"]["GBP"],
        business.bank_accounts["GBP"]
    );
    let banks = stack.documents(&m, "bank_accounts");
    for bank in &banks {
        let kind = bank["bank_account_type"]["id"].as_str().unwrap();
        if kind != "CHECKING" || bank["is_active"] == false {
            assert_ne!(settings["bank_accounts"]["GBP"], bank["id"], "{bank}");
        }
    }
    let gbp = business.bank_accounts["GBP"].clone();
    assert_eq!(settings["bank_account_currencies"][&gbp], "GBP");

    // A GBP account mapped for EUR money is refused...
    let refused = stack
        .put_settings(
            &m,
            json!({"payment_methods": {"stripe_payments": {"payment_method_id": "CREDIT_DEBIT", "bank_account_ids": {"EUR": gbp}}}}),
        )
        .await;
    assert!(refused.is_err(), "a GBP account was mapped for EUR");
    // ...unless the merchant says it takes foreign money.
    stack
        .put_settings(
            &m,
            json!({
                "foreign_money_bank_accounts": [gbp],
                "payment_methods": {"stripe_payments": {"payment_method_id": "CREDIT_DEBIT", "bank_account_ids": {"EUR": gbp}}}
            }),
        )
        .await
        .expect("an account taking foreign money is accepted");
    // Then a EUR receipt lands there at the base amount received (Magento's £60.00).
    let invoice = Draft::from_template(events::INVOICE_CREATED_EUR, "banks", Some(6))
        .payment_method("stripe_payments");
    publish(&stack, &m, &invoice).await;
    publish(&stack, &m, &invoice.paid()).await;
    let found = stack
        .wait_until(WAIT, || receipts(&stack, &m).len() == 1)
        .await;
    assert!(found, "no receipt");
    let receipt = &receipts(&stack, &m)[0];
    assert_eq!(receipt["bank_account"]["id"], json!(gbp));
    assert_eq!(dec(&receipt["base_currency_total_amount"]), dec!(60.00));
    no_dead_letters(&stack, &m).await;
    stack.stop().await;
}

/// The merchant's calls to Sage about sales invoices and receipts, in order, as
/// "METHOD path" (the sandbox's route templates).
fn document_calls(stack: &Stack, merchant: &Merchant) -> Vec<String> {
    stack
        .sandbox
        .inspect()
        .calls(Some(&merchant.business_id), usize::MAX)
        .into_iter()
        .filter(|c| {
            c.path.starts_with("/v3.1/sales_invoices")
                || c.path.starts_with("/v3.1/contact_payments")
        })
        .map(|c| format!("{} {}", c.method, c.path))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plain_paid_invoice_takes_two_document_calls() {
    let (stack, _nats, _db) = common::stack("money-two-calls", 4).await;
    let m = stack.onboard("twocalls").await.expect("onboard");
    let invoice = Draft::invoice("twocalls", 30).payment_method("stripe_payments");
    publish(&stack, &m, &invoice).await;
    wait_count(&stack, &m, "sales_invoices", 1).await;
    publish(&stack, &m, &invoice.paid()).await;
    let found = stack
        .wait_until(WAIT, || receipts(&stack, &m).len() == 1)
        .await;
    assert!(found, "no receipt");
    no_dead_letters(&stack, &m).await;
    // Nothing but the invoice was posted against it, so the engine knows it owes its total:
    // the invoice and its receipt, and no read of the invoice in between.
    assert_eq!(
        document_calls(&stack, &m),
        vec![
            "POST /v3.1/sales_invoices".to_string(),
            "POST /v3.1/contact_payments".to_string()
        ]
    );
    let receipt = &receipts(&stack, &m)[0];
    assert_eq!(dec(&receipt["total_amount"]), dec!(73.44));
    assert_eq!(
        dec(&receipt["allocated_artefacts"][0]["amount"]),
        dec!(73.44)
    );
    let invoices = stack.documents(&m, "sales_invoices");
    assert_eq!(dec(&invoices[0]["outstanding_amount"]), dec!(0));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_credited_invoice_paid_later_allocates_what_the_engine_credited_it_without_asking() {
    let (stack, _nats, _db) = common::stack("money-credited", 4).await;
    let m = stack.onboard("credited").await.expect("onboard");
    // A purchase order: the credit memo is allocated to the invoice.
    let invoice = Draft::invoice("credited", 31).payment_method("purchaseorder");
    // The fob (line 1): 12.50 − 1.25 discount + 2.25 VAT = 13.50; shipping 4.95 + 0.99 VAT
    // = 5.94; an adjustment refund of 5.00: 24.44 credited.
    let credit = invoice.credit_memo(
        31,
        &Refund::lines(&[(1, 1)])
            .with_shipping()
            .adjustments(dec!(5), dec!(0)),
    );
    publish(&stack, &m, &invoice).await;
    publish(&stack, &m, &credit).await;
    wait_count(&stack, &m, "contact_allocations", 1).await;
    let invoices = stack.documents(&m, "sales_invoices");
    assert_eq!(dec(&invoices[0]["outstanding_amount"]), dec!(49.00));
    let before = document_calls(&stack, &m).len();
    // The customer then pays the whole 73.44 by card.
    publish(
        &stack,
        &m,
        &invoice.paid().payment_method("stripe_payments"),
    )
    .await;
    let found = stack
        .wait_until(WAIT, || receipts(&stack, &m).len() == 1)
        .await;
    assert!(found, "no receipt");
    no_dead_letters(&stack, &m).await;
    let receipt = &receipts(&stack, &m)[0];
    // 73.44 − 24.44 = 49.00 allocated; the 24.44 the credit note took stays on account.
    assert_eq!(dec(&receipt["total_amount"]), dec!(73.44));
    assert_eq!(
        dec(&receipt["allocated_artefacts"][0]["amount"]),
        dec!(49.00)
    );
    assert_eq!(
        dec(&receipt["payment_on_account"]["total_amount"]),
        dec!(24.44)
    );
    let invoices = stack.documents(&m, "sales_invoices");
    assert_eq!(dec(&invoices[0]["outstanding_amount"]), dec!(0));
    // The documents service said exactly what it allocated: the receipt was the only call.
    assert_eq!(
        document_calls(&stack, &m)[before..].to_vec(),
        vec!["POST /v3.1/contact_payments".to_string()]
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invoice_paid_in_sage_by_hand_still_gets_its_receipt_with_what_sage_allows() {
    let (stack, _nats, db) = common::stack("money-by-hand", 4).await;
    let m = stack.onboard("byhand").await.expect("onboard");
    let invoice = Draft::invoice("byhand", 32).payment_method("stripe_payments");
    publish(&stack, &m, &invoice).await;
    let invoices = wait_count(&stack, &m, "sales_invoices", 1).await;
    // A bookkeeper records 60.00 against the invoice in Sage by hand: Sage's outstanding
    // amount is 13.44, which the engine cannot know.
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
    publish(&stack, &m, &invoice.paid()).await;
    let ours = |stack: &Stack| -> Vec<Value> {
        receipts(stack, &m)
            .into_iter()
            .filter(|r| dec(&r["total_amount"]) == dec!(73.44))
            .collect()
    };
    let found = stack.wait_until(WAIT, || ours(&stack).len() == 1).await;
    assert!(found, "no receipt");
    no_dead_letters(&stack, &m).await;
    let receipt = &ours(&stack)[0];
    // Sage refused 73.44 against the invoice; read again, 73.44 − 60.00 = 13.44 is allocated
    // and the other 60.00 stays on the customer's account.
    assert_eq!(
        dec(&receipt["allocated_artefacts"][0]["amount"]),
        dec!(13.44)
    );
    assert_eq!(
        dec(&receipt["payment_on_account"]["total_amount"]),
        dec!(60.00)
    );
    let invoices = stack.documents(&m, "sales_invoices");
    assert_eq!(dec(&invoices[0]["outstanding_amount"]), dec!(0));
    // The refused request, one read of the invoice, the receipt mapped again.
    let calls = document_calls(&stack, &m);
    assert_eq!(
        calls[calls.len() - 3..].to_vec(),
        vec![
            "POST /v3.1/contact_payments".to_string(),
            "GET /v3.1/sales_invoices/{id}".to_string(),
            "POST /v3.1/contact_payments".to_string()
        ]
    );
    // Both steps of the event end done with the receipt's id.
    let payments = schema(&db, "payments").await;
    let steps: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT step, state, sage_id FROM sync_steps WHERE step LIKE 'customer_receipt%' ORDER BY step",
    )
    .fetch_all(&payments)
    .await
    .unwrap();
    let id = receipt["id"].as_str().map(str::to_string);
    assert_eq!(
        steps,
        vec![
            (
                "customer_receipt".to_string(),
                "done".to_string(),
                id.clone()
            ),
            ("customer_receipt#1".to_string(), "done".to_string(), id),
        ]
    );
    stack.stop().await;
}
