//! `/_sandbox/...`: the in-process control API over HTTP, for demos and
//! benchmarks that run the sandbox as a separate process.

use crate::faults::FaultPlan;
use crate::model::BusinessSpec;
use crate::shared::{lock, Shared};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Resources whose stored documents can be listed.
pub const INSPECTABLE_RESOURCES: [&str; 12] = [
    "contacts",
    "products",
    "services",
    "stock_items",
    "stock_movements",
    "sales_invoices",
    "sales_credit_notes",
    "contact_payments",
    "contact_allocations",
    "payments_on_account",
    "ledger_accounts",
    "bank_accounts",
];

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sandbox", get(index))
        .route(
            "/_sandbox/businesses",
            post(create_business).get(list_businesses),
        )
        .route(
            "/_sandbox/businesses/{id}/authorization_code",
            post(auth_code),
        )
        .route(
            "/_sandbox/businesses/{id}/revoke_tokens",
            post(revoke_tokens),
        )
        .route(
            "/_sandbox/businesses/{id}/expire_access_tokens",
            post(expire_access_tokens),
        )
        .route(
            "/_sandbox/businesses/{id}/financial_settings",
            put(set_financial_settings),
        )
        .route(
            "/_sandbox/businesses/{id}/documents/{resource}",
            get(documents),
        )
        .route(
            "/_sandbox/businesses/{id}/duplicates",
            get(business_duplicates),
        )
        .route("/_sandbox/duplicates", get(all_duplicates))
        .route("/_sandbox/stats", get(stats))
        .route("/_sandbox/calls", get(calls))
        .route("/_sandbox/concurrency_violations", get(violations))
        .route(
            "/_sandbox/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/_sandbox/faults/seed", put(seed_faults))
        .route("/_sandbox/faults/{id}", delete(remove_fault))
        .route(
            "/_sandbox/rate_limit",
            put(set_rate_limit).get(get_rate_limit),
        )
        .route("/_sandbox/reset", post(reset))
}

/// JSON with a status, the shape of every admin answer.
fn admin_json(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    admin_json(status, json!({"error": message.into()}))
}

fn ok(body: Value) -> Response {
    admin_json(StatusCode::OK, body)
}

/// The 404 answer for an unknown business, if it is unknown.
fn unknown_business(sh: &Shared, id: &str) -> Option<Response> {
    sh.business(id)
        .is_none()
        .then(|| error(StatusCode::NOT_FOUND, format!("unknown business {id}")))
}

/// Parses an optional JSON body; an empty body means the defaults.
fn parse_body<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))
}

async fn index() -> Response {
    ok(json!({
        "service": "sage-sandbox",
        "note": "Test and demo stand-in for Sage Business Cloud Accounting v3.1. Not Sage.",
        "inspectable_resources": INSPECTABLE_RESOURCES,
    }))
}

async fn create_business(State(sh): State<Arc<Shared>>, body: Bytes) -> Response {
    let spec: BusinessSpec = match parse_body(&body) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match sh.create_business(spec) {
        Ok(h) => admin_json(
            StatusCode::CREATED,
            serde_json::to_value(h).unwrap_or_default(),
        ),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

async fn list_businesses(State(sh): State<Arc<Shared>>) -> Response {
    ok(serde_json::to_value(sh.handles()).unwrap_or_default())
}

async fn auth_code(State(sh): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    match sh.issue_code(&id, None, None) {
        Some(code) => ok(json!({"code": code})),
        None => error(StatusCode::NOT_FOUND, format!("unknown business {id}")),
    }
}

async fn revoke_tokens(State(sh): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    if let Some(r) = unknown_business(&sh, &id) {
        return r;
    }
    ok(json!({"revoked": sh.revoke_business_tokens(&id)}))
}

async fn expire_access_tokens(State(sh): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    if let Some(r) = unknown_business(&sh, &id) {
        return r;
    }
    ok(json!({"expired": sh.expire_business_access_tokens(&id)}))
}

/// Body of `PUT /_sandbox/businesses/{id}/financial_settings`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FinancialDates {
    accounts_start_date: Option<chrono::NaiveDate>,
    year_end_lockdown_date: Option<chrono::NaiveDate>,
}

/// Sets the business's open period: `accounts_start_date` (omitted: the sandbox default) and
/// `year_end_lockdown_date` (omitted or null: none).
async fn set_financial_settings(
    State(sh): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let dates: FinancialDates = match parse_body(&body) {
        Ok(d) => d,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let start = dates
        .accounts_start_date
        .unwrap_or_else(crate::model::default_accounts_start_date);
    match sh.set_financial_dates(&id, start, dates.year_end_lockdown_date) {
        Some(()) => ok(json!({
            "accounts_start_date": start.to_string(),
            "year_end_lockdown_date": dates.year_end_lockdown_date.map(|d| d.to_string()),
        })),
        None => error(StatusCode::NOT_FOUND, format!("unknown business {id}")),
    }
}

async fn documents(
    State(sh): State<Arc<Shared>>,
    Path((id, resource)): Path<(String, String)>,
) -> Response {
    if let Some(r) = unknown_business(&sh, &id) {
        return r;
    }
    if !INSPECTABLE_RESOURCES.contains(&resource.as_str()) {
        return error(
            StatusCode::NOT_FOUND,
            format!("unknown resource {resource}"),
        );
    }
    ok(Value::Array(sh.documents(&id, &resource)))
}

async fn business_duplicates(State(sh): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    if let Some(r) = unknown_business(&sh, &id) {
        return r;
    }
    ok(serde_json::to_value(sh.duplicates(&id)).unwrap_or_default())
}

async fn all_duplicates(State(sh): State<Arc<Shared>>) -> Response {
    ok(serde_json::to_value(sh.all_duplicates()).unwrap_or_default())
}

async fn stats(
    State(sh): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let snap = lock(&sh.stats).snapshot();
    let snap = match q.get("business_id") {
        Some(b) => snap.for_business(b),
        None => snap,
    };
    ok(serde_json::to_value(snap).unwrap_or_default())
}

async fn calls(
    State(sh): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let limit = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(crate::stats::CALL_LOG_CAPACITY);
    let log = lock(&sh.stats).calls(q.get("business_id").map(String::as_str), limit);
    ok(serde_json::to_value(log).unwrap_or_default())
}

async fn violations(
    State(sh): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut v = sh.violations();
    if let Some(b) = q.get("business_id") {
        v.retain(|x| &x.business_id == b);
    }
    ok(serde_json::to_value(v).unwrap_or_default())
}

async fn list_faults(State(sh): State<Arc<Shared>>) -> Response {
    ok(serde_json::to_value(lock(&sh.faults).list()).unwrap_or_default())
}

async fn add_fault(State(sh): State<Arc<Shared>>, body: Bytes) -> Response {
    let plan: FaultPlan = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid fault plan: {e}")),
    };
    if plan.probability.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "probability must be between 0 and 1",
        );
    }
    let id = lock(&sh.faults).add(plan);
    admin_json(StatusCode::CREATED, json!({"id": id}))
}

async fn clear_faults(State(sh): State<Arc<Shared>>) -> Response {
    lock(&sh.faults).clear();
    ok(json!({"cleared": true}))
}

async fn remove_fault(State(sh): State<Arc<Shared>>, Path(id): Path<u64>) -> Response {
    if lock(&sh.faults).remove(id) {
        ok(json!({"removed": id}))
    } else {
        error(StatusCode::NOT_FOUND, format!("no fault plan {id}"))
    }
}

#[derive(Deserialize, Default)]
struct SeedBody {
    seed: u64,
}

async fn seed_faults(State(sh): State<Arc<Shared>>, body: Bytes) -> Response {
    let b: SeedBody = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    lock(&sh.faults).seed(b.seed);
    ok(json!({"seed": b.seed}))
}

#[derive(Deserialize, Default)]
struct RateLimitBody {
    per_minute: Option<u32>,
}

async fn set_rate_limit(State(sh): State<Arc<Shared>>, body: Bytes) -> Response {
    let b: RateLimitBody = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    lock(&sh.faults).rate_limit_per_minute = b.per_minute;
    lock(&sh.limiter).clear();
    ok(json!({"per_minute": b.per_minute}))
}

async fn get_rate_limit(State(sh): State<Arc<Shared>>) -> Response {
    ok(json!({"per_minute": lock(&sh.faults).rate_limit_per_minute}))
}

async fn reset(State(sh): State<Arc<Shared>>) -> Response {
    sh.reset();
    ok(json!({"reset": true}))
}
