//! Records: what each collection at a record point keeps. A subject's records are read a
//! page at a time, newest first, or one by id; each comes with its sealed fields and the
//! objects collected with it, in one statement.
//!
//! Pages are keyed by position (collection time, then id), not by offset: a walk through
//! the pages sees every record that existed when it began exactly once, whatever is
//! inserted meanwhile.

use crate::vault::{object_from, required, Columns, ObjectRecord, RecordField, OBJECT_COLUMNS};
use crate::{Store, StoreError};

/// A record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Opaque id.
    pub id: String,
    /// The point that collected it.
    pub point: String,
    /// When, µs since the epoch.
    pub collected_at_us: i64,
    /// Its own key, wrapped under the subject's.
    pub wrapped_key: Vec<u8>,
    /// Its sealed fields, in order by name.
    pub fields: Vec<RecordField>,
    /// The objects collected with it, in order by field and id.
    pub files: Vec<ObjectRecord>,
}

/// Where a page of records starts: after the record at this position (newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The collection time of the last record of the previous page.
    pub collected_at_us: i64,
    /// Its id.
    pub id: String,
}

impl Position {
    /// The position before every record.
    pub fn start() -> Self {
        Self { collected_at_us: i64::MAX, id: String::new() }
    }

    /// The position of a record, where the next page starts.
    pub fn of(record: &StoredRecord) -> Self {
        Self { collected_at_us: record.collected_at_us, id: record.id.clone() }
    }
}

/// Which records a page holds.
#[derive(Debug, Clone)]
pub struct PageQuery<'a> {
    /// The subject.
    pub subject_id: &'a str,
    /// Only records of this point, when set.
    pub point: Option<&'a str>,
    /// Records after this position.
    pub after: Position,
    /// At most this many records.
    pub limit: u32,
}

/// The statement that reads the records `page` selects (a CTE of `id, point,
/// collected_at_us, wrapped_key` rows), with their fields and objects: one row per
/// record (tag `r`), per field (`f`) and per object (`o`), in no set order.
fn records_sql(page: &str) -> String {
    // The object rows come first: PostgreSQL types a UNION's columns left to right, so a
    // column that is NULL in every branch before a typed one would be taken for text.
    format!(
        "WITH page AS ({page}) \
         SELECT 'o', o.record_id, NULL, NULL, NULL, NULL, {OBJECT_COLUMNS} \
         FROM page p JOIN objects o ON o.record_id = p.id \
         UNION ALL \
         SELECT 'r', p.id, p.point, p.collected_at_us, p.wrapped_key, NULL, \
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM page p \
         UNION ALL \
         SELECT 'f', f.record_id, f.field, NULL, f.sealed, f.category, \
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL \
         FROM page p JOIN record_fields f ON f.record_id = p.id"
    )
}

/// The page statements: of every point, and of one point. Parameters are numbered in order
/// of first appearance, as SQLite binds them by position.
static PAGE_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    records_sql(
        "SELECT id, point, collected_at_us, wrapped_key FROM records \
         WHERE subject_id = $1 AND (collected_at_us, id) < ($2, $3) \
         ORDER BY collected_at_us DESC, id DESC LIMIT $4",
    )
});
static POINT_PAGE_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    records_sql(
        "SELECT id, point, collected_at_us, wrapped_key FROM records \
         WHERE subject_id = $1 AND point = $2 AND (collected_at_us, id) < ($3, $4) \
         ORDER BY collected_at_us DESC, id DESC LIMIT $5",
    )
});
static ONE_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    records_sql("SELECT id, point, collected_at_us, wrapped_key FROM records WHERE subject_id = $1 AND id = $2")
});

/// Records being assembled from the rows of [`records_sql`].
#[derive(Default)]
struct Assembly {
    records: Vec<StoredRecord>,
    fields: Vec<(String, RecordField)>,
    files: Vec<ObjectRecord>,
}

impl Assembly {
    fn row(&mut self, r: &impl Columns) -> Result<(), StoreError> {
        let record = required(r.text(1)?, "records.id")?;
        match required(r.text(0)?, "tag")?.as_str() {
            "r" => self.records.push(StoredRecord {
                id: record,
                point: required(r.text(2)?, "records.point")?,
                collected_at_us: required(r.int(3)?, "records.collected_at_us")?,
                wrapped_key: required(r.blob(4)?, "records.wrapped_key")?,
                fields: Vec::new(),
                files: Vec::new(),
            }),
            "f" => self.fields.push((
                record,
                RecordField {
                    field: required(r.text(2)?, "record_fields.field")?,
                    category: required(r.text(5)?, "record_fields.category")?,
                    sealed: required(r.blob(4)?, "record_fields.sealed")?,
                },
            )),
            _ => self.files.push(object_from(r, 6)?),
        }
        Ok(())
    }

    /// The records newest first, each with its fields and files in order.
    fn finish(mut self) -> Vec<StoredRecord> {
        self.records.sort_unstable_by(|a, b| (b.collected_at_us, &b.id).cmp(&(a.collected_at_us, &a.id)));
        let at: std::collections::HashMap<String, usize> =
            self.records.iter().enumerate().map(|(i, r)| (r.id.clone(), i)).collect();
        for (record, field) in self.fields {
            if let Some(&i) = at.get(&record) {
                self.records[i].fields.push(field);
            }
        }
        for file in self.files {
            if let Some(&i) = file.record_id.as_ref().and_then(|r| at.get(r)) {
                self.records[i].files.push(file);
            }
        }
        for r in &mut self.records {
            r.fields.sort_unstable_by(|a, b| a.field.cmp(&b.field));
            r.files.sort_unstable_by(|a, b| (&a.field, &a.id).cmp(&(&b.field, &b.id)));
        }
        self.records
    }
}

/// A parameter of a records statement, for either driver.
enum Arg<'a> {
    Text(&'a str),
    Int(i64),
}

impl Store {
    /// A page of a subject's records, newest first: at most `q.limit` records after `q.after`.
    #[tracing::instrument(level = "debug", skip_all, fields(limit = q.limit))]
    pub async fn records_page(&self, q: &PageQuery<'_>) -> Result<Vec<StoredRecord>, StoreError> {
        let (at, id, limit) = (Arg::Int(q.after.collected_at_us), Arg::Text(&q.after.id), Arg::Int(i64::from(q.limit)));
        match q.point {
            Some(point) => {
                self.records_by(&POINT_PAGE_SQL, &[Arg::Text(q.subject_id), Arg::Text(point), at, id, limit]).await
            }
            None => self.records_by(&PAGE_SQL, &[Arg::Text(q.subject_id), at, id, limit]).await,
        }
    }

    /// One record of a subject.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn record(&self, subject_id: &str, record_id: &str) -> Result<Option<StoredRecord>, StoreError> {
        Ok(self.records_by(&ONE_SQL, &[Arg::Text(subject_id), Arg::Text(record_id)]).await?.pop())
    }

    /// The records statement `sql` reads with `args` ($1, $2, ... in order).
    async fn records_by(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<StoredRecord>, StoreError> {
        let mut assembly = Assembly::default();
        if let Some(readers) = self.sqlite_direct() {
            readers.read(|conn| -> Result<(), StoreError> {
                let mut st = conn.prepare_cached(sql)?;
                for (i, a) in args.iter().enumerate() {
                    let name = format!("${}", i + 1);
                    let Some(at) = st.parameter_index(&name)? else { continue };
                    match a {
                        Arg::Text(t) => st.raw_bind_parameter(at, t)?,
                        Arg::Int(n) => st.raw_bind_parameter(at, n)?,
                    }
                }
                let mut rows = st.raw_query();
                while let Some(r) = rows.next()? {
                    assembly.row(r)?;
                }
                Ok(())
            })?;
            return Ok(assembly.finish());
        }
        let mut query = sqlx::query(sql);
        for a in args {
            query = match a {
                Arg::Text(t) => query.bind((*t).to_owned()),
                Arg::Int(n) => query.bind(*n),
            };
        }
        for r in &query.fetch_all(self.pool()).await? {
            assembly.row(r)?;
        }
        Ok(assembly.finish())
    }

    /// Records that subject `subject_id`'s account closed at `at_us`; `false` when it was
    /// already closed (the first closing stands) or the subject is unknown or erased.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn close_account(&self, subject_id: &str, at_us: i64) -> Result<bool, StoreError> {
        let closed = sqlx::query(
            "UPDATE subjects SET account_closed_at_us = $2 \
             WHERE id = $1 AND account_closed_at_us IS NULL AND shredded_at_us IS NULL",
        )
        .bind(subject_id)
        .bind(at_us)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(closed == 1)
    }
}
