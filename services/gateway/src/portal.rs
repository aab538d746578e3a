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
//! merchant per `LEDGER_BOOKS_CHECK_INTERVAL_SECS`. Pages are server-rendered from
//! compile-checked templates ([`crate::pages`]) that escape every value, with a strict content
//! security policy; no script runs.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::merchants::{hash_key, require_admin};
use crate::pairing::{self, ClaimRefusal};
use crate::routes::Routes;
use crate::{pages, AppState};
use sage_client::same_secret;

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
pub fn routes() -> Routes {
    Routes::new()
        .post("/v1/admin/merchants/{merchant}/portal-links", create_link)
        .get("/portal/login", login)
        .post("/portal/login", login_confirmed)
        .get("/portal", home)
        .post("/portal/pair", pair)
        .post("/portal/pair/confirm", pair_confirmed)
        .post("/portal/sage/confirm", sage_confirmed)
        .post("/portal/keys/{key}/revoke", revoke)
        .post("/portal/sage/connect", connect_sage)
        .post(
            "/portal/dead-letters/{service}/{id}/retry",
            retry_dead_letter,
        )
        .post("/portal/logout", logout)
        .get("/portal/books", books)
}

fn random_token() -> String {
    pairing::random_hex(32)
}

/// The "Ledger is unavailable" page, logging `e` under a correlation id.
pub(crate) fn unavailable(e: impl std::fmt::Display) -> Response {
    let id = crate::correlation_id();
    tracing::error!(error = %e, correlation_id = %id, "portal store failure");
    pages::respond(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        &pages::Unavailable {
            correlation_id: &id,
        },
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
    pages::respond(StatusCode::FORBIDDEN, None, &pages::Unbound)
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
    let view = pages::ConfirmSage {
        merchant_name: &name,
        merchant_id: &session.merchant,
        csrf: &session.csrf,
        pending: pending_id,
        businesses: businesses
            .iter()
            .map(|b| pages::BusinessChoice {
                id: &b.id,
                name: &b.name,
            })
            .collect(),
    };
    pages::respond(StatusCode::OK, None, &view)
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

pub(crate) fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

pub(crate) fn signed_out(message: &str) -> Response {
    pages::respond(
        StatusCode::UNAUTHORIZED,
        None,
        &pages::SignedOut { message },
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
    let view = pages::Login {
        merchant_name: &name,
        token,
    };
    pages::respond(StatusCode::OK, None, &view)
}

/// `POST /portal/login` (the confirmation page's button): uses the link up and starts the
/// session.
async fn login_confirmed(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if foreign_origin(&app, &headers) {
        return pages::respond(StatusCode::FORBIDDEN, None, &pages::LoginRefused);
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
pub(crate) struct Session {
    /// The merchant signed in.
    pub(crate) merchant: String,
    /// The session's CSRF token.
    pub(crate) csrf: String,
}

/// The portal session cookie's value in a request, if sent.
pub fn session_cookie(app: &AppState, headers: &HeaderMap) -> Option<String> {
    crate::connect::request_cookie(headers, cookie_name(app))
}

pub(crate) async fn session(
    app: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Session>, sqlx::Error> {
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

/// The session of a page view, or the page to answer instead (signed out, unavailable).
pub(crate) async fn page_session(app: &AppState, headers: &HeaderMap) -> Result<Session, Response> {
    match session(app, headers).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(signed_out(
            "Please sign in with the link your Ledger operator sent you.",
        )),
        Err(e) => Err(unavailable(e)),
    }
}

/// The session of a form POST whose CSRF token matches, or the page to answer instead.
pub(crate) async fn form_session(
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
    let same = token_field(form, "csrf").is_ok_and(|sent| same_secret(sent, &session.csrf));
    if !same {
        return Err(pages::respond(
            StatusCode::FORBIDDEN,
            None,
            &pages::FormExpired,
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
    let session = match page_session(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
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
    let keys: Vec<pages::KeyRow> = keys
        .iter()
        .map(|key| pages::KeyRow {
            id: key.key_id.clone(),
            label: key.label.clone(),
            created: when(Some(key.created_at)),
            used: when(key.last_used_at),
            revoked: key.revoked_at.map(|at| when(Some(at))),
        })
        .collect();
    let (dead, silent) = dead_letters_of(&app, merchant).await;
    let checklist = crate::history::checklist_of(
        &app,
        merchant,
        connection
            .as_ref()
            .is_some_and(|c| c.status.as_str() == "active"),
        keys.iter().any(|k| k.revoked.is_none()),
    )
    .await;
    let view = pages::Home {
        merchant_name: &name,
        merchant_id: merchant,
        notice: q.get("notice").and_then(|c| notice_text(c)),
        error: q.get("error").and_then(|c| error_text(c)),
        sage_business: connection.as_ref().map(|c| c.business_id.clone()),
        sage_attention: connection
            .as_ref()
            .filter(|c| c.status.as_str() != "active")
            .map(|c| c.status.as_str().to_string()),
        base_currency,
        csrf: &session.csrf,
        code_ttl_minutes: pairing::CODE_TTL_MINUTES.into(),
        keys,
        dead: dead_rows(&dead),
        silent,
        held: held_rows(held_documents_of(&app, merchant).await.as_deref()),
        books_days: BOOKS_CHECK_DAYS,
        checklist,
    };
    let sage_origin = url::Url::parse(app.tokens.oauth().authorize_url("x").as_str())
        .ok()
        .map(|u| u.origin().ascii_serialization());
    pages::respond(StatusCode::OK, sage_origin.as_deref(), &view)
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
/// `ledger_mapping::reasons::ZERO_VALUE`: a zero invoice kept out by the zero-value policy.
const ZERO_VALUE: &str = "zero_value";
/// `ledger_mapping::reasons::CANCELED`: canceled in Magento before it reached Sage; nothing to fix.
const CANCELED: &str = "canceled";

/// A held document the merchant has nothing to fix for: a zero document, a canceled one, or
/// one kept out by the merchant's own sync policy (cutover, website, store view, zero value,
/// unpaid).
fn nothing_to_fix(reason: &str) -> bool {
    reason == NOTHING_TO_POST
        || reason == ZERO_VALUE
        || reason == CANCELED
        || ledger_mapping::is_policy_skip(reason)
}

/// Documents held back on purpose that the merchant can act on, each with its reason code and
/// the detail that says what to do (which line, which rate, which dates); `None` when the
/// documents service did not answer.
fn held_rows(held: Option<&[ledger_rpc::HeldDocument]>) -> Option<Vec<pages::HeldRow>> {
    held.map(|held| {
        held.iter()
            // A zero or canceled document is kept out of Sage with nothing to fix.
            .filter(|h| !nothing_to_fix(&h.reason))
            .map(|h| pages::HeldRow {
                document_key: h.document_key.clone(),
                reason: h.reason.clone(),
                detail: h.detail.clone(),
            })
            .collect()
    })
}

/// "invoice created" from `magento.<merchant>.invoice.created`.
fn what(subject: &str) -> String {
    subject
        .splitn(3, '.')
        .nth(2)
        .unwrap_or(subject)
        .replace('.', " ")
}

/// The dead letters as the front page lists them.
fn dead_rows(dead: &[(&'static str, ledger_runtime::journal::DeadLetter)]) -> Vec<pages::DeadRow> {
    dead.iter()
        .map(|(service, d)| pages::DeadRow {
            service,
            id: d.id,
            what: what(&d.subject),
            code: d.code.clone(),
            field: d.field.clone().unwrap_or_default(),
            message: d.message.clone(),
            since: when(Some(d.created_at)),
        })
        .collect()
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
    let session = match page_session(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(wait) = app.limiters.books_check(&session.merchant) {
        let again = Utc::now() + chrono::Duration::seconds(wait.as_secs() as i64 + 1);
        let mut response = pages::respond(
            StatusCode::TOO_MANY_REQUESTS,
            None,
            &pages::BooksThrottled {
                again: again.format("%H:%M:%S UTC").to_string(),
                seconds: wait.as_secs() + 1,
            },
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
    let merchant = session.merchant.as_str();
    let mut progress = |p: ledger_reconcile::Progress| {
        tracing::info!(merchant, progress = %p, "books check");
    };
    let checked =
        ledger_reconcile::run_reporting(&app.js, &app.sage, merchant, range, &mut progress).await;
    let mut report = match checked {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(merchant = %session.merchant, error = %e, "books check failed");
            return pages::respond(StatusCode::BAD_GATEWAY, None, &pages::BooksFailed);
        }
    };
    report.explain(&ledger_reconcile::reasons(&app.nats, &session.merchant).await);
    let problems = report
        .findings
        .iter()
        .filter_map(|finding| {
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
                Finding::NotFromMagento { .. } => return None,
            };
            let why = match finding {
                Finding::Missing { why: Some(w), .. } => w.clone(),
                _ => String::new(),
            };
            Some(pages::ProblemRow {
                problem,
                document: format!("{:?} {}", e.kind, e.number),
                total: format!("{} {}", e.total, e.currency),
                sage,
                why,
            })
        })
        .collect();
    let view = pages::Books {
        since,
        expected: report.expected,
        problems,
        foreign: report.count("not_from_magento"),
    };
    pages::respond(StatusCode::OK, None, &view)
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
    let not_given = "(not given)";
    let view = pages::Pair {
        store_url: store.store_url.as_deref().unwrap_or(not_given),
        store_name: store.store_name.as_deref().unwrap_or(not_given),
        module_version: store.module_version.as_deref().unwrap_or(not_given),
        requested_at: when(Some(store.requested_at)),
        minutes_ago: ago,
        csrf: &session.csrf,
        code: &store.code,
    };
    pages::respond(StatusCode::OK, None, &view)
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
        Ok(Some(Err(field))) => pages::respond(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            &pages::SageRefused { field },
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

    fn held_section(held: Option<&[ledger_rpc::HeldDocument]>) -> String {
        use askama::Template;
        pages::HeldSection {
            held: held_rows(held),
            csrf: "c0ffee",
            merchant_id: "m-1",
        }
        .render()
        .unwrap()
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
            html.contains("line 2 (SKU &#60;b&#62;): rate 7.5% has no Sage tax rate"),
            "{html}"
        );
        // The release form carries the session's token and merchant.
        assert!(
            html.contains(r#"action="/portal/held/release""#)
                && html.contains(r#"name="csrf" value="c0ffee""#)
                && html.contains(r#"name="merchant" value="m-1""#),
            "{html}"
        );
        assert!(held_section(Some(&[])).contains("nothing-held"));
        assert!(!held_section(Some(&[])).contains("release-held"));
        let zero = [
            ledger_rpc::HeldDocument {
                document_key: "invoice:1:000000124".into(),
                event_id: "z".into(),
                reason: "zero_value".into(),
                detail: "invoice 000000124 has a grand total of 0.00 GBP: nothing to post".into(),
            },
            ledger_rpc::HeldDocument {
                document_key: "creditmemo:1:000000125".into(),
                event_id: "y".into(),
                reason: "nothing_to_post".into(),
                detail: "credit memo 000000125 has a grand total of 0.00 GBP: nothing to post"
                    .into(),
            },
        ];
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
    fn dead_letters_show_reason_field_and_retry_form_escaped() {
        use askama::Template;
        let row = |message: &str| pages::DeadRow {
            service: "documents",
            id: 7,
            what: what("magento.m.invoice.created"),
            code: "sage.validation".into(),
            field: "<i>ledger_account_id</i>".into(),
            message: message.into(),
            since: "2026-12-01 10:00 UTC".into(),
        };
        let render = |dead, silent| {
            pages::AttentionSection {
                dead,
                silent,
                csrf: "c0ffee",
            }
            .render()
            .unwrap()
        };
        let html = render(vec![row("<script>alert(1)</script>")], vec![]);
        assert!(html.contains("<td>invoice created</td>"), "{html}");
        assert!(
            html.contains("&#60;i&#62;ledger_account_id&#60;/i&#62;"),
            "{html}"
        );
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;") && !html.contains("<script"),
            "{html}"
        );
        assert!(
            html.contains("action=\"/portal/dead-letters/documents/7/retry\"")
                && html.contains("name=\"csrf\" value=\"c0ffee\""),
            "{html}"
        );
        assert!(!html.contains("nothing-failed"), "{html}");
        let html = render(vec![], vec![]);
        assert!(html.contains("nothing-failed"), "{html}");
        let html = render(vec![], vec!["payments"]);
        assert!(
            !html.contains("nothing-failed")
                && html.contains("The payments service did not answer"),
            "{html}"
        );
    }

    #[test]
    fn every_page_shows_markup_in_its_values_as_text() {
        use askama::Template;
        let x = "<script>alert(1)</script>\"'&";
        let escaped = "&#60;script&#62;alert(1)&#60;/script&#62;&#34;&#39;&#38;";
        let s = || x.to_string();
        let pages: Vec<(&str, String)> = vec![
            (
                "unavailable",
                pages::Unavailable { correlation_id: x }.render().unwrap(),
            ),
            (
                "confirm sage",
                pages::ConfirmSage {
                    merchant_name: x,
                    merchant_id: x,
                    csrf: x,
                    pending: x,
                    businesses: vec![pages::BusinessChoice { id: x, name: x }],
                }
                .render()
                .unwrap(),
            ),
            (
                "sage refused",
                pages::SageRefused { field: x }.render().unwrap(),
            ),
            (
                "signed out",
                pages::SignedOut { message: x }.render().unwrap(),
            ),
            (
                "login",
                pages::Login {
                    merchant_name: x,
                    token: x,
                }
                .render()
                .unwrap(),
            ),
            (
                "home",
                pages::Home {
                    merchant_name: x,
                    merchant_id: x,
                    notice: Some(x),
                    error: Some(s()),
                    sage_business: Some(s()),
                    sage_attention: None,
                    base_currency: Some(s()),
                    csrf: x,
                    code_ttl_minutes: 30,
                    keys: vec![pages::KeyRow {
                        id: s(),
                        label: s(),
                        created: s(),
                        used: s(),
                        revoked: Some(s()),
                    }],
                    dead: vec![],
                    silent: vec![],
                    held: Some(vec![pages::HeldRow {
                        document_key: s(),
                        reason: s(),
                        detail: s(),
                    }]),
                    books_days: 90,
                    checklist: vec![pages::Step {
                        id: "tax",
                        label: "Tax map complete for the rates seen",
                        done: false,
                        href: "/portal/settings",
                        hint: s(),
                    }],
                }
                .render()
                .unwrap(),
            ),
            (
                "books",
                pages::Books {
                    since: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
                    expected: 1,
                    problems: vec![pages::ProblemRow {
                        problem: "Missing",
                        document: s(),
                        total: s(),
                        sage: s(),
                        why: s(),
                    }],
                    foreign: 0,
                }
                .render()
                .unwrap(),
            ),
            (
                "books throttled",
                pages::BooksThrottled {
                    again: s(),
                    seconds: 1,
                }
                .render()
                .unwrap(),
            ),
            (
                "pair",
                pages::Pair {
                    store_url: x,
                    store_name: x,
                    module_version: x,
                    requested_at: s(),
                    minutes_ago: 1,
                    csrf: x,
                    code: x,
                }
                .render()
                .unwrap(),
            ),
        ];
        for (name, html) in pages {
            assert!(html.contains(escaped), "{name}: {html}");
            assert!(!html.contains("<script"), "{name}: {html}");
            assert!(!html.contains("value=\"<"), "{name}: {html}");
        }
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
