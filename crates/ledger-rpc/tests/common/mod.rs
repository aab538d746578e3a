//! Set-up shared by the gate's tests: a Sage client of a sandbox business.

use std::sync::Arc;

use chrono::Utc;
use sage_client::{AccessToken, AccessTokenSource, OAuthClient, SageClient, SageConfig, SageError};
use sage_sandbox::{BusinessSpec, Sandbox};

/// A token obtained once from the sandbox's code exchange (the gateway's job in production).
struct FixedToken(AccessToken);

#[async_trait::async_trait]
impl AccessTokenSource for FixedToken {
    async fn access_token(&self, _merchant: &str) -> Result<AccessToken, SageError> {
        Ok(self.0.clone())
    }
    async fn invalidate(&self, _merchant: &str, _stale: &str) -> Result<(), SageError> {
        Ok(())
    }
}

pub async fn client(sandbox: &Sandbox) -> (SageClient, String) {
    let business = sandbox.create_business(BusinessSpec::default()).await;
    let mut config =
        SageConfig::sage_production("ledger-dev", "ledger-dev-secret", "http://localhost/cb");
    config.api_base_url = sandbox.api_base_url();
    config.token_url = sandbox.token_url();
    let code = sandbox.issue_authorization_code(&business.id).await;
    let tokens = OAuthClient::new(config.clone())
        .exchange_code(&code)
        .await
        .unwrap();
    let source = FixedToken(AccessToken {
        token: tokens.access_token,
        business_id: business.id.clone(),
        expires_at: Utc::now() + chrono::Duration::minutes(5),
    });
    (SageClient::new(config, Arc::new(source)), business.id)
}
