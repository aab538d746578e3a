//! `ledgerctl`: the operator's command line.

use clap::{Parser, Subcommand};
use futures::StreamExt;
use serde_json::{json, Value};

/// Ledger operator CLI.
#[derive(Parser)]
#[command(name = "ledgerctl", version, about = "Operate a Ledger installation")]
struct Cli {
    /// Gateway base URL.
    #[arg(
        long,
        env = "LEDGER_GATEWAY_URL",
        default_value = "http://127.0.0.1:8780",
        global = true
    )]
    gateway: String,
    /// Admin token of the gateway.
    #[arg(
        long,
        env = "LEDGER_ADMIN_TOKEN",
        default_value = "",
        global = true,
        hide_env_values = true
    )]
    admin_token: String,
    /// NATS server URL, or a comma-separated list of every node of a cluster (one login).
    #[arg(
        long,
        env = "LEDGER_NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        global = true
    )]
    nats: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Merchants: add, show, pair a store, list or revoke store keys.
    Merchant {
        #[command(subcommand)]
        action: MerchantAction,
    },
    /// Prints a single-use sign-in link to the merchant portal (valid 24 hours), where the
    /// merchant connects Sage and pairs stores. Send it to the merchant.
    #[command(name = "portal-link", alias = "connect-url")]
    ConnectUrl {
        /// Merchant id.
        merchant: String,
    },
    /// Sends event files through the gateway's ingest endpoint.
    Publish {
        /// The merchant's ingest key.
        #[arg(long, env = "LEDGER_INGEST_KEY", hide_env_values = true)]
        key: String,
        /// Event files (JSON envelopes).
        files: Vec<std::path::PathBuf>,
    },
    /// Validates event files against the contract without sending them.
    Validate {
        /// Event files (JSON envelopes).
        files: Vec<std::path::PathBuf>,
    },
    /// Stream and consumer status: messages, lag (pending) and in-flight (ack pending).
    Status,
    /// Dead letters of a consumer service: list them, or retry one, some or all.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLetterAction,
    },
    /// The audit trail of the consumer services: every Sage call made per event, hash-chained
    /// per merchant.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Checks that Sage holds every Magento invoice and credit memo of a merchant exactly once,
    /// with Magento's grand total to the cent. Lists what is missing, doubled or different, and
    /// documents in Sage that did not come from the store. Exit status 1 unless balanced.
    Reconcile {
        /// Merchant.
        #[arg(long)]
        merchant: String,
        /// Only documents Magento created on or after this day (YYYY-MM-DD).
        #[arg(long)]
        since: Option<chrono::NaiveDate>,
        /// Only documents Magento created before this day.
        #[arg(long)]
        until: Option<chrono::NaiveDate>,
        /// Sage Accounting API base URL.
        #[arg(
            long,
            env = "SAGE_API_BASE_URL",
            default_value = "https://api.accounting.sage.com/v3.1"
        )]
        sage_api_base_url: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Makes the NATS secrets of a deployment (deploy/nats/nats-server.conf), as environment
    /// lines: the auth callout's account key (`LEDGER_NATS_CALLOUT_ISSUER` for the server,
    /// `LEDGER_NATS_CALLOUT_ISSUER_SEED` for the gateway), its curve key
    /// (`LEDGER_NATS_CALLOUT_XKEY` for the server, `LEDGER_NATS_CALLOUT_XKEY_SEED` for the
    /// gateway) and a password per service user (`LEDGER_NATS_<USER>_PASSWORD`). Keep the
    /// seeds and passwords secret.
    NatsIssuer,
    /// Backfills of a merchant (`bin/magento ledger:backfill`): their progress, and pause,
    /// resume or cancel.
    Backfill {
        #[command(subcommand)]
        action: BackfillAction,
    },
    /// Runs a merchant's events from the log again through the services' normal path (same
    /// idempotency keys: what is in Sage already is never posted twice).
    Replay {
        /// Merchant.
        #[arg(long)]
        merchant: String,
        /// Only events published at or after (RFC 3339).
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Only events published before (RFC 3339).
        #[arg(long)]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// Only this service: contacts, documents or payments (default: all three, in that
        /// order).
        #[arg(long)]
        only: Option<String>,
        /// Report what would be posted; post nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the summaries as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum BackfillAction {
    /// Each backfill of the merchant: documents done of total, rate, time left, held and
    /// failed counts, state.
    Status {
        /// Merchant.
        #[arg(long)]
        merchant: String,
        /// Print the reports as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Holds the merchant's history lane at this backfill's next event.
    Pause {
        /// Merchant.
        #[arg(long)]
        merchant: String,
        /// Backfill id (see `ledgerctl backfill status`).
        backfill: String,
    },
    /// Lets a paused (or canceled) backfill's events be handled again.
    Resume {
        /// Merchant.
        #[arg(long)]
        merchant: String,
        /// Backfill id.
        backfill: String,
    },
    /// Skips every event of the backfill not handled yet (skip code `backfill_canceled`).
    Cancel {
        /// Merchant.
        #[arg(long)]
        merchant: String,
        /// Backfill id.
        backfill: String,
    },
}

/// One line per backfill: `bf-… running 120/300 (40%), 12.5/s, about 15 s left, held 2, failed 0`.
fn backfill_line(r: &ledger_rpc::backfill::BackfillReport) -> String {
    let percent = if r.total > 0 {
        100 * r.done / r.total
    } else {
        100
    };
    let left = match (r.finished, r.eta_secs) {
        (true, _) => "finished".to_string(),
        (false, Some(s)) => format!("about {s} s left"),
        (false, None) => "waiting".to_string(),
    };
    format!(
        "{} {} {}..{} [{}] {}/{} ({percent}%), {:.1}/s, {left}, held {}, failed {}, canceled {}",
        r.backfill_id,
        r.state.as_str(),
        r.from,
        r.to,
        r.types.join(","),
        r.done,
        r.total,
        r.rate_per_sec,
        r.held,
        r.failed,
        r.canceled
    )
}

#[derive(Subcommand)]
enum AuditAction {
    /// Shows audit records matching the filters (oldest first).
    Show {
        /// Service: contacts, documents or payments (default: all three).
        #[arg(long)]
        service: Option<String>,
        /// Only this merchant.
        #[arg(long)]
        merchant: Option<String>,
        /// Only this event id.
        #[arg(long)]
        event: Option<String>,
        /// Only this Magento document key (`invoice:1:000000123`) or increment id.
        #[arg(long)]
        document: Option<String>,
        /// Recorded at or after (RFC 3339).
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Recorded before (RFC 3339).
        #[arg(long)]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// At most this many records per service.
        #[arg(long)]
        limit: Option<i64>,
        /// Print the full records as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verifies a merchant's hash chain; fails naming the first broken link.
    Verify {
        /// Merchant.
        #[arg(long)]
        merchant: String,
        /// Service: contacts, documents or payments (default: all three).
        #[arg(long)]
        service: Option<String>,
    },
}

/// Services holding audit trails, dead letters and sync state.
const CONSUMER_SERVICES: [&str; 3] = ["contacts", "documents", "payments"];

fn services_or_all(service: Option<String>) -> Vec<String> {
    service
        .map(|s| vec![s])
        .unwrap_or_else(|| CONSUMER_SERVICES.map(String::from).to_vec())
}

async fn ask_audit(
    client: &async_nats::Client,
    service: &str,
    command: &ledger_runtime::audit::Command,
) -> anyhow::Result<ledger_runtime::audit::Answer> {
    Ok(ledger_runtime::bus::request_json(
        client,
        &ledger_runtime::audit::subject(service),
        command,
        std::time::Duration::from_secs(60),
    )
    .await?)
}

/// `seen N, already synced N, applied N, skipped N, failed N[, would post N]`.
fn counts(s: &ledger_runtime::replay::Summary) -> String {
    let mut line = format!(
        "seen {}, already synced {}, applied {}, skipped {}, failed {}",
        s.seen, s.already_synced, s.applied, s.skipped, s.failed
    );
    if s.dry_run {
        line.push_str(&format!(", would post {}", s.would_post));
    }
    line
}

/// One line per record, one indented line per Sage call.
fn print_record(service: &str, stored: &ledger_runtime::audit::StoredRecord) {
    let r = &stored.record;
    println!(
        "{service} #{} {} {} event={} seq={} doc={} ref={} {}{} {}ms",
        r.chain_seq,
        r.recorded_at.to_rfc3339(),
        r.consumer,
        r.event_id.as_deref().unwrap_or("-"),
        r.stream_sequence
            .map(|s| s.to_string())
            .unwrap_or("-".into()),
        r.document_key.as_deref().unwrap_or("-"),
        r.reference.as_deref().unwrap_or("-"),
        r.outcome,
        r.code
            .as_deref()
            .map(|c| format!(" [{c}]"))
            .unwrap_or_default(),
        r.duration_ms,
    );
    for call in &r.calls {
        println!(
            "    {} /{} → {} id={} x_request_id={} {}ms{}",
            call.method,
            call.path,
            call.status.map(|s| s.to_string()).unwrap_or("-".into()),
            call.sage_id.as_deref().unwrap_or("-"),
            call.x_request_id.as_deref().unwrap_or("-"),
            call.duration_ms,
            call.error
                .as_deref()
                .map(|e| format!(" [{e}]"))
                .unwrap_or_default(),
        );
    }
}

#[derive(Subcommand)]
enum DeadLetterAction {
    /// Lists dead letters not yet retried.
    List {
        /// Service: contacts, documents or payments (default: all three).
        #[arg(long)]
        service: Option<String>,
        /// Only this merchant.
        #[arg(long)]
        merchant: Option<String>,
    },
    /// Retries dead letters through the normal path (same idempotency keys), 20 per request,
    /// printing `retried N/M` on stderr after each batch and every result at the end.
    Retry {
        /// Service: contacts, documents or payments.
        #[arg(long)]
        service: String,
        /// Dead letter ids; none = every dead letter (of `--merchant`, if given).
        ids: Vec<i64>,
        /// With no ids: only this merchant's.
        #[arg(long)]
        merchant: Option<String>,
    },
}

#[derive(Subcommand)]
enum MerchantAction {
    /// Registers a merchant.
    Add {
        /// Merchant id (lower-case letters, digits, '-' and '_').
        id: String,
        /// Display name.
        #[arg(long)]
        name: String,
    },
    /// Shows a merchant, its settings and its Sage connection.
    Show {
        /// Merchant id.
        id: String,
    },
    /// Pairs a Magento store with the merchant: enter the code the store's admin shows. The
    /// store collects its key by itself within a minute.
    Pair {
        /// Merchant id.
        id: String,
        /// Pairing code from the store's admin (XXXX-XXXX).
        #[arg(long)]
        code: String,
    },
    /// Lists the keys the merchant's stores received by pairing.
    Keys {
        /// Merchant id.
        id: String,
    },
    /// Revokes a store's key: it can no longer publish or read status.
    RevokeKey {
        /// Merchant id.
        id: String,
        /// Key id (mk_...).
        key: String,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("ledgerctl: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    match cli.command {
        Command::Merchant { action } => {
            let (request, what) = match action {
                MerchantAction::Add { id, name } => (
                    http.post(format!("{}/v1/admin/merchants", cli.gateway))
                        .json(&json!({"merchant_id": id, "name": name})),
                    "add",
                ),
                MerchantAction::Show { id } => (
                    http.get(format!("{}/v1/admin/merchants/{id}", cli.gateway)),
                    "show",
                ),
                MerchantAction::Pair { id, code } => (
                    http.post(format!("{}/v1/admin/merchants/{id}/pairings", cli.gateway))
                        .json(&json!({ "code": code })),
                    "pair",
                ),
                MerchantAction::Keys { id } => (
                    http.get(format!("{}/v1/admin/merchants/{id}/keys", cli.gateway)),
                    "keys",
                ),
                MerchantAction::RevokeKey { id, key } => (
                    http.delete(format!(
                        "{}/v1/admin/merchants/{id}/keys/{key}",
                        cli.gateway
                    )),
                    "revoke-key",
                ),
            };
            let response = request.bearer_auth(&cli.admin_token).send().await?;
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            println!("{}", serde_json::to_string_pretty(&body)?);
            if !status.is_success() {
                anyhow::bail!("merchant {what} failed with HTTP {status}");
            }
        }
        Command::ConnectUrl { merchant } => {
            let response = http
                .post(format!(
                    "{}/v1/admin/merchants/{merchant}/portal-links",
                    cli.gateway
                ))
                .bearer_auth(&cli.admin_token)
                .send()
                .await?;
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                println!("{}", serde_json::to_string_pretty(&body)?);
                anyhow::bail!("portal link failed with HTTP {status}");
            }
            println!("{}", body["url"].as_str().unwrap_or_default());
            eprintln!(
                "single use, valid until {}; the merchant connects Sage and pairs stores there",
                body["expires_at"].as_str().unwrap_or("?")
            );
        }
        Command::Publish { key, files } => {
            let mut failed = 0;
            for file in files {
                let body = std::fs::read(&file)?;
                let response = http
                    .post(format!("{}/v1/events", cli.gateway))
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                let status = response.status();
                let answer: Value = response.json().await.unwrap_or(Value::Null);
                println!("{} → {status} {answer}", file.display());
                if !status.is_success() {
                    failed += 1;
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} event(s) refused");
            }
        }
        Command::Validate { files } => {
            let mut failed = 0;
            for file in files {
                let body = std::fs::read(&file)?;
                match ledger_events::parse(&body) {
                    Ok(env) => println!(
                        "{}: ok ({} {})",
                        file.display(),
                        env.event_type.as_str(),
                        env.event_id
                    ),
                    Err(e) => {
                        failed += 1;
                        println!("{}: invalid", file.display());
                        for issue in e.issues() {
                            println!("  {}: {}", issue.path, issue.reason);
                        }
                    }
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} invalid event file(s)");
            }
        }
        Command::DeadLetters { action } => {
            use ledger_runtime::dead_letters::{self, Answer};
            let client = ledger_runtime::bus::connect(&cli.nats, "ledgerctl").await?;
            let timeout = std::time::Duration::from_secs(300);
            match action {
                DeadLetterAction::List { service, merchant } => {
                    let command = dead_letters::Command::List { merchant };
                    for service in services_or_all(service) {
                        let answer: Answer = ledger_runtime::bus::request_json(
                            &client,
                            &dead_letters::subject(&service),
                            &command,
                            timeout,
                        )
                        .await?;
                        println!("{service}: {}", serde_json::to_string_pretty(&answer)?);
                    }
                }
                // A batch at a time, printing progress as it goes (see `retry_in_batches`).
                DeadLetterAction::Retry {
                    service,
                    ids,
                    merchant,
                } => {
                    let results = dead_letters::retry_in_batches(
                        &client,
                        &service,
                        ids,
                        merchant,
                        timeout,
                        |done, total, batch| {
                            let failed = batch.iter().filter(|r| r.outcome == "failed").count();
                            eprintln!(
                                "{service}: retried {done}/{total} (this batch: {} ok, {failed} failed)",
                                batch.len() - failed
                            );
                        },
                    )
                    .await
                    .map_err(anyhow::Error::msg)?;
                    let answer = Answer::Retried { results };
                    println!("{service}: {}", serde_json::to_string_pretty(&answer)?);
                }
            }
        }
        Command::Audit { action } => {
            use ledger_runtime::audit::{Answer, AuditQuery, Command as AuditCommand};
            let client = ledger_runtime::bus::connect(&cli.nats, "ledgerctl").await?;
            match action {
                AuditAction::Show {
                    service,
                    merchant,
                    event,
                    document,
                    since,
                    until,
                    limit,
                    json,
                } => {
                    let command = AuditCommand::Show(AuditQuery {
                        merchant,
                        event_id: event,
                        document,
                        since,
                        until,
                        limit,
                    });
                    for service in services_or_all(service) {
                        match ask_audit(&client, &service, &command).await? {
                            Answer::Records { records } if json => {
                                println!(
                                    "{}",
                                    serde_json::to_string_pretty(
                                        &json!({"service": service, "records": records})
                                    )?
                                )
                            }
                            Answer::Records { records } => {
                                for r in &records {
                                    print_record(&service, r);
                                }
                            }
                            Answer::Error { message } => anyhow::bail!("{service}: {message}"),
                            other => anyhow::bail!("{service}: unexpected answer {other:?}"),
                        }
                    }
                }
                AuditAction::Verify { merchant, service } => {
                    let mut broken = 0;
                    for service in services_or_all(service) {
                        let command = AuditCommand::Verify {
                            merchant: merchant.clone(),
                        };
                        match ask_audit(&client, &service, &command).await? {
                            Answer::Verified(report) => match &report.broken {
                                None => println!(
                                    "{service}: ok, {} records, head {}",
                                    report.records, report.head_hash
                                ),
                                Some(link) => {
                                    broken += 1;
                                    println!(
                                        "{service}: BROKEN at chain position {} (record id {}): {}",
                                        link.chain_seq, link.id, link.reason
                                    );
                                }
                            },
                            Answer::Error { message } => anyhow::bail!("{service}: {message}"),
                            other => anyhow::bail!("{service}: unexpected answer {other:?}"),
                        }
                    }
                    if broken > 0 {
                        anyhow::bail!("{broken} broken audit chain(s) for merchant {merchant}");
                    }
                }
            }
        }
        Command::Reconcile {
            merchant,
            since,
            until,
            sage_api_base_url,
            json,
        } => {
            let client = ledger_runtime::bus::connect(&cli.nats, "ledgerctl").await?;
            let mut config = sage_client::SageConfig::sage_production("", "", "");
            config.api_base_url = sage_api_base_url;
            let sage = sage_client::SageClient::new(
                config,
                std::sync::Arc::new(ledger_rpc::GatewayTokenSource::new(client.clone())),
            );
            // Progress goes to stderr, so stdout stays the report (or its JSON).
            let mut report = ledger_reconcile::run_reporting(
                &async_nats::jetstream::new(client.clone()),
                &sage,
                &merchant,
                ledger_reconcile::Range { since, until },
                &mut |p| eprintln!("reconcile {merchant}: {p}"),
            )
            .await?;
            report.explain(&ledger_reconcile::reasons(&client, &merchant).await);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for finding in &report.findings {
                    println!("{}", ledger_reconcile::describe(finding));
                }
                println!("reconcile {merchant}: {}", report.summary());
            }
            if !report.balanced() {
                std::process::exit(1);
            }
        }
        Command::NatsIssuer => {
            let issuer = nkeys::KeyPair::new_account();
            println!("LEDGER_NATS_CALLOUT_ISSUER={}", issuer.public_key());
            println!(
                "LEDGER_NATS_CALLOUT_ISSUER_SEED={}",
                issuer
                    .seed()
                    .map_err(|e| anyhow::anyhow!("seed of a new key: {e}"))?
            );
            let xkey = nkeys::XKey::new();
            println!("LEDGER_NATS_CALLOUT_XKEY={}", xkey.public_key());
            println!(
                "LEDGER_NATS_CALLOUT_XKEY_SEED={}",
                xkey.seed()
                    .map_err(|e| anyhow::anyhow!("seed of a new curve key: {e}"))?
            );
            for user in ["GATEWAY", "CONTACTS", "DOCUMENTS", "PAYMENTS", "OPERATOR"] {
                let mut password = [0u8; 24];
                rand::Rng::fill(&mut rand::thread_rng(), &mut password);
                println!(
                    "LEDGER_NATS_{user}_PASSWORD={}",
                    data_encoding::HEXLOWER.encode(&password)
                );
            }
        }
        Command::Replay {
            merchant,
            since,
            until,
            only,
            dry_run,
            json,
        } => {
            let client = ledger_runtime::bus::connect(&cli.nats, "ledgerctl").await?;
            let command = ledger_runtime::replay::Command {
                merchant,
                since,
                until,
                dry_run,
                per_event_lookups: false,
                limit: None,
            };
            let mut failed = 0;
            for service in services_or_all(only) {
                let summary = ledger_runtime::replay::request(
                    &client,
                    &service,
                    &command,
                    std::time::Duration::from_secs(600),
                    |s| eprintln!("{service}: {}", counts(s)),
                )
                .await
                .map_err(anyhow::Error::msg)?;
                failed += summary.failed;
                if json {
                    println!("{}", serde_json::to_string_pretty(&summary)?);
                    continue;
                }
                for e in &summary.events {
                    println!(
                        "{service}: seq {} {} {}{}",
                        e.stream_sequence,
                        e.subject,
                        e.outcome,
                        e.code
                            .as_deref()
                            .map(|c| format!(" [{c}]"))
                            .unwrap_or_default()
                    );
                    for d in &e.detail {
                        println!("    {d}");
                    }
                }
                println!(
                    "{service}: {}{}",
                    counts(&summary),
                    if summary.dry_run { " (dry run)" } else { "" }
                );
            }
            if failed > 0 {
                anyhow::bail!("{failed} event(s) failed again");
            }
        }
        Command::Backfill { action } => {
            use ledger_runtime::backfill::BackfillState;
            let client = ledger_runtime::bus::connect(&cli.nats, "ledgerctl").await?;
            let js = async_nats::jetstream::new(client);
            let (merchant, backfill, state) = match action {
                BackfillAction::Status { merchant, json } => {
                    let reports = ledger_rpc::backfill::reports(&js, &merchant)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&reports)?);
                    } else if reports.is_empty() {
                        println!("{merchant}: no backfills");
                    }
                    if !json {
                        for r in &reports {
                            println!("{}", backfill_line(r));
                        }
                    }
                    return Ok(());
                }
                BackfillAction::Pause { merchant, backfill } => {
                    (merchant, backfill, BackfillState::Paused)
                }
                BackfillAction::Resume { merchant, backfill } => {
                    (merchant, backfill, BackfillState::Running)
                }
                BackfillAction::Cancel { merchant, backfill } => {
                    (merchant, backfill, BackfillState::Canceled)
                }
            };
            ledger_rpc::backfill::set_state(&js, &merchant, &backfill, state)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{merchant} {backfill}: {}", state.as_str());
        }
        Command::Status => {
            let client = ledger_runtime::bus::connect(&cli.nats, "ledgerctl").await?;
            let js = async_nats::jetstream::new(client);
            for name in [
                ledger_runtime::bus::EVENTS_STREAM,
                ledger_runtime::bus::QUARANTINE_STREAM,
            ] {
                let Ok(mut stream) = js.get_stream(name).await else {
                    println!("{name}: missing");
                    continue;
                };
                let info = stream.info().await?;
                println!(
                    "{name}: {} messages, {} bytes, sequences {}..{}",
                    info.state.messages,
                    info.state.bytes,
                    info.state.first_sequence,
                    info.state.last_sequence
                );
                let mut consumers = stream.consumers();
                while let Some(consumer) = consumers.next().await {
                    let c = consumer?;
                    println!(
                        "  consumer {}: pending {} ack-pending {} redelivered {}",
                        c.name, c.num_pending, c.num_ack_pending, c.num_redelivered
                    );
                }
            }
        }
    }
    Ok(())
}
