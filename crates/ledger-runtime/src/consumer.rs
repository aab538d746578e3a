//! The consumer loop: how every consumer service turns JetStream deliveries into Sage effects.
//!
//! Ack discipline:
//! - a message is acknowledged only after its handler returned, i.e. after the outcome was
//!   committed to PostgreSQL;
//! - [`ProcessError::Transient`] → negative ack with exponential backoff and jitter (at least
//!   the server's `Retry-After`), until `max_transient_attempts`, then a dead letter;
//! - [`ProcessError::Permanent`] → the handler records a dead letter, then the message is
//!   terminated (never redelivered);
//! - [`ProcessError::Throttled`] → redelivered when the call budget window turns, not counted;
//! - [`ProcessError::Paused`] → redelivered after a long delay, forever, without counting
//!   towards dead-lettering (the merchant must reconnect Sage).
//!
//! Messages of one merchant are handled one at a time, in delivery order, by a worker for that
//! merchant; different merchants run in parallel up to `concurrency`. A slow or throttled
//! merchant therefore holds only its own queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, Consumer};
use async_nats::jetstream::{AckKind, Message};
use bytes::Bytes;
use futures::StreamExt;
use rand::Rng;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::error::ProcessError;
use crate::metrics::metrics;
use crate::shutdown::Shutdown;
use crate::telemetry;

/// One delivered event, as a handler sees it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Subject, `magento.<merchant>.<entity>.<action>`.
    pub subject: String,
    /// Merchant id taken from the subject.
    pub merchant: String,
    /// Raw event bytes.
    pub payload: Bytes,
    /// NATS headers (trace context, message id).
    pub headers: Option<async_nats::HeaderMap>,
    /// Sequence of the event in the stream: links audit records to the log.
    pub stream_sequence: u64,
    /// How many times this message has been delivered (1 on first delivery), for whatever
    /// reason: redeliveries after throttling, pauses and crashes count too.
    pub delivered: i64,
    /// Which attempt this is after transient failures: 1, plus one per earlier transient
    /// failure of this message seen by this process. Throttling and pauses do not count, so a
    /// merchant kept waiting by its call budget never drifts towards a dead letter.
    pub attempt: i64,
}

/// What a handler did with an event (for metrics and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Effects were written to Sage.
    Applied,
    /// Every effect was already there (redelivery, replay).
    AlreadyDone,
    /// Deliberately not synced, with a stable reason code.
    Skipped(String),
}

impl Outcome {
    /// Label used in metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::AlreadyDone => "already_done",
            Outcome::Skipped(_) => "skipped",
        }
    }
}

/// A consumer service's message handler.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Handles one event. Must be idempotent: the same event may arrive again.
    async fn handle(&self, delivery: &Delivery) -> Result<Outcome, ProcessError>;

    /// Records a dead letter for an event that will not be retried. Returning an error keeps
    /// the message in the stream for redelivery, so nothing is lost when the store is down.
    async fn dead_letter(
        &self,
        delivery: &Delivery,
        error: &ProcessError,
    ) -> Result<(), ProcessError>;
}

/// Tuning of the consumer loop.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Service name for metrics and logs.
    pub service: &'static str,
    /// Merchants handled at the same time.
    pub concurrency: usize,
    /// Messages fetched per pull.
    pub batch: usize,
    /// First retry delay for transient faults.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Transient failures after which a message is dead-lettered.
    pub max_transient_attempts: i64,
    /// Delay before a paused merchant's message is tried again.
    pub paused_delay: Duration,
}

impl ConsumerOptions {
    /// Defaults for a service.
    pub fn new(service: &'static str) -> Self {
        ConsumerOptions {
            service,
            concurrency: 64,
            batch: 256,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(300),
            max_transient_attempts: 25,
            // `LEDGER_PAUSED_DELAY_SECS` shortens how often a paused merchant's events look
            // again (tests, the chaos suite).
            paused_delay: Duration::from_secs(
                std::env::var("LEDGER_PAUSED_DELAY_SECS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(60),
            ),
        }
    }
}

/// Delay before redelivery after the `attempt`-th transient failure: exponential, capped, with
/// jitter so a burst of failures does not come back in lockstep, and never shorter than what
/// the server asked for.
pub fn backoff_delay(
    attempt: i64,
    base: Duration,
    max: Duration,
    retry_after: Option<Duration>,
) -> Duration {
    let exp = attempt.clamp(1, 30) as u32 - 1;
    let raw = base.saturating_mul(2u32.saturating_pow(exp)).min(max);
    let jitter = rand::thread_rng().gen_range(0.5..=1.0);
    let delay = raw.mul_f64(jitter);
    match retry_after {
        Some(ra) if ra > delay => ra,
        _ => delay,
    }
}

/// Transient failures per message (by stream sequence) in this process.
#[derive(Default)]
struct FailureCounts(std::sync::Mutex<HashMap<u64, i64>>);

impl FailureCounts {
    fn get(&self, seq: u64) -> i64 {
        *self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&seq)
            .unwrap_or(&0)
    }

    fn bump(&self, seq: u64) -> i64 {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(seq).or_default();
        *n += 1;
        *n
    }

    fn forget(&self, seq: u64) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&seq);
    }
}

/// Merchant id from a subject `magento.<merchant>.<entity>.<action>`.
pub fn merchant_of(subject: &str) -> &str {
    subject.split('.').nth(1).unwrap_or("")
}

/// Runs the consumer until `shutdown` fires, then stops pulling and waits for in-flight
/// messages to finish (graceful drain).
pub async fn run<H: Handler>(
    consumer: Consumer<pull::Config>,
    handler: Arc<H>,
    options: ConsumerOptions,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let options = Arc::new(options);
    let permits = Arc::new(Semaphore::new(options.concurrency));
    let failures = Arc::new(FailureCounts::default());
    let mut queues: HashMap<String, mpsc::UnboundedSender<Message>> = HashMap::new();
    // A worker that went idle may still be finishing its last messages when the next worker
    // for the same merchant starts; this lock keeps them from running side by side.
    let mut turns: HashMap<String, Arc<tokio::sync::Mutex<()>>> = HashMap::new();
    let mut workers: JoinSet<String> = JoinSet::new();

    let mut messages = consumer
        .stream()
        .max_messages_per_batch(options.batch)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await?;

    loop {
        // Forget workers that ran dry so the map only holds active merchants.
        while let Some(done) = workers.try_join_next() {
            if let Ok(merchant) = done {
                if queues.get(&merchant).is_some_and(|q| q.is_closed()) {
                    queues.remove(&merchant);
                    if turns
                        .get(&merchant)
                        .is_some_and(|t| Arc::strong_count(t) == 1)
                    {
                        turns.remove(&merchant);
                    }
                }
            }
        }
        let next = tokio::select! {
            _ = shutdown.wait() => break,
            next = messages.next() => next,
        };
        let message = match next {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                tracing::warn!(error = %e, service = options.service, "pull failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            None => break,
        };
        let merchant = merchant_of(&message.subject).to_string();
        let mut message = Some(message);
        if let Some(queue) = queues.get(&merchant) {
            match queue.send(message.take().expect("present")) {
                Ok(()) => {}
                Err(mpsc::error::SendError(m)) => message = Some(m),
            }
        }
        if let Some(m) = message {
            let (tx, rx) = mpsc::unbounded_channel();
            tx.send(m).expect("fresh channel");
            queues.insert(merchant.clone(), tx);
            let turn = turns.entry(merchant.clone()).or_default().clone();
            workers.spawn(merchant_worker(
                merchant,
                turn,
                rx,
                handler.clone(),
                options.clone(),
                permits.clone(),
                failures.clone(),
            ));
        }
    }

    // Drain: stop pulling, let every worker finish what it holds.
    drop(messages);
    drop(queues);
    while workers.join_next().await.is_some() {}
    tracing::info!(service = options.service, "consumer drained");
    Ok(())
}

async fn merchant_worker<H: Handler>(
    merchant: String,
    turn: Arc<tokio::sync::Mutex<()>>,
    mut rx: mpsc::UnboundedReceiver<Message>,
    handler: Arc<H>,
    options: Arc<ConsumerOptions>,
    permits: Arc<Semaphore>,
    failures: Arc<FailureCounts>,
) -> String {
    loop {
        let message = tokio::select! {
            m = rx.recv() => m,
            // An idle worker closes its queue; the dispatcher starts a new one on demand.
            _ = tokio::time::sleep(Duration::from_secs(5)) => None,
        };
        let Some(message) = message else {
            rx.close();
            // Anything that raced into the queue before it closed is still handled.
            while let Ok(m) = rx.try_recv() {
                let _turn = turn.lock().await;
                let _permit = permits.acquire().await.expect("semaphore open");
                process_one(m, handler.as_ref(), &options, &failures).await;
            }
            return merchant;
        };
        let _turn = turn.lock().await;
        let _permit = permits.acquire().await.expect("semaphore open");
        process_one(message, handler.as_ref(), &options, &failures).await;
    }
}

async fn process_one<H: Handler>(
    message: Message,
    handler: &H,
    options: &ConsumerOptions,
    failures: &FailureCounts,
) {
    let (stream_sequence, delivered) = match message.info() {
        Ok(info) => (info.stream_sequence, info.delivered),
        Err(_) => (0, 1),
    };
    let delivery = Delivery {
        subject: message.subject.to_string(),
        merchant: merchant_of(&message.subject).to_string(),
        payload: message.payload.clone(),
        headers: message.headers.clone(),
        stream_sequence,
        delivered,
        attempt: failures.get(stream_sequence) + 1,
    };
    let event_type = delivery
        .subject
        .splitn(3, '.')
        .nth(2)
        .unwrap_or("unknown")
        .to_string();
    let span = tracing::info_span!(
        "consume",
        service = options.service,
        subject = %delivery.subject,
        seq = stream_sequence,
        delivered
    );
    telemetry::link_to_headers(&span, delivery.headers.as_ref());
    let started = Instant::now();
    let result = handler.handle(&delivery).instrument(span.clone()).await;
    let m = metrics();
    m.processing_seconds
        .with_label_values(&[options.service, &event_type])
        .observe(started.elapsed().as_secs_f64());

    let _enter = span.enter();
    let ack = match result {
        Ok(outcome) => {
            m.events
                .with_label_values(&[options.service, &event_type, outcome.label()])
                .inc();
            AckKind::Ack
        }
        Err(error @ ProcessError::Paused { .. }) => {
            tracing::info!(%error, "merchant paused; message waits");
            m.events
                .with_label_values(&[options.service, &event_type, "paused"])
                .inc();
            AckKind::Nak(Some(options.paused_delay))
        }
        Err(ProcessError::Throttled { retry_after }) => {
            m.events
                .with_label_values(&[options.service, &event_type, "throttled"])
                .inc();
            AckKind::Nak(Some(retry_after))
        }
        Err(ProcessError::Transient {
            message: reason,
            retry_after,
        }) if delivery.attempt < options.max_transient_attempts => {
            failures.bump(stream_sequence);
            let delay = backoff_delay(
                delivery.attempt,
                options.backoff_base,
                options.backoff_max,
                retry_after,
            );
            tracing::warn!(%reason, ?delay, "transient failure; redelivery scheduled");
            m.events
                .with_label_values(&[options.service, &event_type, "retry"])
                .inc();
            AckKind::Nak(Some(delay))
        }
        Err(error) => {
            let error = match error {
                ProcessError::Transient { message, .. } => ProcessError::Permanent {
                    code: "max_deliveries".into(),
                    field: None,
                    message: format!(
                        "gave up after {} attempts; last error: {message}",
                        delivery.attempt
                    ),
                    detail: serde_json::Value::Null,
                },
                other => other,
            };
            tracing::error!(%error, "dead-lettering event");
            match handler.dead_letter(&delivery, &error).await {
                Ok(()) => {
                    m.events
                        .with_label_values(&[options.service, &event_type, "dead_letter"])
                        .inc();
                    m.dead_letters
                        .with_label_values(&[options.service, error.code()])
                        .inc();
                    AckKind::Term
                }
                Err(store_error) => {
                    tracing::error!(%store_error, "dead letter not recorded; message kept for redelivery");
                    AckKind::Nak(Some(options.backoff_base * 4))
                }
            }
        }
    };
    if matches!(ack, AckKind::Ack | AckKind::Term) {
        failures.forget(stream_sequence);
    }
    crate::journal::failpoint("before_ack");
    // A positive ack waits for the server's confirmation, so a drained consumer has really
    // handed its messages back before the process exits.
    let sent = match ack {
        AckKind::Ack => message.double_ack().await,
        other => message.ack_with(other).await,
    };
    if let Err(e) = sent {
        // A lost ack only means a redelivery, which the idempotent handlers absorb.
        tracing::warn!(error = %e, "ack failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(10);
        for attempt in 1..10 {
            let d = backoff_delay(attempt, base, max, None);
            let ceiling = base * 2u32.pow(attempt as u32 - 1);
            assert!(d <= ceiling.min(max), "attempt {attempt}: {d:?}");
            assert!(d >= ceiling.min(max) / 2, "attempt {attempt}: {d:?}");
        }
        assert!(backoff_delay(40, base, max, None) <= max);
        let ra = Duration::from_secs(7);
        assert_eq!(backoff_delay(1, base, max, Some(ra)), ra);
    }

    #[test]
    fn merchant_comes_from_the_subject() {
        assert_eq!(merchant_of("magento.acme-uk.invoice.created"), "acme-uk");
        assert_eq!(merchant_of("nonsense"), "");
    }
}
