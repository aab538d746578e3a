//! Previewing a settings change and sending held documents again from the portal, in
//! headless Chromium: an invoice is held for a 5 % rate the merchant has not mapped and a 20 %
//! one is in Sage. The merchant edits the tax map and presses Preview: the held invoice is
//! shown at the new rate with its VAT and total, the posted one is flagged as posted
//! differently by a trial edit, and nothing is saved. The merchant saves, presses "Send held
//! documents again" in the held section, and the held invoice lands in Sage with the new rate,
//! cent-exact; pressing again posts nothing twice. A release form without the session's CSRF
//! token, or for another merchant, sends nothing.

mod common;

use common::portal::{
    first_on_front_page, press, settings_csrf, sign_in, status_text, stored_settings,
};
use common::stores::secured_stack;
use common::{publish, wait_count};
use ledger_stack::events::{amount, Draft};
use ledger_testkit::browser::Browser;
use rust_decimal_macros::dec;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_invoice_is_sent_again_after_its_rate_is_mapped_and_lands_cent_exact() {
    std::env::set_var("LEDGER_SETTINGS_TTL_SECS", "3600");
    let (stack, _nats, _db) = secured_stack("portal-release", 300).await;
    let merchant = stack.onboard("release-shop").await.unwrap();
    let other = stack.onboard("release-other").await.unwrap();
    let known = json!({"tax_rates": [
        {"percent": "20", "tax_rate_id": "GB_STANDARD"},
        {"percent": "0", "tax_rate_id": "GB_ZERO"}
    ]});
    stack.put_settings(&merchant, known.clone()).await.unwrap();
    stack.put_settings(&other, known).await.unwrap();
    publish(
        &stack,
        &merchant,
        &Draft::invoice("release-shop", 1).retax(dec!(5)),
    )
    .await;
    publish(
        &stack,
        &other,
        &Draft::invoice("release-other", 1).retax(dec!(5)),
    )
    .await;
    // A 20 % invoice lands at GB_STANDARD.
    publish(&stack, &merchant, &Draft::invoice("release-shop", 2)).await;
    wait_count(&stack, &merchant, "sales_invoices", 1).await;

    let browser = Browser::start().await.expect("headless Chromium");
    sign_in(&stack, &browser, "release-shop").await;
    let row = first_on_front_page(&stack, &browser, "tr[data-held]")
        .await
        .expect("the 5 % invoice is held");
    assert!(browser
        .text(&row)
        .await
        .unwrap()
        .contains("unmapped_tax_rate"));

    // The other merchant maps 5 % too, so only the refusal keeps its invoice held below.
    stack
        .put_settings(
            &other,
            json!({"tax_rates": [
                {"percent": "20", "tax_rate_id": "GB_STANDARD"},
                {"percent": "0", "tax_rate_id": "GB_ZERO"},
                {"percent": "5", "tax_rate_id": "GB_LOWER"}
            ]}),
        )
        .await
        .unwrap();

    // Forged and cross-merchant release forms send nothing.
    let cookie = browser
        .cookie(gateway::portal::COOKIE)
        .await
        .unwrap()
        .expect("session cookie");
    let http = reqwest::Client::new();
    let csrf = settings_csrf(&stack, &http, &cookie).await;
    let release = |form: Vec<(&'static str, String)>| {
        http.post(format!("{}/portal/held/release", stack.gateway_url))
            .header("cookie", format!("{}={cookie}", gateway::portal::COOKIE))
            .form(&form)
            .send()
    };
    let no_csrf = vec![("merchant", "release-shop".to_string())];
    assert_eq!(release(no_csrf).await.unwrap().status(), 403, "no CSRF");
    let wrong_csrf = vec![
        ("merchant", "release-shop".to_string()),
        ("csrf", "0123456789abcdef".to_string()),
    ];
    assert_eq!(
        release(wrong_csrf).await.unwrap().status(),
        403,
        "wrong CSRF"
    );
    let cross = vec![("merchant", other.id.clone()), ("csrf", csrf)];
    let refused = release(cross).await.unwrap();
    assert_eq!(refused.status(), 403, "another merchant's form");
    assert!(refused.text().await.unwrap().contains("wrong-merchant"));
    assert!(stack.documents(&other, "sales_invoices").is_empty());
    assert_eq!(stack.documents(&merchant, "sales_invoices").len(), 1);

    // Preview: 5 % mapped to the lower rate and, tried out, 20 % to the zero rate. The held
    // invoice is shown at GB_LOWER; the posted one is flagged as posted differently.
    press(&browser, "#settings").await;
    browser.wait_for("#refresh").await.unwrap();
    press(&browser, "#refresh").await;
    assert!(status_text(&browser).await.contains("refreshed"));
    let percent = browser.find("#tax_percent_2").await.unwrap();
    browser.type_into(&percent, "5").await.unwrap();
    press(&browser, "#tax_rate_2 option[value=GB_LOWER]").await;
    press(&browser, "#tax_rate_0 option[value=GB_ZERO]").await;
    press(&browser, "#preview").await;
    let summary = browser.wait_for("#preview-summary").await.unwrap();
    let summary = browser.text(&summary).await.unwrap();
    let held_row = browser
        .find("tr[data-preview='invoice:1:000100001']")
        .await
        .unwrap();
    let held_text = browser.text(&held_row).await.unwrap();
    assert!(
        held_text.contains("held: skipped (unmapped_tax_rate)"),
        "{held_text}"
    );
    assert!(held_text.contains("GB_LOWER"), "{held_text}");
    assert!(held_text.contains("VAT 3.06 · total 64.26"), "{held_text}");
    let posted_row = browser
        .find("tr[data-preview='invoice:1:000100002'][data-correct=true]")
        .await
        .expect("the posted invoice is flagged as posted differently");
    let posted_text = browser.text(&posted_row).await.unwrap();
    assert!(posted_text.contains("in Sage"), "{posted_text}");
    assert!(
        posted_text.contains("GB_STANDARD") && posted_text.contains("GB_ZERO"),
        "{posted_text}"
    );
    assert!(summary.contains("change: 2"), "{summary}");
    browser.find("#correction-note").await.unwrap();
    // The preview saved and posted nothing.
    assert_eq!(
        stored_settings(&stack, "release-shop").await["tax_rates"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(stack.documents(&merchant, "sales_invoices").len(), 1);

    // Back on the settings page (the trial edit is gone), the merchant maps 5 % to the Sage
    // lower rate only and saves.
    press(&browser, "a[href='/portal/settings']").await;
    browser.wait_for("#refresh").await.unwrap();
    let percent = browser.find("#tax_percent_2").await.unwrap();
    browser.type_into(&percent, "5").await.unwrap();
    press(&browser, "#tax_rate_2 option[value=GB_LOWER]").await;
    press(&browser, "#save").await;
    assert!(status_text(&browser).await.contains("Settings saved"));
    // Saving alone does not post the held invoice.
    assert_eq!(stack.documents(&merchant, "sales_invoices").len(), 1);

    // Send held documents again, from the front page's held section: the invoice lands
    // through the usual path.
    press(&browser, "a[href='/portal']").await;
    browser.wait_for("#release-held").await.unwrap();
    press(&browser, "#release-held").await;
    let landed = browser.wait_for("#released-count").await.unwrap();
    assert_eq!(browser.text(&landed).await.unwrap(), "1");
    let still = browser.find("#still-held-count").await.unwrap();
    assert_eq!(browser.text(&still).await.unwrap(), "0");
    let invoices = wait_count(&stack, &merchant, "sales_invoices", 2).await;
    assert_eq!(invoices.len(), 2);
    let released: Vec<_> = invoices
        .iter()
        .filter(|i| {
            i["reference"]
                .as_str()
                .unwrap_or_default()
                .ends_with("000100001")
        })
        .collect();
    assert_eq!(released.len(), 1, "{invoices:#?}");
    let invoices = released;
    for line in invoices[0]["invoice_lines"].as_array().unwrap() {
        assert_eq!(line["tax_rate"]["id"], "GB_LOWER", "{line:#}");
    }
    // By hand, 5 % of each net: 45.00 -> 2.25, 11.25 -> 0.56 (0.5625), shipping 4.95 -> 0.25
    // (0.2475): VAT 3.06; total 62.50 - 6.25 + 4.95 + 3.06 = 64.26.
    assert_eq!(amount(&invoices[0]["tax_amount"]), dec!(3.06));
    assert_eq!(amount(&invoices[0]["total_amount"]), dec!(64.26));
    // It is no longer held; pressing again posts nothing twice.
    assert!(first_on_front_page(&stack, &browser, "#nothing-held")
        .await
        .is_some());
    press(&browser, "#settings").await;
    browser.wait_for("#release").await.unwrap();
    press(&browser, "#release").await;
    let again = browser.wait_for("#released-count").await.unwrap();
    assert_eq!(browser.text(&again).await.unwrap(), "0");
    assert_eq!(stack.documents(&merchant, "sales_invoices").len(), 2);
    // The other merchant's invoice was never sent.
    assert!(stack.documents(&other, "sales_invoices").is_empty());

    browser.close().await;
    stack.stop().await;
}
