//! Webhook events in the Go server's shape: `{"device_id", "event", "id", "payload"}`,
//! compact JSON with sorted keys (as Go's map marshalling writes them), plus an `id`
//! the Go server lacks, stable for one message however often it is delivered.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use whatsapp_rust::Server;
use whatsapp_rust::prelude::*;
use whatsapp_rust::wacore::stanza::groups::GroupNotificationAction;
use whatsapp_rust::wacore::types::call::{CallAction, IncomingCall};
use whatsapp_rust::wacore::types::events::{
    GroupUpdate, LabelAssociationUpdate, LabelEditUpdate, Receipt,
};
use whatsapp_rust::wacore::types::presence::ReceiptType;
use whatsapp_rust::waproto::whatsapp::message::protocol_message::Type as ProtocolType;

use super::outbox::NewEvent;
use crate::whatsapp::content::pn_and_lid;
pub use crate::whatsapp::content::{IncomingMedia, media_of};

/// An event and the JIDs it concerns (chat and sender, as PN and LID), for
/// `--webhook-ignore-jids`.
pub struct Built {
    /// The event's name (`message`, `message.ack`, …).
    pub name: &'static str,
    pub event: NewEvent,
    pub jids: Vec<String>,
}

/// Whether messages in `chat` are forwarded at all (Go skips broadcasts and
/// newsletters).
pub fn forwarded_chat(info: &MessageInfo) -> bool {
    !matches!(
        info.source.chat.server,
        Server::Broadcast | Server::Newsletter
    )
}

/// The chat and sender of `info`, as PN and LID, for `--webhook-ignore-jids`.
pub fn jids_of(info: &MessageInfo) -> Vec<String> {
    let source = &info.source;
    let (chat_id, chat_lid) = pn_and_lid(&source.chat, source.recipient_alt.as_ref());
    let (from, from_lid) = pn_and_lid(&source.sender, source.sender_alt.as_ref());
    [Some(chat_id), Some(from), chat_lid, from_lid]
        .into_iter()
        .flatten()
        .collect()
}

/// The event of an incoming message, named as Go names it: `message` (text,
/// captions, media, contacts, locations), `message.reaction`, `message.revoked` or
/// `message.edited`; `None` for what Go does not forward (broadcasts, other protocol
/// messages, kinds it does not know). `saved` is where the hook stored the media
/// (`None`: not downloaded, the payload carries its URL).
pub fn message_event(
    device_id: &str,
    info: &MessageInfo,
    message: &wa::Message,
    saved: Option<&str>,
) -> Option<Built> {
    if !forwarded_chat(info) {
        return None;
    }
    let base = message.get_base_message();
    let source = &info.source;
    let (chat_id, chat_lid) = pn_and_lid(&source.chat, source.recipient_alt.as_ref());
    let (from, from_lid) = pn_and_lid(&source.sender, source.sender_alt.as_ref());
    let mut payload = Map::new();
    payload.insert("id".into(), json!(info.id.to_string()));
    payload.insert("chat_id".into(), json!(chat_id));
    payload.insert("from".into(), json!(from));
    if let Some(lid) = &chat_lid {
        payload.insert("chat_lid".into(), json!(lid));
    }
    if let Some(lid) = &from_lid {
        payload.insert("from_lid".into(), json!(lid));
    }
    if !info.push_name.is_empty() {
        payload.insert("from_name".into(), json!(info.push_name));
    }
    payload.insert("timestamp".into(), json!(rfc3339(&info.timestamp)));
    payload.insert("is_from_me".into(), json!(source.is_from_me));

    let name = if let Some(reaction) = base.reaction_message.as_option() {
        let target = reaction.key.as_option().and_then(|k| k.id.as_deref())?;
        payload.insert(
            "reaction".into(),
            json!(reaction.text.as_deref().unwrap_or("")),
        );
        payload.insert("reacted_message_id".into(), json!(target));
        "message.reaction"
    } else if let Some(protocol) = base.protocol_message.as_option() {
        let key = protocol.key.as_option()?;
        let target = key.id.as_deref()?;
        match protocol.r#type {
            Some(ProtocolType::REVOKE) => {
                payload.insert("revoked_message_id".into(), json!(target));
                payload.insert("revoked_from_me".into(), json!(key.from_me == Some(true)));
                let chat = key.remote_jid.as_deref().filter(|c| !c.is_empty());
                payload.insert("revoked_chat".into(), json!(chat.unwrap_or(&chat_id)));
                "message.revoked"
            }
            Some(ProtocolType::MESSAGE_EDIT) => {
                let edited = protocol.edited_message.as_option()?;
                let body = edited.text_content().or_else(|| edited.get_caption())?;
                payload.insert("original_message_id".into(), json!(target));
                payload.insert("body".into(), json!(body));
                "message.edited"
            }
            _ => return None,
        }
    } else {
        let context = message_content(base, saved, &mut payload)?;
        if let Some(context) = context {
            if let Some(quoted) = context.stanza_id.as_deref().filter(|s| !s.is_empty()) {
                payload.insert("replied_to_id".into(), json!(quoted));
                let quoted_body = context
                    .quoted_message
                    .as_option()
                    .and_then(|q| q.text_content().or_else(|| q.get_caption()));
                if let Some(text) = quoted_body {
                    payload.insert("quoted_body".into(), json!(text));
                }
            }
            if context.is_forwarded == Some(true) {
                payload.insert("forwarded".into(), json!(true));
            }
        }
        if message.is_view_once() {
            payload.insert("view_once".into(), json!(true));
        }
        "message"
    };
    let jids = [Some(chat_id.clone()), Some(from), chat_lid, from_lid]
        .into_iter()
        .flatten()
        .collect();
    let event = envelope(device_id, name, &chat_id, &info.id, None, payload);
    Some(Built { name, event, jids })
}

/// Fills `payload` with what a `message` carries (body, media, contact,
/// location) and returns its context info; `None` when it carries nothing Go
/// forwards.
fn message_content<'a>(
    base: &'a wa::Message,
    saved: Option<&str>,
    payload: &mut Map<String, Value>,
) -> Option<Option<&'a wa::ContextInfo>> {
    if let Some(media) = media_of(base) {
        if let Some(caption) = media.caption.filter(|c| !c.is_empty()) {
            payload.insert("body".into(), json!(caption));
        }
        payload.insert(media.kind.into(), media_value(&media, saved));
        return Some(media.context);
    }
    if let Some(text) = base.text_content() {
        payload.insert("body".into(), json!(text));
        let context = base
            .extended_text_message
            .as_option()
            .and_then(|m| m.context_info.as_option());
        return Some(context);
    }
    if let Some(contact) = base.contact_message.as_option() {
        let vcard = contact.vcard.as_deref().unwrap_or("");
        payload.insert(
            "contact".into(),
            json!({
                "displayName": contact.display_name.as_deref().unwrap_or(""),
                "vcard": vcard,
                "phone_number": vcard_phone(vcard),
            }),
        );
        return Some(contact.context_info.as_option());
    }
    if let Some(location) = base.location_message.as_option() {
        let mut value = Map::new();
        value.insert("degreesLatitude".into(), json!(location.degrees_latitude));
        value.insert("degreesLongitude".into(), json!(location.degrees_longitude));
        for (key, field) in [
            ("name", &location.name),
            ("address", &location.address),
            ("URL", &location.url),
        ] {
            if let Some(v) = field {
                value.insert(key.into(), json!(v));
            }
        }
        payload.insert("location".into(), Value::Object(value));
        return Some(location.context_info.as_option());
    }
    None
}

/// Go's shapes: a saved file is its path (`{path, caption}` with a caption); media
/// not downloaded is its URL (`{url, caption}` for images and videos, `{url,
/// filename}` for documents).
fn media_value(media: &IncomingMedia<'_>, saved: Option<&str>) -> Value {
    let caption = media.caption.filter(|c| !c.is_empty());
    match (saved, caption) {
        (Some(path), None) => json!(path),
        (Some(path), Some(caption)) => json!({ "path": path, "caption": caption }),
        (None, _) => {
            let mut value = Map::new();
            value.insert("url".into(), json!(media.url.unwrap_or("")));
            if let Some(caption) = caption {
                value.insert("caption".into(), json!(caption));
            }
            if media.kind == "document" {
                value.insert("filename".into(), json!(media.file_name.unwrap_or("")));
            }
            Value::Object(value)
        }
    }
}

/// The phone number of a vCard's first `waid=` (WhatsApp's contact cards carry
/// it), else of its first `TEL` line, digits only.
fn vcard_phone(vcard: &str) -> String {
    let waid = vcard
        .split("waid=")
        .nth(1)
        .map(|rest| rest.split([':', ';']).next().unwrap_or(""));
    let tel = || {
        vcard
            .lines()
            .find(|l| l.to_ascii_uppercase().starts_with("TEL"))
            .and_then(|l| l.rsplit(':').next())
    };
    waid.or_else(tel)
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}

/// Builds the `message.ack` event of a receipt: delivered, read or read-self, from
/// the contact's phone (device 0) only, as the Go server forwards them.
pub fn receipt_event(device_id: &str, receipt: &Receipt) -> Option<Built> {
    let (kind, description) = match receipt.r#type {
        ReceiptType::Delivered => (
            "delivered",
            "means the message was delivered to the device (but the user might not have noticed).",
        ),
        ReceiptType::Read => ("read", "the user opened the chat and saw the message."),
        ReceiptType::ReadSelf => (
            "read-self",
            "the message was read on another device of this account.",
        ),
        _ => return None,
    };
    let source = &receipt.source;
    if source.sender.device != 0 || receipt.message_ids.is_empty() {
        return None;
    }
    let (chat_id, _) = pn_and_lid(&source.chat, source.recipient_alt.as_ref());
    let (from, from_lid) = pn_and_lid(&source.sender, source.sender_alt.as_ref());
    let ids: Vec<String> = receipt
        .message_ids
        .iter()
        .map(|id| id.to_string())
        .collect();
    let mut jids = vec![chat_id.clone(), from.clone()];
    let mut payload = Map::new();
    payload.insert("ids".into(), json!(ids));
    payload.insert("chat_id".into(), json!(chat_id));
    payload.insert("from".into(), json!(from));
    if let Some(lid) = from_lid {
        payload.insert("from_lid".into(), json!(lid));
        jids.push(lid);
    }
    payload.insert("receipt_type".into(), json!(kind));
    payload.insert("receipt_type_description".into(), json!(description));
    let timestamp = rfc3339(&receipt.timestamp);
    let key = format!("{}/{kind}", ids.join(","));
    let event = envelope(
        device_id,
        "message.ack",
        &chat_id,
        &key,
        Some(timestamp),
        payload,
    );
    Some(Built {
        name: "message.ack",
        event,
        jids,
    })
}

/// The events of a group change, as Go sends them: `group.participants` per
/// membership action (`join`, `leave`, `promote`, `demote`), and `group.joined`
/// when this account (`own`: its JIDs, non-AD) was added. Other changes (name,
/// topic, settings) are not forwarded, as in Go.
pub fn group_events(device_id: &str, own: &[String], update: &GroupUpdate) -> Vec<Built> {
    let (kind, participants, reason) = match &update.action {
        GroupNotificationAction::Add {
            participants,
            reason,
        } => ("join", participants, reason.as_deref()),
        GroupNotificationAction::Remove { participants, .. } => ("leave", participants, None),
        GroupNotificationAction::Promote { participants } => ("promote", participants, None),
        GroupNotificationAction::Demote { participants } => ("demote", participants, None),
        _ => return Vec::new(),
    };
    let chat_id = update.group_jid.to_non_ad_string();
    let jids: Vec<String> = participants
        .iter()
        .map(|p| {
            p.phone_number
                .as_ref()
                .filter(|_| p.jid.server == Server::Lid)
                .unwrap_or(&p.jid)
                .to_non_ad_string()
        })
        .collect();
    let timestamp = rfc3339(&update.timestamp);
    let key = format!(
        "{}/{}/{kind}",
        update
            .notification_id
            .clone()
            .unwrap_or_else(|| update.timestamp.timestamp().to_string()),
        update.action_index
    );
    let is_own = |jid: &String| own.contains(jid);
    let (mine, others): (Vec<String>, Vec<String>) = jids.into_iter().partition(is_own);
    let mut events = Vec::new();
    if kind == "join" && !mine.is_empty() {
        let mut payload = Map::new();
        payload.insert("chat_id".into(), json!(chat_id));
        payload.insert("type".into(), json!("join"));
        payload.insert("jids".into(), json!(mine));
        if let Some(reason) = reason {
            payload.insert("reason".into(), json!(reason));
        }
        let event = envelope(
            device_id,
            "group.joined",
            &chat_id,
            &key,
            Some(timestamp.clone()),
            payload,
        );
        events.push(Built {
            name: "group.joined",
            event,
            jids: vec![chat_id.clone()],
        });
    }
    let listed = if kind == "join" {
        others
    } else {
        [mine, others].concat()
    };
    if !listed.is_empty() {
        let mut payload = Map::new();
        payload.insert("chat_id".into(), json!(chat_id));
        payload.insert("type".into(), json!(kind));
        payload.insert("jids".into(), json!(listed));
        let event = envelope(
            device_id,
            "group.participants",
            &chat_id,
            &key,
            Some(timestamp),
            payload,
        );
        events.push(Built {
            name: "group.participants",
            event,
            jids: vec![chat_id],
        });
    }
    events
}

/// The `call.offer` event of a call ringing (offers replayed from the offline
/// queue are not: they come as missed calls); `auto_rejected`: the server
/// rejected it (`--auto-reject-call`).
pub fn call_event(device_id: &str, call: &IncomingCall, auto_rejected: bool) -> Option<Built> {
    let CallAction::Offer {
        call_id,
        call_creator,
        caller_pn,
        group_jid,
        ..
    } = &call.action
    else {
        return None;
    };
    let pn = caller_pn
        .as_ref()
        .filter(|_| call_creator.server == Server::Lid);
    let (from, from_lid) = pn_and_lid(call_creator, pn);
    let mut payload = Map::new();
    payload.insert("call_id".into(), json!(call_id));
    payload.insert("from".into(), json!(from));
    if let Some(lid) = &from_lid {
        payload.insert("from_lid".into(), json!(lid));
    }
    if let Some(name) = &call.notify {
        payload.insert("sender_display_name".into(), json!(name));
    }
    payload.insert("auto_rejected".into(), json!(auto_rejected));
    if let Some(platform) = &call.platform {
        payload.insert("remote_platform".into(), json!(platform));
    }
    if let Some(version) = &call.version {
        payload.insert("remote_version".into(), json!(version));
    }
    if let Some(group) = group_jid {
        payload.insert("group_jid".into(), json!(group.to_non_ad_string()));
    }
    let mut jids = vec![from.clone()];
    jids.extend(from_lid);
    let timestamp = rfc3339(&call.timestamp);
    let event = envelope(
        device_id,
        "call.offer",
        &from,
        call_id,
        Some(timestamp),
        payload,
    );
    Some(Built {
        name: "call.offer",
        event,
        jids,
    })
}

fn rfc3339(t: &whatsapp_rust::chrono::DateTime<whatsapp_rust::chrono::Utc>) -> String {
    t.to_rfc3339_opts(whatsapp_rust::chrono::SecondsFormat::Secs, true)
}

/// The event around `payload`, its id derived from what identifies it (`key`: the
/// message id, or the receipt's ids and type). Go puts a top-level `timestamp` on
/// events other than messages.
fn envelope(
    device_id: &str,
    event: &str,
    chat: &str,
    key: &str,
    timestamp: Option<String>,
    payload: Map<String, Value>,
) -> NewEvent {
    let event_id = event_id(event, chat, key);
    let mut body = json!({
        "device_id": device_id,
        "event": event,
        "id": event_id,
        "payload": Value::Object(payload),
    });
    if let Some(t) = timestamp {
        body["timestamp"] = json!(t);
    }
    NewEvent {
        event_id,
        chat: chat.to_owned(),
        // serde_json's maps are sorted by key: the same bytes every time.
        body: body.to_string(),
    }
}

/// `evt_` + 24 hex digits of SHA-256 over the event name, chat and message id.
pub fn event_id(event: &str, chat: &str, message_id: &str) -> String {
    let digest = Sha256::digest(format!("{event}\n{chat}\n{message_id}").as_bytes());
    format!("evt_{}", hex::encode(&digest[..12]))
}

/// Go's `label.edit`: a label created, renamed, recoloured or deleted on a device
/// of the account; the fields WhatsApp sent.
pub fn label_edit_event(device_id: &str, update: &LabelEditUpdate) -> Built {
    let action = &update.action;
    let mut payload = Map::new();
    payload.insert("label_id".into(), json!(update.label_id));
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            payload.insert(key.into(), value);
        }
    };
    put("name", action.name.as_ref().map(|v| json!(v)));
    put("color", action.color.map(|v| json!(v)));
    put("predefined_id", action.predefined_id.map(|v| json!(v)));
    put("deleted", action.deleted.map(|v| json!(v)));
    put("order_index", action.order_index.map(|v| json!(v)));
    put("is_active", action.is_active.map(|v| json!(v)));
    put("type", action.r#type.map(|v| json!(format!("{v:?}"))));
    put("is_immutable", action.is_immutable.map(|v| json!(v)));
    put(
        "mute_end_time_ms",
        action.mute_end_time_ms.map(|v| json!(v)),
    );
    let timestamp = rfc3339(&update.timestamp);
    let key = format!(
        "{}@{}",
        update.label_id,
        update.timestamp.timestamp_millis()
    );
    let event = envelope(device_id, "label.edit", "", &key, Some(timestamp), payload);
    Built {
        name: "label.edit",
        event,
        jids: Vec::new(),
    }
}

/// Go's `label.association`: a label put on a chat or taken off it.
pub fn label_association_event(device_id: &str, update: &LabelAssociationUpdate) -> Built {
    let chat = update.chat_jid.to_non_ad_string();
    let mut payload = Map::new();
    payload.insert("label_id".into(), json!(update.label_id));
    payload.insert("labeled".into(), json!(update.action.labeled == Some(true)));
    payload.insert("chat_id".into(), json!(chat));
    if update.chat_jid.server == Server::Lid {
        payload.insert("chat_lid".into(), json!(chat));
    }
    let timestamp = rfc3339(&update.timestamp);
    let key = format!(
        "{}@{}",
        update.label_id,
        update.timestamp.timestamp_millis()
    );
    let event = envelope(
        device_id,
        "label.association",
        &chat,
        &key,
        Some(timestamp),
        payload,
    );
    Built {
        name: "label.association",
        event,
        jids: vec![chat],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_events_carry_what_whatsapp_sent_in_gos_fields() {
        use whatsapp_rust::waproto::whatsapp::sync_action_value as action;
        let at = whatsapp_rust::chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let edit = LabelEditUpdate::builder()
            .label_id("5".into())
            .timestamp(at)
            .action(Box::new(action::LabelEditAction {
                name: Some("Paid".into()),
                color: Some(3),
                r#type: Some(action::label_edit_action::ListType::CUSTOM),
                ..Default::default()
            }))
            .from_full_sync(false)
            .build();
        let built = label_edit_event("6281@s.whatsapp.net", &edit);
        let body: Value = serde_json::from_str(&built.event.body).unwrap();
        assert_eq!(body["event"], "label.edit");
        assert_eq!(body["timestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(
            body["payload"],
            json!({"label_id": "5", "name": "Paid", "color": 3, "type": "CUSTOM"})
        );

        let chat: whatsapp_rust::Jid = "6282@s.whatsapp.net".parse().unwrap();
        let tagged = LabelAssociationUpdate::builder()
            .label_id("5".into())
            .chat_jid(chat)
            .timestamp(at)
            .action(Box::new(action::LabelAssociationAction {
                labeled: Some(true),
                ..Default::default()
            }))
            .from_full_sync(false)
            .build();
        let built = label_association_event("6281@s.whatsapp.net", &tagged);
        assert_eq!(built.jids, ["6282@s.whatsapp.net"]);
        let body: Value = serde_json::from_str(&built.event.body).unwrap();
        assert_eq!(
            body["payload"],
            json!({"label_id": "5", "labeled": true, "chat_id": "6282@s.whatsapp.net"})
        );
    }

    #[test]
    fn event_ids_are_stable_and_distinct() {
        let a = event_id("message", "1@s.whatsapp.net", "3EB0A");
        assert_eq!(a, event_id("message", "1@s.whatsapp.net", "3EB0A"));
        assert_ne!(a, event_id("message", "2@s.whatsapp.net", "3EB0A"));
        assert_ne!(a, event_id("message.revoked", "1@s.whatsapp.net", "3EB0A"));
        assert_eq!(a.len(), 4 + 24);
    }

    #[test]
    fn the_body_is_compact_with_sorted_keys() {
        let mut payload = Map::new();
        payload.insert("z".into(), json!(1));
        payload.insert("a".into(), json!("<b>"));
        let event = envelope("1@s.whatsapp.net", "message", "c", "m", None, payload);
        assert_eq!(
            event.body,
            format!(
                r#"{{"device_id":"1@s.whatsapp.net","event":"message","id":"{}","payload":{{"a":"<b>","z":1}}}}"#,
                event.event_id
            )
        );
    }
}
