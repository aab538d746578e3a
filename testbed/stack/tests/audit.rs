//! The audit trail end to end: every Sage call made for an event is in the services' audit
//! records (compared with the sandbox's own call log), queryable by event, by Magento document
//! and by merchant (over NATS and the gateway's HTTP API), and hash-chained so that editing a
//! record in PostgreSQL is reported by `verify` at that link.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use ledger_runtime::audit::{Answer, AuditQuery, Command, StoredRecord, VerifyReport};
use ledger_stack::{events, Stack, ADMIN_TOKEN};
use ledger_testkit::{TestDb, TestNats};
use serde_json::Value;

async fn stack() -> (Stack, TestNats, TestDb) {
    common::stack("audit", 8).await
}

async fn ask(stack: &Stack, service: &str, command: &Command) -> Answer {
    common::ask(stack, &ledger_runtime::audit::subject(service), command).await
}

async fn records(stack: &Stack, service: &str, query: AuditQuery) -> Vec<StoredRecord> {
    match ask(stack, service, &Command::Show(query)).await {
        Answer::Records { records } => records,
        other => panic!("{service}: {other:?}"),
    }
}

async fn verify(stack: &Stack, service: &str, merchant: &str) -> VerifyReport {
    match ask(
        stack,
        service,
        &Command::Verify {
            merchant: merchant.into(),
        },
    )
    .await
    {
        Answer::Verified(report) => report,
        other => panic!("{service}: {other:?}"),
    }
}

/// (method, path, status, x_request_id) → count.
type CallSet = BTreeMap<(String, String, u16, String), usize>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_records_show_every_sage_call_of_a_synced_invoice_and_tampering_breaks_the_chain() {
    let (stack, _nats, db) = stack().await;
    let merchant = stack.onboard("audited").await.unwrap();
    let before = stack
        .sandbox
        .inspect()
        .calls(Some(&merchant.business_id), usize::MAX)
        .iter()
        .map(|c| c.seq)
        .max()
        .unwrap_or(0);

    let first = events::invoice_created("audited", 1);
    assert_eq!(
        stack.post_event(&merchant, &first.body).await.unwrap().0,
        202
    );
    assert!(
        stack
            .wait_until(Duration::from_secs(30), || stack
                .documents(&merchant, "sales_invoices")
                .len()
                == 1)
            .await
    );
    // The record is appended right after the handler returns.
    let event_id = first.event_id.to_string();
    let mut doc_records = Vec::new();
    for _ in 0..200 {
        doc_records = records(
            &stack,
            "documents",
            AuditQuery {
                event_id: Some(event_id.clone()),
                ..Default::default()
            },
        )
        .await;
        if !doc_records.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(doc_records.len(), 1, "{doc_records:?}");
    let record = &doc_records[0].record;
    assert_eq!(record.outcome, "applied");
    assert_eq!(record.consumer, "documents");
    assert_eq!(record.merchant_id, "audited");
    assert!(record.stream_sequence.unwrap() > 0);
    assert!(record
        .document_key
        .as_deref()
        .unwrap()
        .ends_with(":000100001"));
    let invoice = stack.documents(&merchant, "sales_invoices").remove(0);
    let post = record
        .calls
        .iter()
        .find(|c| c.method == "POST" && c.path == "sales_invoices")
        .expect("the invoice POST is audited");
    assert_eq!(post.status, Some(201));
    assert_eq!(post.sage_id.as_deref(), invoice["id"].as_str());
    assert_eq!(post.response["id"], invoice["id"]);
    assert_eq!(post.response["reference"], invoice["reference"]);
    assert!(
        post.response.get("total_amount").is_some(),
        "{:?}",
        post.response
    );
    assert!(post.request["sales_invoice"]["invoice_lines"].is_array());
    assert!(post.idempotency_id.is_some());
    assert!(post.x_request_id.is_some());
    assert_eq!(record.reference.as_deref(), invoice["reference"].as_str());

    // Every Sage call the sandbox saw for this merchant since the event is in the audit
    // (documents' own and the contact the contacts service created for it), and nothing else.
    let contact_records = records(
        &stack,
        "contacts",
        AuditQuery {
            event_id: Some(event_id.clone()),
            ..Default::default()
        },
    )
    .await;
    assert!(
        contact_records
            .iter()
            .any(|r| r.record.consumer == "contacts.ensure"
                && r.record
                    .calls
                    .iter()
                    .any(|c| c.method == "POST" && c.path == "contacts")),
        "{contact_records:?}"
    );
    let mut audited = CallSet::new();
    for r in doc_records.iter().chain(contact_records.iter()) {
        for c in &r.record.calls {
            *audited
                .entry((
                    c.method.clone(),
                    format!("/v3.1/{}", c.path),
                    c.status.unwrap_or(0),
                    c.x_request_id.clone().unwrap_or_default(),
                ))
                .or_default() += 1;
        }
    }
    let mut seen = CallSet::new();
    for c in stack
        .sandbox
        .inspect()
        .calls(Some(&merchant.business_id), usize::MAX)
        .into_iter()
        .filter(|c| c.seq > before && c.uri_path.starts_with("/v3.1/"))
    {
        *seen
            .entry((c.method, c.uri_path, c.status, c.request_id))
            .or_default() += 1;
    }
    assert!(!seen.is_empty());
    assert_eq!(audited, seen, "audit vs sandbox call log");

    // A second invoice; then the merchant's chains verify, over NATS and over HTTP.
    let second = events::invoice_created("audited", 2);
    assert_eq!(
        stack.post_event(&merchant, &second.body).await.unwrap().0,
        202
    );
    assert!(
        stack
            .wait_until(Duration::from_secs(30), || stack
                .documents(&merchant, "sales_invoices")
                .len()
                == 2)
            .await
    );
    let mut report = verify(&stack, "documents", "audited").await;
    for _ in 0..200 {
        if report.records >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        report = verify(&stack, "documents", "audited").await;
    }
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records, 2);
    assert!(verify(&stack, "contacts", "audited").await.ok);

    let http = reqwest::Client::new();
    let by_document: Value = http
        .get(format!("{}/v1/admin/audit", stack.gateway_url))
        .bearer_auth(ADMIN_TOKEN)
        .query(&[("merchant", "audited"), ("document", "000100002")])
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let found = by_document["records"].as_array().unwrap();
    assert!(
        found.iter().any(|r| r["service"] == "documents"
            && r["record"]["event_id"] == second.event_id.to_string()),
        "{by_document}"
    );
    let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let by_time: Value = http
        .get(format!("{}/v1/admin/audit", stack.gateway_url))
        .bearer_auth(ADMIN_TOKEN)
        .query(&[
            ("merchant", "audited"),
            ("service", "documents"),
            ("since", since.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_time["records"].as_array().unwrap().len(), 2, "{by_time}");
    let verified: Value = http
        .get(format!("{}/v1/admin/audit/verify", stack.gateway_url))
        .bearer_auth(ADMIN_TOKEN)
        .query(&[("merchant", "audited")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verified["ok"], true, "{verified}");

    // Someone edits the first invoice's record: verify names that link.
    let edited = sqlx::query(
        "UPDATE documents.audit_records SET content = replace(content, '\"outcome\":\"applied\"', '\"outcome\":\"skipped\"')
         WHERE merchant_id = 'audited' AND chain_seq = 1",
    )
    .execute(db.pool())
    .await
    .unwrap();
    assert_eq!(edited.rows_affected(), 1);
    let report = verify(&stack, "documents", "audited").await;
    assert!(!report.ok);
    let broken = report.broken.expect("a broken link");
    assert_eq!(broken.chain_seq, 1, "{broken:?}");
    assert!(broken.reason.contains("hash"), "{broken:?}");
    let verified: Value = http
        .get(format!("{}/v1/admin/audit/verify", stack.gateway_url))
        .bearer_auth(ADMIN_TOKEN)
        .query(&[("merchant", "audited"), ("service", "documents")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verified["ok"], false, "{verified}");
    assert_eq!(
        verified["chains"][0]["broken"]["chain_seq"], 1,
        "{verified}"
    );

    // Restoring the content but editing an indexed column is caught too; so is re-hashing one
    // record without re-hashing its successor.
    sqlx::query(
        "UPDATE documents.audit_records SET content = replace(content, '\"outcome\":\"skipped\"', '\"outcome\":\"applied\"'), outcome = 'skipped'
         WHERE merchant_id = 'audited' AND chain_seq = 1",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let broken = verify(&stack, "documents", "audited").await.broken.unwrap();
    assert_eq!(broken.chain_seq, 1);
    assert!(broken.reason.contains("column"), "{broken:?}");
    sqlx::query("UPDATE documents.audit_records SET outcome = 'applied' WHERE merchant_id = 'audited' AND chain_seq = 1")
        .execute(db.pool())
        .await
        .unwrap();
    assert!(verify(&stack, "documents", "audited").await.ok);
    let (content, prev): (String, String) = sqlx::query_as(
        "SELECT content, prev_hash FROM documents.audit_records WHERE merchant_id = 'audited' AND chain_seq = 1",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    let forged = content.replace("\"duration_ms\":", "\"duration_ms\":1");
    sqlx::query("UPDATE documents.audit_records SET content = $1, hash = $2 WHERE merchant_id = 'audited' AND chain_seq = 1")
        .bind(&forged)
        .bind(ledger_runtime::audit::chain_hash(&prev, &forged))
        .execute(db.pool())
        .await
        .unwrap();
    let broken = verify(&stack, "documents", "audited").await.broken.unwrap();
    assert_eq!(
        broken.chain_seq, 2,
        "the next link no longer points at it: {broken:?}"
    );
    assert!(broken.reason.contains("prev_hash"), "{broken:?}");
    stack.stop().await;
}
