//! Sync policy: which Magento documents a merchant wants in Sage, and how they are named
//! there.
//!
//! Every rule is a pure decision on the event's facts and [`MerchantSettings`]: post the
//! document, or skip it with one stable reason code (see [`crate::reasons`]). The settings
//! live with the others in [`MerchantSettings`] (all optional, so stored settings written
//! before the policy existed still load and keep today's behaviour):
//!
//! | setting | default | a document is skipped when |
//! |---|---|---|
//! | `sync_since` | none | its books' day is before this date (`before_cutover`) |
//! | `website_ids` | all | the event's website is not listed (`website_not_synced`) |
//! | `store_ids` | all | the event's store view is not listed (`store_not_synced`) |
//! | `zero_value_invoices` | `skip` | an invoice's grand total is 0.00 (`zero_value`); `post` sends it |
//! | `unpaid_invoices` | `post` | `skip`: an invoice is open, not captured, when created (`unpaid_at_creation`) |
//!
//! Two product settings decide what a product becomes rather than whether it is posted:
//! `stock_items` (default off) makes managed-stock simple products Sage stock items, and
//! `opening_stock` (default off) adds their Magento quantity as one opening movement
//! (refused as `no_cost_price` without a `cost`); see [`crate::map_opening_stock`].
//!
//! `reference_prefix` and `contact_name_priority` change what Sage shows, not what is
//! posted: [`prefixed_reference`] and [`crate::Party::display_name`].

use crate::error::{reasons, MappingError};
use crate::rules::DOCUMENT_REFERENCE_MAX;
use crate::settings::MerchantSettings;
use chrono::NaiveDate;
use ledger_events::{CreditMemoSnapshot, InvoiceSnapshot, InvoiceState, SalesDocument};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest `reference_prefix` accepted, in characters: with Magento's nine-digit numbers
/// a prefixed credit note reference ("CM/INV") still fits Sage's 25 characters.
pub const REFERENCE_PREFIX_MAX: usize = 10;

/// Characters a `reference_prefix` may end with: a separator keeps the Magento number
/// readable and lets a document be recognised under any earlier prefix
/// ([`is_reference_of_number`]).
pub const REFERENCE_PREFIX_SEPARATORS: [char; 4] = ['-', '_', '.', '#'];

/// What happens to an invoice whose grand total is 0.00 (a fully discounted order, a
/// free sample).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ZeroValueInvoices {
    /// Not posted: it moves no money and no VAT (`zero_value`, not listed as held).
    #[default]
    Skip,
    /// Posted like any other invoice, so Sage has a record of the free order.
    Post,
}

/// What happens to an invoice that Magento created without taking the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UnpaidInvoices {
    /// Posted when created; its payment follows when Magento captures it.
    #[default]
    Post,
    /// Skipped (`unpaid_at_creation`): only invoices paid when created reach Sage.
    Skip,
}

/// Which name becomes the Sage contact's `name` when the billing address names both a
/// company and a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ContactNamePriority {
    /// The company ("Analytical Engines Ltd"); the person is the contact person.
    #[default]
    Company,
    /// The person ("Ada Lovelace"); the company goes to the contact's notes.
    Person,
}

/// The facts of one document the policy decides on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DocumentFacts<'a> {
    /// `"invoice"` or `"credit memo"`, for the detail.
    pub kind: &'a str,
    /// Magento document number.
    pub number: &'a str,
    /// The event's Magento website.
    pub website_id: u32,
    /// The event's Magento store view.
    pub store_id: u32,
    /// The document's day in the books ([`crate::sage_date`]).
    pub date: NaiveDate,
}

/// Rule "only the websites, store views and dates the merchant syncs": `Ok(())` or
/// `Skipped` with `website_not_synced`, `store_not_synced` or `before_cutover` (checked
/// in that order). The same for invoices and credit memos.
pub fn scope_decision(
    settings: &MerchantSettings,
    facts: &DocumentFacts<'_>,
) -> Result<(), MappingError> {
    let DocumentFacts {
        kind,
        number,
        website_id,
        store_id,
        date,
    } = *facts;
    if let Some(allowed) = &settings.website_ids {
        if !allowed.contains(&website_id) {
            return Err(MappingError::skipped(
                reasons::WEBSITE_NOT_SYNCED,
                format!("{kind} {number} is from website {website_id}, which is not in website_ids {allowed:?}"),
            ));
        }
    }
    if let Some(allowed) = &settings.store_ids {
        if !allowed.contains(&store_id) {
            return Err(MappingError::skipped(
                reasons::STORE_NOT_SYNCED,
                format!("{kind} {number} is from store view {store_id}, which is not in store_ids {allowed:?}"),
            ));
        }
    }
    if let Some(since) = settings.sync_since {
        if date < since {
            return Err(MappingError::skipped(
                reasons::BEFORE_CUTOVER,
                format!("{kind} {number} is dated {date}, before sync_since {since}: kept in Sage outside Ledger"),
            ));
        }
    }
    Ok(())
}

/// The whole policy for an `invoice.created` event of website `website_id` (the
/// envelope's): [`scope_decision`] on the invoice's books' day and the envelope's store,
/// then the zero-value and unpaid rules.
///
/// "Unpaid at creation" is exact: the snapshot's `state` is open (1), i.e. Magento created
/// the invoice without capturing the money ("Not Capture", or an authorisation captured
/// later). An invoice of an offline method is paid (2) when created and is not affected.
pub fn invoice_decision(
    snapshot: &InvoiceSnapshot,
    website_id: u32,
    store_id: u32,
    settings: &MerchantSettings,
) -> Result<(), MappingError> {
    let inv = &snapshot.invoice;
    let facts = DocumentFacts {
        kind: "invoice",
        number: &inv.increment_id,
        website_id,
        store_id,
        date: settings.accounting_date(inv.created_at)?,
    };
    scope_decision(settings, &facts)?;
    if settings.zero_value_invoices == ZeroValueInvoices::Skip
        && crate::round2(inv.grand_total).is_zero()
    {
        return Err(MappingError::skipped(
            reasons::ZERO_VALUE,
            format!(
                "invoice {} has a grand total of 0.00 {}: nothing to post",
                inv.increment_id,
                inv.document_currency()
            ),
        ));
    }
    if settings.unpaid_invoices == UnpaidInvoices::Skip && inv.state == InvoiceState::Open {
        return Err(MappingError::skipped(
            reasons::UNPAID_AT_CREATION,
            format!(
                "invoice {} was created open (payment not captured), and unpaid_invoices is skip",
                inv.increment_id
            ),
        ));
    }
    Ok(())
}

/// [`scope_decision`] for a `creditmemo.created` event (its own date, website and store).
pub fn credit_memo_decision(
    snapshot: &CreditMemoSnapshot,
    website_id: u32,
    store_id: u32,
    settings: &MerchantSettings,
) -> Result<(), MappingError> {
    let cm = &snapshot.creditmemo;
    scope_decision(
        settings,
        &DocumentFacts {
            kind: "credit memo",
            number: &cm.increment_id,
            website_id,
            store_id,
            date: settings.accounting_date(cm.created_at)?,
        },
    )
}

/// True for the codes of documents skipped by the merchant's policy rather than held for a
/// fix: a credit memo of such an invoice is skipped with the invoice's own code.
pub fn is_policy_skip(reason: &str) -> bool {
    matches!(
        reason,
        reasons::BEFORE_CUTOVER
            | reasons::WEBSITE_NOT_SYNCED
            | reasons::STORE_NOT_SYNCED
            | reasons::UNPAID_AT_CREATION
    )
}

/// Whether a skip reason is a hold: the document waits for something the merchant can fix or
/// release (a tax rate mapping, a locked period, a bank account, its invoice), as opposed to a
/// document kept out of Sage for good. Backfill reports count holds apart.
pub fn is_hold(reason: &str) -> bool {
    matches!(
        reason,
        reasons::UNMAPPED_TAX_RATE
            | reasons::UNMAPPED_FOREIGN_VAT
            | reasons::PERIOD_LOCKED
            | reasons::BASE_CURRENCY_MISMATCH
            | reasons::INVOICE_HELD
            | reasons::ORIGINAL_INVOICE_HELD
            | reasons::NO_BANK_ACCOUNT
            | reasons::BANK_ACCOUNT_CURRENCY
    )
}

/// Rule "a credit memo follows its invoice's decision": the credit memo of an invoice that
/// was not posted (`invoice_key`, skipped with `invoice_reason` and `invoice_detail`).
///
/// A policy skip ([`is_policy_skip`]) is passed on with the same code (the invoice was
/// kept out of Sage on purpose, so is its refund); any other reason holds the credit memo
/// as `original_invoice_held` until the invoice is released. Either way the detail names
/// the invoice and its reason.
pub fn follow_invoice(
    invoice_key: &str,
    invoice_reason: &str,
    invoice_detail: &str,
) -> MappingError {
    if is_policy_skip(invoice_reason) {
        MappingError::skipped(
            invoice_reason,
            format!(
                "follows its invoice {invoice_key}, skipped as {invoice_reason}: {invoice_detail}"
            ),
        )
    } else {
        MappingError::skipped(
            reasons::ORIGINAL_INVOICE_HELD,
            format!(
                "its invoice {invoice_key} was held ({invoice_reason}: {invoice_detail}); release the invoice first"
            ),
        )
    }
}

/// The Sage reference of a document: `prefix` + `reference` (the Magento number, already
/// cut to 25 characters). When the two together would pass Sage's 25 characters the
/// prefix is left off, so the number is never cut to make room for it.
pub fn prefixed_reference(prefix: &str, reference: &str) -> String {
    let prefix = prefix.trim();
    if prefix.chars().count() + reference.chars().count() > DOCUMENT_REFERENCE_MAX {
        return reference.to_owned();
    }
    format!("{prefix}{reference}")
}

/// Rule "a prefix change never doubles a document": whether Sage `reference` is Magento
/// number `number` under any prefix, today's, an earlier one or none. True when the
/// reference is the number, or ends with it after a prefix ending in one of
/// [`REFERENCE_PREFIX_SEPARATORS`] (or the `-` of an unlinked credit note's `CM-`).
pub fn is_reference_of_number(reference: &str, number: &str) -> bool {
    let reference = reference.trim();
    if number.is_empty() {
        return false;
    }
    if reference == number {
        return true;
    }
    match reference.strip_suffix(number) {
        Some(prefix) => {
            prefix.chars().count() <= REFERENCE_PREFIX_MAX + "CM-".len()
                && prefix.ends_with(REFERENCE_PREFIX_SEPARATORS)
        }
        None => false,
    }
}

/// The issues with the policy fields in a settings patch, as `(JSON pointer, reason)`;
/// empty when there are none. Absent and `null` fields are fine (the default).
pub fn policy_setting_issues(patch: &Value) -> Vec<(String, String)> {
    let mut issues = Vec::new();
    let mut issue =
        |field: &str, reason: &str| issues.push((format!("/{field}"), reason.to_owned()));
    let present = |key: &str| patch.get(key).filter(|v| !v.is_null());
    if let Some(v) = present("sync_since") {
        if v.as_str()
            .and_then(|d| NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok())
            .is_none()
        {
            issue("sync_since", "a date such as 2026-01-01");
        }
    }
    for key in ["website_ids", "store_ids"] {
        if let Some(v) = present(key) {
            let ids_ok = v.as_array().is_some_and(|ids| {
                ids.iter()
                    .all(|i| i.as_u64().is_some_and(|i| u32::try_from(i).is_ok()))
            });
            if !ids_ok {
                issue(key, "a list of Magento ids (whole numbers from 0)");
            }
        }
    }
    let choices: [(&str, [&str; 2]); 3] = [
        ("zero_value_invoices", ["skip", "post"]),
        ("unpaid_invoices", ["post", "skip"]),
        ("contact_name_priority", ["company", "person"]),
    ];
    for (key, allowed) in choices {
        if let Some(v) = present(key) {
            if !v.as_str().is_some_and(|s| allowed.contains(&s)) {
                issue(key, &format!("{} or {}", allowed[0], allowed[1]));
            }
        }
    }
    if let Some(v) = present("reference_prefix") {
        if let Err(reason) = v.as_str().ok_or("a string").and_then(check_prefix) {
            issue("reference_prefix", reason);
        }
    }
    for key in ["stock_items", "opening_stock"] {
        if present(key).is_some_and(|v| !v.is_boolean()) {
            issue(key, "true or false");
        }
    }
    issues
}

/// Why a reference prefix is refused, if it is.
fn check_prefix(prefix: &str) -> Result<(), &'static str> {
    if prefix.is_empty() {
        return Ok(());
    }
    if prefix.chars().count() > REFERENCE_PREFIX_MAX {
        return Err("at most 10 characters");
    }
    if !prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || REFERENCE_PREFIX_SEPARATORS.contains(&c))
    {
        return Err("letters, digits and - _ . # only");
    }
    if !prefix.ends_with(REFERENCE_PREFIX_SEPARATORS) {
        return Err("must end with - _ . or # (e.g. WEB-)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn scope_table() {
        let mut s = MerchantSettings {
            website_ids: Some(vec![1]),
            store_ids: Some(vec![1, 3]),
            sync_since: Some(day("2026-01-01")),
            ..MerchantSettings::default()
        };
        let facts = |website_id, store_id, date: &str| DocumentFacts {
            kind: "invoice",
            number: "000000042",
            website_id,
            store_id,
            date: day(date),
        };
        let table = [
            (facts(1, 1, "2026-01-01"), None),
            (facts(1, 3, "2026-06-30"), None),
            (facts(2, 1, "2026-01-01"), Some(reasons::WEBSITE_NOT_SYNCED)),
            (facts(2, 2, "2025-01-01"), Some(reasons::WEBSITE_NOT_SYNCED)),
            (facts(1, 2, "2026-01-01"), Some(reasons::STORE_NOT_SYNCED)),
            (facts(1, 1, "2025-12-31"), Some(reasons::BEFORE_CUTOVER)),
        ];
        for (f, want) in table {
            let got = scope_decision(&s, &f).err();
            assert_eq!(got.as_ref().map(|e| e.reason()), want, "{f:?}");
        }
        // The default syncs everything.
        assert_eq!(
            scope_decision(&MerchantSettings::default(), &facts(9, 9, "1999-01-01")),
            Ok(())
        );
        // An empty allow-list syncs nothing.
        s.website_ids = Some(vec![]);
        assert_eq!(
            scope_decision(&s, &facts(1, 1, "2026-01-01"))
                .unwrap_err()
                .reason(),
            reasons::WEBSITE_NOT_SYNCED
        );
    }

    #[test]
    fn cutover_detail_names_both_dates() {
        let s = MerchantSettings {
            sync_since: Some(day("2026-01-01")),
            ..MerchantSettings::default()
        };
        let f = DocumentFacts {
            kind: "credit memo",
            number: "000000007",
            website_id: 1,
            store_id: 1,
            date: day("2025-12-31"),
        };
        match scope_decision(&s, &f) {
            Err(MappingError::Skipped { detail, .. }) => {
                assert!(detail.contains("credit memo 000000007"), "{detail}");
                assert!(
                    detail.contains("2025-12-31") && detail.contains("2026-01-01"),
                    "{detail}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn credit_memo_follows_its_invoice() {
        let table = [
            (reasons::BEFORE_CUTOVER, reasons::BEFORE_CUTOVER),
            (reasons::WEBSITE_NOT_SYNCED, reasons::WEBSITE_NOT_SYNCED),
            (reasons::STORE_NOT_SYNCED, reasons::STORE_NOT_SYNCED),
            (reasons::UNPAID_AT_CREATION, reasons::UNPAID_AT_CREATION),
            // A zero invoice's credit memo that refunds money is held, as before.
            (reasons::ZERO_VALUE, reasons::ORIGINAL_INVOICE_HELD),
            (reasons::UNMAPPED_TAX_RATE, reasons::ORIGINAL_INVOICE_HELD),
            (reasons::PERIOD_LOCKED, reasons::ORIGINAL_INVOICE_HELD),
        ];
        for (invoice_reason, want) in table {
            let e = follow_invoice("invoice:1:000000042", invoice_reason, "why");
            assert_eq!(e.reason(), want, "{invoice_reason}");
            match e {
                MappingError::Skipped { detail, .. } => {
                    assert!(detail.contains("invoice:1:000000042"), "{detail}");
                    assert!(detail.contains(invoice_reason), "{detail}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn prefixed_references() {
        let table = [
            ("", "000001042", "000001042"),
            ("WEB-", "000001042", "WEB-000001042"),
            (" WEB- ", "000001042", "WEB-000001042"),
            ("WEB-", "000000002/000000001", "WEB-000000002/000000001"),
            // 4 + 22 > 25: the number wins, the prefix is left off.
            ("WEB-", "0000000000000000000001", "0000000000000000000001"),
            ("WEB-", "000000000000000000001", "WEB-000000000000000000001"),
        ];
        for (prefix, reference, want) in table {
            let got = prefixed_reference(prefix, reference);
            assert_eq!(got, want, "{prefix:?} {reference}");
            assert!(got.chars().count() <= DOCUMENT_REFERENCE_MAX);
        }
    }

    #[test]
    fn a_number_is_recognised_under_any_prefix() {
        let table = [
            ("000001042", "000001042", true),
            ("WEB-000001042", "000001042", true),
            ("B2B_000001042", "000001042", true),
            ("SHOP.000001042", "000001042", true),
            ("CM-000001042", "000001042", true),
            // Another number that ends the same way, or a prefix without a separator.
            ("1000001042", "000001042", false),
            ("A000001042", "000001042", false),
            ("000001042-2", "000001042", false),
            ("WEB-000001043", "000001042", false),
            ("", "000001042", false),
            ("000001042", "", false),
            // A prefix longer than any accepted one is some other document.
            ("SOMEONE-ELSEWHERE-000001042", "000001042", false),
        ];
        for (reference, number, want) in table {
            assert_eq!(
                is_reference_of_number(reference, number),
                want,
                "{reference} {number}"
            );
        }
    }

    #[test]
    fn settings_patch_issues() {
        let ok = [
            json!({}),
            json!({"sync_since": "2026-01-01", "website_ids": [1, 2], "store_ids": []}),
            json!({"sync_since": null, "website_ids": null}),
            json!({"zero_value_invoices": "post", "unpaid_invoices": "skip"}),
            json!({"contact_name_priority": "person", "reference_prefix": "WEB-"}),
            json!({"reference_prefix": ""}),
            json!({"stock_items": true, "opening_stock": false}),
        ];
        for patch in ok {
            assert_eq!(policy_setting_issues(&patch), vec![], "{patch}");
        }
        let bad = [
            (json!({"sync_since": "01/01/2026"}), "/sync_since"),
            (json!({"sync_since": 20260101}), "/sync_since"),
            (json!({"website_ids": [1, -1]}), "/website_ids"),
            (json!({"store_ids": "1,2"}), "/store_ids"),
            (json!({"store_ids": [4294967296u64]}), "/store_ids"),
            (
                json!({"zero_value_invoices": "maybe"}),
                "/zero_value_invoices",
            ),
            (json!({"unpaid_invoices": true}), "/unpaid_invoices"),
            (
                json!({"contact_name_priority": "email"}),
                "/contact_name_priority",
            ),
            (json!({"reference_prefix": "WEB"}), "/reference_prefix"),
            (
                json!({"reference_prefix": "WEBSHOP-2026-"}),
                "/reference_prefix",
            ),
            (json!({"reference_prefix": "WE B-"}), "/reference_prefix"),
            (json!({"reference_prefix": "W/B-"}), "/reference_prefix"),
            (json!({"reference_prefix": 7}), "/reference_prefix"),
            (json!({"stock_items": "yes"}), "/stock_items"),
            (json!({"opening_stock": 1}), "/opening_stock"),
        ];
        for (patch, field) in bad {
            let issues = policy_setting_issues(&patch);
            assert_eq!(issues.len(), 1, "{patch}: {issues:?}");
            assert_eq!(issues[0].0, field, "{patch}");
        }
    }

    #[test]
    fn stored_settings_without_policy_keep_todays_behaviour() {
        let s: MerchantSettings = serde_json::from_str(r#"{"due_days":14}"#).unwrap();
        assert_eq!(s.sync_since, None);
        assert_eq!(s.website_ids, None);
        assert_eq!(s.store_ids, None);
        assert_eq!(s.zero_value_invoices, ZeroValueInvoices::Skip);
        assert_eq!(s.unpaid_invoices, UnpaidInvoices::Post);
        assert_eq!(s.reference_prefix, "");
        assert_eq!(s.contact_name_priority, ContactNamePriority::Company);
        assert!(!s.stock_items && !s.opening_stock);
        let s: MerchantSettings = serde_json::from_value(json!({
            "sync_since": "2026-01-01", "website_ids": [1], "store_ids": [1, 2],
            "zero_value_invoices": "post", "unpaid_invoices": "skip",
            "reference_prefix": "WEB-", "contact_name_priority": "person"
        }))
        .unwrap();
        assert_eq!(s.sync_since, Some(day("2026-01-01")));
        assert_eq!(s.store_ids, Some(vec![1, 2]));
        assert_eq!(s.zero_value_invoices, ZeroValueInvoices::Post);
        assert_eq!(s.unpaid_invoices, UnpaidInvoices::Skip);
        assert_eq!(s.contact_name_priority, ContactNamePriority::Person);
        let back: MerchantSettings =
            serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}
