//! The domain's [`Outgoing`] messages as whatsapp-rust's protobuf messages.

use whatsapp_rust::prelude::{MessageField, wa};

use whatsapp_rust::Jid;
use whatsapp_rust::waproto::whatsapp::message::protocol_message::Type as ProtocolType;

use crate::domain::outgoing::{MessageRef, Outgoing, Uploaded};

/// The quoted message of a reply: its id, author and content.
pub struct Quote {
    pub id: String,
    pub sender: String,
    pub message: wa::Message,
}

/// Puts the context (quote, mentions, forwarded flag, timer) on `message`; a bare
/// text becomes an extended text, which can carry it.
pub fn with_context(
    mut message: wa::Message,
    quote: Option<Quote>,
    mentions: Vec<String>,
    forwarded: bool,
    expiration: Option<u32>,
) -> wa::Message {
    use whatsapp_rust::prelude::MessageExt;
    if quote.is_none() && mentions.is_empty() && !forwarded && expiration.is_none() {
        return message;
    }
    if let Some(text) = message.conversation.take() {
        message.extended_text_message = MessageField::some(wa::message::ExtendedTextMessage {
            text: Some(text),
            ..Default::default()
        });
    }
    let mut context = wa::ContextInfo {
        mentioned_jid: mentions,
        expiration,
        ..Default::default()
    };
    if forwarded {
        context.is_forwarded = Some(true);
        context.forwarding_score = Some(1);
    }
    if let Some(quote) = quote {
        context.stanza_id = Some(quote.id);
        context.participant = Some(quote.sender);
        context.quoted_message = MessageField::from_box(quote.message.prepare_for_quote());
    }
    let slot = if let Some(m) = message.extended_text_message.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.image_message.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.video_message.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.document_message.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.contact_message.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.audio_message.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.sticker_message.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.location_message.as_option_mut() {
        &mut m.context_info
    } else {
        return message;
    };
    *slot = MessageField::some(context);
    message
}

/// A media message of type `$ty` pointing at the upload `$file`, with the
/// fields given besides.
macro_rules! media {
    ($ty:path, $file:expr, { $($field:ident: $value:expr),* $(,)? }) => {{
        let file: Uploaded = $file;
        $ty {
            url: Some(file.url),
            direct_path: Some(file.direct_path),
            media_key: Some(file.media_key),
            file_enc_sha256: Some(file.file_enc_sha256),
            file_sha256: Some(file.file_sha256),
            file_length: Some(file.file_length),
            media_key_timestamp: Some(file.media_key_timestamp),
            $($field: $value,)*
            ..Default::default()
        }
    }};
}

/// The key of `target` in `chat`: its id, whether this account sent it, and in a
/// group whose it is when not ours.
fn key_of(chat: &Jid, target: MessageRef) -> wa::MessageKey {
    wa::MessageKey {
        remote_jid: Some(chat.to_string()),
        from_me: Some(target.from_me),
        id: Some(target.id),
        participant: target
            .sender
            .filter(|_| chat.server == whatsapp_rust::Server::Group && !target.from_me),
    }
}

pub fn to_wa(message: Outgoing, chat: &Jid) -> wa::Message {
    let mut out = wa::Message::default();
    match message {
        Outgoing::Text(text) => out.conversation = Some(text),
        Outgoing::Contact { name, vcard } => {
            out.contact_message = MessageField::some(wa::message::ContactMessage {
                display_name: Some(name),
                vcard: Some(vcard),
                ..Default::default()
            });
        }
        Outgoing::Document {
            file,
            mime_type,
            file_name,
            caption,
        } => {
            out.document_message = MessageField::some(media!(wa::message::DocumentMessage, file, {
                mimetype: Some(mime_type),
                title: Some(file_name.clone()),
                file_name: Some(file_name),
                caption: caption,
            }));
        }
        Outgoing::Image {
            file,
            mime_type,
            width,
            height,
            thumbnail,
            caption,
            view_once,
        } => {
            out.image_message = MessageField::some(media!(wa::message::ImageMessage, file, {
                mimetype: Some(mime_type),
                width: Some(width),
                height: Some(height),
                jpeg_thumbnail: Some(thumbnail),
                caption: caption,
                view_once: Some(view_once),
            }));
        }
        Outgoing::Video {
            file,
            mime_type,
            thumbnail,
            caption,
            view_once,
        } => {
            out.video_message = MessageField::some(media!(wa::message::VideoMessage, file, {
                mimetype: Some(mime_type),
                jpeg_thumbnail: Some(thumbnail),
                caption: caption,
                view_once: Some(view_once),
            }));
        }
        Outgoing::Audio {
            file,
            mime_type,
            ptt,
        } => {
            out.audio_message = MessageField::some(media!(wa::message::AudioMessage, file, {
                mimetype: Some(mime_type),
                ptt: Some(ptt),
            }));
        }
        Outgoing::Sticker { file } => {
            let side = crate::media::sticker::SIDE;
            out.sticker_message = MessageField::some(media!(wa::message::StickerMessage, file, {
                mimetype: Some("image/webp".to_owned()),
                width: Some(side),
                height: Some(side),
            }));
        }
        Outgoing::Link {
            text,
            url,
            title,
            description,
            thumbnail,
        } => {
            out.extended_text_message = MessageField::some(wa::message::ExtendedTextMessage {
                text: Some(text),
                matched_text: Some(url),
                title,
                description,
                jpeg_thumbnail: thumbnail,
                ..Default::default()
            });
        }
        Outgoing::Poll {
            question,
            options,
            max_answer,
        } => {
            let poll = wa::message::PollCreationMessage {
                name: Some(question),
                options: options
                    .into_iter()
                    .map(|name| wa::message::poll_creation_message::Option {
                        option_name: Some(name),
                        option_hash: None,
                    })
                    .collect(),
                selectable_options_count: Some(max_answer),
                ..Default::default()
            };
            // As WhatsApp Web: v3 for single choice, v1 for several; the 32-byte
            // secret lets voters encrypt their votes.
            if max_answer == 1 {
                out.poll_creation_message_v3 = MessageField::some(poll);
            } else {
                out.poll_creation_message = MessageField::some(poll);
            }
            out.message_context_info = MessageField::some(wa::MessageContextInfo {
                message_secret: Some(rand::random::<[u8; 32]>().to_vec()),
                ..Default::default()
            });
        }
        Outgoing::Location {
            latitude,
            longitude,
            name,
            address,
        } => {
            out.location_message = MessageField::some(wa::message::LocationMessage {
                degrees_latitude: Some(latitude),
                degrees_longitude: Some(longitude),
                name,
                address,
                ..Default::default()
            });
        }
        Outgoing::Reaction { target, emoji } => {
            out.reaction_message = MessageField::some(wa::message::ReactionMessage {
                key: MessageField::some(key_of(chat, target)),
                text: Some(emoji),
                sender_timestamp_ms: Some(jiff::Timestamp::now().as_millisecond()),
                ..Default::default()
            });
        }
        Outgoing::Revoke { target } => {
            out.protocol_message = MessageField::some(wa::message::ProtocolMessage {
                key: MessageField::some(key_of(chat, target)),
                r#type: Some(ProtocolType::Revoke),
                ..Default::default()
            });
        }
        Outgoing::Edit { id, text } => {
            let target = MessageRef {
                id,
                from_me: true,
                sender: None,
            };
            out.protocol_message = MessageField::some(wa::message::ProtocolMessage {
                key: MessageField::some(key_of(chat, target)),
                r#type: Some(ProtocolType::MessageEdit),
                edited_message: MessageField::some(wa::Message {
                    conversation: Some(text),
                    ..Default::default()
                }),
                timestamp_ms: Some(jiff::Timestamp::now().as_millisecond()),
                ..Default::default()
            });
        }
        Outgoing::Forward { raw, edited_text } => {
            use whatsapp_rust::buffa::Message as _;
            use whatsapp_rust::wacore::proto_helpers::MessageExt as _;
            // Stored by this server from a decoded message, so it decodes.
            // Marked forwarded (a bare text becomes an extended text to carry it).
            if let Ok(mut message) = wa::Message::decode_from_slice(&raw) {
                if let Some(text) = edited_text {
                    message = wa::Message {
                        conversation: Some(text),
                        ..Default::default()
                    };
                }
                out = *message.prepare_for_forward();
            }
        }
    }
    out
}
