//! `gateway`: Ledger's edge service. See the library docs.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = gateway::Config::parse();
    let _telemetry = ledger_runtime::telemetry::init_with("gateway", config.log_format);
    let shutdown = ledger_runtime::shutdown::Shutdown::new();
    shutdown.trigger_on(ledger_runtime::shutdown::signal());
    // `run` stops by itself within its flush limit; the bound is the last resort.
    let limit = gateway::STOP_FLUSH_LIMIT + ledger_runtime::service::STOP_SLACK;
    ledger_runtime::service::run_bounded(gateway::run(config, shutdown.clone()), &shutdown, limit)
        .await
}
