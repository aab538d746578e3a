//! Client for the Sage Business Cloud Accounting API v3.1, as used by Ledger's services.
//!
//! - [`SageConfig`]: endpoints and app credentials (Sage's real ones via
//!   [`SageConfig::sage_production`], anything else by configuration).
//! - [`oauth::OAuthClient`]: consent URL, code exchange, refresh, revoke.
//! - [`TokenStore`] / [`PgTokenStore`]: merchants' connections in PostgreSQL, tokens encrypted
//!   with AES-256-GCM.
//! - [`TokenManager`]: valid access tokens on demand, refreshed single-flight per merchant
//!   within a process and across replicas (Sage's refresh tokens rotate on every use and only
//!   the newest works, so two concurrent refreshes would break the connection).
//! - [`SageClient`]: authenticated JSON calls with `X-Business`, one retry after a 401,
//!   `$next`-driven listing, idempotent writes.
//! - [`SageError`]: failures classified by what the caller must do ([`FailureClass`]).

#![warn(missing_docs)]

mod client;
mod config;
mod error;
mod http;
pub mod oauth;
mod store;
mod tokens;

use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use client::{CallObserver, ListProgress, SageClient, SageResponse};
pub use config::SageConfig;
pub use error::{FailureClass, SageError, SageErrorItem};
pub use http::MAX_RETRY_AFTER;

/// Whether two secrets (tokens, CSRF values, key hashes) are the same, compared in constant
/// time (`subtle`): the time taken does not tell where they first differ. Their length is not
/// secret (tokens and hashes have a fixed one).
pub fn same_secret(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.as_bytes().ct_eq(b.as_bytes()).into()
}
pub use oauth::{OAuthClient, TokenRefresher, TokenSet};
pub use store::{Connection, ConnectionStatus, PgTokenStore, TokenStore};
pub use tokens::{AccessToken, AccessTokenSource, TokenManager};

/// A money amount as Sage wants it: a JSON string with exactly two decimals (`"9.90"`).
///
/// Strings, because Sage recommends them to avoid binary floating point; two decimals,
/// because that is the only precision Sage Accounting keeps (it would round anything finer
/// itself, line by line, and the totals would drift). Midpoints round away from zero, the
/// usual commercial rule.
pub fn money(d: Decimal) -> Value {
    let mut rounded = d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(2);
    if rounded.is_zero() {
        // -0.004 rounds to a negative zero, which would print as "-0.00".
        rounded.set_sign_positive(true);
    }
    Value::String(rounded.to_string())
}

/// A non-money decimal (quantity, exchange rate, percentage) as a JSON string, unchanged.
pub fn decimal(d: Decimal) -> Value {
    Value::String(d.to_string())
}

/// Domain-separation prefix of [`idempotency_id`]; bump the version to change the scheme
/// without colliding with ids already sent.
const IDEMPOTENCY_DOMAIN: &[u8] = b"ledger.sage-client.idempotency.v1";

/// A deterministic Sage `idempotency_id` (32 lowercase hex characters) for one step of the
/// handling of one event.
///
/// Redelivery of the same event must produce the same id, so Sage answers the retry with the
/// record it created the first time instead of creating a second one; distinct steps of one
/// event (say `"contact"` and `"sales_invoice"`) need distinct ids, because Sage rejects a
/// reused id on a different resource type.
///
/// The id is the first 16 bytes of SHA-256 over: the domain string
/// `ledger.sage-client.idempotency.v1`, a zero byte, the 16 raw bytes of `event_id`, the
/// length of `step` in bytes as a big-endian u64, then `step` itself. Fixed-width and
/// length-prefixed fields make the encoding unambiguous (no two (event, step) pairs share an
/// input). Sage remembers ids for 7 days only; older duplicates must be caught by looking the
/// document up first.
pub fn idempotency_id(event_id: &uuid::Uuid, step: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(IDEMPOTENCY_DOMAIN);
    hasher.update([0u8]);
    hasher.update(event_id.as_bytes());
    hasher.update((step.len() as u64).to_be_bytes());
    hasher.update(step.as_bytes());
    let digest = hasher.finalize();
    data_encoding::HEXLOWER.encode(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use uuid::Uuid;

    #[test]
    fn money_is_a_two_decimal_string() {
        assert_eq!(money(dec!(9.9)), Value::String("9.90".into()));
        assert_eq!(money(dec!(10)), Value::String("10.00".into()));
        assert_eq!(money(dec!(41.625)), Value::String("41.63".into()));
        assert_eq!(money(dec!(-41.625)), Value::String("-41.63".into()));
        assert_eq!(money(dec!(8.324)), Value::String("8.32".into()));
        assert_eq!(money(dec!(-0.004)), Value::String("0.00".into()));
        assert_eq!(money(dec!(1234567.891)), Value::String("1234567.89".into()));
    }

    #[test]
    fn decimal_keeps_its_digits() {
        assert_eq!(
            decimal(dec!(0.8547008547)),
            Value::String("0.8547008547".into())
        );
        assert_eq!(decimal(dec!(2.50)), Value::String("2.50".into()));
    }

    #[test]
    fn idempotency_ids_are_deterministic_32_lowercase_hex() {
        let event = Uuid::parse_str("6f1c2a4e-0d7b-4c1e-9a55-3b1f0e2d9c88").unwrap();
        let a = idempotency_id(&event, "sales_invoice");
        assert_eq!(a, idempotency_id(&event, "sales_invoice"));
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }

    #[test]
    fn idempotency_ids_differ_by_step_and_event() {
        let e1 = Uuid::parse_str("6f1c2a4e-0d7b-4c1e-9a55-3b1f0e2d9c88").unwrap();
        let e2 = Uuid::parse_str("6f1c2a4e-0d7b-4c1e-9a55-3b1f0e2d9c89").unwrap();
        let ids = [
            idempotency_id(&e1, "contact"),
            idempotency_id(&e1, "sales_invoice"),
            idempotency_id(&e2, "contact"),
            idempotency_id(&e1, ""),
            idempotency_id(&e1, "contact "),
        ];
        for i in 0..ids.len() {
            for j in i + 1..ids.len() {
                assert_ne!(ids[i], ids[j], "ids {i} and {j} collide");
            }
        }
    }

    #[test]
    fn idempotency_id_scheme_is_stable() {
        // Pins the scheme: changing it would make redeliveries of in-flight events create
        // duplicates in Sage, so a change must come with a new domain version on purpose.
        let event = Uuid::nil();
        let mut h = Sha256::new();
        h.update(b"ledger.sage-client.idempotency.v1\0");
        h.update([0u8; 16]);
        h.update(1u64.to_be_bytes());
        h.update(b"x");
        assert_eq!(
            idempotency_id(&event, "x"),
            data_encoding::HEXLOWER.encode(&h.finalize()[..16])
        );
    }

    #[test]
    fn same_secret_is_equality() {
        assert!(same_secret("a1b2c3", "a1b2c3"));
        assert!(!same_secret("a1b2c3", "a1b2c4"));
        assert!(!same_secret("a1b2c3", "a1b2c"));
        assert!(!same_secret("", "a"));
    }
}
