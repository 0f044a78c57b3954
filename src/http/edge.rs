//! What every request goes through around its route, as two tower services outside
//! the router (a layer on the router itself would wrap each route and be cloned,
//! boxed and dropped layer by layer on every request):
//!
//! - [`Log`], outermost: one line per answered request, without an allocation.
//! - [`Edge`]: CORS (tower-http) for requests that carry an `Origin`, so that
//!   preflights need no credentials and refusals carry the CORS headers a web app
//!   needs to read them; then [`Core`]: the guard (auth, browser rules), the device
//!   check of the later Go versions, a panic or a timeout answered as an envelope,
//!   errors made outside the handlers (static files, body limits) put into the
//!   envelope, and the v9 dialect. One boxed future per request.
//!
//! `/health` and `/ready` go through none of it: they are for probes, open and
//! unlogged.

use std::any::Any;
use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use std::sync::Arc;

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Either};
use tower::util::Oneshot;
use tower::{Layer, Service, ServiceExt};
use tower_http::cors::{Cors, CorsLayer};
use tracing::{debug, error};

use super::response::ApiError;
use super::{SentUri, Server, guard, wire};

/// Probes' route: outside auth, logs and the envelope.
pub const HEALTH: &str = "/health";
/// The readiness probe's route, treated as [`HEALTH`].
pub const READY: &str = "/ready";

/// Whether `path` is a probe's ([`HEALTH`], [`READY`]).
fn is_probe(path: &str) -> bool {
    path == HEALTH || path == READY
}

/// Adds [`Log`].
#[derive(Clone, Copy, Default)]
pub struct LogLayer;

impl<S> Layer<S> for LogLayer {
    type Service = Log<S>;

    fn layer(&self, inner: S) -> Log<S> {
        Log { inner }
    }
}

/// One line per request, when it is answered: method, path (never the query string:
/// it carries phone numbers), status and latency. A single event, no span.
#[derive(Clone)]
pub struct Log<S> {
    inner: S,
}

impl<S> Service<Request> for Log<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = LogFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let logged = (!is_probe(req.uri().path())).then(|| Logged {
            started: Instant::now(),
            method: req.method().clone(),
            // A clone of the URI shares its bytes: no allocation.
            uri: req.uri().clone(),
        });
        LogFuture {
            inner: self.inner.call(req),
            logged,
        }
    }
}

struct Logged {
    started: Instant,
    method: Method,
    uri: axum::http::Uri,
}

pin_project_lite::pin_project! {
    pub struct LogFuture<F> {
        #[pin]
        inner: F,
        logged: Option<Logged>,
    }
}

impl<F> Future for LogFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(res) = std::task::ready!(this.inner.poll(cx));
        if let Some(logged) = this.logged.take() {
            tracing::info!(
                method = %logged.method,
                path = %loggable_path(logged.uri.path()),
                status = res.status().as_u16(),
                latency_ms = logged.started.elapsed().as_millis() as u64,
                "request"
            );
        }
        Poll::Ready(Ok(res))
    }
}

/// A path for the log: segments that name a person or a chat (`628…@s.whatsapp.net`,
/// a phone number, a group id) are replaced by `{chat}`, as query strings are left
/// out: they are phone numbers.
pub(crate) fn loggable_path(path: &str) -> Cow<'_, str> {
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

/// Adds [`Edge`].
#[derive(Clone)]
pub struct EdgeLayer {
    state: Server,
    cors: Arc<CorsLayer>,
}

impl EdgeLayer {
    pub fn new(state: Server, cors: CorsLayer) -> Self {
        Self {
            state,
            cors: Arc::new(cors),
        }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            core: Core {
                inner,
                state: self.state.clone(),
            },
            cors: self.cors.clone(),
        }
    }
}

/// CORS for browsers' requests, then [`Core`]. Other requests (curl, SDKs, servers
/// send no `Origin`) skip the CORS service, which is cloned per request, and get its
/// `Vary` header from [`Core`].
#[derive(Clone)]
pub struct Edge<S> {
    core: Core<S>,
    cors: Arc<CorsLayer>,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future =
        Either<Oneshot<Cors<Core<S>>, Request>, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.core.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if req.headers().contains_key(header::ORIGIN) {
            Either::Left(self.cors.layer(self.core.clone()).oneshot(req))
        } else {
            Either::Right(self.core.call(req))
        }
    }
}

/// What tower-http's CORS service adds to every response, for caches.
const VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);

/// The guard, the device check, panics, timeouts, the envelope and the dialect.
#[derive(Clone)]
pub struct Core<S> {
    inner: S,
    state: Server,
}

impl<S> Service<Request> for Core<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The clone is the one that was not made ready: keep the ready one for this call.
        let fresh = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, fresh);
        let state = self.state.clone();
        let vary = !req.headers().contains_key(header::ORIGIN);
        Box::pin(async move {
            let mut res = answer(inner, state, req).await;
            if vary {
                res.headers_mut().append(header::VARY, VARY);
            }
            Ok(res)
        })
    }
}

async fn answer<S>(mut inner: S, state: Server, mut req: Request) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    if is_probe(req.uri().path()) {
        let Ok(res) = inner.call(req).await;
        return res;
    }
    // An account's own API key: that account only, and no account management.
    let key_scope = match guard::api_key(req.headers()) {
        Some(key) => match state.accounts.account_for_key(key) {
            Some(id) => Some(id),
            None => return dialect(&state, guard::unauthorized(), false).await,
        },
        None => None,
    };
    if let Some(refusal) = guard::refusal(&state.guard, &req, key_scope.is_some()) {
        return dialect(&state, refusal, false).await;
    }
    if let Some(id) = key_scope {
        let path = super::route_path(&state.limits.base_path, req.uri().path());
        if path == "/devices" || path.starts_with("/devices/") || path == "/metrics" {
            let refused = ApiError::new(
                StatusCode::FORBIDDEN,
                "an account's API key cannot manage devices; use the operator's credentials",
            );
            return dialect(&state, refused.into_response(), false).await;
        }
        req.extensions_mut().insert(super::scope::KeyScope(id));
    }
    let is_send =
        super::route_path(&state.limits.base_path, req.uri().path()).starts_with("/send/");
    let method = req.method().clone();
    let sent = req
        .extensions()
        .get::<SentUri>()
        .map_or_else(|| req.uri().clone(), |s| s.0.clone());
    let timeout = state.limits.request_timeout;
    let routed = AssertUnwindSafe(async {
        let mut routed = std::pin::pin!(inner.call(req));
        // Most answers are ready at once (a status, a refusal): no timer for them.
        if let Poll::Ready(Ok(res)) = futures_util::poll!(routed.as_mut()) {
            return res;
        }
        match tokio::time::timeout(timeout, routed).await {
            Ok(Ok(res)) => res,
            Err(_) => {
                ApiError::new(StatusCode::REQUEST_TIMEOUT, "request timed out").into_response()
            }
        }
    })
    .catch_unwind()
    .await;
    let res = match routed {
        Ok(res) => envelope_errors(res, &method, sent.path()),
        Err(panic) => panic_response(panic),
    };
    dialect(&state, res, is_send).await
}

async fn dialect(state: &Server, res: Response, is_send: bool) -> Response {
    match state.limits.api_compat {
        wire::ApiCompat::V2_3_0 => res,
        wire::ApiCompat::V9 => wire::to_v9(res, is_send).await,
    }
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

/// Puts error responses made outside our handlers (static files, body limits) into
/// the envelope too.
fn envelope_errors(res: Response, method: &Method, path: &str) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return res;
    }
    debug!(
        status = status.as_u16(),
        "an error from outside the handlers"
    );
    let message = match status {
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
            format!("Cannot {method} {path}")
        }
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
