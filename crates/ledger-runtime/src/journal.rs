//! Each consumer service's journal of sync steps and dead letters.
//!
//! Every service keeps these tables in its own schema (see [`crate::db`]); the code is shared,
//! the data is not. A step is recorded as an *intent* before its Sage call and *done* (with the
//! Sage id) after it, so a redelivered event knows which effects exist, which are missing and
//! which are in doubt (intent without outcome: resolved by re-sending with the same
//! idempotency id, which Sage answers with its first result).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::consumer::{Delivery, Outcome};
use crate::error::ProcessError;

/// Creates the journal tables in the pool's schema if they are missing.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::Error> {
    // Plain DDL rather than a second sqlx migrator: the service's own migrations own the
    // `_sqlx_migrations` history of its schema.
    sqlx::raw_sql(
        r#"
        CREATE TABLE IF NOT EXISTS sync_steps (
            event_id        UUID NOT NULL,
            step            TEXT NOT NULL,
            merchant_id     TEXT NOT NULL,
            idempotency_id  TEXT NOT NULL,
            state           TEXT NOT NULL CHECK (state IN ('intent', 'done')),
            sage_id         TEXT,
            request_id      TEXT,
            stream_sequence BIGINT,
            started_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
            finished_at     TIMESTAMPTZ,
            PRIMARY KEY (merchant_id, event_id, step)
        );
        -- Steps are the merchant's own: an event id one store reuses can never read or mark
        -- another merchant's step (tables made before this key carried event id and step only).
        DO $$
        BEGIN
            IF NOT EXISTS (
                SELECT 1 FROM pg_index i
                JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                WHERE i.indrelid = 'sync_steps'::regclass AND i.indisprimary AND a.attname = 'merchant_id'
            ) THEN
                ALTER TABLE sync_steps DROP CONSTRAINT sync_steps_pkey;
                ALTER TABLE sync_steps ADD PRIMARY KEY (merchant_id, event_id, step);
            END IF;
        END $$;
        CREATE TABLE IF NOT EXISTS dead_letters (
            id              BIGSERIAL PRIMARY KEY,
            merchant_id     TEXT NOT NULL,
            event_id        TEXT,
            subject         TEXT NOT NULL,
            stream_sequence BIGINT NOT NULL,
            code            TEXT NOT NULL,
            field           TEXT,
            message         TEXT NOT NULL,
            detail          JSONB NOT NULL DEFAULT 'null'::jsonb,
            created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
            retried_at      TIMESTAMPTZ
        );
        CREATE INDEX IF NOT EXISTS dead_letters_merchant ON dead_letters (merchant_id, created_at);
        "#,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// What the journal knows of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepState {
    /// Never attempted.
    New,
    /// Attempted; outcome unknown (crash or timeout between the call and the commit).
    InDoubt,
    /// Done, with the Sage id it produced.
    Done(Option<String>),
}

/// Reads the state of `(merchant, event_id, step)`.
pub async fn step_state(
    pool: &PgPool,
    merchant: &str,
    event_id: Uuid,
    step: &str,
) -> Result<StepState, sqlx::Error> {
    let row: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT state, sage_id FROM sync_steps WHERE merchant_id = $1 AND event_id = $2 AND step = $3",
    )
    .bind(merchant)
    .bind(event_id)
    .bind(step)
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        None => StepState::New,
        Some((state, sage_id)) if state == "done" => StepState::Done(sage_id),
        Some(_) => StepState::InDoubt,
    })
}

/// Records the intent to perform a step (before calling Sage). Returns whether this call
/// recorded it: `false` when an earlier attempt's intent (or outcome) is already there.
pub async fn record_intent(
    pool: &PgPool,
    merchant: &str,
    event_id: Uuid,
    step: &str,
    idempotency_id: &str,
    stream_sequence: u64,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO sync_steps (event_id, step, merchant_id, idempotency_id, state, stream_sequence)
         VALUES ($1, $2, $3, $4, 'intent', $5)
         ON CONFLICT (merchant_id, event_id, step) DO NOTHING",
    )
    .bind(event_id)
    .bind(step)
    .bind(merchant)
    .bind(idempotency_id)
    .bind(stream_sequence as i64)
    .execute(pool)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Withdraws an intent that this attempt recorded ([`record_intent`] returned `true`) when
/// its call provably changed nothing in Sage (refused before it was handled, e.g. a 429 from
/// Sage or from Ledger's own call budget). The next attempt is then new rather than in doubt,
/// and does not look Sage up for an earlier attempt's result. A step already done is kept.
pub async fn withdraw_intent(
    pool: &PgPool,
    merchant: &str,
    event_id: Uuid,
    step: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM sync_steps
         WHERE merchant_id = $1 AND event_id = $2 AND step = $3 AND state = 'intent'",
    )
    .bind(merchant)
    .bind(event_id)
    .bind(step)
    .execute(pool)
    .await?;
    Ok(())
}

/// Marks a step done inside the caller's transaction, so the outcome and the projection that
/// depends on it commit together.
pub async fn record_done(
    tx: &mut sqlx::PgConnection,
    merchant: &str,
    event_id: Uuid,
    step: &str,
    sage_id: Option<&str>,
    request_id: Option<&str>,
) -> Result<(), sqlx::Error> {
    // The riskiest moment: Sage has the document, our database does not know yet.
    crate::failpoint::hit("after_sage_write");
    sqlx::query(
        "UPDATE sync_steps SET state = 'done', sage_id = $3, request_id = $4, finished_at = now()
         WHERE merchant_id = $5 AND event_id = $1 AND step = $2",
    )
    .bind(event_id)
    .bind(step)
    .bind(sage_id)
    .bind(request_id)
    .bind(merchant)
    .execute(tx)
    .await?;
    Ok(())
}

/// A dead letter as listed to operators.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct DeadLetter {
    /// Row id (for retrying one).
    pub id: i64,
    /// Merchant.
    pub merchant_id: String,
    /// Event id, when the event could be parsed far enough.
    pub event_id: Option<String>,
    /// Subject it was read from.
    pub subject: String,
    /// Its sequence in the events stream (the payload stays there).
    pub stream_sequence: i64,
    /// Stable reason code.
    pub code: String,
    /// Offending field, when known.
    pub field: Option<String>,
    /// Reason.
    pub message: String,
    /// Structured detail (e.g. Sage's parsed `$dataCode`/`$source` list).
    pub detail: Value,
    /// When it was recorded.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Records a dead letter for `delivery`. The event itself stays in the stream (the log is
/// never trimmed by failures), so a retry re-reads it by sequence.
pub async fn record_dead_letter(
    pool: &PgPool,
    delivery: &Delivery,
    event_id: Option<&str>,
    error: &ProcessError,
) -> Result<(), sqlx::Error> {
    let (code, field, message, detail) = match error {
        ProcessError::Permanent {
            code,
            field,
            message,
            detail,
        } => (code.clone(), field.clone(), message.clone(), detail.clone()),
        other => (
            other.code().to_string(),
            None,
            other.to_string(),
            Value::Null,
        ),
    };
    sqlx::query(
        "INSERT INTO dead_letters (merchant_id, event_id, subject, stream_sequence, code, field, message, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&delivery.merchant)
    .bind(event_id)
    .bind(&delivery.subject)
    .bind(delivery.stream_sequence as i64)
    .bind(code)
    .bind(field)
    .bind(message)
    .bind(detail)
    .execute(pool)
    .await?;
    Ok(())
}

/// Lists dead letters not yet retried, newest first.
pub async fn list_dead_letters(
    pool: &PgPool,
    merchant: Option<&str>,
) -> Result<Vec<DeadLetter>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, merchant_id, event_id, subject, stream_sequence, code, field, message, detail, created_at
         FROM dead_letters WHERE retried_at IS NULL AND ($1::text IS NULL OR merchant_id = $1)
         ORDER BY created_at DESC LIMIT 1000",
    )
    .bind(merchant)
    .fetch_all(pool)
    .await
}

/// The event id in a raw event, if it has one (for dead letters of unparseable events).
pub fn event_id_of(payload: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    v.get("event_id")?.as_str().map(str::to_string)
}

/// The outcome of an event kept out of Sage on purpose (`what`: `document`, `payment`,
/// `product`), once the service has written its hold: the detail goes into the event's audit
/// record and the log, the reason code into the outcome.
pub fn skipped(what: &str, key: &str, reason: &str, detail: &str) -> Outcome {
    crate::audit::note_detail(detail);
    tracing::info!(what, key, reason, detail, "kept out of Sage");
    Outcome::Skipped(reason.to_string())
}
