//! The message store: every message in and out, with what happened to it afterwards
//! (reactions, edits, deletion for everyone) and its receipts. Replies, forwards,
//! media re-downloads and chat history build on it.
//!
//! | file | responsibility |
//! |---|---|
//! | this one | the store's front and its domain types |
//! | [`sqlite`] | the default adapter: one SQLite file per account |
//! | [`crate::postgres::messages`] | the adapter for `--db-uri postgres://…`: every account in shared tables |
//! | [`from_wa`] | WhatsApp messages, receipts and sends as [`Change`]s |
//!
//! Calls block and are short: async callers go through [`MessageStore::call`]
//! (the blocking pool), and a Postgres store waits for its database there. Never
//! call them on an async task's thread.

pub mod from_wa;
pub mod go_import;
pub mod history;
mod sqlite;

use std::future::Future;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use crate::postgres::messages::PgMessages;

/// The media of a stored message: what downloading or forwarding it needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredMedia {
    pub mimetype: Option<String>,
    pub file_name: Option<String>,
    pub url: Option<String>,
    pub direct_path: Option<String>,
    pub media_key: Option<Vec<u8>>,
    pub file_sha256: Option<Vec<u8>>,
    pub file_enc_sha256: Option<Vec<u8>>,
    pub file_length: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The chat's JID (phone-number form for people, `@g.us` for groups).
    pub chat: String,
    pub id: String,
    pub sender: String,
    pub sender_lid: Option<String>,
    pub push_name: Option<String>,
    /// Unix seconds.
    pub timestamp: i64,
    pub is_from_me: bool,
    /// `text`, `image`, `video`, `video_note`, `audio`, `document`, `sticker`,
    /// `contact`, `location` or `other`.
    pub kind: String,
    /// The text, or the media's caption.
    pub body: Option<String>,
    pub quoted_id: Option<String>,
    pub media: Option<StoredMedia>,
    /// The WhatsApp message (protobuf).
    pub raw: Vec<u8>,
    pub edited_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Something that happened, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Message(Box<StoredMessage>),
    /// `sender` reacted to a message with `emoji` (empty: removed the reaction).
    Reaction {
        chat: String,
        message_id: String,
        sender: String,
        emoji: String,
        timestamp: i64,
    },
    /// The message's text became `body` (`edit_id`: the edit's own message id).
    Edit {
        chat: String,
        edit_id: String,
        message_id: String,
        body: String,
        timestamp: i64,
    },
    /// Deleted for everyone.
    Revoke {
        chat: String,
        message_id: String,
        timestamp: i64,
    },
    Receipt {
        chat: String,
        message_ids: Vec<String>,
        kind: String,
        sender: String,
        timestamp: i64,
    },
    /// The chat's name as the phone shows it (a contact's saved name, a group's
    /// subject), from the history the phone sends after pairing.
    ChatName {
        jid: String,
        name: String,
    },
    /// A chat setting changed (here or on another device).
    Chat {
        jid: String,
        setting: ChatSetting,
    },
    /// A label was created, renamed or recoloured (`None` leaves what is stored),
    /// or deleted (from every chat too).
    Label {
        id: String,
        name: Option<String>,
        color: Option<i32>,
        deleted: bool,
    },
    /// The chat's newest `unread` incoming messages are unread, the others read:
    /// 0 when a device marked it read, 1 when it was marked unread, the phone's
    /// count in its history.
    ChatRead {
        jid: String,
        unread: u32,
    },
    /// A label was put on a chat or taken off it.
    ChatLabel {
        jid: String,
        label_id: String,
        labeled: bool,
    },
    /// What is known of a person: the name saved on the phone and/or their push
    /// name (`None` leaves the stored one).
    Contact {
        jid: String,
        full_name: Option<String>,
        push_name: Option<String>,
    },
}

/// A reaction: (sender, emoji, unix seconds).
pub type StoredReaction = (String, String, i64);

/// A chat as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChat {
    pub jid: String,
    /// The contact's push name or the group's subject, when known.
    pub name: Option<String>,
    /// Unix seconds.
    pub last_message_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub archived: bool,
    pub pinned: bool,
    /// Disappearing-message timer in seconds; 0 when off.
    pub expiration: u32,
    /// Its labels, by id.
    pub labels: Vec<Label>,
    /// Incoming messages not read yet (on any device of the account).
    pub unread: u32,
}

/// A chat label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub id: String,
    /// `""` until its name is known.
    pub name: String,
    /// WhatsApp's colour index.
    pub color: i32,
}

/// Which chats `/chats` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatQuery {
    pub limit: u32,
    pub offset: u32,
    /// Part of the name or the JID.
    pub search: Option<String>,
    /// Only chats with a stored media message.
    pub has_media: bool,
    pub archived: Option<bool>,
    /// Only chats with unread incoming messages.
    pub unread_only: bool,
}

/// Which messages of a chat to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageQuery {
    pub limit: u32,
    pub offset: u32,
    /// Unix seconds, inclusive.
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub media_only: bool,
    pub from_me: Option<bool>,
    /// Part of the text or caption.
    pub search: Option<String>,
}

/// A chat setting WhatsApp syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatSetting {
    Pinned(bool),
    Archived(bool),
    Expiration(u32),
}

/// `%text%` for LIKE, with the wildcards in `text` taken literally.
pub(crate) fn like(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// A person this account knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredContact {
    pub jid: String,
    pub full_name: Option<String>,
    pub push_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("message store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("message store migration: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    #[error("cannot create the message store's folder: {0}")]
    Folder(std::io::Error),
    #[error("cannot read the message store's file: {0}")]
    Read(std::io::Error),
    /// A failed statement or connection; the text never holds the connection URI.
    #[error("message store (PostgreSQL): {0}")]
    Postgres(String),
    /// The blocking task running a call stopped (the runtime is shutting down).
    #[error("message store: {0}")]
    Stopped(String),
}

/// One account's message store, in its SQLite file or in PostgreSQL.
pub struct MessageStore {
    backend: Backend,
    /// Changes waiting for the background writer (see
    /// [`MessageStore::apply_in_background`]).
    queued: Mutex<Queued>,
    /// Held by the background writer from before it takes the queue until the
    /// batch is written: a later writer waits, so changes keep their order.
    writing: Mutex<()>,
}

enum Backend {
    Sqlite(sqlite::Sqlite),
    Postgres {
        store: PgMessages,
        /// Where its calls wait for the database (from the blocking pool).
        runtime: tokio::runtime::Handle,
    },
}

/// What [`MessageStore::apply_in_background`] was given and not yet written, and
/// whether a writer task is on its way for it.
#[derive(Default)]
struct Queued {
    changes: Vec<(Change, &'static str)>,
    writer_spawned: bool,
}

/// Runs the same call on either adapter, after the changes handed to the
/// background writer; a Postgres one is waited for here.
macro_rules! on_backend {
    ($store:expr, $method:ident($($arg:expr),*)) => {{
        $store.settle();
        match &$store.backend {
            Backend::Sqlite(db) => db.$method($($arg),*),
            Backend::Postgres { store, runtime } => wait(runtime, store.$method($($arg),*)),
        }
    }};
}

/// Waits for `work` on `runtime` from a blocking thread.
fn wait<T>(runtime: &tokio::runtime::Handle, work: impl Future<Output = T>) -> T {
    runtime.block_on(work)
}

impl MessageStore {
    /// Opens (or creates) the SQLite store at `path` and brings its schema up to
    /// date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self::with(Backend::Sqlite(sqlite::Sqlite::open(path)?)))
    }

    /// The store of the account `store` names in PostgreSQL; its calls wait for
    /// the database on `runtime`.
    pub fn postgres(store: PgMessages, runtime: tokio::runtime::Handle) -> Self {
        Self::with(Backend::Postgres { store, runtime })
    }

    fn with(backend: Backend) -> Self {
        Self {
            backend,
            queued: Mutex::default(),
            writing: Mutex::default(),
        }
    }

    /// The SQLite connection of a file store (the Go chat history import writes
    /// through it); `None` in Postgres.
    pub(crate) fn sqlite_conn(&self) -> Option<MutexGuard<'_, rusqlite::Connection>> {
        match &self.backend {
            Backend::Sqlite(db) => Some(db.conn()),
            Backend::Postgres { .. } => None,
        }
    }

    /// Records `changes` in one transaction, durable before it returns (incoming
    /// messages are written before WhatsApp gets their ack). Idempotent: WhatsApp
    /// may deliver a message again, and the same change then changes nothing.
    pub fn apply(&self, changes: &[Change], now: i64) -> Result<(), StoreError> {
        // After what was handed to the background writer (a send, then a pin).
        self.settle();
        match &self.backend {
            Backend::Sqlite(db) => db.apply(changes, now),
            Backend::Postgres { store, runtime } => wait(runtime, store.apply(changes, now, true)),
        }
    }

    /// [`apply`](Self::apply) without waiting for the disk: for what is not owed
    /// to WhatsApp.
    fn apply_relaxed(&self, changes: &[Change], now: i64) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.apply_relaxed(changes, now),
            Backend::Postgres { store, runtime } => wait(runtime, store.apply(changes, now, false)),
        }
    }

    /// Gives back the page cache the SQLite connection holds (up to its cap):
    /// after a burst such as a history import, which would otherwise keep it
    /// filled.
    pub fn shrink_memory(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.shrink_memory(),
            Backend::Postgres { .. } => Ok(()),
        }
    }

    /// Runs `work` on the blocking pool and waits for it: the store's calls block,
    /// async callers go through here.
    pub async fn call<T: Send + 'static>(
        self: &std::sync::Arc<Self>,
        work: impl FnOnce(&MessageStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .map_err(|e| StoreError::Stopped(e.to_string()))?
    }

    /// Records `change` on the blocking pool without waiting for it (a send, a
    /// receipt); a failure is logged as `what` "was not stored". Changes are written
    /// in the order they come; those that come while a write runs go together in the
    /// next transaction.
    pub fn apply_in_background(self: &std::sync::Arc<Self>, change: Change, what: &'static str) {
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        queued.changes.push((change, what));
        if std::mem::replace(&mut queued.writer_spawned, true) {
            // The writer on its way takes this change too.
            return;
        }
        drop(queued);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let store = self.clone();
                runtime.spawn_blocking(move || store.write_queued());
            }
            // Outside a runtime there is no pool to write on: written here.
            Err(_) => self.write_queued(),
        }
    }

    /// Writes here what the background writer has not written yet, or waits for
    /// the batch it is writing: whoever reads after handing a change over (a send,
    /// then an edit of it) sees it.
    fn settle(&self) {
        let queued = !self
            .queued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .changes
            .is_empty();
        match queued {
            true => self.write_queued(),
            false => drop(self.writing.lock().unwrap_or_else(|e| e.into_inner())),
        }
    }

    /// The background writer: everything queued so far in one transaction (one
    /// flush for a burst of sends), in the order it was queued. If the batch
    /// fails, each change is tried on its own, so that one bad change loses only
    /// itself.
    fn write_queued(&self) {
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let batch = {
            let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
            queued.writer_spawned = false;
            std::mem::take(&mut queued.changes)
        };
        if batch.is_empty() {
            // A read wrote it first.
            return;
        }
        let now = jiff::Timestamp::now().as_second();
        let (changes, whats): (Vec<Change>, Vec<&str>) = batch.into_iter().unzip();
        if self.apply_relaxed(&changes, now).is_err() {
            for (change, what) in changes.iter().zip(whats) {
                if let Err(e) = self.apply_relaxed(std::slice::from_ref(change), now) {
                    tracing::warn!(error = %e, "{what} was not stored");
                }
            }
        }
    }

    /// One stored message with its latest text.
    pub fn get(&self, chat: &str, id: &str) -> Result<Option<StoredMessage>, StoreError> {
        on_backend!(self, get(chat, id))
    }

    /// The stored message `id` of any chat (the latest, should two chats share it).
    pub fn find(&self, id: &str) -> Result<Option<StoredMessage>, StoreError> {
        on_backend!(self, find(id))
    }

    /// Removes one message with its reactions, edits and receipts (deleted for me);
    /// whether it was there.
    pub fn forget(&self, chat: &str, id: &str) -> Result<bool, StoreError> {
        on_backend!(self, forget(chat, id))
    }

    /// Reactions to a message, as (sender, emoji).
    pub fn reactions(&self, chat: &str, id: &str) -> Result<Vec<(String, String)>, StoreError> {
        on_backend!(self, reactions(chat, id))
    }

    /// Receipts of a message, as (kind, sender).
    pub fn receipts(&self, chat: &str, id: &str) -> Result<Vec<(String, String)>, StoreError> {
        on_backend!(self, receipts(chat, id))
    }

    /// How many messages are stored.
    pub fn count(&self) -> Result<u64, StoreError> {
        on_backend!(self, count())
    }

    /// A page of chats, latest message first, and how many match.
    pub fn chats(&self, q: &ChatQuery) -> Result<(Vec<StoredChat>, u64), StoreError> {
        on_backend!(self, chats(q))
    }

    /// The label `id`, when known.
    pub fn label(&self, id: &str) -> Result<Option<Label>, StoreError> {
        on_backend!(self, label(id))
    }

    /// One chat.
    pub fn chat(&self, jid: &str) -> Result<Option<StoredChat>, StoreError> {
        on_backend!(self, chat(jid))
    }

    /// A page of a chat's messages, newest first (without their raw encoding), and
    /// how many match. Only the filters given are in the query, so that the common
    /// listing is answered from the index.
    pub fn messages(
        &self,
        chat: &str,
        q: &MessageQuery,
    ) -> Result<(Vec<StoredMessage>, u64), StoreError> {
        on_backend!(self, messages(Some(chat), q))
    }

    /// A page of the messages of every chat (or of `chat`) whose text has
    /// `q.search`, newest first, and how many match.
    ///
    /// A search may read every message: in SQLite it runs on a read-only
    /// connection of its own (WAL lets it read while messages are written), not
    /// the store's.
    pub fn search(
        &self,
        chat: Option<&str>,
        q: &MessageQuery,
    ) -> Result<(Vec<StoredMessage>, u64), StoreError> {
        self.settle();
        match &self.backend {
            Backend::Sqlite(db) => db.search(chat, q),
            Backend::Postgres { store, runtime } => wait(runtime, store.messages(chat, q)),
        }
    }

    /// The reactions to the messages `ids` of `chat`, as (sender, emoji, unix
    /// seconds) by message id.
    pub fn reactions_of(
        &self,
        chat: &str,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<StoredReaction>>, StoreError> {
        on_backend!(self, reactions_of(chat, ids))
    }

    /// Records a chat setting (the chat is created when not yet known).
    pub fn set_chat(&self, jid: &str, setting: ChatSetting, now: i64) -> Result<(), StoreError> {
        let jid = jid.to_owned();
        self.apply(&[Change::Chat { jid, setting }], now)
    }

    /// Every known person, by JID.
    pub fn contacts(&self) -> Result<Vec<StoredContact>, StoreError> {
        on_backend!(self, contacts())
    }

    /// Deletes messages older than `before` (unix seconds) with their reactions,
    /// edits and receipts, and chats left empty. Returns how many messages went.
    pub fn prune(&self, before: i64) -> Result<usize, StoreError> {
        on_backend!(self, prune(before))
    }

    /// Whether the import named `key` was done before (see `migrations/chat/0004`).
    pub fn was_imported(&self, key: &str) -> Result<bool, StoreError> {
        on_backend!(self, was_imported(key))
    }

    /// Remembers that the import named `key` is done.
    pub fn record_import(&self, key: &str) -> Result<(), StoreError> {
        on_backend!(self, record_import(key))
    }

    /// Forgets everything: the account logged out. The Go session's import stays
    /// recorded, so a logged-out Go session is not imported again; the Go chat
    /// history's does not, so it comes back for the next account that pairs.
    pub fn clear(&self) -> Result<(), StoreError> {
        on_backend!(self, clear())
    }

    /// Copies everything the SQLite store at `file` holds into this store (an
    /// account's store moving into PostgreSQL), in batches, each durable before
    /// the next; how many messages it held, or `None` when this state of the
    /// file was copied before (it is not copied again: what it holds may have
    /// changed here since). Merges with what is here: a message stored already is
    /// kept, so a copy cut short is done again whole.
    pub fn copy_from_file(&self, file: &Path) -> Result<Option<u64>, StoreError> {
        let db = sqlite::Sqlite::open(file)?;
        db.checkpoint()?;
        let fingerprint = crate::storage::fingerprint(file).map_err(StoreError::Read)?;
        let key = format!("chat-file:{fingerprint}");
        if self.was_imported(&key)? {
            return Ok(None);
        }
        let now = jiff::Timestamp::now().as_second();
        let mut messages = 0;
        let imports = db.export(&mut |batch| {
            messages += batch
                .iter()
                .filter(|c| matches!(c, Change::Message(_)))
                .count() as u64;
            self.apply(&batch, now)
        })?;
        for key in imports.iter().chain([&key]) {
            self.record_import(key)?;
        }
        Ok(Some(messages))
    }
}

/// Prunes messages older than `retention` now and every hour.
pub fn spawn_retention(
    store: std::sync::Arc<MessageStore>,
    retention: Option<std::time::Duration>,
) {
    let Some(retention) = retention else {
        return;
    };
    // Ends with the store (its account removed or reopened).
    let store = std::sync::Arc::downgrade(&store);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every.tick().await;
            let Some(store) = store.upgrade() else {
                return;
            };
            let before = jiff::Timestamp::now().as_second() - retention.as_secs() as i64;
            match tokio::task::spawn_blocking(move || store.prune(before)).await {
                Ok(Ok(0)) | Err(_) => {}
                Ok(Ok(n)) => tracing::info!(
                    messages = n,
                    "deleted messages older than the retention period"
                ),
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot prune the message store"),
            }
        }
    });
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn labels_are_named_put_on_chats_taken_off_and_deleted() {
        on_each_backend(|store| {
            let chat = "6281@s.whatsapp.net";
            let label = |id: &str, name: Option<&str>, color, deleted| Change::Label {
                id: id.into(),
                name: name.map(str::to_owned),
                color,
                deleted,
            };
            let tag = |label_id: &str, labeled| Change::ChatLabel {
                jid: chat.into(),
                label_id: label_id.into(),
                labeled,
            };
            store
                .apply(
                    &[
                        Change::Chat {
                            jid: chat.into(),
                            setting: ChatSetting::Pinned(true),
                        },
                        tag("2", true),
                        label("1", Some("New"), Some(3), false),
                        tag("1", true),
                    ],
                    100,
                )
                .unwrap();
            // A label known by its id only shows with an empty name until it is named.
            let labels = |store: &MessageStore| store.chat(chat).unwrap().unwrap().labels;
            let named = |id: &str, name: &str, color| Label {
                id: id.into(),
                name: name.into(),
                color,
            };
            assert_eq!(labels(store), [named("1", "New", 3), named("2", "", 0)]);
            // A rename keeps the colour.
            store
                .apply(
                    &[label("1", Some("Paid"), None, false), tag("2", false)],
                    100,
                )
                .unwrap();
            assert_eq!(labels(store), [named("1", "Paid", 3)]);
            let (listed, _) = store
                .chats(&ChatQuery {
                    limit: 10,
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(listed[0].labels, [named("1", "Paid", 3)]);
            assert_eq!(store.label("1").unwrap(), Some(named("1", "Paid", 3)));
            // Deleted: gone from every chat.
            store.apply(&[label("1", None, None, true)], 100).unwrap();
            assert!(labels(store).is_empty());
            assert_eq!(store.label("1").unwrap(), None);
            store
                .apply(
                    &[label("4", Some("Later"), None, false), tag("4", true)],
                    100,
                )
                .unwrap();
            store.clear().unwrap();
            assert_eq!(store.label("4").unwrap(), None);
        });
    }

    #[test]
    fn a_logout_forgets_the_go_history_import_but_not_the_go_session_import() {
        on_each_backend(|store| {
            store
                .record_import("go-session:6281:7@s.whatsapp.net#ab")
                .unwrap();
            store.record_import("go-chats:6281@s.whatsapp.net").unwrap();
            assert!(store.was_imported("go-chats:6281@s.whatsapp.net").unwrap());
            store.clear().unwrap();
            assert!(
                store
                    .was_imported("go-session:6281:7@s.whatsapp.net#ab")
                    .unwrap()
            );
            assert!(!store.was_imported("go-chats:6281@s.whatsapp.net").unwrap());
            assert!(!store.was_imported("never").unwrap());
        });
    }

    #[test]
    fn unread_counts_follow_reads_replies_and_marks() {
        on_each_backend(|store| {
            let chat = "62811@s.whatsapp.net";
            let incoming = |id: &str, t| Change::Message(Box::new(message(id, t, "hi")));
            let unread = |store: &MessageStore| store.chat(chat).unwrap().unwrap().unread;
            let unread_chats = |store: &MessageStore| {
                let q = ChatQuery {
                    limit: 10,
                    unread_only: true,
                    ..Default::default()
                };
                store.chats(&q).unwrap().1
            };
            store
                .apply(&[incoming("A", 100), incoming("B", 110)], 1)
                .unwrap();
            assert_eq!((unread(store), unread_chats(store)), (2, 1));
            // A reply reads what came before it.
            let mut reply = message("R", 120, "ok");
            reply.is_from_me = true;
            store
                .apply(&[Change::Message(Box::new(reply)), incoming("C", 130)], 1)
                .unwrap();
            assert_eq!(unread(store), 1);
            // Read on the phone (or here): up to that message.
            let read = Change::Receipt {
                chat: chat.into(),
                message_ids: vec!["C".into()],
                kind: "read-self".into(),
                sender: chat.into(),
                timestamp: 140,
            };
            store.apply(&[read], 1).unwrap();
            assert_eq!((unread(store), unread_chats(store)), (0, 0));
            // Marked unread: its newest incoming message is unread again; read again.
            let mark = |unread| Change::ChatRead {
                jid: chat.into(),
                unread,
            };
            store.apply(&[mark(1)], 1).unwrap();
            assert_eq!(unread(store), 1);
            store.apply(&[mark(0)], 1).unwrap();
            assert_eq!(unread(store), 0);
            // The phone's count (history): the newest two of the three incoming.
            store.apply(&[mark(2)], 1).unwrap();
            assert_eq!(unread(store), 2);
            store.apply(&[mark(9)], 1).unwrap();
            assert_eq!(unread(store), 3);
            // Two in the same second (times are whole seconds): marked unread, both
            // are, rather than none.
            store
                .apply(&[mark(0), incoming("D", 150), incoming("E", 150)], 1)
                .unwrap();
            assert_eq!(unread(store), 2);
            store.apply(&[mark(0)], 1).unwrap();
            store.apply(&[mark(1)], 1).unwrap();
            assert_eq!(unread(store), 2);
        });
    }

    #[test]
    fn a_search_finds_text_across_chats_newest_first() {
        on_each_backend(|store| {
            let mut other = message("B", 200, "Order #12 shipped");
            other.chat = "62822@s.whatsapp.net".into();
            store
                .apply(
                    &[
                        Change::Message(Box::new(message("A", 100, "where is order #12?"))),
                        Change::Message(Box::new(other)),
                        Change::Message(Box::new(message("C", 300, "thanks"))),
                    ],
                    1,
                )
                .unwrap();
            let q = |search: &str| MessageQuery {
                limit: 10,
                search: Some(search.into()),
                ..Default::default()
            };
            let (found, total) = store.search(None, &q("ORDER #12")).unwrap();
            let ids: Vec<&str> = found.iter().map(|m| m.id.as_str()).collect();
            assert_eq!((ids, total), (vec!["B", "A"], 2));
            let (found, _) = store
                .search(Some("62811@s.whatsapp.net"), &q("order"))
                .unwrap();
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].id, "A");
            // LIKE's wildcards are taken literally.
            assert_eq!(store.search(None, &q("%")).unwrap().1, 0);
        });
    }

    /// An incoming image message in [`CHAT`].
    pub(crate) fn message(id: &str, timestamp: i64, body: &str) -> StoredMessage {
        StoredMessage {
            chat: "62811@s.whatsapp.net".into(),
            id: id.into(),
            sender: "62811@s.whatsapp.net".into(),
            sender_lid: None,
            push_name: Some("Ann".into()),
            timestamp,
            is_from_me: false,
            kind: "image".into(),
            body: Some(body.into()),
            quoted_id: None,
            media: Some(StoredMedia {
                direct_path: Some("/v/x".into()),
                media_key: Some(vec![1, 2, 3]),
                file_length: Some(10),
                ..StoredMedia::default()
            }),
            raw: vec![9, 9],
            edited_at: None,
            revoked_at: None,
        }
    }

    pub(crate) const CHAT: &str = "62811@s.whatsapp.net";

    #[test]
    fn background_writes_skip_the_fsync_and_leave_incoming_ones_with_it() {
        let (store, _dir) = store();
        let store = std::sync::Arc::new(store);
        let synchronous = |store: &MessageStore| -> i64 {
            store
                .sqlite_conn()
                .unwrap()
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(synchronous(&store), 2, "FULL for incoming messages");
        // Outside a runtime the background write runs here, at once.
        store.apply_in_background(
            Change::Message(Box::new(message("OUT1", 5, "sent"))),
            "a sent message",
        );
        assert!(store.get(CHAT, "OUT1").unwrap().is_some());
        assert_eq!(synchronous(&store), 2, "back to FULL after the batch");
    }

    /// Runs `test` on a fresh store of each kind: an SQLite file, then an
    /// account in Postgres whose tables already hold another account's messages,
    /// chat, contact and label (none of which `test` may see).
    fn on_each_backend(test: impl Fn(&MessageStore)) {
        let (store, _dir) = store();
        test(&store);
        let (store, _server, runtime) = postgres_store();
        test(&store);
        drop(store);
        drop(runtime);
    }

    /// An account's store in a Postgres of its own, beside another account's
    /// rows; the server and the runtime its calls wait on go with it.
    fn postgres_store() -> (
        std::sync::Arc<MessageStore>,
        std::sync::Arc<crate::postgres::testing::TestServer>,
        tokio::runtime::Runtime,
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (server, pool) = runtime.block_on(crate::postgres::testing::database());
        let on = |account: &str| {
            std::sync::Arc::new(MessageStore::postgres(
                PgMessages::new(pool.clone(), account),
                runtime.handle().clone(),
            ))
        };
        let other = on("other");
        let mut theirs = message("A", 100, "another account's");
        theirs.raw = vec![7];
        other
            .apply(
                &[
                    Change::Message(Box::new(theirs)),
                    Change::Contact {
                        jid: CHAT.into(),
                        full_name: Some("Not yours".into()),
                        push_name: None,
                    },
                    Change::Label {
                        id: "1".into(),
                        name: Some("Theirs".into()),
                        color: Some(5),
                        deleted: false,
                    },
                    Change::ChatLabel {
                        jid: CHAT.into(),
                        label_id: "1".into(),
                        labeled: true,
                    },
                ],
                1,
            )
            .unwrap();
        other.record_import("go-chats:6281@s.whatsapp.net").unwrap();
        (on("acct"), server, runtime)
    }

    fn store() -> (MessageStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (
            MessageStore::open(&dir.path().join("chat.db")).unwrap(),
            dir,
        )
    }

    #[test]
    fn senders_become_contacts_and_a_saved_name_outranks_the_push_name() {
        on_each_backend(|store| {
            let mut own = message("B", 101, "mine");
            own.is_from_me = true;
            own.sender = "62899@s.whatsapp.net".into();
            store
                .apply(
                    &[
                        Change::Message(Box::new(message("A", 100, "hi"))),
                        Change::Message(Box::new(own)),
                    ],
                    1,
                )
                .unwrap();
            let names = |store: &MessageStore| -> Vec<(String, Option<String>, Option<String>)> {
                store
                    .contacts()
                    .unwrap()
                    .into_iter()
                    .map(|c| (c.jid, c.full_name, c.push_name))
                    .collect()
            };
            assert_eq!(
                names(store),
                [(CHAT.to_owned(), None, Some("Ann".to_owned()))],
                "own messages make no contact"
            );
            let saved = Change::Contact {
                jid: CHAT.into(),
                full_name: Some("Ann Smith".into()),
                push_name: None,
            };
            store.apply(&[saved], 2).unwrap();
            assert_eq!(
                names(store),
                [(
                    CHAT.to_owned(),
                    Some("Ann Smith".to_owned()),
                    Some("Ann".to_owned())
                )]
            );
            store.clear().unwrap();
            assert!(store.contacts().unwrap().is_empty());
        });
    }

    #[test]
    fn a_chats_total_follows_inserts_repeats_forgets_and_prunes() {
        on_each_backend(|store| {
            let total = |store: &MessageStore| {
                let q = MessageQuery {
                    limit: 10,
                    ..MessageQuery::default()
                };
                let counted = MessageQuery {
                    media_only: true,
                    ..q.clone()
                };
                let (_, total) = store.messages(CHAT, &q).unwrap();
                // Every message here has media: the counted total must agree.
                assert_eq!(store.messages(CHAT, &counted).unwrap().1, total);
                total
            };
            let batch: Vec<Change> = (0..5)
                .map(|i| Change::Message(Box::new(message(&format!("M{i}"), 100 + i, "x"))))
                .collect();
            store.apply(&batch, 1).unwrap();
            store.apply(&batch, 2).unwrap();
            assert_eq!(total(store), 5, "a repeat is not counted twice");
            assert!(store.forget(CHAT, "M0").unwrap());
            assert!(!store.forget(CHAT, "M0").unwrap());
            assert_eq!(total(store), 4);
            assert_eq!(store.prune(102).unwrap(), 1);
            assert_eq!(total(store), 3);
            let (rows, _) = store
                .messages(
                    CHAT,
                    &MessageQuery {
                        limit: 2,
                        offset: 1,
                        ..MessageQuery::default()
                    },
                )
                .unwrap();
            let ids: Vec<&str> = rows.iter().map(|m| m.id.as_str()).collect();
            assert_eq!(ids, ["M3", "M2"], "newest first, after the offset");
        });
    }

    /// Waits up to 10 s for `done` (background writes).
    async fn wait_until(what: &str, done: impl Fn() -> bool) {
        for _ in 0..1000 {
            if done() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[test]
    fn a_file_store_moves_into_postgres_whole_and_a_second_copy_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("chat.db");
        let mut edited = message("E", 110, "before");
        edited.media = None;
        let mut mine = message("R", 120, "reply");
        mine.is_from_me = true;
        let mut group = message("G", 130, "in a group");
        group.chat = "1203@g.us".into();
        let react = Change::Reaction {
            chat: CHAT.into(),
            message_id: "A".into(),
            sender: "62822@s.whatsapp.net".into(),
            emoji: "👍".into(),
            timestamp: 101,
        };
        let changes = vec![
            Change::Message(Box::new(message("A", 100, "hello"))),
            Change::Message(Box::new(edited)),
            Change::Message(Box::new(mine)),
            Change::Message(Box::new(message("B", 140, "unread one"))),
            Change::Message(Box::new(message("C", 150, "unread two"))),
            Change::Message(Box::new(message("X", 160, "deleted"))),
            Change::Message(Box::new(group)),
            react,
            Change::Edit {
                chat: CHAT.into(),
                edit_id: "E-1".into(),
                message_id: "E".into(),
                body: "after".into(),
                timestamp: 115,
            },
            Change::Revoke {
                chat: CHAT.into(),
                message_id: "X".into(),
                timestamp: 170,
            },
            Change::Receipt {
                chat: CHAT.into(),
                message_ids: vec!["R".into()],
                kind: "read".into(),
                sender: CHAT.into(),
                timestamp: 125,
            },
            Change::ChatName {
                jid: "1203@g.us".into(),
                name: "Team".into(),
            },
            Change::Chat {
                jid: "1203@g.us".into(),
                setting: ChatSetting::Pinned(true),
            },
            Change::Chat {
                jid: CHAT.into(),
                setting: ChatSetting::Expiration(86_400),
            },
            Change::Chat {
                jid: CHAT.into(),
                setting: ChatSetting::Archived(true),
            },
            Change::Contact {
                jid: CHAT.into(),
                full_name: Some("Ann Smith".into()),
                push_name: None,
            },
            Change::Label {
                id: "7".into(),
                name: Some("Paid".into()),
                color: Some(2),
                deleted: false,
            },
            Change::ChatLabel {
                jid: CHAT.into(),
                label_id: "7".into(),
                labeled: true,
            },
        ];
        let source = MessageStore::open(&file).unwrap();
        source.apply(&changes, 1).unwrap();
        source
            .record_import("go-chats:6281@s.whatsapp.net")
            .unwrap();
        drop(source);
        // What a store shows through its calls (times of writing aside).
        let seen = |store: &MessageStore| {
            let all = MessageQuery {
                limit: 100,
                ..Default::default()
            };
            let (chats, total) = store
                .chats(&ChatQuery {
                    limit: 10,
                    ..Default::default()
                })
                .unwrap();
            let chats: Vec<_> = chats
                .into_iter()
                .map(|c| {
                    let messages = store.messages(&c.jid, &all).unwrap();
                    let full: Vec<_> = messages
                        .0
                        .iter()
                        .map(|m| {
                            let id = &m.id;
                            (
                                store.get(&c.jid, id).unwrap(),
                                store.reactions(&c.jid, id).unwrap(),
                                store.receipts(&c.jid, id).unwrap(),
                            )
                        })
                        .collect();
                    let shown = (
                        c.jid,
                        c.name,
                        c.last_message_at,
                        c.archived,
                        c.pinned,
                        c.expiration,
                        c.labels,
                        c.unread,
                    );
                    (shown, messages.1, full)
                })
                .collect();
            (
                chats,
                total,
                store.contacts().unwrap(),
                store.count().unwrap(),
                store.was_imported("go-chats:6281@s.whatsapp.net").unwrap(),
            )
        };
        let expected = seen(&MessageStore::open(&file).unwrap());
        assert_eq!(expected.3, 7);
        assert_eq!(expected.0[0].0.7, 3, "three unread after the reply");
        let (store, _server, _runtime) = postgres_store();
        assert_eq!(store.copy_from_file(&file).unwrap(), Some(7));
        assert_eq!(seen(&store), expected);
        // Changed here since: a second copy of the same file undoes nothing.
        store
            .apply(
                &[
                    Change::Chat {
                        jid: "1203@g.us".into(),
                        setting: ChatSetting::Pinned(false),
                    },
                    Change::ChatRead {
                        jid: CHAT.into(),
                        unread: 0,
                    },
                ],
                2,
            )
            .unwrap();
        let now = seen(&store);
        assert_eq!(store.copy_from_file(&file).unwrap(), None);
        assert_eq!(seen(&store), now, "copied once only");
        // A copy cut short (its record missing) is done again whole, and merges.
        let fresh = postgres_store();
        fresh.0.copy_from_file(&file).unwrap();
        let key = format!("chat-file:{}", crate::storage::fingerprint(&file).unwrap());
        let client = fresh.2.block_on(async {
            let pool = crate::postgres::connect(&fresh.1.uri("wa")).await.unwrap();
            pool.get().await.unwrap()
        });
        fresh.2.block_on(async {
            client
                .execute("DELETE FROM wa_message_imports WHERE key = $1", &[&key])
                .await
                .unwrap()
        });
        drop(client);
        assert_eq!(fresh.0.copy_from_file(&file).unwrap(), Some(7));
        assert_eq!(seen(&fresh.0), expected, "copied again: nothing twice");
    }

    #[test]
    fn a_read_sees_the_changes_handed_to_the_background_writer() {
        // A runtime whose one blocking thread is busy: the background writer
        // cannot run until the reads are done.
        let busy = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, running) = std::sync::mpsc::channel::<()>();
        busy.spawn_blocking(move || {
            started.send(()).unwrap();
            let _ = held.recv();
        });
        running.recv().unwrap();
        let read_after_write = |store: &std::sync::Arc<MessageStore>| {
            {
                let _on = busy.enter();
                store.apply_in_background(
                    Change::Message(Box::new(message("S", 100, "sent"))),
                    "a sent message",
                );
                store.apply_in_background(
                    Change::Edit {
                        chat: CHAT.into(),
                        edit_id: "S-E".into(),
                        message_id: "S".into(),
                        body: "edited".into(),
                        timestamp: 110,
                    },
                    "an edit",
                );
            }
            let found = store.find("S").unwrap().expect("the send is seen");
            assert_eq!(found.body.as_deref(), Some("edited"));
        };
        let (store, _dir) = store();
        read_after_write(&std::sync::Arc::new(store));
        let (store, _server, _runtime) = postgres_store();
        read_after_write(&store);
        release.send(()).unwrap();
    }

    #[test]
    fn a_nul_in_a_senders_text_never_keeps_a_batch_out() {
        on_each_backend(|store| {
            let mut odd = message("N", 100, "a\0b");
            odd.push_name = Some("Ann\0".into());
            let batch = [
                Change::Message(Box::new(odd)),
                Change::Message(Box::new(message("M", 101, "plain"))),
            ];
            store.apply(&batch, 1).unwrap();
            let stored = store.get(CHAT, "N").unwrap().unwrap();
            // Postgres's text holds no NUL: it reads as U+FFFD there.
            let body = stored.body.unwrap();
            assert!(body == "a\0b" || body == "a\u{FFFD}b", "{body:?}");
            assert_eq!(stored.raw, [9, 9], "the raw message is as it came");
            assert!(store.get(CHAT, "M").unwrap().is_some());
        });
    }

    /// Waits up to 10 s for `done` (background writes), off the runtime.
    fn wait_for(what: &str, done: impl Fn() -> bool) {
        for _ in 0..1000 {
            if done() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("timed out waiting for {what}");
    }

    #[test]
    fn background_writes_keep_their_order() {
        let queue = |store: &std::sync::Arc<MessageStore>, runtime: &tokio::runtime::Handle| {
            // Queued from the runtime, written on its blocking pool.
            let on = runtime.enter();
            for i in 0..200 {
                let id = format!("M{i}");
                store.apply_in_background(
                    Change::Message(Box::new(message(&id, 100 + i, "first"))),
                    "a message",
                );
                // Applied before its message, the revoke would find nothing to clear.
                store.apply_in_background(
                    Change::Revoke {
                        chat: CHAT.into(),
                        message_id: id,
                        timestamp: 300 + i,
                    },
                    "a revoke",
                );
            }
            drop(on);
            wait_for("200 messages", || store.count().unwrap() == 200);
            wait_for("every revoke", || {
                (0..200).all(|i| {
                    let stored = store.get(CHAT, &format!("M{i}")).unwrap().unwrap();
                    stored.revoked_at == Some(300 + i) && stored.body.is_none()
                })
            });
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (store, _dir) = store();
        queue(&std::sync::Arc::new(store), runtime.handle());
        let (store, _server, runtime) = postgres_store();
        queue(&store, runtime.handle());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_that_fails_in_a_background_batch_loses_only_itself() {
        let (store, _dir) = store();
        let store = std::sync::Arc::new(store);
        store
            .sqlite_conn()
            .unwrap()
            .execute_batch(
                "CREATE TEMP TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.id = 'BAD' \
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )
            .unwrap();
        {
            // Held while queueing: the writer waits for it, so all three go in one batch.
            let _busy = store.writing.lock().unwrap();
            for id in ["A", "BAD", "C"] {
                store.apply_in_background(
                    Change::Message(Box::new(message(id, 100, "x"))),
                    "a message",
                );
            }
        }
        wait_until("A and C", || store.count().unwrap() == 2).await;
        assert!(store.get(CHAT, "A").unwrap().is_some());
        assert!(store.get(CHAT, "C").unwrap().is_some());
        assert!(store.get(CHAT, "BAD").unwrap().is_none());
    }

    #[test]
    fn the_migrations_are_valid() {
        sqlite::migrations().validate().unwrap();
    }

    #[test]
    fn a_message_is_stored_once_and_reactions_edits_and_receipts_apply_to_it() {
        on_each_backend(|store| {
            let m = message("A", 100, "hello");
            store
                .apply(&[Change::Message(Box::new(m.clone()))], 1)
                .unwrap();
            // Delivered again: nothing changes.
            store
                .apply(&[Change::Message(Box::new(message("A", 100, "other")))], 2)
                .unwrap();
            assert_eq!(store.get(CHAT, "A").unwrap(), Some(m.clone()));
            assert_eq!(store.count().unwrap(), 1);

            let react = |emoji: &str, t| Change::Reaction {
                chat: CHAT.into(),
                message_id: "A".into(),
                sender: "62822@s.whatsapp.net".into(),
                emoji: emoji.into(),
                timestamp: t,
            };
            store
                .apply(&[react("👍", 101), react("❤", 102)], 3)
                .unwrap();
            assert_eq!(
                store.reactions(CHAT, "A").unwrap(),
                [("62822@s.whatsapp.net".to_owned(), "❤".to_owned())]
            );
            store.apply(&[react("", 103)], 3).unwrap();
            assert!(store.reactions(CHAT, "A").unwrap().is_empty());

            let edit = |edit_id: &str, body: &str, t| Change::Edit {
                chat: CHAT.into(),
                edit_id: edit_id.into(),
                message_id: "A".into(),
                body: body.into(),
                timestamp: t,
            };
            // An older edit arriving late does not win.
            store
                .apply(&[edit("E2", "second", 120), edit("E1", "first", 110)], 4)
                .unwrap();
            let stored = store.get(CHAT, "A").unwrap().unwrap();
            assert_eq!(
                (stored.body.as_deref(), stored.edited_at),
                (Some("second"), Some(120))
            );

            let receipt = Change::Receipt {
                chat: CHAT.into(),
                message_ids: vec!["A".into()],
                kind: "read".into(),
                sender: CHAT.into(),
                timestamp: 130,
            };
            store.apply(&[receipt.clone(), receipt], 5).unwrap();
            assert_eq!(store.receipts(CHAT, "A").unwrap().len(), 1);
        });
    }

    #[test]
    fn a_revoke_clears_the_content_and_keys() {
        on_each_backend(|store| {
            store
                .apply(&[Change::Message(Box::new(message("A", 100, "secret")))], 1)
                .unwrap();
            let revoke = Change::Revoke {
                chat: CHAT.into(),
                message_id: "A".into(),
                timestamp: 140,
            };
            store.apply(&[revoke], 2).unwrap();
            let stored = store.get(CHAT, "A").unwrap().unwrap();
            assert_eq!(stored.revoked_at, Some(140));
            assert_eq!(stored.body, None);
            assert!(stored.raw.is_empty());
            assert_eq!(stored.media, None, "media keys are gone");
        });
    }

    #[test]
    fn retention_prunes_old_messages_and_logout_clears_everything() {
        on_each_backend(|store| {
            store
                .apply(
                    &[
                        Change::Message(Box::new(message("old", 100, "a"))),
                        Change::Message(Box::new(message("new", 200, "b"))),
                    ],
                    1,
                )
                .unwrap();
            assert_eq!(store.prune(150).unwrap(), 1);
            assert!(store.get(CHAT, "old").unwrap().is_none());
            assert!(store.get(CHAT, "new").unwrap().is_some());
            store.clear().unwrap();
            assert_eq!(store.count().unwrap(), 0);
        });
    }
}
