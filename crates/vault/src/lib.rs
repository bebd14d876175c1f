//! # charter-vault
//!
//! Key material and encryption. The key file lives beside the database (never
//! inside it) and holds the key-encryption keys, the blind-index key and the
//! Ed25519 key that signs audit checkpoints.
//!
//! ## Layout
//! - [`keyfile`]: create (mode 0600), load and rotate the key file; secrets
//!   stay in [`secrecy`] boxes and are exposed only where used.
//! - [`crypto`]: per-subject data keys, field sealing bound to subject, field
//!   and category, key wrapping ([`KeyWrapper`], which a KMS can implement),
//!   keyed blind indexes.
//! - [`envelope`]: values sealed under the key file alone (webhook secrets).
//! - [`links`]: signed link tokens (one-click unsubscribe), with a key derived from the
//!   key file.
//! - [`identifier`]: [`Normaliser`], the one normal form of email addresses, phone
//!   numbers and external ids (validated; NFKC; E.164), which blind indexes are made of.
//! - [`password`]: argon2id hashes of passwords (PHC strings), with reused working memory.
//! - [`stream`]: chunked sealing of uploads with bounded memory.
//! - [`personal`]: [`Personal`], a wrapper whose `Debug`/`Display` print `[redacted]`.
//! - [`signing`]: signing and verifying audit checkpoints.
//! - [`totp`]: time-based one-time passwords (RFC 6238) for the console's second factor.

pub mod crypto;
pub mod envelope;
pub mod identifier;
pub mod keyfile;
pub mod links;
pub mod password;
pub mod personal;
pub mod signing;
pub mod stream;
pub mod totp;

pub use crypto::{BlindIndexer, CryptoError, DataKey, FieldCipher, Holder, IdentifierKind, KeyWrapper, WrappedKey};
pub use identifier::{BadIdentifier, NormalForm, Normaliser};
pub use keyfile::{KeyFile, KeyFileError};
pub use links::LinkSigner;
pub use password::{check_password, hash_password, MalformedHash};
pub use personal::Personal;
pub use signing::{CheckpointSigner, CheckpointVerifier};
