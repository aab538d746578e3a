//! `GET /v1/status`: the merchant's sync status feed, pulled by the Magento module with its
//! ingest key (no inbound connection to the store).
//!
//! The consumer services publish status changes to the `LEDGER_STATUS` stream on
//! `ledger.status.<merchant>`. One durable consumer of the gateway ([`PROJECTOR`]) copies them
//! into the `status_feed` table and numbers each merchant's changes 1, 2, 3, …: that number is
//! the feed's cursor. So a merchant's cursor says nothing about other merchants' volume, and a
//! request is one indexed query — no JetStream consumer per request. Changes that were in the
//! stream before the table existed keep their stream sequence as their number, so cursors
//! stores already hold stay valid.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::AckKind;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use ledger_runtime::shutdown::Shutdown;
use ledger_runtime::status::{FeedItem, FeedPage, StatusUpdate, STATUS_STREAM, STATUS_SUBJECTS};
use serde_json::{json, Value};

use crate::routes::Routes;
use crate::AppState;

/// Durable consumer copying `LEDGER_STATUS` into the feed table.
pub const PROJECTOR: &str = "gateway-status-feed";

/// Starts copying status changes into the feed table until `shutdown`.
pub async fn serve_projection(app: Arc<AppState>, shutdown: Shutdown) -> anyhow::Result<()> {
    let stream = app
        .js
        .get_stream(STATUS_STREAM)
        .await
        .map_err(|e| anyhow::anyhow!("status stream: {e}"))?;
    // Changes up to here keep their stream sequence as their number (recorded once).
    let last_seq = stream
        .get_info()
        .await
        .map_err(|e| anyhow::anyhow!("status stream: {e}"))?
        .state
        .last_sequence;
    sqlx::query(
        "INSERT INTO status_feed_boundary (id, last_seq) VALUES (true, $1) ON CONFLICT DO NOTHING",
    )
    .bind(i64::try_from(last_seq).unwrap_or(i64::MAX))
    .execute(&app.db)
    .await?;
    let boundary: i64 = sqlx::query_scalar("SELECT last_seq FROM status_feed_boundary")
        .fetch_one(&app.db)
        .await?;
    let consumer = stream
        .get_or_create_consumer(
            PROJECTOR,
            pull::Config {
                durable_name: Some(PROJECTOR.into()),
                filter_subject: STATUS_SUBJECTS.into(),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                description: Some("The gateway's copy of the status feed, per merchant".into()),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("status feed consumer: {e}"))?;
    ledger_runtime::metrics::spawn_lag_poller(
        consumer.clone(),
        Duration::from_secs(15),
        shutdown.clone(),
    );
    tokio::spawn(async move {
        loop {
            let messages = tokio::select! {
                _ = shutdown.wait() => return,
                m = consumer.messages() => m,
            };
            let mut messages = match messages {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "status feed: cannot pull; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            loop {
                let message = tokio::select! {
                    _ = shutdown.wait() => return,
                    m = messages.next() => m,
                };
                let Some(message) = message else { break };
                let message = match message {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "status feed: pull failed");
                        break;
                    }
                };
                match project(&app, &message, boundary).await {
                    Ok(()) => {
                        if let Err(e) = message.ack().await {
                            tracing::warn!(error = %e, "status feed: ack failed");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "status feed: not stored; retrying");
                        let _ = message
                            .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                            .await;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
    });
    Ok(())
}

/// Stores one status change with the merchant's next number (once per stream sequence).
async fn project(
    app: &AppState,
    message: &async_nats::jetstream::Message,
    boundary: i64,
) -> anyhow::Result<()> {
    let seq = i64::try_from(
        message
            .info()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .stream_sequence,
    )?;
    let Some(merchant) = message.subject.as_str().strip_prefix("ledger.status.") else {
        return Ok(());
    };
    // A change that is not JSON is kept out of the feed (it could not be read anyway).
    let Ok(payload) = serde_json::from_slice::<Value>(&message.payload) else {
        return Ok(());
    };
    let floor = if seq <= boundary { seq } else { 1 };
    let mut tx = app.db.begin().await?;
    let position: Option<i64> = sqlx::query_scalar(
        "WITH pos AS (
             INSERT INTO status_positions (merchant_id, last) VALUES ($1, $4)
             ON CONFLICT (merchant_id) DO UPDATE SET last = GREATEST(status_positions.last + 1, $4)
             RETURNING last
         )
         INSERT INTO status_feed (merchant_id, position, stream_seq, payload)
         SELECT $1, last, $2, $3 FROM pos
         ON CONFLICT (stream_seq) DO NOTHING
         RETURNING position",
    )
    .bind(merchant)
    .bind(seq)
    .bind(&payload)
    .bind(floor)
    .fetch_optional(&mut *tx)
    .await?;
    // The document's latest state, for the portal's sync history (a redelivered change was
    // stored already and changes nothing).
    if let (Some(position), Ok(update)) = (position, serde_json::from_value(payload)) {
        crate::history::record(&mut tx, merchant, position, &update).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Up to `limit` of `merchant`'s changes after `cursor`, oldest first.
pub async fn read(
    app: &AppState,
    merchant: &str,
    cursor: u64,
    limit: usize,
) -> Result<FeedPage, sqlx::Error> {
    let after = i64::try_from(cursor).unwrap_or(i64::MAX);
    let rows: Vec<(i64, Value)> = sqlx::query_as(
        "SELECT position, payload FROM status_feed
         WHERE merchant_id = $1 AND position > $2 ORDER BY position LIMIT $3",
    )
    .bind(merchant)
    .bind(after)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1))
    .fetch_all(&app.db)
    .await?;
    let more = rows.len() > limit;
    let mut page = FeedPage {
        items: Vec::new(),
        next_cursor: cursor,
        more,
    };
    for (position, payload) in rows.into_iter().take(limit) {
        let position = u64::try_from(position).unwrap_or(0);
        page.next_cursor = position;
        // Items that cannot be read are passed over; the cursor still moves.
        if let Ok(update) = serde_json::from_value::<StatusUpdate>(payload) {
            page.items.push(FeedItem {
                cursor: position,
                update,
            });
        }
    }
    Ok(page)
}

/// Most changes one request returns.
pub const MAX_LIMIT: usize = 1000;

/// Routes of the status feed (bearer: the merchant's ingest key).
pub fn routes() -> Routes {
    Routes::new().get("/v1/status", feed)
}

/// Highest cursor accepted (the largest integer the Magento module stores).
pub const MAX_CURSOR: u64 = i64::MAX as u64;

/// A query parameter that was refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// The parameter.
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

/// `cursor` and `limit` of a feed request: absent means 0 and 100; anything else must be a
/// decimal number in range (`cursor` at most [`MAX_CURSOR`], `limit` 1 to [`MAX_LIMIT`]).
pub fn parse_params(query: &HashMap<String, String>) -> Result<(u64, usize), ParamError> {
    let number = |field: &'static str, max: u64| -> Result<Option<u64>, ParamError> {
        let Some(raw) = query.get(field) else {
            return Ok(None);
        };
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 20 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParamError {
                field,
                reason: format!("must be a whole number from 0 to {max}"),
            });
        }
        match raw.parse::<u64>() {
            Ok(n) if n <= max => Ok(Some(n)),
            _ => Err(ParamError {
                field,
                reason: format!("must be a whole number from 0 to {max}"),
            }),
        }
    };
    let cursor = number("cursor", MAX_CURSOR)?.unwrap_or(0);
    let limit = number("limit", u64::MAX)?
        .map(|n| n.clamp(1, MAX_LIMIT as u64) as usize)
        .unwrap_or(100);
    Ok((cursor, limit))
}

async fn feed(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(merchant) = crate::merchants::authenticate_ingest(&app, &headers).await else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "unauthorized", "message": "the merchant's ingest key is required"})),
        )
            .into_response();
    };
    let (cursor, limit) = match parse_params(&query) {
        Ok(p) => p,
        Err(e) => {
            return crate::json_error_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_parameter",
                format!("{}: {}", e.field, e.reason),
                json!({"issues": [{"field": e.field, "reason": e.reason}]}),
            )
        }
    };
    match read(&app, &merchant, cursor, limit).await {
        Ok(page) => Json(page).into_response(),
        Err(e) => {
            let id = crate::correlation_id();
            tracing::error!(error = %e, correlation_id = %id, "status feed unavailable");
            crate::json_error_with(
                StatusCode::SERVICE_UNAVAILABLE,
                "status_unavailable",
                "the status feed cannot be read right now; try again later",
                json!({"correlation_id": id}),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::query_of as q;

    #[test]
    fn cursors_out_of_range_are_refused_naming_the_parameter() {
        assert_eq!(parse_params(&q(&[])), Ok((0, 100)));
        assert_eq!(
            parse_params(&q(&[("cursor", "42"), ("limit", "5000")])),
            Ok((42, MAX_LIMIT))
        );
        for bad in [
            "-1",
            "18446744073709551615",
            "9223372036854775808",
            "1e3",
            "",
            "x",
        ] {
            assert_eq!(
                parse_params(&q(&[("cursor", bad)])).unwrap_err().field,
                "cursor",
                "{bad}"
            );
        }
        assert_eq!(
            parse_params(&q(&[("limit", "-5")])).unwrap_err().field,
            "limit"
        );
        assert_eq!(
            parse_params(&q(&[("cursor", "9223372036854775807")])),
            Ok((MAX_CURSOR, 100))
        );
    }

    use proptest::prelude::*;

    proptest! {
        // A bounded fuzz run over the status feed's query parsing.
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn feed_parameters_never_panic_and_refusals_name_the_parameter(
            cursor in proptest::option::of("-?[0-9]{0,25}|\\PC{0,30}"),
            limit in proptest::option::of("-?[0-9]{0,25}|\\PC{0,30}"),
        ) {
            let mut query = HashMap::new();
            if let Some(c) = &cursor {
                query.insert("cursor".to_string(), c.clone());
            }
            if let Some(l) = &limit {
                query.insert("limit".to_string(), l.clone());
            }
            match parse_params(&query) {
                Ok((c, l)) => {
                    prop_assert!(c <= MAX_CURSOR);
                    prop_assert!((1..=MAX_LIMIT).contains(&l));
                }
                Err(e) => {
                    prop_assert!(e.field == "cursor" || e.field == "limit");
                    prop_assert!(query.contains_key(e.field));
                    prop_assert!(!e.reason.is_empty());
                }
            }
        }
    }
}
