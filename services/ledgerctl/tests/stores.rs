//! `ledgerctl portal-link`, `merchant pair`, `merchant keys` and `merchant revoke-key` against a
//! running gateway: the operator onboards a merchant's store end to end from the command line.

mod common;

use ledger_stack::{Stack, StackOptions};
use ledger_testkit::{TestDb, TestNats};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_operator_pairs_lists_and_revokes_a_store_key() {
    let nats = TestNats::start().await.unwrap();
    let db = TestDb::create().await.unwrap();
    let stack = Stack::start(StackOptions::new(nats.url(), db.url()))
        .await
        .unwrap();
    stack.onboard("cli-shop").await.unwrap();
    let gw = stack.gateway_url.clone();
    let http = reqwest::Client::new();

    let (ok, out) = ledgerctl(&gw, &["portal-link", "cli-shop"]).await;
    assert!(ok, "{out}");
    assert!(out.contains(&format!("{gw}/portal/login?token=")), "{out}");
    let (ok, out) = ledgerctl(&gw, &["portal-link", "no-such-shop"]).await;
    assert!(!ok, "{out}");

    // The store asks for a code; the operator enters it for the merchant.
    let pairing: Value = http
        .post(format!("{gw}/v1/pairings"))
        .json(&json!({"store_name": "CLI Shop"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = pairing["code"].as_str().unwrap();
    let (ok, out) = ledgerctl(&gw, &["merchant", "pair", "cli-shop", "--code", code]).await;
    assert!(ok && out.contains("\"claimed\""), "{out}");
    let (ok, out) = ledgerctl(&gw, &["merchant", "pair", "cli-shop", "--code", code]).await;
    assert!(!ok && out.contains("pairing_code_used"), "{out}");

    let paired: Value = http
        .get(format!(
            "{gw}/v1/pairings/{}",
            pairing["pairing_id"].as_str().unwrap()
        ))
        .bearer_auth(pairing["poll_secret"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key_id = paired["credentials"]["key_id"].as_str().unwrap();
    let secret = paired["credentials"]["secret"].as_str().unwrap();

    let (ok, out) = ledgerctl(&gw, &["merchant", "keys", "cli-shop"]).await;
    assert!(
        ok && out.contains(key_id) && out.contains("CLI Shop"),
        "{out}"
    );
    assert!(!out.contains(secret), "the secret is never shown again");

    let (ok, out) = ledgerctl(&gw, &["merchant", "revoke-key", "cli-shop", key_id]).await;
    assert!(ok && out.contains("\"revoked\": true"), "{out}");
    let status = http
        .get(format!("{gw}/v1/status"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 401);
    let (ok, out) = ledgerctl(&gw, &["merchant", "keys", "cli-shop"]).await;
    assert!(ok && out.contains("\"revoked_by\": \"operator\""), "{out}");
    stack.stop().await;
}

#[tokio::test]
async fn nats_issuer_prints_a_matching_account_key_pair() {
    let (ok, out) = ledgerctl("http://127.0.0.1:9", &["nats-issuer"]).await;
    assert!(ok, "{out}");
    let value = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} in {out}"))
            .to_string()
    };
    let public = value("LEDGER_NATS_CALLOUT_ISSUER");
    let seed = value("LEDGER_NATS_CALLOUT_ISSUER_SEED");
    assert!(public.starts_with('A') && seed.starts_with("SA"), "{out}");
    let pair = nkeys::KeyPair::from_seed(&seed).unwrap();
    assert_eq!(pair.public_key(), public);
    // The callout's curve key, and a distinct password for each service's NATS user.
    let xkey = nkeys::XKey::from_seed(&value("LEDGER_NATS_CALLOUT_XKEY_SEED")).unwrap();
    assert_eq!(xkey.public_key(), value("LEDGER_NATS_CALLOUT_XKEY"));
    let passwords: std::collections::HashSet<String> =
        ["GATEWAY", "CONTACTS", "DOCUMENTS", "PAYMENTS", "OPERATOR"]
            .iter()
            .map(|user| value(&format!("LEDGER_NATS_{user}_PASSWORD")))
            .collect();
    assert_eq!(passwords.len(), 5, "{out}");
    assert!(passwords.iter().all(|p| p.len() >= 32), "{out}");
}

async fn ledgerctl(gateway: &str, args: &[&str]) -> (bool, String) {
    let mut all = vec![
        "--gateway",
        gateway,
        "--admin-token",
        ledger_stack::ADMIN_TOKEN,
    ];
    all.extend_from_slice(args);
    common::ledgerctl(&all, &[]).await
}
