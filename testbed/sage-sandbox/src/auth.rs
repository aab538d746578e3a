//! OAuth 2.0 as Sage runs it: authorisation codes, rotating refresh tokens,
//! short-lived access tokens and revocation.
//!
//! The state machine takes `now` explicitly so expiry is testable without
//! waiting.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Authorisation codes are single use and live 60 s (Sage's documented value).
pub const AUTH_CODE_TTL: Duration = Duration::from_secs(60);

/// Seconds Sage reports in `refresh_token_expires_in` for 31 days.
pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(2_678_400);

/// Lifetimes used when issuing tokens.
#[derive(Debug, Clone, Copy)]
pub struct TokenTtls {
    pub access: Duration,
    pub refresh: Duration,
}

#[derive(Debug, Clone)]
struct AuthCode {
    business_id: String,
    user_id: String,
    redirect_uri: Option<String>,
    code_challenge: Option<(String, String)>,
    expires: Instant,
}

/// One authorised connection (a user granting this client access).
#[derive(Debug, Clone)]
struct Connection {
    user_id: String,
    business_id: String,
    refresh_token: String,
    refresh_expires: Instant,
    revoked: bool,
}

#[derive(Debug, Clone)]
struct AccessToken {
    connection: u64,
    expires: Instant,
}

/// Tokens handed out by a successful grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub refresh_token_expires_in: u64,
    pub user_id: String,
    pub business_id: String,
}

/// Who an access token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub business_id: String,
}

/// OAuth error codes Sage's token endpoint answers with (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            error,
            description: description.into(),
        }
    }
}

/// Why an access token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    Unknown,
    Expired,
    Revoked,
}

/// All OAuth state of the sandbox.
#[derive(Debug, Default)]
pub struct AuthState {
    codes: HashMap<String, AuthCode>,
    connections: HashMap<u64, Connection>,
    access: HashMap<String, AccessToken>,
    /// Only the newest refresh token of each connection is in here; rotation
    /// removes the old one, which is what makes reuse fail.
    refresh: HashMap<String, u64>,
    /// Rotated-out refresh tokens, kept only so failed reuse can be
    /// attributed to its business in the statistics.
    retired: HashMap<String, u64>,
    next_connection: u64,
}

fn random_token(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    data_encoding::BASE64URL_NOPAD.encode(&buf)
}

impl AuthState {
    /// Issues a single-use code for `business_id` owned by `user_id`.
    pub fn issue_code(
        &mut self,
        country: &str,
        business_id: &str,
        user_id: &str,
        redirect_uri: Option<String>,
        code_challenge: Option<(String, String)>,
        now: Instant,
    ) -> String {
        // Sage's codes carry the region prefix (`GB/...`).
        let code = format!("{}/{}", country.to_uppercase(), crate::new_id());
        self.codes.retain(|_, c| c.expires > now);
        self.codes.insert(
            code.clone(),
            AuthCode {
                business_id: business_id.to_owned(),
                user_id: user_id.to_owned(),
                redirect_uri,
                code_challenge,
                expires: now + AUTH_CODE_TTL,
            },
        );
        code
    }

    /// `grant_type=authorization_code`.
    pub fn exchange_code(
        &mut self,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
        ttls: TokenTtls,
        now: Instant,
    ) -> Result<IssuedTokens, OAuthError> {
        // Removing first makes the code single-use even when the exchange fails.
        let Some(c) = self.codes.remove(code) else {
            return Err(OAuthError::new(
                "invalid_grant",
                "The authorization code is invalid or has already been used",
            ));
        };
        if c.expires <= now {
            return Err(OAuthError::new(
                "invalid_grant",
                "The authorization code has expired",
            ));
        }
        if let Some(expected) = &c.redirect_uri {
            if redirect_uri != Some(expected.as_str()) {
                return Err(OAuthError::new(
                    "invalid_grant",
                    "redirect_uri does not match the authorization request",
                ));
            }
        }
        if let Some((method, challenge)) = &c.code_challenge {
            let Some(verifier) = code_verifier else {
                return Err(OAuthError::new(
                    "invalid_grant",
                    "code_verifier is required",
                ));
            };
            if !pkce_matches(method, challenge, verifier) {
                return Err(OAuthError::new(
                    "invalid_grant",
                    "code_verifier does not match the code_challenge",
                ));
            }
        }
        let id = self.next_connection;
        self.next_connection += 1;
        let refresh_token = random_token(48);
        self.connections.insert(
            id,
            Connection {
                user_id: c.user_id,
                business_id: c.business_id,
                refresh_token: refresh_token.clone(),
                refresh_expires: now + ttls.refresh,
                revoked: false,
            },
        );
        self.refresh.insert(refresh_token, id);
        Ok(self.issue_access(id, ttls, now))
    }

    /// `grant_type=refresh_token`: rotates the refresh token.
    pub fn refresh(
        &mut self,
        refresh_token: &str,
        ttls: TokenTtls,
        now: Instant,
    ) -> Result<IssuedTokens, OAuthError> {
        let invalid = || {
            OAuthError::new(
                "invalid_grant",
                "The refresh token is invalid, expired, revoked or has already been used",
            )
        };
        let Some(&id) = self.refresh.get(refresh_token) else {
            return Err(invalid());
        };
        let conn = self.connections.get_mut(&id).ok_or_else(invalid)?;
        if conn.revoked || conn.refresh_expires <= now || !same(&conn.refresh_token, refresh_token)
        {
            return Err(invalid());
        }
        let new_refresh = random_token(48);
        conn.refresh_token = new_refresh.clone();
        conn.refresh_expires = now + ttls.refresh;
        self.refresh.remove(refresh_token);
        self.refresh.insert(new_refresh, id);
        if self.retired.len() >= 100_000 {
            self.retired.clear();
        }
        self.retired.insert(refresh_token.to_owned(), id);
        Ok(self.issue_access(id, ttls, now))
    }

    fn issue_access(&mut self, connection: u64, ttls: TokenTtls, now: Instant) -> IssuedTokens {
        // Expired access tokens are dropped occasionally so a long-running
        // sandbox does not grow without bound.
        if self.access.len() > 10_000 {
            self.access.retain(|_, a| a.expires > now);
        }
        let access_token = random_token(96);
        self.access.insert(
            access_token.clone(),
            AccessToken {
                connection,
                expires: now + ttls.access,
            },
        );
        let conn = &self.connections[&connection];
        IssuedTokens {
            access_token,
            refresh_token: conn.refresh_token.clone(),
            expires_in: ttls.access.as_secs(),
            refresh_token_expires_in: ttls.refresh.as_secs(),
            user_id: conn.user_id.clone(),
            business_id: conn.business_id.clone(),
        }
    }

    /// Resolves a bearer token.
    pub fn authenticate(
        &self,
        access_token: &str,
        now: Instant,
    ) -> Result<Principal, TokenProblem> {
        let a = self.access.get(access_token).ok_or(TokenProblem::Unknown)?;
        let conn = self
            .connections
            .get(&a.connection)
            .ok_or(TokenProblem::Unknown)?;
        if conn.revoked {
            return Err(TokenProblem::Revoked);
        }
        if a.expires <= now {
            return Err(TokenProblem::Expired);
        }
        Ok(Principal {
            user_id: conn.user_id.clone(),
            business_id: conn.business_id.clone(),
        })
    }

    /// Revokes the connection a refresh (or access) token belongs to; returns
    /// the connection's business when something was revoked.
    pub fn revoke_token(&mut self, token: &str) -> Option<String> {
        let id = self
            .refresh
            .get(token)
            .copied()
            .or_else(|| self.access.get(token).map(|a| a.connection))?;
        let conn = self.connections.get_mut(&id)?;
        conn.revoked = true;
        let business = conn.business_id.clone();
        let rt = conn.refresh_token.clone();
        self.refresh.remove(&rt);
        Some(business)
    }

    /// Business a current refresh token belongs to (for call statistics).
    pub fn business_of_refresh_token(&self, token: &str) -> Option<String> {
        let id = self
            .refresh
            .get(token)
            .or_else(|| self.retired.get(token))?;
        self.connections.get(id).map(|c| c.business_id.clone())
    }

    /// Revokes every connection of the given users or businesses; returns how many.
    pub fn revoke_where(&mut self, matches: impl Fn(&str, &str) -> bool) -> usize {
        let mut n = 0;
        for conn in self.connections.values_mut() {
            if !conn.revoked && matches(&conn.user_id, &conn.business_id) {
                conn.revoked = true;
                self.refresh.remove(&conn.refresh_token);
                n += 1;
            }
        }
        n
    }

    /// Makes every live access token of matching connections expire now, so a
    /// test can force the refresh path without waiting five minutes.
    pub fn expire_access_where(
        &mut self,
        matches: impl Fn(&str, &str) -> bool,
        now: Instant,
    ) -> usize {
        let mut n = 0;
        for a in self.access.values_mut() {
            if let Some(conn) = self.connections.get(&a.connection) {
                if a.expires > now && matches(&conn.user_id, &conn.business_id) {
                    a.expires = now;
                    n += 1;
                }
            }
        }
        n
    }
}

/// Whether two secrets are equal, compared in constant time (as an authorisation server does).
pub(crate) fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Checks a PKCE verifier against the stored challenge.
pub fn pkce_matches(method: &str, challenge: &str, verifier: &str) -> bool {
    match method {
        "S256" => {
            let digest = Sha256::digest(verifier.as_bytes());
            let derived = data_encoding::BASE64URL_NOPAD.encode(&digest);
            same(&derived, challenge)
        }
        "plain" => same(verifier, challenge),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTLS: TokenTtls = TokenTtls {
        access: Duration::from_secs(300),
        refresh: DEFAULT_REFRESH_TTL,
    };

    fn connected(state: &mut AuthState, now: Instant) -> IssuedTokens {
        let code = state.issue_code("GB", "b1", "u1", None, None, now);
        state.exchange_code(&code, None, None, TTLS, now).unwrap()
    }

    #[test]
    fn code_is_single_use_and_expires() {
        let mut s = AuthState::default();
        let now = Instant::now();
        let code = s.issue_code("gb", "b1", "u1", Some("https://app/cb".into()), None, now);
        assert!(code.starts_with("GB/"));
        let t = s
            .exchange_code(&code, Some("https://app/cb"), None, TTLS, now)
            .unwrap();
        assert_eq!((t.expires_in, t.refresh_token_expires_in), (300, 2_678_400));
        assert_eq!(
            s.exchange_code(&code, Some("https://app/cb"), None, TTLS, now)
                .unwrap_err()
                .error,
            "invalid_grant"
        );

        let code = s.issue_code("GB", "b1", "u1", None, None, now);
        let later = now + AUTH_CODE_TTL + Duration::from_millis(1);
        assert!(s
            .exchange_code(&code, None, None, TTLS, later)
            .unwrap_err()
            .description
            .contains("expired"));
    }

    #[test]
    fn redirect_uri_must_match() {
        let mut s = AuthState::default();
        let now = Instant::now();
        let code = s.issue_code("GB", "b1", "u1", Some("https://a".into()), None, now);
        assert!(s
            .exchange_code(&code, Some("https://b"), None, TTLS, now)
            .is_err());
    }

    #[test]
    fn refresh_rotates_and_old_token_fails() {
        let mut s = AuthState::default();
        let now = Instant::now();
        let first = connected(&mut s, now);
        let second = s.refresh(&first.refresh_token, TTLS, now).unwrap();
        assert_ne!(first.refresh_token, second.refresh_token);
        assert_ne!(first.access_token, second.access_token);
        assert_eq!(
            s.refresh(&first.refresh_token, TTLS, now)
                .unwrap_err()
                .error,
            "invalid_grant"
        );
        assert!(s.refresh(&second.refresh_token, TTLS, now).is_ok());
        assert_eq!(
            s.business_of_refresh_token(&first.refresh_token).as_deref(),
            Some("b1")
        );
        assert_eq!(s.business_of_refresh_token("never-issued"), None);
    }

    #[test]
    fn access_token_expiry_and_revocation() {
        let mut s = AuthState::default();
        let now = Instant::now();
        let t = connected(&mut s, now);
        assert_eq!(
            s.authenticate(&t.access_token, now).unwrap().business_id,
            "b1"
        );
        assert_eq!(
            s.authenticate(&t.access_token, now + Duration::from_secs(300)),
            Err(TokenProblem::Expired)
        );
        assert_eq!(s.authenticate("nope", now), Err(TokenProblem::Unknown));
        assert_eq!(s.revoke_token(&t.refresh_token).as_deref(), Some("b1"));
        assert_eq!(
            s.authenticate(&t.access_token, now),
            Err(TokenProblem::Revoked)
        );
        assert!(s.refresh(&t.refresh_token, TTLS, now).is_err());
    }

    #[test]
    fn refresh_token_expiry() {
        let mut s = AuthState::default();
        let now = Instant::now();
        let t = connected(&mut s, now);
        assert!(s
            .refresh(&t.refresh_token, TTLS, now + DEFAULT_REFRESH_TTL)
            .is_err());
    }

    #[test]
    fn pkce_s256_and_plain() {
        // RFC 7636 appendix B example.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches("S256", challenge, verifier));
        assert!(!pkce_matches("S256", challenge, "other"));
        assert!(pkce_matches("plain", "abc", "abc"));
        let mut s = AuthState::default();
        let now = Instant::now();
        let code = s.issue_code(
            "GB",
            "b",
            "u",
            None,
            Some(("S256".into(), challenge.into())),
            now,
        );
        assert!(s.exchange_code(&code, None, None, TTLS, now).is_err());
        let code = s.issue_code(
            "GB",
            "b",
            "u",
            None,
            Some(("S256".into(), challenge.into())),
            now,
        );
        assert!(s
            .exchange_code(&code, None, Some(verifier), TTLS, now)
            .is_ok());
    }

    #[test]
    fn bulk_revoke_and_expire() {
        let mut s = AuthState::default();
        let now = Instant::now();
        let t = connected(&mut s, now);
        assert_eq!(s.expire_access_where(|_, b| b == "b1", now), 1);
        assert_eq!(
            s.authenticate(&t.access_token, now),
            Err(TokenProblem::Expired)
        );
        assert!(s.refresh(&t.refresh_token, TTLS, now).is_ok());
        assert_eq!(s.revoke_where(|_, b| b == "b1"), 1);
        assert_eq!(s.revoke_where(|_, b| b == "b1"), 0);
    }
}
