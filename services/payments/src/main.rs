//! `payments`: Ledger's customer-receipts consumer. See the library docs.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = payments::Config::parse();
    let runtime = config.service.runtime.clone();
    ledger_runtime::service::main(payments::SERVICE, &runtime, |shutdown| {
        payments::run(config, shutdown)
    })
    .await
}
