//! Uploads and downloads against a real S3-protocol server on loopback (`s3s-fs`), through
//! the binary: the bytes in the bucket are sealed, a refused upload leaves nothing behind,
//! and a download gives back exactly what was sent.
//!
//! The S3 server is `s3s-fs` from `CHARTER_TEST_S3_SERVER` or the `PATH`; without it the
//! test prints a notice and skips, unless `CHARTER_TEST_S3_REQUIRED` is set (as CI sets it).

mod common;

use std::io::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{files, request, run, Server};

const SECRET: &str = "LOOPBACK-BUCKET-SECRET-LINE ";

/// The `s3s-fs` binary, if there is one.
fn s3_server() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("CHARTER_TEST_S3_SERVER") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("s3s-fs")).find(|p| p.is_file())
}

/// A running S3 server, stopped when dropped.
struct S3 {
    child: Child,
    endpoint: String,
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_s3(exe: &Path, root: &Path) -> S3 {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(exe)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", "charter-test", "--secret-key", "charter-test-secret"])
        .arg(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start s3s-fs");
    let endpoint = format!("127.0.0.1:{port}");
    let start = Instant::now();
    while TcpStream::connect(&endpoint).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "s3s-fs did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    S3 { child, endpoint: format!("http://{endpoint}") }
}

/// An upload with its content type, declaring `length` bytes (which may be a lie) and
/// sending `body`; returns the status and body.
fn upload(addr: &str, path: &str, token: &str, length: usize, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: text/plain\r\nContent-Length: {length}\r\n\r\n"
    )
    .unwrap();
    s.write_all(body).unwrap();
    let got = charter_testkit::http::read(&mut s);
    (got.status, got.text())
}

/// Every file under `dir` with its bytes.
fn stored(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    files(dir).into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
}

#[test]
fn uploads_are_sealed_in_a_real_s3_bucket() {
    let Some(exe) = s3_server() else {
        assert!(
            std::env::var_os("CHARTER_TEST_S3_REQUIRED").is_none(),
            "CHARTER_TEST_S3_REQUIRED is set but no s3s-fs was found"
        );
        eprintln!(
            "notice: S3 object store test skipped; install s3s-fs (cargo install s3s-fs --features binary) to run it"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (root, data) = (dir.path().join("s3"), dir.path().join("data"));
    std::fs::create_dir_all(root.join("charter-objects")).unwrap();
    let s3 = start_s3(&exe, &root);
    let data_arg = data.to_str().unwrap();
    let key = run(
        dir.path(),
        &["apikey", "create", "--name", "site", "--purposes", "support", "--points", "support", "--data-dir", data_arg],
    );
    assert!(key.status.success(), "{}", String::from_utf8_lossy(&key.stderr));
    let token = String::from_utf8(key.stdout).unwrap().trim().to_owned();
    let env = [
        ("AWS_ENDPOINT", s3.endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "charter-test"),
        ("AWS_SECRET_ACCESS_KEY", "charter-test-secret"),
        ("AWS_REGION", "us-east-1"),
    ];
    let server =
        Server::start_with_env(dir.path(), &["--data-dir", data_arg, "--object-store", "s3://charter-objects"], &env);

    let message = r#"{"subject":{"email":"ada@analytical.example"},"fields":{"name":"Ada","email":"ada@analytical.example","message":"hi"}}"#;
    let created = request(&server.addr, "POST", "/v1/collect/support", Some(&token), message);
    assert_eq!(created.status, 201, "{}", created.text());
    let id =
        serde_json::from_str::<serde_json::Value>(&created.text()).unwrap()["subject_id"].as_str().unwrap().to_owned();
    // Over one 64 KiB chunk and over the 5 MiB of an S3 part, so the upload takes several parts.
    let content: Vec<u8> = SECRET.bytes().cycle().take(6 * 1024 * 1024 + 123).collect();
    let query = format!("/v1/collect/support/upload?field=attachment&id={id}");
    let (status, body) = upload(&server.addr, &query, &token, content.len(), &content);
    assert_eq!(status, 201, "{body}");
    let object = serde_json::from_str::<serde_json::Value>(&body).unwrap()["object_id"].as_str().unwrap().to_owned();

    let files = stored(&root);
    assert!(files.iter().any(|(p, _)| p.to_string_lossy().contains(&object)), "the object is in the bucket: {files:?}");
    for (path, bytes) in &files {
        assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()), "plaintext in {}", path.display());
    }
    let path = format!("/v1/subjects/{id}/objects/{object}?purpose=support");
    let got = charter_testkit::http::send(
        &server.addr,
        &charter_testkit::http::Request::new("GET", &path).token(Some(&token)),
    );
    let head = got.head.to_lowercase();
    assert!(head.starts_with("http/1.1 200") && head.contains("content-disposition: attachment"), "{head}");
    assert!(got.body == content[..], "the download is the upload, byte for byte");

    // Declared too large for the field: refused before its body is read, and nothing is
    // left in the bucket.
    let before = stored(&root).len();
    let (status, body) = upload(&server.addr, &query, &token, 26 * 1024 * 1024, b"");
    assert_eq!(status, 413, "{body}");
    assert_eq!(stored(&root).len(), before, "a refused upload leaves no object or part behind");
    let (status, logs) = server.stop();
    assert!(status.success(), "{logs}");
    assert!(!logs.contains(SECRET.trim()) && !logs.contains("charter-test-secret"), "no secret in the logs");
}
