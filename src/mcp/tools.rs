//! The tools `/mcp` offers: Go v9.1+'s five, with the same names, input schemas
//! (properties, types, enums and per-action requirements) and hints, and
//! descriptions written for a model choosing between them; then two of our own
//! that only read the message store, marked read-only.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Value, json};

/// A tool as listed, and the validator of its arguments (the same schema).
pub struct Entry {
    pub tool: Tool,
    validator: jsonschema::Validator,
}

impl Entry {
    /// The first reason `args` do not fit the tool's schema, as a sentence.
    pub fn invalid(&self, args: &Value) -> Option<String> {
        let error = self.validator.iter_errors(args).next()?;
        let at = error.instance_path().to_string();
        Some(if at.is_empty() {
            error.to_string()
        } else {
            format!("{}: {error}", at.trim_start_matches('/'))
        })
    }
}

/// Every tool, in the order they are listed.
pub fn catalog() -> Vec<Entry> {
    [
        (
            "whatsapp_send",
            "Send WhatsApp Message",
            "Send a WhatsApp message to a phone number (international format, digits \
             only, e.g. 6281234567890) or a group JID (…@g.us). `type` selects the kind and \
             which fields it needs: text needs `message`; image `image_url`; video \
             `video_url`; audio `audio_url`; document `file_url`; sticker `sticker_url`; \
             location `latitude` and `longitude` (strings); contact `contact_name` and \
             `contact_phone`; poll `question` and at least two `options`; link `link` and \
             `caption`; forward `message_id` (a stored message). Media URLs are fetched by \
             the server. Returns the new message's ID once WhatsApp acknowledged it.",
            hints(false, false, false),
            send_schema(),
        ),
        (
            "whatsapp_message",
            "Message Operations",
            "Act on a message already in a chat, named by `phone` (the chat: number or \
             group JID) and `message_id`: react with `emoji` (empty removes the \
             reaction), edit with new text in `message` (own messages, about 15 minutes \
             after sending), revoke (delete for everyone), delete (for this account \
             only), mark_read, star, unstar, or download_media (saves the media and \
             returns where).",
            hints(false, true, false),
            message_schema(),
        ),
        (
            "whatsapp_chat",
            "Chat Queries",
            "Read chats and contacts from this account's message store, or archive a \
             chat. list_chats (`limit` 25 by default, `offset`, `search` by name, \
             `has_media`); list_contacts; get_messages of one `chat_jid` (`limit` 50 by \
             default, `offset`, `search` in the text, `start_time`/`end_time` as \
             RFC 3339, `media_only`, `is_from_me`); archive a `chat_jid` with `archived` \
             true or false.",
            hints(false, false, true),
            chat_schema(),
        ),
        (
            "whatsapp_group",
            "Group Management",
            "Manage WhatsApp groups. create needs `title` (and optional `participants`, \
             phone numbers); join_with_link needs `invite_link`; every other action needs \
             `group_id`: leave, info, participants, invite_link (`reset` makes a new \
             one), add_participants / remove_participants / promote / demote (with \
             `participants`), set_name (`name`), set_topic (`topic`), set_settings \
             (`announce` and/or `locked`), join_requests, manage_join_requests \
             (`participants` and `request_action` approve or reject).",
            hints(false, true, false),
            group_schema(),
        ),
        (
            "whatsapp_app",
            "Connection & Session",
            "This account's connection to WhatsApp: status (connected, logged in); \
             login_qr (a QR image to scan with the phone); login_code (a pairing code \
             for `phone`, entered on the phone instead of scanning); logout (unlinks the \
             device; a new login is needed); reconnect.",
            hints(false, true, false),
            app_schema(),
        ),
        (
            "whatsapp_search_messages",
            "Search Messages",
            "Find messages by their text in this account's message store, across all \
             chats or in one `chat_jid`, newest first: e.g. what a contact wrote about \
             an order, or yesterday's messages with `start_time`/`end_time` (RFC 3339). \
             `is_from_me` true finds only sent messages, false only received ones. \
             Each result names its chat, sender, time and text. Reads only; sends \
             nothing.",
            read_only(),
            search_schema(),
        ),
        (
            "whatsapp_unread_chats",
            "Unread Chats",
            "The chats with messages this account has not read yet (on any of its \
             devices), latest first, each with its `unread_count`, name and labels. \
             Read a chat's messages with whatsapp_chat get_messages. Reads only; marks \
             nothing as read.",
            read_only(),
            unread_schema(),
        ),
    ]
    .into_iter()
    .map(|(name, title, description, hints, schema)| {
        let validator = jsonschema::validator_for(&schema).expect("the tool schemas are valid");
        let Value::Object(schema) = schema else {
            unreachable!("a tool schema is an object")
        };
        let tool = Tool::new(name, description, Arc::new(schema as JsonObject))
            .with_title(title)
            .annotate(annotations(title, hints));
        Entry { tool, validator }
    })
    .collect()
}

/// Read-only, destructive, idempotent, open world (reaches WhatsApp).
type Hints = (bool, bool, bool, bool);

/// Go's tools: each reaches WhatsApp.
fn hints(read_only: bool, destructive: bool, idempotent: bool) -> Hints {
    (read_only, destructive, idempotent, true)
}

/// Ours: they read the message store only.
fn read_only() -> Hints {
    (true, false, true, false)
}

fn annotations(
    title: &str,
    (read_only, destructive, idempotent, open_world): Hints,
) -> ToolAnnotations {
    ToolAnnotations::with_title(title)
        .read_only(read_only)
        .destructive(destructive)
        .idempotent(idempotent)
        .open_world(open_world)
}

/// `{"if": {field: value}, "then": {"required": fields}}` for each rule.
fn when(field: &str, rules: &[(Value, &[&str])]) -> Value {
    let rules: Vec<Value> = rules
        .iter()
        .map(|(value, required)| {
            let condition = match value {
                Value::Array(_) => json!({ "enum": value }),
                _ => json!({ "const": value }),
            };
            json!({
                "if": { "properties": { field: condition } },
                "then": { "required": required },
            })
        })
        .collect();
    Value::Array(rules)
}

const DEVICE_ID: &str = "The account to act as (its device id, number or JID); \
                         overrides the X-Device-Id header";

fn send_schema() -> Value {
    json!({
        "type": "object",
        "required": ["type", "phone"],
        "properties": {
            "type": {"type": "string", "enum": ["text", "image", "video", "audio", "document", "sticker", "location", "contact", "poll", "link", "forward"], "description": "What to send; see the tool description for the fields each needs"},
            "phone": {"type": "string", "description": "Recipient: phone number in international format or a group JID"},
            "device_id": {"type": "string", "description": DEVICE_ID},
            "is_forwarded": {"type": "boolean", "description": "Show the message as forwarded (default false)"},
            "message": {"type": "string", "description": "text: the message"},
            "reply_message_id": {"type": "string", "description": "text: ID of the message this one replies to"},
            "mentions": {"type": "array", "items": {"type": "string"}, "description": "text: numbers to mention; \"@everyone\" mentions every group member"},
            "image_url": {"type": "string", "description": "image: URL of a JPEG or PNG"},
            "caption": {"type": "string", "description": "image, video, document, link: caption"},
            "view_once": {"type": "boolean", "description": "image, video: viewable once (default false)"},
            "compress": {"type": "boolean", "description": "image (default true), video (default false): re-encode smaller"},
            "video_url": {"type": "string", "description": "video: URL of the video"},
            "gif_playback": {"type": "boolean", "description": "video: accepted for compatibility; sent as a plain video"},
            "audio_url": {"type": "string", "description": "audio: URL of the audio"},
            "ptt": {"type": "boolean", "description": "audio: send as a voice note (default false)"},
            "file_url": {"type": "string", "description": "document: URL of the file"},
            "sticker_url": {"type": "string", "description": "sticker: URL of an image, made into a sticker"},
            "latitude": {"type": "string", "description": "location: latitude in degrees, as a string"},
            "longitude": {"type": "string", "description": "location: longitude in degrees, as a string"},
            "contact_name": {"type": "string", "description": "contact: the card's name"},
            "contact_phone": {"type": "string", "description": "contact: the card's phone number"},
            "question": {"type": "string", "description": "poll: the question"},
            "options": {"type": "array", "items": {"type": "string"}, "minItems": 2, "description": "poll: the answers (at least two)"},
            "max_answer": {"type": "integer", "description": "poll: how many answers one voter may pick (default 1)"},
            "link": {"type": "string", "description": "link: the URL, sent with its preview"},
            "message_id": {"type": "string", "description": "forward: ID of a stored message to forward"},
            "duration": {"type": "integer", "description": "forward: disappearing after 0, 86400, 604800 or 7776000 seconds"},
            "force_reupload": {"type": "boolean", "description": "forward: accepted for compatibility; media is forwarded by reference"}
        },
        "allOf": when("type", &[
            (json!("text"), &["message"]),
            (json!("image"), &["image_url"]),
            (json!("video"), &["video_url"]),
            (json!("audio"), &["audio_url"]),
            (json!("document"), &["file_url"]),
            (json!("sticker"), &["sticker_url"]),
            (json!("location"), &["latitude", "longitude"]),
            (json!("contact"), &["contact_name", "contact_phone"]),
            (json!("poll"), &["question", "options"]),
            (json!("link"), &["link", "caption"]),
            (json!("forward"), &["message_id"]),
        ]),
    })
}

fn message_schema() -> Value {
    json!({
        "type": "object",
        "required": ["action", "phone", "message_id"],
        "properties": {
            "action": {"type": "string", "enum": ["react", "edit", "revoke", "delete", "mark_read", "star", "unstar", "download_media"], "description": "revoke deletes for everyone; delete only for this account"},
            "phone": {"type": "string", "description": "The chat holding the message: phone number or group JID"},
            "message_id": {"type": "string", "description": "The message's ID"},
            "device_id": {"type": "string", "description": DEVICE_ID},
            "emoji": {"type": "string", "description": "react: the emoji; empty removes the reaction"},
            "message": {"type": "string", "description": "edit: the new text"}
        },
        "allOf": when("action", &[(json!("edit"), &["message"])]),
    })
}

fn chat_schema() -> Value {
    json!({
        "type": "object",
        "required": ["action"],
        "properties": {
            "action": {"type": "string", "enum": ["list_chats", "list_contacts", "get_messages", "archive"], "description": "What to read, or archive"},
            "device_id": {"type": "string", "description": DEVICE_ID},
            "chat_jid": {"type": "string", "description": "get_messages, archive: the chat (e.g. 6281234567890@s.whatsapp.net or …@g.us)"},
            "limit": {"type": "integer", "description": "list_chats (default 25), get_messages (default 50): how many"},
            "offset": {"type": "integer", "description": "list_chats, get_messages: how many to skip (default 0)"},
            "search": {"type": "string", "description": "list_chats: in chat names; get_messages: in message text"},
            "has_media": {"type": "boolean", "description": "list_chats: only chats with media"},
            "start_time": {"type": "string", "description": "get_messages: from this time (RFC 3339)"},
            "end_time": {"type": "string", "description": "get_messages: until this time (RFC 3339)"},
            "media_only": {"type": "boolean", "description": "get_messages: only media messages"},
            "is_from_me": {"type": "boolean", "description": "get_messages: only sent (true) or only received (false)"},
            "archived": {"type": "boolean", "description": "archive: true archives, false unarchives"}
        },
        "allOf": when("action", &[
            (json!("get_messages"), &["chat_jid"]),
            (json!("archive"), &["chat_jid", "archived"]),
        ]),
    })
}

fn group_schema() -> Value {
    let mut rules = when(
        "action",
        &[
            (json!("create"), &["title"]),
            (json!("join_with_link"), &["invite_link"]),
            (
                json!([
                    "leave",
                    "info",
                    "participants",
                    "invite_link",
                    "join_requests"
                ]),
                &["group_id"],
            ),
            (
                json!([
                    "add_participants",
                    "remove_participants",
                    "promote",
                    "demote"
                ]),
                &["group_id", "participants"],
            ),
            (json!("set_name"), &["group_id", "name"]),
            (json!("set_topic"), &["group_id", "topic"]),
            (json!("set_settings"), &["group_id"]),
            (
                json!("manage_join_requests"),
                &["group_id", "participants", "request_action"],
            ),
        ],
    );
    // set_settings also needs one of its two switches.
    if let Some(rule) = rules
        .as_array_mut()
        .and_then(|r| r.get_mut(6))
        .and_then(|r| r.get_mut("then"))
    {
        rule["anyOf"] = json!([{"required": ["announce"]}, {"required": ["locked"]}]);
    }
    json!({
        "type": "object",
        "required": ["action"],
        "properties": {
            "action": {"type": "string", "enum": ["create", "join_with_link", "leave", "info", "participants", "add_participants", "remove_participants", "promote", "demote", "invite_link", "set_name", "set_topic", "set_settings", "join_requests", "manage_join_requests"], "description": "The group operation"},
            "device_id": {"type": "string", "description": DEVICE_ID},
            "group_id": {"type": "string", "description": "The group's JID (…@g.us) or its number"},
            "title": {"type": "string", "description": "create: the group's name"},
            "participants": {"type": "array", "items": {"type": "string"}, "description": "Phone numbers: create (optional), add/remove/promote/demote, manage_join_requests"},
            "invite_link": {"type": "string", "description": "join_with_link: the https://chat.whatsapp.com/… link"},
            "reset": {"type": "boolean", "description": "invite_link: revoke the old link and make a new one (default false)"},
            "name": {"type": "string", "description": "set_name: the new name"},
            "topic": {"type": "string", "description": "set_topic: the new description"},
            "announce": {"type": "boolean", "description": "set_settings: true lets only admins send"},
            "locked": {"type": "boolean", "description": "set_settings: true lets only admins edit the group's info"},
            "request_action": {"type": "string", "enum": ["approve", "reject"], "description": "manage_join_requests: what to do with the listed requests"}
        },
        "allOf": rules,
    })
}

fn app_schema() -> Value {
    json!({
        "type": "object",
        "required": ["action"],
        "properties": {
            "action": {"type": "string", "enum": ["status", "login_qr", "login_code", "logout", "reconnect"], "description": "logout unlinks this device from the phone"},
            "device_id": {"type": "string", "description": DEVICE_ID},
            "phone": {"type": "string", "description": "login_code: the phone's number in international format"}
        },
        "allOf": when("action", &[(json!("login_code"), &["phone"])]),
    })
}

fn search_schema() -> Value {
    json!({
        "type": "object",
        "required": ["query"],
        "properties": {
            "query": {"type": "string", "minLength": 1, "maxLength": 200, "description": "Text the messages contain (ASCII letters in any case)"},
            "device_id": {"type": "string", "description": DEVICE_ID},
            "chat_jid": {"type": "string", "description": "Only this chat (e.g. 6281234567890@s.whatsapp.net or …@g.us)"},
            "is_from_me": {"type": "boolean", "description": "true: only sent messages; false: only received ones"},
            "start_time": {"type": "string", "description": "From this time (RFC 3339, e.g. 2026-12-06T00:00:00Z)"},
            "end_time": {"type": "string", "description": "Until this time (RFC 3339)"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 100, "description": "How many (default 20)"},
            "offset": {"type": "integer", "minimum": 0, "description": "How many to skip (default 0)"}
        }
    })
}

fn unread_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "device_id": {"type": "string", "description": DEVICE_ID},
            "limit": {"type": "integer", "minimum": 1, "maximum": 100, "description": "How many chats (default 25)"},
            "offset": {"type": "integer", "minimum": 0, "description": "How many to skip (default 0)"}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> Entry {
        catalog().into_iter().find(|e| e.tool.name == name).unwrap()
    }

    #[test]
    fn arguments_are_checked_against_the_listed_schema() {
        let send = entry("whatsapp_send");
        assert_eq!(
            send.invalid(&json!({"type": "text", "phone": "62812"})),
            Some("\"message\" is a required property".to_owned())
        );
        assert_eq!(
            send.invalid(&json!({"type": "text", "phone": "62812", "message": "hi"})),
            None
        );
        let poll = json!({"type": "poll", "phone": "1", "question": "q", "options": ["a"]});
        assert!(
            send.invalid(&poll).unwrap().starts_with("options:"),
            "{:?}",
            send.invalid(&poll)
        );
        assert!(
            send.invalid(&json!({"type": "fax", "phone": "1"}))
                .is_some()
        );
        assert!(send.invalid(&json!("text")).is_some());

        let group = entry("whatsapp_group");
        let settings = json!({"action": "set_settings", "group_id": "1@g.us"});
        assert!(group.invalid(&settings).is_some(), "a switch is needed");
        let settings = json!({"action": "set_settings", "group_id": "1@g.us", "locked": true});
        assert_eq!(group.invalid(&settings), None);
        assert!(
            group
                .invalid(&json!({"action": "promote", "group_id": "1@g.us"}))
                .is_some()
        );
    }

    #[test]
    fn the_five_tools_of_go_with_their_hints_then_ours_read_only() {
        let tools = catalog();
        let names: Vec<_> = tools.iter().map(|e| e.tool.name.to_string()).collect();
        assert_eq!(
            names,
            [
                "whatsapp_send",
                "whatsapp_message",
                "whatsapp_chat",
                "whatsapp_group",
                "whatsapp_app",
                "whatsapp_search_messages",
                "whatsapp_unread_chats",
            ]
        );
        for ours in &tools[5..] {
            let hints = ours.tool.annotations.as_ref().unwrap();
            assert_eq!(
                (
                    hints.read_only_hint,
                    hints.destructive_hint,
                    hints.open_world_hint
                ),
                (Some(true), Some(false), Some(false)),
                "{}",
                ours.tool.name
            );
        }
        assert!(
            entry("whatsapp_search_messages")
                .invalid(&json!({}))
                .is_some()
        );
        assert!(
            entry("whatsapp_search_messages")
                .invalid(&json!({"query": "x", "limit": 1000}))
                .is_some()
        );
        let chat = &tools[2].tool.annotations.as_ref().unwrap();
        assert_eq!(
            (
                chat.read_only_hint,
                chat.destructive_hint,
                chat.idempotent_hint
            ),
            (Some(false), Some(false), Some(true))
        );
    }
}
