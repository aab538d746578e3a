//! NATS responders: the token service and the settings service.

use std::sync::Arc;

use ledger_rpc::{ErrorClass, RpcError, SettingsRequest, TokenGrant, TokenRequest};
use ledger_runtime::shutdown::Shutdown;
use sage_client::{AccessTokenSource, FailureClass, SageError};

use crate::AppState;

fn rpc_error(class: ErrorClass, code: &str, message: String) -> RpcError {
    RpcError {
        class,
        code: code.to_string(),
        message,
        field: None,
        detail: serde_json::Value::Null,
        retry_after_ms: None,
    }
}

fn classify(e: SageError) -> RpcError {
    match &e {
        SageError::NotConnected { .. } => {
            rpc_error(ErrorClass::Paused, "sage.not_connected", e.to_string())
        }
        SageError::ConnectionRevoked { .. } => {
            rpc_error(ErrorClass::Paused, "sage.revoked", e.to_string())
        }
        _ => match e.class() {
            FailureClass::Paused => rpc_error(ErrorClass::Paused, "sage.paused", e.to_string()),
            FailureClass::Permanent => {
                rpc_error(ErrorClass::Permanent, "sage.token", e.to_string())
            }
            FailureClass::Transient => RpcError {
                retry_after_ms: e.retry_after().map(|d| d.as_millis() as u64),
                ..rpc_error(ErrorClass::Transient, "sage.token", e.to_string())
            },
        },
    }
}

/// Starts the responders.
pub async fn serve(state: Arc<AppState>, shutdown: Shutdown) -> anyhow::Result<()> {
    let s = state.clone();
    ledger_rpc::serve(
        state.nats.clone(),
        ledger_rpc::TOKEN_SUBJECT,
        move |req: TokenRequest| {
            let s = s.clone();
            async move {
                if let Some(stale) = &req.stale_token {
                    s.tokens
                        .invalidate(&req.merchant, stale)
                        .await
                        .map_err(classify)?;
                }
                let token = s
                    .tokens
                    .access_token(&req.merchant)
                    .await
                    .map_err(classify)?;
                Ok(TokenGrant {
                    access_token: token.token,
                    business_id: token.business_id,
                    expires_at: token.expires_at,
                })
            }
        },
        shutdown.clone(),
    )
    .await?;
    let s = state.clone();
    ledger_rpc::serve(
        state.nats.clone(),
        ledger_rpc::SETTINGS_SUBJECT,
        move |req: SettingsRequest| {
            let s = s.clone();
            async move {
                match crate::merchants::settings_of(&s, &req.merchant).await {
                    Ok(Some(settings)) => Ok(settings),
                    Ok(None) => Err(rpc_error(
                        ErrorClass::Paused,
                        "merchant.unknown",
                        format!("merchant {} is not registered", req.merchant),
                    )),
                    Err(e) => Err(rpc_error(ErrorClass::Transient, "db", e.to_string())),
                }
            }
        },
        shutdown,
    )
    .await?;
    Ok(())
}
