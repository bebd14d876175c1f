//! The consent ledger: answers appended, never changed; a person's history read back in
//! order; an anonymous visitor's answers joined to the subject they turn out to be.

use sqlx::Row as _;

use crate::{Store, StoreError};

/// One answer to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConsent {
    /// Whose: a subject, or an anonymous visitor (at least one).
    pub subject_id: Option<String>,
    pub visitor_id: Option<String>,
    /// A policy purpose, or `*sale_or_sharing` for the opt-out of sale and sharing.
    pub purpose: String,
    pub given: bool,
    pub at_us: i64,
    /// `banner`, `preference_center`, `collection`, `api`, `gpc`, `unsubscribe` or `admin`.
    pub source: &'static str,
    /// The collection point, for answers given at one.
    pub point: Option<String>,
    /// The policy version and the hash of the notice text shown when it was given.
    pub policy_version: Option<String>,
    pub notice_hash: Option<String>,
    /// The client's network (/24 or /48) and browser and system family.
    pub ip_prefix: Option<String>,
    pub agent: Option<String>,
    /// Given against a Global Privacy Control signal, after the person confirmed it.
    pub conflicts_with_gpc: bool,
}

/// One answer as the ledger holds it, with its place in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRow {
    pub seq: i64,
    pub answer: NewConsent,
}

const COLUMNS: &str = "seq, subject_id, visitor_id, purpose, given, at_us, source, point, policy_version, \
     notice_hash, ip_prefix, agent, conflicts_with_gpc";

fn row_from(r: &sqlx::any::AnyRow) -> Result<ConsentRow, StoreError> {
    let source: String = r.try_get("source")?;
    let source = charter_core::consent::Source::parse(&source).ok_or(StoreError::WrongType("consent_events.source"))?;
    Ok(ConsentRow {
        seq: r.try_get("seq")?,
        answer: NewConsent {
            subject_id: r.try_get("subject_id")?,
            visitor_id: r.try_get("visitor_id")?,
            purpose: r.try_get("purpose")?,
            given: r.try_get::<i64, _>("given")? != 0,
            at_us: r.try_get("at_us")?,
            source: source.as_str(),
            point: r.try_get("point")?,
            policy_version: r.try_get("policy_version")?,
            notice_hash: r.try_get("notice_hash")?,
            ip_prefix: r.try_get("ip_prefix")?,
            agent: r.try_get("agent")?,
            conflicts_with_gpc: r.try_get::<i64, _>("conflicts_with_gpc")? != 0,
        },
    })
}

impl Store {
    /// Appends answers, all or none. Refused (`Ok(false)`, nothing written) when one
    /// names a subject that does not exist or was erased. One answer is one statement;
    /// several are one transaction.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn append_consents(&self, answers: &[NewConsent]) -> Result<bool, StoreError> {
        if let [one] = answers {
            return Ok(insert_one(self.pool(), self.backend(), one).await? == 1);
        }
        let mut tx = self.pool().begin().await?;
        if !append_in(&mut tx, self.backend(), answers).await? {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// A subject's answers, oldest first (with those they gave as a visitor, once joined).
    pub async fn subject_consents(&self, subject_id: &str) -> Result<Vec<ConsentRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM consent_events WHERE subject_id = $1 ORDER BY seq");
        let rows = sqlx::query(&sql).bind(subject_id).fetch_all(self.pool()).await?;
        rows.iter().map(row_from).collect()
    }

    /// A visitor's answers, oldest first.
    pub async fn visitor_consents(&self, visitor_id: &str) -> Result<Vec<ConsentRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM consent_events WHERE visitor_id = $1 ORDER BY seq");
        let rows = sqlx::query(&sql).bind(visitor_id).fetch_all(self.pool()).await?;
        rows.iter().map(row_from).collect()
    }

    /// Joins a visitor's answers, not yet anyone's, to a subject's: from now on they count
    /// in the subject's state, in the order they were given. Returns how many.
    pub async fn join_visitor(&self, visitor_id: &str, subject_id: &str) -> Result<u64, StoreError> {
        Ok(sqlx::query("UPDATE consent_events SET subject_id = $2 WHERE visitor_id = $1 AND subject_id IS NULL")
            .bind(visitor_id)
            .bind(subject_id)
            .execute(self.pool())
            .await?
            .rows_affected())
    }
}

/// An answer's row, written only when it names no subject or a live one. On PostgreSQL
/// the subject's row is held in share mode for the statement, so a shred (which updates
/// that row) waits for the answer or is seen by it, while answers for one subject do not
/// wait for each other; SQLite runs one writer at a time anyway.
const INSERT_GUARDED: &str =
    "INSERT INTO consent_events (subject_id, visitor_id, purpose, given, at_us, source, point, \
     policy_version, notice_hash, ip_prefix, agent, conflicts_with_gpc) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 \
     WHERE $1 IS NULL OR EXISTS (SELECT 1 FROM subjects WHERE id = $1 AND shredded_at_us IS NULL";

fn insert_sql(backend: crate::Backend) -> String {
    match backend {
        crate::Backend::Postgres => format!("{INSERT_GUARDED} FOR SHARE)"),
        crate::Backend::Sqlite => format!("{INSERT_GUARDED})"),
    }
}

/// Writes one answer; returns the rows written (0 when its subject is gone).
async fn insert_one<'e>(
    on: impl sqlx::Executor<'e, Database = sqlx::Any>,
    backend: crate::Backend,
    a: &NewConsent,
) -> Result<u64, StoreError> {
    let sql = insert_sql(backend);
    Ok(sqlx::query(&sql)
        .bind(&a.subject_id)
        .bind(&a.visitor_id)
        .bind(&a.purpose)
        .bind(i64::from(a.given))
        .bind(a.at_us)
        .bind(a.source)
        .bind(&a.point)
        .bind(&a.policy_version)
        .bind(&a.notice_hash)
        .bind(&a.ip_prefix)
        .bind(&a.agent)
        .bind(i64::from(a.conflicts_with_gpc))
        .execute(on)
        .await?
        .rows_affected())
}

/// Appends `answers` in the caller's transaction; false (and the caller rolls back) when
/// one names a subject that does not exist or was erased.
pub(crate) async fn append_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: crate::Backend,
    answers: &[NewConsent],
) -> Result<bool, StoreError> {
    for a in answers {
        if insert_one(&mut **tx, backend, a).await? == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The statement that drops the evidence of an erased subject's answers, run in the
/// shred's transaction: the answers stay (under an id that names nobody any more), the
/// network and browser they came from go.
pub(crate) const FORGET_CONSENT_EVIDENCE: &str =
    "UPDATE consent_events SET ip_prefix = NULL, agent = NULL WHERE subject_id = $1";
