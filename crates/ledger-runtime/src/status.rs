//! The sync status feed: what became of every Magento entity (invoice, credit memo, payment,
//! customer, product) — pending, synced, skipped or failed, with the Sage reference, the skip
//! reason or error code and the time.
//!
//! The consumer services publish a [`StatusUpdate`] after every audited handling (see
//! [`StatusPublisher`], an [`crate::audit::AfterHandling`] hook) to the JetStream stream
//! [`STATUS_STREAM`] on `ledger.status.<merchant>`. The gateway copies the stream into its own
//! table and serves `GET /v1/status?cursor=N` from there, with a cursor that counts the
//! merchant's own changes (so the Magento module pulls its status with no inbound connection,
//! and no request creates a consumer). Later updates of an entity supersede earlier ones.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::audit::{AfterHandling, AuditRecord};
use crate::consumer::Delivery;

/// The status stream.
pub const STATUS_STREAM: &str = "LEDGER_STATUS";
/// Its subjects.
pub const STATUS_SUBJECTS: &str = "ledger.status.>";

/// The subject of a merchant's status updates.
pub fn subject(merchant: &str) -> String {
    format!("ledger.status.{merchant}")
}

/// Creates the status stream if it is missing (every service may be first).
pub async fn ensure_stream(js: &jetstream::Context, replicas: usize) -> Result<(), String> {
    js.get_or_create_stream(stream::Config {
        name: STATUS_STREAM.into(),
        subjects: vec![STATUS_SUBJECTS.into()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        // A year of changes; the newest state of every entity is far younger.
        max_age: Duration::from_secs(366 * 24 * 3600),
        num_replicas: replicas.max(1),
        description: Some(
            "Sync status changes per merchant; the status feed's cursor is the sequence".into(),
        ),
        ..Default::default()
    })
    .await
    .map(|_| ())
    .map_err(|e| format!("status stream: {e}"))
}

/// Sync state of an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// Received, not in Sage yet (waiting on a retry, a throttle or a paused connection).
    Pending,
    /// In Sage.
    Synced,
    /// Deliberately not synced; see `skip_reason`.
    Skipped,
    /// Could not be synced; see `error_code` (a dead letter an operator can retry).
    Failed,
}

/// One status change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusUpdate {
    /// `invoice`, `creditmemo`, `payment` (of an invoice), `customer`, `product`.
    pub entity: String,
    /// Magento document key (`invoice:1:000000123`, `customer:42`, `product:7`).
    pub document_key: String,
    /// New state.
    pub state: SyncState,
    /// Sage reference, when synced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sage_reference: Option<String>,
    /// Sage id of the record written, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sage_id: Option<String>,
    /// Sage's own number of the record, when synced: `SI-12` for an invoice, `SCN-3` for a
    /// credit note, a payment's `displayed_as`. What the merchant looks for in Sage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sage_number: Option<String>,
    /// Stable skip reason, when skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
    /// Human-readable detail beside `skip_reason` (which line, which rate, which dates), or
    /// beside `error_code` for a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable error code, when failed or pending after an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Human-readable error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Event that caused the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Service that reported it.
    pub service: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Entity name from an events subject `magento.<merchant>.<entity>.<action>` (or its history
/// form `magento.<merchant>.history.<entity>.<action>`).
pub fn entity_of(subject: &str) -> Option<&'static str> {
    let (_, event_type) = ledger_events::parse_subject(subject)?;
    Some(match (event_type.entity(), event_type.action()) {
        // A canceled or voided invoice is the invoice's own state (voided in Sage, or skipped
        // as `canceled`).
        ("invoice", "created") | ("invoice", "canceled") => "invoice",
        ("invoice", "paid") => "payment",
        ("creditmemo", _) => "creditmemo",
        ("customer", _) => "customer",
        ("product", _) => "product",
        _ => return None,
    })
}

/// The status change an audit record means, if it means one: events a consumer does not
/// handle (`not_handled:*`) and records without a document say nothing; repeated transient
/// failures are reported once (on the first delivery).
pub fn update_from_record(subject: &str, record: &AuditRecord) -> Option<StatusUpdate> {
    let entity = entity_of(subject)?;
    let document_key = record.document_key.clone()?;
    let (state, skip_reason, error_code) = match record.outcome.as_str() {
        "applied" | "already_done" => (SyncState::Synced, None, None),
        "skipped" => {
            let reason = record.code.clone().unwrap_or_default();
            if reason.starts_with("not_handled:") {
                return None;
            }
            (SyncState::Skipped, Some(reason), None)
        }
        "failed" => (SyncState::Failed, None, record.code.clone()),
        _ if record.delivered.unwrap_or(1) <= 1 => (SyncState::Pending, None, record.code.clone()),
        _ => return None,
    };
    // The first write is the record itself; later ones are what followed from it (a credit
    // note's refund or allocation).
    let sage_id = record
        .calls
        .iter()
        .find(|c| c.method != "GET" && c.error.is_none())
        .and_then(|c| c.sage_id.clone());
    Some(StatusUpdate {
        entity: entity.into(),
        document_key,
        state,
        sage_reference: if state == SyncState::Synced {
            record.reference.clone()
        } else {
            None
        },
        sage_id,
        sage_number: if state == SyncState::Synced {
            record.sage_number.clone().or_else(|| {
                record
                    .calls
                    .iter()
                    .find(|c| c.method != "GET" && c.error.is_none())
                    .and_then(|c| crate::audit::sage_number_of(&c.response))
            })
        } else {
            None
        },
        // A synced credit memo says how its credit note was settled (refunded, allocated,
        // left on account, waiting for the refund); the documents service notes it.
        detail: if matches!(state, SyncState::Skipped | SyncState::Failed)
            || (state == SyncState::Synced && entity == "creditmemo")
        {
            record.message.clone()
        } else {
            None
        },
        skip_reason,
        error_code,
        message: record.message.clone(),
        event_id: record.event_id.clone(),
        service: record.service.clone(),
        at: record.recorded_at,
    })
}

/// Publishes the status change of every audited handling to [`STATUS_STREAM`].
pub struct StatusPublisher {
    js: jetstream::Context,
}

impl StatusPublisher {
    /// A publisher on `js`.
    pub fn new(js: jetstream::Context) -> Self {
        StatusPublisher { js }
    }
}

#[async_trait::async_trait]
impl AfterHandling for StatusPublisher {
    async fn after(&self, delivery: &Delivery, record: &AuditRecord) {
        let Some(update) = update_from_record(&delivery.subject, record) else {
            return;
        };
        publish(&self.js, &delivery.merchant, &update).await;
    }
}

/// Publishes one status change of `merchant`; a failure is logged, not returned (the state
/// itself is committed, and the entity's next handling reports again).
pub async fn publish(js: &jetstream::Context, merchant: &str, update: &StatusUpdate) {
    let body = serde_json::to_vec(update).unwrap_or_default();
    let sent = match js.publish(subject(merchant), body.into()).await {
        Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, merchant, "status update not published");
    }
}

/// One entry of the feed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeedItem {
    /// Its cursor (the stream sequence): pass it back to read what came after.
    pub cursor: u64,
    /// The change.
    #[serde(flatten)]
    pub update: StatusUpdate,
}

/// A page of a merchant's feed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeedPage {
    /// Changes after the requested cursor, oldest first.
    pub items: Vec<FeedItem>,
    /// Cursor to ask with next (the last item's, or the requested one when there was none).
    pub next_cursor: u64,
    /// Whether more changes are waiting after `next_cursor`.
    pub more: bool,
}

/// Reads up to `limit` of `merchant`'s status changes after stream sequence `cursor`, with a
/// short-lived consumer (for tools; the gateway's feed does not use it: one consumer per call
/// is too costly for a public endpoint).
pub async fn read_feed(
    js: &jetstream::Context,
    merchant: &str,
    cursor: u64,
    limit: usize,
) -> Result<FeedPage, String> {
    let stream = js
        .get_stream(STATUS_STREAM)
        .await
        .map_err(|e| format!("status stream: {e}"))?;
    let reader = stream
        .create_consumer(consumer::pull::Config {
            filter_subject: subject(merchant),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: cursor.saturating_add(1),
            },
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            memory_storage: true,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("status reader: {e}"))?;
    let name = reader.cached_info().name.clone();
    let mut page = FeedPage {
        items: Vec::new(),
        next_cursor: cursor,
        more: false,
    };
    let result = async {
        let mut messages = reader
            .fetch()
            .max_messages(limit.max(1))
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .map_err(|e| format!("status read: {e}"))?;
        while let Some(message) = messages.next().await {
            let message = message.map_err(|e| format!("status read: {e}"))?;
            let info = message.info().map_err(|e| format!("status read: {e}"))?;
            let (seq, pending) = (info.stream_sequence, info.pending);
            page.next_cursor = seq;
            page.more = pending > 0;
            if let Ok(update) = serde_json::from_slice::<StatusUpdate>(&message.payload) {
                page.items.push(FeedItem {
                    cursor: seq,
                    update,
                });
            }
        }
        Ok::<(), String>(())
    }
    .await;
    let _ = stream.delete_consumer(&name).await;
    result.map(|()| page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_come_from_the_subject() {
        assert_eq!(entity_of("magento.m.invoice.created"), Some("invoice"));
        assert_eq!(entity_of("magento.m.invoice.paid"), Some("payment"));
        assert_eq!(entity_of("magento.m.invoice.canceled"), Some("invoice"));
        assert_eq!(
            entity_of("magento.m.creditmemo.canceled"),
            Some("creditmemo")
        );
        assert_eq!(
            entity_of("magento.m.creditmemo.created"),
            Some("creditmemo")
        );
        assert_eq!(entity_of("magento.m.customer.saved"), Some("customer"));
        assert_eq!(entity_of("magento.m.product.saved"), Some("product"));
        assert_eq!(entity_of("magento.m.order.placed"), None);
        assert_eq!(entity_of("magento.m.history.invoice.paid"), Some("payment"));
        assert_eq!(entity_of("magento.m.history.backfill.bf-1"), None);
    }

    fn record(outcome: &str, code: Option<&str>, message: Option<&str>) -> AuditRecord {
        AuditRecord {
            service: "documents".into(),
            consumer: "documents".into(),
            merchant_id: "m".into(),
            chain_seq: 1,
            event_id: Some("e".into()),
            subject: Some("magento.m.creditmemo.created".into()),
            stream_sequence: Some(1),
            delivered: Some(1),
            document_key: Some("creditmemo:1:000000045".into()),
            reference: Some("000000045/000000123".into()),
            sage_number: None,
            outcome: outcome.into(),
            code: code.map(str::to_string),
            message: message.map(str::to_string),
            calls: Vec::new(),
            started_at: Utc::now(),
            duration_ms: 1,
            recorded_at: Utc::now(),
        }
    }

    fn call(method: &str, id: &str, response: serde_json::Value) -> crate::audit::SageCall {
        crate::audit::SageCall {
            method: method.into(),
            path: "x".into(),
            query: Vec::new(),
            request: serde_json::Value::Null,
            idempotency_id: None,
            status: Some(201),
            response,
            sage_id: Some(id.into()),
            x_request_id: None,
            duration_ms: 1,
            error: None,
            at: Utc::now(),
        }
    }

    #[test]
    fn a_skip_carries_its_detail_beside_the_reason() {
        let detail =
            "credit note dated 2025-03-20 in Magento: period locked in Sage until 2025-03-31";
        let update = update_from_record(
            "magento.m.creditmemo.created",
            &record("skipped", Some("period_locked"), Some(detail)),
        )
        .unwrap();
        assert_eq!(update.state, SyncState::Skipped);
        assert_eq!(update.skip_reason.as_deref(), Some("period_locked"));
        assert_eq!(update.detail.as_deref(), Some(detail));
        assert_eq!(update.sage_number, None);
        let json = serde_json::to_value(&update).unwrap();
        assert_eq!(json["detail"], detail);
    }

    #[test]
    fn a_synced_document_carries_sages_number_and_its_own_id() {
        // A credit note, then its refund: the update names the credit note, not the refund.
        let mut r = record("applied", None, None);
        r.calls = vec![
            call("GET", "fs", serde_json::json!({})),
            call(
                "POST",
                "cn-1",
                serde_json::json!({"id": "cn-1", "credit_note_number": "SCN-3", "displayed_as": "SCN-3"}),
            ),
            call(
                "POST",
                "pay-1",
                serde_json::json!({"id": "pay-1", "displayed_as": "000000045"}),
            ),
        ];
        let update = update_from_record("magento.m.creditmemo.created", &r).unwrap();
        assert_eq!(update.sage_id.as_deref(), Some("cn-1"));
        assert_eq!(update.sage_number.as_deref(), Some("SCN-3"));
        assert_eq!(update.detail, None);
        // The settlement the documents service noted travels as the detail.
        let mut settled = r.clone();
        settled.message = Some("refunded 24.00 GBP".into());
        let update = update_from_record("magento.m.creditmemo.created", &settled).unwrap();
        assert_eq!(update.detail.as_deref(), Some("refunded 24.00 GBP"));
        // Not for an invoice: its message is not a settlement.
        let mut invoice = settled.clone();
        invoice.document_key = Some("invoice:1:000000123".into());
        let update = update_from_record("magento.m.invoice.created", &invoice).unwrap();
        assert_eq!(update.detail, None);
        // A re-report without calls uses the number the service noted.
        let mut again = record("already_done", None, None);
        again.sage_number = Some("SCN-3".into());
        let update = update_from_record("magento.m.creditmemo.created", &again).unwrap();
        assert_eq!(update.sage_number.as_deref(), Some("SCN-3"));
    }
}
