//! How long a revoked API key keeps working on a running server: the key is revoked
//! through a connection of its own (as `charter apikey revoke` does, from another
//! process) while a client keeps using it.

use std::time::{Duration, Instant};

use crate::loadgen::Conn;
use crate::vault::Running;
use crate::Row;

const ROUNDS: usize = 5;

/// One round: a fresh key in steady use, revoked; the time until the server refuses it
/// and the requests it accepted meanwhile.
async fn round(running: &Running, url: &str, i: usize) -> anyhow::Result<(Duration, usize)> {
    let store = &running.state.store;
    let name = format!("revoked-{i}");
    let token = store.create_api_key(&name, &["support".to_owned()], &["support".to_owned()], 0).await?;
    let path = "/v1/subjects/00000000-0000-4000-8000-000000000000/data?purpose=support";
    let mut conn = Conn::open(&running.addr).await?;
    // Steady use first, so the server holds the key in its cache.
    for _ in 0..50 {
        let (status, _) = conn.send("GET", path, &token, b"", "application/json").await?;
        anyhow::ensure!(status != 401, "the fresh key was refused");
    }
    let elsewhere = charter_store::Store::connect(url).await?;
    anyhow::ensure!(elsewhere.revoke_api_key(&name, charter_store::now_us()).await?, "revoke {name}");
    elsewhere.close().await;
    let revoked = Instant::now();
    let mut accepted = 0;
    loop {
        let (status, _) = conn.send("GET", path, &token, b"", "application/json").await?;
        if status == 401 {
            return Ok((revoked.elapsed(), accepted));
        }
        accepted += 1;
        anyhow::ensure!(revoked.elapsed() < Duration::from_secs(10), "the revoked key still works after 10 s");
    }
}

/// The worst of several rounds on one backend, against the README's promise of 1 s.
pub async fn revocation_rows(label: &str, url: &str, out: &mut Vec<Row>) -> anyhow::Result<()> {
    let running = Running::start(url, charter_store::Synchronous::Full).await?;
    let mut worst = (Duration::ZERO, 0);
    for i in 0..ROUNDS {
        let (took, accepted) = round(&running, url, i).await?;
        if took > worst.0 {
            worst = (took, accepted);
        }
    }
    running.stop().await?;
    let promised = charter_server::extract::KEY_CACHE_TTL;
    out.push(Row {
        what: format!("{label}: a revoked API key refused after (worst of {ROUNDS}; requests still accepted)"),
        value: format!("{:.0} ms ({} requests)", worst.0.as_secs_f64() * 1e3, worst.1),
        baseline: format!("promised: {} ms", promised.as_millis()),
        ratio: format!("{:.2}×", worst.0.as_secs_f64() / promised.as_secs_f64()),
    });
    Ok(())
}
