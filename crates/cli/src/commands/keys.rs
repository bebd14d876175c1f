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
            // No server may run meanwhile: it would go on wrapping new data keys under the
            // key-encryption key this retires. (Servers on other hosts sharing the database
            // are refused new subjects under the retired key instead; see step 3.)
            data.lock.exclusive("a key rotation retires the key-encryption key a running server uses")?;
            // 1. A new KEK joins the file; old data keys still open under the old one.
            let old_versions = data.keys.kek_versions();
            let version = data.keys.rotate().context("cannot add a key-encryption key")?;
            // 2. Every data key is rewrapped under it, all in one transaction that also
            //    marks the old versions retired in the database, so that from its commit on
            //    no subject can be stored under them. Keys stored under an old version
            //    while it ran are rewrapped by the next pass.
            let mut rewrapped = 0usize;
            let mut passes = 0;
            loop {
                let stale = data.store.wrapped_keys_not_under(version).await.context("cannot read wrapped keys")?;
                if stale.is_empty() && passes > 0 {
                    break;
                }
                if passes == 5 {
                    Err(anyhow::anyhow!(
                        "data keys under the old key-encryption key keep appearing; stop every server using this database and run the rotation again"
                    ))?;
                }
                let mut fresh = Vec::with_capacity(stale.len());
                for (id, w) in &stale {
                    let dk = data.keys.unwrap(id, w).map_err(|e| anyhow::anyhow!("cannot unwrap a data key: {e}"))?;
                    fresh.push((id.clone(), data.keys.wrap(id, &dk)));
                }
                data.store
                    .retire_keks_and_rewrap(&old_versions, &fresh, charter_store::now_us())
                    .await
                    .context("cannot store rewrapped keys")?;
                rewrapped += fresh.len();
                passes += 1;
            }
            // 3. What delivery keeps under the key file (unsent jobs' keys, webhook secrets,
            //    the outbox) is sealed again under the new KEK.
            let outbox = charter_delivery::Outbox::new(
                settings.data_dir.join("outbox"),
                std::sync::Arc::new(
                    charter_vault::KeyFile::load(data.keys.path()).context("cannot reload the key file")?,
                ),
            );
            let carried = charter_delivery::rotate::rewrap(&data.store, &data.keys, &outbox)
                .await
                .context("cannot carry delivery's sealed keys over to the new key-encryption key")?;
            // 4. Only then is the old KEK dropped from the file.
            data.keys.retire_old_keys().context("cannot retire the old key-encryption key")?;
            let (log, task) = AuditLog::start(&data.store, data.keys.checkpoint_signer());
            log.append(AuditEvent::new("operator", "keys.rotate", "ok").with_detail(&json!({
                "kek_version": version,
                "data_keys": rewrapped,
                "retired": old_versions,
                "job_keys": carried.jobs,
                "webhook_secrets": carried.secrets,
                "outbox_messages": carried.outbox,
            })))
            .await
            .context("cannot record the rotation")?;
            log.close().await.context("cannot sign the audit checkpoint")?;
            task.await.context("audit writer failed")?;
            data.store.close().await;
            println!("key-encryption key is now version {version}; {rewrapped} data keys rewrapped");
        }
    }
    Ok(())
}
