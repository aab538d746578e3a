//! The audit trail over HTTP (`/v1/admin/audit`, `/v1/admin/audit/verify`).
//!
//! The consumer services own their audit tables; the gateway asks each of them over NATS
//! (`ledger.rpc.<service>.audit`, see `ledger_runtime::audit`) and merges the answers. The
//! gateway keeps its own trail too (service `gateway`: settings changed in the portal, who
//! changed what), listed beside theirs.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ledger_runtime::audit::{Answer, AuditQuery, Command};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::merchants::require_admin;
use crate::routes::Routes;
use crate::AppState;

/// The gateway's own trail (settings changed in the portal), in its schema.
pub const GATEWAY: &str = "gateway";

/// Services holding audit trails.
pub const AUDITED_SERVICES: [&str; 3] = ["contacts", "documents", "payments"];

/// Routes of the audit API (bearer `LEDGER_ADMIN_TOKEN`).
pub fn routes() -> Routes {
    Routes::new()
        .get("/v1/admin/audit", show)
        .get("/v1/admin/audit/verify", verify)
}

#[derive(Debug, Deserialize)]
struct ShowParams {
    service: Option<String>,
    merchant: Option<String>,
    event_id: Option<String>,
    document: Option<String>,
    since: Option<chrono::DateTime<chrono::Utc>>,
    until: Option<chrono::DateTime<chrono::Utc>>,
    limit: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct VerifyParams {
    merchant: String,
    service: Option<String>,
}

fn services(service: Option<&str>) -> Result<Vec<&'static str>, Response> {
    match service {
        None => Ok(AUDITED_SERVICES.to_vec()),
        Some(s) => AUDITED_SERVICES
            .iter()
            .find(|known| **known == s)
            .map(|known| vec![*known])
            .ok_or_else(|| {
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Json(json!({"error": "unknown_service", "message": format!("service must be one of {AUDITED_SERVICES:?}")})),
                )
                    .into_response()
            }),
    }
}

async fn ask(app: &AppState, service: &str, command: &Command) -> Result<Answer, Response> {
    ledger_runtime::bus::request_json(
        &app.nats,
        &ledger_runtime::audit::subject(service),
        command,
        Duration::from_secs(30),
    )
    .await
    .map_err(|e| {
        let id = crate::correlation_id();
        tracing::error!(%service, error = %e, correlation_id = %id, "audit: service did not answer");
        crate::json_error_with(
            StatusCode::BAD_GATEWAY,
            "service_unavailable",
            format!("the {service} service did not answer; try again later"),
            json!({"correlation_id": id}),
        )
    })
}

fn unexpected(service: &str, answer: Answer) -> Response {
    let message = match answer {
        Answer::Error { message } => message,
        other => format!("unexpected answer {other:?}"),
    };
    let id = crate::correlation_id();
    tracing::error!(%service, error = %message, correlation_id = %id, "audit: service failed");
    crate::json_error_with(
        StatusCode::BAD_GATEWAY,
        "service_error",
        format!("the {service} service could not answer; its log has the cause"),
        json!({"correlation_id": id}),
    )
}

async fn show(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<ShowParams>,
) -> Response {
    if let Err(r) = require_admin(&app, &headers) {
        return r;
    }
    let own = params.service.as_deref() == Some(GATEWAY);
    let services = match services(params.service.as_deref()) {
        Ok(s) => s,
        Err(_) if own => Vec::new(),
        Err(r) => return r,
    };
    if params.merchant.is_none() && params.event_id.is_none() && params.document.is_none() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": "filter_required", "message": "give merchant, event_id or document"})),
        )
            .into_response();
    }
    let command = Command::Show(AuditQuery {
        merchant: params.merchant,
        event_id: params.event_id,
        document: params.document,
        since: params.since,
        until: params.until,
        limit: params.limit,
    });
    let mut records: Vec<Value> = Vec::new();
    for service in services {
        match ask(&app, service, &command).await {
            Ok(Answer::Records { records: found }) => {
                for r in found {
                    let mut v = serde_json::to_value(&r).unwrap_or_default();
                    v["service"] = json!(service);
                    records.push(v);
                }
            }
            Ok(other) => return unexpected(service, other),
            Err(r) => return r,
        }
    }
    if params.service.is_none() || own {
        if let Command::Show(query) = &command {
            let log = ledger_runtime::audit::AuditLog::new(GATEWAY, app.db.clone());
            match log.query(query).await {
                Ok(found) => records.extend(found.iter().map(|r| {
                    let mut v = serde_json::to_value(r).unwrap_or_default();
                    v["service"] = json!(GATEWAY);
                    v
                })),
                Err(e) => return crate::unavailable(e),
            }
        }
    }
    Json(json!({ "records": records })).into_response()
}

async fn verify(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<VerifyParams>,
) -> Response {
    if let Err(r) = require_admin(&app, &headers) {
        return r;
    }
    let own = params.service.as_deref() == Some(GATEWAY);
    let services = match services(params.service.as_deref()) {
        Ok(s) => s,
        Err(_) if own => Vec::new(),
        Err(r) => return r,
    };
    let command = Command::Verify {
        merchant: params.merchant.clone(),
    };
    let mut reports = Vec::new();
    for service in services {
        match ask(&app, service, &command).await {
            Ok(Answer::Verified(report)) => reports.push(report),
            Ok(other) => return unexpected(service, other),
            Err(r) => return r,
        }
    }
    if params.service.is_none() || own {
        let log = ledger_runtime::audit::AuditLog::new(GATEWAY, app.db.clone());
        match log.verify(&params.merchant).await {
            Ok(report) => reports.push(report),
            Err(e) => return crate::unavailable(e),
        }
    }
    let ok = reports.iter().all(|r| r.ok);
    Json(json!({ "merchant_id": params.merchant, "ok": ok, "chains": reports })).into_response()
}
