//! `charter audit ...`.

use charter_store::{audit, DataDir, VerifyError};
use secrecy::ExposeSecret as _;

use anyhow::Context as _;
use charter_core::audit::AuditEvent;
use charter_store::AuditLog;

use crate::args::{AuditCommand, RecordArgs};
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
        AuditCommand::Record(args) => record(args, settings).await,
    }
}

fn is_dotted_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-:".contains(c))
}

/// Appends one event and prints its sequence number.
async fn record(args: RecordArgs, settings: &Settings) -> Result<(), Failure> {
    let refuse = |msg: &str| {
        eprintln!("error: {msg}");
        Failure::Refused
    };
    if !is_dotted_name(&args.action) {
        return Err(refuse(
            "--action must be a dotted lowercase name of at most 64 characters, e.g. compliance.review",
        ));
    }
    if !is_token(&args.actor) || args.actor.contains('@') {
        return Err(refuse(
            "--actor must be a role or staff identifier (letters, digits, . _ - :, at most 64), not a name or email address",
        ));
    }
    if !is_token(&args.result) {
        return Err(refuse("--result must be a short code (letters, digits, . _ - :), e.g. ok"));
    }
    let detail: serde_json::Value = serde_json::from_str(&args.detail)
        .map_err(|e| refuse(&format!("--detail is not JSON (line {}, column {})", e.line(), e.column())))?;
    if !detail.is_object() || args.detail.len() > 4096 {
        return Err(refuse("--detail must be a JSON object of at most 4096 bytes"));
    }
    let url = settings.database_url.as_ref().map(|s| s.expose_secret().to_owned());
    let data = DataDir::open_existing(&settings.data_dir, url.as_deref()).await?;
    let (log, task) = AuditLog::start(&data.store, data.keys.checkpoint_signer());
    let event = AuditEvent::new(args.actor, args.action, args.result).with_detail(&detail);
    let seq = log.append(event).await.context("cannot append to the audit chain")?;
    log.close().await.context("cannot sign the audit checkpoint")?;
    task.await.context("audit writer failed")?;
    data.store.close().await;
    println!("recorded as entry {seq}");
    Ok(())
}
