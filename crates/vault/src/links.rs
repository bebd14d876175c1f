//! Signed links: tokens that carry a short payload (a subject's opaque id and a purpose,
//! say) and a MAC over it, so a link in a message works without a login and cannot be
//! forged or altered. The MAC key is derived from the key file's blind-index key under a
//! label of its own; each use (`kind`) is bound into the MAC, so a token made for one use
//! is refused by another.
//!
//! A token is `base64url(payload) "." base64url(HMAC-SHA256)`, unpadded. The payload is
//! readable by whoever holds the link: put only opaque ids in it, never personal data.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret as _, SecretBox};
use sha2::Sha256;

/// Makes and checks signed link tokens.
pub struct LinkSigner {
    key: SecretBox<[u8; 32]>,
}

/// Longest payload a token carries.
pub const MAX_PAYLOAD: usize = 512;

impl LinkSigner {
    /// The signer whose key is derived from `root` (the blind-index key).
    pub(crate) fn derive(root: &[u8; 32]) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(root).expect("HMAC takes any key length");
        mac.update(b"charter.links.v1");
        Self { key: SecretBox::new(Box::new(mac.finalize().into_bytes().into())) }
    }

    fn mac(&self, kind: &str, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose_secret()).expect("HMAC takes any key length");
        mac.update(kind.as_bytes());
        mac.update(b"\0");
        mac.update(payload);
        mac
    }

    /// A token for `payload`, good for `kind` only.
    pub fn sign(&self, kind: &str, payload: &str) -> String {
        let tag = self.mac(kind, payload.as_bytes()).finalize().into_bytes();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(payload), URL_SAFE_NO_PAD.encode(tag))
    }

    /// The MAC of `payload` for `kind` alone: what is kept of a secret that must be
    /// checked later but never stored (a one-time code).
    pub fn tag(&self, kind: &str, payload: &str) -> [u8; 32] {
        self.mac(kind, payload.as_bytes()).finalize().into_bytes().into()
    }

    /// Whether `tag` is the MAC of `payload` for `kind`, compared in constant time.
    pub fn check_tag(&self, kind: &str, payload: &str, tag: &[u8]) -> bool {
        self.mac(kind, payload.as_bytes()).verify_slice(tag).is_ok()
    }

    /// The payload of a token made for `kind`; `None` when it is malformed, forged,
    /// altered, or made for another use.
    pub fn verify(&self, kind: &str, token: &str) -> Option<String> {
        if token.len() > MAX_PAYLOAD * 2 {
            return None;
        }
        let (payload, tag) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.mac(kind, &payload).verify_slice(&tag).ok()?;
        String::from_utf8(payload).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(seed: u8) -> LinkSigner {
        LinkSigner::derive(&[seed; 32])
    }

    #[test]
    fn a_token_opens_for_its_own_use_only() {
        let s = signer(1);
        let token = s.sign("unsubscribe", "subject-1:newsletter");
        assert_eq!(s.verify("unsubscribe", &token).as_deref(), Some("subject-1:newsletter"));
        assert_eq!(s.verify("preferences", &token), None, "bound to its use");
        assert_eq!(signer(2).verify("unsubscribe", &token), None, "another key file's token");
        assert!(!token.contains('=') && !token.contains('/') && !token.contains('+'), "URL-safe: {token}");
    }

    #[test]
    fn tags_check_their_own_payload_and_use_only() {
        let s = signer(1);
        let tag = s.tag("code", "abc:123456");
        assert!(s.check_tag("code", "abc:123456", &tag));
        assert!(!s.check_tag("code", "abc:123457", &tag), "another payload");
        assert!(!s.check_tag("session", "abc:123456", &tag), "another use");
        assert!(!signer(2).check_tag("code", "abc:123456", &tag), "another key");
        assert!(!s.check_tag("code", "abc:123456", &tag[..31]), "cut short");
        assert_eq!(s.tag("code", "abc:123456"), tag, "the same payload has the same tag");
    }

    #[test]
    fn forged_altered_and_malformed_tokens_are_refused() {
        let s = signer(1);
        let token = s.sign("unsubscribe", "subject-1:newsletter");
        let (payload, tag) = token.split_once('.').unwrap();
        let other = URL_SAFE_NO_PAD.encode("subject-2:newsletter");
        assert_eq!(s.verify("unsubscribe", &format!("{other}.{tag}")), None, "payload swapped");
        let mut bad_tag = URL_SAFE_NO_PAD.decode(tag).unwrap();
        bad_tag[0] ^= 1;
        assert_eq!(s.verify("unsubscribe", &format!("{payload}.{}", URL_SAFE_NO_PAD.encode(&bad_tag))), None);
        assert_eq!(s.verify("unsubscribe", &format!("{payload}.{}", &tag[..20])), None, "tag cut short");
        for bad in ["", ".", "no-dot", "!!!.???", &format!("{payload}."), &format!(".{tag}")] {
            assert_eq!(s.verify("unsubscribe", bad), None, "{bad}");
        }
        assert_eq!(s.verify("unsubscribe", &"a".repeat(MAX_PAYLOAD * 2 + 1)), None);
        let long = s.sign("unsubscribe", &"x".repeat(MAX_PAYLOAD));
        assert!(long.len() <= MAX_PAYLOAD * 2, "the longest payload still verifies");
        assert_eq!(s.verify("unsubscribe", &long).map(|p| p.len()), Some(MAX_PAYLOAD));
    }
}
