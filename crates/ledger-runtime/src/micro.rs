//! Request/reply as NATS services (the NATS micro protocol).
//!
//! Each Ledger service answers its requests as one NATS service named after it (`gateway`,
//! `contacts`, `documents`, `payments`), with one endpoint per question on the subject it has
//! always used (`ledger.rpc.documents.lookup`, `ledger.rpc.documents.dead_letters`, ...). The
//! service answers `$SRV.PING`, `$SRV.INFO` and `$SRV.STATS`, so `nats micro ls` and
//! `nats micro info documents` list it with its endpoints, request counts and processing
//! times. Replicas share each endpoint's requests through its queue group.
//!
//! Every request runs in its own task ([`serve`]): a slow one (a dead-letter retry of many
//! documents, a long audit query) never holds up the next.
//!
//! A failure keeps its JSON body, which the asker decodes into its typed error, and also
//! carries the standard `Nats-Service-Error` and `Nats-Service-Error-Code` headers, so generic
//! NATS tools see it as an error. The endpoint's STATS `data` counts these answers
//! (`error_replies`), because the protocol's own `num_errors` only counts answers without a body.
//!
//! Askers use [`crate::bus::request_json`], which gives every request its own timeout.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use async_nats::service::{self, ServiceExt};
use async_nats::{HeaderMap, SubscribeError, SubscribeErrorKind};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use serde::{de::DeserializeOwned, Serialize};

use crate::shutdown::Shutdown;

/// Queue group of every Ledger endpoint unless it names its own: replicas share requests.
pub const QUEUE_GROUP: &str = "ledger";
/// Version every Ledger NATS service announces (the workspace version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// STATS `data` key counting answers that reported a failure.
pub const ERROR_REPLIES: &str = "error_replies";

/// Connection (server id, client id) and service name.
type Key = (String, u64, String);
/// Failure answers per endpoint name.
type ErrorCounts = Arc<Mutex<HashMap<String, u64>>>;

struct Shared {
    service: Arc<service::Service>,
    endpoints: usize,
    errors: ErrorCounts,
}

/// The NATS services started on each connection of this process, with their live endpoints.
static SERVICES: LazyLock<Mutex<HashMap<Key, Shared>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn key_of(client: &async_nats::Client, service: &str) -> Key {
    let info = client.server_info();
    (info.server_id, info.client_id, service.to_string())
}

fn subscribe_error(e: impl Into<async_nats::Error>) -> SubscribeError {
    SubscribeError::with_source(SubscribeErrorKind::Other, e)
}

/// Releases one endpoint's share of its service; the last one stops the service.
struct Lease(Key);

impl Drop for Lease {
    fn drop(&mut self) {
        let last = {
            let mut services = SERVICES.lock().unwrap_or_else(|p| p.into_inner());
            match services.get_mut(&self.0) {
                Some(shared) if shared.endpoints > 1 => {
                    shared.endpoints -= 1;
                    None
                }
                Some(_) => services.remove(&self.0),
                None => None,
            }
        };
        if let Some(shared) = last {
            if let Ok(service) = Arc::try_unwrap(shared.service) {
                // `stop` does not wait for anything: one poll completes it.
                let _ = service.stop().now_or_never();
            }
        }
    }
}

/// Takes a share of `service` on `client`'s connection, starting it on first use.
async fn share(
    client: &async_nats::Client,
    service: &str,
) -> Result<(Arc<service::Service>, ErrorCounts, Lease), SubscribeError> {
    let key = key_of(client, service);
    loop {
        let existing = {
            let mut services = SERVICES.lock().unwrap_or_else(|p| p.into_inner());
            services.get_mut(&key).map(|shared| {
                shared.endpoints += 1;
                (shared.service.clone(), shared.errors.clone())
            })
        };
        if let Some((svc, errors)) = existing {
            return Ok((svc, errors, Lease(key)));
        }
        let errors: ErrorCounts = Arc::default();
        let counts = errors.clone();
        let started = client
            .service_builder()
            .description(format!("Ledger {service}: request/reply"))
            .queue_group(QUEUE_GROUP)
            .stats_handler(move |endpoint, _| {
                let n = counts
                    .lock()
                    .map(|c| c.get(&endpoint).copied().unwrap_or(0))
                    .unwrap_or(0);
                serde_json::json!({ ERROR_REPLIES: n })
            })
            .start(service, VERSION)
            .await
            .map_err(subscribe_error)?;
        let raced = {
            let mut services = SERVICES.lock().unwrap_or_else(|p| p.into_inner());
            if services.contains_key(&key) {
                Some(started)
            } else {
                let started = Arc::new(started);
                services.insert(
                    key.clone(),
                    Shared {
                        service: started.clone(),
                        endpoints: 1,
                        errors: errors.clone(),
                    },
                );
                return Ok((started, errors, Lease(key)));
            }
        };
        // Another endpoint of the same service started it meanwhile: use that one.
        if let Some(extra) = raced {
            let _ = extra.stop().await;
        }
    }
}

/// An endpoint of a Ledger NATS service.
pub struct Endpoint {
    requests: service::endpoint::Endpoint,
    name: String,
    errors: ErrorCounts,
    _lease: Lease,
}

/// Adds endpoint `name` on `subject` (queue group `queue_group`) to the NATS service `service`
/// of `client`'s connection, starting the service on its first endpoint.
pub async fn endpoint(
    client: &async_nats::Client,
    service: &str,
    name: &str,
    subject: &str,
    queue_group: &str,
) -> Result<Endpoint, SubscribeError> {
    let (svc, errors, lease) = share(client, service).await?;
    let requests = svc
        .endpoint_builder()
        .name(name)
        .queue_group(queue_group)
        .add(subject)
        .await
        .map_err(subscribe_error)?;
    Ok(Endpoint {
        requests,
        name: name.to_string(),
        errors,
        _lease: lease,
    })
}

impl Endpoint {
    /// The next request, or `None` once the endpoint is stopped.
    pub async fn next(&mut self) -> Option<service::Request> {
        self.requests.next().await
    }

    /// What answers this endpoint's requests (it can move into a request's task).
    pub fn responder(&self) -> Responder {
        Responder {
            name: self.name.clone(),
            errors: self.errors.clone(),
        }
    }
}

/// An answer: a JSON body and, when it reports a failure, its code and description.
#[derive(Debug, Clone)]
pub struct Reply {
    body: Bytes,
    failure: Option<(u16, String)>,
}

impl Reply {
    /// A successful answer.
    pub fn ok<T: Serialize>(value: &T) -> Reply {
        Reply {
            body: serde_json::to_vec(value).unwrap_or_default().into(),
            failure: None,
        }
    }

    /// A successful answer with a body that is already encoded.
    pub fn raw(body: Bytes) -> Reply {
        Reply {
            body,
            failure: None,
        }
    }

    /// A failure: the body still carries the typed error; `code` (HTTP-like: 400 the request
    /// is wrong, 404 not found, 500 the service failed, 503 try later) and `description` go
    /// into the standard error headers.
    pub fn failed<T: Serialize>(value: &T, code: u16, description: impl Into<String>) -> Reply {
        Reply {
            body: serde_json::to_vec(value).unwrap_or_default().into(),
            failure: Some((code, description.into())),
        }
    }

    /// Whether this answer reports a failure.
    pub fn is_failure(&self) -> bool {
        self.failure.is_some()
    }
}

/// Decodes a JSON request, or the 400 answer to send instead: `error` turns the reason into
/// the endpoint's own error body.
pub fn decode<T: DeserializeOwned, E: Serialize>(
    payload: &[u8],
    error: impl FnOnce(String) -> E,
) -> Result<T, Reply> {
    serde_json::from_slice(payload).map_err(|e| {
        let message = format!("bad request: {e}");
        Reply::failed(&error(message.clone()), 400, message)
    })
}

/// Sends answers for one endpoint.
#[derive(Clone)]
pub struct Responder {
    name: String,
    errors: ErrorCounts,
}

impl Responder {
    /// Answers `request` with `reply`.
    pub async fn respond(&self, request: &service::Request, reply: Reply) {
        let mut headers = HeaderMap::new();
        if let Some((code, description)) = &reply.failure {
            // Header values end at a line break.
            let description: String = description
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            headers.insert(service::NATS_SERVICE_ERROR, description.as_str());
            headers.insert(service::NATS_SERVICE_ERROR_CODE, code.to_string().as_str());
            if let Ok(mut counts) = self.errors.lock() {
                *counts.entry(self.name.clone()).or_default() += 1;
            }
        }
        if let Err(e) = request.respond_with_headers(Ok(reply.body), headers).await {
            tracing::warn!(endpoint = %self.name, error = %e, "could not answer a request");
        }
    }
}

/// Serves endpoint `name` of `service` on `subject` until `shutdown`: each request runs
/// `handler` in its own task and is answered with what it returns (nothing for `None`).
pub async fn serve<F, Fut>(
    client: &async_nats::Client,
    service: &str,
    name: &str,
    subject: &str,
    shutdown: Shutdown,
    handler: F,
) -> Result<(), SubscribeError>
where
    F: Fn(async_nats::Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<Reply>> + Send + 'static,
{
    let mut endpoint = endpoint(client, service, name, subject, QUEUE_GROUP).await?;
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        let mut stopping = false;
        loop {
            let request = if stopping {
                // Stopped: what the server delivered before the unsubscription is answered
                // too, so no asker waits out its timeout for a request this replica took.
                match tokio::time::timeout(LEFTOVER_WAIT, endpoint.next()).await {
                    Ok(r) => r,
                    Err(_) => None,
                }
            } else {
                tokio::select! {
                    _ = shutdown.wait() => {
                        stopping = true;
                        if let Err(e) = endpoint.requests.stop().await {
                            tracing::warn!(error = %e, "could not unsubscribe an endpoint");
                        }
                        continue;
                    }
                    r = endpoint.next() => r,
                }
            };
            let Some(request) = request else { break };
            if request.message.reply.is_none() {
                continue;
            }
            let (handler, responder) = (handler.clone(), endpoint.responder());
            let answering = InFlight::start();
            tokio::spawn(async move {
                if let Some(reply) = handler(request.message.clone()).await {
                    responder.respond(&request, reply).await;
                }
                drop(answering);
            });
        }
    });
    Ok(())
}

/// How long a stopped endpoint waits for requests the server delivered before it unsubscribed.
const LEFTOVER_WAIT: Duration = Duration::from_millis(250);

/// Requests being answered in this process, and who waits for them to end.
static IN_FLIGHT: LazyLock<(Mutex<usize>, tokio::sync::Notify)> =
    LazyLock::new(|| (Mutex::new(0), tokio::sync::Notify::new()));

/// One request being answered; dropping it ends it.
struct InFlight;

impl InFlight {
    fn start() -> InFlight {
        *IN_FLIGHT.0.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut n = IN_FLIGHT.0.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        if *n == 0 {
            IN_FLIGHT.1.notify_waiters();
        }
    }
}

/// Requests this process is answering now.
pub fn in_flight() -> usize {
    *IN_FLIGHT.0.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits until this process answers no request, at most `limit` (a stopping service lets its
/// answers go out before it exits, so its askers need not wait out their timeouts). Returns
/// whether every answer went out.
pub async fn answered(limit: Duration) -> bool {
    let settled = async {
        loop {
            let notified = IN_FLIGHT.1.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if in_flight() == 0 {
                return;
            }
            notified.await;
        }
    };
    tokio::time::timeout(limit, settled).await.is_ok()
}

/// The service and endpoint names of a `ledger.rpc.<service>.<endpoint>` subject.
pub fn names_of(subject: &str) -> Option<(&str, &str)> {
    let mut parts = subject.split('.');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("ledger"), Some("rpc"), Some(service), Some(endpoint), None)
            if !service.is_empty() && !endpoint.is_empty() =>
        {
            Some((service, endpoint))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_subjects_name_their_service_and_endpoint() {
        assert_eq!(
            names_of("ledger.rpc.documents.lookup"),
            Some(("documents", "lookup"))
        );
        assert_eq!(
            names_of("ledger.rpc.gateway.token"),
            Some(("gateway", "token"))
        );
        assert_eq!(names_of("ledger.rpc.documents"), None);
        assert_eq!(names_of("ledger.rpc.documents.lookup.x"), None);
        assert_eq!(names_of("magento.acme.invoice.created"), None);
    }

    #[test]
    fn a_failure_is_marked_and_keeps_its_body() {
        let reply = Reply::failed(&serde_json::json!({"error": "x"}), 503, "try later");
        assert!(reply.is_failure());
        assert_eq!(&reply.body[..], br#"{"error":"x"}"#);
        assert!(!Reply::ok(&1).is_failure());
    }
}
