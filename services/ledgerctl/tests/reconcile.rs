//! `ledgerctl reconcile` against a running engine: balanced books say so; a document Sage
//! refused shows as missing until it is fixed and retried; a copy entered in Sage by hand
//! shows as a duplicate, and a manual entry as not from Magento.

mod common;

use std::time::Duration;

use ledger_runtime::dead_letters::Answer;
use ledger_stack::{events, Stack, StackOptions};
use ledger_testkit::{TestDb, TestNats};
use serde_json::{json, Value};

async fn reconcile(stack: &Stack, nats: &str, merchant: &str) -> (bool, String) {
    let base = stack.sandbox.api_base_url();
    common::ledgerctl(
        &["--nats", nats, "reconcile", "--merchant", merchant],
        &[("SAGE_API_BASE_URL", base.as_str())],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconcile_finds_what_is_missing_doubled_or_foreign_in_sage() {
    std::env::set_var("LEDGER_SETTINGS_TTL_SECS", "0");
    let nats = TestNats::start().await.unwrap();
    let db = TestDb::create().await.unwrap();
    let stack = Stack::start(StackOptions::new(nats.url(), db.url()))
        .await
        .unwrap();
    let merchant = stack.onboard("books").await.unwrap();
    for n in 1..=3 {
        let event = events::invoice_created("books", n);
        assert_eq!(
            stack.post_event(&merchant, &event.body).await.unwrap().0,
            202
        );
    }
    assert!(
        stack
            .wait_until(Duration::from_secs(30), || stack
                .documents(&merchant, "sales_invoices")
                .len()
                == 3)
            .await
    );
    let (ok, out) = reconcile(&stack, &nats.url(), "books").await;
    assert!(ok, "{out}");
    assert!(
        out.contains("documents=3 matched=3 missing=0 duplicate=0 mismatch=0 not_from_magento=0"),
        "{out}"
    );
    // It shows how far it has got as it goes (on stderr, so stdout stays the report).
    for step in [
        "reconcile books: read 3/3 events from the log",
        "reconcile books: listed 3/3 invoices in Sage",
        "reconcile books: listed 0/0 credit notes in Sage",
        "reconcile books: checked 3/3 documents against 3 in Sage",
    ] {
        assert!(out.contains(step), "{step}: {out}");
    }
    let log = out.find("events from the log").unwrap();
    assert!(
        log < out.find("invoices in Sage").unwrap(),
        "in order: {out}"
    );

    // Sage refuses a fourth invoice (a ledger account it does not know): missing in Sage.
    let real_account = stack.break_sales_ledger_account(&merchant).await.unwrap();
    let refused = events::invoice_created("books", 4);
    assert_eq!(
        stack.post_event(&merchant, &refused.body).await.unwrap().0,
        202
    );
    let dead = stack
        .wait_for_dead_letters("documents", "books")
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    // A fifth is held: its 17.5 % rate is not in the merchant's tax map.
    let held = events::Draft::invoice("books", 5)
        .customer(901, "held@example.com")
        .retax(rust_decimal_macros::dec!(17.5));
    assert_eq!(
        stack
            .post_event(&merchant, &held.build().body)
            .await
            .unwrap()
            .0,
        202
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Someone keys a copy of invoice 2, and a sale of their own, into Sage by hand.
    let sage = stack.sage();
    let invoice_two = stack
        .documents(&merchant, "sales_invoices")
        .into_iter()
        .find(|i| i["reference"] == "000100002")
        .unwrap();
    let manual = |reference: &str| -> Value {
        json!({
            "contact_id": invoice_two["contact"]["id"],
            "date": invoice_two["date"],
            "reference": reference,
            "invoice_lines": [{
                "description": "Keyed in by hand",
                "ledger_account_id": real_account,
                "quantity": "1",
                "unit_price": "10.00",
                "tax_rate_id": "GB_NO_TAX",
            }],
        })
    };
    for reference in ["000100002", "MANUAL-7"] {
        sage.post(
            "books",
            "sales_invoices",
            "sales_invoice",
            manual(reference),
            None,
        )
        .await
        .unwrap();
    }

    let (ok, out) = reconcile(&stack, &nats.url(), "books").await;
    assert!(!ok, "unbalanced books must fail: {out}");
    assert!(
        out.contains("documents=5 matched=2 missing=2 duplicate=1 mismatch=0 not_from_magento=1"),
        "{out}"
    );
    // Each missing document says why: refused by Sage (naming the field), or held.
    let line = |number: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("MISSING    Invoice {number}")))
            .unwrap_or_else(|| panic!("{number} missing in {out}"))
            .to_string()
    };
    assert!(line("000100004").contains("(refused: sage."), "{out}");
    assert!(line("000100004").contains("ledger_account_id"), "{out}");
    assert!(
        line("000100005").contains("(held: unmapped_tax_rate"),
        "{out}"
    );
    assert!(out.contains("DUPLICATE  Invoice 000100002"), "{out}");
    assert!(out.contains("NOT FROM MAGENTO  Invoice MANUAL-7"), "{out}");

    // Fixed and retried: the refused invoice is in Sage now.
    stack
        .put_settings(&merchant, json!({"sales_ledger_account_id": real_account}))
        .await
        .unwrap();
    // Through the operator's command, which retries in batches and says how far it got.
    let (ok, out) = common::ledgerctl(
        &[
            "--nats",
            &nats.url(),
            "dead-letters",
            "retry",
            "--service",
            "documents",
            "--merchant",
            "books",
        ],
        &[],
    )
    .await;
    assert!(ok, "{out}");
    assert!(
        out.contains("documents: retried 1/1 (this batch: 1 ok, 0 failed)"),
        "{out}"
    );
    let json_start = out.find('{').expect("the results as JSON");
    let retried: Answer = serde_json::Deserializer::from_str(&out[json_start..])
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    let Answer::Retried { results } = retried else {
        panic!("{out}")
    };
    assert_eq!(results.len(), 1, "{out}");
    assert_eq!(results[0].id, dead[0].id);
    assert_eq!(results[0].outcome, "applied", "{out}");
    let (_, out) = reconcile(&stack, &nats.url(), "books").await;
    assert!(
        out.contains("documents=5 matched=3 missing=1 duplicate=1 mismatch=0 not_from_magento=1"),
        "{out}"
    );
    stack.stop().await;
}
