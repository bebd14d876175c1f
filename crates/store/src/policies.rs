//! Published policies: the versions in order, the last one in force. Publishing a
//! material change makes, in the same transaction, every consent still given for a
//! purpose whose scope grew lapse: the ledger gains a withdrawal from the source
//! `policy_change`, so the next read for that purpose is refused until the person
//! consents again, and their history says why.

use sqlx::Row as _;

use crate::{Store, StoreError};

/// A version to publish.
#[derive(Debug, Clone)]
pub struct NewPolicyVersion {
    pub version: String,
    pub sha256: String,
    pub last_updated: String,
    /// The policy file's text as published.
    pub text: String,
    pub material: bool,
    /// The material changes in plain words, as a JSON list of strings.
    pub changes: String,
    pub published_at_us: i64,
}

/// A published version.
#[derive(Debug, Clone)]
pub struct PolicyVersion {
    pub seq: i64,
    pub published: NewPolicyVersion,
    /// When every subject had been queued a notice of it; `None` while that is unfinished
    /// (or for a change that needs none).
    pub notified_at_us: Option<i64>,
}

/// The latest grant per owner (a subject, or a visitor not yet joined to one) for a
/// purpose, withdrawn with the source `policy_change`.
const LAPSE: &str = "INSERT INTO consent_events (subject_id, visitor_id, purpose, given, at_us, source, policy_version) \
     SELECT c.subject_id, c.visitor_id, c.purpose, 0, $2, 'policy_change', $3 FROM consent_events c \
     WHERE c.purpose = $1 AND c.given = 1 AND c.seq = (SELECT MAX(d.seq) FROM consent_events d WHERE d.purpose = $1 AND \
     ((c.subject_id IS NOT NULL AND d.subject_id = c.subject_id) OR \
      (c.subject_id IS NULL AND d.subject_id IS NULL AND d.visitor_id = c.visitor_id)))";

impl Store {
    /// The sequence number of the version in force, if any was published: cheap enough to
    /// ask every few seconds.
    pub async fn policy_seq(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT MAX(seq) FROM policy_versions").fetch_one(self.pool()).await?)
    }

    /// The version in force, if any was published.
    pub async fn policy_in_force(&self) -> Result<Option<PolicyVersion>, StoreError> {
        let row = sqlx::query(
            "SELECT seq, version, sha256, last_updated, text, material, changes, published_at_us, notified_at_us \
             FROM policy_versions ORDER BY seq DESC LIMIT 1",
        )
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(PolicyVersion {
            seq: r.try_get("seq")?,
            published: NewPolicyVersion {
                version: r.try_get("version")?,
                sha256: r.try_get("sha256")?,
                last_updated: r.try_get("last_updated")?,
                text: r.try_get("text")?,
                material: r.try_get::<i64, _>("material")? != 0,
                changes: r.try_get("changes")?,
                published_at_us: r.try_get("published_at_us")?,
            },
            notified_at_us: r.try_get("notified_at_us")?,
        }))
    }

    /// The latest material version published at or after `since_us`, if any.
    pub async fn material_since(&self, since_us: i64) -> Result<Option<(String, String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT last_updated, changes, published_at_us FROM policy_versions \
             WHERE material = 1 AND published_at_us >= $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(since_us)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Publishes `v`, and lapses every consent still given for the `widened` purposes, in
    /// one transaction. Returns the new version's sequence number and how many consents lapsed.
    pub async fn publish_policy(&self, v: &NewPolicyVersion, widened: &[String]) -> Result<(i64, u64), StoreError> {
        let mut tx = self.pool().begin().await?;
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO policy_versions (version, sha256, last_updated, text, material, changes, published_at_us, \
             notified_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $5 = 1 THEN NULL ELSE $7 END) RETURNING seq",
        )
        .bind(&v.version)
        .bind(&v.sha256)
        .bind(&v.last_updated)
        .bind(&v.text)
        .bind(i64::from(v.material))
        .bind(&v.changes)
        .bind(v.published_at_us)
        .fetch_one(&mut *tx)
        .await?;
        let mut lapsed = 0;
        for purpose in widened {
            lapsed += sqlx::query(LAPSE)
                .bind(purpose)
                .bind(v.published_at_us)
                .bind(&v.version)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok((seq, lapsed))
    }

    /// Records that every subject has been queued a notice of version `seq`.
    pub async fn policy_notified(&self, seq: i64, at_us: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE policy_versions SET notified_at_us = $2 WHERE seq = $1")
            .bind(seq)
            .bind(at_us)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
