//! `charter bench --only retention`: the retention sweep over 1,000,000 due records
//! against a plain `DELETE` of the same rows in the same run. Each record holds one
//! value of a category the policy deletes after 13 months; the records are 400 days
//! old, so the sweep deletes every value and then every emptied record.

use std::time::{Duration, Instant};

use charter_server::retention::Sweep;
use charter_store::{Backend, Store};

use crate::vault::Running;
use crate::Row;

const DAY_US: i64 = 86_400_000_000;
const CATEGORY: &str = "user.device.cookie_id";

/// Adds `n` records of `subject`, 400 days old, each with one due value.
async fn fill(store: &Store, subject: &str, n: usize, now_us: i64) -> anyhow::Result<()> {
    let series = match store.backend() {
        Backend::Postgres => format!("SELECT g AS n FROM generate_series(1, {n}) g"),
        Backend::Sqlite => {
            format!("WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n}) SELECT n FROM s")
        }
    };
    sqlx::query(&format!(
        "INSERT INTO records (id, subject_id, point, collected_at_us, wrapped_key) \
         SELECT 'bench-' || n, $1, 'analytics', $2, $3 FROM ({series}) g"
    ))
    .bind(subject)
    .bind(now_us - 400 * DAY_US)
    .bind(vec![7_u8; 72])
    .execute(store.pool())
    .await?;
    sqlx::query(&format!(
        "INSERT INTO record_fields (record_id, field, category, sealed) \
         SELECT 'bench-' || n, 'cookie_id', $1, $2 FROM ({series}) g"
    ))
    .bind(CATEGORY)
    .bind(vec![9_u8; 48])
    .execute(store.pool())
    .await?;
    Ok(())
}

/// The baseline: the same rows gone in two plain statements.
async fn plain_delete(store: &Store) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut tx = store.pool().begin().await?;
    sqlx::query("DELETE FROM record_fields WHERE category = $1").bind(CATEGORY).execute(&mut *tx).await?;
    sqlx::query("DELETE FROM records WHERE point = 'analytics'").execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(start.elapsed())
}

/// The sweep of 1,000,000 due records, and the plain delete of the same rows.
pub async fn retention_rows(label: &str, url: &str, out: &mut Vec<Row>) -> anyhow::Result<()> {
    const N: usize = 1_000_000;
    let running = Running::start(url, charter_store::Synchronous::Full).await?;
    let state = running.state.clone();
    let store = state.store.clone();
    let subject = uuid::Uuid::new_v4().to_string();
    sqlx::query("INSERT INTO subjects (id, created_at_us) VALUES ($1, $2)")
        .bind(&subject)
        .bind(charter_store::now_us())
        .execute(store.pool())
        .await?;
    let now = charter_store::now_us();
    fill(&store, &subject, N, now).await?;
    let plain = plain_delete(&store).await?;
    fill(&store, &subject, N, now).await?;
    let policy = state.policy();
    let sweep = Sweep {
        store: &store,
        keys: state.keys.as_ref(),
        objects: state.objects.as_ref(),
        policy: &policy.loaded.policy,
        now_us: now,
    };
    let start = Instant::now();
    let tally = sweep.run("bench", &mut |_, _| {}).await?;
    let swept = start.elapsed();
    let deleted = tally.get(&(CATEGORY.to_owned(), "deleted")).copied().unwrap_or(0);
    anyhow::ensure!(deleted == N as u64, "the sweep deleted {deleted} values, not {N}: {tally:?}");
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM records").fetch_one(store.pool()).await?;
    anyhow::ensure!(left == 0, "{left} records are left after the sweep");
    drop(policy);
    let (s, p) = (N as f64 / swept.as_secs_f64(), N as f64 / plain.as_secs_f64());
    out.push(Row {
        what: format!("Retention sweep, {label}, 1,000,000 due records (batches of 1,000)"),
        value: format!("{s:.0} records/s"),
        baseline: format!("{p:.0} records/s (plain DELETE of the same rows, one transaction)"),
        ratio: format!("{:.2}×", s / p),
    });
    running.stop().await
}
