//! What the portal's Chromium tests share: signing a browser in with an operator's link, and
//! waiting for a row to appear on the portal's front page.

use ledger_stack::Stack;
use ledger_testkit::browser::{Browser, Element};

use super::stores::{call, ADMIN};

/// Opens a sign-in link and confirms it on its page (the GET alone does not sign in).
pub async fn open_link(browser: &Browser, link: &str) {
    browser.goto(link).await.unwrap();
    let button = browser.wait_for("#sign-in").await.unwrap();
    browser.click(&button).await.unwrap();
}

/// Signs the browser in to `merchant`'s portal with a fresh operator link.
pub async fn sign_in(stack: &Stack, browser: &Browser, merchant: &str) {
    let (status, link) = call(
        reqwest::Method::POST,
        format!(
            "{}/v1/admin/merchants/{merchant}/portal-links",
            stack.gateway_url
        ),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, 201, "{link}");
    open_link(browser, link["url"].as_str().unwrap()).await;
    browser.wait_for("#sage").await.unwrap();
}

/// The first element matching `css` on the portal's front page, reloading it for up to 20
/// seconds while there is none.
pub async fn first_on_front_page(stack: &Stack, browser: &Browser, css: &str) -> Option<Element> {
    for _ in 0..100 {
        if let Some(found) = browser.find_all(css).await.unwrap().into_iter().next() {
            return Some(found);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        browser
            .goto(&format!("{}/portal", stack.gateway_url))
            .await
            .unwrap();
    }
    None
}

/// Clicks the element matching `css` (a button submits its form and the next page loads).
pub async fn press(browser: &Browser, css: &str) {
    let element = browser.find(css).await.unwrap();
    browser.click(&element).await.unwrap();
}

/// The text of the page's status message (`role=status`), waiting for it.
pub async fn status_text(browser: &Browser) -> String {
    let notice = browser.wait_for("[role=status]").await.unwrap();
    browser.text(&notice).await.unwrap()
}

/// The CSRF token of the settings page as the session with `cookie` is shown it.
pub async fn settings_csrf(stack: &Stack, http: &reqwest::Client, cookie: &str) -> String {
    let page = http
        .get(format!("{}/portal/settings", stack.gateway_url))
        .header("cookie", format!("{}={cookie}", gateway::portal::COOKIE))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page's CSRF token")
        .to_string()
}

/// The settings stored for `merchant`, through the admin API.
pub async fn stored_settings(stack: &Stack, merchant: &str) -> serde_json::Value {
    let (status, body) = call(
        reqwest::Method::GET,
        format!("{}/v1/admin/merchants/{merchant}", stack.gateway_url),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["settings"].clone()
}
