//! The client against the Sage sandbox over real HTTP, with tokens in a real PostgreSQL
//! database. Every refresh, 401, page and replay asserted here is counted by the sandbox, not
//! by the client under test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ledger_testkit::TestDb;
use sage_client::{
    idempotency_id, AccessTokenSource, CallObserver, Connection, FailureClass, OAuthClient,
    PgTokenStore, SageClient, SageConfig, SageError, TokenManager, TokenRefresher, TokenSet,
    TokenStore,
};
use sage_sandbox::{BusinessHandle, BusinessSpec, FaultKind, FaultPlan, Sandbox, SandboxConfig};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;

const KEY: [u8; 32] = [0x17; 32];

struct Env {
    sandbox: Sandbox,
    db: TestDb,
    config: SageConfig,
    store: Arc<PgTokenStore>,
    manager: Arc<TokenManager>,
    client: SageClient,
}

fn config_for(sandbox: &Sandbox, timeout: Duration) -> SageConfig {
    SageConfig {
        api_base_url: sandbox.api_base_url(),
        authorize_url: sandbox.authorize_url(),
        token_url: sandbox.token_url(),
        revoke_url: sandbox.revoke_url(),
        client_id: "ledger-dev".into(),
        client_secret: "ledger-dev-secret".into(),
        redirect_uri: "http://localhost:8080/sage/callback".into(),
        request_timeout: timeout,
    }
}

async fn env() -> Env {
    env_with_timeout(Duration::from_secs(10)).await
}

async fn env_with_timeout(timeout: Duration) -> Env {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("start sandbox");
    let db = TestDb::create().await.expect("test database");
    let config = config_for(&sandbox, timeout);
    let store = Arc::new(PgTokenStore::new(db.pool().clone(), KEY));
    store.migrate().await.expect("migrate");
    let manager = Arc::new(TokenManager::new(
        OAuthClient::new(config.clone()),
        store.clone(),
    ));
    let client = SageClient::new(config.clone(), manager.clone());
    Env {
        sandbox,
        db,
        config,
        store,
        manager,
        client,
    }
}

impl Env {
    /// A business at the sandbox, authorised through the code flow and stored for `merchant`.
    async fn connect(&self, merchant: &str) -> BusinessHandle {
        let business = self.sandbox.create_business(BusinessSpec::default()).await;
        self.connect_to(merchant, &business).await;
        business
    }

    async fn connect_to(&self, merchant: &str, business: &BusinessHandle) {
        let code = self.sandbox.issue_authorization_code(&business.id).await;
        self.manager
            .connect_with_code(merchant, &business.id, &code)
            .await
            .expect("code exchange");
    }

    /// Makes the stored access token look expired, as five minutes passing would.
    async fn expire_locally(&self, merchant: &str) {
        let n = sqlx::query(
            "UPDATE sage_connections SET access_expires_at = now() - interval '1 minute' WHERE merchant_id = $1",
        )
        .bind(merchant)
        .execute(self.db.pool())
        .await
        .unwrap()
        .rows_affected();
        assert_eq!(n, 1);
    }

    /// A second "replica": its own pool, store and manager on the same database.
    async fn replica(&self) -> Arc<TokenManager> {
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .connect(self.db.url())
            .await
            .unwrap();
        let store = Arc::new(PgTokenStore::new(pool, KEY));
        Arc::new(TokenManager::new(
            OAuthClient::new(self.config.clone()),
            store,
        ))
    }

    fn refresh_attempts(&self, business: &BusinessHandle) -> u64 {
        self.sandbox
            .inspect()
            .stats_for(&business.id)
            .refresh_attempts()
    }
}

fn contact(name: &str) -> serde_json::Value {
    json!({"name": name, "contact_type_ids": ["CUSTOMER"]})
}

#[tokio::test]
async fn code_exchange_then_api_call_carries_x_business() {
    let env = env().await;
    let lead = env.sandbox.create_business(BusinessSpec::default()).await;
    // Same Sage user, second business: without X-Business the sandbox (like Sage) would
    // answer for the lead business instead.
    let second = env
        .sandbox
        .create_business(BusinessSpec {
            name: "Second Books Ltd".into(),
            user_id: Some(lead.user_id.clone()),
            ..BusinessSpec::default()
        })
        .await;
    env.connect_to("merchant-1", &second).await;

    let response = env.client.get("merchant-1", "contacts", &[]).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.business_id.as_deref(), Some(second.id.as_str()));
    assert!(response.request_id.is_some(), "x_request_id recorded");
    assert!(response.body.get("$items").is_some());

    let created = env
        .client
        .post(
            "merchant-1",
            "contacts",
            "contact",
            contact("Ada Lovelace"),
            None,
        )
        .await
        .unwrap();
    let id = created.id().expect("created id").to_string();
    assert!(env
        .sandbox
        .inspect()
        .document(&second.id, "contacts", &id)
        .is_some());
    assert!(env
        .sandbox
        .inspect()
        .document(&lead.id, "contacts", &id)
        .is_none());

    let stored = env.store.load("merchant-1").await.unwrap().unwrap();
    assert_eq!(stored.business_id, second.id);
    assert_eq!(
        stored.tokens.requested_by_id.as_deref(),
        Some(lead.user_id.as_str())
    );

    // The businesses this token reaches, for the "pick a business" step.
    let token = env.manager.access_token("merchant-1").await.unwrap();
    let businesses = env.client.list_businesses(&token.token).await.unwrap();
    let ids: Vec<&str> = businesses.iter().filter_map(|b| b["id"].as_str()).collect();
    assert!(
        ids.contains(&lead.id.as_str()) && ids.contains(&second.id.as_str()),
        "{ids:?}"
    );
}

#[tokio::test]
async fn refresh_rotation_is_persisted_and_the_old_token_is_dead() {
    let env = env().await;
    let business = env.connect("m").await;
    let before = env.store.load("m").await.unwrap().unwrap();

    env.expire_locally("m").await;
    let fresh_manager = TokenManager::new(OAuthClient::new(env.config.clone()), env.store.clone());
    let token = fresh_manager.access_token("m").await.unwrap();
    assert_ne!(token.token, before.tokens.access_token);
    assert_eq!(env.refresh_attempts(&business), 1);

    let after = env.store.load("m").await.unwrap().unwrap();
    assert_ne!(
        after.tokens.refresh_token, before.tokens.refresh_token,
        "rotated token stored"
    );
    assert_eq!(after.tokens.access_token, token.token);
    assert_eq!(after.generation, before.generation + 1);

    let oauth = OAuthClient::new(env.config.clone());
    let reuse = oauth
        .refresh(&before.tokens.refresh_token)
        .await
        .unwrap_err();
    assert!(
        reuse.is_invalid_grant(),
        "old refresh token must be dead: {reuse}"
    );

    let client = SageClient::new(env.config.clone(), Arc::new(fresh_manager));
    client
        .get("m", "contacts", &[])
        .await
        .expect("new token works");
}

#[tokio::test]
async fn a_thousand_concurrent_callers_cause_one_refresh() {
    let env = env().await;
    let business = env.connect("m").await;
    let old = env.store.load("m").await.unwrap().unwrap();
    env.expire_locally("m").await;
    let store = Arc::new(CountingStore {
        inner: env.store.clone(),
        locked_refreshes: AtomicUsize::new(0),
    });
    let manager = Arc::new(TokenManager::new(
        OAuthClient::new(env.config.clone()),
        store.clone(),
    ));

    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let manager = manager.clone();
        tasks.push(tokio::spawn(async move { manager.access_token("m").await }));
    }
    let mut tokens = std::collections::HashSet::new();
    for t in tasks {
        tokens.insert(t.await.unwrap().expect("token").token);
    }
    assert_eq!(tokens.len(), 1, "every caller got the same token");
    assert!(!tokens.contains(&old.tokens.access_token));
    assert_eq!(
        env.refresh_attempts(&business),
        1,
        "exactly one refresh at Sage"
    );
    assert_eq!(
        store.locked_refreshes.load(Ordering::SeqCst),
        1,
        "the in-process single flight let only one caller reach the row lock"
    );
}

/// Delegates to the real store, counting how many callers reached the locked refresh.
struct CountingStore {
    inner: Arc<PgTokenStore>,
    locked_refreshes: AtomicUsize,
}

#[async_trait::async_trait]
impl TokenStore for CountingStore {
    async fn connect(&self, m: &str, b: &str, t: &TokenSet) -> Result<(), SageError> {
        self.inner.connect(m, b, t).await
    }
    async fn load(&self, m: &str) -> Result<Option<Connection>, SageError> {
        self.inner.load(m).await
    }
    async fn refresh_locked(
        &self,
        m: &str,
        margin: Duration,
        refresher: &dyn TokenRefresher,
    ) -> Result<Connection, SageError> {
        self.locked_refreshes.fetch_add(1, Ordering::SeqCst);
        self.inner.refresh_locked(m, margin, refresher).await
    }
    async fn invalidate_access_token(&self, m: &str, stale: &str) -> Result<bool, SageError> {
        self.inner.invalidate_access_token(m, stale).await
    }
    async fn mark_revoked(&self, m: &str) -> Result<(), SageError> {
        self.inner.mark_revoked(m).await
    }
    async fn disconnect(&self, m: &str) -> Result<Option<Connection>, SageError> {
        self.inner.disconnect(m).await
    }
}

#[tokio::test]
async fn two_replicas_racing_still_refresh_once() {
    let env = env().await;
    let business = env.connect("m").await;
    env.expire_locally("m").await;
    let replica_a = env.replica().await;
    let replica_b = env.replica().await;

    // Hold the merchant's row lock (as a third replica in the middle of a refresh would) so
    // that both replicas have read the expired token and queue up for the lock before either
    // can refresh: the second one through must notice the first one's refresh.
    let mut blocker = env.db.pool().begin().await.unwrap();
    sqlx::query("SELECT 1 FROM sage_connections WHERE merchant_id = 'm' FOR UPDATE")
        .execute(&mut *blocker)
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for i in 0..200 {
        let manager = if i % 2 == 0 {
            replica_a.clone()
        } else {
            replica_b.clone()
        };
        tasks.push(tokio::spawn(async move { manager.access_token("m").await }));
    }
    let mut waiting = 0i64;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waiting = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(env.db.pool())
        .await
        .unwrap();
        if waiting >= 2 {
            break;
        }
    }
    // Give any surplus waiter (which would be a bug in the in-process single flight) time to
    // show up too.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting_after: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(env.db.pool())
    .await
    .unwrap();
    assert_eq!(
        (waiting, waiting_after),
        (2, 2),
        "one refresher per replica waits for the row lock"
    );
    blocker.rollback().await.unwrap();
    let mut tokens = std::collections::HashSet::new();
    for t in tasks {
        tokens.insert(t.await.unwrap().expect("token").token);
    }
    assert_eq!(tokens.len(), 1, "both replicas use the one refreshed token");
    assert_eq!(
        env.refresh_attempts(&business),
        1,
        "one refresh across replicas"
    );
    let stored = env.store.load("m").await.unwrap().unwrap();
    assert!(tokens.contains(&stored.tokens.access_token));
}

#[tokio::test]
async fn invalid_grant_marks_the_connection_revoked() {
    let env = env().await;
    let business = env.connect("m").await;
    // Someone else (a stale process, a manual script) used the refresh token: ours is dead.
    let stored = env.store.load("m").await.unwrap().unwrap();
    OAuthClient::new(env.config.clone())
        .refresh(&stored.tokens.refresh_token)
        .await
        .unwrap();
    env.expire_locally("m").await;

    let manager = TokenManager::new(OAuthClient::new(env.config.clone()), env.store.clone());
    let err = manager.access_token("m").await.unwrap_err();
    assert!(
        matches!(err, SageError::ConnectionRevoked { ref merchant } if merchant == "m"),
        "{err}"
    );
    assert_eq!(err.class(), FailureClass::Paused);
    let status: String =
        sqlx::query_scalar("SELECT status FROM sage_connections WHERE merchant_id = 'm'")
            .fetch_one(env.db.pool())
            .await
            .unwrap();
    assert_eq!(status, "revoked");

    // Later callers are turned away without burning more calls at Sage.
    let attempts = env.refresh_attempts(&business);
    let again = TokenManager::new(OAuthClient::new(env.config.clone()), env.store.clone());
    assert!(matches!(
        again.access_token("m").await,
        Err(SageError::ConnectionRevoked { .. })
    ));
    let client = SageClient::new(env.config.clone(), Arc::new(again));
    let err = client.get("m", "contacts", &[]).await.unwrap_err();
    assert_eq!(err.class(), FailureClass::Paused);
    assert_eq!(env.refresh_attempts(&business), attempts);

    // Reconnecting through the consent flow makes the merchant usable again.
    env.connect_to("m", &business).await;
    env.client
        .get("m", "contacts", &[])
        .await
        .expect("reconnected");
}

#[tokio::test]
async fn a_401_refreshes_once_and_retries() {
    let env = env().await;
    let business = env.connect("m").await;
    env.client.get("m", "contacts", &[]).await.unwrap();
    // Sage stops accepting the access token before the expiry we stored.
    assert!(env.sandbox.expire_access_tokens(&business.id) >= 1);

    let response = env.client.get("m", "contacts", &[]).await.expect("retried");
    assert_eq!(response.status, 200);
    assert_eq!(env.refresh_attempts(&business), 1);
    // A refused token names no business, so these counters are read sandbox-wide (this
    // sandbox serves only this test).
    let stats = env.sandbox.inspect().stats();
    assert_eq!(stats.count_status("GET", "/v3.1/contacts", 401), 1);
    assert_eq!(stats.count_status("GET", "/v3.1/contacts", 200), 2);

    // A revoked authorisation: the retry's refresh is refused and the merchant is paused.
    env.sandbox.revoke_tokens(&business.id);
    let err = env.client.get("m", "contacts", &[]).await.unwrap_err();
    assert!(matches!(err, SageError::ConnectionRevoked { .. }), "{err}");
}

#[tokio::test]
async fn validation_errors_are_rejected_with_sages_source() {
    let env = env().await;
    env.connect("m").await;
    let err = env
        .client
        .post(
            "m",
            "contacts",
            "contact",
            json!({"contact_type_ids": ["CUSTOMER"]}),
            None,
        )
        .await
        .unwrap_err();
    let SageError::Rejected {
        status,
        ref errors,
        ref request_id,
    } = err
    else {
        panic!("expected Rejected, got {err:?}");
    };
    assert_eq!(status, 422);
    assert!(request_id.is_some());
    let item = errors.first().expect("an error item");
    assert!(item.source.contains("name"), "{item:?}");
    assert_eq!(item.data_code, "RecordInvalid");
    assert_eq!(err.class(), FailureClass::Permanent);
    let text = err.to_string();
    assert!(
        text.contains(&item.source) && text.contains("RecordInvalid"),
        "{text}"
    );

    let missing = env
        .client
        .get("m", "contacts/00000000000000000000000000000000", &[])
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
}

#[tokio::test]
async fn server_errors_throttling_and_timeouts_are_transient() {
    let env = env_with_timeout(Duration::from_millis(800)).await;
    let business = env.connect("m").await;
    let faults = env.sandbox.faults();

    faults.set(
        FaultPlan::new(FaultKind::Error500)
            .for_business(&business.id)
            .times(1),
    );
    let err = env.client.get("m", "contacts", &[]).await.unwrap_err();
    assert!(
        matches!(
            err,
            SageError::Transient {
                status: Some(500),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.class(), FailureClass::Transient);
    assert!(err.request_id().is_some());

    faults.set(
        FaultPlan::new(FaultKind::Rate429 {
            retry_after_secs: Some(7),
        })
        .for_business(&business.id)
        .times(1),
    );
    let err = env.client.get("m", "contacts", &[]).await.unwrap_err();
    assert!(
        matches!(
            err,
            SageError::Transient {
                status: Some(429),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));

    // A Retry-After of 10^12 seconds is read as the documented maximum, not a panic.
    faults.set(
        FaultPlan::new(FaultKind::Rate429 {
            retry_after_secs: Some(1_000_000_000_000),
        })
        .for_business(&business.id)
        .times(1),
    );
    let err = env.client.get("m", "contacts", &[]).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(sage_client::MAX_RETRY_AFTER));

    faults.set(
        FaultPlan::new(FaultKind::Timeout {
            secs: 3,
            apply: false,
        })
        .for_business(&business.id)
        .times(1),
    );
    let started = std::time::Instant::now();
    let err = env.client.get("m", "contacts", &[]).await.unwrap_err();
    assert!(
        matches!(err, SageError::Transient { status: None, .. }),
        "{err}"
    );
    assert_eq!(err.class(), FailureClass::Transient);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the client's timeout applied"
    );

    env.client
        .get("m", "contacts", &[])
        .await
        .expect("healthy again");
}

#[tokio::test]
async fn idempotent_reposts_return_the_same_sage_record() {
    let env = env().await;
    let business = env.connect("m").await;
    let event = uuid::Uuid::new_v4();
    let key = idempotency_id(&event, "contact");

    let first = env
        .client
        .post(
            "m",
            "contacts",
            "contact",
            contact("Grace Hopper"),
            Some(&key),
        )
        .await
        .unwrap();
    let second = env
        .client
        .post(
            "m",
            "contacts",
            "contact",
            contact("Grace Hopper"),
            Some(&key),
        )
        .await
        .unwrap();
    assert_eq!(first.id(), second.id());
    let named = |name: &str| {
        env.sandbox
            .inspect()
            .documents(&business.id, "contacts")
            .into_iter()
            .filter(|d| d["name"] == name)
            .count()
    };
    assert_eq!(named("Grace Hopper"), 1);

    // Sage saved the write but answered 500: the retry with the same id recovers the record.
    env.sandbox.faults().set(
        FaultPlan::new(FaultKind::AppliedThen500)
            .for_business(&business.id)
            .on_resource("contacts")
            .on_method("POST")
            .times(1),
    );
    let key = idempotency_id(&event, "second-contact");
    let err = env
        .client
        .post(
            "m",
            "contacts",
            "contact",
            contact("Alan Turing"),
            Some(&key),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), FailureClass::Transient);
    let retried = env
        .client
        .post(
            "m",
            "contacts",
            "contact",
            contact("Alan Turing"),
            Some(&key),
        )
        .await
        .unwrap();
    assert!(retried.id().is_some());
    assert_eq!(named("Alan Turing"), 1);
    assert!(env.sandbox.inspect().stats_for(&business.id).replays() >= 2);
}

#[tokio::test]
async fn list_all_walks_pages_through_next() {
    let env = env().await;
    let business = env.connect("m").await;
    for i in 0..45 {
        env.client
            .post(
                "m",
                "contacts",
                "contact",
                contact(&format!("Customer {i:02}")),
                None,
            )
            .await
            .unwrap();
    }
    let expected = env
        .sandbox
        .inspect()
        .documents(&business.id, "contacts")
        .len();
    assert!(expected >= 45);
    let pages = expected.div_ceil(10) as u64;

    let all = env
        .client
        .list_all(
            "m",
            "contacts",
            &[("items_per_page", "10"), ("attributes", "name")],
        )
        .await
        .unwrap();
    assert_eq!(all.len(), expected);
    let ids: std::collections::HashSet<&str> =
        all.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids.len(), expected, "no page read twice");
    assert!(
        all.iter().all(|c| c.get("name").is_some()),
        "filters carried to every page"
    );
    let stats = env.sandbox.inspect().stats_for(&business.id);
    assert_eq!(stats.count_status("GET", "/v3.1/contacts", 200), pages);

    let first = env
        .client
        .find_first("m", "contacts", &[("search", "Customer 07")])
        .await
        .unwrap()
        .expect("found");
    assert_eq!(
        first["displayed_as"]
            .as_str()
            .map(|s| s.contains("Customer 07")),
        Some(true)
    );
    let none = env
        .client
        .find_first("m", "contacts", &[("search", "nobody-by-this-name")])
        .await
        .unwrap();
    assert!(none.is_none());
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, String, Option<u16>)>>);

impl CallObserver for Recorder {
    fn on_call(&self, method: &str, resource: &str, status: Option<u16>, _elapsed: Duration) {
        self.0
            .lock()
            .unwrap()
            .push((method.into(), resource.into(), status));
    }
}

#[tokio::test]
async fn observer_sees_every_attempt_with_low_cardinality_labels() {
    let env = env().await;
    let business = env.connect("m").await;
    let recorder = Arc::new(Recorder::default());
    let client = env.client.clone().with_observer(recorder.clone());
    let created = client
        .post("m", "contacts", "contact", contact("Observed"), None)
        .await
        .unwrap();
    env.sandbox.expire_access_tokens(&business.id);
    client
        .get("m", &format!("contacts/{}", created.id().unwrap()), &[])
        .await
        .unwrap();
    let calls = recorder.0.lock().unwrap().clone();
    assert_eq!(
        calls,
        vec![
            ("POST".into(), "contacts".into(), Some(201)),
            ("GET".into(), "contacts".into(), Some(401)),
            ("GET".into(), "contacts".into(), Some(200)),
        ]
    );
}

#[tokio::test]
async fn disconnect_revokes_at_sage_and_forgets_the_merchant() {
    let env = env().await;
    let business = env.connect("m").await;
    let stored = env.store.load("m").await.unwrap().unwrap();
    env.manager.disconnect("m").await.unwrap();
    assert!(env.store.load("m").await.unwrap().is_none());
    let err = env.manager.access_token("m").await.unwrap_err();
    assert!(matches!(err, SageError::NotConnected { .. }));
    assert_eq!(err.class(), FailureClass::Paused);
    let reuse = OAuthClient::new(env.config.clone())
        .refresh(&stored.tokens.refresh_token)
        .await
        .unwrap_err();
    assert!(reuse.is_invalid_grant(), "{reuse}");
    let _ = business;
}

#[tokio::test]
async fn a_custom_token_source_plugs_into_the_client() {
    // A service that gets tokens from elsewhere (e.g. over NATS) implements the trait; here it
    // simply delegates, counting invalidations.
    struct Delegating {
        inner: Arc<TokenManager>,
        invalidations: Mutex<u32>,
    }
    #[async_trait::async_trait]
    impl AccessTokenSource for Delegating {
        async fn access_token(
            &self,
            merchant: &str,
        ) -> Result<sage_client::AccessToken, SageError> {
            self.inner.access_token(merchant).await
        }
        async fn invalidate(&self, merchant: &str, stale: &str) -> Result<(), SageError> {
            *self.invalidations.lock().unwrap() += 1;
            AccessTokenSource::invalidate(self.inner.as_ref(), merchant, stale).await
        }
    }
    let env = env().await;
    let business = env.connect("m").await;
    let source = Arc::new(Delegating {
        inner: env.manager.clone(),
        invalidations: Mutex::new(0),
    });
    let client = SageClient::new(env.config.clone(), source.clone());
    env.sandbox.expire_access_tokens(&business.id);
    client.get("m", "contacts", &[]).await.unwrap();
    assert_eq!(*source.invalidations.lock().unwrap(), 1);
}
