//! `charter backup create DIR`, `charter backup restore DIR` and `charter verify
//! DIR/manifest` (see [`charter_server::backup`]).

use std::path::Path;

use anyhow::Context as _;
use charter_server::backup::{self, RestoreError, Source, Target};
use charter_store::DataDir;
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::args::BackupCommand;
use crate::config::Settings;
use crate::Failure;

fn refuse(msg: &str) -> Failure {
    eprintln!("error: {msg}");
    Failure::Refused
}

/// Runs a backup command.
pub async fn run(cmd: BackupCommand, settings: &Settings) -> Result<(), Failure> {
    match cmd {
        BackupCommand::Create { dir } => create(settings, &dir).await,
        BackupCommand::Restore { dir, policy } => restore(settings, &dir, policy.as_deref()).await,
    }
}

fn url(settings: &Settings) -> Option<String> {
    settings.database_url.as_ref().map(|s| s.expose_secret().to_owned())
}

async fn create(settings: &Settings, dir: &Path) -> Result<(), Failure> {
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(refuse(&format!("{} is not empty: a backup never writes over files", dir.display())));
    }
    let url = url(settings);
    let data = DataDir::open_existing(&settings.data_dir, url.as_deref()).await?;
    let objects = charter_server::objects::open(settings.object_store.as_deref(), &settings.data_dir.join("objects"))?;
    let signer = data.keys.checkpoint_signer();
    let source =
        Source { store: &data.store, database_url: url.as_deref(), objects: objects.as_ref(), signer: &signer };
    let manifest = backup::create(&source, dir).await.context("the backup failed")?;
    let detail = json!({
        "audit_seq": manifest.audit_seq,
        "files": manifest.files.len(),
        "kek_versions": manifest.kek_versions,
    });
    super::record_operator(&data, "backup.create", detail).await?;
    println!(
        "backup of {} files in {}, after audit entry {}; it needs key-encryption key versions {:?}",
        manifest.files.len(),
        dir.display(),
        manifest.audit_seq,
        manifest.kek_versions
    );
    Ok(())
}

/// `charter verify DIR/manifest`: exit 0 when the manifest is signed by this data
/// directory's key and every file matches it, 2 otherwise.
pub fn verify(settings: &Settings, path: &Path) -> Result<(), Failure> {
    let keys = charter_vault::KeyFile::load(&settings.data_dir.join("keys.json"))
        .with_context(|| format!("cannot load the key file of {}", settings.data_dir.display()))?;
    match backup::verify(path, &keys.checkpoint_signer().verifier()) {
        Ok((m, _)) => {
            println!("valid: a backup of {} files, after audit entry {}", m.files.len(), m.audit_seq);
            Ok(())
        }
        Err(e) => Err(refuse(&format!("the backup does not verify: {e}"))),
    }
}

async fn restore(settings: &Settings, dir: &Path, flag: Option<&Path>) -> Result<(), Failure> {
    let url = url(settings);
    let data = DataDir::open_existing(&settings.data_dir, url.as_deref()).await?;
    let policy = super::retention::policy_in_force(&data, flag).await?;
    let target = Target { data, database_url: url, object_store: settings.object_store.clone(), policy };
    let done = match backup::restore(target, dir).await {
        Ok(done) => done,
        Err(RestoreError::Refused(why)) => return Err(refuse(&why)),
        Err(RestoreError::Failed(e)) => return Err(e.into()),
    };
    if let Some(aside) = &done.kept_aside {
        eprintln!("the data it replaced is kept as {}", aside.display());
    }
    let r = done.replayed;
    println!(
        "restored the backup of {}; replayed {} audit entries since it ({} erasures, {} choices, {} restrictions, {} closed accounts, {} values rectified)",
        charter_core::time::rfc3339_from_us(done.manifest.created_at_us),
        r.entries,
        r.erasures,
        r.choices,
        r.restrictions,
        r.closed_accounts,
        r.rectifications
    );
    Ok(())
}
