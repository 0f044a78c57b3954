//! A fake WhatsApp server on loopback, for end-to-end tests of `whatsapp-api` and as
//! a sandbox to try the API without a phone.
//!
//! It speaks enough of the real protocol for the `whatsapp-rust` client: a WebSocket
//! with Noise (XX, IK, XX-fallback), pairing through a simulated phone that scans the QR
//! text or types the pairing code the companion shows, login, and the IQs a session
//! needs. It simulates many phones (accounts) at once: the default one
//! ([`PHONE_USER`]) and any added with [`FakeWhatsApp::add_phone`], each with its own
//! identity, Signal keys, LID and companions. One HTTP port serves everything:
//! `/ws/chat` (the client's socket), `/mms/...` (media uploads) and `/admin/...` (see
//! [`admin`]). Everything it receives is checked, never just acknowledged.
//!
//! Only for tests: the client must be built with `danger-skip-cert-chain-verify`.

mod actions;
pub mod admin;
mod app_state;
#[cfg(test)]
mod client_tests;
mod conn;
mod events;
mod flood;
mod groups;
mod history;
mod inbox;
mod iq;
mod link_code;
mod newsletter;
mod node;
pub mod noise;
pub mod phone;
pub use actions::{Delivered, ReadReceipt};
pub use app_state::AppStateMutation;
pub use groups::{Description, Group, GroupPicture, JoinRequest};
pub use history::{
    HistoryChat, HistoryChunk, HistoryMessage, HistoryOptions, HistoryReceipt, HistorySyncType,
    PushedHistory, generated_history,
};
pub use newsletter::FakeNewsletter;
mod signal;
#[cfg(test)]
mod wire_tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::any;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use whatsapp_rust::wacore::libsignal::protocol::{KeyPair, PrivateKey};
use whatsapp_rust::wacore_binary::node::Node;
use whatsapp_rust::waproto::whatsapp as wa;

use signal::DeviceKeys;

pub use noise::Pattern;
pub use phone::{Companion, Phone, QrCode};

/// The default phone: the account the fake simulates from the start. More phones can
/// be added with [`FakeWhatsApp::add_phone`]; the methods without a phone argument act
/// on this one.
pub const PHONE_USER: &str = "15550001234";
pub const PHONE_LID: &str = "205550001234001";
pub const PHONE_NAME: &str = "Fake Phone";

/// A companion device (like our server) that a phone has linked.
#[derive(Debug, Clone, Serialize)]
pub struct Device {
    /// The device number within its phone's account (1, 2, 3 … for each phone, as
    /// WhatsApp numbers them: the protocol carries it in one byte). Two phones'
    /// companions may share it; [`Self::jid`] is unique.
    pub id: u32,
    /// The phone number of the account it is a companion of.
    pub phone: String,
    /// `PHONE:ID@s.whatsapp.net`, with its own phone's number: unique across every
    /// phone of the fake, the key of every map kept per device.
    pub jid: String,
    #[serde(skip)]
    pub noise_key: [u8; 32],
    #[serde(skip)]
    pub identity_key: [u8; 32],
    /// Removed by a logout from the companion.
    pub removed: bool,
    /// The name the phone lists it by: the `os` of the device properties the
    /// companion sent when it registered.
    pub name: String,
}

/// A companion's request to link with a pairing code ("link with phone number
/// instead"), waiting for the phone's user to type the code it shows.
#[derive(Debug, Clone, Serialize)]
pub struct PendingCode {
    /// The phone number the code was asked for: one of the fake's phones (a request
    /// for any other number is refused with `bad-request`). Typing the code links the
    /// companion with that phone.
    pub phone: String,
    /// `<companion_platform_display>`, e.g. `Chrome (Linux)`.
    pub platform: String,
    /// `<companion_platform_id>`, e.g. `1` for Chrome.
    pub platform_id: String,
    /// Whether the companion asked for a push notification on the phone.
    pub push_notification: bool,
    /// Unix time of the request; the code is valid for 180 s.
    pub requested_at: u64,
    /// How many times a code was typed for it (the companion takes 3 tries).
    pub attempts: u32,
}

/// A pairing connection's request for a pairing code.
#[derive(Clone)]
struct LinkRequest {
    pending: PendingCode,
    /// The companion's ephemeral key, wrapped with the code.
    wrapped: [u8; 80],
    /// The `<link_code_pairing_ref>` the request was answered with.
    reference: Vec<u8>,
    since: std::time::Instant,
}

/// A device logged in while it was logged in on another open connection: the
/// older connection was told `<conflict type="replaced"/>` and closed, as
/// WhatsApp does. Two clients running as one device fight this way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replacement {
    pub device: String,
    /// The connection replaced, and the one that replaced it.
    pub replaced: u64,
    pub by: u64,
}

/// One connection the fake accepted.
#[derive(Debug, Clone, Serialize)]
pub struct Login {
    pub pattern: String,
    /// The device that logged in; `None` for a pairing connection.
    pub device: Option<String>,
}

/// Faults the next connections or requests run into.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Close this many of the next connections before the handshake.
    pub refuse_connections: u32,
    /// Answer the next IQ with this `xmlns` with an error (`xmlns` → code).
    pub iq_errors: HashMap<String, u16>,
    /// Do not acknowledge this many of the next messages.
    pub withhold_acks: u32,
    /// Wait this long before acknowledging a message.
    pub ack_delay_ms: u64,
    /// Hold message acks until this many are due, then send them all at once: a
    /// burst of acks while that many sends wait for theirs.
    pub ack_batch: u32,
    /// Before acknowledging each message, push this many stanzas at the client:
    /// delivery and read receipts for that message from its recipient, and profile
    /// notifications (about text, picture) from the same account. See
    /// [`FakeWhatsApp::flood`] for what the client answered.
    pub flood_per_message: u32,
    /// Wait this long before answering a returning companion's login with
    /// `<success>`: stretches each handshake, so that overlapping ones show in
    /// [`FakeWhatsApp::max_handshakes`].
    pub login_delay_ms: u64,
    /// How many QR refs every pairing connection gets while set (0: the default, 6).
    /// The client shows the first for 60 s and each later one for 20 s, then gives
    /// up: with 1, an unscanned pairing attempt is over after 60 s.
    pub qr_refs: u32,
}

/// What the flood fault ([`Faults::flood_per_message`]) sent and the client acknowledged.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FloodCount {
    /// Receipts and notifications pushed at the client.
    pub sent: u64,
    /// Those the client acknowledged as expected (a wrong or refused acknowledgement
    /// is a problem instead, see [`FakeWhatsApp::problems`]).
    pub acked: u64,
}

/// Another WhatsApp account the fake knows (its phone, device 0).
pub struct Contact {
    pub status: Option<String>,
    pub picture_id: Option<u64>,
    pub picture_url: String,
    pub business_name: Option<String>,
    keys: Keys,
}

/// What a test says about a contact.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct ContactInfo {
    pub status: Option<String>,
    pub picture_id: Option<u64>,
    pub business_name: Option<String>,
}

/// A group to set up with [`FakeWhatsApp::add_group`]: `admin` created it (its
/// superadmin); `members` are phone numbers (the fake's phone is always a member
/// too). The fake keeps it as a [`Group`].
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FakeGroup {
    pub subject: String,
    pub admin: String,
    pub members: Vec<String>,
}

/// A message a simulated recipient decrypted.
#[derive(Debug, Clone)]
pub struct Received {
    /// The client's message id.
    pub id: String,
    /// The chat it was sent to (`PHONE@s.whatsapp.net` or `ID@g.us`).
    pub chat: String,
    /// The account whose device decrypted it (a phone number).
    pub recipient: String,
    /// The companion device that sent it (`PHONE:ID@s.whatsapp.net`): which account
    /// the send came from.
    pub sender: String,
    pub message: wa::Message,
    /// The decrypted media, checked against the message's hashes.
    pub media: Option<Vec<u8>>,
    /// The server time of the acknowledgement, once sent.
    pub ack_t: Option<u64>,
}

#[derive(Default)]
struct World {
    /// Every phone the fake simulates, the default phone ([`PHONE_USER`]) first.
    accounts: Vec<Account>,
    next_conn: u64,
    conns: HashMap<u64, mpsc::UnboundedSender<Command>>,
    /// QR refs of connections waiting for a scan.
    pairing: HashMap<String, u64>,
    /// Pairing connections that asked for a pairing code, by connection.
    link_codes: HashMap<u64, LinkRequest>,
    devices: Vec<Device>,
    /// Device ids handed to pairings under way, as (phone, id), so that two pairings
    /// at once of one phone never get the same id. Released when the pairing ends.
    reserved_ids: std::collections::HashSet<(String, u32)>,
    logins: Vec<Login>,
    faults: Faults,
    contacts: HashMap<String, Contact>,
    groups: HashMap<String, Group>,
    group_directory: groups::GroupDirectory,
    privacy: Vec<(String, String)>,
    newsletters: Vec<FakeNewsletter>,
    received: Vec<Received>,
    /// Uploaded (encrypted) media by token.
    uploads: HashMap<String, Vec<u8>>,
    /// What the fake refused, and why.
    problems: Vec<String>,
    /// Prekeys each companion device uploaded at login, by device JID.
    bundles: HashMap<String, signal::CompanionBundle>,
    /// The connection of the latest logged-in companion of each phone, by phone number.
    session_conns: HashMap<String, u64>,
    /// Every open logged-in connection and the device it logged in as (its JID).
    sessions: HashMap<u64, String>,
    /// Logins of a device that was logged in on another open connection, which
    /// WhatsApp then replaces: two clients running as one device.
    replacements: Vec<Replacement>,
    flood: FloodCount,
    /// Connections between their first byte and a finished login (or their end).
    handshaking: u32,
    /// The most that were at once since the last [`FakeWhatsApp::max_handshakes`].
    max_handshaking: u32,
    /// How many times a client asked to resume an upload.
    resume_probes: usize,
    /// Messages delivered to each companion device and not yet acknowledged by it,
    /// in order, by device JID: sent again at its next login, as WhatsApp's offline
    /// queue does.
    unacked: HashMap<String, Vec<(String, Node)>>,
    /// How many times media was downloaded, by token.
    downloads: HashMap<String, usize>,
    /// `<presence>` types the companion sent, in order.
    presences: Vec<String>,
    /// Calls offered to the companions: call id → caller's JID.
    offered_calls: HashMap<String, String>,
    /// Call ids the companions rejected (each checked against its offer).
    rejected_calls: Vec<String>,
    /// `<chatstate>`s the companion sent: (to, state).
    chatstates: Vec<(String, String)>,
    /// Profile pictures the companions set for their account (JPEG). Like the push
    /// names, recorded for every phone in one list.
    own_pictures: Vec<Vec<u8>>,
    /// Push names the companions announced.
    push_names: Vec<String>,
    /// Delivered messages, read receipts and revokes (see [`actions`]).
    actions: actions::Actions,
    /// The app state and its sync key (see [`app_state`]): one for the fake, the
    /// default phone's; every phone shares the key with its companions.
    app_state: app_state::AppState,
    /// History pushed to the companions (see [`history`]).
    history: history::HistoryState,
}

impl World {
    /// The phone with number `user`.
    fn account(&self, user: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.phone.user == user)
    }

    /// The account the companion `device` belongs to.
    fn account_of_device(&self, device: &Device) -> Result<Account> {
        self.account(&device.phone)
            .cloned()
            .with_context(|| format!("{} belongs to no phone of the fake", device.jid))
    }

    /// A device id for a new companion of the phone `user`, as WhatsApp numbers
    /// them: the smallest from 1 that no device of that phone was given (removed ones
    /// included, so that nothing kept for an old device is taken for the new one) and
    /// no pairing under way with that phone holds. Other phones' devices do not
    /// count. Release it with `reserved_ids.remove` once the pairing is over.
    fn reserve_device_id(&mut self, user: &str) -> u32 {
        let taken = |id: u32| {
            self.devices.iter().any(|d| d.phone == user && d.id == id)
                || self.reserved_ids.contains(&(user.to_owned(), id))
        };
        let id = (1..).find(|id| !taken(*id)).expect("a free device id");
        self.reserved_ids.insert((user.to_owned(), id));
        id
    }

    /// The connection of the latest logged-in companion of the phone `user`.
    fn session_conn(&self, user: &str) -> Result<u64> {
        self.session_conns
            .get(user)
            .copied()
            .with_context(|| format!("no companion of {user} is logged in"))
    }
}

/// One account the fake simulates: its phone (device 0), whose identity key signs the
/// companions it links, and the phone's Signal keys.
#[derive(Clone)]
struct Account {
    phone: Arc<Phone>,
    keys: Keys,
}

/// Media the fake serves as if a contact's phone had uploaded it: what a media
/// message needs to point at it.
#[derive(Debug, Clone)]
pub struct HostedMedia {
    pub url: String,
    pub direct_path: String,
    pub media_key: Vec<u8>,
    pub file_sha256: Vec<u8>,
    pub file_enc_sha256: Vec<u8>,
    pub file_length: u64,
}

pub use whatsapp_rust::wacore::download::MediaType;

fn text_message(text: &str) -> wa::Message {
    wa::Message {
        conversation: Some(text.to_owned()),
        ..Default::default()
    }
}

/// Orders for a connection's task.
enum Command {
    /// The phone of this account scanned one of this connection's QR codes.
    Scan(QrCode, Account, oneshot::Sender<Result<Device>>),
    /// The phone's user typed this (normalized) pairing code for this connection.
    EnterCode(String, oneshot::Sender<Result<Device>>),
    /// Drop the socket without a goodbye.
    Drop,
    /// Send this stanza (a `<stream:error>`), then close the connection.
    End(Node),
    /// Send the companion this stanza, expecting `owed` back if given.
    Push {
        node: Node,
        owed: Option<flood::Owed>,
        reply: oneshot::Sender<Result<()>>,
    },
    /// A contact sends the companion a message; answers with the message id.
    Deliver {
        from: String,
        message: Box<wa::Message>,
        reply: oneshot::Sender<Result<String>>,
    },
}

struct Shared {
    server_key: KeyPair,
    /// The default phone ([`PHONE_USER`]), also first in `World::accounts`. Groups,
    /// newsletters, privacy settings and the app state belong to it.
    phone: Arc<Phone>,
    /// `127.0.0.1:PORT`: the media host the fake hands out.
    host: String,
    world: Mutex<World>,
}

/// A simulated account's Signal keys, shared by the connections that use them.
type Keys = Arc<tokio::sync::Mutex<DeviceKeys>>;

impl Shared {
    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().expect("world lock")
    }

    /// The account `jid` (any device, phone number, or a phone's LID) belongs to:
    /// its phone number and the keys of its device 0 (a phone's, or a contact's).
    /// `None` for accounts the fake does not know.
    fn keys_of(&self, jid: &str) -> Option<(String, Keys)> {
        let world = self.world();
        let user = iq::account_of(&world, jid)?;
        let keys = match world.account(&user) {
            Some(account) => account.keys.clone(),
            None => world.contacts.get(&user)?.keys.clone(),
        };
        Some((user, keys))
    }

    /// The phone with number `user`.
    fn account(&self, user: &str) -> Result<Account> {
        self.world()
            .account(user)
            .cloned()
            .with_context(|| format!("{user} is not a phone of the fake"))
    }
}

/// A running fake server.
#[derive(Clone)]
pub struct FakeWhatsApp {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl FakeWhatsApp {
    /// Serves on `listener`. With `key_file`, the server's Noise key is kept there so
    /// that clients paired with an earlier run can still log in.
    pub async fn start(listener: TcpListener, key_file: Option<&Path>) -> Result<Self> {
        let addr = listener.local_addr()?;
        let default = Account {
            phone: Arc::new(Phone::new(PHONE_USER, PHONE_LID, PHONE_NAME)),
            keys: Arc::new(tokio::sync::Mutex::new(DeviceKeys::generate()?)),
        };
        let shared = Arc::new(Shared {
            server_key: server_key(key_file)?,
            phone: default.phone.clone(),
            host: addr.to_string(),
            world: Mutex::new(World {
                accounts: vec![default],
                privacy: default_privacy(),
                ..World::default()
            }),
        });
        let app = Router::new()
            .route("/ws/chat", any(upgrade))
            .route("/v/t62.7118-24/fake/{token}", axum::routing::get(download))
            .route(
                "/mms/{kind}/{token}",
                axum::routing::post(upload)
                    .layer(axum::extract::DefaultBodyLimit::max(256 * 1024 * 1024)),
            )
            .merge(admin::router())
            .merge(actions::admin_routes())
            .with_state(shared.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "fake WhatsApp server stopped");
            }
        });
        Ok(Self { shared, addr })
    }

    /// Starts on a free loopback port.
    pub async fn start_local() -> Result<Self> {
        Self::start(TcpListener::bind("127.0.0.1:0").await?, None).await
    }

    /// The URL to give the client (`WHATSAPP_WS_URL`).
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws/chat", self.addr)
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The default phone scans `qr_text`: pairs the companion that shows it and
    /// returns the new device once the companion has countersigned.
    pub async fn scan(&self, qr_text: &str) -> Result<Device> {
        scan(&self.shared, PHONE_USER, qr_text).await
    }

    /// The phone `phone_user` (see [`Self::add_phone`]) scans `qr_text`: the
    /// companion becomes a device of that account, signed in with its identity and
    /// named with its number and LID.
    pub async fn scan_as(&self, phone_user: &str, qr_text: &str) -> Result<Device> {
        scan(&self.shared, phone_user, qr_text).await
    }

    /// Another phone: a WhatsApp account with number `user`, LID user part `lid` and
    /// push name `name`, with fresh keys of its own (identity, Signal keys of its
    /// device 0). Its companions pair with [`Self::scan_as`] or a pairing code for
    /// its number, log in as its devices, and get its messages
    /// ([`Self::deliver_to`]); messages to its number are decrypted by its phone.
    /// Groups, newsletters, privacy settings, the app state, profile pictures and push
    /// names recorded stay the default phone's (one set for the whole fake). Refuses
    /// a number that is already a phone or a contact, and a LID another phone has.
    pub fn add_phone(&self, user: &str, lid: &str, name: &str) -> Result<()> {
        add_phone(&self.shared, user, lid, name)
    }

    /// The phone numbers of every phone, the default one first.
    pub fn phones(&self) -> Vec<String> {
        let world = self.shared.world();
        world
            .accounts
            .iter()
            .map(|a| a.phone.user.clone())
            .collect()
    }

    /// Companions waiting for a phone's user to type their pairing code (asked for
    /// less than 180 s ago, on a connection still open), oldest first, for any phone
    /// (see [`PendingCode::phone`]).
    pub fn pair_codes(&self) -> Vec<PendingCode> {
        pair_codes(&self.shared)
    }

    /// The phone's user types `code` (`ABCD-1234`, with or without the dash): the
    /// companion that asked for a code last is linked with the phone it asked the
    /// code for (its [`PendingCode::phone`]), and the new device is returned once the
    /// companion has countersigned. A wrong code is an error and links nothing: it
    /// shows only when the companion's key bundle does not open. The companion takes 3
    /// tries of a code while it is valid (whatsapp-rust gives up 60 s after a try that
    /// did not link; a later try then fails after waiting 30 s for it).
    pub async fn enter_code(&self, code: &str) -> Result<Device> {
        enter_code(&self.shared, code).await
    }

    /// Every device linked to any phone, in the order they paired.
    pub fn devices(&self) -> Vec<Device> {
        self.shared.world().devices.clone()
    }

    /// The devices linked to the phone `phone_user`, in the order they paired.
    pub fn devices_of(&self, phone_user: &str) -> Vec<Device> {
        let world = self.shared.world();
        let mine = world.devices.iter().filter(|d| d.phone == phone_user);
        mine.cloned().collect()
    }

    pub fn logins(&self) -> Vec<Login> {
        self.shared.world().logins.clone()
    }

    /// Drops every open connection, as a network failure would. Returns how many.
    pub fn drop_connections(&self) -> usize {
        drop_connections(&self.shared, None)
    }

    /// Drops the connections of the phone `phone_user`: those logged in as one of its
    /// devices and those waiting for a pairing code for its number. Returns how many.
    pub fn drop_connections_of(&self, phone_user: &str) -> usize {
        drop_connections(&self.shared, Some(phone_user))
    }

    /// Every phone unlinks its companions: every linked device is marked removed (a
    /// later login with its keys is refused with `<failure reason="401">`), and each
    /// connection logged in as one of them gets
    /// `<stream:error code="401"><conflict type="device_removed"/></stream:error>`
    /// and is closed. Returns how many connections were told.
    pub fn unlink_device(&self) -> usize {
        unlink_device(&self.shared, None)
    }

    /// As [`Self::unlink_device`], for the companions of the phone `phone_user` only.
    pub fn unlink_device_of(&self, phone_user: &str) -> usize {
        unlink_device(&self.shared, Some(phone_user))
    }

    /// Another client takes the session over: each logged-in connection gets
    /// `<stream:error><conflict type="replaced"/></stream:error>` and is closed. The
    /// devices stay linked, so a later login with the same keys works. Returns how
    /// many connections were told.
    pub fn replace_session(&self) -> usize {
        replace_session(&self.shared, None)
    }

    /// As [`Self::replace_session`], for the companions of the phone `phone_user` only.
    pub fn replace_session_of(&self, phone_user: &str) -> usize {
        replace_session(&self.shared, Some(phone_user))
    }

    /// The most connections that were handshaking (from the first byte to a
    /// finished login) at the same time since the last call; resets the count.
    pub fn max_handshakes(&self) -> u32 {
        let mut world = self.shared.world();
        let now = world.handshaking;
        std::mem::replace(&mut world.max_handshaking, now)
    }

    /// What the flood fault sent and the client acknowledged so far.
    pub fn flood(&self) -> FloodCount {
        self.shared.world().flood
    }

    pub fn set_faults(&self, faults: Faults) {
        self.shared.world().faults = faults;
    }

    pub fn phone_jid(&self) -> String {
        format!("{PHONE_USER}@s.whatsapp.net")
    }

    /// Makes `user` (a phone number) an account on WhatsApp. Refused for a number that
    /// is one of the fake's phones.
    pub fn add_contact(&self, user: &str, info: ContactInfo) -> Result<()> {
        add_contact(&self.shared, user, info)
    }

    /// Adds a group with id `id` (digits, without `@g.us`). See [`Self::group`] and
    /// [`Self::edit_group`] for the rest of its state.
    pub fn add_group(&self, id: &str, group: FakeGroup) {
        let group = groups::from_setup(id, group, &self.shared.phone.user);
        self.shared.world().groups.insert(id.to_owned(), group);
    }

    /// The account follows the channel `newsletter`.
    pub fn add_newsletter(&self, newsletter: FakeNewsletter) {
        self.shared.world().newsletters.push(newsletter);
    }

    /// Privacy settings as (category, value) pairs, e.g. `("groupadd", "all")`.
    pub fn set_privacy(&self, settings: &[(&str, &str)]) {
        self.shared.world().privacy = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }

    /// The contact `from` (a phone number) sends the default phone's account `text`:
    /// it goes to the latest logged-in companion of that phone. Returns the message
    /// id once it is on the wire.
    pub async fn deliver(&self, from: &str, text: &str) -> Result<String> {
        deliver(&self.shared, PHONE_USER, from, text_message(text)).await
    }

    /// The contact `from` sends the default phone's account any message (media, a
    /// reaction, an edit…). Returns the message id once it is on the wire.
    pub async fn deliver_message(&self, from: &str, message: wa::Message) -> Result<String> {
        deliver(&self.shared, PHONE_USER, from, message).await
    }

    /// The contact `from` sends the account of the phone `phone_user` `text`: it goes
    /// to the latest logged-in companion of that phone, and to no other phone's.
    pub async fn deliver_to(&self, phone_user: &str, from: &str, text: &str) -> Result<String> {
        deliver(&self.shared, phone_user, from, text_message(text)).await
    }

    /// As [`Self::deliver_to`], with any message.
    pub async fn deliver_message_to(
        &self,
        phone_user: &str,
        from: &str,
        message: wa::Message,
    ) -> Result<String> {
        deliver(&self.shared, phone_user, from, message).await
    }

    /// Encrypts `plaintext` as WhatsApp media of `kind` and serves it on the fake's
    /// media host, as a contact's phone uploads what it sends.
    pub fn host_media(&self, plaintext: &[u8], kind: MediaType) -> Result<HostedMedia> {
        host(&self.shared, plaintext, kind)
    }

    /// The phone `phone_user` pushes `chats` to its companions as a history sync
    /// (`INITIAL_BOOTSTRAP`, in one chunk), as a phone does after linking one: the
    /// `HistorySync` protobuf, zlib-compressed, is hosted encrypted as history media
    /// on the fake's media host, and every linked companion of that phone gets a
    /// peer message from the phone's device 0 whose `protocolMessage`
    /// (`HISTORY_SYNC_NOTIFICATION`) points at it. A companion that is not logged in
    /// or has not published its prekeys gets it at its next login or prekey upload.
    /// A client that does not skip history sync answers `<receipt type="hist_sync">`
    /// ([`Self::history_receipts`]), downloads the blob ([`Self::downloads`] of a
    /// chunk's [`HistoryChunk::direct_path`]) and emits `Event::HistorySync`.
    /// Refused for a malformed history (see [`HistoryChat`]), a number that is not a
    /// phone of the fake, or a phone without a linked companion.
    pub async fn push_history(
        &self,
        phone_user: &str,
        chats: &[HistoryChat],
    ) -> Result<PushedHistory> {
        history::push(&self.shared, phone_user, chats, HistoryOptions::default()).await
    }

    /// As [`Self::push_history`], with the sync type and the chunk size of
    /// `options`: a history of more than `options.messages_per_chunk` messages goes
    /// in several chunks (`chunk_order` 1, 2, …), each its own blob and notice, sent
    /// in order.
    pub async fn push_history_with(
        &self,
        phone_user: &str,
        chats: &[HistoryChat],
        options: HistoryOptions,
    ) -> Result<PushedHistory> {
        history::push(&self.shared, phone_user, chats, options).await
    }

    /// Every history chunk pushed so far, in order.
    pub fn history_chunks(&self) -> Vec<HistoryChunk> {
        history::chunks(&self.shared)
    }

    /// The `<receipt type="hist_sync">`s the companions sent for history notices:
    /// each says a companion took a chunk in (it then downloads it).
    pub fn history_receipts(&self) -> Vec<HistoryReceipt> {
        history::receipts(&self.shared)
    }

    /// History notices a companion has not acknowledged yet (by `peer_msg` or
    /// `hist_sync` receipt).
    pub fn history_unacknowledged(&self) -> usize {
        history::unacknowledged(&self.shared)
    }

    /// In group `gid`, the member `by` `action`s (`add`, `remove`, `promote`,
    /// `demote`) `members` (phone numbers; the phone's own number for this account):
    /// the companion gets the `w:gp2` notification, whose ack is checked.
    pub async fn group_participants(
        &self,
        gid: &str,
        action: &str,
        members: &[&str],
        by: &str,
    ) -> Result<()> {
        let members: Vec<String> = members.iter().map(|m| m.to_string()).collect();
        {
            let mut world = self.shared.world();
            let group = world.groups.get_mut(gid).context("unknown group")?;
            for member in &members {
                match action {
                    "add" => group.add_member(member),
                    "remove" => group.remove_member(member),
                    "promote" => group.promote(member),
                    "demote" => group.demote(member),
                    _ => {}
                }
            }
        }
        let (node, owed) = events::group_participants(gid, action, &members, by, unix_now())?;
        push(&self.shared, node, Some(owed)).await
    }

    /// The contact `from` calls this account; returns the call id.
    pub async fn call_offer(&self, from: &str) -> Result<String> {
        let call_id = format!("{:032X}", rand::random::<u128>());
        self.shared
            .world()
            .offered_calls
            .insert(call_id.clone(), format!("{from}@s.whatsapp.net"));
        push(
            &self.shared,
            events::call_offer(from, &call_id, unix_now()),
            None,
        )
        .await?;
        Ok(call_id)
    }

    /// How many times the media at `direct_path` was downloaded.
    pub fn downloads(&self, direct_path: &str) -> usize {
        let token = direct_path.rsplit('/').next().unwrap_or_default();
        self.shared
            .world()
            .downloads
            .get(token)
            .copied()
            .unwrap_or(0)
    }

    /// The ids of the calls the companion rejected, in order (each one a call
    /// the fake offered, rejected to its caller; anything else is a problem).
    pub fn rejected_calls(&self) -> Vec<String> {
        self.shared.world().rejected_calls.clone()
    }

    /// The presence types (`available`, `unavailable`) the companion announced.
    pub fn presences(&self) -> Vec<String> {
        self.shared.world().presences.clone()
    }

    /// Profile pictures the companion set for the account, in order (JPEG bytes).
    pub fn own_pictures(&self) -> Vec<Vec<u8>> {
        self.shared.world().own_pictures.clone()
    }

    /// Push names the companion announced (`<presence name=…>`).
    pub fn push_names(&self) -> Vec<String> {
        self.shared.world().push_names.clone()
    }

    /// The chat states the companion sent: (to, `composing` or `paused`).
    pub fn chatstates(&self) -> Vec<(String, String)> {
        self.shared.world().chatstates.clone()
    }

    /// Messages delivered to a companion and not acknowledged by it yet.
    pub fn unacked(&self) -> usize {
        self.shared.world().unacked.values().map(Vec::len).sum()
    }

    /// Every message a recipient decrypted, in order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.world().received.clone()
    }

    /// How many times a client asked whether an upload could be resumed (it does
    /// for files of 5 MiB and more).
    pub fn resume_probes(&self) -> usize {
        self.shared.world().resume_probes
    }

    /// Every login that replaced another open connection of the same device, in
    /// order.
    pub fn replacements(&self) -> Vec<Replacement> {
        self.shared.world().replacements.clone()
    }

    /// What the fake refused (undecryptable messages, bad media), with the reason.
    pub fn problems(&self) -> Vec<String> {
        self.shared.world().problems.clone()
    }
}

impl Received {
    /// A JSON summary for the admin API: what kind of message, its text parts, the
    /// SHA-256 and length of the decrypted media, and its thumbnail's length and
    /// whether it is a JPEG.
    pub fn summary(&self) -> serde_json::Value {
        use sha2::Digest;
        let m = &self.message;
        let (kind, text) = if let Some(text) = &m.conversation {
            ("text", Some(text.clone()))
        } else if let Some(t) = m.extended_text_message.as_option() {
            ("text", t.text.clone())
        } else if let Some(i) = m.image_message.as_option() {
            ("image", i.caption.clone())
        } else if let Some(v) = m.video_message.as_option() {
            ("video", v.caption.clone())
        } else if let Some(d) = m.document_message.as_option() {
            ("document", d.file_name.clone())
        } else if let Some(c) = m.contact_message.as_option() {
            ("contact", c.vcard.clone())
        } else {
            ("other", None)
        };
        let thumbnail = m
            .video_message
            .as_option()
            .and_then(|v| v.jpeg_thumbnail.as_ref())
            .or_else(|| {
                m.image_message
                    .as_option()
                    .and_then(|i| i.jpeg_thumbnail.as_ref())
            });
        serde_json::json!({
            "id": self.id,
            "chat": self.chat,
            "recipient": self.recipient,
            "sender": self.sender,
            "kind": kind,
            "text": text,
            "media_sha256": self.media.as_ref().map(|b| {
                sha2::Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect::<String>()
            }),
            "media_length": self.media.as_ref().map(Vec::len),
            "thumbnail_length": thumbnail.map(Vec::len),
            "thumbnail_is_jpeg": thumbnail.map(|t| t.starts_with(&[0xFF, 0xD8, 0xFF])),
            "ack_t": self.ack_t,
        })
    }
}

fn default_privacy() -> Vec<(String, String)> {
    [
        ("groupadd", "all"),
        ("last", "contacts"),
        ("status", "contacts"),
        ("profile", "all"),
        ("readreceipts", "all"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn add_phone(shared: &Shared, user: &str, lid: &str, name: &str) -> Result<()> {
    anyhow::ensure!(is_digits(user), "a phone is a phone number (digits only)");
    anyhow::ensure!(is_digits(lid), "a phone's LID is digits only");
    let account = Account {
        phone: Arc::new(Phone::new(user, lid, name)),
        keys: Arc::new(tokio::sync::Mutex::new(DeviceKeys::generate()?)),
    };
    let mut world = shared.world();
    anyhow::ensure!(world.account(user).is_none(), "{user} is already a phone");
    anyhow::ensure!(
        !world.contacts.contains_key(user),
        "{user} is already a contact"
    );
    anyhow::ensure!(
        world.accounts.iter().all(|a| a.phone.lid != lid),
        "another phone has the LID {lid}"
    );
    tracing::info!(%user, %lid, "a phone joined the fake");
    world.accounts.push(account);
    Ok(())
}

fn add_contact(shared: &Shared, user: &str, info: ContactInfo) -> Result<()> {
    anyhow::ensure!(is_digits(user), "a contact is a phone number (digits only)");
    anyhow::ensure!(
        shared.world().account(user).is_none(),
        "{user} is a phone of the fake, not a contact"
    );
    let contact = Contact {
        status: info.status,
        picture_id: info.picture_id,
        picture_url: format!(
            "https://pps.whatsapp.net/v/t61.24694-24/{}_{user}.jpg?oh=fake",
            info.picture_id.unwrap_or_default()
        ),
        business_name: info.business_name,
        keys: Arc::new(tokio::sync::Mutex::new(DeviceKeys::generate()?)),
    };
    shared.world().contacts.insert(user.to_owned(), contact);
    Ok(())
}

/// Encrypts `plaintext` as WhatsApp media of `kind` and serves it on the media host.
fn host(shared: &Shared, plaintext: &[u8], kind: MediaType) -> Result<HostedMedia> {
    use base64::Engine;
    let encrypted = whatsapp_rust::wacore::upload::encrypt_media(plaintext, kind)?;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(encrypted.file_enc_sha256);
    shared
        .world()
        .uploads
        .insert(token.clone(), encrypted.data_to_upload);
    let direct_path = format!("/v/t62.7118-24/fake/{token}");
    Ok(HostedMedia {
        url: format!("https://{}{direct_path}", shared.host),
        direct_path,
        media_key: encrypted.media_key.to_vec(),
        file_sha256: encrypted.file_sha256.to_vec(),
        file_enc_sha256: encrypted.file_enc_sha256.to_vec(),
        file_length: plaintext.len() as u64,
    })
}

/// `GET <direct_path>`: encrypted media, uploaded by the client or hosted by the fake.
async fn download(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Response {
    use axum::response::IntoResponse;
    let mut world = shared.world();
    match world.uploads.get(&token).cloned() {
        Some(body) => {
            *world.downloads.entry(token).or_default() += 1;
            body.into_response()
        }
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

/// `POST /mms/<kind>/<token>`: an encrypted media upload. The token must be the
/// base64url SHA-256 of the body, as the client computes it.
async fn upload(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path((kind, token)): axum::extract::Path<(String, String)>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    use axum::response::IntoResponse;
    use base64::Engine;
    use sha2::Digest;
    if query.contains_key("resume") {
        shared.world().resume_probes += 1;
        // The client asks whether an earlier upload can be resumed: nothing is kept
        // half-way here, so it starts from the beginning.
        return axum::Json(serde_json::json!({ "resume": "0" })).into_response();
    }
    let digest =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&body));
    if digest != token {
        shared.world().problems.push(format!(
            "upload to /mms/{kind}: the token is not the body's hash"
        ));
        return (axum::http::StatusCode::BAD_REQUEST, "token mismatch").into_response();
    }
    shared.world().uploads.insert(token.clone(), body.to_vec());
    let direct_path = format!("/v/t62.7118-24/fake/{token}");
    axum::Json(serde_json::json!({
        "url": format!("https://{}{direct_path}", shared.host),
        "direct_path": direct_path,
    }))
    .into_response()
}

async fn scan(shared: &Shared, phone_user: &str, qr_text: &str) -> Result<Device> {
    let account = shared.account(phone_user)?;
    let qr = QrCode::parse(qr_text)?;
    let conn = *shared
        .world()
        .pairing
        .get(&qr.reference)
        .context("no connection is showing this QR code (expired?)")?;
    ask(
        shared,
        conn,
        |reply| Command::Scan(qr, account, reply),
        "the connection that showed this QR code is gone",
        "the connection closed during pairing",
    )
    .await
}

fn pair_codes(shared: &Shared) -> Vec<PendingCode> {
    let world = shared.world();
    let validity = whatsapp_rust::wacore::pair_code::PairCodeUtils::code_validity();
    let mut requests: Vec<&LinkRequest> = world
        .link_codes
        .values()
        .filter(|r| r.since.elapsed() <= validity)
        .collect();
    requests.sort_by_key(|r| r.since);
    requests.into_iter().map(|r| r.pending.clone()).collect()
}

async fn enter_code(shared: &Shared, code: &str) -> Result<Device> {
    let code = link_code::normalize_code(code)?;
    // The code does not say which companion it is for: the latest request is
    // answered, and linked with the phone whose number it asked a code for.
    let conn = shared
        .world()
        .link_codes
        .iter()
        .max_by_key(|(_, r)| r.since)
        .map(|(conn, _)| *conn)
        .context("no companion asked to link with a pairing code")?;
    ask(
        shared,
        conn,
        |reply| Command::EnterCode(code, reply),
        "the companion that asked for the code is gone",
        "the connection closed during pairing",
    )
    .await
}

/// The contact `from` sends `message` to the account of the phone `phone_user`.
async fn deliver(
    shared: &Shared,
    phone_user: &str,
    from: &str,
    message: wa::Message,
) -> Result<String> {
    let conn = {
        let world = shared.world();
        anyhow::ensure!(
            world.account(phone_user).is_some(),
            "{phone_user} is not a phone of the fake"
        );
        anyhow::ensure!(
            world.contacts.contains_key(from),
            "{from} is not a contact of the fake"
        );
        world.session_conn(phone_user)?
    };
    let (from, message) = (from.to_owned(), Box::new(message));
    ask(
        shared,
        conn,
        |reply| Command::Deliver {
            from,
            message,
            reply,
        },
        "no companion is connected",
        "the connection closed before delivery",
    )
    .await
}

/// Sends the default phone's latest logged-in companion `node` (group events and
/// calls are the default phone's).
async fn push(shared: &Shared, node: Node, owed: Option<flood::Owed>) -> Result<()> {
    let conn = shared.world().session_conn(PHONE_USER)?;
    ask(
        shared,
        conn,
        |reply| Command::Push { node, owed, reply },
        "no companion is connected",
        "the connection closed before the stanza went out",
    )
    .await
}

/// Sends connection `conn` the command `make` builds and waits for its answer.
/// `gone`: the error when the connection is already closed; `closed`: when it
/// closes before answering.
async fn ask<T>(
    shared: &Shared,
    conn: u64,
    make: impl FnOnce(oneshot::Sender<Result<T>>) -> Command,
    gone: &str,
    closed: &str,
) -> Result<T> {
    let tx = shared
        .world()
        .conns
        .get(&conn)
        .cloned()
        .context(gone.to_owned())?;
    let (reply, answer) = oneshot::channel();
    tx.send(make(reply)).map_err(|_| anyhow!("{gone}"))?;
    answer.await.map_err(|_| anyhow!("{closed}"))?
}

/// Drops every connection, or with `phone` those of that phone: logged in as one
/// of its devices, or waiting for a pairing code for its number.
fn drop_connections(shared: &Shared, phone: Option<&str>) -> usize {
    let world = shared.world();
    let phone_of = |conn: &u64| -> Option<&str> {
        if let Some(device) = world.sessions.get(conn) {
            let device = world.devices.iter().find(|d| d.jid == *device)?;
            return Some(&device.phone);
        }
        world.link_codes.get(conn).map(|r| r.pending.phone.as_str())
    };
    world
        .conns
        .iter()
        .filter(|(conn, _)| phone.is_none() || phone_of(conn) == phone)
        .filter(|(_, tx)| tx.send(Command::Drop).is_ok())
        .count()
}

/// Whether the device with JID `device` is one of `phone`'s, or `phone` is `None`
/// (every phone).
fn of_phone(world: &World, device: &str, phone: Option<&str>) -> bool {
    phone.is_none_or(|phone| {
        world
            .devices
            .iter()
            .any(|d| d.jid == device && d.phone == phone)
    })
}

fn unlink_device(shared: &Shared, phone: Option<&str>) -> usize {
    let mut world = shared.world();
    let mut unlinked = Vec::new();
    let linked = world
        .devices
        .iter_mut()
        .filter(|d| !d.removed && phone.is_none_or(|p| d.phone == p));
    for device in linked {
        device.removed = true;
        unlinked.push(device.jid.clone());
        tracing::info!(device = %device.jid, "the phone unlinked the companion");
    }
    let stanza = || {
        whatsapp_rust::NodeBuilder::new("stream:error")
            .attr("code", "401")
            .children([whatsapp_rust::NodeBuilder::new("conflict")
                .attr("type", "device_removed")
                .build()])
            .build()
    };
    end_sessions(
        &world,
        |device| unlinked.iter().any(|u| u == device),
        stanza,
    )
}

fn replace_session(shared: &Shared, phone: Option<&str>) -> usize {
    let world = shared.world();
    end_sessions(
        &world,
        |device| of_phone(&world, device, phone),
        replaced_stanza,
    )
}

/// The stanza that tells a connection another client took its session over.
fn replaced_stanza() -> Node {
    whatsapp_rust::NodeBuilder::new("stream:error")
        .children([whatsapp_rust::NodeBuilder::new("conflict")
            .attr("type", "replaced")
            .build()])
        .build()
}

/// Connection `by` logged in as `device`: any other open connection logged in as
/// the same device is replaced (told so and closed), and that is recorded.
fn replace_older_logins(world: &mut World, device: &str, by: u64) {
    let older: Vec<u64> = world
        .sessions
        .iter()
        .filter(|(conn, d)| **conn != by && d.as_str() == device)
        .map(|(conn, _)| *conn)
        .collect();
    for replaced in older {
        if let Some(tx) = world.conns.get(&replaced) {
            let _ = tx.send(Command::End(replaced_stanza()));
        }
        world.sessions.remove(&replaced);
        tracing::info!(%device, replaced, by, "a second login of the device replaced the first");
        world.replacements.push(Replacement {
            device: device.to_owned(),
            replaced,
            by,
        });
    }
}

/// Sends every logged-in connection whose device `which` picks the stanza `stanza`
/// builds, to end it with. Returns how many connections took the order.
fn end_sessions(world: &World, which: impl Fn(&str) -> bool, stanza: impl Fn() -> Node) -> usize {
    world
        .sessions
        .iter()
        .filter(|(_, device)| which(device))
        .filter_map(|(conn, _)| world.conns.get(conn))
        .filter(|tx| tx.send(Command::End(stanza())).is_ok())
        .count()
}

/// The Noise static key: from `key_file` when it holds one, else new (and saved there).
fn server_key(key_file: Option<&Path>) -> Result<KeyPair> {
    let load = |bytes: &[u8]| -> Result<KeyPair> {
        let private = PrivateKey::deserialize(bytes).map_err(|e| anyhow!("server key: {e}"))?;
        KeyPair::try_from(private).map_err(|e| anyhow!("server key: {e}"))
    };
    match key_file {
        Some(path) if path.exists() => load(&std::fs::read(path)?),
        Some(path) => {
            let key = whatsapp_rust::wacore::crypto::generate_curve_key_pair();
            std::fs::write(path, key.private_key.serialize())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(key)
        }
        None => Ok(whatsapp_rust::wacore::crypto::generate_curve_key_pair()),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn upgrade(State(shared): State<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| conn::serve(shared, socket))
}

/// A debugging aid: the node as XML-ish text.
fn show(node: &Node) -> String {
    whatsapp_rust::wacore::xml::DisplayableNode(node).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn a_second_login_of_a_device_replaces_the_first_and_is_recorded() {
        let mut world = World::default();
        let (first, mut first_rx) = mpsc::unbounded_channel();
        let (second, mut second_rx) = mpsc::unbounded_channel();
        world.conns.insert(1, first);
        world.conns.insert(2, second);
        world.sessions.insert(1, "1555:1@s.whatsapp.net".into());
        world.sessions.insert(3, "1555:2@s.whatsapp.net".into());
        // Another device logging in replaces nobody.
        replace_older_logins(&mut world, "1555:3@s.whatsapp.net", 2);
        assert!(world.replacements.is_empty());
        // The same device on connection 2: connection 1 is told and forgotten.
        replace_older_logins(&mut world, "1555:1@s.whatsapp.net", 2);
        assert_eq!(
            world.replacements,
            [Replacement {
                device: "1555:1@s.whatsapp.net".into(),
                replaced: 1,
                by: 2
            }]
        );
        match first_rx.try_recv() {
            Ok(Command::End(node)) => {
                let conflict = node.get_optional_child("conflict").expect("a conflict");
                assert_eq!(
                    conflict.attrs().optional_string("type").as_deref(),
                    Some("replaced")
                );
            }
            _ => panic!("the replaced connection was not told"),
        }
        assert!(second_rx.try_recv().is_err());
        assert!(!world.sessions.contains_key(&1));
        assert!(world.sessions.contains_key(&3));
    }

    /// One HTTP/1.1 request to the fake; the status code and the body.
    async fn http(fake: &FakeWhatsApp, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(fake.addr).await.unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nhost: fake\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response.split_once("\r\n\r\n").unwrap().1.to_owned();
        (status, body)
    }

    fn link(fake: &FakeWhatsApp, id: u32) {
        link_to(fake, PHONE_USER, id);
    }

    fn link_to(fake: &FakeWhatsApp, phone: &str, id: u32) {
        fake.shared.world().devices.push(Device {
            id,
            phone: phone.to_owned(),
            jid: format!("{phone}:{id}@s.whatsapp.net"),
            noise_key: [id as u8; 32],
            identity_key: [id as u8; 32],
            removed: false,
            name: String::new(),
        });
    }

    /// A logged-in connection of the default phone's device `device`.
    fn session(fake: &FakeWhatsApp, device: u32) -> mpsc::UnboundedReceiver<Command> {
        session_of(fake, PHONE_USER, device)
    }

    /// A logged-in connection of device `device` of the phone `phone`, as
    /// `conn::serve` registers one; the receiver gets what the connection is ordered
    /// to do.
    fn session_of(
        fake: &FakeWhatsApp,
        phone: &str,
        device: u32,
    ) -> mpsc::UnboundedReceiver<Command> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut world = fake.shared.world();
        world.next_conn += 1;
        let id = world.next_conn;
        world.conns.insert(id, tx);
        world
            .sessions
            .insert(id, format!("{phone}:{device}@s.whatsapp.net"));
        world.session_conns.insert(phone.to_owned(), id);
        rx
    }

    const SECOND: &str = "6281100000001";
    const SECOND_LID: &str = "77100000001";
    const FRIEND: &str = "6281234567890";

    async fn two_phones() -> FakeWhatsApp {
        let fake = FakeWhatsApp::start_local().await.unwrap();
        fake.add_phone(SECOND, SECOND_LID, "Second Phone").unwrap();
        fake.add_contact(FRIEND, ContactInfo::default()).unwrap();
        fake
    }

    #[tokio::test]
    async fn a_phone_needs_a_new_number_and_lid() {
        let fake = two_phones().await;
        assert_eq!(fake.phones(), [PHONE_USER, SECOND]);
        for (user, lid, why) in [
            (PHONE_USER, "1", "already a phone"),
            (SECOND, "2", "already a phone"),
            (FRIEND, "3", "already a contact"),
            ("6281100000002", SECOND_LID, "has the LID"),
            ("6281100000002", PHONE_LID, "has the LID"),
            ("+62811", "4", "digits only"),
            ("6281100000002", "", "digits only"),
        ] {
            let err = fake.add_phone(user, lid, "x").unwrap_err();
            assert!(err.to_string().contains(why), "{user} {lid}: {err:#}");
        }
        let err = fake
            .add_contact(SECOND, ContactInfo::default())
            .unwrap_err();
        assert!(err.to_string().contains("is a phone"), "{err:#}");
        let (status, body) = http(
            &fake,
            "POST",
            "/admin/phones",
            r#"{"user": "6281100000002", "lid": "77100000002", "name": "Third"}"#,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = http(&fake, "GET", "/admin/phones", "").await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            format!(r#"["{PHONE_USER}","{SECOND}","6281100000002"]"#)
        );
        let (status, _) = http(
            &fake,
            "POST",
            "/admin/phones",
            r#"{"user": "6281100000002", "lid": "5", "name": "Again"}"#,
        )
        .await;
        assert_eq!(status, 400);
    }

    #[tokio::test]
    async fn any_phones_number_or_lid_resolves_to_its_own_keys() {
        let fake = two_phones().await;
        let keys = |jid: &str| fake.shared.keys_of(jid).unwrap();
        let (user, second) = keys(&format!("{SECOND}@s.whatsapp.net"));
        assert_eq!(user, SECOND);
        let (user, by_lid) = keys(&format!("{SECOND_LID}:3@lid"));
        assert_eq!(user, SECOND);
        assert!(Arc::ptr_eq(&second, &by_lid));
        let (user, by_device) = keys(&format!("{SECOND}:0@s.whatsapp.net"));
        assert_eq!(user, SECOND);
        assert!(Arc::ptr_eq(&second, &by_device));
        let (user, default) = keys(&format!("{PHONE_LID}@lid"));
        assert_eq!(user, PHONE_USER);
        assert!(!Arc::ptr_eq(&second, &default));
        assert!(!Arc::ptr_eq(
            &keys(&format!("{FRIEND}@s.whatsapp.net")).1,
            &second
        ));
        assert!(fake.shared.keys_of("77100000009@lid").is_none());
    }

    /// A companion of the default phone writes to the second phone's number: the
    /// second phone decrypts it, and the record names who sent it.
    #[tokio::test]
    async fn a_message_to_another_phones_number_is_read_by_that_phone() {
        let fake = two_phones().await;
        link(&fake, 1);
        let sender = format!("{PHONE_USER}:1@s.whatsapp.net");
        let to = format!("{SECOND}@s.whatsapp.net");
        let theirs = fake.shared.keys_of(&to).unwrap().1;
        let bundle = actions::tests::published(&*theirs.lock().await, &to);
        let mut own = DeviceKeys::generate().unwrap();
        let padded = whatsapp_rust::wacore::messages::MessageUtils::pad_message_v2(
            whatsapp_rust::buffa::Message::encode_to_vec(&text_message("hi, other me")),
        );
        let (kind, data) = own.encrypt_for(&to, &bundle, &padded).await.unwrap();
        let node = whatsapp_rust::NodeBuilder::new("message")
            .attr("to", to.clone())
            .attr("id", "M1")
            .attr("type", "text")
            .children([whatsapp_rust::NodeBuilder::new("participants")
                .children([whatsapp_rust::NodeBuilder::new("to")
                    .attr("jid", to.clone())
                    .children([whatsapp_rust::NodeBuilder::new("enc")
                        .attr("v", "2")
                        .attr("type", kind)
                        .bytes(data)
                        .build()])
                    .build()])
                .build()])
            .build();
        let received = inbox::receive(&fake.shared, &node, &sender).await.unwrap();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].recipient, SECOND);
        assert_eq!(received[0].sender, sender);
        assert_eq!(received[0].chat, to);
        assert_eq!(
            received[0].message.conversation.as_deref(),
            Some("hi, other me")
        );
        assert_eq!(received[0].summary()["sender"], sender);
    }

    #[tokio::test]
    async fn device_ids_are_per_phone_and_unique_among_its_pairings_under_way() {
        let fake = two_phones().await;
        let mut world = fake.shared.world();
        // Each phone's first companion is its device 1, as WhatsApp numbers them.
        assert_eq!(world.reserve_device_id(PHONE_USER), 1);
        assert_eq!(world.reserve_device_id(SECOND), 1);
        // A second pairing of a phone under way gets the next one.
        assert_eq!(world.reserve_device_id(SECOND), 2);
        // A pairing that failed gives its id back.
        world.reserved_ids.remove(&(SECOND.to_owned(), 1));
        assert_eq!(world.reserve_device_id(SECOND), 1);
        world.reserved_ids.clear();
        drop(world);

        link(&fake, 1);
        link(&fake, 2);
        link_to(&fake, SECOND, 1);
        let mut world = fake.shared.world();
        assert_eq!(world.reserve_device_id(PHONE_USER), 3);
        assert_eq!(world.reserve_device_id(SECOND), 2);
        // Removed devices keep their number: what was kept for them stays theirs.
        world.devices[0].removed = true;
        assert_eq!(world.reserve_device_id(PHONE_USER), 4);
        // The lowest free number is taken, gaps included.
        world
            .devices
            .retain(|d| !(d.phone == PHONE_USER && d.id == 1));
        assert_eq!(world.reserve_device_id(PHONE_USER), 1);
    }

    #[tokio::test]
    async fn more_than_255_companions_in_all_keep_one_byte_device_numbers() {
        let fake = two_phones().await;
        for id in 1..=200 {
            link(&fake, id);
            link_to(&fake, SECOND, id);
        }
        let mut world = fake.shared.world();
        assert_eq!(world.reserve_device_id(PHONE_USER), 201);
        assert_eq!(world.reserve_device_id(SECOND), 201);
        assert!(world.devices.iter().all(|d| u8::try_from(d.id).is_ok()));
    }

    #[tokio::test]
    async fn a_message_for_one_account_goes_to_that_phones_latest_companion_only() {
        let fake = two_phones().await;
        link(&fake, 1);
        link_to(&fake, SECOND, 1);
        link_to(&fake, SECOND, 2);
        let mut first = session(&fake, 1);
        let mut older = session_of(&fake, SECOND, 1);
        let mut latest = session_of(&fake, SECOND, 2);

        let delivering = {
            let fake = fake.clone();
            tokio::spawn(async move { fake.deliver_to(SECOND, FRIEND, "for two").await })
        };
        match latest.recv().await {
            Some(Command::Deliver {
                from,
                message,
                reply,
            }) => {
                assert_eq!(from, FRIEND);
                assert_eq!(message.conversation.as_deref(), Some("for two"));
                let _ = reply.send(Ok("ID2".to_owned()));
            }
            _ => panic!("the second phone's latest companion got no delivery"),
        }
        assert_eq!(delivering.await.unwrap().unwrap(), "ID2");
        assert!(first.try_recv().is_err());
        assert!(older.try_recv().is_err());

        // The default account's messages go to its own companion.
        let delivering = {
            let fake = fake.clone();
            tokio::spawn(async move { fake.deliver(FRIEND, "for one").await })
        };
        match first.recv().await {
            Some(Command::Deliver { reply, .. }) => {
                let _ = reply.send(Ok("ID1".to_owned()));
            }
            _ => panic!("the default phone's companion got no delivery"),
        }
        assert_eq!(delivering.await.unwrap().unwrap(), "ID1");
        assert!(latest.try_recv().is_err());

        let err = fake
            .deliver_to("6289999999999", FRIEND, "x")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not a phone"), "{err:#}");
    }

    #[tokio::test]
    async fn faults_of_one_phone_reach_its_companions_only() {
        let fake = two_phones().await;
        link(&fake, 1);
        link_to(&fake, SECOND, 1);
        let mut first = session(&fake, 1);
        let mut second = session_of(&fake, SECOND, 1);

        assert_eq!(fake.replace_session_of(SECOND), 1);
        assert!(ended_with(&mut second).contains(r#"type="replaced""#));
        assert!(first.try_recv().is_err());

        let (status, body) =
            http(&fake, "POST", &format!("/admin/unlink?phone={SECOND}"), "").await;
        assert_eq!(status, 200);
        assert_eq!(body, r#"{"told":1}"#);
        assert!(ended_with(&mut second).contains("device_removed"));
        assert!(fake.devices_of(SECOND)[0].removed);
        assert!(!fake.devices_of(PHONE_USER)[0].removed);
        assert!(first.try_recv().is_err());

        assert_eq!(fake.drop_connections_of(PHONE_USER), 1);
        assert!(matches!(first.try_recv(), Ok(Command::Drop)));
        assert!(second.try_recv().is_err());
        // The default phone's unlink still reaches every phone's companions.
        assert_eq!(fake.unlink_device(), 1);
        assert!(ended_with(&mut first).contains("device_removed"));
    }

    /// A pairing connection that asked for a pairing code `age` ago.
    fn asking(fake: &FakeWhatsApp, age: std::time::Duration) -> mpsc::UnboundedReceiver<Command> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut world = fake.shared.world();
        world.next_conn += 1;
        let id = world.next_conn;
        world.conns.insert(id, tx);
        let request = LinkRequest {
            pending: PendingCode {
                phone: PHONE_USER.to_owned(),
                platform: "Chrome (Linux)".to_owned(),
                platform_id: "1".to_owned(),
                push_notification: true,
                requested_at: unix_now() - age.as_secs(),
                attempts: 0,
            },
            wrapped: [id as u8; 80],
            reference: format!("2@ref{id}").into_bytes(),
            since: std::time::Instant::now() - age,
        };
        world.link_codes.insert(id, request);
        rx
    }

    fn ended_with(rx: &mut mpsc::UnboundedReceiver<Command>) -> String {
        match rx.try_recv() {
            Ok(Command::End(stanza)) => show(&stanza),
            Ok(_) => panic!("another command than End"),
            Err(e) => panic!("no command: {e}"),
        }
    }

    #[test]
    fn faults_round_trip_through_json_and_default_what_is_missing() {
        let faults = Faults {
            refuse_connections: 1,
            iq_errors: HashMap::from([("usync".to_owned(), 500)]),
            withhold_acks: 2,
            ack_delay_ms: 30,
            flood_per_message: 40,
            qr_refs: 1,
            ack_batch: 8,
            login_delay_ms: 300,
        };
        let json = serde_json::to_value(&faults).unwrap();
        assert_eq!(json["login_delay_ms"], 300);
        assert_eq!(json["flood_per_message"], 40);
        assert_eq!(json["qr_refs"], 1);
        assert_eq!(json["ack_batch"], 8);
        assert_eq!(serde_json::from_value::<Faults>(json).unwrap(), faults);

        let some: Faults = serde_json::from_str(r#"{"qr_refs": 2}"#).unwrap();
        assert_eq!(
            some,
            Faults {
                qr_refs: 2,
                ..Faults::default()
            }
        );
    }

    #[tokio::test]
    async fn unlinking_removes_every_device_and_tells_their_connections() {
        let fake = FakeWhatsApp::start_local().await.unwrap();
        link(&fake, 1);
        link(&fake, 2);
        let mut first = session(&fake, 1);
        let mut second = session(&fake, 2);

        assert_eq!(fake.unlink_device(), 2);
        assert!(fake.devices().iter().all(|d| d.removed));
        for rx in [&mut first, &mut second] {
            let stanza = ended_with(rx);
            assert!(stanza.contains("stream:error"), "{stanza}");
            assert!(stanza.contains(r#"code="401""#), "{stanza}");
            assert!(stanza.contains(r#"type="device_removed""#), "{stanza}");
        }

        // Nothing is linked any longer: nobody to tell.
        assert_eq!(fake.unlink_device(), 0);
        assert!(first.try_recv().is_err());
    }

    #[tokio::test]
    async fn the_admin_api_pushes_a_generated_history_and_lists_its_chunks() {
        let fake = FakeWhatsApp::start_local().await.unwrap();
        let body = r#"{"chats": 3, "messages": 4, "per_chunk": 5}"#;
        let (status, answer) = http(&fake, "POST", "/admin/history", body).await;
        assert_eq!(status, 400);
        assert!(answer.contains("no linked companion"), "{answer}");

        link(&fake, 1);
        link(&fake, 2);
        fake.shared.world().devices[1].removed = true;
        let (status, answer) = http(&fake, "POST", "/admin/history", body).await;
        assert_eq!(status, 200, "{answer}");
        let pushed: serde_json::Value = serde_json::from_str(&answer).unwrap();
        // Device 1 is linked but never logged in; the removed device 2 gets nothing.
        let device = format!("{PHONE_USER}:1@s.whatsapp.net");
        assert_eq!(pushed["queued_for"], serde_json::json!([device]));
        assert_eq!(pushed["delivered_to"], serde_json::json!([]));
        let chunks = pushed["chunks"].as_array().unwrap();
        let sizes: Vec<_> = chunks.iter().map(|c| c["messages"].as_u64()).collect();
        assert_eq!(sizes, [Some(5), Some(5), Some(2)]);
        assert_eq!(fake.history_unacknowledged(), 3);

        let (status, listed) = http(&fake, "GET", "/admin/history", "").await;
        assert_eq!(status, 200);
        let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
        assert_eq!(listed["chunks"][2]["chunk"]["chunk_order"], 3);
        assert_eq!(listed["chunks"][2]["downloads"], 0);
        assert_eq!(listed["receipts"], serde_json::json!([]));
    }

    #[tokio::test]
    async fn unlinking_with_nobody_connected_still_removes_the_device() {
        let fake = FakeWhatsApp::start_local().await.unwrap();
        link(&fake, 1);
        let (status, body) = http(&fake, "POST", "/admin/unlink", "").await;
        assert_eq!(status, 200);
        assert_eq!(body, r#"{"told":0}"#);
        assert!(fake.devices()[0].removed);
    }

    #[tokio::test]
    async fn a_typed_code_goes_to_the_companion_that_asked_last() {
        let fake = FakeWhatsApp::start_local().await.unwrap();
        let err = fake.enter_code("ABCD-1234").await.unwrap_err();
        assert!(err.to_string().contains("no companion asked"), "{err:#}");

        let mut first = asking(&fake, std::time::Duration::from_secs(10));
        let mut last = asking(&fake, std::time::Duration::ZERO);
        let pending = fake.pair_codes();
        assert_eq!(pending.len(), 2);
        assert!(pending[0].requested_at <= pending[1].requested_at);

        let typing = {
            let fake = fake.clone();
            tokio::spawn(async move { fake.enter_code("abcd-1234").await })
        };
        match last.recv().await {
            Some(Command::EnterCode(code, reply)) => {
                assert_eq!(code, "ABCD1234");
                let _ = reply.send(Err(anyhow!("the key bundle does not open")));
            }
            _ => panic!("the last companion was not given the code"),
        }
        let err = typing.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("does not open"), "{err:#}");
        assert!(
            first.try_recv().is_err(),
            "the older request got the code too"
        );

        // What is not a code reaches nobody.
        assert!(fake.enter_code("ABCD-12").await.is_err());
        assert!(last.try_recv().is_err());

        let (status, body) = http(&fake, "GET", "/admin/pair-codes", "").await;
        assert_eq!(status, 200);
        let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(listed[1]["phone"], PHONE_USER);
        assert_eq!(listed[1]["platform"], "Chrome (Linux)");
        let (status, body) = http(&fake, "POST", "/admin/enter-code", r#"{"code": "I0"}"#).await;
        assert_eq!(status, 400);
        assert!(body.contains("is not a pairing code"), "{body}");
    }

    #[tokio::test]
    async fn a_replaced_session_is_told_and_its_device_stays_linked() {
        let fake = FakeWhatsApp::start_local().await.unwrap();
        link(&fake, 1);
        let mut rx = session(&fake, 1);

        let (status, body) = http(&fake, "POST", "/admin/replace", "").await;
        assert_eq!(status, 200);
        assert_eq!(body, r#"{"told":1}"#);
        let stanza = ended_with(&mut rx);
        assert!(stanza.contains("stream:error"), "{stanza}");
        assert!(stanza.contains(r#"type="replaced""#), "{stanza}");
        assert!(!stanza.contains("code"), "{stanza}");
        assert!(!fake.devices()[0].removed);
    }

    #[tokio::test]
    async fn the_admin_api_sets_the_new_faults_and_reports_the_flood() {
        let fake = FakeWhatsApp::start_local().await.unwrap();
        let (status, body) = http(
            &fake,
            "POST",
            "/admin/faults",
            r#"{"flood_per_message": 12, "qr_refs": 1}"#,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let faults = fake.shared.world().faults.clone();
        assert_eq!((faults.flood_per_message, faults.qr_refs), (12, 1));

        fake.shared.world().flood = FloodCount { sent: 5, acked: 4 };
        let (status, body) = http(&fake, "GET", "/admin/flood", "").await;
        assert_eq!(status, 200);
        assert_eq!(body, r#"{"sent":5,"acked":4}"#);
    }
}

#[cfg(test)]
mod iq_tests {
    use super::*;
    use whatsapp_rust::wacore::iq::business::BusinessProfileSpec;
    use whatsapp_rust::wacore::iq::spec::IqSpec;

    /// The client's own request and parser against the fake's answer.
    #[tokio::test]
    async fn a_business_profile_answers_the_clients_request() {
        let fake = FakeWhatsApp::start_local().await.unwrap();
        fake.add_contact(
            "6289685027000",
            ContactInfo {
                business_name: Some("Toko".into()),
                ..ContactInfo::default()
            },
        )
        .unwrap();
        let jid: whatsapp_rust::Jid = "6289685027000@s.whatsapp.net".parse().unwrap();
        let spec = BusinessProfileSpec::new(&jid);
        let query = spec.build_iq();
        let Some(whatsapp_rust::wacore_binary::NodeContent::Nodes(children)) = query.content else {
            panic!("the request has no child nodes");
        };
        let node = whatsapp_rust::NodeBuilder::new("iq")
            .attr("id", "REQ-1")
            .attr("type", "get")
            .attr("xmlns", "w:biz")
            .children(children)
            .build();
        let answer = iq::answer(&fake.shared, &node, "w:biz").expect("answered");
        let profile = spec.parse_response(&answer.as_node_ref()).unwrap().unwrap();
        assert_eq!(profile.description, "Toko: the fake business");
        // What travels must also survive the binary encoding.
        let wire = whatsapp_rust::wacore_binary::marshal::marshal(&answer).unwrap();
        let back = whatsapp_rust::wacore_binary::marshal::unmarshal_ref(&wire[1..]).unwrap();
        let again = spec.parse_response(&back).unwrap().unwrap();
        assert_eq!(again.description, profile.description);
        assert_eq!(again.website, ["https://6289685027000.example"]);
    }
}
