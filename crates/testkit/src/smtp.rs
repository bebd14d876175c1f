//! An SMTP sink on loopback: a real SMTP server over a socket that keeps every message
//! it accepts. It can be taken down (the port refuses connections) and brought back on
//! the same port, answer a chosen code to every recipient, and be slowed per message.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A message the sink accepted.
#[derive(Debug, Clone)]
pub struct Received {
    /// The envelope's recipients.
    pub to: Vec<String>,
    /// The message as sent (headers and body, dot-unstuffed).
    pub data: String,
}

impl Received {
    /// The value of header `name` (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push_str(line);
                    continue;
                }
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                if n.eq_ignore_ascii_case(name) {
                    value = Some(v.trim().to_owned());
                }
            }
        }
        value
    }
}

#[derive(Debug, Default)]
struct Behaviour {
    /// A reply code for every RCPT TO instead of 250 (e.g. 451 or 550).
    refuse_rcpt: Option<u16>,
    /// A pause before answering each message's end of data.
    delay: Duration,
}

/// A running sink.
pub struct SmtpSink {
    /// `127.0.0.1:port`.
    pub addr: String,
    received: Arc<Mutex<Vec<Received>>>,
    behaviour: Arc<Mutex<Behaviour>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SmtpSink {
    /// Starts a sink on a free port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the SMTP sink");
        let addr = listener.local_addr().expect("address").to_string();
        let mut sink = Self { addr, received: Arc::default(), behaviour: Arc::default(), task: None };
        sink.serve(listener);
        sink
    }

    /// The URL to give charter.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    fn serve(&mut self, listener: TcpListener) {
        let (received, behaviour) = (self.received.clone(), self.behaviour.clone());
        self.task = Some(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, received.clone(), behaviour.clone()));
            }
        }));
    }

    /// Stops listening: connections are refused until [`SmtpSink::up`].
    pub fn down(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn up(&mut self) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(&self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot listen again on {}: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    /// Answers `code` to every recipient from now on (`None`: accept).
    pub fn refuse_recipients(&self, code: Option<u16>) {
        self.behaviour.lock().unwrap().refuse_rcpt = code;
    }

    /// Waits `delay` before accepting each message.
    pub fn slow_down(&self, delay: Duration) {
        self.behaviour.lock().unwrap().delay = delay;
    }

    /// Every message accepted so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.down();
    }
}

async fn session(stream: TcpStream, received: Arc<Mutex<Vec<Received>>>, behaviour: Arc<Mutex<Behaviour>>) {
    // Replies go out at once, as a mail server's do (no wait for the client's ACK).
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let _ = write.write_all(b"220 sink.test ESMTP\r\n").await;
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply = match verb.as_str() {
            "EHLO" => "250-sink.test\r\n250 8BITMIME\r\n".to_owned(),
            "HELO" => "250 sink.test\r\n".to_owned(),
            "MAIL" => {
                to.clear();
                "250 ok\r\n".to_owned()
            }
            "RCPT" => match behaviour.lock().unwrap().refuse_rcpt {
                Some(code) => format!("{code} recipient refused\r\n"),
                None => {
                    to.push(line.trim_end().to_owned());
                    "250 ok\r\n".to_owned()
                }
            },
            "DATA" => {
                let _ = write.write_all(b"354 go ahead\r\n").await;
                let Some(data) = read_data(&mut lines).await else { return };
                let delay = behaviour.lock().unwrap().delay;
                tokio::time::sleep(delay).await;
                received.lock().unwrap().push(Received { to: std::mem::take(&mut to), data });
                "250 queued\r\n".to_owned()
            }
            "RSET" | "NOOP" => "250 ok\r\n".to_owned(),
            "QUIT" => {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => "502 not implemented\r\n".to_owned(),
        };
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Reads a message up to the lone dot, undoing dot-stuffing.
async fn read_data(lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<String> {
    let mut data = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        if line == ".\r\n" {
            return Some(data);
        }
        data.push_str(line.strip_prefix('.').unwrap_or(&line));
    }
}
