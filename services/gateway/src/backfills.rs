//! The portal's backfill page (decision record 0039): each backfill of the signed-in merchant
//! with its documents done of total, rate, time left, held and failed counts, and pause, resume
//! and cancel. The page refreshes itself every few seconds while a backfill runs. The figures
//! come from `ledger_rpc::backfill`, the same reading `ledgerctl backfill status` prints.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use ledger_rpc::backfill::BackfillReport;
use ledger_runtime::backfill::BackfillState;

use crate::routes::Routes;
use crate::{pages, AppState};

/// The backfill routes.
pub fn routes() -> Routes {
    Routes::new()
        .get("/portal/backfills", page)
        .post("/portal/backfills/{backfill}/{action}", control)
}

/// One backfill as the page shows it.
pub struct BackfillRow {
    /// The run's id.
    pub id: String,
    /// `2025-01-01 – 2025-03-31`.
    pub range: String,
    /// `invoice, creditmemo`.
    pub types: String,
    /// `running`, `paused`, `canceled`.
    pub state: &'static str,
    /// Documents handled to an end.
    pub done: u64,
    /// Documents the run recorded.
    pub total: u64,
    /// Done as a whole percentage.
    pub percent: u64,
    /// `12.5 a second`.
    pub rate: String,
    /// `about 40 s left`, `finished` or `waiting`.
    pub left: String,
    /// Held documents and payments.
    pub held: u64,
    /// Failed documents and payments.
    pub failed: u64,
    /// Skipped because the run was canceled.
    pub canceled: u64,
    /// Every document reached an end.
    pub finished: bool,
}

impl From<&BackfillReport> for BackfillRow {
    fn from(r: &BackfillReport) -> Self {
        BackfillRow {
            id: r.backfill_id.clone(),
            range: format!("{} – {}", r.from, r.to),
            types: r.types.join(", "),
            state: r.state.as_str(),
            done: r.done,
            total: r.total,
            percent: if r.total > 0 {
                100 * r.done / r.total
            } else {
                100
            },
            rate: format!("{:.1} a second", r.rate_per_sec),
            left: match (r.finished, r.eta_secs) {
                (true, _) => "finished".into(),
                (false, Some(s)) => format!("about {s} s left"),
                (false, None) => "waiting".into(),
            },
            held: r.held,
            failed: r.failed,
            canceled: r.canceled,
            finished: r.finished,
        }
    }
}

/// The backfill page.
#[derive(Template)]
#[template(path = "portal/backfills.html")]
pub struct Backfills {
    /// The merchant signed in.
    pub merchant_id: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// Its backfills, newest first.
    pub rows: Vec<BackfillRow>,
    /// Some backfill is still running: the page refreshes itself.
    pub running: bool,
}

async fn page(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let session = match crate::portal::page_session(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let reports = match ledger_rpc::backfill::reports(&app.js, &session.merchant).await {
        Ok(r) => r,
        Err(e) => return crate::portal::unavailable(e),
    };
    let rows: Vec<BackfillRow> = reports.iter().rev().map(BackfillRow::from).collect();
    let view = Backfills {
        running: rows
            .iter()
            .any(|r| !r.finished && r.state == BackfillState::Running.as_str()),
        merchant_id: session.merchant,
        csrf: session.csrf,
        rows,
    };
    pages::respond(StatusCode::OK, None, &view)
}

async fn control(
    State(app): State<Arc<AppState>>,
    Path((backfill, action)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = match crate::settings_pages::settings_form_session(&app, &headers, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let state = match action.as_str() {
        "pause" => BackfillState::Paused,
        "resume" => BackfillState::Running,
        "cancel" => BackfillState::Canceled,
        _ => return (StatusCode::NOT_FOUND, "no such action").into_response(),
    };
    match ledger_rpc::backfill::set_state(&app.js, &session.merchant, &backfill, state).await {
        Ok(()) => {
            tracing::info!(merchant = %session.merchant, %backfill, state = state.as_str(), "backfill changed from the portal");
            (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, "/portal/backfills")],
            )
                .into_response()
        }
        Err(e) if e.code() == "backfill.unknown" => {
            (StatusCode::NOT_FOUND, "no such backfill").into_response()
        }
        Err(e) => crate::portal::unavailable(e),
    }
}
