//! Where messages go when no gateway is configured: `DATA_DIR/outbox/mail/<job>.eml` and
//! `DATA_DIR/outbox/sms/<job>.txt`, each sealed under the key file (nothing leaves the
//! machine, and nothing personal lies on disk in clear). The operator opens them with
//! `charter outbox list` and `charter outbox show ID`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use charter_vault::KeyFile;

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

    /// Seals `bytes` and writes them as job `id`'s message on `channel`, through a
    /// temporary file renamed into place (a job sent again replaces its own file).
    pub fn put(&self, channel: &str, id: &str, bytes: &[u8]) -> Result<(), OutboxError> {
        let path = self.file(channel, id).ok_or_else(|| OutboxError::Missing(id.to_owned()))?;
        let folder = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(folder).map_err(io(folder))?;
        let sealed = charter_vault::envelope::seal(&*self.keys, &format!("outbox/{channel}/{id}"), bytes);
        // A temporary name of its own (two workers may write one job after a lease ran
        // out), synced before it is renamed into place, and the rename synced: the job is
        // marked done right after this returns.
        let tmp = folder.join(format!(".{id}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(&sealed).and_then(|()| file.sync_all()).map_err(io(&tmp))?;
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

    /// Seals every message again under the current key-encryption key (before a rotation
    /// retires the old one); returns how many.
    pub fn reseal(&self) -> Result<usize, OutboxError> {
        let entries = self.list()?;
        for e in &entries {
            let (channel, bytes) = self.show(&e.id)?;
            self.put(channel, &e.id, &bytes)?;
        }
        Ok(entries.len())
    }

    /// Opens message `id`: its channel and its bytes.
    pub fn show(&self, id: &str) -> Result<(&'static str, Vec<u8>), OutboxError> {
        let is_id = !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
        for (channel, _) in CHANNELS {
            let Some(path) = self.file(channel, id).filter(|_| is_id) else { continue };
            let sealed = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&path)(e)),
            };
            let bytes = charter_vault::envelope::open(&*self.keys, &format!("outbox/{channel}/{id}"), &sealed)
                .map_err(|e| OutboxError::Sealed(id.to_owned(), e))?;
            return Ok((channel, bytes));
        }
        Err(OutboxError::Missing(if is_id { id.to_owned() } else { "with that id".to_owned() }))
    }
}
