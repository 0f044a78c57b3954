//! `/app/*`: pairing by QR code (PNG files under `statics/images/qrcode/`), logout,
//! reconnect and the session status.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Mutex;
use tracing::{debug, warn};

use super::ServiceError;
use crate::webhook::outbox::Counts;
use crate::webhook::{WebhookStatus, Webhooks};
use crate::whatsapp::{SessionPhase, SessionStatus, WhatsApp, WhatsAppError};

const QR_PREFIX: &str = "scan-qr-";

/// What `/app/login` returns: the QR file to show and how long it stays valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginQr {
    /// Its path under the QR links' folder.
    pub file_name: String,
    pub qr_duration: u64,
}

/// What `/app/status` returns, in its JSON shape.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    pub is_connected: bool,
    /// A device is paired and stored, connected or not.
    pub is_logged_in: bool,
    pub device_id: Option<String>,
    /// The device's JID, as the later versions name it beside `device_id`.
    pub jid: Option<String>,
    /// The lifecycle phase (`connected`, `replaced`, `pairing`, …).
    pub state: SessionPhase,
    /// Webhook deliveries waiting and dead; only when webhooks are configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<Counts>,
}

pub struct AppService {
    wa: Arc<dyn WhatsApp>,
    qr_dir: PathBuf,
    current: Arc<Mutex<Option<QrFile>>>,
    webhooks: Option<Arc<Webhooks>>,
    /// The QR folder's place under the QR links' folder: `""`, or `"<name>/"` for an
    /// account with a folder of its own.
    link_folder: String,
}

#[derive(Debug, Clone)]
struct QrFile {
    code: String,
    file_name: String,
}

impl AppService {
    /// `qr_dir` is created if missing; QR images left by an earlier run are removed.
    pub fn new(wa: Arc<dyn WhatsApp>, qr_dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&qr_dir)?;
        remove_qr_files(&qr_dir);
        Ok(Self {
            wa,
            qr_dir,
            current: Arc::new(Mutex::new(None)),
            webhooks: None,
            link_folder: String::new(),
        })
    }

    /// Reports the webhook outbox in the status.
    /// QR links name the image as `<folder>/<file>` (see `link_folder`).
    pub fn with_link_folder(mut self, folder: String) -> Self {
        self.link_folder = folder;
        self
    }

    pub fn with_webhooks(mut self, webhooks: Option<Arc<Webhooks>>) -> Self {
        self.webhooks = webhooks;
        self
    }

    pub async fn login(&self) -> Result<LoginQr, ServiceError> {
        if self.wa.status() != SessionStatus::LoggedOut {
            return Err(WhatsAppError::AlreadyLoggedIn.into());
        }
        let pairing = self.wa.pairing_code().await?;
        let mut current = self.current.lock().await;
        if let Some(file) = current.as_ref().filter(|f| f.code == pairing.code) {
            return Ok(LoginQr {
                file_name: format!("{}{}", self.link_folder, file.file_name),
                qr_duration: pairing.remaining_secs(),
            });
        }

        // Go's shape with a UUID of this server's: at startup only its own QR images
        // are removed.
        let file_name = format!("{QR_PREFIX}{}.png", crate::storage::own_uuid());
        let path = self.qr_dir.join(&file_name);
        let code = pairing.code.clone();
        let written = tokio::task::spawn_blocking(move || write_qr_png(&code, &path))
            .await
            .map_err(|e| ServiceError::Internal(format!("QR rendering stopped: {e}")))?;
        if let Err(e) = written {
            warn!(error = %e, "cannot write the QR image");
            return Err(ServiceError::Internal(format!(
                "cannot write the QR image: {e}"
            )));
        }

        if let Some(old) = current.take() {
            remove_file(&self.qr_dir.join(old.file_name));
        }
        *current = Some(QrFile {
            code: pairing.code.clone(),
            file_name: file_name.clone(),
        });
        self.schedule_removal(file_name.clone(), pairing.expires_at);
        Ok(LoginQr {
            file_name: format!("{}{file_name}", self.link_folder),
            qr_duration: pairing.remaining_secs(),
        })
    }

    /// Pairing by code (`/app/login-with-code`): the code to type on the phone of
    /// `phone`, written as WhatsApp shows it (`ABCD-1234`).
    pub async fn login_with_code(&self, phone: &str) -> Result<String, ServiceError> {
        if self.wa.status() != SessionStatus::LoggedOut {
            return Err(WhatsAppError::AlreadyLoggedIn.into());
        }
        let code = self.wa.link_code(phone).await?;
        Ok(match (code.get(..4), code.get(4..)) {
            (Some(head), Some(tail)) if code.len() == 8 => format!("{head}-{tail}"),
            _ => code,
        })
    }

    /// Deletes the QR image once its code has expired, unless a newer one replaced it.
    fn schedule_removal(&self, file_name: String, expires_at: Instant) {
        let current = Arc::clone(&self.current);
        let path = self.qr_dir.join(&file_name);
        tokio::spawn(async move {
            tokio::time::sleep_until(expires_at.into()).await;
            let mut current = current.lock().await;
            if current.as_ref().is_some_and(|f| f.file_name == file_name) {
                *current = None;
            }
            remove_file(&path);
        });
    }

    pub async fn logout(&self) -> Result<(), ServiceError> {
        self.wa.logout().await?;
        self.current.lock().await.take();
        remove_qr_files(&self.qr_dir);
        Ok(())
    }

    /// This account's JIDs as the store writes its own messages' sender.
    pub async fn own_jids(&self) -> Vec<String> {
        self.wa
            .device_id()
            .map(|j| j.to_non_ad_string())
            .into_iter()
            .collect()
    }

    pub fn phase(&self) -> SessionPhase {
        self.wa.phase()
    }

    /// Where the session stands, for `/app/status`.
    pub async fn status(&self) -> Status {
        // One look at the session for the phase and one for the id.
        let phase = self.wa.phase();
        let status = phase.status();
        let device_id = self.wa.device_id().map(|jid| jid.to_string());
        let webhooks = match &self.webhooks {
            Some(w) => Some(match w.counts().await {
                Ok(counts) => counts,
                Err(e) => {
                    warn!(error = %e, "cannot count the webhook outbox");
                    Counts::default()
                }
            }),
            None => None,
        };
        Status {
            is_connected: status == SessionStatus::Connected,
            is_logged_in: status != SessionStatus::LoggedOut,
            jid: device_id.clone(),
            device_id,
            state: phase,
            webhooks,
        }
    }

    /// The webhook outbox per URL with each one's latest error; `None` without
    /// webhooks.
    pub async fn webhook_status(&self) -> Result<Option<WebhookStatus>, ServiceError> {
        let Some(webhooks) = self.webhooks.clone() else {
            return Ok(None);
        };
        webhooks.status().await.map(Some).map_err(|e| {
            warn!(error = %e, "cannot read the webhook outbox");
            ServiceError::Internal(format!("cannot read the webhook outbox: {e}"))
        })
    }

    /// Whether `id` (the later versions' `X-Device-Id`) names this account: its
    /// phone number or JID. `None` when no device is paired to compare with.
    pub fn is_this_device(&self, id: &str) -> Option<bool> {
        let jid = self.wa.device_id()?;
        let id = id.trim();
        Some(
            id == jid.user.as_str()
                || id == jid.to_string()
                || id == jid.to_non_ad_string()
                || id == format!("{}@s.whatsapp.net", jid.user),
        )
    }

    pub async fn reconnect(&self) -> Result<(), ServiceError> {
        self.wa.reconnect().await?;
        Ok(())
    }
}

fn write_qr_png(code: &str, path: &Path) -> Result<(), String> {
    let png = crate::qr::render_png(code).map_err(|e| e.to_string())?;
    // Written beside and renamed, so the link never serves a half-written file.
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".qr-")
        .tempfile_in(dir)
        .map_err(|e| e.to_string())?;
    std::io::Write::write_all(&mut tmp, &png).map_err(|e| e.to_string())?;
    tmp.persist(path).map_err(|e| e.to_string())?;
    Ok(())
}

fn remove_file(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => debug!(path = %path.display(), "removed QR image"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warn!(path = %path.display(), error = %e, "cannot remove QR image"),
    }
}

/// Removes every QR image this server wrote into `dir`.
fn remove_qr_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ours = name
            .strip_prefix(QR_PREFIX)
            .and_then(|rest| rest.strip_suffix(".png"))
            .is_some_and(crate::storage::is_own_uuid);
        if ours {
            remove_file(&entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_servers_qr_images_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let ours = dir
            .path()
            .join(format!("{QR_PREFIX}{}.png", crate::storage::own_uuid()));
        // The Go server's, in the same folder (v9 shares `statics/qrcode`).
        let go = dir
            .path()
            .join(format!("{QR_PREFIX}{}.png", uuid::Uuid::new_v4()));
        let other = dir.path().join("logo.png");
        for path in [&ours, &go, &other] {
            std::fs::write(path, b"png").unwrap();
        }
        remove_qr_files(dir.path());
        assert!(!ours.exists());
        assert!(go.exists() && other.exists());
    }
}
