//! What every Ledger service shares.
//!
//! - [`audit`]: the per-event audit trail of Sage calls, hash-chained per merchant.
//! - [`bus`]: connecting to NATS (refusing servers older than 2.10), the JetStream topology
//!   (the `MAGENTO_EVENTS` stream and durable pull consumers) and request/reply helpers.
//! - [`consumer`]: the consumer loop with its ack discipline: ack only after the outcome is
//!   committed, delayed redelivery for transient faults, terminate + dead letter for permanent
//!   ones, per-merchant serialisation, graceful drain on shutdown.
//! - [`error`]: the error taxonomy every handler speaks ([`ProcessError`]).
//! - [`telemetry`]: tracing with OpenTelemetry and trace context in NATS headers.
//! - [`metrics`]: Prometheus metrics, `/metrics` and `/healthz`, consumer lag, stream health.
//! - [`lag`]: lag per merchant (pending events, age of the oldest) for the busiest merchants.
//! - [`db`]: one PostgreSQL schema per service, so each service owns its tables.
//! - [`status`]: the sync status feed (stream `LEDGER_STATUS`).
//! - [`micro`]: request/reply as NATS services (`$SRV.PING/INFO/STATS`, queue groups,
//!   standard error headers), each request handled in its own task.
//! - [`dry_run`]: the scope in which Sage writes are refused (replay's dry runs).
//! - [`replay`]: re-running a merchant's events from the log through a service's handler.
//! - [`shutdown`]: the signal future every binary waits on.
//! - [`service`]: the builder that wires every consumer service the same way, and its
//!   configuration.
//! - [`failpoint`]: crash points for the chaos suite.
//! - `alloc` (feature `jemalloc`, on in the service binaries): jemalloc as the allocator.

#[cfg(feature = "jemalloc")]
pub mod alloc;
pub mod audit;
pub mod backfill;
pub mod bus;
pub mod cache;
pub mod consumer;
pub mod db;
pub mod dead_letters;
pub mod dry_run;
pub mod error;
pub mod failpoint;
pub mod journal;
pub mod lag;
pub mod metrics;
pub mod micro;
pub mod parking;
pub mod replay;
pub mod service;
pub mod shutdown;
pub mod status;
pub mod telemetry;

pub use error::{ProcessError, ProcessResult};
