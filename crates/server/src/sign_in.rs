//! Password guessing is throttled (P33). A collection that checks a password against the
//! stored hash (a sign-in, or a sign-up repeating a password already set) and fails counts
//! against the person it names; after [`MAX_FAILURES`] failures within [`WINDOW`] of the
//! first, every such collection naming them is refused (429) until the window ends,
//! without the password being checked. A match clears the count.
//!
//! The count is kept by how the request names the person (an identifier's blind index, or
//! charter's opaque id), whether or not they are a subject, so a refusal here says nothing
//! of who is one. It lives in this process's memory: a restart clears it, and servers
//! sharing a PostgreSQL database each keep their own.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Failed password checks allowed per person within [`WINDOW`].
pub const MAX_FAILURES: u32 = 5;
/// How long failures count, from the first of them.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// At most this many people are tracked at once; expired counts make room first. With
/// argon2id at about 20 ms of one core per check, a 2-core server checks at most about
/// 90,000 passwords in one window.
const MAX_TRACKED: usize = 1_000_000;

/// How a request names a person: never the identifier itself.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Named {
    /// By an identifier's blind index, with the identifier's kind.
    Blind(&'static str, [u8; 32]),
    /// By charter's opaque subject id.
    Id(String),
}

/// Failed password checks by person: how many, since when.
#[derive(Default)]
pub struct SignInThrottle {
    failures: Mutex<HashMap<Named, (u32, Instant)>>,
}

impl SignInThrottle {
    /// How long until `who` may have a password checked again, when their failures have
    /// used up the window; `None` when they may now.
    pub fn refused_for(&self, who: &Named, now: Instant) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let (count, since) = failures.get(who)?;
        let ends = *since + WINDOW;
        (*count >= MAX_FAILURES && now < ends).then(|| ends - now)
    }

    /// Counts a failed check for `who`.
    pub fn failed(&self, who: &Named, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() >= MAX_TRACKED && !failures.contains_key(who) {
            failures.retain(|_, (_, since)| now < *since + WINDOW);
            if failures.len() >= MAX_TRACKED {
                tracing::warn!(tracked = failures.len(), "too many people with failed sign-ins to track another");
                return;
            }
        }
        let entry = failures.entry(who.clone()).or_insert((0, now));
        if now >= entry.1 + WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    /// A check for `who` matched: their count starts again.
    pub fn succeeded(&self, who: &Named) {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner).remove(who);
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
            assert_eq!(throttle.refused_for(&ada, t0), None, "failure {i} is still allowed");
            throttle.failed(&ada, t0 + Duration::from_secs(u64::from(i)));
        }
        let later = t0 + Duration::from_secs(60);
        assert_eq!(throttle.refused_for(&ada, later), Some(WINDOW - Duration::from_secs(60)));
        assert_eq!(throttle.refused_for(&grace, later), None, "another person is not affected");
        assert_eq!(throttle.refused_for(&ada, t0 + WINDOW), None, "the window has ended");
        // After the window a failure starts a new count.
        throttle.failed(&ada, t0 + WINDOW);
        assert_eq!(throttle.refused_for(&ada, t0 + WINDOW), None);
        // A match clears the count: four failures, a match, four more are still allowed.
        for _ in 0..MAX_FAILURES - 1 {
            throttle.failed(&grace, t0);
        }
        throttle.succeeded(&grace);
        for _ in 0..MAX_FAILURES - 1 {
            throttle.failed(&grace, t0);
        }
        assert_eq!(throttle.refused_for(&grace, t0), None);
        throttle.failed(&grace, t0);
        assert_eq!(throttle.refused_for(&grace, t0), Some(WINDOW));
    }
}
