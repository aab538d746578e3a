//! Throughput smoke check (ignored by default; run with `--ignored`):
//! bounded in count, loopback only.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput_smoke() {
    let sandbox = start().await;
    let api = std::sync::Arc::new(uk(&sandbox).await);
    let contact = api.customer("Load", json!({})).await;
    const TASKS: usize = 16;
    const PER_TASK: usize = 250;
    let t = Instant::now();
    let mut handles = Vec::new();
    for n in 0..TASKS {
        let api = api.clone();
        let contact = contact.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..PER_TASK {
                let r = if i % 5 == 0 {
                    api.invoice(
                        &contact,
                        json!([api.line(&format!("L{n}-{i}"), "1", "10", "2")]),
                    )
                    .await
                } else {
                    api.get(&format!(
                        "/sales_invoices?contact_id={contact}&items_per_page=5"
                    ))
                    .await
                };
                assert!(
                    r.status == StatusCode::OK || r.status == StatusCode::CREATED,
                    "{}",
                    r.body
                );
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let elapsed = t.elapsed();
    let total = TASKS * PER_TASK;
    println!(
        "{total} requests in {elapsed:?}: {:.0} req/s",
        total as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(
        sandbox
            .inspect()
            .documents(&api.business.id, "sales_invoices")
            .len(),
        TASKS * PER_TASK / 5
    );
}
