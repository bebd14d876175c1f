//! Values sealed under the key file alone, for what belongs to no subject: files in the
//! outbox, webhook signing secrets. Each value gets a data key of its own, wrapped under
//! the current key-encryption key and bound to the value's label, so a sealed value
//! moved to another label does not open.
//!
//! Layout: `CHE1`, the KEK version (4 bytes, big-endian), the wrapped key's length
//! (2 bytes), the wrapped key, then the value sealed by [`DataKey::seal_message`].

use crate::{CryptoError, DataKey, KeyWrapper, WrappedKey};

const MAGIC: &[u8; 4] = b"CHE1";

/// What the data key is wrapped for: the label, in a namespace no subject id can take.
fn owner(label: &str) -> String {
    format!("envelope:{label}")
}

/// Seals `plaintext` under a fresh key wrapped by `keys`, bound to `label`.
pub fn seal(keys: &dyn KeyWrapper, label: &str, plaintext: &[u8]) -> Vec<u8> {
    let key = DataKey::generate();
    let wrapped = keys.wrap(&owner(label), &key);
    let sealed = key.seal_message(label, plaintext);
    let mut out = Vec::with_capacity(10 + wrapped.sealed.len() + sealed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&wrapped.kek_version.to_be_bytes());
    out.extend_from_slice(&(wrapped.sealed.len() as u16).to_be_bytes());
    out.extend_from_slice(&wrapped.sealed);
    out.extend_from_slice(&sealed);
    out
}

/// Opens what [`seal`] made for the same label.
pub fn open(keys: &dyn KeyWrapper, label: &str, bytes: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or(CryptoError::Open)?;
    if rest.len() < 6 {
        return Err(CryptoError::Truncated);
    }
    let kek_version = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let len = usize::from(u16::from_be_bytes([rest[4], rest[5]]));
    let rest = &rest[6..];
    if rest.len() < len {
        return Err(CryptoError::Truncated);
    }
    let (wrapped, sealed) = rest.split_at(len);
    let key = keys.unwrap(&owner(label), &WrappedKey { kek_version, sealed: wrapped.to_vec() })?;
    key.open_message(label, sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (tempfile::TempDir, crate::KeyFile) {
        let dir = tempfile::tempdir().unwrap();
        let keys = crate::KeyFile::load_or_create(&dir.path().join("keys.json")).unwrap();
        (dir, keys)
    }

    #[test]
    fn a_sealed_value_opens_under_its_label_only() {
        let (_dir, keys) = keys();
        let sealed = seal(&keys, "outbox/mail/1", b"To: someone@example.org");
        assert!(!sealed.windows(7).any(|w| w == b"someone"), "no plaintext in the envelope");
        assert_eq!(open(&keys, "outbox/mail/1", &sealed).unwrap(), b"To: someone@example.org");
        assert_eq!(open(&keys, "outbox/mail/2", &sealed), Err(CryptoError::Open));
    }

    #[test]
    fn damaged_envelopes_are_refused() {
        let (_dir, keys) = keys();
        let sealed = seal(&keys, "l", b"value");
        assert_eq!(open(&keys, "l", b"XXXX"), Err(CryptoError::Open));
        assert_eq!(open(&keys, "l", &sealed[..9]), Err(CryptoError::Truncated));
        assert_eq!(open(&keys, "l", &sealed[..12]), Err(CryptoError::Truncated));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(open(&keys, "l", &flipped), Err(CryptoError::Open));
        let mut other_version = sealed.clone();
        other_version[7] ^= 0x40;
        assert!(open(&keys, "l", &other_version).is_err());
    }

    #[test]
    fn a_value_sealed_before_a_rotation_still_opens() {
        let (_dir, mut keys) = keys();
        let sealed = seal(&keys, "secret", b"s3cr3t");
        keys.rotate().unwrap();
        assert_eq!(open(&keys, "secret", &sealed).unwrap(), b"s3cr3t");
    }
}
