//! The Sage gate across "replicas": two gated clients on one NATS never POST to the same
//! business and endpoint at once, and the per-business budget throttles.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ledger_rpc::{GateLimits, GatedSage, SageGate};
use ledger_runtime::ProcessError;
use ledger_testkit::TestNats;
use sage_client::{AccessToken, AccessTokenSource, OAuthClient, SageClient, SageConfig, SageError};
use sage_sandbox::{BusinessSpec, FaultKind, FaultPlan, Sandbox, SandboxConfig};
use serde_json::json;

/// A token obtained once from the sandbox's code exchange (the gateway's job in production).
struct FixedToken(AccessToken);

#[async_trait::async_trait]
impl AccessTokenSource for FixedToken {
    async fn access_token(&self, _merchant: &str) -> Result<AccessToken, SageError> {
        Ok(self.0.clone())
    }
    async fn invalidate(&self, _merchant: &str, _stale: &str) -> Result<(), SageError> {
        Ok(())
    }
}

async fn client(sandbox: &Sandbox) -> (SageClient, String) {
    let business = sandbox.create_business(BusinessSpec::default()).await;
    let mut config =
        SageConfig::sage_production("ledger-dev", "ledger-dev-secret", "http://localhost/cb");
    config.api_base_url = sandbox.api_base_url();
    config.token_url = sandbox.token_url();
    let code = sandbox.issue_authorization_code(&business.id).await;
    let tokens = OAuthClient::new(config.clone())
        .exchange_code(&code)
        .await
        .unwrap();
    let source = FixedToken(AccessToken {
        token: tokens.access_token,
        business_id: business.id.clone(),
        expires_at: Utc::now() + chrono::Duration::minutes(5),
    });
    (SageClient::new(config, Arc::new(source)), business.id)
}

fn contact(i: usize) -> serde_json::Value {
    json!({"name": format!("Customer {i}"), "contact_type_ids": ["CUSTOMER"], "reference": format!("GATE{i}")})
}

async fn post_from_two_replicas(a: GatedSage, b: GatedSage) {
    let mut tasks = Vec::new();
    for (i, sage) in [a, b].into_iter().cycle().take(8).enumerate() {
        tasks.push(tokio::spawn(async move {
            sage.post("m1", "contacts", "contact", contact(i), None)
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_take_turns_posting_to_one_business_endpoint() {
    let nats = TestNats::start().await.unwrap();
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let (sage, _) = client(&sandbox).await;
    sandbox
        .faults()
        .set(FaultPlan::new(FaultKind::Latency { ms: 30 }));
    let limits = GateLimits {
        calls_per_minute: 0,
        max_concurrent: 16,
    };
    // Two processes' worth of gates: separate connections, shared NATS KV.
    let js_a = async_nats::jetstream::new(nats.connect().await.unwrap());
    let js_b = async_nats::jetstream::new(nats.connect().await.unwrap());
    let a = GatedSage::new(
        sage.clone(),
        Arc::new(SageGate::new(&js_a, limits.clone()).await.unwrap()),
    );
    let b = GatedSage::new(
        sage.clone(),
        Arc::new(SageGate::new(&js_b, limits).await.unwrap()),
    );
    post_from_two_replicas(a, b).await;
    assert!(
        sandbox.inspect().concurrency_violations().is_empty(),
        "{:?}",
        sandbox.inspect().concurrency_violations()
    );

    // The same load without the gate overlaps, which the sandbox detects: the check above can fail.
    let mut tasks = Vec::new();
    for i in 100..108 {
        let sage = sage.clone();
        tasks.push(tokio::spawn(async move {
            sage.post("m1", "contacts", "contact", contact(i), None)
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(!sandbox.inspect().concurrency_violations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_business_budget_throttles_until_the_window_turns() {
    let nats = TestNats::start().await.unwrap();
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let (sage, _) = client(&sandbox).await;
    let js = async_nats::jetstream::new(nats.connect().await.unwrap());
    let gate = Arc::new(
        SageGate::new(
            &js,
            GateLimits {
                calls_per_minute: 5,
                max_concurrent: 4,
            },
        )
        .await
        .unwrap(),
    );
    let gated = GatedSage::new(sage, gate.clone());
    // Close to a minute boundary the window could turn mid-test; wait for a fresh one then.
    let secs = Utc::now().timestamp() % 60;
    if secs > 50 {
        tokio::time::sleep(Duration::from_secs((61 - secs) as u64)).await;
    }
    for _ in 0..5 {
        gated.get("m1", "currencies", &[]).await.unwrap();
    }
    let err = gated.get("m1", "currencies", &[]).await.unwrap_err();
    match ledger_rpc::sage_error_to_process(err) {
        ProcessError::Throttled { retry_after } => assert!(retry_after <= Duration::from_secs(61)),
        other => panic!("expected a throttle, got {other}"),
    }
    // Another merchant's budget is its own.
    gated.get("m2", "currencies", &[]).await.unwrap();
}

/// The gate's buckets are in memory, so a nats-server restart loses them: the gate must create
/// them again and go on (budget and lease), not fail every later Sage call.
#[tokio::test]
async fn the_gate_recreates_its_buckets_after_a_nats_server_restart() {
    let mut nats = TestNats::start().await.unwrap();
    let client = nats.connect().await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let gate = SageGate::new(
        &js,
        GateLimits {
            calls_per_minute: 100,
            max_concurrent: 4,
        },
    )
    .await
    .unwrap();
    let guarded = || async { Ok::<_, ProcessError>(7) };
    gate.spend("m1").await.unwrap();
    assert_eq!(
        gate.exclusive("m1", "contacts", guarded()).await.unwrap(),
        7
    );

    nats.restart().await.unwrap();
    let reconnected = tokio::time::Instant::now() + Duration::from_secs(20);
    while client.connection_state() != async_nats::connection::State::Connected {
        assert!(tokio::time::Instant::now() < reconnected, "no reconnect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    gate.spend("m1")
        .await
        .expect("the budget works after the restart");
    assert_eq!(
        gate.exclusive("m1", "contacts", guarded())
            .await
            .expect("the lease works after the restart"),
        7
    );
}
