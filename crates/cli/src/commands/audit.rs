//! `charter audit ...`.

use charter_store::{audit, DataDir, VerifyError};
use secrecy::ExposeSecret as _;

use crate::args::AuditCommand;
use crate::config::Settings;
use crate::Failure;

/// Runs an audit command.
pub async fn run(cmd: AuditCommand, settings: &Settings) -> Result<(), Failure> {
    match cmd {
        AuditCommand::Verify => {
            let url = settings.database_url.as_ref().map(|s| s.expose_secret().to_owned());
            let data = DataDir::open_existing(&settings.data_dir, url.as_deref()).await?;
            let verifier = data.keys.checkpoint_signer().verifier();
            let result = audit::verify(&data.store, &verifier).await;
            data.store.close().await;
            match result {
                Ok(r) => {
                    println!(
                        "ok: {} entries form one unbroken chain; {} signed checkpoints verified (latest at entry {}); {} entries after it",
                        r.entries,
                        r.checkpoints,
                        r.last_checkpoint.map_or_else(|| "none".to_owned(), |s| s.to_string()),
                        r.unsigned_tail
                    );
                    Ok(())
                }
                Err(VerifyError::Read(e)) => {
                    Err(Failure::Error(anyhow::Error::new(e).context("cannot read the audit chain")))
                }
                Err(e) => {
                    println!("FAILED: {e}");
                    Err(Failure::Code(1))
                }
            }
        }
    }
}
