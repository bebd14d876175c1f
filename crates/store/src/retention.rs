//! Retention as the store carries it out: due values found per category, deleted or
//! generalised in batches (each batch one transaction, with its outcome recorded in the
//! same transaction, so a process stopped mid-sweep leaves nothing half-done), records
//! whose values are all anonymised detached from their subject, the k-anonymity check,
//! legal holds, and the report of it all.
//!
//! On PostgreSQL a batch locks the rows it takes and skips rows another server has
//! locked (`FOR UPDATE SKIP LOCKED`), so two servers sweeping one database never take
//! the same value twice; on SQLite writes are serial.

use charter_core::retention::{AnonymousRecord, Cutoff};
use charter_vault::WrappedKey;
use sqlx::Row as _;

use crate::vault::ObjectRecord;
use crate::{Backend, Store, StoreError};

/// Where due values live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Values of records (`record_fields`).
    RecordFields,
    /// Profile values (`field_values`).
    ProfileValues,
    /// Uploaded objects (`objects`).
    Objects,
}

impl Place {
    /// The table, its key columns, and the joins that reach the subject as `s`.
    fn parts(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::RecordFields => (
                "record_fields",
                "record_id, field",
                "record_fields x JOIN records r ON r.id = x.record_id JOIN subjects s ON s.id = r.subject_id",
            ),
            Self::ProfileValues => {
                ("field_values", "subject_id, field", "field_values x JOIN subjects s ON s.id = x.subject_id")
            }
            Self::Objects => ("objects", "id", "objects x JOIN subjects s ON s.id = x.subject_id"),
        }
    }

    fn collected(self) -> &'static str {
        match self {
            Self::RecordFields => "r.collected_at_us",
            Self::ProfileValues | Self::Objects => "x.collected_at_us",
        }
    }

    /// `x.category = $1 AND` the cutoff (bound as `$2`).
    fn due(self, cutoff: Cutoff) -> String {
        match cutoff {
            Cutoff::CollectedBefore(_) => format!("x.category = $1 AND {} < $2", self.collected()),
            Cutoff::ClosedBy(_) => "x.category = $1 AND s.account_closed_at_us <= $2".to_owned(),
        }
    }
}

fn cutoff_us(c: Cutoff) -> i64 {
    match c {
        Cutoff::CollectedBefore(t) | Cutoff::ClosedBy(t) => t,
    }
}

/// A hold in force on the subject `s` or on the category of `x`.
const HELD: &str = "EXISTS (SELECT 1 FROM legal_holds h WHERE h.removed_at_us IS NULL \
                    AND (h.subject_id = s.id OR h.category = x.category))";

/// One batch of a rule: up to `limit` values of `category` at `place` due by `cutoff`,
/// handled as sweep `sweep` at `now_us`.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    pub place: Place,
    pub category: &'a str,
    pub cutoff: Cutoff,
    pub sweep: &'a str,
    pub limit: u32,
    pub now_us: i64,
}

/// A due value to anonymise, with what opens it.
#[derive(Debug, Clone)]
pub struct DueValue {
    pub subject_id: String,
    /// The subject's data key, wrapped; `None` once shredded.
    pub subject_key: Option<WrappedKey>,
    /// The record it belongs to (`None`: a profile value).
    pub record_id: Option<String>,
    /// The key of its own (the record's, or the profile value's), wrapped under the
    /// subject's key.
    pub own_key: Option<Vec<u8>>,
    pub field: String,
    pub category: String,
    pub sealed: Vec<u8>,
}

/// A record whose values are all anonymised, as opened for detaching.
#[derive(Debug, Clone)]
pub struct DetachableRecord {
    pub id: String,
    pub subject_id: String,
    pub subject_key: Option<WrappedKey>,
    pub own_key: Vec<u8>,
    pub point: String,
    pub collected_at_us: i64,
    /// (field, category, sealed value).
    pub fields: Vec<(String, String, Vec<u8>)>,
}

/// A legal hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub id: String,
    pub subject_id: Option<String>,
    pub category: Option<String>,
    pub reason: String,
    pub created_at_us: i64,
    pub removed_at_us: Option<i64>,
}

/// One line of the retention report: what happened to a category between two times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub category: String,
    /// `deleted`, `anonymised`, `held`, `suppressed` or `shredded`.
    pub outcome: String,
    pub n: i64,
}

fn wrapped(version: Option<i64>, sealed: Option<Vec<u8>>) -> Option<WrappedKey> {
    Some(WrappedKey { kek_version: u32::try_from(version?).ok()?, sealed: sealed? })
}

impl Store {
    fn skip_locked(&self) -> &'static str {
        match self.backend() {
            Backend::Postgres => " FOR UPDATE OF x SKIP LOCKED",
            Backend::Sqlite => "",
        }
    }

    /// How many values of `category` at `place` are due, and how many of those a hold keeps.
    pub async fn count_due(&self, place: Place, category: &str, cutoff: Cutoff) -> Result<(i64, i64), StoreError> {
        let (_, _, from) = place.parts();
        let due = place.due(cutoff);
        let extra = if place == Place::Objects { "" } else { " AND x.anonymised_at_us IS NULL" };
        let sql = format!(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN {HELD} THEN 1 ELSE 0 END), 0) FROM {from} WHERE {due}{extra}"
        );
        let row = sqlx::query(&sql).bind(category).bind(cutoff_us(cutoff)).fetch_one(self.pool()).await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// Deletes up to `limit` due values of `category` from the record or profile tables
    /// (not held), recording the count as `sweep`'s; how many went.
    pub async fn delete_due(&self, b: &Batch<'_>) -> Result<u64, StoreError> {
        let Batch { place, category, cutoff, sweep, limit, now_us } = *b;
        let (table, key, from) = place.parts();
        let due = place.due(cutoff);
        let mut tx = self.pool().begin().await?;
        let sql = format!(
            "DELETE FROM {table} WHERE ({key}) IN (SELECT {} FROM {from} WHERE {due} AND NOT {HELD} LIMIT $3{})",
            key.split(", ").map(|k| format!("x.{k}")).collect::<Vec<_>>().join(", "),
            self.skip_locked()
        );
        let n = sqlx::query(&sql)
            .bind(category)
            .bind(cutoff_us(cutoff))
            .bind(i64::from(limit))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        record_outcome(&mut tx, sweep, category, "deleted", n, now_us).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Up to `limit` due objects of `category` (not held): their bytes go first, then
    /// [`Store::delete_objects`] removes their rows.
    pub async fn due_objects(
        &self,
        category: &str,
        cutoff: Cutoff,
        limit: u32,
    ) -> Result<Vec<ObjectRecord>, StoreError> {
        let due = Place::Objects.due(cutoff);
        let columns = crate::vault::OBJECT_COLUMNS.replace("o.", "x.");
        let sql = format!(
            "SELECT {columns} FROM objects x JOIN subjects s ON s.id = x.subject_id WHERE {due} AND NOT {HELD} LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(category)
            .bind(cutoff_us(cutoff))
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| crate::vault::object_from(r, 0)).collect()
    }

    /// Deletes the rows of objects whose bytes are gone, recording those this call
    /// removed (another server may have removed some) as `sweep`'s.
    pub async fn delete_objects(
        &self,
        ids: &[String],
        category: &str,
        sweep: &str,
        now_us: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let mut n = 0;
        for id in ids {
            n += sqlx::query("DELETE FROM objects WHERE id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
        }
        record_outcome(&mut tx, sweep, category, "deleted", n, now_us).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Anonymises up to `limit` due values of `category` at `place` (not held, not yet
    /// anonymised) in one transaction: `generalise` returns each value's new sealed
    /// bytes, or `None` when nothing of it can be kept (the value is deleted). Returns
    /// (anonymised, deleted).
    pub async fn anonymise_due(
        &self,
        b: &Batch<'_>,
        generalise: impl Fn(&DueValue) -> Option<Vec<u8>>,
    ) -> Result<(u64, u64), StoreError> {
        let Batch { place, category, cutoff, sweep, limit, now_us } = *b;
        let (table, _, from) = place.parts();
        let (owner, own_key) = match place {
            Place::RecordFields => ("x.record_id", "r.wrapped_key"),
            _ => ("NULL", "x.wrapped_key"),
        };
        let sql = format!(
            "SELECT s.id, s.kek_version, s.wrapped_key, {owner}, {own_key}, x.field, x.category, x.sealed \
             FROM {from} WHERE {} AND x.anonymised_at_us IS NULL AND NOT {HELD} LIMIT $3{}",
            place.due(cutoff),
            self.skip_locked()
        );
        let mut tx = self.begin_for_write().await?;
        let rows =
            sqlx::query(&sql).bind(category).bind(cutoff_us(cutoff)).bind(i64::from(limit)).fetch_all(&mut *tx).await?;
        let (mut anonymised, mut deleted) = (0, 0);
        for r in &rows {
            let v = DueValue {
                subject_id: r.try_get(0)?,
                subject_key: wrapped(r.try_get(1)?, r.try_get(2)?),
                record_id: r.try_get(3)?,
                own_key: r.try_get(4)?,
                field: r.try_get(5)?,
                category: r.try_get(6)?,
                sealed: r.try_get(7)?,
            };
            let (owner_column, owner_id) = match &v.record_id {
                Some(id) => ("record_id", id.as_str()),
                None => ("subject_id", v.subject_id.as_str()),
            };
            match generalise(&v) {
                Some(sealed) => {
                    sqlx::query(&format!(
                        "UPDATE {table} SET sealed = $3, anonymised_at_us = $4 WHERE {owner_column} = $1 AND field = $2"
                    ))
                    .bind(owner_id)
                    .bind(&v.field)
                    .bind(sealed)
                    .bind(now_us)
                    .execute(&mut *tx)
                    .await?;
                    anonymised += 1;
                }
                None => {
                    sqlx::query(&format!("DELETE FROM {table} WHERE {owner_column} = $1 AND field = $2"))
                        .bind(owner_id)
                        .bind(&v.field)
                        .execute(&mut *tx)
                        .await?;
                    deleted += 1;
                }
            }
        }
        record_outcome(&mut tx, sweep, category, "anonymised", anonymised, now_us).await?;
        record_outcome(&mut tx, sweep, category, "deleted", deleted, now_us).await?;
        tx.commit().await?;
        Ok((anonymised, deleted))
    }

    /// Detaches up to `limit` records that have nothing left but anonymised values and
    /// no files (their subject not held) in one transaction: `assemble` turns each into
    /// what is kept (`None`: nothing, the record just goes), which joins the anonymous
    /// records pending the k-anonymity check; the record and its values go. Returns how
    /// many records went.
    pub async fn detach_anonymised(
        &self,
        limit: u32,
        now_us: i64,
        assemble: impl Fn(&DetachableRecord) -> Option<AnonymousRecord>,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "SELECT x.id, s.id, s.kek_version, s.wrapped_key, x.wrapped_key, x.point, x.collected_at_us \
             FROM records x JOIN subjects s ON s.id = x.subject_id \
             WHERE EXISTS (SELECT 1 FROM record_fields f WHERE f.record_id = x.id) \
             AND NOT EXISTS (SELECT 1 FROM record_fields f WHERE f.record_id = x.id AND f.anonymised_at_us IS NULL) \
             AND NOT EXISTS (SELECT 1 FROM objects o WHERE o.record_id = x.id) \
             AND NOT EXISTS (SELECT 1 FROM legal_holds h WHERE h.removed_at_us IS NULL AND h.subject_id = s.id) \
             LIMIT $1{}",
            self.skip_locked()
        );
        // Most sweeps find nothing to detach, and then open no write transaction.
        let unlocked = sql.replace(self.skip_locked(), "");
        if sqlx::query(&unlocked).bind(1_i64).fetch_optional(self.pool()).await?.is_none() {
            return Ok(0);
        }
        let mut tx = self.begin_for_write().await?;
        let rows = sqlx::query(&sql).bind(i64::from(limit)).fetch_all(&mut *tx).await?;
        for r in &rows {
            let mut record = DetachableRecord {
                id: r.try_get(0)?,
                subject_id: r.try_get(1)?,
                subject_key: wrapped(r.try_get(2)?, r.try_get(3)?),
                own_key: r.try_get(4)?,
                point: r.try_get(5)?,
                collected_at_us: r.try_get(6)?,
                fields: Vec::new(),
            };
            record.fields = sqlx::query_as("SELECT field, category, sealed FROM record_fields WHERE record_id = $1")
                .bind(&record.id)
                .fetch_all(&mut *tx)
                .await?;
            if let Some(kept) = (!record.fields.is_empty()).then(|| assemble(&record)).flatten() {
                insert_anonymous(&mut tx, &kept, now_us).await?;
            }
            sqlx::query("DELETE FROM record_fields WHERE record_id = $1").bind(&record.id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM records WHERE id = $1").bind(&record.id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    /// Deletes up to `limit` records left with no value and no file (their subject not
    /// held), in one statement; how many went.
    pub async fn delete_empty_records(&self, limit: u32) -> Result<u64, StoreError> {
        let empty = "SELECT x.id FROM records x JOIN subjects s ON s.id = x.subject_id \
             WHERE NOT EXISTS (SELECT 1 FROM record_fields f WHERE f.record_id = x.id) \
             AND NOT EXISTS (SELECT 1 FROM objects o WHERE o.record_id = x.id) \
             AND NOT EXISTS (SELECT 1 FROM legal_holds h WHERE h.removed_at_us IS NULL AND h.subject_id = s.id) \
             LIMIT $1";
        // Most sweeps find none, and then write nothing.
        if sqlx::query(empty).bind(1_i64).fetch_optional(self.pool()).await?.is_none() {
            return Ok(0);
        }
        let sql = format!("DELETE FROM records WHERE id IN ({empty}{})", self.skip_locked());
        Ok(sqlx::query(&sql).bind(i64::from(limit)).execute(self.pool()).await?.rows_affected())
    }

    /// Clears what a sweep deleted or rewrote from SQLite's WAL (see `purge_wal`); once
    /// per sweep rather than per batch.
    pub async fn purge_after_sweep(&self) {
        self.purge_wal().await;
    }

    /// The k-anonymity check, in one transaction: pending anonymous records in groups
    /// of fewer than `k` (counting those already kept) are suppressed, the rest kept.
    /// Returns (kept, suppressed).
    pub async fn check_k_anonymity(&self, k: u32, sweep: &str, now_us: i64) -> Result<(u64, u64), StoreError> {
        let pending: Option<i64> = sqlx::query_scalar("SELECT 1 FROM anonymous_records WHERE kept = 0 LIMIT 1")
            .fetch_optional(self.pool())
            .await?;
        if pending.is_none() {
            return Ok((0, 0));
        }
        let mut tx = self.begin_for_write().await?;
        if self.backend() == Backend::Postgres {
            // Two servers checking at once would each see the other's pending rows.
            sqlx::query("LOCK TABLE anonymous_records IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
        }
        let counts: Vec<(String, i64)> = sqlx::query_as(
            "SELECT grp, COUNT(*) FROM anonymous_records \
             WHERE grp IN (SELECT grp FROM anonymous_records WHERE kept = 0) GROUP BY grp",
        )
        .fetch_all(&mut *tx)
        .await?;
        let small = charter_core::retention::small_groups(
            counts.iter().map(|(g, n)| (g.as_str(), u64::try_from(*n).unwrap_or(0))),
            k,
        );
        let mut suppressed = 0;
        for g in &small {
            suppressed += sqlx::query("DELETE FROM anonymous_records WHERE grp = $1 AND kept = 0")
                .bind(*g)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        let kept = sqlx::query("UPDATE anonymous_records SET kept = 1 WHERE kept = 0").execute(&mut *tx).await?;
        record_outcome(&mut tx, sweep, "*", "suppressed", suppressed, now_us).await?;
        tx.commit().await?;
        Ok((kept.rows_affected(), suppressed))
    }

    /// Up to `limit` subjects whose account is closed, who have nothing left (no profile
    /// value, record or object) and no hold: what [`Store::shred`] may now destroy.
    pub async fn closed_and_empty(&self, limit: u32) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT s.id FROM subjects s WHERE s.account_closed_at_us IS NOT NULL AND s.shredded_at_us IS NULL \
             AND NOT EXISTS (SELECT 1 FROM field_values f WHERE f.subject_id = s.id) \
             AND NOT EXISTS (SELECT 1 FROM records r WHERE r.subject_id = s.id) \
             AND NOT EXISTS (SELECT 1 FROM objects o WHERE o.subject_id = s.id) \
             AND NOT EXISTS (SELECT 1 FROM legal_holds h WHERE h.removed_at_us IS NULL AND h.subject_id = s.id) \
             LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?)
    }

    /// Records an outcome outside a batch (what holds kept, subjects shredded).
    pub async fn add_outcome(
        &self,
        sweep: &str,
        category: &str,
        outcome: &str,
        n: u64,
        now_us: i64,
    ) -> Result<(), StoreError> {
        if n == 0 {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        record_outcome(&mut tx, sweep, category, outcome, n, now_us).await?;
        Ok(tx.commit().await?)
    }

    /// What retention did between `from_us` and `to_us`, per category and outcome.
    /// Deletions, anonymisations, suppressions and shreds add up; `held` is what holds
    /// kept at the last sweep of the window (the same values are held sweep after sweep).
    pub async fn retention_report(&self, from_us: i64, to_us: i64) -> Result<Vec<Outcome>, StoreError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT category, outcome, CAST(SUM(n) AS BIGINT) FROM retention_outcomes \
             WHERE at_us >= $1 AND at_us < $2 AND outcome <> 'held' GROUP BY category, outcome \
             UNION ALL \
             SELECT o.category, o.outcome, CAST(SUM(o.n) AS BIGINT) FROM retention_outcomes o \
             WHERE o.outcome = 'held' AND o.sweep_id = (SELECT l.sweep_id FROM retention_outcomes l \
               WHERE l.at_us >= $1 AND l.at_us < $2 AND l.outcome = 'held' ORDER BY l.at_us DESC LIMIT 1) \
             GROUP BY o.category, o.outcome \
             ORDER BY 1, 2",
        )
        .bind(from_us)
        .bind(to_us)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(category, outcome, n)| Outcome { category, outcome, n }).collect())
    }

    /// Kept anonymous records, for reports and tests: (point, day, group, values as JSON).
    pub async fn anonymous_records(&self) -> Result<Vec<(String, String, String, String)>, StoreError> {
        Ok(sqlx::query_as("SELECT point, day, grp, vals FROM anonymous_records WHERE kept = 1 ORDER BY grp, id")
            .fetch_all(self.pool())
            .await?)
    }

    /// Adds a hold on a subject or a category.
    pub async fn add_hold(&self, hold: &Hold) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO legal_holds (id, subject_id, category, reason, created_at_us) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&hold.id)
        .bind(&hold.subject_id)
        .bind(&hold.category)
        .bind(&hold.reason)
        .bind(hold.created_at_us)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Ends a hold; false when there is no such hold in force.
    pub async fn remove_hold(&self, id: &str, at_us: i64) -> Result<bool, StoreError> {
        Ok(sqlx::query("UPDATE legal_holds SET removed_at_us = $2 WHERE id = $1 AND removed_at_us IS NULL")
            .bind(id)
            .bind(at_us)
            .execute(self.pool())
            .await?
            .rows_affected()
            == 1)
    }

    /// Holds, those in force only unless `all`, oldest first.
    pub async fn holds(&self, all: bool) -> Result<Vec<Hold>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, subject_id, category, reason, created_at_us, removed_at_us FROM legal_holds \
             WHERE $1 = 1 OR removed_at_us IS NULL ORDER BY created_at_us, id",
        )
        .bind(i64::from(all))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Hold {
                    id: r.try_get(0)?,
                    subject_id: r.try_get(1)?,
                    category: r.try_get(2)?,
                    reason: r.try_get(3)?,
                    created_at_us: r.try_get(4)?,
                    removed_at_us: r.try_get(5)?,
                })
            })
            .collect()
    }
}

async fn record_outcome(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    sweep: &str,
    category: &str,
    outcome: &str,
    n: u64,
    now_us: i64,
) -> Result<(), StoreError> {
    if n == 0 {
        return Ok(());
    }
    sqlx::query("INSERT INTO retention_outcomes (sweep_id, category, outcome, n, at_us) VALUES ($1, $2, $3, $4, $5)")
        .bind(sweep)
        .bind(category)
        .bind(outcome)
        .bind(i64::try_from(n).unwrap_or(i64::MAX))
        .bind(now_us)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_anonymous(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    r: &AnonymousRecord,
    now_us: i64,
) -> Result<(), StoreError> {
    let json = |m: &std::collections::BTreeMap<String, String>| serde_json::to_string(m).expect("a map serialises");
    sqlx::query(
        "INSERT INTO anonymous_records (id, point, day, grp, quasi, vals, kept, created_at_us) \
         VALUES ($1, $2, $3, $4, $5, $6, 0, $7)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(&r.point)
    .bind(&r.day)
    .bind(r.group())
    .bind(json(&r.quasi))
    .bind(json(&r.values))
    .bind(now_us)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
