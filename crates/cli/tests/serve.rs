//! `charter serve` and `charter audit verify` as a user runs them.

mod common;

use common::{http, run, Server};

#[test]
fn serve_on_a_fresh_data_dir_answers_and_records_start_and_stop() {
    let cwd = tempfile::tempdir().unwrap();
    // No --data-dir: the default ./charter-data is created.
    let server = Server::start(cwd.path(), &[]);
    let data = cwd.path().join("charter-data");
    assert!(data.join("charter.db").is_file(), "SQLite database created");
    assert!(data.join("objects").is_dir(), "objects folder created");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("keys.json")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "key file is private");
        let dir_mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700, "data directory is private");
    }
    assert!(data.join("charter.db-wal").is_file(), "the database runs in WAL mode");
    assert!(data.join("charter-audit.db-wal").is_file(), "the audit chain has its own file, in WAL mode");

    let health = http(&server.addr, "GET", "/healthz");
    assert_eq!(health.status, 200);
    assert!(health.text().contains("\"ok\""));
    let ready = http(&server.addr, "GET", "/readyz");
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert!(ready.text().contains("2024.03.29"));
    let notice = http(&server.addr, "GET", "/");
    assert_eq!(notice.status, 200);
    assert!(notice.head.to_lowercase().contains("content-type: text/html"));
    assert!(notice.text().contains("Privacy Policy of TensorOpera, Inc."));
    let openapi = http(&server.addr, "GET", "/openapi.json");
    let doc: serde_json::Value = serde_json::from_str(&openapi.text()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/readyz"].is_object());
    let missing = http(&server.addr, "GET", "/no/such/page?email=someone@example.com");
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains("\"not_found\""));
    let wrong_method = http(&server.addr, "POST", "/healthz");
    assert_eq!(wrong_method.status, 405);
    assert!(wrong_method.text().contains("\"method_not_allowed\""));
    let metrics = http(&server.addr, "GET", "/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.text().contains("charter_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"),
        "{}",
        metrics.text()
    );
    assert!(metrics.text().contains("charter_audit_entries_appended_total 1"));

    let (status, logs) = server.stop();
    assert!(status.success(), "graceful shutdown exits 0; logs: {logs}");
    assert!(logs.contains("shutting down"));
    assert!(!logs.contains("someone@example.com"), "query strings never reach the logs");

    let verify = run(cwd.path(), &["audit", "verify"]);
    let out = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{out} {}", String::from_utf8_lossy(&verify.stderr));
    assert!(out.contains("ok: 2 entries"), "start and stop are recorded: {out}");
    assert!(out.contains("0 entries after it"), "the stop is covered by a signed checkpoint: {out}");
}

#[test]
fn audit_verify_names_the_edited_entry() {
    let cwd = tempfile::tempdir().unwrap();
    let dir = cwd.path().join("data");
    let dir_s = dir.to_str().unwrap();
    for _ in 0..2 {
        let s = Server::start(cwd.path(), &["--data-dir", dir_s]);
        assert!(s.stop().0.success());
    }
    assert!(run(cwd.path(), &["audit", "verify", "--data-dir", dir_s]).status.success());
    // Edit entry 2 behind charter's back.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = charter_store::Store::connect(&charter_store::Store::sqlite_url(&dir)).await.unwrap();
        sqlx::query("UPDATE audit_log SET result = 'error' WHERE seq = 2").execute(store.pool()).await.unwrap();
        store.close().await;
    });
    let out = run(cwd.path(), &["audit", "verify", "--data-dir", dir_s]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("audit chain broken at entry 2"), "{text}");
}

#[test]
fn audit_verify_refuses_a_missing_data_dir_without_creating_it() {
    let cwd = tempfile::tempdir().unwrap();
    let out = run(cwd.path(), &["audit", "verify", "--data-dir", "nowhere"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no charter data directory at nowhere"));
    assert!(!cwd.path().join("nowhere").exists());
}

#[test]
fn settings_come_from_env_and_config_file_and_secrets_stay_out_of_logs() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("charter.toml"), "data_dir = \"from-config\"\nlog_format = \"json\"\n").unwrap();
    let s = Server::start(cwd.path(), &[]);
    assert!(cwd.path().join("from-config/keys.json").is_file(), "config file's data_dir is used");
    let (status, logs) = s.stop();
    assert!(status.success());
    let first = logs.lines().next().unwrap_or_default();
    assert!(serde_json::from_str::<serde_json::Value>(first).is_ok(), "json logs: {first}");

    // The environment beats the config file.
    let mut child = common::charter()
        .current_dir(cwd.path())
        .env("CHARTER_DATA_DIR", "from-env")
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(!child.status.success(), "from-env does not exist yet");
    assert!(String::from_utf8_lossy(&child.stderr).contains("from-env"));
    child.stderr.clear();

    // A bad config file is refused with its name and the key at fault.
    std::fs::write(cwd.path().join("bad.toml"), "data_dir = \"x\"\npassword = \"hunter2\"\n").unwrap();
    let out = run(cwd.path(), &["--config", "bad.toml", "policy", "check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("password"), "{err}");
    assert!(!err.contains("hunter2"), "values are not echoed: {err}");

    // SQLite's syncing is a setting of the config file, with two values.
    std::fs::write(cwd.path().join("sync.toml"), "sqlite_synchronous = \"off\"\n").unwrap();
    let out = run(cwd.path(), &["--config", "sync.toml", "policy", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sqlite_synchronous is `full`"));
    std::fs::write(cwd.path().join("sync.toml"), "sqlite_synchronous = \"normal\"\n").unwrap();
    assert_eq!(run(cwd.path(), &["--config", "sync.toml", "policy", "check"]).status.code(), Some(0));
}

#[test]
fn serve_on_postgres_keeps_the_password_out_of_logs() {
    let Ok(server) = std::env::var(charter_testkit::POSTGRES_ENV) else {
        eprintln!("notice: serve_on_postgres skipped; set {} to run it", charter_testkit::POSTGRES_ENV);
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(charter_testkit::TestDb::postgres_at(&server));
    // Trust authentication accepts any password, so a made-up one shows whether it leaks.
    let url = db.url.replacen("postgres://postgres@", "postgres://postgres:S3cretPassw0rd@", 1);
    assert_ne!(url, db.url, "test server URL has the expected form");
    let cwd = tempfile::tempdir().unwrap();
    let s = Server::start(cwd.path(), &["--database-url", &url, "--data-dir", "d"]);
    assert_eq!(http(&s.addr, "GET", "/readyz").status, 200);
    let (status, logs) = s.stop();
    assert!(status.success(), "{logs}");
    assert!(!logs.contains("S3cretPassw0rd"));
    assert!(!cwd.path().join("d/charter.db").exists(), "no SQLite file when a database URL is given");
    let out = common::charter()
        .current_dir(cwd.path())
        .env("CHARTER_DATABASE_URL", &url)
        .args(["audit", "verify", "--data-dir", "d"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok: 2 entries"));
    drop(rt);
    drop(db);
}
