//! Prometheus metrics shared by every service, and the `/metrics` + `/healthz` endpoints.
//!
//! Grafana's consumer-lag views read `ledger_consumer_pending` and
//! `ledger_consumer_ack_pending`, which [`spawn_lag_poller`] refreshes from JetStream; the
//! per-merchant lag comes from [`crate::lag`], stream health from [`spawn_stream_poller`].
//!
//! Cardinality is bounded: a `merchant` label appears only on the [`TOP_MERCHANTS`] merchants
//! that rank highest on a gauge (most pending events, oldest unprocessed event, least Sage call
//! budget left); everything else is labelled by service, consumer, stream or a closed set of
//! codes (docs/operations.md, "Metrics and cardinality").

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, Consumer};
use axum::routing::get;
use axum::Router;
use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::shutdown::Shutdown;

/// The metric families every service exports.
pub struct Metrics {
    /// Registry the families live in.
    pub registry: Registry,
    /// Events handled, by service, event type and outcome.
    pub events: IntCounterVec,
    /// Time to handle one event, by service and event type.
    pub processing_seconds: HistogramVec,
    /// Calls to Sage, by service, method, resource and HTTP status (`error` when none).
    pub sage_calls: IntCounterVec,
    /// Latency of calls to Sage.
    pub sage_call_seconds: HistogramVec,
    /// Messages not yet delivered to a consumer (lag).
    pub consumer_pending: IntGaugeVec,
    /// Messages delivered and awaiting acknowledgement.
    pub consumer_ack_pending: IntGaugeVec,
    /// Messages redelivered to a consumer.
    pub consumer_redelivered: IntGaugeVec,
    /// Dead letters recorded, by service and reason code.
    pub dead_letters: IntCounterVec,
    /// Events received at the edge, by outcome (`accepted`, `duplicate`, `quarantined`).
    pub ingest: IntCounterVec,
    /// Store logins to NATS answered by the auth callout, by outcome (`admitted`, `refused`,
    /// `unreadable`).
    pub store_logins: IntCounterVec,
    /// Pairing steps, by step (`requested`, `claimed`, `delivered`, `refused`, `revoked`).
    pub pairings: IntCounterVec,
    /// Merchants parked off the shared consumer, by service and reason (`paused`,
    /// `throttled`, `backlog`); see `ledger_runtime::parking`.
    pub parked: IntCounterVec,
    /// Parked merchants' deliveries the shared consumer passed over to their lanes.
    pub passed_over: IntCounterVec,
    /// Stream sequence below which a consumer has acknowledged everything (its progress).
    pub consumer_ack_floor: IntGaugeVec,
    /// Events not yet handled, by consumer and merchant, for the [`TOP_MERCHANTS`] merchants
    /// with the most (see [`crate::lag`]).
    pub merchant_pending: IntGaugeVec,
    /// Age in seconds of a merchant's oldest unhandled event, by consumer and merchant, for
    /// the [`TOP_MERCHANTS`] merchants whose oldest is oldest.
    pub merchant_oldest_age: GaugeVec,
    /// Age in seconds of the oldest unhandled event of any merchant, by consumer (0 = none).
    pub consumer_oldest_age: GaugeVec,
    /// Merchants with at least one unhandled event, by consumer.
    pub merchants_pending: IntGaugeVec,
    /// Merchants parked right now, by consumer and reason (`paused`, `throttled`, `backlog`).
    pub parked_now: IntGaugeVec,
    /// Sage calls left in the current budget window, for the [`TOP_MERCHANTS`] businesses
    /// (by merchant) with the fewest left.
    pub sage_budget_left: IntGaugeVec,
    /// Messages held by a stream (for `LEDGER_QUARANTINE`: the quarantine count).
    pub stream_messages: IntGaugeVec,
    /// Bytes held by a stream.
    pub stream_bytes: IntGaugeVec,
    /// Consumers of a stream.
    pub stream_consumers: IntGaugeVec,
    /// 1 while the service's NATS connection is up, else 0, by service.
    pub nats_connected: IntGaugeVec,
    /// JetStream storage the account uses, in bytes, by storage kind (`file`, `memory`).
    pub jetstream_used_bytes: IntGaugeVec,
}

/// How many merchants a per-merchant gauge labels at most (per consumer).
pub const TOP_MERCHANTS: usize = 20;

fn build() -> Metrics {
    let registry = Registry::new();
    let buckets = vec![
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    let events = IntCounterVec::new(
        Opts::new(
            "ledger_events_total",
            "Events handled by a consumer service",
        ),
        &["service", "event_type", "outcome"],
    )
    .expect("metric");
    let processing_seconds = HistogramVec::new(
        HistogramOpts::new(
            "ledger_event_processing_seconds",
            "Time to handle one event",
        )
        .buckets(buckets.clone()),
        &["service", "event_type"],
    )
    .expect("metric");
    let sage_calls = IntCounterVec::new(
        Opts::new("ledger_sage_calls_total", "Calls made to Sage Accounting"),
        &["service", "method", "resource", "status"],
    )
    .expect("metric");
    let sage_call_seconds = HistogramVec::new(
        HistogramOpts::new(
            "ledger_sage_call_seconds",
            "Latency of calls to Sage Accounting",
        )
        .buckets(buckets),
        &["service", "method", "resource"],
    )
    .expect("metric");
    let consumer_pending = IntGaugeVec::new(
        Opts::new(
            "ledger_consumer_pending",
            "Messages not yet delivered to the consumer",
        ),
        &["stream", "consumer"],
    )
    .expect("metric");
    let consumer_ack_pending = IntGaugeVec::new(
        Opts::new(
            "ledger_consumer_ack_pending",
            "Messages delivered, not yet acknowledged",
        ),
        &["stream", "consumer"],
    )
    .expect("metric");
    let consumer_redelivered = IntGaugeVec::new(
        Opts::new(
            "ledger_consumer_redelivered",
            "Messages redelivered to the consumer",
        ),
        &["stream", "consumer"],
    )
    .expect("metric");
    let dead_letters = IntCounterVec::new(
        Opts::new("ledger_dead_letters_total", "Dead letters recorded"),
        &["service", "code"],
    )
    .expect("metric");
    let ingest = IntCounterVec::new(
        Opts::new("ledger_ingest_total", "Events received at the edge"),
        &["outcome"],
    )
    .expect("metric");
    let store_logins = IntCounterVec::new(
        Opts::new(
            "ledger_store_logins_total",
            "Store logins to NATS answered by the auth callout",
        ),
        &["outcome"],
    )
    .expect("metric");
    let pairings = IntCounterVec::new(
        Opts::new("ledger_pairings_total", "Store pairing steps"),
        &["step"],
    )
    .expect("metric");
    let parked = IntCounterVec::new(
        Opts::new(
            "ledger_merchants_parked_total",
            "Merchants parked off the shared consumer into their own lane",
        ),
        &["service", "reason"],
    )
    .expect("metric");
    let passed_over = IntCounterVec::new(
        Opts::new(
            "ledger_events_passed_over_total",
            "Parked merchants' deliveries passed over to their lanes",
        ),
        &["service"],
    )
    .expect("metric");
    let int_gauge = |name: &str, help: &str, labels: &[&str]| {
        IntGaugeVec::new(Opts::new(name, help), labels).expect("metric")
    };
    let consumer_ack_floor = int_gauge(
        "ledger_consumer_ack_floor",
        "Stream sequence up to which the consumer has acknowledged everything",
        &["stream", "consumer"],
    );
    let merchant_pending = int_gauge(
        "ledger_merchant_pending_events",
        "Unhandled events of a merchant (only the merchants with the most)",
        &["consumer", "merchant"],
    );
    let merchant_oldest_age = GaugeVec::new(
        Opts::new(
            "ledger_merchant_oldest_unprocessed_age_seconds",
            "Age of a merchant's oldest unhandled event (only the merchants whose is oldest)",
        ),
        &["consumer", "merchant"],
    )
    .expect("metric");
    let consumer_oldest_age = GaugeVec::new(
        Opts::new(
            "ledger_consumer_oldest_unprocessed_age_seconds",
            "Age of the oldest unhandled event of any merchant (0 when none waits)",
        ),
        &["consumer"],
    )
    .expect("metric");
    let merchants_pending = int_gauge(
        "ledger_merchants_with_pending_events",
        "Merchants with at least one unhandled event",
        &["consumer"],
    );
    let parked_now = int_gauge(
        "ledger_parked_merchants",
        "Merchants parked in their own lane right now",
        &["consumer", "reason"],
    );
    let sage_budget_left = int_gauge(
        "ledger_sage_budget_left",
        "Sage calls left in the budget window (only the businesses with the fewest left)",
        &["merchant"],
    );
    let stream_messages = int_gauge(
        "ledger_stream_messages",
        "Messages held by a JetStream stream",
        &["stream"],
    );
    let stream_bytes = int_gauge(
        "ledger_stream_bytes",
        "Bytes held by a JetStream stream",
        &["stream"],
    );
    let stream_consumers = int_gauge(
        "ledger_stream_consumers",
        "Consumers of a JetStream stream",
        &["stream"],
    );
    let nats_connected = int_gauge(
        "ledger_nats_connected",
        "1 while the service's NATS connection is up",
        &["service"],
    );
    let jetstream_used_bytes = int_gauge(
        "ledger_jetstream_used_bytes",
        "JetStream storage used by the account",
        &["storage"],
    );
    // Closed label sets start at 0, so rates over them answer 0 rather than nothing.
    for outcome in ["admitted", "refused", "unreadable"] {
        store_logins.with_label_values(&[outcome]);
    }
    for outcome in ["accepted", "duplicate", "quarantined"] {
        ingest.with_label_values(&[outcome]);
    }
    for step in ["requested", "claimed", "delivered", "refused", "revoked"] {
        pairings.with_label_values(&[step]);
    }
    for c in [
        Box::new(events.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(consumer_ack_floor.clone()),
        Box::new(merchant_pending.clone()),
        Box::new(merchant_oldest_age.clone()),
        Box::new(consumer_oldest_age.clone()),
        Box::new(merchants_pending.clone()),
        Box::new(parked_now.clone()),
        Box::new(sage_budget_left.clone()),
        Box::new(stream_messages.clone()),
        Box::new(stream_bytes.clone()),
        Box::new(stream_consumers.clone()),
        Box::new(nats_connected.clone()),
        Box::new(jetstream_used_bytes.clone()),
        Box::new(parked.clone()),
        Box::new(passed_over.clone()),
        Box::new(store_logins.clone()),
        Box::new(pairings.clone()),
        Box::new(processing_seconds.clone()),
        Box::new(sage_calls.clone()),
        Box::new(sage_call_seconds.clone()),
        Box::new(consumer_pending.clone()),
        Box::new(consumer_ack_pending.clone()),
        Box::new(consumer_redelivered.clone()),
        Box::new(dead_letters.clone()),
        Box::new(ingest.clone()),
    ] {
        registry.register(c).expect("register metric");
    }
    Metrics {
        registry,
        events,
        processing_seconds,
        sage_calls,
        sage_call_seconds,
        consumer_pending,
        consumer_ack_pending,
        consumer_redelivered,
        dead_letters,
        ingest,
        store_logins,
        pairings,
        parked,
        passed_over,
        consumer_ack_floor,
        merchant_pending,
        merchant_oldest_age,
        consumer_oldest_age,
        merchants_pending,
        parked_now,
        sage_budget_left,
        stream_messages,
        stream_bytes,
        stream_consumers,
        nats_connected,
        jetstream_used_bytes,
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(build)
}

/// Renders every metric in the Prometheus text format.
pub fn render() -> String {
    TextEncoder::new()
        .encode_to_string(&metrics().registry.gather())
        .unwrap_or_default()
}

/// A router with `GET /metrics` and `GET /healthz`, to serve alone or merge into a service's.
pub fn router() -> Router {
    Router::new()
        .route("/metrics", get(|| async { render() }))
        .route(HEALTH_PATH, get(|| async { "ok" }))
}

/// The path of the liveness answer (`ok`).
pub const HEALTH_PATH: &str = "/healthz";

/// A router with `GET /healthz` only: for a public listener, where `/metrics` must not be.
pub fn health_router() -> Router {
    Router::new().route(HEALTH_PATH, get(|| async { "ok" }))
}

/// Serves `router` on `bind` until `shutdown` fires; returns the bound address (port 0 works).
pub async fn serve(
    bind: SocketAddr,
    router: Router,
    shutdown: Shutdown,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.wait().await })
            .await;
    });
    Ok(addr)
}

/// Refreshes the lag gauges of `consumer` every `every` until shutdown.
pub fn spawn_lag_poller(mut consumer: Consumer<pull::Config>, every: Duration, shutdown: Shutdown) {
    tokio::spawn(async move {
        loop {
            if let Ok(info) = consumer.info().await {
                let labels = [info.stream_name.as_str(), info.name.as_str()];
                let m = metrics();
                m.consumer_pending
                    .with_label_values(&labels)
                    .set(info.num_pending as i64);
                m.consumer_ack_pending
                    .with_label_values(&labels)
                    .set(info.num_ack_pending as i64);
                m.consumer_redelivered
                    .with_label_values(&labels)
                    .set(info.num_redelivered as i64);
                m.consumer_ack_floor
                    .with_label_values(&labels)
                    .set(info.ack_floor.stream_sequence as i64);
            }
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(every) => {},
            }
        }
    });
}

/// The `n` entries with the highest values, highest first (ties by name, so the choice is
/// stable between scrapes); entries with a value of 0 or less are left out.
pub fn top_n<V: Copy + PartialOrd + Default>(values: &[(String, V)], n: usize) -> Vec<(String, V)> {
    let mut ranked: Vec<(String, V)> = values
        .iter()
        .filter(|(_, v)| *v > V::default())
        .cloned()
        .collect();
    ranked.sort_by(|a, b| {
        b.1.partial_cmp(&a.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.0.cmp(&b.0))
    });
    ranked.truncate(n);
    ranked
}

/// Sets the series of one group (e.g. one consumer) of a per-merchant gauge to exactly
/// `ranked`, removing the series of merchants that are no longer in it. `shown` is the
/// caller's memory of the merchants it labelled last time.
pub fn show_ranked<T: prometheus::core::Atomic>(
    gauge: &prometheus::core::GenericGaugeVec<T>,
    group: &str,
    ranked: &[(String, T::T)],
    shown: &mut Vec<String>,
) {
    for old in shown.iter() {
        if !ranked.iter().any(|(m, _)| m == old) {
            let _ = gauge.remove_label_values(&[group, old.as_str()]);
        }
    }
    for (merchant, value) in ranked {
        gauge.with_label_values(&[group, merchant]).set(*value);
    }
    *shown = ranked.iter().map(|(m, _)| m.clone()).collect();
}

/// How long a business's last known budget stays on show: after a budget window without a
/// call the budget is full again, and the business drops off the gauge.
pub const BUDGET_SHOWN_FOR: Duration = Duration::from_secs(60);

/// The budgets last seen per business, from which [`record_budget_left`] shows the lowest.
#[derive(Default)]
pub struct BudgetBoard {
    seen: HashMap<String, (i64, Instant)>,
    shown: Vec<String>,
}

impl BudgetBoard {
    /// Notes that `merchant` has `left` calls left at `now`; returns the [`TOP_MERCHANTS`]
    /// businesses with the fewest calls left, fewest first, forgetting those last seen more
    /// than [`BUDGET_SHOWN_FOR`] before `now`.
    pub fn note(&mut self, merchant: &str, left: i64, now: Instant) -> Vec<(String, i64)> {
        self.seen.insert(merchant.to_string(), (left, now));
        self.seen
            .retain(|_, (_, at)| now.saturating_duration_since(*at) <= BUDGET_SHOWN_FOR);
        let mut lowest: Vec<(String, i64)> = self
            .seen
            .iter()
            .map(|(m, (left, _))| (m.clone(), *left))
            .collect();
        lowest.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        lowest.truncate(TOP_MERCHANTS);
        lowest
    }
}

/// Records that `merchant`'s business has `left` Sage calls left in its budget window (the
/// Sage gate calls this after each admitted call); `ledger_sage_budget_left` shows the
/// [`TOP_MERCHANTS`] businesses with the fewest left.
pub fn record_budget_left(merchant: &str, left: i64) {
    static BOARD: OnceLock<Mutex<BudgetBoard>> = OnceLock::new();
    let mut board = BOARD
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let lowest = board.note(merchant, left, Instant::now());
    let gauge = &metrics().sage_budget_left;
    for old in &board.shown {
        if !lowest.iter().any(|(m, _)| m == old) {
            let _ = gauge.remove_label_values(&[old.as_str()]);
        }
    }
    for (m, left) in &lowest {
        gauge.with_label_values(&[m]).set(*left);
    }
    board.shown = lowest.into_iter().map(|(m, _)| m).collect();
}

/// Refreshes the stream-health gauges (messages, bytes and consumers of the events and
/// quarantine streams, the account's JetStream usage) and `ledger_nats_connected` for
/// `service` every `every` until shutdown. NATS server health is read through the service's
/// own connection, so it needs no exporter beside nats-server.
pub fn spawn_stream_poller(
    client: async_nats::Client,
    service: &'static str,
    every: Duration,
    shutdown: Shutdown,
) {
    let js = async_nats::jetstream::new(client.clone());
    tokio::spawn(async move {
        loop {
            let m = metrics();
            let up = matches!(
                client.connection_state(),
                async_nats::connection::State::Connected
            );
            m.nats_connected
                .with_label_values(&[service])
                .set(i64::from(up));
            for name in [crate::bus::EVENTS_STREAM, crate::bus::QUARANTINE_STREAM] {
                if let Ok(mut stream) = js.get_stream(name).await {
                    if let Ok(info) = stream.info().await {
                        let s = &info.state;
                        m.stream_messages
                            .with_label_values(&[name])
                            .set(s.messages as i64);
                        m.stream_bytes
                            .with_label_values(&[name])
                            .set(s.bytes as i64);
                        m.stream_consumers
                            .with_label_values(&[name])
                            .set(s.consumer_count as i64);
                    }
                }
            }
            if let Ok(account) = js.query_account().await {
                m.jetstream_used_bytes
                    .with_label_values(&["file"])
                    .set(account.storage as i64);
                m.jetstream_used_bytes
                    .with_label_values(&["memory"])
                    .set(account.memory as i64);
            }
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(every) => {},
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
        pairs.iter().map(|(m, v)| (m.to_string(), *v)).collect()
    }

    #[test]
    fn top_n_keeps_the_highest_drops_zeros_and_breaks_ties_by_name() {
        let values = entries(&[("c", 5), ("a", 9), ("idle", 0), ("b", 5), ("d", 1)]);
        assert_eq!(top_n(&values, 3), entries(&[("a", 9), ("b", 5), ("c", 5)]));
        assert_eq!(
            top_n(&values, 10).len(),
            4,
            "the idle merchant is not shown"
        );
        assert!(top_n(&values, 0).is_empty());
    }

    #[test]
    fn a_merchant_that_drops_out_of_the_ranking_loses_its_series() {
        let gauge = IntGaugeVec::new(Opts::new("t_pending", "t"), &["consumer", "merchant"])
            .expect("metric");
        let mut shown = Vec::new();
        show_ranked(&gauge, "docs", &entries(&[("a", 3), ("b", 2)]), &mut shown);
        show_ranked(&gauge, "docs", &entries(&[("b", 7)]), &mut shown);
        let families = {
            let r = Registry::new();
            r.register(Box::new(gauge.clone())).expect("register");
            r.gather()
        };
        let series: Vec<(String, i64)> = families[0]
            .get_metric()
            .iter()
            .map(|m| {
                let merchant = m
                    .get_label()
                    .iter()
                    .find(|l| l.name() == "merchant")
                    .map(|l| l.value().to_string())
                    .unwrap_or_default();
                (merchant, m.get_gauge().get_value() as i64)
            })
            .collect();
        assert_eq!(series, entries(&[("b", 7)]));
        assert_eq!(shown, vec!["b".to_string()]);
    }

    #[test]
    fn the_budget_board_shows_the_fewest_left_and_forgets_stale_businesses() {
        let mut board = BudgetBoard::default();
        let t0 = Instant::now();
        board.note("full", 199, t0);
        board.note("busy", 3, t0);
        let later = t0 + Duration::from_secs(30);
        assert_eq!(
            board.note("mid", 50, later),
            entries(&[("busy", 3), ("mid", 50), ("full", 199)])
        );
        // 61 s after the first two were seen their windows have turned: only `mid` is left.
        let much_later = t0 + Duration::from_secs(61);
        assert_eq!(board.note("mid", 49, much_later), entries(&[("mid", 49)]));
        for i in 0..30 {
            board.note(&format!("m{i:02}"), i, much_later);
        }
        let shown = board.note("mid", 48, much_later);
        assert_eq!(shown.len(), TOP_MERCHANTS, "bounded");
        assert_eq!(shown[0], ("m00".to_string(), 0));
        assert!(
            !shown.iter().any(|(m, _)| m == "mid"),
            "48 left is not among the 20 lowest"
        );
    }
}
