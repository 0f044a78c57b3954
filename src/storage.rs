//! The files this server keeps, and what it may do with files it finds.
//!
//! `--db-path` (or Go's `--db-uri file:…`) names the session file as the Go server
//! knows it, `storages/whatsapp.db` by default. That file is the Go server's: when it
//! holds a whatsmeow session it is imported read-only and never changed. This
//! server's own files live in the same folder under names of their own:
//!
//! | file | what |
//! |---|---|
//! | `whatsapp-rust.db` | the WhatsApp session (whatsapp-rust's schema) |
//! | `chat.db` | the message store |
//! | `outbox.db` | the webhook outbox |
//! | `server.lock` | held while a server runs (empty) |
//!
//! A file at one of these paths that is not what this server would have written
//! there stops startup with one error line; nothing else is deleted or rewritten.
//! An older version of this server kept its session at `--db-path` itself: such a
//! store is recognised by its tables and moved to `whatsapp-rust.db` once.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

/// This server's WhatsApp session store, in the storage folder.
pub const SESSION_FILE: &str = "whatsapp-rust.db";
/// The message store.
pub const MESSAGES_FILE: &str = "chat.db";
/// The webhook outbox.
pub const OUTBOX_FILE: &str = "outbox.db";
/// The lock held while a server runs.
pub const LOCK_FILE: &str = "server.lock";
/// This server's account registry (the slots of `/devices`), beside the lock.
pub const ACCOUNTS_FILE: &str = "accounts.db";
/// Where accounts other than the first keep their files, one folder each.
pub const ACCOUNTS_DIR: &str = "accounts";
/// The Go server's chat history (v7+), read and never written.
pub const GO_CHATS_FILE: &str = "chatstorage.db";

/// What a file at a storage path turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Missing,
    /// Zero bytes: nothing in it to lose.
    Empty,
    /// whatsapp-rust's session store (this server's).
    OurSession,
    /// This server's message store.
    OurMessages,
    /// This server's webhook outbox.
    OurOutbox,
    /// This server's account registry.
    OurAccounts,
    /// A whatsmeow session store (the Go server's), at this schema version.
    GoSession {
        version: i64,
    },
    /// The Go server's chat history (`chatstorage.db`).
    GoChats,
    /// A database some process has open (the Go server running?).
    InUse,
    /// Anything else; the text says what it looked like.
    Foreign(String),
}

impl Kind {
    /// Said in an error line: what was found.
    pub fn describe(&self) -> String {
        match self {
            Kind::Missing => "nothing".into(),
            Kind::Empty => "an empty file".into(),
            Kind::OurSession => "this server's WhatsApp session".into(),
            Kind::OurMessages => "this server's message store".into(),
            Kind::OurOutbox => "this server's webhook outbox".into(),
            Kind::OurAccounts => "this server's account registry".into(),
            Kind::GoSession { version } => {
                format!("the Go server's WhatsApp session (whatsmeow schema {version})")
            }
            Kind::GoChats => "the Go server's chat history".into(),
            Kind::InUse => "a database another program has open".into(),
            Kind::Foreign(what) => what.clone(),
        }
    }
}

/// Tables that tell a file apart (any one of each set is enough only together with
/// the others of its set).
const OUR_SESSION_TABLES: &[&str] = &["device", "identities", "sessions", "prekeys"];
const OUR_MESSAGES_TABLES: &[&str] = &["chats", "messages", "reactions", "edits", "receipts"];
const OUR_OUTBOX_TABLES: &[&str] = &["webhook_events", "webhook_deliveries"];
const OUR_ACCOUNTS_TABLES: &[&str] = &["accounts"];
const GO_CHATS_TABLES: &[&str] = &["chats", "messages"];

/// Looks at the file at one of this server's own paths without changing it (read
/// with its log: after a crash a store may have everything there).
pub fn identify(path: &Path) -> Kind {
    identify_with(path, None, false)
}

/// [`identify`] for a file another program owns (the Go server's), whose recent
/// changes may still be only in its write-ahead log: then it is read from a copy
/// made in `scratch` (see [`open_foreign`]).
pub fn identify_foreign(path: &Path, scratch: &Path) -> Kind {
    if in_use(path) {
        return Kind::InUse;
    }
    // The main file almost always tells (its schema was checkpointed long ago):
    // read in place, no copy.
    match identify_with(path, None, true) {
        Kind::Foreign(_) if has_pending_log(path) => identify_with(path, Some(scratch), true),
        known => known,
    }
}

fn identify_with(path: &Path, scratch: Option<&Path>, foreign: bool) -> Kind {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Kind::Missing,
        Err(e) => return Kind::Foreign(format!("a file that cannot be read ({e})")),
    };
    if meta.is_dir() {
        return Kind::Foreign("a folder".into());
    }
    if meta.len() == 0 {
        return Kind::Empty;
    }
    let mut header = [0u8; 16];
    let read =
        std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header));
    match read {
        Err(e) if e.kind() != std::io::ErrorKind::UnexpectedEof => {
            return Kind::Foreign(format!("a file that cannot be read ({e})"));
        }
        Ok(()) if &header == b"SQLite format 3\0" => {}
        _ => return Kind::Foreign("a file that is not an SQLite database".into()),
    }
    let view = match scratch {
        Some(scratch) => open_foreign(path, scratch).map_err(|e| e.to_string()),
        // This server's own paths: its log is read (a store after a crash may have
        // everything there).
        None if !foreign => open_read_only(path)
            .map(|conn| Foreign { conn, _copy: None })
            .map_err(|e| e.to_string()),
        None => open_immutable(path)
            .map(|conn| Foreign { conn, _copy: None })
            .map_err(|e| e.to_string()),
    };
    let view = match view {
        Ok(view) => view,
        Err(e) => return Kind::Foreign(e),
    };
    let tables = match table_names(&view.conn) {
        Ok(tables) => tables,
        Err(e) => return Kind::Foreign(format!("a damaged or half-written SQLite database ({e})")),
    };
    let has = |set: &[&str]| set.iter().all(|t| tables.iter().any(|have| have == t));
    if tables.iter().any(|t| t == "whatsmeow_version") {
        // A version that cannot be read (a damaged file) is -1: the import's own
        // checks then say what is wrong with it.
        let version = whatsmeow_version(&view.conn).unwrap_or(-1);
        return Kind::GoSession { version };
    }
    if has(OUR_SESSION_TABLES) && tables.iter().any(|t| t == "__diesel_schema_migrations") {
        return Kind::OurSession;
    }
    if has(OUR_MESSAGES_TABLES) {
        return Kind::OurMessages;
    }
    if has(OUR_OUTBOX_TABLES) {
        return Kind::OurOutbox;
    }
    if has(OUR_ACCOUNTS_TABLES) && tables.iter().any(|t| t == "account_webhooks") {
        return Kind::OurAccounts;
    }
    if has(GO_CHATS_TABLES) {
        return Kind::GoChats;
    }
    if tables.is_empty() {
        return Kind::Foreign("an SQLite database with no tables".into());
    }
    let mut shown: Vec<&str> = tables.iter().map(String::as_str).take(5).collect();
    if tables.len() > 5 {
        shown.push("…");
    }
    Kind::Foreign(format!(
        "an SQLite database of another program (tables: {})",
        shown.join(", ")
    ))
}

/// Opens one of this server's own SQLite files read-only (its log is read, so a
/// `-shm` may be created beside it: for the Go server's files use
/// [`open_foreign`]).
pub fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

/// Opens an SQLite file read-only in `immutable` mode: nothing is written or
/// created beside it, and its journal files are not read (use [`open_foreign`]
/// for a file whose log may hold changes).
pub fn open_immutable(path: &Path) -> rusqlite::Result<Connection> {
    // The path goes into a URI: `%`, `?` and `#` would be read as syntax.
    const IN_URI: &percent_encoding::AsciiSet =
        &percent_encoding::CONTROLS.add(b'%').add(b'?').add(b'#');
    let text = path
        .to_str()
        .ok_or_else(|| rusqlite::Error::InvalidPath(path.to_owned()))?;
    let uri = format!(
        "file:{}?immutable=1",
        percent_encoding::utf8_percent_encode(text, IN_URI)
    );
    Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

/// A read-only view of a database another program owns (the Go server's files):
/// its latest committed state, read without writing or creating anything beside
/// it. Holds the copy it may have made until dropped.
pub struct Foreign {
    pub conn: Connection,
    _copy: Option<tempfile::TempDir>,
}

/// Why a foreign database could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ForeignError {
    #[error(
        "{path} is open in another program: is the Go server still running? Stop it \
         first, then start this server again (both must never run with the same \
         device); it is left untouched"
    )]
    InUse { path: String },
    #[error("cannot copy {path} to read it ({source}); it is left untouched")]
    Copy {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is a damaged or half-written SQLite database ({source}); it is left untouched")]
    Sql {
        path: String,
        source: rusqlite::Error,
    },
}

/// Opens `path`, which another program owns, for reading. The Go server keeps its
/// files in WAL mode and does not always close them, so its last changes may be
/// only in the `-wal` file: then the file and its log are copied into a private
/// folder in `scratch` and read there (SQLite folds the log in on the copy).
/// Otherwise the file is read in place, in `immutable` mode. A file some process
/// still has open (its `-shm` lock) is refused: it may be changing as it is read.
pub fn open_foreign(path: &Path, scratch: &Path) -> Result<Foreign, ForeignError> {
    let shown = || path.display().to_string();
    let sql = |source| ForeignError::Sql {
        path: shown(),
        source,
    };
    if in_use(path) {
        return Err(ForeignError::InUse { path: shown() });
    }
    if !has_pending_log(path) {
        let conn = open_immutable(path).map_err(sql)?;
        return Ok(Foreign { conn, _copy: None });
    }
    let copy_err = |source| ForeignError::Copy {
        path: shown(),
        source,
    };
    let dir = tempfile::Builder::new()
        .prefix(SNAPSHOT_PREFIX)
        .tempdir_in(scratch)
        .map_err(copy_err)?;
    let copy = dir.path().join("snapshot.db");
    std::fs::copy(path, &copy).map_err(copy_err)?;
    // The log and a rollback journal; not the -shm index, which SQLite rebuilds.
    let [wal, _, journal] = companions(path);
    let [copy_wal, _, copy_journal] = companions(&copy);
    for (from, to) in [(wal, copy_wal), (journal, copy_journal)] {
        if std::fs::metadata(&from).is_ok_and(|m| m.len() > 0) {
            std::fs::copy(&from, &to).map_err(copy_err)?;
        }
    }
    let conn = Connection::open_with_flags(
        &copy,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql)?;
    Ok(Foreign {
        conn,
        _copy: Some(dir),
    })
}

/// Folders [`open_foreign`] copies into; one left by a crash is removed at start.
pub const SNAPSHOT_PREFIX: &str = ".go-snapshot-";

/// Removes copies [`open_foreign`] left in `dir` (a crash while reading).
pub fn remove_stale_snapshots(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let ours = entry
            .file_name()
            .to_string_lossy()
            .starts_with(SNAPSHOT_PREFIX);
        if ours && entry.path().is_dir() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Some process has the database at `path` open in WAL mode: every connection
/// holds a shared lock on the "dead man switch" byte (128) of its `-shm` file.
/// Asked with F_GETLK, which takes no lock.
fn in_use(path: &Path) -> bool {
    use nix::fcntl::{FcntlArg, fcntl};
    let [_, shm, _] = companions(path);
    let Ok(file) = std::fs::File::open(&shm) else {
        return false;
    };
    let mut probe = nix::libc::flock {
        l_type: nix::libc::F_WRLCK as _,
        l_whence: nix::libc::SEEK_SET as _,
        l_start: 128,
        l_len: 1,
        l_pid: 0,
    };
    match fcntl(&file, FcntlArg::F_GETLK(&mut probe)) {
        Ok(_) => i32::from(probe.l_type) != nix::libc::F_UNLCK,
        Err(_) => false,
    }
}

fn table_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?;
    let names = stmt
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(names)
}

fn whatsmeow_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT version FROM whatsmeow_version LIMIT 1", [], |row| {
        row.get(0)
    })
}

/// The last four bytes of the version-4 UUIDs in the names of files this server
/// writes into folders it shares with the Go server (`statics/media`, the QR
/// folder): still Go's shape (`<unix>-<uuid4>.<ext>`, `scan-qr-<uuid4>.png`), but
/// recognisable, so that only this server's files are ever deleted there. A Go
/// file carries the same four bytes by chance once in four billion.
const OWN_UUID_TAG: [u8; 4] = *b"rust";

/// A random version-4 UUID that [`is_own_uuid`] recognises.
pub fn own_uuid() -> uuid::Uuid {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    // Bytes 12 to 15 are random bits of a version-4 UUID (not version or variant).
    bytes[12..].copy_from_slice(&OWN_UUID_TAG);
    uuid::Uuid::from_bytes(bytes)
}

/// `text` is a UUID made by [`own_uuid`].
pub fn is_own_uuid(text: &str) -> bool {
    uuid::Uuid::parse_str(text)
        .is_ok_and(|u| u.get_version_num() == 4 && u.as_bytes()[12..] == OWN_UUID_TAG)
}

/// A short digest of a database file and its write-ahead log as they are on disk:
/// it changes whenever the program that owns them writes.
pub fn fingerprint(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    let [wal, _, _] = companions(path);
    for part in [path.to_owned(), wal] {
        match std::fs::File::open(&part) {
            Ok(mut file) => {
                let mut chunk = vec![0u8; 64 * 1024];
                loop {
                    let n = std::io::Read::read(&mut file, &mut chunk)?;
                    if n == 0 {
                        break;
                    }
                    digest.update(&chunk[..n]);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        digest.update(b"|");
    }
    Ok(hex::encode(&digest.finalize()[..12]))
}

/// The journal files SQLite keeps beside `path`.
pub fn companions(path: &Path) -> [PathBuf; 3] {
    ["-wal", "-shm", "-journal"].map(|suffix| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    })
}

/// A write-ahead log beside `path` that still holds changes not in the file.
pub fn has_pending_log(path: &Path) -> bool {
    let [wal, _, journal] = companions(path);
    [wal, journal]
        .iter()
        .any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
}

/// Where this server's files are, from the session path the user gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The session path as given (`--db-path`, `--db-uri`): the Go server's file.
    pub given: PathBuf,
    pub session: PathBuf,
    pub messages: PathBuf,
    pub outbox: PathBuf,
    pub lock: PathBuf,
    /// The account registry (only the storage folder's layout uses it).
    pub accounts: PathBuf,
    /// Where the Go server keeps its chat history.
    pub go_chats: PathBuf,
}

impl Layout {
    /// The storage folder (where this server creates its files).
    pub fn dir(&self) -> PathBuf {
        match self.session.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        }
    }

    /// The files of one account kept in its own folder `dir`.
    pub fn in_folder(dir: &Path) -> Self {
        Self::new(&dir.join(SESSION_FILE))
    }

    pub fn new(given: &Path) -> Self {
        Self {
            given: given.to_owned(),
            session: given.with_file_name(SESSION_FILE),
            messages: given.with_file_name(MESSAGES_FILE),
            outbox: given.with_file_name(OUTBOX_FILE),
            lock: given.with_file_name(LOCK_FILE),
            accounts: given.with_file_name(ACCOUNTS_FILE),
            go_chats: given.with_file_name(GO_CHATS_FILE),
        }
    }
}

/// What startup found at the given session path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Nothing to import.
    Nothing,
    /// A whatsmeow session to import (unless it was imported before).
    GoSession,
}

/// A storage path holds something this server must not touch.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "{path} holds {found}, not {expected}; it is left untouched. Move it away, or give \
         this server another folder with --db-path"
    )]
    NotOurs {
        path: String,
        found: String,
        expected: &'static str,
    },
    #[error(
        "{given} holds {found}, not a WhatsApp session this server can use (whatsmeow's or \
         its own); it is left untouched. Point --db-path / --db-uri at the Go server's \
         session file, or at a path where nothing is yet"
    )]
    UnknownSession { given: String, found: String },
    #[error(
        "both {old} and {new} hold this server's WhatsApp session; it is not clear which \
         to use, so both are left untouched. Keep the one you want at {new} and move the \
         other away"
    )]
    TwoStores { old: String, new: String },
    #[error(transparent)]
    Foreign(#[from] ForeignError),
    #[error("cannot move {from} to {to}: {source}")]
    Move {
        from: String,
        to: String,
        source: std::io::Error,
    },
}

/// Checks every storage path before anything is opened, and moves an older
/// version's session store to its own name. Nothing is deleted.
pub fn prepare(layout: &Layout) -> Result<Found, StorageError> {
    expect(
        &layout.accounts,
        Kind::OurAccounts,
        "this server's account registry",
    )?;
    prepare_account(layout)?;
    if layout.given == layout.session {
        return Ok(Found::Nothing);
    }
    prepare_go_file(layout)
}

/// Checks the files of one account's layout: each is missing or this server's.
pub fn prepare_account(layout: &Layout) -> Result<(), StorageError> {
    expect(
        &layout.session,
        Kind::OurSession,
        "this server's WhatsApp session",
    )?;
    expect(
        &layout.messages,
        Kind::OurMessages,
        "this server's message store",
    )?;
    expect(
        &layout.outbox,
        Kind::OurOutbox,
        "this server's webhook outbox",
    )
}

fn prepare_go_file(layout: &Layout) -> Result<Found, StorageError> {
    let found = identify_foreign(&layout.given, &layout.dir());
    // With a session of its own, this server does not need the Go file: trouble
    // with it is said, not fatal.
    let needless = |what: &str| {
        tracing::warn!(
            path = %layout.given.display(),
            "{what}; this server runs its own session ({}) and leaves it alone",
            layout.session.display()
        );
        Ok(Found::Nothing)
    };
    match found {
        Kind::Missing | Kind::Empty => Ok(Found::Nothing),
        Kind::GoSession { .. } => Ok(Found::GoSession),
        Kind::InUse if session_is_paired(&layout.session) => needless(
            "the Go server's session file is open in another program: if a Go server runs \
             with the same device as this one, both lose messages",
        ),
        Kind::InUse => Err(ForeignError::InUse {
            path: layout.given.display().to_string(),
        }
        .into()),
        Kind::OurSession => {
            if matches!(identify(&layout.session), Kind::OurSession) {
                return Err(StorageError::TwoStores {
                    old: layout.given.display().to_string(),
                    new: layout.session.display().to_string(),
                });
            }
            move_store(&layout.given, &layout.session)?;
            tracing::info!(
                from = %layout.given.display(),
                to = %layout.session.display(),
                "moved this server's WhatsApp session to its own file name (the Go server's name is left to the Go server)"
            );
            Ok(Found::Nothing)
        }
        other if session_is_paired(&layout.session) => needless(&format!(
            "it holds {}, not a WhatsApp session",
            other.describe()
        )),
        other => Err(StorageError::UnknownSession {
            given: layout.given.display().to_string(),
            found: other.describe(),
        }),
    }
}

/// The device JID of this server's session store at `path`, when it holds a
/// paired device. A store of ours that cannot be read counts as paired (nothing
/// is imported over it).
pub fn paired_jid(path: &Path) -> Option<String> {
    if identify(path) != Kind::OurSession {
        return None;
    }
    let pn = open_read_only(path).and_then(|conn| {
        conn.query_row(
            "SELECT pn FROM device WHERE pn IS NOT NULL AND pn != '' LIMIT 1",
            [],
            |r| r.get::<_, String>(0),
        )
    });
    match pn {
        Ok(pn) => Some(pn),
        Err(rusqlite::Error::QueryReturnedNoRows) => None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read this server's session store");
            Some(String::new())
        }
    }
}

/// This server's session store at `path` holds a paired device.
pub fn session_is_paired(path: &Path) -> bool {
    paired_jid(path).is_some()
}

/// `path` is missing, empty, or holds `kind`.
fn expect(path: &Path, kind: Kind, expected: &'static str) -> Result<(), StorageError> {
    match identify(path) {
        Kind::Missing | Kind::Empty => Ok(()),
        found if found == kind => Ok(()),
        found => Err(StorageError::NotOurs {
            path: path.display().to_string(),
            found: found.describe(),
            expected,
        }),
    }
}

/// Moves this server's SQLite store `from` to `to` (within one folder): its log is
/// folded into the file first, so the one rename of the file moves everything.
pub fn move_store(from: &Path, to: &Path) -> Result<(), StorageError> {
    let fail = |source: std::io::Error| StorageError::Move {
        from: from.display().to_string(),
        to: to.display().to_string(),
        source,
    };
    // An empty file at the target (a crash before anything was written) goes.
    if matches!(identify(to), Kind::Empty) {
        let _ = std::fs::remove_file(to);
    }
    Connection::open(from)
        .and_then(|conn| conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())))
        .map_err(|e| fail(std::io::Error::other(e)))?;
    std::fs::rename(from, to).map_err(fail)?;
    for leftover in companions(from) {
        let _ = std::fs::remove_file(leftover);
    }
    Ok(())
}

/// Deletes this server's session store and its journal files, after checking the
/// file is one. A file that is not is left in place (and said so).
pub fn remove_session_store(path: &Path) {
    remove_own_store(path, Kind::OurSession);
}

/// Deletes one of this server's SQLite files (`kind` says which) and its journal
/// files, after checking the file is that. A file that is not is left in place (and
/// said so); `false` then, and when the file could not be deleted.
pub fn remove_own_store(path: &Path, kind: Kind) -> bool {
    match identify(path) {
        Kind::Empty | Kind::Missing => {}
        found if found == kind => {}
        other => {
            tracing::error!(
                path = %path.display(),
                found = %other.describe(),
                "not deleting a file that is not {}",
                kind.describe()
            );
            return false;
        }
    }
    let mut removed = true;
    for path in std::iter::once(path.to_owned()).chain(companions(path)) {
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::debug!(path = %path.display(), "removed store file"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                removed = false;
                tracing::warn!(path = %path.display(), error = %e, "cannot remove store file")
            }
        }
    }
    removed
}

/// Deletes the files this server named with its own UUIDs (QR images, downloaded
/// media) directly in `dir`; other files stay.
pub fn remove_own_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // The UUID sits anywhere in the name (`scan-qr-<uuid>.png`, `<time>-<uuid>.jpg`).
        let ours = entry.file_type().is_ok_and(|t| t.is_file())
            && (0..=name.len().saturating_sub(36))
                .any(|at| name.get(at..at + 36).is_some_and(is_own_uuid));
        if ours && let Err(e) = std::fs::remove_file(entry.path()) {
            tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_with(path: &Path, sql: &str) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(sql).unwrap();
    }

    #[test]
    fn own_uuids_are_version_4_and_told_apart_from_others() {
        let ours = own_uuid();
        assert_eq!(ours.get_version_num(), 4);
        assert_ne!(own_uuid(), ours, "still random");
        assert!(is_own_uuid(&ours.to_string()));
        assert!(!is_own_uuid(&uuid::Uuid::new_v4().to_string()));
        assert!(!is_own_uuid("not-a-uuid"));
    }

    #[test]
    fn files_are_told_apart_by_their_tables() {
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name);
        assert_eq!(identify(&p("none")), Kind::Missing);
        std::fs::write(p("empty"), b"").unwrap();
        assert_eq!(identify(&p("empty")), Kind::Empty);
        std::fs::write(p("text"), b"hello, not a database").unwrap();
        assert!(matches!(identify(&p("text")), Kind::Foreign(w) if w.contains("not an SQLite")));
        sqlite_with(
            &p("go.db"),
            "CREATE TABLE whatsmeow_version (version INTEGER, compat INTEGER);
             INSERT INTO whatsmeow_version VALUES (15, 8);",
        );
        assert_eq!(identify(&p("go.db")), Kind::GoSession { version: 15 });
        sqlite_with(
            &p("other.db"),
            "CREATE TABLE invoices (id INTEGER); CREATE TABLE customers (id INTEGER);",
        );
        assert!(
            matches!(identify(&p("other.db")), Kind::Foreign(w) if w.contains("invoices")),
            "{:?}",
            identify(&p("other.db"))
        );
        let messages = crate::messages::MessageStore::open(&p("chat.db")).unwrap();
        drop(messages);
        assert_eq!(identify(&p("chat.db")), Kind::OurMessages);
        sqlite_with(
            &p("chatstorage.db"),
            "CREATE TABLE chats (jid TEXT); CREATE TABLE messages (id TEXT);",
        );
        assert_eq!(identify(&p("chatstorage.db")), Kind::GoChats);
    }

    #[test]
    fn a_foreign_file_at_any_of_our_paths_stops_startup_untouched() {
        for name in [SESSION_FILE, MESSAGES_FILE, OUTBOX_FILE] {
            let dir = tempfile::tempdir().unwrap();
            let layout = Layout::new(&dir.path().join("whatsapp.db"));
            let path = dir.path().join(name);
            std::fs::write(&path, b"someone else's notes").unwrap();
            let err = prepare(&layout).unwrap_err().to_string();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains("left untouched"), "{err}");
            assert_eq!(std::fs::read(&path).unwrap(), b"someone else's notes");
        }
    }

    #[test]
    fn an_unknown_file_at_the_session_path_stops_startup_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let given = dir.path().join("whatsapp.db");
        sqlite_with(&given, "CREATE TABLE notes (body TEXT);");
        let before = std::fs::read(&given).unwrap();
        let err = prepare(&Layout::new(&given)).unwrap_err().to_string();
        assert!(err.contains("another program (tables: notes)"), "{err}");
        assert_eq!(std::fs::read(&given).unwrap(), before);
        // And a removal of our session store refuses it too.
        remove_session_store(&given);
        assert_eq!(std::fs::read(&given).unwrap(), before);
    }
}
