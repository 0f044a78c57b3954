//! The message store in SQLite (`storages/chat.db`, WAL) through `rusqlite`,
//! schema in `migrations/chat/`: one file per account, so no statement names the
//! account. [`super::MessageStore`] is the front; this is its default adapter.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};

use super::{
    Change, ChatQuery, ChatSetting, Label, MessageQuery, StoreError, StoredChat, StoredContact,
    StoredMedia, StoredMessage, StoredReaction, like,
};

/// How many changes [`Sqlite::export`] gives at a time.
const EXPORT_BATCH: usize = 500;

/// The changes that make one row again.
type RowChange = fn(&rusqlite::Row<'_>) -> rusqlite::Result<Vec<Change>>;

pub(super) fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../../migrations/chat/0001_messages.sql")),
        M::up(include_str!("../../migrations/chat/0002_contacts.sql")),
        M::up(include_str!("../../migrations/chat/0003_chat_settings.sql")),
        M::up(include_str!("../../migrations/chat/0004_imports.sql")),
        M::up(include_str!("../../migrations/chat/0005_labels.sql")),
        M::up(include_str!("../../migrations/chat/0006_read_until.sql")),
    ])
}

/// One account's store file, behind one connection.
pub(super) struct Sqlite {
    conn: Mutex<Connection>,
    /// Its file, for the searches' own read-only connections.
    path: PathBuf,
}

impl Sqlite {
    /// Opens (or creates) the store at `path` and brings its schema up to date.
    pub(super) fn open(path: &Path) -> Result<Self, StoreError> {
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
        })
    }

    pub(super) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves everything its write-ahead log holds into the file itself.
    pub(super) fn checkpoint(&self) -> Result<(), StoreError> {
        Ok(self
            .conn()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?)
    }

    /// Records `changes` in one transaction, flushed to disk before it returns.
    pub(super) fn apply(&self, changes: &[Change], now: i64) -> Result<(), StoreError> {
        Ok(apply_all(&mut self.conn(), changes, now)?)
    }

    /// Records `changes` in one transaction without the fsync: nothing of these is
    /// owed to WhatsApp (this account's own sends, receipts, settings). The log
    /// still keeps every commit across a crash of the process; a power cut may
    /// lose the last ones.
    pub(super) fn apply_relaxed(&self, changes: &[Change], now: i64) -> Result<(), StoreError> {
        let mut conn = self.conn();
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let applied = apply_all(&mut conn, changes, now);
        // A failure here leaves the next writes flushed less, never lost.
        let _ = conn.pragma_update(None, "synchronous", "FULL");
        Ok(applied?)
    }

    /// Every row of the store as the changes that make it again, given to `each`
    /// in batches (a copy into another store), and the imports it remembers.
    /// Chats come last, so that their read state counts the same messages unread.
    pub(super) fn export(
        &self,
        each: &mut dyn FnMut(Vec<Change>) -> Result<(), StoreError>,
    ) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let tables: [(&str, RowChange); 8] = [
            ("SELECT id, name, color FROM labels", |r| {
                Ok(vec![Change::Label {
                    id: r.get(0)?,
                    name: Some(r.get(1)?),
                    color: Some(r.get(2)?),
                    deleted: false,
                }])
            }),
            (
                &format!("SELECT {MESSAGE_COLUMNS} FROM messages ORDER BY chat_jid, timestamp"),
                |r| Ok(vec![Change::Message(Box::new(message_from_row(r)?))]),
            ),
            (
                "SELECT chat_jid, message_id, sender, emoji, timestamp FROM reactions",
                |r| {
                    Ok(vec![Change::Reaction {
                        chat: r.get(0)?,
                        message_id: r.get(1)?,
                        sender: r.get(2)?,
                        emoji: r.get(3)?,
                        timestamp: r.get(4)?,
                    }])
                },
            ),
            (
                "SELECT chat_jid, edit_id, message_id, body, edited_at FROM edits",
                |r| {
                    Ok(vec![Change::Edit {
                        chat: r.get(0)?,
                        edit_id: r.get(1)?,
                        message_id: r.get(2)?,
                        body: r.get(3)?,
                        timestamp: r.get(4)?,
                    }])
                },
            ),
            (
                "SELECT chat_jid, message_id, kind, sender, timestamp FROM receipts",
                |r| {
                    Ok(vec![Change::Receipt {
                        chat: r.get(0)?,
                        message_ids: vec![r.get(1)?],
                        kind: r.get(2)?,
                        sender: r.get(3)?,
                        timestamp: r.get(4)?,
                    }])
                },
            ),
            ("SELECT jid, full_name, push_name FROM contacts", |r| {
                Ok(vec![Change::Contact {
                    jid: r.get(0)?,
                    full_name: r.get(1)?,
                    push_name: r.get(2)?,
                }])
            }),
            ("SELECT chat_jid, label_id FROM chat_labels", |r| {
                Ok(vec![Change::ChatLabel {
                    jid: r.get(0)?,
                    label_id: r.get(1)?,
                    labeled: true,
                }])
            }),
            (&format!("SELECT {CHAT_COLUMNS} FROM chats"), |r| {
                let chat = chat_from_row(r)?;
                let jid = chat.jid;
                let mut changes = Vec::new();
                if let Some(name) = chat.name {
                    changes.push(Change::ChatName {
                        jid: jid.clone(),
                        name,
                    });
                }
                for (set, setting) in [
                    (chat.pinned, ChatSetting::Pinned(true)),
                    (chat.archived, ChatSetting::Archived(true)),
                    (
                        chat.expiration > 0,
                        ChatSetting::Expiration(chat.expiration),
                    ),
                ] {
                    if set {
                        changes.push(Change::Chat {
                            jid: jid.clone(),
                            setting,
                        });
                    }
                }
                changes.push(Change::ChatRead {
                    jid,
                    unread: chat.unread,
                });
                Ok(changes)
            }),
        ];
        for (sql, to_changes) in tables {
            let mut stmt = conn.prepare(sql)?;
            let mut rows = stmt.query([])?;
            let mut batch = Vec::new();
            while let Some(row) = rows.next()? {
                batch.extend(to_changes(row)?);
                if batch.len() >= EXPORT_BATCH {
                    each(std::mem::take(&mut batch))?;
                }
            }
            if !batch.is_empty() {
                each(batch)?;
            }
        }
        let mut stmt = conn.prepare("SELECT key FROM imports ORDER BY key")?;
        let keys = stmt.query_map([], |r| r.get(0))?;
        Ok(keys.collect::<Result<_, _>>()?)
    }

    /// A page of a chat's messages (or of every chat's) on the store's connection.
    pub(super) fn messages(
        &self,
        chat: Option<&str>,
        q: &MessageQuery,
    ) -> Result<(Vec<StoredMessage>, u64), StoreError> {
        Self::select_messages(&self.conn(), chat, q)
    }

    /// One stored message with its latest text.
    pub(super) fn get(&self, chat: &str, id: &str) -> Result<Option<StoredMessage>, StoreError> {
        let conn = self.conn();
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_jid = ?1 AND id = ?2");
        Ok(conn
            .query_row(&sql, params![chat, id], message_from_row)
            .optional()?)
    }

    /// The stored message `id` of any chat (the latest, should two chats share it).
    pub(super) fn find(&self, id: &str) -> Result<Option<StoredMessage>, StoreError> {
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
    pub(super) fn forget(&self, chat: &str, id: &str) -> Result<bool, StoreError> {
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
    pub(super) fn reactions(
        &self,
        chat: &str,
        id: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT sender, emoji FROM reactions WHERE chat_jid = ?1 AND message_id = ?2 \
             ORDER BY timestamp, sender",
        )?;
        let rows = stmt.query_map(params![chat, id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Receipts of a message, as (kind, sender).
    pub(super) fn receipts(
        &self,
        chat: &str,
        id: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT kind, sender FROM receipts WHERE chat_jid = ?1 AND message_id = ?2 \
             ORDER BY timestamp, kind",
        )?;
        let rows = stmt.query_map(params![chat, id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many messages are stored.
    pub(super) fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn()
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// A page of chats, latest message first, and how many match.
    pub(super) fn chats(&self, q: &ChatQuery) -> Result<(Vec<StoredChat>, u64), StoreError> {
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
    pub(super) fn label(&self, id: &str) -> Result<Option<Label>, StoreError> {
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
    pub(super) fn chat(&self, jid: &str) -> Result<Option<StoredChat>, StoreError> {
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

    /// A page of the messages of every chat (or of `chat`) whose text has
    /// `q.search`, newest first, and how many match.
    ///
    /// A search may read every message: it runs on a read-only connection of its
    /// own (WAL lets it read while messages are written), not the store's.
    pub(super) fn search(
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
    pub(super) fn reactions_of(
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

    /// Every known person, by JID.
    pub(super) fn contacts(&self) -> Result<Vec<StoredContact>, StoreError> {
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
    pub(super) fn prune(&self, before: i64) -> Result<usize, StoreError> {
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
    pub(super) fn was_imported(&self, key: &str) -> Result<bool, StoreError> {
        let conn = self.conn();
        Ok(conn
            .query_row("SELECT 1 FROM imports WHERE key = ?1", [key], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Remembers that the import named `key` is done.
    pub(super) fn record_import(&self, key: &str) -> Result<(), StoreError> {
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
    pub(super) fn clear(&self) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute_batch(
            "BEGIN; DELETE FROM reactions; DELETE FROM edits; DELETE FROM receipts; \
             DELETE FROM messages; DELETE FROM chats; DELETE FROM contacts; \
             DELETE FROM chat_labels; DELETE FROM labels; \
             DELETE FROM imports WHERE key LIKE 'go-chats:%'; COMMIT; VACUUM;",
        )?;
        Ok(())
    }

    /// Gives back the page cache the connection holds (up to its cap): after a
    /// burst such as a history import, which would otherwise keep it filled.
    pub(super) fn shrink_memory(&self) -> Result<(), StoreError> {
        Ok(self.conn().execute_batch("PRAGMA shrink_memory")?)
    }
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
                 direct_path, media_key, file_sha256, file_enc_sha256, file_length, raw, stored_at, \
                 edited_at, revoked_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
                 ?17, ?18, ?19, ?20, ?21, ?22)",
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
                now,
                m.edited_at,
                m.revoked_at
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
