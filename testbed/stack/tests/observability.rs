//! The Grafana views and alert rules, proven against a real Prometheus scraping the running
//! engine: every panel's query (read from the provisioned dashboard) and every alert's
//! expression (read from the rule file) is evaluated through Prometheus's HTTP API.
//!
//! The scenario: a backlog across several merchants (lag rises, then returns to 0), a merchant
//! whose Sage connection is revoked (paused: the lag-age and paused alerts fire, and clear once
//! it reconnects), a dead letter, Sage 5xx and 429 answers.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ledger_stack::{events, Merchant, Stack};
use ledger_testkit::prometheus::TestPrometheus;
use serde_json::Value;

/// Alerts this scenario makes fire; every other alert of the rule file must stay silent.
const FIRED: [&str; 4] = [
    "LedgerMerchantLagAge",
    "LedgerMerchantPaused",
    "LedgerDeadLettersRising",
    "LedgerSageRateLimited",
];

/// Lag age above which the test copy of the rules alerts (the real rule: 900 s).
const TEST_LAG_AGE_SECONDS: &str = "4";

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn repo_file(path: &str) -> String {
    let root = ledger_testkit::workspace_root();
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Each panel's title, query and the labels its legend names.
fn panels() -> Vec<(String, String, BTreeSet<String>)> {
    let dashboard: Value = serde_json::from_str(&repo_file(
        "deploy/grafana/dashboards/ledger-operations.json",
    ))
    .unwrap();
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            out.push((
                panel["title"].as_str().unwrap().to_string(),
                target["expr"].as_str().unwrap().to_string(),
                placeholders(
                    target["legendFormat"].as_str().unwrap_or_default(),
                    "{{",
                    "}}",
                ),
            ));
        }
    }
    out
}

/// Names between `open` and `close` in `text` (`{{consumer}}`, `{{ $labels.merchant }}`).
fn placeholders(text: &str, open: &str, close: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find(open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(close) else { break };
        let name = after[..end].trim();
        if let Some(label) = name.strip_prefix("$labels.") {
            names.insert(label.to_string());
        } else if !name.starts_with('$') {
            names.insert(name.to_string());
        }
        rest = &after[end + close.len()..];
    }
    names
}

/// The rule file with every `for:` at 1 s and the lag-age threshold at
/// [`TEST_LAG_AGE_SECONDS`], so the scenario takes seconds, not hours; and its alerts as
/// (name, expression, labels the summary names).
fn test_rules() -> (String, Vec<(String, String, BTreeSet<String>)>) {
    let mut rules: serde_norway::Value =
        serde_norway::from_str(&repo_file("deploy/prometheus/rules/ledger.rules.yml")).unwrap();
    let mut alerts = Vec::new();
    for group in rules["groups"].as_sequence_mut().unwrap() {
        for rule in group["rules"].as_sequence_mut().unwrap() {
            let name = rule["alert"].as_str().unwrap().to_string();
            if rule.get("for").is_some() {
                rule["for"] = "1s".into();
            }
            if name == "LedgerMerchantLagAge" {
                let expr = rule["expr"].as_str().unwrap();
                assert!(expr.ends_with("> 900"), "{expr}");
                rule["expr"] = expr
                    .replace("> 900", &format!("> {TEST_LAG_AGE_SECONDS}"))
                    .into();
            }
            let summary = rule["annotations"]["summary"].as_str().unwrap();
            alerts.push((
                name,
                rule["expr"].as_str().unwrap().to_string(),
                placeholders(summary, "{{", "}}"),
            ));
        }
    }
    (serde_norway::to_string(&rules).unwrap(), alerts)
}

fn labels(series: &Value) -> BTreeSet<String> {
    series["metric"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// The highest value of any series of `expr` now (0 when it has none).
async fn highest(prometheus: &TestPrometheus, expr: &str) -> f64 {
    prometheus
        .query(expr)
        .await
        .unwrap()
        .iter()
        .filter_map(|s| s["value"][1].as_str()?.parse::<f64>().ok())
        .fold(0.0, f64::max)
}

async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn firing(prometheus: &TestPrometheus, alert: &str) -> Vec<Value> {
    prometheus
        .query(&format!(
            "ALERTS{{alertname=\"{alert}\",alertstate=\"firing\"}}"
        ))
        .await
        .unwrap()
}

async fn post(stack: &Stack, merchant: &Merchant, n: u64) {
    let event = events::invoice_created(&merchant.id, n);
    assert_eq!(
        stack.post_event(merchant, &event.body).await.unwrap().0,
        202
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_panel_and_alert_answers_from_a_real_prometheus() {
    std::env::set_var("LEDGER_LAG_POLL_MS", "300");
    std::env::set_var("LEDGER_PAUSED_DELAY_SECS", "1");
    std::env::set_var("LEDGER_SETTINGS_TTL_SECS", "0");
    let (stack, _nats, _db) = common::stack("observability", 2).await;

    let (rules, alerts) = test_rules();
    let services = ["gateway", "contacts", "documents", "payments"];
    let mut config = String::from(
        "global:\n  scrape_interval: 500ms\n  evaluation_interval: 500ms\n\
         rule_files: [ledger.rules.yml]\nscrape_configs:\n  - job_name: ledger\n    static_configs:\n",
    );
    for (service, addr) in services.iter().zip(&stack.metrics) {
        config.push_str(&format!(
            "      - targets: [\"{addr}\"]\n        labels: {{ service: {service} }}\n"
        ));
    }
    let prometheus = TestPrometheus::start(&config, &[("ledger.rules.yml", rules)])
        .await
        .expect("prometheus");
    let loaded = prometheus.rules().await.unwrap();
    let loaded_alerts = loaded["groups"][0]["rules"].as_array().unwrap().len();
    assert_eq!(loaded_alerts, alerts.len(), "every rule loaded: {loaded}");
    let started = now();
    eventually("every service scraped", Duration::from_secs(30), || async {
        prometheus
            .query("up{job=\"ledger\"} == 1")
            .await
            .unwrap()
            .len()
            == services.len()
    })
    .await;

    let (lag_title, lag_expr, _) = panels()
        .into_iter()
        .find(|(_, expr, _)| expr.contains("ledger_consumer_pending"))
        .expect("a lag panel");

    // A backlog across four merchants: the lag rises, then returns to 0.
    let mut busy = Vec::new();
    for i in 0..4 {
        busy.push(stack.onboard(&format!("busy{i}")).await.unwrap());
    }
    let stalled = stack.onboard("stalled").await.unwrap();
    post(&stack, &stalled, 1).await;
    let posts = busy
        .iter()
        .flat_map(|m| (1..=40).map(move |n| (m, n)))
        .map(|(m, n)| post(&stack, m, n));
    futures::future::join_all(posts).await;
    eventually(
        &format!("{lag_title} rises"),
        Duration::from_secs(30),
        || async { highest(&prometheus, &lag_expr).await > 0.0 },
    )
    .await;
    assert!(
        stack
            .wait_until(Duration::from_secs(120), || busy
                .iter()
                .all(|m| stack.documents(m, "sales_invoices").len() == 40))
            .await,
        "the backlog is handled"
    );
    let backlog_done = now();
    eventually(
        &format!("{lag_title} back to 0"),
        Duration::from_secs(30),
        || async {
            let series = prometheus.query(&lag_expr).await.unwrap();
            !series.is_empty() && highest(&prometheus, &lag_expr).await == 0.0
        },
    )
    .await;

    // A merchant whose Sage access is revoked waits, paused; the lag-age alert fires for it.
    stack.sandbox.revoke_tokens(&stalled.business_id);
    // Two events wait: the second reaches the lane while it retries the first.
    post(&stack, &stalled, 2).await;
    post(&stack, &stalled, 3).await;
    // Meanwhile: a dead letter, and Sage answering 5xx and 429 to two others.
    let broken = stack.onboard("broken").await.unwrap();
    stack.break_sales_ledger_account(&broken).await.unwrap();
    post(&stack, &broken, 1).await;
    let errors = stack.onboard("errors").await.unwrap();
    let limited = stack.onboard("limited").await.unwrap();
    for (merchant, kind) in [
        (&errors, sage_sandbox::FaultKind::Error500),
        (
            &limited,
            sage_sandbox::FaultKind::Rate429 {
                retry_after_secs: Some(1),
            },
        ),
    ] {
        stack.sandbox.faults().set(
            sage_sandbox::FaultPlan::new(kind)
                .for_business(merchant.business_id.clone())
                .on_resource("sales_invoices")
                .times(3),
        );
        post(&stack, merchant, 1).await;
    }
    eventually(
        "the lag-age alert fires for the stalled merchant",
        Duration::from_secs(60),
        || async {
            firing(&prometheus, "LedgerMerchantLagAge")
                .await
                .iter()
                .any(|s| s["metric"]["merchant"] == "stalled")
        },
    )
    .await;
    eventually(
        "the paused alert fires",
        Duration::from_secs(30),
        || async { !firing(&prometheus, "LedgerMerchantPaused").await.is_empty() },
    )
    .await;
    assert!(
        stack
            .wait_until(Duration::from_secs(60), || stack
                .documents(&errors, "sales_invoices")
                .len()
                == 1
                && stack.documents(&limited, "sales_invoices").len() == 1)
            .await,
        "Sage's 5xx and 429 were retried through"
    );

    // Reconnected: its events flow, the age returns to 0 and the alerts clear.
    stack
        .connect_sage("stalled", &stalled.business_id)
        .await
        .unwrap();
    assert!(
        stack
            .wait_until(Duration::from_secs(60), || stack
                .documents(&stalled, "sales_invoices")
                .len()
                == 3)
            .await,
        "the stalled merchant resumes"
    );
    eventually(
        "the lag-age alert clears",
        Duration::from_secs(30),
        || async {
            firing(&prometheus, "LedgerMerchantLagAge").await.is_empty()
                && firing(&prometheus, "LedgerMerchantPaused").await.is_empty()
        },
    )
    .await;
    eventually(
        &format!("{lag_title} back to 0 at the end"),
        Duration::from_secs(30),
        || async { highest(&prometheus, &lag_expr).await == 0.0 },
    )
    .await;
    let ended = now();

    // Every panel, over the whole run as Grafana would draw it: series with its legend's labels.
    for (title, expr, legend) in panels() {
        let series = prometheus
            .query_range(&expr, started, ended, Duration::from_secs(1))
            .await
            .unwrap_or_else(|e| panic!("{title}: {e}"));
        assert!(!series.is_empty(), "panel {title:?} ({expr}) has no series");
        for s in &series {
            assert!(
                legend.is_subset(&labels(s)),
                "panel {title:?}: series {} lacks {legend:?}",
                s["metric"]
            );
        }
    }
    // Drawn over the backlog, the lag panel shows it rising.
    let during = prometheus
        .query_range(&lag_expr, started, backlog_done, Duration::from_millis(500))
        .await
        .unwrap();
    let peak = during
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().iter())
        .map(|v| v[1].as_str().unwrap().parse::<f64>().unwrap())
        .fold(0.0, f64::max);
    assert!(peak > 0.0, "{lag_title}: {during:?}");

    // Every alert's expression evaluates; those the scenario provokes fired with the labels
    // their summary names, the others stayed silent.
    for (name, expr, summary_labels) in &alerts {
        let series = prometheus
            .query_range(expr, started, ended, Duration::from_secs(1))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let fired = prometheus
            .query_range(
                &format!("ALERTS{{alertname=\"{name}\",alertstate=\"firing\"}}"),
                started,
                ended,
                Duration::from_millis(500),
            )
            .await
            .unwrap();
        if FIRED.contains(&name.as_str()) {
            assert!(!series.is_empty(), "alert {name} ({expr}) never matched");
            for s in &series {
                assert!(
                    summary_labels.is_subset(&labels(s)),
                    "alert {name}: {} lacks {summary_labels:?}",
                    s["metric"]
                );
            }
            assert!(!fired.is_empty(), "alert {name} never fired");
        } else {
            assert!(fired.is_empty(), "alert {name} fired: {fired:?}");
        }
    }
    println!(
        "observability: panels={} alerts={} fired={} lag_peak={peak} on prometheus port {}",
        panels().len(),
        alerts.len(),
        FIRED.len(),
        prometheus.port()
    );
    stack.stop().await;
}
