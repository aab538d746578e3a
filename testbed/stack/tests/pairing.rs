//! Pairing and store access, on a NATS server run with the shipped configuration
//! (`deploy/nats/nats-server.conf`, auth callout answered by the gateway):
//! - the handshake: a single-use code, claimed on the hosted side, delivers a key once;
//! - a store's key publishes its own events and nothing else: not another merchant's subjects,
//!   not the status stream, not the JetStream API; over HTTPS it reads only its own status;
//! - a revoked key cannot log in again, and its open connection ends with its session.

use std::time::Duration;

mod common;

use common::stores::*;

use tokio::sync::mpsc;

const SESSION_TTL_SECS: u64 = 3;

async fn next_event_matching(rx: &mut mpsc::UnboundedReceiver<String>, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let event = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no event containing {needle:?} within 10 s"))
            .expect("event channel open");
        if event.to_lowercase().contains(&needle.to_lowercase()) {
            return event;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_code_pairs_once_and_delivers_its_key_once() {
    let (stack, _nats, db) = secured_stack("pairing", SESSION_TTL_SECS).await;
    stack.onboard("codes").await.unwrap();
    stack.onboard("other").await.unwrap();

    let pending = request_pairing(&stack).await;
    assert_eq!(pending.code.len(), 9, "XXXX-XXXX: {}", pending.code);
    // Before the code is entered the store keeps waiting.
    let (status, body) = poll(&stack, &pending, &pending.poll_secret).await;
    assert_eq!((status, body["state"].as_str()), (200, Some("pending")));
    // Only the store that asked can poll.
    let (status, _) = poll(&stack, &pending, "not-the-poll-secret").await;
    assert_eq!(status, 401);
    // A mistyped code names the field.
    let (status, body) = claim(&stack, "codes", "ABC").await;
    assert_eq!(status, 422, "{body}");
    assert!(body["message"].as_str().unwrap().starts_with("code:"));
    let (status, body) = claim(&stack, "codes", "ZZZZ-ZZZZ").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("pairing_code_unknown"))
    );

    let (status, _) = claim(&stack, "codes", &pending.code).await;
    assert_eq!(status, 200);
    // Single use: the same code cannot pair a second merchant.
    let (status, body) = claim(&stack, "other", &pending.code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("pairing_code_used"))
    );

    let (status, body) = poll(&stack, &pending, &pending.poll_secret).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["merchant_id"], "codes");
    assert!(body["credentials"]["key_id"]
        .as_str()
        .unwrap()
        .starts_with("mk_"));
    // Replies reach the store on an inbox of its own, which no other store can name.
    assert!(body["nats"]["inbox_prefix"]
        .as_str()
        .unwrap()
        .starts_with("_INBOX.codes."));
    // The key is handed over once.
    let (status, body) = poll(&stack, &pending, &pending.poll_secret).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (410, Some("pairing_consumed"))
    );

    // A code not entered within 30 minutes is dead, for the hosted side and for the store.
    let late = request_pairing(&stack).await;
    sqlx::query(
        "UPDATE gateway.pairings SET expires_at = now() - interval '1 second' WHERE pairing_id = $1",
    )
    .bind(&late.pairing_id)
    .execute(db.pool())
    .await
    .unwrap();
    let (status, body) = claim(&stack, "codes", &late.code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (410, Some("pairing_code_expired"))
    );
    let (status, body) = poll(&stack, &late, &late.poll_secret).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (410, Some("pairing_expired"))
    );

    // The operator sees the key and where it came from.
    let (status, body) = call(
        reqwest::Method::GET,
        format!("{}/v1/admin/merchants/codes/keys", stack.gateway_url),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["keys"].as_array().unwrap().len(), 1);
    assert_eq!(body["keys"][0]["label"], "https://shop.example");
    assert!(body["keys"][0]["revoked_at"].is_null());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_key_reaches_only_its_own_subjects_until_revoked() {
    let (stack, nats, _db) = secured_stack("pairing", SESSION_TTL_SECS).await;
    let a = stack.onboard("store-a").await.unwrap();
    let b = stack.onboard("store-b").await.unwrap();
    let key_a = pair(&stack, "store-a").await;
    let key_b = pair(&stack, "store-b").await;

    // B syncs an invoice with its own key first, so that there is B status to leak.
    let (client_b, _events_b) = store_client(&key_b).await.expect("store B logs in");
    publish_own(&client_b, "store-b", 7).await;
    assert!(
        stack
            .wait_until(Duration::from_secs(20), || !stack
                .documents(&b, "sales_invoices")
                .is_empty())
            .await,
        "store B's invoice did not reach Sage"
    );

    // Nobody gets in without a key, or with a wrong secret.
    let anonymous = async_nats::ConnectOptions::new()
        .max_reconnects(Some(1))
        .connect(nats.address())
        .await;
    assert!(anonymous.is_err(), "an anonymous client was let in");
    let wrong = store_client(&Key {
        secret: "0".repeat(64),
        ..key_a.clone()
    })
    .await;
    assert!(wrong.is_err(), "a wrong secret was let in");

    let (client_a, mut events_a) = store_client(&key_a).await.expect("store A logs in");
    let js_a = async_nats::jetstream::new(client_a.clone());

    // A publishes its own invoice straight into JetStream and it reaches Sage.
    publish_own(&client_a, "store-a", 1).await;
    assert!(
        stack
            .wait_until(Duration::from_secs(20), || !stack
                .documents(&a, "sales_invoices")
                .is_empty())
            .await,
        "the store's invoice did not reach Sage"
    );

    // A cannot publish B's events: the server refuses and nothing lands on B's subjects.
    let forged = ledger_stack::events::invoice_created("store-b", 1);
    let b_messages = stream_messages_on(&nats, "magento.store-b.>").await;
    assert_eq!(b_messages, 1, "B's own invoice");
    client_a
        .publish(
            "magento.store-b.invoice.created",
            forged.body.clone().into(),
        )
        .await
        .unwrap();
    client_a.flush().await.unwrap();
    let violation = next_event_matching(&mut events_a, "permissions violation").await;
    assert!(
        violation.contains("magento.store-b.invoice.created"),
        "{violation}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        stream_messages_on(&nats, "magento.store-b.>").await,
        b_messages
    );

    // Nor put anything but its five kinds of event into the log.
    let own_before = stream_messages_on(&nats, "magento.store-a.>").await;
    client_a
        .publish("magento.store-a.junk.thing", "{}".into())
        .await
        .unwrap();
    client_a.flush().await.unwrap();
    let violation = next_event_matching(&mut events_a, "permissions violation").await;
    assert!(
        violation.contains("magento.store-a.junk.thing"),
        "{violation}"
    );
    assert_eq!(
        stream_messages_on(&nats, "magento.store-a.>").await,
        own_before
    );

    // A cannot read B's status, or anyone's, from the status stream ...
    let _sub = client_a.subscribe("ledger.status.store-b").await.unwrap();
    client_a.flush().await.unwrap();
    let violation = next_event_matching(&mut events_a, "permissions violation").await;
    assert!(violation.contains("ledger.status.store-b"), "{violation}");
    // ... nor reach the JetStream API to make itself a consumer.
    assert!(
        tokio::time::timeout(
            Duration::from_secs(5),
            js_a.get_stream(ledger_runtime::status::STATUS_STREAM)
        )
        .await
        .map_or(true, |r| r.is_err()),
        "the store reached the JetStream API"
    );
    // Over HTTPS its key reads its own feed only, whatever it asks for.
    let (status, page) = call(
        reqwest::Method::GET,
        format!("{}/v1/status?cursor=0&merchant=store-b", stack.gateway_url),
        Some(&key_a.secret),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let keys: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["document_key"].as_str())
        .collect();
    assert!(keys.contains(&"invoice:1:000100001"), "{keys:?}");
    assert!(
        !keys.contains(&"invoice:1:000100007"),
        "B's status leaked: {keys:?}"
    );
    // And its key cannot send B's events over HTTPS either.
    let (status, body) = call(
        reqwest::Method::POST,
        format!("{}/v1/events", stack.gateway_url),
        Some(&key_a.secret),
        Some(serde_json::from_slice(&forged.body).unwrap()),
    )
    .await;
    assert_eq!(status, 403, "{body}");

    // The store disconnects: its key is revoked.
    let (status, body) = call(
        reqwest::Method::POST,
        format!("{}/v1/credentials/revoke", stack.gateway_url),
        Some(&key_a.secret),
        None,
    )
    .await;
    assert_eq!(
        (status, body["key_id"].as_str()),
        (200, Some(key_a.key_id.as_str()))
    );
    // No new login ...
    assert!(
        store_client(&key_a).await.is_err(),
        "a revoked key logged in"
    );
    // ... no HTTPS ...
    let (status, _) = call(
        reqwest::Method::GET,
        format!("{}/v1/status?cursor=0", stack.gateway_url),
        Some(&key_a.secret),
        None,
    )
    .await;
    assert_eq!(status, 401);
    // ... and the open connection ends with its session (sessions end every
    // SESSION_TTL_SECS and log in again while the key is valid), and cannot come back:
    // this client saw no refusal before the revocation.
    next_event_matching(&mut events_a, "authorization violation").await;
    let before = stream_messages_on(&nats, "magento.store-a.>").await;
    let late = ledger_stack::events::invoice_created("store-a", 2);
    let _ = client_a
        .publish("magento.store-a.invoice.created", late.body.into())
        .await;
    let _ = client_a.flush().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(stream_messages_on(&nats, "magento.store-a.>").await, before);

    // B is untouched by A's revocation.
    let (client_b, _events_b) = store_client(&key_b).await.expect("store B still logs in");
    publish_own(&client_b, "store-b", 8).await;

    // Operators see store logins, admitted and refused, in the gateway's metrics.
    let metrics = reqwest::get(format!("http://{}/metrics", stack.metrics[0]))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("ledger_store_logins_total{outcome=\"admitted\"}"));
    assert!(metrics.contains("ledger_store_logins_total{outcome=\"refused\"}"));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guessing_codes_is_slowed_down_per_merchant() {
    let (stack, _nats, _db) = secured_stack("pairing", SESSION_TTL_SECS).await;
    stack.onboard("guesser").await.unwrap();
    stack.onboard("honest").await.unwrap();
    let pending = request_pairing(&stack).await;
    let max = gateway::pairing::MAX_FAILED_CLAIMS;
    for attempt in 0..max {
        let wrong = format!("ZZZZ-{:04}", attempt)
            .replace('0', "A")
            .replace('1', "B");
        let (status, body) = claim(&stack, "guesser", &wrong).await;
        assert_eq!(status, 404, "attempt {attempt}: {body}");
    }
    // Even the right code is refused now, naming the field and the wait.
    let (status, body) = claim(&stack, "guesser", &pending.code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("too_many_attempts"))
    );
    assert!(body["message"].as_str().unwrap().starts_with("code:"));
    // Other merchants are not held back by it.
    let (status, body) = claim(&stack, "honest", &pending.code).await;
    assert_eq!(status, 200, "{body}");

    // Operators see pairing and login activity in the gateway's metrics.
    let metrics = reqwest::get(format!("http://{}/metrics", stack.metrics[0]))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("ledger_pairings_total{step=\"refused\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("ledger_pairings_total{step=\"claimed\"}"));
    stack.stop().await;
}
