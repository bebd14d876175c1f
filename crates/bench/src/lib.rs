//! `charter bench`: the figures BENCHMARKS.md records, each next to a baseline
//! measured in the same run, printed as Markdown.
//!
//! A crate of its own so that the load generator and the bare baselines stay out of
//! the server's dependency path; the `charter` command line runs it.

mod consent;
mod delivery;
mod loadgen;
mod plain;
mod records;
mod requests;
mod retention;
mod revocation;
mod vault;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use charter_core::audit::{AuditEvent, ChainVerifier};
use charter_store::Synchronous;
use charter_store::{audit, AuditLog, Store};
use charter_testkit::TestDb;
use charter_vault::KeyFile;

/// Options of `charter bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Entries appended per writer configuration.
    #[arg(long, default_value_t = 20_000)]
    pub appends: usize,
    /// Entries in the chain whose verification is timed.
    #[arg(long, default_value_t = 1_000_000)]
    pub verify_entries: i64,
    /// Also measure on the PostgreSQL server at this URL (a scratch database is created and dropped).
    #[arg(long, env = "CHARTER_BENCH_POSTGRES", value_name = "URL")]
    pub postgres: Option<String>,
    /// Run only one set of benchmarks.
    #[arg(long, value_enum)]
    pub only: Option<BenchSet>,
    /// Messages sent in the delivery set.
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
}

/// Sets of benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchSet {
    /// Policy loading and the audit chain.
    Audit,
    /// The access decision, reads, collections and uploads.
    Vault,
    /// Only the HTTP reads and collections of the vault set.
    Http,
    /// Only how soon a revoked API key is refused (part of the vault set).
    Revocation,
    /// Messages through the durable queue: mail to an SMTP sink, webhooks to a receiver.
    Delivery,
    /// Records: a page of a subject's 10,000 records, record collections, shredding.
    Records,
    /// Consent: the check on a read, ledger appends, the public consent endpoint.
    Consent,
    /// Rights requests: known against unknown people, exports, fulfilment, erasure.
    Requests,
    /// The retention sweep over 1,000,000 due records against a plain DELETE.
    Retention,
    /// PII scanning throughput.
    Scan,
    /// Peak memory of `charter serve` under mixed load.
    Memory,
}

fn event(i: usize) -> AuditEvent {
    let mut e = AuditEvent::new(format!("key-{}", i % 8), "data.read", "ok");
    e.subject = Some(format!("3f2b8c1e-8d4a-4c6b-9a7e-{i:012}"));
    e.purpose = Some("relationship_management".into());
    e.detail = r#"{"fields":["name","email"],"categories":["user.name","user.contact.email"]}"#.into();
    e
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// Runs `writers` tasks that together make `n` calls of `op(i)`; returns the elapsed time.
async fn concurrently<F, Fut>(n: usize, writers: usize, op: F) -> anyhow::Result<Duration>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < n {
                op(i).await?;
                i += writers;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await.context("bench task panicked")??;
    }
    Ok(start.elapsed())
}

/// Appends `n` events through one audit writer from `writers` tasks; returns the time until all are committed.
async fn append_through_writer(store: &Store, keys: &KeyFile, n: usize, writers: usize) -> anyhow::Result<Duration> {
    let (log, task) = AuditLog::start(store, keys.checkpoint_signer());
    let l = log.clone();
    let took = concurrently(n, writers, move |i| {
        let l = l.clone();
        async move {
            l.append(event(i)).await?;
            Ok(())
        }
    })
    .await?;
    log.close().await?;
    task.await?;
    Ok(took)
}

/// One line of the results table.
pub struct Row {
    /// What was measured.
    pub what: String,
    /// charter's figure.
    pub value: String,
    /// The baseline measured in the same run.
    pub baseline: String,
    /// charter against the baseline or target.
    pub ratio: String,
}

fn policy_rows(out: &mut Vec<Row>) {
    let text = charter_policy::TENSOROPERA;
    let iterations = 300;
    let start = Instant::now();
    for _ in 0..iterations {
        let _ = std::hint::black_box(toml::from_str::<toml::Value>(std::hint::black_box(text)));
    }
    let parse = start.elapsed() / iterations;
    let start = Instant::now();
    for _ in 0..iterations {
        let loaded = charter_policy::load("bench", std::hint::black_box(text));
        std::hint::black_box(loaded.is_ok());
    }
    let load = start.elapsed() / iterations;
    out.push(Row {
        what: format!("Load + validate TensorOpera policy ({} KiB)", text.len() / 1024),
        value: format!("{:.2} ms", load.as_secs_f64() * 1e3),
        baseline: format!("{:.2} ms (TOML parse only)", parse.as_secs_f64() * 1e3),
        ratio: format!("{:.2}×", load.as_secs_f64() / parse.as_secs_f64()),
    });
}

async fn append_rows(label: &str, url: &str, appends: usize, out: &mut Vec<Row>) -> anyhow::Result<()> {
    let keydir = tempfile::tempdir()?;
    let keys = KeyFile::load_or_create(&keydir.path().join("keys.json"))?;
    for writers in [1usize, 16] {
        let store = Store::open(url).await?;
        sqlx::query("DELETE FROM audit_log").execute(store.pool()).await?;
        sqlx::query("DELETE FROM audit_checkpoint").execute(store.pool()).await?;
        plain::create_plain_table(&store).await?;
        // Warm both paths so neither pays for first connections.
        let s = store.clone();
        concurrently(writers * 4, writers, move |i| {
            let s = s.clone();
            async move { Ok(plain::plain_insert(&s, -(i as i64) - 1, 0, &event(i)).await?) }
        })
        .await?;
        let s = store.clone();
        let plain = concurrently(appends, writers, move |i| {
            let s = s.clone();
            async move { Ok(plain::plain_insert(&s, i as i64, i as i64, &event(i)).await?) }
        })
        .await?;
        let chained = append_through_writer(&store, &keys, appends, writers).await?;
        let report = audit::verify(&store, &keys.checkpoint_signer().verifier()).await?;
        anyhow::ensure!(report.entries == appends as i64, "chain has {} entries, expected {appends}", report.entries);
        let (a, p) = (rate(appends, chained), rate(appends, plain));
        out.push(Row {
            what: format!("Audit append, {label}, {writers} writer{}", if writers == 1 { "" } else { "s" }),
            value: format!("{a:.0} entries/s"),
            baseline: format!("{p:.0} rows/s (plain INSERT, no hash)"),
            ratio: format!("{:.2}×", a / p),
        });
        store.close().await;
    }
    Ok(())
}

async fn verify_rows(label: &str, url: &str, entries: i64, out: &mut Vec<Row>) -> anyhow::Result<()> {
    let keydir = tempfile::tempdir()?;
    let keys = KeyFile::load_or_create(&keydir.path().join("keys.json"))?;
    let store = Store::open(url).await?;
    sqlx::query("DELETE FROM audit_log").execute(store.pool()).await?;
    sqlx::query("DELETE FROM audit_checkpoint").execute(store.pool()).await?;
    let n = usize::try_from(entries)?;
    let fill = append_through_writer(&store, &keys, n, 256).await?;
    let start = Instant::now();
    let report = audit::verify(&store, &keys.checkpoint_signer().verifier()).await?;
    let full = start.elapsed();
    anyhow::ensure!(report.entries == entries, "verified {} of {entries}", report.entries);
    let loaded = audit::load_entries(&store).await?;
    let start = Instant::now();
    let mut v = ChainVerifier::default();
    for e in &loaded {
        v.push(e)?;
    }
    let chain_only = start.elapsed();
    out.push(Row {
        what: format!("Fill {label} chain with {entries} entries, 256 concurrent writers"),
        value: format!("{:.0} entries/s", rate(n, fill)),
        baseline: "—".into(),
        ratio: "—".into(),
    });
    out.push(Row {
        what: format!("`audit verify`, {label}: read + hash chain + checkpoint signatures"),
        value: format!("{:.0} entries/s", rate(n, full)),
        baseline: format!("{:.0} entries/s (chain check in memory)", rate(n, chain_only)),
        ratio: format!("{:.2}×", chain_only.as_secs_f64() / full.as_secs_f64()),
    });
    out.push(Row {
        what: "Chain check in memory, one core (SHA-256 per entry)".into(),
        value: format!("{:.0} entries/s", rate(n, chain_only)),
        baseline: "target: 1,000,000 entries/s".into(),
        ratio: format!("{:.2}× target", rate(n, chain_only) / 1e6),
    });
    store.close().await;
    Ok(())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    format!("{cpu}, {cores} cores")
}

/// Runs the benchmarks and prints a Markdown table.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    let all = args.only.is_none();
    let want = |what: BenchSet| all || args.only == Some(what);
    let postgres = match &args.postgres {
        Some(server) => Some(TestDb::postgres_at(server).await),
        None => None,
    };
    if want(BenchSet::Audit) {
        eprintln!("bench: policy");
        policy_rows(&mut rows);
        let sqlite = TestDb::sqlite();
        eprintln!("bench: SQLite appends");
        append_rows("SQLite", &sqlite.url, args.appends, &mut rows).await?;
        if let Some(pg) = &postgres {
            eprintln!("bench: PostgreSQL appends");
            append_rows("PostgreSQL", &pg.url, args.appends, &mut rows).await?;
        }
        eprintln!("bench: verify over {} entries (SQLite)", args.verify_entries);
        verify_rows("SQLite", &sqlite.url, args.verify_entries, &mut rows).await?;
    }
    if want(BenchSet::Scan) {
        eprintln!("bench: PII scan");
        vault::scan_rows(&mut rows);
        vault::scan_memory_rows(&mut rows)?;
    }
    if want(BenchSet::Vault) {
        eprintln!("bench: access decision");
        vault::decision_rows(&mut rows);
    }
    if want(BenchSet::Vault) || args.only == Some(BenchSet::Http) {
        let sqlite = TestDb::sqlite();
        eprintln!("bench: HTTP reads and collections (SQLite)");
        vault::http_rows("SQLite", &sqlite.url, Synchronous::Full, &mut rows).await?;
        // What syncing every commit costs: the same figures with commits synced only at checkpoints.
        let normal = TestDb::sqlite();
        eprintln!("bench: HTTP reads and collections (SQLite, synchronous = NORMAL)");
        vault::http_rows("SQLite with synchronous = NORMAL", &normal.url, Synchronous::Normal, &mut rows).await?;
        if let Some(server) = &args.postgres {
            let pg = TestDb::postgres_at(server).await;
            eprintln!("bench: HTTP reads and collections (PostgreSQL)");
            vault::http_rows("PostgreSQL", &pg.url, Synchronous::Full, &mut rows).await?;
        }
    }
    if want(BenchSet::Vault) || args.only == Some(BenchSet::Revocation) {
        eprintln!("bench: API key revocation");
        revocation::revocation_rows("SQLite", &TestDb::sqlite().url, &mut rows).await?;
        if let Some(server) = &args.postgres {
            let pg = TestDb::postgres_at(server).await;
            revocation::revocation_rows("PostgreSQL", &pg.url, &mut rows).await?;
        }
    }
    if want(BenchSet::Delivery) {
        eprintln!("bench: delivery (SQLite)");
        let sqlite = TestDb::sqlite();
        delivery::mail_rows("SQLite", &sqlite.url, args.messages, &mut rows).await?;
        delivery::webhook_rows("SQLite", &TestDb::sqlite().url, args.messages / 10, &mut rows).await?;
        if let Some(server) = &args.postgres {
            eprintln!("bench: delivery (PostgreSQL)");
            let pg = TestDb::postgres_at(server).await;
            delivery::mail_rows("PostgreSQL", &pg.url, args.messages, &mut rows).await?;
            let pg = TestDb::postgres_at(server).await;
            delivery::webhook_rows("PostgreSQL", &pg.url, args.messages / 10, &mut rows).await?;
        }
    }
    if want(BenchSet::Records) {
        let sqlite = TestDb::sqlite();
        eprintln!("bench: records (SQLite)");
        records::records_rows("SQLite", &sqlite.url, &mut rows).await?;
        if let Some(server) = &args.postgres {
            let pg = TestDb::postgres_at(server).await;
            eprintln!("bench: records (PostgreSQL)");
            records::records_rows("PostgreSQL", &pg.url, &mut rows).await?;
        }
    }
    if want(BenchSet::Consent) {
        eprintln!("bench: consent (SQLite)");
        consent::consent_rows("SQLite", &TestDb::sqlite().url, &mut rows).await?;
        if let Some(server) = &args.postgres {
            eprintln!("bench: consent (PostgreSQL)");
            let pg = TestDb::postgres_at(server).await;
            consent::consent_rows("PostgreSQL", &pg.url, &mut rows).await?;
        }
    }
    if want(BenchSet::Requests) {
        eprintln!("bench: rights requests (SQLite)");
        requests::requests_rows("SQLite", &TestDb::sqlite().url, &mut rows).await?;
        if let Some(server) = &args.postgres {
            eprintln!("bench: rights requests (PostgreSQL)");
            let pg = TestDb::postgres_at(server).await;
            requests::requests_rows("PostgreSQL", &pg.url, &mut rows).await?;
        }
    }
    if want(BenchSet::Retention) {
        eprintln!("bench: retention sweep (SQLite)");
        retention::retention_rows("SQLite", &TestDb::sqlite().url, &mut rows).await?;
        if let Some(server) = &args.postgres {
            eprintln!("bench: retention sweep (PostgreSQL)");
            let pg = TestDb::postgres_at(server).await;
            retention::retention_rows("PostgreSQL", &pg.url, &mut rows).await?;
        }
    }
    if want(BenchSet::Memory) {
        eprintln!("bench: memory under mixed load (60 s)");
        vault::memory_rows(&mut rows).await?;
    }
    if want(BenchSet::Vault) {
        eprintln!("bench: 1 GiB upload");
        vault::upload_rows(&mut rows).await?;
    }
    println!(
        "Machine: {}; charter {}; release build: {}\n",
        machine(),
        env!("CARGO_PKG_VERSION"),
        !cfg!(debug_assertions)
    );
    println!("| Measure | charter | Baseline (same run) | Ratio |\n| --- | --- | --- | --- |");
    for r in rows {
        println!("| {} | {} | {} | {} |", r.what, r.value, r.baseline, r.ratio);
    }
    Ok(())
}
