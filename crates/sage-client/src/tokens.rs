//! Handing out valid access tokens, refreshing them exactly once per expiry.
//!
//! Two layers keep refreshes single-flight:
//! - in this process, one async mutex per merchant, so any number of concurrent callers wait
//!   for the one refresh in flight and then share its result;
//! - across processes, [`TokenStore::refresh_locked`], which refreshes under a row lock and
//!   re-checks expiry after acquiring it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::SageError;
use crate::oauth::{expires_within, OAuthClient, TokenSet};
use crate::store::{Connection, ConnectionStatus, TokenStore};

/// A bearer token ready to use for one merchant, with the business it is for.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The bearer token.
    pub token: String,
    /// The Sage business GUID to send as `X-Business`.
    pub business_id: String,
    /// When the token stops working.
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("business_id", &self.business_id)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl AccessToken {
    fn from_connection(c: &Connection) -> Self {
        AccessToken {
            token: c.tokens.access_token.clone(),
            business_id: c.business_id.clone(),
            expires_at: c.tokens.access_expires_at,
        }
    }
}

/// Anything that can hand [`crate::SageClient`] an access token for a merchant.
///
/// [`TokenManager`] is the implementation that owns the tokens; a service without database
/// access can implement this by asking the service that owns them (e.g. over NATS).
#[async_trait]
pub trait AccessTokenSource: Send + Sync {
    /// A token valid for at least a short while, refreshing first if needed.
    async fn access_token(&self, merchant: &str) -> Result<AccessToken, SageError>;

    /// Reports that Sage answered 401 to `stale_access_token`. The source must stop handing
    /// that token out, but only if it is still the current one: a concurrent caller may already
    /// have replaced it, and throwing away the replacement would cause a needless refresh.
    async fn invalidate(&self, merchant: &str, stale_access_token: &str) -> Result<(), SageError>;
}

/// What one merchant's mutex guards.
#[derive(Default)]
struct Slot {
    cached: Option<Cached>,
    /// The last failure and when it happened: callers that queued up behind a failing
    /// refresh get that failure instead of each trying again, so one wave of callers costs one
    /// attempt at Sage even when Sage is down.
    failure: Option<(Instant, SageError)>,
}

struct Cached {
    token: AccessToken,
    loaded_at: Instant,
}

/// Owns merchants' tokens: serves them from the store, refreshes them in time (once, however
/// many callers ask) and retires connections Sage no longer accepts.
pub struct TokenManager {
    oauth: OAuthClient,
    store: Arc<dyn TokenStore>,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
    refresh_margin: Duration,
    cache_ttl: Duration,
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("refresh_margin", &self.refresh_margin)
            .field("cache_ttl", &self.cache_ttl)
            .finish_non_exhaustive()
    }
}

impl TokenManager {
    /// Default: refresh when the access token has less than 30 s left, so a token handed out
    /// still outlives a slow request.
    pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(30);

    /// Default: reuse a token read from the store for at most 60 s before reading the store
    /// again, which bounds how long this process can miss a disconnect or a revocation done
    /// by another replica.
    pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);

    /// Creates a manager that refreshes through `oauth` and persists in `store`.
    pub fn new(oauth: OAuthClient, store: Arc<dyn TokenStore>) -> Self {
        TokenManager {
            oauth,
            store,
            slots: Mutex::new(HashMap::new()),
            refresh_margin: Self::DEFAULT_REFRESH_MARGIN,
            cache_ttl: Self::DEFAULT_CACHE_TTL,
        }
    }

    /// Changes how long before expiry a token is refreshed.
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// Changes how long a token read from the store is reused without reading it again
    /// (`Duration::ZERO` reads the store on every call).
    pub fn with_cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// The OAuth client (for the consent URL and code exchange).
    pub fn oauth(&self) -> &OAuthClient {
        &self.oauth
    }

    /// The token store.
    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.store
    }

    fn slot(&self, merchant: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(merchant.to_string()).or_default().clone()
    }

    fn forget_slot(&self, merchant: &str) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.remove(merchant);
    }

    /// Completes the consent flow: exchanges the callback's `code`, then stores the tokens for
    /// `merchant` and the Sage business it chose.
    pub async fn connect_with_code(
        &self,
        merchant: &str,
        business_id: &str,
        code: &str,
    ) -> Result<TokenSet, SageError> {
        let tokens = self.oauth.exchange_code(code).await?;
        self.connect(merchant, business_id, &tokens).await?;
        Ok(tokens)
    }

    /// Stores a token set obtained elsewhere as the merchant's connection.
    pub async fn connect(
        &self,
        merchant: &str,
        business_id: &str,
        tokens: &TokenSet,
    ) -> Result<(), SageError> {
        let slot = self.slot(merchant);
        let mut guard = slot.lock().await;
        self.store.connect(merchant, business_id, tokens).await?;
        *guard = Slot::default();
        Ok(())
    }

    /// Disconnects a merchant: deletes the stored connection, then revokes the refresh token
    /// at Sage (best effort: the stored copy is gone either way, and a failure is logged).
    pub async fn disconnect(&self, merchant: &str) -> Result<(), SageError> {
        let slot = self.slot(merchant);
        let mut guard = slot.lock().await;
        let removed = self.store.disconnect(merchant).await?;
        *guard = Slot::default();
        drop(guard);
        self.forget_slot(merchant);
        if let Some(connection) = removed {
            if connection.status == ConnectionStatus::Active {
                if let Err(e) = self.oauth.revoke(&connection.tokens.refresh_token).await {
                    tracing::warn!(merchant, error = %e, "revoking the Sage refresh token failed");
                }
            }
        }
        Ok(())
    }

    /// Marks the merchant's connection revoked, e.g. when an operator learns the merchant
    /// removed the app in Sage.
    pub async fn mark_revoked(&self, merchant: &str) -> Result<(), SageError> {
        let slot = self.slot(merchant);
        let mut guard = slot.lock().await;
        self.store.mark_revoked(merchant).await?;
        *guard = Slot::default();
        Ok(())
    }

    /// Refreshes the merchant's tokens now, whatever their expiry. Meant for a keep-alive job:
    /// Sage's refresh tokens die after 31 days unused.
    pub async fn refresh_now(&self, merchant: &str) -> Result<AccessToken, SageError> {
        let slot = self.slot(merchant);
        let mut guard = slot.lock().await;
        let result = self
            .store
            .refresh_locked(merchant, Duration::MAX, &self.oauth)
            .await
            .map(|c| AccessToken::from_connection(&c));
        self.remember(&mut guard, &result);
        result
    }

    /// A valid access token for `merchant`, refreshing it first if it expires within the
    /// refresh margin. Concurrent callers for one merchant share one refresh.
    pub async fn access_token(&self, merchant: &str) -> Result<AccessToken, SageError> {
        let arrived = Instant::now();
        let slot = self.slot(merchant);
        let mut guard = slot.lock().await;

        if let Some((failed_at, error)) = &guard.failure {
            if *failed_at >= arrived {
                // We queued behind an attempt that failed after we arrived: share its outcome.
                return Err(error.clone());
            }
        }
        if let Some(cached) = &guard.cached {
            if cached.loaded_at.elapsed() < self.cache_ttl
                && !expires_within(cached.token.expires_at, self.refresh_margin, Utc::now())
            {
                return Ok(cached.token.clone());
            }
        }

        let result = self.load_or_refresh(merchant).await;
        self.remember(&mut guard, &result);
        result
    }

    async fn load_or_refresh(&self, merchant: &str) -> Result<AccessToken, SageError> {
        // A plain read first: the common case (another replica refreshed, or the cache simply
        // aged out) needs no lock.
        match self.store.load(merchant).await? {
            None => {
                return Err(SageError::NotConnected {
                    merchant: merchant.to_string(),
                })
            }
            Some(c) if c.status == ConnectionStatus::Revoked => {
                return Err(SageError::ConnectionRevoked {
                    merchant: merchant.to_string(),
                })
            }
            Some(c)
                if !c
                    .tokens
                    .access_expires_within(self.refresh_margin, Utc::now()) =>
            {
                return Ok(AccessToken::from_connection(&c));
            }
            Some(_) => {}
        }
        let connection = self
            .store
            .refresh_locked(merchant, self.refresh_margin, &self.oauth)
            .await?;
        Ok(AccessToken::from_connection(&connection))
    }

    fn remember(&self, slot: &mut Slot, result: &Result<AccessToken, SageError>) {
        match result {
            Ok(token) => {
                slot.cached = Some(Cached {
                    token: token.clone(),
                    loaded_at: Instant::now(),
                });
                slot.failure = None;
            }
            Err(e) => {
                slot.cached = None;
                slot.failure = Some((Instant::now(), e.clone()));
            }
        }
    }
}

#[async_trait]
impl AccessTokenSource for TokenManager {
    async fn access_token(&self, merchant: &str) -> Result<AccessToken, SageError> {
        TokenManager::access_token(self, merchant).await
    }

    async fn invalidate(&self, merchant: &str, stale_access_token: &str) -> Result<(), SageError> {
        let slot = self.slot(merchant);
        let mut guard = slot.lock().await;
        if guard
            .cached
            .as_ref()
            .is_some_and(|c| crate::same_secret(&c.token.token, stale_access_token))
        {
            guard.cached = None;
        }
        // The store compares too, because another replica may have replaced the token.
        let replaced = self
            .store
            .invalidate_access_token(merchant, stale_access_token)
            .await?;
        tracing::debug!(merchant, replaced, "access token invalidated after a 401");
        Ok(())
    }
}
