//! What the end-to-end test files share: a stack on its own NATS and database.
#![allow(dead_code)] // each test file uses part of it

pub mod stores;

use std::time::Duration;

use ledger_stack::{Stack, StackOptions};
use ledger_testkit::{TestDb, TestNats};
use sage_sandbox::SandboxConfig;
use serde::{de::DeserializeOwned, Serialize};

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

/// [`stack_with`] the default sandbox.
pub async fn stack(name: &'static str, concurrency: usize) -> (Stack, TestNats, TestDb) {
    stack_with(name, concurrency, SandboxConfig::default()).await
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
