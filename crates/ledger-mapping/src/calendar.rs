//! The books' calendar: every date Ledger sends to Sage or records for a later document.
//!
//! Magento stamps documents and payments with UTC instants; Sage dates are plain calendar
//! days in the books. The two disagree for every instant between local midnight and UTC
//! midnight (in London that is the first hour of every summer day; in New York the last
//! four or five hours of every day), so a date taken as the UTC day is a day early or late,
//! and at a quarter end it lands in the wrong VAT quarter. [`sage_date`] is the only place
//! an instant becomes a Sage date: invoice and due dates, credit note dates,
//! `original_invoice_date` (the invoice's own Sage date, recorded when it was posted),
//! receipts, refunds and allocations all go through it.

use crate::error::MappingError;
use chrono::{DateTime, NaiveDate, Utc};

/// The Sage date of a Magento instant: the calendar day `at` falls on in the books' time
/// zone `time_zone` (an IANA name such as `Europe/London`), daylight saving included.
///
/// An unknown or empty time zone is refused as `Invalid { field: "settings.timezone",
/// reason: "unknown_time_zone" }` rather than silently falling back to UTC, because a
/// wrong zone moves documents across days and VAT quarters.
pub fn sage_date(at: DateTime<Utc>, time_zone: &str) -> Result<NaiveDate, MappingError> {
    let tz: chrono_tz::Tz = time_zone
        .trim()
        .parse()
        .map_err(|_| MappingError::invalid("settings.timezone", "unknown_time_zone"))?;
    Ok(at.with_timezone(&tz).date_naive())
}

/// Rule "an allocation is never dated before the documents it joins": the date of the
/// allocation that settles a credit note against its invoice is the latest of the
/// invoice's Sage date, the credit note's Sage date and `settled_on` (the books' day of
/// the credit memo, see [`sage_date`]).
///
/// With one calendar the credit note is normally the latest already; the maximum keeps the
/// allocation valid for documents recorded before that was so (their dates were UTC days)
/// and for a credit note posted with a backdated date.
pub fn allocation_date(
    invoice_date: NaiveDate,
    credit_note_date: NaiveDate,
    settled_on: NaiveDate,
) -> NaiveDate {
    invoice_date.max(credit_note_date).max(settled_on)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn sage_date_is_the_local_day_not_the_utc_day() {
        let table = [
            // 23:30 UTC on 30 June is 00:30 BST on 1 July: the next quarter in the books.
            ((2026, 6, 30, 23, 30), "Europe/London", day(2026, 7, 1)),
            // 23:30 UTC in winter is 23:30 GMT: same day.
            ((2026, 12, 31, 23, 30), "Europe/London", day(2026, 12, 31)),
            // 03:00 UTC on 1 April is 23:00 EDT on 31 March: the previous quarter.
            ((2026, 4, 1, 3, 0), "America/New_York", day(2026, 3, 31)),
            // 04:59 UTC on 1 January is 23:59 EST on 31 December.
            ((2027, 1, 1, 4, 59), "America/New_York", day(2026, 12, 31)),
            // 14:00 UTC on 31 December is 01:00 AEDT on 1 January.
            ((2026, 12, 31, 14, 0), "Australia/Sydney", day(2027, 1, 1)),
            // 13:59 UTC in June is 23:59 AEST: same day.
            ((2026, 6, 30, 13, 59), "Australia/Sydney", day(2026, 6, 30)),
            ((2026, 6, 30, 23, 30), " UTC ", day(2026, 6, 30)),
        ];
        for ((y, mo, d, h, mi), tz, want) in table {
            let at = Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap();
            assert_eq!(sage_date(at, tz).unwrap(), want, "{at} in {tz}");
        }
    }

    #[test]
    fn unknown_time_zone_is_refused_not_guessed() {
        let at = Utc.with_ymd_and_hms(2026, 6, 30, 23, 30, 0).unwrap();
        for tz in ["", "Mars/Olympus", "BST+1"] {
            assert_eq!(
                sage_date(at, tz),
                Err(MappingError::invalid(
                    "settings.timezone",
                    "unknown_time_zone"
                )),
                "{tz:?}"
            );
        }
    }

    #[test]
    fn allocation_is_dated_on_the_latest_of_its_documents() {
        let (a, b, c) = (day(2026, 6, 30), day(2026, 7, 1), day(2026, 7, 2));
        // Usual case: invoice, then credit note, settled the day of the credit memo.
        assert_eq!(allocation_date(a, b, b), b);
        // An invoice recorded a day late (old UTC date) still bounds the allocation.
        assert_eq!(allocation_date(b, a, a), b);
        // A credit note dated after the credit memo's day (recorded later) bounds it too.
        assert_eq!(allocation_date(a, c, b), c);
        // Settled later than both documents: the settling day.
        assert_eq!(allocation_date(a, b, c), c);
    }
}
