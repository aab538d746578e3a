//! The operator's deployment files describe the topology `./dev cluster` runs.
//!
//! `deploy/cluster/topology.yaml` is the one source of truth: `ledger-cluster` (`./dev
//! cluster`) and `ledger-cluster-chaos` start it; this test reads the compose file for one box
//! (`deploy/compose/docker-compose.yml`), the official NATS chart's values
//! (`deploy/helm/nats-values.yaml`) and Ledger's chart (`deploy/helm/ledger/values.yaml`) and
//! fails where any of them differs from it: node count and names, cluster name, JetStream, the
//! production NATS configuration and the variables it reads, ports, stream replicas, service
//! replicas, each service's variables and NATS URL list. No container runs.

use std::collections::BTreeSet;
use std::path::Path;

use ledger_stack::cluster::{
    service_env, EnvContext, NatsAccess, ReplicaPorts, Topology, SERVICES,
};
use serde_norway::Value;

fn yaml(root: &Path, path: &str) -> Value {
    let text = std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_mapping()
        .unwrap_or_else(|| panic!("not a mapping: {v:?}"))
        .keys()
        .map(s)
        .collect()
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// The `$VARIABLES` the production NATS configuration reads from its environment.
fn nats_conf_variables(root: &Path, config: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(root.join(config)).unwrap();
    let mut vars = BTreeSet::new();
    for line in text.lines() {
        let code = line.split('#').next().unwrap_or_default();
        let mut rest = code;
        while let Some(i) = rest.find("$LEDGER_") {
            let tail = &rest[i + 1..];
            let end = tail
                .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
                .unwrap_or(tail.len());
            vars.insert(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    vars
}

/// Checks one service's `LEDGER_NATS_URL`: every node once, logging in as the service.
fn check_nats_url(file: &str, service: &str, url: &str, hosts: &[String]) {
    let servers = ledger_runtime::bus::parse_servers(url)
        .unwrap_or_else(|e| panic!("{file}: {service}: {e}"));
    let (user, _) = servers
        .credentials
        .unwrap_or_else(|| panic!("{file}: {service}: LEDGER_NATS_URL has no login"));
    assert_eq!(user, service, "{file}: {service} logs in as its own user");
    let found: Vec<String> = servers
        .addresses
        .iter()
        .map(|a| {
            a.trim_start_matches("nats://")
                .trim_end_matches('/')
                .to_string()
        })
        .collect();
    assert_eq!(
        found, hosts,
        "{file}: {service}: LEDGER_NATS_URL lists every node"
    );
}

#[test]
fn compose_and_helm_describe_the_topology_of_dev_cluster() {
    let root = ledger_testkit::workspace_root();
    let topology = Topology::load(&root).expect("topology");
    let nodes = &topology.nats.nodes;
    let server_vars = nats_conf_variables(&root, &topology.nats.config);
    assert_eq!(
        server_vars.len(),
        7,
        "issuer, xkey and five passwords: {server_vars:?}"
    );

    // --- compose: one box ---
    let file = "deploy/compose/docker-compose.yml";
    let compose = yaml(&root, file);
    let services = &compose["services"];
    let nats_services: Vec<String> = keys(services)
        .into_iter()
        .filter(|k| k.starts_with("nats-"))
        .collect();
    assert_eq!(
        nats_services.len(),
        nodes.len(),
        "{file}: one service per NATS node"
    );
    let compose_hosts: Vec<String> = nats_services.iter().map(|n| format!("{n}:4222")).collect();
    for (svc, node) in nats_services.iter().zip(nodes) {
        let c = &services[svc.as_str()];
        let command: Vec<String> = c["command"].as_sequence().unwrap().iter().map(s).collect();
        let arg = |flag: &str| {
            let i = command
                .iter()
                .position(|a| a == flag)
                .unwrap_or_else(|| panic!("{file}: {svc}: no {flag}"));
            command[i + 1].clone()
        };
        assert_eq!(arg("-n"), node.name, "{file}: {svc}: server name");
        assert_eq!(
            arg("--cluster_name"),
            topology.cluster_name,
            "{file}: {svc}"
        );
        assert!(
            command.contains(&"-js".to_string()),
            "{file}: {svc}: JetStream"
        );
        let config = arg("-c");
        let mounts: Vec<String> = c["volumes"].as_sequence().unwrap().iter().map(s).collect();
        let mount = mounts
            .iter()
            .find(|m| m.split(':').nth(1) == Some(config.as_str()))
            .unwrap_or_else(|| panic!("{file}: {svc}: {config} is not mounted"));
        let source = root
            .join("deploy/compose")
            .join(mount.split(':').next().unwrap());
        assert_eq!(
            source.canonicalize().unwrap(),
            root.join(&topology.nats.config).canonicalize().unwrap(),
            "{file}: {svc} runs the production configuration"
        );
        let routes: BTreeSet<String> = arg("--routes").split(',').map(str::to_string).collect();
        let others: BTreeSet<String> = nats_services
            .iter()
            .filter(|o| *o != svc)
            .map(|o| format!("nats://{o}:6222"))
            .collect();
        assert_eq!(routes, others, "{file}: {svc} routes to every other node");
        let ports: BTreeSet<String> = c["ports"].as_sequence().unwrap().iter().map(s).collect();
        assert!(
            ports.contains(&format!("{}:4222", node.client_port)),
            "{file}: {svc}: client port {} ({ports:?})",
            node.client_port
        );
        assert!(
            ports.contains(&format!("{}:8222", node.monitor_port)),
            "{file}: {svc}: monitor port"
        );
        assert_eq!(
            keys(&c["environment"]),
            server_vars,
            "{file}: {svc} gets every variable the configuration reads"
        );
    }
    assert_eq!(
        s(&services["postgres"]["ports"][0]),
        format!("{}:5432", topology.postgres.port),
        "{file}: PostgreSQL port"
    );
    for name in SERVICES {
        let c = &services[name];
        let want = topology.service(name);
        assert_eq!(
            c["deploy"]["replicas"].as_u64(),
            Some(want.replicas as u64),
            "{file}: {name} replicas"
        );
        let env = &c["environment"];
        let have = keys(env);
        for var in &topology.env[name] {
            assert!(have.contains(var), "{file}: {name} does not set {var}");
        }
        check_nats_url(file, name, &s(&env["LEDGER_NATS_URL"]), &compose_hosts);
        assert_eq!(
            port_of(&s(&env["LEDGER_METRICS_ADDR"])),
            topology.metrics_container_port,
            "{file}: {name} metrics port"
        );
    }
    let gateway = &services["gateway"];
    assert_eq!(
        s(&gateway["environment"]["LEDGER_STREAM_REPLICAS"]),
        topology.streams.replicas.to_string(),
        "{file}: stream replicas"
    );
    assert_eq!(
        port_of(&s(&gateway["environment"]["LEDGER_HTTP_ADDR"])),
        topology.http_container_port,
        "{file}: gateway HTTP port"
    );
    let http = &topology.service("gateway").http_ports;
    assert_eq!(
        s(&gateway["ports"][0]),
        format!(
            "{}-{}:{}",
            http[0],
            http[http.len() - 1],
            topology.http_container_port
        ),
        "{file}: one host port per gateway replica"
    );

    // --- Helm: the official NATS chart ---
    let file = "deploy/helm/nats-values.yaml";
    let nats = yaml(&root, file);
    let config = &nats["config"];
    assert_eq!(config["cluster"]["enabled"].as_bool(), Some(true), "{file}");
    assert_eq!(
        config["cluster"]["replicas"].as_u64(),
        Some(nodes.len() as u64),
        "{file}: nodes"
    );
    assert_eq!(
        s(&config["cluster"]["merge"]["name"]),
        topology.cluster_name,
        "{file}: cluster name"
    );
    assert_eq!(
        config["jetstream"]["enabled"].as_bool(),
        Some(true),
        "{file}"
    );
    let include = s(&config["merge"]["$include"]);
    let conf_name = Path::new(&topology.nats.config).file_name().unwrap();
    assert_eq!(
        Path::new(&include).file_name().unwrap(),
        conf_name,
        "{file}: includes the production configuration"
    );
    let mount = s(&nats["container"]["merge"]["volumeMounts"][0]["mountPath"]);
    assert_eq!(
        format!("{mount}/{}", conf_name.to_string_lossy()),
        format!("/etc/nats-config/{include}"),
        "{file}: the include is mounted where the chart's config reads it"
    );
    assert_eq!(
        keys(&nats["container"]["env"]),
        server_vars,
        "{file}: every variable the configuration reads"
    );

    // --- Helm: Ledger's chart ---
    let file = "deploy/helm/ledger/values.yaml";
    let ledger = yaml(&root, file);
    assert_eq!(
        keys(&ledger["services"]),
        SERVICES.iter().map(|s| s.to_string()).collect(),
        "{file}: services"
    );
    assert_eq!(
        ledger["httpPort"].as_u64(),
        Some(topology.http_container_port as u64)
    );
    assert_eq!(
        ledger["metricsPort"].as_u64(),
        Some(topology.metrics_container_port as u64)
    );
    let helm_hosts: Vec<String> = (0..nodes.len())
        .map(|i| format!("nats-{i}.nats-headless:4222"))
        .collect();
    for name in SERVICES {
        let svc = &ledger["services"][name];
        assert_eq!(
            svc["replicas"].as_u64(),
            Some(topology.service(name).replicas as u64),
            "{file}: {name} replicas"
        );
        let env = &svc["env"];
        let have = keys(env);
        for var in &topology.env[name] {
            assert!(have.contains(var), "{file}: {name} does not set {var}");
        }
        let password = s(&env["LEDGER_NATS_PASSWORD"]["secret"]);
        assert_eq!(
            password,
            format!("LEDGER_NATS_{}_PASSWORD", name.to_ascii_uppercase()),
            "{file}: {name} logs in with its own password"
        );
        let url = s(&env["LEDGER_NATS_URL"]["value"]).replace("$(LEDGER_NATS_PASSWORD)", "x");
        check_nats_url(file, name, &url, &helm_hosts);
        assert_eq!(
            port_of(&s(&env["LEDGER_METRICS_ADDR"]["value"])),
            topology.metrics_container_port
        );
    }
    let genv = &ledger["services"]["gateway"]["env"];
    assert_eq!(
        s(&genv["LEDGER_STREAM_REPLICAS"]["value"]),
        topology.streams.replicas.to_string(),
        "{file}: stream replicas"
    );
    assert_eq!(
        port_of(&s(&genv["LEDGER_HTTP_ADDR"]["value"])),
        topology.http_container_port
    );

    // --- ./dev cluster: what the launcher sets ---
    let access = NatsAccess::default();
    let ctx = EnvContext {
        nats: &access,
        topology: &topology,
        database_url: "postgres://x",
        sage: vec![("SAGE_API_BASE_URL".into(), "http://x".into())],
        public_url: "http://x",
        admin_token: "x",
    };
    for name in SERVICES {
        let env = service_env(
            &ctx,
            name,
            ReplicaPorts {
                http: Some(1),
                metrics: 2,
            },
        );
        let have: BTreeSet<String> = env.iter().map(|(k, _)| k.clone()).collect();
        for var in &topology.env[name] {
            // The sandbox's client credentials come with the Sage endpoints.
            if var.starts_with("SAGE_CLIENT") {
                continue;
            }
            assert!(
                have.contains(var),
                "ledger-cluster: {name} does not set {var}"
            );
        }
        if name == "gateway" {
            let replicas = env
                .iter()
                .find(|(k, _)| k == "LEDGER_STREAM_REPLICAS")
                .map(|(_, v)| v.clone());
            assert_eq!(replicas, Some(topology.streams.replicas.to_string()));
        }
    }
}
