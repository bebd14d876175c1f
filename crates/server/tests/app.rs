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

/// The OpenAPI document describes every endpoint the server answers, and each documented
/// operation exists: asked without an API key, the vault's operations answer 401 (they
/// document it), the others answer what they document, and none falls through to the
/// router's `not_found` or `method_not_allowed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_endpoint() {
    let db = charter_store::testing::TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let doc = app.raw("GET", "/openapi.json", None, None).await.body;
    let paths = doc["paths"].as_object().unwrap();
    let served = [
        "/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/v1/collect/{point}",
        "/v1/collect/{point}/upload",
        "/v1/subjects/{id}/data",
        "/v1/subjects/lookup",
        "/v1/subjects/{id}/objects/{object}",
    ];
    let mut documented: Vec<&str> = paths.keys().map(String::as_str).collect();
    documented.sort_unstable();
    let mut expected = served.to_vec();
    expected.sort_unstable();
    assert_eq!(documented, expected);
    for (path, ops) in paths {
        let concrete = path
            .replace("{point}", "signup")
            .replace("{id}", &uuid::Uuid::new_v4().to_string())
            .replace("{object}", &uuid::Uuid::new_v4().to_string());
        for (method, op) in ops.as_object().unwrap() {
            let r = app.raw(&method.to_uppercase(), &concrete, None, Some("{}")).await;
            assert!(
                op["responses"].get(r.status.to_string()).is_some(),
                "{method} {path} answered {}, which it does not document: {}",
                r.status,
                r.body
            );
            assert!(!["not_found", "method_not_allowed"].contains(&r.body["error"]["code"].as_str().unwrap_or("")));
            if op.get("security").is_some() {
                assert_eq!(r.status, 401, "{method} {path}");
            }
        }
    }
    app.stop().await;
}
