//! `charter hold` and `charter retention` as an operator runs them from cron: holds are
//! refused when they name nothing, show in the dry run and keep what they cover; a
//! sweep killed with SIGKILL mid-way leaves whole batches, and the next run finishes
//! the work with every value counted once; the report adds it up.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{request, run, Server};
use serde_json::{json, Value};

const DAY_US: i64 = 86_400_000_000;
const COPIES: i64 = 20_000;

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs SQL against the stopped server's SQLite database.
fn sql(data: &Path, statements: &[&str]) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = charter_store::Store::connect(&charter_store::Store::sqlite_url(data)).await.unwrap();
        for s in statements {
            sqlx::query(s).execute(store.pool()).await.unwrap();
        }
        store.close().await;
    });
}

/// Waits until a sweep has recorded its first batch.
fn wait_for_first_batch(data: &Path) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = charter_store::Store::connect(&charter_store::Store::sqlite_url(data)).await.unwrap();
        for _ in 0..3000 {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM retention_outcomes WHERE outcome <> 'held'")
                .fetch_one(store.pool())
                .await
                .unwrap();
            if n > 0 {
                store.close().await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the sweep recorded no batch in 30 s");
    });
}

/// Collects one visit at the analytics point; returns (subject, record).
fn visit(addr: &str, token: &str, email: &str) -> (String, String) {
    let body = json!({
        "subject": { "email": email },
        "fields": { "page": "/docs?q=1", "ip_address": "198.51.100.23", "browser": "Firefox/128.0", "cookie_id": "c-1" }
    });
    let r = request(addr, "POST", "/v1/collect/analytics", Some(token), &body.to_string());
    assert_eq!(r.status, 201, "{}", r.text());
    let v: Value = serde_json::from_str(&r.text()).unwrap();
    (v["subject_id"].as_str().unwrap().to_owned(), v["record_id"].as_str().unwrap().to_owned())
}

/// The dry run's rows: (category, action, due, held).
fn dry_run(cwd: &Path) -> Vec<(String, String, i64, i64)> {
    let o = run(cwd, &["retention", "run", "--dry-run"]);
    assert!(o.status.success(), "{}", err(&o));
    out(&o)
        .lines()
        .skip(2)
        .map(|l| {
            let c: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            (c[0].to_owned(), c[1].to_owned(), c[2].parse().unwrap(), c[3].parse().unwrap())
        })
        .filter(|r| r.2 > 0)
        .collect()
}

#[test]
fn holds_and_a_sweep_killed_mid_way_then_finished() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("charter-data");
    let created =
        run(cwd.path(), &["apikey", "create", "--name", "site", "--purposes", "analytics", "--points", "analytics"]);
    assert!(created.status.success(), "{}", err(&created));
    let token = out(&created).trim().to_owned();
    let server = Server::start(cwd.path(), &[]);
    let (held, _) = visit(&server.addr, &token, "held@example.org");
    let (_, record) = visit(&server.addr, &token, "many@example.org");
    assert!(server.stop().0.success());

    // Holds name a subject or a category that exists, with a reason.
    let refused = run(cwd.path(), &["hold", "add", "--subject", "nobody", "--reason", "litigation"]);
    assert_eq!(
        (refused.status.code(), err(&refused).contains("no subject `nobody`")),
        (Some(2), true),
        "{}",
        err(&refused)
    );
    let refused = run(cwd.path(), &["hold", "add", "--category", "user.soul", "--reason", "x"]);
    assert_eq!(refused.status.code(), Some(2), "{}", err(&refused));
    let refused = run(cwd.path(), &["hold", "add", "--subject", &held, "--reason", "  "]);
    assert_eq!(refused.status.code(), Some(2), "{}", err(&refused));
    let added = run(cwd.path(), &["hold", "add", "--subject", &held, "--reason", "litigation 2026-114"]);
    assert!(added.status.success(), "{}", err(&added));
    let hold = out(&added).trim().to_owned();
    assert!(out(&run(cwd.path(), &["hold", "list"])).contains(&hold));

    // Both visits 400 days old, and many copies of the second (copies do not open under
    // another record's id, so the sweep deletes them: their count is what matters).
    let old = charter_store::now_us() - 400 * DAY_US;
    sql(
        &data,
        &[
            &format!("UPDATE records SET collected_at_us = {old}"),
            &format!(
                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {COPIES}) \
                 INSERT INTO records (id, subject_id, point, collected_at_us, wrapped_key) \
                 SELECT r.id || '-' || g.n, r.subject_id, r.point, r.collected_at_us, r.wrapped_key FROM records r, g \
                 WHERE r.id = '{record}'"
            ),
            &format!(
                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {COPIES}) \
                 INSERT INTO record_fields (record_id, field, category, sealed) \
                 SELECT f.record_id || '-' || g.n, f.field, f.category, f.sealed FROM record_fields f, g \
                 WHERE f.record_id = '{record}'"
            ),
        ],
    );
    let planned = dry_run(cwd.path());
    assert_eq!(planned.len(), 4, "{planned:?}");
    for (category, _, due, held) in &planned {
        assert_eq!((*due, *held), (COPIES + 2, 1), "{category}");
    }

    // Killed once its first batches are in, then run again.
    let mut child = common::charter().current_dir(cwd.path()).args(["retention", "run"]).spawn().unwrap();
    wait_for_first_batch(&data);
    assert!(child.try_wait().unwrap().is_none(), "the sweep is still running when it is killed");
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = dry_run(cwd.path());
    assert!(partial.iter().map(|r| r.2).sum::<i64>() < 4 * (COPIES + 2), "some batches were done: {partial:?}");
    assert!(!partial.is_empty(), "some were not: {partial:?}");
    let finished = run(cwd.path(), &["retention", "run"]);
    assert!(finished.status.success(), "{}", err(&finished));
    let left = dry_run(cwd.path());
    assert_eq!(left.len(), 4, "only the held values are left: {left:?}");
    assert!(left.iter().all(|(_, _, due, held)| (*due, *held) == (1, 1)), "{left:?}");

    // The report counts every value once, whichever run handled it.
    let report =
        run(cwd.path(), &["retention", "report", "--from", "2026-01-01", "--to", "2100-01-01", "--format", "json"]);
    assert!(report.status.success(), "{}", err(&report));
    let doc: Value = serde_json::from_str(&out(&report)).unwrap();
    let rows = doc["outcomes"].as_array().unwrap();
    for (category, ..) in &planned {
        let handled: i64 = rows
            .iter()
            .filter(|r| {
                r["category"] == category.as_str() && (r["outcome"] == "deleted" || r["outcome"] == "anonymised")
            })
            .map(|r| r["count"].as_i64().unwrap())
            .sum();
        assert_eq!(handled, COPIES + 1, "{category}: {rows:?}");
    }
    let bad = run(cwd.path(), &["retention", "report", "--from", "2026-02-01", "--to", "2026-01-01"]);
    assert_eq!(bad.status.code(), Some(2), "{}", err(&bad));

    // Ending the hold lets the next sweep do what it kept; the chain holds every step.
    assert!(run(cwd.path(), &["hold", "remove", &hold]).status.success());
    assert_eq!(run(cwd.path(), &["hold", "remove", &hold]).status.code(), Some(2));
    assert!(run(cwd.path(), &["retention", "run"]).status.success());
    assert!(dry_run(cwd.path()).is_empty());
    let verify = run(cwd.path(), &["audit", "verify"]);
    assert!(verify.status.success(), "{}", out(&verify));
}
