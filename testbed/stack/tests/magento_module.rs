//! The Magento module's own PHP code against the whole engine: it pairs through the gateway,
//! publishes with the key it received to a nats-server run with the shipped configuration
//! (auth callout), the services post to the Sage sandbox, and:
//! - Sage holds each invoice once, totals equal to the cent to what the module serialized;
//! - publishing the same outbox rows again creates nothing new;
//! - the module's key cannot publish another merchant's events nor read its status;
//! - after Disconnect the same key publishes nothing and reads nothing.
//!
//! Drives `magento/dev/pairing-e2e.php` (the module's Core classes without Magento). Needs
//! `php` (`./dev test` installs php-cli).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use futures::StreamExt;
use ledger_stack::{Stack, StackOptions};
use ledger_testkit::{workspace_root, TestDb, TestNats};
use rust_decimal::Decimal;
use serde_json::{json, Value};

const STORE: &str = "magento-store";
const NEIGHBOUR: &str = "neighbour";

/// Runs one command of the module's end-to-end script; returns its JSON answer.
fn module(state: &Path, args: &[&str]) -> Value {
    let script = workspace_root().join("magento/dev/pairing-e2e.php");
    let output = Command::new(std::env::var("PHP_BIN").unwrap_or_else(|_| "php".into()))
        .arg(&script)
        .arg(args[0])
        .arg("--state")
        .arg(state)
        .args(&args[1..])
        // The test's nats-server has no TLS: the module's development override.
        .env("LEDGER_NATS_ALLOW_PLAIN", "1")
        .output()
        .expect("php runs (install php-cli, or run the suite with ./dev test)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not one JSON object ({e}): stdout={stdout} stderr={}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn amount(v: &Value) -> Decimal {
    ledger_stack::events::amount(v)
}

/// Every `invoice.created` envelope of `merchant` in the event log.
async fn logged_invoices(nats: &TestNats, merchant: &str) -> Vec<Value> {
    let js = async_nats::jetstream::new(nats.connect().await.unwrap());
    let stream = js.get_stream(ledger_events::STREAM_NAME).await.unwrap();
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: format!("magento.{merchant}.invoice.created"),
            ..Default::default()
        })
        .await
        .unwrap();
    let pending = consumer.cached_info().num_pending as usize;
    let mut messages = consumer.messages().await.unwrap().take(pending);
    let mut out = Vec::new();
    while let Some(message) = messages.next().await {
        out.push(serde_json::from_slice(&message.unwrap().payload).unwrap());
    }
    out
}

async fn stream_count(nats: &TestNats, merchant: &str) -> usize {
    let js = async_nats::jetstream::new(nats.connect().await.unwrap());
    let stream = js.get_stream(ledger_events::STREAM_NAME).await.unwrap();
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: format!("magento.{merchant}.>"),
            ..Default::default()
        })
        .await
        .unwrap();
    consumer.cached_info().num_pending as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_module_pairs_publishes_once_and_stops_when_disconnected() {
    let _ = ledger_runtime::telemetry::init("magento-module");
    let nats = TestNats::start_secured().await.unwrap();
    let db = TestDb::create().await.unwrap();
    let options = StackOptions::secured(&nats, db.url(), 300);
    let stack = Stack::start(options).await.unwrap();
    let store = stack.onboard(STORE).await.unwrap();
    let neighbour = stack.onboard(NEIGHBOUR).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state: PathBuf = dir.path().join("module.json");

    // The neighbour has a synced invoice whose status must not leak.
    let theirs = ledger_stack::events::invoice_created(NEIGHBOUR, 42);
    assert_eq!(
        stack.post_event(&neighbour, &theirs.body).await.unwrap().0,
        202
    );

    // Pairing: the module asks for a code, the merchant enters it on the hosted side, the
    // module collects its key.
    let started = module(&state, &["start", "--gateway", &stack.gateway_url]);
    let code = started["code"]
        .as_str()
        .unwrap_or_else(|| panic!("{started}"));
    let claimed = reqwest::Client::new()
        .post(format!(
            "{}/v1/admin/merchants/{STORE}/pairings",
            stack.gateway_url
        ))
        .bearer_auth(ledger_stack::ADMIN_TOKEN)
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(claimed.status().as_u16(), 200);
    let paired = module(&state, &["complete", "--wait", "10"]);
    assert_eq!(paired["state"], "paired", "{paired}");
    assert_eq!(paired["merchant_id"], STORE);

    // Three invoices and their customer, published by the module's relay with its own key.
    let published = module(&state, &["publish", "--invoices", "3"]);
    assert_eq!(published["failed"], 0, "{published}");
    assert_eq!(published["published"], 4, "{published}");
    assert!(
        stack
            .wait_until(Duration::from_secs(30), || stack
                .documents(&store, "sales_invoices")
                .len()
                >= 3)
            .await,
        "the module's invoices did not reach Sage: {:?}",
        stack.documents(&store, "sales_invoices").len()
    );
    let invoices = stack.documents(&store, "sales_invoices");
    assert_eq!(invoices.len(), 3);
    assert_eq!(stack.documents(&store, "contacts").len(), 1);
    // Cent-exact: what Sage holds is what the module serialized.
    let logged = logged_invoices(&nats, STORE).await;
    assert_eq!(logged.len(), 3);
    let magento_total: Decimal = logged
        .iter()
        .map(|e| amount(&e["payload"]["invoice"]["grand_total"]))
        .sum();
    let sage_total: Decimal = invoices.iter().map(|i| amount(&i["total_amount"])).sum();
    assert_eq!(sage_total, magento_total);
    assert!(magento_total > Decimal::ZERO);

    // The same outbox rows again: JetStream recognises the event ids; Sage gets nothing new.
    let in_log = stream_count(&nats, STORE).await;
    let again = module(&state, &["republish"]);
    assert_eq!(again["failed"], 0, "{again}");
    assert_eq!(again["event_ids"], published["event_ids"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stream_count(&nats, STORE).await, in_log);
    assert_eq!(stack.documents(&store, "sales_invoices").len(), 3);
    assert_eq!(stack.documents(&store, "contacts").len(), 1);

    // The key is the store's alone: no publishing as the neighbour ...
    let neighbour_events = stream_count(&nats, NEIGHBOUR).await;
    let foreign = module(&state, &["publish-foreign", "--merchant", NEIGHBOUR]);
    assert_eq!(foreign["published"], 0, "{foreign}");
    assert!(
        foreign["error"]
            .as_str()
            .unwrap_or("")
            .contains("Permissions Violation"),
        "{foreign}"
    );
    assert_eq!(stream_count(&nats, NEIGHBOUR).await, neighbour_events);
    // ... and no reading the neighbour's status, even when asking for it.
    let status = module(&state, &["status", "--merchant", NEIGHBOUR]);
    assert_eq!(status["http_status"], 200, "{status}");
    let keys: Vec<String> = status["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["document_key"].as_str().map(String::from))
        .collect();
    assert!(
        keys.iter().filter(|k| k.starts_with("invoice:")).count() >= 3,
        "{keys:?}"
    );
    assert!(
        !keys.contains(&"invoice:1:000100042".to_string()),
        "{keys:?}"
    );

    // Disconnect: the key is revoked; the same key neither publishes nor reads.
    let disconnected = module(&state, &["disconnect"]);
    assert_eq!(disconnected["revoked"], true, "{disconnected}");
    let after = module(&state, &["republish"]);
    assert_eq!(after["published"], 0, "{after}");
    assert!(
        after["errors"]
            .to_string()
            .contains("Authorization Violation"),
        "{after}"
    );
    assert_eq!(stream_count(&nats, STORE).await, in_log);
    let status = module(&state, &["status"]);
    assert_eq!(status["http_status"], 401, "{status}");
    stack.stop().await;
}
