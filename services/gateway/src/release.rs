//! Sending held documents again from the portal.
//!
//! A document held back on purpose (a tax rate with no Sage tax rate, a payment with no bank
//! account) waits for the merchant to change a setting. "Send held documents again" re-decides
//! them through the services' own replay (the path `ledgerctl replay` takes): each service
//! replays the merchant's events with writes, skips what is already in Sage and posts what the
//! current settings now allow. The page then says what landed and what is still held.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use ledger_runtime::replay::{Command, Summary};

use crate::routes::Routes;
use crate::{pages, AppState};

/// The services whose replay re-decides held documents, in the order they are asked
/// (documents first: a payment waits for its invoice).
pub const SERVICES: [&str; 2] = ["documents", "payments"];

/// How long a service may stay silent during its replay before the page gives up on it.
const IDLE: Duration = Duration::from_secs(60);

/// The release route.
pub fn routes() -> Routes {
    Routes::new().post("/portal/held/release", release)
}

/// What one service's replay did, as the page shows it.
pub struct ServiceResult {
    /// The service.
    pub service: &'static str,
    /// Posted now.
    pub landed: u64,
    /// Still held back (with their reasons).
    pub held: Vec<(String, String)>,
    /// Failed again.
    pub failed: u64,
    /// Why the service's replay did not run (`None`: it ran).
    pub error: Option<String>,
}

impl ServiceResult {
    fn from_summary(service: &'static str, summary: &Summary) -> Self {
        let held = summary
            .events
            .iter()
            .filter(|e| e.outcome == "skipped")
            .map(|e| {
                (
                    e.event_id.clone().unwrap_or_else(|| e.subject.clone()),
                    e.code.clone().unwrap_or_default(),
                )
            })
            .collect();
        Self {
            service,
            landed: summary.applied,
            held,
            failed: summary.failed,
            error: None,
        }
    }
}

/// The page after "Send held documents again".
#[derive(Template)]
#[template(path = "portal/released.html")]
pub struct Released {
    /// Each service's result.
    pub results: Vec<ServiceResult>,
    /// Documents posted now, over all services.
    pub landed: u64,
    /// Documents still held back, over all services.
    pub still_held: usize,
}

impl Released {
    /// The page of `results`.
    pub fn new(results: Vec<ServiceResult>) -> Self {
        Self {
            landed: results.iter().map(|r| r.landed).sum(),
            still_held: results.iter().map(|r| r.held.len()).sum(),
            results,
        }
    }
}

async fn release(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = match crate::settings_pages::settings_form_session(&app, &headers, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let command = Command {
        merchant: session.merchant.clone(),
        since: None,
        until: None,
        dry_run: false,
        per_event_lookups: false,
        limit: None,
    };
    let mut results = Vec::new();
    for service in SERVICES {
        let result =
            ledger_runtime::replay::request(&app.nats, service, &command, IDLE, |_| {}).await;
        results.push(match result {
            Ok(summary) => ServiceResult::from_summary(service, &summary),
            Err(e) => {
                tracing::warn!(merchant = %session.merchant, %service, error = %e, "held documents not sent again");
                ServiceResult {
                    service,
                    landed: 0,
                    held: Vec::new(),
                    failed: 0,
                    error: Some(e),
                }
            }
        });
    }
    let page = Released::new(results);
    tracing::info!(merchant = %session.merchant, landed = page.landed, still_held = page.still_held, "held documents sent again from the portal");
    pages::respond(StatusCode::OK, None, &page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_runtime::replay::EventResult;

    fn event(outcome: &str, code: Option<&str>) -> EventResult {
        EventResult {
            stream_sequence: 7,
            subject: "magento.m1.invoice.created".into(),
            event_id: Some("ev-7".into()),
            outcome: outcome.into(),
            code: code.map(str::to_string),
            detail: Vec::new(),
        }
    }

    #[test]
    fn page_counts_landed_and_still_held_with_reasons() {
        let summary = Summary {
            applied: 2,
            skipped: 1,
            events: vec![
                event("applied", None),
                event("applied", None),
                event("skipped", Some("unmapped_tax_rate")),
            ],
            ..Summary::default()
        };
        let page = Released::new(vec![
            ServiceResult::from_summary("documents", &summary),
            ServiceResult {
                service: "payments",
                landed: 0,
                held: Vec::new(),
                failed: 0,
                error: Some("payments: no answer for 60s".into()),
            },
        ]);
        assert_eq!((page.landed, page.still_held), (2, 1));
        let html = page.render().expect("renders");
        assert!(html.contains(r#"id="released-count">2<"#), "{html}");
        assert!(html.contains("unmapped_tax_rate"), "{html}");
        assert!(html.contains("payments: no answer for 60s"), "{html}");
    }
}
