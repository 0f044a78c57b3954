//! Which account a request is for: `X-Device-Id` (URL-decoded), else the
//! `device_id` query parameter, as a slot id, a number or a JID; with none named,
//! the only account. Handlers that take [`AppState`] get that account's services.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::response::Envelope;
use super::wire::ErrorCode;
use super::{AppState, Server};
use crate::accounts::Lookup;

/// A request authenticated with an account's own API key: it may act on that
/// account only (set by the edge, see [`super::edge`]).
#[derive(Debug, Clone)]
pub struct KeyScope(pub String);

/// The account id a request names, if any.
pub fn named_device(parts: &Parts) -> Option<String> {
    named_in(&parts.headers, &parts.uri)
}

/// The account id a request with `headers` to `uri` names: `X-Device-Id`, else
/// `device_id` in the query.
pub fn named_in(headers: &axum::http::HeaderMap, uri: &axum::http::Uri) -> Option<String> {
    let header = super::first_header_value(headers, "x-device-id").map(|v| {
        percent_encoding::percent_decode_str(v)
            .decode_utf8_lossy()
            .into_owned()
    });
    header
        .or_else(|| {
            let query = uri.query()?;
            serde_urlencoded::from_str::<Vec<(String, String)>>(query)
                .ok()?
                .into_iter()
                .find(|(k, _)| k == "device_id")
                .map(|(_, v)| v)
        })
        .filter(|id| !id.trim().is_empty())
}

/// The answer for a request that names no single account.
pub fn refusal(lookup: Lookup) -> Response {
    let (status, code, message, id) = match lookup {
        Lookup::Required => (
            StatusCode::BAD_REQUEST,
            ErrorCode::DeviceIdRequired,
            "device_id is required via X-Device-Id header or device_id query".to_owned(),
            None,
        ),
        Lookup::NotFound(id) => (
            StatusCode::NOT_FOUND,
            ErrorCode::DeviceNotFound,
            "device not found; create a device first from /devices or provide a valid X-Device-Id"
                .to_owned(),
            Some(id),
        ),
        Lookup::Ambiguous(id) => (
            StatusCode::BAD_REQUEST,
            ErrorCode::DeviceIdRequired,
            format!("several devices are linked to {id}; name one by its device id"),
            Some(id),
        ),
        Lookup::Starting(id) => (
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "the server is starting its devices; try again in a few seconds".to_owned(),
            Some(id),
        ),
        Lookup::Elsewhere(id) => (
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            format!(
                "device {id} is served by another server sharing this database, or is moving between servers; try again in a few seconds"
            ),
            Some(id),
        ),
        Lookup::Broken(id) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            format!(
                "device {id} could not be opened (the server log says why); remove it or restart the server"
            ),
            Some(id),
        ),
    };
    let retry = status == StatusCode::SERVICE_UNAVAILABLE;
    let envelope = Envelope {
        code: status.as_u16(),
        message,
        results: id.map(|id| serde_json::json!({ "device_id": id })),
    };
    let mut res = (status, axum::Json(envelope)).into_response();
    res.extensions_mut().insert(code);
    if retry {
        res.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("5"),
        );
    }
    res
}

/// The account a request is for: the one it names, the only one, or with an
/// account's API key, that account (naming another is a 404, as for an unknown id).
fn scoped(parts: &Parts, server: &Server) -> Result<Option<AppState>, Lookup> {
    let named = named_device(parts);
    let Some(KeyScope(own)) = parts.extensions.get::<KeyScope>() else {
        return match named {
            None if server.accounts.is_empty() => Ok(None),
            named => server
                .accounts
                .resolve(named.as_deref())
                .map(|a| Some(a.state.clone())),
        };
    };
    let account = match named.as_deref() {
        None => server.accounts.get(own),
        Some(named) => server
            .accounts
            .resolve(Some(named))
            .ok()
            .filter(|a| &a.id == own),
    };
    account
        .map(|a| Some(a.state.clone()))
        .ok_or_else(|| Lookup::NotFound(named.unwrap_or_else(|| own.clone())))
}

impl FromRequestParts<Server> for AppState {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, server: &Server) -> Result<Self, Response> {
        match scoped(parts, server) {
            Ok(Some(state)) => Ok(state),
            Ok(None) => Err(refusal(Lookup::Required)),
            Err(lookup) => Err(refusal(lookup)),
        }
    }
}

/// The account of a login: as [`AppState`], but a server with no account at all
/// gets its first one (a client of the one-account versions logs in as before),
/// made only once the request is known to be good: see [`LoginScope::account`].
pub enum LoginScope {
    Account(AppState),
    /// No account at all, none named, no key.
    First(Server),
}

impl LoginScope {
    /// The account to log in, made now if the server has none.
    pub async fn account(self) -> Result<AppState, Response> {
        match self {
            LoginScope::Account(state) => Ok(state),
            LoginScope::First(server) => server
                .accounts
                .only_or_add_default()
                .await
                .map(|account| account.state.clone())
                .map_err(refusal),
        }
    }

    /// The settings the request is read under.
    pub fn limits(&self) -> &super::Limits {
        match self {
            LoginScope::Account(state) => &state.limits,
            LoginScope::First(server) => &server.limits,
        }
    }
}

impl FromRequestParts<Server> for LoginScope {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, server: &Server) -> Result<Self, Response> {
        match scoped(parts, server) {
            Ok(Some(state)) => Ok(LoginScope::Account(state)),
            Err(lookup) => Err(refusal(lookup)),
            Ok(None) => Ok(LoginScope::First(server.clone())),
        }
    }
}
