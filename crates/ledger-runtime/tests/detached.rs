//! A held event owns its payload (decision 0047): `consumer::detached` against a real
//! nats-server.

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use ledger_runtime::consumer;
use ledger_testkit::TestNats;

#[tokio::test]
async fn a_held_event_no_longer_points_into_the_connections_read_buffer() {
    let nats = TestNats::start().await.unwrap();
    let client = ledger_runtime::bus::connect(&nats.url(), "detached-test")
        .await
        .unwrap();
    let js = jetstream::new(client);
    let stream = js
        .create_stream(jetstream::stream::Config {
            name: "DETACHED".into(),
            subjects: vec!["detached.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let bodies: Vec<String> = (0..3).map(|i| format!("{{\"event\":{i}}}")).collect();
    for body in &bodies {
        js.publish("detached.m1", body.clone().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let reader = stream
        .create_consumer(pull::Config::default())
        .await
        .unwrap();
    let mut batch = reader.fetch().max_messages(3).messages().await.unwrap();
    let mut seen = Vec::new();
    while let Some(message) = batch.next().await {
        let message = message.unwrap();
        // The client hands out the payload as a slice of the buffer it read it into.
        let read_at = message.payload.as_ptr();
        let held = consumer::detached(message);
        assert_ne!(
            held.payload.as_ptr(),
            read_at,
            "still the read buffer's bytes"
        );
        seen.push(String::from_utf8(held.payload.to_vec()).unwrap());
        // Still the same message for the server: it can be acknowledged.
        held.ack().await.unwrap();
    }
    assert_eq!(seen, bodies);
}
