//! Where Sage lives and who we are to it.

use std::fmt;
use std::time::Duration;

/// Endpoints and app credentials for one Sage app registration.
///
/// Everything environment-specific is here, so the same code talks to the real Sage API or to
/// a stand-in (tests, demos) purely by configuration.
#[derive(Clone)]
pub struct SageConfig {
    /// Base URL of the Accounting API, without a trailing slash
    /// (`https://api.accounting.sage.com/v3.1`).
    pub api_base_url: String,
    /// The OAuth authorisation page the merchant is sent to. May already carry a query string
    /// (Sage's has `?filter=apiv3.1`); further parameters are appended.
    pub authorize_url: String,
    /// OAuth token endpoint (code exchange and refresh).
    pub token_url: String,
    /// OAuth revoke endpoint.
    pub revoke_url: String,
    /// OAuth client id of the app registration.
    pub client_id: String,
    /// OAuth client secret of the app registration.
    pub client_secret: String,
    /// The callback registered with Sage; it must match exactly (Sage compares it
    /// case-sensitively) in both the authorisation and the code exchange.
    pub redirect_uri: String,
    /// Upper bound for one HTTP exchange with Sage. It also bounds how long a token refresh
    /// holds the merchant's row lock, so keep it in the tens of seconds.
    pub request_timeout: Duration,
}

impl SageConfig {
    /// Sage's production endpoints, which serve every country from one host in v3.1.
    pub fn sage_production(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        redirect_uri: impl Into<String>,
    ) -> Self {
        SageConfig {
            api_base_url: "https://api.accounting.sage.com/v3.1".into(),
            authorize_url: "https://www.sageone.com/oauth2/auth/central?filter=apiv3.1".into(),
            token_url: "https://oauth.accounting.sage.com/token".into(),
            revoke_url: "https://oauth.accounting.sage.com/revoke".into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uri: redirect_uri.into(),
            request_timeout: Duration::from_secs(30),
        }
    }

    /// The API base URL without trailing slashes, so paths can be appended with one `/`.
    pub(crate) fn api_base(&self) -> &str {
        self.api_base_url.trim_end_matches('/')
    }
}

impl fmt::Debug for SageConfig {
    // The client secret must never reach a log line, so Debug is written by hand.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SageConfig")
            .field("api_base_url", &self.api_base_url)
            .field("authorize_url", &self.authorize_url)
            .field("token_url", &self.token_url)
            .field("revoke_url", &self.revoke_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_uri", &self.redirect_uri)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_urls_are_sages() {
        let c = SageConfig::sage_production("id", "secret", "https://x/cb");
        assert_eq!(c.api_base_url, "https://api.accounting.sage.com/v3.1");
        assert_eq!(
            c.authorize_url,
            "https://www.sageone.com/oauth2/auth/central?filter=apiv3.1"
        );
        assert_eq!(c.token_url, "https://oauth.accounting.sage.com/token");
        assert_eq!(c.revoke_url, "https://oauth.accounting.sage.com/revoke");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("secret\""), "{dbg}");
        assert!(dbg.contains("<redacted>"));
    }
}
