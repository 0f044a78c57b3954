//! Linking a companion with a pairing code instead of a QR code ("link with phone
//! number instead"): the stanzas of that flow and the phone's side of its crypto.
//!
//! 1. The companion asks for a code: `<iq xmlns="md" type="set">` with
//!    `<link_code_companion_reg stage="companion_hello" jid="PHONE@s.whatsapp.net">`,
//!    carrying its ephemeral key wrapped with the code (see [`PrimaryHello::new`]). The
//!    server answers with a `<link_code_pairing_ref>`.
//! 2. The phone's user types the code: the companion gets a
//!    `<notification type="link_code_companion_reg">` with
//!    `<link_code_companion_reg stage="primary_hello">`: the phone's ephemeral key,
//!    wrapped with the code, and its identity key.
//! 3. The companion answers with `stage="companion_finish"`: a key bundle sealed under
//!    the ephemeral key agreement. The phone opens it and derives the ADV secret the
//!    `pair-success` is MACed with, as in the QR flow.
//!
//! The wrapping of the ephemeral keys (AES-CTR under a PBKDF2 of the code) carries no
//! check: a wrong code only shows when the key bundle does not open.

use anyhow::{Context, Result, anyhow, bail, ensure};
use whatsapp_rust::NodeBuilder;
use whatsapp_rust::wacore::companion_reg::CompanionOs;
use whatsapp_rust::wacore::crypto::{generate_curve_key_pair, hkdf_sha256_into};
use whatsapp_rust::wacore::libsignal::crypto::aes_256_gcm_decrypt;
use whatsapp_rust::wacore::libsignal::protocol::{KeyPair, PublicKey};
use whatsapp_rust::wacore::pair_code::PairCodeUtils;
use whatsapp_rust::wacore_binary::node::Node;

use crate::node::{SERVER, attr, bytes, child};

/// The tag of the registration node, and the `type` of the notification carrying it.
pub const REG: &str = "link_code_companion_reg";

/// HKDF info of the key that seals the companion's key bundle.
const BUNDLE_KEY_INFO: &[u8] = b"link_code_pairing_key_bundle_encryption_key";
/// HKDF info of the ADV secret.
const ADV_SECRET_INFO: &[u8] = b"adv_secret";
/// Salt, IV and sealed ephemeral key of a wrapped ephemeral key.
const WRAPPED_LEN: usize = 32 + 16 + 32;
/// Salt, IV, then the sealed bundle (companion identity key, phone identity key, 32
/// random bytes) and its GCM tag.
const BUNDLE_LEN: usize = 32 + 12 + 96 + 16;
/// `<companion_platform_id>`s a web companion may send (`CompanionWebClientType`);
/// `0` (unknown) is refused.
const PLATFORM_IDS: &[u8] = b"123456789def";

/// The code as the phone's user types it: 8 characters of the Crockford alphabet
/// (`1-9`, `A-Z` without `I`, `O`, `U`), in any case, with or without the dash
/// WhatsApp shows in the middle.
pub fn normalize_code(typed: &str) -> Result<String> {
    let code: String = typed
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    ensure!(
        PairCodeUtils::validate_code(&code),
        "{typed:?} is not a pairing code (8 characters of 1-9 and A-Z without I, O, U)"
    );
    Ok(code)
}

/// The stage of a pair-code stanza (`companion_hello`, `companion_finish`), if `node` is
/// one.
pub fn stage(node: &Node) -> Option<String> {
    if node.tag != "iq" || attr(node, "xmlns").as_deref() != Some("md") {
        return None;
    }
    child(node, REG).and_then(|reg| attr(reg, "stage"))
}

/// Why the server refuses a `companion_hello`: the `<error>` it answers with, and
/// whether the client is at fault (a malformed request) rather than the user.
#[derive(Debug)]
pub struct Refusal {
    pub code: u16,
    pub text: &'static str,
    pub reason: String,
    pub malformed: bool,
}

impl Refusal {
    /// WhatsApp answers `bad-request` both to a malformed request and to a number it
    /// will not send a code for.
    fn bad_request(reason: impl Into<String>, malformed: bool) -> Self {
        Self {
            code: 400,
            text: "bad-request",
            reason: reason.into(),
            malformed,
        }
    }
}

/// A companion's request for a pairing code, checked.
#[derive(Debug, Clone)]
pub struct CompanionHello {
    /// The phone number the code is for, digits only.
    pub phone: String,
    /// The companion's ephemeral key, wrapped with the code.
    pub wrapped: [u8; WRAPPED_LEN],
    /// `<companion_platform_id>`, e.g. `1` for Chrome.
    pub platform_id: String,
    /// `<companion_platform_display>`, e.g. `Chrome (Linux)`.
    pub platform: String,
    pub push_notification: bool,
}

/// Checks the `companion_hello` IQ `iq` of the connection whose Noise static key is
/// `noise_key`. Only a number `is_phone` says is one of the fake's phones gets a code.
pub fn companion_hello(
    iq: &Node,
    is_phone: impl Fn(&str) -> bool,
    noise_key: &[u8; 32],
) -> Result<CompanionHello, Refusal> {
    let malformed = |reason: String| Refusal::bad_request(reason, true);
    let reg = child(iq, REG).ok_or_else(|| malformed(format!("no <{REG}>")))?;
    if attr(iq, "type").as_deref() != Some("set") {
        return Err(malformed("companion_hello is not a set".into()));
    }
    let phone = phone_of(reg).map_err(|e| malformed(format!("{e:#}")))?;
    let push_notification = match attr(reg, "should_show_push_notification").as_deref() {
        Some("true") => true,
        Some("false") => false,
        other => {
            return Err(malformed(format!(
                "should_show_push_notification is {other:?}, not true or false"
            )));
        }
    };
    let field = |tag: &str| {
        child(reg, tag)
            .and_then(bytes)
            .ok_or_else(|| malformed(format!("no <{tag}>")))
    };
    let wrapped: [u8; WRAPPED_LEN] = field("link_code_pairing_wrapped_companion_ephemeral_pub")?
        .try_into()
        .map_err(|_| {
            malformed(format!(
                "the wrapped ephemeral key is not {WRAPPED_LEN} bytes"
            ))
        })?;
    if field("companion_server_auth_key_pub")? != noise_key {
        return Err(malformed(
            "companion_server_auth_key_pub is not the connection's noise key".into(),
        ));
    }
    let platform_id = field("companion_platform_id")?;
    if !matches!(platform_id, [b] if PLATFORM_IDS.contains(b)) {
        return Err(malformed(format!(
            "companion_platform_id {:?} is not a web client type",
            String::from_utf8_lossy(platform_id)
        )));
    }
    let platform = String::from_utf8(field("companion_platform_display")?.to_vec())
        .map_err(|_| malformed("companion_platform_display is not UTF-8".into()))?;
    // `Browser (OS)`, and the server refuses what is not an OS.
    let os = platform
        .strip_suffix(')')
        .and_then(|p| p.split_once(" ("))
        .filter(|(browser, _)| !browser.is_empty())
        .map(|(_, os)| os);
    if os.and_then(CompanionOs::classify).is_none() {
        return Err(malformed(format!(
            "companion_platform_display {platform:?} is not \"Browser (OS)\""
        )));
    }
    if field("link_code_pairing_nonce")? != [0] {
        return Err(malformed(
            "link_code_pairing_nonce is not a single 0".into(),
        ));
    }
    if !is_phone(&phone) {
        return Err(Refusal::bad_request(
            format!("a code for {phone}, which is not a phone of the fake"),
            false,
        ));
    }
    Ok(CompanionHello {
        phone,
        wrapped,
        platform_id: String::from_utf8_lossy(platform_id).into_owned(),
        platform,
        push_notification,
    })
}

/// The answer to a `companion_hello`: the pairing ref.
pub fn companion_hello_result(iq: &Node, reference: &[u8]) -> Node {
    crate::node::iq_result(
        iq,
        vec![
            NodeBuilder::new(REG)
                .children([NodeBuilder::new("link_code_pairing_ref")
                    .bytes(reference.to_vec())
                    .build()])
                .build(),
        ],
    )
}

/// The notification that the phone's user typed the code.
pub fn primary_hello(id: &str, reference: &[u8], hello: &PrimaryHello, identity: &[u8]) -> Node {
    NodeBuilder::new("notification")
        .attr("from", SERVER)
        .attr("type", REG)
        .attr("id", id)
        .attr("t", crate::unix_now().to_string())
        .children([NodeBuilder::new(REG)
            .attr("stage", "primary_hello")
            .children([
                NodeBuilder::new("link_code_pairing_wrapped_primary_ephemeral_pub")
                    .bytes(hello.wrapped().to_vec())
                    .build(),
                NodeBuilder::new("primary_identity_pub")
                    .bytes(identity.to_vec())
                    .build(),
                NodeBuilder::new("link_code_pairing_ref")
                    .bytes(reference.to_vec())
                    .build(),
            ])
            .build()])
        .build()
}

/// A companion's `companion_finish`, read.
#[derive(Debug, Clone)]
pub struct CompanionFinish {
    pub phone: String,
    pub key_bundle: Vec<u8>,
    pub identity_key: [u8; 32],
    pub reference: Vec<u8>,
}

/// Reads the `companion_finish` IQ `iq`.
pub fn companion_finish(iq: &Node) -> Result<CompanionFinish> {
    let reg = child(iq, REG).with_context(|| format!("no <{REG}>"))?;
    ensure!(
        attr(iq, "type").as_deref() == Some("set"),
        "companion_finish is not a set"
    );
    let field = |tag: &str| {
        child(reg, tag)
            .and_then(bytes)
            .with_context(|| format!("no <{tag}>"))
    };
    Ok(CompanionFinish {
        phone: phone_of(reg)?,
        key_bundle: field("link_code_pairing_wrapped_key_bundle")?.to_vec(),
        identity_key: field("companion_identity_public")?
            .try_into()
            .map_err(|_| anyhow!("companion_identity_public is not 32 bytes"))?,
        reference: field("link_code_pairing_ref")?.to_vec(),
    })
}

/// The digits of `jid="PHONE@s.whatsapp.net"`.
fn phone_of(reg: &Node) -> Result<String> {
    let jid = attr(reg, "jid").context("no jid")?;
    match jid.split_once('@') {
        Some((user, "s.whatsapp.net"))
            if !user.is_empty() && user.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(user.to_owned())
        }
        _ => bail!("jid {jid:?} is not PHONE@s.whatsapp.net"),
    }
}

/// The phone's side once its user typed the code: its ephemeral key pair, and the
/// companion's ephemeral key as read with the code.
pub struct PrimaryHello {
    ephemeral: KeyPair,
    companion_ephemeral: [u8; 32],
    wrapped: [u8; WRAPPED_LEN],
}

impl PrimaryHello {
    /// The phone's user typed `code` (normalized): reads the companion's ephemeral key
    /// out of `companion_wrapped` with it, and wraps a new ephemeral key of the phone's
    /// with it. A wrapped key is `salt (32) || iv (16) || key (32)`, the key sealed with
    /// AES-256-CTR under PBKDF2-SHA256(code, salt, 2^17 rounds), the same both ways, so
    /// wacore's helpers do both. Slow (two such PBKDF2s): run it off the async threads.
    pub fn new(code: &str, companion_wrapped: &[u8]) -> Result<Self> {
        ensure!(
            companion_wrapped.len() == WRAPPED_LEN,
            "the companion's wrapped key is {} bytes, not {WRAPPED_LEN}",
            companion_wrapped.len()
        );
        let companion_ephemeral =
            PairCodeUtils::decrypt_primary_ephemeral_pub(companion_wrapped, code)
                .map_err(|e| anyhow!("unwrapping the companion's key: {e}"))?;
        let ephemeral = generate_curve_key_pair();
        let public: [u8; 32] = ephemeral
            .public_key
            .public_key_bytes()
            .try_into()
            .map_err(|_| anyhow!("an ephemeral key is not 32 bytes"))?;
        let wrapped = PairCodeUtils::encrypt_ephemeral_pub(&public, code);
        Ok(Self {
            ephemeral,
            companion_ephemeral,
            wrapped,
        })
    }

    /// The phone's ephemeral key, wrapped with the code.
    pub fn wrapped(&self) -> &[u8; WRAPPED_LEN] {
        &self.wrapped
    }

    /// Opens the companion's key bundle (`salt (32) || iv (12) || AES-256-GCM`, keyed by
    /// HKDF-SHA256 of the ephemeral agreement with that salt) and checks that it names
    /// `companion_identity` and the phone's `identity`. Returns the ADV secret:
    /// HKDF-SHA256 of the ephemeral agreement, the identity agreement and the bundle's
    /// random bytes. It does not open when either side had another code.
    pub fn open_key_bundle(
        &self,
        identity: &KeyPair,
        companion_identity: &[u8; 32],
        wrapped_bundle: &[u8],
    ) -> Result<[u8; 32]> {
        ensure!(
            wrapped_bundle.len() == BUNDLE_LEN,
            "the key bundle is {} bytes, not {BUNDLE_LEN}",
            wrapped_bundle.len()
        );
        let (salt, rest) = wrapped_bundle.split_at(32);
        let (iv, sealed) = rest.split_at(12);
        let iv: &[u8; 12] = iv.try_into().expect("12 bytes");
        let companion_ephemeral = PublicKey::from_djb_public_key_bytes(&self.companion_ephemeral)
            .map_err(|e| anyhow!("the companion's ephemeral key: {e}"))?;
        let ephemeral_shared = self
            .ephemeral
            .private_key
            .calculate_agreement(&companion_ephemeral)
            .map_err(|e| anyhow!("ephemeral key agreement: {e}"))?;
        let mut key = [0u8; 32];
        hkdf_sha256_into(&ephemeral_shared, Some(salt), BUNDLE_KEY_INFO, &mut key)
            .map_err(|e| anyhow!("bundle key: {e}"))?;
        let mut bundle = Vec::with_capacity(96);
        aes_256_gcm_decrypt(&key, iv, b"", sealed, &mut bundle).map_err(|_| {
            anyhow!(
                "the companion's key bundle does not open: the code typed is not the one it shows"
            )
        })?;
        ensure!(
            bundle.len() == 96,
            "the key bundle holds {} bytes, not 96",
            bundle.len()
        );
        ensure!(
            bundle[..32] == companion_identity[..],
            "the key bundle names another identity key than companion_identity_public"
        );
        ensure!(
            bundle[32..64] == *identity.public_key.public_key_bytes(),
            "the key bundle names another identity key than the phone's"
        );
        let companion_identity = PublicKey::from_djb_public_key_bytes(companion_identity)
            .map_err(|e| anyhow!("the companion's identity key: {e}"))?;
        let identity_shared = identity
            .private_key
            .calculate_agreement(&companion_identity)
            .map_err(|e| anyhow!("identity key agreement: {e}"))?;
        let secret = [&ephemeral_shared[..], &identity_shared, &bundle[64..]].concat();
        let mut adv_secret = [0u8; 32];
        hkdf_sha256_into(&secret, None, ADV_SECRET_INFO, &mut adv_secret)
            .map_err(|e| anyhow!("adv secret: {e}"))?;
        Ok(adv_secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::{Companion, Phone};
    use whatsapp_rust::wacore::pair::{DeviceState, PairUtils};

    const CODE: &str = "ABCD1234";
    const NOISE: [u8; 32] = [5; 32];

    fn public(kp: &KeyPair) -> [u8; 32] {
        kp.public_key.public_key_bytes().try_into().unwrap()
    }

    /// The companion's side, done with the helpers whatsapp-rust's client uses.
    struct ClientSide {
        ephemeral: KeyPair,
        identity: KeyPair,
    }

    impl ClientSide {
        fn new() -> Self {
            Self {
                ephemeral: generate_curve_key_pair(),
                identity: generate_curve_key_pair(),
            }
        }

        fn hello(&self, phone: &str, code: &str) -> Node {
            PairCodeUtils::build_companion_hello_iq(
                phone,
                &NOISE,
                &PairCodeUtils::encrypt_ephemeral_pub(&public(&self.ephemeral), code),
                "1",
                "Chrome (Linux)",
                true,
                "hello-1".into(),
            )
        }

        /// Stage 2 as the client runs it: the phone's key read with the companion's own
        /// code, then the key bundle. Returns the bundle and the companion's adv secret.
        fn finish(&self, hello: &PrimaryHello, phone: &Phone, code: &str) -> (Vec<u8>, [u8; 32]) {
            let primary_ephemeral =
                PairCodeUtils::decrypt_primary_ephemeral_pub(hello.wrapped(), code).unwrap();
            PairCodeUtils::prepare_key_bundle(
                &self.ephemeral,
                &primary_ephemeral,
                phone.identity_public().try_into().unwrap(),
                &self.identity,
            )
            .unwrap()
        }
    }

    fn phone() -> Phone {
        Phone::new(crate::PHONE_USER, crate::PHONE_LID, crate::PHONE_NAME)
    }

    /// A fake with the default phone only.
    fn only_phone(user: &str) -> bool {
        user == crate::PHONE_USER
    }

    #[test]
    fn a_code_is_typed_with_or_without_its_dash() {
        assert_eq!(normalize_code("ABCD-1234").unwrap(), CODE);
        assert_eq!(normalize_code(" abcd1234 ").unwrap(), CODE);
        assert!(normalize_code("ABCD-123").is_err());
        assert!(
            normalize_code("ABCD-123O").is_err(),
            "O is not in the alphabet"
        );
        assert!(normalize_code("ABCD-12345").is_err());
    }

    #[test]
    fn the_phone_reads_the_companions_key_with_the_code_and_the_companion_reads_the_phones() {
        let companion = ClientSide::new();
        let wrapped = PairCodeUtils::encrypt_ephemeral_pub(&public(&companion.ephemeral), CODE);

        let hello = PrimaryHello::new(CODE, &wrapped).unwrap();
        assert_eq!(hello.companion_ephemeral, public(&companion.ephemeral));
        let read = PairCodeUtils::decrypt_primary_ephemeral_pub(hello.wrapped(), CODE).unwrap();
        assert_eq!(read, public(&hello.ephemeral));

        // Another code reads another key, without any error: nothing checks it here.
        let wrong = PrimaryHello::new("ABCD1235", &wrapped).unwrap();
        assert_ne!(wrong.companion_ephemeral, public(&companion.ephemeral));
        let misread = PairCodeUtils::decrypt_primary_ephemeral_pub(wrong.wrapped(), CODE).unwrap();
        assert_ne!(misread, public(&wrong.ephemeral));
    }

    #[test]
    fn the_key_bundle_opens_to_the_companions_adv_secret_and_signs_in() {
        let (companion, phone) = (ClientSide::new(), phone());
        let wrapped = PairCodeUtils::encrypt_ephemeral_pub(&public(&companion.ephemeral), CODE);
        let hello = PrimaryHello::new(CODE, &wrapped).unwrap();
        let (bundle, companion_adv) = companion.finish(&hello, &phone, CODE);

        let identity = public(&companion.identity);
        let adv_secret = hello
            .open_key_bundle(phone.identity(), &identity, &bundle)
            .unwrap();
        assert_eq!(adv_secret, companion_adv);

        // The pair-success the phone MACs with it passes the client's own check, and
        // the client's countersignature passes the phone's.
        let linked = Companion {
            noise_key: NOISE,
            identity_key: identity,
            adv_secret,
        };
        let device_identity = phone.sign_companion(&linked, 3, 1_700_000_000).unwrap();
        let state = DeviceState {
            identity_key: companion.identity.clone(),
            noise_key: generate_curve_key_pair(),
            adv_secret_key: companion_adv,
        };
        let (countersigned, key_index) =
            PairUtils::do_pair_crypto(&state, &device_identity).unwrap();
        assert_eq!(key_index, 3);
        phone.check_countersigned(&linked, &countersigned).unwrap();
    }

    #[test]
    fn a_wrong_code_leaves_the_key_bundle_closed() {
        let (companion, phone) = (ClientSide::new(), phone());
        let wrapped = PairCodeUtils::encrypt_ephemeral_pub(&public(&companion.ephemeral), CODE);
        let identity = public(&companion.identity);

        // The phone's user mistyped: each side reads a wrong key of the other's.
        let hello = PrimaryHello::new("ABCD1235", &wrapped).unwrap();
        let (bundle, _) = companion.finish(&hello, &phone, CODE);
        let err = hello
            .open_key_bundle(phone.identity(), &identity, &bundle)
            .unwrap_err();
        assert!(err.to_string().contains("does not open"), "{err:#}");

        // A bundle tampered with does not open either.
        let hello = PrimaryHello::new(CODE, &wrapped).unwrap();
        let (mut bundle, _) = companion.finish(&hello, &phone, CODE);
        bundle[60] ^= 1;
        assert!(
            hello
                .open_key_bundle(phone.identity(), &identity, &bundle)
                .is_err()
        );
    }

    #[test]
    fn the_key_bundle_must_name_the_companion_that_finishes() {
        let (companion, phone) = (ClientSide::new(), phone());
        let wrapped = PairCodeUtils::encrypt_ephemeral_pub(&public(&companion.ephemeral), CODE);
        let hello = PrimaryHello::new(CODE, &wrapped).unwrap();
        let (bundle, _) = companion.finish(&hello, &phone, CODE);
        let other = public(&generate_curve_key_pair());
        let err = hello
            .open_key_bundle(phone.identity(), &other, &bundle)
            .unwrap_err();
        assert!(err.to_string().contains("another identity key"), "{err:#}");

        // Nor is it for another phone.
        let err = hello
            .open_key_bundle(
                &generate_curve_key_pair(),
                &public(&companion.identity),
                &bundle,
            )
            .unwrap_err();
        assert!(err.to_string().contains("the phone's"), "{err:#}");
    }

    #[test]
    fn the_clients_companion_hello_is_read_and_only_a_phones_number_gets_a_code() {
        let companion = ClientSide::new();
        let iq = companion.hello(crate::PHONE_USER, CODE);
        assert_eq!(stage(&iq).as_deref(), Some("companion_hello"));
        let hello = companion_hello(&iq, only_phone, &NOISE).unwrap();
        assert_eq!(hello.phone, crate::PHONE_USER);
        assert_eq!(
            (hello.platform_id.as_str(), hello.platform.as_str()),
            ("1", "Chrome (Linux)")
        );
        assert!(hello.push_notification);
        let read = PrimaryHello::new(CODE, &hello.wrapped).unwrap();
        assert_eq!(read.companion_ephemeral, public(&companion.ephemeral));

        let other =
            companion_hello(&companion.hello("15559990000", CODE), only_phone, &NOISE).unwrap_err();
        assert_eq!(
            (other.code, other.text, other.malformed),
            (400, "bad-request", false)
        );
        assert!(other.reason.contains("15559990000"), "{}", other.reason);
        // Once that number is a phone of the fake too, it gets its code.
        let second = companion_hello(
            &companion.hello("15559990000", CODE),
            |user: &str| only_phone(user) || user == "15559990000",
            &NOISE,
        )
        .unwrap();
        assert_eq!(second.phone, "15559990000");

        let foreign = companion_hello(&iq, only_phone, &[6; 32]).unwrap_err();
        assert!(foreign.malformed, "{}", foreign.reason);
        let branded = PairCodeUtils::build_companion_hello_iq(
            crate::PHONE_USER,
            &NOISE,
            &[1; 80],
            "1",
            "Chrome (Veloz)",
            false,
            "hello-2".into(),
        );
        let refused = companion_hello(&branded, only_phone, &NOISE).unwrap_err();
        assert!(
            refused.malformed && refused.reason.contains("Veloz"),
            "{}",
            refused.reason
        );
    }

    #[test]
    fn the_stanzas_survive_the_wire_as_the_client_reads_them() {
        use whatsapp_rust::wacore_binary::marshal::{marshal, unmarshal_ref};
        let wire = |node: &Node| {
            let bytes = marshal(node).unwrap();
            unmarshal_ref(&bytes[1..]).unwrap().to_owned()
        };
        let companion = ClientSide::new();
        let iq = wire(&companion.hello(crate::PHONE_USER, CODE));
        let answer = wire(&companion_hello_result(&iq, b"2@ref"));
        assert_eq!(
            PairCodeUtils::parse_companion_hello_response(&answer.as_node_ref()).as_deref(),
            Some(&b"2@ref"[..])
        );

        let phone = phone();
        let hello = PrimaryHello::new(
            CODE,
            &companion_hello(&iq, only_phone, &NOISE).unwrap().wrapped,
        )
        .unwrap();
        let note = wire(&primary_hello(
            "n-1",
            b"2@ref",
            &hello,
            phone.identity_public(),
        ));
        assert_eq!(attr(&note, "type").as_deref(), Some(REG));
        let reg = child(&note, REG).unwrap();
        assert_eq!(attr(reg, "stage").as_deref(), Some("primary_hello"));
        let field = |tag: &str| child(reg, tag).and_then(bytes).unwrap().to_vec();
        assert_eq!(
            field("link_code_pairing_wrapped_primary_ephemeral_pub"),
            hello.wrapped()
        );
        assert_eq!(field("primary_identity_pub"), phone.identity_public());
        assert_eq!(field("link_code_pairing_ref"), b"2@ref");

        let (bundle, _) = companion.finish(&hello, &phone, CODE);
        let identity = public(&companion.identity);
        let finish = wire(&PairCodeUtils::build_companion_finish_iq(
            crate::PHONE_USER,
            bundle.clone(),
            &identity,
            b"2@ref",
            "finish-1".into(),
        ));
        assert_eq!(stage(&finish).as_deref(), Some("companion_finish"));
        let read = companion_finish(&finish).unwrap();
        assert_eq!(read.phone, crate::PHONE_USER);
        assert_eq!(read.key_bundle, bundle);
        assert_eq!(read.identity_key, identity);
        assert_eq!(read.reference, b"2@ref");
    }
}
