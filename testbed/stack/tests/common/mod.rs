//! What the end-to-end test files share: a stack on its own NATS and database.
#![allow(dead_code)] // each test file uses part of it

pub mod portal;
pub mod stores;

use std::time::Duration;

use ledger_stack::events::Draft;
use ledger_stack::{Merchant, Stack, StackOptions};
use ledger_testkit::{TestDb, TestNats};
use rust_decimal::Decimal;
use sage_sandbox::SandboxConfig;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;
use sqlx::PgPool;

/// Starts a private nats-server, a fresh database and the whole engine on them, with
/// `concurrency` merchants at once per service and the given sandbox; logs as `name`.
pub async fn stack_with(
    name: &'static str,
    concurrency: usize,
    sandbox: SandboxConfig,
) -> (Stack, TestNats, TestDb) {
    let _ = ledger_runtime::telemetry::init(name);
    let nats = TestNats::start().await.expect("nats");
    let db = TestDb::create().await.expect("db");
    let stack = Stack::start(StackOptions {
        sandbox,
        concurrency,
        ..StackOptions::new(nats.url(), db.url())
    })
    .await
    .expect("stack starts");
    (stack, nats, db)
}

/// [`stack_with`] the stack's default sandbox (Sage's rate limit, see
/// [`ledger_stack::sandbox_config`]).
pub async fn stack(name: &'static str, concurrency: usize) -> (Stack, TestNats, TestDb) {
    stack_with(name, concurrency, ledger_stack::sandbox_config()).await
}

/// Asks a service over NATS request/reply and waits up to 30 s.
pub async fn ask<Req: Serialize, Resp: DeserializeOwned>(
    stack: &Stack,
    subject: &str,
    request: &Req,
) -> Resp {
    ledger_runtime::bus::request_json(&stack.nats, subject, request, Duration::from_secs(30))
        .await
        .unwrap()
}

/// How long the helpers below wait for the engine.
pub const WAIT: Duration = Duration::from_secs(60);

/// Publishes through the gateway (schema validation included) and expects it accepted.
pub async fn publish(stack: &Stack, merchant: &Merchant, draft: &Draft) {
    let event = draft.build();
    let (status, answer) = stack.post_event(merchant, &event.body).await.expect("post");
    assert_eq!(status, 202, "gateway accepts the event: {answer}");
}

/// Waits until the sandbox holds `n` records of `resource` for the merchant.
pub async fn wait_count(
    stack: &Stack,
    merchant: &Merchant,
    resource: &str,
    n: usize,
) -> Vec<Value> {
    let reached = stack
        .wait_until(WAIT, || stack.documents(merchant, resource).len() >= n)
        .await;
    let found = stack.documents(merchant, resource);
    assert!(
        reached,
        "expected {n} {resource}, found {}: {found:#?}",
        found.len()
    );
    found
}

/// An amount from Sage JSON (string or number).
pub fn dec(v: &Value) -> Decimal {
    ledger_stack::events::amount(v)
}

/// The document with this Sage reference.
pub fn by_reference<'a>(docs: &'a [Value], reference: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["reference"].as_str() == Some(reference))
        .unwrap_or_else(|| panic!("no document with reference {reference}: {docs:#?}"))
}

/// A pool on a service's own schema.
pub async fn schema(db: &TestDb, name: &str) -> PgPool {
    ledger_runtime::db::connect_schema(db.url(), name, 2)
        .await
        .expect("schema pool")
}

/// Asserts that neither the documents nor the payments service dead-lettered anything of the merchant.
pub async fn no_dead_letters(stack: &Stack, merchant: &Merchant) {
    // Give a late failure the chance to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for service in ["documents", "payments"] {
        use ledger_runtime::dead_letters::{subject, Answer, Command};
        let answer: Answer = ledger_runtime::bus::request_json(
            &stack.nats,
            &subject(service),
            &Command::List {
                merchant: Some(merchant.id.clone()),
            },
            Duration::from_secs(30),
        )
        .await
        .unwrap();
        match answer {
            Answer::Listed { dead_letters } => {
                assert!(dead_letters.is_empty(), "{service}: {dead_letters:#?}")
            }
            other => panic!("{other:?}"),
        }
    }
}

/// Waits for the (reason, detail) a service recorded for a skipped document or payment.
pub async fn wait_skip(pool: &PgPool, table: &str, key: &str) -> (String, String) {
    wait_skip_where(pool, table, key, |_| true).await
}

/// Waits until a service records the document or payment as skipped with `reason` (it may
/// be recorded with another first), and returns the detail.
pub async fn wait_skip_as(pool: &PgPool, table: &str, key: &str, reason: &str) -> String {
    wait_skip_where(pool, table, key, |got| got == reason)
        .await
        .1
}

async fn wait_skip_where(
    pool: &PgPool,
    table: &str,
    key: &str,
    wanted: impl Fn(&str) -> bool,
) -> (String, String) {
    let started = std::time::Instant::now();
    loop {
        let row: Option<(String, String)> = sqlx::query_as(&format!(
            "SELECT reason, detail FROM {table} WHERE document_key = $1"
        ))
        .bind(key)
        .fetch_optional(pool)
        .await
        .expect("query");
        match row {
            Some(row) if wanted(&row.0) => return row,
            last => assert!(
                started.elapsed() < WAIT,
                "{key} never skipped as wanted in {table} (last {last:?})"
            ),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The invoice as a free order: a 100 % discount brings its grand total to 0.00.
pub fn zero_total(mut draft: Draft) -> Draft {
    let inv = &mut draft.value_mut()["payload"]["invoice"];
    let subtotal = inv["subtotal_incl_tax"].as_f64().unwrap();
    inv["discount_amount"] = serde_json::json!(-subtotal);
    inv["base_discount_amount"] = serde_json::json!(-subtotal);
    for field in [
        "grand_total",
        "base_grand_total",
        "tax_amount",
        "base_tax_amount",
    ] {
        inv[field] = serde_json::json!(0);
    }
    draft
}

/// The invoice as free samples: every price, tax, discount and total on it and its lines is
/// 0.00 (quantities, ids and rates unchanged).
pub fn free_samples(mut draft: Draft) -> Draft {
    fn zero_money(object: &mut Value) {
        if let Some(fields) = object.as_object_mut() {
            for (key, value) in fields.iter_mut() {
                let money = ["total", "amount", "price", "shipping"]
                    .iter()
                    .any(|m| key.contains(m))
                    && !key.ends_with("_id")
                    && !key.contains("qty");
                if money && value.is_number() {
                    *value = serde_json::json!(0);
                }
            }
        }
    }
    let inv = &mut draft.value_mut()["payload"]["invoice"];
    zero_money(inv);
    for item in inv["items"].as_array_mut().expect("items") {
        zero_money(item);
    }
    draft
}
