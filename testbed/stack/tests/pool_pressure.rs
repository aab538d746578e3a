//! More first customers at once than a service has database connections. The contacts
//! service writes a new contact inside a transaction (its row lock makes other replicas wait
//! for the Sage id) and records what it sent on that same transaction. Had it taken a second
//! connection from the pool for that record, as many contacts written at once as the pool has
//! connections (20) would each hold one and wait for another: nothing moves until the pool's
//! 30 s acquire timeout fails them all.

mod common;

use std::time::Duration;

use ledger_stack::events::Draft;
use sage_sandbox::{FaultKind, FaultPlan};

/// Merchants whose first order (and so first Sage contact) arrives at the same moment: more
/// than the 20 connections of a service's pool.
const MERCHANTS: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn more_new_contacts_at_once_than_pool_connections_all_land_without_waiting_on_the_pool() {
    let (stack, _nats, _db) = common::stack("pool-pressure", 64).await;
    let mut merchants = Vec::new();
    for i in 0..MERCHANTS {
        merchants.push(stack.onboard(&format!("pool{i:02}")).await.unwrap());
    }
    // Sage answers every call after 300 ms, so the contact creations overlap.
    stack
        .sandbox
        .faults()
        .set(FaultPlan::new(FaultKind::Latency { ms: 300 }));
    let started = tokio::time::Instant::now();
    let publishes = merchants.iter().enumerate().map(|(i, m)| {
        let order = Draft::invoice(&format!("pool{i:02}"), 1);
        let stack = &stack;
        async move { common::publish(stack, m, &order).await }
    });
    futures::future::join_all(publishes).await;
    // Each merchant: one contact and one invoice, 300 ms apiece, all merchants in parallel.
    // Well under the pool's 30 s acquire timeout, which a pool deadlock would wait out.
    let landed = stack
        .wait_until(Duration::from_secs(20), || {
            merchants
                .iter()
                .all(|m| stack.documents(m, "sales_invoices").len() == 1)
        })
        .await;
    let missing: Vec<&str> = merchants
        .iter()
        .filter(|m| stack.documents(m, "sales_invoices").is_empty())
        .map(|m| m.id.as_str())
        .collect();
    assert!(
        landed,
        "after {:?}, {} of {MERCHANTS} merchants' first invoices are not in Sage: {missing:?}",
        started.elapsed(),
        missing.len()
    );
    for m in &merchants {
        assert_eq!(
            stack.documents(m, "contacts").len(),
            1,
            "{}: one contact",
            m.id
        );
    }
    stack.stop().await;
}
