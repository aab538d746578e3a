//! `contacts`: Ledger's ledger-contacts consumer. See the library docs.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = ledger_runtime::telemetry::init("contacts");
    let config = contacts::Config::parse();
    let shutdown = ledger_runtime::shutdown::Shutdown::new();
    shutdown.trigger_on(ledger_runtime::shutdown::signal());
    contacts::run(config, shutdown).await
}
