//! `charter recipients secret NAME`.

use anyhow::Context as _;
use charter_policy::model::Deletion;
use charter_store::DataDir;
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::args::RecipientsCommand;
use crate::config::Settings;
use crate::Failure;

/// Runs a recipient command.
pub async fn run(cmd: RecipientsCommand, settings: &Settings) -> Result<(), Failure> {
    let RecipientsCommand::Secret { name, policy } = cmd;
    let loaded = super::policy::load_or_default(policy.as_deref())?;
    match loaded.policy.recipients.get(&name).map(|r| &r.deletion) {
        Some(Some(Deletion::Webhook(_))) => {}
        Some(_) => {
            eprintln!("error: recipient `{name}` is not reached by webhook (its deletion is not `webhook = \"...\"`)");
            return Err(Failure::Refused);
        }
        None => {
            eprintln!("error: no recipient by that name in the policy");
            return Err(Failure::Refused);
        }
    }
    let url = settings.database_url.as_ref().map(|s| s.expose_secret().to_owned());
    let data = DataDir::open_existing(&settings.data_dir, url.as_deref()).await?;
    let secret = charter_delivery::webhook::new_secret(&data.store, &data.keys, &name, charter_store::now_us())
        .await
        .context("cannot store the secret")?;
    super::record_operator(&data, "recipient.secret", json!({ "recipient": name }))
        .await
        .context("cannot record the new secret")?;
    println!("{secret}");
    Ok(())
}
