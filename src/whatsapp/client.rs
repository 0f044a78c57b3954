//! The real session: one `whatsapp-rust` client at a time, its device stored in SQLite.
//!
//! A `whatsapp-rust` client cannot be reused once disconnected, logged out or out of QR
//! codes, so every pairing attempt and every (re)connection builds a fresh bot from the
//! store. Events of an older bot are told apart by a generation number.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jiff::Timestamp;
use tokio::sync::{broadcast, watch};
use tracing::{debug, error, info, warn};
use whatsapp_rust::Jid;
use whatsapp_rust::download::MediaType;
use whatsapp_rust::prelude::*;
use whatsapp_rust::privacy_settings::PrivacyCategory;
use whatsapp_rust::upload::UploadOptions;

use super::{
    Ack, Avatar, Group, GroupMember, MediaKind, PairingCode, Privacy, SessionStatus, Uploaded,
    UserDetails, WhatsApp, WhatsAppError,
};

/// How long `/app/login` waits for WhatsApp to hand out the first QR code.
const FIRST_QR_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `/app/reconnect` waits for the new connection to be ready.
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful stop may take before the client task is aborted.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What the real session needs from the configuration.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub db_path: PathBuf,
    pub autoreply: Option<String>,
    pub ack_timeout: Duration,
    /// Test builds only: the fake WhatsApp server's WebSocket URL.
    pub ws_url: Option<String>,
}

/// The real WhatsApp session (see the module docs).
pub struct WhatsAppClient {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ClientSettings,
    /// Serialises login, logout, reconnect and shutdown.
    lifecycle: tokio::sync::Mutex<()>,
    running: Mutex<Option<Running>>,
    /// A device is stored (paired), whether or not it is connected.
    registered: AtomicBool,
    generation: AtomicU64,
    qr: watch::Sender<Option<(u64, PairingCode)>>,
    acks: broadcast::Sender<ServerAckInfo>,
}

struct Running {
    generation: u64,
    client: Arc<Client>,
    handle: BotHandle,
}

#[derive(Debug, Clone)]
struct ServerAckInfo {
    id: String,
    timestamp: Option<i64>,
    error: Option<String>,
}

impl WhatsAppClient {
    /// Opens the stored session, if any, and starts connecting it in the background.
    pub async fn start(settings: ClientSettings) -> Result<Self, WhatsAppError> {
        let (qr, _) = watch::channel(None);
        let (acks, _) = broadcast::channel(256);
        let inner = Arc::new(Inner {
            settings,
            lifecycle: tokio::sync::Mutex::new(()),
            running: Mutex::new(None),
            registered: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            qr,
            acks,
        });
        inner.resume_stored_session().await?;
        Ok(Self { inner })
    }
}

impl Inner {
    fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn is_current(&self, generation: u64) -> bool {
        self.generation.load(Ordering::SeqCst) == generation
    }

    fn client(&self) -> Option<Arc<Client>> {
        self.running
            .lock()
            .expect("session lock")
            .as_ref()
            .map(|r| r.client.clone())
    }

    /// The connected client, or the API's error for why there is none.
    fn ready_client(&self) -> Result<Arc<Client>, WhatsAppError> {
        if !self.registered.load(Ordering::SeqCst) {
            return Err(WhatsAppError::NotLoggedIn);
        }
        match self.client() {
            Some(client) if client.is_connected() && client.is_logged_in() => Ok(client),
            _ => Err(WhatsAppError::NotConnected),
        }
    }

    /// On start: connect a stored device, or clear what an unfinished pairing left.
    async fn resume_stored_session(self: &Arc<Self>) -> Result<(), WhatsAppError> {
        if !self.settings.db_path.exists() {
            info!("no stored WhatsApp session; use /app/login to pair a phone");
            return Ok(());
        }
        let generation = self.next_generation();
        let bot = self.build_bot(generation).await?;
        let client = bot.client();
        if let Some(pn) = client
            .persistence_manager()
            .get_device_snapshot()
            .pn
            .clone()
        {
            info!(device = %pn, "stored WhatsApp session found; connecting");
            self.registered.store(true, Ordering::SeqCst);
            self.install(generation, bot);
        } else {
            info!("stored WhatsApp database holds no paired device; removing it");
            drop(client);
            drop(bot);
            remove_store(&self.settings.db_path);
        }
        Ok(())
    }

    async fn build_bot(self: &Arc<Self>, generation: u64) -> Result<Bot, WhatsAppError> {
        let db_path = &self.settings.db_path;
        if let Some(parent) = db_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| WhatsAppError::failed("cannot create the session folder", e))?;
        }
        let url = db_path
            .to_str()
            .ok_or_else(|| WhatsAppError::Failed("the session path is not UTF-8".to_owned()))?;
        let store = SqliteStore::new(url)
            .await
            .map_err(|e| WhatsAppError::failed("cannot open the session store", e))?;

        let weak: Weak<Inner> = Arc::downgrade(self);
        let mut builder = Bot::builder()
            .with_backend(store)
            .with_transport_factory(transport_factory(&self.settings))
            .with_http_client(http_client())
            .skip_history_sync()
            .on_event(move |event, client| {
                let weak = weak.clone();
                async move {
                    if let Some(inner) = weak.upgrade() {
                        inner.on_event(generation, &event, client).await;
                    }
                }
            });
        if self.settings.ws_url.is_some() {
            // A fake server has no version endpoint to ask.
            builder = builder.with_version((2, 3000, 1));
        }
        builder
            .build()
            .await
            .map_err(|e| WhatsAppError::failed("cannot start the WhatsApp client", e))
    }

    fn install(&self, generation: u64, bot: Bot) {
        let client = bot.client();
        let handle = bot.spawn();
        let previous = self.running.lock().expect("session lock").replace(Running {
            generation,
            client,
            handle,
        });
        if let Some(previous) = previous {
            tokio::spawn(stop(previous));
        }
    }

    fn take_running(&self) -> Option<Running> {
        self.running.lock().expect("session lock").take()
    }

    /// Takes the running client out only if it is still the one of `generation`.
    fn take_running_if(&self, generation: u64) -> Option<Running> {
        let mut slot = self.running.lock().expect("session lock");
        if slot.as_ref().is_some_and(|r| r.generation == generation) {
            slot.take()
        } else {
            None
        }
    }

    async fn on_event(self: Arc<Self>, generation: u64, event: &Event, client: Arc<Client>) {
        let current = self.is_current(generation);
        match event {
            Event::PairingQrCode(qr) if current => {
                info!(
                    valid_for_secs = qr.timeout.as_secs(),
                    "new pairing QR code; scan it from WhatsApp > Linked devices:\n{}",
                    crate::qr::render_terminal(&qr.code).unwrap_or_default()
                );
                let code = PairingCode {
                    code: qr.code.clone(),
                    expires_at: Instant::now() + qr.timeout,
                };
                self.qr.send_replace(Some((generation, code)));
            }
            Event::PairingQrCodesExhausted(_) if current => {
                info!("pairing attempt ended without a scan; call /app/login for new QR codes");
                self.qr.send_replace(None);
                if let Some(running) = self.take_running_if(generation) {
                    tokio::spawn(stop(running));
                }
            }
            Event::PairSuccess(pair) => {
                info!(device = %pair.id, platform = %pair.platform, "phone paired");
                self.registered.store(true, Ordering::SeqCst);
                self.qr.send_replace(None);
            }
            Event::PairError(pair) => {
                warn!(error = %pair.error, "pairing failed");
            }
            Event::Connected(_) => {
                let device = client.pn().map(|j| j.to_string()).unwrap_or_default();
                info!(%device, "connected to WhatsApp");
                if current {
                    self.registered.store(true, Ordering::SeqCst);
                }
            }
            Event::Disconnected(d) => {
                warn!(reason = ?d.reason, "disconnected from WhatsApp");
            }
            Event::LoggedOut(out) if current => {
                warn!(
                    reason = ?out.reason,
                    "WhatsApp logged this device out (removed from the phone?); \
                     the stored session is deleted, use /app/login to pair again"
                );
                tokio::spawn(async move { self.forget_session(generation).await });
            }
            Event::StreamReplaced(_) if current => {
                warn!(
                    "this session was opened by another client; disconnected. \
                     /app/reconnect takes it back"
                );
                if let Some(running) = self.take_running_if(generation) {
                    tokio::spawn(stop(running));
                }
            }
            Event::ConnectFailure(failure) => {
                warn!(reason = ?failure.reason, message = ?failure.message, "WhatsApp refused the connection");
            }
            Event::TemporaryBan(_) => warn!("WhatsApp reports a temporary ban for this account"),
            Event::ClientOutdated(_) => error!("WhatsApp reports this client version as outdated"),
            Event::ServerAck(ack) => {
                let _ = self.acks.send(ServerAckInfo {
                    id: ack.id.clone(),
                    timestamp: ack.timestamp.map(|t| t.timestamp()),
                    error: ack.error.clone(),
                });
            }
            Event::Messages(batch) if current => {
                if let Some(reply) = self.settings.autoreply.as_deref() {
                    for inbound in batch.messages.iter() {
                        autoreply(&client, &inbound.info, reply).await;
                    }
                }
            }
            _ => {}
        }
    }

    /// After a logout from the phone: stop the client and delete the store.
    async fn forget_session(&self, generation: u64) {
        let _guard = self.lifecycle.lock().await;
        if !self.is_current(generation) {
            return;
        }
        self.next_generation();
        if let Some(running) = self.take_running() {
            stop(running).await;
        }
        self.registered.store(false, Ordering::SeqCst);
        remove_store(&self.settings.db_path);
    }

    /// Waits for a QR code of the attempt `generation`.
    async fn wait_for_qr(&self, generation: u64) -> Result<PairingCode, WhatsAppError> {
        let mut rx = self.qr.subscribe();
        let found = tokio::time::timeout(FIRST_QR_TIMEOUT, async {
            loop {
                if let Some((g, code)) = rx.borrow_and_update().clone()
                    && g == generation
                {
                    return Some(code);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await;
        match found {
            Ok(Some(code)) => Ok(code),
            Ok(None) => Err(WhatsAppError::Failed(
                "the pairing attempt ended".to_owned(),
            )),
            Err(_) => Err(WhatsAppError::Timeout(
                FIRST_QR_TIMEOUT,
                "the QR code from WhatsApp",
            )),
        }
    }
}

async fn autoreply(client: &Arc<Client>, info: &MessageInfo, reply: &str) {
    let source = &info.source;
    let chat = source.chat.to_string();
    if source.is_from_me || source.is_group || chat.contains("broadcast") {
        return;
    }
    match client
        .send_message(source.chat.clone(), wa::Message::text(reply))
        .await
    {
        Ok(_) => debug!(to = %source.chat, "auto-reply sent"),
        Err(e) => warn!(to = %source.chat, error = %e, "auto-reply failed"),
    }
}

/// Disconnects cleanly (flushing the store). If that hangs, the timeout drops the
/// handle, which aborts the client task.
async fn stop(running: Running) {
    let Running { client, handle, .. } = running;
    drop(client);
    if tokio::time::timeout(STOP_TIMEOUT, handle.shutdown())
        .await
        .is_err()
    {
        warn!("the WhatsApp client did not stop in time; aborted it");
    }
}

/// Deletes the SQLite file of the session and its journal files.
fn remove_store(db_path: &Path) {
    let mut paths = vec![db_path.to_path_buf()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = db_path.as_os_str().to_owned();
        name.push(suffix);
        paths.push(PathBuf::from(name));
    }
    for path in paths {
        match std::fs::remove_file(&path) {
            Ok(()) => debug!(path = %path.display(), "removed session file"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warn!(path = %path.display(), error = %e, "cannot remove session file"),
        }
    }
}

fn transport_factory(
    settings: &ClientSettings,
) -> whatsapp_rust::transport::TokioWebSocketTransportFactory {
    let factory = whatsapp_rust::transport::TokioWebSocketTransportFactory::new();
    match &settings.ws_url {
        #[cfg(feature = "e2e")]
        Some(url) => factory.with_url(url.clone()),
        _ => factory,
    }
}

#[cfg(not(feature = "e2e"))]
fn http_client() -> whatsapp_rust::http::UreqHttpClient {
    whatsapp_rust::http::UreqHttpClient::new()
}

#[cfg(feature = "e2e")]
fn http_client() -> crate::testing::LoopbackHttpClient {
    crate::testing::LoopbackHttpClient::default()
}

fn media_type(kind: MediaKind) -> MediaType {
    match kind {
        MediaKind::Image => MediaType::Image,
        MediaKind::Video => MediaType::Video,
        MediaKind::Document => MediaType::Document,
    }
}

fn timestamp(secs: Option<u64>) -> Option<Timestamp> {
    secs.and_then(|s| Timestamp::from_second(i64::try_from(s).ok()?).ok())
}

fn jid_string(jid: Option<&Jid>) -> Option<String> {
    jid.map(|j| j.to_string())
}

fn to_group(meta: whatsapp_rust::features::GroupMetadata) -> Group {
    Group {
        jid: meta.id.to_string(),
        owner: jid_string(meta.creator_pn.as_ref().or(meta.creator.as_ref())),
        name: meta.subject,
        name_set_at: timestamp(meta.subject_time),
        name_set_by: jid_string(
            meta.subject_owner_pn
                .as_ref()
                .or(meta.subject_owner.as_ref()),
        ),
        topic: meta.description.unwrap_or_default(),
        topic_id: meta.description_id.unwrap_or_default(),
        topic_set_at: timestamp(meta.description_time),
        topic_set_by: jid_string(
            meta.description_owner_pn
                .as_ref()
                .or(meta.description_owner.as_ref()),
        ),
        is_locked: meta.is_locked,
        is_announce: meta.is_announcement,
        disappearing_timer: meta
            .ephemeral
            .as_ref()
            .and_then(|e| e.expiration)
            .unwrap_or(0),
        created_at: timestamp(meta.creation_time),
        participant_version_id: meta.participant_version_id.unwrap_or_default(),
        participants: meta
            .participants
            .iter()
            .map(|p| GroupMember {
                jid: p.phone_number.as_ref().unwrap_or(&p.jid).to_string(),
                is_admin: p.is_admin(),
                is_super_admin: p.is_super_admin(),
            })
            .collect(),
    }
}

#[async_trait]
impl WhatsApp for WhatsAppClient {
    fn status(&self) -> SessionStatus {
        if !self.inner.registered.load(Ordering::SeqCst) {
            return SessionStatus::LoggedOut;
        }
        match self.inner.client() {
            Some(c) if c.is_connected() && c.is_logged_in() => SessionStatus::Connected,
            _ => SessionStatus::Disconnected,
        }
    }

    fn device_id(&self) -> Option<Jid> {
        if !self.inner.registered.load(Ordering::SeqCst) {
            return None;
        }
        self.inner.client()?.pn()
    }

    async fn pairing_code(&self) -> Result<PairingCode, WhatsAppError> {
        let inner = &self.inner;
        let _guard = inner.lifecycle.lock().await;
        if inner.registered.load(Ordering::SeqCst) {
            return Err(WhatsAppError::AlreadyLoggedIn);
        }
        let generation = inner.generation.load(Ordering::SeqCst);
        let attempt_running = inner
            .running
            .lock()
            .expect("session lock")
            .as_ref()
            .is_some_and(|r| r.generation == generation);
        if attempt_running {
            if let Some((g, code)) = inner.qr.borrow().clone()
                && g == generation
                && code.expires_at > Instant::now()
            {
                return Ok(code);
            }
            if inner.qr.borrow().is_none() {
                return inner.wait_for_qr(generation).await;
            }
        }
        // No attempt, or its code has expired without a successor: start afresh.
        let generation = inner.next_generation();
        if let Some(old) = inner.take_running() {
            stop(old).await;
        }
        inner.qr.send_replace(None);
        remove_store(&inner.settings.db_path);
        info!("starting a pairing attempt");
        let bot = inner.build_bot(generation).await?;
        inner.install(generation, bot);
        let code = inner.wait_for_qr(generation).await;
        if code.is_err() {
            // No code came (WhatsApp unreachable?): do not leave the attempt retrying.
            inner.next_generation();
            if let Some(attempt) = inner.take_running() {
                stop(attempt).await;
            }
            remove_store(&inner.settings.db_path);
        }
        code
    }

    async fn logout(&self) -> Result<(), WhatsAppError> {
        let inner = &self.inner;
        let _guard = inner.lifecycle.lock().await;
        if !inner.registered.load(Ordering::SeqCst) {
            return Err(WhatsAppError::NoDevice);
        }
        // Events of the old client must not act on the logout it reports itself.
        inner.next_generation();
        match inner.take_running() {
            Some(running) => {
                if running.client.is_connected() {
                    running.client.logout().await;
                    info!("device logged out at WhatsApp");
                } else {
                    warn!(
                        "not connected: the device is removed here but stays listed on the phone"
                    );
                }
                stop(running).await;
            }
            None => {
                warn!("not connected: the device is removed here but stays listed on the phone")
            }
        }
        inner.registered.store(false, Ordering::SeqCst);
        inner.qr.send_replace(None);
        remove_store(&inner.settings.db_path);
        Ok(())
    }

    async fn reconnect(&self) -> Result<(), WhatsAppError> {
        let inner = &self.inner;
        let _guard = inner.lifecycle.lock().await;
        if !inner.registered.load(Ordering::SeqCst) {
            return Err(WhatsAppError::NotLoggedIn);
        }
        let generation = inner.next_generation();
        if let Some(old) = inner.take_running() {
            stop(old).await;
        }
        info!("reconnecting to WhatsApp");
        let bot = inner.build_bot(generation).await?;
        let client = bot.client();
        inner.install(generation, bot);
        client
            .wait_for_connected(RECONNECT_TIMEOUT)
            .await
            .map_err(|_| WhatsAppError::Timeout(RECONNECT_TIMEOUT, "the connection to WhatsApp"))
    }

    async fn user_info(&self, jid: &Jid) -> Result<Option<UserDetails>, WhatsAppError> {
        let client = self.inner.ready_client()?;
        let infos = client
            .contacts()
            .get_user_info(std::slice::from_ref(jid))
            .await
            .map_err(|e| WhatsAppError::failed("user info query failed", e))?;
        let Some(info) = infos.into_values().find(|i| i.jid.user == jid.user) else {
            return Ok(None);
        };
        if info.devices.is_empty() {
            return Ok(None);
        }
        Ok(Some(UserDetails {
            verified_name: info.verified_name.as_ref().and_then(|v| v.name.clone()),
            status: info.status.clone(),
            picture_id: info.picture_id.clone(),
            devices: info.devices.clone(),
        }))
    }

    async fn avatar(&self, jid: &Jid) -> Result<Option<Avatar>, WhatsAppError> {
        let client = self.inner.ready_client()?;
        let picture = client
            .contacts()
            .get_profile_picture(jid, false)
            .await
            .map_err(|e| WhatsAppError::failed("profile picture query failed", e))?;
        Ok(picture.map(|p| Avatar {
            url: p.url,
            id: p.id,
        }))
    }

    async fn privacy(&self) -> Result<Privacy, WhatsAppError> {
        let client = self.inner.ready_client()?;
        let settings = client
            .fetch_privacy_settings()
            .await
            .map_err(|e| WhatsAppError::failed("privacy settings query failed", e))?;
        let value = |category: PrivacyCategory| {
            settings.get_value(&category).map(|v| v.as_str().to_owned())
        };
        Ok(Privacy {
            group_add: value(PrivacyCategory::GroupAdd),
            last_seen: value(PrivacyCategory::Last),
            status: value(PrivacyCategory::Status),
            profile: value(PrivacyCategory::Profile),
            read_receipts: value(PrivacyCategory::ReadReceipts),
        })
    }

    async fn groups(&self) -> Result<Vec<Group>, WhatsAppError> {
        let client = self.inner.ready_client()?;
        let groups = client
            .groups()
            .get_participating()
            .await
            .map_err(|e| WhatsAppError::failed("group list query failed", e))?;
        let mut groups: Vec<Group> = groups.into_values().map(to_group).collect();
        groups.sort_by(|a, b| a.jid.cmp(&b.jid));
        Ok(groups)
    }

    async fn upload(&self, data: Vec<u8>, kind: MediaKind) -> Result<Uploaded, WhatsAppError> {
        let client = self.inner.ready_client()?;
        let up = client
            .upload(data, media_type(kind), UploadOptions::new())
            .await
            .map_err(|e| WhatsAppError::failed("media upload failed", e))?;
        Ok(Uploaded {
            url: up.url,
            direct_path: up.direct_path,
            media_key: up.media_key.to_vec(),
            file_enc_sha256: up.file_enc_sha256.to_vec(),
            file_sha256: up.file_sha256.to_vec(),
            file_length: up.file_length,
            media_key_timestamp: up.media_key_timestamp,
        })
    }

    async fn send(&self, to: &Jid, message: wa::Message) -> Result<Ack, WhatsAppError> {
        let client = self.inner.ready_client()?;
        // Subscribe first: the ack can arrive before send_message returns.
        let mut acks = self.inner.acks.subscribe();
        let sent = client
            .send_message(to.clone(), message)
            .await
            .map_err(|e| WhatsAppError::failed("sending failed", e))?;
        let timeout = self.inner.settings.ack_timeout;
        let ack = tokio::time::timeout(timeout, async {
            loop {
                match acks.recv().await {
                    Ok(ack) if ack.id == sent.message_id => return Some(ack),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .await
        .map_err(|_| WhatsAppError::Timeout(timeout, "WhatsApp's acknowledgement"))?
        .ok_or(WhatsAppError::NotConnected)?;
        if let Some(code) = ack.error {
            return Err(WhatsAppError::Refused(code));
        }
        let timestamp = ack
            .timestamp
            .and_then(|t| Timestamp::from_second(t).ok())
            .unwrap_or_else(Timestamp::now);
        Ok(Ack {
            message_id: sent.message_id,
            timestamp,
        })
    }

    async fn shutdown(&self) {
        let _guard = self.inner.lifecycle.lock().await;
        self.inner.next_generation();
        if let Some(running) = self.inner.take_running() {
            info!("disconnecting from WhatsApp");
            stop(running).await;
        }
    }
}
