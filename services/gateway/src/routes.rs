//! The gateway's HTTP routes, built through one table.
//!
//! Every route is added with [`Routes::get`], [`Routes::post`], [`Routes::put`] or
//! [`Routes::delete`], which add it to the axum router and record its method and path beside
//! it. [`table`] lists them all, so a test compares the running API with its document
//! (`docs/openapi.yaml`) and a route cannot be added without the document saying so.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::Request;
use axum::handler::Handler;
use axum::http::Method;
use axum::response::IntoResponse;
use axum::routing::{self, MethodRouter, Route as AxumRoute};
use axum::Router;
use tower::{Layer, Service};

use crate::AppState;

/// One route: an HTTP method on a path template (`{name}` marks a path parameter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The method.
    pub method: Method,
    /// The path template, as axum matches it.
    pub path: &'static str,
}

/// An axum router under construction, and the table of the routes added to it.
pub struct Routes<S = Arc<AppState>> {
    router: Router<S>,
    table: Vec<Route>,
}

impl<S> Default for Routes<S>
where
    S: Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Routes<S>
where
    S: Clone + Send + Sync + 'static,
{
    /// No routes yet.
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            table: Vec::new(),
        }
    }

    /// `GET path` answered by `handler`.
    pub fn get<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add(Method::GET, path, routing::get(handler))
    }

    /// `POST path` answered by `handler`.
    pub fn post<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add(Method::POST, path, routing::post(handler))
    }

    /// `PUT path` answered by `handler`.
    pub fn put<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add(Method::PUT, path, routing::put(handler))
    }

    /// `DELETE path` answered by `handler`.
    pub fn delete<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add(Method::DELETE, path, routing::delete(handler))
    }

    fn add(mut self, method: Method, path: &'static str, handler: MethodRouter<S>) -> Self {
        // axum joins the methods of one path; a method given twice for a path panics here.
        self.router = self.router.route(path, handler);
        self.table.push(Route { method, path });
        self
    }

    /// These routes and `other`'s.
    pub fn merge(mut self, other: Routes<S>) -> Self {
        self.router = self.router.merge(other.router);
        self.table.extend(other.table);
        self
    }

    /// Runs `layer` in front of the routes added so far (axum's `Router::route_layer`).
    pub fn route_layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<AxumRoute> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        self.router = self.router.route_layer(layer);
        self
    }

    /// The routes added so far.
    pub fn table(&self) -> &[Route] {
        &self.table
    }

    /// The axum router.
    pub fn into_router(self) -> Router<S> {
        self.router
    }
}

/// The gateway's HTTP service: the API, limited per client address (and the store routes also
/// per bearer key), and the liveness answer.
pub fn router(state: Arc<AppState>) -> Router {
    let per_key = axum::middleware::from_fn_with_state(state.clone(), crate::limits::per_key);
    api(|r| r.route_layer(per_key.clone()))
        .into_router()
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::per_ip,
        ))
        .with_state(state)
        .merge(ledger_runtime::metrics::health_router())
}

/// Every route of the API; `per_key` wraps the routes that are also limited per bearer key.
fn api(per_key: impl Fn(Routes) -> Routes) -> Routes {
    Routes::new()
        .merge(per_key(crate::ingest::routes()))
        .merge(per_key(crate::status::routes()))
        .merge(crate::connect::routes())
        .merge(crate::merchants::routes())
        .merge(crate::audit::routes())
        .merge(crate::pairing::routes())
        .merge(crate::portal::routes())
        .merge(crate::settings_pages::routes())
        .merge(crate::history::routes())
        .merge(crate::backfills::routes())
        .merge(crate::release::routes())
        .merge(crate::preview::routes())
        .merge(crate::reissue::routes())
}

/// Every method and path the gateway answers on its HTTP address, `/healthz` included.
pub fn table() -> Vec<Route> {
    let mut table = api(|r| r).table;
    table.push(Route {
        method: Method::GET,
        // Served by `ledger_runtime::metrics::health_router` beside the API, outside the
        // per-client limits.
        path: ledger_runtime::metrics::HEALTH_PATH,
    });
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_table_once() {
        let table = table();
        for (i, r) in table.iter().enumerate() {
            assert!(
                !table[..i].contains(r),
                "{} {} is in the table twice",
                r.method,
                r.path
            );
        }
        assert!(table.contains(&Route {
            method: Method::POST,
            path: "/v1/events"
        }));
    }
}
