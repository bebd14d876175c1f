//! Per-subject data keys, field sealing and keyed blind indexes.
//!
//! Every subject has a random 256-bit data key. Field values are sealed with
//! AES-256-GCM under that key (a random 96-bit nonce each: a subject's key seals
//! a handful of values in its life, far below the 2^32 bound for random nonces),
//! with the subject, field and category as associated data, so a ciphertext
//! moved to another subject or field fails to open. Data keys are stored only
//! wrapped by a key-encryption key (KEK) that lives outside the database, with
//! AES-256-GCM-SIV (RFC 8452) bound to the subject and KEK version. It is
//! nonce-misuse resistant: under random 96-bit nonces it stays safe for far more
//! keys than any deployment wraps under one KEK, and a repeated nonce would reveal
//! at most that the same key was wrapped twice for the same subject and KEK
//! version. Keys wrapped by earlier versions with XChaCha20-Poly1305 still unwrap
//! (the two forms differ in length). Destroying a subject's wrapped key
//! (shredding) leaves nothing that opens its data. Uploads are sealed in chunks by
//! [`crate::stream`].

use aes_gcm::Aes256Gcm;
use aes_gcm_siv::Aes256GcmSiv;
use chacha20poly1305::aead::{Aead, KeyInit, Nonce, Payload};
use chacha20poly1305::XChaCha20Poly1305;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;

/// Nonce length of XChaCha20-Poly1305 (wrapped keys, upload chunks).
pub const NONCE_LEN: usize = 24;
/// Nonce length of AES-256-GCM (field values) and AES-256-GCM-SIV (wrapped keys).
const AES_NONCE_LEN: usize = 12;
/// Length of a data key wrapped with AES-256-GCM-SIV: nonce, key, tag.
const WRAPPED_LEN: usize = AES_NONCE_LEN + 32 + 16;
/// Length of a data key wrapped with XChaCha20-Poly1305 by earlier versions.
const LEGACY_WRAPPED_LEN: usize = NONCE_LEN + 32 + 16;

/// Why something could not be opened. Deliberately says nothing about content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Authentication failed: wrong key, wrong binding, or tampered ciphertext.
    #[error("ciphertext does not open with this key and binding")]
    Open,
    /// The ciphertext is shorter than a nonce and a tag.
    #[error("ciphertext is truncated")]
    Truncated,
    /// The wrapped key names a KEK version that is not in the key file.
    #[error("no key-encryption key with version {0}")]
    UnknownKek(u32),
}

/// A subject's data key.
pub struct DataKey(SecretBox<[u8; 32]>);

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut k = Box::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        Self(SecretBox::new(k))
    }

    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(SecretBox::new(Box::new(bytes)))
    }

    pub(crate) fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.expose_secret().into())
    }

    fn field_cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.0.expose_secret().into())
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

fn random_nonce<const N: usize>() -> [u8; N] {
    let mut n = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

/// Length-prefixes each part, so that no two different bindings encode alike.
fn binding(domain: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(domain.len() + parts.iter().map(|p| 4 + p.len()).sum::<usize>());
    aad.extend_from_slice(domain);
    for p in parts {
        aad.extend_from_slice(&(p.len() as u32).to_be_bytes());
        aad.extend_from_slice(p);
    }
    aad
}

/// Seals `plaintext` under a fresh random nonce of `N` bytes: nonce, then ciphertext and tag.
fn seal<C: Aead, const N: usize>(cipher: &C, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let nonce = random_nonce::<N>();
    let ct = cipher
        .encrypt(Nonce::<C>::from_slice(&nonce), Payload { msg: plaintext, aad })
        .expect("AEAD encryption does not fail for in-memory buffers");
    let mut out = Vec::with_capacity(N + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Opens what [`seal`] made with the same cipher, nonce length and binding.
fn open<C: Aead, const N: usize>(cipher: &C, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < N + 16 {
        return Err(CryptoError::Truncated);
    }
    let (nonce, ct) = sealed.split_at(N);
    cipher.decrypt(Nonce::<C>::from_slice(nonce), Payload { msg: ct, aad }).map_err(|_| CryptoError::Open)
}

impl DataKey {
    /// Seals one field value of `subject`, bound to its field name and category.
    pub fn seal_field(&self, subject: &str, field: &str, category: &str, plaintext: &[u8]) -> Vec<u8> {
        self.fields().seal(subject, field, category, plaintext)
    }

    /// Opens a field value sealed by [`DataKey::seal_field`] with the same binding.
    pub fn open_field(
        &self,
        subject: &str,
        field: &str,
        category: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.fields().open(subject, field, category, sealed)
    }

    /// The field cipher of this key, set up once for sealing or opening several values.
    pub fn fields(&self) -> FieldCipher<'_> {
        FieldCipher { key: self, cipher: self.field_cipher() }
    }
}

/// A data key's field cipher with its key schedule expanded, for several values in a row.
pub struct FieldCipher<'a> {
    key: &'a DataKey,
    cipher: Aes256Gcm,
}

/// What a field value is bound to: its subject, field name and category.
fn field_binding(subject: &str, field: &str, category: &str) -> Vec<u8> {
    binding(b"charter.field.v1", &[subject.as_bytes(), field.as_bytes(), category.as_bytes()])
}

impl FieldCipher<'_> {
    /// Seals one field value of `subject`, bound to its field name and category.
    pub fn seal(&self, subject: &str, field: &str, category: &str, plaintext: &[u8]) -> Vec<u8> {
        seal::<_, AES_NONCE_LEN>(&self.cipher, &field_binding(subject, field, category), plaintext)
    }

    /// Opens a field value sealed with the same key and binding.
    pub fn open(&self, subject: &str, field: &str, category: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let aad = field_binding(subject, field, category);
        open::<_, AES_NONCE_LEN>(&self.cipher, &aad, sealed)
            // Values sealed by earlier versions used XChaCha20-Poly1305; they still open.
            .or_else(|_| open::<_, NONCE_LEN>(&self.key.cipher(), &aad, sealed))
    }
}

/// What a field value of a record is bound to: its subject, record, field name and category.
fn record_field_binding(subject: &str, record: &str, field: &str, category: &str) -> Vec<u8> {
    binding(b"charter.record-field.v1", &[subject.as_bytes(), record.as_bytes(), field.as_bytes(), category.as_bytes()])
}

impl FieldCipher<'_> {
    /// Seals one field value of record `record` of `subject`, bound to all four.
    pub fn seal_in_record(
        &self,
        subject: &str,
        record: &str,
        field: &str,
        category: &str,
        plaintext: &[u8],
    ) -> Vec<u8> {
        seal::<_, AES_NONCE_LEN>(&self.cipher, &record_field_binding(subject, record, field, category), plaintext)
    }

    /// Opens a record's field value sealed with the same key and binding.
    pub fn open_in_record(
        &self,
        subject: &str,
        record: &str,
        field: &str,
        category: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        open::<_, AES_NONCE_LEN>(&self.cipher, &record_field_binding(subject, record, field, category), sealed)
    }
}

/// What a data key of its own protects: its wrapping under the subject's key is bound to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder<'a> {
    /// A record, by id.
    Record(&'a str),
    /// One profile value, by field name.
    Value(&'a str),
    /// An uploaded object, by id.
    Object(&'a str),
    /// A queued message to the subject, by job id.
    Job(&'a str),
}

impl Holder<'_> {
    fn binding(self, subject: &str) -> Vec<u8> {
        let (kind, id): (&[u8], &str) = match self {
            Self::Record(id) => (b"record", id),
            Self::Value(field) => (b"value", field),
            Self::Object(id) => (b"object", id),
            Self::Job(id) => (b"job", id),
        };
        binding(b"charter.own-key.v1", &[subject.as_bytes(), kind, id.as_bytes()])
    }
}

impl DataKey {
    /// Wraps `key`, the own key of `holder` (a record, a value or an object of `subject`),
    /// under this key, the subject's, with AES-256-GCM-SIV bound to both.
    pub fn wrap_own(&self, subject: &str, holder: Holder<'_>, key: &DataKey) -> Vec<u8> {
        let cipher = Aes256GcmSiv::new(self.0.expose_secret().into());
        seal::<_, AES_NONCE_LEN>(&cipher, &holder.binding(subject), key.0.expose_secret())
    }

    /// Unwraps the own key of `holder` that [`DataKey::wrap_own`] wrapped under this key.
    pub fn unwrap_own(&self, subject: &str, holder: Holder<'_>, wrapped: &[u8]) -> Result<DataKey, CryptoError> {
        let cipher = Aes256GcmSiv::new(self.0.expose_secret().into());
        let raw = open::<_, AES_NONCE_LEN>(&cipher, &holder.binding(subject), wrapped)?;
        let bytes: [u8; 32] = raw.try_into().map_err(|_| CryptoError::Open)?;
        Ok(DataKey::from_bytes(bytes))
    }
}

/// What a message or other whole value sealed under a key of its own is bound to: its label.
fn message_binding(label: &str) -> Vec<u8> {
    binding(b"charter.message.v1", &[label.as_bytes()])
}

impl DataKey {
    /// Seals a whole value under this key (a key of its own), bound to `label` (for example
    /// `job:<id>`), with AES-256-GCM.
    pub fn seal_message(&self, label: &str, plaintext: &[u8]) -> Vec<u8> {
        seal::<_, AES_NONCE_LEN>(&self.field_cipher(), &message_binding(label), plaintext)
    }

    /// Opens what [`DataKey::seal_message`] sealed with the same label.
    pub fn open_message(&self, label: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open::<_, AES_NONCE_LEN>(&self.field_cipher(), &message_binding(label), sealed)
    }
}

impl std::fmt::Debug for FieldCipher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FieldCipher([redacted])")
    }
}

/// A data key as stored: sealed under a versioned KEK, bound to its subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// Which KEK sealed it.
    pub kek_version: u32,
    /// Nonce and ciphertext.
    pub sealed: Vec<u8>,
}

/// Something that wraps and unwraps data keys: the key file today, a KMS later.
pub trait KeyWrapper: Send + Sync {
    /// Wraps `key` for `subject` under the current KEK.
    fn wrap(&self, subject: &str, key: &DataKey) -> WrappedKey;
    /// Unwraps a data key of `subject`.
    fn unwrap(&self, subject: &str, wrapped: &WrappedKey) -> Result<DataKey, CryptoError>;
    /// The version new keys are wrapped under.
    fn current_version(&self) -> u32;
}

/// What a wrapped data key is bound to: its subject and the KEK version.
fn key_binding(subject: &str, version: u32) -> Vec<u8> {
    binding(b"charter.dek.v1", &[subject.as_bytes(), &version.to_be_bytes()])
}

pub(crate) fn wrap_with(kek: &[u8; 32], version: u32, subject: &str, key: &DataKey) -> WrappedKey {
    let cipher = Aes256GcmSiv::new(kek.into());
    let aad = key_binding(subject, version);
    WrappedKey { kek_version: version, sealed: seal::<_, AES_NONCE_LEN>(&cipher, &aad, key.0.expose_secret()) }
}

pub(crate) fn unwrap_with(kek: &[u8; 32], subject: &str, wrapped: &WrappedKey) -> Result<DataKey, CryptoError> {
    let aad = key_binding(subject, wrapped.kek_version);
    let raw = match wrapped.sealed.len() {
        WRAPPED_LEN => open::<_, AES_NONCE_LEN>(&Aes256GcmSiv::new(kek.into()), &aad, &wrapped.sealed)?,
        // Wrapped by an earlier version.
        LEGACY_WRAPPED_LEN => open::<_, NONCE_LEN>(&XChaCha20Poly1305::new(kek.into()), &aad, &wrapped.sealed)?,
        0..WRAPPED_LEN => return Err(CryptoError::Truncated),
        _ => return Err(CryptoError::Open),
    };
    let bytes: [u8; 32] = raw.try_into().map_err(|_| CryptoError::Open)?;
    Ok(DataKey::from_bytes(bytes))
}

/// Kinds of identifier that can be looked up by blind index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentifierKind {
    /// An email address.
    Email,
    /// A phone number.
    Phone,
    /// An identifier from another system.
    ExternalId,
}

impl IdentifierKind {
    /// The name stored beside the index.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
            Self::ExternalId => "external_id",
        }
    }

    /// The form indexes were made of before [`crate::Normaliser`]: trimmed; an email
    /// lower-cased; a phone's digits, with a leading `+` kept. Only for finding subjects
    /// indexed then (see [`BlindIndexer::index_legacy`]).
    fn legacy_normal_form(self, value: &str) -> String {
        let v = value.trim();
        match self {
            Self::Email => v.to_lowercase(),
            Self::Phone => {
                let plus = v.starts_with('+');
                let digits: String = v.chars().filter(char::is_ascii_digit).collect();
                if plus {
                    format!("+{digits}")
                } else {
                    digits
                }
            }
            Self::ExternalId => v.to_owned(),
        }
    }
}

/// Computes keyed blind indexes (HMAC-SHA256 of the normal form).
pub struct BlindIndexer {
    key: SecretBox<[u8; 32]>,
}

impl BlindIndexer {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        Self { key: SecretBox::new(Box::new(*key)) }
    }

    /// The index of an identifier in normal form.
    pub fn index(&self, id: &crate::NormalForm) -> [u8; 32] {
        self.mac(id.kind(), id.expose())
    }

    /// The index an earlier version made of `value` as an identifier of `kind`, for a
    /// lookup that misses under the normal form (the caller then re-indexes the subject).
    pub fn index_legacy(&self, kind: IdentifierKind, value: &str) -> [u8; 32] {
        self.mac(kind, &kind.legacy_normal_form(value))
    }

    fn mac(&self, kind: IdentifierKind, normal: &str) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose_secret()).expect("HMAC takes any key length");
        mac.update(b"charter.blind.v1\0");
        mac.update(kind.as_str().as_bytes());
        mac.update(b"\0");
        mac.update(normal.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fields_open_only_with_their_binding() {
        let k = DataKey::generate();
        let sealed = k.seal_field("s1", "email", "user.contact.email", b"ada@example.com");
        assert_eq!(k.open_field("s1", "email", "user.contact.email", &sealed).unwrap(), b"ada@example.com");
        assert_eq!(
            k.open_field("s2", "email", "user.contact.email", &sealed),
            Err(CryptoError::Open),
            "moved to another subject"
        );
        assert_eq!(
            k.open_field("s1", "name", "user.contact.email", &sealed),
            Err(CryptoError::Open),
            "moved to another field"
        );
        assert_eq!(k.open_field("s1", "email", "user.name", &sealed), Err(CryptoError::Open), "relabelled category");
        assert_eq!(
            DataKey::generate().open_field("s1", "email", "user.contact.email", &sealed),
            Err(CryptoError::Open)
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(k.open_field("s1", "email", "user.contact.email", &tampered), Err(CryptoError::Open));
        assert_eq!(k.open_field("s1", "email", "user.contact.email", &sealed[..10]), Err(CryptoError::Truncated));
    }

    #[test]
    fn record_fields_open_only_with_their_record() {
        let k = DataKey::generate();
        let c = k.fields();
        let sealed = c.seal_in_record("s1", "r1", "message", "user.content.message", b"hi");
        assert_eq!(c.open_in_record("s1", "r1", "message", "user.content.message", &sealed).unwrap(), b"hi");
        for (s, r, f, cat) in [
            ("s2", "r1", "message", "user.content.message"),
            ("s1", "r2", "message", "user.content.message"),
            ("s1", "r1", "name", "user.content.message"),
            ("s1", "r1", "message", "user.name"),
        ] {
            assert_eq!(c.open_in_record(s, r, f, cat, &sealed), Err(CryptoError::Open), "{s} {r} {f} {cat}");
        }
        assert!(c.open("s1", "message", "user.content.message", &sealed).is_err(), "not a profile value");
        assert_ne!(sealed, c.seal_in_record("s1", "r1", "message", "user.content.message", b"hi"), "fresh nonce");
        assert_eq!(c.open_in_record("s1", "r1", "m", "c", &sealed[..20]), Err(CryptoError::Truncated));
    }

    #[test]
    fn own_keys_unwrap_only_under_their_subject_key_and_holder() {
        let (subject_key, own) = (DataKey::generate(), DataKey::generate());
        let wrapped = subject_key.wrap_own("s1", Holder::Record("r1"), &own);
        assert_eq!(wrapped.len(), WRAPPED_LEN);
        let back = subject_key.unwrap_own("s1", Holder::Record("r1"), &wrapped).unwrap();
        let sealed = own.seal_field("s1", "f", "c", b"v");
        assert_eq!(back.open_field("s1", "f", "c", &sealed).unwrap(), b"v", "the same key comes back");
        for (subject, holder) in [
            ("s2", Holder::Record("r1")),
            ("s1", Holder::Record("r2")),
            ("s1", Holder::Value("r1")),
            ("s1", Holder::Object("r1")),
        ] {
            assert_eq!(subject_key.unwrap_own(subject, holder, &wrapped).err(), Some(CryptoError::Open), "{holder:?}");
        }
        assert_eq!(DataKey::generate().unwrap_own("s1", Holder::Record("r1"), &wrapped).err(), Some(CryptoError::Open));
        assert_ne!(wrapped, subject_key.wrap_own("s1", Holder::Record("r1"), &own), "fresh nonce");
        let short = subject_key.wrap_own("s1", Holder::Value("f"), &own);
        assert_eq!(subject_key.unwrap_own("s1", Holder::Value("f"), &short[..27]).err(), Some(CryptoError::Truncated));
    }

    #[test]
    fn each_seal_has_a_fresh_nonce_and_keys_never_print() {
        let k = DataKey::generate();
        let (a, b) = (k.seal_field("s1", "f", "c", b"same"), k.seal_field("s1", "f", "c", b"same"));
        assert_ne!(a, b, "the same value sealed twice differs");
        assert_eq!(k.open_field("s1", "f", "c", &b).unwrap(), b"same");
        let (x, y) = (wrap_with(&[3u8; 32], 1, "s1", &k), wrap_with(&[3u8; 32], 1, "s1", &k));
        assert_ne!(x.sealed, y.sealed, "the same key wrapped twice differs");
        assert_ne!(random_nonce::<12>(), random_nonce::<12>());
        assert_eq!(format!("{k:?}"), "DataKey([redacted])");
        assert_eq!(format!("{:?}", k.fields()), "FieldCipher([redacted])");
    }

    #[test]
    fn wrapped_keys_are_bound_to_subject_and_version() {
        let kek = [9u8; 32];
        let k = DataKey::generate();
        let w = wrap_with(&kek, 1, "s1", &k);
        let back = unwrap_with(&kek, "s1", &w).unwrap();
        let sealed = k.seal_field("s1", "f", "c", b"x");
        assert_eq!(back.open_field("s1", "f", "c", &sealed).unwrap(), b"x");
        assert!(unwrap_with(&kek, "s2", &w).is_err());
        assert!(unwrap_with(&[8u8; 32], "s1", &w).is_err());
        assert_eq!(w.sealed.len(), WRAPPED_LEN);
        let relabelled = WrappedKey { kek_version: 2, ..w.clone() };
        assert!(unwrap_with(&kek, "s1", &relabelled).is_err());
        let mut tampered = w;
        tampered.sealed[20] ^= 1;
        assert!(unwrap_with(&kek, "s1", &tampered).is_err());
        let w = wrap_with(&kek, 1, "s1", &k);
        let truncated = WrappedKey { kek_version: 1, sealed: w.sealed[..WRAPPED_LEN - 1].to_vec() };
        assert_eq!(unwrap_with(&kek, "s1", &truncated).unwrap_err(), CryptoError::Truncated);
        let mut extended = w;
        extended.sealed.push(0);
        assert_eq!(unwrap_with(&kek, "s1", &extended).unwrap_err(), CryptoError::Open);
    }

    #[test]
    fn keys_wrapped_by_earlier_versions_still_unwrap() {
        let kek = [9u8; 32];
        let k = DataKey::generate();
        let legacy = WrappedKey {
            kek_version: 1,
            sealed: seal::<_, NONCE_LEN>(
                &XChaCha20Poly1305::new(&kek.into()),
                &key_binding("s1", 1),
                k.0.expose_secret(),
            ),
        };
        assert_eq!(legacy.sealed.len(), LEGACY_WRAPPED_LEN);
        let back = unwrap_with(&kek, "s1", &legacy).unwrap();
        assert_eq!(back.0.expose_secret(), k.0.expose_secret());
        assert!(unwrap_with(&kek, "s2", &legacy).is_err(), "still bound to its subject");
        assert!(unwrap_with(&[8u8; 32], "s1", &legacy).is_err());
        // Rotation rewraps it in the current form under the new key.
        let rewrapped = wrap_with(&[7u8; 32], 2, "s1", &back);
        assert_eq!(rewrapped.sealed.len(), WRAPPED_LEN);
        assert_eq!(unwrap_with(&[7u8; 32], "s1", &rewrapped).unwrap().0.expose_secret(), k.0.expose_secret());
    }

    #[test]
    fn blind_indexes_match_normal_forms_only() {
        let b = BlindIndexer::new(&[1u8; 32]);
        let n = crate::Normaliser::new(None, true).unwrap();
        let id = |kind, v: &str| b.index(&n.normalise(kind, v).unwrap());
        assert_eq!(id(IdentifierKind::Email, " Ada@Example.COM "), id(IdentifierKind::Email, "ada@example.com"));
        assert_eq!(id(IdentifierKind::Phone, "+44 20 7946-0018"), id(IdentifierKind::Phone, "+442079460018"));
        assert_ne!(
            id(IdentifierKind::Email, "a@b.co"),
            id(IdentifierKind::ExternalId, "a@b.co"),
            "kinds are separated"
        );
        assert_ne!(
            id(IdentifierKind::Email, "a@b.co"),
            BlindIndexer::new(&[2u8; 32]).index(&n.normalise(IdentifierKind::Email, "a@b.co").unwrap())
        );
        // Where the old form and the new agree, so do the indexes: most stored ones still match.
        assert_eq!(
            b.index_legacy(IdentifierKind::Email, " Ada@Example.COM "),
            id(IdentifierKind::Email, "ada@example.com")
        );
        assert_eq!(
            b.index_legacy(IdentifierKind::Phone, "+44 20 7946-0018"),
            id(IdentifierKind::Phone, "+442079460018")
        );
        assert_ne!(
            b.index_legacy(IdentifierKind::Phone, "+442079460018"),
            b.index_legacy(IdentifierKind::Phone, "442079460018")
        );
        assert_eq!(b.index_legacy(IdentifierKind::ExternalId, " x "), id(IdentifierKind::ExternalId, "x"));
        assert_ne!(
            b.index_legacy(IdentifierKind::Email, "ａda@example.com"),
            id(IdentifierKind::Email, "ａda@example.com")
        );
    }

    #[test]
    fn field_values_sealed_by_earlier_versions_still_open() {
        let key = DataKey::generate();
        let aad = binding(b"charter.field.v1", &[b"s1", b"email", b"user.contact.email"]);
        let legacy = seal::<_, NONCE_LEN>(&key.cipher(), &aad, b"ada@example.com");
        assert_eq!(key.open_field("s1", "email", "user.contact.email", &legacy).unwrap(), b"ada@example.com");
        assert_eq!(key.open_field("s1", "name", "user.contact.email", &legacy), Err(CryptoError::Open));
    }

    proptest! {
        #[test]
        fn seal_open_round_trips(data in proptest::collection::vec(any::<u8>(), 0..512), field in "[a-z]{1,12}") {
            let k = DataKey::generate();
            let sealed = k.seal_field("subject", &field, "cat", &data);
            prop_assert_eq!(k.open_field("subject", &field, "cat", &sealed).unwrap(), data.clone());
            if !data.is_empty() {
                prop_assert!(!sealed.windows(data.len()).any(|w| w == data.as_slice()) || data.len() < 4);
            }
        }
    }
}
