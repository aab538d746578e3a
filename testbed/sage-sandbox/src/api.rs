//! The `/v3.1` API: authentication, business selection, throttling, fault
//! injection, idempotency and dispatch to the resources.

use crate::auth::{Principal, TokenProblem};
use crate::error::ApiError;
use crate::exchange::{CallBusiness, ConnKill};
use crate::faults::Outcome;
use crate::listing;
use crate::model::{Business, IdempotencyEntry, Record, Store};
use crate::resources::contacts;
use crate::resources::items::{self, ItemKind};
use crate::resources::payments;
use crate::resources::sales::{self, SalesKind};
use crate::schema;
use crate::seed;
use crate::shared::{lock, Shared};
use axum::body::Bytes;
use axum::extract::rejection::{ExtensionRejection, MatchedPathRejection, QueryRejection};
use axum::extract::{MatchedPath, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{NaiveDate, Utc};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Writable resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Res {
    Contacts,
    Products,
    Services,
    SalesInvoices,
    SalesCreditNotes,
    ContactPayments,
    ContactAllocations,
    StockItems,
    StockMovements,
}

impl Res {
    pub const ALL: [Res; 9] = [
        Res::Contacts,
        Res::Products,
        Res::Services,
        Res::SalesInvoices,
        Res::SalesCreditNotes,
        Res::ContactPayments,
        Res::ContactAllocations,
        Res::StockItems,
        Res::StockMovements,
    ];

    pub fn segment(self) -> &'static str {
        match self {
            Res::Contacts => "contacts",
            Res::Products => "products",
            Res::Services => "services",
            Res::SalesInvoices => "sales_invoices",
            Res::SalesCreditNotes => "sales_credit_notes",
            Res::ContactPayments => "contact_payments",
            Res::ContactAllocations => "contact_allocations",
            Res::StockItems => "stock_items",
            Res::StockMovements => "stock_movements",
        }
    }

    fn from_segment(s: &str) -> Option<Res> {
        Res::ALL.into_iter().find(|r| r.segment() == s)
    }

    fn root(self) -> &'static str {
        match self {
            Res::Contacts => "contact",
            Res::Products => "product",
            Res::Services => "service",
            Res::SalesInvoices => "sales_invoice",
            Res::SalesCreditNotes => "sales_credit_note",
            Res::ContactPayments => "contact_payment",
            Res::ContactAllocations => "contact_allocation",
            Res::StockItems => "stock_item",
            Res::StockMovements => "stock_movement",
        }
    }

    fn post_definition(self) -> &'static str {
        match self {
            Res::Contacts => "postContacts",
            Res::Products => "postProducts",
            Res::Services => "postServices",
            Res::SalesInvoices => "postSalesInvoices",
            Res::SalesCreditNotes => "postSalesCreditNotes",
            Res::ContactPayments => "postContactPayments",
            Res::ContactAllocations => "postContactAllocations",
            Res::StockItems => "postStockItems",
            Res::StockMovements => "postStockMovements",
        }
    }

    fn put_definition(self) -> Option<&'static str> {
        match self {
            Res::Contacts => Some("putContacts"),
            Res::Products => Some("putProducts"),
            Res::Services => Some("putServices"),
            Res::StockItems => Some("putStockItems"),
            _ => None,
        }
    }
}

/// Read-only collections every business shares.
pub(crate) const STATIC_COLLECTIONS: [&str; 5] = [
    "tax_rates",
    "currencies",
    "payment_methods",
    "contact_types",
    "eu_goods_services_types",
];

/// A successful answer.
struct Answer {
    status: StatusCode,
    body: Option<Value>,
    /// Root name when the answer came from the idempotency store.
    replayed: Option<String>,
}

impl Answer {
    fn ok(body: Value) -> Self {
        Answer {
            status: StatusCode::OK,
            body: Some(body),
            replayed: None,
        }
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = (status, bytes).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn authenticate(sh: &Shared, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let Some(token) = bearer(headers) else {
        return Err(ApiError::unauthorized(
            "The Authorization header is missing or is not a Bearer token.",
        ));
    };
    lock(&sh.auth)
        .authenticate(token, Instant::now())
        .map_err(|p| {
            ApiError::unauthorized(match p {
                TokenProblem::Unknown => "The access token is invalid.",
                TokenProblem::Expired => "The access token has expired.",
                TokenProblem::Revoked => "The access token has been revoked.",
            })
        })
}

/// `X-Business` when sent, else the user's lead business.
fn resolve_business(
    sh: &Shared,
    principal: &Principal,
    headers: &HeaderMap,
) -> Result<String, ApiError> {
    let businesses = sh.user_businesses(&principal.user_id);
    match headers
        .get("x-business")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(requested) => {
            if businesses.iter().any(|b| b == requested) {
                Ok(requested.to_owned())
            } else {
                Err(ApiError::forbidden(
                    "The user has no access to the business given in X-Business.",
                ))
            }
        }
        None => businesses
            .first()
            .cloned()
            .ok_or_else(|| ApiError::forbidden("The user has no business.")),
    }
}

fn with_business(mut resp: Response, business: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(business) {
        resp.headers_mut().insert("x-business", v);
    }
    resp.extensions_mut()
        .insert(CallBusiness(business.to_owned()));
    resp
}

/// Holds a request for `secs` (or until the server stops), then closes its
/// connection without answering.
async fn hold_and_drop(
    sh: &Shared,
    kill: Option<ConnKill>,
    secs: u64,
    method: &Method,
    template: &str,
    uri: &Uri,
    business: &str,
) -> Response {
    let mut stopping = sh.stopping.subscribe();
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(secs)) => {}
        _ = stopping.wait_for(|s| *s) => {}
    }
    // The call never gets a response, so the counter records it here with status 0.
    lock(&sh.stats).record(method.as_str(), template, uri.path(), 0, Some(business), "");
    sh.metrics
        .requests
        .with_label_values(&[method.as_str(), template, "0", business])
        .inc();
    if let Some(k) = kill {
        k.0.notify_one();
        // The connection task drops this future once it sees the signal.
        std::future::pending::<()>().await;
    }
    ApiError::unexpected().into_response()
}

/// Handler for every `/v3.1` route.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn handle(
    State(sh): State<Arc<Shared>>,
    matched: Result<MatchedPath, MatchedPathRejection>,
    kill: Result<Extension<ConnKill>, ExtensionRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Bytes,
) -> Response {
    let kill = kill.ok();
    let template = matched
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|_| uri.path().to_owned());
    let segments: Vec<String> = uri
        .path()
        .trim_start_matches("/v3.1")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let query = match query {
        Ok(q) => q.0,
        Err(_) => {
            return ApiError::invalid("", "The query string could not be parsed.").into_response()
        }
    };

    let principal = match authenticate(&sh, &headers) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let business_id = match resolve_business(&sh, &principal, &headers) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let Some(business) = sh.business(&business_id) else {
        return ApiError::forbidden("The business no longer exists.").into_response();
    };
    let resource = segments.first().cloned().unwrap_or_default();

    let arrived = Instant::now();
    lock(&sh.stats).arrival(&business_id, sh.config.rate_window, arrived);
    let limit = lock(&sh.faults).rate_limit_per_minute;
    if let Some(limit) = limit {
        if let Err(retry) =
            lock(&sh.limiter).check(&business_id, limit, sh.config.rate_window, arrived)
        {
            lock(&sh.stats).rate_limited(&business_id);
            return with_business(
                ApiError::too_many_requests(Some(retry)).into_response(),
                &business_id,
            );
        }
    }

    // Registered before any injected latency so that overlapping POSTs are
    // seen as overlapping.
    let _inflight = (method == Method::POST).then(|| sh.begin_post(&business_id, &resource));

    let decision = lock(&sh.faults).decide(&business_id, &resource, method.as_str());
    if !decision.applied.is_empty() {
        let mut stats = lock(&sh.stats);
        for label in &decision.applied {
            stats.fault(&business_id, label);
            sh.metrics.faults.with_label_values(&[label]).inc();
        }
    }
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    match decision.outcome {
        Some(Outcome::Rate429(retry)) => {
            return with_business(
                ApiError::too_many_requests(retry).into_response(),
                &business_id,
            );
        }
        Some(Outcome::Error500) => {
            return with_business(ApiError::unexpected().into_response(), &business_id)
        }
        Some(Outcome::Timeout { secs, apply: false }) => {
            return hold_and_drop(
                &sh,
                kill.map(|k| k.0),
                secs,
                &method,
                &template,
                &uri,
                &business_id,
            )
            .await;
        }
        _ => {}
    }

    let result = if resource == "businesses" {
        // Answered without holding this business's lock: listing locks other
        // businesses, and holding two business locks at once could deadlock.
        drop(business);
        businesses(&sh, &principal, &method, &segments, &query)
    } else {
        let mut biz = lock(&business);
        execute(&sh, &mut biz, &method, &segments, &query, &body)
    };
    let resp = match result {
        Ok(answer) => {
            if let Some(root) = &answer.replayed {
                lock(&sh.stats).replay(&business_id, root);
                sh.metrics.replays.with_label_values(&[root]).inc();
            }
            match &answer.body {
                Some(b) => json_response(answer.status, b),
                None => answer.status.into_response(),
            }
        }
        Err(e) => e.into_response(),
    };
    match decision.outcome {
        Some(Outcome::AppliedThen500) => {
            with_business(ApiError::unexpected().into_response(), &business_id)
        }
        Some(Outcome::Timeout { secs, apply: true }) => {
            hold_and_drop(
                &sh,
                kill.map(|k| k.0),
                secs,
                &method,
                &template,
                &uri,
                &business_id,
            )
            .await
        }
        _ => with_business(resp, &business_id),
    }
}

fn method_not_allowed() -> ApiError {
    ApiError::single(
        StatusCode::METHOD_NOT_ALLOWED,
        crate::error::DataCode::RecordInvalid,
        "Method not allowed.",
        "",
    )
}

fn execute(
    sh: &Shared,
    biz: &mut Business,
    method: &Method,
    segments: &[String],
    q: &HashMap<String, String>,
    body: &Bytes,
) -> Result<Answer, ApiError> {
    let now = Utc::now();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let get = *method == Method::GET;
    match seg.as_slice() {
        ["financial_settings"] if get => {
            Ok(Answer::ok(Value::Object(biz.financial_settings_json())))
        }
        [collection] if get && STATIC_COLLECTIONS.contains(collection) => {
            let items = seed::static_items(collection).unwrap_or_default();
            let refs: Vec<&Map<String, Value>> = items.iter().collect();
            let params = listing::parse_params(q, &[])?;
            Ok(Answer::ok(listing::envelope(
                &refs,
                &params,
                &format!("/{collection}"),
                q,
            )))
        }
        [collection, id] if get && STATIC_COLLECTIONS.contains(collection) => {
            seed::static_items(collection)
                .unwrap_or_default()
                .into_iter()
                .find(|m| m.get("id").and_then(Value::as_str) == Some(id))
                .map(|m| Answer::ok(Value::Object(m)))
                .ok_or_else(ApiError::not_found)
        }
        ["ledger_accounts"] if get => list_ledger_accounts(biz, q),
        ["ledger_accounts", id] if get => biz
            .ledger_account(id)
            .map(|l| Answer::ok(Value::Object(l.to_json())))
            .ok_or_else(ApiError::not_found),
        ["bank_accounts"] if get => {
            let maps: Vec<Map<String, Value>> =
                biz.bank_accounts.iter().map(|b| b.to_json()).collect();
            let refs: Vec<&Map<String, Value>> = maps.iter().collect();
            let params = listing::parse_params(q, &[])?;
            Ok(Answer::ok(listing::envelope(
                &refs,
                &params,
                "/bank_accounts",
                q,
            )))
        }
        ["bank_accounts"] if *method == Method::POST => payments::create_bank_account(biz, body)
            .map(|b| Answer {
                status: StatusCode::CREATED,
                body: Some(b),
                replayed: None,
            }),
        ["bank_accounts", id] if get => biz
            .bank_account(id)
            .map(|b| Answer::ok(Value::Object(b.to_json())))
            .ok_or_else(ApiError::not_found),
        [resource] => {
            let res = Res::from_segment(resource).ok_or_else(ApiError::not_found)?;
            match *method {
                Method::GET => list(biz, res, q).map(Answer::ok),
                Method::POST => write(sh, biz, res, None, body, now),
                _ => Err(method_not_allowed()),
            }
        }
        [resource, id] => {
            let res = Res::from_segment(resource).ok_or_else(ApiError::not_found)?;
            match *method {
                Method::GET => get_one(biz, res, id).map(Answer::ok),
                Method::PUT if res.put_definition().is_some() => {
                    write(sh, biz, res, Some(id), body, now)
                }
                Method::DELETE => {
                    match res {
                        Res::Contacts => contacts::delete(biz, id, now)?,
                        Res::SalesInvoices | Res::SalesCreditNotes => {
                            let kind = if res == Res::SalesInvoices {
                                SalesKind::Invoice
                            } else {
                                SalesKind::CreditNote
                            };
                            let reason = void_reason_of(q, body, kind.root());
                            sales::void(biz, kind, id, reason.as_deref(), now)?
                        }
                        Res::ContactPayments => payments::delete_payment(biz, id, now)?,
                        Res::ContactAllocations => payments::delete_allocation(biz, id, now)?,
                        _ => return Err(method_not_allowed()),
                    }
                    Ok(Answer {
                        status: StatusCode::NO_CONTENT,
                        body: None,
                        replayed: None,
                    })
                }
                _ => Err(method_not_allowed()),
            }
        }
        _ => Err(ApiError::not_found()),
    }
}

/// The `void_reason` of a DELETE-void (quirk 21): the query parameter the swagger defines,
/// else the body the Invoicing guide shows, either bare (`{"void_reason": ..}`) or under the
/// document's root (`{"sales_invoice": {"void_reason": ..}}`).
fn void_reason_of(q: &HashMap<String, String>, body: &Bytes, root: &str) -> Option<String> {
    if let Some(r) = q.get("void_reason").filter(|r| !r.trim().is_empty()) {
        return Some(r.clone());
    }
    let json: Value = serde_json::from_slice(body).ok()?;
    json.get("void_reason")
        .or_else(|| json.get(root)?.get("void_reason"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// `/businesses`, `/businesses/lead` and `/businesses/{id}` for the token's user.
fn businesses(
    sh: &Shared,
    principal: &Principal,
    method: &Method,
    segments: &[String],
    q: &HashMap<String, String>,
) -> Result<Answer, ApiError> {
    if *method != Method::GET {
        return Err(method_not_allowed());
    }
    let ids = sh.user_businesses(&principal.user_id);
    let json_of = |id: &str| sh.business(id).map(|b| lock(&b).to_json());
    match segments {
        [_] => {
            let maps: Vec<Map<String, Value>> = ids.iter().filter_map(|id| json_of(id)).collect();
            let refs: Vec<&Map<String, Value>> = maps.iter().collect();
            let params = listing::parse_params(q, &[])?;
            Ok(Answer::ok(listing::envelope(
                &refs,
                &params,
                "/businesses",
                q,
            )))
        }
        [_, id] => {
            let wanted = if id == "lead" {
                ids.first().cloned()
            } else {
                ids.iter().find(|b| *b == id).cloned()
            };
            wanted
                .and_then(|w| json_of(&w))
                .map(|m| Answer::ok(Value::Object(m)))
                .ok_or_else(ApiError::not_found)
        }
        _ => Err(ApiError::not_found()),
    }
}

/// POST or PUT with idempotency.
fn write(
    sh: &Shared,
    biz: &mut Business,
    res: Res,
    id: Option<&str>,
    body: &Bytes,
    now: chrono::DateTime<Utc>,
) -> Result<Answer, ApiError> {
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid("", format!("The request body is not valid JSON: {e}")))?;
    let root_name = res.root();
    let idempotency_id = json
        .get(root_name)
        .and_then(|r| r.get("idempotency_id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let window = sh.config.idempotency_window;
    let instant = Instant::now();
    if let Some(key) = &idempotency_id {
        if let Some(entry) = biz.idempotency.get(key) {
            if instant.saturating_duration_since(entry.at) < window {
                if entry.resource != root_name {
                    return Err(ApiError::idempotency_mismatch());
                }
                return Ok(Answer {
                    status: StatusCode::from_u16(entry.status).unwrap_or(StatusCode::OK),
                    body: Some(entry.body.clone()),
                    replayed: Some(root_name.to_owned()),
                });
            }
        }
    }
    let definition = match id {
        None => res.post_definition(),
        Some(_) => res.put_definition().ok_or_else(method_not_allowed)?,
    };
    schema::validate_request(definition, &json)?;
    let root = json
        .get(root_name)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let (status, out) = match (res, id) {
        (Res::Contacts, None) => (StatusCode::CREATED, contacts::create(biz, &root, now)?),
        (Res::Contacts, Some(id)) => (StatusCode::OK, contacts::update(biz, id, &root, now)?),
        (Res::Products, None) => (
            StatusCode::CREATED,
            items::create(biz, ItemKind::Product, &root, now)?,
        ),
        (Res::Products, Some(id)) => (
            StatusCode::OK,
            items::update(biz, ItemKind::Product, id, &root, now)?,
        ),
        (Res::Services, None) => (
            StatusCode::CREATED,
            items::create(biz, ItemKind::Service, &root, now)?,
        ),
        (Res::Services, Some(id)) => (
            StatusCode::OK,
            items::update(biz, ItemKind::Service, id, &root, now)?,
        ),
        (Res::StockItems, None) => (
            StatusCode::CREATED,
            items::create(biz, ItemKind::StockItem, &root, now)?,
        ),
        (Res::StockItems, Some(id)) => (
            StatusCode::OK,
            items::update(biz, ItemKind::StockItem, id, &root, now)?,
        ),
        (Res::StockMovements, None) => (
            StatusCode::CREATED,
            items::create_movement(biz, &root, now)?,
        ),
        (Res::SalesInvoices, None) => (
            StatusCode::CREATED,
            sales::create(biz, SalesKind::Invoice, &root, now)?,
        ),
        (Res::SalesCreditNotes, None) => (
            StatusCode::CREATED,
            sales::create(biz, SalesKind::CreditNote, &root, now)?,
        ),
        (Res::ContactPayments, None) => (
            StatusCode::CREATED,
            payments::create_payment(biz, &root, now)?,
        ),
        (Res::ContactAllocations, None) => (
            StatusCode::CREATED,
            payments::create_allocation(biz, &root, now)?,
        ),
        _ => return Err(method_not_allowed()),
    };
    if let Some(key) = idempotency_id {
        // Expired entries are swept now and then so the map stays bounded by
        // the window.
        if biz.idempotency.len() >= 50_000 {
            biz.idempotency
                .retain(|_, e| instant.saturating_duration_since(e.at) < window);
        }
        biz.idempotency.insert(
            key,
            IdempotencyEntry {
                resource: root_name.to_owned(),
                status: status.as_u16(),
                body: out.clone(),
                at: instant,
            },
        );
    }
    Ok(Answer {
        status,
        body: Some(out),
        replayed: None,
    })
}

fn get_one(biz: &Business, res: Res, id: &str) -> Result<Value, ApiError> {
    fn find<M>(s: &Store<M>, id: &str) -> Result<Value, ApiError> {
        s.get(id)
            .map(|r| Value::Object(r.json.clone()))
            .ok_or_else(ApiError::not_found)
    }
    match res {
        Res::Contacts => biz
            .live_contact(id)
            .map(|r| Value::Object(r.json.clone()))
            .ok_or_else(ApiError::not_found),
        Res::Products => find(&biz.products, id),
        Res::Services => find(&biz.services, id),
        Res::StockItems => find(&biz.stock_items, id),
        Res::StockMovements => find(&biz.stock_movements, id),
        Res::SalesInvoices => find(&biz.sales_invoices, id),
        Res::SalesCreditNotes => find(&biz.sales_credit_notes, id),
        // Deleted payments and allocations are gone for clients.
        Res::ContactPayments => biz
            .contact_payments
            .get(id)
            .filter(|r| !payments::is_deleted(&r.json))
            .map(|r| Value::Object(r.json.clone()))
            .ok_or_else(ApiError::not_found),
        Res::ContactAllocations => biz
            .contact_allocations
            .get(id)
            .filter(|r| !payments::is_deleted(&r.json))
            .map(|r| Value::Object(r.json.clone()))
            .ok_or_else(ApiError::not_found),
    }
}

fn list_records<M>(
    store: &Store<M>,
    key: Option<&str>,
    q: &HashMap<String, String>,
    path: &str,
    sort_keys: &[&str],
    filter: impl Fn(&Record<M>) -> bool,
    date_of: impl Fn(&Record<M>) -> Option<NaiveDate>,
) -> Result<Value, ApiError> {
    let params = listing::parse_params(q, sort_keys)?;
    let since = listing::parse_since(q)?;
    // An exact-match parameter backed by the store's secondary index narrows
    // the candidates before any filter runs.
    let source: Box<dyn Iterator<Item = &Record<M>>> = match key {
        Some(k) => Box::new(store.keyed(k)),
        None => Box::new(store.iter()),
    };
    let mut items: Vec<&Record<M>> = source
        .filter(|r| since.is_none_or(|s| r.updated_at >= s) && filter(r))
        .collect();
    if let Some((key, desc)) = &params.sort {
        items.sort_by(|a, b| {
            let o = match key.as_str() {
                "updated_at" => a.updated_at.cmp(&b.updated_at),
                "date" => date_of(a).cmp(&date_of(b)),
                "due_date" => a
                    .json
                    .get("due_date")
                    .and_then(Value::as_str)
                    .cmp(&b.json.get("due_date").and_then(Value::as_str)),
                _ => a.seq.cmp(&b.seq),
            };
            if *desc {
                o.reverse()
            } else {
                o
            }
        });
    }
    let maps: Vec<&Map<String, Value>> = items.iter().map(|r| &r.json).collect();
    Ok(listing::envelope(&maps, &params, path, q))
}

fn date_range(
    q: &HashMap<String, String>,
) -> Result<(Option<NaiveDate>, Option<NaiveDate>), ApiError> {
    Ok((
        listing::parse_date_param(q, "from_date")?,
        listing::parse_date_param(q, "to_date")?,
    ))
}

fn in_range(d: NaiveDate, range: (Option<NaiveDate>, Option<NaiveDate>)) -> bool {
    range.0.is_none_or(|f| d >= f) && range.1.is_none_or(|t| d <= t)
}

fn list(biz: &Business, res: Res, q: &HashMap<String, String>) -> Result<Value, ApiError> {
    let search = q
        .get("search")
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty());
    let param = |k: &str| q.get(k).map(String::as_str).filter(|s| !s.is_empty());
    let path = format!("/{}", res.segment());
    match res {
        Res::Contacts => {
            let email = param("email").map(str::to_lowercase);
            let ctype = param("contact_type_id");
            list_records(
                &biz.contacts,
                email.as_deref(),
                q,
                &path,
                &["created_at", "updated_at"],
                |r| {
                    let m = &r.meta;
                    !m.deleted
                        && search.as_deref().is_none_or(|s| r.search.contains(s))
                        && ctype.is_none_or(|t| m.contact_type == t)
                },
                |_| None,
            )
        }
        Res::Products | Res::Services | Res::StockItems => {
            let store = match res {
                Res::Products => &biz.products,
                Res::Services => &biz.services,
                _ => &biz.stock_items,
            };
            let active = match param("active") {
                None => None,
                Some("true") => Some(true),
                Some("false") => Some(false),
                Some(_) => {
                    return Err(ApiError::invalid("active", "active: must be true or false"))
                }
            };
            list_records(
                store,
                None,
                q,
                &path,
                &["created_at", "updated_at"],
                |r| {
                    search.as_deref().is_none_or(|s| r.search.contains(s))
                        && active.is_none_or(|a| r.meta.active == a)
                },
                |_| None,
            )
        }
        Res::SalesInvoices | Res::SalesCreditNotes => {
            let store = if res == Res::SalesInvoices {
                &biz.sales_invoices
            } else {
                &biz.sales_credit_notes
            };
            let range = date_range(q)?;
            let contact = param("contact_id");
            let status = param("status_id");
            let keys: &[&str] = if res == Res::SalesInvoices {
                &["created_at", "updated_at", "date", "due_date"]
            } else {
                &["created_at", "updated_at", "date"]
            };
            list_records(
                store,
                contact,
                q,
                &path,
                keys,
                |r| {
                    let m = &r.meta;
                    search.as_deref().is_none_or(|s| r.search.contains(s))
                        && status.is_none_or(|s| m.status == s)
                        && in_range(m.date, range)
                },
                |r| Some(r.meta.date),
            )
        }
        Res::ContactPayments => {
            let range = date_range(q)?;
            let contact = param("contact_id");
            let bank = param("bank_account_id");
            let tt = param("transaction_type_id");
            list_records(
                &biz.contact_payments,
                contact,
                q,
                &path,
                &["created_at", "updated_at", "date"],
                |r| {
                    let m = &r.meta;
                    !payments::is_deleted(&r.json)
                        && bank.is_none_or(|b| m.bank_account_id == b)
                        && tt.is_none_or(|t| m.transaction_type == t)
                        && in_range(m.date, range)
                },
                |r| Some(r.meta.date),
            )
        }
        Res::StockMovements => list_records(
            &biz.stock_movements,
            param("stock_item_id"),
            q,
            &path,
            &["created_at", "updated_at", "date"],
            |_| true,
            |r| Some(r.meta.date),
        ),
        Res::ContactAllocations => {
            let contact = param("contact_id");
            let tt = param("transaction_type_id");
            list_records(
                &biz.contact_allocations,
                contact,
                q,
                &path,
                &["created_at", "updated_at", "date"],
                |r| {
                    !payments::is_deleted(&r.json)
                        && tt.is_none_or(|t| r.meta.transaction_type == t)
                },
                |r| Some(r.meta.date),
            )
        }
    }
}

fn list_ledger_accounts(biz: &Business, q: &HashMap<String, String>) -> Result<Answer, ApiError> {
    let visible_in = q.get("visible_in").map(String::as_str);
    let type_id = q.get("ledger_account_type_id").map(String::as_str);
    let search = q.get("search").map(|s| s.to_lowercase());
    let maps: Vec<Map<String, Value>> = biz
        .ledger_accounts
        .iter()
        .filter(|l| match visible_in {
            None | Some("") => true,
            Some("sales") => l.visible_in_sales(),
            Some("purchasing") | Some("expenses") => l.visible_in_purchasing(),
            Some("bank") | Some("banking") => l.ledger_account_type == "BANK",
            Some(_) => true,
        })
        .filter(|l| type_id.is_none_or(|t| l.ledger_account_type == t))
        .filter(|l| {
            search.as_deref().is_none_or(|s| {
                l.name.to_lowercase().contains(s) || l.nominal_code.to_string().contains(s)
            })
        })
        .map(|l| l.to_json())
        .collect();
    let refs: Vec<&Map<String, Value>> = maps.iter().collect();
    let params = listing::parse_params(q, &[])?;
    Ok(Answer::ok(listing::envelope(
        &refs,
        &params,
        "/ledger_accounts",
        q,
    )))
}
