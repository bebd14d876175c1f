//! Direct SQLite access for the hot paths of a SQLite file store: the audit
//! writer's own connection, and small sets of connections for purpose-bound
//! reads and for collections. The async pool hands every statement to a worker thread and every row
//! back through a channel; these run the statement where they are called. Reads
//! are indexed point lookups in WAL mode, so they never wait for the writer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use charter_core::audit::{Entry, Hash};
use rusqlite::{Connection, OpenFlags, ToSql};

use crate::Synchronous;

/// Connections of each kind kept for reuse; more are opened when all are busy.
const KEEP_IDLE: usize = 8;
/// How long a statement waits for another connection's write lock.
const BUSY: Duration = Duration::from_secs(10);
/// How long it sleeps between tries.
const BUSY_STEP: Duration = Duration::from_micros(200);

/// Waits [`BUSY_STEP`] and tries again, for up to [`BUSY`] in all.
fn retry_busy(attempt: i32) -> bool {
    let waited = BUSY_STEP * u32::try_from(attempt).unwrap_or(u32::MAX);
    if waited >= BUSY {
        return false;
    }
    std::thread::sleep(BUSY_STEP);
    true
}

/// Opens a connection with the store's settings (see `db::SQLITE_PRAGMAS`).
fn open(file: &Path, flags: OpenFlags, synchronous: Synchronous) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(file, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    // SQLite's own busy handler backs off to sleeps of up to 100 ms; a write lock held
    // by another connection is usually free again within a millisecond, so retry finely.
    conn.busy_handler(Some(retry_busy))?;
    conn.pragma_update(None, "synchronous", synchronous.pragma())?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(80);
    Ok(conn)
}

/// The audit writer's connection, to the audit file. It never checkpoints the WAL itself (a commit that
/// has to copy a long WAL back into the database would hold every read waiting for
/// its audit entry); [`Checkpointer`] does that beside it.
pub(crate) fn open_writer(file: &Path, synchronous: Synchronous) -> rusqlite::Result<Connection> {
    let conn = open(file, OpenFlags::SQLITE_OPEN_READ_WRITE, synchronous)?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(conn)
}

/// How often the WAL is copied back into the database while the writer runs.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Copies the WALs of the audit file and the data file back into their databases every
/// [`CHECKPOINT_EVERY`] on a thread of its own (passive checkpoints: they never wait for,
/// or block, readers or writers), so the WALs stay short.
pub(crate) struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: std::thread::Thread,
}

impl Checkpointer {
    pub(crate) fn start(files: &[&Path], synchronous: Synchronous) -> rusqlite::Result<Self> {
        let conns = files
            .iter()
            .map(|f| open(f, OpenFlags::SQLITE_OPEN_READ_WRITE, synchronous))
            .collect::<Result<Vec<_>, _>>()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("charter-wal".into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    std::thread::park_timeout(CHECKPOINT_EVERY);
                    for conn in &conns {
                        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                            tracing::debug!(error = %e, "WAL checkpoint skipped");
                        }
                    }
                }
            })
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(Self { stop, thread: thread.thread().clone() })
    }
}

/// Dropping it tells its thread to stop; the thread ends within [`CHECKPOINT_EVERY`],
/// closing its connections, without the owner waiting for it.
impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// Set once the store is closed: direct connections refuse work from then on, as the pool does.
#[derive(Debug, Clone, Default)]
pub(crate) struct Closed(Arc<AtomicBool>);

impl Closed {
    pub(crate) fn check(&self) -> rusqlite::Result<()> {
        if self.0.load(Ordering::Acquire) {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISUSE),
                Some("the store is closed".into()),
            ));
        }
        Ok(())
    }
}

/// Direct connections to one SQLite file: `query_only` ones for reads, and
/// read-write ones for collections, each kept for reuse.
#[derive(Debug)]
pub struct Direct {
    file: PathBuf,
    idle_readers: Mutex<Vec<Connection>>,
    idle_writers: Mutex<Vec<Connection>>,
    closed: Closed,
    synchronous: Synchronous,
}

impl Direct {
    /// Connections to `file`; they open on first use.
    pub(crate) fn new(file: &Path, synchronous: Synchronous) -> Self {
        Self {
            synchronous,
            file: file.to_owned(),
            idle_readers: Mutex::new(Vec::new()),
            idle_writers: Mutex::new(Vec::new()),
            closed: Closed::default(),
        }
    }

    /// Whether the store is closed, shared with the audit writer's connection.
    pub(crate) fn closed(&self) -> Closed {
        self.closed.clone()
    }

    /// Closes every idle connection and refuses further work.
    pub(crate) fn close(&self) {
        self.closed.0.store(true, Ordering::Release);
        lock(&self.idle_readers).clear();
        lock(&self.idle_writers).clear();
    }

    /// Runs `f` on an idle read connection (opening one if none is idle).
    pub fn read<T, E: From<rusqlite::Error>>(&self, f: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E> {
        self.on(&self.idle_readers, true, |c| f(c))
    }

    /// Runs `f` on an idle read-write connection (opening one if none is idle).
    pub fn write<T, E: From<rusqlite::Error>>(&self, f: impl FnOnce(&mut Connection) -> Result<T, E>) -> Result<T, E> {
        self.on(&self.idle_writers, false, f)
    }

    fn on<T, E: From<rusqlite::Error>>(
        &self,
        idle: &Mutex<Vec<Connection>>,
        query_only: bool,
        f: impl FnOnce(&mut Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        self.closed.check()?;
        let conn = lock(idle).pop();
        let mut conn = match conn {
            Some(c) => c,
            None => {
                let c = open(&self.file, OpenFlags::SQLITE_OPEN_READ_WRITE, self.synchronous)?;
                // As on the pool's connections: a shred's bytes are zeroed where they were.
                c.pragma_update(None, "secure_delete", "ON")?;
                c.pragma_update(None, "query_only", query_only)?;
                c
            }
        };
        let result = f(&mut conn);
        let mut idle = lock(idle);
        if idle.len() < KEEP_IDLE && !self.closed.0.load(Ordering::Acquire) {
            idle.push(conn);
        }
        result
    }
}

fn lock(m: &Mutex<Vec<Connection>>) -> std::sync::MutexGuard<'_, Vec<Connection>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn to_hash(b: &[u8]) -> rusqlite::Result<Hash> {
    Hash::try_from(b).map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            1,
            rusqlite::types::Type::Blob,
            "an audit hash is not 32 bytes".into(),
        )
    })
}

/// The chain's last entry.
pub(crate) fn load_head(conn: &Connection) -> rusqlite::Result<Option<(i64, Hash)>> {
    let mut st = conn.prepare_cached(crate::audit::SELECT_HEAD)?;
    let mut rows = st.query([])?;
    match rows.next()? {
        Some(r) => Ok(Some((r.get(0)?, to_hash(r.get_ref(1)?.as_blob()?)?))),
        None => Ok(None),
    }
}

/// Inserts chained entries: one statement per `MAX_BATCH`, in one transaction when there are several.
pub(crate) fn insert(conn: &Connection, closed: &Closed, entries: &[Entry]) -> rusqlite::Result<()> {
    closed.check()?;
    let chunks: Vec<&[Entry]> = entries.chunks(crate::audit::MAX_BATCH).collect();
    let several = chunks.len() > 1;
    if several {
        conn.execute_batch("BEGIN IMMEDIATE")?;
    }
    let result = chunks.iter().try_for_each(|chunk| {
        let mut st = conn.prepare_cached(crate::audit::insert_sql(chunk.len()))?;
        let mut values: Vec<&dyn ToSql> = Vec::with_capacity(chunk.len() * 10);
        for e in *chunk {
            values.extend_from_slice(&[
                &e.seq,
                &e.at_us,
                &e.event.actor,
                &e.event.action,
                &e.event.subject,
                &e.event.purpose,
                &e.event.result,
                &e.event.detail,
                &e.prev_hash,
                &e.hash,
            ]);
        }
        st.execute(values.as_slice()).map(|_| ())
    });
    if several {
        let end = match &result {
            Ok(()) => conn.execute_batch("COMMIT"),
            Err(_) => Ok(()),
        };
        // Whatever failed, leave no transaction open: later single-statement batches
        // must not be acknowledged inside a transaction that never commits.
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        result?;
        return end;
    }
    result
}
