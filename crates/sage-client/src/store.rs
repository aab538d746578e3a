//! Durable, encrypted storage of merchants' Sage connections, and the cross-process half of
//! single-flight token refresh.
//!
//! Sage rotates the refresh token on every use and honours only the newest one, so two
//! replicas refreshing the same merchant at once would leave one of them (and possibly the
//! database) holding a dead token. [`TokenStore::refresh_locked`] therefore refreshes only while
//! holding an exclusive lock on the merchant's row, re-checks expiry once it has the lock (the
//! replica that held it before may already have refreshed) and commits the new tokens before
//! anyone uses them.

use std::fmt;
use std::time::Duration;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::error::SageError;
use crate::oauth::{TokenRefresher, TokenSet};

/// Whether a stored connection can still be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionStatus {
    /// Tokens are believed to work.
    Active,
    /// Sage refused the refresh token (or an operator revoked the connection); the merchant
    /// must go through the consent page again.
    Revoked,
}

impl ConnectionStatus {
    /// The value stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Active => "active",
            ConnectionStatus::Revoked => "revoked",
        }
    }

    fn parse(s: &str) -> Result<Self, SageError> {
        match s {
            "active" => Ok(ConnectionStatus::Active),
            "revoked" => Ok(ConnectionStatus::Revoked),
            other => Err(SageError::Storage {
                message: format!("unknown connection status {other:?}"),
            }),
        }
    }
}

/// A merchant's Sage connection as stored, with tokens decrypted.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The Ledger merchant id.
    pub merchant_id: String,
    /// The Sage business GUID sent as `X-Business` on every call for this merchant.
    pub business_id: String,
    /// Current tokens (its `Debug` redacts them).
    pub tokens: TokenSet,
    /// Whether the connection is usable.
    pub status: ConnectionStatus,
    /// Incremented on every write of new tokens.
    pub generation: i64,
    /// Last change to the row.
    pub updated_at: DateTime<Utc>,
}

/// Where merchants' Sage connections live.
///
/// Implementations must make [`TokenStore::refresh_locked`] exclusive per merchant across
/// every process that shares the store; that is what keeps Sage's rotating refresh tokens
/// intact when several replicas run.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Records a new (or renewed) connection after the merchant authorised the app, replacing
    /// whatever was stored for the merchant and marking it active.
    async fn connect(
        &self,
        merchant: &str,
        business_id: &str,
        tokens: &TokenSet,
    ) -> Result<(), SageError>;

    /// Reads the merchant's connection, if any, without locking.
    async fn load(&self, merchant: &str) -> Result<Option<Connection>, SageError>;

    /// Under an exclusive per-merchant lock: re-reads the connection and, if its access token
    /// expires within `margin`, refreshes it through `refresher` and stores the new tokens
    /// durably before returning them. Pass `Duration::MAX` to refresh unconditionally.
    ///
    /// Errors: [`SageError::NotConnected`] without a row, [`SageError::ConnectionRevoked`] for
    /// a revoked row or when Sage answers `invalid_grant` (the row is then marked revoked), and
    /// whatever the refresher returned otherwise (nothing is stored then).
    async fn refresh_locked(
        &self,
        merchant: &str,
        margin: Duration,
        refresher: &dyn TokenRefresher,
    ) -> Result<Connection, SageError>;

    /// Marks the access token expired if (and only if) it is still `stale_access_token`, so
    /// that the next caller refreshes. Returns whether it was still current. Used after Sage
    /// answered 401: if another caller already replaced the token, nothing must happen.
    async fn invalidate_access_token(
        &self,
        merchant: &str,
        stale_access_token: &str,
    ) -> Result<bool, SageError>;

    /// Marks the connection revoked (Sage refused its refresh token). The row is kept so the
    /// merchant's business id and history stay visible until they reconnect.
    async fn mark_revoked(&self, merchant: &str) -> Result<(), SageError>;

    /// Deletes the connection and returns what was stored, so the caller can revoke the
    /// refresh token at Sage.
    async fn disconnect(&self, merchant: &str) -> Result<Option<Connection>, SageError>;
}

/// Version byte in front of every ciphertext, so a later key rotation or algorithm change can
/// tell old values from new ones.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;

/// PostgreSQL-backed [`TokenStore`] that encrypts tokens at rest with AES-256-GCM.
///
/// Cross-process exclusivity comes from `SELECT ... FOR UPDATE` on the merchant's row inside
/// the transaction that also stores the refreshed tokens.
#[derive(Clone)]
pub struct PgTokenStore {
    pool: PgPool,
    cipher: Aes256Gcm,
    lock_timeout: Duration,
}

impl fmt::Debug for PgTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTokenStore")
            .field("key", &"<redacted>")
            .field("lock_timeout", &self.lock_timeout)
            .finish_non_exhaustive()
    }
}

const SELECT_COLUMNS: &str = "merchant_id, business_id, access_token_enc, refresh_token_enc, \
     access_expires_at, refresh_expires_at, scope, requested_by_id, status, generation, updated_at";

impl PgTokenStore {
    /// Creates a store on `pool` that encrypts with the 256-bit `key`. Every replica must use
    /// the same key; load it from a secret store, never from the database it protects.
    pub fn new(pool: PgPool, key: [u8; 32]) -> Self {
        PgTokenStore {
            pool,
            cipher: Aes256Gcm::new(&key.into()),
            // Long enough to wait out one refresh by another replica (bounded by the HTTP
            // timeout), short enough that a stuck holder surfaces as a transient error.
            lock_timeout: Duration::from_secs(60),
        }
    }

    /// Sets how long a refresh waits for another process's lock on the same merchant before
    /// failing with a transient [`SageError::Storage`]. Keep it above the HTTP timeout.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Creates or updates the `sage_connections` table.
    ///
    /// Other crates may run their own migrations against the same database, so migrations
    /// this crate does not know are ignored instead of failing.
    pub async fn migrate(&self) -> Result<(), SageError> {
        let mut migrator = sqlx::migrate!("./migrations");
        migrator.set_ignore_missing(true);
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| SageError::storage("running sage-client migrations", e))
    }

    /// The pool this store uses.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Active merchants whose refresh token expires before `cutoff`. Sage's refresh tokens
    /// die after 31 days without use, so a periodic job should refresh these (e.g. with
    /// `TokenManager::refresh_now`) to keep quiet merchants connected.
    pub async fn merchants_expiring_before(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<Vec<String>, SageError> {
        sqlx::query_scalar(
            "SELECT merchant_id FROM sage_connections \
             WHERE status = 'active' AND refresh_expires_at < $1 ORDER BY refresh_expires_at",
        )
        .bind(cutoff)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| SageError::storage("listing connections", e))
    }

    /// Binds a ciphertext to its merchant and column, so a value copied into another row or
    /// column fails to decrypt instead of silently handing one merchant another's token.
    fn aad(column: &str, merchant: &str) -> Vec<u8> {
        format!("ledger.sage_connections.v1|{column}|{merchant}").into_bytes()
    }

    fn encrypt(&self, column: &str, merchant: &str, plaintext: &str) -> Result<Vec<u8>, SageError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = Self::aad(column, merchant);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| SageError::Storage {
                message: "token encryption failed".into(),
            })?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    fn decrypt(&self, column: &str, merchant: &str, stored: &[u8]) -> Result<String, SageError> {
        let undecryptable = || {
            SageError::Storage {
            message: format!(
                "stored {column} of merchant {merchant} cannot be decrypted (wrong key or tampered row)"
            ),
        }
        };
        if stored.len() < 1 + NONCE_LEN || stored[0] != FORMAT_V1 {
            return Err(undecryptable());
        }
        let nonce = Nonce::from_slice(&stored[1..1 + NONCE_LEN]);
        let aad = Self::aad(column, merchant);
        let plaintext = self
            .cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &stored[1 + NONCE_LEN..],
                    aad: &aad,
                },
            )
            .map_err(|_| undecryptable())?;
        String::from_utf8(plaintext).map_err(|_| undecryptable())
    }

    fn decode(&self, row: &PgRow) -> Result<Connection, SageError> {
        let db = |e: sqlx::Error| SageError::storage("decoding sage_connections row", e);
        let merchant_id: String = row.try_get("merchant_id").map_err(db)?;
        let access_enc: Vec<u8> = row.try_get("access_token_enc").map_err(db)?;
        let refresh_enc: Vec<u8> = row.try_get("refresh_token_enc").map_err(db)?;
        let status: String = row.try_get("status").map_err(db)?;
        Ok(Connection {
            business_id: row.try_get("business_id").map_err(db)?,
            tokens: TokenSet {
                access_token: self.decrypt("access_token", &merchant_id, &access_enc)?,
                refresh_token: self.decrypt("refresh_token", &merchant_id, &refresh_enc)?,
                access_expires_at: row.try_get("access_expires_at").map_err(db)?,
                refresh_expires_at: row.try_get("refresh_expires_at").map_err(db)?,
                scope: row.try_get("scope").map_err(db)?,
                requested_by_id: row.try_get("requested_by_id").map_err(db)?,
            },
            status: ConnectionStatus::parse(&status)?,
            generation: row.try_get("generation").map_err(db)?,
            updated_at: row.try_get("updated_at").map_err(db)?,
            merchant_id,
        })
    }

    /// Opens a transaction and locks the merchant's row, waiting at most `lock_timeout`.
    async fn lock_row(
        &self,
        merchant: &str,
    ) -> Result<(Transaction<'static, Postgres>, Option<Connection>), SageError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| SageError::storage("starting a transaction", e))?;
        sqlx::query("SELECT set_config('lock_timeout', $1, true)")
            .bind(format!("{}ms", self.lock_timeout.as_millis().max(1)))
            .execute(&mut *tx)
            .await
            .map_err(|e| SageError::storage("setting lock_timeout", e))?;
        let row = sqlx::query(&format!(
            "SELECT {SELECT_COLUMNS} FROM sage_connections WHERE merchant_id = $1 FOR UPDATE"
        ))
        .bind(merchant)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| SageError::storage("locking the merchant's connection", e))?;
        let connection = row.map(|r| self.decode(&r)).transpose()?;
        Ok((tx, connection))
    }

    async fn store_refreshed(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        merchant: &str,
        tokens: &TokenSet,
    ) -> Result<Connection, SageError> {
        let row = sqlx::query(&format!(
            "UPDATE sage_connections SET access_token_enc = $2, refresh_token_enc = $3, \
                 access_expires_at = $4, refresh_expires_at = $5, \
                 scope = COALESCE($6, scope), requested_by_id = COALESCE($7, requested_by_id), \
                 generation = generation + 1, last_refreshed_at = now(), updated_at = now() \
             WHERE merchant_id = $1 RETURNING {SELECT_COLUMNS}"
        ))
        .bind(merchant)
        .bind(self.encrypt("access_token", merchant, &tokens.access_token)?)
        .bind(self.encrypt("refresh_token", merchant, &tokens.refresh_token)?)
        .bind(tokens.access_expires_at)
        .bind(tokens.refresh_expires_at)
        .bind(&tokens.scope)
        .bind(&tokens.requested_by_id)
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| SageError::storage("storing refreshed tokens", e))?;
        self.decode(&row)
    }
}

#[async_trait]
impl TokenStore for PgTokenStore {
    async fn connect(
        &self,
        merchant: &str,
        business_id: &str,
        tokens: &TokenSet,
    ) -> Result<(), SageError> {
        sqlx::query(
            "INSERT INTO sage_connections (merchant_id, business_id, access_token_enc, \
                 refresh_token_enc, access_expires_at, refresh_expires_at, scope, requested_by_id, \
                 status, generation, connected_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', 1, now(), now()) \
             ON CONFLICT (merchant_id) DO UPDATE SET business_id = EXCLUDED.business_id, \
                 access_token_enc = EXCLUDED.access_token_enc, \
                 refresh_token_enc = EXCLUDED.refresh_token_enc, \
                 access_expires_at = EXCLUDED.access_expires_at, \
                 refresh_expires_at = EXCLUDED.refresh_expires_at, \
                 scope = EXCLUDED.scope, requested_by_id = EXCLUDED.requested_by_id, \
                 status = 'active', generation = sage_connections.generation + 1, \
                 connected_at = now(), last_refreshed_at = NULL, updated_at = now()",
        )
        .bind(merchant)
        .bind(business_id)
        .bind(self.encrypt("access_token", merchant, &tokens.access_token)?)
        .bind(self.encrypt("refresh_token", merchant, &tokens.refresh_token)?)
        .bind(tokens.access_expires_at)
        .bind(tokens.refresh_expires_at)
        .bind(&tokens.scope)
        .bind(&tokens.requested_by_id)
        .execute(&self.pool)
        .await
        .map_err(|e| SageError::storage("storing a new connection", e))?;
        Ok(())
    }

    async fn load(&self, merchant: &str) -> Result<Option<Connection>, SageError> {
        let row = sqlx::query(&format!(
            "SELECT {SELECT_COLUMNS} FROM sage_connections WHERE merchant_id = $1"
        ))
        .bind(merchant)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| SageError::storage("loading a connection", e))?;
        row.map(|r| self.decode(&r)).transpose()
    }

    async fn refresh_locked(
        &self,
        merchant: &str,
        margin: Duration,
        refresher: &dyn TokenRefresher,
    ) -> Result<Connection, SageError> {
        let (mut tx, current) = self.lock_row(merchant).await?;
        let current = match current {
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
            Some(c) => c,
        };
        // Re-checked under the lock: whoever held it before us may have refreshed already,
        // and refreshing again would only burn a rotation (or race a third replica).
        if !current.tokens.access_expires_within(margin, Utc::now()) {
            // Nothing was written; ending the transaction just releases the lock.
            let _ = tx.rollback().await;
            return Ok(current);
        }
        match refresher.refresh(&current.tokens.refresh_token).await {
            Ok(tokens) => {
                let stored = self.store_refreshed(&mut tx, merchant, &tokens).await;
                let committed = match stored {
                    Ok(conn) => tx
                        .commit()
                        .await
                        .map(|_| conn)
                        .map_err(|e| SageError::storage("committing refreshed tokens", e)),
                    Err(e) => Err(e),
                };
                if let Err(e) = &committed {
                    // Sage has already retired the stored refresh token, so this connection
                    // will fail with invalid_grant on its next refresh. Nothing can undo that;
                    // make it loud so an operator knows why the merchant must reconnect.
                    tracing::error!(
                        merchant,
                        error = %e,
                        "Sage issued new tokens but they could not be stored; the merchant will have to reconnect"
                    );
                }
                committed
            }
            Err(e) if e.is_invalid_grant() => {
                sqlx::query(
                    "UPDATE sage_connections SET status = 'revoked', updated_at = now() \
                     WHERE merchant_id = $1",
                )
                .bind(merchant)
                .execute(&mut *tx)
                .await
                .map_err(|e| SageError::storage("marking a connection revoked", e))?;
                tx.commit()
                    .await
                    .map_err(|e| SageError::storage("marking a connection revoked", e))?;
                tracing::warn!(
                    merchant,
                    "Sage refused the refresh token (invalid_grant); connection marked revoked"
                );
                Err(SageError::ConnectionRevoked {
                    merchant: merchant.to_string(),
                })
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    async fn invalidate_access_token(
        &self,
        merchant: &str,
        stale_access_token: &str,
    ) -> Result<bool, SageError> {
        let (mut tx, current) = self.lock_row(merchant).await?;
        let still_current = current
            .as_ref()
            .is_some_and(|c| crate::same_secret(&c.tokens.access_token, stale_access_token));
        if !still_current {
            let _ = tx.rollback().await;
            return Ok(false);
        }
        // The epoch rather than now(): it reads as "expired" whatever the clock skew between
        // replicas.
        sqlx::query(
            "UPDATE sage_connections SET access_expires_at = 'epoch', updated_at = now() \
             WHERE merchant_id = $1",
        )
        .bind(merchant)
        .execute(&mut *tx)
        .await
        .map_err(|e| SageError::storage("invalidating an access token", e))?;
        tx.commit()
            .await
            .map_err(|e| SageError::storage("invalidating an access token", e))?;
        Ok(true)
    }

    async fn mark_revoked(&self, merchant: &str) -> Result<(), SageError> {
        sqlx::query(
            "UPDATE sage_connections SET status = 'revoked', updated_at = now() WHERE merchant_id = $1",
        )
        .bind(merchant)
        .execute(&self.pool)
        .await
        .map_err(|e| SageError::storage("marking a connection revoked", e))?;
        Ok(())
    }

    async fn disconnect(&self, merchant: &str) -> Result<Option<Connection>, SageError> {
        let row = sqlx::query(&format!(
            "DELETE FROM sage_connections WHERE merchant_id = $1 RETURNING {SELECT_COLUMNS}"
        ))
        .bind(merchant)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| SageError::storage("deleting a connection", e))?;
        row.map(|r| self.decode(&r)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::postgres::PgPoolOptions;

    fn store() -> PgTokenStore {
        // A lazy pool never connects; these tests only exercise the cipher.
        let pool = PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap();
        PgTokenStore::new(pool, [7u8; 32])
    }

    #[tokio::test]
    async fn ciphertexts_round_trip_and_differ_each_time() {
        let s = store();
        let a = s.encrypt("access_token", "m1", "tok").unwrap();
        let b = s.encrypt("access_token", "m1", "tok").unwrap();
        assert_ne!(a, b, "a fresh nonce per value");
        assert_eq!(a[0], FORMAT_V1);
        assert_eq!(s.decrypt("access_token", "m1", &a).unwrap(), "tok");
    }

    #[tokio::test]
    async fn ciphertexts_are_bound_to_merchant_column_and_key() {
        let s = store();
        let a = s.encrypt("access_token", "m1", "tok").unwrap();
        assert!(s.decrypt("access_token", "m2", &a).is_err());
        assert!(s.decrypt("refresh_token", "m1", &a).is_err());
        let other = PgTokenStore::new(s.pool.clone(), [8u8; 32]);
        assert!(other.decrypt("access_token", "m1", &a).is_err());
        let mut tampered = a.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(s.decrypt("access_token", "m1", &tampered).is_err());
        assert!(s.decrypt("access_token", "m1", &[1, 2, 3]).is_err());
        assert!(!format!("{s:?}").contains("7, 7"));
    }
}
