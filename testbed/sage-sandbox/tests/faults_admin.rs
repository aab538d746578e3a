//! Fault knobs, rate limiting, concurrency and duplicate detection, metrics,
//! and the `/_sandbox` HTTP control API.

mod common;

use common::*;
use reqwest::StatusCode;
use sage_sandbox::{FaultKind, FaultPlan, SandboxConfig};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn contact_body(name: &str) -> Value {
    json!({"contact": {"name": name, "contact_type_ids": ["CUSTOMER"]}})
}

#[tokio::test]
async fn latency_delays_only_matching_requests() {
    let sandbox = start().await;
    let slow = uk(&sandbox).await;
    let fast = uk(&sandbox).await;
    sandbox
        .faults()
        .set(FaultPlan::new(FaultKind::Latency { ms: 500 }).for_business(&slow.business.id));
    let t = Instant::now();
    assert_eq!(slow.get("/contacts").await.status, StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(500));
    let t = Instant::now();
    assert_eq!(fast.get("/contacts").await.status, StatusCode::OK);
    assert!(t.elapsed() < Duration::from_millis(400));
    let stats = sandbox.inspect().stats_for(&slow.business.id);
    assert_eq!(stats.faults_applied[0].fault, "latency");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn error_500_is_not_applied() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    sandbox.faults().set(
        FaultPlan::new(FaultKind::Error500)
            .on_resource("contacts")
            .on_method("POST")
            .times(1),
    );
    let r = api.post("/contacts", contact_body("Ada")).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.data_code(), "UnexpectedError");
    assert!(sandbox
        .inspect()
        .documents(&api.business.id, "contacts")
        .is_empty());
    // Used up after one request.
    assert_eq!(
        api.post("/contacts", contact_body("Ada")).await.status,
        StatusCode::CREATED
    );
    assert!(sandbox.faults().list().is_empty());
    sandbox.shutdown().await;
}

#[tokio::test]
async fn applied_then_500_stores_and_idempotent_retry_recovers() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    sandbox.faults().set(
        FaultPlan::new(FaultKind::AppliedThen500)
            .on_resource("contacts")
            .times(1),
    );
    let key = idem();
    let body = json!({"contact": {"name": "Ada", "contact_type_ids": ["CUSTOMER"], "idempotency_id": key}});
    let r = api.post("/contacts", body.clone()).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let docs = sandbox.inspect().documents(&api.business.id, "contacts");
    assert_eq!(docs.len(), 1);
    let r = api.post("/contacts", body).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["id"], docs[0]["id"]);
    assert_eq!(
        sandbox
            .inspect()
            .documents(&api.business.id, "contacts")
            .len(),
        1
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn rate_429_with_retry_after() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let id = sandbox.faults().set(
        FaultPlan::new(FaultKind::Rate429 {
            retry_after_secs: Some(7),
        })
        .on_method("GET"),
    );
    for _ in 0..2 {
        let r = api.get("/contacts").await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers["retry-after"], "7");
        assert_eq!(r.data_code(), "TooManyRequests");
    }
    assert_eq!(
        api.post("/contacts", contact_body("A")).await.status,
        StatusCode::CREATED
    );
    assert!(sandbox.faults().remove(id));
    assert_eq!(api.get("/contacts").await.status, StatusCode::OK);
    // Without a Retry-After value no header is sent.
    sandbox.faults().set(
        FaultPlan::new(FaultKind::Rate429 {
            retry_after_secs: None,
        })
        .times(1),
    );
    let r = api.get("/contacts").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(!r.headers.contains_key("retry-after"));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn timeout_drops_the_connection() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    sandbox.faults().set(
        FaultPlan::new(FaultKind::Timeout {
            secs: 1,
            apply: false,
        })
        .on_resource("contacts")
        .on_method("POST")
        .times(1),
    );
    let t = Instant::now();
    let r = api
        .http
        .post(format!("{}/contacts", api.base))
        .bearer_auth(&api.token)
        .json(&contact_body("Ada"))
        .send()
        .await;
    assert!(r.is_err(), "expected a dropped connection, got {r:?}");
    assert!(t.elapsed() >= Duration::from_secs(1));
    assert!(sandbox
        .inspect()
        .documents(&api.business.id, "contacts")
        .is_empty());
    assert_eq!(
        sandbox
            .inspect()
            .stats()
            .count_status("POST", "/v3.1/contacts", 0),
        1
    );

    // The applying variant stores the write before going silent.
    sandbox.faults().set(
        FaultPlan::new(FaultKind::Timeout {
            secs: 1,
            apply: true,
        })
        .on_resource("contacts")
        .times(1),
    );
    let r = api
        .http
        .post(format!("{}/contacts", api.base))
        .bearer_auth(&api.token)
        .json(&contact_body("Ada"))
        .send()
        .await;
    assert!(r.is_err());
    assert_eq!(
        sandbox
            .inspect()
            .documents(&api.business.id, "contacts")
            .len(),
        1
    );
    // The server keeps serving afterwards.
    assert_eq!(api.get("/contacts").await.status, StatusCode::OK);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn probability_is_reproducible_with_a_seed() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    sandbox.faults().set(
        FaultPlan::new(FaultKind::Error500)
            .on_method("GET")
            .with_probability(0.5),
    );
    let run = || async {
        sandbox.faults().seed(42);
        let mut pattern = Vec::new();
        for _ in 0..24 {
            pattern.push(api.get("/currencies").await.status == StatusCode::INTERNAL_SERVER_ERROR);
        }
        pattern
    };
    let a = run().await;
    let b = run().await;
    assert_eq!(a, b);
    let hits = a.iter().filter(|x| **x).count();
    assert!(hits > 0 && hits < 24, "{hits}");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn configured_rate_limit_per_business() {
    let sandbox = start_with(SandboxConfig {
        rate_limit_per_minute: Some(3),
        ..Default::default()
    })
    .await;
    let a = uk(&sandbox).await;
    let b = uk(&sandbox).await;
    for _ in 0..3 {
        assert_eq!(a.get("/contacts").await.status, StatusCode::OK);
    }
    let r = a.get("/contacts").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.headers["x-business"], a.business.id.as_str());
    assert_eq!(b.get("/contacts").await.status, StatusCode::OK);
    assert_eq!(
        sandbox.inspect().stats().rate_limited,
        vec![(a.business.id.clone(), 1)]
    );
    sandbox.faults().set_rate_limit(None);
    assert_eq!(a.get("/contacts").await.status, StatusCode::OK);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn overlapping_posts_are_reported() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    sandbox
        .faults()
        .set(FaultPlan::new(FaultKind::Latency { ms: 300 }).on_method("POST"));
    // One at a time: no violation.
    api.post("/contacts", contact_body("A")).await;
    api.post("/contacts", contact_body("B")).await;
    assert!(sandbox.inspect().concurrency_violations().is_empty());
    // Two at once: a violation for this business and resource.
    let (r1, r2) = tokio::join!(
        api.post("/contacts", contact_body("C")),
        api.post("/contacts", contact_body("D"))
    );
    assert_eq!(
        (r1.status, r2.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    let v = sandbox.inspect().concurrency_violations();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].business_id, api.business.id);
    assert_eq!(v[0].resource, "contacts");
    assert_eq!(v[0].in_flight, 2);
    // Parallel GETs are fine.
    let _ = tokio::join!(api.get("/contacts"), api.get("/contacts"));
    assert_eq!(sandbox.inspect().concurrency_violations().len(), 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn duplicate_references_and_contacts_are_reported() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let c = api
        .customer(
            "Ada",
            json!({"main_contact_person": {"email": "ada@example.com"}}),
        )
        .await;
    api.customer(
        "ADA",
        json!({"main_contact_person": {"email": "Ada@Example.com"}}),
    )
    .await;
    api.customer("Ada", json!({})).await;
    let inv = |reference: &str| json!({"sales_invoice": {"contact_id": c, "date": "2024-05-01", "reference": reference, "invoice_lines": [api.line("W", "1", "1", "0.20")]}});
    api.post("/sales_invoices", inv("ORDER-1")).await;
    api.post("/sales_invoices", inv("ORDER-1")).await;
    api.post("/sales_invoices", inv("ORDER-2")).await;
    let d = sandbox.inspect().duplicate_references(&api.business.id);
    assert_eq!(d.len(), 2, "{d:?}");
    let contacts = d.iter().find(|g| g.resource == "contacts").unwrap();
    assert_eq!(contacts.ids.len(), 2);
    let invoices = d.iter().find(|g| g.resource == "sales_invoices").unwrap();
    assert_eq!((invoices.key.as_str(), invoices.ids.len()), ("ORDER-1", 2));
    let over_http: Value = api
        .http
        .get(format!("{}/duplicates", sandbox.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http.as_array().unwrap().len(), 2);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn metrics_endpoint_exposes_counters() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    api.get("/contacts").await;
    api.get("/contacts").await;
    let text = api
        .http
        .get(format!("http://{}/metrics", sandbox.addr()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("sage_sandbox_requests_total")
                && l.contains("path=\"/v3.1/contacts\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.ends_with(" 2"), "{line}");
    assert!(text.contains("sage_sandbox_token_requests_total"));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn admin_http_api_covers_the_in_process_api() {
    let sandbox = start().await;
    let http = client();
    let admin = sandbox.admin_url();

    let r = http
        .post(format!("{admin}/businesses"))
        .json(&json!({"name": "Demo Ltd"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let business: sage_sandbox::BusinessHandle = r.json().await.unwrap();
    assert_eq!(
        (business.base_currency.as_str(), business.country.as_str()),
        ("GBP", "GB")
    );
    let r = http
        .post(format!("{admin}/businesses"))
        .json(&json!({"name": "Bad", "base_currency": "XXX"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let listed: Vec<sage_sandbox::BusinessHandle> = http
        .get(format!("{admin}/businesses"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, vec![business.clone()]);

    let code: Value = http
        .post(format!(
            "{admin}/businesses/{}/authorization_code",
            business.id
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tokens = exchange_code(&http, &sandbox, code["code"].as_str().unwrap()).await;
    let api = Api {
        http: http.clone(),
        base: sandbox.api_base_url(),
        token: tokens["access_token"].as_str().unwrap().to_owned(),
        refresh_token: tokens["refresh_token"].as_str().unwrap().to_owned(),
        business: business.clone(),
    };
    let contact = api.customer("Ada", json!({})).await;

    let docs: Value = http
        .get(format!(
            "{admin}/businesses/{}/documents/contacts",
            business.id
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(docs[0]["id"], contact.as_str());
    let r = http
        .get(format!(
            "{admin}/businesses/{}/documents/widgets",
            business.id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let stats: Value = http
        .get(format!("{admin}/stats?business_id={}", business.id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let post_contacts = stats["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "/v3.1/contacts" && c["method"] == "POST")
        .unwrap();
    assert_eq!(
        (
            post_contacts["status"].as_u64(),
            post_contacts["count"].as_u64()
        ),
        (Some(201), Some(1))
    );
    assert_eq!(
        stats["token_requests"][0]["grant_type"],
        "authorization_code"
    );
    let log: Value = http
        .get(format!("{admin}/calls?business_id={}&limit=1", business.id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log[0]["method"], "POST");
    assert_eq!(log[0]["path"], "/v3.1/contacts");
    assert_eq!(log[0]["status"], 201);
    assert_eq!(sandbox.inspect().calls(Some(&business.id), 10).len(), 2);

    // Faults over HTTP.
    let r = http
        .post(format!("{admin}/faults"))
        .json(&json!({"fault": {"kind": "error_500"}, "business_id": business.id, "resource": "contacts", "method": "GET", "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let listed: Value = http
        .get(format!("{admin}/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["plan"]["fault"]["kind"], "error_500");
    assert_eq!(
        api.get("/contacts").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(api.get("/contacts").await.status, StatusCode::OK);
    let id: Value = http
        .post(format!("{admin}/faults"))
        .json(&json!({"fault": {"kind": "latency", "ms": 1}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = http
        .delete(format!("{admin}/faults/{}", id["id"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    http.post(format!("{admin}/faults"))
        .json(&json!({"fault": {"kind": "rate_429"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        api.get("/contacts").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    http.delete(format!("{admin}/faults")).send().await.unwrap();
    assert_eq!(api.get("/contacts").await.status, StatusCode::OK);
    let r = http
        .put(format!("{admin}/faults/seed"))
        .json(&json!({"seed": 9}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Rate limit over HTTP.
    http.put(format!("{admin}/rate_limit"))
        .json(&json!({"per_minute": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(api.get("/contacts").await.status, StatusCode::OK);
    assert_eq!(
        api.get("/contacts").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    http.put(format!("{admin}/rate_limit"))
        .json(&json!({"per_minute": null}))
        .send()
        .await
        .unwrap();

    // Concurrency violations and expiry over HTTP.
    let v: Value = http
        .get(format!("{admin}/concurrency_violations"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v, json!([]));
    let e: Value = http
        .post(format!(
            "{admin}/businesses/{}/expire_access_tokens",
            business.id
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(e["expired"], 1);
    assert_eq!(api.get("/contacts").await.status, StatusCode::UNAUTHORIZED);

    // Reset forgets everything.
    http.post(format!("{admin}/reset")).send().await.unwrap();
    assert!(sandbox.inspect().businesses().is_empty());
    assert!(sandbox.inspect().stats().calls.is_empty());
    sandbox.shutdown().await;
}

#[tokio::test]
async fn run_serves_until_shutdown_future_completes() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sage_sandbox::run(
        SandboxConfig {
            bind: addr,
            ..Default::default()
        },
        async {
            let _ = rx.await;
        },
    ));
    let http = client();
    let mut ok = false;
    for _ in 0..50 {
        if let Ok(r) = http.get(format!("http://{addr}/_sandbox")).send().await {
            ok = r.status() == StatusCode::OK;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok);
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(http
        .get(format!("http://{addr}/_sandbox"))
        .send()
        .await
        .is_err());
}
