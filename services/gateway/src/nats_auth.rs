//! NATS auth callout: the server asks this service whether a connecting client may in, and
//! with which permissions (decision record 0009).
//!
//! The Magento module connects with the key it received at pairing (user = key id, password =
//! secret). nats-server forwards every such CONNECT, signed by the server, to
//! `$SYS.REQ.USER.AUTH`; we check the key against `merchant_keys` and answer with a user JWT
//! signed by the callout issuer key that places the client in the Ledger account and lets it
//! publish its five event subjects `magento.<merchant>.<entity>.<action>` and receive replies
//! on `_INBOX.<merchant>.>`, nothing else.
//! The user JWT expires after the session TTL, so a revoked key loses even an open connection
//! within that time, and its reconnect is refused.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use nkeys::KeyPair;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha512_256};

use ledger_runtime::shutdown::Shutdown;

use crate::AppState;

/// Subject nats-server sends authorization requests to.
pub const CALLOUT_SUBJECT: &str = "$SYS.REQ.USER.AUTH";

/// What the gateway needs to answer the callout.
#[derive(Clone)]
pub struct CalloutSettings {
    /// Account key pair whose public key is the `issuer` in the server's `auth_callout` block.
    pub issuer: Arc<KeyPair>,
    /// Account the merchants' clients are placed in (the one holding the event stream).
    pub account: String,
    /// Lifetime of an issued user JWT; bounds how long a revoked key's open connection lives.
    pub session_ttl: Duration,
}

/// Why a callout request could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Not three base64url parts, or undecodable JSON.
    #[error("malformed authorization request: {0}")]
    Malformed(String),
    /// The signature does not verify against the issuing server's key.
    #[error("authorization request signature does not verify")]
    BadSignature,
}

/// The parts of nats-server's authorization request this service uses.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// Id of the asking server; the response's audience.
    pub server_id: String,
    /// Key the server generated for this connection; the subject of both JWTs.
    pub user_nkey: String,
    /// `user` of the client's CONNECT.
    pub user: Option<String>,
    /// `pass` of the client's CONNECT.
    pub password: Option<String>,
    /// Remote address of the client, for the log.
    pub client_host: Option<String>,
}

#[derive(Deserialize)]
struct RequestClaims {
    iss: String,
    nats: RequestBody,
}

#[derive(Deserialize)]
struct RequestBody {
    server_id: ServerId,
    user_nkey: String,
    #[serde(default)]
    client_info: ClientInfo,
    #[serde(default)]
    connect_opts: ConnectOpts,
}

#[derive(Deserialize)]
struct ServerId {
    id: String,
}

#[derive(Deserialize, Default)]
struct ClientInfo {
    host: Option<String>,
}

#[derive(Deserialize, Default)]
struct ConnectOpts {
    user: Option<String>,
    pass: Option<String>,
}

fn b64(bytes: &[u8]) -> String {
    data_encoding::BASE64URL_NOPAD.encode(bytes)
}

/// Decodes a server's authorization request and verifies it was signed by the server key it
/// names.
pub fn decode_request(token: &str) -> Result<AuthRequest, RequestError> {
    let token = token.trim();
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err(RequestError::Malformed("expected three parts".into()));
    };
    let decode = |part: &str| {
        data_encoding::BASE64URL_NOPAD
            .decode(part.trim_end_matches('=').as_bytes())
            .map_err(|e| RequestError::Malformed(e.to_string()))
    };
    let claims: RequestClaims = serde_json::from_slice(&decode(payload)?)
        .map_err(|e| RequestError::Malformed(e.to_string()))?;
    let server_key =
        KeyPair::from_public_key(&claims.iss).map_err(|_| RequestError::BadSignature)?;
    server_key
        .verify(
            format!("{header}.{payload}").as_bytes(),
            &decode(signature)?,
        )
        .map_err(|_| RequestError::BadSignature)?;
    Ok(AuthRequest {
        server_id: claims.nats.server_id.id,
        user_nkey: claims.nats.user_nkey,
        user: claims.nats.connect_opts.user,
        password: claims.nats.connect_opts.pass,
        client_host: claims.nats.client_info.host,
    })
}

/// Subjects a merchant's key may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantPermissions {
    /// Publish allow list.
    pub publish: Vec<String>,
    /// Subscribe allow list.
    pub subscribe: Vec<String>,
}

/// Inbox prefix a merchant's client must use for its PubAck replies.
pub fn inbox_prefix(merchant: &str) -> String {
    format!("_INBOX.{merchant}")
}

/// A merchant's client publishes its own events, on the five event subjects only, and reads
/// replies on its own inbox; it cannot touch another merchant's subjects, put anything else
/// into the event log, or reach the status stream or the JetStream API.
pub fn merchant_permissions(merchant: &str) -> MerchantPermissions {
    MerchantPermissions {
        publish: ledger_events::EventType::ALL
            .iter()
            .map(|t| ledger_events::subject(merchant, *t))
            .collect(),
        subscribe: vec![format!("{}.>", inbox_prefix(merchant))],
    }
}

/// Signs `claims` (adding `iss`, `iat` and `jti`) as a NATS v2 JWT.
fn sign(issuer: &KeyPair, mut claims: Value, now: i64) -> String {
    claims["iss"] = json!(issuer.public_key());
    claims["iat"] = json!(now);
    // nats-server does not check `jti`; it is an id derived from the claims, as NATS tools do.
    let digest = Sha512_256::digest(claims.to_string().as_bytes());
    claims["jti"] = json!(data_encoding::BASE32_NOPAD.encode(&digest));
    let header = b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let payload = b64(claims.to_string().as_bytes());
    let signing_input = format!("{header}.{payload}");
    let signature = issuer
        .sign(signing_input.as_bytes())
        .expect("an account key pair with a seed signs");
    format!("{signing_input}.{}", b64(&signature))
}

/// The user JWT granting `permissions` to the connection `request` describes, in `account`.
pub fn user_jwt(
    settings: &CalloutSettings,
    request: &AuthRequest,
    name: &str,
    permissions: &MerchantPermissions,
    now: i64,
) -> String {
    let claims = json!({
        "sub": request.user_nkey,
        // Outside operator mode the audience names the account the client is placed in.
        "aud": settings.account,
        "name": name,
        "exp": now + settings.session_ttl.as_secs().max(1) as i64,
        "nats": {
            "pub": {"allow": permissions.publish},
            "sub": {"allow": permissions.subscribe},
            "subs": -1, "data": -1, "payload": -1,
            "type": "user", "version": 2,
        },
    });
    sign(&settings.issuer, claims, now)
}

/// The signed answer to `request`: the user JWT, or a refusal with its reason.
pub fn response_jwt(
    settings: &CalloutSettings,
    request: &AuthRequest,
    outcome: Result<String, String>,
    now: i64,
) -> String {
    let mut nats = json!({"type": "authorization_response", "version": 2});
    match outcome {
        Ok(jwt) => nats["jwt"] = json!(jwt),
        Err(reason) => nats["error"] = json!(reason),
    }
    let claims = json!({
        "sub": request.user_nkey,
        "aud": request.server_id,
        "exp": now + 60,
        "nats": nats,
    });
    sign(&settings.issuer, claims, now)
}

/// Answers authorization requests until `shutdown` fires. Replicas share the work through a
/// queue group.
pub async fn serve(
    app: Arc<AppState>,
    settings: CalloutSettings,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let mut requests = app
        .nats
        .queue_subscribe(CALLOUT_SUBJECT, "ledger-auth-callout".into())
        .await?;
    tracing::info!(account = %settings.account, "answering NATS auth callout");
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                _ = shutdown.wait() => break,
                next = requests.next() => match next { Some(m) => m, None => break },
            };
            let Some(reply) = message.reply.clone() else {
                continue;
            };
            let app = app.clone();
            let settings = settings.clone();
            tokio::spawn(async move {
                let token = String::from_utf8_lossy(&message.payload).to_string();
                let request = match decode_request(&token) {
                    Ok(r) => r,
                    Err(e) => {
                        // Without a readable request there is no user key to address a refusal
                        // to; the server times the connection out.
                        tracing::warn!(error = %e, "unreadable auth callout request");
                        return;
                    }
                };
                let now = chrono::Utc::now().timestamp();
                let outcome = decide(&app, &request).await;
                let answer = match outcome {
                    Ok((merchant, key_id)) => {
                        ledger_runtime::metrics::metrics()
                            .store_logins
                            .with_label_values(&["admitted"])
                            .inc();
                        tracing::info!(%merchant, %key_id, host = ?request.client_host, "NATS client admitted");
                        let jwt = user_jwt(
                            &settings,
                            &request,
                            &key_id,
                            &merchant_permissions(&merchant),
                            now,
                        );
                        response_jwt(&settings, &request, Ok(jwt), now)
                    }
                    Err(reason) => {
                        ledger_runtime::metrics::metrics()
                            .store_logins
                            .with_label_values(&["refused"])
                            .inc();
                        tracing::warn!(user = ?request.user, host = ?request.client_host, %reason, "NATS client refused");
                        response_jwt(&settings, &request, Err(reason), now)
                    }
                };
                if let Err(e) = app.nats.publish(reply, answer.into()).await {
                    tracing::warn!(error = %e, "could not answer auth callout");
                }
            });
        }
    });
    Ok(())
}

/// The merchant and key a connection authenticates as, or why it may not connect.
async fn decide(app: &AppState, request: &AuthRequest) -> Result<(String, String), String> {
    let (Some(user), Some(password)) = (&request.user, &request.password) else {
        return Err("a Ledger key id and secret are required".into());
    };
    match crate::pairing::verify_key(app, user, password).await {
        Ok(Some(merchant)) => Ok((merchant, user.clone())),
        Ok(None) => Err("unknown or revoked Ledger key".into()),
        Err(e) => {
            tracing::error!(error = %e, "key lookup failed during auth callout");
            Err("key lookup unavailable".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> CalloutSettings {
        CalloutSettings {
            issuer: Arc::new(KeyPair::new_account()),
            account: "LEDGER".into(),
            session_ttl: Duration::from_secs(300),
        }
    }

    fn claims_of(jwt: &str) -> Value {
        let payload = jwt.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &data_encoding::BASE64URL_NOPAD
                .decode(payload.as_bytes())
                .unwrap(),
        )
        .unwrap()
    }

    fn verifies(jwt: &str, key: &str) -> bool {
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        let sig = data_encoding::BASE64URL_NOPAD
            .decode(sig.as_bytes())
            .unwrap();
        KeyPair::from_public_key(key)
            .unwrap()
            .verify(input.as_bytes(), &sig)
            .is_ok()
    }

    fn server_request(server: &KeyPair, user_nkey: &str) -> String {
        let claims = json!({
            "iss": server.public_key(), "sub": "ISSUER", "aud": "nats-authorization-request",
            "nats": {
                "server_id": {"id": server.public_key(), "name": "n1", "host": "127.0.0.1"},
                "user_nkey": user_nkey,
                "client_info": {"host": "10.0.0.7", "id": 5},
                "connect_opts": {"user": "mk_1", "pass": "s3cret", "protocol": 1},
                "type": "authorization_request", "version": 2,
            },
        });
        sign(server, claims, 1_700_000_000)
    }

    #[test]
    fn a_server_signed_request_is_read() {
        let server = KeyPair::new_server();
        let user = KeyPair::new_user().public_key();
        let request = decode_request(&server_request(&server, &user)).unwrap();
        assert_eq!(request.user_nkey, user);
        assert_eq!(request.server_id, server.public_key());
        assert_eq!(request.user.as_deref(), Some("mk_1"));
        assert_eq!(request.password.as_deref(), Some("s3cret"));
        assert_eq!(request.client_host.as_deref(), Some("10.0.0.7"));
    }

    #[test]
    fn a_tampered_request_is_refused() {
        let server = KeyPair::new_server();
        let token = server_request(&server, &KeyPair::new_user().public_key());
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let mut claims = claims_of(&token);
        claims["nats"]["connect_opts"]["user"] = json!("mk_other");
        parts[1] = b64(claims.to_string().as_bytes());
        assert!(matches!(
            decode_request(&parts.join(".")),
            Err(RequestError::BadSignature)
        ));
        assert!(matches!(
            decode_request("not-a-jwt"),
            Err(RequestError::Malformed(_))
        ));
    }

    #[test]
    fn the_user_jwt_scopes_the_merchant_and_expires() {
        let settings = settings();
        let request = AuthRequest {
            server_id: KeyPair::new_server().public_key(),
            user_nkey: KeyPair::new_user().public_key(),
            user: None,
            password: None,
            client_host: None,
        };
        let jwt = user_jwt(
            &settings,
            &request,
            "mk_1",
            &merchant_permissions("hartley-goods"),
            1000,
        );
        assert!(verifies(&jwt, &settings.issuer.public_key()));
        let claims = claims_of(&jwt);
        assert_eq!(claims["sub"], json!(request.user_nkey));
        assert_eq!(claims["aud"], json!("LEDGER"));
        assert_eq!(claims["exp"], json!(1300));
        assert_eq!(
            claims["nats"]["pub"]["allow"],
            json!([
                "magento.hartley-goods.invoice.created",
                "magento.hartley-goods.invoice.paid",
                "magento.hartley-goods.creditmemo.created",
                "magento.hartley-goods.customer.saved",
                "magento.hartley-goods.product.saved",
            ])
        );
        assert_eq!(
            claims["nats"]["sub"]["allow"],
            json!(["_INBOX.hartley-goods.>"])
        );
        assert_eq!(claims["nats"]["type"], json!("user"));

        let response = response_jwt(&settings, &request, Ok(jwt.clone()), 1000);
        assert!(verifies(&response, &settings.issuer.public_key()));
        let claims = claims_of(&response);
        assert_eq!(claims["aud"], json!(request.server_id));
        assert_eq!(claims["nats"]["jwt"], json!(jwt));
        assert_eq!(claims["nats"]["type"], json!("authorization_response"));

        let refusal = response_jwt(&settings, &request, Err("revoked".into()), 1000);
        let claims = claims_of(&refusal);
        assert_eq!(claims["nats"]["error"], json!("revoked"));
        assert!(claims["nats"].get("jwt").is_none());
    }
}
