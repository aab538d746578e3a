//! Hostile tenants and stolen service credentials against NATS, on a server run with the
//! shipped configuration (`deploy/nats/nats-server.conf`: one user per service, stores in
//! their own account, admitted by the gateway's auth callout) and the whole engine.
//!
//! Each test is one attack; its assertions prove the attack was refused and that nothing
//! crossed between tenants (a store secret, a Sage token, a message on another merchant's
//! subjects or inbox).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::stores::*;

use futures::StreamExt;
use ledger_stack::{Stack, CROSSING};
use ledger_testkit::{TestDb, TestNats};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

async fn stack(name: &'static str) -> (Stack, TestNats, TestDb) {
    secured_stack(name, 300).await
}

/// URL with the credentials `service` runs with.
fn credentials_of(nats: &TestNats, service: &str) -> String {
    nats.service_url(service)
}

/// Connects with the credentials a service runs with (as a thief of them would).
async fn service_client(nats: &TestNats, service: &str) -> (async_nats::Client, Events) {
    let url = credentials_of(nats, service);
    let (_, credentials) = ledger_runtime::bus::split_credentials(&url);
    let (user, password) = credentials.expect("the secured server's URLs carry credentials");
    client(&url, &user, &password, &format!("_INBOX_{user}"))
        .await
        .expect("the service's credentials log in")
}

/// Server errors seen so far, waiting up to `wait` for the first.
async fn events_within(rx: &mut Events, wait: Duration) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        seen.push(event);
    }
    seen
}

/// Every message a subscription receives within `wait`.
async fn received(sub: &mut async_nats::Subscriber, wait: Duration) -> Vec<async_nats::Message> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, sub.next()).await {
        got.push(message);
    }
    got
}

/// Whether `needle` can be read from `payload`: in clear, or inside a base64url part of a JWT.
fn exposes(payload: &[u8], needle: &str) -> bool {
    let text = String::from_utf8_lossy(payload);
    if text.contains(needle) {
        return true;
    }
    text.split(['.', '\r', '\n', ' ']).any(|part| {
        data_encoding::BASE64URL_NOPAD
            .decode(part.trim_end_matches('=').as_bytes())
            .is_ok_and(|d| String::from_utf8_lossy(&d).contains(needle))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callout_snoop_with_consumer_credentials_sees_no_store_secret() {
    let (stack, nats, _db) = stack("attack-callout-snoop").await;
    stack.onboard("snooped").await.unwrap();
    let key = pair(&stack, "snooped").await;

    // A thief of each consumer service's and the operator's credentials listens where store
    // logins travel, and everywhere else it can.
    let mut snoops = Vec::new();
    for service in ["contacts", "documents", "payments", "operator"] {
        let (snooper, events) = service_client(&nats, service).await;
        let callout = snooper
            .subscribe(gateway::nats_auth::CALLOUT_SUBJECT)
            .await
            .unwrap();
        let everything = snooper.subscribe(">").await.unwrap();
        snooper.flush().await.unwrap();
        snoops.push((service, snooper, events, callout, everything));
    }

    // The store logs in (twice) while they listen.
    for _ in 0..2 {
        let (store, _) = store_client(&key).await.expect("the store logs in");
        store.flush().await.unwrap();
        drop(store);
    }

    for (service, _snooper, mut events, mut callout, mut everything) in snoops {
        let seen = received(&mut callout, Duration::from_millis(500)).await;
        let all = received(&mut everything, Duration::from_millis(200)).await;
        let leaked = seen
            .iter()
            .chain(&all)
            .filter(|m| exposes(&m.payload, &key.secret))
            .count();
        assert_eq!(
            leaked,
            0,
            "{CROSSING} {service}'s credentials read a store's secret from {} login requests",
            seen.len()
        );
        assert!(
            seen.is_empty(),
            "{CROSSING} {service}'s credentials received {} login requests",
            seen.len()
        );
        let refusals = events_within(&mut events, Duration::from_secs(2)).await;
        assert!(
            refusals.iter().any(|e| e.contains("Permissions Violation")
                && e.contains(gateway::nats_auth::CALLOUT_SUBJECT)),
            "{service}: no permission refusal for the callout subject: {refusals:?}"
        );
        println!("callout_snoop: {service} refused: {refusals:?}");
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callout_snoop_with_gateway_credentials_sees_only_sealed_requests() {
    let (stack, nats, _db) = stack("attack-callout-sealed").await;
    stack.onboard("sealed").await.unwrap();
    let key = pair(&stack, "sealed").await;
    // The gateway's NATS password alone (without the callout's curve key) subscribes beside
    // the real callout.
    let (snooper, _events) = service_client(&nats, "gateway").await;
    let mut callout = snooper
        .subscribe(gateway::nats_auth::CALLOUT_SUBJECT)
        .await
        .unwrap();
    snooper.flush().await.unwrap();
    let (store, _) = store_client(&key).await.expect("the store logs in");
    store.flush().await.unwrap();
    let seen = received(&mut callout, Duration::from_millis(500)).await;
    assert!(!seen.is_empty(), "the login request was not seen at all");
    for message in &seen {
        assert!(
            !exposes(&message.payload, &key.secret),
            "{CROSSING} the store's secret travels readable on {}",
            gateway::nats_auth::CALLOUT_SUBJECT
        );
        assert!(
            !message.payload.starts_with(b"eyJ"),
            "{CROSSING} the login request travels as a readable JWT"
        );
        assert!(
            message
                .headers
                .as_ref()
                .and_then(|h| h.get(gateway::nats_auth::SERVER_XKEY_HEADER))
                .is_some(),
            "the request is not sealed to the callout's xkey"
        );
    }
    println!(
        "callout_snoop: {} sealed login request(s), secret not readable",
        seen.len()
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_theft_by_consumer_credentials_and_store_keys_is_refused() {
    let (stack, nats, _db) = stack("attack-token-theft").await;
    let victim = stack.onboard("victim").await.unwrap();
    stack.onboard("thief").await.unwrap();
    let thief_key = pair(&stack, "thief").await;

    // contacts' credentials try to read the token grants the gateway sends to documents and
    // payments, and to stand in for the token service.
    let (contacts, mut events) = service_client(&nats, "contacts").await;
    let mut inboxes = contacts.subscribe("_INBOX.>").await.unwrap();
    let mut documents_inbox = contacts.subscribe("_INBOX_documents.>").await.unwrap();
    let mut gateway_inbox = contacts.subscribe("_INBOX_gateway.>").await.unwrap();
    let mut token_service = contacts.subscribe(ledger_rpc::TOKEN_SUBJECT).await.unwrap();
    contacts.flush().await.unwrap();

    // The victim's invoice makes documents ask for the victim's token.
    let event = ledger_stack::events::invoice_created("victim", 1);
    assert_eq!(stack.post_event(&victim, &event.body).await.unwrap().0, 202);
    assert!(
        stack
            .wait_until(Duration::from_secs(30), || !stack
                .documents(&victim, "sales_invoices")
                .is_empty())
            .await,
        "the victim's invoice did not reach Sage"
    );
    let mut stolen = 0;
    for sub in [
        &mut inboxes,
        &mut documents_inbox,
        &mut gateway_inbox,
        &mut token_service,
    ] {
        stolen += received(sub, Duration::from_millis(300))
            .await
            .iter()
            .filter(|m| exposes(&m.payload, "access_token") || exposes(&m.payload, "victim"))
            .count();
    }
    assert_eq!(
        stolen, 0,
        "{CROSSING} contacts' credentials read the victim's token traffic"
    );
    let refusals = events_within(&mut events, Duration::from_secs(2)).await;
    for subject in ["_INBOX.>", "_INBOX_documents.>", ledger_rpc::TOKEN_SUBJECT] {
        assert!(
            refusals
                .iter()
                .any(|e| e.contains("Permissions Violation") && e.contains(subject)),
            "no refusal for {subject}: {refusals:?}"
        );
    }

    // A store key cannot reach the token service at all.
    let (store, mut store_events) = store_client(&thief_key).await.expect("the thief logs in");
    let asked = tokio::time::timeout(
        Duration::from_secs(3),
        store.request(
            ledger_rpc::TOKEN_SUBJECT,
            serde_json::to_vec(&json!({"merchant": "victim"}))
                .unwrap()
                .into(),
        ),
    )
    .await;
    let answer = match asked {
        Ok(Ok(m)) => String::from_utf8_lossy(&m.payload).to_string(),
        _ => String::new(),
    };
    assert!(
        !answer.contains("access_token"),
        "{CROSSING} a store key obtained a token: {answer}"
    );
    let store_refusals = events_within(&mut store_events, Duration::from_secs(2)).await;
    assert!(
        store_refusals
            .iter()
            .any(|e| e.contains("Permissions Violation") && e.contains(ledger_rpc::TOKEN_SUBJECT)),
        "no refusal for the store's token request: {store_refusals:?}"
    );
    println!("token_theft: consumer refusals {refusals:?}; store refusals {store_refusals:?}");
    stack.stop().await;
}

/// A request signed as a NATS server would, for the callout issuer `issuer`.
fn forged_request(server: &nkeys::KeyPair, issuer: &str, key: &Key, audience: &str) -> String {
    let b64 = |b: &[u8]| data_encoding::BASE64URL_NOPAD.encode(b);
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": server.public_key(), "sub": issuer, "aud": audience, "iat": now, "exp": now + 5,
        "jti": "forged",
        "nats": {
            "server_id": {"id": server.public_key(), "name": "forged", "host": "127.0.0.1"},
            "user_nkey": nkeys::KeyPair::new_user().public_key(),
            "connect_opts": {"user": key.key_id, "pass": key.secret, "protocol": 1},
            "type": "authorization_request", "version": 2,
        },
    });
    let input = format!(
        "{}.{}",
        b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#),
        b64(claims.to_string().as_bytes())
    );
    format!("{input}.{}", b64(&server.sign(input.as_bytes()).unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_callout_request_gets_no_user_jwt() {
    let (stack, nats, _db) = stack("attack-forged-callout").await;
    stack.onboard("forged").await.unwrap();
    let key = pair(&stack, "forged").await;
    let issuer = nkeys::KeyPair::from_seed(&nats.callout_issuer_seed().unwrap())
        .unwrap()
        .public_key();
    // With a real store key in hand, a thief of the operator's or a consumer's credentials
    // forges the server's request to obtain a signed user JWT for it (a key check that
    // bypasses NATS' own login, and a JWT to replay), with an unpinned server key.
    // nats-server itself refuses publishing on the callout subject to users exempt from the
    // callout, so this holds on the server alone; the gateway's own checks of such a request
    // (pinned key, `aud`, `sub`, `exp`, `iat`) are proven by the unit tests of
    // `gateway::nats_auth`.
    let forger = nkeys::KeyPair::new_server();
    let mut answers = 0;
    let mut refusals = Vec::new();
    for service in ["operator", "contacts"] {
        let (thief, mut events) = service_client(&nats, service).await;
        for audience in ["nats-authorization-request", "LEDGER"] {
            let asked = tokio::time::timeout(
                Duration::from_secs(2),
                thief.request(
                    gateway::nats_auth::CALLOUT_SUBJECT,
                    forged_request(&forger, &issuer, &key, audience).into(),
                ),
            )
            .await;
            if let Ok(Ok(answer)) = asked {
                if !answer.payload.is_empty() {
                    answers += 1;
                }
            }
        }
        refusals.extend(events_within(&mut events, Duration::from_millis(500)).await);
    }
    assert_eq!(
        answers, 0,
        "{CROSSING} a forged login request for a store's key was answered"
    );
    println!("forged_callout_request: refusals {refusals:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reply_crossing_to_another_merchants_inbox_or_subjects_delivers_nothing() {
    let (stack, nats, _db) = stack("attack-reply-crossing").await;
    stack.onboard("crosser").await.unwrap();
    stack.onboard("crossed").await.unwrap();
    let key_a = pair(&stack, "crosser").await;
    let key_b = pair(&stack, "crossed").await;

    // B listens on everything its key lets it read.
    let (client_b, _) = store_client(&key_b).await.expect("B logs in");
    let mut inbox_b = client_b
        .subscribe(format!("{}.>", key_b.inbox_prefix))
        .await
        .unwrap();
    client_b.flush().await.unwrap();
    publish_own(&client_b, "crossed", 1).await;
    let _ = received(&mut inbox_b, Duration::from_millis(200)).await;
    let b_before = stream_messages_on(&nats, "magento.crossed.>").await;

    // A publishes its own events, naming B's inbox namespace and B's event subjects as the
    // reply subject, so that the server's PubAck would go there.
    let (client_a, _) = store_client(&key_a).await.expect("A logs in");
    let a_before = stream_messages_on(&nats, "magento.crosser.>").await;
    let targets = [
        "_INBOX.crossed.x".to_string(),
        "_INBOX.crossed".to_string(),
        format!(
            "{}.stolen",
            key_a.inbox_prefix.replace("crosser", "crossed")
        ),
        "magento.crossed.invoice.created".to_string(),
        "magento.crossed.customer.saved".to_string(),
    ];
    for (n, target) in targets.iter().enumerate() {
        let event = ledger_stack::events::invoice_created("crosser", 10 + n as u64);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", event.event_id.to_string().as_str());
        client_a
            .publish_with_reply_and_headers(
                "magento.crosser.invoice.created",
                target.clone(),
                headers,
                event.body.into(),
            )
            .await
            .unwrap();
    }
    client_a.flush().await.unwrap();
    // A's own events are taken (the attack is refused, not the store): once the stream holds
    // them, every PubAck has been sent wherever it was going to go.
    let a_taken = a_before + targets.len() as u64;
    let started = tokio::time::Instant::now();
    let mut a_after = stream_messages_on(&nats, "magento.crosser.>").await;
    while a_after < a_taken && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        a_after = stream_messages_on(&nats, "magento.crosser.>").await;
    }
    assert_eq!(a_after, a_taken, "A's own events were not all stored");

    let crossed = received(&mut inbox_b, Duration::from_millis(500)).await;
    assert!(
        crossed.is_empty(),
        "{CROSSING} A's PubAcks reached B's inbox: {:?}",
        crossed
            .iter()
            .map(|m| m.subject.to_string())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        stream_messages_on(&nats, "magento.crossed.>").await,
        b_before,
        "{CROSSING} a message landed on B's event subjects"
    );
    println!(
        "reply_crossing: {} replies aimed at B, {} delivered, B's subjects unchanged ({b_before})",
        targets.len(),
        crossed.len()
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_payload_from_a_store_is_refused_and_not_stored() {
    let (stack, nats, _db) = stack("attack-oversized").await;
    stack.onboard("bloater").await.unwrap();
    let key = pair(&stack, "bloater").await;
    let (client, mut events) = store_client(&key).await.expect("the store logs in");
    let before = stream_messages_on(&nats, "magento.bloater.>").await;
    let body = vec![b' '; 700 * 1024];
    let js = async_nats::jetstream::new(client.clone());
    let published = tokio::time::timeout(Duration::from_secs(5), async {
        js.publish("magento.bloater.invoice.created", body.into())
            .await?
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
    })
    .await;
    let refused = !matches!(published, Ok(Ok(_)));
    let seen = events_within(&mut events, Duration::from_secs(1)).await;
    println!("oversized_payload: refused={refused} events={seen:?}");
    assert!(refused, "a 700 KiB message was accepted");
    assert!(
        seen.iter()
            .any(|e| e.to_lowercase().contains("maximum payload")),
        "the server did not name the payload limit: {seen:?}"
    );
    assert_eq!(stream_messages_on(&nats, "magento.bloater.>").await, before);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscription_flood_from_a_store_is_capped() {
    let (stack, _nats, _db) = stack("attack-subscription-flood").await;
    stack.onboard("flooder").await.unwrap();
    let key = pair(&stack, "flooder").await;
    let (client, mut events) = store_client(&key).await.expect("the store logs in");
    let capped = |seen: &[String]| {
        seen.iter()
            .filter(|e| e.to_lowercase().contains("maximum subscriptions exceeded"))
            .count()
    };
    let mut subs = Vec::new();
    let mut subscribe = async |n: usize| {
        for _ in 0..n {
            let subject = format!("{}.flood.{}", key.inbox_prefix, subs.len());
            subs.push(client.subscribe(subject).await.unwrap());
        }
        client.flush().await.unwrap();
        events_within(&mut events, Duration::from_secs(1)).await
    };
    // Sixteen subscriptions are a store's allowance ...
    let within = subscribe(16).await;
    assert_eq!(capped(&within), 0, "{within:?}");
    // ... the seventeenth is refused, and so is a flood after it.
    let over = subscribe(1).await;
    assert_eq!(
        capped(&over),
        1,
        "the 17th subscription was taken: {over:?}"
    );
    let flood = subscribe(200).await;
    println!(
        "subscription_flood: 16 taken, 17th refused, then 200 more asked: {} refusals seen",
        capped(&flood)
    );
    assert!(capped(&flood) > 0, "{flood:?}");
    stack.stop().await;
}

/// Count of connections to the test's database.
async fn db_connections(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
        .bind(db.name())
        .fetch_one(db.pool())
        .await
        .unwrap()
}

/// One raw client that sends CONNECT with `user`/`pass` and waits for the verdict.
async fn raw_login(port: u16, user: String, pass: String) -> String {
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let _info = lines.next_line().await?;
        let connect = json!({"user": user, "pass": pass, "verbose": false, "pedantic": false,
            "protocol": 1, "name": "flood"});
        write
            .write_all(format!("CONNECT {connect}\r\nPING\r\n").as_bytes())
            .await?;
        Ok::<_, std::io::Error>(lines.next_line().await?.unwrap_or_default())
    };
    match tokio::time::timeout(Duration::from_secs(15), attempt).await {
        Ok(Ok(line)) => line,
        Ok(Err(e)) => format!("io: {e}"),
        Err(_) => "timeout".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callout_flood_of_bad_logins_stays_bounded_and_a_good_store_gets_in() {
    let (stack, nats, db) = stack("attack-callout-flood").await;
    stack.onboard("steady").await.unwrap();
    let key = pair(&stack, "steady").await;
    let (warm, _) = store_client(&key).await.expect("the store logs in");
    drop(warm);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let metrics = tokio::runtime::Handle::current().metrics();
    let peak_tasks = Arc::new(AtomicUsize::new(0));
    let peak_db = Arc::new(AtomicUsize::new(0));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak_tasks, peak_db, sampling) =
            (peak_tasks.clone(), peak_db.clone(), sampling.clone());
        let metrics = metrics.clone();
        let pool = db.pool().clone();
        let name = db.name().to_string();
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak_tasks.fetch_max(metrics.num_alive_tasks(), Ordering::Relaxed);
                if let Ok(n) = sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                )
                .bind(&name)
                .fetch_one(&pool)
                .await
                {
                    peak_db.fetch_max(n as usize, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let tasks_before = peak_tasks.swap(0, Ordering::Relaxed);
    let db_before = db_connections(&db).await as usize;
    peak_db.store(0, Ordering::Relaxed);

    // 400 unauthenticated logins at once, shaped like real keys so that they are looked up.
    const FLOOD: usize = 400;
    let port = nats.port();
    let flood = futures::future::join_all((0..FLOOD).map(|n| {
        raw_login(
            port,
            format!("mk_{:016x}", n as u64 * 7919),
            format!("{:064x}", n as u128 * 104_729),
        )
    }));
    // Meanwhile the real store keeps trying to log in.
    let good = async {
        let started = tokio::time::Instant::now();
        loop {
            if let Ok((client, _)) = store_client(&key).await {
                return Some((client, started.elapsed()));
            }
            if started.elapsed() > Duration::from_secs(20) {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (verdicts, good) = tokio::join!(flood, good);
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;

    let refused = verdicts
        .iter()
        .filter(|v| v.contains("Authorization Violation") || v.contains("-ERR"))
        .count();
    let admitted = verdicts.iter().filter(|v| v.starts_with("PONG")).count();
    let tasks_peak = peak_tasks.load(Ordering::Relaxed);
    let db_peak = peak_db.load(Ordering::Relaxed);
    println!(
        "callout_flood: {FLOOD} bad logins: refused={refused} admitted={admitted}; \
         runtime tasks {tasks_before} -> peak {tasks_peak}; db connections {db_before} -> peak {db_peak}; \
         good store in after {:?}",
        good.as_ref().map(|(_, t)| *t)
    );
    assert_eq!(admitted, 0, "a bad login was admitted");
    let (good_client, _) = good.expect("the good store could not log in during the flood");
    publish_own(&good_client, "steady", 1).await;
    let task_bound = gateway::nats_auth::MAX_IN_FLIGHT + 40;
    assert!(
        tasks_peak <= tasks_before + task_bound,
        "the flood grew the gateway's tasks from {tasks_before} to {tasks_peak} (bound +{task_bound})"
    );
    let db_bound = gateway::nats_auth::DB_CONNECTIONS as usize + 2;
    assert!(
        db_peak <= db_before + db_bound,
        "the flood grew the database connections from {db_before} to {db_peak} (bound +{db_bound})"
    );
    stack.stop().await;
}

/// Every NATS service instance answering `$SRV.INFO` within a second and a half, by name,
/// with its endpoint subjects sorted.
async fn srv_infos(client: &async_nats::Client) -> std::collections::BTreeMap<String, Vec<String>> {
    let inbox = client.new_inbox();
    let mut answers = client.subscribe(inbox.clone()).await.unwrap();
    client
        .publish_with_reply("$SRV.INFO", inbox, "".into())
        .await
        .unwrap();
    let mut services = std::collections::BTreeMap::new();
    for answer in received(&mut answers, Duration::from_millis(1500)).await {
        let info: async_nats::service::Info = serde_json::from_slice(&answer.payload).unwrap();
        let mut subjects: Vec<String> = info.endpoints.into_iter().map(|e| e.subject).collect();
        subjects.sort();
        assert!(
            services.insert(info.name.clone(), subjects).is_none(),
            "{} answered twice: one NATS service per Ledger service and connection",
            info.name
        );
    }
    services
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_cannot_list_or_ask_ledgers_nats_services() {
    let (stack, _nats, _db) = stack("attack-srv-listing").await;
    stack.onboard("lister").await.unwrap();
    let key = pair(&stack, "lister").await;

    // With the shipped permissions the operator sees every service and its endpoints (asked
    // again while one of them has not answered in time).
    let mut services = srv_infos(&stack.nats).await;
    let started = tokio::time::Instant::now();
    while ["gateway", "documents", "contacts", "payments"]
        .iter()
        .any(|name| !services.contains_key(*name))
        && started.elapsed() < Duration::from_secs(30)
    {
        services = srv_infos(&stack.nats).await;
    }
    let subjects = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        services.get("gateway"),
        Some(&subjects(&[
            "$SYS.REQ.USER.AUTH",
            "ledger.rpc.gateway.settings",
            "ledger.rpc.gateway.token"
        ])),
        "{services:#?}"
    );
    assert_eq!(
        services.get("documents"),
        Some(&subjects(&[
            "ledger.rpc.documents.audit",
            "ledger.rpc.documents.dead_letters",
            "ledger.rpc.documents.held",
            "ledger.rpc.documents.lookup",
            "ledger.rpc.documents.reissue",
            "ledger.rpc.documents.replay"
        ])),
        "{services:#?}"
    );
    assert_eq!(
        services.get("contacts"),
        Some(&subjects(&[
            "ledger.rpc.contacts.audit",
            "ledger.rpc.contacts.dead_letters",
            "ledger.rpc.contacts.ensure",
            "ledger.rpc.contacts.replay"
        ])),
        "{services:#?}"
    );
    assert_eq!(
        services.get("payments"),
        Some(&subjects(&[
            "ledger.rpc.payments.audit",
            "ledger.rpc.payments.clearing_account",
            "ledger.rpc.payments.dead_letters",
            "ledger.rpc.payments.remove_receipts",
            "ledger.rpc.payments.replay"
        ])),
        "{services:#?}"
    );

    // A store asking for them, or asking one of them, hears nothing back.
    let (store, _) = store_client(&key).await.expect("the store logs in");
    let reply = format!("{}.srv", key.inbox_prefix);
    let mut inbox = store.subscribe(reply.clone()).await.unwrap();
    let asks = [
        "$SRV.INFO",
        "$SRV.PING",
        "$SRV.STATS",
        "$SRV.INFO.gateway",
        "ledger.rpc.documents.dead_letters",
    ];
    for subject in asks {
        store
            .publish_with_reply(subject, reply.clone(), r#"{"command":"list"}"#.into())
            .await
            .unwrap();
    }
    store.flush().await.unwrap();
    let answered: Vec<String> = received(&mut inbox, Duration::from_millis(1000))
        .await
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect();
    assert!(
        answered.is_empty(),
        "{CROSSING} a store reached Ledger's services: {answered:?}"
    );
    println!(
        "srv_listing: {} services listed to the operator, {} asks from a store, {} answered",
        services.len(),
        asks.len(),
        answered.len()
    );
    stack.stop().await;
}
