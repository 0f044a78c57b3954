//! Switching from the Go server in place: at startup, before anything is opened,
//! the storage folder is checked ([`crate::storage`]), then a Go server's session
//! and chat history found there are imported into this server's files, each once.
//! The Go server's files are only read.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tracing::{info, warn};

use crate::config::Config;
use crate::messages::MessageStore;
use crate::storage::{self, Found, Kind, Layout, paired_jid};
use crate::whatsapp::go_session;

/// Checks the storage folder; moves an older version's store to its own name.
/// Runs before the message store is opened.
pub fn check_storage(layout: &Layout) -> anyhow::Result<Found> {
    // What an import interrupted by a crash left behind is ours to remove.
    storage::remove_session_store(&go_session::scratch_path(&layout.session));
    storage::remove_stale_snapshots(&layout.dir());
    Ok(storage::prepare(layout)?)
}

/// Imports the Go session at `layout.given` unless it was imported before or this
/// server already holds a paired device; `true` when it did.
pub async fn import_session(
    config: &Config,
    layout: &Layout,
    messages: &Arc<MessageStore>,
) -> anyhow::Result<bool> {
    let given = layout.given.clone();
    let keys = config.keys_path().map_err(anyhow::Error::msg)?;
    // What the Go file holds now: it changes only when the Go server runs.
    let fingerprint = {
        let given = given.clone();
        tokio::task::spawn_blocking(move || storage::fingerprint(&given))
            .await
            .context("reading the Go session stopped")??
    };
    let file_key = format!("go-file:{fingerprint}");
    if let Some(ours) = paired_jid(&layout.session) {
        let known = {
            let file_key = file_key.clone();
            messages.call(move |m| m.was_imported(&file_key)).await?
        };
        if !known {
            warn_if_go_moved_on(layout, keys, &ours).await;
        } else {
            info!(
                go_session = %given.display(),
                "this server has its own WhatsApp session; the Go server's is not imported"
            );
        }
        return Ok(false);
    }
    let scratch = layout.dir();
    let read =
        tokio::task::spawn_blocking(move || go_session::read(&given, keys.as_deref(), &scratch))
            .await
            .context("the import stopped")?;
    let session = match read {
        // A Go server that never paired (or was logged out) made the file: nothing
        // to import, nothing wrong; this server pairs anew.
        Err(go_session::ImportError::NoDevice { path }) => {
            warn!(
                path = %path,
                "the Go server's session file holds no paired device: nothing to import; pair this server with /app/login (the file is left untouched)"
            );
            return Ok(false);
        }
        other => other?,
    };
    // The device and the file's state: once logged out here, the same state is not
    // imported again; after the Go server ran with it, it is.
    let key = format!("go-session:{}@{fingerprint}", session.import_key());
    let seen = {
        let key = key.clone();
        messages.call(move |m| m.was_imported(&key)).await?
    };
    if seen {
        info!(
            jid = %session.jid,
            "the Go server's session was imported before (and has since been logged out here); not importing it again"
        );
        return Ok(false);
    }
    go_session::write(&session, &layout.session).await?;
    remember(&session, messages, vec![file_key, key]).await?;
    said_imported(
        &session,
        &layout.given.display().to_string(),
        &layout.session.display().to_string(),
        "(its file is unchanged)",
    );
    Ok(true)
}

/// Logs what an import of `session` from `from` into `to` brought over, and
/// names the devices it left (only the first one is imported).
fn said_imported(session: &go_session::GoSession, from: &str, to: &str, unchanged: &str) {
    let counts = session.counts();
    info!(
        jid = %session.jid,
        from,
        to,
        prekeys = counts.prekeys,
        sessions = counts.sessions,
        sender_keys = counts.sender_keys,
        identities = counts.identities,
        contacts = counts.contacts,
        app_state_keys = counts.app_state_keys,
        skipped = counts.skipped,
        "imported the Go server's WhatsApp session {unchanged}"
    );
    if !session.others.is_empty() {
        warn!(
            devices = %session.others.join(", "),
            "the Go server's session holds more devices; only {} was imported, as the first account",
            session.jid
        );
    }
}

/// Keeps the imported session's contacts in the message store, and the import's
/// `keys` so that it is not imported again.
async fn remember(
    session: &go_session::GoSession,
    messages: &Arc<MessageStore>,
    keys: Vec<String>,
) -> anyhow::Result<()> {
    let contacts: Vec<crate::messages::Change> = session
        .contacts
        .iter()
        .map(
            |(jid, full_name, push_name)| crate::messages::Change::Contact {
                jid: jid.clone(),
                full_name: full_name.clone(),
                push_name: push_name.clone(),
            },
        )
        .collect();
    messages
        .call(move |m| {
            m.apply(&contacts, jiff::Timestamp::now().as_second())?;
            keys.iter().try_for_each(|key| m.record_import(key))
        })
        .await?;
    Ok(())
}

/// This server runs its own session, and the Go file is not the one it imported
/// (or took over): if the Go server has used the same device since, the two
/// diverged, and running both breaks decryption. Said once at startup.
async fn warn_if_go_moved_on(layout: &Layout, keys: Option<std::path::PathBuf>, ours: &str) {
    let given = layout.given.clone();
    let scratch = layout.dir();
    let read =
        tokio::task::spawn_blocking(move || go_session::read(&given, keys.as_deref(), &scratch))
            .await;
    match read {
        Ok(Ok(go)) if go.jid == ours => warn!(
            go_session = %layout.given.display(),
            "the Go server has used this device since this server took it over: the two \
             sessions have diverged, and running both loses messages. This server keeps \
             its own ({}); to continue from the Go server's state instead, stop this \
             server, move that file away and start again",
            layout.session.display()
        ),
        Ok(Err(go_session::ImportError::StillOpen(_))) => warn!(
            go_session = %layout.given.display(),
            "the Go server's session file is open in another program: if a Go server runs \
             with the same device as this one, both lose messages"
        ),
        _ => info!(
            go_session = %layout.given.display(),
            "this server has its own WhatsApp session; the Go server's is not imported"
        ),
    }
}

/// Imports the Go server's chat history (`chatstorage.db`, v7 to v9) into the
/// message store, once per account, when this server knows its account.
/// Where the Go server keeps its chat history, if there is one: `./storages/
/// chatstorage.db` whatever `DB_URI` says; beside the session file first (the same
/// place with the default paths).
pub fn go_chats_path(layout: &Layout) -> Option<std::path::PathBuf> {
    [
        layout.go_chats.clone(),
        Path::new("storages").join(storage::GO_CHATS_FILE),
    ]
    .into_iter()
    .find(|p| p.exists())
}

/// The Go server's device slot of the account in the storage folder (Go v8+): its
/// id, which Go clients send as `X-Device-Id`, and its webhook.
/// `jid` is the account's device JID, when known otherwise than from the session
/// file in the storage folder (a session in PostgreSQL).
pub async fn go_first_slot(
    layout: &Layout,
    jid: Option<String>,
) -> Option<crate::accounts::FirstSlot> {
    let go_chats = go_chats_path(layout)?;
    let session = layout.session.clone();
    let scratch = layout.dir();
    let found = tokio::task::spawn_blocking(move || {
        let jid = jid
            .or_else(|| paired_jid(&session))
            .filter(|j| !j.is_empty())?;
        match storage::identify_foreign(&go_chats, &scratch) {
            Kind::GoChats => {}
            _ => return None,
        }
        match crate::messages::go_import::go_slot(&go_chats, &scratch, &jid) {
            Ok(slot) => slot,
            Err(e) => {
                warn!(error = %e, "cannot read the Go server's device slots");
                None
            }
        }
    })
    .await
    .ok()??;
    let webhook = (!found.webhook_url.trim().is_empty()).then(|| crate::accounts::AccountWebhook {
        url: found.webhook_url.clone(),
        secret: found.webhook_secret.clone(),
        events: found.webhook_events.clone(),
        insecure_skip_verify: found.webhook_insecure_skip_verify,
    });
    Some(crate::accounts::FirstSlot {
        id: found.id,
        webhook,
    })
}

/// `jid` is the account's device JID, when known otherwise than from the session
/// file in the storage folder (a session in PostgreSQL). With `shared` (the
/// PostgreSQL database), the import is remembered there too: the storage folder's
/// store moves into the database when its account opens.
pub async fn import_chats(
    layout: &Layout,
    messages: &Arc<MessageStore>,
    jid: Option<String>,
    shared: Option<&deadpool_postgres::Pool>,
) -> anyhow::Result<()> {
    let Some(go_chats) = go_chats_path(layout) else {
        return Ok(());
    };
    // The cheap checks first: nothing is read of the Go file once it was imported.
    let path = layout.session.clone();
    let jid = match jid {
        Some(jid) => Some(jid),
        None => tokio::task::spawn_blocking(move || paired_jid(&path))
            .await
            .context("reading the session store stopped")?,
    };
    let Some(jid) = jid.filter(|jid| !jid.is_empty()) else {
        info!(
            path = %go_chats.display(),
            "the Go server's chat history is imported once this server is logged in"
        );
        return Ok(());
    };
    // The account, not the device: `628…@s.whatsapp.net`.
    let account = match jid.split_once(':') {
        Some((user, rest)) => format!("{user}@{}", rest.split_once('@').map_or("", |r| r.1)),
        None => jid.clone(),
    };
    let key = format!("go-chats:{account}");
    let seen = {
        let key = key.clone();
        messages.call(move |m| m.was_imported(&key)).await?
    };
    let seen = match shared {
        Some(pool) if !seen => shared_import(pool, &key).await?,
        _ => seen,
    };
    if seen {
        return Ok(());
    }
    let scratch = layout.dir();
    let (path, store, who) = (go_chats.clone(), messages.clone(), account.clone());
    let counts = tokio::task::spawn_blocking(move || {
        match storage::identify_foreign(&path, &scratch) {
            Kind::GoChats => {}
            other => return Err(format!("it holds {}", other.describe())),
        }
        crate::messages::go_import::import_go_chat_storage(&path, &scratch, &store, Some(&who))
            .map_err(|e| e.to_string())
    })
    .await
    .context("the chat history import stopped")?;
    match counts {
        Ok(counts) => {
            if let Some(pool) = shared {
                record_shared(pool, &key).await?;
            }
            messages.call(move |m| m.record_import(&key)).await?;
            info!(
                account = %account,
                chats = counts.chats,
                messages = counts.messages,
                reactions = counts.reactions,
                edits = counts.edits,
                "imported the Go server's chat history (its file is unchanged)"
            );
        }
        // The history is not the session: the server runs without it.
        Err(why) => warn!(
            path = %go_chats.display(),
            "the Go server's chat history was not imported ({why}); it is left untouched"
        ),
    }
    Ok(())
}

/// The Go server's session found in whatsmeow's tables of the PostgreSQL database
/// (Go's `DB_URI=postgres://…`).
pub struct PostgresGoSession {
    pub session: go_session::GoSession,
    /// What the import is remembered by: the device and the tables' state.
    key: String,
    /// It was imported before (this state of the Go tables).
    pub imported: bool,
}

/// Reads the Go server's session from whatsmeow's tables in the database behind
/// `pool`, read-only; `None` when no Go server left a paired device there.
pub async fn read_postgres_session(
    pool: &deadpool_postgres::Pool,
    layout: &Layout,
) -> anyhow::Result<Option<PostgresGoSession>> {
    let Some(snapshot) = crate::postgres::whatsmeow::snapshot(pool, &layout.dir()).await? else {
        return Ok(None);
    };
    let fingerprint = snapshot.fingerprint.clone();
    let read = tokio::task::spawn_blocking(move || {
        go_session::read_from(&snapshot.conn, None, "whatsmeow's tables in PostgreSQL")
    })
    .await
    .context("the import stopped")?;
    let session = match read {
        Err(go_session::ImportError::NoDevice { .. }) => {
            warn!(
                "whatsmeow's tables in PostgreSQL hold no paired device: nothing to import; pair this server with /app/login (the tables are left untouched)"
            );
            return Ok(None);
        }
        other => other?,
    };
    let key = format!("go-session:{}@postgres:{fingerprint}", session.import_key());
    Ok(Some(PostgresGoSession {
        session,
        key,
        imported: false,
    }))
}

impl PostgresGoSession {
    /// Notes whether `messages` (the first account's store) has this state of the
    /// Go tables imported.
    /// Notes whether this state of the Go tables was imported: by any server
    /// on the database (`wa_imports`), or recorded in `messages` (the first
    /// account's store, by an earlier version).
    pub async fn check_imported(
        &mut self,
        messages: &Arc<MessageStore>,
        pool: &deadpool_postgres::Pool,
    ) -> anyhow::Result<()> {
        let key = self.key.clone();
        self.imported = shared_import(pool, &key).await?
            || messages.call(move |m| m.was_imported(&key)).await?;
        Ok(())
    }
}

/// Whether a server on the database recorded the import `key` (`wa_imports`).
async fn shared_import(pool: &deadpool_postgres::Pool, key: &str) -> anyhow::Result<bool> {
    let client = pool.get().await.context("cannot connect to PostgreSQL")?;
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM wa_imports WHERE key = $1)",
            &[&key],
        )
        .await
        .context("cannot read what was imported")?
        .get(0))
}

/// Records the import `key` for every server on the database (`wa_imports`).
async fn record_shared(pool: &deadpool_postgres::Pool, key: &str) -> anyhow::Result<()> {
    pool.get()
        .await
        .context("cannot connect to PostgreSQL")?
        .execute(
            "INSERT INTO wa_imports (key, imported_at) \
             VALUES ($1, extract(epoch FROM now())::bigint) ON CONFLICT (key) DO NOTHING",
            &[&key],
        )
        .await
        .context("cannot record the import")?;
    Ok(())
}

/// Writes the Go server's session `go` into the account's rows `store`, unless
/// the account holds a paired device of its own; `true` when it did. The device
/// row, which makes the session present, is written last: an import cut short is
/// no session, and is done again at the next start.
pub async fn import_postgres_session(
    go: &PostgresGoSession,
    store: &crate::postgres::whatsapp_store::WhatsAppStore,
    messages: &Arc<MessageStore>,
) -> anyhow::Result<bool> {
    use whatsapp_rust::wacore::store::traits::DeviceStore;
    let session = &go.session;
    let ours = store
        .load()
        .await
        .context("cannot read the account's session from PostgreSQL")?
        .and_then(|device| device.pn);
    if let Some(ours) = ours {
        if ours.to_string() == session.jid {
            warn!(
                "the Go server has used this device since this server took it over: the two \
                 sessions have diverged, and running both loses messages. This server keeps \
                 its own; to continue from the Go server's state instead, log this account \
                 out here first"
            );
        } else {
            info!("this server has its own WhatsApp session; the Go server's is not imported");
        }
        return Ok(false);
    }
    // What is there is an unpaired device of this server's (or an import cut
    // short): it goes.
    store
        .forget()
        .await
        .context("cannot clear the account's rows in PostgreSQL")?;
    let write = |why: String| go_session::ImportError::Write {
        path: "PostgreSQL".to_owned(),
        why,
    };
    go_session::fill(store, session).await.map_err(write)?;
    store
        .save(&session.device)
        .await
        .map_err(|e| write(e.to_string()))?;
    remember(session, messages, vec![go.key.clone()]).await?;
    record_shared(store.pool(), &go.key).await?;
    said_imported(
        session,
        "whatsmeow's tables in PostgreSQL",
        store.account(),
        "from its tables in PostgreSQL (they are unchanged)",
    );
    Ok(true)
}
