//! Sage's OAuth 2.0 authorisation-code flow: the consent URL, code exchange, refresh, revoke.
//!
//! These calls are stateless; keeping the rotating refresh token safe (one refresh at a time,
//! stored before use) is the job of [`crate::TokenManager`] and [`crate::TokenStore`].

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use url::Url;

use crate::config::SageConfig;
use crate::error::{truncate, SageError};
use crate::http::{request_id, retry_after, transport_error};

/// Sage documents a 31-day refresh token lifetime; used only when a token answer omits
/// `refresh_token_expires_in`.
const DEFAULT_REFRESH_LIFETIME: Duration = Duration::from_secs(31 * 24 * 3600);

/// The scope requested on the consent page: the connector writes documents, so `readonly`
/// would be useless.
const SCOPE: &str = "full_access";

/// The tokens Sage hands out for one authorisation, with absolute expiry times.
///
/// Expiries are stored as instants rather than Sage's relative `expires_in` so they stay
/// meaningful after the value has sat in a database.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSet {
    /// Bearer token for API calls (a JWT; Sage: reserve up to 2048 bytes). Lives 5 minutes.
    pub access_token: String,
    /// Single-use refresh token: each refresh returns a new one and invalidates this one.
    pub refresh_token: String,
    /// When the access token stops working.
    pub access_expires_at: DateTime<Utc>,
    /// When the refresh token stops working (31 days after issue); the merchant must
    /// re-authorise after that.
    pub refresh_expires_at: DateTime<Utc>,
    /// Scope granted (`full_access` or `readonly`), as echoed by Sage.
    pub scope: Option<String>,
    /// Sage id of the user who authorised; Sage stamps that user on what the API creates.
    pub requested_by_id: Option<String>,
}

impl TokenSet {
    /// True when the access token is expired or expires within `margin` of `now`.
    pub fn access_expires_within(&self, margin: Duration, now: DateTime<Utc>) -> bool {
        expires_within(self.access_expires_at, margin, now)
    }
}

pub(crate) fn expires_within(at: DateTime<Utc>, margin: Duration, now: DateTime<Utc>) -> bool {
    let margin = chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::MAX);
    match now.checked_add_signed(margin) {
        Some(limit) => at <= limit,
        None => true,
    }
}

impl fmt::Debug for TokenSet {
    // Tokens are credentials: never print them, but keep enough to tell two sets apart.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .field("scope", &self.scope)
            .field("requested_by_id", &self.requested_by_id)
            .finish()
    }
}

/// Sage's token endpoint answer.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: String,
    expires_in: Option<u64>,
    refresh_token_expires_in: Option<u64>,
    scope: Option<String>,
    requested_by_id: Option<String>,
}

impl TokenResponse {
    fn into_token_set(self, issued_at: DateTime<Utc>) -> TokenSet {
        // Without `expires_in` assume Sage's documented 5 minutes rather than "forever", so a
        // refresh still happens in time.
        let access = Duration::from_secs(self.expires_in.unwrap_or(300));
        let refresh = self
            .refresh_token_expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_REFRESH_LIFETIME);
        TokenSet {
            access_token: self.access_token,
            refresh_token: self.refresh_token,
            access_expires_at: add(issued_at, access),
            refresh_expires_at: add(issued_at, refresh),
            scope: self.scope,
            requested_by_id: self.requested_by_id,
        }
    }
}

fn add(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: Option<String>,
    error_description: Option<String>,
}

/// Exchanges refresh tokens for new token sets.
///
/// [`crate::TokenStore`] implementations call this while they hold a merchant's lock, so the
/// lock logic does not depend on how the exchange is done (and tests can count exchanges).
#[async_trait]
pub trait TokenRefresher: Send + Sync {
    /// Trades `refresh_token` for a new token set. The given token is dead afterwards
    /// whatever the outcome, unless the call failed before reaching Sage.
    async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, SageError>;
}

/// Client for Sage's OAuth endpoints.
#[derive(Clone, Debug)]
pub struct OAuthClient {
    config: SageConfig,
    http: reqwest::Client,
}

impl OAuthClient {
    /// Creates a client with its own HTTP connection pool.
    pub fn new(config: SageConfig) -> Self {
        Self::with_http_client(config, reqwest::Client::new())
    }

    /// Creates a client that shares an existing `reqwest::Client` (and its connection pool).
    pub fn with_http_client(config: SageConfig, http: reqwest::Client) -> Self {
        OAuthClient { config, http }
    }

    /// The configuration this client uses.
    pub fn config(&self) -> &SageConfig {
        &self.config
    }

    /// The consent page URL to send a merchant to. `state` must be an unguessable value tied
    /// to the merchant's session; the callback has to check it to stop CSRF.
    pub fn authorize_url(&self, state: &str) -> String {
        match Url::parse(&self.config.authorize_url) {
            Ok(mut url) => {
                url.query_pairs_mut()
                    .append_pair("response_type", "code")
                    .append_pair("client_id", &self.config.client_id)
                    .append_pair("redirect_uri", &self.config.redirect_uri)
                    .append_pair("scope", SCOPE)
                    .append_pair("state", state);
                url.into()
            }
            // A malformed configured URL still yields something visible in logs and browsers
            // instead of a panic in a request handler.
            Err(_) => {
                let sep = if self.config.authorize_url.contains('?') {
                    '&'
                } else {
                    '?'
                };
                let query = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("response_type", "code")
                    .append_pair("client_id", &self.config.client_id)
                    .append_pair("redirect_uri", &self.config.redirect_uri)
                    .append_pair("scope", SCOPE)
                    .append_pair("state", state)
                    .finish();
                format!("{}{sep}{query}", self.config.authorize_url)
            }
        }
    }

    /// Trades the authorisation code from the callback for tokens. Sage's codes are
    /// single-use and expire after 60 seconds, so call this straight from the callback.
    pub async fn exchange_code(&self, code: &str) -> Result<TokenSet, SageError> {
        self.token_request(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.config.redirect_uri),
            ("client_id", &self.config.client_id),
            ("client_secret", &self.config.client_secret),
        ])
        .await
    }

    /// Trades a refresh token for a new token set. The old refresh token stops working, so
    /// the result must be stored before anything else happens; prefer
    /// [`crate::TokenManager`], which does that under a lock.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, SageError> {
        self.token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &self.config.client_id),
            ("client_secret", &self.config.client_secret),
        ])
        .await
    }

    /// Revokes a refresh token (and with it the merchant's authorisation) at Sage. Access
    /// tokens already issued keep working until they expire; Sage cannot revoke those.
    pub async fn revoke(&self, refresh_token: &str) -> Result<(), SageError> {
        let response = self
            .http
            .post(&self.config.revoke_url)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.config.request_timeout)
            .form(&[
                ("client_id", self.config.client_id.as_str()),
                ("client_secret", self.config.client_secret.as_str()),
                ("token", refresh_token),
            ])
            .send()
            .await
            .map_err(|e| transport_error("Sage token revocation", e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let headers = response.headers().clone();
        let body = response.text().await.unwrap_or_default();
        Err(oauth_failure(status.as_u16(), &headers, &body))
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<TokenSet, SageError> {
        let issued_at = Utc::now();
        let response = self
            .http
            .post(&self.config.token_url)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.config.request_timeout)
            .form(form)
            .send()
            .await
            .map_err(|e| transport_error("Sage token request", e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .text()
            .await
            .map_err(|e| transport_error("reading Sage token response", e))?;
        if !status.is_success() {
            return Err(oauth_failure(status.as_u16(), &headers, &body));
        }
        let parsed: TokenResponse =
            serde_json::from_str(&body).map_err(|e| SageError::Protocol {
                // The body is a credential on success, so only the parse error is kept.
                message: format!("token response is not the expected JSON: {e}"),
                request_id: request_id(&headers),
            })?;
        Ok(parsed.into_token_set(issued_at))
    }
}

#[async_trait]
impl TokenRefresher for OAuthClient {
    async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, SageError> {
        OAuthClient::refresh(self, refresh_token).await
    }
}

/// Classifies a non-2xx answer from the token or revoke endpoint.
fn oauth_failure(status: u16, headers: &reqwest::header::HeaderMap, body: &str) -> SageError {
    if status >= 500 || status == 429 || status == 408 {
        return SageError::Transient {
            status: Some(status),
            message: format!(
                "Sage OAuth endpoint answered: {}",
                truncate(body.trim(), 300)
            ),
            retry_after: retry_after(headers),
            request_id: request_id(headers),
        };
    }
    let parsed: Option<OAuthErrorBody> = serde_json::from_str(body).ok();
    let (error, description) = match parsed {
        Some(OAuthErrorBody {
            error: Some(error),
            error_description,
        }) => (error, error_description),
        _ => (
            format!("http_{status}"),
            Some(truncate(body.trim(), 300)).filter(|s| !s.is_empty()),
        ),
    };
    SageError::OAuth {
        status,
        error,
        description,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn config(authorize_url: &str) -> SageConfig {
        let mut c =
            SageConfig::sage_production("my client", "s3cret", "https://ledger.example/cb?x=1");
        c.authorize_url = authorize_url.into();
        c
    }

    #[test]
    fn authorize_url_appends_to_an_existing_query() {
        let client = OAuthClient::new(config(
            "https://www.sageone.com/oauth2/auth/central?filter=apiv3.1",
        ));
        let url = Url::parse(&client.authorize_url("st&ate")).unwrap();
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs[0], ("filter".into(), "apiv3.1".into()));
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(get("response_type"), "code");
        assert_eq!(get("client_id"), "my client");
        assert_eq!(get("redirect_uri"), "https://ledger.example/cb?x=1");
        assert_eq!(get("scope"), "full_access");
        assert_eq!(get("state"), "st&ate");
        assert!(!client.authorize_url("s").contains("s3cret"));
    }

    #[test]
    fn token_response_becomes_absolute_expiries() {
        let issued = Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap();
        let body = r#"{"access_token":"a","expires_in":300,"token_type":"bearer","refresh_token":"r",
                       "refresh_token_expires_in":2678400,"scope":"full_access","requested_by_id":"u1"}"#;
        let set = serde_json::from_str::<TokenResponse>(body)
            .unwrap()
            .into_token_set(issued);
        assert_eq!(
            set.access_expires_at,
            issued + chrono::Duration::seconds(300)
        );
        assert_eq!(set.refresh_expires_at, issued + chrono::Duration::days(31));
        assert_eq!(set.requested_by_id.as_deref(), Some("u1"));
        assert!(set.access_expires_within(
            Duration::from_secs(30),
            issued + chrono::Duration::seconds(271)
        ));
        assert!(!set.access_expires_within(
            Duration::from_secs(30),
            issued + chrono::Duration::seconds(269)
        ));
    }

    #[test]
    fn debug_redacts_tokens() {
        let set = TokenSet {
            access_token: "ACCESS-SECRET".into(),
            refresh_token: "REFRESH-SECRET".into(),
            access_expires_at: Utc::now(),
            refresh_expires_at: Utc::now(),
            scope: None,
            requested_by_id: None,
        };
        let dbg = format!("{set:?}");
        assert!(
            !dbg.contains("ACCESS-SECRET") && !dbg.contains("REFRESH-SECRET"),
            "{dbg}"
        );
    }

    #[test]
    fn oauth_failures_are_classified() {
        let h = reqwest::header::HeaderMap::new();
        let e = oauth_failure(
            400,
            &h,
            r#"{"error":"invalid_grant","error_description":"used"}"#,
        );
        assert!(e.is_invalid_grant());
        let e = oauth_failure(503, &h, "down");
        assert_eq!(e.class(), crate::FailureClass::Transient);
        let e = oauth_failure(401, &h, "nope");
        assert!(matches!(e, SageError::OAuth { ref error, .. } if error == "http_401"));
    }
}
