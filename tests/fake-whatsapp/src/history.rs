//! History sync: the chats and messages a phone hands a companion it has linked.
//!
//! After pairing, a phone uploads its history as encrypted media and tells each
//! companion where it is with an end-to-end encrypted peer message from its own
//! device 0: a `protocolMessage` of type `HISTORY_SYNC_NOTIFICATION` whose
//! `historySyncNotification` carries the blob's `directPath`, `mediaKey`,
//! `fileEncSha256`, `fileSha256`, `fileLength`, `syncType`, `chunkOrder` and
//! `progress`. The blob is a `HistorySync` protobuf, zlib-compressed, then encrypted
//! as media of type history (`WhatsApp History Keys`). A large history comes in
//! several chunks, one notification each.
//!
//! What whatsapp-rust 0.7.0 asks of it (`message/receive.rs`, `history_sync.rs`):
//! the notification is honoured only when the message is from the account itself
//! (`is_from_me`: the phone's own JID), it is taken from the top-level
//! `protocolMessage` (or from inside a `deviceSentMessage`), and unless the client
//! skips history sync it answers `<receipt type="hist_sync">` for the message,
//! downloads and decrypts the blob, inflates it and dispatches
//! `Event::HistorySync`. The peer message itself is acknowledged with a
//! `peer_msg` receipt, and also reaches the client's handlers as an ordinary
//! message (a `protocolMessage` whose notification was taken out).
//!
//! The fake keeps each notice until the device acknowledges it (with `peer_msg` or
//! `hist_sync`); a device that is not connected, or has not published its prekeys
//! yet, gets it at its next login or right after its prekey upload, as from an
//! offline queue.

use std::collections::HashMap;
use std::io::Write as _;

use anyhow::{Result, ensure};
use serde::Serialize;
use tracing::{info, warn};
use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::buffa::MessageField;
use whatsapp_rust::wacore_binary::node::Node;
use whatsapp_rust::waproto::whatsapp as wa;

use crate::{Command, Device, MediaType, Shared};

pub use wa::history_sync::HistorySyncType;

/// One chat of a pushed history: a contact (`PHONE@s.whatsapp.net`) or a group
/// (`ID@g.us`), the name the phone lists it by, and its messages.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryChat {
    pub jid: String,
    pub name: Option<String>,
    /// In the order they go into the blob (WhatsApp promises none: a reader must
    /// not rely on it).
    pub messages: Vec<HistoryMessage>,
}

impl HistoryChat {
    pub fn new(jid: impl Into<String>, name: Option<&str>, messages: Vec<HistoryMessage>) -> Self {
        Self {
            jid: jid.into(),
            name: name.map(str::to_owned),
            messages,
        }
    }
}

/// One message of a chat's history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryMessage {
    pub id: String,
    /// Sent by the account (from any of its devices).
    pub from_me: bool,
    /// Who wrote it, in a group and when not from me (`PHONE@s.whatsapp.net` or
    /// `LID@lid`): the key's `participant`. `None` in a contact's chat.
    pub sender: Option<String>,
    /// Unix time, seconds.
    pub timestamp: u64,
    /// The writer's push name as the phone knew it.
    pub push_name: Option<String>,
    pub message: wa::Message,
}

impl HistoryMessage {
    pub fn new(id: impl Into<String>, from_me: bool, timestamp: u64, message: wa::Message) -> Self {
        Self {
            id: id.into(),
            from_me,
            sender: None,
            timestamp,
            push_name: None,
            message,
        }
    }

    /// A text (`conversation`) message.
    pub fn text(id: impl Into<String>, from_me: bool, timestamp: u64, text: &str) -> Self {
        Self::new(id, from_me, timestamp, crate::text_message(text))
    }

    /// Written in a group by `sender`.
    pub fn sent_by(mut self, sender: impl Into<String>) -> Self {
        self.sender = Some(sender.into());
        self
    }

    pub fn with_push_name(mut self, name: impl Into<String>) -> Self {
        self.push_name = Some(name.into());
        self
    }
}

/// How a history is pushed.
#[derive(Debug, Clone, Copy)]
pub struct HistoryOptions {
    /// `INITIAL_BOOTSTRAP` (the default) is what a phone sends right after
    /// pairing; `RECENT` and `FULL` come after it.
    pub sync_type: HistorySyncType,
    /// At most this many messages per chunk (at least 1): a longer history is split
    /// into several blobs and notifications, `chunk_order` 1, 2, … A chat whose
    /// messages straddle a chunk boundary appears in both chunks (same `id` and
    /// name), each with its share of the messages.
    pub messages_per_chunk: usize,
}

impl Default for HistoryOptions {
    fn default() -> Self {
        Self {
            sync_type: HistorySyncType::INITIAL_BOOTSTRAP,
            messages_per_chunk: usize::MAX,
        }
    }
}

/// One chunk of a pushed history: its blob on the fake's media host and what the
/// notice announcing it said.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryChunk {
    pub phone: String,
    /// The blob's path on the media host: see [`crate::FakeWhatsApp::downloads`].
    pub direct_path: String,
    pub chunk_order: u32,
    pub progress: u32,
    /// Conversation pieces and messages in the chunk.
    pub conversations: usize,
    pub messages: usize,
    /// The encoded `HistorySync` and its zlib-compressed form (`fileLength`).
    pub raw_length: u64,
    pub compressed_length: u64,
    /// The notice's message id for each device it is for, by device JID.
    pub message_ids: HashMap<String, String>,
}

/// What [`crate::FakeWhatsApp::push_history`] did.
#[derive(Debug, Clone, Serialize)]
pub struct PushedHistory {
    pub chunks: Vec<HistoryChunk>,
    /// Devices whose connection got the notices now.
    pub delivered_to: Vec<String>,
    /// Linked devices that get them at their next login or prekey upload.
    pub queued_for: Vec<String>,
}

/// A `<receipt type="hist_sync">` a companion sent: it took the chunk in (before
/// downloading it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryReceipt {
    pub device: String,
    pub message_id: String,
}

/// The fake's record of history pushes.
#[derive(Default)]
pub(crate) struct HistoryState {
    /// Notices not acknowledged yet, in order, by device JID.
    pending: HashMap<String, Vec<Notice>>,
    chunks: Vec<HistoryChunk>,
    receipts: Vec<HistoryReceipt>,
}

#[derive(Clone)]
struct Notice {
    id: String,
    message: wa::Message,
    /// The connection it was last sent on.
    sent_on: Option<u64>,
}

/// `chats` as the chunks of a history sync of `options.sync_type`, each at most
/// `options.messages_per_chunk` messages. Always at least one chunk.
pub(crate) fn build_chunks(
    chats: &[HistoryChat],
    options: HistoryOptions,
) -> Result<Vec<wa::HistorySync>> {
    ensure!(
        options.messages_per_chunk > 0,
        "a chunk holds at least one message"
    );
    for chat in chats {
        check_chat(chat)?;
    }
    let mut chunks: Vec<Vec<wa::Conversation>> = Vec::new();
    let mut current: Vec<wa::Conversation> = Vec::new();
    let mut room = options.messages_per_chunk;
    for chat in chats {
        let latest = chat.messages.iter().map(|m| m.timestamp).max();
        let mut rest = chat.messages.as_slice();
        loop {
            let (piece, later) = rest.split_at(rest.len().min(room));
            current.push(conversation(chat, piece, latest));
            room -= piece.len();
            rest = later;
            if room == 0 {
                chunks.push(std::mem::take(&mut current));
                room = options.messages_per_chunk;
            }
            if rest.is_empty() {
                break;
            }
        }
    }
    if !current.is_empty() || chunks.is_empty() {
        chunks.push(current);
    }
    let total = chunks.len();
    Ok(chunks
        .into_iter()
        .enumerate()
        .map(|(i, conversations)| wa::HistorySync {
            sync_type: options.sync_type,
            conversations,
            chunk_order: Some(i as u32 + 1),
            progress: Some(progress(i, total)),
            ..Default::default()
        })
        .collect())
}

/// Percent of the history delivered once chunk `i` (from 0) of `total` is in.
fn progress(i: usize, total: usize) -> u32 {
    ((i + 1) * 100 / total) as u32
}

fn is_group(jid: &str) -> bool {
    jid.ends_with("@g.us")
}

fn check_chat(chat: &HistoryChat) -> Result<()> {
    let jid = &chat.jid;
    let well_formed = match jid.split_once('@') {
        Some((user, "s.whatsapp.net")) => crate::is_digits(user),
        Some((id, "g.us")) => !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit() || b == b'-'),
        _ => false,
    };
    ensure!(
        well_formed,
        "a history chat is PHONE@s.whatsapp.net or ID@g.us, not {jid:?}"
    );
    let mut ids = std::collections::HashSet::new();
    for m in &chat.messages {
        ensure!(!m.id.is_empty(), "a message of {jid} without an id");
        ensure!(ids.insert(&m.id), "the id {} twice in {jid}", m.id);
        match (&m.sender, is_group(jid) && !m.from_me) {
            (None, true) => anyhow::bail!("message {} in group {jid} names no sender", m.id),
            (Some(sender), false) => anyhow::bail!(
                "message {} names a sender ({sender}), which only others' messages in a group have",
                m.id
            ),
            (Some(sender), true) => ensure!(
                sender.ends_with("@s.whatsapp.net") || sender.ends_with("@lid"),
                "message {}: the sender {sender:?} is not a user's JID",
                m.id
            ),
            (None, false) => {}
        }
    }
    Ok(())
}

fn conversation(
    chat: &HistoryChat,
    messages: &[HistoryMessage],
    latest: Option<u64>,
) -> wa::Conversation {
    wa::Conversation {
        id: chat.jid.clone(),
        name: chat.name.clone(),
        conversation_timestamp: latest,
        messages: messages
            .iter()
            .map(|m| wa::HistorySyncMsg {
                message: MessageField::some(web_message(&chat.jid, m)),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn web_message(chat: &str, m: &HistoryMessage) -> wa::WebMessageInfo {
    wa::WebMessageInfo {
        key: MessageField::some(wa::MessageKey {
            remote_jid: Some(chat.to_owned()),
            from_me: Some(m.from_me),
            id: Some(m.id.clone()),
            participant: m.sender.clone(),
        }),
        message: MessageField::some(m.message.clone()),
        message_timestamp: Some(m.timestamp),
        push_name: m.push_name.clone(),
        ..Default::default()
    }
}

/// The blob WhatsApp uploads for `sync`: the encoded protobuf, zlib-compressed.
pub(crate) fn compress(sync: &wa::HistorySync) -> Result<(Vec<u8>, usize)> {
    let raw = sync.encode_to_vec();
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&raw)?;
    Ok((encoder.finish()?, raw.len()))
}

/// The peer message that announces a hosted chunk.
fn notice(hosted: &crate::HostedMedia, sync: &wa::HistorySync) -> wa::Message {
    use wa::message::HistorySyncType as NoticeType;
    let sync_type = match sync.sync_type {
        HistorySyncType::INITIAL_BOOTSTRAP => NoticeType::INITIAL_BOOTSTRAP,
        HistorySyncType::INITIAL_STATUS_V3 => NoticeType::INITIAL_STATUS_V3,
        HistorySyncType::FULL => NoticeType::FULL,
        HistorySyncType::RECENT => NoticeType::RECENT,
        HistorySyncType::PUSH_NAME => NoticeType::PUSH_NAME,
        HistorySyncType::NON_BLOCKING_DATA => NoticeType::NON_BLOCKING_DATA,
        HistorySyncType::ON_DEMAND => NoticeType::ON_DEMAND,
    };
    let oldest = sync
        .conversations
        .iter()
        .flat_map(|c| &c.messages)
        .filter_map(|m| m.message.as_option()?.message_timestamp)
        .min();
    wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            r#type: Some(wa::message::protocol_message::Type::HISTORY_SYNC_NOTIFICATION),
            history_sync_notification: MessageField::some(wa::message::HistorySyncNotification {
                file_sha256: Some(hosted.file_sha256.clone()),
                file_length: Some(hosted.file_length),
                media_key: Some(hosted.media_key.clone()),
                file_enc_sha256: Some(hosted.file_enc_sha256.clone()),
                direct_path: Some(hosted.direct_path.clone()),
                sync_type: Some(sync_type),
                chunk_order: sync.chunk_order,
                progress: sync.progress,
                oldest_msg_in_chunk_timestamp_sec: oldest.and_then(|t| i64::try_from(t).ok()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn notice_id() -> String {
    format!("FAKEHIST{:012X}", rand::random::<u64>() >> 16)
}

/// Pushes `chats` to every linked companion of the phone `phone_user`.
pub(crate) async fn push(
    shared: &Shared,
    phone_user: &str,
    chats: &[HistoryChat],
    options: HistoryOptions,
) -> Result<PushedHistory> {
    shared.account(phone_user)?;
    let devices: Vec<Device> = {
        let world = shared.world();
        let linked = world
            .devices
            .iter()
            .filter(|d| d.phone == phone_user && !d.removed);
        linked.cloned().collect()
    };
    ensure!(!devices.is_empty(), "{phone_user} has no linked companion");
    let syncs = build_chunks(chats, options)?;

    let mut chunks = Vec::new();
    let mut notices: Vec<(String, Notice)> = Vec::new();
    for sync in &syncs {
        let (blob, raw_length) = compress(sync)?;
        let hosted = crate::host(shared, &blob, MediaType::History)?;
        let message = notice(&hosted, sync);
        let mut message_ids = HashMap::new();
        for device in &devices {
            let id = notice_id();
            message_ids.insert(device.jid.clone(), id.clone());
            let notice = Notice {
                id,
                message: message.clone(),
                sent_on: None,
            };
            notices.push((device.jid.clone(), notice));
        }
        chunks.push(HistoryChunk {
            phone: phone_user.to_owned(),
            direct_path: hosted.direct_path,
            chunk_order: sync.chunk_order.unwrap_or_default(),
            progress: sync.progress.unwrap_or_default(),
            conversations: sync.conversations.len(),
            messages: sync.conversations.iter().map(|c| c.messages.len()).sum(),
            raw_length: raw_length as u64,
            compressed_length: blob.len() as u64,
            message_ids,
        });
    }
    {
        let mut world = shared.world();
        for (device, notice) in notices {
            world
                .history
                .pending
                .entry(device)
                .or_default()
                .push(notice);
        }
        world.history.chunks.extend(chunks.iter().cloned());
    }
    info!(
        phone = %phone_user,
        chunks = chunks.len(),
        messages = chunks.iter().map(|c| c.messages).sum::<usize>(),
        "the phone pushes its history"
    );

    let mut delivered_to = Vec::new();
    let mut queued_for = Vec::new();
    for device in &devices {
        // The device's latest open connection, if it is logged in.
        let conn = {
            let world = shared.world();
            let conns = world.sessions.iter().filter(|(_, d)| **d == device.jid);
            conns.map(|(conn, _)| *conn).max()
        };
        let Some(conn) = conn else {
            queued_for.push(device.jid.clone());
            continue;
        };
        let stanzas = notices_for(shared, device, conn).await;
        if stanzas.is_empty() {
            queued_for.push(device.jid.clone());
            continue;
        }
        for node in stanzas {
            crate::ask(
                shared,
                conn,
                |reply| Command::Push {
                    node,
                    owed: None,
                    reply,
                },
                "the companion's connection is gone",
                "the connection closed before the history notice went out",
            )
            .await?;
        }
        delivered_to.push(device.jid.clone());
    }
    Ok(PushedHistory {
        chunks,
        delivered_to,
        queued_for,
    })
}

/// The history notices `device`, logged in on connection `conn`, has not
/// acknowledged and was not sent on that connection yet, as peer messages from its
/// phone. None before the device has published its prekeys.
pub(crate) async fn notices_for(shared: &Shared, device: &Device, conn: u64) -> Vec<Node> {
    let due: Vec<Notice> = {
        let mut world = shared.world();
        if !world.bundles.contains_key(&device.jid) {
            return Vec::new();
        }
        let Some(pending) = world.history.pending.get_mut(&device.jid) else {
            return Vec::new();
        };
        pending
            .iter_mut()
            .filter(|n| n.sent_on != Some(conn))
            .map(|n| {
                n.sent_on = Some(conn);
                n.clone()
            })
            .collect()
    };
    let mut stanzas = Vec::new();
    for notice in due {
        match crate::app_state::peer_stanza(shared, device, &notice.message, &notice.id).await {
            Ok(node) => {
                info!(device = %device.jid, id = %notice.id, "the phone announces a history chunk");
                stanzas.push(node);
            }
            Err(e) => {
                let problem = format!("announcing history to {}: {e:#}", device.jid);
                warn!("{problem}");
                let mut world = shared.world();
                if let Some(n) = world
                    .history
                    .pending
                    .get_mut(&device.jid)
                    .and_then(|p| p.iter_mut().find(|n| n.id == notice.id))
                {
                    n.sent_on = None;
                }
                world.problems.push(problem);
            }
        }
    }
    stanzas
}

/// The companion `device` acknowledged the messages `ids` (`peer_msg`, or
/// `hist_sync` when `took` is set): its notices among them are settled.
pub(crate) fn acknowledged(shared: &Shared, device: &str, ids: &[String], took: bool) {
    let mut world = shared.world();
    if let Some(pending) = world.history.pending.get_mut(device) {
        pending.retain(|n| !ids.contains(&n.id));
    }
    if took {
        let known: Vec<String> = world
            .history
            .chunks
            .iter()
            .filter_map(|c| c.message_ids.get(device))
            .filter(|id| ids.contains(id))
            .cloned()
            .collect();
        for id in ids {
            if !known.contains(id) {
                let problem = format!(
                    "a hist_sync receipt from {device} for {id}, which announced no history"
                );
                warn!("{problem}");
                world.problems.push(problem);
                continue;
            }
            world.history.receipts.push(HistoryReceipt {
                device: device.to_owned(),
                message_id: id.clone(),
            });
        }
    }
}

pub(crate) fn receipts(shared: &Shared) -> Vec<HistoryReceipt> {
    shared.world().history.receipts.clone()
}

pub(crate) fn chunks(shared: &Shared) -> Vec<HistoryChunk> {
    shared.world().history.chunks.clone()
}

/// How many history notices are waiting for a device to acknowledge them.
pub(crate) fn unacknowledged(shared: &Shared) -> usize {
    shared.world().history.pending.values().map(Vec::len).sum()
}

/// A big history for benchmarks: `chats` chats of `messages` text messages each,
/// the same for the same arguments. Chat `c` (from 0) is the contact
/// `6285{c:08}@s.whatsapp.net` named `Contact c`, except that every fourth one
/// (`c % 4 == 3`) is the group `120363{c:012}@g.us` named `Group c`, where the
/// messages not from me are by the member `6286{c:04}{m % 3:04}@s.whatsapp.net`. Message
/// `m` (from 0) of chat `c` has the id `HIST{c:06}M{m:07}`, the text
/// `history c/m: lorem …` (about 60 bytes), is from me when `m % 3 == 0`, and was
/// sent at `start + c + 60 × m`, oldest first.
pub fn generated_history(chats: usize, messages: usize, start: u64) -> Vec<HistoryChat> {
    (0..chats)
        .map(|c| {
            let group = c % 4 == 3;
            let (jid, name) = if group {
                (format!("120363{c:012}@g.us"), format!("Group {c}"))
            } else {
                (format!("6285{c:08}@s.whatsapp.net"), format!("Contact {c}"))
            };
            let messages = (0..messages)
                .map(|m| {
                    let text = format!("history {c}/{m}: lorem ipsum dolor sit amet, consectetur");
                    let from_me = m % 3 == 0;
                    let at = start + c as u64 + 60 * m as u64;
                    let message =
                        HistoryMessage::text(format!("HIST{c:06}M{m:07}"), from_me, at, &text);
                    if group && !from_me {
                        message.sent_by(format!("6286{c:04}{:04}@s.whatsapp.net", m % 3))
                    } else {
                        message
                    }
                })
                .collect();
            HistoryChat::new(jid, Some(&name), messages)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sync: &wa::HistorySync) -> Vec<(String, String, bool, u64, Option<String>)> {
        sync.conversations
            .iter()
            .flat_map(|c| {
                c.messages.iter().map(move |m| {
                    let info = m.message.as_option().unwrap();
                    let key = info.key.as_option().unwrap();
                    (
                        c.id.clone(),
                        info.message
                            .as_option()
                            .unwrap()
                            .conversation
                            .clone()
                            .unwrap(),
                        key.from_me.unwrap(),
                        info.message_timestamp.unwrap(),
                        key.participant.clone(),
                    )
                })
            })
            .collect()
    }

    #[test]
    fn a_history_splits_into_chunks_of_at_most_the_asked_size_in_order() {
        let chats = generated_history(3, 5, 1_700_000_000);
        let whole = build_chunks(&chats, HistoryOptions::default()).unwrap();
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].conversations.len(), 3);
        assert_eq!(
            (whole[0].chunk_order, whole[0].progress),
            (Some(1), Some(100))
        );

        let options = HistoryOptions {
            messages_per_chunk: 4,
            ..HistoryOptions::default()
        };
        let split = build_chunks(&chats, options).unwrap();
        // 15 messages in chunks of 4: 4, 4, 4, 3.
        let sizes: Vec<usize> = split
            .iter()
            .map(|s| s.conversations.iter().map(|c| c.messages.len()).sum())
            .collect();
        assert_eq!(sizes, [4, 4, 4, 3]);
        let orders: Vec<_> = split.iter().map(|s| s.chunk_order.unwrap()).collect();
        assert_eq!(orders, [1, 2, 3, 4]);
        let progress: Vec<_> = split.iter().map(|s| s.progress.unwrap()).collect();
        assert_eq!(progress, [25, 50, 75, 100]);
        // Chat 0 (5 messages) straddles chunks 1 and 2 under the same id.
        assert_eq!(split[1].conversations[0].id, split[0].conversations[0].id);
        assert_eq!(split[1].conversations[0].name.as_deref(), Some("Contact 0"));
        // Nothing lost, nothing reordered.
        let joined: Vec<_> = split.iter().flat_map(texts).collect();
        assert_eq!(joined, texts(&whole[0]));
        assert!(
            split
                .iter()
                .all(|s| s.sync_type == HistorySyncType::INITIAL_BOOTSTRAP)
        );
    }

    #[test]
    fn the_generated_history_is_deterministic_and_well_formed() {
        let chats = generated_history(8, 10, 1_000);
        assert_eq!(chats, generated_history(8, 10, 1_000));
        assert_eq!(chats[0].jid, "628500000000@s.whatsapp.net");
        assert_eq!(chats[3].jid, "120363000000000003@g.us");
        let m = &chats[3].messages[4];
        assert_eq!(m.id, "HIST000003M0000004");
        assert_eq!(m.sender.as_deref(), Some("628600030001@s.whatsapp.net"));
        assert_eq!(m.timestamp, 1_000 + 3 + 240);
        assert!(chats.iter().all(|c| check_chat(c).is_ok()));
        let sync = &build_chunks(&chats, HistoryOptions::default()).unwrap()[0];
        let (blob, raw) = compress(sync).unwrap();
        assert!(blob.len() < raw, "text history compresses");
    }

    #[test]
    fn malformed_histories_are_refused() {
        let refused = |chat: HistoryChat| {
            build_chunks(&[chat], HistoryOptions::default())
                .unwrap_err()
                .to_string()
        };
        let text = |id: &str, from_me| HistoryMessage::text(id, from_me, 1, "x");
        let e = refused(HistoryChat::new("12345@g.us", None, vec![text("A", false)]));
        assert!(e.contains("names no sender"), "{e}");
        let e = refused(HistoryChat::new(
            "6281@s.whatsapp.net",
            None,
            vec![text("A", false).sent_by("6282@s.whatsapp.net")],
        ));
        assert!(e.contains("only others' messages in a group"), "{e}");
        let e = refused(HistoryChat::new(
            "6281@s.whatsapp.net",
            None,
            vec![text("A", true), text("A", false)],
        ));
        assert!(e.contains("twice"), "{e}");
        let e = refused(HistoryChat::new("6281:2@s.whatsapp.net", None, vec![]));
        assert!(e.contains("not \"6281:2@s.whatsapp.net\""), "{e}");
        let e = build_chunks(
            &[],
            HistoryOptions {
                messages_per_chunk: 0,
                ..HistoryOptions::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("at least one"), "{e}");
    }

    /// The blob reads back with whatsapp-rust's own reader, the way the client
    /// takes it in before `Event::HistorySync`.
    #[test]
    fn the_blob_reads_back_with_the_clients_history_reader() {
        let chats = generated_history(5, 3, 1_700_000_000);
        let sync = &build_chunks(&chats, HistoryOptions::default()).unwrap()[0];
        let (blob, raw) = compress(sync).unwrap();
        let result =
            whatsapp_rust::wacore::history_sync::process_history_sync(blob, None, true).unwrap();
        assert_eq!(result.conversations_processed, 5);
        assert_eq!(result.decompressed_size, raw);
        let lazy = whatsapp_rust::wacore::types::events::LazyHistorySync::new(
            result.compressed_bytes.unwrap(),
            result.decompressed_size,
            0,
            Some(1),
            Some(100),
        );
        let back = lazy.get().expect("the client decodes the blob");
        assert_eq!(texts(back), texts(sync));
    }
}
