//! Uploads and downloads over HTTP, on SQLite and PostgreSQL: sealed, bounded, scanned, purpose-checked.

mod common;

use std::io::{Read as _, Write as _};

use charter_testkit::TestDb;
use common::data::*;
use common::{backends, TestApp};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_sealed_bounded_and_purpose_checked() {
    for db in backends("vault_uploads").await {
        let app = TestApp::spawn(&db).await;
        let site = app.key("site", &["support"], &["support"]).await;
        let nosupport = app.key("ads", &["analytics"], &["newsletter"]).await;
        let body =
            json!({ "subject": { "email": EMAIL }, "fields": { "name": NAME, "email": EMAIL, "message": "hello" } });
        let id = app.collect(&site, "support", &body).await.body["subject_id"].as_str().unwrap().to_owned();
        let secret_line = b"CONFIDENTIAL-ATTACHMENT-LINE ";
        let content: Vec<u8> = secret_line.iter().copied().cycle().take(3 * 64 * 1024 + 123).collect();
        let q = format!("field=attachment&id={id}");

        let r = app.upload(&site, &q, "text/plain", &content).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let object = r.body["object_id"].as_str().unwrap().to_owned();
        assert_eq!(r.body["size"], content.len());
        let (status, back) = app.download(&site, &id, &object, "support").await;
        assert_eq!(status, 200);
        assert!(back == content, "the download is the upload, byte for byte");
        // An exact multiple of the chunk size round-trips too.
        let exact = vec![5u8; 2 * 64 * 1024];
        let o2 = app.upload(&site, &q, "text/plain", &exact).await.body["object_id"].as_str().unwrap().to_owned();
        assert!(app.download(&site, &id, &o2, "support").await.1 == exact);

        // Refusals store nothing, say why, and are in the audit chain.
        let before = app.count("objects").await;
        let refused_before = collect_refusals(&app).await.len();
        /// (what, query, content type, body, sent without a length, status, code, message)
        type Case<'a> = (&'a str, String, &'a str, Vec<u8>, bool, u16, &'a str, &'a str);
        let over = || vec![b'x'; 10 * 1024 * 1024 + 1];
        let cases: Vec<Case> = vec![
            ("over size", q.clone(), "text/plain", over(), false, 413, "too_large", "accepts at most 10485760 bytes"),
            // With no length declared, the size is enforced while the body streams in.
            ("over size, streamed", q.clone(), "text/plain", over(), true, 413, "too_large", "at most 10485760 bytes"),
            (
                "wrong content type",
                q.clone(),
                "application/x-msdownload",
                b"MZ".to_vec(),
                false,
                415,
                "unsupported_content_type",
                "accepts application/pdf, image/png, image/jpeg, text/plain; this file's content type is not one of them",
            ),
            (
                "undeclared field",
                format!("field=avatar&id={id}"),
                "text/plain",
                b"x".to_vec(),
                false,
                422,
                "undeclared_field",
                "the field named is not declared for collection point `support`",
            ),
            (
                "not a file field",
                format!("field=message&id={id}"),
                "text/plain",
                b"x".to_vec(),
                false,
                422,
                "wrong_type",
                "field `message` of `support` is not a file",
            ),
            ("no field named", format!("id={id}"), "text/plain", b"x".to_vec(), false, 400, "missing_field", "?field="),
            (
                "query that does not parse",
                format!("field=attachment&colour=red&id={id}"),
                "text/plain",
                b"x".to_vec(),
                false,
                400,
                "malformed_query",
                "a query parameter is not one this endpoint takes; expected one of `field`",
            ),
            (
                "unknown subject",
                format!("field=attachment&id={}", uuid::Uuid::new_v4()),
                "text/plain",
                b"x".to_vec(),
                false,
                404,
                "unknown_subject",
                "no such subject",
            ),
        ];
        for (what, query, ct, bytes, chunked, status, code, says) in &cases {
            let r = app.upload_at("support", &site, query, ct, bytes, *chunked).await;
            assert_eq!((r.status, r.body["error"]["code"].as_str()), (*status, Some(*code)), "{what}: {}", r.body);
            let message = r.body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(says), "{what}: {message}");
        }
        let denied = app.upload(&nosupport, &q, "text/plain", b"x").await;
        assert_eq!((denied.status, denied.body["error"]["code"].as_str()), (403, Some("point_not_granted_to_key")));
        assert_eq!(app.count("objects").await, before, "no refused upload left a record");
        assert_eq!(
            collect_refusals(&app).await.len(),
            refused_before + cases.len() + 1,
            "every refusal is in the chain"
        );
        // Denied downloads carry no data.
        let (status, denied) = app.download(&nosupport, &id, &object, "analytics").await;
        assert_eq!(status, 403);
        assert!(!denied.windows(secret_line.len()).any(|w| w == secret_line));

        // On SQLite the objects live in the data directory: only ciphertext is there.
        let dir = app.stop().await;
        let stored = common::files(&dir.path().join("data/objects"));
        assert_eq!(stored.len(), 2, "exactly the two accepted uploads are stored, nothing of the refused: {stored:?}");
        for f in stored {
            let bytes = std::fs::read(&f).unwrap();
            assert!(!bytes.windows(secret_line.len()).any(|w| w == secret_line), "plaintext in {}", f.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_scanned_as_the_point_says() {
    for db in backends("vault_upload_scans").await {
        let line = "Please reach me at grace.hopper@cobol.example or +1 202 555 0147 about the bug.\n";
        let content: String = line.repeat(40_000); // about 3.3 MB: several scan windows
        for action in ["record", "anonymise", "reject"] {
            let policy = charter_policy::TENSOROPERA.replacen(
                "scan = \"record\" # P08: findings",
                &format!("scan = \"{action}\" # P08: findings"),
                1,
            );
            let app = TestApp::spawn_with_policy(&db, &policy).await;
            let site = app.key(&format!("site-{action}"), &["support"], &["support"]).await;
            let body = json!({ "subject": { "email": EMAIL }, "fields": { "name": NAME, "email": EMAIL, "message": "hello" } });
            let id = app.collect(&site, "support", &body).await.body["subject_id"].as_str().unwrap().to_owned();
            let before = app.count("objects").await;
            let r = app.upload(&site, &format!("field=attachment&id={id}"), "text/plain", content.as_bytes()).await;
            let last: String = sqlx::query_scalar("SELECT detail FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_one(app.state.store.pool())
                .await
                .unwrap();
            assert!(!last.contains("grace.hopper"), "{action}: the audit holds types and counts only: {last}");
            match action {
                "record" => {
                    assert_eq!(r.status, 201, "{}", r.body);
                    let object = r.body["object_id"].as_str().unwrap();
                    let (_, back) = app.download(&site, &id, object, "support").await;
                    assert!(back == content.as_bytes(), "recorded uploads are stored as sent");
                    assert!(
                        last.contains("\"EMAIL_ADDRESS\":40000") && last.contains("\"PHONE_NUMBER\":40000"),
                        "{last}"
                    );
                }
                "anonymise" => {
                    assert_eq!(r.status, 201, "{}", r.body);
                    let object = r.body["object_id"].as_str().unwrap();
                    let (_, back) = app.download(&site, &id, object, "support").await;
                    let back = String::from_utf8(back).unwrap();
                    assert_eq!(
                        back,
                        "Please reach me at <EMAIL_ADDRESS> or <PHONE_NUMBER> about the bug.\n".repeat(40_000)
                    );
                    assert_eq!(r.body["size"], back.len(), "the stored size is the anonymised size");
                }
                _ => {
                    assert_eq!(
                        (r.status, r.body["error"]["code"].as_str()),
                        (422, Some("personal_data_found")),
                        "{}",
                        r.body
                    );
                    assert!(!r.body.to_string().contains("grace.hopper"));
                    assert_eq!(app.count("objects").await, before, "nothing stored");
                    assert!(last.contains("\"refused\"") || last.contains("reject"), "{last}");
                }
            }
            app.stop().await;
        }
    }
}

/// At a file field that declares no content types, any is accepted, and the caller's
/// Content-Type text, which could be anything, stays out of the append-only audit chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeclared_content_type_is_not_recorded() {
    let db = TestDb::sqlite();
    let policy = charter_policy::TENSOROPERA.replacen(
        "content_types = [\"application/pdf\", \"image/png\", \"image/jpeg\", \"text/plain\"]\n",
        "",
        1,
    );
    assert_ne!(policy, charter_policy::TENSOROPERA, "the support attachment's content types are removed");
    let app = TestApp::spawn_with_policy(&db, &policy).await;
    let site = app.key("site", &["support"], &["support"]).await;
    let body = json!({ "subject": { "email": EMAIL }, "fields": { "name": NAME, "email": EMAIL, "message": "hello" } });
    let id = app.collect(&site, "support", &body).await.body["subject_id"].as_str().unwrap().to_owned();
    let chosen = "x-ada/lovelace-notes";
    let r = app.upload(&site, &format!("field=attachment&id={id}"), chosen, b"notes").await;
    assert_eq!(r.status, 201, "{}", r.body);
    let (action, detail): (String, String) =
        sqlx::query_as("SELECT action, detail FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!((action.as_str(), &detail["content_type"]), ("data.collect", &Value::Null), "{detail}");
    assert_eq!(detail["object"], r.body["object_id"]);
    // The object's own record keeps it (a download answers with it); the chain does not.
    let details: Vec<String> =
        sqlx::query_scalar("SELECT detail FROM audit_log").fetch_all(app.state.store.pool()).await.unwrap();
    assert!(details.iter().all(|d| !d.contains("lovelace")), "{details:?}");
    app.stop().await;
}

/// A download opens the object's sealed chunks only as the client reads them: a client
/// that reads the first MiB of 64 and goes away leaves the rest unread and unopened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_stops_when_its_client_goes_away() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let key = app.key("storage", &["raw_data_storage"], &["signup", "raw_upload"]).await;
    let id = app.collect(&key, "signup", &signup(EMAIL)).await.body["subject_id"].as_str().unwrap().to_owned();
    let content: Vec<u8> = (0..64u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let up = app
        .upload_at("raw_upload", &key, &format!("field=file&id={id}"), "application/octet-stream", &content, false)
        .await;
    assert_eq!(up.status, 201, "{}", up.body);
    let object = up.body["object_id"].as_str().unwrap().to_owned();
    let (addr, path) = (app.addr.clone(), format!("/v1/subjects/{id}/objects/{object}?purpose=raw_data_storage"));
    let key2 = key.clone();
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key2}\r\n\r\n").unwrap();
        let mut first = vec![0u8; 1 << 20];
        s.read_exact(&mut first).unwrap();
    })
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let metrics = app.raw("GET", "/metrics", None, None).await.body.as_str().unwrap().to_owned();
    let opened: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("charter_download_chunks_opened_total "))
        .and_then(|n| n.parse().ok())
        .expect("the counter");
    assert!(opened < 512, "{opened} of 1,024 chunks opened for a client that read 16");
    app.stop().await;
}
