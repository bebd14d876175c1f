//! One module per command.

pub mod admin;
pub mod apikey;
pub mod audit;
pub mod backup;
pub mod campaign;
pub mod jobs;
pub mod keys;
pub mod mail;
pub mod outbox;
pub mod policy;
pub mod publish;
pub mod recipients;
pub mod retention;
pub mod scan;
pub mod serve;

use crate::args::Command;
use crate::config::Settings;
use crate::Failure;

/// Runs a command.
pub async fn run(command: Command, settings: Settings) -> Result<(), Failure> {
    match command {
        Command::Serve(_) => serve::run(settings).await,
        Command::Policy(crate::args::PolicyCommand::Publish { file, yes }) => publish::run(&settings, &file, yes).await,
        Command::Policy(cmd) => policy::run(cmd),
        Command::Audit(cmd) => audit::run(cmd, &settings).await,
        Command::Apikey(cmd) => apikey::run(cmd, &settings).await,
        Command::Keys(cmd) => keys::run(cmd, &settings).await,
        Command::Scan(args) => scan::run(args),
        Command::Bench(args) => Ok(charter_bench::run(args).await?),
        Command::Jobs(cmd) => jobs::run(cmd, &settings).await,
        Command::Mail(cmd) => mail::run(cmd, &settings).await,
        Command::Outbox(cmd) => outbox::run(cmd, &settings).await,
        Command::Recipients(cmd) => recipients::run(cmd, &settings).await,
        Command::Admin(crate::args::AdminCommand::Add { email, role, policy }) => {
            admin::add(&settings, &email, &role, policy.as_deref()).await
        }
        Command::Retention(cmd) => retention::run(cmd, &settings).await,
        Command::Hold(cmd) => retention::hold(cmd, &settings).await,
        Command::Backup(cmd) => backup::run(cmd, &settings).await,
        Command::Verify { file } => admin::verify(&settings, &file),
    }
}

/// Records an operator's action in the audit chain (with its own writer, signing a
/// checkpoint), then closes the database.
pub(crate) async fn record_operator(
    data: &charter_store::DataDir,
    action: &str,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    let (log, task) = charter_store::AuditLog::start(&data.store, data.keys.checkpoint_signer());
    log.append(charter_core::audit::AuditEvent::new("operator", action, "ok").with_detail(&detail)).await?;
    log.close().await?;
    drop(log);
    task.await?;
    data.store.close().await;
    Ok(())
}
