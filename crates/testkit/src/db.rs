//! Throwaway databases for tests and benchmarks, on both backends.
//!
//! PostgreSQL tests run when `CHARTER_TEST_POSTGRES` holds a server URL
//! (e.g. `postgres://postgres@127.0.0.1:5432`); each gets its own uniquely
//! named database, dropped afterwards. Without it they print a notice and skip.

use std::path::PathBuf;

use sqlx::{Connection as _, Executor as _};

/// The environment variable naming the PostgreSQL server for tests.
pub const POSTGRES_ENV: &str = "CHARTER_TEST_POSTGRES";

/// A database that exists for one test.
pub struct TestDb {
    /// The URL to connect to it.
    pub url: String,
    /// For SQLite, the folder holding the file (and anything else the test writes).
    pub dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// A fresh SQLite database in a temporary folder.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("charter.db").display());
        Self { url, dir: Some(dir), postgres: None }
    }

    /// A fresh SQLite database, and a fresh PostgreSQL one when a server is configured (see
    /// [`TestDb::postgres`]): the backends a test runs on.
    pub async fn backends(test: &str) -> Vec<Self> {
        let mut dbs = vec![Self::sqlite()];
        dbs.extend(Self::postgres(test).await);
        dbs
    }

    /// A fresh PostgreSQL database, or `None` (with a printed notice) when no server is configured.
    pub async fn postgres(test: &str) -> Option<Self> {
        let Ok(server) = std::env::var(POSTGRES_ENV) else {
            eprintln!("notice: {test}: PostgreSQL part skipped; set {POSTGRES_ENV}=postgres://postgres@127.0.0.1:5432 to run it");
            return None;
        };
        Some(Self::postgres_at(&server).await)
    }

    /// A fresh database on the PostgreSQL server at `server` (a URL without a database name).
    pub async fn postgres_at(server: &str) -> Self {
        let server = server.trim_end_matches('/').to_owned();
        let name = format!("charter_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
            .await
            .expect("connect to the PostgreSQL server for tests");
        admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create test database");
        admin.close().await.ok();
        Self { url: format!("{server}/{name}"), dir: None, postgres: Some((server, name)) }
    }

    /// Every table of a PostgreSQL test database with its rows as JSON text (bytea as
    /// `\\x` hex), for scanning what was stored; `None` on SQLite.
    pub async fn postgres_rows(&self) -> Option<Vec<(String, Vec<String>)>> {
        self.postgres.as_ref()?;
        let mut conn = sqlx::PgConnection::connect(&self.url).await.expect("connect to the test database");
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
                .fetch_all(&mut conn)
                .await
                .expect("list tables");
        let mut out = Vec::with_capacity(tables.len());
        for t in tables {
            let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT row_to_json(t)::text FROM {t} t"))
                .fetch_all(&mut conn)
                .await
                .expect("read a table");
            out.push((t, rows));
        }
        conn.close().await.ok();
        Some(out)
    }

    /// The folder of a SQLite test database.
    pub fn path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().to_owned())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.postgres.take() else { return };
        // Drop runs inside a runtime, so the database is dropped from a thread of its own.
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&format!("{server}/postgres")).await {
                    let _ = admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await;
                }
            });
        });
        let _ = handle.join();
    }
}
