//! Tests of the fake's many phones through its real socket: a companion simulated on
//! the wire (WebSocket, Noise XX as the initiator, binary nodes), which checks what
//! the fake's phones send with whatsapp-rust's own pairing helpers.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use whatsapp_rust::NodeBuilder;
use whatsapp_rust::buffa::{Message as _, MessageField};
use whatsapp_rust::wacore::crypto::generate_curve_key_pair;
use whatsapp_rust::wacore::framing::{FrameDecoder, encode_frame};
use whatsapp_rust::wacore::handshake::{HandshakeUtils, NoiseCipher, NoiseHandshake};
use whatsapp_rust::wacore::libsignal::protocol::KeyPair;
use whatsapp_rust::wacore::messages::decode_plaintext;
use whatsapp_rust::wacore::pair::{DeviceState, PairUtils};
use whatsapp_rust::wacore::pair_code::PairCodeUtils;
use whatsapp_rust::wacore_binary::consts::{NOISE_PATTERN_XX, WA_CONN_HEADER};
use whatsapp_rust::wacore_binary::marshal::{marshal, unmarshal_ref};
use whatsapp_rust::wacore_binary::node::Node;
use whatsapp_rust::wacore_binary::util::unpack;
use whatsapp_rust::waproto::whatsapp as wa;

use crate::node::{attr, bytes, child};
use crate::signal::DeviceKeys;
use crate::{Device, FakeWhatsApp, PHONE_USER};

const SECOND: &str = "6281100000001";
const SECOND_LID: &str = "77100000001";
const FRIEND: &str = "6281234567890";
const CODE: &str = "ABCD1234";
/// How long the companion waits for a stanza it expects.
const WAIT: Duration = Duration::from_secs(20);

/// A minimal WebSocket client: binary messages, unfragmented.
struct Ws {
    stream: TcpStream,
}

impl Ws {
    async fn connect(fake: &FakeWhatsApp) -> Result<Self> {
        let mut stream = TcpStream::connect(fake.addr).await?;
        let request = "GET /ws/chat HTTP/1.1\r\nhost: fake\r\nupgrade: websocket\r\n\
                       connection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                       sec-websocket-version: 13\r\n\r\n";
        stream.write_all(request.as_bytes()).await?;
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(stream.read_u8().await?);
        }
        ensure!(
            head.starts_with(b"HTTP/1.1 101"),
            "no upgrade: {}",
            String::from_utf8_lossy(&head)
        );
        Ok(Self { stream })
    }

    async fn send(&mut self, data: &[u8]) -> Result<()> {
        // A client masks its frames; a zero mask leaves the payload as it is.
        let mut frame = vec![0x82];
        match data.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65_536 => {
                frame.push(0x80 | 126);
                frame.extend((n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend((n as u64).to_be_bytes());
            }
        }
        frame.extend([0; 4]);
        frame.extend_from_slice(data);
        self.stream.write_all(&frame).await?;
        Ok(())
    }

    /// The next binary message; `None` once the server has closed.
    async fn recv(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            let mut head = [0u8; 2];
            if self.stream.read_exact(&mut head).await.is_err() {
                return Ok(None);
            }
            let len = match head[1] & 0x7f {
                126 => u64::from(self.stream.read_u16().await?),
                127 => self.stream.read_u64().await?,
                n => u64::from(n),
            };
            let mut payload = vec![0; usize::try_from(len)?];
            self.stream.read_exact(&mut payload).await?;
            match head[0] & 0x0f {
                0x2 => return Ok(Some(payload)),
                0x8 => return Ok(None),
                _ => {}
            }
        }
    }
}

/// A companion's connection after the Noise XX handshake.
struct Wire {
    ws: Ws,
    frames: FrameDecoder,
    read: NoiseCipher,
    write: NoiseCipher,
    read_counter: u32,
    write_counter: u32,
}

impl Wire {
    /// Connects with the Noise static key `noise` and sends `payload` (a login or a
    /// registration). The fake's certificate chain is unsigned: not checked here.
    async fn connect(
        fake: &FakeWhatsApp,
        noise: &KeyPair,
        payload: wa::ClientPayload,
    ) -> Result<Self> {
        let mut ws = Ws::connect(fake).await?;
        let mut frames = FrameDecoder::new();
        let ephemeral = generate_curve_key_pair();
        let e_pub = ephemeral.public_key.public_key_bytes();
        let mut n = NoiseHandshake::new(NOISE_PATTERN_XX, &WA_CONN_HEADER)?;
        n.authenticate(e_pub);
        let hello = HandshakeUtils::build_client_hello(e_pub).encode_to_vec();
        let hello = encode_frame(&hello, None)?;
        ws.send(&[&WA_CONN_HEADER[..], &hello].concat()).await?;

        let reply = next_frame(&mut ws, &mut frames)
            .await?
            .context("no server hello")?;
        let (e_s, sealed_static, sealed_chain) = HandshakeUtils::parse_server_hello(&reply)?;
        n.authenticate(&e_s);
        n.mix_shared_secret(ephemeral.private_key.serialize(), &e_s)?;
        let server_static = n.decrypt(&sealed_static)?;
        n.mix_shared_secret(ephemeral.private_key.serialize(), &server_static)?;
        n.decrypt(&sealed_chain)?;
        let sealed_static = n.encrypt(noise.public_key.public_key_bytes())?;
        n.mix_shared_secret(noise.private_key.serialize(), &e_s)?;
        let sealed_payload = n.encrypt(&payload.encode_to_vec())?;
        let finish = HandshakeUtils::build_client_finish(sealed_static, sealed_payload);
        ws.send(&encode_frame(&finish.encode_to_vec(), None)?)
            .await?;
        let (write, read) = n.finish()?;
        Ok(Self {
            ws,
            frames,
            read,
            write,
            read_counter: 0,
            write_counter: 0,
        })
    }

    async fn send(&mut self, node: &Node) -> Result<()> {
        let plain = marshal(node).map_err(|e| anyhow!("encoding: {e}"))?;
        let sealed = self
            .write
            .encrypt_with_counter(self.write_counter, &plain)
            .map_err(|e| anyhow!("encrypting: {e}"))?;
        self.write_counter += 1;
        self.ws.send(&encode_frame(&sealed, None)?).await
    }

    /// The next node from the fake; `None` once it has closed.
    async fn recv(&mut self) -> Result<Option<Node>> {
        let Some(mut frame) = next_frame(&mut self.ws, &mut self.frames).await? else {
            return Ok(None);
        };
        self.read
            .decrypt_in_place_with_counter(self.read_counter, &mut frame)
            .map_err(|e| anyhow!("decrypting: {e}"))?;
        self.read_counter += 1;
        let plain = unpack(&frame).map_err(|e| anyhow!("unpacking: {e}"))?;
        let node = unmarshal_ref(&plain).map_err(|e| anyhow!("decoding: {e}"))?;
        Ok(Some(node.to_owned()))
    }

    /// The next node `wanted` takes, skipping the others; an error after [`WAIT`].
    async fn expect(&mut self, what: &str, wanted: impl Fn(&Node) -> bool) -> Result<Node> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let node = tokio::time::timeout_at(deadline, self.recv())
                .await
                .map_err(|_| anyhow!("no {what} within {WAIT:?}"))??
                .with_context(|| format!("closed before {what}"))?;
            if wanted(&node) {
                return Ok(node);
            }
        }
    }

    /// Sends the IQ `node` and waits for its result.
    async fn ask(&mut self, node: Node) -> Result<Node> {
        let id = attr(&node, "id").context("an IQ has an id")?;
        self.send(&node).await?;
        let reply = self
            .expect("the IQ's answer", |n| {
                n.tag == "iq" && attr(n, "id").as_deref() == Some(&id)
            })
            .await?;
        ensure!(
            attr(&reply, "type").as_deref() == Some("result"),
            "the fake refused: {}",
            crate::show(&reply)
        );
        Ok(reply)
    }
}

async fn next_frame(ws: &mut Ws, frames: &mut FrameDecoder) -> Result<Option<Vec<u8>>> {
    loop {
        if let Some(frame) = frames.decode_frame() {
            return Ok(Some(frame.to_vec()));
        }
        match ws.recv().await? {
            Some(data) => frames.feed(&data),
            None => return Ok(None),
        }
    }
}

/// A new companion's keys, as whatsapp-rust keeps them.
struct Companion {
    noise: KeyPair,
    identity: KeyPair,
    adv_secret: [u8; 32],
}

impl Companion {
    fn new() -> Self {
        Self {
            noise: generate_curve_key_pair(),
            identity: generate_curve_key_pair(),
            adv_secret: rand::random(),
        }
    }

    fn registration() -> wa::ClientPayload {
        wa::ClientPayload {
            device_pairing_data: MessageField::some(Default::default()),
            ..Default::default()
        }
    }

    /// Answers the `pair-success` on `wire` as the client does (its own check of the
    /// ADV identity, then its countersignature), then takes the 515. Returns the
    /// pair-success.
    async fn countersign(&self, wire: &mut Wire) -> Result<Node> {
        let success = wire
            .expect("pair-success", |n| child(n, "pair-success").is_some())
            .await?;
        let identity = child(&success, "pair-success")
            .and_then(|p| child(p, "device-identity"))
            .and_then(bytes)
            .context("no device-identity")?;
        let state = DeviceState {
            identity_key: self.identity.clone(),
            noise_key: self.noise.clone(),
            adv_secret_key: self.adv_secret,
        };
        let (signed, key_index) = PairUtils::do_pair_crypto(&state, identity)
            .map_err(|e| anyhow!("the client refuses the pair-success: {e:?}"))?;
        let id = attr(&success, "id").context("pair-success without id")?;
        wire.send(&PairUtils::build_pair_success_response(
            &id, signed, key_index,
        ))
        .await?;
        wire.expect("the 515", |n| {
            n.tag == "stream:error" && attr(n, "code").as_deref() == Some("515")
        })
        .await?;
        Ok(success)
    }

    /// The phone `phone` scans this companion's QR code. Returns the device and the
    /// pair-success.
    async fn pair_by_qr(&self, fake: &FakeWhatsApp, phone: &str) -> Result<(Device, Node)> {
        let mut wire = Wire::connect(fake, &self.noise, Self::registration()).await?;
        let refs = wire
            .expect("pair-device", |n| child(n, "pair-device").is_some())
            .await?;
        let reference = child(&refs, "pair-device")
            .and_then(|p| child(p, "ref"))
            .and_then(bytes)
            .context("no ref")?;
        let key = |kp: &KeyPair| STANDARD.encode(kp.public_key.public_key_bytes());
        let qr = format!(
            "{},{},{},{}",
            String::from_utf8_lossy(reference),
            key(&self.noise),
            key(&self.identity),
            STANDARD.encode(self.adv_secret)
        );
        let scanning = {
            let (fake, phone) = (fake.clone(), phone.to_owned());
            tokio::spawn(async move { fake.scan_as(&phone, &qr).await })
        };
        let success = self.countersign(&mut wire).await?;
        Ok((scanning.await??, success))
    }

    /// Logs in as device `id` of `phone`: the `<success>` or `<failure>` and the
    /// connection.
    async fn login(&self, fake: &FakeWhatsApp, phone: &str, id: u32) -> Result<(Node, Wire)> {
        let payload = wa::ClientPayload {
            username: Some(phone.parse()?),
            device: Some(id),
            ..Default::default()
        };
        let mut wire = Wire::connect(fake, &self.noise, payload).await?;
        let answer = wire
            .expect("success or failure", |n| {
                n.tag == "success" || n.tag == "failure"
            })
            .await?;
        Ok((answer, wire))
    }
}

/// The account identity key a pair-success's ADV identity is signed with, and its
/// `<device jid lid>`.
fn signed_by(success: &Node) -> (Vec<u8>, String, String) {
    let pair = child(success, "pair-success").unwrap();
    let hmac = wa::ADVSignedDeviceIdentityHMAC::decode_from_slice(
        bytes(child(pair, "device-identity").unwrap()).unwrap(),
    )
    .unwrap();
    let signed =
        wa::ADVSignedDeviceIdentity::decode_from_slice(hmac.details.as_deref().unwrap()).unwrap();
    let device = child(pair, "device").unwrap();
    (
        signed.account_signature_key.unwrap(),
        attr(device, "jid").unwrap(),
        attr(device, "lid").unwrap(),
    )
}

fn identity_of(fake: &FakeWhatsApp, phone: &str) -> Vec<u8> {
    let account = fake.shared.account(phone).unwrap();
    account.phone.identity_public().to_vec()
}

async fn with_second_phone() -> FakeWhatsApp {
    let fake = FakeWhatsApp::start_local().await.unwrap();
    fake.add_phone(SECOND, SECOND_LID, "Second Phone").unwrap();
    fake
}

#[tokio::test]
async fn a_second_phone_pairs_its_own_companion_with_its_identity_number_and_lid() {
    let fake = with_second_phone().await;
    let first = Companion::new();
    let (device, success) = first.pair_by_qr(&fake, PHONE_USER).await.unwrap();
    assert_eq!(device.phone, PHONE_USER);
    let second = Companion::new();
    let (other, success2) = second.pair_by_qr(&fake, SECOND).await.unwrap();

    // Devices are numbered per phone, as WhatsApp does: both are their phone's 1.
    assert_eq!((device.id, other.id), (1, 1));
    assert_eq!(other.phone, SECOND);
    assert_eq!(other.jid, format!("{SECOND}:1@s.whatsapp.net"));
    let (key, jid, lid) = signed_by(&success2);
    assert_eq!(key, identity_of(&fake, SECOND));
    assert_ne!(key, identity_of(&fake, PHONE_USER));
    assert_eq!(jid, other.jid);
    assert_eq!(lid, format!("{SECOND_LID}:1@lid"));
    let (key, jid, lid) = signed_by(&success);
    assert_eq!(key, identity_of(&fake, PHONE_USER));
    assert_eq!(jid, format!("{PHONE_USER}:1@s.whatsapp.net"));
    assert_eq!(lid, format!("{}:1@lid", crate::PHONE_LID));
    assert_eq!(fake.devices_of(SECOND).len(), 1);
    assert_eq!(fake.devices_of(PHONE_USER)[0].id, 1);

    // It logs in as its own phone's device, with its phone's LID; not as another's.
    let (answer, _wire) = second.login(&fake, SECOND, other.id).await.unwrap();
    assert_eq!(answer.tag, "success", "{}", crate::show(&answer));
    assert_eq!(
        attr(&answer, "lid").as_deref(),
        Some(format!("{SECOND_LID}:1@lid").as_str())
    );
    // The default phone's device 1 is another companion: its noise key is not this.
    let (answer, _) = second.login(&fake, PHONE_USER, other.id).await.unwrap();
    assert_eq!(answer.tag, "failure", "{}", crate::show(&answer));
    assert_eq!(fake.problems(), Vec::<String>::new());
}

#[tokio::test]
async fn a_scan_by_an_unknown_phone_links_nothing() {
    let fake = FakeWhatsApp::start_local().await.unwrap();
    let err = fake
        .scan_as("6289999999999", "2@x,a,b,c")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a phone"), "{err:#}");
    assert!(fake.devices().is_empty());
}

#[tokio::test]
async fn a_pairing_code_for_the_second_phone_links_the_companion_with_it() {
    let fake = with_second_phone().await;
    let companion = Companion::new();
    let mut wire = Wire::connect(&fake, &companion.noise, Companion::registration())
        .await
        .unwrap();
    wire.expect("pair-device", |n| child(n, "pair-device").is_some())
        .await
        .unwrap();
    let ephemeral = generate_curve_key_pair();
    let public =
        |kp: &KeyPair| -> [u8; 32] { kp.public_key.public_key_bytes().try_into().unwrap() };
    let hello = PairCodeUtils::build_companion_hello_iq(
        SECOND,
        &public(&companion.noise),
        &PairCodeUtils::encrypt_ephemeral_pub(&public(&ephemeral), CODE),
        "1",
        "Chrome (Linux)",
        true,
        "hello-1".into(),
    );
    wire.ask(hello).await.unwrap();
    let pending = fake.pair_codes();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].phone, SECOND);

    let typing = {
        let fake = fake.clone();
        tokio::spawn(async move { fake.enter_code(CODE).await })
    };
    let note = wire
        .expect("primary_hello", |n| n.tag == "notification")
        .await
        .unwrap();
    let reg = child(&note, crate::link_code::REG).unwrap();
    let field = |tag: &str| child(reg, tag).and_then(bytes).unwrap().to_vec();
    let primary_identity: [u8; 32] = field("primary_identity_pub").try_into().unwrap();
    assert_eq!(primary_identity.to_vec(), identity_of(&fake, SECOND));
    let primary_ephemeral = PairCodeUtils::decrypt_primary_ephemeral_pub(
        &field("link_code_pairing_wrapped_primary_ephemeral_pub"),
        CODE,
    )
    .unwrap();
    let (bundle, adv_secret) = PairCodeUtils::prepare_key_bundle(
        &ephemeral,
        &primary_ephemeral,
        &primary_identity,
        &companion.identity,
    )
    .unwrap();
    let finish = PairCodeUtils::build_companion_finish_iq(
        SECOND,
        bundle,
        &public(&companion.identity),
        &field("link_code_pairing_ref"),
        "finish-1".into(),
    );
    wire.ask(finish).await.unwrap();
    let companion = Companion {
        adv_secret,
        ..companion
    };
    let success = companion.countersign(&mut wire).await.unwrap();
    let device = typing.await.unwrap().unwrap();

    assert_eq!(device.phone, SECOND);
    let (key, jid, lid) = signed_by(&success);
    assert_eq!(key, identity_of(&fake, SECOND));
    assert_eq!(jid, format!("{SECOND}:{}@s.whatsapp.net", device.id));
    assert_eq!(lid, format!("{SECOND_LID}:{}@lid", device.id));
    assert!(fake.devices_of(PHONE_USER).is_empty());
}

/// The logged-in companion `device` publishes new prekeys on `wire`, and checks the
/// app-state key share its own phone then sends it. Returns its Signal keys.
async fn publish(wire: &mut Wire, device: &Device) -> Result<DeviceKeys> {
    let mut own = DeviceKeys::generate()?;
    let upload = own.bundle(&device.jid);
    let children = upload.children().context("a bundle")?.iter().map(|c| {
        if c.tag == "key" {
            NodeBuilder::new("list").children([c.clone()]).build()
        } else {
            c.clone()
        }
    });
    let upload = NodeBuilder::new("iq")
        .attr("id", "prekeys-1")
        .attr("type", "set")
        .attr("xmlns", "encrypt")
        .children(children)
        .build();
    wire.ask(upload).await?;
    let share = wire.expect("the key share", |n| n.tag == "message").await?;
    let phone = format!("{}@s.whatsapp.net", device.phone);
    ensure!(
        attr(&share, "from").as_deref() == Some(phone.as_str()),
        "the key share is not from the companion's phone: {}",
        crate::show(&share)
    );
    let enc = child(&share, "enc").context("no <enc>")?;
    let plain = own
        .decrypt(
            &phone,
            &attr(enc, "type").unwrap_or_default(),
            bytes(enc).context("no bytes")?,
        )
        .await
        .context("not encrypted by the companion's phone for its keys")?;
    let message = decode_plaintext(&plain, 2)?;
    ensure!(message.protocol_message.is_set(), "no protocol message");
    Ok(own)
}

/// Decrypts a message [`FRIEND`] sent to the companion whose keys are `own`.
async fn read_from_friend(own: &mut DeviceKeys, delivered: &Node) -> Result<wa::Message> {
    let enc = child(delivered, "enc").context("no <enc>")?;
    let friend = format!("{FRIEND}@s.whatsapp.net");
    let plain = own
        .decrypt(
            &friend,
            &attr(enc, "type").unwrap_or_default(),
            bytes(enc).context("no bytes")?,
        )
        .await?;
    decode_plaintext(&plain, 2)
}

#[tokio::test]
async fn each_phones_device_1_keeps_its_own_prekeys_deliveries_and_offline_queue() {
    let fake = with_second_phone().await;
    fake.add_contact(FRIEND, crate::ContactInfo::default())
        .unwrap();
    let (a1, b1, a2) = (Companion::new(), Companion::new(), Companion::new());
    let (dev_a1, _) = a1.pair_by_qr(&fake, PHONE_USER).await.unwrap();
    let (dev_b1, _) = b1.pair_by_qr(&fake, SECOND).await.unwrap();
    let (dev_a2, _) = a2.pair_by_qr(&fake, PHONE_USER).await.unwrap();
    // Per phone: the default phone's second companion is its 2, the other's first 1.
    assert_eq!((dev_a1.id, dev_b1.id, dev_a2.id), (1, 1, 2));
    assert_eq!(dev_a1.jid, format!("{PHONE_USER}:1@s.whatsapp.net"));
    assert_eq!(dev_b1.jid, format!("{SECOND}:1@s.whatsapp.net"));
    assert_eq!(dev_a2.jid, format!("{PHONE_USER}:2@s.whatsapp.net"));

    // Both devices 1 log in and publish their own prekeys; each gets its own phone's
    // key share, encrypted for its own keys.
    let (answer, mut wire_a) = a1.login(&fake, PHONE_USER, 1).await.unwrap();
    assert_eq!(answer.tag, "success", "{}", crate::show(&answer));
    let mut own_a = publish(&mut wire_a, &dev_a1).await.unwrap();
    let (answer, mut wire_b) = b1.login(&fake, SECOND, 1).await.unwrap();
    assert_eq!(answer.tag, "success", "{}", crate::show(&answer));
    let mut own_b = publish(&mut wire_b, &dev_b1).await.unwrap();

    // A message to the default account reaches its device 1 only, encrypted for the
    // prekeys that device published (not those the other phone's device 1 did).
    let id_a = fake.deliver(FRIEND, "for A").await.unwrap();
    let delivered = wire_a
        .expect("A's message", |n| {
            n.tag == "message" && attr(n, "id").as_deref() == Some(id_a.as_str())
        })
        .await
        .unwrap();
    let message = read_from_friend(&mut own_a, &delivered).await.unwrap();
    assert_eq!(message.conversation.as_deref(), Some("for A"));
    let id_b = fake.deliver_to(SECOND, FRIEND, "for B").await.unwrap();
    let delivered = wire_b
        .expect("B's message", |n| {
            assert_ne!(
                attr(n, "id").as_deref(),
                Some(id_a.as_str()),
                "A's message on B"
            );
            n.tag == "message" && attr(n, "id").as_deref() == Some(id_b.as_str())
        })
        .await
        .unwrap();
    let message = read_from_friend(&mut own_b, &delivered).await.unwrap();
    assert_eq!(message.conversation.as_deref(), Some("for B"));

    // Each waits in its own device's offline queue.
    let queued = |jid: &str| -> Vec<String> {
        let world = fake.shared.world();
        let queue = world.unacked.get(jid).cloned().unwrap_or_default();
        queue.into_iter().map(|(id, _)| id).collect()
    };
    assert_eq!(queued(&dev_a1.jid), vec![id_a.clone()]);
    assert_eq!(queued(&dev_b1.jid), vec![id_b.clone()]);

    // B's device 1 acknowledges its message: only its own queue empties.
    let receipt = NodeBuilder::new("receipt")
        .attr("id", id_b.clone())
        .attr("to", format!("{FRIEND}@s.whatsapp.net"))
        .build();
    wire_b.send(&receipt).await.unwrap();
    let passive = |id: &str| {
        NodeBuilder::new("iq")
            .attr("id", id.to_owned())
            .attr("type", "set")
            .attr("xmlns", "passive")
            .children([NodeBuilder::new("active").build()])
            .build()
    };
    wire_b.ask(passive("passive-b")).await.unwrap();
    let offline = wire_b
        .expect("the offline count", |n| {
            assert_ne!(
                n.tag,
                "message",
                "B got a message again: {}",
                crate::show(n)
            );
            n.tag == "ib"
        })
        .await
        .unwrap();
    let count = |ib: &Node| child(ib, "offline").and_then(|o| attr(o, "count"));
    assert_eq!(count(&offline).as_deref(), Some("0"));
    assert!(queued(&dev_b1.jid).is_empty());
    assert_eq!(queued(&dev_a1.jid), vec![id_a.clone()]);

    // A's device 1 still gets its own message again, and nothing of B's.
    wire_a.ask(passive("passive-a")).await.unwrap();
    let again = wire_a
        .expect("A's message again", |n| n.tag == "message" || n.tag == "ib")
        .await
        .unwrap();
    assert_eq!(attr(&again, "id").as_deref(), Some(id_a.as_str()));
    assert_eq!(attr(&again, "offline").as_deref(), Some("1"));
    let offline = wire_a
        .expect("the offline count", |n| n.tag == "ib" || n.tag == "message")
        .await
        .unwrap();
    assert_eq!(count(&offline).as_deref(), Some("1"));
    assert_eq!(fake.unacked(), 1);
    assert_eq!(fake.problems(), Vec::<String>::new());
}

#[tokio::test]
async fn the_second_phones_companion_gets_its_key_share_and_messages_from_its_phone() {
    let fake = with_second_phone().await;
    fake.add_contact(FRIEND, crate::ContactInfo::default())
        .unwrap();
    let companion = Companion::new();
    let (device, _) = companion.pair_by_qr(&fake, SECOND).await.unwrap();
    let (answer, mut wire) = companion.login(&fake, SECOND, device.id).await.unwrap();
    assert_eq!(answer.tag, "success");

    // The companion publishes its prekeys; its phone shares the app-state key.
    let mut own = publish(&mut wire, &device).await.unwrap();

    // A contact writes to the second account: its companion reads it. The default
    // account has no companion logged in, and the message does not go elsewhere.
    let id = fake
        .deliver_to(SECOND, FRIEND, "hello second")
        .await
        .unwrap();
    let delivered = wire
        .expect("the message", |n| {
            n.tag == "message" && attr(n, "id").as_deref() == Some(id.as_str())
        })
        .await
        .unwrap();
    let message = read_from_friend(&mut own, &delivered).await.unwrap();
    assert_eq!(message.conversation.as_deref(), Some("hello second"));
    let err = fake
        .deliver(FRIEND, "to the default account")
        .await
        .unwrap_err();
    assert!(err.to_string().contains(PHONE_USER), "{err:#}");

    // Faults of the default phone leave it alone; its own reach it.
    assert_eq!(fake.replace_session_of(PHONE_USER), 0);
    assert_eq!(fake.unlink_device_of(PHONE_USER), 0);
    assert!(!fake.devices_of(SECOND)[0].removed);
    assert_eq!(fake.unlink_device_of(SECOND), 1);
    let ended = wire
        .expect("the unlink", |n| n.tag == "stream:error")
        .await
        .unwrap();
    assert_eq!(attr(&ended, "code").as_deref(), Some("401"));
    assert!(fake.devices_of(SECOND)[0].removed);
    assert_eq!(fake.problems(), Vec::<String>::new());
}
