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
        assert!(metrics.contains(&format!("sha256=\"{}\"", app.state.policy().sha256)));
        app.stop().await;
    }
}

/// The server's own worker sends what is queued (into the sealed outbox, as no SMTP
/// server is configured), and `/metrics` counts the queue by state and the attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_worker_sends_the_queue_and_metrics_count_it() {
    for db in backends("server_worker").await {
        let app = TestApp::spawn(&db).await;
        let message = charter_delivery::Message::Mail(charter_delivery::Mail {
            to: "grace@example.org".into(),
            subject: "s".into(),
            text: "t".into(),
            unsubscribe: None,
            html: None,
        });
        let job = charter_delivery::Enqueue {
            kind: "test",
            idempotency_key: "served".into(),
            message: &message,
            seal: charter_delivery::Seal::KeyFile,
            max_attempts: None,
        };
        let (id, _) =
            charter_delivery::enqueue(&app.state.store, &*app.state.keys, job, charter_store::now_us()).await.unwrap();
        let start = std::time::Instant::now();
        while app.state.store.pending_jobs().await.unwrap() > 0 {
            assert!(start.elapsed() < std::time::Duration::from_secs(10), "the server's worker did not send it");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(app.data_dir().join(format!("outbox/mail/{id}.eml")).is_file());
        let metrics = app.raw("GET", "/metrics", None, None).await.body.as_str().unwrap_or_default().to_owned();
        assert!(metrics.contains("charter_jobs{state=\"done\"} 1\n"), "{metrics}");
        assert!(metrics.contains("charter_jobs{state=\"dead\"} 0\n"), "{metrics}");
        assert!(metrics.contains("charter_job_attempts_total{outcome=\"sent\"} 1\n"), "{metrics}");
        app.stop().await;
    }
}

/// The OpenAPI document describes every endpoint the server answers, and each documented
/// operation exists: asked without an API key, the vault's operations answer 401 (they
/// document it), the others answer what they document, and none falls through to the
/// router's `not_found` or `method_not_allowed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_endpoint() {
    let db = charter_testkit::TestDb::sqlite();
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
        "/v1/subjects/{id}/records/{record}",
        "/v1/subjects/{id}/close",
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
            .replace("{object}", &uuid::Uuid::new_v4().to_string())
            .replace("{record}", &uuid::Uuid::new_v4().to_string());
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

/// Pages get a Content-Security-Policy that allows their own stylesheet (by its hash)
/// and nothing else, and no framing; every response says `nosniff` and sends no referrer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_carry_security_headers() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let db = charter_testkit::TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let page = app.raw("GET", "/", None, None).await;
    let head = page.head.to_lowercase();
    let csp = head.lines().find_map(|l| l.strip_prefix("content-security-policy: ")).expect("a CSP on the page");
    assert!(csp.starts_with("default-src 'none';") && csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = page.body.as_str().unwrap();
    let css = &html[html.find("<style>").unwrap() + 7..html.find("</style>").unwrap()];
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(css.as_bytes()));
    assert!(page.head.contains(&format!("style-src 'sha256-{hash}'")), "the page's own stylesheet is allowed");
    assert!(head.contains("x-frame-options: deny"));
    for path in ["/", "/healthz", "/openapi.json", "/nowhere"] {
        let r = app.raw("GET", path, None, None).await.head.to_lowercase();
        assert!(r.contains("x-content-type-options: nosniff") && r.contains("referrer-policy: no-referrer"), "{path}");
    }
    let json = app.raw("GET", "/healthz", None, None).await.head.to_lowercase();
    assert!(!json.contains("content-security-policy"), "only pages need a CSP");
    app.stop().await;
}

/// A connection that sends nothing, sends half its headers, or stalls in its body
/// is closed after its timeout (408 for the body); connections beyond the cap wait
/// until one closes, and the server answers again once they are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_are_closed() {
    use std::io::{Read as _, Write as _};
    use std::time::{Duration, Instant};
    let db = charter_testkit::TestDb::sqlite();
    let limits = charter_server::Limits {
        header_read: Duration::from_millis(500),
        body_idle: Duration::from_millis(500),
        max_connections: 8,
        drain: Duration::from_secs(5),
    };
    let app = TestApp::spawn_with(&db, charter_policy::TENSOROPERA, limits).await;
    let token = app.key("timeouts", &["registration"], &["signup"]).await;
    let addr = app.addr.clone();
    let closed_after = move |send: String| {
        let addr = addr.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut s = std::net::TcpStream::connect(&addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                s.write_all(send.as_bytes()).unwrap();
                let start = Instant::now();
                let mut got = Vec::new();
                let _ = s.read_to_end(&mut got);
                (start.elapsed(), String::from_utf8_lossy(&got).into_owned())
            })
            .await
            .unwrap()
        }
    };
    let (idle, got) = closed_after(String::new()).await;
    assert!(idle < Duration::from_secs(10) && got.is_empty(), "an idle connection is closed: {idle:?} {got}");
    let (half, _) = closed_after("POST /v1/collect/signup HTTP/1.1\r\nHost: x\r\n".into()).await;
    assert!(half < Duration::from_secs(10), "half-sent headers are cut off: {half:?}");
    let huge = format!(
        "POST /v1/collect/signup HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 10737418240\r\n\r\n{{}}"
    );
    let (stalled, got) = closed_after(huge).await;
    assert!(stalled < Duration::from_secs(10), "a stalled body is cut off: {stalled:?}");
    assert!(
        got.starts_with("HTTP/1.1 413") || got.starts_with("HTTP/1.1 408"),
        "a 10 GiB body is refused or timed out: {got}"
    );
    let partial = format!(
        "POST /v1/collect/signup HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"su"
    );
    let (_, got) = closed_after(partial).await;
    assert!(got.starts_with("HTTP/1.1 408"), "a body that stops is a 408: {got}");
    assert!(got.contains("body_timeout"), "{got}");

    // Twenty idle connections against a cap of eight: the server answers again once they time out.
    let idle: Vec<_> = (0..20).map(|_| std::net::TcpStream::connect(&app.addr).unwrap()).collect();
    let health = app.raw("GET", "/healthz", None, None).await;
    assert_eq!(health.status, 200);
    drop(idle);
    app.stop().await;
}
