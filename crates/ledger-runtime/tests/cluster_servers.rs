//! `LEDGER_NATS_URL` as a list of a cluster's nodes: parsed with the entry named when it is
//! wrong, connected past a dead node, and kept when the connected node dies (a real 3-node
//! JetStream cluster with the production configuration).

use std::time::Duration;

use async_nats::jetstream;
use ledger_runtime::bus::{self, BusError, NatsServers};
use ledger_testkit::{TestCluster, TestNats};

#[test]
fn a_list_gives_every_address_and_one_login() {
    let servers = bus::parse_servers(
        "nats://contacts:s%40cret@10.0.0.1:4222, nats://contacts:s%40cret@10.0.0.2:4222,nats://10.0.0.3:4222",
    )
    .unwrap();
    assert_eq!(
        servers,
        NatsServers {
            addresses: vec![
                "nats://10.0.0.1:4222".to_string(),
                "nats://10.0.0.2:4222".to_string(),
                "nats://10.0.0.3:4222".to_string(),
            ],
            credentials: Some(("contacts".to_string(), "s@cret".to_string())),
        }
    );
    let one = bus::parse_servers("nats://127.0.0.1:4222").unwrap();
    assert_eq!(one.addresses, ["nats://127.0.0.1:4222"]);
    assert_eq!(one.credentials, None);
}

#[test]
fn a_wrong_list_is_refused_naming_the_entry() {
    let e = bus::parse_servers("nats://a:1@h1:4222,nats://b:2@h2:4222").unwrap_err();
    assert!(matches!(e, BusError::Servers(_)));
    let text = e.to_string();
    assert!(
        text.starts_with("LEDGER_NATS_URL: entry 2 (nats://h2:4222)"),
        "{text}"
    );
    // The password never appears in the message.
    assert!(!text.contains(":2@"), "{text}");

    let e = bus::parse_servers("nats://h1:4222,,nats://h3:4222").unwrap_err();
    assert_eq!(
        e.to_string(),
        "LEDGER_NATS_URL: entry 2 of the comma-separated server list is empty"
    );
    let e = bus::parse_servers("nats://h1:4222,nats://h2:notaport").unwrap_err();
    assert!(e.to_string().contains("entry 2"), "{e}");
}

#[tokio::test]
async fn connects_past_a_node_that_is_down() {
    let nats = TestNats::start().await.unwrap();
    let dead = ledger_testkit::free_port();
    let url = format!("nats://127.0.0.1:{dead},{}", nats.url());
    let client = tokio::time::timeout(Duration::from_secs(20), bus::connect(&url, "list-test"))
        .await
        .expect("connect within 20 s")
        .unwrap();
    assert_eq!(client.server_info().port, nats.port());
    client.publish("x.y", "z".into()).await.unwrap();
    client.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_keeps_publishing_when_its_node_dies() {
    let mut cluster = TestCluster::start_on_free_ports("servers").await.unwrap();
    let client = bus::connect(&cluster.url(), "list-test").await.unwrap();
    let js = jetstream::new(client.clone());
    bus::ensure_streams(
        &js,
        &bus::StreamSettings {
            replicas: 3,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let stream = js.get_stream(bus::EVENTS_STREAM).await.unwrap();
    assert_eq!(stream.cached_info().config.num_replicas, 3);
    // The buckets the Sage gate and parking use follow the events stream: a node's loss
    // leaves them readable and writable.
    for (bucket, max_age) in [
        ("TEST_LEASES", Some(Duration::from_secs(30))),
        ("TEST_KEPT", None),
    ] {
        bus::key_value(&js, bucket, max_age).await.unwrap();
        let kv = js.get_stream(format!("KV_{bucket}")).await.unwrap();
        assert_eq!(kv.cached_info().config.num_replicas, 3, "{bucket}");
    }
    js.publish("magento.m1.invoice.created", "1".into())
        .await
        .unwrap()
        .await
        .unwrap();

    // Kill the node this client is connected to.
    let port = client.server_info().port;
    let victim = cluster
        .ports()
        .iter()
        .position(|p| p.client == port)
        .expect("connected to a node of the cluster");
    cluster.kill_node(victim);

    // The client moves to another node and JetStream (2 of 3 replicas) takes the event.
    let mut stored = false;
    for _ in 0..100 {
        // The same message id on every retry, as the Magento outbox does: an attempt that was
        // stored but not acknowledged is not stored twice.
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", "event-2");
        let attempt = async {
            js.publish_with_headers("magento.m1.invoice.created", headers, "2".into())
                .await?
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
        };
        if let Ok(Ok(ack)) = tokio::time::timeout(Duration::from_secs(2), attempt).await {
            assert_eq!(ack.sequence, 2);
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(stored, "no PubAck within the retries after node loss");
    // The bucket takes writes with one node down.
    let kv = bus::key_value(&js, "TEST_KEPT", None).await.unwrap();
    let mut written = false;
    for _ in 0..50 {
        if tokio::time::timeout(Duration::from_secs(2), kv.put("k", "v".into()))
            .await
            .is_ok_and(|r| r.is_ok())
        {
            written = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(written, "the bucket took no write after node loss");
    assert_ne!(client.server_info().port, port, "moved to another node");
}
