//! The portal's pages as compile-checked templates (`templates/portal/`, askama).
//!
//! Every value a page shows goes through the template's HTML escaping: a name, URL, reason or
//! token cannot open a tag or leave an attribute, and no page assembles HTML by hand. Each
//! struct below is one page (or one section of the front page); [`respond`] renders it with
//! the portal's security headers.

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// "Ledger is unavailable", with the reference the logs carry.
#[derive(Template)]
#[template(path = "portal/unavailable.html")]
pub struct Unavailable<'a> {
    /// Correlation id of the failure in the logs.
    pub correlation_id: &'a str,
}

/// A Sage callback that arrived without the session that started the connection.
#[derive(Template)]
#[template(path = "portal/unbound.html")]
pub struct Unbound;

/// One Sage business offered for confirmation.
pub struct BusinessChoice<'a> {
    /// Sage's id of the business.
    pub id: &'a str,
    /// Its name (may be empty).
    pub name: &'a str,
}

/// The Sage businesses of a pending connection, for the merchant to confirm one.
#[derive(Template)]
#[template(path = "portal/confirm_sage.html")]
pub struct ConfirmSage<'a> {
    /// The merchant's display name.
    pub merchant_name: &'a str,
    /// The merchant's id.
    pub merchant_id: &'a str,
    /// The session's CSRF token.
    pub csrf: &'a str,
    /// Id of the pending connection.
    pub pending: &'a str,
    /// The businesses to choose from (the first is preselected).
    pub businesses: Vec<BusinessChoice<'a>>,
}

/// A confirmation naming a business that was not offered.
#[derive(Template)]
#[template(path = "portal/sage_refused.html")]
pub struct SageRefused<'a> {
    /// The refused form field.
    pub field: &'a str,
}

/// Signed out (or never signed in), with why.
#[derive(Template)]
#[template(path = "portal/signed_out.html")]
pub struct SignedOut<'a> {
    /// Why the browser is signed out.
    pub message: &'a str,
}

/// The sign-in link's confirmation page.
#[derive(Template)]
#[template(path = "portal/login.html")]
pub struct Login<'a> {
    /// The display name of the merchant the link belongs to.
    pub merchant_name: &'a str,
    /// The link's token, posted by the button.
    pub token: &'a str,
}

/// A sign-in posted from another site.
#[derive(Template)]
#[template(path = "portal/login_refused.html")]
pub struct LoginRefused;

/// A form whose CSRF token does not match the session.
#[derive(Template)]
#[template(path = "portal/form_expired.html")]
pub struct FormExpired;

/// One paired store key on the front page.
pub struct KeyRow {
    /// The key's id.
    pub id: String,
    /// The store's label.
    pub label: String,
    /// When it was paired.
    pub created: String,
    /// Its last login.
    pub used: String,
    /// When it was disconnected, if it was.
    pub revoked: Option<String>,
}

/// One dead letter on the front page.
pub struct DeadRow {
    /// The service holding it.
    pub service: &'static str,
    /// Its id in that service.
    pub id: i64,
    /// What it is ("invoice created").
    pub what: String,
    /// The reason code.
    pub code: String,
    /// The field the reason names, or empty.
    pub field: String,
    /// The reason's text.
    pub message: String,
    /// Since when it waits.
    pub since: String,
}

/// One document held back on purpose.
pub struct HeldRow {
    /// The document's key.
    pub document_key: String,
    /// The reason code.
    pub reason: String,
    /// What to change.
    pub detail: String,
}

/// The front page of a signed-in merchant.
#[derive(Template)]
#[template(path = "portal/home.html")]
pub struct Home<'a> {
    /// The merchant's display name.
    pub merchant_name: &'a str,
    /// The merchant's id.
    pub merchant_id: &'a str,
    /// The message after an action, if any.
    pub notice: Option<&'a str>,
    /// The error after an action, if any.
    pub error: Option<String>,
    /// The Sage business connected, if any.
    pub sage_business: Option<String>,
    /// The connection's status when it needs attention (`None`: active).
    pub sage_attention: Option<String>,
    /// The Sage business's base currency, once known.
    pub base_currency: Option<String>,
    /// The session's CSRF token.
    pub csrf: &'a str,
    /// How long a pairing code works.
    pub code_ttl_minutes: i64,
    /// The paired store keys.
    pub keys: Vec<KeyRow>,
    /// Documents that did not reach Sage.
    pub dead: Vec<DeadRow>,
    /// Services that did not answer for their dead letters.
    pub silent: Vec<&'static str>,
    /// Documents held back that need the merchant (`None`: the documents service did not answer).
    pub held: Option<Vec<HeldRow>>,
    /// Days the books check covers.
    pub books_days: i64,
    /// The onboarding steps.
    pub checklist: Vec<Step>,
}

/// One onboarding step on the front page.
pub struct Step {
    /// Its element id (`step-<id>`).
    pub id: &'static str,
    /// What it is.
    pub label: &'static str,
    /// Whether it is done.
    pub done: bool,
    /// The page where it is done.
    pub href: &'static str,
    /// What is missing (empty when done).
    pub hint: String,
}

/// One option of a filter.
pub struct Choice {
    /// Its value in the URL.
    pub value: &'static str,
    /// What the page calls it.
    pub label: &'static str,
    /// Whether it is the one asked for.
    pub selected: bool,
}

/// One document in the sync history.
pub struct HistoryRow {
    /// Its Magento document key.
    pub document_key: String,
    /// Its type as stored (`invoice`, `payment`, …).
    pub kind: String,
    /// Its type as the page says it ("Invoice").
    pub entity: String,
    /// Its Magento number.
    pub number: String,
    /// Its state as stored (`synced`, `skipped`, `failed`, `pending`).
    pub state: String,
    /// What the page calls the state ("Waiting").
    pub state_label: String,
    /// Sage's number when synced; the reason, or Sage's message, otherwise.
    pub outcome: String,
    /// Sage's id of the record, when known (for a link into Sage).
    pub sage_id: String,
    /// When it changed last.
    pub at: String,
    /// Where to act on it (held documents, Send again), if anywhere.
    pub action_href: Option<&'static str>,
    /// The link's text.
    pub action_label: &'static str,
}

/// The sync history: every document the stores sent, filtered and paged.
#[derive(Template)]
#[template(path = "portal/history.html")]
pub struct History {
    /// The state filter's options.
    pub states: Vec<Choice>,
    /// The type filter's options.
    pub types: Vec<Choice>,
    /// The first day asked for (YYYY-MM-DD or empty).
    pub from: String,
    /// The last day asked for.
    pub to: String,
    /// The Magento number searched for.
    pub search: String,
    /// A refused filter, naming the parameter.
    pub error: Option<String>,
    /// The documents of this page.
    pub rows: Vec<HistoryRow>,
    /// The next page's URL, when more follow.
    pub next: Option<String>,
    /// Whether this is the first page.
    pub first_page: bool,
    /// The CSV export of the same filter.
    pub export: String,
}

/// The front page's "Documents held back" section alone.
#[derive(Template)]
#[template(source = "{% include \"portal/held.html\" %}", ext = "html")]
pub struct HeldSection<'a> {
    /// As [`Home::held`].
    pub held: Option<Vec<HeldRow>>,
    /// As [`Home::csrf`].
    pub csrf: &'a str,
    /// As [`Home::merchant_id`].
    pub merchant_id: &'a str,
}

/// The front page's "Documents that did not reach Sage" section alone.
#[derive(Template)]
#[template(source = "{% include \"portal/attention.html\" %}", ext = "html")]
pub struct AttentionSection<'a> {
    /// As [`Home::dead`].
    pub dead: Vec<DeadRow>,
    /// As [`Home::silent`].
    pub silent: Vec<&'static str>,
    /// The session's CSRF token.
    pub csrf: &'a str,
}

/// The books check ran too recently.
#[derive(Template)]
#[template(path = "portal/books_throttled.html")]
pub struct BooksThrottled {
    /// When it can run again.
    pub again: String,
    /// In how many seconds.
    pub seconds: u64,
}

/// The books check could not read Sage.
#[derive(Template)]
#[template(path = "portal/books_failed.html")]
pub struct BooksFailed;

/// One problem the books check found.
pub struct ProblemRow {
    /// What is wrong ("Missing").
    pub problem: &'static str,
    /// The document ("Invoice 000000123").
    pub document: String,
    /// Its Magento total with currency.
    pub total: String,
    /// What Sage holds.
    pub sage: String,
    /// Why, when known.
    pub why: String,
}

/// The books check's report.
#[derive(Template)]
#[template(path = "portal/books.html")]
pub struct Books {
    /// The first day covered.
    pub since: chrono::NaiveDate,
    /// How many documents Magento sent.
    pub expected: usize,
    /// What is not in Sage exactly once with the same total.
    pub problems: Vec<ProblemRow>,
    /// Documents in Sage that did not come from the store.
    pub foreign: usize,
}

/// The store waiting with a pairing code, for the merchant to confirm.
#[derive(Template)]
#[template(path = "portal/pair.html")]
pub struct Pair<'a> {
    /// The store's URL.
    pub store_url: &'a str,
    /// The store's name.
    pub store_name: &'a str,
    /// The module version it runs.
    pub module_version: &'a str,
    /// When it asked for the code.
    pub requested_at: String,
    /// How many minutes ago.
    pub minutes_ago: i64,
    /// The session's CSRF token.
    pub csrf: &'a str,
    /// The pairing code.
    pub code: &'a str,
}

/// Renders `view` as a response with the portal's security headers: a strict content
/// security policy (no script; `sage_origin` is allowed as a form target only on pages that
/// send the merchant to Sage's consent page), no framing, no referrer, no caching.
pub fn respond(status: StatusCode, sage_origin: Option<&str>, view: &impl Template) -> Response {
    let html = match view.render() {
        Ok(html) => html,
        Err(e) => {
            tracing::error!(error = %e, "portal page not rendered");
            return (StatusCode::INTERNAL_SERVER_ERROR, "page not rendered").into_response();
        }
    };
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'{}; frame-ancestors 'none'; base-uri 'none'",
        sage_origin.map(|o| format!(" {o}")).unwrap_or_default()
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
