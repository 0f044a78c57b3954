//! One account's message store in PostgreSQL, beside the other accounts' in the
//! same tables (`migrations/postgres/V5__messages.sql`): the same store as the
//! SQLite adapter of [`MessageStore`](crate::messages::MessageStore), with the same
//! rules (idempotent changes, each chat's message count kept with every insert and
//! delete, unread counts from how far a chat is read, retention, logout), every
//! statement naming the account, its subqueries included.
//!
//! Text searches are ILIKE with the wildcards of the searched text escaped, as
//! SQLite's LIKE (case-insensitive; ILIKE also folds non-ASCII letters, which
//! SQLite's LIKE does not). Keys compare byte-wise (`COLLATE "C"`), so listings
//! come in SQLite's order.
//!
//! The writes of one account (an incoming batch, a background write, a prune)
//! take turns on a transaction advisory lock of that account, as SQLite lets one
//! writer in at a time: two batches touching the same chats in opposite orders
//! would otherwise deadlock, and Postgres would abort one of them.

use std::collections::HashMap;

use deadpool_postgres::{Object, Pool, Transaction};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::messages::{
    Change, ChatQuery, ChatSetting, Label, MessageQuery, StoreError, StoredChat, StoredContact,
    StoredMedia, StoredMessage, StoredReaction,
};

/// The first key of the accounts' write locks ("wams"); the second is a hash of
/// the account (two accounts whose names hash alike only take turns).
const WRITE_LOCK: i32 = 0x7761_6d73;

/// Every table of the message store (`migrations/postgres/V5`), children before
/// parents.
pub const MESSAGE_TABLES: &[&str] = &[
    "wa_reactions",
    "wa_edits",
    "wa_receipts",
    "wa_messages",
    "wa_chat_labels",
    "wa_labels",
    "wa_chats",
    "wa_contacts",
    "wa_message_imports",
];

type Param<'a> = &'a (dyn ToSql + Sync);

fn pg(e: tokio_postgres::Error) -> StoreError {
    StoreError::Postgres(super::described(&e))
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Postgres(super::described(&e))
}

/// Why a batch was not written: the database refused a statement (which
/// [`PgMessages::apply`] may try again otherwise), or anything else.
enum Refused {
    Db(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Refused {
    fn from(e: tokio_postgres::Error) -> Self {
        Refused::Db(e)
    }
}

impl From<Refused> for StoreError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Db(e) => pg(e),
            Refused::Store(e) => e,
        }
    }
}

/// `change` with every NUL character of its text replaced by U+FFFD.
fn without_nul(mut change: Change) -> Change {
    fn fix(text: &mut String) {
        if text.contains('\0') {
            *text = text.replace('\0', "\u{FFFD}");
        }
    }
    fn fix_some(text: &mut Option<String>) {
        if let Some(text) = text {
            fix(text);
        }
    }
    match &mut change {
        Change::Message(m) => {
            for text in [&mut m.chat, &mut m.id, &mut m.sender, &mut m.kind] {
                fix(text);
            }
            for text in [
                &mut m.sender_lid,
                &mut m.push_name,
                &mut m.body,
                &mut m.quoted_id,
            ] {
                fix_some(text);
            }
            if let Some(media) = &mut m.media {
                for text in [
                    &mut media.mimetype,
                    &mut media.file_name,
                    &mut media.url,
                    &mut media.direct_path,
                ] {
                    fix_some(text);
                }
            }
        }
        Change::Reaction {
            chat,
            message_id,
            sender,
            emoji,
            ..
        } => {
            for text in [chat, message_id, sender, emoji] {
                fix(text);
            }
        }
        Change::Edit {
            chat,
            edit_id,
            message_id,
            body,
            ..
        } => {
            for text in [chat, edit_id, message_id, body] {
                fix(text);
            }
        }
        Change::Revoke {
            chat, message_id, ..
        } => {
            fix(chat);
            fix(message_id);
        }
        Change::Receipt {
            chat,
            message_ids,
            kind,
            sender,
            ..
        } => {
            for text in [chat, kind, sender]
                .into_iter()
                .chain(message_ids.iter_mut())
            {
                fix(text);
            }
        }
        Change::ChatName { jid, name } => {
            fix(jid);
            fix(name);
        }
        Change::Chat { jid, .. } | Change::ChatRead { jid, .. } => fix(jid),
        Change::Label { id, name, .. } => {
            fix(id);
            fix_some(name);
        }
        Change::ChatLabel { jid, label_id, .. } => {
            fix(jid);
            fix(label_id);
        }
        Change::Contact {
            jid,
            full_name,
            push_name,
        } => {
            fix(jid);
            fix_some(full_name);
            fix_some(push_name);
        }
    }
    change
}

/// The columns [`chat_from_row`] reads, in its order, selected `FROM wa_chats`:
/// the unread count is of the chat's incoming messages after `read_until`.
const CHAT_COLUMNS: &str = "jid, name, last_message_at, created_at, updated_at, archived, pinned, \
     ephemeral_expiration, (SELECT COUNT(*) FROM wa_messages m \
      WHERE m.account = wa_chats.account AND m.chat_jid = wa_chats.jid \
      AND NOT m.is_from_me AND m.timestamp > wa_chats.read_until)";

/// Which chats a listing takes: $1 the account, $2 the search pattern (NULL: all),
/// $3 archived or not (NULL: both), $4 only with media, $5 only unread.
const CHAT_FILTER: &str = "WHERE account = $1 \
     AND ($2::text IS NULL OR name ILIKE $2 ESCAPE '\\' OR jid ILIKE $2 ESCAPE '\\') \
     AND ($3::boolean IS NULL OR archived = $3) \
     AND (NOT $4::boolean OR EXISTS (SELECT 1 FROM wa_messages m \
          WHERE m.account = wa_chats.account AND m.chat_jid = wa_chats.jid \
          AND m.direct_path IS NOT NULL)) \
     AND (NOT $5::boolean OR EXISTS (SELECT 1 FROM wa_messages m \
          WHERE m.account = wa_chats.account AND m.chat_jid = wa_chats.jid \
          AND NOT m.is_from_me AND m.timestamp > wa_chats.read_until))";

/// The columns [`message_from_row`] reads, in its order.
const MESSAGE_COLUMNS: &str = "chat_jid, id, sender, sender_lid, push_name, timestamp, is_from_me, \
     kind, body, quoted_id, mimetype, file_name, url, direct_path, media_key, file_sha256, \
     file_enc_sha256, file_length, raw, edited_at, revoked_at";

fn chat_from_row(r: &Row) -> Result<StoredChat, tokio_postgres::Error> {
    let last: i64 = r.try_get(2)?;
    Ok(StoredChat {
        jid: r.try_get(0)?,
        name: r.try_get(1)?,
        last_message_at: last,
        created_at: r.try_get::<_, Option<i64>>(3)?.unwrap_or(last),
        updated_at: r.try_get::<_, Option<i64>>(4)?.unwrap_or(last),
        archived: r.try_get(5)?,
        pinned: r.try_get(6)?,
        expiration: r.try_get::<_, i64>(7)? as u32,
        labels: Vec::new(),
        unread: r.try_get::<_, i64>(8)? as u32,
    })
}

fn message_from_row(r: &Row) -> Result<StoredMessage, tokio_postgres::Error> {
    let direct_path: Option<String> = r.try_get(13)?;
    let media = match direct_path {
        Some(direct_path) => Some(StoredMedia {
            mimetype: r.try_get(10)?,
            file_name: r.try_get(11)?,
            url: r.try_get(12)?,
            direct_path: Some(direct_path),
            media_key: r.try_get(14)?,
            file_sha256: r.try_get(15)?,
            file_enc_sha256: r.try_get(16)?,
            file_length: r.try_get::<_, Option<i64>>(17)?.map(|l| l as u64),
        }),
        None => None,
    };
    Ok(StoredMessage {
        chat: r.try_get(0)?,
        id: r.try_get(1)?,
        sender: r.try_get(2)?,
        sender_lid: r.try_get(3)?,
        push_name: r.try_get(4)?,
        timestamp: r.try_get(5)?,
        is_from_me: r.try_get(6)?,
        kind: r.try_get(7)?,
        body: r.try_get(8)?,
        quoted_id: r.try_get(9)?,
        media,
        raw: r.try_get::<_, Option<Vec<u8>>>(18)?.unwrap_or_default(),
        edited_at: r.try_get(19)?,
        revoked_at: r.try_get(20)?,
    })
}

/// The first two columns of a row, as strings.
fn pair(r: &Row) -> Result<(String, String), tokio_postgres::Error> {
    Ok((r.try_get(0)?, r.try_get(1)?))
}

/// The labels of the chats `jids` of `account`, by chat, each chat's by label id.
async fn labels_of(
    client: &Object,
    account: &str,
    jids: &[&str],
) -> Result<HashMap<String, Vec<Label>>, tokio_postgres::Error> {
    let mut labels: HashMap<String, Vec<Label>> = HashMap::new();
    if jids.is_empty() {
        return Ok(labels);
    }
    let statement = client
        .prepare_cached(
            "SELECT cl.chat_jid, cl.label_id, COALESCE(l.name, ''), COALESCE(l.color, 0) \
             FROM wa_chat_labels cl \
             LEFT JOIN wa_labels l ON l.account = cl.account AND l.id = cl.label_id \
             WHERE cl.account = $1 AND cl.chat_jid = ANY($2::text[]) \
             ORDER BY cl.chat_jid, cl.label_id",
        )
        .await?;
    for row in client.query(&statement, &[&account, &jids]).await? {
        let chat: String = row.try_get(0)?;
        labels.entry(chat).or_default().push(Label {
            id: row.try_get(1)?,
            name: row.try_get(2)?,
            color: row.try_get(3)?,
        });
    }
    Ok(labels)
}

/// The message store of the account `account` in the database of `pool`.
#[derive(Clone)]
pub struct PgMessages {
    pool: Pool,
    account: String,
}

impl std::fmt::Debug for PgMessages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgMessages({})", self.account)
    }
}

impl PgMessages {
    /// The store of `account`. The schema is the pool's (`postgres::connect`
    /// migrated it).
    pub fn new(pool: Pool, account: impl Into<String>) -> Self {
        Self {
            pool,
            account: account.into(),
        }
    }

    /// The account whose rows this store reads and writes.
    pub fn account(&self) -> &str {
        &self.account
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(pool_err)
    }

    /// A transaction holding the account's write lock until it ends.
    async fn writing<'c>(&self, client: &'c mut Object) -> Result<Transaction<'c>, StoreError> {
        let tx = client.transaction().await.map_err(pg)?;
        let lock = tx
            .prepare_cached("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .await
            .map_err(pg)?;
        tx.execute(&lock, &[&WRITE_LOCK, &self.account])
            .await
            .map_err(pg)?;
        Ok(tx)
    }

    /// Deletes every row of the account (it is removed), in one transaction.
    pub async fn forget_all(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = self.writing(&mut client).await?;
        forget_account(&tx, &self.account).await.map_err(pg)?;
        tx.commit().await.map_err(pg)
    }

    /// Records `changes` in one transaction, idempotent like SQLite's: WhatsApp
    /// may deliver a message again, and the same change then changes nothing.
    /// With `durable`, the commit waits for the WAL flush (`SET LOCAL
    /// synchronous_commit = on`; the pool's sessions default to off): incoming
    /// messages are written before WhatsApp gets their ack.
    ///
    /// Postgres's text holds no NUL character, which a sender may put in a
    /// message, a name or a file name: a batch refused for one is written again
    /// with each NUL replaced by U+FFFD (the raw message keeps the original).
    pub async fn apply(
        &self,
        changes: &[Change],
        now: i64,
        durable: bool,
    ) -> Result<(), StoreError> {
        match self.apply_once(changes, now, durable).await {
            Err(Refused::Db(e))
                if e.code()
                    == Some(&tokio_postgres::error::SqlState::CHARACTER_NOT_IN_REPERTOIRE) =>
            {
                let clean: Vec<Change> = changes.iter().cloned().map(without_nul).collect();
                self.apply_once(&clean, now, durable)
                    .await
                    .map_err(Refused::into)
            }
            other => other.map_err(Refused::into),
        }
    }

    async fn apply_once(&self, changes: &[Change], now: i64, durable: bool) -> Result<(), Refused> {
        let mut client = self.client().await.map_err(Refused::Store)?;
        let tx = self.writing(&mut client).await.map_err(Refused::Store)?;
        if durable {
            tx.batch_execute("SET LOCAL synchronous_commit = on")
                .await?;
        }
        for change in changes {
            apply_one(&tx, &self.account, change, now).await?;
        }
        Ok(tx.commit().await?)
    }

    /// The first message `sql` selects ([`MESSAGE_COLUMNS`]) with `params`.
    async fn one_message(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Option<StoredMessage>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(pg)?;
        match client.query_opt(&statement, params).await.map_err(pg)? {
            Some(row) => Ok(Some(message_from_row(&row).map_err(pg)?)),
            None => Ok(None),
        }
    }

    /// One stored message with its latest text.
    pub async fn get(&self, chat: &str, id: &str) -> Result<Option<StoredMessage>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM wa_messages \
             WHERE account = $1 AND chat_jid = $2 AND id = $3"
        );
        self.one_message(&sql, &[&self.account, &chat, &id]).await
    }

    /// The stored message `id` of any chat (the latest, should two chats share it).
    pub async fn find(&self, id: &str) -> Result<Option<StoredMessage>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM wa_messages WHERE account = $1 AND id = $2 \
             ORDER BY timestamp DESC LIMIT 1"
        );
        self.one_message(&sql, &[&self.account, &id]).await
    }

    /// Removes one message with its reactions, edits and receipts (deleted for me);
    /// whether it was there.
    pub async fn forget(&self, chat: &str, id: &str) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = self.writing(&mut client).await?;
        for table in ["wa_reactions", "wa_edits", "wa_receipts"] {
            let statement = tx
                .prepare_cached(&format!(
                    "DELETE FROM {table} WHERE account = $1 AND chat_jid = $2 AND message_id = $3"
                ))
                .await
                .map_err(pg)?;
            tx.execute(&statement, &[&self.account, &chat, &id])
                .await
                .map_err(pg)?;
        }
        let statement = tx
            .prepare_cached(
                "DELETE FROM wa_messages WHERE account = $1 AND chat_jid = $2 AND id = $3",
            )
            .await
            .map_err(pg)?;
        let removed = tx
            .execute(&statement, &[&self.account, &chat, &id])
            .await
            .map_err(pg)?;
        let statement = tx
            .prepare_cached(
                "UPDATE wa_chats SET message_count = message_count - $3 \
                 WHERE account = $1 AND jid = $2",
            )
            .await
            .map_err(pg)?;
        let count = removed as i64;
        tx.execute(&statement, &[&self.account, &chat, &count])
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(removed > 0)
    }

    /// The rows of two columns `sql` selects with the account, `chat` and `id`.
    async fn pairs(
        &self,
        sql: &str,
        chat: &str,
        id: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(pg)?;
        let rows = client
            .query(&statement, &[&self.account, &chat, &id])
            .await
            .map_err(pg)?;
        rows.iter()
            .map(pair)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pg)
    }

    /// Reactions to a message, as (sender, emoji).
    pub async fn reactions(
        &self,
        chat: &str,
        id: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.pairs(
            "SELECT sender, emoji FROM wa_reactions \
             WHERE account = $1 AND chat_jid = $2 AND message_id = $3 \
             ORDER BY timestamp, sender",
            chat,
            id,
        )
        .await
    }

    /// Receipts of a message, as (kind, sender).
    pub async fn receipts(
        &self,
        chat: &str,
        id: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.pairs(
            "SELECT kind, sender FROM wa_receipts \
             WHERE account = $1 AND chat_jid = $2 AND message_id = $3 \
             ORDER BY timestamp, kind",
            chat,
            id,
        )
        .await
    }

    /// How many messages are stored.
    pub async fn count(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT COUNT(*) FROM wa_messages WHERE account = $1")
            .await
            .map_err(pg)?;
        let n: i64 = client
            .query_one(&statement, &[&self.account])
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?;
        Ok(n.max(0) as u64)
    }

    /// A page of chats, latest message first, and how many match.
    pub async fn chats(&self, q: &ChatQuery) -> Result<(Vec<StoredChat>, u64), StoreError> {
        let search = q.search.as_deref().map(crate::messages::like);
        let limit = i64::from(q.limit);
        let offset = i64::from(q.offset);
        let client = self.client().await?;
        let filtered: [Param<'_>; 5] = [
            &self.account,
            &search,
            &q.archived,
            &q.has_media,
            &q.unread_only,
        ];
        let count = client
            .prepare_cached(&format!("SELECT COUNT(*) FROM wa_chats {CHAT_FILTER}"))
            .await
            .map_err(pg)?;
        let total: i64 = client
            .query_one(&count, &filtered)
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?;
        let page = client
            .prepare_cached(&format!(
                "SELECT {CHAT_COLUMNS} FROM wa_chats {CHAT_FILTER} \
                 ORDER BY last_message_at DESC, jid LIMIT $6 OFFSET $7"
            ))
            .await
            .map_err(pg)?;
        let paged: [Param<'_>; 7] = [
            &self.account,
            &search,
            &q.archived,
            &q.has_media,
            &q.unread_only,
            &limit,
            &offset,
        ];
        let rows = client.query(&page, &paged).await.map_err(pg)?;
        let mut chats = rows
            .iter()
            .map(chat_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pg)?;
        let mut labels = {
            let jids: Vec<&str> = chats.iter().map(|c| c.jid.as_str()).collect();
            labels_of(&client, &self.account, &jids).await.map_err(pg)?
        };
        for chat in &mut chats {
            chat.labels = labels.remove(&chat.jid).unwrap_or_default();
        }
        Ok((chats, total.max(0) as u64))
    }

    /// The label `id`, when known.
    pub async fn label(&self, id: &str) -> Result<Option<Label>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT id, name, color FROM wa_labels WHERE account = $1 AND id = $2")
            .await
            .map_err(pg)?;
        let Some(row) = client
            .query_opt(&statement, &[&self.account, &id])
            .await
            .map_err(pg)?
        else {
            return Ok(None);
        };
        let label = Label {
            id: row.try_get(0).map_err(pg)?,
            name: row.try_get(1).map_err(pg)?,
            color: row.try_get(2).map_err(pg)?,
        };
        Ok(Some(label))
    }

    /// One chat.
    pub async fn chat(&self, jid: &str) -> Result<Option<StoredChat>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {CHAT_COLUMNS} FROM wa_chats WHERE account = $1 AND jid = $2"
            ))
            .await
            .map_err(pg)?;
        let Some(row) = client
            .query_opt(&statement, &[&self.account, &jid])
            .await
            .map_err(pg)?
        else {
            return Ok(None);
        };
        let mut chat = chat_from_row(&row).map_err(pg)?;
        chat.labels = labels_of(&client, &self.account, &[jid])
            .await
            .map_err(pg)?
            .remove(jid)
            .unwrap_or_default();
        Ok(Some(chat))
    }

    /// A page of messages (of `chat`, or of every chat: the search) newest first,
    /// without their raw encoding, and how many match. Only the filters given are
    /// in the query, so that the common listing is answered from the index; a
    /// chat's unfiltered total is its kept count.
    pub async fn messages(
        &self,
        chat: Option<&str>,
        q: &MessageQuery,
    ) -> Result<(Vec<StoredMessage>, u64), StoreError> {
        let pattern = q.search.as_deref().map(crate::messages::like);
        let limit = i64::from(q.limit);
        let offset = i64::from(q.offset);
        let mut args: Vec<Param<'_>> = Vec::new();
        args.push(&self.account);
        let mut filter = String::from("WHERE account = $1");
        if let Some(chat) = &chat {
            args.push(chat);
            filter.push_str(&format!(" AND chat_jid = ${}", args.len()));
        }
        if let Some(start) = &q.start {
            args.push(start);
            filter.push_str(&format!(" AND timestamp >= ${}", args.len()));
        }
        if let Some(end) = &q.end {
            args.push(end);
            filter.push_str(&format!(" AND timestamp <= ${}", args.len()));
        }
        if q.media_only {
            filter.push_str(" AND direct_path IS NOT NULL");
        }
        if let Some(from_me) = &q.from_me {
            args.push(from_me);
            filter.push_str(&format!(" AND is_from_me = ${}", args.len()));
        }
        if let Some(pattern) = &pattern {
            args.push(pattern);
            filter.push_str(&format!(" AND body ILIKE ${} ESCAPE '\\'", args.len()));
        }
        let client = self.client().await?;
        // Unfiltered, the chat keeps its own count.
        let counted = if chat.is_some() && args.len() == 2 && !q.media_only {
            let statement = client
                .prepare_cached(
                    "SELECT COALESCE((SELECT message_count FROM wa_chats \
                     WHERE account = $1 AND jid = $2), 0)",
                )
                .await
                .map_err(pg)?;
            client.query_one(&statement, &args[..]).await
        } else {
            let sql = format!("SELECT COUNT(*) FROM wa_messages {filter}");
            client.query_one(&sql, &args[..]).await
        };
        let total: i64 = counted.map_err(pg)?.try_get(0).map_err(pg)?;
        args.push(&limit);
        let limit_at = args.len();
        args.push(&offset);
        let offset_at = args.len();
        let columns = MESSAGE_COLUMNS.replace(" raw,", " NULL::bytea,");
        let sql = format!(
            "SELECT {columns} FROM wa_messages {filter} \
             ORDER BY timestamp DESC, id DESC LIMIT ${limit_at} OFFSET ${offset_at}"
        );
        let rows = client.query(&sql, &args[..]).await.map_err(pg)?;
        let messages = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pg)?;
        Ok((messages, total.max(0) as u64))
    }

    /// The reactions to the messages `ids` of `chat`, as (sender, emoji, unix
    /// seconds) by message id.
    pub async fn reactions_of(
        &self,
        chat: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<StoredReaction>>, StoreError> {
        let mut out: HashMap<String, Vec<StoredReaction>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT message_id, sender, emoji, timestamp FROM wa_reactions \
                 WHERE account = $1 AND chat_jid = $2 AND message_id = ANY($3::text[]) \
                 ORDER BY timestamp, sender",
            )
            .await
            .map_err(pg)?;
        let rows = client
            .query(&statement, &[&self.account, &chat, &ids])
            .await
            .map_err(pg)?;
        for row in rows {
            let id: String = row.try_get(0).map_err(pg)?;
            let reaction: StoredReaction = (
                row.try_get(1).map_err(pg)?,
                row.try_get(2).map_err(pg)?,
                row.try_get(3).map_err(pg)?,
            );
            out.entry(id).or_default().push(reaction);
        }
        Ok(out)
    }

    /// Every known person, by JID.
    pub async fn contacts(&self) -> Result<Vec<StoredContact>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT jid, full_name, push_name FROM wa_contacts WHERE account = $1 ORDER BY jid",
            )
            .await
            .map_err(pg)?;
        let rows = client
            .query(&statement, &[&self.account])
            .await
            .map_err(pg)?;
        let mut contacts = Vec::with_capacity(rows.len());
        for row in rows {
            contacts.push(StoredContact {
                jid: row.try_get(0).map_err(pg)?,
                full_name: row.try_get(1).map_err(pg)?,
                push_name: row.try_get(2).map_err(pg)?,
            });
        }
        Ok(contacts)
    }

    /// Deletes messages older than `before` (unix seconds) with their reactions,
    /// edits and receipts, and chats left empty. Returns how many messages went.
    pub async fn prune(&self, before: i64) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = self.writing(&mut client).await?;
        for table in ["wa_reactions", "wa_edits", "wa_receipts"] {
            let statement = tx
                .prepare_cached(&format!(
                    "DELETE FROM {table} WHERE account = $1 AND (chat_jid, message_id) IN \
                     (SELECT chat_jid, id FROM wa_messages WHERE account = $1 AND timestamp < $2)"
                ))
                .await
                .map_err(pg)?;
            tx.execute(&statement, &[&self.account, &before])
                .await
                .map_err(pg)?;
        }
        let statement = tx
            .prepare_cached("DELETE FROM wa_messages WHERE account = $1 AND timestamp < $2")
            .await
            .map_err(pg)?;
        let removed = tx
            .execute(&statement, &[&self.account, &before])
            .await
            .map_err(pg)?;
        let statement = tx
            .prepare_cached(
                "DELETE FROM wa_chats c WHERE c.account = $1 AND NOT EXISTS \
                 (SELECT 1 FROM wa_messages m WHERE m.account = c.account AND m.chat_jid = c.jid)",
            )
            .await
            .map_err(pg)?;
        tx.execute(&statement, &[&self.account]).await.map_err(pg)?;
        if removed > 0 {
            let statement = tx
                .prepare_cached(
                    "UPDATE wa_chats c SET message_count = (SELECT COUNT(*) FROM wa_messages m \
                     WHERE m.account = c.account AND m.chat_jid = c.jid) WHERE c.account = $1",
                )
                .await
                .map_err(pg)?;
            tx.execute(&statement, &[&self.account]).await.map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(usize::try_from(removed).unwrap_or(usize::MAX))
    }

    /// Whether the import named `key` was done before.
    pub async fn was_imported(&self, key: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT 1 FROM wa_message_imports WHERE account = $1 AND key = $2")
            .await
            .map_err(pg)?;
        let found = client
            .query_opt(&statement, &[&self.account, &key])
            .await
            .map_err(pg)?;
        Ok(found.is_some())
    }

    /// Remembers that the import named `key` is done.
    /// Durable before it returns: what it records may be deleted next (a moved
    /// file).
    pub async fn record_import(&self, key: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.batch_execute("SET LOCAL synchronous_commit = on")
            .await
            .map_err(pg)?;
        let statement = tx
            .prepare_cached(
                "INSERT INTO wa_message_imports (account, key, imported_at) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .await
            .map_err(pg)?;
        let now = jiff::Timestamp::now().as_second();
        tx.execute(&statement, &[&self.account, &key, &now])
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)
    }

    /// Forgets everything of the account (it logged out), in one transaction. The
    /// other imports stay recorded (a logged-out Go session is not imported
    /// again, a moved file not copied again); the Go chat history's
    /// ('go-chats:…') does not (the servers' own record of it, `wa_imports`,
    /// stays).
    pub async fn clear(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = self.writing(&mut client).await?;
        for table in MESSAGE_TABLES {
            let sql = match *table {
                "wa_message_imports" => {
                    "DELETE FROM wa_message_imports WHERE account = $1 AND key LIKE 'go-chats:%'"
                        .to_owned()
                }
                table => format!("DELETE FROM {table} WHERE account = $1"),
            };
            tx.execute(&sql, &[&self.account]).await.map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }
}

/// Deletes every row of `account` in every [`MESSAGE_TABLES`] table, in `tx` (the
/// account is removed).
pub async fn forget_account(
    tx: &Transaction<'_>,
    account: &str,
) -> Result<(), tokio_postgres::Error> {
    for table in MESSAGE_TABLES {
        let sql = format!("DELETE FROM {table} WHERE account = $1");
        tx.execute(&sql, &[&account]).await?;
    }
    Ok(())
}

async fn upsert_contact(
    tx: &Transaction<'_>,
    account: &str,
    jid: &str,
    full_name: Option<&str>,
    push_name: Option<&str>,
    now: i64,
) -> Result<(), tokio_postgres::Error> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO wa_contacts (account, jid, full_name, push_name, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (account, jid) DO UPDATE SET \
             full_name = COALESCE(excluded.full_name, wa_contacts.full_name), \
             push_name = COALESCE(excluded.push_name, wa_contacts.push_name), \
             updated_at = excluded.updated_at",
        )
        .await?;
    tx.execute(&statement, &[&account, &jid, &full_name, &push_name, &now])
        .await?;
    Ok(())
}

/// Records one change of `account` in `tx` (SQLite's `apply_one`, statement by
/// statement).
async fn apply_one(
    tx: &Transaction<'_>,
    account: &str,
    change: &Change,
    now: i64,
) -> Result<(), tokio_postgres::Error> {
    match change {
        Change::Message(m) => {
            let media = m.media.clone().unwrap_or_default();
            let file_length = media.file_length.map(|l| l as i64);
            let insert = tx
                .prepare_cached(
                    "INSERT INTO wa_messages (account, chat_jid, id, sender, sender_lid, \
                     push_name, timestamp, is_from_me, kind, body, quoted_id, mimetype, \
                     file_name, url, direct_path, media_key, file_sha256, file_enc_sha256, \
                     file_length, raw, edited_at, revoked_at, stored_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                     $16, $17, $18, $19, $20, $21, $22, $23) \
                     ON CONFLICT DO NOTHING",
                )
                .await?;
            let inserted = tx
                .execute(
                    &insert,
                    &[
                        &account,
                        &m.chat,
                        &m.id,
                        &m.sender,
                        &m.sender_lid,
                        &m.push_name,
                        &m.timestamp,
                        &m.is_from_me,
                        &m.kind,
                        &m.body,
                        &m.quoted_id,
                        &media.mimetype,
                        &media.file_name,
                        &media.url,
                        &media.direct_path,
                        &media.media_key,
                        &media.file_sha256,
                        &media.file_enc_sha256,
                        &file_length,
                        &m.raw,
                        &m.edited_at,
                        &m.revoked_at,
                        &now,
                    ],
                )
                .await?;
            let inserted = inserted as i64;
            let name = m
                .push_name
                .as_deref()
                .filter(|_| !m.is_from_me && !m.chat.ends_with("@g.us"));
            // Writing in a chat reads it: an own message is read up to itself.
            let read_until = if m.is_from_me { m.timestamp } else { 0 };
            let chat = tx
                .prepare_cached(
                    "INSERT INTO wa_chats (account, jid, name, last_message_at, created_at, \
                     updated_at, message_count, read_until) \
                     VALUES ($1, $2, $3, $4, $5, $5, $6, $7) \
                     ON CONFLICT (account, jid) DO UPDATE SET \
                     name = COALESCE(excluded.name, wa_chats.name), \
                     last_message_at = GREATEST(wa_chats.last_message_at, excluded.last_message_at), \
                     updated_at = excluded.updated_at, \
                     message_count = wa_chats.message_count + excluded.message_count, \
                     read_until = GREATEST(wa_chats.read_until, excluded.read_until)",
                )
                .await?;
            tx.execute(
                &chat,
                &[
                    &account,
                    &m.chat,
                    &name,
                    &m.timestamp,
                    &now,
                    &inserted,
                    &read_until,
                ],
            )
            .await?;
            if !m.is_from_me
                && m.sender.ends_with("@s.whatsapp.net")
                && let Some(push_name) = &m.push_name
            {
                upsert_contact(tx, account, &m.sender, None, Some(push_name.as_str()), now).await?;
            }
        }
        Change::ChatName { jid, name } => {
            let statement = tx
                .prepare_cached(
                    "INSERT INTO wa_chats (account, jid, name, last_message_at, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $4, $4) \
                     ON CONFLICT (account, jid) DO UPDATE SET \
                     name = excluded.name, updated_at = excluded.updated_at",
                )
                .await?;
            tx.execute(&statement, &[&account, jid, name, &now]).await?;
        }
        Change::Chat { jid, setting } => {
            let column = match setting {
                ChatSetting::Pinned(_) => "pinned",
                ChatSetting::Archived(_) => "archived",
                ChatSetting::Expiration(_) => "ephemeral_expiration",
            };
            let statement = tx
                .prepare_cached(&format!(
                    "INSERT INTO wa_chats (account, jid, last_message_at, created_at, \
                     updated_at, {column}) VALUES ($1, $2, $3, $3, $3, $4) \
                     ON CONFLICT (account, jid) DO UPDATE SET \
                     {column} = excluded.{column}, updated_at = excluded.updated_at"
                ))
                .await?;
            match *setting {
                ChatSetting::Pinned(on) | ChatSetting::Archived(on) => {
                    tx.execute(&statement, &[&account, jid, &now, &on]).await?;
                }
                ChatSetting::Expiration(secs) => {
                    let secs = i64::from(secs);
                    tx.execute(&statement, &[&account, jid, &now, &secs])
                        .await?;
                }
            }
        }
        Change::Contact {
            jid,
            full_name,
            push_name,
        } => {
            upsert_contact(
                tx,
                account,
                jid,
                full_name.as_deref(),
                push_name.as_deref(),
                now,
            )
            .await?;
        }
        Change::Label {
            id, deleted: true, ..
        } => {
            let statement = tx
                .prepare_cached("DELETE FROM wa_chat_labels WHERE account = $1 AND label_id = $2")
                .await?;
            tx.execute(&statement, &[&account, id]).await?;
            let statement = tx
                .prepare_cached("DELETE FROM wa_labels WHERE account = $1 AND id = $2")
                .await?;
            tx.execute(&statement, &[&account, id]).await?;
        }
        Change::Label {
            id, name, color, ..
        } => {
            let statement = tx
                .prepare_cached(
                    "INSERT INTO wa_labels (account, id, name, color, updated_at) \
                     VALUES ($1, $2, COALESCE($3::text, ''), COALESCE($4::integer, 0), $5) \
                     ON CONFLICT (account, id) DO UPDATE SET \
                     name = COALESCE($3::text, wa_labels.name), \
                     color = COALESCE($4::integer, wa_labels.color), updated_at = $5",
                )
                .await?;
            tx.execute(&statement, &[&account, id, name, color, &now])
                .await?;
        }
        Change::ChatLabel {
            jid,
            label_id,
            labeled,
        } => {
            let sql = match labeled {
                true => {
                    "INSERT INTO wa_chat_labels (account, chat_jid, label_id) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING"
                }
                false => {
                    "DELETE FROM wa_chat_labels \
                     WHERE account = $1 AND chat_jid = $2 AND label_id = $3"
                }
            };
            let statement = tx.prepare_cached(sql).await?;
            tx.execute(&statement, &[&account, jid, label_id]).await?;
        }
        Change::Reaction {
            chat,
            message_id,
            sender,
            emoji,
            timestamp,
        } => {
            if emoji.is_empty() {
                let statement = tx
                    .prepare_cached(
                        "DELETE FROM wa_reactions \
                         WHERE account = $1 AND chat_jid = $2 AND message_id = $3 AND sender = $4",
                    )
                    .await?;
                tx.execute(&statement, &[&account, chat, message_id, sender])
                    .await?;
            } else {
                let statement = tx
                    .prepare_cached(
                        "INSERT INTO wa_reactions \
                         (account, chat_jid, message_id, sender, emoji, timestamp) \
                         VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (account, chat_jid, message_id, sender) DO UPDATE SET \
                         emoji = excluded.emoji, timestamp = excluded.timestamp \
                         WHERE excluded.timestamp >= wa_reactions.timestamp",
                    )
                    .await?;
                tx.execute(
                    &statement,
                    &[&account, chat, message_id, sender, emoji, timestamp],
                )
                .await?;
            }
        }
        Change::Edit {
            chat,
            edit_id,
            message_id,
            body,
            timestamp,
        } => {
            let insert = tx
                .prepare_cached(
                    "INSERT INTO wa_edits (account, chat_jid, edit_id, message_id, body, edited_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .await?;
            let new = tx
                .execute(
                    &insert,
                    &[&account, chat, edit_id, message_id, body, timestamp],
                )
                .await?;
            if new > 0 {
                let update = tx
                    .prepare_cached(
                        "UPDATE wa_messages SET body = $4, edited_at = $5 \
                         WHERE account = $1 AND chat_jid = $2 AND id = $3 AND revoked_at IS NULL \
                         AND (edited_at IS NULL OR edited_at <= $5)",
                    )
                    .await?;
                tx.execute(&update, &[&account, chat, message_id, body, timestamp])
                    .await?;
            }
        }
        Change::Revoke {
            chat,
            message_id,
            timestamp,
        } => {
            let update = tx
                .prepare_cached(
                    "UPDATE wa_messages SET body = NULL, raw = NULL, url = NULL, \
                     direct_path = NULL, media_key = NULL, file_sha256 = NULL, \
                     file_enc_sha256 = NULL, file_name = NULL, revoked_at = $4 \
                     WHERE account = $1 AND chat_jid = $2 AND id = $3",
                )
                .await?;
            tx.execute(&update, &[&account, chat, message_id, timestamp])
                .await?;
            let edits = tx
                .prepare_cached(
                    "DELETE FROM wa_edits WHERE account = $1 AND chat_jid = $2 AND message_id = $3",
                )
                .await?;
            tx.execute(&edits, &[&account, chat, message_id]).await?;
        }
        Change::Receipt {
            chat,
            message_ids,
            kind,
            sender,
            timestamp,
        } => {
            let insert = tx
                .prepare_cached(
                    "INSERT INTO wa_receipts \
                     (account, chat_jid, message_id, kind, sender, timestamp) \
                     SELECT $1::text, $2::text, u.id, $4::text, $5::text, $6::bigint \
                     FROM UNNEST($3::text[]) AS u(id) \
                     ON CONFLICT DO NOTHING",
                )
                .await?;
            tx.execute(
                &insert,
                &[&account, chat, message_ids, kind, sender, timestamp],
            )
            .await?;
            // This account read them (on the phone, or here): the chat is read up
            // to the newest of them.
            if kind == "read-self" {
                let read = tx
                    .prepare_cached(
                        "UPDATE wa_chats SET read_until = GREATEST(read_until, COALESCE( \
                         (SELECT MAX(m.timestamp) FROM wa_messages m WHERE m.account = $1 \
                          AND m.chat_jid = $2 AND m.id = ANY($3::text[])), 0)) \
                         WHERE account = $1 AND jid = $2",
                    )
                    .await?;
                tx.execute(&read, &[&account, chat, message_ids]).await?;
            }
        }
        Change::ChatRead { jid, unread: 0 } => {
            let statement = tx
                .prepare_cached(
                    "UPDATE wa_chats SET read_until = GREATEST(read_until, COALESCE( \
                     (SELECT MAX(m.timestamp) FROM wa_messages m WHERE m.account = $1 \
                      AND m.chat_jid = $2 AND NOT m.is_from_me), 0)) \
                     WHERE account = $1 AND jid = $2",
                )
                .await?;
            tx.execute(&statement, &[&account, jid]).await?;
        }
        Change::ChatRead { jid, unread } => {
            // Read up to the incoming message just older than the unread ones, and
            // before the oldest of them even when it has the same second (times
            // are whole seconds): at least `unread` are unread.
            let statement = tx
                .prepare_cached(
                    "UPDATE wa_chats SET read_until = LEAST( \
                     COALESCE((SELECT m.timestamp FROM wa_messages m WHERE m.account = $1 \
                      AND m.chat_jid = $2 AND NOT m.is_from_me \
                      ORDER BY m.timestamp DESC LIMIT 1 OFFSET $3::bigint), 0), \
                     COALESCE((SELECT m.timestamp FROM wa_messages m WHERE m.account = $1 \
                      AND m.chat_jid = $2 AND NOT m.is_from_me \
                      ORDER BY m.timestamp DESC LIMIT 1 OFFSET ($3::bigint - 1)), 1) - 1) \
                     WHERE account = $1 AND jid = $2",
                )
                .await?;
            let unread = i64::from(*unread);
            tx.execute(&statement, &[&account, jid, &unread]).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::testing::database;

    use crate::messages::tests::{CHAT, message};

    fn listed(limit: u32) -> MessageQuery {
        MessageQuery {
            limit,
            ..MessageQuery::default()
        }
    }

    fn searched(text: &str) -> MessageQuery {
        MessageQuery {
            limit: 10,
            search: Some(text.into()),
            ..MessageQuery::default()
        }
    }

    /// The ids and total a search of every chat finds.
    async fn found(store: &PgMessages, text: &str) -> (Vec<String>, u64) {
        let (rows, total) = store.messages(None, &searched(text)).await.unwrap();
        (rows.into_iter().map(|m| m.id).collect(), total)
    }

    #[tokio::test]
    async fn accounts_never_see_each_others_rows_and_one_is_forgotten_alone() {
        let (_server, pool) = database().await;
        let a = PgMessages::new(pool.clone(), "a");
        let b = PgMessages::new(pool.clone(), "b");
        for (store, body) in [(&a, "from a"), (&b, "from b")] {
            let changes = [
                Change::Message(Box::new(message("M1", 100, body))),
                Change::Contact {
                    jid: CHAT.into(),
                    full_name: Some(body.into()),
                    push_name: None,
                },
                Change::Label {
                    id: "1".into(),
                    name: Some(body.into()),
                    color: Some(3),
                    deleted: false,
                },
                Change::ChatLabel {
                    jid: CHAT.into(),
                    label_id: "1".into(),
                    labeled: true,
                },
            ];
            store.apply(&changes, 1, true).await.unwrap();
        }
        let reaction = Change::Reaction {
            chat: CHAT.into(),
            message_id: "M1".into(),
            sender: "62822@s.whatsapp.net".into(),
            emoji: "👍".into(),
            timestamp: 101,
        };
        b.apply(
            &[
                Change::Message(Box::new(message("M2", 110, "more from b"))),
                reaction,
            ],
            1,
            false,
        )
        .await
        .unwrap();
        // a reads its chat; b's stays unread.
        a.apply(
            &[Change::ChatRead {
                jid: CHAT.into(),
                unread: 0,
            }],
            2,
            false,
        )
        .await
        .unwrap();

        let body = |m: Option<StoredMessage>| m.unwrap().body.unwrap();
        assert_eq!(body(a.get(CHAT, "M1").await.unwrap()), "from a");
        assert_eq!(body(b.get(CHAT, "M1").await.unwrap()), "from b");
        assert_eq!(body(a.find("M1").await.unwrap()), "from a");
        assert!(a.find("M2").await.unwrap().is_none());
        assert!(a.get(CHAT, "M2").await.unwrap().is_none());
        assert_eq!((a.count().await.unwrap(), b.count().await.unwrap()), (1, 2));
        // The chat's kept count and the counted total.
        assert_eq!(a.messages(Some(CHAT), &listed(10)).await.unwrap().1, 1);
        assert_eq!(b.messages(Some(CHAT), &listed(10)).await.unwrap().1, 2);
        let media = MessageQuery {
            media_only: true,
            ..listed(10)
        };
        assert_eq!(a.messages(Some(CHAT), &media).await.unwrap().1, 1);
        assert_eq!(found(&a, "from").await, (vec!["M1".to_owned()], 1));
        assert_eq!(found(&b, "from").await.1, 2);
        // Unread counts count the account's own messages only.
        assert_eq!(a.chat(CHAT).await.unwrap().unwrap().unread, 0);
        assert_eq!(b.chat(CHAT).await.unwrap().unwrap().unread, 2);
        let unread_only = ChatQuery {
            limit: 10,
            unread_only: true,
            ..ChatQuery::default()
        };
        assert_eq!(a.chats(&unread_only).await.unwrap().1, 0);
        assert_eq!(b.chats(&unread_only).await.unwrap().1, 1);
        let all = ChatQuery {
            limit: 10,
            ..ChatQuery::default()
        };
        let (chats, total) = a.chats(&all).await.unwrap();
        assert_eq!(total, 1);
        let label = |name: &str| Label {
            id: "1".into(),
            name: name.into(),
            color: 3,
        };
        assert_eq!(chats[0].labels, [label("from a")]);
        assert_eq!(a.label("1").await.unwrap(), Some(label("from a")));
        assert_eq!(
            b.chat(CHAT).await.unwrap().unwrap().labels,
            [label("from b")]
        );
        assert_eq!(
            a.contacts().await.unwrap(),
            [StoredContact {
                jid: CHAT.into(),
                full_name: Some("from a".into()),
                push_name: Some("Ann".into()),
            }]
        );
        let ids = ["M1".to_owned()];
        assert!(a.reactions_of(CHAT, &ids).await.unwrap().is_empty());
        assert!(a.reactions(CHAT, "M1").await.unwrap().is_empty());
        assert_eq!(b.reactions_of(CHAT, &ids).await.unwrap()["M1"].len(), 1);

        // a's retention leaves b's rows.
        assert_eq!(a.prune(105).await.unwrap(), 1);
        assert_eq!(a.count().await.unwrap(), 0);
        assert!(a.chat(CHAT).await.unwrap().is_none());
        assert_eq!(b.count().await.unwrap(), 2);
        assert_eq!(b.messages(Some(CHAT), &listed(10)).await.unwrap().1, 2);
        assert_eq!(b.reactions(CHAT, "M1").await.unwrap().len(), 1);

        // a's logout leaves b's rows, and a's Go session import.
        a.record_import("go-chats:x").await.unwrap();
        a.record_import("go-session:y").await.unwrap();
        b.record_import("go-chats:x").await.unwrap();
        a.clear().await.unwrap();
        assert!(!a.was_imported("go-chats:x").await.unwrap());
        assert!(a.was_imported("go-session:y").await.unwrap());
        assert!(a.contacts().await.unwrap().is_empty());
        assert_eq!(a.label("1").await.unwrap(), None);
        assert!(b.was_imported("go-chats:x").await.unwrap());
        assert_eq!(b.contacts().await.unwrap().len(), 1);
        assert_eq!(b.label("1").await.unwrap(), Some(label("from b")));
        assert_eq!(b.count().await.unwrap(), 2);

        // a removed: every row of a goes, b's stay.
        {
            let mut client = pool.get().await.unwrap();
            let tx = client.transaction().await.unwrap();
            forget_account(&tx, "a").await.unwrap();
            tx.commit().await.unwrap();
        }
        assert!(!a.was_imported("go-session:y").await.unwrap());
        assert!(b.was_imported("go-chats:x").await.unwrap());
        assert_eq!(b.count().await.unwrap(), 2);
        assert_eq!(b.chat(CHAT).await.unwrap().unwrap().unread, 2);
        assert_eq!(b.contacts().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_search_ignores_case_and_takes_wildcards_literally() {
        let (_server, pool) = database().await;
        let store = PgMessages::new(pool, "a");
        let mut elsewhere = message("C", 120, "axb");
        elsewhere.chat = "62822@s.whatsapp.net".into();
        store
            .apply(
                &[
                    Change::Message(Box::new(message("A", 100, "100% Sure"))),
                    Change::Message(Box::new(message("B", 110, "a_b"))),
                    Change::Message(Box::new(elsewhere)),
                ],
                1,
                false,
            )
            .await
            .unwrap();
        let ids = |ids: &[&str]| ids.iter().map(|id| id.to_string()).collect::<Vec<_>>();
        assert_eq!(found(&store, "100%").await, (ids(&["A"]), 1));
        assert_eq!(found(&store, "sure").await, (ids(&["A"]), 1));
        assert_eq!(found(&store, "SURE").await, (ids(&["A"]), 1));
        assert_eq!(found(&store, "a_b").await, (ids(&["B"]), 1));
        assert_eq!(found(&store, "_").await, (ids(&["B"]), 1));
        assert_eq!(found(&store, "%").await, (ids(&["A"]), 1));
        assert_eq!(found(&store, "X").await, (ids(&["C"]), 1));
        assert_eq!(found(&store, "\\").await, (ids(&[]), 0));
        // Newest first across chats; within one chat, only its own.
        assert_eq!(found(&store, "").await, (ids(&["C", "B", "A"]), 3));
        let (rows, total) = store.messages(Some(CHAT), &searched("b")).await.unwrap();
        assert_eq!(total, 1);
        assert_eq!(rows[0].id, "B");
        assert!(rows[0].raw.is_empty(), "listings leave the raw message out");
        // Chats by name or JID, the same way.
        let chats = |text: &str| ChatQuery {
            limit: 10,
            search: Some(text.into()),
            ..ChatQuery::default()
        };
        assert_eq!(store.chats(&chats("S.WHATSAPP")).await.unwrap().1, 2);
        assert_eq!(store.chats(&chats("ann")).await.unwrap().1, 2);
        assert_eq!(store.chats(&chats("_")).await.unwrap().1, 0);
        assert_eq!(store.chats(&chats("%")).await.unwrap().1, 0);
    }
}
