//! Writing and verifying the audit chain.
//!
//! One writer per process owns the chain's head. Appenders hand it their events over a
//! channel. It takes everything waiting (up to [`MAX_BATCH`] events), chains the events
//! in memory and writes them with one multi-row `INSERT`, one commit for the batch: the
//! appends that arrive while one commit is under way are the next batch (group commit).
//! The primary key on `seq` is what keeps several processes on one database from forking
//! the chain: a writer whose head went stale gets a unique violation, reloads the head
//! and chains its batch again.
//!
//! The writer's loop is written once, over a [`Sink`]: on a SQLite file the writer's own
//! `rusqlite` connection (the loop runs on a thread of its own, where a commit may
//! block), on PostgreSQL a connection of its own taken from the pool (the loop is a task).

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

use crate::{Store, StoreError};

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
    /// Sign a checkpoint if one is due.
    Tick,
    Checkpoint(oneshot::Sender<Result<(), AuditError>>),
    Close(oneshot::Sender<Result<(), AuditError>>),
}

/// A handle to the process's audit writer. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Command>,
    counters: Arc<Counters>,
}

/// What the writer has done, for metrics.
#[derive(Default)]
struct Counters {
    /// Entries written.
    entries: AtomicU64,
    /// Commits that wrote them (a batch's appends share one commit).
    batches: AtomicU64,
    /// Appends (`append`/`append_all` calls) written.
    appends: AtomicU64,
}

impl AuditLog {
    /// Starts the writer. It runs until every handle is dropped (or [`AuditLog::close`]),
    /// then signs a final checkpoint.
    ///
    /// On a SQLite file the writer has a connection of its own to the audit file, and a
    /// thread (it blocks while it commits); on PostgreSQL it is a task with a connection
    /// of its own, taken from the pool.
    pub fn start(store: &Store, signer: CheckpointSigner) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(4096);
        let counters = Arc::new(Counters::default());
        spawn_ticker(tx.downgrade());
        let task = match SqliteSink::open(store) {
            Some(sink) => {
                let writer = Writer::new(sink, signer, counters.clone());
                let runtime = tokio::runtime::Handle::current();
                tokio::task::spawn_blocking(move || runtime.block_on(writer.run(rx)))
            }
            None => {
                let sink = Held { pool: store.pool().clone(), conn: None };
                tokio::spawn(Writer::new(sink, signer, counters.clone()).run(rx))
            }
        };
        (Self { tx, counters }, task)
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
        self.counters.entries.load(Ordering::Relaxed)
    }

    /// Commits this process has written those entries in, for metrics.
    pub fn batches(&self) -> u64 {
        self.counters.batches.load(Ordering::Relaxed)
    }

    /// Appends (calls, each of one or more entries) this process has written, for metrics.
    pub fn appends(&self) -> u64 {
        self.counters.appends.load(Ordering::Relaxed)
    }
}

/// Checkpoints are due at least every [`CHECKPOINT_INTERVAL`] while entries arrive: a
/// task sends the writer a tick that often, until the writer's channel closes.
fn spawn_ticker(ticker: mpsc::WeakSender<Command>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(tx) = ticker.upgrade() else { break };
            if tx.send(Command::Tick).await.is_err() {
                break;
            }
        }
    });
}

/// Where the writer puts entries: what its loop asks of the database.
trait Sink {
    /// The chain's last entry, as stored.
    async fn head(&mut self) -> Result<Option<(i64, Hash)>, WriteError>;
    /// Inserts placed entries, in one commit.
    async fn insert(&mut self, entries: &[Entry]) -> Result<(), WriteError>;
    /// Stores a signed checkpoint.
    async fn checkpoint(&mut self, seq: i64, hash: &Hash, key_id: &str, signature: &[u8]) -> Result<(), WriteError>;
    /// Lets go of the connection, when the writer stops.
    async fn close(&mut self);
}

/// The writer's own connection to a SQLite audit file, and the thread that keeps the WAL
/// short while the writer runs.
struct SqliteSink {
    conn: rusqlite::Connection,
    /// The store's closed flag.
    closed: crate::native::Closed,
    _wal: crate::native::Checkpointer,
}

impl SqliteSink {
    /// The sink for a SQLite file store; `None` on PostgreSQL, or when the connection
    /// cannot be opened (the writer then goes through the pool).
    fn open(store: &Store) -> Option<Self> {
        let ((audit, data), direct) = store.sqlite_audit_file().zip(store.sqlite_file()).zip(store.sqlite_direct())?;
        let opened = crate::native::open_writer(audit, store.synchronous())
            .and_then(|c| Ok((c, crate::native::Checkpointer::start(&[audit, data], store.synchronous())?)));
        match opened {
            Ok((conn, wal)) => Some(Self { conn, closed: direct.closed(), _wal: wal }),
            Err(e) => {
                tracing::warn!(error = %e, "audit writer falls back to the pool");
                None
            }
        }
    }
}

// The writer's loop runs on a thread of its own for this sink: its calls block it, and
// nothing else.
impl Sink for SqliteSink {
    async fn head(&mut self) -> Result<Option<(i64, Hash)>, WriteError> {
        Ok(crate::native::load_head(&self.conn)?)
    }

    async fn insert(&mut self, entries: &[Entry]) -> Result<(), WriteError> {
        Ok(crate::native::insert(&self.conn, &self.closed, entries)?)
    }

    async fn checkpoint(&mut self, seq: i64, hash: &Hash, key_id: &str, signature: &[u8]) -> Result<(), WriteError> {
        self.closed.check()?;
        let mut st = self.conn.prepare_cached(INSERT_CHECKPOINT)?;
        st.execute(rusqlite::params![seq, &hash[..], now_us(), key_id, signature])?;
        Ok(())
    }

    async fn close(&mut self) {}
}

/// The pool writer's connection. It is taken out of the pool once and kept, so a
/// batch neither waits for a pooled connection behind the reads nor pays the round
/// trip with which the pool checks every connection given back to it. A connection
/// that fails a write is dropped and a new one taken for the next; one idle for
/// 10 s or more is checked first, as the pool does. It is outside the pool's count
/// (the server sees one more connection than the pool's maximum), and it is closed
/// when the writer stops or, once the store is closed, at the writer's next write,
/// which fails.
struct Held {
    pool: AnyPool,
    /// The connection and when it was last handed out.
    conn: Option<(sqlx::AnyConnection, Instant)>,
}

impl Held {
    async fn get(&mut self) -> Result<&mut sqlx::AnyConnection, sqlx::Error> {
        // A closed store writes nothing, as with a pooled connection.
        if self.pool.is_closed() {
            self.close().await;
            return Err(sqlx::Error::PoolClosed);
        }
        // As the pool does, a connection idle for a while is checked first: the server
        // (or something between) may have closed it meanwhile.
        if let Some((conn, used)) = &mut self.conn {
            if used.elapsed() >= crate::db::CHECK_IDLE_AFTER && sqlx::Connection::ping(conn).await.is_err() {
                self.conn = None;
            }
        }
        let conn = match self.conn.take() {
            Some((conn, _)) => conn,
            None => self.pool.acquire().await?.detach(),
        };
        Ok(&mut self.conn.insert((conn, Instant::now())).0)
    }

    /// Closes the connection, if any (when the writer stops).
    async fn close(&mut self) {
        if let Some((conn, _)) = self.conn.take() {
            let _ = sqlx::Connection::close(conn).await;
        }
    }
}

impl Held {
    /// `result`, having let go of the connection when it failed (the connection may be
    /// what failed): the next write takes another.
    fn kept<T>(&mut self, result: Result<T, WriteError>) -> Result<T, WriteError> {
        if matches!(result, Err(WriteError::Failed(_))) {
            self.conn = None;
        }
        result
    }

    async fn load_head(&mut self) -> Result<Option<(i64, Hash)>, WriteError> {
        let conn = self.get().await?;
        let row = sqlx::query(SELECT_HEAD).fetch_optional(&mut *conn).await?;
        Ok(match row {
            Some(r) => Some((r.try_get::<i64, _>(0)?, to_hash(r.try_get::<Vec<u8>, _>(1)?)?)),
            None => None,
        })
    }

    async fn insert_entries(&mut self, entries: &[Entry]) -> Result<(), WriteError> {
        let conn = self.get().await?;
        if entries.len() <= MAX_BATCH {
            let sql = insert_sql(entries.len());
            bind_entries(sqlx::query(sql), entries).execute(&mut *conn).await?;
            return Ok(());
        }
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        for chunk in entries.chunks(MAX_BATCH) {
            let sql = insert_sql(chunk.len());
            bind_entries(sqlx::query(sql), chunk).execute(&mut *tx).await?;
        }
        Ok(tx.commit().await?)
    }

    async fn insert_checkpoint(
        &mut self,
        seq: i64,
        hash: &Hash,
        key_id: &str,
        signature: &[u8],
    ) -> Result<(), WriteError> {
        let conn = self.get().await?;
        sqlx::query(INSERT_CHECKPOINT)
            .bind(seq)
            .bind(hash.to_vec())
            .bind(now_us())
            .bind(key_id.to_owned())
            .bind(signature.to_vec())
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

impl Sink for Held {
    async fn head(&mut self) -> Result<Option<(i64, Hash)>, WriteError> {
        let head = self.load_head().await;
        self.kept(head)
    }

    async fn insert(&mut self, entries: &[Entry]) -> Result<(), WriteError> {
        let inserted = self.insert_entries(entries).await;
        self.kept(inserted)
    }

    async fn checkpoint(&mut self, seq: i64, hash: &Hash, key_id: &str, signature: &[u8]) -> Result<(), WriteError> {
        let stored = self.insert_checkpoint(seq, hash, key_id, signature).await;
        self.kept(stored)
    }

    async fn close(&mut self) {
        Held::close(self).await;
    }
}

/// Why a write failed.
enum WriteError {
    /// Another process took the sequence numbers first.
    Race,
    /// Anything else.
    Failed(String),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Race => f.write_str("lost the race for the audit head too many times"),
            Self::Failed(m) => f.write_str(m),
        }
    }
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        if is_race(&e) {
            Self::Race
        } else {
            Self::Failed(e.to_string())
        }
    }
}

impl From<rusqlite::Error> for WriteError {
    /// Only a clash on an entry's (or checkpoint's) sequence number, the primary key, is a
    /// lost race; any other constraint (a trigger, a NOT NULL) fails the write at once.
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                Self::Race
            }
            _ => Self::Failed(e.to_string()),
        }
    }
}

/// What one pass of the writer's loop took off the channel.
#[derive(Default)]
struct Batch {
    events: Vec<AuditEvent>,
    replies: Vec<(usize, oneshot::Sender<Result<i64, AuditError>>)>,
    /// A checkpoint or close request that came after the events.
    control: Option<Command>,
}

impl Batch {
    /// `first` and whatever else is already waiting, up to [`MAX_BATCH`] events or the first control command.
    fn take(first: Command, next: &mut impl FnMut() -> Option<Command>) -> Self {
        let mut b = Self::default();
        let mut cmd = Some(first);
        while let Some(c) = cmd.take() {
            match c {
                Command::Append(evs, reply) => {
                    b.replies.push((evs.len(), reply));
                    b.events.extend(evs);
                }
                Command::Tick => {}
                control => {
                    b.control = Some(control);
                    break;
                }
            }
            if b.events.len() < MAX_BATCH {
                cmd = next();
            }
        }
        b
    }
}

/// The writer: the chain's head as this process knows it, and where it writes.
struct Writer<S> {
    sink: S,
    signer: CheckpointSigner,
    head: Option<(i64, Hash)>,
    last_checkpoint: (i64, Instant),
    counters: Arc<Counters>,
}

/// The current time in microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn is_race(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// Entries for `events`, to be placed in the chain by [`audit::place`] (again, after a lost race).
fn unplaced(events: Vec<AuditEvent>) -> Vec<Entry> {
    events
        .into_iter()
        .map(|event| Entry { seq: 0, at_us: 0, event, prev_hash: audit::GENESIS, hash: audit::GENESIS })
        .collect()
}

impl<S: Sink> Writer<S> {
    fn new(sink: S, signer: CheckpointSigner, counters: Arc<Counters>) -> Self {
        Self { sink, signer, head: None, last_checkpoint: (0, Instant::now()), counters }
    }

    /// The loop: each pass takes what waits on the channel, writes it in one commit,
    /// tells the appenders, and signs a checkpoint when one is due or asked for.
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(first) = rx.recv().await {
            let batch = Batch::take(first, &mut || rx.try_recv().ok());
            if !batch.events.is_empty() {
                let n = batch.events.len();
                let result = self.write(&mut unplaced(batch.events)).await;
                self.deliver(batch.replies, n, result);
            }
            let signed = self.checkpoint(batch.control.is_some()).await;
            let stop = matches!(batch.control, Some(Command::Close(_)));
            if stop {
                self.sink.close().await;
            }
            if self.answer(batch.control, signed) {
                return;
            }
        }
        let signed = self.checkpoint(true).await;
        self.sink.close().await;
        self.answer(None, signed);
    }

    /// Places `entries` after the head and inserts them; after a lost race (another process
    /// appended first) reloads the head and tries again. The first entry's sequence number.
    async fn write(&mut self, entries: &mut [Entry]) -> Result<i64, WriteError> {
        for _ in 0..MAX_RACES {
            let head = match self.head {
                Some(h) => Some(h),
                None => self.sink.head().await?,
            };
            let placed = audit::place(head, now_us(), entries);
            match self.sink.insert(entries).await {
                Ok(()) => {
                    self.head = placed;
                    return Ok(entries[0].seq);
                }
                Err(WriteError::Race) => {
                    self.head = None;
                    tokio::task::yield_now().await;
                }
                Err(e) => {
                    self.head = None;
                    return Err(e);
                }
            }
        }
        Err(WriteError::Race)
    }

    /// Signs and stores a checkpoint over the head when one is due (or `force`d).
    async fn checkpoint(&mut self, force: bool) -> Result<(), AuditError> {
        let Some((seq, hash)) = self.checkpoint_due(force) else { return Ok(()) };
        let signature = self.signer.sign(&audit::checkpoint_message(seq, &hash));
        let key_id = self.signer.public_key_hex();
        self.sink.checkpoint(seq, &hash, &key_id, &signature).await.map_err(|e| AuditError::Write(e.to_string()))?;
        self.last_checkpoint = (seq, Instant::now());
        Ok(())
    }

    /// Tells each caller of a batch its first sequence number, or the error.
    fn deliver(
        &mut self,
        replies: Vec<(usize, oneshot::Sender<Result<i64, AuditError>>)>,
        n: usize,
        result: Result<i64, WriteError>,
    ) {
        match result {
            Ok(first_seq) => {
                self.counters.entries.fetch_add(n as u64, Ordering::Relaxed);
                self.counters.batches.fetch_add(1, Ordering::Relaxed);
                self.counters.appends.fetch_add(replies.len() as u64, Ordering::Relaxed);
                let mut seq = first_seq;
                for (count, reply) in replies {
                    let _ = reply.send(Ok(seq));
                    seq += count as i64;
                }
            }
            Err(e) => {
                let msg = match e {
                    WriteError::Race => "lost the race for the audit head too many times".to_owned(),
                    WriteError::Failed(m) => m,
                };
                tracing::error!(error = %msg, "audit append failed");
                let err = AuditError::Write(msg);
                for (_, reply) in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }

    /// Answers a checkpoint or close request; true when the writer must stop.
    fn answer(&self, control: Option<Command>, signed: Result<(), AuditError>) -> bool {
        match control {
            Some(Command::Checkpoint(reply)) => {
                let _ = reply.send(signed);
                false
            }
            Some(Command::Close(reply)) => {
                let _ = reply.send(signed);
                true
            }
            _ => {
                if let Err(e) = signed {
                    tracing::warn!(error = %e, "audit checkpoint failed");
                }
                false
            }
        }
    }

    /// The head to sign over, when a checkpoint is due (or forced).
    fn checkpoint_due(&self, force: bool) -> Option<(i64, Hash)> {
        let (seq, hash) = self.head?;
        let (last_seq, last_at) = self.last_checkpoint;
        let due = seq - last_seq >= CHECKPOINT_EVERY || last_at.elapsed() >= CHECKPOINT_INTERVAL;
        (seq > last_seq && (force || due)).then_some((seq, hash))
    }
}

const INSERT_CHECKPOINT: &str = "INSERT INTO audit_checkpoint (seq, hash, at_us, key_id, signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING";

/// The chain's last entry.
pub(crate) const SELECT_HEAD: &str = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1";

const COLUMNS: &str =
    "INSERT INTO audit_log (seq, at_us, actor, action, subject, purpose, result, detail, prev_hash, hash) VALUES ";

/// `INSERT ... VALUES (...), (...)` for `rows` entries (at most [`MAX_BATCH`]: callers
/// insert in chunks of that size), each text written once.
pub(crate) fn insert_sql(rows: usize) -> &'static str {
    static SQL: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| (0..=MAX_BATCH).map(write_insert_sql).collect());
    &SQL[rows]
}

fn write_insert_sql(rows: usize) -> String {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(COLUMNS.len() + rows * 64);
    sql.push_str(COLUMNS);
    for i in 0..rows {
        sql.push_str(if i > 0 { ",(" } else { "(" });
        for j in 1..=10 {
            let _ = write!(sql, "{}${}", if j > 1 { "," } else { "" }, i * 10 + j);
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

/// Reads the whole chain into memory, in order (for timing the chain check alone).
pub async fn load_entries(store: &Store) -> Result<Vec<Entry>, sqlx::Error> {
    use futures_util::TryStreamExt as _;
    let mut out = Vec::new();
    let mut rows = sqlx::query(SELECT_ENTRIES).fetch(store.pool());
    while let Some(r) = rows.try_next().await? {
        out.push(entry_from_row(&r)?);
    }
    Ok(out)
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
    Read(#[from] StoreError),
}

impl From<sqlx::Error> for VerifyError {
    fn from(e: sqlx::Error) -> Self {
        Self::Read(e.into())
    }
}

impl From<rusqlite::Error> for VerifyError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Read(e.into())
    }
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
    if let Some(file) = store.sqlite_audit_file() {
        let file = file.to_owned();
        return tokio::task::spawn_blocking(move || {
            verify_sqlite_file(&file, &mut checker)?;
            checker.finish()
        })
        .await
        .map_err(StoreError::from)?;
    }
    // Pages are read by keyset and decoded in a task of their own while the
    // previous page is hashed, so reading and hashing overlap.
    let mut next = tokio::spawn(read_page(store.pool().clone(), i64::MIN));
    loop {
        let page = next.await.map_err(StoreError::from)??;
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
    let conn = rusqlite::Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // A sequential scan of the whole table: map the file rather than copy it page by page.
    conn.pragma_update(None, "mmap_size", 1i64 << 30)?;
    let mut stmt = conn.prepare(SELECT_ENTRIES)?;
    let mut rows = stmt.query([])?;
    // One entry is reused for every row: its strings keep their capacity, so
    // the loop does not allocate.
    let mut e =
        Entry { seq: 0, at_us: 0, event: AuditEvent::new("", "", ""), prev_hash: audit::GENESIS, hash: audit::GENESIS };
    let bad = |what: &'static str| VerifyError::Read(StoreError::WrongType(what));
    while let Some(r) = rows.next()? {
        let text = |i: usize, into: &mut String| -> Result<(), VerifyError> {
            into.clear();
            into.push_str(r.get_ref(i)?.as_str().map_err(|_| bad("text"))?);
            Ok(())
        };
        let opt_text = |i: usize, into: &mut Option<String>| -> Result<(), VerifyError> {
            match r.get_ref(i)?.as_str_or_null().map_err(|_| bad("text"))? {
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
            let b = r.get_ref(i)?.as_blob().map_err(|_| bad("hash"))?;
            *into = Hash::try_from(b).map_err(|_| bad("hash"))?;
            Ok(())
        };
        e.seq = r.get(0)?;
        e.at_us = r.get(1)?;
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

/// The last entry's sequence number (0 for an empty chain).
pub async fn head_seq(store: &Store) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM audit_log").fetch_one(store.pool()).await
}

/// Up to `limit` entries after `after`, in chain order.
pub async fn entries_after(store: &Store, after: i64, limit: i64) -> Result<Vec<Entry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seq, at_us, actor, action, subject, purpose, result, detail, prev_hash, hash FROM audit_log \
         WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(entry_from_row).collect()
}
