//! The spine, end to end: Magento events enter at the edge (and straight into JetStream), the
//! consumer services project them into the Sage sandbox, each exactly once.

mod common;

use std::time::Duration;

use ledger_stack::events;
use ledger_stack::Stack;
use ledger_testkit::{TestDb, TestNats};
use rust_decimal::Decimal;

async fn stack() -> (Stack, TestNats, TestDb) {
    common::stack("e2e", 16).await
}

fn dec(v: &serde_json::Value) -> Decimal {
    match v {
        serde_json::Value::String(s) => s.parse().expect("decimal"),
        other => other.to_string().parse().expect("decimal"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invoice_published_twice_lands_once_with_magentos_total() {
    let (stack, _nats, _db) = stack().await;
    let merchant = stack.onboard("acme").await.expect("onboard");
    let event = events::invoice_created("acme", 1);

    let (status, answer) = stack.post_event(&merchant, &event.body).await.unwrap();
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["status"], "accepted");
    // The same event again, through the edge and straight into JetStream.
    let (status, answer) = stack.post_event(&merchant, &event.body).await.unwrap();
    assert_eq!(status, 202);
    assert_eq!(answer["status"], "duplicate");
    let envelope = ledger_events::parse(&event.body).unwrap();
    assert!(stack.publish_direct(&envelope, &event.body).await.unwrap());

    let landed = stack
        .wait_until(Duration::from_secs(30), || {
            !stack.documents(&merchant, "sales_invoices").is_empty()
        })
        .await;
    assert!(landed, "invoice reached Sage");
    // Give any duplicate a chance to appear before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let invoices = stack.documents(&merchant, "sales_invoices");
    assert_eq!(invoices.len(), 1, "exactly one invoice: {invoices:#?}");
    let contacts = stack.documents(&merchant, "contacts");
    assert_eq!(contacts.len(), 1, "exactly one contact");

    let ledger_events::Payload::InvoiceCreated(snapshot) = &envelope.payload else {
        panic!("template is an invoice");
    };
    let invoice = &invoices[0];
    assert_eq!(
        dec(&invoice["total_amount"]),
        snapshot.invoice.grand_total,
        "Sage total = Magento grand total"
    );
    assert_eq!(invoice["reference"], snapshot.invoice.increment_id.as_str());
    assert_eq!(invoice["contact"]["id"], contacts[0]["id"]);
    assert!(stack.sandbox.inspect().concurrency_violations().is_empty());

    // The event in the log carries its id and the edge's trace context.
    let js = async_nats::jetstream::new(stack.nats.clone());
    let stream = js
        .get_stream(ledger_runtime::bus::EVENTS_STREAM)
        .await
        .unwrap();
    let stored = stream.get_raw_message(1).await.unwrap();
    let headers = stored.headers;
    assert_eq!(
        headers.get("Nats-Msg-Id").unwrap().as_str(),
        event.event_id.to_string()
    );
    let traceparent = headers
        .get("traceparent")
        .expect("trace context in NATS headers");
    assert!(
        traceparent.as_str().starts_with("00-"),
        "{}",
        traceparent.as_str()
    );

    // Every service exports its metrics, including consumer lag and Sage calls by endpoint.
    let documents_metrics = reqwest::get(format!("http://{}/metrics", stack.metrics[2]))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        documents_metrics.contains("ledger_consumer_pending"),
        "{documents_metrics}"
    );
    assert!(documents_metrics.contains("ledger_sage_calls_total"));
    assert!(documents_metrics.contains("resource=\"sales_invoices\""));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_stores_traceparent_is_continued_into_the_log() {
    let (stack, _nats, _db) = stack().await;
    let merchant = stack.onboard("traced").await.expect("onboard");
    let stream = async_nats::jetstream::new(stack.nats.clone())
        .get_stream(ledger_runtime::bus::EVENTS_STREAM)
        .await
        .unwrap();
    // Posts invoice `n` with `traceparent`; the trace context the log stored with it.
    let ingest = |n: u64, traceparent: Option<&'static str>| {
        let mut request = reqwest::Client::new()
            .post(format!("{}/v1/events", stack.gateway_url))
            .bearer_auth(&merchant.ingest_key)
            .header("content-type", "application/json")
            .body(events::invoice_created("traced", n).body);
        if let Some(tp) = traceparent {
            request = request.header("traceparent", tp);
        }
        let stream = &stream;
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 202);
            let answer: serde_json::Value = response.json().await.unwrap();
            assert_eq!(answer["status"], "accepted", "{answer}");
            let sequence = answer["stream_sequence"].as_u64().unwrap();
            let stored = stream.get_raw_message(sequence).await.unwrap();
            let tp = stored.headers.get("traceparent");
            tp.expect("trace context in NATS headers")
                .as_str()
                .to_string()
        }
    };

    // A store that sends its own trace context: the ingest span joins that trace, as a child.
    let store_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let store_span = "00f067aa0ba902b7";
    let tp = ingest(
        1,
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    )
    .await;
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_eq!(parts[1], store_trace, "the store's trace continues: {tp}");
    assert_ne!(
        parts[2], store_span,
        "the ingest is a span of its own in it: {tp}"
    );

    // Without one, or with a malformed one, the ingest starts a trace of its own.
    for (n, traceparent) in [(2, None), (3, Some("00-not-a-trace-01"))] {
        let tp = ingest(n, traceparent).await;
        assert!(tp.starts_with("00-"), "{tp}");
        assert!(!tp.contains(store_trace), "a trace of its own: {tp}");
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invalid_event_is_refused_naming_the_field_and_kept_in_quarantine() {
    let (stack, nats, _db) = stack().await;
    let merchant = stack.onboard("bad-input").await.expect("onboard");
    let mut v: serde_json::Value =
        serde_json::from_slice(&events::invoice_created("bad-input", 7).body).unwrap();
    v["payload"]["invoice"]["items"][0]["qty"] = serde_json::json!(0);
    let body = serde_json::to_vec(&v).unwrap();

    let (status, answer) = stack.post_event(&merchant, &body).await.unwrap();
    assert_eq!(status, 422, "{answer}");
    let fields: Vec<String> = answer["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["field"].as_str().unwrap().to_string())
        .collect();
    assert!(
        fields
            .iter()
            .any(|f| f.contains("/payload/invoice/items/0/qty")),
        "the error names the field: {fields:?}"
    );

    // Kept, not lost: the quarantine stream holds it with the reasons.
    let client = nats.connect().await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js
        .get_stream(ledger_runtime::bus::QUARANTINE_STREAM)
        .await
        .unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
    let kept = stream
        .get_last_raw_message_by_subject("ledger.quarantine.bad-input")
        .await
        .unwrap();
    let record: serde_json::Value = serde_json::from_slice(&kept.payload).unwrap();
    assert!(record["raw"].as_str().unwrap().contains("\"qty\":0"));
    assert!(stack.documents(&merchant, "sales_invoices").is_empty());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paid_invoice_gets_one_receipt_allocated_to_it() {
    let (stack, _nats, _db) = stack().await;
    let merchant = stack.onboard("paid-shop").await.expect("onboard");
    // The payment arrives first: it must wait for its invoice.
    let paid = events::invoice_paid("paid-shop", 3);
    let created = events::invoice_created("paid-shop", 3);
    assert_eq!(
        stack.post_event(&merchant, &paid.body).await.unwrap().0,
        202
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        stack.post_event(&merchant, &created.body).await.unwrap().0,
        202
    );

    let done = stack
        .wait_until(Duration::from_secs(60), || {
            !stack.documents(&merchant, "contact_payments").is_empty()
        })
        .await;
    assert!(done, "receipt reached Sage");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let payments = stack.documents(&merchant, "contact_payments");
    assert_eq!(payments.len(), 1);
    let invoices = stack.documents(&merchant, "sales_invoices");
    assert_eq!(invoices.len(), 1);
    let allocated = &payments[0]["allocated_artefacts"][0];
    assert_eq!(
        allocated["artefact"]["id"], invoices[0]["id"],
        "{:#}",
        payments[0]
    );
    assert_eq!(dec(&invoices[0]["outstanding_amount"]), Decimal::ZERO);
    stack.stop().await;
}
