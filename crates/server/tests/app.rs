//! The application built in-process, on both backends: health, readiness, metrics.

mod common;

use common::{backends, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database() {
    for db in backends("readiness").await {
        let mut app = TestApp::spawn(&db).await;
        assert_eq!(app.raw("GET", "/readyz", None, None).await.status, 200);
        assert_eq!(app.raw("GET", "/healthz", None, None).await.status, 200);
        // With the database gone, the process is alive but not ready, and says so without internals.
        app.state.store.close().await;
        let r = app.raw("GET", "/readyz", None, None).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.body["error"]["code"], "not_ready", "{}", r.body);
        assert!(!r.body.to_string().to_lowercase().contains("pool"), "no internal detail leaks: {}", r.body);
        assert_eq!(app.raw("GET", "/healthz", None, None).await.status, 200);
        // Recording the stop needs the database, so the stop reports the failure instead of hiding it.
        assert!(app.stop_result().await.is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_is_in_the_chain_before_the_first_request() {
    for db in backends("start_recorded").await {
        let app = TestApp::spawn(&db).await;
        let r = app.raw("GET", "/metrics", None, None).await;
        assert_eq!(r.status, 200);
        let metrics = r.body.as_str().unwrap_or_default();
        assert!(metrics.contains("charter_audit_entries_appended_total 1"), "{metrics}");
        assert!(metrics.contains("charter_audit_batches_total 1"), "one entry, one commit: {metrics}");
        assert!(metrics.contains(&format!("sha256=\"{}\"", app.state.policy.sha256)));
        app.stop().await;
    }
}
