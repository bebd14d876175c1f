//! Erasure as a request fulfils it: the whole subject crypto-shredded (see
//! [`Store::shred`]), or, when the law obliges keeping some records, everything else
//! deleted and the subject restricted; processors told and tracked; certificates kept.

use sqlx::Row as _;

use crate::vault::ObjectRecord;
use crate::{Store, StoreError};

/// A processor told of an erasure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorTask {
    pub request_id: String,
    pub recipient: String,
    /// `webhook` or `manual`.
    pub channel: String,
    /// The delivery job that carries the webhook, which the processor's callback names.
    pub delivery_id: Option<String>,
    /// `pending`, `in_progress`, `completed` or `cancelled`.
    pub status: String,
    pub due_at_us: i64,
    pub updated_at_us: i64,
    pub escalated_at_us: Option<i64>,
}

/// A signed certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub id: String,
    pub request_id: String,
    pub body: String,
    pub signature: String,
    pub issued_at_us: i64,
}

fn task_from(r: &sqlx::any::AnyRow) -> Result<ProcessorTask, StoreError> {
    Ok(ProcessorTask {
        request_id: r.try_get("request_id")?,
        recipient: r.try_get("recipient")?,
        channel: r.try_get("channel")?,
        delivery_id: r.try_get("delivery_id")?,
        status: r.try_get("status")?,
        due_at_us: r.try_get("due_at_us")?,
        updated_at_us: r.try_get("updated_at_us")?,
        escalated_at_us: r.try_get("escalated_at_us")?,
    })
}

const TASK_COLUMNS: &str =
    "request_id, recipient, channel, delivery_id, status, due_at_us, updated_at_us, escalated_at_us";

impl Store {
    /// Restricts processing of a subject from `at_us`, or lifts it (`None`). False when
    /// the subject does not exist or was erased.
    pub async fn set_restricted(&self, subject_id: &str, at_us: Option<i64>) -> Result<bool, StoreError> {
        Ok(sqlx::query("UPDATE subjects SET restricted_at_us = $2 WHERE id = $1 AND shredded_at_us IS NULL")
            .bind(subject_id)
            .bind(at_us)
            .execute(self.pool())
            .await?
            .rows_affected()
            == 1)
    }

    /// Every object of a subject (profile files and record files).
    pub async fn subject_objects(&self, subject_id: &str) -> Result<Vec<ObjectRecord>, StoreError> {
        let sql = format!("SELECT {} FROM objects o WHERE o.subject_id = $1", crate::vault::OBJECT_COLUMNS);
        let rows = sqlx::query(&sql).bind(subject_id).fetch_all(self.pool()).await?;
        rows.iter().map(|r| crate::vault::object_from(r, 0)).collect()
    }

    /// How many records a subject has at each point.
    pub async fn records_per_point(&self, subject_id: &str) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as("SELECT point, COUNT(*) FROM records WHERE subject_id = $1 GROUP BY point ORDER BY point")
            .bind(subject_id)
            .fetch_all(self.pool())
            .await?)
    }

    /// Erases all of a subject but its records at `keep` points, in one transaction: its
    /// profile values, identifiers, other records (their own keys go with their rows),
    /// objects' rows and unsent messages; the evidence of its consents; and restricts
    /// what is kept. Returns how many records went.
    pub async fn erase_except(&self, subject_id: &str, keep: &[String], at_us: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let kept: Vec<String> = keep.iter().map(|p| format!("'{}'", p.replace('\'', ""))).collect();
        let kept = if kept.is_empty() { "''".to_owned() } else { kept.join(", ") };
        let gone: Vec<String> =
            sqlx::query_scalar(&format!("SELECT id FROM records WHERE subject_id = $1 AND point NOT IN ({kept})"))
                .bind(subject_id)
                .fetch_all(&mut *tx)
                .await?;
        for id in &gone {
            sqlx::query("DELETE FROM objects WHERE record_id = $1").bind(id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM record_fields WHERE record_id = $1").bind(id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM records WHERE id = $1").bind(id).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM objects WHERE subject_id = $1 AND record_id IS NULL")
            .bind(subject_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM subject_identifiers WHERE subject_id = $1").bind(subject_id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM field_values WHERE subject_id = $1").bind(subject_id).execute(&mut *tx).await?;
        sqlx::query(crate::jobs::VOID_SUBJECT_JOBS).bind(subject_id).bind(Vec::<u8>::new()).execute(&mut *tx).await?;
        sqlx::query(crate::consents::FORGET_CONSENT_EVIDENCE).bind(subject_id).execute(&mut *tx).await?;
        sqlx::query("UPDATE subjects SET restricted_at_us = $2 WHERE id = $1")
            .bind(subject_id)
            .bind(at_us)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.purge_wal().await;
        Ok(gone.len() as u64)
    }

    /// Records the processors to tell of an erasure (once each).
    pub async fn add_processor_tasks(&self, tasks: &[ProcessorTask]) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        for t in tasks {
            sqlx::query(&format!(
                "INSERT INTO request_processors ({TASK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (request_id, recipient) DO NOTHING"
            ))
            .bind(&t.request_id)
            .bind(&t.recipient)
            .bind(&t.channel)
            .bind(&t.delivery_id)
            .bind(&t.status)
            .bind(t.due_at_us)
            .bind(t.updated_at_us)
            .bind(t.escalated_at_us)
            .execute(&mut *tx)
            .await?;
        }
        Ok(tx.commit().await?)
    }

    /// The processors told of request `id`'s erasure.
    pub async fn processor_tasks(&self, request_id: &str) -> Result<Vec<ProcessorTask>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM request_processors WHERE request_id = $1 ORDER BY recipient"
        ))
        .bind(request_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(task_from).collect()
    }

    /// Processor tasks not completed or cancelled, the oldest due first.
    pub async fn open_processor_tasks(&self) -> Result<Vec<ProcessorTask>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM request_processors WHERE status IN ('pending', 'in_progress') ORDER BY due_at_us"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(task_from).collect()
    }

    /// Sets the status of the task whose webhook was delivery `delivery_id` for
    /// `recipient`; the task, when there is one.
    pub async fn processor_callback(
        &self,
        recipient: &str,
        delivery_id: &str,
        status: &str,
        at_us: i64,
    ) -> Result<Option<ProcessorTask>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE request_processors SET status = $3, updated_at_us = $4 \
             WHERE recipient = $1 AND delivery_id = $2 RETURNING {TASK_COLUMNS}"
        ))
        .bind(recipient)
        .bind(delivery_id)
        .bind(status)
        .bind(at_us)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(task_from).transpose()
    }

    /// Sets a task's status by hand (the team confirms a manual one).
    pub async fn set_processor_status(
        &self,
        request_id: &str,
        recipient: &str,
        status: &str,
        at_us: i64,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE request_processors SET status = $3, updated_at_us = $4 WHERE request_id = $1 AND recipient = $2",
        )
        .bind(request_id)
        .bind(recipient)
        .bind(status)
        .bind(at_us)
        .execute(self.pool())
        .await?
        .rows_affected()
            == 1)
    }

    /// Marks a task escalated to the team.
    pub async fn escalate_processor_task(
        &self,
        request_id: &str,
        recipient: &str,
        at_us: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE request_processors SET escalated_at_us = $3 WHERE request_id = $1 AND recipient = $2")
            .bind(request_id)
            .bind(recipient)
            .bind(at_us)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Keeps a certificate.
    pub async fn insert_certificate(&self, c: &Certificate) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO certificates (id, request_id, body, signature, issued_at_us) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&c.id)
        .bind(&c.request_id)
        .bind(&c.body)
        .bind(&c.signature)
        .bind(c.issued_at_us)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The latest certificate of request `id`.
    pub async fn certificate(&self, request_id: &str) -> Result<Option<Certificate>, StoreError> {
        let row = sqlx::query(
            "SELECT id, request_id, body, signature, issued_at_us FROM certificates WHERE request_id = $1 \
             ORDER BY issued_at_us DESC LIMIT 1",
        )
        .bind(request_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(Certificate {
                id: r.try_get("id")?,
                request_id: r.try_get("request_id")?,
                body: r.try_get("body")?,
                signature: r.try_get("signature")?,
                issued_at_us: r.try_get("issued_at_us")?,
            })
        })
        .transpose()
    }
}

/// One disclosure of a person's data to a recipient, as the audit chain holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disclosure {
    pub at_us: i64,
    pub actor: String,
    pub purpose: Option<String>,
    /// The entry's detail: the recipient and the categories shared.
    pub detail: String,
}

impl Store {
    /// The disclosures of a subject's data since `since_us`, oldest first.
    pub async fn disclosures_of(&self, subject_id: &str, since_us: i64) -> Result<Vec<Disclosure>, StoreError> {
        let rows = sqlx::query(
            "SELECT at_us, actor, purpose, detail FROM audit_log WHERE subject = $1 AND action = 'data.disclose' \
             AND at_us >= $2 ORDER BY seq",
        )
        .bind(subject_id)
        .bind(since_us)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Disclosure {
                    at_us: r.try_get("at_us")?,
                    actor: r.try_get("actor")?,
                    purpose: r.try_get("purpose")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
}
