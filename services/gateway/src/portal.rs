//! The merchant portal: the hosted side a merchant uses to connect Sage and pair stores.
//!
//! The operator hands the merchant a single-use sign-in link
//! (`POST /v1/admin/merchants/{m}/portal-links`, `ledgerctl merchant portal-link`). Opening it
//! shows a confirmation page and changes nothing; its button POSTs the link, which is then
//! used up and starts a browser session (`HttpOnly`, `SameSite=Lax` cookie, 12 hours; named
//! `__Host-ledger_portal` and `Secure` when the public URL is https). So a link someone else
//! sends cannot silently sign the browser in to their merchant. The page shows the
//! Sage connection, the paired stores and the documents that did not reach Sage (the services'
//! dead letters, with their reasons and a Retry button), and takes a store's pairing code.
//! A pairing code is not claimed when entered: the page first shows the store's URL, name and
//! the time it asked, and claims only when the merchant confirms. Connecting Sage shows the
//! Sage business for the merchant to confirm before anything is stored ([`crate::connect`]).
//! Every form carries the session's CSRF token. The books check runs at most once per
//! merchant per `LEDGER_BOOKS_CHECK_INTERVAL_SECS`. Pages are server-rendered HTML with every
//! value escaped and a strict content security policy; no script runs.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde_json::{json, Value};

use crate::merchants::{hash_key, require_admin};
use crate::pairing::{self, ClaimRefusal};
use crate::AppState;

/// Name of the session cookie over http (development).
pub const COOKIE: &str = "ledger_portal";
/// Name of the session cookie over https: `__Host-` makes browsers require `Secure`, `Path=/`
/// and no `Domain`, so no other host can set or shadow it.
pub const SECURE_COOKIE: &str = "__Host-ledger_portal";
/// How long a sign-in link can be used.
pub const LINK_TTL_HOURS: i64 = 24;
/// How long a portal session lasts.
pub const SESSION_TTL_HOURS: i64 = 12;

/// Routes of the portal and of its admin API.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/v1/admin/merchants/{merchant}/portal-links",
            post(create_link),
        )
        .route("/portal/login", get(login).post(login_confirmed))
        .route("/portal", get(home))
        .route("/portal/pair", post(pair))
        .route("/portal/pair/confirm", post(pair_confirmed))
        .route("/portal/sage/confirm", post(sage_confirmed))
        .route("/portal/keys/{key}/revoke", post(revoke))
        .route("/portal/sage/connect", post(connect_sage))
        .route(
            "/portal/dead-letters/{service}/{id}/retry",
            post(retry_dead_letter),
        )
        .route("/portal/logout", post(logout))
        .route("/portal/books", get(books))
}

fn random_token() -> String {
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    hex::encode(raw)
}

fn esc(text: &str) -> String {
    html_escape::encode_safe(text).into_owned()
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    let id = crate::correlation_id();
    tracing::error!(error = %e, correlation_id = %id, "portal store failure");
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        "Ledger is unavailable",
        &format!(
            "<p>Ledger cannot answer right now. Please try again in a minute.</p>\
             <p class=\"muted\">Reference <code id=\"correlation-id\">{}</code></p>",
            esc(&id)
        ),
    )
}

/// The session cookie's name for this gateway.
pub fn cookie_name(app: &AppState) -> &'static str {
    if app.config.https() {
        SECURE_COOKIE
    } else {
        COOKIE
    }
}

/// A form field the portal refused, and why (the page and the logs name the field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The form field.
    pub field: &'static str,
    /// Why it was refused.
    pub reason: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Characters of the random tokens the portal hands out (CSRF, sign-in links, ids).
const TOKEN_MAX: usize = 128;

/// A token-like field (`csrf`, `token`, `pending`): present, at most 128 characters, hex.
pub fn token_field<'a>(
    form: &'a HashMap<String, String>,
    field: &'static str,
) -> Result<&'a str, FieldError> {
    let value = form.get(field).map(String::as_str).unwrap_or("").trim();
    if value.is_empty() {
        return Err(FieldError {
            field,
            reason: "required".into(),
        });
    }
    if value.len() > TOKEN_MAX || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(FieldError {
            field,
            reason: "not a token this portal issued".into(),
        });
    }
    Ok(value)
}

/// The pairing code of a form, normalised (`code`; see [`pairing::parse_code`]).
pub fn code_field(form: &HashMap<String, String>) -> Result<String, FieldError> {
    let typed = form.get("code").map(String::as_str).unwrap_or("");
    pairing::parse_code(typed).map_err(|refusal| FieldError {
        field: "code",
        reason: refusal.message().trim_start_matches("code: ").to_string(),
    })
}

/// The page a Sage callback gets when it arrives outside the portal session that started
/// the connection: nothing is connected.
pub fn unbound_callback_page() -> Response {
    page(
        StatusCode::FORBIDDEN,
        None,
        "Sage not connected",
        "<h1>Sage not connected</h1><p class=\"error\" role=\"alert\" id=\"unbound\">This \
         Sage connection was started in another browser session, so nothing was connected. \
         If you want to connect your Sage business, sign in to your own Ledger portal and \
         click <em>Connect Sage</em> there.</p>",
    )
}

/// The page asking the signed-in merchant to confirm the Sage business of a pending
/// connection (after the callback). Without the merchant's session: signed out.
pub async fn confirm_connection_page(
    app: &AppState,
    headers: &HeaderMap,
    pending_id: &str,
    businesses: &[crate::connect::Business],
) -> Response {
    let session = match session(app, headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return signed_out("Your session has ended."),
        Err(e) => return unavailable(e),
    };
    let name = merchant_name(app, &session.merchant).await;
    let mut options = String::new();
    for (i, b) in businesses.iter().enumerate() {
        let _ = write!(
            options,
            "<li><label><input type=\"radio\" name=\"business\" value=\"{id}\"{checked}> \
             <strong class=\"business-name\">{name}</strong> <span class=\"muted\">(Sage id \
             <code class=\"business-id\">{id}</code>)</span></label></li>",
            id = esc(&b.id),
            name = esc(if b.name.is_empty() {
                "(no name)"
            } else {
                &b.name
            }),
            checked = if i == 0 { " checked" } else { "" },
        );
    }
    let body = format!(
        "<h1>Connect this Sage business?</h1>\
         <p>Sage will send the books of <strong>{merchant}</strong> (Ledger merchant \
         <code>{merchant_id}</code>) to this Sage business:</p>\
         <form method=\"post\" action=\"/portal/sage/confirm\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"pending\" value=\"{pending}\">\
         <ul id=\"sage-businesses\">{options}</ul>\
         <button type=\"submit\" id=\"confirm-sage\">Connect this business</button> \
         <a href=\"/portal\" id=\"cancel-sage\">Cancel</a></form>\
         <p class=\"muted\">Nothing is connected until you click the button. If you did not \
         start this, click Cancel.</p>",
        merchant = esc(&name),
        merchant_id = esc(&session.merchant),
        csrf = esc(&session.csrf),
        pending = esc(pending_id),
    );
    page(StatusCode::OK, None, "Connect Sage", &body)
}

async fn merchant_name(app: &AppState, merchant: &str) -> String {
    sqlx::query_scalar::<_, String>("SELECT name FROM merchants WHERE merchant_id = $1")
        .bind(merchant)
        .fetch_optional(&app.db)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| merchant.to_string())
}

/// A page with the portal's security headers. `sage_origin` is allowed as a form target only
/// on pages that send the merchant to Sage's consent page.
fn page(status: StatusCode, sage_origin: Option<&str>, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Ledger</title><style>{STYLE}</style></head>\
         <body><main>{body}</main></body></html>",
        title = esc(title),
    );
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

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}\
main{max-width:52rem;margin:2rem auto;padding:0 1rem}section{background:#fff;border:1px solid #dde1e7;\
border-radius:8px;padding:1rem 1.25rem;margin:1rem 0}table{border-collapse:collapse;width:100%}\
td,th{text-align:left;padding:.4rem;border-bottom:1px solid #eef0f3}.notice{background:#e7f6ec;\
border:1px solid #9fd8b1;padding:.6rem 1rem;border-radius:6px}.error{background:#fdecec;\
border:1px solid #f1a8a8;padding:.6rem 1rem;border-radius:6px}.muted{color:#5d6675}\
input{font-size:1.1rem;padding:.3rem;letter-spacing:.1em;text-transform:uppercase}";

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

fn signed_out(message: &str) -> Response {
    page(
        StatusCode::UNAUTHORIZED,
        None,
        "Signed out",
        &format!(
            "<h1>Signed out</h1><p>{}</p><p class=\"muted\">Ask your Ledger operator for a new \
             sign-in link.</p>",
            esc(message)
        ),
    )
}

async fn create_link(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(merchant): Path<String>,
) -> Response {
    if let Err(r) = require_admin(&app, &headers) {
        return r;
    }
    let token = random_token();
    let inserted: Result<Option<DateTime<Utc>>, _> = sqlx::query_scalar(
        "INSERT INTO portal_links (token_hash, merchant_id, expires_at)
         SELECT $1, merchant_id, now() + make_interval(hours => $3) FROM merchants WHERE merchant_id = $2
         RETURNING expires_at",
    )
    .bind(hash_key(&token))
    .bind(&merchant)
    .bind(LINK_TTL_HOURS as i32)
    .fetch_optional(&app.db)
    .await;
    match inserted {
        Ok(Some(expires_at)) => (
            StatusCode::CREATED,
            Json(json!({
                "merchant_id": merchant,
                "url": format!("{}/portal/login?token={token}", app.config.public_url.trim_end_matches('/')),
                "expires_at": expires_at,
            })),
        )
            .into_response(),
        Ok(None) => crate::json_error(StatusCode::NOT_FOUND, "not_found", "no such merchant"),
        Err(e) => crate::unavailable(e),
    }
}

/// A POST coming from another site's page: refused, so a page elsewhere cannot submit the
/// sign-in form with its own link. Browsers say where a request comes from in
/// `Sec-Fetch-Site` (only `same-origin`, or `none` for one the user started, pass) and in
/// `Origin` (which must be the gateway's; `null`, sent under the portal's no-referrer policy,
/// says nothing). A client that sends neither is not a browser a page could drive.
fn foreign_origin(app: &AppState, headers: &HeaderMap) -> bool {
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if let Some(site) = site {
        return !matches!(site, "same-origin" | "none");
    }
    let Some(origin) = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| *o != "null")
    else {
        return false;
    };
    let own = url::Url::parse(&app.config.public_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    origin != own
}

async fn valid_link(app: &AppState, token: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT m.name FROM portal_links l JOIN merchants m USING (merchant_id)
         WHERE l.token_hash = $1 AND l.used_at IS NULL AND l.expires_at > now()",
    )
    .bind(hash_key(token))
    .fetch_optional(&app.db)
    .await
}

const LINK_INVALID: &str = "This sign-in link is not valid: links work once, for 24 hours.";

/// `GET /portal/login?token=…`: a page with a button; neither uses the link up nor signs in.
async fn login(
    State(app): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let token = match token_field(&q, "token") {
        Ok(t) => t,
        Err(_) => return signed_out(LINK_INVALID),
    };
    let name = match valid_link(&app, token).await {
        Ok(Some(name)) => name,
        Ok(None) => return signed_out(LINK_INVALID),
        Err(e) => return unavailable(e),
    };
    let body = format!(
        "<h1>Sign in to Ledger</h1><p>This link signs you in to the Ledger portal of \
         <strong id=\"link-merchant\">{}</strong>.</p>\
         <form method=\"post\" action=\"/portal/login\">\
         <input type=\"hidden\" name=\"token\" value=\"{}\">\
         <button type=\"submit\" id=\"sign-in\">Sign in</button></form>\
         <p class=\"muted\">Only continue if your Ledger operator sent you this link for your \
         own business.</p>",
        esc(&name),
        esc(token)
    );
    page(StatusCode::OK, None, "Sign in", &body)
}

/// `POST /portal/login` (the confirmation page's button): uses the link up and starts the
/// session.
async fn login_confirmed(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if foreign_origin(&app, &headers) {
        return page(
            StatusCode::FORBIDDEN,
            None,
            "Sign-in refused",
            "<h1>Sign-in refused</h1><p>Sign in from the link's own page.</p>",
        );
    }
    let token = match token_field(&form, "token") {
        Ok(t) => t,
        Err(_) => return signed_out(LINK_INVALID),
    };
    let merchant: Result<Option<String>, _> = sqlx::query_scalar(
        "UPDATE portal_links SET used_at = now()
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() RETURNING merchant_id",
    )
    .bind(hash_key(token))
    .fetch_optional(&app.db)
    .await;
    let merchant = match merchant {
        Ok(Some(m)) => m,
        Ok(None) => return signed_out(LINK_INVALID),
        Err(e) => return unavailable(e),
    };
    let session = random_token();
    let stored = sqlx::query(
        "INSERT INTO portal_sessions (session_hash, merchant_id, csrf_token, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(hours => $4))",
    )
    .bind(hash_key(&session))
    .bind(&merchant)
    .bind(random_token())
    .bind(SESSION_TTL_HOURS as i32)
    .execute(&app.db)
    .await;
    if let Err(e) = stored {
        return unavailable(e);
    }
    tracing::info!(%merchant, "portal session started");
    let mut response = redirect("/portal");
    response.headers_mut().insert(
        header::SET_COOKIE,
        crate::connect::set_cookie(&app, cookie_name(&app), &session, SESSION_TTL_HOURS * 3600),
    );
    response
}

/// A signed-in merchant.
struct Session {
    merchant: String,
    csrf: String,
}

/// The portal session cookie's value in a request, if sent.
pub fn session_cookie(app: &AppState, headers: &HeaderMap) -> Option<String> {
    crate::connect::request_cookie(headers, cookie_name(app))
}

async fn session(app: &AppState, headers: &HeaderMap) -> Result<Option<Session>, sqlx::Error> {
    let Some(id) = session_cookie(app, headers) else {
        return Ok(None);
    };
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT merchant_id, csrf_token FROM portal_sessions
         WHERE session_hash = $1 AND expires_at > now()",
    )
    .bind(hash_key(&id))
    .fetch_optional(&app.db)
    .await?;
    Ok(row.map(|(merchant, csrf)| Session { merchant, csrf }))
}

/// The session of a form POST whose CSRF token matches, or the page to answer instead.
async fn form_session(
    app: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Session, Response> {
    let session = match session(app, headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(signed_out("Your session has ended.")),
        Err(e) => return Err(unavailable(e)),
    };
    // Constant-time comparison: the token must not be guessable byte by byte.
    let same = token_field(form, "csrf").is_ok_and(|sent| {
        use subtle::ConstantTimeEq;
        sent.len() == session.csrf.len()
            && bool::from(sent.as_bytes().ct_eq(session.csrf.as_bytes()))
    });
    if !same {
        return Err(page(
            StatusCode::FORBIDDEN,
            None,
            "Form expired",
            "<h1>Form expired</h1><p>This form is no longer valid. \
             <a href=\"/portal\">Reload the page</a> and try again.</p>",
        ));
    }
    Ok(session)
}

/// Messages the page shows after an action, by the code in its URL (never text from the URL).
fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "paired" => {
            "Code accepted. Your store collects its key within a minute; it then appears below."
        }
        "revoked" => "Store disconnected: its key no longer works.",
        "connected" => "Sage is connected.",
        "pairing_cancelled" => "Nothing was paired.",
        "retried" => "Sent again: it is in Sage now.",
        _ => return None,
    })
}

fn error_text(code: &str) -> Option<String> {
    let refusal = [
        ClaimRefusal::InvalidCode,
        ClaimRefusal::UnknownCode,
        ClaimRefusal::Used,
        ClaimRefusal::Expired,
        ClaimRefusal::TooManyAttempts,
    ]
    .into_iter()
    .find(|r| r.code() == code);
    if let Some(r) = refusal {
        return Some(format!("Pairing code not accepted. {}", r.message()));
    }
    Some(match code {
        "unknown_key" => "No such store key.".into(),
        "sage_connect_failed" => "Sage could not be connected. Please try again.".into(),
        "consent_refused" => "Sage was not connected: the consent was declined.".into(),
        "sage_confirm_expired" => {
            "Sage was not connected: the confirmation expired. Please connect again.".into()
        }
        "retry_failed" => "Sent again, and refused again: the reason is in the list below.".into(),
        "unknown_dead_letter" => "That document is no longer waiting.".into(),
        _ => return None,
    })
}

fn when(at: Option<DateTime<Utc>>) -> String {
    at.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "—".into())
}

async fn home(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let session = match session(&app, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return signed_out("Please sign in with the link your Ledger operator sent you.")
        }
        Err(e) => return unavailable(e),
    };
    let merchant = &session.merchant;
    let name: Result<Option<String>, _> =
        sqlx::query_scalar("SELECT name FROM merchants WHERE merchant_id = $1")
            .bind(merchant)
            .fetch_optional(&app.db)
            .await;
    let name = match name {
        Ok(Some(n)) => n,
        Ok(None) => return signed_out("This merchant no longer exists."),
        Err(e) => return unavailable(e),
    };
    let keys = match pairing::keys_of(&app, merchant).await {
        Ok(k) => k,
        Err(e) => return unavailable(e),
    };
    let connection = app.tokens.store().load(merchant).await.ok().flatten();
    let csrf = esc(&session.csrf);

    let mut body = format!(
        "<h1>{}</h1><p class=\"muted\">Ledger merchant <code>{}</code></p>",
        esc(&name),
        esc(merchant)
    );
    if let Some(text) = q.get("notice").and_then(|c| notice_text(c)) {
        let _ = write!(
            body,
            "<p class=\"notice\" role=\"status\">{}</p>",
            esc(text)
        );
    }
    if let Some(text) = q.get("error").and_then(|c| error_text(c)) {
        let _ = write!(body, "<p class=\"error\" role=\"alert\">{}</p>", esc(&text));
    }

    // Onboarding: the Sage business's base currency, read at connect (money in).
    let base_currency = crate::merchants::settings_of(&app, merchant)
        .await
        .ok()
        .flatten()
        .and_then(|s| {
            s.get("sage_base_currency")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    let base_note = base_currency
        .map(|c| {
            format!(
                " Its base currency is <code id=\"sage-base-currency\">{c}</code>: every Magento \
                 website must keep its books in {c} too (Magento's base currency). Documents and \
                 payments of a website with another base currency are held as \
                 <code>base_currency_mismatch</code>, naming both currencies.",
                c = esc(&c)
            )
        })
        .unwrap_or_default();
    let (sage_state, button) = match &connection {
        Some(c) if c.status.as_str() == "active" => (
            format!(
                "Connected to Sage business <code id=\"sage-business\">{}</code>.{base_note}",
                esc(&c.business_id)
            ),
            "Reconnect Sage",
        ),
        Some(c) => (
            format!(
                "The connection to Sage business <code id=\"sage-business\">{}</code> needs \
                 attention ({}): your documents wait until you reconnect.",
                esc(&c.business_id),
                esc(c.status.as_str())
            ),
            "Reconnect Sage",
        ),
        None => (
            "Not connected yet: documents wait until Sage is connected.".into(),
            "Connect Sage",
        ),
    };
    let _ = write!(
        body,
        "<section id=\"sage\"><h2>Sage Business Cloud Accounting</h2><p>{sage_state}</p>\
         <form method=\"post\" action=\"/portal/sage/connect\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\">{button}</button></form></section>"
    );

    let _ = write!(
        body,
        "<section id=\"stores\"><h2>Magento stores</h2>\
         <p>In your store's admin open <em>Stores → Configuration → Ledger → Sage Sync → \
         Pairing</em>, click <em>Generate pairing code</em> and enter the code here. Codes work \
         once, for {} minutes.</p>\
         <form method=\"post\" action=\"/portal/pair\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label for=\"code\">Pairing code</label> \
         <input id=\"code\" name=\"code\" required autocomplete=\"off\" placeholder=\"XXXX-XXXX\" \
         maxlength=\"12\"> <button type=\"submit\" id=\"pair\">Pair store</button></form>",
        pairing::CODE_TTL_MINUTES
    );
    if keys.is_empty() {
        body.push_str("<p class=\"muted\" id=\"no-stores\">No store is paired yet.</p>");
    } else {
        body.push_str(
            "<table id=\"keys\"><thead><tr><th>Store</th><th>Key</th><th>Paired</th>\
             <th>Last login</th><th>Status</th><th></th></tr></thead><tbody>",
        );
        for key in &keys {
            let (status, action) = match key.revoked_at {
                Some(at) => (format!("Disconnected {}", when(Some(at))), String::new()),
                None => (
                    "Active".to_string(),
                    format!(
                        "<form method=\"post\" action=\"/portal/keys/{id}/revoke\">\
                         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                         <button type=\"submit\">Disconnect</button></form>",
                        id = esc(&key.key_id)
                    ),
                ),
            };
            let _ = write!(
                body,
                "<tr data-key=\"{id}\"><td>{label}</td><td><code>{id}</code></td><td>{created}</td>\
                 <td>{used}</td><td class=\"status\">{status}</td><td>{action}</td></tr>",
                id = esc(&key.key_id),
                label = esc(&key.label),
                created = when(Some(key.created_at)),
                used = when(key.last_used_at),
                status = esc(&status),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    let (dead, silent) = dead_letters_of(&app, merchant).await;
    body.push_str(&attention_section(&dead, &silent, &csrf));
    body.push_str(&held_section(
        held_documents_of(&app, merchant).await.as_deref(),
    ));
    let _ = write!(
        body,
        "<p><a id=\"books-check\" href=\"/portal/books\">Check my books</a> \
         <span class=\"muted\">(every invoice and credit memo of the last {BOOKS_CHECK_DAYS} days, \
         compared with Sage)</span></p>"
    );
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/portal/logout\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\">Sign out</button></form>"
    );
    let sage_origin = url::Url::parse(app.tokens.oauth().authorize_url("x").as_str())
        .ok()
        .map(|u| u.origin().ascii_serialization());
    page(StatusCode::OK, sage_origin.as_deref(), &name, &body)
}

/// How long the page waits for each service's dead letters.
const ASK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// The merchant's dead letters in every consumer service; services that do not answer are
/// named instead, so the page never claims "nothing failed" without knowing.
async fn dead_letters_of(
    app: &AppState,
    merchant: &str,
) -> (
    Vec<(&'static str, ledger_runtime::journal::DeadLetter)>,
    Vec<&'static str>,
) {
    use ledger_runtime::dead_letters::{subject, Answer, Command};
    let mut found = Vec::new();
    let mut silent = Vec::new();
    for service in crate::audit::AUDITED_SERVICES {
        let answer: Result<Answer, _> = ledger_runtime::bus::request_json(
            &app.nats,
            &subject(service),
            &Command::List {
                merchant: Some(merchant.to_string()),
            },
            ASK_TIMEOUT,
        )
        .await;
        match answer {
            Ok(Answer::Listed { dead_letters }) => {
                found.extend(dead_letters.into_iter().map(|d| (service, d)));
            }
            _ => silent.push(service),
        }
    }
    found.sort_by_key(|(_, d)| d.created_at);
    (found, silent)
}

/// The merchant's documents held back on purpose (`None` when the documents service did not
/// answer).
async fn held_documents_of(
    app: &AppState,
    merchant: &str,
) -> Option<Vec<ledger_rpc::HeldDocument>> {
    ledger_rpc::ask(
        &app.nats,
        ledger_rpc::HELD_DOCUMENTS_SUBJECT,
        &ledger_rpc::HeldDocumentsRequest {
            merchant: merchant.to_string(),
        },
        ASK_TIMEOUT,
    )
    .await
    .ok()
}

/// `ledger_mapping::reasons::NOTHING_TO_POST`: a zero document, kept out of Sage with nothing
/// to fix.
const NOTHING_TO_POST: &str = "nothing_to_post";
/// `ledger_mapping::reasons::CANCELED`: canceled in Magento before it reached Sage; nothing to fix.
const CANCELED: &str = "canceled";

/// A held document the merchant has nothing to fix for: a zero document, a canceled one, or
/// one kept out by the merchant's own sync policy (cutover, website, store view, unpaid).
fn nothing_to_fix(reason: &str) -> bool {
    reason == NOTHING_TO_POST || reason == CANCELED || ledger_mapping::is_policy_skip(reason)
}

/// Documents held back on purpose, each with its reason code and the detail that says what to
/// do (which line, which rate, which dates).
fn held_section(held: Option<&[ledger_rpc::HeldDocument]>) -> String {
    let mut body = String::from("<section id=\"held\"><h2>Documents held back</h2>");
    match held {
        None => body.push_str(
            "<p class=\"error\">The documents service did not answer; held documents are missing here.</p>",
        ),
        Some([]) => body.push_str(
            "<p class=\"muted\" id=\"nothing-held\">No document is held back.</p>",
        ),
        // A zero document (`nothing_to_post`) is kept out of Sage with nothing to fix.
        Some(held)
            if held
                .iter()
                .all(|h| nothing_to_fix(&h.reason)) =>
        {
            body.push_str(
                "<p class=\"muted\" id=\"nothing-held\">No document is held back.</p>",
            )
        }
        Some(held) => {
            body.push_str(
                "<p>Ledger kept these out of Sage on purpose; the detail says what to change. \
                 They go to Sage when you fix the cause and send them again.</p>\
                 <table id=\"held-documents\"><thead><tr><th>Document</th><th>Reason</th>\
                 <th>Details</th></tr></thead><tbody>",
            );
            for h in held
                .iter()
                .filter(|h| !nothing_to_fix(&h.reason))
            {
                let _ = write!(
                    body,
                    "<tr data-held=\"{key}\"><td>{key}</td><td><code>{reason}</code></td><td>{detail}</td></tr>",
                    key = esc(&h.document_key),
                    reason = esc(&h.reason),
                    detail = esc(&h.detail),
                );
            }
            body.push_str("</tbody></table>");
        }
    }
    body.push_str("</section>");
    body
}

/// "invoice created" from `magento.<merchant>.invoice.created`.
fn what(subject: &str) -> String {
    subject
        .splitn(3, '.')
        .nth(2)
        .unwrap_or(subject)
        .replace('.', " ")
}

fn attention_section(
    dead: &[(&'static str, ledger_runtime::journal::DeadLetter)],
    silent: &[&str],
    csrf: &str,
) -> String {
    let mut body =
        String::from("<section id=\"attention\"><h2>Documents that did not reach Sage</h2>");
    if dead.is_empty() && silent.is_empty() {
        body.push_str("<p class=\"muted\" id=\"nothing-failed\">Everything your stores sent is in Sage or on its way.</p>");
    }
    if !dead.is_empty() {
        body.push_str(
            "<p>Sage or Ledger refused these. Fix the cause (the reason says what), then send \
             them again: a document that is already in Sage is never posted twice.</p>\
             <table id=\"dead-letters\"><thead><tr><th>Document</th><th>Reason</th><th>Field</th>\
             <th>Details</th><th>Since</th><th></th></tr></thead><tbody>",
        );
        for (service, d) in dead {
            let _ = write!(
                body,
                "<tr data-dead-letter=\"{service}-{id}\"><td>{what}</td><td><code>{code}</code></td>\
                 <td>{field}</td><td>{message}</td><td>{since}</td><td>\
                 <form method=\"post\" action=\"/portal/dead-letters/{service}/{id}/retry\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <button type=\"submit\">Send again</button></form></td></tr>",
                id = d.id,
                what = esc(&what(&d.subject)),
                code = esc(&d.code),
                field = esc(d.field.as_deref().unwrap_or("")),
                message = esc(&d.message),
                since = when(Some(d.created_at)),
            );
        }
        body.push_str("</tbody></table>");
    }
    for service in silent {
        let _ = write!(
            body,
            "<p class=\"error\">The {} service did not answer; its list is missing here.</p>",
            esc(service)
        );
    }
    body.push_str("</section>");
    body
}

async fn retry_dead_letter(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((service, id)): Path<(String, i64)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    use ledger_runtime::dead_letters::{subject, Answer, Command};
    let session = match form_session(&app, &headers, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    // Retry by id reaches any merchant's dead letter: only one of this merchant's is allowed.
    let (dead, _) = dead_letters_of(&app, &session.merchant).await;
    if !dead.iter().any(|(s, d)| *s == service && d.id == id) {
        return redirect("/portal?error=unknown_dead_letter");
    }
    let answer: Result<Answer, _> = ledger_runtime::bus::request_json(
        &app.nats,
        &subject(&service),
        &Command::Retry {
            ids: vec![id],
            merchant: Some(session.merchant.clone()),
        },
        std::time::Duration::from_secs(60),
    )
    .await;
    match answer {
        Ok(Answer::Retried { results })
            if results
                .iter()
                .all(|r| r.outcome == "applied" || r.outcome == "already_done") =>
        {
            tracing::info!(merchant = %session.merchant, %service, id, "dead letter retried from the portal");
            redirect("/portal?notice=retried")
        }
        Ok(_) => redirect("/portal?error=retry_failed"),
        Err(e) => unavailable(e),
    }
}

/// Days the portal's books check covers.
pub const BOOKS_CHECK_DAYS: i64 = 90;

/// The books check: every invoice and credit memo the store sent in the last
/// [`BOOKS_CHECK_DAYS`] days, compared with Sage (read-only, so a plain GET).
async fn books(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    use ledger_reconcile::{Finding, Range};
    let session = match session(&app, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return signed_out("Please sign in with the link your Ledger operator sent you.")
        }
        Err(e) => return unavailable(e),
    };
    if let Err(wait) = app.limiters.books_check(&session.merchant) {
        let again = Utc::now() + chrono::Duration::seconds(wait.as_secs() as i64 + 1);
        let mut response = page(
            StatusCode::TOO_MANY_REQUESTS,
            None,
            "Books check",
            &format!(
                "<h1>Books check</h1><p class=\"error\" role=\"alert\" id=\"books-throttled\">\
                 The books check ran a short while ago. It can run again at {} (in about {} \
                 seconds).</p><p><a href=\"/portal\">Back</a></p>",
                again.format("%H:%M:%S UTC"),
                wait.as_secs() + 1
            ),
        );
        if let Ok(v) = HeaderValue::from_str(&(wait.as_secs() + 1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }
    let since = Utc::now().date_naive() - chrono::Duration::days(BOOKS_CHECK_DAYS);
    let range = Range {
        since: Some(since),
        until: None,
    };
    let mut report = match ledger_reconcile::run(&app.js, &app.sage, &session.merchant, range).await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(merchant = %session.merchant, error = %e, "books check failed");
            return page(
                StatusCode::BAD_GATEWAY,
                None,
                "Books check",
                "<h1>Books check</h1><p class=\"error\" role=\"alert\">Sage could not be read \
                 just now (is it connected?). Please try again in a minute.</p>\
                 <p><a href=\"/portal\">Back</a></p>",
            );
        }
    };
    report.explain(&ledger_reconcile::reasons(&app.nats, &session.merchant).await);
    let mut body = format!(
        "<h1>Books check</h1><p class=\"muted\">Invoices and credit memos your store sent since \
         {since}, compared with Sage by reference and total.</p>"
    );
    let problems: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| !matches!(f, Finding::NotFromMagento { .. }))
        .collect();
    if problems.is_empty() {
        let _ = write!(
            body,
            "<p class=\"notice\" role=\"status\" id=\"balanced\">All {} documents are in Sage \
             exactly once, with the same totals.</p>",
            report.expected
        );
    } else {
        let _ = write!(
            body,
            "<p class=\"error\" role=\"alert\" id=\"unbalanced\">{} of {} documents are not in \
             Sage exactly once with the same total.</p><table id=\"findings\"><thead><tr>\
             <th>Problem</th><th>Document</th><th>Magento total</th><th>In Sage</th><th>Why</th></tr></thead><tbody>",
            problems.len(),
            report.expected
        );
        for finding in problems {
            let why = match finding {
                Finding::Missing { why: Some(w), .. } => w.as_str(),
                _ => "",
            };
            let (problem, e, sage) = match finding {
                Finding::Missing { expected, .. } => ("Missing", expected, "not there".to_string()),
                Finding::Duplicate { expected, sage_ids } => (
                    "Twice or more",
                    expected,
                    format!("{} copies", sage_ids.len()),
                ),
                Finding::Mismatch { expected, found } => (
                    "Different total",
                    expected,
                    format!("{} {}", found.total, found.currency),
                ),
                Finding::NotFromMagento { .. } => continue,
            };
            let _ = write!(
                body,
                "<tr><td>{problem}</td><td>{kind:?} {number}</td><td>{total} {currency}</td><td>{sage}</td><td>{why}</td></tr>",
                kind = e.kind,
                number = esc(&e.number),
                total = e.total,
                currency = esc(&e.currency),
                sage = esc(&sage),
                why = esc(why),
            );
        }
        body.push_str(
            "</tbody></table><p>Missing documents are usually listed on the portal's \
            front page with the reason Sage gave.</p>",
        );
    }
    let foreign = report.count("not_from_magento");
    if foreign > 0 {
        let _ = write!(
            body,
            "<p class=\"muted\">{foreign} document(s) in Sage in this period did not come from your \
             store (entered by hand, or another system).</p>"
        );
    }
    body.push_str("<p><a href=\"/portal\">Back</a></p>");
    page(StatusCode::OK, None, "Books check", &body)
}

/// `POST /portal/pair`: shows the store waiting with the code and asks for confirmation;
/// claims nothing.
async fn pair(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = match form_session(&app, &headers, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let code = form.get("code").map(String::as_str).unwrap_or("");
    let store = match pairing::preview_code(&app, &session.merchant, code).await {
        Ok(Ok(store)) => store,
        Ok(Err(refusal)) => return redirect(&format!("/portal?error={}", refusal.code())),
        Err(e) => return unavailable(e),
    };
    let ago = (Utc::now() - store.requested_at).num_minutes().max(0);
    let body = format!(
        "<h1>Pair this store?</h1>\
         <p>A Magento store asked for this code. Pair it only if it is your store: once paired \
         it sends its documents to your Sage books.</p>\
         <table id=\"pairing-store\"><tbody>\
         <tr><th>Store URL</th><td id=\"store-url\">{url}</td></tr>\
         <tr><th>Store name</th><td id=\"store-name\">{name}</td></tr>\
         <tr><th>Module version</th><td>{version}</td></tr>\
         <tr><th>Asked</th><td id=\"store-requested\">{at} ({ago} minutes ago)</td></tr>\
         </tbody></table>\
         <form method=\"post\" action=\"/portal/pair/confirm\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"code\" value=\"{code}\">\
         <button type=\"submit\" id=\"confirm-pair\">Pair this store</button> \
         <a href=\"/portal?notice=pairing_cancelled\" id=\"cancel-pair\">Cancel</a></form>",
        url = esc(store.store_url.as_deref().unwrap_or("(not given)")),
        name = esc(store.store_name.as_deref().unwrap_or("(not given)")),
        version = esc(store.module_version.as_deref().unwrap_or("(not given)")),
        at = when(Some(store.requested_at)),
        csrf = esc(&session.csrf),
        code = esc(&store.code),
    );
    page(StatusCode::OK, None, "Pair a store", &body)
}

/// `POST /portal/pair/confirm`: claims the code for the merchant.
async fn pair_confirmed(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = match form_session(&app, &headers, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let code = form.get("code").map(String::as_str).unwrap_or("");
    match pairing::claim_code(&app, &session.merchant, code).await {
        Ok(Ok(_)) => redirect("/portal?notice=paired"),
        Ok(Err(refusal)) => redirect(&format!("/portal?error={}", refusal.code())),
        Err(e) => unavailable(e),
    }
}

/// `POST /portal/sage/confirm`: stores the pending Sage connection the merchant confirms.
async fn sage_confirmed(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = match form_session(&app, &headers, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let pending = match token_field(&form, "pending") {
        Ok(p) => p,
        Err(_) => return redirect("/portal?error=sage_confirm_expired"),
    };
    let business = form.get("business").map(String::as_str).unwrap_or("");
    let session_hash = session_cookie(&app, &headers)
        .map(|c| hash_key(&c))
        .unwrap_or_default();
    match crate::connect::confirm(&app, pending, &session.merchant, &session_hash, business).await {
        Ok(Some(Ok(_))) => redirect("/portal?notice=connected"),
        Ok(Some(Err(field))) => page(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            "Sage not connected",
            &format!(
                "<h1>Sage not connected</h1><p class=\"error\" role=\"alert\">{}: not one of \
                 the Sage businesses listed. <a href=\"/portal\">Back</a></p>",
                esc(field)
            ),
        ),
        Ok(None) => redirect("/portal?error=sage_confirm_expired"),
        Err(e) => {
            tracing::warn!(merchant = %session.merchant, error = %e, "Sage connection not stored");
            redirect("/portal?error=sage_connect_failed")
        }
    }
}

async fn revoke(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(key_id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = match form_session(&app, &headers, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match pairing::revoke_merchant_key(&app, &session.merchant, &key_id, "merchant").await {
        Ok(Some(_)) => redirect("/portal?notice=revoked"),
        Ok(None) => redirect("/portal?error=unknown_key"),
        Err(e) => unavailable(e),
    }
}

async fn connect_sage(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = match form_session(&app, &headers, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let binding = session_cookie(&app, &headers)
        .map(|c| hash_key(&c))
        .unwrap_or_default();
    let started = crate::connect::begin_consent(
        &app,
        &session.merchant,
        crate::connect::Flow::Portal,
        &binding,
        Some("/portal"),
    )
    .await;
    match started {
        Ok(location) => redirect(&location),
        Err(e) => unavailable(e),
    }
}

async fn logout(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if form_session(&app, &headers, &form).await.is_ok() {
        if let Some(id) = session_cookie(&app, &headers) {
            let _ = sqlx::query("DELETE FROM portal_sessions WHERE session_hash = $1")
                .bind(hash_key(&id))
                .execute(&app.db)
                .await;
        }
    }
    let mut response = signed_out("You have signed out.");
    response.headers_mut().insert(
        header::SET_COOKIE,
        crate::connect::set_cookie(&app, cookie_name(&app), "", 0),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; ledger_portal=abc123; b=2"),
        );
        let found = |name| crate::connect::request_cookie(&headers, name);
        assert_eq!(found(COOKIE).as_deref(), Some("abc123"));
        // Over https only the __Host- cookie counts: a plain one set by a sibling host is not it.
        assert_eq!(found(SECURE_COOKIE), None);
        assert_eq!(
            crate::connect::request_cookie(&HeaderMap::new(), COOKIE),
            None
        );
    }

    #[test]
    fn held_documents_show_reason_and_detail_escaped() {
        let held = [ledger_rpc::HeldDocument {
            document_key: "invoice:1:000000123".into(),
            event_id: "e".into(),
            reason: "unmapped_tax_rate".into(),
            detail: "line 2 (SKU <b>): rate 7.5% has no Sage tax rate".into(),
        }];
        let html = held_section(Some(&held));
        assert!(html.contains("<code>unmapped_tax_rate</code>"), "{html}");
        assert!(
            html.contains("line 2 (SKU &lt;b&gt;): rate 7.5% has no Sage tax rate"),
            "{html}"
        );
        assert!(held_section(Some(&[])).contains("nothing-held"));
        let zero = [ledger_rpc::HeldDocument {
            document_key: "invoice:1:000000124".into(),
            event_id: "z".into(),
            reason: "nothing_to_post".into(),
            detail: "invoice 000000124 has a grand total of 0.00 GBP: nothing to post".into(),
        }];
        let html = held_section(Some(&zero));
        assert!(
            html.contains("nothing-held") && !html.contains("000000124"),
            "{html}"
        );
        let chosen = [ledger_rpc::HeldDocument {
            document_key: "invoice:2:000000125".into(),
            event_id: "p".into(),
            reason: "store_not_synced".into(),
            detail: "invoice 000000125 is from store view 2, which is not in store_ids [1]".into(),
        }];
        let html = held_section(Some(&chosen));
        assert!(
            html.contains("nothing-held") && !html.contains("000000125"),
            "{html}"
        );
        let all = [held[0].clone(), zero[0].clone(), chosen[0].clone()];
        let html = held_section(Some(&all));
        assert!(
            html.contains("000000123")
                && !html.contains("000000124")
                && !html.contains("000000125"),
            "{html}"
        );
        assert!(held_section(None).contains("did not answer"));
    }

    #[test]
    fn messages_come_from_codes_never_from_the_url() {
        assert!(notice_text("<script>").is_none());
        assert!(error_text("<script>alert(1)</script>").is_none());
        assert!(error_text("pairing_code_used")
            .unwrap()
            .contains("already been used"));
        assert!(error_text("too_many_attempts")
            .unwrap()
            .contains("too many wrong pairing codes"));
        assert_eq!(esc("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#x27;");
    }

    use proptest::prelude::*;

    proptest! {
        // A bounded fuzz run over the portal's form and query parsing.
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn form_fields_never_panic_and_every_refusal_names_its_field(
            form in proptest::collection::hash_map(
                "csrf|code|token|pending|business|[a-z]{0,6}",
                "\\PC{0,150}",
                0..6,
            ),
        ) {
            for field in ["csrf", "token", "pending"] {
                match token_field(&form, field) {
                    Ok(value) => {
                        prop_assert!(!value.is_empty() && value.len() <= TOKEN_MAX);
                        prop_assert!(value.bytes().all(|b| b.is_ascii_hexdigit()));
                    }
                    Err(e) => {
                        prop_assert_eq!(e.field, field);
                        prop_assert!(!e.reason.is_empty());
                        prop_assert!(e.to_string().starts_with(field));
                    }
                }
            }
            match code_field(&form) {
                Ok(code) => {
                    prop_assert_eq!(code.len(), 8);
                    prop_assert!(code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
                }
                Err(e) => {
                    prop_assert_eq!(e.field, "code");
                    prop_assert!(!e.reason.is_empty());
                }
            }
            for value in form.values() {
                // Message codes come from a fixed list, never from what was sent.
                if let Some(text) = error_text(value) {
                    prop_assert!(!text.contains(value.as_str()));
                }
                prop_assert!(notice_text(value).is_none_or(|t| !t.contains('<')));
            }
        }

        #[test]
        fn a_code_is_recognised_however_it_is_typed(
            chars in proptest::collection::vec(
                proptest::sample::select(b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789".to_vec()),
                8,
            ),
            lower in proptest::collection::vec(any::<bool>(), 8),
            separators in proptest::collection::vec("[ -]{0,2}", 9),
        ) {
            let canonical: String = chars.iter().map(|&c| c as char).collect();
            let mut typed = String::new();
            for (i, c) in canonical.chars().enumerate() {
                typed.push_str(&separators[i]);
                typed.push(if lower[i] { c.to_ascii_lowercase() } else { c });
            }
            typed.push_str(&separators[8]);
            let form: HashMap<String, String> = [("code".to_string(), typed)].into();
            prop_assert_eq!(code_field(&form), Ok(canonical));
        }
    }
}
