//! The service layer: what each route does, on top of the WhatsApp session. Handlers
//! call these after parsing their input; nothing here knows about HTTP.

pub mod app;
pub mod chat;
pub mod group;
pub mod message;
pub mod send;
pub mod user;

use crate::domain::validation::ValidationErrors;
use crate::whatsapp::{SessionStatus, WhatsApp, WhatsAppError};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Bad input, reported per field.
    #[error("{0}")]
    Validation(#[from] ValidationErrors),
    /// Bad input that is not about one field (file type, size, unknown number…).
    #[error("{0}")]
    BadRequest(String),
    /// The number has no WhatsApp account.
    #[error("{0} is not registered on WhatsApp")]
    NotOnWhatsApp(String),
    #[error(transparent)]
    WhatsApp(#[from] WhatsAppError),
    #[error("no avatar found")]
    NoAvatar,
    /// What the request names does not exist (a message id, a chat…).
    #[error("{0}")]
    NotFound(String),
    /// Temporarily overloaded (media work waited too long for a slot): retry later.
    #[error("{0}")]
    Busy(String),
    /// Anything else: a short cause for the client; details went to the log.
    #[error("{0}")]
    Internal(String),
}

impl From<crate::messages::StoreError> for ServiceError {
    /// The store failing is the server's fault; the detail is in the message.
    fn from(e: crate::messages::StoreError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

impl From<crate::media::MediaError> for ServiceError {
    fn from(e: crate::media::MediaError) -> Self {
        use crate::media::MediaError;
        match e {
            MediaError::Rejected(m) => ServiceError::BadRequest(m),
            MediaError::Busy(m) => ServiceError::Busy(m),
            MediaError::Failed(m) => ServiceError::Internal(m),
        }
    }
}

/// The v2.3.0 errors for a session that cannot serve a request right now.
pub fn ensure_connected(wa: &dyn WhatsApp) -> Result<(), ServiceError> {
    match wa.status() {
        SessionStatus::Connected => Ok(()),
        SessionStatus::Disconnected => Err(WhatsAppError::NotConnected.into()),
        SessionStatus::LoggedOut => Err(WhatsAppError::NotLoggedIn.into()),
    }
}
