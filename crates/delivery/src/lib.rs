//! # charter-delivery
//!
//! Reaching people and processors reliably. A message is sealed and queued as a durable
//! job ([`queue`]); workers claim due jobs under a lease, send them ([`mail`], [`sms`],
//! [`webhook`], or the sealed [`outbox`] when no gateway is configured), retry with
//! backoff and jitter, and record every attempt in the audit chain ([`worker`]).
//!
//! Nothing personal is kept in clear: not in the jobs table, the outbox, logs, errors or
//! the audit chain, which holds the job, kind, channel, result and the remote side's
//! reply code, never a message's content or address.

pub mod mail;
pub mod message;
pub mod outbox;
pub mod queue;
pub mod rotate;
pub mod sms;
pub mod webhook;
pub mod worker;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use charter_store::Store;
use charter_vault::KeyFile;

pub use message::{Channel, Mail, Message, Sms, Webhook};
pub use outbox::Outbox;
pub use queue::{enqueue, enqueue_all, Enqueue, JobKey, Seal};
pub use worker::{Counters, Tally, Worker, WorkerSettings};

/// Why delivery could not be set up or a job queued.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// A setting is wrong; the message says which (never its value).
    #[error("{0}")]
    Config(String),
    #[error("cannot encode the message")]
    Encode(#[source] serde_json::Error),
    #[error(transparent)]
    Store(#[from] charter_store::StoreError),
    #[error("cannot record an attempt in the audit chain")]
    Audit(#[from] charter_store::AuditError),
    #[error(transparent)]
    Outbox(#[from] outbox::OutboxError),
    /// A job key or webhook secret does not open with the key file; names which.
    #[error("cannot open {what} with the key file")]
    Sealed {
        what: String,
        #[source]
        source: charter_vault::CryptoError,
    },
}

/// How one attempt went, and the remote side's reply (a code or a short class of
/// failure, never text that could quote an address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub outcome: Outcome,
    pub reply: String,
}

/// What follows an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// Try again, after this long when the remote side said so.
    Retry(Option<Duration>),
    /// Never again.
    Permanent,
    /// The message can no longer be opened because its person was erased.
    Void,
}

impl Attempt {
    pub fn sent(reply: impl Into<String>) -> Self {
        Self { outcome: Outcome::Sent, reply: reply.into() }
    }
    pub fn retry(reply: impl Into<String>, after: Option<Duration>) -> Self {
        Self { outcome: Outcome::Retry(after), reply: reply.into() }
    }
    pub fn permanent(reply: impl Into<String>) -> Self {
        Self { outcome: Outcome::Permanent, reply: reply.into() }
    }
}

/// Where messages go: the operator's settings.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `smtp://user:pass@host:port` (`?tls=required` for STARTTLS) or `smtps://...`; the
    /// outbox when `None`.
    pub smtp_url: Option<secrecy::SecretString>,
    /// The `From` address; needed with `smtp_url`.
    pub mail_from: Option<String>,
    pub dkim: Option<mail::Dkim>,
    /// The SMS gateway; the outbox when `None`.
    pub sms: Option<sms::Gateway>,
    /// How workers claim, pace and retry.
    pub worker: WorkerSettings,
}

/// Every channel, set up once.
pub struct Senders {
    pub mail: mail::Mailer,
    pub sms: sms::Texter,
    pub webhooks: webhook::Webhooks,
}

impl Senders {
    /// The channels `config` names; the outbox under `data_dir` for any left unset.
    pub fn new(
        config: &Config,
        keys: Arc<KeyFile>,
        policy: &charter_policy::model::Policy,
        data_dir: &Path,
    ) -> Result<Self, DeliveryError> {
        let outbox = Outbox::new(data_dir.join("outbox"), keys);
        let from = match (&config.mail_from, &config.smtp_url) {
            (Some(from), _) => from.as_str(),
            (None, None) => "charter@localhost",
            (None, Some(_)) => return Err(DeliveryError::Config("--smtp-url needs --mail-from".into())),
        };
        let ids = &policy.identifiers;
        let fold = ids.email_local_part == charter_policy::model::EmailLocalPart::CaseInsensitive;
        let numbers = charter_vault::Normaliser::new(ids.phone_region.as_deref(), fold)
            .map_err(|e| DeliveryError::Config(format!("the policy's [identifiers] phone_region: {e}")))?;
        Ok(Self {
            mail: mail::Mailer::new(config.smtp_url.as_ref(), from, config.dkim.as_ref(), outbox.clone())?,
            sms: sms::Texter::new(config.sms.clone(), numbers, outbox)?,
            webhooks: webhook::Webhooks::new(policy)?,
        })
    }

    /// Sends `message`, job `job_id`'s, once; `key` is the job's own key.
    pub async fn send(&self, store: &Store, keys: &KeyFile, job_id: &str, key: &JobKey, message: &Message) -> Attempt {
        match message {
            Message::Mail(m) => self.mail.send(job_id, key, m).await,
            Message::Sms(s) => self.sms.send(job_id, key, s).await,
            Message::Webhook(w) => self.webhooks.send(store, keys, job_id, w).await,
        }
    }
}
