//! The chat history a phone sends its new companion after pairing (WhatsApp's
//! history sync), recorded in the message store as the later Go versions record
//! it in their chat storage: messages, chat names, archived and pinned chats.
//!
//! A history arrives in chunks of a few megabytes (compressed), each with
//! thousands of messages; a hundred accounts paired at once all get theirs. So a
//! chunk is read a conversation at a time, never decoded whole, written in
//! transactions of at most [`BATCH`] changes, and at most [`AT_ONCE`] chunks are
//! imported at the same time in the whole server.

use whatsapp_rust::Jid;
use whatsapp_rust::wacore::types::events::LazyHistorySync;

use super::{Change, ChatSetting, MessageStore, from_wa};

/// Changes written in one transaction.
pub const BATCH: usize = 500;

/// Chunks imported at the same time, across all accounts.
pub const AT_ONCE: usize = 2;

static IMPORTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(AT_ONCE);

/// What one chunk held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Imported {
    pub chats: usize,
    pub messages: usize,
}

/// Records the chunk `history` in `store`, in the background (see the module).
pub fn import_in_background(
    store: std::sync::Arc<MessageStore>,
    history: LazyHistorySync,
    own: Option<Jid>,
    span: tracing::Span,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let Ok(_turn) = IMPORTS.acquire().await else {
            return;
        };
        let (sync_type, chunk) = (history.sync_type(), history.chunk_order());
        let done =
            tokio::task::spawn_blocking(move || import(&store, &history, own.as_ref())).await;
        let _account = span.entered();
        match done {
            Ok(Ok(imported)) => tracing::info!(
                chats = imported.chats,
                messages = imported.messages,
                sync_type,
                chunk,
                "chat history from the phone recorded"
            ),
            Ok(Err(e)) => tracing::warn!(error = %e, sync_type, chunk, "chat history not recorded"),
            Err(e) => tracing::warn!(error = %e, "chat history import stopped"),
        }
    });
}

/// Records the chunk `history` in `store`, conversation by conversation.
pub fn import(
    store: &MessageStore,
    history: &LazyHistorySync,
    own: Option<&Jid>,
) -> anyhow::Result<Imported> {
    let mut stream = history.stream();
    let mut imported = Imported::default();
    let mut batch = Vec::with_capacity(BATCH);
    let now = jiff::Timestamp::now().as_second();
    while let Some(conversation) = stream
        .next_conversation()
        .map_err(|e| anyhow::anyhow!("unreadable history: {e}"))?
    {
        let Some(chat) = chat_of(&conversation) else {
            continue;
        };
        imported.chats += 1;
        for entry in &conversation.messages {
            let Some(info) = entry.message.as_option() else {
                continue;
            };
            if let Some(change) = from_wa::from_history(&chat, info, own) {
                imported.messages += usize::from(matches!(change, Change::Message(_)));
                batch.push(change);
            }
            if batch.len() >= BATCH {
                store.apply(&batch, now)?;
                batch.clear();
            }
        }
        // After the messages, which give the chat its latest time.
        batch.extend(settings_of(&conversation, &chat));
    }
    if !batch.is_empty() {
        store.apply(&batch, now)?;
    }
    // The import filled the store's page cache; nothing needs it now.
    store.shrink_memory()?;
    Ok(imported)
}

/// The conversation's name, archived, pinned and disappearing settings, and how
/// many of its messages are unread.
fn settings_of(
    conversation: &whatsapp_rust::waproto::whatsapp::Conversation,
    chat: &str,
) -> Vec<Change> {
    let mut changes = Vec::new();
    let name = conversation
        .name
        .clone()
        .or_else(|| conversation.display_name.clone())
        .filter(|n| !n.trim().is_empty());
    if let Some(name) = name {
        if !chat.ends_with("@g.us") {
            changes.push(Change::Contact {
                jid: chat.to_owned(),
                full_name: Some(name.clone()),
                push_name: None,
            });
        }
        changes.push(Change::ChatName {
            jid: chat.to_owned(),
            name,
        });
    }
    let mut setting = |setting| {
        changes.push(Change::Chat {
            jid: chat.to_owned(),
            setting,
        })
    };
    if conversation.archived == Some(true) {
        setting(ChatSetting::Archived(true));
    }
    if conversation.pinned.is_some_and(|p| p > 0) {
        setting(ChatSetting::Pinned(true));
    }
    if let Some(seconds) = conversation.ephemeral_expiration.filter(|s| *s > 0) {
        setting(ChatSetting::Expiration(seconds));
    }
    // What the phone has not read, when it says; a chat marked unread without a
    // count shows one.
    let unread = match (conversation.unread_count, conversation.marked_as_unread) {
        (Some(n), _) if n > 0 => Some(n),
        (_, Some(true)) => Some(1),
        (Some(_), _) | (_, Some(false)) => Some(0),
        (None, None) => None,
    };
    if let Some(unread) = unread {
        changes.push(Change::ChatRead {
            jid: chat.to_owned(),
            unread,
        });
    }
    changes
}

/// The chat a conversation is, as the store keys chats: its phone-number JID when
/// WhatsApp names it by LID and knows the number.
fn chat_of(conversation: &whatsapp_rust::waproto::whatsapp::Conversation) -> Option<String> {
    let id: Jid = conversation.id.parse().ok()?;
    let pn = conversation
        .pn_jid
        .as_deref()
        .and_then(|p| p.parse::<Jid>().ok());
    let (chat, _) = crate::whatsapp::content::pn_and_lid(&id, pn.as_ref());
    Some(chat)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use whatsapp_rust::buffa::Message as _;
    use whatsapp_rust::waproto::whatsapp as wa;

    use super::*;
    use crate::messages::{ChatQuery, MessageQuery};

    const ANN: &str = "6289685024091@s.whatsapp.net";
    const GROUP: &str = "120363000000000001@g.us";
    const OWN: &str = "6281234567890@s.whatsapp.net";

    fn entry(
        id: &str,
        from_me: bool,
        participant: Option<&str>,
        at: u64,
        text: &str,
    ) -> wa::HistorySyncMsg {
        wa::HistorySyncMsg {
            message: wa::WebMessageInfo {
                key: wa::MessageKey {
                    id: Some(id.to_owned()),
                    from_me: Some(from_me),
                    participant: participant.map(str::to_owned),
                    ..Default::default()
                }
                .into(),
                message: wa::Message {
                    conversation: Some(text.to_owned()),
                    ..Default::default()
                }
                .into(),
                message_timestamp: Some(at),
                ..Default::default()
            }
            .into(),
            ..Default::default()
        }
    }

    /// A chunk as WhatsApp sends it: the HistorySync proto, zlib-compressed.
    fn chunk(conversations: Vec<wa::Conversation>) -> LazyHistorySync {
        let raw = wa::HistorySync {
            sync_type: wa::history_sync::HistorySyncType::InitialBootstrap,
            conversations,
            ..Default::default()
        }
        .encode_to_vec();
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(&raw).unwrap();
        LazyHistorySync::new(
            zlib.finish().unwrap().into(),
            raw.len(),
            0,
            Some(1),
            Some(100),
        )
    }

    #[test]
    fn a_chunk_of_history_becomes_chats_and_messages() {
        let dir = tempfile::tempdir().unwrap();
        let store = MessageStore::open(&dir.path().join("chat.db")).unwrap();
        // More messages than a transaction holds, so that batches are cut.
        let many: Vec<_> = (0..BATCH as u64 + 7)
            .map(|i| {
                entry(
                    &format!("A{i}"),
                    i % 2 == 0,
                    None,
                    1_000 + i,
                    &format!("text {i}"),
                )
            })
            .collect();
        let conversations = vec![
            wa::Conversation {
                id: ANN.to_owned(),
                name: Some("Ann".to_owned()),
                archived: Some(true),
                messages: many,
                ..Default::default()
            },
            wa::Conversation {
                id: GROUP.to_owned(),
                pinned: Some(1_700_000_000),
                messages: vec![entry("G1", false, Some(ANN), 5_000, "in the group")],
                ..Default::default()
            },
            // Named by LID, with the phone number known: kept under the number.
            wa::Conversation {
                id: "205550001234001@lid".to_owned(),
                pn_jid: Some("15550001234@s.whatsapp.net".to_owned()),
                messages: vec![entry("L1", false, None, 6_000, "by lid")],
                ..Default::default()
            },
        ];
        let own: Jid = OWN.parse().unwrap();
        let imported = import(&store, &chunk(conversations), Some(&own)).unwrap();
        assert_eq!(
            imported,
            Imported {
                chats: 3,
                messages: BATCH + 7 + 2
            }
        );

        let all = MessageQuery {
            limit: 10_000,
            ..Default::default()
        };
        let (ann, total) = store.messages(ANN, &all).unwrap();
        assert_eq!(total, BATCH as u64 + 7);
        let first = ann.iter().find(|m| m.id == "A0").unwrap();
        assert!(first.is_from_me);
        assert_eq!(first.sender, OWN);
        let second = ann.iter().find(|m| m.id == "A1").unwrap();
        assert!(!second.is_from_me);
        assert_eq!((second.sender.as_str(), second.timestamp), (ANN, 1_001));
        assert_eq!(second.body.as_deref(), Some("text 1"));
        let (group, _) = store.messages(GROUP, &all).unwrap();
        assert_eq!(group[0].sender, ANN);
        let (by_lid, _) = store.messages("15550001234@s.whatsapp.net", &all).unwrap();
        assert_eq!(by_lid[0].body.as_deref(), Some("by lid"));

        let chat = store.chat(ANN).unwrap().unwrap();
        assert_eq!(chat.name.as_deref(), Some("Ann"));
        assert!(chat.archived);
        assert_eq!(
            chat.last_message_at,
            1_000 + BATCH as i64 + 6,
            "its latest message"
        );
        assert!(store.chat(GROUP).unwrap().unwrap().pinned);
        let (chats, total) = store
            .chats(&ChatQuery {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!((chats.len(), total), (3, 3));

        // The same chunk again (WhatsApp may resend it): nothing doubles.
        let again = import(
            &store,
            &chunk(vec![wa::Conversation {
                id: ANN.to_owned(),
                messages: vec![entry("A1", false, None, 1_001, "text 1")],
                ..Default::default()
            }]),
            Some(&own),
        );
        assert!(again.is_ok());
        assert_eq!(store.messages(ANN, &all).unwrap().1, BATCH as u64 + 7);
    }

    #[test]
    fn a_damaged_chunk_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = MessageStore::open(&dir.path().join("chat.db")).unwrap();
        let damaged = LazyHistorySync::new(vec![0x78, 0x9c, 1, 2, 3].into(), 100, 0, None, None);
        assert!(import(&store, &damaged, None).is_err());
    }
}
