//! Limits on the public HTTP endpoints: who the client is (its IP address) and how often it
//! may call.
//!
//! - **Client IP**: the socket peer address. Only when the peer is one of the configured
//!   trusted proxies (`LEDGER_TRUSTED_PROXIES`, empty by default) is `X-Forwarded-For` read:
//!   the right-most address in it that is not itself a trusted proxy.
//! - **Per IP**: every public endpoint (pairing start and poll, ingest, status, the portal's
//!   sign-in and forms, the Sage callback) shares one budget per client IP.
//! - **Per key**: ingest and status also have a budget per bearer key, so that one store
//!   hammering the gateway does not spend another's.
//!
//! A refused call is answered 429 with `Retry-After` and a JSON error naming the limit.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::AppState;

/// Rate limits of the public endpoints (flags or environment variables).
#[derive(Debug, Clone, clap::Args)]
pub struct Limits {
    /// Requests per second one client IP may make to the public endpoints, sustained.
    #[arg(long, env = "LEDGER_LIMIT_IP_PER_SECOND", default_value_t = 20)]
    pub ip_per_second: u32,
    /// Requests one client IP may make at once before the per-second rate applies.
    #[arg(long, env = "LEDGER_LIMIT_IP_BURST", default_value_t = 200)]
    pub ip_burst: u32,
    /// Requests per second one bearer key may make to ingest and status, sustained.
    #[arg(long, env = "LEDGER_LIMIT_KEY_PER_SECOND", default_value_t = 20)]
    pub key_per_second: u32,
    /// Requests one bearer key may make at once before the per-second rate applies.
    #[arg(long, env = "LEDGER_LIMIT_KEY_BURST", default_value_t = 200)]
    pub key_burst: u32,
    /// Pairing codes one client IP may have waiting to be claimed at once.
    #[arg(long, env = "LEDGER_MAX_OPEN_PAIRINGS_PER_IP", default_value_t = 10)]
    pub open_pairings_per_ip: u32,
    /// Seconds between two runs of one merchant's books check in the portal (0: no limit).
    #[arg(long, env = "LEDGER_BOOKS_CHECK_INTERVAL_SECS", default_value_t = 300)]
    pub books_check_interval_secs: u64,
    /// Proxies (IP addresses, comma-separated) whose `X-Forwarded-For` names the client.
    /// Empty: the socket peer is the client, and `X-Forwarded-For` is ignored.
    #[arg(long, env = "LEDGER_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            ip_per_second: 20,
            ip_burst: 200,
            key_per_second: 20,
            key_burst: 200,
            open_pairings_per_ip: 10,
            books_check_interval_secs: 300,
            trusted_proxies: Vec::new(),
        }
    }
}

fn quota(per_second: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

/// The keyed limiters of a running gateway.
pub struct Limiters {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_key: DefaultKeyedRateLimiter<String>,
    books: Option<DefaultKeyedRateLimiter<String>>,
    trusted_proxies: Vec<IpAddr>,
}

impl Limiters {
    /// Limiters for `limits`.
    pub fn new(limits: &Limits) -> Limiters {
        Limiters {
            per_ip: RateLimiter::keyed(quota(limits.ip_per_second, limits.ip_burst)),
            per_key: RateLimiter::keyed(quota(limits.key_per_second, limits.key_burst)),
            books: (limits.books_check_interval_secs > 0)
                .then(|| {
                    Quota::with_period(Duration::from_secs(limits.books_check_interval_secs))
                        .map(RateLimiter::keyed)
                })
                .flatten(),
            trusted_proxies: limits.trusted_proxies.clone(),
        }
    }

    /// Drops the state of clients not seen lately (keeps memory bounded under spraying).
    pub fn forget_idle(&self) {
        self.per_ip.retain_recent();
        self.per_ip.shrink_to_fit();
        self.per_key.retain_recent();
        self.per_key.shrink_to_fit();
        if let Some(books) = &self.books {
            books.retain_recent();
        }
    }

    /// `Err(wait)` when `merchant` ran its books check too recently.
    pub fn books_check(&self, merchant: &str) -> Result<(), Duration> {
        match &self.books {
            None => Ok(()),
            Some(limiter) => limiter
                .check_key(&merchant.to_string())
                .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now())),
        }
    }

    /// The client address of a request from `peer` with `headers`.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        client_ip(peer, headers, &self.trusted_proxies)
    }
}

/// The client of a request: the peer, or — when the peer is a trusted proxy — the right-most
/// `X-Forwarded-For` address that is not a trusted proxy.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .map(|s| s.parse::<IpAddr>())
        .collect::<Result<_, _>>()
        .unwrap_or_default();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !trusted.contains(ip))
            .unwrap_or(peer),
    )
}

/// The 429 answer naming `limit`, with `Retry-After` in whole seconds (at least 1).
pub fn too_many(limit: &str, wait: Duration, message: &str) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let mut response = crate::json_error_with(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        message,
        serde_json::json!({"limit": limit, "retry_after_seconds": seconds}),
    );
    if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

fn peer_of(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The client IP the gateway saw for `request` (put there by [`per_ip`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

/// Middleware: the per-IP budget of the public endpoints; records the [`ClientIp`].
pub async fn per_ip(
    State(app): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let ip = app.limiters.client_ip(peer_of(&request), request.headers());
    if let Some(ip) = ip {
        if let Err(not_until) = app.limiters.per_ip.check_key(&ip) {
            tracing::info!(%ip, path = %request.uri().path(), "per-IP rate limit");
            return too_many(
                "per_ip",
                not_until.wait_time_from(DefaultClock::default().now()),
                "too many requests from this address; slow down",
            );
        }
    }
    request.extensions_mut().insert(ClientIp(ip));
    next.run(request).await
}

/// Middleware: the per-key budget of ingest and status (keyed by the bearer's hash, checked
/// before the key is looked up, so a flood with one key does not reach the database).
pub async fn per_key(State(app): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if let Some(key) = crate::merchants::bearer(request.headers()) {
        let id = crate::merchants::hash_key(key);
        if let Err(not_until) = app.limiters.per_key.check_key(&id) {
            return too_many(
                "per_key",
                not_until.wait_time_from(DefaultClock::default().now()),
                "too many requests with this key; slow down",
            );
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
        h
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let client: IpAddr = "203.0.113.9".parse().unwrap();
        let peer: IpAddr = "198.51.100.4".parse().unwrap();
        // An untrusted peer cannot choose its address by header.
        assert_eq!(
            client_ip(Some(peer), &headers("203.0.113.9"), &[proxy]),
            Some(peer)
        );
        assert_eq!(
            client_ip(Some(peer), &headers("203.0.113.9"), &[]),
            Some(peer)
        );
        // Behind the trusted proxy: the right-most address the proxy appended.
        assert_eq!(
            client_ip(Some(proxy), &headers("1.2.3.4, 203.0.113.9"), &[proxy]),
            Some(client)
        );
        // Garbage in the header: the proxy itself is the client.
        assert_eq!(
            client_ip(Some(proxy), &headers("not-an-ip"), &[proxy]),
            Some(proxy)
        );
        assert_eq!(client_ip(None, &headers("1.2.3.4"), &[proxy]), None);
    }

    #[test]
    fn retry_after_is_whole_seconds_and_never_zero() {
        let r = too_many("per_ip", Duration::from_millis(10), "slow down");
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = too_many("per_key", Duration::from_millis(2500), "slow down");
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
    }
}
