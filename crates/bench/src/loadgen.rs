//! A minimal HTTP/1.1 keep-alive client for `charter bench`: enough to drive
//! charter and a baseline on loopback with many connections, and to time each request.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

/// One keep-alive connection.
pub struct Conn {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Conn {
    /// Connects to `addr`.
    pub async fn open(addr: &str) -> anyhow::Result<Self> {
        let s = TcpStream::connect(addr).await.with_context(|| format!("connect {addr}"))?;
        s.set_nodelay(true)?;
        Ok(Self { stream: BufReader::new(s), host: addr.to_owned() })
    }

    /// Sends a request and reads the whole response; returns status and body.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        body: &[u8],
        content_type: &str,
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        );
        let s = self.stream.get_mut();
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        self.read_response().await
    }

    /// Reads one response.
    pub async fn read_response(&mut self) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 = line.split(' ').nth(1).and_then(|c| c.parse().ok()).context("no status line")?;
        let mut len = None;
        let mut chunked = false;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let lower = l.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse::<usize>().ok();
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let mut body = Vec::new();
        if let Some(n) = len {
            body.resize(n, 0);
            self.stream.read_exact(&mut body).await?;
        } else if chunked {
            loop {
                line.clear();
                self.stream.read_line(&mut line).await?;
                let n = usize::from_str_radix(line.trim(), 16).context("chunk size")?;
                let mut chunk = vec![0u8; n + 2];
                self.stream.read_exact(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            bail!("response without a length");
        }
        Ok((status, body))
    }

    /// The raw stream, for streaming a large body.
    pub fn raw(&mut self) -> &mut TcpStream {
        self.stream.get_mut()
    }
}

/// Latencies in microseconds, summarised.
pub struct Summary {
    /// Requests completed.
    pub count: usize,
    /// Requests per second.
    pub rate: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
}

/// Sorts and summarises latencies collected over `elapsed`.
pub fn summarise(mut lat: Vec<u64>, elapsed: Duration) -> Summary {
    lat.sort_unstable();
    let pick = |q: f64| lat.get(((lat.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0) as f64;
    Summary { count: lat.len(), rate: lat.len() as f64 / elapsed.as_secs_f64(), p50_us: pick(0.5), p99_us: pick(0.99) }
}

/// Runs one task per connection and gathers every latency they recorded.
async fn per_connection<F, Fut>(conns: usize, task: F) -> anyhow::Result<Vec<u64>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Vec<u64>>> + Send + 'static,
{
    let tasks: Vec<_> = (0..conns).map(|c| tokio::spawn(task(c))).collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(all)
}

/// Closed loop: `conns` connections, each sending its next request as soon as
/// the previous answers, for `duration`. `request(i)` gives (method, path, body).
pub async fn closed_loop<F>(
    addr: &str,
    token: &str,
    conns: usize,
    duration: Duration,
    request: F,
) -> anyhow::Result<Summary>
where
    F: Fn(usize) -> (&'static str, String, Vec<u8>) + Send + Sync + Clone + 'static,
{
    let (lat, elapsed) = closed_loop_latencies(addr, token, conns, duration, request).await?;
    Ok(summarise(lat, elapsed))
}

/// [`closed_loop`]'s latencies and how long it ran.
async fn closed_loop_latencies<F>(
    addr: &str,
    token: &str,
    conns: usize,
    duration: Duration,
    request: F,
) -> anyhow::Result<(Vec<u64>, Duration)>
where
    F: Fn(usize) -> (&'static str, String, Vec<u8>) + Send + Sync + Clone + 'static,
{
    let start = Instant::now();
    let all = per_connection(conns, |c| {
        let (addr, token, request) = (addr.to_owned(), token.to_owned(), request.clone());
        async move {
            let mut conn = Conn::open(&addr).await?;
            let mut lat = Vec::new();
            let mut i = c;
            while start.elapsed() < duration {
                let (m, p, b) = request(i);
                let t = Instant::now();
                let (status, body) = conn.send(m, &p, &token, &b, "application/json").await?;
                if !(200..300).contains(&status) {
                    bail!("{m} {p} answered {status}: {}", String::from_utf8_lossy(&body));
                }
                lat.push(t.elapsed().as_micros() as u64);
                i += conns;
            }
            anyhow::Ok(lat)
        }
    })
    .await?;
    Ok((all, start.elapsed()))
}

/// A GET that [`alternating`] repeats: (address, bearer token, path).
pub struct Target {
    pub addr: String,
    pub token: String,
    pub path: String,
}

/// One target's share of [`alternating`]: over all its turns, and each turn's rate.
pub struct Alternated {
    /// All its turns together.
    pub whole: Summary,
    /// Requests per second in each turn, in order.
    pub turns: Vec<f64>,
}

impl Alternated {
    /// This target's throughput against `base`'s: the ratio in each round (two turns
    /// a few seconds apart at most), as (median, lowest, highest), and over the whole run.
    pub fn against(&self, base: &Alternated) -> Paired {
        let mut r: Vec<f64> = self.turns.iter().zip(&base.turns).map(|(a, b)| a / b).collect();
        r.sort_by(f64::total_cmp);
        let median = match r.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => r[n / 2],
            n => (r[n / 2 - 1] + r[n / 2]) / 2.0,
        };
        Paired {
            median,
            low: r.first().copied().unwrap_or(f64::NAN),
            high: r.last().copied().unwrap_or(f64::NAN),
            rounds: r.len(),
            whole: self.whole.rate / base.whole.rate,
        }
    }
}

/// A throughput ratio from [`Alternated::against`].
#[derive(Debug)]
pub struct Paired {
    pub median: f64,
    pub low: f64,
    pub high: f64,
    pub rounds: usize,
    pub whole: f64,
}

impl std::fmt::Display for Paired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.2}× (median of {} rounds, {:.2}–{:.2}×; whole run {:.2}×)",
            self.median, self.rounds, self.low, self.high, self.whole
        )
    }
}

/// Closed loops of GETs against several targets taking turns, `slice` each, for
/// `rounds` rounds, so that a noisy machine's slow and fast moments fall on all of them
/// alike. Every other round runs the targets in reverse order, so that none always
/// follows another (and inherits what that one leaves running). For each target: a
/// summary over all its turns, and each turn's rate. A turn that completes no request
/// is an error.
pub async fn alternating(
    targets: &[Target],
    conns: usize,
    rounds: usize,
    slice: Duration,
) -> anyhow::Result<Vec<Alternated>> {
    let mut runs: Vec<(Vec<u64>, Duration, Vec<f64>)> =
        targets.iter().map(|_| (Vec::new(), Duration::ZERO, Vec::new())).collect();
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..targets.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let (t, run) = (&targets[i], &mut runs[i]);
            let path = t.path.clone();
            let (lat, took) =
                closed_loop_latencies(&t.addr, &t.token, conns, slice, move |_| ("GET", path.clone(), Vec::new()))
                    .await?;
            if lat.is_empty() {
                bail!("GET {} answered no request in {slice:?}", t.path);
            }
            run.2.push(lat.len() as f64 / took.as_secs_f64());
            run.0.extend(lat);
            run.1 += took;
        }
    }
    Ok(runs.into_iter().map(|(lat, took, turns)| Alternated { whole: summarise(lat, took), turns }).collect())
}

/// Open loop at `rate` requests per second spread over `conns` connections;
/// latency counts from when each request was due, so a slow answer is not hidden.
pub async fn open_loop<F>(
    addr: &str,
    token: &str,
    conns: usize,
    rate: f64,
    duration: Duration,
    request: F,
) -> anyhow::Result<Summary>
where
    F: Fn(usize) -> (&'static str, String, Vec<u8>) + Send + Sync + Clone + 'static,
{
    let per_conn = Duration::from_secs_f64(conns as f64 / rate);
    let start = Instant::now();
    let all = per_connection(conns, |c| {
        let (addr, token, request) = (addr.to_owned(), token.to_owned(), request.clone());
        async move {
            let mut conn = Conn::open(&addr).await?;
            let mut lat = Vec::new();
            let offset = per_conn.mul_f64(c as f64 / conns as f64);
            let mut due = start + offset;
            let mut i = c;
            while due.duration_since(start) < duration {
                tokio::time::sleep_until(due.into()).await;
                let (m, p, b) = request(i);
                let (status, _) = conn.send(m, &p, &token, &b, "application/json").await?;
                if !(200..300).contains(&status) {
                    bail!("{m} {p} answered {status}");
                }
                lat.push(due.elapsed().as_micros() as u64);
                due += per_conn;
                i += conns;
            }
            anyhow::Ok(lat)
        }
    })
    .await?;
    Ok(summarise(all, duration))
}
