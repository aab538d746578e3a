//! Previewing a settings change on the merchant's recent invoices and credit memos.
//!
//! "Preview" on the settings page maps the merchant's newest invoices and credit memos (their
//! snapshots in the event log) twice with the pure mapping: under the saved settings and under the edited,
//! unsaved ones, and shows both side by side: each line's Sage tax rate and ledger account,
//! the VAT and the total, or the reason the document is held. A document already in Sage that
//! the change would post differently is flagged: saving never re-posts it; correcting it
//! (a credit note and a new invoice) is the accountant's decision, offered per document as
//! "Credit and re-issue" ([`crate::reissue`]) until it has been done once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use ledger_events::Payload;
use ledger_mapping::{DocumentPlan, MappingError, MerchantSettings};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::routes::Routes;
use crate::settings_pages::{effective, form_patch, overlaid, recent_events};
use crate::{pages, AppState};

/// How many of the merchant's newest invoices the preview maps, and how many credit memos.
pub const PREVIEW_DOCUMENTS: usize = 20;
/// How far back in the log (events of every merchant) the preview looks for them.
const PREVIEW_WINDOW: u64 = 50_000;
/// The contact id the preview maps with (the mapping needs one; the preview posts nothing).
const PREVIEW_CONTACT: &str = "preview";
/// How long the documents service may take to say whether a document is in Sage.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// The preview route.
pub fn routes() -> Routes {
    Routes::new().post("/portal/settings/preview", preview)
}

/// What the mapping makes of a document under one set of settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Each line as `tax rate · ledger account` (empty when held).
    pub lines: Vec<String>,
    /// The VAT of the lines.
    pub vat: String,
    /// The total Sage must come to.
    pub total: String,
    /// Why it is held (`None`: it would be posted).
    pub held: Option<String>,
}

impl Outcome {
    /// The outcome of one mapping.
    pub fn of(mapped: &Result<DocumentPlan, MappingError>) -> Self {
        match mapped {
            Ok(plan) => {
                let lines = plan.body[plan_lines_key(plan)]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let vat: Decimal = lines.iter().map(|l| decimal(&l["tax_amount"])).sum();
                Outcome {
                    lines: ledger_mapping::line_labels(plan),
                    vat: vat.round_dp(2).to_string(),
                    total: ledger_mapping::round2(plan.expected_total).to_string(),
                    held: None,
                }
            }
            Err(e) => Outcome {
                lines: Vec::new(),
                vat: String::new(),
                total: String::new(),
                held: Some(e.to_string()),
            },
        }
    }
}

fn plan_lines_key(plan: &DocumentPlan) -> &'static str {
    if plan.resource == "sales_credit_notes" {
        "credit_note_lines"
    } else {
        "invoice_lines"
    }
}

fn decimal(v: &Value) -> Decimal {
    match v {
        Value::String(s) => s.parse().unwrap_or_default(),
        Value::Number(n) => n.to_string().parse().unwrap_or_default(),
        _ => Decimal::ZERO,
    }
}

/// One document of the preview.
pub struct PreviewRow {
    /// Its Magento document key.
    pub document_key: String,
    /// Its Magento number, with what it is (`invoice 000000012`, `credit memo 000000003`).
    pub number: String,
    /// `in Sage`, `held` or `not in Sage` (as the documents service says; `unknown` when it
    /// did not answer).
    pub state: &'static str,
    /// Under the saved settings.
    pub now: Outcome,
    /// Under the edited settings.
    pub edited: Outcome,
    /// Whether the edit changes what is (or would be) posted.
    pub differs: bool,
    /// The document as the documents service has it in Sage (`None` unless in Sage).
    pub sage: Option<ledger_rpc::DocumentRef>,
}

impl PreviewRow {
    /// Whether the document is in Sage and the edit would post it differently: saving does
    /// not change it in Sage; a credit note and a new invoice would.
    pub fn needs_correction(&self) -> bool {
        self.differs && self.state == "in Sage" && self.reissued().is_none()
    }

    /// The credit and re-issue of this document, once done (it is offered only once).
    pub fn reissued(&self) -> Option<&ledger_rpc::Reissue> {
        self.sage
            .as_ref()
            .and_then(|d| d.reissue.as_ref())
            .filter(|r| r.done)
    }

    /// Whether it is an invoice (only invoices are credited and re-issued; a credit note
    /// posted differently is corrected by hand in Sage).
    pub fn is_invoice(&self) -> bool {
        self.document_key.starts_with("invoice:")
    }

    /// Whether the *saved* settings would post the document differently from how it is in
    /// Sage (its recorded lines or its total), so "Credit and re-issue" is offered; never
    /// once it has been done, never for a credit note, and never when the saved settings
    /// would hold it.
    pub fn offers_reissue(&self) -> bool {
        if !self.is_invoice() {
            return false;
        }
        let Some(sage) = &self.sage else {
            return false;
        };
        let Some(posted) = &sage.lines else {
            return false;
        };
        self.reissued().is_none()
            && self.now.held.is_none()
            && (posted != &self.now.lines
                || ledger_mapping::round2(sage.total).to_string() != self.now.total)
    }

    /// Now and with the edits, in the page's column order.
    pub fn outcomes(&self) -> [&Outcome; 2] {
        [&self.now, &self.edited]
    }
}

/// The preview page.
#[derive(Template)]
#[template(path = "portal/preview.html")]
pub struct PreviewPage {
    /// The documents, newest first.
    pub rows: Vec<PreviewRow>,
    /// Documents the edit changes.
    pub differing: usize,
    /// Documents in Sage the edit would post differently.
    pub to_correct: usize,
    /// Why the log could not be read, if it could not.
    pub error: Option<String>,
    /// The session's CSRF token, for the "Credit and re-issue" forms.
    pub csrf: String,
    /// The signed-in merchant, for those forms.
    pub merchant_id: String,
}

impl PreviewPage {
    /// The page of `rows` for `session`.
    pub(crate) fn new(
        rows: Vec<PreviewRow>,
        error: Option<String>,
        session: &crate::portal::Session,
    ) -> Self {
        Self {
            differing: rows.iter().filter(|r| r.differs).count(),
            to_correct: rows
                .iter()
                .filter(|r| r.needs_correction() || r.offers_reissue())
                .count(),
            rows,
            error,
            csrf: session.csrf.clone(),
            merchant_id: session.merchant.clone(),
        }
    }
}

/// Maps `bodies` (`invoice.created` and `creditmemo.created` events, oldest first) under
/// `saved` and `edited`, newest first: up to [`PREVIEW_DOCUMENTS`] invoices and as many
/// credit memos. A credit memo is mapped without its invoice (which only names it in the
/// reference and notes). Events that do not parse are left out.
pub fn compare(
    bodies: &[bytes::Bytes],
    saved: &MerchantSettings,
    edited: &MerchantSettings,
) -> Vec<(String, String, Outcome, Outcome)> {
    let (mut invoices, mut credit_memos) = (0, 0);
    bodies
        .iter()
        .rev()
        .filter_map(|body| {
            let mapped = |settings: &MerchantSettings| -> Option<(String, String, Outcome)> {
                match &ledger_events::parse(body).ok()?.payload {
                    Payload::InvoiceCreated(s) => Some((
                        s.document_key(),
                        format!("invoice {}", s.invoice.increment_id),
                        Outcome::of(&ledger_mapping::map_sales_invoice(
                            s,
                            settings,
                            PREVIEW_CONTACT,
                        )),
                    )),
                    Payload::CreditMemoCreated(s) => Some((
                        s.document_key(),
                        format!("credit memo {}", s.creditmemo.increment_id),
                        Outcome::of(&ledger_mapping::map_sales_credit_note(
                            s,
                            settings,
                            PREVIEW_CONTACT,
                            None,
                        )),
                    )),
                    _ => None,
                }
            };
            let (key, number, now) = mapped(saved)?;
            let count = if key.starts_with("invoice:") {
                &mut invoices
            } else {
                &mut credit_memos
            };
            *count += 1;
            if *count > PREVIEW_DOCUMENTS {
                return None;
            }
            let (_, _, edited) = mapped(edited)?;
            Some((key, number, now, edited))
        })
        .collect()
}

/// Whether the documents service has the document in Sage (with its credit and re-issue, if
/// one was done), holds it, or has not posted it.
async fn state_of(
    app: &AppState,
    merchant: &str,
    key: &str,
) -> (&'static str, Option<ledger_rpc::DocumentRef>) {
    let asked: Result<ledger_rpc::DocumentRef, _> = ledger_rpc::ask(
        &app.nats,
        ledger_rpc::DOCUMENT_LOOKUP_SUBJECT,
        &ledger_rpc::DocumentLookupRequest {
            merchant: merchant.to_string(),
            document_key: key.to_string(),
        },
        LOOKUP_TIMEOUT,
    )
    .await;
    match asked {
        Ok(found) => ("in Sage", Some(found)),
        Err(e) if e.code() == ledger_rpc::DOCUMENT_HELD => ("held", None),
        Err(e) if e.is_retryable() => ("unknown", None),
        Err(_) => ("not in Sage", None),
    }
}

async fn preview(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = match crate::settings_pages::settings_form_session(&app, &headers, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (stored, patch) = match form_patch(&app, &session, &form).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let saved_json = effective(&stored);
    let edited_json = overlaid(&saved_json, &patch);
    let (saved, edited) = match (
        serde_json::from_value::<MerchantSettings>(saved_json),
        serde_json::from_value::<MerchantSettings>(edited_json),
    ) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => {
            let page = PreviewPage::new(Vec::new(), Some(format!("settings: {e}")), &session);
            return pages::respond(StatusCode::UNPROCESSABLE_ENTITY, None, &page);
        }
    };
    let kinds = [
        ledger_events::EventType::InvoiceCreated,
        ledger_events::EventType::CreditMemoCreated,
    ];
    let bodies = match recent_events(&app.js, &session.merchant, &kinds, PREVIEW_WINDOW).await {
        Ok(b) => b,
        Err(e) => {
            let page = PreviewPage::new(Vec::new(), Some(format!("event log: {e}")), &session);
            return pages::respond(StatusCode::SERVICE_UNAVAILABLE, None, &page);
        }
    };
    let mut rows = Vec::new();
    for (document_key, number, now, edited) in compare(&bodies, &saved, &edited) {
        let (state, sage) = state_of(&app, &session.merchant, &document_key).await;
        rows.push(PreviewRow {
            state,
            sage,
            differs: now != edited,
            document_key,
            number,
            now,
            edited,
        });
    }
    pages::respond(
        StatusCode::OK,
        None,
        &PreviewPage::new(rows, None, &session),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_mapping::TaxRateEntry;

    const INVOICE: &str =
        include_str!("../../../schemas/examples/invoice-created-uk-b2c-vat20.json");
    const CREDIT_MEMO: &str =
        include_str!("../../../schemas/examples/creditmemo-created-adjustment-and-shipping.json");

    fn settings(rates: &[(i64, &str)]) -> MerchantSettings {
        MerchantSettings {
            tax_rates: rates
                .iter()
                .map(|(p, id)| TaxRateEntry::percent(Decimal::from(*p), id))
                .collect(),
            sales_ledger_account_id: Some("SALES".into()),
            shipping_ledger_account_id: Some("CARRIAGE".into()),
            ..MerchantSettings::default()
        }
    }

    #[test]
    fn an_unmapped_rate_is_held_now_and_mapped_under_the_edit() {
        let bodies = [bytes::Bytes::from_static(INVOICE.as_bytes())];
        let compared = compare(
            &bodies,
            &settings(&[(0, "GB_ZERO")]),
            &settings(&[(20, "GB_STANDARD")]),
        );
        assert_eq!(compared.len(), 1);
        let (key, number, now, edited) = &compared[0];
        assert!(
            key.starts_with("invoice:")
                && number.starts_with("invoice ")
                && key.ends_with(number.trim_start_matches("invoice ")),
            "{key}"
        );
        assert!(
            now.held
                .as_deref()
                .unwrap_or_default()
                .contains("unmapped_tax_rate"),
            "{now:?}"
        );
        assert!(now.lines.is_empty());
        assert_eq!(edited.held, None, "{edited:?}");
        assert!(!edited.lines.is_empty());
        assert!(
            edited.lines.iter().all(|l| l.starts_with("GB_STANDARD · ")),
            "{edited:?}"
        );
        // Magento's own figures: VAT 12.24, grand total 73.44.
        assert_eq!(
            (edited.vat.as_str(), edited.total.as_str()),
            ("12.24", "73.44")
        );
    }

    #[test]
    fn credit_memos_are_previewed_too_and_never_offered_a_reissue() {
        let bodies = [
            bytes::Bytes::from_static(INVOICE.as_bytes()),
            bytes::Bytes::from_static(CREDIT_MEMO.as_bytes()),
        ];
        // Its adjustment refund needs a ledger account.
        let with_adjustments = |rates: &[(i64, &str)]| MerchantSettings {
            adjustment_ledger_account_id: Some("ADJUST".into()),
            ..settings(rates)
        };
        let compared = compare(
            &bodies,
            &with_adjustments(&[(0, "GB_ZERO")]),
            &with_adjustments(&[(20, "GB_STANDARD"), (0, "GB_ZERO")]),
        );
        // Newest first: the credit memo, then the invoice.
        assert_eq!(compared.len(), 2);
        let (key, number, now, edited) = &compared[0];
        assert!(key.starts_with("creditmemo:"), "{key}");
        assert_eq!(number, "credit memo 000000301");
        assert!(
            now.held
                .as_deref()
                .unwrap_or_default()
                .contains("unmapped_tax_rate"),
            "{now:?}"
        );
        assert_eq!(edited.held, None, "{edited:?}");
        assert!(
            edited.lines.iter().all(|l| l.starts_with("GB_STANDARD · ")),
            "{edited:?}"
        );
        // Grand total 24.44 as Magento has it; VAT is Magento's 3.24 on the lines plus the VAT
        // inside the 5.00 adjustment refund at 20 % (5.00 / 1.2 = 4.17 net, 0.83 VAT): 4.07.
        assert_eq!(
            (edited.vat.as_str(), edited.total.as_str()),
            ("4.07", "24.44")
        );
        let row = PreviewRow {
            document_key: key.clone(),
            number: number.clone(),
            state: "in Sage",
            differs: now != edited,
            now: now.clone(),
            edited: edited.clone(),
            sage: Some(ledger_rpc::DocumentRef {
                resource: "sales_credit_notes".into(),
                sage_id: "n1".into(),
                contact_id: "c1".into(),
                currency: "GBP".into(),
                total: Decimal::new(2444, 2),
                exchange_rate: Decimal::ONE,
                lines: Some(vec!["GB_ZERO · SALES".into()]),
                reissue: None,
                credited: None,
            }),
        };
        assert!(row.needs_correction() && !row.offers_reissue());
        let session = crate::portal::Session {
            merchant: "m1".into(),
            csrf: "c0ffee".into(),
        };
        let html = PreviewPage::new(vec![row], None, &session)
            .render()
            .expect("renders");
        assert!(
            html.contains("data-by-hand") && !html.contains("data-reissue="),
            "{html}"
        );
    }

    #[test]
    fn a_posted_document_the_edit_changes_needs_correction() {
        let bodies = [bytes::Bytes::from_static(INVOICE.as_bytes())];
        let compared = compare(
            &bodies,
            &settings(&[(20, "GB_STANDARD")]),
            &settings(&[(20, "GB_OTHER")]),
        );
        let (document_key, number, now, edited) = compared[0].clone();
        // In Sage with the lines the saved settings give (or with others).
        let in_sage = |lines: Vec<String>, reissue: Option<ledger_rpc::Reissue>| {
            Some(ledger_rpc::DocumentRef {
                resource: "sales_invoices".into(),
                sage_id: "s1".into(),
                contact_id: "c1".into(),
                currency: "GBP".into(),
                total: Decimal::new(734400, 4),
                exchange_rate: Decimal::ONE,
                lines: Some(lines),
                reissue,
                credited: Some(Decimal::ZERO),
            })
        };
        let row = |state, sage| PreviewRow {
            document_key: document_key.clone(),
            number: number.clone(),
            state,
            differs: now != edited,
            now: now.clone(),
            edited: edited.clone(),
            sage,
        };
        let session = crate::portal::Session {
            merchant: "m1".into(),
            csrf: "c0ffee".into(),
        };
        // The edit changes a posted document: flagged, to be saved before a re-issue.
        let posted_as_saved = row("in Sage", in_sage(now.lines.clone(), None));
        assert!(posted_as_saved.needs_correction());
        assert!(!posted_as_saved.offers_reissue());
        assert!(!row("held", None).needs_correction());
        let page = PreviewPage::new(vec![posted_as_saved], None, &session);
        assert_eq!((page.differing, page.to_correct), (1, 1));
        let html = page.render().expect("renders");
        assert!(html.contains(r#"id="correction-note""#), "{html}");
        assert!(html.contains("GB_OTHER"), "{html}");
        assert!(!html.contains("data-reissue="), "{html}");
        // Posted under other settings than the saved ones: "Credit and re-issue" is offered,
        // with the session's token.
        let posted_before = row(
            "in Sage",
            in_sage(vec!["GB_ZERO · SALES".to_string(); 3], None),
        );
        assert!(posted_before.offers_reissue());
        let html = PreviewPage::new(vec![posted_before], None, &session)
            .render()
            .expect("renders");
        assert!(
            html.contains(&format!(r#"data-reissue="{document_key}""#)),
            "{html}"
        );
        assert!(html.contains(r#"name="csrf" value="c0ffee""#), "{html}");
        // The same lines but another total also differ.
        let mut other_total = in_sage(now.lines.clone(), None);
        if let Some(d) = other_total.as_mut() {
            d.total = Decimal::new(7343, 2);
        }
        assert!(row("in Sage", other_total).offers_reissue());
        // Once done, it is shown done with both Sage references and offered no more.
        let doc = |number: &str, reference: &str| ledger_rpc::ReissueDocument {
            sage_id: Some(format!("id-{number}")),
            sage_number: Some(number.into()),
            reference: reference.into(),
            total: Decimal::new(7344, 2),
        };
        let done = ledger_rpc::Reissue {
            document_key: document_key.clone(),
            generation: 1,
            done: true,
            currency: "GBP".into(),
            original: doc("SI-1", "000100002"),
            credit_note: doc("SCN-1", "CR1/000100002"),
            reissued: doc("SI-2", "000100002-R1"),
            lines: Vec::new(),
        };
        let done = row(
            "in Sage",
            in_sage(vec!["GB_ZERO · SALES".to_string(); 3], Some(done)),
        );
        assert!(!done.needs_correction() && !done.offers_reissue());
        let html = PreviewPage::new(vec![done], None, &session)
            .render()
            .expect("renders");
        assert!(!html.contains("data-reissue="), "{html}");
        assert!(html.contains("SCN-1") && html.contains("SI-2"), "{html}");
        let same = compare(
            &bodies,
            &settings(&[(20, "GB_STANDARD")]),
            &settings(&[(20, "GB_STANDARD")]),
        );
        assert_eq!(same[0].2, same[0].3);
    }
}
