//! `GET /v1/status`: the merchant's sync status feed, pulled by the Magento module with its
//! ingest key (no inbound connection to the store).
//!
//! The consumer services publish status changes to the `LEDGER_STATUS` stream on
//! `ledger.status.<merchant>`; each request reads the merchant's changes after `cursor` with a
//! short-lived consumer (`ledger_runtime::status::read_feed`). The cursor is the stream
//! sequence of the last change read.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;

/// Most changes one request returns.
pub const MAX_LIMIT: usize = 1000;

/// Routes of the status feed (bearer: the merchant's ingest key).
pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/v1/status", get(feed))
}

#[derive(Debug, Deserialize)]
struct FeedParams {
    #[serde(default)]
    cursor: u64,
    #[serde(default)]
    limit: Option<usize>,
}

async fn feed(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<FeedParams>,
) -> Response {
    let Some(merchant) = crate::merchants::authenticate_ingest(&app, &headers).await else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "unauthorized", "message": "the merchant's ingest key is required"})),
        )
            .into_response();
    };
    let limit = params.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    match ledger_runtime::status::read_feed(&app.js, &merchant, params.cursor, limit).await {
        Ok(page) => Json(page).into_response(),
        Err(message) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "status_unavailable", "message": message})),
        )
            .into_response(),
    }
}
