//! The one way a consumer service is wired.
//!
//! A consumer service brings its projection (one [`Projection`] per durable consumer), the RPC
//! endpoints it answers and its migrations; [`ServiceBuilder`] does the rest the same way for
//! every service:
//!
//! 1. runs the service's migrations in its schema (the journal and audit tables are created by
//!    [`Base::connect`]);
//! 2. creates each durable consumer with the configured ack wait and keeps its lag gauges fresh;
//! 3. serves `/metrics` and `/healthz`, the service's RPC endpoints and its audit trail
//!    (`ledger.rpc.<service>.audit`);
//! 4. wraps every projection so that each handling is audited, publishes its sync status and
//!    records its dead letters in the journal;
//! 5. serves dead letters and replay (`ledger.rpc.<service>.dead_letters`, `.replay`), routing
//!    each event to the projection whose consumer reads its subject;
//! 6. runs one consumer loop per consumer until shutdown, then drains; every consumer has a
//!    history twin ([`ConsumerSpec::history`]) reading the backfill's history subjects in a
//!    lower-priority loop, gated by the backfill's controls and counted into its progress
//!    ([`crate::backfill`], decision record 0038).
//!
//! The knobs are one clap struct, [`RuntimeConfig`], read from flags or the environment.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::PgPool;

use crate::audit::{AuditLog, Audited};
use crate::bus::ConsumerSpec;
use crate::consumer::{ConsumerOptions, Delivery, Handler, Lane, Outcome, Priority};
use crate::error::ProcessError;
use crate::shutdown::Shutdown;
use crate::status::StatusPublisher;
use crate::telemetry::LogFormat;

/// Settings every consumer service reads from flags or environment variables.
#[derive(Debug, Clone, clap::Args)]
pub struct RuntimeConfig {
    /// NATS server URL, or a comma-separated list of every node of a cluster (one login).
    #[arg(long, env = "LEDGER_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// PostgreSQL URL (each service uses its own schema).
    #[arg(long, env = "LEDGER_DATABASE_URL")]
    pub database_url: String,
    /// Address of the `/metrics` and `/healthz` server.
    #[arg(long, env = "LEDGER_METRICS_ADDR", default_value = "127.0.0.1:0")]
    pub metrics_addr: SocketAddr,
    /// Merchants handled at the same time.
    #[arg(long, env = "LEDGER_CONCURRENCY", default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds a delivered event may stay unacknowledged before it is delivered again (how
    /// soon the work of a crashed process is taken over).
    #[arg(long, env = "LEDGER_ACK_WAIT_SECS", default_value_t = 60)]
    pub ack_wait_secs: u64,
    /// Seconds before a paused merchant's lane tries its next event again.
    #[arg(long, env = "LEDGER_PAUSED_DELAY_SECS", default_value_t = 60)]
    pub paused_delay_secs: u64,
    /// Messages of one merchant this process holds at once; a merchant with more waiting is
    /// parked into its own lane.
    #[arg(long, env = "LEDGER_MERCHANT_IN_FLIGHT", default_value_t = 64)]
    pub merchant_in_flight: usize,
    /// Events a consumer (each lane, all replicas together) holds delivered and not yet done
    /// at once (JetStream's `max_ack_pending`). It bounds a service's memory when many
    /// merchants have work at the same moment (a mass onboarding, the end of an outage):
    /// every event held costs its payload, its merchant's queue and worker task. Each
    /// merchant's own share of it is `merchant_in_flight`.
    #[arg(long, env = "LEDGER_MAX_ACK_PENDING", default_value_t = 1_000)]
    pub max_ack_pending: i64,
    /// Milliseconds between two readings of consumer lag (in total and by merchant) and of
    /// stream health for the metrics.
    #[arg(long, env = "LEDGER_LAG_POLL_MS", default_value_t = 5000)]
    pub lag_poll_ms: u64,
    /// Seconds handlings under way may go on after SIGTERM before they are abandoned and
    /// their events handed back for redelivery; keep it below the orchestrator's grace period
    /// (30 s in the cluster suite, 60 s in the Helm chart).
    #[arg(long, env = "LEDGER_DRAIN_SECS", default_value_t = 20)]
    pub drain_secs: u64,
    /// Crash points for the chaos suite, `name=probability,...`; never in production.
    #[arg(long, env = "LEDGER_FAILPOINTS")]
    pub failpoints: Option<String>,
    /// Log lines as `text` or `json`.
    #[arg(long, env = "LEDGER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl RuntimeConfig {
    /// The consumer loop's tuning for consumer `name` under this configuration.
    pub fn consumer_options(&self, name: &'static str) -> ConsumerOptions {
        let mut options = ConsumerOptions::new(name);
        options.concurrency = self.concurrency;
        options.paused_delay = Duration::from_secs(self.paused_delay_secs);
        options.merchant_in_flight = self.merchant_in_flight;
        options.drain_timeout = Duration::from_secs(self.drain_secs);
        options
    }
}

/// What a consumer service connects to before anything else: NATS, JetStream and its
/// PostgreSQL schema with the journal and audit tables.
#[derive(Clone)]
pub struct Base {
    /// Service name (also its schema, its NATS client name and its RPC subjects' middle part).
    pub service: &'static str,
    /// NATS client.
    pub nats: async_nats::Client,
    /// JetStream context.
    pub js: async_nats::jetstream::Context,
    /// Pool on the service's own schema.
    pub db: PgPool,
    /// The service's audit trail (table `audit_records` in its schema).
    pub audit: AuditLog,
}

impl Base {
    /// Connects NATS (refusing servers older than 2.10) and PostgreSQL (schema named after
    /// the service, with the journal and audit tables), and makes sure the status stream exists.
    pub async fn connect(config: &RuntimeConfig, service: &'static str) -> anyhow::Result<Base> {
        let nats = crate::bus::connect(&config.nats_url, service).await?;
        let js = async_nats::jetstream::new(nats.clone());
        let db = crate::db::connect_schema(&config.database_url, service, 20).await?;
        crate::journal::migrate(&db).await?;
        crate::audit::migrate(&db).await?;
        // The gateway creates it with the configured replicas; a service that starts first
        // gives it the events stream's.
        let replicas = crate::bus::replicas_of_events_stream(&js).await;
        crate::status::ensure_stream(&js, replicas)
            .await
            .map_err(anyhow::Error::msg)?;
        Ok(Base {
            audit: AuditLog::new(service, db.clone()),
            service,
            nats,
            js,
            db,
        })
    }
}

/// What a service projects from the events of one durable consumer: its own handling, nothing
/// of the wiring. The builder adds the audit, the status feed and the dead-letter journal.
#[async_trait::async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Handles one event. Must be idempotent: the same event may arrive again.
    async fn handle(&self, delivery: &Delivery) -> Result<Outcome, ProcessError>;
}

/// A projection whose dead letters go to the journal of its service's schema.
struct Journaled<P> {
    db: PgPool,
    projection: Arc<P>,
}

#[async_trait::async_trait]
impl<P: Projection> Handler for Journaled<P> {
    async fn handle(&self, delivery: &Delivery) -> Result<Outcome, ProcessError> {
        self.projection.handle(delivery).await
    }

    async fn dead_letter(
        &self,
        delivery: &Delivery,
        error: &ProcessError,
    ) -> Result<(), ProcessError> {
        let event_id = crate::journal::event_id_of(&delivery.payload);
        crate::journal::record_dead_letter(&self.db, delivery, event_id.as_deref(), error).await?;
        Ok(())
    }
}

/// Whether NATS subject `subject` matches `filter` (`*` one token, `>` the rest).
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut tokens = subject.split('.');
    for want in filter.split('.') {
        match (want, tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (want, Some(got)) if want == got => {}
            _ => return false,
        }
    }
    tokens.next().is_none()
}

/// One consumer's subjects and its wrapped handler.
struct Route {
    filters: Vec<String>,
    handler: Arc<dyn Handler>,
}

/// Every handling of a service: each event goes to the projection whose consumer reads its
/// subject. The consumer loops, dead-letter retries, replays and a service's own tasks all
/// hand events here, so each is audited, reported and journaled the same way.
pub struct ServiceHandler {
    service: &'static str,
    routes: Vec<Route>,
}

impl ServiceHandler {
    fn route(&self, subject: &str) -> Result<&Arc<dyn Handler>, ProcessError> {
        self.routes
            .iter()
            .find(|r| r.filters.iter().any(|f| subject_matches(f, subject)))
            .map(|r| &r.handler)
            .ok_or_else(|| {
                ProcessError::invalid_field(
                    "service.no_consumer",
                    "subject",
                    format!("no consumer of {} reads subject {subject}", self.service),
                )
            })
    }
}

#[async_trait::async_trait]
impl Handler for ServiceHandler {
    async fn handle(&self, delivery: &Delivery) -> Result<Outcome, ProcessError> {
        self.route(&delivery.subject)?.handle(delivery).await
    }

    async fn dead_letter(
        &self,
        delivery: &Delivery,
        error: &ProcessError,
    ) -> Result<(), ProcessError> {
        self.route(&delivery.subject)?
            .dead_letter(delivery, error)
            .await
    }
}

/// What a service's own task gets when the service starts.
#[derive(Clone)]
pub struct Started {
    /// NATS client.
    pub nats: async_nats::Client,
    /// Pool on the service's schema.
    pub db: PgPool,
    /// The service's handler: audited, reported, journaled.
    pub handler: Arc<ServiceHandler>,
    /// Fires when the service stops.
    pub shutdown: Shutdown,
}

/// Starts something the service runs beside its consumers.
type StartFn<A> = Box<dyn FnOnce(A) -> BoxFuture<'static, anyhow::Result<()>> + Send>;

/// An RPC endpoint a service answers: how to start serving it on a NATS client until shutdown
/// (made by `ledger_rpc::endpoint`).
pub struct Endpoint {
    start: StartFn<(async_nats::Client, Shutdown)>,
}

impl Endpoint {
    /// An endpoint started by `start(client, shutdown)`, which returns once it accepts requests.
    pub fn new<F, Fut>(start: F) -> Self
    where
        F: FnOnce(async_nats::Client, Shutdown) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        Endpoint {
            start: Box::new(
                move |(client, shutdown)| -> BoxFuture<'static, anyhow::Result<()>> {
                    Box::pin(start(client, shutdown))
                },
            ),
        }
    }
}

/// A consumer as the builder keeps it until start.
struct ConsumerEntry {
    name: &'static str,
    spec: ConsumerSpec,
    /// The projection with its dead-letter journal, before auditing.
    journaled: Arc<dyn Handler>,
}

/// Wires a consumer service (see the module docs).
pub struct ServiceBuilder {
    base: Base,
    config: RuntimeConfig,
    migrator: Option<sqlx::migrate::Migrator>,
    consumers: Vec<ConsumerEntry>,
    endpoints: Vec<Endpoint>,
    tasks: Vec<StartFn<Started>>,
}

/// A started consumer service.
pub struct Running {
    /// Address of `/metrics` and `/healthz`.
    pub metrics_addr: SocketAddr,
    /// Resolves when every consumer has drained after shutdown.
    pub done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Waits until every consumer has drained after shutdown.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.done.await?
    }
}

impl ServiceBuilder {
    /// A service on `base`, tuned by `config`.
    pub fn new(base: Base, config: RuntimeConfig) -> Self {
        ServiceBuilder {
            base,
            config,
            migrator: None,
            consumers: Vec::new(),
            endpoints: Vec::new(),
            tasks: Vec::new(),
        }
    }

    /// The service's own migrations (`sqlx::migrate!("./migrations")`), run in its schema.
    pub fn migrations(mut self, migrator: sqlx::migrate::Migrator) -> Self {
        self.migrator = Some(migrator);
        self
    }

    /// A durable consumer `name` (its durable name, audit consumer and metrics label) reading
    /// `spec`'s subjects into `projection`.
    pub fn consumer<P: Projection>(
        mut self,
        name: &'static str,
        spec: ConsumerSpec,
        projection: Arc<P>,
    ) -> Self {
        let journaled = Arc::new(Journaled {
            db: self.base.db.clone(),
            projection,
        });
        self.consumers.push(ConsumerEntry {
            name,
            spec,
            journaled,
        });
        self
    }

    /// An RPC endpoint the service answers.
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoints.push(endpoint);
        self
    }

    /// A task of the service's own, started after the service's handler exists (e.g. a
    /// listener that hands events back to the handler); returns once it runs.
    pub fn task<F, Fut>(mut self, start: F) -> Self
    where
        F: FnOnce(Started) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.tasks.push(Box::new(
            move |started| -> BoxFuture<'static, anyhow::Result<()>> { Box::pin(start(started)) },
        ));
        self
    }

    /// Starts everything; returns once the service accepts work.
    pub async fn start(self, shutdown: Shutdown) -> anyhow::Result<Running> {
        let ServiceBuilder {
            base,
            config,
            migrator,
            consumers,
            endpoints,
            tasks,
        } = self;
        let service = base.service;
        crate::failpoint::install(config.failpoints.as_deref())
            .map_err(|e| anyhow::anyhow!("failpoints (LEDGER_FAILPOINTS): {e}"))?;
        if let Some(migrator) = migrator {
            migrator.run(&base.db).await?;
        }
        let backfills = crate::backfill::Backfills::open(&base.js)
            .await
            .map_err(anyhow::Error::msg)?;
        // Each consumer reads in two lanes: live, and the history twin gated by its backfill.
        let mut lanes = Vec::new();
        let poll = Duration::from_millis(config.lag_poll_ms.max(100));
        for entry in &consumers {
            let status = Arc::new(StatusPublisher::new(base.js.clone()));
            let live: Arc<dyn Handler> = Arc::new(
                Audited::new(
                    entry.name,
                    base.audit.clone(),
                    Arc::new(entry.journaled.clone()),
                )
                .with_hook(status.clone()),
            );
            let gate = Arc::new(crate::backfill::Gate::new(
                backfills.clone(),
                entry.journaled.clone(),
            ));
            let history: Arc<dyn Handler> = Arc::new(
                Audited::new(entry.name, base.audit.clone(), gate)
                    .with_hook(status)
                    .with_hook(Arc::new(crate::backfill::ProgressHook::new(
                        backfills.clone(),
                        entry.name,
                    ))),
            );
            let mut spec = entry.spec.clone();
            spec.ack_wait = Duration::from_secs(config.ack_wait_secs);
            spec.max_ack_pending = config.max_ack_pending.max(1);
            let history_spec = spec.history();
            lanes.push((entry.name, Lane::Live, spec, live));
            lanes.push((entry.name, Lane::History, history_spec, history));
        }
        let mut durables = Vec::new();
        for (_, _, spec, _) in &lanes {
            let consumer = crate::bus::ensure_consumer(&base.js, spec).await?;
            crate::metrics::spawn_lag_poller(consumer.clone(), poll, shutdown.clone());
            crate::lag::spawn_merchant_lag_poller(
                base.js.clone(),
                consumer.clone(),
                spec.clone(),
                poll,
                shutdown.clone(),
            );
            durables.push(consumer);
        }
        crate::metrics::spawn_stream_poller(base.nats.clone(), service, poll, shutdown.clone());
        let metrics_addr = crate::metrics::serve(
            config.metrics_addr,
            crate::metrics::router(),
            shutdown.clone(),
        )
        .await?;
        crate::audit::serve(base.nats.clone(), base.audit.clone(), shutdown.clone()).await?;
        for endpoint in endpoints {
            (endpoint.start)((base.nats.clone(), shutdown.clone())).await?;
        }

        let handler = Arc::new(ServiceHandler {
            service,
            routes: lanes
                .iter()
                .map(|(_, _, spec, handler)| Route {
                    filters: spec.filter_subjects.clone(),
                    handler: handler.clone(),
                })
                .collect(),
        });
        crate::dead_letters::serve(
            service,
            base.nats.clone(),
            base.db.clone(),
            handler.clone(),
            shutdown.clone(),
        )
        .await?;
        // A replay reads every subject of the service in log order and routes each event.
        let filters = lanes
            .iter()
            .flat_map(|(_, _, spec, _)| spec.filter_subjects.clone())
            .collect();
        crate::replay::serve(
            service,
            base.nats.clone(),
            base.db.clone(),
            handler.clone(),
            filters,
            shutdown.clone(),
        )
        .await?;
        let started = Started {
            nats: base.nats.clone(),
            db: base.db.clone(),
            handler: handler.clone(),
            shutdown: shutdown.clone(),
        };
        for task in tasks {
            task(started.clone()).await?;
        }

        // One count of live work per process: any live event of a merchant holds back that
        // merchant's history in every consumer of the service.
        let priority = Priority::default();
        let mut loops = Vec::new();
        for ((name, lane, _, _), durable) in lanes.into_iter().zip(durables) {
            let mut options = config.consumer_options(name);
            options.lane = lane;
            options.priority = priority.clone();
            loops.push(tokio::spawn(crate::consumer::run(
                base.js.clone(),
                durable,
                handler.clone(),
                options,
                shutdown.clone(),
            )));
        }
        drop(consumers);
        // After shutdown the consumers drain and the RPC answers under way go out, each within
        // the drain deadline (the endpoints stop taking requests at once).
        let drain = Duration::from_secs(config.drain_secs);
        let answers = async move {
            shutdown.wait().await;
            if !crate::micro::answered(drain).await {
                tracing::warn!(
                    service,
                    in_flight = crate::micro::in_flight(),
                    "requests still unanswered at the drain deadline"
                );
            }
        };
        let done = tokio::spawn(async move {
            let (results, ()) =
                futures::future::join(futures::future::join_all(loops), answers).await;
            for result in results {
                result??;
            }
            Ok(())
        });
        Ok(Running { metrics_addr, done })
    }
}

/// How long past its drain deadline ([`RuntimeConfig::drain_secs`]) a stopping service may
/// take before [`main`] returns anyway.
pub const STOP_SLACK: Duration = Duration::from_secs(5);

/// The body of a consumer service binary: installs telemetry with the configured log format,
/// then runs `run` until SIGINT or SIGTERM fires its shutdown and it has drained.
///
/// The stop is bounded: once shutdown fires, `run` gets the drain deadline plus
/// [`STOP_SLACK`]; a service still stuck then (say, on a NATS or PostgreSQL that is gone)
/// returns anyway, and the server redelivers whatever it had not acknowledged.
pub async fn main<F, Fut>(
    service: &'static str,
    config: &RuntimeConfig,
    run: F,
) -> anyhow::Result<()>
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let _telemetry = crate::telemetry::init_with(service, config.log_format);
    let shutdown = Shutdown::new();
    shutdown.trigger_on(crate::shutdown::signal());
    let limit = Duration::from_secs(config.drain_secs) + STOP_SLACK;
    run_bounded(run(shutdown.clone()), &shutdown, limit).await
}

/// Runs `run` to its end, but no longer than `limit` after `shutdown` fires.
pub async fn run_bounded<Fut>(run: Fut, shutdown: &Shutdown, limit: Duration) -> anyhow::Result<()>
where
    Fut: Future<Output = anyhow::Result<()>>,
{
    let deadline = async {
        shutdown.wait().await;
        tokio::time::sleep(limit).await;
    };
    tokio::select! {
        result = run => result,
        _ = deadline => {
            tracing::error!(?limit, "not stopped in time after shutdown; exiting anyway");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_match_their_filters_only() {
        assert!(subject_matches(
            "magento.*.invoice.paid",
            "magento.m1.invoice.paid"
        ));
        assert!(!subject_matches(
            "magento.*.invoice.paid",
            "magento.m1.invoice.created"
        ));
        assert!(!subject_matches(
            "magento.*.invoice.paid",
            "magento.m1.invoice.paid.x"
        ));
        assert!(!subject_matches(
            "magento.*.invoice.paid",
            "magento.m1.invoice"
        ));
        assert!(subject_matches("magento.>", "magento.m1.product.saved"));
        assert!(!subject_matches("magento.>", "magento"));
    }

    #[test]
    fn configuration_reaches_the_consumer_loop() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            runtime: RuntimeConfig,
        }
        let cli = Cli::try_parse_from([
            "svc",
            "--database-url",
            "postgres://db/ledger",
            "--paused-delay-secs",
            "2",
            "--merchant-in-flight",
            "8",
            "--concurrency",
            "3",
            "--log-format",
            "json",
            "--drain-secs",
            "7",
            "--max-ack-pending",
            "250",
        ])
        .expect("valid flags");
        let options = cli.runtime.consumer_options("svc");
        assert_eq!(options.paused_delay, Duration::from_secs(2));
        assert_eq!(options.merchant_in_flight, 8);
        assert_eq!(options.concurrency, 3);
        assert_eq!(options.drain_timeout, Duration::from_secs(7));
        assert_eq!(cli.runtime.log_format, LogFormat::Json);
        assert_eq!(cli.runtime.max_ack_pending, 250);
        let refused = Cli::try_parse_from(["svc", "--database-url", "x", "--log-format", "xml"]);
        assert!(refused.is_err());
    }
}
