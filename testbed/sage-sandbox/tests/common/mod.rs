//! Shared helpers for the HTTP tests: every test talks to a real sandbox on
//! 127.0.0.1 through reqwest.
#![allow(dead_code)]

use reqwest::{Client, Method, StatusCode};
use sage_sandbox::{BusinessHandle, BusinessSpec, Sandbox, SandboxConfig};
use serde_json::{json, Value};

pub const CLIENT_ID: &str = "ledger-dev";
pub const CLIENT_SECRET: &str = "ledger-dev-secret";

/// A connected API client for one business.
pub struct Api {
    pub http: Client,
    pub base: String,
    pub token: String,
    pub refresh_token: String,
    pub business: BusinessHandle,
}

/// A response reduced to what tests look at.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    /// `$source` values of a Sage error envelope.
    pub fn sources(&self) -> Vec<String> {
        self.body
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["$source"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `$dataCode` of the first envelope entry.
    pub fn data_code(&self) -> String {
        self.body[0]["$dataCode"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// `$message` of the first envelope entry.
    pub fn message(&self) -> String {
        self.body[0]["$message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Asserts a 422 whose envelope names `source`.
    #[track_caller]
    pub fn assert_422(&self, source: &str) {
        assert_eq!(
            self.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "body: {}",
            self.body
        );
        assert!(
            self.sources().iter().any(|s| s == source),
            "expected $source {source}, got {}",
            self.body
        );
        let e = &self.body[0];
        assert_eq!(e["$severity"], "error");
    }

    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {}", self.body))
            .to_owned()
    }
}

pub fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub async fn start() -> Sandbox {
    Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox starts")
}

pub async fn start_with(config: SandboxConfig) -> Sandbox {
    Sandbox::start(config).await.expect("sandbox starts")
}

/// Exchanges an authorisation code for tokens.
pub async fn exchange_code(http: &Client, sandbox: &Sandbox, code: &str) -> Value {
    let r = http
        .post(sandbox.token_url())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("redirect_uri", "http://localhost/callback"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// Creates a business and connects to it.
pub async fn connect(sandbox: &Sandbox, spec: BusinessSpec) -> Api {
    let business = sandbox.create_business(spec).await;
    connect_to(sandbox, business).await
}

pub async fn connect_to(sandbox: &Sandbox, business: BusinessHandle) -> Api {
    let http = client();
    let code = sandbox.issue_authorization_code(&business.id).await;
    let tokens = exchange_code(&http, sandbox, &code).await;
    Api {
        http,
        base: sandbox.api_base_url(),
        token: tokens["access_token"].as_str().unwrap().to_owned(),
        refresh_token: tokens["refresh_token"].as_str().unwrap().to_owned(),
        business,
    }
}

pub async fn uk(sandbox: &Sandbox) -> Api {
    connect(sandbox, BusinessSpec::default()).await
}

impl Api {
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("X-Business", &self.business.id);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, None).await
    }

    pub fn ledger(&self, code: &str) -> String {
        self.business.ledger_accounts[code].clone()
    }

    pub fn bank(&self, currency: &str) -> String {
        self.business.bank_accounts[currency].clone()
    }

    /// Creates a customer; extra fields are merged into the contact object.
    pub async fn customer(&self, name: &str, extra: Value) -> String {
        let mut c = json!({"name": name, "contact_type_ids": ["CUSTOMER"]});
        if let Value::Object(m) = extra {
            for (k, v) in m {
                c[k] = v;
            }
        }
        let r = self.post("/contacts", json!({"contact": c})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.id()
    }

    /// A standard-rated invoice line.
    pub fn line(&self, description: &str, qty: &str, price: &str, tax: &str) -> Value {
        json!({
            "description": description,
            "ledger_account_id": self.ledger("4000"),
            "quantity": qty,
            "unit_price": price,
            "tax_rate_id": "GB_STANDARD",
            "tax_amount": tax,
        })
    }

    /// Creates an invoice for `contact` with the given lines.
    pub async fn invoice(&self, contact: &str, lines: Value) -> Resp {
        self.post(
            "/sales_invoices",
            json!({"sales_invoice": {"contact_id": contact, "date": "2024-05-01", "invoice_lines": lines}}),
        )
        .await
    }

    pub async fn credit_note(&self, contact: &str, lines: Value) -> Resp {
        self.post(
            "/sales_credit_notes",
            json!({"sales_credit_note": {"contact_id": contact, "date": "2024-05-02", "credit_note_lines": lines}}),
        )
        .await
    }
}

/// A fresh 32-hex idempotency id.
pub fn idem() -> String {
    uuid_like()
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    format!("{:016x}{:016x}", t, n)
}
