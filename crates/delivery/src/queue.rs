//! Putting a message on the queue, sealed, and opening it again when it is sent.
//!
//! Each job's message is sealed under a data key of its own. That key is wrapped under
//! the subject's data key when the message is to a subject (so erasing the person makes
//! it unreadable, and the erasure voids it), or under the key-encryption key when it is
//! to someone who is not a subject, or must outlive an erasure (its confirmation). The
//! same key seals the message in the outbox, so an erasure reaches it there too.

use charter_store::jobs::{ClaimedJob, NewJob};
use charter_store::Store;
use charter_vault::{DataKey, Holder, KeyWrapper, WrappedKey};

use crate::{DeliveryError, Message};

/// What a job's own key is wrapped under.
pub enum Seal<'a> {
    /// The subject's data key: the message dies with the subject.
    Subject { id: &'a str, key: &'a DataKey },
    /// The key-encryption key: for people who are not subjects, and messages that must
    /// outlive an erasure.
    KeyFile,
}

/// A message to queue.
pub struct Enqueue<'a> {
    /// What it is for, e.g. `mail.test`.
    pub kind: &'a str,
    /// Queuing the same key twice queues one job.
    pub idempotency_key: String,
    pub message: &'a Message,
    pub seal: Seal<'a>,
    /// Attempts before it is dead; the channel's default when `None`.
    pub max_attempts: Option<u32>,
}

/// Where a job's own key is kept: wrapped under its subject's data key, or under the
/// key-encryption key of `kek_version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptKey {
    pub subject: Option<String>,
    pub kek_version: Option<u32>,
    pub wrapped: Vec<u8>,
}

/// A job's own key, open, and how it is kept.
pub struct JobKey {
    pub own: DataKey,
    pub kept: KeptKey,
}

impl JobKey {
    /// A new key for job `job_id`, wrapped under the key file (a message that goes out
    /// without a queued job, such as `charter mail test`).
    pub fn under_key_file(keys: &dyn KeyWrapper, job_id: &str) -> Self {
        let own = DataKey::generate();
        let wrapped = keys.wrap(&label(job_id), &own);
        Self { own, kept: KeptKey { subject: None, kek_version: Some(wrapped.kek_version), wrapped: wrapped.sealed } }
    }
}

/// What a job's message is bound to.
pub(crate) fn label(job_id: &str) -> String {
    format!("job:{job_id}")
}

/// Seals and queues a message; returns the job's id and whether it is new (an
/// idempotency key already queued gives the earlier job's id).
pub async fn enqueue(
    store: &Store,
    keys: &dyn KeyWrapper,
    job: Enqueue<'_>,
    now_us: i64,
) -> Result<(String, bool), DeliveryError> {
    let mut out = enqueue_all(store, keys, vec![job], now_us).await?;
    Ok(out.pop().expect("one result per job"))
}

/// Seals and queues several messages in one transaction (a campaign, a breach notice to
/// everyone affected): all or none.
pub async fn enqueue_all(
    store: &Store,
    keys: &dyn KeyWrapper,
    jobs: Vec<Enqueue<'_>>,
    now_us: i64,
) -> Result<Vec<(String, bool)>, DeliveryError> {
    let sealed = jobs.into_iter().map(|job| seal(keys, job, now_us)).collect::<Result<Vec<_>, _>>()?;
    Ok(store.enqueue_jobs(&sealed, now_us).await?)
}

/// One message sealed as a job row.
fn seal(keys: &dyn KeyWrapper, job: Enqueue<'_>, now_us: i64) -> Result<NewJob, DeliveryError> {
    let id = uuid::Uuid::new_v4().to_string();
    let own = DataKey::generate();
    let plaintext = serde_json::to_vec(job.message).map_err(DeliveryError::Encode)?;
    let sealed = own.seal_message(&label(&id), &plaintext);
    let (subject_id, kek_version, wrapped_key) = match job.seal {
        Seal::Subject { id: subject, key } => {
            (Some(subject.to_owned()), None, key.wrap_own(subject, Holder::Job(&id), &own))
        }
        Seal::KeyFile => {
            let wrapped = keys.wrap(&label(&id), &own);
            (None, Some(wrapped.kek_version), wrapped.sealed)
        }
    };
    let channel = job.message.channel();
    Ok(NewJob {
        id,
        kind: job.kind.to_owned(),
        channel: channel.as_str().to_owned(),
        idempotency_key: job.idempotency_key,
        subject_id,
        kek_version,
        wrapped_key,
        sealed,
        max_attempts: job.max_attempts.unwrap_or(channel.default_attempts()),
        due_at_us: now_us,
    })
}

/// Why a claimed job's message could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The subject was erased: the message is void.
    #[error("the person was erased")]
    Erased,
    /// The keys do not open it (a damaged row, or a retired key-encryption key).
    #[error("the sealed message does not open")]
    Sealed(#[from] charter_vault::CryptoError),
    /// It opened but is not a message this build reads.
    #[error("the message is not readable")]
    Decode(#[source] serde_json::Error),
    #[error(transparent)]
    Store(#[from] charter_store::StoreError),
}

/// Opens job `job_id`'s own key where it is kept; [`OpenError::Erased`] once its subject
/// was erased.
pub async fn unwrap_key(
    store: &Store,
    keys: &dyn KeyWrapper,
    job_id: &str,
    kept: &KeptKey,
) -> Result<DataKey, OpenError> {
    match (&kept.subject, kept.kek_version) {
        (Some(subject), _) => {
            let record = store.subject(subject).await?.ok_or(OpenError::Erased)?;
            let wrapped = record.wrapped.ok_or(OpenError::Erased)?;
            let subject_key = keys.unwrap(subject, &wrapped)?;
            Ok(subject_key.unwrap_own(subject, Holder::Job(job_id), &kept.wrapped)?)
        }
        (None, version) => Ok(keys.unwrap(
            &label(job_id),
            &WrappedKey { kek_version: version.unwrap_or_default(), sealed: kept.wrapped.clone() },
        )?),
    }
}

/// Opens a claimed job's message, and its key (which seals it again in the outbox).
pub async fn open(store: &Store, keys: &dyn KeyWrapper, job: &ClaimedJob) -> Result<(JobKey, Message), OpenError> {
    let kept =
        KeptKey { subject: job.subject_id.clone(), kek_version: job.kek_version, wrapped: job.wrapped_key.clone() };
    let own = unwrap_key(store, keys, &job.id, &kept).await?;
    let plaintext = own.open_message(&label(&job.id), &job.sealed)?;
    let message = serde_json::from_slice(&plaintext).map_err(OpenError::Decode)?;
    Ok((JobKey { own, kept }, message))
}
