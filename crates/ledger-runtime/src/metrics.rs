//! Prometheus metrics shared by every service, and the `/metrics` + `/healthz` endpoints.
//!
//! Grafana's consumer-lag views read `ledger_consumer_pending` and
//! `ledger_consumer_ack_pending`, which [`spawn_lag_poller`] refreshes from JetStream.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, Consumer};
use axum::routing::get;
use axum::Router;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
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
    /// Store logins to NATS answered by the auth callout, by outcome (`admitted`, `refused`).
    pub store_logins: IntCounterVec,
    /// Pairing steps, by step (`requested`, `claimed`, `delivered`, `refused`, `revoked`).
    pub pairings: IntCounterVec,
    /// Merchants parked off the shared consumer, by service and reason (`paused`,
    /// `throttled`, `backlog`); see `ledger_runtime::parking`.
    pub parked: IntCounterVec,
    /// Parked merchants' deliveries the shared consumer passed over to their lanes.
    pub passed_over: IntCounterVec,
}

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
    for c in [
        Box::new(events.clone()) as Box<dyn prometheus::core::Collector>,
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
            }
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(every) => {},
            }
        }
    });
}
