//! Uploading media and sending a message whose result is the truth: the id is chosen
//! first, its waiter registered before the stanza leaves, and one deadline bounds the
//! send and the acknowledgement together.

use std::path::Path;
use std::sync::Arc;

use jiff::Timestamp;
use whatsapp_rust::Jid;
use whatsapp_rust::download::MediaType;
use whatsapp_rust::send::SendOptions;
use whatsapp_rust::upload::UploadOptions;
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::waproto::whatsapp::message::protocol_message::Type as ProtocolType;

use super::acks::AckOutcome;
use super::outgoing::Quote;
use super::session::Inner;
use super::{Ack, Context, MediaKind, Outgoing, Uploaded, WhatsAppError};
use crate::messages::from_wa;

pub async fn upload(
    session: &Inner,
    data: Vec<u8>,
    kind: MediaKind,
) -> Result<Uploaded, WhatsAppError> {
    let client = session.ready_client()?;
    let up = client
        .upload(data, media_type(kind), UploadOptions::new())
        .await
        .map_err(|e| WhatsAppError::failed("media upload failed", e))?;
    Ok(uploaded(up))
}

/// Uploads the file at `path` without holding it in memory: encrypted in chunks
/// into a temp file beside it, then streamed from there (deleted afterwards).
pub async fn upload_file(
    session: &Inner,
    path: &Path,
    kind: MediaKind,
) -> Result<Uploaded, WhatsAppError> {
    let client = session.ready_client()?;
    let media_type = media_type(kind);
    let source = path.to_owned();
    let encrypted = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let input = std::io::BufReader::new(std::fs::File::open(&source)?);
        let dir = source.parent().unwrap_or(Path::new("."));
        let out = tempfile::Builder::new()
            .prefix("upload-encrypted-")
            .tempfile_in(dir)?;
        let writer = std::io::BufWriter::new(out.as_file().try_clone()?);
        let info =
            whatsapp_rust::wacore::upload::encrypt_media_streaming(input, writer, media_type)?;
        let len = out.as_file().metadata()?.len();
        Ok((
            EncryptedFile {
                path: out.into_temp_path(),
                len,
            },
            info,
        ))
    })
    .await
    .map_err(|e| WhatsAppError::failed("media encryption stopped", e))?;
    let (file, info) =
        encrypted.map_err(|e| WhatsAppError::failed("media encryption failed", e))?;
    let up = client
        .upload_stream(file, info, media_type)
        .await
        .map_err(|e| WhatsAppError::failed("media upload failed", e))?;
    Ok(uploaded(up))
}

/// Where the library put the upload, in the domain's terms.
fn uploaded(up: whatsapp_rust::upload::UploadResponse) -> Uploaded {
    Uploaded {
        url: up.url,
        direct_path: up.direct_path,
        media_key: up.media_key.to_vec(),
        file_enc_sha256: up.file_enc_sha256.to_vec(),
        file_sha256: up.file_sha256.to_vec(),
        file_length: up.file_length,
        media_key_timestamp: up.media_key_timestamp,
    }
}

/// Encrypted media in a temp file, read from any offset for each upload attempt.
struct EncryptedFile {
    path: tempfile::TempPath,
    len: u64,
}

impl whatsapp_rust::wacore::upload::UploadSource for EncryptedFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn reader_from(&self, offset: u64) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        use std::io::Seek;
        let mut file = std::fs::File::open(&self.path)?;
        file.seek(std::io::SeekFrom::Start(offset))?;
        Ok(Box::new(std::io::BufReader::new(file)))
    }
}

pub async fn send(
    session: &Arc<Inner>,
    to: &Jid,
    message: Outgoing,
    context: Context,
) -> Result<Ack, WhatsAppError> {
    let quote = match context.reply_to {
        Some(id) => quote(session, to, id).await,
        None => None,
    };
    let mentions = context
        .mentions
        .iter()
        .filter_map(|m| mention_jid(m))
        .collect();
    let message = super::outgoing::with_context(
        super::outgoing::to_wa(message, to),
        quote,
        mentions,
        context.forwarded,
        context.expiration,
    );
    let deadline = session.settings.ack_timeout;
    // The epoch before the connection check: a connection lost in between is seen
    // by `register`.
    let epoch = session.acks.epoch();
    let client = session.ready_client()?;
    let id = client.generate_message_id();
    let mut waiter = session
        .acks
        .register(&id, epoch)
        .ok_or(WhatsAppError::NotConnected)?;
    // An edit in a group names its author: this account.
    let mut message = message;
    if to.server == whatsapp_rust::Server::Group
        && let Some(protocol) = message.protocol_message.as_option_mut()
        && protocol.r#type == Some(ProtocolType::MessageEdit)
        && let Some(key) = protocol.key.as_option_mut()
    {
        key.participant = client.pn().map(|j| j.to_non_ad_string());
    }
    let options = SendOptions::default().with_message_id(id.clone());
    let outgoing_hook = session.settings.include_outgoing && session.webhooks().is_some();
    let stored = (session.messages().is_some() || outgoing_hook).then(|| message.clone());
    let outcome = tokio::time::timeout(deadline, async {
        client
            .send_message_with_options(to.clone(), message, options)
            .await
            .map_err(|e| WhatsAppError::failed(&format!("sending message {id} failed"), e))?;
        Ok(waiter.outcome().await)
    })
    .await;
    match outcome {
        Err(_) => Err(WhatsAppError::AckTimeout {
            id,
            after: deadline,
        }),
        Ok(Err(e)) => Err(e),
        Ok(Ok(AckOutcome::Accepted { timestamp })) => {
            let timestamp = timestamp
                .and_then(|t| Timestamp::from_second(t).ok())
                .unwrap_or_else(Timestamp::now);
            if let (true, Some(message)) = (outgoing_hook, &stored) {
                outgoing_webhook(session, &client, to, &id, timestamp, message);
            }
            if let (Some(store), Some(message)) = (session.messages(), stored) {
                let change = from_wa::sent(
                    to,
                    client.pn().as_ref(),
                    &id,
                    timestamp.as_second(),
                    &message,
                );
                // After the answer's truth is known; the send does not wait for it.
                if let Some(change) = change {
                    store.apply_in_background(change, "a sent message");
                }
            }
            Ok(Ack {
                timestamp,
                message_id: id,
            })
        }
        Ok(Ok(AckOutcome::Refused(code))) => Err(WhatsAppError::Refused { id, code }),
        Ok(Ok(AckOutcome::Interrupted(why))) => Err(WhatsAppError::DeliveryUnknown { id, why }),
    }
}

/// `--webhook-include-outgoing`: a message this account sent, as the `message`
/// event (or `message.reaction`, `.revoked`, `.edited`) its phone would see.
fn outgoing_webhook(
    session: &Inner,
    client: &whatsapp_rust::Client,
    to: &Jid,
    id: &str,
    timestamp: Timestamp,
    message: &wa::Message,
) {
    let own = client.pn().map(|j| j.to_non_ad());
    let info = whatsapp_rust::prelude::MessageInfo {
        source: whatsapp_rust::wacore::types::message::MessageSource {
            chat: to.to_non_ad(),
            sender: own.unwrap_or_default(),
            is_from_me: true,
            is_group: to.server == whatsapp_rust::Server::Group,
            ..Default::default()
        },
        id: id.to_owned(),
        timestamp: whatsapp_rust::chrono::DateTime::from_timestamp(timestamp.as_second(), 0)
            .unwrap_or_default(),
        ..Default::default()
    };
    super::events::queue_webhooks(session, client, |device, _| {
        crate::webhook::event::message_event(device, &info, message, None)
            .into_iter()
            .collect()
    });
}

/// The stored message `id` of the chat `to`, to quote; `None` (a plain send, as
/// Go does) when it is not stored.
async fn quote(session: &Inner, to: &Jid, id: String) -> Option<Quote> {
    use whatsapp_rust::buffa::Message as _;
    let store = session.messages()?.clone();
    let chat = to.to_non_ad_string();
    let lookup = id.clone();
    let stored = match store.call(move |s| s.get(&chat, &lookup)).await {
        Ok(Some(m)) if m.revoked_at.is_none() => m,
        Ok(_) => {
            tracing::debug!(%id, "reply_message_id is not a stored message of this chat; sent without a quote");
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the message store; sent without a quote");
            return None;
        }
    };
    let message = whatsapp_rust::waproto::whatsapp::Message::decode_from_slice(&stored.raw).ok()?;
    Some(Quote {
        id,
        sender: stored.sender,
        message,
    })
}

/// A mention as a JID: a phone number (`+`, spaces and dashes allowed) or a JID.
fn mention_jid(mention: &str) -> Option<String> {
    let mention = mention.trim().trim_start_matches('@');
    if mention.contains('@') {
        return mention.parse::<Jid>().ok().map(|j| j.to_non_ad_string());
    }
    crate::domain::recipient::phone_digits(mention).map(|d| format!("{d}@s.whatsapp.net"))
}

fn media_type(kind: MediaKind) -> MediaType {
    match kind {
        MediaKind::Image => MediaType::Image,
        MediaKind::Video => MediaType::Video,
        MediaKind::Document => MediaType::Document,
        MediaKind::Audio => MediaType::Audio,
        MediaKind::Sticker => MediaType::Sticker,
    }
}
