//! The HTTP API and the dashboard at `/`: one table of routes, the shared state, and the layers every request
//! goes through (CORS, limits, logs, the envelope for errors from outside handlers).

pub mod app;
pub mod chat;
pub mod dashboard;
pub mod form;
pub mod group;
pub mod guard;
pub mod message;
pub mod newsletter;
pub mod request;
pub mod response;
pub mod send;
pub mod user;
pub mod wire;

use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;
use tower_http::timeout::TimeoutLayer;
use tracing::error;

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

/// What every handler gets: one `Arc`, so that axum's per-request clones of the
/// state cost one reference count, not one per service.
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

/// The services and settings behind the routes.
pub struct Services {
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

/// The whole API, with static files served from `statics_dir` under `/statics/`.
pub fn router(state: AppState, statics_dir: PathBuf) -> Router {
    let body_limit = state.limits.body_limit();
    let state_timeout = state.limits.request_timeout;
    let guard = state.guard.clone();
    let dialect_state = state.clone();
    let device_state = state.clone();
    let health_state = state.clone();
    Router::new()
        .merge(dashboard::router())
        .nest("/app", app::router())
        .nest("/user", user::router())
        .nest("/send", send::router())
        .nest("/message", message::router())
        .route("/chats", axum::routing::get(chat::chats))
        .nest("/chat", chat::router())
        .nest("/group", group::router())
        .nest("/newsletter", newsletter::router())
        .route("/webhook/status", axum::routing::get(app::webhook_status))
        .nest_service(
            "/statics",
            ServeDir::new(statics_dir).append_index_html_on_directories(false),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit))
        // Inside the envelope layer, so a 408 is an envelope like every other error.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state_timeout,
        ))
        .layer(middleware::from_fn(envelope_errors))
        // Inside the guard: an unauthenticated caller learns nothing about ids.
        .layer(middleware::from_fn_with_state(device_state, wire::device))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(guard.clone(), guard::guard))
        // Outside the guard: preflights need no credentials.
        .layer(cors(guard))
        // Outermost: every envelope, the guard's included, in the chosen dialect.
        .layer(middleware::from_fn_with_state(dialect_state, wire::dialect))
        .layer(middleware::from_fn(log_request))
        // Added after the layers: none applies to it.
        .route(
            "/health",
            axum::routing::get(app::health).with_state(health_state),
        )
}

/// One line per request, when it is answered: method, path (never the query string:
/// it carries phone numbers), status and latency. A single event, no span: it is on
/// every request's path. Failures were logged where they were mapped to a status.
async fn log_request(req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let res = next.run(req).await;
    tracing::info!(
        method = %method,
        path = %loggable_path(uri.path()),
        status = res.status().as_u16(),
        latency_ms = started.elapsed().as_millis() as u64,
        "request"
    );
    res
}

/// A path for the log: segments that name a person or a chat (`628…@s.whatsapp.net`,
/// a phone number, a group id) are replaced by `{chat}`, as query strings are left
/// out: they are phone numbers.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    let personal = |segment: &str| {
        let number = segment.len() >= 7
            && segment
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-'));
        // `@` may come percent-encoded: the path is logged as sent.
        segment.contains('@') || segment.contains("%40") || number
    };
    if !path.split('/').any(personal) {
        return path.into();
    }
    path.split('/')
        .map(|segment| if personal(segment) { "{chat}" } else { segment })
        .collect::<Vec<_>>()
        .join("/")
        .into()
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
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::ORIGIN,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::AUTHORIZATION,
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

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown");
    error!(panic = detail, "a request handler panicked");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error").into_response()
}

/// Puts error responses made outside our handlers (static files, limits, timeouts)
/// into the envelope too.
async fn envelope_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = sent_path(req.uri(), req.extensions().get::<SentUri>());
    let res = next.run(req).await;
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let message = match status {
        StatusCode::NOT_FOUND => format!("Cannot {method} {path}"),
        StatusCode::METHOD_NOT_ALLOWED => format!("Cannot {method} {path}"),
        StatusCode::PAYLOAD_TOO_LARGE => "request body is too large".to_owned(),
        StatusCode::REQUEST_TIMEOUT => "request timed out".to_owned(),
        other => other
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase(),
    };
    let mut envelope = ApiError::new(status, message).into_response();
    if let Some(allow) = res.headers().get(header::ALLOW) {
        envelope.headers_mut().insert(header::ALLOW, allow.clone());
    }
    envelope
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn logged_paths_leave_out_phone_numbers_and_jids() {
        assert_eq!(loggable_path("/send/message"), "/send/message");
        assert_eq!(
            loggable_path("/chat/6289685024091@s.whatsapp.net/messages"),
            "/chat/{chat}/messages"
        );
        assert_eq!(loggable_path("/chat/6289685024091/pin"), "/chat/{chat}/pin");
        assert_eq!(
            loggable_path("/chat/6289685024091%40s.whatsapp.net/pin"),
            "/chat/{chat}/pin"
        );
        assert_eq!(
            loggable_path("/chat/120363025246125888@g.us/archive"),
            "/chat/{chat}/archive"
        );
        // Message ids are not personal.
        assert_eq!(
            loggable_path("/message/3EB0C767D26A1D8B0B5B/read"),
            "/message/3EB0C767D26A1D8B0B5B/read"
        );
    }
}
