//! Routes under `/app`: login by QR, logout, reconnect, status.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde::Serialize;

use axum::extract::RawQuery;
use validator::Validate;

use super::form::{FormSpec, read_query};
use super::request::PhoneQuery;
use super::response::{ApiError, ok};
use super::scope::LoginScope;
use super::wire::ApiCompat;
use super::{AppState, Server};
use crate::domain::validation::ValidationErrors;

pub fn router() -> Router<Server> {
    Router::new()
        .route("/app/login", get(login))
        .route("/app/login-with-code", get(login_with_code))
        .route("/app/logout", get(logout))
        .route("/app/reconnect", get(reconnect))
        .route("/app/status", get(status))
        .route("/app/devices", get(devices))
        .route("/app/info", get(info))
        .route("/webhook/status", get(webhook_status))
        // Outside auth and the logs: see `edge`.
        .route("/health", get(health))
        .route("/ready", get(ready))
}

/// The later versions' pairing by code: `?phone=` with its country code.
async fn login_with_code(
    scope: LoginScope,
    RawQuery(query): RawQuery,
) -> Result<Response, Response> {
    let spec = FormSpec::text_under(scope.limits(), &["phone"]);
    let mut form = read_query(query.as_deref(), &spec)?;
    form.normalize_phone("phone");
    let req: PhoneQuery = form.parse()?;
    req.validate()
        .map_err(|e| ApiError::from(ValidationErrors::from(e)))?;
    // A bad phone makes no account.
    let state = scope.account().await?;
    let phone = req.phone.unwrap_or_default();
    let digits = phone.trim_start_matches('+');
    let pair_code = state
        .app
        .login_with_code(digits)
        .await
        .map_err(ApiError::from)?;
    let mut results = serde_json::json!({ "pair_code": pair_code });
    if state.limits.api_compat == ApiCompat::V9 {
        results["device_id"] = state.slot.clone().into();
    }
    Ok(ok("Login with code success", Some(results)))
}

/// The later versions' device list: the named account, when paired, by its slot.
async fn devices(state: AppState) -> Response {
    let devices: Vec<_> = state
        .app
        .status()
        .await
        .device_id
        .map(|jid| serde_json::json!({ "name": "", "device": state.slot, "jid": jid }))
        .into_iter()
        .collect();
    ok("Fetch device success", Some(devices))
}

/// The later versions' app info: version and upload limits (bytes).
async fn info(State(state): State<Server>) -> Response {
    let mb = |n: u64| n * 1_000_000;
    ok(
        "Fetch app info success",
        Some(serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "os": std::env::consts::OS,
            "base_path": state.limits.base_path,
            "max_file_size": mb(state.limits.max_file_mb),
            "max_image_size": mb(state.limits.max_file_mb),
            "max_video_size": mb(state.limits.max_video_mb),
            "chatwoot_enabled": false,
        })),
    )
}

/// `GET /health`: plain `OK`, or 503 while the server stops. Outside every layer:
/// no credentials, no envelope, no request log.
pub async fn health(State(server): State<Server>) -> (axum::http::StatusCode, &'static str) {
    use crate::whatsapp::SessionPhase;
    let accounts = server.accounts.list();
    match accounts
        .iter()
        .any(|a| a.wa.phase() == SessionPhase::Stopping)
    {
        true => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
        ),
        false => (axum::http::StatusCode::OK, "OK"),
    }
}

/// `GET /ready` (not in Go): `OK` when this server serves all its accounts, else
/// 503 and why (accounts still opening after a start, the database lock lost,
/// stopping). Outside every layer, as `/health`.
pub async fn ready(State(server): State<Server>) -> (axum::http::StatusCode, String) {
    match server.accounts.readiness() {
        Ok(()) => (axum::http::StatusCode::OK, "OK".to_owned()),
        Err(why) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

/// Not in v2.3.0: the dashboard polls it to know when a scan has logged in. The
/// later versions name the account's slot in `device_id`, its JID in `jid`.
async fn status(state: AppState) -> Response {
    let status = state.app.status().await;
    match state.limits.api_compat {
        ApiCompat::V2_3_0 => ok("Success", Some(status)),
        ApiCompat::V9 => {
            let mut results = serde_json::to_value(&status).unwrap_or_default();
            results["device_id"] = state.slot.clone().into();
            ok("Connection status retrieved", Some(results))
        }
    }
}

/// Not in Go: the webhook outbox per URL, with each one's latest error.
pub async fn webhook_status(state: AppState) -> Result<Response, ApiError> {
    let status = state.app.webhook_status().await?;
    Ok(match status {
        Some(status) => ok("Success", Some(status)),
        None => ok(
            "Webhooks are not configured (--webhook)",
            Some(serde_json::json!({"urls": []})),
        ),
    })
}

#[derive(Serialize)]
pub(super) struct LoginResult {
    pub qr_duration: u64,
    pub qr_link: String,
}

async fn login(scope: LoginScope, headers: HeaderMap) -> Result<Response, Response> {
    let state = scope.account().await?;
    let qr = login_qr(&state, &headers).await?;
    Ok(match state.limits.api_compat {
        ApiCompat::V2_3_0 => ok("Success", Some(qr)),
        ApiCompat::V9 => ok(
            "Login success",
            Some(serde_json::json!({
                "device_id": state.slot,
                "qr_duration": qr.qr_duration,
                "qr_link": qr.qr_link,
            })),
        ),
    })
}

/// Starts (or goes on with) pairing by QR: the image's link and how long it is valid.
pub(super) async fn login_qr(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<LoginResult, ApiError> {
    let qr = state.app.login().await?;
    let qr_link = format!(
        "{}{}/statics/{}/{}",
        base_url(headers),
        state.limits.base_path,
        state.limits.api_compat.qr_path(),
        qr.file_name
    );
    Ok(LoginResult {
        qr_duration: qr.qr_duration,
        qr_link,
    })
}

async fn logout(State(server): State<Server>, state: AppState) -> Result<Response, ApiError> {
    state.app.logout().await?;
    server.notices.publish(
        &state.slot,
        crate::notices::Event::LoggedOut {
            by: crate::notices::Logout::App,
        },
    );
    Ok(ok("Success logout", slot_result(&state)))
}

async fn reconnect(state: AppState) -> Result<Response, ApiError> {
    state.app.reconnect().await?;
    Ok(ok("Reconnect success", slot_result(&state)))
}

/// The later versions answer `{device_id}` (the slot); v2.3.0 nothing.
fn slot_result(state: &AppState) -> Option<serde_json::Value> {
    (state.limits.api_compat == ApiCompat::V9)
        .then(|| serde_json::json!({ "device_id": state.slot }))
}

/// `scheme://host` as the client reached us, proxies included.
pub fn base_url(headers: &HeaderMap) -> String {
    let scheme = match super::first_header_value(headers, "x-forwarded-proto") {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    let host = super::requested_host(headers)
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]_".contains(c))
        })
        .unwrap_or("localhost:3000");
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn base_url_prefers_forwarded_headers() {
        assert_eq!(
            base_url(&headers(&[("host", "localhost:3000")])),
            "http://localhost:3000"
        );
        assert_eq!(
            base_url(&headers(&[
                ("host", "10.0.0.2:3000"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "wa.example.com")
            ])),
            "https://wa.example.com"
        );
    }

    #[test]
    fn a_host_with_odd_characters_is_not_echoed() {
        assert_eq!(
            base_url(&headers(&[("host", "evil.com/<script>")])),
            "http://localhost:3000"
        );
    }
}
