//! A restore holds the data directory to itself and marks it as being restored (no
//! server starts on it meanwhile). It puts the backup's data back (the data it replaces
//! is kept, renamed, never deleted), keeps the audit chain as it is, replays what the
//! chain holds since the backup, puts back the objects still referred to, applies
//! retention, records itself in the chain, and only then lifts the mark.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use charter_core::audit::AuditEvent;
use charter_policy::model::Policy;
use charter_store::{Backend, DataDir, Store};
use serde_json::json;

use super::replay::{self, Replayed};
use super::Manifest;

/// Where a backup is restored to.
pub struct Target {
    /// The data directory, opened.
    pub data: DataDir,
    /// The PostgreSQL URL (SQLite needs none).
    pub database_url: Option<String>,
    /// Object storage URL; the data directory's `objects/` when `None`.
    pub object_store: Option<String>,
    /// The policy in force, for replayed erasures and the retention sweep.
    pub policy: Policy,
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    pub manifest: Manifest,
    pub replayed: Replayed,
    /// Where the SQLite data it replaced is kept.
    pub kept_aside: Option<PathBuf>,
}

/// Why a restore did not happen or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Nothing was touched: the backup does not verify, or does not fit here.
    #[error("{0}")]
    Refused(String),
    /// It stopped part-way; the mark stays until a restore finishes.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Restores the backup in `dir` to `target`.
pub async fn restore(target: Target, dir: &Path) -> Result<Restored, RestoreError> {
    let Target { data, database_url, object_store, policy } = target;
    let manifest = match checked(&data, dir) {
        Ok(m) => m,
        Err(why) => {
            data.store.close().await;
            return Err(RestoreError::Refused(why));
        }
    };
    let folder = if dir.is_dir() { dir.to_owned() } else { dir.parent().unwrap_or(Path::new(".")).to_owned() };
    let marker = data.root.join(charter_store::data_dir::RESTORE_PENDING);
    std::fs::write(&marker, manifest.created_at_us.to_string()).context("cannot mark the restore")?;
    let DataDir { root, keys, store, lock } = data;
    let sqlite_file = store.sqlite_file().map(Path::to_owned);
    store.close().await;
    let db_url = database_url.unwrap_or_else(|| Store::sqlite_url(&root));
    let kept_aside = match &sqlite_file {
        Some(file) => Some(put_back_sqlite(file, &folder)?),
        None => {
            super::pg_restore(&db_url, &folder.join(super::DUMP))?;
            None
        }
    };
    let store = Store::open(&db_url).await.context("cannot open the restored database")?;
    let data = DataDir { root, keys, store, lock };
    let replayed = replay::run(&data.store, &policy, manifest.audit_seq).await.context("the replay stopped")?;
    let objects = crate::objects::open(object_store.as_deref(), &data.root.join("objects"))?;
    let put_back = super::copy_objects_in(&data.store, objects.as_ref(), &folder).await?;
    let sweep = crate::retention::Sweep {
        store: &data.store,
        keys: &data.keys,
        objects: objects.as_ref(),
        policy: &policy,
        now_us: charter_store::now_us(),
    };
    let swept = sweep.run(&uuid::Uuid::new_v4().to_string(), &mut |_, _| {}).await.context("the sweep stopped")?;
    let detail = json!({
        "backup_created_at_us": manifest.created_at_us,
        "audit_seq": manifest.audit_seq,
        "replayed": replayed,
        "objects": put_back,
        "retention": crate::retention::tally_json(&swept),
    });
    record(&data, detail).await?;
    std::fs::remove_file(&marker).context("cannot lift the restore mark")?;
    Ok(Restored { manifest, replayed, kept_aside })
}

/// The manifest, when the backup verifies and fits this installation.
fn checked(data: &DataDir, dir: &Path) -> Result<Manifest, String> {
    data.lock.exclusive("a restore replaces the data a running server uses").map_err(|e| format!("{e:#}"))?;
    let (manifest, _) = super::verify(dir, &data.keys.checkpoint_signer().verifier())
        .map_err(|e| format!("the backup is refused: {e}"))?;
    let backend = match data.store.backend() {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    if manifest.backend != backend {
        return Err(format!("the backup is of a {} database; this installation uses {backend}", manifest.backend));
    }
    let have = data.keys.kek_versions();
    if let Some(v) = manifest.kek_versions.iter().find(|v| !have.contains(v)) {
        return Err(format!("the backup needs key-encryption key version {v}, which the key file no longer holds"));
    }
    Ok(manifest)
}

/// Moves the data file (and its WAL) aside and copies the backup's in under its name
/// (written beside it, then renamed); where the old one is kept.
fn put_back_sqlite(file: &Path, folder: &Path) -> anyhow::Result<PathBuf> {
    let aside = PathBuf::from(format!("{}.before-restore-{}", file.display(), charter_store::now_us()));
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", file.display()));
        if from.exists() {
            let to = format!("{}{suffix}", aside.display());
            std::fs::rename(&from, &to).with_context(|| format!("cannot move {} aside", from.display()))?;
        }
    }
    let partial = PathBuf::from(format!("{}.restoring", file.display()));
    std::fs::copy(folder.join(super::DATA), &partial).context("cannot copy the backup's data file")?;
    std::fs::rename(&partial, file).context("cannot put the backup's data file in place")?;
    Ok(aside)
}

/// The restore, in the audit chain, by the operator.
async fn record(data: &DataDir, detail: serde_json::Value) -> anyhow::Result<()> {
    let (log, task) = charter_store::AuditLog::start(&data.store, data.keys.checkpoint_signer());
    log.append(AuditEvent::new("operator", "backup.restore", "ok").with_detail(&detail)).await?;
    log.close().await?;
    drop(log);
    task.await?;
    data.store.close().await;
    Ok(())
}
