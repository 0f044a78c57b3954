//! The WhatsApp accounts this server holds (the later Go versions' "devices"): each
//! with its own client, session store, message store, webhook outbox and services,
//! sharing no mutable state with the others.
//!
//! On disk, every account has a folder of its own: the first one (the one-account
//! versions' account, or the one a header-less `/app/login` makes) uses the storage
//! folder itself, the others `accounts/<uuid>/`. The slots themselves are in
//! `accounts.db` ([`registry`]).

pub mod registry;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use tracing::{info, warn};

use crate::http::AppState;
use crate::messages::MessageStore;
use crate::storage::{self, Kind, Layout};
use crate::webhook::Webhooks;
use crate::whatsapp::WhatsApp;
pub use registry::{AccountWebhook, Registry, Slot};

/// The slot id of the account a client that never names one gets.
pub const DEFAULT_ID: &str = "default";
/// Longest slot id.
const MAX_ID_LEN: usize = 100;

/// One account and everything it runs.
pub struct Account {
    pub id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Its files (see the module docs).
    pub layout: Layout,
    /// Where its QR images and downloaded media go.
    pub files: AccountFiles,
    /// Its services, as the routes see them.
    pub state: AppState,
    pub wa: Arc<dyn WhatsApp>,
    pub messages: Arc<MessageStore>,
    pub webhooks: Option<Arc<Webhooks>>,
}

impl Account {
    /// The account's phone-number JID (`628…@s.whatsapp.net`), once paired.
    pub fn jid(&self) -> Option<String> {
        self.wa.device_id().map(|j| j.to_non_ad_string())
    }

    /// Whether `id` names this account: its slot id, number or JID.
    fn answers_to(&self, id: &str) -> bool {
        self.id == id || self.state.app.is_this_device(id) == Some(true)
    }
}

/// The folders of one account's QR images and downloaded media.
#[derive(Debug, Clone)]
pub struct AccountFiles {
    pub qr_dir: PathBuf,
    pub media_dir: PathBuf,
    /// The folders are the account's own (not the first account's shared ones):
    /// removed with it.
    pub own_folders: bool,
    /// Their name under the shared folders in links: `""` or `"<name>/"`.
    pub link_folder: String,
}

impl AccountFiles {
    fn own(settings: &Settings, name: &str) -> Self {
        AccountFiles {
            qr_dir: settings.qr_dir.join(name),
            media_dir: settings.media_dir.join(name),
            own_folders: true,
            link_folder: format!("{name}/"),
        }
    }
}

/// Where to open one account.
pub struct Place<'a> {
    pub id: &'a str,
    pub layout: &'a Layout,
    pub files: &'a AccountFiles,
    pub webhook: Option<&'a AccountWebhook>,
}

/// What opening an account made.
pub struct Opened {
    pub wa: Arc<dyn WhatsApp>,
    pub messages: Arc<MessageStore>,
    pub webhooks: Option<Arc<Webhooks>>,
}

/// Opens accounts: the real one starts a whatsapp-rust client (see `crate::build`),
/// API tests open doubles.
#[async_trait]
pub trait Opener: Send + Sync + 'static {
    async fn open(&self, place: &Place<'_>) -> anyhow::Result<Opened>;

    /// The services of an opened account.
    fn services(&self, opened: &Opened, files: &AccountFiles) -> std::io::Result<AppState>;
}

/// Why an id names no single account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Several accounts and none named.
    Required,
    /// No account has this id or JID.
    NotFound(String),
    /// Several accounts are linked to this number.
    Ambiguous(String),
}

/// Why an account could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error("device {0} already exists")]
    Exists(String),
    #[error("device_id must be 1 to 100 letters, digits or . _ - : @ + (got {0:?})")]
    InvalidId(String),
    #[error("cannot open the account: {0:#}")]
    Open(anyhow::Error),
    #[error(transparent)]
    Registry(#[from] registry::RegistryError),
}

/// Where the accounts are, and the settings for their files.
pub struct Settings {
    /// The storage folder.
    pub root: PathBuf,
    /// The first account's QR folder and media folder; others get a subfolder each.
    pub qr_dir: PathBuf,
    pub media_dir: PathBuf,
    /// At most this many accounts connect at once while the server starts.
    pub startup_handshakes: usize,
    /// What the Go server called the account in the storage folder (its device
    /// slot), for the slot made for it at the first start.
    pub first_slot: Option<FirstSlot>,
}

/// A slot id and webhook to give the first account (from the Go server's registry).
#[derive(Debug, Clone)]
pub struct FirstSlot {
    pub id: String,
    pub webhook: Option<AccountWebhook>,
}

/// How long one account's connection may hold a startup slot.
const HANDSHAKE_SLOT: std::time::Duration = std::time::Duration::from_secs(20);

pub struct Accounts {
    settings: Settings,
    registry: Registry,
    opener: Box<dyn Opener>,
    /// In the registry's order.
    slots: RwLock<Vec<Arc<Account>>>,
    /// One change of the set at a time (add, remove, reopen).
    changing: tokio::sync::Mutex<()>,
    /// The accounts' own API keys: SHA-256 (hex) → slot id.
    keys: RwLock<std::collections::HashMap<String, String>>,
}

impl Accounts {
    /// Opens the registry in `settings.root` and every account it lists. A storage
    /// folder with the one-account versions' files (or an imported Go session) and
    /// no registry gets its first account there, with no new scan.
    pub async fn load(
        settings: Settings,
        opener: Box<dyn Opener>,
        default_account: bool,
    ) -> anyhow::Result<Arc<Self>> {
        let registry = Registry::open(&settings.root.join(storage::ACCOUNTS_FILE))?;
        let accounts = Arc::new(Self {
            settings,
            registry,
            opener,
            slots: RwLock::default(),
            changing: tokio::sync::Mutex::new(()),
            keys: RwLock::default(),
        });
        let mut slots = accounts.registry.slots()?;
        *accounts.keys.write().unwrap_or_else(|e| e.into_inner()) = slots
            .iter()
            .filter_map(|s| Some((s.api_key_sha256.clone()?, s.id.clone())))
            .collect();
        let root_used = slots.iter().any(|s| s.folder.is_empty());
        if !root_used && (default_account || accounts.root_has_files()) {
            let first = accounts.settings.first_slot.clone();
            let go_id = first.as_ref().and_then(|f| match check_id(f.id.clone()) {
                Ok(id) if !slots.iter().any(|s| s.id == id) => Some(id),
                _ => {
                    warn!(device_id = %f.id, "the Go server's device id cannot be kept; the account is `default`");
                    None
                }
            });
            let slot = Slot {
                id: go_id.clone().unwrap_or_else(|| DEFAULT_ID.to_owned()),
                folder: String::new(),
                created_at: unix_now(),
                api_key_sha256: None,
            };
            if accounts.registry.insert(&slot)? {
                if let Some(id) = &go_id {
                    info!(device_id = %id, "the account keeps the Go server's device id");
                    if let Some(hook) = first.and_then(|f| f.webhook) {
                        accounts.registry.set_webhook(id, &hook)?;
                    }
                }
                slots.push(slot);
            }
        }
        accounts.sweep_orphan_folders(&slots);
        // Never every handshake at once: a jittered pause between accounts, and at
        // most `startup_handshakes` connecting at a time.
        let handshakes = Arc::new(tokio::sync::Semaphore::new(
            accounts.settings.startup_handshakes.max(1),
        ));
        for (n, slot) in slots.iter().enumerate() {
            if n > 0 {
                let pause = rand::random_range(5..=30);
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            let permit = handshakes.clone().acquire_owned().await?;
            let account = accounts.open_slot(slot).await?;
            let wa = account.wa.clone();
            tokio::spawn(async move {
                let connecting = async {
                    while matches!(
                        wa.phase(),
                        crate::whatsapp::SessionPhase::Connecting
                            | crate::whatsapp::SessionPhase::Reconnecting
                    ) {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                };
                let _ = tokio::time::timeout(HANDSHAKE_SLOT, connecting).await;
                drop(permit);
            });
            accounts.write_slots().push(account);
        }
        if slots.len() > 1 {
            info!(accounts = slots.len(), "accounts opened");
        }
        Ok(accounts)
    }

    /// The first account's files from an earlier version are in the storage folder.
    fn root_has_files(&self) -> bool {
        let layout = Layout::in_folder(&self.settings.root);
        [&layout.session, &layout.messages, &layout.outbox]
            .iter()
            .any(|p| p.exists())
    }

    fn read_slots(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Account>>> {
        self.slots.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_slots(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<Account>>> {
        self.slots.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Every account, oldest first.
    pub fn list(&self) -> Vec<Arc<Account>> {
        self.read_slots().clone()
    }

    /// The account with slot id `id` (the `/devices/:id` routes name slots only).
    pub fn get(&self, id: &str) -> Option<Arc<Account>> {
        self.read_slots().iter().find(|a| a.id == id).cloned()
    }

    /// The account a request names (`X-Device-Id` or `device_id`: a slot id, a
    /// number or a JID), or the only one when it names none.
    pub fn resolve(&self, id: Option<&str>) -> Result<Arc<Account>, Lookup> {
        let slots = self.read_slots();
        let Some(id) = id.map(str::trim).filter(|id| !id.is_empty()) else {
            return match slots.as_slice() {
                [only] => Ok(only.clone()),
                _ => Err(Lookup::Required),
            };
        };
        if let Some(exact) = slots.iter().find(|a| a.id == id) {
            return Ok(exact.clone());
        }
        let mut linked = slots.iter().filter(|a| a.answers_to(id));
        match (linked.next(), linked.next()) {
            (Some(one), None) => Ok(one.clone()),
            (Some(_), Some(_)) => Err(Lookup::Ambiguous(id.to_owned())),
            _ => Err(Lookup::NotFound(id.to_owned())),
        }
    }

    /// The account a header-less login gets: the only one, or on a server with none,
    /// a new first account (the later Go versions fail there).
    pub async fn resolve_or_add_default(&self, id: Option<&str>) -> Result<Arc<Account>, Lookup> {
        let named = id.is_some_and(|id| !id.trim().is_empty());
        if named || !self.read_slots().is_empty() {
            return self.resolve(id);
        }
        match self.add(Some(DEFAULT_ID.to_owned())).await {
            Ok(account) => Ok(account),
            // Made by a request running at the same time.
            Err(AddError::Exists(_)) => self.resolve(None),
            Err(e) => {
                warn!(error = %e, "cannot add the default account");
                Err(Lookup::Required)
            }
        }
    }

    /// Adds an account (`id`: a UUID when none); it stays unpaired until a login.
    pub async fn add(&self, id: Option<String>) -> Result<Arc<Account>, AddError> {
        let id = match id.map(|i| i.trim().to_owned()).filter(|i| !i.is_empty()) {
            Some(id) => check_id(id)?,
            None => uuid::Uuid::new_v4().to_string(),
        };
        let _changing = self.changing.lock().await;
        if self.get(&id).is_some() {
            return Err(AddError::Exists(id));
        }
        let root_free = self.read_slots().iter().all(|a| a.files.own_folders);
        // The storage folder goes to the first account only when nothing of an
        // earlier one is left there.
        let folder = if id == DEFAULT_ID && root_free && !self.root_has_files() {
            String::new()
        } else {
            format!("{}/{}", storage::ACCOUNTS_DIR, storage::own_uuid())
        };
        let slot = Slot {
            id: id.clone(),
            folder,
            created_at: unix_now(),
            api_key_sha256: None,
        };
        if !self.registry.insert(&slot)? {
            return Err(AddError::Exists(id));
        }
        match self.open_slot(&slot).await {
            Ok(account) => {
                self.write_slots().push(account.clone());
                info!(device_id = %id, "account added");
                Ok(account)
            }
            Err(e) => {
                let _ = self.registry.remove(&id);
                Err(AddError::Open(e))
            }
        }
    }

    /// Removes an account and everything it left on disk: it is logged out at
    /// WhatsApp first (best effort). `false` when there is no such account.
    pub async fn remove(&self, id: &str) -> anyhow::Result<bool> {
        let _changing = self.changing.lock().await;
        let Some(account) = self.get(id) else {
            return Ok(false);
        };
        self.write_slots().retain(|a| a.id != id);
        // Gone from the registry first: a crash half way leaves an unlisted folder,
        // which the next start removes.
        self.registry.remove(id)?;
        self.keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, owner| owner != id);
        if account.wa.status() != crate::whatsapp::SessionStatus::LoggedOut
            && let Err(e) = account.wa.logout().await
        {
            warn!(device_id = %id, error = %e, "logout before removal failed; removing anyway");
        }
        account.wa.shutdown().await;
        if let Some(webhooks) = &account.webhooks {
            webhooks.stop();
        }
        purge(&account.layout, &account.files, &self.settings.root);
        info!(device_id = %id, "account removed");
        Ok(true)
    }

    /// Stops every account's client (the stores stay).
    pub async fn shutdown(&self) {
        let accounts = self.list();
        futures_util::future::join_all(accounts.iter().map(|a| a.wa.shutdown())).await;
    }

    /// Gives the account a new API key (the old one stops working) and returns it:
    /// it is shown once, only its SHA-256 is kept. `None`: no such account.
    pub async fn issue_key(&self, id: &str) -> anyhow::Result<Option<String>> {
        let _changing = self.changing.lock().await;
        if self.get(id).is_none() {
            return Ok(None);
        }
        let key = format!("wak_{}", hex(&rand::random::<[u8; 32]>()));
        let hash = key_hash(&key);
        if !self.registry.set_api_key(id, &hash)? {
            return Ok(None);
        }
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        keys.retain(|_, owner| owner != id);
        keys.insert(hash, id.to_owned());
        info!(device_id = %id, "account API key issued");
        Ok(Some(key))
    }

    /// The account whose API key `key` is.
    pub fn account_for_key(&self, key: &str) -> Option<String> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.get(&key_hash(key)).cloned()
    }

    pub fn webhook(&self, id: &str) -> anyhow::Result<Option<AccountWebhook>> {
        Ok(self.registry.webhook(id)?)
    }

    /// Sets an account's webhook; its client is reopened with it (the session
    /// reconnects, the outbox keeps what it holds).
    pub async fn set_webhook(&self, id: &str, hook: &AccountWebhook) -> anyhow::Result<bool> {
        let _changing = self.changing.lock().await;
        let Some(old) = self.get(id) else {
            return Ok(false);
        };
        self.registry.set_webhook(id, hook)?;
        old.wa.shutdown().await;
        if let Some(webhooks) = &old.webhooks {
            webhooks.stop();
        }
        let slot = Slot {
            id: old.id.clone(),
            folder: self.folder_of(&old),
            created_at: old.created_at,
            api_key_sha256: None,
        };
        let account = self.open_slot(&slot).await?;
        let mut slots = self.write_slots();
        if let Some(place) = slots.iter_mut().find(|a| a.id == id) {
            *place = account;
        }
        Ok(true)
    }

    fn folder_of(&self, account: &Account) -> String {
        account
            .layout
            .dir()
            .strip_prefix(&self.settings.root)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    async fn open_slot(&self, slot: &Slot) -> anyhow::Result<Arc<Account>> {
        let (dir, files) = if slot.folder.is_empty() {
            (
                self.settings.root.clone(),
                AccountFiles {
                    qr_dir: self.settings.qr_dir.clone(),
                    media_dir: self.settings.media_dir.clone(),
                    own_folders: false,
                    link_folder: String::new(),
                },
            )
        } else {
            let name = Path::new(&slot.folder)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (
                self.settings.root.join(&slot.folder),
                AccountFiles::own(&self.settings, &name),
            )
        };
        std::fs::create_dir_all(&dir)?;
        let layout = Layout::in_folder(&dir);
        storage::prepare_account(&layout)?;
        let webhook = self.registry.webhook(&slot.id)?;
        let opened = self
            .opener
            .open(&Place {
                id: &slot.id,
                layout: &layout,
                files: &files,
                webhook: webhook.as_ref(),
            })
            .await?;
        let state = self.opener.services(&opened, &files)?;
        Ok(Arc::new(Account {
            id: slot.id.clone(),
            created_at: slot.created_at,
            layout,
            files,
            state,
            wa: opened.wa,
            messages: opened.messages,
            webhooks: opened.webhooks,
        }))
    }

    /// Folders under `accounts/` that no slot names: left by a removal a crash cut
    /// short. Only folders with this server's names holding only its files go.
    fn sweep_orphan_folders(&self, slots: &[Slot]) {
        let dir = self.settings.root.join(storage::ACCOUNTS_DIR);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let folder = format!("{}/{name}", storage::ACCOUNTS_DIR);
            if !storage::is_own_uuid(&name) || slots.iter().any(|s| s.folder == folder) {
                continue;
            }
            let files = AccountFiles::own(&self.settings, &name);
            warn!(folder = %entry.path().display(), "removing the files of an account removed earlier");
            purge(
                &Layout::in_folder(&entry.path()),
                &files,
                &self.settings.root,
            );
        }
    }
}

/// Deletes an account's files: its stores (each checked to be this server's), its
/// QR images and media, and its folders when they are its own and left empty.
fn purge(layout: &Layout, files: &AccountFiles, root: &Path) {
    storage::remove_own_store(&layout.session, Kind::OurSession);
    storage::remove_own_store(&layout.messages, Kind::OurMessages);
    storage::remove_own_store(&layout.outbox, Kind::OurOutbox);
    storage::remove_own_files(&files.qr_dir);
    storage::remove_own_files(&files.media_dir);
    if files.own_folders {
        for dir in [&files.qr_dir, &files.media_dir, &layout.dir()] {
            if dir.as_path() == root {
                continue;
            }
            match std::fs::remove_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => warn!(
                    folder = %dir.display(),
                    error = %e,
                    "the folder of a removed account holds files this server did not make; left in place"
                ),
            }
        }
    }
}

fn check_id(id: String) -> Result<String, AddError> {
    let fine = id.len() <= MAX_ID_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:@+".contains(c))
        && id != "."
        && id != "..";
    if fine {
        Ok(id)
    } else {
        Err(AddError::InvalidId(id))
    }
}

fn key_hash(key: &str) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(key.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}
