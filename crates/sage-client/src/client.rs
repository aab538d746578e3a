//! The API client: authenticated JSON calls to Sage Accounting v3.1.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde_json::Value;
use tracing::field::Empty;
use tracing::Instrument;
use url::Url;

use crate::config::SageConfig;
use crate::error::{SageError, SageErrorItem};
use crate::http::{request_id, retry_after, transport_error};
use crate::tokens::{AccessToken, AccessTokenSource};

/// Header naming the Sage business a request is for (and, on responses, the one Sage used).
const X_BUSINESS: &str = "x-business";

/// Sage's largest page size; fewer pages means fewer calls against the rate limit.
const MAX_PAGE_SIZE: &str = "200";

/// Stop following `$next` after this many pages: 2,000,000 records at 200 a page is far beyond
/// any merchant, so reaching it means the links are looping.
const MAX_PAGES: usize = 10_000;

/// A successful answer from Sage.
#[derive(Debug, Clone)]
pub struct SageResponse {
    /// HTTP status (200, 201, 204, ...).
    pub status: u16,
    /// The JSON body; `Value::Null` when Sage sent none (e.g. 204 after a delete).
    pub body: Value,
    /// Sage's `x_request_id` header; quote it to Sage support.
    pub request_id: Option<String>,
    /// The business Sage says it used (its `X-Business` response header), or the one the
    /// request was sent for when Sage did not say (as on `/businesses`).
    pub business_id: Option<String>,
    /// Time from sending the request to reading the whole body.
    pub elapsed: Duration,
}

impl SageResponse {
    /// The `id` of the returned record (as after a POST), if the body has one.
    pub fn id(&self) -> Option<&str> {
        self.body.get("id").and_then(Value::as_str)
    }
}

/// Receives one notification per HTTP call to Sage, so the service layer can export metrics
/// (request counts, latency, error rates) without this crate depending on a metrics library.
pub trait CallObserver: Send + Sync {
    /// Called after every HTTP attempt, including the retry after a 401. `resource` is the
    /// first path segment (`sales_invoices`, never an id) so it is safe as a metric label;
    /// `status` is `None` when no response arrived (timeout, connection error).
    fn on_call(&self, method: &str, resource: &str, status: Option<u16>, elapsed: Duration);
}

/// How far a [`SageClient::list_all_reporting`] listing has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListProgress {
    /// Records read so far.
    pub listed: usize,
    /// How many Sage says the list holds (its `$total`), when it says.
    pub total: Option<u64>,
}

/// Client for the Sage Accounting v3.1 API, acting for many merchants.
///
/// Every call sends `Authorization: Bearer`, `X-Business`, `Accept` and `Content-Type`
/// (`application/json`). A 401 is answered by invalidating the token, fetching a fresh one
/// and retrying once. Nothing else is retried here: retry policy (backoff, dead-lettering,
/// pausing) belongs to the caller, guided by [`SageError::class`].
#[derive(Clone)]
pub struct SageClient {
    config: Arc<SageConfig>,
    http: reqwest::Client,
    tokens: Arc<dyn AccessTokenSource>,
    observer: Option<Arc<dyn CallObserver>>,
}

impl fmt::Debug for SageClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SageClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

enum Body<'a> {
    None,
    Json(&'a Value),
}

impl SageClient {
    /// Creates a client that obtains tokens from `tokens`.
    ///
    /// Redirects are not followed: Sage's API never redirects, and following one would send
    /// the bearer token to wherever it pointed.
    ///
    /// # Panics
    /// If the TLS backend cannot be initialised (as `reqwest::Client::new` would).
    pub fn new(config: SageConfig, tokens: Arc<dyn AccessTokenSource>) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .build()
            .expect("build the HTTP client (TLS backend available)");
        Self::with_http_client(config, tokens, http)
    }

    /// Creates a client on a caller-supplied `reqwest::Client` (shared pool, proxies, ...).
    pub fn with_http_client(
        config: SageConfig,
        tokens: Arc<dyn AccessTokenSource>,
        http: reqwest::Client,
    ) -> Self {
        SageClient {
            config: Arc::new(config),
            http,
            tokens,
            observer: None,
        }
    }

    /// Adds an observer that hears about every HTTP call.
    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The configuration this client uses.
    pub fn config(&self) -> &SageConfig {
        &self.config
    }

    /// `GET {api_base}/{path}?{query}` for `merchant`, e.g. `get(m, "sales_invoices/abc",
    /// &[("show_payments_allocations", "true")])`.
    pub async fn get(
        &self,
        merchant: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<SageResponse, SageError> {
        let url = self.url(path, query)?;
        self.call(merchant, Method::GET, url, Body::None).await
    }

    /// Creates a record: `POST {api_base}/{resource}` with body `{root: fields}`.
    ///
    /// `idempotency_id` (32 hex characters, see [`crate::idempotency_id`]) is put *inside* the
    /// root object, which is where Sage reads it (its swagger omits the field). For 7 days Sage
    /// answers a repeat with the record created first, so a retry after a timeout or a 500
    /// cannot create a duplicate.
    pub async fn post(
        &self,
        merchant: &str,
        resource: &str,
        root: &str,
        fields: Value,
        idempotency_id: Option<&str>,
    ) -> Result<SageResponse, SageError> {
        let body = wrap(root, fields, idempotency_id)?;
        let url = self.url(resource, &[])?;
        self.call(merchant, Method::POST, url, Body::Json(&body))
            .await
    }

    /// Updates a record: `PUT {api_base}/{path}` (e.g. `"contacts/{id}"`) with body
    /// `{root: fields}`, the idempotency id placed as for [`SageClient::post`].
    pub async fn put(
        &self,
        merchant: &str,
        path: &str,
        root: &str,
        fields: Value,
        idempotency_id: Option<&str>,
    ) -> Result<SageResponse, SageError> {
        let body = wrap(root, fields, idempotency_id)?;
        let url = self.url(path, &[])?;
        self.call(merchant, Method::PUT, url, Body::Json(&body))
            .await
    }

    /// `DELETE {api_base}/{path}?{query}`; voiding documents takes `void_reason` in the
    /// query, as Sage's swagger defines it.
    pub async fn delete(
        &self,
        merchant: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<SageResponse, SageError> {
        let url = self.url(path, query)?;
        self.call(merchant, Method::DELETE, url, Body::None).await
    }

    /// Voids a sales invoice or credit note: `DELETE {api_base}/{path}` (e.g.
    /// `"sales_invoices/{id}"`) with `void_reason`. Sage's swagger defines the reason as a query
    /// parameter and its Invoicing guide shows it in a JSON body (quirk 21), so it is sent in
    /// both. Sage refuses to void a document that still has payments or allocations.
    pub async fn void(
        &self,
        merchant: &str,
        path: &str,
        void_reason: &str,
    ) -> Result<SageResponse, SageError> {
        let url = self.url(path, &[("void_reason", void_reason)])?;
        let body = serde_json::json!({ "void_reason": void_reason });
        self.call(merchant, Method::DELETE, url, Body::Json(&body))
            .await
    }

    /// Reads every record of a list endpoint by following `$next` until it is null.
    ///
    /// Pages are never counted up by hand: Sage answers a page past the end with the last
    /// page again, so `page++` until empty never terminates. `items_per_page` defaults to
    /// Sage's maximum (200) unless `query` sets it. Filters in `query` are carried onto every
    /// page even if a `$next` link leaves them out.
    pub async fn list_all(
        &self,
        merchant: &str,
        resource: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<Value>, SageError> {
        self.list_all_reporting(merchant, resource, query, |_| {})
            .await
    }

    /// [`SageClient::list_all`], calling `progress` after every page with how far the listing
    /// has got (for long listings that people watch).
    pub async fn list_all_reporting(
        &self,
        merchant: &str,
        resource: &str,
        query: &[(&str, &str)],
        mut progress: impl FnMut(ListProgress) + Send,
    ) -> Result<Vec<Value>, SageError> {
        let mut query: Vec<(&str, &str)> = query.to_vec();
        if !query.iter().any(|(k, _)| *k == "items_per_page") {
            query.push(("items_per_page", MAX_PAGE_SIZE));
        }
        let mut url = self.url(resource, &query)?;
        let mut visited = HashSet::new();
        let mut items = Vec::new();
        let mut last_page_number: Option<i64> = None;
        for _ in 0..MAX_PAGES {
            visited.insert(url.to_string());
            let response = self
                .call(merchant, Method::GET, url.clone(), Body::None)
                .await?;
            let page_number = response.body.get("$page").and_then(Value::as_i64);
            if let (Some(now), Some(before)) = (page_number, last_page_number) {
                if now <= before {
                    // Sage repeated a page instead of ending the list: everything has been
                    // read already, and adding this page would duplicate records.
                    tracing::warn!(
                        resource,
                        page = now,
                        "Sage repeated a page; stopping the listing"
                    );
                    return Ok(items);
                }
            }
            last_page_number = page_number.or(last_page_number);
            let page_items = response
                .body
                .get("$items")
                .and_then(Value::as_array)
                .ok_or_else(|| SageError::Protocol {
                    message: format!("list response from {resource} has no $items array"),
                    request_id: response.request_id.clone(),
                })?;
            items.extend(page_items.iter().cloned());
            progress(ListProgress {
                listed: items.len(),
                total: response.body.get("$total").and_then(Value::as_u64),
            });
            let next = match response.body.get("$next") {
                Some(Value::String(next)) if !next.trim().is_empty() => next,
                _ => return Ok(items),
            };
            url = self.resolve_next(next, &query)?;
            if visited.contains(url.as_str()) {
                return Err(SageError::Protocol {
                    message: format!(
                        "$next of {resource} points back to a page already read ({url})"
                    ),
                    request_id: response.request_id.clone(),
                });
            }
        }
        Err(SageError::Protocol {
            message: format!("listing {resource} did not end after {MAX_PAGES} pages"),
            request_id: None,
        })
    }

    /// The first record of a list endpoint matching `query`, or `None` when the list is empty.
    /// Typical use: looking a document up by reference before re-posting it, e.g.
    /// `find_first(m, "sales_invoices", &[("search", "INV-1001")])`. Only the first page is
    /// read, so make the filter specific.
    pub async fn find_first(
        &self,
        merchant: &str,
        resource: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<Value>, SageError> {
        let response = self.get(merchant, resource, query).await?;
        let items = response
            .body
            .get("$items")
            .and_then(Value::as_array)
            .ok_or_else(|| SageError::Protocol {
                message: format!("list response from {resource} has no $items array"),
                request_id: response.request_id.clone(),
            })?;
        Ok(items.first().cloned())
    }

    /// Lists the businesses an access token can reach (`GET /businesses`), for the step right
    /// after the consent page where the merchant picks the business to sync into. No
    /// `X-Business` is sent because no business has been chosen yet.
    pub async fn list_businesses(&self, access_token: &str) -> Result<Vec<Value>, SageError> {
        let url = self.url("businesses", &[])?;
        let request = self
            .http
            .get(url)
            .timeout(self.config.request_timeout)
            .header(AUTHORIZATION, bearer(access_token)?)
            .header(ACCEPT, "application/json");
        let span = tracing::info_span!(
            "sage.call",
            method = "GET",
            resource = "businesses",
            status = Empty,
            x_request_id = Empty,
            elapsed_ms = Empty,
        );
        let response = async {
            let started = Instant::now();
            let result = request.send().await;
            self.finish("GET", "businesses", None, started, result)
                .await
        }
        .instrument(span)
        .await?;
        match response.body {
            Value::Array(items) => Ok(items),
            Value::Object(ref map) => match map.get("$items") {
                Some(Value::Array(items)) => Ok(items.clone()),
                _ => Err(SageError::Protocol {
                    message: "/businesses answered neither a list nor $items".into(),
                    request_id: response.request_id,
                }),
            },
            _ => Err(SageError::Protocol {
                message: "/businesses answered neither a list nor $items".into(),
                request_id: response.request_id,
            }),
        }
    }

    /// Builds `{api_base}/{path}` plus query parameters.
    fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, SageError> {
        let raw = format!(
            "{}/{}",
            self.config.api_base(),
            path.trim_start_matches('/')
        );
        let mut url = Url::parse(&raw).map_err(|e| {
            SageError::InvalidInput(format!("cannot build a URL from path {path:?}: {e}"))
        })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// Turns a `$next` link into a URL on the API host. Sage's links are paths relative to the
    /// API root (`/sales_quotes?page=3&items_per_page=25`); absolute links are accepted only on
    /// the API's own origin, because the bearer token goes wherever the link points.
    fn resolve_next(&self, next: &str, query: &[(&str, &str)]) -> Result<Url, SageError> {
        let base = Url::parse(self.config.api_base())
            .map_err(|e| SageError::InvalidInput(format!("api_base_url is not a URL: {e}")))?;
        let protocol = |message: String| SageError::Protocol {
            message,
            request_id: None,
        };
        let mut url = match Url::parse(next) {
            Ok(absolute) => {
                if absolute.origin() != base.origin() {
                    return Err(protocol(format!(
                        "$next link {next} leaves the API host; not following it"
                    )));
                }
                absolute
            }
            Err(_) => {
                let base_path = base.path().trim_end_matches('/');
                let joined = if !base_path.is_empty() && next.starts_with(&format!("{base_path}/"))
                {
                    // The link already includes the version prefix (`/v3.1/...`).
                    let mut u = base.clone();
                    u.set_path("");
                    format!("{}{}", u.as_str().trim_end_matches('/'), next)
                } else {
                    format!(
                        "{}/{}",
                        self.config.api_base(),
                        next.trim_start_matches('/')
                    )
                };
                Url::parse(&joined)
                    .map_err(|e| protocol(format!("$next link {next} is not usable: {e}")))?
            }
        };
        let present: HashSet<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        let missing: Vec<(&str, &str)> = query
            .iter()
            .filter(|(k, _)| !present.contains(*k))
            .copied()
            .collect();
        if !missing.is_empty() {
            url.query_pairs_mut().extend_pairs(missing);
        }
        Ok(url)
    }

    /// One logical call: token, request, and on 401 a single retry with a fresh token.
    async fn call(
        &self,
        merchant: &str,
        method: Method,
        url: Url,
        body: Body<'_>,
    ) -> Result<SageResponse, SageError> {
        let resource = resource_label(&url, self.config.api_base());
        let span = tracing::info_span!(
            "sage.call",
            merchant,
            method = %method,
            resource = %resource,
            business_id = Empty,
            status = Empty,
            x_request_id = Empty,
            elapsed_ms = Empty,
            retried_after_401 = false,
        );
        async {
            let token = self.tokens.access_token(merchant).await?;
            tracing::Span::current().record("business_id", token.business_id.as_str());
            match self.send(&method, &url, &body, &token, &resource).await {
                Err(SageError::Unauthorized { .. }) => {
                    // The token may have been replaced or invalidated by Sage before its
                    // expiry; one fresh token decides whether this is a token problem or an
                    // authorisation problem (e.g. a lapsed subscription).
                    tracing::Span::current().record("retried_after_401", true);
                    self.tokens.invalidate(merchant, &token.token).await?;
                    let fresh = self.tokens.access_token(merchant).await?;
                    self.send(&method, &url, &body, &fresh, &resource).await
                }
                other => other,
            }
        }
        .instrument(span)
        .await
    }

    async fn send(
        &self,
        method: &Method,
        url: &Url,
        body: &Body<'_>,
        token: &AccessToken,
        resource: &str,
    ) -> Result<SageResponse, SageError> {
        let business = HeaderValue::from_str(&token.business_id).map_err(|_| {
            SageError::InvalidInput(format!(
                "business id {:?} cannot be sent as a header",
                token.business_id
            ))
        })?;
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .timeout(self.config.request_timeout)
            .header(AUTHORIZATION, bearer(&token.token)?)
            .header(X_BUSINESS, business)
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/json");
        if let Body::Json(value) = body {
            let bytes = serde_json::to_vec(value)
                .map_err(|e| SageError::InvalidInput(format!("body is not serialisable: {e}")))?;
            request = request.body(bytes);
        }
        let started = Instant::now();
        let result = request.send().await;
        self.finish(
            method.as_str(),
            resource,
            Some(&token.business_id),
            started,
            result,
        )
        .await
    }

    /// Reads the answer, records it in the span and the observer, and classifies it.
    async fn finish(
        &self,
        method: &str,
        resource: &str,
        sent_business: Option<&str>,
        started: Instant,
        result: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<SageResponse, SageError> {
        let span = tracing::Span::current();
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                let elapsed = started.elapsed();
                span.record("elapsed_ms", elapsed.as_millis() as u64);
                self.observe(method, resource, None, elapsed);
                return Err(transport_error(&format!("{method} {resource}"), e));
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let request_id = request_id(&headers);
        let answered_business = headers
            .get(X_BUSINESS)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = response.text().await;
        let elapsed = started.elapsed();
        span.record("status", status);
        span.record("elapsed_ms", elapsed.as_millis() as u64);
        if let Some(id) = &request_id {
            span.record("x_request_id", id.as_str());
        }
        self.observe(method, resource, Some(status), elapsed);
        let text = text.map_err(|e| transport_error(&format!("reading {method} {resource}"), e))?;

        if let (Some(sent), Some(answered)) = (sent_business, answered_business.as_deref()) {
            if !sent.eq_ignore_ascii_case(answered) {
                // Sage falls back to the user's lead business when X-Business is not honoured;
                // writing into the wrong books is the worst outcome, so make it visible.
                tracing::warn!(
                    sent_business = sent,
                    answered_business = answered,
                    "Sage answered for a different business than requested (lead-business drift?)"
                );
            }
        }

        match status {
            200..=299 => {
                let body = if text.trim().is_empty() {
                    Value::Null
                } else {
                    serde_json::from_str(&text).map_err(|e| SageError::Protocol {
                        message: format!("{method} {resource} answered {status} with a body that is not JSON: {e}"),
                        request_id: request_id.clone(),
                    })?
                };
                Ok(SageResponse {
                    status,
                    body,
                    request_id,
                    business_id: answered_business.or_else(|| sent_business.map(str::to_string)),
                    elapsed,
                })
            }
            401 => Err(SageError::Unauthorized {
                errors: SageErrorItem::parse_envelope(&text),
                request_id,
            }),
            408 | 425 | 429 | 500..=599 => {
                let errors = SageErrorItem::parse_envelope(&text);
                let detail = if errors.is_empty() {
                    "no details".to_string()
                } else {
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                Err(SageError::Transient {
                    status: Some(status),
                    message: format!("{method} {resource}: {detail}"),
                    retry_after: retry_after(&headers),
                    request_id,
                })
            }
            400..=499 => Err(SageError::Rejected {
                status,
                errors: SageErrorItem::parse_envelope(&text),
                request_id,
            }),
            _ => Err(SageError::Protocol {
                message: format!("{method} {resource} answered unexpected HTTP {status}"),
                request_id,
            }),
        }
    }

    fn observe(&self, method: &str, resource: &str, status: Option<u16>, elapsed: Duration) {
        if let Some(observer) = &self.observer {
            observer.on_call(method, resource, status, elapsed);
        }
    }
}

fn bearer(token: &str) -> Result<HeaderValue, SageError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        SageError::InvalidInput("access token contains characters not allowed in a header".into())
    })?;
    // Keeps the token out of reqwest's and hyper's debug output.
    value.set_sensitive(true);
    Ok(value)
}

/// The first path segment below the API base: a low-cardinality name for spans and metrics.
fn resource_label(url: &Url, api_base: &str) -> String {
    let base_path = Url::parse(api_base)
        .map(|u| u.path().trim_end_matches('/').to_string())
        .unwrap_or_default();
    let path = url.path();
    let rest = path.strip_prefix(base_path.as_str()).unwrap_or(path);
    rest.trim_start_matches('/')
        .split('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("(root)")
        .to_string()
}

/// Builds `{root: fields}` with the idempotency id inside `fields`.
fn wrap(root: &str, fields: Value, idempotency_id: Option<&str>) -> Result<Value, SageError> {
    let Value::Object(mut map) = fields else {
        return Err(SageError::InvalidInput(format!(
            "fields for {root} must be a JSON object"
        )));
    };
    if root.is_empty() {
        return Err(SageError::InvalidInput("root object name is empty".into()));
    }
    if let Some(id) = idempotency_id {
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SageError::InvalidInput(format!(
                "idempotency_id must be 32 hex characters, got {id:?}"
            )));
        }
        match map.get("idempotency_id") {
            Some(Value::String(existing)) if existing != id => {
                return Err(SageError::InvalidInput(format!(
                    "fields already carry idempotency_id {existing:?}, different from {id:?}"
                )));
            }
            _ => {
                map.insert("idempotency_id".into(), Value::String(id.to_string()));
            }
        }
    }
    let mut outer = serde_json::Map::new();
    outer.insert(root.to_string(), Value::Object(map));
    Ok(Value::Object(outer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use serde_json::json;

    struct NoTokens;

    #[async_trait]
    impl AccessTokenSource for NoTokens {
        async fn access_token(&self, merchant: &str) -> Result<AccessToken, SageError> {
            Err(SageError::NotConnected {
                merchant: merchant.into(),
            })
        }
        async fn invalidate(&self, _: &str, _: &str) -> Result<(), SageError> {
            Ok(())
        }
    }

    fn client(base: &str) -> SageClient {
        let mut config = SageConfig::sage_production("id", "secret", "https://x/cb");
        config.api_base_url = base.into();
        SageClient::new(config, Arc::new(NoTokens))
    }

    #[test]
    fn wrap_puts_the_idempotency_id_inside_the_root_object() {
        let id = "0123456789abcdef0123456789abcdef";
        let body = wrap("sales_invoice", json!({"contact_id": "c1"}), Some(id)).unwrap();
        assert_eq!(
            body,
            json!({"sales_invoice": {"contact_id": "c1", "idempotency_id": id}})
        );
        assert!(body.get("idempotency_id").is_none());
        let plain = wrap("contact", json!({"name": "A"}), None).unwrap();
        assert_eq!(plain, json!({"contact": {"name": "A"}}));
    }

    #[test]
    fn wrap_refuses_bad_input() {
        assert!(wrap("contact", json!([1]), None).is_err());
        assert!(wrap("contact", json!({}), Some("short")).is_err());
        assert!(wrap(
            "contact",
            json!({}),
            Some("0123456789abcdef0123456789abcdeg")
        )
        .is_err());
        assert!(wrap(
            "contact",
            json!({"idempotency_id": "ffffffffffffffffffffffffffffffff"}),
            Some("0123456789abcdef0123456789abcdef")
        )
        .is_err());
    }

    #[test]
    fn resource_labels_drop_ids_and_the_version_prefix() {
        let base = "https://api.accounting.sage.com/v3.1";
        let url =
            Url::parse("https://api.accounting.sage.com/v3.1/sales_invoices/abc?x=1").unwrap();
        assert_eq!(resource_label(&url, base), "sales_invoices");
        let url = Url::parse("http://127.0.0.1:9/contacts").unwrap();
        assert_eq!(resource_label(&url, "http://127.0.0.1:9"), "contacts");
    }

    #[test]
    fn next_links_resolve_against_the_api_root_and_keep_filters() {
        let c = client("https://api.accounting.sage.com/v3.1/");
        let q = [("search", "INV 1"), ("items_per_page", "200")];
        let u = c
            .resolve_next("/sales_quotes?page=3&items_per_page=25", &q)
            .unwrap();
        assert_eq!(u.path(), "/v3.1/sales_quotes");
        let pairs: Vec<(String, String)> = u.query_pairs().into_owned().collect();
        assert!(pairs.contains(&("page".into(), "3".into())));
        assert!(pairs.contains(&("items_per_page".into(), "25".into())));
        assert!(pairs.contains(&("search".into(), "INV 1".into())));
        assert_eq!(
            pairs.iter().filter(|(k, _)| k == "items_per_page").count(),
            1
        );

        let u = c.resolve_next("/v3.1/contacts?page=2", &[]).unwrap();
        assert_eq!(
            u.as_str(),
            "https://api.accounting.sage.com/v3.1/contacts?page=2"
        );
        let u = c
            .resolve_next("https://api.accounting.sage.com/v3.1/contacts?page=2", &[])
            .unwrap();
        assert_eq!(u.path(), "/v3.1/contacts");
        assert!(c
            .resolve_next("https://evil.example/v3.1/contacts?page=2", &[])
            .is_err());
    }

    #[test]
    fn urls_join_paths_and_queries() {
        let c = client("http://127.0.0.1:9/v3.1");
        let u = c.url("/contacts", &[("email", "a+b@x.com")]).unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:9/v3.1/contacts?email=a%2Bb%40x.com"
        );
    }
}
