//! One account's WhatsApp session state (whatsapp-rust's storage [`Backend`]) in
//! PostgreSQL, beside the other accounts' in the same tables: every row is keyed
//! first by the account, and every statement names it.
//!
//! Semantics follow wacore's in-memory backend: batches upsert in one statement
//! (the last of duplicate keys wins), the sent-message buffer is bounded, tc-token
//! and msg-secret writes merge atomically in SQL. Database failures become
//! [`StoreError::Database`] (a connection that cannot be had from the pool,
//! [`StoreError::Connection`]).
//!
//! [`Backend`]: whatsapp_rust::wacore::store::traits::Backend

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use deadpool_postgres::{Object, Pool};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};
use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::client_profile::ClientProfile;
use whatsapp_rust::wacore::stats::StorageResourceReport;
use whatsapp_rust::wacore::store::Device;
use whatsapp_rust::wacore::store::device::DEVICE_PROPS;
use whatsapp_rust::wacore::store::error::{Result, StoreError};
use whatsapp_rust::wacore::store::traits::{
    AppStateSyncKey, AppSyncStore, DeviceListRecord, DeviceStore, LidPnMappingEntry,
    MsgSecretEntry, MsgSecretStore, PendingInboundKey, PendingInboundRow, ProtocolStore,
    SignalStore, TcTokenEntry, merge_msg_secret_expiry, merge_msg_secret_message_ts,
};
use whatsapp_rust::wacore::time::now_secs;

/// Sent messages kept per account for retries; at this many, the oldest go.
const MAX_SENT_MESSAGES: i64 = 4096;
/// How many sent messages are left when [`MAX_SENT_MESSAGES`] is reached.
const SENT_MESSAGES_KEPT: i64 = MAX_SENT_MESSAGES * 3 / 4;
/// Every this many sent messages a store keeps, it checks the bound (counting
/// them at every send would cost each send a scan).
const SENT_MESSAGES_CHECK_EVERY: u64 = 64;
/// The first key of the accounts' sent-message trimming locks ("wasm"; the
/// second is a hash of the account): two trims of one account at once would
/// lock the same rows in different orders and deadlock.
const SENT_MESSAGES_LOCK: i32 = 0x7761_736d;

type Param<'a> = &'a (dyn ToSql + Sync);

/// Every table of `migrations/postgres` holding an account's session.
const TABLES: &[&str] = &[
    "wa_devices",
    "wa_identities",
    "wa_sessions",
    "wa_prekeys",
    "wa_signed_prekeys",
    "wa_sender_keys",
    "wa_app_state_sync_keys",
    "wa_app_state_versions",
    "wa_app_state_mutation_macs",
    "wa_sender_key_devices",
    "wa_lid_pn_mappings",
    "wa_base_keys",
    "wa_device_lists",
    "wa_group_metadata",
    "wa_tc_tokens",
    "wa_sent_messages",
    "wa_pending_inbound",
    "wa_msg_secrets",
];

/// Deletes the sessions, webhook outboxes and messages of every account the account list
/// (`wa_accounts`) does not have; how many accounts had a session.
///
/// The list is read by each statement itself, not beforehand: another server
/// adds an account to the list before it writes any of its rows, so an account
/// added meanwhile keeps them.
pub async fn forget_unlisted(pool: &Pool) -> Result<u64> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| StoreError::Connection(Box::new(e)))?;
    let tx = client.transaction().await.map_err(db)?;
    // Never with an empty list: an account list not filled yet (an upgrade whose
    // first server has not copied its list in) is no reason to delete anything.
    let unlisted = "NOT EXISTS (SELECT 1 FROM wa_accounts a WHERE a.id = t.account) \
                    AND EXISTS (SELECT 1 FROM wa_accounts)";
    let gone = tx
        .execute(&format!("DELETE FROM wa_devices t WHERE {unlisted}"), &[])
        .await
        .map_err(db)?;
    // Their webhook outboxes too.
    for table in TABLES[1..]
        .iter()
        .chain(super::outbox::OUTBOX_TABLES)
        .chain(super::messages::MESSAGE_TABLES)
    {
        let sql = format!("DELETE FROM {table} t WHERE {unlisted}");
        tx.execute(&sql, &[]).await.map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    Ok(gone)
}

/// The WhatsApp store of the account `account` in the database of `pool`.
#[derive(Clone)]
pub struct WhatsAppStore {
    pool: Pool,
    account: String,
    /// Sent messages stored through this store (see
    /// [`SENT_MESSAGES_CHECK_EVERY`]).
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl WhatsAppStore {
    pub fn new(pool: Pool, account: impl Into<String>) -> Self {
        Self {
            pool,
            account: account.into(),
            sent: Default::default(),
        }
    }

    /// The pool of the database.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The account whose rows this store reads and writes.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// Deletes every row of the account (logged out, or a pairing that ended),
    /// in one transaction.
    pub async fn forget(&self) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        for table in TABLES {
            let sql = format!("DELETE FROM {table} WHERE account = $1");
            tx.execute(&sql, &[&self.account]).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn client(&self) -> Result<Object> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Connection(Box::new(e)))
    }

    /// At [`MAX_SENT_MESSAGES`], deletes the oldest down to
    /// [`SENT_MESSAGES_KEPT`]; skipped while another trim of the account runs.
    async fn trim_sent_messages(&self, client: &mut Object) -> Result<()> {
        let tx = client.transaction().await.map_err(db)?;
        let ours: bool = tx
            .query_one(
                "SELECT pg_try_advisory_xact_lock($1, hashtext($2))",
                &[&SENT_MESSAGES_LOCK, &self.account],
            )
            .await
            .map_err(db)?
            .get(0);
        if ours {
            let evict = tx
                .prepare_cached(
                    "DELETE FROM wa_sent_messages WHERE account = $1 \
                     AND (chat_jid, message_id) IN ( \
                         SELECT chat_jid, message_id FROM wa_sent_messages WHERE account = $1 \
                         ORDER BY created_at \
                         LIMIT (SELECT CASE WHEN count(*) >= $2 THEN count(*) - $3 ELSE 0 END \
                                FROM wa_sent_messages WHERE account = $1))",
                )
                .await
                .map_err(db)?;
            tx.execute(
                &evict,
                &[&self.account, &MAX_SENT_MESSAGES, &SENT_MESSAGES_KEPT],
            )
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    /// Runs `sql` (prepared once per connection); the number of rows it changed.
    async fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(db)?;
        client.execute(&statement, params).await.map_err(db)
    }

    async fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(db)?;
        client.query(&statement, params).await.map_err(db)
    }

    async fn query_opt(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(db)?;
        client.query_opt(&statement, params).await.map_err(db)
    }

    /// Stores `record` at `address` in `table` (`wa_sessions`, `wa_sender_keys`).
    async fn put_record(&self, table: &'static str, address: &str, record: &[u8]) -> Result<()> {
        let sql = format!(
            "INSERT INTO {table} (account, address, record) VALUES ($1, $2, $3) \
             ON CONFLICT (account, address) DO UPDATE SET record = EXCLUDED.record"
        );
        self.execute(&sql, &[&self.account, &address, &record])
            .await
            .map(drop)
    }

    /// [`put_record`](Self::put_record) for many, in one statement (the last of
    /// an address wins).
    async fn put_records(&self, table: &'static str, rows: &[(Arc<str>, Bytes)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let rows = last_wins(rows, |(address, _)| &**address);
        let addresses: Vec<&str> = rows.iter().map(|(address, _)| &**address).collect();
        let records: Vec<&[u8]> = rows.iter().map(|(_, record)| &record[..]).collect();
        let sql = format!(
            "INSERT INTO {table} (account, address, record) \
             SELECT $1::text, address, record \
             FROM UNNEST($2::text[], $3::bytea[]) AS t(address, record) \
             ON CONFLICT (account, address) DO UPDATE SET record = EXCLUDED.record"
        );
        self.execute(&sql, &[&self.account, &addresses, &records])
            .await
            .map(drop)
    }

    /// The boolean of a statement answering with one.
    async fn query_bool(&self, sql: &str, params: &[Param<'_>]) -> Result<bool> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(db)?;
        let row = client.query_one(&statement, params).await.map_err(db)?;
        get(&row, 0)
    }
}

/// whatsapp-rust says only "database operation error": the cause is logged here.
fn db(e: tokio_postgres::Error) -> StoreError {
    tracing::warn!(error = %super::described(&e), "a WhatsApp session store operation failed in PostgreSQL");
    StoreError::Database(Box::new(e))
}

fn get<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T> {
    row.try_get(index).map_err(db)
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Serialization(Box::new(e)))
}

fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Serialization(Box::new(e)))
}

fn to_u32(value: i64, what: &str) -> Result<u32> {
    u32::try_from(value).map_err(|_| StoreError::Validation(format!("{what} {value} is not a u32")))
}

/// A count of deleted rows as the traits report it.
fn count(rows: u64) -> u32 {
    u32::try_from(rows).unwrap_or(u32::MAX)
}

/// The items of `items` whose key no later item repeats, in their order: one
/// upsert statement may not touch a row twice, and the last write wins.
fn last_wins<'a, T, K: Eq + Hash>(items: &'a [T], key: impl Fn(&'a T) -> K) -> Vec<&'a T> {
    let mut seen = HashSet::with_capacity(items.len());
    let mut kept: Vec<&T> = items
        .iter()
        .rev()
        .filter(|&item| seen.insert(key(item)))
        .collect();
    kept.reverse();
    kept
}

fn lid_mapping(row: &Row) -> Result<LidPnMappingEntry> {
    Ok(LidPnMappingEntry {
        lid: get(row, 0)?,
        phone_number: get(row, 1)?,
        created_at: get(row, 2)?,
        updated_at: get(row, 3)?,
        learning_source: get(row, 4)?,
    })
}

const LID_MAPPING_COLUMNS: &str = "lid, phone_number, created_at, updated_at, learning_source";

#[async_trait]
impl SignalStore for WhatsAppStore {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> Result<()> {
        self.execute(
            "INSERT INTO wa_identities (account, address, identity_key) VALUES ($1, $2, $3) \
             ON CONFLICT (account, address) DO UPDATE SET identity_key = EXCLUDED.identity_key",
            &[&self.account, &address, &key.as_slice()],
        )
        .await
        .map(drop)
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> Result<()> {
        if identities.is_empty() {
            return Ok(());
        }
        let rows = last_wins(identities, |(address, _)| &**address);
        let addresses: Vec<&str> = rows.iter().map(|(address, _)| &**address).collect();
        let keys: Vec<&[u8]> = rows.iter().map(|(_, key)| key.as_slice()).collect();
        self.execute(
            "INSERT INTO wa_identities (account, address, identity_key) \
             SELECT $1::text, address, identity_key \
             FROM UNNEST($2::text[], $3::bytea[]) AS t(address, identity_key) \
             ON CONFLICT (account, address) DO UPDATE SET identity_key = EXCLUDED.identity_key",
            &[&self.account, &addresses, &keys],
        )
        .await
        .map(drop)
    }

    async fn load_identity(&self, address: &str) -> Result<Option<[u8; 32]>> {
        let Some(row) = self
            .query_opt(
                "SELECT identity_key FROM wa_identities WHERE account = $1 AND address = $2",
                &[&self.account, &address],
            )
            .await?
        else {
            return Ok(None);
        };
        let key: &[u8] = get(&row, 0)?;
        key.try_into().map(Some).map_err(|_| {
            StoreError::Validation(format!(
                "the identity key of {address} has {} bytes, not 32",
                key.len()
            ))
        })
    }

    async fn delete_identity(&self, address: &str) -> Result<()> {
        self.execute(
            "DELETE FROM wa_identities WHERE account = $1 AND address = $2",
            &[&self.account, &address],
        )
        .await
        .map(drop)
    }

    async fn get_session(&self, address: &str) -> Result<Option<Bytes>> {
        let row = self
            .query_opt(
                "SELECT record FROM wa_sessions WHERE account = $1 AND address = $2",
                &[&self.account, &address],
            )
            .await?;
        row.map(|row| get::<Vec<u8>>(&row, 0).map(Bytes::from))
            .transpose()
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> Result<()> {
        self.put_record("wa_sessions", address, session).await
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> Result<()> {
        self.put_records("wa_sessions", sessions).await
    }

    async fn delete_session(&self, address: &str) -> Result<()> {
        self.execute(
            "DELETE FROM wa_sessions WHERE account = $1 AND address = $2",
            &[&self.account, &address],
        )
        .await
        .map(drop)
    }

    async fn has_session(&self, address: &str) -> Result<bool> {
        self.query_bool(
            "SELECT EXISTS (SELECT 1 FROM wa_sessions WHERE account = $1 AND address = $2)",
            &[&self.account, &address],
        )
        .await
    }

    async fn has_signal_state_for_user(&self, user: &str) -> Result<bool> {
        // `user@…` and `user:…` as byte ranges: '@' < 'A' and ':' < ';'.
        let (device0, device0_end) = (format!("{user}@"), format!("{user}A"));
        let (devices, devices_end) = (format!("{user}:"), format!("{user};"));
        self.query_bool(
            "SELECT EXISTS (SELECT 1 FROM wa_sessions WHERE account = $1 \
                 AND ((address >= $2 AND address < $3) OR (address >= $4 AND address < $5))) \
             OR EXISTS (SELECT 1 FROM wa_identities WHERE account = $1 \
                 AND ((address >= $2 AND address < $3) OR (address >= $4 AND address < $5)))",
            &[
                &self.account,
                &device0,
                &device0_end,
                &devices,
                &devices_end,
            ],
        )
        .await
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> Result<()> {
        self.execute(
            "INSERT INTO wa_prekeys (account, id, record, uploaded) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (account, id) DO UPDATE \
             SET record = EXCLUDED.record, uploaded = EXCLUDED.uploaded",
            &[&self.account, &i64::from(id), &record, &uploaded],
        )
        .await
        .map(drop)
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], uploaded: bool) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let rows = last_wins(keys, |(id, _)| *id);
        let ids: Vec<i64> = rows.iter().map(|(id, _)| i64::from(*id)).collect();
        let records: Vec<&[u8]> = rows.iter().map(|(_, record)| &record[..]).collect();
        self.execute(
            "INSERT INTO wa_prekeys (account, id, record, uploaded) \
             SELECT $1::text, id, record, $4::boolean \
             FROM UNNEST($2::int8[], $3::bytea[]) AS t(id, record) \
             ON CONFLICT (account, id) DO UPDATE \
             SET record = EXCLUDED.record, uploaded = EXCLUDED.uploaded",
            &[&self.account, &ids, &records, &uploaded],
        )
        .await
        .map(drop)
    }

    async fn load_prekey(&self, id: u32) -> Result<Option<Bytes>> {
        let row = self
            .query_opt(
                "SELECT record FROM wa_prekeys WHERE account = $1 AND id = $2",
                &[&self.account, &i64::from(id)],
            )
            .await?;
        row.map(|row| get::<Vec<u8>>(&row, 0).map(Bytes::from))
            .transpose()
    }

    async fn load_prekeys_batch(&self, ids: &[u32]) -> Result<Vec<(u32, Bytes)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<i64> = ids.iter().map(|&id| i64::from(id)).collect();
        let rows = self
            .query(
                "SELECT id, record FROM wa_prekeys WHERE account = $1 AND id = ANY($2::int8[])",
                &[&self.account, &wanted],
            )
            .await?;
        let mut found = HashMap::with_capacity(rows.len());
        for row in &rows {
            found.insert(get::<i64>(row, 0)?, Bytes::from(get::<Vec<u8>>(row, 1)?));
        }
        // In the order asked for.
        Ok(ids
            .iter()
            .filter_map(|&id| found.get(&i64::from(id)).map(|record| (id, record.clone())))
            .collect())
    }

    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = ids.iter().map(|&id| i64::from(id)).collect();
        self.execute(
            "UPDATE wa_prekeys SET uploaded = TRUE WHERE account = $1 AND id = ANY($2::int8[])",
            &[&self.account, &ids],
        )
        .await
        .map(drop)
    }

    async fn remove_prekey(&self, id: u32) -> Result<()> {
        self.execute(
            "DELETE FROM wa_prekeys WHERE account = $1 AND id = $2",
            &[&self.account, &i64::from(id)],
        )
        .await
        .map(drop)
    }

    async fn get_max_prekey_id(&self) -> Result<u32> {
        let rows = self
            .query(
                "SELECT COALESCE(MAX(id), 0) FROM wa_prekeys WHERE account = $1",
                &[&self.account],
            )
            .await?;
        match rows.first() {
            Some(row) => to_u32(get(row, 0)?, "pre-key id"),
            None => Ok(0),
        }
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> Result<()> {
        self.execute(
            "INSERT INTO wa_signed_prekeys (account, id, record) VALUES ($1, $2, $3) \
             ON CONFLICT (account, id) DO UPDATE SET record = EXCLUDED.record",
            &[&self.account, &i64::from(id), &record],
        )
        .await
        .map(drop)
    }

    async fn load_signed_prekey(&self, id: u32) -> Result<Option<Vec<u8>>> {
        let row = self
            .query_opt(
                "SELECT record FROM wa_signed_prekeys WHERE account = $1 AND id = $2",
                &[&self.account, &i64::from(id)],
            )
            .await?;
        row.map(|row| get(&row, 0)).transpose()
    }

    async fn load_all_signed_prekeys(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        let rows = self
            .query(
                "SELECT id, record FROM wa_signed_prekeys WHERE account = $1 ORDER BY id",
                &[&self.account],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((to_u32(get(row, 0)?, "signed pre-key id")?, get(row, 1)?)))
            .collect()
    }

    async fn remove_signed_prekey(&self, id: u32) -> Result<()> {
        self.execute(
            "DELETE FROM wa_signed_prekeys WHERE account = $1 AND id = $2",
            &[&self.account, &i64::from(id)],
        )
        .await
        .map(drop)
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> Result<()> {
        self.put_record("wa_sender_keys", address, record).await
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> Result<()> {
        self.put_records("wa_sender_keys", sender_keys).await
    }

    async fn get_sender_key(&self, address: &str) -> Result<Option<Vec<u8>>> {
        let row = self
            .query_opt(
                "SELECT record FROM wa_sender_keys WHERE account = $1 AND address = $2",
                &[&self.account, &address],
            )
            .await?;
        row.map(|row| get(&row, 0)).transpose()
    }

    async fn delete_sender_key(&self, address: &str) -> Result<()> {
        self.execute(
            "DELETE FROM wa_sender_keys WHERE account = $1 AND address = $2",
            &[&self.account, &address],
        )
        .await
        .map(drop)
    }
}

#[async_trait]
impl AppSyncStore for WhatsAppStore {
    async fn get_sync_key(&self, key_id: &[u8]) -> Result<Option<AppStateSyncKey>> {
        let Some(row) = self
            .query_opt(
                "SELECT key_data, fingerprint, key_timestamp FROM wa_app_state_sync_keys \
                 WHERE account = $1 AND key_id = $2",
                &[&self.account, &key_id],
            )
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(AppStateSyncKey {
            key_data: get(&row, 0)?,
            fingerprint: get(&row, 1)?,
            timestamp: get(&row, 2)?,
        }))
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> Result<()> {
        self.execute(
            "INSERT INTO wa_app_state_sync_keys \
                 (account, key_id, key_data, fingerprint, key_timestamp) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (account, key_id) DO UPDATE SET key_data = EXCLUDED.key_data, \
                 fingerprint = EXCLUDED.fingerprint, key_timestamp = EXCLUDED.key_timestamp, \
                 set_order = nextval('wa_app_state_sync_key_order')",
            &[
                &self.account,
                &key_id,
                &key.key_data,
                &key.fingerprint,
                &key.timestamp,
            ],
        )
        .await
        .map(drop)
    }

    async fn get_version(&self, name: &str) -> Result<HashState> {
        let Some(row) = self
            .query_opt(
                "SELECT version, hash, index_value_map, mac_mismatch_fatal \
                 FROM wa_app_state_versions WHERE account = $1 AND name = $2",
                &[&self.account, &name],
            )
            .await?
        else {
            return Ok(HashState::default());
        };
        let version: i64 = get(&row, 0)?;
        let hash: &[u8] = get(&row, 1)?;
        Ok(HashState {
            version: u64::try_from(version).map_err(|_| {
                StoreError::Validation(format!("app state version {version} of {name}"))
            })?,
            hash: hash.try_into().map_err(|_| {
                StoreError::Validation(format!(
                    "the app state hash of {name} has {} bytes, not 128",
                    hash.len()
                ))
            })?,
            index_value_map: from_json(get(&row, 2)?)?,
            mac_mismatch_fatal: get(&row, 3)?,
        })
    }

    async fn set_version(&self, name: &str, state: HashState) -> Result<()> {
        let version = i64::try_from(state.version).map_err(|_| {
            StoreError::Validation(format!("app state version {} of {name}", state.version))
        })?;
        let index_value_map = to_json(&state.index_value_map)?;
        self.execute(
            "INSERT INTO wa_app_state_versions \
                 (account, name, version, hash, index_value_map, mac_mismatch_fatal) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (account, name) DO UPDATE SET version = EXCLUDED.version, \
                 hash = EXCLUDED.hash, index_value_map = EXCLUDED.index_value_map, \
                 mac_mismatch_fatal = EXCLUDED.mac_mismatch_fatal",
            &[
                &self.account,
                &name,
                &version,
                &state.hash.as_slice(),
                &index_value_map,
                &state.mac_mismatch_fatal,
            ],
        )
        .await
        .map(drop)
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> Result<()> {
        if mutations.is_empty() {
            return Ok(());
        }
        let version = i64::try_from(version).map_err(|_| {
            StoreError::Validation(format!("app state version {version} of {name}"))
        })?;
        let rows = last_wins(mutations, |m| m.index_mac.as_slice());
        let index_macs: Vec<&[u8]> = rows.iter().map(|m| m.index_mac.as_slice()).collect();
        let value_macs: Vec<&[u8]> = rows.iter().map(|m| m.value_mac.as_slice()).collect();
        self.execute(
            "INSERT INTO wa_app_state_mutation_macs (account, name, index_mac, version, value_mac) \
             SELECT $1::text, $2::text, index_mac, $3::int8, value_mac \
             FROM UNNEST($4::bytea[], $5::bytea[]) AS t(index_mac, value_mac) \
             ON CONFLICT (account, name, index_mac) DO UPDATE \
             SET version = EXCLUDED.version, value_mac = EXCLUDED.value_mac",
            &[&self.account, &name, &version, &index_macs, &value_macs],
        )
        .await
        .map(drop)
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> Result<Option<Vec<u8>>> {
        let row = self
            .query_opt(
                "SELECT value_mac FROM wa_app_state_mutation_macs \
                 WHERE account = $1 AND name = $2 AND index_mac = $3",
                &[&self.account, &name, &index_mac],
            )
            .await?;
        row.map(|row| get(&row, 0)).transpose()
    }

    async fn get_mutation_macs(
        &self,
        name: &str,
        index_macs: &[[u8; 32]],
    ) -> Result<HashMap<[u8; 32], Vec<u8>>> {
        if index_macs.is_empty() {
            return Ok(HashMap::new());
        }
        let wanted: Vec<&[u8]> = index_macs.iter().map(|mac| mac.as_slice()).collect();
        let rows = self
            .query(
                "SELECT index_mac, value_mac FROM wa_app_state_mutation_macs \
                 WHERE account = $1 AND name = $2 AND index_mac = ANY($3::bytea[])",
                &[&self.account, &name, &wanted],
            )
            .await?;
        let mut found = HashMap::with_capacity(rows.len());
        for row in &rows {
            let index_mac: &[u8] = get(row, 0)?;
            // Only 32-byte index MACs were asked for.
            if let Ok(index_mac) = <[u8; 32]>::try_from(index_mac) {
                found.insert(index_mac, get(row, 1)?);
            }
        }
        Ok(found)
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> Result<()> {
        if index_macs.is_empty() {
            return Ok(());
        }
        let index_macs: Vec<&[u8]> = index_macs.iter().map(Vec::as_slice).collect();
        self.execute(
            "DELETE FROM wa_app_state_mutation_macs \
             WHERE account = $1 AND name = $2 AND index_mac = ANY($3::bytea[])",
            &[&self.account, &name, &index_macs],
        )
        .await
        .map(drop)
    }

    async fn clear_mutation_macs(&self, name: &str) -> Result<()> {
        self.execute(
            "DELETE FROM wa_app_state_mutation_macs WHERE account = $1 AND name = $2",
            &[&self.account, &name],
        )
        .await
        .map(drop)
    }

    async fn get_latest_sync_key_id(&self) -> Result<Option<Vec<u8>>> {
        let row = self
            .query_opt(
                "SELECT key_id FROM wa_app_state_sync_keys WHERE account = $1 \
                 ORDER BY set_order DESC LIMIT 1",
                &[&self.account],
            )
            .await?;
        row.map(|row| get(&row, 0)).transpose()
    }
}

#[async_trait]
impl ProtocolStore for WhatsAppStore {
    async fn get_sender_key_devices(&self, group_jid: &str) -> Result<Vec<(String, bool)>> {
        let rows = self
            .query(
                "SELECT device_jid, has_key FROM wa_sender_key_devices \
                 WHERE account = $1 AND group_jid = $2 ORDER BY device_jid",
                &[&self.account, &group_jid],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((get(row, 0)?, get(row, 1)?)))
            .collect()
    }

    async fn set_sender_key_status(&self, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let rows = last_wins(entries, |(device_jid, _)| *device_jid);
        let device_jids: Vec<&str> = rows.iter().map(|(device_jid, _)| *device_jid).collect();
        let has_keys: Vec<bool> = rows.iter().map(|(_, has_key)| *has_key).collect();
        self.execute(
            "INSERT INTO wa_sender_key_devices (account, group_jid, device_jid, has_key) \
             SELECT $1::text, $2::text, device_jid, has_key \
             FROM UNNEST($3::text[], $4::boolean[]) AS t(device_jid, has_key) \
             ON CONFLICT (account, group_jid, device_jid) DO UPDATE SET has_key = EXCLUDED.has_key",
            &[&self.account, &group_jid, &device_jids, &has_keys],
        )
        .await
        .map(drop)
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> Result<()> {
        self.execute(
            "DELETE FROM wa_sender_key_devices WHERE account = $1 AND group_jid = $2",
            &[&self.account, &group_jid],
        )
        .await
        .map(drop)
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> Result<()> {
        if device_jids.is_empty() {
            return Ok(());
        }
        self.execute(
            "DELETE FROM wa_sender_key_devices WHERE account = $1 AND device_jid = ANY($2::text[])",
            &[&self.account, &device_jids],
        )
        .await
        .map(drop)
    }

    async fn clear_all_sender_key_devices(&self) -> Result<()> {
        self.execute(
            "DELETE FROM wa_sender_key_devices WHERE account = $1",
            &[&self.account],
        )
        .await
        .map(drop)
    }

    async fn get_lid_mapping(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        let row = self
            .query_opt(
                &format!(
                    "SELECT {LID_MAPPING_COLUMNS} FROM wa_lid_pn_mappings \
                     WHERE account = $1 AND lid = $2"
                ),
                &[&self.account, &lid],
            )
            .await?;
        row.as_ref().map(lid_mapping).transpose()
    }

    async fn get_pn_mapping(&self, phone: &str) -> Result<Option<LidPnMappingEntry>> {
        let row = self
            .query_opt(
                &format!(
                    "SELECT {LID_MAPPING_COLUMNS} FROM wa_lid_pn_mappings \
                     WHERE account = $1 AND phone_number = $2 ORDER BY put_order DESC LIMIT 1"
                ),
                &[&self.account, &phone],
            )
            .await?;
        row.as_ref().map(lid_mapping).transpose()
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> Result<()> {
        self.put_lid_mappings(std::slice::from_ref(entry)).await
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let rows = last_wins(entries, |entry| entry.lid.as_str());
        let lids: Vec<&str> = rows.iter().map(|e| e.lid.as_str()).collect();
        let phones: Vec<&str> = rows.iter().map(|e| e.phone_number.as_str()).collect();
        let created: Vec<i64> = rows.iter().map(|e| e.created_at).collect();
        let updated: Vec<i64> = rows.iter().map(|e| e.updated_at).collect();
        let sources: Vec<&str> = rows.iter().map(|e| e.learning_source.as_str()).collect();
        // In the batch's order, so that the last of one phone number's LIDs wins.
        self.execute(
            "INSERT INTO wa_lid_pn_mappings \
                 (account, lid, phone_number, created_at, updated_at, learning_source) \
             SELECT $1::text, lid, phone_number, created_at, updated_at, learning_source \
             FROM UNNEST($2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[]) \
                 WITH ORDINALITY AS t(lid, phone_number, created_at, updated_at, learning_source, n) \
             ORDER BY n \
             ON CONFLICT (account, lid) DO UPDATE SET phone_number = EXCLUDED.phone_number, \
                 created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, \
                 learning_source = EXCLUDED.learning_source, \
                 put_order = nextval('wa_lid_pn_mapping_order')",
            &[&self.account, &lids, &phones, &created, &updated, &sources],
        )
        .await
        .map(drop)
    }

    async fn get_all_lid_mappings(&self) -> Result<Vec<LidPnMappingEntry>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {LID_MAPPING_COLUMNS} FROM wa_lid_pn_mappings \
                     WHERE account = $1 ORDER BY lid"
                ),
                &[&self.account],
            )
            .await?;
        rows.iter().map(lid_mapping).collect()
    }

    async fn save_base_key(&self, address: &str, message_id: &str, base_key: &[u8]) -> Result<()> {
        self.execute(
            "INSERT INTO wa_base_keys (account, address, message_id, base_key) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (account, address, message_id) DO UPDATE SET base_key = EXCLUDED.base_key",
            &[&self.account, &address, &message_id, &base_key],
        )
        .await
        .map(drop)
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> Result<bool> {
        self.query_bool(
            "SELECT EXISTS (SELECT 1 FROM wa_base_keys WHERE account = $1 AND address = $2 \
                 AND message_id = $3 AND base_key = $4)",
            &[&self.account, &address, &message_id, &current_base_key],
        )
        .await
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> Result<()> {
        self.execute(
            "DELETE FROM wa_base_keys WHERE account = $1 AND address = $2 AND message_id = $3",
            &[&self.account, &address, &message_id],
        )
        .await
        .map(drop)
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> Result<()> {
        self.update_device_lists(vec![record]).await
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let rows = last_wins(&records, |record| record.user.as_str());
        let users: Vec<&str> = rows.iter().map(|r| r.user.as_str()).collect();
        let devices: Vec<Vec<u8>> = rows
            .iter()
            .map(|r| to_json(&r.devices))
            .collect::<Result<_>>()?;
        let timestamps: Vec<i64> = rows.iter().map(|r| r.timestamp).collect();
        let phashes: Vec<Option<&str>> = rows.iter().map(|r| r.phash.as_deref()).collect();
        let raw_ids: Vec<Option<i64>> = rows.iter().map(|r| r.raw_id.map(i64::from)).collect();
        self.execute(
            "INSERT INTO wa_device_lists \
                 (account, user_id, devices, list_timestamp, phash, raw_id) \
             SELECT $1::text, user_id, devices, list_timestamp, phash, raw_id \
             FROM UNNEST($2::text[], $3::bytea[], $4::int8[], $5::text[], $6::int8[]) \
                 AS t(user_id, devices, list_timestamp, phash, raw_id) \
             ON CONFLICT (account, user_id) DO UPDATE SET devices = EXCLUDED.devices, \
                 list_timestamp = EXCLUDED.list_timestamp, phash = EXCLUDED.phash, \
                 raw_id = EXCLUDED.raw_id",
            &[
                &self.account,
                &users,
                &devices,
                &timestamps,
                &phashes,
                &raw_ids,
            ],
        )
        .await
        .map(drop)
    }

    async fn get_devices(&self, user: &str) -> Result<Option<DeviceListRecord>> {
        let Some(row) = self
            .query_opt(
                "SELECT devices, list_timestamp, phash, raw_id FROM wa_device_lists \
                 WHERE account = $1 AND user_id = $2",
                &[&self.account, &user],
            )
            .await?
        else {
            return Ok(None);
        };
        let raw_id: Option<i64> = get(&row, 3)?;
        Ok(Some(DeviceListRecord {
            user: user.to_owned(),
            devices: from_json(get(&row, 0)?)?,
            timestamp: get(&row, 1)?,
            phash: get(&row, 2)?,
            raw_id: raw_id.map(|id| to_u32(id, "ADV raw id")).transpose()?,
        }))
    }

    async fn delete_devices(&self, user: &str) -> Result<()> {
        self.execute(
            "DELETE FROM wa_device_lists WHERE account = $1 AND user_id = $2",
            &[&self.account, &user],
        )
        .await
        .map(drop)
    }

    async fn get_group_metadata(&self, group_jid: &str) -> Result<Option<Vec<u8>>> {
        let row = self
            .query_opt(
                "SELECT metadata FROM wa_group_metadata WHERE account = $1 AND group_jid = $2",
                &[&self.account, &group_jid],
            )
            .await?;
        row.map(|row| get(&row, 0)).transpose()
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> Result<()> {
        self.execute(
            "INSERT INTO wa_group_metadata (account, group_jid, metadata) VALUES ($1, $2, $3) \
             ON CONFLICT (account, group_jid) DO UPDATE SET metadata = EXCLUDED.metadata",
            &[&self.account, &group_jid, &blob],
        )
        .await
        .map(drop)
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> Result<()> {
        self.execute(
            "DELETE FROM wa_group_metadata WHERE account = $1 AND group_jid = $2",
            &[&self.account, &group_jid],
        )
        .await
        .map(drop)
    }

    async fn get_tc_token(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        let Some(row) = self
            .query_opt(
                "SELECT token, token_timestamp, sender_timestamp FROM wa_tc_tokens \
                 WHERE account = $1 AND jid = $2",
                &[&self.account, &jid],
            )
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(TcTokenEntry {
            token: get(&row, 0)?,
            token_timestamp: get(&row, 1)?,
            sender_timestamp: get(&row, 2)?,
        }))
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> Result<()> {
        self.execute(
            "INSERT INTO wa_tc_tokens (account, jid, token, token_timestamp, sender_timestamp) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (account, jid) DO UPDATE SET token = EXCLUDED.token, \
                 token_timestamp = EXCLUDED.token_timestamp, \
                 sender_timestamp = EXCLUDED.sender_timestamp",
            &[
                &self.account,
                &jid,
                &entry.token,
                &entry.token_timestamp,
                &entry.sender_timestamp,
            ],
        )
        .await
        .map(drop)
    }

    async fn delete_tc_token(&self, jid: &str) -> Result<()> {
        self.execute(
            "DELETE FROM wa_tc_tokens WHERE account = $1 AND jid = $2",
            &[&self.account, &jid],
        )
        .await
        .map(drop)
    }

    async fn get_all_tc_token_jids(&self) -> Result<Vec<String>> {
        let rows = self
            .query(
                "SELECT jid FROM wa_tc_tokens WHERE account = $1 ORDER BY jid",
                &[&self.account],
            )
            .await?;
        rows.iter().map(|row| get(row, 0)).collect()
    }

    async fn delete_expired_tc_tokens(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        // Gone only when neither the received token nor the sender bucket is live.
        self.execute(
            "DELETE FROM wa_tc_tokens WHERE account = $1 \
                 AND (octet_length(token) = 0 OR token_timestamp < $2) \
                 AND (sender_timestamp IS NULL OR sender_timestamp < $3)",
            &[&self.account, &token_cutoff, &sender_cutoff],
        )
        .await
        .map(count)
    }

    async fn touch_tc_token_sender_timestamp(
        &self,
        jid: &str,
        sender_timestamp: i64,
    ) -> Result<()> {
        // A placeholder when new; else only the sender bucket moves, and only forward.
        self.execute(
            "INSERT INTO wa_tc_tokens (account, jid, token, token_timestamp, sender_timestamp) \
             VALUES ($1, $2, ''::bytea, $3, $3) \
             ON CONFLICT (account, jid) DO UPDATE SET sender_timestamp = \
                 GREATEST(wa_tc_tokens.sender_timestamp, EXCLUDED.sender_timestamp)",
            &[&self.account, &jid, &sender_timestamp],
        )
        .await
        .map(drop)
    }

    async fn store_received_tc_token(
        &self,
        jid: &str,
        token: &[u8],
        token_timestamp: i64,
    ) -> Result<()> {
        // Replaces a placeholder or an older token, never a newer one; the sender
        // bucket stays.
        self.execute(
            "INSERT INTO wa_tc_tokens (account, jid, token, token_timestamp, sender_timestamp) \
             VALUES ($1, $2, $3, $4, NULL) \
             ON CONFLICT (account, jid) DO UPDATE \
             SET token = EXCLUDED.token, token_timestamp = EXCLUDED.token_timestamp \
             WHERE octet_length(wa_tc_tokens.token) = 0 \
                 OR EXCLUDED.token_timestamp >= wa_tc_tokens.token_timestamp",
            &[&self.account, &jid, &token, &token_timestamp],
        )
        .await
        .map(drop)
    }

    async fn store_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
        payload: &[u8],
    ) -> Result<()> {
        let mut client = self.client().await?;
        let nth = self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if nth.is_multiple_of(SENT_MESSAGES_CHECK_EVERY) {
            self.trim_sent_messages(&mut client).await?;
        }
        let insert = client
            .prepare_cached(
                "INSERT INTO wa_sent_messages (account, chat_jid, message_id, payload, created_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (account, chat_jid, message_id) DO UPDATE \
                 SET payload = EXCLUDED.payload, created_at = EXCLUDED.created_at",
            )
            .await
            .map_err(db)?;
        client
            .execute(
                &insert,
                &[&self.account, &chat_jid, &message_id, &payload, &now_secs()],
            )
            .await
            .map_err(db)
            .map(drop)
    }

    async fn take_sent_message(&self, chat_jid: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        let row = self
            .query_opt(
                "DELETE FROM wa_sent_messages \
                 WHERE account = $1 AND chat_jid = $2 AND message_id = $3 RETURNING payload",
                &[&self.account, &chat_jid, &message_id],
            )
            .await?;
        row.map(|row| get(&row, 0)).transpose()
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> Result<u32> {
        // After any trim of the account (both delete many rows).
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&SENT_MESSAGES_LOCK, &self.account],
        )
        .await
        .map_err(db)?;
        let gone = tx
            .execute(
                "DELETE FROM wa_sent_messages WHERE account = $1 AND created_at < $2",
                &[&self.account, &cutoff_timestamp],
            )
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(count(gone))
    }

    async fn store_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
        message: &[u8],
    ) -> Result<()> {
        self.store_pending_inbound_batch(&[PendingInboundRow {
            chat,
            sender,
            id,
            message,
        }])
        .await
    }

    async fn get_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
    ) -> Result<Option<Vec<u8>>> {
        let row = self
            .query_opt(
                "SELECT message FROM wa_pending_inbound \
                 WHERE account = $1 AND chat = $2 AND sender = $3 AND id = $4",
                &[&self.account, &chat, &sender, &id],
            )
            .await?;
        row.map(|row| get(&row, 0)).transpose()
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<()> {
        self.execute(
            "DELETE FROM wa_pending_inbound \
             WHERE account = $1 AND chat = $2 AND sender = $3 AND id = $4",
            &[&self.account, &chat, &sender, &id],
        )
        .await
        .map(drop)
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.execute(
            "DELETE FROM wa_pending_inbound WHERE account = $1 AND inserted_at < $2",
            &[&self.account, &cutoff_timestamp],
        )
        .await
        .map(count)
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let rows = last_wins(rows, |row| (row.chat, row.sender, row.id));
        let chats: Vec<&str> = rows.iter().map(|row| row.chat).collect();
        let senders: Vec<&str> = rows.iter().map(|row| row.sender).collect();
        let ids: Vec<&str> = rows.iter().map(|row| row.id).collect();
        let messages: Vec<&[u8]> = rows.iter().map(|row| row.message).collect();
        self.execute(
            "INSERT INTO wa_pending_inbound (account, chat, sender, id, message, inserted_at) \
             SELECT $1::text, chat, sender, id, message, $6::int8 \
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::bytea[]) \
                 AS t(chat, sender, id, message) \
             ON CONFLICT (account, chat, sender, id) DO UPDATE \
             SET message = EXCLUDED.message, inserted_at = EXCLUDED.inserted_at",
            &[
                &self.account,
                &chats,
                &senders,
                &ids,
                &messages,
                &now_secs(),
            ],
        )
        .await
        .map(drop)
    }

    async fn delete_pending_inbound_batch(&self, keys: &[PendingInboundKey<'_>]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let chats: Vec<&str> = keys.iter().map(|key| key.chat).collect();
        let senders: Vec<&str> = keys.iter().map(|key| key.sender).collect();
        let ids: Vec<&str> = keys.iter().map(|key| key.id).collect();
        self.execute(
            "DELETE FROM wa_pending_inbound p \
             USING UNNEST($2::text[], $3::text[], $4::text[]) AS k(chat, sender, id) \
             WHERE p.account = $1 AND p.chat = k.chat AND p.sender = k.sender AND p.id = k.id",
            &[&self.account, &chats, &senders, &ids],
        )
        .await
        .map(drop)
    }
}

#[async_trait]
impl MsgSecretStore for WhatsAppStore {
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> Result<usize> {
        let stored = entries.len();
        if stored == 0 {
            return Ok(0);
        }
        // Repeats of a key within the batch merge here as they would in the table.
        let mut at = HashMap::with_capacity(stored);
        let mut merged: Vec<MsgSecretEntry> = Vec::with_capacity(stored);
        for entry in entries {
            let key = (
                entry.chat.clone(),
                entry.sender.clone(),
                entry.msg_id.clone(),
            );
            match at.entry(key) {
                Entry::Occupied(slot) => {
                    let kept: &mut MsgSecretEntry = &mut merged[*slot.get()];
                    kept.secret = entry.secret;
                    kept.expires_at = merge_msg_secret_expiry(kept.expires_at, entry.expires_at);
                    kept.message_ts =
                        merge_msg_secret_message_ts(kept.message_ts, entry.message_ts);
                }
                Entry::Vacant(slot) => {
                    slot.insert(merged.len());
                    merged.push(entry);
                }
            }
        }
        let chats: Vec<&str> = merged.iter().map(|e| &*e.chat).collect();
        let senders: Vec<&str> = merged.iter().map(|e| &*e.sender).collect();
        let ids: Vec<&str> = merged.iter().map(|e| &*e.msg_id).collect();
        let secrets: Vec<&[u8]> = merged.iter().map(|e| e.secret.as_slice()).collect();
        let expires: Vec<i64> = merged.iter().map(|e| e.expires_at).collect();
        let message_ts: Vec<i64> = merged.iter().map(|e| e.message_ts).collect();
        // The later deadline wins, 0 (never) over any; the later parent time wins.
        self.execute(
            "INSERT INTO wa_msg_secrets \
                 (account, chat, sender, msg_id, secret, expires_at, message_ts) \
             SELECT $1::text, chat, sender, msg_id, secret, expires_at, message_ts \
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::bytea[], $6::int8[], $7::int8[]) \
                 AS t(chat, sender, msg_id, secret, expires_at, message_ts) \
             ON CONFLICT (account, chat, sender, msg_id) DO UPDATE SET secret = EXCLUDED.secret, \
                 expires_at = CASE \
                     WHEN wa_msg_secrets.expires_at = 0 OR EXCLUDED.expires_at = 0 THEN 0 \
                     ELSE GREATEST(wa_msg_secrets.expires_at, EXCLUDED.expires_at) END, \
                 message_ts = GREATEST(wa_msg_secrets.message_ts, EXCLUDED.message_ts)",
            &[
                &self.account,
                &chats,
                &senders,
                &ids,
                &secrets,
                &expires,
                &message_ts,
            ],
        )
        .await?;
        Ok(stored)
    }

    async fn get_msg_secret(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<Vec<u8>>> {
        Ok(self
            .get_msg_secret_with_ts(chat, sender, msg_id)
            .await?
            .map(|(secret, _)| secret))
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<(Vec<u8>, i64)>> {
        let row = self
            .query_opt(
                "SELECT secret, message_ts FROM wa_msg_secrets \
                 WHERE account = $1 AND chat = $2 AND sender = $3 AND msg_id = $4",
                &[&self.account, &chat, &sender, &msg_id],
            )
            .await?;
        row.map(|row| Ok((get(&row, 0)?, get(&row, 1)?)))
            .transpose()
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.execute(
            "DELETE FROM wa_msg_secrets \
             WHERE account = $1 AND expires_at <> 0 AND expires_at <= $2",
            &[&self.account, &cutoff_timestamp],
        )
        .await
        .map(count)
    }
}

#[async_trait]
impl DeviceStore for WhatsAppStore {
    async fn save(&self, device: &Device) -> Result<()> {
        let bytes = to_json(device)?;
        self.execute(
            "INSERT INTO wa_devices (account, device) VALUES ($1, $2) \
             ON CONFLICT (account) DO UPDATE SET device = EXCLUDED.device",
            &[&self.account, &bytes],
        )
        .await
        .map(drop)
    }

    async fn load(&self) -> Result<Option<Device>> {
        let Some(row) = self
            .query_opt(
                "SELECT device FROM wa_devices WHERE account = $1",
                &[&self.account],
            )
            .await?
        else {
            return Ok(None);
        };
        let mut device: Device = from_json(get(&row, 0)?)?;
        // Not serialized: what every process starts with, as the SQLite store does.
        device.device_props = Arc::new(DEVICE_PROPS.clone());
        device.client_profile = ClientProfile::web();
        Ok(Some(device))
    }

    async fn exists(&self) -> Result<bool> {
        self.query_bool(
            "SELECT EXISTS (SELECT 1 FROM wa_devices WHERE account = $1)",
            &[&self.account],
        )
        .await
    }

    /// Gives the account a fresh device unless it has one. One device per account,
    /// always id 1.
    async fn create(&self) -> Result<i32> {
        let bytes = to_json(&Device::new())?;
        self.execute(
            "INSERT INTO wa_devices (account, device) VALUES ($1, $2) \
             ON CONFLICT (account) DO NOTHING",
            &[&self.account, &bytes],
        )
        .await?;
        Ok(1)
    }

    async fn resource_report(&self) -> StorageResourceReport {
        // The data lives in the database, not in this process.
        StorageResourceReport {
            memory_bytes: Some(0),
            ..StorageResourceReport::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::testing::database;
    use whatsapp_rust::wacore::store::traits::{Backend, DeviceInfo};

    fn store(pool: &Pool, account: &str) -> WhatsAppStore {
        WhatsAppStore::new(pool.clone(), account)
    }

    /// Runs `sql` with the account as `$1`, for set-ups the traits cannot make.
    async fn raw(pool: &Pool, sql: &str, account: &str) -> u64 {
        let client = pool.get().await.unwrap();
        client.execute(sql, &[&account]).await.unwrap()
    }

    fn secret(
        chat: &str,
        sender: &str,
        id: &str,
        byte: u8,
        expires_at: i64,
        ts: i64,
    ) -> MsgSecretEntry {
        MsgSecretEntry {
            chat: chat.into(),
            sender: sender.into(),
            msg_id: id.into(),
            secret: [byte; 32],
            expires_at,
            message_ts: ts,
        }
    }

    #[test]
    fn is_a_backend() {
        fn backend<T: Backend>() {}
        backend::<WhatsAppStore>();
    }

    #[test]
    fn last_wins_keeps_the_last_of_each_key_in_order() {
        let items = [(1, 'a'), (2, 'b'), (1, 'c'), (3, 'd')];
        let kept: Vec<_> = last_wins(&items, |(key, _)| *key)
            .into_iter()
            .copied()
            .collect();
        assert_eq!(kept, [(2, 'b'), (1, 'c'), (3, 'd')]);
    }

    #[tokio::test]
    async fn identities_and_sessions() {
        let (_server, pool) = database().await;
        let s = store(&pool, "a");
        let alice = "15550000001@s.whatsapp.net";

        assert_eq!(s.load_identity(alice).await.unwrap(), None);
        s.put_identity(alice, [1; 32]).await.unwrap();
        s.put_identity(alice, [2; 32]).await.unwrap();
        assert_eq!(s.load_identity(alice).await.unwrap(), Some([2; 32]));
        s.put_identities_batch(&[
            (alice.into(), [3; 32]),
            ("15550000002:4@s.whatsapp.net".into(), [4; 32]),
            ("15550000002:4@s.whatsapp.net".into(), [5; 32]),
        ])
        .await
        .unwrap();
        assert_eq!(s.load_identity(alice).await.unwrap(), Some([3; 32]));
        assert_eq!(
            s.load_identity("15550000002:4@s.whatsapp.net")
                .await
                .unwrap(),
            Some([5; 32])
        );
        s.delete_identity(alice).await.unwrap();
        assert_eq!(s.load_identity(alice).await.unwrap(), None);

        assert!(s.get_session(alice).await.unwrap().is_none());
        assert!(!s.has_session(alice).await.unwrap());
        s.put_session(alice, b"one").await.unwrap();
        assert!(s.has_session(alice).await.unwrap());
        let bob: Arc<str> = "15550000003:2@s.whatsapp.net".into();
        s.put_sessions_batch(&[
            (alice.into(), Bytes::from_static(b"updated")),
            (bob.clone(), Bytes::from_static(b"first")),
            (bob.clone(), Bytes::from_static(b"second")),
        ])
        .await
        .unwrap();
        assert_eq!(
            s.get_session(alice).await.unwrap().unwrap(),
            Bytes::from_static(b"updated")
        );
        assert_eq!(
            s.get_session(&bob).await.unwrap().unwrap(),
            Bytes::from_static(b"second")
        );
        s.delete_session(&bob).await.unwrap();
        assert!(!s.has_session(&bob).await.unwrap());
    }

    #[tokio::test]
    async fn signal_state_is_found_by_user() {
        let (_server, pool) = database().await;
        let user = "5511999990000";

        let device0 = store(&pool, "device0");
        assert!(!device0.has_signal_state_for_user(user).await.unwrap());
        device0
            .put_session("5511999990000@s.whatsapp.net", b"sess")
            .await
            .unwrap();
        assert!(device0.has_signal_state_for_user(user).await.unwrap());

        // A longer user, or a shorter one, is another user.
        let others = store(&pool, "others");
        others
            .put_session("55119999900001@s.whatsapp.net", b"sess")
            .await
            .unwrap();
        others
            .put_identity("551199999000:3@s.whatsapp.net", [1; 32])
            .await
            .unwrap();
        assert!(!others.has_signal_state_for_user(user).await.unwrap());

        // Another device, by its identity alone.
        let companion = store(&pool, "companion");
        companion
            .put_identity("5511999990000:5@s.whatsapp.net", [7; 32])
            .await
            .unwrap();
        assert!(companion.has_signal_state_for_user(user).await.unwrap());
        assert!(!companion.has_signal_state_for_user("5511").await.unwrap());
    }

    #[tokio::test]
    async fn prekeys_signed_prekeys_and_sender_keys() {
        let (_server, pool) = database().await;
        let s = store(&pool, "a");

        assert_eq!(s.get_max_prekey_id().await.unwrap(), 0);
        s.store_prekey(5, b"five", false).await.unwrap();
        s.store_prekeys_batch(
            &[
                (7, Bytes::from_static(b"seven")),
                (6, Bytes::from_static(b"six")),
                (7, Bytes::from_static(b"seven again")),
            ],
            true,
        )
        .await
        .unwrap();
        assert_eq!(s.get_max_prekey_id().await.unwrap(), 7);
        assert_eq!(
            s.load_prekey(6).await.unwrap(),
            Some(Bytes::from_static(b"six"))
        );
        assert_eq!(
            s.load_prekeys_batch(&[7, 99, 5]).await.unwrap(),
            vec![
                (7, Bytes::from_static(b"seven again")),
                (5, Bytes::from_static(b"five")),
            ]
        );
        let uploaded = "SELECT id FROM wa_prekeys WHERE account = $1 AND uploaded ORDER BY id";
        let ids = |rows: Vec<Row>| rows.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<_>>();
        let client = pool.get().await.unwrap();
        assert_eq!(ids(client.query(uploaded, &[&"a"]).await.unwrap()), [6, 7]);
        // Marking never brings back a key that is gone.
        s.mark_prekeys_uploaded(&[5, 42]).await.unwrap();
        assert_eq!(
            ids(client.query(uploaded, &[&"a"]).await.unwrap()),
            [5, 6, 7]
        );
        assert_eq!(s.load_prekey(42).await.unwrap(), None);
        s.remove_prekey(7).await.unwrap();
        assert_eq!(s.load_prekey(7).await.unwrap(), None);
        assert_eq!(s.get_max_prekey_id().await.unwrap(), 6);

        assert_eq!(s.load_signed_prekey(1).await.unwrap(), None);
        s.store_signed_prekey(2, b"two").await.unwrap();
        s.store_signed_prekey(1, b"one").await.unwrap();
        s.store_signed_prekey(1, b"uno").await.unwrap();
        assert_eq!(
            s.load_signed_prekey(1).await.unwrap(),
            Some(b"uno".to_vec())
        );
        assert_eq!(
            s.load_all_signed_prekeys().await.unwrap(),
            vec![(1, b"uno".to_vec()), (2, b"two".to_vec())]
        );
        s.remove_signed_prekey(1).await.unwrap();
        assert_eq!(s.load_signed_prekey(1).await.unwrap(), None);

        let group = "120363000000000001@g.us::15550000001:0";
        assert_eq!(s.get_sender_key(group).await.unwrap(), None);
        s.put_sender_key(group, b"k1").await.unwrap();
        s.put_sender_keys_batch(&[
            (group.into(), Bytes::from_static(b"k2")),
            ("other".into(), Bytes::from_static(b"o1")),
            ("other".into(), Bytes::from_static(b"o2")),
        ])
        .await
        .unwrap();
        assert_eq!(s.get_sender_key(group).await.unwrap(), Some(b"k2".to_vec()));
        assert_eq!(
            s.get_sender_key("other").await.unwrap(),
            Some(b"o2".to_vec())
        );
        s.delete_sender_key(group).await.unwrap();
        assert_eq!(s.get_sender_key(group).await.unwrap(), None);
    }

    #[tokio::test]
    async fn app_state_keys_versions_and_macs() {
        let (_server, pool) = database().await;
        let s = store(&pool, "a");
        let key = |byte: u8, timestamp: i64| AppStateSyncKey {
            key_data: vec![byte; 32],
            fingerprint: vec![byte, byte],
            timestamp,
        };

        assert!(s.get_sync_key(b"k1").await.unwrap().is_none());
        assert_eq!(s.get_latest_sync_key_id().await.unwrap(), None);
        s.set_sync_key(b"k2", key(2, 20)).await.unwrap();
        s.set_sync_key(b"k1", key(1, 10)).await.unwrap();
        // The key set last, not the highest id.
        assert_eq!(
            s.get_latest_sync_key_id().await.unwrap(),
            Some(b"k1".to_vec())
        );
        let k1 = s.get_sync_key(b"k1").await.unwrap().unwrap();
        assert_eq!(
            (k1.key_data, k1.fingerprint, k1.timestamp),
            (vec![1; 32], vec![1, 1], 10)
        );
        s.set_sync_key(b"k2", key(3, 30)).await.unwrap();
        assert_eq!(
            s.get_latest_sync_key_id().await.unwrap(),
            Some(b"k2".to_vec())
        );
        assert_eq!(s.get_sync_key(b"k2").await.unwrap().unwrap().timestamp, 30);

        let fresh = s.get_version("regular").await.unwrap();
        assert_eq!((fresh.version, fresh.hash), (0, [0; 128]));
        let mut state = HashState {
            version: 9,
            hash: [7; 128],
            mac_mismatch_fatal: true,
            ..HashState::default()
        };
        state.index_value_map.insert("index".into(), vec![1, 2, 3]);
        s.set_version("regular", state).await.unwrap();
        let got = s.get_version("regular").await.unwrap();
        assert_eq!(
            (got.version, got.hash, got.mac_mismatch_fatal),
            (9, [7; 128], true)
        );
        assert_eq!(got.index_value_map.get("index"), Some(&vec![1, 2, 3]));
        assert_eq!(s.get_version("critical_block").await.unwrap().version, 0);

        let mac = |index: u8, value: u8| AppStateMutationMAC {
            index_mac: vec![index; 32],
            value_mac: vec![value],
        };
        s.put_mutation_macs("regular", 1, &[mac(1, 10), mac(2, 20), mac(1, 11)])
            .await
            .unwrap();
        s.put_mutation_macs("critical", 1, &[mac(1, 30)])
            .await
            .unwrap();
        assert_eq!(
            s.get_mutation_mac("regular", &[1; 32]).await.unwrap(),
            Some(vec![11])
        );
        let found = s
            .get_mutation_macs("regular", &[[1; 32], [2; 32], [3; 32]])
            .await
            .unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[&[2; 32]], vec![20]);
        s.delete_mutation_macs("regular", &[vec![1; 32]])
            .await
            .unwrap();
        assert_eq!(s.get_mutation_mac("regular", &[1; 32]).await.unwrap(), None);
        assert_eq!(
            s.get_mutation_mac("regular", &[2; 32]).await.unwrap(),
            Some(vec![20])
        );
        s.clear_mutation_macs("regular").await.unwrap();
        assert_eq!(s.get_mutation_mac("regular", &[2; 32]).await.unwrap(), None);
        assert_eq!(
            s.get_mutation_mac("critical", &[1; 32]).await.unwrap(),
            Some(vec![30])
        );
    }

    #[tokio::test]
    async fn protocol_state() {
        let (_server, pool) = database().await;
        let s = store(&pool, "a");

        // Sender-key devices.
        s.set_sender_key_status("g1", &[("d1", true), ("d2", false)])
            .await
            .unwrap();
        s.set_sender_key_status("g1", &[("d2", false), ("d2", true)])
            .await
            .unwrap();
        s.set_sender_key_status("g2", &[("d1", false)])
            .await
            .unwrap();
        assert_eq!(
            s.get_sender_key_devices("g1").await.unwrap(),
            [("d1".to_owned(), true), ("d2".to_owned(), true)]
        );
        s.delete_sender_key_device_rows(&["d1"]).await.unwrap();
        assert_eq!(
            s.get_sender_key_devices("g1").await.unwrap(),
            [("d2".to_owned(), true)]
        );
        assert!(s.get_sender_key_devices("g2").await.unwrap().is_empty());
        s.set_sender_key_status("g2", &[("d3", true)])
            .await
            .unwrap();
        s.clear_sender_key_devices("g1").await.unwrap();
        assert!(s.get_sender_key_devices("g1").await.unwrap().is_empty());
        assert_eq!(s.get_sender_key_devices("g2").await.unwrap().len(), 1);
        s.clear_all_sender_key_devices().await.unwrap();
        assert!(s.get_sender_key_devices("g2").await.unwrap().is_empty());

        // LID <-> phone number, both ways.
        let mapping = |lid: &str, pn: &str, at: i64| LidPnMappingEntry {
            lid: lid.into(),
            phone_number: pn.into(),
            created_at: at,
            updated_at: at + 1,
            learning_source: "usync".into(),
        };
        assert!(s.get_lid_mapping("100").await.unwrap().is_none());
        s.put_lid_mapping(&mapping("100", "5511", 10))
            .await
            .unwrap();
        let by_lid = s.get_lid_mapping("100").await.unwrap().unwrap();
        assert_eq!(
            (
                by_lid.phone_number.as_str(),
                by_lid.created_at,
                by_lid.updated_at
            ),
            ("5511", 10, 11)
        );
        assert_eq!(by_lid.learning_source, "usync");
        assert_eq!(s.get_pn_mapping("5511").await.unwrap().unwrap().lid, "100");
        s.put_lid_mappings(&[mapping("200", "5511", 5), mapping("100", "5522", 20)])
            .await
            .unwrap();
        assert_eq!(s.get_pn_mapping("5511").await.unwrap().unwrap().lid, "200");
        assert_eq!(s.get_pn_mapping("5522").await.unwrap().unwrap().lid, "100");
        assert_eq!(
            s.get_lid_mapping("100")
                .await
                .unwrap()
                .unwrap()
                .phone_number,
            "5522"
        );
        assert!(s.get_pn_mapping("5533").await.unwrap().is_none());
        // The LID put last is the phone number's, whatever its timestamps.
        s.put_lid_mapping(&mapping("300", "5522", 1)).await.unwrap();
        assert_eq!(s.get_pn_mapping("5522").await.unwrap().unwrap().lid, "300");
        s.put_lid_mapping(&mapping("100", "5522", 20))
            .await
            .unwrap();
        assert_eq!(s.get_pn_mapping("5522").await.unwrap().unwrap().lid, "100");
        let all: Vec<String> = s
            .get_all_lid_mappings()
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.lid)
            .collect();
        assert_eq!(all, ["100", "200", "300"]);

        // Base keys.
        s.save_base_key("addr", "m1", b"base").await.unwrap();
        assert!(s.has_same_base_key("addr", "m1", b"base").await.unwrap());
        assert!(!s.has_same_base_key("addr", "m1", b"other").await.unwrap());
        assert!(!s.has_same_base_key("addr", "m2", b"base").await.unwrap());
        s.save_base_key("addr", "m1", b"newer").await.unwrap();
        assert!(s.has_same_base_key("addr", "m1", b"newer").await.unwrap());
        s.delete_base_key("addr", "m1").await.unwrap();
        assert!(!s.has_same_base_key("addr", "m1", b"newer").await.unwrap());

        // Device lists.
        let list = |user: &str, timestamp: i64, raw_id: Option<u32>| DeviceListRecord {
            user: user.into(),
            devices: vec![
                DeviceInfo::new(0, None),
                DeviceInfo::new(3, Some(2)).with_hosting(true),
            ],
            timestamp,
            phash: Some("2:abc".into()),
            raw_id,
        };
        assert!(s.get_devices("u1").await.unwrap().is_none());
        s.update_device_list(list("u1", 100, Some(77)))
            .await
            .unwrap();
        let got = s.get_devices("u1").await.unwrap().unwrap();
        assert_eq!(
            (
                got.user.as_str(),
                got.timestamp,
                got.phash.as_deref(),
                got.raw_id
            ),
            ("u1", 100, Some("2:abc"), Some(77))
        );
        let devices: Vec<_> = got
            .devices
            .iter()
            .map(|d| (d.device_id, d.key_index, d.is_hosted))
            .collect();
        assert_eq!(devices, [(0, None, false), (3, Some(2), true)]);
        let mut newer = list("u1", 200, None);
        newer.phash = None;
        newer.devices.truncate(1);
        s.update_device_lists(vec![list("u1", 150, Some(1)), newer, list("u2", 300, None)])
            .await
            .unwrap();
        let got = s.get_devices("u1").await.unwrap().unwrap();
        assert_eq!(
            (got.timestamp, got.phash, got.raw_id, got.devices.len()),
            (200, None, None, 1)
        );
        s.delete_devices("u1").await.unwrap();
        assert!(s.get_devices("u1").await.unwrap().is_none());
        assert_eq!(s.get_devices("u2").await.unwrap().unwrap().timestamp, 300);

        // Group metadata.
        let jid = "120363000000000001@g.us";
        assert!(s.get_group_metadata(jid).await.unwrap().is_none());
        s.put_group_metadata(jid, b"blob-v1").await.unwrap();
        s.put_group_metadata(jid, b"blob-v2").await.unwrap();
        assert_eq!(
            s.get_group_metadata(jid).await.unwrap().as_deref(),
            Some(&b"blob-v2"[..])
        );
        s.delete_group_metadata(jid).await.unwrap();
        assert!(s.get_group_metadata(jid).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn tc_tokens() {
        let (_server, pool) = database().await;
        let s = store(&pool, "a");
        let entry =
            |token: &[u8], token_timestamp: i64, sender_timestamp: Option<i64>| TcTokenEntry {
                token: token.to_vec(),
                token_timestamp,
                sender_timestamp,
            };

        // Plain put, get, list, delete.
        assert!(s.get_tc_token("x").await.unwrap().is_none());
        s.put_tc_token("x", &entry(&[1], 10, Some(11)))
            .await
            .unwrap();
        s.put_tc_token("x", &entry(&[2], 12, None)).await.unwrap();
        let x = s.get_tc_token("x").await.unwrap().unwrap();
        assert_eq!(
            (x.token, x.token_timestamp, x.sender_timestamp),
            (vec![2], 12, None)
        );
        assert_eq!(s.get_all_tc_token_jids().await.unwrap(), ["x"]);
        s.delete_tc_token("x").await.unwrap();
        assert!(s.get_tc_token("x").await.unwrap().is_none());

        // A touch makes a placeholder, and never clobbers a real token.
        s.touch_tc_token_sender_timestamp("u1", 1000).await.unwrap();
        let placeholder = s.get_tc_token("u1").await.unwrap().unwrap();
        assert!(placeholder.token.is_empty());
        assert_eq!(placeholder.sender_timestamp, Some(1000));
        s.put_tc_token("u1", &entry(&[7, 8, 9], 2000, None))
            .await
            .unwrap();
        s.touch_tc_token_sender_timestamp("u1", 3000).await.unwrap();
        let merged = s.get_tc_token("u1").await.unwrap().unwrap();
        assert_eq!(
            (
                merged.token,
                merged.token_timestamp,
                merged.sender_timestamp
            ),
            (vec![7, 8, 9], 2000, Some(3000))
        );

        // The sender bucket only moves forward.
        s.touch_tc_token_sender_timestamp("uadv", 5000)
            .await
            .unwrap();
        s.touch_tc_token_sender_timestamp("uadv", 3000)
            .await
            .unwrap();
        let advanced = s.get_tc_token("uadv").await.unwrap().unwrap();
        assert_eq!(advanced.sender_timestamp, Some(5000));

        // A received token keeps the sender bucket, and starts without one.
        s.touch_tc_token_sender_timestamp("u2", 5000).await.unwrap();
        s.store_received_tc_token("u2", &[1, 2, 3], 4000)
            .await
            .unwrap();
        let u2 = s.get_tc_token("u2").await.unwrap().unwrap();
        assert_eq!(
            (u2.token, u2.token_timestamp, u2.sender_timestamp),
            (vec![1, 2, 3], 4000, Some(5000))
        );
        s.store_received_tc_token("u3", &[9], 4000).await.unwrap();
        assert_eq!(
            s.get_tc_token("u3")
                .await
                .unwrap()
                .unwrap()
                .sender_timestamp,
            None
        );

        // Newer wins; a placeholder never blocks the first real token.
        s.store_received_tc_token("c", &[1, 1, 1], 5000)
            .await
            .unwrap();
        s.store_received_tc_token("c", &[2, 2, 2], 3000)
            .await
            .unwrap();
        let c = s.get_tc_token("c").await.unwrap().unwrap();
        assert_eq!((c.token, c.token_timestamp), (vec![1, 1, 1], 5000));
        s.store_received_tc_token("c", &[3, 3, 3], 7000)
            .await
            .unwrap();
        let c = s.get_tc_token("c").await.unwrap().unwrap();
        assert_eq!((c.token, c.token_timestamp), (vec![3, 3, 3], 7000));
        s.touch_tc_token_sender_timestamp("p", 9000).await.unwrap();
        s.store_received_tc_token("p", &[4, 4, 4], 6000)
            .await
            .unwrap();
        let p = s.get_tc_token("p").await.unwrap().unwrap();
        assert_eq!(
            (p.token, p.token_timestamp, p.sender_timestamp),
            (vec![4, 4, 4], 6000, Some(9000))
        );

        // Pruning drops a row only when both windows have passed.
        let prune = store(&pool, "prune");
        prune
            .touch_tc_token_sender_timestamp("recent_ph", 2500)
            .await
            .unwrap();
        prune
            .touch_tc_token_sender_timestamp("stale_ph", 100)
            .await
            .unwrap();
        prune
            .put_tc_token("expired_tok_live_sender", &entry(&[1], 1, Some(2500)))
            .await
            .unwrap();
        prune
            .put_tc_token("orphan_expired", &entry(&[2], 1, None))
            .await
            .unwrap();
        prune
            .put_tc_token("fresh_tok", &entry(&[3], 5000, None))
            .await
            .unwrap();
        assert_eq!(prune.delete_expired_tc_tokens(1000, 2000).await.unwrap(), 2);
        assert_eq!(
            prune.get_all_tc_token_jids().await.unwrap(),
            ["expired_tok_live_sender", "fresh_tok", "recent_ph"]
        );
    }

    #[tokio::test]
    async fn sent_messages() {
        let (_server, pool) = database().await;
        let s = store(&pool, "a");

        s.store_sent_message("chat@g.us", "m1", b"one")
            .await
            .unwrap();
        s.store_sent_message("chat@g.us", "m1", b"uno")
            .await
            .unwrap();
        assert_eq!(
            s.take_sent_message("chat@g.us", "m1").await.unwrap(),
            Some(b"uno".to_vec())
        );
        // Taken once only.
        assert_eq!(s.take_sent_message("chat@g.us", "m1").await.unwrap(), None);

        s.store_sent_message("chat@g.us", "m2", b"two")
            .await
            .unwrap();
        assert_eq!(
            s.delete_expired_sent_messages(now_secs() - 100)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            s.delete_expired_sent_messages(now_secs() + 100)
                .await
                .unwrap(),
            1
        );
        assert_eq!(s.take_sent_message("chat@g.us", "m2").await.unwrap(), None);

        // At the bound: 16 old ones and the rest sharing one second. The old go
        // first, and the store is trimmed, not emptied.
        let full = raw(
            &pool,
            "INSERT INTO wa_sent_messages (account, chat_jid, message_id, payload, created_at) \
             SELECT $1::text, 'chat@g.us', 'm' || n, '\\x00'::bytea, \
                 CASE WHEN n < 16 THEN 500 ELSE 1000 END \
             FROM generate_series(0, 4095) AS n",
            "a",
        )
        .await;
        assert_eq!(full, MAX_SENT_MESSAGES as u64);
        // The bound is checked at a store's first sent message, then every
        // SENT_MESSAGES_CHECK_EVERY: a store opened now checks it at once.
        let s = store(&pool, "a");
        s.store_sent_message("chat@g.us", "trigger", b"payload")
            .await
            .unwrap();
        let left = sent_rows(&pool, "a").await;
        assert_eq!(left, SENT_MESSAGES_KEPT + 1);
        for i in 0..16 {
            assert_eq!(
                s.take_sent_message("chat@g.us", &format!("m{i}"))
                    .await
                    .unwrap(),
                None,
                "m{i} is among the oldest"
            );
        }
        assert!(
            s.take_sent_message("chat@g.us", "trigger")
                .await
                .unwrap()
                .is_some()
        );
    }

    /// How many sent messages the account `account` keeps.
    async fn sent_rows(pool: &Pool, account: &str) -> i64 {
        let client = pool.get().await.unwrap();
        client
            .query_one(
                "SELECT count(*) FROM wa_sent_messages WHERE account = $1",
                &[&account],
            )
            .await
            .unwrap()
            .get(0)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sends_at_once_at_the_bound_all_store_their_message() {
        let (_server, pool) = database().await;
        let s = store(&pool, "a");
        raw(
            &pool,
            "INSERT INTO wa_sent_messages (account, chat_jid, message_id, payload, created_at) \
             SELECT $1::text, 'chat@g.us', 'm' || n, '\\x00'::bytea, 1000 \
             FROM generate_series(0, 4095) AS n",
            "a",
        )
        .await;
        // Sixteen sends at a time, as a busy account makes them, all in the same
        // second as the stored ones: none fails (two trims of the oldest at once,
        // each picking its own of the rows tied for oldest, would deadlock).
        for round in 0..4 {
            let stores = (0..16).map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.store_sent_message("chat@g.us", &format!("new{round}-{i}"), b"p")
                        .await
                })
            });
            for stored in futures_util::future::join_all(stores).await {
                stored.unwrap().unwrap();
            }
        }
        let left = sent_rows(&pool, "a").await;
        assert!(left < MAX_SENT_MESSAGES, "trimmed: {left}");
        for round in 0..4 {
            for i in 0..16 {
                let id = format!("new{round}-{i}");
                assert!(
                    s.take_sent_message("chat@g.us", &id)
                        .await
                        .unwrap()
                        .is_some(),
                    "{id} kept"
                );
            }
        }
    }

    #[tokio::test]
    async fn pending_inbound() {
        let (_server, pool) = database().await;
        let s = store(&pool, "a");

        assert_eq!(s.get_pending_inbound("c", "s", "1").await.unwrap(), None);
        s.store_pending_inbound("c", "s", "1", b"first")
            .await
            .unwrap();
        s.store_pending_inbound("c", "s", "1", b"again")
            .await
            .unwrap();
        assert_eq!(
            s.get_pending_inbound("c", "s", "1").await.unwrap(),
            Some(b"again".to_vec())
        );
        // The same stanza id from another sender is another message.
        assert_eq!(s.get_pending_inbound("c", "t", "1").await.unwrap(), None);
        s.delete_pending_inbound("c", "s", "1").await.unwrap();
        assert_eq!(s.get_pending_inbound("c", "s", "1").await.unwrap(), None);

        let row = |chat, sender, id, message: &'static [u8]| PendingInboundRow {
            chat,
            sender,
            id,
            message,
        };
        s.store_pending_inbound_batch(&[
            row("c", "s", "2", b"two"),
            row("c", "s", "3", b"three"),
            row("c", "s", "2", b"two again"),
            row("d", "s", "2", b"other chat"),
        ])
        .await
        .unwrap();
        assert_eq!(
            s.get_pending_inbound("c", "s", "2").await.unwrap(),
            Some(b"two again".to_vec())
        );
        s.delete_pending_inbound_batch(&[
            PendingInboundKey {
                chat: "c",
                sender: "s",
                id: "2",
            },
            PendingInboundKey {
                chat: "c",
                sender: "s",
                id: "missing",
            },
        ])
        .await
        .unwrap();
        assert_eq!(s.get_pending_inbound("c", "s", "2").await.unwrap(), None);
        assert!(
            s.get_pending_inbound("c", "s", "3")
                .await
                .unwrap()
                .is_some()
        );

        assert_eq!(
            s.delete_expired_pending_inbound(now_secs() - 100)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            s.delete_expired_pending_inbound(now_secs() + 100)
                .await
                .unwrap(),
            2
        );
        assert_eq!(s.get_pending_inbound("d", "s", "2").await.unwrap(), None);
    }

    #[tokio::test]
    async fn msg_secrets() {
        let (_server, pool) = database().await;
        let s = store(&pool, "a");

        // Round trip and miss.
        s.put_msg_secret("12345@s.whatsapp.net", "9999@lid", "MID1", &[7; 32])
            .await
            .unwrap();
        assert_eq!(
            s.get_msg_secret("12345@s.whatsapp.net", "9999@lid", "MID1")
                .await
                .unwrap(),
            Some(vec![7; 32])
        );
        assert_eq!(
            s.get_msg_secret("12345@s.whatsapp.net", "9999@lid", "MID2")
                .await
                .unwrap(),
            None
        );

        // Keyed by all three columns.
        for (chat, sender, id, byte) in [
            ("chatA", "senderX", "M1", 1),
            ("chatA", "senderX", "M2", 2),
            ("chatA", "senderY", "M1", 3),
            ("chatB", "senderX", "M1", 4),
        ] {
            s.put_msg_secret(chat, sender, id, &[byte; 32])
                .await
                .unwrap();
        }
        for (chat, sender, id, byte) in [
            ("chatA", "senderX", "M1", 1),
            ("chatA", "senderX", "M2", 2),
            ("chatA", "senderY", "M1", 3),
            ("chatB", "senderX", "M1", 4),
        ] {
            assert_eq!(
                s.get_msg_secret(chat, sender, id).await.unwrap(),
                Some(vec![byte; 32])
            );
        }

        // A batch repeating a key: every entry counts, the last secret wins.
        let stored = s
            .put_msg_secrets(vec![
                secret("chat", "sender", "M1", 1, 0, 0),
                secret("chat", "sender", "M2", 2, 0, 0),
                secret("chat", "sender", "M1", 9, 0, 0),
            ])
            .await
            .unwrap();
        assert_eq!(stored, 3);
        assert_eq!(
            s.get_msg_secret("chat", "sender", "M1").await.unwrap(),
            Some(vec![9; 32])
        );
        assert_eq!(
            s.get_msg_secret("chat", "sender", "M2").await.unwrap(),
            Some(vec![2; 32])
        );
        s.put_msg_secret("chat", "sender", "M2", &[8; 32])
            .await
            .unwrap();
        assert_eq!(
            s.get_msg_secret("chat", "sender", "M2").await.unwrap(),
            Some(vec![8; 32])
        );

        // Only passed deadlines are deleted; 0 is never.
        let now = now_secs();
        s.put_msg_secrets(vec![
            secret("c", "s", "OLD", 1, now - 86_400 * 30, 0),
            secret("c", "s", "SOON", 2, now + 86_400, 0),
        ])
        .await
        .unwrap();
        s.put_msg_secret("c", "s", "NEVER", &[3; 32]).await.unwrap();
        assert_eq!(
            s.delete_expired_msg_secrets(now - 86_400 * 14)
                .await
                .unwrap(),
            1
        );
        assert_eq!(s.get_msg_secret("c", "s", "OLD").await.unwrap(), None);
        assert!(s.get_msg_secret("c", "s", "SOON").await.unwrap().is_some());
        assert!(s.get_msg_secret("c", "s", "NEVER").await.unwrap().is_some());

        // On conflict the later deadline and the known parent time stay.
        s.put_msg_secrets(vec![secret("c", "s", "W", 1, 1_000, 700)])
            .await
            .unwrap();
        s.put_msg_secrets(vec![secret("c", "s", "W", 2, 500, 0)])
            .await
            .unwrap();
        assert_eq!(
            s.get_msg_secret_with_ts("c", "s", "W").await.unwrap(),
            Some((vec![2; 32], 700))
        );
        assert_eq!(s.delete_expired_msg_secrets(999).await.unwrap(), 0);
        s.put_msg_secrets(vec![secret("c", "s", "W", 3, 0, 800)])
            .await
            .unwrap();
        assert_eq!(
            s.delete_expired_msg_secrets(now + 86_400 * 365)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            s.get_msg_secret_with_ts("c", "s", "W").await.unwrap(),
            Some((vec![3; 32], 800)),
            "a deadline of 0 (never) wins over any other"
        );
        // Repeats within one batch merge the same way.
        s.put_msg_secrets(vec![
            secret("c", "s", "B", 1, 2_000, 5),
            secret("c", "s", "B", 2, 1_000, 0),
        ])
        .await
        .unwrap();
        assert_eq!(
            s.get_msg_secret_with_ts("c", "s", "B").await.unwrap(),
            Some((vec![2; 32], 5))
        );
        assert_eq!(s.delete_expired_msg_secrets(1_999).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn device_save_and_load() {
        let (_server, pool) = database().await;
        let s = store(&pool, "a");

        assert!(!s.exists().await.unwrap());
        assert!(s.load().await.unwrap().is_none());
        assert_eq!(s.create().await.unwrap(), 1);
        assert!(s.exists().await.unwrap());
        let created = s.load().await.unwrap().unwrap();
        // A second create keeps the device.
        assert_eq!(s.create().await.unwrap(), 1);
        let again = s.load().await.unwrap().unwrap();
        assert_eq!(again.registration_id, created.registration_id);
        assert_eq!(again.adv_secret_key, created.adv_secret_key);

        let mut device = created.clone();
        device.push_name = "Alice".into();
        device.next_pre_key_id = 812;
        device.lid_migrated = true;
        s.save(&device).await.unwrap();
        let loaded = s.load().await.unwrap().unwrap();
        assert_eq!(loaded.push_name, "Alice");
        assert_eq!(loaded.next_pre_key_id, 812);
        assert!(loaded.lid_migrated);
        assert_eq!(
            loaded.signed_pre_key_signature,
            device.signed_pre_key_signature
        );
        assert_eq!(
            loaded.identity_key.public_key.public_key_bytes(),
            device.identity_key.public_key.public_key_bytes()
        );
        assert_eq!(
            loaded.identity_key.private_key.serialize(),
            device.identity_key.private_key.serialize()
        );
        assert_eq!(loaded.device_props.os.as_deref(), Some("rust"));
        assert_eq!(s.resource_report().await.memory_bytes, Some(0));
    }

    #[tokio::test]
    async fn accounts_do_not_see_each_other() {
        let (_server, pool) = database().await;
        let a = store(&pool, "a");
        let b = store(&pool, "b");
        let jid = "15550000001@s.whatsapp.net";

        a.create().await.unwrap();
        a.put_identity(jid, [1; 32]).await.unwrap();
        a.put_session(jid, b"session").await.unwrap();
        a.store_prekey(9, b"nine", false).await.unwrap();
        a.set_sync_key(b"k", AppStateSyncKey::default())
            .await
            .unwrap();
        a.set_sender_key_status("g", &[("d", true)]).await.unwrap();
        a.put_tc_token(
            jid,
            &TcTokenEntry {
                token: vec![1],
                token_timestamp: 1,
                sender_timestamp: None,
            },
        )
        .await
        .unwrap();
        a.store_sent_message("chat", "m", b"p").await.unwrap();
        a.store_pending_inbound("c", "s", "i", b"m").await.unwrap();
        a.put_msg_secret("c", "s", "i", &[1; 32]).await.unwrap();

        assert!(!b.exists().await.unwrap());
        assert!(b.load().await.unwrap().is_none());
        assert_eq!(b.load_identity(jid).await.unwrap(), None);
        assert!(b.get_session(jid).await.unwrap().is_none());
        assert!(!b.has_signal_state_for_user("15550000001").await.unwrap());
        assert_eq!(b.get_max_prekey_id().await.unwrap(), 0);
        assert_eq!(b.get_latest_sync_key_id().await.unwrap(), None);
        assert!(b.get_sender_key_devices("g").await.unwrap().is_empty());
        assert!(b.get_all_tc_token_jids().await.unwrap().is_empty());
        assert_eq!(b.take_sent_message("chat", "m").await.unwrap(), None);
        assert_eq!(b.get_pending_inbound("c", "s", "i").await.unwrap(), None);
        assert_eq!(b.get_msg_secret("c", "s", "i").await.unwrap(), None);

        // Sweeps and clears in one account leave the other alone.
        let future = now_secs() + 100;
        b.clear_all_sender_key_devices().await.unwrap();
        assert_eq!(b.delete_expired_sent_messages(future).await.unwrap(), 0);
        assert_eq!(b.delete_expired_pending_inbound(future).await.unwrap(), 0);
        assert_eq!(b.delete_expired_tc_tokens(future, future).await.unwrap(), 0);
        b.create().await.unwrap();
        b.put_identity(jid, [2; 32]).await.unwrap();

        assert_eq!(a.load_identity(jid).await.unwrap(), Some([1; 32]));
        assert_eq!(b.load_identity(jid).await.unwrap(), Some([2; 32]));
        assert_ne!(
            a.load().await.unwrap().unwrap().registration_id,
            b.load().await.unwrap().unwrap().registration_id
        );
        assert_eq!(a.get_sender_key_devices("g").await.unwrap().len(), 1);
        assert_eq!(a.get_all_tc_token_jids().await.unwrap(), [jid]);
        assert!(a.take_sent_message("chat", "m").await.unwrap().is_some());
        assert!(
            a.get_pending_inbound("c", "s", "i")
                .await
                .unwrap()
                .is_some()
        );
        assert!(a.get_msg_secret("c", "s", "i").await.unwrap().is_some());

        // Forgetting one account deletes all of its rows, and only its.
        a.forget().await.unwrap();
        let client = pool.get().await.unwrap();
        for table in TABLES {
            let left: i64 = client
                .query_one(
                    &format!("SELECT count(*) FROM {table} WHERE account = 'a'"),
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(left, 0, "{table}");
        }
        assert!(!a.exists().await.unwrap());
        assert_eq!(b.load_identity(jid).await.unwrap(), Some([2; 32]));
        assert!(b.exists().await.unwrap());
    }

    #[tokio::test]
    async fn a_sweep_keeps_the_accounts_listed_only() {
        let (_server, pool) = database().await;
        for account in ["a", "b", "c"] {
            let store = store(&pool, account);
            store.create().await.unwrap();
            store
                .put_identity("1@s.whatsapp.net", [1; 32])
                .await
                .unwrap();
        }
        // Only b is listed; an outbox row of c goes with its session.
        let client = pool.get().await.unwrap();
        client
            .batch_execute(
                "INSERT INTO wa_accounts (id, folder, created_at) VALUES ('b', '', 1);
                 INSERT INTO wa_webhook_done (account, event_id, done_at) VALUES ('c', 'e', 1);
                 INSERT INTO wa_contacts (account, jid, updated_at) VALUES ('c', 'x', 1);
                 INSERT INTO wa_contacts (account, jid, updated_at) VALUES ('b', 'x', 1);",
            )
            .await
            .unwrap();
        let gone = forget_unlisted(&pool).await.unwrap();
        assert_eq!(gone, 2);
        let done: i64 = client
            .query_one("SELECT count(*) FROM wa_webhook_done", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(done, 0);
        let contacts: Vec<String> = client
            .query("SELECT account FROM wa_contacts", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(contacts, ["b"], "messages go with their session");
        assert!(!store(&pool, "a").exists().await.unwrap());
        assert!(!store(&pool, "c").exists().await.unwrap());
        let kept = store(&pool, "b");
        assert!(kept.exists().await.unwrap());
        assert_eq!(
            kept.load_identity("1@s.whatsapp.net").await.unwrap(),
            Some([1; 32])
        );
        assert_eq!(
            store(&pool, "a")
                .load_identity("1@s.whatsapp.net")
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn every_table_of_the_schema_is_forgotten() {
        let (_server, pool) = database().await;
        let client = pool.get().await.unwrap();
        let rows = client
            .query(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = 'public' AND table_name LIKE 'wa\\_%' ORDER BY 1",
                &[],
            )
            .await
            .unwrap();
        let mut found: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        // The registry's tables are not forgotten with an account: they list the
        // accounts themselves (a removed one's row goes through the registry), and
        // are shared by every server on the database, not data of one account.
        let mut listed: Vec<String> = TABLES
            .iter()
            .chain(crate::postgres::outbox::OUTBOX_TABLES)
            .chain(crate::postgres::messages::MESSAGE_TABLES)
            .chain(crate::postgres::registry::REGISTRY_TABLES)
            .chain(crate::postgres::leases::SERVER_TABLES)
            .map(|t| t.to_string())
            .collect();
        found.sort();
        listed.sort();
        assert_eq!(
            found, listed,
            "TABLES, OUTBOX_TABLES, MESSAGE_TABLES, REGISTRY_TABLES and SERVER_TABLES list the schema's tables"
        );
    }
}
