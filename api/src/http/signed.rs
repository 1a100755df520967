//! Opaque values the API hands out and takes back (consistency tokens,
//! page cursors): `base64(payload).base64(tag)`, the tag an HMAC under a
//! key derived from the service secret for one purpose, so a value can be
//! neither forged nor passed off as another kind.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of the MAC kept: forging 2^-128 is enough, and values stay short.
const MAC_BYTES: usize = 16;

/// Seals and opens values of one purpose with a key only this service holds.
#[derive(Clone)]
pub struct Sealer {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// `purpose` names what is sealed (and its format's version): a key of
    /// its own per purpose, so a MAC can never double as another's.
    pub fn new(secret: &[u8], purpose: &[u8]) -> Self {
        let mut derive =
            Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
        derive.update(purpose);
        let key = derive.finalize().into_bytes();
        Self {
            mac: Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts keys of any length"),
        }
    }

    pub fn seal(&self, payload: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(payload);
        let tag = &mac.finalize().into_bytes()[..MAC_BYTES];
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The payload, or `None` for anything this service did not seal for
    /// this purpose.
    pub fn open(&self, sealed: &str) -> Option<Vec<u8>> {
        let (payload, tag) = sealed.trim().split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        if tag.len() != MAC_BYTES {
            return None;
        }
        let mut mac = self.mac.clone();
        mac.update(&payload);
        mac.verify_truncated_left(&tag).ok()?;
        Some(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a secret of enough length for tests";

    #[test]
    fn a_sealed_value_opens_only_under_its_key_and_purpose() {
        let sealer = Sealer::new(SECRET, b"one purpose");
        let sealed = sealer.seal(b"payload");
        assert_eq!(sealer.open(&sealed).as_deref(), Some(&b"payload"[..]));
        assert_eq!(Sealer::new(SECRET, b"another purpose").open(&sealed), None);
        assert_eq!(
            Sealer::new(b"another secret of enough length!!", b"one purpose").open(&sealed),
            None
        );
    }

    #[test]
    fn tampered_or_truncated_values_are_refused() {
        let sealer = Sealer::new(SECRET, b"one purpose");
        let sealed = sealer.seal(b"payload");
        let (payload, tag) = sealed.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(b"payloae");
        assert_eq!(sealer.open(&format!("{forged}.{tag}")), None);
        assert_eq!(sealer.open(payload), None);
        assert_eq!(sealer.open(&format!("{payload}.")), None);
        assert_eq!(
            sealer.open(&format!("{payload}.{}", &tag[..tag.len() - 2])),
            None
        );
        assert_eq!(sealer.open("garbage"), None);
    }
}
