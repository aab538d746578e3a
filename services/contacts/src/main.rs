//! `contacts`: Ledger's ledger-contacts consumer. See the library docs.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = contacts::Config::parse();
    let runtime = config.service.runtime.clone();
    ledger_runtime::service::main(contacts::SERVICE, &runtime, |shutdown| {
        contacts::run(config, shutdown)
    })
    .await
}
