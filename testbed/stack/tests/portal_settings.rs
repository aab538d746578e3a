//! The portal's settings page in headless Chromium: a document is held for a tax rate the
//! merchant has not mapped; the merchant reads the choices from Sage (and sees the payment
//! method their store used offered), maps the rate to a Sage tax rate from the dropdown and
//! saves; the next document lands in Sage with that rate, cent-exact (the services' settings
//! cache is told of the change, not waited out), and the change is in the gateway's audit
//! trail naming who made it. A form without the session's CSRF token, or for another
//! merchant, changes nothing.

mod common;

use common::portal::{first_on_front_page, press, settings_csrf, sign_in, status_text};
use common::stores::{call, secured_stack, ADMIN};
use common::{publish, wait_count};
use ledger_stack::events::Draft;
use ledger_stack::Stack;
use ledger_testkit::browser::Browser;
use rust_decimal_macros::dec;
use serde_json::{json, Value};

/// An admin API read: its JSON answer.
async fn admin_get(stack: &Stack, path: &str) -> Value {
    let (status, body) = call(
        reqwest::Method::GET,
        format!("{}{path}", stack.gateway_url),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// The settings stored for `merchant`, through the admin API.
async fn settings(stack: &Stack, merchant: &str) -> Value {
    admin_get(stack, &format!("/v1/admin/merchants/{merchant}")).await["settings"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_merchant_maps_a_held_tax_rate_and_the_next_document_lands_with_it() {
    // Services keep settings for an hour: only the gateway's change notification can make
    // the saved change apply to the next event.
    std::env::set_var("LEDGER_SETTINGS_TTL_SECS", "3600");
    // The production NATS configuration: each service may hear the change notification.
    let (stack, _nats, _db) = secured_stack("portal-settings", 300).await;
    let merchant = stack.onboard("settings-shop").await.unwrap();
    let other = stack.onboard("other-shop").await.unwrap();
    // The tax map knows 20 % and 0 % only: a 5 % invoice is held as `unmapped_tax_rate`.
    stack
        .put_settings(
            &merchant,
            json!({"tax_rates": [
                {"percent": "20", "tax_rate_id": "GB_STANDARD"},
                {"percent": "0", "tax_rate_id": "GB_ZERO"}
            ]}),
        )
        .await
        .unwrap();
    let held = Draft::invoice("settings-shop", 1).retax(dec!(5));
    publish(&stack, &merchant, &held).await;

    let browser = Browser::start().await.expect("headless Chromium");
    sign_in(&stack, &browser, "settings-shop").await;
    let row = first_on_front_page(&stack, &browser, "tr[data-held]")
        .await
        .expect("the 5 % invoice is held first");
    let text = browser.text(&row).await.unwrap();
    assert!(text.contains("unmapped_tax_rate"), "{text}");
    assert!(stack.documents(&merchant, "sales_invoices").is_empty());

    // Settings: no choices until read from Sage.
    press(&browser, "#settings").await;
    let refreshed = browser.wait_for("#refreshed").await.unwrap();
    assert_eq!(browser.text(&refreshed).await.unwrap(), "never");
    assert!(browser
        .find_all("#tax_rate_2 option[value=GB_LOWER]")
        .await
        .unwrap()
        .is_empty());
    // The store's own payment method (from its invoices) is offered only once read.
    let store_method = "tr[data-method=stripe_payments]";
    assert!(browser.find_all(store_method).await.unwrap().is_empty());
    press(&browser, "#refresh").await;
    assert!(status_text(&browser).await.contains("refreshed"));
    assert_eq!(browser.find_all(store_method).await.unwrap().len(), 1);

    // A rate overlapping an existing row is refused, naming the field; nothing is stored.
    let percent = browser.find("#tax_percent_2").await.unwrap();
    browser.type_into(&percent, "20").await.unwrap();
    press(&browser, "#tax_rate_2 option[value=GB_LOWER]").await;
    press(&browser, "#save").await;
    let refusal = browser
        .wait_for("[data-error-for=tax_percent_2]")
        .await
        .unwrap();
    assert!(browser
        .text(&refusal)
        .await
        .unwrap()
        .contains("overlaps row 1"));
    assert_eq!(
        settings(&stack, "settings-shop").await["tax_rates"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // The merchant corrects it to 5 % and saves.
    let percent = browser.find("#tax_percent_2").await.unwrap();
    browser.clear(&percent).await.unwrap();
    browser.type_into(&percent, "5").await.unwrap();
    press(&browser, "#save").await;
    assert!(status_text(&browser).await.contains("Settings saved"));
    let stored = settings(&stack, "settings-shop").await;
    assert!(
        stored["tax_rates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["percent"] == "5" && r["tax_rate_id"] == "GB_LOWER"),
        "{stored}"
    );

    // The next 5 % document lands in Sage at GB_LOWER, cent-exact.
    let next = Draft::invoice("settings-shop", 2).retax(dec!(5));
    publish(&stack, &merchant, &next).await;
    let invoices = wait_count(&stack, &merchant, "sales_invoices", 1).await;
    assert_eq!(invoices.len(), 1);
    let lines = invoices[0]["invoice_lines"].as_array().unwrap();
    assert!(!lines.is_empty());
    for line in lines {
        assert_eq!(line["tax_rate"]["id"], "GB_LOWER", "{line:#}");
    }
    let sent = next.value();
    assert_eq!(
        ledger_stack::events::amount(&invoices[0]["total_amount"]),
        ledger_stack::events::amount(&sent["payload"]["invoice"]["grand_total"])
    );
    assert_eq!(
        ledger_stack::events::amount(&invoices[0]["tax_amount"]),
        ledger_stack::events::amount(&sent["payload"]["invoice"]["tax_amount"])
    );

    // The audit trail says who changed the tax map, from what to what.
    let audit = admin_get(
        &stack,
        "/v1/admin/audit?merchant=settings-shop&service=gateway",
    )
    .await;
    let records = audit["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{audit}");
    assert_eq!(records[0]["record"]["code"], "settings_changed");
    let message: Value =
        serde_json::from_str(records[0]["record"]["message"].as_str().unwrap()).unwrap();
    assert!(message["changed_by"]
        .as_str()
        .unwrap()
        .starts_with("merchant portal session "));
    let changes = message["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "only the tax map changed: {message}");
    let tax_change = &changes[0];
    assert_eq!(tax_change["setting"], "tax_rates");
    assert_eq!(tax_change["before"].as_array().unwrap().len(), 2);
    assert_eq!(tax_change["after"].as_array().unwrap().len(), 3);

    // Forged and cross-merchant forms change nothing.
    let cookie = browser
        .cookie(gateway::portal::COOKIE)
        .await
        .unwrap()
        .expect("session cookie");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let csrf = settings_csrf(&stack, &http, &cookie).await;
    let before = settings(&stack, "settings-shop").await;
    let other_before = settings(&stack, &other.id).await;
    let post = |form: Vec<(&'static str, String)>| {
        http.post(format!("{}/portal/settings", stack.gateway_url))
            .header("cookie", format!("{}={cookie}", gateway::portal::COOKIE))
            .form(&form)
            .send()
    };
    let change = || {
        vec![
            ("due_days", "7".to_string()),
            ("timezone", "Europe/London".to_string()),
            ("zero_value_invoices", "skip".to_string()),
            ("unpaid_invoices", "post".to_string()),
            ("contact_name_priority", "company".to_string()),
        ]
    };
    let mut forged = change();
    forged.push(("merchant", "settings-shop".into()));
    assert_eq!(post(forged.clone()).await.unwrap().status(), 403, "no CSRF");
    forged.push(("csrf", "0123456789abcdef".into()));
    assert_eq!(post(forged).await.unwrap().status(), 403, "wrong CSRF");
    let mut cross = change();
    cross.push(("csrf", csrf.clone()));
    cross.push(("merchant", other.id.clone()));
    let refused = post(cross).await.unwrap();
    assert_eq!(refused.status(), 403, "another merchant's form");
    assert!(refused.text().await.unwrap().contains("wrong-merchant"));
    assert_eq!(settings(&stack, "settings-shop").await, before);
    assert_eq!(settings(&stack, &other.id).await, other_before);
    // The same form for this merchant with its token is taken (so the refusals above were
    // about the token and the merchant, not the form).
    let mut fine = change();
    fine.push(("csrf", csrf));
    fine.push(("merchant", "settings-shop".into()));
    let saved = post(fine).await.unwrap();
    assert_eq!(saved.status(), 303);
    assert_eq!(settings(&stack, "settings-shop").await["due_days"], 7);

    browser.close().await;
    stack.stop().await;
}
