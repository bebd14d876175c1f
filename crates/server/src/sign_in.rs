//! Password guessing is throttled (P33). A collection that checks a password against the
//! stored hash (a sign-in, or a sign-up repeating the password of someone stored) is an
//! attempt for the person as the request names them. An attempt is refused (429) while that
//! name's failed attempts within the policy's window (`[security] sign_in_window_minutes`)
//! of the first of them, together with the attempts for it still running, number the
//! policy's `sign_in_failures`; a failure counts, a match clears the count. Attempts still
//! running count too: beyond the failures left, an attempt waits for one running to end,
//! so guesses sent at once cannot all pass before the first of them fails, while the same
//! person signing in twice at once is only delayed.
//!
//! A name is an identifier's blind index or charter's opaque id, whether or not it belongs
//! to a subject, so a refusal here says nothing of who is one. Each name a person can be
//! given (email, phone, external id, id) has its own count. The counts live in the
//! database ([`charter_store::sign_ins`]), so every server on it shares them and a restart
//! forgets nothing; an attempt holds its place for at most [`LEASE`], so one a stopped
//! server left behind is freed.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use charter_policy::model::Security;
use charter_store::sign_ins::{Begin, Limits, Outcome};
use charter_store::Store;

/// The longest an attempt holds its place: far beyond an argon2 check's 20 ms.
pub const LEASE: Duration = Duration::from_secs(60);
/// Expired counts are forgotten at most this often by each process.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// The longest a waiting attempt sleeps before looking again (another server's attempt
/// ending does not wake it).
const MAX_POLL: Duration = Duration::from_millis(250);

/// How a request names a person: never the identifier itself.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Named {
    /// By an identifier's blind index, with the identifier's kind.
    Blind(&'static str, [u8; 32]),
    /// By charter's opaque subject id.
    Id(String),
}

impl Named {
    /// The name as the database keeps it.
    fn key(&self) -> String {
        match self {
            Self::Blind(kind, blind) => format!("{kind}:{}", hex::encode(blind)),
            Self::Id(id) => format!("id:{id}"),
        }
    }
}

/// Attempts by name, kept in the database.
pub struct SignInThrottle {
    store: Store,
    limits: Limits,
    /// Woken whenever an attempt of this process ends.
    ended: tokio::sync::Notify,
    pruned: Mutex<Option<Instant>>,
}

/// Why an attempt did not start.
#[derive(Debug)]
pub enum NotStarted {
    /// The name's failures are used up for this long.
    Refused(Duration),
    /// The database failed.
    Db(anyhow::Error),
}

impl SignInThrottle {
    /// A throttle over `store` with the policy's thresholds.
    pub fn new(store: Store, security: &Security) -> Self {
        let limits = Limits {
            failures: i64::from(security.sign_in_failures),
            window_us: i64::from(security.sign_in_window_minutes) * 60_000_000,
            lease_us: i64::try_from(LEASE.as_micros()).unwrap_or(i64::MAX),
        };
        Self { store, limits, ended: tokio::sync::Notify::new(), pruned: Mutex::new(None) }
    }

    /// Starts an attempt for `who`, once the attempts running for it leave room, or refuses
    /// it with how long until its failures stop counting.
    pub async fn begin(&self, who: &Named) -> Result<Attempt<'_>, NotStarted> {
        self.prune().await;
        let name = who.key();
        let mut poll = Duration::from_millis(10);
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            // Registered before looking, so an attempt ending in between still wakes this one.
            ended.as_mut().enable();
            match self.store.begin_sign_in(&name, charter_store::now_us(), self.limits).await {
                Ok(Begin::Started(id)) => return Ok(Attempt { throttle: self, name, id }),
                Ok(Begin::Refused(wait_us)) => {
                    return Err(NotStarted::Refused(Duration::from_micros(u64::try_from(wait_us).unwrap_or(0))))
                }
                Ok(Begin::Wait) => {
                    let _ = tokio::time::timeout(poll, ended).await;
                    poll = (poll * 2).min(MAX_POLL);
                }
                Err(e) => return Err(NotStarted::Db(e.into())),
            }
        }
    }

    /// Forgets expired counts, at most every [`PRUNE_EVERY`]; a failure is only logged.
    async fn prune(&self) {
        let now = Instant::now();
        {
            let mut pruned = self.pruned.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if pruned.is_some_and(|at| now < at + PRUNE_EVERY) {
                return;
            }
            *pruned = Some(now);
        }
        if let Err(e) = self.store.prune_sign_ins(charter_store::now_us(), self.limits).await {
            tracing::warn!(error = %e, "cannot forget expired sign-in counts");
        }
    }
}

/// An attempt under way, ended by [`Attempt::failed`], [`Attempt::matched`] or
/// [`Attempt::abandoned`]. One dropped without an end holds its place until its lease
/// runs out.
pub struct Attempt<'a> {
    throttle: &'a SignInThrottle,
    name: String,
    id: String,
}

impl Attempt<'_> {
    /// The password did not match: a failure for the name.
    pub async fn failed(self) -> anyhow::Result<()> {
        self.end(Outcome::Failed).await
    }

    /// The password matched: the name's count starts again.
    pub async fn matched(self) -> anyhow::Result<()> {
        self.end(Outcome::Matched).await
    }

    /// The check could not finish: neither a failure nor a match.
    pub async fn abandoned(self) -> anyhow::Result<()> {
        self.end(Outcome::Abandoned).await
    }

    async fn end(self, outcome: Outcome) -> anyhow::Result<()> {
        let t = self.throttle;
        let ended = t.store.end_sign_in(&self.name, &self.id, outcome, charter_store::now_us(), t.limits).await;
        t.ended.notify_waiters();
        Ok(ended?)
    }
}
