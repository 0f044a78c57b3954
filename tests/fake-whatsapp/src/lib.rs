//! A fake WhatsApp server on loopback, for end-to-end tests of `whatsapp-api` and as
//! a sandbox to try the API without a phone.
//!
//! It speaks enough of the real protocol for the `whatsapp-rust` client: a WebSocket
//! with Noise (XX, IK, XX-fallback), pairing through a simulated phone that scans the QR
//! text, login, and the IQs a session needs. One HTTP port serves everything:
//! `/ws/chat` (the client's socket), `/mms/...` (media uploads) and `/admin/...` (see
//! [`admin`]). Everything it receives is checked, never just acknowledged.
//!
//! Only for tests: the client must be built with `danger-skip-cert-chain-verify`.

pub mod admin;
mod conn;
mod inbox;
mod iq;
mod node;
pub mod noise;
pub mod phone;
mod signal;

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
pub use phone::{Phone, QrCode};

/// The account the simulated phone is logged in as.
pub const PHONE_USER: &str = "15550001234";
pub const PHONE_LID: &str = "205550001234001";
pub const PHONE_NAME: &str = "Fake Phone";

/// A companion device (like our server) that the phone has linked.
#[derive(Debug, Clone, Serialize)]
pub struct Device {
    pub id: u32,
    /// `PHONE:ID@s.whatsapp.net`
    pub jid: String,
    #[serde(skip)]
    pub noise_key: [u8; 32],
    #[serde(skip)]
    pub identity_key: [u8; 32],
    /// Removed by a logout from the companion.
    pub removed: bool,
}

/// One connection the fake accepted.
#[derive(Debug, Clone, Serialize)]
pub struct Login {
    pub pattern: String,
    /// The device that logged in; `None` for a pairing connection.
    pub device: Option<String>,
}

/// Faults the next connections or requests run into.
#[derive(Debug, Default, Clone, Serialize, serde::Deserialize)]
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

/// A group: `admin` created it; `members` are phone numbers (the fake's phone is
/// always a member too).
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
    /// The account whose device decrypted it.
    pub recipient: String,
    pub message: wa::Message,
    /// The decrypted media, checked against the message's hashes.
    pub media: Option<Vec<u8>>,
    /// The server time of the acknowledgement, once sent.
    pub ack_t: Option<u64>,
}

#[derive(Default)]
struct World {
    next_conn: u64,
    conns: HashMap<u64, mpsc::UnboundedSender<Command>>,
    /// QR refs of connections waiting for a scan.
    pairing: HashMap<String, u64>,
    devices: Vec<Device>,
    logins: Vec<Login>,
    faults: Faults,
    contacts: HashMap<String, Contact>,
    groups: HashMap<String, FakeGroup>,
    privacy: Vec<(String, String)>,
    received: Vec<Received>,
    /// Uploaded (encrypted) media by token.
    uploads: HashMap<String, Vec<u8>>,
    /// What the fake refused, and why.
    problems: Vec<String>,
    /// Prekeys each companion device uploaded at login.
    bundles: HashMap<u32, signal::CompanionBundle>,
    /// The connection of the latest logged-in companion.
    session_conn: Option<u64>,
    /// How many times a client asked to resume an upload.
    resume_probes: usize,
}

/// Orders for a connection's task.
enum Command {
    /// The phone scanned one of this connection's QR codes.
    Scan(QrCode, oneshot::Sender<Result<Device>>),
    /// Drop the socket without a goodbye.
    Drop,
    /// A contact sends the companion a text; answers with the message id.
    Deliver {
        from: String,
        text: String,
        reply: oneshot::Sender<Result<String>>,
    },
}

struct Shared {
    server_key: KeyPair,
    phone: Phone,
    phone_keys: Keys,
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

    /// The account `jid` (any device, phone number or the phone's LID) belongs to:
    /// its phone number and keys. `None` for accounts the fake does not know.
    fn keys_of(&self, jid: &str) -> Option<(String, Keys)> {
        let world = self.world();
        let user = iq::account_of(&world, &self.phone.user, &self.phone.lid, jid)?;
        let keys = if user == self.phone.user {
            self.phone_keys.clone()
        } else {
            world.contacts.get(&user)?.keys.clone()
        };
        Some((user, keys))
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
        let shared = Arc::new(Shared {
            server_key: server_key(key_file)?,
            phone: Phone::new(PHONE_USER, PHONE_LID, PHONE_NAME),
            phone_keys: Arc::new(tokio::sync::Mutex::new(DeviceKeys::generate()?)),
            host: addr.to_string(),
            world: Mutex::new(World {
                privacy: default_privacy(),
                ..World::default()
            }),
        });
        let app = Router::new()
            .route("/ws/chat", any(upgrade))
            .route(
                "/mms/{kind}/{token}",
                axum::routing::post(upload)
                    .layer(axum::extract::DefaultBodyLimit::max(256 * 1024 * 1024)),
            )
            .merge(admin::router())
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

    /// The phone scans `qr_text`: pairs the companion that shows it and returns the
    /// new device once the companion has countersigned.
    pub async fn scan(&self, qr_text: &str) -> Result<Device> {
        scan(&self.shared, qr_text).await
    }

    pub fn devices(&self) -> Vec<Device> {
        self.shared.world().devices.clone()
    }

    pub fn logins(&self) -> Vec<Login> {
        self.shared.world().logins.clone()
    }

    /// Drops every open connection, as a network failure would. Returns how many.
    pub fn drop_connections(&self) -> usize {
        drop_connections(&self.shared)
    }

    pub fn set_faults(&self, faults: Faults) {
        self.shared.world().faults = faults;
    }

    pub fn phone_jid(&self) -> String {
        format!("{PHONE_USER}@s.whatsapp.net")
    }

    /// Makes `user` (a phone number) an account on WhatsApp.
    pub fn add_contact(&self, user: &str, info: ContactInfo) -> Result<()> {
        add_contact(&self.shared, user, info)
    }

    /// Adds a group with id `id` (digits, without `@g.us`).
    pub fn add_group(&self, id: &str, group: FakeGroup) {
        self.shared.world().groups.insert(id.to_owned(), group);
    }

    /// Privacy settings as (category, value) pairs, e.g. `("groupadd", "all")`.
    pub fn set_privacy(&self, settings: &[(&str, &str)]) {
        self.shared.world().privacy = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }

    /// The contact `from` (a phone number) sends the logged-in companion `text`.
    /// Returns the message id once it is on the wire.
    pub async fn deliver(&self, from: &str, text: &str) -> Result<String> {
        deliver(&self.shared, from, text).await
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

    /// What the fake refused (undecryptable messages, bad media), with the reason.
    pub fn problems(&self) -> Vec<String> {
        self.shared.world().problems.clone()
    }
}

impl Received {
    /// A JSON summary for the admin API: what kind of message, its text parts, and the
    /// SHA-256 and length of the decrypted media.
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
        serde_json::json!({
            "id": self.id,
            "chat": self.chat,
            "recipient": self.recipient,
            "kind": kind,
            "text": text,
            "media_sha256": self.media.as_ref().map(|b| {
                sha2::Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect::<String>()
            }),
            "media_length": self.media.as_ref().map(Vec::len),
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

fn add_contact(shared: &Shared, user: &str, info: ContactInfo) -> Result<()> {
    anyhow::ensure!(
        !user.is_empty() && user.bytes().all(|b| b.is_ascii_digit()),
        "a contact is a phone number (digits only)"
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

async fn scan(shared: &Shared, qr_text: &str) -> Result<Device> {
    let qr = QrCode::parse(qr_text)?;
    let conn = *shared
        .world()
        .pairing
        .get(&qr.reference)
        .context("no connection is showing this QR code (expired?)")?;
    ask(
        shared,
        conn,
        |reply| Command::Scan(qr, reply),
        "the connection that showed this QR code is gone",
        "the connection closed during pairing",
    )
    .await
}

async fn deliver(shared: &Shared, from: &str, text: &str) -> Result<String> {
    let conn = {
        let world = shared.world();
        anyhow::ensure!(
            world.contacts.contains_key(from),
            "{from} is not a contact of the fake"
        );
        world.session_conn.context("no companion is logged in")?
    };
    let (from, text) = (from.to_owned(), text.to_owned());
    ask(
        shared,
        conn,
        |reply| Command::Deliver { from, text, reply },
        "no companion is connected",
        "the connection closed before delivery",
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

fn drop_connections(shared: &Shared) -> usize {
    let world = shared.world();
    world
        .conns
        .values()
        .filter(|tx| tx.send(Command::Drop).is_ok())
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
