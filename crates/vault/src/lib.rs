//! # charter-vault
//!
//! Key material. Today: the key file that lives beside the database (never
//! inside it), holding the key-encryption key, the blind-index key and the
//! Ed25519 key that signs audit checkpoints.
//!
//! ## Layout
//! - [`keyfile`]: create (mode 0600) and load the key file; secrets stay in
//!   [`secrecy`] boxes and are exposed only where used.
//! - [`signing`]: signing and verifying audit checkpoints.

pub mod keyfile;
pub mod signing;

pub use keyfile::{KeyFile, KeyFileError};
pub use signing::{CheckpointSigner, CheckpointVerifier};
