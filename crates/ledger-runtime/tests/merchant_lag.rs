//! Lag by merchant against a real nats-server: what the shared consumer has not handled, and
//! what a parked merchant's lane has not.

use std::collections::HashMap;

use async_nats::jetstream;
use futures::StreamExt;
use ledger_runtime::bus::{self, ConsumerSpec, StreamSettings, EVENTS_STREAM};
use ledger_runtime::lag::{measure, LagTally};
use ledger_runtime::parking::{ParkReason, ParkingLot};
use ledger_testkit::TestNats;

async fn publish(js: &jetstream::Context, merchant: &str) -> u64 {
    js.publish(format!("magento.{merchant}.invoice.created"), "{}".into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence
}

fn pending(tally: &LagTally) -> HashMap<String, u64> {
    tally
        .merchants
        .iter()
        .map(|(m, lag)| (m.clone(), lag.pending))
        .collect()
}

#[tokio::test]
async fn lag_is_counted_per_merchant_above_the_floor_and_in_lanes() {
    let nats = TestNats::start().await.unwrap();
    let client = bus::connect(&nats.url(), "lag-test").await.unwrap();
    let js = jetstream::new(client);
    bus::ensure_streams(&js, &StreamSettings::default())
        .await
        .unwrap();
    let spec = ConsumerSpec::for_service("docs", &["magento.*.invoice.created"]);
    let mut consumer = bus::ensure_consumer(&js, &spec).await.unwrap();
    let stream = js.get_stream(EVENTS_STREAM).await.unwrap();
    let lot = ParkingLot::open(&js, "docs").await.unwrap();

    // Nothing published: nothing waits.
    let (tally, parks) = measure(&stream, &mut consumer, &spec, &lot).await.unwrap();
    assert!(tally.merchants.is_empty());
    assert!(parks.is_empty());

    // Sequences 1 a, 2 a, 3 b, 4 a; 5 a customer event the consumer does not read.
    for merchant in ["a", "a", "b", "a"] {
        publish(&js, merchant).await;
    }
    js.publish("magento.a.customer.saved", "{}".into())
        .await
        .unwrap()
        .await
        .unwrap();
    // Handle 1 (acknowledged) and take 2 (in flight): the floor is at 1.
    let mut batch = consumer.fetch().max_messages(2).messages().await.unwrap();
    let first = batch.next().await.unwrap().unwrap();
    let second = batch.next().await.unwrap().unwrap();
    first.double_ack().await.unwrap();
    let second_published = second.info().unwrap().published;

    let (tally, _) = measure(&stream, &mut consumer, &spec, &lot).await.unwrap();
    // a: 2 and 4; b: 3.
    assert_eq!(
        pending(&tally),
        HashMap::from([("a".to_string(), 2), ("b".to_string(), 1)])
    );
    assert_eq!(
        tally.merchants["a"].oldest.timestamp_millis(),
        (second_published.unix_timestamp_nanos() / 1_000_000) as i64,
        "a's oldest is its event in flight, not its handled one"
    );

    // b is parked from 3 on; then 6 b arrives (passed over to the lane).
    lot.park("b", 3, ParkReason::Paused).await.unwrap();
    publish(&js, "b").await;
    let (tally, parks) = measure(&stream, &mut consumer, &spec, &lot).await.unwrap();
    assert_eq!(parks.len(), 1);
    assert_eq!(
        pending(&tally),
        HashMap::from([("a".to_string(), 2), ("b".to_string(), 2)])
    );

    // The lane handled 3: only 6 is left for b.
    lot.progress("b", 3).await.unwrap();
    let (tally, _) = measure(&stream, &mut consumer, &spec, &lot).await.unwrap();
    assert_eq!(tally.merchants["b"].pending, 1);

    // Everything handled: a is done, b's lane too.
    second.double_ack().await.unwrap();
    let mut rest = consumer.fetch().max_messages(10).messages().await.unwrap();
    while let Some(Ok(m)) = rest.next().await {
        m.double_ack().await.unwrap();
    }
    lot.progress("b", 6).await.unwrap();
    let (tally, _) = measure(&stream, &mut consumer, &spec, &lot).await.unwrap();
    assert!(tally.merchants.is_empty(), "{tally:?}");
}
