//! A drop-in replacement for the go-whatsapp-web-multidevice HTTP API (v2.3.0 and the
//! later dialect), on WhatsApp accounts linked through `whatsapp-rust` ([`accounts`]).
//!
//! `main` parses the [`config::Config`], calls [`build`] and [`serve`]; tests build the
//! router with their own [`whatsapp::WhatsApp`] implementation through [`server_with`].

pub mod accounts;
pub mod config;
pub mod domain;
pub mod fetch;
pub mod go_flags;
pub mod go_import;
pub mod http;
pub mod link_preview;
pub mod logs;
pub mod mcp;
pub mod media;
pub mod messages;
pub mod notices;
pub mod ops;
pub mod postgres;
pub mod qr;
pub mod service;
pub mod storage;
#[cfg(feature = "e2e")]
pub mod testing;
pub mod webhook;
pub mod whatsapp;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use axum::ServiceExt;
use axum::extract::Request;
use tokio::net::TcpListener;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;

use config::Config;
use http::{AppState, Limits};
use media::MediaConfig;
use service::app::AppService;
use service::chat::ChatService;
use service::group::GroupService;
use service::message::MessageService;
use service::send::SendService;
use service::user::UserService;
use whatsapp::session::{ClientSettings, WhatsAppClient};

/// What the services of every account share, from the configuration.
pub struct SharedServices {
    media: MediaConfig,
    limits: Arc<Limits>,
    guard: Arc<http::guard::Guard>,
    fetcher: fetch::Fetcher,
    previews: fetch::Fetcher,
    max_download_bytes: u64,
    /// `--account-validation`.
    account_validation: bool,
    /// The accounts' notices for `/ws`.
    pub notices: notices::Notices,
}

impl SharedServices {
    pub fn new(config: &Config) -> std::io::Result<Self> {
        let temp_dir = config.temp_dir();
        std::fs::create_dir_all(&temp_dir)?;
        // Older than any request can run: left by a crash, not in use by another
        // server sharing the folder.
        sweep_temp_files(&temp_dir, config.request_timeout());
        let media = MediaConfig {
            temp_dir: temp_dir.clone(),
            ffmpeg: config.ffmpeg.clone(),
            ffmpeg_timeout: config.ffmpeg_timeout(),
            heavy_work: MediaConfig::heavy_work_slots(
                config
                    .media_workers
                    .unwrap_or_else(MediaConfig::default_heavy_work_slots),
            ),
            heavy_work_wait: std::time::Duration::from_secs(config.media_queue_timeout_secs),
        };
        let base_path = config.route_prefix().map_err(std::io::Error::other)?;
        Ok(Self {
            media,
            limits: Arc::new(Limits {
                temp_dir,
                max_file_mb: config.max_file_size_mb,
                max_video_mb: config.max_video_size_mb,
                request_timeout: config.request_timeout(),
                strict_fields: config.strict_fields,
                api_compat: config.api_compat,
                base_path: base_path.clone(),
                mcp: config.mcp_enabled,
            }),
            guard: Arc::new(http::guard::Guard::new(&http::guard::GuardConfig {
                accounts: config
                    .basic_auth_accounts()
                    .map_err(std::io::Error::other)?,
                cors_origins: config.cors_origins.clone(),
                allowed_hosts: config.allowed_hosts.clone(),
                base_path,
            })),
            fetcher: fetch::Fetcher::new(
                config.allow_private_urls,
                std::time::Duration::from_secs(60),
            ),
            previews: fetch::Fetcher::new(
                config.allow_private_urls,
                std::time::Duration::from_secs(10),
            ),
            max_download_bytes: config.max_download_size_mb.saturating_mul(1_000_000),
            account_validation: config.account_validation(),
            notices: notices::Notices::new(http::ws::MAX_SOCKETS),
        })
    }

    /// The services of the account `id`.
    pub fn services(
        &self,
        id: &str,
        opened: &accounts::Opened,
        files: &accounts::AccountFiles,
    ) -> std::io::Result<AppState> {
        let wa = opened.wa.clone();
        let media_link = format!("statics/media/{}", files.link_folder);
        Ok(AppState::new(http::Services {
            slot: id.to_owned(),
            app: Arc::new(
                AppService::new(wa.clone(), files.qr_dir.clone())?
                    .with_webhooks(opened.webhooks.clone())
                    .with_link_folder(files.link_folder.clone()),
            ),
            user: Arc::new(UserService::new(wa.clone()).with_media(self.media.clone())),
            chats: Arc::new(ChatService::new(wa.clone(), opened.messages.clone())),
            groups: Arc::new(GroupService::new(wa.clone(), self.media.clone())),
            messages: Arc::new(
                MessageService::new(
                    wa.clone(),
                    opened.messages.clone(),
                    files.media_dir.clone(),
                    self.max_download_bytes,
                )
                .with_media_link(media_link.trim_end_matches('/').to_owned()),
            ),
            send: Arc::new(
                SendService::new(wa, self.media.clone())
                    .with_previews(self.previews.clone())
                    .with_account_validation(self.account_validation),
            ),
            limits: self.limits.clone(),
            guard: self.guard.clone(),
            fetcher: self.fetcher.clone(),
        }))
    }
}

/// Where the accounts' files go, from the configuration (no Go slot: see
/// [`build`]).
pub fn account_settings(config: &Config) -> accounts::Settings {
    accounts::Settings {
        root: config.layout().dir(),
        qr_dir: config.qr_dir(),
        media_dir: config.statics_dir.join("media"),
        startup_handshakes: usize::from(config.startup_handshakes),
        first_slot: None,
        root_imported: false,
        registry_pool: None,
        cluster: None,
    }
}

/// The router's state for accounts `opener` opens (API tests open doubles), with
/// the storage folder of `config`.
pub async fn server_with(
    config: &Config,
    settings: accounts::Settings,
    opener: impl FnOnce(SharedServices) -> Box<dyn accounts::Opener>,
) -> anyhow::Result<http::Server> {
    let shared = SharedServices::new(config)?;
    let (limits, guard) = (shared.limits.clone(), shared.guard.clone());
    let notices = shared.notices.clone();
    let accounts = accounts::Accounts::load(
        settings,
        opener(shared),
        config.api_compat == http::wire::ApiCompat::V2_3_0,
    )
    .await?;
    let forwarder = accounts.is_shared().then(http::forward::Forwarder::default);
    Ok(http::Server::new(http::ServerParts {
        accounts,
        limits,
        guard,
        notices,
        forwarder,
    }))
}

/// Opens real accounts: a whatsapp-rust client on each one's store.
struct ClientOpener {
    config: Config,
    shared: SharedServices,
    /// With a Postgres `--db-uri`: the sessions' database, and this server's hold
    /// on it.
    postgres: Option<(deadpool_postgres::Pool, Arc<postgres::leases::Leases>)>,
    /// A Go server's session read from the same database, for the first account.
    go_postgres: std::sync::Mutex<Option<go_import::PostgresGoSession>>,
}

#[async_trait::async_trait]
impl accounts::Opener for ClientOpener {
    async fn open(&self, place: &accounts::Place<'_>) -> anyhow::Result<accounts::Opened> {
        let config = &self.config;
        let messages = match &self.postgres {
            Some((pool, _)) => {
                let store = postgres::messages::PgMessages::new(pool.clone(), place.id);
                let store = Arc::new(messages::MessageStore::postgres(
                    store,
                    tokio::runtime::Handle::current(),
                ));
                move_local_history(&place.layout.messages, &store).await;
                store
            }
            None => Arc::new(messages::MessageStore::open(&place.layout.messages)?),
        };
        messages::spawn_retention(messages.clone(), config.message_retention());
        let store = match &self.postgres {
            Some((pool, _)) => {
                let store = postgres::whatsapp_store::WhatsAppStore::new(pool.clone(), place.id);
                let go = match place.first {
                    true => self
                        .go_postgres
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take(),
                    false => None,
                };
                if let Some(go) = go {
                    go_import::import_postgres_session(&go, &store, &messages).await?;
                }
                whatsapp::session_store::SessionStore::Postgres(store)
            }
            None => whatsapp::session_store::SessionStore::File(place.layout.session.clone()),
        };
        let webhooks = match config.account_webhook_config(
            place.layout,
            &place.files.media_dir,
            place.webhook,
        ) {
            Some(mut settings) => {
                settings.session_id = Some(place.id.to_owned());
                settings.outbox_postgres = self.postgres.as_ref().map(|(pool, _)| {
                    postgres::outbox::PgOutbox::new(pool.clone(), place.id, settings.max_events)
                });
                Some(webhook::Webhooks::start(settings).await?)
            }
            None => None,
        };
        let client = WhatsAppClient::start(ClientSettings {
            inbound: whatsapp::inbound::Inbound {
                messages: Some(messages.clone()),
                webhooks: webhooks.clone(),
            },
            store,
            device_name: config.device_name.clone(),
            proxy: config.proxy().map_err(anyhow::Error::msg)?,
            autoreply: config.autoreply.clone(),
            autoreply_interval: config.autoreply_interval(),
            ack_timeout: config.ack_timeout(),
            auto_mark_read: config.auto_mark_read,
            auto_reject_call: config.auto_reject_call,
            presence_on_connect: match config.presence_on_connect() {
                config::PresenceOnConnect::Available => Some(true),
                config::PresenceOnConnect::Unavailable => Some(false),
                config::PresenceOnConnect::None => None,
            },
            include_outgoing: config.webhook_include_outgoing,
            ws_url: config.whatsapp_ws_url.clone(),
            span: tracing::info_span!("account", device_id = %place.id),
            notices: self.shared.notices.of(place.id),
        })
        .await;
        let client = match client {
            Ok(client) => client,
            Err(e) => {
                if let Some(webhooks) = &webhooks {
                    webhooks.stop();
                }
                return Err(e.into());
            }
        };
        Ok(accounts::Opened {
            wa: Arc::new(client),
            messages,
            webhooks,
        })
    }

    fn services(
        &self,
        id: &str,
        opened: &accounts::Opened,
        files: &accounts::AccountFiles,
    ) -> std::io::Result<AppState> {
        self.shared.services(id, opened, files)
    }

    fn ready(&self) -> Result<(), String> {
        match &self.postgres {
            Some((_, leases)) if !leases.is_up() => {
                Err("the PostgreSQL lease connection is lost; taking it back".to_owned())
            }
            _ => Ok(()),
        }
    }

    async fn forget(&self, id: &str) -> anyhow::Result<()> {
        if let Some((pool, _)) = &self.postgres {
            postgres::whatsapp_store::WhatsAppStore::new(pool.clone(), id)
                .forget()
                .await
                .context("cannot delete the account's session from PostgreSQL")?;
            postgres::outbox::forget_account(pool, id)
                .await
                .context("cannot delete the account's webhook outbox from PostgreSQL")?;
            postgres::messages::PgMessages::new(pool.clone(), id)
                .forget_all()
                .await
                .context("cannot delete the account's messages from PostgreSQL")?;
        }
        Ok(())
    }

    async fn sweep(&self) -> anyhow::Result<()> {
        if let Some((pool, _)) = &self.postgres {
            let removed = postgres::whatsapp_store::forget_unlisted(pool).await?;
            if removed > 0 {
                tracing::warn!(
                    accounts = removed,
                    "deleted the sessions of accounts removed earlier from PostgreSQL"
                );
            }
        }
        Ok(())
    }
}

/// Moves the account's chat history kept in its SQLite file (by an earlier
/// version, or a Go server's history imported at startup) into `store` in
/// PostgreSQL, then deletes the file. A copy that fails leaves the file for the
/// next time the account opens here; the account opens anyway. A file copied
/// before (its deletion failed) is not copied again.
async fn move_local_history(file: &std::path::Path, store: &Arc<messages::MessageStore>) {
    if !file.exists() {
        return;
    }
    let (from, to) = (file.to_owned(), store.clone());
    let copied = tokio::task::spawn_blocking(move || to.copy_from_file(&from)).await;
    match copied {
        Ok(Ok(messages)) => {
            if storage::remove_own_store(file, storage::Kind::OurMessages) {
                match messages {
                    Some(messages) => tracing::info!(
                        messages,
                        from = %file.display(),
                        "moved the account's chat history into PostgreSQL and deleted its file"
                    ),
                    None => tracing::info!(
                        from = %file.display(),
                        "deleted the account's chat history file, moved into PostgreSQL before"
                    ),
                }
            }
        }
        Ok(Err(e)) => tracing::warn!(
            error = %e,
            path = %file.display(),
            "cannot move the account's chat history into PostgreSQL; its file is kept, and the copy tried again the next time the account opens"
        ),
        Err(e) => tracing::warn!(error = %e, "moving the chat history into PostgreSQL stopped"),
    }
}

/// Removes this server's temp files ([`media::TEMP_PREFIXES`]) older than `age`.
fn sweep_temp_files(dir: &std::path::Path, age: std::time::Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !media::TEMP_PREFIXES.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|elapsed| elapsed > age);
        if stale && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(files = removed, "removed temp files left by an earlier run");
    }
}

/// Holds the storage folder for this process: a second server given the same folder
/// (the WhatsApp store, messages and webhook outbox live side by side) would connect
/// as the same device and take the first one's session away. An advisory lock on
/// `server.lock` in that folder, released by the system when the process ends, even
/// on a crash; keep the returned file open as long as the server runs.
pub fn lock_storage(config: &Config) -> anyhow::Result<std::fs::File> {
    let path = config.storage_lock_path();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the storage folder {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => anyhow::anyhow!(
                "cannot write in the storage folder {}: {}",
                path.parent()
                    .map_or_else(|| ".".into(), |d| d.display().to_string()),
                not_ours_hint(&path)
            ),
            _ => anyhow::Error::new(e).context(format!("cannot open {}", path.display())),
        })?;
    // The lock file is empty; one with content is not ours to lock.
    if file.metadata().is_ok_and(|m| m.len() > 0) {
        anyhow::bail!(
            "{} is not empty, so it is not this server's lock file; it is left untouched. \
             Move it away, or give this server another folder with --db-path",
            path.display()
        );
    }
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another server is running with the storage folder of {} (it holds {}); \
             stop it, or give this one its own --db-path",
            config.layout().given.display(),
            path.display()
        ),
        // Some network and FUSE file systems have no such locks: run unguarded, as
        // before there was a lock, but say so.
        Err(std::fs::TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
            tracing::warn!(
                path = %path.display(),
                "this file system cannot lock files: nothing stops a second server from using this storage folder"
            );
            Ok(file)
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Why a folder may not be writable: another user's (the Go server's image runs as
/// another user than this one's), with what to do.
fn not_ours_hint(path: &std::path::Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let me = nix::unistd::getuid().as_raw();
    match std::fs::metadata(dir) {
        Ok(meta) if meta.uid() != me => format!(
            "it belongs to uid {}, this server runs as uid {me}; give it the folder once \
             (chown -R {me} {}) or run it as uid {} (nothing was changed)",
            meta.uid(),
            dir.display(),
            meta.uid()
        ),
        _ => "permission denied (nothing was changed)".to_owned(),
    }
}

/// Opens the accounts and builds the router on them; the accounts are returned for
/// the shutdown.
pub async fn build(config: &Config) -> anyhow::Result<(impl http::Api, Arc<accounts::Accounts>)> {
    config.check_build_support().map_err(anyhow::Error::msg)?;
    config.check_consistency().map_err(anyhow::Error::msg)?;
    if let Some(warning) = go_flags::warning(&config.go_only) {
        tracing::warn!("{warning}");
    }
    // Every storage path is checked before anything opens one.
    let layout = config.layout();
    let found = go_import::check_storage(&layout)?;
    // The accounts in Postgres: shared with any other server on the database,
    // each serving the accounts whose lease it holds.
    let postgres = match config.postgres_uri() {
        Some(uri) => {
            let pool = postgres::connect(&uri).await?;
            let server = uuid::Uuid::new_v4().to_string();
            let address = config.cluster_address();
            let leases =
                postgres::leases::Leases::start(&uri, pool.clone(), &server, &address).await?;
            tracing::info!(
                server = %server,
                address = %address,
                "the accounts, their WhatsApp sessions and webhook outboxes are kept in PostgreSQL (--db-uri); servers sharing it split the accounts"
            );
            Some((pool, leases))
        }
        None => None,
    };
    let found = match (&postgres, found) {
        (Some(_), storage::Found::GoSession) => {
            tracing::warn!(
                "a Go session file is in the storage folder, but with a PostgreSQL --db-uri \
                 the sessions are kept there and it is not imported: pair by QR"
            );
            storage::Found::Nothing
        }
        (_, found) => found,
    };
    // A Go server's session in the same database (whatsmeow's tables).
    let mut go_postgres = match &postgres {
        Some((pool, _)) => go_import::read_postgres_session(pool, &layout).await?,
        None => None,
    };
    let go_jid = go_postgres.as_ref().map(|go| go.session.jid.clone());
    // The Go server's files become the first account (in the storage folder).
    let go_chats = go_import::go_chats_path(&layout);
    let mut imported = false;
    if found == storage::Found::GoSession || go_chats.is_some() || go_postgres.is_some() {
        let messages = Arc::new(messages::MessageStore::open(&layout.messages)?);
        if found == storage::Found::GoSession {
            imported = go_import::import_session(config, &layout, &messages).await?;
        }
        if let Some(go) = go_postgres.as_mut() {
            if let Some((pool, _)) = &postgres {
                go.check_imported(&messages, pool).await?;
            }
            // Written into the first account's rows as it opens (its id is
            // settled then).
            imported = !go.imported;
        }
        let shared = postgres.as_ref().map(|(pool, _)| pool);
        go_import::import_chats(&layout, &messages, go_jid.clone(), shared).await?;
    }
    let mut settings = account_settings(config);
    settings.root_imported = imported;
    // With Postgres, the accounts are the database's, as their sessions are.
    settings.registry_pool = postgres.as_ref().map(|(pool, _)| pool.clone());
    settings.cluster = postgres.as_ref().map(|(_, leases)| leases.clone());
    // The Go slot names the first account only when it is made now: at the first
    // start, or for a session imported just now.
    if go_chats.is_some() && (imported || !layout.accounts.exists()) {
        settings.first_slot = go_import::go_first_slot(&layout, go_jid).await;
    }
    let go_postgres = go_postgres.filter(|go| !go.imported);
    let server = server_with(config, settings, |shared| {
        Box::new(ClientOpener {
            config: config.clone(),
            shared,
            postgres,
            go_postgres: std::sync::Mutex::new(go_postgres),
        })
    })
    .await?;
    let accounts = server.accounts.clone();
    // An account that stays available needs no pulse (whose end would make it
    // unavailable).
    let stays_available = config.presence_on_connect() == config::PresenceOnConnect::Available;
    if let Some((interval, duration)) = config.presence_pulse().filter(|_| !stays_available) {
        accounts::pulse::spawn(Arc::downgrade(&accounts), interval, duration);
    }
    Ok((http::router(server, config.statics_dir.clone()), accounts))
}

/// Serves `api` (see [`http::router`]) on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    api: impl http::Api,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Outside the router, so that `/send/message/` is routed as `/send/message`.
    let app = NormalizePathLayer::trim_trailing_slash().layer(api);
    let app = tower::util::MapRequestLayer::new(|mut req: Request| {
        // Kept for messages that quote the path as sent (`Cannot GET /x/`).
        if req.uri().path().len() > 1 && req.uri().path().ends_with('/') {
            let sent = http::SentUri(req.uri().clone());
            req.extensions_mut().insert(sent);
        }
        req
    })
    .layer(app);
    axum::serve(listener, ServiceExt::<Request>::into_make_service(app))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::sweep_temp_files;

    #[test]
    fn only_old_upload_and_video_temp_files_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let hour_ago = SystemTime::now() - Duration::from_secs(3_600);
        let write = |name: &str, old: bool| {
            let file = std::fs::File::create(dir.path().join(name)).unwrap();
            if old {
                file.set_modified(hour_ago).unwrap();
            }
        };
        write("upload-old", true);
        write("video-old.mp4", true);
        write("media-old.ogg", true);
        write("fetched-old", true);
        write("upload-live", false);
        write("notes-old.txt", true);
        sweep_temp_files(dir.path(), Duration::from_secs(600));
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["notes-old.txt", "upload-live"]);
    }
}
