//! The HTTP API. Handlers are thin: the extractors authenticate and parse, the handler calls one
//! use case of the marketplace (or of auth) and maps the result; every error is a problem
//! (`problem`). The OpenAPI document is generated from the handlers and the `api` crate's types
//! (`openapi`) and served at `/v1/openapi.json`.

pub mod accounts;
pub mod audit;
pub mod auth;
pub mod certs;
pub mod contracts;
pub mod credentials;
pub mod events;
pub mod extract;
pub mod offers;
pub mod openapi;
pub mod problem;
pub mod providers;
pub mod reservations;
pub mod system;
pub mod usage;
pub mod web;

use std::sync::Arc;
use std::time::Duration;

use api::problem::PROBLEM_JSON;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::market::Market;
use crate::shutdown::Shutdown;
use problem::Failure;

/// What the handlers reach: the marketplace's and auth's use cases, and the API document.
pub struct App {
    pub market: Market,
    pub auth: Auth,
    /// The OpenAPI document, serialised once.
    pub openapi: axum::body::Bytes,
    /// Ends event streams when the broker stops (they would hold the graceful shutdown open).
    pub shutdown: Shutdown,
}

/// The handlers' state: one shared `App`.
#[derive(Clone)]
pub struct AppState(Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

/// How long a request may take before it is answered 503 (event streams are exempt: only their
/// first answer is bounded).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The routes with their documentation (the document and the router cannot disagree: both are
/// built from the same list).
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(system::health))
        .routes(routes!(system::ledger))
        .routes(routes!(system::openapi))
        .routes(routes!(offers::search, offers::publish))
        .routes(routes!(offers::facets))
        .routes(routes!(offers::get))
        .routes(routes!(offers::withdraw))
        .routes(routes!(offers::canonical))
        .routes(routes!(offers::history))
        .routes(routes!(auth::register))
        .routes(routes!(auth::challenge))
        .routes(routes!(auth::token))
        .routes(routes!(auth::me))
        .routes(routes!(accounts::link))
        .routes(routes!(accounts::show))
        .routes(routes!(accounts::faucet))
        .routes(routes!(accounts::terms))
        .routes(with_body_limit(
            routes!(accounts::relay),
            // Hex doubles the bytes; the JSON around them is small.
            2 * api::ledger::MAX_RELAYED_TX_BYTES + 1024,
        ))
        .routes(routes!(providers::set_config))
        .routes(routes!(providers::config))
        .routes(routes!(certs::list))
        .routes(routes!(certs::status_list))
        .routes(routes!(certs::get))
        .routes(routes!(certs::revoke))
        .routes(routes!(certs::probe))
        .routes(routes!(certs::reputation))
        .routes(routes!(certs::context))
        .routes(routes!(audit::contracts))
        .routes(routes!(audit::flows))
        .routes(routes!(audit::earnings))
        .routes(routes!(audit::rankings))
        .routes(routes!(audit::settlements))
        .routes(routes!(audit::usage))
        .routes(routes!(audit::credentials))
        .routes(routes!(audit::configs))
        .routes(routes!(audit::index))
        .routes(routes!(audit::selfcheck))
        .routes(routes!(reservations::create))
        .routes(routes!(reservations::get))
        .routes(routes!(reservations::purchase))
        .routes(routes!(contracts::list))
        .routes(routes!(contracts::get))
        .routes(routes!(contracts::accept))
        .routes(routes!(contracts::close))
        .routes(routes!(contracts::escrow))
        .routes(routes!(contracts::top_up))
        .routes(routes!(credentials::list))
        .routes(routes!(credentials::renew))
        .routes(routes!(credentials::revoke))
        .routes(routes!(credentials::release))
        .routes(with_body_limit(
            routes!(usage::report),
            api::usage::MAX_REPORT_BYTES,
        ))
        .routes(routes!(usage::of_contract))
        .routes(routes!(usage::proof))
        .routes(routes!(usage::statement))
        .routes(routes!(usage::receipt))
        .routes(routes!(usage::dispute))
        .routes(routes!(usage::resolve))
        .routes(routes!(events::stream))
}

/// Routes whose bodies may be larger than the default (a full usage report).
fn with_body_limit(
    (schemas, paths, method): utoipa_axum::router::UtoipaMethodRouter<AppState>,
    bytes: usize,
) -> utoipa_axum::router::UtoipaMethodRouter<AppState> {
    (schemas, paths, method.layer(DefaultBodyLimit::max(bytes)))
}

/// The generated OpenAPI document.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = routes().split_for_parts();
    openapi::complete(&mut doc);
    doc
}

/// The API over `market` and `auth`, and the web front end's build when there is one; open
/// event streams end at `shutdown`.
pub fn router(
    market: Market,
    auth: Auth,
    shutdown: Shutdown,
    web: Option<web::WebAssets>,
) -> Router {
    let (router, mut doc) = routes().split_for_parts();
    openapi::complete(&mut doc);
    let openapi = serde_json::to_vec(&doc)
        .expect("the OpenAPI document serialises")
        .into();
    let state = AppState(Arc::new(App {
        market,
        auth,
        openapi,
        shutdown,
    }));
    router
        .fallback(move |method, uri| not_found(web.clone(), method, uri))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(bounded))
        .layer(axum::middleware::from_fn(problems_only))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// No API route: a page or file of the web front end, or a problem.
async fn not_found(
    web: Option<web::WebAssets>,
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> Response {
    let path = uri.path();
    let api = ["/v1/", "/ns/"].iter().any(|p| path.starts_with(p));
    match web {
        Some(web) if !api => web.answer(&method, &uri).await,
        None if path == "/" => Failure::not_found(
            "this broker serves no web front end: it was started without a build of web/ \
             (scripts/run builds it), or use the mercato CLI"
                .to_string(),
        )
        .into_response(),
        _ => Failure::not_found(format!("no resource at {path}")).into_response(),
    }
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Failure {
    Failure::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed",
        format!("{} does not take {method}; see Allow", uri.path()),
    )
}

/// Answers 503 when the handler takes longer than `REQUEST_TIMEOUT`.
async fn bounded(req: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the broker did not finish within {} s; a write may still complete, so look before retrying",
                REQUEST_TIMEOUT.as_secs()
            ),
        )
        .into_response(),
    }
}

/// Every error answer is a problem, also those made below the handlers (limits, routing).
async fn problems_only(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    if !status.is_client_error() && !status.is_server_error() || is_problem {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let detail = match String::from_utf8_lossy(&text).trim() {
        "" => status.canonical_reason().unwrap_or("error").to_string(),
        t => t.to_string(),
    };
    let problem = api::Problem::new(
        status.as_u16(),
        status.canonical_reason().unwrap_or("error").to_lowercase(),
        detail,
    );
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(PROBLEM_JSON),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(
        parts,
        Body::from(serde_json::to_vec(&problem).expect("problems serialise")),
    )
}
