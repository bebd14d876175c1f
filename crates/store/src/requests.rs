//! What a person asks for: objections to purposes (GDPR Art. 21), and the requests log
//! that records each change they made, with its type and outcome. A set of choices is
//! applied in one transaction (answers to the ledger, objections made or lifted, the
//! requests it completes): all or none.

use sqlx::Row as _;

use crate::consents::NewConsent;
use crate::{Store, StoreError};

/// A request to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRequest {
    pub id: String,
    pub subject_id: Option<String>,
    /// `consent_withdrawal`, `objection`, `marketing_objection`, `ccpa_opt_out`, ...
    pub kind: String,
    /// `completed`, or where it stands.
    pub status: &'static str,
    /// Where it was made: `preference_center`, `privacy_center`, `admin`.
    pub source: &'static str,
    /// Purposes and choices as JSON; never personal data.
    pub details: String,
    pub received_at_us: i64,
    pub completed_at_us: Option<i64>,
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
    pub requests: Vec<NewRequest>,
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
        }
        tx.commit().await?;
        Ok(true)
    }

    /// A subject's requests, oldest first.
    pub async fn subject_requests(&self, subject_id: &str) -> Result<Vec<NewRequest>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, subject_id, type, status, source, details, received_at_us, completed_at_us \
             FROM requests WHERE subject_id = $1 ORDER BY received_at_us, id",
        )
        .bind(subject_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(request_from).collect()
    }
}

fn request_from(r: &sqlx::any::AnyRow) -> Result<NewRequest, StoreError> {
    let status: String = r.try_get("status")?;
    let source: String = r.try_get("source")?;
    Ok(NewRequest {
        id: r.try_get("id")?,
        subject_id: r.try_get("subject_id")?,
        kind: r.try_get("type")?,
        status: known(&status, STATUSES).ok_or(StoreError::WrongType("requests.status"))?,
        source: known(&source, SOURCES).ok_or(StoreError::WrongType("requests.source"))?,
        details: r.try_get("details")?,
        received_at_us: r.try_get("received_at_us")?,
        completed_at_us: r.try_get("completed_at_us")?,
    })
}

const STATUSES: &[&str] = &["completed"];
const SOURCES: &[&str] = &["preference_center", "privacy_center", "admin"];

fn known(name: &str, names: &[&'static str]) -> Option<&'static str> {
    names.iter().copied().find(|n| *n == name)
}

async fn insert_request(tx: &mut sqlx::Transaction<'_, sqlx::Any>, r: &NewRequest) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO requests (id, subject_id, type, status, source, details, received_at_us, completed_at_us) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&r.id)
    .bind(&r.subject_id)
    .bind(&r.kind)
    .bind(r.status)
    .bind(r.source)
    .bind(&r.details)
    .bind(r.received_at_us)
    .bind(r.completed_at_us)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
