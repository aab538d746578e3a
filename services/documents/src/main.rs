//! `documents`: Ledger's ledger-documents consumer. See the library docs.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = documents::Config::parse();
    let runtime = config.service.runtime.clone();
    ledger_runtime::service::main(documents::SERVICE, &runtime, |shutdown| {
        documents::run(config, shutdown)
    })
    .await
}
