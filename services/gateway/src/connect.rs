//! Connecting a merchant's Sage business (OAuth 2.0 authorisation code flow).
//!
//! `GET /connect/sage/start?merchant=M` sends the merchant to Sage's consent page with a
//! single-use `state`; Sage sends the browser back to `GET /connect/sage/callback` with a
//! code (valid 60 s), which is exchanged and stored encrypted. The gateway then discovers the
//! Sage ids the mapping needs (sales, carriage and rounding ledger accounts; a bank account
//! per currency) and records them in the merchant's settings, keeping any the operator set.
//!
//! `start` needs the admin token (operator tools); merchants start the flow from the portal
//! ([`crate::portal`]), and the callback sends them back there. Sage itself only ever talks to
//! the callback.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{unavailable, AppState};

/// Routes of the connection flow.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/connect/sage/start", get(start))
        .route("/connect/sage/callback", get(callback))
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
    match begin_consent(&app, &q.merchant, None).await {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Err(e) => unavailable(e),
    }
}

/// Records a single-use `state` for `merchant` and returns Sage's consent URL. After the
/// callback the browser goes to `return_to` (a path of this gateway) when given.
pub async fn begin_consent(
    app: &AppState,
    merchant: &str,
    return_to: Option<&str>,
) -> Result<String, sqlx::Error> {
    let mut raw = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut raw);
    let state = hex::encode(raw);
    sqlx::query("INSERT INTO oauth_states (state, merchant_id, return_to) VALUES ($1, $2, $3)")
        .bind(&state)
        .bind(merchant)
        .bind(return_to)
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

async fn callback(State(app): State<Arc<AppState>>, Query(q): Query<CallbackQuery>) -> Response {
    let Some(state) = q.state else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_callback", "message": "state is required"})),
        )
            .into_response();
    };
    let found = sqlx::query_as::<_, (String, Option<String>)>(
        "DELETE FROM oauth_states WHERE state = $1 AND created_at > now() - interval '30 minutes'
         RETURNING merchant_id, return_to",
    )
    .bind(&state)
    .fetch_optional(&app.db)
    .await;
    let (merchant, return_to) =
        match found {
            Ok(Some(found)) => found,
            Ok(None) => return (
                StatusCode::BAD_REQUEST,
                Json(
                    json!({"error": "invalid_state", "message": "unknown, used or expired state"}),
                ),
            )
                .into_response(),
            Err(e) => return unavailable(e),
        };
    // A flow started in the portal returns there, with a message code only.
    let back = |outcome: &str| {
        return_to
            .as_deref()
            .filter(|p| p.starts_with('/'))
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
            (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "consent_refused", "message": error})),
            )
                .into_response()
        });
    }
    let Some(code) = q.code else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_callback", "message": "code is required"})),
        )
            .into_response();
    };
    match complete(&app, &merchant, &code).await {
        Ok(business_id) => back("notice=connected").unwrap_or_else(|| {
            Json(json!({
                "merchant_id": merchant,
                "sage_business_id": business_id,
                "status": "connected",
            }))
            .into_response()
        }),
        Err(e) => {
            tracing::warn!(%merchant, error = %e, "Sage connection failed");
            back("error=sage_connect_failed").unwrap_or_else(|| {
                (
                    StatusCode::BAD_GATEWAY,
                    Json(json!({"error": "connect_failed", "message": e.to_string()})),
                )
                    .into_response()
            })
        }
    }
}

/// Exchanges the code, picks the business, stores the connection and discovers settings.
pub async fn complete(app: &AppState, merchant: &str, code: &str) -> anyhow::Result<String> {
    let tokens = app.tokens.oauth().exchange_code(code).await?;
    let businesses = app.sage.list_businesses(&tokens.access_token).await?;
    // One business is the norm; with several, the first listed is the user's lead business.
    let business_id = businesses
        .first()
        .and_then(|b| b.get("id"))
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow::anyhow!("the Sage user has no business"))?
        .to_string();
    app.tokens.connect(merchant, &business_id, &tokens).await?;
    let discovered = discover_settings(app, merchant).await?;
    let current = crate::merchants::settings_of(app, merchant)
        .await?
        .unwrap_or_else(|| json!({}));
    let merged = fill_missing(current, discovered);
    crate::merchants::merge_settings(app, merchant, merged).await?;
    tracing::info!(merchant, business_id, "Sage connected");
    Ok(business_id)
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
    let mut bank_by_currency = BTreeMap::new();
    for bank in &banks {
        let currency = bank
            .get("currency")
            .and_then(|c| c.get("id").and_then(Value::as_str).or_else(|| c.as_str()));
        if let (Some(currency), Some(id)) = (currency, bank.get("id").and_then(Value::as_str)) {
            bank_by_currency
                .entry(currency.to_string())
                .or_insert_with(|| id.to_string());
        }
    }
    Ok(json!({
        "sales_ledger_account_id": by_code(4000),
        "shipping_ledger_account_id": by_code(4905).or_else(|| by_code(4000)),
        "rounding_ledger_account_id": by_code(4900).or_else(|| by_code(4000)),
        "adjustment_ledger_account_id": by_code(4900).or_else(|| by_code(4000)),
        "bank_accounts": bank_by_currency,
    }))
}

/// Keeps every key the operator already set; adds discovered values for the others.
fn fill_missing(current: Value, discovered: Value) -> Value {
    let mut out = current.as_object().cloned().unwrap_or_default();
    if let Value::Object(found) = discovered {
        for (k, v) in found {
            let missing = out.get(&k).is_none_or(Value::is_null);
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
