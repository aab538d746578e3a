//! A journaled step's intent and what a failed POST leaves of it: a 429 (Sage's, or the
//! business's budget in Ledger's gate) proves nothing was written, so the next attempt is new
//! and posts without looking Sage up; a 500 proves nothing either way, so the step stays in
//! doubt; an intent an earlier attempt left in doubt is never withdrawn by a later 429.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use ledger_rpc::{GateLimits, GatedSage, OpenPeriods, SageGate, StepPost};
use ledger_runtime::journal::{self, StepState};
use ledger_testkit::{TestDb, TestNats};
use sage_sandbox::{FaultKind, FaultPlan, Sandbox, SandboxConfig};
use serde_json::json;

mod common;
use common::client;
use uuid::Uuid;

fn contact() -> serde_json::Value {
    json!({"name": "Intent Ltd", "contact_type_ids": ["CUSTOMER"], "reference": "INTENT1"})
}

/// Posts a contact as journaled step `contact` of `event` and returns the HTTP status of the
/// failure (the test only posts into faults).
async fn post_failing(
    periods: &OpenPeriods,
    sage: &GatedSage,
    db: &sqlx::PgPool,
    event: Uuid,
    body: &serde_json::Value,
) -> Option<u16> {
    let post = StepPost {
        merchant: "m1",
        event_id: event,
        step: "contact",
        stream_sequence: 1,
        resource: "contacts",
        root: "contact",
        body,
        date: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
    };
    match periods.try_post_step(sage, db, post).await.unwrap() {
        Ok((_, id)) => panic!("expected a refusal, Sage made {id}"),
        Err(e) => e.status(),
    }
}

async fn state(db: &sqlx::PgPool, event: Uuid) -> StepState {
    journal::step_state(db, "m1", event, "contact")
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_leaves_the_step_new_and_a_500_leaves_it_in_doubt() {
    let nats = TestNats::start().await.unwrap();
    let db = TestDb::create().await.unwrap();
    journal::migrate(db.pool()).await.unwrap();
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let (sage, business) = client(&sandbox).await;
    let js = async_nats::jetstream::new(nats.connect().await.unwrap());
    let gate = Arc::new(SageGate::new(&js, GateLimits::default()).await.unwrap());
    let sage = GatedSage::new(sage, gate.clone());
    let periods = OpenPeriods::new();
    let body = contact();
    let posts = || sandbox.inspect().stats().count("POST", "/v3.1/contacts");

    // Sage's own 429: the request reached Sage and was refused before it was handled.
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    sandbox.faults().set(
        FaultPlan::new(FaultKind::Rate429 {
            retry_after_secs: Some(1),
        })
        .for_business(&business)
        .times(1),
    );
    assert_eq!(
        post_failing(&periods, &sage, db.pool(), a, &body).await,
        Some(429)
    );
    assert_eq!(posts(), 1, "the 429 was Sage's");
    assert_eq!(state(db.pool(), a).await, StepState::New);

    // The business's budget in Ledger's gate (paused): nothing reaches Sage at all.
    gate.pause("m1", Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        post_failing(&periods, &sage, db.pool(), b, &body).await,
        Some(429)
    );
    assert_eq!(posts(), 1, "a paused business must not reach Sage");
    assert_eq!(state(db.pool(), b).await, StepState::New);

    // A 500 proves nothing (Sage may have saved the record): the step stays in doubt …
    let unpaused = async_nats::jetstream::new(nats.connect().await.unwrap());
    let fresh_gate = Arc::new(
        SageGate::new(
            &unpaused,
            GateLimits {
                calls_per_minute: 0,
                ..GateLimits::default()
            },
        )
        .await
        .unwrap(),
    );
    let (unpaced, _) = client(&sandbox).await;
    let unpaced = GatedSage::new(unpaced, fresh_gate);
    sandbox
        .faults()
        .set(FaultPlan::new(FaultKind::Error500).times(1));
    assert_eq!(
        post_failing(&periods, &unpaced, db.pool(), c, &body).await,
        Some(500)
    );
    assert_eq!(state(db.pool(), c).await, StepState::InDoubt);
    // … and a later attempt refused with a 429 does not withdraw what the earlier one left.
    assert_eq!(
        post_failing(&periods, &sage, db.pool(), c, &body).await,
        Some(429)
    );
    assert_eq!(state(db.pool(), c).await, StepState::InDoubt);
}
