//! The portal's sync history and onboarding checklist in headless Chromium, through the real
//! engine: a synced invoice, its payment and customer, and an invoice held for an unmapped tax rate appear
//! with their states; the state filter, the type filter and the Magento number search narrow
//! the list; the CSV export lists the same documents; the checklist on the front page says
//! what is done and what is not. Another merchant's documents never show, whatever the URL
//! says, in the page or in the export.

mod common;

use std::time::Duration;

use ledger_stack::events::Draft;
use ledger_stack::Stack;
use ledger_testkit::browser::Browser;
use rust_decimal_macros::dec;
use serde_json::Value;

/// Signs the browser in to `merchant`'s portal with a fresh operator link; returns the
/// session cookie's value.
async fn sign_in(stack: &Stack, browser: &Browser, merchant: &str) -> String {
    let link: Value = reqwest::Client::new()
        .post(format!(
            "{}/v1/admin/merchants/{merchant}/portal-links",
            stack.gateway_url
        ))
        .bearer_auth(ledger_stack::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    browser.goto(link["url"].as_str().unwrap()).await.unwrap();
    let button = browser.wait_for("#sign-in").await.unwrap();
    browser.click(&button).await.unwrap();
    browser.wait_for("#sage").await.unwrap();
    browser
        .cookie(gateway::portal::COOKIE)
        .await
        .unwrap()
        .expect("the session cookie")
}

/// Opens the history page at `query`; returns the text of each row shown.
async fn rows(stack: &Stack, browser: &Browser, query: &str) -> Vec<String> {
    browser
        .goto(&format!("{}/portal/history{query}", stack.gateway_url))
        .await
        .unwrap();
    browser.wait_for("#history").await.unwrap();
    rendered_rows(browser).await
}

async fn rendered_rows(browser: &Browser) -> Vec<String> {
    let mut out = Vec::new();
    for row in browser.find_all("tr[data-document]").await.unwrap() {
        out.push(browser.text(&row).await.unwrap());
    }
    out
}

/// The text of the row of `kind` `key` in `state` on the current page, if shown.
async fn row(browser: &Browser, kind: &str, key: &str, state: &str) -> Option<String> {
    let css = format!(r#"tr[data-document="{key}"][data-type="{kind}"][data-state="{state}"]"#);
    let found = browser.find_all(&css).await.unwrap().into_iter().next()?;
    Some(browser.text(&found).await.unwrap())
}

async fn csv(stack: &Stack, cookie: &str, query: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(format!("{}/portal/history.csv{query}", stack.gateway_url))
        .header(
            reqwest::header::COOKIE,
            format!("{}={cookie}", gateway::portal::COOKIE),
        )
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_merchant_sees_every_document_with_its_state_filters_searches_and_exports_it() {
    let (stack, _nats, _db) = common::stack("history", 8).await;
    let shop = stack.onboard("history-shop").await.unwrap();
    let other = stack.onboard("other-shop").await.unwrap();
    let synced = Draft::invoice("history-shop", 1);
    // 17.5 % has no Sage rate in the default tax map: held, naming the rate.
    let held = Draft::invoice("history-shop", 2).retax(dec!(17.5));
    for event in [synced.build(), synced.paid().build(), held.build()] {
        assert_eq!(stack.post_event(&shop, &event.body).await.unwrap().0, 202);
    }
    let foreign = Draft::invoice("other-shop", 7);
    assert_eq!(
        stack
            .post_event(&other, &foreign.build().body)
            .await
            .unwrap()
            .0,
        202
    );
    let synced_key = format!("invoice:1:{}", synced.increment_id());
    let held_key = format!("invoice:1:{}", held.increment_id());
    let foreign_number = foreign.increment_id();
    assert_ne!(foreign_number, synced.increment_id());

    let browser = Browser::start().await.expect("headless Chromium");
    // Signed out: no history, no export.
    browser
        .goto(&format!("{}/portal/history", stack.gateway_url))
        .await
        .unwrap();
    assert!(!browser.page_text().await.unwrap().contains(&synced_key));
    assert_eq!(csv(&stack, "0123abcd", "").await.0, 401);

    let cookie = sign_in(&stack, &browser, "history-shop").await;
    // The invoice, its payment, its customer and the held invoice, once the engine has
    // handled them.
    let expected = [
        ("invoice", synced_key.as_str(), "synced"),
        ("payment", synced_key.as_str(), "synced"),
        ("invoice", held_key.as_str(), "skipped"),
    ];
    let mut texts = Vec::new();
    for _ in 0..150 {
        let listed = rows(&stack, &browser, "").await;
        texts.clear();
        for (kind, key, state) in expected {
            texts.extend(row(&browser, kind, key, state).await);
        }
        let customer = browser
            .find_all(r#"tr[data-type="customer"][data-state="synced"]"#)
            .await
            .unwrap();
        if listed.len() == 4 && texts.len() == 3 && customer.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(texts.len(), 3, "{:?}", rendered_rows(&browser).await);
    let (invoice, payment, held_text) = (&texts[0], &texts[1], &texts[2]);
    assert!(
        invoice.contains("Synced") && invoice.contains("SI-"),
        "Sage's number: {invoice}"
    );
    assert!(
        payment.contains("Payment") && payment.contains("Synced"),
        "{payment}"
    );
    assert!(held_text.contains("Skipped"), "{held_text}");
    assert!(
        held_text.contains("unmapped_tax_rate") && held_text.contains("17.5"),
        "{held_text}"
    );
    assert!(
        held_text.contains("Held documents"),
        "links where to act: {held_text}"
    );
    assert!(!browser.page_text().await.unwrap().contains(&foreign_number));

    // Filters: by state, by type, and by Magento number through the form.
    let skipped = rows(&stack, &browser, "?state=skipped").await;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(skipped[0].contains(&held_key), "{skipped:?}");
    let payments = rows(&stack, &browser, "?type=payment").await;
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert!(payments[0].contains("Payment"), "{payments:?}");
    rows(&stack, &browser, "").await;
    let search = browser.find("#q").await.unwrap();
    browser
        .type_into(&search, &held.increment_id())
        .await
        .unwrap();
    browser
        .click(&browser.find("#apply").await.unwrap())
        .await
        .unwrap();
    // The form's GET carries the search in the URL.
    for _ in 0..50 {
        if browser.current_url().await.unwrap().contains("q=") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(browser
        .current_url()
        .await
        .unwrap()
        .contains(&format!("q={}", held.increment_id())));
    browser.wait_for("#history").await.unwrap();
    let found = rendered_rows(&browser).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains(&held_key), "{found:?}");
    // A date range with nothing in it, and a refused parameter named on the page.
    assert!(rows(&stack, &browser, "?to=2000-01-01").await.is_empty());
    rows(&stack, &browser, "?state=done").await;
    let refused = browser.find("#filter-error").await.unwrap();
    assert!(browser.text(&refused).await.unwrap().starts_with("state:"));

    // Another merchant's number finds nothing, whatever else the URL says.
    let crossing = format!("?q={foreign_number}&merchant=other-shop&merchant_id=other-shop");
    assert!(rows(&stack, &browser, &crossing).await.is_empty());
    browser.find("#no-documents").await.unwrap();

    // The export: a header and the same four documents, the other merchant's never.
    let (status, body) = csv(&stack, &cookie, "?merchant=other-shop").await;
    assert_eq!(status, 200, "{body}");
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, gateway::history::CSV_HEADER);
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 4, "{body}");
    assert!(!body.contains(&foreign_number), "{body}");
    let held_line = records
        .iter()
        .find(|r| &r[0] == held_key.as_str() && &r[1] == "invoice")
        .expect("the held invoice exported");
    assert_eq!(&held_line[3], "skipped");
    assert_eq!(&held_line[8], "unmapped_tax_rate");
    assert!(held_line[10].contains("17.5"), "{held_line:?}");
    let synced_line = records
        .iter()
        .find(|r| &r[0] == synced_key.as_str() && &r[1] == "invoice")
        .expect("the synced invoice exported");
    assert_eq!(&synced_line[3], "synced");
    assert!(synced_line[5].starts_with("SI-"), "{synced_line:?}");
    assert!(!synced_line[7].is_empty(), "Sage's id: {synced_line:?}");
    let (_, filtered) = csv(&stack, &cookie, "?state=skipped").await;
    assert_eq!(filtered.lines().count(), 2, "{filtered}");
    assert_eq!(csv(&stack, &cookie, "?from=yesterday").await.0, 422);

    // The other merchant's session sees its own document and none of this one's.
    let other_browser = Browser::start().await.expect("headless Chromium");
    let other_cookie = sign_in(&stack, &other_browser, "other-shop").await;
    let (_, other_body) = csv(&stack, &other_cookie, "?merchant=history-shop").await;
    assert!(!other_body.contains(&synced_key) && !other_body.contains(&held_key));
    let foreign_key = format!("invoice:1:{foreign_number}");
    let mut other_rows = Vec::new();
    let mut own = None;
    for _ in 0..150 {
        other_rows = rows(&stack, &other_browser, "?merchant=history-shop").await;
        own = row(&other_browser, "invoice", &foreign_key, "synced").await;
        if own.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(own.is_some(), "{other_rows:?}");
    assert!(
        other_rows
            .iter()
            .all(|r| !r.contains(&synced_key) && !r.contains(&held_key)),
        "{other_rows:?}"
    );
    other_browser.close().await;

    // The checklist: Sage connected and a first document synced; no store paired (events came
    // with the ingest key); a tax rate missing; payments mapped to the discovered account.
    browser
        .goto(&format!("{}/portal", stack.gateway_url))
        .await
        .unwrap();
    browser.wait_for("#checklist").await.unwrap();
    for (step, done) in [
        ("sage", true),
        ("store", false),
        ("tax", false),
        ("payments", true),
        ("first-sync", true),
    ] {
        assert!(
            !browser
                .find_all(&format!("#step-{step}[data-done=\"{done}\"]"))
                .await
                .unwrap()
                .is_empty(),
            "step {step} done={done}: {}",
            browser.page_text().await.unwrap()
        );
    }
    let tax = browser.find("#step-tax").await.unwrap();
    let tax = browser.text(&tax).await.unwrap();
    assert!(tax.contains("1 document is held"), "{tax}");
    browser
        .find("#step-tax a[href=\"/portal/settings\"]")
        .await
        .unwrap();
    browser
        .click(&browser.find("#history-link").await.unwrap())
        .await
        .unwrap();
    browser.wait_for("#documents").await.unwrap();
    browser.close().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_document_keeps_its_latest_change_whatever_order_changes_are_stored_in() {
    let (stack, _nats, db) = common::stack("history-order", 2).await;
    let pool = ledger_runtime::db::connect_schema(db.url(), "gateway", 2)
        .await
        .unwrap();
    let change = |state, at: &str| ledger_runtime::status::StatusUpdate {
        entity: "invoice".into(),
        document_key: "invoice:1:000000900".into(),
        state,
        sage_reference: None,
        sage_id: None,
        sage_number: None,
        skip_reason: None,
        detail: None,
        error_code: None,
        message: None,
        event_id: None,
        service: "documents".into(),
        at: at.parse().unwrap(),
    };
    use ledger_runtime::status::SyncState::{Failed, Pending, Synced};
    let mut conn = pool.acquire().await.unwrap();
    // Stored out of order: position 3 first, then the older 2; then a newer 5.
    for (position, update) in [
        (3, change(Synced, "2026-12-01T10:03:00Z")),
        (2, change(Pending, "2026-12-01T10:02:00Z")),
    ] {
        gateway::history::record(&mut conn, "order-shop", position, &update)
            .await
            .unwrap();
    }
    let latest = || async {
        sqlx::query_as::<_, (i64, String)>(
            "SELECT position, state FROM status_documents WHERE merchant_id = 'order-shop'",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    assert_eq!(latest().await, [(3, "synced".to_string())]);
    gateway::history::record(
        &mut conn,
        "order-shop",
        5,
        &change(Failed, "2026-12-01T10:05:00Z"),
    )
    .await
    .unwrap();
    assert_eq!(latest().await, [(5, "failed".to_string())]);
    drop(conn);
    stack.stop().await;
}
