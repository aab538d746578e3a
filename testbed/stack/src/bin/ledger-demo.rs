//! `ledger-demo`: runs a demo merchant's documents through a running Ledger (started by
//! `./dev demo`) and prints what landed in the Sage sandbox.
//!
//! Everything goes through the public surfaces: the gateway's admin API, its Sage connection
//! endpoints, its ingest endpoint and JetStream (as the Magento module publishes); the sandbox's
//! inspection API shows the result.

use std::time::{Duration, Instant};

use anyhow::Context;
use ledger_stack::events;
use serde_json::{json, Value};

/// Where the running Ledger is; `./dev demo` sets the environment variables of the same names.
#[derive(Debug, clap::Parser)]
#[command(
    name = "ledger-demo",
    about = "A demo merchant's documents through a running Ledger (run through ./dev demo)"
)]
struct Args {
    /// Base URL of the gateway.
    #[arg(long, env = "LEDGER_GATEWAY_URL")]
    gateway_url: String,
    /// The gateway's admin bearer token.
    #[arg(long, env = "LEDGER_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
    /// The Sage sandbox's admin URL (`.../_sandbox`).
    #[arg(long, env = "LEDGER_SANDBOX_ADMIN_URL")]
    sandbox_admin_url: String,
    /// NATS URL the demo publishes to, as the Magento module does.
    #[arg(long, env = "LEDGER_NATS_URL", hide_env_values = true)]
    nats_url: String,
}

fn money(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let gateway = args.gateway_url;
    let admin_token = args.admin_token;
    let sandbox = args.sandbox_admin_url;
    let nats_url = args.nats_url;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;

    // 1. A merchant, and its Sage business (in the sandbox), connected through OAuth.
    let merchant = format!("demo-{}", chrono::Utc::now().format("%H%M%S"));
    let created: Value = http
        .post(format!("{gateway}/v1/admin/merchants"))
        .bearer_auth(&admin_token)
        .json(&json!({"merchant_id": merchant, "name": "Hartley Goods (demo)"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let ingest_key = created["ingest_key"]
        .as_str()
        .context("ingest key")?
        .to_string();
    let business: Value = http
        .post(format!("{sandbox}/businesses"))
        .json(&json!({"name": "Hartley Goods Ltd"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let business_id = business["id"].as_str().context("business id")?.to_string();
    let code: Value = http
        .post(format!(
            "{sandbox}/businesses/{business_id}/authorization_code"
        ))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let code = code["code"]
        .as_str()
        .context("authorization code")?
        .to_string();
    let connected =
        ledger_stack::connect_through_gateway(&http, &gateway, &admin_token, &merchant, &code)
            .await?;
    println!(
        "merchant {merchant} connected to Sage business {}",
        connected["sage_business_id"]
    );

    // 2. Its documents, through the gateway's ingest endpoint.
    let batch = [
        (
            "UK invoice, 20% VAT, shipping, discount",
            events::from_template(events::INVOICE_CREATED, &merchant, None),
        ),
        (
            "EUR invoice on a GBP business",
            events::from_template(events::INVOICE_CREATED_EUR, &merchant, None),
        ),
        (
            "guest invoice",
            events::from_template(events::INVOICE_CREATED_GUEST, &merchant, None),
        ),
        (
            "credit memo with adjustment and shipping refund",
            events::from_template(events::CREDIT_MEMO, &merchant, None),
        ),
        (
            "invoice to be paid by card",
            events::invoice_created(&merchant, 7),
        ),
        (
            "card payment of that invoice",
            events::invoice_paid(&merchant, 7),
        ),
        (
            "B2B customer saved",
            events::from_template(events::CUSTOMER_SAVED, &merchant, None),
        ),
    ];
    for (what, event) in &batch {
        let answer: Value = http
            .post(format!("{gateway}/v1/events"))
            .bearer_auth(&ingest_key)
            .header("content-type", "application/json")
            .body(event.body.clone())
            .send()
            .await?
            .json()
            .await?;
        println!("  sent {what:<48} → {}", answer["status"]);
    }

    // 3. The first invoice again, straight into JetStream as the Magento module publishes it.
    let nats = ledger_runtime::bus::connect(&nats_url, "ledger-demo").await?;
    let js = async_nats::jetstream::new(nats);
    let first = &batch[0].1;
    let envelope = ledger_events::parse(&first.body)?;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", envelope.event_id.to_string().as_str());
    let ack = js
        .publish_with_headers(envelope.subject(), headers, first.body.clone().into())
        .await?
        .await?;
    println!(
        "  re-published the UK invoice over JetStream → duplicate: {}",
        ack.duplicate
    );

    // 4. An invalid event: refused with the field named, and kept in quarantine.
    let mut bad: Value = serde_json::from_slice(&events::invoice_created(&merchant, 99).body)?;
    bad["payload"]["invoice"]["order_currency_code"] = json!("gbp");
    let refused = http
        .post(format!("{gateway}/v1/events"))
        .bearer_auth(&ingest_key)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&bad)?)
        .send()
        .await?;
    let status = refused.status();
    let refused: Value = refused.json().await?;
    for issue in refused["issues"].as_array().into_iter().flatten() {
        println!(
            "  invalid event → HTTP {status}: {} {}",
            issue["field"], issue["reason"]
        );
    }

    // 5. What landed in Sage.
    let expected = [
        ("sales_invoices", 4usize),
        ("sales_credit_notes", 1),
        ("contact_payments", 2),
    ];
    let started = Instant::now();
    let mut landed: Vec<(String, Vec<Value>)> = Vec::new();
    while started.elapsed() < Duration::from_secs(60) {
        landed.clear();
        for (resource, _) in expected {
            let docs: Value = http
                .get(format!(
                    "{sandbox}/businesses/{business_id}/documents/{resource}"
                ))
                .send()
                .await?
                .json()
                .await?;
            landed.push((
                resource.to_string(),
                docs.as_array().cloned().unwrap_or_default(),
            ));
        }
        if expected
            .iter()
            .zip(&landed)
            .all(|((_, n), (_, docs))| docs.len() >= *n)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let contacts: Value = http
        .get(format!(
            "{sandbox}/businesses/{business_id}/documents/contacts"
        ))
        .send()
        .await?
        .json()
        .await?;
    println!("\nWhat landed in Sage (sandbox business {business_id}):");
    for c in contacts.as_array().into_iter().flatten() {
        println!(
            "  contact        {:<10} {:<28} {}",
            money(&c["reference"]),
            money(&c["name"]),
            money(&c["currency"]["id"])
        );
    }
    for (resource, docs) in &landed {
        for d in docs {
            match resource.as_str() {
                "contact_payments" => println!(
                    "  {:<14} {:<10} {:>10} {} allocated to {}",
                    money(&d["transaction_type"]["id"])
                        .to_lowercase()
                        .replace("customer_", ""),
                    money(&d["reference"]),
                    money(&d["total_amount"]),
                    money(&d["currency"]["id"]),
                    money(&d["allocated_artefacts"][0]["artefact"]["id"]),
                ),
                _ => println!(
                    "  {:<14} {:<10} total {:>9} {} (base {:>9})  outstanding {:>9}  status {}",
                    if resource == "sales_invoices" {
                        "invoice"
                    } else {
                        "credit note"
                    },
                    money(&d["reference"]),
                    money(&d["total_amount"]),
                    money(&d["currency"]["id"]),
                    money(&d["base_currency_total_amount"]),
                    money(&d["outstanding_amount"]),
                    money(&d["status"]["id"]),
                ),
            }
        }
    }
    let missing: Vec<String> = expected
        .iter()
        .zip(&landed)
        .filter(|((_, n), (_, docs))| docs.len() != *n)
        .map(|((r, n), (_, docs))| format!("{r}: {} of {n}", docs.len()))
        .collect();
    if !missing.is_empty() {
        anyhow::bail!("not everything landed: {}", missing.join(", "));
    }
    println!("\nEverything landed exactly once.");

    // The merchant's side: the portal, where a store's pairing code is entered.
    let link: Value = http
        .post(format!(
            "{gateway}/v1/admin/merchants/{merchant}/portal-links"
        ))
        .bearer_auth(&admin_token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    println!(
        "\nMerchant portal of {merchant} (single use, 24 hours): {}",
        link["url"].as_str().unwrap_or_default()
    );
    Ok(())
}
