//! Backfill reports (decision record 0038): each backfill of a merchant with its documents done
//! of total, rate, time left, held and failed counts, and the operator's pause, resume and
//! cancel. The one reading of the records in [`ledger_runtime::backfill`], used by the portal
//! and `ledgerctl backfill`.

use std::collections::BTreeMap;

use async_nats::jetstream;
use chrono::{DateTime, NaiveDate, Utc};
use ledger_runtime::backfill::{
    BackfillHeader, BackfillState, Backfills, Control, Counts, Progress,
};
use ledger_runtime::ProcessError;
use serde::{Deserialize, Serialize};

/// One backfill as the merchant and the operator see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackfillReport {
    /// The run's id.
    pub backfill_id: String,
    /// First day of the range.
    pub from: NaiveDate,
    /// Last day of the range.
    pub to: NaiveDate,
    /// Entity types.
    pub types: Vec<String>,
    /// Running, paused or canceled.
    pub state: BackfillState,
    /// Documents the run recorded.
    pub total: u64,
    /// Documents handled to an end (synced, skipped, held, failed or canceled), at most `total`.
    pub done: u64,
    /// Documents and payments held (waiting for something the merchant can fix).
    pub held: u64,
    /// Documents and payments that failed (dead letters an operator can retry).
    pub failed: u64,
    /// Documents skipped because the run was canceled.
    pub canceled: u64,
    /// Documents handled per second so far.
    pub rate_per_sec: f64,
    /// Seconds left at that rate; `None` before the first document or once done.
    pub eta_secs: Option<u64>,
    /// When the module started the run.
    pub started_at: DateTime<Utc>,
    /// Latest handling.
    pub last_at: Option<DateTime<Utc>>,
    /// Every document reached an end.
    pub finished: bool,
}

/// Puts one backfill's header, control and every consumer's progress together.
pub fn summarize(
    header: &BackfillHeader,
    control: Option<&Control>,
    progress: &BTreeMap<String, Progress>,
) -> BackfillReport {
    let (mut documents, mut others) = (Counts::default(), Counts::default());
    let (mut first_at, mut last_at): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = (None, None);
    for p in progress.values() {
        documents.add(&p.documents);
        others.add(&p.others);
        first_at = match (first_at, p.first_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        last_at = last_at.max(p.last_at);
    }
    let held_in = |c: &Counts| -> u64 {
        c.skipped
            .iter()
            .filter(|(code, _)| ledger_mapping::is_hold(code))
            .map(|(_, n)| n)
            .sum()
    };
    let total = header.total();
    let done = documents.ended().min(total);
    let elapsed = match (first_at, last_at) {
        (Some(f), Some(l)) => (l - f).num_milliseconds().max(0) as f64 / 1000.0,
        _ => 0.0,
    };
    // The first document's own handling time is not in `last - first`; one second floor
    // keeps a burst from claiming an absurd rate.
    let rate_per_sec = if done > 0 {
        done as f64 / elapsed.max(1.0)
    } else {
        0.0
    };
    let finished = done >= total;
    let eta_secs = (!finished && rate_per_sec > 0.0)
        .then(|| ((total - done) as f64 / rate_per_sec).ceil() as u64);
    BackfillReport {
        backfill_id: header.backfill_id.clone(),
        from: header.from,
        to: header.to,
        types: header.types.clone(),
        state: control.map_or(BackfillState::Running, |c| c.state),
        total,
        done,
        held: held_in(&documents) + held_in(&others),
        failed: documents.failed + others.failed,
        canceled: documents.canceled,
        rate_per_sec,
        eta_secs,
        started_at: header.started_at,
        last_at,
        finished,
    }
}

/// Every backfill of a merchant, oldest first.
pub async fn reports(
    js: &jetstream::Context,
    merchant: &str,
) -> Result<Vec<BackfillReport>, ProcessError> {
    let backfills = Backfills::open(js).await?;
    let mut out = Vec::new();
    for header in ledger_runtime::backfill::headers(js, merchant).await? {
        let control = backfills.control(merchant, &header.backfill_id).await?;
        let progress = backfills.progress(merchant, &header.backfill_id).await?;
        out.push(summarize(&header, control.as_ref(), &progress));
    }
    Ok(out)
}

/// Pauses, resumes (`Running`) or cancels a merchant's backfill; refuses an id the merchant
/// never announced, naming it.
pub async fn set_state(
    js: &jetstream::Context,
    merchant: &str,
    backfill_id: &str,
    state: BackfillState,
) -> Result<(), ProcessError> {
    let known = ledger_runtime::backfill::headers(js, merchant)
        .await?
        .iter()
        .any(|h| h.backfill_id == backfill_id);
    if !known {
        return Err(ProcessError::invalid_field(
            "backfill.unknown",
            "backfill_id",
            format!("merchant {merchant} has no backfill {backfill_id}"),
        ));
    }
    Backfills::open(js)
        .await?
        .set_state(merchant, backfill_id, state)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(total_invoices: u64, total_memos: u64) -> BackfillHeader {
        BackfillHeader {
            backfill_id: "bf-1".into(),
            merchant_id: "m".into(),
            from: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
            to: NaiveDate::from_ymd_opt(2025, 3, 31).unwrap(),
            types: vec!["invoice".into(), "creditmemo".into()],
            totals: BTreeMap::from([
                ("invoice".into(), total_invoices),
                ("creditmemo".into(), total_memos),
            ]),
            started_at: Utc::now(),
        }
    }

    #[test]
    fn done_rate_time_left_held_and_failed() {
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut documents = Progress::default();
        // 30 documents over 10 s: 27 synced, 2 held (one per hold kind), 1 failed.
        for i in 0..27 {
            documents.count(
                "invoice.created",
                "applied",
                None,
                t0 + chrono::Duration::milliseconds(i * 10_000 / 29),
            );
        }
        documents.count("invoice.created", "skipped", Some("period_locked"), t0);
        documents.count(
            "creditmemo.created",
            "skipped",
            Some("original_invoice_held"),
            t0,
        );
        documents.count(
            "creditmemo.created",
            "failed",
            Some("x"),
            t0 + chrono::Duration::seconds(10),
        );
        let mut payments = Progress::default();
        payments.count("invoice.paid", "skipped", Some("invoice_held"), t0);
        payments.count("invoice.paid", "skipped", Some("net_terms"), t0);
        let progress = BTreeMap::from([
            ("documents".to_string(), documents),
            ("payments".to_string(), payments),
        ]);
        let report = summarize(&header(80, 20), None, &progress);
        assert_eq!(report.total, 100);
        assert_eq!(report.done, 30);
        // 30 documents in 10 s: 3 a second, 70 left: 24 s (23.3 rounded up).
        assert!((report.rate_per_sec - 3.0).abs() < 1e-9, "{report:?}");
        assert_eq!(report.eta_secs, Some(24));
        // period_locked + original_invoice_held + the payment's invoice_held; net_terms is not.
        assert_eq!(report.held, 3);
        assert_eq!(report.failed, 1);
        assert_eq!(report.state, BackfillState::Running);
        assert!(!report.finished);
    }

    #[test]
    fn a_finished_or_canceled_run() {
        let t0 = Utc::now();
        let mut p = Progress::default();
        for _ in 0..3 {
            p.count("invoice.created", "already_done", None, t0);
        }
        p.count("invoice.created", "skipped", Some("backfill_canceled"), t0);
        // Counted twice after a crash: clamped at the total.
        p.count("invoice.created", "already_done", None, t0);
        let progress = BTreeMap::from([("documents".to_string(), p)]);
        let control = Control {
            state: BackfillState::Canceled,
            changed_at: t0,
        };
        let report = summarize(&header(4, 0), Some(&control), &progress);
        assert_eq!(report.done, 4);
        assert_eq!(report.canceled, 1);
        assert!(report.finished);
        assert_eq!(report.eta_secs, None);
        assert_eq!(report.state, BackfillState::Canceled);
    }
}
