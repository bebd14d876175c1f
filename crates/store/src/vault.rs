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
    /// Its own key, wrapped under the subject's; `None` for a value an earlier version
    /// sealed with the subject's key itself, until charter reseals it at start.
    pub wrapped_key: Option<Vec<u8>>,
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
    /// Whether the subject's latest word on sale and sharing is an opt-out.
    pub opted_out: bool,
}

/// The subject's row of [`READ_VIEW_SQL`]: the subject, its latest consent answer (as
/// stored, 1 or 0), how many objections it made, and its latest answer on sale and
/// sharing.
type ViewHead = (SubjectRecord, Option<i64>, i64, Option<i64>);

impl ReadView {
    /// The view from the rows of [`READ_VIEW_SQL`], on either backend: `None` without the
    /// subject's row; the fields put in order by name.
    fn assemble(head: Option<ViewHead>, mut fields: Vec<StoredField>) -> Option<Self> {
        let (subject, consent, objected, sale) = head?;
        fields.sort_unstable_by(|a, b| a.field.cmp(&b.field));
        let opted_out = sale == Some(0);
        Some(Self { subject, fields, consent: consent.map(|g| g != 0), objected: objected > 0, opted_out })
    }

    /// The subject's standing for the decision on `purpose`.
    pub fn state(&self, purpose: &str) -> charter_core::access::SubjectState {
        charter_core::access::SubjectState {
            erased: self.subject.shredded_at_us.is_some(),
            restricted: self.subject.restricted_at_us.is_some(),
            consents: self.consent.map(|given| (purpose.to_owned(), given)).into_iter().collect(),
            objections: self.objected.then(|| purpose.to_owned()).into_iter().collect(),
            opted_out: self.opted_out,
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
    /// Profile values: what a profile point collects, and a password set anywhere.
    pub profile: Vec<FieldWrite>,
    /// The record a record point adds.
    pub record: Option<RecordWrite>,
    /// Consent answers: (purpose, given).
    pub consents: Vec<(String, bool)>,
    /// Objects collected with it (their bytes already in object storage).
    pub objects: Vec<ObjectRecord>,
    /// When.
    pub at_us: i64,
}

/// One sealed profile value of a collection, under a data key of its own.
#[derive(Debug)]
pub struct FieldWrite {
    /// Field name.
    pub field: String,
    /// Its category.
    pub category: String,
    /// Nonce and ciphertext, sealed with the value's own key.
    pub sealed: Vec<u8>,
    /// The value's own key, wrapped under the subject's key.
    pub wrapped_key: Vec<u8>,
    /// What happens when the subject already has a value for the field.
    pub mode: ValueMode,
    /// For an identifier (email, phone), its (kind, blind index): it names the subject
    /// for as long as the value is theirs.
    pub index: Option<(&'static str, [u8; 32])>,
}

/// What a profile value does to one the subject already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueMode {
    /// It fills the field only when empty; an existing value stays (and is reported kept).
    Fill,
    /// It replaces an existing value, whose ciphertext and key are gone with it.
    Replace,
    /// It must be the first (a password being set): a value already there, even one written
    /// a moment ago by a concurrent collection, refuses the whole write with
    /// [`CollectError::AlreadySet`].
    IfUnset,
}

/// The record a collection adds.
#[derive(Debug)]
pub struct RecordWrite {
    /// Its opaque id.
    pub id: String,
    /// Its own key, wrapped under the subject's key.
    pub wrapped_key: Vec<u8>,
    /// Its fields, sealed with its key.
    pub fields: Vec<RecordField>,
}

/// One sealed field of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordField {
    /// Field name.
    pub field: String,
    /// Its category.
    pub category: String,
    /// Nonce and ciphertext, sealed with the record's key.
    pub sealed: Vec<u8>,
}

/// What a collection wrote: the names of profile fields it left as they were, since
/// they had a value and the point may only fill them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Fields kept.
    pub kept: Vec<String>,
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
    /// An identifier field names another subject.
    #[error("the identifier names another subject")]
    IdentifierTaken(&'static str),
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
pub(crate) trait Columns {
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
pub(crate) fn required<T>(value: Option<T>, column: &'static str) -> Result<T, StoreError> {
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
        *head = Some((subject_from(r)?, r.int(6)?, r.int(7)?.unwrap_or(0), r.int(8)?));
        return Ok(());
    }
    fields.push(field_from(r, 9)?);
    Ok(())
}

/// The columns of a profile value the store selects: `field, category, point, sealed,
/// collected_at_us, wrapped_key`, in this order.
pub(crate) const FIELD_COLUMNS: &str = "field, category, point, sealed, collected_at_us, wrapped_key";

/// A profile value from [`FIELD_COLUMNS`] starting at column `at`.
pub(crate) fn field_from(r: &impl Columns, at: usize) -> Result<StoredField, StoreError> {
    Ok(StoredField {
        field: required(r.text(at)?, "field_values.field")?,
        category: required(r.text(at + 1)?, "field_values.category")?,
        point: required(r.text(at + 2)?, "field_values.point")?,
        sealed: required(r.blob(at + 3)?, "field_values.sealed")?,
        collected_at_us: required(r.int(at + 4)?, "field_values.collected_at_us")?,
        wrapped_key: r.blob(at + 5)?,
    })
}

/// One subject, its fields, and its latest consent and any objection for one purpose, in
/// one statement (one round trip on PostgreSQL, one snapshot on SQLite): the
/// subject's row (with its consent and objection, and no field) and one row per field
/// (with no subject id), so the subject's columns are sent once rather than on every
/// field row. The rows come in no set order: the reader tells them apart by the subject
/// id and puts the fields in order itself, rather than the server, whose sort was a
/// third of the statement's time.
/// The ledger's name for opt-outs of sale and sharing: no policy purpose can be named so.
pub const SALE_OR_SHARING: &str = charter_core::consent::SALE_OR_SHARING;

static READ_VIEW_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {SUBJECT_COLUMNS}, \
         (SELECT c.given FROM consent_events c WHERE c.subject_id = s.id AND c.purpose = $2 ORDER BY c.seq DESC LIMIT 1), \
         (SELECT COUNT(*) FROM objections o WHERE o.subject_id = s.id AND o.purpose = $2), \
         (SELECT c.given FROM consent_events c WHERE c.subject_id = s.id AND c.purpose = '{SALE_OR_SHARING}' \
          ORDER BY c.seq DESC LIMIT 1), \
         NULL, NULL, NULL, NULL, NULL, NULL \
         FROM subjects s WHERE s.id = $1 \
         UNION ALL \
         SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
         f.field, f.category, f.point, f.sealed, f.collected_at_us, f.wrapped_key \
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
    "INSERT INTO field_values (subject_id, field, category, point, sealed, collected_at_us, wrapped_key) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (subject_id, field) DO NOTHING";
const UPSERT_FIELD: &str =
    "INSERT INTO field_values (subject_id, field, category, point, sealed, collected_at_us, wrapped_key) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (subject_id, field) DO UPDATE SET \
     category = excluded.category, point = excluded.point, sealed = excluded.sealed, \
     collected_at_us = excluded.collected_at_us, wrapped_key = excluded.wrapped_key";
/// An identifier field's index: claimed for the subject, or kept when it already is
/// theirs; no row is written when it names another subject.
const CLAIM_IDENTIFIER: &str = "INSERT INTO subject_identifiers (kind, blind, subject_id) VALUES ($1, $2, $3) \
     ON CONFLICT (kind, blind) DO UPDATE SET subject_id = excluded.subject_id \
     WHERE subject_identifiers.subject_id = excluded.subject_id";
/// A replaced identifier no longer names the subject.
const DROP_OTHER_IDENTIFIERS: &str =
    "DELETE FROM subject_identifiers WHERE subject_id = $1 AND kind = $2 AND blind <> $3";
pub(crate) const INSERT_RECORD: &str =
    "INSERT INTO records (id, subject_id, point, collected_at_us, wrapped_key) VALUES ($1, $2, $3, $4, $5)";
pub(crate) const INSERT_RECORD_FIELD: &str =
    "INSERT INTO record_fields (record_id, field, category, sealed) VALUES ($1, $2, $3, $4)";
const INSERT_CONSENT: &str = "INSERT INTO consent_events (subject_id, purpose, given, point, at_us, source) \
     VALUES ($1, $2, $3, $4, $5, 'collection')";
const INSERT_OBJECT: &str = "INSERT INTO objects \
     (id, subject_id, point, field, category, content_type, size, location, collected_at_us, record_id, wrapped_key) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// Why a write of a collection stopped, short of a database error.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stop {
    /// A concurrent collection claimed the identifier first.
    IdentifierRace,
    /// The new subject's key is wrapped under this retired key-encryption key version.
    KekRetired(u32),
    /// A field that had to be unset has a value.
    AlreadySet,
    /// The subject was shredded.
    Erased,
    /// An identifier field of this kind names another subject.
    IdentifierTaken(&'static str),
    /// What the write was planned from changed meanwhile (a rewrite at start that
    /// another process made first).
    Changed,
}

impl From<Stop> for CollectError {
    fn from(stop: Stop) -> Self {
        match stop {
            Stop::IdentifierRace => Self::IdentifierRace,
            Stop::KekRetired(v) => Self::KekRetired(v),
            Stop::AlreadySet => Self::AlreadySet,
            Stop::Erased => Self::Erased,
            Stop::IdentifierTaken(kind) => Self::IdentifierTaken(kind),
            // A collection's steps never stop for this; were one to, it is a race to retry.
            Stop::Changed => Self::IdentifierRace,
        }
    }
}

/// A value bound to one of a write's statements, for either driver.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    Text(&'a str),
    Int(i64),
    Blob(&'a [u8]),
    Null,
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Self::Text(t) => ValueRef::Text(t.as_bytes()),
            Self::Int(i) => ValueRef::Integer(i),
            Self::Blob(b) => ValueRef::Blob(b),
            Self::Null => ValueRef::Null,
        }))
    }
}

/// What a step that writes no row means.
#[derive(Debug, Clone, Copy)]
enum OnNone<'a> {
    /// Nothing: carry on.
    Go,
    /// The write stops there, rolled back, with this outcome.
    Stop(Stop),
    /// Field `field` kept its value: carry on, skipping the next `skip` steps (its index).
    Kept { field: &'a str, skip: usize },
}

/// One statement of a write, and what it means when it writes no row.
pub(crate) struct Step<'a> {
    sql: &'static str,
    params: Vec<Param<'a>>,
    on_none: OnNone<'a>,
}

impl<'a> Step<'a> {
    pub(crate) fn go(sql: &'static str, params: Vec<Param<'a>>) -> Self {
        Self { sql, params, on_none: OnNone::Go }
    }

    pub(crate) fn or_stop(sql: &'static str, params: Vec<Param<'a>>, stop: Stop) -> Self {
        Self { sql, params, on_none: OnNone::Stop(stop) }
    }
}

/// The statements of a collection, in order, written once for both drivers: the subject
/// (inserted when new, unless its key-encryption key is retired; held when it exists,
/// unless it was erased), its identifier, its record, its profile values, its consents
/// and its objects.
fn collection_steps(w: &CollectionWrite) -> Vec<Step<'_>> {
    use Param::{Blob, Int, Text};
    let mut steps = Vec::with_capacity(8 + w.profile.len() * 3);
    steps.push(match &w.new_subject {
        Some(k) => Step::or_stop(
            INSERT_SUBJECT,
            vec![Text(&w.subject_id), Int(w.at_us), Int(i64::from(k.kek_version)), Blob(&k.sealed)],
            Stop::KekRetired(k.kek_version),
        ),
        None => Step::or_stop(GUARD_SUBJECT, vec![Text(&w.subject_id)], Stop::Erased),
    });
    if let Some((kind, blind)) = &w.identifier {
        // For a new subject, someone else created this person a moment ago: the caller
        // retries and finds them.
        let params = vec![Text(kind), Blob(blind), Text(&w.subject_id)];
        steps.push(match w.new_subject {
            Some(_) => Step::or_stop(INSERT_IDENTIFIER, params, Stop::IdentifierRace),
            None => Step::go(INSERT_IDENTIFIER, params),
        });
    }
    if let Some(r) = &w.record {
        let params = vec![Text(&r.id), Text(&w.subject_id), Text(&w.point), Int(w.at_us), Blob(&r.wrapped_key)];
        steps.push(Step::go(INSERT_RECORD, params));
        for f in &r.fields {
            let params = vec![Text(&r.id), Text(&f.field), Text(&f.category), Blob(&f.sealed)];
            steps.push(Step::go(INSERT_RECORD_FIELD, params));
        }
    }
    for f in &w.profile {
        profile_steps(w, f, &mut steps);
    }
    for (purpose, given) in &w.consents {
        let params = vec![Text(&w.subject_id), Text(purpose), Int(i64::from(*given)), Text(&w.point), Int(w.at_us)];
        steps.push(Step::go(INSERT_CONSENT, params));
    }
    for o in &w.objects {
        steps.push(Step::go(INSERT_OBJECT, object_params(o)));
    }
    steps
}

/// The statements of one profile value: a replaced identifier's other indexes dropped, the
/// value written, and its index claimed (only when the value was written).
fn profile_steps<'a>(w: &'a CollectionWrite, f: &'a FieldWrite, steps: &mut Vec<Step<'a>>) {
    use Param::{Blob, Int, Text};
    if let (ValueMode::Replace, Some((kind, blind))) = (f.mode, &f.index) {
        steps.push(Step::go(DROP_OTHER_IDENTIFIERS, vec![Text(&w.subject_id), Text(kind), Blob(blind)]));
    }
    let params = vec![
        Text(&w.subject_id),
        Text(&f.field),
        Text(&f.category),
        Text(&w.point),
        Blob(&f.sealed),
        Int(w.at_us),
        Blob(&f.wrapped_key),
    ];
    let skip = usize::from(f.index.is_some());
    steps.push(match f.mode {
        // A password set meanwhile by a concurrent collection refuses this write.
        ValueMode::IfUnset => Step::or_stop(INSERT_FIELD_IF_UNSET, params, Stop::AlreadySet),
        ValueMode::Fill => Step { sql: INSERT_FIELD_IF_UNSET, params, on_none: OnNone::Kept { field: &f.field, skip } },
        ValueMode::Replace => Step::go(UPSERT_FIELD, params),
    });
    if let Some((kind, blind)) = &f.index {
        let params = vec![Text(kind), Blob(blind), Text(&w.subject_id)];
        steps.push(Step::or_stop(CLAIM_IDENTIFIER, params, Stop::IdentifierTaken(kind)));
    }
}

/// An object's row, as [`INSERT_OBJECT`] binds it.
fn object_params(o: &ObjectRecord) -> Vec<Param<'_>> {
    use Param::{Blob, Int, Null, Text};
    vec![
        Text(&o.id),
        Text(&o.subject_id),
        Text(&o.point),
        Text(&o.field),
        Text(&o.category),
        Text(&o.content_type),
        Int(o.size),
        Text(&o.location),
        Int(o.collected_at_us),
        o.record_id.as_deref().map_or(Null, Text),
        o.wrapped_key.as_deref().map_or(Null, Blob),
    ]
}

/// Runs `steps` in one `BEGIN IMMEDIATE` transaction on a direct SQLite connection.
fn run_native(conn: &mut rusqlite::Connection, steps: &[Step<'_>]) -> Result<Result<Written, Stop>, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut outcome = Outcome::default();
    while let Some(s) = outcome.next(steps) {
        let written = tx.prepare_cached(s.sql)?.execute(rusqlite::params_from_iter(&s.params))?;
        if let Some(stop) = outcome.wrote(s, written as u64) {
            return Ok(Err(stop)); // dropping `tx` rolls back
        }
    }
    tx.commit()?;
    Ok(Ok(outcome.written))
}

/// Runs `steps` in one transaction through the pool.
pub(crate) async fn run_pool(pool: &sqlx::AnyPool, steps: &[Step<'_>]) -> Result<Result<Written, Stop>, StoreError> {
    let mut tx = pool.begin().await?;
    let mut outcome = Outcome::default();
    while let Some(s) = outcome.next(steps) {
        let written = bound(s.sql, &s.params).execute(&mut *tx).await?.rows_affected();
        if let Some(stop) = outcome.wrote(s, written) {
            tx.rollback().await?;
            return Ok(Err(stop));
        }
    }
    tx.commit().await?;
    Ok(Ok(outcome.written))
}

/// Statement `sql` with `params` bound, for the pool.
fn bound<'q>(sql: &'q str, params: &[Param<'_>]) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut q = sqlx::query(sql);
    for p in params {
        q = match *p {
            Param::Text(t) => q.bind(t.to_owned()),
            Param::Int(i) => q.bind(i),
            Param::Blob(b) => q.bind(b.to_vec()),
            Param::Null => q.bind(Option::<String>::None),
        };
    }
    q
}

/// Where a run of steps is, and what it wrote so far: one walk for both drivers.
#[derive(Default)]
struct Outcome {
    at: usize,
    written: Written,
}

impl Outcome {
    /// The next step to run.
    fn next<'s, 'a>(&mut self, steps: &'s [Step<'a>]) -> Option<&'s Step<'a>> {
        let s = steps.get(self.at)?;
        self.at += 1;
        Some(s)
    }

    /// Takes in that step `s` wrote `rows` rows; `Some` stops the write.
    fn wrote(&mut self, s: &Step<'_>, rows: u64) -> Option<Stop> {
        match (rows, s.on_none) {
            (0, OnNone::Stop(stop)) => Some(stop),
            (0, OnNone::Kept { field, skip }) => {
                self.written.kept.push(field.to_owned());
                self.at += skip;
                None
            }
            _ => None,
        }
    }
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

    /// Ids of subjects not erased, in order, those after `after` ("" for the first page),
    /// at most `limit`: a walk over every live subject a page at a time.
    pub async fn live_subjects(&self, after: &str, limit: u32) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT id FROM subjects WHERE shredded_at_us IS NULL AND id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?)
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

    /// One profile value of a subject.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn field_value(&self, subject_id: &str, field: &str) -> Result<Option<StoredField>, StoreError> {
        let row =
            sqlx::query(&format!("SELECT {FIELD_COLUMNS} FROM field_values WHERE subject_id = $1 AND field = $2"))
                .bind(subject_id)
                .bind(field)
                .fetch_optional(self.pool())
                .await?;
        row.map(|r| field_from(&r, 0)).transpose()
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

    /// Writes a whole collection atomically: the subject (when new), its identifier, its
    /// profile values (filling or replacing as each says), its record and its consents.
    #[tracing::instrument(level = "debug", skip_all, fields(point = w.point.as_str(), record = w.record.is_some()))]
    pub async fn write_collection(&self, w: &CollectionWrite) -> Result<Written, CollectError> {
        let steps = collection_steps(w);
        let written = match self.sqlite_direct() {
            // A write may wait for another connection's lock: let the runtime move its other
            // tasks off this thread meanwhile.
            Some(direct) => blocking(|| direct.write(|conn| run_native(conn, &steps)))?,
            None => run_pool(self.pool(), &steps).await?,
        };
        let written = written?;
        // A replaced value's ciphertext and key leave the disk with it.
        if w.profile.iter().any(|f| f.mode == ValueMode::Replace) {
            self.purge_wal().await;
        }
        Ok(written)
    }

    /// Crypto-shreds a subject: destroys its wrapped data key, its blind indexes and its
    /// profile values, and voids its unsent messages, in one short transaction whatever the
    /// number of its records.
    /// Everything else of the subject (records, their keys, objects) was sealed under
    /// keys the subject's key wraps, so nothing of it opens from here on;
    /// [`Store::purge_erased`] deletes it afterwards. Returns whether the subject existed
    /// and was not already shredded.
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
        sqlx::query(crate::jobs::VOID_SUBJECT_JOBS).bind(subject_id).bind(Vec::<u8>::new()).execute(&mut *tx).await?;
        sqlx::query(crate::consents::FORGET_CONSENT_EVIDENCE).bind(subject_id).execute(&mut *tx).await?;
        tx.commit().await?;
        if done {
            self.purge_wal().await;
        }
        Ok(done)
    }

    /// Deletes what is left of an erased subject (its records, their fields and its
    /// objects' rows), `batch` records per transaction so that writers are never held
    /// long. Object bytes stay in object storage, sealed under destroyed keys. Returns how
    /// many records went; a subject not erased is left alone.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn purge_erased(&self, subject_id: &str, batch: u32) -> Result<u64, StoreError> {
        let mut purged = 0;
        loop {
            let mut tx = self.pool().begin().await?;
            let ids: Vec<String> = sqlx::query_scalar(
                "SELECT r.id FROM records r JOIN subjects s ON s.id = r.subject_id \
                 WHERE r.subject_id = $1 AND s.shredded_at_us IS NOT NULL LIMIT $2",
            )
            .bind(subject_id)
            .bind(i64::from(batch))
            .fetch_all(&mut *tx)
            .await?;
            for id in &ids {
                sqlx::query("DELETE FROM objects WHERE record_id = $1").bind(id).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM record_fields WHERE record_id = $1").bind(id).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM records WHERE id = $1").bind(id).execute(&mut *tx).await?;
            }
            sqlx::query(
                "DELETE FROM objects WHERE subject_id = $1 \
                 AND EXISTS (SELECT 1 FROM subjects s WHERE s.id = $1 AND s.shredded_at_us IS NOT NULL)",
            )
            .bind(subject_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            purged += ids.len() as u64;
            if ids.len() < batch as usize {
                break;
            }
        }
        if purged > 0 {
            self.purge_wal().await;
        }
        Ok(purged)
    }

    /// Erased subjects that still have records or objects: what [`Store::purge_erased`]
    /// did not finish (a process stopped meanwhile).
    pub async fn erased_with_leftovers(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT s.id FROM subjects s WHERE s.shredded_at_us IS NOT NULL AND \
             (EXISTS (SELECT 1 FROM records r WHERE r.subject_id = s.id) \
              OR EXISTS (SELECT 1 FROM objects o WHERE o.subject_id = s.id))",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// On SQLite, copies the WAL back into the database file and truncates it, so the page
    /// images from before a shred or a replaced value (with the wrapped key and
    /// ciphertext) leave the disk:
    /// `secure_delete` has already zeroed them in the pages that replace them. The
    /// checkpoint waits for readers on older snapshots while it holds writers off, so it
    /// waits 50 ms at a time, at most 20 times, rather than the connection's 10 s; when
    /// readers still keep it from finishing, the old frames stay until a later checkpoint
    /// overwrites them, and a warning says so. PostgreSQL keeps old row versions until
    /// vacuumed, and WAL segments and backups as configured: there, a wrapped key outlives
    /// the shred until its key-encryption key is retired by `charter keys rotate`.
    pub(crate) async fn purge_wal(&self) {
        if self.backend() != crate::Backend::Sqlite {
            return;
        }
        let mut conn = match self.pool().acquire().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot checkpoint the WAL after a shred or a replaced value");
                return;
            }
        };
        // This connection waits briefly from here on, so it is closed afterwards (however this
        // ends) rather than going back to the pool.
        conn.close_on_drop();
        if let Err(e) = sqlx::query("PRAGMA busy_timeout = 50").execute(&mut *conn).await {
            tracing::warn!(error = %e, "cannot checkpoint the WAL after a shred or a replaced value");
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
                    tracing::warn!(error = %e, "cannot checkpoint the WAL after a shred or a replaced value");
                    break;
                }
            }
        }
        if !finished {
            tracing::warn!(
                "the WAL may still hold pages from before a shred or a replaced value: readers kept the checkpoint from finishing"
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
    /// The record it was collected with; `None` at a profile point.
    pub record_id: Option<String>,
    /// Its own key, wrapped under the subject's; `None` for an object an earlier version
    /// sealed with the subject's key itself.
    pub wrapped_key: Option<Vec<u8>>,
}

/// The columns of an object, in [`ObjectRecord`]'s order.
pub(crate) const OBJECT_COLUMNS: &str =
    "o.id, o.subject_id, o.point, o.field, o.category, o.content_type, o.size, o.location, o.collected_at_us, \
     o.record_id, o.wrapped_key";

/// An object from the columns of [`OBJECT_COLUMNS`], from position `at` on.
pub(crate) fn object_from(r: &impl Columns, at: usize) -> Result<ObjectRecord, StoreError> {
    Ok(ObjectRecord {
        id: required(r.text(at)?, "objects.id")?,
        subject_id: required(r.text(at + 1)?, "objects.subject_id")?,
        point: required(r.text(at + 2)?, "objects.point")?,
        field: required(r.text(at + 3)?, "objects.field")?,
        category: required(r.text(at + 4)?, "objects.category")?,
        content_type: required(r.text(at + 5)?, "objects.content_type")?,
        size: required(r.int(at + 6)?, "objects.size")?,
        location: required(r.text(at + 7)?, "objects.location")?,
        collected_at_us: required(r.int(at + 8)?, "objects.collected_at_us")?,
        record_id: r.text(at + 9)?,
        wrapped_key: r.blob(at + 10)?,
    })
}

impl Store {
    /// Records an uploaded object.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn insert_object(&self, o: &ObjectRecord) -> Result<(), StoreError> {
        bound(INSERT_OBJECT, &object_params(o)).execute(self.pool()).await?;
        Ok(())
    }

    /// An object of a subject.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn object(&self, subject_id: &str, id: &str) -> Result<Option<ObjectRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {OBJECT_COLUMNS} FROM objects o WHERE o.subject_id = $1 AND o.id = $2"))
            .bind(subject_id)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(|r| object_from(r, 0)).transpose()
    }
}
