//! `charter bench --only requests`: rights requests end to end.
//! - Filing for a person charter knows against one it does not: the median time of each
//!   over 200 requests (the answer must not tell them apart).
//! - The export of a subject with 10,000 records, downloaded whole, against reading the
//!   same rows through the store without opening them; and the process's memory during it.
//! - Requests fulfilled per second by the server's worker (objections, each an audited
//!   change of state and a message to the person).
//! - An erasure of that subject through a request, to its completion.

use std::time::{Duration, Instant};

use charter_store::records::{PageQuery, Position};
use charter_store::requests::{Request, RequestEvent};
use serde_json::json;

use crate::loadgen::Conn;
use crate::vault::Running;
use crate::Row;

const RECORDS: usize = 10_000;
const TIMED: usize = 200;
const FULFILLED: usize = 500;

fn policy() -> anyhow::Result<charter_policy::LoadedPolicy> {
    let text = charter_policy::TENSOROPERA
        .replace("codes_per_address_per_hour = 5", "codes_per_address_per_hour = 1000000")
        .replace("codes_per_network_per_hour = 30", "codes_per_network_per_hour = 1000000");
    anyhow::ensure!(text != charter_policy::TENSOROPERA, "the policy's code limits were not found");
    charter_policy::load("bench", &text).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Every figure on one backend.
pub async fn requests_rows(label: &str, url: &str, out: &mut Vec<Row>) -> anyhow::Result<()> {
    let running = Running::start_with(url, charter_store::Synchronous::Full, policy()?).await?;
    let (addr, state) = (running.addr.clone(), running.state.clone());
    let points =
        ["signup", "support", "payment", "job_application", "user_content", "survey", "newsletter"].map(str::to_owned);
    let token = state.store.create_api_key("bench-requests", &["registration".into()], &points, 0).await?;
    let known = known_people(&addr, &token, TIMED).await?;
    timing_rows(label, &addr, &known, out).await?;
    let mut c = Conn::open(&addr).await?;
    let body = json!({ "subject": { "email": "keeper@bench.example" }, "fields": { "email": "keeper@bench.example" }, "consents": { "newsletter": true } });
    let (_, made) =
        c.send("POST", "/v1/collect/newsletter", &token, body.to_string().as_bytes(), "application/json").await?;
    let id = serde_json::from_slice::<serde_json::Value>(&made)?["subject_id"].as_str().unwrap_or_default().to_owned();
    crate::records::fill(&addr, &token, &id, RECORDS).await?;
    export_rows(label, &state, &addr, &id, out).await?;
    fulfilment_rows(label, &state, &known, out).await?;
    erasure_rows(label, &state, &id, out).await?;
    running.stop().await
}

/// `n` subjects with an address, collected over HTTP; their addresses.
async fn known_people(addr: &str, token: &str, n: usize) -> anyhow::Result<Vec<(String, String)>> {
    let mut c = Conn::open(addr).await?;
    let mut people = Vec::new();
    for i in 0..n {
        let email = format!("known{i}@bench.example");
        let body = json!({ "subject": { "email": email }, "fields": { "name": format!("Known {i}"), "email": email, "password": "pw-bench-000000", "age_attestation": true } });
        let (status, made) =
            c.send("POST", "/v1/collect/signup", token, body.to_string().as_bytes(), "application/json").await?;
        anyhow::ensure!(status == 201, "signup: {status}");
        let id =
            serde_json::from_slice::<serde_json::Value>(&made)?["subject_id"].as_str().unwrap_or_default().to_owned();
        people.push((id, email));
    }
    Ok(people)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Filing for known and unknown people, taking turns on 8 connections.
async fn timing_rows(label: &str, addr: &str, known: &[(String, String)], out: &mut Vec<Row>) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for c in 0..8usize {
        let addr = addr.to_owned();
        let emails: Vec<(bool, String)> = (c..TIMED)
            .step_by(8)
            .flat_map(|i| [(true, known[i].1.clone()), (false, format!("stranger{i}@bench.example"))])
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&addr).await?;
            let mut times = Vec::new();
            for (is_known, email) in emails {
                let body = json!({ "type": "access", "email": email }).to_string();
                let t = Instant::now();
                let (status, _) = conn.send("POST", "/v1/requests", "", body.as_bytes(), "application/json").await?;
                anyhow::ensure!(status == 202, "filing answered {status}");
                times.push((is_known, t.elapsed().as_secs_f64() * 1e3));
            }
            anyhow::Ok(times)
        }));
    }
    let (mut k, mut u) = (Vec::new(), Vec::new());
    for t in tasks {
        for (is_known, ms) in t.await?? {
            if is_known {
                k.push(ms)
            } else {
                u.push(ms)
            }
        }
    }
    let (mk, mu) = (median(k), median(u));
    out.push(Row {
        what: format!(
            "Filing a request, a known person against a stranger, {label} (median of {TIMED} each, 8 connections)"
        ),
        value: format!("{mk:.1} ms known"),
        baseline: format!("{mu:.1} ms unknown"),
        ratio: format!("{:.3}× (target within 10 %)", mk / mu),
    });
    Ok(())
}

/// A completed access request for `subject`, as the worker leaves one; its status token.
async fn completed_access(state: &charter_server::state::AppState, subject: &str) -> anyhow::Result<(String, String)> {
    let now = charter_store::now_us();
    let r = Request {
        id: uuid::Uuid::new_v4().to_string(),
        subject_id: Some(subject.to_owned()),
        kind: "access".into(),
        jurisdiction: "gdpr".into(),
        status: "completed".into(),
        source: "api".into(),
        details: "{}".into(),
        received_at_us: now,
        completed_at_us: Some(now),
        downloads_left: Some(1000),
        download_until_us: Some(now + 3_600_000_000),
        ..Request::default()
    };
    let event = RequestEvent {
        at_us: now,
        actor: "bench".into(),
        action: "completed".into(),
        status: r.status.clone(),
        note: None,
    };
    state.store.insert_request(&r, &event).await?;
    Ok((r.id.clone(), charter_server::rights::status_token(state, &r.id)))
}

/// Resident memory of this process now, in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

async fn export_rows(
    label: &str,
    state: &charter_server::state::AppState,
    addr: &str,
    subject: &str,
    out: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let (id, token) = completed_access(state, subject).await?;
    let mut conn = Conn::open(addr).await?;
    let path = format!("/requests/{id}/download?t={token}");
    conn.send("GET", &path, "", b"", "text/plain").await?;
    let before = rss_mib();
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let (status, body) = conn.send("GET", &path, "", b"", "text/plain").await?;
        anyhow::ensure!(status == 200, "download answered {status}");
        times.push(t.elapsed().as_secs_f64());
        size = body.len();
    }
    let grew = rss_mib() - before;
    let t = Instant::now();
    let mut after = Position::start();
    let mut rows = 0;
    loop {
        let page = state
            .store
            .records_page(&PageQuery { subject_id: subject, point: None, after: after.clone(), limit: 500 })
            .await?;
        rows += page.len();
        match page.last() {
            Some(last) if page.len() == 500 => after = Position::of(last),
            _ => break,
        }
    }
    let read = t.elapsed().as_secs_f64();
    anyhow::ensure!(rows == RECORDS, "the subject has {rows} records, not {RECORDS}");
    let m = median(times);
    out.push(Row {
        what: format!(
            "Export of a subject with {RECORDS} records (ZIP of JSON, CSV per category, HTML; {:.1} MiB), {label}",
            size as f64 / 1_048_576.0
        ),
        value: format!("{:.2} s (median of 5); resident memory {grew:+.1} MiB over them", m),
        baseline: format!("{read:.2} s reading the same rows from the store, unopened"),
        ratio: format!("{:.2}× of the 1 s target", m),
    });
    Ok(())
}

/// Objection requests in progress for known people, drained by the worker.
async fn fulfilment_rows(
    label: &str,
    state: &charter_server::state::AppState,
    known: &[(String, String)],
    out: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let now = charter_store::now_us();
    let mut ids = Vec::new();
    for i in 0..FULFILLED {
        let r = Request {
            id: uuid::Uuid::new_v4().to_string(),
            subject_id: Some(known[i % known.len()].0.clone()),
            kind: "objection".into(),
            jurisdiction: "gdpr".into(),
            status: "in_progress".into(),
            source: "api".into(),
            details: json!({ "purpose": "analytics" }).to_string(),
            received_at_us: now,
            verified_at_us: Some(now),
            ..Request::default()
        };
        let event = RequestEvent {
            at_us: now,
            actor: "bench".into(),
            action: "started".into(),
            status: r.status.clone(),
            note: None,
        };
        ids.push(r.id.clone());
        state.store.insert_request(&r, &event).await?;
    }
    let t = Instant::now();
    loop {
        let left = state.store.requests_in(&["in_progress"], 1).await?;
        if left.is_empty() {
            break;
        }
        anyhow::ensure!(t.elapsed() < Duration::from_secs(600), "the worker did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = t.elapsed().as_secs_f64();
    out.push(Row {
        what: format!("Requests fulfilled by one server's worker (objections: ledger change, audit, email to the person), {label}"),
        value: format!("{:.0} requests/s ({FULFILLED} in {took:.1} s)", FULFILLED as f64 / took),
        baseline: "—".into(),
        ratio: "—".into(),
    });
    Ok(())
}

/// An erasure of the subject with 10,000 records through a request, until completed.
async fn erasure_rows(
    label: &str,
    state: &charter_server::state::AppState,
    subject: &str,
    out: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let now = charter_store::now_us();
    let r = Request {
        id: uuid::Uuid::new_v4().to_string(),
        subject_id: Some(subject.to_owned()),
        kind: "erasure".into(),
        jurisdiction: "gdpr".into(),
        status: "in_progress".into(),
        source: "api".into(),
        details: "{}".into(),
        received_at_us: now,
        verified_at_us: Some(now),
        ..Request::default()
    };
    let event = RequestEvent {
        at_us: now,
        actor: "bench".into(),
        action: "started".into(),
        status: r.status.clone(),
        note: None,
    };
    let t = Instant::now();
    state.store.insert_request(&r, &event).await?;
    loop {
        if state.store.request(&r.id).await?.is_some_and(|q| q.status == "completed") {
            break;
        }
        anyhow::ensure!(t.elapsed() < Duration::from_secs(600), "the erasure did not finish");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = t.elapsed().as_secs_f64();
    let kept = state.store.records_per_point(subject).await?;
    out.push(Row {
        what: format!("Erasure through a request of a subject with {RECORDS} records (payment records kept), {label}"),
        value: format!("{:.2} s to completed, certificate signed", took),
        baseline: format!("kept: {kept:?}"),
        ratio: "—".into(),
    });
    Ok(())
}
