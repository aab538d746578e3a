//! NATS and the JetStream topology.
//!
//! One stream, `MAGENTO_EVENTS`, holds every merchant's events on subjects
//! `magento.<merchant>.<entity>.<action>`. It de-duplicates on `Nats-Msg-Id` (the event id
//! made once in the Magento outbox), stores on file and keeps events for years: the log is the
//! audit trail and the source for replays. Each consumer service reads it through its own
//! durable pull consumer filtered to the subjects it projects.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream};
use serde::{de::DeserializeOwned, Serialize};

/// Name of the stream holding every Magento event.
pub const EVENTS_STREAM: &str = "MAGENTO_EVENTS";
/// Subjects captured by [`EVENTS_STREAM`].
pub const EVENTS_SUBJECTS: &str = "magento.>";
/// Name of the stream holding events the edge rejected, with the reason.
pub const QUARANTINE_STREAM: &str = "LEDGER_QUARANTINE";
/// Subjects captured by [`QUARANTINE_STREAM`].
pub const QUARANTINE_SUBJECTS: &str = "ledger.quarantine.>";
/// Oldest nats-server this product runs on: 2.9 silently ignores multiple filter subjects,
/// which would make consumers see the wrong events.
pub const MIN_SERVER_VERSION: (u64, u64) = (2, 10);

/// Errors talking to NATS.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The configured server list is unusable (names the setting and the entry).
    #[error("LEDGER_NATS_URL: {0}")]
    Servers(String),
    /// Could not connect.
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        /// Server URL.
        url: String,
        /// Cause.
        source: async_nats::ConnectError,
    },
    /// The server is older than [`MIN_SERVER_VERSION`].
    #[error("nats-server {found} is too old: Ledger needs 2.10 or newer (2.9 silently ignores multiple filter subjects)")]
    ServerTooOld {
        /// Version the server reported.
        found: String,
    },
    /// JetStream is not enabled or a JetStream call failed.
    #[error("JetStream: {0}")]
    JetStream(String),
    /// A request/reply call failed or timed out.
    #[error("request to {subject} failed: {message}")]
    Request {
        /// Subject asked.
        subject: String,
        /// Cause.
        message: String,
    },
}

/// How the events stream is configured; defaults suit development.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// How long events are kept (the audit trail: years in production).
    pub max_age: Duration,
    /// Replicas (1 in development, 3 in production clusters).
    pub replicas: usize,
    /// Window in which JetStream drops a re-published event id outright. Older duplicates are
    /// caught by the consumers' own records.
    pub duplicate_window: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            max_age: Duration::from_secs(7 * 365 * 24 * 3600),
            replicas: 1,
            duplicate_window: Duration::from_secs(24 * 3600),
        }
    }
}

/// Splits `nats://user:password@host:port` into the URL without credentials and the
/// credentials, percent-decoded. The client library ignores credentials embedded in a URL, and
/// a secured server (auth callout, see docs/decisions/0009) needs them in CONNECT.
pub fn split_credentials(url: &str) -> (String, Option<(String, String)>) {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return (url.to_string(), None);
    };
    if parsed.username().is_empty() {
        return (url.to_string(), None);
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let user = decode(parsed.username());
    let password = decode(parsed.password().unwrap_or(""));
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    (parsed.to_string(), Some((user, password)))
}

/// The servers of one NATS setting (`LEDGER_NATS_URL`): a single URL or a comma-separated list
/// of them (every node of a cluster), without credentials, and the one login they carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsServers {
    /// Server URLs without credentials, in the order given.
    pub addresses: Vec<String>,
    /// User and password (percent-decoded), when any URL carries them.
    pub credentials: Option<(String, String)>,
}

/// Reads `nats://u:p@a:4222,nats://u:p@b:4222,nats://c:4222` into [`NatsServers`]. Every node
/// of a cluster is one login, so URLs that carry credentials must carry the same ones; a URL
/// without credentials uses them too. Refuses an empty list, an empty entry and differing
/// credentials, naming the entry.
pub fn parse_servers(urls: &str) -> Result<NatsServers, BusError> {
    let mut addresses = Vec::new();
    let mut credentials: Option<(String, String)> = None;
    for (i, entry) in urls.split(',').enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err(BusError::Servers(format!(
                "entry {} of the comma-separated server list is empty",
                i + 1
            )));
        }
        let (address, login) = split_credentials(entry);
        if let Some(login) = login {
            match &credentials {
                Some(first) if *first != login => {
                    return Err(BusError::Servers(format!(
                        "entry {} ({address}) logs in as another user or with another password than the entries before it; every node of a cluster takes the same login",
                        i + 1
                    )));
                }
                Some(_) => {}
                None => credentials = Some(login),
            }
        }
        if address.parse::<async_nats::ServerAddr>().is_err() {
            return Err(BusError::Servers(format!(
                "entry {} ({address}) is not a NATS server URL",
                i + 1
            )));
        }
        addresses.push(address);
    }
    Ok(NatsServers {
        addresses,
        credentials,
    })
}

/// Connects to NATS and refuses servers older than 2.10 with a clear message. `url` is one
/// server or a comma-separated list of a cluster's nodes ([`parse_servers`]): the client
/// connects to any of them and moves to another when its node goes away. Credentials in the
/// URL (`nats://user:password@host:port`) are sent in CONNECT, and replies then arrive on
/// `_INBOX_<user>.…`.
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, BusError> {
    let NatsServers {
        addresses,
        credentials,
    } = parse_servers(url)?;
    let address = addresses.join(",");
    let mut options = async_nats::ConnectOptions::new();
    if let Some((user, password)) = credentials {
        // Each NATS user reads replies on its own inbox only (deploy/nats/nats-server.conf).
        options = options
            .custom_inbox_prefix(format!("_INBOX_{user}"))
            .user_and_password(user, password);
    }
    let client = options
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .connect(addresses)
        .await
        .map_err(|source| BusError::Connect {
            url: address.clone(),
            source,
        })?;
    // The INFO arrives asynchronously after connect; wait for it briefly.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let version = client.server_info().version;
        if !version.is_empty() {
            check_server_version(&version)?;
            return Ok(client);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(BusError::JetStream("no INFO from the NATS server".into()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Flushes what `client` has buffered, giving up after `limit`: a flush waits for the
/// connection, and a process stopping while its NATS servers are gone must not wait for them
/// (the client reconnects forever). Returns whether the flush completed.
pub async fn flush_within(client: &async_nats::Client, limit: Duration) -> bool {
    match tokio::time::timeout(limit, client.flush()).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "NATS flush failed while stopping");
            false
        }
        Err(_) => {
            tracing::warn!(
                ?limit,
                "NATS unreachable while stopping; not waiting for it"
            );
            false
        }
    }
}

/// Checks a reported server version against [`MIN_SERVER_VERSION`].
pub fn check_server_version(version: &str) -> Result<(), BusError> {
    let mut parts = version
        .trim_start_matches('v')
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u64>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    if (major, minor) < MIN_SERVER_VERSION {
        return Err(BusError::ServerTooOld {
            found: version.to_string(),
        });
    }
    Ok(())
}

/// Creates or updates the events and quarantine streams.
pub async fn ensure_streams(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<(), BusError> {
    let events = stream::Config {
        name: EVENTS_STREAM.to_string(),
        subjects: vec![EVENTS_SUBJECTS.to_string()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        max_age: settings.max_age,
        num_replicas: settings.replicas,
        duplicate_window: settings.duplicate_window,
        description: Some("Magento events per merchant; the audit trail of record".into()),
        ..Default::default()
    };
    let quarantine = stream::Config {
        name: QUARANTINE_STREAM.to_string(),
        subjects: vec![QUARANTINE_SUBJECTS.to_string()],
        storage: stream::StorageType::File,
        max_age: settings.max_age,
        num_replicas: settings.replicas,
        description: Some("Events the edge rejected, with the reason; kept, never lost".into()),
        ..Default::default()
    };
    for config in [events, quarantine] {
        let name = config.name.clone();
        match js.get_stream(&name).await {
            Ok(_) => {
                js.update_stream(config)
                    .await
                    .map_err(|e| BusError::JetStream(format!("update stream {name}: {e}")))?;
            }
            Err(_) => {
                js.create_stream(config)
                    .await
                    .map_err(|e| BusError::JetStream(format!("create stream {name}: {e}")))?;
            }
        }
    }
    Ok(())
}

/// Describes one service's durable pull consumer on the events stream.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Durable name, e.g. `documents`.
    pub durable: String,
    /// Subjects this consumer projects, e.g. `magento.*.invoice.created`.
    pub filter_subjects: Vec<String>,
    /// How long a delivered message may stay unacknowledged before redelivery.
    pub ack_wait: Duration,
    /// Deliveries after which a message is dead-lettered instead of retried.
    pub max_deliver: i64,
    /// Upper bound on unacknowledged messages in flight for this consumer.
    pub max_ack_pending: i64,
}

impl ConsumerSpec {
    /// The spec of a consumer service: [`ConsumerSpec::new`] with unlimited redelivery at the
    /// server, because the consumer loop dead-letters after its own count of transient failures
    /// and a paused merchant's events must keep waiting however long it takes.
    pub fn for_service(durable: &str, filter_subjects: &[&str]) -> Self {
        let mut spec = ConsumerSpec::new(durable, filter_subjects);
        spec.max_deliver = -1;
        spec
    }

    /// The history twin of this consumer (decision record 0038): durable `<durable>_history`
    /// reading the history subjects of the same events
    /// (`magento.*.invoice.created` → `magento.*.history.invoice.created`), same settings.
    pub fn history(&self) -> ConsumerSpec {
        ConsumerSpec {
            durable: format!("{}_history", self.durable),
            filter_subjects: self
                .filter_subjects
                .iter()
                .map(|f| history_filter(f))
                .collect(),
            ..self.clone()
        }
    }

    /// A spec with production defaults for the given durable name and subjects: a 60 s ack
    /// wait (a service built with [`crate::service::ServiceBuilder`] takes its configured
    /// `ack_wait_secs`), 50 deliveries, 10 000 messages pending.
    pub fn new(durable: &str, filter_subjects: &[&str]) -> Self {
        ConsumerSpec {
            durable: durable.to_string(),
            filter_subjects: filter_subjects.iter().map(|s| s.to_string()).collect(),
            ack_wait: Duration::from_secs(60),
            max_deliver: 50,
            max_ack_pending: 10_000,
        }
    }
}

/// The history form of an event subject filter: the history token after the merchant token
/// (`magento.*.invoice.paid` → `magento.*.history.invoice.paid`).
pub fn history_filter(filter: &str) -> String {
    let mut parts: Vec<&str> = filter.split('.').collect();
    if parts.len() > 2 {
        parts.insert(2, ledger_events::HISTORY_TOKEN);
    }
    parts.join(".")
}

/// Creates (or updates) a durable pull consumer on the events stream.
pub async fn ensure_consumer(
    js: &jetstream::Context,
    spec: &ConsumerSpec,
) -> Result<jetstream::consumer::Consumer<pull::Config>, BusError> {
    let stream = js
        .get_stream(EVENTS_STREAM)
        .await
        .map_err(|e| BusError::JetStream(format!("stream {EVENTS_STREAM}: {e}")))?;
    let config = pull::Config {
        durable_name: Some(spec.durable.clone()),
        filter_subjects: spec.filter_subjects.clone(),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: spec.ack_wait,
        max_deliver: spec.max_deliver,
        max_ack_pending: spec.max_ack_pending,
        deliver_policy: jetstream::consumer::DeliverPolicy::All,
        ..Default::default()
    };
    match stream.get_consumer::<pull::Config>(&spec.durable).await {
        Ok(_) => stream
            .update_consumer(config)
            .await
            .map_err(|e| BusError::JetStream(format!("update consumer {}: {e}", spec.durable))),
        Err(_) => stream
            .create_consumer(config)
            .await
            .map_err(|e| BusError::JetStream(format!("create consumer {}: {e}", spec.durable))),
    }
}

/// Replicas of what Ledger keeps in JetStream besides the events stream (KV buckets, the
/// status stream): as many as the events stream has (`LEDGER_STREAM_REPLICAS` on the gateway,
/// which creates it), so that in a cluster the loss of one node leaves none of them without a
/// copy. 1 while the events stream does not exist yet.
pub async fn replicas_of_events_stream(js: &jetstream::Context) -> usize {
    match js.get_stream(EVENTS_STREAM).await {
        Ok(stream) => stream.cached_info().config.num_replicas.max(1),
        Err(_) => 1,
    }
}

/// Opens (creating if needed) a KV bucket that keeps the last value of each key: in memory
/// with entries expiring after `max_age` (leases, counters), or on file and kept (`None`).
/// A new bucket gets the events stream's replicas ([`replicas_of_events_stream`]); an existing
/// one is opened as it is.
pub async fn key_value(
    js: &jetstream::Context,
    bucket: &str,
    max_age: Option<Duration>,
) -> Result<jetstream::kv::Store, BusError> {
    let storage = if max_age.is_some() {
        stream::StorageType::Memory
    } else {
        stream::StorageType::File
    };
    let replicas = replicas_of_events_stream(js).await;
    let created = js
        .create_key_value(jetstream::kv::Config {
            bucket: bucket.to_string(),
            history: 1,
            max_age: max_age.unwrap_or_default(),
            storage,
            num_replicas: replicas,
            ..Default::default()
        })
        .await;
    match created {
        Ok(store) => Ok(store),
        // Made earlier with other settings (replicas before a move to a cluster): kept as
        // it is; `nats stream edit KV_<bucket> --replicas` scales it.
        Err(create) => match js.get_key_value(bucket).await {
            Ok(store) => {
                tracing::warn!(bucket, replicas, error = %create, "KV bucket kept with its existing settings");
                Ok(store)
            }
            Err(_) => Err(BusError::JetStream(format!("KV bucket {bucket}: {create}"))),
        },
    }
}

/// Sends a JSON request and decodes the JSON reply: the one way every Ledger caller (services,
/// `ledgerctl`, the portal) asks a Ledger NATS service (see [`crate::micro`]).
///
/// `timeout` is the request's own: the client's default request timeout never cuts it short,
/// so a long operation (a dead-letter retry, an audit query) may take as long as its caller
/// allows. A reply that carries only the standard service error headers (no body) is an error
/// naming the code and description.
pub async fn request_json<Req: Serialize, Resp: DeserializeOwned>(
    client: &async_nats::Client,
    subject: &str,
    request: &Req,
    timeout: Duration,
) -> Result<Resp, BusError> {
    let failed = |message: String| BusError::Request {
        subject: subject.to_string(),
        message,
    };
    let body = serde_json::to_vec(request).map_err(|e| failed(e.to_string()))?;
    let mut headers = async_nats::HeaderMap::new();
    crate::telemetry::inject_context(&mut headers);
    let request = async_nats::Request::new()
        .headers(headers)
        .payload(body.into())
        .timeout(Some(timeout));
    let reply = client
        .send_request(subject.to_string(), request)
        .await
        .map_err(|e| {
            failed(match e.kind() {
                async_nats::RequestErrorKind::TimedOut => format!("no reply within {timeout:?}"),
                async_nats::RequestErrorKind::NoResponders => {
                    "no service answers this subject".to_string()
                }
                _ => e.to_string(),
            })
        })?;
    if reply.payload.is_empty() {
        if let Some(headers) = &reply.headers {
            if let Some(description) = headers.get(async_nats::service::NATS_SERVICE_ERROR) {
                let code = headers
                    .get(async_nats::service::NATS_SERVICE_ERROR_CODE)
                    .map(|c| c.as_str().to_string())
                    .unwrap_or_default();
                return Err(failed(format!(
                    "service error {code}: {}",
                    description.as_str()
                )));
            }
        }
    }
    serde_json::from_slice(&reply.payload).map_err(|e| failed(format!("undecodable reply: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_servers_older_than_2_10() {
        assert!(matches!(
            check_server_version("2.9.25"),
            Err(BusError::ServerTooOld { .. })
        ));
        assert!(check_server_version("2.10.0").is_ok());
        assert!(check_server_version("2.15.1").is_ok());
        assert!(check_server_version("3.0.0-beta").is_ok());
        assert!(check_server_version("v1.4.1").is_err());
    }
}
