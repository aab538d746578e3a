//! Request/reply as NATS services against a real nats-server: requests keep their own
//! timeout, a slow request does not hold up the next, `$SRV.INFO` lists the endpoints and
//! failures carry the standard service error headers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::service::{Info, NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
use bytes::Bytes;
use futures::StreamExt;
use ledger_runtime::bus::{self, StreamSettings};
use ledger_runtime::consumer::{Delivery, Handler, Outcome};
use ledger_runtime::dead_letters::{self, Answer, Command};
use ledger_runtime::micro::{self, Reply};
use ledger_runtime::shutdown::Shutdown;
use ledger_runtime::{audit, journal, replay, ProcessError};
use ledger_testkit::{TestDb, TestNats};
use serde_json::{json, Value};

/// Takes `delay` over every event it handles, and notes the stream sequences it saw.
#[derive(Default)]
struct Slow {
    delay: Duration,
    seen: std::sync::Mutex<Vec<u64>>,
}

#[async_trait::async_trait]
impl Handler for Slow {
    async fn handle(&self, d: &Delivery) -> Result<Outcome, ProcessError> {
        tokio::time::sleep(self.delay).await;
        self.seen.lock().unwrap().push(d.stream_sequence);
        Ok(Outcome::Applied)
    }

    async fn dead_letter(&self, _: &Delivery, _: &ProcessError) -> Result<(), ProcessError> {
        Ok(())
    }
}

/// A nats-server with the events stream, a database with the journal and audit tables, and
/// a client.
async fn server_and_database() -> (TestNats, TestDb, async_nats::Client) {
    let nats = TestNats::start().await.unwrap();
    let db = TestDb::create().await.unwrap();
    journal::migrate(db.pool()).await.unwrap();
    audit::migrate(db.pool()).await.unwrap();
    let client = nats.connect().await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    bus::ensure_streams(&js, &StreamSettings::default())
        .await
        .unwrap();
    (nats, db, client)
}

/// Publishes an event of `merchant` to the events stream; its stream sequence.
async fn publish_event(client: &async_nats::Client, merchant: &str) -> u64 {
    let js = async_nats::jetstream::new(client.clone());
    let subject = format!("magento.{merchant}.invoice.created");
    js.publish(subject, Bytes::from_static(b"{}"))
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence
}

/// Records the event at `sequence` as a dead letter of `merchant`.
async fn record_refused(db: &TestDb, merchant: &str, sequence: u64) {
    let delivery = Delivery {
        subject: format!("magento.{merchant}.invoice.created"),
        merchant: merchant.into(),
        payload: Bytes::from_static(b"{}"),
        headers: None,
        stream_sequence: sequence,
        delivered: 1,
        attempt: 1,
    };
    let refused = ProcessError::permanent("test.refused", "refused once");
    journal::record_dead_letter(db.pool(), &delivery, None, &refused)
        .await
        .unwrap();
}

/// Serves `service`'s dead letters through `handler`.
async fn serve_dead_letters(
    service: &'static str,
    client: &async_nats::Client,
    db: &TestDb,
    handler: Arc<Slow>,
    shutdown: &Shutdown,
) {
    dead_letters::serve(
        service,
        client.clone(),
        db.pool().clone(),
        handler,
        shutdown.clone(),
    )
    .await
    .unwrap();
}

/// The error of an empty request to `subject` that must fail.
async fn refusal(client: &async_nats::Client, subject: &str, timeout: Duration) -> String {
    bus::request_json::<_, Value>(client, subject, &json!({}), timeout)
        .await
        .unwrap_err()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_after_twenty_seconds_arrives_within_the_requests_own_timeout() {
    let nats = TestNats::start().await.unwrap();
    let client = nats.connect().await.unwrap();
    let shutdown = Shutdown::new();
    micro::serve(
        &client,
        "slow",
        "answer",
        "ledger.rpc.slow.answer",
        shutdown.clone(),
        |_| async {
            tokio::time::sleep(Duration::from_secs(20)).await;
            Some(Reply::ok(&json!({"answered": true})))
        },
    )
    .await
    .unwrap();
    let asker = nats.connect().await.unwrap();
    let started = Instant::now();
    let answer: Value = bus::request_json(
        &asker,
        "ledger.rpc.slow.answer",
        &json!({}),
        Duration::from_secs(40),
    )
    .await
    .expect("the client's 10 s default does not cut a 40 s request short");
    assert_eq!(answer, json!({"answered": true}));
    assert!(started.elapsed() >= Duration::from_secs(20));

    // And a request's own timeout still applies.
    let short = refusal(&asker, "ledger.rpc.slow.answer", Duration::from_secs(1)).await;
    assert!(short.contains("no reply within 1s"), "{short}");
    shutdown.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_dead_letter_retry_does_not_keep_a_listing_waiting() {
    let (nats, db, client) = server_and_database().await;
    let sequence = publish_event(&client, "slowshop").await;
    record_refused(&db, "slowshop", sequence).await;
    let shutdown = Shutdown::new();
    let handler = Arc::new(Slow {
        delay: Duration::from_secs(3),
        ..Slow::default()
    });
    serve_dead_letters("documents", &client, &db, handler, &shutdown).await;

    let asker = nats.connect().await.unwrap();
    let retrying = {
        let asker = asker.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let answer: Answer = bus::request_json(
                &asker,
                &dead_letters::subject("documents"),
                &Command::Retry {
                    ids: vec![],
                    merchant: Some("slowshop".into()),
                },
                Duration::from_secs(30),
            )
            .await
            .unwrap();
            (answer, started.elapsed())
        })
    };
    // Let the retry reach the handler, then list while it runs.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let listed: Answer = bus::request_json(
        &asker,
        &dead_letters::subject("documents"),
        &Command::List { merchant: None },
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let listing_took = started.elapsed();
    let (retried, retry_took) = retrying.await.unwrap();
    assert!(matches!(listed, Answer::Listed { .. }), "{listed:?}");
    assert!(
        listing_took < Duration::from_secs(1),
        "the listing waited {listing_took:?} behind the retry"
    );
    assert!(retry_took >= Duration::from_secs(3), "{retry_took:?}");
    let Answer::Retried { results } = retried else {
        panic!("{retried:?}")
    };
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].outcome, "applied");
    shutdown.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_info_lists_a_services_endpoints_and_failures_carry_the_error_headers() {
    let (nats, db, client) = server_and_database().await;
    let shutdown = Shutdown::new();
    let handler = Arc::new(Slow::default());
    serve_dead_letters("documents", &client, &db, handler.clone(), &shutdown).await;
    audit::serve(
        client.clone(),
        audit::AuditLog::new("documents", db.pool().clone()),
        shutdown.clone(),
    )
    .await
    .unwrap();
    replay::serve(
        "documents",
        client.clone(),
        db.pool().clone(),
        handler,
        vec!["magento.*.invoice.created".into()],
        shutdown.clone(),
    )
    .await
    .unwrap();

    let asker = nats.connect().await.unwrap();
    let info = asker
        .request("$SRV.INFO.documents", Bytes::new())
        .await
        .unwrap();
    let info: Info = serde_json::from_slice(&info.payload).unwrap();
    assert_eq!(info.name, "documents");
    let mut endpoints: Vec<(String, String, String)> = info
        .endpoints
        .iter()
        .map(|e| (e.name.clone(), e.subject.clone(), e.queue_group.clone()))
        .collect();
    endpoints.sort();
    assert_eq!(
        endpoints,
        vec![
            (
                "audit".to_string(),
                "ledger.rpc.documents.audit".to_string(),
                "ledger".to_string()
            ),
            (
                "dead_letters".to_string(),
                "ledger.rpc.documents.dead_letters".to_string(),
                "ledger".to_string()
            ),
            (
                "replay".to_string(),
                "ledger.rpc.documents.replay".to_string(),
                "ledger".to_string()
            ),
        ]
    );
    // One service instance for the three endpoints of this connection.
    let mut pongs = asker.subscribe("_INBOX.pings").await.unwrap();
    asker
        .publish_with_reply("$SRV.PING.documents", "_INBOX.pings", Bytes::new())
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(2), pongs.next())
        .await
        .unwrap();
    assert!(first.is_some());
    assert!(
        tokio::time::timeout(Duration::from_millis(500), pongs.next())
            .await
            .is_err(),
        "a second instance answered"
    );

    // A bad request: the body still carries the typed error, the headers the standard one.
    let bad = asker
        .request("ledger.rpc.documents.dead_letters", "not json".into())
        .await
        .unwrap();
    let headers = bad.headers.expect("error headers");
    assert_eq!(
        headers.get(NATS_SERVICE_ERROR_CODE).unwrap().as_str(),
        "400"
    );
    assert!(headers
        .get(NATS_SERVICE_ERROR)
        .unwrap()
        .as_str()
        .starts_with("bad request"));
    let body: Answer = serde_json::from_slice(&bad.payload).unwrap();
    assert!(matches!(body, Answer::Error { .. }), "{body:?}");
    // A good one has no error headers.
    let good = asker
        .request(
            "ledger.rpc.documents.dead_letters",
            serde_json::to_vec(&Command::List { merchant: None })
                .unwrap()
                .into(),
        )
        .await
        .unwrap();
    assert!(good
        .headers
        .as_ref()
        .and_then(|h| h.get(NATS_SERVICE_ERROR))
        .is_none());

    let stats = asker
        .request("$SRV.STATS.documents", Bytes::new())
        .await
        .unwrap();
    let stats: Value = serde_json::from_slice(&stats.payload).unwrap();
    let dead = stats["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "dead_letters")
        .unwrap()
        .clone();
    assert_eq!(dead["num_requests"], 2, "{dead}");
    assert_eq!(dead["data"][micro::ERROR_REPLIES], 1, "{dead}");

    // After shutdown the service is gone.
    shutdown.trigger();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let gone = asker
        .send_request(
            "$SRV.INFO.documents",
            async_nats::Request::new().timeout(Some(Duration::from_secs(1))),
        )
        .await;
    assert!(gone.is_err(), "still answering after shutdown");
}

#[tokio::test]
async fn a_reply_with_only_the_error_headers_is_an_error_naming_them() {
    let nats = TestNats::start().await.unwrap();
    let client = nats.connect().await.unwrap();
    let mut endpoint = micro::endpoint(
        &client,
        "bare",
        "fails",
        "ledger.rpc.bare.fails",
        micro::QUEUE_GROUP,
    )
    .await
    .unwrap();
    tokio::spawn(async move {
        while let Some(request) = endpoint.next().await {
            let _ = request
                .respond(Err(async_nats::service::error::Error {
                    status: "store unavailable".into(),
                    code: 503,
                }))
                .await;
        }
    });
    let error = refusal(&client, "ledger.rpc.bare.fails", Duration::from_secs(5)).await;
    assert!(
        error.contains("service error 503: store unavailable"),
        "{error}"
    );
    let none = refusal(&client, "ledger.rpc.nobody.home", Duration::from_secs(5)).await;
    assert!(none.contains("no service answers"), "{none}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_of_many_goes_in_batches_oldest_first_and_reports_progress() {
    let (nats, db, client) = server_and_database().await;
    // 45 dead letters, recorded newest event first.
    let mut sequences = Vec::new();
    for _ in 0..45 {
        sequences.push(publish_event(&client, "batchshop").await);
    }
    for &sequence in sequences.iter().rev() {
        record_refused(&db, "batchshop", sequence).await;
    }
    let shutdown = Shutdown::new();
    let handler = Arc::new(Slow::default());
    serve_dead_letters("payments", &client, &db, handler.clone(), &shutdown).await;

    let asker = nats.connect().await.unwrap();
    let mut heard = Vec::new();
    let results = dead_letters::retry_in_batches(
        &asker,
        "payments",
        vec![],
        Some("batchshop".into()),
        Duration::from_secs(30),
        |done, total, batch| heard.push((done, total, batch.len())),
    )
    .await
    .unwrap();
    assert_eq!(heard, vec![(20, 45, 20), (40, 45, 20), (45, 45, 5)]);
    assert_eq!(results.len(), 45);
    assert!(
        results.iter().all(|r| r.outcome == "applied"),
        "{results:?}"
    );
    assert_eq!(
        *handler.seen.lock().unwrap(),
        sequences,
        "oldest event first, across batches"
    );
    // Nothing is left to retry.
    let again = dead_letters::retry_in_batches(
        &asker,
        "payments",
        vec![],
        Some("batchshop".into()),
        Duration::from_secs(30),
        |_, _, _| panic!("no batch to report"),
    )
    .await
    .unwrap();
    assert!(again.is_empty());
    shutdown.trigger();
}
