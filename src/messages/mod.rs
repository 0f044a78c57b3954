//! The message store: every message in and out, with what happened to it afterwards
//! (reactions, edits, deletion for everyone) and its receipts, in SQLite
//! (`storages/chat.db`, WAL) through `rusqlite`, schema in `migrations/chat/`.
//! Replies, forwards, media re-downloads and chat history build on it.
//!
//! | file | responsibility |
//! |---|---|
//! | this one | the store and its domain types |
//! | [`from_wa`] | WhatsApp messages, receipts and sends as [`Change`]s |
//!
//! Calls are blocking and short; async callers use the blocking pool.

pub mod from_wa;
pub mod go_import;
pub mod history;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../../migrations/chat/0001_messages.sql")),
        M::up(include_str!("../../migrations/chat/0002_contacts.sql")),
        M::up(include_str!("../../migrations/chat/0003_chat_settings.sql")),
        M::up(include_str!("../../migrations/chat/0004_imports.sql")),
        M::up(include_str!("../../migrations/chat/0005_labels.sql")),
        M::up(include_str!("../../migrations/chat/0006_read_until.sql")),
    ])
}

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
fn like(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

const CHAT_COLUMNS: &str = "jid, name, last_message_at, created_at, updated_at, archived, pinned, ephemeral_expiration, \
     (SELECT COUNT(*) FROM messages m WHERE m.chat_jid = chats.jid AND m.is_from_me = 0 \
      AND m.timestamp > chats.read_until)";

fn chat_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredChat> {
    let last: i64 = r.get(2)?;
    Ok(StoredChat {
        jid: r.get(0)?,
        name: r.get(1)?,
        last_message_at: last,
        created_at: r.get::<_, Option<i64>>(3)?.unwrap_or(last),
        updated_at: r.get::<_, Option<i64>>(4)?.unwrap_or(last),
        archived: r.get(5)?,
        pinned: r.get(6)?,
        expiration: r.get(7)?,
        labels: Vec::new(),
        unread: r.get(8)?,
    })
}

/// The labels of the chat `jid`, by id.
fn labels_of(conn: &rusqlite::Connection, jid: &str) -> rusqlite::Result<Vec<Label>> {
    let mut stmt = conn.prepare_cached(
        "SELECT cl.label_id, COALESCE(l.name, ''), COALESCE(l.color, 0) \
         FROM chat_labels cl LEFT JOIN labels l ON l.id = cl.label_id \
         WHERE cl.chat_jid = ?1 ORDER BY cl.label_id",
    )?;
    let rows = stmt.query_map([jid], |r| {
        Ok(Label {
            id: r.get(0)?,
            name: r.get(1)?,
            color: r.get(2)?,
        })
    })?;
    rows.collect()
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
    /// The blocking task running a call stopped (the runtime is shutting down).
    #[error("message store: {0}")]
    Stopped(String),
}

pub struct MessageStore {
    conn: Mutex<Connection>,
    /// Its file, for the searches' own read-only connections.
    path: std::path::PathBuf,
    /// Changes waiting for the background writer (see
    /// [`MessageStore::apply_in_background`]).
    queued: Mutex<Queued>,
}

/// What [`MessageStore::apply_in_background`] was given and not yet written, and
/// whether a writer task is on its way for it.
#[derive(Default)]
struct Queued {
    changes: Vec<(Change, &'static str)>,
    writer_spawned: bool,
}

impl MessageStore {
    /// Opens (or creates) the store at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(StoreError::Folder)?;
        }
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // Incoming messages are written before WhatsApp gets their ack.
        conn.pragma_update(None, "synchronous", "FULL")?;
        // A page cache of 1 MiB (SQLite's default is 2 MiB) per account: a thousand
        // busy accounts would otherwise hold 2 GB; the kernel caches the file anyway.
        conn.pragma_update(None, "cache_size", -1024)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrations().to_latest(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path: path.to_owned(),
            queued: Mutex::default(),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `changes` in one transaction. Idempotent: WhatsApp may deliver a
    /// message again, and the same change then changes nothing.
    pub fn apply(&self, changes: &[Change], now: i64) -> Result<(), StoreError> {
        Ok(apply_all(&mut self.conn(), changes, now)?)
    }

    /// Gives back the page cache the connection holds (up to its cap): after a
    /// burst such as a history import, which would otherwise keep it filled.
    pub fn shrink_memory(&self) -> Result<(), StoreError> {
        Ok(self.conn().execute_batch("PRAGMA shrink_memory")?)
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

    /// The background writer: everything queued so far in one transaction (one
    /// fsync for a burst of sends), in the order it was queued. It takes the
    /// connection before the queue, so a later writer waits for this one to commit.
    /// If the batch fails, each change is tried on its own, so that one bad change
    /// loses only itself.
    fn write_queued(&self) {
        let mut conn = self.conn();
        let batch = {
            let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
            queued.writer_spawned = false;
            std::mem::take(&mut queued.changes)
        };
        let now = jiff::Timestamp::now().as_second();
        // Nothing written here is owed to WhatsApp (it is this account's own sends,
        // receipts, settings): no fsync per transaction, unlike incoming messages,
        // which are written before their ack. The log still keeps every commit
        // across a crash of the process; a power cut may lose the last ones.
        let _ = conn.pragma_update(None, "synchronous", "NORMAL");
        if apply_all(&mut conn, batch.iter().map(|(change, _)| change), now).is_err() {
            for (change, what) in &batch {
                if let Err(e) = apply_all(&mut conn, [change], now) {
                    tracing::warn!(error = %e, "{what} was not stored");
                }
            }
        }
        let _ = conn.pragma_update(None, "synchronous", "FULL");
    }

    /// One stored message with its latest text.
    pub fn get(&self, chat: &str, id: &str) -> Result<Option<StoredMessage>, StoreError> {
        let conn = self.conn();
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_jid = ?1 AND id = ?2");
        Ok(conn
            .query_row(&sql, params![chat, id], message_from_row)
            .optional()?)
    }

    /// The stored message `id` of any chat (the latest, should two chats share it).
    pub fn find(&self, id: &str) -> Result<Option<StoredMessage>, StoreError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1 ORDER BY timestamp DESC LIMIT 1"
        );
        Ok(conn
            .query_row(&sql, params![id], message_from_row)
            .optional()?)
    }

    /// Removes one message with its reactions, edits and receipts (deleted for me);
    /// whether it was there.
    pub fn forget(&self, chat: &str, id: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for table in ["reactions", "edits", "receipts"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE chat_jid = ?1 AND message_id = ?2"),
                params![chat, id],
            )?;
        }
        let removed = tx.execute(
            "DELETE FROM messages WHERE chat_jid = ?1 AND id = ?2",
            params![chat, id],
        )?;
        tx.execute(
            "UPDATE chats SET message_count = message_count - ?2 WHERE jid = ?1",
            params![chat, removed as i64],
        )?;
        tx.commit()?;
        Ok(removed > 0)
    }

    /// Reactions to a message, as (sender, emoji).
    pub fn reactions(&self, chat: &str, id: &str) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT sender, emoji FROM reactions WHERE chat_jid = ?1 AND message_id = ?2 \
             ORDER BY timestamp, sender",
        )?;
        let rows = stmt.query_map(params![chat, id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Receipts of a message, as (kind, sender).
    pub fn receipts(&self, chat: &str, id: &str) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT kind, sender FROM receipts WHERE chat_jid = ?1 AND message_id = ?2 \
             ORDER BY timestamp, kind",
        )?;
        let rows = stmt.query_map(params![chat, id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many messages are stored.
    pub fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn()
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// A page of chats, latest message first, and how many match.
    pub fn chats(&self, q: &ChatQuery) -> Result<(Vec<StoredChat>, u64), StoreError> {
        let conn = self.conn();
        let filter = "WHERE (?1 IS NULL OR name LIKE ?1 ESCAPE '\\' OR jid LIKE ?1 ESCAPE '\\') \
             AND (?2 IS NULL OR archived = ?2) \
             AND (?3 = 0 OR EXISTS (SELECT 1 FROM messages m \
                  WHERE m.chat_jid = chats.jid AND m.direct_path IS NOT NULL)) \
             AND (?4 = 0 OR EXISTS (SELECT 1 FROM messages m WHERE m.chat_jid = chats.jid \
                  AND m.is_from_me = 0 AND m.timestamp > chats.read_until))";
        let search = q.search.as_deref().map(like);
        let filtered = params![search, q.archived, q.has_media, q.unread_only];
        let total: i64 = conn.query_row(
            &format!("SELECT COUNT(*) FROM chats {filter}"),
            filtered,
            |r| r.get(0),
        )?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {CHAT_COLUMNS} FROM chats {filter} \
             ORDER BY last_message_at DESC, jid LIMIT ?5 OFFSET ?6"
        ))?;
        let paged: Vec<&dyn rusqlite::ToSql> = filtered
            .iter()
            .chain(params![q.limit, q.offset])
            .copied()
            .collect();
        let rows = stmt.query_map(paged.as_slice(), chat_from_row)?;
        let mut chats: Vec<StoredChat> = rows.collect::<Result<_, _>>()?;
        for chat in &mut chats {
            chat.labels = labels_of(&conn, &chat.jid)?;
        }
        Ok((chats, total as u64))
    }

    /// The label `id`, when known.
    pub fn label(&self, id: &str) -> Result<Option<Label>, StoreError> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                "SELECT id, name, color FROM labels WHERE id = ?1",
                [id],
                |r| {
                    Ok(Label {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        color: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    /// One chat.
    pub fn chat(&self, jid: &str) -> Result<Option<StoredChat>, StoreError> {
        let conn = self.conn();
        let chat = conn
            .query_row(
                &format!("SELECT {CHAT_COLUMNS} FROM chats WHERE jid = ?1"),
                params![jid],
                chat_from_row,
            )
            .optional()?;
        match chat {
            Some(mut chat) => {
                chat.labels = labels_of(&conn, jid)?;
                Ok(Some(chat))
            }
            None => Ok(None),
        }
    }

    /// A page of a chat's messages, newest first (without their raw encoding), and
    /// how many match. Only the filters given are in the query, so that the common
    /// listing is answered from the index.
    pub fn messages(
        &self,
        chat: &str,
        q: &MessageQuery,
    ) -> Result<(Vec<StoredMessage>, u64), StoreError> {
        Self::select_messages(&self.conn(), Some(chat), q)
    }

    /// A page of the messages of every chat (or of `chat`) whose text has
    /// `q.search`, newest first, and how many match.
    ///
    /// A search may read every message: it runs on a read-only connection of its
    /// own (WAL lets it read while messages are written), not the store's.
    pub fn search(
        &self,
        chat: Option<&str>,
        q: &MessageQuery,
    ) -> Result<(Vec<StoredMessage>, u64), StoreError> {
        let reader = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        reader.pragma_update(None, "cache_size", -1024)?;
        Self::select_messages(&reader, chat, q)
    }

    /// A page of messages (of `chat`, or of every chat) and how many match.
    fn select_messages(
        conn: &Connection,
        chat: Option<&str>,
        q: &MessageQuery,
    ) -> Result<(Vec<StoredMessage>, u64), StoreError> {
        use rusqlite::types::Value;
        let mut filter = String::from("WHERE 1");
        let mut args: Vec<Value> = Vec::new();
        if let Some(chat) = chat {
            filter.push_str(" AND chat_jid = ?");
            args.push(Value::from(chat.to_owned()));
        }
        if let Some(start) = q.start {
            filter.push_str(" AND timestamp >= ?");
            args.push(Value::from(start));
        }
        if let Some(end) = q.end {
            filter.push_str(" AND timestamp <= ?");
            args.push(Value::from(end));
        }
        if q.media_only {
            filter.push_str(" AND direct_path IS NOT NULL");
        }
        if let Some(from_me) = q.from_me {
            filter.push_str(" AND is_from_me = ?");
            args.push(Value::from(from_me));
        }
        if let Some(search) = &q.search {
            filter.push_str(" AND body LIKE ? ESCAPE '\\'");
            args.push(Value::from(like(search)));
        }
        // Unfiltered, the chat keeps its own count.
        let sql = if chat.is_some() && args.len() == 1 && !q.media_only {
            "SELECT COALESCE((SELECT message_count FROM chats WHERE jid = ?), 0)".to_owned()
        } else {
            format!("SELECT COUNT(*) FROM messages {filter}")
        };
        let total: i64 = conn.query_row(&sql, rusqlite::params_from_iter(&args), |r| r.get(0))?;
        let columns = MESSAGE_COLUMNS.replace(" raw,", " NULL,");
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {columns} FROM messages {filter} \
             ORDER BY timestamp DESC, id DESC LIMIT ? OFFSET ?"
        ))?;
        args.push(Value::from(q.limit));
        args.push(Value::from(q.offset));
        let rows = stmt.query_map(rusqlite::params_from_iter(&args), message_from_row)?;
        Ok((rows.collect::<Result<_, _>>()?, total as u64))
    }

    /// The reactions to the messages `ids` of `chat`, as (sender, emoji, unix
    /// seconds) by message id.
    pub fn reactions_of(
        &self,
        chat: &str,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<StoredReaction>>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT sender, emoji, timestamp FROM reactions WHERE chat_jid = ?1 AND message_id = ?2 \
             ORDER BY timestamp, sender",
        )?;
        let mut out = std::collections::HashMap::new();
        for id in ids {
            let rows =
                stmt.query_map(params![chat, id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            let list: Vec<StoredReaction> = rows.collect::<Result<_, _>>()?;
            if !list.is_empty() {
                out.insert(id.clone(), list);
            }
        }
        Ok(out)
    }

    /// Records a chat setting (the chat is created when not yet known).
    pub fn set_chat(&self, jid: &str, setting: ChatSetting, now: i64) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        apply_one(
            &tx,
            &Change::Chat {
                jid: jid.to_owned(),
                setting,
            },
            now,
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Every known person, by JID.
    pub fn contacts(&self) -> Result<Vec<StoredContact>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT jid, full_name, push_name FROM contacts ORDER BY jid")?;
        let rows = stmt.query_map([], |r| {
            Ok(StoredContact {
                jid: r.get(0)?,
                full_name: r.get(1)?,
                push_name: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes messages older than `before` (unix seconds) with their reactions,
    /// edits and receipts, and chats left empty. Returns how many messages went.
    pub fn prune(&self, before: i64) -> Result<usize, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for table in ["reactions", "edits", "receipts"] {
            tx.execute(
                &format!(
                    "DELETE FROM {table} WHERE (chat_jid, message_id) IN \
                     (SELECT chat_jid, id FROM messages WHERE timestamp < ?1)"
                ),
                params![before],
            )?;
        }
        let removed = tx.execute("DELETE FROM messages WHERE timestamp < ?1", params![before])?;
        tx.execute(
            "DELETE FROM chats WHERE NOT EXISTS \
             (SELECT 1 FROM messages WHERE messages.chat_jid = chats.jid)",
            [],
        )?;
        if removed > 0 {
            tx.execute(
                "UPDATE chats SET message_count = \
                 (SELECT COUNT(*) FROM messages WHERE messages.chat_jid = chats.jid)",
                [],
            )?;
        }
        tx.commit()?;
        Ok(removed)
    }

    /// Whether the import named `key` was done before (see `migrations/chat/0004`).
    pub fn was_imported(&self, key: &str) -> Result<bool, StoreError> {
        let conn = self.conn();
        Ok(conn
            .query_row("SELECT 1 FROM imports WHERE key = ?1", [key], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Remembers that the import named `key` is done.
    pub fn record_import(&self, key: &str) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT OR IGNORE INTO imports (key, imported_at) VALUES (?1, ?2)",
            params![key, jiff::Timestamp::now().as_second()],
        )?;
        Ok(())
    }

    /// Forgets everything: the account logged out. The Go session's import stays
    /// recorded, so a logged-out Go session is not imported again; the Go chat
    /// history's does not, so it comes back for the next account that pairs.
    pub fn clear(&self) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute_batch(
            "BEGIN; DELETE FROM reactions; DELETE FROM edits; DELETE FROM receipts; \
             DELETE FROM messages; DELETE FROM chats; DELETE FROM contacts; \
             DELETE FROM chat_labels; DELETE FROM labels; \
             DELETE FROM imports WHERE key LIKE 'go-chats:%'; COMMIT; VACUUM;",
        )?;
        Ok(())
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

/// The columns [`message_from_row`] reads, in its order.
const MESSAGE_COLUMNS: &str = "chat_jid, id, sender, sender_lid, push_name, timestamp, is_from_me, \
     kind, body, quoted_id, mimetype, file_name, url, direct_path, media_key, file_sha256, \
     file_enc_sha256, file_length, raw, edited_at, revoked_at";

fn message_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredMessage> {
    let direct_path: Option<String> = r.get(13)?;
    let media = direct_path.is_some().then(|| StoredMedia {
        mimetype: r.get(10).ok().flatten(),
        file_name: r.get(11).ok().flatten(),
        url: r.get(12).ok().flatten(),
        direct_path: direct_path.clone(),
        media_key: r.get(14).ok().flatten(),
        file_sha256: r.get(15).ok().flatten(),
        file_enc_sha256: r.get(16).ok().flatten(),
        file_length: r.get::<_, Option<i64>>(17).ok().flatten().map(|l| l as u64),
    });
    Ok(StoredMessage {
        chat: r.get(0)?,
        id: r.get(1)?,
        sender: r.get(2)?,
        sender_lid: r.get(3)?,
        push_name: r.get(4)?,
        timestamp: r.get(5)?,
        is_from_me: r.get(6)?,
        kind: r.get(7)?,
        body: r.get(8)?,
        quoted_id: r.get(9)?,
        media,
        raw: r.get::<_, Option<Vec<u8>>>(18)?.unwrap_or_default(),
        edited_at: r.get(19)?,
        revoked_at: r.get(20)?,
    })
}

fn upsert_contact(
    tx: &rusqlite::Transaction<'_>,
    jid: &str,
    full_name: Option<&str>,
    push_name: Option<&str>,
    now: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO contacts (jid, full_name, push_name, updated_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT(jid) DO UPDATE SET \
         full_name = COALESCE(excluded.full_name, contacts.full_name), \
         push_name = COALESCE(excluded.push_name, contacts.push_name), \
         updated_at = excluded.updated_at",
    )?
    .execute(params![jid, full_name, push_name, now])?;
    Ok(())
}

/// Records `changes` in one transaction.
fn apply_all<'c>(
    conn: &mut Connection,
    changes: impl IntoIterator<Item = &'c Change>,
    now: i64,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for change in changes {
        apply_one(&tx, change, now)?;
    }
    tx.commit()
}

fn apply_one(tx: &rusqlite::Transaction<'_>, change: &Change, now: i64) -> rusqlite::Result<()> {
    match change {
        Change::Message(m) => {
            let media = m.media.clone().unwrap_or_default();
            let inserted = tx.prepare_cached(
                "INSERT OR IGNORE INTO messages (chat_jid, id, sender, sender_lid, push_name, \
                 timestamp, is_from_me, kind, body, quoted_id, mimetype, file_name, url, \
                 direct_path, media_key, file_sha256, file_enc_sha256, file_length, raw, stored_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
                 ?17, ?18, ?19, ?20)",
            )?
            .execute(params![
                m.chat,
                m.id,
                m.sender,
                m.sender_lid,
                m.push_name,
                m.timestamp,
                m.is_from_me,
                m.kind,
                m.body,
                m.quoted_id,
                media.mimetype,
                media.file_name,
                media.url,
                media.direct_path,
                media.media_key,
                media.file_sha256,
                media.file_enc_sha256,
                media.file_length.map(|l| l as i64),
                m.raw,
                now
            ])?;
            let name = m
                .push_name
                .as_deref()
                .filter(|_| !m.is_from_me && !m.chat.ends_with("@g.us"));
            // Writing in a chat reads it: an own message is read up to itself.
            let read_until = if m.is_from_me { m.timestamp } else { 0 };
            tx.prepare_cached(
                "INSERT INTO chats (jid, name, last_message_at, created_at, updated_at, \
                 message_count, read_until) VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6) \
                 ON CONFLICT(jid) DO UPDATE SET \
                 name = COALESCE(excluded.name, chats.name), \
                 last_message_at = MAX(chats.last_message_at, excluded.last_message_at), \
                 updated_at = excluded.updated_at, \
                 message_count = chats.message_count + excluded.message_count, \
                 read_until = MAX(chats.read_until, excluded.read_until)",
            )?
            .execute(params![
                m.chat,
                name,
                m.timestamp,
                now,
                inserted as i64,
                read_until
            ])?;
            if !m.is_from_me
                && m.sender.ends_with("@s.whatsapp.net")
                && let Some(push_name) = &m.push_name
            {
                upsert_contact(tx, &m.sender, None, Some(push_name), now)?;
            }
        }
        Change::ChatName { jid, name } => {
            tx.prepare_cached(
                "INSERT INTO chats (jid, name, last_message_at, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?3, ?3) ON CONFLICT(jid) DO UPDATE SET \
                 name = excluded.name, updated_at = excluded.updated_at",
            )?
            .execute(params![jid, name, now])?;
        }
        Change::Chat { jid, setting } => {
            let (column, value) = match *setting {
                ChatSetting::Pinned(on) => ("pinned", i64::from(on)),
                ChatSetting::Archived(on) => ("archived", i64::from(on)),
                ChatSetting::Expiration(secs) => ("ephemeral_expiration", i64::from(secs)),
            };
            tx.execute(
                &format!(
                    "INSERT INTO chats (jid, last_message_at, created_at, updated_at, {column}) \
                     VALUES (?1, ?2, ?2, ?2, ?3) ON CONFLICT(jid) DO UPDATE SET \
                     {column} = excluded.{column}, updated_at = excluded.updated_at"
                ),
                params![jid, now, value],
            )?;
        }
        Change::Contact {
            jid,
            full_name,
            push_name,
        } => upsert_contact(tx, jid, full_name.as_deref(), push_name.as_deref(), now)?,
        Change::Label {
            id, deleted: true, ..
        } => {
            tx.prepare_cached("DELETE FROM chat_labels WHERE label_id = ?1")?
                .execute([id])?;
            tx.prepare_cached("DELETE FROM labels WHERE id = ?1")?
                .execute([id])?;
        }
        Change::Label {
            id, name, color, ..
        } => {
            tx.prepare_cached(
                "INSERT INTO labels (id, name, color, updated_at) \
                 VALUES (?1, COALESCE(?2, ''), COALESCE(?3, 0), ?4) \
                 ON CONFLICT(id) DO UPDATE SET name = COALESCE(?2, labels.name), \
                 color = COALESCE(?3, labels.color), updated_at = ?4",
            )?
            .execute(params![id, name, color, now])?;
        }
        Change::ChatLabel {
            jid,
            label_id,
            labeled,
        } => {
            let sql = match labeled {
                true => "INSERT OR IGNORE INTO chat_labels (chat_jid, label_id) VALUES (?1, ?2)",
                false => "DELETE FROM chat_labels WHERE chat_jid = ?1 AND label_id = ?2",
            };
            tx.prepare_cached(sql)?.execute([jid, label_id])?;
        }
        Change::Reaction {
            chat,
            message_id,
            sender,
            emoji,
            timestamp,
        } => {
            if emoji.is_empty() {
                tx.prepare_cached(
                    "DELETE FROM reactions WHERE chat_jid = ?1 AND message_id = ?2 AND sender = ?3",
                )?
                .execute(params![chat, message_id, sender])?;
            } else {
                tx.prepare_cached(
                    "INSERT INTO reactions (chat_jid, message_id, sender, emoji, timestamp) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO UPDATE SET \
                     emoji = excluded.emoji, timestamp = excluded.timestamp \
                     WHERE excluded.timestamp >= reactions.timestamp",
                )?
                .execute(params![chat, message_id, sender, emoji, timestamp])?;
            }
        }
        Change::Edit {
            chat,
            edit_id,
            message_id,
            body,
            timestamp,
        } => {
            let new = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO edits (chat_jid, edit_id, message_id, body, edited_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![chat, edit_id, message_id, body, timestamp])?;
            if new > 0 {
                tx.prepare_cached(
                    "UPDATE messages SET body = ?3, edited_at = ?4 \
                     WHERE chat_jid = ?1 AND id = ?2 AND revoked_at IS NULL \
                     AND (edited_at IS NULL OR edited_at <= ?4)",
                )?
                .execute(params![chat, message_id, body, timestamp])?;
            }
        }
        Change::Revoke {
            chat,
            message_id,
            timestamp,
        } => {
            tx.prepare_cached(
                "UPDATE messages SET body = NULL, raw = NULL, url = NULL, direct_path = NULL, \
                 media_key = NULL, file_sha256 = NULL, file_enc_sha256 = NULL, file_name = NULL, \
                 revoked_at = ?3 WHERE chat_jid = ?1 AND id = ?2",
            )?
            .execute(params![chat, message_id, timestamp])?;
            tx.prepare_cached("DELETE FROM edits WHERE chat_jid = ?1 AND message_id = ?2")?
                .execute(params![chat, message_id])?;
        }
        Change::Receipt {
            chat,
            message_ids,
            kind,
            sender,
            timestamp,
        } => {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO receipts (chat_jid, message_id, kind, sender, timestamp) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for id in message_ids {
                insert.execute(params![chat, id, kind, sender, timestamp])?;
            }
            // This account read them (on the phone, or here): the chat is read up
            // to the newest of them.
            if kind == "read-self" {
                let mut read = tx.prepare_cached(
                    "UPDATE chats SET read_until = MAX(read_until, COALESCE( \
                     (SELECT timestamp FROM messages WHERE chat_jid = ?1 AND id = ?2), 0)) \
                     WHERE jid = ?1",
                )?;
                for id in message_ids {
                    read.execute(params![chat, id])?;
                }
            }
        }
        Change::ChatRead { jid, unread: 0 } => {
            tx.prepare_cached(
                "UPDATE chats SET read_until = MAX(read_until, COALESCE((SELECT MAX(timestamp) \
                 FROM messages WHERE chat_jid = ?1 AND is_from_me = 0), 0)) WHERE jid = ?1",
            )?
            .execute([jid])?;
        }
        Change::ChatRead { jid, unread } => {
            // Read up to the incoming message just older than the unread ones, and
            // before the oldest of them even when it has the same second (times
            // are whole seconds): at least `unread` are unread.
            tx.prepare_cached(
                "UPDATE chats SET read_until = MIN( \
                 COALESCE((SELECT timestamp FROM messages WHERE chat_jid = ?1 AND is_from_me = 0 \
                  ORDER BY timestamp DESC LIMIT 1 OFFSET ?2), 0), \
                 COALESCE((SELECT timestamp FROM messages WHERE chat_jid = ?1 AND is_from_me = 0 \
                  ORDER BY timestamp DESC LIMIT 1 OFFSET ?2 - 1), 1) - 1) WHERE jid = ?1",
            )?
            .execute(params![jid, unread])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_named_put_on_chats_taken_off_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = MessageStore::open(&dir.path().join("chat.db")).unwrap();
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
        assert_eq!(labels(&store), [named("1", "New", 3), named("2", "", 0)]);
        // A rename keeps the colour.
        store
            .apply(
                &[label("1", Some("Paid"), None, false), tag("2", false)],
                100,
            )
            .unwrap();
        assert_eq!(labels(&store), [named("1", "Paid", 3)]);
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
        assert!(labels(&store).is_empty());
        assert_eq!(store.label("1").unwrap(), None);
        store
            .apply(
                &[label("4", Some("Later"), None, false), tag("4", true)],
                100,
            )
            .unwrap();
        store.clear().unwrap();
        assert_eq!(store.label("4").unwrap(), None);
    }

    #[test]
    fn a_logout_forgets_the_go_history_import_but_not_the_go_session_import() {
        let dir = tempfile::tempdir().unwrap();
        let store = MessageStore::open(&dir.path().join("chat.db")).unwrap();
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
    }

    #[test]
    fn unread_counts_follow_reads_replies_and_marks() {
        let dir = tempfile::tempdir().unwrap();
        let store = MessageStore::open(&dir.path().join("chat.db")).unwrap();
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
        assert_eq!((unread(&store), unread_chats(&store)), (2, 1));
        // A reply reads what came before it.
        let mut reply = message("R", 120, "ok");
        reply.is_from_me = true;
        store
            .apply(&[Change::Message(Box::new(reply)), incoming("C", 130)], 1)
            .unwrap();
        assert_eq!(unread(&store), 1);
        // Read on the phone (or here): up to that message.
        let read = Change::Receipt {
            chat: chat.into(),
            message_ids: vec!["C".into()],
            kind: "read-self".into(),
            sender: chat.into(),
            timestamp: 140,
        };
        store.apply(&[read], 1).unwrap();
        assert_eq!((unread(&store), unread_chats(&store)), (0, 0));
        // Marked unread: its newest incoming message is unread again; read again.
        let mark = |unread| Change::ChatRead {
            jid: chat.into(),
            unread,
        };
        store.apply(&[mark(1)], 1).unwrap();
        assert_eq!(unread(&store), 1);
        store.apply(&[mark(0)], 1).unwrap();
        assert_eq!(unread(&store), 0);
        // The phone's count (history): the newest two of the three incoming.
        store.apply(&[mark(2)], 1).unwrap();
        assert_eq!(unread(&store), 2);
        store.apply(&[mark(9)], 1).unwrap();
        assert_eq!(unread(&store), 3);
        // Two in the same second (times are whole seconds): marked unread, both
        // are, rather than none.
        store
            .apply(&[mark(0), incoming("D", 150), incoming("E", 150)], 1)
            .unwrap();
        assert_eq!(unread(&store), 2);
        store.apply(&[mark(0)], 1).unwrap();
        store.apply(&[mark(1)], 1).unwrap();
        assert_eq!(unread(&store), 2);
    }

    #[test]
    fn a_search_finds_text_across_chats_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = MessageStore::open(&dir.path().join("chat.db")).unwrap();
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
    }

    fn message(id: &str, timestamp: i64, body: &str) -> StoredMessage {
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

    const CHAT: &str = "62811@s.whatsapp.net";

    #[test]
    fn background_writes_skip_the_fsync_and_leave_incoming_ones_with_it() {
        let (store, _dir) = store();
        let store = std::sync::Arc::new(store);
        let synchronous = |store: &MessageStore| -> i64 {
            store
                .conn()
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

    fn store() -> (MessageStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (
            MessageStore::open(&dir.path().join("chat.db")).unwrap(),
            dir,
        )
    }

    #[test]
    fn senders_become_contacts_and_a_saved_name_outranks_the_push_name() {
        let (store, _dir) = store();
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
            names(&store),
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
            names(&store),
            [(
                CHAT.to_owned(),
                Some("Ann Smith".to_owned()),
                Some("Ann".to_owned())
            )]
        );
        store.clear().unwrap();
        assert!(store.contacts().unwrap().is_empty());
    }

    #[test]
    fn a_chats_total_follows_inserts_repeats_forgets_and_prunes() {
        let (store, _dir) = store();
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
        assert_eq!(total(&store), 5, "a repeat is not counted twice");
        assert!(store.forget(CHAT, "M0").unwrap());
        assert!(!store.forget(CHAT, "M0").unwrap());
        assert_eq!(total(&store), 4);
        assert_eq!(store.prune(102).unwrap(), 1);
        assert_eq!(total(&store), 3);
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn background_writes_keep_their_order() {
        let (store, _dir) = store();
        let store = std::sync::Arc::new(store);
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
        wait_until("200 messages", || store.count().unwrap() == 200).await;
        wait_until("every revoke", || {
            (0..200).all(|i| {
                let stored = store.get(CHAT, &format!("M{i}")).unwrap().unwrap();
                stored.revoked_at == Some(300 + i) && stored.body.is_none()
            })
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_that_fails_in_a_background_batch_loses_only_itself() {
        let (store, _dir) = store();
        let store = std::sync::Arc::new(store);
        store
            .conn()
            .execute_batch(
                "CREATE TEMP TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.id = 'BAD' \
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )
            .unwrap();
        {
            // Held while queueing: the writer waits for it, so all three go in one batch.
            let _busy = store.conn();
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
        migrations().validate().unwrap();
    }

    #[test]
    fn a_message_is_stored_once_and_reactions_edits_and_receipts_apply_to_it() {
        let (store, _dir) = store();
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
    }

    #[test]
    fn a_revoke_clears_the_content_and_keys() {
        let (store, _dir) = store();
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
    }

    #[test]
    fn retention_prunes_old_messages_and_logout_clears_everything() {
        let (store, _dir) = store();
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
    }
}
