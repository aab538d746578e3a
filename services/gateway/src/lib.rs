//! Ledger's edge service.
//!
//! - **Ingest** (`POST /v1/events`): authenticates the merchant's ingest key, validates the
//!   event against the contract in `schemas/`, and appends it to JetStream with
//!   `Nats-Msg-Id = event_id`. An invalid event is answered 422 with the offending field and
//!   kept in the quarantine stream; nothing is dropped.
//! - **Sage connection**: the OAuth consent flow (`/connect/sage/start`, `/connect/sage/callback`),
//!   tokens encrypted at rest, and the token service consumers ask over NATS, so that refresh
//!   tokens and the client secret live in this service only and each merchant's refresh is
//!   single-flight.
//! - **Merchants**: registry, ingest keys and accounting settings (`/v1/admin/...`), served
//!   to the consumers over NATS.
//! - **Audit** (`/v1/admin/audit`, `/v1/admin/audit/verify`): the consumer services' audit
//!   trails, asked for over NATS.
//! - **Status feed** (`GET /v1/status?cursor=N`, the merchant's ingest key): sync state
//!   changes of the merchant's entities, copied from the `LEDGER_STATUS` stream and numbered
//!   per merchant.
//! - **Pairing** (`/v1/pairings`, `/v1/credentials/revoke`, `/v1/admin/merchants/{m}/pairings`
//!   and `/keys`): a store receives its own key by a single-use code, and the NATS auth
//!   callout admits it with permissions scoped to its merchant's subjects.
//! - **Merchant portal** (`/portal`, signed in by a single-use link from
//!   `/v1/admin/merchants/{m}/portal-links`): connect Sage, enter a store's pairing code, see
//!   and disconnect paired stores, follow the onboarding checklist, and read the sync history
//!   of every document the stores sent (`/portal/history`, [`history`]).
//! - `/healthz` on the public listener; `/metrics` on its own listener (`LEDGER_METRICS_ADDR`,
//!   loopback by default), never on the public one.
//!
//! Every public endpoint is rate limited per client IP, ingest and status also per key
//! ([`limits`]); dependency failures are answered with a generic message and a correlation id
//! that is also logged, never with the database's or NATS's own text.

pub mod audit;
pub mod backfills;
pub mod connect;
pub mod history;
pub mod ingest;
pub mod limits;
pub mod merchants;
pub mod nats_auth;
pub mod pages;
pub mod pairing;
pub mod portal;
pub mod preview;
pub mod reissue;
pub mod release;
pub mod routes;
pub mod rpc;
pub mod settings_pages;
pub mod status;
pub mod store_access;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ledger_runtime::bus::{self, StreamSettings};
use ledger_runtime::shutdown::Shutdown;
use sage_client::{OAuthClient, PgTokenStore, SageClient, SageConfig, TokenManager};

/// A JSON error answer of the HTTP API: `{"error": code, "message": message}`.
pub(crate) fn json_error(
    status: axum::http::StatusCode,
    code: &str,
    message: impl Into<String>,
) -> axum::response::Response {
    json_error_with(status, code, message, serde_json::json!({}))
}

/// A JSON error answer with more fields (`extra`, an object) next to `error` and `message`.
pub(crate) fn json_error_with(
    status: axum::http::StatusCode,
    code: &str,
    message: impl Into<String>,
    extra: serde_json::Value,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut body = serde_json::json!({"error": code, "message": message.into()});
    if let (Some(body), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    (status, axum::Json(body)).into_response()
}

/// A fresh id tying an answer to the log line that holds the cause.
pub(crate) fn correlation_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// 503 for a store or bus failure behind an API call: the cause is logged with a correlation
/// id; the answer holds only that id, never the database's or NATS's text.
pub(crate) fn unavailable(e: impl std::fmt::Display) -> axum::response::Response {
    let id = correlation_id();
    tracing::error!(error = %e, correlation_id = %id, "gateway dependency failure");
    json_error_with(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "Ledger cannot answer right now; try again later",
        serde_json::json!({"correlation_id": id}),
    )
}

/// Shortest admin token the gateway starts with.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// Gateway configuration (flags or environment variables).
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "gateway",
    about = "Ledger edge: ingest, Sage connection, merchants, tokens"
)]
pub struct Config {
    /// Address the HTTP server binds (behind a TLS-terminating load balancer in production).
    #[arg(long, env = "LEDGER_HTTP_ADDR", default_value = "127.0.0.1:8780")]
    pub http_addr: SocketAddr,
    /// Address of the `/metrics` listener (keep it off the public network; port 0 picks one).
    #[arg(long, env = "LEDGER_METRICS_ADDR", default_value = "127.0.0.1:9780")]
    pub metrics_addr: SocketAddr,
    /// Public base URL of this gateway, used to build the OAuth callback URL.
    #[arg(
        long,
        env = "LEDGER_PUBLIC_URL",
        default_value = "http://127.0.0.1:8780"
    )]
    pub public_url: String,
    /// NATS server URL, or a comma-separated list of every node of a cluster (one login).
    #[arg(long, env = "LEDGER_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// PostgreSQL URL (the gateway keeps its tables in schema `gateway`).
    #[arg(long, env = "LEDGER_DATABASE_URL")]
    pub database_url: String,
    /// How long the events stream keeps events, in days (the audit trail: years).
    #[arg(long, env = "LEDGER_STREAM_MAX_AGE_DAYS", default_value_t = 7 * 365)]
    pub stream_max_age_days: u64,
    /// Stream replicas (1 for development, 3 in production).
    #[arg(long, env = "LEDGER_STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,
    /// Sage Accounting API base URL.
    #[arg(
        long,
        env = "SAGE_API_BASE_URL",
        default_value = "https://api.accounting.sage.com/v3.1"
    )]
    pub sage_api_base_url: String,
    /// Sage OAuth consent page.
    #[arg(
        long,
        env = "SAGE_AUTHORIZE_URL",
        default_value = "https://www.sageone.com/oauth2/auth/central?filter=apiv3.1"
    )]
    pub sage_authorize_url: String,
    /// Sage OAuth token endpoint.
    #[arg(
        long,
        env = "SAGE_TOKEN_URL",
        default_value = "https://oauth.accounting.sage.com/token"
    )]
    pub sage_token_url: String,
    /// Sage OAuth revoke endpoint.
    #[arg(
        long,
        env = "SAGE_REVOKE_URL",
        default_value = "https://oauth.accounting.sage.com/revoke"
    )]
    pub sage_revoke_url: String,
    /// OAuth client id of the Ledger app registration at Sage.
    #[arg(long, env = "SAGE_CLIENT_ID")]
    pub sage_client_id: String,
    /// OAuth client secret of the Ledger app registration at Sage.
    #[arg(long, env = "SAGE_CLIENT_SECRET", hide_env_values = true)]
    pub sage_client_secret: String,
    /// 32-byte key (64 hex characters) encrypting Sage tokens at rest.
    #[arg(long, env = "LEDGER_TOKEN_KEY", hide_env_values = true)]
    pub token_key: String,
    /// Bearer token for the admin API (`/v1/admin/...`): at least 32 characters.
    #[arg(long, env = "LEDGER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
    /// NATS URLs handed to paired stores (comma-separated); defaults to `nats_url` without its
    /// credentials.
    #[arg(long, env = "LEDGER_NATS_PUBLIC_URLS", value_delimiter = ',')]
    pub nats_public_urls: Vec<String>,
    /// Seed (`SA...`) of the account key whose public key is the `issuer` of the NATS server's
    /// `auth_callout` block. When set, the gateway answers the callout: stores connect with
    /// the key they received by pairing. Unset: no callout (a server without store access).
    #[arg(long, env = "LEDGER_NATS_CALLOUT_ISSUER_SEED", hide_env_values = true)]
    pub nats_callout_issuer_seed: Option<String>,
    /// NATS account stores are placed in: one that only imports the event subjects from the
    /// services' account (`deploy/nats/nats-server.conf`).
    #[arg(long, env = "LEDGER_NATS_STORE_ACCOUNT", default_value = "STORES")]
    pub nats_store_account: String,
    /// Seed (`SX...`) of the curve key whose public key is the `xkey` of the server's
    /// `auth_callout` block: store logins reach the gateway sealed to it. Unset: in clear
    /// (development; a warning is logged).
    #[arg(long, env = "LEDGER_NATS_CALLOUT_XKEY_SEED", hide_env_values = true)]
    pub nats_callout_xkey_seed: Option<String>,
    /// NATS server public keys (`N...`, comma-separated) whose callout requests are answered,
    /// or `connected` for the server this gateway is connected to. Unset: any (development; a
    /// warning is logged).
    #[arg(long, env = "LEDGER_NATS_SERVER_KEYS", value_delimiter = ',')]
    pub nats_server_keys: Vec<String>,
    /// Allows `nats://` URLs in `LEDGER_NATS_PUBLIC_URLS` (development and tests only: store
    /// secrets then cross the network in clear).
    #[arg(long, env = "LEDGER_NATS_ALLOW_PLAIN", default_value_t = false)]
    pub nats_allow_plain: bool,
    /// Log lines as `text` or `json`.
    #[arg(long, env = "LEDGER_LOG_FORMAT", value_enum, default_value_t = ledger_runtime::telemetry::LogFormat::Text)]
    pub log_format: ledger_runtime::telemetry::LogFormat,
    /// Lifetime of a store's NATS session in seconds; a revoked key's open connection ends
    /// within this time, and it cannot reconnect.
    #[arg(long, env = "LEDGER_NATS_SESSION_TTL_SECS", default_value_t = 300)]
    pub nats_session_ttl_secs: u64,
    /// Rate limits of the public endpoints and the trusted proxies.
    #[command(flatten)]
    pub limits: limits::Limits,
}

impl Config {
    /// Refuses settings the gateway must not run with; warns about risky ones.
    pub fn validate(&self) -> anyhow::Result<()> {
        let chars = self.admin_token.trim().chars().count();
        if chars < MIN_ADMIN_TOKEN_CHARS {
            anyhow::bail!(
                "LEDGER_ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN_CHARS} characters \
                 (it has {chars}); generate one with `openssl rand -hex 32`"
            );
        }
        if !self.public_url.starts_with("https://") {
            tracing::warn!(
                public_url = %self.public_url,
                "LEDGER_PUBLIC_URL is not https: portal cookies are sent without Secure; \
                 use https in production"
            );
        }
        Ok(())
    }

    /// Whether browsers reach the gateway over https (cookies get `Secure` and `__Host-`).
    pub fn https(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    fn sage_config(&self) -> SageConfig {
        let mut c = SageConfig::sage_production(
            self.sage_client_id.clone(),
            self.sage_client_secret.clone(),
            format!(
                "{}/connect/sage/callback",
                self.public_url.trim_end_matches('/')
            ),
        );
        c.api_base_url = self.sage_api_base_url.clone();
        c.authorize_url = self.sage_authorize_url.clone();
        c.token_url = self.sage_token_url.clone();
        c.revoke_url = self.sage_revoke_url.clone();
        c
    }

    fn token_key_bytes(&self) -> anyhow::Result<[u8; 32]> {
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(self.token_key.trim().as_bytes())
            .context("LEDGER_TOKEN_KEY must be 64 hex characters")?;
        bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("LEDGER_TOKEN_KEY must be 64 hex characters (32 bytes)"))
    }
}

/// Shared state of the HTTP handlers and NATS responders.
pub struct AppState {
    /// Configuration.
    pub config: Config,
    /// Pool on schema `gateway`.
    pub db: sqlx::PgPool,
    /// NATS client.
    pub nats: async_nats::Client,
    /// JetStream context.
    pub js: async_nats::jetstream::Context,
    /// Owner of every merchant's Sage tokens.
    pub tokens: Arc<TokenManager>,
    /// Sage client using [`AppState::tokens`] (settings discovery at connect time).
    pub sage: SageClient,
    /// Rate limiters of the public endpoints.
    pub limiters: limits::Limiters,
    /// Sage connections waiting for the merchant's confirmation.
    pub pending_connections: connect::PendingConnections,
}

/// A started gateway.
pub struct Running {
    /// Address the HTTP server listens on.
    pub http_addr: SocketAddr,
    /// Address the `/metrics` listener listens on.
    pub metrics_addr: SocketAddr,
    /// Shared state (tests use it to reach the database and token manager).
    pub state: Arc<AppState>,
}

/// Connects everything, starts the HTTP server and the NATS responders, and returns once they
/// accept work. They stop when `shutdown` fires.
pub async fn start(config: Config, shutdown: Shutdown) -> anyhow::Result<Running> {
    config.validate()?;
    store_access::check_public_nats_urls(&config)?;
    let nats = bus::connect(&config.nats_url, "gateway").await?;
    let js = async_nats::jetstream::new(nats.clone());
    let stream_settings = StreamSettings {
        max_age: Duration::from_secs(config.stream_max_age_days * 24 * 3600),
        replicas: config.stream_replicas,
        ..Default::default()
    };
    bus::ensure_streams(&js, &stream_settings).await?;
    ledger_runtime::status::ensure_stream(&js, stream_settings.replicas)
        .await
        .map_err(anyhow::Error::msg)?;

    let db = ledger_runtime::db::connect_schema(&config.database_url, "gateway", 20).await?;
    sqlx::migrate!("./migrations").run(&db).await?;
    // The gateway's own audit trail (settings changes), beside the services' trails.
    ledger_runtime::audit::migrate(&db).await?;
    // Tokens get their own schema: the token store migrates itself and keeps its own history.
    let token_db =
        ledger_runtime::db::connect_schema(&config.database_url, "gateway_tokens", 10).await?;
    let store = PgTokenStore::new(token_db, config.token_key_bytes()?);
    store.migrate().await?;
    let tokens = Arc::new(TokenManager::new(
        OAuthClient::new(config.sage_config()),
        Arc::new(store),
    ));
    let sage = SageClient::new(config.sage_config(), tokens.clone());

    let state = Arc::new(AppState {
        config: config.clone(),
        db,
        nats: nats.clone(),
        js,
        tokens,
        sage,
        limiters: limits::Limiters::new(&config.limits),
        pending_connections: connect::PendingConnections::default(),
    });
    {
        // Limiter state of clients not seen lately is dropped, so spraying keys or addresses
        // cannot grow it without bound.
        let state = state.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                }
                state.limiters.forget_idle();
                state.pending_connections.forget_expired();
            }
        });
    }
    rpc::serve(state.clone(), shutdown.clone()).await?;
    status::serve_projection(state.clone(), shutdown.clone()).await?;
    if let Some(callout) = nats_auth::CalloutSettings::from_config(&config)? {
        nats_auth::serve(state.clone(), callout, shutdown.clone()).await?;
    }

    let router = routes::router(state.clone());
    let listener = tokio::net::TcpListener::bind(config.http_addr).await?;
    let http_addr = listener.local_addr()?;
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = router.into_make_service_with_connect_info::<SocketAddr>();
            let _ = axum::serve(listener, service)
                .with_graceful_shutdown(async move { shutdown.wait().await })
                .await;
        });
    }
    let metrics_addr = ledger_runtime::metrics::serve(
        config.metrics_addr,
        ledger_runtime::metrics::router(),
        shutdown,
    )
    .await
    .context("LEDGER_METRICS_ADDR: cannot listen")?;
    tracing::info!(%http_addr, %metrics_addr, "gateway listening");
    Ok(Running {
        http_addr,
        metrics_addr,
        state,
    })
}

/// How long a stopping gateway waits for NATS to take what it still buffers.
pub const STOP_FLUSH_LIMIT: Duration = Duration::from_secs(3);

/// Runs the gateway until `shutdown` fires. Nothing on the way out waits on NATS for long:
/// a shutdown while starting (NATS or PostgreSQL unreachable) stops at once, and the final
/// flush gives up after [`STOP_FLUSH_LIMIT`] when the NATS servers are gone.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let running = tokio::select! {
        running = start(config, shutdown.clone()) => running?,
        _ = shutdown.wait() => {
            tracing::info!("stopped while starting");
            return Ok(());
        }
    };
    shutdown.wait().await;
    // Let in-flight requests finish their PubAck before the connection goes.
    bus::flush_within(&running.state.nats, STOP_FLUSH_LIMIT).await;
    Ok(())
}

/// A query string's parameters from `(name, value)` pairs (for tests of request parsing).
#[cfg(test)]
pub(crate) fn query_of(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
