//! What the simulated recipients do with a `<message>` from the client: decrypt every
//! copy addressed to them, take sender keys, decrypt group messages, fetch and decrypt
//! the media a message points to and check its hashes. Anything that does not check out
//! is an error, and the message is refused.

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};
use whatsapp_rust::wacore::download::{DownloadUtils, MediaType};
use whatsapp_rust::wacore::messages::{decode_plaintext, unwrap_device_sent};
use whatsapp_rust::wacore_binary::node::Node;
use whatsapp_rust::waproto::whatsapp as wa;

use crate::node::{attr, bytes, child};
use crate::{Keys, Received, Shared};

/// The keys of the account `jid` belongs to, and its phone number.
fn keys_for(shared: &Shared, jid: &str) -> Result<(String, Keys)> {
    shared
        .keys_of(jid)
        .with_context(|| format!("{jid} is not an account of this fake"))
}

/// Decrypts a `<message>` sent by `sender` (the client's device JID).
pub async fn receive(shared: &Shared, node: &Node, sender: &str) -> Result<Vec<Received>> {
    let id = attr(node, "id").context("a message has an id")?;
    let chat = attr(node, "to").context("a message has a recipient")?;
    let mut received = Vec::new();

    for to in child(node, "participants")
        .map(|p| p.get_children_by_tag("to").collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let jid = attr(to, "jid").context("<to> without jid")?;
        let enc = child(to, "enc").context("<to> without <enc>")?;
        let kind = attr(enc, "type").unwrap_or_default();
        let data = bytes(enc).context("<enc> without bytes")?;
        let (user, keys) = keys_for(shared, &jid)?;
        let mut keys = keys.lock().await;
        let padded = keys.decrypt(sender, &kind, data).await?;
        let message = unwrap_device_sent(decode_plaintext(&padded, 2)?);
        if let Some(skdm) = message.sender_key_distribution_message.as_option() {
            let key = skdm
                .axolotl_sender_key_distribution_message
                .as_deref()
                .context("empty sender key distribution")?;
            keys.accept_sender_key(&chat, sender, key).await?;
        }
        drop(keys);
        if has_content(&message) {
            received.push(checked(shared, &id, &chat, &user, sender, message).await?);
        }
    }

    if let Some(enc) = child(node, "enc") {
        ensure!(
            attr(enc, "type").as_deref() == Some("skmsg"),
            "a bare <enc> must be a group skmsg"
        );
        let data = bytes(enc).context("<enc> without bytes")?;
        let gid = chat.split('@').next().unwrap_or_default().to_owned();
        let members = shared
            .world()
            .groups
            .get(&gid)
            .map(|g| g.members.clone())
            .with_context(|| format!("no group {chat}"))?;
        // The sender's own phone reads it once, whether or not it is listed.
        let own = keys_for(shared, sender)?.0;
        let others = members.iter().filter(|m| **m != own);
        for user in others.chain(std::iter::once(&own)) {
            let (user, keys) = keys_for(shared, &format!("{user}@s.whatsapp.net"))?;
            let padded = keys.lock().await.group_decrypt(&chat, sender, data).await?;
            let message = unwrap_device_sent(decode_plaintext(&padded, 2)?);
            received.push(checked(shared, &id, &chat, &user, sender, message).await?);
        }
    }
    if received.is_empty() {
        bail!("message {id} carried nothing any recipient could read");
    }
    // Reactions, edits and revokes must name a message of their chat.
    crate::actions::check(shared, node, &received)?;
    Ok(received)
}

fn has_content(m: &wa::Message) -> bool {
    m.conversation.is_some()
        || m.extended_text_message.is_set()
        || m.image_message.is_set()
        || m.video_message.is_set()
        || m.document_message.is_set()
        || m.audio_message.is_set()
        || m.sticker_message.is_set()
        || m.contact_message.is_set()
        || crate::actions::is_action(m)
        || timer_is_sound(m)
        || poll_is_sound(m)
        || m.location_message.as_option().is_some_and(|l| {
            // A pin needs both coordinates, on the globe.
            l.degrees_latitude
                .is_some_and(|v| (-90.0..=90.0).contains(&v))
                && l.degrees_longitude
                    .is_some_and(|v| (-180.0..=180.0).contains(&v))
        })
}

/// A chat's disappearing timer: off, or one of the durations WhatsApp offers.
fn timer_is_sound(m: &wa::Message) -> bool {
    use whatsapp_rust::waproto::whatsapp::message::protocol_message::Type;
    m.protocol_message.as_option().is_some_and(|p| {
        p.r#type == Some(Type::EphemeralSetting)
            && p.ephemeral_expiration
                .is_some_and(|secs| [0, 86_400, 604_800, 7_776_000].contains(&secs))
    })
}

/// A poll needs a question, 2 to 12 distinct options, a choice count within them
/// and the 32-byte secret voters derive their keys from.
fn poll_is_sound(m: &wa::Message) -> bool {
    let Some(poll) = m
        .poll_creation_message
        .as_option()
        .or(m.poll_creation_message_v3.as_option())
    else {
        return false;
    };
    let names: std::collections::HashSet<_> = poll
        .options
        .iter()
        .filter_map(|o| o.option_name.as_deref())
        .filter(|n| !n.is_empty())
        .collect();
    let secret = m
        .message_context_info
        .as_option()
        .and_then(|c| c.message_secret.as_ref())
        .is_some_and(|s| s.len() == 32);
    poll.name.as_deref().is_some_and(|n| !n.is_empty())
        && (2..=12).contains(&poll.options.len())
        && names.len() == poll.options.len()
        && poll
            .selectable_options_count
            .is_some_and(|c| c >= 1 && c as usize <= names.len())
        && secret
}

/// The canvas size of a WebP image, from its header (VP8X, VP8 or VP8L).
fn webp_size(b: &[u8]) -> Option<(u32, u32)> {
    if b.len() < 30 || &b[0..4] != b"RIFF" || &b[8..12] != b"WEBP" {
        return None;
    }
    let le24 = |i: usize| u32::from(b[i]) | u32::from(b[i + 1]) << 8 | u32::from(b[i + 2]) << 16;
    match &b[12..16] {
        b"VP8X" => Some((le24(24) + 1, le24(27) + 1)),
        b"VP8 " => {
            let w = u32::from(u16::from_le_bytes([b[26], b[27]]) & 0x3fff);
            let h = u32::from(u16::from_le_bytes([b[28], b[29]]) & 0x3fff);
            Some((w, h))
        }
        b"VP8L" => {
            let bits = u32::from_le_bytes([b[21], b[22], b[23], b[24]]);
            Some(((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1))
        }
        _ => None,
    }
}

/// The media fields every media message carries.
struct MediaRef<'a> {
    kind: MediaType,
    direct_path: Option<&'a str>,
    media_key: Option<&'a [u8]>,
    file_sha256: Option<&'a [u8]>,
    file_enc_sha256: Option<&'a [u8]>,
    file_length: Option<u64>,
}

fn media_of(m: &wa::Message) -> Option<MediaRef<'_>> {
    if let Some(i) = m.image_message.as_option() {
        return Some(MediaRef {
            kind: MediaType::Image,
            direct_path: i.direct_path.as_deref(),
            media_key: i.media_key.as_deref(),
            file_sha256: i.file_sha256.as_deref(),
            file_enc_sha256: i.file_enc_sha256.as_deref(),
            file_length: i.file_length,
        });
    }
    if let Some(v) = m.video_message.as_option() {
        return Some(MediaRef {
            kind: MediaType::Video,
            direct_path: v.direct_path.as_deref(),
            media_key: v.media_key.as_deref(),
            file_sha256: v.file_sha256.as_deref(),
            file_enc_sha256: v.file_enc_sha256.as_deref(),
            file_length: v.file_length,
        });
    }
    if let Some(s) = m.sticker_message.as_option() {
        return Some(MediaRef {
            kind: MediaType::Sticker,
            direct_path: s.direct_path.as_deref(),
            media_key: s.media_key.as_deref(),
            file_sha256: s.file_sha256.as_deref(),
            file_enc_sha256: s.file_enc_sha256.as_deref(),
            file_length: s.file_length,
        });
    }
    if let Some(a) = m.audio_message.as_option() {
        return Some(MediaRef {
            kind: MediaType::Audio,
            direct_path: a.direct_path.as_deref(),
            media_key: a.media_key.as_deref(),
            file_sha256: a.file_sha256.as_deref(),
            file_enc_sha256: a.file_enc_sha256.as_deref(),
            file_length: a.file_length,
        });
    }
    if let Some(d) = m.document_message.as_option() {
        return Some(MediaRef {
            kind: MediaType::Document,
            direct_path: d.direct_path.as_deref(),
            media_key: d.media_key.as_deref(),
            file_sha256: d.file_sha256.as_deref(),
            file_enc_sha256: d.file_enc_sha256.as_deref(),
            file_length: d.file_length,
        });
    }
    None
}

/// Fetches the uploaded blob the message points to, decrypts it with the message's
/// key and checks every hash and the length.
async fn checked(
    shared: &Shared,
    id: &str,
    chat: &str,
    recipient: &str,
    sender: &str,
    message: wa::Message,
) -> Result<Received> {
    let media = match media_of(&message) {
        None => None,
        Some(m) => {
            let path = m.direct_path.context("media without direct_path")?;
            let token = path
                .rsplit('/')
                .next()
                .and_then(|t| t.split('?').next())
                .unwrap_or_default();
            let blob = shared
                .world()
                .uploads
                .get(token)
                .cloned()
                .with_context(|| format!("{path} was never uploaded"))?;
            ensure!(
                m.file_enc_sha256 == Some(&Sha256::digest(&blob)[..]),
                "file_enc_sha256 does not match the upload"
            );
            let key = m.media_key.context("media without media_key")?;
            let plain = DownloadUtils::verify_and_decrypt(&blob, key, m.kind)
                .map_err(|e| anyhow::anyhow!("the upload does not decrypt: {e:?}"))?;
            ensure!(
                m.file_sha256 == Some(&Sha256::digest(&plain)[..]),
                "file_sha256 does not match the decrypted media"
            );
            ensure!(
                m.file_length == Some(plain.len() as u64),
                "file_length does not match the decrypted media"
            );
            if message.sticker_message.is_set() {
                // WhatsApp shows stickers as 512×512 WebP.
                ensure!(
                    webp_size(&plain) == Some((512, 512)),
                    "a sticker that is not a 512x512 WebP: {:?}",
                    webp_size(&plain)
                );
            }
            if let Some(audio) = message.audio_message.as_option()
                && audio.ptt == Some(true)
            {
                // A voice note must be OGG/Opus, or phones do not play it.
                ensure!(
                    plain.starts_with(b"OggS") && plain.windows(8).any(|w| w == b"OpusHead"),
                    "a voice note that is not OGG/Opus"
                );
                ensure!(
                    audio.mimetype.as_deref() == Some("audio/ogg; codecs=opus"),
                    "a voice note's mimetype is not audio/ogg; codecs=opus"
                );
            }
            Some(plain)
        }
    };
    Ok(Received {
        id: id.to_owned(),
        chat: chat.to_owned(),
        recipient: recipient.to_owned(),
        sender: sender.to_owned(),
        message,
        media,
        ack_t: None,
    })
}
