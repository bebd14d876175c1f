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
    /// Migrations failed.
    #[error("cannot bring the database schema up to date")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database query failed")]
    Query(#[from] sqlx::Error),
    /// The schema is behind this build.
    #[error("database schema is at migration {applied} of {expected}")]
    Behind {
        /// Migrations applied.
        applied: i64,
        /// Migrations this build has.
        expected: i64,
    },
}

/// Set on every SQLite connection: WAL so readers never block the writer,
/// `synchronous = NORMAL` (durable at each WAL checkpoint, safe with WAL),
/// and a busy timeout so concurrent processes wait for the write lock instead of failing.
const SQLITE_PRAGMAS: &[&str] = &[
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA busy_timeout = 10000",
    "PRAGMA foreign_keys = ON",
];

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A connection pool and the backend behind it.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    sqlite_file: Option<std::path::PathBuf>,
    direct: Option<std::sync::Arc<crate::native::Direct>>,
}

impl Store {
    /// The SQLite URL for a data directory's database file.
    pub fn sqlite_url(data_dir: &Path) -> String {
        format!("sqlite://{}?mode=rwc", data_dir.join("charter.db").display())
    }

    /// Connects to `url` (`sqlite://...` or `postgres://...`).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let scheme = url.split(':').next().unwrap_or_default();
        let backend = match scheme {
            "sqlite" => Backend::Sqlite,
            "postgres" | "postgresql" => Backend::Postgres,
            other => return Err(StoreError::Scheme(other.to_owned())),
        };
        let connect = |source| StoreError::Connect { backend, source };
        let options = AnyConnectOptions::from_str(url).map_err(connect)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 20 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        for pragma in SQLITE_PRAGMAS {
                            conn.execute(*pragma).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(connect)?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let sqlite_file = (backend == Backend::Sqlite && !in_memory).then(|| {
            let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
            std::path::PathBuf::from(rest.split('?').next().unwrap_or(rest))
        });
        let direct = sqlite_file.as_deref().map(|f| std::sync::Arc::new(crate::native::Direct::new(f)));
        Ok(Self { pool, backend, sqlite_file, direct })
    }

    /// Connects and applies every pending migration.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let store = Self::connect(url).await?;
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
        self.migrator().run(&self.pool).await.map_err(StoreError::Migrate)
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

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Direct connections for the hot reads and writes, for SQLite file stores.
    pub fn sqlite_direct(&self) -> Option<&crate::native::Direct> {
        self.direct.as_deref()
    }

    /// The database file, for SQLite stores.
    pub fn sqlite_file(&self) -> Option<&Path> {
        self.sqlite_file.as_deref()
    }

    /// Closes every connection.
    pub async fn close(&self) {
        if let Some(r) = &self.direct {
            r.close();
        }
        self.pool.close().await;
    }
}
