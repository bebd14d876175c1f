//! Password checks per name, in the database so that every server on it shares them:
//! the failures counted since the first of them (the window starts at a name's first
//! failure, and again at the first after it ended or after a match), and the checks
//! under way, each with a lease. The rules (how many, how long) are the caller's, from the policy.

use crate::{Store, StoreError};

/// The limits a check is started under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Failures allowed within `window_us` of the first of them.
    pub failures: i64,
    /// How long failures count, in µs.
    pub window_us: i64,
    /// How long a check under way holds its place, in µs, unless it ends first.
    pub lease_us: i64,
}

/// Whether a check may start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// It started; end it with [`Store::end_sign_in`] and this id.
    Started(String),
    /// The name's failures are used up for this many µs more.
    Refused(i64),
    /// Checks under way would use them up if they failed: try again when one ends.
    Wait,
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The password did not match: one more failure.
    Failed,
    /// It matched: the count starts again.
    Matched,
    /// Neither (the check could not finish): only its place is freed.
    Abandoned,
}

impl Store {
    /// Starts a password check for `name` at `now_us` within `limits`, or says why not.
    /// One transaction that begins by writing the name's row, so that concurrent starts
    /// for one name, on any server, are decided one after another.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn begin_sign_in(&self, name: &str, now_us: i64, limits: Limits) -> Result<Begin, StoreError> {
        let mut tx = self.pool().begin().await?;
        // A count whose window has ended starts again.
        let (failures, since_us): (i64, i64) = sqlx::query_as(
            "INSERT INTO sign_in_failures (name, failures, since_us) VALUES ($1, 0, $2) \
             ON CONFLICT (name) DO UPDATE SET \
             failures = CASE WHEN sign_in_failures.since_us + $3 <= $2 THEN 0 ELSE sign_in_failures.failures END, \
             since_us = CASE WHEN sign_in_failures.since_us + $3 <= $2 THEN $2 ELSE sign_in_failures.since_us END \
             RETURNING failures, since_us",
        )
        .bind(name)
        .bind(now_us)
        .bind(limits.window_us)
        .fetch_one(&mut *tx)
        .await?;
        if failures >= limits.failures {
            tx.commit().await?;
            return Ok(Begin::Refused(since_us + limits.window_us - now_us));
        }
        let running: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sign_in_running WHERE name = $1 AND until_us > $2")
            .bind(name)
            .bind(now_us)
            .fetch_one(&mut *tx)
            .await?;
        if failures + running >= limits.failures {
            tx.commit().await?;
            return Ok(Begin::Wait);
        }
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query("INSERT INTO sign_in_running (id, name, until_us) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(name)
            .bind(now_us + limits.lease_us)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Begin::Started(id))
    }

    /// Ends check `id` for `name` at `now_us` with `outcome`.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn end_sign_in(
        &self,
        name: &str,
        id: &str,
        outcome: Outcome,
        now_us: i64,
        limits: Limits,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM sign_in_running WHERE id = $1").bind(id).execute(&mut *tx).await?;
        match outcome {
            Outcome::Failed => {
                sqlx::query(
                    "UPDATE sign_in_failures SET \
                     failures = CASE WHEN since_us + $3 <= $2 THEN 1 ELSE failures + 1 END, \
                     since_us = CASE WHEN since_us + $3 <= $2 OR failures = 0 THEN $2 ELSE since_us END \
                     WHERE name = $1",
                )
                .bind(name)
                .bind(now_us)
                .bind(limits.window_us)
                .execute(&mut *tx)
                .await?;
            }
            Outcome::Matched => {
                sqlx::query("UPDATE sign_in_failures SET failures = 0, since_us = $2 WHERE name = $1")
                    .bind(name)
                    .bind(now_us)
                    .execute(&mut *tx)
                    .await?;
            }
            Outcome::Abandoned => {}
        }
        Ok(tx.commit().await?)
    }

    /// Forgets counts whose window ended before `now_us` with no check under way, and
    /// leases that ran out; returns how many names were forgotten.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn prune_sign_ins(&self, now_us: i64, limits: Limits) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM sign_in_running WHERE until_us <= $1").bind(now_us).execute(&mut *tx).await?;
        let forgotten = sqlx::query(
            "DELETE FROM sign_in_failures WHERE since_us + $2 <= $1 \
             AND NOT EXISTS (SELECT 1 FROM sign_in_running r WHERE r.name = sign_in_failures.name)",
        )
        .bind(now_us)
        .bind(limits.window_us)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(forgotten)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use charter_testkit::TestDb;

    const LIMITS: Limits = Limits { failures: 5, window_us: 900_000_000, lease_us: 60_000_000 };

    async fn stores() -> Vec<(TestDb, Store)> {
        let mut out = Vec::new();
        for db in TestDb::backends("sign_ins_unit").await {
            let store = Store::open(&db.url).await.unwrap();
            out.push((db, store));
        }
        out
    }

    async fn start(store: &Store, name: &str, now: i64) -> Begin {
        store.begin_sign_in(name, now, LIMITS).await.unwrap()
    }

    async fn fail(store: &Store, name: &str, now: i64) {
        let Begin::Started(id) = start(store, name, now).await else { panic!("{name} refused at {now}") };
        store.end_sign_in(name, &id, Outcome::Failed, now, LIMITS).await.unwrap();
    }

    #[tokio::test]
    async fn failures_refuse_until_the_window_ends_and_a_match_clears_them() {
        for (_db, store) in stores().await {
            let t0 = 1_000_000_000_000;
            for i in 0..5 {
                fail(&store, "ada", t0 + i).await;
            }
            assert_eq!(start(&store, "ada", t0 + 60).await, Begin::Refused(LIMITS.window_us - 60));
            assert!(matches!(start(&store, "grace", t0 + 60).await, Begin::Started(_)), "another name");
            // After the window, a failure starts a new count.
            let later = t0 + LIMITS.window_us;
            fail(&store, "ada", later).await;
            for i in 1..4 {
                fail(&store, "ada", later + i).await;
            }
            let Begin::Started(id) = start(&store, "ada", later + 5).await else { panic!("four failures leave one") };
            store.end_sign_in("ada", &id, Outcome::Matched, later + 5, LIMITS).await.unwrap();
            for i in 0..5 {
                fail(&store, "ada", later + 6 + i).await;
            }
            assert!(matches!(start(&store, "ada", later + 20).await, Begin::Refused(_)), "a match cleared the count");
            // The window starts at the first failure, not at the check before it.
            let Begin::Started(id) = start(&store, "hopper", t0).await else { panic!("hopper's first check") };
            store.end_sign_in("hopper", &id, Outcome::Matched, t0, LIMITS).await.unwrap();
            let first_failure = t0 + LIMITS.window_us / 2;
            for i in 0..5 {
                fail(&store, "hopper", first_failure + i).await;
            }
            let refused = start(&store, "hopper", first_failure + 10).await;
            assert_eq!(refused, Begin::Refused(LIMITS.window_us - 10), "counted from the first failure");
        }
    }

    #[tokio::test]
    async fn checks_under_way_count_until_they_end_or_their_lease_runs_out() {
        for (_db, store) in stores().await {
            let t0 = 2_000_000_000_000;
            let mut ids = Vec::new();
            for _ in 0..5 {
                let Begin::Started(id) = start(&store, "ada", t0).await else { panic!("room for five") };
                ids.push(id);
            }
            assert_eq!(start(&store, "ada", t0).await, Begin::Wait, "guesses at once do not all pass");
            store.end_sign_in("ada", &ids.pop().unwrap(), Outcome::Abandoned, t0, LIMITS).await.unwrap();
            assert!(matches!(start(&store, "ada", t0).await, Begin::Started(_)), "an abandoned check frees its place");
            assert_eq!(start(&store, "ada", t0 + 1).await, Begin::Wait);
            assert!(matches!(start(&store, "ada", t0 + LIMITS.lease_us).await, Begin::Started(_)), "leases run out");
            // Pruning forgets names with nothing counted and nothing under way.
            fail(&store, "grace", t0).await;
            let forgotten = store.prune_sign_ins(t0 + LIMITS.window_us + LIMITS.lease_us, LIMITS).await.unwrap();
            assert_eq!(forgotten, 2, "ada's and grace's counts, once their leases ran out");
            let left: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM sign_in_running").fetch_one(store.pool()).await.unwrap();
            assert_eq!(left, 0);
        }
    }
}
