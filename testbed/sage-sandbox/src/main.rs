//! `sage-sandbox` binary: a Sage Accounting v3.1 stand-in for tests and demos.

use clap::Parser;
use sage_sandbox::{run, SandboxConfig};
use std::net::SocketAddr;
use std::time::Duration;

/// Test and demo stand-in for the Sage Business Cloud Accounting v3.1 API.
/// Not Sage; state is in memory and lost on exit.
#[derive(Debug, Parser)]
#[command(name = "sage-sandbox", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "SAGE_SANDBOX_BIND", default_value = "127.0.0.1:8787")]
    bind: SocketAddr,
    /// OAuth client id accepted by the token endpoint.
    #[arg(long, env = "SAGE_SANDBOX_CLIENT_ID", default_value = "ledger-dev")]
    client_id: String,
    /// OAuth client secret accepted by the token endpoint.
    #[arg(
        long,
        env = "SAGE_SANDBOX_CLIENT_SECRET",
        default_value = "ledger-dev-secret",
        hide_env_values = true
    )]
    client_secret: String,
    /// Access token lifetime in seconds.
    #[arg(
        long,
        env = "SAGE_SANDBOX_ACCESS_TOKEN_TTL_SECS",
        default_value_t = 300
    )]
    access_token_ttl_secs: u64,
    /// Refresh token lifetime in seconds (31 days).
    #[arg(
        long,
        env = "SAGE_SANDBOX_REFRESH_TOKEN_TTL_SECS",
        default_value_t = 2_678_400
    )]
    refresh_token_ttl_secs: u64,
    /// Idempotency window in seconds (7 days).
    #[arg(
        long,
        env = "SAGE_SANDBOX_IDEMPOTENCY_WINDOW_SECS",
        default_value_t = 604_800
    )]
    idempotency_window_secs: u64,
    /// Requests per rolling minute per business before 429 (0 = no limit).
    #[arg(long, env = "SAGE_SANDBOX_RATE_LIMIT_PER_MINUTE", default_value_t = 0)]
    rate_limit_per_minute: u32,
    /// The rate limit's rolling window in milliseconds (a minute).
    #[arg(long, env = "SAGE_SANDBOX_RATE_WINDOW_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    rate_window_ms: u64,
}

fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = SandboxConfig {
        bind: args.bind,
        client_id: args.client_id,
        client_secret: args.client_secret,
        access_token_ttl: Duration::from_secs(args.access_token_ttl_secs),
        refresh_token_ttl: Duration::from_secs(args.refresh_token_ttl_secs),
        idempotency_window: Duration::from_secs(args.idempotency_window_secs),
        rate_limit_per_minute: (args.rate_limit_per_minute > 0)
            .then_some(args.rate_limit_per_minute),
        rate_window: Duration::from_millis(args.rate_window_ms),
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(config, shutdown_signal()))
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
