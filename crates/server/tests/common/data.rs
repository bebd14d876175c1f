//! Shared by the vault tests: the seeded person, leak scans, upload requests.

use charter_testkit::http::{self, Request};
use charter_testkit::TestDb;
use charter_vault::KeyWrapper as _;
use serde_json::{json, Value};

use super::{Resp, TestApp};

pub const EMAIL: &str = "ada.lovelace@analytical.example";
pub const NAME: &str = "Ada Byron-Lovelace";
pub const PASSWORD: &str = "correct-horse-battery-staple-19";

pub fn signup(email: &str) -> Value {
    json!({
        "subject": { "email": email },
        "fields": { "name": NAME, "email": email, "password": PASSWORD, "age_attestation": true },
        "consents": { "newsletter": true, "direct_marketing": false }
    })
}

/// No seeded value is stored anywhere: every table of a PostgreSQL database
/// (bytea included, as hex), or every file of a SQLite database (WAL included).
pub async fn assert_no_plaintext(db: &TestDb, seeded: &[&str]) {
    let needles: Vec<&[u8]> = seeded.iter().map(|s| s.as_bytes()).collect();
    assert_absent(db, &needles).await;
}

/// None of `needles` is in the logs or anywhere in the database: in any file of a SQLite database (WAL,
/// free pages and the audit file included), or in any row of any table of a PostgreSQL
/// database (as text, and bytea as hex).
pub async fn assert_absent(db: &TestDb, needles: &[&[u8]]) {
    let hex_of = |s: &[u8]| s.iter().map(|b| format!("{b:02x}")).collect::<String>();
    // Nor in anything logged, at debug level, so far.
    let logged = super::logs();
    assert!(logged.windows(b"serving".len()).any(|w| w == b"serving"), "the logs are captured");
    for s in needles {
        assert!(!logged.windows(s.len()).any(|w| w == *s), "{:?} in the logs", String::from_utf8_lossy(s));
    }
    match db.path() {
        Some(dir) => {
            let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
            assert!(files.iter().any(|f| f.file_name() == "charter.db"), "the database file is scanned");
            assert!(files.iter().any(|f| f.file_name() == "charter-audit.db"), "the audit chain's file is scanned");
            for entry in files {
                let bytes = std::fs::read(entry.path()).unwrap();
                for s in needles {
                    assert!(
                        !bytes.windows(s.len()).any(|w| w == *s),
                        "{:?} in {}",
                        String::from_utf8_lossy(s),
                        entry.path().display()
                    );
                }
            }
        }
        None => {
            let tables = db.postgres_rows().await.expect("a PostgreSQL database");
            assert!(tables.len() >= 8, "{tables:?}");
            for (t, rows) in tables {
                for row in rows {
                    for s in needles {
                        let text = std::str::from_utf8(s).is_ok_and(|s| row.contains(s));
                        assert!(!text && !row.contains(&hex_of(s)), "{:?} in table {t}", String::from_utf8_lossy(s));
                    }
                }
            }
        }
    }
}

/// Copies the sealed value of `from` (subject, field) over that of `to`, as someone with
/// write access to the database could.
pub async fn move_sealed(app: &TestApp, from: (&str, &str), to: (&str, &str)) {
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT sealed FROM field_values WHERE subject_id = $1 AND field = $2")
        .bind(from.0)
        .bind(from.1)
        .fetch_one(app.state.store.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE field_values SET sealed = $1 WHERE subject_id = $2 AND field = $3")
        .bind(sealed)
        .bind(to.0)
        .bind(to.1)
        .execute(app.state.store.pool())
        .await
        .unwrap();
}

impl TestApp {
    pub async fn upload(&self, token: &str, query: &str, content_type: &str, body: &[u8]) -> Resp {
        self.upload_at("support", token, query, content_type, body, false).await
    }

    /// Uploads `body` at `point`; `chunked` sends it in 64 KiB chunks with no declared length.
    pub async fn upload_at(
        &self,
        point: &str,
        token: &str,
        query: &str,
        content_type: &str,
        body: &[u8],
        chunked: bool,
    ) -> Resp {
        let (addr, path) = (self.addr.clone(), format!("/v1/collect/{point}/upload?{query}"));
        let (token, content_type, body) = (token.to_owned(), content_type.to_owned(), body.to_vec());
        tokio::task::spawn_blocking(move || {
            let request = Request {
                token: Some(&token),
                body: Some((&content_type, &body)),
                chunked,
                ..Request::new("POST", &path)
            };
            Resp::of(&http::send(&addr, &request), Value::Null)
        })
        .await
        .unwrap()
    }

    pub async fn download(&self, token: &str, subject: &str, object: &str, purpose: &str) -> (u16, Vec<u8>) {
        let (addr, path, token) =
            (self.addr.clone(), format!("/v1/subjects/{subject}/objects/{object}?purpose={purpose}"), token.to_owned());
        tokio::task::spawn_blocking(move || {
            let got = http::send(&addr, &Request::new("GET", &path).token(Some(&token)));
            (got.status, got.body)
        })
        .await
        .unwrap()
    }
}

/// The details of the refused collections and uploads in the audit chain, in order.
pub async fn collect_refusals(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'data.collect' AND result = 'refused' ORDER BY seq")
        .fetch_all(app.state.store.pool())
        .await
        .unwrap()
}

/// The stored password hash of subject `id`, opened with its data key.
pub async fn stored_password_hash(app: &TestApp, id: &str) -> String {
    let stored = app.state.store.field_value(id, "password").await.unwrap().unwrap();
    let subject = app.state.store.subject(id).await.unwrap().unwrap();
    let data_key = app.state.keys.unwrap(id, subject.wrapped.as_ref().unwrap()).unwrap();
    String::from_utf8(charter_server::subject::open_value(&data_key, id, &stored).unwrap()).unwrap()
}

/// One part of a multipart submission: its name, content type and bytes.
pub struct Part<'a> {
    pub name: &'a str,
    pub content_type: &'a str,
    pub bytes: Vec<u8>,
}

impl TestApp {
    /// Posts `parts` to `/v1/collect/{point}` as `multipart/form-data`.
    pub async fn submit(&self, token: &str, point: &str, parts: &[Part<'_>]) -> Resp {
        let boundary = "charter-test-boundary-7d1c";
        let mut body = Vec::new();
        for p in parts {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            let filename = if p.name == "body" { String::new() } else { format!("; filename=\"{}.bin\"", p.name) };
            body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{}\"{filename}\r\n", p.name).as_bytes(),
            );
            body.extend_from_slice(format!("Content-Type: {}\r\n\r\n", p.content_type).as_bytes());
            body.extend_from_slice(&p.bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let (addr, path, token) = (self.addr.clone(), format!("/v1/collect/{point}"), token.to_owned());
        tokio::task::spawn_blocking(move || {
            let content_type = format!("multipart/form-data; boundary={boundary}");
            let request =
                Request { token: Some(&token), body: Some((&content_type, &body)), ..Request::new("POST", &path) };
            Resp::of(&http::send(&addr, &request), Value::Null)
        })
        .await
        .unwrap()
    }
}
