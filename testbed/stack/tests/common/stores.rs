//! What the tests of store access share: a stack on a NATS server started with the shipped
//! configuration (stores admitted by the gateway's auth callout), the pairing handshake as a
//! module walks it, and NATS clients connected as a store or with a service's credentials.

use futures::StreamExt;
use ledger_stack::{Stack, StackOptions};
use ledger_testkit::{TestDb, TestNats};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// The stack's admin token.
pub const ADMIN: &str = ledger_stack::ADMIN_TOKEN;

/// A private secured nats-server, a fresh database and the engine on them; store sessions
/// last `session_ttl_secs`.
pub async fn secured_stack(name: &'static str, session_ttl_secs: u64) -> (Stack, TestNats, TestDb) {
    let _ = ledger_runtime::telemetry::init(name);
    let nats = TestNats::start_secured().await.unwrap();
    let db = TestDb::create().await.unwrap();
    let stack = Stack::start(StackOptions::secured(&nats, db.url(), session_ttl_secs))
        .await
        .unwrap();
    (stack, nats, db)
}

/// One HTTP call: status and JSON answer (null when the answer is not JSON).
pub async fn call(
    method: reqwest::Method,
    url: String,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A store's side of a pairing in progress.
pub struct Pending {
    pub pairing_id: String,
    pub code: String,
    pub poll_secret: String,
}

/// The module asks for a pairing code.
pub async fn request_pairing(stack: &Stack) -> Pending {
    let (status, body) = call(
        reqwest::Method::POST,
        format!("{}/v1/pairings", stack.gateway_url),
        None,
        Some(json!({"store_url": "https://shop.example", "module_version": "1.0.0"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    Pending {
        pairing_id: body["pairing_id"].as_str().unwrap().into(),
        code: body["code"].as_str().unwrap().into(),
        poll_secret: body["poll_secret"].as_str().unwrap().into(),
    }
}

/// The operator enters the code for `merchant`.
pub async fn claim(stack: &Stack, merchant: &str, code: &str) -> (u16, Value) {
    call(
        reqwest::Method::POST,
        format!(
            "{}/v1/admin/merchants/{merchant}/pairings",
            stack.gateway_url
        ),
        Some(ADMIN),
        Some(json!({ "code": code })),
    )
    .await
}

/// The module polls its pairing with `secret`.
pub async fn poll(stack: &Stack, pending: &Pending, secret: &str) -> (u16, Value) {
    call(
        reqwest::Method::GET,
        format!("{}/v1/pairings/{}", stack.gateway_url, pending.pairing_id),
        Some(secret),
        None,
    )
    .await
}

/// A store's key, as the module receives it.
#[derive(Clone)]
pub struct Key {
    pub key_id: String,
    pub secret: String,
    pub inbox_prefix: String,
    pub nats_url: String,
}

/// Pairs a store with `merchant` (the code typed in lower case) and returns its key.
pub async fn pair(stack: &Stack, merchant: &str) -> Key {
    let pending = request_pairing(stack).await;
    let (status, body) = claim(stack, merchant, &pending.code.to_lowercase()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = poll(stack, &pending, &pending.poll_secret).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "paired");
    assert_eq!(body["merchant_id"], merchant);
    Key {
        key_id: body["credentials"]["key_id"].as_str().unwrap().into(),
        secret: body["credentials"]["secret"].as_str().unwrap().into(),
        inbox_prefix: body["nats"]["inbox_prefix"].as_str().unwrap().into(),
        nats_url: body["nats"]["urls"][0].as_str().unwrap().into(),
    }
}

/// Server errors (permission violations, limits, expiry) a client saw.
pub type Events = mpsc::UnboundedReceiver<String>;

/// Connects with `user`/`password`; server errors arrive on the channel.
pub async fn client(
    url: &str,
    user: &str,
    password: &str,
    inbox_prefix: &str,
) -> Result<(async_nats::Client, Events), async_nats::ConnectError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (address, _) = ledger_runtime::bus::split_credentials(url);
    let client = async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
        .custom_inbox_prefix(inbox_prefix)
        .max_reconnects(Some(1))
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(event.to_string());
            }
        })
        .connect(address)
        .await?;
    Ok((client, rx))
}

/// Connects as the store holding `key`.
pub async fn store_client(
    key: &Key,
) -> Result<(async_nats::Client, Events), async_nats::ConnectError> {
    client(&key.nats_url, &key.key_id, &key.secret, &key.inbox_prefix).await
}

/// Messages the events stream holds on `subject`.
pub async fn stream_messages_on(nats: &TestNats, subject: &str) -> u64 {
    let js = async_nats::jetstream::new(nats.connect().await.unwrap());
    let stream = js.get_stream(ledger_events::STREAM_NAME).await.unwrap();
    let info = stream
        .info_with_subjects(subject)
        .await
        .unwrap()
        .next()
        .await;
    match info {
        Some(Ok((_, count))) => count as u64,
        _ => 0,
    }
}

/// Publishes invoice `n` of `merchant` on its own subject and waits for a fresh PubAck.
pub async fn publish_own(client: &async_nats::Client, merchant: &str, n: u64) {
    let js = async_nats::jetstream::new(client.clone());
    let event = ledger_stack::events::invoice_created(merchant, n);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", event.event_id.to_string().as_str());
    let ack = js
        .publish_with_headers(
            format!("magento.{merchant}.invoice.created"),
            headers,
            event.body.into(),
        )
        .await
        .unwrap()
        .await
        .unwrap_or_else(|e| panic!("no PubAck for {merchant}'s own subject: {e}"));
    assert!(!ack.duplicate);
}
