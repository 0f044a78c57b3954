//! The simulated phone: the account's identity key, and what it does when it links a
//! companion, by its QR code or by a pairing code (sign the companion's identity into a
//! `pair-success`).

use anyhow::{Context, Result, anyhow, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::wacore::crypto::{calculate_curve_signature, generate_curve_key_pair};
use whatsapp_rust::wacore::libsignal::crypto::hmac_sha256;
use whatsapp_rust::wacore::libsignal::protocol::{KeyPair, PublicKey};
use whatsapp_rust::waproto::whatsapp as wa;

/// Signature prefixes of the ADV (account-device verification) scheme.
const ACCOUNT_SIGNATURE_PREFIX: [u8; 2] = [6, 0];
const DEVICE_SIGNATURE_PREFIX: [u8; 2] = [6, 1];

/// What a QR code carries: `ref,noise key,identity key,adv secret[,client type]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrCode {
    pub reference: String,
    pub noise_key: [u8; 32],
    pub identity_key: [u8; 32],
    pub adv_secret: [u8; 32],
}

/// What the phone knows of a companion it links: the companion's keys and the ADV
/// secret the two share (shown in the QR code, or agreed while linking with a code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Companion {
    pub noise_key: [u8; 32],
    pub identity_key: [u8; 32],
    pub adv_secret: [u8; 32],
}

impl QrCode {
    /// The companion this QR code shows.
    pub fn companion(&self) -> Companion {
        Companion {
            noise_key: self.noise_key,
            identity_key: self.identity_key,
            adv_secret: self.adv_secret,
        }
    }

    pub fn parse(text: &str) -> Result<Self> {
        let parts: Vec<&str> = text.trim().split(',').collect();
        ensure!(
            parts.len() >= 4,
            "a WhatsApp QR code has at least 4 comma-separated fields"
        );
        let key = |i: usize, what: &str| -> Result<[u8; 32]> {
            let bytes = STANDARD
                .decode(parts[i])
                .with_context(|| format!("{what} is not base64"))?;
            bytes
                .try_into()
                .map_err(|_| anyhow!("{what} is not 32 bytes"))
        };
        Ok(Self {
            reference: parts[0].to_owned(),
            noise_key: key(1, "the noise key")?,
            identity_key: key(2, "the identity key")?,
            adv_secret: key(3, "the adv secret")?,
        })
    }
}

/// The account on the phone.
pub struct Phone {
    /// Phone number, digits only.
    pub user: String,
    /// The account's LID user part.
    pub lid: String,
    pub push_name: String,
    identity: KeyPair,
}

impl Phone {
    pub fn new(user: &str, lid: &str, push_name: &str) -> Self {
        Self {
            user: user.to_owned(),
            lid: lid.to_owned(),
            push_name: push_name.to_owned(),
            identity: generate_curve_key_pair(),
        }
    }

    /// The `<device-identity>` of a `pair-success` for `companion`: an
    /// `ADVSignedDeviceIdentityHMAC` whose account signature covers the companion's
    /// identity key, MACed with the adv secret the two share.
    pub fn sign_companion(
        &self,
        companion: &Companion,
        device_id: u32,
        now: u64,
    ) -> Result<Vec<u8>> {
        let details = wa::ADVDeviceIdentity {
            raw_id: Some(device_id),
            timestamp: Some(now),
            key_index: Some(device_id),
            account_type: Some(wa::ADVEncryptionType::E2EE),
            device_type: Some(wa::ADVEncryptionType::E2EE),
        }
        .encode_to_vec();
        let signed_bytes = [
            &ACCOUNT_SIGNATURE_PREFIX[..],
            &details,
            &companion.identity_key,
        ]
        .concat();
        let signature = calculate_curve_signature(&self.identity.private_key, &signed_bytes)
            .map_err(|e| anyhow!("signing: {e}"))?;
        let signed = wa::ADVSignedDeviceIdentity {
            details: Some(details),
            account_signature_key: Some(self.identity_public().to_vec()),
            account_signature: Some(signature.to_vec()),
            device_signature: None,
        }
        .encode_to_vec();
        let hmac = hmac_sha256(&companion.adv_secret, &signed);
        Ok(wa::ADVSignedDeviceIdentityHMAC {
            details: Some(signed),
            hmac: Some(hmac.to_vec()),
            account_type: Some(wa::ADVEncryptionType::E2EE),
        }
        .encode_to_vec())
    }

    /// Checks the companion's answer (`pair-device-sign`): the identity the phone signed,
    /// countersigned by the companion's own identity key.
    pub fn check_countersigned(&self, companion: &Companion, signed: &[u8]) -> Result<()> {
        let signed = wa::ADVSignedDeviceIdentity::decode_from_slice(signed)
            .context("pair-device-sign is not an ADVSignedDeviceIdentity")?;
        let details = signed.details.as_deref().context("no details")?;
        let account_key = signed
            .account_signature_key
            .as_deref()
            .context("no account key")?;
        ensure!(
            account_key == self.identity_public(),
            "the companion returned another account key"
        );
        let device_signature = signed
            .device_signature
            .as_deref()
            .context("the companion did not sign")?;
        let message = [
            &DEVICE_SIGNATURE_PREFIX[..],
            details,
            &companion.identity_key,
            account_key,
        ]
        .concat();
        let key = PublicKey::from_djb_public_key_bytes(&companion.identity_key)
            .map_err(|e| anyhow!("companion identity key: {e}"))?;
        if !key.verify_signature(&message, device_signature) {
            bail!("the companion's device signature does not verify");
        }
        Ok(())
    }

    pub fn identity_public(&self) -> &[u8] {
        self.identity.public_key.public_key_bytes()
    }

    /// The account's identity key pair, for the key agreement of linking with a code.
    pub(crate) fn identity(&self) -> &KeyPair {
        &self.identity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_qr_code_needs_four_base64_keys() {
        let key = STANDARD.encode([7u8; 32]);
        let qr = QrCode::parse(&format!("2@ref,{key},{key},{key},1")).unwrap();
        assert_eq!(qr.reference, "2@ref");
        assert_eq!(qr.adv_secret, [7; 32]);
        assert!(QrCode::parse("2@ref,abc").is_err());
        assert!(QrCode::parse(&format!("2@ref,{key},{key},AAAA")).is_err());
    }
}
