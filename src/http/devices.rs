//! `/devices`: the accounts of this server as the later Go versions manage them
//! (their "device slots"). These routes name the account in the path, by slot id.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use validator::Validate;

use super::form::{FormSpec, read_query};
use super::request::PhoneQuery;
use super::response::{ApiError, ok};
use super::wire::ErrorCode;
use super::{AppState, Server};
use crate::accounts::{Account, AccountWebhook, AddError, Lookup};
use crate::domain::validation::ValidationErrors;
use crate::whatsapp::SessionPhase;

pub fn router() -> Router<Server> {
    Router::new()
        .route("/devices", get(list).post(add))
        .route("/devices/{device_id}", get(info).delete(remove))
        .route("/devices/{device_id}/login", get(login))
        .route("/devices/{device_id}/login/code", post(login_code))
        .route("/devices/{device_id}/logout", post(logout))
        .route("/devices/{device_id}/reconnect", post(reconnect))
        .route("/devices/{device_id}/status", get(status))
        .route(
            "/devices/{device_id}/webhook",
            get(webhook).patch(set_webhook),
        )
        .route("/devices/{device_id}/api-key", post(api_key))
}

/// One account as Go's `Device`.
#[derive(Serialize)]
struct Device {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    /// `disconnected`, `connecting`, `connected` (pairing) or `logged_in`.
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    jid: Option<String>,
    created_at: String,
}

impl Device {
    /// An account not open here, as its slot says it (`state`: `connecting` or
    /// `disconnected`).
    fn waiting(slot: &crate::accounts::registry::Slot, state: &'static str) -> Self {
        Device {
            id: slot.id.clone(),
            display_name: None,
            state,
            jid: None,
            created_at: rfc3339(slot.created_at),
        }
    }

    fn of(account: &Account) -> Self {
        Device {
            id: account.id.clone(),
            display_name: None,
            state: state_name(account.wa.phase()),
            jid: account.jid(),
            created_at: rfc3339(account.created_at),
        }
    }
}

/// Go's name of an account's state.
pub(super) fn state_name(phase: SessionPhase) -> &'static str {
    match phase {
        SessionPhase::Connected => "logged_in",
        SessionPhase::Connecting | SessionPhase::Reconnecting => "connecting",
        SessionPhase::Pairing => "connected",
        SessionPhase::LoggedOut | SessionPhase::Replaced | SessionPhase::Stopping => "disconnected",
    }
}

/// The slot is not open: no such slot (`DEVICE_NOT_FOUND`; Go answers 500 for
/// most routes here), or it is still starting (503).
struct NoSlot(Lookup);

impl From<NoSlot> for Response {
    fn from(NoSlot(why): NoSlot) -> Response {
        super::scope::refusal(why)
    }
}

fn slot(server: &Server, id: &str) -> Result<Arc<Account>, NoSlot> {
    server.accounts.slot(id).map_err(NoSlot)
}

async fn list(
    State(server): State<Server>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let mut devices = listed(&server, |_| true);
    // With several servers: theirs too, unless this is one server asking.
    if !headers.contains_key(super::forward::FORWARDED) {
        let others = listed_elsewhere(&server, &uri, &headers).await;
        if !others.is_empty() {
            devices.extend(others);
            let key = |d: &serde_json::Value| (d["created_at"].to_string(), d["id"].to_string());
            devices.sort_by_key(key);
        }
    }
    ok("List devices", Some(devices))
}

/// The accounts other servers serve, as each of them lists them (one `GET
/// /devices` sent on to each, with the client's credentials); an account no
/// server holds now (it is moving), or whose server does not answer, is
/// `connecting`.
async fn listed_elsewhere(
    server: &Server,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> Vec<serde_json::Value> {
    let Some(forwarder) = server.forwarder.as_ref() else {
        return Vec::new();
    };
    let moving = |slot: &crate::accounts::registry::Slot| {
        serde_json::to_value(Device::waiting(slot, "connecting")).unwrap_or_default()
    };
    let mut by_server: std::collections::BTreeMap<String, Vec<_>> = Default::default();
    let mut out = Vec::new();
    for (slot, address) in server.accounts.held_elsewhere().await {
        match address {
            Some(address) => by_server.entry(address).or_default().push(slot),
            None => out.push(moving(&slot)),
        }
    }
    let lists = futures_util::future::join_all(
        by_server
            .keys()
            .map(|address| forwarder.get_json(address, uri, headers)),
    )
    .await;
    for (slots, list) in by_server.into_values().zip(lists) {
        let mut theirs: std::collections::HashMap<String, serde_json::Value> = list
            .and_then(|l| l["results"].as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|d| Some((d["id"].as_str()?.to_owned(), d)))
            .collect();
        for slot in slots {
            out.push(theirs.remove(&slot.id).unwrap_or_else(|| moving(&slot)));
        }
    }
    out
}

/// The accounts `shown` keeps (by slot id), as Go's `Device`s, oldest first.
pub(super) fn listed(server: &Server, shown: impl Fn(&str) -> bool) -> Vec<serde_json::Value> {
    let mut devices: Vec<(i64, Device)> = server
        .accounts
        .list()
        .iter()
        .filter(|a| shown(&a.id))
        .map(|a| (a.created_at, Device::of(a)))
        .collect();
    // Still waiting to connect at startup, or not opened (the log says why).
    for (slot, broken) in server.accounts.not_open() {
        if !shown(&slot.id) {
            continue;
        }
        let state = if broken { "disconnected" } else { "connecting" };
        devices.push((slot.created_at, Device::waiting(&slot, state)));
    }
    devices.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
    devices
        .into_iter()
        .map(|(_, d)| serde_json::to_value(d).unwrap_or_default())
        .collect()
}

fn rfc3339(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .unwrap_or_default()
        .to_string()
}

/// `POST /devices`: JSON with all fields optional.
#[derive(Deserialize, Default)]
#[serde(default)]
struct NewDevice {
    device_id: Option<String>,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
    webhook_events: Option<String>,
    webhook_insecure_skip_verify: Option<bool>,
    /// Not in Go: also issue the account's own API key (shown once).
    api_key: bool,
}

fn invalid_body() -> ApiError {
    ApiError::bad_request("Invalid request body").with_code(ErrorCode::BadRequest)
}

async fn add(State(server): State<Server>, body: Bytes) -> Result<Response, ApiError> {
    let new: NewDevice = if body.iter().all(u8::is_ascii_whitespace) {
        NewDevice::default()
    } else {
        serde_json::from_slice(&body).map_err(|_| invalid_body())?
    };
    let hook = new
        .webhook_url
        .as_ref()
        .filter(|u| !u.trim().is_empty())
        .map(|url| AccountWebhook {
            url: url.trim().to_owned(),
            secret: new.webhook_secret.clone().unwrap_or_default(),
            events: new.webhook_events.clone().unwrap_or_default(),
            insecure_skip_verify: new.webhook_insecure_skip_verify.unwrap_or(false),
        });
    if let Some(hook) = &hook {
        check_webhook(hook)?;
    }
    let account = server
        .accounts
        .add(new.device_id)
        .await
        .map_err(|e| match e {
            AddError::Exists(_) | AddError::InvalidId(_) => {
                ApiError::bad_request(e.to_string()).with_code(ErrorCode::BadRequest)
            }
            AddError::NoRoom(why) => {
                tracing::error!("cannot add an account: {why}");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, why)
            }
            other => {
                tracing::error!(error = %other, "cannot add an account");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "cannot add the device")
            }
        })?;
    let mut answer = serde_json::to_value(Device::of(&account)).unwrap_or_default();
    // Go answers this one in a fixed shape, empty fields included.
    if let Some(map) = answer.as_object_mut() {
        for field in ["display_name", "jid"] {
            map.entry(field).or_insert_with(|| "".into());
        }
    }
    if let Some(hook) = hook {
        set_hook(&server, &account.id, &hook).await?;
        if let Some(map) = answer.as_object_mut() {
            map.extend(webhook_fields(&account.id, &hook).into_iter().skip(1));
        }
    }
    if new.api_key {
        let key = issue_key(&server, &account.id).await?;
        if let Some(map) = answer.as_object_mut() {
            map.insert("api_key".into(), key.into());
        }
    }
    Ok(ok("Device added", Some(answer)))
}

async fn info(State(server): State<Server>, Path(id): Path<String>) -> Result<Response, Response> {
    let account = slot(&server, &id)?;
    Ok(ok("Device info", Some(Device::of(&account))))
}

async fn remove(
    State(server): State<Server>,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    match server.accounts.remove(&id).await {
        Ok(None) => Ok(ok::<()>("Device removed", None)),
        Ok(Some(why)) => Err(super::scope::refusal(why)),
        Err(e) => {
            tracing::error!(device_id = %id, error = %e, "cannot remove an account");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot remove the device",
            )
            .into())
        }
    }
}

fn state_of(server: &Server, id: &str) -> Result<AppState, NoSlot> {
    slot(server, id).map(|a| a.state.clone())
}

async fn login(
    State(server): State<Server>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let state = state_of(&server, &id)?;
    let qr = super::app::login_qr(&state, &headers).await?;
    Ok(ok(
        "Login success",
        Some(serde_json::json!({
            "device_id": id,
            "qr_link": qr.qr_link,
            "qr_duration": qr.qr_duration,
        })),
    ))
}

/// `?phone=` as Go reads it, or `{"phone": …}` as the `gowa` SDK sends it.
async fn login_code(
    State(server): State<Server>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, Response> {
    let state = state_of(&server, &id)?;
    let spec = FormSpec::text(&state, &["phone"]);
    let in_body = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("phone")?.as_str().map(str::to_owned));
    let query = match (query, in_body) {
        (Some(q), _) if q.contains("phone=") => Some(q),
        (_, Some(phone)) => {
            Some(serde_urlencoded::to_string([("phone", phone)]).map_err(|_| invalid_body())?)
        }
        (q, None) => q,
    };
    let mut form = read_query(query.as_deref(), &spec)?;
    form.normalize_phone("phone");
    let req: PhoneQuery = form.parse()?;
    req.validate()
        .map_err(|e| ApiError::from(ValidationErrors::from(e)))?;
    let phone = req.phone.unwrap_or_default();
    let pair_code = state
        .app
        .login_with_code(phone.trim_start_matches('+'))
        .await
        .map_err(ApiError::from)?;
    Ok(ok(
        "Login with code started",
        Some(serde_json::json!({ "device_id": id, "pair_code": pair_code })),
    ))
}

async fn logout(
    State(server): State<Server>,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let state = state_of(&server, &id)?;
    state.app.logout().await.map_err(ApiError::from)?;
    server.notices.publish(
        &id,
        crate::notices::Event::LoggedOut {
            by: crate::notices::Logout::Devices,
        },
    );
    Ok(ok::<()>("Logout requested", None))
}

async fn reconnect(
    State(server): State<Server>,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let state = state_of(&server, &id)?;
    state.app.reconnect().await.map_err(ApiError::from)?;
    Ok(ok::<()>("Reconnect requested", None))
}

async fn status(
    State(server): State<Server>,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let state = state_of(&server, &id)?;
    let status = state.app.status().await;
    Ok(ok(
        "Device status",
        Some(serde_json::json!({
            "device_id": id,
            "is_connected": status.is_connected,
            "is_logged_in": status.is_logged_in,
        })),
    ))
}

fn webhook_fields(id: &str, hook: &AccountWebhook) -> serde_json::Map<String, serde_json::Value> {
    let serde_json::Value::Object(map) = serde_json::json!({
        "device_id": id,
        "webhook_url": hook.url,
        "webhook_secret": hook.secret,
        "webhook_events": hook.events,
        "webhook_insecure_skip_verify": hook.insecure_skip_verify,
    }) else {
        unreachable!("a JSON object literal")
    };
    map
}

async fn webhook(
    State(server): State<Server>,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    slot(&server, &id)?;
    let hook = server.accounts.webhook(&id).await.map_err(|e| {
        tracing::error!(device_id = %id, error = %e, "cannot read an account's webhook");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the device's webhook",
        )
    })?;
    Ok(ok(
        "Device webhook retrieved",
        Some(webhook_fields(&id, &hook.unwrap_or_default())),
    ))
}

/// `PATCH /devices/:id/webhook`: JSON; `webhook_url` is required, `""` clears it.
#[derive(Deserialize)]
struct WebhookPatch {
    webhook_url: Option<String>,
    #[serde(default)]
    webhook_secret: String,
    #[serde(default)]
    webhook_events: String,
    #[serde(default)]
    webhook_insecure_skip_verify: bool,
}

async fn set_webhook(
    State(server): State<Server>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Response> {
    slot(&server, &id)?;
    let patch: WebhookPatch = serde_json::from_slice(&body).map_err(|_| invalid_body())?;
    let Some(url) = patch.webhook_url else {
        return Err(ApiError::bad_request("webhook_url is required")
            .with_code(ErrorCode::BadRequest)
            .into());
    };
    let hook = AccountWebhook {
        url: url.trim().to_owned(),
        secret: patch.webhook_secret,
        events: patch.webhook_events,
        insecure_skip_verify: patch.webhook_insecure_skip_verify,
    };
    check_webhook(&hook)?;
    set_hook(&server, &id, &hook).await?;
    server
        .notices
        .publish(&id, crate::notices::Event::WebhookChanged);
    Ok(ok(
        "Device webhook updated",
        Some(webhook_fields(&id, &hook)),
    ))
}

async fn set_hook(server: &Server, id: &str, hook: &AccountWebhook) -> Result<(), ApiError> {
    match server.accounts.set_webhook(id, hook).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(ApiError::new(StatusCode::NOT_FOUND, "device not found")
            .with_code(ErrorCode::DeviceNotFound)),
        Err(e) => {
            tracing::error!(device_id = %id, error = %e, "cannot set an account's webhook");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot set the device's webhook",
            ))
        }
    }
}

async fn issue_key(server: &Server, id: &str) -> Result<String, ApiError> {
    match server.accounts.issue_key(id).await {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(ApiError::new(StatusCode::NOT_FOUND, "device not found")
            .with_code(ErrorCode::DeviceNotFound)),
        Err(e) => {
            tracing::error!(device_id = %id, error = %e, "cannot issue an account API key");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot issue the device's API key",
            ))
        }
    }
}

/// Not in Go: `POST /devices/:id/api-key` gives the account a new API key (the old
/// one stops working). It grants that account's routes only, in place of basic
/// auth; it is shown once.
async fn api_key(
    State(server): State<Server>,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    slot(&server, &id)?;
    let key = issue_key(&server, &id).await?;
    Ok(ok(
        "Device API key issued",
        Some(serde_json::json!({ "device_id": id, "api_key": key })),
    ))
}

/// Every URL is an absolute http(s) URL, and nothing is huge.
fn check_webhook(hook: &AccountWebhook) -> Result<(), ApiError> {
    for url in hook.url.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let fine = url::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !fine {
            return Err(ApiError::bad_request(format!(
                "webhook_url: {} is not an http or https URL",
                crate::webhook::redact_url(url)
            ))
            .with_code(ErrorCode::BadRequest));
        }
    }
    if hook.url.len() > 4096 || hook.secret.len() > 1024 || hook.events.len() > 1024 {
        return Err(
            ApiError::bad_request("webhook settings too long").with_code(ErrorCode::BadRequest)
        );
    }
    Ok(())
}
