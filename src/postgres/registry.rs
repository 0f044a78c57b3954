//! The account registry in PostgreSQL (`migrations/postgres/V3__accounts.sql`), for
//! `--db-uri postgres://…`: the same slots and webhooks as the SQLite
//! [`SqliteRegistry`](crate::accounts::registry::SqliteRegistry), with the same
//! rules, in tables that every server using the database shares, so that each one
//! sees the accounts the others add and remove.
//!
//! A slot's folder is relative to each server's own storage folder, so unlike in
//! SQLite two slots may name the same one.

use deadpool_postgres::{Object, Pool};

use crate::accounts::registry::{AccountWebhook, RegistryError, Slot};

/// Every table of the registry, in an order they can be emptied in (webhooks
/// before their accounts).
pub const REGISTRY_TABLES: &[&str] = &["wa_account_webhooks", "wa_accounts", "wa_imports"];

impl From<tokio_postgres::Error> for RegistryError {
    fn from(e: tokio_postgres::Error) -> Self {
        RegistryError::Postgres(super::described(&e))
    }
}

impl From<deadpool_postgres::PoolError> for RegistryError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        RegistryError::Postgres(super::described(&e))
    }
}

/// The account registry in the database of `pool`.
#[derive(Clone)]
pub struct PgRegistry {
    pool: Pool,
}

impl std::fmt::Debug for PgRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgRegistry")
    }
}

/// Held while an account list is copied in ("wa_copy").
const COPY_LOCK: i64 = 0x7761_5f63_6f70_7900;

impl PgRegistry {
    /// The registry of the pool's database (`postgres::connect` migrated it).
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    async fn client(&self) -> Result<Object, RegistryError> {
        Ok(self.pool.get().await?)
    }

    /// Every slot, oldest first (then by id, byte-wise as SQLite compares text).
    pub async fn slots(&self) -> Result<Vec<Slot>, RegistryError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT id, folder, created_at, api_key_sha256 FROM wa_accounts \
                 ORDER BY created_at, id COLLATE \"C\"",
            )
            .await?;
        let rows = client.query(&statement, &[]).await?;
        rows.iter()
            .map(|row| -> Result<Slot, RegistryError> {
                Ok(Slot {
                    id: row.try_get(0)?,
                    folder: row.try_get(1)?,
                    created_at: row.try_get(2)?,
                    api_key_sha256: row.try_get(3)?,
                })
            })
            .collect()
    }

    /// Adds `slot` (without its API key, as SQLite's); `false` when its id is
    /// taken, by this server or another.
    pub async fn insert(&self, slot: &Slot) -> Result<bool, RegistryError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO wa_accounts (id, folder, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .await?;
        let added = client
            .execute(&statement, &[&slot.id, &slot.folder, &slot.created_at])
            .await?;
        Ok(added == 1)
    }

    /// Sets the SHA-256 (hex) of the account's API key; `false` when there is no
    /// such account.
    pub async fn set_api_key(&self, id: &str, sha256: &str) -> Result<bool, RegistryError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("UPDATE wa_accounts SET api_key_sha256 = $2 WHERE id = $1")
            .await?;
        Ok(client.execute(&statement, &[&id, &sha256]).await? == 1)
    }

    /// Removes the account, and its webhook with it; `false` when there is no such
    /// account.
    pub async fn remove(&self, id: &str) -> Result<bool, RegistryError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("DELETE FROM wa_accounts WHERE id = $1")
            .await?;
        Ok(client.execute(&statement, &[&id]).await? == 1)
    }

    pub async fn webhook(&self, id: &str) -> Result<Option<AccountWebhook>, RegistryError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT url, secret, events, insecure_skip_verify FROM wa_account_webhooks \
                 WHERE account_id = $1",
            )
            .await?;
        let Some(row) = client.query_opt(&statement, &[&id]).await? else {
            return Ok(None);
        };
        Ok(Some(AccountWebhook {
            url: row.try_get(0)?,
            secret: row.try_get(1)?,
            events: row.try_get(2)?,
            insecure_skip_verify: row.try_get(3)?,
        }))
    }

    /// Sets (or, with an empty URL, clears) the account's webhook.
    /// Copies `entries` (slots with their API key and webhook) in one
    /// transaction, and only into an empty list: servers starting together take
    /// turns, and a copy cut short leaves nothing. How many were copied.
    pub async fn copy_in(
        &self,
        entries: &[(Slot, Option<AccountWebhook>)],
    ) -> Result<usize, RegistryError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&COPY_LOCK])
            .await?;
        let listed: i64 = tx
            .query_one("SELECT count(*) FROM wa_accounts", &[])
            .await?
            .get(0);
        if listed > 0 {
            return Ok(0);
        }
        for (slot, hook) in entries {
            tx.execute(
                "INSERT INTO wa_accounts (id, folder, created_at, api_key_sha256) \
                 VALUES ($1, $2, $3, $4)",
                &[
                    &slot.id,
                    &slot.folder,
                    &slot.created_at,
                    &slot.api_key_sha256,
                ],
            )
            .await?;
            if let Some(hook) = hook.as_ref().filter(|h| !h.url.trim().is_empty()) {
                tx.execute(
                    "INSERT INTO wa_account_webhooks \
                     (account_id, url, secret, events, insecure_skip_verify) \
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &slot.id,
                        &hook.url,
                        &hook.secret,
                        &hook.events,
                        &hook.insecure_skip_verify,
                    ],
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(entries.len())
    }

    pub async fn set_webhook(&self, id: &str, hook: &AccountWebhook) -> Result<(), RegistryError> {
        let client = self.client().await?;
        if hook.url.trim().is_empty() {
            let statement = client
                .prepare_cached("DELETE FROM wa_account_webhooks WHERE account_id = $1")
                .await?;
            client.execute(&statement, &[&id]).await?;
        } else {
            let statement = client
                .prepare_cached(
                    "INSERT INTO wa_account_webhooks \
                     (account_id, url, secret, events, insecure_skip_verify) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (account_id) DO UPDATE SET url = excluded.url, \
                     secret = excluded.secret, events = excluded.events, \
                     insecure_skip_verify = excluded.insecure_skip_verify",
                )
                .await?;
            client
                .execute(
                    &statement,
                    &[
                        &id,
                        &hook.url,
                        &hook.secret,
                        &hook.events,
                        &hook.insecure_skip_verify,
                    ],
                )
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::registry::Registry;
    use crate::postgres::testing::database;

    fn slot(id: &str, folder: &str, at: i64) -> Slot {
        Slot {
            id: id.into(),
            folder: folder.into(),
            created_at: at,
            api_key_sha256: None,
        }
    }

    /// Inserts a slot; whether it was added.
    async fn add(registry: &PgRegistry, id: &str, folder: &str, at: i64) -> bool {
        registry.insert(&slot(id, folder, at)).await.unwrap()
    }

    async fn ids(registry: &PgRegistry) -> Vec<String> {
        registry
            .slots()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect()
    }

    #[tokio::test]
    async fn slots_are_listed_oldest_first_and_ids_are_unique() {
        let (_server, pool) = database().await;
        let registry = PgRegistry::new(pool);
        assert!(add(&registry, "b", "accounts/1", 20).await);
        assert!(add(&registry, "a", "", 30).await);
        assert!(add(&registry, "c", "accounts/2", 20).await);
        assert!(!add(&registry, "a", "accounts/3", 40).await);
        assert_eq!(ids(&registry).await, ["b", "c", "a"]);
        let taken = registry.slots().await.unwrap();
        assert_eq!(taken[2], slot("a", "", 30), "the first insert stands");
    }

    #[tokio::test]
    async fn ids_of_one_time_sort_byte_wise_as_in_sqlite() {
        let (_server, pool) = database().await;
        let registry = PgRegistry::new(pool);
        for id in ["a", "_x", "B", "a-1", "A"] {
            assert!(add(&registry, id, id, 5).await);
        }
        assert_eq!(ids(&registry).await, ["A", "B", "_x", "a", "a-1"]);
    }

    #[tokio::test]
    async fn two_slots_may_name_the_same_folder() {
        let (_server, pool) = database().await;
        let registry = PgRegistry::new(pool);
        // Each server's first account is in its own storage folder.
        assert!(add(&registry, "x", "", 1).await);
        assert!(add(&registry, "y", "", 2).await);
        assert_eq!(ids(&registry).await, ["x", "y"]);
    }

    #[tokio::test]
    async fn a_webhook_is_set_replaced_cleared_and_goes_with_its_account() {
        let (_server, pool) = database().await;
        let registry = PgRegistry::new(pool);
        assert!(add(&registry, "x", "accounts/1", 1).await);
        assert!(registry.set_api_key("x", "ab12").await.unwrap());
        assert_eq!(
            registry.slots().await.unwrap()[0].api_key_sha256.as_deref(),
            Some("ab12")
        );
        assert!(!registry.set_api_key("y", "cd34").await.unwrap());
        let hook = AccountWebhook {
            url: "https://a.example/h".into(),
            secret: "s".into(),
            events: "message".into(),
            insecure_skip_verify: true,
        };
        registry.set_webhook("x", &hook).await.unwrap();
        assert_eq!(registry.webhook("x").await.unwrap(), Some(hook.clone()));
        let other = AccountWebhook {
            url: "https://b.example/h".into(),
            ..Default::default()
        };
        registry.set_webhook("x", &other).await.unwrap();
        assert_eq!(registry.webhook("x").await.unwrap(), Some(other.clone()));
        registry
            .set_webhook("x", &AccountWebhook::default())
            .await
            .unwrap();
        assert_eq!(registry.webhook("x").await.unwrap(), None);
        // A blank URL clears it too.
        registry.set_webhook("x", &other).await.unwrap();
        let blank = AccountWebhook {
            url: "  ".into(),
            ..other.clone()
        };
        registry.set_webhook("x", &blank).await.unwrap();
        assert_eq!(registry.webhook("x").await.unwrap(), None);
        registry.set_webhook("x", &other).await.unwrap();
        assert!(registry.remove("x").await.unwrap());
        assert_eq!(registry.webhook("x").await.unwrap(), None);
        assert!(!registry.remove("x").await.unwrap());
    }

    #[tokio::test]
    async fn an_api_key_names_one_account_only() {
        let (_server, pool) = database().await;
        let registry = PgRegistry::new(pool);
        assert!(add(&registry, "x", "accounts/1", 1).await);
        assert!(add(&registry, "y", "accounts/2", 2).await);
        assert!(registry.set_api_key("x", "ab12").await.unwrap());
        let taken = registry.set_api_key("y", "ab12").await;
        assert!(
            matches!(taken, Err(RegistryError::Postgres(_))),
            "{taken:?}"
        );
        // A removed account's key is free again.
        assert!(registry.remove("x").await.unwrap());
        assert!(registry.set_api_key("y", "ab12").await.unwrap());
    }

    #[tokio::test]
    async fn a_failure_says_what_failed() {
        let (_server, pool) = database().await;
        let registry = PgRegistry::new(pool);
        let hook = AccountWebhook {
            url: "https://a.example/h".into(),
            ..Default::default()
        };
        // No such account: its webhook is refused, as in SQLite.
        let err = registry.set_webhook("nobody", &hook).await.unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("account registry (PostgreSQL): "),
            "{message}"
        );
        assert!(message.contains("wa_account_webhooks"), "{message}");
    }

    #[tokio::test]
    async fn two_servers_on_one_database_see_each_others_accounts_at_once() {
        let (_server, pool) = database().await;
        let one = PgRegistry::new(pool.clone());
        let two = PgRegistry::new(pool);
        assert!(add(&one, "a", "", 1).await);
        assert_eq!(ids(&two).await, ["a"]);
        assert!(!add(&two, "a", "accounts/1", 2).await);
        assert!(add(&two, "b", "", 2).await);
        assert_eq!(ids(&one).await, ["a", "b"]);
        let hook = AccountWebhook {
            url: "https://a.example/h".into(),
            ..Default::default()
        };
        one.set_webhook("b", &hook).await.unwrap();
        assert_eq!(two.webhook("b").await.unwrap(), Some(hook));
        assert!(two.set_api_key("a", "ab12").await.unwrap());
        assert_eq!(
            one.slots().await.unwrap()[0].api_key_sha256.as_deref(),
            Some("ab12")
        );
        assert!(two.remove("a").await.unwrap());
        assert_eq!(ids(&one).await, ["b"]);
        assert!(!one.remove("a").await.unwrap());
        assert!(one.remove("b").await.unwrap());
        assert!(ids(&two).await.is_empty());
        assert_eq!(two.webhook("b").await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_registry_reaches_postgres_through_its_enum() {
        let (_server, pool) = database().await;
        let registry = Registry::postgres(pool.clone());
        crate::accounts::registry::tests::fill(&registry).await;
        // Another server's registry sees it.
        assert_eq!(ids(&PgRegistry::new(pool)).await, ["x"]);
        crate::accounts::registry::tests::empty(&registry).await;
    }

    #[tokio::test]
    async fn an_earlier_file_list_moves_over_with_keys_and_webhooks_once() {
        let (_server, pool) = database().await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.db");
        let file = Registry::open(&path).unwrap();
        file.insert(&slot("default", "", 1)).await.unwrap();
        file.insert(&slot("sales", "accounts/1", 2)).await.unwrap();
        file.set_api_key("sales", "ab12").await.unwrap();
        let hook = AccountWebhook {
            url: "https://a.example/h".into(),
            secret: "s".into(),
            events: "message".into(),
            insecure_skip_verify: false,
        };
        file.set_webhook("sales", &hook).await.unwrap();
        let to = Registry::postgres(pool.clone());
        let copied = crate::accounts::registry::copy_file_to(&path, &to)
            .await
            .unwrap();
        assert_eq!(copied, 2);
        let slots = to.slots().await.unwrap();
        assert_eq!(
            slots,
            [
                slot("default", "", 1),
                Slot {
                    api_key_sha256: Some("ab12".into()),
                    ..slot("sales", "accounts/1", 2)
                }
            ]
        );
        assert_eq!(to.webhook("sales").await.unwrap(), Some(hook));
        assert_eq!(to.webhook("default").await.unwrap(), None);
        // Again: nothing new; the file still lists both.
        let again = crate::accounts::registry::copy_file_to(&path, &to)
            .await
            .unwrap();
        assert_eq!(again, 0);
        assert_eq!(file.slots().await.unwrap().len(), 2);
    }
}
