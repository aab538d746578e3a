//! The audit trail: for every (event, consumer) handling, which Sage calls were made, what was
//! sent and answered, and how it ended, hash-chained per merchant so that an edited, removed or
//! reordered record is detected.
//!
//! How records come about:
//! - [`capture`] runs a future inside an *audit scope* (a tokio task-local). While it runs,
//!   every Sage call made through `ledger_rpc::GatedSage` is appended to the scope with
//!   [`record_call`] (outside a scope that is a no-op), and the handler may name the Magento
//!   document it is about with [`note_document`] and the Sage reference with
//!   [`note_reference`].
//! - [`Audited`] wraps a service's [`Handler`]: every delivery (and every dead-letter retry or
//!   replay, which go through the same handler) is captured and appended as one
//!   [`AuditRecord`] with its outcome and stable skip-reason or error code, linked to the
//!   event's stream sequence.
//! - [`AuditLog::append`] writes a record to the service's own schema. Records of one
//!   merchant form a chain: each stores `hash = SHA-256(prev_hash || "\n" || content)` where
//!   `content` is the record's canonical JSON (object keys sorted, no whitespace) and
//!   `prev_hash` the hash of the merchant's previous record (64 zeros for the first). The table
//!   has a unique `(merchant_id, chain_seq)`: an append that loses the race for a link reads
//!   the new head and tries again, so concurrent writers (other replicas too) cannot fork it.
//! - [`AuditLog::verify`] walks a merchant's chain and names the first broken link.
//!
//! Served over NATS request/reply on `ledger.rpc.<service>.audit` ([`subject`], [`serve`]):
//! `ledgerctl audit` and the gateway's `/v1/admin/audit` ask the services, which own the
//! tables.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, SubsecRound, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::consumer::{Delivery, Handler, Outcome};
use crate::error::ProcessError;
use crate::shutdown::Shutdown;

/// `prev_hash` of a merchant's first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Creates the audit table in the pool's schema if it is missing.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(
        r#"
        CREATE TABLE IF NOT EXISTS audit_records (
            id              BIGSERIAL PRIMARY KEY,
            merchant_id     TEXT NOT NULL,
            chain_seq       BIGINT NOT NULL,
            consumer        TEXT NOT NULL,
            event_id        TEXT,
            document_key    TEXT,
            stream_sequence BIGINT,
            outcome         TEXT NOT NULL,
            recorded_at     TIMESTAMPTZ NOT NULL,
            content         TEXT NOT NULL,
            prev_hash       TEXT NOT NULL,
            hash            TEXT NOT NULL,
            UNIQUE (merchant_id, chain_seq)
        );
        CREATE INDEX IF NOT EXISTS audit_records_time ON audit_records (merchant_id, recorded_at);
        CREATE INDEX IF NOT EXISTS audit_records_event ON audit_records (event_id);
        CREATE INDEX IF NOT EXISTS audit_records_document ON audit_records (merchant_id, document_key);
        -- A replay asks which of a batch of stream messages are already synced.
        CREATE INDEX IF NOT EXISTS audit_records_sequence ON audit_records (merchant_id, stream_sequence);
        "#,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// One HTTP-level call to Sage as the audit keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SageCall {
    /// `GET`, `POST`, `PUT`, `DELETE`.
    pub method: String,
    /// Path below the API root, without the query (e.g. `sales_invoices`, `contacts/abc`).
    pub path: String,
    /// Query parameters sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<(String, String)>,
    /// The request body as sent, with secrets redacted ([`redact`]); `null` for reads.
    #[serde(default)]
    pub request: Value,
    /// The idempotency id sent with a write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_id: Option<String>,
    /// HTTP status of the answer; `None` when none arrived (timeout, connection error) or the
    /// call was refused before it was sent (call budget).
    pub status: Option<u16>,
    /// Summary of the answer ([`summarize`]): ids, reference, totals, item counts.
    #[serde(default)]
    pub response: Value,
    /// Sage id of the record the call created, changed or read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sage_id: Option<String>,
    /// Sage's `x_request_id`, to quote to Sage support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_request_id: Option<String>,
    /// Time the call took, in milliseconds.
    pub duration_ms: u64,
    /// Stable error code when the call failed (e.g. `sage.RecordInvalid`, `sage.http_500`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the call was made.
    pub at: DateTime<Utc>,
}

/// What a scope collected.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    /// Sage calls in the order they were made.
    pub calls: Vec<SageCall>,
    /// The Magento document the work was about (see [`note_document`]).
    pub document_key: Option<String>,
    /// The Sage reference of the document (see [`note_reference`]).
    pub reference: Option<String>,
    /// Sage's own number of the record (see [`note_sage_number`]).
    pub sage_number: Option<String>,
    /// The human-readable detail of a skip (see [`note_detail`]).
    pub detail: Option<String>,
}

tokio::task_local! {
    static SCOPE: Arc<Mutex<Captured>>;
}

fn with_scope(f: impl FnOnce(&mut Captured)) {
    let _ = SCOPE.try_with(|s| f(&mut s.lock().unwrap_or_else(|p| p.into_inner())));
}

/// Whether the current task runs inside an audit scope (callers skip building call records
/// when it does not).
pub fn active() -> bool {
    SCOPE.try_with(|_| ()).is_ok()
}

/// Appends a Sage call to the current audit scope, if there is one.
pub fn record_call(call: SageCall) {
    with_scope(|c| c.calls.push(call));
}

/// Names the Magento document key (e.g. `invoice:1:000000123`) the current work is about.
pub fn note_document(key: &str) {
    with_scope(|c| c.document_key = Some(key.to_string()));
}

/// Names the Sage reference of the document the current work produced or found.
pub fn note_reference(reference: &str) {
    with_scope(|c| c.reference = Some(reference.to_string()));
}

/// Names Sage's own number of the record the current work produced or found: the
/// `invoice_number` (`SI-12`), `credit_note_number` (`SCN-3`) or, for a payment, its
/// `displayed_as`. Status views show it to the merchant next to the Sage id.
pub fn note_sage_number(number: &str) {
    if !number.trim().is_empty() {
        with_scope(|c| c.sage_number = Some(number.trim().to_string()));
    }
}

/// Gives the human-readable detail of a skip (which line, which rate, which dates); the
/// record keeps it as its message, next to the stable reason code.
pub fn note_detail(detail: &str) {
    with_scope(|c| c.detail = Some(detail.to_string()));
}

/// Sage's own number in a write's answer: `invoice_number`, `credit_note_number`, else
/// `displayed_as` (payments and allocations have no number of their own).
pub fn sage_number_of(body: &Value) -> Option<String> {
    ["invoice_number", "credit_note_number", "displayed_as"]
        .iter()
        .find_map(|f| body.get(*f).and_then(Value::as_str))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Runs `fut` in a fresh audit scope and returns its output with what the scope collected.
pub async fn capture<F: Future>(fut: F) -> (F::Output, Captured) {
    let scope = Arc::new(Mutex::new(Captured::default()));
    let out = SCOPE.scope(scope.clone(), fut).await;
    let captured = scope.lock().unwrap_or_else(|p| p.into_inner()).clone();
    (out, captured)
}

/// Keys whose values never reach the audit (case-insensitive substring match).
const SECRET_KEYS: &[&str] = &[
    "token",
    "secret",
    "password",
    "authorization",
    "api_key",
    "apikey",
    "client_secret",
];

/// The body with every value under a secret-looking key replaced by `"<redacted>"`.
pub fn redact(body: &Value) -> Value {
    match body {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase();
                    if SECRET_KEYS.iter().any(|s| lower.contains(s)) {
                        (k.clone(), Value::String("<redacted>".into()))
                    } else {
                        (k.clone(), redact(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

/// Fields of a Sage answer worth keeping in the audit.
const SUMMARY_FIELDS: &[&str] = &[
    "id",
    "displayed_as",
    "reference",
    "invoice_number",
    "credit_note_number",
    "contact_id",
    "currency",
    "date",
    "net_amount",
    "tax_amount",
    "total_amount",
    "outstanding_amount",
    "status",
    "transaction_type",
    "payment_method",
    "$total",
    "$page",
];

/// A short summary of a Sage answer: ids, reference, totals, status; for listings the item
/// count and the ids and references of the first items.
pub fn summarize(body: &Value) -> Value {
    let Value::Object(map) = body else {
        return Value::Null;
    };
    let mut out = Map::new();
    for field in SUMMARY_FIELDS {
        if let Some(v) = map.get(*field) {
            let v = match v {
                // Nested links (status, contact, currency) keep only their id.
                Value::Object(inner) => inner
                    .get("id")
                    .cloned()
                    .unwrap_or_else(|| inner.get("displayed_as").cloned().unwrap_or(Value::Null)),
                other => other.clone(),
            };
            out.insert((*field).to_string(), v);
        }
    }
    if let Some(Value::Object(contact)) = map.get("contact") {
        if let Some(id) = contact.get("id") {
            out.insert("contact_id".into(), id.clone());
        }
    }
    if let Some(Value::Array(items)) = map.get("$items") {
        out.insert("items".into(), Value::from(items.len()));
        let firsts: Vec<Value> = items.iter().take(5).map(summarize).collect();
        out.insert("first_items".into(), Value::Array(firsts));
    }
    Value::Object(out)
}

/// Canonical JSON: object keys sorted, no insignificant whitespace. The hash covers exactly
/// this text, which is stored as it was hashed.
pub fn canonical_json(value: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&map[k]));
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    // serde_json's map keeps insertion order only with `preserve_order`; inserting in sorted
    // order gives sorted output either way.
    serde_json::to_string(&sorted(value)).unwrap_or_default()
}

/// The fingerprint of a request body: SHA-256 over its [`canonical_json`], lower-case hex.
/// Two bodies with the same fields and values (in any key order) have the same fingerprint;
/// services keep it to tell whether a write would change anything.
pub fn fingerprint(value: &Value) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(canonical_json(value).as_bytes()))
}

/// The hash of a record: SHA-256 over the previous hash, a newline and the canonical content,
/// lower-case hex.
pub fn chain_hash(prev_hash: &str, content: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(content.as_bytes());
    data_encoding::HEXLOWER.encode(&h.finalize())
}

/// One audit record: one handling of one event (or one RPC on its behalf) by one consumer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Service whose schema holds the chain (`contacts`, `documents`, `payments`).
    pub service: String,
    /// Consumer or responder that did the work (`documents`, `contacts-products`,
    /// `contacts.ensure`, …).
    pub consumer: String,
    /// Merchant.
    pub merchant_id: String,
    /// Position in the merchant's chain in this service, from 1.
    pub chain_seq: i64,
    /// Event id.
    pub event_id: Option<String>,
    /// Subject the event was read from.
    pub subject: Option<String>,
    /// Sequence of the event in the events stream.
    pub stream_sequence: Option<i64>,
    /// Delivery count of the event at this handling.
    pub delivered: Option<i64>,
    /// Magento document key (e.g. `invoice:1:000000123`, `customer:42`).
    pub document_key: Option<String>,
    /// Sage reference of the document, when known.
    pub reference: Option<String>,
    /// Sage's own number of the record (`SI-12`, `SCN-3`, a payment's `displayed_as`), when
    /// known. Absent from older records (and so from their hashed content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sage_number: Option<String>,
    /// `applied`, `already_done`, `skipped`, `failed`, `retry`, `throttled`, `paused`.
    pub outcome: String,
    /// Stable skip reason (for `skipped`) or error code (for failures).
    pub code: Option<String>,
    /// Human-readable error, for failures; the detail of a skip (which line, which rate,
    /// which dates).
    pub message: Option<String>,
    /// Sage calls in the order they were made.
    pub calls: Vec<SageCall>,
    /// When the handling started.
    pub started_at: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// When the record was appended (microsecond precision, as stored).
    pub recorded_at: DateTime<Utc>,
}

/// A stored record with its place in the chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredRecord {
    /// Row id.
    pub id: i64,
    /// Hash of the previous record of the merchant.
    pub prev_hash: String,
    /// This record's hash.
    pub hash: String,
    /// The record.
    pub record: AuditRecord,
}

/// Outcome label, code and message for a handling result.
pub fn outcome_of(
    result: &Result<Outcome, ProcessError>,
) -> (String, Option<String>, Option<String>) {
    match result {
        Ok(Outcome::Applied) => ("applied".into(), None, None),
        Ok(Outcome::AlreadyDone) => ("already_done".into(), None, None),
        Ok(Outcome::Skipped(reason)) => ("skipped".into(), Some(reason.clone()), None),
        Err(e) => error_outcome(e),
    }
}

/// Outcome label (`failed`, `retry`, `throttled`, `paused`), code and message for an error.
pub fn error_outcome(e: &ProcessError) -> (String, Option<String>, Option<String>) {
    let label = match e {
        ProcessError::Permanent { .. } => "failed",
        ProcessError::Transient { .. } => "retry",
        ProcessError::Throttled { .. } => "throttled",
        ProcessError::Paused { .. } => "paused",
    };
    (
        label.into(),
        Some(e.code().to_string()),
        Some(e.to_string()),
    )
}

/// The first broken link of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenLink {
    /// Row id of the record where the chain breaks.
    pub id: i64,
    /// Its position in the chain.
    pub chain_seq: i64,
    /// What is wrong.
    pub reason: String,
}

/// Result of verifying one merchant's chain in one service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Service.
    pub service: String,
    /// Merchant.
    pub merchant_id: String,
    /// Records checked.
    pub records: i64,
    /// Hash of the last record (anchor it elsewhere to detect truncation too).
    pub head_hash: String,
    /// Whether the whole chain holds.
    pub ok: bool,
    /// The first broken link, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken: Option<BrokenLink>,
}

/// Filters of [`AuditLog::query`]; all given ones must hold.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditQuery {
    /// Merchant.
    #[serde(default)]
    pub merchant: Option<String>,
    /// Event id.
    #[serde(default)]
    pub event_id: Option<String>,
    /// Magento document key (`invoice:1:000000123`) or its last part (the increment id
    /// `000000123`).
    #[serde(default)]
    pub document: Option<String>,
    /// Recorded at or after.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// Recorded before.
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    /// At most this many records (default 500, at most 5000).
    #[serde(default)]
    pub limit: Option<i64>,
}

type Row = (
    i64,
    String,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    String,
    DateTime<Utc>,
    String,
    String,
    String,
);
const COLUMNS: &str = "id, merchant_id, chain_seq, consumer, event_id, document_key, stream_sequence, outcome, recorded_at, content, prev_hash, hash";

/// A service's audit trail (in its own schema).
#[derive(Clone)]
pub struct AuditLog {
    service: &'static str,
    db: PgPool,
}

impl AuditLog {
    /// The audit trail of `service` in `db`'s schema.
    pub fn new(service: &'static str, db: PgPool) -> Self {
        AuditLog { service, db }
    }

    /// Service name.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// Appends a record to its merchant's chain; `chain_seq` and `recorded_at` are set here.
    /// Returns the stored record.
    ///
    /// Optimistic: read the chain's head, insert the next link, and start again if another
    /// writer (a concurrent handler, another replica) took that `chain_seq` first; the unique
    /// `(merchant_id, chain_seq)` makes a fork impossible. Two statements in the common case,
    /// where a lock held across a transaction took five round trips.
    pub async fn append(&self, mut record: AuditRecord) -> Result<StoredRecord, sqlx::Error> {
        record.service = self.service.to_string();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let head: Option<(i64, String)> = sqlx::query_as(
                "SELECT chain_seq, hash FROM audit_records WHERE merchant_id = $1 ORDER BY chain_seq DESC LIMIT 1",
            )
            .bind(&record.merchant_id)
            .fetch_optional(&self.db)
            .await?;
            let (seq, prev_hash) = head
                .map(|(s, h)| (s + 1, h))
                .unwrap_or((1, GENESIS_HASH.to_string()));
            record.chain_seq = seq;
            record.recorded_at = Utc::now().trunc_subsecs(6);
            let content = canonical_json(&serde_json::to_value(&record).unwrap_or_default());
            let hash = chain_hash(&prev_hash, &content);
            let inserted: Result<(i64,), sqlx::Error> = sqlx::query_as(
                "INSERT INTO audit_records (merchant_id, chain_seq, consumer, event_id, document_key, stream_sequence, outcome, recorded_at, content, prev_hash, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
            )
            .bind(&record.merchant_id)
            .bind(seq)
            .bind(&record.consumer)
            .bind(&record.event_id)
            .bind(&record.document_key)
            .bind(record.stream_sequence)
            .bind(&record.outcome)
            .bind(record.recorded_at)
            .bind(&content)
            .bind(&prev_hash)
            .bind(&hash)
            .fetch_one(&self.db)
            .await;
            match inserted {
                Ok((id,)) => {
                    return Ok(StoredRecord {
                        id,
                        prev_hash,
                        hash,
                        record,
                    })
                }
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() && attempt < 100 => {
                    // Someone appended first: link to their record instead. A short, growing
                    // pause keeps many writers of one chain from colliding in lockstep.
                    let pause = u64::from(attempt.min(20)) * rand_jitter_ms();
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Records matching `q`, oldest first.
    pub async fn query(&self, q: &AuditQuery) -> Result<Vec<StoredRecord>, sqlx::Error> {
        let limit = q.limit.unwrap_or(500).clamp(1, 5000);
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM audit_records
             WHERE ($1::text IS NULL OR merchant_id = $1)
               AND ($2::text IS NULL OR event_id = $2)
               AND ($3::text IS NULL OR document_key = $3 OR document_key LIKE '%:' || $3)
               AND ($4::timestamptz IS NULL OR recorded_at >= $4)
               AND ($5::timestamptz IS NULL OR recorded_at < $5)
             ORDER BY merchant_id, chain_seq LIMIT $6"
        ))
        .bind(&q.merchant)
        .bind(&q.event_id)
        .bind(&q.document)
        .bind(q.since)
        .bind(q.until)
        .bind(limit)
        .fetch_all(&self.db)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let (id, .., content, prev_hash, hash) = row;
                let record = serde_json::from_str(&content).ok()?;
                Some(StoredRecord {
                    id,
                    prev_hash,
                    hash,
                    record,
                })
            })
            .collect())
    }

    /// Walks `merchant`'s chain from the first record and reports the first broken link: a
    /// gap or repeat in `chain_seq`, a `prev_hash` that is not the previous record's hash, a
    /// hash that does not match the content, or an indexed column that disagrees with the
    /// content.
    pub async fn verify(&self, merchant: &str) -> Result<VerifyReport, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_records WHERE merchant_id = $1 ORDER BY chain_seq, id"
        );
        let mut rows = sqlx::query_as::<_, Row>(&sql)
            .bind(merchant)
            .fetch(&self.db);
        let mut expected_prev = GENESIS_HASH.to_string();
        let mut expected_seq = 1i64;
        let mut count = 0i64;
        let mut broken = None;
        while let Some(row) = rows.next().await {
            let row = row?;
            count += 1;
            if broken.is_some() {
                continue;
            }
            let (
                id,
                merchant_id,
                chain_seq,
                consumer,
                event_id,
                document_key,
                stream_sequence,
                outcome,
                recorded_at,
                content,
                prev_hash,
                hash,
            ) = row;
            let fail = |reason: String| {
                Some(BrokenLink {
                    id,
                    chain_seq,
                    reason,
                })
            };
            if chain_seq != expected_seq {
                broken = fail(format!("expected chain position {expected_seq}, found {chain_seq} (a record was removed or inserted)"));
            } else if prev_hash != expected_prev {
                broken = fail("prev_hash is not the previous record's hash".into());
            } else if chain_hash(&prev_hash, &content) != hash {
                broken = fail("content does not match its hash (record edited)".into());
            } else {
                match serde_json::from_str::<AuditRecord>(&content) {
                    Err(e) => broken = fail(format!("content unreadable: {e}")),
                    Ok(r) => {
                        let columns_agree = r.merchant_id == merchant_id
                            && r.chain_seq == chain_seq
                            && r.consumer == consumer
                            && r.event_id == event_id
                            && r.document_key == document_key
                            && r.stream_sequence == stream_sequence
                            && r.outcome == outcome
                            && r.recorded_at == recorded_at
                            && r.service == self.service;
                        if !columns_agree {
                            broken = fail("an indexed column disagrees with the hashed content (record edited)".into());
                        }
                    }
                }
            }
            expected_prev = hash;
            expected_seq = chain_seq + 1;
        }
        Ok(VerifyReport {
            service: self.service.to_string(),
            merchant_id: merchant.to_string(),
            records: count,
            head_hash: expected_prev,
            ok: broken.is_none(),
            broken,
        })
    }

    /// Appends the record of one handling of `delivery` by `consumer`.
    pub async fn record_delivery(
        &self,
        consumer: &str,
        delivery: &Delivery,
        result: &Result<Outcome, ProcessError>,
        captured: Captured,
        started_at: DateTime<Utc>,
        duration_ms: u64,
    ) -> Result<StoredRecord, sqlx::Error> {
        let (outcome, code, message) = outcome_of(result);
        let message = message.or(captured.detail);
        self.append(AuditRecord {
            service: self.service.to_string(),
            consumer: consumer.to_string(),
            merchant_id: delivery.merchant.clone(),
            chain_seq: 0,
            event_id: crate::journal::event_id_of(&delivery.payload),
            subject: Some(delivery.subject.clone()),
            stream_sequence: Some(delivery.stream_sequence as i64),
            delivered: Some(delivery.delivered),
            document_key: captured.document_key,
            reference: captured.reference,
            sage_number: captured.sage_number,
            outcome,
            code,
            message,
            calls: captured.calls,
            started_at,
            duration_ms,
            recorded_at: started_at,
        })
        .await
    }
}

/// A handler whose every handling is audited: the Sage calls it makes are captured and
/// appended, with the outcome, to the service's audit trail. Dead-letter retries and replays
/// that go through it are audited the same way.
pub struct Audited<H> {
    consumer: &'static str,
    log: AuditLog,
    inner: Arc<H>,
    hooks: Vec<Arc<dyn AfterHandling>>,
}

/// Something to do after every audited handling (e.g. publishing the entity's sync status).
#[async_trait::async_trait]
pub trait AfterHandling: Send + Sync + 'static {
    /// Called with the delivery, its result and the audit record that was appended (or
    /// would have been, when appending failed).
    async fn after(&self, delivery: &Delivery, record: &AuditRecord);
}

impl<H: Handler> Audited<H> {
    /// Audits `inner` as `consumer` into `log`.
    pub fn new(consumer: &'static str, log: AuditLog, inner: Arc<H>) -> Self {
        Audited {
            consumer,
            log,
            inner,
            hooks: Vec::new(),
        }
    }

    /// Adds a hook run after every handling.
    pub fn with_hook(mut self, hook: Arc<dyn AfterHandling>) -> Self {
        self.hooks.push(hook);
        self
    }

    /// The wrapped handler.
    pub fn inner(&self) -> &Arc<H> {
        &self.inner
    }
}

#[async_trait::async_trait]
impl<H: Handler> Handler for Audited<H> {
    async fn handle(&self, delivery: &Delivery) -> Result<Outcome, ProcessError> {
        if crate::dry_run::dry_run() {
            // A dry run changes nothing: no record, no status; the replay reports the calls.
            crate::consumer::check_subject_authority(delivery)?;
            return self.inner.handle(delivery).await;
        }
        let started_at = Utc::now();
        let clock = Instant::now();
        // The subject is the only authority for the merchant: checked here, once, for every
        // handler and every path (consumer, dead-letter retry, replay), before any effect.
        let (result, captured) = capture(async {
            crate::consumer::check_subject_authority(delivery)?;
            self.inner.handle(delivery).await
        })
        .await;
        let duration_ms = clock.elapsed().as_millis() as u64;
        let record = match self
            .log
            .record_delivery(
                self.consumer,
                delivery,
                &result,
                captured,
                started_at,
                duration_ms,
            )
            .await
        {
            Ok(stored) => Some(stored.record),
            Err(e) => {
                // The effect is committed already; failing the delivery now would not undo it.
                tracing::error!(error = %e, service = self.log.service, "audit record not written");
                None
            }
        };
        if let Some(record) = record {
            for hook in &self.hooks {
                hook.after(delivery, &record).await;
            }
        }
        result
    }

    async fn dead_letter(
        &self,
        delivery: &Delivery,
        error: &ProcessError,
    ) -> Result<(), ProcessError> {
        self.inner.dead_letter(delivery, error).await
    }
}

/// The request subject of a service's audit API.
pub fn subject(service: &str) -> String {
    format!("ledger.rpc.{service}.audit")
}

/// What an operator (or the gateway) asks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Records matching the filters.
    Show(AuditQuery),
    /// Verify a merchant's chain.
    Verify {
        /// Merchant.
        merchant: String,
    },
}

/// The answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    /// For [`Command::Show`].
    Records {
        /// Matching records, oldest first per merchant.
        records: Vec<StoredRecord>,
    },
    /// For [`Command::Verify`].
    Verified(VerifyReport),
    /// The request could not be served.
    Error {
        /// Why.
        message: String,
    },
}

/// Answers one command.
pub async fn answer(log: &AuditLog, command: Command) -> Answer {
    let result = match command {
        Command::Show(q) => log
            .query(&q)
            .await
            .map(|records| Answer::Records { records }),
        Command::Verify { merchant } => log.verify(&merchant).await.map(Answer::Verified),
    };
    result.unwrap_or_else(|e| Answer::Error {
        message: e.to_string(),
    })
}

/// Serves the audit API of `log`'s service until `shutdown`: endpoint `audit` of the
/// service's NATS service ([`crate::micro`]), each request in its own task.
pub async fn serve(
    client: async_nats::Client,
    log: AuditLog,
    shutdown: Shutdown,
) -> Result<(), async_nats::SubscribeError> {
    use crate::micro::Reply;
    let service = log.service;
    crate::micro::serve(
        &client,
        service,
        "audit",
        &subject(service),
        shutdown,
        move |msg| {
            let log = log.clone();
            async move {
                let command =
                    match crate::micro::decode(&msg.payload, |message| Answer::Error { message }) {
                        Ok(command) => command,
                        Err(reply) => return Some(reply),
                    };
                let answered = answer(&log, command).await;
                Some(match &answered {
                    Answer::Error { message } => {
                        Reply::failed(&answered, 500, format!("audit: {message}"))
                    }
                    _ => Reply::ok(&answered),
                })
            }
        },
    )
    .await
}

/// 0–2 ms, from the clock's sub-millisecond digits: enough to break a lockstep, no RNG needed.
fn rand_jitter_ms() -> u64 {
    u64::from(Utc::now().timestamp_subsec_micros() % 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = json!({"b": 1, "a": {"z": [ {"y": 1, "x": 2} ], "c": null}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":null,"z":[{"x":2,"y":1}]},"b":1}"#
        );
    }

    #[test]
    fn secrets_are_redacted_anywhere() {
        let v = json!({"contact": {"name": "A", "access_token": "x", "nested": [{"Client_Secret": "y"}]}});
        let r = redact(&v);
        assert_eq!(r["contact"]["name"], "A");
        assert_eq!(r["contact"]["access_token"], "<redacted>");
        assert_eq!(r["contact"]["nested"][0]["Client_Secret"], "<redacted>");
    }

    #[test]
    fn summaries_keep_ids_references_and_totals() {
        let body = json!({"id": "i1", "reference": "INV-1", "total_amount": "12.00", "contact": {"id": "c1", "name": "x"},
                          "status": {"id": "UNPAID", "displayed_as": "Unpaid"}, "invoice_lines": [1, 2]});
        let s = summarize(&body);
        assert_eq!(
            s,
            json!({"id": "i1", "reference": "INV-1", "total_amount": "12.00", "contact_id": "c1", "status": "UNPAID"})
        );
        let list = json!({"$total": 1, "$items": [{"id": "a", "reference": "R", "extra": 1}]});
        assert_eq!(summarize(&list)["items"], 1);
        assert_eq!(
            summarize(&list)["first_items"][0],
            json!({"id": "a", "reference": "R"})
        );
    }

    #[test]
    fn the_hash_covers_the_previous_hash_and_the_content() {
        let a = chain_hash(GENESIS_HASH, "{}");
        assert_eq!(a.len(), 64);
        assert_ne!(a, chain_hash(&a, "{}"));
        assert_ne!(a, chain_hash(GENESIS_HASH, "{ }"));
    }

    #[tokio::test]
    async fn calls_outside_a_scope_are_ignored_and_inside_collected() {
        record_call(call("GET"));
        assert!(!active());
        let ((), captured) = capture(async {
            assert!(active());
            note_document("invoice:1:9");
            record_call(call("POST"));
        })
        .await;
        assert_eq!(captured.calls.len(), 1);
        assert_eq!(captured.document_key.as_deref(), Some("invoice:1:9"));
    }

    fn call(method: &str) -> SageCall {
        SageCall {
            method: method.into(),
            path: "sales_invoices".into(),
            query: vec![],
            request: Value::Null,
            idempotency_id: None,
            status: Some(200),
            response: Value::Null,
            sage_id: None,
            x_request_id: None,
            duration_ms: 1,
            error: None,
            at: Utc::now(),
        }
    }
}
