//! The data directory: everything one charter installation keeps on disk.
//!
//! ```text
//! charter-data/
//!   charter.db        SQLite database (WAL), unless a database URL is given
//!   charter-audit.db  the audit chain beside it (WAL), attached as `audit`
//!   objects/          object storage for uploads
//!   keys.json         key file (mode 0600): never inside the database
//!   charter.lock      locked (shared) by every process using the folder; a key
//!                     rotation takes it alone
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use charter_vault::KeyFile;

use crate::{Store, Synchronous};

/// An opened data directory: its key file and its store.
pub struct DataDir {
    /// The folder.
    pub root: PathBuf,
    /// Its keys.
    pub keys: KeyFile,
    /// The database: the folder's SQLite file, or the given URL.
    pub store: Store,
    /// This process's share of the folder's lock, held as long as the folder is in use.
    pub lock: DirLock,
}

/// A process's hold on a data directory's `charter.lock`: shared while it uses the folder,
/// and exclusive while it rotates keys, so a rotation never runs beside a server that
/// would go on wrapping new data keys under the key-encryption key the rotation retires.
/// Released when dropped (or when the process ends, however it ends).
#[derive(Debug)]
pub struct DirLock {
    /// `None` where the folder cannot be locked (a read-only copy without the lock file,
    /// a file system without `flock`): such a hold only inspects, it never rotates.
    file: Option<std::fs::File>,
    root: PathBuf,
}

impl DirLock {
    /// A shared hold on `root`'s lock; refused while a key rotation holds it. Where the
    /// folder cannot be locked at all (read-only, or no `flock`), a `lenient` hold (for
    /// commands that inspect) goes on without one, with a warning, and a strict one (a
    /// server, or anything that may create subjects) is refused: only a lock makes a
    /// rotation beside it impossible.
    fn shared(root: &Path, lenient: bool) -> anyhow::Result<Self> {
        let path = root.join("charter.lock");
        let opened = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .or_else(|_| std::fs::File::open(&path));
        let file = match opened {
            Ok(f) => f,
            Err(e) if lenient => {
                tracing::warn!(error = %e, path = %path.display(), "cannot open the data directory's lock file; going on without it");
                return Ok(Self { file: None, root: root.to_owned() });
            }
            Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
        };
        match file.try_lock_shared() {
            Ok(()) => Ok(Self { file: Some(file), root: root.to_owned() }),
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "a key rotation is running on data directory {}; try again when it has finished",
                root.display()
            ),
            Err(std::fs::TryLockError::Error(e)) if lenient => {
                tracing::warn!(error = %e, path = %path.display(), "cannot lock the data directory; going on without the lock");
                Ok(Self { file: None, root: root.to_owned() })
            }
            Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
        }
    }

    /// Makes this hold exclusive: refused while any other process (a running `charter
    /// serve` above all) uses the folder. A refused upgrade takes the shared hold back
    /// (`flock` gives it up while it tries), so the process still holds what it held.
    pub fn exclusive(&self, why: &str) -> anyhow::Result<()> {
        let path = self.root.join("charter.lock");
        let Some(file) = &self.file else {
            anyhow::bail!("cannot lock {}, so cannot tell whether a server is using the folder: {why}", path.display())
        };
        match file.try_lock() {
            Ok(()) => Ok(()),
            Err(std::fs::TryLockError::WouldBlock) => {
                let _ = file.try_lock_shared();
                anyhow::bail!(
                    "another charter process (a running `charter serve`?) is using data directory {}; stop it first: {why}",
                    self.root.display()
                )
            }
            Err(std::fs::TryLockError::Error(e)) => {
                let _ = file.try_lock_shared();
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }
}

/// Present in a data directory while a restore runs; nothing serves it meanwhile.
pub const RESTORE_PENDING: &str = "restore-pending";

impl DataDir {
    /// Creates the folder layout if needed, loads (or creates) the key file,
    /// connects to `database_url` or the folder's SQLite file, and migrates.
    pub async fn open(root: &Path, database_url: Option<&str>) -> anyhow::Result<Self> {
        Self::open_with(root, database_url, Synchronous::Full).await
    }

    /// [`DataDir::open`], with SQLite syncing as `synchronous` says.
    pub async fn open_with(root: &Path, database_url: Option<&str>, synchronous: Synchronous) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !root.join(RESTORE_PENDING).exists(),
            "a restore of {} did not finish: run `charter backup restore` again before serving",
            root.display()
        );
        std::fs::create_dir_all(root.join("objects"))
            .with_context(|| format!("cannot create data directory {}", root.display()))?;
        restrict(root)?;
        let lock = DirLock::shared(root, false)?;
        let keys = KeyFile::load_or_create(&root.join("keys.json"))?;
        Self::connect(root, keys, database_url, lock, synchronous).await
    }

    /// Opens a data directory that must already exist, with its key file:
    /// for commands that inspect data rather than start an installation.
    pub async fn open_existing(root: &Path, database_url: Option<&str>) -> anyhow::Result<Self> {
        let key_path = root.join("keys.json");
        anyhow::ensure!(
            key_path.is_file(),
            "no charter data directory at {} (its key file keys.json is missing); pass --data-dir",
            root.display()
        );
        let lock = DirLock::shared(root, true)?;
        let keys = KeyFile::load(&key_path)?;
        Self::connect(root, keys, database_url, lock, Synchronous::Full).await
    }

    async fn connect(
        root: &Path,
        keys: KeyFile,
        database_url: Option<&str>,
        lock: DirLock,
        synchronous: Synchronous,
    ) -> anyhow::Result<Self> {
        let url = database_url.map_or_else(|| Store::sqlite_url(root), str::to_owned);
        let store = Store::open_with(&url, synchronous).await.context("cannot open the database")?;
        Ok(Self { root: root.to_owned(), keys, store, lock })
    }
}

/// Keeps the data directory private to its owner.
fn restrict(root: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict permissions of {}", root.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_needs_the_folder_to_itself_and_a_refused_one_keeps_its_hold() {
        let dir = tempfile::tempdir().unwrap();
        let server = DirLock::shared(dir.path(), false).unwrap();
        let rotation = DirLock::shared(dir.path(), false).unwrap();
        let refused = rotation.exclusive("testing").unwrap_err().to_string();
        assert!(refused.contains("stop it first: testing"), "{refused}");
        drop(server);
        // The refused upgrade took its shared hold back: nobody else can go exclusive.
        let other = DirLock::shared(dir.path(), false).unwrap();
        assert!(other.exclusive("testing").is_err(), "the refused rotation still holds its share");
        drop(other);
        rotation.exclusive("testing").unwrap();
        // While it is exclusive, no process can start using the folder.
        let late = DirLock::shared(dir.path(), false).unwrap_err().to_string();
        assert!(late.contains("a key rotation is running"), "{late}");
        drop(rotation);
        DirLock::shared(dir.path(), false).unwrap();
    }
}
