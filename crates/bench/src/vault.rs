//! `charter bench` figures for the vault: the access decision, purpose-checked
//! reads and collections over HTTP against bare baselines, and a 1 GiB upload.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::State;
use charter_core::access::{self, FieldRef, SubjectState};
use charter_server::{Application, Settings as ServerSettings};
use charter_store::Store;
use serde_json::json;

use crate::loadgen::{alternating, closed_loop, open_loop, Conn, Target};
use crate::Row;

const RUN: Duration = Duration::from_secs(5);
/// Rounds of one-second turns in which charter's reads and their baselines take turns.
const READ_ROUNDS: usize = 10;

fn policy() -> charter_policy::LoadedPolicy {
    charter_policy::load(charter_policy::TENSOROPERA_NAME, charter_policy::TENSOROPERA).expect("embedded policy")
}

/// The decision alone, 1M times, each timed.
pub fn decision_rows(out: &mut Vec<Row>) {
    let p = policy().policy;
    let granted: Vec<String> = p.purposes.keys().cloned().collect();
    let state = SubjectState { consents: [("newsletter".to_owned(), true)].into(), ..Default::default() };
    let field = FieldRef { name: "email", category: "user.contact.email", collected_at_us: 1_700_000_000_000_000 };
    let now = 1_750_000_000_000_000;
    let n = 1_000_000;
    let time = |f: &dyn Fn() -> bool| {
        let mut lat = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            black_box(f());
            lat.push(t.elapsed().as_nanos() as u64);
        }
        lat.sort_unstable();
        (lat[n / 2], lat[n * 99 / 100])
    };
    let (p50, p99) = time(&|| access::decide(&p, black_box("newsletter"), &granted, &state, &field, now).is_ok());
    let (b50, b99) = time(&|| p.purposes.get(black_box("newsletter")).is_some());
    out.push(Row {
        what: "Access decision in process (consent purpose, 23 purposes granted)".into(),
        value: format!("p50 {:.2} µs, p99 {:.2} µs", p50 as f64 / 1e3, p99 as f64 / 1e3),
        baseline: format!(
            "p50 {:.2} µs, p99 {:.2} µs (purpose lookup only: timer floor)",
            b50 as f64 / 1e3,
            b99 as f64 / 1e3
        ),
        ratio: format!("p99 {:.2}× of the 2 µs target", p99 as f64 / 2000.0),
    });
}

/// A bare axum app over the same database: reads the rows without decision,
/// decryption or audit, and inserts a collection as one plain row.
fn bare_router(store: Store) -> axum::Router {
    axum::Router::new()
        .route("/bare/{id}", axum::routing::get(bare::read))
        .route("/bare-pool/{id}", axum::routing::get(bare::read_pool))
        .route("/bare-same/{id}", axum::routing::get(bare::read_same))
        .route("/bare-page/{id}", axum::routing::get(bare::page))
        .route("/bare/collect", axum::routing::post(bare::collect))
        .with_state(store)
}

/// The bare baselines' handlers.
mod bare {
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use charter_store::records::{PageQuery, Position, StoredRecord};
    use charter_store::Store;
    use serde_json::{json, Map, Value};
    use sqlx::Row as _;

    /// The profile rows of a subject, and its newest records' field rows.
    const FIELDS: &str = "SELECT field, sealed FROM field_values WHERE subject_id = $1";
    const RECORD_FIELDS: &str =
        "SELECT r.id, f.field, f.sealed FROM records r JOIN record_fields f ON f.record_id = r.id \
         WHERE r.subject_id = $1 ORDER BY r.collected_at_us DESC, r.id DESC LIMIT 1000";

    /// Rows of (record id, field, sealed) grouped by record, in order.
    fn grouped(rows: Vec<(String, String, Vec<u8>)>) -> Vec<Value> {
        let mut out: Vec<(String, Map<String, Value>)> = Vec::new();
        for (id, field, sealed) in rows {
            if out.last().is_none_or(|(last, _)| *last != id) {
                out.push((id.clone(), Map::new()));
            }
            if let Some((_, m)) = out.last_mut() {
                m.insert(field, Value::String(hex::encode(sealed)));
            }
        }
        out.into_iter().map(|(id, fields)| json!({ "record_id": id, "fields": fields })).collect()
    }

    /// The profile rows and the records' rows, by the same access path as charter's reads:
    /// a direct connection on SQLite, the pool on PostgreSQL.
    pub(super) async fn read(State(store): State<Store>, Path(id): Path<String>) -> axum::Json<Value> {
        let Some(readers) = store.sqlite_direct() else { return read_pool(State(store), Path(id)).await };
        let answer = readers.read(|conn| {
            let mut st = conn.prepare_cached(&FIELDS.replace("$1", "?1"))?;
            let fields = st
                .query_map([&id], |r| {
                    Ok((r.get::<_, String>(0)?, Value::String(hex::encode(r.get::<_, Vec<u8>>(1)?))))
                })?
                .collect::<Result<Map<_, _>, _>>()?;
            let mut st = conn.prepare_cached(&RECORD_FIELDS.replace("$1", "?1"))?;
            let rows =
                st.query_map([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<Vec<_>, _>>()?;
            Ok::<_, anyhow::Error>(json!({ "fields": fields, "records": grouped(rows) }))
        });
        axum::Json(answer.unwrap_or_default())
    }

    /// The same rows through the sqlx pool, as a plain axum + sqlx service would read them.
    pub(super) async fn read_pool(State(store): State<Store>, Path(id): Path<String>) -> axum::Json<Value> {
        let rows = sqlx::query(FIELDS).bind(&id).fetch_all(store.pool()).await.unwrap_or_default();
        let fields: Map<String, Value> =
            rows.iter().map(|r| (r.get::<String, _>(0), Value::String(hex::encode(r.get::<Vec<u8>, _>(1))))).collect();
        let rows: Vec<(String, String, Vec<u8>)> =
            sqlx::query_as(RECORD_FIELDS).bind(&id).fetch_all(store.pool()).await.unwrap_or_default();
        axum::Json(json!({ "fields": fields, "records": grouped(rows) }))
    }

    fn records(page: &[StoredRecord]) -> Vec<Value> {
        page.iter()
            .map(|r| {
                let fields: Map<String, Value> =
                    r.fields.iter().map(|f| (f.field.clone(), Value::String(hex::encode(&f.sealed)))).collect();
                json!({ "record_id": r.id, "point": r.point, "fields": fields })
            })
            .collect()
    }

    async fn first_page(store: &Store, id: &str) -> Result<Vec<StoredRecord>, StatusCode> {
        let q = PageQuery { subject_id: id, point: None, after: Position::start(), limit: 51 };
        let mut page = store.records_page(&q).await.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        page.truncate(50);
        Ok(page)
    }

    /// charter's own read statements (the subject with its consent and objection, and its
    /// fields; then the first page of its records), through charter's own store code,
    /// answering the sealed values as they are: the same rows as a purpose-checked read,
    /// without decision, decryption or audit.
    pub(super) async fn read_same(
        State(store): State<Store>,
        Path(id): Path<String>,
    ) -> Result<axum::Json<Value>, StatusCode> {
        let view = store
            .subject_for_read(&id, "legal_disclosures")
            .await
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
            .ok_or(StatusCode::NOT_FOUND)?;
        let fields: Map<String, Value> =
            view.fields.iter().map(|f| (f.field.clone(), Value::String(hex::encode(&f.sealed)))).collect();
        let page = first_page(&store, &id).await?;
        Ok(axum::Json(json!({ "fields": fields, "records": records(&page) })))
    }

    /// The first page of a subject's records by charter's page statement, sealed values as
    /// they are.
    pub(super) async fn page(
        State(store): State<Store>,
        Path(id): Path<String>,
    ) -> Result<axum::Json<Value>, StatusCode> {
        let page = first_page(&store, &id).await?;
        Ok(axum::Json(json!({ "records": records(&page) })))
    }

    pub(super) async fn collect(State(store): State<Store>, body: axum::body::Bytes) -> StatusCode {
        let r = sqlx::query("INSERT INTO bench_collect (id, body) VALUES ($1, $2)")
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(body.to_vec())
            .execute(store.pool())
            .await;
        if r.is_ok() {
            StatusCode::CREATED
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

pub(crate) async fn spawn_bare(store: Store) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    tokio::spawn(async move { axum::serve(listener, bare_router(store)).await });
    Ok(addr)
}

fn support_body(i: usize) -> Vec<u8> {
    json!({
        "subject": { "email": format!("asker{i}@bench.example") },
        "fields": { "name": format!("Asker {i}"), "email": format!("asker{i}@bench.example"), "message": "Where is my invoice for last month?" }
    })
    .to_string()
    .into_bytes()
}

fn signup_body(i: usize) -> Vec<u8> {
    json!({
        "subject": { "email": format!("person{i}@bench.example") },
        "fields": { "name": format!("Person {i}"), "email": format!("person{i}@bench.example"), "password": "pw-bench-000000", "age_attestation": true }
    })
    .to_string()
    .into_bytes()
}

/// charter serving on `url` in this process, with a data directory of its own.
pub(crate) struct Running {
    pub(crate) addr: String,
    pub(crate) state: charter_server::state::AppState,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Running {
    pub(crate) async fn start(url: &str, synchronous: charter_store::Synchronous) -> anyhow::Result<Self> {
        Self::start_with(url, synchronous, policy()).await
    }

    /// Like [`Running::start`], on `policy`.
    pub(crate) async fn start_with(
        url: &str,
        synchronous: charter_store::Synchronous,
        policy: charter_policy::LoadedPolicy,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let app = Application::build(ServerSettings {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.path().join("data"),
            database_url: Some(url.to_owned().into()),
            policy,
            policy_named: false,
            public_url: None,
            object_store: None,
            limits: Default::default(),
            sqlite_synchronous: synchronous,
            delivery: Default::default(),
            // Reads are measured alone.
            retention_sweep: false,
        })
        .await?;
        let addr = app.addr().to_string();
        let state = app.state().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        Ok(Self { addr, state, stop, server, _dir: dir })
    }

    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.server.await?
    }
}

/// Reads and collections over HTTP on one backend.
pub async fn http_rows(
    label: &str,
    url: &str,
    synchronous: charter_store::Synchronous,
    out: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let running = Running::start(url, synchronous).await?;
    let (addr, state) = (running.addr.clone(), running.state.clone());
    let store = state.store.clone();
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_collect (id TEXT PRIMARY KEY, body TEXT NOT NULL)")
        .execute(store.pool())
        .await?;
    let points: Vec<String> = ["signup", "support", "payment", "job_application"].map(str::to_owned).to_vec();
    let token = store.create_api_key("bench", &["legal_disclosures".to_owned()], &points, 0).await?;
    let bare = spawn_bare(store.clone()).await?;

    // One subject with 10 fields across four points.
    let mut c = Conn::open(&addr).await?;
    let email = "reader@bench.example";
    let bodies = [
        (
            "signup",
            json!({ "name": "Reader Bench", "email": email, "password": "pw-0123456789", "phone": "+1 415 555 0100", "age_attestation": true }),
        ),
        (
            "support",
            json!({ "name": "Reader Bench", "email": email, "message": "The invoice for order 1234 is missing a line." }),
        ),
        (
            "payment",
            json!({ "name": "Reader Bench", "email": email, "account": "GB33BUKB20201555555555", "billing_address": "1 Bench Street, Testville" }),
        ),
        (
            "job_application",
            json!({ "name": "Reader Bench", "email": email, "position": "Engineer", "cover_letter": "I would like to apply for the engineering role." }),
        ),
    ];
    let mut id = String::new();
    for (point, fields) in bodies {
        let b = json!({ "subject": { "email": email }, "fields": fields }).to_string();
        let (status, body) =
            c.send("POST", &format!("/v1/collect/{point}"), &token, b.as_bytes(), "application/json").await?;
        anyhow::ensure!(status == 201, "collect at {point}: {status} {}", String::from_utf8_lossy(&body));
        id = serde_json::from_slice::<serde_json::Value>(&body)?["subject_id"].as_str().unwrap_or_default().to_owned();
    }
    let fields = "name,email,password,phone,age_attestation,message,account,billing_address,position,cover_letter";
    let (status, body) = c
        .send(
            "GET",
            &format!("/v1/subjects/{id}/data?purpose=legal_disclosures&fields={fields}"),
            &token,
            b"",
            "application/json",
        )
        .await?;
    let read: serde_json::Value = serde_json::from_slice(&body)?;
    // Four profile values and three records come back; the password is kept only as a
    // hash, which no read returns.
    anyhow::ensure!(
        status == 200
            && read["fields"].as_object().map(|m| m.len()) == Some(4)
            && read["records"].as_array().map(Vec::len) == Some(3)
            && read["hashed"] == json!(["password"]),
        "setup read: {status} {read}"
    );

    // Each baseline answers the subject's 5 profile rows and 3 records, so none is fast
    // for answering less.
    let mut b = Conn::open(&bare).await?;
    for baseline in ["bare-same", "bare", "bare-pool"] {
        let (status, body) = b.send("GET", &format!("/{baseline}/{id}"), "", b"", "application/json").await?;
        let answer = serde_json::from_slice::<serde_json::Value>(&body)?;
        let rows = (answer["fields"].as_object().map(|m| m.len()), answer["records"].as_array().map(Vec::len));
        anyhow::ensure!(status == 200 && rows == (Some(5), Some(3)), "baseline /{baseline}: {status}, {rows:?} rows");
    }
    let path = format!("/v1/subjects/{id}/data?purpose=legal_disclosures&fields={fields}");
    let (appends, batches) = (state.audit.appends(), state.audit.batches());
    // charter and its baselines take turns, a second each, so the machine's noise falls on all alike.
    let mut targets = vec![
        Target { addr: addr.clone(), token: token.clone(), path: path.clone() },
        Target { addr: bare.clone(), token: String::new(), path: format!("/bare-same/{id}") },
        Target { addr: bare.clone(), token: String::new(), path: format!("/bare/{id}") },
    ];
    if store.sqlite_direct().is_some() {
        // On SQLite, one more: the field rows read through the async pool instead.
        targets.push(Target { addr: bare.clone(), token: String::new(), path: format!("/bare-pool/{id}") });
    }
    // Ten rounds: the ratio reported is the median of the ten, each from turns a few seconds apart.
    let results = alternating(&targets, 16, READ_ROUNDS, Duration::from_secs(1)).await?;
    let (charter, same, fields_only) = (&results[0].whole, &results[1].whole, &results[2].whole);
    let per_batch = (state.audit.appends() - appends) as f64 / (state.audit.batches() - batches).max(1) as f64;
    out.push(Row {
        what: format!(
            "Purpose-checked read of 5 profile fields (the password hashed) and 3 records (11 values) over HTTP, {label}, 16 connections"
        ),
        value: format!(
            "{:.0} req/s (p50 {:.2} ms, p99 {:.2} ms; {per_batch:.1} reads' audit appends per commit)",
            charter.rate,
            charter.p50_us / 1e3,
            charter.p99_us / 1e3
        ),
        baseline: format!(
            "{:.0} req/s bare axum running charter's read statements (subject, consent, objection, fields; a page of records), no decision/decryption/audit",
            same.rate
        ),
        ratio: results[0].against(&results[1]).to_string(),
    });
    out.push(Row {
        what: format!("Same read, against a bare handler that reads only the field rows by plain statements, {label}"),
        value: format!("{:.0} req/s", charter.rate),
        baseline: format!(
            "{:.0} req/s bare axum, the subject's field rows and its records' field rows by the same access path",
            fields_only.rate
        ),
        ratio: results[0].against(&results[2]).to_string(),
    });
    if let Some(pooled) = results.get(3) {
        out.push(Row {
            what: format!("Same read, against a bare handler that reads through the sqlx pool, {label}"),
            value: format!("{:.0} req/s", charter.rate),
            baseline: format!("{:.0} req/s bare axum + sqlx pool, the same rows", pooled.whole.rate),
            ratio: results[0].against(pooled).to_string(),
        });
    }
    let paced = open_loop(&addr, &token, 20, 1000.0, RUN, move |_| ("GET", path.clone(), Vec::new())).await?;
    let bare_path = format!("/bare/{id}");
    let bare_paced = open_loop(&bare, "", 20, 1000.0, RUN, move |_| ("GET", bare_path.clone(), Vec::new())).await?;
    // A read waits for its audit entry's commit: how long one plain committed INSERT per
    // request takes at the same rate is the floor that wait sets on this machine.
    let commit_paced =
        open_loop(&bare, "", 20, 1000.0, RUN, |i| ("POST", "/bare/collect".to_owned(), support_body(i))).await?;
    out.push(Row {
        what: format!("Same read at a fixed 1,000 req/s, {label} (target p99 ≤ 5 ms)"),
        value: format!("p50 {:.2} ms, p99 {:.2} ms ({} requests)", paced.p50_us / 1e3, paced.p99_us / 1e3, paced.count),
        baseline: format!(
            "bare axum at 1,000 req/s: p50 {:.2} ms, p99 {:.2} ms; bare axum committing one plain INSERT per request: p50 {:.2} ms, p99 {:.2} ms",
            bare_paced.p50_us / 1e3,
            bare_paced.p99_us / 1e3,
            commit_paced.p50_us / 1e3,
            commit_paced.p99_us / 1e3
        ),
        ratio: format!("p99 {:.2}× of target", paced.p99_us / 5000.0),
    });
    let collected =
        closed_loop(&addr, &token, 16, RUN, |i| ("POST", "/v1/collect/support".to_owned(), support_body(i))).await?;
    let plain = closed_loop(&bare, "", 16, RUN, |i| ("POST", "/bare/collect".to_owned(), support_body(i))).await?;
    out.push(Row {
        what: format!("Collections at `support` (3 fields, new subject each), {label}, 16 connections"),
        value: format!("{:.0} collections/s (p99 {:.2} ms)", collected.rate, collected.p99_us / 1e3),
        baseline: format!("{:.0} req/s bare axum, one plain INSERT of the body", plain.rate),
        ratio: format!("{:.2}×", collected.rate / plain.rate),
    });
    // Sign-ups hash the password with argon2id, one per core at a time: that is the cost.
    let signups =
        closed_loop(&addr, &token, 16, RUN, |i| ("POST", "/v1/collect/signup".to_owned(), signup_body(i))).await?;
    out.push(Row {
        what: format!("Collections at `signup` (4 fields with a password, new subject each), {label}, 16 connections"),
        value: format!("{:.0} collections/s (p99 {:.2} ms)", signups.rate, signups.p99_us / 1e3),
        baseline: "argon2id (19 MiB, 2 passes) per password, at most one per core at once".into(),
        ratio: "—".into(),
    });
    running.stop().await
}

/// Process `pid`'s resident memory now (`VmRSS:`) or at its peak (`VmHWM:`), in KiB.
fn rss_kib(pid: u32, which: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with(which))?.split_whitespace().nth(1)?.parse().ok()
}

/// A real `charter serve` process on a fresh data directory, for figures of the process
/// itself (its memory), with an API key for `purposes` and `points`.
struct ServeProcess {
    child: tokio::process::Child,
    addr: String,
    token: String,
    pid: u32,
    _dir: tempfile::TempDir,
}

impl ServeProcess {
    async fn start(purposes: &str, points: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let exe = std::env::current_exe()?;
        let data = dir.path().join("data");
        let key = std::process::Command::new(&exe)
            .args(["apikey", "create", "--name", "bench", "--purposes", purposes, "--points", points, "--data-dir"])
            .arg(&data)
            .output()?;
        anyhow::ensure!(key.status.success(), "apikey create: {}", String::from_utf8_lossy(&key.stderr));
        let token = String::from_utf8(key.stdout)?.trim().to_owned();
        let mut child = tokio::process::Command::new(&exe)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .env("CHARTER_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines =
            tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stdout.take().context("stdout")?));
        let first = lines.next_line().await?.context("serve printed nothing")?;
        let addr = first.trim().strip_prefix("charter listening on http://").context("listening line")?.to_owned();
        let pid = child.id().context("pid")?;
        Ok(Self { child, addr, token, pid, _dir: dir })
    }

    /// The process's resident memory now (`VmRSS`) or at its peak (`VmHWM`), in KiB.
    fn rss_kib(&self, which: &str) -> u64 {
        rss_kib(self.pid, which).unwrap_or(0)
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        self.child.start_kill()?;
        let _ = self.child.wait().await;
        Ok(())
    }
}

/// Peak memory of `charter serve` under 60 s of mixed load at 32 connections: sign-ups
/// (each hashes a password with argon2id, 19 MiB of working memory), support
/// collections and purpose-checked reads, a third each.
pub async fn memory_rows(out: &mut Vec<Row>) -> anyhow::Result<()> {
    let serve = ServeProcess::start("registration,support", "signup,support").await?;
    let start_kib = serve.rss_kib("VmRSS:");
    let mut c = Conn::open(&serve.addr).await?;
    let body = signup_body(usize::MAX);
    let (status, created) = c.send("POST", "/v1/collect/signup", &serve.token, &body, "application/json").await?;
    anyhow::ensure!(status == 201, "signup {status}");
    let id =
        serde_json::from_slice::<serde_json::Value>(&created)?["subject_id"].as_str().unwrap_or_default().to_owned();
    let read = format!("/v1/subjects/{id}/data?purpose=registration");
    let load = closed_loop(&serve.addr, &serve.token, 32, Duration::from_secs(60), move |i| match i % 3 {
        0 => ("POST", "/v1/collect/signup".to_owned(), signup_body(i)),
        1 => ("POST", "/v1/collect/support".to_owned(), support_body(i)),
        _ => ("GET", read.clone(), Vec::new()),
    })
    .await?;
    let peak_kib = serve.rss_kib("VmHWM:");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_kib = serve.rss_kib("VmRSS:");
    serve.stop().await?;
    out.push(Row {
        what: "Peak RSS of `charter serve` (SQLite) during 60 s of sign-ups, support collections and reads, a third each, 32 connections".into(),
        value: format!(
            "{:.1} MiB peak, {:.1} MiB 5 s after ({} requests, {:.0} req/s)",
            peak_kib as f64 / 1024.0,
            idle_kib as f64 / 1024.0,
            load.count,
            load.rate
        ),
        baseline: format!("{:.1} MiB at start-up", start_kib as f64 / 1024.0),
        ratio: format!("{:.2}× of the 100 MiB target", peak_kib as f64 / 1024.0 / 100.0),
    });
    Ok(())
}

/// A 1 GiB upload to a real `charter serve` process, against a plain file copy.
pub async fn upload_rows(out: &mut Vec<Row>) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let serve = ServeProcess::start("raw_data_storage", "signup,raw_upload").await?;
    let (addr, token) = (serve.addr.clone(), serve.token.clone());
    let rss_idle = serve.rss_kib("VmHWM:");
    let mut c = Conn::open(&addr).await?;
    let body = String::from_utf8(signup_body(0))?;
    let (status, _) = c.send("POST", "/v1/collect/signup", &token, body.as_bytes(), "application/json").await?;
    anyhow::ensure!(status == 201, "signup {status}");

    let block: Vec<u8> = (0..1 << 20).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    settle_disk();
    let path = "/v1/collect/raw_upload/upload?field=file&email=person0%40bench.example";
    let took = send_upload(&mut c, &addr, path, &token, &block).await?;
    let rss_peak = serve.rss_kib("VmHWM:");
    serve.stop().await?;

    // Second baseline: a bare axum handler that streams the same body into a file.
    let bare_dir = dir.path().join("bare");
    std::fs::create_dir_all(&bare_dir)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let bare_addr = listener.local_addr()?.to_string();
    let app = axum::Router::new().route("/bare/upload", axum::routing::post(bare_upload)).with_state(bare_dir);
    let bare_server = tokio::spawn(async move { axum::serve(listener, app).await });
    settle_disk();
    let mut bc = Conn::open(&bare_addr).await?;
    let bare_took = send_upload(&mut bc, &bare_addr, "/bare/upload", "", &block).await?;
    bare_server.abort();

    // Baseline: copy a file of the same size on the same disk.
    let src = dir.path().join("plain.bin");
    {
        use std::io::Write as _;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&src)?);
        for _ in 0..UPLOAD_SIZE / block.len() {
            f.write_all(&block)?;
        }
        f.flush()?;
    }
    settle_disk();
    // A plain copy through user space in 64 KiB reads and writes, as a program that copies a
    // file does (std::fs::copy would hand the work to the kernel's copy_file_range instead).
    let t = Instant::now();
    {
        use std::io::{Read as _, Write as _};
        let mut from = std::fs::File::open(&src)?;
        let mut to = std::fs::File::create(dir.path().join("copy.bin"))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from.read(&mut buf)?;
            if n == 0 {
                break;
            }
            to.write_all(&buf[..n])?;
        }
        to.flush()?;
    }
    let copy = t.elapsed();
    let mib = UPLOAD_SIZE as f64 / (1 << 20) as f64;
    out.push(Row {
        what: "1 GiB upload over HTTP, scanned (`scan = \"record\"`) and sealed in 64 KiB chunks into local object storage".into(),
        value: format!("{:.0} MiB/s", mib / took.as_secs_f64()),
        baseline: format!(
            "{:.0} MiB/s (plain copy of a 1 GiB file, 64 KiB reads and writes)",
            mib / copy.as_secs_f64()
        ),
        ratio: format!("{:.2}×", copy.as_secs_f64() / took.as_secs_f64()),
    });
    out.push(Row {
        what: "Same upload, against a bare axum handler that streams the body into a file".into(),
        value: format!("{:.0} MiB/s", mib / took.as_secs_f64()),
        baseline: format!(
            "{:.0} MiB/s bare axum, no scan or sealing, in the bench process",
            mib / bare_took.as_secs_f64()
        ),
        ratio: format!("{:.2}×", bare_took.as_secs_f64() / took.as_secs_f64()),
    });
    out.push(Row {
        what: "Peak RSS of `charter serve` during that upload".into(),
        value: format!("{:.1} MiB", rss_peak as f64 / 1024.0),
        baseline: format!("{:.1} MiB at start-up", rss_idle as f64 / 1024.0),
        ratio: format!("{:.2}× of the 64 MiB target", rss_peak as f64 / 1024.0 / 64.0),
    });
    Ok(())
}

/// PII scanning throughput on one core, against a plain pass over the same bytes.
pub fn scan_rows(out: &mut Vec<Row>) {
    // A mixed corpus: prose, numbers that must stay negative, and personal data every few lines.
    let lines = [
        "Order 1234567890123456 shipped on 2024-03-29 12:00:00 to warehouse 7, version v1.2.3.4.\n",
        "Please contact ada.lovelace@analytical.example or call +44 20 7946 0018 about invoice 88231.\n",
        "The quick brown fox jumps over the lazy dog while the build id is 550e8400-e29b-41d4-a716-446655440000.\n",
        "Card 4111 1111 1111 1111 was charged; refund to GB82 WEST 1234 5698 7654 32 from 192.168.1.20.\n",
        "Meeting notes: the federated round finished in 42 minutes with 17 clients and no errors reported.\n",
        "Dear Dr. Ada Lovelace, your parcel for 12 Baker Street, Springfield, IL 62704 left Jasonmouth today.\n",
        "The Python SDK ships on Monday; Justin Wilkinson will demo it in San Francisco with the Support Team.\n",
    ];
    let mut corpus = Vec::with_capacity(256 << 20);
    while corpus.len() < 256 << 20 {
        for l in lines {
            corpus.extend_from_slice(l.as_bytes());
        }
    }
    let t = Instant::now();
    let mut n = 0usize;
    charter_scan::stream::scan_reader(&corpus[..], |_| n += 1).expect("in-memory read");
    let scan = t.elapsed();
    let t = Instant::now();
    let newlines = corpus.iter().filter(|b| **b == b'\n').count();
    let pass = t.elapsed();
    black_box((n, newlines));
    let mb = corpus.len() as f64 / 1e6;
    out.push(Row {
        what: format!(
            "PII scan, 256 MiB mixed text (names and places included) in 1 MiB windows, one core ({n} findings)"
        ),
        value: format!("{:.0} MB/s", mb / scan.as_secs_f64()),
        baseline: format!("{:.0} MB/s (counting newlines over the same bytes)", mb / pass.as_secs_f64()),
        ratio: format!("{:.2}× of the 100 MB/s target", mb / scan.as_secs_f64() / 100.0),
    });
}

/// Bytes in the benchmark's upload.
const UPLOAD_SIZE: usize = 1 << 30;

/// Sends `block` repeated to [`UPLOAD_SIZE`] bytes as one request body on `c`; the time until the 201.
async fn send_upload(c: &mut Conn, addr: &str, path: &str, token: &str, block: &[u8]) -> anyhow::Result<Duration> {
    use tokio::io::AsyncWriteExt as _;
    let auth = if token.is_empty() { String::new() } else { format!("Authorization: Bearer {token}\r\n") };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/octet-stream\r\nContent-Length: {UPLOAD_SIZE}\r\n\r\n"
    );
    let start = Instant::now();
    let s = c.raw();
    s.write_all(head.as_bytes()).await?;
    for _ in 0..UPLOAD_SIZE / block.len() {
        s.write_all(block).await?;
    }
    let (status, resp) = c.read_response().await?;
    anyhow::ensure!(status == 201, "upload to {path}: {status}: {}", String::from_utf8_lossy(&resp));
    Ok(start.elapsed())
}

/// The bare upload handler: the body streamed into a new file, nothing else.
async fn bare_upload(State(dir): State<std::path::PathBuf>, body: axum::body::Body) -> axum::http::StatusCode {
    use futures_util::StreamExt as _;
    use tokio::io::AsyncWriteExt as _;
    let Ok(mut file) = tokio::fs::File::create(dir.join(uuid::Uuid::new_v4().to_string())).await else {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
    };
    let mut stream = body.into_data_stream();
    while let Some(Ok(piece)) = stream.next().await {
        if file.write_all(&piece).await.is_err() {
            return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    match file.flush().await {
        Ok(()) => axum::http::StatusCode::CREATED,
        Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Flushes the kernel's dirty pages, so the upload and the copy that is its baseline each
/// start with no earlier writes still waiting for the disk.
fn settle_disk() {
    if let Err(e) = std::process::Command::new("sync").status() {
        eprintln!("bench: `sync` did not run ({e}); the upload figures may carry earlier writes");
    }
}

/// Peak memory of `charter scan` over a 2 GiB file, in a child process.
pub fn scan_memory_rows(out: &mut Vec<Row>) -> anyhow::Result<()> {
    use std::io::Write as _;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("big.txt");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let line = b"Contact Ada Lovelace at ada@example.com or +44 20 7946 0018; order 1234567890123456 at 2024-03-29 12:00:00.\n";
        let mut written = 0usize;
        while written < 2 << 30 {
            f.write_all(line)?;
            written += line.len();
        }
        f.flush()?;
    }
    let exe = std::env::current_exe()?;
    let t = Instant::now();
    let mut child = std::process::Command::new(exe)
        .args(["scan", "--format", "json"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let pid = child.id();
    let mut peak = 0;
    loop {
        if let Some(kib) = rss_kib(pid, "VmHWM:") {
            peak = peak.max(kib);
        }
        if child.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = t.elapsed();
    out.push(Row {
        what: "`charter scan` over a 2 GiB file (JSON findings to /dev/null): peak RSS".into(),
        value: format!("{:.1} MiB", peak as f64 / 1024.0),
        baseline: format!(
            "{:.0} MB/s end to end, findings streamed to the output",
            (2u64 << 30) as f64 / 1e6 / took.as_secs_f64()
        ),
        ratio: format!("{:.2}× of the 50 MB target", peak as f64 * 1024.0 / 50e6),
    });
    Ok(())
}
