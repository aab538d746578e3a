//! Locked periods: Sage refuses documents and payments dated before the business's
//! `accounts_start_date` or on or before its `year_end_lockdown_date` (`GET
//! /financial_settings`). [`open_period_date`] decides, from the date the mapping chose, the
//! two dates and the merchant's [`LockedPeriod`] setting, whether the date goes to Sage as it
//! is, is moved to the first open day (with a note naming the Magento date), or the document is
//! held with reason [`reasons::PERIOD_LOCKED`](crate::reasons::PERIOD_LOCKED).

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{reasons, MappingError};

/// The settings key of [`LockedPeriod`].
pub const LOCKED_PERIOD_SETTING: &str = "locked_period";

/// Longest `notes` Sage keeps on an invoice or credit note.
const NOTES_MAX: usize = 2000;

/// What to do with a document or payment dated in a period Sage has locked
/// (merchant setting `locked_period`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockedPeriod {
    /// Hold it (`period_locked`, with the dates in the detail) until the merchant decides:
    /// the default, because re-dating moves revenue and VAT into another period, which only
    /// the merchant's accountant can agree to, and a held document can still be released.
    #[default]
    Hold,
    /// Date it on the first open day and keep the Magento date in its notes.
    MoveToFirstOpenDay,
}

impl LockedPeriod {
    /// The merchant's setting from the raw settings document: absent or `null` is
    /// [`LockedPeriod::Hold`]; anything but the two names is refused naming
    /// `settings.locked_period`.
    pub fn from_settings(raw: &Value) -> Result<Self, MappingError> {
        match raw.get(LOCKED_PERIOD_SETTING) {
            None | Some(Value::Null) => Ok(LockedPeriod::default()),
            Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
                MappingError::invalid(
                    format!("settings.{LOCKED_PERIOD_SETTING}"),
                    "not_hold_or_move_to_first_open_day",
                )
            }),
        }
    }
}

/// The business's open period as Sage's `financial_settings` state it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenPeriod {
    /// Nothing may be dated before this day.
    pub accounts_start_date: Option<NaiveDate>,
    /// Nothing may be dated on or before this day.
    pub year_end_lockdown_date: Option<NaiveDate>,
}

impl OpenPeriod {
    /// Reads the two dates from a `GET /financial_settings` answer; a missing, `null` or
    /// empty date means no limit, an unreadable one is refused naming the field.
    pub fn from_financial_settings(body: &Value) -> Result<Self, MappingError> {
        let date = |field: &str| -> Result<Option<NaiveDate>, MappingError> {
            match body.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
                Some(Value::String(s)) => NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                    .map(Some)
                    .map_err(|_| {
                        MappingError::invalid(
                            format!("financial_settings.{field}"),
                            reasons::MALFORMED,
                        )
                    }),
                Some(_) => Err(MappingError::invalid(
                    format!("financial_settings.{field}"),
                    reasons::MALFORMED,
                )),
            }
        };
        Ok(OpenPeriod {
            accounts_start_date: date("accounts_start_date")?,
            year_end_lockdown_date: date("year_end_lockdown_date")?,
        })
    }

    /// The first day Sage accepts: the later of the accounts start date and the day after
    /// the lockdown date (`None` when neither is set: every day is open).
    pub fn first_open_day(&self) -> Option<NaiveDate> {
        let after_lockdown = self
            .year_end_lockdown_date
            .and_then(|d| d.checked_add_days(Days::new(1)));
        match (self.accounts_start_date, after_lockdown) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether Sage accepts `date`.
    pub fn is_open(&self, date: NaiveDate) -> bool {
        self.first_open_day().is_none_or(|first| date >= first)
    }

    /// Why `date` is locked, naming the dates (`None` when it is open).
    pub fn why_locked(&self, date: NaiveDate) -> Option<String> {
        if let Some(lockdown) = self.year_end_lockdown_date {
            if date <= lockdown {
                return Some(format!("period locked in Sage until {lockdown}"));
            }
        }
        match self.accounts_start_date {
            Some(start) if date < start => {
                Some(format!("before Sage's accounts start date {start}"))
            }
            _ => None,
        }
    }
}

/// The date a document or payment goes to Sage with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeriodDate {
    /// The date is in the open period: send it as it is.
    Open(NaiveDate),
    /// The date was locked and is moved to the first open day; `note` keeps the Magento
    /// date for the document's notes.
    Moved {
        /// The first open day.
        date: NaiveDate,
        /// E.g. "Magento date 2025-03-31; period locked in Sage until 2025-03-31".
        note: String,
    },
}

impl PeriodDate {
    /// The date to send.
    pub fn date(&self) -> NaiveDate {
        match self {
            PeriodDate::Open(d) | PeriodDate::Moved { date: d, .. } => *d,
        }
    }
}

/// Decides the date of a document or payment dated `date` (the calendar day the mapping
/// chose) in a business whose open period is `period`, under the merchant's `policy`:
/// open dates pass; a locked date is moved to [`OpenPeriod::first_open_day`] with a note, or
/// held as [`reasons::PERIOD_LOCKED`] with a detail naming the Magento date and Sage's dates.
/// `what` names the record in the detail ("invoice", "receipt", ...).
pub fn open_period_date(
    date: NaiveDate,
    period: &OpenPeriod,
    policy: LockedPeriod,
    what: &str,
) -> Result<PeriodDate, MappingError> {
    let (Some(why), Some(first)) = (period.why_locked(date), period.first_open_day()) else {
        return Ok(PeriodDate::Open(date));
    };
    match policy {
        LockedPeriod::MoveToFirstOpenDay => Ok(PeriodDate::Moved {
            date: first,
            note: format!("Magento date {date}; {why}"),
        }),
        LockedPeriod::Hold => Err(MappingError::skipped(
            reasons::PERIOD_LOCKED,
            format!(
                "{what} dated {date} in Magento: {why}; the first open day is {first}. Unlock the \
                 period in Sage, or set {LOCKED_PERIOD_SETTING} to move_to_first_open_day, then retry"
            ),
        )),
    }
}

/// Applies a moved date to a document body (the fields inside `sales_invoice` /
/// `sales_credit_note`): `date` becomes the first open day, `due_date` moves by the same
/// number of days (so the customer keeps the same terms) and the note is appended to
/// `notes` (kept within Sage's 2,000 characters). An open date leaves the body unchanged.
pub fn move_document_date(body: &mut Value, moved: &PeriodDate) {
    let PeriodDate::Moved { date, note } = moved else {
        return;
    };
    let Some(fields) = body.as_object_mut() else {
        return;
    };
    let read = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
    };
    let old = read(fields.get("date"));
    if let (Some(old), Some(due)) = (old, read(fields.get("due_date"))) {
        let shift = (*date - old).num_days();
        let due = due + chrono::Duration::days(shift);
        fields.insert("due_date".into(), Value::String(due.to_string()));
    }
    fields.insert("date".into(), Value::String(date.to_string()));
    let mut notes = fields
        .get("notes")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    // The note goes first so that a long existing text cannot push it out.
    let joined = if notes.is_empty() {
        note.clone()
    } else {
        notes.insert_str(0, &format!("{note}\n"));
        notes
    };
    let kept: String = joined.chars().take(NOTES_MAX).collect();
    fields.insert("notes".into(), Value::String(kept));
}

/// Applies a moved date to a payment or allocation body: only `date` changes (Sage's
/// `contact_payment` and `contact_allocation` have no notes; the Magento date stays in
/// Ledger's records).
pub fn move_payment_date(body: &mut Value, moved: &PeriodDate) {
    if let (PeriodDate::Moved { date, .. }, Some(fields)) = (moved, body.as_object_mut()) {
        fields.insert("date".into(), Value::String(date.to_string()));
    }
}

/// Whether a Sage refusal is about a document's or payment's `date` (`date`,
/// `sales_invoice.date`, ...; not `due_date` or `original_invoice_date`): the answer Sage
/// gives for a locked period, after which the financial settings are read again.
pub fn is_date_refusal(source: &str) -> bool {
    source == "date" || source.ends_with(".date")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn period(start: Option<&str>, lockdown: Option<&str>) -> OpenPeriod {
        OpenPeriod {
            accounts_start_date: start.map(d),
            year_end_lockdown_date: lockdown.map(d),
        }
    }

    /// (date, start, lockdown, policy, expected date or None = held, note / detail part)
    type Case = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        LockedPeriod,
        Option<&'static str>,
        &'static str,
    );

    #[test]
    fn open_period_date_table() {
        use LockedPeriod::*;
        let cases: &[Case] = &[
            // No limits at all: every date is open.
            ("2019-01-01", None, None, Hold, Some("2019-01-01"), ""),
            // After both dates: open.
            ("2025-04-01", Some("2020-01-01"), Some("2025-03-31"), Hold, Some("2025-04-01"), ""),
            // On the lockdown date: locked ("on or before"), moved to the day after.
            ("2025-03-31", Some("2020-01-01"), Some("2025-03-31"), MoveToFirstOpenDay, Some("2025-04-01"),
             "Magento date 2025-03-31; period locked in Sage until 2025-03-31"),
            // Well inside the locked year: the same first open day.
            ("2024-07-15", Some("2020-01-01"), Some("2025-03-31"), MoveToFirstOpenDay, Some("2025-04-01"),
             "Magento date 2024-07-15; period locked in Sage until 2025-03-31"),
            // Held: the detail names the Magento date, Sage's date and the first open day.
            ("2025-03-31", Some("2020-01-01"), Some("2025-03-31"), Hold, None,
             "invoice dated 2025-03-31 in Magento: period locked in Sage until 2025-03-31; the first open day is 2025-04-01"),
            // The accounts start date itself is open; the day before is not.
            ("2024-01-01", Some("2024-01-01"), None, Hold, Some("2024-01-01"), ""),
            ("2023-12-31", Some("2024-01-01"), None, MoveToFirstOpenDay, Some("2024-01-01"),
             "Magento date 2023-12-31; before Sage's accounts start date 2024-01-01"),
            ("2023-12-31", Some("2024-01-01"), None, Hold, None,
             "before Sage's accounts start date 2024-01-01; the first open day is 2024-01-01"),
            // A start date later than the lockdown's next day wins as the first open day.
            ("2023-06-30", Some("2024-01-01"), Some("2023-06-30"), MoveToFirstOpenDay, Some("2024-01-01"),
             "Magento date 2023-06-30; period locked in Sage until 2023-06-30"),
        ];
        for (date, start, lockdown, policy, want, text) in cases {
            let got = open_period_date(d(date), &period(*start, *lockdown), *policy, "invoice");
            match (want, got) {
                (Some(want), Ok(outcome)) => {
                    assert_eq!(outcome.date(), d(want), "{date} {start:?} {lockdown:?}");
                    match outcome {
                        PeriodDate::Open(_) => assert!(text.is_empty(), "{date}: expected a move"),
                        PeriodDate::Moved { note, .. } => assert_eq!(&note, text),
                    }
                }
                (None, Err(MappingError::Skipped { reason, detail })) => {
                    assert_eq!(reason, reasons::PERIOD_LOCKED);
                    assert!(detail.contains(text), "{detail}");
                }
                (want, got) => panic!("{date}: wanted {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn policy_defaults_to_hold_and_refuses_unknown_names() {
        assert_eq!(
            LockedPeriod::from_settings(&json!({})).unwrap(),
            LockedPeriod::Hold
        );
        assert_eq!(
            LockedPeriod::from_settings(&json!({"locked_period": null})).unwrap(),
            LockedPeriod::Hold
        );
        assert_eq!(
            LockedPeriod::from_settings(&json!({"locked_period": "move_to_first_open_day"}))
                .unwrap(),
            LockedPeriod::MoveToFirstOpenDay
        );
        let e = LockedPeriod::from_settings(&json!({"locked_period": "move"})).unwrap_err();
        assert!(
            matches!(&e, MappingError::Invalid { field, .. } if field == "settings.locked_period"),
            "{e:?}"
        );
    }

    #[test]
    fn financial_settings_are_read_and_bad_dates_named() {
        let p = OpenPeriod::from_financial_settings(
            &json!({"accounts_start_date": "2020-01-01", "year_end_lockdown_date": null}),
        )
        .unwrap();
        assert_eq!(p, period(Some("2020-01-01"), None));
        assert_eq!(p.first_open_day(), Some(d("2020-01-01")));
        let e =
            OpenPeriod::from_financial_settings(&json!({"year_end_lockdown_date": "31/03/2025"}))
                .unwrap_err();
        assert!(
            matches!(&e, MappingError::Invalid { field, .. } if field == "financial_settings.year_end_lockdown_date"),
            "{e:?}"
        );
    }

    #[test]
    fn moved_document_keeps_its_terms_and_names_the_magento_date() {
        let mut body = json!({"date": "2025-03-31", "due_date": "2025-04-30", "notes": "Magento invoice 000000123"});
        let moved = open_period_date(
            d("2025-03-31"),
            &period(Some("2020-01-01"), Some("2025-03-31")),
            LockedPeriod::MoveToFirstOpenDay,
            "invoice",
        )
        .unwrap();
        move_document_date(&mut body, &moved);
        // 30 days' terms: 2025-03-31 + 30 = 2025-04-30; moved one day, 2025-04-01 + 30 = 2025-05-01.
        assert_eq!(body["date"], "2025-04-01");
        assert_eq!(body["due_date"], "2025-05-01");
        assert_eq!(
            body["notes"],
            "Magento date 2025-03-31; period locked in Sage until 2025-03-31\nMagento invoice 000000123"
        );
        // Open: untouched.
        let mut open = json!({"date": "2025-04-02", "due_date": "2025-05-02"});
        move_document_date(&mut open, &PeriodDate::Open(d("2025-04-02")));
        assert_eq!(
            open,
            json!({"date": "2025-04-02", "due_date": "2025-05-02"})
        );
        // Notes stay within Sage's 2,000 characters, the note first.
        let mut long = json!({"date": "2025-03-31", "notes": "x".repeat(2000)});
        move_document_date(&mut long, &moved);
        let notes = long["notes"].as_str().unwrap();
        assert_eq!(notes.chars().count(), 2000);
        assert!(notes.starts_with("Magento date 2025-03-31"));
    }

    #[test]
    fn moved_payment_changes_only_its_date() {
        let mut body = json!({"date": "2025-03-31", "total_amount": "12.00"});
        move_payment_date(
            &mut body,
            &PeriodDate::Moved {
                date: d("2025-04-01"),
                note: "n".into(),
            },
        );
        assert_eq!(body, json!({"date": "2025-04-01", "total_amount": "12.00"}));
    }

    #[test]
    fn date_refusals_are_told_from_other_date_fields() {
        assert!(is_date_refusal("date"));
        assert!(is_date_refusal("sales_invoice.date"));
        assert!(is_date_refusal("contact_payment.date"));
        assert!(!is_date_refusal("sales_invoice.due_date"));
        assert!(!is_date_refusal("sales_credit_note.original_invoice_date"));
    }
}
