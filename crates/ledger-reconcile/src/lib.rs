//! Reconciliation: does Sage hold every Magento invoice and credit memo of a merchant exactly
//! once, with Magento's grand total to the cent? Used by `ledgerctl reconcile` and the
//! merchant portal's books check.
//!
//! The expected side is the event log (every `invoice.created` and `creditmemo.created` the
//! store sent); the found side is Sage itself, listed through its API with the merchant's
//! tokens (asked of the gateway, as the services do). Matching is by Sage `reference`: the
//! invoice number, or `<credit memo>/<invoice>` for credit notes. The comparison is a pure
//! function ([`compare`]) so every verdict has a table test.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use futures::StreamExt;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;

/// Sales invoice or sales credit note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `sales_invoices`.
    Invoice,
    /// `sales_credit_notes`.
    CreditNote,
}

impl Kind {
    /// Sage resource of this kind.
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Invoice => "sales_invoices",
            Kind::CreditNote => "sales_credit_notes",
        }
    }
}

/// A document Magento sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expected {
    /// Invoice or credit note.
    pub kind: Kind,
    /// Magento document number (the start of the Sage reference).
    pub number: String,
    /// Magento grand total.
    pub total: Decimal,
    /// Document currency.
    pub currency: String,
    /// Magento's base grand total, for a document in a foreign currency (Sage's
    /// `base_currency_total_amount` must equal it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_total: Option<Decimal>,
    /// UTC day Magento created it.
    pub created: NaiveDate,
    /// The event that carried it.
    pub event_id: String,
}

/// A document Sage holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Found {
    /// Invoice or credit note.
    pub kind: Kind,
    /// Sage id.
    pub sage_id: String,
    /// Sage `reference`.
    pub reference: String,
    /// Sage `total_amount`.
    pub total: Decimal,
    /// Sage currency id.
    pub currency: String,
    /// Sage `base_currency_total_amount`, when listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_total: Option<Decimal>,
    /// Sage status id (`VOID` ones are left out of the comparison).
    pub status: String,
}

/// What is wrong with one document, if anything.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Finding {
    /// Sent by Magento, not in Sage.
    Missing {
        /// The document.
        expected: Expected,
        /// Why, when Ledger knows: held on purpose, or refused (dead letter).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        why: Option<String>,
    },
    /// In Sage more than once.
    Duplicate {
        /// The document.
        expected: Expected,
        /// Every Sage id holding it.
        sage_ids: Vec<String>,
    },
    /// In Sage once, with another total, currency or base-currency total.
    Mismatch {
        /// The document.
        expected: Expected,
        /// What Sage holds.
        found: Found,
    },
    /// In Sage, not sent by this merchant's store (entered by hand, or another system).
    NotFromMagento {
        /// The Sage document.
        found: Found,
    },
}

/// The result of a comparison.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Magento documents compared.
    pub expected: usize,
    /// Of them, in Sage exactly once with the same total and currency.
    pub matched: usize,
    /// Everything else.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Whether every Magento document is in Sage exactly once, cent-exact. Documents entered
    /// in Sage by hand do not make a reconciliation fail; they are listed.
    pub fn balanced(&self) -> bool {
        self.findings
            .iter()
            .all(|f| matches!(f, Finding::NotFromMagento { .. }))
    }

    /// Fills in why each missing document is missing, from `reasons` by event id.
    pub fn explain(&mut self, reasons: &std::collections::HashMap<String, String>) {
        for finding in &mut self.findings {
            if let Finding::Missing { expected, why } = finding {
                *why = reasons.get(&expected.event_id).cloned();
            }
        }
    }

    /// `documents=N matched=N missing=N duplicate=N mismatch=N not_from_magento=N`.
    pub fn summary(&self) -> String {
        format!(
            "documents={} matched={} missing={} duplicate={} mismatch={} not_from_magento={}",
            self.expected,
            self.matched,
            self.count("missing"),
            self.count("duplicate"),
            self.count("mismatch"),
            self.count("not_from_magento"),
        )
    }

    /// Count of findings with this verdict.
    pub fn count(&self, verdict: &str) -> usize {
        self.findings
            .iter()
            .filter(|f| match f {
                Finding::Missing { .. } => verdict == "missing",
                Finding::Duplicate { .. } => verdict == "duplicate",
                Finding::Mismatch { .. } => verdict == "mismatch",
                Finding::NotFromMagento { .. } => verdict == "not_from_magento",
            })
            .count()
    }
}

/// Whether Sage `reference` is Magento document `number`: invoices carry the number itself,
/// credit notes `<credit memo>/<invoice>` (or the number alone when it did not fit), and
/// `CM-<credit memo>` when no invoice could be linked; any of them may start with the
/// merchant's reference prefix, today's or an earlier one
/// ([`ledger_mapping::is_reference_of_number`]).
fn is_reference_of(kind: Kind, reference: &str, number: &str) -> bool {
    let reference = reference.trim();
    match kind {
        Kind::Invoice => {
            ledger_mapping::is_reference_of_number(reference, number)
                && !reference
                    .strip_suffix(number)
                    .is_some_and(|prefix| prefix.ends_with("CM-"))
        }
        Kind::CreditNote => {
            let credit_memo = reference.split('/').next().unwrap_or_default();
            ledger_mapping::is_reference_of_number(credit_memo, number)
        }
    }
}

/// Compares what Magento sent with what Sage holds.
pub fn compare(expected: &[Expected], found: &[Found]) -> Report {
    // A document Magento sent twice (a backfill after a restore, say) is one document.
    let mut unique: BTreeMap<(Kind, String), &Expected> = BTreeMap::new();
    for e in expected {
        unique.entry((e.kind, e.number.clone())).or_insert(e);
    }
    let live: Vec<&Found> = found
        .iter()
        .filter(|f| !f.status.eq_ignore_ascii_case("VOID"))
        .collect();
    let mut claimed = vec![false; live.len()];
    let mut report = Report {
        expected: unique.len(),
        ..Report::default()
    };
    for ((kind, number), e) in &unique {
        let mut hits: Vec<usize> = live
            .iter()
            .enumerate()
            .filter(|(_, f)| f.kind == *kind && is_reference_of(*kind, &f.reference, number))
            .map(|(i, _)| i)
            .collect();
        // Credited and re-issued from the portal: the original invoice and its full credit
        // note (`CR1/<number>`) cancel out, and the re-issue (`<reference>-R1`) stands for the
        // Magento invoice.
        if *kind == Kind::Invoice {
            let credit = ledger_mapping::reissue_credit_reference(number, 1);
            let of_kind = |k: Kind, keep: &dyn Fn(&str) -> bool| -> Vec<usize> {
                live.iter()
                    .enumerate()
                    .filter(|(_, f)| f.kind == k && keep(f.reference.trim()))
                    .map(|(i, _)| i)
                    .collect()
            };
            let credits = of_kind(Kind::CreditNote, &|r| r == credit);
            let reissues = of_kind(Kind::Invoice, &|r| {
                r.strip_suffix("-R1")
                    .is_some_and(|base| is_reference_of(Kind::Invoice, base, number))
            });
            if !credits.is_empty() && !reissues.is_empty() {
                for &i in hits.iter().chain(&credits) {
                    claimed[i] = true;
                }
                hits = reissues;
            }
        }
        for &i in &hits {
            claimed[i] = true;
        }
        match hits.as_slice() {
            // A zero document is never posted (`zero_value`, `nothing_to_post`): not having it is right.
            [] if e.total.is_zero() => report.matched += 1,
            [] => report.findings.push(Finding::Missing {
                expected: (*e).clone(),
                why: None,
            }),
            [one] => {
                let f = live[*one];
                // A foreign-currency document must also land on Magento's base total.
                let base_ok = match (e.base_total, f.base_total) {
                    (Some(want), Some(got)) => want == got,
                    _ => true,
                };
                if f.total == e.total && f.currency.eq_ignore_ascii_case(&e.currency) && base_ok {
                    report.matched += 1;
                } else {
                    report.findings.push(Finding::Mismatch {
                        expected: (*e).clone(),
                        found: f.clone(),
                    });
                }
            }
            many => report.findings.push(Finding::Duplicate {
                expected: (*e).clone(),
                sage_ids: many.iter().map(|&i| live[i].sage_id.clone()).collect(),
            }),
        }
    }
    for (i, f) in live.iter().enumerate() {
        if !claimed[i] {
            report.findings.push(Finding::NotFromMagento {
                found: (*f).clone(),
            });
        }
    }
    report
}

/// The Magento document an event carries, if it is an invoice or credit memo.
pub fn expected_of(envelope: &ledger_events::Envelope) -> Option<Expected> {
    use ledger_events::Payload;
    let (kind, number, total, currency, created, base, base_total) = match &envelope.payload {
        Payload::InvoiceCreated(p) => (
            Kind::Invoice,
            &p.invoice.increment_id,
            p.invoice.grand_total,
            &p.invoice.order_currency_code,
            p.invoice.created_at,
            &p.invoice.base_currency_code,
            p.invoice.base_grand_total,
        ),
        Payload::CreditMemoCreated(p) => (
            Kind::CreditNote,
            &p.creditmemo.increment_id,
            p.creditmemo.grand_total,
            &p.creditmemo.order_currency_code,
            p.creditmemo.created_at,
            &p.creditmemo.base_currency_code,
            p.creditmemo.base_grand_total,
        ),
        _ => return None,
    };
    let foreign = !currency.trim().eq_ignore_ascii_case(base.trim());
    Some(Expected {
        kind,
        number: ledger_mapping::rules::fit_reference(number, 25),
        total,
        currency: currency.clone(),
        base_total: foreign.then(|| ledger_mapping::round2(base_total)),
        created: created.date_naive(),
        event_id: envelope.event_id.to_string(),
    })
}

/// The Magento document an `invoice.canceled` or `creditmemo.canceled` event takes out of the
/// books, as (kind, number).
pub fn canceled_of(envelope: &ledger_events::Envelope) -> Option<(Kind, String)> {
    use ledger_events::Payload;
    let (kind, number) = match &envelope.payload {
        Payload::InvoiceCanceled(p) => (Kind::Invoice, &p.invoice.increment_id),
        Payload::CreditMemoCanceled(p) => (Kind::CreditNote, &p.creditmemo.increment_id),
        _ => return None,
    };
    Some((kind, ledger_mapping::rules::fit_reference(number, 25)))
}

/// A Sage list item (`attributes=reference,total_amount,base_currency_total_amount,currency,status`)
/// as [`Found`].
pub fn found_of(kind: Kind, item: &Value) -> Option<Found> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("id").and_then(Value::as_str).map(str::to_string),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    Some(Found {
        kind,
        sage_id: item.get("id").and_then(Value::as_str)?.to_string(),
        reference: item.get("reference").and_then(text).unwrap_or_default(),
        total: item
            .get("total_amount")
            .and_then(text)
            .and_then(|t| t.parse().ok())
            .unwrap_or_default(),
        currency: item.get("currency").and_then(text).unwrap_or_default(),
        base_total: item
            .get("base_currency_total_amount")
            .and_then(text)
            .and_then(|t| t.parse().ok()),
        status: item.get("status").and_then(text).unwrap_or_default(),
    })
}

/// How far a reconciliation has got, for people watching a long one (`ledgerctl reconcile`
/// prints each on stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Events of the store read from the log so far, of how many there are.
    Log {
        /// Read so far.
        read: usize,
        /// In the log for this merchant.
        total: usize,
    },
    /// Documents of `kind` listed from Sage so far, of how many Sage says there are.
    Sage {
        /// Invoices or credit notes.
        kind: Kind,
        /// Listed so far.
        listed: usize,
        /// Sage's count, when it gives one.
        total: Option<u64>,
    },
    /// The documents Magento sent, checked against those found in Sage.
    Checked {
        /// Magento's documents checked.
        documents: usize,
        /// Documents found in Sage.
        found: usize,
    },
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Progress::Log { read, total } => write!(f, "read {read}/{total} events from the log"),
            Progress::Sage {
                kind,
                listed,
                total,
            } => {
                let what = match kind {
                    Kind::Invoice => "invoices",
                    Kind::CreditNote => "credit notes",
                };
                match total {
                    Some(total) => write!(f, "listed {listed}/{total} {what} in Sage"),
                    None => write!(f, "listed {listed} {what} in Sage"),
                }
            }
            Progress::Checked { documents, found } => write!(
                f,
                "checked {documents}/{documents} documents against {found} in Sage"
            ),
        }
    }
}

/// Events read between two [`Progress::Log`] reports.
pub const LOG_BATCH: usize = 200;

/// Days to check: Magento creation days from `since` (inclusive) to `until` (exclusive).
#[derive(Debug, Clone, Copy, Default)]
pub struct Range {
    /// First day, if any.
    pub since: Option<NaiveDate>,
    /// Day after the last, if any.
    pub until: Option<NaiveDate>,
}

impl Range {
    fn contains(&self, day: NaiveDate) -> bool {
        self.since.is_none_or(|s| day >= s) && self.until.is_none_or(|u| day < u)
    }
}

/// Every invoice and credit memo `merchant`'s store sent, from the event log; `progress` hears
/// every [`LOG_BATCH`] events and at the end.
pub async fn read_expected(
    js: &async_nats::jetstream::Context,
    merchant: &str,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> anyhow::Result<Vec<Expected>> {
    use async_nats::jetstream::consumer::pull::OrderedConfig;
    use ledger_events::EventType;
    let stream = js.get_stream(ledger_events::STREAM_NAME).await?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subjects: vec![
                ledger_events::subject(merchant, EventType::InvoiceCreated),
                ledger_events::subject(merchant, EventType::CreditMemoCreated),
                ledger_events::subject(merchant, EventType::InvoiceCanceled),
                ledger_events::subject(merchant, EventType::CreditMemoCanceled),
            ],
            ..Default::default()
        })
        .await?;
    let pending = consumer.cached_info().num_pending as usize;
    let mut messages = consumer.messages().await?.take(pending);
    let mut out = Vec::new();
    let mut canceled = std::collections::BTreeSet::new();
    let mut read = 0;
    while let Some(message) = messages.next().await {
        let message = message?;
        read += 1;
        if read % LOG_BATCH == 0 && read < pending {
            progress(Progress::Log {
                read,
                total: pending,
            });
        }
        // An event the contract refuses never reached Sage either; the consumers' dead
        // letters say why.
        if let Ok(envelope) = ledger_events::parse(&message.payload) {
            out.extend(expected_of(&envelope));
            canceled.extend(canceled_of(&envelope));
        }
    }
    progress(Progress::Log {
        read,
        total: pending,
    });
    // A document Magento canceled or voided is rightly not live in Sage (voided there, or
    // never posted).
    out.retain(|e| !canceled.contains(&(e.kind, e.number.clone())));
    Ok(out)
}

/// The merchant's invoices and credit notes in Sage around `range` (Sage dates are the books'
/// local day, at most a day from Magento's UTC day); `progress` hears after every page.
pub async fn read_found(
    sage: &sage_client::SageClient,
    merchant: &str,
    range: Range,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> anyhow::Result<Vec<Found>> {
    let from = range
        .since
        .map(|d| (d - chrono::Duration::days(1)).to_string());
    let to = range.until.map(|d| d.to_string());
    let mut found = Vec::new();
    for kind in [Kind::Invoice, Kind::CreditNote] {
        let mut query = vec![(
            "attributes",
            "reference,total_amount,base_currency_total_amount,currency,status",
        )];
        if let Some(from) = &from {
            query.push(("from_date", from.as_str()));
        }
        if let Some(to) = &to {
            query.push(("to_date", to.as_str()));
        }
        let items = sage
            .list_all_reporting(merchant, kind.resource(), &query, |p| {
                progress(Progress::Sage {
                    kind,
                    listed: p.listed,
                    total: p.total,
                })
            })
            .await
            .map_err(|e| anyhow::anyhow!("listing Sage {}: {e}", kind.resource()))?;
        found.extend(items.iter().filter_map(|i| found_of(kind, i)));
    }
    Ok(found)
}

/// Why Ledger kept documents of `merchant` out of Sage, by event id: held on purpose (the
/// documents service's skip reasons) or refused (every consumer service's dead letters).
/// Services that do not answer are passed over: the finding then just says missing.
pub async fn reasons(
    nats: &async_nats::Client,
    merchant: &str,
) -> std::collections::HashMap<String, String> {
    use ledger_runtime::dead_letters::{subject, Answer, Command};
    let timeout = std::time::Duration::from_secs(5);
    let mut out = std::collections::HashMap::new();
    let held: Result<Vec<ledger_rpc::HeldDocument>, _> = ledger_rpc::ask(
        nats,
        ledger_rpc::HELD_DOCUMENTS_SUBJECT,
        &ledger_rpc::HeldDocumentsRequest {
            merchant: merchant.to_string(),
        },
        timeout,
    )
    .await;
    for h in held.unwrap_or_default() {
        out.insert(h.event_id, format!("held: {} ({})", h.reason, h.detail));
    }
    for service in ["contacts", "documents", "payments"] {
        let answer: Result<Answer, _> = ledger_runtime::bus::request_json(
            nats,
            &subject(service),
            &Command::List {
                merchant: Some(merchant.to_string()),
            },
            timeout,
        )
        .await;
        if let Ok(Answer::Listed { dead_letters }) = answer {
            for d in dead_letters {
                if let Some(event_id) = d.event_id {
                    let field = d.field.map(|f| format!(" on {f}")).unwrap_or_default();
                    out.insert(
                        event_id,
                        format!(
                            "refused: {}{field}: {} (dead letter {service}#{})",
                            d.code, d.message, d.id
                        ),
                    );
                }
            }
        }
    }
    out
}

/// Reads both sides and compares them.
pub async fn run(
    js: &async_nats::jetstream::Context,
    sage: &sage_client::SageClient,
    merchant: &str,
    range: Range,
) -> anyhow::Result<Report> {
    run_reporting(js, sage, merchant, range, &mut |_| {}).await
}

/// [`run`], telling `progress` how far it has got as it goes.
pub async fn run_reporting(
    js: &async_nats::jetstream::Context,
    sage: &sage_client::SageClient,
    merchant: &str,
    range: Range,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> anyhow::Result<Report> {
    let expected: Vec<Expected> = read_expected(js, merchant, progress)
        .await?
        .into_iter()
        .filter(|e| range.contains(e.created))
        .collect();
    let found = read_found(sage, merchant, range, progress).await?;
    let report = compare(&expected, &found);
    progress(Progress::Checked {
        documents: expected.len(),
        found: found.len(),
    });
    Ok(report)
}

/// One line per finding, for people.
pub fn describe(finding: &Finding) -> String {
    let what = |e: &Expected| {
        format!(
            "{:?} {} ({} {}, event {})",
            e.kind, e.number, e.total, e.currency, e.event_id
        )
    };
    match finding {
        Finding::Missing { expected, why } => format!(
            "MISSING    {} is not in Sage{}",
            what(expected),
            why.as_deref()
                .map(|w| format!(" ({w})"))
                .unwrap_or_default()
        ),
        Finding::Duplicate { expected, sage_ids } => format!(
            "DUPLICATE  {} is in Sage {} times: {}",
            what(expected),
            sage_ids.len(),
            sage_ids.join(", ")
        ),
        Finding::Mismatch { expected, found } => format!(
            "MISMATCH   {}: Sage {} holds {} {}{}",
            what(expected),
            found.sage_id,
            found.total,
            found.currency,
            match (expected.base_total, found.base_total) {
                (Some(want), Some(got)) if want != got =>
                    format!(" (base total {got}, Magento's {want})"),
                _ => String::new(),
            }
        ),
        Finding::NotFromMagento { found } => format!(
            "NOT FROM MAGENTO  {:?} {} in Sage ({} {}, id {})",
            found.kind, found.reference, found.total, found.currency, found.sage_id
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn progress_reads_as_counts_of_totals() {
        let log = Progress::Log {
            read: 200,
            total: 800,
        };
        assert_eq!(log.to_string(), "read 200/800 events from the log");
        let sage = Progress::Sage {
            kind: Kind::Invoice,
            listed: 120,
            total: Some(800),
        };
        assert_eq!(sage.to_string(), "listed 120/800 invoices in Sage");
        let untold = Progress::Sage {
            kind: Kind::CreditNote,
            listed: 7,
            total: None,
        };
        assert_eq!(untold.to_string(), "listed 7 credit notes in Sage");
        let checked = Progress::Checked {
            documents: 800,
            found: 799,
        };
        assert_eq!(
            checked.to_string(),
            "checked 800/800 documents against 799 in Sage"
        );
    }

    fn exp(kind: Kind, number: &str, total: Decimal) -> Expected {
        Expected {
            kind,
            number: number.into(),
            total,
            currency: "GBP".into(),
            base_total: None,
            created: NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(),
            event_id: format!("ev-{number}"),
        }
    }

    fn found(kind: Kind, id: &str, reference: &str, total: Decimal) -> Found {
        Found {
            kind,
            sage_id: id.into(),
            reference: reference.into(),
            total,
            currency: "GBP".into(),
            base_total: None,
            status: "UNPAID".into(),
        }
    }

    #[test]
    fn a_credited_and_reissued_invoice_is_matched_by_its_reissue() {
        let expected = [exp(Kind::Invoice, "000100001", dec!(61.20))];
        let found = [
            found(Kind::Invoice, "s1", "000100001", dec!(61.20)),
            found(Kind::CreditNote, "s2", "CR1/000100001", dec!(61.20)),
            found(Kind::Invoice, "s3", "000100001-R1", dec!(61.20)),
        ];
        let report = compare(&expected, &found);
        assert_eq!(report.matched, 1, "{report:?}");
        assert!(report.findings.is_empty(), "{report:?}");
        // The re-issue is held to Magento's total like any invoice.
        let mut wrong = found.clone();
        wrong[2].total = dec!(61.19);
        let report = compare(&expected, &wrong);
        assert_eq!(report.count("mismatch"), 1, "{report:?}");
        // Without its credit note a "-R1" invoice is not taken for a re-issue.
        let report = compare(&expected, &[found[0].clone(), found[2].clone()]);
        assert_eq!(report.matched, 1, "{report:?}");
        assert_eq!(report.count("not_from_magento"), 1, "{report:?}");
    }

    #[test]
    fn canceled_events_name_the_document_they_take_out() {
        let text = |f: &str| {
            std::fs::read(format!(
                "{}/../../schemas/examples/{f}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        };
        let void = ledger_events::parse(&text("invoice-canceled-void-after-capture.json")).unwrap();
        let ledger_events::Payload::InvoiceCanceled(p) = &void.payload else {
            panic!("not an invoice.canceled")
        };
        assert_eq!(
            canceled_of(&void),
            Some((Kind::Invoice, p.invoice.increment_id.clone()))
        );
        let cm = ledger_events::parse(&text("creditmemo-canceled-after-pending.json")).unwrap();
        assert!(matches!(canceled_of(&cm), Some((Kind::CreditNote, _))));
        let refunded =
            ledger_events::parse(&text("creditmemo-refunded-after-pending.json")).unwrap();
        assert_eq!(canceled_of(&refunded), None);
        assert_eq!(expected_of(&void).map(|e| e.number), None);
    }

    #[test]
    fn foreign_currency_documents_must_land_on_magentos_base_total() {
        // The yen sale: ¥1,912,345 is £10,000.00 in Magento. A rate cut to 6 dp gave
        // Sage £9,999.65: same document total, wrong books.
        let yen = Expected {
            currency: "JPY".into(),
            base_total: Some(dec!(10000.00)),
            ..exp(Kind::Invoice, "000000201", dec!(1912345))
        };
        let sage = |base: Decimal| Found {
            currency: "JPY".into(),
            base_total: Some(base),
            ..found(Kind::Invoice, "y1", "000000201", dec!(1912345))
        };
        let report = compare(std::slice::from_ref(&yen), &[sage(dec!(9999.65))]);
        assert_eq!(report.count("mismatch"), 1, "{report:#?}");
        assert!(describe(&report.findings[0]).contains("base total 9999.65, Magento's 10000.00"));
        let report = compare(&[yen], &[sage(dec!(10000.00))]);
        assert_eq!(report.matched, 1);
        assert!(report.balanced());
    }

    #[test]
    fn verdicts() {
        use Kind::*;
        let expected = [
            exp(Invoice, "000000101", dec!(73.44)),
            exp(Invoice, "000000102", dec!(10.00)),
            exp(Invoice, "000000103", dec!(20.00)),
            exp(Invoice, "000000104", dec!(30.00)),
            exp(CreditNote, "000000301", dec!(24.44)),
            // Sent twice (same number): still one document.
            exp(Invoice, "000000101", dec!(73.44)),
        ];
        let sage = [
            found(Invoice, "s1", "000000101", dec!(73.44)),
            // 102 missing.
            found(Invoice, "s3", "000000103", dec!(20.00)),
            found(Invoice, "s3b", "000000103", dec!(20.00)),
            found(Invoice, "s4", "000000104", dec!(30.01)),
            found(CreditNote, "c1", "000000301/000000101", dec!(24.44)),
            found(Invoice, "s9", "MANUAL-1", dec!(5.00)),
            // A voided copy does not count as a duplicate.
            Found {
                status: "VOID".into(),
                ..found(Invoice, "s1v", "000000101", dec!(73.44))
            },
        ];
        let report = compare(&expected, &sage);
        assert_eq!(report.expected, 5);
        assert_eq!(report.matched, 2, "{report:#?}");
        assert_eq!(report.count("missing"), 1);
        assert_eq!(report.count("duplicate"), 1);
        assert_eq!(report.count("mismatch"), 1);
        assert_eq!(report.count("not_from_magento"), 1);
        assert!(!report.balanced());
        assert!(report.findings.contains(&Finding::Duplicate {
            expected: exp(Invoice, "000000103", dec!(20.00)),
            sage_ids: vec!["s3".into(), "s3b".into()],
        }));
    }

    #[test]
    fn a_credit_note_reference_names_its_invoice_after_a_slash() {
        assert!(is_reference_of(Kind::CreditNote, "301/101", "301"));
        assert!(is_reference_of(Kind::CreditNote, "301", "301"));
        // Unlinked credit notes are prefixed so they never equal an invoice number.
        assert!(is_reference_of(Kind::CreditNote, "CM-301", "301"));
        assert!(!is_reference_of(Kind::Invoice, "CM-301", "301"));
        assert!(!is_reference_of(Kind::CreditNote, "3011/101", "301"));
        assert!(!is_reference_of(Kind::Invoice, "101/1", "101"));
    }

    #[test]
    fn references_are_recognised_under_any_prefix() {
        let table = [
            (Kind::Invoice, "WEB-000001042", "000001042", true),
            (Kind::Invoice, "OLD_000001042", "000001042", true),
            (Kind::Invoice, "WEB-CM-000001042", "000001042", false),
            (Kind::Invoice, "1000001042", "000001042", false),
            (
                Kind::CreditNote,
                "WEB-000000301/000000101",
                "000000301",
                true,
            ),
            (Kind::CreditNote, "WEB-CM-000000301", "000000301", true),
            (
                Kind::CreditNote,
                "WEB-000000101/000000301",
                "000000301",
                false,
            ),
        ];
        for (kind, reference, number, want) in table {
            assert_eq!(
                is_reference_of(kind, reference, number),
                want,
                "{reference} {number}"
            );
        }
    }

    #[test]
    fn manual_entries_alone_keep_the_books_balanced() {
        let report = compare(
            &[exp(Kind::Invoice, "1", dec!(1))],
            &[
                found(Kind::Invoice, "a", "1", dec!(1)),
                found(Kind::Invoice, "b", "X", dec!(9)),
            ],
        );
        assert!(report.balanced());
        assert_eq!(report.matched, 1);
    }

    #[test]
    fn sage_list_items_are_read_with_ids_or_objects() {
        let item = serde_json::json!({
            "id": "abc", "reference": "000000101", "total_amount": "73.44",
            "currency": {"id": "GBP"}, "status": {"id": "UNPAID"}
        });
        let f = found_of(Kind::Invoice, &item).unwrap();
        assert_eq!(f.total, dec!(73.44));
        assert_eq!(f.currency, "GBP");
        assert_eq!(f.status, "UNPAID");
    }
}
