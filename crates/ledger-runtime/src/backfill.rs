//! Backfills in the engine (decision record 0038): what an operator decided about a backfill
//! (running, paused, canceled) and how far each consumer got with it.
//!
//! A backfill (`bin/magento ledger:backfill`) publishes its events on the history subjects
//! (`magento.<merchant>.history.<entity>.<action>`, see [`ledger_events::history_subject`]),
//! each carrying the run's `backfill_id`, and announces the run once on
//! [`header_subject`] with its range, types and document totals ([`BackfillHeader`]).
//! History subjects are read by each service's history consumers, which only handle a
//! merchant's event when that merchant has no live work in flight (see
//! [`crate::consumer::Priority`]).
//!
//! Two records per backfill live in the KV bucket [`BACKFILLS_BUCKET`] (file storage):
//! - `<merchant>.<backfill_id>`: the operator's [`Control`] (absent means running). Paused: the
//!   merchant's history lane waits ([`ProcessError::Paused`], so it is parked like a merchant
//!   whose Sage is disconnected); canceled: every event of the run not handled yet is skipped
//!   with [`BACKFILL_CANCELED`], audited and reported like any skip.
//! - `<merchant>.<backfill_id>.<consumer>`: that consumer's [`Progress`], counted after every
//!   audited handling of a history event ([`ProgressHook`]).
//!
//! The counts are of handlings: an event read again after a crash may be counted twice, which
//! the report clamps at the run's total.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::audit::{AfterHandling, AuditRecord};
use crate::consumer::{Delivery, Handler, Outcome};
use crate::error::ProcessError;

/// Bucket of backfill controls and progress (file storage: kept across restarts).
pub const BACKFILLS_BUCKET: &str = "LEDGER_BACKFILLS";

/// Skip code of an event whose backfill was canceled before it was handled.
pub const BACKFILL_CANCELED: &str = "backfill_canceled";

/// The subject a backfill's header is published on:
/// `magento.<merchant>.history.backfill.<backfill_id>`. Both ids must be safe subject tokens
/// ([`ledger_events::validate_merchant_id`]).
pub fn header_subject(merchant: &str, backfill_id: &str) -> String {
    format!(
        "{}.{merchant}.{}.backfill.{backfill_id}",
        ledger_events::SUBJECT_PREFIX,
        ledger_events::HISTORY_TOKEN
    )
}

/// What the module announces when a backfill starts (`schemas/events/backfill-started.schema.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackfillHeader {
    /// The run's id; every event of the run carries it as `backfill_id`.
    pub backfill_id: String,
    /// The merchant.
    pub merchant_id: String,
    /// First day of the range (UTC).
    pub from: NaiveDate,
    /// Last day of the range (UTC).
    pub to: NaiveDate,
    /// Entity types, e.g. `invoice`, `creditmemo`.
    pub types: Vec<String>,
    /// Documents the run records per type (canceled documents left out).
    pub totals: BTreeMap<String, u64>,
    /// When the run started.
    pub started_at: DateTime<Utc>,
}

impl BackfillHeader {
    /// Documents of every type together.
    pub fn total(&self) -> u64 {
        self.totals.values().sum()
    }
}

/// What the operator decided about a backfill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackfillState {
    /// Handled as its events arrive (the default).
    Running,
    /// The merchant's history lane waits until it is resumed.
    Paused,
    /// Events not handled yet are skipped with [`BACKFILL_CANCELED`].
    Canceled,
}

impl BackfillState {
    /// The wire name: `running`, `paused`, `canceled`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackfillState::Running => "running",
            BackfillState::Paused => "paused",
            BackfillState::Canceled => "canceled",
        }
    }
}

/// The operator's record of a backfill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Control {
    /// Current state.
    pub state: BackfillState,
    /// When it was set.
    pub changed_at: DateTime<Utc>,
}

/// How one consumer's handlings of a kind of event ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Applied or found already done.
    pub done: u64,
    /// Deliberately not synced (policy skips and holds), by skip code.
    pub skipped: BTreeMap<String, u64>,
    /// Dead-lettered.
    pub failed: u64,
    /// Skipped because the backfill was canceled.
    pub canceled: u64,
}

impl Counts {
    fn count(&mut self, outcome: &str, code: Option<&str>) -> bool {
        match (outcome, code) {
            ("applied" | "already_done", _) => self.done += 1,
            ("skipped", Some(BACKFILL_CANCELED)) => self.canceled += 1,
            ("skipped", code) => *self.skipped.entry(code.unwrap_or("").into()).or_default() += 1,
            ("failed", _) => self.failed += 1,
            // Retries, pauses and throttling are not an end.
            _ => return false,
        }
        true
    }

    /// Handlings that reached an end.
    pub fn ended(&self) -> u64 {
        self.done + self.skipped.values().sum::<u64>() + self.failed + self.canceled
    }

    /// Adds another consumer's counts.
    pub fn add(&mut self, other: &Counts) {
        self.done += other.done;
        self.failed += other.failed;
        self.canceled += other.canceled;
        for (code, n) in &other.skipped {
            *self.skipped.entry(code.clone()).or_default() += n;
        }
    }
}

/// One consumer's progress through one backfill.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Document events (`*.created`, `*.saved`): one per document of the run's totals.
    pub documents: Counts,
    /// The other events of the run (an invoice's payment).
    pub others: Counts,
    /// First handling that reached an end.
    pub first_at: Option<DateTime<Utc>>,
    /// Latest handling that reached an end.
    pub last_at: Option<DateTime<Utc>>,
}

impl Progress {
    /// Adds one handling of an event of type `event_type` (`invoice.created`) ending as the
    /// audit outcome `outcome` with `code`; false when the handling did not reach an end.
    pub fn count(
        &mut self,
        event_type: &str,
        outcome: &str,
        code: Option<&str>,
        at: DateTime<Utc>,
    ) -> bool {
        let document = event_type.ends_with(".created") || event_type.ends_with(".saved");
        let counts = if document {
            &mut self.documents
        } else {
            &mut self.others
        };
        if !counts.count(outcome, code) {
            return false;
        }
        self.first_at = Some(self.first_at.map_or(at, |f| f.min(at)));
        self.last_at = Some(self.last_at.map_or(at, |l| l.max(at)));
        true
    }
}

/// The backfill id an event carries, if any (read without decoding the whole envelope).
pub fn backfill_id_of(payload: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Marked {
        backfill_id: Option<String>,
    }
    serde_json::from_slice::<Marked>(payload)
        .ok()?
        .backfill_id
        .filter(|id| ledger_events::validate_merchant_id(id).is_ok())
}

fn control_key(merchant: &str, backfill_id: &str) -> String {
    format!("{merchant}.{backfill_id}")
}

/// The backfill records of the engine ([`BACKFILLS_BUCKET`]).
#[derive(Clone)]
pub struct Backfills {
    kv: kv::Store,
    /// Controls read recently: a state change reaches the lanes within [`CONTROL_TTL`].
    cache: Arc<Mutex<HashMap<String, (Instant, BackfillState)>>>,
}

/// How long a lane trusts a control it read.
pub const CONTROL_TTL: Duration = Duration::from_secs(1);

impl Backfills {
    /// Opens (creating if needed) the bucket.
    pub async fn open(js: &jetstream::Context) -> Result<Backfills, ProcessError> {
        let kv = crate::bus::key_value(js, BACKFILLS_BUCKET, None)
            .await
            .map_err(|e| ProcessError::transient(e.to_string()))?;
        Ok(Backfills {
            kv,
            cache: Arc::default(),
        })
    }

    /// The operator's decision about a backfill (running when none was recorded).
    pub async fn state(
        &self,
        merchant: &str,
        backfill_id: &str,
    ) -> Result<BackfillState, ProcessError> {
        let key = control_key(merchant, backfill_id);
        if let Some((read, state)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            if read.elapsed() < CONTROL_TTL {
                return Ok(*state);
            }
        }
        let state = match self
            .kv
            .get(&key)
            .await
            .map_err(|e| ProcessError::transient(format!("backfill control {key}: {e}")))?
        {
            Some(bytes) => serde_json::from_slice::<Control>(&bytes)
                .map(|c| c.state)
                .unwrap_or(BackfillState::Running),
            None => BackfillState::Running,
        };
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (Instant::now(), state));
        Ok(state)
    }

    /// Records the operator's decision about a backfill.
    pub async fn set_state(
        &self,
        merchant: &str,
        backfill_id: &str,
        state: BackfillState,
    ) -> Result<(), ProcessError> {
        let key = control_key(merchant, backfill_id);
        let control = Control {
            state,
            changed_at: Utc::now(),
        };
        let body = serde_json::to_vec(&control).expect("control serialises");
        self.kv
            .put(&key, body.into())
            .await
            .map_err(|e| ProcessError::transient(format!("backfill control {key}: {e}")))?;
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        Ok(())
    }

    /// Counts one handling into `consumer`'s progress (compare-and-set, retried on a race with
    /// another replica).
    pub async fn count(
        &self,
        merchant: &str,
        backfill_id: &str,
        consumer: &str,
        record: &AuditRecord,
    ) -> Result<(), ProcessError> {
        let key = format!("{}.{consumer}", control_key(merchant, backfill_id));
        let event_type = record
            .subject
            .as_deref()
            .and_then(ledger_events::parse_subject)
            .map(|(_, t)| t.as_str())
            .unwrap_or("");
        for _ in 0..16 {
            let entry = self
                .kv
                .entry(&key)
                .await
                .map_err(|e| ProcessError::transient(e.to_string()))?;
            let (mut progress, revision) = match &entry {
                Some(e) if e.operation == kv::Operation::Put => (
                    serde_json::from_slice::<Progress>(&e.value).unwrap_or_default(),
                    e.revision,
                ),
                Some(e) => (Progress::default(), e.revision),
                None => (Progress::default(), 0),
            };
            if !progress.count(
                event_type,
                &record.outcome,
                record.code.as_deref(),
                record.recorded_at,
            ) {
                return Ok(());
            }
            let body = serde_json::to_vec(&progress).expect("progress serialises");
            let written = if revision == 0 {
                self.kv
                    .create(&key, body.into())
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            } else {
                self.kv
                    .update(&key, body.into(), revision)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            };
            if written.is_ok() {
                return Ok(());
            }
        }
        Err(ProcessError::transient(format!(
            "backfill progress {key}: too many concurrent updates"
        )))
    }

    /// Every consumer's progress through a backfill, by consumer.
    pub async fn progress(
        &self,
        merchant: &str,
        backfill_id: &str,
    ) -> Result<BTreeMap<String, Progress>, ProcessError> {
        let prefix = format!("{}.", control_key(merchant, backfill_id));
        let mut keys = self
            .kv
            .keys()
            .await
            .map_err(|e| ProcessError::transient(e.to_string()))?;
        let mut out = BTreeMap::new();
        while let Some(key) = keys.next().await {
            let Ok(key) = key else { continue };
            let Some(consumer) = key.strip_prefix(&prefix) else {
                continue;
            };
            if let Ok(Some(bytes)) = self.kv.get(&key).await {
                if let Ok(progress) = serde_json::from_slice::<Progress>(&bytes) {
                    out.insert(consumer.to_string(), progress);
                }
            }
        }
        Ok(out)
    }

    /// The recorded control of a backfill, if the operator set one.
    pub async fn control(
        &self,
        merchant: &str,
        backfill_id: &str,
    ) -> Result<Option<Control>, ProcessError> {
        let key = control_key(merchant, backfill_id);
        Ok(self
            .kv
            .get(&key)
            .await
            .map_err(|e| ProcessError::transient(e.to_string()))?
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }
}

/// The headers of a merchant's backfills, newest last, read from the events stream (the last
/// header published for each run).
pub async fn headers(
    js: &jetstream::Context,
    merchant: &str,
) -> Result<Vec<BackfillHeader>, ProcessError> {
    let stream = js
        .get_stream(crate::bus::EVENTS_STREAM)
        .await
        .map_err(|e| ProcessError::transient(e.to_string()))?;
    let reader = stream
        .create_consumer(jetstream::consumer::pull::Config {
            filter_subject: header_subject(merchant, "*"),
            deliver_policy: jetstream::consumer::DeliverPolicy::LastPerSubject,
            ack_policy: jetstream::consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            memory_storage: true,
            ..Default::default()
        })
        .await
        .map_err(|e| ProcessError::transient(e.to_string()))?;
    let mut out = Vec::new();
    loop {
        let mut batch = reader
            .fetch()
            .max_messages(256)
            .expires(Duration::from_millis(300))
            .messages()
            .await
            .map_err(|e| ProcessError::transient(e.to_string()))?;
        let mut got = 0;
        let mut last = false;
        while let Some(Ok(message)) = batch.next().await {
            got += 1;
            last = message.info().map(|i| i.pending == 0).unwrap_or(true);
            // The subject is the authority: the header must name its merchant and its run.
            let id_of_subject = message.subject.rsplit('.').next().unwrap_or("");
            match serde_json::from_slice::<BackfillHeader>(&message.payload) {
                Ok(header)
                    if header.merchant_id == merchant && header.backfill_id == id_of_subject =>
                {
                    out.push(header)
                }
                Ok(_) => {
                    tracing::warn!(subject = %message.subject, "backfill header names another merchant or run than its subject; ignored")
                }
                Err(e) => {
                    tracing::warn!(subject = %message.subject, error = %e, "unreadable backfill header; ignored")
                }
            }
        }
        if got == 0 || last {
            break;
        }
    }
    out.sort_by_key(|h| h.started_at);
    Ok(out)
}

/// Wraps a history consumer's handler: an event of a canceled backfill is skipped with
/// [`BACKFILL_CANCELED`], one of a paused backfill waits ([`ProcessError::Paused`]).
pub struct Gate {
    backfills: Backfills,
    inner: Arc<dyn Handler>,
}

impl Gate {
    /// Gates `inner` by the controls in `backfills`.
    pub fn new(backfills: Backfills, inner: Arc<dyn Handler>) -> Self {
        Gate { backfills, inner }
    }
}

#[async_trait::async_trait]
impl Handler for Gate {
    async fn handle(&self, delivery: &Delivery) -> Result<Outcome, ProcessError> {
        if ledger_events::is_history_subject(&delivery.subject) {
            if let Some(id) = backfill_id_of(&delivery.payload) {
                match self.backfills.state(&delivery.merchant, &id).await? {
                    BackfillState::Running => {}
                    BackfillState::Paused => {
                        return Err(ProcessError::Paused {
                            reason: format!("backfill {id} is paused"),
                        })
                    }
                    BackfillState::Canceled => {
                        return Ok(Outcome::Skipped(BACKFILL_CANCELED.to_string()))
                    }
                }
            }
        }
        self.inner.handle(delivery).await
    }

    async fn dead_letter(
        &self,
        delivery: &Delivery,
        error: &ProcessError,
    ) -> Result<(), ProcessError> {
        self.inner.dead_letter(delivery, error).await
    }
}

/// Counts every audited handling of a history event into its backfill's progress.
pub struct ProgressHook {
    backfills: Backfills,
    consumer: &'static str,
}

impl ProgressHook {
    /// Counts `consumer`'s handlings into `backfills`.
    pub fn new(backfills: Backfills, consumer: &'static str) -> Self {
        ProgressHook {
            backfills,
            consumer,
        }
    }
}

#[async_trait::async_trait]
impl AfterHandling for ProgressHook {
    async fn after(&self, delivery: &Delivery, record: &AuditRecord) {
        if !ledger_events::is_history_subject(&delivery.subject) {
            return;
        }
        let Some(id) = backfill_id_of(&delivery.payload) else {
            return;
        };
        if let Err(e) = self
            .backfills
            .count(&delivery.merchant, &id, self.consumer, record)
            .await
        {
            tracing::warn!(error = %e, backfill = id, "backfill progress not counted");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_documents_and_ends_only() {
        let at = Utc::now();
        let mut p = Progress::default();
        assert!(p.count("invoice.created", "applied", None, at));
        assert!(p.count("invoice.created", "already_done", None, at));
        assert!(p.count("invoice.created", "skipped", Some("period_locked"), at));
        assert!(p.count("creditmemo.created", "skipped", Some(BACKFILL_CANCELED), at));
        assert!(p.count("invoice.paid", "failed", Some("x"), at));
        assert!(!p.count("invoice.created", "retry", Some("x"), at));
        assert_eq!(p.documents.done, 2);
        assert_eq!(p.documents.skipped["period_locked"], 1);
        assert_eq!(p.documents.canceled, 1);
        assert_eq!(p.documents.ended(), 4);
        assert_eq!(p.others.failed, 1);
        assert_eq!(p.others.ended(), 1);
    }

    #[test]
    fn backfill_ids_come_from_the_payload() {
        assert_eq!(
            backfill_id_of(br#"{"backfill_id":"bf-1a2b","event_type":"invoice.created"}"#),
            Some("bf-1a2b".into())
        );
        assert_eq!(backfill_id_of(br#"{"event_type":"invoice.created"}"#), None);
        assert_eq!(backfill_id_of(br#"{"backfill_id":"bf.>"}"#), None);
        assert_eq!(
            header_subject("acme", "bf-1"),
            "magento.acme.history.backfill.bf-1"
        );
    }
}
