//! A JetStream cluster of nats-server nodes on loopback, configured as in production.
//!
//! Every node runs `deploy/nats/nats-server.conf` (service users, the auth callout) with the
//! same fresh secrets, JetStream on its own store directory, and routes to every other node.
//! Nodes are separate processes: [`TestCluster::kill_node`] is a real SIGKILL and
//! [`TestCluster::start_node`] brings the node back on its ports and store, as after a crash.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{free_port, nats_server_bin, wait_for_port, Secured, SERVICE_USERS};

/// The ports one node listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePorts {
    /// Client connections (services, stores).
    pub client: u16,
    /// Routes between the nodes.
    pub cluster: u16,
    /// HTTP monitoring (`/healthz`, `/jsz`).
    pub monitor: u16,
}

impl NodePorts {
    /// Three ports that were free a moment ago.
    pub fn free() -> NodePorts {
        NodePorts {
            client: free_port(),
            cluster: free_port(),
            monitor: free_port(),
        }
    }
}

struct Node {
    name: String,
    ports: NodePorts,
    child: Option<Child>,
}

/// A nats-server cluster with JetStream and the production configuration; every node is
/// killed when the value is dropped.
pub struct TestCluster {
    name: String,
    nodes: Vec<Node>,
    secured: Secured,
    store: PathBuf,
    logs: Option<PathBuf>,
    _temp: Option<tempfile::TempDir>,
}

impl TestCluster {
    /// Starts one node per entry of `ports` as the cluster `name`, with fresh secrets, and
    /// waits until JetStream has a meta leader. Stores go under `store` (a temporary
    /// directory when `None`), each node's log into `logs` when given.
    pub async fn start(
        name: &str,
        ports: &[NodePorts],
        store: Option<PathBuf>,
        logs: Option<PathBuf>,
    ) -> Result<TestCluster> {
        if ports.len() < 3 {
            bail!(
                "a JetStream cluster needs at least 3 nodes, {} given",
                ports.len()
            );
        }
        let (store, temp) = match store {
            Some(dir) => (dir, None),
            None => {
                let temp = tempfile::tempdir().context("create JetStream store dir")?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let mut cluster = TestCluster {
            name: name.to_string(),
            nodes: ports
                .iter()
                .enumerate()
                .map(|(i, p)| Node {
                    name: format!("{name}-{}", i + 1),
                    ports: *p,
                    child: None,
                })
                .collect(),
            secured: Secured::generate()?,
            store,
            logs,
            _temp: temp,
        };
        for i in 0..cluster.nodes.len() {
            cluster.spawn(i)?;
        }
        for node in &cluster.nodes {
            wait_for_port(node.ports.client, Duration::from_secs(20)).await?;
        }
        cluster.wait_for_jetstream(Duration::from_secs(60)).await?;
        Ok(cluster)
    }

    /// Three nodes on free ports with temporary stores.
    pub async fn start_on_free_ports(name: &str) -> Result<TestCluster> {
        let ports: Vec<NodePorts> = (0..3).map(|_| NodePorts::free()).collect();
        TestCluster::start(name, &ports, None, None).await
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let routes: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| format!("nats://127.0.0.1:{}", n.ports.cluster))
            .collect();
        let node = &self.nodes[i];
        let store = self.store.join(&node.name);
        std::fs::create_dir_all(&store)
            .with_context(|| format!("create JetStream store {}", store.display()))?;
        let bin = nats_server_bin();
        let mut command = Command::new(&bin);
        self.secured.configure(&mut command);
        command
            .args(["-n", &node.name, "-a", "127.0.0.1"])
            .args(["-p", &node.ports.client.to_string()])
            .args(["-m", &node.ports.monitor.to_string()])
            .args(["--cluster_name", &self.name])
            .arg("--cluster")
            .arg(format!("nats://127.0.0.1:{}", node.ports.cluster))
            .arg("--routes")
            .arg(routes.join(","))
            .args(["-js", "-sd"])
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(dir) = &self.logs {
            std::fs::create_dir_all(dir)?;
            command
                .arg("-l")
                .arg(Path::new(dir).join(format!("{}.log", node.name)));
        }
        let child = command
            .spawn()
            .with_context(|| format!("start {} as {}", bin.display(), node.name))?;
        self.nodes[i].child = Some(child);
        Ok(())
    }

    /// Waits until the cluster answers JetStream requests (a meta leader is elected).
    pub async fn wait_for_jetstream(&self, limit: Duration) -> Result<()> {
        let started = Instant::now();
        let client = self.connect().await?;
        let js = async_nats::jetstream::new(client);
        loop {
            match js.query_account().await {
                Ok(_) => return Ok(()),
                Err(e) if started.elapsed() > limit => {
                    bail!(
                        "cluster {} has no JetStream after {limit:?}: {e}",
                        self.name
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// SIGKILLs node `i` (0-based); its store stays on disk.
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` again on its ports and store and waits until it takes clients.
    pub async fn start_node(&mut self, i: usize) -> Result<()> {
        self.spawn(i)?;
        wait_for_port(self.nodes[i].ports.client, Duration::from_secs(20)).await
    }

    /// Whether node `i` is running.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.nodes[i]
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Names of the nodes (`<cluster>-1`, ...), as nats-server reports them.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// Ports of every node.
    pub fn ports(&self) -> Vec<NodePorts> {
        self.nodes.iter().map(|n| n.ports).collect()
    }

    /// Every node's client URL for `user` (one of [`SERVICE_USERS`]) with its credentials,
    /// comma-separated: the `LEDGER_NATS_URL` of that service.
    pub fn service_url(&self, user: &str) -> String {
        let password = self
            .secured
            .password(user)
            .expect("a user of deploy/nats/nats-server.conf");
        self.nodes
            .iter()
            .map(|n| format!("nats://{user}:{password}@127.0.0.1:{}", n.ports.client))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The operator's URL list (tools, tests).
    pub fn url(&self) -> String {
        self.service_url("operator")
    }

    /// Client URLs without credentials (what a store is handed).
    pub fn addresses(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.ports.client))
            .collect()
    }

    /// Seed of the auth callout issuer key (the gateway's `LEDGER_NATS_CALLOUT_ISSUER_SEED`).
    pub fn callout_issuer_seed(&self) -> String {
        self.secured.issuer_seed.clone()
    }

    /// Seed of the callout's curve key (the gateway's `LEDGER_NATS_CALLOUT_XKEY_SEED`).
    pub fn callout_xkey_seed(&self) -> String {
        self.secured.xkey_seed.clone()
    }

    /// Every user's password variable, as the nodes have them (`LEDGER_NATS_<USER>_PASSWORD`).
    pub fn password_env(&self) -> Vec<(String, String)> {
        SERVICE_USERS
            .iter()
            .zip(&self.secured.passwords)
            .map(|(u, p)| {
                (
                    format!("LEDGER_NATS_{}_PASSWORD", u.to_ascii_uppercase()),
                    p.clone(),
                )
            })
            .collect()
    }

    /// Connects as the operator to whichever node answers, following the cluster when a node
    /// goes away.
    pub async fn connect(&self) -> Result<async_nats::Client> {
        let password = self.secured.password("operator").expect("operator user");
        Ok(async_nats::ConnectOptions::new()
            .user_and_password("operator".into(), password.to_string())
            .custom_inbox_prefix("_INBOX_operator")
            .retry_on_initial_connect()
            .connect(self.addresses())
            .await?)
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill_node(i);
        }
    }
}
