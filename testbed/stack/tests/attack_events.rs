//! Hostile tenants, through the event log: a store writes its own payloads, so everything in
//! them is the attacker's choice. Each test is one attack against the whole engine (gateway,
//! NATS, the consumer services, the Sage sandbox); it passes when the attack is refused and
//! nothing crossed from one merchant's books to another's.

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream;
use common::stack;
use ledger_stack::events::{self, Draft};
use ledger_stack::CROSSING;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

async fn publish_raw(stack: &ledger_stack::Stack, subject: &str, msg_id: &str, body: Vec<u8>) {
    let js = jetstream::new(stack.nats.clone());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", msg_id);
    js.publish_with_headers(subject.to_string(), headers, body.into())
        .await
        .expect("publish")
        .await
        .expect("stored");
}

/// Store A publishes, on its own subject, a `customer.saved` whose payload says merchant B,
/// naming B's customer: B's Sage contact must not change, and the event is dead-lettered under
/// A with `/merchant_id` named.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cross_tenant_contact_overwrite_is_refused() {
    let (stack, _nats, _db) = stack("attack-events", 4).await;
    let a = stack.onboard("attacker-a").await.unwrap();
    let b = stack.onboard("victim-b").await.unwrap();
    // B's customer 412 gets a Sage contact through B's own invoice.
    let invoice = Draft::invoice("victim-b", 1).customer(412, "compta@atelier-lune.example");
    let (status, _) = stack.post_event(&b, &invoice.build().body).await.unwrap();
    assert_eq!(status, 202);
    assert!(
        stack
            .wait_until(WAIT, || stack.documents(&b, "contacts").len() == 1)
            .await,
        "B's contact exists"
    );
    let before = stack.documents(&b, "contacts");

    // A's store writes B's merchant id into the payload and publishes on its own subject
    // (the only subject its NATS key may publish on).
    let mut forged = Draft::from_template(events::CUSTOMER_SAVED, "victim-b", None);
    forged.value_mut()["payload"]["customer"]["addresses"][0]["company"] = json!("Pwned Ltd");
    forged.value_mut()["payload"]["customer"]["email"] = json!("attacker@example.com");
    let event = forged.build();
    let value: Value = serde_json::from_slice(&event.body).unwrap();
    assert_eq!(value["merchant_id"], "victim-b");
    publish_raw(
        &stack,
        "magento.attacker-a.customer.saved",
        &event.event_id.to_string(),
        event.body.clone(),
    )
    .await;

    let dead = stack
        .wait_for_dead_letters("contacts", "attacker-a")
        .await
        .unwrap();
    assert_eq!(
        dead.len(),
        1,
        "refused under the subject's merchant: {dead:?}"
    );
    assert_eq!(dead[0].code, "contract.subject_mismatch");
    assert_eq!(dead[0].field.as_deref(), Some("/merchant_id"));
    // Give a (wrong) update every chance to land before looking.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = stack.documents(&b, "contacts");
    assert_eq!(
        after.len(),
        before.len(),
        "{CROSSING} B's contacts: {after:?}"
    );
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(old["name"], new["name"], "{CROSSING} B's contact changed");
        assert_ne!(new["name"], "Pwned Ltd", "{CROSSING} B's contact renamed");
    }
    assert!(
        stack.documents(&a, "contacts").is_empty(),
        "nothing written to A's books either"
    );
    let b_dead = stack
        .wait_for_dead_letters("contacts", "victim-b")
        .await
        .unwrap();
    assert!(
        b_dead.is_empty(),
        "{CROSSING} A's event filed under B: {b_dead:?}"
    );
    stack.stop().await;
}

/// The documents service's journal rows of one event id: (merchant, Sage id).
async fn journal_rows(db: &ledger_testkit::TestDb, event_id: uuid::Uuid) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT merchant_id, coalesce(sage_id, '') FROM documents.sync_steps
         WHERE event_id = $1 AND step = 'sales_invoices' ORDER BY merchant_id",
    )
    .bind(event_id)
    .fetch_all(db.pool())
    .await
    .expect("journal readable")
}

/// Store A reuses the event id of B's invoice (under another message id, so the log keeps
/// it): A's own invoice must land in A's books, and B's journal must keep saying which Sage
/// document B's event made.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reused_event_id_reaches_nothing_of_another_merchant() {
    let (stack, _nats, db) = stack("attack-events-ids", 4).await;
    let a = stack.onboard("copycat-a").await.unwrap();
    let b = stack.onboard("original-b").await.unwrap();
    let b_invoice = Draft::invoice("original-b", 7).build();
    let (status, _) = stack.post_event(&b, &b_invoice.body).await.unwrap();
    assert_eq!(status, 202);
    assert!(
        stack
            .wait_until(WAIT, || stack.documents(&b, "sales_invoices").len() == 1)
            .await
    );

    let mut copy = Draft::invoice("copycat-a", 7);
    copy.value_mut()["event_id"] = json!(b_invoice.event_id.to_string());
    let body = serde_json::to_vec(copy.value()).unwrap();
    publish_raw(
        &stack,
        "magento.copycat-a.invoice.created",
        "another-message-id",
        body,
    )
    .await;
    assert!(
        stack
            .wait_until(WAIT, || stack.documents(&a, "sales_invoices").len() == 1)
            .await,
        "A's invoice is A's own: B's journal does not mark it done"
    );
    assert_eq!(
        stack.documents(&b, "sales_invoices").len(),
        1,
        "{CROSSING} A's invoice changed B's books"
    );
    let b_sage_id = stack.documents(&b, "sales_invoices")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let a_sage_id = stack.documents(&a, "sales_invoices")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The journal commits just after Sage answers: wait until both rows name a document.
    let started = Instant::now();
    let rows = loop {
        let rows = journal_rows(&db, b_invoice.event_id).await;
        let recorded = rows.iter().filter(|(_, sage_id)| !sage_id.is_empty());
        if recorded.count() >= 2 {
            break rows;
        }
        assert!(
            started.elapsed() < WAIT,
            "the journal did not record both Sage documents within {WAIT:?}: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        rows,
        vec![
            ("copycat-a".to_string(), a_sage_id),
            ("original-b".to_string(), b_sage_id),
        ],
        "{CROSSING} a journal row names another merchant's Sage document"
    );
    stack.stop().await;
}

/// Store A has Sage disconnected and floods the log with more events than the shared
/// consumer holds in flight; B's invoices must still land promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paused_flood_does_not_stall_other_merchants() {
    let flood: usize = std::env::var("ATTACK_FLOOD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12_000);
    let (stack, _nats, _db) = stack("attack-events-flood", 4).await;
    let a = stack.onboard("flooder-a").await.unwrap();
    let b = stack.onboard("bystander-b").await.unwrap();
    stack.sandbox.revoke_tokens(&a.business_id);

    // The flood: valid invoices, published as fast as JetStream takes them.
    let js = jetstream::new(stack.nats.clone());
    let template = events::invoice_created("flooder-a", 1);
    let mut acks = Vec::with_capacity(flood);
    for i in 0..flood {
        let mut v: Value = serde_json::from_slice(&template.body).unwrap();
        let id = uuid::Uuid::new_v4().to_string();
        v["event_id"] = json!(id);
        v["payload"]["invoice"]["entity_id"] = json!(200_000 + i);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        acks.push(
            js.publish_with_headers(
                "magento.flooder-a.invoice.created",
                headers,
                serde_json::to_vec(&v).unwrap().into(),
            )
            .await
            .unwrap(),
        );
        if acks.len() >= 1000 {
            for ack in acks.drain(..) {
                ack.await.unwrap();
            }
        }
    }
    for ack in acks.drain(..) {
        ack.await.unwrap();
    }

    // B's invoices come after the whole flood in the log.
    let started = Instant::now();
    for n in 1..=3 {
        let (status, _) = stack
            .post_event(&b, &events::invoice_created("bystander-b", n).body)
            .await
            .unwrap();
        assert_eq!(status, 202);
    }
    let landed = stack
        .wait_until(Duration::from_secs(45), || {
            stack.documents(&b, "sales_invoices").len() == 3
        })
        .await;
    let took = started.elapsed();
    println!("flood={flood} bystander_landed_in={took:?}");
    assert!(
        landed,
        "B's invoices stalled behind A's flood: {} of 3 after {took:?}",
        stack.documents(&b, "sales_invoices").len()
    );
    assert!(
        stack.documents(&a, "sales_invoices").is_empty(),
        "A stays paused"
    );
    stack.stop().await;
}
