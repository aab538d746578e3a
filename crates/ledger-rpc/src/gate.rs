//! Sage's concurrency and rate rules, enforced for every service and replica at once.
//!
//! - **One POST at a time per (business, endpoint)**: Sage advises against parallel POSTs to
//!   contacts, invoices, credit notes … because of unique references and sequential numbering.
//!   A lease in the NATS KV bucket `LEDGER_SAGE_LOCKS` (created with `create`, so only one holder;
//!   expired by the bucket's max age if the holder crashed) serialises them across processes.
//! - **A smooth call budget per business** (default 200 calls in any rolling minute, Sage's
//!   documented per-business ceiling; decision record 0036): a GCRA ([`crate::pace`]) whose one
//!   number of state per business lives in `LEDGER_SAGE_BUDGET`, updated with compare-and-set, so
//!   every replica of every service draws on the same budget. Calls are spread one emission
//!   interval apart, with a small burst that comes out of the same budget. A call whose slot is
//!   at most one interval (and at most [`MAX_HOLD`]) away reserves it and waits in place; a later
//!   one answers [`ProcessError::Throttled`] with the exact time until its slot, so the consumer
//!   loop parks the merchant and tries again then, without holding a worker or counting towards
//!   dead-lettering; other merchants go on.
//! - **A 429 from Sage pauses the business** for its `Retry-After` (at most [`MAX_PAUSE`]),
//!   recorded in the same KV entry, so every service and replica waits, not just the message
//!   that met it.
//! - **A cap on concurrent requests per process** (Sage allows 150 per app): size
//!   `LEDGER_SAGE_MAX_CONCURRENT` so that the sum over all processes stays under 150.
//!
//! Clocks: the budget's times are each replica's wall clock in milliseconds. Replicas are
//! assumed to keep their clocks within `LEDGER_SAGE_BUDGET_MARGIN_MS` (500 ms) of each other and
//! of Sage, less the delay between the gate and Sage (NTP keeps hosts within a few ms); the margin
//! is built into the spacing so that Sage's own rolling window stays within the budget.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use ledger_runtime::ProcessError;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::pace::{Pace, PaceState, Verdict};

/// Bucket of POST leases.
pub const LOCKS_BUCKET: &str = "LEDGER_SAGE_LOCKS";
/// Bucket of per-business budget states (one key per business, see [`crate::pace`]).
pub const BUDGET_BUCKET: &str = "LEDGER_SAGE_BUDGET";
/// How long a lease outlives a crashed holder.
const LEASE_TTL: Duration = Duration::from_secs(60);
/// How long a business's budget state outlives its last call: longer than any pause plus the
/// burst's tolerance, so an expired state only ever forgets calls outside every window.
const BUDGET_TTL: Duration = Duration::from_secs(180);
/// The longest a call waits in place for a reserved slot; a later slot throttles instead.
pub const MAX_HOLD: Duration = Duration::from_secs(1);
/// The longest pause one 429 imposes on the whole business (the message that met it waits its
/// full `Retry-After`).
pub const MAX_PAUSE: Duration = Duration::from_secs(120);
/// The pause after a 429 that did not say how long to wait.
pub const DEFAULT_PAUSE: Duration = Duration::from_secs(1);
/// Compare-and-set attempts before the budget counts as too contended (a transient failure).
const CAS_ATTEMPTS: usize = 50;

/// Limits of the gate (flags or environment variables of a consumer service).
#[derive(Debug, Clone, clap::Args)]
pub struct GateLimits {
    /// Calls per business in any rolling window (a minute unless
    /// `--sage-budget-window-ms` says otherwise), shared by all services and replicas;
    /// 0 = unlimited (no budget and no shared pause after a 429).
    #[arg(
        long = "sage-calls-per-minute",
        env = "LEDGER_SAGE_CALLS_PER_MINUTE",
        default_value_t = 200
    )]
    pub calls_per_minute: u32,
    /// Concurrent Sage requests of this process (at least 1); keep the sum over all processes
    /// under Sage's 150 per app.
    #[arg(
        long = "sage-max-concurrent",
        env = "LEDGER_SAGE_MAX_CONCURRENT",
        default_value_t = 40,
        value_parser = at_least_one
    )]
    pub max_concurrent: usize,
    /// Calls of a business that may go back to back after a quiet spell; they come out of the
    /// window's budget (the steady pace is `calls − burst + 1` per window).
    #[arg(long = "sage-burst", env = "LEDGER_SAGE_BURST", default_value_t = 4)]
    pub burst: u32,
    /// Length of the budget's rolling window in milliseconds (at least 1; tests shorten it).
    #[arg(
        long = "sage-budget-window-ms",
        env = "LEDGER_SAGE_BUDGET_WINDOW_MS",
        default_value_t = 60_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub window_ms: u64,
    /// Milliseconds added to the window when spacing calls: the clock difference between
    /// replicas and Sage plus the delay from the gate to Sage that the budget absorbs.
    #[arg(
        long = "sage-budget-margin-ms",
        env = "LEDGER_SAGE_BUDGET_MARGIN_MS",
        default_value_t = 500
    )]
    pub margin_ms: u64,
}

impl Default for GateLimits {
    /// The production defaults (as the flags' defaults).
    fn default() -> Self {
        GateLimits {
            calls_per_minute: 200,
            max_concurrent: 40,
            burst: 4,
            window_ms: 60_000,
            margin_ms: 500,
        }
    }
}

impl GateLimits {
    /// The budget's pace, or `None` when it is unlimited.
    pub fn pace(&self) -> Option<Pace> {
        Pace::new(
            self.calls_per_minute,
            Duration::from_millis(self.window_ms.max(1)),
            self.burst,
            Duration::from_millis(self.margin_ms),
        )
    }
}

/// Parses a count that must be at least 1.
fn at_least_one(value: &str) -> Result<usize, String> {
    match value.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{value:?} is not a whole number of at least 1")),
    }
}

/// The shared gate in front of Sage.
pub struct SageGate {
    js: jetstream::Context,
    locks: kv::Store,
    budget: kv::Store,
    pace: Option<Pace>,
    in_flight: Arc<Semaphore>,
}

fn kv_error(e: impl std::fmt::Display) -> ProcessError {
    ProcessError::transient(format!("Sage gate: {e}"))
}

/// KV keys allow `[-/_=.a-zA-Z0-9]`; merchant ids and resources already fit.
fn key(parts: &[&str]) -> String {
    parts.join(".")
}

/// The budget key of a business.
fn budget_key(merchant: &str) -> String {
    key(&["pace", merchant])
}

/// Wall-clock milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

impl SageGate {
    /// Creates (or opens) the buckets.
    pub async fn new(js: &jetstream::Context, limits: GateLimits) -> Result<Self, ProcessError> {
        let (locks, budget) = Self::buckets(js).await?;
        Ok(SageGate {
            js: js.clone(),
            locks,
            budget,
            pace: limits.pace(),
            in_flight: Arc::new(Semaphore::new(limits.max_concurrent)),
        })
    }

    async fn buckets(js: &jetstream::Context) -> Result<(kv::Store, kv::Store), ProcessError> {
        let locks = ledger_runtime::bus::key_value(js, LOCKS_BUCKET, Some(LEASE_TTL))
            .await
            .map_err(kv_error)?;
        let budget = ledger_runtime::bus::key_value(js, BUDGET_BUCKET, Some(BUDGET_TTL))
            .await
            .map_err(kv_error)?;
        Ok((locks, budget))
    }

    /// Creates the buckets again after a KV operation failed. They are in memory (leases and
    /// counters that expire anyway), so a nats-server restart loses them; without this every
    /// later Sage call would fail until the process restarts. The existing handles address the
    /// buckets by name and work again once they exist.
    async fn reopen(&self) -> Result<(), ProcessError> {
        Self::buckets(&self.js).await.map(|_| ())
    }

    /// The budget's pace (`None`: unlimited).
    pub fn pace(&self) -> Option<Pace> {
        self.pace
    }

    /// Reads a business's budget state and its revision (0: no entry).
    async fn load(&self, key: &str) -> Result<(Option<PaceState>, u64), ProcessError> {
        let entry = match self.budget.entry(key).await {
            Ok(entry) => entry,
            Err(_) => {
                self.reopen().await?;
                self.budget.entry(key).await.map_err(kv_error)?
            }
        };
        Ok(match entry {
            None => (None, 0),
            Some(e) if e.operation != kv::Operation::Put => (None, e.revision),
            Some(e) => match serde_json::from_slice::<PaceState>(&e.value) {
                Ok(state) => (Some(state), e.revision),
                Err(error) => {
                    // Never written by this code: start the business afresh rather than stall it.
                    tracing::warn!(%error, key, "unreadable Sage budget state replaced");
                    (None, e.revision)
                }
            },
        })
    }

    /// Stores `state` if the entry is still at `revision`; `false` when another process wrote
    /// first (read again and decide again).
    async fn store(
        &self,
        key: &str,
        state: PaceState,
        revision: u64,
    ) -> Result<bool, ProcessError> {
        let value = Bytes::from(serde_json::to_vec(&state).map_err(kv_error)?);
        let written = if revision == 0 {
            self.budget
                .create(key, value)
                .await
                .map(|_| ())
                .map_err(|e| {
                    (e.kind() != kv::CreateErrorKind::AlreadyExists).then(|| e.to_string())
                })
        } else {
            self.budget
                .update(key, value, revision)
                .await
                .map(|_| ())
                .map_err(|e| {
                    (e.kind() != kv::UpdateErrorKind::WrongLastRevision).then(|| e.to_string())
                })
        };
        match written {
            Ok(()) => Ok(true),
            Err(None) => Ok(false),
            Err(Some(e)) => Err(kv_error(e)),
        }
    }

    /// Spends one call of `merchant`'s budget: returns at once, or after waiting in place for a
    /// slot at most one interval (and [`MAX_HOLD`]) away, or answers
    /// [`ProcessError::Throttled`] with the exact time until the next slot (or the pause's end).
    pub async fn spend(&self, merchant: &str) -> Result<(), ProcessError> {
        let Some(pace) = self.pace else {
            return Ok(());
        };
        let k = budget_key(merchant);
        let hold = pace.interval().min(MAX_HOLD);
        for _ in 0..CAS_ATTEMPTS {
            let (state, revision) = self.load(&k).await?;
            let (at_ms, next) = match pace.decide(state, now_ms(), hold) {
                Verdict::Wait { retry_after } => {
                    return Err(ProcessError::Throttled { retry_after })
                }
                Verdict::Go { at_ms, state } => (at_ms, state),
            };
            if !self.store(&k, next, revision).await? {
                // Lost a compare-and-set race with another process: read again.
                continue;
            }
            let now = now_ms();
            ledger_runtime::metrics::record_budget_left(merchant, calls_left(&pace, next, now));
            if at_ms <= now {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(at_ms - now)).await;
            // A 429 met by another call while this one waited pauses this one too.
            if let (Some(state), _) = self.load(&k).await? {
                let now = now_ms();
                if state.paused_until_ms > now {
                    return Err(ProcessError::Throttled {
                        retry_after: Duration::from_millis(state.paused_until_ms - now),
                    });
                }
            }
            return Ok(());
        }
        Err(ProcessError::transient(
            "Sage gate: budget state too contended",
        ))
    }

    /// Records that Sage answered `merchant`'s call with 429: no service or replica calls Sage
    /// for this business before `retry_after` (at most [`MAX_PAUSE`]) has passed.
    pub async fn pause(&self, merchant: &str, retry_after: Duration) -> Result<(), ProcessError> {
        let Some(pace) = self.pace else {
            return Ok(());
        };
        let k = budget_key(merchant);
        for _ in 0..CAS_ATTEMPTS {
            let (state, revision) = self.load(&k).await?;
            let next = pace.pause(state, now_ms(), retry_after.min(MAX_PAUSE));
            if state == Some(next) || self.store(&k, next, revision).await? {
                return Ok(());
            }
        }
        Err(ProcessError::transient(
            "Sage gate: budget state too contended",
        ))
    }

    /// Calls of `merchant` that could go back to back now (`None`: unlimited budget).
    pub async fn budget_left(&self, merchant: &str) -> Result<Option<u32>, ProcessError> {
        let Some(pace) = self.pace else {
            return Ok(None);
        };
        let (state, _) = self.load(&budget_key(merchant)).await?;
        Ok(Some(pace.available(state, now_ms())))
    }

    /// Holds the POST lease of (merchant, resource) for the duration of `call`.
    pub async fn exclusive<T, F>(
        &self,
        merchant: &str,
        resource: &str,
        call: F,
    ) -> Result<T, ProcessError>
    where
        F: std::future::Future<Output = Result<T, ProcessError>>,
    {
        let k = key(&[merchant, resource]);
        let holder = Bytes::from(uuid::Uuid::new_v4().simple().to_string());
        let mut reopened = false;
        let revision = loop {
            match self.locks.create(&k, holder.clone()).await {
                Ok(rev) => break rev,
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(_) if !reopened => {
                    reopened = true;
                    self.reopen().await?;
                }
                Err(e) => return Err(kv_error(e)),
            }
        };
        let result = call.await;
        // Only our own lease is removed: a lease that expired and was taken over is left alone.
        let _ = self.locks.delete_expect_revision(&k, Some(revision)).await;
        result
    }

    /// A permit for one concurrent request of this process.
    pub async fn permit(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore open")
    }
}

/// The Sage client the consumer services use: every call passes the gate first.
#[derive(Clone)]
pub struct GatedSage {
    client: sage_client::SageClient,
    gate: Arc<SageGate>,
}

impl GatedSage {
    /// Wraps `client` behind `gate`.
    pub fn new(client: sage_client::SageClient, gate: Arc<SageGate>) -> Self {
        GatedSage { client, gate }
    }

    /// The client without the gate (for reads that must not wait on budget, e.g. tests).
    pub fn ungated(&self) -> &sage_client::SageClient {
        &self.client
    }

    /// `GET` through the gate.
    pub async fn get(
        &self,
        merchant: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<sage_client::SageResponse, sage_client::SageError> {
        let (result, started) = self
            .gated(merchant, self.client.get(merchant, path, query))
            .await?;
        audit_response("GET", path, query, None, None, &result, started);
        result
    }

    /// `POST` through the gate, holding the (merchant, resource) lease. The budget is spent
    /// once the lease is held, so the call leaves when its slot comes rather than after
    /// another POST's lease.
    pub async fn post(
        &self,
        merchant: &str,
        resource: &str,
        root: &str,
        fields: Value,
        idempotency_id: Option<&str>,
    ) -> Result<sage_client::SageResponse, sage_client::SageError> {
        if ledger_runtime::replay::dry_run() {
            return Err(refuse_dry_run(
                "POST",
                resource,
                root,
                &fields,
                idempotency_id,
            ));
        }
        let request =
            ledger_runtime::audit::active().then(|| serde_json::json!({ root: fields.clone() }));
        let call = self
            .client
            .post(merchant, resource, root, fields, idempotency_id);
        let (result, started) = self
            .gate
            .exclusive(merchant, resource, self.admitted(merchant, call))
            .await
            .map_err(gate_failure)?;
        audit_response(
            "POST",
            resource,
            &[],
            request,
            idempotency_id,
            &result,
            started,
        );
        result
    }

    /// `PUT` through the gate.
    pub async fn put(
        &self,
        merchant: &str,
        path: &str,
        root: &str,
        fields: Value,
        idempotency_id: Option<&str>,
    ) -> Result<sage_client::SageResponse, sage_client::SageError> {
        if ledger_runtime::replay::dry_run() {
            return Err(refuse_dry_run("PUT", path, root, &fields, idempotency_id));
        }
        let request =
            ledger_runtime::audit::active().then(|| serde_json::json!({ root: fields.clone() }));
        let (result, started) = self
            .gated(
                merchant,
                self.client
                    .put(merchant, path, root, fields, idempotency_id),
            )
            .await?;
        audit_response("PUT", path, &[], request, idempotency_id, &result, started);
        result
    }

    /// `DELETE` through the gate.
    pub async fn delete(
        &self,
        merchant: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<sage_client::SageResponse, sage_client::SageError> {
        if ledger_runtime::replay::dry_run() {
            return Err(refuse_dry_run("DELETE", path, "", &Value::Null, None));
        }
        let (result, started) = self
            .gated(merchant, self.client.delete(merchant, path, query))
            .await?;
        audit_response("DELETE", path, query, None, None, &result, started);
        result
    }

    /// A DELETE-void (`void_reason` in query and body) through the gate.
    pub async fn void(
        &self,
        merchant: &str,
        path: &str,
        void_reason: &str,
    ) -> Result<sage_client::SageResponse, sage_client::SageError> {
        if ledger_runtime::replay::dry_run() {
            return Err(refuse_dry_run("DELETE", path, "", &Value::Null, None));
        }
        let (result, started) = self
            .gated(merchant, self.client.void(merchant, path, void_reason))
            .await?;
        audit_response(
            "DELETE",
            path,
            &[("void_reason", void_reason)],
            None,
            None,
            &result,
            started,
        );
        result
    }

    /// Every page of a listing. The budget is spent once for the listing (Sage's pages hold
    /// 200 records, so listings rarely have a second page). The audit keeps one entry for the
    /// whole listing, with the number of items read.
    pub async fn list_all(
        &self,
        merchant: &str,
        resource: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<Value>, sage_client::SageError> {
        let (result, started) = self
            .gated(merchant, self.client.list_all(merchant, resource, query))
            .await?;
        if ledger_runtime::audit::active() {
            let response = match &result {
                Ok(items) => serde_json::json!({ "$items": items }),
                Err(_) => Value::Null,
            };
            audit_call(
                "GET",
                resource,
                query,
                None,
                None,
                &result
                    .as_ref()
                    .map(|_| (200, response, None))
                    .map_err(Clone::clone),
                started,
            );
        }
        result
    }

    /// The first item of a listing.
    pub async fn find_first(
        &self,
        merchant: &str,
        resource: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<Value>, sage_client::SageError> {
        let (result, started) = self
            .gated(merchant, self.client.find_first(merchant, resource, query))
            .await?;
        if ledger_runtime::audit::active() {
            let response = match &result {
                Ok(item) => serde_json::json!({ "$items": item.iter().collect::<Vec<_>>() }),
                Err(_) => Value::Null,
            };
            audit_call(
                "GET",
                resource,
                query,
                None,
                None,
                &result
                    .as_ref()
                    .map(|_| (200, response, None))
                    .map_err(Clone::clone),
                started,
            );
        }
        result
    }

    /// Runs `call` (a Sage request not yet started) once the budget admits it and a process
    /// permit is free; a 429 it meets pauses the business. Answers the call's result and when
    /// it was sent, or the gate's refusal.
    async fn gated<T>(
        &self,
        merchant: &str,
        call: impl std::future::Future<Output = Result<T, sage_client::SageError>>,
    ) -> Result<(Result<T, sage_client::SageError>, Instant), sage_client::SageError> {
        self.admitted(merchant, call).await.map_err(gate_failure)
    }

    /// [`GatedSage::gated`] with the refusal in the consumer taxonomy.
    async fn admitted<T>(
        &self,
        merchant: &str,
        call: impl std::future::Future<Output = Result<T, sage_client::SageError>>,
    ) -> Result<(Result<T, sage_client::SageError>, Instant), ProcessError> {
        self.gate.spend(merchant).await?;
        let _permit = self.gate.permit().await;
        let started = Instant::now();
        let result = call.await;
        if let Err(e) = &result {
            if e.status() == Some(429) {
                let wait = e.retry_after().unwrap_or(DEFAULT_PAUSE);
                if let Err(error) = self.gate.pause(merchant, wait).await {
                    tracing::warn!(%error, merchant, "Sage's 429 pause not recorded");
                }
            }
        }
        Ok((result, started))
    }
}

/// A write refused because the current task runs a replay's dry run: recorded in the audit
/// scope (which the replay reports as what would be posted) and answered with a transient
/// error that names it, so the handler stops there.
fn refuse_dry_run(
    method: &str,
    path: &str,
    root: &str,
    fields: &Value,
    idempotency_id: Option<&str>,
) -> sage_client::SageError {
    use ledger_runtime::audit;
    let request = if root.is_empty() {
        Value::Null
    } else {
        audit::redact(&serde_json::json!({ root: fields }))
    };
    audit::record_call(audit::SageCall {
        method: method.to_string(),
        path: path.to_string(),
        query: Vec::new(),
        request,
        idempotency_id: idempotency_id.map(str::to_string),
        status: None,
        response: Value::Null,
        sage_id: None,
        x_request_id: None,
        duration_ms: 0,
        error: Some("dry_run".into()),
        at: chrono::Utc::now(),
    });
    sage_client::SageError::Transient {
        status: None,
        message: format!(
            "{} {method} {path} not sent",
            ledger_runtime::replay::DRY_RUN_MARKER
        ),
        retry_after: None,
        request_id: None,
    }
}

/// Adds a call that produced a [`sage_client::SageResponse`] to the current audit scope.
fn audit_response(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    request: Option<Value>,
    idempotency_id: Option<&str>,
    result: &Result<sage_client::SageResponse, sage_client::SageError>,
    started: Instant,
) {
    if !ledger_runtime::audit::active() {
        return;
    }
    let result = result
        .as_ref()
        .map(|r| (r.status, r.body.clone(), r.request_id.clone()))
        .map_err(Clone::clone);
    audit_call(
        method,
        path,
        query,
        request,
        idempotency_id,
        &result,
        started,
    );
}

/// Adds one call to the current audit scope: body redacted, answer summarised.
fn audit_call(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    request: Option<Value>,
    idempotency_id: Option<&str>,
    result: &Result<(u16, Value, Option<String>), sage_client::SageError>,
    started: Instant,
) {
    use ledger_runtime::audit;
    let (status, response, x_request_id, error) = match result {
        Ok((status, body, request_id)) => (
            Some(*status),
            audit::summarize(body),
            request_id.clone(),
            None,
        ),
        Err(e) => {
            let code = match e {
                sage_client::SageError::Rejected { errors, .. } => format!(
                    "sage.{}",
                    errors
                        .first()
                        .map(|i| i.data_code.as_str())
                        .unwrap_or("Rejected")
                ),
                other => match other.status() {
                    Some(s) => format!("sage.http_{s}"),
                    None => crate::sage_error_to_process(other.clone())
                        .code()
                        .to_string(),
                },
            };
            (
                e.status(),
                Value::Null,
                e.request_id().map(str::to_string),
                Some(code),
            )
        }
    };
    let sage_id = response
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            // A read or write of one record names it in the path (`contacts/{id}`).
            path.split_once('/').map(|(_, id)| id.to_string())
        });
    audit::record_call(audit::SageCall {
        method: method.to_string(),
        path: path.split('?').next().unwrap_or(path).to_string(),
        query: query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        request: request.map(|r| audit::redact(&r)).unwrap_or(Value::Null),
        idempotency_id: idempotency_id.map(str::to_string),
        status,
        response,
        sage_id,
        x_request_id,
        duration_ms: started.elapsed().as_millis() as u64,
        error,
        at: chrono::Utc::now(),
    });
}

/// Carries a gate refusal through the Sage client's error type: a throttle becomes a 429-like
/// transient error with its wait, which [`crate::sage_error_to_process`] turns back into
/// [`ProcessError::Throttled`].
fn gate_failure(e: ProcessError) -> sage_client::SageError {
    match e {
        ProcessError::Throttled { retry_after } => sage_client::SageError::Transient {
            status: Some(429),
            message: "Ledger call budget for this business is spent".into(),
            retry_after: Some(retry_after),
            request_id: None,
        },
        other => sage_client::SageError::Transient {
            status: None,
            message: other.to_string(),
            retry_after: None,
            request_id: None,
        },
    }
}

/// Calls `merchant` may still make in the coming rolling minute at the steady pace: the budget
/// less the slots already reserved ahead of now (what the `ledger_sage_budget_left` gauge shows).
fn calls_left(pace: &Pace, state: PaceState, now_ms: u64) -> i64 {
    (i64::from(pace.calls()) - pace.reserved(state, now_ms) as i64).max(0)
}
