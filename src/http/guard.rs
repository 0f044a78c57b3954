//! Who may call the API: basic auth when accounts are configured, and, for browsers,
//! no cross-site requests that change state and no DNS rebinding.
//!
//! Threat model: the server acts as the WhatsApp account's owner. Any web page the
//! owner opens could otherwise make the browser call it (a form POST or an `<img>`
//! needs no CORS permission), and a hostile DNS name that resolves to this server
//! would make those calls same-origin. curl, SDKs and other servers send no browser
//! headers and are not affected by the browser rules.

use std::net::IpAddr;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::debug;

use super::response::ApiError;

#[derive(Debug, Clone, Default)]
pub struct GuardConfig {
    pub accounts: Vec<(String, String)>,
    /// Origins allowed cross-site; `*` allows any.
    pub cors_origins: Vec<String>,
    pub allowed_hosts: Vec<String>,
    /// `--base-path`: route checks look at the path without it.
    pub base_path: String,
}

pub struct Guard {
    /// SHA-256 of each `user:password`, compared in constant time.
    accounts: Vec<[u8; 32]>,
    any_origin: bool,
    origins: Vec<String>,
    hosts: Vec<String>,
    base_path: String,
}

impl Guard {
    pub fn new(config: &GuardConfig) -> Self {
        Guard {
            accounts: config
                .accounts
                .iter()
                .map(|(user, password)| digest(format!("{user}:{password}").as_bytes()))
                .collect(),
            any_origin: config.cors_origins.iter().any(|o| o.trim() == "*"),
            origins: config
                .cors_origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|o| !o.is_empty() && o != "*")
                .collect(),
            hosts: config
                .allowed_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            base_path: config.base_path.clone(),
        }
    }

    pub fn needs_auth(&self) -> bool {
        !self.accounts.is_empty()
    }

    /// The CORS origins to answer with `Access-Control-Allow-Origin`.
    pub fn cors_allows(&self, origin: &HeaderValue) -> bool {
        self.any_origin
            || origin
                .to_str()
                .is_ok_and(|o| self.origins.contains(&o.to_ascii_lowercase()))
    }

    pub fn any_origin(&self) -> bool {
        self.any_origin
    }

    /// Whether the `Authorization` header names a configured account. Every account
    /// is compared, in constant time, whatever matches.
    fn authorized(&self, req: &Request) -> bool {
        let given = basic_credentials(req.headers()).or_else(|| {
            // A browser cannot set headers on a WebSocket: `/ws` also takes them as
            // `?authorization=<base64 of user:password>`, as Go's does.
            (super::route_path(&self.base_path, req.uri().path()) == "/ws")
                .then(|| query_credentials(req.uri().query()?))
                .flatten()
        });
        let Some(given) = given else {
            return false;
        };
        let given = digest(&given);
        self.accounts
            .iter()
            .fold(subtle::Choice::from(0), |found, account| {
                found | account.ct_eq(&given)
            })
            .into()
    }

    /// Why a browser request is refused, if it is.
    fn browser_refusal(&self, req: &Request) -> Option<String> {
        let headers = req.headers();
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        if origin.is_none() && fetch_site.is_none() {
            return None; // not a browser: curl, an SDK, another server
        }
        let host = super::requested_host(headers);
        if !self.needs_auth() && !self.host_allowed(host) {
            return Some(format!(
                "host {} is not allowed for browser requests; add it to --allowed-hosts \
                 (APP_ALLOWED_HOSTS) or set --basic-auth",
                host.unwrap_or("(none)")
            ));
        }
        let path = super::route_path(&self.base_path, req.uri().path());
        // `--cors-origins '*'` opens the API's answers to any page, not `/ws`: a
        // socket carries the browser's credentials and hears the accounts.
        if !changes_state(req.method(), path) || (self.any_origin && path != "/ws") {
            return None;
        }
        let cross_site = match origin {
            Some(origin) => {
                !same_origin(origin, host)
                    && !self
                        .origins
                        .contains(&origin.trim_end_matches('/').to_ascii_lowercase())
            }
            // No Origin (an <img>, a top-level navigation): trust the browser's verdict.
            None => matches!(fetch_site, Some("cross-site" | "same-site")),
        };
        cross_site.then(|| {
            format!(
                "cross-site request refused: {} may not call {} from a browser; \
                 allow a web app with --cors-origins",
                origin.unwrap_or("another site"),
                req.uri().path()
            )
        })
    }

    fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(host) = host else {
            return false;
        };
        let name = strip_port(host).to_ascii_lowercase();
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        bare.parse::<IpAddr>().is_ok()
            || bare == "localhost"
            || bare.ends_with(".localhost")
            || self.hosts.iter().any(|h| h == bare)
    }
}

/// Why a request may not reach its route: 401 without valid credentials (when
/// accounts are configured), 403 for a refused browser request.
/// `key_holder`: the request carries a valid account API key, which stands for
/// basic auth (its scope is checked later).
pub fn refusal(guard: &Guard, req: &Request, key_holder: bool) -> Option<Response> {
    if guard.needs_auth() && !key_holder && !guard.authorized(req) {
        debug!(path = %req.uri().path(), "request without valid credentials");
        return Some(unauthorized());
    }
    let why = guard.browser_refusal(req)?;
    debug!(path = %req.uri().path(), reason = %why, "browser request refused");
    Some(ApiError::new(StatusCode::FORBIDDEN, why).into_response())
}

pub fn unauthorized() -> Response {
    let mut res = ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    let headers = res.headers_mut();
    headers.insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Basic realm="whatsapp-api", charset="UTF-8""#),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Routes that change something: every non-GET, and the GETs of `/app` that log in,
/// out or reconnect (as v2.3.0 defined them). And `/ws`: a page elsewhere must not
/// open a socket with the browser's credentials and listen to the accounts.
fn changes_state(method: &Method, path: &str) -> bool {
    let read_only = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    !read_only || (path.starts_with("/app/") && path != "/app/status") || path == "/ws"
}

/// `user:password` from an `authorization` query parameter (base64, with or
/// without `Basic `).
fn query_credentials(query: &str) -> Option<Vec<u8>> {
    let value = serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == "authorization")?
        .1;
    let encoded = value.trim();
    let encoded = match encoded.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => rest.trim(),
        _ => encoded,
    };
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
}

/// An account's API key: `Authorization: Bearer <key>` or `X-Api-Key: <key>`.
pub fn api_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim());
    bearer
        .or_else(|| {
            headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        })
        .filter(|key| !key.is_empty())
}

/// `user:password` from a `Basic` authorization header.
fn basic_credentials(headers: &HeaderMap) -> Option<Vec<u8>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest
            .split_once(']')
            .map_or(host, |(addr, _)| &host[..addr.len() + 2]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// An `Origin` (`scheme://host[:port]`) naming the host the request was sent to.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else {
        return false;
    };
    let authority = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    authority.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(strip_port("localhost:3000"), "localhost");
        assert_eq!(strip_port("10.0.0.2"), "10.0.0.2");
        assert_eq!(strip_port("[::1]:3000"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }

    #[test]
    fn only_ip_literals_localhost_and_listed_names_are_safe_hosts() {
        let guard = Guard::new(&GuardConfig {
            allowed_hosts: vec!["wa.example.com".into()],
            ..GuardConfig::default()
        });
        for host in [
            "127.0.0.1:3000",
            "[::1]:3000",
            "192.168.1.20",
            "localhost:3000",
            "app.localhost",
            "WA.example.com:443",
        ] {
            assert!(guard.host_allowed(Some(host)), "{host}");
        }
        for host in ["evil.example", "127.0.0.1.evil.example", "localhost.evil"] {
            assert!(!guard.host_allowed(Some(host)), "{host}");
        }
        assert!(!guard.host_allowed(None));
    }

    #[test]
    fn the_origin_of_the_host_itself_is_same_origin() {
        assert!(same_origin("http://localhost:3000", Some("localhost:3000")));
        assert!(!same_origin(
            "http://localhost:8080",
            Some("localhost:3000")
        ));
        assert!(!same_origin("https://evil.example", Some("localhost:3000")));
        assert!(!same_origin("null", Some("localhost:3000")));
    }

    #[test]
    fn state_changing_routes() {
        assert!(changes_state(&Method::POST, "/send/message"));
        assert!(changes_state(&Method::GET, "/app/logout"));
        assert!(changes_state(&Method::GET, "/app/login"));
        assert!(!changes_state(&Method::GET, "/app/status"));
        assert!(!changes_state(&Method::GET, "/user/info"));
        assert!(changes_state(&Method::GET, "/ws"));
    }

    #[test]
    fn ws_credentials_come_from_the_query_with_or_without_the_scheme() {
        let plain = base64::engine::general_purpose::STANDARD.encode("u:p");
        assert_eq!(
            query_credentials(&format!("authorization={plain}")),
            Some(b"u:p".to_vec())
        );
        assert_eq!(
            query_credentials(&format!("device_id=x&authorization=Basic%20{plain}")),
            Some(b"u:p".to_vec())
        );
        assert_eq!(query_credentials("authorization=%%%"), None);
        assert_eq!(query_credentials("device_id=x"), None);
    }
}
