//! Simulated recipients' Signal keys: the prekey bundle the client fetches, and the
//! private halves that decrypt what the client then sends (`pkmsg`, `msg`, and group
//! `skmsg` after a sender-key distribution).

use std::collections::HashMap;

use anyhow::{Context, Result, anyhow, bail};
use whatsapp_rust::NodeBuilder;
use whatsapp_rust::async_trait;
use whatsapp_rust::wacore::libsignal::protocol::{
    DeviceId, Direction, GenericSignedPreKey, IdentityChange, IdentityKey, IdentityKeyPair,
    IdentityKeyStore, KeyPair, PreKeyId, PreKeyRecord, PreKeySignalMessage, PreKeyStore,
    ProtocolAddress, SenderKeyDistributionMessage, SenderKeyName, SenderKeyRecord, SenderKeyStore,
    SessionRecord, SessionStore, SignalMessage, SignalProtocolError, SignedPreKeyId,
    SignedPreKeyRecord, SignedPreKeyStore, Timestamp, UsePQRatchet, group_decrypt,
    message_decrypt_prekey, message_decrypt_signal, process_sender_key_distribution_message,
};
use whatsapp_rust::wacore_binary::node::Node;

type SignalResult<T> = std::result::Result<T, SignalProtocolError>;

const SIGNED_PREKEY_ID: u32 = 1;
const PREKEY_ID: u32 = 7;

fn rng() -> rand::rngs::StdRng {
    rand::make_rng::<rand::rngs::StdRng>()
}

/// One device (device 0, the phone) of a simulated account.
pub struct DeviceKeys {
    registration_id: u32,
    identity: IdentityKeyPair,
    signed_prekey: KeyPair,
    signed_prekey_signature: [u8; 64],
    prekey: KeyPair,
    identities: Identities,
    prekeys: PreKeys,
    signed_prekeys: SignedPreKeys,
    sessions: Sessions,
    sender_keys: SenderKeys,
}

impl DeviceKeys {
    pub fn generate() -> Result<Self> {
        let mut rng = rng();
        let identity = IdentityKeyPair::generate(&mut rng);
        let signed_prekey = KeyPair::generate(&mut rng);
        let signed_prekey_signature = identity
            .private_key()
            .calculate_signature(&signed_prekey.public_key.serialize(), &mut rng)
            .map_err(|e| anyhow!("signing the prekey: {e}"))?;
        let prekey = KeyPair::generate(&mut rng);
        let registration_id = rand::random::<u32>() & 0x3fff;
        let signed_record = SignedPreKeyRecord::new(
            SignedPreKeyId::from(SIGNED_PREKEY_ID),
            Timestamp::from_epoch_millis(0),
            &signed_prekey,
            &signed_prekey_signature,
        );
        Ok(Self {
            registration_id,
            identities: Identities {
                own: identity.clone(),
                registration_id,
                known: HashMap::new(),
            },
            prekeys: PreKeys(HashMap::from([(
                PREKEY_ID,
                PreKeyRecord::new(PreKeyId::from(PREKEY_ID), &prekey),
            )])),
            signed_prekeys: SignedPreKeys(HashMap::from([(SIGNED_PREKEY_ID, signed_record)])),
            sessions: Sessions(HashMap::new()),
            sender_keys: SenderKeys(HashMap::new()),
            identity,
            signed_prekey,
            signed_prekey_signature,
            prekey,
        })
    }

    /// The `<user>` of a prekey-fetch reply, for the JID exactly as it was asked.
    pub fn bundle(&self, jid: &str) -> Node {
        let id3 = |id: u32| id.to_be_bytes()[1..].to_vec();
        NodeBuilder::new("user")
            .attr("jid", jid)
            .children([
                NodeBuilder::new("registration")
                    .bytes(self.registration_id.to_be_bytes().to_vec())
                    .build(),
                NodeBuilder::new("type").bytes(vec![5u8]).build(),
                NodeBuilder::new("identity")
                    .bytes(self.identity.public_key().public_key_bytes().to_vec())
                    .build(),
                NodeBuilder::new("skey")
                    .children([
                        NodeBuilder::new("id").bytes(id3(SIGNED_PREKEY_ID)).build(),
                        NodeBuilder::new("value")
                            .bytes(self.signed_prekey.public_key.public_key_bytes().to_vec())
                            .build(),
                        NodeBuilder::new("signature")
                            .bytes(self.signed_prekey_signature.to_vec())
                            .build(),
                    ])
                    .build(),
                NodeBuilder::new("key")
                    .children([
                        NodeBuilder::new("id").bytes(id3(PREKEY_ID)).build(),
                        NodeBuilder::new("value")
                            .bytes(self.prekey.public_key.public_key_bytes().to_vec())
                            .build(),
                    ])
                    .build(),
            ])
            .build()
    }

    /// Decrypts one `<enc>` from `sender` (`user:device@server`): the padded plaintext.
    pub async fn decrypt(&mut self, sender: &str, kind: &str, data: &[u8]) -> Result<Vec<u8>> {
        let address = signal_address(sender)?;
        let mut rng = rng();
        let result = match kind {
            "pkmsg" => {
                let message =
                    PreKeySignalMessage::try_from(data).map_err(|e| anyhow!("not a pkmsg: {e}"))?;
                message_decrypt_prekey(
                    &message,
                    &address,
                    &mut self.sessions,
                    &mut self.identities,
                    &mut self.prekeys,
                    &self.signed_prekeys,
                    &mut rng,
                    UsePQRatchet::No,
                )
                .await
            }
            "msg" => {
                let message =
                    SignalMessage::try_from(data).map_err(|e| anyhow!("not a msg: {e}"))?;
                message_decrypt_signal(
                    &message,
                    &address,
                    &mut self.sessions,
                    &mut self.identities,
                    &mut rng,
                )
                .await
            }
            other => bail!("unexpected enc type {other}"),
        };
        Ok(result
            .map_err(|e| anyhow!("{kind} from {sender} does not decrypt: {e}"))?
            .plaintext)
    }

    /// Takes a sender key handed out in a distribution message.
    pub async fn accept_sender_key(
        &mut self,
        group: &str,
        sender: &str,
        skdm: &[u8],
    ) -> Result<()> {
        let skdm = SenderKeyDistributionMessage::try_from(skdm)
            .map_err(|e| anyhow!("not a sender key distribution message: {e}"))?;
        process_sender_key_distribution_message(
            &sender_key_name(group, sender),
            &skdm,
            &mut self.sender_keys,
        )
        .await
        .map_err(|e| anyhow!("sender key from {sender}: {e}"))
    }

    /// Decrypts a group `skmsg`: the padded plaintext.
    pub async fn group_decrypt(
        &mut self,
        group: &str,
        sender: &str,
        data: &[u8],
    ) -> Result<Vec<u8>> {
        group_decrypt(data, &mut self.sender_keys, &sender_key_name(group, sender))
            .await
            .map_err(|e| anyhow!("skmsg from {sender} in {group} does not decrypt: {e}"))
    }
}

/// The prekeys a companion uploaded at login, to start a session with it.
#[derive(Debug, Clone)]
pub struct CompanionBundle {
    pub registration_id: u32,
    pub identity: [u8; 32],
    pub signed_prekey_id: u32,
    pub signed_prekey: [u8; 32],
    pub signed_prekey_signature: Vec<u8>,
    /// The one-time prekey the next session starts with.
    pub one_time: Option<(u32, [u8; 32])>,
    /// The other one-time prekeys uploaded, in order: each is handed out once,
    /// as WhatsApp does (the companion deletes a one-time prekey once used).
    pub spare: std::collections::VecDeque<(u32, [u8; 32])>,
}

impl CompanionBundle {
    /// Reads the children of an `encrypt` upload IQ.
    pub fn from_upload(iq: &Node) -> Result<Self> {
        use crate::node::{bytes, child};
        let key32 = |n: Option<&Node>, what: &str| -> Result<[u8; 32]> {
            let b = n.and_then(bytes).with_context(|| format!("no {what}"))?;
            b.try_into().map_err(|_| anyhow!("{what} is not 32 bytes"))
        };
        let id = |n: Option<&Node>| -> Result<u32> {
            let b = n.and_then(bytes).context("no key id")?;
            anyhow::ensure!(b.len() == 3, "a key id is 3 bytes");
            Ok(u32::from_be_bytes([0, b[0], b[1], b[2]]))
        };
        let registration = child(iq, "registration")
            .and_then(bytes)
            .context("no registration id")?;
        let skey = child(iq, "skey").context("no signed prekey")?;
        let mut spare = match child(iq, "list") {
            Some(list) => list
                .get_children_by_tag("key")
                .map(|k| Ok((id(child(k, "id"))?, key32(child(k, "value"), "prekey")?)))
                .collect::<Result<std::collections::VecDeque<_>>>()?,
            None => std::collections::VecDeque::new(),
        };
        let one_time = spare.pop_front();
        Ok(Self {
            registration_id: u32::from_be_bytes(
                registration
                    .try_into()
                    .map_err(|_| anyhow!("registration id is 4 bytes"))?,
            ),
            identity: key32(child(iq, "identity"), "identity")?,
            signed_prekey_id: id(child(skey, "id"))?,
            signed_prekey: key32(child(skey, "value"), "signed prekey")?,
            signed_prekey_signature: child(skey, "signature")
                .and_then(bytes)
                .context("no signature")?
                .to_vec(),
            one_time,
            spare,
        })
    }

    /// The bundle for a new session: with the next one-time prekey, which no
    /// later session gets.
    pub fn take(&mut self) -> CompanionBundle {
        let taken = self.clone();
        self.one_time = self.spare.pop_front();
        taken
    }
}

impl DeviceKeys {
    /// Whether a message to `recipient` would start a new session.
    pub async fn needs_session(&self, recipient: &str) -> Result<bool> {
        Ok(self
            .sessions
            .load_session(&signal_address(recipient)?)
            .await?
            .is_none())
    }

    /// Encrypts `plaintext` (already padded) for the companion `recipient`
    /// (`user:device@server`), starting a session from its bundle if there is none.
    /// Returns the `<enc>` type and bytes.
    pub async fn encrypt_for(
        &mut self,
        recipient: &str,
        bundle: &CompanionBundle,
        plaintext: &[u8],
    ) -> Result<(&'static str, Vec<u8>)> {
        use whatsapp_rust::wacore::libsignal::protocol::{
            CiphertextMessageType, PreKeyBundle, PublicKey, message_encrypt, process_prekey_bundle,
        };
        let address = signal_address(recipient)?;
        let key = |b: &[u8; 32]| {
            PublicKey::from_djb_public_key_bytes(b).map_err(|e| anyhow!("bad key: {e}"))
        };
        if self.sessions.load_session(&address).await?.is_none() {
            let one_time = match &bundle.one_time {
                Some((id, k)) => Some((PreKeyId::from(*id), key(k)?)),
                None => None,
            };
            let prekey_bundle = PreKeyBundle::new(
                bundle.registration_id,
                address.device_id(),
                one_time,
                SignedPreKeyId::from(bundle.signed_prekey_id),
                key(&bundle.signed_prekey)?,
                bundle.signed_prekey_signature.clone(),
                IdentityKey::new(key(&bundle.identity)?),
            )?;
            process_prekey_bundle(
                &address,
                &mut self.sessions,
                &mut self.identities,
                &prekey_bundle,
                &mut rng(),
                UsePQRatchet::No,
            )
            .await
            .map_err(|e| anyhow!("cannot start a session with {recipient}: {e}"))?;
        }
        let message = message_encrypt(
            plaintext,
            &address,
            &mut self.sessions,
            &mut self.identities,
        )
        .await
        .map_err(|e| anyhow!("cannot encrypt for {recipient}: {e}"))?;
        let kind = match message.message_type() {
            CiphertextMessageType::PreKey => "pkmsg",
            _ => "msg",
        };
        Ok((kind, message.serialize().to_vec()))
    }
}

fn sender_key_name(group: &str, sender: &str) -> SenderKeyName {
    SenderKeyName::new(group.to_owned(), sender.to_owned())
}

/// `15550001234:3@s.whatsapp.net` → address `15550001234@s.whatsapp.net`, device 3.
fn signal_address(jid: &str) -> Result<ProtocolAddress> {
    let (user, server) = jid.split_once('@').context("a JID has an @")?;
    let (user, device) = match user.split_once(':') {
        Some((u, d)) => (u, d.parse::<u32>().context("device id")?),
        None => (user, 0),
    };
    Ok(ProtocolAddress::new(
        &format!("{user}@{server}"),
        DeviceId::from(device),
    ))
}

struct Identities {
    own: IdentityKeyPair,
    registration_id: u32,
    known: HashMap<String, IdentityKey>,
}

#[async_trait]
impl IdentityKeyStore for Identities {
    async fn get_identity_key_pair(&self) -> SignalResult<IdentityKeyPair> {
        Ok(self.own.clone())
    }

    async fn get_local_registration_id(&self) -> SignalResult<u32> {
        Ok(self.registration_id)
    }

    async fn save_identity(
        &mut self,
        address: &ProtocolAddress,
        identity: &IdentityKey,
    ) -> SignalResult<IdentityChange> {
        let previous = self.known.insert(address.to_string(), *identity);
        Ok(match previous {
            Some(p) if p != *identity => IdentityChange::ReplacedExisting,
            _ => IdentityChange::NewOrUnchanged,
        })
    }

    async fn is_trusted_identity(
        &self,
        _address: &ProtocolAddress,
        _identity: &IdentityKey,
        _direction: Direction,
    ) -> SignalResult<bool> {
        Ok(true)
    }

    async fn get_identity(&self, address: &ProtocolAddress) -> SignalResult<Option<IdentityKey>> {
        Ok(self.known.get(&address.to_string()).copied())
    }
}

struct PreKeys(HashMap<u32, PreKeyRecord>);

#[async_trait]
impl PreKeyStore for PreKeys {
    async fn get_pre_key(&self, id: PreKeyId) -> SignalResult<PreKeyRecord> {
        self.0
            .get(&u32::from(id))
            .cloned()
            .ok_or(SignalProtocolError::InvalidPreKeyId)
    }

    async fn save_pre_key(&mut self, id: PreKeyId, record: &PreKeyRecord) -> SignalResult<()> {
        self.0.insert(u32::from(id), record.clone());
        Ok(())
    }

    async fn remove_pre_key(&mut self, _id: PreKeyId) -> SignalResult<()> {
        // Kept: every send to a recipient that never answers is a new pkmsg on it.
        Ok(())
    }
}

struct SignedPreKeys(HashMap<u32, SignedPreKeyRecord>);

#[async_trait]
impl SignedPreKeyStore for SignedPreKeys {
    async fn get_signed_pre_key(&self, id: SignedPreKeyId) -> SignalResult<SignedPreKeyRecord> {
        self.0
            .get(&u32::from(id))
            .cloned()
            .ok_or(SignalProtocolError::InvalidSignedPreKeyId)
    }

    async fn save_signed_pre_key(
        &mut self,
        id: SignedPreKeyId,
        record: &SignedPreKeyRecord,
    ) -> SignalResult<()> {
        self.0.insert(u32::from(id), record.clone());
        Ok(())
    }
}

struct Sessions(HashMap<String, SessionRecord>);

#[async_trait]
impl SessionStore for Sessions {
    async fn load_session(&self, address: &ProtocolAddress) -> SignalResult<Option<SessionRecord>> {
        Ok(self.0.get(&address.to_string()).cloned())
    }

    async fn has_session(&self, address: &ProtocolAddress) -> SignalResult<bool> {
        Ok(self.0.contains_key(&address.to_string()))
    }

    async fn store_session(
        &mut self,
        address: &ProtocolAddress,
        record: SessionRecord,
    ) -> SignalResult<()> {
        self.0.insert(address.to_string(), record);
        Ok(())
    }
}

struct SenderKeys(HashMap<String, SenderKeyRecord>);

#[async_trait]
impl SenderKeyStore for SenderKeys {
    async fn store_sender_key(
        &mut self,
        name: &SenderKeyName,
        record: SenderKeyRecord,
    ) -> SignalResult<()> {
        self.0.insert(format!("{name:?}"), record);
        Ok(())
    }

    async fn load_sender_key(&self, name: &SenderKeyName) -> SignalResult<Option<SenderKeyRecord>> {
        Ok(self.0.get(&format!("{name:?}")).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use whatsapp_rust::buffa::Message as _;
    use whatsapp_rust::wacore::messages::{MessageUtils, decode_plaintext};
    use whatsapp_rust::waproto::whatsapp as wa;

    impl DeviceKeys {
        /// This device's bundle, as a companion would upload it.
        fn as_upload(&self) -> CompanionBundle {
            let key = |k: &[u8]| -> [u8; 32] { k.try_into().unwrap() };
            CompanionBundle {
                registration_id: self.registration_id,
                identity: key(self.identity.public_key().public_key_bytes()),
                signed_prekey_id: SIGNED_PREKEY_ID,
                signed_prekey: key(self.signed_prekey.public_key.public_key_bytes()),
                signed_prekey_signature: self.signed_prekey_signature.to_vec(),
                one_time: Some((PREKEY_ID, key(self.prekey.public_key.public_key_bytes()))),
                spare: Default::default(),
            }
        }
    }

    fn text(t: &str) -> Vec<u8> {
        MessageUtils::pad_message_v2(
            wa::Message {
                conversation: Some(t.to_owned()),
                ..Default::default()
            }
            .encode_to_vec(),
        )
    }

    #[test]
    fn each_one_time_prekey_is_handed_out_once() {
        let own = crate::signal::DeviceKeys::generate().unwrap();
        let mut bundle = own.as_upload();
        bundle.spare = [(7, [7; 32]), (8, [8; 32])].into();
        let ids: Vec<Option<u32>> = (0..4)
            .map(|_| bundle.take().one_time.map(|(id, _)| id))
            .collect();
        assert_eq!(ids, [Some(PREKEY_ID), Some(7), Some(8), None]);
    }

    #[tokio::test]
    async fn what_one_device_encrypts_the_other_decrypts_and_tampering_is_refused() {
        let mut alice = DeviceKeys::generate().unwrap();
        let mut bob = DeviceKeys::generate().unwrap();
        let bob_bundle = bob.as_upload();

        let (kind, data) = alice
            .encrypt_for("200:1@s.whatsapp.net", &bob_bundle, &text("first"))
            .await
            .unwrap();
        assert_eq!(kind, "pkmsg");
        let mut tampered = data.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(
            bob.decrypt("100:0@s.whatsapp.net", kind, &tampered)
                .await
                .is_err()
        );
        let plain = bob
            .decrypt("100:0@s.whatsapp.net", kind, &data)
            .await
            .unwrap();
        let message = decode_plaintext(&plain, 2).unwrap();
        assert_eq!(message.conversation.as_deref(), Some("first"));
        assert!(
            bob.decrypt("100:0@s.whatsapp.net", "msg", b"garbage")
                .await
                .is_err()
        );
    }
}
