//! One plain HTTP/1.1 client for tests: each request opens a connection, asks the
//! server to close it, and reads the whole response. Blocking, so tests on a runtime
//! call it from `spawn_blocking`.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

/// A request to send with [`send`].
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// A bearer token for `Authorization`.
    pub token: Option<&'a str>,
    /// The body and its content type.
    pub body: Option<(&'a str, &'a [u8])>,
    /// Extra header lines, each without its line end.
    pub headers: &'a [&'a str],
    /// Send the body in 64 KiB chunks with no declared length.
    pub chunked: bool,
}

impl<'a> Request<'a> {
    /// A request without body, token or extra headers.
    pub fn new(method: &'a str, path: &'a str) -> Self {
        Self { method, path, ..Self::default() }
    }

    /// The same request with a JSON body.
    pub fn json(self, body: &'a str) -> Self {
        Self { body: Some(("application/json", body.as_bytes())), ..self }
    }

    /// The same request with a form body (`application/x-www-form-urlencoded`).
    pub fn form(self, body: &'a str) -> Self {
        Self { body: Some(("application/x-www-form-urlencoded", body.as_bytes())), ..self }
    }

    /// The same request with a bearer token.
    pub fn token(self, token: Option<&'a str>) -> Self {
        Self { token, ..self }
    }
}

/// A whole response as received.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code (0 when the server closed without answering).
    pub status: u16,
    /// The status line and the headers.
    pub head: String,
    /// The body, with any chunked transfer encoding removed.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON, or as a JSON string when it is not JSON (`empty` when there is none).
    pub fn json(&self, empty: serde_json::Value) -> serde_json::Value {
        match self.text() {
            b if b.is_empty() => empty,
            b => serde_json::from_str(&b).unwrap_or(serde_json::Value::String(b)),
        }
    }

    /// The body decoded as UTF-8, lossily.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends `req` to `addr` over a fresh connection and reads the whole response.
pub fn send(addr: &str, req: &Request<'_>) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect to the server under test");
    s.set_read_timeout(Some(Duration::from_secs(60))).expect("set a read timeout");
    let mut head = format!("{} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n", req.method, req.path);
    if let Some(t) = req.token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for h in req.headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    let (content_type, body) = req.body.unwrap_or(("application/json", b""));
    let length = match req.chunked {
        true => "Transfer-Encoding: chunked".to_owned(),
        false => format!("Content-Length: {}", body.len()),
    };
    head.push_str(&format!("Content-Type: {content_type}\r\n{length}\r\n\r\n"));
    s.write_all(head.as_bytes()).expect("send the request head");
    // A server may answer and close before reading a body it refuses: later writes may fail.
    let _ = match req.chunked {
        true => write_chunked(&mut s, body),
        false => s.write_all(body),
    };
    read(&mut s)
}

fn write_chunked(s: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
    for piece in body.chunks(64 * 1024) {
        s.write_all(format!("{:x}\r\n", piece.len()).as_bytes())?;
        s.write_all(piece)?;
        s.write_all(b"\r\n")?;
    }
    s.write_all(b"0\r\n\r\n")
}

/// Reads a whole response: up to its `Content-Length` when it declares one (a server may
/// keep the connection open), else until the server closes the connection.
pub fn read(s: &mut TcpStream) -> Response {
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        if let Some(total) = declared_end(&raw) {
            if raw.len() >= total {
                break;
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n");
    let (head, body) = match split {
        Some(at) => (&raw[..at], &raw[at + 4..]),
        None => (&raw[..], &[][..]),
    };
    let head = String::from_utf8_lossy(head).into_owned();
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    let body = if chunked { dechunk(body) } else { body.to_vec() };
    Response { status, head, body }
}

/// Where a response ends when its head is in and declares a `Content-Length`.
fn declared_end(raw: &[u8]) -> Option<usize> {
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..at]).to_ascii_lowercase();
    let length = head.lines().find_map(|l| l.strip_prefix("content-length:"))?.trim().parse::<usize>().ok()?;
    Some(at + 4 + length)
}

/// The payload of a chunked body (as much as arrived whole).
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&b[..eol]).ok().and_then(|n| usize::from_str_radix(n.trim(), 16).ok());
        let Some(n) = size.filter(|n| *n > 0 && b.len() >= eol + 2 + n) else { break };
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[(eol + 4 + n).min(b.len())..];
    }
    out
}
