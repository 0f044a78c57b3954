//! The HTTP API and the dashboard at `/`: the routes (each module declares its own,
//! with full paths), the shared state, and the edge every request goes through
//! (logs, CORS, auth, limits, the envelope for errors from outside handlers: [`edge`]).

pub mod app;
pub mod chat;
pub mod dashboard;
pub mod devices;
pub mod edge;
pub mod form;
pub mod forward;
pub mod group;
pub mod guard;
pub mod message;
pub mod metrics;
pub mod newsletter;
pub mod request;
pub mod response;
pub mod scope;
pub mod send;
pub mod user;
pub mod wire;
pub mod ws;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::Response;
use axum::{Extension, Router};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;

use crate::service::app::AppService;
use crate::service::send::SendService;
use crate::service::user::UserService;
use response::ApiError;

/// Largest request body outside uploads bigger than this (the v2.3.0 limit).
pub const BODY_LIMIT: usize = 50 * 1024 * 1024;
/// Upload limits and where uploads are stored while a request runs.
#[derive(Debug, Clone)]
pub struct Limits {
    pub temp_dir: PathBuf,
    pub max_file_mb: u64,
    pub max_video_mb: u64,
    /// Longest a request may take; sends wait for WhatsApp, uploads for slow clients.
    pub request_timeout: Duration,
    /// Unknown request fields are a 400 instead of being ignored.
    pub strict_fields: bool,
    /// The wire dialect.
    pub api_compat: wire::ApiCompat,
    /// `--base-path`: `""` or a prefix like `/gowa` on every route but `/health`.
    pub base_path: String,
    /// `/mcp` is served.
    pub mcp: bool,
}

impl Limits {
    /// The body limit: 50 MB, or more when an upload limit needs it.
    fn body_limit(&self) -> usize {
        let largest_upload = self.max_file_mb.max(self.max_video_mb) * 1024 * 1024;
        usize::try_from(largest_upload + 1024 * 1024)
            .unwrap_or(usize::MAX)
            .max(BODY_LIMIT)
    }
}

/// What every account-scoped handler gets: the services of the account the request
/// names (see [`scope`]), in one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services and settings behind the routes, for one account.
pub struct Services {
    /// The account's slot id (the later versions' `device_id`).
    pub slot: String,
    pub app: Arc<AppService>,
    pub user: Arc<UserService>,
    pub send: Arc<SendService>,
    pub messages: Arc<crate::service::message::MessageService>,
    pub chats: Arc<crate::service::chat::ChatService>,
    pub groups: Arc<crate::service::group::GroupService>,
    pub limits: Arc<Limits>,
    pub guard: Arc<guard::Guard>,
    /// Fetches what requests name by URL (`image_url`…).
    pub fetcher: crate::fetch::Fetcher,
}

/// The router's state: the accounts and what all of them share.
#[derive(Clone)]
pub struct Server(Arc<ServerParts>);

pub struct ServerParts {
    pub accounts: Arc<crate::accounts::Accounts>,
    pub limits: Arc<Limits>,
    pub guard: Arc<guard::Guard>,
    /// The accounts' notices, for `/ws`.
    pub notices: crate::notices::Notices,
    /// With several servers on one database: sends requests on to the server
    /// serving their account.
    pub forwarder: Option<forward::Forwarder>,
}

impl Server {
    pub fn new(parts: ServerParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for Server {
    type Target = ServerParts;

    fn deref(&self) -> &ServerParts {
        &self.0
    }
}

/// What [`router`] makes: the API as one cloneable service, for [`crate::serve`].
pub trait Api:
    tower::Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> Api for T where
    T: tower::Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// The whole API, with static files served from `statics_dir` under `/statics/`,
/// inside the edge (see [`edge`]).
pub fn router(state: Server, statics_dir: PathBuf) -> impl Api {
    let body_limit = state.limits.body_limit();
    let guard = state.guard.clone();
    // CORS outside the guard: preflights need no credentials, refusals get its headers.
    let edge = edge::EdgeLayer::new(state.clone(), cors(guard));
    let routes = Router::new()
        .merge(dashboard::router())
        .merge(devices::router())
        .merge(metrics::router())
        .merge(app::router())
        .merge(user::router())
        .merge(send::router())
        .merge(message::router())
        .merge(chat::router())
        .merge(group::router())
        .merge(newsletter::router())
        .merge(ws::router())
        .nest_service(
            "/statics",
            ServeDir::new(&statics_dir).append_index_html_on_directories(false),
        );
    // `/mcp` answers its tool calls through the routes above (not through the edge
    // again: the `/mcp` request already passed it).
    let routes = if state.limits.mcp {
        let api = finish(routes.clone(), &state);
        routes.route_service("/mcp", crate::mcp::service(api, statics_dir))
    } else {
        routes
    };
    // Go's --base-path: everything moves under the prefix but the health check.
    let routes = match state.limits.base_path.as_str() {
        "" => routes,
        prefix => Router::new()
            .route(edge::HEALTH, axum::routing::get(app::health))
            .route(edge::READY, axum::routing::get(app::ready))
            .nest(prefix, routes),
    };
    let routes = finish(routes, &state);
    tower::ServiceBuilder::new()
        .layer(edge::LogLayer)
        .layer(edge)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forward::forward,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .service(routes)
}

/// The routes with their answers for unknown paths and methods, and their state.
fn finish(routes: Router<Server>, state: &Server) -> Router {
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone())
}

/// `path` as the routes know it: without the `--base-path` prefix `base` (`""` for
/// none). A path outside the prefix is returned as it is (it matches no route).
pub(crate) fn route_path<'p>(base: &str, path: &'p str) -> &'p str {
    if base.is_empty() {
        return path;
    }
    match path.strip_prefix(base) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

#[cfg(test)]
#[test]
fn route_paths_lose_the_base_path_only_at_a_segment_boundary() {
    assert_eq!(route_path("", "/app/logout"), "/app/logout");
    assert_eq!(route_path("/gowa", "/gowa/app/logout"), "/app/logout");
    assert_eq!(route_path("/gowa", "/gowa"), "/");
    assert_eq!(
        route_path("/gowa", "/gowax/app/logout"),
        "/gowax/app/logout"
    );
    assert_eq!(route_path("/gowa", "/app/logout"), "/app/logout");
}

/// The user part of a JID: `628…:7@s.whatsapp.net` → `628…`.
pub(crate) fn user_of(jid: &str) -> String {
    jid.split(['@', ':']).next().unwrap_or_default().to_owned()
}

/// The first value of a header that proxies may list (`a, b`), trimmed; `None` when
/// absent, empty or not text.
pub(crate) fn first_header_value<'h>(
    headers: &'h axum::http::HeaderMap,
    name: &str,
) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The host the client asked for, a proxy's forwarded host first.
pub(crate) fn requested_host(headers: &axum::http::HeaderMap) -> Option<&str> {
    first_header_value(headers, "x-forwarded-host").or_else(|| first_header_value(headers, "host"))
}

/// Cross-origin reads only for the origins of `--cors-origins` (none by default).
fn cors(guard: Arc<guard::Guard>) -> CorsLayer {
    let origins = if guard.any_origin() {
        AllowOrigin::any()
    } else {
        AllowOrigin::predicate(move |origin, _| guard.cors_allows(origin))
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::ORIGIN,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::AUTHORIZATION,
            header::HeaderName::from_static("x-device-id"),
            header::HeaderName::from_static("x-api-key"),
        ])
}

/// The path as the client sent it (before a trailing slash was trimmed).
fn sent_path(uri: &Uri, original: Option<&SentUri>) -> String {
    original.map_or(uri, |o| &o.0).path().to_owned()
}

/// The request's URI before [`crate::serve`] trimmed a trailing slash.
#[derive(Clone)]
pub struct SentUri(pub Uri);

async fn not_found(method: Method, uri: Uri, original: Option<Extension<SentUri>>) -> ApiError {
    let path = sent_path(&uri, original.as_ref().map(|o| &o.0));
    ApiError::new(StatusCode::NOT_FOUND, format!("Cannot {method} {path}"))
}

async fn method_not_allowed(
    method: Method,
    uri: Uri,
    original: Option<Extension<SentUri>>,
) -> ApiError {
    let path = sent_path(&uri, original.as_ref().map(|o| &o.0));
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("Cannot {method} {path}"),
    )
}
