//! Credit and re-issue from the portal (decision 0026).
//!
//! A document in Sage that the settings would now post differently is offered "Credit and
//! re-issue" on the preview. Pressing it shows the confirm step: what will happen (a credit
//! note for the full Sage invoice, then a new invoice under the saved settings with a new
//! reference), asked of the documents service without writing anything. Confirming asks the
//! documents service to do it; it does it once per document, so a second press, a replayed form
//! or a second replica finds it done and shows the same two Sage references. Both forms carry
//! the session's CSRF token and act for the signed-in merchant only.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use ledger_rpc::{Reissue, ReissueRequest};

use crate::routes::Routes;
use crate::{pages, AppState};

/// How long the documents service may take to say what a re-issue would do.
const PLAN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long it may take to post the credit note, its allocation and the new invoice.
const REISSUE_TIMEOUT: Duration = Duration::from_secs(90);

/// The credit-and-re-issue routes: the confirm step and the confirmation.
pub fn routes() -> Routes {
    Routes::new()
        .post("/portal/reissue", confirm_step)
        .post("/portal/reissue/confirm", confirmed)
}

/// The confirm step, or the re-issue done, or why it is refused.
#[derive(Template)]
#[template(path = "portal/reissue.html")]
pub struct ReissuePage {
    /// What will happen (not done) or what happened (done).
    pub reissue: Option<Reissue>,
    /// Why it cannot be done, or why the documents service did not answer.
    pub error: Option<String>,
    /// The session's CSRF token, for the confirm form.
    pub csrf: String,
    /// The signed-in merchant, for the confirm form.
    pub merchant_id: String,
}

impl ReissuePage {
    /// Sage's number of a document when it has one, else its reference.
    pub fn name(doc: &ledger_rpc::ReissueDocument) -> String {
        match &doc.sage_number {
            Some(n) if !n.is_empty() => format!("{n} ({})", doc.reference),
            _ => doc.reference.clone(),
        }
    }
}

async fn confirm_step(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    ask(&app, &headers, &form, false).await
}

async fn confirmed(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    ask(&app, &headers, &form, true).await
}

async fn ask(
    app: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    confirm: bool,
) -> Response {
    let session = match crate::settings_pages::settings_form_session(app, headers, form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let page = |reissue, error| ReissuePage {
        reissue,
        error,
        csrf: session.csrf.clone(),
        merchant_id: session.merchant.clone(),
    };
    let Some(document_key) = form
        .get("document_key")
        .map(|k| k.trim())
        .filter(|k| !k.is_empty())
    else {
        let error = Some("document_key: missing; choose a document on the preview".to_string());
        return pages::respond(StatusCode::UNPROCESSABLE_ENTITY, None, &page(None, error));
    };
    let request = ReissueRequest {
        merchant: session.merchant.clone(),
        document_key: document_key.to_string(),
        confirm,
    };
    let timeout = if confirm {
        REISSUE_TIMEOUT
    } else {
        PLAN_TIMEOUT
    };
    let asked: Result<Reissue, _> =
        ledger_rpc::ask(&app.nats, ledger_rpc::REISSUE_SUBJECT, &request, timeout).await;
    match asked {
        Ok(reissue) => {
            if confirm {
                tracing::info!(merchant = %session.merchant, document = document_key, done = reissue.done, "credit and re-issue confirmed from the portal");
            }
            pages::respond(StatusCode::OK, None, &page(Some(reissue), None))
        }
        Err(e) => {
            let status = if e.code() == ledger_rpc::REISSUE_REFUSED {
                StatusCode::CONFLICT
            } else if e.is_retryable() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            tracing::warn!(merchant = %session.merchant, document = document_key, error = %e, "credit and re-issue not done");
            pages::respond(status, None, &page(None, Some(e.to_string())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_rpc::ReissueDocument;
    use rust_decimal::Decimal;

    fn reissue(done: bool) -> Reissue {
        let doc =
            |id: Option<&str>, number: Option<&str>, reference: &str, total: i64| ReissueDocument {
                sage_id: id.map(str::to_string),
                sage_number: number.map(str::to_string),
                reference: reference.to_string(),
                total: Decimal::new(total, 2),
            };
        Reissue {
            document_key: "invoice:1:000100002".into(),
            generation: 1,
            done,
            currency: "GBP".into(),
            original: doc(Some("s1"), Some("SI-1"), "000100002", 7344),
            credit_note: doc(
                done.then_some("s2"),
                done.then_some("SCN-1"),
                "CR1/000100002",
                7344,
            ),
            reissued: doc(
                done.then_some("s3"),
                done.then_some("SI-2"),
                "000100002-R1",
                6120,
            ),
            lines: vec!["GB_ZERO · SALES".into()],
        }
    }

    fn page(r: Reissue) -> String {
        ReissuePage {
            reissue: Some(r),
            error: None,
            csrf: "c0ffee".into(),
            merchant_id: "m1".into(),
        }
        .render()
        .expect("renders")
    }

    #[test]
    fn the_confirm_step_says_what_will_happen_and_asks() {
        let html = page(reissue(false));
        assert!(html.contains(r#"id="reissue-confirm""#), "{html}");
        assert!(html.contains(r#"name="csrf" value="c0ffee""#), "{html}");
        assert!(
            html.contains("CR1/000100002") && html.contains("73.44"),
            "{html}"
        );
        assert!(
            html.contains("000100002-R1") && html.contains("61.20"),
            "{html}"
        );
        assert!(html.contains("GB_ZERO · SALES"), "{html}");
        assert!(!html.contains(r#"id="reissue-done""#), "{html}");
    }

    #[test]
    fn once_done_it_shows_both_sage_references_and_no_button() {
        let html = page(reissue(true));
        assert!(html.contains(r#"id="reissue-done""#), "{html}");
        assert!(html.contains("SCN-1 (CR1/000100002)"), "{html}");
        assert!(html.contains("SI-2 (000100002-R1)"), "{html}");
        assert!(!html.contains(r#"id="reissue-confirm""#), "{html}");
        assert!(!html.contains("<button"), "{html}");
    }
}
