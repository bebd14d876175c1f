//! `charter bench --only consent`: what the consent check adds to a read (the same
//! read for a purpose that rests on consent and for one that does not, taking turns),
//! ledger appends against a plain insert of the same rows, and the public consent
//! endpoint's throughput and its p99 at a fixed rate.

use std::time::Duration;

use charter_core::consent::Source;
use charter_store::consents::NewConsent;
use charter_store::Store;
use serde_json::json;

use crate::loadgen::{alternating, closed_loop, open_loop, Conn, Target};
use crate::vault::Running;
use crate::{concurrently, rate, Row};

const RUN: Duration = Duration::from_secs(5);
const ROUNDS: usize = 10;
/// Ledger rows appended in each way.
const APPENDS: usize = 20_000;
/// Answers of other people already in the ledger when reads are timed.
const OTHERS: usize = 50_000;

/// The policy with the public endpoint's per-network limit lifted: the load comes from one address.
fn policy() -> anyhow::Result<charter_policy::LoadedPolicy> {
    let text = charter_policy::TENSOROPERA.replace("choices_per_minute = 60", "choices_per_minute = 1000000000");
    anyhow::ensure!(text != charter_policy::TENSOROPERA, "the policy's choices_per_minute was not found");
    charter_policy::load("bench", &text).map_err(|e| anyhow::anyhow!("{e}"))
}

fn answer(subject: Option<&str>, visitor: Option<String>, purpose: &str, given: bool) -> NewConsent {
    NewConsent {
        subject_id: subject.map(str::to_owned),
        visitor_id: visitor,
        purpose: purpose.to_owned(),
        given,
        at_us: charter_store::now_us(),
        source: Source::Api.as_str(),
        point: None,
        policy_version: Some("2024.03.29".into()),
        notice_hash: Some("0".repeat(64)),
        ip_prefix: Some("192.0.2.0/24".into()),
        agent: Some("Firefox on Linux".into()),
        conflicts_with_gpc: false,
    }
}

/// Every consent figure on one backend.
pub async fn consent_rows(label: &str, url: &str, out: &mut Vec<Row>) -> anyhow::Result<()> {
    let running = Running::start_with(url, charter_store::Synchronous::Full, policy()?).await?;
    let (addr, store) = (running.addr.clone(), running.state.store.clone());
    let token = store
        .create_api_key("bench-consent", &["registration".into(), "newsletter".into()], &["signup".into()], 0)
        .await?;
    let mut c = Conn::open(&addr).await?;
    let body = json!({
        "subject": { "email": "reader@bench.example" },
        "fields": { "name": "Reader", "email": "reader@bench.example", "password": "pw-bench-000000", "age_attestation": true },
        "consents": { "newsletter": true }
    });
    let (status, made) =
        c.send("POST", "/v1/collect/signup", &token, body.to_string().as_bytes(), "application/json").await?;
    anyhow::ensure!(status == 201, "signup: {status} {}", String::from_utf8_lossy(&made));
    let id = serde_json::from_slice::<serde_json::Value>(&made)?["subject_id"].as_str().unwrap_or_default().to_owned();
    fill_ledger(&store, &id).await?;
    read_rows(label, &addr, &token, &id, out).await?;
    append_rows(label, &store, out).await?;
    endpoint_rows(label, &addr, &running.state.policy().notice_hash, out).await?;
    running.stop().await
}

/// Other people's answers, and twenty of the reader's own (ending with consent given).
async fn fill_ledger(store: &Store, id: &str) -> anyhow::Result<()> {
    let others: Vec<NewConsent> = (0..OTHERS)
        .map(|i| answer(None, Some(format!("{i:032x}")), "audience_measurement", i.is_multiple_of(2)))
        .collect();
    for chunk in others.chunks(1000) {
        store.append_consents(chunk).await?;
    }
    let own: Vec<NewConsent> =
        (0..20usize).map(|i| answer(Some(id), None, "newsletter", !i.is_multiple_of(2))).collect();
    anyhow::ensure!(store.append_consents(&own).await?, "the reader's answers were refused");
    Ok(())
}

/// The same read of the reader's email, for `newsletter` (consent: the ledger decides) and
/// for `registration` (a contract: no consent rule), taking turns.
async fn read_rows(label: &str, addr: &str, token: &str, id: &str, out: &mut Vec<Row>) -> anyhow::Result<()> {
    let target = |purpose: &str| Target {
        addr: addr.to_owned(),
        token: token.to_owned(),
        path: format!("/v1/subjects/{id}/data?purpose={purpose}&fields=email"),
    };
    let results =
        alternating(&[target("newsletter"), target("registration")], 16, ROUNDS, Duration::from_secs(1)).await?;
    let paired = results[0].against(&results[1]);
    out.push(Row {
        what: format!(
            "Read deciding by consent (the ledger's last answer of {} rows), {label}, 16 connections",
            OTHERS + 20
        ),
        value: format!("{:.0} req/s (p99 {:.2} ms)", results[0].whole.rate, results[0].whole.p99_us / 1e3),
        baseline: format!("{:.0} req/s, the same read for a contract purpose", results[1].whole.rate),
        ratio: format!("{paired}; target ≥ 0.95×"),
    });
    Ok(())
}

/// The plain table the ledger's appends are compared with: the same columns, no checks.
async fn plain_table(store: &Store) -> anyhow::Result<()> {
    sqlx::query("DROP TABLE IF EXISTS bench_plain_consents").execute(store.pool()).await?;
    sqlx::query(
        "CREATE TABLE bench_plain_consents (subject_id TEXT, visitor_id TEXT, purpose TEXT, given BIGINT, \
         at_us BIGINT, source TEXT, point TEXT, policy_version TEXT, notice_hash TEXT, ip_prefix TEXT, agent TEXT, \
         conflicts_with_gpc BIGINT)",
    )
    .execute(store.pool())
    .await?;
    Ok(())
}

async fn plain_insert(store: &Store, a: &NewConsent) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO bench_plain_consents (subject_id, visitor_id, purpose, given, at_us, source, point, \
         policy_version, notice_hash, ip_prefix, agent, conflicts_with_gpc) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&a.subject_id)
    .bind(&a.visitor_id)
    .bind(&a.purpose)
    .bind(i64::from(a.given))
    .bind(a.at_us)
    .bind(a.source)
    .bind(&a.point)
    .bind(&a.policy_version)
    .bind(&a.notice_hash)
    .bind(&a.ip_prefix)
    .bind(&a.agent)
    .bind(i64::from(a.conflicts_with_gpc))
    .execute(store.pool())
    .await?;
    Ok(())
}

/// One answer per call from 16 writers, each to the ledger (in a transaction that holds
/// the subject's row) and as a plain insert.
async fn append_rows(label: &str, store: &Store, out: &mut Vec<Row>) -> anyhow::Result<()> {
    plain_table(store).await?;
    let subjects: Vec<String> = store.live_subjects("", 1).await?;
    let subject = subjects.first().cloned().unwrap_or_default();
    let row = move |i: usize| answer(Some(&subject), None, "newsletter", i.is_multiple_of(2));
    let (s, r) = (store.clone(), row.clone());
    let plain = concurrently(APPENDS, 16, move |i| {
        let (s, a) = (s.clone(), r(i));
        async move { plain_insert(&s, &a).await }
    })
    .await?;
    let s = store.clone();
    let ledger = concurrently(APPENDS, 16, move |i| {
        let (s, a) = (s.clone(), row(i));
        async move {
            anyhow::ensure!(s.append_consents(&[a]).await?, "an answer was refused");
            Ok(())
        }
    })
    .await?;
    let (l, p) = (rate(APPENDS, ledger), rate(APPENDS, plain));
    out.push(Row {
        what: format!("Consent ledger appends, one answer per call, {label}, 16 writers"),
        value: format!("{l:.0} answers/s"),
        baseline: format!("{p:.0} rows/s (plain INSERT of the same rows)"),
        ratio: format!("{:.2}×; target ≥ 0.5×", l / p),
    });
    Ok(())
}

/// `POST /v1/consent` flat out on 16 connections, then at a fixed 200 per second.
async fn endpoint_rows(label: &str, addr: &str, notice: &str, out: &mut Vec<Row>) -> anyhow::Result<()> {
    let notice = notice.to_owned();
    let choice = move |i: usize| {
        let body = json!({
            "visitor": format!("{:032x}", 0xbe00_0000_usize + i),
            "choices": { "analytics": i.is_multiple_of(2), "marketing": false },
            "notice": notice,
        });
        ("POST", "/v1/consent".to_owned(), body.to_string().into_bytes())
    };
    let flat = closed_loop(addr, "", 16, RUN, choice.clone()).await?;
    let fixed = open_loop(addr, "", 8, 200.0, RUN, choice).await?;
    out.push(Row {
        what: format!("`POST /v1/consent` (the banner's choice, two categories), {label}"),
        value: format!(
            "{:.0} req/s on 16 connections (p50 {:.2} ms, p99 {:.2} ms)",
            flat.rate,
            flat.p50_us / 1e3,
            flat.p99_us / 1e3
        ),
        baseline: format!("at a fixed 200 req/s: p50 {:.2} ms, p99 {:.2} ms", fixed.p50_us / 1e3, fixed.p99_us / 1e3),
        ratio: "—".into(),
    });
    Ok(())
}
