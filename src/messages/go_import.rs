//! Imports the chat history of the Go server (go-whatsapp-web-multidevice, "GoWA"),
//! its `storages/chatstorage.db`, into the message store: chats, messages with their
//! media keys, reactions and edit history. The Go file is opened read-only and never
//! written; an import can run again and adds only what is not stored yet.
//!
//! # The Go file (v7.2 to v9.2)
//!
//! Always SQLite (WAL), written through `database/sql` (mattn/go-sqlite3; modernc
//! with `-tags purego` from v8.6). Migrations are numbered; `schema_info(version,
//! updated_at)` holds one row per migration applied (v7: 1–2, v8.0: 12, v8.3.3: 14,
//! v8.4: 16, v8.6: 22, v8.8: 29, v8.9: 30, v8.10: 34, v8.11–v9.2: 43).
//!
//! | table / column | from | notes |
//! |---|---|---|
//! | `chats(jid, name, last_message_time, ephemeral_expiration, created_at, updated_at)` | v7.2 | v7: `jid` is the key |
//! | `chats.device_id`, `messages.device_id`, `devices(device_id, display_name, jid, …)` | v8.0 | key becomes `(jid, device_id)` / `(id, chat_jid, device_id)` |
//! | `chats.archived` | v8.3.3 | |
//! | `messages.call_metadata`, `messages.referral_metadata` (JSON text) | v8.4 | `media_type = 'call'` rows, id `call:<call id>` |
//! | `message_reactions(message_id, chat_jid, device_id, reactor_jid, emoji, is_from_me, reaction_timestamp, …)` | v8.6 | key `(message_id, reactor_jid, device_id)` |
//! | `message_edits(original_message_id, edit_event_id, chat_jid, device_id, editor, previous_content, new_content, edited_at, …)` | v8.6 | append-only |
//! | `messages.direct_path` | v8.9 | before: derived from `url` (its path and query) |
//! | `devices.webhook_*` (v8.10), `devices.ad_jid` (v8.11), `chatwoot_*` tables (v8.8+) | | not imported |
//!
//! `messages(id, chat_jid, sender, content, timestamp, is_from_me, media_type,
//! filename, url, media_key, file_sha256, file_enc_sha256, file_length, created_at,
//! updated_at)` exists from v7.2 on.
//! - Times (`TIMESTAMP` columns) are text: Go's `time.Time` as the driver formats
//!   it, `2006-01-02 15:04:05.999999999-07:00` (mattn) or `time.Time.String()`
//!   (`… +0000 UTC`, modernc); SQL defaults (`CURRENT_TIMESTAMP`) are UTC without an
//!   offset.
//! - Media keys and hashes are BLOBs; `file_length` an integer (0 without media).
//! - `media_type`: `''` (text), `image`, `video`, `video_note` (v7.10.1+), `audio`,
//!   `document`, `sticker`, `call` (v8.4+). `content` is the text, or the caption
//!   (image, video, document; empty for audio and stickers), or a summary for
//!   contacts (`Contact: name (phone)`) and locations (`name — address —
//!   https://maps.google.com/?q=lat,long`, v8.10+). `filename` is generated
//!   (`image_20240501_100000.jpg`) except for documents. No mimetype, no raw message.
//! - `device_id` is the account's phone-number JID (`62812…@s.whatsapp.net`), or the
//!   slot id while the slot had no JID. Sent messages carry the AD sender JID
//!   (`62812…:12@s.whatsapp.net`). A message deleted for everyone keeps its row up
//!   to v9.2.0 (later commits delete it); the file does not say which were.
//! - A v7 file started once by v8+ stays half-migrated: v8's migration 5 (an index on
//!   `messages.device_id`) fails, so it keeps the v7 tables plus `devices` and
//!   `schema_info` up to 4. It is read as v7.
//!
//! # What the import makes of it
//!
//! JIDs lose their device part. Go's placeholder chat names (`Group <id>`,
//! `Newsletter <id>`, the bare number) become unknown names. A message gets a
//! WhatsApp message rebuilt from its columns as its `raw` (text, location, or the
//! media with its keys) so that download and forward work; media without a direct
//! path or key, and `call` rows (kind `other`), get none. The mimetype stays unknown.
//! With `device_jid` given, rows of a v8+ file belong to it when their `device_id` is
//! that JID or the id of a slot whose JID it is.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, Row, params, params_from_iter};
use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::prelude::{MessageField, wa};

use super::{MessageStore, StoreError, StoredMedia};

#[derive(Debug, thiserror::Error)]
pub enum GoImportError {
    #[error("Go chat storage {}: no such file", .0.display())]
    NotFound(PathBuf),
    #[error("cannot open the Go chat storage {}: {error}", .path.display())]
    Open {
        path: PathBuf,
        #[source]
        error: rusqlite::Error,
    },
    /// Not a chat storage file of go-whatsapp-web-multidevice v7 to v9.
    #[error(
        "{} is not the chat storage of go-whatsapp-web-multidevice v7-v9 (storages/chatstorage.db): {reason}",
        .path.display()
    )]
    Unrecognised { path: PathBuf, reason: String },
    #[error("cannot read the Go chat storage: {0}")]
    Read(#[source] rusqlite::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// In use by the Go server, or not copyable.
    #[error(transparent)]
    Foreign(crate::storage::ForeignError),
}

/// What a Go chat storage file holds, as far as the import cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoSchema {
    /// The highest migration `schema_info` records, when it has any.
    pub schema_version: Option<i64>,
    /// Chats and messages carry `device_id` (v8.0+).
    pub device_scoped: bool,
    /// The `devices` table (v8.0+; also in a half-migrated v7 file).
    pub devices: bool,
    /// `devices.ad_jid` (v8.11+).
    pub device_ad_jid: bool,
    /// `chats.archived` (v8.3.3+).
    pub archived: bool,
    /// `messages.call_metadata` (v8.4+).
    pub call_metadata: bool,
    /// `message_reactions` and `message_edits` (v8.6+).
    pub reactions: bool,
    pub edits: bool,
    /// `messages.direct_path` (v8.9+).
    pub direct_path: bool,
}

impl GoSchema {
    /// The Go releases that write this schema.
    pub fn releases(&self) -> &'static str {
        match self {
            s if !s.device_scoped && s.devices => "v7.2-v7.11 (half-migrated by a v8+ start)",
            s if !s.device_scoped => "v7.2-v7.11",
            s if s.device_ad_jid => "v8.11-v9.2",
            s if s.direct_path => "v8.9-v8.10",
            s if s.reactions => "v8.6-v8.8",
            s if s.call_metadata => "v8.4-v8.5",
            s if s.archived => "v8.3.3-v8.3.5",
            _ => "v8.0-v8.3.2",
        }
    }
}

/// What an import added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub schema: GoSchema,
    /// Chats, messages, reactions and edits new in the store.
    pub chats: u64,
    pub messages: u64,
    pub reactions: u64,
    pub edits: u64,
    /// Messages of other accounts of a multi-device (v8+) file, left out.
    pub skipped_other_devices: u64,
    /// Rows without an id, a chat or a readable time, left out.
    pub skipped_unreadable: u64,
}

/// Reads which Go schema `go_db` has, without importing anything.
pub fn inspect_go_chat_storage(go_db: &Path, scratch: &Path) -> Result<GoSchema, GoImportError> {
    let go = open_go(go_db, scratch)?;
    detect(&go.conn, go_db)
}

/// The Go v8+ device slot of one account: its id (what Go clients send as
/// `X-Device-Id`) and its own webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoSlot {
    pub id: String,
    pub webhook_url: String,
    pub webhook_secret: String,
    pub webhook_events: String,
    pub webhook_insecure_skip_verify: bool,
}

/// The slot the Go server's `devices` table keeps for `device_jid` (the account's
/// linked device, `user:n@s.whatsapp.net`): the row pinned to that device, else the
/// one row for its number that is pinned to no device. `None` without such a table
/// or row, or when several rows claim the number (never guessed, as Go does not).
pub fn go_slot(
    go_db: &Path,
    scratch: &Path,
    device_jid: &str,
) -> Result<Option<GoSlot>, GoImportError> {
    let go = open_go(go_db, scratch)?;
    let has_table: bool = go
        .conn
        .query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'devices'",
            [],
            |r| r.get(0),
        )
        .map_err(read)?;
    if !has_table {
        return Ok(None);
    }
    let bare = match device_jid.split_once(':') {
        Some((user, rest)) => format!("{user}@{}", rest.split_once('@').map_or("", |r| r.1)),
        None => device_jid.to_owned(),
    };
    let columns: Vec<String> = go
        .conn
        .prepare("SELECT name FROM pragma_table_info('devices')")
        .and_then(|mut stmt| stmt.query_map([], |r| r.get(0))?.collect())
        .map_err(read)?;
    let pinned = if columns.iter().any(|c| c == "ad_jid") {
        "ad_jid"
    } else {
        "''"
    };
    let sql = format!(
        "SELECT device_id, COALESCE(webhook_url, ''), COALESCE(webhook_secret, ''), \
         COALESCE(webhook_events, ''), COALESCE(webhook_insecure_skip_verify, 0), \
         COALESCE({pinned} = ?1, 0) FROM devices WHERE {pinned} = ?1 \
         OR (COALESCE({pinned}, '') = '' AND (jid = ?2 OR device_id = ?2))"
    );
    let rows: Vec<(GoSlot, bool)> = go
        .conn
        .prepare(&sql)
        .and_then(|mut stmt| {
            stmt.query_map(params![device_jid, bare], |r| {
                Ok((
                    GoSlot {
                        id: r.get(0)?,
                        webhook_url: r.get(1)?,
                        webhook_secret: r.get(2)?,
                        webhook_events: r.get(3)?,
                        webhook_insecure_skip_verify: r.get::<_, i64>(4)? != 0,
                    },
                    r.get(5)?,
                ))
            })?
            .collect()
        })
        .map_err(read)?;
    let mut pinned_rows = rows.iter().filter(|(_, exact)| *exact);
    Ok(
        match (pinned_rows.next(), pinned_rows.next(), rows.as_slice()) {
            (Some((slot, _)), None, _) => Some(slot.clone()),
            (None, _, [(slot, _)]) => Some(slot.clone()),
            _ => None,
        },
    )
}

/// Copies the Go server's chat history (`storages/chatstorage.db`) into `store`, in
/// one transaction. `go_db` is only read. With `device_jid` (the account's JID),
/// only that account's rows of a multi-device (v8+) file are taken; without it, all
/// of them (on a clash, the first row read wins). Running it again adds nothing.
pub fn import_go_chat_storage(
    go_db: &Path,
    scratch: &Path,
    store: &MessageStore,
    device_jid: Option<&str>,
) -> Result<ImportCounts, GoImportError> {
    let mut go = open_go(go_db, scratch)?;
    let schema = detect(&go.conn, go_db)?;
    // One read transaction: one consistent state throughout.
    let snapshot = go.conn.transaction().map_err(read)?;
    let scope = match device_jid {
        Some(jid) if schema.device_scoped => Some(device_ids(&snapshot, &schema, jid)?),
        _ => None,
    };
    let scope = scope.as_deref();
    let now = jiff::Timestamp::now().as_second();
    let mut counts = ImportCounts {
        schema: schema.clone(),
        ..ImportCounts::default()
    };

    let Some(mut conn) = store.sqlite_conn() else {
        return Err(GoImportError::Store(StoreError::Postgres(
            "the Go chat history is imported into a file store first".into(),
        )));
    };
    let tx = conn.transaction().map_err(write)?;
    let chats_before = count_rows(&tx, "chats")?;
    import_chats(&snapshot, &tx, &schema, scope, &mut counts)?;
    import_messages(&snapshot, &tx, &schema, scope, now, &mut counts)?;
    if schema.reactions {
        import_reactions(&snapshot, &tx, scope, &mut counts)?;
    }
    if schema.edits {
        import_edits(&snapshot, &tx, scope, &mut counts)?;
    }
    counts.chats = (count_rows(&tx, "chats")? - chats_before).max(0) as u64;
    tx.commit().map_err(write)?;
    drop(snapshot);
    Ok(counts)
}

type Res<T> = Result<T, GoImportError>;

fn read(e: rusqlite::Error) -> GoImportError {
    GoImportError::Read(e)
}

fn write(e: rusqlite::Error) -> GoImportError {
    GoImportError::Store(StoreError::Sql(e))
}

fn count_rows(conn: &Connection, table: &str) -> Res<i64> {
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .map_err(write)
}

// ---------------------------------------------------------------------------------
// Opening and recognising the Go file

/// Opens `path` read-only (`query_only` besides). A WAL file whose `-shm` cannot be
/// made (a read-only folder) is opened again as immutable.
/// Opens the Go file for reading; a copy, when one is needed, goes into `scratch`
/// (this server's storage folder).
fn open_go(path: &Path, scratch: &Path) -> Res<crate::storage::Foreign> {
    if !path.is_file() {
        return Err(GoImportError::NotFound(path.to_owned()));
    }
    let mut view = crate::storage::open_foreign(path, scratch).map_err(|e| match e {
        crate::storage::ForeignError::Sql { source, .. } => GoImportError::Open {
            path: path.to_owned(),
            error: source,
        },
        other => GoImportError::Foreign(other),
    })?;
    view.conn = probe(view.conn, path)?;
    Ok(view)
}

/// The opened connection once it has read the schema (SQLite opens lazily).
fn probe(go: Connection, path: &Path) -> Res<Connection> {
    let open_error = |error| GoImportError::Open {
        path: path.to_owned(),
        error,
    };
    match go.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(_) => {}
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::NotADatabase) => {
            return Err(GoImportError::Unrecognised {
                path: path.to_owned(),
                reason: "not an SQLite database".into(),
            });
        }
        Err(e) => return Err(open_error(e)),
    }
    go.execute_batch("PRAGMA query_only = ON")
        .map_err(open_error)?;
    Ok(go)
}

const CHAT_COLUMNS: &[&str] = &[
    "jid",
    "name",
    "last_message_time",
    "ephemeral_expiration",
    "created_at",
    "updated_at",
];
const MESSAGE_COLUMNS: &[&str] = &[
    "id",
    "chat_jid",
    "sender",
    "content",
    "timestamp",
    "is_from_me",
    "media_type",
    "filename",
    "url",
    "media_key",
    "file_sha256",
    "file_enc_sha256",
    "file_length",
    "created_at",
];
const REACTION_COLUMNS: &[&str] = &[
    "message_id",
    "chat_jid",
    "device_id",
    "reactor_jid",
    "emoji",
    "reaction_timestamp",
    "created_at",
];
const EDIT_COLUMNS: &[&str] = &[
    "original_message_id",
    "edit_event_id",
    "chat_jid",
    "device_id",
    "new_content",
    "edited_at",
    "created_at",
];
const DEVICE_COLUMNS: &[&str] = &["device_id", "jid"];

fn names(go: &Connection, sql: &str, arg: Option<&str>) -> Res<BTreeSet<String>> {
    let mut stmt = go.prepare(sql).map_err(read)?;
    let mut rows = match arg {
        Some(arg) => stmt.query([arg]),
        None => stmt.query([]),
    }
    .map_err(read)?;
    let mut out = BTreeSet::new();
    while let Some(row) = rows.next().map_err(read)? {
        if let Some(name) = text(row, 0)? {
            out.insert(name.to_ascii_lowercase());
        }
    }
    Ok(out)
}

fn columns(go: &Connection, table: &str) -> Res<BTreeSet<String>> {
    names(go, "SELECT name FROM pragma_table_info(?1)", Some(table))
}

/// `Err` naming what `table` lacks of `needed`.
fn require(table: &str, have: &BTreeSet<String>, needed: &[&str]) -> Result<(), String> {
    let missing: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|c| !have.contains(*c))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "table `{table}` has no column {}",
            missing.join(", ")
        ))
    }
}

/// Which Go schema the file has, by its tables and columns; refuses anything else.
fn detect(go: &Connection, path: &Path) -> Res<GoSchema> {
    let unrecognised = |reason: String| GoImportError::Unrecognised {
        path: path.to_owned(),
        reason,
    };
    let tables = names(
        go,
        "SELECT name FROM sqlite_master WHERE type = 'table'",
        None,
    )?;
    if tables.iter().any(|t| t.starts_with("whatsmeow_")) {
        return Err(unrecognised(
            "it is the Go server's WhatsApp session (storages/whatsapp.db); the chat \
             history is in storages/chatstorage.db"
                .into(),
        ));
    }
    if !tables.contains("chats") || !tables.contains("messages") {
        return Err(unrecognised(if tables.is_empty() {
            "it has no tables".into()
        } else {
            "it has no `chats` and `messages` tables".into()
        }));
    }
    let chats = columns(go, "chats")?;
    let messages = columns(go, "messages")?;
    if messages.contains("kind") && messages.contains("body") {
        return Err(unrecognised(
            "it is a message store of this server, not of the Go server".into(),
        ));
    }
    require("chats", &chats, CHAT_COLUMNS).map_err(unrecognised)?;
    require("messages", &messages, MESSAGE_COLUMNS).map_err(unrecognised)?;
    if chats.contains("device_id") != messages.contains("device_id") {
        return Err(unrecognised(
            "only one of `chats` and `messages` has `device_id`".into(),
        ));
    }
    let mut schema = GoSchema {
        device_scoped: messages.contains("device_id"),
        archived: chats.contains("archived"),
        call_metadata: messages.contains("call_metadata"),
        direct_path: messages.contains("direct_path"),
        ..GoSchema::default()
    };
    if tables.contains("message_reactions") {
        let have = columns(go, "message_reactions")?;
        require("message_reactions", &have, REACTION_COLUMNS).map_err(unrecognised)?;
        schema.reactions = true;
    }
    if tables.contains("message_edits") {
        let have = columns(go, "message_edits")?;
        require("message_edits", &have, EDIT_COLUMNS).map_err(unrecognised)?;
        schema.edits = true;
    }
    if tables.contains("devices") {
        let have = columns(go, "devices")?;
        require("devices", &have, DEVICE_COLUMNS).map_err(unrecognised)?;
        schema.devices = true;
        schema.device_ad_jid = have.contains("ad_jid");
    }
    if tables.contains("schema_info") {
        schema.schema_version = go
            .query_row("SELECT MAX(version) FROM schema_info", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .map_err(read)?;
    }
    Ok(schema)
}

/// The `device_id` values of the account `jid`: the JID itself and the slots that
/// had it.
fn device_ids(go: &Connection, schema: &GoSchema, jid: &str) -> Res<Vec<String>> {
    let given = jid.trim();
    let account = if given.contains('@') {
        non_ad(given)
    } else {
        format!("{given}@s.whatsapp.net")
    };
    let mut ids = BTreeSet::from([given.to_owned(), account.clone()]);
    if schema.devices {
        let ad_jid = if schema.device_ad_jid {
            "ad_jid"
        } else {
            "NULL"
        };
        let mut stmt = go
            .prepare(&format!("SELECT device_id, jid, {ad_jid} FROM devices"))
            .map_err(read)?;
        let mut rows = stmt.query([]).map_err(read)?;
        while let Some(row) = rows.next().map_err(read)? {
            let Some(id) = text(row, 0)? else { continue };
            let jids = [text(row, 1)?, text(row, 2)?];
            if id == given || jids.iter().flatten().any(|j| non_ad(j) == account) {
                ids.insert(id);
            }
        }
    }
    ids.remove("");
    Ok(ids.into_iter().collect())
}

/// ` WHERE device_id IN (…)` and its arguments, or nothing when unscoped.
fn scoped(scope: Option<&[String]>) -> (String, Vec<String>) {
    match scope {
        Some(ids) if !ids.is_empty() => (
            format!(" WHERE device_id IN ({})", vec!["?"; ids.len()].join(", ")),
            ids.to_vec(),
        ),
        _ => (String::new(), Vec::new()),
    }
}

// ---------------------------------------------------------------------------------
// Copying

fn import_chats(
    go: &Connection,
    tx: &Connection,
    schema: &GoSchema,
    scope: Option<&[String]>,
    counts: &mut ImportCounts,
) -> Res<()> {
    let archived = if schema.archived { "archived" } else { "0" };
    let (filter, args) = scoped(scope);
    let mut stmt = go
        .prepare(&format!(
            "SELECT jid, name, last_message_time, ephemeral_expiration, created_at, \
             updated_at, {archived} FROM chats{filter}"
        ))
        .map_err(read)?;
    let mut rows = stmt.query(params_from_iter(args.iter())).map_err(read)?;
    let mut insert = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO chats (jid, name, last_message_at, created_at, updated_at, \
             archived, ephemeral_expiration) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(write)?;
    // A chat already stored keeps its settings; it learns a name it lacked and a
    // later last message.
    let mut merge = tx
        .prepare_cached(
            "UPDATE chats SET name = COALESCE(name, ?2), \
             last_message_at = MAX(last_message_at, ?3) \
             WHERE jid = ?1 AND ((name IS NULL AND ?2 IS NOT NULL) OR last_message_at < ?3)",
        )
        .map_err(write)?;
    while let Some(row) = rows.next().map_err(read)? {
        let Some(jid) = text(row, 0)?.map(|j| non_ad(&j)) else {
            counts.skipped_unreadable += 1;
            continue;
        };
        let name = chat_name(&jid, text(row, 1)?);
        let created = time(row, 4)?;
        let updated = time(row, 5)?;
        let Some(last) = time(row, 2)?.or(updated).or(created) else {
            counts.skipped_unreadable += 1;
            continue;
        };
        let expiration = int(row, 3)?.unwrap_or(0).clamp(0, i64::from(u32::MAX));
        let archived = flag(row, 6)?;
        let inserted = insert
            .execute(params![
                jid,
                name,
                last,
                created.unwrap_or(last),
                updated.unwrap_or(last),
                archived,
                expiration
            ])
            .map_err(write)?;
        if inserted == 0 {
            merge.execute(params![jid, name, last]).map_err(write)?;
        }
    }
    Ok(())
}

fn import_messages(
    go: &Connection,
    tx: &Connection,
    schema: &GoSchema,
    scope: Option<&[String]>,
    now: i64,
    counts: &mut ImportCounts,
) -> Res<()> {
    let direct_path = if schema.direct_path {
        "direct_path"
    } else {
        "NULL"
    };
    let (filter, args) = scoped(scope);
    let mut stmt = go
        .prepare(&format!(
            "SELECT id, chat_jid, sender, content, timestamp, is_from_me, media_type, \
             filename, url, {direct_path}, media_key, file_sha256, file_enc_sha256, \
             file_length, created_at FROM messages{filter}"
        ))
        .map_err(read)?;
    let mut rows = stmt.query(params_from_iter(args.iter())).map_err(read)?;
    let mut insert = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO messages (chat_jid, id, sender, timestamp, is_from_me, \
             kind, body, mimetype, file_name, url, direct_path, media_key, file_sha256, \
             file_enc_sha256, file_length, raw, stored_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        )
        .map_err(write)?;
    // Each new message counts in its chat (made when the Go file had no row for it).
    let mut bump = tx
        .prepare_cached(
            "INSERT INTO chats (jid, last_message_at, created_at, updated_at, message_count, \
             read_until) VALUES (?1, ?2, ?2, ?2, 1, ?2) ON CONFLICT(jid) DO UPDATE SET \
             message_count = chats.message_count + 1, \
             last_message_at = MAX(chats.last_message_at, excluded.last_message_at), \
             read_until = MAX(chats.read_until, excluded.read_until)",
        )
        .map_err(write)?;
    let mut seen: u64 = 0;
    while let Some(row) = rows.next().map_err(read)? {
        seen += 1;
        let Some(message) = go_message(row)? else {
            counts.skipped_unreadable += 1;
            continue;
        };
        let media = message.media.clone().unwrap_or_default();
        let inserted = insert
            .execute(params![
                message.chat,
                message.id,
                message.sender,
                message.timestamp,
                message.is_from_me,
                message.kind,
                message.body,
                media.mimetype,
                media.file_name,
                media.url,
                media.direct_path,
                media.media_key,
                media.file_sha256,
                media.file_enc_sha256,
                media.file_length.map(|l| l as i64),
                message.raw,
                now
            ])
            .map_err(write)?;
        if inserted > 0 {
            counts.messages += 1;
            bump.execute(params![message.chat, message.timestamp])
                .map_err(write)?;
        }
    }
    if scope.is_some() {
        let total: i64 = go
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
            .map_err(read)?;
        counts.skipped_other_devices = (total.max(0) as u64).saturating_sub(seen);
    }
    Ok(())
}

/// A Go message row, as the store keeps it.
struct GoMessage {
    chat: String,
    id: String,
    sender: String,
    timestamp: i64,
    is_from_me: bool,
    kind: &'static str,
    body: Option<String>,
    media: Option<StoredMedia>,
    raw: Option<Vec<u8>>,
}

/// Reads the row of [`import_messages`]' query; `None` when it is unusable.
fn go_message(row: &Row<'_>) -> Res<Option<GoMessage>> {
    let (Some(id), Some(chat)) = (text(row, 0)?, text(row, 1)?) else {
        return Ok(None);
    };
    let chat = non_ad(&chat);
    let Some(timestamp) = time(row, 4)?.or(time(row, 14)?) else {
        return Ok(None);
    };
    let sender = match text(row, 2)? {
        Some(sender) => non_ad(&sender),
        None if !chat.ends_with("@g.us") => chat.clone(),
        None => String::new(),
    };
    let content = text(row, 3)?;
    let media_type = text(row, 6)?.unwrap_or_default().to_ascii_lowercase();
    let mut location = None;
    let kind = match media_type.trim() {
        "" => {
            location = content.as_deref().and_then(location_of);
            if location.is_some() {
                "location"
            } else {
                "text"
            }
        }
        "image" => "image",
        "video" => "video",
        "video_note" | "ptv" => "video_note",
        "audio" | "ptt" => "audio",
        "document" => "document",
        "sticker" => "sticker",
        // `call` rows, and whatever a later Go version adds.
        _ => "other",
    };
    let media = if matches!(
        kind,
        "image" | "video" | "video_note" | "audio" | "document" | "sticker"
    ) {
        let url = text(row, 8)?;
        let direct_path = text(row, 9)?.or_else(|| url.as_deref().and_then(path_of_url));
        Some(StoredMedia {
            mimetype: None,
            // Go names other media itself (`image_20240501_100000.jpg`).
            file_name: if kind == "document" {
                text(row, 7)?
            } else {
                None
            },
            url,
            direct_path,
            media_key: bytes(row, 10)?,
            file_sha256: bytes(row, 11)?,
            file_enc_sha256: bytes(row, 12)?,
            file_length: int(row, 13)?.filter(|&l| l > 0).map(|l| l as u64),
        })
    } else {
        None
    };
    let body = match &location {
        Some(place) => place.name.clone(),
        None => content,
    };
    let raw = rebuilt_message(kind, body.as_deref(), media.as_ref(), location.as_ref());
    Ok(Some(GoMessage {
        chat,
        id,
        sender,
        timestamp,
        is_from_me: flag(row, 5)?,
        kind,
        body,
        media,
        raw,
    }))
}

fn import_reactions(
    go: &Connection,
    tx: &Connection,
    scope: Option<&[String]>,
    counts: &mut ImportCounts,
) -> Res<()> {
    let (filter, args) = scoped(scope);
    let mut stmt = go
        .prepare(&format!(
            "SELECT message_id, chat_jid, reactor_jid, emoji, reaction_timestamp, created_at \
             FROM message_reactions{filter}"
        ))
        .map_err(read)?;
    let mut rows = stmt.query(params_from_iter(args.iter())).map_err(read)?;
    let mut insert = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO reactions (chat_jid, message_id, sender, emoji, timestamp) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(write)?;
    let mut newer = tx
        .prepare_cached(
            "UPDATE reactions SET emoji = ?4, timestamp = ?5 \
             WHERE chat_jid = ?1 AND message_id = ?2 AND sender = ?3 AND timestamp < ?5",
        )
        .map_err(write)?;
    while let Some(row) = rows.next().map_err(read)? {
        let (Some(message_id), Some(chat), Some(sender)) =
            (text(row, 0)?, text(row, 1)?, text(row, 2)?)
        else {
            counts.skipped_unreadable += 1;
            continue;
        };
        // An empty emoji is a removed reaction (Go deletes those rows anyway).
        let Some(emoji) = text(row, 3)? else { continue };
        let Some(timestamp) = time(row, 4)?.or(time(row, 5)?) else {
            counts.skipped_unreadable += 1;
            continue;
        };
        let (chat, sender) = (non_ad(&chat), non_ad(&sender));
        let args: [&dyn rusqlite::ToSql; 5] = [&chat, &message_id, &sender, &emoji, &timestamp];
        if insert.execute(&args[..]).map_err(write)? > 0 {
            counts.reactions += 1;
        } else {
            newer.execute(&args[..]).map_err(write)?;
        }
    }
    Ok(())
}

fn import_edits(
    go: &Connection,
    tx: &Connection,
    scope: Option<&[String]>,
    counts: &mut ImportCounts,
) -> Res<()> {
    let (filter, args) = scoped(scope);
    let mut stmt = go
        .prepare(&format!(
            "SELECT original_message_id, edit_event_id, chat_jid, new_content, edited_at, \
             created_at FROM message_edits{filter}"
        ))
        .map_err(read)?;
    let mut rows = stmt.query(params_from_iter(args.iter())).map_err(read)?;
    let mut insert = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO edits (chat_jid, edit_id, message_id, body, edited_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(write)?;
    // Go's message row already has the latest text: only the time is set.
    let mut mark = tx
        .prepare_cached(
            "UPDATE messages SET edited_at = ?3 WHERE chat_jid = ?1 AND id = ?2 \
             AND revoked_at IS NULL AND (edited_at IS NULL OR edited_at < ?3)",
        )
        .map_err(write)?;
    while let Some(row) = rows.next().map_err(read)? {
        let (Some(message_id), Some(edit_id), Some(chat)) =
            (text(row, 0)?, text(row, 1)?, text(row, 2)?)
        else {
            counts.skipped_unreadable += 1;
            continue;
        };
        let Some(edited_at) = time(row, 4)?.or(time(row, 5)?) else {
            counts.skipped_unreadable += 1;
            continue;
        };
        let chat = non_ad(&chat);
        let body = text(row, 3)?.unwrap_or_default();
        let inserted = insert
            .execute(params![chat, edit_id, message_id, body, edited_at])
            .map_err(write)?;
        if inserted > 0 {
            counts.edits += 1;
            mark.execute(params![chat, message_id, edited_at])
                .map_err(write)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Values as Go wrote them

/// Text, or `None` for NULL and empty text.
fn text(row: &Row<'_>, i: usize) -> Res<Option<String>> {
    let value = match row.get_ref(i).map_err(read)? {
        ValueRef::Null => None,
        ValueRef::Integer(n) => Some(n.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
    };
    Ok(value.filter(|s| !s.trim().is_empty()))
}

/// Bytes of a BLOB (Go's `[]byte`); text is taken as base64. `None` when empty.
fn bytes(row: &Row<'_>, i: usize) -> Res<Option<Vec<u8>>> {
    use base64::Engine as _;
    Ok(match row.get_ref(i).map_err(read)? {
        ValueRef::Blob(b) if !b.is_empty() => Some(b.to_vec()),
        ValueRef::Text(t) if !t.is_empty() => base64::engine::general_purpose::STANDARD
            .decode(t)
            .ok()
            .filter(|b| !b.is_empty()),
        _ => None,
    })
}

fn int(row: &Row<'_>, i: usize) -> Res<Option<i64>> {
    Ok(match row.get_ref(i).map_err(read)? {
        ValueRef::Integer(n) => Some(n),
        ValueRef::Real(f) if f.is_finite() => Some(f as i64),
        ValueRef::Text(t) => std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.trim().parse().ok()),
        _ => None,
    })
}

/// A Go `bool` (stored as 0/1).
fn flag(row: &Row<'_>, i: usize) -> Res<bool> {
    Ok(match row.get_ref(i).map_err(read)? {
        ValueRef::Integer(n) => n != 0,
        ValueRef::Real(f) => f != 0.0,
        ValueRef::Text(t) => matches!(
            String::from_utf8_lossy(t)
                .trim()
                .to_ascii_lowercase()
                .as_str(),
            "1" | "t" | "true" | "yes"
        ),
        _ => false,
    })
}

/// Unix seconds of a `TIMESTAMP` column; `None` when unreadable or not after 1970
/// (Go's zero time).
fn time(row: &Row<'_>, i: usize) -> Res<Option<i64>> {
    let seconds = match row.get_ref(i).map_err(read)? {
        ValueRef::Integer(n) => Some(from_number(n)),
        ValueRef::Real(f) if f.is_finite() => Some(from_number(f as i64)),
        ValueRef::Text(t) => std::str::from_utf8(t).ok().and_then(parse_time),
        _ => None,
    };
    Ok(seconds.filter(|&s| s > 0))
}

/// Seconds from a number that may be in milli-, micro- or nanoseconds.
fn from_number(n: i64) -> i64 {
    match n {
        n if n >= 100_000_000_000_000_000 => n / 1_000_000_000,
        n if n >= 100_000_000_000_000 => n / 1_000_000,
        n if n >= 100_000_000_000 => n / 1_000,
        n => n,
    }
}

/// Unix seconds of `YYYY-MM-DD[( |T)hh:mm:ss[.fraction]][ ][Z|±hh[:]mm][ anything]`:
/// the forms of mattn/go-sqlite3 (`…05.999999999-07:00`), modernc
/// (`time.Time.String()`: `… +0700 WIB m=+0.1`), RFC 3339 and SQLite's
/// `CURRENT_TIMESTAMP` (UTC). Digits alone are a unix time.
fn parse_time(text: &str) -> Option<i64> {
    let s = text.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok().map(from_number);
    }
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (mut hour, mut minute, mut second) = (0, 0, 0);
    let mut i = 10;
    if matches!(b.get(i), Some(b' ' | b'T' | b't')) {
        if b.get(i + 3) != Some(&b':') || b.get(i + 6) != Some(&b':') {
            return None;
        }
        hour = num(i + 1, 2)?;
        minute = num(i + 4, 2)?;
        second = num(i + 7, 2)?;
        i += 9;
        if matches!(b.get(i), Some(b'.' | b',')) {
            i += 1;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
    }
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    let offset = match b.get(i) {
        Some(&sign @ (b'+' | b'-')) => {
            let hours = num(i + 1, 2)?;
            let mut j = i + 3;
            if b.get(j) == Some(&b':') {
                j += 1;
            }
            let seconds = hours * 3600 + num(j, 2).unwrap_or(0) * 60;
            if sign == b'-' { -seconds } else { seconds }
        }
        // `Z`, a zone name alone, or nothing: UTC.
        _ => 0,
    };
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second <= 60;
    valid.then(|| {
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = (if year >= 0 { year } else { year - 399 }) / 400;
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `jid` without its device (and agent) part: `62812:12@s.whatsapp.net` →
/// `62812@s.whatsapp.net`.
fn non_ad(jid: &str) -> String {
    let jid = jid.trim();
    let Some((user, server)) = jid.split_once('@') else {
        return jid.to_owned();
    };
    let Some((user, _device)) = user.split_once(':') else {
        return jid.to_owned();
    };
    // An agent (`user.agent:device`) only comes with a device.
    let user = match user.rsplit_once('.') {
        Some((bare, agent)) if !agent.is_empty() && agent.bytes().all(|b| b.is_ascii_digit()) => {
            bare
        }
        _ => user,
    };
    format!("{user}@{server}")
}

/// Go's chat name, unless it is one of its placeholders (`Group <id>`,
/// `Newsletter <id>`, the number itself).
fn chat_name(jid: &str, name: Option<String>) -> Option<String> {
    let name = name?.trim().to_owned();
    let user = jid.split('@').next().unwrap_or_default();
    let placeholder = name.is_empty()
        || name == user
        || name == jid
        || name == format!("Group {user}")
        || name == format!("Newsletter {user}");
    (!placeholder).then_some(name)
}

/// The path and query of a media URL: what Go itself uses as the direct path of
/// rows written before it stored one (v8.9).
fn path_of_url(url: &str) -> Option<String> {
    let (_, rest) = url.trim().split_once("://")?;
    let path = &rest[rest.find('/')?..];
    let path = path.split('#').next().unwrap_or_default();
    (path.len() > 1).then(|| path.to_owned())
}

/// A location as Go summarised it.
#[derive(Debug, Clone, PartialEq)]
struct GoLocation {
    name: Option<String>,
    address: Option<String>,
    latitude: f64,
    longitude: f64,
}

/// Reads Go's location summary (v8.10+): `[name — ][address — ]
/// https://maps.google.com/?q=<lat>,<long>`.
fn location_of(content: &str) -> Option<GoLocation> {
    const SEPARATOR: &str = " \u{2014} ";
    const MAPS: &str = "https://maps.google.com/?q=";
    let (head, link) = match content.trim().rsplit_once(SEPARATOR) {
        Some((head, link)) => (Some(head), link),
        None => (None, content.trim()),
    };
    let (latitude, longitude) = link.strip_prefix(MAPS)?.split_once(',')?;
    let latitude: f64 = latitude.parse().ok()?;
    let longitude: f64 = longitude.parse().ok()?;
    // NaN fails these too.
    if !(latitude.abs() <= 90.0 && longitude.abs() <= 180.0) {
        return None;
    }
    let (name, address) = match head {
        None => (None, None),
        Some(head) => match head.split_once(SEPARATOR) {
            Some((name, address)) => (Some(name), Some(address)),
            None => (Some(head), None),
        },
    };
    let owned = |s: Option<&str>| {
        s.map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Some(GoLocation {
        name: owned(name),
        address: owned(address),
        latitude,
        longitude,
    })
}

/// A media message of type `$ty` from the stored media `$m`, with the fields given
/// besides.
macro_rules! rebuilt_media {
    ($ty:ident, $m:expr, { $($field:ident: $value:expr),* $(,)? }) => {
        MessageField::some(wa::message::$ty {
            url: $m.url.clone(),
            direct_path: $m.direct_path.clone(),
            media_key: $m.media_key.clone(),
            file_sha256: $m.file_sha256.clone(),
            file_enc_sha256: $m.file_enc_sha256.clone(),
            file_length: $m.file_length,
            mimetype: $m.mimetype.clone(),
            $($field: $value,)*
            ..Default::default()
        })
    };
}

/// The WhatsApp message a Go row stands for (Go keeps none), encoded: what quoting,
/// forwarding and downloading read. `None` when the row does not hold enough.
fn rebuilt_message(
    kind: &str,
    body: Option<&str>,
    media: Option<&StoredMedia>,
    location: Option<&GoLocation>,
) -> Option<Vec<u8>> {
    let mut out = wa::Message::default();
    match kind {
        "text" => out.conversation = Some(body?.to_owned()),
        "location" => {
            let place = location?;
            out.location_message = MessageField::some(wa::message::LocationMessage {
                degrees_latitude: Some(place.latitude),
                degrees_longitude: Some(place.longitude),
                name: place.name.clone(),
                address: place.address.clone(),
                ..Default::default()
            });
        }
        _ => {
            let m = media.filter(|m| m.direct_path.is_some() && m.media_key.is_some())?;
            let caption = body.map(str::to_owned);
            match kind {
                "image" => {
                    out.image_message = rebuilt_media!(ImageMessage, m, { caption: caption })
                }
                "video" => {
                    out.video_message = rebuilt_media!(VideoMessage, m, { caption: caption })
                }
                "video_note" => {
                    out.ptv_message = rebuilt_media!(VideoMessage, m, { caption: caption })
                }
                "audio" => out.audio_message = rebuilt_media!(AudioMessage, m, {}),
                "document" => {
                    out.document_message = rebuilt_media!(DocumentMessage, m, {
                        caption: caption,
                        title: m.file_name.clone(),
                        file_name: m.file_name.clone(),
                    })
                }
                "sticker" => out.sticker_message = rebuilt_media!(StickerMessage, m, {}),
                _ => return None,
            }
        }
    }
    Some(out.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{ChatQuery, MessageQuery};

    const ANN: &str = "62811@s.whatsapp.net";
    const GROUP: &str = "120363012345@g.us";
    const ME: &str = "62899@s.whatsapp.net";
    const OTHER_ACCOUNT: &str = "62877@s.whatsapp.net";

    /// The chat storage tables of Go v7.2 to v7.11 (migrations 1 and 2).
    const V7: &str = "
        CREATE TABLE schema_info (
            version INTEGER PRIMARY KEY DEFAULT 0,
            updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
        INSERT INTO schema_info (version) VALUES (1), (2);
        CREATE TABLE chats (
            jid TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            last_message_time TIMESTAMP NOT NULL,
            ephemeral_expiration INTEGER DEFAULT 0,
            created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
            updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
        CREATE TABLE messages (
            id TEXT NOT NULL,
            chat_jid TEXT NOT NULL,
            sender TEXT NOT NULL,
            content TEXT,
            timestamp TIMESTAMP NOT NULL,
            is_from_me BOOLEAN DEFAULT FALSE,
            media_type TEXT,
            filename TEXT,
            url TEXT,
            media_key BLOB,
            file_sha256 BLOB,
            file_enc_sha256 BLOB,
            file_length INTEGER DEFAULT 0,
            created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
            updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
            PRIMARY KEY (id, chat_jid),
            FOREIGN KEY (chat_jid) REFERENCES chats(jid) ON DELETE CASCADE);
        CREATE INDEX idx_messages_chat_jid ON messages(chat_jid);";

    /// The tables of Go v8.11 to v9.2 that the import reads (43 migrations).
    const V9: &str = include_str!("../../tests/e2e/fixtures/go-chatstorage-v9.sql");

    /// A Go file at `dir/name` made by `ddl` and `fill`, closed.
    fn go_file(dir: &Path, name: &str, ddl: &str, fill: impl FnOnce(&Connection)) -> PathBuf {
        let path = dir.join(name);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(ddl).unwrap();
        fill(&conn);
        drop(conn);
        path
    }

    fn store(dir: &Path) -> MessageStore {
        MessageStore::open(&dir.join("chat.db")).unwrap()
    }

    fn page(limit: u32) -> MessageQuery {
        MessageQuery {
            limit,
            ..MessageQuery::default()
        }
    }

    fn v7_file(dir: &Path) -> PathBuf {
        go_file(dir, "v7.db", V7, |c| {
            c.execute_batch(&format!(
                "INSERT INTO chats (jid, name, last_message_time, created_at, updated_at) VALUES
                   ('{ANN}', 'Ann', '2024-05-01 10:02:00+07:00',
                    '2024-05-01 03:00:00', '2024-05-01 03:02:00'),
                   ('{GROUP}', 'Group 120363012345', '2024-05-01 09:00:00+07:00',
                    '2024-05-01 02:00:00', '2024-05-01 02:00:00');"
            ))
            .unwrap();
            let text = |id: &str, chat: &str, sender: &str, content: &str, at: &str, mine: bool| {
                c.execute(
                    "INSERT INTO messages (id, chat_jid, sender, content, timestamp, is_from_me, \
                     media_type, filename, url, file_length) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, '', '', '', 0)",
                    params![id, chat, sender, content, at, mine],
                )
                .unwrap();
            };
            text("A1", ANN, ANN, "hello", "2024-05-01 10:00:00+07:00", false);
            // Sent from here: Go keeps the sender's device part.
            text(
                "A2",
                ANN,
                "62899:12@s.whatsapp.net",
                "hi back",
                "2024-05-01 10:01:00+07:00",
                true,
            );
            text(
                "G1",
                GROUP,
                "62822@s.whatsapp.net",
                "morning",
                "2024-05-01 09:00:00+07:00",
                false,
            );
            c.execute(
                "INSERT INTO messages (id, chat_jid, sender, content, timestamp, is_from_me, \
                 media_type, filename, url, media_key, file_sha256, file_enc_sha256, file_length) \
                 VALUES ('IMG', ?1, ?1, 'look', '2024-05-01 10:02:00+07:00', 0, 'image', \
                 'image_20240501_100200_look.jpg', \
                 'https://mmg.whatsapp.net/v/t62.7118-24/abc.enc?ccb=11-4&oh=x&oe=y', \
                 ?2, ?3, ?4, 1234)",
                params![ANN, vec![7u8; 32], vec![8u8; 32], vec![9u8; 32]],
            )
            .unwrap();
        })
    }

    #[test]
    fn a_v7_file_is_imported_once_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let go = v7_file(dir.path());
        let before = std::fs::read(&go).unwrap();
        let store = store(dir.path());

        let counts = import_go_chat_storage(&go, dir.path(), &store, Some(ME)).unwrap();
        assert!(!counts.schema.device_scoped);
        assert_eq!(counts.schema.schema_version, Some(2));
        assert_eq!(counts.schema.releases(), "v7.2-v7.11");
        assert_eq!(
            (
                counts.chats,
                counts.messages,
                counts.reactions,
                counts.edits
            ),
            (2, 4, 0, 0)
        );
        assert_eq!(counts.skipped_other_devices + counts.skipped_unreadable, 0);

        let (chats, total) = store
            .chats(&ChatQuery {
                limit: 10,
                ..ChatQuery::default()
            })
            .unwrap();
        assert_eq!(total, 2);
        assert_eq!(chats[0].jid, ANN, "latest chat first");
        assert_eq!(chats[0].name.as_deref(), Some("Ann"));
        assert_eq!(chats[0].last_message_at, 1_714_532_520);
        assert_eq!(chats[0].created_at, 1_714_532_400);
        assert_eq!(
            chats[1].name, None,
            "Go's placeholder group name is no name"
        );

        let (messages, total) = store.messages(ANN, &page(10)).unwrap();
        assert_eq!(total, 3, "the chat's count follows the imported messages");
        let ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["IMG", "A2", "A1"]);

        let hello = store.get(ANN, "A1").unwrap().unwrap();
        assert_eq!(hello.timestamp, 1_714_532_400);
        assert_eq!(
            (hello.kind.as_str(), hello.body.as_deref()),
            ("text", Some("hello"))
        );
        assert!(!hello.is_from_me);
        let decoded = wa::Message::decode_from_slice(&hello.raw).unwrap();
        assert_eq!(decoded.conversation.as_deref(), Some("hello"));

        let mine = store.get(ANN, "A2").unwrap().unwrap();
        assert!(mine.is_from_me);
        assert_eq!(mine.sender, ME);

        let image = store.get(ANN, "IMG").unwrap().unwrap();
        assert_eq!(
            (image.kind.as_str(), image.body.as_deref()),
            ("image", Some("look"))
        );
        let media = image.media.clone().expect("media");
        assert_eq!(
            media.direct_path.as_deref(),
            Some("/v/t62.7118-24/abc.enc?ccb=11-4&oh=x&oe=y"),
            "the direct path comes from the URL, as Go does for its old rows"
        );
        assert_eq!(media.media_key, Some(vec![7; 32]));
        assert_eq!(media.file_sha256, Some(vec![8; 32]));
        assert_eq!(media.file_enc_sha256, Some(vec![9; 32]));
        assert_eq!(media.file_length, Some(1234));
        assert_eq!(media.file_name, None, "Go's made-up name is not the file's");
        let decoded = wa::Message::decode_from_slice(&image.raw).unwrap();
        let found = crate::whatsapp::content::media_of(&decoded).expect("downloadable");
        assert_eq!(found.kind, "image");
        assert_eq!(found.caption, Some("look"));
        assert_eq!(found.file_length, Some(1234));

        let media_only = MessageQuery {
            media_only: true,
            ..page(10)
        };
        assert_eq!(store.messages(ANN, &media_only).unwrap().1, 1);

        let again = import_go_chat_storage(&go, dir.path(), &store, Some(ME)).unwrap();
        assert_eq!(
            (again.chats, again.messages, again.reactions, again.edits),
            (0, 0, 0, 0),
            "a second run adds nothing"
        );
        assert_eq!(store.count().unwrap(), 4);
        assert_eq!(store.messages(ANN, &page(10)).unwrap().1, 3);
        assert_eq!(
            std::fs::read(&go).unwrap(),
            before,
            "the Go file is not written"
        );
    }

    #[test]
    fn the_go_slot_of_an_account_is_found_by_its_device_or_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let go = v9_file(dir.path());
        let slot = |jid: &str| go_slot(&go, dir.path(), jid).unwrap().map(|s| s.id);
        assert_eq!(slot("62899:3@s.whatsapp.net").as_deref(), Some("slot-a"));
        assert_eq!(slot("62877:5@s.whatsapp.net").as_deref(), Some("slot-b"));
        // Another device of a number whose row is pinned to a device: not that row.
        assert_eq!(slot("62899:9@s.whatsapp.net"), None);
        assert_eq!(slot("62811:1@s.whatsapp.net"), None);
        let conn = Connection::open(&go).unwrap();
        conn.execute_batch(&format!(
            "INSERT INTO devices (device_id, jid, ad_jid, webhook_url, webhook_secret,
                                  webhook_events, webhook_insecure_skip_verify)
             VALUES ('slot-c', '{ME}', '62899:4@s.whatsapp.net', 'https://h.example/c',
                     's', 'message', 1),
                    ('legacy', '62811@s.whatsapp.net', '', NULL, '', '', 0),
                    ('twin-1', '62822@s.whatsapp.net', NULL, NULL, '', '', 0),
                    ('twin-2', '62822@s.whatsapp.net', '', NULL, '', '', 0);"
        ))
        .unwrap();
        drop(conn);
        // A row for the number pinned to no device (Go's older slots).
        assert_eq!(slot("62811:1@s.whatsapp.net").as_deref(), Some("legacy"));
        // Two such rows: no guess.
        assert_eq!(slot("62822:1@s.whatsapp.net"), None);
        let pinned = go_slot(&go, dir.path(), "62899:4@s.whatsapp.net")
            .unwrap()
            .unwrap();
        assert_eq!(
            pinned,
            GoSlot {
                id: "slot-c".into(),
                webhook_url: "https://h.example/c".into(),
                webhook_secret: "s".into(),
                webhook_events: "message".into(),
                webhook_insecure_skip_verify: true,
            }
        );
    }

    fn v9_file(dir: &Path) -> PathBuf {
        go_file(dir, "v9.db", V9, |c| {
            for version in 1..=43 {
                c.execute("INSERT INTO schema_info (version) VALUES (?1)", [version])
                    .unwrap();
            }
            c.execute_batch(&format!(
                "INSERT INTO devices (device_id, display_name, jid, ad_jid) VALUES
                   ('slot-a', 'Phone A', '{ME}', '62899:3@s.whatsapp.net'),
                   ('slot-b', 'Phone B', '{OTHER_ACCOUNT}', '62877:5@s.whatsapp.net');
                 INSERT INTO chats (jid, device_id, name, last_message_time,
                                    ephemeral_expiration, archived) VALUES
                   ('{ANN}', '{ME}', 'Ann', '2025-01-15 12:40:00-03:00', 604800, 1),
                   ('{ANN}', '{OTHER_ACCOUNT}', 'Ann (B)', '2025-01-15 12:40:00-03:00', 0, 0);"
            ))
            .unwrap();
            let message = |id: &str, device: &str, content: &str, at: &str, media_type: &str| {
                c.execute(
                    "INSERT INTO messages (id, chat_jid, device_id, sender, content, timestamp, \
                     is_from_me, media_type, filename, url, file_length) \
                     VALUES (?1, ?2, ?3, ?2, ?4, ?5, 0, ?6, '', '', 0)",
                    params![id, ANN, device, content, at, media_type],
                )
                .unwrap();
            };
            // Edited: Go's row holds the latest text.
            message("T1", ME, "edited text", "2025-01-15 15:30:00+00:00", "");
            // modernc's format.
            message(
                "T2",
                ME,
                "later",
                "2025-01-15 15:31:00 +0000 UTC m=+12.000000001",
                "",
            );
            message(
                "call:XYZ",
                ME,
                "Incoming call",
                "2025-01-15 15:32:00+00:00",
                "call",
            );
            message(
                "LOC",
                ME,
                "Office \u{2014} Main St 1 \u{2014} https://maps.google.com/?q=-6.2,106.8",
                "2025-01-15 15:33:00+00:00",
                "",
            );
            // Written while the slot had no JID yet.
            message(
                "S1",
                "slot-a",
                "from the slot",
                "2025-01-15 15:34:00+00:00",
                "",
            );
            message(
                "B1",
                OTHER_ACCOUNT,
                "not mine",
                "2025-01-15 15:35:00+00:00",
                "",
            );
            c.execute(
                "INSERT INTO messages (id, chat_jid, device_id, sender, content, timestamp, \
                 is_from_me, media_type, filename, url, direct_path, media_key, file_sha256, \
                 file_enc_sha256, file_length) \
                 VALUES ('DOC', ?1, ?2, ?2, 'Q1', '2025-01-15 15:36:00+00:00', 1, 'document', \
                 'report.pdf', 'https://mmg.whatsapp.net/v/doc.enc?x=1', '/v/doc.enc?x=1', \
                 ?3, ?4, ?5, 4321)",
                params![ANN, ME, vec![1u8; 32], vec![2u8; 32], vec![3u8; 32]],
            )
            .unwrap();
            let react = |device: &str, reactor: &str, emoji: &str| {
                c.execute(
                    "INSERT INTO message_reactions (message_id, chat_jid, device_id, reactor_jid, \
                     emoji, reaction_timestamp) VALUES ('T1', ?1, ?2, ?3, ?4, \
                     '2025-01-15 15:40:00+00:00')",
                    params![ANN, device, reactor, emoji],
                )
                .unwrap();
            };
            react(ME, ANN, "\u{1F44D}");
            react(ME, "62833@s.whatsapp.net", "");
            react(OTHER_ACCOUNT, "62844@s.whatsapp.net", "\u{2764}");
            c.execute(
                "INSERT INTO message_edits (original_message_id, edit_event_id, chat_jid, \
                 device_id, editor, previous_content, new_content, edited_at) \
                 VALUES ('T1', 'E1', ?1, ?2, ?1, 'first text', 'edited text', \
                 '2025-01-15 15:45:00.5+00:00')",
                params![ANN, ME],
            )
            .unwrap();
        })
    }

    #[test]
    fn a_v9_file_gives_the_accounts_rows_with_reactions_and_edits() {
        let dir = tempfile::tempdir().unwrap();
        let go = v9_file(dir.path());
        let before = std::fs::read(&go).unwrap();
        let store = store(dir.path());

        // The account as the session names it, with its device part.
        let counts =
            import_go_chat_storage(&go, dir.path(), &store, Some("62899:3@s.whatsapp.net"))
                .unwrap();
        assert_eq!(counts.schema.releases(), "v8.11-v9.2");
        assert_eq!(counts.schema.schema_version, Some(43));
        assert_eq!(
            (
                counts.chats,
                counts.messages,
                counts.reactions,
                counts.edits
            ),
            (1, 6, 1, 1)
        );
        assert_eq!(counts.skipped_other_devices, 1);
        assert!(
            store.get(ANN, "B1").unwrap().is_none(),
            "another account's message"
        );
        assert!(
            store.get(ANN, "S1").unwrap().is_some(),
            "the slot's message"
        );

        let chat = store.chat(ANN).unwrap().unwrap();
        assert_eq!(chat.name.as_deref(), Some("Ann"));
        assert!(chat.archived);
        assert_eq!(chat.expiration, 604_800);
        assert_eq!(store.messages(ANN, &page(10)).unwrap().1, 6);

        let edited = store.get(ANN, "T1").unwrap().unwrap();
        assert_eq!(edited.body.as_deref(), Some("edited text"));
        assert_eq!(edited.edited_at, Some(1_736_955_900));
        assert_eq!(
            store.reactions(ANN, "T1").unwrap(),
            [(ANN.to_owned(), "\u{1F44D}".to_owned())]
        );
        assert_eq!(
            store.get(ANN, "T2").unwrap().unwrap().timestamp,
            1_736_955_060,
            "modernc's time format"
        );

        let call = store.get(ANN, "call:XYZ").unwrap().unwrap();
        assert_eq!(
            (call.kind.as_str(), call.body.as_deref()),
            ("other", Some("Incoming call"))
        );
        assert!(call.raw.is_empty() && call.media.is_none());

        let place = store.get(ANN, "LOC").unwrap().unwrap();
        assert_eq!(
            (place.kind.as_str(), place.body.as_deref()),
            ("location", Some("Office"))
        );
        let decoded = wa::Message::decode_from_slice(&place.raw).unwrap();
        let location = decoded.location_message.as_option().expect("a location");
        assert_eq!(location.degrees_latitude, Some(-6.2));
        assert_eq!(location.address.as_deref(), Some("Main St 1"));

        let doc = store.get(ANN, "DOC").unwrap().unwrap();
        assert!(doc.is_from_me);
        assert_eq!(
            (doc.kind.as_str(), doc.body.as_deref()),
            ("document", Some("Q1"))
        );
        let media = doc.media.clone().expect("media");
        assert_eq!(media.file_name.as_deref(), Some("report.pdf"));
        assert_eq!(media.direct_path.as_deref(), Some("/v/doc.enc?x=1"));
        assert_eq!(media.media_key, Some(vec![1; 32]));
        let decoded = wa::Message::decode_from_slice(&doc.raw).unwrap();
        let found = crate::whatsapp::content::media_of(&decoded).expect("downloadable");
        assert_eq!(
            (found.kind, found.file_name),
            ("document", Some("report.pdf"))
        );

        let again = import_go_chat_storage(&go, dir.path(), &store, Some("62899:3@s.whatsapp.net"))
            .unwrap();
        assert_eq!(
            (again.chats, again.messages, again.reactions, again.edits),
            (0, 0, 0, 0)
        );
        assert_eq!(store.count().unwrap(), 6);
        assert_eq!(std::fs::read(&go).unwrap(), before);
    }

    #[test]
    fn without_a_device_every_accounts_rows_come() {
        let dir = tempfile::tempdir().unwrap();
        let go = v9_file(dir.path());
        let store = store(dir.path());
        let counts = import_go_chat_storage(&go, dir.path(), &store, None).unwrap();
        assert_eq!(counts.messages, 7);
        assert_eq!(counts.reactions, 2);
        assert_eq!(counts.skipped_other_devices, 0);
        assert!(store.get(ANN, "B1").unwrap().is_some());
    }

    #[test]
    fn a_half_migrated_v7_file_reads_as_v7() {
        let dir = tempfile::tempdir().unwrap();
        let go = go_file(dir.path(), "half.db", V7, |c| {
            c.execute_batch(
                "CREATE TABLE devices (device_id VARCHAR(255) PRIMARY KEY,
                     display_name VARCHAR(255) DEFAULT '', jid VARCHAR(255) DEFAULT '',
                     created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                     updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
                 INSERT INTO schema_info (version) VALUES (3), (4);",
            )
            .unwrap();
        });
        let schema = inspect_go_chat_storage(&go, dir.path()).unwrap();
        assert!(!schema.device_scoped && schema.devices);
        assert_eq!(schema.schema_version, Some(4));
        assert!(schema.releases().starts_with("v7.2-v7.11"));
    }

    #[test]
    fn other_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let refused = |path: &Path| {
            matches!(
                import_go_chat_storage(path, dir.path(), &store, None),
                Err(GoImportError::Unrecognised { .. })
            )
        };

        let other = go_file(
            dir.path(),
            "other.db",
            "CREATE TABLE notes (x TEXT);",
            |_| {},
        );
        assert!(refused(&other));

        let session = go_file(
            dir.path(),
            "whatsapp.db",
            "CREATE TABLE whatsmeow_device (jid TEXT PRIMARY KEY);",
            |_| {},
        );
        assert!(refused(&session));

        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "this is not a database, not at all. ".repeat(100)).unwrap();
        assert!(refused(&text));

        // Our own store is not Go's.
        assert!(refused(&dir.path().join("chat.db")));

        let lacking = go_file(
            dir.path(),
            "lacking.db",
            "CREATE TABLE chats (jid TEXT, name TEXT);
             CREATE TABLE messages (id TEXT, chat_jid TEXT);",
            |_| {},
        );
        let Err(GoImportError::Unrecognised { reason, .. }) =
            import_go_chat_storage(&lacking, dir.path(), &store, None)
        else {
            panic!("accepted");
        };
        assert!(reason.contains("last_message_time"), "{reason}");

        assert!(matches!(
            import_go_chat_storage(&dir.path().join("absent.db"), dir.path(), &store, None),
            Err(GoImportError::NotFound(_))
        ));
        assert_eq!(store.count().unwrap(), 0);
    }

    #[test]
    fn go_times_in_every_form() {
        for (text, expected) in [
            ("2024-05-01 10:00:00+07:00", Some(1_714_532_400)),
            ("2024-05-01 03:00:05.123456789+00:00", Some(1_714_532_405)),
            ("2025-01-15 12:30:00-03:00", Some(1_736_955_000)),
            ("2025-01-15 15:30:00 +0000 UTC", Some(1_736_955_000)),
            (
                "2025-01-15 22:30:00.25 +0700 WIB m=+0.012",
                Some(1_736_955_000),
            ),
            ("2024-02-29T23:59:59Z", Some(1_709_251_199)),
            ("2024-05-01 03:01:00", Some(1_714_532_460)),
            ("1714532400", Some(1_714_532_400)),
            ("1714532400000", Some(1_714_532_400)),
            ("1970-01-01 00:00:00+00:00", Some(0)),
            ("2024-13-01 00:00:00", None),
            ("yesterday", None),
        ] {
            assert_eq!(parse_time(text), expected, "{text}");
        }
    }

    #[test]
    fn jids_names_urls_and_locations() {
        assert_eq!(non_ad("62899:12@s.whatsapp.net"), ME);
        assert_eq!(non_ad("62899.1:12@s.whatsapp.net"), ME);
        assert_eq!(non_ad(GROUP), GROUP);
        assert_eq!(chat_name(ANN, Some("62811".into())), None);
        assert_eq!(
            chat_name(GROUP, Some("Family".into())).as_deref(),
            Some("Family")
        );
        assert_eq!(
            chat_name("123@newsletter", Some("Newsletter 123".into())),
            None
        );
        assert_eq!(
            path_of_url("https://mmg.whatsapp.net/v/t62/x.enc?a=1#frag").as_deref(),
            Some("/v/t62/x.enc?a=1")
        );
        assert_eq!(path_of_url("https://mmg.whatsapp.net"), None);
        let place = location_of("https://maps.google.com/?q=1e-05,-70.5").unwrap();
        assert_eq!(
            (place.name, place.latitude, place.longitude),
            (None, 0.00001, -70.5)
        );
        assert!(location_of("see https://maps.google.com/?q=1,2 there").is_none());
        assert!(location_of("https://maps.google.com/?q=100,2").is_none());
    }
}
