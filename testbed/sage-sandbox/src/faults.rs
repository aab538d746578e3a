//! Fault injection plans and the per-business rate limiter.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// What a fault plan does to a matching request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Delay the request by `ms` milliseconds before handling it.
    Latency {
        /// Added delay.
        ms: u64,
    },
    /// Answer 500 `UnexpectedError` without applying the request.
    #[serde(rename = "error_500")]
    Error500,
    /// Apply and store the request, then answer 500 `UnexpectedError`
    /// (Sage warns that a POST answered with a 500 may have been saved).
    #[serde(rename = "applied_then_500")]
    AppliedThen500,
    /// Answer 429 `TooManyRequests`, with `Retry-After` when given.
    #[serde(rename = "rate_429")]
    Rate429 {
        /// Seconds for the `Retry-After` header.
        #[serde(default)]
        retry_after_secs: Option<u64>,
    },
    /// Hold the request for `secs` seconds, then close the connection without
    /// answering. With `apply` the request is applied first, modelling a
    /// client that timed out on a write the server completed.
    Timeout {
        /// How long to hold the request.
        secs: u64,
        /// Apply the request before going silent.
        #[serde(default)]
        apply: bool,
    },
}

impl FaultKind {
    /// Short label used in statistics and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            FaultKind::Latency { .. } => "latency",
            FaultKind::Error500 => "error_500",
            FaultKind::AppliedThen500 => "applied_then_500",
            FaultKind::Rate429 { .. } => "rate_429",
            FaultKind::Timeout { .. } => "timeout",
        }
    }
}

/// A fault and the requests it applies to.
///
/// Unset filters match everything. `count` limits how many requests the plan
/// affects (then it is removed); `probability` makes each matching request
/// affected with that chance, drawn from the sandbox's seedable RNG so runs
/// are reproducible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultPlan {
    /// The fault.
    pub fault: FaultKind,
    /// Only requests for this business (`None` = every business).
    #[serde(default)]
    pub business_id: Option<String>,
    /// Only this resource, e.g. `sales_invoices` (the first path segment
    /// after `/v3.1`).
    #[serde(default)]
    pub resource: Option<String>,
    /// Only this HTTP method, e.g. `POST`.
    #[serde(default)]
    pub method: Option<String>,
    /// Affect at most this many requests.
    #[serde(default)]
    pub count: Option<u32>,
    /// Affect each matching request with this probability (0..=1).
    #[serde(default)]
    pub probability: Option<f64>,
}

impl FaultPlan {
    /// A plan applying `fault` to every API request.
    pub fn new(fault: FaultKind) -> Self {
        FaultPlan {
            fault,
            business_id: None,
            resource: None,
            method: None,
            count: None,
            probability: None,
        }
    }

    /// Restricts the plan to one business.
    pub fn for_business(mut self, business_id: impl Into<String>) -> Self {
        self.business_id = Some(business_id.into());
        self
    }

    /// Restricts the plan to one resource (e.g. `sales_invoices`).
    pub fn on_resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// Restricts the plan to one HTTP method.
    pub fn on_method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    /// Applies the plan to at most `n` requests.
    pub fn times(mut self, n: u32) -> Self {
        self.count = Some(n);
        self
    }

    /// Applies the plan to each matching request with probability `p`.
    pub fn with_probability(mut self, p: f64) -> Self {
        self.probability = Some(p);
        self
    }

    fn matches(&self, business: &str, resource: &str, method: &str) -> bool {
        self.business_id.as_deref().is_none_or(|b| b == business)
            && self
                .resource
                .as_deref()
                .is_none_or(|r| r.trim_matches('/') == resource)
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
    }
}

/// A plan as listed, with its id and remaining count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveFault {
    /// Id to remove it with.
    pub id: u64,
    /// The plan; `count` shows how many applications remain.
    pub plan: FaultPlan,
}

/// The outcome a request gets from the fault plans.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    Error500,
    AppliedThen500,
    Rate429(Option<u64>),
    Timeout { secs: u64, apply: bool },
}

/// Everything the fault plans decided for one request.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Decision {
    pub latency: Duration,
    pub outcome: Option<Outcome>,
    /// Labels of the plans that fired (for statistics).
    pub applied: Vec<&'static str>,
}

/// Plans, the RNG and the rate-limit setting.
#[derive(Debug)]
pub(crate) struct FaultState {
    plans: Vec<ActiveFault>,
    next_id: u64,
    rng: StdRng,
    pub rate_limit_per_minute: Option<u32>,
}

/// Seed used until a test picks its own, so runs are reproducible by default.
const DEFAULT_SEED: u64 = 0x5A6E_5A6E;

impl FaultState {
    pub fn new(rate_limit_per_minute: Option<u32>) -> Self {
        FaultState {
            plans: Vec::new(),
            next_id: 1,
            rng: StdRng::seed_from_u64(DEFAULT_SEED),
            rate_limit_per_minute,
        }
    }

    pub fn add(&mut self, plan: FaultPlan) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.plans.push(ActiveFault { id, plan });
        id
    }

    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.plans.len();
        self.plans.retain(|p| p.id != id);
        before != self.plans.len()
    }

    pub fn clear(&mut self) {
        self.plans.clear();
    }

    pub fn list(&self) -> Vec<ActiveFault> {
        self.plans.clone()
    }

    pub fn seed(&mut self, seed: u64) {
        self.rng = StdRng::seed_from_u64(seed);
    }

    /// Evaluates the plans for a request. Latencies add up; the first
    /// matching non-latency plan decides the outcome and later ones are not
    /// consumed.
    pub fn decide(&mut self, business: &str, resource: &str, method: &str) -> Decision {
        let mut decision = Decision::default();
        for active in &mut self.plans {
            let plan = &mut active.plan;
            if plan.count == Some(0) || !plan.matches(business, resource, method) {
                continue;
            }
            let is_latency = matches!(plan.fault, FaultKind::Latency { .. });
            if !is_latency && decision.outcome.is_some() {
                continue;
            }
            if let Some(p) = plan.probability {
                if !self.rng.gen_bool(p.clamp(0.0, 1.0)) {
                    continue;
                }
            }
            if let Some(c) = plan.count.as_mut() {
                *c -= 1;
            }
            decision.applied.push(plan.fault.label());
            match &plan.fault {
                FaultKind::Latency { ms } => decision.latency += Duration::from_millis(*ms),
                FaultKind::Error500 => decision.outcome = Some(Outcome::Error500),
                FaultKind::AppliedThen500 => decision.outcome = Some(Outcome::AppliedThen500),
                FaultKind::Rate429 { retry_after_secs } => {
                    decision.outcome = Some(Outcome::Rate429(*retry_after_secs))
                }
                FaultKind::Timeout { secs, apply } => {
                    decision.outcome = Some(Outcome::Timeout {
                        secs: *secs,
                        apply: *apply,
                    })
                }
            }
        }
        self.plans.retain(|p| p.plan.count != Some(0));
        decision
    }
}

/// Length of the rate limiter's rolling window unless [`crate::SandboxConfig::rate_window`]
/// says otherwise (Sage's: a minute).
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Per-business rolling-minute request counter.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    windows: HashMap<String, VecDeque<Instant>>,
}

impl RateLimiter {
    /// Admits a request or returns the seconds until one would be admitted, for `limit`
    /// requests in any rolling `span`.
    pub fn check(
        &mut self,
        business: &str,
        limit: u32,
        span: Duration,
        now: Instant,
    ) -> Result<(), u64> {
        let window = self.windows.entry(business.to_owned()).or_default();
        admit(window, limit, span, now)
    }

    pub fn clear(&mut self) {
        self.windows.clear();
    }
}

/// Rolling-window admission: at most `limit` admitted requests in any `span` (refused ones
/// are not counted).
pub(crate) fn admit(
    window: &mut VecDeque<Instant>,
    limit: u32,
    span: Duration,
    now: Instant,
) -> Result<(), u64> {
    while let Some(&front) = window.front() {
        if now.saturating_duration_since(front) >= span {
            window.pop_front();
        } else {
            break;
        }
    }
    if window.len() >= limit as usize {
        let oldest = window.front().copied().unwrap_or(now);
        let wait = span.saturating_sub(now.saturating_duration_since(oldest));
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        return Err(secs.max(1));
    }
    window.push_back(now);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_limits_applications() {
        let mut s = FaultState::new(None);
        s.add(
            FaultPlan::new(FaultKind::Error500)
                .on_resource("contacts")
                .on_method("post")
                .times(2),
        );
        assert_eq!(s.decide("b", "contacts", "GET").outcome, None);
        assert_eq!(s.decide("b", "products", "POST").outcome, None);
        assert_eq!(
            s.decide("b", "contacts", "POST").outcome,
            Some(Outcome::Error500)
        );
        assert_eq!(
            s.decide("b", "contacts", "POST").outcome,
            Some(Outcome::Error500)
        );
        assert_eq!(s.decide("b", "contacts", "POST").outcome, None);
        assert!(s.list().is_empty());
    }

    #[test]
    fn business_filter_and_latency_stacking() {
        let mut s = FaultState::new(None);
        s.add(FaultPlan::new(FaultKind::Latency { ms: 10 }));
        s.add(FaultPlan::new(FaultKind::Latency { ms: 5 }).for_business("b1"));
        s.add(
            FaultPlan::new(FaultKind::Rate429 {
                retry_after_secs: Some(3),
            })
            .for_business("b1"),
        );
        let d = s.decide("b1", "contacts", "GET");
        assert_eq!(d.latency, Duration::from_millis(15));
        assert_eq!(d.outcome, Some(Outcome::Rate429(Some(3))));
        let d = s.decide("b2", "contacts", "GET");
        assert_eq!(d.latency, Duration::from_millis(10));
        assert_eq!(d.outcome, None);
    }

    #[test]
    fn first_outcome_wins_and_later_is_not_consumed() {
        let mut s = FaultState::new(None);
        s.add(FaultPlan::new(FaultKind::AppliedThen500).times(1));
        s.add(
            FaultPlan::new(FaultKind::Timeout {
                secs: 1,
                apply: false,
            })
            .times(1),
        );
        assert_eq!(
            s.decide("b", "x", "POST").outcome,
            Some(Outcome::AppliedThen500)
        );
        assert_eq!(
            s.decide("b", "x", "POST").outcome,
            Some(Outcome::Timeout {
                secs: 1,
                apply: false
            })
        );
        assert_eq!(s.decide("b", "x", "POST").outcome, None);
    }

    #[test]
    fn probability_is_deterministic_per_seed() {
        let run = |seed| {
            let mut s = FaultState::new(None);
            s.seed(seed);
            s.add(FaultPlan::new(FaultKind::Error500).with_probability(0.5));
            (0..64)
                .map(|_| s.decide("b", "x", "GET").outcome.is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let hits = run(7).iter().filter(|h| **h).count();
        assert!(hits > 10 && hits < 54, "{hits}");
    }

    #[test]
    fn plan_json_shape() {
        let plan: FaultPlan = serde_json::from_str(
            r#"{"fault":{"kind":"rate_429","retry_after_secs":2},"business_id":"b","count":1}"#,
        )
        .unwrap();
        assert_eq!(
            plan.fault,
            FaultKind::Rate429 {
                retry_after_secs: Some(2)
            }
        );
        assert_eq!(plan.count, Some(1));
        for (kind, label) in [
            (FaultKind::Error500, "error_500"),
            (FaultKind::AppliedThen500, "applied_then_500"),
            (
                FaultKind::Timeout {
                    secs: 1,
                    apply: true,
                },
                "timeout",
            ),
            (FaultKind::Latency { ms: 1 }, "latency"),
        ] {
            let v = serde_json::to_value(&kind).unwrap();
            assert_eq!(v["kind"], label);
            assert_eq!(kind.label(), label);
        }
    }

    #[test]
    fn rolling_window() {
        let mut w = VecDeque::new();
        let t0 = Instant::now();
        let minute = RATE_WINDOW;
        assert!(admit(&mut w, 2, minute, t0).is_ok());
        assert!(admit(&mut w, 2, minute, t0 + Duration::from_secs(10)).is_ok());
        assert_eq!(
            admit(&mut w, 2, minute, t0 + Duration::from_secs(20)),
            Err(40)
        );
        assert!(admit(&mut w, 2, minute, t0 + Duration::from_secs(60)).is_ok());
        assert_eq!(
            admit(&mut w, 2, minute, t0 + Duration::from_millis(60_500)),
            Err(10)
        );
        // A shorter window rolls the same way.
        let mut w = VecDeque::new();
        let span = Duration::from_secs(10);
        assert!(admit(&mut w, 1, span, t0).is_ok());
        assert_eq!(
            admit(&mut w, 1, span, t0 + Duration::from_millis(9_999)),
            Err(1)
        );
        assert!(admit(&mut w, 1, span, t0 + Duration::from_secs(10)).is_ok());
    }
}
