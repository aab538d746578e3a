//! Hostile tenants against the gateway's HTTP surface, on the real stack (gateway, NATS,
//! services, Sage sandbox, PostgreSQL). Each test is one attack; its assertions prove the
//! attack was refused and that nothing crossed between merchants.
//!
//! - `oauth_state_replay`: a merchant's Sage consent URL completed by someone else.
//! - `pairing_phishing`: a pairing code that binds a store before the merchant saw which.
//! - `login_csrf`: a sign-in link that signs a browser in by merely being opened.
//! - `pairing_flood`: one address taking every pairing slot.
//! - `rate_limit`: one key or address hammering ingest, status or pairing polls.
//! - `admin_token_short`: a gateway started with a guessable admin token.
//! - `error_leak`: database or NATS text in answers.
//! - `metrics_not_public`: operational metrics on the public listener.
//! - `status_cursor`: cursors out of range; cursors that reveal another merchant's volume.
//! - `books_check_flood`: one merchant running the expensive books check back to back.
//! - `script_in_names`: markup in a merchant, store or Sage business name, on every page that
//!   shows it.

use ledger_stack::{set_cookie, Stack, StackOptions, ADMIN_TOKEN, CROSSING};
use ledger_testkit::{TestDb, TestNats};
use sage_sandbox::BusinessSpec;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Harness: the stack under attack, and how a merchant signs in to the portal.

/// Limits low enough to reach in a test. Requests without a forwarded address come from
/// 127.0.0.1, which is also the trusted proxy, so tests can speak for other client addresses.
fn attack_limits() -> gateway::limits::Limits {
    gateway::limits::Limits {
        ip_per_second: 30,
        ip_burst: 60,
        key_per_second: 2,
        key_burst: 10,
        open_pairings_per_ip: 3,
        books_check_interval_secs: 3600,
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
    }
}

async fn stack() -> (Stack, TestNats, TestDb) {
    let _ = ledger_runtime::telemetry::init("attack-web");
    let nats = TestNats::start().await.unwrap();
    let db = TestDb::create().await.unwrap();
    let options = StackOptions {
        limits: attack_limits(),
        ..StackOptions::new(nats.url(), db.url())
    };
    let stack = Stack::start(options).await.unwrap();
    (stack, nats, db)
}

/// A gateway configuration for `stack`'s infrastructure with `admin_token`.
fn gateway_config(nats: &TestNats, db: &TestDb, admin_token: &str) -> gateway::Config {
    gateway::Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        public_url: "http://127.0.0.1:1".into(),
        nats_url: nats.url(),
        database_url: db.url().to_string(),
        stream_max_age_days: 1,
        stream_replicas: 1,
        sage_api_base_url: "http://127.0.0.1:1".into(),
        sage_authorize_url: "http://127.0.0.1:1/auth".into(),
        sage_token_url: "http://127.0.0.1:1/token".into(),
        sage_revoke_url: "http://127.0.0.1:1/revoke".into(),
        sage_client_id: "id".into(),
        sage_client_secret: "secret".into(),
        token_key: "00".repeat(32),
        admin_token: admin_token.into(),
        nats_public_urls: Vec::new(),
        nats_callout_issuer_seed: None,
        nats_store_account: "LEDGER".into(),
        nats_session_ttl_secs: 300,
        nats_callout_xkey_seed: None,
        nats_server_keys: Vec::new(),
        nats_allow_plain: true,
        log_format: Default::default(),
        limits: attack_limits(),
    }
}

/// A signed-in portal browser: its session cookie (`name=value`) and CSRF token.
struct Portal {
    cookie: String,
    csrf: String,
}

/// Signs in to `merchant`'s portal as the merchant does: the operator's link, then the
/// confirmation page's button.
async fn sign_in(stack: &Stack, merchant: &str) -> Portal {
    let link = portal_link(stack, merchant).await;
    let token = token_of(&link);
    let response = http()
        .post(format!("{}/portal/login", stack.gateway_url))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let cookie = set_cookie(&response).expect("a session cookie");
    let csrf = csrf_of(&get_page(stack, "/portal", Some(&cookie)).await.1);
    Portal { cookie, csrf }
}

// ---------------------------------------------------------------------------------------------

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Registers a merchant (no Sage connection); returns its ingest key.
async fn register(stack: &Stack, merchant: &str) -> String {
    let (status, body) = json_of(
        http()
            .post(format!("{}/v1/admin/merchants", stack.gateway_url))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"merchant_id": merchant, "name": format!("Shop {merchant}")}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["ingest_key"].as_str().unwrap().to_string()
}

/// The Sage business a merchant is connected to, as the operator sees it.
async fn sage_of(stack: &Stack, merchant: &str) -> Value {
    let (status, body) = json_of(
        http()
            .get(format!(
                "{}/v1/admin/merchants/{merchant}",
                stack.gateway_url
            ))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["sage"].clone()
}

async fn portal_link(stack: &Stack, merchant: &str) -> String {
    let (status, body) = json_of(
        http()
            .post(format!(
                "{}/v1/admin/merchants/{merchant}/portal-links",
                stack.gateway_url
            ))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["url"].as_str().unwrap().to_string()
}

fn token_of(link: &str) -> String {
    reqwest::Url::parse(link)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.to_string())
        .unwrap()
}

/// The value of the first hidden `name` field in a page.
fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_string())
}

fn csrf_of(html: &str) -> String {
    hidden(html, "csrf").unwrap_or_else(|| panic!("no CSRF field in {html}"))
}

async fn get_page(stack: &Stack, path: &str, cookie: Option<&str>) -> (u16, String) {
    let mut request = http().get(format!("{}{path}", stack.gateway_url));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn post_form(
    stack: &Stack,
    path: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = http().post(format!("{}{path}", stack.gateway_url));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.form(form).send().await.unwrap()
}

/// The signed-in merchant posts a pairing `code` to `path` (with the session's CSRF token).
async fn post_code(stack: &Stack, portal: &Portal, path: &str, code: &str) -> reqwest::Response {
    let form = [("csrf", portal.csrf.as_str()), ("code", code)];
    post_form(stack, path, Some(&portal.cookie), &form).await
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// The merchant starts connecting Sage from the portal; returns the `state` of the consent URL.
async fn start_connect(stack: &Stack, portal: &Portal) -> String {
    let response = post_form(
        stack,
        "/portal/sage/connect",
        Some(&portal.cookie),
        &[("csrf", portal.csrf.as_str())],
    )
    .await;
    assert_eq!(response.status().as_u16(), 303);
    reqwest::Url::parse(&location(&response))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.to_string())
        .expect("state in the consent URL")
}

async fn callback(stack: &Stack, state: &str, code: &str, cookie: Option<&str>) -> (u16, String) {
    let mut request = http()
        .get(format!("{}/connect/sage/callback", stack.gateway_url))
        .query(&[("state", state), ("code", code)]);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn request_pairing(stack: &Stack, from: Option<&str>, store_url: &str) -> reqwest::Response {
    let mut request = http()
        .post(format!("{}/v1/pairings", stack.gateway_url))
        .json(&json!({"store_url": store_url, "store_name": "Phish & Chips", "module_version": "9.9.9"}));
    if let Some(ip) = from {
        request = request.header("x-forwarded-for", ip);
    }
    request.send().await.unwrap()
}

/// The store's poll of its pairing (`pairing` as `POST /v1/pairings` answered it).
async fn poll_pairing(stack: &Stack, pairing: &Value) -> (u16, Value) {
    json_of(
        http()
            .get(format!(
                "{}/v1/pairings/{}",
                stack.gateway_url,
                pairing["pairing_id"].as_str().unwrap()
            ))
            .bearer_auth(pairing["poll_secret"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn retry_after(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oauth_state_replay_is_refused_and_nothing_is_stored() {
    let (stack, _nats, _db) = stack().await;
    register(&stack, "oauth-a").await;
    register(&stack, "oauth-b").await;
    let victim = stack
        .sandbox
        .create_business(BusinessSpec {
            name: "Victim Books Ltd".into(),
            ..BusinessSpec::default()
        })
        .await;
    let a = sign_in(&stack, "oauth-a").await;
    let b = sign_in(&stack, "oauth-b").await;

    // Merchant A starts the connection and hands its consent URL to the victim's Sage user,
    // who approves: the victim's browser, without A's session, comes back with A's state.
    let state = start_connect(&stack, &a).await;
    let code = stack.sandbox.issue_authorization_code(&victim.id).await;
    let (status, page) = callback(&stack, &state, &code, None).await;
    assert_eq!(status, 403, "callback without the starting session: {page}");
    assert!(page.contains("another browser session"), "{page}");
    // The same with B's session (a merchant replaying A's state in its own browser).
    let state = start_connect(&stack, &a).await;
    let code = stack.sandbox.issue_authorization_code(&victim.id).await;
    let (status, page) = callback(&stack, &state, &code, Some(&b.cookie)).await;
    assert_eq!(
        status, 403,
        "callback with another merchant's session: {page}"
    );
    assert!(
        sage_of(&stack, "oauth-a").await.is_null(),
        "{CROSSING} A connected to the victim's business"
    );
    assert!(
        sage_of(&stack, "oauth-b").await.is_null(),
        "{CROSSING} B connected to the victim's business"
    );

    // With A's own session the business is shown, and nothing is stored yet.
    let own = stack
        .sandbox
        .create_business(BusinessSpec {
            name: "A Trading Ltd".into(),
            ..BusinessSpec::default()
        })
        .await;
    let state = start_connect(&stack, &a).await;
    let code = stack.sandbox.issue_authorization_code(&own.id).await;
    let (status, page) = callback(&stack, &state, &code, Some(&a.cookie)).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("A Trading Ltd"),
        "the business name is shown: {page}"
    );
    assert!(page.contains(&own.id), "the business id is shown: {page}");
    assert!(
        sage_of(&stack, "oauth-a").await.is_null(),
        "stored only after confirmation"
    );
    let pending = hidden(&page, "pending").expect("the confirmation form");

    // B cannot confirm A's pending connection, not even with B's valid session and CSRF.
    let response = post_form(
        &stack,
        "/portal/sage/confirm",
        Some(&b.cookie),
        &[
            ("csrf", &b.csrf),
            ("pending", &pending),
            ("business", &own.id),
        ],
    )
    .await;
    assert!(
        location(&response).contains("error="),
        "{}",
        location(&response)
    );
    assert!(
        sage_of(&stack, "oauth-b").await.is_null(),
        "{CROSSING} B confirmed A's pending connection"
    );
    assert!(
        sage_of(&stack, "oauth-a").await.is_null(),
        "{CROSSING} B's confirmation connected A"
    );
    // Without the CSRF token A's own session cannot confirm either.
    let response = post_form(
        &stack,
        "/portal/sage/confirm",
        Some(&a.cookie),
        &[("pending", &pending), ("business", &own.id)],
    )
    .await;
    assert_eq!(response.status().as_u16(), 403);
    assert!(sage_of(&stack, "oauth-a").await.is_null());

    // A confirms: now, and only now, A is connected to its own business.
    let response = post_form(
        &stack,
        "/portal/sage/confirm",
        Some(&a.cookie),
        &[
            ("csrf", &a.csrf),
            ("pending", &pending),
            ("business", &own.id),
        ],
    )
    .await;
    assert_eq!(location(&response), "/portal?notice=connected");
    assert_eq!(
        sage_of(&stack, "oauth-a").await["business_id"],
        own.id.as_str()
    );
    assert!(
        sage_of(&stack, "oauth-b").await.is_null(),
        "{CROSSING} A's connection stored for B"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pairing_phishing_shows_the_store_and_claims_nothing_until_confirmed() {
    let (stack, _nats, _db) = stack().await;
    register(&stack, "phished").await;
    let portal = sign_in(&stack, "phished").await;
    // A stranger's store asks for a code and talks the merchant into entering it.
    let response = request_pairing(&stack, None, "https://not-your-shop.example").await;
    assert_eq!(response.status().as_u16(), 201);
    let pairing: Value = response.json().await.unwrap();
    let code = pairing["code"].as_str().unwrap();
    let poll = || poll_pairing(&stack, &pairing);

    let response = post_code(&stack, &portal, "/portal/pair", code).await;
    assert_eq!(
        response.status().as_u16(),
        200,
        "a page to confirm, not a claim"
    );
    let page = response.text().await.unwrap();
    assert!(
        page.contains("not-your-shop.example"),
        "the store URL: {page}"
    );
    assert!(
        page.contains("Phish &#38; Chips"),
        "the store name, escaped: {page}"
    );
    assert!(page.contains("minutes ago"), "the request time: {page}");
    let (_, state) = poll().await;
    assert_eq!(
        state["state"], "pending",
        "{CROSSING} entering the code gave the stranger's store the merchant's key"
    );

    // The merchant walks away (Cancel is a plain link): the store never gets a key.
    let (_, state) = poll().await;
    assert_eq!(
        state["state"], "pending",
        "{CROSSING} the stranger's store got the merchant's key"
    );
    // A forged confirmation without the session's CSRF token claims nothing.
    let response = post_form(
        &stack,
        "/portal/pair/confirm",
        Some(&portal.cookie),
        &[("code", code)],
    )
    .await;
    assert_eq!(response.status().as_u16(), 403);
    let (_, state) = poll().await;
    assert_eq!(
        state["state"], "pending",
        "{CROSSING} a forged confirmation gave the stranger's store the merchant's key"
    );

    // Only the merchant's confirmation claims it.
    let response = post_code(&stack, &portal, "/portal/pair/confirm", code).await;
    assert_eq!(location(&response), "/portal?notice=paired");
    let (status, state) = poll().await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["merchant_id"], "phished");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_csrf_get_neither_uses_the_link_nor_signs_in() {
    let (stack, _nats, _db) = stack().await;
    register(&stack, "csrf-victim").await;
    let link = portal_link(&stack, "csrf-victim").await;
    let path = link.trim_start_matches(&stack.gateway_url).to_string();

    // Opening the link (an <img>, a prefetch, a click in a phishing mail) changes nothing.
    for _ in 0..2 {
        let response = http()
            .get(format!("{}{path}", stack.gateway_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert!(set_cookie(&response).is_none(), "no session from a GET");
        let page = response.text().await.unwrap();
        assert!(
            page.contains("id=\"sign-in\""),
            "a button to confirm: {page}"
        );
        assert!(page.contains("Shop csrf-victim"), "whose portal: {page}");
    }
    // Another site's page submitting the form is refused, and the link still works.
    let token = token_of(&link);
    let response = http()
        .post(format!("{}/portal/login", stack.gateway_url))
        .header("origin", "https://attacker.example")
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    assert!(set_cookie(&response).is_none());
    // The same from a browser that says so in Sec-Fetch-Site (its Origin hidden as "null").
    let response = http()
        .post(format!("{}/portal/login", stack.gateway_url))
        .header("origin", "null")
        .header("sec-fetch-site", "cross-site")
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    assert!(set_cookie(&response).is_none());
    let (status, _) = get_page(&stack, &path, None).await;
    assert_eq!(status, 200, "the link is still unused");

    // The confirming POST uses the link up and signs in.
    let response = http()
        .post(format!("{}/portal/login", stack.gateway_url))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let cookie = set_cookie(&response).expect("session cookie");
    let (status, page) = get_page(&stack, "/portal", Some(&cookie)).await;
    assert_eq!(status, 200);
    assert!(page.contains("csrf-victim"));
    let (_, page) = get_page(&stack, &path, None).await;
    assert!(page.contains("This sign-in link is not valid"), "{page}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pairing_flood_from_one_address_leaves_room_for_others() {
    let (stack, _nats, _db) = stack().await;
    let flooder = "203.0.113.7";
    for i in 0..3 {
        let response = request_pairing(&stack, Some(flooder), "https://flood.example").await;
        assert_eq!(response.status().as_u16(), 201, "pairing {i}");
    }
    let response = request_pairing(&stack, Some(flooder), "https://flood.example").await;
    assert_eq!(response.status().as_u16(), 429);
    assert!(retry_after(&response).is_some_and(|s| s >= 1));
    let (_, body) = json_of(response).await;
    assert_eq!(body["error"], "rate_limited");
    assert_eq!(body["limit"], "open_pairings_per_ip");
    // Another store, from another address, still pairs.
    let response = request_pairing(&stack, Some("198.51.100.20"), "https://honest.example").await;
    assert_eq!(response.status().as_u16(), 201);
    // A header from an untrusted peer would not help the flooder: only the trusted proxy's
    // X-Forwarded-For counts (unit-tested in gateway::limits); here the proxy itself, with no
    // header, is one more client.
    let response = request_pairing(&stack, None, "https://direct.example").await;
    assert_eq!(response.status().as_u16(), 201);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limit_per_key_on_ingest_and_status_spares_other_merchants() {
    let (stack, _nats, _db) = stack().await;
    let hammer = register(&stack, "hammer").await;
    let other = register(&stack, "bystander").await;
    let status = |key: String| {
        let url = format!("{}/v1/status", stack.gateway_url);
        async move { http().get(url).bearer_auth(key).send().await.unwrap() }
    };
    let mut limited = None;
    for _ in 0..30 {
        let response = status(hammer.clone()).await;
        if response.status().as_u16() == 429 {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status().as_u16(), 200);
    }
    let limited = limited.expect("the hammering key is limited");
    assert!(retry_after(&limited).is_some_and(|s| s >= 1));
    let (_, body) = json_of(limited).await;
    assert_eq!(body["error"], "rate_limited");
    assert_eq!(body["limit"], "per_key");
    // Ingest shares the key's budget.
    let response = http()
        .post(format!("{}/v1/events", stack.gateway_url))
        .bearer_auth(&hammer)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    // Another merchant from the same address is unaffected.
    let response = status(other.clone()).await;
    assert_eq!(response.status().as_u16(), 200);
    let event = ledger_stack::events::Draft::invoice("bystander", 1).build();
    let response = http()
        .post(format!("{}/v1/events", stack.gateway_url))
        .bearer_auth(&other)
        .header("content-type", "application/json")
        .body(event.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limit_per_address_on_pairing_polls_spares_other_addresses() {
    let (stack, _nats, _db) = stack().await;
    let poll = |from: &'static str| {
        let url = format!(
            "{}/v1/pairings/pr_000000000000000000000000",
            stack.gateway_url
        );
        async move {
            http()
                .get(url)
                .header("x-forwarded-for", from)
                .bearer_auth("guess")
                .send()
                .await
                .unwrap()
        }
    };
    // Volleys of twenty polls at once outrun the address's refill however slow each answer is.
    let mut limited = None;
    for _ in 0..20 {
        let volley = futures::future::join_all((0..20).map(|_| poll("192.0.2.66"))).await;
        for response in volley {
            if response.status().as_u16() == 429 {
                limited.get_or_insert(response);
            } else {
                assert_eq!(response.status().as_u16(), 404);
            }
        }
        if limited.is_some() {
            break;
        }
    }
    let limited = limited.expect("the hammering address is limited");
    assert!(retry_after(&limited).is_some_and(|s| s >= 1));
    let (_, body) = json_of(limited).await;
    assert_eq!(body["limit"], "per_ip");
    assert_eq!(poll("192.0.2.67").await.status().as_u16(), 404);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_token_short_is_refused_at_start_and_compared_whole() {
    let (stack, nats, db) = stack().await;
    let started = gateway::start(
        gateway_config(&nats, &db, "short-admin-token"),
        ledger_runtime::shutdown::Shutdown::new(),
    )
    .await;
    let error = started.err().expect("a short admin token is refused");
    assert!(
        error.to_string().contains("LEDGER_ADMIN_TOKEN"),
        "{error:#}"
    );
    // The running gateway takes its token and nothing else: not a prefix, not a longer one.
    for wrong in [
        &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1],
        &format!("{ADMIN_TOKEN}x"),
        "",
    ] {
        let response = http()
            .get(format!("{}/v1/admin/merchants/x", stack.gateway_url))
            .bearer_auth(wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{wrong:?}");
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn error_leak_answers_hold_no_database_or_nats_text() {
    let (stack, _nats, db) = stack().await;
    let key = register(&stack, "leaky").await;
    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    sqlx::query("ALTER TABLE gateway.pairings RENAME TO pairings_away")
        .execute(&pool)
        .await
        .unwrap();
    let leaks = |body: &str| {
        let lower = body.to_lowercase();
        [
            "pairings",
            "relation \"",
            "does not exist",
            "database",
            "sql",
            "postgres",
            "jetstream",
            "nats",
            "stream",
            "consumer",
        ]
        .into_iter()
        .filter(|needle| lower.contains(needle))
        .collect::<Vec<_>>()
    };
    let response = request_pairing(&stack, None, "https://shop.example").await;
    assert_eq!(response.status().as_u16(), 503);
    let body = response.text().await.unwrap();
    assert!(leaks(&body).is_empty(), "{:?} in {body}", leaks(&body));
    assert!(body.contains("correlation_id"), "{body}");
    sqlx::query("ALTER TABLE gateway.pairings_away RENAME TO pairings")
        .execute(&pool)
        .await
        .unwrap();

    // The operator's side too: the sign-in links table is gone.
    sqlx::query("ALTER TABLE gateway.portal_links RENAME TO portal_links_away")
        .execute(&pool)
        .await
        .unwrap();
    let response = http()
        .post(format!(
            "{}/v1/admin/merchants/leaky/portal-links",
            stack.gateway_url
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    let body = response.text().await.unwrap();
    assert!(leaks(&body).is_empty(), "{:?} in {body}", leaks(&body));
    assert!(body.contains("correlation_id"), "{body}");

    // The status feed's table is gone.
    sqlx::query("ALTER TABLE gateway.status_feed RENAME TO status_feed_away")
        .execute(&pool)
        .await
        .ok();
    let response = http()
        .get(format!("{}/v1/status", stack.gateway_url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    let body = response.text().await.unwrap();
    assert!(leaks(&body).is_empty(), "{:?} in {body}", leaks(&body));

    // NATS: the events stream is gone, so ingest cannot append.
    let js = async_nats::jetstream::new(stack.nats.clone());
    js.delete_stream(ledger_runtime::bus::EVENTS_STREAM)
        .await
        .unwrap();
    let event = ledger_stack::events::Draft::invoice("leaky", 1).build();
    let response = http()
        .post(format!("{}/v1/events", stack.gateway_url))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(event.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    let body = response.text().await.unwrap();
    assert!(leaks(&body).is_empty(), "{:?} in {body}", leaks(&body));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_not_public_only_on_the_metrics_listener() {
    let (stack, _nats, _db) = stack().await;
    let public = http()
        .get(format!("{}/metrics", stack.gateway_url))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status().as_u16(), 404);
    let health = http()
        .get(format!("{}/healthz", stack.gateway_url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    assert_ne!(
        stack.metrics[0].to_string(),
        stack.gateway_url.trim_start_matches("http://"),
        "metrics on their own listener"
    );
    let metrics = http()
        .get(format!("http://{}/metrics", stack.metrics[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status().as_u16(), 200);
    assert!(metrics.text().await.unwrap().contains("ledger_"));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_cursor_out_of_range_is_refused_naming_cursor() {
    let (stack, _nats, _db) = stack().await;
    let key = register(&stack, "cursor-shop").await;
    for cursor in [
        "-1",
        "18446744073709551615",
        "99999999999999999999999",
        "1e3",
        "abc",
    ] {
        let response = http()
            .get(format!("{}/v1/status", stack.gateway_url))
            .bearer_auth(&key)
            .query(&[("cursor", cursor)])
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, 422, "cursor {cursor}: {body}");
        assert_eq!(body["issues"][0]["field"], "cursor", "{body}");
    }
    // The gateway still answers.
    let response = http()
        .get(format!("{}/v1/status", stack.gateway_url))
        .bearer_auth(&key)
        .query(&[("cursor", "9223372036854775807")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    stack.stop().await;
}

/// The feed of `key`'s merchant after `cursor`, waiting (up to a minute) until it holds `n`
/// items. The polls count against the key's request budget: a 429 is waited out as its
/// `Retry-After` says.
async fn feed_cursors(stack: &Stack, key: &str, cursor: u64, n: usize) -> Vec<u64> {
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(60) {
        let response = http()
            .get(format!("{}/v1/status", stack.gateway_url))
            .bearer_auth(key)
            .query(&[("cursor", cursor.to_string())])
            .send()
            .await
            .unwrap();
        if response.status().as_u16() == 429 {
            let wait = retry_after(&response).expect("a 429 says when to retry");
            tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
            continue;
        }
        let (status, page) = json_of(response).await;
        assert_eq!(status, 200, "{page}");
        let cursors: Vec<u64> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["cursor"].as_u64().unwrap())
            .collect();
        if cursors.len() >= n {
            return cursors;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the feed never held {n} items after {cursor}");
}

fn status_change(n: u64) -> ledger_runtime::status::StatusUpdate {
    serde_json::from_value(json!({
        "entity": "invoice",
        "document_key": format!("invoice:1:{n:09}"),
        "state": "synced",
        "service": "documents",
        "at": "2026-12-01T10:00:00Z",
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_cursor_reveals_nothing_of_another_merchants_volume() {
    let (stack, _nats, _db) = stack().await;
    let a = register(&stack, "quiet-shop").await;
    let b = register(&stack, "busy-shop").await;
    let js = async_nats::jetstream::new(stack.nats.clone());
    // The services report one change for A, then a hundred for B, then one more for A.
    ledger_runtime::status::publish(&js, "quiet-shop", &status_change(1)).await;
    let first = feed_cursors(&stack, &a, 0, 1).await;
    for n in 0..100 {
        ledger_runtime::status::publish(&js, "busy-shop", &status_change(n)).await;
    }
    ledger_runtime::status::publish(&js, "quiet-shop", &status_change(2)).await;
    let second = feed_cursors(&stack, &a, first[0], 1).await;
    assert_eq!(
        second[0],
        first[0] + 1,
        "{CROSSING} A's cursor moved by B's changes (first {first:?}, then {second:?})"
    );
    // B's feed counts B's changes only, and B cannot read A's.
    let b_cursors = feed_cursors(&stack, &b, 0, 100).await;
    assert_eq!(b_cursors.len(), 100, "{CROSSING} B's feed: {b_cursors:?}");
    assert_eq!(b_cursors[0], first[0], "both count from the same start");
    let all_a = feed_cursors(&stack, &a, 0, 2).await;
    assert_eq!(
        all_a.len(),
        2,
        "{CROSSING} A's feed holds more than its own two changes: {all_a:?}"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn books_check_flood_is_throttled_per_merchant() {
    let (stack, _nats, _db) = stack().await;
    stack.onboard("books-a").await.unwrap();
    stack.onboard("books-b").await.unwrap();
    let a = sign_in(&stack, "books-a").await;
    let b = sign_in(&stack, "books-b").await;
    let (status, page) = get_page(&stack, "/portal/books", Some(&a.cookie)).await;
    assert_eq!(status, 200, "{page}");
    let response = http()
        .get(format!("{}/portal/books", stack.gateway_url))
        .header("cookie", &a.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert!(retry_after(&response).is_some_and(|s| s > 60));
    let page = response.text().await.unwrap();
    assert!(page.contains("can run again at"), "{page}");
    // Another merchant's check is not held up by A's.
    let (status, page) = get_page(&stack, "/portal/books", Some(&b.cookie)).await;
    assert_eq!(status, 200, "{page}");
    stack.stop().await;
}

/// The markup a hostile name carries.
const SCRIPT: &str = "<script>alert(1)</script>";
/// [`SCRIPT`] as the portal's templates escape it (numeric character references).
const SCRIPT_ESCAPED: &str = "&#60;script&#62;alert(1)&#60;/script&#62;";

/// Asserts that `page` shows [`SCRIPT`] as text, escaped, and nowhere as markup.
fn shows_escaped(page: &str, what: &str) {
    assert!(
        page.contains(SCRIPT_ESCAPED),
        "{what}: the name is shown, escaped: {page}"
    );
    assert!(!page.contains("<script"), "{what}: no script tag: {page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn script_in_names_comes_out_escaped_on_every_page() {
    let (stack, _nats, _db) = stack().await;
    let (status, body) = json_of(
        http()
            .post(format!("{}/v1/admin/merchants", stack.gateway_url))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"merchant_id": "scripted", "name": SCRIPT}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // The sign-in link's page names the merchant.
    let link = portal_link(&stack, "scripted").await;
    let (status, page) = get_page(
        &stack,
        &format!("/portal/login?token={}", token_of(&link)),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    shows_escaped(&page, "sign-in page");

    // The front page names it in its title and heading.
    let portal = sign_in(&stack, "scripted").await;
    let (status, page) = get_page(&stack, "/portal", Some(&portal.cookie)).await;
    assert_eq!(status, 200, "{page}");
    shows_escaped(&page, "front page");
    assert!(
        page.contains(&format!("<title>{SCRIPT_ESCAPED} · Ledger</title>")),
        "title escaped: {page}"
    );

    // A store named with markup: the pairing confirmation shows the name...
    let response = http()
        .post(format!("{}/v1/pairings", stack.gateway_url))
        .json(&json!({"store_name": SCRIPT, "module_version": "9.9.9"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let pairing: Value = response.json().await.unwrap();
    let code = pairing["code"].as_str().unwrap();
    let response = post_code(&stack, &portal, "/portal/pair", code).await;
    assert_eq!(response.status().as_u16(), 200);
    shows_escaped(&response.text().await.unwrap(), "pairing confirmation");
    let response = post_code(&stack, &portal, "/portal/pair/confirm", code).await;
    assert_eq!(location(&response), "/portal?notice=paired");
    // ...and, once the store has collected its key, the list of stores.
    let (status, state) = poll_pairing(&stack, &pairing).await;
    assert_eq!(status, 200, "{state}");
    let (_, page) = get_page(&stack, "/portal", Some(&portal.cookie)).await;
    assert!(page.contains("id=\"keys\""), "a store is listed: {page}");
    let stores = &page[page.find("id=\"keys\"").unwrap()..];
    shows_escaped(stores, "list of stores");

    // A Sage business named with markup: the connection's confirmation shows both names.
    let business = stack
        .sandbox
        .create_business(BusinessSpec {
            name: SCRIPT.into(),
            ..BusinessSpec::default()
        })
        .await;
    let state = start_connect(&stack, &portal).await;
    let code = stack.sandbox.issue_authorization_code(&business.id).await;
    let (status, page) = callback(&stack, &state, &code, Some(&portal.cookie)).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page.matches(SCRIPT_ESCAPED).count(),
        2,
        "the merchant's and the business's name: {page}"
    );
    shows_escaped(&page, "Sage confirmation");
    stack.stop().await;
}
