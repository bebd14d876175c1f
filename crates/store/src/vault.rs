//! Repositories for the personal-data vault: subjects, blind indexes, sealed
//! field values, the consent ledger and objections. Only ciphertext, keyed
//! hashes and opaque ids are written here; sealing happens before, in the vault.
//!
//! Transactions here begin with a write, so SQLite takes its write lock at once
//! instead of failing to upgrade a read lock under concurrency.

use charter_vault::WrappedKey;
use sqlx::Row as _;

use crate::{Store, StoreError};

/// A subject as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectRecord {
    /// Opaque id.
    pub id: String,
    /// The wrapped data key; `None` once shredded.
    pub wrapped: Option<WrappedKey>,
    /// When the subject was shredded.
    pub shredded_at_us: Option<i64>,
    /// When processing was restricted.
    pub restricted_at_us: Option<i64>,
    /// When the account was closed.
    pub account_closed_at_us: Option<i64>,
}

/// A sealed field value as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredField {
    /// Field name.
    pub field: String,
    /// Its category.
    pub category: String,
    /// The point that last collected it.
    pub point: String,
    /// Nonce and ciphertext.
    pub sealed: Vec<u8>,
    /// When it was collected, µs since the epoch.
    pub collected_at_us: i64,
}

/// What a read needs about one subject and one purpose.
#[derive(Debug, Clone)]
pub struct ReadView {
    /// The subject.
    pub subject: SubjectRecord,
    /// Its sealed fields, in order by name.
    pub fields: Vec<StoredField>,
    /// The latest consent answer for the purpose, if any.
    pub consent: Option<bool>,
    /// Whether the subject objected to the purpose.
    pub objected: bool,
}

/// The subject's row of [`READ_VIEW_SQL`]: the subject, its latest consent answer (as
/// stored, 1 or 0), and how many objections it made.
type ViewHead = (SubjectRecord, Option<i64>, i64);

impl ReadView {
    /// The view from the rows of [`READ_VIEW_SQL`], on either backend: `None` without the
    /// subject's row; the fields put in order by name.
    fn assemble(head: Option<ViewHead>, mut fields: Vec<StoredField>) -> Option<Self> {
        let (subject, consent, objected) = head?;
        fields.sort_unstable_by(|a, b| a.field.cmp(&b.field));
        Some(Self { subject, fields, consent: consent.map(|g| g != 0), objected: objected > 0 })
    }

    /// The subject's standing for the decision on `purpose`.
    pub fn state(&self, purpose: &str) -> charter_core::access::SubjectState {
        charter_core::access::SubjectState {
            erased: self.subject.shredded_at_us.is_some(),
            restricted: self.subject.restricted_at_us.is_some(),
            consents: self.consent.map(|given| (purpose.to_owned(), given)).into_iter().collect(),
            objections: self.objected.then(|| purpose.to_owned()).into_iter().collect(),
            account_closed_at_us: self.subject.account_closed_at_us,
        }
    }
}

/// Everything one collection writes, in one transaction. It owns what it writes, so a
/// caller can hand it to a task of its own.
#[derive(Debug)]
pub struct CollectionWrite {
    /// The subject.
    pub subject_id: String,
    /// For a new subject, its wrapped data key.
    pub new_subject: Option<WrappedKey>,
    /// The identifier the subject arrived with, as (kind, blind index).
    pub identifier: Option<(&'static str, [u8; 32])>,
    /// The collection point.
    pub point: String,
    /// Sealed fields.
    pub fields: Vec<FieldWrite>,
    /// Consent answers: (purpose, given).
    pub consents: Vec<(String, bool)>,
    /// When.
    pub at_us: i64,
}

/// One sealed field of a collection.
#[derive(Debug)]
pub struct FieldWrite {
    /// Field name.
    pub field: String,
    /// Its category.
    pub category: String,
    /// Nonce and ciphertext.
    pub sealed: Vec<u8>,
    /// When true the field must not have a value yet (a password being set): a value
    /// already there, even one written a moment ago by a concurrent collection, refuses
    /// the whole write with [`CollectError::AlreadySet`]. Otherwise the value replaces
    /// any earlier one.
    pub if_unset: bool,
}

/// Why a collection could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// Another request created a subject with the same identifier first; look it up again.
    #[error("the identifier was claimed by a concurrent collection")]
    IdentifierRace,
    /// The new subject's data key is wrapped under a key-encryption key that `charter keys
    /// rotate` retired: this process runs with a key file from before the rotation.
    #[error("key-encryption key version {0} was retired by a key rotation; restart charter so it loads the rotated key file")]
    KekRetired(u32),
    /// A field that had to be unset has a value (written by a concurrent collection);
    /// look it up again.
    #[error("a field that had to be unset has a value")]
    AlreadySet,
    /// The subject was erased (crypto-shredded) after the collection found it.
    #[error("the subject was erased")]
    Erased,
    /// The database failed.
    #[error("database error while collecting")]
    Db(#[from] StoreError),
}

impl SubjectRecord {
    /// A subject from the values of [`SUBJECT_COLUMNS`], in that order.
    fn from_columns(
        id: String,
        kek_version: Option<i64>,
        wrapped_key: Option<Vec<u8>>,
        shredded_at_us: Option<i64>,
        restricted_at_us: Option<i64>,
        account_closed_at_us: Option<i64>,
    ) -> Self {
        let wrapped = match (kek_version, wrapped_key) {
            (Some(v), Some(k)) => Some(WrappedKey { kek_version: u32::try_from(v).unwrap_or(u32::MAX), sealed: k }),
            _ => None,
        };
        Self { id, wrapped, shredded_at_us, restricted_at_us, account_closed_at_us }
    }
}

/// A row's columns by position, whichever driver read it: each read's decoding is
/// written once, for direct SQLite connections and the pool alike.
trait Columns {
    fn text(&self, i: usize) -> Result<Option<String>, StoreError>;
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    fn blob(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError>;
}

impl Columns for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.get(i)?)
    }

    fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.get(i)?)
    }

    fn blob(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get(i)?)
    }
}

impl Columns for sqlx::any::AnyRow {
    fn text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(i)?)
    }

    fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(i)?)
    }

    fn blob(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.try_get(i)?)
    }
}

/// A column that may not be NULL.
fn required<T>(value: Option<T>, column: &'static str) -> Result<T, StoreError> {
    value.ok_or(StoreError::Null(column))
}

/// A subject from the columns of [`SUBJECT_COLUMNS`], at positions 0 to 5.
fn subject_from(r: &impl Columns) -> Result<SubjectRecord, StoreError> {
    Ok(SubjectRecord::from_columns(
        required(r.text(0)?, "subjects.id")?,
        r.int(1)?,
        r.blob(2)?,
        r.int(3)?,
        r.int(4)?,
        r.int(5)?,
    ))
}

/// One row of [`READ_VIEW_SQL`] into the view being assembled: the subject's row (it
/// has an id) or a field's.
fn view_row(r: &impl Columns, head: &mut Option<ViewHead>, fields: &mut Vec<StoredField>) -> Result<(), StoreError> {
    if r.text(0)?.is_some() {
        *head = Some((subject_from(r)?, r.int(6)?, r.int(7)?.unwrap_or(0)));
        return Ok(());
    }
    fields.push(StoredField {
        field: required(r.text(8)?, "field_values.field")?,
        category: required(r.text(9)?, "field_values.category")?,
        point: required(r.text(10)?, "field_values.point")?,
        sealed: required(r.blob(11)?, "field_values.sealed")?,
        collected_at_us: required(r.int(12)?, "field_values.collected_at_us")?,
    });
    Ok(())
}

/// One subject, its fields, and its latest consent and any objection for one purpose, in
/// one statement (one round trip on PostgreSQL, one snapshot on SQLite): the
/// subject's row (with its consent and objection, and no field) and one row per field
/// (with no subject id), so the subject's columns are sent once rather than on every
/// field row. The rows come in no set order: the reader tells them apart by the subject
/// id and puts the fields in order itself, rather than the server, whose sort was a
/// third of the statement's time.
static READ_VIEW_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {SUBJECT_COLUMNS}, \
         (SELECT c.given FROM consents c WHERE c.subject_id = s.id AND c.purpose = $2 ORDER BY c.at_us DESC LIMIT 1), \
         (SELECT COUNT(*) FROM objections o WHERE o.subject_id = s.id AND o.purpose = $2), \
         NULL, NULL, NULL, NULL, NULL \
         FROM subjects s WHERE s.id = $1 \
         UNION ALL \
         SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
         f.field, f.category, f.point, f.sealed, f.collected_at_us \
         FROM field_values f WHERE f.subject_id = $1"
    )
});

/// [`Store::subject_for_read`] on a direct SQLite connection, by [`READ_VIEW_SQL`]: one
/// statement (and so one snapshot) rather than one for the subject and one for its fields.
fn read_view_native(conn: &rusqlite::Connection, id: &str, purpose: &str) -> Result<Option<ReadView>, StoreError> {
    let mut st = conn.prepare_cached(&READ_VIEW_SQL)?;
    // Bound by name: SQLite numbers parameters in order of appearance, and `$2` comes first.
    let mut rows = st.query(rusqlite::named_params! { "$1": id, "$2": purpose })?;
    let (mut head, mut fields) = (None, Vec::with_capacity(16));
    while let Some(r) = rows.next()? {
        view_row(r, &mut head, &mut fields)?;
    }
    Ok(ReadView::assemble(head, fields))
}

/// Runs `f`, which may block, telling a multi-threaded runtime first so that its other
/// tasks move to another thread (on a current-thread runtime it just runs).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

// The statements of a collection, for the pool and for direct connections alike
// (parameters numbered in order of appearance, as SQLite binds them by position).
// A subject is stored only with a data key wrapped under a key-encryption key that is not
// retired: a server still running with a key file from before a rotation is refused
// rather than storing a key nothing could open once its file is replaced.
const INSERT_SUBJECT: &str = "INSERT INTO subjects (id, created_at_us, kek_version, wrapped_key) \
     SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM retired_keks r WHERE r.version = $3)";
const INSERT_IDENTIFIER: &str =
    "INSERT INTO subject_identifiers (kind, blind, subject_id) VALUES ($1, $2, $3) ON CONFLICT (kind, blind) DO NOTHING";
/// Holds an existing subject's row for the collection's transaction, and finds it only when
/// it is not shredded: a shred waits for the collection, or the collection sees the shred.
const GUARD_SUBJECT: &str = "UPDATE subjects SET id = id WHERE id = $1 AND shredded_at_us IS NULL";
const INSERT_FIELD_IF_UNSET: &str =
    "INSERT INTO field_values (subject_id, field, category, point, sealed, collected_at_us) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (subject_id, field) DO NOTHING";
const UPSERT_FIELD: &str = "INSERT INTO field_values (subject_id, field, category, point, sealed, collected_at_us) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (subject_id, field) DO UPDATE SET \
     category = excluded.category, point = excluded.point, sealed = excluded.sealed, \
     collected_at_us = excluded.collected_at_us";
const INSERT_CONSENT: &str =
    "INSERT INTO consents (subject_id, purpose, given, point, at_us) VALUES ($1, $2, $3, $4, $5)";

/// How a write of a collection ended, short of a database error.
#[derive(Debug, Clone, Copy)]
enum Written {
    Done,
    /// A concurrent collection claimed the identifier first.
    IdentifierRace,
    /// The new subject's key is wrapped under this retired key-encryption key version.
    KekRetired(u32),
    /// A field that had to be unset has a value.
    AlreadySet,
    /// The subject was shredded.
    Erased,
}

impl Written {
    fn into_result(self) -> Result<(), CollectError> {
        match self {
            Self::Done => Ok(()),
            Self::IdentifierRace => Err(CollectError::IdentifierRace),
            Self::KekRetired(v) => Err(CollectError::KekRetired(v)),
            Self::AlreadySet => Err(CollectError::AlreadySet),
            Self::Erased => Err(CollectError::Erased),
        }
    }
}

/// A value bound to one of a write's statements, for either driver.
#[derive(Debug, Clone, Copy)]
enum Param<'a> {
    Text(&'a str),
    Int(i64),
    Blob(&'a [u8]),
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Self::Text(t) => ValueRef::Text(t.as_bytes()),
            Self::Int(i) => ValueRef::Integer(i),
            Self::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// One statement of a write; when it writes no row and `otherwise` is set, the write
/// stops there, rolled back, with that outcome.
struct Step<'a> {
    sql: &'static str,
    params: Vec<Param<'a>>,
    otherwise: Option<Written>,
}

/// The statements of a collection, in order, written once for both drivers: the subject
/// (inserted when new, unless its key-encryption key is retired; held when it exists,
/// unless it was erased), its identifier, its fields and its consents.
fn collection_steps(w: &CollectionWrite) -> Vec<Step<'_>> {
    use Param::{Blob, Int, Text};
    let mut steps = Vec::with_capacity(2 + w.fields.len() + w.consents.len());
    steps.push(match &w.new_subject {
        Some(k) => Step {
            sql: INSERT_SUBJECT,
            params: vec![Text(&w.subject_id), Int(w.at_us), Int(i64::from(k.kek_version)), Blob(&k.sealed)],
            otherwise: Some(Written::KekRetired(k.kek_version)),
        },
        None => Step { sql: GUARD_SUBJECT, params: vec![Text(&w.subject_id)], otherwise: Some(Written::Erased) },
    });
    if let Some((kind, blind)) = &w.identifier {
        // For a new subject, someone else created this person a moment ago: the caller
        // retries and finds them.
        let otherwise = w.new_subject.is_some().then_some(Written::IdentifierRace);
        steps.push(Step {
            sql: INSERT_IDENTIFIER,
            params: vec![Text(kind), Blob(blind), Text(&w.subject_id)],
            otherwise,
        });
    }
    for f in &w.fields {
        let (sql, otherwise) =
            if f.if_unset { (INSERT_FIELD_IF_UNSET, Some(Written::AlreadySet)) } else { (UPSERT_FIELD, None) };
        let params =
            vec![Text(&w.subject_id), Text(&f.field), Text(&f.category), Text(&w.point), Blob(&f.sealed), Int(w.at_us)];
        steps.push(Step { sql, params, otherwise });
    }
    for (purpose, given) in &w.consents {
        let params = vec![Text(&w.subject_id), Text(purpose), Int(i64::from(*given)), Text(&w.point), Int(w.at_us)];
        steps.push(Step { sql: INSERT_CONSENT, params, otherwise: None });
    }
    steps
}

/// Runs `steps` in one `BEGIN IMMEDIATE` transaction on a direct SQLite connection.
fn run_native(conn: &mut rusqlite::Connection, steps: &[Step<'_>]) -> Result<Written, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for s in steps {
        let written = tx.prepare_cached(s.sql)?.execute(rusqlite::params_from_iter(&s.params))?;
        if let (0, Some(outcome)) = (written, s.otherwise) {
            return Ok(outcome); // dropping `tx` rolls back
        }
    }
    tx.commit()?;
    Ok(Written::Done)
}

/// Runs `steps` in one transaction through the pool.
async fn run_pool(pool: &sqlx::AnyPool, steps: &[Step<'_>]) -> Result<Written, StoreError> {
    let mut tx = pool.begin().await?;
    for s in steps {
        let mut q = sqlx::query(s.sql);
        for p in &s.params {
            q = match *p {
                Param::Text(t) => q.bind(t.to_owned()),
                Param::Int(i) => q.bind(i),
                Param::Blob(b) => q.bind(b.to_vec()),
            };
        }
        let written = q.execute(&mut *tx).await?.rows_affected();
        if let (0, Some(outcome)) = (written, s.otherwise) {
            tx.rollback().await?;
            return Ok(outcome);
        }
    }
    tx.commit().await?;
    Ok(Written::Done)
}

const SUBJECT_COLUMNS: &str =
    "s.id, s.kek_version, s.wrapped_key, s.shredded_at_us, s.restricted_at_us, s.account_closed_at_us";

impl Store {
    /// The subject with this id.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn subject(&self, id: &str) -> Result<Option<SubjectRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {SUBJECT_COLUMNS} FROM subjects s WHERE s.id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(subject_from).transpose()
    }

    /// The subject with this id, its sealed fields, and its standing on
    /// `purpose` (latest consent answer, whether it objected): one round trip on PostgreSQL,
    /// one statement on both backends.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn subject_for_read(&self, id: &str, purpose: &str) -> Result<Option<ReadView>, StoreError> {
        if let Some(readers) = self.sqlite_direct() {
            return readers.read(|conn| read_view_native(conn, id, purpose));
        }
        let rows = sqlx::query(READ_VIEW_SQL.as_str()).bind(id).bind(purpose).fetch_all(self.pool()).await?;
        let (mut head, mut fields) = (None, Vec::with_capacity(rows.len()));
        for r in &rows {
            view_row(r, &mut head, &mut fields)?;
        }
        Ok(ReadView::assemble(head, fields))
    }

    /// One stored field of a subject: its category and sealed value.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn field_value(&self, subject_id: &str, field: &str) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        let row = sqlx::query("SELECT category, sealed FROM field_values WHERE subject_id = $1 AND field = $2")
            .bind(subject_id)
            .bind(field)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// The subject whose identifier of `kind` has blind index `blind`.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn subject_by_identifier(
        &self,
        kind: &str,
        blind: &[u8; 32],
    ) -> Result<Option<SubjectRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SUBJECT_COLUMNS} FROM subjects s JOIN subject_identifiers i ON i.subject_id = s.id \
             WHERE i.kind = $1 AND i.blind = $2"
        ))
        .bind(kind)
        .bind(blind.to_vec())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(subject_from).transpose()
    }

    /// Moves subject `subject_id`'s identifier of `kind` from blind index `old` to `new` (an
    /// index of the identifier's normal form replacing one an earlier version made). When
    /// `new` already names a subject, the old index stays as it is.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn reindex_identifier(
        &self,
        kind: &str,
        old: &[u8; 32],
        new: &[u8; 32],
        subject_id: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        let moved = sqlx::query(INSERT_IDENTIFIER)
            .bind(kind)
            .bind(new.to_vec())
            .bind(subject_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if moved == 1 {
            sqlx::query("DELETE FROM subject_identifiers WHERE kind = $1 AND blind = $2 AND subject_id = $3")
                .bind(kind)
                .bind(old.to_vec())
                .bind(subject_id)
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx.commit().await?)
    }

    /// Writes a whole collection atomically: the subject (when new), its
    /// identifier, the sealed fields (replacing earlier values) and the consents.
    #[tracing::instrument(level = "debug", skip_all, fields(point = w.point.as_str(), fields = w.fields.len()))]
    pub async fn write_collection(&self, w: &CollectionWrite) -> Result<(), CollectError> {
        let steps = collection_steps(w);
        let written = match self.sqlite_direct() {
            // A write may wait for another connection's lock: let the runtime move its other
            // tasks off this thread meanwhile.
            Some(direct) => blocking(|| direct.write(|conn| run_native(conn, &steps)))?,
            None => run_pool(self.pool(), &steps).await?,
        };
        written.into_result()
    }

    /// Crypto-shreds a subject: destroys its wrapped data key, its blind indexes
    /// and its ciphertext. Returns whether the subject existed and was not already shredded.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn shred(&self, subject_id: &str, at_us: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE subjects SET wrapped_key = NULL, kek_version = NULL, shredded_at_us = $2 WHERE id = $1 AND shredded_at_us IS NULL",
        )
        .bind(subject_id)
        .bind(at_us)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        sqlx::query("DELETE FROM subject_identifiers WHERE subject_id = $1").bind(subject_id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM field_values WHERE subject_id = $1").bind(subject_id).execute(&mut *tx).await?;
        // Object bytes stay sealed under the destroyed key; their records go, so nothing points at them.
        sqlx::query("DELETE FROM objects WHERE subject_id = $1").bind(subject_id).execute(&mut *tx).await?;
        tx.commit().await?;
        if done {
            self.purge_wal().await;
        }
        Ok(done)
    }

    /// On SQLite, copies the WAL back into the database file and truncates it, so the page
    /// images from before a shred (with the wrapped key and ciphertext) leave the disk:
    /// `secure_delete` has already zeroed them in the pages that replace them. The
    /// checkpoint waits for readers on older snapshots while it holds writers off, so it
    /// waits 50 ms at a time, at most 20 times, rather than the connection's 10 s; when
    /// readers still keep it from finishing, the old frames stay until a later checkpoint
    /// overwrites them, and a warning says so. PostgreSQL keeps old row versions until
    /// vacuumed, and WAL segments and backups as configured: there, a wrapped key outlives
    /// the shred until its key-encryption key is retired by `charter keys rotate`.
    async fn purge_wal(&self) {
        if self.backend() != crate::Backend::Sqlite {
            return;
        }
        let mut conn = match self.pool().acquire().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot checkpoint the WAL after a shred");
                return;
            }
        };
        // This connection waits briefly from here on, so it is closed afterwards (however this
        // ends) rather than going back to the pool.
        conn.close_on_drop();
        if let Err(e) = sqlx::query("PRAGMA busy_timeout = 50").execute(&mut *conn).await {
            tracing::warn!(error = %e, "cannot checkpoint the WAL after a shred");
            return;
        }
        let mut finished = false;
        for _ in 0..20 {
            // (busy, frames in the WAL, frames checkpointed): busy = 0 when it finished.
            match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA main.wal_checkpoint(TRUNCATE)")
                .fetch_one(&mut *conn)
                .await
            {
                Ok((0, _, _)) => {
                    finished = true;
                    break;
                }
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot checkpoint the WAL after a shred");
                    break;
                }
            }
        }
        if !finished {
            tracing::warn!(
                "the WAL may still hold pages from before a shred: readers kept the checkpoint from finishing"
            );
        }
    }

    /// Every wrapped data key not under key-encryption key version `current`: what a
    /// rotation to `current` still has to rewrap.
    pub async fn wrapped_keys_not_under(&self, current: u32) -> Result<Vec<(String, WrappedKey)>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SUBJECT_COLUMNS} FROM subjects s WHERE s.wrapped_key IS NOT NULL AND s.kek_version <> $1"
        ))
        .bind(i64::from(current))
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let s = subject_from(r)?;
            if let Some(w) = s.wrapped {
                out.push((s.id, w));
            }
        }
        Ok(out)
    }

    /// Retires key-encryption key versions `retired` and replaces wrapped data keys, in one
    /// transaction (all or none). From its commit on, no subject can be stored with a key
    /// wrapped under a retired version. On PostgreSQL the transaction holds off new
    /// subjects while it runs, so none slips in under a retired version unseen.
    pub async fn retire_keks_and_rewrap(
        &self,
        retired: &[u32],
        keys: &[(String, WrappedKey)],
        at_us: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        if self.backend() == crate::Backend::Postgres {
            sqlx::query("LOCK TABLE subjects IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
        }
        for v in retired {
            sqlx::query(
                "INSERT INTO retired_keks (version, retired_at_us) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING",
            )
            .bind(i64::from(*v))
            .bind(at_us)
            .execute(&mut *tx)
            .await?;
        }
        for (id, w) in keys {
            sqlx::query(
                "UPDATE subjects SET kek_version = $2, wrapped_key = $3 WHERE id = $1 AND wrapped_key IS NOT NULL",
            )
            .bind(id)
            .bind(i64::from(w.kek_version))
            .bind(w.sealed.clone())
            .execute(&mut *tx)
            .await?;
        }
        Ok(tx.commit().await?)
    }
}

/// An uploaded object's record (its bytes live, sealed, in object storage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    /// Opaque id.
    pub id: String,
    /// Its subject.
    pub subject_id: String,
    /// The point that collected it.
    pub point: String,
    /// The field it was collected as.
    pub field: String,
    /// Its category.
    pub category: String,
    /// The declared content type.
    pub content_type: String,
    /// Plaintext size in bytes.
    pub size: i64,
    /// Where it is in object storage.
    pub location: String,
    /// When, µs since the epoch.
    pub collected_at_us: i64,
}

impl Store {
    /// Records an uploaded object.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn insert_object(&self, o: &ObjectRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO objects (id, subject_id, point, field, category, content_type, size, location, collected_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&o.id)
        .bind(&o.subject_id)
        .bind(&o.point)
        .bind(&o.field)
        .bind(&o.category)
        .bind(&o.content_type)
        .bind(o.size)
        .bind(&o.location)
        .bind(o.collected_at_us)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// An object of a subject.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn object(&self, subject_id: &str, id: &str) -> Result<Option<ObjectRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, subject_id, point, field, category, content_type, size, location, collected_at_us FROM objects \
             WHERE subject_id = $1 AND id = $2",
        )
        .bind(subject_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(ObjectRecord {
                id: r.try_get(0)?,
                subject_id: r.try_get(1)?,
                point: r.try_get(2)?,
                field: r.try_get(3)?,
                category: r.try_get(4)?,
                content_type: r.try_get(5)?,
                size: r.try_get(6)?,
                location: r.try_get(7)?,
                collected_at_us: r.try_get(8)?,
            })
        })
        .transpose()
    }
}
