//! Pairing a Magento store with its merchant, and the keys stores receive (decision record 0009).
//!
//! 1. The module asks for a pairing (`POST /v1/pairings`, no credentials) and shows the merchant
//!    the single-use code, valid [`CODE_TTL_MINUTES`] minutes.
//! 2. The merchant enters the code on the hosted side: in the portal, which shows the store's
//!    URL, name and request time and claims only when the merchant confirms; or the operator
//!    (`POST /v1/admin/merchants/{merchant}/pairings`, or `ledgerctl pair`).
//! 3. The module polls `GET /v1/pairings/{id}` with its poll secret; the first poll after the
//!    claim creates a key and hands it over, once. No callback, no inbound connection.
//!
//! The key is the store's only credential: NATS user = key id and password = secret (checked by
//! the auth callout, [`crate::nats_auth`]), and the bearer of `/v1/events` and `/v1/status`.
//! The store's Disconnect (`POST /v1/credentials/revoke`) or the operator
//! (`DELETE /v1/admin/merchants/{merchant}/keys/{key}`) revokes it.

use std::sync::Arc;

use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::merchants::{bearer, hash_key, require_admin};
use crate::routes::Routes;
use crate::AppState;
use crate::{json_error as error, unavailable};

/// How long a pairing code can be claimed.
pub const CODE_TTL_MINUTES: i64 = 30;
/// How long after the claim the store can still collect its key.
pub const DELIVERY_WINDOW_HOURS: i64 = 24;
/// Unclaimed, unexpired pairings allowed at once; the request endpoint is unauthenticated.
/// One client IP may hold only `LEDGER_MAX_OPEN_PAIRINGS_PER_IP` of them, so one address
/// cannot fill this for everyone.
pub const MAX_OPEN_PAIRINGS: i64 = 10_000;
/// Wrong codes a merchant may enter per [`CLAIM_WINDOW_MINUTES`]: with at most
/// [`MAX_OPEN_PAIRINGS`] codes waiting among 2^40, guessing another store's code would take
/// about 10^8 tries; this keeps it at that.
pub const MAX_FAILED_CLAIMS: i64 = 20;
/// Window of [`MAX_FAILED_CLAIMS`].
pub const CLAIM_WINDOW_MINUTES: i32 = 15;

fn count(step: &str) {
    ledger_runtime::metrics::metrics()
        .pairings
        .with_label_values(&[step])
        .inc();
}

/// Letters and digits a code is made of: no 0/O or 1/I to misread.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Characters of a code (40 bits of entropy), shown as `XXXX-XXXX`.
const CODE_LENGTH: usize = 8;
/// Most characters accepted from the store in a descriptive field.
const MAX_FIELD: usize = 200;

/// Routes of the pairing handshake and key management.
pub fn routes() -> Routes {
    Routes::new()
        .post("/v1/pairings", request_pairing)
        .get("/v1/pairings/{pairing}", poll_pairing)
        .post("/v1/credentials/revoke", revoke_own_key)
        .post("/v1/admin/merchants/{merchant}/pairings", claim_pairing)
        .get("/v1/admin/merchants/{merchant}/keys", list_keys)
        .delete("/v1/admin/merchants/{merchant}/keys/{key}", revoke_key)
}

/// `bytes` random bytes as lowercase hex (tokens, secrets, ids).
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill(&mut buf[..]);
    data_encoding::HEXLOWER.encode(&buf)
}

/// A fresh code, e.g. `K7QF-9M2X`.
pub fn new_code() -> String {
    let mut rng = rand::thread_rng();
    let chars: String = (0..CODE_LENGTH)
        .map(|_| CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())] as char)
        .collect();
    format!("{}-{}", &chars[..4], &chars[4..])
}

/// The canonical form of a code as typed: case, spaces and dashes do not matter.
pub fn normalize_code(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn short(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .map(|s| s.chars().take(MAX_FIELD).collect())
}

async fn request_pairing(
    State(app): State<Arc<AppState>>,
    client: Option<Extension<crate::limits::ClientIp>>,
    body: axum::body::Bytes,
) -> Response {
    let ip = client.and_then(|Extension(c)| c.0).map(|ip| ip.to_string());
    let details: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_body",
                    "the body must be a JSON object (store_url, store_name, module_version)",
                )
            }
        }
    };
    // Expired codes nobody collected are of no further use.
    if let Err(e) = sqlx::query(
        "DELETE FROM pairings WHERE key_id IS NULL AND expires_at < now() - interval '1 day'",
    )
    .execute(&app.db)
    .await
    {
        return unavailable(e);
    }
    let open: Result<i64, _> = sqlx::query_scalar(
        "SELECT count(*) FROM pairings WHERE merchant_id IS NULL AND expires_at > now()",
    )
    .fetch_one(&app.db)
    .await;
    match open {
        Ok(n) if n >= MAX_OPEN_PAIRINGS => {
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_pairings",
                "too many pairing codes are waiting to be claimed; try again later",
            )
        }
        Ok(_) => {}
        Err(e) => return unavailable(e),
    }
    let mut tx = match app.db.begin().await {
        Ok(tx) => tx,
        Err(e) => return unavailable(e),
    };
    if let Some(ip) = &ip {
        // One request per address at a time decides, so parallel requests cannot overshoot.
        let open: Result<i64, _> = async {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('pairing:' || $1))")
                .bind(ip)
                .execute(&mut *tx)
                .await?;
            sqlx::query_scalar(
                "SELECT count(*) FROM pairings
                 WHERE requester_ip = $1 AND merchant_id IS NULL AND expires_at > now()",
            )
            .bind(ip)
            .fetch_one(&mut *tx)
            .await
        }
        .await;
        let cap = i64::from(app.config.limits.open_pairings_per_ip);
        match open {
            Ok(n) if n >= cap => {
                tracing::info!(%ip, open = n, "per-IP open pairings cap");
                return crate::limits::too_many(
                    "open_pairings_per_ip",
                    std::time::Duration::from_secs(60),
                    &format!(
                        "this address has {n} pairing codes waiting to be claimed (at most {cap}); \
                         enter one of them or wait until they expire"
                    ),
                );
            }
            Ok(_) => {}
            Err(e) => return unavailable(e),
        }
    }
    let pairing_id = format!("pr_{}", random_hex(12));
    let poll_secret = random_hex(32);
    // A collision of 40-bit codes is unlikely but would make a code ambiguous: draw again.
    for _ in 0..5 {
        let code = new_code();
        let inserted: Result<DateTime<Utc>, _> = sqlx::query_scalar(
            "INSERT INTO pairings (pairing_id, code_hash, poll_secret_hash, store_url, store_name, module_version, expires_at, requester_ip)
             VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(mins => $7), $8)
             ON CONFLICT (code_hash) DO NOTHING RETURNING expires_at",
        )
        .bind(&pairing_id)
        .bind(hash_key(&normalize_code(&code)))
        .bind(hash_key(&poll_secret))
        .bind(short(details.get("store_url")))
        .bind(short(details.get("store_name")))
        .bind(short(details.get("module_version")))
        .bind(CODE_TTL_MINUTES as i32)
        .bind(&ip)
        .fetch_optional(&mut *tx)
        .await
        .and_then(|row| row.ok_or(sqlx::Error::RowNotFound));
        match inserted {
            Ok(expires_at) => {
                if let Err(e) = tx.commit().await {
                    return unavailable(e);
                }
                count("requested");
                return (
                    StatusCode::CREATED,
                    Json(json!({
                        "pairing_id": pairing_id,
                        "code": code,
                        "poll_secret": poll_secret,
                        "expires_at": expires_at,
                        "poll_interval_seconds": 5,
                    })),
                )
                    .into_response();
            }
            Err(sqlx::Error::RowNotFound) => continue,
            Err(e) => return unavailable(e),
        }
    }
    unavailable("could not draw an unused pairing code")
}

#[derive(Deserialize)]
struct Claim {
    code: Option<String>,
}

/// Why a pairing code could not be claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimRefusal {
    /// Not eight letters and digits.
    InvalidCode,
    /// No such merchant.
    UnknownMerchant,
    /// No store is waiting with this code.
    UnknownCode,
    /// The code was claimed before.
    Used,
    /// The code was not entered in time.
    Expired,
    /// Too many wrong codes from this merchant lately.
    TooManyAttempts,
}

impl ClaimRefusal {
    /// HTTP status of the refusal.
    pub fn status(self) -> StatusCode {
        match self {
            ClaimRefusal::InvalidCode => StatusCode::UNPROCESSABLE_ENTITY,
            ClaimRefusal::UnknownMerchant | ClaimRefusal::UnknownCode => StatusCode::NOT_FOUND,
            ClaimRefusal::Used => StatusCode::CONFLICT,
            ClaimRefusal::Expired => StatusCode::GONE,
            ClaimRefusal::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// Stable error code.
    pub fn code(self) -> &'static str {
        match self {
            ClaimRefusal::InvalidCode => "invalid_code",
            ClaimRefusal::UnknownMerchant => "not_found",
            ClaimRefusal::UnknownCode => "pairing_code_unknown",
            ClaimRefusal::Used => "pairing_code_used",
            ClaimRefusal::Expired => "pairing_code_expired",
            ClaimRefusal::TooManyAttempts => "too_many_attempts",
        }
    }

    /// What to tell the person who typed the code, naming the field.
    pub fn message(self) -> String {
        match self {
            ClaimRefusal::InvalidCode => format!(
                "code: a pairing code has {CODE_LENGTH} letters and digits, as XXXX-XXXX"
            ),
            ClaimRefusal::UnknownMerchant => "no such merchant".into(),
            ClaimRefusal::UnknownCode => "code: no store is waiting with this pairing code; generate a new one in the store's admin".into(),
            ClaimRefusal::Used => "code: this pairing code has already been used; generate a new one in the store's admin".into(),
            ClaimRefusal::Expired => format!("code: pairing codes are valid for {CODE_TTL_MINUTES} minutes; generate a new one in the store's admin"),
            ClaimRefusal::TooManyAttempts => format!("code: too many wrong pairing codes; wait {CLAIM_WINDOW_MINUTES} minutes and check the code in the store's admin"),
        }
    }
}

/// The canonical form of a typed code, or why it cannot be one (the refusal names `code`).
pub fn parse_code(typed: &str) -> Result<String, ClaimRefusal> {
    // Longer than any way of typing a code: refused before looking at it.
    if typed.len() > 64 {
        return Err(ClaimRefusal::InvalidCode);
    }
    let code = normalize_code(typed);
    if code.len() != CODE_LENGTH {
        return Err(ClaimRefusal::InvalidCode);
    }
    Ok(code)
}

/// `XXXXXXXX` as `XXXX-XXXX`.
fn display_code(code: &str) -> String {
    match (code.get(..4), code.get(4..)) {
        (Some(a), Some(b)) => format!("{a}-{b}"),
        _ => code.to_string(),
    }
}

/// What the store waiting with a code said about itself, for the merchant to check before
/// claiming.
#[derive(Debug, Clone)]
pub struct StorePreview {
    /// The code, as `XXXX-XXXX`.
    pub code: String,
    /// The store's URL, as the store gave it.
    pub store_url: Option<String>,
    /// The store's name, as the store gave it.
    pub store_name: Option<String>,
    /// The module version.
    pub module_version: Option<String>,
    /// When the store asked for the code.
    pub requested_at: DateTime<Utc>,
}

/// Refuses the merchant's claim attempts beyond the allowed wrong codes, and unknown
/// merchants.
async fn may_try(app: &AppState, merchant: &str) -> Result<Result<(), ClaimRefusal>, sqlx::Error> {
    let exists: Option<String> =
        sqlx::query_scalar("SELECT merchant_id FROM merchants WHERE merchant_id = $1")
            .bind(merchant)
            .fetch_optional(&app.db)
            .await?;
    if exists.is_none() {
        return Ok(Err(ClaimRefusal::UnknownMerchant));
    }
    let failures: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pairing_claim_failures
         WHERE merchant_id = $1 AND at > now() - make_interval(mins => $2)",
    )
    .bind(merchant)
    .bind(CLAIM_WINDOW_MINUTES)
    .fetch_one(&app.db)
    .await?;
    if failures >= MAX_FAILED_CLAIMS {
        count("refused");
        return Ok(Err(ClaimRefusal::TooManyAttempts));
    }
    Ok(Ok(()))
}

async fn record_failure(app: &AppState, merchant: &str) -> Result<(), sqlx::Error> {
    count("refused");
    sqlx::query("INSERT INTO pairing_claim_failures (merchant_id) VALUES ($1)")
        .bind(merchant)
        .execute(&app.db)
        .await?;
    Ok(())
}

/// The store waiting with `typed`, for `merchant` to confirm; claims nothing. A wrong code
/// counts as a failed claim (guessing by preview is throttled the same way).
pub async fn preview_code(
    app: &AppState,
    merchant: &str,
    typed: &str,
) -> Result<Result<StorePreview, ClaimRefusal>, sqlx::Error> {
    let code = match parse_code(typed) {
        Ok(c) => c,
        Err(r) => return Ok(Err(r)),
    };
    if let Err(r) = may_try(app, merchant).await? {
        return Ok(Err(r));
    }
    type Row = (
        Option<String>,
        Option<String>,
        Option<String>,
        DateTime<Utc>,
        Option<String>,
        bool,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT store_url, store_name, module_version, created_at, merchant_id, expires_at < now()
         FROM pairings WHERE code_hash = $1",
    )
    .bind(hash_key(&code))
    .fetch_optional(&app.db)
    .await?;
    let outcome = match row {
        None => Err(ClaimRefusal::UnknownCode),
        Some((_, _, _, _, Some(_), _)) => Err(ClaimRefusal::Used),
        Some((_, _, _, _, None, true)) => Err(ClaimRefusal::Expired),
        Some((store_url, store_name, module_version, requested_at, None, false)) => {
            Ok(StorePreview {
                code: display_code(&code),
                store_url,
                store_name,
                module_version,
                requested_at,
            })
        }
    };
    if outcome.is_err() {
        record_failure(app, merchant).await?;
    }
    Ok(outcome)
}

/// Binds the pairing waiting with `typed` to `merchant`; returns the pairing id.
pub async fn claim_code(
    app: &AppState,
    merchant: &str,
    typed: &str,
) -> Result<Result<String, ClaimRefusal>, sqlx::Error> {
    let code = match parse_code(typed) {
        Ok(c) => c,
        Err(r) => return Ok(Err(r)),
    };
    if let Err(r) = may_try(app, merchant).await? {
        return Ok(Err(r));
    }
    // One statement decides and claims, so two people entering the same code cannot both win.
    let row: Option<(String, Option<String>, bool)> = sqlx::query_as(
        "WITH found AS (
             SELECT pairing_id, merchant_id, expires_at < now() AS expired
             FROM pairings WHERE code_hash = $1 FOR UPDATE
         ), claimed AS (
             UPDATE pairings p SET merchant_id = $2, claimed_at = now()
             FROM found f
             WHERE p.pairing_id = f.pairing_id AND f.merchant_id IS NULL AND NOT f.expired
             RETURNING p.pairing_id
         )
         SELECT f.pairing_id, f.merchant_id, f.expired FROM found f",
    )
    .bind(hash_key(&code))
    .bind(merchant)
    .fetch_optional(&app.db)
    .await?;
    let outcome = match row {
        None => Err(ClaimRefusal::UnknownCode),
        Some((_, Some(_), _)) => Err(ClaimRefusal::Used),
        Some((_, None, true)) => Err(ClaimRefusal::Expired),
        Some((pairing_id, None, false)) => {
            tracing::info!(%merchant, %pairing_id, "pairing code claimed");
            Ok(pairing_id)
        }
    };
    match &outcome {
        Ok(_) => count("claimed"),
        Err(_) => record_failure(app, merchant).await?,
    }
    Ok(outcome)
}

async fn claim_pairing(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(merchant): Path<String>,
    Json(claim): Json<Claim>,
) -> Response {
    if let Err(r) = require_admin(&app, &headers) {
        return r;
    }
    match claim_code(&app, &merchant, claim.code.as_deref().unwrap_or("")).await {
        Ok(Ok(pairing_id)) => {
            Json(json!({"pairing_id": pairing_id, "merchant_id": merchant, "state": "claimed"}))
                .into_response()
        }
        Ok(Err(refusal)) => error(refusal.status(), refusal.code(), refusal.message()),
        Err(e) => unavailable(e),
    }
}

type PairingRow = (
    String,
    bool,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
);

async fn poll_pairing(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(pairing_id): Path<String>,
) -> Response {
    let Some(secret) = bearer(&headers) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the pairing's poll secret is required as bearer token",
        );
    };
    let mut tx = match app.db.begin().await {
        Ok(tx) => tx,
        Err(e) => return unavailable(e),
    };
    let row: Result<Option<PairingRow>, _> = sqlx::query_as(
        "SELECT poll_secret_hash, expires_at < now(), merchant_id, claimed_at, delivered_at, expires_at
         FROM pairings WHERE pairing_id = $1 FOR UPDATE",
    )
    .bind(&pairing_id)
    .fetch_optional(&mut *tx)
    .await;
    let (secret_hash, expired, merchant, claimed_at, delivered_at, expires_at) = match row {
        Ok(Some(row)) => row,
        Ok(None) => return error(StatusCode::NOT_FOUND, "not_found", "no such pairing"),
        Err(e) => return unavailable(e),
    };
    if !sage_client::same_secret(&secret_hash, &hash_key(secret)) {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "wrong poll secret for this pairing",
        );
    }
    if delivered_at.is_some() {
        return error(
            StatusCode::GONE,
            "pairing_consumed",
            "this pairing has already delivered its key; generate a new code to pair again",
        );
    }
    let Some(merchant) = merchant else {
        if expired {
            return error(
                StatusCode::GONE,
                "pairing_expired",
                format!("the code was not entered within {CODE_TTL_MINUTES} minutes; generate a new one"),
            );
        }
        return Json(json!({"state": "pending", "expires_at": expires_at})).into_response();
    };
    if claimed_at.is_some_and(|at| at < Utc::now() - chrono::Duration::hours(DELIVERY_WINDOW_HOURS))
    {
        return error(
            StatusCode::GONE,
            "pairing_expired",
            format!("the key was not collected within {DELIVERY_WINDOW_HOURS} hours of the code being entered; generate a new code"),
        );
    }
    let key_id = format!("mk_{}", random_hex(8));
    let key_secret = random_hex(32);
    let stored = async {
        sqlx::query(
            "INSERT INTO merchant_keys (key_id, merchant_id, secret_hash, pairing_id, label)
             SELECT $1, $2, $3, pairing_id, coalesce(store_url, store_name, 'Magento store')
             FROM pairings WHERE pairing_id = $4",
        )
        .bind(&key_id)
        .bind(&merchant)
        .bind(hash_key(&key_secret))
        .bind(&pairing_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE pairings SET delivered_at = now(), key_id = $2 WHERE pairing_id = $1")
            .bind(&pairing_id)
            .bind(&key_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = stored {
        return unavailable(e);
    }
    count("delivered");
    tracing::info!(%merchant, %pairing_id, %key_id, "store paired");
    Json(json!({
        "state": "paired",
        "merchant_id": merchant,
        "credentials": {"key_id": key_id, "secret": key_secret},
        "nats": {
            "urls": public_nats_urls(&app),
            "inbox_prefix": crate::store_access::inbox_prefix(&merchant, &key_secret),
        },
        "gateway_url": app.config.public_url,
    }))
    .into_response()
}

/// NATS URLs handed to stores: configured ones, or the gateway's own without credentials.
fn public_nats_urls(app: &AppState) -> Vec<String> {
    crate::store_access::public_nats_urls_of(&app.config)
}

async fn revoke_own_key(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Some(secret) = bearer(&headers) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the store's key secret is required as bearer token",
        );
    };
    let revoked: Result<Option<(String, String)>, _> = sqlx::query_as(
        "UPDATE merchant_keys SET revoked_at = now(), revoked_by = 'store'
         WHERE secret_hash = $1 AND revoked_at IS NULL RETURNING key_id, merchant_id",
    )
    .bind(hash_key(secret))
    .fetch_optional(&app.db)
    .await;
    match revoked {
        Ok(Some((key_id, merchant))) => {
            count("revoked");
            tracing::info!(%merchant, %key_id, "store disconnected; key revoked");
            Json(json!({"revoked": true, "key_id": key_id})).into_response()
        }
        Ok(None) => error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unknown or already revoked key",
        ),
        Err(e) => unavailable(e),
    }
}

/// A store key as the operator and the merchant see it (never its secret).
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct KeyInfo {
    /// Key id (the NATS user).
    pub key_id: String,
    /// Store URL or name given when pairing.
    pub label: String,
    /// When the store collected it.
    pub created_at: DateTime<Utc>,
    /// Last NATS login.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// `store` or `operator` (or `merchant`, from the portal).
    pub revoked_by: Option<String>,
}

/// The merchant's keys, oldest first.
pub async fn keys_of(app: &AppState, merchant: &str) -> Result<Vec<KeyInfo>, sqlx::Error> {
    sqlx::query_as(
        "SELECT key_id, label, created_at, last_used_at, revoked_at, revoked_by
         FROM merchant_keys WHERE merchant_id = $1 ORDER BY created_at, key_id",
    )
    .bind(merchant)
    .fetch_all(&app.db)
    .await
}

/// Revokes one of the merchant's keys (idempotent); `None` when it has no such key.
pub async fn revoke_merchant_key(
    app: &AppState,
    merchant: &str,
    key_id: &str,
    by: &str,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let revoked: Option<Option<DateTime<Utc>>> = sqlx::query_scalar(
        "UPDATE merchant_keys SET revoked_at = coalesce(revoked_at, now()),
                revoked_by = coalesce(revoked_by, $3)
         WHERE merchant_id = $1 AND key_id = $2 RETURNING revoked_at",
    )
    .bind(merchant)
    .bind(key_id)
    .bind(by)
    .fetch_optional(&app.db)
    .await?;
    if revoked.is_some() {
        count("revoked");
        tracing::info!(%merchant, %key_id, by, "key revoked");
    }
    Ok(revoked.flatten())
}

async fn list_keys(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(merchant): Path<String>,
) -> Response {
    if let Err(r) = require_admin(&app, &headers) {
        return r;
    }
    match keys_of(&app, &merchant).await {
        Ok(keys) => Json(json!({"merchant_id": merchant, "keys": keys})).into_response(),
        Err(e) => unavailable(e),
    }
}

async fn revoke_key(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((merchant, key_id)): Path<(String, String)>,
) -> Response {
    if let Err(r) = require_admin(&app, &headers) {
        return r;
    }
    match revoke_merchant_key(&app, &merchant, &key_id, "operator").await {
        Ok(Some(at)) => {
            Json(json!({"revoked": true, "key_id": key_id, "revoked_at": at})).into_response()
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such key for this merchant",
        ),
        Err(e) => unavailable(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_two_groups_of_four_unambiguous_characters() {
        for _ in 0..200 {
            let code = new_code();
            assert_eq!(code.len(), 9);
            assert_eq!(&code[4..5], "-");
            assert!(code
                .chars()
                .filter(|c| *c != '-')
                .all(|c| CODE_ALPHABET.contains(&(c as u8))));
            assert!(!code.contains(['0', 'O', '1', 'I']));
        }
    }

    #[test]
    fn a_code_is_recognised_however_it_is_typed() {
        assert_eq!(normalize_code("k7qf-9m2x"), "K7QF9M2X");
        assert_eq!(normalize_code(" K7QF 9M2X "), "K7QF9M2X");
        assert_eq!(normalize_code("K7QF9M2X"), "K7QF9M2X");
        assert_ne!(normalize_code("K7QF-9M2Y"), "K7QF9M2X");
    }
}
