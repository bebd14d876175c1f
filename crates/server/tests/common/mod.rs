//! The application built in-process for tests, with one method per endpoint.

#![allow(dead_code, unused_imports)]

pub mod browser;
pub mod data;
pub mod rights;

pub use charter_testkit::files;

use charter_server::{Application, Settings};
use charter_testkit::http::{self, Request};
use charter_testkit::TestDb;
use secrecy::SecretString;
use serde_json::Value;

pub struct TestApp {
    pub addr: String,
    pub state: charter_server::state::AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    dir: tempfile::TempDir,
}

pub struct Resp {
    pub status: u16,
    pub body: Value,
    /// The status line and headers, as received.
    pub head: String,
}

impl TestApp {
    pub async fn spawn(db: &TestDb) -> Self {
        Self::spawn_with_policy(db, charter_policy::TENSOROPERA).await
    }

    /// Spawns the application with the policy in `policy_text`.
    pub async fn spawn_with_policy(db: &TestDb, policy_text: &str) -> Self {
        Self::spawn_with(db, policy_text, charter_server::Limits::default()).await
    }

    /// Spawns the application with the policy in `policy_text` and these connection limits.
    pub async fn spawn_with(db: &TestDb, policy_text: &str, limits: charter_server::Limits) -> Self {
        Self::spawn_in(db, policy_text, limits, tempfile::tempdir().unwrap()).await
    }

    /// Spawns a second server on the same database with the same keys, as servers that
    /// share a PostgreSQL database do.
    pub async fn spawn_beside(&self, db: &TestDb) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::copy(self.dir.path().join("data/keys.json"), dir.path().join("data/keys.json")).unwrap();
        Self::spawn_in(db, charter_policy::TENSOROPERA, charter_server::Limits::default(), dir).await
    }

    /// Spawns the application on `db` with the data directory `dir/data` as it is (a key
    /// file already there is used).
    pub async fn spawn_in_dir(db: &TestDb, dir: tempfile::TempDir) -> Self {
        Self::spawn_in(db, charter_policy::TENSOROPERA, charter_server::Limits::default(), dir).await
    }

    /// Spawns the application with `policy_text`, sending mail to `smtp_url` and serving
    /// links under `public_url`; its workers poll every 50 ms.
    pub async fn spawn_delivering(db: &TestDb, policy_text: &str, smtp_url: &str) -> Self {
        let delivery = charter_delivery::Config {
            smtp_url: Some(SecretString::from(smtp_url.to_owned())),
            mail_from: Some("privacy@tensoropera.example".into()),
            worker: charter_delivery::WorkerSettings {
                poll: std::time::Duration::from_millis(50),
                ..Default::default()
            },
            ..Default::default()
        };
        Self::spawn_configured(
            db,
            policy_text,
            charter_server::Limits::default(),
            tempfile::tempdir().unwrap(),
            delivery,
        )
        .await
    }

    async fn spawn_in(db: &TestDb, policy_text: &str, limits: charter_server::Limits, dir: tempfile::TempDir) -> Self {
        Self::spawn_configured(db, policy_text, limits, dir, Default::default()).await
    }

    async fn spawn_configured(
        db: &TestDb,
        policy_text: &str,
        limits: charter_server::Limits,
        dir: tempfile::TempDir,
        delivery: charter_delivery::Config,
    ) -> Self {
        capture_logs();
        let policy = charter_policy::load("test-policy.toml", policy_text).unwrap();
        let app = Application::build(Settings {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.path().join("data"),
            database_url: Some(SecretString::from(db.url.clone())),
            policy,
            policy_named: true,
            public_url: None,
            object_store: None,
            limits,
            sqlite_synchronous: Default::default(),
            delivery,
            // Tests run sweeps themselves, at the time they choose.
            retention_sweep: false,
        })
        .await
        .unwrap();
        let addr = app.addr().to_string();
        let state = app.state().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        Self { addr, state, shutdown: Some(tx), handle: Some(handle), dir }
    }

    pub async fn key(&self, name: &str, purposes: &[&str], points: &[&str]) -> String {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        self.state.store.create_api_key(name, &s(purposes), &s(points), 0).await.unwrap()
    }

    pub async fn raw(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Resp {
        let (addr, method, path) = (self.addr.clone(), method.to_owned(), path.to_owned());
        let token = token.map(str::to_owned);
        let body = body.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            let request = Request::new(&method, &path).token(token.as_deref());
            let request = match &body {
                Some(b) => request.json(b),
                None => request,
            };
            Resp::of(&http::send(&addr, &request), Value::String(String::new()))
        })
        .await
        .unwrap()
    }

    pub async fn collect(&self, token: &str, point: &str, body: &Value) -> Resp {
        self.raw("POST", &format!("/v1/collect/{point}"), Some(token), Some(&body.to_string())).await
    }

    pub async fn read(&self, token: &str, subject: &str, query: &str) -> Resp {
        self.raw("GET", &format!("/v1/subjects/{subject}/data?{query}"), Some(token), None).await
    }

    /// The application's data directory.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(self.state.store.pool()).await.unwrap()
    }

    pub async fn stop(mut self) -> tempfile::TempDir {
        self.stop_result().await.unwrap();
        self.dir
    }

    /// Stops the server and returns how its shutdown went.
    pub async fn stop_result(&mut self) -> anyhow::Result<()> {
        self.shutdown.take().unwrap().send(()).unwrap();
        self.handle.take().unwrap().await.unwrap()
    }
}

impl Resp {
    /// A response with its body as JSON (or as a string when it is not JSON; `empty` when
    /// there is none).
    pub fn of(got: &http::Response, empty: Value) -> Self {
        Self { status: got.status, body: got.json(empty), head: got.head.clone() }
    }
}

/// The backends a test runs on: SQLite, and PostgreSQL when configured.
pub async fn backends(test: &str) -> Vec<TestDb> {
    TestDb::backends(test).await
}

/// Everything logged in this test process, kept so tests can scan it for personal data.
static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct LogSink;

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends every log line of the process, at debug level and below, to [`logs`].
fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_writer(|| LogSink)
            .with_ansi(false)
            .try_init();
    });
}

/// What the application has logged so far in this process.
pub fn logs() -> Vec<u8> {
    LOGS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

impl TestApp {
    /// A request as a browser sends it: `headers` lines, an optional form body.
    pub async fn page(&self, method: &str, path: &str, form: Option<&str>, headers: &[&str]) -> http::Response {
        let (addr, method, path) = (self.addr.clone(), method.to_owned(), path.to_owned());
        let form = form.map(str::to_owned);
        let headers: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
        tokio::task::spawn_blocking(move || {
            let lines: Vec<&str> = headers.iter().map(String::as_str).collect();
            let request = Request { headers: &lines, ..Request::new(&method, &path) };
            let request = match &form {
                Some(f) => request.form(f),
                None => request,
            };
            http::send(&addr, &request)
        })
        .await
        .unwrap()
    }

    /// Every message in the outbox now, opened (none waited for).
    pub async fn outbox_now(&self) -> Vec<String> {
        let outbox = charter_delivery::Outbox::new(self.data_dir().join("outbox"), self.state.keys.clone());
        let mut out = Vec::new();
        for e in outbox.list().unwrap() {
            if let Ok((_, bytes)) = outbox.show(&self.state.store, &e.id).await {
                out.push(String::from_utf8(bytes).unwrap());
            }
        }
        out
    }

    /// Every message the server's delivery worker has put in its outbox, opened, waiting
    /// up to 20 s for at least `at_least` of them (the worker sends in the background).
    pub async fn outbox(&self, at_least: usize) -> Vec<String> {
        let outbox = charter_delivery::Outbox::new(self.data_dir().join("outbox"), self.state.keys.clone());
        for _ in 0..200 {
            let entries = outbox.list().unwrap();
            if entries.len() >= at_least {
                let mut out = Vec::new();
                for e in entries {
                    let (_, bytes) = outbox.show(&self.state.store, &e.id).await.unwrap();
                    out.push(String::from_utf8(bytes).unwrap());
                }
                return out;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("fewer than {at_least} messages reached the outbox");
    }

    /// The first message in the outbox that is not in `seen` and contains `needle`,
    /// waiting up to 20 s for it: other messages may arrive before or after it.
    pub async fn new_message(&self, seen: &[String], needle: &str) -> String {
        for _ in 0..200 {
            let now = self.outbox_now().await;
            if let Some(m) = now.into_iter().find(|m| !seen.contains(m) && m.contains(needle)) {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("no new message containing {needle:?} reached the outbox");
    }
}
