//! Backups: one snapshot of the data, the audit chain and the objects, described by a
//! manifest (every file's SHA-256, the key-encryption-key versions the data needs, the
//! chain's last entry before the copy) signed with the checkpoint key. No key file is
//! copied. A restore checks all of it, puts the data back but never the chain, and
//! replays from the chain what changed since ([`replay`]).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use charter_store::{Backend, Store};
use charter_vault::{CheckpointSigner, CheckpointVerifier};
use futures_util::TryStreamExt as _;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub mod replay;
mod restore;

pub use restore::{restore, RestoreError, Restored, Target};

/// The manifest's name in a backup folder.
pub const MANIFEST: &str = "manifest";
const FORMAT: &str = "charter-backup/1";
/// A SQLite backup's data file and chain file, and a PostgreSQL backup's dump.
pub const DATA: &str = "charter.db";
pub const AUDIT: &str = "charter-audit.db";
pub const DUMP: &str = "charter.pgdump";
/// The objects, by their location.
pub const OBJECTS: &str = "objects";

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub created_at_us: i64,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// The chain's last entry before the data was copied: a restore replays what follows.
    pub audit_seq: i64,
    /// The key-encryption-key versions the backup's wrapped keys need.
    pub kek_versions: Vec<u32>,
    pub files: Vec<FileEntry>,
}

/// One file of a backup, by its path inside the backup folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// The manifest file: the manifest and its signature over the manifest's JSON.
#[derive(Serialize, Deserialize)]
struct Signed {
    manifest: Manifest,
    signature: String,
}

/// Why a backup does not verify. Nothing here names personal data.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0} is not a charter backup manifest: {1}")]
    Malformed(PathBuf, String),
    #[error("the manifest's signature does not verify with this installation's checkpoint key")]
    Signature,
    #[error("`{0}` is named in the manifest but missing from the backup")]
    Missing(String),
    #[error("`{0}` differs from the SHA-256 the manifest gives it")]
    Changed(String),
    #[error("`{0}` is in the backup folder but not in the manifest")]
    Unlisted(String),
}

/// What a backup is taken from.
pub struct Source<'a> {
    pub store: &'a Store,
    /// The PostgreSQL URL, for `pg_dump` (SQLite needs none).
    pub database_url: Option<&'a str>,
    pub objects: &'a dyn ObjectStore,
    pub signer: &'a CheckpointSigner,
}

/// Takes a backup into `dir`, which must not exist or be empty.
pub async fn create(src: &Source<'_>, dir: &Path) -> anyhow::Result<Manifest> {
    empty_folder(dir)?;
    let audit_seq = charter_store::audit::head_seq(src.store).await.context("cannot read the audit chain")?;
    let kek_versions = src.store.kek_versions_in_use().await.context("cannot read the key versions in use")?;
    let backend = match src.store.backend() {
        Backend::Sqlite => {
            src.store.snapshot_sqlite("main", &dir.join(DATA)).await.context("cannot copy the data file")?;
            src.store.snapshot_sqlite("audit", &dir.join(AUDIT)).await.context("cannot copy the audit file")?;
            "sqlite"
        }
        Backend::Postgres => {
            let url = src.database_url.context("a PostgreSQL backup needs the database URL")?;
            pg_dump(url, &dir.join(DUMP))?;
            "postgres"
        }
    };
    copy_objects_out(src.objects, &dir.join(OBJECTS)).await?;
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        created_at_us: charter_store::now_us(),
        backend: backend.to_owned(),
        audit_seq,
        kek_versions,
        files: hash_folder(dir)?,
    };
    let body = serde_json::to_vec(&manifest).context("the manifest serialises")?;
    let signed = Signed { manifest: manifest.clone(), signature: hex::encode(src.signer.sign(&body)) };
    let text = serde_json::to_string_pretty(&signed).context("the manifest serialises")?;
    std::fs::write(dir.join(MANIFEST), text).context("cannot write the manifest")?;
    Ok(manifest)
}

/// Checks the manifest at `path` (or in the folder `path`) and every file it names;
/// returns the manifest and the backup folder.
pub fn verify(path: &Path, verifier: &CheckpointVerifier) -> Result<(Manifest, PathBuf), VerifyError> {
    let (file, dir) = if path.is_dir() {
        (path.join(MANIFEST), path.to_owned())
    } else {
        (path.to_owned(), path.parent().map_or_else(|| PathBuf::from("."), Path::to_owned))
    };
    let text = std::fs::read_to_string(&file).map_err(|e| VerifyError::Read(file.clone(), e))?;
    let signed: Signed =
        serde_json::from_str(&text).map_err(|e| VerifyError::Malformed(file.clone(), e.to_string()))?;
    let body = serde_json::to_vec(&signed.manifest).map_err(|e| VerifyError::Malformed(file.clone(), e.to_string()))?;
    let signature = hex::decode(&signed.signature).map_err(|_| VerifyError::Signature)?;
    if signed.manifest.format != FORMAT || !verifier.verify(&body, &signature) {
        return Err(VerifyError::Signature);
    }
    let listed = hash_folder(&dir).map_err(|e| VerifyError::Malformed(dir.clone(), e.to_string()))?;
    for want in &signed.manifest.files {
        match listed.iter().find(|f| f.path == want.path) {
            None => return Err(VerifyError::Missing(want.path.clone())),
            Some(got) if got != want => return Err(VerifyError::Changed(want.path.clone())),
            Some(_) => {}
        }
    }
    if let Some(extra) = listed.iter().find(|f| !signed.manifest.files.iter().any(|w| w.path == f.path)) {
        return Err(VerifyError::Unlisted(extra.path.clone()));
    }
    Ok((signed.manifest, dir))
}

fn empty_folder(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
        anyhow::ensure!(entries.next().is_none(), "{} is not empty: a backup never writes over files", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Every file under `dir` but the manifest, by path, with its size and SHA-256.
fn hash_folder(dir: &Path) -> anyhow::Result<Vec<FileEntry>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).with_context(|| format!("cannot read {}", folder.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let rel = path.strip_prefix(dir)?.to_string_lossy().replace('\\', "/");
            if rel == MANIFEST {
                continue;
            }
            let (bytes, sha256) = hash_file(&path)?;
            out.push(FileEntry { path: rel, bytes, sha256 });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn hash_file(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher).with_context(|| format!("cannot read {}", path.display()))?;
    Ok((bytes, hex::encode(hasher.finalize())))
}

fn pg_dump(url: &str, to: &Path) -> anyhow::Result<()> {
    let out = std::process::Command::new("pg_dump")
        .args(["--format=custom", "--no-owner", "--file"])
        .arg(to)
        .arg("--dbname")
        .arg(url)
        .output()
        .context("cannot run pg_dump (install PostgreSQL's client tools)")?;
    anyhow::ensure!(out.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    Ok(())
}

/// Restores a PostgreSQL dump over the database at `url`, all but the audit chain,
/// in one transaction.
pub fn pg_restore(url: &str, dump: &Path) -> anyhow::Result<()> {
    let list =
        std::process::Command::new("pg_restore").arg("--list").arg(dump).output().context("cannot run pg_restore")?;
    anyhow::ensure!(
        list.status.success(),
        "pg_restore --list failed: {}",
        String::from_utf8_lossy(&list.stderr).trim()
    );
    let keep: String = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|l| !(l.contains(" audit_log ") || l.contains(" audit_checkpoint ") || l.contains(" audit_log_")))
        .map(|l| format!("{l}\n"))
        .collect();
    let list_file = dump.with_extension("restore-list");
    let tmp = tempfile_beside(&list_file, &keep)?;
    let out = std::process::Command::new("pg_restore")
        .args(["--clean", "--if-exists", "--single-transaction", "--no-owner", "--use-list"])
        .arg(&tmp)
        .arg("--dbname")
        .arg(url)
        .arg(dump)
        .output()
        .context("cannot run pg_restore")?;
    let _ = std::fs::remove_file(&tmp);
    anyhow::ensure!(out.status.success(), "pg_restore failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    Ok(())
}

/// Writes `text` to a temporary file (outside the backup folder, which stays as signed).
fn tempfile_beside(name: &Path, text: &str) -> anyhow::Result<PathBuf> {
    let file = std::env::temp_dir().join(format!(
        "charter-{}-{}",
        uuid::Uuid::new_v4(),
        name.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(file)
}

async fn copy_objects_out(objects: &dyn ObjectStore, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    let listed: Vec<_> = objects.list(None).try_collect().await.context("cannot list the objects")?;
    for meta in listed {
        let bytes = objects.get(&meta.location).await?.bytes().await.context("cannot read an object")?;
        let file = to.join(meta.location.as_ref());
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&file, &bytes).with_context(|| format!("cannot write {}", file.display()))?;
    }
    Ok(())
}

/// Puts back the bytes of every object the restored data still has a row for; the
/// bytes of objects erased since the backup stay out. Returns how many were put back.
pub async fn copy_objects_in(store: &Store, objects: &dyn ObjectStore, from: &Path) -> anyhow::Result<u64> {
    let mut n = 0;
    for location in store.object_locations().await.context("cannot list the objects to restore")? {
        let file = from.join(OBJECTS).join(&location);
        if !file.is_file() {
            continue;
        }
        let path = ObjectPath::from(location.as_str());
        if objects.head(&path).await.is_ok() {
            continue;
        }
        let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        objects.put(&path, bytes.into()).await.context("cannot restore an object")?;
        n += 1;
    }
    Ok(n)
}
