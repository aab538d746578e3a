//! `ledger-chaos`: exactly-once under crashes, restarts and a misbehaving Sage.
//!
//! Publishes invoice and payment events for many merchants straight into JetStream while it
//! SIGKILLs consumer processes at random moments (including between a Sage POST and its
//! commit), crash-restarts nats-server and PostgreSQL, and has the sandbox inject 500s,
//! applied-then-500s, 429 bursts and timeouts. Then it heals everything, waits for the engine to
//! settle, compares what Magento sent with what the sandbox holds and prints one line:
//!
//! `chaos: events=N documents=N duplicates=D lost=L mismatched=M faults=F`
//!
//! It exits non-zero unless D, L and M are 0. Sized by `CHAOS_EVENTS` (invoices, default 2000),
//! `CHAOS_MERCHANTS` (default 20), `CHAOS_PAID_EVERY` (every n-th invoice also gets paid,
//! default 3), `CHAOS_KILL_EVERY_MS` (default 1500), `CHAOS_FAULT_RATE` (per-request probability
//! of each fault kind, default 0.02), `CHAOS_SETTLE_SECS` (default 600), `CHAOS_SEED`,
//! `CHAOS_FAILPOINTS`, or the matching options (`ledger-chaos --help`).
//! Run it through `./dev chaos` (or `just chaos`), which builds the service binaries it starts.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ledger_stack::books::Expected;
use rand::{Rng, SeedableRng};
use sage_sandbox::{FaultKind, FaultPlan, Sandbox, SandboxConfig};

/// The run's size and knobs; each option also reads the environment variable of the same name.
#[derive(Debug, clap::Parser)]
#[command(
    name = "ledger-chaos",
    about = "Exactly-once under crashes, restarts and a misbehaving Sage"
)]
struct Args {
    /// Invoices published.
    #[arg(long, env = "CHAOS_EVENTS", default_value_t = 2000)]
    events: usize,
    /// Merchants the invoices are spread over (at least 1).
    #[arg(long, env = "CHAOS_MERCHANTS", default_value_t = 20)]
    merchants: usize,
    /// Every n-th invoice is also paid (at least 1).
    #[arg(long, env = "CHAOS_PAID_EVERY", default_value_t = 3)]
    paid_every: usize,
    /// Milliseconds between SIGKILLs of a consumer process.
    #[arg(long, env = "CHAOS_KILL_EVERY_MS", default_value_t = 1500)]
    kill_every_ms: u64,
    /// Per-request probability of each sandbox fault kind.
    #[arg(long, env = "CHAOS_FAULT_RATE", default_value_t = 0.02)]
    fault_rate: f64,
    /// Seconds the healed engine gets to settle before the books are compared.
    #[arg(long, env = "CHAOS_SETTLE_SECS", default_value_t = 600)]
    settle_secs: u64,
    /// Seed of every random choice; a random one when not given (printed either way).
    #[arg(long, env = "CHAOS_SEED")]
    seed: Option<u64>,
    /// Fail points of the consumer processes (`LEDGER_FAILPOINTS` syntax).
    #[arg(
        long,
        env = "CHAOS_FAILPOINTS",
        default_value = "after_sage_write=0.01,before_ack=0.005"
    )]
    failpoints: String,
    /// Administrative URL of the PostgreSQL cluster the run's database is made on.
    #[arg(
        long,
        env = "LEDGER_TEST_PG_URL",
        default_value = "postgres://postgres@127.0.0.1:54329/postgres"
    )]
    pg_admin_url: String,
}

/// A service process the suite starts, kills and restarts.
struct Service {
    name: &'static str,
    bin: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
    log: PathBuf,
}

impl Service {
    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.bin)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("start {} from {}", self.name, self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM for a graceful drain at the end of the run.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }
}

async fn wait_http(url: &str) -> anyhow::Result<()> {
    for _ in 0..300 {
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

/// Restarts consumers that died on their own (failpoints); returns how many.
fn revive(consumers: &mut [Service]) -> anyhow::Result<u64> {
    let mut revived = 0;
    for c in consumers.iter_mut() {
        let exited = match c.child.as_mut() {
            Some(child) => child.try_wait()?.is_some(),
            None => true,
        };
        if exited {
            c.child = None;
            c.spawn()?;
            revived += 1;
        }
    }
    Ok(revived)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let events = args.events;
    let merchants = args.merchants.max(1);
    let paid_every = args.paid_every.max(1);
    let kill_every = Duration::from_millis(args.kill_every_ms);
    let fault_rate = args.fault_rate;
    let settle = Duration::from_secs(args.settle_secs);
    let seed: u64 = args.seed.unwrap_or_else(rand::random);
    let pg_admin = args.pg_admin_url;
    let root = ledger_testkit::workspace_root();
    let bin_dir = std::env::current_exe()?
        .parent()
        .context("binary dir")?
        .to_path_buf();
    let logs = root.join(".stack/logs/chaos");
    std::fs::create_dir_all(&logs)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    println!("chaos: {events} invoices for {merchants} merchants, every {paid_every}th paid, seed {seed}");

    // Infrastructure: a private nats-server (restarted below) and a fresh database on the dev
    // cluster (crash-restarted below).
    let mut nats = ledger_testkit::TestNats::start().await?;
    let db_name = "ledger_chaos";
    {
        let admin = sqlx::PgPool::connect(&pg_admin).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
            .execute(&admin)
            .await?;
        sqlx::query(&format!("CREATE DATABASE {db_name}"))
            .execute(&admin)
            .await?;
        admin.close().await;
    }
    let database_url = ledger_testkit::replace_db_name(&pg_admin, db_name);
    let sandbox = Sandbox::start(SandboxConfig::default()).await?;
    sandbox.faults().seed(seed);

    let gateway_port = ledger_testkit::free_port();
    let gateway_url = format!("http://127.0.0.1:{gateway_port}");
    let admin_token = "chaos-admin-token-for-the-chaos-run";
    let common: Vec<(String, String)> = vec![
        ("LEDGER_NATS_URL".into(), nats.url()),
        ("LEDGER_DATABASE_URL".into(), database_url.clone()),
        ("SAGE_API_BASE_URL".into(), sandbox.api_base_url()),
        ("LEDGER_ACK_WAIT_SECS".into(), "5".into()),
        ("RUST_LOG".into(), "warn".into()),
    ];
    // Consumers also crash on their own at the worst moments: right after a Sage write before
    // its commit, and after the commit before the ack.
    let failpoints = args.failpoints;
    let mut gateway = Service {
        name: "gateway",
        bin: bin_dir.join("gateway"),
        env: common
            .iter()
            .cloned()
            .chain([
                (
                    "LEDGER_HTTP_ADDR".to_string(),
                    format!("127.0.0.1:{gateway_port}"),
                ),
                ("LEDGER_PUBLIC_URL".into(), gateway_url.clone()),
                ("LEDGER_METRICS_ADDR".into(), "127.0.0.1:0".into()),
                // One address and one key send the whole run: not what the limits are for.
                ("LEDGER_LIMIT_IP_PER_SECOND".into(), "100000".into()),
                ("LEDGER_LIMIT_IP_BURST".into(), "100000".into()),
                ("LEDGER_LIMIT_KEY_PER_SECOND".into(), "100000".into()),
                ("LEDGER_LIMIT_KEY_BURST".into(), "100000".into()),
                ("SAGE_AUTHORIZE_URL".into(), sandbox.authorize_url()),
                ("SAGE_TOKEN_URL".into(), sandbox.token_url()),
                ("SAGE_REVOKE_URL".into(), sandbox.revoke_url()),
                ("SAGE_CLIENT_ID".into(), "ledger-dev".into()),
                ("SAGE_CLIENT_SECRET".into(), "ledger-dev-secret".into()),
                ("LEDGER_TOKEN_KEY".into(), "a1".repeat(32)),
                ("LEDGER_ADMIN_TOKEN".into(), admin_token.into()),
            ])
            .collect(),
        child: None,
        log: logs.join("gateway.log"),
    };
    gateway.spawn()?;
    wait_http(&format!("{gateway_url}/healthz")).await?;
    let mut consumers: Vec<Service> = ["contacts", "documents", "payments"]
        .into_iter()
        .map(|name| Service {
            name,
            bin: bin_dir.join(name),
            env: common
                .iter()
                .cloned()
                .chain([("LEDGER_FAILPOINTS".to_string(), failpoints.clone())])
                .collect(),
            child: None,
            log: logs.join(format!("{name}.log")),
        })
        .collect();
    for c in consumers.iter_mut() {
        c.spawn()?;
    }

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut businesses = Vec::new();
    for m in 0..merchants {
        businesses.push(
            ledger_stack::onboard_over_http(
                &http,
                &gateway_url,
                admin_token,
                &sandbox,
                &format!("chaos-{m}"),
            )
            .await?,
        );
    }

    // Faults from now on, on every business, for POSTs (GETs are cheap to lose too, but the
    // writes are what exactly-once is about).
    let faults = sandbox.faults();
    for kind in [
        FaultKind::Error500,
        FaultKind::AppliedThen500,
        FaultKind::Rate429 {
            retry_after_secs: Some(1),
        },
        FaultKind::Timeout {
            secs: 2,
            apply: true,
        },
    ] {
        faults.set(
            FaultPlan::new(kind)
                .on_method("POST")
                .with_probability(fault_rate),
        );
    }

    // The Magento side: publish every event, retrying until JetStream acknowledges it, as the
    // module's outbox does.
    let mut expected = Vec::with_capacity(events);
    let mut outbox: Vec<(String, String, Vec<u8>)> = Vec::new();
    for n in 0..events {
        let m = n % merchants;
        let merchant = format!("chaos-{m}");
        let created = ledger_stack::events::invoice_created(&merchant, n as u64);
        let envelope = ledger_events::parse(&created.body)?;
        let ledger_events::Payload::InvoiceCreated(snapshot) = &envelope.payload else {
            unreachable!()
        };
        let paid = n % paid_every == 0;
        expected.push(Expected {
            merchant: m,
            reference: snapshot.invoice.increment_id.clone(),
            total: snapshot.invoice.grand_total,
            paid,
            credit: None,
        });
        outbox.push((
            envelope.subject(),
            created.event_id.to_string(),
            created.body,
        ));
        if paid {
            let p = ledger_stack::events::invoice_paid(&merchant, n as u64);
            let penv = ledger_events::parse(&p.body)?;
            outbox.push((penv.subject(), p.event_id.to_string(), p.body));
        }
    }
    let total_events = outbox.len();
    let published = Arc::new(AtomicU64::new(0));
    let publishing_done = Arc::new(AtomicBool::new(false));
    let publisher = {
        let url = nats.url();
        let published = published.clone();
        let done = publishing_done.clone();
        tokio::spawn(async move {
            let client = async_nats::ConnectOptions::new()
                .retry_on_initial_connect()
                .connect(url)
                .await
                .expect("connect publisher");
            let js = async_nats::jetstream::new(client);
            for (subject, id, body) in outbox {
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
                published.fetch_add(1, Ordering::SeqCst);
            }
            done.store(true, Ordering::SeqCst);
        })
    };

    // Chaos while the events flow.
    let started = Instant::now();
    let mut kills = 0u64;
    let mut crashes = 0u64;
    let mut restarted_nats = false;
    let mut restarted_pg = false;
    let landed = |sandbox: &Sandbox| -> usize {
        businesses
            .iter()
            .map(|b| sandbox.inspect().documents(b, "sales_invoices").len())
            .sum()
    };
    while !publishing_done.load(Ordering::SeqCst) || landed(&sandbox) < events {
        if started.elapsed() > settle {
            break;
        }
        tokio::time::sleep(kill_every.mul_f64(rng.gen_range(0.5..1.5))).await;
        crashes += revive(&mut consumers)?;
        let progress = landed(&sandbox) as f64 / events as f64;
        if !restarted_nats && progress > 0.3 {
            println!(
                "chaos: restarting nats-server (SIGKILL) at {:.0}%",
                progress * 100.0
            );
            nats.restart().await?;
            restarted_nats = true;
            continue;
        }
        if !restarted_pg && progress > 0.6 {
            println!(
                "chaos: crash-restarting PostgreSQL at {:.0}%",
                progress * 100.0
            );
            let status = Command::new("bash")
                .arg("-c")
                .arg("source deploy/dev/stack.sh && restart_postgres")
                .current_dir(&root)
                .status()?;
            anyhow::ensure!(status.success(), "PostgreSQL restart failed");
            restarted_pg = true;
            continue;
        }
        if progress >= 1.0 {
            continue;
        }
        let victim = rng.gen_range(0..consumers.len());
        consumers[victim].kill9();
        kills += 1;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(50..600))).await;
        consumers[victim].spawn()?;
    }
    publisher.await?;

    // Heal and settle: no more faults, every process up, wait for the backlog to drain.
    faults.clear();
    crashes += revive(&mut consumers)?;
    let expected_payments = expected.iter().filter(|e| e.paid).count();
    let payments_landed = |sandbox: &Sandbox| -> usize {
        businesses
            .iter()
            .map(|b| sandbox.inspect().documents(b, "contact_payments").len())
            .sum()
    };
    let settle_started = Instant::now();
    while (landed(&sandbox) < events || payments_landed(&sandbox) < expected_payments)
        && settle_started.elapsed() < settle
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
        crashes += revive(&mut consumers)?;
    }
    // A moment for any straggling duplicate to show itself.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Compare Magento with Sage.
    let verdict = ledger_stack::books::check(&sandbox, &businesses, &expected);
    let stats = sandbox.inspect().stats();
    let faults_applied: u64 = stats.faults_applied.iter().map(|f| f.count).sum();
    let violations = sandbox.inspect().concurrency_violations().len();
    let ledger_stack::books::Verdict {
        documents,
        duplicates,
        lost,
        mismatched,
        out_of_order,
    } = verdict;

    for c in consumers.iter_mut() {
        c.stop();
    }
    gateway.stop();
    println!(
        "chaos: kills={kills} failpoint_crashes={crashes} nats_restarts={} pg_restarts={} concurrent_post_violations={violations} elapsed={:.1}s",
        restarted_nats as u8,
        restarted_pg as u8,
        started.elapsed().as_secs_f64()
    );
    println!(
        "chaos: events={total_events} documents={documents} duplicates={duplicates} lost={lost} mismatched={mismatched} faults={faults_applied}"
    );
    if duplicates + lost + mismatched + out_of_order > 0 {
        std::process::exit(1);
    }
    Ok(())
}
