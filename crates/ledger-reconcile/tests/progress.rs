//! Reading the event log reports its progress in batches, against a real nats-server.

use ledger_reconcile::{read_expected, Progress, LOG_BATCH};
use ledger_testkit::TestNats;

#[tokio::test]
async fn reading_the_log_reports_every_batch_and_the_end() {
    let nats = TestNats::start().await.unwrap();
    let client = ledger_runtime::bus::connect(&nats.url(), "progress-test")
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    ledger_runtime::bus::ensure_streams(&js, &Default::default())
        .await
        .unwrap();
    // Events of another merchant are not counted; every event of this one is, even one the
    // contract refuses (it is read, and it reached Sage no more than a valid one).
    let total = 2 * LOG_BATCH + 50;
    let subject = ledger_events::subject("m1", ledger_events::EventType::InvoiceCreated);
    let other = ledger_events::subject("m2", ledger_events::EventType::InvoiceCreated);
    for n in 0..total {
        for s in [&subject, &other] {
            js.publish(s.clone(), format!("{{\"n\":{n}}}").into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    }
    let mut seen = Vec::new();
    let expected = read_expected(&js, "m1", &mut |p| seen.push(p))
        .await
        .unwrap();
    assert!(expected.is_empty(), "no valid event was sent");
    let log = |read| Progress::Log { read, total };
    assert_eq!(
        seen,
        vec![log(LOG_BATCH), log(2 * LOG_BATCH), log(total)],
        "a report every {LOG_BATCH} events, and one at the end"
    );

    // An empty log still says it is done.
    let mut seen = Vec::new();
    read_expected(&js, "nobody", &mut |p| seen.push(p))
        .await
        .unwrap();
    assert_eq!(seen, vec![Progress::Log { read: 0, total: 0 }]);
}
