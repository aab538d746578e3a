//! `documents`: Ledger's ledger-documents consumer. See the library docs.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = ledger_runtime::telemetry::init("documents");
    let config = documents::Config::parse();
    let shutdown = ledger_runtime::shutdown::Shutdown::new();
    shutdown.trigger_on(ledger_runtime::shutdown::signal());
    documents::run(config, shutdown).await
}
