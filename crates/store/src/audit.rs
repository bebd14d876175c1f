//! Writing and verifying the audit chain.
//!
//! One writer task per process owns the chain's head. Callers hand it events
//! over a channel; it takes everything waiting (up to [`MAX_BATCH`]), chains
//! the events in memory and writes them with one multi-row `INSERT`. The
//! primary key on `seq` is what keeps several processes on one database from
//! forking the chain: a writer whose head went stale gets a unique violation,
//! reloads the head and chains its batch again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use charter_core::audit::{self, AuditEvent, ChainBreak, ChainVerifier, Entry, Hash};
use charter_vault::{CheckpointSigner, CheckpointVerifier};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row as _};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::Store;

/// Most events written by one statement.
pub const MAX_BATCH: usize = 64;
/// A checkpoint is signed at least every this many entries…
const CHECKPOINT_EVERY: i64 = 1024;
/// …and at least this often while entries arrive.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// How often a writer retries after losing a race to another process.
const MAX_RACES: usize = 1000;

/// Why an append failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// The database refused the write.
    #[error("the audit chain could not be written: {0}")]
    Write(String),
    /// The writer task is gone (the process is shutting down).
    #[error("the audit writer has stopped")]
    Stopped,
}

enum Command {
    Append(Vec<AuditEvent>, oneshot::Sender<Result<i64, AuditError>>),
    Checkpoint(oneshot::Sender<Result<(), AuditError>>),
    Close(oneshot::Sender<Result<(), AuditError>>),
}

/// A handle to the process's audit writer. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Command>,
    appended: Arc<AtomicU64>,
}

impl AuditLog {
    /// Starts the writer. It runs until every handle is dropped, then signs a final checkpoint.
    pub fn start(store: &Store, signer: CheckpointSigner) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(4096);
        let appended = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            pool: store.pool().clone(),
            signer,
            head: None,
            last_checkpoint: (0, Instant::now()),
            appended: appended.clone(),
        };
        let task = tokio::spawn(writer.run(rx));
        (Self { tx, appended }, task)
    }

    /// Appends an event; returns its sequence number once it is durable in the database.
    pub async fn append(&self, event: AuditEvent) -> Result<i64, AuditError> {
        self.append_all(vec![event]).await
    }

    /// Appends several events as consecutive entries, written together; returns
    /// the first one's sequence number once all are durable.
    pub async fn append_all(&self, events: Vec<AuditEvent>) -> Result<i64, AuditError> {
        if events.is_empty() {
            return Err(AuditError::Write("nothing to append".into()));
        }
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Append(events, reply)).await.map_err(|_| AuditError::Stopped)?;
        rx.await.map_err(|_| AuditError::Stopped)?
    }

    /// Signs a checkpoint over the current head now.
    pub async fn checkpoint(&self) -> Result<(), AuditError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Checkpoint(reply)).await.map_err(|_| AuditError::Stopped)?;
        rx.await.map_err(|_| AuditError::Stopped)?
    }

    /// Writes what is pending, signs a final checkpoint and stops the writer,
    /// whatever other handles remain; later appends fail with [`AuditError::Stopped`].
    pub async fn close(&self) -> Result<(), AuditError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Close(reply)).await.map_err(|_| AuditError::Stopped)?;
        rx.await.map_err(|_| AuditError::Stopped)?
    }

    /// Entries this process has appended, for metrics.
    pub fn appended(&self) -> u64 {
        self.appended.load(Ordering::Relaxed)
    }
}

struct Writer {
    pool: AnyPool,
    signer: CheckpointSigner,
    head: Option<(i64, Hash)>,
    last_checkpoint: (i64, Instant),
    appended: Arc<AtomicU64>,
}

/// The current time in microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn is_race(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let first = tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => cmd,
                    None => break,
                },
                _ = tick.tick() => {
                    if let Err(e) = self.checkpoint(false).await {
                        tracing::warn!(error = %e, "audit checkpoint failed");
                    }
                    continue;
                }
            };
            let mut events = Vec::new();
            let mut replies = Vec::new();
            let mut cmd = Some(first);
            while let Some(c) = cmd.take() {
                match c {
                    Command::Append(evs, reply) => {
                        replies.push((evs.len(), reply));
                        events.extend(evs);
                    }
                    Command::Checkpoint(reply) => {
                        // Write what came before, then sign over it.
                        self.flush(&mut events, &mut replies).await;
                        let _ = reply.send(self.checkpoint(true).await);
                    }
                    Command::Close(reply) => {
                        self.flush(&mut events, &mut replies).await;
                        let _ = reply.send(self.checkpoint(true).await);
                        return;
                    }
                }
                if events.len() < MAX_BATCH {
                    cmd = rx.try_recv().ok();
                }
            }
            self.flush(&mut events, &mut replies).await;
            if let Err(e) = self.checkpoint(false).await {
                tracing::warn!(error = %e, "audit checkpoint failed");
            }
        }
        if let Err(e) = self.checkpoint(true).await {
            tracing::warn!(error = %e, "final audit checkpoint failed");
        }
    }

    async fn flush(
        &mut self,
        events: &mut Vec<AuditEvent>,
        replies: &mut Vec<(usize, oneshot::Sender<Result<i64, AuditError>>)>,
    ) {
        if events.is_empty() {
            return;
        }
        let result = self.write(events).await;
        let n = events.len();
        match result {
            Ok(first_seq) => {
                self.appended.fetch_add(n as u64, Ordering::Relaxed);
                let mut seq = first_seq;
                for (count, reply) in replies.drain(..) {
                    let _ = reply.send(Ok(seq));
                    seq += count as i64;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "audit append failed");
                let err = AuditError::Write(e.to_string());
                for (_, reply) in replies.drain(..) {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
        events.clear();
    }

    async fn load_head(&mut self) -> Result<Option<(i64, Hash)>, sqlx::Error> {
        let row =
            sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetch_optional(&self.pool).await?;
        Ok(match row {
            Some(r) => Some((r.try_get::<i64, _>(0)?, to_hash(r.try_get::<Vec<u8>, _>(1)?)?)),
            None => None,
        })
    }

    /// Chains and inserts `events`; returns the first one's sequence number.
    async fn write(&mut self, events: &[AuditEvent]) -> Result<i64, sqlx::Error> {
        for _ in 0..MAX_RACES {
            let head = match self.head {
                Some(h) => Some(h),
                None => self.load_head().await?,
            };
            let at = now_us();
            let mut entries = Vec::with_capacity(events.len());
            let mut h = head;
            for ev in events {
                let e = audit::chain(h, at, ev.clone());
                h = Some((e.seq, e.hash));
                entries.push(e);
            }
            match insert(&self.pool, &entries).await {
                Ok(()) => {
                    self.head = h;
                    return Ok(entries[0].seq);
                }
                Err(e) if is_race(&e) => {
                    // Another process appended first: start again from its head.
                    self.head = None;
                    tokio::task::yield_now().await;
                }
                Err(e) => {
                    self.head = None;
                    return Err(e);
                }
            }
        }
        Err(sqlx::Error::Protocol("lost the race for the audit head too many times".into()))
    }

    async fn checkpoint(&mut self, force: bool) -> Result<(), AuditError> {
        let Some((seq, hash)) = self.head else { return Ok(()) };
        let (last_seq, last_at) = self.last_checkpoint;
        let due = seq - last_seq >= CHECKPOINT_EVERY || last_at.elapsed() >= CHECKPOINT_INTERVAL;
        if seq <= last_seq || !(force || due) {
            return Ok(());
        }
        let signature = self.signer.sign(&audit::checkpoint_message(seq, &hash));
        sqlx::query(
            "INSERT INTO audit_checkpoint (seq, hash, at_us, key_id, signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING",
        )
        .bind(seq)
        .bind(hash.to_vec())
        .bind(now_us())
        .bind(self.signer.public_key_hex())
        .bind(signature.to_vec())
        .execute(&self.pool)
        .await
        .map_err(|e| AuditError::Write(e.to_string()))?;
        self.last_checkpoint = (seq, Instant::now());
        Ok(())
    }
}

const COLUMNS: &str =
    "INSERT INTO audit_log (seq, at_us, actor, action, subject, purpose, result, detail, prev_hash, hash) VALUES ";

/// Inserts entries: one multi-row statement per [`MAX_BATCH`] entries, in one
/// transaction when there is more than one statement.
async fn insert(pool: &AnyPool, entries: &[Entry]) -> Result<(), sqlx::Error> {
    if entries.len() <= MAX_BATCH {
        let sql = insert_sql(entries.len());
        return bind_entries(sqlx::query(&sql), entries).execute(pool).await.map(|_| ());
    }
    let mut tx = pool.begin().await?;
    for chunk in entries.chunks(MAX_BATCH) {
        let sql = insert_sql(chunk.len());
        bind_entries(sqlx::query(&sql), chunk).execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// `INSERT ... VALUES (...), (...)` for `rows` entries.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(COLUMNS.len() + rows * 64);
    sql.push_str(COLUMNS);
    for i in 0..rows {
        let b = i * 10;
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for j in 1..=10 {
            if j > 1 {
                sql.push(',');
            }
            sql.push('$');
            sql.push_str(&(b + j).to_string());
        }
        sql.push(')');
    }
    sql
}

fn bind_entries<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    entries: &[Entry],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for e in entries {
        q = q
            .bind(e.seq)
            .bind(e.at_us)
            .bind(e.event.actor.clone())
            .bind(e.event.action.clone())
            .bind(e.event.subject.clone())
            .bind(e.event.purpose.clone())
            .bind(e.event.result.clone())
            .bind(e.event.detail.clone())
            .bind(e.prev_hash.to_vec())
            .bind(e.hash.to_vec());
    }
    q
}

fn to_hash(bytes: Vec<u8>) -> Result<Hash, sqlx::Error> {
    Hash::try_from(bytes.as_slice()).map_err(|_| sqlx::Error::Decode("an audit hash is not 32 bytes".into()))
}

pub(crate) fn entry_from_row(r: &AnyRow) -> Result<Entry, sqlx::Error> {
    Ok(Entry {
        seq: r.try_get(0)?,
        at_us: r.try_get(1)?,
        event: AuditEvent {
            actor: r.try_get(2)?,
            action: r.try_get(3)?,
            subject: r.try_get(4)?,
            purpose: r.try_get(5)?,
            result: r.try_get(6)?,
            detail: r.try_get(7)?,
        },
        prev_hash: to_hash(r.try_get(8)?)?,
        hash: to_hash(r.try_get(9)?)?,
    })
}

/// Every entry, in chain order.
pub(crate) const SELECT_ENTRIES: &str =
    "SELECT seq, at_us, actor, action, subject, purpose, result, detail, prev_hash, hash FROM audit_log ORDER BY seq";

/// Entries read per page by [`verify`].
const PAGE: i64 = 10_000;

/// The entries from `from` on, at most [`PAGE`] of them. The first page starts at
/// `i64::MIN` so that rows slipped in below 1 are seen, and refused, too.
async fn read_page(pool: AnyPool, from: i64) -> Result<Vec<Entry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seq, at_us, actor, action, subject, purpose, result, detail, prev_hash, hash FROM audit_log \
         WHERE seq >= $1 ORDER BY seq LIMIT $2",
    )
    .bind(from)
    .bind(PAGE)
    .fetch_all(&pool)
    .await?;
    rows.iter().map(entry_from_row).collect()
}

/// What a successful verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries checked.
    pub entries: i64,
    /// Signed checkpoints checked.
    pub checkpoints: usize,
    /// The latest checkpoint's entry.
    pub last_checkpoint: Option<i64>,
    /// Entries after the latest checkpoint (covered by the hash chain, not yet by a signature).
    pub unsigned_tail: i64,
}

/// Why verification failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The chain itself is broken.
    #[error(transparent)]
    Broken(#[from] ChainBreak),
    /// A checkpoint does not hold.
    #[error("checkpoint at entry {seq} does not hold: {reason}")]
    Checkpoint {
        /// The entry the checkpoint covers.
        seq: i64,
        /// What is wrong.
        reason: String,
    },
    /// Reading failed.
    #[error("cannot read the audit chain")]
    Read(#[from] sqlx::Error),
}

impl VerifyError {
    /// The first entry at fault, when there is one.
    pub fn seq(&self) -> Option<i64> {
        match self {
            Self::Broken(b) => Some(b.seq),
            Self::Checkpoint { seq, .. } => Some(*seq),
            Self::Read(_) => None,
        }
    }
}

/// Checks entries in order against the chain rules and the signed checkpoints.
struct Checker {
    chain: ChainVerifier,
    checkpoints: BTreeMap<i64, (Vec<u8>, Vec<u8>)>,
    verifier: CheckpointVerifier,
    checked_checkpoints: usize,
}

impl Checker {
    fn push(&mut self, e: &Entry) -> Result<(), VerifyError> {
        self.chain.push(e)?;
        if let Some((hash, sig)) = self.checkpoints.get(&e.seq) {
            check_checkpoint(&self.verifier, e.seq, &e.hash, hash, sig)?;
            self.checked_checkpoints += 1;
        }
        Ok(())
    }

    fn finish(self) -> Result<VerifyReport, VerifyError> {
        let last = self.chain.checked();
        if let Some((&seq, _)) = self.checkpoints.range(last + 1..).next() {
            return Err(ChainBreak {
                seq: last + 1,
                reason: format!(
                    "a signed checkpoint covers entry {seq}, but the chain ends at {last}: entries were deleted from the end"
                ),
            }
            .into());
        }
        let last_checkpoint = self.checkpoints.keys().next_back().copied();
        Ok(VerifyReport {
            entries: last,
            checkpoints: self.checked_checkpoints,
            last_checkpoint,
            unsigned_tail: last - last_checkpoint.unwrap_or(0),
        })
    }
}

/// Checks the whole chain and every checkpoint's signature.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn verify(store: &Store, verifier: &CheckpointVerifier) -> Result<VerifyReport, VerifyError> {
    let mut checkpoints = BTreeMap::new();
    let rows =
        sqlx::query("SELECT seq, hash, signature FROM audit_checkpoint ORDER BY seq").fetch_all(store.pool()).await?;
    for r in rows {
        checkpoints.insert(r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?));
    }
    let mut checker =
        Checker { chain: ChainVerifier::default(), checkpoints, verifier: verifier.clone(), checked_checkpoints: 0 };
    if let Some(file) = store.sqlite_file() {
        let file = file.to_owned();
        return tokio::task::spawn_blocking(move || {
            verify_sqlite_file(&file, &mut checker)?;
            checker.finish()
        })
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("verifier thread failed: {e}")))?;
    }
    // Pages are read by keyset and decoded in a task of their own while the
    // previous page is hashed, so reading and hashing overlap.
    let mut next = tokio::spawn(read_page(store.pool().clone(), i64::MIN));
    loop {
        let page = next.await.map_err(|e| sqlx::Error::Protocol(format!("page reader failed: {e}")))??;
        let Some(last) = page.last() else { break };
        next = tokio::spawn(read_page(store.pool().clone(), last.seq.saturating_add(1)));
        for e in &page {
            checker.push(e)?;
        }
    }
    checker.finish()
}

/// Reads a SQLite chain straight from the file with one read-only connection:
/// a plain row cursor is an order of magnitude cheaper per row than the async pool.
fn verify_sqlite_file(file: &std::path::Path, checker: &mut Checker) -> Result<(), VerifyError> {
    use rusqlite::OpenFlags;
    let io = |e: rusqlite::Error| VerifyError::Read(sqlx::Error::Protocol(format!("reading the SQLite chain: {e}")));
    let conn =
        rusqlite::Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(io)?;
    // A sequential scan of the whole table: map the file rather than copy it page by page.
    conn.pragma_update(None, "mmap_size", 1i64 << 30).map_err(io)?;
    let mut stmt = conn.prepare(SELECT_ENTRIES).map_err(io)?;
    let mut rows = stmt.query([]).map_err(io)?;
    // One entry is reused for every row: its strings keep their capacity, so
    // the loop does not allocate.
    let mut e =
        Entry { seq: 0, at_us: 0, event: AuditEvent::new("", "", ""), prev_hash: audit::GENESIS, hash: audit::GENESIS };
    let bad =
        |what: &str| VerifyError::Read(sqlx::Error::Decode(format!("audit column {what} has the wrong type").into()));
    while let Some(r) = rows.next().map_err(io)? {
        let text = |i: usize, into: &mut String| -> Result<(), VerifyError> {
            into.clear();
            into.push_str(r.get_ref(i).map_err(io)?.as_str().map_err(|_| bad("text"))?);
            Ok(())
        };
        let opt_text = |i: usize, into: &mut Option<String>| -> Result<(), VerifyError> {
            match r.get_ref(i).map_err(io)?.as_str_or_null().map_err(|_| bad("text"))? {
                None => *into = None,
                Some(v) => {
                    let s = into.get_or_insert_with(String::new);
                    s.clear();
                    s.push_str(v);
                }
            }
            Ok(())
        };
        let hash = |i: usize, into: &mut Hash| -> Result<(), VerifyError> {
            let b = r.get_ref(i).map_err(io)?.as_blob().map_err(|_| bad("hash"))?;
            *into = Hash::try_from(b).map_err(|_| bad("hash"))?;
            Ok(())
        };
        e.seq = r.get(0).map_err(io)?;
        e.at_us = r.get(1).map_err(io)?;
        text(2, &mut e.event.actor)?;
        text(3, &mut e.event.action)?;
        opt_text(4, &mut e.event.subject)?;
        opt_text(5, &mut e.event.purpose)?;
        text(6, &mut e.event.result)?;
        text(7, &mut e.event.detail)?;
        hash(8, &mut e.prev_hash)?;
        hash(9, &mut e.hash)?;
        checker.push(&e)?;
    }
    Ok(())
}

fn check_checkpoint(
    v: &CheckpointVerifier,
    seq: i64,
    entry_hash: &Hash,
    cp_hash: &[u8],
    sig: &[u8],
) -> Result<(), VerifyError> {
    if cp_hash != entry_hash {
        return Err(VerifyError::Checkpoint { seq, reason: "it signs a different hash than the entry has".into() });
    }
    if !v.verify(&audit::checkpoint_message(seq, entry_hash), sig) {
        return Err(VerifyError::Checkpoint {
            seq,
            reason: "its signature is not valid for this data directory's key".into(),
        });
    }
    Ok(())
}
