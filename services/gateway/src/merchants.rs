//! Merchant registry, ingest keys and accounting settings (schema `gateway`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::routes::Routes;
use crate::AppState;

/// Routes of the admin API (bearer `LEDGER_ADMIN_TOKEN`).
pub fn routes() -> Routes {
    Routes::new()
        .post("/v1/admin/merchants", add_merchant)
        .get("/v1/admin/merchants/{merchant}", show_merchant)
        .put("/v1/admin/merchants/{merchant}/settings", put_settings)
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

pub(crate) fn hash_key(key: &str) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(key.as_bytes()))
}

/// The merchant a store request belongs to, from its bearer: the secret of a key received by
/// pairing (unless revoked), or an operator-issued ingest key.
pub async fn authenticate_ingest(app: &AppState, headers: &HeaderMap) -> Option<String> {
    let key = bearer(headers)?;
    sqlx::query_scalar::<_, String>(
        "SELECT merchant_id FROM merchant_keys WHERE secret_hash = $1 AND revoked_at IS NULL
         UNION ALL
         SELECT merchant_id FROM merchants WHERE ingest_key_hash = $1
         LIMIT 1",
    )
    .bind(hash_key(key))
    .fetch_optional(&app.db)
    .await
    .ok()
    .flatten()
}

/// Whether `sent` is the admin token, compared in constant time (over SHA-256 digests, so the
/// time depends neither on where the first difference is nor on the token's length).
pub(crate) fn is_admin_token(app: &AppState, sent: &str) -> bool {
    use subtle::ConstantTimeEq;
    let sent = Sha256::digest(sent.as_bytes());
    let expected = Sha256::digest(app.config.admin_token.trim().as_bytes());
    sent.as_slice().ct_eq(expected.as_slice()).into()
}

pub(crate) fn require_admin(app: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    match bearer(headers) {
        Some(token) if is_admin_token(app, token) => Ok(()),
        _ => Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "unauthorized", "message": "admin token required"})),
        )
            .into_response()),
    }
}

#[derive(Deserialize)]
struct NewMerchant {
    merchant_id: String,
    name: String,
    #[serde(default)]
    settings: Option<Value>,
}

async fn add_merchant(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Json(req): Json<NewMerchant>,
) -> Response {
    if let Err(r) = require_admin(&app, &headers) {
        return r;
    }
    if let Err(e) = ledger_events::validate_merchant_id(&req.merchant_id) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": "invalid_merchant_id", "issues": [{"field": "/merchant_id", "reason": e.to_string()}]})),
        )
            .into_response();
    }
    let mut secret = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut secret);
    let key = format!(
        "lk_{}_{}",
        req.merchant_id,
        data_encoding::HEXLOWER.encode(&secret)
    );
    let result = sqlx::query(
        "INSERT INTO merchants (merchant_id, name, ingest_key_hash, settings) VALUES ($1, $2, $3, $4)",
    )
    .bind(&req.merchant_id)
    .bind(&req.name)
    .bind(hash_key(&key))
    .bind(req.settings.unwrap_or_else(|| json!({})))
    .execute(&app.db)
    .await;
    match result {
        Ok(_) => (
            StatusCode::CREATED,
            Json(json!({"merchant_id": req.merchant_id, "ingest_key": key})),
        )
            .into_response(),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            crate::json_error(StatusCode::CONFLICT, "exists", "merchant already exists")
        }
        Err(e) => crate::unavailable(e),
    }
}

async fn show_merchant(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(merchant): Path<String>,
) -> Response {
    if let Err(r) = require_admin(&app, &headers) {
        return r;
    }
    let row = sqlx::query_as::<_, (String, Value)>(
        "SELECT name, settings FROM merchants WHERE merchant_id = $1",
    )
    .bind(&merchant)
    .fetch_optional(&app.db)
    .await;
    match row {
        Ok(Some((name, settings))) => {
            let connection = app.tokens.store().load(&merchant).await.ok().flatten();
            Json(json!({
                "merchant_id": merchant,
                "name": name,
                "settings": settings,
                "sage": connection.map(|c| json!({"business_id": c.business_id, "status": c.status.as_str()})),
            }))
            .into_response()
        }
        Ok(None) => (StatusCode::NOT_FOUND, Json(json!({"error": "not_found"}))).into_response(),
        Err(e) => crate::unavailable(e),
    }
}

async fn put_settings(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(merchant): Path<String>,
    Json(patch): Json<Value>,
) -> Response {
    if let Err(r) = require_admin(&app, &headers) {
        return r;
    }
    match settings_issues(&app, &merchant, &patch).await {
        Ok(issues) if !issues.is_empty() => return invalid_settings(issues),
        Ok(_) => {}
        Err(e) => return crate::unavailable(e),
    }
    match merge_settings(&app, &merchant, patch).await {
        Ok(Some(settings)) => Json(settings).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, Json(json!({"error": "not_found"}))).into_response(),
        Err(e) => crate::unavailable(e),
    }
}

/// Everything wrong with a settings patch for `merchant`, as `(JSON pointer, reason)`; empty
/// when it can be merged. One check for every writer of settings (the admin API, the portal).
pub(crate) async fn settings_issues(
    app: &AppState,
    merchant: &str,
    patch: &Value,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let mut issues = Vec::new();
    if let Some(zone) = patch.get("timezone") {
        if zone
            .as_str()
            .and_then(|z| z.trim().parse::<chrono_tz::Tz>().ok())
            .is_none()
        {
            issues.push((
                "/timezone".to_string(),
                "not an IANA time zone name such as Europe/London".to_string(),
            ));
        }
    }
    // Locked periods: the two policies of `ledger_mapping::LockedPeriod` (null: the default).
    if let Some(policy) = patch.get("locked_period") {
        if !matches!(policy.as_str(), Some("hold" | "move_to_first_open_day")) && !policy.is_null()
        {
            issues.push((
                "/locked_period".to_string(),
                "hold or move_to_first_open_day".to_string(),
            ));
        }
    }
    // Sync policy: cutover date, website and store ids, the choices and the reference prefix.
    issues.extend(ledger_mapping::policy_setting_issues(patch));
    // Money in: a bank account mapped for a currency it is not in is refused, unless the
    // merchant says the account takes foreign money (`foreign_money_bank_accounts`).
    issues.extend(bank_account_issues(app, merchant, patch).await?);
    Ok(issues)
}

/// 422 `invalid_settings` listing `(field, reason)` issues.
pub(crate) fn invalid_settings(issues: Vec<(String, String)>) -> Response {
    let issues: Vec<Value> = issues
        .into_iter()
        .map(|(field, reason)| json!({"field": field, "reason": reason}))
        .collect();
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({"error": "invalid_settings", "issues": issues})),
    )
        .into_response()
}

/// The bank-account mappings the settings would have after `patch` that put money in an
/// account of another currency not marked as taking foreign money, as `(field, reason)`.
async fn bank_account_issues(
    app: &AppState,
    merchant: &str,
    patch: &Value,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let touches = [
        "bank_accounts",
        "payment_methods",
        "foreign_money_bank_accounts",
        "bank_account_currencies",
    ];
    if !touches.iter().any(|k| patch.get(k).is_some()) {
        return Ok(Vec::new());
    }
    let mut merged = settings_of(app, merchant)
        .await?
        .and_then(|s| s.as_object().cloned())
        .unwrap_or_default();
    if let Some(p) = patch.as_object() {
        for (k, v) in p {
            merged.insert(k.clone(), v.clone());
        }
    }
    let merged = Value::Object(merged);
    Ok(
        match ledger_mapping::BankAccountFacts::from_settings(&merged) {
            Ok(facts) => facts.mapping_issues(&merged),
            Err(e) => vec![("/foreign_money_bank_accounts".into(), e.to_string())],
        },
    )
}

/// Merges `patch` into a merchant's settings (top-level keys replace); returns the result.
/// Then tells the services (`ledger_rpc::SETTINGS_CHANGED_SUBJECT`), so the next event reads
/// the new settings instead of a cached copy.
pub async fn merge_settings(
    app: &AppState,
    merchant: &str,
    patch: Value,
) -> Result<Option<Value>, sqlx::Error> {
    let merged = sqlx::query_scalar::<_, Value>(
        "UPDATE merchants SET settings = settings || $2, updated_at = now() WHERE merchant_id = $1 RETURNING settings",
    )
    .bind(merchant)
    .bind(patch)
    .fetch_optional(&app.db)
    .await?;
    if merged.is_some() {
        let note = serde_json::to_vec(&ledger_rpc::SettingsRequest {
            merchant: merchant.to_string(),
        })
        .unwrap_or_default();
        let sent = app
            .nats
            .publish(ledger_rpc::SETTINGS_CHANGED_SUBJECT, note.into())
            .await;
        if let Err(e) = sent {
            tracing::warn!(merchant, error = %e, "settings change not announced; services pick it up when their cache expires");
        }
    }
    Ok(merged)
}

/// A merchant's settings document, if the merchant exists.
pub async fn settings_of(app: &AppState, merchant: &str) -> Result<Option<Value>, sqlx::Error> {
    sqlx::query_scalar::<_, Value>("SELECT settings FROM merchants WHERE merchant_id = $1")
        .bind(merchant)
        .fetch_optional(&app.db)
        .await
}
