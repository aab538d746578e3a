//! The consumer loop: how every consumer service turns JetStream deliveries into Sage effects.
//!
//! Ack discipline:
//! - a message is acknowledged only after its handler returned, i.e. after the outcome was
//!   committed to PostgreSQL;
//! - [`ProcessError::Transient`] → negative ack with exponential backoff and jitter (at least
//!   the server's `Retry-After`), until `max_transient_attempts`, then a dead letter;
//! - [`ProcessError::Permanent`] → the handler records a dead letter, then the message is
//!   terminated (never redelivered);
//! - [`ProcessError::Throttled`] → redelivered when the call budget's next slot comes (or Sage's
//!   `Retry-After` ends), not counted;
//! - [`ProcessError::Paused`] → redelivered after a long delay, forever, without counting
//!   towards dead-lettering (the merchant must reconnect Sage).
//!
//! Messages of one merchant are handled one at a time, in delivery order, by a worker for that
//! merchant; different merchants run in parallel up to `concurrency`. A slow or throttled
//! merchant therefore holds only its own queue.
//!
//! Each service reads its subjects in two lanes ([`Lane`], decision record 0038): the live
//! subjects, and the history subjects a backfill publishes on, through a second durable
//! consumer. A history event of a merchant is handled only while that merchant has no live
//! event in flight in the service ([`Priority`]), so live events never queue behind history.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, Consumer};
use async_nats::jetstream::{self, AckKind, Message};
use bytes::Bytes;
use futures::StreamExt;
use rand::Rng;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::error::ProcessError;
use crate::metrics::metrics;
use crate::parking::{ParkReason, ParkingLot, LEASE_TTL};
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

/// Which lane a consumer loop runs: live events, or the history a backfill publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// `magento.<merchant>.<entity>.<action>`: handled first.
    Live,
    /// `magento.<merchant>.history.<entity>.<action>`: handled only while the merchant has no
    /// live event in flight ([`Priority::live_idle`]).
    History,
}

/// Live work in flight per merchant in one service process, shared by its live and history
/// consumer loops: the live loops count each event from the moment it is queued for its
/// merchant until it is acknowledged; the history loops wait for their merchant's count to be
/// zero before each handling. A live event therefore waits at most for one history handling
/// already under way, never for the backlog of a backfill.
#[derive(Debug, Clone, Default)]
pub struct Priority(Arc<PriorityInner>);

#[derive(Debug, Default)]
struct PriorityInner {
    busy: std::sync::Mutex<HashMap<String, usize>>,
    idle: tokio::sync::Notify,
}

/// One live event in flight; dropping it ends it.
#[derive(Debug)]
pub struct LiveTicket {
    priority: Priority,
    merchant: String,
}

impl Drop for LiveTicket {
    fn drop(&mut self) {
        self.priority.finished(&self.merchant);
    }
}

impl Priority {
    /// Counts one live event of `merchant` in flight until the ticket is dropped.
    pub fn live(&self, merchant: &str) -> LiveTicket {
        self.started(merchant);
        LiveTicket {
            priority: self.clone(),
            merchant: merchant.to_string(),
        }
    }

    fn started(&self, merchant: &str) {
        *self
            .0
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(merchant.to_string())
            .or_default() += 1;
    }

    fn finished(&self, merchant: &str) {
        let mut busy = self.0.busy.lock().unwrap_or_else(|p| p.into_inner());
        let idle = match busy.get_mut(merchant) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                busy.remove(merchant);
                true
            }
            None => false,
        };
        drop(busy);
        if idle {
            self.0.idle.notify_waiters();
        }
    }

    /// Live events of `merchant` in flight now.
    pub fn in_flight(&self, merchant: &str) -> usize {
        self.0
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(merchant)
            .copied()
            .unwrap_or(0)
    }

    /// Returns once `merchant` has no live event in flight.
    pub async fn live_idle(&self, merchant: &str) {
        loop {
            let notified = self.0.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight(merchant) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// A shared handler is a handler (so wrappers such as [`crate::audit::Audited`] take one).
#[async_trait::async_trait]
impl Handler for Arc<dyn Handler> {
    async fn handle(&self, delivery: &Delivery) -> Result<Outcome, ProcessError> {
        self.as_ref().handle(delivery).await
    }

    async fn dead_letter(
        &self,
        delivery: &Delivery,
        error: &ProcessError,
    ) -> Result<(), ProcessError> {
        self.as_ref().dead_letter(delivery, error).await
    }
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
    /// Delay before a paused merchant's lane tries its next event again.
    pub paused_delay: Duration,
    /// Messages of one merchant this process holds at once; a merchant with more waiting is
    /// parked and drained by its own lane ([`crate::parking`]).
    pub merchant_in_flight: usize,
    /// Live or history.
    pub lane: Lane,
    /// Live work in flight, shared by a service's live and history loops.
    pub priority: Priority,
    /// How long handlings already under way may go on after shutdown fires; what is still
    /// running then is abandoned and handed back to the stream at once (see [`run`]).
    pub drain_timeout: Duration,
}

/// Transient failures after which a message is dead-lettered, unless a service says otherwise.
pub const MAX_TRANSIENT_ATTEMPTS: i64 = 25;

/// How long handlings under way may finish after shutdown unless a service says otherwise:
/// well inside the 30 s an orchestrator grants before it kills the process.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// How long abandoned handlings get to hand their messages back before the loop stops anyway.
const ABANDON_GRACE: Duration = Duration::from_secs(3);

impl ConsumerOptions {
    /// Defaults for a service. A service built with [`crate::service::ServiceBuilder`] takes
    /// `concurrency`, `paused_delay` and `merchant_in_flight` from its configuration.
    pub fn new(service: &'static str) -> Self {
        ConsumerOptions {
            service,
            concurrency: 64,
            batch: 256,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(300),
            max_transient_attempts: MAX_TRANSIENT_ATTEMPTS,
            paused_delay: Duration::from_secs(60),
            merchant_in_flight: 64,
            lane: Lane::Live,
            priority: Priority::default(),
            drain_timeout: DRAIN_TIMEOUT,
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

/// The subject is the only authority for which merchant an event belongs to: a store can only
/// publish on its own merchant's subjects (the NATS permissions its key carries), but it writes
/// the payload itself. An event whose `merchant_id` names another merchant than its subject is
/// refused (permanent, naming `/merchant_id`) before any handler sees it, so it is
/// dead-lettered and audited under the subject's merchant and can never touch the other
/// merchant's books. [`crate::audit::Audited`] checks it for every handling.
pub fn check_subject_authority(delivery: &Delivery) -> Result<(), ProcessError> {
    if delivery.merchant.is_empty() || delivery.merchant != merchant_of(&delivery.subject) {
        return Err(ProcessError::invalid_field(
            "contract.subject_mismatch",
            "subject",
            format!("subject {} names no merchant", delivery.subject),
        ));
    }
    #[derive(serde::Deserialize)]
    struct Claimed {
        merchant_id: Option<serde_json::Value>,
    }
    // Undecodable payloads are the contract validation's to refuse, with its own field.
    let Ok(claimed) = serde_json::from_slice::<Claimed>(&delivery.payload) else {
        return Ok(());
    };
    match claimed.merchant_id {
        None => Ok(()),
        Some(serde_json::Value::String(m)) if m == delivery.merchant => Ok(()),
        Some(other) => Err(ProcessError::invalid_field(
            "contract.subject_mismatch",
            "/merchant_id",
            format!(
                "event names merchant {other} but was published on {}, a subject of merchant {}",
                delivery.subject, delivery.merchant
            ),
        )),
    }
}

/// A lane records its progress at least every this many events.
const PROGRESS_EVERY: u64 = 16;

/// What the loop does with a message after its handler returned.
enum Decision {
    /// Done (applied, already done, skipped or dead-lettered): acknowledge.
    Done,
    /// Try again after this delay (transient failure, or the dead letter could not be stored).
    Retry(Duration),
    /// The merchant cannot move now: park it (see [`crate::parking`]).
    Park(ParkReason, Duration),
    /// The drain deadline passed while the handling was still under way (e.g. waiting on a
    /// peer that stopped answering): handed back for redelivery at once, to another replica.
    Abandoned,
}

/// Control messages from the merchant workers to the dispatcher.
enum Control {
    /// The worker parked its merchant: stop queueing its events.
    Parked(String),
}

/// Everything a merchant worker shares with the dispatcher.
struct Shared<H> {
    handler: Arc<H>,
    options: ConsumerOptions,
    permits: Semaphore,
    failures: FailureCounts,
    lot: ParkingLot,
    stream: jetstream::stream::Stream,
    filters: Vec<String>,
    holder: String,
    control: mpsc::Sender<Control>,
    shutdown: Shutdown,
    /// Fires when the drain deadline passes: handlings still under way are abandoned.
    abandon: Shutdown,
}

impl<H: Handler> Shared<H> {
    /// Handles one delivery within the process's concurrency; a history delivery first waits
    /// until its merchant has no live event in flight. A handling still under way when the
    /// drain deadline passes is dropped ([`Decision::Abandoned`]): whatever it had not
    /// committed is rolled back with it, and the idempotent handlers absorb the redelivery.
    async fn handle(&self, delivery: &Delivery) -> Decision {
        let handling = async {
            if self.options.lane == Lane::History {
                self.options.priority.live_idle(&delivery.merchant).await;
            }
            let _permit = self.permits.acquire().await.expect("semaphore open");
            // Boxed, and only once a permit is held: a handling's future is large (tens of
            // KiB), and every merchant with work has a worker task waiting here. Inline, each
            // waiting task would carry that size, and memory would grow with the merchants
            // waiting rather than with the handlings under way.
            Box::pin(handle_once(
                delivery,
                self.handler.as_ref(),
                &self.options,
                &self.failures,
            ))
            .await
        };
        tokio::select! {
            decision = handling => decision,
            _ = self.abandon.wait() => {
                tracing::warn!(
                    service = self.options.service,
                    subject = %delivery.subject,
                    seq = delivery.stream_sequence,
                    "handling abandoned at the drain deadline; the event is redelivered"
                );
                metrics()
                    .events
                    .with_label_values(&[self.options.service, event_type_of(&delivery.subject), "abandoned"])
                    .inc();
                Decision::Abandoned
            }
        }
    }

    /// Parks `merchant` from `sequence` on, counted and logged.
    async fn park(&self, merchant: &str, sequence: u64, reason: ParkReason) -> bool {
        match self.lot.park(merchant, sequence, reason).await {
            Ok(_) => {
                metrics()
                    .parked
                    .with_label_values(&[self.options.service, reason.label()])
                    .inc();
                tracing::info!(
                    merchant,
                    sequence,
                    reason = reason.label(),
                    service = self.options.service,
                    "merchant parked"
                );
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, merchant, "could not park; the message waits");
                false
            }
        }
    }
}

/// Runs the consumer until `shutdown` fires, then stops pulling and waits for in-flight
/// messages to finish (graceful drain).
///
/// Each merchant holds at most [`ConsumerOptions::merchant_in_flight`] messages in this
/// process. A merchant that would hold more, or whose handling answers paused or throttled, is
/// parked ([`crate::parking`]): its later deliveries are passed over at once and its own lane
/// handles them, so it never holds the other merchants' delivery slots.
pub async fn run<H: Handler>(
    js: jetstream::Context,
    consumer: Consumer<pull::Config>,
    handler: Arc<H>,
    options: ConsumerOptions,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let info = consumer.cached_info().clone();
    let durable = info
        .config
        .durable_name
        .clone()
        .unwrap_or(info.name.clone());
    let mut filters = info.config.filter_subjects.clone();
    if filters.is_empty() && !info.config.filter_subject.is_empty() {
        filters.push(info.config.filter_subject.clone());
    }
    let lot = ParkingLot::open(&js, &durable).await?;
    let stream = js.get_stream(crate::bus::EVENTS_STREAM).await?;
    let (control_tx, mut control_rx) = mpsc::channel::<Control>(1024);
    let shared = Arc::new(Shared {
        handler,
        permits: Semaphore::new(options.concurrency),
        options,
        failures: FailureCounts::default(),
        lot,
        stream,
        filters,
        holder: format!("{}-{}", durable, uuid::Uuid::new_v4()),
        control: control_tx,
        shutdown: shutdown.clone(),
        abandon: Shutdown::new(),
    });
    let mut dispatch = Dispatch {
        cap: shared.options.merchant_in_flight.max(1),
        shared,
        queues: HashMap::new(),
        turns: HashMap::new(),
        workers: JoinSet::new(),
        lanes: HashSet::new(),
        pass_over: HashMap::new(),
    };

    // Parks left by an earlier run (or another replica that stopped) get their lanes.
    let mut adopt = tokio::time::interval(LEASE_TTL);
    let mut flush = tokio::time::interval(Duration::from_millis(20));
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let mut messages = consumer
        .stream()
        .max_messages_per_batch(dispatch.shared.options.batch)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await?;

    loop {
        dispatch.reap();
        let next = tokio::select! {
            _ = shutdown.wait() => break,
            Some(control) = control_rx.recv() => {
                match control {
                    Control::Parked(merchant) => {
                        // Its worker turns into its lane once its queue is empty.
                        dispatch.queues.remove(&merchant);
                        dispatch.lanes.insert(merchant);
                    }
                }
                continue;
            }
            _ = flush.tick() => {
                dispatch.flush().await;
                continue;
            }
            _ = adopt.tick() => {
                dispatch.adopt().await;
                continue;
            }
            next = messages.next() => next,
        };
        let message = match next {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                tracing::warn!(error = %e, service = dispatch.shared.options.service, "pull failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            None => break,
        };
        dispatch.deliver(message).await;
    }

    // Drain: stop pulling; handlings under way may finish until the drain deadline, events
    // not yet started go back to the stream at once (another replica takes them).
    drop(messages);
    for (_, waiting) in dispatch.pass_over.drain() {
        for m in waiting {
            let _ = m.ack_with(AckKind::Nak(None)).await;
        }
    }
    dispatch.queues.clear();
    let service = dispatch.shared.options.service;
    let drain_timeout = dispatch.shared.options.drain_timeout;
    let drained = tokio::time::timeout(drain_timeout, async {
        while dispatch.workers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        // Past the deadline: what is still under way waits on something that does not come
        // (a peer that stopped answering, a store that hangs). Hand it back and stop.
        dispatch.shared.abandon.trigger();
        let handed_back = tokio::time::timeout(ABANDON_GRACE, async {
            while dispatch.workers.join_next().await.is_some() {}
        })
        .await;
        if handed_back.is_err() {
            // Not even the negative acks got through (the bus is gone): the server
            // redelivers the rest when their ack wait ends.
            dispatch.workers.shutdown().await;
        }
        tracing::warn!(
            service,
            ?drain_timeout,
            "consumer drained at its deadline; unfinished events handed back"
        );
    } else {
        tracing::info!(service, "consumer drained");
    }
    Ok(())
}

/// The dispatcher's state: which merchants have a worker, which are parked into a lane, and
/// the parked merchants' messages waiting to be passed over.
struct Dispatch<H> {
    shared: Arc<Shared<H>>,
    /// A merchant's share of the shared consumer.
    cap: usize,
    queues: HashMap<String, mpsc::Sender<Box<Queued>>>,
    /// A worker that went idle may still be finishing its last messages when the next worker
    /// for the same merchant starts; this lock keeps them from running side by side.
    turns: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
    workers: JoinSet<String>,
    /// Merchants whose worker is (or is becoming) their lane.
    lanes: HashSet<String>,
    /// Parked merchants' messages, acknowledged together once passed over.
    pass_over: HashMap<String, Vec<Message>>,
}

impl<H: Handler> Dispatch<H> {
    fn spawn_worker(&mut self, merchant: String, rx: mpsc::Receiver<Box<Queued>>) {
        let turn = self.turns.entry(merchant.clone()).or_default().clone();
        self.workers
            .spawn(merchant_worker(merchant, turn, rx, self.shared.clone()));
    }

    /// Forgets workers that ran dry, so the maps only hold active merchants.
    fn reap(&mut self) {
        while let Some(done) = self.workers.try_join_next() {
            if let Ok(merchant) = done {
                self.lanes.remove(&merchant);
                if self.queues.get(&merchant).is_some_and(|q| q.is_closed()) {
                    self.queues.remove(&merchant);
                }
                if !self.queues.contains_key(&merchant)
                    && self
                        .turns
                        .get(&merchant)
                        .is_some_and(|t| Arc::strong_count(t) == 1)
                {
                    self.turns.remove(&merchant);
                }
            }
        }
    }

    /// Starts lanes for parks nobody here runs (left by an earlier run or a stopped replica).
    async fn adopt(&mut self) {
        if let Ok(parks) = self.shared.lot.list().await {
            for (merchant, _) in parks {
                if !self.lanes.contains(&merchant) && !self.queues.contains_key(&merchant) {
                    self.lanes.insert(merchant.clone());
                    let (_tx, rx) = mpsc::channel(1);
                    self.spawn_worker(merchant, rx);
                }
            }
        }
    }

    /// Routes one delivery of the shared consumer.
    async fn deliver(&mut self, message: Message) {
        let message = detached(message);
        let merchant = merchant_of(&message.subject).to_string();
        let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
        if let Some(park) = self.shared.lot.local(&merchant) {
            if sequence >= park.origin {
                let waiting = self.pass_over.entry(merchant).or_default();
                waiting.push(message);
                if waiting.len() >= 256 {
                    self.flush().await;
                }
                return;
            }
            if self.lanes.contains(&merchant) || !self.queues.contains_key(&merchant) {
                // From before the park (a redelivery): it waits until the lane is done, so the
                // merchant's events are never handled side by side.
                let _ = message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                    .await;
                return;
            }
        }
        self.enqueue(message, merchant, sequence).await;
    }

    /// Hands a message to its merchant's worker, parking the merchant when it already holds
    /// its share.
    async fn enqueue(&mut self, message: Message, merchant: String, sequence: u64) {
        // A live event counts as in flight from here until it is acknowledged.
        let ticket = (self.shared.options.lane == Lane::Live)
            .then(|| self.shared.options.priority.live(&merchant));
        let mut message = Some(Box::new(Queued { message, ticket }));
        if let Some(queue) = self.queues.get(&merchant) {
            match queue.try_send(message.take().expect("present")) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Closed(m)) => message = Some(m),
                Err(mpsc::error::TrySendError::Full(queued)) => {
                    let Queued { message: m, .. } = *queued;
                    // The merchant holds its whole share: park it from this event on.
                    if self
                        .shared
                        .park(&merchant, sequence, ParkReason::Backlog)
                        .await
                    {
                        self.queues.remove(&merchant);
                        self.lanes.insert(merchant);
                        let _ = m.ack().await;
                    } else {
                        let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
                    }
                    return;
                }
            }
        }
        let Some(m) = message else { return };
        if self.lanes.contains(&merchant) {
            // Its lane is finishing: the event comes back to the shared consumer shortly.
            let _ = m
                .message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
            return;
        }
        let (tx, rx) = mpsc::channel(self.cap);
        tx.try_send(m).ok().expect("fresh channel has room");
        self.queues.insert(merchant.clone(), tx);
        self.spawn_worker(merchant, rx);
    }

    /// Acknowledges parked merchants' messages after recording the highest sequence passed
    /// over; messages of a merchant that is no longer parked go to its worker instead.
    async fn flush(&mut self) {
        for (merchant, waiting) in std::mem::take(&mut self.pass_over) {
            let highest = waiting
                .iter()
                .filter_map(|m| m.info().ok().map(|i| i.stream_sequence))
                .max()
                .unwrap_or(0);
            match self.shared.lot.pass_over(&merchant, highest).await {
                Ok(true) => {
                    metrics()
                        .passed_over
                        .with_label_values(&[self.shared.options.service])
                        .inc_by(waiting.len() as u64);
                    for m in waiting {
                        let _ = m.ack().await;
                    }
                }
                Ok(false) => {
                    for m in waiting {
                        let sequence = m.info().map(|i| i.stream_sequence).unwrap_or(0);
                        self.enqueue(m, merchant.clone(), sequence).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, %merchant, "could not record passed-over events; they come back");
                    for m in waiting {
                        let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
                    }
                }
            }
        }
    }
}

/// `message` with its own copy of its payload.
///
/// The NATS client cuts each payload out of its connection's read buffer, and a buffer stays
/// allocated while any payload cut from it lives: the events a consumer holds (up to its
/// unacknowledged bound, spread over many merchants' queues) would otherwise keep alive every
/// buffer read while they waited, including the other subscriptions' traffic. A copy of an
/// event (a few KiB) costs less than the buffer it would keep.
pub fn detached(mut message: Message) -> Message {
    message.message.payload = Bytes::copy_from_slice(&message.message.payload);
    message
}

/// A message queued for its merchant's worker, with its live ticket (live lane only). Boxed
/// in the queue: a queue's channel allocates its slots in blocks of 32, and every merchant
/// with work has one, so a slot is a pointer rather than a whole message.
struct Queued {
    message: Message,
    ticket: Option<LiveTicket>,
}

async fn merchant_worker<H: Handler>(
    merchant: String,
    turn: Arc<tokio::sync::Mutex<()>>,
    mut rx: mpsc::Receiver<Box<Queued>>,
    shared: Arc<Shared<H>>,
) -> String {
    // Set when this worker parked its merchant: later messages in its queue belong to the lane.
    let mut parked_from: Option<u64> = None;
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
                Box::pin(worker_step(&merchant, *m, &shared, &mut parked_from)).await;
            }
            break;
        };
        let _turn = turn.lock().await;
        // Boxed, as the lane below: an idle worker (every merchant with recent work has one)
        // then holds a small future, not room for a whole handling.
        Box::pin(worker_step(&merchant, *message, &shared, &mut parked_from)).await;
    }
    if shared.lot.local(&merchant).is_some() && !shared.shutdown.is_triggered() {
        let _turn = turn.lock().await;
        Box::pin(lane(&merchant, &shared)).await;
    }
    merchant
}

/// Handles one message of the shared consumer in a merchant's worker.
async fn worker_step<H: Handler>(
    merchant: &str,
    queued: Queued,
    shared: &Shared<H>,
    parked_from: &mut Option<u64>,
) {
    // The live ticket ends when this step does, after the acknowledgement.
    let Queued {
        message,
        ticket: _ticket,
    } = queued;
    if shared.shutdown.is_triggered() {
        // Not started before shutdown: another replica handles it now rather than this one
        // during its drain.
        let _ = message.ack_with(AckKind::Nak(None)).await;
        return;
    }
    let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
    if parked_from.is_some_and(|from| sequence >= from) {
        // Queued before the dispatcher heard of the park: the lane reads it from the stream.
        let _ = shared.lot.pass_over(merchant, sequence).await;
        let _ = message.ack().await;
        return;
    }
    let delivery = delivery_of(&message, &shared.failures);
    let decision = shared.handle(&delivery).await;
    let ack = match decision {
        Decision::Done => AckKind::Ack,
        Decision::Retry(delay) => AckKind::Nak(Some(delay)),
        Decision::Abandoned => AckKind::Nak(None),
        Decision::Park(reason, delay) => {
            if shared.park(merchant, sequence, reason).await {
                *parked_from = Some(sequence);
                let _ = shared
                    .control
                    .send(Control::Parked(merchant.to_string()))
                    .await;
                AckKind::Ack
            } else {
                AckKind::Nak(Some(delay))
            }
        }
    };
    crate::failpoint::hit("before_ack");
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

/// A parked merchant's lane: reads its events from the stream from its park on, handles them
/// in order at its own pace, and hands the merchant back to the shared consumer once caught up.
async fn lane<H: Handler>(merchant: &str, shared: &Shared<H>) {
    let service = shared.options.service;
    let wait = |d: Duration| async move {
        tokio::select! {
            _ = shared.shutdown.wait() => false,
            _ = tokio::time::sleep(d) => true,
        }
    };
    // One replica runs the lane.
    loop {
        match shared.lot.lease(merchant, &shared.holder).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, merchant, "lane lease unavailable"),
        }
        if shared.lot.local(merchant).is_none() || !wait(LEASE_TTL / 3).await {
            return;
        }
    }
    tracing::info!(merchant, service, "lane started");
    let mut renewed = Instant::now();
    // Last sequence handled, and last one recorded in the park record.
    let (mut handled, mut recorded, mut unrecorded) = (0u64, 0u64, 0u64);
    'reader: loop {
        let Some(park) = shared.lot.local(merchant) else {
            break;
        };
        let reader = shared
            .stream
            .create_consumer(pull::Config {
                filter_subjects: crate::replay::merchant_subjects(&shared.filters, merchant),
                // After the park's recorded progress, and after what this lane has handled
                // (its progress record may not have reached the local view yet).
                deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: park.resume_at().max(handled + 1),
                },
                ack_policy: jetstream::consumer::AckPolicy::None,
                inactive_threshold: Duration::from_secs(60),
                memory_storage: true,
                ..Default::default()
            })
            .await;
        let reader = match reader {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, merchant, "lane reader unavailable");
                if !wait(Duration::from_secs(1)).await {
                    break;
                }
                continue;
            }
        };
        loop {
            if renewed.elapsed() > LEASE_TTL / 3 {
                let _ = shared.lot.lease(merchant, &shared.holder).await;
                renewed = Instant::now();
            }
            let batch = reader
                .fetch()
                .max_messages(shared.options.merchant_in_flight.max(1))
                .expires(Duration::from_millis(500))
                .messages()
                .await;
            let mut batch = match batch {
                Ok(b) => b,
                Err(_) => continue 'reader,
            };
            // The whole batch is taken in before any of it is handled: the batch ends when its
            // pull request expires, and a message still unread then would be lost to this
            // reader (it acknowledges nothing), while handling may take long (a throttled or
            // paused event is retried in place).
            let mut messages = Vec::new();
            let mut broken = false;
            while let Some(message) = batch.next().await {
                match message {
                    Ok(m) => messages.push(detached(m)),
                    Err(_) => {
                        broken = true;
                        break;
                    }
                }
            }
            drop(batch);
            if broken && messages.is_empty() {
                continue 'reader;
            }
            let mut got = 0usize;
            let mut caught_up = false;
            for message in messages {
                if shared.shutdown.is_triggered() {
                    // The rest is read again from the recorded progress by whoever runs
                    // the lane next.
                    break;
                }
                got += 1;
                let (sequence, pending) = message
                    .info()
                    .map(|i| (i.stream_sequence, i.pending))
                    .unwrap_or((0, 0));
                let mut delivery = delivery_of(&message, &shared.failures);
                // The same message until it is done: the lane has nothing else to do.
                loop {
                    let ticket = (shared.options.lane == Lane::Live)
                        .then(|| shared.options.priority.live(merchant));
                    let decision = shared.handle(&delivery).await;
                    drop(ticket);
                    let delay = match decision {
                        Decision::Done => break,
                        Decision::Retry(d) | Decision::Park(_, d) => d,
                        // Not handled: the next lane reads it again from the progress.
                        Decision::Abandoned => break 'reader,
                    };
                    // Counted as a redelivery, as the shared consumer counts its own.
                    delivery.delivered += 1;
                    delivery.attempt = shared.failures.get(sequence) + 1;
                    if renewed.elapsed() > LEASE_TTL / 3 {
                        let _ = shared.lot.lease(merchant, &shared.holder).await;
                        renewed = Instant::now();
                    }
                    if !wait(delay.min(LEASE_TTL / 3)).await {
                        break 'reader;
                    }
                }
                shared.failures.forget(sequence);
                handled = sequence;
                unrecorded += 1;
                caught_up = pending == 0;
                // Progress is recorded every few events and whenever the lane catches up: after
                // a crash the lane re-reads at most that many, which the handlers absorb.
                if caught_up || unrecorded >= PROGRESS_EVERY {
                    match shared.lot.progress(merchant, handled).await {
                        Ok(()) => (recorded, unrecorded) = (handled, 0),
                        Err(e) => {
                            tracing::warn!(error = %e, merchant, "lane progress not recorded")
                        }
                    }
                }
            }
            if handled > recorded && shared.lot.progress(merchant, handled).await.is_ok() {
                (recorded, unrecorded) = (handled, 0);
            }
            if shared.shutdown.is_triggered() {
                break 'reader;
            }
            if got > 0 && !caught_up {
                // A batch the lane took long over (a merchant paced by its call budget) ends
                // at the client's timeout with the rest of its messages unread, and this reader
                // does not deliver them again: read on from what was handled with a new one.
                continue 'reader;
            }
            if got == 0 || caught_up {
                match shared.lot.try_unpark(merchant).await {
                    Ok(true) => {
                        tracing::info!(
                            merchant,
                            service,
                            "lane caught up; merchant back on the shared consumer"
                        );
                        break 'reader;
                    }
                    // Passed-over events the reader did not hand over (delivered to a fetch
                    // that expired while the lane retried): read again from the progress.
                    Ok(false) if got == 0 => continue 'reader,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, merchant, "could not unpark"),
                }
            }
        }
    }
    if handled > recorded {
        // Stopped inside a batch (shutdown): the next lane starts after what was handled.
        let _ = shared.lot.progress(merchant, handled).await;
    }
    shared.lot.release(merchant).await;
}

fn delivery_of(message: &Message, failures: &FailureCounts) -> Delivery {
    let (stream_sequence, delivered) = match message.info() {
        Ok(info) => (info.stream_sequence, info.delivered),
        Err(_) => (0, 1),
    };
    Delivery {
        subject: message.subject.to_string(),
        merchant: merchant_of(&message.subject).to_string(),
        payload: message.payload.clone(),
        headers: message.headers.clone(),
        stream_sequence,
        delivered,
        attempt: failures.get(stream_sequence) + 1,
    }
}

/// The event type of a subject, `<entity>.<action>` after `magento.<merchant>.` (metrics label).
fn event_type_of(subject: &str) -> &str {
    subject.splitn(3, '.').nth(2).unwrap_or("unknown")
}

/// Runs the handler on one delivery and decides what happens to the message; metrics and
/// dead letters are recorded here, once, for the shared consumer and the lanes alike.
async fn handle_once<H: Handler>(
    delivery: &Delivery,
    handler: &H,
    options: &ConsumerOptions,
    failures: &FailureCounts,
) -> Decision {
    let stream_sequence = delivery.stream_sequence;
    let event_type = event_type_of(&delivery.subject).to_string();
    let span = tracing::info_span!(
        "consume",
        service = options.service,
        subject = %delivery.subject,
        seq = stream_sequence,
        delivered = delivery.delivered
    );
    telemetry::link_to_headers(&span, delivery.headers.as_ref());
    let started = Instant::now();
    let result = handler.handle(delivery).instrument(span.clone()).await;
    let m = metrics();
    m.processing_seconds
        .with_label_values(&[options.service, &event_type])
        .observe(started.elapsed().as_secs_f64());

    // The outcome is logged inside the handling's span by instrumenting this block: an
    // entered guard must not be held across the dead-letter write's await, or the span would
    // stay current on a worker thread that goes on to poll other tasks.
    let decide = async {
        match result {
            Ok(outcome) => {
                m.events
                    .with_label_values(&[options.service, &event_type, outcome.label()])
                    .inc();
                Decision::Done
            }
            Err(error @ ProcessError::Paused { .. }) => {
                tracing::info!(%error, "merchant paused; its events wait in its lane");
                m.events
                    .with_label_values(&[options.service, &event_type, "paused"])
                    .inc();
                Decision::Park(ParkReason::Paused, options.paused_delay)
            }
            Err(ProcessError::Throttled { retry_after }) => {
                m.events
                    .with_label_values(&[options.service, &event_type, "throttled"])
                    .inc();
                Decision::Park(ParkReason::Throttled, retry_after)
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
                Decision::Retry(delay)
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
                match handler.dead_letter(delivery, &error).await {
                    Ok(()) => {
                        m.events
                            .with_label_values(&[options.service, &event_type, "dead_letter"])
                            .inc();
                        m.dead_letters
                            .with_label_values(&[options.service, error.code()])
                            .inc();
                        Decision::Done
                    }
                    Err(store_error) => {
                        tracing::error!(%store_error, "dead letter not recorded; message kept for redelivery");
                        Decision::Retry(options.backoff_base * 4)
                    }
                }
            }
        }
    };
    let decision = decide.instrument(span).await;
    if matches!(decision, Decision::Done) {
        failures.forget(stream_sequence);
    }
    decision
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
