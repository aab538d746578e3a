//! The engine as a cluster on one machine: three nats-server nodes (one JetStream cluster,
//! the production configuration), streams with three replicas, and replicas of every service
//! as separate OS processes (the service binaries), against the Sage sandbox.
//!
//! The topology is read from `deploy/cluster/topology.yaml`, the file the operator's compose
//! and Helm files are checked against (`tests/deploy_topology.rs`). `ledger-cluster` (`./dev
//! cluster`) starts it on the topology's ports; `ledger-cluster-chaos` on free ports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use ledger_testkit::{NodePorts, TestCluster};
use sage_sandbox::Sandbox;
use serde::Deserialize;

/// Path of the topology file, relative to the workspace root.
pub const TOPOLOGY_FILE: &str = "deploy/cluster/topology.yaml";

/// Ledger's services, in the order they are started (the gateway creates the streams).
pub const SERVICES: [&str; 4] = ["gateway", "contacts", "documents", "payments"];

/// `deploy/cluster/topology.yaml`.
#[derive(Debug, Clone, Deserialize)]
pub struct Topology {
    /// Name of the NATS cluster.
    pub cluster_name: String,
    /// The NATS nodes.
    pub nats: NatsTopology,
    /// Stream settings.
    pub streams: StreamTopology,
    /// The PostgreSQL `./dev cluster` starts.
    pub postgres: PortOnly,
    /// The Sage sandbox `./dev cluster` runs.
    pub sandbox: PortOnly,
    /// Replicas and loopback ports of each service.
    pub services: BTreeMap<String, ServiceTopology>,
    /// Port the gateway's HTTP server listens on in a container.
    pub http_container_port: u16,
    /// Port `/metrics` and `/healthz` listen on in a container.
    pub metrics_container_port: u16,
    /// Variables every deployment sets on each service.
    pub env: BTreeMap<String, Vec<String>>,
}

/// The NATS part of the topology.
#[derive(Debug, Clone, Deserialize)]
pub struct NatsTopology {
    /// Configuration file every node runs (relative to the workspace root).
    pub config: String,
    /// The nodes.
    pub nodes: Vec<NatsNode>,
}

/// One NATS node.
#[derive(Debug, Clone, Deserialize)]
pub struct NatsNode {
    /// Server name.
    pub name: String,
    /// Client port.
    pub client_port: u16,
    /// Route port.
    pub cluster_port: u16,
    /// Monitoring port.
    pub monitor_port: u16,
}

/// Stream settings of the topology.
#[derive(Debug, Clone, Deserialize)]
pub struct StreamTopology {
    /// `LEDGER_STREAM_REPLICAS`.
    pub replicas: usize,
}

/// A component known by its port only.
#[derive(Debug, Clone, Deserialize)]
pub struct PortOnly {
    /// Its loopback port under `./dev cluster`.
    pub port: u16,
}

/// One service in the topology.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceTopology {
    /// How many replicas run.
    pub replicas: usize,
    /// Loopback HTTP port of each replica (the gateway only).
    #[serde(default)]
    pub http_ports: Vec<u16>,
    /// Loopback metrics port of each replica.
    pub metrics_ports: Vec<u16>,
}

impl Topology {
    /// Reads and checks the topology file under `root`.
    pub fn load(root: &Path) -> anyhow::Result<Topology> {
        let path = root.join(TOPOLOGY_FILE);
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let topology: Topology =
            serde_norway::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
        topology.validate()?;
        Ok(topology)
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.nats.nodes.len() >= 3,
            "{TOPOLOGY_FILE}: nats.nodes: a JetStream cluster needs 3 nodes"
        );
        anyhow::ensure!(
            (1..=self.nats.nodes.len()).contains(&self.streams.replicas),
            "{TOPOLOGY_FILE}: streams.replicas must be between 1 and the number of nodes"
        );
        for name in SERVICES {
            let s = self
                .services
                .get(name)
                .with_context(|| format!("{TOPOLOGY_FILE}: services.{name} is missing"))?;
            anyhow::ensure!(
                s.replicas >= 1 && s.metrics_ports.len() == s.replicas,
                "{TOPOLOGY_FILE}: services.{name}.metrics_ports must list one port per replica"
            );
            anyhow::ensure!(
                name != "gateway" || s.http_ports.len() == s.replicas,
                "{TOPOLOGY_FILE}: services.gateway.http_ports must list one port per replica"
            );
            anyhow::ensure!(
                self.env.contains_key(name),
                "{TOPOLOGY_FILE}: env.{name} is missing"
            );
        }
        Ok(())
    }

    /// The service `name` (one of [`SERVICES`]).
    pub fn service(&self, name: &str) -> &ServiceTopology {
        &self.services[name]
    }

    /// Ports of the NATS nodes.
    pub fn node_ports(&self) -> Vec<NodePorts> {
        self.nats
            .nodes
            .iter()
            .map(|n| NodePorts {
                client: n.client_port,
                cluster: n.cluster_port,
                monitor: n.monitor_port,
            })
            .collect()
    }
}

/// A service replica: one OS process of a service binary, started, SIGKILLed and restarted.
pub struct Proc {
    /// Service name (the binary's name).
    pub service: String,
    /// Replica number (0-based).
    pub replica: usize,
    bin: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
    log: PathBuf,
    health: String,
}

impl Proc {
    /// A replica of `service` run from `bin` with `env`, logging (appending) to `log`;
    /// `health` is the URL that answers 2xx once it is up.
    pub fn new(
        service: &str,
        replica: usize,
        bin: PathBuf,
        env: Vec<(String, String)>,
        log: PathBuf,
        health: String,
    ) -> Proc {
        Proc {
            service: service.to_string(),
            replica,
            bin,
            env,
            child: None,
            log,
            health,
        }
    }

    /// Starts the process.
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.bin)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("start {} from {}", self.service, self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL: no drain, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for the drain (the graceful stop of a rolling restart); SIGKILL after
    /// [`STOP_GRACE`], as an orchestrator does, and then `false`.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let started = std::time::Instant::now();
        while started.elapsed() < STOP_GRACE {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Whether the process has exited (or was never started); it is then forgotten.
    pub fn exited(&mut self) -> anyhow::Result<bool> {
        let exited = match self.child.as_mut() {
            Some(child) => child.try_wait()?.is_some(),
            None => true,
        };
        if exited {
            self.child = None;
        }
        Ok(exited)
    }

    /// Waits until the replica answers its health URL.
    pub async fn wait_healthy(&self) -> anyhow::Result<()> {
        wait_http(&self.health).await
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its health URL.
    pub fn health_url(&self) -> &str {
        &self.health
    }
}

impl Drop for Proc {
    /// A replica never outlives its suite or launcher, even when it stops on an error.
    fn drop(&mut self) {
        self.kill9();
    }
}

/// How long a replica may drain after SIGTERM before it is SIGKILLed (the Helm chart's
/// `terminationGracePeriodSeconds` is 60).
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// Waits up to a minute for `url` to answer 2xx.
pub async fn wait_http(url: &str) -> anyhow::Result<()> {
    for _ in 0..600 {
        if reqwest::get(url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("no answer from {url}")
}

/// Which ports a [`Deployment`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ports {
    /// The topology's loopback ports (`./dev cluster`).
    Topology,
    /// Free ports, so that a run never collides with a running `./dev cluster` (tests).
    Free,
}

/// How to start a [`Deployment`].
pub struct DeployOptions {
    /// Which ports.
    pub ports: Ports,
    /// The database every service uses (each migrates its own schema).
    pub database_url: String,
    /// Directory of the service binaries.
    pub bin_dir: PathBuf,
    /// Directory for the processes' logs (and the NATS stores under `nats/`).
    pub logs: PathBuf,
    /// Extra variables for every service replica (tuning for tests).
    pub extra_env: Vec<(String, String)>,
    /// Admin token of the gateways.
    pub admin_token: String,
}

/// The sandbox's Sage endpoints and credentials, as the gateway is given them (the API base
/// first).
pub fn sage_env(sandbox: &Sandbox) -> Vec<(String, String)> {
    vec![
        ("SAGE_API_BASE_URL".into(), sandbox.api_base_url()),
        ("SAGE_AUTHORIZE_URL".into(), sandbox.authorize_url()),
        ("SAGE_TOKEN_URL".into(), sandbox.token_url()),
        ("SAGE_REVOKE_URL".into(), sandbox.revoke_url()),
        ("SAGE_CLIENT_ID".into(), "ledger-dev".into()),
        ("SAGE_CLIENT_SECRET".into(), "ledger-dev-secret".into()),
    ]
}

/// Where one replica listens.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaPorts {
    /// HTTP (gateway only).
    pub http: Option<u16>,
    /// Metrics and health.
    pub metrics: u16,
}

/// The NATS side of a service's environment.
#[derive(Debug, Clone, Default)]
pub struct NatsAccess {
    /// Each service user's `LEDGER_NATS_URL` (every node, with its credentials).
    pub service_urls: BTreeMap<String, String>,
    /// The gateway's callout issuer seed.
    pub issuer_seed: String,
    /// The gateway's callout curve key seed.
    pub xkey_seed: String,
    /// URLs handed to stores.
    pub store_urls: Vec<String>,
}

impl NatsAccess {
    /// What the services of `cluster` connect with.
    pub fn of(cluster: &TestCluster) -> NatsAccess {
        NatsAccess {
            service_urls: SERVICES
                .iter()
                .map(|s| (s.to_string(), cluster.service_url(s)))
                .collect(),
            issuer_seed: cluster.callout_issuer_seed(),
            xkey_seed: cluster.callout_xkey_seed(),
            store_urls: cluster.addresses(),
        }
    }
}

/// What [`service_env`] needs besides the topology.
pub struct EnvContext<'a> {
    /// The NATS cluster's access.
    pub nats: &'a NatsAccess,
    /// The topology.
    pub topology: &'a Topology,
    /// The database URL.
    pub database_url: &'a str,
    /// Sage endpoints and credentials.
    pub sage: Vec<(String, String)>,
    /// Public URL of the gateways (the first replica stands in for the load balancer).
    pub public_url: &'a str,
    /// Admin token.
    pub admin_token: &'a str,
}

/// The environment of replica `ports` of `service`: what `./dev cluster` and the cluster
/// suite run it with. Every variable of the topology's `env.<service>` is set.
pub fn service_env(ctx: &EnvContext, service: &str, ports: ReplicaPorts) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        (
            "LEDGER_NATS_URL".into(),
            ctx.nats
                .service_urls
                .get(service)
                .cloned()
                .unwrap_or_default(),
        ),
        ("LEDGER_DATABASE_URL".into(), ctx.database_url.to_string()),
        (
            "LEDGER_METRICS_ADDR".into(),
            format!("127.0.0.1:{}", ports.metrics),
        ),
        ("SAGE_API_BASE_URL".into(), ctx.sage[0].1.clone()),
    ];
    if service == "gateway" {
        env.extend(ctx.sage.iter().skip(1).cloned());
        env.extend([
            (
                "LEDGER_HTTP_ADDR".to_string(),
                format!("127.0.0.1:{}", ports.http.expect("gateway HTTP port")),
            ),
            ("LEDGER_PUBLIC_URL".into(), ctx.public_url.to_string()),
            (
                "LEDGER_STREAM_REPLICAS".into(),
                ctx.topology.streams.replicas.to_string(),
            ),
            // A fixed development key; production keys come from a secret store.
            ("LEDGER_TOKEN_KEY".into(), "a1".repeat(32)),
            ("LEDGER_ADMIN_TOKEN".into(), ctx.admin_token.to_string()),
            (
                "LEDGER_NATS_CALLOUT_ISSUER_SEED".into(),
                ctx.nats.issuer_seed.clone(),
            ),
            (
                "LEDGER_NATS_CALLOUT_XKEY_SEED".into(),
                ctx.nats.xkey_seed.clone(),
            ),
            (
                "LEDGER_NATS_PUBLIC_URLS".into(),
                ctx.nats.store_urls.join(","),
            ),
            // Development only: loopback stores get plain nats:// URLs.
            ("LEDGER_NATS_ALLOW_PLAIN".into(), "true".into()),
        ]);
    }
    env
}

/// The engine as a cluster: NATS nodes, the sandbox and every service replica.
pub struct Deployment {
    /// The NATS cluster.
    pub cluster: TestCluster,
    /// The Sage sandbox.
    pub sandbox: Sandbox,
    /// Every replica of every service, gateways first.
    pub replicas: Vec<Proc>,
    /// Base URL of each gateway replica.
    pub gateway_urls: Vec<String>,
    /// The topology it runs.
    pub topology: Topology,
    /// Admin token of the gateways.
    pub admin_token: String,
    next_replica: BTreeMap<String, usize>,
    options: DeployOptions,
    env_of: BTreeMap<String, Vec<(String, String)>>,
}

impl Deployment {
    /// Starts the topology under the workspace root: the NATS cluster, the sandbox, then each
    /// service's replicas one after another (each healthy before the next).
    pub async fn start(topology: Topology, options: DeployOptions) -> anyhow::Result<Deployment> {
        std::fs::create_dir_all(&options.logs)?;
        let node_ports = match options.ports {
            Ports::Topology => topology.node_ports(),
            Ports::Free => (0..topology.nats.nodes.len())
                .map(|_| NodePorts::free())
                .collect(),
        };
        let store = options.logs.join("nats");
        if options.ports == Ports::Free {
            // A fresh cluster each run.
            let _ = std::fs::remove_dir_all(&store);
        }
        let cluster = TestCluster::start(
            &topology.cluster_name,
            &node_ports,
            Some(store),
            Some(options.logs.clone()),
        )
        .await?;
        let sandbox_port = match options.ports {
            Ports::Topology => topology.sandbox.port,
            Ports::Free => 0,
        };
        let sandbox = Sandbox::start(sage_sandbox::SandboxConfig {
            bind: std::net::SocketAddr::from(([127, 0, 0, 1], sandbox_port)),
            ..Default::default()
        })
        .await
        .context("start the Sage sandbox")?;

        let mut ports: BTreeMap<String, Vec<ReplicaPorts>> = BTreeMap::new();
        for name in SERVICES {
            let s = topology.service(name);
            let list = (0..s.replicas)
                .map(|r| match options.ports {
                    Ports::Topology => ReplicaPorts {
                        http: s.http_ports.get(r).copied(),
                        metrics: s.metrics_ports[r],
                    },
                    Ports::Free => ReplicaPorts {
                        http: (name == "gateway").then(ledger_testkit::free_port),
                        metrics: ledger_testkit::free_port(),
                    },
                })
                .collect();
            ports.insert(name.to_string(), list);
        }
        let gateway_urls: Vec<String> = ports["gateway"]
            .iter()
            .map(|p| format!("http://127.0.0.1:{}", p.http.expect("gateway port")))
            .collect();
        let admin_token = options.admin_token.clone();
        let mut deployment = Deployment {
            cluster,
            sandbox,
            replicas: Vec::new(),
            gateway_urls,
            topology,
            admin_token,
            next_replica: BTreeMap::new(),
            options,
            env_of: BTreeMap::new(),
        };
        for name in SERVICES {
            for p in ports[name].clone() {
                let proc = deployment.replica(name, p);
                deployment.replicas.push(proc);
                let proc = deployment.replicas.last_mut().expect("just pushed");
                proc.spawn()?;
                proc.wait_healthy().await?;
            }
        }
        Ok(deployment)
    }

    /// A new (not yet started) replica of `service` listening on `ports`.
    fn replica(&mut self, service: &str, ports: ReplicaPorts) -> Proc {
        let number = self.next_replica.entry(service.to_string()).or_default();
        let replica = *number;
        *number += 1;
        let nats = NatsAccess::of(&self.cluster);
        let ctx = EnvContext {
            nats: &nats,
            topology: &self.topology,
            database_url: &self.options.database_url,
            sage: sage_env(&self.sandbox),
            public_url: &self.gateway_urls[0],
            admin_token: &self.admin_token,
        };
        let mut env = service_env(&ctx, service, ports);
        env.extend(self.options.extra_env.iter().cloned());
        self.env_of.insert(service.to_string(), env.clone());
        let health = match ports.http {
            Some(http) => format!("http://127.0.0.1:{http}/healthz"),
            None => format!("http://127.0.0.1:{}/healthz", ports.metrics),
        };
        Proc::new(
            service,
            replica,
            self.options.bin_dir.join(service),
            env,
            self.options
                .logs
                .join(format!("{service}-{}.log", replica + 1)),
            health,
        )
    }

    /// SIGKILLs replica `index` of [`Deployment::replicas`] and starts another replica of
    /// the same service in its place (new process, new metrics port; a gateway keeps its HTTP
    /// port, which the load balancer knows). Returns once the new one is healthy.
    pub async fn replace_replica(&mut self, index: usize) -> anyhow::Result<()> {
        let service = self.replicas[index].service.clone();
        let http = self.replicas[index]
            .env
            .iter()
            .find(|(k, _)| k == "LEDGER_HTTP_ADDR")
            .and_then(|(_, v)| v.rsplit(':').next()?.parse().ok());
        self.replicas[index].kill9();
        let ports = ReplicaPorts {
            http,
            metrics: ledger_testkit::free_port(),
        };
        let mut fresh = self.replica(&service, ports);
        fresh.spawn()?;
        fresh.wait_healthy().await?;
        self.replicas[index] = fresh;
        Ok(())
    }

    /// Stops replica `index` gracefully (SIGTERM, drain), starts it again with the same
    /// configuration and waits until it is healthy: one step of a rolling restart.
    /// Returns whether it stopped within [`STOP_GRACE`].
    pub async fn restart_replica(&mut self, index: usize) -> anyhow::Result<bool> {
        let proc = &mut self.replicas[index];
        let graceful = proc.stop();
        proc.spawn()?;
        proc.wait_healthy().await?;
        Ok(graceful)
    }

    /// Starts replicas that exited on their own; returns how many.
    pub fn revive(&mut self) -> anyhow::Result<usize> {
        let mut revived = 0;
        for proc in self.replicas.iter_mut() {
            if proc.exited()? {
                proc.spawn()?;
                revived += 1;
            }
        }
        Ok(revived)
    }

    /// The environment the last replica of `service` was started with.
    pub fn env_of(&self, service: &str) -> &[(String, String)] {
        self.env_of.get(service).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Stops every replica gracefully, then the NATS nodes (when the value is dropped);
    /// returns how many replicas had to be SIGKILLed after [`STOP_GRACE`].
    pub fn stop(mut self) -> usize {
        self.replicas
            .iter_mut()
            .rev()
            .map(|proc| usize::from(!proc.stop()))
            .sum()
    }
}
