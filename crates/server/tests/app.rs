//! The application built in-process, on both backends.

use std::io::{Read as _, Write as _};

use charter_server::{Application, Settings};
use charter_store::testing::TestDb;
use secrecy::SecretString;

struct TestApp {
    addr: String,
    app_state: charter_server::state::AppState,
    shutdown: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    async fn spawn(db: &TestDb) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let policy = charter_policy::load(charter_policy::TENSOROPERA_NAME, charter_policy::TENSOROPERA).unwrap();
        let app = Application::build(Settings {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.path().join("data"),
            database_url: Some(SecretString::from(db.url.clone())),
            policy,
            object_store: None,
        })
        .await
        .unwrap();
        let addr = app.addr().to_string();
        let app_state = app.state().clone();
        let (shutdown, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        Self { addr, app_state, shutdown, handle, _dir: dir }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let (addr, path) = (self.addr.clone(), path.to_owned());
        tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
            let mut raw = String::new();
            s.read_to_string(&mut raw).unwrap();
            let (head, body) = raw.split_once("\r\n\r\n").unwrap();
            (head.split(' ').nth(1).unwrap().parse().unwrap(), body.to_owned())
        })
        .await
        .unwrap()
    }

    async fn stop(self) {
        self.shutdown.send(()).unwrap();
        self.handle.await.unwrap().unwrap();
    }
}

async fn backends(test: &str) -> Vec<TestDb> {
    let mut dbs = vec![TestDb::sqlite()];
    dbs.extend(TestDb::postgres(test).await);
    dbs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database() {
    for db in backends("readiness").await {
        let app = TestApp::spawn(&db).await;
        assert_eq!(app.get("/readyz").await.0, 200);
        assert_eq!(app.get("/healthz").await.0, 200);
        // With the database gone, the process is alive but not ready, and says so without internals.
        app.app_state.store.close().await;
        let (status, body) = app.get("/readyz").await;
        assert_eq!(status, 503);
        assert!(body.contains("\"not_ready\""), "{body}");
        assert!(!body.to_lowercase().contains("pool"), "no internal detail leaks: {body}");
        assert_eq!(app.get("/healthz").await.0, 200);
        app.shutdown.send(()).unwrap();
        // Recording the stop needs the database, so the stop reports the failure instead of hiding it.
        assert!(app.handle.await.unwrap().is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_is_in_the_chain_before_the_first_request() {
    for db in backends("start_recorded").await {
        let app = TestApp::spawn(&db).await;
        let (status, metrics) = app.get("/metrics").await;
        assert_eq!(status, 200);
        assert!(metrics.contains("charter_audit_entries_appended_total 1"), "{metrics}");
        assert!(metrics.contains(&format!("sha256=\"{}\"", app.app_state.policy.sha256)));
        app.stop().await;
    }
}
