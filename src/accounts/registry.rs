//! The account registry: `accounts.db` in the storage folder, one row per slot
//! (`migrations/accounts/`), or with a PostgreSQL `--db-uri` the database's
//! `wa_accounts`, which every server using it shares
//! ([`PgRegistry`](crate::postgres::registry::PgRegistry)).

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};

use crate::postgres::registry::PgRegistry;

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../../migrations/accounts/0001_accounts.sql")),
        M::up(include_str!("../../migrations/accounts/0002_api_keys.sql")),
    ])
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("account registry: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("account registry: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    /// A failed statement or connection; the text never holds the connection URI.
    #[error("account registry (PostgreSQL): {0}")]
    Postgres(String),
}

/// One slot as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub id: String,
    /// Relative to the storage folder; `""` is the storage folder itself.
    pub folder: String,
    /// Unix seconds.
    pub created_at: i64,
    /// SHA-256 (hex) of the account's own API key, if it has one.
    pub api_key_sha256: Option<String>,
}

/// An account's own webhook settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct AccountWebhook {
    /// Comma-separated URLs; empty: the account uses the global ones.
    pub url: String,
    pub secret: String,
    /// Comma-separated event names; empty: all.
    pub events: String,
    pub insecure_skip_verify: bool,
}

/// The account registry, in SQLite or in PostgreSQL (`--db-uri`): the same
/// operations with the same rules. SQLite's blocking calls run on the blocking pool.
pub enum Registry {
    Sqlite(Arc<SqliteRegistry>),
    Postgres(PgRegistry),
}

/// Runs `work` on the SQLite registry on the blocking pool.
async fn blocking<T: Send + 'static>(
    registry: &Arc<SqliteRegistry>,
    work: impl FnOnce(&SqliteRegistry) -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, RegistryError> {
    let registry = registry.clone();
    tokio::task::spawn_blocking(move || work(&registry))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

impl Registry {
    /// The SQLite registry at `path` (`accounts.db`), made if missing.
    pub fn open(path: &Path) -> Result<Self, RegistryError> {
        Ok(Registry::Sqlite(Arc::new(SqliteRegistry::open(path)?)))
    }

    /// The registry of the PostgreSQL database of `pool` (migrated by
    /// `postgres::connect`).
    pub fn postgres(pool: deadpool_postgres::Pool) -> Self {
        Registry::Postgres(PgRegistry::new(pool))
    }

    /// See [`SqliteRegistry::slots`].
    pub async fn slots(&self) -> Result<Vec<Slot>, RegistryError> {
        match self {
            Registry::Sqlite(r) => blocking(r, |r| r.slots()).await,
            Registry::Postgres(r) => r.slots().await,
        }
    }

    /// See [`SqliteRegistry::insert`].
    pub async fn insert(&self, slot: &Slot) -> Result<bool, RegistryError> {
        match self {
            Registry::Sqlite(r) => {
                let slot = slot.clone();
                blocking(r, move |r| r.insert(&slot)).await
            }
            Registry::Postgres(r) => r.insert(slot).await,
        }
    }

    /// See [`SqliteRegistry::set_api_key`].
    pub async fn set_api_key(&self, id: &str, sha256: &str) -> Result<bool, RegistryError> {
        match self {
            Registry::Sqlite(r) => {
                let (id, sha256) = (id.to_owned(), sha256.to_owned());
                blocking(r, move |r| r.set_api_key(&id, &sha256)).await
            }
            Registry::Postgres(r) => r.set_api_key(id, sha256).await,
        }
    }

    /// See [`SqliteRegistry::remove`].
    pub async fn remove(&self, id: &str) -> Result<bool, RegistryError> {
        match self {
            Registry::Sqlite(r) => {
                let id = id.to_owned();
                blocking(r, move |r| r.remove(&id)).await
            }
            Registry::Postgres(r) => r.remove(id).await,
        }
    }

    /// See [`SqliteRegistry::webhook`].
    pub async fn webhook(&self, id: &str) -> Result<Option<AccountWebhook>, RegistryError> {
        match self {
            Registry::Sqlite(r) => {
                let id = id.to_owned();
                blocking(r, move |r| r.webhook(&id)).await
            }
            Registry::Postgres(r) => r.webhook(id).await,
        }
    }

    /// See [`SqliteRegistry::set_webhook`].
    pub async fn set_webhook(&self, id: &str, hook: &AccountWebhook) -> Result<(), RegistryError> {
        match self {
            Registry::Sqlite(r) => {
                let (id, hook) = (id.to_owned(), hook.clone());
                blocking(r, move |r| r.set_webhook(&id, &hook)).await
            }
            Registry::Postgres(r) => r.set_webhook(id, hook).await,
        }
    }
}

/// The registry in SQLite: `accounts.db`, behind one connection.
pub struct SqliteRegistry {
    conn: Mutex<Connection>,
}

impl SqliteRegistry {
    pub fn open(path: &Path) -> Result<Self, RegistryError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrations().to_latest(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every slot, oldest first (then by id), as Go lists them.
    pub fn slots(&self) -> Result<Vec<Slot>, RegistryError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, folder, created_at, api_key_sha256 FROM accounts ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok(Slot {
                id: row.get(0)?,
                folder: row.get(1)?,
                created_at: row.get(2)?,
                api_key_sha256: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Adds `slot`; `false` when its id is taken.
    pub fn insert(&self, slot: &Slot) -> Result<bool, RegistryError> {
        let added = self.conn().execute(
            "INSERT INTO accounts (id, folder, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO NOTHING",
            params![slot.id, slot.folder, slot.created_at],
        )?;
        Ok(added == 1)
    }

    /// Sets the SHA-256 (hex) of the account's API key; `false` when there is no
    /// such account.
    pub fn set_api_key(&self, id: &str, sha256: &str) -> Result<bool, RegistryError> {
        Ok(self.conn().execute(
            "UPDATE accounts SET api_key_sha256 = ?2 WHERE id = ?1",
            params![id, sha256],
        )? == 1)
    }

    pub fn remove(&self, id: &str) -> Result<bool, RegistryError> {
        Ok(self
            .conn()
            .execute("DELETE FROM accounts WHERE id = ?1", [id])?
            == 1)
    }

    pub fn webhook(&self, id: &str) -> Result<Option<AccountWebhook>, RegistryError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT url, secret, events, insecure_skip_verify FROM account_webhooks
                 WHERE account_id = ?1",
                [id],
                |row| {
                    Ok(AccountWebhook {
                        url: row.get(0)?,
                        secret: row.get(1)?,
                        events: row.get(2)?,
                        insecure_skip_verify: row.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// Sets (or, with an empty URL, clears) the account's webhook.
    pub fn set_webhook(&self, id: &str, hook: &AccountWebhook) -> Result<(), RegistryError> {
        let conn = self.conn();
        if hook.url.trim().is_empty() {
            conn.execute("DELETE FROM account_webhooks WHERE account_id = ?1", [id])?;
        } else {
            conn.execute(
                "INSERT INTO account_webhooks (account_id, url, secret, events, insecure_skip_verify)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (account_id) DO UPDATE SET url = excluded.url,
                   secret = excluded.secret, events = excluded.events,
                   insecure_skip_verify = excluded.insecure_skip_verify",
                params![
                    id,
                    hook.url,
                    hook.secret,
                    hook.events,
                    hook.insecure_skip_verify
                ],
            )?;
        }
        Ok(())
    }
}

/// Copies every slot of the registry file at `path` (its webhook and API key
/// too) into `to`; how many slots were copied. Into PostgreSQL, all at once and
/// only into an empty list. The file is only read.
pub async fn copy_file_to(path: &Path, to: &Registry) -> Result<usize, RegistryError> {
    let file = Registry::open(path)?;
    let mut entries = Vec::new();
    for slot in file.slots().await? {
        let hook = file.webhook(&slot.id).await?;
        entries.push((slot, hook));
    }
    match to {
        Registry::Postgres(pg) => pg.copy_in(&entries).await,
        Registry::Sqlite(_) => {
            let mut copied = 0;
            for (slot, hook) in &entries {
                if !to.insert(slot).await? {
                    continue;
                }
                copied += 1;
                if let Some(key) = &slot.api_key_sha256 {
                    to.set_api_key(&slot.id, key).await?;
                }
                if let Some(hook) = hook {
                    to.set_webhook(&slot.id, hook).await?;
                }
            }
            Ok(copied)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn slots_are_listed_oldest_first_and_ids_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let registry = SqliteRegistry::open(&dir.path().join("accounts.db")).unwrap();
        let slot = |id: &str, folder: &str, at| Slot {
            id: id.into(),
            folder: folder.into(),
            created_at: at,
            api_key_sha256: None,
        };
        assert!(registry.insert(&slot("b", "accounts/1", 20)).unwrap());
        assert!(registry.insert(&slot("a", "", 30)).unwrap());
        assert!(registry.insert(&slot("c", "accounts/2", 20)).unwrap());
        assert!(!registry.insert(&slot("a", "accounts/3", 40)).unwrap());
        let ids: Vec<_> = registry
            .slots()
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(ids, ["b", "c", "a"]);
        assert!(
            crate::storage::identify(&dir.path().join("accounts.db"))
                == crate::storage::Kind::OurAccounts
        );
    }

    #[test]
    fn a_webhook_is_set_replaced_cleared_and_goes_with_its_account() {
        let dir = tempfile::tempdir().unwrap();
        let registry = SqliteRegistry::open(&dir.path().join("accounts.db")).unwrap();
        registry
            .insert(&Slot {
                id: "x".into(),
                folder: "accounts/1".into(),
                created_at: 1,
                api_key_sha256: None,
            })
            .unwrap();
        assert!(registry.set_api_key("x", "ab12").unwrap());
        assert_eq!(
            registry.slots().unwrap()[0].api_key_sha256.as_deref(),
            Some("ab12")
        );
        assert!(!registry.set_api_key("y", "cd34").unwrap());
        let hook = AccountWebhook {
            url: "https://a.example/h".into(),
            secret: "s".into(),
            events: "message".into(),
            insecure_skip_verify: true,
        };
        registry.set_webhook("x", &hook).unwrap();
        assert_eq!(registry.webhook("x").unwrap(), Some(hook.clone()));
        let other = AccountWebhook {
            url: "https://b.example/h".into(),
            ..Default::default()
        };
        registry.set_webhook("x", &other).unwrap();
        assert_eq!(registry.webhook("x").unwrap(), Some(other.clone()));
        registry
            .set_webhook("x", &AccountWebhook::default())
            .unwrap();
        assert_eq!(registry.webhook("x").unwrap(), None);
        registry.set_webhook("x", &other).unwrap();
        assert!(registry.remove("x").unwrap());
        assert_eq!(registry.webhook("x").unwrap(), None);
        assert!(!registry.remove("x").unwrap());
    }

    /// Through `registry`: the account `x` is added (once), given a key and a
    /// webhook, and listed with its key.
    pub(crate) async fn fill(registry: &Registry) {
        let slot = Slot {
            id: "x".into(),
            folder: String::new(),
            created_at: 1,
            api_key_sha256: None,
        };
        assert!(registry.insert(&slot).await.unwrap());
        assert!(!registry.insert(&slot).await.unwrap());
        assert!(registry.set_api_key("x", "ab12").await.unwrap());
        let hook = AccountWebhook {
            url: "https://a.example/h".into(),
            ..Default::default()
        };
        registry.set_webhook("x", &hook).await.unwrap();
        assert_eq!(registry.webhook("x").await.unwrap(), Some(hook));
        let slots = registry.slots().await.unwrap();
        assert_eq!(slots.len(), 1);
        assert_eq!(slots[0].api_key_sha256.as_deref(), Some("ab12"));
    }

    /// Through `registry`: the account `x` goes, its webhook with it.
    pub(crate) async fn empty(registry: &Registry) {
        assert!(registry.remove("x").await.unwrap());
        assert!(registry.slots().await.unwrap().is_empty());
        assert_eq!(registry.webhook("x").await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_registry_reaches_sqlite_through_its_enum() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(&dir.path().join("accounts.db")).unwrap();
        fill(&registry).await;
        empty(&registry).await;
    }
}
