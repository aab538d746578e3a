//! Call statistics, concurrency violations and Prometheus metrics.

use chrono::{DateTime, Utc};
use prometheus::{Encoder, IntCounterVec, Opts, Registry, TextEncoder};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Calls with one (method, path template, status, business) combination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallStat {
    /// HTTP method.
    pub method: String,
    /// Route template, e.g. `/v3.1/sales_invoices/{id}` or `/oauth/token`.
    pub path: String,
    /// HTTP status answered (0 when the connection was dropped unanswered).
    pub status: u16,
    /// Business the call was for, when known.
    pub business_id: Option<String>,
    /// Number of calls.
    pub count: u64,
}

/// Token endpoint calls by grant type and outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenStat {
    /// `authorization_code`, `refresh_token` or whatever was sent.
    pub grant_type: String,
    /// Business of the connection, when known.
    pub business_id: Option<String>,
    /// Whether tokens were issued.
    pub success: bool,
    /// Number of calls.
    pub count: u64,
}

/// Requests answered from the idempotency store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayStat {
    /// Business.
    pub business_id: String,
    /// Root object name, e.g. `sales_invoice`.
    pub resource: String,
    /// Number of replays.
    pub count: u64,
}

/// Fault plan applications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultStat {
    /// Business.
    pub business_id: String,
    /// Fault label (`latency`, `error_500`, ...).
    pub fault: String,
    /// Number of applications.
    pub count: u64,
}

/// Snapshot of everything counted so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Every counted call (`/oauth/*` and `/v3.1/*`; admin routes are not counted).
    pub calls: Vec<CallStat>,
    /// Token endpoint calls.
    pub token_requests: Vec<TokenStat>,
    /// Idempotent replays.
    pub idempotent_replays: Vec<ReplayStat>,
    /// Requests turned away by the configured per-business rate limit.
    pub rate_limited: Vec<(String, u64)>,
    /// Per business, the most API requests (admitted or turned away) that arrived within one
    /// rolling rate window (`SandboxConfig::rate_window`): what a caller's pace looked like
    /// from Sage's side, whatever the limit.
    #[serde(default)]
    pub busiest_window: Vec<(String, u64)>,
    /// Fault applications.
    pub faults_applied: Vec<FaultStat>,
}

impl Stats {
    /// Calls to `method` + `path` template, all statuses and businesses.
    pub fn count(&self, method: &str, path: &str) -> u64 {
        self.calls
            .iter()
            .filter(|c| c.method.eq_ignore_ascii_case(method) && c.path == path)
            .map(|c| c.count)
            .sum()
    }

    /// Calls to `method` + `path` template answered with `status`.
    pub fn count_status(&self, method: &str, path: &str, status: u16) -> u64 {
        self.calls
            .iter()
            .filter(|c| {
                c.method.eq_ignore_ascii_case(method) && c.path == path && c.status == status
            })
            .map(|c| c.count)
            .sum()
    }

    /// All successful refresh-token grants.
    pub fn refreshes(&self) -> u64 {
        self.token_requests
            .iter()
            .filter(|t| t.grant_type == "refresh_token" && t.success)
            .map(|t| t.count)
            .sum()
    }

    /// Refresh-token grant attempts, successful or not.
    pub fn refresh_attempts(&self) -> u64 {
        self.token_requests
            .iter()
            .filter(|t| t.grant_type == "refresh_token")
            .map(|t| t.count)
            .sum()
    }

    /// All idempotent replays.
    pub fn replays(&self) -> u64 {
        self.idempotent_replays.iter().map(|r| r.count).sum()
    }

    /// Keeps only the entries about one business.
    pub fn for_business(mut self, business_id: &str) -> Stats {
        let b = Some(business_id.to_owned());
        self.calls.retain(|c| c.business_id == b);
        self.token_requests.retain(|t| t.business_id == b);
        self.idempotent_replays
            .retain(|r| r.business_id == business_id);
        self.rate_limited.retain(|r| r.0 == business_id);
        self.busiest_window.retain(|r| r.0 == business_id);
        self.faults_applied.retain(|f| f.business_id == business_id);
        self
    }
}

/// One entry of the call log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Position in the log since start (or the last reset).
    pub seq: u64,
    /// When the answer was sent (or the connection dropped).
    pub at: DateTime<Utc>,
    /// HTTP method.
    pub method: String,
    /// Route template.
    pub path: String,
    /// Request path as sent, without the query.
    pub uri_path: String,
    /// HTTP status (0 = connection dropped unanswered).
    pub status: u16,
    /// Business the call was for, when known.
    pub business_id: Option<String>,
    /// The `x_request_id` header of the answer (empty when none was sent).
    pub request_id: String,
}

/// Calls kept in the log; older ones are forgotten so a long benchmark run
/// does not grow memory without bound.
pub const CALL_LOG_CAPACITY: usize = 10_000;

/// Two POSTs to the same resource of one business overlapped in time (Sage
/// advises against parallel POSTs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConcurrencyViolation {
    /// Business.
    pub business_id: String,
    /// Resource, e.g. `sales_invoices`.
    pub resource: String,
    /// When the overlapping POST started.
    pub at: DateTime<Utc>,
    /// POSTs in flight including the one that started.
    pub in_flight: u32,
}

type CallKey = (String, String, u16, Option<String>);

/// Counters behind [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct StatsState {
    calls: HashMap<CallKey, u64>,
    log: std::collections::VecDeque<CallRecord>,
    next_seq: u64,
    tokens: HashMap<(String, Option<String>, bool), u64>,
    replays: HashMap<(String, String), u64>,
    rate_limited: HashMap<String, u64>,
    faults: HashMap<(String, String), u64>,
    arrivals: HashMap<String, Arrivals>,
}

/// One business's API requests within the last rate window, and the most there ever were.
#[derive(Debug, Default)]
struct Arrivals {
    recent: std::collections::VecDeque<std::time::Instant>,
    most: u64,
}

impl StatsState {
    pub fn call(&mut self, method: &str, path: &str, status: u16, business: Option<&str>) {
        *self
            .calls
            .entry((
                method.to_owned(),
                path.to_owned(),
                status,
                business.map(str::to_owned),
            ))
            .or_default() += 1;
    }

    /// Counts a call and appends it to the log.
    pub fn record(
        &mut self,
        method: &str,
        path: &str,
        uri_path: &str,
        status: u16,
        business: Option<&str>,
        request_id: &str,
    ) {
        self.call(method, path, status, business);
        if self.log.len() >= CALL_LOG_CAPACITY {
            self.log.pop_front();
        }
        self.next_seq += 1;
        self.log.push_back(CallRecord {
            seq: self.next_seq,
            at: Utc::now(),
            method: method.to_owned(),
            path: path.to_owned(),
            uri_path: uri_path.to_owned(),
            status,
            business_id: business.map(str::to_owned),
            request_id: request_id.to_owned(),
        });
    }

    /// The newest `limit` log entries (oldest first), optionally for one business.
    pub fn calls(&self, business: Option<&str>, limit: usize) -> Vec<CallRecord> {
        let mut out: Vec<CallRecord> = self
            .log
            .iter()
            .rev()
            .filter(|c| business.is_none_or(|b| c.business_id.as_deref() == Some(b)))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        out
    }

    pub fn token(&mut self, grant_type: &str, business: Option<&str>, success: bool) {
        *self
            .tokens
            .entry((grant_type.to_owned(), business.map(str::to_owned), success))
            .or_default() += 1;
    }

    pub fn replay(&mut self, business: &str, resource: &str) {
        *self
            .replays
            .entry((business.to_owned(), resource.to_owned()))
            .or_default() += 1;
    }

    pub fn rate_limited(&mut self, business: &str) {
        *self.rate_limited.entry(business.to_owned()).or_default() += 1;
    }

    /// Notes an API request of `business` arriving at `now`, for [`Stats::busiest_window`]
    /// over rolling windows of `span`.
    pub fn arrival(&mut self, business: &str, span: std::time::Duration, now: std::time::Instant) {
        let arrivals = self.arrivals.entry(business.to_owned()).or_default();
        while arrivals
            .recent
            .front()
            .is_some_and(|&first| now.saturating_duration_since(first) >= span)
        {
            arrivals.recent.pop_front();
        }
        arrivals.recent.push_back(now);
        arrivals.most = arrivals.most.max(arrivals.recent.len() as u64);
    }

    pub fn fault(&mut self, business: &str, label: &str) {
        *self
            .faults
            .entry((business.to_owned(), label.to_owned()))
            .or_default() += 1;
    }

    pub fn snapshot(&self) -> Stats {
        let mut calls: Vec<CallStat> = self
            .calls
            .iter()
            .map(|((m, p, s, b), c)| CallStat {
                method: m.clone(),
                path: p.clone(),
                status: *s,
                business_id: b.clone(),
                count: *c,
            })
            .collect();
        calls.sort_by(|a, b| {
            (&a.path, &a.method, a.status, &a.business_id).cmp(&(
                &b.path,
                &b.method,
                b.status,
                &b.business_id,
            ))
        });
        let mut token_requests: Vec<TokenStat> = self
            .tokens
            .iter()
            .map(|((g, b, s), c)| TokenStat {
                grant_type: g.clone(),
                business_id: b.clone(),
                success: *s,
                count: *c,
            })
            .collect();
        token_requests.sort_by(|a, b| {
            (&a.grant_type, &a.business_id, a.success).cmp(&(
                &b.grant_type,
                &b.business_id,
                b.success,
            ))
        });
        let mut idempotent_replays: Vec<ReplayStat> = self
            .replays
            .iter()
            .map(|((b, r), c)| ReplayStat {
                business_id: b.clone(),
                resource: r.clone(),
                count: *c,
            })
            .collect();
        idempotent_replays
            .sort_by(|a, b| (&a.business_id, &a.resource).cmp(&(&b.business_id, &b.resource)));
        let mut rate_limited: Vec<(String, u64)> = self
            .rate_limited
            .iter()
            .map(|(b, c)| (b.clone(), *c))
            .collect();
        rate_limited.sort();
        let mut busiest_window: Vec<(String, u64)> = self
            .arrivals
            .iter()
            .map(|(b, a)| (b.clone(), a.most))
            .collect();
        busiest_window.sort();
        let mut faults_applied: Vec<FaultStat> = self
            .faults
            .iter()
            .map(|((b, f), c)| FaultStat {
                business_id: b.clone(),
                fault: f.clone(),
                count: *c,
            })
            .collect();
        faults_applied.sort_by(|a, b| (&a.business_id, &a.fault).cmp(&(&b.business_id, &b.fault)));
        Stats {
            calls,
            token_requests,
            idempotent_replays,
            rate_limited,
            busiest_window,
            faults_applied,
        }
    }
}

/// Prometheus counters of one sandbox (each sandbox has its own registry so
/// several can run in one test process).
pub(crate) struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub tokens: IntCounterVec,
    pub replays: IntCounterVec,
    pub violations: IntCounterVec,
    pub faults: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c =
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
            registry
                .register(Box::new(c.clone()))
                .expect("metric registered once");
            c
        };
        Metrics {
            requests: counter(
                "sage_sandbox_requests_total",
                "API and OAuth calls by route template and status",
                &["method", "path", "status", "business"],
            ),
            tokens: counter(
                "sage_sandbox_token_requests_total",
                "Token endpoint calls by grant type",
                &["grant_type", "outcome"],
            ),
            replays: counter(
                "sage_sandbox_idempotent_replays_total",
                "Requests answered from the idempotency store",
                &["resource"],
            ),
            violations: counter(
                "sage_sandbox_concurrency_violations_total",
                "Overlapping POSTs to one resource of one business",
                &["resource"],
            ),
            faults: counter(
                "sage_sandbox_faults_applied_total",
                "Injected faults",
                &["fault"],
            ),
            registry,
        }
    }

    pub fn reset(&self) {
        self.requests.reset();
        self.tokens.reset();
        self.replays.reset();
        self.violations.reset();
        self.faults.reset();
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for counters.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_counts_and_filters() {
        let mut s = StatsState::default();
        s.call("POST", "/v3.1/contacts", 201, Some("b1"));
        s.call("POST", "/v3.1/contacts", 201, Some("b1"));
        s.call("POST", "/v3.1/contacts", 422, Some("b2"));
        s.token("refresh_token", Some("b1"), true);
        s.token("refresh_token", Some("b1"), false);
        s.replay("b1", "contact");
        s.record(
            "GET",
            "/v3.1/contacts/{id}",
            "/v3.1/contacts/x",
            404,
            Some("b2"),
            "r1",
        );
        s.record(
            "GET",
            "/v3.1/contacts",
            "/v3.1/contacts",
            200,
            Some("b1"),
            "r2",
        );
        assert_eq!(
            s.calls(Some("b2"), 10)
                .iter()
                .map(|c| c.request_id.as_str())
                .collect::<Vec<_>>(),
            vec!["r1"]
        );
        assert_eq!(s.calls(None, 1)[0].request_id, "r2");
        assert_eq!(s.calls(None, 10)[0].seq, 1);
        let snap = s.snapshot();
        assert_eq!(snap.count("post", "/v3.1/contacts"), 3);
        assert_eq!(snap.count_status("POST", "/v3.1/contacts", 201), 2);
        assert_eq!(snap.refreshes(), 1);
        assert_eq!(snap.refresh_attempts(), 2);
        let b2 = snap.for_business("b2");
        assert_eq!(b2.count("POST", "/v3.1/contacts"), 1);
        assert_eq!(b2.refreshes(), 0);
        assert_eq!(b2.replays(), 0);
    }

    #[test]
    fn busiest_window_counts_arrivals_in_any_rolling_window() {
        let mut s = StatsState::default();
        let t0 = std::time::Instant::now();
        let span = std::time::Duration::from_secs(10);
        // 4, 8, 10 and 12 s lie within one 10 s window; the call at 0 s has left it by 10 s
        // (half-open window) and the one at 4 s by 14 s, so never five.
        for secs in [0, 4, 8, 10, 12, 14, 30] {
            s.arrival("b1", span, t0 + std::time::Duration::from_secs(secs));
        }
        s.arrival("b2", span, t0);
        let snap = s.snapshot();
        assert_eq!(
            snap.busiest_window,
            vec![("b1".to_string(), 4), ("b2".to_string(), 1)]
        );
        assert_eq!(
            snap.for_business("b2").busiest_window,
            vec![("b2".into(), 1)]
        );
    }

    #[test]
    fn metrics_render_text() {
        let m = Metrics::new();
        m.requests
            .with_label_values(&["GET", "/v3.1/contacts", "200", "b"])
            .inc();
        let text = m.render();
        assert!(text.contains("sage_sandbox_requests_total{business=\"b\",method=\"GET\",path=\"/v3.1/contacts\",status=\"200\"} 1"), "{text}");
    }
}
