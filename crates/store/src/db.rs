//! Connecting to SQLite or PostgreSQL and keeping the schema current.

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor as _};

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file in WAL mode.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Why the store could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported database.
    #[error("unsupported database URL scheme `{0}`: use sqlite:// or postgres://")]
    Scheme(String),
    /// Connecting failed.
    #[error("cannot connect to the {backend:?} database")]
    Connect {
        /// Which backend.
        backend: Backend,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// An in-memory SQLite URL: the audit chain needs a file of its own beside the database.
    #[error("in-memory SQLite is not supported: give a file, e.g. sqlite:///var/lib/charter/charter.db")]
    InMemory,
    /// The audit chain's file does not go with the database.
    #[error("cannot open the audit chain: {0}")]
    AuditFile(String),
    /// Migrations failed.
    #[error("cannot bring the database schema up to date")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database query failed")]
    Query(#[from] sqlx::Error),
    /// A query on a direct SQLite connection failed.
    #[error("SQLite query failed")]
    Sqlite(#[from] rusqlite::Error),
    /// A column that may not be NULL was.
    #[error("column {0} is NULL")]
    Null(&'static str),
    /// A column holds a value of another type than it should.
    #[error("a {0} column holds a value of another type")]
    WrongType(&'static str),
    /// A task or thread doing the work failed.
    #[error("a database task failed")]
    Task(#[from] tokio::task::JoinError),
    /// The schema is behind this build.
    #[error("database schema is at migration {applied} of {expected}")]
    Behind {
        /// Migrations applied.
        applied: i64,
        /// Migrations this build has.
        expected: i64,
    },
    /// A key was wrapped under a key-encryption key that `charter keys rotate` retired:
    /// this process runs with a key file from before the rotation.
    #[error("key-encryption key version {0} was retired by a key rotation; restart charter so it loads the rotated key file")]
    KekRetired(u32),
}

/// A pooled connection idle this long is checked (pinged) before it is used again.
pub(crate) const CHECK_IDLE_AFTER: Duration = Duration::from_secs(10);

/// How SQLite syncs its files: what a commit that has been answered survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Each commit is synced to disk before it is answered: it survives a power cut.
    #[default]
    Full,
    /// Commits are synced at each WAL checkpoint: they survive a crash of the process,
    /// but the last ones answered can be lost on a power cut or a crash of the system.
    Normal,
}

impl Synchronous {
    /// The value of SQLite's `synchronous` pragma.
    pub fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}

impl std::str::FromStr for Synchronous {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(Self::Full),
            "normal" => Ok(Self::Normal),
            _ => Err("sqlite_synchronous is `full` (the default: a commit survives a power cut) or `normal`".into()),
        }
    }
}

/// Set on every SQLite pool connection, after the audit file is attached (with the
/// store's [`Synchronous`] on both files): WAL so readers never block the writer (on
/// both files), and a busy timeout so concurrent processes wait for the write lock
/// instead of failing.
const SQLITE_PRAGMAS: &[&str] = &[
    "PRAGMA journal_mode = WAL",
    "PRAGMA busy_timeout = 10000",
    "PRAGMA foreign_keys = ON",
    // Deleted and overwritten content is zeroed, so a shredded subject's wrapped key and
    // ciphertext do not linger in free space of the database file.
    "PRAGMA main.secure_delete = ON",
];

/// The audit chain's tables in the attached audit file (SQLite), as the first migration
/// defines them; the audit file's id, and the data file's record of it.
static AUDIT_FILE_SCHEMA: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    include_str!("../migrations/sqlite/20261129000001_audit.sql")
        .replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS audit.")
        + "CREATE TABLE IF NOT EXISTS audit.audit_file_id (id TEXT NOT NULL);\n\
           CREATE TABLE IF NOT EXISTS main.audit_file_link (id TEXT NOT NULL);\n"
});

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The audit chain's file beside SQLite database `file`: `charter.db` → `charter-audit.db`.
pub fn audit_file_beside(file: &Path) -> std::path::PathBuf {
    let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match file.extension() {
        Some(ext) => format!("{stem}-audit.{}", ext.to_string_lossy()),
        None => format!("{stem}-audit"),
    };
    file.with_file_name(name)
}

/// A connection pool and the backend behind it.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    sqlite_file: Option<std::path::PathBuf>,
    audit_file: Option<std::path::PathBuf>,
    direct: Option<std::sync::Arc<crate::native::Direct>>,
    synchronous: Synchronous,
}

impl Store {
    /// The SQLite URL for a data directory's database file.
    pub fn sqlite_url(data_dir: &Path) -> String {
        format!("sqlite://{}?mode=rwc", data_dir.join("charter.db").display())
    }

    /// Connects to `url` (`sqlite://...` or `postgres://...`); SQLite syncs every commit.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, Synchronous::Full).await
    }

    /// Connects to `url`; on SQLite, syncing as `synchronous` says.
    pub async fn connect_with(url: &str, synchronous: Synchronous) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let scheme = url.split(':').next().unwrap_or_default();
        let backend = match scheme {
            "sqlite" => Backend::Sqlite,
            "postgres" | "postgresql" => Backend::Postgres,
            other => return Err(StoreError::Scheme(other.to_owned())),
        };
        let connect = |source| StoreError::Connect { backend, source };
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if backend == Backend::Sqlite && in_memory {
            return Err(StoreError::InMemory);
        }
        let sqlite_file = (backend == Backend::Sqlite).then(|| {
            let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
            std::path::PathBuf::from(rest.split('?').next().unwrap_or(rest))
        });
        let audit_file = sqlite_file.as_deref().map(audit_file_beside);
        let attach = audit_file.as_ref().map(|f| f.to_string_lossy().into_owned());
        let options = AnyConnectOptions::from_str(url).map_err(connect)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 20 })
            .acquire_timeout(Duration::from_secs(10))
            // A connection is checked with a round trip only when it has been idle a while (the
            // server may have closed it meanwhile), not before every query: on PostgreSQL that
            // check was a second round trip for each statement.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= CHECK_IDLE_AFTER {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(move |conn, _meta| {
                let attach = attach.clone();
                Box::pin(async move {
                    if let Some(file) = attach {
                        // The audit chain lives in a file of its own, so that appending to it
                        // neither takes the data file's write lock nor makes every reader of
                        // the data file drop its page cache.
                        sqlx::query("ATTACH DATABASE $1 AS audit").bind(file).execute(&mut *conn).await?;
                        for pragma in SQLITE_PRAGMAS {
                            conn.execute(*pragma).await?;
                        }
                        for file in ["main", "audit"] {
                            conn.execute(format!("PRAGMA {file}.synchronous = {}", synchronous.pragma()).as_str())
                                .await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(connect)?;
        let direct = sqlite_file.as_deref().map(|f| std::sync::Arc::new(crate::native::Direct::new(f, synchronous)));
        Ok(Self { pool, backend, sqlite_file, audit_file, direct, synchronous })
    }

    /// Connects and applies every pending migration.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, Synchronous::Full).await
    }

    /// Connects with `synchronous` and applies every pending migration.
    pub async fn open_with(url: &str, synchronous: Synchronous) -> Result<Self, StoreError> {
        let store = Self::connect_with(url, synchronous).await?;
        store.migrate().await?;
        Ok(store)
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies pending migrations. Several processes may call this at once on PostgreSQL:
    /// sqlx serialises them with an advisory lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.migrator().run(&self.pool).await.map_err(StoreError::Migrate)?;
        if self.backend == Backend::Sqlite {
            self.move_audit_chain().await?;
        }
        Ok(())
    }

    /// On SQLite the audit chain lives in its own file, attached as `audit`: appending to it
    /// then neither takes the data file's write lock nor makes every reader of the data
    /// file drop its page cache. See [`link_audit_file`].
    async fn move_audit_chain(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        let result = link_audit_file(&mut conn, self.synchronous).await;
        if result.is_err() {
            // Never hand back a connection that may still be inside a transaction.
            conn.close_on_drop();
        }
        result
    }

    /// Whether the database answers and its schema is current.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn ready(&self) -> Result<(), StoreError> {
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success").fetch_one(&self.pool).await?;
        let expected = i64::try_from(self.migrator().iter().count()).unwrap_or(i64::MAX);
        if applied < expected {
            return Err(StoreError::Behind { applied, expected });
        }
        Ok(())
    }

    /// The pool, for repositories.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A transaction that reads before it writes. On SQLite it takes the data file's
    /// write lock at once (`BEGIN IMMEDIATE`, waiting as long as the busy timeout): a
    /// deferred one could not take the lock after another connection had written since
    /// its read, and would fail instead of waiting.
    pub async fn begin_for_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Direct connections for the hot reads and writes, for SQLite file stores.
    pub fn sqlite_direct(&self) -> Option<&crate::native::Direct> {
        self.direct.as_deref()
    }

    /// How SQLite syncs commits (on PostgreSQL, the server's own settings decide).
    pub fn synchronous(&self) -> Synchronous {
        self.synchronous
    }

    /// The database file, for SQLite stores.
    pub fn sqlite_file(&self) -> Option<&Path> {
        self.sqlite_file.as_deref()
    }

    /// The audit chain's file beside a SQLite database (attached to pool connections as `audit`).
    pub fn sqlite_audit_file(&self) -> Option<&Path> {
        self.audit_file.as_deref()
    }

    /// Closes every connection.
    pub async fn close(&self) {
        if let Some(r) = &self.direct {
            r.close();
        }
        self.pool.close().await;
    }
}

/// How often the move of an older chain is tried while older processes keep appending to it.
const MOVE_TRIES: usize = 10;

/// Links the data file to its audit file, and moves a chain still in the data file (as
/// the first migration creates it, and older versions kept it) into the audit file.
///
/// - The audit file has an id; the data file records the id of its audit file. A data
///   file whose audit file is missing (SQLite would create an empty one) or belongs to
///   another database is refused, rather than starting a new chain at 1.
/// - A chain in the data file is first copied, in a transaction that writes only the
///   audit file and is synced to disk (`synchronous = FULL`), then dropped, in one that
///   writes only the data file, and only once every entry and checkpoint is in the audit
///   file unchanged. Entries an older process appended meanwhile are copied on the next
///   try; a chain that differs is refused. A crash or power loss at any point loses
///   nothing, and the next start finishes the move.
async fn link_audit_file(conn: &mut sqlx::AnyConnection, synchronous: Synchronous) -> Result<(), StoreError> {
    conn.execute(AUDIT_FILE_SCHEMA.as_str()).await?;
    for _ in 0..MOVE_TRIES {
        conn.execute("PRAGMA audit.synchronous = FULL").await?;
        conn.execute("BEGIN IMMEDIATE").await?;
        let copied = copy_chain(conn).await;
        let copied = finish(conn, copied).await;
        conn.execute(format!("PRAGMA audit.synchronous = {}", synchronous.pragma()).as_str()).await?;
        copied?;
        conn.execute("BEGIN IMMEDIATE").await?;
        let dropped = drop_old_chain(conn).await;
        if finish(conn, dropped).await? {
            return Ok(());
        }
    }
    Err(StoreError::AuditFile(
        "entries keep arriving in the data file's old audit chain: stop older charter processes and start again".into(),
    ))
}

fn missing_audit_file() -> StoreError {
    StoreError::AuditFile(
        "the audit chain's file beside the database is missing or belongs to another database; \
         restore it from the same backup as the database"
            .into(),
    )
}

/// Commits after `result` is `Ok`, rolls back otherwise; returns `result` (a failed
/// rollback leaves the connection to be closed by the caller, and the first error stands).
async fn finish<T>(conn: &mut sqlx::AnyConnection, result: Result<T, StoreError>) -> Result<T, StoreError> {
    match result {
        Ok(v) => {
            conn.execute("COMMIT").await?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute("ROLLBACK").await;
            Err(e)
        }
    }
}

async fn chain_in_data_file(conn: &mut sqlx::AnyConnection) -> Result<bool, StoreError> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM main.sqlite_master WHERE type = 'table' AND name = 'audit_log'")
            .fetch_one(&mut *conn)
            .await?;
    Ok(n > 0)
}

/// Writes only the audit file: its id when new, and a copy of any chain in the data file.
async fn copy_chain(conn: &mut sqlx::AnyConnection) -> Result<(), StoreError> {
    let id: Option<String> =
        sqlx::query_scalar("SELECT id FROM audit.audit_file_id").fetch_optional(&mut *conn).await?;
    if id.is_none() {
        let link: Option<String> =
            sqlx::query_scalar("SELECT id FROM main.audit_file_link").fetch_optional(&mut *conn).await?;
        if link.is_some() {
            return Err(missing_audit_file());
        }
        sqlx::query("INSERT INTO audit.audit_file_id (id) VALUES ($1)")
            .bind(uuid::Uuid::new_v4().to_string())
            .execute(&mut *conn)
            .await?;
    }
    if chain_in_data_file(conn).await? {
        conn.execute(
            "INSERT OR IGNORE INTO audit.audit_log SELECT * FROM main.audit_log; \
             INSERT OR IGNORE INTO audit.audit_checkpoint SELECT * FROM main.audit_checkpoint;",
        )
        .await?;
    }
    Ok(())
}

/// Writes only the data file: its link to the audit file, and the old chain dropped once
/// the audit file holds all of it. `Ok(false)`: entries are missing, copy again.
async fn drop_old_chain(conn: &mut sqlx::AnyConnection) -> Result<bool, StoreError> {
    let audit_id: String = sqlx::query_scalar("SELECT id FROM audit.audit_file_id").fetch_one(&mut *conn).await?;
    let link: Option<String> =
        sqlx::query_scalar("SELECT id FROM main.audit_file_link").fetch_optional(&mut *conn).await?;
    match link {
        Some(l) if l != audit_id => return Err(missing_audit_file()),
        Some(_) => {}
        None => {
            sqlx::query("INSERT INTO main.audit_file_link (id) VALUES ($1)")
                .bind(&audit_id)
                .execute(&mut *conn)
                .await?;
        }
    }
    if !chain_in_data_file(conn).await? {
        return Ok(true);
    }
    let differing: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM main.audit_log m JOIN audit.audit_log a ON a.seq = m.seq \
                 WHERE a.hash IS NOT m.hash) \
              + (SELECT COUNT(*) FROM main.audit_checkpoint m JOIN audit.audit_checkpoint a ON a.seq = m.seq \
                 WHERE a.hash IS NOT m.hash OR a.signature IS NOT m.signature)",
    )
    .fetch_one(&mut *conn)
    .await?;
    if differing > 0 {
        return Err(StoreError::AuditFile(
            "the audit chain in the database differs from the one in the audit chain's file beside it".into(),
        ));
    }
    let missing: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM main.audit_log m WHERE NOT EXISTS \
                 (SELECT 1 FROM audit.audit_log a WHERE a.seq = m.seq)) \
              + (SELECT COUNT(*) FROM main.audit_checkpoint m WHERE NOT EXISTS \
                 (SELECT 1 FROM audit.audit_checkpoint a WHERE a.seq = m.seq))",
    )
    .fetch_one(&mut *conn)
    .await?;
    if missing > 0 {
        return Ok(false);
    }
    conn.execute("DROP TABLE main.audit_log; DROP TABLE main.audit_checkpoint;").await?;
    Ok(true)
}
