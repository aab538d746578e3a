//! Operator access to a service's dead letters: list them, retry one, some or all.
//!
//! A retry re-reads the event from the log by its stream sequence (dead-lettering never removes
//! an event from the stream) and runs it through the service's own handler: the normal path,
//! with the same idempotency keys, so a retry can never create a second document. Served over
//! NATS request/reply on `ledger.rpc.<service>.dead_letters` (the service owns the table;
//! `ledgerctl dead-letters` asks).

use std::sync::Arc;

use async_nats::jetstream;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::bus::EVENTS_STREAM;
use crate::consumer::{merchant_of, Delivery, Handler, Outcome};
use crate::journal::{self, DeadLetter};
use crate::shutdown::Shutdown;

/// The request subject of a service's dead-letter API.
pub fn subject(service: &str) -> String {
    format!("ledger.rpc.{service}.dead_letters")
}

/// What an operator asks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Dead letters not yet retried, optionally of one merchant.
    List {
        /// Only this merchant.
        #[serde(default)]
        merchant: Option<String>,
    },
    /// Retry these dead letters (by id), or all of a merchant's (or all) when `ids` is empty.
    Retry {
        /// Dead letter ids.
        #[serde(default)]
        ids: Vec<i64>,
        /// With empty `ids`: only this merchant's.
        #[serde(default)]
        merchant: Option<String>,
    },
}

/// Outcome of retrying one dead letter.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetryResult {
    /// Dead letter id.
    pub id: i64,
    /// `applied`, `already_done`, `skipped`, or `failed`.
    pub outcome: String,
    /// Why it failed again, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    /// For [`Command::List`].
    Listed {
        /// The dead letters.
        dead_letters: Vec<DeadLetter>,
    },
    /// For [`Command::Retry`].
    Retried {
        /// One result per dead letter tried.
        results: Vec<RetryResult>,
    },
    /// The request could not be served.
    Error {
        /// Why.
        message: String,
    },
}

/// Retries dead letters through `handler`; each success is marked retried, each failure
/// updates the dead letter with the new reason.
pub async fn retry<H: Handler>(
    js: &jetstream::Context,
    db: &PgPool,
    handler: &H,
    ids: &[i64],
    merchant: Option<&str>,
) -> Result<Vec<RetryResult>, String> {
    let rows: Vec<DeadLetter> = if ids.is_empty() {
        journal::list_dead_letters(db, merchant)
            .await
            .map_err(|e| e.to_string())?
    } else {
        sqlx::query_as(
            "SELECT id, merchant_id, event_id, subject, stream_sequence, code, field, message, detail, created_at
             FROM dead_letters WHERE id = ANY($1) AND retried_at IS NULL ORDER BY id",
        )
        .bind(ids)
        .fetch_all(db)
        .await
        .map_err(|e| e.to_string())?
    };
    let stream = js
        .get_stream(EVENTS_STREAM)
        .await
        .map_err(|e| e.to_string())?;
    let mut results = Vec::with_capacity(rows.len());
    // Oldest first, so a merchant's documents are replayed in their original order.
    let mut rows = rows;
    rows.sort_by_key(|r| r.stream_sequence);
    for row in rows {
        let raw = match stream.get_raw_message(row.stream_sequence as u64).await {
            Ok(raw) => raw,
            Err(e) => {
                results.push(RetryResult {
                    id: row.id,
                    outcome: "failed".into(),
                    error: Some(format!("event no longer in the log: {e}")),
                });
                continue;
            }
        };
        let delivery = Delivery {
            subject: raw.subject.to_string(),
            merchant: merchant_of(&raw.subject).to_string(),
            payload: raw.payload.clone(),
            headers: Some(raw.headers.clone()),
            stream_sequence: row.stream_sequence as u64,
            delivered: 1,
            attempt: 1,
        };
        match handler.handle(&delivery).await {
            Ok(outcome) => {
                let _ = sqlx::query("UPDATE dead_letters SET retried_at = now() WHERE id = $1")
                    .bind(row.id)
                    .execute(db)
                    .await;
                results.push(RetryResult {
                    id: row.id,
                    outcome: match outcome {
                        Outcome::Applied => "applied".into(),
                        Outcome::AlreadyDone => "already_done".into(),
                        Outcome::Skipped(reason) => format!("skipped:{reason}"),
                    },
                    error: None,
                });
            }
            Err(e) => {
                let _ =
                    sqlx::query("UPDATE dead_letters SET code = $2, message = $3 WHERE id = $1")
                        .bind(row.id)
                        .bind(e.code())
                        .bind(e.to_string())
                        .execute(db)
                        .await;
                results.push(RetryResult {
                    id: row.id,
                    outcome: "failed".into(),
                    error: Some(e.to_string()),
                });
            }
        }
    }
    Ok(results)
}

/// Dead letters retried per request by [`retry_in_batches`].
pub const RETRY_BATCH: usize = 20;

/// Retries `service`'s dead letters a batch at a time, so the asker sees progress and no single
/// request runs long: `ids`, or (when empty) every dead letter listed for `merchant` (or all),
/// oldest event first across batches as within one, [`RETRY_BATCH`] ids per request, each
/// request with its own `timeout`. `progress` hears how many ids were tried so far, the total
/// and the batch's results after every batch (an id retried meanwhile by someone else has no
/// result).
pub async fn retry_in_batches(
    client: &async_nats::Client,
    service: &str,
    ids: Vec<i64>,
    merchant: Option<String>,
    timeout: std::time::Duration,
    mut progress: impl FnMut(usize, usize, &[RetryResult]),
) -> Result<Vec<RetryResult>, String> {
    let ask = |command: Command| async move {
        crate::bus::request_json::<_, Answer>(client, &subject(service), &command, timeout)
            .await
            .map_err(|e| e.to_string())
    };
    // The listing gives each dead letter's place in the log, so batches keep the log's order.
    let list_merchant = if ids.is_empty() { merchant } else { None };
    let mut listed = match ask(Command::List {
        merchant: list_merchant,
    })
    .await?
    {
        Answer::Listed { dead_letters } => dead_letters,
        Answer::Error { message } => return Err(format!("{service}: {message}")),
        other => return Err(format!("{service}: unexpected answer {other:?}")),
    };
    listed.sort_by_key(|d| d.stream_sequence);
    let ids: Vec<i64> = if ids.is_empty() {
        listed.iter().map(|d| d.id).collect()
    } else {
        // Listed ones in the log's order, then any the listing did not show, as given.
        let mut ordered: Vec<i64> = listed
            .iter()
            .map(|d| d.id)
            .filter(|id| ids.contains(id))
            .collect();
        let unlisted: Vec<i64> = ids.into_iter().filter(|id| !ordered.contains(id)).collect();
        ordered.extend(unlisted);
        ordered
    };
    let mut results = Vec::with_capacity(ids.len());
    let mut tried = 0;
    for chunk in ids.chunks(RETRY_BATCH) {
        let command = Command::Retry {
            ids: chunk.to_vec(),
            merchant: None,
        };
        match ask(command).await? {
            Answer::Retried { results: batch } => {
                tried += chunk.len();
                results.extend(batch.iter().cloned());
                progress(tried, ids.len(), &batch);
            }
            Answer::Error { message } => return Err(format!("{service}: {message}")),
            other => return Err(format!("{service}: unexpected answer {other:?}")),
        }
    }
    Ok(results)
}

/// Serves the dead-letter API of `service` until `shutdown`: endpoint `dead_letters` of the
/// service's NATS service ([`crate::micro`]). Each request runs in its own task, so a long
/// retry does not keep a listing (the portal's, another operator's) waiting.
pub async fn serve<H: Handler>(
    service: &'static str,
    client: async_nats::Client,
    db: PgPool,
    handler: Arc<H>,
    shutdown: Shutdown,
) -> Result<(), async_nats::SubscribeError> {
    use crate::micro::Reply;
    let js = jetstream::new(client.clone());
    crate::micro::serve(
        &client,
        service,
        "dead_letters",
        &subject(service),
        shutdown,
        move |msg| {
            let (js, db, handler) = (js.clone(), db.clone(), handler.clone());
            async move {
                let command =
                    match crate::micro::decode(&msg.payload, |message| Answer::Error { message }) {
                        Ok(command) => command,
                        Err(reply) => return Some(reply),
                    };
                let answer = match command {
                    Command::List { merchant } => {
                        match journal::list_dead_letters(&db, merchant.as_deref()).await {
                            Ok(dead_letters) => Answer::Listed { dead_letters },
                            Err(e) => Answer::Error {
                                message: e.to_string(),
                            },
                        }
                    }
                    Command::Retry { ids, merchant } => {
                        match retry(&js, &db, handler.as_ref(), &ids, merchant.as_deref()).await {
                            Ok(results) => Answer::Retried { results },
                            Err(message) => Answer::Error { message },
                        }
                    }
                };
                Some(match &answer {
                    Answer::Error { message } => {
                        Reply::failed(&answer, 500, format!("dead letters: {message}"))
                    }
                    _ => Reply::ok(&answer),
                })
            }
        },
    )
    .await
}
