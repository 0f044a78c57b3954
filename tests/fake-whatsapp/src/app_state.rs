//! App state ("syncd"): the account's settings and chat states (stars, pins,
//! archives, deletions for me…) that its devices keep in sync through the server.
//!
//! The server only stores patches; it cannot read them. The phone holds the app-state
//! sync key and shares it with each linked companion in an end-to-end encrypted peer
//! message (`protocolMessage` `APP_STATE_SYNC_KEY_SHARE`), right after the companion
//! has published its prekeys, and again when the companion asks for it
//! (`APP_STATE_SYNC_KEY_REQUEST`). With that key the fake's phone checks every patch
//! the companion uploads (`<iq xmlns="w:sync:app:state">`) as a real phone would
//! before applying it:
//!
//! * each mutation's value MAC (HMAC-SHA512 over operation, key id and the
//!   AES-256-CBC encrypted `SyncActionData`), then its decryption, then its index MAC
//!   (HMAC-SHA256 over the index JSON);
//! * the snapshot MAC: the collection's LT-hash (value MACs of the live entries added
//!   together, 16-bit lanes) after the patch, with the new version and name;
//! * the patch MAC over the snapshot MAC, every value MAC, version and name;
//! * the base version (a stale one is answered with `409` and the patches it missed);
//! * for the actions it models, the collection, the action version, the index shape,
//!   the value, and that the chat or message named exists.
//!
//! A patch that fails a MAC is refused (`<collection type="error">` `400`) and is a
//! problem; a patch that verifies but names something unknown is applied and is a
//! problem. Applied patches get their version and are served back to whoever syncs
//! the collection: as the patches since the asked version, or all of them from the
//! first when a snapshot is asked for (the fake never makes snapshots; a chain of
//! patches from version 1 is what a client takes instead).

use std::collections::HashMap;

use anyhow::{Context, Result, anyhow, ensure};
use serde::Serialize;
use tracing::{info, warn};
use whatsapp_rust::NodeBuilder;
use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::buffa::MessageField;
use whatsapp_rust::wacore::libsignal::crypto::{CryptographicMac, aes_256_cbc_decrypt_into};
use whatsapp_rust::wacore::messages::{MessageUtils, decode_plaintext};
use whatsapp_rust::wacore_binary::node::Node;
use whatsapp_rust::waproto::whatsapp as wa;

use wa::message::protocol_message::Type as ProtocolType;
use wa::syncd_mutation::SyncdOperation;

use crate::actions::find_target;
use crate::node::{attr, bytes, child, iq_error, iq_result};
use crate::{Device, FakeWhatsApp, Shared, World, unix_now};

/// The collections of an account's app state.
pub const COLLECTIONS: [&str; 5] = [
    "critical_block",
    "critical_unblock_low",
    "regular_low",
    "regular_high",
    "regular",
];

/// One mutation of the account's app state that the companion uploaded and the
/// phone verified and applied.
#[derive(Debug, Clone, Serialize)]
pub struct AppStateMutation {
    /// `regular_high`, `regular_low`, …
    pub collection: String,
    /// The collection version the patch made.
    pub version: u64,
    /// The companion device that uploaded it.
    pub device: String,
    /// `set` or `remove`.
    pub operation: String,
    /// The decoded index, e.g. `["star", chat, message id, "1"/"0" (from me),
    /// participant or "0"]` or `["pin_v1", chat]`.
    pub index: Vec<String>,
    /// The action's schema version (`SyncActionData.version`).
    pub action_version: Option<i32>,
    /// The decrypted value (`star_action`, `pin_action`, … and `timestamp`).
    pub value: wa::SyncActionValue,
}

impl AppStateMutation {
    /// The action: the index's first element (`star`, `pin_v1`, `archive`,
    /// `deleteMessageForMe`, …).
    pub fn action(&self) -> &str {
        self.index.first().map(String::as_str).unwrap_or_default()
    }

    /// A JSON summary for logs and the admin API.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The expanded app-state key (HKDF-SHA256 of the key data, info
/// `WhatsApp Mutation Keys`, 160 bytes cut in five).
#[derive(Clone)]
pub(crate) struct MutationKeys {
    pub index: [u8; 32],
    pub value_encryption: [u8; 32],
    pub value_mac: [u8; 32],
    pub snapshot_mac: [u8; 32],
    pub patch_mac: [u8; 32],
}

impl MutationKeys {
    pub fn expand(key_data: &[u8]) -> Self {
        let okm = whatsapp_rust::wacore::crypto::hkdf_sha256(
            key_data,
            160,
            None,
            b"WhatsApp Mutation Keys",
        )
        .expect("160 bytes is within HKDF's limit");
        let part = |i: usize| -> [u8; 32] { okm[i * 32..(i + 1) * 32].try_into().expect("32") };
        Self {
            index: part(0),
            value_encryption: part(1),
            value_mac: part(2),
            snapshot_mac: part(3),
            patch_mac: part(4),
        }
    }
}

/// The phone's app-state sync key.
pub(crate) struct SyncKey {
    pub id: Vec<u8>,
    pub data: [u8; 32],
    pub timestamp_ms: i64,
    pub raw_id: u32,
    pub keys: MutationKeys,
}

impl SyncKey {
    fn generate() -> Self {
        let data: [u8; 32] = rand::random();
        let mut id = vec![0u8; 4];
        id.extend_from_slice(&rand::random::<u16>().to_be_bytes());
        Self {
            keys: MutationKeys::expand(&data),
            id,
            data,
            timestamp_ms: i64::try_from(unix_now()).unwrap_or_default() * 1000,
            raw_id: rand::random(),
        }
    }

    /// The `protocolMessage` that shares this key with a companion.
    fn share(&self) -> wa::Message {
        let key = wa::message::AppStateSyncKey {
            key_id: MessageField::some(wa::message::AppStateSyncKeyId {
                key_id: Some(self.id.clone()),
            }),
            key_data: MessageField::some(wa::message::AppStateSyncKeyData {
                key_data: Some(self.data.to_vec()),
                fingerprint: MessageField::some(wa::message::AppStateSyncKeyFingerprint {
                    raw_id: Some(self.raw_id),
                    current_index: Some(0),
                    device_indexes: vec![0],
                }),
                timestamp: Some(self.timestamp_ms),
            }),
        };
        wa::Message {
            protocol_message: MessageField::some(wa::message::ProtocolMessage {
                r#type: Some(ProtocolType::APP_STATE_SYNC_KEY_SHARE),
                app_state_sync_key_share: MessageField::some(wa::message::AppStateSyncKeyShare {
                    keys: vec![key],
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// An entry of a collection: the latest SET of one index.
#[derive(Clone)]
struct Entry {
    value_mac: Vec<u8>,
    index: Vec<String>,
    value: wa::SyncActionValue,
}

/// One collection as the server stores it (the patches) and as the phone knows it
/// (its live entries and their LT-hash).
#[derive(Clone)]
pub(crate) struct Collection {
    /// Patch `i` made version `i + 1`; encoded with its version set.
    patches: Vec<Vec<u8>>,
    hash: [u8; 128],
    /// Live entries by index MAC.
    entries: HashMap<Vec<u8>, Entry>,
}

impl Default for Collection {
    fn default() -> Self {
        Self {
            patches: Vec::new(),
            hash: [0; 128],
            entries: HashMap::new(),
        }
    }
}

impl Collection {
    fn version(&self) -> u64 {
        self.patches.len() as u64
    }
}

/// A key share sent to a companion device.
struct Share {
    message_id: String,
    /// The connection it went out on.
    conn: u64,
    acknowledged: bool,
}

/// The account's app state, its key, and the key shares sent.
pub(crate) struct AppState {
    key: SyncKey,
    /// By device JID.
    shares: HashMap<String, Share>,
    collections: HashMap<String, Collection>,
    mutations: Vec<AppStateMutation>,
}

impl Default for AppState {
    fn default() -> Self {
        Self {
            key: SyncKey::generate(),
            shares: HashMap::new(),
            collections: HashMap::new(),
            mutations: Vec::new(),
        }
    }
}

fn hmac(algorithm: &str, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = CryptographicMac::new(algorithm, key).expect("a known MAC");
    for part in parts {
        mac.update(part);
    }
    mac.finalize()
}

/// The value MAC of a mutation: HMAC-SHA512 over the operation (SET 1, REMOVE 2),
/// the key id, IV and ciphertext, and the associated data's length as 8 bytes
/// (its last byte set), cut to 32 bytes.
pub(crate) fn value_mac(
    op: SyncdOperation,
    key_id: &[u8],
    iv_and_ciphertext: &[u8],
    key: &[u8],
) -> Vec<u8> {
    let op_byte = [match op {
        SyncdOperation::SET => 1u8,
        SyncdOperation::REMOVE => 2u8,
    }];
    let mut length = [0u8; 8];
    length[7] = ((key_id.len() + 1) & 0xff) as u8;
    let mut mac = hmac(
        "HmacSha512",
        key,
        &[&op_byte, key_id, iv_and_ciphertext, &length],
    );
    mac.truncate(32);
    mac
}

/// The LT-hash: 64 little-endian 16-bit lanes; an item is its HKDF-SHA256 expansion
/// (info `WhatsApp Patch Integrity`, 128 bytes), added or subtracted lane by lane.
pub(crate) fn lt_hash(hash: &mut [u8; 128], item: &[u8], add: bool) {
    let expanded =
        whatsapp_rust::wacore::crypto::hkdf_sha256(item, 128, None, b"WhatsApp Patch Integrity")
            .expect("128 bytes is within HKDF's limit");
    for (lane, other) in hash.chunks_exact_mut(2).zip(expanded.chunks_exact(2)) {
        let a = u16::from_le_bytes([lane[0], lane[1]]);
        let b = u16::from_le_bytes([other[0], other[1]]);
        let sum = if add {
            a.wrapping_add(b)
        } else {
            a.wrapping_sub(b)
        };
        lane.copy_from_slice(&sum.to_le_bytes());
    }
}

/// One decoded and verified mutation of an uploaded patch.
#[derive(Clone)]
struct Decoded {
    op: SyncdOperation,
    index_mac: Vec<u8>,
    value_mac: Vec<u8>,
    index: Vec<String>,
    action_version: Option<i32>,
    value: wa::SyncActionValue,
}

/// An uploaded patch that verified: what the collection becomes.
struct Verified {
    /// The patch with its version set, as the server stores and serves it.
    stored: Vec<u8>,
    hash: [u8; 128],
    mutations: Vec<Decoded>,
}

/// Decrypts and verifies a patch uploaded on top of `collection`.
fn verify_patch(
    key: &SyncKey,
    name: &str,
    collection: &Collection,
    raw: &[u8],
) -> Result<Verified> {
    let mut patch = wa::SyncdPatch::decode_from_slice(raw).context("not a SyncdPatch")?;
    let version = collection.version() + 1;
    if let Some(v) = patch.version.as_option().and_then(|v| v.version) {
        ensure!(v == version, "the patch says version {v}, not {version}");
    }
    ensure!(
        patch.external_mutations.is_unset(),
        "external mutations (a patch too large to inline) are not modelled"
    );
    let key_id = patch
        .key_id
        .as_option()
        .and_then(|k| k.id.as_deref())
        .context("the patch names no key")?;
    ensure!(
        key_id == key.id.as_slice(),
        "the patch is signed with key {key_id:02x?}, which the phone never shared"
    );
    ensure!(!patch.mutations.is_empty(), "a patch without mutations");

    let keys = &key.keys;
    let mut hash = collection.hash;
    // Value MACs of indexes this patch already touched (None: removed).
    let mut touched: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
    let mut seen: Vec<(SyncdOperation, Vec<u8>)> = Vec::new();
    let mut mutations = Vec::new();
    for (i, m) in patch.mutations.iter().enumerate() {
        let op = match m.operation {
            None => SyncdOperation::SET,
            Some(op) => op
                .as_known()
                .ok_or_else(|| anyhow!("mutation {i}: unknown operation {}", op.to_i32()))?,
        };
        let record = m
            .record
            .as_option()
            .with_context(|| format!("mutation {i} has no record"))?;
        let record_key = record.key_id.as_option().and_then(|k| k.id.as_deref());
        ensure!(
            record_key == Some(key.id.as_slice()),
            "mutation {i} is not under the patch's key"
        );
        let index_mac = record
            .index
            .as_option()
            .and_then(|x| x.blob.clone())
            .with_context(|| format!("mutation {i} has no index MAC"))?;
        ensure!(
            index_mac.len() == 32,
            "mutation {i}: an index MAC is 32 bytes"
        );
        let blob = record
            .value
            .as_option()
            .and_then(|v| v.blob.as_deref())
            .with_context(|| format!("mutation {i} has no value"))?;
        ensure!(
            blob.len() >= 16 + 16 + 32 && (blob.len() - 48) % 16 == 0,
            "mutation {i}: a value is IV, AES blocks and a 32-byte MAC ({} bytes)",
            blob.len()
        );
        let (sealed, mac) = blob.split_at(blob.len() - 32);
        ensure!(
            value_mac(op, &key.id, sealed, &keys.value_mac) == mac,
            "mutation {i}: the value MAC does not verify"
        );
        let (iv, ciphertext) = sealed.split_at(16);
        let mut plaintext = Vec::new();
        aes_256_cbc_decrypt_into(ciphertext, &keys.value_encryption, iv, &mut plaintext)
            .map_err(|e| anyhow!("mutation {i}: the value does not decrypt: {e}"))?;
        let data = wa::SyncActionData::decode_from_slice(&plaintext)
            .with_context(|| format!("mutation {i}: not a SyncActionData"))?;
        let index_json = data.index.as_deref().unwrap_or_default();
        ensure!(
            hmac("HmacSha256", &keys.index, &[index_json]) == index_mac,
            "mutation {i}: the index MAC does not verify"
        );
        let index: Vec<String> = serde_json::from_slice(index_json)
            .with_context(|| format!("mutation {i}: the index is not a JSON array of strings"))?;
        ensure!(!index.is_empty(), "mutation {i}: an empty index");
        ensure!(
            !seen.contains(&(op, index_mac.clone())),
            "mutation {i}: {index:?} appears twice for the same operation in one patch"
        );
        seen.push((op, index_mac.clone()));

        let previous = match touched.get(&index_mac) {
            Some(value) => value.clone(),
            None => collection
                .entries
                .get(&index_mac)
                .map(|e| e.value_mac.clone()),
        };
        match op {
            SyncdOperation::SET => {
                if let Some(previous) = &previous {
                    lt_hash(&mut hash, previous, false);
                }
                lt_hash(&mut hash, mac, true);
                touched.insert(index_mac.clone(), Some(mac.to_vec()));
            }
            SyncdOperation::REMOVE => {
                let previous = previous
                    .with_context(|| format!("mutation {i} removes {index:?}, which is not set"))?;
                lt_hash(&mut hash, &previous, false);
                touched.insert(index_mac.clone(), None);
            }
        }
        mutations.push(Decoded {
            op,
            index_mac,
            value_mac: mac.to_vec(),
            index,
            action_version: data.version,
            value: data.value.into_option().unwrap_or_default(),
        });
    }

    let version_be = version.to_be_bytes();
    let snapshot_mac = hmac(
        "HmacSha256",
        &keys.snapshot_mac,
        &[&hash, &version_be, name.as_bytes()],
    );
    ensure!(
        patch.snapshot_mac.as_deref() == Some(snapshot_mac.as_slice()),
        "the snapshot MAC is not that of {name} at version {version} after the patch \
         (built on another state?)"
    );
    let mut parts: Vec<&[u8]> = vec![&snapshot_mac];
    parts.extend(mutations.iter().map(|m| m.value_mac.as_slice()));
    parts.push(&version_be);
    parts.push(name.as_bytes());
    let patch_mac = hmac("HmacSha256", &keys.patch_mac, &parts);
    ensure!(
        patch.patch_mac.as_deref() == Some(patch_mac.as_slice()),
        "the patch MAC does not verify"
    );

    patch.version = MessageField::some(wa::SyncdVersion {
        version: Some(version),
    });
    Ok(Verified {
        stored: patch.encode_to_vec(),
        hash,
        mutations,
    })
}

/// What the fake knows of an action: its collection, schema version, index length
/// (with the action name) and whether its index names a message.
struct Schema {
    name: &'static str,
    collection: &'static str,
    version: Option<i32>,
    index_len: usize,
    names_message: bool,
    /// Where the index names the chat (`None`: it names none).
    chat_at: Option<usize>,
}

const SCHEMAS: &[Schema] = &[
    Schema {
        name: "star",
        collection: "regular_high",
        version: Some(2),
        index_len: 5,
        names_message: true,
        chat_at: Some(1),
    },
    Schema {
        name: "deleteMessageForMe",
        collection: "regular_high",
        version: Some(3),
        index_len: 5,
        names_message: true,
        chat_at: Some(1),
    },
    Schema {
        name: "pin_v1",
        collection: "regular_low",
        version: Some(5),
        index_len: 2,
        names_message: false,
        chat_at: Some(1),
    },
    Schema {
        name: "archive",
        collection: "regular_low",
        version: Some(3),
        index_len: 2,
        names_message: false,
        chat_at: Some(1),
    },
    Schema {
        name: "markChatAsRead",
        collection: "regular_low",
        version: Some(3),
        index_len: 2,
        names_message: false,
        chat_at: Some(1),
    },
    Schema {
        name: "mute",
        collection: "regular_high",
        version: Some(2),
        index_len: 2,
        names_message: false,
        chat_at: Some(1),
    },
    Schema {
        name: "deleteChat",
        collection: "regular_high",
        version: None,
        index_len: 3,
        names_message: false,
        chat_at: Some(1),
    },
    Schema {
        name: "clearChat",
        collection: "regular_high",
        version: None,
        index_len: 4,
        names_message: false,
        chat_at: Some(1),
    },
    Schema {
        name: "contact",
        collection: "critical_unblock_low",
        version: Some(2),
        index_len: 2,
        names_message: false,
        chat_at: Some(1),
    },
    Schema {
        name: "label_edit",
        collection: "regular",
        version: Some(3),
        index_len: 2,
        names_message: false,
        chat_at: None,
    },
    Schema {
        name: "label_jid",
        collection: "regular",
        version: Some(3),
        index_len: 3,
        names_message: false,
        chat_at: Some(2),
    },
];

/// Whether the value carries the action `name` needs.
fn value_fits(name: &str, v: &wa::SyncActionValue) -> bool {
    match name {
        "star" => v
            .star_action
            .as_option()
            .is_some_and(|a| a.starred.is_some()),
        "deleteMessageForMe" => v
            .delete_message_for_me_action
            .as_option()
            .is_some_and(|a| a.delete_media.is_some()),
        "pin_v1" => v.pin_action.as_option().is_some_and(|a| a.pinned.is_some()),
        "archive" => v
            .archive_chat_action
            .as_option()
            .is_some_and(|a| a.archived.is_some()),
        "markChatAsRead" => v
            .mark_chat_as_read_action
            .as_option()
            .is_some_and(|a| a.read.is_some()),
        "mute" => v.mute_action.as_option().is_some_and(|a| a.muted.is_some()),
        "deleteChat" => v.delete_chat_action.is_set(),
        "clearChat" => v.clear_chat_action.is_set(),
        "contact" => v.contact_action.is_set(),
        // A label is named (or deleted); a chat's label is on or off.
        "label_edit" => v.label_edit_action.as_option().is_some_and(|a| {
            a.deleted == Some(true) || a.name.as_ref().is_some_and(|n| !n.is_empty())
        }),
        "label_jid" => v
            .label_association_action
            .as_option()
            .is_some_and(|a| a.labeled.is_some()),
        _ => true,
    }
}

/// Whether the fake knows the chat `jid`: a contact, the account itself, or a group.
fn knows_chat(world: &World, jid: &str) -> bool {
    if let Some(gid) = jid.strip_suffix("@g.us") {
        return world.groups.contains_key(gid);
    }
    crate::iq::account_of(world, jid).is_some()
}

/// What is wrong with a verified SET of an action the fake models, if anything.
fn semantic_problems(world: &World, collection: &str, m: &Decoded) -> Vec<String> {
    let mut problems = Vec::new();
    let name = m.index[0].as_str();
    let Some(schema) = SCHEMAS.iter().find(|s| s.name == name) else {
        return problems;
    };
    let index = &m.index;
    if schema.collection != collection {
        problems.push(format!(
            "{name} belongs in {}, not {collection}",
            schema.collection
        ));
    }
    if schema.version.is_some_and(|v| Some(v) != m.action_version) {
        problems.push(format!(
            "{name} is action version {:?}, not {:?}",
            schema.version, m.action_version
        ));
    }
    if index.len() != schema.index_len {
        problems.push(format!(
            "{name} has an index of {} parts, not {}: {index:?}",
            index.len(),
            schema.index_len
        ));
        return problems;
    }
    if m.op == SyncdOperation::REMOVE {
        return problems;
    }
    if !value_fits(name, &m.value) {
        problems.push(format!("{name} without its action in the value"));
    }
    let now_ms = i64::try_from(unix_now()).unwrap_or_default() * 1000;
    match m.value.timestamp {
        Some(t) if (t - now_ms).abs() <= 86_400_000 => {}
        other => problems.push(format!("{name} has timestamp {other:?}, not now (ms)")),
    }
    let Some(chat_at) = schema.chat_at else {
        return problems;
    };
    let chat = &index[chat_at];
    if !knows_chat(world, chat) {
        problems.push(format!("{name} for a chat the fake does not know: {chat}"));
    } else if schema.names_message {
        let from_me = match index[3].as_str() {
            "1" => true,
            "0" => false,
            other => {
                problems.push(format!("{name}: fromMe is {other:?}, not \"1\" or \"0\""));
                return problems;
            }
        };
        let participant = (index[4] != "0").then_some(index[4].as_str());
        if !chat.ends_with("@g.us") && participant.is_some() {
            problems.push(format!("{name}: a participant outside a group: {index:?}"));
        }
        if let Err(e) = find_target(world, chat, &index[2], from_me, participant) {
            problems.push(format!("{name}: {e:#}"));
        }
    }
    problems
}

/// `<collection type="error">` with `code`.
fn collection_error(name: &str, code: u16, text: &str) -> Node {
    NodeBuilder::new("collection")
        .attr("name", name.to_owned())
        .attr("type", "error")
        .children([NodeBuilder::new("error")
            .attr("code", code.to_string())
            .attr("text", text.to_owned())
            .build()])
        .build()
}

/// The `<patches>` of `collection` after version `from`, if any.
fn patches_since(collection: &Collection, from: u64) -> Option<Node> {
    let from = usize::try_from(from).ok()?;
    let patches = collection.patches.get(from..).filter(|p| !p.is_empty())?;
    Some(
        NodeBuilder::new("patches")
            .children(
                patches
                    .iter()
                    .map(|p| NodeBuilder::new("patch").bytes(p.clone()).build()),
            )
            .build(),
    )
}

/// Answers `<iq xmlns="w:sync:app:state">`: every `<collection>` asked is synced from
/// the version given (or from the start), or takes the patch it carries.
pub(crate) fn answer(shared: &Shared, node: &Node, device: &Device) -> Node {
    let Some(sync) = child(node, "sync") else {
        let problem = format!("an app-state IQ without <sync>: {}", crate::show(node));
        shared.world().problems.push(problem);
        return iq_error(node, 400, "bad-request");
    };
    let mut world = shared.world();
    let answers = sync
        .get_children_by_tag("collection")
        .map(|c| answer_collection(&mut world, c, device))
        .collect::<Vec<_>>();
    iq_result(
        node,
        vec![NodeBuilder::new("sync").children(answers).build()],
    )
}

fn answer_collection(world: &mut World, c: &Node, device: &Device) -> Node {
    let name = attr(c, "name").unwrap_or_default();
    if !COLLECTIONS.contains(&name.as_str()) {
        world
            .problems
            .push(format!("app state: an unknown collection {name:?}"));
        return collection_error(&name, 400, "bad-request");
    }
    let version = attr(c, "version").map(|v| v.parse::<u64>());
    let current = world
        .app_state
        .collections
        .get(&name)
        .map_or(0, Collection::version);
    if let Some(patch) = child(c, "patch") {
        let Some(Ok(base)) = version else {
            world.problems.push(format!(
                "app state: a patch for {name} without its base version"
            ));
            return collection_error(&name, 400, "bad-request");
        };
        return upload(world, &name, base, bytes(patch).unwrap_or_default(), device);
    }
    let from = match version {
        Some(Ok(v)) => v,
        None if attr(c, "return_snapshot").as_deref() == Some("true") => 0,
        _ => {
            world.problems.push(format!(
                "app state: a sync of {name} with neither a version nor return_snapshot"
            ));
            return collection_error(&name, 400, "bad-request");
        }
    };
    if from > current {
        world.problems.push(format!(
            "app state: the companion asks {name} from version {from}, but it is at {current}"
        ));
        return collection_error(&name, 400, "bad-request");
    }
    let collection = world.app_state.collections.entry(name.clone()).or_default();
    let mut answer = NodeBuilder::new("collection")
        .attr("name", name)
        .attr("version", current.to_string())
        .attr("has_more_patches", "false");
    if let Some(patches) = patches_since(collection, from) {
        answer = answer.children([patches]);
    }
    answer.build()
}

/// A patch the companion uploads on top of version `base` of collection `name`.
fn upload(world: &mut World, name: &str, base: u64, raw: &[u8], device: &Device) -> Node {
    let collection = world
        .app_state
        .collections
        .entry(name.to_owned())
        .or_default()
        .clone();
    let current = collection.version();
    if base != current {
        if base > current {
            world.problems.push(format!(
                "app state: a patch for {name} on version {base}, but it is at {current}"
            ));
            return collection_error(name, 400, "bad-request");
        }
        // Another device moved the collection on: the patch loses, and the
        // companion gets what it missed.
        info!(%name, base, current, "app-state patch on a stale base: conflict");
        let mut answer = NodeBuilder::new("collection")
            .attr("name", name.to_owned())
            .attr("type", "error")
            .attr("version", current.to_string())
            .attr("has_more_patches", "false");
        let mut children = vec![
            NodeBuilder::new("error")
                .attr("code", "409")
                .attr("text", "conflict")
                .build(),
        ];
        children.extend(patches_since(&collection, base));
        answer = answer.children(children);
        return answer.build();
    }
    let verified = match verify_patch(&world.app_state.key, name, &collection, raw) {
        Ok(v) => v,
        Err(e) => {
            let problem = format!("app-state patch for {name} from {}: {e:#}", device.jid);
            warn!("{problem}");
            world.problems.push(problem);
            return collection_error(name, 400, "bad-request");
        }
    };
    for m in &verified.mutations {
        for problem in semantic_problems(world, name, m) {
            let problem = format!("app state {name}: {problem}");
            warn!("{problem}");
            world.problems.push(problem);
        }
    }
    let version = current + 1;
    let state = &mut world.app_state;
    let collection = state.collections.entry(name.to_owned()).or_default();
    collection.patches.push(verified.stored);
    collection.hash = verified.hash;
    for m in verified.mutations {
        match m.op {
            SyncdOperation::SET => {
                collection.entries.insert(
                    m.index_mac.clone(),
                    Entry {
                        value_mac: m.value_mac.clone(),
                        index: m.index.clone(),
                        value: m.value.clone(),
                    },
                );
            }
            SyncdOperation::REMOVE => {
                collection.entries.remove(&m.index_mac);
            }
        }
        info!(collection = %name, version, index = ?m.index, "app-state mutation applied");
        state.mutations.push(AppStateMutation {
            collection: name.to_owned(),
            version,
            device: device.jid.clone(),
            operation: match m.op {
                SyncdOperation::SET => "set",
                SyncdOperation::REMOVE => "remove",
            }
            .to_owned(),
            index: m.index,
            action_version: m.action_version,
            value: m.value,
        });
    }
    NodeBuilder::new("collection")
        .attr("name", name.to_owned())
        .attr("version", version.to_string())
        .build()
}

/// `<message category="peer">` from the phone (device 0) of `device`'s account to
/// the companion `device`, end-to-end encrypted with that phone's keys. Every phone
/// shares the fake's one app-state key.
pub(crate) async fn peer_stanza(
    shared: &Shared,
    device: &Device,
    message: &wa::Message,
    id: &str,
) -> Result<Node> {
    let (bundle, account) = {
        let world = shared.world();
        let bundle = world
            .bundles
            .get(&device.jid)
            .cloned()
            .context("the companion has not uploaded its prekeys")?;
        (bundle, world.account_of_device(device)?)
    };
    // Without a one-time prekey: the contacts' sessions may have used the one the
    // fake keeps, and the companion deletes a one-time prekey once used.
    let bundle = crate::signal::CompanionBundle {
        one_time: None,
        ..bundle
    };
    let padded = MessageUtils::pad_message_v2(message.encode_to_vec());
    let (kind, data) = account
        .keys
        .lock()
        .await
        .encrypt_for(&device.jid, &bundle, &padded)
        .await?;
    Ok(NodeBuilder::new("message")
        .attr("from", format!("{}@s.whatsapp.net", account.phone.user))
        .attr("id", id.to_owned())
        .attr("type", "text")
        .attr("category", "peer")
        .attr("t", unix_now().to_string())
        .children([NodeBuilder::new("enc")
            .attr("v", "2")
            .attr("type", kind)
            .bytes(data)
            .build()])
        .build())
}

/// The phone's app-state key share for `device`, logged in on connection `conn`: as
/// soon as the device has published its prekeys, and again on a later connection
/// while the device has not acknowledged it. `None` when there is nothing to send.
pub(crate) async fn key_share_for(shared: &Shared, device: &Device, conn: u64) -> Option<Node> {
    let (message, id) = {
        let mut world = shared.world();
        let settled = world
            .app_state
            .shares
            .get(&device.jid)
            .is_some_and(|s| s.acknowledged || s.conn == conn);
        if settled || !world.bundles.contains_key(&device.jid) {
            return None;
        }
        let id = format!("FAKEKEYS{:012X}", rand::random::<u64>() >> 16);
        world.app_state.shares.insert(
            device.jid.clone(),
            Share {
                message_id: id.clone(),
                conn,
                acknowledged: false,
            },
        );
        (world.app_state.key.share(), id)
    };
    match peer_stanza(shared, device, &message, &id).await {
        Ok(node) => {
            info!(device = %device.jid, %id, "the phone shares its app-state key");
            Some(node)
        }
        Err(e) => {
            let mut world = shared.world();
            world.app_state.shares.remove(&device.jid);
            world.problems.push(format!(
                "sharing the app-state key with {}: {e:#}",
                device.jid
            ));
            None
        }
    }
}

/// A `<message category="peer">` the companion sends to the phone: the phone decrypts
/// it and answers an app-state key request with the key. Returns the stanzas to send
/// back (the server's ack, and the phone's answer if any).
pub(crate) async fn peer_message(
    shared: &Shared,
    node: &Node,
    device: &Device,
    conn: u64,
) -> Vec<Node> {
    let id = attr(node, "id").unwrap_or_default();
    let to = attr(node, "to").unwrap_or_default();
    let outcome = read_peer_message(shared, node, device).await;
    let mut ack = NodeBuilder::new("ack")
        .attr("class", "message")
        .attr("id", id.clone())
        .attr("from", to)
        .attr("t", unix_now().to_string());
    let mut replies = Vec::new();
    match outcome {
        Ok(message) => {
            if let Some(reply) = answer_peer(shared, device, conn, &message).await {
                replies.push(reply);
            }
        }
        Err(e) => {
            let problem = format!("peer message {id} from {}: {e:#}", device.jid);
            warn!("{problem}");
            shared.world().problems.push(problem);
            ack = ack.attr("error", "479");
        }
    }
    replies.insert(0, ack.build());
    replies
}

async fn read_peer_message(shared: &Shared, node: &Node, device: &Device) -> Result<wa::Message> {
    let to = attr(node, "to").context("a peer message has a recipient")?;
    let own = {
        let world = shared.world();
        let own = world.account_of_device(device)?;
        let account = crate::iq::account_of(&world, &to);
        let device_part = to.split('@').next().and_then(|u| u.split_once(':'));
        ensure!(
            account.as_deref() == Some(own.phone.user.as_str())
                && device_part.is_none_or(|(_, d)| d == "0"),
            "a peer message to {to}, which is not the account's phone"
        );
        own
    };
    let enc = child(node, "enc").context("a peer message without <enc>")?;
    let kind = attr(enc, "type").unwrap_or_default();
    let data = bytes(enc).context("<enc> without bytes")?;
    let padded = own
        .keys
        .lock()
        .await
        .decrypt(&device.jid, &kind, data)
        .await?;
    decode_plaintext(&padded, 2).context("the peer message does not decode")
}

/// The phone's answer to a peer message from the companion.
async fn answer_peer(
    shared: &Shared,
    device: &Device,
    conn: u64,
    message: &wa::Message,
) -> Option<Node> {
    let protocol = message.protocol_message.as_option();
    let Some(request) = protocol.and_then(|p| p.app_state_sync_key_request.as_option()) else {
        let problem = format!(
            "a peer message the phone does not handle from {}: {:?}",
            device.jid,
            protocol.and_then(|p| p.r#type)
        );
        warn!("{problem}");
        shared.world().problems.push(problem);
        return None;
    };
    let (known, published, message) = {
        let world = shared.world();
        let key = &world.app_state.key;
        let known = request
            .key_ids
            .iter()
            .all(|k| k.key_id.as_deref() == Some(key.id.as_slice()));
        let published = world.bundles.contains_key(&device.jid);
        (known, published, key.share())
    };
    if !known || request.key_ids.is_empty() {
        let problem = format!(
            "the companion asks for app-state keys the phone never had: {:02x?}",
            request
                .key_ids
                .iter()
                .map(|k| &k.key_id)
                .collect::<Vec<_>>()
        );
        warn!("{problem}");
        shared.world().problems.push(problem);
        return None;
    }
    if !published {
        // The share follows the companion's prekey upload.
        info!(device = %device.jid, "an app-state key request before the prekeys");
        return None;
    }
    let id = format!("FAKEKEYS{:012X}", rand::random::<u64>() >> 16);
    match peer_stanza(shared, device, &message, &id).await {
        Ok(node) => {
            info!(device = %device.jid, %id, "the phone answers an app-state key request");
            shared.world().app_state.shares.insert(
                device.jid.clone(),
                Share {
                    message_id: id,
                    conn,
                    acknowledged: false,
                },
            );
            Some(node)
        }
        Err(e) => {
            let problem = format!("answering {}'s app-state key request: {e:#}", device.jid);
            shared.world().problems.push(problem);
            None
        }
    }
}

/// The companion's `peer_msg` receipts: a key share it decrypted.
pub(crate) fn peer_receipt(shared: &Shared, ids: &[String]) {
    let mut world = shared.world();
    for share in world.app_state.shares.values_mut() {
        if ids.contains(&share.message_id) {
            share.acknowledged = true;
        }
    }
}

/// The companion's `retry` receipts: one for a key share means it could not decrypt
/// the share.
pub(crate) fn retry_receipt(shared: &Shared, ids: &[String]) {
    let mut world = shared.world();
    let failed = world
        .app_state
        .shares
        .values()
        .any(|s| ids.contains(&s.message_id));
    if failed {
        world.problems.push(format!(
            "the companion could not decrypt the app-state key share {ids:?}"
        ));
    }
}

/// The app state as JSON, for the admin API: each collection's version, whether the
/// logged-in companion acknowledged the key share, and every mutation.
pub(crate) fn summary(shared: &Shared) -> serde_json::Value {
    let (versions, mutations) = {
        let world = shared.world();
        let versions: serde_json::Map<String, serde_json::Value> = COLLECTIONS
            .iter()
            .map(|name| {
                let collection = world.app_state.collections.get(*name);
                (
                    name.to_string(),
                    collection.map_or(0, Collection::version).into(),
                )
            })
            .collect();
        let mutations: Vec<_> = world
            .app_state
            .mutations
            .iter()
            .map(AppStateMutation::summary)
            .collect();
        (versions, mutations)
    };
    serde_json::json!({
        "versions": versions,
        "key_shared": key_acknowledged(shared),
        "mutations": mutations,
    })
}

/// Whether the device of the default phone's latest logged-in session acknowledged
/// the key share.
fn key_acknowledged(shared: &Shared) -> bool {
    let world = shared.world();
    let Some(device) = world
        .session_conn(crate::PHONE_USER)
        .ok()
        .and_then(|conn| world.sessions.get(&conn))
    else {
        return false;
    };
    world
        .app_state
        .shares
        .get(device)
        .is_some_and(|s| s.acknowledged)
}

impl FakeWhatsApp {
    /// Every app-state mutation the companion uploaded that verified, in order
    /// (patches that did not verify are problems instead).
    pub fn app_state_mutations(&self) -> Vec<AppStateMutation> {
        self.shared.world().app_state.mutations.clone()
    }

    /// The value the account's app state holds now for `index` (e.g.
    /// `["pin_v1", "6281234@s.whatsapp.net"]`), after every patch; `None` when it was
    /// never set or was removed.
    pub fn app_state_value(&self, index: &[&str]) -> Option<wa::SyncActionValue> {
        let world = self.shared.world();
        world
            .app_state
            .collections
            .values()
            .flat_map(|c| c.entries.values())
            .find(|e| e.index.iter().map(String::as_str).eq(index.iter().copied()))
            .map(|e| e.value.clone())
    }

    /// The version of an app-state collection: how many patches it holds.
    pub fn app_state_version(&self, collection: &str) -> u64 {
        self.shared
            .world()
            .app_state
            .collections
            .get(collection)
            .map_or(0, Collection::version)
    }

    /// Whether the logged-in companion has the phone's app-state key: it
    /// acknowledged the key share with a `peer_msg` receipt. App-state actions
    /// (`client.chat_actions()`) fail with "no app state sync key" before that.
    pub fn app_state_key_shared(&self) -> bool {
        key_acknowledged(&self.shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use whatsapp_rust::wacore::appstate::hash::{HashState, generate_patch_mac};
    use whatsapp_rust::wacore::appstate::patch_decode::{
        CollectionSyncError, PatchList, parse_patch_list, parse_patch_lists,
    };
    use whatsapp_rust::wacore::appstate::processor::process_patch;
    use whatsapp_rust::wacore::appstate::{
        ExpandedAppStateKeys, WAPATCH_INTEGRITY, encode_record, expand_app_state_keys,
    };

    const FRIEND: &str = "6281234567890";

    fn friend_jid() -> String {
        format!("{FRIEND}@s.whatsapp.net")
    }

    fn companion() -> Device {
        Device {
            id: 1,
            phone: crate::PHONE_USER.to_owned(),
            jid: format!("{}:1@s.whatsapp.net", crate::PHONE_USER),
            noise_key: [1; 32],
            identity_key: [1; 32],
            removed: false,
            name: String::new(),
        }
    }

    /// What whatsapp-rust's companion does with app state, with wacore's own
    /// helpers: encode records, build patches on its last synced state, and apply the
    /// patches the server serves back.
    struct Client {
        key_id: Vec<u8>,
        keys: ExpandedAppStateKeys,
        state: HashMap<String, HashState>,
        /// Value MACs by index MAC, per collection.
        macs: HashMap<String, HashMap<Vec<u8>, Vec<u8>>>,
    }

    impl Client {
        fn with_key(id: &[u8], data: &[u8]) -> Self {
            Self {
                key_id: id.to_vec(),
                keys: expand_app_state_keys(data),
                state: HashMap::new(),
                macs: HashMap::new(),
            }
        }

        fn of(fake: &FakeWhatsApp) -> Self {
            let world = fake.shared.world();
            Self::with_key(&world.app_state.key.id, &world.app_state.key.data)
        }

        fn record(
            &self,
            op: SyncdOperation,
            index: &[&str],
            value: &wa::SyncActionValue,
            version: i32,
        ) -> wa::SyncdMutation {
            let index = serde_json::to_vec(index).unwrap();
            let iv: [u8; 16] = rand::random();
            encode_record(op, &index, value, &self.keys, &self.key_id, &iv, version).0
        }

        /// A patch of `mutations` on the client's state of `name` (as `build_patch`).
        fn patch(&self, name: &str, mutations: Vec<wa::SyncdMutation>) -> Vec<u8> {
            let mut state = self.state.get(name).cloned().unwrap_or_default();
            let macs = self.macs.get(name).cloned().unwrap_or_default();
            let (_, result) =
                state.update_hash(&mutations, |index_mac, _| Ok(macs.get(index_mac).cloned()));
            result.unwrap();
            state.version += 1;
            let mut patch = wa::SyncdPatch {
                snapshot_mac: Some(state.generate_snapshot_mac(name, &self.keys.snapshot_mac)),
                key_id: MessageField::some(wa::KeyId {
                    id: Some(self.key_id.clone()),
                }),
                mutations,
                ..Default::default()
            };
            patch.patch_mac = Some(generate_patch_mac(
                &patch,
                name,
                &self.keys.patch_mac,
                state.version,
            ));
            patch.encode_to_vec()
        }

        fn version(&self, name: &str) -> u64 {
            self.state.get(name).map_or(0, |s| s.version)
        }

        /// Applies a synced patch list as the client does (MACs validated).
        fn apply(&mut self, list: &PatchList) -> Vec<Vec<String>> {
            let name = list.name.as_str();
            let state = self.state.entry(name.to_owned()).or_default();
            let macs = self.macs.entry(name.to_owned()).or_default();
            let keys = Arc::new(self.keys.clone());
            let mut indexes = Vec::new();
            for patch in &list.patches {
                let result = process_patch(
                    patch,
                    state,
                    |_| Ok(keys.clone()),
                    |index_mac| Ok(macs.get(index_mac).cloned()),
                    true,
                    name,
                )
                .expect("the client takes the served patch");
                for removed in &result.removed_index_macs {
                    macs.remove(removed);
                }
                for added in result.added_macs {
                    macs.insert(added.index_mac, added.value_mac);
                }
                indexes.extend(result.mutations.into_iter().map(|m| m.index));
            }
            indexes
        }
    }

    fn iq(collections: Vec<Node>) -> Node {
        NodeBuilder::new("iq")
            .attr("id", "APPSTATE-1")
            .attr("type", "set")
            .attr("xmlns", "w:sync:app:state")
            .attr("to", "s.whatsapp.net")
            .children([NodeBuilder::new("sync").children(collections).build()])
            .build()
    }

    fn upload_iq(name: &str, base: u64, patch: Vec<u8>) -> Node {
        iq(vec![
            NodeBuilder::new("collection")
                .attr("name", name)
                .attr("version", base.to_string())
                .attr("return_snapshot", "false")
                .children([NodeBuilder::new("patch").bytes(patch).build()])
                .build(),
        ])
    }

    fn sync_iq(name: &str, version: u64) -> Node {
        let c = NodeBuilder::new("collection").attr("name", name);
        let c = if version == 0 {
            c.attr("return_snapshot", "true")
        } else {
            c.attr("return_snapshot", "false")
                .attr("version", version.to_string())
        };
        iq(vec![c.build()])
    }

    /// Sends `node` to the fake and reads the answer as the client does, surviving
    /// the binary encoding.
    fn ask(fake: &FakeWhatsApp, node: &Node) -> PatchList {
        let reply = answer(&fake.shared, node, &companion());
        let wire = whatsapp_rust::wacore_binary::marshal::marshal(&reply).unwrap();
        let back = whatsapp_rust::wacore_binary::marshal::unmarshal_ref(&wire[1..]).unwrap();
        parse_patch_list(&back.to_owned()).unwrap()
    }

    /// Uploads a patch, then re-syncs as whatsapp-rust does after a send.
    fn send(fake: &FakeWhatsApp, client: &mut Client, name: &str, muts: Vec<wa::SyncdMutation>) {
        let base = client.version(name);
        let verdict = ask(fake, &upload_iq(name, base, client.patch(name, muts)));
        assert!(verdict.error.is_none(), "{:?}", verdict.error);
        let synced = ask(fake, &sync_iq(name, base));
        assert!(!synced.has_more_patches);
        client.apply(&synced);
        assert_eq!(client.version(name), fake.app_state_version(name));
    }

    fn star(starred: bool) -> wa::SyncActionValue {
        wa::SyncActionValue {
            star_action: MessageField::some(wa::sync_action_value::StarAction {
                starred: Some(starred),
            }),
            timestamp: Some(i64::try_from(unix_now()).unwrap() * 1000),
            ..Default::default()
        }
    }

    fn pin(pinned: bool) -> wa::SyncActionValue {
        wa::SyncActionValue {
            pin_action: MessageField::some(wa::sync_action_value::PinAction {
                pinned: Some(pinned),
            }),
            timestamp: Some(i64::try_from(unix_now()).unwrap() * 1000),
            ..Default::default()
        }
    }

    async fn fake_with_a_delivered_message() -> (FakeWhatsApp, String) {
        let fake = FakeWhatsApp::start_local().await.unwrap();
        fake.add_contact(FRIEND, crate::ContactInfo::default())
            .unwrap();
        let message = wa::Message {
            conversation: Some("hi".into()),
            ..Default::default()
        };
        crate::actions::note_delivered(
            &fake.shared,
            &friend_jid(),
            &friend_jid(),
            "FAKE1",
            &message,
        );
        (fake, "FAKE1".to_owned())
    }

    #[test]
    fn the_keys_and_the_lt_hash_are_those_of_the_protocol() {
        let data = [9u8; 32];
        let ours = MutationKeys::expand(&data);
        let theirs = expand_app_state_keys(&data);
        assert_eq!(ours.index, theirs.index);
        assert_eq!(ours.value_encryption, theirs.value_encryption);
        assert_eq!(ours.value_mac, theirs.value_mac);
        assert_eq!(ours.snapshot_mac, theirs.snapshot_mac);
        assert_eq!(ours.patch_mac, theirs.patch_mac);

        let mut hash = [0u8; 128];
        lt_hash(&mut hash, &[1; 32], true);
        lt_hash(&mut hash, &[2; 32], true);
        lt_hash(&mut hash, &[1; 32], false);
        let expected =
            WAPATCH_INTEGRITY.subtract_then_add(&[0; 128], &[[1u8; 32]], &[[1u8; 32], [2u8; 32]]);
        assert_eq!(hash.to_vec(), expected);
    }

    #[tokio::test]
    async fn a_star_and_an_unstar_verify_apply_and_come_back_to_the_client() {
        let (fake, id) = fake_with_a_delivered_message().await;
        let mut client = Client::of(&fake);
        let index = ["star", &friend_jid(), &id, "0", "0"];

        let starred = client.record(SyncdOperation::SET, &index, &star(true), 2);
        send(&fake, &mut client, "regular_high", vec![starred]);
        assert_eq!(fake.problems(), Vec::<String>::new());
        assert_eq!(fake.app_state_version("regular_high"), 1);
        let value = fake.app_state_value(&index).unwrap();
        assert_eq!(value.star_action.as_option().unwrap().starred, Some(true));

        // The same index again: the LT-hash drops the old value.
        let unstarred = client.record(SyncdOperation::SET, &index, &star(false), 2);
        send(&fake, &mut client, "regular_high", vec![unstarred]);
        assert_eq!(fake.problems(), Vec::<String>::new());
        let value = fake.app_state_value(&index).unwrap();
        assert_eq!(value.star_action.as_option().unwrap().starred, Some(false));

        let mutations = fake.app_state_mutations();
        assert_eq!(mutations.len(), 2);
        assert_eq!(mutations[0].action(), "star");
        assert_eq!(mutations[0].operation, "set");
        assert_eq!(mutations[0].collection, "regular_high");
        assert_eq!(mutations[0].index, index);
        assert_eq!(mutations[0].action_version, Some(2));
        assert_eq!((mutations[0].version, mutations[1].version), (1, 2));
        assert_eq!(mutations[1].device, companion().jid);
        assert_eq!(
            mutations[1].summary()["value"]["star_action"]["starred"],
            false
        );

        let summary = summary(&fake.shared);
        assert_eq!(summary["versions"]["regular_high"], 2);
        assert_eq!(summary["versions"]["regular_low"], 0);
        assert_eq!(summary["mutations"][0]["index"][0], "star");

        // A companion that syncs from scratch gets both patches, from version 1.
        let mut fresh = Client::of(&fake);
        let list = ask(&fake, &sync_iq("regular_high", 0));
        let indexes = fresh.apply(&list);
        assert_eq!(indexes.len(), 2);
        assert_eq!(fresh.version("regular_high"), 2);
        assert_eq!(
            fresh.state["regular_high"].hash,
            client.state["regular_high"].hash
        );
    }

    #[tokio::test]
    async fn a_removal_takes_the_entry_out() {
        let (fake, _) = fake_with_a_delivered_message().await;
        let mut client = Client::of(&fake);
        let index = ["pin_v1", &friend_jid()];
        let pinned = client.record(SyncdOperation::SET, &index, &pin(true), 5);
        send(&fake, &mut client, "regular_low", vec![pinned]);
        let removed = client.record(SyncdOperation::REMOVE, &index, &pin(true), 5);
        send(&fake, &mut client, "regular_low", vec![removed]);
        assert_eq!(fake.problems(), Vec::<String>::new());
        assert!(fake.app_state_value(&index).is_none());
        assert_eq!(fake.app_state_mutations()[1].operation, "remove");
    }

    #[tokio::test]
    async fn patches_that_do_not_verify_are_refused() {
        let (fake, id) = fake_with_a_delivered_message().await;
        let client = Client::of(&fake);
        let index = ["star", &friend_jid(), &id, "0", "0"];
        let refused = |patch: Vec<u8>, why: &str| {
            let before = fake.problems().len();
            let verdict = ask(&fake, &upload_iq("regular_high", 0, patch));
            assert!(
                matches!(
                    verdict.error,
                    Some(CollectionSyncError::Fatal { code: 400, .. })
                ),
                "{why}: {:?}",
                verdict.error
            );
            let problems = fake.problems();
            assert_eq!(problems.len(), before + 1, "{why}");
            assert!(problems[before].contains(why), "{}", problems[before]);
        };

        // A value changed on the way.
        let mut m = client.record(SyncdOperation::SET, &index, &star(true), 2);
        if let Some(blob) = m
            .record
            .as_option_mut()
            .and_then(|r| r.value.as_option_mut())
        {
            let blob = blob.blob.as_mut().unwrap();
            blob[20] ^= 1;
        }
        refused(client.patch("regular_high", vec![m]), "value MAC");

        // An index MAC that is another index's.
        let mut m = client.record(SyncdOperation::SET, &index, &star(true), 2);
        let other = client.record(
            SyncdOperation::SET,
            &["star", "x", "y", "0", "0"],
            &star(true),
            2,
        );
        m.record.as_option_mut().unwrap().index = other.record.index.clone();
        refused(client.patch("regular_high", vec![m]), "index MAC");

        // Sealed with a key the phone never shared.
        let stranger = Client::with_key(&client.key_id, &[7; 32]);
        let m = stranger.record(SyncdOperation::SET, &index, &star(true), 2);
        refused(stranger.patch("regular_high", vec![m]), "value MAC");
        let stranger = Client::with_key(b"other", &[7; 32]);
        let m = stranger.record(SyncdOperation::SET, &index, &star(true), 2);
        refused(stranger.patch("regular_high", vec![m]), "never shared");

        // Built on a state the collection is not in.
        let mut confused = Client::of(&fake);
        let ghost = confused.record(SyncdOperation::SET, &["pin_v1", "ghost"], &pin(true), 5);
        let mut state = HashState::default();
        state.update_hash(&[ghost], |_, _| Ok(None)).1.unwrap();
        confused.state.insert("regular_high".into(), state);
        let m = confused.record(SyncdOperation::SET, &index, &star(true), 2);
        refused(confused.patch("regular_high", vec![m]), "snapshot MAC");

        // A patch MAC for another collection.
        let m = client.record(SyncdOperation::SET, &index, &star(true), 2);
        let mut patch =
            wa::SyncdPatch::decode_from_slice(&client.patch("regular_high", vec![m])).unwrap();
        patch.patch_mac = Some(generate_patch_mac(
            &patch,
            "regular",
            &client.keys.patch_mac,
            1,
        ));
        refused(patch.encode_to_vec(), "patch MAC");

        // Removing what is not there.
        let m = client.record(SyncdOperation::REMOVE, &index, &star(true), 2);
        refused(client.patch("regular_high", vec![m]), "not set");

        assert_eq!(fake.app_state_version("regular_high"), 0);
        assert!(fake.app_state_mutations().is_empty());
    }

    #[tokio::test]
    async fn a_verified_patch_naming_what_does_not_exist_is_a_problem() {
        let (fake, _) = fake_with_a_delivered_message().await;
        let mut client = Client::of(&fake);
        let unknown_message = ["star", &friend_jid(), "NOPE", "0", "0"];
        let m = client.record(SyncdOperation::SET, &unknown_message, &star(true), 2);
        send(&fake, &mut client, "regular_high", vec![m]);
        let stranger = "6200000000000@s.whatsapp.net";
        let m = client.record(SyncdOperation::SET, &["pin_v1", stranger], &pin(true), 5);
        send(&fake, &mut client, "regular_low", vec![m]);
        let m = client.record(
            SyncdOperation::SET,
            &["archive", &friend_jid()],
            &pin(true),
            3,
        );
        send(&fake, &mut client, "regular_high", vec![m]);

        let problems = fake.problems();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(
            problems[0].contains("never delivered a message NOPE"),
            "{}",
            problems[0]
        );
        assert!(problems[1].contains("does not know"), "{}", problems[1]);
        assert!(
            problems[2].contains("belongs in regular_low"),
            "{}",
            problems[2]
        );
        assert!(
            problems[3].contains("without its action"),
            "{}",
            problems[3]
        );
        // Applied all the same, as the phone would.
        assert_eq!(fake.app_state_mutations().len(), 3);
    }

    #[tokio::test]
    async fn label_mutations_are_checked_against_their_schema() {
        let (fake, _) = fake_with_a_delivered_message().await;
        let mut client = Client::of(&fake);
        let now = Some(i64::try_from(unix_now()).unwrap() * 1000);
        let named = |name: &str| wa::SyncActionValue {
            label_edit_action: MessageField::some(wa::sync_action_value::LabelEditAction {
                name: Some(name.to_owned()),
                ..Default::default()
            }),
            timestamp: now,
            ..Default::default()
        };
        let tagged = wa::SyncActionValue {
            label_association_action: MessageField::some(
                wa::sync_action_value::LabelAssociationAction {
                    labeled: Some(true),
                    ..Default::default()
                },
            ),
            timestamp: now,
            ..Default::default()
        };
        // Well formed: no problem.
        let edit = client.record(SyncdOperation::SET, &["label_edit", "5"], &named("Paid"), 3);
        let tag = client.record(
            SyncdOperation::SET,
            &["label_jid", "5", &friend_jid()],
            &tagged,
            3,
        );
        send(&fake, &mut client, "regular", vec![edit, tag]);
        assert!(fake.problems().is_empty(), "{:#?}", fake.problems());
        // A nameless label; a label on a chat the fake does not know.
        let m = client.record(SyncdOperation::SET, &["label_edit", "6"], &named(""), 3);
        send(&fake, &mut client, "regular", vec![m]);
        let stranger = "6200000000000@s.whatsapp.net";
        let m = client.record(
            SyncdOperation::SET,
            &["label_jid", "5", stranger],
            &tagged,
            3,
        );
        send(&fake, &mut client, "regular", vec![m]);
        let problems = fake.problems();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(
            problems[0].contains("without its action"),
            "{}",
            problems[0]
        );
        assert!(problems[1].contains("does not know"), "{}", problems[1]);
    }

    #[tokio::test]
    async fn a_patch_on_a_stale_base_gets_a_conflict_and_what_it_missed() {
        let (fake, _) = fake_with_a_delivered_message().await;
        let mut client = Client::of(&fake);
        let index = ["pin_v1", &friend_jid()];
        let m = client.record(SyncdOperation::SET, &index, &pin(true), 5);
        send(&fake, &mut client, "regular_low", vec![m]);

        let late = Client::of(&fake);
        let m = late.record(SyncdOperation::SET, &index, &pin(false), 5);
        let verdict = ask(
            &fake,
            &upload_iq("regular_low", 0, late.patch("regular_low", vec![m])),
        );
        assert!(matches!(
            verdict.error,
            Some(CollectionSyncError::Conflict { has_more: false })
        ));
        assert_eq!(verdict.patches.len(), 1);
        assert_eq!(fake.app_state_version("regular_low"), 1);
        assert_eq!(fake.problems(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn an_initial_sync_of_every_collection_is_answered_for_each() {
        let fake = FakeWhatsApp::start_local().await.unwrap();
        let collections = COLLECTIONS
            .iter()
            .map(|name| {
                NodeBuilder::new("collection")
                    .attr("name", *name)
                    .attr("return_snapshot", "true")
                    .build()
            })
            .collect();
        let reply = answer(&fake.shared, &iq(collections), &companion());
        let lists = parse_patch_lists(&reply).unwrap();
        assert_eq!(lists.len(), 5);
        assert!(
            lists
                .iter()
                .all(|l| l.error.is_none() && l.patches.is_empty())
        );

        let unknown = iq(vec![
            NodeBuilder::new("collection")
                .attr("name", "nonsense")
                .attr("return_snapshot", "true")
                .build(),
        ]);
        let lists = parse_patch_lists(&answer(&fake.shared, &unknown, &companion())).unwrap();
        assert!(matches!(
            lists[0].error,
            Some(CollectionSyncError::Fatal { .. })
        ));
        assert_eq!(fake.problems().len(), 1);
    }

    fn key_share_in(message: &wa::Message) -> &wa::message::AppStateSyncKey {
        let protocol = message.protocol_message.as_option().unwrap();
        assert_eq!(
            protocol.r#type,
            Some(ProtocolType::APP_STATE_SYNC_KEY_SHARE)
        );
        &protocol.app_state_sync_key_share.as_option().unwrap().keys[0]
    }

    #[tokio::test]
    async fn the_phone_shares_its_key_once_and_again_when_asked() {
        let fake = FakeWhatsApp::start_local().await.unwrap();
        let device = companion();
        let mut own = crate::signal::DeviceKeys::generate().unwrap();
        assert!(
            key_share_for(&fake.shared, &device, 1).await.is_none(),
            "no prekeys yet"
        );
        fake.shared.world().bundles.insert(
            device.jid.clone(),
            crate::actions::tests::published(&own, &device.jid),
        );

        let share = key_share_for(&fake.shared, &device, 1).await.unwrap();
        assert!(
            key_share_for(&fake.shared, &device, 1).await.is_none(),
            "shared once"
        );
        let me: whatsapp_rust::Jid = device.jid.parse().unwrap();
        let info =
            whatsapp_rust::wacore::messages::parse_message_info(&share.as_node_ref(), &me, None)
                .unwrap();
        assert!(info.source.is_from_me);
        assert_eq!(
            info.category,
            whatsapp_rust::wacore::types::message::MessageCategory::Peer
        );
        let phone = format!("{}@s.whatsapp.net", crate::PHONE_USER);
        let enc = child(&share, "enc").unwrap();
        let plain = own
            .decrypt(&phone, &attr(enc, "type").unwrap(), bytes(enc).unwrap())
            .await
            .unwrap();
        let message = decode_plaintext(&plain, 2).unwrap();
        let key = key_share_in(&message);
        let (key_id, key_data) = {
            let world = fake.shared.world();
            (world.app_state.key.id.clone(), world.app_state.key.data)
        };
        assert_eq!(
            key.key_id.as_option().unwrap().key_id.as_deref(),
            Some(&key_id[..])
        );
        let data = key.key_data.as_option().unwrap();
        assert_eq!(data.key_data.as_deref(), Some(&key_data[..]));
        assert!(data.fingerprint.is_set());

        // Unacknowledged, it goes out again on the next connection.
        let again = key_share_for(&fake.shared, &device, 2).await.unwrap();
        let enc = child(&again, "enc").unwrap();
        let plain = own
            .decrypt(&phone, &attr(enc, "type").unwrap(), bytes(enc).unwrap())
            .await
            .unwrap();
        assert_eq!(key_share_in(&decode_plaintext(&plain, 2).unwrap()), key);

        // Not acknowledged until the companion's peer_msg receipt, on its session.
        assert!(!fake.app_state_key_shared());
        {
            let mut world = fake.shared.world();
            world.session_conns.insert(crate::PHONE_USER.to_owned(), 7);
            world.sessions.insert(7, device.jid.clone());
        }
        let receipt = NodeBuilder::new("receipt")
            .attr("id", attr(&again, "id").unwrap())
            .attr("to", phone.clone())
            .attr("type", "peer_msg")
            .build();
        let ack = crate::actions::receipt(&fake.shared, &receipt, &device.jid).unwrap();
        assert_eq!(attr(&ack, "class").as_deref(), Some("receipt"));
        assert!(fake.app_state_key_shared());

        // The companion asks for the key again, in a peer message to the phone.
        let phone_bundle = crate::actions::tests::published(
            &*fake.shared.keys_of(&phone).unwrap().1.lock().await,
            &phone,
        );
        let ask_for = |ids: Vec<Vec<u8>>| wa::Message {
            protocol_message: MessageField::some(wa::message::ProtocolMessage {
                r#type: Some(ProtocolType::APP_STATE_SYNC_KEY_REQUEST),
                app_state_sync_key_request: MessageField::some(
                    wa::message::AppStateSyncKeyRequest {
                        key_ids: ids
                            .into_iter()
                            .map(|id| wa::message::AppStateSyncKeyId { key_id: Some(id) })
                            .collect(),
                    },
                ),
                ..Default::default()
            }),
            ..Default::default()
        };
        for (ids, answered) in [
            (vec![key_id.clone()], true),
            (vec![b"nope".to_vec()], false),
        ] {
            let padded = MessageUtils::pad_message_v2(ask_for(ids).encode_to_vec());
            let (kind, data) = own
                .encrypt_for(&phone, &phone_bundle, &padded)
                .await
                .unwrap();
            let request = NodeBuilder::new("message")
                .attr("to", phone.clone())
                .attr("id", "PEER-1")
                .attr("type", "text")
                .attr("category", "peer")
                .children([
                    NodeBuilder::new("meta").attr("appdata", "default").build(),
                    NodeBuilder::new("enc")
                        .attr("v", "2")
                        .attr("type", kind)
                        .bytes(data)
                        .build(),
                ])
                .build();
            let replies = peer_message(&fake.shared, &request, &device, 2).await;
            assert_eq!(replies[0].tag, "ack");
            assert_eq!(attr(&replies[0], "error"), None);
            assert_eq!(replies.len(), if answered { 2 } else { 1 });
            if answered {
                let enc = child(&replies[1], "enc").unwrap();
                let plain = own
                    .decrypt(&phone, &attr(enc, "type").unwrap(), bytes(enc).unwrap())
                    .await
                    .unwrap();
                let again = decode_plaintext(&plain, 2).unwrap();
                assert_eq!(key_share_in(&again), key);
            }
        }
        let problems = fake.problems();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].contains("never had"), "{}", problems[0]);
    }
}
