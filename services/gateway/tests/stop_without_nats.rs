//! A gateway whose NATS servers are gone still stops promptly when told to.

use std::time::{Duration, Instant};

use clap::Parser;
use ledger_runtime::shutdown::Shutdown;
use ledger_testkit::{TestDb, TestNats};

/// A gateway configuration on `nats_url` and `database_url`, every listener on a free port.
fn config(nats_url: &str, database_url: &str) -> gateway::Config {
    gateway::Config::try_parse_from([
        "gateway",
        "--http-addr",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
        "--nats-url",
        nats_url,
        "--database-url",
        database_url,
        "--sage-client-id",
        "ledger-test",
        "--sage-client-secret",
        "not-a-secret",
        "--token-key",
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        "--admin-token",
        "an-admin-token-of-at-least-32-characters",
    ])
    .expect("valid flags")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_within_seconds_after_its_nats_server_is_gone() {
    let mut nats = TestNats::start().await.unwrap();
    let db = TestDb::create().await.unwrap();
    let shutdown = Shutdown::new();
    let run = tokio::spawn(gateway::run(
        config(&nats.url(), db.url()),
        shutdown.clone(),
    ));
    // Serving once its NATS service answers a ping (its responders start after the streams
    // and the database).
    let client = nats.connect().await.unwrap();
    let mut serving = false;
    for _ in 0..300 {
        let ping = client.request("$SRV.PING.gateway", "".into());
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(200), ping).await {
            serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(serving, "gateway started");
    assert!(!run.is_finished());

    nats.stop();
    // Its client is reconnecting now (it never gives up).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopping = Instant::now();
    shutdown.trigger();
    let stopped = tokio::time::timeout(Duration::from_secs(10), run).await;
    let took = stopping.elapsed();
    stopped
        .expect("the gateway stopped within 10 s without NATS")
        .unwrap()
        .unwrap();
    assert!(
        took <= gateway::STOP_FLUSH_LIMIT + Duration::from_secs(1),
        "stopped within its flush limit: {took:?}"
    );
}
