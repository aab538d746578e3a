//! NATS auth callout: the server asks this service whether a connecting client may in, and
//! with which permissions (decision records 0009 and 0012).
//!
//! The Magento module connects with the key it received at pairing (user = key id, password =
//! secret). nats-server forwards every such CONNECT, signed by the server and sealed to this
//! service's curve key (`xkey`), to `$SYS.REQ.USER.AUTH`; we check who sent it (a pinned server
//! key), that it is meant for us (`aud`, `sub`) and fresh (`exp`, `iat`), check the key against
//! `merchant_keys` and answer, sealed to the asking server's curve key, with a user JWT signed
//! by the callout issuer key. It places the client in the stores' account and lets it publish
//! its event subjects `magento.<merchant>.<entity>.<action>` and receive replies on its
//! own unguessable inbox `_INBOX.<merchant>.<tag>.>`, nothing else, over a standard
//! connection. Payload and subscription limits are the stores' account's (nats-server does not
//! apply the limits of a callout user's JWT; the JWT carries the same values).
//! The user JWT expires after the session TTL, so a revoked key loses even an open connection
//! within that time, and its reconnect is refused.
//!
//! Unauthenticated clients can make the server ask as often as they like, so the work per
//! request is bounded: at most [`MAX_IN_FLIGHT`] requests are answered at once (more are
//! refused at once, "busy"), key lookups use their own pool of [`DB_CONNECTIONS`] connections,
//! malformed credentials never reach the database, and nothing is written for a refused login
//! (a key's `last_used_at` is updated on success, at most every [`LAST_USED_EVERY_SECS`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use nkeys::{KeyPair, XKey};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha512_256};
use tokio::sync::Semaphore;

use ledger_runtime::shutdown::Shutdown;

use crate::store_access::{
    inbox_prefix, merchant_permissions, MerchantPermissions, STORE_PUBLISH_DENY,
};
use crate::AppState;

/// Subject nats-server sends authorization requests to.
pub const CALLOUT_SUBJECT: &str = "$SYS.REQ.USER.AUTH";
/// Audience nats-server gives every authorization request.
pub const REQUEST_AUDIENCE: &str = "nats-authorization-request";
/// Header in which nats-server names its curve key when it seals a request.
pub const SERVER_XKEY_HEADER: &str = "Nats-Server-Xkey";
/// Requests answered at once; more are refused at once as busy, not queued.
pub const MAX_IN_FLIGHT: usize = 32;
/// Connections of the callout's own key-lookup pool (apart from the gateway's HTTP pool).
pub const DB_CONNECTIONS: u32 = 4;
/// Longest wait for a key lookup before the login is refused as unavailable.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// A key's `last_used_at` is written at most this often (and only on a successful login).
pub const LAST_USED_EVERY_SECS: i32 = 300;
/// Clock difference tolerated between nats-server and the gateway.
pub const CLOCK_SKEW_SECS: i64 = 5;
/// Oldest `iat` accepted: a request is answered within nats-server's auth timeout or never.
pub const MAX_REQUEST_AGE_SECS: i64 = 60;
/// Most bytes accepted as a request (a request is a few KB; with TLS client chains more).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Limits written into every store's user JWT. nats-server (2.10 to 2.15) does not apply a
/// callout user's JWT limits; `deploy/nats/nats-server.conf` enforces the same payload and
/// subscription limits as the `STORES` account's `limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Largest message a store may publish, in bytes (an event is a few KB; a large
    /// invoice a few hundred).
    pub max_payload: i64,
    /// Subscriptions a store connection may hold (its reply inbox needs one).
    pub max_subs: i64,
    /// Bytes a store connection may send in total (the server enforces what it supports).
    pub max_data: i64,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_payload: 512 * 1024,
            max_subs: 16,
            max_data: 256 * 1024 * 1024,
        }
    }
}

/// Which nats-server keys may ask this service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerKeys {
    /// Any key (development only: logged as a warning at start).
    Any,
    /// Only the server this gateway is connected to (a single server; it draws a new key at
    /// every start, and the gateway follows it across reconnects).
    Connected,
    /// Only these public keys (`N...`).
    Pinned(HashSet<String>),
}

impl ServerKeys {
    /// Reads `LEDGER_NATS_SERVER_KEYS`: empty = [`ServerKeys::Any`], `connected`, or a
    /// comma-separated list of server public keys.
    pub fn parse(values: &[String]) -> Result<ServerKeys, String> {
        let values: Vec<&str> = values
            .iter()
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .collect();
        match values[..] {
            [] => Ok(ServerKeys::Any),
            ["connected"] => Ok(ServerKeys::Connected),
            _ => {
                let mut keys = HashSet::new();
                for v in values {
                    match KeyPair::from_public_key(v) {
                        Ok(k) if matches!(k.key_pair_type(), nkeys::KeyPairType::Server) => {
                            keys.insert(v.to_string());
                        }
                        _ => {
                            return Err(format!(
                                "LEDGER_NATS_SERVER_KEYS: {v:?} is not a server public key (N...) nor `connected`"
                            ))
                        }
                    }
                }
                Ok(ServerKeys::Pinned(keys))
            }
        }
    }
}

/// What the gateway needs to answer the callout.
#[derive(Clone)]
pub struct CalloutSettings {
    /// Account key pair whose public key is the `issuer` in the server's `auth_callout` block.
    pub issuer: Arc<KeyPair>,
    /// Account the merchants' clients are placed in.
    pub account: String,
    /// Lifetime of an issued user JWT; bounds how long a revoked key's open connection lives.
    pub session_ttl: Duration,
    /// Curve key whose public key is the `xkey` of the server's `auth_callout` block: requests
    /// are sealed to it and answers sealed with it. `None`: requests travel in clear.
    pub xkey: Option<Arc<XKey>>,
    /// Server keys whose requests are answered.
    pub server_keys: ServerKeys,
    /// Limits written into every store's user JWT.
    pub limits: StoreLimits,
}

impl CalloutSettings {
    /// The callout settings of a gateway configuration; `None` when it has no issuer seed (a
    /// server without store access). Every refusal names the variable at fault.
    pub fn from_config(config: &crate::Config) -> anyhow::Result<Option<CalloutSettings>> {
        let Some(seed) = config.nats_callout_issuer_seed.as_deref() else {
            return Ok(None);
        };
        let issuer = KeyPair::from_seed(seed.trim()).map_err(|e| {
            anyhow::anyhow!("LEDGER_NATS_CALLOUT_ISSUER_SEED: not an nkey seed: {e}")
        })?;
        if !matches!(issuer.key_pair_type(), nkeys::KeyPairType::Account) {
            anyhow::bail!("LEDGER_NATS_CALLOUT_ISSUER_SEED: must be an account seed (SA...)");
        }
        let xkey = match config.nats_callout_xkey_seed.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(seed) => Some(Arc::new(XKey::from_seed(seed).map_err(|e| {
                anyhow::anyhow!("LEDGER_NATS_CALLOUT_XKEY_SEED: not a curve seed (SX...): {e}")
            })?)),
        };
        Ok(Some(CalloutSettings {
            issuer: Arc::new(issuer),
            account: config.nats_store_account.clone(),
            session_ttl: Duration::from_secs(config.nats_session_ttl_secs.max(1)),
            xkey,
            server_keys: ServerKeys::parse(&config.nats_server_keys).map_err(anyhow::Error::msg)?,
            limits: StoreLimits::default(),
        }))
    }
}

/// Why a callout request was not answered, naming the part of the request at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A part of the request is missing or unreadable.
    #[error("authorization request {field}: {reason}")]
    Malformed {
        /// Part of the request (`token`, `header`, `payload`, `signature`, a claim).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The signature does not verify against the issuing server's key.
    #[error("authorization request signature: does not verify against the key in `iss`")]
    BadSignature,
    /// Signed by a server key that is not pinned.
    #[error("authorization request iss: server key {0} is not one this gateway answers")]
    UnknownServer(String),
    /// A claim has a value this service does not accept.
    #[error("authorization request {field}: {reason}")]
    Refused {
        /// Claim at fault (`aud`, `sub`, `exp`, `iat`, ...).
        field: &'static str,
        /// Why.
        reason: String,
    },
}

impl RequestError {
    /// The part of the request the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            RequestError::Malformed { field, .. } | RequestError::Refused { field, .. } => field,
            RequestError::BadSignature => "signature",
            RequestError::UnknownServer(_) => "iss",
        }
    }
}

fn malformed(field: &'static str, reason: impl Into<String>) -> RequestError {
    RequestError::Malformed {
        field,
        reason: reason.into(),
    }
}

fn refused(field: &'static str, reason: impl Into<String>) -> RequestError {
    RequestError::Refused {
        field,
        reason: reason.into(),
    }
}

/// The parts of nats-server's authorization request this service uses.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// Public key of the server that signed the request (`iss`).
    pub issuer: String,
    /// Audience of the request (`aud`).
    pub audience: Option<String>,
    /// Subject of the request (`sub`): the callout issuer's public key.
    pub subject: Option<String>,
    /// Issued at (`iat`), Unix seconds.
    pub issued_at: Option<i64>,
    /// Expiry (`exp`), Unix seconds.
    pub expires: Option<i64>,
    /// Id of the asking server; the response's audience.
    pub server_id: String,
    /// Curve key of the asking server, when it sealed the request.
    pub server_xkey: Option<String>,
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
    #[serde(default)]
    aud: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    exp: Option<i64>,
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
    #[serde(default)]
    xkey: Option<String>,
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
/// names (`iss`, which must be a server key and the `server_id`). Whether that server and the
/// claims are acceptable is [`check_request`]'s business.
pub fn decode_request(token: &str) -> Result<AuthRequest, RequestError> {
    if token.len() > MAX_REQUEST_BYTES {
        return Err(malformed(
            "token",
            format!("longer than {MAX_REQUEST_BYTES} bytes"),
        ));
    }
    let token = token.trim();
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err(malformed(
            "token",
            "expected three dot-separated parts (header.payload.signature)",
        ));
    };
    let decode = |field: &'static str, part: &str| {
        data_encoding::BASE64URL_NOPAD
            .decode(part.trim_end_matches('=').as_bytes())
            .map_err(|e| malformed(field, format!("not base64url: {e}")))
    };
    let header_json: Value = serde_json::from_slice(&decode("header", header)?)
        .map_err(|e| malformed("header", format!("not JSON: {e}")))?;
    if header_json.get("alg").and_then(Value::as_str) != Some("ed25519-nkey") {
        return Err(malformed("header", "alg must be ed25519-nkey"));
    }
    let claims: RequestClaims = serde_json::from_slice(&decode("payload", payload)?)
        .map_err(|e| malformed("payload", format!("not an authorization request: {e}")))?;
    let server_key =
        KeyPair::from_public_key(&claims.iss).map_err(|_| malformed("iss", "not a public nkey"))?;
    if !matches!(server_key.key_pair_type(), nkeys::KeyPairType::Server) {
        return Err(malformed("iss", "not a server key (N...)"));
    }
    let signature = decode("signature", signature)?;
    server_key
        .verify(format!("{header}.{payload}").as_bytes(), &signature)
        .map_err(|_| RequestError::BadSignature)?;
    if claims.nats.server_id.id != claims.iss {
        return Err(malformed(
            "nats.server_id.id",
            "differs from the signing key in iss",
        ));
    }
    if KeyPair::from_public_key(&claims.nats.user_nkey)
        .map(|k| !matches!(k.key_pair_type(), nkeys::KeyPairType::User))
        .unwrap_or(true)
    {
        return Err(malformed("nats.user_nkey", "not a user public key (U...)"));
    }
    Ok(AuthRequest {
        issuer: claims.iss,
        audience: claims.aud,
        subject: claims.sub,
        issued_at: claims.iat,
        expires: claims.exp,
        server_id: claims.nats.server_id.id,
        server_xkey: claims.nats.server_id.xkey,
        user_nkey: claims.nats.user_nkey,
        user: claims.nats.connect_opts.user,
        password: claims.nats.connect_opts.pass,
        client_host: claims.nats.client_info.host,
    })
}

/// Checks a decoded request against this gateway: from an accepted server key
/// (`connected_server` is the key of the server the gateway is connected to, for
/// [`ServerKeys::Connected`]), addressed to the callout (`aud`) of our issuer (`sub`), not
/// expired (`exp`) and recent (`iat`) at `now`.
pub fn check_request(
    request: &AuthRequest,
    settings: &CalloutSettings,
    connected_server: &str,
    now: i64,
) -> Result<(), RequestError> {
    match &settings.server_keys {
        ServerKeys::Any => {}
        ServerKeys::Connected if request.issuer == connected_server => {}
        ServerKeys::Pinned(keys) if keys.contains(&request.issuer) => {}
        _ => return Err(RequestError::UnknownServer(request.issuer.clone())),
    }
    if request.audience.as_deref() != Some(REQUEST_AUDIENCE) {
        return Err(refused(
            "aud",
            format!("expected {REQUEST_AUDIENCE:?}, got {:?}", request.audience),
        ));
    }
    let issuer = settings.issuer.public_key();
    if request.subject.as_deref() != Some(issuer.as_str()) {
        return Err(refused(
            "sub",
            format!(
                "expected this gateway's callout issuer {issuer}, got {:?}",
                request.subject
            ),
        ));
    }
    match request.expires {
        None => return Err(refused("exp", "missing: requests must expire")),
        Some(exp) if exp + CLOCK_SKEW_SECS < now => {
            return Err(refused("exp", format!("expired at {exp}, now {now}")))
        }
        Some(_) => {}
    }
    match request.issued_at {
        None => return Err(refused("iat", "missing")),
        Some(iat) if iat > now + CLOCK_SKEW_SECS => {
            return Err(refused(
                "iat",
                format!("{iat} is in the future (now {now})"),
            ))
        }
        Some(iat) if iat < now - MAX_REQUEST_AGE_SECS => {
            return Err(refused(
                "iat",
                format!(
                    "issued {}s ago, more than {MAX_REQUEST_AGE_SECS}s",
                    now - iat
                ),
            ))
        }
        Some(_) => {}
    }
    Ok(())
}

/// Opens a request as it arrived: sealed to `xkey` by the server named in the
/// [`SERVER_XKEY_HEADER`] header, or in clear when no `xkey` is configured. Returns the token
/// and the server's curve key to seal the answer to.
pub fn open_request(
    payload: &[u8],
    server_xkey: Option<&str>,
    xkey: Option<&XKey>,
) -> Result<(String, Option<XKey>), RequestError> {
    match (xkey, server_xkey) {
        (Some(own), Some(sender)) => {
            let sender = XKey::from_public_key(sender.trim()).map_err(|_| {
                malformed(SERVER_XKEY_HEADER, "not a curve public key (X...)")
            })?;
            let opened = own
                .open(payload, &sender)
                .map_err(|_| malformed("token", "could not be opened with the callout xkey"))?;
            let token = String::from_utf8(opened)
                .map_err(|_| malformed("token", "opened request is not UTF-8"))?;
            Ok((token, Some(sender)))
        }
        (Some(_), None) => Err(malformed(
            SERVER_XKEY_HEADER,
            "missing: the server did not seal the request (set xkey in its auth_callout block)",
        )),
        (None, Some(_)) => Err(malformed(
            SERVER_XKEY_HEADER,
            "the server sealed the request but this gateway has no xkey seed (LEDGER_NATS_CALLOUT_XKEY_SEED)",
        )),
        (None, None) => String::from_utf8(payload.to_vec())
            .map(|t| (t, None))
            .map_err(|_| malformed("token", "not UTF-8")),
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
    let limits = settings.limits;
    let claims = json!({
        "sub": request.user_nkey,
        // Outside operator mode the audience names the account the client is placed in.
        "aud": settings.account,
        "name": name,
        "exp": now + settings.session_ttl.as_secs().max(1) as i64,
        "nats": {
            "pub": {"allow": permissions.publish, "deny": STORE_PUBLISH_DENY},
            "sub": {"allow": permissions.subscribe},
            "subs": limits.max_subs,
            "data": limits.max_data,
            "payload": limits.max_payload,
            "bearer_token": false,
            "allowed_connection_types": ["STANDARD"],
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

struct Callout {
    nats: async_nats::Client,
    keys: sqlx::PgPool,
    settings: CalloutSettings,
}

/// Answers authorization requests until `shutdown` fires. Replicas share the work through a
/// queue group.
pub async fn serve(
    app: Arc<AppState>,
    settings: CalloutSettings,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    if settings.server_keys == ServerKeys::Any {
        tracing::warn!(
            "LEDGER_NATS_SERVER_KEYS is unset: the callout answers requests signed by any NATS \
             server key; only the NATS permissions keep others from publishing on {CALLOUT_SUBJECT}"
        );
    }
    if settings.xkey.is_none() {
        tracing::warn!(
            "LEDGER_NATS_CALLOUT_XKEY_SEED is unset: store secrets reach the callout in clear"
        );
    }
    let keys =
        ledger_runtime::db::connect_schema(&app.config.database_url, "gateway", DB_CONNECTIONS)
            .await?;
    // Endpoint `auth_callout` of the gateway's NATS service (ledger_runtime::micro), in its
    // own queue group: `nats micro info gateway` shows its requests and processing time.
    let mut requests = ledger_runtime::micro::endpoint(
        &app.nats,
        "gateway",
        "auth_callout",
        CALLOUT_SUBJECT,
        "ledger-auth-callout",
    )
    .await?;
    tracing::info!(account = %settings.account, "answering NATS auth callout");
    let callout = Arc::new(Callout {
        nats: app.nats.clone(),
        keys,
        settings,
    });
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    tokio::spawn(async move {
        loop {
            let request = tokio::select! {
                _ = shutdown.wait() => break,
                next = requests.next() => match next { Some(r) => r, None => break },
            };
            if request.message.reply.is_none() {
                continue;
            }
            match permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    let callout = callout.clone();
                    tokio::spawn(async move {
                        callout.answer(&request, false).await;
                        drop(permit);
                    });
                }
                // Full: refuse here without a lookup, so that a flood costs a signature each
                // and no task or connection.
                Err(_) => callout.answer(&request, true).await,
            }
        }
    });
    Ok(())
}

impl Callout {
    async fn answer(&self, asked: &async_nats::service::Request, busy: bool) {
        let (message, settings) = (&asked.message, &self.settings);
        let server_xkey = message
            .headers
            .as_ref()
            .and_then(|h| h.get(SERVER_XKEY_HEADER))
            .map(|v| v.as_str().to_string());
        let now = chrono::Utc::now().timestamp();
        let connected = self.nats.server_info().server_id;
        let read = open_request(
            &message.payload,
            server_xkey.as_deref(),
            settings.xkey.as_deref(),
        )
        .and_then(|(token, sender)| Ok((decode_request(&token)?, sender)))
        .and_then(|(request, sender)| {
            check_request(&request, settings, &connected, now)?;
            Ok((request, sender))
        });
        let (request, sender) = match read {
            Ok(r) => r,
            Err(e) => {
                // An unreadable or unacceptable request gets no answer: there is no trusted
                // user key to address one to. A real server times the connection out.
                count("unreadable");
                tracing::warn!(field = e.field(), error = %e, "auth callout request refused");
                return;
            }
        };
        let outcome = if busy {
            Err("Ledger is busy admitting other stores; try again shortly".to_string())
        } else {
            self.decide(&request).await
        };
        let answer = match outcome {
            Ok((merchant, key_id, inbox)) => {
                count("admitted");
                tracing::info!(%merchant, %key_id, host = ?request.client_host, "NATS client admitted");
                let jwt = user_jwt(
                    settings,
                    &request,
                    &key_id,
                    &merchant_permissions(&merchant, &inbox),
                    now,
                );
                response_jwt(settings, &request, Ok(jwt), now)
            }
            Err(reason) => {
                count(if busy { "busy" } else { "refused" });
                tracing::warn!(user = ?request.user, host = ?request.client_host, %reason, "NATS client refused");
                response_jwt(settings, &request, Err(reason), now)
            }
        };
        let body = match (&settings.xkey, &sender) {
            (Some(own), Some(server)) => match own.seal(answer.as_bytes(), server) {
                Ok(sealed) => sealed,
                Err(e) => {
                    tracing::error!(error = %e, "could not seal the auth callout answer");
                    return;
                }
            },
            _ => answer.into_bytes(),
        };
        if let Err(e) = asked.respond(Ok(body.into())).await {
            tracing::warn!(error = %e, "could not answer auth callout");
        }
    }

    /// The merchant, key and inbox prefix a connection authenticates as, or why it may not
    /// connect.
    async fn decide(&self, request: &AuthRequest) -> Result<(String, String, String), String> {
        let (Some(user), Some(password)) = (&request.user, &request.password) else {
            return Err("a Ledger key id and secret are required".into());
        };
        // Keys are `mk_` + 16 hex, secrets 64 hex: anything else is refused without a lookup.
        let well_formed = user.len() == 19
            && user.starts_with("mk_")
            && user[3..].bytes().all(|b| b.is_ascii_hexdigit())
            && password.len() == 64
            && password.bytes().all(|b| b.is_ascii_hexdigit());
        if !well_formed {
            return Err("unknown or revoked Ledger key".into());
        }
        let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, self.lookup(user, password)).await;
        match lookup {
            Ok(Ok(Some(merchant))) => {
                let inbox = inbox_prefix(&merchant, password);
                Ok((merchant, user.clone(), inbox))
            }
            Ok(Ok(None)) => Err("unknown or revoked Ledger key".into()),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "key lookup failed during auth callout");
                Err("key lookup unavailable".into())
            }
            Err(_) => Err("key lookup unavailable (timed out)".into()),
        }
    }

    /// The merchant of an unrevoked key whose secret matches; records the use at most every
    /// [`LAST_USED_EVERY_SECS`] seconds, and only then.
    async fn lookup(&self, key_id: &str, secret: &str) -> Result<Option<String>, sqlx::Error> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT merchant_id, secret_hash FROM merchant_keys
             WHERE key_id = $1 AND revoked_at IS NULL",
        )
        .bind(key_id)
        .fetch_optional(&self.keys)
        .await?;
        let Some((merchant, stored)) = row else {
            return Ok(None);
        };
        let presented = crate::merchants::hash_key(secret);
        if !sage_client::same_secret(&presented, &stored) {
            return Ok(None);
        }
        sqlx::query(
            "UPDATE merchant_keys SET last_used_at = now()
             WHERE key_id = $1
               AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))",
        )
        .bind(key_id)
        .bind(LAST_USED_EVERY_SECS as f64)
        .execute(&self.keys)
        .await?;
        Ok(Some(merchant))
    }
}

fn count(outcome: &str) {
    ledger_runtime::metrics::metrics()
        .store_logins
        .with_label_values(&[outcome])
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_700_000_000;

    fn settings() -> CalloutSettings {
        CalloutSettings {
            issuer: Arc::new(KeyPair::new_account()),
            account: "STORES".into(),
            session_ttl: Duration::from_secs(300),
            xkey: Some(Arc::new(XKey::new())),
            server_keys: ServerKeys::Any,
            limits: StoreLimits::default(),
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

    /// Claims of a request as nats-server makes them, for the callout issuer `issuer`.
    fn request_claims(server: &KeyPair, issuer: &str, user_nkey: &str) -> Value {
        json!({
            "iss": server.public_key(), "sub": issuer, "aud": REQUEST_AUDIENCE,
            "exp": NOW + 2,
            "nats": {
                "server_id": {"id": server.public_key(), "name": "n1", "host": "127.0.0.1"},
                "user_nkey": user_nkey,
                "client_info": {"host": "10.0.0.7", "id": 5},
                "connect_opts": {"user": "mk_1", "pass": "s3cret", "protocol": 1},
                "type": "authorization_request", "version": 2,
            },
        })
    }

    fn server_request(server: &KeyPair, issuer: &str, user_nkey: &str) -> String {
        sign(server, request_claims(server, issuer, user_nkey), NOW)
    }

    #[test]
    fn a_server_signed_request_is_read() {
        let server = KeyPair::new_server();
        let user = KeyPair::new_user().public_key();
        let request = decode_request(&server_request(&server, "AISSUER", &user)).unwrap();
        assert_eq!(request.user_nkey, user);
        assert_eq!(request.server_id, server.public_key());
        assert_eq!(request.user.as_deref(), Some("mk_1"));
        assert_eq!(request.password.as_deref(), Some("s3cret"));
        assert_eq!(request.client_host.as_deref(), Some("10.0.0.7"));
        assert_eq!(request.audience.as_deref(), Some(REQUEST_AUDIENCE));
        assert_eq!(request.issued_at, Some(NOW));
        assert_eq!(request.expires, Some(NOW + 2));
    }

    #[test]
    fn a_tampered_request_is_refused() {
        let server = KeyPair::new_server();
        let token = server_request(&server, "AISSUER", &KeyPair::new_user().public_key());
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let mut claims = claims_of(&token);
        claims["nats"]["connect_opts"]["user"] = json!("mk_other");
        parts[1] = b64(claims.to_string().as_bytes());
        assert_eq!(
            decode_request(&parts.join(".")).unwrap_err(),
            RequestError::BadSignature
        );
        assert_eq!(decode_request("not-a-jwt").unwrap_err().field(), "token");
    }

    #[test]
    fn forged_callout_request_from_an_unpinned_server_is_refused() {
        let pinned = KeyPair::new_server();
        let forger = KeyPair::new_server();
        let mut settings = settings();
        settings.server_keys = ServerKeys::parse(&[format!(" {} ", pinned.public_key())]).unwrap();
        let issuer = settings.issuer.public_key();
        let user = KeyPair::new_user().public_key();
        let good = decode_request(&server_request(&pinned, &issuer, &user)).unwrap();
        assert_eq!(check_request(&good, &settings, "", NOW), Ok(()));
        let forged = decode_request(&server_request(&forger, &issuer, &user)).unwrap();
        let refusal = check_request(&forged, &settings, "", NOW).unwrap_err();
        assert_eq!(refusal, RequestError::UnknownServer(forger.public_key()));
        assert!(refusal.to_string().contains("iss"), "{refusal}");
        // `connected` follows the server the gateway is connected to.
        settings.server_keys = ServerKeys::parse(&["connected".into()]).unwrap();
        assert_eq!(
            check_request(&good, &settings, &pinned.public_key(), NOW),
            Ok(())
        );
        assert_eq!(
            check_request(&forged, &settings, &pinned.public_key(), NOW).unwrap_err(),
            RequestError::UnknownServer(forger.public_key())
        );
        // A pinned key must be a server key.
        let err = ServerKeys::parse(&[KeyPair::new_account().public_key()]).unwrap_err();
        assert!(err.starts_with("LEDGER_NATS_SERVER_KEYS"), "{err}");
        // A request signed by another kind of key is not a server's.
        let account = KeyPair::new_account();
        let mut claims = request_claims(&account, &issuer, &user);
        claims["nats"]["server_id"]["id"] = json!(account.public_key());
        assert_eq!(
            decode_request(&sign(&account, claims, NOW))
                .unwrap_err()
                .field(),
            "iss"
        );
    }

    fn refusal_of(settings: &CalloutSettings, edit: impl Fn(&mut Value)) -> RequestError {
        let server = KeyPair::new_server();
        let mut claims = request_claims(
            &server,
            &settings.issuer.public_key(),
            &KeyPair::new_user().public_key(),
        );
        edit(&mut claims);
        let iat = claims.get("iat").and_then(Value::as_i64).unwrap_or(NOW);
        let mut token = sign(&server, claims.clone(), iat);
        if claims.get("iat") == Some(&Value::Null) {
            // Re-sign without `iat` by hand.
            let mut without = claims.clone();
            without.as_object_mut().unwrap().remove("iat");
            without["iss"] = json!(server.public_key());
            let header = b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
            let input = format!("{header}.{}", b64(without.to_string().as_bytes()));
            token = format!("{input}.{}", b64(&server.sign(input.as_bytes()).unwrap()));
        }
        let request = decode_request(&token).unwrap();
        check_request(&request, settings, "", NOW).unwrap_err()
    }

    #[test]
    fn forged_callout_request_with_wrong_audience_subject_or_times_is_refused() {
        let settings = settings();
        type Edit = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("aud", Box::new(|c| c["aud"] = json!("LEDGER"))),
            (
                "aud",
                Box::new(|c| drop(c.as_object_mut().unwrap().remove("aud"))),
            ),
            (
                "sub",
                Box::new(|c| c["sub"] = json!(KeyPair::new_account().public_key())),
            ),
            ("exp", Box::new(|c| c["exp"] = json!(NOW - 60))),
            (
                "exp",
                Box::new(|c| drop(c.as_object_mut().unwrap().remove("exp"))),
            ),
            ("iat", Box::new(|c| c["iat"] = json!(NOW - 3600))),
            ("iat", Box::new(|c| c["iat"] = json!(NOW + 3600))),
            ("iat", Box::new(|c| c["iat"] = Value::Null)),
        ];
        for (field, edit) in cases {
            let refusal = refusal_of(&settings, edit);
            assert_eq!(refusal.field(), field, "{refusal}");
            assert!(
                refusal.to_string().contains(field),
                "the refusal names {field}: {refusal}"
            );
        }
    }

    #[test]
    fn a_sealed_request_opens_only_with_the_callout_xkey_and_the_answer_is_sealed_back() {
        let ours = XKey::new();
        let server = XKey::new();
        let token = "eyJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.sig";
        let sealed = server
            .seal(
                token.as_bytes(),
                &XKey::from_public_key(&ours.public_key()).unwrap(),
            )
            .unwrap();
        assert!(!sealed.windows(token.len()).any(|w| w == token.as_bytes()));
        let (opened, sender) =
            open_request(&sealed, Some(&server.public_key()), Some(&ours)).unwrap();
        assert_eq!(opened, token);
        let sender = sender.unwrap();
        assert_eq!(sender.public_key(), server.public_key());
        // Another curve key cannot open it.
        let other = XKey::new();
        assert_eq!(
            open_request(&sealed, Some(&server.public_key()), Some(&other))
                .unwrap_err()
                .field(),
            "token"
        );
        // A configured xkey refuses a request the server did not seal.
        assert_eq!(
            open_request(token.as_bytes(), None, Some(&ours))
                .unwrap_err()
                .field(),
            SERVER_XKEY_HEADER
        );
        // The answer sealed for the server opens with the server's key.
        let answer = ours.seal(b"eyJanswer", &sender).unwrap();
        let ours_public = XKey::from_public_key(&ours.public_key()).unwrap();
        assert_eq!(server.open(&answer, &ours_public).unwrap(), b"eyJanswer");
    }

    #[test]
    fn the_user_jwt_scopes_the_merchant_limits_the_store_and_expires() {
        let settings = settings();
        let server = KeyPair::new_server();
        let request = decode_request(&server_request(
            &server,
            "AISSUER",
            &KeyPair::new_user().public_key(),
        ))
        .unwrap();
        let inbox = inbox_prefix("hartley-goods", &"ab".repeat(32));
        assert!(inbox.starts_with("_INBOX.hartley-goods."), "{inbox}");
        assert_eq!(inbox.len(), "_INBOX.hartley-goods.".len() + 32);
        assert_ne!(inbox, inbox_prefix("hartley-goods", &"cd".repeat(32)));
        let jwt = user_jwt(
            &settings,
            &request,
            "mk_1",
            &merchant_permissions("hartley-goods", &inbox),
            1000,
        );
        assert!(verifies(&jwt, &settings.issuer.public_key()));
        let claims = claims_of(&jwt);
        assert_eq!(claims["sub"], json!(request.user_nkey));
        assert_eq!(claims["aud"], json!("STORES"));
        assert_eq!(claims["exp"], json!(1300));
        assert_eq!(
            claims["nats"]["pub"]["allow"],
            json!([
                "magento.hartley-goods.invoice.created",
                "magento.hartley-goods.invoice.paid",
                "magento.hartley-goods.invoice.canceled",
                "magento.hartley-goods.creditmemo.created",
                "magento.hartley-goods.creditmemo.refunded",
                "magento.hartley-goods.creditmemo.canceled",
                "magento.hartley-goods.customer.saved",
                "magento.hartley-goods.product.saved",
                "magento.hartley-goods.history.invoice.created",
                "magento.hartley-goods.history.invoice.paid",
                "magento.hartley-goods.history.invoice.canceled",
                "magento.hartley-goods.history.creditmemo.created",
                "magento.hartley-goods.history.creditmemo.refunded",
                "magento.hartley-goods.history.creditmemo.canceled",
                "magento.hartley-goods.history.customer.saved",
                "magento.hartley-goods.history.product.saved",
                "magento.hartley-goods.history.backfill.*",
            ])
        );
        assert_eq!(claims["nats"]["pub"]["deny"], json!(STORE_PUBLISH_DENY));
        assert_eq!(
            claims["nats"]["sub"]["allow"],
            json!([format!("{inbox}.>")])
        );
        assert_eq!(claims["nats"]["payload"], json!(512 * 1024));
        assert_eq!(claims["nats"]["subs"], json!(16));
        assert_eq!(
            claims["nats"]["allowed_connection_types"],
            json!(["STANDARD"])
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

    fn gateway_config(extra: &[&str]) -> Result<crate::Config, clap::Error> {
        use clap::Parser;
        let seed = KeyPair::new_account().seed().unwrap();
        let mut args = vec![
            "gateway",
            "--database-url",
            "postgres://localhost/ledger",
            "--sage-client-id",
            "id",
            "--sage-client-secret",
            "secret",
            "--token-key",
            "00",
            "--admin-token",
            "admin",
            "--nats-url",
            "nats://gateway:pw@nats.internal:4222",
            "--nats-callout-issuer-seed",
            &seed,
        ];
        args.extend_from_slice(extra);
        crate::Config::try_parse_from(args)
    }

    #[test]
    fn stores_are_handed_tls_urls_only_unless_the_development_override_is_set() {
        let check = |extra: &[&str]| {
            crate::store_access::check_public_nats_urls(&gateway_config(extra).unwrap())
                .map_err(|e| e.to_string())
        };
        let refused = check(&["--nats-public-urls", "nats://nats.example:4222"]).unwrap_err();
        assert!(
            refused.starts_with("LEDGER_NATS_PUBLIC_URLS:") && refused.contains("tls://"),
            "{refused}"
        );
        // Without public URLs the gateway's own URL (plain here) would be handed out.
        assert!(check(&[]).is_err());
        assert!(check(&[
            "--nats-public-urls",
            "tls://a.example:4222,tls://b.example:4222"
        ])
        .is_ok());
        assert!(check(&[
            "--nats-public-urls",
            "tls://a.example:4222,nats://b.example:4222"
        ])
        .is_err());
        assert!(check(&[
            "--nats-public-urls",
            "nats://nats.example:4222",
            "--nats-allow-plain"
        ])
        .is_ok());
    }

    #[test]
    fn callout_settings_name_the_variable_at_fault() {
        let settings = CalloutSettings::from_config(
            &gateway_config(&["--nats-server-keys", "connected"]).unwrap(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(settings.server_keys, ServerKeys::Connected);
        assert_eq!(settings.account, "STORES");
        assert!(settings.xkey.is_none());
        let err = CalloutSettings::from_config(
            &gateway_config(&["--nats-callout-xkey-seed", "SXnot-a-seed"]).unwrap(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.starts_with("LEDGER_NATS_CALLOUT_XKEY_SEED:"), "{err}");
        let err = CalloutSettings::from_config(
            &gateway_config(&["--nats-server-keys", "not-a-key"]).unwrap(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.starts_with("LEDGER_NATS_SERVER_KEYS:"), "{err}");
        let xkey = XKey::new().seed().unwrap();
        let settings = CalloutSettings::from_config(
            &gateway_config(&["--nats-callout-xkey-seed", &xkey]).unwrap(),
        )
        .unwrap()
        .unwrap();
        assert!(settings.xkey.is_some());
    }

    /// A refusal must say which part of the request was wrong.
    fn names_a_field(e: &RequestError) -> bool {
        let field = e.field();
        !field.is_empty() && e.to_string().contains(field)
    }

    fn mutated(token: &str, at: usize, byte: u8) -> String {
        let mut bytes = token.as_bytes().to_vec();
        if !bytes.is_empty() {
            let i = at % bytes.len();
            bytes[i] = byte;
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn fuzz_random_bytes_never_panic_and_name_a_field(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let token = String::from_utf8_lossy(&bytes);
            if let Err(e) = decode_request(&token) {
                prop_assert!(names_a_field(&e), "{e}");
            }
            let own = XKey::new();
            if let Err(e) = open_request(&bytes, Some(&own.public_key()), Some(&own)) {
                prop_assert!(names_a_field(&e), "{e}");
            }
        }

        #[test]
        fn fuzz_jwt_shaped_strings_never_panic_and_name_a_field(
            header in "[A-Za-z0-9_=-]{0,40}",
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            json_payload in proptest::option::of("\\{\"iss\":\"[A-Z0-9]{0,60}\",\"nats\":\\{[a-z\":{},]{0,40}\\}\\}"),
            signature in "[A-Za-z0-9_-]{0,90}",
        ) {
            let payload = match json_payload {
                Some(j) => b64(j.as_bytes()),
                None => b64(&payload),
            };
            let token = format!("{header}.{payload}.{signature}");
            match decode_request(&token) {
                Ok(_) => prop_assert!(false, "an unsigned request was read: {token}"),
                Err(e) => prop_assert!(names_a_field(&e), "{e}"),
            }
        }

        #[test]
        fn fuzz_mutated_valid_requests_are_refused_naming_a_field(at in any::<usize>(), byte in any::<u8>()) {
            let server = KeyPair::new_server();
            let token = server_request(&server, "AISSUER", &KeyPair::new_user().public_key());
            let changed = mutated(&token, at, byte);
            match decode_request(&changed) {
                // Some base64 characters differ only in bits the decoder drops; the signed
                // content is then unchanged.
                Ok(r) => prop_assert_eq!(r.server_id, server.public_key()),
                Err(e) => prop_assert!(names_a_field(&e), "{e}"),
            }
        }
    }
}
