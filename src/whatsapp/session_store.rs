//! Where an account's WhatsApp session (whatsapp-rust's store: keys, Signal
//! sessions, app state) is kept: a SQLite file of its own, or its rows in a
//! PostgreSQL database several accounts share (`--db-uri postgres://…`).

use std::path::PathBuf;
use std::sync::Arc;

use tracing::warn;
use whatsapp_rust::prelude::SqliteStore;
use whatsapp_rust::wacore::store::traits::{Backend, DeviceStore};

use super::WhatsAppError;
use crate::postgres::whatsapp_store::WhatsAppStore;

#[derive(Clone)]
pub enum SessionStore {
    /// The account's own SQLite file.
    File(PathBuf),
    /// The account's rows in a shared database.
    Postgres(WhatsAppStore),
}

impl std::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionStore::File(path) => write!(f, "File({})", path.display()),
            SessionStore::Postgres(store) => write!(f, "Postgres({})", store.account()),
        }
    }
}

impl SessionStore {
    /// Whether a session is stored (paired or not). An error when the database
    /// cannot say: the account then does not open (it is never taken for one
    /// without a session, whose next pairing would delete what is stored).
    pub async fn exists(&self) -> Result<bool, WhatsAppError> {
        match self {
            SessionStore::File(path) => Ok(path.exists()),
            SessionStore::Postgres(store) => store
                .exists()
                .await
                .map_err(|e| WhatsAppError::failed("cannot read the session from PostgreSQL", e)),
        }
    }

    /// Deletes the stored session (only this server's own file, or the account's
    /// rows); an error (logged) when the rows could not be deleted.
    pub async fn remove(&self) -> Result<(), WhatsAppError> {
        match self {
            SessionStore::File(path) => {
                crate::storage::remove_session_store(path);
                Ok(())
            }
            SessionStore::Postgres(store) => store.forget().await.map_err(|e| {
                warn!(error = %e, "cannot delete the session from PostgreSQL");
                WhatsAppError::failed("cannot delete the session from PostgreSQL", e)
            }),
        }
    }

    /// The store for a client to run on.
    pub async fn open(&self) -> Result<Arc<dyn Backend>, WhatsAppError> {
        match self {
            SessionStore::File(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        WhatsAppError::failed("cannot create the session folder", e)
                    })?;
                }
                let url = path.to_str().ok_or_else(|| {
                    WhatsAppError::Failed("the session path is not UTF-8".to_owned())
                })?;
                let store = SqliteStore::new(url)
                    .await
                    .map_err(|e| WhatsAppError::failed("cannot open the session store", e))?;
                Ok(Arc::new(store))
            }
            SessionStore::Postgres(store) => Ok(Arc::new(store.clone())),
        }
    }
}
