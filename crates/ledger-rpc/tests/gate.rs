//! The Sage gate across "replicas": two gated clients on one NATS never POST to the same
//! business and endpoint at once, share one smooth per-business budget that no rolling window
//! exceeds, and both pause when Sage answers 429.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger_rpc::{GateLimits, GatedSage, SageGate};
use ledger_runtime::ProcessError;
use ledger_testkit::TestNats;
use sage_sandbox::{FaultKind, FaultPlan, Sandbox, SandboxConfig};
use serde_json::json;

mod common;
use common::client;

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
        ..GateLimits::default()
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

/// Two "replicas" (gates on their own NATS connections) of the same budget.
async fn two_gates(nats: &TestNats, limits: GateLimits) -> (Arc<SageGate>, Arc<SageGate>) {
    let mut gates = Vec::new();
    for _ in 0..2 {
        let js = async_nats::jetstream::new(nats.connect().await.unwrap());
        gates.push(Arc::new(SageGate::new(&js, limits.clone()).await.unwrap()));
    }
    let b = gates.pop().unwrap();
    (gates.pop().unwrap(), b)
}

/// The most entries of `sorted` (ms) in any rolling window `(t − window, t]`.
fn busiest_window(sorted: &[u64], window_ms: u64) -> usize {
    let mut first = 0;
    let mut most = 0;
    for (last, &t) in sorted.iter().enumerate() {
        while sorted[first] + window_ms <= t {
            first += 1;
        }
        most = most.max(last - first + 1);
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_hammering_one_business_share_one_smooth_budget() {
    let nats = TestNats::start().await.unwrap();
    // The minute scaled down to 5 s: 101 calls per rolling 5 s, bursts of 2, a 50 ms margin,
    // so T = 5 050 000 µs / 100 = 50 500 µs.
    let (budget, window_ms, run) = (101u64, 5_000u64, Duration::from_secs(15));
    let limits = GateLimits {
        calls_per_minute: budget as u32,
        burst: 2,
        window_ms,
        margin_ms: 50,
        ..GateLimits::default()
    };
    assert_eq!(
        limits.pace().unwrap().interval(),
        Duration::from_micros(50_500)
    );
    let (a, b) = two_gates(&nats, limits).await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    // Four callers per replica, each calling as soon as it is told it may.
    for gate in [a.clone(), b.clone()].into_iter().cycle().take(8) {
        tasks.push(tokio::spawn(async move {
            let (mut allowed, mut throttled) = (Vec::new(), 0u32);
            while started.elapsed() < run {
                match gate.spend("m1").await {
                    Ok(()) => allowed.push(started.elapsed().as_millis() as u64),
                    Err(ProcessError::Throttled { retry_after }) => {
                        assert!(
                            retry_after <= Duration::from_micros(50_500 * 2),
                            "{retry_after:?}"
                        );
                        throttled += 1;
                        tokio::time::sleep(retry_after).await;
                    }
                    Err(other) => panic!("{other}"),
                }
            }
            (allowed, throttled)
        }));
    }
    let (mut allowed, mut throttled) = (Vec::new(), 0);
    for t in tasks {
        let (calls, refusals) = t.await.unwrap();
        allowed.extend(calls);
        throttled += refusals;
    }
    allowed.retain(|&t| t < run.as_millis() as u64);
    allowed.sort_unstable();
    let most = busiest_window(&allowed, window_ms);
    let allows = budget * run.as_millis() as u64 / window_ms;
    println!(
        "budget: {} calls in {run:?} (window allows {allows}, {:.1} %), busiest {window_ms} ms window {most}/{budget}, {throttled} throttled",
        allowed.len(),
        100.0 * allowed.len() as f64 / allows as f64
    );
    assert!(most <= budget as usize, "{most} calls in one window");
    assert!(
        allowed.len() as u64 * 100 >= allows * 95,
        "only {} of {allows}",
        allowed.len()
    );
    // Another merchant's budget is its own.
    a.spend("m2").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_pauses_the_business_on_every_replica_for_its_retry_after() {
    let nats = TestNats::start().await.unwrap();
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let (sage, business) = client(&sandbox).await;
    let (gate_a, gate_b) = two_gates(&nats, GateLimits::default()).await;
    let a = GatedSage::new(sage.clone(), gate_a.clone());
    let b = GatedSage::new(sage, gate_b);
    a.get("m1", "currencies", &[]).await.unwrap();
    sandbox.faults().set(
        FaultPlan::new(FaultKind::Rate429 {
            retry_after_secs: Some(2),
        })
        .for_business(&business)
        .times(1),
    );
    // Replica A meets Sage's 429 …
    let met = Instant::now();
    let err = a.get("m1", "currencies", &[]).await.unwrap_err();
    match ledger_rpc::sage_error_to_process(err) {
        ProcessError::Throttled { retry_after } => {
            assert_eq!(retry_after, Duration::from_secs(2))
        }
        other => panic!("expected a throttle, got {other}"),
    }
    let sent = sandbox.inspect().stats().count("GET", "/v3.1/currencies");
    // … and replica B, and A's next call, wait the rest of the 2 s without calling Sage.
    for gated in [&b, &a] {
        let err = gated.get("m1", "currencies", &[]).await.unwrap_err();
        match ledger_rpc::sage_error_to_process(err) {
            ProcessError::Throttled { retry_after } => {
                let left = Duration::from_secs(2).saturating_sub(met.elapsed());
                assert!(
                    retry_after <= Duration::from_secs(2)
                        && retry_after + Duration::from_millis(250) >= left,
                    "{retry_after:?} vs {left:?} left"
                );
            }
            other => panic!("expected a throttle, got {other}"),
        }
    }
    assert_eq!(
        sandbox.inspect().stats().count("GET", "/v3.1/currencies"),
        sent,
        "a paused business must not reach Sage"
    );
    // Another business is not paused.
    b.get("m2", "currencies", &[]).await.unwrap();
    // Once the pause is over, both go on.
    tokio::time::sleep(
        Duration::from_secs(2).saturating_sub(met.elapsed()) + Duration::from_millis(20),
    )
    .await;
    b.get("m1", "currencies", &[]).await.unwrap();
    a.get("m1", "currencies", &[]).await.unwrap();
    assert_eq!(
        gate_a.budget_left("m1").await.unwrap(),
        Some(0),
        "after a pause calls resume at the steady pace, without a burst"
    );
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
            ..GateLimits::default()
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
