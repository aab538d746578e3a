//! Connecting a merchant's Sage business (OAuth 2.0 authorisation code flow).
//!
//! Every flow is bound to what started it, so that a consent URL handed to someone else
//! cannot attach their books to the starter's merchant (or the starter's books to theirs):
//!
//! - **Portal** (`POST /portal/sage/connect`): the `state` is stored with a hash of the
//!   merchant's portal session. The callback is only honoured in the browser holding that
//!   session; it then exchanges the code, lists the user's Sage businesses and shows them for
//!   the merchant to confirm (`POST /portal/sage/confirm`, with the session's CSRF token).
//!   Nothing is stored before that confirmation; the tokens wait in memory for
//!   [`PENDING_TTL`].
//! - **Operator** (`GET /connect/sage/start?merchant=M` with the admin token, used by
//!   `ledgerctl` and tests): the answer redirects to Sage's consent page and hands out a
//!   one-time binding, as the `ledger_connect` cookie (`__Host-ledger_connect` over https) and
//!   in the JSON body. The callback must carry that cookie; the operator started the flow with
//!   the admin token, so the connection is stored at once and the answer names the business.
//!
//! The code (valid 60 s at Sage) is exchanged and stored encrypted. The gateway then discovers
//! the Sage ids the mapping needs (sales, carriage and rounding ledger accounts; a bank
//! account per currency) and records them in the merchant's settings, keeping any the
//! operator set. Sage itself only ever talks to the callback.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::pairing::random_hex;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sage_client::TokenSet;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::merchants::hash_key;
use crate::routes::Routes;
use crate::{unavailable, AppState};
use sage_client::same_secret;

/// Name of the operator flow's binding cookie over http (development).
pub const BINDING_COOKIE: &str = "ledger_connect";
/// Name of the operator flow's binding cookie over https.
pub const SECURE_BINDING_COOKIE: &str = "__Host-ledger_connect";
/// How long a state can be used at the callback.
pub const STATE_TTL_MINUTES: i32 = 30;
/// How long a connection waits for the merchant's confirmation.
pub const PENDING_TTL: Duration = Duration::from_secs(15 * 60);

/// Routes of the connection flow.
pub fn routes() -> Routes {
    Routes::new()
        .get("/connect/sage/start", start)
        .get("/connect/sage/callback", callback)
}

/// Who started a flow, and so what the callback must present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// The merchant, from the portal: the callback needs the same portal session.
    Portal,
    /// An operator tool with the admin token: the callback needs the binding cookie.
    Operator,
}

impl Flow {
    fn as_str(self) -> &'static str {
        match self {
            Flow::Portal => "portal",
            Flow::Operator => "operator",
        }
    }
}

/// A Sage business as Sage lists it for the user who consented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Business {
    /// Sage's id of the business.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// A connection waiting for the merchant's confirmation.
pub struct PendingConnection {
    /// The merchant whose portal session started the flow.
    pub merchant: String,
    binding_hash: String,
    tokens: TokenSet,
    /// The businesses the Sage user may connect.
    pub businesses: Vec<Business>,
    created: Instant,
}

/// Connections waiting for confirmation, by a random id the confirm form carries.
#[derive(Default)]
pub struct PendingConnections {
    inner: Mutex<HashMap<String, PendingConnection>>,
}

impl PendingConnections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PendingConnection>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn put(&self, pending: PendingConnection) -> String {
        let id = random_hex(16);
        let mut map = self.lock();
        map.retain(|_, p| p.created.elapsed() < PENDING_TTL);
        // A merchant has at most one connection waiting: a newer one replaces it.
        map.retain(|_, p| p.merchant != pending.merchant);
        map.insert(id.clone(), pending);
        id
    }

    /// Removes and returns the pending connection `id` if it belongs to `merchant` and the
    /// session whose hash is `binding_hash`, and has not expired.
    pub fn take(&self, id: &str, merchant: &str, binding_hash: &str) -> Option<PendingConnection> {
        let mut map = self.lock();
        let matches = map.get(id).is_some_and(|p| {
            p.merchant == merchant
                && same_secret(&p.binding_hash, binding_hash)
                && p.created.elapsed() < PENDING_TTL
        });
        if matches {
            map.remove(id)
        } else {
            None
        }
    }

    /// How many connections of `merchant` wait for confirmation.
    pub fn waiting_for(&self, merchant: &str) -> usize {
        self.lock()
            .values()
            .filter(|p| p.merchant == merchant && p.created.elapsed() < PENDING_TTL)
            .count()
    }

    /// Drops expired connections.
    pub fn forget_expired(&self) {
        self.lock().retain(|_, p| p.created.elapsed() < PENDING_TTL);
    }
}

/// The operator flow's binding cookie name for this gateway.
pub fn binding_cookie_name(app: &AppState) -> &'static str {
    if app.config.https() {
        SECURE_BINDING_COOKIE
    } else {
        BINDING_COOKIE
    }
}

/// The value of cookie `name` in the request, if sent.
pub fn request_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, `Path=/`, and `Secure` over https.
pub fn set_cookie(app: &AppState, name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    let built = build_cookie(app.config.https(), name, value, max_age_secs);
    HeaderValue::from_str(&built.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The cookie [`set_cookie`] sets: `HttpOnly`, `SameSite=Lax`, `Path=/`, no `Domain`, and
/// `Secure` when `https` (which a `__Host-` name requires).
pub fn build_cookie(
    https: bool,
    name: &str,
    value: &str,
    max_age_secs: i64,
) -> cookie::Cookie<'static> {
    cookie::Cookie::build((name.to_string(), value.to_string()))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .secure(https)
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build()
}

#[derive(Deserialize)]
struct StartQuery {
    merchant: String,
}

/// Operator tools start the flow with the admin token; merchants start it from the portal
/// (`POST /portal/sage/connect`). Unauthenticated, anyone knowing a merchant id could attach
/// their own Sage business to it and receive its books.
async fn start(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<StartQuery>,
) -> Response {
    if let Err(r) = crate::merchants::require_admin(&app, &headers) {
        return r;
    }
    match crate::merchants::settings_of(&app, &q.merchant).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "unknown_merchant"})),
            )
                .into_response()
        }
        Err(e) => return unavailable(e),
    }
    let binding = random_hex(32);
    match begin_consent(&app, &q.merchant, Flow::Operator, &hash_key(&binding), None).await {
        Ok(location) => {
            let name = binding_cookie_name(&app);
            let mut response = (
                StatusCode::FOUND,
                [(header::LOCATION, location.clone())],
                Json(json!({
                    "consent_url": location,
                    "binding": binding,
                    "binding_cookie": name,
                })),
            )
                .into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                set_cookie(&app, name, &binding, i64::from(STATE_TTL_MINUTES) * 60),
            );
            response
        }
        Err(e) => unavailable(e),
    }
}

/// Records a single-use `state` for `merchant`, bound to `binding_hash` (the hash of the
/// portal session, or of the operator's binding), and returns Sage's consent URL. A portal
/// flow that ends without a confirmation page goes back to `return_to` (a path here).
pub async fn begin_consent(
    app: &AppState,
    merchant: &str,
    flow: Flow,
    binding_hash: &str,
    return_to: Option<&str>,
) -> Result<String, sqlx::Error> {
    let state = random_hex(16);
    // States nobody came back with are of no further use.
    sqlx::query("DELETE FROM oauth_states WHERE created_at < now() - interval '1 day'")
        .execute(&app.db)
        .await?;
    sqlx::query(
        "INSERT INTO oauth_states (state, merchant_id, return_to, flow, binding_hash)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&state)
    .bind(merchant)
    .bind(return_to)
    .bind(flow.as_str())
    .bind(binding_hash)
    .execute(&app.db)
    .await?;
    Ok(app.tokens.oauth().authorize_url(&state))
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

fn bad_callback(code: &str, message: &str) -> Response {
    crate::json_error(StatusCode::BAD_REQUEST, code, message)
}

async fn callback(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(state) = q.state else {
        return bad_callback("invalid_callback", "state: required");
    };
    let found = sqlx::query_as::<_, (String, Option<String>, String, Option<String>)>(
        "DELETE FROM oauth_states WHERE state = $1
           AND created_at > now() - make_interval(mins => $2)
         RETURNING merchant_id, return_to, flow, binding_hash",
    )
    .bind(&state)
    .bind(STATE_TTL_MINUTES)
    .fetch_optional(&app.db)
    .await;
    let (merchant, return_to, flow, binding_hash) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return bad_callback("invalid_state", "state: unknown, used or expired"),
        Err(e) => return unavailable(e),
    };
    let flow = if flow == "portal" {
        Flow::Portal
    } else {
        Flow::Operator
    };
    // The browser (or tool) at the callback must be the one that started the flow.
    let presented = match flow {
        Flow::Portal => crate::portal::session_cookie(&app, &headers),
        Flow::Operator => request_cookie(&headers, binding_cookie_name(&app)),
    };
    let bound = match (&binding_hash, &presented) {
        (Some(expected), Some(presented)) => same_secret(expected, &hash_key(presented)),
        _ => false,
    };
    if !bound {
        tracing::warn!(%merchant, flow = flow.as_str(), "Sage callback outside the session that started it refused");
        return match flow {
            Flow::Portal => crate::portal::unbound_callback_page(),
            Flow::Operator => crate::json_error(
                StatusCode::FORBIDDEN,
                "unbound_callback",
                "binding: this callback does not carry the binding of the flow's start; \
                 start again with /connect/sage/start",
            ),
        };
    }
    // A flow started in the portal returns there, with a message code only.
    let back = |outcome: &str| {
        return_to
            .as_deref()
            .filter(|p| p.starts_with('/') && !p.starts_with("//"))
            .map(|path| {
                (
                    StatusCode::SEE_OTHER,
                    [(header::LOCATION, format!("{path}?{outcome}"))],
                )
                    .into_response()
            })
    };
    if let Some(error) = q.error {
        tracing::info!(%merchant, %error, "Sage consent refused");
        return back("error=consent_refused").unwrap_or_else(|| {
            bad_callback(
                "consent_refused",
                "error: the Sage user declined the consent",
            )
        });
    }
    let Some(code) = q.code else {
        return bad_callback("invalid_callback", "code: required");
    };
    let exchanged = exchange(&app, &code).await;
    let (tokens, businesses) = match exchanged {
        Ok(found) => found,
        Err(e) => {
            let id = crate::correlation_id();
            tracing::warn!(%merchant, error = %e, correlation_id = %id, "Sage connection failed");
            return back("error=sage_connect_failed").unwrap_or_else(|| {
                crate::json_error_with(
                    StatusCode::BAD_GATEWAY,
                    "connect_failed",
                    "Sage did not complete the connection; start again",
                    json!({"correlation_id": id}),
                )
            });
        }
    };
    match flow {
        Flow::Portal => {
            let id = app.pending_connections.put(PendingConnection {
                merchant: merchant.clone(),
                binding_hash: binding_hash.unwrap_or_default(),
                tokens,
                businesses: businesses.clone(),
                created: Instant::now(),
            });
            crate::portal::confirm_connection_page(&app, &headers, &id, &businesses).await
        }
        Flow::Operator => {
            let business = businesses[0].clone();
            match store_connection(&app, &merchant, &business.id, &tokens).await {
                Ok(()) => Json(json!({
                    "merchant_id": merchant,
                    "sage_business_id": business.id,
                    "sage_business_name": business.name,
                    "status": "connected",
                }))
                .into_response(),
                Err(e) => {
                    let id = crate::correlation_id();
                    tracing::warn!(%merchant, error = %e, correlation_id = %id, "Sage connection failed");
                    crate::json_error_with(
                        StatusCode::BAD_GATEWAY,
                        "connect_failed",
                        "the Sage connection could not be stored; start again",
                        json!({"correlation_id": id}),
                    )
                }
            }
        }
    }
}

/// Exchanges the code; returns the tokens and the businesses the user may connect (at least
/// one; the first listed is the user's lead business).
pub async fn exchange(app: &AppState, code: &str) -> anyhow::Result<(TokenSet, Vec<Business>)> {
    let tokens = app.tokens.oauth().exchange_code(code).await?;
    let listed = app.sage.list_businesses(&tokens.access_token).await?;
    let businesses: Vec<Business> = listed
        .iter()
        .filter_map(|b| {
            let id = b.get("id").and_then(Value::as_str)?.to_string();
            let name = b
                .get("name")
                .or_else(|| b.get("displayed_as"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            Some(Business { id, name })
        })
        .collect();
    if businesses.is_empty() {
        anyhow::bail!("the Sage user has no business");
    }
    Ok((tokens, businesses))
}

/// Confirms a pending portal connection: stores it for `business_id`, which must be one the
/// Sage user listed. `Ok(None)` when nothing matching waits (expired, another session or
/// merchant); `Ok(Some(Err(field)))` when the business is not one of the listed.
pub async fn confirm(
    app: &AppState,
    pending_id: &str,
    merchant: &str,
    session_hash: &str,
    business_id: &str,
) -> anyhow::Result<Option<Result<Business, &'static str>>> {
    let Some(pending) = app
        .pending_connections
        .take(pending_id, merchant, session_hash)
    else {
        return Ok(None);
    };
    let Some(business) = pending
        .businesses
        .iter()
        .find(|b| b.id == business_id)
        .cloned()
    else {
        return Ok(Some(Err("business")));
    };
    store_connection(app, merchant, &business.id, &pending.tokens).await?;
    Ok(Some(Ok(business)))
}

/// Stores the connection and discovers settings.
pub async fn store_connection(
    app: &AppState,
    merchant: &str,
    business_id: &str,
    tokens: &TokenSet,
) -> anyhow::Result<()> {
    app.tokens.connect(merchant, business_id, tokens).await?;
    let discovered = discover_settings(app, merchant).await?;
    let current = crate::merchants::settings_of(app, merchant)
        .await?
        .unwrap_or_else(|| json!({}));
    let merged = fill_missing(current, discovered);
    crate::merchants::merge_settings(app, merchant, merged).await?;
    tracing::info!(merchant, business_id, "Sage connected");
    Ok(())
}

/// Sage ids the mapping needs, found by their UK nominal codes and currencies.
async fn discover_settings(app: &AppState, merchant: &str) -> anyhow::Result<Value> {
    let accounts = app
        .sage
        .list_all(
            merchant,
            "ledger_accounts",
            &[("attributes", "nominal_code,display_name")],
        )
        .await?;
    let by_code = |code: i64| -> Option<String> {
        accounts
            .iter()
            .find(|a| {
                a.get("nominal_code").and_then(|n| {
                    n.as_i64()
                        .or_else(|| n.as_str().and_then(|s| s.parse().ok()))
                }) == Some(code)
            })
            .and_then(|a| a.get("id").and_then(Value::as_str).map(str::to_string))
    };
    let banks = app
        .sage
        .list_all(merchant, "bank_accounts", &[("attributes", "all")])
        .await?;
    let (bank_by_currency, bank_currencies) = receipt_bank_accounts(&banks);
    // The business's base currency, read (never assumed) so the portal can say it and the
    // services hold documents of a website with another base currency.
    let base_currency = match app.sage.get(merchant, "financial_settings", &[]).await {
        Ok(answer) => ledger_mapping::sage_base_currency(&answer.body).ok(),
        Err(e) => {
            tracing::warn!(merchant, error = %e, "financial settings not read at connect");
            None
        }
    };
    Ok(json!({
        "sage_base_currency": base_currency,
        "bank_account_currencies": bank_currencies,
        "sales_ledger_account_id": by_code(4000),
        "shipping_ledger_account_id": by_code(4905).or_else(|| by_code(4000)),
        "rounding_ledger_account_id": by_code(4900).or_else(|| by_code(4000)),
        "adjustment_ledger_account_id": by_code(4900).or_else(|| by_code(4000)),
        "bank_accounts": bank_by_currency,
    }))
}

/// Rule "receipts land where the bank feed can match them": the default receipt account per
/// currency is an active current account (`CHECKING`), else an active savings or other
/// account; archived, credit-card and loan accounts are never picked (a card bill or a loan
/// does not receive the shop's money). Also returns every listed account's currency (the
/// facts `BankAccountFacts` checks mappings against).
pub fn receipt_bank_accounts(
    banks: &[Value],
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let text = |v: Option<&Value>| -> Option<String> {
        v.and_then(|c| c.get("id").and_then(Value::as_str).or_else(|| c.as_str()))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let mut currencies = BTreeMap::new();
    // (rank, id) per currency: CHECKING first, then SAVINGS, then the rest, each in listed order.
    let mut best: BTreeMap<String, (u8, String)> = BTreeMap::new();
    for bank in banks {
        let (Some(id), Some(currency)) = (
            bank.get("id").and_then(Value::as_str),
            text(bank.get("currency")),
        ) else {
            continue;
        };
        let currency = currency.to_ascii_uppercase();
        currencies.insert(id.to_string(), currency.clone());
        let active = bank
            .get("is_active")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let kind = text(bank.get("bank_account_type")).unwrap_or_default();
        let rank = match kind.as_str() {
            _ if !active => continue,
            "CREDIT_CARD" | "LOAN" => continue,
            "CHECKING" => 0,
            "SAVINGS" => 1,
            _ => 2,
        };
        match best.get(&currency) {
            Some((r, _)) if *r <= rank => {}
            _ => {
                best.insert(currency, (rank, id.to_string()));
            }
        }
    }
    (
        best.into_iter().map(|(c, (_, id))| (c, id)).collect(),
        currencies,
    )
}

/// Discovered facts about Sage (not choices): replaced on every connect.
const DISCOVERED_FACTS: &[&str] = &["sage_base_currency", "bank_account_currencies"];

/// Keeps every key the operator already set; adds discovered values for the others. Facts
/// about the Sage business ([`DISCOVERED_FACTS`]) are always refreshed.
fn fill_missing(current: Value, discovered: Value) -> Value {
    let mut out = current.as_object().cloned().unwrap_or_default();
    if let Value::Object(found) = discovered {
        for (k, v) in found {
            let missing =
                out.get(&k).is_none_or(Value::is_null) || DISCOVERED_FACTS.contains(&k.as_str());
            if missing && !v.is_null() {
                out.insert(k, v);
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_host_prefixed_and_secure_over_https_only() {
        for (https, name) in [
            (true, crate::portal::SECURE_COOKIE),
            (true, SECURE_BINDING_COOKIE),
            (false, crate::portal::COOKIE),
            (false, BINDING_COOKIE),
        ] {
            assert_eq!(name.starts_with("__Host-"), https, "{name}");
            let c = build_cookie(https, name, "abc", 60);
            assert_eq!(c.secure(), Some(https), "{c}");
            assert_eq!(c.http_only(), Some(true), "{c}");
            assert_eq!(c.same_site(), Some(cookie::SameSite::Lax), "{c}");
            assert_eq!(c.path(), Some("/"), "{c}");
            assert_eq!(c.domain(), None, "{c}");
            assert_eq!(c.max_age(), Some(cookie::time::Duration::seconds(60)));
            let header = c.to_string();
            assert!(header.starts_with(&format!("{name}=abc;")), "{header}");
            assert_eq!(header.contains("Secure"), https, "{header}");
        }
    }

    #[test]
    fn discovery_skips_archived_credit_card_and_loan_accounts() {
        let banks = vec![
            json!({"id": "old", "currency": {"id": "GBP"}, "bank_account_type": {"id": "CHECKING"}, "is_active": false}),
            json!({"id": "card", "currency": {"id": "GBP"}, "bank_account_type": {"id": "CREDIT_CARD"}, "is_active": true}),
            json!({"id": "loan", "currency": {"id": "GBP"}, "bank_account_type": {"id": "LOAN"}, "is_active": true}),
            json!({"id": "save-gbp", "currency": {"id": "GBP"}, "bank_account_type": {"id": "SAVINGS"}, "is_active": true}),
            json!({"id": "cur-gbp", "currency": {"id": "GBP"}, "bank_account_type": {"id": "CHECKING"}, "is_active": true}),
            json!({"id": "eur-card", "currency": {"id": "EUR"}, "bank_account_type": {"id": "CREDIT_CARD"}, "is_active": true}),
            json!({"id": "usd-other", "currency": "usd", "bank_account_type": {"id": "OTHER"}}),
        ];
        let (defaults, currencies) = receipt_bank_accounts(&banks);
        // GBP: the active current account, though a savings account is listed before it.
        assert_eq!(defaults.get("GBP").map(String::as_str), Some("cur-gbp"));
        // EUR: only a card, so no default (the payment is held `no_bank_account`).
        assert_eq!(defaults.get("EUR"), None);
        assert_eq!(defaults.get("USD").map(String::as_str), Some("usd-other"));
        assert_eq!(currencies.len(), 7);
        assert_eq!(currencies["usd-other"], "USD");
    }

    #[test]
    fn discovered_facts_are_refreshed() {
        let current = json!({"sage_base_currency": "EUR", "bank_accounts": {"GBP": "mine"}});
        let found = json!({"sage_base_currency": "GBP", "bank_accounts": {"GBP": "found"}});
        let merged = fill_missing(current, found);
        assert_eq!(merged["sage_base_currency"], "GBP");
        assert_eq!(merged["bank_accounts"]["GBP"], "mine");
    }

    #[test]
    fn operator_settings_win_over_discovered_ones() {
        let current = json!({"sales_ledger_account_id": "mine", "due_days": 14});
        let found = json!({"sales_ledger_account_id": "found", "rounding_ledger_account_id": "r", "x": null});
        let merged = fill_missing(current, found);
        assert_eq!(merged["sales_ledger_account_id"], "mine");
        assert_eq!(merged["rounding_ledger_account_id"], "r");
        assert_eq!(merged["due_days"], 14);
        assert!(merged.get("x").is_none());
    }
}
