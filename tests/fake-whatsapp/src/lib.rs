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
mod node;
pub mod noise;
pub mod phone;

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
}

/// Orders for a connection's task.
enum Command {
    /// The phone scanned one of this connection's QR codes.
    Scan(QrCode, oneshot::Sender<Result<Device>>),
    /// Drop the socket without a goodbye.
    Drop,
}

struct Shared {
    server_key: KeyPair,
    phone: Phone,
    world: Mutex<World>,
}

impl Shared {
    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().expect("world lock")
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
            world: Mutex::new(World::default()),
        });
        let app = Router::new()
            .route("/ws/chat", any(upgrade))
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
}

async fn scan(shared: &Shared, qr_text: &str) -> Result<Device> {
    let qr = QrCode::parse(qr_text)?;
    let tx = {
        let world = shared.world();
        let conn = world
            .pairing
            .get(&qr.reference)
            .context("no connection is showing this QR code (expired?)")?;
        world
            .conns
            .get(conn)
            .cloned()
            .context("the connection that showed this QR code is gone")?
    };
    let (reply, answer) = oneshot::channel();
    tx.send(Command::Scan(qr, reply))
        .map_err(|_| anyhow!("the connection that showed this QR code is gone"))?;
    answer
        .await
        .map_err(|_| anyhow!("the connection closed during pairing"))?
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
