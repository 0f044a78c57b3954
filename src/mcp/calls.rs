//! Each tool and action as a request to the REST routes, and its answer as the
//! tool's result, with Go's result texts.

use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, header, request::Parts};
use base64::Engine as _;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Map, Value, json};
use tower::ServiceExt as _;

use crate::http::scope::{KeyScope, named_device};

/// An answer of the REST routes read back: a success's message and `results`, or
/// a refusal's message.
type Answer = Result<(String, Value), String>;

/// Makes the REST requests of one tool call, as its caller.
pub struct Caller<'a> {
    api: Router,
    /// The account the call names, if any: `device_id`, else the `/mcp` request's.
    device: Option<String>,
    scope: Option<KeyScope>,
    /// The headers that make links in answers (`Host`, `X-Forwarded-*`).
    host_headers: Vec<(header::HeaderName, header::HeaderValue)>,
    statics_dir: &'a Path,
}

impl<'a> Caller<'a> {
    pub fn new(api: Router, parts: &Parts, args: &Value, statics_dir: &'a Path) -> Self {
        let device = text(args, "device_id")
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty())
            .or_else(|| named_device(parts));
        let host_headers = parts
            .headers
            .iter()
            .filter(|(name, _)| *name == header::HOST || name.as_str().starts_with("x-forwarded-"))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        Caller {
            api,
            device,
            scope: parts.extensions.get::<KeyScope>().cloned(),
            host_headers,
            statics_dir,
        }
    }

    async fn get(&self, path: &str, query: &[(&str, Option<String>)]) -> Answer {
        let query: Vec<(&str, &str)> = query
            .iter()
            .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v)))
            .collect();
        let query = serde_urlencoded::to_string(query).unwrap_or_default();
        let uri = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        self.send(Method::GET, &uri, Body::empty()).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Body::from(body.to_string()))
            .await
    }

    async fn send(&self, method: Method, uri: &str, body: Body) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json");
        for (name, value) in &self.host_headers {
            req = req.header(name, value);
        }
        if let Some(device) = &self.device {
            req = req.header(
                "x-device-id",
                utf8_percent_encode(device, NON_ALPHANUMERIC).to_string(),
            );
        }
        let mut req = req.body(body).map_err(|e| format!("bad request: {e}"))?;
        if let Some(scope) = &self.scope {
            req.extensions_mut().insert(scope.clone());
        }
        let Ok(res) = self.api.clone().oneshot(req).await;
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(|_| "the answer was too large".to_owned())?;
        let envelope: Value = serde_json::from_slice(&body).unwrap_or_default();
        let message = envelope
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("failed"))
            .to_owned();
        if status.is_success() {
            Ok((
                message,
                envelope.get("results").cloned().unwrap_or(Value::Null),
            ))
        } else {
            Err(message)
        }
    }
}

/// A REST answer read back at most (a long chat page is the largest).
const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// One path segment, encoded: ids from the caller never change the route.
fn segment(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

fn text(args: &Value, name: &str) -> Option<String> {
    args.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// A field as query text, whatever its JSON type (numbers and booleans too).
fn loose_text(args: &Value, name: &str) -> Option<String> {
    args.get(name).filter(|v| !v.is_null()).map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn flag(args: &Value, name: &str) -> Option<bool> {
    args.get(name).and_then(Value::as_bool)
}

fn number(args: &Value, name: &str) -> Option<i64> {
    args.get(name).and_then(Value::as_i64)
}

/// The named arguments that were given, as a JSON body.
fn pick(args: &Value, names: &[&str]) -> Value {
    let mut body = Map::new();
    for name in names {
        if let Some(value) = args.get(*name).filter(|v| !v.is_null()) {
            body.insert((*name).to_owned(), value.clone());
        }
    }
    Value::Object(body)
}

/// A text result.
fn said(text: String) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

/// A structured result with its text.
fn structured(value: Value, text: String) -> CallToolResult {
    let mut result = CallToolResult::structured(value);
    result.content = vec![ContentBlock::text(text)];
    result
}

/// How many items `results` holds in its `data` list (or is, if it is a list).
fn count(results: &Value) -> usize {
    results
        .get("data")
        .unwrap_or(results)
        .as_array()
        .map_or(0, Vec::len)
}

/// The tool `name` called with `args` (already checked against its schema).
pub async fn call(caller: &Caller<'_>, name: &str, args: &Value) -> Result<CallToolResult, String> {
    let action = |field| text(args, field).unwrap_or_default();
    match name {
        "whatsapp_send" => send(caller, &action("type"), args).await,
        "whatsapp_message" => message(caller, &action("action"), args).await,
        "whatsapp_chat" => chat(caller, &action("action"), args).await,
        "whatsapp_group" => group(caller, &action("action"), args).await,
        "whatsapp_app" => app(caller, &action("action"), args).await,
        "whatsapp_search_messages" => search(caller, args).await,
        "whatsapp_unread_chats" => unread(caller, args).await,
        other => Err(format!("unknown tool: {other}")),
    }
}

async fn send(caller: &Caller<'_>, kind: &str, args: &Value) -> Result<CallToolResult, String> {
    const COMMON: [&str; 2] = ["phone", "is_forwarded"];
    let with = |own: &[&str]| {
        let names: Vec<&str> = COMMON.iter().chain(own).copied().collect();
        pick(args, &names)
    };
    let (route, body) = match kind {
        "text" => (
            "/send/message",
            with(&["message", "reply_message_id", "mentions"]),
        ),
        "image" => {
            let mut body = with(&["image_url", "caption", "view_once"]);
            body["compress"] = json!(flag(args, "compress").unwrap_or(true));
            ("/send/image", body)
        }
        "video" => {
            let mut body = with(&["video_url", "caption", "view_once"]);
            body["compress"] = json!(flag(args, "compress").unwrap_or(false));
            ("/send/video", body)
        }
        "audio" => ("/send/audio", with(&["audio_url", "ptt"])),
        "document" => ("/send/file", with(&["file_url", "caption"])),
        "sticker" => ("/send/sticker", with(&["sticker_url"])),
        "location" => ("/send/location", with(&["latitude", "longitude"])),
        "contact" => ("/send/contact", with(&["contact_name", "contact_phone"])),
        "poll" => {
            let mut body = with(&["question", "options"]);
            body["max_answer"] = json!(number(args, "max_answer").unwrap_or(1));
            ("/send/poll", body)
        }
        "link" => ("/send/link", with(&["link", "caption"])),
        "forward" => {
            let id = text(args, "message_id").unwrap_or_default();
            let route = format!("/message/{}/forward", segment(&id));
            let (_, results) = caller
                .post(&route, pick(args, &["phone", "duration"]))
                .await?;
            return Ok(said(sent_text(kind, &results)));
        }
        other => return Err(format!("unknown send type: {other}")),
    };
    let (_, results) = caller.post(route, body).await?;
    Ok(said(sent_text(kind, &results)))
}

fn sent_text(kind: &str, results: &Value) -> String {
    let id = results
        .get("message_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    format!("{kind} sent successfully with ID {id}")
}

async fn message(
    caller: &Caller<'_>,
    action: &str,
    args: &Value,
) -> Result<CallToolResult, String> {
    let id = text(args, "message_id").unwrap_or_default();
    let route = |what: &str| format!("/message/{}/{what}", segment(&id));
    let phone = pick(args, &["phone"]);
    let acted = |results: &Value| {
        results
            .get("message_id")
            .and_then(Value::as_str)
            .unwrap_or(&id)
            .to_owned()
    };
    Ok(match action {
        "react" => {
            let (_, results) = caller
                .post(&route("reaction"), pick(args, &["phone", "emoji"]))
                .await?;
            let text = format!("Reaction sent (message ID: {})", acted(&results));
            structured(results, text)
        }
        "edit" => {
            let (_, results) = caller
                .post(&route("update"), pick(args, &["phone", "message"]))
                .await?;
            let text = format!("Message edited (ID: {})", acted(&results));
            structured(results, text)
        }
        "revoke" => {
            let (_, results) = caller.post(&route("revoke"), phone).await?;
            let text = format!("Message revoked (ID: {})", acted(&results));
            structured(results, text)
        }
        "delete" => {
            caller.post(&route("delete"), phone).await?;
            said(format!("Message {id} deleted"))
        }
        "mark_read" => {
            let (_, results) = caller.post(&route("read"), phone).await?;
            let text = format!("Message marked as read (ID: {})", acted(&results));
            structured(results, text)
        }
        "star" | "unstar" => {
            caller.post(&route(action), phone).await?;
            said(format!("Message {id} star={}", action == "star"))
        }
        "download_media" => {
            let (_, results) = caller
                .get(&route("download"), &[("phone", text(args, "phone"))])
                .await?;
            let field = |name| {
                results
                    .get(name)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            };
            let text = format!(
                "Media saved to {} ({})",
                field("file_path"),
                field("media_type")
            );
            structured(results, text)
        }
        other => return Err(format!("unknown message action: {other}")),
    })
}

async fn chat(caller: &Caller<'_>, action: &str, args: &Value) -> Result<CallToolResult, String> {
    let as_text = |name| loose_text(args, name);
    let jid = text(args, "chat_jid").unwrap_or_default();
    Ok(match action {
        "list_chats" => {
            let limit = number(args, "limit").unwrap_or(25);
            let offset = number(args, "offset").unwrap_or(0);
            let query = [
                ("limit", Some(limit.to_string())),
                ("offset", Some(offset.to_string())),
                ("search", as_text("search")),
                ("has_media", as_text("has_media")),
            ];
            let (_, results) = caller.get("/chats", &query).await?;
            let text = format!(
                "Retrieved {} chats (offset {offset}, limit {limit})",
                count(&results)
            );
            structured(results, text)
        }
        "list_contacts" => {
            let (_, results) = caller.get("/user/my/contacts", &[]).await?;
            let text = format!("Found {} contacts", count(&results));
            structured(results, text)
        }
        "get_messages" => {
            let limit = number(args, "limit").unwrap_or(50);
            let query = [
                ("limit", Some(limit.to_string())),
                ("offset", as_text("offset")),
                ("search", as_text("search")),
                (
                    "start_time",
                    as_text("start_time").filter(|t| !t.trim().is_empty()),
                ),
                (
                    "end_time",
                    as_text("end_time").filter(|t| !t.trim().is_empty()),
                ),
                ("media_only", as_text("media_only")),
                ("is_from_me", as_text("is_from_me")),
            ];
            let route = format!("/chat/{}/messages", segment(&jid));
            let (_, results) = caller.get(&route, &query).await?;
            let text = format!("Retrieved {} messages from {jid}", count(&results));
            structured(results, text)
        }
        "archive" => {
            let route = format!("/chat/{}/archive", segment(&jid));
            let (message, results) = caller.post(&route, pick(args, &["archived"])).await?;
            structured(results, message)
        }
        other => return Err(format!("unknown chat action: {other}")),
    })
}

/// `whatsapp_search_messages`: `GET /messages/search`.
async fn search(caller: &Caller<'_>, args: &Value) -> Result<CallToolResult, String> {
    let as_text = |name| loose_text(args, name);
    let query = [
        ("search", as_text("query")),
        ("chat_jid", as_text("chat_jid")),
        ("is_from_me", as_text("is_from_me")),
        ("start_time", as_text("start_time")),
        ("end_time", as_text("end_time")),
        ("limit", as_text("limit")),
        ("offset", as_text("offset")),
    ];
    let (_, results) = caller.get("/messages/search", &query).await?;
    let total = results["pagination"]["total"].as_u64().unwrap_or_default();
    let text = format!(
        "Found {total} messages with {:?}; showing {}",
        text(args, "query").unwrap_or_default(),
        count(&results)
    );
    Ok(structured(results, text))
}

/// `whatsapp_unread_chats`: `GET /chats?unread=true`.
async fn unread(caller: &Caller<'_>, args: &Value) -> Result<CallToolResult, String> {
    let limit = number(args, "limit").unwrap_or(25);
    let offset = number(args, "offset").unwrap_or(0);
    let query = [
        ("unread", Some("true".to_owned())),
        ("limit", Some(limit.to_string())),
        ("offset", Some(offset.to_string())),
    ];
    let (_, results) = caller.get("/chats", &query).await?;
    let unread: u64 = results["data"]
        .as_array()
        .map(|chats| {
            chats
                .iter()
                .filter_map(|c| c["unread_count"].as_u64())
                .sum()
        })
        .unwrap_or_default();
    let total = results["pagination"]["total"].as_u64().unwrap_or_default();
    let text = format!(
        "{total} chats have unread messages; {unread} unread in the {} shown",
        count(&results)
    );
    Ok(structured(results, text))
}

async fn group(caller: &Caller<'_>, action: &str, args: &Value) -> Result<CallToolResult, String> {
    let group = text(args, "group_id").unwrap_or_default().trim().to_owned();
    let participants: Vec<String> = args
        .get("participants")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(|p| p.trim().to_owned())
                .collect()
        })
        .unwrap_or_default();
    let members = json!({ "group_id": group, "participants": participants });
    let of_group = [("group_id", Some(group.clone()))];
    Ok(match action {
        "create" => {
            let title = text(args, "title").unwrap_or_default().trim().to_owned();
            let body = json!({ "title": title, "participants": participants });
            let (_, results) = caller.post("/group", body).await?;
            let id = results.get("group_id").cloned().unwrap_or(Value::Null);
            let text = format!(
                "Created group {} with {} members",
                id.as_str().unwrap_or_default(),
                participants.len()
            );
            structured(
                json!({ "group_id": id, "title": title, "members": participants.len() }),
                text,
            )
        }
        "join_with_link" => {
            let link = text(args, "invite_link")
                .unwrap_or_default()
                .trim()
                .to_owned();
            let (_, results) = caller
                .post("/group/join-with-link", json!({ "link": link }))
                .await?;
            let id = results.get("group_id").cloned().unwrap_or(Value::Null);
            let text = format!("Joined group {}", id.as_str().unwrap_or_default());
            structured(json!({ "group_id": id, "invite_link": link }), text)
        }
        "leave" => {
            caller
                .post("/group/leave", json!({ "group_id": group }))
                .await?;
            said(format!("Left group {group}"))
        }
        "info" => {
            let (_, results) = caller.get("/group/info", &of_group).await?;
            structured(
                json!({ "data": results }),
                format!("Fetched group info for {group}"),
            )
        }
        "participants" => {
            let (_, results) = caller.get("/group/participants", &of_group).await?;
            let n = results
                .get("participants")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let text = format!("Group {group} has {n} participants");
            structured(results, text)
        }
        "add_participants" | "remove_participants" | "promote" | "demote" => {
            let route = match action {
                "add_participants" => "/group/participants",
                "remove_participants" => "/group/participants/remove",
                "promote" => "/group/participants/promote",
                _ => "/group/participants/demote",
            };
            let (_, results) = caller.post(route, members).await?;
            let text = format!(
                "Applied {action} to {} participants in {group}",
                participants.len()
            );
            // Go answers a bare list here, which MCP's structured content (an
            // object) does not allow: the list is under `results`.
            structured(json!({ "results": results }), text)
        }
        "invite_link" => {
            let query = [
                ("group_id", Some(group.clone())),
                ("reset", flag(args, "reset").map(|r| r.to_string())),
            ];
            let (_, results) = caller.get("/group/invite-link", &query).await?;
            let link = results
                .get("invite_link")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let text = format!("Invite link for {group}: {link}");
            structured(json!({ "invite_link": link, "group_id": group }), text)
        }
        "set_name" => {
            let name = text(args, "name").unwrap_or_default().trim().to_owned();
            caller
                .post("/group/name", json!({ "group_id": group, "name": name }))
                .await?;
            said(format!("Updated group {group} name to {name}"))
        }
        "set_topic" => {
            let topic = text(args, "topic").unwrap_or_default().trim().to_owned();
            caller
                .post("/group/topic", json!({ "group_id": group, "topic": topic }))
                .await?;
            said(format!("Updated group {group} topic"))
        }
        "set_settings" => {
            let mut applied = Vec::new();
            for switch in ["announce", "locked"] {
                if let Some(on) = flag(args, switch) {
                    let route = format!("/group/{switch}");
                    caller
                        .post(&route, json!({ "group_id": group, switch: on }))
                        .await?;
                    applied.push(switch);
                }
            }
            if applied.is_empty() {
                return Err("set_settings requires announce and/or locked".to_owned());
            }
            said(format!("Updated {} for group {group}", applied.join("+")))
        }
        "join_requests" => {
            let (_, results) = caller.get("/group/participant-requests", &of_group).await?;
            let text = format!("Group {group} has {} pending requests", count(&results));
            structured(json!({ "requests": results }), text)
        }
        "manage_join_requests" => {
            let what = text(args, "request_action")
                .unwrap_or_default()
                .trim()
                .to_lowercase();
            let route = match what.as_str() {
                "approve" | "reject" => format!("/group/participant-requests/{what}"),
                _ => return Err(format!("invalid join request action: {what}")),
            };
            let (_, results) = caller.post(&route, members).await?;
            let text = format!(
                "Applied {what} to {} pending requests for {group}",
                participants.len()
            );
            structured(json!({ "results": results }), text)
        }
        other => return Err(format!("unknown group action: {other}")),
    })
}

async fn app(caller: &Caller<'_>, action: &str, args: &Value) -> Result<CallToolResult, String> {
    Ok(match action {
        "status" => {
            let (_, results) = caller.get("/app/status", &[]).await?;
            let field = |name| results.get(name).and_then(Value::as_bool).unwrap_or(false);
            let text = format!(
                "connected={} logged_in={}",
                field("is_connected"),
                field("is_logged_in")
            );
            structured(results, text)
        }
        "login_qr" => {
            let (_, results) = caller.get("/app/login", &[]).await?;
            login_qr(caller, account(caller).await, results)
        }
        "login_code" => {
            let phone = text(args, "phone").unwrap_or_default().trim().to_owned();
            let (_, results) = caller
                .get("/app/login-with-code", &[("phone", Some(phone.clone()))])
                .await?;
            let code = results
                .get("pair_code")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let device = account(caller).await;
            let text = format!("Pair code {code} generated for {phone}");
            structured(
                json!({ "device_id": device, "phone": phone, "pair_code": code }),
                text,
            )
        }
        "logout" => {
            let device = account(caller).await;
            caller.get("/app/logout", &[]).await?;
            said(format!("Logged out device {device} successfully"))
        }
        "reconnect" => {
            let device = account(caller).await;
            caller.get("/app/reconnect", &[]).await?;
            said(format!("Reconnect initiated for {device}"))
        }
        other => return Err(format!("unknown app action: {other}")),
    })
}

/// The account a call acts as, for result texts: as named, else the one account
/// the server has (its device id, as `/app/status` tells it).
async fn account(caller: &Caller<'_>) -> String {
    if let Some(device) = &caller.device {
        return device.clone();
    }
    match caller.get("/app/status", &[]).await {
        Ok((_, results)) => results
            .get("device_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        Err(_) => String::new(),
    }
}

/// The QR code as an image the agent can show, with where it is and how long it
/// lasts. (Go reports `expires_in: 0`, a unit mix-up; this is the real figure.)
fn login_qr(caller: &Caller<'_>, device: String, results: Value) -> CallToolResult {
    let link = results
        .get("qr_link")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let expires_in = results
        .get("qr_duration")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    // The image is the file the link names under /statics/.
    let path = link
        .split_once("/statics/")
        .map(|(_, rest)| Path::new(rest))
        .filter(|rest| {
            rest.components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
        })
        .map(|rest| caller.statics_dir.join(rest));
    let info = json!({
        "device_id": device,
        "qr_image_path": path.as_ref().map(|p| p.display().to_string()),
        "qr_link": link,
        "expires_in": expires_in,
    });
    let text = format!("Scan the QR image to log in (expires in ~{expires_in} seconds)");
    match path.map(std::fs::read) {
        Some(Ok(png)) => {
            let mut result = structured(info, text.clone());
            result.content = vec![
                ContentBlock::text(text),
                ContentBlock::image(
                    base64::engine::general_purpose::STANDARD.encode(png),
                    "image/png",
                ),
            ];
            result
        }
        _ => structured(info, format!("{text}. QR image unavailable")),
    }
}
