//! `ledger-cluster-chaos`: the engine as a cluster, faulted under a steady load, with a verdict.
//!
//! Starts the topology of `deploy/cluster/topology.yaml` on free ports (three nats-server
//! nodes as one JetStream cluster with the production configuration, streams with three
//! replicas, two replicas of every service as separate processes, the Sage sandbox), onboards
//! the merchants, then publishes a steady mix (invoices, payments, credit memos, customer
//! updates) for all of them while, in turn:
//!
//! 1. `node_kill`: the NATS node leading the events stream is SIGKILLed, then restarted;
//! 2. `leader_stepdown`: the stream leader is moved (`$JS.API.STREAM.LEADER.STEPDOWN`);
//! 3. `replica_kill`: one replica of each service is SIGKILLed and another started;
//! 4. `rolling_restart`: every replica of every service is stopped and started, one at a time.
//!
//! The largest publish→Sage stall of each fault is the longest time, from the fault's start to
//! the next one's, during which documents were waiting and none landed. After the load the
//! books are compared with what Magento sent (`ledger_stack::books`): exactly one Sage
//! document per Magento document, cent-exact, nothing lost, payments and credit notes tied to
//! their own invoice. The last line is the verdict:
//!
//! `cluster: events=N documents=N duplicates=D lost=L mismatched=M out_of_order=O faults=4 stall_ms=node_kill:A,leader_stepdown:B,replica_kill:C,rolling_restart:E`
//!
//! It exits non-zero unless D, L, M and O are 0. Sized by `CLUSTER_INVOICES` (default 4000),
//! `CLUSTER_MERCHANTS` (200), `CLUSTER_PHASE_SECS` (seconds each fault and its recovery get,
//! 20), `CLUSTER_SETTLE_SECS` (600), `CLUSTER_DATABASE` (`ledger_cluster_chaos`), or the
//! matching options (`--help`). Run it through
//! `./dev cluster-chaos` (or `just cluster-chaos`), which builds the service binaries.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use ledger_stack::books::{Expected, ExpectedCredit};
use ledger_stack::cluster::{DeployOptions, Deployment, Ports, Topology, SERVICES};
use ledger_stack::events::{Draft, Refund, CUSTOMER_SAVED};
use sage_sandbox::Inspector;
use serde_json::{json, Value};

/// The run's size; each option also reads the environment variable of the same name.
#[derive(Debug, clap::Parser)]
#[command(
    name = "ledger-cluster-chaos",
    about = "Cluster faults under a steady load, with a verdict"
)]
struct Args {
    /// Invoices published (every 3rd also paid, every 5th unpaid one credited).
    #[arg(long, env = "CLUSTER_INVOICES", default_value_t = 4000)]
    invoices: usize,
    /// Merchants the documents are spread over.
    #[arg(long, env = "CLUSTER_MERCHANTS", default_value_t = 200)]
    merchants: usize,
    /// Seconds each fault and its recovery get; the load is paced to last through all four.
    #[arg(long, env = "CLUSTER_PHASE_SECS", default_value_t = 20)]
    phase_secs: u64,
    /// Seconds the engine gets after the load to land everything.
    #[arg(long, env = "CLUSTER_SETTLE_SECS", default_value_t = 600)]
    settle_secs: u64,
    /// Administrative URL of the PostgreSQL cluster the run's database is made on.
    #[arg(
        long,
        env = "LEDGER_TEST_PG_URL",
        default_value = "postgres://postgres@127.0.0.1:54329/postgres"
    )]
    pg_admin_url: String,
    /// Database the run makes (dropped first if it exists) on that cluster; another name lets
    /// two runs share one PostgreSQL.
    #[arg(long, env = "CLUSTER_DATABASE", default_value = "ledger_cluster_chaos")]
    database: String,
}

/// The faults, in the order they are applied.
const FAULTS: [&str; 4] = [
    "node_kill",
    "leader_stepdown",
    "replica_kill",
    "rolling_restart",
];

/// Documents (invoices, payments, credit notes) Sage has taken so far: successful POSTs less
/// idempotent replays (a retried POST answered with the document made before).
fn landed(sage: &Inspector) -> u64 {
    let stats = sage.stats();
    let posted: u64 = [
        "/v3.1/sales_invoices",
        "/v3.1/contact_payments",
        "/v3.1/sales_credit_notes",
    ]
    .iter()
    .map(|path| {
        stats
            .calls
            .iter()
            .filter(|c| {
                c.method.eq_ignore_ascii_case("POST")
                    && c.path == *path
                    && (200..300).contains(&c.status)
            })
            .map(|c| c.count)
            .sum::<u64>()
    })
    .sum();
    let replayed: u64 = stats
        .idempotent_replays
        .iter()
        .filter(|r| {
            ["sales_invoice", "contact_payment", "sales_credit_note"].contains(&r.resource.as_str())
        })
        .map(|r| r.count)
        .sum();
    posted.saturating_sub(replayed)
}

/// A `customer.saved` for the customer the invoice templates bill (318), renamed `k`.
fn customer_saved(merchant: &str, k: usize) -> Draft {
    let mut d = Draft::from_template(CUSTOMER_SAVED, merchant, None);
    let c = &mut d.value_mut()["payload"]["customer"];
    c["id"] = json!(318);
    c["email"] = json!("eleanor.pryce@example.co.uk");
    c["firstname"] = json!("Eleanor");
    c["lastname"] = json!(format!("Pryce {k}"));
    for a in c["addresses"].as_array_mut().into_iter().flatten() {
        a["customer_id"] = json!(318);
    }
    d
}

/// One event of the outbox: subject, event id, body, whether it is a Sage document.
type Outgoing = (String, String, Vec<u8>, bool);

/// The Magento side: every merchant's documents in the order Magento publishes them.
fn outbox(invoices: usize, merchants: usize) -> anyhow::Result<(Vec<Expected>, Vec<Outgoing>)> {
    let mut expected = Vec::with_capacity(invoices);
    let mut out = Vec::new();
    let mut push = |draft: &Draft, document: bool| -> anyhow::Result<()> {
        let event = draft.build();
        let envelope = ledger_events::parse(&event.body)?;
        out.push((
            envelope.subject(),
            event.event_id.to_string(),
            event.body,
            document,
        ));
        Ok(())
    };
    for n in 0..invoices {
        let m = n % merchants;
        let merchant = format!("cluster-{m}");
        let paid = n % 3 == 0;
        let credited = !paid && n % 5 == 1;
        let mut invoice = Draft::invoice(&merchant, n as u64);
        if credited {
            // Paid later by purchase order, refunded offline in part.
            invoice = invoice.payment_method("purchaseorder");
        }
        push(&invoice, true)?;
        let mut credit = None;
        if paid {
            push(&invoice.paid(), true)?;
        }
        if credited {
            let memo = invoice.credit_memo(n as u64, &Refund::lines(&[(0, 1)]));
            push(&memo, true)?;
            credit = Some(ExpectedCredit {
                reference: memo.increment_id(),
                total: memo.grand_total(),
            });
        }
        // Now and then the customer edits their account.
        if (n / merchants) % 7 == 1 {
            push(&customer_saved(&merchant, n / merchants), false)?;
        }
        expected.push(Expected {
            merchant: m,
            reference: invoice.increment_id(),
            total: invoice.grand_total(),
            paid,
            credit,
        });
    }
    Ok((expected, out))
}

/// Index of the node leading the events stream, asked again for up to 30 s while the cluster
/// elects one (right after a node came back, JetStream requests time out for a while).
async fn stream_leader(
    js: &async_nats::jetstream::Context,
    names: &[String],
) -> anyhow::Result<usize> {
    let started = Instant::now();
    loop {
        match leader_once(js, names).await {
            Ok(i) => return Ok(i),
            Err(e) if started.elapsed() > Duration::from_secs(30) => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

async fn leader_once(
    js: &async_nats::jetstream::Context,
    names: &[String],
) -> anyhow::Result<usize> {
    let mut stream = js.get_stream(ledger_runtime::bus::EVENTS_STREAM).await?;
    let info = stream.info().await?;
    let leader = info
        .cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .context("the events stream has no leader")?;
    names
        .iter()
        .position(|n| *n == leader)
        .with_context(|| format!("stream leader {leader} is not a node of the cluster"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let merchants = args.merchants.max(1);
    let phase = Duration::from_secs(args.phase_secs.max(2));
    let root = ledger_testkit::workspace_root();
    let topology = Topology::load(&root)?;
    let bin_dir = std::env::current_exe()?
        .parent()
        .context("binary dir")?
        .to_path_buf();
    println!(
        "cluster: {} invoices for {merchants} merchants; {} NATS nodes, stream replicas {}, service replicas {}",
        args.invoices,
        topology.nats.nodes.len(),
        topology.streams.replicas,
        SERVICES
            .iter()
            .map(|s| format!("{s}={}", topology.service(s).replicas))
            .collect::<Vec<_>>()
            .join(",")
    );

    let db_name = args.database.as_str();
    if db_name.is_empty()
        || !db_name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        anyhow::bail!("CLUSTER_DATABASE must be lowercase letters, digits and _: {db_name:?}");
    }
    {
        let admin = sqlx::PgPool::connect(&args.pg_admin_url).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
            .execute(&admin)
            .await?;
        sqlx::query(&format!("CREATE DATABASE {db_name}"))
            .execute(&admin)
            .await?;
        admin.close().await;
    }
    let admin_token = "cluster-admin-token-for-the-cluster-run".to_string();
    let started = Instant::now();
    let mut deployment = Deployment::start(
        topology,
        DeployOptions {
            ports: Ports::Free,
            database_url: ledger_testkit::replace_db_name(&args.pg_admin_url, db_name),
            bin_dir,
            logs: root.join(".stack/logs/cluster-chaos"),
            extra_env: vec![
                ("LEDGER_ACK_WAIT_SECS".into(), "5".into()),
                ("RUST_LOG".into(), "warn".into()),
                // One address and one key onboard every merchant: not what the limits are for.
                ("LEDGER_LIMIT_IP_PER_SECOND".into(), "100000".into()),
                ("LEDGER_LIMIT_IP_BURST".into(), "100000".into()),
                ("LEDGER_LIMIT_KEY_PER_SECOND".into(), "100000".into()),
                ("LEDGER_LIMIT_KEY_BURST".into(), "100000".into()),
            ],
            admin_token: admin_token.clone(),
        },
    )
    .await?;
    println!(
        "cluster: started in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let gateway = deployment.gateway_urls[0].clone();
    let businesses: Vec<String> = {
        let sandbox = &deployment.sandbox;
        let results: Vec<anyhow::Result<String>> = futures::stream::iter(0..merchants)
            .map(|m| {
                let (http, gateway, admin) = (&http, &gateway, &admin_token);
                async move {
                    ledger_stack::onboard_over_http(
                        http,
                        gateway,
                        admin,
                        sandbox,
                        &format!("cluster-{m}"),
                    )
                    .await
                }
            })
            .buffered(8)
            .collect()
            .await;
        results.into_iter().collect::<anyhow::Result<_>>()?
    };
    println!(
        "cluster: {merchants} merchants onboarded at {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let (expected, outbox) = outbox(args.invoices, merchants)?;
    let total_events = outbox.len();
    // Paced to last through every fault, plus a phase of calm at the start.
    let pace = phase.mul_f64((FAULTS.len() + 1) as f64) / total_events.max(1) as u32;
    let published_docs = Arc::new(AtomicU64::new(0));
    let publishing_done = Arc::new(AtomicBool::new(false));
    let publisher = {
        let url = deployment.cluster.url();
        let published_docs = published_docs.clone();
        let done = publishing_done.clone();
        tokio::spawn(async move {
            let client = ledger_runtime::bus::connect(&url, "cluster-publisher")
                .await
                .expect("connect publisher");
            let js = async_nats::jetstream::new(client);
            let begun = Instant::now();
            for (i, (subject, id, body, document)) in outbox.into_iter().enumerate() {
                if let Some(wait) = (pace * i as u32).checked_sub(begun.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
                // Retried until JetStream acknowledges it, with the same id, as the
                // module's outbox does.
                loop {
                    let mut headers = async_nats::HeaderMap::new();
                    headers.insert("Nats-Msg-Id", id.as_str());
                    let attempt = async {
                        js.publish_with_headers(subject.clone(), headers, body.clone().into())
                            .await?
                            .await
                            .map_err(|e| anyhow::anyhow!("{e}"))
                    };
                    match tokio::time::timeout(Duration::from_secs(5), attempt).await {
                        Ok(Ok(_)) => break,
                        _ => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
                if document {
                    published_docs.fetch_add(1, Ordering::SeqCst);
                }
            }
            done.store(true, Ordering::SeqCst);
        })
    };

    // The stall watcher: per fault, the longest time documents waited while none landed.
    let current_fault = Arc::new(AtomicUsize::new(usize::MAX));
    let stalls = Arc::new(Mutex::new([Duration::ZERO; FAULTS.len()]));
    let watching = Arc::new(AtomicBool::new(true));
    let baseline = landed(&deployment.sandbox.inspect());
    let watcher = {
        let sandbox = deployment.sandbox.inspect();
        let (current_fault, stalls, watching, published_docs) = (
            current_fault.clone(),
            stalls.clone(),
            watching.clone(),
            published_docs.clone(),
        );
        tokio::spawn(async move {
            let mut last = landed(&sandbox);
            let mut last_progress = Instant::now();
            let mut fault_seen = usize::MAX;
            while watching.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let fault = current_fault.load(Ordering::SeqCst);
                if fault != fault_seen {
                    // A stall that began before this fault counts from the fault's start.
                    fault_seen = fault;
                    last_progress = Instant::now();
                }
                let now = landed(&sandbox);
                let waiting = published_docs.load(Ordering::SeqCst) > now - baseline;
                if now > last || !waiting {
                    last = now;
                    last_progress = Instant::now();
                    continue;
                }
                if fault < FAULTS.len() {
                    let mut s = stalls.lock().expect("stalls");
                    s[fault] = s[fault].max(last_progress.elapsed());
                }
            }
        })
    };

    // A phase of calm, then the faults in turn.
    let mut unexpected_exits = 0;
    tokio::time::sleep(phase).await;
    let ops = deployment.cluster.connect().await?;
    let js = async_nats::jetstream::new(ops.clone());
    let names = deployment.cluster.node_names();
    for (f, fault) in FAULTS.iter().enumerate() {
        let fault_started = Instant::now();
        current_fault.store(f, Ordering::SeqCst);
        unexpected_exits += deployment.revive()?;
        match *fault {
            "node_kill" => {
                let victim = stream_leader(&js, &names).await?;
                println!(
                    "cluster: node_kill: SIGKILL {} (stream leader)",
                    names[victim]
                );
                deployment.cluster.kill_node(victim);
                tokio::time::sleep(phase / 2).await;
                deployment.cluster.start_node(victim).await?;
                println!("cluster: node_kill: {} restarted", names[victim]);
            }
            "leader_stepdown" => {
                let before = stream_leader(&js, &names).await?;
                let subject = format!(
                    "$JS.API.STREAM.LEADER.STEPDOWN.{}",
                    ledger_runtime::bus::EVENTS_STREAM
                );
                let mut answer = Value::Null;
                for _ in 0..10 {
                    if let Ok(reply) = ops.request(subject.clone(), "".into()).await {
                        answer = serde_json::from_slice(&reply.payload)?;
                        break;
                    }
                }
                anyhow::ensure!(
                    answer["success"] == true,
                    "stream leader stepdown refused: {answer}"
                );
                let mut after = before;
                for _ in 0..100 {
                    if let Ok(now) = leader_once(&js, &names).await {
                        if now != before {
                            after = now;
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                anyhow::ensure!(after != before, "the stream leader did not move");
                println!(
                    "cluster: leader_stepdown: stream leader {} -> {}",
                    names[before], names[after]
                );
            }
            "replica_kill" => {
                for service in SERVICES {
                    let index = deployment
                        .replicas
                        .iter()
                        .position(|p| p.service == service)
                        .context("a replica of every service")?;
                    deployment.replace_replica(index).await?;
                    println!("cluster: replica_kill: {service} replica SIGKILLed, another started");
                }
            }
            "rolling_restart" => {
                let mut forced = Vec::new();
                for index in 0..deployment.replicas.len() {
                    let proc = &deployment.replicas[index];
                    let name = format!("{}-{}", proc.service, proc.replica + 1);
                    if !deployment.restart_replica(index).await? {
                        forced.push(name);
                    }
                }
                println!(
                    "cluster: rolling_restart: {} replicas restarted one at a time; SIGKILLed after not draining within {}s: [{}]",
                    deployment.replicas.len(),
                    ledger_stack::cluster::STOP_GRACE.as_secs(),
                    forced.join(", ")
                );
            }
            _ => unreachable!(),
        }
        if let Some(rest) = phase.checked_sub(fault_started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    current_fault.store(usize::MAX, Ordering::SeqCst);
    publisher.await?;
    println!(
        "cluster: {total_events} events published at {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // Settle: wait until the books miss nothing, then a moment for any straggling
    // duplicate to show itself.
    let settle_started = Instant::now();
    while ledger_stack::books::check(&deployment.sandbox, &businesses, &expected).lost > 0
        && settle_started.elapsed() < Duration::from_secs(args.settle_secs)
    {
        tokio::time::sleep(Duration::from_secs(1)).await;
        unexpected_exits += deployment.revive()?;
    }
    println!(
        "cluster: settled {:.1}s after the last event",
        settle_started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    watching.store(false, Ordering::SeqCst);
    watcher.await?;

    let verdict = ledger_stack::books::check(&deployment.sandbox, &businesses, &expected);
    let stalls = *stalls.lock().expect("stalls");
    for (fault, stall) in FAULTS.iter().zip(stalls) {
        println!(
            "cluster: fault={fault} largest publish->Sage stall {}ms",
            stall.as_millis()
        );
    }
    println!(
        "cluster: unexpected_exits={unexpected_exits} elapsed={:.1}s",
        started.elapsed().as_secs_f64()
    );
    let forced = deployment.stop();
    println!("cluster: final stop: {forced} replicas SIGKILLed after not draining");
    println!(
        "cluster: events={total_events} documents={} duplicates={} lost={} mismatched={} out_of_order={} faults={} stall_ms={}",
        verdict.documents,
        verdict.duplicates,
        verdict.lost,
        verdict.mismatched,
        verdict.out_of_order,
        FAULTS.len(),
        FAULTS
            .iter()
            .zip(stalls)
            .map(|(f, s)| format!("{f}:{}", s.as_millis()))
            .collect::<Vec<_>>()
            .join(",")
    );
    if !verdict.is_exact() {
        std::process::exit(1);
    }
    Ok(())
}
