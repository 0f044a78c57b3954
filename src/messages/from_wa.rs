//! WhatsApp's messages, receipts and our own sends as store [`Change`]s.

use whatsapp_rust::Jid;
use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::prelude::*;
use whatsapp_rust::wacore::types::events::{ContactUpdate, PushNameUpdate, Receipt};
use whatsapp_rust::wacore::types::presence::ReceiptType;
use whatsapp_rust::waproto::whatsapp::message::protocol_message::Type as ProtocolType;

use super::{Change, StoredMedia, StoredMessage};
use crate::whatsapp::content::{media_of, pn_and_lid};

/// Who sent a message, where, when.
struct Envelope<'a> {
    chat: String,
    id: &'a str,
    sender: String,
    sender_lid: Option<String>,
    push_name: Option<String>,
    timestamp: i64,
    is_from_me: bool,
}

/// An incoming message (or one sent from this account's phone).
pub fn incoming(info: &MessageInfo, message: &wa::Message) -> Option<Change> {
    let source = &info.source;
    let (chat, _) = pn_and_lid(&source.chat, source.recipient_alt.as_ref());
    let (sender, sender_lid) = pn_and_lid(&source.sender, source.sender_alt.as_ref());
    let envelope = Envelope {
        chat,
        id: &info.id,
        sender,
        sender_lid,
        push_name: Some(info.push_name.clone()).filter(|n| !n.is_empty()),
        timestamp: info.timestamp.timestamp(),
        is_from_me: source.is_from_me,
    };
    change_of(envelope, message)
}

/// A message of the history the phone sends after pairing, in the chat `chat`
/// (non-AD, as the store keys chats); `own` is this account's phone-number JID.
pub fn from_history(chat: &str, info: &wa::WebMessageInfo, own: Option<&Jid>) -> Option<Change> {
    let key = info.key.as_option()?;
    let id = key.id.as_deref()?;
    let message = info.message.as_option()?;
    let is_from_me = key.from_me.unwrap_or(false);
    let sender = if is_from_me {
        own.map(|j| j.to_non_ad_string()).unwrap_or_default()
    } else if chat.ends_with("@g.us") {
        let participant = info.participant.as_deref().or(key.participant.as_deref());
        participant
            .and_then(|p| p.parse::<Jid>().ok())
            .map(|j| j.to_non_ad_string())
            .unwrap_or_default()
    } else {
        chat.to_owned()
    };
    let envelope = Envelope {
        chat: chat.to_owned(),
        id,
        sender,
        sender_lid: None,
        push_name: info.push_name.clone().filter(|n| !n.is_empty()),
        timestamp: i64::try_from(info.message_timestamp.unwrap_or(0)).unwrap_or(0),
        is_from_me,
    };
    change_of(envelope, message)
}

/// A message this server sent to `to` and WhatsApp acknowledged.
pub fn sent(
    to: &Jid,
    own: Option<&Jid>,
    id: &str,
    timestamp: i64,
    message: &wa::Message,
) -> Option<Change> {
    let envelope = Envelope {
        chat: to.to_non_ad_string(),
        id,
        sender: own.map(|j| j.to_non_ad_string()).unwrap_or_default(),
        sender_lid: None,
        push_name: None,
        timestamp,
        is_from_me: true,
    };
    change_of(envelope, message)
}

/// A delivery, read or played receipt.
pub fn receipt(receipt: &Receipt) -> Option<Change> {
    let kind = match receipt.r#type {
        ReceiptType::Delivered => "delivered",
        ReceiptType::Read => "read",
        ReceiptType::ReadSelf => "read-self",
        ReceiptType::Played => "played",
        ReceiptType::PlayedSelf => "played-self",
        _ => return None,
    };
    let source = &receipt.source;
    let (chat, _) = pn_and_lid(&source.chat, source.recipient_alt.as_ref());
    let (sender, _) = pn_and_lid(&source.sender, source.sender_alt.as_ref());
    Some(Change::Receipt {
        chat,
        message_ids: receipt
            .message_ids
            .iter()
            .map(|id| id.to_string())
            .collect(),
        kind: kind.to_owned(),
        sender,
        timestamp: receipt.timestamp.timestamp(),
    })
}

/// A contact saved (or renamed) on the phone, synced through app state.
pub fn contact(update: &ContactUpdate) -> Option<Change> {
    let action = &update.action;
    let jid = if update.jid.is_lid() {
        action.pn_jid.clone()?
    } else {
        update.jid.to_non_ad_string()
    };
    let full_name = action
        .full_name
        .clone()
        .or_else(|| action.first_name.clone())
        .filter(|n| !n.is_empty());
    Some(Change::Contact {
        jid,
        full_name,
        push_name: None,
    })
}

/// A person's new push name.
pub fn push_name(update: &PushNameUpdate) -> Option<Change> {
    if update.jid.is_lid() || update.new_push_name.is_empty() {
        return None;
    }
    Some(Change::Contact {
        jid: update.jid.to_non_ad_string(),
        full_name: None,
        push_name: Some(update.new_push_name.clone()),
    })
}

fn change_of(e: Envelope<'_>, message: &wa::Message) -> Option<Change> {
    let base = message.get_base_message();
    if let Some(reaction) = base.reaction_message.as_option() {
        return Some(Change::Reaction {
            chat: e.chat,
            message_id: reaction.key.as_option()?.id.clone()?,
            sender: e.sender,
            emoji: reaction.text.clone().unwrap_or_default(),
            timestamp: e.timestamp,
        });
    }
    if let Some(protocol) = base.protocol_message.as_option() {
        let target = protocol.key.as_option()?.id.clone()?;
        return match protocol.r#type {
            Some(ProtocolType::REVOKE) => Some(Change::Revoke {
                chat: e.chat,
                message_id: target,
                timestamp: e.timestamp,
            }),
            Some(ProtocolType::MESSAGE_EDIT) => {
                let edited = protocol.edited_message.as_option()?;
                let body = edited.text_content().or_else(|| edited.get_caption())?;
                Some(Change::Edit {
                    chat: e.chat,
                    edit_id: e.id.to_owned(),
                    message_id: target,
                    body: body.to_owned(),
                    timestamp: e.timestamp,
                })
            }
            _ => None,
        };
    }
    let (kind, body, media, quoted) = if let Some(m) = media_of(base) {
        let media = StoredMedia {
            mimetype: m.mimetype.map(str::to_owned),
            file_name: m.file_name.map(str::to_owned),
            url: m.url.map(str::to_owned),
            direct_path: m.downloadable.direct_path().map(str::to_owned),
            media_key: m.downloadable.media_key().map(<[u8]>::to_vec),
            file_sha256: m.downloadable.file_sha256().map(<[u8]>::to_vec),
            file_enc_sha256: m.downloadable.file_enc_sha256().map(<[u8]>::to_vec),
            file_length: m.file_length,
        };
        let quoted = m.context.and_then(|c| c.stanza_id.clone());
        (m.kind, m.caption.map(str::to_owned), Some(media), quoted)
    } else if let Some(text) = base.text_content() {
        let quoted = base
            .extended_text_message
            .as_option()
            .and_then(|t| t.context_info.as_option())
            .and_then(|c| c.stanza_id.clone());
        ("text", Some(text.to_owned()), None, quoted)
    } else if let Some(contact) = base.contact_message.as_option() {
        ("contact", contact.display_name.clone(), None, None)
    } else if let Some(location) = base.location_message.as_option() {
        ("location", location.name.clone(), None, None)
    } else {
        // Key distributions, polls, protocol chatter: not chat history (yet).
        return None;
    };
    Some(Change::Message(Box::new(StoredMessage {
        chat: e.chat,
        id: e.id.to_owned(),
        sender: e.sender,
        sender_lid: e.sender_lid,
        push_name: e.push_name,
        timestamp: e.timestamp,
        is_from_me: e.is_from_me,
        kind: kind.to_owned(),
        body,
        quoted_id: quoted.filter(|q| !q.is_empty()),
        media,
        raw: message.encode_to_vec(),
        edited_at: None,
        revoked_at: None,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use whatsapp_rust::prelude::MessageField;

    fn own() -> Jid {
        "62800:7@s.whatsapp.net".parse().unwrap()
    }

    #[test]
    fn a_sent_image_keeps_its_caption_keys_and_raw_message() {
        let to: Jid = "62811@s.whatsapp.net".parse().unwrap();
        let message = wa::Message {
            image_message: MessageField::some(wa::message::ImageMessage {
                caption: Some("look".into()),
                direct_path: Some("/v/1".into()),
                media_key: Some(vec![7; 32]),
                file_length: Some(5),
                mimetype: Some("image/jpeg".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let Some(Change::Message(stored)) = sent(&to, Some(&own()), "3EB0", 1000, &message) else {
            panic!("not a message");
        };
        assert_eq!(stored.chat, "62811@s.whatsapp.net");
        assert_eq!(stored.sender, "62800@s.whatsapp.net");
        assert!(stored.is_from_me);
        assert_eq!(
            (stored.kind.as_str(), stored.body.as_deref()),
            ("image", Some("look"))
        );
        let media = stored.media.unwrap();
        assert_eq!(media.media_key, Some(vec![7; 32]));
        assert_eq!(media.direct_path.as_deref(), Some("/v/1"));
        assert_eq!(
            wa::Message::decode_from_slice(&stored.raw).unwrap(),
            message
        );
    }

    #[test]
    fn key_distributions_alone_are_not_history() {
        let to: Jid = "62811@s.whatsapp.net".parse().unwrap();
        let message = wa::Message {
            sender_key_distribution_message: MessageField::some(Default::default()),
            ..Default::default()
        };
        assert_eq!(sent(&to, None, "X", 1, &message), None);
    }
}
