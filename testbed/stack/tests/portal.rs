//! The merchant portal in headless Chromium: the merchant signs in with the operator's
//! single-use link, sees the Sage connection, enters the store's pairing code (a wrong one
//! is refused naming the code; the right one shows the store and pairs once confirmed), the
//! store collects its key, and the merchant disconnects it.
//! Forms without the session's CSRF token, reused links and the unauthenticated Sage
//! connection start are refused.

mod common;

use common::portal::{first_on_front_page, open_link, sign_in};
use ledger_stack::{Stack, StackOptions};
use ledger_testkit::browser::Browser;
use ledger_testkit::{TestDb, TestNats};
use serde_json::{json, Value};

const ADMIN: &str = ledger_stack::ADMIN_TOKEN;

async fn http_json(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Types a pairing code into the portal's form and submits it.
async fn enter_code(browser: &Browser, code: &str) {
    let input = browser.wait_for("#code").await.unwrap();
    browser.type_into(&input, code).await.unwrap();
    browser
        .click(&browser.find("#pair").await.unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_merchant_pairs_and_disconnects_a_store_in_the_portal() {
    let _ = ledger_runtime::telemetry::init("portal");
    let nats = TestNats::start().await.unwrap();
    let db = TestDb::create().await.unwrap();
    let stack = Stack::start(StackOptions::new(nats.url(), db.url()))
        .await
        .unwrap();
    let merchant = stack.onboard("portal-shop").await.unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let gw = &stack.gateway_url;

    // Without the admin token nobody can attach a Sage business to a merchant.
    let (status, _) = http_json(
        http.get(format!("{gw}/connect/sage/start"))
            .query(&[("merchant", "portal-shop")]),
    )
    .await;
    assert_eq!(status, 401);

    // The operator makes a sign-in link; the store asks for a pairing code.
    let (status, link) = http_json(
        http.post(format!("{gw}/v1/admin/merchants/portal-shop/portal-links"))
            .bearer_auth(ADMIN),
    )
    .await;
    assert_eq!(status, 201, "{link}");
    let link = link["url"].as_str().unwrap().to_string();
    let (status, pairing) = http_json(
        http.post(format!("{gw}/v1/pairings"))
            .json(&json!({"store_url": "https://portal-shop.example"})),
    )
    .await;
    assert_eq!(status, 201);
    let code = pairing["code"].as_str().unwrap().to_string();
    let poll = |secret: &str| {
        http.get(format!(
            "{gw}/v1/pairings/{}",
            pairing["pairing_id"].as_str().unwrap()
        ))
        .bearer_auth(secret.to_string())
    };
    let poll_secret = pairing["poll_secret"].as_str().unwrap().to_string();

    let browser = Browser::start().await.expect("headless Chromium");
    open_link(&browser, &link).await;
    browser.wait_for("#sage").await.unwrap();
    assert!(browser.current_url().await.unwrap().ends_with("/portal"));
    let text = browser.page_text().await.unwrap();
    assert!(text.contains("portal-shop"), "{text}");
    let business = browser.find("#sage-business").await.unwrap();
    assert_eq!(browser.text(&business).await.unwrap(), merchant.business_id);
    // Onboarding names the Sage business's base currency, read at connect.
    let base = browser.find("#sage-base-currency").await.unwrap();
    assert_eq!(browser.text(&base).await.unwrap(), "GBP");
    assert!(text.contains("base_currency_mismatch"), "{text}");
    assert!(!browser.find_all("#no-stores").await.unwrap().is_empty());

    // A mistyped code is refused, saying why.
    enter_code(&browser, "ZZZZ-ZZZZ").await;
    let alert = browser.wait_for("[role=alert]").await.unwrap();
    assert!(
        browser
            .text(&alert)
            .await
            .unwrap()
            .contains("no store is waiting with this pairing code"),
        "{}",
        browser.page_text().await.unwrap()
    );
    // The store is still waiting.
    let (_, state) = http_json(poll(&poll_secret)).await;
    assert_eq!(state["state"], "pending");

    // The right code, typed in lower case as people do: the page shows the store that asked
    // for it, and pairs only when the merchant confirms.
    enter_code(&browser, &code.to_lowercase()).await;
    let store_url = browser.wait_for("#store-url").await.unwrap();
    assert_eq!(
        browser.text(&store_url).await.unwrap(),
        "https://portal-shop.example"
    );
    let (_, state) = http_json(poll(&poll_secret)).await;
    assert_eq!(
        state["state"], "pending",
        "nothing is claimed before the confirmation"
    );
    browser
        .click(&browser.find("#confirm-pair").await.unwrap())
        .await
        .unwrap();
    let notice = browser.wait_for("[role=status]").await.unwrap();
    assert!(browser
        .text(&notice)
        .await
        .unwrap()
        .contains("Code accepted"));

    // The store collects its key; the portal lists it.
    let (status, paired) = http_json(poll(&poll_secret)).await;
    assert_eq!(status, 200, "{paired}");
    assert_eq!(paired["merchant_id"], "portal-shop");
    let key_id = paired["credentials"]["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret = paired["credentials"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = http_json(http.get(format!("{gw}/v1/status")).bearer_auth(&secret)).await;
    assert_eq!(status, 200, "the paired key reads its status");
    browser.goto(&format!("{gw}/portal")).await.unwrap();
    let row = browser
        .find(&format!("tr[data-key='{key_id}']"))
        .await
        .expect("the paired store is listed");
    let row_text = browser.text(&row).await.unwrap();
    assert!(
        row_text.contains("https://portal-shop.example"),
        "{row_text}"
    );
    assert!(row_text.contains("Active"), "{row_text}");

    // A form posted without the session's CSRF token is refused, even with the cookie.
    let cookie = browser
        .cookie(gateway::portal::COOKIE)
        .await
        .unwrap()
        .expect("session cookie");
    let forged = http
        .post(format!("{gw}/portal/keys/{key_id}/revoke"))
        .header("cookie", format!("{}={cookie}", gateway::portal::COOKIE))
        .form(&[("csrf", "guessed")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    let (status, _) = http_json(http.get(format!("{gw}/v1/status")).bearer_auth(&secret)).await;
    assert_eq!(status, 200, "the forged form revoked nothing");

    // The merchant disconnects the store: its key stops working.
    let disconnect = browser
        .find(&format!("tr[data-key='{key_id}'] button"))
        .await
        .unwrap();
    browser.click(&disconnect).await.unwrap();
    let notice = browser.wait_for("[role=status]").await.unwrap();
    assert!(browser
        .text(&notice)
        .await
        .unwrap()
        .contains("Store disconnected"));
    let row = browser
        .find(&format!("tr[data-key='{key_id}'] .status"))
        .await
        .unwrap();
    assert!(browser
        .text(&row)
        .await
        .unwrap()
        .starts_with("Disconnected"));
    let (status, _) = http_json(http.get(format!("{gw}/v1/status")).bearer_auth(&secret)).await;
    assert_eq!(status, 401);

    // Sign-in links work once.
    browser.goto(&link).await.unwrap();
    assert!(browser
        .page_text()
        .await
        .unwrap()
        .contains("This sign-in link is not valid"));
    browser.close().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_merchant_sees_why_a_document_did_not_reach_sage_and_sends_it_again() {
    // Services read settings fresh, so the fix below applies at once.
    std::env::set_var("LEDGER_SETTINGS_TTL_SECS", "0");
    let _ = ledger_runtime::telemetry::init("portal");
    let nats = TestNats::start().await.unwrap();
    let db = TestDb::create().await.unwrap();
    let stack = Stack::start(StackOptions::new(nats.url(), db.url()))
        .await
        .unwrap();
    let merchant = stack.onboard("attention-shop").await.unwrap();
    // A sales ledger account Sage does not know: Sage refuses the invoice.
    let real_account = stack.break_sales_ledger_account(&merchant).await.unwrap();
    // Sold today, so that the books check (last 90 days) covers it.
    let mut draft = ledger_stack::events::Draft::invoice("attention-shop", 1);
    draft.value_mut()["payload"]["invoice"]["created_at"] =
        json!(chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string());
    let event = draft.build();
    assert_eq!(
        stack.post_event(&merchant, &event.body).await.unwrap().0,
        202
    );

    let browser = Browser::start().await.expect("headless Chromium");
    sign_in(&stack, &browser, "attention-shop").await;
    let row = first_on_front_page(&stack, &browser, "tr[data-dead-letter]").await;
    let row = row.expect("the refused invoice is listed");
    let text = browser.text(&row).await.unwrap();
    assert!(text.contains("invoice created"), "{text}");
    assert!(text.contains("sage."), "Sage's reason code: {text}");
    assert!(text.contains("ledger_account_id"), "the field: {text}");
    assert!(stack.documents(&merchant, "sales_invoices").is_empty());
    // The books check agrees: one document sent, missing in Sage.
    browser
        .click(&browser.find("#books-check").await.unwrap())
        .await
        .unwrap();
    let verdict = browser.wait_for("#unbalanced").await.unwrap();
    assert!(browser.text(&verdict).await.unwrap().starts_with("1 of 1"));
    let findings = browser.find("#findings").await.unwrap();
    let findings = browser.text(&findings).await.unwrap();
    assert!(
        findings.contains("Missing") && findings.contains("000100001"),
        "{findings}"
    );
    assert!(
        findings.contains("refused: sage."),
        "the reason Sage gave: {findings}"
    );
    browser
        .goto(&format!("{}/portal", stack.gateway_url))
        .await
        .unwrap();

    // The cause is fixed; the merchant sends it again from the page.
    stack
        .put_settings(&merchant, json!({"sales_ledger_account_id": real_account}))
        .await
        .unwrap();
    let send_again = browser.find("tr[data-dead-letter] button").await.unwrap();
    browser.click(&send_again).await.unwrap();
    let notice = browser.wait_for("[role=status]").await.unwrap();
    assert!(browser.text(&notice).await.unwrap().contains("Sent again"));
    assert!(!browser
        .find_all("#nothing-failed")
        .await
        .unwrap()
        .is_empty());
    let invoices = stack.documents(&merchant, "sales_invoices");
    assert_eq!(invoices.len(), 1);
    assert_eq!(
        ledger_stack::events::amount(&invoices[0]["total_amount"]),
        ledger_stack::events::amount(
            &serde_json::from_slice::<Value>(&event.body).unwrap()["payload"]["invoice"]
                ["grand_total"]
        )
    );
    // And the books check now balances.
    browser
        .goto(&format!("{}/portal/books", stack.gateway_url))
        .await
        .unwrap();
    let verdict = browser.wait_for("#balanced").await.unwrap();
    assert!(browser
        .text(&verdict)
        .await
        .unwrap()
        .contains("All 1 documents are in Sage exactly once"));
    browser.close().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_merchant_sees_the_sage_business_and_confirms_it_before_it_is_connected() {
    let _ = ledger_runtime::telemetry::init("portal");
    let nats = TestNats::start().await.unwrap();
    let db = TestDb::create().await.unwrap();
    let stack = Stack::start(StackOptions::new(nats.url(), db.url()))
        .await
        .unwrap();
    // The sandbox's consent page approves for its first business.
    let business = stack
        .sandbox
        .create_business(sage_sandbox::BusinessSpec {
            name: "Confirm Trading Ltd".into(),
            ..sage_sandbox::BusinessSpec::default()
        })
        .await;
    let http = reqwest::Client::new();
    let (status, _) = http_json(
        http.post(format!("{}/v1/admin/merchants", stack.gateway_url))
            .bearer_auth(ADMIN)
            .json(&json!({"merchant_id": "confirm-shop", "name": "Confirm Shop"})),
    )
    .await;
    assert_eq!(status, 201);
    let connected = || async {
        http_json(
            reqwest::Client::new()
                .get(format!(
                    "{}/v1/admin/merchants/confirm-shop",
                    stack.gateway_url
                ))
                .bearer_auth(ADMIN),
        )
        .await
        .1["sage"]
            .clone()
    };

    let browser = Browser::start().await.expect("headless Chromium");
    sign_in(&stack, &browser, "confirm-shop").await;
    let connect = browser.find("#sage button").await.unwrap();
    browser.click(&connect).await.unwrap();
    // Back from Sage's consent page: the business is shown, nothing is connected yet.
    let name = browser.wait_for(".business-name").await.unwrap();
    assert_eq!(browser.text(&name).await.unwrap(), "Confirm Trading Ltd");
    let id = browser.find(".business-id").await.unwrap();
    assert_eq!(browser.text(&id).await.unwrap(), business.id);
    assert!(
        connected().await.is_null(),
        "nothing stored before the merchant confirms"
    );
    browser
        .click(&browser.find("#confirm-sage").await.unwrap())
        .await
        .unwrap();
    let notice = browser.wait_for("[role=status]").await.unwrap();
    assert!(browser
        .text(&notice)
        .await
        .unwrap()
        .contains("Sage is connected"));
    let shown = browser.find("#sage-business").await.unwrap();
    assert_eq!(browser.text(&shown).await.unwrap(), business.id);
    assert_eq!(connected().await["business_id"], business.id.as_str());
    browser.close().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_merchant_sees_each_held_document_with_its_reason_and_detail() {
    let _ = ledger_runtime::telemetry::init("portal");
    let nats = TestNats::start().await.unwrap();
    let db = TestDb::create().await.unwrap();
    let stack = Stack::start(StackOptions::new(nats.url(), db.url()))
        .await
        .unwrap();
    let merchant = stack.onboard("held-shop").await.unwrap();
    // 17.5 % has no Sage rate in the default tax map: the invoice is held, saying which line.
    let held =
        ledger_stack::events::Draft::invoice("held-shop", 1).retax(rust_decimal_macros::dec!(17.5));
    assert_eq!(
        stack
            .post_event(&merchant, &held.build().body)
            .await
            .unwrap()
            .0,
        202
    );

    let browser = Browser::start().await.expect("headless Chromium");
    sign_in(&stack, &browser, "held-shop").await;
    let key = format!("invoice:1:{}", held.increment_id());
    let row = first_on_front_page(&stack, &browser, "tr[data-held]").await;
    let text = browser
        .text(&row.expect("the held invoice is listed"))
        .await
        .unwrap();
    assert!(text.contains(&key), "{text}");
    assert!(text.contains("unmapped_tax_rate"), "the code: {text}");
    assert!(text.contains("17.5"), "the detail names the rate: {text}");
    assert!(
        browser.find_all("#nothing-failed").await.unwrap().len() == 1,
        "a held document is not a failure"
    );
}
