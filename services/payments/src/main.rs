//! `payments`: Ledger's customer-receipts consumer. See the library docs.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = ledger_runtime::telemetry::init("payments");
    let config = payments::Config::parse();
    let shutdown = ledger_runtime::shutdown::Shutdown::new();
    shutdown.trigger_on(ledger_runtime::shutdown::signal());
    payments::run(config, shutdown).await
}
