//! # sage-sandbox
//!
//! **A test and demo tool, not Sage.** An HTTP server that behaves like the
//! parts of Sage Business Cloud Accounting API v3.1 that Ledger touches, so
//! the sync engine can be exercised end to end without a Sage account:
//! OAuth with rotating refresh tokens, the `/v3.1` resources Ledger reads
//! and writes, Sage's error envelope, validation against a structure-only
//! extract of Sage's swagger, Sage's documented business rules and quirks,
//! idempotency, pagination, and knobs for faults (latency, 500s, 429s,
//! dropped connections) and rate limits.
//!
//! State lives in memory. Where Sage's behaviour is undocumented the sandbox
//! makes a documented choice (see the crate's README); it must not be taken
//! as evidence of how Sage behaves.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use sage_sandbox::{BusinessSpec, Sandbox, SandboxConfig};
//! let sandbox = Sandbox::start(SandboxConfig::default()).await?;
//! let business = sandbox.create_business(BusinessSpec::default()).await;
//! let code = sandbox.issue_authorization_code(&business.id).await;
//! // POST code to sandbox.token_url(), then call sandbox.api_base_url().
//! # let _ = code;
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

#![recursion_limit = "256"]
#![warn(missing_docs)]

mod admin;
mod api;
mod auth;
mod error;
mod exchange;
mod faults;
mod listing;
mod model;
pub mod money;
mod resources;
pub mod rules;
pub mod schema;
mod seed;
mod server;
mod shared;
mod stats;

pub use error::{ApiError, DataCode, SageError};
pub use faults::{ActiveFault, FaultKind, FaultPlan};
pub use model::{default_accounts_start_date, BusinessHandle, BusinessSpec};
pub use shared::DuplicateGroup;
pub use stats::{
    CallRecord, CallStat, ConcurrencyViolation, FaultStat, ReplayStat, Stats, TokenStat,
    CALL_LOG_CAPACITY,
};

use serde_json::Value;
use shared::{lock, Shared};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A fresh opaque id: 32 lower-case hex characters, like Sage's GUIDs
/// without hyphens.
pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Sandbox settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Address to listen on; port 0 picks a free port.
    pub bind: SocketAddr,
    /// OAuth client id the token endpoint accepts.
    pub client_id: String,
    /// OAuth client secret the token endpoint accepts.
    pub client_secret: String,
    /// Access token lifetime (Sage: 300 s).
    pub access_token_ttl: Duration,
    /// Refresh token lifetime (Sage: 31 days).
    pub refresh_token_ttl: Duration,
    /// How long an `idempotency_id` replays its first answer (Sage: 7 days).
    pub idempotency_window: Duration,
    /// Requests per rolling minute per business before 429; `None` = no limit.
    pub rate_limit_per_minute: Option<u32>,
    /// The rolling window of `rate_limit_per_minute` (a minute; tests may scale it down).
    /// [`Stats::busiest_window`] counts arrivals in windows of this length too.
    pub rate_window: Duration,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            client_id: "ledger-dev".to_owned(),
            client_secret: "ledger-dev-secret".to_owned(),
            access_token_ttl: Duration::from_secs(300),
            refresh_token_ttl: auth::DEFAULT_REFRESH_TTL,
            idempotency_window: Duration::from_secs(7 * 24 * 3600),
            rate_limit_per_minute: None,
            rate_window: faults::RATE_WINDOW,
        }
    }
}

/// A running sandbox server. Dropping it stops the server too; prefer
/// [`Sandbox::shutdown`], which also waits for in-flight requests.
pub struct Sandbox {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Binds `config.bind` and serves in a background task.
    pub async fn start(config: SandboxConfig) -> std::io::Result<Sandbox> {
        let listener = TcpListener::bind(config.bind).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(listener, shared.clone(), async {
            let _ = stopped.await;
        }));
        Ok(Sandbox {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn base(&self) -> String {
        // A wildcard bind is reachable on loopback; clients cannot dial 0.0.0.0.
        let host = if self.addr.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], self.addr.port()))
        } else {
            self.addr
        };
        format!("http://{host}")
    }

    /// `http://127.0.0.1:PORT/v3.1`
    pub fn api_base_url(&self) -> String {
        format!("{}/v3.1", self.base())
    }

    /// `http://127.0.0.1:PORT/oauth/token`
    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.base())
    }

    /// `http://127.0.0.1:PORT/oauth2/auth/central`
    pub fn authorize_url(&self) -> String {
        format!("{}/oauth2/auth/central", self.base())
    }

    /// `http://127.0.0.1:PORT/oauth/revoke`
    pub fn revoke_url(&self) -> String {
        format!("{}/oauth/revoke", self.base())
    }

    /// `http://127.0.0.1:PORT/_sandbox`
    pub fn admin_url(&self) -> String {
        format!("{}/_sandbox", self.base())
    }

    /// Seeds a business with Sage's reference data.
    ///
    /// # Panics
    /// On an invalid spec (unknown base currency, empty name, country not
    /// two letters): a test setup mistake.
    pub async fn create_business(&self, spec: BusinessSpec) -> BusinessHandle {
        match self.shared.create_business(spec) {
            Ok(h) => h,
            Err(e) => panic!("invalid BusinessSpec: {e}"),
        }
    }

    /// Moves a business's open period, as a bookkeeper closing a year in Sage would:
    /// documents and payments dated before `accounts_start_date` or on or before
    /// `year_end_lockdown_date` are refused from now on (422 on `date`).
    ///
    /// # Panics
    /// If the business does not exist.
    pub fn set_financial_dates(
        &self,
        business_id: &str,
        accounts_start_date: chrono::NaiveDate,
        year_end_lockdown_date: Option<chrono::NaiveDate>,
    ) {
        self.shared
            .set_financial_dates(business_id, accounts_start_date, year_end_lockdown_date)
            .unwrap_or_else(|| panic!("unknown business {business_id}"));
    }

    /// What the consent screen would hand out for this business: a code that
    /// is single use and valid for 60 s, accepted with any `redirect_uri`.
    ///
    /// # Panics
    /// If the business does not exist.
    pub async fn issue_authorization_code(&self, business_id: &str) -> String {
        self.shared
            .issue_code(business_id, None, None)
            .unwrap_or_else(|| panic!("unknown business {business_id}"))
    }

    /// Read access to stored documents and counters.
    pub fn inspect(&self) -> Inspector {
        Inspector {
            shared: self.shared.clone(),
        }
    }

    /// Fault plan and rate-limit control.
    pub fn faults(&self) -> FaultControl {
        FaultControl {
            shared: self.shared.clone(),
        }
    }

    /// Revokes every token that can reach `business_id`; returns how many
    /// connections were revoked.
    pub fn revoke_tokens(&self, business_id: &str) -> usize {
        self.shared.revoke_business_tokens(business_id)
    }

    /// Makes the current access tokens for `business_id` expire now, so the
    /// client's refresh path runs without waiting.
    pub fn expire_access_tokens(&self, business_id: &str) -> usize {
        self.shared.expire_business_access_tokens(business_id)
    }

    /// Forgets every business, token, counter, violation and fault plan.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Stops accepting, lets in-flight requests finish (up to 5 s) and waits
    /// for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves a sandbox on `config.bind` until `shutdown` completes.
pub async fn run(
    config: SandboxConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(config.bind).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "sage-sandbox listening (test and demo tool, not Sage)");
    let shared = Arc::new(Shared::new(config));
    server::serve(listener, shared, shutdown).await
}

/// In-process read access to a running sandbox.
#[derive(Clone)]
pub struct Inspector {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inspector")
    }
}

impl Inspector {
    /// All businesses, in creation order.
    pub fn businesses(&self) -> Vec<BusinessHandle> {
        self.shared.handles()
    }

    /// Stored documents of a business for one resource (`contacts`,
    /// `products`, `services`, `stock_items`, `stock_movements`,
    /// `sales_invoices`, `sales_credit_notes`,
    /// `contact_payments`, `contact_allocations`, `payments_on_account`,
    /// `ledger_accounts`, `bank_accounts`), full JSON, creation order.
    /// Soft-deleted contacts are included with `deleted_at` set.
    pub fn documents(&self, business_id: &str, resource: &str) -> Vec<Value> {
        self.shared.documents(business_id, resource)
    }

    /// One stored document by id.
    pub fn document(&self, business_id: &str, resource: &str, id: &str) -> Option<Value> {
        self.documents(business_id, resource)
            .into_iter()
            .find(|d| d.get("id").and_then(Value::as_str) == Some(id))
    }

    /// Counters: calls by method, route template, status and business; token
    /// grants; idempotent replays; rate-limit rejections; fault applications.
    pub fn stats(&self) -> Stats {
        lock(&self.shared.stats).snapshot()
    }

    /// [`Inspector::stats`] restricted to one business.
    pub fn stats_for(&self, business_id: &str) -> Stats {
        self.stats().for_business(business_id)
    }

    /// The newest `limit` calls (oldest first), optionally for one business.
    /// The log keeps the last [`CALL_LOG_CAPACITY`] calls.
    pub fn calls(&self, business_id: Option<&str>, limit: usize) -> Vec<CallRecord> {
        lock(&self.shared.stats).calls(business_id, limit)
    }

    /// Successful refresh-token grants so far.
    pub fn refresh_count(&self) -> u64 {
        self.stats().refreshes()
    }

    /// Overlapping POSTs seen so far.
    pub fn concurrency_violations(&self) -> Vec<ConcurrencyViolation> {
        self.shared.violations()
    }

    /// Invoices / credit notes sharing a reference and contacts sharing a
    /// name + email, in one business.
    pub fn duplicate_references(&self, business_id: &str) -> Vec<DuplicateGroup> {
        self.shared.duplicates(business_id)
    }

    /// [`Inspector::duplicate_references`] across all businesses.
    pub fn all_duplicate_references(&self) -> Vec<DuplicateGroup> {
        self.shared.all_duplicates()
    }

    /// The Prometheus text exposition also served at `GET /metrics`.
    pub fn metrics_text(&self) -> String {
        self.shared.metrics.render()
    }
}

/// In-process control of fault plans and the rate limit.
#[derive(Clone)]
pub struct FaultControl {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FaultControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FaultControl")
    }
}

impl FaultControl {
    /// Adds a plan; returns its id.
    pub fn set(&self, plan: FaultPlan) -> u64 {
        lock(&self.shared.faults).add(plan)
    }

    /// Removes one plan; false if it was not there (or already used up).
    pub fn remove(&self, id: u64) -> bool {
        lock(&self.shared.faults).remove(id)
    }

    /// Removes every plan.
    pub fn clear(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Active plans with their remaining counts.
    pub fn list(&self) -> Vec<ActiveFault> {
        lock(&self.shared.faults).list()
    }

    /// Re-seeds the RNG behind probabilistic plans.
    pub fn seed(&self, seed: u64) {
        lock(&self.shared.faults).seed(seed);
    }

    /// Changes the per-business requests-per-minute limit (`None` = off) and
    /// restarts its windows.
    pub fn set_rate_limit(&self, per_minute: Option<u32>) {
        lock(&self.shared.faults).rate_limit_per_minute = per_minute;
        lock(&self.shared.limiter).clear();
    }
}
