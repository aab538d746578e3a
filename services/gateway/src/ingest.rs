//! `POST /v1/events`: the HTTPS way into the event log.
//!
//! The Magento module normally publishes straight to JetStream; this endpoint is its fallback
//! for hosts that block outbound NATS ports, and the way tools and tests inject events. Both
//! paths end in the same stream with the same `Nats-Msg-Id`, so a document sent both ways is
//! stored once.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::Serialize;
use serde_json::json;

use crate::routes::Routes;
use crate::AppState;

/// Routes of the ingest API.
pub fn routes() -> Routes {
    Routes::new().post("/v1/events", ingest)
}

/// One reason an event was refused, naming the field.
#[derive(Debug, Clone, Serialize)]
pub struct Issue {
    /// JSON pointer of the offending field (`""` for the whole document).
    pub field: String,
    /// Why it was refused.
    pub reason: String,
}

fn error(status: StatusCode, code: &str, message: &str, issues: &[Issue]) -> Response {
    (
        status,
        Json(json!({ "error": code, "message": message, "issues": issues })),
    )
        .into_response()
}

/// Validates `body` against the event contract; `Err` carries every violation.
pub fn check_event(body: &[u8]) -> Result<ledger_events::Envelope, Vec<Issue>> {
    ledger_events::parse(body).map_err(|e| {
        let issues: Vec<Issue> = e
            .issues()
            .iter()
            .map(|i| Issue {
                field: i.path.clone(),
                reason: i.reason.clone(),
            })
            .collect();
        if issues.is_empty() {
            vec![Issue {
                field: String::new(),
                reason: e.to_string(),
            }]
        } else {
            issues
        }
    })
}

// The span continues the store's trace when the request carries a W3C `traceparent` (else it
// starts one); its context travels on in the NATS headers.
#[tracing::instrument(name = "ingest", skip_all)]
async fn ingest(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    ledger_runtime::telemetry::continue_http_trace(&tracing::Span::current(), &headers);
    let metrics = ledger_runtime::metrics::metrics();
    let Some(merchant) = crate::merchants::authenticate_ingest(&app, &headers).await else {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or unknown ingest key (Authorization: Bearer <key>)",
            &[],
        );
    };
    let envelope = match check_event(&body) {
        Ok(envelope) => envelope,
        Err(issues) => {
            metrics.ingest.with_label_values(&["quarantined"]).inc();
            if let Err(e) = quarantine(&app, &merchant, &body, &issues).await {
                // Not stored anywhere: tell the sender to try again rather than lose it.
                tracing::error!(error = %e, "quarantine unavailable");
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "quarantine_unavailable",
                    "the event is invalid and could not be quarantined; retry later",
                    &issues,
                );
            }
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_event",
                "the event does not match the Ledger event contract; it was quarantined",
                &issues,
            );
        }
    };
    if envelope.merchant_id != merchant {
        return error(
            StatusCode::FORBIDDEN,
            "merchant_mismatch",
            "the ingest key belongs to another merchant",
            &[Issue {
                field: "/merchant_id".into(),
                reason: format!("this key may only send events of merchant {merchant}"),
            }],
        );
    }
    match publish(&app, &envelope, body).await {
        Ok(ack) => {
            let status = if ack.duplicate {
                "duplicate"
            } else {
                "accepted"
            };
            metrics.ingest.with_label_values(&[status]).inc();
            (
                StatusCode::ACCEPTED,
                Json(json!({
                    "status": status,
                    "event_id": envelope.event_id,
                    "stream_sequence": ack.sequence,
                })),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "publish failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "log_unavailable",
                "the event log did not confirm the event; retry with the same event_id",
                &[],
            )
        }
    }
}

/// Appends a validated event to the stream, exactly as received, de-duplicated on its id.
pub async fn publish(
    app: &AppState,
    envelope: &ledger_events::Envelope,
    body: Bytes,
) -> anyhow::Result<async_nats::jetstream::publish::PublishAck> {
    // A backfill's event goes to the history subject (decision record 0038).
    let subject = envelope.subject();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", envelope.event_id.to_string().as_str());
    headers.insert(
        "Ledger-Schema-Version",
        envelope.schema_version.to_string().as_str(),
    );
    ledger_runtime::telemetry::inject_context(&mut headers);
    let ack = app
        .js
        .publish_with_headers(subject, headers, body)
        .await?
        .await?;
    Ok(ack)
}

/// Keeps a refused event, with the reasons, in the quarantine stream.
async fn quarantine(
    app: &AppState,
    merchant: &str,
    body: &[u8],
    issues: &[Issue],
) -> anyhow::Result<()> {
    let record = json!({
        "merchant_id": merchant,
        "received_at": chrono::Utc::now(),
        "issues": issues,
        "raw": String::from_utf8_lossy(body),
    });
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Ledger-Error", "invalid_event");
    app.js
        .publish_with_headers(
            ledger_events::quarantine_subject(merchant),
            headers,
            serde_json::to_vec(&record)?.into(),
        )
        .await?
        .await?;
    Ok(())
}
