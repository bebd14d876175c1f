//! Workers: claim due jobs under a lease, send them a few at a time, record each attempt
//! in the audit chain and then its outcome in the queue. A worker killed mid-batch leaves
//! leases that run out; the jobs are claimed again and sent again with the same
//! `Message-ID` or `Charter-Delivery` id. A message goes out twice only when the worker
//! stopped between the remote side accepting it and the queue recording it: at most as
//! many messages per stop as the worker sends at once (`concurrency`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use charter_core::audit::AuditEvent;
use charter_store::jobs::{ClaimedJob, Finish};
use charter_store::{now_us, AuditLog, Store};
use charter_vault::KeyFile;
use futures_util::{FutureExt as _, StreamExt as _};
use serde_json::json;

use crate::queue::{self, OpenError};
use crate::{Attempt, DeliveryError, Outcome, Senders};

/// How workers claim, pace and retry.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Jobs claimed at once, and sent at the same time. A batch is no larger, so a claim
    /// need only outlast one send (`send_timeout`), never a queue of them.
    pub concurrency: usize,
    /// How long a claim holds; a job whose worker stopped runs again after it. Longer
    /// than `send_timeout`, or a slow send may be claimed and sent by another worker too.
    pub lease: Duration,
    /// How long an idle worker waits before it looks again.
    pub poll: Duration,
    /// The first retry's delay; each later one doubles, up to `retry_cap`, ±20 % jitter.
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// How long one send may take before it counts as failed; at most half of `lease`.
    pub send_timeout: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            concurrency: 16,
            lease: Duration::from_secs(120),
            poll: Duration::from_secs(1),
            retry_base: Duration::from_secs(30),
            retry_cap: Duration::from_secs(3600),
            send_timeout: Duration::from_secs(60),
        }
    }
}

/// The delay before retry number `attempt` (1 for the first retry): `base` doubled per
/// attempt, capped, then scaled by `0.8 + 0.4 * unit` (`unit` in [0, 1)) so that jobs
/// failing together do not come back together.
pub fn backoff(attempt: u32, base: Duration, cap: Duration, unit: f64) -> Duration {
    let doubled = base.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
    doubled.min(cap).mul_f64(0.8 + 0.4 * unit.clamp(0.0, 1.0))
}

/// Longest wait a `Retry-After` may ask for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What this process's workers have done, for metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub retried: AtomicU64,
    pub dead: AtomicU64,
    pub voided: AtomicU64,
}

/// Counts of one or more rounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub claimed: u64,
    pub sent: u64,
    pub retried: u64,
    pub dead: u64,
    pub voided: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Self) {
        self.claimed += o.claimed;
        self.sent += o.sent;
        self.retried += o.retried;
        self.dead += o.dead;
        self.voided += o.voided;
    }
}

/// One worker.
#[derive(Clone)]
pub struct Worker {
    pub store: Store,
    pub keys: Arc<KeyFile>,
    pub audit: AuditLog,
    pub senders: Arc<Senders>,
    pub settings: WorkerSettings,
    pub counters: Arc<Counters>,
    /// The name its leases are held under.
    owner: String,
}

impl Worker {
    /// A worker with a lease name of its own.
    pub fn new(
        store: Store,
        keys: Arc<KeyFile>,
        audit: AuditLog,
        senders: Arc<Senders>,
        settings: WorkerSettings,
        counters: Arc<Counters>,
    ) -> Self {
        let owner = format!("worker-{}", uuid::Uuid::new_v4().simple());
        // A send must end well within its lease, or another worker may claim it meanwhile.
        let settings = WorkerSettings { send_timeout: settings.send_timeout.min(settings.lease / 2), ..settings };
        Self { store, keys, audit, senders, settings, counters, owner }
    }

    /// Works until `stop` resolves, finishing the batch in hand.
    pub async fn run_until(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            if (&mut stop).now_or_never().is_some() {
                return;
            }
            let pause = match self.round().await {
                Ok(t) if t.claimed > 0 => Duration::ZERO,
                Ok(_) => self.settings.poll,
                Err(e) => {
                    tracing::warn!(error = %e, "a round of jobs failed; trying again");
                    self.settings.poll
                }
            };
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Works until no job is queued or running, calling `progress` after each round with
    /// the counts so far and the jobs left.
    pub async fn run_until_empty(&self, mut progress: impl FnMut(&Tally, i64)) -> Result<Tally, DeliveryError> {
        let mut total = Tally::default();
        loop {
            let round = self.round().await?;
            total += round;
            let left = self.store.pending_jobs().await?;
            progress(&total, left);
            if left == 0 {
                return Ok(total);
            }
            if round.claimed == 0 {
                tokio::time::sleep(self.settings.poll).await;
            }
        }
    }

    /// Claims one batch and sends its jobs at the same time. Each job's attempt is recorded
    /// in the audit chain as soon as it ends, then its outcome in the queue: outcomes that
    /// end while a commit is under way go into the next one together. So a worker killed
    /// mid-batch sends again only the jobs in flight at that moment.
    pub async fn round(&self) -> Result<Tally, DeliveryError> {
        let now = now_us();
        let lease_until = now + i64::try_from(self.settings.lease.as_micros()).unwrap_or(i64::MAX);
        let batch = u32::try_from(self.settings.concurrency.max(1)).unwrap_or(u32::MAX);
        let jobs = self.store.claim_jobs(&self.owner, now, lease_until, batch).await?;
        let (ended, mut to_record) = tokio::sync::mpsc::unbounded_channel::<(String, Finish)>();
        let sending = async move {
            let sent: Vec<Result<(), DeliveryError>> = futures_util::stream::iter(jobs)
                .map(|job| {
                    let ended = ended.clone();
                    async move {
                        let (finish, audited) = self.attempt_and_audit(&job).await;
                        // The outcome is recorded even when its evidence is not: a sent
                        // message forgotten by the queue would go out again.
                        let _ = ended.send((job.id, finish));
                        audited
                    }
                })
                .buffer_unordered(usize::MAX)
                .collect()
                .await;
            sent.into_iter().collect::<Result<Vec<()>, _>>()
        };
        let recording = async {
            let mut recorded = Vec::new();
            let mut failed = None;
            while let Some(first) = to_record.recv().await {
                let mut group = vec![first];
                while let Ok(more) = to_record.try_recv() {
                    group.push(more);
                }
                match self.record(&group).await {
                    Ok(()) => recorded.extend(group.into_iter().map(|(_, f)| f)),
                    // Keep draining: every outcome still gets its chance to be recorded.
                    Err(e) => failed = Some(e),
                }
            }
            match failed {
                Some(e) => Err(e),
                None => Ok(recorded),
            }
        };
        let (sent, recorded) = tokio::join!(sending, recording);
        sent?;
        Ok(self.count(&recorded?))
    }

    /// Records outcomes in the queue, trying again a few times when the database fails
    /// (an outcome not recorded means a message sent again once its lease runs out).
    async fn record(&self, group: &[(String, Finish)]) -> Result<(), DeliveryError> {
        let mut pause = Duration::from_millis(100);
        for _ in 0..4 {
            match self.store.finish_jobs(&self.owner, group, now_us()).await {
                Ok(_) => return Ok(()),
                Err(e) => tracing::warn!(error = ?e, "cannot record job outcomes; trying again"),
            }
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
        Ok(self.store.finish_jobs(&self.owner, group, now_us()).await.map(|_| ())?)
    }

    /// Sends one job and records the attempt in the audit chain (evidence first: an
    /// attempt is in the chain before the queue forgets it); returns what the queue
    /// records, and whether the evidence was written.
    async fn attempt_and_audit(&self, job: &ClaimedJob) -> (Finish, Result<(), DeliveryError>) {
        let attempt = self.attempt(job).await;
        let audited = self.audit.append(evidence(job, &attempt, &self.owner)).await.map(|_| ()).map_err(Into::into);
        (self.finish(job, &attempt, now_us()), audited)
    }

    /// Opens and sends one job.
    async fn attempt(&self, job: &ClaimedJob) -> Attempt {
        let (key, message) = match queue::open(&self.store, &*self.keys, job).await {
            Ok(opened) => opened,
            Err(OpenError::Erased) => return Attempt { outcome: Outcome::Void, reply: "erased".into() },
            Err(OpenError::Store(e)) => {
                tracing::warn!(error = ?e, "cannot open a job");
                return Attempt::retry("database", None);
            }
            Err(e) => {
                tracing::warn!(job = %job.id, error = ?e, "a job's message does not open");
                return Attempt::permanent("sealed message does not open");
            }
        };
        let send = self.senders.send(&self.store, &self.keys, &job.id, &key, &message);
        tokio::time::timeout(self.settings.send_timeout, send).await.unwrap_or_else(|_| Attempt::retry("timeout", None))
    }

    /// What the queue records for an attempt.
    fn finish(&self, job: &ClaimedJob, attempt: &Attempt, now: i64) -> Finish {
        let error = attempt.reply.clone();
        match attempt.outcome {
            Outcome::Sent => Finish::Done,
            Outcome::Void => Finish::Void,
            Outcome::Permanent => Finish::Dead { error },
            Outcome::Retry(_) if job.attempts >= job.max_attempts => {
                Finish::Dead { error: format!("{error} (after {} attempts)", job.attempts) }
            }
            Outcome::Retry(after) => {
                let s = &self.settings;
                let delay = match after {
                    Some(asked) => asked.min(MAX_RETRY_AFTER),
                    None => backoff(job.attempts, s.retry_base, s.retry_cap, rand::random::<f64>()),
                };
                Finish::Retry { at_us: now + i64::try_from(delay.as_micros()).unwrap_or(i64::MAX), error }
            }
        }
    }

    fn count(&self, finishes: &[Finish]) -> Tally {
        let mut t = Tally { claimed: finishes.len() as u64, ..Tally::default() };
        for f in finishes {
            let (slot, counter) = match f {
                Finish::Done => (&mut t.sent, &self.counters.sent),
                Finish::Retry { .. } => (&mut t.retried, &self.counters.retried),
                Finish::Dead { .. } => (&mut t.dead, &self.counters.dead),
                Finish::Void => (&mut t.voided, &self.counters.voided),
            };
            *slot += 1;
            counter.fetch_add(1, Ordering::Relaxed);
        }
        t
    }
}

/// The audit entry of one attempt: job, kind, channel, attempt, reply and the worker that
/// made it; the subject's opaque id when the message was to a subject; never content or
/// address.
fn evidence(job: &ClaimedJob, attempt: &Attempt, worker: &str) -> AuditEvent {
    let result = match attempt.outcome {
        Outcome::Sent => "sent",
        Outcome::Retry(_) => "failed",
        Outcome::Permanent => "refused",
        Outcome::Void => "void",
    };
    let mut event = AuditEvent::new("system", "job.attempt", result).with_detail(&json!({
        "job": job.id,
        "kind": job.kind,
        "channel": job.channel,
        "attempt": job.attempts,
        "reply": attempt.reply,
        "worker": worker,
    }));
    event.subject = job.subject_id.clone();
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let cap = Duration::from_secs(60);
        assert_eq!(backoff(1, S, cap, 0.5), S);
        assert_eq!(backoff(2, S, cap, 0.5), 2 * S);
        assert_eq!(backoff(3, S, cap, 0.5), 4 * S);
        assert_eq!(backoff(7, S, cap, 0.5), cap);
        assert_eq!(backoff(200, S, cap, 0.5), cap, "no overflow far out");
        assert_eq!(backoff(0, S, cap, 0.5), S, "attempt 0 is treated as the first");
    }

    #[test]
    fn jitter_spreads_a_delay_by_a_fifth_either_way() {
        let cap = Duration::from_secs(3600);
        let base = Duration::from_secs(10);
        assert_eq!(backoff(1, base, cap, 0.0), Duration::from_secs(8));
        assert_eq!(backoff(1, base, cap, 1.0), Duration::from_secs(12));
        assert_eq!(backoff(1, base, cap, 0.25), Duration::from_secs(9));
        assert_eq!(backoff(1, base, cap, 7.0), Duration::from_secs(12), "out of range is clamped");
        assert_eq!(backoff(1, base, cap, -1.0), Duration::from_secs(8));
    }
}
