//! `charter outbox list | show`.

use std::io::Write as _;
use std::sync::Arc;

use anyhow::Context as _;
use charter_delivery::outbox::OutboxError;
use charter_delivery::Outbox;
use charter_store::DataDir;
use secrecy::ExposeSecret as _;

use crate::args::OutboxCommand;
use crate::config::Settings;
use crate::Failure;

/// Runs an outbox command. Listing needs only the key file; showing a message to a
/// subject needs the subject's key from the database.
pub async fn run(cmd: OutboxCommand, settings: &Settings) -> Result<(), Failure> {
    let key_path = settings.data_dir.join("keys.json");
    if !key_path.is_file() {
        eprintln!("error: no charter data directory at {} (its key file is missing)", settings.data_dir.display());
        return Err(Failure::Refused);
    }
    let keys = charter_vault::KeyFile::load(&key_path).context("cannot load the key file")?;
    let outbox = Outbox::new(settings.data_dir.join("outbox"), Arc::new(keys));
    match cmd {
        OutboxCommand::List => {
            println!("id\tchannel\tbytes");
            for e in outbox.list().context("cannot list the outbox")? {
                println!("{}\t{}\t{}", e.id, e.channel, e.size);
            }
            Ok(())
        }
        OutboxCommand::Show { id } => {
            let url = settings.database_url.as_ref().map(|s| s.expose_secret().to_owned());
            let data = DataDir::open_existing(&settings.data_dir, url.as_deref()).await?;
            let shown = outbox.show(&data.store, &id).await;
            data.store.close().await;
            match shown {
                Ok((_, bytes)) => {
                    std::io::stdout().write_all(&bytes).context("cannot write to stdout")?;
                    Ok(())
                }
                Err(e @ (OutboxError::Missing(_) | OutboxError::Erased(_))) => {
                    eprintln!("error: {e}");
                    Err(Failure::Refused)
                }
                Err(e) => Err(Failure::Error(e.into())),
            }
        }
    }
}
