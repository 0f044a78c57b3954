//! `GET /chats` and the routes under `/chat/:chat_jid`: chat history from the message
//! store in the later Go versions' shapes, and pin, archive and disappearing timer.

use std::str::FromStr;

use axum::Router;
use axum::extract::{Path, RawQuery, Request};
use axum::response::Response;
use axum::routing::{get, post};
use jiff::Timestamp;
use serde_json::{Value, json};
use validator::Validate;
use whatsapp_rust::Jid;

use super::form::{FormSpec, read_body, read_query};
use super::request::{
    ArchiveChat, ChatMessagesQuery, ChatsQuery, DisappearingTimer, LabelChat, PinChat, SearchQuery,
    flag, validated,
};
use super::response::{ApiError, ok};
use super::{AppState, Server};
use crate::domain::validation::ValidationErrors;
use crate::messages::{ChatQuery, MessageQuery, StoredChat};
use crate::service::chat::{MessageWithReactions, Page};

pub fn router() -> Router<Server> {
    Router::new()
        .route("/chats", get(chats))
        .route("/chat/{chat_jid}/messages", get(messages))
        .route("/messages/search", get(search))
        .route("/chat/{chat_jid}/pin", post(pin))
        .route("/chat/{chat_jid}/archive", post(archive))
        .route("/chat/{chat_jid}/label", post(label))
        .route("/chat/{chat_jid}/disappearing", post(disappearing))
}

/// `chat_jid`: a JID, or a phone number (a group id when longer than 15 digits).
fn chat_jid(value: &str) -> Result<Jid, ApiError> {
    let invalid = || {
        ApiError::from(ValidationErrors::single(
            "chat_jid",
            "must be a valid WhatsApp JID",
        ))
    };
    let value = value.trim();
    let jid = if value.contains('@') {
        Jid::from_str(value).map_err(|_| invalid())?
    } else {
        let digits = value.trim_start_matches('+');
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return Err(invalid());
        }
        let server = if digits.len() > 15 || digits.contains('-') {
            whatsapp_rust::Server::Group
        } else {
            whatsapp_rust::Server::Pn
        };
        Jid::new(digits, server)
    };
    if jid.user.is_empty() || jid.user.len() > 64 {
        return Err(invalid());
    }
    Ok(jid)
}

fn rfc3339(secs: i64) -> String {
    Timestamp::from_second(secs)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn chat_json(c: &StoredChat) -> Value {
    json!({
        "jid": c.jid,
        "name": c.name.clone().unwrap_or_default(),
        "last_message_time": rfc3339(c.last_message_at),
        "ephemeral_expiration": c.expiration,
        "created_at": rfc3339(c.created_at),
        "updated_at": rfc3339(c.updated_at),
        "archived": c.archived,
        "pinned": c.pinned,
        "unread_count": c.unread,
        "labels": c.labels.iter().map(|l| json!({
            "id": l.id,
            "name": l.name,
            "color": l.color,
        })).collect::<Vec<_>>(),
    })
}

fn message_json(m: &MessageWithReactions, own: &[String]) -> Value {
    let message = &m.message;
    let media = message.media.clone().unwrap_or_default();
    let media_type = if message.media.is_some() {
        message.kind.as_str()
    } else {
        ""
    };
    let mut out = json!({
        "id": message.id,
        "chat_jid": message.chat,
        "sender_jid": message.sender,
        "sender_display_name": message.push_name.clone().unwrap_or_default(),
        "content": message.body.clone().unwrap_or_default(),
        "timestamp": rfc3339(message.timestamp),
        "is_from_me": message.is_from_me,
        "media_type": media_type,
        "filename": media.file_name.unwrap_or_default(),
        "url": media.url.unwrap_or_default(),
        "file_length": media.file_length.unwrap_or_default(),
        "created_at": rfc3339(message.timestamp),
        "updated_at": rfc3339(message.edited_at.or(message.revoked_at).unwrap_or(message.timestamp)),
    });
    if !m.reactions.is_empty() {
        out["reactions"] = m
            .reactions
            .iter()
            .map(|(sender, emoji, t)| {
                json!({
                    "emoji": emoji,
                    "sender_jid": sender,
                    "sender_display_name": "",
                    "is_from_me": own.contains(sender),
                    "timestamp": rfc3339(*t),
                })
            })
            .collect();
    }
    out
}

fn pagination<T>(page: &Page<T>, limit: u32, offset: u32) -> Value {
    json!({ "limit": limit, "offset": offset, "total": page.total })
}

/// `GET /chats?limit=&offset=&search=&has_media=&archived=&unread=`.
pub async fn chats(state: AppState, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let fields = [
        "limit",
        "offset",
        "search",
        "has_media",
        "archived",
        "unread",
    ];
    let req: ChatsQuery = read_query(q.as_deref(), &FormSpec::text(&state, &fields))?.parse()?;
    req.validate().map_err(ValidationErrors::from)?;
    let (limit, offset) = (req.paging.limit(25), req.paging.offset());
    let query = ChatQuery {
        limit,
        offset,
        search: req.search.clone(),
        has_media: flag(&req.has_media, false),
        archived: req
            .archived
            .as_deref()
            .and_then(crate::domain::validation::parse_bool),
        unread_only: flag(&req.unread, false),
    };
    let page = state.chats.chats(query).await?;
    let data: Vec<Value> = page.items.iter().map(chat_json).collect();
    Ok(ok(
        "Success get chat list",
        Some(json!({ "data": data, "pagination": pagination(&page, limit, offset) })),
    ))
}

/// `GET /chat/:chat_jid/messages?limit=&offset=&start_time=&end_time=&media_only=&is_from_me=&search=`.
async fn messages(
    state: AppState,
    Path(jid): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let jid = chat_jid(&jid)?;
    let fields = [
        "limit",
        "offset",
        "start_time",
        "end_time",
        "media_only",
        "is_from_me",
        "search",
    ];
    let req: ChatMessagesQuery =
        read_query(q.as_deref(), &FormSpec::text(&state, &fields))?.parse()?;
    req.validate().map_err(ValidationErrors::from)?;
    let (limit, offset) = (req.paging.limit(50), req.paging.offset());
    let query = MessageQuery {
        limit,
        offset,
        start: req.start(),
        end: req.end(),
        media_only: flag(&req.media_only, false),
        from_me: req
            .is_from_me
            .as_deref()
            .and_then(crate::domain::validation::parse_bool),
        search: req.search.clone(),
    };
    let (chat, page) = state.chats.messages(&jid.to_non_ad_string(), query).await?;
    let own: Vec<String> = state.app.own_jids().await;
    let data: Vec<Value> = page.items.iter().map(|m| message_json(m, &own)).collect();
    Ok(ok(
        "Success get chat messages",
        Some(json!({
            "data": data,
            "pagination": pagination(&page, limit, offset),
            "chat_info": chat_json(&chat),
        })),
    ))
}

/// `GET /messages/search?search=&chat_jid=&start_time=&end_time=&is_from_me=&limit=&offset=`
/// (not in Go): the stored messages with the text, across chats, newest first.
async fn search(state: AppState, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let fields = [
        "search",
        "chat_jid",
        "start_time",
        "end_time",
        "is_from_me",
        "limit",
        "offset",
    ];
    let req: SearchQuery = read_query(q.as_deref(), &FormSpec::text(&state, &fields))?.parse()?;
    req.validate().map_err(ValidationErrors::from)?;
    let chat = match req.chat_jid.as_deref().filter(|c| !c.trim().is_empty()) {
        Some(chat) => Some(chat_jid(chat)?.to_non_ad_string()),
        None => None,
    };
    let (limit, offset) = (req.paging.limit(20), req.paging.offset());
    let query = MessageQuery {
        limit,
        offset,
        start: req.start(),
        end: req.end(),
        media_only: false,
        from_me: req
            .is_from_me
            .as_deref()
            .and_then(crate::domain::validation::parse_bool),
        search: req.search.clone(),
    };
    let page = state.chats.search(chat, query).await?;
    let own: Vec<String> = state.app.own_jids().await;
    let data: Vec<Value> = page.items.iter().map(|m| message_json(m, &own)).collect();
    Ok(ok(
        "Success search messages",
        Some(json!({ "data": data, "pagination": pagination(&page, limit, offset) })),
    ))
}

async fn pin(state: AppState, Path(jid): Path<String>, req: Request) -> Result<Response, ApiError> {
    let jid = chat_jid(&jid)?;
    let req: PinChat = read_body(req, &FormSpec::text(&state, &["pinned"]))
        .await?
        .parse()?;
    req.validate().map_err(ValidationErrors::from)?;
    let pinned = flag(&req.pinned, false);
    state.chats.pin(&jid, pinned).await?;
    let message = if pinned {
        "Chat pinned successfully"
    } else {
        "Chat unpinned successfully"
    };
    Ok(ok(
        message,
        Some(
            json!({ "status": "success", "message": message, "chat_jid": jid.to_string(), "pinned": pinned }),
        ),
    ))
}

async fn archive(
    state: AppState,
    Path(jid): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let jid = chat_jid(&jid)?;
    let req: ArchiveChat = read_body(req, &FormSpec::text(&state, &["archived"]))
        .await?
        .parse()?;
    req.validate().map_err(ValidationErrors::from)?;
    let archived = flag(&req.archived, false);
    state.chats.archive(&jid, archived).await?;
    let message = if archived {
        "Chat archived successfully"
    } else {
        "Chat unarchived successfully"
    };
    Ok(ok(
        message,
        Some(
            json!({ "status": "success", "message": message, "chat_jid": jid.to_string(), "archived": archived }),
        ),
    ))
}

/// Go's `label_chat` (its SDKs'): puts a label on the chat or takes it off.
async fn label(
    state: AppState,
    Path(jid): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let jid = chat_jid(&jid)?;
    let spec = FormSpec::text(&state, &["label_id", "label_name", "labeled"]);
    let req: LabelChat = read_body(req, &spec).await?.parse()?;
    req.validate().map_err(ValidationErrors::from)?;
    let labeled = flag(&req.labeled, false);
    let (id, name) = (
        req.label_id.unwrap_or_default(),
        req.label_name.unwrap_or_default(),
    );
    state.chats.label(&jid, &id, &name, labeled).await?;
    let message = if labeled {
        format!("Chat labeled successfully with label '{name}'")
    } else {
        format!("Chat unlabeled successfully from label '{name}'")
    };
    Ok(ok(
        &message,
        Some(json!({
            "status": "success",
            "message": message,
            "chat_jid": jid.to_string(),
            "label_id": id,
            "labeled": labeled,
        })),
    ))
}

async fn disappearing(
    state: AppState,
    Path(jid): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let jid = chat_jid(&jid)?;
    let req: DisappearingTimer = read_body(req, &FormSpec::text(&state, &["timer_seconds"]))
        .await?
        .parse()?;
    req.validate().map_err(ValidationErrors::from)?;
    let seconds = validated(req.seconds())?;
    state.chats.disappearing(&jid, seconds).await?;
    let message = if seconds == 0 {
        "Disappearing messages disabled".to_owned()
    } else {
        format!("Disappearing messages set to {seconds} seconds")
    };
    Ok(ok(
        &message,
        Some(
            json!({ "status": "success", "message": message, "chat_jid": jid.to_string(), "timer_seconds": seconds }),
        ),
    ))
}
