//! `charter bench --only records`: a page of 50 of a subject's 10,000 records against a
//! bare handler reading the same rows by the same path, the same page at a fixed 500
//! req/s, a record collection against a profile collection, and crypto-shredding a
//! subject with 100 and with 10,000 records.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::loadgen::{alternating, closed_loop, open_loop, Conn, Target};
use crate::vault::{spawn_bare, Running};
use crate::Row;

const RUN: Duration = Duration::from_secs(5);
const RECORDS: usize = 10_000;
const ROUNDS: usize = 10;

/// The fields of the `n`th record, at one of five record points in turn.
fn record_body(id: &str, n: usize) -> (&'static str, Value) {
    let (name, email) = (format!("Keeper {n}"), "keeper@bench.example".to_owned());
    let (point, fields, consents) = match n % 5 {
        0 => ("support", json!({ "name": name, "email": email, "message": format!("Question number {n}") }), json!({})),
        1 => (
            "payment",
            json!({ "name": name, "email": email, "account": "GB33BUKB20201555555555", "billing_address": "1 Bench Street" }),
            json!({}),
        ),
        2 => ("job_application", json!({ "name": name, "email": email, "position": format!("Role {n}") }), json!({})),
        3 => ("user_content", json!({ "body": format!("Post number {n}") }), json!({})),
        _ => ("survey", json!({ "answers": format!("Answer {n}") }), json!({ "surveys": true })),
    };
    (point, json!({ "subject": { "id": id }, "fields": fields, "consents": consents }))
}

/// Collects `n` records for subject `id`, on eight connections at once.
pub(crate) async fn fill(addr: &str, token: &str, id: &str, n: usize) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for c in 0..8 {
        let (addr, token, id) = (addr.to_owned(), token.to_owned(), id.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&addr).await?;
            for i in (c..n).step_by(8) {
                let (point, body) = record_body(&id, i);
                let path = format!("/v1/collect/{point}");
                let (status, answer) =
                    conn.send("POST", &path, &token, body.to_string().as_bytes(), "application/json").await?;
                anyhow::ensure!(status == 201, "{path}: {status} {}", String::from_utf8_lossy(&answer));
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// A new subject, by a first profile collection; its id.
async fn new_subject(c: &mut Conn, token: &str, email: &str) -> anyhow::Result<String> {
    let body =
        json!({ "subject": { "email": email }, "fields": { "email": email }, "consents": { "newsletter": true } });
    let (status, answer) =
        c.send("POST", "/v1/collect/newsletter", token, body.to_string().as_bytes(), "application/json").await?;
    anyhow::ensure!(status == 201, "newsletter: {status} {}", String::from_utf8_lossy(&answer));
    Ok(serde_json::from_slice::<Value>(&answer)?["subject_id"].as_str().unwrap_or_default().to_owned())
}

/// Every records figure on one backend.
pub async fn records_rows(label: &str, url: &str, out: &mut Vec<Row>) -> anyhow::Result<()> {
    let running = Running::start(url, charter_store::Synchronous::Full).await?;
    let (addr, store) = (running.addr.clone(), running.state.store.clone());
    let points = ["newsletter", "support", "payment", "job_application", "user_content", "survey"].map(str::to_owned);
    let purposes = ["legal_disclosures", "newsletter", "surveys"].map(str::to_owned);
    let token = store.create_api_key("bench-records", &purposes, &points, 0).await?;
    let bare = spawn_bare(store.clone()).await?;
    let mut c = Conn::open(&addr).await?;
    let many = new_subject(&mut c, &token, "keeper@bench.example").await?;
    let few = new_subject(&mut c, &token, "few@bench.example").await?;
    let started = Instant::now();
    fill(&addr, &token, &many, RECORDS).await?;
    let filled = started.elapsed();
    fill(&addr, &token, &few, 100).await?;

    // The first connection idled through the fill: the server may have closed it.
    let mut c = Conn::open(&addr).await?;
    let page = format!("/v1/subjects/{many}/data?purpose=legal_disclosures&limit=50");
    let (status, body) = c.send("GET", &page, &token, b"", "application/json").await?;
    let read: Value = serde_json::from_slice(&body)?;
    anyhow::ensure!(
        status == 200 && read["records"].as_array().map(Vec::len) == Some(50) && read["withheld"] == json!({}),
        "setup page: {status} {read}"
    );
    let mut b = Conn::open(&bare).await?;
    let (status, body) = b.send("GET", &format!("/bare-page/{many}"), "", b"", "application/json").await?;
    let rows = serde_json::from_slice::<Value>(&body)?["records"].as_array().map(Vec::len);
    anyhow::ensure!(status == 200 && rows == Some(50), "baseline page: {status}, {rows:?}");
    let targets = [
        Target { addr: addr.clone(), token: token.clone(), path: page.clone() },
        Target { addr: bare.clone(), token: String::new(), path: format!("/bare-page/{many}") },
    ];
    let results = alternating(&targets, 16, ROUNDS, Duration::from_secs(1)).await?;
    out.push(Row {
        what: format!(
            "A page of 50 of a subject's 10,000 records (five points), {label}, 16 connections (target ≥ 0.5×)"
        ),
        value: format!("{:.0} req/s (p99 {:.2} ms)", results[0].whole.rate, results[0].whole.p99_us / 1e3),
        baseline: format!(
            "{:.0} req/s bare axum, the same 50 records by charter's page statement, no decision/decryption/audit",
            results[1].whole.rate
        ),
        ratio: results[0].against(&results[1]).to_string(),
    });
    let paced = open_loop(&addr, &token, 20, 500.0, RUN, move |_| ("GET", page.clone(), Vec::new())).await?;
    out.push(Row {
        what: format!("The same page at a fixed 500 req/s, {label} (target p99 ≤ 5 ms)"),
        value: format!("p50 {:.2} ms, p99 {:.2} ms ({} requests)", paced.p50_us / 1e3, paced.p99_us / 1e3, paced.count),
        baseline: format!("{RECORDS} records collected over HTTP in {:.1} s", filled.as_secs_f64()),
        ratio: format!("p99 {:.2}× of target", paced.p99_us / 5000.0),
    });
    collect_rows(label, &addr, &token, out).await?;
    shred_rows(label, &store, &few, &many, out).await?;
    running.stop().await
}

/// A record with two fields against a profile collection with two fields, each for a new
/// subject with one consent.
async fn collect_rows(label: &str, addr: &str, token: &str, out: &mut Vec<Row>) -> anyhow::Result<()> {
    let record = closed_loop(addr, token, 16, RUN, |i| {
        let email = format!("answerer{i}@bench.example");
        let body = json!({ "subject": { "email": email }, "fields": { "email": email, "answers": "Yes, and more." }, "consents": { "surveys": true } });
        ("POST", "/v1/collect/survey".to_owned(), body.to_string().into_bytes())
    })
    .await?;
    let profile = closed_loop(addr, token, 16, RUN, |i| {
        let email = format!("reader{i}@bench.example");
        let body = json!({ "subject": { "email": email }, "fields": { "email": email, "name": "A Reader" }, "consents": { "newsletter": true } });
        ("POST", "/v1/collect/newsletter".to_owned(), body.to_string().into_bytes())
    })
    .await?;
    out.push(Row {
        what: format!("Record collection at `survey` (2 fields, 1 consent, new subject each), {label}, 16 connections"),
        value: format!("{:.0} collections/s (p99 {:.2} ms)", record.rate, record.p99_us / 1e3),
        baseline: format!(
            "{:.0} collections/s at `newsletter`, a profile point (2 fields, 1 consent), p99 {:.2} ms",
            profile.rate,
            profile.p99_us / 1e3
        ),
        ratio: format!("{:.2}×", record.rate / profile.rate),
    });
    Ok(())
}

/// Crypto-shredding a subject with 100 records, then one with 10,000: the same one short
/// transaction (key and indexes), whatever the number of records.
async fn shred_rows(
    label: &str,
    store: &charter_store::Store,
    few: &str,
    many: &str,
    out: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let time = |id: String| {
        let store = store.clone();
        async move {
            let t = Instant::now();
            anyhow::ensure!(store.shred(&id, charter_store::now_us()).await?, "shred {id}");
            Ok::<Duration, anyhow::Error>(t.elapsed())
        }
    };
    let small = time(few.to_owned()).await?;
    let large = time(many.to_owned()).await?;
    let t = Instant::now();
    let purged = store.purge_erased(many, 500).await?;
    let purge = t.elapsed();
    out.push(Row {
        what: format!("Crypto-shred a subject with 10,000 records, {label} (target ≤ 100 ms, flat)"),
        value: format!(
            "{:.1} ms (then {purged} records purged in the background in {:.0} ms)",
            large.as_secs_f64() * 1e3,
            purge.as_secs_f64() * 1e3
        ),
        baseline: format!("{:.1} ms for a subject with 100 records", small.as_secs_f64() * 1e3),
        ratio: format!("{:.2}×", large.as_secs_f64() / small.as_secs_f64()),
    });
    Ok(())
}
