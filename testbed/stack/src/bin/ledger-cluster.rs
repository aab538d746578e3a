//! `ledger-cluster`: the engine as a cluster on this machine, in the foreground (`./dev cluster`).
//!
//! Starts `deploy/cluster/topology.yaml` on its loopback ports: three nats-server nodes as
//! one JetStream cluster with the production configuration (`deploy/nats/nats-server.conf`,
//! auth callout), streams with the topology's replicas, the Sage sandbox and every replica of
//! every service as its own process, on the database `LEDGER_DATABASE_URL` (which `./dev
//! cluster` makes on its own PostgreSQL). Prints where everything listens and runs until
//! Ctrl-C, restarting nothing: a replica that dies stays dead, as an operator would see it.

use anyhow::Context;
use ledger_stack::cluster::{DeployOptions, Deployment, Ports, Topology, SERVICES};

/// Options; each also reads the environment variable of the same name.
#[derive(Debug, clap::Parser)]
#[command(
    name = "ledger-cluster",
    about = "The engine as a 3-node cluster with replicated services"
)]
struct Args {
    /// Database of every service.
    #[arg(long, env = "LEDGER_DATABASE_URL")]
    database_url: String,
    /// Admin token of the gateways.
    #[arg(
        long,
        env = "LEDGER_ADMIN_TOKEN",
        default_value = "dev-admin-token-not-for-production"
    )]
    admin_token: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let root = ledger_testkit::workspace_root();
    let topology = Topology::load(&root)?;
    let logs = root.join(".stack/cluster");
    let deployment = Deployment::start(
        topology,
        DeployOptions {
            ports: Ports::Topology,
            database_url: args.database_url,
            bin_dir: std::env::current_exe()?
                .parent()
                .context("binary dir")?
                .to_path_buf(),
            logs: logs.clone(),
            extra_env: Vec::new(),
            admin_token: args.admin_token,
        },
    )
    .await?;
    let t = &deployment.topology;
    println!(
        "cluster: NATS {} (cluster {}, stream replicas {})",
        deployment.cluster.addresses().join(","),
        t.cluster_name,
        t.streams.replicas
    );
    println!("cluster: gateways {}", deployment.gateway_urls.join(" "));
    for service in SERVICES {
        let replicas: Vec<&str> = deployment
            .replicas
            .iter()
            .filter(|p| p.service == service)
            .map(|p| p.health_url())
            .collect();
        println!(
            "cluster: {service} x{} {}",
            replicas.len(),
            replicas.join(" ")
        );
    }
    println!(
        "cluster: Sage sandbox {}  logs {}",
        deployment.sandbox.api_base_url(),
        logs.display()
    );
    println!(
        "cluster: operator NATS URL (ledgerctl, tools): {}",
        deployment.cluster.url()
    );
    println!("cluster: running; Ctrl-C stops");
    tokio::signal::ctrl_c().await?;
    let forced = deployment.stop();
    if forced > 0 {
        println!("cluster: {forced} replicas did not drain and were SIGKILLed");
    }
    Ok(())
}
