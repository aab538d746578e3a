//! The portal's sync history and onboarding checklist.
//!
//! **Sync history** (`GET /portal/history`, `GET /portal/history.csv`): every document the
//! merchant's stores sent (invoice, credit memo, payment, customer, product) with its latest
//! state — synced (with Sage's number and id), skipped (with the reason), failed (with Sage's
//! message) or waiting. It reads `status_documents`, the latest state per document that the
//! status projector ([`crate::status`]) keeps beside the feed in the same transaction, so the
//! gateway answers from its own tables. Filters: state, type, date of the latest change, and
//! the Magento number (prefix). Pages are keyed by the feed position of the last row shown
//! (`before=`), newest first, so a page deep in 100,000 documents is one index range like the
//! first. Every query is scoped to the signed-in merchant; nothing in the URL names one.
//!
//! **Onboarding checklist** on the portal's front page: Sage connected, a store paired, the
//! tax map complete for the rates seen, payment methods mapped, a first document synced —
//! derived from the session's merchant, its settings and the same projection.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use ledger_runtime::status::{StatusUpdate, SyncState};
use serde_json::Value;
use sqlx::{Postgres, QueryBuilder};

use crate::portal::FieldError;
use crate::routes::Routes;
use crate::{pages, AppState};

/// Rows on one history page.
pub const PAGE_SIZE: i64 = 50;
/// Longest Magento number the search takes.
pub const SEARCH_MAX: usize = 64;

/// Routes of the sync history (portal session).
pub fn routes() -> Routes {
    Routes::new()
        .get("/portal/history", page)
        .get("/portal/history.csv", export)
}

/// Stores `update` as the latest state of its entity and document key (an invoice's payment
/// carries the invoice's key) unless a later change is there already.
pub async fn record(
    conn: &mut sqlx::PgConnection,
    merchant: &str,
    position: i64,
    update: &StatusUpdate,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO status_documents
             (merchant_id, document_key, position, entity, magento_number, state, at,
              sage_number, sage_reference, sage_id, skip_reason, error_code, detail, message)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (merchant_id, entity, document_key) DO UPDATE SET
             position = EXCLUDED.position,
             magento_number = EXCLUDED.magento_number, state = EXCLUDED.state,
             at = EXCLUDED.at, sage_number = EXCLUDED.sage_number,
             sage_reference = EXCLUDED.sage_reference, sage_id = EXCLUDED.sage_id,
             skip_reason = EXCLUDED.skip_reason, error_code = EXCLUDED.error_code,
             detail = EXCLUDED.detail, message = EXCLUDED.message
         WHERE status_documents.position < EXCLUDED.position",
    )
    .bind(merchant)
    .bind(&update.document_key)
    .bind(position)
    .bind(&update.entity)
    .bind(magento_number(&update.document_key))
    .bind(state_name(update.state))
    .bind(update.at)
    .bind(&update.sage_number)
    .bind(&update.sage_reference)
    .bind(&update.sage_id)
    .bind(&update.skip_reason)
    .bind(&update.error_code)
    .bind(&update.detail)
    .bind(&update.message)
    .execute(conn)
    .await?;
    Ok(())
}

/// The Magento number of a document key: its last part (`000000123` of
/// `invoice:1:000000123`, `42` of `customer:42`).
pub fn magento_number(document_key: &str) -> &str {
    document_key.rsplit(':').next().unwrap_or(document_key)
}

/// The stored name of a state (as the status feed spells it).
pub fn state_name(state: SyncState) -> &'static str {
    match state {
        SyncState::Pending => "pending",
        SyncState::Synced => "synced",
        SyncState::Skipped => "skipped",
        SyncState::Failed => "failed",
    }
}

/// States the filter offers, with what the page calls them.
pub const STATES: [(&str, &str); 4] = [
    ("synced", "Synced"),
    ("skipped", "Skipped"),
    ("failed", "Failed"),
    ("pending", "Waiting"),
];

/// Document types the filter offers, with what the page calls them.
pub const TYPES: [(&str, &str); 5] = [
    ("invoice", "Invoice"),
    ("creditmemo", "Credit memo"),
    ("payment", "Payment"),
    ("customer", "Customer"),
    ("product", "Product"),
];

/// What a history request asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only documents in this state (`synced`, `skipped`, `failed`, `pending`).
    pub state: Option<&'static str>,
    /// Only documents of this type (`invoice`, `creditmemo`, `payment`, `customer`, `product`).
    pub entity: Option<&'static str>,
    /// Latest change on or after this day (UTC).
    pub from: Option<NaiveDate>,
    /// Latest change on or before this day (UTC).
    pub to: Option<NaiveDate>,
    /// Magento numbers starting with this (letters, digits and `-`).
    pub number: Option<String>,
    /// Rows older than this feed position (the next page).
    pub before: Option<i64>,
}

impl Filter {
    /// The query string of this filter (without `before`), for links and the export.
    pub fn query_string(&self) -> String {
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        if let Some(s) = self.state {
            out.append_pair("state", s);
        }
        if let Some(t) = self.entity {
            out.append_pair("type", t);
        }
        if let Some(d) = self.from {
            out.append_pair("from", &d.to_string());
        }
        if let Some(d) = self.to {
            out.append_pair("to", &d.to_string());
        }
        if let Some(n) = &self.number {
            out.append_pair("q", n);
        }
        out.finish()
    }
}

fn one_of(
    query: &HashMap<String, String>,
    field: &'static str,
    allowed: &[(&'static str, &str)],
) -> Result<Option<&'static str>, FieldError> {
    let Some(raw) = present(query, field) else {
        return Ok(None);
    };
    allowed
        .iter()
        .find(|(value, _)| *value == raw)
        .map(|(value, _)| Some(*value))
        .ok_or_else(|| FieldError {
            field,
            reason: format!(
                "must be one of {}",
                allowed
                    .iter()
                    .map(|(v, _)| *v)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}

/// A query parameter's trimmed value; empty counts as absent (an empty form field).
fn present<'a>(query: &'a HashMap<String, String>, field: &str) -> Option<&'a str> {
    query.get(field).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn day(
    query: &HashMap<String, String>,
    field: &'static str,
) -> Result<Option<NaiveDate>, FieldError> {
    present(query, field)
        .map(|raw| {
            NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| FieldError {
                field,
                reason: "must be a date as YYYY-MM-DD".into(),
            })
        })
        .transpose()
}

/// The filter of a history request: `state`, `type`, `from`, `to` (YYYY-MM-DD, `from` not
/// after `to`), `q` (a Magento number or its start) and `before` (a page's key); empty
/// parameters are ignored, anything else out of range is refused naming the parameter.
pub fn parse_filter(query: &HashMap<String, String>) -> Result<Filter, FieldError> {
    let state = one_of(query, "state", &STATES)?;
    let entity = one_of(query, "type", &TYPES)?;
    let from = day(query, "from")?;
    let to = day(query, "to")?;
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(FieldError {
                field: "to",
                reason: "must not be before `from`".into(),
            });
        }
    }
    let number = present(query, "q")
        .map(|raw| {
            if raw.len() > SEARCH_MAX
                || !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                Err(FieldError {
                    field: "q",
                    reason: format!(
                        "a Magento number: up to {SEARCH_MAX} letters, digits and dashes"
                    ),
                })
            } else {
                Ok(raw.to_string())
            }
        })
        .transpose()?;
    let before = present(query, "before")
        .map(|raw| match raw.parse::<i64>() {
            Ok(n) if n > 0 && raw.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
            _ => Err(FieldError {
                field: "before",
                reason: "must be a whole number above 0".into(),
            }),
        })
        .transpose()?;
    Ok(Filter {
        state,
        entity,
        from,
        to,
        number,
        before,
    })
}

/// One document's latest state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Document {
    /// Its feed position (the page key).
    pub position: i64,
    /// Its Magento document key.
    pub document_key: String,
    /// `invoice`, `creditmemo`, `payment`, `customer`, `product`.
    pub entity: String,
    /// Its Magento number.
    pub magento_number: String,
    /// `synced`, `skipped`, `failed`, `pending`.
    pub state: String,
    /// When it changed last.
    pub at: DateTime<Utc>,
    /// Sage's own number, when synced.
    pub sage_number: Option<String>,
    /// Sage reference, when synced.
    pub sage_reference: Option<String>,
    /// Sage id of the record, when known.
    pub sage_id: Option<String>,
    /// Why it was skipped.
    pub skip_reason: Option<String>,
    /// Error code, when failed or waiting after an error.
    pub error_code: Option<String>,
    /// Detail beside the reason or error.
    pub detail: Option<String>,
    /// Sage's or Ledger's message.
    pub message: Option<String>,
}

const COLUMNS: &str = "SELECT position, document_key, entity, magento_number, state, at, \
     sage_number, sage_reference, sage_id, skip_reason, error_code, detail, message \
     FROM status_documents";

fn filtered<'a>(merchant: &'a str, filter: &'a Filter) -> QueryBuilder<'a, Postgres> {
    let mut q = QueryBuilder::new(COLUMNS);
    q.push(" WHERE merchant_id = ").push_bind(merchant);
    if let Some(s) = filter.state {
        q.push(" AND state = ").push_bind(s);
    }
    if let Some(t) = filter.entity {
        q.push(" AND entity = ").push_bind(t);
    }
    if let Some(d) = filter.from {
        q.push(" AND at >= ")
            .push_bind(d.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    if let Some(d) = filter.to {
        let next = d.succ_opt().unwrap_or(d);
        q.push(" AND at < ")
            .push_bind(next.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    if let Some(n) = &filter.number {
        // Letters, digits and dashes only: nothing in it is a LIKE wildcard.
        q.push(" AND magento_number LIKE ")
            .push_bind(format!("{n}%"));
    }
    if let Some(b) = filter.before {
        q.push(" AND position < ").push_bind(b);
    }
    q.push(" ORDER BY position DESC");
    q
}

/// One page of `merchant`'s documents under `filter`, newest change first, and whether more
/// follow.
pub async fn read_page(
    app: &AppState,
    merchant: &str,
    filter: &Filter,
) -> Result<(Vec<Document>, bool), sqlx::Error> {
    let mut q = filtered(merchant, filter);
    q.push(" LIMIT ").push_bind(PAGE_SIZE + 1);
    let mut rows: Vec<Document> = q.build_query_as().fetch_all(&app.db).await?;
    let more = rows.len() as i64 > PAGE_SIZE;
    rows.truncate(PAGE_SIZE as usize);
    Ok((rows, more))
}

/// Every one of `merchant`'s documents under `filter` (`before` ignored), newest first.
pub async fn read_all(
    app: &AppState,
    merchant: &str,
    filter: &Filter,
) -> Result<Vec<Document>, sqlx::Error> {
    let all = Filter {
        before: None,
        ..filter.clone()
    };
    filtered(merchant, &all)
        .build_query_as()
        .fetch_all(&app.db)
        .await
}

fn label(table: &[(&'static str, &'static str)], value: &str) -> String {
    table
        .iter()
        .find(|(v, _)| *v == value)
        .map(|(_, l)| l.to_string())
        .unwrap_or_else(|| value.to_string())
}

/// A document as the history page shows it.
pub fn row(d: &Document) -> pages::HistoryRow {
    let join = |a: &Option<String>, b: &Option<String>| {
        [a.as_deref(), b.as_deref()]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(": ")
    };
    let (outcome, action) = match d.state.as_str() {
        "synced" => (
            d.sage_number
                .clone()
                .or_else(|| d.sage_reference.clone())
                .unwrap_or_default(),
            None,
        ),
        "skipped" => (
            join(&d.skip_reason, &d.detail),
            Some(("/portal#held", "Held documents")),
        ),
        "failed" => (
            join(
                &d.error_code,
                &d.message.clone().or_else(|| d.detail.clone()),
            ),
            Some(("/portal#attention", "Send again")),
        ),
        _ => (join(&d.error_code, &d.message), None),
    };
    pages::HistoryRow {
        document_key: d.document_key.clone(),
        kind: d.entity.clone(),
        entity: label(&TYPES, &d.entity),
        number: d.magento_number.clone(),
        state: d.state.clone(),
        state_label: label(&STATES, &d.state),
        outcome,
        sage_id: d.sage_id.clone().unwrap_or_default(),
        at: d.at.format("%Y-%m-%d %H:%M UTC").to_string(),
        action_href: action.map(|a| a.0),
        action_label: action.map(|a| a.1).unwrap_or(""),
    }
}

fn options(table: &[(&'static str, &'static str)], chosen: Option<&str>) -> Vec<pages::Choice> {
    table
        .iter()
        .map(|(value, label)| pages::Choice {
            value,
            label,
            selected: chosen == Some(*value),
        })
        .collect()
}

/// The session and the filter of a history request (or the page to answer: signed out).
async fn asked(
    app: &AppState,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<(crate::portal::Session, Result<Filter, FieldError>), Response> {
    let session = crate::portal::page_session(app, headers).await?;
    Ok((session, parse_filter(query)))
}

async fn page(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (session, filter) = match asked(&app, &headers, &query).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let (filter, error) = match filter {
        Ok(f) => (f, None),
        Err(e) => (Filter::default(), Some(e)),
    };
    let (documents, more) = if error.is_some() {
        (Vec::new(), false)
    } else {
        match read_page(&app, &session.merchant, &filter).await {
            Ok(page) => page,
            Err(e) => return crate::portal::unavailable(e),
        }
    };
    let filter_query = filter.query_string();
    let next = more.then(|| {
        let key = documents.last().map(|d| d.position).unwrap_or(0);
        let sep = if filter_query.is_empty() { "" } else { "&" };
        format!("/portal/history?{filter_query}{sep}before={key}")
    });
    let view = pages::History {
        states: options(&STATES, filter.state),
        types: options(&TYPES, filter.entity),
        from: filter.from.map(|d| d.to_string()).unwrap_or_default(),
        to: filter.to.map(|d| d.to_string()).unwrap_or_default(),
        search: filter.number.clone().unwrap_or_default(),
        error: error.map(|e| e.to_string()),
        rows: documents.iter().map(row).collect(),
        next,
        first_page: filter.before.is_none(),
        export: if filter_query.is_empty() {
            "/portal/history.csv".into()
        } else {
            format!("/portal/history.csv?{filter_query}")
        },
    };
    let status = if view.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    pages::respond(status, None, &view)
}

/// A CSV cell that a spreadsheet would read as a formula is kept as text.
fn cell(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    }
}

/// The CSV export's header line.
pub const CSV_HEADER: [&str; 12] = [
    "document_key",
    "type",
    "magento_number",
    "state",
    "changed_at",
    "sage_number",
    "sage_reference",
    "sage_id",
    "skip_reason",
    "error_code",
    "detail",
    "message",
];

/// The documents as CSV (one header line, one line per document).
pub fn to_csv(documents: &[Document]) -> Result<Vec<u8>, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(CSV_HEADER)?;
    for d in documents {
        let opt = |v: &Option<String>| cell(v.as_deref().unwrap_or(""));
        out.write_record([
            cell(&d.document_key),
            cell(&d.entity),
            cell(&d.magento_number),
            cell(&d.state),
            d.at.to_rfc3339(),
            opt(&d.sage_number),
            opt(&d.sage_reference),
            opt(&d.sage_id),
            opt(&d.skip_reason),
            opt(&d.error_code),
            opt(&d.detail),
            opt(&d.message),
        ])?;
    }
    out.into_inner().map_err(|e| e.into_error().into())
}

async fn export(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (session, filter) = match asked(&app, &headers, &query).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let filter = match filter {
        Ok(f) => f,
        Err(e) => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                e.to_string(),
            )
                .into_response()
        }
    };
    let documents = match read_all(&app, &session.merchant, &filter).await {
        Ok(d) => d,
        Err(e) => return crate::portal::unavailable(e),
    };
    let body = match to_csv(&documents) {
        Ok(b) => b,
        Err(e) => return crate::portal::unavailable(e),
    };
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"sync-history.csv\""),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Reason codes of a payment waiting for a bank account (the payments service's and the
/// mapping's).
const BANK_ACCOUNT_REASONS: [&str; 3] = [
    "no_bank_account",
    "bank_account_currency",
    "settings.no_bank_account",
];
/// The reason of a document whose tax rate has no Sage tax rate in the merchant's map.
const UNMAPPED_TAX_RATE: &str = "unmapped_tax_rate";

/// What the checklist knows of the merchant's documents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct DocumentFacts {
    /// Documents seen.
    pub seen: i64,
    /// Documents synced.
    pub synced: i64,
    /// Documents not synced because a tax rate is not mapped.
    pub unmapped_tax: i64,
    /// Payments not synced for want of a bank account.
    pub no_bank_account: i64,
}

/// The counts the checklist needs, from the latest state of every document.
pub async fn document_facts(app: &AppState, merchant: &str) -> Result<DocumentFacts, sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) AS seen,
                count(*) FILTER (WHERE state = 'synced') AS synced,
                count(*) FILTER (WHERE state <> 'synced' AND skip_reason = $2) AS unmapped_tax,
                count(*) FILTER (WHERE state <> 'synced'
                                   AND coalesce(skip_reason, error_code) = ANY($3)) AS no_bank_account
         FROM status_documents WHERE merchant_id = $1",
    )
    .bind(merchant)
    .bind(UNMAPPED_TAX_RATE)
    .bind(&BANK_ACCOUNT_REASONS[..])
    .fetch_one(&app.db)
    .await
}

/// Whether the settings map payments to Sage bank accounts: a default bank account per
/// currency (found when Sage was connected) or per-method accounts.
pub fn payment_accounts_set(settings: Option<&Value>) -> bool {
    let non_empty = |key: &str| {
        settings
            .and_then(|s| s.get(key))
            .and_then(Value::as_object)
            .is_some_and(|m| m.values().any(|v| !v.is_null() && v != ""))
    };
    non_empty("bank_accounts") || non_empty("payment_methods")
}

/// What the checklist is computed from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts {
    /// Sage is connected and the connection is active.
    pub sage_connected: bool,
    /// A store key is paired and not disconnected.
    pub store_paired: bool,
    /// Payments have bank accounts in the settings.
    pub payment_accounts_set: bool,
    /// The documents (`None`: they could not be read).
    pub documents: Option<DocumentFacts>,
}

fn plural(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The onboarding steps, in order, each with whether it is done and where to do it.
pub fn checklist(facts: &Facts) -> Vec<pages::Step> {
    let docs = facts.documents;
    let step = |id, label, done, href, hint: String| pages::Step {
        id,
        label,
        done,
        href,
        hint,
    };
    let unknown = || "Your documents could not be read just now.".to_string();
    vec![
        step(
            "sage",
            "Sage connected",
            facts.sage_connected,
            "/portal#sage",
            if facts.sage_connected {
                String::new()
            } else {
                "Connect your Sage business; documents wait until you do.".into()
            },
        ),
        step(
            "store",
            "Store paired",
            facts.store_paired,
            "/portal#stores",
            if facts.store_paired {
                String::new()
            } else {
                "Enter your store's pairing code.".into()
            },
        ),
        match docs {
            None => step(
                "tax",
                "Tax map complete for the rates seen",
                false,
                "/portal/settings",
                unknown(),
            ),
            Some(d) if d.seen == 0 => step(
                "tax",
                "Tax map complete for the rates seen",
                false,
                "/portal/settings",
                "No document has arrived yet, so no tax rate has been seen.".into(),
            ),
            Some(d) => step(
                "tax",
                "Tax map complete for the rates seen",
                d.unmapped_tax == 0,
                "/portal/settings",
                if d.unmapped_tax == 0 {
                    String::new()
                } else {
                    format!(
                        "{} held for a tax rate with no Sage tax rate.",
                        plural(d.unmapped_tax, "document is", "documents are")
                    )
                },
            ),
        },
        {
            let waiting = docs.map(|d| d.no_bank_account).unwrap_or(0);
            let done = facts.payment_accounts_set && docs.is_some() && waiting == 0;
            let hint = if docs.is_none() {
                unknown()
            } else if waiting > 0 {
                format!(
                    "{} for a Sage bank account.",
                    plural(waiting, "payment waits", "payments wait")
                )
            } else if !facts.payment_accounts_set {
                "Choose the Sage bank account your payment methods pay into.".into()
            } else {
                String::new()
            };
            step(
                "payments",
                "Payment methods mapped",
                done,
                "/portal/settings",
                hint,
            )
        },
        {
            let done = docs.is_some_and(|d| d.synced > 0);
            step(
                "first-sync",
                "First document synced",
                done,
                "/portal/history",
                if done {
                    String::new()
                } else if docs.is_none() {
                    unknown()
                } else {
                    "Nothing is in Sage yet; the sync history shows where each document is.".into()
                },
            )
        },
    ]
}

/// The merchant's checklist, reading what the front page does not already know.
pub async fn checklist_of(
    app: &AppState,
    merchant: &str,
    sage_connected: bool,
    store_paired: bool,
) -> Vec<pages::Step> {
    let settings = crate::merchants::settings_of(app, merchant)
        .await
        .ok()
        .flatten();
    let documents = match document_facts(app, merchant).await {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!(error = %e, %merchant, "checklist: documents not read");
            None
        }
    };
    checklist(&Facts {
        sage_connected,
        store_paired,
        payment_accounts_set: payment_accounts_set(settings.as_ref()),
        documents,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use askama::Template;

    use crate::query_of as q;

    #[test]
    fn filters_are_read_and_refusals_name_the_parameter() {
        assert_eq!(parse_filter(&q(&[])), Ok(Filter::default()));
        assert_eq!(
            parse_filter(&q(&[("state", ""), ("type", " "), ("q", "")])),
            Ok(Filter::default())
        );
        let f = parse_filter(&q(&[
            ("state", "failed"),
            ("type", "creditmemo"),
            ("from", "2026-01-01"),
            ("to", "2026-01-31"),
            ("q", "000000123"),
            ("before", "77"),
        ]))
        .unwrap();
        assert_eq!(f.state, Some("failed"));
        assert_eq!(f.entity, Some("creditmemo"));
        assert_eq!(f.before, Some(77));
        assert_eq!(
            f.query_string(),
            "state=failed&type=creditmemo&from=2026-01-01&to=2026-01-31&q=000000123"
        );
        for (field, bad) in [
            ("state", "done"),
            ("type", "order"),
            ("from", "2026-13-01"),
            ("to", "yesterday"),
            ("q", "12%"),
            ("q", "1_2"),
            ("before", "-1"),
            ("before", "0"),
            ("before", "+5"),
        ] {
            assert_eq!(
                parse_filter(&q(&[(field, bad)])).unwrap_err().field,
                field,
                "{field}={bad}"
            );
        }
        assert_eq!(
            parse_filter(&q(&[("from", "2026-02-01"), ("to", "2026-01-01")]))
                .unwrap_err()
                .field,
            "to"
        );
        assert_eq!(
            parse_filter(&q(&[("q", &"9".repeat(SEARCH_MAX + 1))]))
                .unwrap_err()
                .field,
            "q"
        );
    }

    #[test]
    fn the_magento_number_is_the_last_part_of_the_key() {
        assert_eq!(magento_number("invoice:1:000000123"), "000000123");
        assert_eq!(magento_number("customer:42"), "42");
        assert_eq!(magento_number("plain"), "plain");
    }

    fn doc(state: &str) -> Document {
        Document {
            position: 1,
            document_key: "invoice:1:=000000123".into(),
            entity: "invoice".into(),
            magento_number: "=000000123".into(),
            state: state.into(),
            at: "2026-12-07T05:00:00Z".parse().unwrap(),
            sage_number: Some("SI-12".into()),
            sage_reference: Some("000000123".into()),
            sage_id: Some("abc".into()),
            skip_reason: Some("unmapped_tax_rate".into()),
            error_code: Some("sage.invalid".into()),
            detail: Some("line 1: 17.5 %".into()),
            message: Some("<b>refused</b>".into()),
        }
    }

    #[test]
    fn each_state_shows_what_the_merchant_needs_and_links_where_to_act() {
        let synced = row(&doc("synced"));
        assert_eq!(
            (synced.state_label.as_str(), synced.outcome.as_str()),
            ("Synced", "SI-12")
        );
        assert_eq!(synced.sage_id, "abc");
        assert!(synced.action_href.is_none());
        let skipped = row(&doc("skipped"));
        assert_eq!(skipped.outcome, "unmapped_tax_rate: line 1: 17.5 %");
        assert_eq!(skipped.action_href, Some("/portal#held"));
        let failed = row(&doc("failed"));
        assert_eq!(failed.outcome, "sage.invalid: <b>refused</b>");
        assert_eq!(failed.action_href, Some("/portal#attention"));
        assert_eq!(row(&doc("pending")).state_label, "Waiting");
    }

    #[test]
    fn the_page_escapes_values_and_keeps_the_filter() {
        let filter = parse_filter(&q(&[("state", "failed"), ("q", "0001")])).unwrap();
        let html = pages::History {
            states: options(&STATES, filter.state),
            types: options(&TYPES, filter.entity),
            from: String::new(),
            to: String::new(),
            search: "0001".into(),
            error: None,
            rows: vec![row(&doc("failed"))],
            next: Some("/portal/history?state=failed&before=1".into()),
            first_page: true,
            export: format!("/portal/history.csv?{}", filter.query_string()),
        }
        .render()
        .unwrap();
        assert!(!html.contains("<b>refused"), "{html}");
        assert!(
            html.contains("&#60;b&#62;refused") || html.contains("&lt;b&gt;refused"),
            "{html}"
        );
        assert!(
            html.contains(r#"<option value="failed" selected>"#),
            "{html}"
        );
        assert!(
            html.contains("/portal/history.csv?state=failed&#38;q=0001")
                || html.contains("/portal/history.csv?state=failed&amp;q=0001"),
            "{html}"
        );
        assert!(html.contains(r#"id="next-page""#), "{html}");
    }

    #[test]
    fn the_csv_has_a_header_quotes_and_keeps_formulas_as_text() {
        let mut skipped = doc("skipped");
        skipped.detail = Some("line 1, 17.5 %".into());
        let csv = String::from_utf8(to_csv(&[skipped]).unwrap()).unwrap();
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some(CSV_HEADER.join(",").as_str()));
        let line = lines.next().unwrap();
        assert!(
            line.starts_with(
                "invoice:1:=000000123,invoice,'=000000123,skipped,2026-12-07T05:00:00+00:00,SI-12,"
            ),
            "{line}"
        );
        assert!(
            line.ends_with(r#","line 1, 17.5 %",<b>refused</b>"#),
            "{line}"
        );
        assert_eq!(lines.next(), None);
    }

    #[test]
    fn the_checklist_follows_the_facts() {
        let nothing = checklist(&Facts::default());
        assert_eq!(nothing.len(), 5);
        assert!(nothing.iter().all(|s| !s.done));
        let docs = DocumentFacts {
            seen: 3,
            synced: 1,
            unmapped_tax: 2,
            no_bank_account: 1,
        };
        let steps = checklist(&Facts {
            sage_connected: true,
            store_paired: true,
            payment_accounts_set: true,
            documents: Some(docs),
        });
        let done: Vec<_> = steps.iter().map(|s| (s.id, s.done)).collect();
        assert_eq!(
            done,
            [
                ("sage", true),
                ("store", true),
                ("tax", false),
                ("payments", false),
                ("first-sync", true)
            ]
        );
        assert!(
            steps[2].hint.contains("2 documents are held"),
            "{}",
            steps[2].hint
        );
        assert!(
            steps[3].hint.contains("1 payment waits"),
            "{}",
            steps[3].hint
        );
        assert_eq!(steps[2].href, "/portal/settings");
        let clear = checklist(&Facts {
            sage_connected: true,
            store_paired: true,
            payment_accounts_set: true,
            documents: Some(DocumentFacts {
                unmapped_tax: 0,
                no_bank_account: 0,
                ..docs
            }),
        });
        assert!(clear.iter().all(|s| s.done));
    }

    #[test]
    fn payment_accounts_count_only_when_one_is_set() {
        assert!(!payment_accounts_set(None));
        assert!(!payment_accounts_set(Some(
            &serde_json::json!({"bank_accounts": {"GBP": ""}})
        )));
        assert!(payment_accounts_set(Some(
            &serde_json::json!({"bank_accounts": {"GBP": "b1"}})
        )));
        assert!(payment_accounts_set(Some(
            &serde_json::json!({"payment_methods": {"checkmo": {"payment_method_id": "x"}}})
        )));
    }
}
