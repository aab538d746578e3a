//! Credit and re-issue from the portal, in headless Chromium, through NATS and the Sage
//! sandbox: two zero-rated invoices land at the Sage rate GB_ZERO, the second one paid. The
//! merchant remaps 0 % to GB_EXEMPT; the preview flags both as posted differently, to be saved
//! first. After saving, the preview offers "Credit and re-issue" for both. The paid one is
//! refused with the reason; the other is confirmed and Sage gets one credit note for its full
//! amount, set against it, and one new invoice at GB_EXEMPT with the reference `-R1`,
//! cent-exact. Asking again, replaying the form, a form without the session's CSRF token or
//! for another merchant make nothing new, and a later credit memo of the Magento invoice is set
//! against the re-issued Sage invoice.

mod common;

use common::portal::{press, settings_csrf, sign_in, status_text};
use common::stores::secured_stack;
use common::{by_reference, dec, publish, wait_count};
use ledger_stack::events::{Draft, Refund};
use ledger_testkit::browser::Browser;
use rust_decimal_macros::dec;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invoice_posted_under_an_old_tax_mapping_is_credited_and_reissued_once() {
    std::env::set_var("LEDGER_SETTINGS_TTL_SECS", "3600");
    let (stack, _nats, _db) = secured_stack("portal-reissue", 300).await;
    let merchant = stack.onboard("reissue-shop").await.unwrap();
    let other = stack.onboard("reissue-other").await.unwrap();
    let zero_rated = json!({"tax_rates": [
        {"percent": "20", "tax_rate_id": "GB_STANDARD"},
        {"percent": "0", "tax_rate_id": "GB_ZERO"}
    ]});
    stack
        .put_settings(&merchant, zero_rated.clone())
        .await
        .unwrap();
    stack.put_settings(&other, zero_rated).await.unwrap();
    // Invoice 1 on account (purchase order), invoice 2 paid; both zero-rated. By hand: nets
    // 45.00 and 11.25 (after the 6.25 discount) and shipping 4.95, no VAT: 61.20 each.
    let first = Draft::invoice("reissue-shop", 1)
        .payment_method("purchaseorder")
        .retax(dec!(0));
    let second = Draft::invoice("reissue-shop", 2).retax(dec!(0));
    publish(&stack, &merchant, &first).await;
    publish(&stack, &merchant, &second).await;
    publish(&stack, &merchant, &second.paid()).await;
    publish(
        &stack,
        &other,
        &Draft::invoice("reissue-other", 1)
            .payment_method("purchaseorder")
            .retax(dec!(0)),
    )
    .await;
    let invoices = wait_count(&stack, &merchant, "sales_invoices", 2).await;
    wait_count(&stack, &merchant, "contact_payments", 1).await;
    wait_count(&stack, &other, "sales_invoices", 1).await;
    let original = by_reference(&invoices, &first.increment_id()).clone();
    assert_eq!(dec(&original["total_amount"]), dec!(61.20));
    for line in original["invoice_lines"].as_array().unwrap() {
        assert_eq!(line["tax_rate"]["id"], "GB_ZERO", "{line:#}");
    }
    let first_key = format!("invoice:1:{}", first.increment_id());
    let second_key = format!("invoice:1:{}", second.increment_id());

    // The merchant maps 0 % to GB_EXEMPT and previews: both invoices are flagged, to be saved
    // before they can be re-issued.
    let browser = Browser::start().await.expect("headless Chromium");
    sign_in(&stack, &browser, "reissue-shop").await;
    press(&browser, "#settings").await;
    browser.wait_for("#refresh").await.unwrap();
    press(&browser, "#refresh").await;
    assert!(status_text(&browser).await.contains("refreshed"));
    press(&browser, "#tax_rate_1 option[value=GB_EXEMPT]").await;
    press(&browser, "#preview").await;
    browser.wait_for("#preview-summary").await.unwrap();
    let flagged = browser
        .find(&format!(
            "tr[data-preview='{first_key}'][data-correct=true] [data-save-first]"
        ))
        .await
        .expect("flagged, to be saved first");
    assert!(browser.text(&flagged).await.unwrap().contains("save"));
    assert!(browser.find_all("[data-reissue]").await.unwrap().is_empty());

    // Saved: the preview (no edits) now offers "Credit and re-issue" for both.
    press(&browser, "a[href='/portal/settings']").await;
    browser.wait_for("#refresh").await.unwrap();
    press(&browser, "#tax_rate_1 option[value=GB_EXEMPT]").await;
    press(&browser, "#save").await;
    assert!(status_text(&browser).await.contains("Settings saved"));
    press(&browser, "#preview").await;
    browser.wait_for("#preview-summary").await.unwrap();
    browser
        .find(&format!("button[data-reissue='{second_key}']"))
        .await
        .expect("offered for the paid invoice too");

    // Forged, cross-merchant and paid-invoice forms change nothing in Sage.
    let cookie = browser
        .cookie(gateway::portal::COOKIE)
        .await
        .unwrap()
        .expect("session cookie");
    let http = reqwest::Client::new();
    let csrf = settings_csrf(&stack, &http, &cookie).await;
    let post = |path: &'static str, form: Vec<(&'static str, String)>| {
        http.post(format!("{}{path}", stack.gateway_url))
            .header("cookie", format!("{}={cookie}", gateway::portal::COOKIE))
            .form(&form)
            .send()
    };
    let confirm = "/portal/reissue/confirm";
    let no_csrf = vec![
        ("merchant", "reissue-shop".to_string()),
        ("document_key", first_key.clone()),
    ];
    assert_eq!(post(confirm, no_csrf).await.unwrap().status(), 403);
    let wrong_csrf = vec![
        ("merchant", "reissue-shop".to_string()),
        ("csrf", "0123456789abcdef".to_string()),
        ("document_key", first_key.clone()),
    ];
    assert_eq!(post(confirm, wrong_csrf).await.unwrap().status(), 403);
    let cross = vec![
        ("merchant", other.id.clone()),
        ("csrf", csrf.clone()),
        ("document_key", first_key.clone()),
    ];
    let refused = post(confirm, cross).await.unwrap();
    assert_eq!(refused.status(), 403, "another merchant's form");
    assert!(refused.text().await.unwrap().contains("wrong-merchant"));
    let paid = vec![
        ("merchant", "reissue-shop".to_string()),
        ("csrf", csrf.clone()),
        ("document_key", second_key.clone()),
    ];
    let refused = post(confirm, paid).await.unwrap();
    assert_eq!(refused.status(), 409, "a paid invoice is refused");
    let text = refused.text().await.unwrap();
    assert!(
        text.contains("61.20 GBP paid or allocated"),
        "the reason is named: {text}"
    );
    assert!(stack.documents(&merchant, "sales_credit_notes").is_empty());
    assert!(stack.documents(&other, "sales_credit_notes").is_empty());
    assert_eq!(stack.documents(&merchant, "sales_invoices").len(), 2);

    // The merchant presses it for invoice 1: the confirm step says what will happen.
    press(&browser, &format!("button[data-reissue='{first_key}']")).await;
    browser.wait_for("#reissue-plan").await.unwrap();
    let shown = browser.page_text().await.unwrap();
    let cm_ref = format!("CR1/{}", first.increment_id());
    let new_ref = format!("{}-R1", first.increment_id());
    assert!(
        shown.contains(&cm_ref) && shown.contains(&new_ref),
        "{shown}"
    );
    assert!(shown.contains("61.20 GBP"), "{shown}");
    assert!(shown.contains("GB_EXEMPT"), "{shown}");
    // Nothing is written before the confirmation.
    assert!(stack.documents(&merchant, "sales_credit_notes").is_empty());
    press(&browser, "#reissue-confirm").await;
    let done = browser.wait_for("#reissue-done").await.unwrap();
    let done_text = browser.text(&done).await.unwrap();

    // In Sage: one credit note for the full 61.20, at the rates it was posted with, set
    // against the original; one new invoice at GB_EXEMPT.
    let notes = wait_count(&stack, &merchant, "sales_credit_notes", 1).await;
    let note = &notes[0];
    assert_eq!(note["reference"], cm_ref.as_str());
    assert_eq!(note["original_invoice_date"], original["date"]);
    assert_eq!(note["contact"]["id"], original["contact"]["id"]);
    assert_eq!(dec(&note["total_amount"]), dec!(61.20));
    assert_eq!(dec(&note["tax_amount"]), dec!(0));
    let nets: Vec<_> = note["credit_note_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            assert_eq!(l["tax_rate"]["id"], "GB_ZERO", "{l:#}");
            dec(&l["net_amount"])
        })
        .collect();
    assert_eq!(nets, vec![dec!(45.00), dec!(11.25), dec!(4.95)]);
    let allocations = wait_count(&stack, &merchant, "contact_allocations", 1).await;
    let arts = allocations[0]["allocated_artefacts"].as_array().unwrap();
    assert_eq!(arts.len(), 2, "{arts:#?}");
    assert_eq!(arts[0]["artefact"]["id"], original["id"], "{arts:#?}");
    assert_eq!(dec(&arts[0]["amount"]), dec!(61.20));
    assert_eq!(dec(&arts[1]["amount"]), dec!(-61.20));
    let invoices = wait_count(&stack, &merchant, "sales_invoices", 3).await;
    let reissued = by_reference(&invoices, &new_ref).clone();
    assert_eq!(dec(&reissued["total_amount"]), dec!(61.20));
    assert_eq!(dec(&reissued["tax_amount"]), dec!(0));
    assert_eq!(reissued["contact"]["id"], original["contact"]["id"]);
    let lines = reissued["invoice_lines"].as_array().unwrap();
    assert_eq!(lines.len(), 3);
    for line in lines {
        assert_eq!(line["tax_rate"]["id"], "GB_EXEMPT", "{line:#}");
    }
    let original_now = by_reference(&invoices, &first.increment_id());
    assert_eq!(dec(&original_now["outstanding_amount"]), dec!(0));
    assert_eq!(dec(&reissued["outstanding_amount"]), dec!(61.20));
    // The page names both Sage documents.
    for shown in [
        note["credit_note_number"].as_str().unwrap(),
        reissued["invoice_number"].as_str().unwrap(),
    ] {
        assert!(done_text.contains(shown), "{shown} in {done_text}");
    }

    // A replayed form makes nothing new and shows the same documents.
    let replay = vec![
        ("merchant", "reissue-shop".to_string()),
        ("csrf", csrf.clone()),
        ("document_key", first_key.clone()),
    ];
    let again = post(confirm, replay.clone()).await.unwrap();
    assert_eq!(again.status(), 200);
    let again = again.text().await.unwrap();
    assert!(again.contains(r#"id="reissue-done""#), "{again}");
    assert!(!again.contains("reissue-confirm"), "{again}");
    // So is the confirm step asked again: it shows it done, with no button.
    let asked = post("/portal/reissue", replay.clone()).await.unwrap();
    assert_eq!(asked.status(), 200);
    let asked = asked.text().await.unwrap();
    assert!(asked.contains(r#"id="reissue-done""#), "{asked}");
    assert!(!asked.contains("<button"), "{asked}");
    let twice = post(confirm, replay).await.unwrap();
    assert_eq!(twice.status(), 200);
    assert_eq!(stack.documents(&merchant, "sales_credit_notes").len(), 1);
    assert_eq!(stack.documents(&merchant, "contact_allocations").len(), 1);
    assert_eq!(stack.documents(&merchant, "sales_invoices").len(), 3);
    assert!(stack.documents(&other, "sales_credit_notes").is_empty());
    assert_eq!(stack.documents(&other, "sales_invoices").len(), 1);

    // The preview shows it done, with both Sage numbers, and offers it no more.
    press(&browser, "a[href='/portal/settings']").await;
    browser.wait_for("#preview").await.unwrap();
    press(&browser, "#preview").await;
    // The click returns before the preview has loaded.
    let row = browser
        .wait_for(&format!("tr[data-preview='{first_key}'] [data-reissued]"))
        .await
        .expect("shown done");
    let row_text = browser.text(&row).await.unwrap();
    assert!(
        row_text.contains(note["credit_note_number"].as_str().unwrap())
            && row_text.contains(reissued["invoice_number"].as_str().unwrap()),
        "{row_text}"
    );
    assert!(browser
        .find_all(&format!("button[data-reissue='{first_key}']"))
        .await
        .unwrap()
        .is_empty());

    // A later credit memo of the Magento invoice is set against the re-issued Sage invoice.
    let credit = first.credit_memo(1, &Refund::lines(&[(0, 1)]));
    publish(&stack, &merchant, &credit).await;
    let allocations = wait_count(&stack, &merchant, "contact_allocations", 2).await;
    let later = allocations
        .iter()
        .find(|a| a["allocated_artefacts"][0]["artefact"]["id"] == reissued["id"])
        .unwrap_or_else(|| panic!("allocated to the re-issued invoice: {allocations:#?}"));
    let x = credit.grand_total();
    assert_eq!(dec(&later["allocated_artefacts"][0]["amount"]), x);
    let invoices = stack.documents(&merchant, "sales_invoices");
    assert_eq!(
        dec(&by_reference(&invoices, &new_ref)["outstanding_amount"]),
        dec!(61.20) - x
    );

    browser.close().await;
    stack.stop().await;
}
