//! The books' calendar over real mapped bodies: every Sage date is the local day of its
//! Magento instant, around midnight, in summer and winter time and across both clock
//! changes, in London, New York (west of UTC) and Sydney (southern summer) plus Tokyo.
//!
//! The oracle is a hand-written table of 2026's UTC offsets and clock-change instants
//! (not chrono-tz, which the implementation uses), so the test can disagree with it.

mod common;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use common::{settings, Doc, Line};
use ledger_events::CreditMemoState;
use ledger_mapping::{
    allocation_date, map_allocation, map_customer_receipt, map_refund, map_sales_credit_note,
    map_sales_invoice, sage_date, CreditNoteRef, InvoiceRef, MerchantSettings, OriginalInvoice,
};
use proptest::prelude::*;
use rust_decimal_macros::dec;
use serde_json::{json, Value};

/// A zone of the oracle: its IANA name, standard offset and, when it keeps summer time,
/// the UTC instants summer time starts and ends in 2026 with the summer offset.
struct Zone {
    name: &'static str,
    standard_hours: i64,
    /// (summer offset, first UTC instant of the year's first change, of the second).
    summer: Option<(i64, DateTime<Utc>, DateTime<Utc>)>,
    /// Summer time spans the new year (southern hemisphere): summer before the first
    /// change and after the second.
    southern: bool,
}

fn utc(y: i32, m: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, mi, 0).unwrap()
}

fn zones() -> Vec<Zone> {
    vec![
        // GMT; BST from 01:00 UTC Sun 29 March to 01:00 UTC Sun 25 October 2026.
        Zone {
            name: "Europe/London",
            standard_hours: 0,
            summer: Some((1, utc(2026, 3, 29, 1, 0), utc(2026, 10, 25, 1, 0))),
            southern: false,
        },
        // EST; EDT from 02:00 EST Sun 8 March (07:00 UTC) to 02:00 EDT Sun 1 November
        // (06:00 UTC) 2026.
        Zone {
            name: "America/New_York",
            standard_hours: -5,
            summer: Some((-4, utc(2026, 3, 8, 7, 0), utc(2026, 11, 1, 6, 0))),
            southern: false,
        },
        // AEDT until 03:00 AEDT Sun 5 April (16:00 UTC 4 April), AEST until 02:00 AEST
        // Sun 4 October (16:00 UTC 3 October), then AEDT again.
        Zone {
            name: "Australia/Sydney",
            standard_hours: 10,
            summer: Some((11, utc(2026, 4, 4, 16, 0), utc(2026, 10, 3, 16, 0))),
            southern: true,
        },
        // JST all year.
        Zone {
            name: "Asia/Tokyo",
            standard_hours: 9,
            summer: None,
            southern: false,
        },
    ]
}

impl Zone {
    fn offset_hours(&self, at: DateTime<Utc>) -> i64 {
        match self.summer {
            None => self.standard_hours,
            Some((summer, first, second)) => {
                let between = at >= first && at < second;
                if between != self.southern {
                    summer
                } else {
                    self.standard_hours
                }
            }
        }
    }

    /// The oracle: the calendar day `at` falls on in this zone.
    fn local_day(&self, at: DateTime<Utc>) -> NaiveDate {
        (at + Duration::hours(self.offset_hours(at))).date_naive()
    }

    fn settings(&self) -> MerchantSettings {
        MerchantSettings {
            timezone: self.name.into(),
            ..settings()
        }
    }
}

/// Days around which instants are drawn: quarter ends, both clock changes of each zone,
/// an ordinary summer and winter day, and the new year.
fn anchor_days() -> Vec<NaiveDate> {
    let d = |m, day| NaiveDate::from_ymd_opt(2026, m, day).unwrap();
    vec![
        d(1, 1),
        d(1, 15),
        d(3, 8),
        d(3, 29),
        d(3, 31),
        d(4, 1),
        d(4, 5),
        d(6, 30),
        d(7, 1),
        d(7, 15),
        d(9, 30),
        d(10, 1),
        d(10, 4),
        d(10, 25),
        d(11, 1),
        d(12, 31),
    ]
}

/// An instant within two hours (standard time) of local midnight on an anchor day, or
/// within two hours of one of the zone's clock changes.
fn instant(zone: &Zone, pick: usize, around_change: bool, seconds: i64) -> DateTime<Utc> {
    let centre = match (around_change, zone.summer) {
        (true, Some((_, first, second))) => {
            if pick % 2 == 0 {
                first
            } else {
                second
            }
        }
        _ => {
            let days = anchor_days();
            let day = days[pick % days.len()];
            Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
                - Duration::hours(zone.standard_hours)
        }
    };
    centre + Duration::seconds(seconds)
}

fn date_of(body: &Value, field: &str) -> NaiveDate {
    body[field]
        .as_str()
        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .unwrap_or_else(|| panic!("{field} is not a date in {body}"))
}

fn doc() -> Doc {
    Doc::new(vec![Line::new("Notebook", dec!(2), dec!(10), dec!(20))]).shipping(dec!(5), dec!(20))
}

fn sage_ref(id: &str, total: rust_decimal::Decimal) -> InvoiceRef {
    InvoiceRef {
        sage_id: id.into(),
        contact_id: "CONTACT-1".into(),
        currency: "GBP".into(),
        exchange_rate: dec!(1),
        total,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Invoice, receipt, credit note, refund and allocation of one order, each mapped
    /// with the merchant's zone: every date is the local day of its own instant, the
    /// credit note names the invoice's own Sage date, and the allocation is dated on or
    /// after both documents.
    #[test]
    fn every_sage_date_is_the_local_day_of_its_instant(
        zone_pick in 0usize..4,
        pick in 0usize..64,
        around_change in any::<bool>(),
        seconds in -7200i64..=7200,
        paid_after in 0i64..=7200,
        credited_after in 0i64..=10_800,
    ) {
        let zones = zones();
        let zone = &zones[zone_pick];
        let s = zone.settings();
        let invoiced_at = instant(zone, pick, around_change, seconds);
        let paid_at = invoiced_at + Duration::seconds(paid_after);
        let credited_at = invoiced_at + Duration::seconds(credited_after);
        let d = doc();
        let total = d.computed_grand_total();

        let mut invoice = d.invoice();
        invoice.invoice.created_at = invoiced_at;
        let inv = map_sales_invoice(&invoice, &s, "CONTACT-1").unwrap();
        let inv_date = date_of(&inv.body, "date");
        prop_assert_eq!(inv_date, zone.local_day(invoiced_at), "invoice at {} in {}", invoiced_at, zone.name);
        prop_assert_eq!(inv.date, inv_date, "the plan records the date it sends");
        prop_assert_eq!(
            date_of(&inv.body, "due_date"),
            inv_date + Duration::days(i64::from(s.due_days))
        );

        let mut paid = d.paid(total, Some("txn-1"));
        paid.payment.paid_at = paid_at;
        let receipt = map_customer_receipt(&paid, &sage_ref("SAGE-INV", total), &s, "BANK").unwrap();
        prop_assert_eq!(date_of(&receipt.body, "date"), zone.local_day(paid_at), "receipt at {}", paid_at);

        let mut memo = d.credit_memo();
        memo.creditmemo.created_at = credited_at;
        memo.creditmemo.state = CreditMemoState::Refunded;
        let original = OriginalInvoice {
            sage_id: "SAGE-INV".into(),
            reference: invoice.invoice.increment_id.clone(),
            date: inv.date,
        };
        let cn = map_sales_credit_note(&memo, &s, "CONTACT-1", Some(&original)).unwrap();
        let cn_date = date_of(&cn.body, "date");
        prop_assert_eq!(cn_date, zone.local_day(credited_at), "credit note at {}", credited_at);
        prop_assert_eq!(cn.date, cn_date);
        prop_assert_eq!(&cn.body["original_invoice_date"], &inv.body["date"]);
        prop_assert!(cn_date >= inv_date, "credit note {} before its invoice {}", cn_date, inv_date);

        let credit_ref: CreditNoteRef = sage_ref("SAGE-CN", total);
        let refund = map_refund(&memo, &credit_ref, &s, "BANK").unwrap();
        prop_assert_eq!(date_of(&refund.body, "date"), zone.local_day(credited_at));

        let settled_on = sage_date(credited_at, zone.name).unwrap();
        let allocation = map_allocation(
            &sage_ref("SAGE-INV", total),
            &credit_ref,
            total,
            allocation_date(inv.date, cn.date, settled_on),
        )
        .unwrap();
        let allocated_on = date_of(&allocation.body, "date");
        prop_assert!(allocated_on >= inv_date && allocated_on >= cn_date,
            "allocation {} before invoice {} or credit note {}", allocated_on, inv_date, cn_date);
        prop_assert_eq!(allocated_on, zone.local_day(credited_at));
    }

    /// Built the other way round: a local date-time within two hours of midnight, turned
    /// into UTC with the table's offset, maps back to that local date.
    #[test]
    fn a_local_time_near_midnight_maps_to_its_own_local_day(
        zone_pick in 0usize..4,
        day_of_year in 0u32..365,
        minutes in -120i64..120,
    ) {
        let zones = zones();
        let zone = &zones[zone_pick];
        let midnight = NaiveDate::from_yo_opt(2026, day_of_year + 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
        let local = midnight + Duration::minutes(minutes);
        // The offset in force at that local time: try both of the zone's offsets and keep
        // one the table agrees with. None fits for a local time the clocks skip (01:00 to
        // 02:00 in London on 29 March); such a time never happens, so it is passed over.
        let candidates = [zone.standard_hours, zone.summer.map_or(zone.standard_hours, |s| s.0)];
        let at = candidates
            .iter()
            .map(|h| Utc.from_utc_datetime(&(local - Duration::hours(*h))))
            .find(|at| at.naive_utc() + Duration::hours(zone.offset_hours(*at)) == local);
        prop_assume!(at.is_some());
        let at = at.unwrap();
        let mut invoice = doc().invoice();
        invoice.invoice.created_at = at;
        let plan = map_sales_invoice(&invoice, &zone.settings(), "CONTACT-1").unwrap();
        prop_assert_eq!(plan.body["date"].clone(), json!(local.date().to_string()), "{} local in {}", local, zone.name);
    }
}

#[test]
fn the_oracle_table_matches_known_instants() {
    // Spot checks of the table itself, worked out from the published 2026 rules.
    let z = zones();
    let (london, new_york, sydney, tokyo) = (&z[0], &z[1], &z[2], &z[3]);
    let day = |m, d| NaiveDate::from_ymd_opt(2026, m, d).unwrap();
    assert_eq!(london.local_day(utc(2026, 6, 30, 23, 30)), day(7, 1)); // 00:30 BST
    assert_eq!(london.local_day(utc(2026, 12, 31, 23, 30)), day(12, 31)); // 23:30 GMT
    assert_eq!(new_york.local_day(utc(2026, 4, 1, 3, 59)), day(3, 31)); // 23:59 EDT
    assert_eq!(
        new_york.local_day(utc(2026, 1, 1, 4, 30)),
        day(12, 31) - Duration::days(365)
    ); // 23:30 EST 2025
    assert_eq!(sydney.local_day(utc(2026, 6, 30, 14, 0)), day(7, 1)); // 00:00 AEST
    assert_eq!(
        sydney.local_day(utc(2026, 12, 31, 13, 0)),
        day(1, 1) + Duration::days(365)
    ); // 00:00 AEDT 2027
    assert_eq!(tokyo.local_day(utc(2026, 3, 31, 15, 0)), day(4, 1)); // 00:00 JST
}
