//! The key file: random keys generated once per data directory.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox};

use crate::KeyWrapper as _;
use serde::{Deserialize, Serialize};

/// Why the key file could not be used. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading or writing failed.
    #[error("cannot {action} key file {path}: {source}")]
    Io {
        /// What was attempted.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file exists but is not a charter key file.
    #[error("key file {path} is not a valid charter key file: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong (no key material).
        reason: String,
    },
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    format: u32,
    key_encryption_keys: Vec<OnDiskKek>,
    blind_index_key: String,
    checkpoint_signing_key: String,
}

#[derive(Serialize, Deserialize)]
struct OnDiskKek {
    version: u32,
    key: String,
}

type Key = SecretBox<[u8; 32]>;

/// The keys of one data directory.
pub struct KeyFile {
    path: PathBuf,
    /// Key-encryption keys by version, oldest first; the last one wraps new keys.
    key_encryption_keys: Vec<(u32, Key)>,
    blind_index_key: Key,
    checkpoint_signing_key: Key,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile").field("path", &self.path).finish_non_exhaustive()
    }
}

fn random_key() -> Key {
    let mut k = Box::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(k.as_mut());
    SecretBox::new(k)
}

fn decode(path: &Path, name: &str, hex_text: &str) -> Result<Key, KeyFileError> {
    let bytes = hex::decode(hex_text)
        .map_err(|_| KeyFileError::Malformed { path: path.to_owned(), reason: format!("`{name}` is not hex") })?;
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| KeyFileError::Malformed { path: path.to_owned(), reason: format!("`{name}` is not 32 bytes") })?;
    Ok(SecretBox::new(Box::new(arr)))
}

impl KeyFile {
    /// Loads the key file at `path`, creating it with fresh random keys (mode 0600) when absent.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyFileError> {
        if path.exists() {
            return Self::load(path);
        }
        let kf = Self {
            path: path.to_owned(),
            key_encryption_keys: vec![(1, random_key())],
            blind_index_key: random_key(),
            checkpoint_signing_key: random_key(),
        };
        kf.write(true)?;
        Ok(kf)
    }

    /// Loads an existing key file.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let text = fs::read_to_string(path).map_err(|source| KeyFileError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        })?;
        let disk: OnDisk = serde_json::from_str(&text).map_err(|e| KeyFileError::Malformed {
            path: path.to_owned(),
            // serde_json's message names the field and position, never the value.
            reason: format!("line {} column {}: {}", e.line(), e.column(), e.classify_reason()),
        })?;
        if disk.format != 1 {
            return Err(KeyFileError::Malformed {
                path: path.to_owned(),
                reason: format!("unsupported format {}", disk.format),
            });
        }
        let mut keks = Vec::with_capacity(disk.key_encryption_keys.len());
        for k in &disk.key_encryption_keys {
            keks.push((k.version, decode(path, "key_encryption_keys", &k.key)?));
        }
        keks.sort_by_key(|(v, _)| *v);
        if keks.is_empty() {
            return Err(KeyFileError::Malformed { path: path.to_owned(), reason: "no key-encryption key".into() });
        }
        Ok(Self {
            path: path.to_owned(),
            key_encryption_keys: keks,
            blind_index_key: decode(path, "blind_index_key", &disk.blind_index_key)?,
            checkpoint_signing_key: decode(path, "checkpoint_signing_key", &disk.checkpoint_signing_key)?,
        })
    }

    /// Writes the file: a new one, or a replacement written beside it and
    /// renamed over it, so a crash leaves either the old keys or the new ones.
    fn write(&self, new: bool) -> Result<(), KeyFileError> {
        let io = |action, source| KeyFileError::Io { action, path: self.path.clone(), source };
        let disk = OnDisk {
            format: 1,
            key_encryption_keys: self
                .key_encryption_keys
                .iter()
                .map(|(version, k)| OnDiskKek { version: *version, key: hex::encode(k.expose_secret()) })
                .collect(),
            blind_index_key: hex::encode(self.blind_index_key.expose_secret()),
            checkpoint_signing_key: hex::encode(self.checkpoint_signing_key.expose_secret()),
        };
        let text = serde_json::to_string_pretty(&disk).expect("key file serialises");
        let target = if new { self.path.clone() } else { self.path.with_extension("json.new") };
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        if new {
            opts.create_new(true);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&target).map_err(|e| io("create", e))?;
        f.write_all(text.as_bytes()).map_err(|e| io("write", e))?;
        f.sync_all().map_err(|e| io("sync", e))?;
        if !new {
            fs::rename(&target, &self.path).map_err(|e| io("replace", e))?;
        }
        Ok(())
    }

    /// Adds a new key-encryption key and makes it current; returns its version.
    /// Data keys wrapped under older versions still open until they are retired.
    pub fn rotate(&mut self) -> Result<u32, KeyFileError> {
        let version = self.current_version() + 1;
        self.key_encryption_keys.push((version, random_key()));
        self.write(false)?;
        Ok(version)
    }

    /// Drops every key-encryption key older than the current one, once every
    /// data key has been rewrapped under it.
    pub fn retire_old_keys(&mut self) -> Result<(), KeyFileError> {
        let current = self.current_version();
        self.key_encryption_keys.retain(|(v, _)| *v == current);
        self.write(false)
    }

    /// The versions present, oldest first.
    pub fn kek_versions(&self) -> Vec<u32> {
        self.key_encryption_keys.iter().map(|(v, _)| *v).collect()
    }

    /// The blind indexer keyed by this file.
    pub fn blind_indexer(&self) -> crate::BlindIndexer {
        crate::BlindIndexer::new(self.blind_index_key.expose_secret())
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The signer of link tokens (one-click unsubscribe), keyed from the blind-index key.
    pub fn link_signer(&self) -> crate::LinkSigner {
        crate::LinkSigner::derive(self.blind_index_key.expose_secret())
    }

    /// The signer of audit checkpoints.
    pub fn checkpoint_signer(&self) -> crate::CheckpointSigner {
        crate::CheckpointSigner::from_seed(self.checkpoint_signing_key.expose_secret())
    }
}

impl crate::KeyWrapper for KeyFile {
    fn wrap(&self, subject: &str, key: &crate::DataKey) -> crate::WrappedKey {
        let (version, kek) = self.key_encryption_keys.last().expect("a key file always has a KEK");
        crate::crypto::wrap_with(kek.expose_secret(), *version, subject, key)
    }

    fn unwrap(&self, subject: &str, wrapped: &crate::WrappedKey) -> Result<crate::DataKey, crate::CryptoError> {
        let (_, kek) = self
            .key_encryption_keys
            .iter()
            .find(|(v, _)| *v == wrapped.kek_version)
            .ok_or(crate::CryptoError::UnknownKek(wrapped.kek_version))?;
        crate::crypto::unwrap_with(kek.expose_secret(), subject, wrapped)
    }

    fn current_version(&self) -> u32 {
        self.key_encryption_keys.last().map_or(0, |(v, _)| *v)
    }
}

trait ClassifyReason {
    fn classify_reason(&self) -> &'static str;
}

impl ClassifyReason for serde_json::Error {
    fn classify_reason(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "could not be read",
            serde_json::error::Category::Syntax => "is not valid JSON",
            serde_json::error::Category::Data => "is missing a key or has a wrong value type",
            serde_json::error::Category::Eof => "ends too early",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_key_file_is_refused_saying_how() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("{\"format\": 1,", "ends too early"),
            ("{format}", "is not valid JSON"),
            ("{\"format\": \"one\"}", "is missing a key or has a wrong value type"),
        ];
        for (text, says) in cases {
            let path = dir.path().join("keys.json");
            fs::write(&path, text).unwrap();
            let refused = KeyFile::load(&path).unwrap_err().to_string();
            assert!(refused.contains(says), "{text}: {refused}");
        }
    }

    #[test]
    fn created_once_with_private_mode_and_reloaded_identically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let a = KeyFile::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let b = KeyFile::load_or_create(&path).unwrap();
        assert_eq!(a.checkpoint_signer().public_key_hex(), b.checkpoint_signer().public_key_hex());
        let dk = crate::DataKey::generate();
        let w = a.wrap("s", &dk);
        assert!(b.unwrap("s", &w).is_ok(), "the reloaded file holds the same KEK");
        let shown = format!("{a:?}");
        assert!(
            shown.starts_with("KeyFile { path: ") && shown.contains("keys.json") && shown.ends_with(".. }"),
            "{shown}"
        );
        let other = KeyFile::load_or_create(&dir.path().join("other.json")).unwrap();
        assert_ne!(a.checkpoint_signer().public_key_hex(), other.checkpoint_signer().public_key_hex());
    }

    #[test]
    fn malformed_file_is_refused_without_echoing_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        fs::write(&path, r#"{"format":1,"key_encryption_keys":[{"version":1,"key":"00ff-secret-looking"}]}"#).unwrap();
        let err = KeyFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("not a valid charter key file"), "{err}");
        assert!(!err.contains("secret-looking"), "{err}");
    }

    #[test]
    fn debug_does_not_print_keys() {
        let dir = tempfile::tempdir().unwrap();
        let kf = KeyFile::load_or_create(&dir.path().join("k.json")).unwrap();
        let hexkey = hex::encode(kf.key_encryption_keys[0].1.expose_secret());
        assert!(!format!("{kf:?}").contains(&hexkey));
    }

    #[test]
    fn rotation_keeps_old_keys_until_retired_and_survives_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let mut kf = KeyFile::load_or_create(&path).unwrap();
        let dk = crate::DataKey::generate();
        let old = kf.wrap("s", &dk);
        assert_eq!(kf.rotate().unwrap(), 2);
        let reloaded = KeyFile::load(&path).unwrap();
        assert_eq!(reloaded.kek_versions(), vec![1, 2]);
        assert!(reloaded.unwrap("s", &old).is_ok(), "old wraps still open after rotation");
        let new = reloaded.wrap("s", &reloaded.unwrap("s", &old).unwrap());
        assert_eq!(new.kek_version, 2);
        kf.retire_old_keys().unwrap();
        let retired = KeyFile::load(&path).unwrap();
        assert_eq!(retired.unwrap("s", &old).err(), Some(crate::CryptoError::UnknownKek(1)));
        assert!(retired.unwrap("s", &new).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
