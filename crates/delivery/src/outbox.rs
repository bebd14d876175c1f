//! Where messages go when no gateway is configured: `DATA_DIR/outbox/mail/<job>.eml` and
//! `DATA_DIR/outbox/sms/<job>.txt` (nothing leaves the machine). Each file is sealed under
//! its job's own key, and begins with that key as the queue kept it: wrapped under the
//! subject's data key (erasing the person makes the file unreadable) or under the key
//! file. The operator opens them with `charter outbox list` and `charter outbox show ID`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use charter_store::Store;
use charter_vault::{KeyFile, KeyWrapper as _, WrappedKey};
use serde::{Deserialize, Serialize};

use crate::queue::{self, JobKey, KeptKey, OpenError};

/// The outbox folder and the keys that seal what is put in it.
#[derive(Clone)]
pub struct Outbox {
    dir: PathBuf,
    keys: Arc<KeyFile>,
}

/// One message in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `mail` or `sms`.
    pub channel: &'static str,
    /// The job's id.
    pub id: String,
    /// Sealed size in bytes.
    pub size: u64,
}

const CHANNELS: [(&str, &str); 2] = [("mail", "eml"), ("sms", "txt")];

/// Why the outbox could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("cannot use the outbox folder {}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("no message {0} in the outbox")]
    Missing(String),
    #[error("message {0} in the outbox does not open with this key file")]
    Sealed(String, #[source] charter_vault::CryptoError),
    #[error("message {0} in the outbox is not a charter outbox file")]
    Damaged(String),
    #[error("message {0} in the outbox was to a person since erased; it no longer opens")]
    Erased(String),
    #[error(transparent)]
    Store(#[from] charter_store::StoreError),
}

/// The first line of every outbox file.
const MAGIC: &[u8] = b"charter-outbox 1\n";

/// The second line: where the job's own key is kept.
#[derive(Serialize, Deserialize)]
struct Header {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kek_version: Option<u32>,
    /// The wrapped key, in hex.
    key: String,
}

/// An outbox file: its header and the sealed message after it.
fn encode(kept: &KeptKey, sealed: &[u8]) -> Vec<u8> {
    let header =
        Header { subject: kept.subject.clone(), kek_version: kept.kek_version, key: hex::encode(&kept.wrapped) };
    let mut out = MAGIC.to_vec();
    out.extend(serde_json::to_vec(&header).expect("a header always encodes"));
    out.push(b'\n');
    out.extend_from_slice(sealed);
    out
}

/// The key and the sealed message of an outbox file; `None` when it is not one.
fn decode(bytes: &[u8]) -> Option<(KeptKey, &[u8])> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let end = rest.iter().position(|b| *b == b'\n')?;
    let header: Header = serde_json::from_slice(&rest[..end]).ok()?;
    let wrapped = hex::decode(header.key).ok()?;
    Some((KeptKey { subject: header.subject, kek_version: header.kek_version, wrapped }, &rest[end + 1..]))
}

fn message_label(channel: &str, id: &str) -> String {
    format!("outbox/{channel}/{id}")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OutboxError + '_ {
    move |source| OutboxError::Io { path: path.to_owned(), source }
}

impl Outbox {
    /// The outbox under `dir` (usually `DATA_DIR/outbox`).
    pub fn new(dir: PathBuf, keys: Arc<KeyFile>) -> Self {
        Self { dir, keys }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, channel: &str, id: &str) -> Option<PathBuf> {
        let (_, ext) = CHANNELS.iter().find(|(c, _)| *c == channel)?;
        Some(self.dir.join(channel).join(format!("{id}.{ext}")))
    }

    /// Seals `bytes` under job `id`'s own key and writes them as its message on
    /// `channel` (a job sent again replaces its own file).
    pub fn put(&self, channel: &str, id: &str, key: &JobKey, bytes: &[u8]) -> Result<(), OutboxError> {
        let sealed = key.own.seal_message(&message_label(channel, id), bytes);
        self.write(channel, id, &encode(&key.kept, &sealed))
    }

    /// Writes an outbox file through a temporary file renamed into place.
    fn write(&self, channel: &str, id: &str, contents: &[u8]) -> Result<(), OutboxError> {
        let path = self.file(channel, id).ok_or_else(|| OutboxError::Missing(id.to_owned()))?;
        let folder = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(folder).map_err(io(folder))?;
        // A temporary name of its own (two workers may write one job after a lease ran
        // out), synced before it is renamed into place, and the rename synced: the job is
        // marked done right after this returns.
        let tmp = folder.join(format!(".{id}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(contents).and_then(|()| file.sync_all()).map_err(io(&tmp))?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        std::fs::File::open(folder).and_then(|f| f.sync_all()).map_err(io(folder))
    }

    /// Every message in the outbox, by channel then id.
    pub fn list(&self) -> Result<Vec<Entry>, OutboxError> {
        let mut out = Vec::new();
        for (channel, ext) in CHANNELS {
            let folder = self.dir.join(channel);
            let Ok(read) = std::fs::read_dir(&folder) else { continue };
            for entry in read {
                let entry = entry.map_err(io(&folder))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(id) = name.strip_suffix(&format!(".{ext}")).filter(|s| !s.starts_with('.')) else {
                    continue;
                };
                let size = entry.metadata().map_err(io(&folder))?.len();
                out.push(Entry { channel, id: id.to_owned(), size });
            }
        }
        out.sort_by(|a, b| (a.channel, &a.id).cmp(&(b.channel, &b.id)));
        Ok(out)
    }

    /// Wraps again, under the current key-encryption key, the job keys of messages
    /// wrapped under an older one (before a rotation retires it); returns how many.
    /// Keys wrapped under a subject's key are left: the vault's rotation carries those.
    pub fn reseal(&self) -> Result<usize, OutboxError> {
        let current = self.keys.current_version();
        let mut count = 0;
        for e in self.list()? {
            let (kept, sealed) = self.read(e.channel, &e.id)?;
            let Some(version) = kept.kek_version.filter(|v| kept.subject.is_none() && *v != current) else {
                continue;
            };
            let label = queue::label(&e.id);
            let own = self
                .keys
                .unwrap(&label, &WrappedKey { kek_version: version, sealed: kept.wrapped })
                .map_err(|err| OutboxError::Sealed(e.id.clone(), err))?;
            let again = self.keys.wrap(&label, &own);
            let kept = KeptKey { subject: None, kek_version: Some(again.kek_version), wrapped: again.sealed };
            self.write(e.channel, &e.id, &encode(&kept, &sealed))?;
            count += 1;
        }
        Ok(count)
    }

    /// The key and sealed message of the file of job `id` on `channel`.
    fn read(&self, channel: &str, id: &str) -> Result<(KeptKey, Vec<u8>), OutboxError> {
        let path = self.file(channel, id).ok_or_else(|| OutboxError::Missing(id.to_owned()))?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(OutboxError::Missing(id.to_owned())),
            Err(e) => return Err(io(&path)(e)),
        };
        let (kept, sealed) = decode(&bytes).ok_or_else(|| OutboxError::Damaged(id.to_owned()))?;
        Ok((kept, sealed.to_vec()))
    }

    /// Opens message `id`: its channel and its bytes. A message to a subject needs the
    /// subject's key from `store`; once they are erased it no longer opens.
    pub async fn show(&self, store: &Store, id: &str) -> Result<(&'static str, Vec<u8>), OutboxError> {
        let is_id = !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
        if !is_id {
            return Err(OutboxError::Missing("with that id".to_owned()));
        }
        for (channel, _) in CHANNELS {
            let (kept, sealed) = match self.read(channel, id) {
                Err(OutboxError::Missing(_)) => continue,
                other => other?,
            };
            let own = match queue::unwrap_key(store, &*self.keys, id, &kept).await {
                Ok(own) => own,
                Err(OpenError::Erased) => return Err(OutboxError::Erased(id.to_owned())),
                Err(OpenError::Store(e)) => return Err(e.into()),
                Err(OpenError::Sealed(e)) => return Err(OutboxError::Sealed(id.to_owned(), e)),
                Err(OpenError::Decode(_)) => return Err(OutboxError::Damaged(id.to_owned())),
            };
            let bytes = own
                .open_message(&message_label(channel, id), &sealed)
                .map_err(|e| OutboxError::Sealed(id.to_owned(), e))?;
            return Ok((channel, bytes));
        }
        Err(OutboxError::Missing(id.to_owned()))
    }
}
