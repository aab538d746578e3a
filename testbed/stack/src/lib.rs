//! The whole Ledger engine in one process, against a Sage sandbox.
//!
//! The services are the real ones (their `start` functions), talking over a real NATS and a
//! real PostgreSQL exactly as they do when deployed as separate processes; only the process
//! boundary is removed. End-to-end tests and the benchmark use [`Stack`]; merchants are
//! onboarded through the gateway's real admin API and OAuth callback.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ledger_runtime::shutdown::Shutdown;
use sage_sandbox::{BusinessSpec, Sandbox, SandboxConfig};
use serde_json::{json, Value};

pub mod books;
pub mod cluster;
pub mod corpus;
pub mod events;

/// Admin token the in-process gateway is started with (the gateway wants at least 32
/// characters).
pub const ADMIN_TOKEN: &str = "ledger-stack-admin-token-for-tests-only";

/// Marker that opens the message of every attack-test assertion proving that one tenant
/// reached another's data (books, journal, status feed, secrets, inbox or subjects).
/// `./dev attack` counts the failures that carry it as crossings, apart from failures of any
/// other kind (a refusal not seen, a wait that ran out).
pub const CROSSING: &str = "[tenant crossing]";

/// Where the stack's infrastructure lives.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// NATS server URL (every service's, unless [`StoreAccess::service_nats_urls`] names
    /// its own).
    pub nats_url: String,
    /// PostgreSQL database URL (each service makes its own schema in it).
    pub database_url: String,
    /// Sandbox settings (faults, rate limit).
    pub sandbox: SandboxConfig,
    /// Merchants each consumer service handles at once.
    pub concurrency: usize,
    /// When the NATS server delegates store logins to the gateway (auth callout): how.
    pub store_access: Option<StoreAccess>,
    /// The gateway's rate limits; [`StackOptions::new`] sets [`relaxed_limits`], so tests
    /// and benchmarks that are not about limits are not throttled.
    pub limits: gateway::limits::Limits,
    /// The consumer services' Sage gate (call budget per business, burst, window), passed as
    /// their flags; [`StackOptions::new`] sets [`gate_limits`]; `None` leaves it to the
    /// environment (`LEDGER_SAGE_CALLS_PER_MINUTE` …, as a deployed service reads it).
    pub gate: Option<ledger_rpc::GateLimits>,
}

/// Calls per business in any rolling minute in the stack unless a test says otherwise: the
/// sandbox's limit ([`sandbox_config`]) and the engine's budget ([`gate_limits`]) alike, so an
/// engine that calls Sage past its budget meets 429s. Sage's own figure is 200; the stack's is
/// higher so that tests that are not about pace run at full speed (at 200 a minute every
/// merchant's fifth call would wait 308 ms). Pace itself is tested at the budget against an
/// equal limit (`tests/budget.rs`).
pub const STACK_CALLS_PER_MINUTE: u32 = 6_000;

/// The sandbox the stack runs unless told otherwise: [`STACK_CALLS_PER_MINUTE`] per business
/// per rolling minute.
pub fn sandbox_config() -> SandboxConfig {
    SandboxConfig {
        rate_limit_per_minute: Some(STACK_CALLS_PER_MINUTE),
        ..SandboxConfig::default()
    }
}

/// The engine's gate in the stack unless told otherwise: the production defaults with a
/// budget of [`STACK_CALLS_PER_MINUTE`], the sandbox's limit.
pub fn gate_limits() -> ledger_rpc::GateLimits {
    ledger_rpc::GateLimits {
        calls_per_minute: STACK_CALLS_PER_MINUTE,
        ..ledger_rpc::GateLimits::default()
    }
}

/// Limits high enough that tests, the benchmark and the demo never meet them (one IP, one
/// key, many requests), and no books check throttle.
pub fn relaxed_limits() -> gateway::limits::Limits {
    gateway::limits::Limits {
        ip_per_second: 100_000,
        ip_burst: 100_000,
        key_per_second: 100_000,
        key_burst: 100_000,
        open_pairings_per_ip: 10_000,
        books_check_interval_secs: 0,
        trusted_proxies: Vec::new(),
    }
}

impl StackOptions {
    /// The default sandbox ([`sandbox_config`]: a rolling-minute limit) and gate
    /// ([`gate_limits`]: a budget equal to it), 4 merchants at once per service, no store
    /// access over NATS.
    pub fn new(nats_url: impl Into<String>, database_url: impl Into<String>) -> StackOptions {
        StackOptions {
            nats_url: nats_url.into(),
            database_url: database_url.into(),
            sandbox: sandbox_config(),
            concurrency: 4,
            store_access: None,
            limits: relaxed_limits(),
            gate: Some(gate_limits()),
        }
    }

    /// The stack on a server from [`ledger_testkit::TestNats::start_secured`], configured as
    /// in production: each service with its own NATS user, stores admitted by the gateway's
    /// auth callout (sealed requests, the connected server's key pinned) with sessions of
    /// `session_ttl_secs`.
    pub fn secured(
        nats: &ledger_testkit::TestNats,
        database_url: impl Into<String>,
        session_ttl_secs: u64,
    ) -> StackOptions {
        let mut options = StackOptions::new(nats.url(), database_url);
        options.store_access = Some(StoreAccess {
            service_nats_urls: ledger_testkit::SERVICE_USERS
                .iter()
                .map(|user| (user.to_string(), nats.service_url(user)))
                .collect(),
            issuer_seed: nats
                .callout_issuer_seed()
                .expect("a secured server has a callout issuer"),
            xkey_seed: nats.callout_xkey_seed(),
            server_keys: vec!["connected".into()],
            session_ttl_secs,
            store_nats_urls: Vec::new(),
        });
        options
    }

    /// NATS URL `service` connects with.
    pub fn nats_url_of(&self, service: &str) -> String {
        self.store_access
            .iter()
            .flat_map(|a| a.service_nats_urls.iter())
            .find(|(name, _)| name == service)
            .map_or_else(|| self.nats_url.clone(), |(_, url)| url.clone())
    }
}

/// Settings of a NATS server whose store connections the gateway admits (auth callout) and
/// whose services each log in as their own user.
#[derive(Debug, Clone)]
pub struct StoreAccess {
    /// NATS URLs of single services by name (`gateway`, `contacts`, `documents`, `payments`,
    /// `operator` for the stack's own client), each with its own user.
    pub service_nats_urls: Vec<(String, String)>,
    /// Seed of the callout issuer account key.
    pub issuer_seed: String,
    /// Seed of the curve key callout requests are sealed to.
    pub xkey_seed: Option<String>,
    /// Server keys whose callout requests are answered (`connected`, or `N...` keys).
    pub server_keys: Vec<String>,
    /// Lifetime of a store's NATS session in seconds.
    pub session_ttl_secs: u64,
    /// NATS URLs handed to paired stores; empty: the server's own address.
    pub store_nats_urls: Vec<String>,
}

/// A running engine.
pub struct Stack {
    /// The Sage stand-in.
    pub sandbox: Sandbox,
    /// Base URL of the gateway.
    pub gateway_url: String,
    /// A NATS client for publishing straight into JetStream, as the Magento module does.
    pub nats: async_nats::Client,
    http: reqwest::Client,
    shutdown: Shutdown,
    /// The gateway's configuration and its own shutdown, so that it can be stopped and started
    /// again on the same address while the services run on ([`Stack::stop_gateway`]).
    gateway: std::sync::Mutex<(gateway::Config, Shutdown)>,
    consumers: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Metrics addresses of gateway, contacts, documents, payments (the gateway's is its
    /// metrics listener, not its public one).
    pub metrics: Vec<SocketAddr>,
}

/// A merchant onboarded on the stack, with its Sage business connected.
#[derive(Debug, Clone)]
pub struct Merchant {
    /// Merchant id.
    pub id: String,
    /// Ingest key for `POST /v1/events`.
    pub ingest_key: String,
    /// Sage business id in the sandbox.
    pub business_id: String,
}

impl Stack {
    /// Starts the sandbox and every service; returns when all accept work.
    pub async fn start(options: StackOptions) -> anyhow::Result<Stack> {
        let sandbox = Sandbox::start(options.sandbox.clone()).await?;
        let shutdown = Shutdown::new();
        // The gateway tells paired stores its public URL, so it needs its port before binding.
        let gateway_addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let gateway_config = gateway::Config {
            http_addr: gateway_addr,
            metrics_addr: "127.0.0.1:0".parse()?,
            public_url: format!("http://{gateway_addr}"),
            nats_url: options.nats_url_of("gateway"),
            database_url: options.database_url.clone(),
            stream_max_age_days: 365,
            stream_replicas: 1,
            sage_api_base_url: sandbox.api_base_url(),
            sage_authorize_url: sandbox.authorize_url(),
            sage_token_url: sandbox.token_url(),
            sage_revoke_url: sandbox.revoke_url(),
            sage_client_id: options.sandbox.client_id.clone(),
            sage_client_secret: options.sandbox.client_secret.clone(),
            token_key: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff".into(),
            admin_token: ADMIN_TOKEN.into(),
            nats_public_urls: options
                .store_access
                .as_ref()
                .map(|a| a.store_nats_urls.clone())
                .unwrap_or_default(),
            nats_callout_issuer_seed: options.store_access.as_ref().map(|a| a.issuer_seed.clone()),
            nats_store_account: "STORES".into(),
            nats_session_ttl_secs: options
                .store_access
                .as_ref()
                .map_or(300, |a| a.session_ttl_secs),
            limits: options.limits.clone(),
            nats_callout_xkey_seed: options
                .store_access
                .as_ref()
                .and_then(|a| a.xkey_seed.clone()),
            nats_server_keys: options
                .store_access
                .as_ref()
                .map(|a| a.server_keys.clone())
                .unwrap_or_default(),
            // Tests hand stores the test server's nats:// address.
            nats_allow_plain: true,
            log_format: Default::default(),
        };
        let gateway_shutdown = Shutdown::new();
        let gw = gateway::start(gateway_config.clone(), gateway_shutdown.clone())
            .await
            .context("start gateway")?;
        // The services read the rest of their configuration from this process's environment,
        // as their binaries would.
        let with_url = |name: &str| {
            let mut flags = vec![
                "--nats-url".to_string(),
                options.nats_url_of(name),
                "--database-url".into(),
                options.database_url.clone(),
                "--sage-api-base-url".into(),
                sandbox.api_base_url(),
                "--metrics-addr".into(),
                "127.0.0.1:0".into(),
                "--concurrency".into(),
                options.concurrency.to_string(),
            ];
            if let Some(gate) = &options.gate {
                flags.extend([
                    "--sage-calls-per-minute".to_string(),
                    gate.calls_per_minute.to_string(),
                    "--sage-max-concurrent".into(),
                    gate.max_concurrent.to_string(),
                    "--sage-burst".into(),
                    gate.burst.to_string(),
                    "--sage-budget-window-ms".into(),
                    gate.window_ms.to_string(),
                    "--sage-budget-margin-ms".into(),
                    gate.margin_ms.to_string(),
                ]);
            }
            ledger_rpc::ServiceConfig::from_env_with(flags)
        };
        let c = contacts::start(
            contacts::Config {
                service: with_url("contacts")?,
            },
            shutdown.clone(),
        )
        .await
        .context("start contacts")?;
        let d = documents::start(
            documents::Config {
                service: with_url("documents")?,
            },
            shutdown.clone(),
        )
        .await
        .context("start documents")?;
        let p = payments::start(
            payments::Config {
                service: with_url("payments")?,
            },
            shutdown.clone(),
        )
        .await
        .context("start payments")?;
        let nats =
            ledger_runtime::bus::connect(&options.nats_url_of("operator"), "ledger-stack").await?;
        Ok(Stack {
            sandbox,
            gateway_url: format!("http://{}", gw.http_addr),
            nats,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            shutdown,
            gateway: std::sync::Mutex::new((gateway_config, gateway_shutdown)),
            consumers: vec![c.done, d.done, p.done],
            metrics: vec![
                gw.metrics_addr,
                c.metrics_addr,
                d.metrics_addr,
                p.metrics_addr,
            ],
        })
    }

    /// Registers a merchant at the gateway, creates its Sage business in the sandbox and
    /// connects the two through the real OAuth start/callback endpoints.
    pub async fn onboard(&self, merchant_id: &str) -> anyhow::Result<Merchant> {
        let created: Value = self
            .http
            .post(format!("{}/v1/admin/merchants", self.gateway_url))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"merchant_id": merchant_id, "name": format!("Shop {merchant_id}")}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let ingest_key = created["ingest_key"]
            .as_str()
            .context("ingest_key in answer")?
            .to_string();
        let business = self
            .sandbox
            .create_business(BusinessSpec {
                name: format!("Shop {merchant_id} Ltd"),
                ..BusinessSpec::default()
            })
            .await;
        self.connect_sage(merchant_id, &business.id).await?;
        Ok(Merchant {
            id: merchant_id.to_string(),
            ingest_key,
            business_id: business.id,
        })
    }

    /// Merges `patch` into a merchant's settings through the gateway's admin API (top-level
    /// keys replace). Services cache settings for 30 s, so set them before the merchant's
    /// first event.
    pub async fn put_settings(&self, merchant: &Merchant, patch: Value) -> anyhow::Result<Value> {
        Ok(self
            .http
            .put(format!(
                "{}/v1/admin/merchants/{}/settings",
                self.gateway_url, merchant.id
            ))
            .bearer_auth(ADMIN_TOKEN)
            .json(&patch)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// The real sales ledger account (nominal 4000) of the merchant's sandbox business.
    pub fn sales_ledger_account(&self, merchant: &Merchant) -> String {
        self.sandbox
            .inspect()
            .businesses()
            .into_iter()
            .find(|b| b.id == merchant.business_id)
            .and_then(|b| b.ledger_accounts.get("4000").cloned())
            .expect("the sandbox business has nominal 4000")
    }

    /// Points the merchant's sales ledger account at one Sage does not know, so that Sage
    /// refuses its next documents (a permanent rejection); returns the real one, to restore.
    pub async fn break_sales_ledger_account(&self, merchant: &Merchant) -> anyhow::Result<String> {
        let real = self.sales_ledger_account(merchant);
        self.put_settings(
            merchant,
            json!({"sales_ledger_account_id": "0000000000000000000000000000dead"}),
        )
        .await?;
        Ok(real)
    }

    /// A service's dead letters of a merchant, waiting up to 15 s for at least one.
    pub async fn wait_for_dead_letters(
        &self,
        service: &str,
        merchant: &str,
    ) -> anyhow::Result<Vec<ledger_runtime::journal::DeadLetter>> {
        use ledger_runtime::dead_letters::{subject, Answer, Command};
        let started = Instant::now();
        loop {
            let answer: Answer = ledger_runtime::bus::request_json(
                &self.nats,
                &subject(service),
                &Command::List {
                    merchant: Some(merchant.to_string()),
                },
                Duration::from_secs(30),
            )
            .await?;
            if let Answer::Listed { dead_letters } = answer {
                if !dead_letters.is_empty() || started.elapsed() > Duration::from_secs(15) {
                    return Ok(dead_letters);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A Sage client on the sandbox whose tokens come from the gateway, as the services' do:
    /// for tests that prepare or read a merchant's Sage business through the API itself.
    pub fn sage(&self) -> sage_client::SageClient {
        let mut config = sage_client::SageConfig::sage_production("", "", "");
        config.api_base_url = self.sandbox.api_base_url();
        sage_client::SageClient::new(
            config,
            std::sync::Arc::new(ledger_rpc::GatewayTokenSource::new(self.nats.clone())),
        )
    }

    /// Connects (or reconnects) a merchant's Sage business through the gateway's real OAuth
    /// start and callback endpoints; the sandbox plays the consent page.
    pub async fn connect_sage(&self, merchant_id: &str, business_id: &str) -> anyhow::Result<()> {
        // The merchant approves on Sage's page; Sage sends the browser back with a code.
        let code = self.sandbox.issue_authorization_code(business_id).await;
        connect_through_gateway(
            &self.http,
            &self.gateway_url,
            ADMIN_TOKEN,
            merchant_id,
            &code,
        )
        .await?;
        Ok(())
    }

    /// Sends an event through the gateway's ingest endpoint; returns status and answer.
    pub async fn post_event(
        &self,
        merchant: &Merchant,
        body: &[u8],
    ) -> anyhow::Result<(u16, Value)> {
        let response = self
            .http
            .post(format!("{}/v1/events", self.gateway_url))
            .bearer_auth(&merchant.ingest_key)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await?;
        let status = response.status().as_u16();
        let answer = response.json().await.unwrap_or(Value::Null);
        Ok((status, answer))
    }

    /// Publishes an event straight into JetStream, as the Magento module does, with
    /// `Nats-Msg-Id` = event id; returns whether JetStream called it a duplicate.
    pub async fn publish_direct(
        &self,
        envelope: &ledger_events::Envelope,
        body: &[u8],
    ) -> anyhow::Result<bool> {
        let js = async_nats::jetstream::new(self.nats.clone());
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", envelope.event_id.to_string().as_str());
        let ack = js
            .publish_with_headers(envelope.subject(), headers, body.to_vec().into())
            .await?
            .await?;
        Ok(ack.duplicate)
    }

    /// Publishes a backfill's header straight into JetStream, as the Magento module does when
    /// `bin/magento ledger:backfill` starts.
    pub async fn publish_backfill_header(
        &self,
        header: &ledger_runtime::backfill::BackfillHeader,
    ) -> anyhow::Result<()> {
        let js = async_nats::jetstream::new(self.nats.clone());
        js.publish(
            ledger_runtime::backfill::header_subject(&header.merchant_id, &header.backfill_id),
            serde_json::to_vec(header)?.into(),
        )
        .await?
        .await?;
        Ok(())
    }

    /// Documents of `resource` the sandbox holds for a merchant's business.
    pub fn documents(&self, merchant: &Merchant, resource: &str) -> Vec<Value> {
        self.sandbox
            .inspect()
            .documents(&merchant.business_id, resource)
    }

    /// Polls `check` until it returns true or `timeout` passes.
    pub async fn wait_until<F: FnMut() -> bool>(&self, timeout: Duration, mut check: F) -> bool {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if check() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        check()
    }

    /// Stops the gateway (its HTTP server, auth callout and NATS responders) and waits until
    /// its address refuses connections; the services keep running. [`Stack::start_gateway`]
    /// brings it back on the same address.
    pub async fn stop_gateway(&self) -> anyhow::Result<()> {
        let addr = {
            let gateway = self.gateway.lock().expect("gateway lock");
            gateway.1.trigger();
            gateway.0.http_addr
        };
        let started = Instant::now();
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            if started.elapsed() > Duration::from_secs(30) {
                bail!("the gateway still answers on {addr} 30 s after it was stopped");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Starts the gateway again on its address after [`Stack::stop_gateway`] (retrying for a
    /// few seconds while the old listener lets the port go).
    pub async fn start_gateway(&self) -> anyhow::Result<()> {
        let config = self.gateway.lock().expect("gateway lock").0.clone();
        let started = Instant::now();
        loop {
            let shutdown = Shutdown::new();
            match gateway::start(config.clone(), shutdown.clone()).await {
                Ok(_) => {
                    self.gateway.lock().expect("gateway lock").1 = shutdown;
                    return Ok(());
                }
                Err(_) if started.elapsed() < Duration::from_secs(20) => {
                    shutdown.trigger();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e.context("restart the gateway")),
            }
        }
    }

    /// Stops every service (draining in-flight messages) and the sandbox.
    pub async fn stop(self) {
        self.gateway.lock().expect("gateway lock").1.trigger();
        self.shutdown.trigger();
        for c in self.consumers {
            let _ = c.await;
        }
        self.sandbox.shutdown().await;
    }
}

/// How one business's Sage calls kept to a call budget, as the sandbox saw them: the line
/// the budget test and the backlog benchmark print.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaceReport {
    /// API calls Sage answered (429s not included).
    pub calls: u64,
    /// Calls Sage answered 429.
    pub rejected_429: u64,
    /// The most API calls (429s included) that arrived in any one rolling rate window.
    pub busiest_window: u64,
    /// The budget: calls per window.
    pub budget: u32,
    /// The rolling window (a minute unless a test scales it).
    pub window: Duration,
    /// How long the calls took.
    pub elapsed: Duration,
}

impl PaceReport {
    /// The report of `business_id` from the sandbox's stats (see
    /// [`sage_sandbox::Inspector::stats_for`]), for a run of `elapsed` under `budget` calls per
    /// `window`. Take the stats after the run; calls before it (onboarding) count too, so
    /// start a run more than a window after them.
    pub fn from_stats(
        stats: &sage_sandbox::Stats,
        business_id: &str,
        budget: u32,
        window: Duration,
        elapsed: Duration,
    ) -> PaceReport {
        let api = stats.calls.iter().filter(|c| {
            c.path.starts_with("/v3.1") && c.business_id.as_deref() == Some(business_id)
        });
        let (mut calls, mut rejected_429) = (0, 0);
        for call in api {
            if call.status == 429 {
                rejected_429 += call.count;
            } else {
                calls += call.count;
            }
        }
        let busiest_window = stats
            .busiest_window
            .iter()
            .find(|(b, _)| b == business_id)
            .map_or(0, |(_, n)| *n);
        PaceReport {
            calls,
            rejected_429,
            busiest_window,
            budget,
            window,
            elapsed,
        }
    }

    /// Share of the budget the run used: calls over what `elapsed` allows at the budget.
    pub fn used(&self) -> f64 {
        let allowed =
            f64::from(self.budget) * self.elapsed.as_secs_f64() / self.window.as_secs_f64();
        if allowed > 0.0 {
            self.calls as f64 / allowed
        } else {
            0.0
        }
    }
}

impl std::fmt::Display for PaceReport {
    /// `pace: 1204 Sage calls in 361.2 s, budget used 97.3 %, 429s 0, busiest 60 s window 200/200`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pace: {} Sage calls in {:.1} s, budget used {:.1} %, 429s {}, busiest {} s window {}/{}",
            self.calls,
            self.elapsed.as_secs_f64(),
            self.used() * 100.0,
            self.rejected_429,
            self.window.as_secs_f64(),
            self.busiest_window,
            self.budget
        )
    }
}

/// Onboards `merchant` against a running gateway over HTTP, as an operator and the merchant
/// would: registers it through the admin API, creates its Sage business in the sandbox and
/// connects that business through the gateway's OAuth flow. Returns the Sage business id.
pub async fn onboard_over_http(
    http: &reqwest::Client,
    gateway: &str,
    admin: &str,
    sandbox: &Sandbox,
    merchant: &str,
) -> anyhow::Result<String> {
    http.post(format!("{gateway}/v1/admin/merchants"))
        .bearer_auth(admin)
        .json(&json!({"merchant_id": merchant, "name": merchant}))
        .send()
        .await?
        .error_for_status()?;
    let business = sandbox
        .create_business(BusinessSpec {
            name: format!("{merchant} Ltd"),
            ..BusinessSpec::default()
        })
        .await;
    let code = sandbox.issue_authorization_code(&business.id).await;
    connect_through_gateway(http, gateway, admin, merchant, &code).await?;
    Ok(business.id)
}

/// Walks the gateway's operator Sage connection flow as a browser would: `/connect/sage/start`
/// (which redirects to Sage's consent page with a `state` and sets the flow's binding cookie),
/// then the callback with the `code` Sage's consent page hands out and the binding cookie.
/// `http` must not follow redirects. Returns the callback's answer.
pub async fn connect_through_gateway(
    http: &reqwest::Client,
    gateway_url: &str,
    admin_token: &str,
    merchant_id: &str,
    code: &str,
) -> anyhow::Result<Value> {
    let start = http
        .get(format!("{gateway_url}/connect/sage/start"))
        .bearer_auth(admin_token)
        .query(&[("merchant", merchant_id)])
        .send()
        .await?;
    let location = start
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .context("redirect to Sage consent")?;
    let state = reqwest::Url::parse(location)?
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.to_string())
        .context("state in consent URL")?;
    let binding = set_cookie(&start).context("binding cookie from /connect/sage/start")?;
    let callback = http
        .get(format!("{gateway_url}/connect/sage/callback"))
        .header("cookie", binding)
        .query(&[("code", code), ("state", state.as_str())])
        .send()
        .await?;
    if !callback.status().is_success() {
        bail!("connect failed: {}", callback.text().await?);
    }
    Ok(callback.json().await?)
}

/// The value at quantile `p` (0 to 1) of `sorted` durations (zero when there are none).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// A duration in milliseconds with one decimal (`12.3 ms`).
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The `name=value` part of a response's first `Set-Cookie` header, as a browser sends it back.
pub fn set_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(String::from)
}
