//! `PgTokenStore` against a real PostgreSQL database (no HTTP involved).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use ledger_testkit::TestDb;
use sage_client::{
    ConnectionStatus, PgTokenStore, SageError, TokenRefresher, TokenSet, TokenStore,
};
use sqlx::postgres::PgPoolOptions;
use sqlx::Row;

const KEY: [u8; 32] = [0x42; 32];

fn tokens(access: &str, refresh: &str, expires_in_secs: i64) -> TokenSet {
    TokenSet {
        access_token: access.into(),
        refresh_token: refresh.into(),
        access_expires_at: Utc::now() + chrono::Duration::seconds(expires_in_secs),
        refresh_expires_at: Utc::now() + chrono::Duration::days(31),
        scope: Some("full_access".into()),
        requested_by_id: Some("user-1".into()),
    }
}

async fn store(db: &TestDb) -> PgTokenStore {
    let store = PgTokenStore::new(db.pool().clone(), KEY);
    store.migrate().await.expect("migrate");
    store
}

/// Counts refreshes and hands out numbered tokens, slowly, so racing callers overlap.
struct CountingRefresher {
    calls: AtomicUsize,
    delay: Duration,
}

#[async_trait]
impl TokenRefresher for CountingRefresher {
    async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, SageError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(self.delay).await;
        Ok(tokens(
            &format!("access-{n}"),
            &format!("{refresh_token}+{n}"),
            300,
        ))
    }
}

struct InvalidGrant;

#[async_trait]
impl TokenRefresher for InvalidGrant {
    async fn refresh(&self, _: &str) -> Result<TokenSet, SageError> {
        Err(SageError::OAuth {
            status: 400,
            error: "invalid_grant".into(),
            description: None,
        })
    }
}

#[tokio::test]
async fn tokens_are_encrypted_at_rest_and_round_trip() {
    let db = TestDb::create().await.unwrap();
    let store = store(&db).await;
    store.migrate().await.expect("migrating twice is harmless");
    let access = "plain-ACCESS-token-4f1d2a9b";
    let refresh = "plain-REFRESH-token-77c0e3";
    store
        .connect("m1", "biz-1", &tokens(access, refresh, 300))
        .await
        .unwrap();

    let row = sqlx::query("SELECT t::text AS whole, access_token_enc, refresh_token_enc FROM sage_connections t WHERE merchant_id = 'm1'")
        .fetch_one(db.pool())
        .await
        .unwrap();
    let whole: String = row.get("whole");
    assert!(
        !whole.contains(access) && !whole.contains(refresh),
        "plaintext in row: {whole}"
    );
    for col in ["access_token_enc", "refresh_token_enc"] {
        let bytes: Vec<u8> = row.get(col);
        for secret in [access, refresh] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{col} holds a plaintext token"
            );
        }
        // format byte + 96-bit nonce + ciphertext + 128-bit tag
        assert!(bytes.len() >= 1 + 12 + 16 + access.len().min(refresh.len()));
    }

    let loaded = store.load("m1").await.unwrap().expect("stored");
    assert_eq!(loaded.tokens.access_token, access);
    assert_eq!(loaded.tokens.refresh_token, refresh);
    assert_eq!(loaded.business_id, "biz-1");
    assert_eq!(loaded.status, ConnectionStatus::Active);
    assert_eq!(loaded.tokens.requested_by_id.as_deref(), Some("user-1"));
    assert!(!format!("{loaded:?}").contains(access));

    // A replica configured with another key cannot read the tokens.
    let wrong = PgTokenStore::new(db.pool().clone(), [0x43; 32]);
    assert!(matches!(
        wrong.load("m1").await,
        Err(SageError::Storage { .. })
    ));
}

#[tokio::test]
async fn lifecycle_connect_revoke_reconnect_disconnect() {
    let db = TestDb::create().await.unwrap();
    let store = store(&db).await;
    assert!(store.load("m").await.unwrap().is_none());
    let refresher = CountingRefresher {
        calls: AtomicUsize::new(0),
        delay: Duration::ZERO,
    };
    assert!(matches!(
        store
            .refresh_locked("m", Duration::from_secs(30), &refresher)
            .await,
        Err(SageError::NotConnected { .. })
    ));

    store
        .connect("m", "b", &tokens("a1", "r1", 300))
        .await
        .unwrap();
    store.mark_revoked("m").await.unwrap();
    assert_eq!(
        store.load("m").await.unwrap().unwrap().status,
        ConnectionStatus::Revoked
    );
    assert!(matches!(
        store.refresh_locked("m", Duration::MAX, &refresher).await,
        Err(SageError::ConnectionRevoked { .. })
    ));
    assert_eq!(refresher.calls.load(Ordering::SeqCst), 0);

    store
        .connect("m", "b2", &tokens("a2", "r2", 300))
        .await
        .unwrap();
    let again = store.load("m").await.unwrap().unwrap();
    assert_eq!(again.status, ConnectionStatus::Active);
    assert_eq!(again.business_id, "b2");
    assert_eq!(again.generation, 2);

    let removed = store.disconnect("m").await.unwrap().expect("was there");
    assert_eq!(removed.tokens.refresh_token, "r2");
    assert!(store.load("m").await.unwrap().is_none());
    assert!(store.disconnect("m").await.unwrap().is_none());
}

#[tokio::test]
async fn refresh_happens_only_when_expiring_and_is_stored() {
    let db = TestDb::create().await.unwrap();
    let store = store(&db).await;
    let refresher = CountingRefresher {
        calls: AtomicUsize::new(0),
        delay: Duration::ZERO,
    };
    store
        .connect("m", "b", &tokens("a0", "r0", 300))
        .await
        .unwrap();
    let same = store
        .refresh_locked("m", Duration::from_secs(30), &refresher)
        .await
        .unwrap();
    assert_eq!(same.tokens.access_token, "a0");
    assert_eq!(refresher.calls.load(Ordering::SeqCst), 0);

    let refreshed = store
        .refresh_locked("m", Duration::MAX, &refresher)
        .await
        .unwrap();
    assert_eq!(refreshed.tokens.access_token, "access-1");
    assert_eq!(refreshed.tokens.refresh_token, "r0+1");
    let stored = store.load("m").await.unwrap().unwrap();
    assert_eq!(stored.tokens.refresh_token, "r0+1");
    assert_eq!(stored.generation, 2);
}

#[tokio::test]
async fn invalidation_only_touches_the_current_token() {
    let db = TestDb::create().await.unwrap();
    let store = store(&db).await;
    store
        .connect("m", "b", &tokens("current", "r", 300))
        .await
        .unwrap();
    assert!(!store.invalidate_access_token("m", "older").await.unwrap());
    let untouched = store.load("m").await.unwrap().unwrap();
    assert!(untouched.tokens.access_expires_at > Utc::now());
    assert!(store.invalidate_access_token("m", "current").await.unwrap());
    let expired = store.load("m").await.unwrap().unwrap();
    assert!(expired.tokens.access_expires_at < Utc::now());
    assert!(!store.invalidate_access_token("nobody", "x").await.unwrap());
}

#[tokio::test]
async fn invalid_grant_marks_the_row_revoked() {
    let db = TestDb::create().await.unwrap();
    let store = store(&db).await;
    store
        .connect("m", "b", &tokens("a", "r", -1))
        .await
        .unwrap();
    let err = store
        .refresh_locked("m", Duration::from_secs(30), &InvalidGrant)
        .await
        .unwrap_err();
    assert!(matches!(err, SageError::ConnectionRevoked { ref merchant } if merchant == "m"));
    let status: String =
        sqlx::query_scalar("SELECT status FROM sage_connections WHERE merchant_id = 'm'")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(status, "revoked");
}

#[tokio::test]
async fn two_stores_on_separate_pools_refresh_once() {
    let db = TestDb::create().await.unwrap();
    let a = store(&db).await;
    let other_pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(db.url())
        .await
        .unwrap();
    let b = PgTokenStore::new(other_pool, KEY);
    a.connect("m", "b", &tokens("old", "r0", -5)).await.unwrap();
    let refresher = Arc::new(CountingRefresher {
        calls: AtomicUsize::new(0),
        delay: Duration::from_millis(300),
    });
    let (ra, rb) = tokio::join!(
        a.refresh_locked("m", Duration::from_secs(30), refresher.as_ref()),
        b.refresh_locked("m", Duration::from_secs(30), refresher.as_ref()),
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(
        refresher.calls.load(Ordering::SeqCst),
        1,
        "one refresh across both stores"
    );
    assert_eq!(ra.tokens.access_token, rb.tokens.access_token);
    assert_eq!(ra.tokens.refresh_token, "r0+1");
}

#[tokio::test]
async fn keepalive_lists_connections_with_ageing_refresh_tokens() {
    let db = TestDb::create().await.unwrap();
    let store = store(&db).await;
    let mut young = tokens("a", "r", 300);
    young.refresh_expires_at = Utc::now() + chrono::Duration::days(30);
    let mut old = tokens("a", "r", 300);
    old.refresh_expires_at = Utc::now() + chrono::Duration::days(2);
    store.connect("young", "b", &young).await.unwrap();
    store.connect("old", "b", &old).await.unwrap();
    store.connect("old-revoked", "b", &old).await.unwrap();
    store.mark_revoked("old-revoked").await.unwrap();
    let due = store
        .merchants_expiring_before(Utc::now() + chrono::Duration::days(7))
        .await
        .unwrap();
    assert_eq!(due, vec!["old".to_string()]);
}
