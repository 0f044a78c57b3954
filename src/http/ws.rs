//! `GET /ws`: the later Go versions' WebSocket of account events, in Go's frames
//! (`{"code", "message", "result"}`): `LOGIN_SUCCESS` when a phone pairs,
//! `DEVICE_LOGGED_OUT`, `DEVICE_WEBHOOK_CONFIG_UPDATED`, and `LIST_DEVICES` in reply
//! to a client's `{"code":"FETCH_DEVICES"}`.
//!
//! Beyond Go: every frame also names its account in `device_id`, and a socket opened
//! for one account (`X-Device-Id` or `?device_id=`, or with that account's API key)
//! hears that account only. Go sends every frame to every socket. The socket is
//! behind the same credentials as the API (a browser may pass them as
//! `?authorization=`), a page of another site may not open it, and at most
//! [`MAX_SOCKETS`] are open at once.

use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tracing::debug;

use super::Server;
use super::response::ApiError;
use super::scope::{KeyScope, named_device, refusal};
use crate::accounts::Lookup;
use crate::notices::{Event, Listener, Logout, Notice};

/// Most sockets open at once.
pub const MAX_SOCKETS: usize = 256;
/// Largest frame a client may send (its only useful frame is a few bytes).
const MAX_FRAME: usize = 16 * 1024;
/// A ping this often finds sockets whose peer is gone.
const PING_EVERY: Duration = Duration::from_secs(30);

pub fn router() -> Router<Server> {
    Router::new().route("/ws", get(open))
}

/// Which accounts a socket hears.
#[derive(Debug, Clone)]
enum Hears {
    /// The operator's socket, no account named: all of them.
    All,
    /// One account (its slot id).
    One(String),
}

impl Hears {
    fn covers(&self, account: &str) -> bool {
        match self {
            Hears::All => true,
            Hears::One(id) => id == account,
        }
    }
}

impl FromRequestParts<Server> for Hears {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, server: &Server) -> Result<Self, Response> {
        let named = named_device(parts);
        let own = parts.extensions.get::<KeyScope>().map(|k| k.0.clone());
        let Some(named) = named else {
            return Ok(own.map_or(Hears::All, Hears::One));
        };
        let account = server.accounts.resolve(Some(&named)).map_err(refusal)?;
        match own {
            // An account's key names no other account (as for an unknown id).
            Some(own) if own != account.id => Err(refusal(Lookup::NotFound(named))),
            _ => Ok(Hears::One(account.id.clone())),
        }
    }
}

async fn open(
    State(server): State<Server>,
    hears: Hears,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        return ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "/ws is a WebSocket: open it with an Upgrade: websocket request",
        )
        .into_response();
    };
    let Some(listener) = server.notices.listen() else {
        let mut res = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many /ws sockets are open (at most {MAX_SOCKETS}); try again later"),
        )
        .into_response();
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
        return res;
    };
    upgrade
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| serve(socket, server, hears, listener))
}

/// One frame as Go sends it, with the account it is about.
#[derive(Serialize)]
struct Frame<'a> {
    code: &'a str,
    message: String,
    result: Value,
    device_id: &'a str,
}

impl Frame<'_> {
    fn text(&self) -> Message {
        Message::Text(serde_json::to_string(self).unwrap_or_default().into())
    }
}

/// What a client sends: `{"code":"FETCH_DEVICES"}`.
#[derive(Deserialize)]
struct ClientFrame {
    #[serde(default)]
    code: String,
}

async fn serve(mut socket: WebSocket, server: Server, hears: Hears, mut listener: Listener) {
    debug!(hears = ?hears, "/ws socket opened");
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        let out = tokio::select! {
            heard = listener.receiver.recv() => match heard {
                Ok(notice) if hears.covers(&notice.account) => notice_frame(&server, &hears, &notice),
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => {
                    debug!(missed, "a /ws socket fell behind and missed notices");
                    continue;
                }
                Err(RecvError::Closed) => break,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<ClientFrame>(&text) {
                    Ok(frame) if frame.code == "FETCH_DEVICES" => devices_frame(&server, &hears),
                    Ok(_) => continue,
                    // As Go: a frame that is not JSON ends the socket.
                    Err(_) => {
                        let _ = socket
                            .send(Message::Close(Some(CloseFrame {
                                code: close_code::INVALID,
                                reason: "frames are JSON: {\"code\":\"FETCH_DEVICES\"}".into(),
                            })))
                            .await;
                        break;
                    }
                },
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => continue,
            },
            _ = ping.tick() => Message::Ping(Default::default()),
        };
        if socket.send(out).await.is_err() {
            break;
        }
    }
    debug!("/ws socket closed");
}

/// The frame of a notice.
fn notice_frame(server: &Server, hears: &Hears, notice: &Notice) -> Message {
    let id = notice.account.as_str();
    let (code, message, result) = match &notice.event {
        Event::Paired { device } => (
            "LOGIN_SUCCESS",
            format!("Successfully pair with {device}"),
            Value::Null,
        ),
        Event::LoggedOut { by: Logout::Phone } => (
            "DEVICE_LOGGED_OUT",
            "Device logged out (slot kept)".to_owned(),
            json!({ "device_id": id }),
        ),
        Event::LoggedOut { by: Logout::App } => (
            "DEVICE_LOGGED_OUT",
            format!("Device {id} logged out (slot kept)"),
            json!({ "device_id": id, "devices": short_devices(server, hears) }),
        ),
        Event::LoggedOut {
            by: Logout::Devices,
        } => (
            "DEVICE_LOGGED_OUT",
            format!("Device {id} logged out (slot kept)"),
            json!({ "device_id": id, "devices": super::devices::listed(server, |a| hears.covers(a)) }),
        ),
        Event::WebhookChanged => (
            "DEVICE_WEBHOOK_CONFIG_UPDATED",
            format!("Device {id} webhook config updated"),
            json!({ "device_id": id }),
        ),
    };
    Frame {
        code,
        message,
        result,
        device_id: id,
    }
    .text()
}

/// `LIST_DEVICES`: the accounts the socket hears, as `[{name, device, jid}]`.
fn devices_frame(server: &Server, hears: &Hears) -> Message {
    let device_id = match hears {
        Hears::One(id) => id.as_str(),
        Hears::All => "",
    };
    Frame {
        code: "LIST_DEVICES",
        message: "Device found".to_owned(),
        result: Value::Array(short_devices(server, hears)),
        device_id,
    }
    .text()
}

/// Go's short device entries: `name` (the number, as Go falls back to it), `device`
/// (the slot id) and `jid`.
fn short_devices(server: &Server, hears: &Hears) -> Vec<Value> {
    server
        .accounts
        .list()
        .iter()
        .filter(|a| hears.covers(&a.id))
        .map(|a| {
            let jid = a.jid().unwrap_or_default();
            let name = jid.split('@').next().unwrap_or_default().to_owned();
            json!({ "name": name, "device": a.id, "jid": jid })
        })
        .collect()
}
