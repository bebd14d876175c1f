//! Durable jobs: a message or a call waiting to be sent, claimed by one worker at a time
//! under a lease. A worker that stops mid-job leaves a lease that runs out; the job is
//! then claimed again. On PostgreSQL concurrent claims skip each other's rows
//! (`FOR UPDATE SKIP LOCKED`); on SQLite the claim is one write, and writes are serial.
//!
//! The store keeps only what the queue needs in clear: kind, channel, state, times and a
//! short error that names no person. The message itself is sealed by the caller.

use crate::{Backend, Store, StoreError};

/// A job to add.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Its id (a UUID).
    pub id: String,
    /// What it is for, e.g. `mail.test` or `webhook.deletion`.
    pub kind: String,
    /// How it is sent: `mail`, `sms` or `webhook`.
    pub channel: String,
    /// Adding a job with a key already queued adds nothing.
    pub idempotency_key: String,
    /// The subject whose key its own key is wrapped under; `None` when it is wrapped under
    /// the key-encryption key.
    pub subject_id: Option<String>,
    /// The key-encryption key version, when wrapped under it.
    pub kek_version: Option<u32>,
    /// The job's own key, wrapped.
    pub wrapped_key: Vec<u8>,
    /// The message, sealed under the job's own key.
    pub sealed: Vec<u8>,
    /// Attempts before it is dead.
    pub max_attempts: u32,
    /// When it is first due, µs since the epoch.
    pub due_at_us: i64,
}

/// A job claimed by a worker, with what it needs to send it.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: String,
    pub kind: String,
    pub channel: String,
    pub subject_id: Option<String>,
    pub kek_version: Option<u32>,
    pub wrapped_key: Vec<u8>,
    pub sealed: Vec<u8>,
    /// Attempts so far, this one included.
    pub attempts: u32,
    pub max_attempts: u32,
}

/// A job as listed for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSummary {
    pub id: String,
    pub kind: String,
    pub channel: String,
    pub state: String,
    pub attempts: u32,
    pub next_at_us: i64,
    pub last_error: Option<String>,
    pub created_at_us: i64,
}

/// How an attempt ended, as the queue records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Sent: the job is done and its sealed message is dropped.
    Done,
    /// Try again at this time (µs); `error` says why, naming no person.
    Retry { at_us: i64, error: String },
    /// Never again; `error` says why.
    Dead { error: String },
    /// Void: its person was erased; its sealed message and key go.
    Void,
}

/// The channel of jobs that are work for charter itself (a retention sweep), not
/// messages: only [`Store::claim_sweeps`] claims them.
pub const SWEEP_CHANNEL: &str = "sweep";

const CLAIMED_COLUMNS: &str = "id, kind, channel, subject_id, kek_version, wrapped_key, sealed, attempts, max_attempts";

fn to_u32(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn claimed_from(row: &sqlx::any::AnyRow) -> Result<ClaimedJob, sqlx::Error> {
    use sqlx::Row as _;
    Ok(ClaimedJob {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        channel: row.try_get("channel")?,
        subject_id: row.try_get("subject_id")?,
        kek_version: row.try_get::<Option<i64>, _>("kek_version")?.map(to_u32),
        wrapped_key: row.try_get("wrapped_key")?,
        sealed: row.try_get("sealed")?,
        attempts: to_u32(row.try_get("attempts")?),
        max_attempts: to_u32(row.try_get("max_attempts")?),
    })
}

fn summary_from(row: &sqlx::any::AnyRow) -> Result<JobSummary, sqlx::Error> {
    use sqlx::Row as _;
    Ok(JobSummary {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        channel: row.try_get("channel")?,
        state: row.try_get("state")?,
        attempts: to_u32(row.try_get("attempts")?),
        next_at_us: row.try_get("next_at_us")?,
        last_error: row.try_get("last_error")?,
        created_at_us: row.try_get("created_at_us")?,
    })
}

impl Store {
    /// Adds a job unless one with its idempotency key exists; returns the id of the job
    /// that holds the key and whether it is the new one.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn enqueue_job(&self, job: &NewJob, now_us: i64) -> Result<(String, bool), StoreError> {
        let mut out = self.enqueue_jobs(std::slice::from_ref(job), now_us).await?;
        Ok(out.pop().expect("one result per job"))
    }

    /// Adds jobs in one transaction, each unless its idempotency key is taken; returns,
    /// for each, the id of the job holding its key and whether it is the new one. A job
    /// whose key is wrapped under a retired key-encryption key is refused, like a subject.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn enqueue_jobs(&self, jobs: &[NewJob], now_us: i64) -> Result<Vec<(String, bool)>, StoreError> {
        // Writes come first, so that on SQLite the transaction waits for the write lock
        // rather than failing because another connection wrote since it first read.
        let mut tx = self.pool().begin().await?;
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            let added = sqlx::query(
                "INSERT INTO jobs (id, kind, channel, idempotency_key, state, subject_id, kek_version, wrapped_key, \
                 sealed, attempts, max_attempts, next_at_us, created_at_us) \
                 VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $8, 0, $9, $10, $11) \
                 ON CONFLICT (idempotency_key) DO NOTHING",
            )
            .bind(&job.id)
            .bind(&job.kind)
            .bind(&job.channel)
            .bind(&job.idempotency_key)
            .bind(&job.subject_id)
            .bind(job.kek_version.map(i64::from))
            .bind(&job.wrapped_key)
            .bind(&job.sealed)
            .bind(i64::from(job.max_attempts))
            .bind(job.due_at_us)
            .bind(now_us)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if added {
                out.push((job.id.clone(), true));
                continue;
            }
            let id: String = sqlx::query_scalar("SELECT id FROM jobs WHERE idempotency_key = $1")
                .bind(&job.idempotency_key)
                .fetch_one(&mut *tx)
                .await?;
            out.push((id, false));
        }
        let mut versions: Vec<u32> = jobs.iter().filter_map(|j| j.kek_version).collect();
        versions.dedup();
        for version in versions {
            let retired: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM retired_keks WHERE version = $1")
                .bind(i64::from(version))
                .fetch_one(&mut *tx)
                .await?;
            if retired > 0 {
                return Err(StoreError::KekRetired(version));
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Claims up to `limit` due messages (jobs of every channel but [`SWEEP_CHANNEL`])
    /// for `owner` until `lease_until_us`: queued jobs whose time has come, and running
    /// jobs whose lease ran out. Each claim counts an attempt.
    pub async fn claim_jobs(
        &self,
        owner: &str,
        now_us: i64,
        lease_until_us: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        self.claim(owner, false, now_us, lease_until_us, limit).await
    }

    /// Claims up to `limit` due sweeps (jobs of [`SWEEP_CHANNEL`]), as [`Store::claim_jobs`] does messages.
    pub async fn claim_sweeps(
        &self,
        owner: &str,
        now_us: i64,
        lease_until_us: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        self.claim(owner, true, now_us, lease_until_us, limit).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn claim(
        &self,
        owner: &str,
        sweeps: bool,
        now_us: i64,
        lease_until_us: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        let channel = if sweeps { "channel = $5" } else { "channel <> $5" };
        let skip_locked = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE jobs SET state = 'running', lease_owner = $1, lease_until_us = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM jobs \
               WHERE {channel} AND ((state = 'queued' AND next_at_us <= $3) OR (state = 'running' AND lease_until_us <= $3)) \
               ORDER BY next_at_us LIMIT $4{skip_locked}) \
             RETURNING {CLAIMED_COLUMNS}"
        );
        let rows = sqlx::query(&sql)
            .bind(owner)
            .bind(lease_until_us)
            .bind(now_us)
            .bind(i64::from(limit))
            .bind(SWEEP_CHANNEL)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(claimed_from).collect::<Result<_, _>>()?)
    }

    /// Records how attempts of jobs `owner` holds ended, in one transaction. A job whose
    /// lease another worker has since taken is left to that worker; returns how many
    /// were recorded.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn finish_jobs(&self, owner: &str, done: &[(String, Finish)], now_us: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let mut recorded = 0;
        for (id, finish) in done {
            let (state, next_at_us, error) = match finish {
                Finish::Done => ("done", None, None),
                Finish::Retry { at_us, error } => ("queued", Some(*at_us), Some(error.as_str())),
                Finish::Dead { error } => ("dead", None, Some(error.as_str())),
                Finish::Void => ("void", None, Some("the person was erased")),
            };
            let finished = (state != "queued").then_some(now_us);
            // A sent message is not kept: its sealed bytes and key go.
            let drop_message = matches!(state, "done" | "void");
            recorded += sqlx::query(
                "UPDATE jobs SET state = $3, next_at_us = COALESCE($4, next_at_us), last_error = $5, \
                 finished_at_us = $6, lease_owner = NULL, lease_until_us = NULL, \
                 sealed = CASE WHEN $7 THEN $8 ELSE sealed END, wrapped_key = CASE WHEN $7 THEN $8 ELSE wrapped_key END \
                 WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
            )
            .bind(id)
            .bind(owner)
            .bind(state)
            .bind(next_at_us)
            .bind(error)
            .bind(finished)
            .bind(drop_message)
            .bind(Vec::<u8>::new())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(recorded)
    }

    /// Jobs, newest first, in `state` or in any.
    pub async fn list_jobs(&self, state: Option<&str>, limit: u32) -> Result<Vec<JobSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, kind, channel, state, attempts, next_at_us, last_error, created_at_us FROM jobs \
             WHERE $1 IS NULL OR state = $1 ORDER BY created_at_us DESC, id LIMIT $2",
        )
        .bind(state)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(summary_from).collect::<Result<_, _>>()?)
    }

    /// Requeues a dead job now, with its attempts counted afresh; false when no dead job
    /// has that id.
    pub async fn retry_job(&self, id: &str, now_us: i64) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = 0, next_at_us = $2, finished_at_us = NULL \
             WHERE id = $1 AND state = 'dead'",
        )
        .bind(id)
        .bind(now_us)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// How many messages (jobs of every channel but [`SWEEP_CHANNEL`]) are in each state;
    /// sweeps report through their own outcomes.
    pub async fn job_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as("SELECT state, COUNT(*) FROM jobs WHERE channel <> $1 GROUP BY state ORDER BY state")
            .bind(SWEEP_CHANNEL)
            .fetch_all(self.pool())
            .await?)
    }

    /// Messages not yet finished (queued or running).
    pub async fn pending_jobs(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running') AND channel <> $1")
            .bind(SWEEP_CHANNEL)
            .fetch_one(self.pool())
            .await?)
    }
}

impl Store {
    /// Stores `recipient`'s sealed webhook signing secret, replacing an earlier one.
    pub async fn put_webhook_secret(&self, recipient: &str, sealed: &[u8], now_us: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO webhook_secrets (recipient, sealed, created_at_us) VALUES ($1, $2, $3) \
             ON CONFLICT (recipient) DO UPDATE SET sealed = excluded.sealed, created_at_us = excluded.created_at_us",
        )
        .bind(recipient)
        .bind(sealed)
        .bind(now_us)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// `recipient`'s sealed webhook signing secret, if one was made.
    pub async fn webhook_secret(&self, recipient: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(sqlx::query_scalar("SELECT sealed FROM webhook_secrets WHERE recipient = $1")
            .bind(recipient)
            .fetch_optional(self.pool())
            .await?)
    }
}

impl Store {
    /// Unsent jobs whose own key is wrapped under a key-encryption key other than
    /// `current`: what a rotation to `current` has to rewrap. (id, version, wrapped key).
    pub async fn job_keys_not_under(&self, current: u32) -> Result<Vec<(String, u32, Vec<u8>)>, StoreError> {
        let rows: Vec<(String, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT id, kek_version, wrapped_key FROM jobs WHERE kek_version IS NOT NULL AND kek_version <> $1 \
             AND state IN ('queued', 'running', 'dead')",
        )
        .bind(i64::from(current))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(id, v, w)| (id, to_u32(v), w)).collect())
    }

    /// Stores rewrapped job keys: (id, version, wrapped key), in one transaction.
    pub async fn rewrap_job_keys(&self, keys: &[(String, u32, Vec<u8>)]) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        for (id, version, wrapped) in keys {
            sqlx::query("UPDATE jobs SET kek_version = $2, wrapped_key = $3 WHERE id = $1 AND kek_version IS NOT NULL")
                .bind(id)
                .bind(i64::from(*version))
                .bind(wrapped)
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx.commit().await?)
    }

    /// Every recipient's sealed webhook secret.
    pub async fn webhook_secrets(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(sqlx::query_as("SELECT recipient, sealed FROM webhook_secrets ORDER BY recipient")
            .fetch_all(self.pool())
            .await?)
    }
}

/// The statement that voids a subject's unsent messages, run inside the shred's
/// transaction: their sealed bytes and keys go, the rows stay as evidence.
pub(crate) const VOID_SUBJECT_JOBS: &str = "UPDATE jobs SET state = 'void', sealed = $2, wrapped_key = $2, \
     lease_owner = NULL, lease_until_us = NULL WHERE subject_id = $1 AND state IN ('queued', 'running', 'dead')";
