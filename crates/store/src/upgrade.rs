//! What charter rewrites when it starts on data an earlier version wrote: profile values
//! sealed with the subject's key itself (each gets a key of its own), values collected at
//! what is now a record point (they become a record), and objects collected there
//! before records existed (each joins a record of its own). The sealing happens in the
//! server, which holds the keys and the policy; here are the reads and the one
//! transaction per subject that writes the result.

use crate::vault::{
    field_from, object_from, ObjectRecord, Param, RecordWrite, Step, Stop, StoredField, SubjectRecord, FIELD_COLUMNS,
    OBJECT_COLUMNS,
};
use crate::{Store, StoreError};

/// What an earlier version left of one subject.
#[derive(Debug, Clone)]
pub struct Legacy {
    /// The subject.
    pub subject: SubjectRecord,
    /// Profile values sealed with the subject's key.
    pub values: Vec<StoredField>,
    /// Objects sealed with the subject's key and in no record.
    pub objects: Vec<ObjectRecord>,
}

/// One subject's rewrite, applied all or nothing.
#[derive(Debug, Default)]
pub struct Rewrite {
    /// The subject.
    pub subject_id: String,
    /// Values resealed under keys of their own: (field, sealed, wrapped key).
    pub resealed: Vec<(String, Vec<u8>, Vec<u8>)>,
    /// Values that move into records (their rows go).
    pub moved: Vec<String>,
    /// The new records: (record, point, collection time).
    pub records: Vec<(RecordWrite, String, i64)>,
    /// Objects that join a record: (object id, record id).
    pub attached: Vec<(String, String)>,
}

impl Store {
    /// Subjects with something an earlier version wrote, at most `limit`, after id `after`.
    pub async fn legacy_subjects(&self, after: &str, limit: u32) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT s.id FROM subjects s WHERE s.id > $1 AND s.wrapped_key IS NOT NULL AND \
             (EXISTS (SELECT 1 FROM field_values f WHERE f.subject_id = s.id AND f.wrapped_key IS NULL) \
              OR EXISTS (SELECT 1 FROM objects o WHERE o.subject_id = s.id AND o.wrapped_key IS NULL AND o.record_id IS NULL)) \
             ORDER BY s.id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?)
    }

    /// What an earlier version left of subject `id`.
    pub async fn legacy(&self, id: &str) -> Result<Option<Legacy>, StoreError> {
        let Some(subject) = self.subject(id).await? else { return Ok(None) };
        let rows = sqlx::query(&format!(
            "SELECT {FIELD_COLUMNS} FROM field_values WHERE subject_id = $1 AND wrapped_key IS NULL ORDER BY field"
        ))
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        let values = rows.iter().map(|r| field_from(r, 0)).collect::<Result<Vec<_>, _>>()?;
        let rows = sqlx::query(&format!(
            "SELECT {OBJECT_COLUMNS} FROM objects o WHERE o.subject_id = $1 AND o.wrapped_key IS NULL \
             AND o.record_id IS NULL ORDER BY o.id"
        ))
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        let objects = rows.iter().map(|r| object_from(r, 0)).collect::<Result<_, _>>()?;
        Ok(Some(Legacy { subject, values, objects }))
    }

    /// Applies one subject's rewrite in one transaction; `false` (and nothing written)
    /// when another process rewrote it first.
    pub async fn rewrite_legacy(&self, w: &Rewrite) -> Result<bool, StoreError> {
        use Param::{Blob, Int, Text};
        let changed = Stop::Changed;
        let mut steps = Vec::new();
        for (field, sealed, key) in &w.resealed {
            steps.push(Step::or_stop(
                "UPDATE field_values SET sealed = $1, wrapped_key = $2 \
                 WHERE subject_id = $3 AND field = $4 AND wrapped_key IS NULL",
                vec![Blob(sealed), Blob(key), Text(&w.subject_id), Text(field)],
                changed,
            ));
        }
        for field in &w.moved {
            steps.push(Step::or_stop(
                "DELETE FROM field_values WHERE subject_id = $1 AND field = $2 AND wrapped_key IS NULL",
                vec![Text(&w.subject_id), Text(field)],
                changed,
            ));
        }
        for (r, point, at) in &w.records {
            steps.push(Step::go(
                crate::vault::INSERT_RECORD,
                vec![Text(&r.id), Text(&w.subject_id), Text(point), Int(*at), Blob(&r.wrapped_key)],
            ));
            for f in &r.fields {
                let params = vec![Text(&r.id), Text(&f.field), Text(&f.category), Blob(&f.sealed)];
                steps.push(Step::go(crate::vault::INSERT_RECORD_FIELD, params));
            }
        }
        for (object, record) in &w.attached {
            steps.push(Step::or_stop(
                "UPDATE objects SET record_id = $1 WHERE id = $2 AND record_id IS NULL",
                vec![Text(record), Text(object)],
                changed,
            ));
        }
        Ok(crate::vault::run_pool(self.pool(), &steps).await?.is_ok())
    }
}
