//! A stopping service's RPC endpoints against a real nats-server: they take no new request,
//! and the answers under way go out before the service lets its process exit.
//!
//! Its own test binary: the count of requests being answered is process-wide.

use std::time::{Duration, Instant};

use ledger_runtime::bus;
use ledger_runtime::micro::{self, Reply};
use ledger_runtime::shutdown::Shutdown;
use ledger_testkit::TestNats;
use serde_json::{json, Value};

const SUBJECT: &str = "ledger.rpc.stoptest.slow";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_endpoint_answers_what_it_took_and_takes_nothing_new() {
    let nats = TestNats::start().await.unwrap();
    let client = nats.connect().await.unwrap();
    let shutdown = Shutdown::new();
    micro::serve(
        &client,
        "stoptest",
        "slow",
        SUBJECT,
        shutdown.clone(),
        |_msg| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some(Reply::ok(&json!({"answered": true})))
        },
    )
    .await
    .unwrap();
    client.flush().await.unwrap();

    let asker = client.clone();
    let taken = tokio::spawn(async move {
        bus::request_json::<_, Value>(&asker, SUBJECT, &json!({}), Duration::from_secs(30)).await
    });
    // Taken and under way (the handler sleeps a second), then the service stops.
    for _ in 0..100 {
        if micro::in_flight() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(micro::in_flight(), 1, "the request is being answered");
    let stopped = Instant::now();
    shutdown.trigger();

    // The process waits for the answer it owes before exiting.
    assert!(micro::answered(Duration::from_secs(5)).await);
    let waited = stopped.elapsed();
    assert!(
        waited >= Duration::from_millis(500),
        "waited for the answer under way: {waited:?}"
    );
    assert_eq!(micro::in_flight(), 0);
    let reply = tokio::time::timeout(Duration::from_secs(2), taken)
        .await
        .expect("the asker has its answer")
        .unwrap()
        .unwrap();
    assert_eq!(reply, json!({"answered": true}));

    // A request after the stop is refused at once (no responder), not left to time out.
    let asked = Instant::now();
    let refused =
        bus::request_json::<_, Value>(&client, SUBJECT, &json!({}), Duration::from_secs(30))
            .await
            .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("no service answers this subject"),
        "{refused}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
}
