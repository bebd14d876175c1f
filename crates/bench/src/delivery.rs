//! Delivery figures: messages through the durable queue to a loopback SMTP sink against a
//! bare `lettre` loop sending the same messages to the same sink, and webhooks to a
//! loopback receiver against a bare `reqwest` loop, in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use charter_delivery::{Config, Enqueue, Mail, Message, Seal, Senders, Webhook, Worker, WorkerSettings};
use charter_store::{AuditLog, DataDir};
use charter_testkit::receiver::Receiver;
use charter_testkit::smtp::SmtpSink;
use futures_util::StreamExt as _;
use lettre::AsyncTransport as _;

use crate::Row;

/// Messages sent at once, by charter's worker and by the baselines alike.
const CONCURRENCY: usize = 64;

fn mail(i: usize) -> Mail {
    Mail {
        to: format!("person{i}@example.org"),
        subject: format!("Notice {i}"),
        text: "A notice about your data.\n".repeat(8),
        unsubscribe: Some(format!("https://privacy.example.com/u/{i}")),
        html: None,
    }
}

/// The baseline: the same messages through one pooled `lettre` transport, 16 at a time.
async fn bare_lettre(sink: &SmtpSink, n: usize) -> anyhow::Result<Duration> {
    let transport = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(&sink.url())?
        .pool_config(lettre::transport::smtp::PoolConfig::new().max_size(CONCURRENCY as u32))
        .build();
    let start = Instant::now();
    let sent: Vec<anyhow::Result<()>> = futures_util::stream::iter(0..n)
        .map(|i| {
            let transport = &transport;
            async move {
                let m = mail(i);
                let message = lettre::Message::builder()
                    .from("privacy@tensoropera.example".parse()?)
                    .to(m.to.parse()?)
                    .subject(m.subject)
                    .message_id(Some(format!("<bare-{i}@tensoropera.example>")))
                    .body(m.text)?;
                transport.send(message).await?;
                Ok(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    sent.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok(start.elapsed())
}

/// A data directory on `url` with its audit writer and a worker over `config`.
struct Queue {
    dir: tempfile::TempDir,
    store: charter_store::Store,
    _lock: charter_store::DirLock,
    keys: Arc<charter_vault::KeyFile>,
    audit: AuditLog,
}

async fn queue(url: &str) -> anyhow::Result<Queue> {
    let dir = tempfile::tempdir()?;
    let DataDir { keys, store, lock, .. } = DataDir::open(&dir.path().join("data"), Some(url)).await?;
    let keys = Arc::new(keys);
    let (audit, _task) = AuditLog::start(&store, keys.checkpoint_signer());
    Ok(Queue { dir, store, _lock: lock, keys, audit })
}

impl Queue {
    fn worker(&self, config: &Config, policy: &charter_policy::model::Policy) -> anyhow::Result<Worker> {
        let senders = Senders::new(config, self.keys.clone(), policy, &self.dir.path().join("data"))?;
        Ok(Worker::new(
            self.store.clone(),
            self.keys.clone(),
            self.audit.clone(),
            Arc::new(senders),
            config.worker.clone(),
            Arc::default(),
        ))
    }

    /// Queues `n` messages made by `message`, a thousand per transaction; returns the time taken.
    async fn fill(&self, n: usize, message: impl Fn(usize) -> Message) -> anyhow::Result<Duration> {
        let start = Instant::now();
        for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
            let messages: Vec<(usize, Message)> = chunk.iter().map(|i| (*i, message(*i))).collect();
            let jobs = messages
                .iter()
                .map(|(i, m)| Enqueue {
                    kind: "bench",
                    idempotency_key: format!("bench-{i}"),
                    message: m,
                    seal: Seal::KeyFile,
                    max_attempts: None,
                })
                .collect();
            charter_delivery::enqueue_all(&self.store, &*self.keys, jobs, charter_store::now_us()).await?;
        }
        Ok(start.elapsed())
    }
}

fn settings() -> WorkerSettings {
    WorkerSettings { concurrency: CONCURRENCY, poll: Duration::from_millis(10), ..WorkerSettings::default() }
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// `n` messages through the queue to an SMTP sink, against the bare loop.
pub async fn mail_rows(label: &str, url: &str, n: usize, out: &mut Vec<Row>) -> anyhow::Result<()> {
    let sink = SmtpSink::start().await;
    let bare = bare_lettre(&sink, n).await?;
    let q = queue(url).await?;
    let filled = q.fill(n, |i| Message::Mail(mail(i))).await?;
    let config = Config {
        smtp_url: Some(sink.url().into()),
        mail_from: Some("privacy@tensoropera.example".into()),
        worker: settings(),
        ..Config::default()
    };
    let policy =
        charter_policy::load("tensoropera.toml", charter_policy::TENSOROPERA).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let worker = q.worker(&config, &policy.policy)?;
    let start = Instant::now();
    let tally = worker.run_until_empty(|_, _| {}).await?;
    let took = start.elapsed();
    anyhow::ensure!(tally.sent == n as u64, "sent {} of {n}", tally.sent);
    anyhow::ensure!(sink.received().len() == 2 * n, "the sink holds both runs' messages");
    out.push(Row {
        what: format!("{label}: {n} messages through the queue to a loopback SMTP sink, {CONCURRENCY} at a time (queued beforehand in {:.1} s)", filled.as_secs_f64()),
        value: format!("{:.1} s ({:.0} messages/s)", took.as_secs_f64(), rate(n, took)),
        baseline: format!("bare lettre loop, same messages and sink: {:.1} s ({:.0}/s)", bare.as_secs_f64(), rate(n, bare)),
        ratio: format!("{:.2}×", bare.as_secs_f64() / took.as_secs_f64()),
    });
    q.store.close().await;
    Ok(())
}

/// The baseline: the same JSON bodies POSTed by one `reqwest` client, 16 at a time.
async fn bare_reqwest(url: &str, n: usize) -> anyhow::Result<Duration> {
    let client = reqwest::Client::new();
    let start = Instant::now();
    let sent: Vec<anyhow::Result<()>> = futures_util::stream::iter(0..n)
        .map(|i| {
            let client = &client;
            async move {
                let body = serde_json::json!({ "id": i, "event": "erasure.requested", "data": { "subject": i } });
                let r =
                    client.post(url).header("Content-Type", "application/json").body(body.to_string()).send().await?;
                anyhow::ensure!(r.status().is_success(), "status {}", r.status());
                Ok(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    sent.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok(start.elapsed())
}

/// `n` signed webhooks through the queue to a receiver, against the bare loop.
pub async fn webhook_rows(label: &str, url: &str, n: usize, out: &mut Vec<Row>) -> anyhow::Result<()> {
    let receiver = Receiver::start().await;
    let endpoint = format!("{}/hooks", receiver.base);
    let bare = bare_reqwest(&endpoint, n).await?;
    let text = format!(
        "{}\n[recipients.bench_processor]\nname = \"Bench\"\nrole = \"processor\"\nservice = \"Bench\"\n\
         categories = [\"user.name\"]\npurposes = [\"registration\"]\ncountry = \"US\"\nsafeguard = \"art46_sccs\"\n\
         deletion = {{ webhook = \"{endpoint}\" }}\n",
        charter_policy::TENSOROPERA
    );
    let policy = charter_policy::load("bench.toml", &text).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let q = queue(url).await?;
    charter_delivery::webhook::new_secret(&q.store, &q.keys, "bench_processor", charter_store::now_us()).await?;
    q.fill(n, |i| {
        Message::Webhook(Webhook {
            recipient: "bench_processor".into(),
            event: "erasure.requested".into(),
            data: serde_json::json!({ "subject": i }),
        })
    })
    .await?;
    let worker = q.worker(&Config { worker: settings(), ..Config::default() }, &policy.policy)?;
    let start = Instant::now();
    let tally = worker.run_until_empty(|_, _| {}).await?;
    let took = start.elapsed();
    anyhow::ensure!(tally.sent == n as u64, "sent {} of {n}", tally.sent);
    out.push(Row {
        what: format!("{label}: {n} signed webhooks through the queue to a loopback receiver, {CONCURRENCY} at a time"),
        value: format!("{:.0} webhooks/s", rate(n, took)),
        baseline: format!("bare reqwest loop, same receiver: {:.0}/s", rate(n, bare)),
        ratio: format!("{:.2}×", bare.as_secs_f64() / took.as_secs_f64()),
    });
    q.store.close().await;
    Ok(())
}
