//! `charter mail test`.

use anyhow::Context as _;
use charter_core::audit::AuditEvent;
use charter_delivery::{Enqueue, Mail, Message, Outcome, Seal};
use serde_json::json;

use super::jobs::Delivery;
use crate::args::MailCommand;
use crate::config::Settings;
use crate::Failure;

/// Runs a mail command.
pub async fn run(cmd: MailCommand, settings: &Settings) -> Result<(), Failure> {
    match cmd {
        MailCommand::Test { to, queue, policy, .. } => test(settings, to, queue, policy.as_deref()).await,
        MailCommand::Campaign { purpose, subject, template, policy, .. } => {
            let campaign = super::campaign::Campaign { purpose, subject, template };
            super::campaign::run(settings, campaign, policy.as_deref()).await
        }
    }
}

/// `charter mail test`.
async fn test(settings: &Settings, to: String, queue: bool, policy: Option<&std::path::Path>) -> Result<(), Failure> {
    let address = charter_vault::Normaliser::new(None, false)
        .and_then(|n| n.normalise(charter_vault::IdentifierKind::Email, &to).map_err(|e| e.to_string()));
    if address.is_err() {
        eprintln!("error: --to is not an email address");
        return Err(Failure::Refused);
    }
    let d = Delivery::open(settings, policy).await?;
    let mut text = "This message tests charter's mail settings. Nothing needs to be done.\n".to_owned();
    if let Some(base) = &settings.public_url {
        text.push_str(&format!("\nOur privacy notice: {}/\n", base.trim_end_matches('/')));
    }
    let mail = Mail { to, subject: "charter test message".into(), text, html: None, unsubscribe: None };
    let outcome = if queue { enqueue(&d, mail).await } else { send_now(&d, &mail).await };
    d.close().await?;
    outcome
}

/// Queues the message for a running server's workers.
async fn enqueue(d: &Delivery, mail: Mail) -> Result<(), Failure> {
    let id = uuid::Uuid::new_v4().to_string();
    let job = Enqueue {
        kind: "mail.test",
        idempotency_key: format!("mail.test:{id}"),
        message: &Message::Mail(mail),
        seal: Seal::KeyFile,
        max_attempts: None,
    };
    let (job, _) = charter_delivery::enqueue(&d.store, &*d.keys, job, charter_store::now_us())
        .await
        .context("cannot queue the message")?;
    println!("queued job {job}");
    Ok(())
}

/// Sends the message now, through the configured channel, and records the attempt.
async fn send_now(d: &Delivery, mail: &Mail) -> Result<(), Failure> {
    let id = uuid::Uuid::new_v4().to_string();
    eprintln!("sending to {}", d.senders.mail.describe());
    let key = charter_delivery::JobKey::under_key_file(&*d.keys, &id);
    let attempt = d.senders.mail.send(&id, &key, mail).await;
    let result = if attempt.outcome == Outcome::Sent { "sent" } else { "failed" };
    d.audit
        .append(
            AuditEvent::new("operator", "mail.test", result)
                .with_detail(&json!({ "message": id, "reply": attempt.reply })),
        )
        .await
        .context("cannot record the test in the audit chain")?;
    match attempt.outcome {
        Outcome::Sent => {
            println!("sent: {}", attempt.reply);
            Ok(())
        }
        _ => Err(Failure::Error(anyhow::anyhow!("not sent: {}", attempt.reply))),
    }
}
