//! The portal's settings page: the merchant sets up their own books.
//!
//! Every choice that names something in Sage (tax rate, ledger account, bank account, payment
//! method) is a dropdown filled from the merchant's own Sage business, read once and cached in
//! `settings_choices`; "Refresh from Sage" reads it again. The page edits the home rows of the
//! tax map (Magento rate % and tax class → Sage rate), the payment methods (Sage payment
//! method, bank account, and whether the method is paid on net terms), the ledger accounts,
//! the sync policy (cutover, website and store allow-lists, zero-value and unpaid invoices,
//! reference prefix, contact name), due days and time zone.
//!
//! Payment methods listed are the ones the merchant's store used — read from their recent
//! invoices in the event log (`order.payment.method` of `invoice.created`, among the last
//! [`METHODS_SEEN_WINDOW`] events) when the choices are refreshed — and the ones the settings
//! already know (mapped in `payment_methods`, or in the net-terms and offline lists, which
//! start with Magento's standard offline methods). Any other is added by its Magento code in
//! the page's empty row.
//!
//! A save is checked as a whole before anything is stored: a Sage id the business does not
//! have, two tax rows for the same rate and class, a cutover in the future, a bad reference
//! prefix — each refusal names its field on the page. The admin API's own checks
//! ([`crate::merchants::settings_issues`]) run too. A stored change is appended to the
//! gateway's hash-chained audit trail (who, and each setting's old and new value) and
//! announced to the services ([`crate::merchants::merge_settings`]), whose settings caches drop
//! the merchant's copy: the next event uses it, without a restart.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use chrono::{NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

use crate::merchants::hash_key;
use crate::portal::{
    form_session, page_session, redirect, session_cookie, signed_out, unavailable,
};
use crate::routes::Routes;
use crate::{pages, AppState};

/// Routes of the settings page.
pub fn routes() -> Routes {
    Routes::new()
        .get("/portal/settings", show)
        .post("/portal/settings", save)
        .post("/portal/settings/refresh", refresh)
}

/// The kinds of Sage reference data the page offers, by Sage list endpoint.
pub const KINDS: [&str; 4] = [
    "tax_rates",
    "ledger_accounts",
    "bank_accounts",
    "payment_methods",
];

/// The ledger account settings the page edits, with their labels.
const LEDGER_FIELDS: [(&str, &str); 4] = [
    ("sales_ledger_account_id", "Sales"),
    ("shipping_ledger_account_id", "Shipping"),
    ("rounding_ledger_account_id", "Rounding"),
    ("adjustment_ledger_account_id", "Credit memo adjustments"),
];

/// The sync policy and books settings the page edits: key, label, and the fixed choices of a
/// dropdown (`None`: typed, except the time zone, a dropdown of every IANA zone).
type PolicyField = (
    &'static str,
    &'static str,
    Option<&'static [(&'static str, &'static str)]>,
);
const POLICY_FIELDS: [PolicyField; 9] = [
    (
        "sync_since",
        "Sync documents from (cutover, YYYY-MM-DD; empty: all)",
        None,
    ),
    (
        "website_ids",
        "Magento websites synced (ids, comma separated; empty: all)",
        None,
    ),
    (
        "store_ids",
        "Magento store views synced (ids, comma separated; empty: all)",
        None,
    ),
    (
        "zero_value_invoices",
        "Invoices of 0.00",
        Some(&[("skip", "Keep out of Sage"), ("post", "Post to Sage")]),
    ),
    (
        "unpaid_invoices",
        "Invoices not paid when created",
        Some(&[("post", "Post to Sage"), ("skip", "Keep out of Sage")]),
    ),
    (
        "reference_prefix",
        "Reference prefix (before the Magento number)",
        None,
    ),
    (
        "contact_name_priority",
        "Contact name when an address names a company and a person",
        Some(&[("company", "The company"), ("person", "The person")]),
    ),
    ("due_days", "Days until an invoice is due", None),
    ("timezone", "Time zone of your books", None),
];

/// One thing in the merchant's Sage business a setting may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Sage's id.
    pub id: String,
    /// What the merchant sees.
    pub label: String,
    /// The fact a choice is checked against: a tax rate's percentage, a bank account's
    /// currency; empty otherwise.
    pub detail: String,
}

/// The merchant's cached Sage reference data, per kind (see [`KINDS`]).
#[derive(Debug, Clone, Default)]
pub struct Reference {
    /// Choices per kind.
    pub kinds: BTreeMap<String, Vec<Choice>>,
    /// When it was last read from Sage.
    pub refreshed: Option<chrono::DateTime<Utc>>,
}

impl Reference {
    /// The choices of one kind (empty when none are cached).
    pub fn of(&self, kind: &str) -> &[Choice] {
        self.kinds.get(kind).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The choice of `kind` with Sage id `id`.
    pub fn find(&self, kind: &str, id: &str) -> Option<&Choice> {
        self.of(kind).iter().find(|c| c.id == id)
    }
}

/// The choices in one Sage list answer: id, a readable label, and the detail of the kind.
pub fn choices_from_sage(kind: &str, items: &[Value]) -> Vec<Choice> {
    let text = |v: Option<&Value>| -> String {
        match v {
            Some(Value::String(s)) => s.trim().to_string(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Object(o)) => o
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            _ => String::new(),
        }
    };
    items
        .iter()
        .filter_map(|item| {
            let id = item.get("id").and_then(Value::as_str)?.trim().to_string();
            let mut label = text(item.get("displayed_as"));
            if label.is_empty() {
                label = text(item.get("name"));
            }
            let detail = match kind {
                "tax_rates" => text(item.get("percentage")),
                "bank_accounts" => text(item.get("currency")).to_ascii_uppercase(),
                "ledger_accounts" => text(item.get("nominal_code")),
                _ => String::new(),
            };
            if kind == "ledger_accounts" && !detail.is_empty() && !label.starts_with(&detail) {
                label = format!("{detail} {label}");
            }
            if label.is_empty() {
                label = id.clone();
            }
            Some(Choice { id, label, detail })
        })
        .collect()
}

/// A refusal of one form field, shown beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// The form field (also the settings key for top-level settings).
    pub field: String,
    /// Why.
    pub reason: String,
}

fn issue(field: impl Into<String>, reason: impl Into<String>) -> Issue {
    Issue {
        field: field.into(),
        reason: reason.into(),
    }
}

fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> &'a str {
    form.get(name).map(|s| s.trim()).unwrap_or("")
}

/// The settings patch a submitted form asks for, or every refusal it earns.
///
/// `current` is the stored settings document: tax rows this page does not show (keyed by
/// country or applied tax code) and payment-method details it does not edit are kept.
/// `today` is the merchant's calendar day (a cutover after it is refused). A setting whose
/// fields the form does not carry is left as it is (the page always sends them all).
pub fn patch_from_form(
    form: &HashMap<String, String>,
    current: &Value,
    reference: &Reference,
    today: NaiveDate,
) -> Result<Value, Vec<Issue>> {
    let mut issues = Vec::new();
    let mut patch = Map::new();
    if rows(form, "tax_percent_") > 0 {
        tax_map(form, current, reference, &mut patch, &mut issues);
    }
    if rows(form, "method_") > 0 {
        payment_methods(form, current, reference, &mut patch, &mut issues);
    }
    for (key, _) in LEDGER_FIELDS {
        let Some(chosen) = form.get(key).map(|v| v.trim()) else {
            continue;
        };
        if chosen.is_empty() {
            patch.insert(key.into(), Value::Null);
        } else if reference.find("ledger_accounts", chosen).is_none() {
            issues.push(issue(key, "not a ledger account of your Sage business"));
        } else {
            patch.insert(key.into(), json!(chosen));
        }
    }
    let since = form.get("sync_since").map(|v| v.trim());
    if since == Some("") {
        patch.insert("sync_since".into(), Value::Null);
    } else if let Some(since) = since {
        match NaiveDate::parse_from_str(since, "%Y-%m-%d") {
            Ok(d) if d > today => issues.push(issue(
                "sync_since",
                format!("in the future: a cutover is a day already begun (today is {today})"),
            )),
            Ok(d) => {
                patch.insert("sync_since".into(), json!(d.to_string()));
            }
            Err(_) => issues.push(issue("sync_since", "a date such as 2026-01-01")),
        }
    }
    for key in ["website_ids", "store_ids"] {
        let Some(typed) = form.get(key).map(|v| v.trim()) else {
            continue;
        };
        if typed.is_empty() {
            patch.insert(key.into(), Value::Null);
            continue;
        }
        let ids: Result<BTreeSet<u32>, _> = typed
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(str::parse::<u32>)
            .collect();
        match ids {
            Ok(ids) => {
                patch.insert(key.into(), json!(ids));
            }
            Err(_) => issues.push(issue(
                key,
                "Magento ids (whole numbers from 0) separated by commas",
            )),
        }
    }
    for key in [
        "zero_value_invoices",
        "unpaid_invoices",
        "contact_name_priority",
        "reference_prefix",
        "timezone",
    ] {
        if let Some(v) = form.get(key) {
            patch.insert(key.into(), json!(v.trim()));
        }
    }
    match form.get("due_days").map(|d| d.trim().parse::<u32>()) {
        None => {}
        Some(Ok(days)) if days <= 365 => {
            patch.insert("due_days".into(), json!(days));
        }
        Some(_) => issues.push(issue("due_days", "a whole number of days from 0 to 365")),
    }
    if issues.is_empty() {
        Ok(Value::Object(patch))
    } else {
        Err(issues)
    }
}

/// Number of rows of a repeated form group (`prefix0`, `prefix1`, …), at most 200.
fn rows(form: &HashMap<String, String>, prefix: &str) -> usize {
    (0..200)
        .find(|i| !form.contains_key(&format!("{prefix}{i}")))
        .unwrap_or(200)
}

fn tax_map(
    form: &HashMap<String, String>,
    current: &Value,
    reference: &Reference,
    patch: &mut Map<String, Value>,
    issues: &mut Vec<Issue>,
) {
    let mut rows_out: Vec<Value> = Vec::new();
    let mut seen: Vec<(Decimal, Option<String>, usize)> = Vec::new();
    for i in 0..rows(form, "tax_percent_") {
        let percent = field(form, &format!("tax_percent_{i}"));
        let class = field(form, &format!("tax_class_{i}"));
        let rate = field(form, &format!("tax_rate_{i}"));
        if percent.is_empty() && class.is_empty() && rate.is_empty() {
            continue;
        }
        let percent_field = format!("tax_percent_{i}");
        let percent = match percent.parse::<Decimal>() {
            Ok(p) if p >= Decimal::ZERO && p <= Decimal::from(100) => p.normalize(),
            _ => {
                issues.push(issue(
                    percent_field,
                    "a percentage from 0 to 100, such as 17.5",
                ));
                continue;
            }
        };
        if rate.is_empty() {
            issues.push(issue(
                format!("tax_rate_{i}"),
                "required: choose a Sage tax rate",
            ));
            continue;
        }
        if reference.find("tax_rates", rate).is_none() {
            issues.push(issue(
                format!("tax_rate_{i}"),
                "not a tax rate of your Sage business",
            ));
            continue;
        }
        let class = (!class.is_empty()).then(|| class.to_string());
        if let Some((_, _, first)) = seen.iter().find(|(p, c, _)| *p == percent && *c == class) {
            issues.push(issue(
                percent_field,
                format!(
                    "overlaps row {}: the same rate and tax class map to one Sage rate only",
                    first + 1
                ),
            ));
            continue;
        }
        seen.push((percent, class.clone(), i));
        let mut row = json!({"percent": percent.to_string(), "tax_rate_id": rate});
        if let Some(class) = class {
            row["tax_class"] = json!(class);
        }
        rows_out.push(row);
    }
    // Rows keyed by country or applied tax code are not on the page: kept as they are.
    rows_out.extend(
        current
            .get("tax_rates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|r| !is_home_row(r))
            .cloned(),
    );
    patch.insert("tax_rates".into(), Value::Array(rows_out));
}

fn is_home_row(row: &Value) -> bool {
    row.get("country").is_none_or(Value::is_null) && row.get("code").is_none_or(Value::is_null)
}

fn payment_methods(
    form: &HashMap<String, String>,
    current: &Value,
    reference: &Reference,
    patch: &mut Map<String, Value>,
    issues: &mut Vec<Issue>,
) {
    let mut mapped = current
        .get("payment_methods")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut paid_later = string_list(current, "paid_later_methods");
    let mut prepaid = string_list(current, "prepaid_offline_methods");
    for i in 0..rows(form, "method_") {
        let code = field(form, &format!("method_{i}"));
        if code.is_empty() {
            continue;
        }
        if !is_method_code(code) {
            issues.push(issue(
                format!("method_{i}"),
                "a Magento payment method code: letters, digits, _ and -",
            ));
            continue;
        }
        let sage_method = field(form, &format!("method_{i}_sage"));
        let bank = field(form, &format!("method_{i}_bank"));
        if !sage_method.is_empty() && reference.find("payment_methods", sage_method).is_none() {
            issues.push(issue(
                format!("method_{i}_sage"),
                "not a payment method of your Sage business",
            ));
            continue;
        }
        let bank_choice = if bank.is_empty() {
            None
        } else {
            match reference.find("bank_accounts", bank) {
                Some(b) => Some(b),
                None => {
                    issues.push(issue(
                        format!("method_{i}_bank"),
                        "not a bank account of your Sage business",
                    ));
                    continue;
                }
            }
        };
        if field(form, &format!("method_{i}_net_terms")) == "on" {
            // Prepaid offline wins over paid later in the engine: a method is one or the other.
            prepaid.retain(|m| m != code);
            if !paid_later.iter().any(|m| m == code) {
                paid_later.push(code.to_string());
            }
        } else {
            paid_later.retain(|m| m != code);
        }
        if sage_method.is_empty() && bank_choice.is_none() {
            mapped.remove(code);
            continue;
        }
        let mut entry = mapped.get(code).cloned().unwrap_or_else(|| json!({}));
        entry["payment_method_id"] = json!(if sage_method.is_empty() {
            "CREDIT_DEBIT"
        } else {
            sage_method
        });
        let mut banks = Map::new();
        if let Some(b) = bank_choice {
            banks.insert(b.detail.clone(), json!(b.id));
        }
        entry["bank_account_ids"] = Value::Object(banks);
        mapped.insert(code.to_string(), entry);
    }
    patch.insert("payment_methods".into(), Value::Object(mapped));
    patch.insert("paid_later_methods".into(), json!(paid_later));
    patch.insert("prepaid_offline_methods".into(), json!(prepaid));
}

/// A list of method codes in the settings, in its stored order (the engine's default list when
/// none is stored).
fn string_list(settings: &Value, key: &str) -> Vec<String> {
    match settings.get(key).and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        // Not stored yet: the engine's defaults apply.
        None => {
            let defaults = serde_json::to_value(ledger_mapping::MerchantSettings::default())
                .unwrap_or_default();
            string_list_of(&defaults, key)
        }
    }
}

fn string_list_of(settings: &Value, key: &str) -> Vec<String> {
    settings
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// The settings keys whose value differs between `before` and `after`, with both values.
pub fn changes(before: &Value, after: &Value) -> Vec<(String, Value, Value)> {
    let keys: BTreeSet<&String> = before
        .as_object()
        .into_iter()
        .chain(after.as_object())
        .flat_map(|o| o.keys())
        .collect();
    keys.into_iter()
        .filter_map(|k| {
            let old = before.get(k).cloned().unwrap_or(Value::Null);
            let new = after.get(k).cloned().unwrap_or(Value::Null);
            (old != new).then(|| (k.clone(), old, new))
        })
        .collect()
}

/// The settings as the engine reads them: its defaults, overlaid with what is stored.
pub(crate) fn effective(stored: &Value) -> Value {
    let mut settings = serde_json::to_value(ledger_mapping::MerchantSettings::default())
        .unwrap_or_else(|_| json!({}));
    if let (Some(s), Some(stored)) = (settings.as_object_mut(), stored.as_object()) {
        s.extend(stored.clone());
    }
    settings
}

/// `base` with the top-level settings of `patch` in place of its own.
pub(crate) fn overlaid(base: &Value, patch: &Value) -> Value {
    let mut after = base.clone();
    if let (Some(a), Some(p)) = (after.as_object_mut(), patch.as_object()) {
        a.extend(p.clone());
    }
    after
}

/// The merchant's cached Sage reference data.
pub async fn reference_of(app: &AppState, merchant: &str) -> Result<Reference, sqlx::Error> {
    let rows: Vec<(String, String, String, String, chrono::DateTime<Utc>)> = sqlx::query_as(
        "SELECT kind, choice_id, label, detail, refreshed_at FROM settings_choices
         WHERE merchant_id = $1 ORDER BY kind, label, choice_id",
    )
    .bind(merchant)
    .fetch_all(&app.db)
    .await?;
    let mut reference = Reference::default();
    for (kind, id, label, detail, at) in rows {
        reference.refreshed = reference.refreshed.max(Some(at));
        reference
            .kinds
            .entry(kind)
            .or_default()
            .push(Choice { id, label, detail });
    }
    Ok(reference)
}

/// Kind of the Magento payment methods the store used (from the event log, not Sage).
pub const MAGENTO_METHODS: &str = "magento_payment_methods";

/// How many of the newest events in the log are searched for the store's invoices.
pub const METHODS_SEEN_WINDOW: u64 = 50_000;

/// Whether `code` can be a Magento payment method code (letters, digits, `_`, `-`; at most 64).
fn is_method_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The payment method of an `invoice.created` event body, if it names a plausible one.
pub fn method_of_invoice(body: &[u8]) -> Option<String> {
    let event: Value = serde_json::from_slice(body).ok()?;
    let code = event["payload"]["order"]["payment"]["method"]
        .as_str()?
        .trim();
    is_method_code(code).then(|| code.to_string())
}

/// The payment methods of the merchant's invoices among the newest [`METHODS_SEEN_WINDOW`]
/// events of the log.
pub async fn methods_seen(
    js: &async_nats::jetstream::Context,
    merchant: &str,
) -> anyhow::Result<BTreeSet<String>> {
    Ok(recent_invoices(js, merchant, METHODS_SEEN_WINDOW)
        .await?
        .iter()
        .filter_map(|body| method_of_invoice(body))
        .collect())
}

/// The bodies of the merchant's `invoice.created` events among the newest `window` events
/// of the log, oldest first.
pub async fn recent_invoices(
    js: &async_nats::jetstream::Context,
    merchant: &str,
    window: u64,
) -> anyhow::Result<Vec<bytes::Bytes>> {
    recent_events(
        js,
        merchant,
        &[ledger_events::EventType::InvoiceCreated],
        window,
    )
    .await
}

/// The bodies of the merchant's events of `types` among the newest `window` events of the
/// log, oldest first.
pub async fn recent_events(
    js: &async_nats::jetstream::Context,
    merchant: &str,
    types: &[ledger_events::EventType],
    window: u64,
) -> anyhow::Result<Vec<bytes::Bytes>> {
    use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
    use futures::StreamExt;
    let mut stream = js.get_stream(ledger_events::STREAM_NAME).await?;
    let last = stream.info().await?.state.last_sequence;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subjects: types
                .iter()
                .map(|t| ledger_events::subject(merchant, *t))
                .collect(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: last.saturating_sub(window).max(1),
            },
            ..Default::default()
        })
        .await?;
    let pending = consumer.cached_info().num_pending as usize;
    let mut messages = consumer.messages().await?.take(pending);
    let mut bodies = Vec::with_capacity(pending);
    while let Some(message) = messages.next().await {
        bodies.push(message?.payload.clone());
    }
    Ok(bodies)
}

/// Reads every kind of reference data from the merchant's Sage business (and the payment
/// methods of the store's recent invoices) and replaces the cached copy.
pub async fn refresh_reference(app: &AppState, merchant: &str) -> anyhow::Result<usize> {
    let mut read = Vec::new();
    for kind in KINDS {
        let items = app
            .sage
            .list_all(merchant, kind, &[("attributes", "all")])
            .await?;
        read.push((kind, choices_from_sage(kind, &items)));
    }
    // The store's own methods: a failure to read the log leaves them out, not the refresh.
    match methods_seen(&app.js, merchant).await {
        Ok(codes) => read.push((
            MAGENTO_METHODS,
            codes
                .into_iter()
                .map(|code| Choice {
                    id: code.clone(),
                    label: code,
                    detail: String::new(),
                })
                .collect(),
        )),
        Err(e) => {
            tracing::warn!(merchant, error = %e, "payment methods of recent invoices not read")
        }
    }
    let mut tx = app.db.begin().await?;
    sqlx::query("DELETE FROM settings_choices WHERE merchant_id = $1")
        .bind(merchant)
        .execute(&mut *tx)
        .await?;
    let mut count = 0;
    for (kind, choices) in read {
        for c in choices {
            sqlx::query(
                "INSERT INTO settings_choices (merchant_id, kind, choice_id, label, detail)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(merchant)
            .bind(kind)
            .bind(&c.id)
            .bind(&c.label)
            .bind(&c.detail)
            .execute(&mut *tx)
            .await?;
            count += 1;
        }
    }
    tx.commit().await?;
    Ok(count)
}

/// Appends one settings change to the gateway's audit trail: who made it and each setting's
/// old and new value.
pub async fn audit_change(
    app: &AppState,
    merchant: &str,
    who: &str,
    changed: &[(String, Value, Value)],
) -> Result<(), sqlx::Error> {
    let now = Utc::now();
    let detail = json!({
        "changed_by": who,
        "changes": changed
            .iter()
            .map(|(k, old, new)| json!({"setting": k, "before": old, "after": new}))
            .collect::<Vec<_>>(),
    });
    let record = ledger_runtime::audit::AuditRecord {
        service: crate::audit::GATEWAY.into(),
        consumer: "portal.settings".into(),
        merchant_id: merchant.into(),
        chain_seq: 0,
        event_id: None,
        subject: None,
        stream_sequence: None,
        delivered: None,
        document_key: Some("settings".into()),
        reference: None,
        sage_number: None,
        outcome: "applied".into(),
        code: Some("settings_changed".into()),
        message: Some(detail.to_string()),
        calls: Vec::new(),
        started_at: now,
        duration_ms: 0,
        recorded_at: now,
    };
    ledger_runtime::audit::AuditLog::new(crate::audit::GATEWAY, app.db.clone())
        .append(record)
        .await
        .map(|_| ())
}

/// The form field a settings JSON pointer refused by the engine's checks belongs to: a
/// payment method's bank account is its row's bank dropdown; any other setting is its own key.
fn form_field_of(pointer: &str, form: &HashMap<String, String>) -> String {
    let mut parts = pointer.trim_start_matches('/').split('/');
    let top = parts.next().unwrap_or_default();
    if top == "payment_methods" {
        if let Some(code) = parts.next() {
            if let Some(i) =
                (0..rows(form, "method_")).find(|i| field(form, &format!("method_{i}")) == code)
            {
                return format!("method_{i}_bank");
            }
        }
    }
    top.to_string()
}

/// The merchant's calendar day in the time zone of their books.
pub(crate) fn today_in(settings: &Value) -> NaiveDate {
    let zone = settings
        .get("timezone")
        .and_then(Value::as_str)
        .and_then(|z| z.parse::<chrono_tz::Tz>().ok())
        .unwrap_or(chrono_tz::Europe::London);
    Utc::now().with_timezone(&zone).date_naive()
}

fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "saved" => "Settings saved: the next document uses them.",
        "unchanged" => "Nothing was changed.",
        "refreshed" => "Choices refreshed from Sage.",
        _ => return None,
    })
}

async fn show(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let session = match page_session(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let error = match q.get("error").map(String::as_str) {
        Some("refresh_failed") => Some("Sage could not be read; the choices are unchanged."),
        _ => None,
    };
    let notice = q.get("notice").and_then(|c| notice_text(c));
    render(&app, &session, None, &[], notice, error).await
}

/// Renders the page from the stored settings, or from `submitted` with `issues` after a
/// refused save.
pub(crate) async fn render(
    app: &AppState,
    session: &crate::portal::Session,
    submitted: Option<&HashMap<String, String>>,
    issues: &[Issue],
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let merchant = &session.merchant;
    let stored = match crate::merchants::settings_of(app, merchant).await {
        Ok(Some(s)) => s,
        Ok(None) => return signed_out("This merchant no longer exists."),
        Err(e) => return unavailable(e),
    };
    let reference = match reference_of(app, merchant).await {
        Ok(r) => r,
        Err(e) => return unavailable(e),
    };
    let view = build_view(
        merchant,
        &session.csrf,
        &stored,
        &reference,
        submitted,
        issues,
        notice,
        error,
    );
    let status = if issues.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    pages::respond(status, None, &view)
}

/// The form's `merchant` field must be the session's: a form from another merchant's page
/// (another browser tab signed in elsewhere) is refused, never applied to this one.
fn same_merchant(form: &HashMap<String, String>, merchant: &str) -> bool {
    form.get("merchant").map(String::as_str) == Some(merchant)
}

/// The session of a settings form: its CSRF token matches and it was shown for the merchant
/// signed in; otherwise the page to answer instead.
pub(crate) async fn settings_form_session(
    app: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<crate::portal::Session, Response> {
    let session = form_session(app, headers, form).await?;
    if !same_merchant(form, &session.merchant) {
        return Err(pages::respond(StatusCode::FORBIDDEN, None, &WrongMerchant));
    }
    Ok(session)
}

/// A settings form for another merchant than the one signed in.
#[derive(Template)]
#[template(path = "portal/settings_refused.html")]
pub struct WrongMerchant;

/// The stored settings and the change the settings form asks for; otherwise the page to
/// answer instead (the form again, naming each refused field).
pub(crate) async fn form_patch(
    app: &AppState,
    session: &crate::portal::Session,
    form: &HashMap<String, String>,
) -> Result<(Value, Value), Response> {
    let merchant = &session.merchant;
    let (stored, reference) = match (
        crate::merchants::settings_of(app, merchant).await,
        reference_of(app, merchant).await,
    ) {
        (Ok(Some(s)), Ok(r)) => (s, r),
        (Ok(None), _) => return Err(signed_out("This merchant no longer exists.")),
        (Err(e), _) | (_, Err(e)) => return Err(unavailable(e)),
    };
    match patch_from_form(form, &stored, &reference, today_in(&stored)) {
        Ok(patch) => Ok((stored, patch)),
        Err(issues) => Err(render(app, session, Some(form), &issues, None, None).await),
    }
}

async fn save(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = match settings_form_session(&app, &headers, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let merchant = session.merchant.clone();
    let (stored, patch) = match form_patch(&app, &session, &form).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let engine = match crate::merchants::settings_issues(&app, &merchant, &patch).await {
        Ok(i) => i,
        Err(e) => return unavailable(e),
    };
    if !engine.is_empty() {
        let issues: Vec<Issue> = engine
            .into_iter()
            .map(|(pointer, reason)| issue(form_field_of(&pointer, &form), reason))
            .collect();
        return render(&app, &session, Some(&form), &issues, None, None).await;
    }
    // Compared with what the engine reads (its defaults for what is not stored), so saving
    // a default that was never stored is not a change.
    let before = effective(&stored);
    let after = overlaid(&before, &patch);
    let changed = changes(&before, &after);
    if changed.is_empty() {
        return redirect("/portal/settings?notice=unchanged");
    }
    let only_changed: Map<String, Value> = changed
        .iter()
        .map(|(k, _, new)| (k.clone(), new.clone()))
        .collect();
    if let Err(e) =
        crate::merchants::merge_settings(&app, &merchant, Value::Object(only_changed)).await
    {
        return unavailable(e);
    }
    let session_ref = session_cookie(&app, &headers)
        .map(|c| hash_key(&c)[..12].to_string())
        .unwrap_or_default();
    let who = format!("merchant portal session {session_ref}");
    if let Err(e) = audit_change(&app, &merchant, &who, &changed).await {
        return unavailable(e);
    }
    tracing::info!(%merchant, settings = ?changed.iter().map(|c| &c.0).collect::<Vec<_>>(), "settings changed in the portal");
    redirect("/portal/settings?notice=saved")
}

async fn refresh(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = match settings_form_session(&app, &headers, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match refresh_reference(&app, &session.merchant).await {
        Ok(n) => {
            tracing::info!(merchant = %session.merchant, choices = n, "Sage reference data refreshed");
            redirect("/portal/settings?notice=refreshed")
        }
        Err(e) => {
            tracing::warn!(merchant = %session.merchant, error = %e, "Sage reference data not refreshed");
            redirect("/portal/settings?error=refresh_failed")
        }
    }
}

/// One option of a dropdown.
pub struct Opt {
    /// The submitted value.
    pub id: String,
    /// What the merchant sees.
    pub label: String,
    /// Whether it is the current choice.
    pub selected: bool,
}

/// One form control: its name, value or options, and the refusal shown beside it.
pub struct Control {
    /// The form field's name (and the element's id).
    pub name: String,
    /// What it is, for the label.
    pub label: String,
    /// The current value (text controls).
    pub value: String,
    /// The options (dropdowns; empty for text controls).
    pub options: Vec<Opt>,
    /// Why the last save refused it.
    pub error: Option<String>,
}

/// One row of the tax map.
pub struct TaxRow {
    /// Magento rate %.
    pub percent: Control,
    /// Magento tax class (empty: any class).
    pub class: Control,
    /// Sage tax rate.
    pub rate: Control,
}

/// One Magento payment method.
pub struct MethodRow {
    /// The Magento code (hidden when known, typed on the empty row).
    pub code: Control,
    /// Whether the code is typed (the row for a method not listed yet).
    pub new: bool,
    /// Sage payment method.
    pub sage: Control,
    /// Sage bank account.
    pub bank: Control,
    /// Name of the net-terms checkbox.
    pub net_terms_name: String,
    /// Whether the method is paid on net terms (after the invoice, outside Magento).
    pub net_terms: bool,
}

/// The settings page.
#[derive(Template)]
#[template(path = "portal/settings.html")]
pub struct SettingsPage<'a> {
    /// The merchant's id (also sent back by every form).
    pub merchant_id: &'a str,
    /// The session's CSRF token.
    pub csrf: &'a str,
    /// The message after an action.
    pub notice: Option<&'a str>,
    /// The error after an action.
    pub error: Option<&'a str>,
    /// The refusals of the last save, as `(field, reason)`.
    pub issues: Vec<(String, String)>,
    /// When the choices were read from Sage ("never" when not yet).
    pub refreshed: String,
    /// Tax map rows (the stored ones and one empty).
    pub tax_rows: Vec<TaxRow>,
    /// Payment methods (the known ones and one empty).
    pub methods: Vec<MethodRow>,
    /// Ledger accounts.
    pub ledgers: Vec<Control>,
    /// Sync policy and books: every other control.
    pub policy: Vec<Control>,
}

fn text_of(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| text_of(Some(x)))
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    }
}

struct Builder<'a> {
    submitted: Option<&'a HashMap<String, String>>,
    issues: &'a [Issue],
}

impl Builder<'_> {
    fn value(&self, name: &str, stored: String) -> String {
        match self.submitted {
            Some(f) => f.get(name).cloned().unwrap_or_default(),
            None => stored,
        }
    }

    fn error(&self, name: &str) -> Option<String> {
        let reasons: Vec<&str> = self
            .issues
            .iter()
            .filter(|i| i.field == name)
            .map(|i| i.reason.as_str())
            .collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    fn text(&self, name: &str, label: &str, stored: String) -> Control {
        Control {
            name: name.into(),
            label: label.into(),
            value: self.value(name, stored),
            options: Vec::new(),
            error: self.error(name),
        }
    }

    /// A dropdown of `choices` with an empty first option; a current value that is not
    /// among them is shown as such (the save then names it).
    fn select(
        &self,
        name: &str,
        label: &str,
        stored: String,
        choices: &[(String, String)],
    ) -> Control {
        let value = self.value(name, stored);
        let mut options = vec![Opt {
            id: String::new(),
            label: "(none)".into(),
            selected: value.is_empty(),
        }];
        options.extend(choices.iter().map(|(id, label)| Opt {
            id: id.clone(),
            label: label.clone(),
            selected: *id == value,
        }));
        if !value.is_empty() && !choices.iter().any(|(id, _)| *id == value) {
            options.push(Opt {
                id: value.clone(),
                label: format!("{value} (not in your Sage business)"),
                selected: true,
            });
        }
        Control {
            name: name.into(),
            label: label.into(),
            value,
            options,
            error: self.error(name),
        }
    }
}

fn sage_choices(reference: &Reference, kind: &str) -> Vec<(String, String)> {
    reference
        .of(kind)
        .iter()
        .map(|c| {
            let label = match kind {
                "bank_accounts" if !c.detail.is_empty() => format!("{} ({})", c.label, c.detail),
                _ => c.label.clone(),
            };
            (c.id.clone(), label)
        })
        .collect()
}

fn fixed(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(id, label)| (id.to_string(), label.to_string()))
        .collect()
}

/// The page's view of the stored settings (engine defaults for what is not stored), or of a
/// refused submission with its issues.
#[allow(clippy::too_many_arguments)]
fn build_view<'a>(
    merchant_id: &'a str,
    csrf: &'a str,
    stored: &Value,
    reference: &Reference,
    submitted: Option<&HashMap<String, String>>,
    issues: &[Issue],
    notice: Option<&'a str>,
    error: Option<&'a str>,
) -> SettingsPage<'a> {
    let settings = effective(stored);
    let b = Builder { submitted, issues };
    let tax_choices = sage_choices(reference, "tax_rates");
    let home: Vec<&Value> = settings
        .get("tax_rates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| is_home_row(r))
        .collect();
    let tax_count = match submitted {
        Some(f) => rows(f, "tax_percent_"),
        None => home.len() + 1,
    };
    let tax_rows = (0..tax_count)
        .map(|i| {
            let row = home.get(i);
            TaxRow {
                percent: b.text(
                    &format!("tax_percent_{i}"),
                    "Magento rate %",
                    text_of(row.and_then(|r| r.get("percent"))),
                ),
                class: b.text(
                    &format!("tax_class_{i}"),
                    "Tax class",
                    text_of(row.and_then(|r| r.get("tax_class"))),
                ),
                rate: b.select(
                    &format!("tax_rate_{i}"),
                    "Sage tax rate",
                    text_of(row.and_then(|r| r.get("tax_rate_id"))),
                    &tax_choices,
                ),
            }
        })
        .collect();

    let mapped = settings
        .get("payment_methods")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let paid_later = string_list_of(&settings, "paid_later_methods");
    let mut known: BTreeSet<String> = mapped.keys().cloned().collect();
    known.extend(paid_later.iter().cloned());
    known.extend(string_list_of(&settings, "prepaid_offline_methods"));
    known.extend(reference.of(MAGENTO_METHODS).iter().map(|c| c.id.clone()));
    let codes: Vec<String> = match submitted {
        Some(f) => (0..rows(f, "method_"))
            .map(|i| field(f, &format!("method_{i}")).to_string())
            .collect(),
        None => known.iter().cloned().chain([String::new()]).collect(),
    };
    let method_choices = sage_choices(reference, "payment_methods");
    let bank_choices = sage_choices(reference, "bank_accounts");
    let methods = codes
        .iter()
        .enumerate()
        .map(|(i, code)| {
            let entry = mapped.get(code);
            let bank = entry
                .and_then(|e| e.get("bank_account_ids"))
                .and_then(Value::as_object)
                .and_then(|banks| banks.values().next())
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let net_name = format!("method_{i}_net_terms");
            MethodRow {
                code: b.text(
                    &format!("method_{i}"),
                    "Magento payment method",
                    code.clone(),
                ),
                new: !known.contains(code),
                sage: b.select(
                    &format!("method_{i}_sage"),
                    "Sage payment method",
                    text_of(entry.and_then(|e| e.get("payment_method_id"))),
                    &method_choices,
                ),
                bank: b.select(
                    &format!("method_{i}_bank"),
                    "Bank account",
                    bank,
                    &bank_choices,
                ),
                net_terms: match submitted {
                    Some(f) => field(f, &net_name) == "on",
                    None => paid_later.contains(code),
                },
                net_terms_name: net_name,
            }
        })
        .collect();

    let ledger_choices = sage_choices(reference, "ledger_accounts");
    let ledgers = LEDGER_FIELDS
        .iter()
        .map(|(key, label)| b.select(key, label, text_of(settings.get(*key)), &ledger_choices))
        .collect();
    let zones: Vec<(String, String)> = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|z| (z.name().to_string(), z.name().to_string()))
        .collect();
    let policy = POLICY_FIELDS
        .iter()
        .map(|(key, label, choices)| {
            let stored = text_of(settings.get(*key));
            match choices {
                Some(choices) => b.select(key, label, stored, &fixed(choices)),
                None if *key == "timezone" => b.select(key, label, stored, &zones),
                None => b.text(key, label, stored),
            }
        })
        .collect();
    SettingsPage {
        merchant_id,
        csrf,
        notice,
        error,
        issues: issues
            .iter()
            .map(|i| (i.field.clone(), i.reason.clone()))
            .collect(),
        refreshed: reference
            .refreshed
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "never".into()),
        tax_rows,
        methods,
        ledgers,
        policy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> Reference {
        let c = |id: &str, detail: &str| Choice {
            id: id.into(),
            label: id.into(),
            detail: detail.into(),
        };
        let mut r = Reference::default();
        r.kinds.insert(
            "tax_rates".into(),
            vec![
                c("GB_STANDARD", "20"),
                c("GB_LOWER", "5"),
                c("GB_ZERO", "0"),
            ],
        );
        r.kinds.insert(
            "ledger_accounts".into(),
            vec![c("la4000", "4000"), c("la4905", "4905")],
        );
        r.kinds.insert(
            "bank_accounts".into(),
            vec![c("bankgbp", "GBP"), c("bankeur", "EUR")],
        );
        r.kinds.insert(
            "payment_methods".into(),
            vec![c("CREDIT_DEBIT", ""), c("CASH", "")],
        );
        r
    }

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut f: HashMap<String, String> = [
            ("due_days", "30"),
            ("timezone", "Europe/London"),
            ("zero_value_invoices", "skip"),
            ("unpaid_invoices", "post"),
            ("contact_name_priority", "company"),
            ("sales_ledger_account_id", "la4000"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            f.insert(k.to_string(), v.to_string());
        }
        f
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 7).unwrap()
    }

    fn refused(f: &HashMap<String, String>) -> Vec<Issue> {
        patch_from_form(f, &json!({}), &reference(), today()).expect_err("refused")
    }

    #[test]
    fn a_tax_row_maps_a_rate_and_class_and_keeps_rows_the_page_does_not_show() {
        let current = json!({"tax_rates": [
            {"percent": "20", "tax_rate_id": "GB_STANDARD"},
            {"percent": "20", "country": "FR", "tax_rate_id": "FR_20"}
        ]});
        let f = form(&[
            ("tax_percent_0", "20"),
            ("tax_class_0", ""),
            ("tax_rate_0", "GB_STANDARD"),
            ("tax_percent_1", "5.00"),
            ("tax_class_1", "Reduced"),
            ("tax_rate_1", "GB_LOWER"),
        ]);
        let patch = patch_from_form(&f, &current, &reference(), today()).unwrap();
        assert_eq!(
            patch["tax_rates"],
            json!([
                {"percent": "20", "tax_rate_id": "GB_STANDARD"},
                {"percent": "5", "tax_class": "Reduced", "tax_rate_id": "GB_LOWER"},
                {"percent": "20", "country": "FR", "tax_rate_id": "FR_20"}
            ])
        );
        // The engine reads what the page writes.
        let settings: ledger_mapping::MerchantSettings = serde_json::from_value(patch).unwrap();
        assert_eq!(
            settings.tax_rate_id(Decimal::from(5), Some("Reduced")),
            Some("GB_LOWER")
        );
        assert_eq!(settings.tax_rate_id(Decimal::from(5), None), None);
    }

    #[test]
    fn an_unknown_sage_id_is_refused_naming_its_field() {
        let f = form(&[
            ("tax_percent_0", "20"),
            ("tax_rate_0", "GB_MADE_UP"),
            ("sales_ledger_account_id", "la9999"),
            ("method_0", "checkmo"),
            ("method_0_bank", "bank-of-nobody"),
            ("method_1", "paypal"),
            ("method_1_sage", "BARTER"),
        ]);
        let fields: Vec<String> = refused(&f).into_iter().map(|i| i.field).collect();
        assert_eq!(
            fields,
            [
                "tax_rate_0",
                "method_0_bank",
                "method_1_sage",
                "sales_ledger_account_id"
            ]
        );
    }

    #[test]
    fn overlapping_tax_rows_are_refused_naming_the_later_row() {
        let f = form(&[
            ("tax_percent_0", "20"),
            ("tax_rate_0", "GB_STANDARD"),
            ("tax_percent_1", "20.000"),
            ("tax_rate_1", "GB_ZERO"),
        ]);
        let issues = refused(&f);
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].field, "tax_percent_1");
        assert!(issues[0].reason.contains("overlaps row 1"), "{issues:?}");
        // The same rate limited to a class is not an overlap.
        let f = form(&[
            ("tax_percent_0", "20"),
            ("tax_rate_0", "GB_STANDARD"),
            ("tax_percent_1", "20"),
            ("tax_class_1", "Books"),
            ("tax_rate_1", "GB_ZERO"),
        ]);
        assert!(patch_from_form(&f, &json!({}), &reference(), today()).is_ok());
    }

    #[test]
    fn a_cutover_in_the_future_is_refused_and_today_is_accepted() {
        let issues = refused(&form(&[("sync_since", "2026-12-08")]));
        assert_eq!(issues[0].field, "sync_since");
        assert!(issues[0].reason.contains("future"));
        let patch = patch_from_form(
            &form(&[("sync_since", "2026-12-07")]),
            &json!({}),
            &reference(),
            today(),
        )
        .unwrap();
        assert_eq!(patch["sync_since"], "2026-12-07");
        assert_eq!(
            refused(&form(&[("sync_since", "7/12/2026")]))[0].field,
            "sync_since"
        );
    }

    #[test]
    fn allow_lists_due_days_and_percentages_are_checked() {
        let patch = patch_from_form(
            &form(&[("website_ids", "2, 1"), ("store_ids", "")]),
            &json!({}),
            &reference(),
            today(),
        )
        .unwrap();
        assert_eq!(patch["website_ids"], json!([1, 2]));
        assert_eq!(patch["store_ids"], Value::Null);
        let fields = |f| -> Vec<String> { refused(&f).into_iter().map(|i| i.field).collect() };
        assert_eq!(fields(form(&[("website_ids", "1,x")])), ["website_ids"]);
        assert_eq!(fields(form(&[("due_days", "-1")])), ["due_days"]);
        assert_eq!(fields(form(&[("due_days", "366")])), ["due_days"]);
        assert_eq!(
            fields(form(&[
                ("tax_percent_0", "120"),
                ("tax_rate_0", "GB_STANDARD")
            ])),
            ["tax_percent_0"]
        );
        assert_eq!(fields(form(&[("tax_percent_0", "20")])), ["tax_rate_0"]);
    }

    #[test]
    fn a_payment_method_gets_its_bank_by_currency_and_its_net_terms_flag() {
        let current = json!({"paid_later_methods": ["purchaseorder"]});
        let f = form(&[
            ("method_0", "purchaseorder"),
            ("method_1", "checkmo"),
            ("method_1_sage", "CASH"),
            ("method_1_bank", "bankeur"),
            ("method_1_net_terms", "on"),
        ]);
        let patch = patch_from_form(&f, &current, &reference(), today()).unwrap();
        assert_eq!(
            patch["payment_methods"]["checkmo"],
            json!({"payment_method_id": "CASH", "bank_account_ids": {"EUR": "bankeur"}})
        );
        assert_eq!(patch["paid_later_methods"], json!(["checkmo"]));
        let settings: ledger_mapping::MerchantSettings = serde_json::from_value(patch).unwrap();
        assert_eq!(settings.bank_account_id("checkmo", "EUR"), Some("bankeur"));
        assert!(settings.is_paid_later("checkmo"));
        assert!(!settings.is_paid_later("purchaseorder"));
        // checkmo starts as prepaid offline (the engine's default); net terms took it out.
        assert!(!patch_prepaid_has(&f, &current, "checkmo"));
        let bad = refused(&form(&[("method_0", "pay pal")]));
        assert_eq!(bad[0].field, "method_0");
    }

    fn patch_prepaid_has(f: &HashMap<String, String>, current: &Value, code: &str) -> bool {
        let patch = patch_from_form(f, current, &reference(), today()).unwrap();
        patch["prepaid_offline_methods"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == code)
    }

    #[test]
    fn sage_lists_become_choices_with_their_facts() {
        let tax = choices_from_sage(
            "tax_rates",
            &[json!({"id": "GB_LOWER", "displayed_as": "Lower 5.00%", "percentage": "5.0"})],
        );
        assert_eq!(tax[0].detail, "5.0");
        let bank = choices_from_sage(
            "bank_accounts",
            &[
                json!({"id": "b1", "displayed_as": "Current", "currency": {"id": "gbp"}}),
                json!({"no": "id"}),
            ],
        );
        assert_eq!(bank.len(), 1);
        assert_eq!(bank[0].detail, "GBP");
        let ledger = choices_from_sage(
            "ledger_accounts",
            &[json!({"id": "l1", "displayed_as": "Sales Type A", "nominal_code": 4000})],
        );
        assert_eq!(ledger[0].label, "4000 Sales Type A");
    }

    #[test]
    fn changes_name_each_setting_with_its_old_and_new_value() {
        let c = changes(
            &json!({"due_days": 30, "timezone": "Europe/London"}),
            &json!({"due_days": 14, "timezone": "Europe/London", "reference_prefix": "WEB-"}),
        );
        assert_eq!(
            c,
            vec![
                ("due_days".into(), json!(30), json!(14)),
                ("reference_prefix".into(), Value::Null, json!("WEB-")),
            ]
        );
    }

    #[test]
    fn the_page_offers_sage_choices_and_names_each_refused_field_escaped() {
        let stored = json!({"tax_rates": [{"percent": "20", "tax_rate_id": "GB_STANDARD"}], "sales_ledger_account_id": "gone"});
        let html = build_view(
            "shop",
            "c0ffee",
            &stored,
            &reference(),
            None,
            &[],
            None,
            None,
        )
        .render()
        .unwrap();
        assert!(
            html.contains(r#"<option value="GB_STANDARD" selected>"#),
            "{html}"
        );
        assert!(
            html.contains(r#"name="tax_rate_1""#),
            "an empty row to add one"
        );
        assert!(html.contains("gone (not in your Sage business)"));
        assert!(html.contains(r#"name="csrf" value="c0ffee""#));
        assert!(html.contains(r#"name="merchant" value="shop""#));
        let f = form(&[("tax_percent_0", "<b>"), ("tax_rate_0", "GB_STANDARD")]);
        let issues = refused(&f);
        let html = build_view(
            "shop",
            "c0ffee",
            &stored,
            &reference(),
            Some(&f),
            &issues,
            None,
            None,
        )
        .render()
        .unwrap();
        assert!(html.contains(r#"data-error-for="tax_percent_0""#), "{html}");
        assert!(
            html.contains("&#60;b&#62;") || html.contains("&lt;b&gt;"),
            "escaped: {html}"
        );
        assert!(!html.contains("<b>"));
    }

    #[test]
    fn an_invoice_names_its_payment_method_and_odd_codes_are_left_out() {
        let body = |method: Value| {
            serde_json::to_vec(&json!({"payload": {"order": {"payment": {"method": method}}}}))
                .unwrap()
        };
        assert_eq!(
            method_of_invoice(&body(json!("stripe_payments"))),
            Some("stripe_payments".into())
        );
        assert_eq!(method_of_invoice(&body(json!("<b>x</b>"))), None);
        assert_eq!(method_of_invoice(&body(json!(""))), None);
        assert_eq!(method_of_invoice(&body(json!(7))), None);
        assert_eq!(method_of_invoice(b"not json"), None);
    }

    #[test]
    fn an_engine_refusal_is_shown_beside_its_control() {
        let f = form(&[("method_0", "checkmo"), ("method_1", "paypal")]);
        assert_eq!(
            form_field_of("/payment_methods/paypal/bank_account_ids/EUR", &f),
            "method_1_bank"
        );
        assert_eq!(form_field_of("/timezone", &f), "timezone");
        assert_eq!(
            form_field_of("/payment_methods/other/x", &f),
            "payment_methods"
        );
    }

    #[test]
    fn settings_the_form_does_not_carry_are_left_alone() {
        let mut f = HashMap::new();
        f.insert("due_days".to_string(), "14".to_string());
        let patch = patch_from_form(&f, &json!({}), &reference(), today()).unwrap();
        assert_eq!(patch, json!({"due_days": 14}));
    }

    #[test]
    fn only_the_signed_in_merchants_form_is_taken() {
        let mut f = form(&[("merchant", "shop-a")]);
        assert!(same_merchant(&f, "shop-a"));
        assert!(!same_merchant(&f, "shop-b"));
        f.remove("merchant");
        assert!(!same_merchant(&f, "shop-a"));
    }
}
