//! Sage's concurrency and rate rules, enforced for every service and replica at once.
//!
//! - **One POST at a time per (business, endpoint)**: Sage advises against parallel POSTs to
//!   contacts, invoices, credit notes … because of unique references and sequential numbering.
//!   A lease in the NATS KV bucket `LEDGER_SAGE_LOCKS` (created with `create`, so only one holder;
//!   expired by the bucket's max age if the holder crashed) serialises them across processes.
//! - **A call budget per business** (default 200 calls per minute, Sage's documented per-business
//!   ceiling): a counter per business and minute in `LEDGER_SAGE_BUDGET`, incremented with
//!   compare-and-set. An exhausted budget answers [`ProcessError::Throttled`] so the consumer
//!   loop redelivers the message when the window turns, without holding a worker or counting
//!   towards dead-lettering; other merchants go on.
//! - **A cap on concurrent requests per process** (Sage allows 150 per app): size
//!   `LEDGER_SAGE_MAX_CONCURRENT` so that the sum over all processes stays under 150.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use ledger_runtime::ProcessError;
use serde_json::Value;
use tokio::sync::Semaphore;

/// Bucket of POST leases.
pub const LOCKS_BUCKET: &str = "LEDGER_SAGE_LOCKS";
/// Bucket of per-business call counters.
pub const BUDGET_BUCKET: &str = "LEDGER_SAGE_BUDGET";
/// How long a lease outlives a crashed holder.
const LEASE_TTL: Duration = Duration::from_secs(60);

/// Limits of the gate (flags or environment variables of a consumer service).
#[derive(Debug, Clone, clap::Args)]
pub struct GateLimits {
    /// Calls per business per minute, shared by all services and replicas; 0 = unlimited.
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
    limits: GateLimits,
    in_flight: Arc<Semaphore>,
}

fn kv_error(e: impl std::fmt::Display) -> ProcessError {
    ProcessError::transient(format!("Sage gate: {e}"))
}

/// KV keys allow `[-/_=.a-zA-Z0-9]`; merchant ids and resources already fit.
fn key(parts: &[&str]) -> String {
    parts.join(".")
}

/// How long budget counters live.
const BUDGET_TTL: Duration = Duration::from_secs(180);

impl SageGate {
    /// Creates (or opens) the buckets.
    pub async fn new(js: &jetstream::Context, limits: GateLimits) -> Result<Self, ProcessError> {
        let (locks, budget) = Self::buckets(js).await?;
        Ok(SageGate {
            js: js.clone(),
            locks,
            budget,
            in_flight: Arc::new(Semaphore::new(limits.max_concurrent)),
            limits,
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

    /// Spends one call of `merchant`'s budget, or says when the next window opens.
    pub async fn spend(&self, merchant: &str) -> Result<(), ProcessError> {
        if self.limits.calls_per_minute == 0 {
            return Ok(());
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let minute = now.as_secs() / 60;
        let k = key(&[merchant, &minute.to_string()]);
        for _ in 0..50 {
            let entry = match self.budget.entry(k.clone()).await {
                Ok(entry) => entry,
                Err(_) => {
                    self.reopen().await?;
                    self.budget.entry(k.clone()).await.map_err(kv_error)?
                }
            };
            let result = match entry {
                None => self
                    .budget
                    .create(&k, Bytes::from_static(b"1"))
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Some(e) => {
                    let used: u32 = std::str::from_utf8(&e.value)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    if used >= self.limits.calls_per_minute {
                        let wait = Duration::from_secs(60 - now.as_secs() % 60)
                            + Duration::from_millis(50);
                        return Err(ProcessError::Throttled { retry_after: wait });
                    }
                    self.budget
                        .update(&k, Bytes::from((used + 1).to_string()), e.revision)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
            };
            if result.is_ok() {
                return Ok(());
            }
            // Lost a compare-and-set race with another process: read again.
        }
        Err(ProcessError::transient(
            "Sage gate: budget counter too contended",
        ))
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
        self.admit(merchant).await?;
        let _permit = self.gate.permit().await;
        let started = Instant::now();
        let result = self.client.get(merchant, path, query).await;
        audit_response("GET", path, query, None, None, &result, started);
        result
    }

    /// `POST` through the gate, holding the (merchant, resource) lease.
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
        self.admit(merchant).await?;
        let _permit = self.gate.permit().await;
        let request =
            ledger_runtime::audit::active().then(|| serde_json::json!({ root: fields.clone() }));
        let started = Instant::now();
        let outcome = self
            .gate
            .exclusive(merchant, resource, async {
                Ok(self
                    .client
                    .post(merchant, resource, root, fields, idempotency_id)
                    .await)
            })
            .await;
        let result = match outcome {
            Ok(result) => result,
            Err(e) => Err(gate_failure(e)),
        };
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
        self.admit(merchant).await?;
        let _permit = self.gate.permit().await;
        let request =
            ledger_runtime::audit::active().then(|| serde_json::json!({ root: fields.clone() }));
        let started = Instant::now();
        let result = self
            .client
            .put(merchant, path, root, fields, idempotency_id)
            .await;
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
        self.admit(merchant).await?;
        let _permit = self.gate.permit().await;
        let started = Instant::now();
        let result = self.client.delete(merchant, path, query).await;
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
        self.admit(merchant).await?;
        let _permit = self.gate.permit().await;
        let started = Instant::now();
        let result = self.client.void(merchant, path, void_reason).await;
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

    /// Every page of a listing (each page passes the gate). The audit keeps one entry for the
    /// whole listing, with the number of items read.
    pub async fn list_all(
        &self,
        merchant: &str,
        resource: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<Value>, sage_client::SageError> {
        self.admit(merchant).await?;
        let _permit = self.gate.permit().await;
        let started = Instant::now();
        let result = self.client.list_all(merchant, resource, query).await;
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
        self.admit(merchant).await?;
        let _permit = self.gate.permit().await;
        let started = Instant::now();
        let result = self.client.find_first(merchant, resource, query).await;
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

    async fn admit(&self, merchant: &str) -> Result<(), sage_client::SageError> {
        self.gate.spend(merchant).await.map_err(gate_failure)
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
