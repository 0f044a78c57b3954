//! The WhatsApp accounts this server holds (the later Go versions' "devices"): each
//! with its own client, session store, message store, webhook outbox and services,
//! sharing no mutable state with the others.
//!
//! On disk, every account has a folder of its own: the first one (the one-account
//! versions' account, or the one a header-less `/app/login` makes) uses the storage
//! folder itself, the others `accounts/<uuid>/`. The slots themselves are in
//! `accounts.db`, or with a PostgreSQL `--db-uri` in the database, shared by every
//! server using it ([`registry`]).

pub mod pulse;
pub mod registry;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use tracing::{error, info, warn};

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
    /// Its folder as the registry names it (`""`: the storage folder).
    folder: String,
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

    /// Its slot as the registry has it (the API key aside).
    fn slot(&self) -> Slot {
        Slot {
            id: self.id.clone(),
            folder: self.folder.clone(),
            created_at: self.created_at,
            api_key_sha256: None,
        }
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
    /// The account in the storage folder itself (the first one).
    pub first: bool,
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

    /// Deletes what the account `id` keeps outside its folder (its WhatsApp
    /// session in a database); the account is being removed.
    async fn forget(&self, _id: &str) -> anyhow::Result<()> {
        Ok(())
    }

    /// Whether what the accounts need outside their folders is there (the
    /// database lock); why not.
    fn ready(&self) -> Result<(), String> {
        Ok(())
    }

    /// Deletes what accounts no longer in the registry left outside their
    /// folders (removed while a crash cut the removal short). The registry is
    /// read by the deletion itself: another server may add accounts meanwhile.
    async fn sweep(&self) -> anyhow::Result<()> {
        Ok(())
    }

    /// The services of the opened account `id`.
    fn services(
        &self,
        id: &str,
        opened: &Opened,
        files: &AccountFiles,
    ) -> std::io::Result<AppState>;
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
    /// The account is still waiting for its turn to connect at startup.
    Starting(String),
    /// The account could not be opened (at startup, or reopened).
    Broken(String),
    /// Another server sharing the database serves the account, or it is moving
    /// between servers.
    Elsewhere(String),
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
    /// Not enough open files left for another account.
    #[error("{0}")]
    NoRoom(String),
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
    /// A Go session was imported into the storage folder at this start: it gets
    /// the first account's slot if none has it.
    pub root_imported: bool,
    /// With several servers on one database: this server's leases. It serves
    /// only the accounts whose lease it holds, its share of them.
    pub cluster: Option<Arc<crate::postgres::leases::Leases>>,
    /// With a PostgreSQL `--db-uri`: the registry is the database's (shared by
    /// every server using it), and there is no `accounts.db`.
    pub registry_pool: Option<deadpool_postgres::Pool>,
}

/// A slot id and webhook to give the first account (from the Go server's registry).
#[derive(Debug, Clone)]
pub struct FirstSlot {
    pub id: String,
    pub webhook: Option<AccountWebhook>,
}

/// How often a server sharing its database with others places the accounts.
const PLACE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Longest placement round (opening accounts included).
const PLACE_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Keeps `turn` (a turn to connect) until `account` is connected, or for
/// [`HANDSHAKE_SLOT`] at most.
fn hold_until_connected(account: &Account, turn: tokio::sync::OwnedSemaphorePermit) {
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
        drop(turn);
    });
}

/// How long one account's connection may hold a startup slot.
const HANDSHAKE_SLOT: std::time::Duration = std::time::Duration::from_secs(20);

pub struct Accounts {
    settings: Settings,
    registry: Registry,
    opener: Box<dyn Opener>,
    table: RwLock<Table>,
    /// One change of the set at a time (add, remove, reopen).
    changing: tokio::sync::Mutex<()>,
    /// The accounts' own API keys: SHA-256 (hex) → slot id.
    keys: RwLock<std::collections::HashMap<String, String>>,
    /// Set once the server stops.
    stopping: std::sync::atomic::AtomicBool,
    /// With several servers: this one holds its share of the accounts (as of
    /// its last placement round, and not fenced since).
    placed: std::sync::atomic::AtomicBool,
    /// With several servers: since when each account has been seen free.
    free_since: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// Turns to connect to WhatsApp (`startup_handshakes`), each held until its
    /// account is connected: at start, and when accounts are taken over.
    handshakes: Arc<tokio::sync::Semaphore>,
}

/// The slots by what they are now.
#[derive(Default)]
struct Table {
    /// Oldest first (then by id).
    open: Vec<Arc<Account>>,
    /// Waiting for their turn to connect at startup.
    starting: Vec<Slot>,
    /// Could not be opened at startup (the log says why).
    broken: Vec<Slot>,
    /// Served by other servers (with several on one database), or moving.
    elsewhere: Vec<Slot>,
}

impl Table {
    fn insert(&mut self, account: Arc<Account>) {
        let key = |a: &Account| (a.created_at, a.id.clone());
        let at = self.open.partition_point(|a| key(a) < key(&account));
        self.open.insert(at, account);
    }

    fn total(&self) -> usize {
        self.open.len() + self.starting.len() + self.broken.len() + self.elsewhere.len()
    }

    /// Why the slot `id` is not open, when it is one of this server's.
    fn not_open(&self, id: &str) -> Option<Lookup> {
        if self.starting.iter().any(|s| s.id == id) {
            return Some(Lookup::Starting(id.to_owned()));
        }
        if self.elsewhere.iter().any(|s| s.id == id) {
            return Some(Lookup::Elsewhere(id.to_owned()));
        }
        self.broken
            .iter()
            .any(|s| s.id == id)
            .then(|| Lookup::Broken(id.to_owned()))
    }
}

impl Accounts {
    /// Opens the registry (in `settings.root`, or the database of
    /// `settings.registry_pool`) and the accounts it lists: as many as
    /// may connect at once right away, the others in the background, a few at a
    /// time in a random order (they answer 503 until then). At the first start, a
    /// storage folder with the one-account versions' files (or an imported Go
    /// session) gets its first account there, with no new scan.
    pub async fn load(
        settings: Settings,
        opener: Box<dyn Opener>,
        default_account: bool,
    ) -> anyhow::Result<Arc<Self>> {
        // Whether the registry is made now: no `accounts.db` yet (in PostgreSQL,
        // where no file tells, no slot at all; read below).
        let (registry, made_now) = match settings.registry_pool.clone() {
            Some(pool) => (Registry::postgres(pool), None),
            None => {
                let path = settings.root.join(storage::ACCOUNTS_FILE);
                let made_now = !path.exists();
                (Registry::open(&path)?, Some(made_now))
            }
        };
        let handshakes = Arc::new(tokio::sync::Semaphore::new(
            settings.startup_handshakes.max(1),
        ));
        let accounts = Arc::new(Self {
            settings,
            handshakes,
            registry,
            opener,
            table: RwLock::default(),
            changing: tokio::sync::Mutex::new(()),
            keys: RwLock::default(),
            stopping: std::sync::atomic::AtomicBool::new(false),
            placed: std::sync::atomic::AtomicBool::new(false),
            free_since: std::sync::Mutex::default(),
        });
        let mut slots = accounts.registry.slots().await?;
        let file = accounts.settings.root.join(storage::ACCOUNTS_FILE);
        if made_now.is_none() && slots.is_empty() && file.exists() {
            // An earlier version kept the list in the storage folder with
            // `--db-uri postgres://` too: it moves over once (the file stays).
            let moved = registry::copy_file_to(&file, &accounts.registry).await?;
            if moved > 0 {
                info!(
                    accounts = moved,
                    "the account list moved from accounts.db to PostgreSQL (the file is left as it was)"
                );
            }
            slots = accounts.registry.slots().await?;
        }
        let registry_is_new = made_now.unwrap_or(slots.is_empty());
        *accounts.keys.write().unwrap_or_else(|e| e.into_inner()) = slots
            .iter()
            .filter_map(|s| Some((s.api_key_sha256.clone()?, s.id.clone())))
            .collect();
        let root_used = slots.iter().any(|s| s.folder.is_empty());
        // Only at the first start, or in the default dialect with no account left
        // (a removed first account does not come back otherwise), or for a Go
        // session imported just now.
        let first_start =
            slots.is_empty() && (default_account || (registry_is_new && accounts.root_has_files()));
        if !root_used && (first_start || accounts.settings.root_imported) {
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
            if accounts.registry.insert(&slot).await? {
                // New: no server held it, so it is taken at once.
                if let Some(leases) = &accounts.settings.cluster {
                    leases.try_take(&slot.id).await;
                }
                if let Some(id) = &go_id {
                    info!(device_id = %id, "the account keeps the Go server's device id");
                    if let Some(hook) = first.and_then(|f| f.webhook) {
                        accounts.registry.set_webhook(id, &hook).await?;
                    }
                }
                slots.push(slot);
            }
        } else if !root_used && accounts.root_has_files() {
            warn!(
                folder = %accounts.settings.root.display(),
                "the storage folder holds the files of an account that was removed; they are left alone"
            );
        }
        accounts.sweep_orphan_folders(&slots);
        if let Err(e) = accounts.opener.sweep().await {
            warn!(error = %e, "cannot delete what removed accounts left in the database");
        }
        if let Some(leases) = accounts.settings.cluster.clone() {
            accounts.write_table().elsewhere = slots;
            // Listening before the first round: a loss during it is fenced too.
            let lost = leases.lost();
            accounts.place(&leases).await?;
            accounts.start_placement(leases, lost);
            return Ok(accounts);
        }
        if let Err(e) = crate::ops::room_for_accounts(slots.len() as u64) {
            error!(
                accounts = slots.len(),
                "{e}; some accounts may fail to open"
            );
        }
        // Never every handshake at once: a random order, a jittered pause between
        // accounts, and at most `startup_handshakes` connecting at a time.
        rand::seq::SliceRandom::shuffle(slots.as_mut_slice(), &mut rand::rng());
        let handshakes = accounts.handshakes.clone();
        accounts.write_table().starting = slots.clone();
        let mut later = slots.into_iter();
        // Those that may connect at once are open before the server answers.
        while let Ok(permit) = handshakes.clone().try_acquire_owned() {
            let Some(slot) = later.next() else {
                break;
            };
            accounts.open_at_start(slot, permit).await;
        }
        let rest: Vec<Slot> = later.collect();
        if !rest.is_empty() {
            info!(
                accounts = rest.len(),
                "more accounts connect in the background"
            );
            let accounts = accounts.clone();
            tokio::spawn(async move {
                for slot in rest {
                    let pause = rand::random_range(5..=30);
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                    let Ok(permit) = handshakes.clone().acquire_owned().await else {
                        return;
                    };
                    if accounts.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                        return;
                    }
                    accounts.open_at_start(slot, permit).await;
                }
                info!("every account is open");
            });
        }
        Ok(accounts)
    }

    /// Opens one account at startup; `permit` is its turn to connect, held until it
    /// is connected (or gave up for now).
    async fn open_at_start(&self, slot: Slot, permit: tokio::sync::OwnedSemaphorePermit) {
        let opened = self.open_slot(&slot).await;
        let mut table = self.write_table();
        table.starting.retain(|s| s.id != slot.id);
        let account = match opened {
            Ok(account) => account,
            Err(e) => {
                error!(
                    device_id = %slot.id,
                    error = format!("{e:#}"),
                    "cannot open the account; it answers 500 until it is removed or the server starts again"
                );
                table.broken.push(slot);
                return;
            }
        };
        table.insert(account.clone());
        drop(table);
        hold_until_connected(&account, permit);
    }

    /// The first account's files from an earlier version are in the storage folder.
    fn root_has_files(&self) -> bool {
        let layout = Layout::in_folder(&self.settings.root);
        [&layout.session, &layout.messages, &layout.outbox]
            .iter()
            .any(|p| p.exists())
    }

    fn read_table(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_table(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }

    /// No slot at all: open, starting or broken.
    pub fn is_empty(&self) -> bool {
        self.read_table().total() == 0
    }

    /// Every open account, oldest first.
    pub fn list(&self) -> Vec<Arc<Account>> {
        self.read_table().open.clone()
    }

    /// The slots not open (yet): starting, or broken. (slot, whether broken)
    pub fn not_open(&self) -> Vec<(Slot, bool)> {
        let table = self.read_table();
        let starting = table.starting.iter().map(|s| (s.clone(), false));
        starting
            .chain(table.broken.iter().map(|s| (s.clone(), true)))
            .collect()
    }

    /// Whether this server serves all its accounts (`/ready`); why not.
    pub fn readiness(&self) -> Result<(), String> {
        if self.is_stopping() {
            return Err("stopping".to_owned());
        }
        let starting = self.read_table().starting.len();
        if starting > 0 {
            return Err(format!("{starting} accounts are still opening"));
        }
        if self.settings.cluster.is_some() && !self.placed.load(std::sync::atomic::Ordering::SeqCst)
        {
            self.opener.ready()?;
            return Err("taking its share of the accounts".to_owned());
        }
        self.opener.ready()
    }

    /// Whether the server is stopping (for `/health`).
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The open account with slot id `id` (the `/devices/:id` routes name slots
    /// only).
    pub fn get(&self, id: &str) -> Option<Arc<Account>> {
        self.read_table().open.iter().find(|a| a.id == id).cloned()
    }

    /// The slot `id`: open, or why not.
    pub fn slot(&self, id: &str) -> Result<Arc<Account>, Lookup> {
        let table = self.read_table();
        if let Some(open) = table.open.iter().find(|a| a.id == id) {
            return Ok(open.clone());
        }
        Err(table
            .not_open(id)
            .unwrap_or_else(|| Lookup::NotFound(id.to_owned())))
    }

    /// The account a request names (`X-Device-Id` or `device_id`: a slot id, a
    /// number or a JID), or the only one when it names none.
    pub fn resolve(&self, id: Option<&str>) -> Result<Arc<Account>, Lookup> {
        let table = self.read_table();
        let Some(id) = id.map(str::trim).filter(|id| !id.is_empty()) else {
            return match (table.open.as_slice(), table.total()) {
                ([only], 1) => Ok(only.clone()),
                (_, 1) => Err(table
                    .starting
                    .iter()
                    .chain(&table.broken)
                    .chain(&table.elsewhere)
                    .next()
                    .and_then(|s| table.not_open(&s.id))
                    .unwrap_or(Lookup::Required)),
                _ => Err(Lookup::Required),
            };
        };
        if let Some(exact) = table.open.iter().find(|a| a.id == id) {
            return Ok(exact.clone());
        }
        if let Some(why) = table.not_open(id) {
            return Err(why);
        }
        let mut linked = table.open.iter().filter(|a| a.answers_to(id));
        match (linked.next(), linked.next()) {
            (Some(one), None) => Ok(one.clone()),
            (Some(_), Some(_)) => Err(Lookup::Ambiguous(id.to_owned())),
            // A number or JID of an account still starting cannot be told yet.
            _ if !table.starting.is_empty() => Err(Lookup::Starting(id.to_owned())),
            _ => Err(Lookup::NotFound(id.to_owned())),
        }
    }

    /// The account a header-less login gets: the only one, or on a server with none,
    /// a new first account (the later Go versions fail there).
    pub async fn only_or_add_default(&self) -> Result<Arc<Account>, Lookup> {
        if !self.is_empty() {
            return self.resolve(None);
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
        crate::ops::room_for_accounts(1).map_err(AddError::NoRoom)?;
        let root_free = {
            let table = self.read_table();
            if table.open.iter().any(|a| a.id == id) || table.not_open(&id).is_some() {
                return Err(AddError::Exists(id));
            }
            table.open.iter().all(|a| a.files.own_folders)
                && !table
                    .starting
                    .iter()
                    .chain(&table.broken)
                    .any(|s| s.folder.is_empty())
        };
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
        // With several servers, its lease first: no other server may open it
        // between its listing and its opening here.
        if let Some(leases) = &self.settings.cluster
            && !leases.try_take(&id).await
        {
            return Err(AddError::Open(anyhow::anyhow!(
                "this server cannot take the account's lease (the id is in use, or its PostgreSQL connection is down); try again"
            )));
        }
        if !self.registry.insert(&slot).await? {
            self.release(&id).await;
            return Err(AddError::Exists(id));
        }
        match self.open_slot(&slot).await {
            Ok(account) => {
                self.write_table().insert(account.clone());
                info!(device_id = %id, "account added");
                Ok(account)
            }
            Err(e) => {
                let _ = self.registry.remove(&id).await;
                self.release(&id).await;
                Err(AddError::Open(e))
            }
        }
    }

    /// Removes an account and everything it left on disk: it is logged out at
    /// WhatsApp first (best effort). `Some(why)` when it cannot be removed (no such
    /// account, or it is still starting). An account that could not be opened at
    /// startup is removed with its files.
    pub async fn remove(&self, id: &str) -> anyhow::Result<Option<Lookup>> {
        let _changing = self.changing.lock().await;
        let account = match self.slot(id) {
            Ok(account) => account,
            Err(Lookup::Broken(_)) => {
                let slot = {
                    let mut table = self.write_table();
                    let slot = table.broken.iter().find(|s| s.id == id).cloned();
                    table.broken.retain(|s| s.id != id);
                    slot
                };
                self.registry.remove(id).await?;
                self.forget_key(id);
                if let Some(slot) = slot {
                    let (dir, files) = self.place_of(&slot);
                    purge(&Layout::in_folder(&dir), &files, &self.settings.root);
                }
                self.opener.forget(id).await?;
                self.release(id).await;
                info!(device_id = %id, "account removed");
                return Ok(None);
            }
            Err(why) => return Ok(Some(why)),
        };
        self.write_table().open.retain(|a| a.id != id);
        // Gone from the registry first: a crash half way leaves an unlisted folder,
        // which the next start removes.
        self.registry.remove(id).await?;
        self.forget_key(id);
        if account.wa.status() != crate::whatsapp::SessionStatus::LoggedOut
            && let Err(e) = account.wa.logout().await
        {
            warn!(device_id = %id, error = %e, "logout before removal failed; removing anyway");
        }
        account.wa.shutdown().await;
        if let Some(webhooks) = &account.webhooks {
            webhooks.stop();
        }
        if !account.files.own_folders {
            // The storage folder's message store also remembers what was imported
            // from a Go server's files (so that it is not imported again): emptied,
            // not deleted.
            let store = account.messages.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || store.clear()).await {
                warn!(device_id = %id, error = %e, "cannot empty the message store");
            }
        }
        purge(&account.layout, &account.files, &self.settings.root);
        self.opener.forget(id).await?;
        self.release(id).await;
        info!(device_id = %id, "account removed");
        Ok(None)
    }

    fn forget_key(&self, id: &str) {
        self.keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, owner| owner != id);
    }

    /// Stops every account's client (the stores stay). With several servers,
    /// each account's lease is given up as soon as its client has stopped, so
    /// that another server takes it over at once.
    pub async fn shutdown(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // No change (a placement round, an added or reopened account) starts or
        // finishes after this; one running gets a few seconds to end first.
        let _changing =
            tokio::time::timeout(std::time::Duration::from_secs(5), self.changing.lock()).await;
        let accounts = self.list();
        futures_util::future::join_all(accounts.iter().map(|a| async {
            a.wa.shutdown().await;
            self.release(&a.id).await;
        }))
        .await;
    }

    /// Whether other servers may share these accounts (a Postgres `--db-uri`).
    pub fn is_shared(&self) -> bool {
        self.settings.cluster.is_some()
    }

    /// The accounts other servers serve, or that are moving (with several
    /// servers), each with the address of the server holding it (`None`: no
    /// server does now).
    pub async fn held_elsewhere(&self) -> Vec<(Slot, Option<String>)> {
        let Some(leases) = self.settings.cluster.as_ref().filter(|l| l.is_up()) else {
            return Vec::new();
        };
        // Opened here in a round still running: listed as this server's.
        let slots: Vec<Slot> = {
            let table = self.read_table();
            let here = |id: &str| {
                table.open.iter().any(|a| a.id == id)
                    || table
                        .starting
                        .iter()
                        .chain(&table.broken)
                        .any(|s| s.id == id)
            };
            table
                .elsewhere
                .iter()
                .filter(|s| !here(&s.id))
                .cloned()
                .collect()
        };
        let ids: Vec<String> = slots.iter().map(|s| s.id.clone()).collect();
        let holders = leases.holders(&ids).await.unwrap_or_default();
        slots
            .into_iter()
            .map(|slot| {
                let address = holders
                    .get(&slot.id)
                    .cloned()
                    .flatten()
                    .filter(|a| !a.is_empty() && a != leases.address());
                (slot, address)
            })
            .collect()
    }

    /// Where a request for the account `id` names (none: the only one) goes
    /// instead, with several servers: the account's id and the address of the
    /// server serving it, when that is another one.
    pub async fn served_elsewhere(&self, id: Option<&str>) -> Option<(String, String)> {
        let leases = self.settings.cluster.as_ref().filter(|l| l.is_up())?;
        let Err(Lookup::Elsewhere(id)) = self.resolve(id) else {
            return None;
        };
        let holders = leases.holders(std::slice::from_ref(&id)).await.ok()?;
        let address = holders.get(&id)?.clone().filter(|a| !a.is_empty())?;
        (address != leases.address()).then_some((id, address))
    }

    /// Gives the lease of `id` up (with several servers): its client is stopped.
    async fn release(&self, id: &str) {
        if let Some(leases) = &self.settings.cluster {
            leases.release(id).await;
        }
    }

    /// Keeps this server at its share of the accounts: fences it when its leases
    /// are lost, and places accounts every [`PLACE_EVERY`].
    fn start_placement(
        self: &Arc<Self>,
        leases: Arc<crate::postgres::leases::Leases>,
        mut lost: tokio::sync::watch::Receiver<u64>,
    ) {
        let weak = Arc::downgrade(self);
        let kept = leases.clone();
        tokio::spawn(async move {
            while lost.changed().await.is_ok() {
                let Some(accounts) = weak.upgrade() else {
                    return;
                };
                accounts.lease_lost(&kept).await;
            }
        });
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PLACE_EVERY).await;
                let Some(accounts) = weak.upgrade() else {
                    return;
                };
                if accounts.is_stopping() {
                    return;
                }
                // A round stuck on a lost database gives up (the fence does not
                // wait for it).
                match tokio::time::timeout(PLACE_LIMIT, accounts.place(&leases)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        warn!(
                            error = format!("{e:#}"),
                            "cannot place the accounts; trying again"
                        )
                    }
                    Err(_) => warn!("a placement round took too long; trying again"),
                }
            }
        });
    }

    /// Opens the account of `slot`, whose lease this server holds; `false` (and
    /// the lease given up, for another server to try) when it cannot. `turn`,
    /// its turn to connect, is held until it is connected.
    async fn open_leased(
        &self,
        slot: &Slot,
        leases: &crate::postgres::leases::Leases,
        turn: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> bool {
        match self.open_slot(slot).await {
            Ok(account) if leases.holds(&slot.id) => {
                if let Some(turn) = turn {
                    hold_until_connected(&account, turn);
                }
                self.write_table().insert(account);
                info!(device_id = %slot.id, "account taken over: this server serves it now");
                true
            }
            Ok(account) => {
                // The lease went while it opened: stopped before it runs on.
                account.wa.shutdown().await;
                if let Some(webhooks) = &account.webhooks {
                    webhooks.stop();
                }
                false
            }
            Err(e) => {
                leases.release(&slot.id).await;
                warn!(device_id = %slot.id, error = format!("{e:#}"), "cannot open the account; its lease is given up");
                false
            }
        }
    }

    /// The lease connection is lost: the accounts keep running while their
    /// leases are taken back (for [`RETAKE_WINDOW`]); those not taken back in
    /// time stop before another server may take them.
    ///
    /// [`RETAKE_WINDOW`]: crate::postgres::leases::RETAKE_WINDOW
    async fn lease_lost(&self, leases: &crate::postgres::leases::Leases) {
        let deadline = std::time::Instant::now() + crate::postgres::leases::RETAKE_WINDOW;
        while !leases.is_up() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let gone = match leases.is_up() {
            true => leases.retake().await,
            false => leases.abandon(),
        };
        if gone.is_empty() {
            info!(
                "every lease was taken back after the PostgreSQL connection was lost; the accounts kept running"
            );
            return;
        }
        self.fence(&gone).await;
    }

    /// The accounts `ids` lost their leases (another server may take them
    /// soon): their clients stop now.
    async fn fence(&self, ids: &[String]) {
        self.placed
            .store(false, std::sync::atomic::Ordering::SeqCst);
        // Not behind `changing`: a change in progress (a placement round stuck on
        // a lost database) must not hold the fence up. What it opens after this
        // is stopped there, for want of its lease.
        let open = {
            let mut table = self.write_table();
            let (open, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut table.open)
                .into_iter()
                .partition(|a| ids.contains(&a.id));
            table.open = kept;
            let mut moving: Vec<Slot> = open.iter().map(|a| a.slot()).collect();
            let (mut broken, still): (Vec<_>, Vec<_>) = std::mem::take(&mut table.broken)
                .into_iter()
                .partition(|s| ids.contains(&s.id));
            table.broken = still;
            moving.append(&mut broken);
            table.elsewhere.append(&mut moving);
            open
        };
        futures_util::future::join_all(open.iter().map(|a| a.wa.shutdown())).await;
        for account in &open {
            if let Some(webhooks) = &account.webhooks {
                webhooks.stop();
            }
        }
        // A lease taken back meanwhile goes again: its client is stopped.
        for id in ids {
            self.release(id).await;
        }
        if !open.is_empty() {
            warn!(
                accounts = open.len(),
                "stopped the accounts whose leases are lost"
            );
        }
    }

    /// Takes free accounts up to this server's share (the accounts over the
    /// servers alive, rounded up), hands the ones over it to the others, and
    /// stops those removed through another server.
    async fn place(
        self: &Arc<Self>,
        leases: &crate::postgres::leases::Leases,
    ) -> anyhow::Result<()> {
        if !leases.may_claim() {
            return Ok(());
        }
        let _changing = self.changing.lock().await;
        if self.is_stopping() {
            return Ok(());
        }
        let slots = self.registry.slots().await?;
        let listed: std::collections::HashSet<&str> = slots.iter().map(|s| s.id.as_str()).collect();
        let gone: Vec<Arc<Account>> = {
            let mut table = self.write_table();
            let (gone, kept) = std::mem::take(&mut table.open)
                .into_iter()
                .partition(|a| !listed.contains(a.id.as_str()));
            table.open = kept;
            table.broken.retain(|s| listed.contains(s.id.as_str()));
            gone
        };
        for account in gone {
            account.wa.shutdown().await;
            if let Some(webhooks) = &account.webhooks {
                webhooks.stop();
            }
            purge(&account.layout, &account.files, &self.settings.root);
            leases.release(&account.id).await;
            info!(device_id = %account.id, "account removed through another server");
        }
        let here = |table: &Table| -> Vec<String> {
            table
                .open
                .iter()
                .map(|a| a.id.clone())
                .chain(table.broken.iter().map(|s| s.id.clone()))
                .collect()
        };
        // Open without their lease (taken away while they opened): stopped.
        let unleased: Vec<String> = self
            .read_table()
            .open
            .iter()
            .filter(|a| !leases.owns(&a.id))
            .map(|a| a.id.clone())
            .collect();
        if !unleased.is_empty() {
            self.fence(&unleased).await;
        }
        // Leased but not open yet (made at this start).
        let mine = here(&self.read_table());
        for slot in slots
            .iter()
            .filter(|s| leases.holds(&s.id) && !mine.contains(&s.id))
        {
            self.open_leased(slot, leases, None).await;
        }
        let mine = here(&self.read_table());
        let share = slots.len().div_ceil(leases.live_servers().await?);
        if mine.len() < share {
            let others: Vec<String> = slots
                .iter()
                .filter(|s| !mine.contains(&s.id))
                .map(|s| s.id.clone())
                .collect();
            let holders = leases.holders(&others).await?;
            let released = leases.released(&others).await?;
            // A lease that lapsed is taken only once it has been free for a
            // while (its server, if alive, has stopped the account by then); one
            // given up cleanly at once.
            let now = std::time::Instant::now();
            let claimable: std::collections::HashSet<String> = {
                let mut since = self.free_since.lock().unwrap_or_else(|e| e.into_inner());
                since.retain(|id, _| holders.get(id).is_some_and(Option::is_none));
                others
                    .iter()
                    .filter(|id| holders.get(*id).is_some_and(Option::is_none))
                    .filter(|id| {
                        let seen = *since.entry((*id).clone()).or_insert(now);
                        released.contains(*id)
                            || now.duration_since(seen) >= crate::postgres::leases::CLAIM_AFTER
                    })
                    .cloned()
                    .collect()
            };
            let mut free: Vec<&Slot> = slots.iter().filter(|s| claimable.contains(&s.id)).collect();
            rand::seq::SliceRandom::shuffle(free.as_mut_slice(), &mut rand::rng());
            let wanted = share - mine.len();
            let mut taken = 0;
            // Free ones still waiting their delay count as available.
            let available = others
                .iter()
                .filter(|id| holders.get(*id).is_some_and(Option::is_none))
                .count();
            for slot in free.into_iter().take(wanted) {
                // At most `startup_handshakes` accounts connecting at once (a
                // server taking over many after a failover): the rest wait for
                // a later round.
                let Ok(turn) = self.handshakes.clone().try_acquire_owned() else {
                    break;
                };
                if leases.try_take(&slot.id).await
                    && self.open_leased(slot, leases, Some(turn)).await
                {
                    taken += 1;
                }
            }
            // Short of its share while accounts were free: not placed yet.
            let short = taken < wanted && taken < available;
            self.placed
                .store(!short, std::sync::atomic::Ordering::SeqCst);
        } else if mine.len() > share {
            let extra: Vec<Arc<Account>> = {
                let mut table = self.write_table();
                let keep = table.open.len().saturating_sub(mine.len() - share);
                table.open.split_off(keep)
            };
            for account in extra {
                account.wa.shutdown().await;
                if let Some(webhooks) = &account.webhooks {
                    webhooks.stop();
                }
                leases.release(&account.id).await;
                info!(device_id = %account.id, "account handed over to another server");
            }
        }
        if mine.len() >= share {
            self.placed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let mut table = self.write_table();
        let here: std::collections::HashSet<String> = table
            .open
            .iter()
            .map(|a| a.id.clone())
            .chain(table.broken.iter().map(|s| s.id.clone()))
            .collect();
        table.elsewhere = slots
            .iter()
            .filter(|s| !here.contains(&s.id))
            .cloned()
            .collect();
        drop(table);
        // Keys issued through other servers work here too.
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = slots
            .iter()
            .filter_map(|s| Some((s.api_key_sha256.clone()?, s.id.clone())))
            .collect();
        Ok(())
    }

    /// Gives the account a new API key (the old one stops working) and returns it:
    /// it is shown once, only its SHA-256 is kept. `None`: no such account.
    pub async fn issue_key(&self, id: &str) -> anyhow::Result<Option<String>> {
        let _changing = self.changing.lock().await;
        if self.get(id).is_none() {
            return Ok(None);
        }
        let key = format!("wak_{}", hex::encode(rand::random::<[u8; 32]>()));
        let hash = key_hash(&key);
        if !self.registry.set_api_key(id, &hash).await? {
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

    pub async fn webhook(&self, id: &str) -> anyhow::Result<Option<AccountWebhook>> {
        Ok(self.registry.webhook(id).await?)
    }

    /// Sets an account's webhook; its client is reopened with it (the session
    /// reconnects, the outbox keeps what it holds). If it cannot be reopened so, the
    /// setting is undone and the account reopened as it was.
    pub async fn set_webhook(&self, id: &str, hook: &AccountWebhook) -> anyhow::Result<bool> {
        let _changing = self.changing.lock().await;
        let Some(old) = self.get(id) else {
            return Ok(false);
        };
        let before = self.registry.webhook(id).await?.unwrap_or_default();
        self.registry.set_webhook(id, hook).await?;
        old.wa.shutdown().await;
        if let Some(webhooks) = &old.webhooks {
            webhooks.stop();
        }
        let slot = Slot {
            id: old.id.clone(),
            folder: old.folder.clone(),
            created_at: old.created_at,
            api_key_sha256: None,
        };
        drop(old);
        let failed = match self.open_slot(&slot).await {
            Ok(account) => {
                self.replace(account);
                return Ok(true);
            }
            Err(e) => e,
        };
        warn!(device_id = %id, error = format!("{failed:#}"), "cannot reopen the account with its new webhook; back to the old one");
        self.registry.set_webhook(id, &before).await?;
        match self.open_slot(&slot).await {
            Ok(account) => self.replace(account),
            Err(e) => {
                error!(device_id = %id, error = format!("{e:#}"), "cannot reopen the account");
                let mut table = self.write_table();
                table.open.retain(|a| a.id != id);
                table.broken.push(slot);
            }
        }
        Err(failed)
    }

    fn replace(&self, account: Arc<Account>) {
        let mut table = self.write_table();
        table.open.retain(|a| a.id != account.id);
        table.insert(account);
    }

    /// An account's folder and its QR and media folders.
    fn place_of(&self, slot: &Slot) -> (PathBuf, AccountFiles) {
        if slot.folder.is_empty() {
            return (
                self.settings.root.clone(),
                AccountFiles {
                    qr_dir: self.settings.qr_dir.clone(),
                    media_dir: self.settings.media_dir.clone(),
                    own_folders: false,
                    link_folder: String::new(),
                },
            );
        }
        let name = Path::new(&slot.folder)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (
            self.settings.root.join(&slot.folder),
            AccountFiles::own(&self.settings, &name),
        )
    }

    async fn open_slot(&self, slot: &Slot) -> anyhow::Result<Arc<Account>> {
        let (dir, files) = self.place_of(slot);
        std::fs::create_dir_all(&dir)?;
        let layout = Layout::in_folder(&dir);
        storage::prepare_account(&layout)?;
        let webhook = self.registry.webhook(&slot.id).await?;
        let opened = self
            .opener
            .open(&Place {
                id: &slot.id,
                layout: &layout,
                files: &files,
                webhook: webhook.as_ref(),
                first: slot.folder.is_empty(),
            })
            .await?;
        let state = match self.opener.services(&slot.id, &opened, &files) {
            Ok(state) => state,
            Err(e) => {
                opened.wa.shutdown().await;
                if let Some(webhooks) = &opened.webhooks {
                    webhooks.stop();
                }
                return Err(e.into());
            }
        };
        Ok(Arc::new(Account {
            id: slot.id.clone(),
            created_at: slot.created_at,
            folder: slot.folder.clone(),
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

/// Deletes an account's files: its stores (each checked to be this server's; the
/// storage folder's message store stays, emptied by the caller), its QR images and
/// media, and its folders when they are its own and left empty.
fn purge(layout: &Layout, files: &AccountFiles, root: &Path) {
    storage::remove_own_store(&layout.session, Kind::OurSession);
    if files.own_folders {
        storage::remove_own_store(&layout.messages, Kind::OurMessages);
    }
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
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}
