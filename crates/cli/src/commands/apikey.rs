//! `charter apikey ...`.

use anyhow::Context as _;
use charter_store::api_keys::ApiKeyError;
use charter_store::DataDir;
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::args::ApikeyCommand;
use crate::config::Settings;
use crate::Failure;

fn refuse(msg: &str) -> Failure {
    eprintln!("error: {msg}");
    Failure::Refused
}

/// Runs an API-key command; every change is recorded in the audit chain.
pub async fn run(cmd: ApikeyCommand, settings: &Settings) -> Result<(), Failure> {
    let url = settings.database_url.as_ref().map(|s| s.expose_secret().to_owned());
    match cmd {
        ApikeyCommand::Create { name, purposes, points, policy } => {
            let purposes: Vec<String> = purposes.into_iter().filter(|p| !p.is_empty()).collect();
            let points: Vec<String> = points.into_iter().filter(|p| !p.is_empty()).collect();
            if name.is_empty()
                || name.len() > 64
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(refuse("--name must be 1-64 letters, digits, '-', '_' or '.'"));
            }
            if purposes.is_empty() && points.is_empty() {
                return Err(refuse("give the key at least one purpose (--purposes) or collection point (--points)"));
            }
            let loaded = super::policy::load_or_default(policy.as_deref())?;
            let p = &loaded.policy;
            if let Some(bad) = purposes.iter().find(|x| !p.purposes.contains_key(*x)) {
                return Err(refuse(&format!("purpose `{bad}` is not in the policy")));
            }
            if let Some(bad) = points.iter().find(|x| !p.collection_points.contains_key(*x)) {
                return Err(refuse(&format!("collection point `{bad}` is not in the policy")));
            }
            let data = DataDir::open(&settings.data_dir, url.as_deref()).await?;
            let token = match data.store.create_api_key(&name, &purposes, &points, charter_store::now_us()).await {
                Ok(t) => t,
                Err(ApiKeyError::NameTaken(n)) => {
                    return Err(refuse(&format!("an API key named `{n}` already exists")))
                }
                Err(e) => return Err(Failure::Error(anyhow::Error::new(e).context("cannot create the API key"))),
            };
            super::record_operator(
                &data,
                "apikey.create",
                json!({ "name": name, "purposes": purposes, "points": points }),
            )
            .await?;
            println!("{token}");
        }
        ApikeyCommand::Revoke { name } => {
            let data = DataDir::open_existing(&settings.data_dir, url.as_deref()).await?;
            if !data.store.revoke_api_key(&name, charter_store::now_us()).await.context("cannot revoke")? {
                return Err(refuse(&format!("no live API key named `{name}`")));
            }
            super::record_operator(&data, "apikey.revoke", json!({ "name": name })).await?;
            println!("revoked `{name}`");
        }
    }
    Ok(())
}
