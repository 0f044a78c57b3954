//! Any server answers any request when several share one database: a request for
//! an account another server serves is sent on to that server (at the address
//! it registered, `--cluster-address`), and its answer comes back unchanged, so a
//! plain load balancer can spread requests over all the servers.
//!
//! It runs after the edge (credentials, browser checks, logs), so only requests
//! this server would take are sent on; the other server checks them again. A
//! request sent on carries [`FORWARDED`] and is never sent on a second time: an
//! account that moved meanwhile gets a 503 with `Retry-After` there.
//! Not sent on: `/ws` (each server's socket hears its own accounts) and requests
//! that name an account by its number or JID (only ids are known everywhere).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, Uri, header};
use axum::middleware::Next;
use axum::response::Response;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tracing::warn;

use super::Server;

/// Marks a request one server sent on to another.
pub const FORWARDED: &str = "x-whatsapp-api-forwarded";

/// Longest wait for the other server's answer (a send waits for WhatsApp's
/// acknowledgement; an upload may be large).
const WAIT: Duration = Duration::from_secs(300);

/// Headers of one hop only, never sent on (with those `Connection` names).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Removes the hop-by-hop headers of `headers`.
fn strip_hop_by_hop(headers: &mut axum::http::HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    for name in HOP_BY_HOP
        .iter()
        .copied()
        .chain(named.iter().map(String::as_str))
    {
        headers.remove(name);
    }
}

/// The HTTP client requests are sent on with (connections kept per server).
#[derive(Clone)]
pub struct Forwarder {
    client: Client<HttpConnector, Body>,
}

impl Default for Forwarder {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_nodelay(true);
        Forwarder {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }
}

/// The account a request is for, as every server knows it: `X-Device-Id` or
/// `device_id`, else the id in a `/devices/{id}/…` path.
fn named_account(req: &Request, base: &str) -> Option<String> {
    if let Some(id) = super::scope::named_in(req.headers(), req.uri()) {
        return Some(id);
    }
    let path = super::route_path(base, req.uri().path());
    let id = path.strip_prefix("/devices/")?.split('/').next()?;
    let id = percent_encoding::percent_decode_str(id)
        .decode_utf8()
        .ok()?;
    (!id.is_empty()).then(|| id.into_owned())
}

/// The middleware: sends the request on when another server serves its account.
pub async fn forward(State(server): State<Server>, req: Request, next: Next) -> Response {
    let Some(forwarder) = server.forwarder.as_ref() else {
        return next.run(req).await;
    };
    let path = super::route_path(&server.limits.base_path, req.uri().path());
    // `/mcp` acts on this server's accounts (its tool calls are not sent on).
    if req.headers().contains_key(FORWARDED) || path == "/ws" || path == "/mcp" {
        return next.run(req).await;
    }
    let named = named_account(&req, &server.limits.base_path);
    let Some((account, address)) = server.accounts.served_elsewhere(named.as_deref()).await else {
        return next.run(req).await;
    };
    forwarder.send(req, &account, &address).await
}

impl Forwarder {
    /// Sends `req` (for `account`) to the server at `address`; its answer, or a
    /// 503 when it cannot be reached.
    async fn send(&self, req: Request, account: &str, address: &str) -> Response {
        let (mut parts, body) = req.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let uri = match format!("{address}{path}").parse::<Uri>() {
            Ok(uri) if uri.scheme_str() == Some("http") => uri,
            _ => return unreachable(account, "its registered address is not an http:// URL"),
        };
        parts.uri = uri;
        // `Host` stays the client's: links in the answer, and the other server's
        // browser checks, are the ones a direct request would get.
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.insert(
            HeaderName::from_static(FORWARDED),
            axum::http::HeaderValue::from_static("1"),
        );
        let request = Request::from_parts(parts, body);
        let answer = tokio::time::timeout(WAIT, self.client.request(request)).await;
        match answer {
            Ok(Ok(res)) => {
                let (mut parts, body) = res.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, Body::new(body))
            }
            Ok(Err(e)) => {
                warn!(device_id = %account, error = %e, "cannot reach the server serving the account");
                unreachable(account, "the server serving it cannot be reached")
            }
            Err(_) => unreachable(account, "the server serving it did not answer in time"),
        }
    }
}

/// Longest wait for another server's account list.
const LIST_WAIT: Duration = Duration::from_secs(10);

/// The largest account list read from another server (a thousand accounts take
/// about 150 KB).
const LIST_LIMIT: usize = 16 << 20;

impl Forwarder {
    /// The JSON answer of the server at `address` to a GET of `uri` with the
    /// client's `headers` (credentials included: that server checks them again),
    /// marked as sent on so that it answers for itself; `None` when it cannot be
    /// reached, says other than 200, or is not JSON.
    pub async fn get_json(
        &self,
        address: &str,
        uri: &Uri,
        headers: &axum::http::HeaderMap,
    ) -> Option<serde_json::Value> {
        use http_body_util::BodyExt;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let uri = format!("{address}{path}").parse::<Uri>().ok()?;
        if uri.scheme_str() != Some("http") {
            return None;
        }
        let mut request = Request::get(uri).body(Body::empty()).ok()?;
        *request.headers_mut() = headers.clone();
        strip_hop_by_hop(request.headers_mut());
        request.headers_mut().remove(header::CONTENT_LENGTH);
        request.headers_mut().insert(
            HeaderName::from_static(FORWARDED),
            axum::http::HeaderValue::from_static("1"),
        );
        let read = async {
            let res = self.client.request(request).await.ok()?;
            if res.status() != axum::http::StatusCode::OK {
                return None;
            }
            let body = http_body_util::Limited::new(res.into_body(), LIST_LIMIT);
            let bytes = body.collect().await.ok()?.to_bytes();
            serde_json::from_slice(&bytes).ok()
        };
        match tokio::time::timeout(LIST_WAIT, read).await {
            Ok(Some(value)) => Some(value),
            _ => {
                warn!(address, "cannot read the account list of another server");
                None
            }
        }
    }
}

/// The 503 of an account whose server cannot be reached (it may be moving).
fn unreachable(account: &str, why: &str) -> Response {
    let mut res = super::scope::refusal(crate::accounts::Lookup::Elsewhere(account.to_owned()));
    if let Ok(value) = axum::http::HeaderValue::from_str(why) {
        res.headers_mut()
            .insert(HeaderName::from_static("x-whatsapp-api-why"), value);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn request(uri: &str, device: Option<&str>) -> Request {
        let mut builder = Request::builder().uri(uri);
        if let Some(d) = device {
            builder = builder.header("x-device-id", d);
        }
        builder.body(Body::empty()).unwrap()
    }

    #[test]
    fn the_account_comes_from_the_header_the_query_or_a_devices_path() {
        assert_eq!(
            named_account(&request("/send/message", Some("sales")), "").as_deref(),
            Some("sales")
        );
        assert_eq!(
            named_account(&request("/app/status?device_id=ops", None), "").as_deref(),
            Some("ops")
        );
        assert_eq!(
            named_account(&request("/gowa/devices/a%20b/login", None), "/gowa").as_deref(),
            Some("a b")
        );
        assert_eq!(named_account(&request("/devices", None), ""), None);
        assert_eq!(named_account(&request("/app/status", None), ""), None);
    }

    #[test]
    fn an_unreachable_server_is_a_503_to_retry() {
        let res = unreachable("sales", "the server serving it cannot be reached");
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(res.headers().contains_key(header::RETRY_AFTER));
    }
}
