//! OAuth: authorisation, code exchange, rotation, revocation, bearer checks.

mod common;

use common::*;
use reqwest::StatusCode;
use sage_sandbox::{BusinessSpec, SandboxConfig};
use serde_json::Value;
use std::time::Duration;

async fn refresh(http: &reqwest::Client, url: &str, token: &str) -> (StatusCode, Value) {
    let r = http
        .post(url)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

#[tokio::test]
async fn authorize_redirects_with_code_and_state_then_code_is_single_use() {
    let sandbox = start().await;
    let business = sandbox.create_business(BusinessSpec::default()).await;
    let http = client();
    let r = http
        .get(sandbox.authorize_url())
        .query(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", "http://localhost/callback"),
            ("state", "xyz 1"),
            ("scope", "full_access"),
            ("business", &business.id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let url = reqwest::Url::parse(&location).unwrap();
    assert_eq!(url.path(), "/callback");
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "xyz 1");
    assert_eq!(q["country"], "GB");
    let code = q["code"].clone();
    assert!(code.starts_with("GB/"), "{code}");

    let tokens = exchange_code(&http, &sandbox, &code).await;
    assert_eq!(tokens["expires_in"], 300);
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["refresh_token_expires_in"], 2_678_400);
    assert_eq!(tokens["scope"], "full_access");
    assert_eq!(tokens["requested_by_id"], business.user_id.as_str());

    // Single use.
    let r = http
        .post(sandbox.token_url())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("redirect_uri", "http://localhost/callback"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(body["error_description"].as_str().is_some());

    // Redirect URI bound at authorisation must match at exchange.
    let r = http
        .get(sandbox.authorize_url())
        .query(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", "http://localhost/a"),
            ("business", &business.id),
        ])
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let code = reqwest::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let r = http
        .post(sandbox.token_url())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("redirect_uri", "http://localhost/b"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn refresh_rotates_and_reuse_is_invalid_grant() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let (s, first) = refresh(&api.http, &sandbox.token_url(), &api.refresh_token).await;
    assert_eq!(s, StatusCode::OK);
    let new_rt = first["refresh_token"].as_str().unwrap();
    assert_ne!(new_rt, api.refresh_token);
    assert_ne!(first["access_token"], Value::String(api.token.clone()));

    // The used refresh token is dead now.
    let (s, body) = refresh(&api.http, &sandbox.token_url(), &api.refresh_token).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    // The newest works, and the new access token is accepted.
    let (s, second) = refresh(&api.http, &sandbox.token_url(), new_rt).await;
    assert_eq!(s, StatusCode::OK);
    let r = api
        .http
        .get(format!("{}/contacts", sandbox.api_base_url()))
        .bearer_auth(second["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let stats = sandbox.inspect().stats_for(&api.business.id);
    assert_eq!(stats.refreshes(), 2);
    assert_eq!(stats.refresh_attempts(), 3);
    assert_eq!(stats.count("POST", "/oauth/token"), 4); // code exchange + 3 refreshes
    assert_eq!(sandbox.inspect().refresh_count(), 2);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn basic_client_auth_and_bad_client() {
    let sandbox = start().await;
    let business = sandbox.create_business(BusinessSpec::default()).await;
    let http = client();
    let code = sandbox.issue_authorization_code(&business.id).await;
    let r = http
        .post(sandbox.token_url())
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let code = sandbox.issue_authorization_code(&business.id).await;
    let r = http
        .post(sandbox.token_url())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", CLIENT_ID),
            ("client_secret", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");

    let r = http
        .post(sandbox.token_url())
        .form(&[
            ("grant_type", "password"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_grant_type");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn api_requires_bearer_token() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let r = api
        .http
        .get(format!("{}/contacts", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("x_request_id"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body[0]["$dataCode"], "AuthorizationFailure");
    assert_eq!(body[0]["$severity"], "error");

    let r = api
        .http
        .get(format!("{}/contacts", api.base))
        .bearer_auth("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(api.get("/contacts").await.status, StatusCode::OK);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn access_token_expires_and_refresh_recovers() {
    let sandbox = start_with(SandboxConfig {
        access_token_ttl: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let api = uk(&sandbox).await;
    assert_eq!(api.get("/contacts").await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = api.get("/contacts").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.message().contains("expired"), "{}", r.body);

    let (s, _) = refresh(&api.http, &sandbox.token_url(), &api.refresh_token).await;
    assert_eq!(s, StatusCode::OK);

    // Forced expiry through the in-process API.
    let api = uk(&sandbox).await;
    assert_eq!(sandbox.expire_access_tokens(&api.business.id), 1);
    assert_eq!(api.get("/contacts").await.status, StatusCode::UNAUTHORIZED);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn revoke_endpoint_and_admin_revocation() {
    let sandbox = start().await;
    let api = uk(&sandbox).await;
    let r = api
        .http
        .post(sandbox.revoke_url())
        .form(&[
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("token", api.refresh_token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"success": "ok"}));
    assert_eq!(api.get("/contacts").await.status, StatusCode::UNAUTHORIZED);
    let (s, body) = refresh(&api.http, &sandbox.token_url(), &api.refresh_token).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    // Over HTTP through the admin API.
    let api = uk(&sandbox).await;
    assert_eq!(api.get("/contacts").await.status, StatusCode::OK);
    let r: Value = api
        .http
        .post(format!(
            "{}/businesses/{}/revoke_tokens",
            sandbox.admin_url(),
            api.business.id
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["revoked"], 1);
    assert_eq!(api.get("/contacts").await.status, StatusCode::UNAUTHORIZED);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn x_business_selects_and_defaults_to_lead() {
    let sandbox = start().await;
    let lead = sandbox
        .create_business(BusinessSpec {
            name: "Lead Ltd".into(),
            ..Default::default()
        })
        .await;
    let second = sandbox
        .create_business(BusinessSpec {
            name: "Second Ltd".into(),
            user_id: Some(lead.user_id.clone()),
            ..Default::default()
        })
        .await;
    let stranger = sandbox
        .create_business(BusinessSpec {
            name: "Other user".into(),
            ..Default::default()
        })
        .await;
    let api = connect_to(&sandbox, second.clone()).await;

    // Without X-Business: the user's lead business.
    let r = api
        .http
        .get(format!("{}/financial_settings", api.base))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-business"], lead.id.as_str());

    let r = api.get("/financial_settings").await;
    assert_eq!(r.headers["x-business"], second.id.as_str());
    assert_eq!(r.body["base_currency"]["id"], "GBP");
    assert_eq!(r.body["multi_currency_enabled"], true);

    let r = api.get("/businesses").await;
    assert_eq!(r.body["$total"], 2);
    let r = api.get("/businesses/lead").await;
    assert_eq!(r.body["id"], lead.id.as_str());
    let r = api.get(&format!("/businesses/{}", second.id)).await;
    assert_eq!(r.body["name"], "Second Ltd");
    assert_eq!(r.body["subscriptions"][0]["active"], true);

    let r = api
        .http
        .get(format!("{}/contacts", api.base))
        .bearer_auth(&api.token)
        .header("X-Business", &stranger.id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Every response carries a fresh x_request_id.
    let a = api.get("/contacts").await;
    let b = api.get("/contacts").await;
    assert_ne!(a.headers["x_request_id"], b.headers["x_request_id"]);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn pkce_s256_is_enforced() {
    let sandbox = start().await;
    let business = sandbox.create_business(BusinessSpec::default()).await;
    let http = client();
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let get_code = || async {
        let r = http
            .get(sandbox.authorize_url())
            .query(&[
                ("response_type", "code"),
                ("client_id", CLIENT_ID),
                ("redirect_uri", "http://localhost/callback"),
                ("business", business.id.as_str()),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .unwrap();
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        reqwest::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned()
    };
    let code = get_code().await;
    let form = |code: &str, verifier: &str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("client_id", CLIENT_ID.to_owned()),
            ("client_secret", CLIENT_SECRET.to_owned()),
            ("redirect_uri", "http://localhost/callback".to_owned()),
            ("code_verifier", verifier.to_owned()),
        ]
    };
    let r = http
        .post(sandbox.token_url())
        .form(&form(&code, "wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let code = get_code().await;
    let r = http
        .post(sandbox.token_url())
        .form(&form(&code, verifier))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    sandbox.shutdown().await;
}
