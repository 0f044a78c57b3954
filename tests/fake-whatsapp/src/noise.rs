//! The server side of WhatsApp's Noise handshakes over a WebSocket: XX for new and
//! just-paired clients, IK for returning ones, and XX-fallback when an IK hello was made
//! for another server key. Afterwards, [`Secure`] carries binary nodes encrypted with
//! the two transport ciphers.

use anyhow::{Context, Result, anyhow, bail};
use axum::extract::ws::{Message, WebSocket};
use whatsapp_rust::buffa::{Message as _, MessageField};
use whatsapp_rust::wacore::framing::{FrameDecoder, encode_frame};
use whatsapp_rust::wacore::handshake::{NoiseCipher, NoiseHandshake};
use whatsapp_rust::wacore::libsignal::protocol::KeyPair;
use whatsapp_rust::wacore_binary::consts::{
    NOISE_PATTERN_IK, NOISE_PATTERN_XX, NOISE_PATTERN_XXFALLBACK, WA_CONN_HEADER,
};
use whatsapp_rust::wacore_binary::marshal::{marshal, unmarshal_ref};
use whatsapp_rust::wacore_binary::node::Node;
use whatsapp_rust::wacore_binary::util::unpack;
use whatsapp_rust::waproto::whatsapp::{self as wa, cert_chain, handshake_message};

/// Which handshake a connection used; tests check that returning clients use IK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    Xx,
    Ik,
    XxFallback,
}

/// A finished handshake: the client's login or registration payload and its key.
pub struct Accepted {
    pub secure: Secure,
    pub payload: wa::ClientPayload,
    pub client_static: [u8; 32],
    pub pattern: Pattern,
}

/// Reads length-prefixed frames from the WebSocket.
struct Frames {
    ws: WebSocket,
    decoder: FrameDecoder,
}

impl Frames {
    /// The next frame, or `None` once the client has closed the socket.
    async fn next(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            if let Some(frame) = self.decoder.decode_frame() {
                return Ok(Some(frame.to_vec()));
            }
            match self.ws.recv().await {
                Some(Ok(Message::Binary(data))) => self.decoder.feed(&data),
                Some(Ok(Message::Close(_))) | None => return Ok(None),
                Some(Ok(_)) => {} // pings, pongs and text are not part of the protocol
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    async fn send(&mut self, payload: &[u8]) -> Result<()> {
        let frame = encode_frame(payload, None).map_err(|e| anyhow!("framing: {e}"))?;
        self.ws.send(Message::Binary(frame.into())).await?;
        Ok(())
    }
}

fn pub32(kp: &KeyPair) -> [u8; 32] {
    kp.public_key
        .public_key_bytes()
        .try_into()
        .expect("X25519 public keys are 32 bytes")
}

fn key32(bytes: &[u8], what: &str) -> Result<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| anyhow!("{what} is {} bytes, not 32", bytes.len()))
}

/// A certificate chain naming `server_static` as the leaf key. Its signatures are
/// empty: only a client built with `danger-skip-cert-chain-verify` accepts it.
fn cert_chain(server_static: &[u8; 32]) -> Vec<u8> {
    // Valid from 2023-11 to 2030-03; a client skips IK outside that window.
    let details = |serial, issuer_serial, key: Vec<u8>| {
        cert_chain::noise_certificate::Details {
            serial: Some(serial),
            issuer_serial: Some(issuer_serial),
            key: Some(key),
            not_before: Some(1_700_000_000),
            not_after: Some(1_900_000_000),
        }
        .encode_to_vec()
    };
    wa::CertChain {
        intermediate: MessageField::some(cert_chain::NoiseCertificate {
            details: Some(details(1, 0, vec![0x11; 32])),
            signature: Some(vec![0; 64]),
        }),
        leaf: MessageField::some(cert_chain::NoiseCertificate {
            details: Some(details(2, 1, server_static.to_vec())),
            signature: Some(vec![0; 64]),
        }),
    }
    .encode_to_vec()
}

fn server_hello(ephemeral: [u8; 32], r#static: Option<Vec<u8>>, payload: Vec<u8>) -> Vec<u8> {
    wa::HandshakeMessage {
        server_hello: MessageField::some(handshake_message::ServerHello {
            ephemeral: Some(ephemeral.to_vec()),
            r#static,
            payload: Some(payload),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Runs the handshake on a fresh WebSocket with the server's long-term `server_static`.
pub async fn accept(ws: WebSocket, server_static: &KeyPair) -> Result<Accepted> {
    let mut frames = Frames {
        ws,
        decoder: FrameDecoder::new(),
    };
    // The first message starts with the connection header (after an optional
    // edge-routing preamble, which this fake never hands out but accepts).
    let first = loop {
        match frames.ws.recv().await {
            Some(Ok(Message::Binary(data))) => break data,
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("closed before the client hello"),
        }
    };
    let mut rest: &[u8] = &first;
    if rest.starts_with(b"ED\0\x01") && rest.len() >= 7 {
        let len = u32::from_be_bytes([0, rest[4], rest[5], rest[6]]) as usize;
        rest = rest.get(7 + len..).context("short edge-routing preamble")?;
    }
    let rest = rest
        .strip_prefix(&WA_CONN_HEADER[..])
        .context("the connection does not start with the WA header")?;
    frames.decoder.feed(rest);

    let hello = frames
        .next()
        .await?
        .context("closed before the client hello")?;
    let hello = wa::HandshakeMessage::decode_from_slice(&hello)
        .context("client hello")?
        .client_hello
        .into_option()
        .context("no client hello")?;
    let e_c = key32(
        hello.ephemeral.as_deref().unwrap_or_default(),
        "client ephemeral",
    )?;

    if let (Some(st), Some(payload)) = (hello.r#static.as_deref(), hello.payload.as_deref()) {
        return match accept_ik(frames, server_static, &e_c, st, payload).await? {
            Ok(accepted) => Ok(accepted),
            Err(frames) => accept_xx(frames, server_static, &e_c, Pattern::XxFallback).await,
        };
    }
    accept_xx(frames, server_static, &e_c, Pattern::Xx).await
}

/// IK: the hello carries the client's static key and login already. `Ok(Err(frames))`
/// when it was encrypted for another server key: the caller falls back to XX.
async fn accept_ik(
    mut frames: Frames,
    server_static: &KeyPair,
    e_c: &[u8; 32],
    encrypted_static: &[u8],
    encrypted_payload: &[u8],
) -> Result<std::result::Result<Accepted, Frames>> {
    let s_priv = server_static.private_key.serialize();
    let mut n = NoiseHandshake::new(NOISE_PATTERN_IK, &WA_CONN_HEADER)?;
    n.authenticate(&pub32(server_static));
    n.authenticate(e_c);
    n.mix_shared_secret(s_priv, e_c)?;
    let Ok(client_static) = n.decrypt(encrypted_static) else {
        return Ok(Err(frames));
    };
    let client_static = key32(&client_static, "client static")?;
    n.mix_shared_secret(s_priv, &client_static)?;
    let payload = n.decrypt(encrypted_payload).context("IK login payload")?;
    let payload = wa::ClientPayload::decode_from_slice(&payload).context("client payload")?;

    let e_s = whatsapp_rust::wacore::crypto::generate_curve_key_pair();
    let e_s_pub = pub32(&e_s);
    n.authenticate(&e_s_pub);
    n.mix_shared_secret(e_s.private_key.serialize(), e_c)?;
    n.mix_shared_secret(e_s.private_key.serialize(), &client_static)?;
    let sealed = n.encrypt(&cert_chain(&pub32(server_static)))?;
    frames.send(&server_hello(e_s_pub, None, sealed)).await?;
    let (read, write) = n.finish()?;
    Ok(Ok(Accepted {
        secure: Secure::new(frames, read, write),
        payload,
        client_static,
        pattern: Pattern::Ik,
    }))
}

/// XX (or XX-fallback after an unreadable IK hello): the server proves its key first.
async fn accept_xx(
    mut frames: Frames,
    server_static: &KeyPair,
    e_c: &[u8; 32],
    pattern: Pattern,
) -> Result<Accepted> {
    let name = match pattern {
        Pattern::XxFallback => NOISE_PATTERN_XXFALLBACK,
        _ => NOISE_PATTERN_XX,
    };
    let mut n = NoiseHandshake::new(name, &WA_CONN_HEADER)?;
    n.authenticate(e_c);
    let e_s = whatsapp_rust::wacore::crypto::generate_curve_key_pair();
    let e_s_pub = pub32(&e_s);
    n.authenticate(&e_s_pub);
    n.mix_shared_secret(e_s.private_key.serialize(), e_c)?;
    let server_pub = pub32(server_static);
    let sealed_static = n.encrypt(&server_pub)?;
    n.mix_shared_secret(server_static.private_key.serialize(), e_c)?;
    let sealed_cert = n.encrypt(&cert_chain(&server_pub))?;
    frames
        .send(&server_hello(e_s_pub, Some(sealed_static), sealed_cert))
        .await?;

    let finish = frames
        .next()
        .await?
        .context("closed before the client finish")?;
    let finish = wa::HandshakeMessage::decode_from_slice(&finish)
        .context("client finish")?
        .client_finish
        .into_option()
        .context("no client finish")?;
    let client_static = n
        .decrypt(finish.r#static.as_deref().unwrap_or_default())
        .context("client static")?;
    let client_static = key32(&client_static, "client static")?;
    n.mix_shared_secret(e_s.private_key.serialize(), &client_static)?;
    let payload = n
        .decrypt(finish.payload.as_deref().unwrap_or_default())
        .context("client payload")?;
    let payload = wa::ClientPayload::decode_from_slice(&payload).context("client payload")?;
    // Named from the client's side: its write cipher is our read cipher.
    let (read, write) = n.finish()?;
    Ok(Accepted {
        secure: Secure::new(frames, read, write),
        payload,
        client_static,
        pattern,
    })
}

/// The encrypted node transport after the handshake.
pub struct Secure {
    frames: Frames,
    read: NoiseCipher,
    write: NoiseCipher,
    read_counter: u32,
    write_counter: u32,
}

impl Secure {
    fn new(frames: Frames, read: NoiseCipher, write: NoiseCipher) -> Self {
        Self {
            frames,
            read,
            write,
            read_counter: 0,
            write_counter: 0,
        }
    }

    /// The next node from the client; `None` once it has closed the socket.
    /// Cancel-safe: a frame is consumed only when it is returned.
    pub async fn recv(&mut self) -> Result<Option<Node>> {
        let Some(mut frame) = self.frames.next().await? else {
            return Ok(None);
        };
        self.read
            .decrypt_in_place_with_counter(self.read_counter, &mut frame)
            .map_err(|e| anyhow!("cannot decrypt a frame: {e}"))?;
        self.read_counter += 1;
        let plain = unpack(&frame).map_err(|e| anyhow!("cannot unpack a frame: {e}"))?;
        let node = unmarshal_ref(&plain).map_err(|e| anyhow!("cannot decode a node: {e}"))?;
        Ok(Some(node.to_owned()))
    }

    pub async fn send(&mut self, node: &Node) -> Result<()> {
        let plain = marshal(node).map_err(|e| anyhow!("cannot encode a node: {e}"))?;
        let sealed = self
            .write
            .encrypt_with_counter(self.write_counter, &plain)
            .map_err(|e| anyhow!("cannot encrypt a frame: {e}"))?;
        self.write_counter += 1;
        self.frames.send(&sealed).await
    }

    /// Closes the connection after a goodbye stanza: waits up to `grace` for the client
    /// to close its side (discarding what it still sends, so that the socket closes
    /// cleanly instead of being reset with unread data), then drops it. Returns how
    /// many frames were discarded.
    pub async fn close(mut self, grace: std::time::Duration) -> usize {
        let mut discarded = 0;
        let drain = async {
            while let Ok(Some(_)) = self.frames.next().await {
                discarded += 1;
            }
        };
        let _ = tokio::time::timeout(grace, drain).await;
        drop(self.frames.ws);
        discarded
    }

    /// Drops the connection without a goodbye, as a network failure would.
    pub async fn abort(self) {
        drop(self.frames.ws);
    }
}
