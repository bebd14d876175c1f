//! `charter keys rotate`: a new key-encryption key, without re-encrypting field data.

use anyhow::Context as _;
use charter_core::audit::AuditEvent;
use charter_store::{AuditLog, DataDir};
use charter_vault::KeyWrapper as _;
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::args::KeysCommand;
use crate::config::Settings;
use crate::Failure;

/// Runs a key-file command.
pub async fn run(cmd: KeysCommand, settings: &Settings) -> Result<(), Failure> {
    match cmd {
        KeysCommand::Rotate => {
            let url = settings.database_url.as_ref().map(|s| s.expose_secret().to_owned());
            let mut data = DataDir::open_existing(&settings.data_dir, url.as_deref()).await?;
            // 1. A new KEK joins the file; old data keys still open under the old one.
            let version = data.keys.rotate().context("cannot add a key-encryption key")?;
            // 2. Every data key is rewrapped under it, all in one transaction.
            let wrapped = data.store.wrapped_keys().await.context("cannot read wrapped keys")?;
            let mut rewrapped = Vec::with_capacity(wrapped.len());
            for (id, w) in &wrapped {
                let dk = data.keys.unwrap(id, w).map_err(|e| anyhow::anyhow!("cannot unwrap a data key: {e}"))?;
                rewrapped.push((id.clone(), data.keys.wrap(id, &dk)));
            }
            data.store.replace_wrapped_keys(&rewrapped).await.context("cannot store rewrapped keys")?;
            // 3. Only then is the old KEK dropped from the file.
            data.keys.retire_old_keys().context("cannot retire the old key-encryption key")?;
            let (log, task) = AuditLog::start(&data.store, data.keys.checkpoint_signer());
            log.append(
                AuditEvent::new("operator", "keys.rotate", "ok")
                    .with_detail(&json!({ "kek_version": version, "data_keys": rewrapped.len() })),
            )
            .await
            .context("cannot record the rotation")?;
            log.close().await.context("cannot sign the audit checkpoint")?;
            task.await.context("audit writer failed")?;
            data.store.close().await;
            println!("key-encryption key is now version {version}; {} data keys rewrapped", rewrapped.len());
        }
    }
    Ok(())
}
