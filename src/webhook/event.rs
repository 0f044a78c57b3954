//! Webhook events in the Go server's shape: `{"device_id", "event", "id", "payload"}`,
//! compact JSON with sorted keys (as Go's map marshalling writes them), plus an `id`
//! the Go server lacks, stable for one message however often it is delivered.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use whatsapp_rust::prelude::*;
use whatsapp_rust::wacore::types::events::Receipt;
use whatsapp_rust::wacore::types::presence::ReceiptType;
use whatsapp_rust::{Jid, Server};

use super::outbox::NewEvent;

/// An event and the JIDs it concerns (chat and sender, as PN and LID), for
/// `--webhook-ignore-jids`.
pub struct Built {
    pub event: NewEvent,
    pub jids: Vec<String>,
}

/// Builds the `message` event of an incoming text message; `None` for what this
/// server does not forward (yet): media, reactions, protocol messages, broadcasts.
pub fn message_event(device_id: &str, info: &MessageInfo, message: &wa::Message) -> Option<Built> {
    let source = &info.source;
    if matches!(source.chat.server, Server::Broadcast | Server::Newsletter) {
        return None;
    }
    let body = message.text_content()?;
    let (chat_id, chat_lid) = pn_and_lid(&source.chat, source.recipient_alt.as_ref());
    let (from, from_lid) = pn_and_lid(&source.sender, source.sender_alt.as_ref());
    let mut payload = Map::new();
    payload.insert("id".into(), json!(info.id.to_string()));
    payload.insert("chat_id".into(), json!(chat_id));
    payload.insert("from".into(), json!(from));
    let mut jids = vec![chat_id.clone(), from.clone()];
    if let Some(lid) = chat_lid {
        payload.insert("chat_lid".into(), json!(lid));
        jids.push(lid);
    }
    if let Some(lid) = from_lid {
        payload.insert("from_lid".into(), json!(lid));
        jids.push(lid);
    }
    if !info.push_name.is_empty() {
        payload.insert("from_name".into(), json!(info.push_name));
    }
    payload.insert("timestamp".into(), json!(rfc3339(&info.timestamp)));
    payload.insert("is_from_me".into(), json!(source.is_from_me));
    payload.insert("body".into(), json!(body));
    let context = message
        .get_base_message()
        .extended_text_message
        .as_option()
        .and_then(|m| m.context_info.as_option());
    if let Some(context) = context {
        if let Some(quoted) = context.stanza_id.as_deref().filter(|s| !s.is_empty()) {
            payload.insert("replied_to_id".into(), json!(quoted));
            if let Some(text) = context
                .quoted_message
                .as_option()
                .and_then(|q| q.text_content())
            {
                payload.insert("quoted_body".into(), json!(text));
            }
        }
        if context.is_forwarded == Some(true) {
            payload.insert("forwarded".into(), json!(true));
        }
    }
    let event = envelope(device_id, "message", &chat_id, &info.id, None, payload);
    Some(Built { event, jids })
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
    Some(Built { event, jids })
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
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("evt_{hex}")
}

/// The phone-number JID of `jid` (non-AD), and its LID when it was one and the
/// phone number is known.
fn pn_and_lid(jid: &Jid, alt: Option<&Jid>) -> (String, Option<String>) {
    match (jid.server, alt) {
        (Server::Lid, Some(pn)) if pn.server == Server::Pn => {
            (pn.to_non_ad_string(), Some(jid.to_non_ad_string()))
        }
        _ => (jid.to_non_ad_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_stable_and_distinct() {
        let a = event_id("message", "1@s.whatsapp.net", "3EB0A");
        assert_eq!(a, event_id("message", "1@s.whatsapp.net", "3EB0A"));
        assert_ne!(a, event_id("message", "2@s.whatsapp.net", "3EB0A"));
        assert_ne!(a, event_id("message.revoked", "1@s.whatsapp.net", "3EB0A"));
        assert_eq!(a.len(), 4 + 24);
    }

    #[test]
    fn a_lid_with_a_known_phone_number_is_reported_as_both() {
        let lid: Jid = "205550001234001@lid".parse().unwrap();
        let pn: Jid = "15550001234:3@s.whatsapp.net".parse().unwrap();
        assert_eq!(
            pn_and_lid(&lid, Some(&pn)),
            (
                "15550001234@s.whatsapp.net".to_owned(),
                Some("205550001234001@lid".to_owned())
            )
        );
        assert_eq!(
            pn_and_lid(&pn, None),
            ("15550001234@s.whatsapp.net".to_owned(), None)
        );
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
