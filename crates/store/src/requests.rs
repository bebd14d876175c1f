//! Rights requests and what a person chooses: objections to purposes (GDPR Art. 21), the
//! requests themselves with their timelines, and the claim on a request's fulfilment
//! that lets any server resume work another left. A set of choices is applied in one
//! transaction (answers to the ledger, objections made or lifted, the requests it
//! completes): all or none.

use sqlx::Row as _;

use crate::consents::NewConsent;
use crate::{Backend, Store, StoreError};

/// A request as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    pub id: String,
    /// The person, when charter knows them.
    pub subject_id: Option<String>,
    /// `access`, `erasure`, `ccpa_opt_out`, ...
    pub kind: String,
    /// `gdpr` or `ccpa`.
    pub jurisdiction: String,
    /// Where it stands (`charter_core::requests::Status`).
    pub status: String,
    /// Where it was made: `privacy_center`, `api`, `preference_center`, `admin`.
    pub source: String,
    /// Purposes and choices as JSON; never personal data.
    pub details: String,
    /// Details that hold personal data, sealed under the subject's key.
    pub sealed_details: Option<Vec<u8>>,
    /// How the person is reached: `email` or `phone`, and that identifier's blind index.
    pub contact_kind: Option<String>,
    pub contact_blind: Option<String>,
    /// The one-time code that verifies it.
    pub challenge_id: Option<String>,
    /// Filed by an authorised agent.
    pub agent: bool,
    pub duplicate_of: Option<String>,
    /// Why it was denied.
    pub reason: Option<String>,
    pub received_at_us: i64,
    pub verified_at_us: Option<i64>,
    pub due_at_us: Option<i64>,
    pub extended_due_at_us: Option<i64>,
    pub extension_reason: Option<String>,
    pub completed_at_us: Option<i64>,
    /// Downloads left of the answer, and until when its link works.
    pub downloads_left: Option<i64>,
    pub download_until_us: Option<i64>,
    /// When the team was last reminded of its deadline.
    pub reminded_at_us: Option<i64>,
}

impl Request {
    /// The deadline in force: the extended one once extended.
    pub fn deadline_us(&self) -> Option<i64> {
        self.extended_due_at_us.or(self.due_at_us)
    }
}

/// One step of a request's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestEvent {
    pub at_us: i64,
    /// Who: `person`, `agent`, `system`, or an admin's id.
    pub actor: String,
    /// What: `received`, `verified`, `approved`, `extended`, `completed`, ...
    pub action: String,
    /// The status it left the request in.
    pub status: String,
    /// A reason or a note, never personal data.
    pub note: Option<String>,
}

/// A person's choices, applied together.
#[derive(Debug, Clone, Default)]
pub struct Choices {
    /// Answers for the ledger.
    pub answers: Vec<NewConsent>,
    /// Purposes objected to from now.
    pub object: Vec<String>,
    /// Purposes whose objection is lifted.
    pub lift: Vec<String>,
    /// Requests the choices complete.
    pub requests: Vec<Request>,
}

const COLUMNS: &str = "id, subject_id, type, jurisdiction, status, source, details, sealed_details, contact_kind, \
     contact_blind, challenge_id, agent, duplicate_of, reason, received_at_us, verified_at_us, due_at_us, \
     extended_due_at_us, extension_reason, completed_at_us, downloads_left, download_until_us, reminded_at_us";

fn request_from(r: &sqlx::any::AnyRow) -> Result<Request, StoreError> {
    Ok(Request {
        id: r.try_get("id")?,
        subject_id: r.try_get("subject_id")?,
        kind: r.try_get("type")?,
        jurisdiction: r.try_get("jurisdiction")?,
        status: r.try_get("status")?,
        source: r.try_get("source")?,
        details: r.try_get("details")?,
        sealed_details: r.try_get("sealed_details")?,
        contact_kind: r.try_get("contact_kind")?,
        contact_blind: r.try_get("contact_blind")?,
        challenge_id: r.try_get("challenge_id")?,
        agent: r.try_get::<i64, _>("agent")? != 0,
        duplicate_of: r.try_get("duplicate_of")?,
        reason: r.try_get("reason")?,
        received_at_us: r.try_get("received_at_us")?,
        verified_at_us: r.try_get("verified_at_us")?,
        due_at_us: r.try_get("due_at_us")?,
        extended_due_at_us: r.try_get("extended_due_at_us")?,
        extension_reason: r.try_get("extension_reason")?,
        completed_at_us: r.try_get("completed_at_us")?,
        downloads_left: r.try_get("downloads_left")?,
        download_until_us: r.try_get("download_until_us")?,
        reminded_at_us: r.try_get("reminded_at_us")?,
    })
}

async fn insert_request(tx: &mut sqlx::Transaction<'_, sqlx::Any>, r: &Request) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO requests ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
         $16, $17, $18, $19, $20, $21, $22, $23)"
    );
    sqlx::query(&sql)
        .bind(&r.id)
        .bind(&r.subject_id)
        .bind(&r.kind)
        .bind(&r.jurisdiction)
        .bind(&r.status)
        .bind(&r.source)
        .bind(&r.details)
        .bind(&r.sealed_details)
        .bind(&r.contact_kind)
        .bind(&r.contact_blind)
        .bind(&r.challenge_id)
        .bind(i64::from(r.agent))
        .bind(&r.duplicate_of)
        .bind(&r.reason)
        .bind(r.received_at_us)
        .bind(r.verified_at_us)
        .bind(r.due_at_us)
        .bind(r.extended_due_at_us)
        .bind(&r.extension_reason)
        .bind(r.completed_at_us)
        .bind(r.downloads_left)
        .bind(r.download_until_us)
        .bind(r.reminded_at_us)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_event(tx: &mut sqlx::Transaction<'_, sqlx::Any>, id: &str, e: &RequestEvent) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO request_events (request_id, at_us, actor, action, status, note) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(e.at_us)
    .bind(&e.actor)
    .bind(&e.action)
    .bind(&e.status)
    .bind(&e.note)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// The purposes `subject_id` objects to.
    pub async fn objections(&self, subject_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT purpose FROM objections WHERE subject_id = $1 ORDER BY purpose")
            .bind(subject_id)
            .fetch_all(self.pool())
            .await?)
    }

    /// Applies `choices` for `subject_id` at `at_us` in one transaction. False, and nothing
    /// written, when the subject does not exist or was erased.
    pub async fn apply_choices(&self, subject_id: &str, choices: &Choices, at_us: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let live = sqlx::query("UPDATE subjects SET id = id WHERE id = $1 AND shredded_at_us IS NULL")
            .bind(subject_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if live == 0 || !crate::consents::append_in(&mut tx, self.backend(), &choices.answers).await? {
            return Ok(false);
        }
        for purpose in &choices.object {
            sqlx::query(
                "INSERT INTO objections (subject_id, purpose, at_us) VALUES ($1, $2, $3) \
                 ON CONFLICT (subject_id, purpose) DO NOTHING",
            )
            .bind(subject_id)
            .bind(purpose)
            .bind(at_us)
            .execute(&mut *tx)
            .await?;
        }
        for purpose in &choices.lift {
            sqlx::query("DELETE FROM objections WHERE subject_id = $1 AND purpose = $2")
                .bind(subject_id)
                .bind(purpose)
                .execute(&mut *tx)
                .await?;
        }
        for r in &choices.requests {
            insert_request(&mut tx, r).await?;
            let e = RequestEvent {
                at_us,
                actor: "person".into(),
                action: r.status.clone(),
                status: r.status.clone(),
                note: None,
            };
            insert_event(&mut tx, &r.id, &e).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Keeps a new request with its first event.
    pub async fn insert_request(&self, r: &Request, first: &RequestEvent) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        insert_request(&mut tx, r).await?;
        insert_event(&mut tx, &r.id, first).await?;
        Ok(tx.commit().await?)
    }

    /// Request `id`.
    pub async fn request(&self, id: &str) -> Result<Option<Request>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM requests WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.pool()).await?;
        row.as_ref().map(request_from).transpose()
    }

    /// Saves `r` as it now is, with `event`, when it is still in status `was` (another
    /// server may have moved it meanwhile: then nothing is written and false is returned).
    pub async fn save_request(&self, was: &str, r: &Request, event: &RequestEvent) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let saved = sqlx::query(
            "UPDATE requests SET subject_id = $3, status = $4, details = $5, sealed_details = $6, duplicate_of = $7, \
             reason = $8, verified_at_us = $9, due_at_us = $10, extended_due_at_us = $11, extension_reason = $12, \
             completed_at_us = $13, downloads_left = $14, download_until_us = $15, reminded_at_us = $16, \
             challenge_id = $17, \
             lease_until_us = CASE WHEN $4 = 'in_progress' THEN lease_until_us ELSE NULL END \
             WHERE id = $1 AND status = $2",
        )
        .bind(&r.id)
        .bind(was)
        .bind(&r.subject_id)
        .bind(&r.status)
        .bind(&r.details)
        .bind(&r.sealed_details)
        .bind(&r.duplicate_of)
        .bind(&r.reason)
        .bind(r.verified_at_us)
        .bind(r.due_at_us)
        .bind(r.extended_due_at_us)
        .bind(&r.extension_reason)
        .bind(r.completed_at_us)
        .bind(r.downloads_left)
        .bind(r.download_until_us)
        .bind(r.reminded_at_us)
        .bind(&r.challenge_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if saved == 0 {
            return Ok(false);
        }
        insert_event(&mut tx, &r.id, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The request a one-time code's challenge verifies.
    pub async fn request_by_challenge(&self, challenge_id: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT id FROM requests WHERE challenge_id = $1")
            .bind(challenge_id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// A request's timeline, oldest first.
    pub async fn request_events(&self, id: &str) -> Result<Vec<RequestEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT at_us, actor, action, status, note FROM request_events WHERE request_id = $1 ORDER BY at_us",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RequestEvent {
                    at_us: r.try_get("at_us")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    status: r.try_get("status")?,
                    note: r.try_get("note")?,
                })
            })
            .collect()
    }

    /// A subject's requests, oldest first.
    pub async fn subject_requests(&self, subject_id: &str) -> Result<Vec<Request>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM requests WHERE subject_id = $1 ORDER BY received_at_us, id");
        let rows = sqlx::query(&sql).bind(subject_id).fetch_all(self.pool()).await?;
        rows.iter().map(request_from).collect()
    }

    /// Requests in `statuses`, the nearest deadline first, at most `limit`.
    pub async fn requests_in(&self, statuses: &[&str], limit: i64) -> Result<Vec<Request>, StoreError> {
        let list = statuses.iter().map(|s| format!("'{}'", s.replace('\'', ""))).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT {COLUMNS} FROM requests WHERE status IN ({list}) \
             ORDER BY COALESCE(extended_due_at_us, due_at_us, received_at_us), received_at_us LIMIT $1"
        );
        let rows = sqlx::query(&sql).bind(limit).fetch_all(self.pool()).await?;
        rows.iter().map(request_from).collect()
    }

    /// The earlier request that makes a new one of `kind` from the same contact a
    /// duplicate: received since `since_us`, and neither a duplicate, expired nor denied.
    pub async fn earlier_request(
        &self,
        contact_blind: &str,
        kind: &str,
        since_us: i64,
        not: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM requests WHERE contact_blind = $1 AND type = $2 AND received_at_us >= $3 AND id <> $4 \
             AND status NOT IN ('duplicate', 'expired', 'denied', 'awaiting_verification', 'agent_pending') \
             ORDER BY received_at_us LIMIT 1",
        )
        .bind(contact_blind)
        .bind(kind)
        .bind(since_us)
        .bind(not)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Claims the oldest request in progress that no server is working on (or whose
    /// server stopped: its lease ran out) until `until_us`. It looks first, and writes
    /// only when there is one: an idle worker never takes SQLite's write lock.
    pub async fn claim_request(&self, now_us: i64, until_us: i64) -> Result<Option<Request>, StoreError> {
        const CLAIMABLE: &str = "status = 'in_progress' AND (lease_until_us IS NULL OR lease_until_us < $1)";
        let first: Option<String> =
            sqlx::query_scalar(&format!("SELECT id FROM requests WHERE {CLAIMABLE} ORDER BY received_at_us LIMIT 1"))
                .bind(now_us)
                .fetch_optional(self.pool())
                .await?;
        let Some(_) = first else { return Ok(None) };
        let lock = if self.backend() == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        let sql = format!(
            "UPDATE requests SET lease_until_us = $2, attempts = attempts + 1 WHERE id = (SELECT id FROM requests \
             WHERE {CLAIMABLE} ORDER BY received_at_us LIMIT 1{lock}) RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql).bind(now_us).bind(until_us).fetch_optional(self.pool()).await?;
        row.as_ref().map(request_from).transpose()
    }
}
