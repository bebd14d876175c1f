//! `charter jobs run | list | retry`, and the set-up they share with `mail test`.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;

use anyhow::Context as _;
use charter_delivery::{Senders, Tally, Worker};
use charter_store::{AuditLog, DataDir};
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::args::JobsCommand;
use crate::config::Settings;
use crate::Failure;

/// An opened data directory with its audit writer: what a command that queues work or
/// records it needs.
pub(crate) struct Opened {
    pub store: charter_store::Store,
    /// Held while the data directory is in use.
    _lock: charter_store::DirLock,
    pub keys: Arc<charter_vault::KeyFile>,
    pub audit: AuditLog,
    audit_task: tokio::task::JoinHandle<()>,
}

impl Opened {
    /// Opens the data directory `settings` name and starts its audit writer.
    pub async fn open(settings: &Settings) -> Result<Self, Failure> {
        let url = settings.database_url.as_ref().map(|s| s.expose_secret().to_owned());
        let DataDir { keys, store, lock, .. } = DataDir::open_existing(&settings.data_dir, url.as_deref()).await?;
        let (audit, audit_task) = AuditLog::start(&store, keys.checkpoint_signer());
        Ok(Self { store, _lock: lock, keys: Arc::new(keys), audit, audit_task })
    }

    /// Signs the final checkpoint and closes the database.
    pub async fn close(self) -> anyhow::Result<()> {
        self.audit.close().await?;
        drop(self.audit);
        self.audit_task.await?;
        self.store.close().await;
        Ok(())
    }
}

/// An opened data directory with the configured channels.
pub(crate) struct Delivery {
    pub opened: Opened,
    pub senders: Arc<Senders>,
}

impl std::ops::Deref for Delivery {
    type Target = Opened;

    fn deref(&self) -> &Opened {
        &self.opened
    }
}

impl Delivery {
    /// Opens the data directory and sets up the channels `settings` name.
    pub async fn open(settings: &Settings, policy: Option<&std::path::Path>) -> Result<Self, Failure> {
        let policy = super::policy::load_or_default(policy)?;
        let opened = Opened::open(settings).await?;
        let senders = Senders::new(&settings.delivery, opened.keys.clone(), &policy.policy, &settings.data_dir)
            .context("cannot set up delivery")?;
        Ok(Self { opened, senders: Arc::new(senders) })
    }

    /// Signs the final checkpoint and closes the database.
    pub async fn close(self) -> anyhow::Result<()> {
        self.opened.close().await
    }
}

/// Runs a job command.
pub async fn run(cmd: JobsCommand, settings: &Settings) -> Result<(), Failure> {
    match cmd {
        JobsCommand::Run { until_empty, policy, .. } => work(settings, policy.as_deref(), until_empty).await,
        JobsCommand::List { state, limit } => {
            let url = settings.database_url.as_ref().map(|s| s.expose_secret().to_owned());
            let data = DataDir::open_existing(&settings.data_dir, url.as_deref()).await?;
            let jobs = data.store.list_jobs(state.map(|s| s.as_str()), limit).await.context("cannot list jobs")?;
            println!("id\tkind\tchannel\tstate\tattempts\tnext\tlast error");
            for j in jobs {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    j.id,
                    j.kind,
                    j.channel,
                    j.state,
                    j.attempts,
                    charter_core::time::rfc3339_from_us(j.next_at_us),
                    j.last_error.unwrap_or_default()
                );
            }
            data.store.close().await;
            Ok(())
        }
        JobsCommand::Retry { id } => retry(settings, &id).await,
    }
}

/// Runs a worker in the foreground.
async fn work(settings: &Settings, policy: Option<&std::path::Path>, until_empty: bool) -> Result<(), Failure> {
    let d = Delivery::open(settings, policy).await?;
    eprintln!("mail goes to {}; text messages go to {}", d.senders.mail.describe(), d.senders.sms.describe());
    let worker = Worker::new(
        d.store.clone(),
        d.keys.clone(),
        d.audit.clone(),
        d.senders.clone(),
        settings.delivery.worker.clone(),
        Arc::default(),
    );
    if until_empty {
        let tty = std::io::stderr().is_terminal();
        let total = worker
            .run_until_empty(|t, left| {
                if tty {
                    eprint!("\r{} left", progress(t, left));
                    let _ = std::io::stderr().flush();
                }
            })
            .await
            .context("the worker stopped")?;
        if tty {
            eprintln!();
        }
        println!("{}", progress(&total, 0));
    } else {
        worker.run_until(super::serve::shutdown_signal()?).await;
    }
    d.close().await?;
    Ok(())
}

fn progress(t: &Tally, left: i64) -> String {
    format!("sent {}, retried {}, dead {}, void {}; {left}", t.sent, t.retried, t.dead, t.voided)
}

/// Requeues a dead job, recorded in the audit chain.
async fn retry(settings: &Settings, id: &str) -> Result<(), Failure> {
    let url = settings.database_url.as_ref().map(|s| s.expose_secret().to_owned());
    let data = DataDir::open_existing(&settings.data_dir, url.as_deref()).await?;
    if !data.store.retry_job(id, charter_store::now_us()).await.context("cannot requeue")? {
        data.store.close().await;
        eprintln!("error: no dead job has that id (`charter jobs list --state dead` lists them)");
        return Err(Failure::Refused);
    }
    super::record_operator(&data, "job.retry", json!({ "job": id })).await.context("cannot record the retry")?;
    println!("requeued {id}");
    Ok(())
}
