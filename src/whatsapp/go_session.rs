//! Imports the Go server's WhatsApp session (whatsmeow's SQLite store) into this
//! server's own store, so a Go user switches without scanning a QR code again.
//!
//! The Go file is opened read-only and never changed: going back to the Go server
//! keeps working (as long as both never run at once). Everything a linked device is
//! made of comes over: its keys and identity, the one-time prekeys it uploaded, the
//! Signal sessions and group sender keys (whatsmeow keeps them as Go JSON; they are
//! transcoded field by field into whatsapp-rust's records, so contacts' next messages
//! decrypt without a retry), peer identities, app-state keys, versions and MACs, the
//! LID map and the NCT salt.
//!
//! The import is written to a scratch file beside the target and renamed into place
//! only when complete, so a crash half way leaves no half store behind.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension};
use serde::Deserialize;
use whatsapp_rust::Jid;
use whatsapp_rust::store::SqliteStore;
use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::libsignal::protocol::{
    KeyPair, PendingKeyExchangeComponents, PendingPreKeyComponents, PrivateKey,
    SenderChainKeyComponents, SenderKeyRecord, SenderKeyRecordComponents, SenderKeyStateComponents,
    SenderMessageKeyComponents, SenderSigningKeyComponents, SessionChainComponents,
    SessionChainKeyComponents, SessionComponents, SessionMessageKeyComponents,
    SessionMessageKeyMaterial, SessionRecord, SessionRecordComponents,
};
use whatsapp_rust::wacore::libsignal::store::record_helpers::encode_pre_key_record_to;
use whatsapp_rust::wacore::store::Device;
use whatsapp_rust::wacore::store::traits::{
    AppStateSyncKey, Backend, DeviceStore, LidPnMappingEntry,
};
use whatsapp_rust::wacore::types::jid::JidExt;
use whatsapp_rust::waproto::whatsapp as wa;

/// whatsmeow schema versions whose tables this import reads. Version 15 is
/// whatsmeow's current one (2026); from version 8 on, every table this import
/// reads has the columns it needs (`lid` is read when present).
pub const KNOWN_VERSIONS: std::ops::RangeInclusive<i64> = 8..=15;

/// Why a Go session file was not imported. Nothing was changed either way.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(
        "{path} is a whatsmeow database of schema version {version}, which this server \
         does not know (it imports versions 8 to 15); it is left untouched. Run a Go \
         server version that upgrades it, or remove the device and pair again"
    )]
    UnknownVersion { path: String, version: i64 },
    #[error(
        "{path} is damaged or half-written ({why}); it is left untouched. Restore it \
         from a backup, or move it away to pair this server anew"
    )]
    Damaged { path: String, why: String },
    #[error("{path} holds no paired device: there is no session to import")]
    NoDevice { path: String },
    /// In use by a running Go server.
    #[error(transparent)]
    StillOpen(crate::storage::ForeignError),
    #[error("cannot write the imported session to {path}: {why}")]
    Write { path: String, why: String },
}

/// One whatsmeow device row, its keys in whatsmeow's encoding.
#[derive(Debug, Clone)]
pub struct GoDevice {
    pub jid: String,
    pub lid: Option<String>,
    pub registration_id: u32,
    pub noise_key: Vec<u8>,
    pub identity_key: Vec<u8>,
    pub signed_pre_key: Vec<u8>,
    pub signed_pre_key_id: u32,
    pub signed_pre_key_sig: Vec<u8>,
    pub adv_key: Vec<u8>,
    pub adv_details: Vec<u8>,
    pub adv_account_sig: Vec<u8>,
    /// NULL in files upgraded from old whatsmeow versions.
    pub adv_account_sig_key: Option<Vec<u8>>,
    pub adv_device_sig: Vec<u8>,
    pub push_name: String,
    pub lid_migrated: bool,
}

/// Everything read from the Go file for one device, converted to whatsapp-rust's
/// encodings and ready to write.
pub struct GoSession {
    pub device: Device,
    pub jid: String,
    /// The other devices in the file (Go v8+ hosts several); not imported yet.
    pub others: Vec<String>,
    prekeys: Vec<(u32, Bytes, bool)>,
    identities: Vec<(Arc<str>, [u8; 32])>,
    sessions: Vec<(Arc<str>, Bytes)>,
    sender_keys: Vec<(Arc<str>, Bytes)>,
    sync_keys: Vec<(Vec<u8>, AppStateSyncKey)>,
    versions: Vec<(String, HashState, Vec<AppStateMutationMAC>)>,
    lid_map: Vec<LidPnMappingEntry>,
    /// People the account knows (phone-number JID, name saved on the phone, push
    /// name), for the message store's contacts.
    pub contacts: Vec<(String, Option<String>, Option<String>)>,
    /// Rows that could not be converted (kept out; WhatsApp's retries rebuild them).
    pub skipped: usize,
}

/// What an import brought over, for the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub prekeys: usize,
    pub identities: usize,
    pub sessions: usize,
    pub sender_keys: usize,
    pub app_state_keys: usize,
    pub app_state_versions: usize,
    pub lid_mappings: usize,
    pub contacts: usize,
    pub skipped: usize,
}

impl GoSession {
    pub fn counts(&self) -> ImportCounts {
        ImportCounts {
            prekeys: self.prekeys.len(),
            identities: self.identities.len(),
            sessions: self.sessions.len(),
            sender_keys: self.sender_keys.len(),
            app_state_keys: self.sync_keys.len(),
            app_state_versions: self.versions.len(),
            lid_mappings: self.lid_map.len(),
            contacts: self.contacts.len(),
            skipped: self.skipped,
        }
    }

    /// The key an import is remembered by: the device's JID and its noise key, so a
    /// device paired anew under the same number is a new import.
    pub fn import_key(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.device.noise_key.public_key.public_key_bytes());
        format!("{}#{}", self.jid, hex::encode(&digest[..8]))
    }
}

/// Opens a whatsmeow file for reading (see [`crate::storage::open_foreign`]) after
/// checking it is whole.
fn open_checked(path: &Path, scratch: &Path) -> Result<crate::storage::Foreign, ImportError> {
    use crate::storage::ForeignError;
    let shown = path.display().to_string();
    let damaged = |why: String| ImportError::Damaged {
        path: shown.clone(),
        why,
    };
    let view = crate::storage::open_foreign(path, scratch).map_err(|e| match e {
        in_use @ ForeignError::InUse { .. } => ImportError::StillOpen(in_use),
        ForeignError::Copy { source, .. } => ImportError::Write {
            path: shown.clone(),
            why: format!("cannot copy it to read it: {source}"),
        },
        ForeignError::Sql { source, .. } => damaged(source.to_string()),
    })?;
    let check: String = view
        .conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| damaged(e.to_string()))?;
    if check != "ok" {
        return Err(damaged(check));
    }
    Ok(view)
}

/// Reads the first device of the whatsmeow file at `path` (blocking). With Go's
/// `--db-keys-uri`, its Signal tables (prekeys, identities, sessions, sender keys)
/// are read from `keys_path` instead.
pub fn read(
    path: &Path,
    keys_path: Option<&Path>,
    scratch: &Path,
) -> Result<GoSession, ImportError> {
    let view = open_checked(path, scratch)?;
    let keys = keys_path.map(|k| open_checked(k, scratch)).transpose()?;
    read_from(
        &view.conn,
        keys.as_ref().map(|k| &k.conn),
        &path.display().to_string(),
    )
}

/// Reads the first device of the whatsmeow tables in `conn` (blocking); `shown`
/// names where they come from in errors.
pub fn read_from(
    conn: &Connection,
    keys: Option<&Connection>,
    shown: &str,
) -> Result<GoSession, ImportError> {
    let damaged = |e: rusqlite::Error| ImportError::Damaged {
        path: shown.to_owned(),
        why: e.to_string(),
    };
    let version: i64 = conn
        .query_row("SELECT version FROM whatsmeow_version LIMIT 1", [], |r| {
            r.get(0)
        })
        .map_err(damaged)?;
    if !KNOWN_VERSIONS.contains(&version) {
        return Err(ImportError::UnknownVersion {
            path: shown.to_owned(),
            version,
        });
    }
    let mut devices = read_devices(conn).map_err(damaged)?;
    if devices.is_empty() {
        return Err(ImportError::NoDevice {
            path: shown.to_owned(),
        });
    }
    let first = devices.remove(0);
    let others = devices.into_iter().map(|d| d.jid).collect();
    convert(conn, keys.unwrap_or(conn), first, others).map_err(|why| ImportError::Damaged {
        path: shown.to_owned(),
        why,
    })
}

fn has_table(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(1))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(names.iter().any(|n| n == column))
}

fn read_devices(conn: &Connection) -> rusqlite::Result<Vec<GoDevice>> {
    let lid = if has_column(conn, "whatsmeow_device", "lid")? {
        "lid"
    } else {
        "NULL"
    };
    let migrated = if has_column(conn, "whatsmeow_device", "lid_migration_ts")? {
        "lid_migration_ts"
    } else {
        "0"
    };
    let sql = format!(
        "SELECT jid, {lid}, registration_id, noise_key, identity_key, signed_pre_key, \
         signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details, adv_account_sig, \
         adv_account_sig_key, adv_device_sig, push_name, {migrated} \
         FROM whatsmeow_device ORDER BY rowid"
    );
    let mut stmt = conn.prepare(&sql)?;
    stmt.query_map([], |r| {
        Ok(GoDevice {
            jid: r.get(0)?,
            lid: r.get::<_, Option<String>>(1)?.filter(|l| !l.is_empty()),
            // whatsmeow writes the full uint32 into a BIGINT.
            registration_id: r.get::<_, i64>(2)? as u32,
            noise_key: r.get(3)?,
            identity_key: r.get(4)?,
            signed_pre_key: r.get(5)?,
            signed_pre_key_id: r.get::<_, i64>(6)? as u32,
            signed_pre_key_sig: r.get(7)?,
            adv_key: r.get(8)?,
            adv_details: r.get(9)?,
            adv_account_sig: r.get(10)?,
            adv_account_sig_key: r.get(11)?,
            adv_device_sig: r.get(12)?,
            push_name: r.get::<_, Option<String>>(13)?.unwrap_or_default(),
            lid_migrated: r.get::<_, Option<i64>>(14)?.unwrap_or(0) > 0,
        })
    })?
    .collect()
}

/// A key pair from whatsmeow's 32-byte private key (the public half is derived).
fn key_pair(private: &[u8], what: &str) -> Result<KeyPair, String> {
    let key = PrivateKey::deserialize(private).map_err(|e| format!("{what}: {e}"))?;
    KeyPair::try_from(key).map_err(|e| format!("{what}: {e}"))
}

fn array<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N], String> {
    bytes
        .try_into()
        .map_err(|_| format!("{what} is {} bytes, not {N}", bytes.len()))
}

fn parse_jid(text: &str, what: &str) -> Result<Jid, String> {
    text.parse::<Jid>()
        .map_err(|e| format!("{what} {text:?} is not a JID: {e}"))
}

/// Builds whatsapp-rust's device from whatsmeow's row.
fn device(go: &GoDevice) -> Result<Device, String> {
    let mut device = Device::new();
    device.pn = Some(parse_jid(&go.jid, "the device JID")?);
    device.lid = match &go.lid {
        Some(lid) => Some(parse_jid(lid, "the device LID")?),
        None => None,
    };
    device.registration_id = go.registration_id;
    device.noise_key = key_pair(&go.noise_key, "the noise key")?;
    device.identity_key = key_pair(&go.identity_key, "the identity key")?;
    device.signed_pre_key = key_pair(&go.signed_pre_key, "the signed prekey")?;
    device.signed_pre_key_id = go.signed_pre_key_id;
    device.signed_pre_key_signature = array(&go.signed_pre_key_sig, "the prekey signature")?;
    device.adv_secret_key = array(&go.adv_key, "the ADV secret")?;
    device.account = Some(Arc::new(wa::ADVSignedDeviceIdentity {
        details: Some(go.adv_details.clone()),
        account_signature_key: go.adv_account_sig_key.clone(),
        account_signature: Some(go.adv_account_sig.clone()),
        device_signature: Some(go.adv_device_sig.clone()),
    }));
    device.push_name = go.push_name.clone();
    device.lid_migrated = go.lid_migrated;
    // whatsmeow's one-time prekeys are on WhatsApp's servers already.
    device.server_has_prekeys = true;
    // No cached server certificate: the first login is a full (XX) handshake, as
    // whatsmeow's always are.
    device.server_cert_chain = None;
    device.edge_routing_info = None;
    Ok(device)
}

/// whatsmeow's Signal address (`user[_agent]:device`) as whatsapp-rust's
/// (`user[:device]@server.0`); `None` for an agent this server does not know.
pub fn signal_address(go: &str) -> Option<String> {
    let (name, device) = go.rsplit_once(':')?;
    let device: u16 = device.parse().ok()?;
    let (user, server) = match name.rsplit_once('_') {
        None => (name, "s.whatsapp.net"),
        Some((user, "1")) => (user, "lid"),
        Some((user, "128")) => (user, "hosted"),
        Some((user, "129")) => (user, "hosted.lid"),
        Some(_) => return None,
    };
    if user.is_empty() || !user.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let text = if device == 0 {
        format!("{user}@{server}")
    } else {
        format!("{user}:{device}@{server}")
    };
    let jid: Jid = text.parse().ok()?;
    Some(jid.to_protocol_address_string())
}

fn convert(
    conn: &Connection,
    keys: &Connection,
    go: GoDevice,
    others: Vec<String>,
) -> Result<GoSession, String> {
    let sql_err = |e: rusqlite::Error| e.to_string();
    let device = device(&go)?;
    let jid = go.jid.clone();
    let mut skipped = 0;

    let mut prekeys = Vec::new();
    {
        let mut stmt = keys
            .prepare("SELECT key_id, key, uploaded FROM whatsmeow_pre_keys WHERE jid = ?1")
            .map_err(sql_err)?;
        let rows = stmt
            .query_map([&jid], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, bool>(2)?,
                ))
            })
            .map_err(sql_err)?;
        for row in rows {
            let (id, key, uploaded) = row.map_err(sql_err)?;
            match key_pair(&key, "a prekey") {
                Ok(pair) => {
                    let mut record = Vec::new();
                    encode_pre_key_record_to(id as u32, &pair, &mut record);
                    prekeys.push((id as u32, Bytes::from(record), uploaded));
                }
                Err(_) => skipped += 1,
            }
        }
    }

    let mut identities = Vec::new();
    for (their_id, key) in rows_of(
        keys,
        "SELECT their_id, identity FROM whatsmeow_identity_keys WHERE our_jid = ?1",
        &jid,
    )? {
        match (
            signal_address(&their_id),
            <[u8; 32]>::try_from(key.as_slice()),
        ) {
            (Some(address), Ok(key)) => identities.push((Arc::from(address), key)),
            _ => skipped += 1,
        }
    }

    let mut sessions = Vec::new();
    for (their_id, json) in rows_of(
        keys,
        "SELECT their_id, session FROM whatsmeow_sessions WHERE our_jid = ?1",
        &jid,
    )? {
        let record = signal_address(&their_id).zip(transcode_session(&json).ok());
        match record {
            Some((address, record)) => sessions.push((Arc::from(address), Bytes::from(record))),
            None => {
                tracing::warn!(
                    "a Signal session of the Go server could not be converted; WhatsApp's retries will rebuild it"
                );
                skipped += 1;
            }
        }
    }

    let mut sender_keys = Vec::new();
    {
        let mut stmt = keys
            .prepare(
                "SELECT chat_id, sender_id, sender_key FROM whatsmeow_sender_keys \
                 WHERE our_jid = ?1",
            )
            .map_err(sql_err)?;
        let rows = stmt
            .query_map([&jid], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(sql_err)?;
        for row in rows {
            let (chat, sender, json) = row.map_err(sql_err)?;
            let converted = signal_address(&sender).zip(transcode_sender_key(&json).ok());
            match converted {
                Some((sender, record)) => {
                    sender_keys.push((Arc::from(format!("{chat}:{sender}")), Bytes::from(record)))
                }
                None => skipped += 1,
            }
        }
    }

    let mut sync_keys = Vec::new();
    {
        let mut stmt = conn
            .prepare(
                "SELECT key_id, key_data, timestamp, fingerprint \
                 FROM whatsmeow_app_state_sync_keys WHERE jid = ?1",
            )
            .map_err(sql_err)?;
        let rows = stmt
            .query_map([&jid], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    AppStateSyncKey {
                        key_data: r.get(1)?,
                        timestamp: r.get(2)?,
                        fingerprint: r.get(3)?,
                    },
                ))
            })
            .map_err(sql_err)?;
        for row in rows {
            sync_keys.push(row.map_err(sql_err)?);
        }
    }

    let mut versions = Vec::new();
    {
        let mut stmt = conn
            .prepare("SELECT name, version, hash FROM whatsmeow_app_state_version WHERE jid = ?1")
            .map_err(sql_err)?;
        let rows = stmt
            .query_map([&jid], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(sql_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql_err)?;
        for (name, version, hash) in rows {
            let Ok(hash) = <[u8; 128]>::try_from(hash.as_slice()) else {
                skipped += 1;
                continue;
            };
            // The newest MAC of each index, as whatsmeow reads them; versions and
            // MACs come over together or not at all.
            let mut macs: HashMap<Vec<u8>, (i64, Vec<u8>)> = HashMap::new();
            let mut stmt = conn
                .prepare(
                    "SELECT version, index_mac, value_mac FROM whatsmeow_app_state_mutation_macs \
                     WHERE jid = ?1 AND name = ?2",
                )
                .map_err(sql_err)?;
            let rows = stmt
                .query_map([&jid, &name], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                })
                .map_err(sql_err)?;
            for row in rows {
                let (v, index_mac, value_mac) = row.map_err(sql_err)?;
                match macs.get(&index_mac) {
                    Some((seen, _)) if *seen >= v => {}
                    _ => {
                        macs.insert(index_mac, (v, value_mac));
                    }
                }
            }
            let macs = macs
                .into_iter()
                .map(|(index_mac, (_, value_mac))| AppStateMutationMAC {
                    index_mac,
                    value_mac,
                })
                .collect();
            let state = HashState {
                version: version as u64,
                hash,
                ..Default::default()
            };
            versions.push((name, state, macs));
        }
    }

    let mut lid_map = Vec::new();
    if has_table(conn, "whatsmeow_lid_map").map_err(sql_err)? {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let mut stmt = conn
            .prepare("SELECT lid, pn FROM whatsmeow_lid_map")
            .map_err(sql_err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(sql_err)?;
        for row in rows {
            let (lid, pn) = row.map_err(sql_err)?;
            lid_map.push(LidPnMappingEntry {
                lid,
                phone_number: pn,
                created_at: now,
                updated_at: now,
                learning_source: "other".into(),
            });
        }
    }

    // Contacts: app-state sync would not send them again (its versions come over).
    let mut contacts = Vec::new();
    if has_table(conn, "whatsmeow_contacts").map_err(sql_err)? {
        let mut stmt = conn
            .prepare(
                "SELECT their_jid, full_name, push_name FROM whatsmeow_contacts \
                 WHERE our_jid = ?1 AND their_jid LIKE '%@s.whatsapp.net'",
            )
            .map_err(sql_err)?;
        let rows = stmt
            .query_map([&jid], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?.filter(|n| !n.is_empty()),
                    r.get::<_, Option<String>>(2)?.filter(|n| !n.is_empty()),
                ))
            })
            .map_err(sql_err)?;
        for row in rows {
            contacts.push(row.map_err(sql_err)?);
        }
    }

    let mut device = device;
    if let Some(salt) = conn
        .query_row(
            "SELECT salt FROM whatsmeow_nct_salt WHERE our_jid = ?1",
            [&jid],
            |r| r.get::<_, Vec<u8>>(0),
        )
        .optional()
        .ok()
        .flatten()
    {
        device.nct_salt = Some(salt);
    }
    // New prekeys get ids above whatsmeow's: the same id never names two keys.
    let max_id = prekeys.iter().map(|(id, _, _)| *id).max().unwrap_or(0);
    device.next_pre_key_id = max_id + 1;

    Ok(GoSession {
        device,
        jid,
        others,
        prekeys,
        identities,
        sessions,
        sender_keys,
        sync_keys,
        versions,
        lid_map,
        contacts,
        skipped,
    })
}

/// `(text, blob)` rows of `sql` for the device `jid`.
fn rows_of(conn: &Connection, sql: &str, jid: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut stmt = conn.prepare(sql).map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([jid], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(|e| e.to_string())?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|e| e.to_string())
}

/// Writes `session` as this server's store at `target` (which must not hold a
/// store): into a scratch file first, renamed into place once complete.
pub async fn write(session: &GoSession, target: &Path) -> Result<(), ImportError> {
    let scratch = scratch_path(target);
    crate::storage::remove_session_store(&scratch);
    let fail = |why: String| ImportError::Write {
        path: target.display().to_string(),
        why,
    };
    let outcome = write_store(session, &scratch).await;
    if let Err(why) = outcome {
        crate::storage::remove_session_store(&scratch);
        return Err(fail(why));
    }
    // What is at the target is this server's (checked at startup) and holds no
    // paired device: it goes, journal files included, so no stale log is replayed
    // onto the imported store.
    crate::storage::remove_session_store(target);
    if target.exists() {
        crate::storage::remove_session_store(&scratch);
        return Err(fail(
            "something that is not this server's store is in the way; it is left untouched".into(),
        ));
    }
    // The main file's rename is what marks the store present.
    crate::storage::move_store(&scratch, target).map_err(|e| fail(e.to_string()))
}

/// Where an import is written before it is complete.
pub fn scratch_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".importing");
    PathBuf::from(name)
}

async fn write_store(session: &GoSession, path: &Path) -> Result<(), String> {
    let url = path.to_str().ok_or("the store path is not UTF-8")?;
    let store = SqliteStore::new(url).await.map_err(|e| e.to_string())?;
    store
        .save(&session.device)
        .await
        .map_err(|e| e.to_string())?;
    fill(&store, session).await
}

/// Writes everything of `session` but its device into `store`. The device is
/// written by the caller, last where a store's presence is its device.
pub async fn fill(store: &dyn Backend, session: &GoSession) -> Result<(), String> {
    let e = |e: whatsapp_rust::wacore::store::error::StoreError| e.to_string();
    for uploaded in [true, false] {
        let keys: Vec<(u32, Bytes)> = session
            .prekeys
            .iter()
            .filter(|(_, _, u)| *u == uploaded)
            .map(|(id, record, _)| (*id, record.clone()))
            .collect();
        if !keys.is_empty() {
            store
                .store_prekeys_batch(&keys, uploaded)
                .await
                .map_err(e)?;
        }
    }
    if !session.identities.is_empty() {
        store
            .put_identities_batch(&session.identities)
            .await
            .map_err(e)?;
    }
    if !session.sessions.is_empty() {
        store
            .put_sessions_batch(&session.sessions)
            .await
            .map_err(e)?;
    }
    if !session.sender_keys.is_empty() {
        store
            .put_sender_keys_batch(&session.sender_keys)
            .await
            .map_err(e)?;
    }
    for (id, key) in &session.sync_keys {
        store.set_sync_key(id, key.clone()).await.map_err(e)?;
    }
    for (name, state, macs) in &session.versions {
        store.set_version(name, state.clone()).await.map_err(e)?;
        if !macs.is_empty() {
            store
                .put_mutation_macs(name, state.version, macs)
                .await
                .map_err(e)?;
        }
    }
    if !session.lid_map.is_empty() {
        store.put_lid_mappings(&session.lid_map).await.map_err(e)?;
    }
    Ok(())
}

// --- Go JSON (go.mau.fi/libsignal's records; field names are the Go names) ---

mod b64 {
    use base64::Engine;
    use serde::Deserialize;

    pub fn opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        match text {
            None => Ok(None),
            Some(t) if t.is_empty() => Ok(None),
            Some(t) => base64::engine::general_purpose::STANDARD
                .decode(t)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Deserialize)]
struct GoSessionRecord {
    #[serde(rename = "SessionState")]
    session_state: Option<GoState>,
    #[serde(rename = "PreviousStates", default)]
    previous_states: Option<Vec<Option<GoState>>>,
}

#[derive(Deserialize)]
struct GoState {
    #[serde(rename = "LocalIdentityPublic", deserialize_with = "b64::opt", default)]
    local_identity_public: Option<Vec<u8>>,
    #[serde(rename = "LocalRegistrationID", default)]
    local_registration_id: Option<u32>,
    #[serde(rename = "NeedsRefresh", default)]
    needs_refresh: Option<bool>,
    #[serde(rename = "PendingKeyExchange", default)]
    pending_key_exchange: Option<GoPendingKeyExchange>,
    #[serde(rename = "PendingPreKey", default)]
    pending_pre_key: Option<GoPendingPreKey>,
    #[serde(rename = "PreviousCounter", default)]
    previous_counter: Option<u32>,
    #[serde(rename = "ReceiverChains", default)]
    receiver_chains: Option<Vec<Option<GoChain>>>,
    #[serde(
        rename = "RemoteIdentityPublic",
        deserialize_with = "b64::opt",
        default
    )]
    remote_identity_public: Option<Vec<u8>>,
    #[serde(rename = "RemoteRegistrationID", default)]
    remote_registration_id: Option<u32>,
    #[serde(rename = "RootKey", deserialize_with = "b64::opt", default)]
    root_key: Option<Vec<u8>>,
    #[serde(rename = "SenderBaseKey", deserialize_with = "b64::opt", default)]
    sender_base_key: Option<Vec<u8>>,
    #[serde(rename = "SenderChain", default)]
    sender_chain: Option<GoChain>,
    #[serde(rename = "SessionVersion", default)]
    session_version: Option<u32>,
}

#[derive(Deserialize)]
struct GoChain {
    #[serde(
        rename = "SenderRatchetKeyPublic",
        deserialize_with = "b64::opt",
        default
    )]
    sender_ratchet_key_public: Option<Vec<u8>>,
    #[serde(
        rename = "SenderRatchetKeyPrivate",
        deserialize_with = "b64::opt",
        default
    )]
    sender_ratchet_key_private: Option<Vec<u8>>,
    #[serde(rename = "ChainKey", default)]
    chain_key: Option<GoChainKey>,
    #[serde(rename = "MessageKeys", default)]
    message_keys: Option<Vec<Option<GoMessageKey>>>,
}

#[derive(Deserialize)]
struct GoChainKey {
    #[serde(rename = "Key", deserialize_with = "b64::opt", default)]
    key: Option<Vec<u8>>,
    #[serde(rename = "Index", default)]
    index: Option<u32>,
}

#[derive(Deserialize)]
struct GoMessageKey {
    #[serde(rename = "CipherKey", deserialize_with = "b64::opt", default)]
    cipher_key: Option<Vec<u8>>,
    #[serde(rename = "MacKey", deserialize_with = "b64::opt", default)]
    mac_key: Option<Vec<u8>>,
    #[serde(rename = "IV", deserialize_with = "b64::opt", default)]
    iv: Option<Vec<u8>>,
    #[serde(rename = "Index", default)]
    index: u32,
}

#[derive(Deserialize)]
struct GoPendingPreKey {
    #[serde(rename = "PreKeyID", default)]
    pre_key_id: Option<GoOptionalU32>,
    #[serde(rename = "SignedPreKeyID", default)]
    signed_pre_key_id: Option<i64>,
    #[serde(rename = "BaseKey", deserialize_with = "b64::opt", default)]
    base_key: Option<Vec<u8>>,
}

#[derive(Deserialize)]
struct GoOptionalU32 {
    #[serde(rename = "Value", default)]
    value: u32,
    #[serde(rename = "IsEmpty", default)]
    is_empty: bool,
}

#[derive(Deserialize)]
struct GoPendingKeyExchange {
    #[serde(rename = "Sequence", default)]
    sequence: Option<u32>,
    #[serde(
        rename = "LocalBaseKeyPublic",
        alias = "LocalBaseKey",
        deserialize_with = "b64::opt",
        default
    )]
    local_base_key: Option<Vec<u8>>,
    #[serde(rename = "LocalBaseKeyPrivate", deserialize_with = "b64::opt", default)]
    local_base_key_private: Option<Vec<u8>>,
    #[serde(
        rename = "LocalRatchetKeyPublic",
        alias = "LocalRatchetKey",
        deserialize_with = "b64::opt",
        default
    )]
    local_ratchet_key: Option<Vec<u8>>,
    #[serde(
        rename = "LocalRatchetKeyPrivate",
        deserialize_with = "b64::opt",
        default
    )]
    local_ratchet_key_private: Option<Vec<u8>>,
    #[serde(
        rename = "LocalIdentityKeyPublic",
        alias = "LocalIdentityKey",
        deserialize_with = "b64::opt",
        default
    )]
    local_identity_key: Option<Vec<u8>>,
    #[serde(
        rename = "LocalIdentityKeyPrivate",
        deserialize_with = "b64::opt",
        default
    )]
    local_identity_key_private: Option<Vec<u8>>,
}

fn chain(go: GoChain) -> SessionChainComponents {
    SessionChainComponents {
        sender_ratchet_key: go.sender_ratchet_key_public,
        sender_ratchet_key_private: go.sender_ratchet_key_private,
        chain_key: go.chain_key.map(|k| SessionChainKeyComponents {
            index: k.index,
            key: k.key,
        }),
        message_keys: go
            .message_keys
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .filter_map(|k| {
                Some(SessionMessageKeyComponents {
                    index: k.index,
                    material: SessionMessageKeyMaterial::Derived {
                        cipher_key: k.cipher_key?.try_into().ok()?,
                        mac_key: k.mac_key?.try_into().ok()?,
                        iv: k.iv?.try_into().ok()?,
                    },
                })
            })
            .collect(),
    }
}

fn state(go: GoState) -> Option<SessionComponents> {
    // A state without a root key is whatsmeow's empty placeholder.
    go.root_key.as_ref()?;
    Some(SessionComponents {
        session_version: go.session_version,
        local_identity_public: go.local_identity_public,
        remote_identity_public: go.remote_identity_public,
        root_key: go.root_key,
        previous_counter: go.previous_counter,
        sender_chain: go.sender_chain.map(chain),
        receiver_chains: go
            .receiver_chains
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .map(chain)
            .collect(),
        pending_key_exchange: go.pending_key_exchange.and_then(|p| {
            let any = p.local_base_key.is_some() || p.local_ratchet_key.is_some();
            any.then_some(PendingKeyExchangeComponents {
                sequence: p.sequence,
                local_base_key: p.local_base_key,
                local_base_key_private: p.local_base_key_private,
                local_ratchet_key: p.local_ratchet_key,
                local_ratchet_key_private: p.local_ratchet_key_private,
                local_identity_key: p.local_identity_key,
                local_identity_key_private: p.local_identity_key_private,
            })
        }),
        pending_pre_key: go.pending_pre_key.and_then(|p| {
            let base_key = p.base_key?;
            Some(PendingPreKeyComponents {
                pre_key_id: p.pre_key_id.filter(|id| !id.is_empty).map(|id| id.value),
                signed_pre_key_id: p.signed_pre_key_id.map(|id| id as i32),
                base_key: Some(base_key),
                kyber_pre_key_id: None,
                kyber_ciphertext: None,
            })
        }),
        remote_registration_id: go.remote_registration_id,
        local_registration_id: go.local_registration_id,
        needs_refresh: go.needs_refresh,
        alice_base_key: go.sender_base_key,
    })
}

/// A whatsmeow session record (Go JSON) as whatsapp-rust's record bytes.
pub fn transcode_session(json: &[u8]) -> Result<Vec<u8>, String> {
    let go: GoSessionRecord = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let components = SessionRecordComponents {
        current_session: go.session_state.and_then(state),
        previous_sessions: go
            .previous_states
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .filter_map(state)
            .collect(),
    };
    let record = SessionRecord::from_components(components).map_err(|e| e.to_string())?;
    record.serialize().map_err(|e| e.to_string())
}

#[derive(Deserialize)]
struct GoSenderKeyRecord {
    #[serde(rename = "SenderKeyStates", default)]
    states: Option<Vec<Option<GoSenderKeyState>>>,
}

#[derive(Deserialize)]
struct GoSenderKeyState {
    #[serde(rename = "KeyID", default)]
    key_id: u32,
    #[serde(rename = "SenderChainKey")]
    chain_key: GoSenderChainKey,
    #[serde(rename = "SigningKeyPublic", deserialize_with = "b64::opt", default)]
    signing_public: Option<Vec<u8>>,
    #[serde(rename = "SigningKeyPrivate", deserialize_with = "b64::opt", default)]
    signing_private: Option<Vec<u8>>,
    #[serde(rename = "Keys", default)]
    keys: Option<Vec<Option<GoSenderMessageKey>>>,
}

#[derive(Deserialize)]
struct GoSenderChainKey {
    #[serde(rename = "Iteration", default)]
    iteration: u32,
    #[serde(rename = "ChainKey", deserialize_with = "b64::opt", default)]
    chain_key: Option<Vec<u8>>,
}

#[derive(Deserialize)]
struct GoSenderMessageKey {
    #[serde(rename = "Iteration", default)]
    iteration: u32,
    #[serde(rename = "Seed", deserialize_with = "b64::opt", default)]
    seed: Option<Vec<u8>>,
}

/// A whatsmeow sender-key record (Go JSON) as whatsapp-rust's record bytes.
pub fn transcode_sender_key(json: &[u8]) -> Result<Vec<u8>, String> {
    let go: GoSenderKeyRecord = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let states = go
        .states
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .map(|s| {
            Ok(SenderKeyStateComponents {
                key_id: s.key_id,
                chain_key: SenderChainKeyComponents {
                    iteration: s.chain_key.iteration,
                    seed: s
                        .chain_key
                        .chain_key
                        .ok_or("a sender chain without a key")?,
                },
                signing_key: SenderSigningKeyComponents {
                    public: s
                        .signing_public
                        .ok_or("a sender key without its public key")?,
                    // Others' sender keys have no private half: whatsmeow writes null,
                    // or 32 zero bytes once it has saved the record again.
                    private: s.signing_private.filter(|k| k.iter().any(|b| *b != 0)),
                },
                message_keys: s
                    .keys
                    .unwrap_or_default()
                    .into_iter()
                    .flatten()
                    .filter_map(|k| {
                        Some(SenderMessageKeyComponents {
                            iteration: k.iteration,
                            seed: k.seed?,
                        })
                    })
                    .collect(),
            })
        })
        .collect::<Result<Vec<_>, &str>>()?;
    let record = SenderKeyRecord::from_components(SenderKeyRecordComponents { states })
        .map_err(|e| e.to_string())?;
    record.serialize().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_signal_addresses_become_whatsapp_rust_ones() {
        assert_eq!(
            signal_address("628123456789:0").as_deref(),
            Some("628123456789@c.us.0")
        );
        assert_eq!(
            signal_address("123456789012345_1:17").as_deref(),
            Some("123456789012345:17@lid.0")
        );
        assert_eq!(signal_address("5511_7:2"), None, "an unknown agent");
        assert_eq!(signal_address("no-device"), None);
        assert_eq!(signal_address("abc:1"), None);
    }

    fn public(seed: u8) -> Vec<u8> {
        PrivateKey::deserialize(&[seed; 32])
            .unwrap()
            .public_key()
            .unwrap()
            .serialize()
            .to_vec()
    }

    fn b64(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn a_go_sender_key_record_keeps_its_states_and_drops_a_zero_private_key() {
        // As go.mau.fi/libsignal writes it: newest state first; a received sender key
        // whose private half became 32 zero bytes after a re-save.
        let json = serde_json::json!({"SenderKeyStates": [
            {"Keys": [{"Iteration": 4, "IV": b64(&[1; 16]), "CipherKey": b64(&[2; 32]), "Seed": b64(&[3; 32])}],
             "KeyID": 77, "SenderChainKey": {"Iteration": 5, "ChainKey": b64(&[4; 32])},
             "SigningKeyPrivate": b64(&[0; 32]), "SigningKeyPublic": b64(&public(9))},
            {"Keys": null, "KeyID": 76, "SenderChainKey": {"Iteration": 0, "ChainKey": b64(&[5; 32])},
             "SigningKeyPrivate": null, "SigningKeyPublic": b64(&public(8))},
        ]});
        let bytes = transcode_sender_key(json.to_string().as_bytes()).unwrap();
        let states = SenderKeyRecord::deserialize(&bytes)
            .unwrap()
            .into_components()
            .unwrap()
            .states;
        assert_eq!(states.len(), 2);
        assert_eq!(states[0].key_id, 77, "the current state stays first");
        assert_eq!(states[0].chain_key.iteration, 5);
        assert_eq!(states[0].chain_key.seed, vec![4; 32]);
        assert_eq!(states[0].signing_key.private, None);
        assert_eq!(states[0].message_keys.len(), 1);
        assert_eq!(states[0].message_keys[0].iteration, 4);
        assert_eq!(states[0].message_keys[0].seed, vec![3; 32]);
        assert_eq!(states[1].key_id, 76);
        assert!(transcode_sender_key(b"{\"SenderKeyStates\": 5}").is_err());
    }

    #[test]
    fn a_go_session_record_keeps_its_keys_chains_and_counters() {
        let chain = |ratchet: u8, private: Option<u8>, index: u32| {
            serde_json::json!({
                "SenderRatchetKeyPublic": b64(&public(ratchet)),
                "SenderRatchetKeyPrivate": private.map(|p| b64(&[p; 32])),
                "ChainKey": {"Key": b64(&[ratchet; 32]), "Index": index},
                "MessageKeys": [{"CipherKey": b64(&[6; 32]), "MacKey": b64(&[7; 32]), "IV": b64(&[8; 16]), "Index": index - 1}],
            })
        };
        let state = |root: u8| {
            serde_json::json!({
                "LocalIdentityPublic": b64(&public(1)),
                "LocalRegistrationID": 4_000_000_000u32,
                "NeedsRefresh": false,
                "PendingKeyExchange": null,
                "PendingPreKey": {"PreKeyID": {"Value": 31, "IsEmpty": false}, "SignedPreKeyID": 1, "BaseKey": b64(&public(2))},
                "PreviousCounter": 3,
                "ReceiverChains": [chain(10, None, 2), chain(11, None, 9)],
                "RemoteIdentityPublic": b64(&public(3)),
                "RemoteRegistrationID": 1234,
                "RootKey": b64(&[root; 32]),
                "SenderBaseKey": b64(&public(4)),
                "SenderChain": chain(12, Some(13), 21),
                "SessionVersion": 3,
            })
        };
        let json = serde_json::json!({"SessionState": state(40), "PreviousStates": [state(41)]});
        let bytes = transcode_session(json.to_string().as_bytes()).unwrap();
        let record = SessionRecord::deserialize(&bytes)
            .unwrap()
            .into_components()
            .unwrap();
        let current = record.current_session.unwrap();
        assert_eq!(current.root_key, Some(vec![40; 32]));
        assert_eq!(current.local_registration_id, Some(4_000_000_000));
        assert_eq!(current.remote_registration_id, Some(1234));
        assert_eq!(current.previous_counter, Some(3));
        assert_eq!(current.alice_base_key.as_deref().map(|k| k.len()), Some(33));
        let sender = current.sender_chain.unwrap();
        assert_eq!(sender.chain_key.as_ref().unwrap().index, Some(21));
        assert_eq!(sender.sender_ratchet_key_private, Some(vec![13; 32]));
        assert_eq!(sender.message_keys[0].index, 20);
        let receivers: Vec<_> = current
            .receiver_chains
            .iter()
            .map(|c| c.chain_key.as_ref().unwrap().index)
            .collect();
        assert_eq!(receivers, [Some(2), Some(9)], "oldest first, as in Go");
        let pending = current.pending_pre_key.unwrap();
        assert_eq!(pending.pre_key_id, Some(31));
        assert_eq!(pending.signed_pre_key_id, Some(1));
        assert_eq!(record.previous_sessions.len(), 1);
        assert_eq!(record.previous_sessions[0].root_key, Some(vec![41; 32]));
        assert!(transcode_session(b"not json").is_err());
    }

    /// A whatsmeow v15 file at `path` with `devices` (JIDs), each with one prekey,
    /// the prekeys in `keys` instead when given (Go's DB_KEYS_URI).
    fn whatsmeow(path: &Path, devices: &[&str], keys: Option<&Path>) {
        let schema = include_str!("../../tests/e2e/fixtures/whatsmeow-v15.sql");
        let version = "CREATE TABLE whatsmeow_version (version INTEGER, compat INTEGER);
                       INSERT INTO whatsmeow_version VALUES (15, 8);";
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(schema).unwrap();
        conn.execute_batch(version).unwrap();
        let key_conn = keys.map(|k| {
            let c = Connection::open(k).unwrap();
            // Go's key store holds the Signal tables only, no device rows.
            c.execute_batch("PRAGMA foreign_keys = OFF;").unwrap();
            c.execute_batch(schema).unwrap();
            c
        });
        for (n, jid) in devices.iter().enumerate() {
            let k = |b: u8| vec![b + n as u8; 32];
            conn.execute(
                "INSERT INTO whatsmeow_device (jid, registration_id, noise_key, identity_key, \
                 signed_pre_key, signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details, \
                 adv_account_sig, adv_account_sig_key, adv_device_sig, push_name) \
                 VALUES (?1, 4000000000, ?2, ?3, ?4, 1, ?5, ?6, x'0a00', ?5, ?7, ?5, 'Go')",
                rusqlite::params![jid, k(1), k(2), k(3), vec![9u8; 64], k(5), k(6)],
            )
            .unwrap();
            let prekeys = key_conn.as_ref().unwrap_or(&conn);
            prekeys
                .execute(
                    "INSERT INTO whatsmeow_pre_keys (jid, key_id, key, uploaded) \
                     VALUES (?1, 41, ?2, true)",
                    rusqlite::params![jid, k(7)],
                )
                .unwrap();
        }
    }

    #[test]
    fn the_first_of_several_go_devices_is_read_and_the_others_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("whatsapp.db");
        whatsmeow(
            &file,
            &["6281:7@s.whatsapp.net", "6282:3@s.whatsapp.net"],
            None,
        );
        let before = std::fs::read(&file).unwrap();
        let session = read(&file, None, dir.path()).unwrap();
        assert_eq!(session.jid, "6281:7@s.whatsapp.net");
        assert_eq!(session.others, ["6282:3@s.whatsapp.net"]);
        assert_eq!(session.device.registration_id, 4_000_000_000);
        assert_eq!(session.device.push_name, "Go");
        assert_eq!(session.counts().prekeys, 1);
        assert_eq!(session.device.next_pre_key_id, 42, "new prekeys above Go's");
        assert_eq!(std::fs::read(&file).unwrap(), before);
    }

    #[test]
    fn go_key_stores_of_their_own_are_read_for_the_signal_tables() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("whatsapp.db");
        let keys = dir.path().join("keys.db");
        whatsmeow(&file, &["6281:7@s.whatsapp.net"], Some(&keys));
        let without = read(&file, None, dir.path()).unwrap();
        assert_eq!(without.counts().prekeys, 0);
        let with = read(&file, Some(&keys), dir.path()).unwrap();
        assert_eq!(with.counts().prekeys, 1);
    }
}
