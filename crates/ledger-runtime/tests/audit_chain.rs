//! Many writers appending to one merchant's audit chain at once (handlers, RPCs, replicas)
//! never fork it: every record gets its own link and the chain verifies end to end.

use chrono::Utc;
use ledger_runtime::audit::{self, AuditLog, AuditRecord};
use ledger_testkit::TestDb;

fn record(merchant: &str, writer: usize, n: usize) -> AuditRecord {
    AuditRecord {
        service: String::new(),
        consumer: format!("writer-{writer}"),
        merchant_id: merchant.into(),
        chain_seq: 0,
        event_id: Some(format!("{writer}-{n}")),
        subject: None,
        stream_sequence: None,
        delivered: None,
        document_key: None,
        reference: None,
        sage_number: None,
        outcome: "applied".into(),
        code: None,
        message: None,
        calls: Vec::new(),
        started_at: Utc::now(),
        duration_ms: 0,
        recorded_at: Utc::now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_to_one_chain_never_fork_it() {
    let db = TestDb::create().await.unwrap();
    let pool = ledger_runtime::db::connect_schema(db.url(), "audit_chain", 16)
        .await
        .unwrap();
    audit::migrate(&pool).await.unwrap();
    // Two processes' worth of writers: separate logs (and pools) on the same table.
    let other_pool = ledger_runtime::db::connect_schema(db.url(), "audit_chain", 16)
        .await
        .unwrap();
    let logs = [
        AuditLog::new("documents", pool.clone()),
        AuditLog::new("documents", other_pool),
    ];
    const WRITERS: usize = 12;
    const EACH: usize = 40;
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let log = logs[writer % 2].clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..EACH {
                log.append(record("busy-shop", writer, n)).await.unwrap();
            }
        }));
    }
    // Another merchant's chain at the same time is independent.
    let quiet = logs[0].clone();
    tasks.push(tokio::spawn(async move {
        for n in 0..EACH {
            quiet.append(record("quiet-shop", 99, n)).await.unwrap();
        }
    }));
    for task in tasks {
        task.await.unwrap();
    }

    let report = logs[0].verify("busy-shop").await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records, (WRITERS * EACH) as i64);
    let seqs: Vec<i64> = sqlx::query_scalar(
        "SELECT chain_seq FROM audit_records WHERE merchant_id = 'busy-shop' ORDER BY chain_seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(seqs, (1..=(WRITERS * EACH) as i64).collect::<Vec<_>>());
    let quiet = logs[0].verify("quiet-shop").await.unwrap();
    assert!(quiet.ok && quiet.records == EACH as i64, "{quiet:?}");
}
