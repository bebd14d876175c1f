//! Shared by the vault tests: the seeded person, leak scans, upload requests.

use std::io::{Read as _, Write as _};

use charter_store::testing::TestDb;
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
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            let length = if chunked {
                "Transfer-Encoding: chunked".to_owned()
            } else {
                format!("Content-Length: {}", body.len())
            };
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\n{length}\r\n\r\n"
            );
            s.write_all(head.as_bytes()).unwrap();
            if chunked {
                // The server may answer and close before the end: later writes may fail.
                for piece in body.chunks(64 * 1024) {
                    if s.write_all(format!("{:x}\r\n", piece.len()).as_bytes()).is_err()
                        || s.write_all(piece).is_err()
                        || s.write_all(b"\r\n").is_err()
                    {
                        break;
                    }
                }
                let _ = s.write_all(b"0\r\n\r\n");
            } else {
                let _ = s.write_all(&body);
            }
            super::read_response(&mut s, Value::Null)
        })
        .await
        .unwrap()
    }

    pub async fn download(&self, token: &str, subject: &str, object: &str, purpose: &str) -> (u16, Vec<u8>) {
        let (addr, path, token) =
            (self.addr.clone(), format!("/v1/subjects/{subject}/objects/{object}?purpose={purpose}"), token.to_owned());
        tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n")
                .unwrap();
            let mut raw = Vec::new();
            s.read_to_end(&mut raw).unwrap();
            let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
            let head = String::from_utf8_lossy(&raw[..split]).into_owned();
            let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
            let mut body = raw[split + 4..].to_vec();
            if head.to_lowercase().contains("transfer-encoding: chunked") {
                body = dechunk(&body);
            }
            (status, body)
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

pub fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        b = &b[eol + 2..];
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[..n]);
        b = &b[n + 2..];
    }
}

pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
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
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).unwrap();
            let _ = s.write_all(&body);
            super::read_response(&mut s, Value::Null)
        })
        .await
        .unwrap()
    }
}
