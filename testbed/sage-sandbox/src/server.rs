//! Routing, call accounting, the OAuth endpoints and the accept loop.

use crate::api::{self, Res, STATIC_COLLECTIONS};
use crate::error::ApiError;
use crate::exchange::{CallBusiness, ConnKill};
use crate::shared::{lock, Shared};
use axum::extract::rejection::FormRejection;
use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Form, Router};
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tower::ServiceExt;

/// How long shutdown waits for in-flight requests before cutting them off.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds the full router.
pub(crate) fn router(sh: Arc<Shared>) -> Router {
    let mut r = Router::new()
        .route("/oauth2/auth/central", get(authorize))
        .route("/oauth/token", post(token))
        .route("/oauth/revoke", post(revoke))
        .route("/metrics", get(metrics))
        .route("/v3.1/businesses", any(api::handle))
        .route("/v3.1/businesses/{id}", any(api::handle))
        .route("/v3.1/financial_settings", any(api::handle))
        .route("/v3.1/ledger_accounts", any(api::handle))
        .route("/v3.1/ledger_accounts/{id}", any(api::handle))
        .route("/v3.1/bank_accounts", any(api::handle))
        .route("/v3.1/bank_accounts/{id}", any(api::handle));
    for c in STATIC_COLLECTIONS {
        r = r
            .route(&format!("/v3.1/{c}"), any(api::handle))
            .route(&format!("/v3.1/{c}/{{id}}"), any(api::handle));
    }
    for res in Res::ALL {
        let s = res.segment();
        r = r
            .route(&format!("/v3.1/{s}"), any(api::handle))
            .route(&format!("/v3.1/{s}/{{id}}"), any(api::handle));
    }
    r.merge(crate::admin::routes())
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(sh.clone(), track))
        .with_state(sh)
}

async fn fallback(req: Request) -> Response {
    if req.uri().path().starts_with("/v3.1") {
        ApiError::not_found().into_response()
    } else {
        (StatusCode::NOT_FOUND, "not found").into_response()
    }
}

/// Adds `x_request_id` to every answer and counts API and OAuth calls.
async fn track(State(sh): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let counted = path.starts_with("/v3.1") || path.starts_with("/oauth");
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().clone();
    let uri_path = if counted {
        path.to_owned()
    } else {
        String::new()
    };
    let mut resp = next.run(req).await;
    let request_id = crate::new_id();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x_request_id", v);
    }
    if counted {
        let business = resp.extensions().get::<CallBusiness>().map(|b| b.0.clone());
        let status = resp.status().as_u16();
        lock(&sh.stats).record(
            method.as_str(),
            &template,
            &uri_path,
            status,
            business.as_deref(),
            &request_id,
        );
        sh.metrics
            .requests
            .with_label_values(&[
                method.as_str(),
                &template,
                &status.to_string(),
                business.as_deref().unwrap_or(""),
            ])
            .inc();
    }
    resp
}

async fn metrics(State(sh): State<Arc<Shared>>) -> Response {
    let mut resp = sh.metrics.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn redirect(location: &str) -> Response {
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// `GET /oauth2/auth/central`: the consent screen, approved automatically.
async fn authorize(
    State(sh): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if q.get("client_id").map(String::as_str) != Some(sh.config.client_id.as_str()) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "Unknown client_id",
        );
    }
    let Some(redirect_uri) = q.get("redirect_uri").filter(|u| !u.is_empty()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "redirect_uri is required",
        );
    };
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let state = q
        .get("state")
        .map(|s| format!("&state={}", url_encode(s)))
        .unwrap_or_default();
    if q.get("response_type").map(String::as_str) != Some("code") {
        return redirect(&format!(
            "{redirect_uri}{sep}error=unsupported_response_type{state}"
        ));
    }
    let business = match q.get("business").filter(|b| !b.is_empty()) {
        Some(b) => b.clone(),
        None => sh.default_business(),
    };
    let challenge = q.get("code_challenge").filter(|c| !c.is_empty()).map(|c| {
        let m = q
            .get("code_challenge_method")
            .cloned()
            .unwrap_or_else(|| "plain".to_owned());
        (m, c.clone())
    });
    let Some((_, country)) = sh.business_owner(&business) else {
        return redirect(&format!("{redirect_uri}{sep}error=access_denied{state}"));
    };
    let Some(code) = sh.issue_code(&business, Some(redirect_uri.clone()), challenge) else {
        return redirect(&format!("{redirect_uri}{sep}error=access_denied{state}"));
    };
    redirect(&format!(
        "{redirect_uri}{sep}code={}&country={}{state}",
        url_encode(&code),
        url_encode(&country)
    ))
}

/// Client credentials from HTTP Basic or the form body.
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Option<(String, String)> {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
    {
        let decoded = data_encoding::BASE64.decode(basic.trim().as_bytes()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (id, secret) = text.split_once(':')?;
        return Some((id.to_owned(), secret.to_owned()));
    }
    Some((
        form.get("client_id")?.clone(),
        form.get("client_secret")?.clone(),
    ))
}

fn client_ok(sh: &Shared, headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    client_credentials(headers, form).is_some_and(|(id, secret)| {
        // Both compared, each in constant time, as a real authorisation server does.
        let id_ok = crate::auth::same(&id, &sh.config.client_id);
        crate::auth::same(&secret, &sh.config.client_secret) & id_ok
    })
}

/// `POST /oauth/token`.
async fn token(
    State(sh): State<Arc<Shared>>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The body must be application/x-www-form-urlencoded",
        );
    };
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    if !client_ok(&sh, &headers, &form) {
        lock(&sh.stats).token(&grant_type, None, false);
        sh.metrics
            .tokens
            .with_label_values(&[&grant_type, "invalid_client"])
            .inc();
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "Client authentication failed",
        );
    }
    let ttls = sh.ttls();
    let now = Instant::now();
    let (result, business) = match grant_type.as_str() {
        "authorization_code" => {
            let Some(code) = form.get("code") else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "code is required",
                );
            };
            let r = lock(&sh.auth).exchange_code(
                code,
                form.get("redirect_uri").map(String::as_str),
                form.get("code_verifier").map(String::as_str),
                ttls,
                now,
            );
            let business = r.as_ref().ok().map(|t| t.business_id.clone());
            (r, business)
        }
        "refresh_token" => {
            let Some(rt) = form.get("refresh_token") else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "refresh_token is required",
                );
            };
            let mut auth = lock(&sh.auth);
            let business = auth.business_of_refresh_token(rt);
            (auth.refresh(rt, ttls, now), business)
        }
        _ => {
            lock(&sh.stats).token(&grant_type, None, false);
            sh.metrics
                .tokens
                .with_label_values(&[&grant_type, "unsupported_grant_type"])
                .inc();
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            );
        }
    };
    lock(&sh.stats).token(&grant_type, business.as_deref(), result.is_ok());
    let mut resp = match result {
        Ok(t) => {
            sh.metrics
                .tokens
                .with_label_values(&[&grant_type, "ok"])
                .inc();
            let body = json!({
                "access_token": t.access_token,
                "expires_in": t.expires_in,
                "token_type": "bearer",
                "refresh_token": t.refresh_token,
                "refresh_token_expires_in": t.refresh_token_expires_in,
                "scope": "full_access",
                "requested_by_id": t.user_id,
            });
            let mut resp = axum::Json(body).into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => {
            sh.metrics
                .tokens
                .with_label_values(&[&grant_type, e.error])
                .inc();
            oauth_error(StatusCode::BAD_REQUEST, e.error, &e.description)
        }
    };
    if let Some(b) = business {
        resp.extensions_mut().insert(CallBusiness(b));
    }
    resp
}

/// `POST /oauth/revoke`.
async fn revoke(
    State(sh): State<Arc<Shared>>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The body must be application/x-www-form-urlencoded",
        );
    };
    if !client_ok(&sh, &headers, &form) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "Client authentication failed",
        );
    }
    let Some(token) = form.get("token") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required",
        );
    };
    // Unknown tokens still get "ok" (RFC 7009): revocation is idempotent.
    let business = lock(&sh.auth).revoke_token(token);
    let mut resp = axum::Json(json!({"success": "ok"})).into_response();
    if let Some(b) = business {
        resp.extensions_mut().insert(CallBusiness(b));
    }
    resp
}

/// Serves `router` on `listener` until `shutdown` completes, then drains.
///
/// A hand-written accept loop instead of `axum::serve` so each connection
/// can be dropped on request (see [`ConnKill`]).
pub(crate) async fn serve(
    listener: TcpListener,
    sh: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(sh.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // Usually EMFILE under load: back off briefly rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                conns.spawn(serve_connection(stream, app.clone(), stop_rx.clone()));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    sh.stopping.send_replace(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        conns.abort_all();
    }
    Ok(())
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    app: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let kill = Arc::new(Notify::new());
    let handle = ConnKill(kill.clone());
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(handle.clone());
        app.clone().oneshot(req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            // Returning drops the connection future and with it the socket:
            // the client sees the connection close with no answer.
            _ = kill.notified() => break,
            changed = stop.changed(), if !draining => {
                draining = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                } else {
                    break;
                }
            }
        }
    }
}
