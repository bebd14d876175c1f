//! Password guessing is throttled (P33). A collection that checks a password against the
//! stored hash (a sign-in, or a sign-up repeating the password of someone stored) is an
//! attempt for the person as the request names them. An attempt is refused (429) while that
//! name's failed attempts within [`WINDOW`] of the first of them, together with the attempts
//! for it still running, number [`MAX_FAILURES`]; a failure counts, a match clears the count.
//! Attempts still running count too: beyond the failures left, an attempt waits for one
//! running to end, so guesses sent at once cannot all pass before the first of them fails,
//! while the same person signing in twice at once is only delayed.
//!
//! A name is an identifier's blind index or charter's opaque id, whether or not it belongs
//! to a subject, so a refusal here says nothing of who is one. Each name a person can be
//! given (email, phone, external id, id) has its own count. The counts live in this
//! process's memory: a restart clears them, and servers sharing a PostgreSQL database each
//! keep their own.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Failed attempts allowed per name within [`WINDOW`].
pub const MAX_FAILURES: u32 = 5;
/// How long failures count, from the first of them.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Names with expired counts are dropped at most this often.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// At most this many names are tracked at once. With argon2id at about 20 ms of one core
/// per check, a 2-core server checks at most about 90,000 passwords in one window. Past
/// it, a new name is checked without being counted, and a warning says so.
const MAX_TRACKED: usize = 1_000_000;

/// How a request names a person: never the identifier itself.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Named {
    /// By an identifier's blind index, with the identifier's kind.
    Blind(&'static str, [u8; 32]),
    /// By charter's opaque subject id.
    Id(String),
}

/// One name's attempts.
#[derive(Clone, Copy)]
struct Count {
    failures: u32,
    running: u32,
    /// The first failure of the window (or when the entry was made, with none).
    since: Instant,
}

impl Count {
    /// Failures that still count at `now`.
    fn failures_at(&self, now: Instant) -> u32 {
        if now < self.since + WINDOW {
            self.failures
        } else {
            0
        }
    }
}

#[derive(Default)]
struct Names {
    counts: HashMap<Named, Count>,
    pruned: Option<Instant>,
}

/// Attempts by name.
#[derive(Default)]
pub struct SignInThrottle {
    names: Mutex<Names>,
    /// Woken whenever an attempt ends.
    ended: tokio::sync::Notify,
}

/// Why an attempt cannot start now.
#[derive(Debug, PartialEq)]
enum NotNow {
    /// The name's failures are used up for this long.
    Refused(Duration),
    /// Attempts still running would use them up if they failed.
    Wait,
}

impl SignInThrottle {
    fn names(&self) -> MutexGuard<'_, Names> {
        self.names.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts an attempt for `who`, once the attempts running for it leave room, or refuses
    /// it with how long until its failures stop counting.
    pub async fn begin(&self, who: &Named) -> Result<Attempt<'_>, Duration> {
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            // Registered before looking, so an attempt ending in between still wakes this one.
            ended.as_mut().enable();
            match self.try_begin(who, Instant::now()) {
                Ok(attempt) => return Ok(attempt),
                Err(NotNow::Refused(wait)) => return Err(wait),
                Err(NotNow::Wait) => ended.await,
            }
        }
    }

    fn try_begin(&self, who: &Named, now: Instant) -> Result<Attempt<'_>, NotNow> {
        let mut names = self.names();
        if names.pruned.is_none_or(|at| now >= at + PRUNE_EVERY) {
            names.counts.retain(|_, c| c.running > 0 || c.failures_at(now) > 0);
            names.pruned = Some(now);
        }
        if !names.counts.contains_key(who) && names.counts.len() >= MAX_TRACKED {
            tracing::warn!(tracked = names.counts.len(), "too many names with failed sign-ins to count another");
            return Ok(Attempt { throttle: self, who: None });
        }
        let count = names.counts.entry(who.clone()).or_insert(Count { failures: 0, running: 0, since: now });
        if count.failures_at(now) == 0 {
            *count = Count { failures: 0, running: count.running, since: now };
        }
        if count.failures >= MAX_FAILURES {
            return Err(NotNow::Refused(count.since + WINDOW - now));
        }
        if count.failures + count.running >= MAX_FAILURES {
            return Err(NotNow::Wait);
        }
        count.running += 1;
        Ok(Attempt { throttle: self, who: Some(who.clone()) })
    }
}

/// An attempt under way: [`Attempt::failed`] or [`Attempt::matched`] ends it; dropped
/// without either (an internal failure), it counts as neither.
pub struct Attempt<'a> {
    throttle: &'a SignInThrottle,
    /// `None` when the name is not tracked.
    who: Option<Named>,
}

impl Attempt<'_> {
    /// The password did not match: a failure for the name.
    pub fn failed(mut self, now: Instant) {
        self.end(|c| {
            let counted = c.failures_at(now);
            if counted == 0 {
                c.since = now;
            }
            c.failures = counted + 1;
        });
    }

    /// The password matched: the name's count starts again.
    pub fn matched(mut self) {
        self.end(|c| c.failures = 0);
    }

    fn end(&mut self, outcome: impl FnOnce(&mut Count)) {
        let Some(who) = self.who.take() else { return };
        if let Some(c) = self.throttle.names().counts.get_mut(&who) {
            c.running = c.running.saturating_sub(1);
            outcome(c);
        }
        self.throttle.ended.notify_waiters();
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.end(|_| ());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_refuse_until_the_window_ends_and_a_match_clears_them() {
        let throttle = SignInThrottle::default();
        let (ada, grace) = (Named::Id("ada".into()), Named::Blind("email", [7; 32]));
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            let at = t0 + Duration::from_secs(u64::from(i));
            throttle.try_begin(&ada, at).expect("still allowed").failed(at);
        }
        let later = t0 + Duration::from_secs(60);
        assert_eq!(throttle.try_begin(&ada, later).err(), Some(NotNow::Refused(WINDOW - Duration::from_secs(60))));
        assert!(throttle.try_begin(&grace, later).is_ok(), "another name is not affected");
        // After the window a failure starts a new count.
        throttle.try_begin(&ada, t0 + WINDOW).expect("the window has ended").failed(t0 + WINDOW);
        assert!(throttle.try_begin(&ada, t0 + WINDOW).is_ok());
        // A match clears the count: four failures, a match, four more are still allowed.
        for _ in 0..MAX_FAILURES - 1 {
            throttle.try_begin(&grace, t0).unwrap().failed(t0);
        }
        throttle.try_begin(&grace, t0).unwrap().matched();
        for _ in 0..MAX_FAILURES - 1 {
            throttle.try_begin(&grace, t0).unwrap().failed(t0);
        }
        throttle.try_begin(&grace, t0).unwrap().failed(t0);
        assert_eq!(throttle.try_begin(&grace, t0).err(), Some(NotNow::Refused(WINDOW)));
    }

    #[tokio::test]
    async fn an_attempt_waits_for_one_running_to_end() {
        let throttle = SignInThrottle::default();
        let ada = Named::Id("ada".into());
        let mut running: Vec<Attempt<'_>> = (0..MAX_FAILURES)
            .map(|_| throttle.begin(&ada))
            .collect::<futures_util::future::JoinAll<_>>()
            .await
            .into_iter()
            .map(|a| a.unwrap())
            .collect();
        let waiting = throttle.begin(&ada);
        tokio::pin!(waiting);
        assert!(futures_util::poll!(waiting.as_mut()).is_pending(), "five running: the sixth waits");
        running.pop().unwrap().matched();
        assert!(waiting.await.is_ok(), "a match leaves room");
        for attempt in running {
            attempt.failed(Instant::now());
        }
        assert!(throttle.begin(&ada).await.is_ok(), "four failures leave room for one");
    }

    #[test]
    fn attempts_still_running_count_and_an_abandoned_one_frees_its_place() {
        let throttle = SignInThrottle::default();
        let ada = Named::Id("ada".into());
        let t0 = Instant::now();
        let running: Vec<Attempt<'_>> = (0..MAX_FAILURES).map(|_| throttle.try_begin(&ada, t0).unwrap()).collect();
        assert_eq!(throttle.try_begin(&ada, t0).err(), Some(NotNow::Wait), "guesses at once do not all pass");
        drop(running);
        assert!(throttle.try_begin(&ada, t0).is_ok(), "attempts that ended without an outcome count as neither");
        // Expired names are dropped, but not while an attempt for them runs.
        let held = throttle.try_begin(&Named::Id("grace".into()), t0).unwrap();
        let _ = throttle.try_begin(&Named::Id("other".into()), t0 + PRUNE_EVERY);
        let names = throttle.names();
        assert!(names.counts.contains_key(&Named::Id("grace".into())));
        assert!(!names.counts.contains_key(&ada));
        drop(names);
        drop(held);
    }
}
