//! An HTTP receiver on loopback that keeps every request and answers from a script:
//! a webhook endpoint or an SMS gateway stand-in. Tests check signatures, forms and
//! credentials on what it kept.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;

/// A request the receiver kept.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status it was answered.
    pub status: u16,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One scripted answer: a status and, optionally, a `Retry-After` in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<u64>,
}

/// A running receiver.
pub struct Receiver {
    /// `http://127.0.0.1:port`.
    pub base: String,
    kept: Arc<Mutex<Vec<Request>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver on a free port answering 200 unless scripted otherwise.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let (kept, script) = (Arc::<Mutex<Vec<Request>>>::default(), Arc::<Mutex<VecDeque<Answer>>>::default());
        let (k, s) = (kept.clone(), script.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(connection(stream, k.clone(), s.clone()));
            }
        });
        Self { base, kept, script, task }
    }

    /// The next requests get these answers, in order; then 200 again.
    pub fn answer(&self, answers: &[Answer]) {
        self.script.lock().unwrap().extend(answers.iter().copied());
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.kept.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    kept: Arc<Mutex<Vec<Request>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
) {
    let mut stream = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if stream.read_line(&mut h).await.unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let length = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0u8; length];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let answer = script.lock().unwrap().pop_front().unwrap_or(Answer { status: 200, retry_after: None });
        kept.lock().unwrap().push(Request { method, path, headers, body, status: answer.status });
        let retry_after = answer.retry_after.map(|s| format!("Retry-After: {s}\r\n")).unwrap_or_default();
        let reply = format!("HTTP/1.1 {} X\r\n{retry_after}Content-Length: 0\r\n\r\n", answer.status);
        if stream.get_mut().write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Whether `header` (`t=<unix>,v1=<hex>`) is a valid signature of `body` under `secret`,
/// computed here independently of charter's own code.
pub fn signature_holds(secret: &str, header: &str, body: &[u8]) -> bool {
    use hmac::Mac as _;
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = Some(x.to_owned()),
            Some(("v1", x)) => v1 = hex::decode(x).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&v1).is_ok()
}
