//! Replaying a merchant's events from the log through a service's own handler.
//!
//! After an outage (Sage down, a connection revoked for days, a wrong setting that
//! dead-lettered documents), an operator re-runs a merchant's events: the service reads the
//! events stream for its own subjects of that merchant with an ephemeral consumer, oldest
//! first, and hands each to its [`Handler`], the normal path with the same idempotency keys,
//! exactly as a dead-letter retry does. What is already in Sage is found in the service's
//! cross-reference ("already synced") and never posted twice. A dead letter of a replayed
//! event that now succeeds is marked retried.
//!
//! **Batched look-ups**: the reader fetches [`READ_BATCH`] messages at a time and asks the
//! service's audit trail once per batch which of them were already handled to the end
//! (outcome `applied` or `already_done` for that stream sequence, see [`already_synced`]).
//! Those are counted as already synced without running the handler (no Sage call, no
//! database round trip each); only the others go through the handler, in log order. An event
//! whose audit record is missing (a crash between the commit and the record) simply goes
//! through the handler, which finds it in its cross-reference as before.
//! [`Command::per_event_lookups`] turns this off (every event through the handler), for
//! measurements.
//!
//! **Dry run**: the handler runs inside [`dry_running`]; every Sage write (`POST`, `PUT`,
//! `DELETE` through `ledger_rpc::GatedSage`) is refused before it is sent, and reported with its
//! request body as what *would* be posted. Reads still happen. A dry run stops each event at
//! its first write (a document of a customer without a Sage contact reports the contact), and
//! may leave a journal *intent* for that step, which the real run resolves as it resolves any
//! in-doubt step (same request, same idempotency id). Dry runs are not written to the audit
//! trail or the status feed.
//!
//! Served on `ledger.rpc.<service>.replay` ([`subject`]): the asker sends a [`Command`] with a
//! reply inbox and receives [`Message::Progress`] every [`PROGRESS_EVERY`] events, then one
//! [`Message::Done`] (or [`Message::Error`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::audit::{self, Captured};
use crate::bus::EVENTS_STREAM;
use crate::consumer::{merchant_of, Delivery, Handler, Outcome};
use crate::error::ProcessError;
use crate::shutdown::Shutdown;

/// Events between two progress messages.
pub const PROGRESS_EVERY: u64 = 25;
/// Messages read from the log (and looked up in the audit trail) at a time.
pub const READ_BATCH: usize = 1_000;

pub use crate::dry_run::{dry_run, dry_running, DRY_RUN_MARKER};

/// The request subject of a service's replay API.
pub fn subject(service: &str) -> String {
    format!("ledger.rpc.{service}.replay")
}

/// What an operator asks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Command {
    /// Merchant whose events are replayed.
    pub merchant: String,
    /// Only events published at or after.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// Only events published before.
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    /// Report what would be posted; post nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Hand every event to the handler, without the batched look-up of what is already
    /// synced (slower; the outcome is the same). For measurements.
    #[serde(default)]
    pub per_event_lookups: bool,
    /// At most this many events of the range, the earliest first (all when absent).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// What became of one replayed event (listed for every event that was not already synced).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventResult {
    /// Stream sequence.
    pub stream_sequence: u64,
    /// Subject.
    pub subject: String,
    /// Event id.
    pub event_id: Option<String>,
    /// `applied`, `skipped`, `failed` or `would_post`.
    pub outcome: String,
    /// Skip reason or error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The writes a dry run refused (`POST sales_invoices {…}`), or the error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detail: Vec<String>,
}

/// Counts of a replay.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Service.
    pub service: String,
    /// Merchant.
    pub merchant: String,
    /// Whether it was a dry run.
    pub dry_run: bool,
    /// Events read.
    pub seen: u64,
    /// Already in Sage: nothing was (or would be) posted.
    pub already_synced: u64,
    /// Posted now.
    pub applied: u64,
    /// Deliberately not synced (with their reasons in `events`).
    pub skipped: u64,
    /// Failed (with their errors in `events`).
    pub failed: u64,
    /// Dry run: events that would post something.
    pub would_post: u64,
    /// Every event that was not already synced (the first 500).
    pub events: Vec<EventResult>,
}

/// One message of the answer stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    /// Counts so far.
    Progress(Summary),
    /// The final counts.
    Done(Summary),
    /// The replay could not run.
    Error {
        /// Why.
        message: String,
    },
}

/// The service's subject filters (`magento.*.invoice.created`) narrowed to one merchant.
pub fn merchant_subjects(filters: &[String], merchant: &str) -> Vec<String> {
    filters
        .iter()
        .map(|f| {
            let mut parts: Vec<&str> = f.split('.').collect();
            if parts.len() > 1 {
                parts[1] = merchant;
            }
            parts.join(".")
        })
        .collect()
}

fn classify(
    delivery: &Delivery,
    result: &Result<Outcome, ProcessError>,
    captured: &Captured,
    summary: &mut Summary,
) {
    let refused: Vec<String> = captured
        .calls
        .iter()
        .filter(|c| c.error.as_deref() == Some("dry_run"))
        .map(|c| {
            format!(
                "{} {} {}",
                c.method,
                c.path,
                audit::canonical_json(&c.request)
            )
        })
        .collect();
    let event_id = crate::journal::event_id_of(&delivery.payload);
    let mut push = |outcome: &str, code: Option<String>, detail: Vec<String>| {
        if summary.events.len() < 500 {
            summary.events.push(EventResult {
                stream_sequence: delivery.stream_sequence,
                subject: delivery.subject.clone(),
                event_id: event_id.clone(),
                outcome: outcome.into(),
                code,
                detail,
            });
        }
    };
    summary.seen += 1;
    match result {
        Ok(Outcome::AlreadyDone) => summary.already_synced += 1,
        Ok(Outcome::Applied) => {
            summary.applied += 1;
            push("applied", None, vec![]);
        }
        Ok(Outcome::Skipped(reason)) => {
            summary.skipped += 1;
            push("skipped", Some(reason.clone()), vec![]);
        }
        Err(e) if !refused.is_empty() || e.to_string().contains(DRY_RUN_MARKER) => {
            summary.would_post += 1;
            let detail = if refused.is_empty() {
                vec![e.to_string()]
            } else {
                refused
            };
            push("would_post", None, detail);
        }
        Err(e) => {
            summary.failed += 1;
            push("failed", Some(e.code().to_string()), vec![e.to_string()]);
        }
    }
}

/// Which of `sequences` (stream sequences of `merchant`'s events) the service has already
/// handled to the end: its audit trail holds an `applied` or `already_done` record for them.
/// One query for the whole batch.
pub async fn already_synced(
    db: &PgPool,
    merchant: &str,
    sequences: &[i64],
) -> Result<HashSet<u64>, sqlx::Error> {
    if sequences.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT stream_sequence FROM audit_records
         WHERE merchant_id = $1 AND stream_sequence = ANY($2)
           AND outcome IN ('applied', 'already_done')",
    )
    .bind(merchant)
    .bind(sequences)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|s| s as u64).collect())
}

/// Marks the dead letters of `sequences` retried (their events are now in Sage).
async fn mark_retried(db: &PgPool, sequences: &[i64]) {
    if sequences.is_empty() {
        return;
    }
    let _ = sqlx::query(
        "UPDATE dead_letters SET retried_at = now() WHERE stream_sequence = ANY($1) AND retried_at IS NULL",
    )
    .bind(sequences)
    .execute(db)
    .await;
}

/// Replays `command.merchant`'s events on `filters` through `handler`; `progress` hears the
/// counts every [`PROGRESS_EVERY`] events.
pub async fn replay<H: Handler>(
    service: &str,
    js: &jetstream::Context,
    db: &PgPool,
    handler: &H,
    filters: &[String],
    command: &Command,
    mut progress: impl FnMut(&Summary),
) -> Result<Summary, String> {
    let stream = js
        .get_stream(EVENTS_STREAM)
        .await
        .map_err(|e| format!("events stream: {e}"))?;
    let reader = stream
        .create_consumer(consumer::pull::Config {
            filter_subjects: merchant_subjects(filters, &command.merchant),
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(60),
            memory_storage: true,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("replay reader: {e}"))?;
    let name = reader.cached_info().name.clone();
    let mut summary = Summary {
        service: service.to_string(),
        merchant: command.merchant.clone(),
        dry_run: command.dry_run,
        ..Default::default()
    };
    let nanos = |t: &DateTime<Utc>| t.timestamp_nanos_opt().unwrap_or(i64::MAX) as i128;
    let result = async {
        loop {
            let mut batch = reader
                .fetch()
                .max_messages(READ_BATCH)
                .expires(Duration::from_secs(2))
                .messages()
                .await
                .map_err(|e| format!("replay read: {e}"))?;
            let mut got = 0;
            let mut last_pending = 0;
            let mut deliveries = Vec::with_capacity(READ_BATCH);
            while let Some(message) = batch.next().await {
                let message = message.map_err(|e| format!("replay read: {e}"))?;
                got += 1;
                let info = message.info().map_err(|e| format!("replay read: {e}"))?;
                last_pending = info.pending;
                let published = info.published.unix_timestamp_nanos();
                let stream_sequence = info.stream_sequence;
                if command.since.as_ref().is_some_and(|s| published < nanos(s))
                    || command
                        .until
                        .as_ref()
                        .is_some_and(|u| published >= nanos(u))
                {
                    continue;
                }
                if command
                    .limit
                    .is_some_and(|l| summary.seen + deliveries.len() as u64 >= l)
                {
                    // Past the limit: the rest of the batch is left unread.
                    last_pending = 0;
                    break;
                }
                deliveries.push(Delivery {
                    subject: message.subject.to_string(),
                    merchant: merchant_of(&message.subject).to_string(),
                    payload: message.payload.clone(),
                    headers: message.headers.clone(),
                    stream_sequence,
                    delivered: 1,
                    attempt: 1,
                });
            }
            let sequences: Vec<i64> = deliveries
                .iter()
                .map(|d| d.stream_sequence as i64)
                .collect();
            let synced = if command.per_event_lookups {
                HashSet::new()
            } else {
                already_synced(db, &command.merchant, &sequences)
                    .await
                    .map_err(|e| format!("replay look-up: {e}"))?
            };
            let mut succeeded = Vec::new();
            for delivery in &deliveries {
                if synced.contains(&delivery.stream_sequence) {
                    summary.seen += 1;
                    summary.already_synced += 1;
                    if !command.dry_run {
                        succeeded.push(delivery.stream_sequence as i64);
                    }
                } else {
                    let (result, captured) = if command.dry_run {
                        audit::capture(dry_running(handler.handle(delivery))).await
                    } else {
                        (handler.handle(delivery).await, Captured::default())
                    };
                    if !command.dry_run && result.is_ok() {
                        succeeded.push(delivery.stream_sequence as i64);
                    }
                    classify(delivery, &result, &captured, &mut summary);
                }
                if summary.seen.is_multiple_of(PROGRESS_EVERY) {
                    progress(&summary);
                }
            }
            mark_retried(db, &succeeded).await;
            if got == 0 || last_pending == 0 {
                return Ok::<(), String>(());
            }
        }
    }
    .await;
    let _ = stream.delete_consumer(&name).await;
    result.map(|()| summary)
}

/// Asks `service` to replay and waits for its summary, handing every progress message to
/// `on_progress`. Gives up when the service is silent for `idle` (progress comes every
/// [`PROGRESS_EVERY`] events).
pub async fn request(
    client: &async_nats::Client,
    service: &str,
    command: &Command,
    idle: Duration,
    mut on_progress: impl FnMut(&Summary),
) -> Result<Summary, String> {
    let inbox = client.new_inbox();
    let mut answers = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| e.to_string())?;
    let body = serde_json::to_vec(command).map_err(|e| e.to_string())?;
    client
        .publish_with_reply(subject(service), inbox, body.into())
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let message = tokio::time::timeout(idle, answers.next())
            .await
            .map_err(|_| format!("{service}: no answer for {idle:?}"))?
            .ok_or_else(|| format!("{service}: answer stream closed"))?;
        match serde_json::from_slice::<Message>(&message.payload)
            .map_err(|e| format!("{service}: bad answer: {e}"))?
        {
            Message::Progress(s) => on_progress(&s),
            Message::Done(s) => return Ok(s),
            Message::Error { message } => return Err(format!("{service}: {message}")),
        }
    }
}

async fn send(client: &async_nats::Client, reply: &async_nats::Subject, m: &Message) {
    let body = serde_json::to_vec(m).unwrap_or_default();
    let _ = client.publish(reply.clone(), body.into()).await;
}

/// Serves the replay API of `service` until `shutdown`; `filters` are the subjects its
/// handler consumes (e.g. `magento.*.invoice.created`). Endpoint `replay` of the service's
/// NATS service ([`crate::micro`]): progress messages go to the asker's reply subject as the
/// replay runs, the final [`Message::Done`] (or [`Message::Error`]) is the endpoint's answer.
pub async fn serve<H: Handler>(
    service: &'static str,
    client: async_nats::Client,
    db: PgPool,
    handler: Arc<H>,
    filters: Vec<String>,
    shutdown: Shutdown,
) -> Result<(), async_nats::SubscribeError> {
    use crate::micro::Reply;
    let js = jetstream::new(client.clone());
    let filters = Arc::new(filters);
    let nats = client.clone();
    crate::micro::serve(
        &nats,
        service,
        "replay",
        &subject(service),
        shutdown,
        move |msg| {
            let (client, js, db, handler, filters) = (
                client.clone(),
                js.clone(),
                db.clone(),
                handler.clone(),
                filters.clone(),
            );
            async move {
                let reply = msg.reply.clone()?;
                let command: Command = match crate::micro::decode(&msg.payload, |message| {
                    Message::Error { message }
                }) {
                    Ok(c) => c,
                    Err(reply) => return Some(reply),
                };
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Summary>();
                let forward = {
                    let client = client.clone();
                    tokio::spawn(async move {
                        while let Some(s) = rx.recv().await {
                            send(&client, &reply, &Message::Progress(s)).await;
                        }
                    })
                };
                let result = replay(
                    service,
                    &js,
                    &db,
                    handler.as_ref(),
                    &filters,
                    &command,
                    |s| {
                        let _ = tx.send(s.clone());
                    },
                )
                .await;
                drop(tx);
                let _ = forward.await;
                Some(match result {
                    Ok(summary) => Reply::ok(&Message::Done(summary)),
                    Err(message) => Reply::failed(
                        &Message::Error {
                            message: message.clone(),
                        },
                        500,
                        format!("replay: {message}"),
                    ),
                })
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_narrowed_to_the_merchant() {
        let filters = vec![
            "magento.*.invoice.created".to_string(),
            "magento.*.creditmemo.created".to_string(),
        ];
        assert_eq!(
            merchant_subjects(&filters, "acme"),
            vec![
                "magento.acme.invoice.created",
                "magento.acme.creditmemo.created"
            ]
        );
    }
}
