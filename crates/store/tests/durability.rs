//! What an answered commit survives on SQLite: every connection the store opens (the
//! pool's, on both files, and the direct ones) syncs as the store was told.

use charter_store::{Store, Synchronous};
use charter_testkit::TestDb;

/// SQLite's `synchronous` values: 1 is NORMAL, 2 is FULL.
async fn settings(store: &Store) -> Vec<i64> {
    let mut conn = store.pool().acquire().await.unwrap();
    let mut seen = Vec::new();
    for file in ["main", "audit"] {
        let q = format!("PRAGMA {file}.synchronous");
        seen.push(sqlx::query_scalar::<_, i64>(q.as_str()).fetch_one(&mut *conn).await.unwrap());
    }
    let direct = store.sqlite_direct().unwrap();
    seen.push(direct.read(|c| c.query_row("PRAGMA synchronous", [], |r| r.get(0))).unwrap());
    seen.push(direct.write(|c| c.query_row("PRAGMA synchronous", [], |r| r.get(0))).unwrap());
    seen
}

#[tokio::test]
async fn sqlite_syncs_every_commit_unless_told_otherwise() {
    let db = TestDb::sqlite();
    let full = Store::open(&db.url).await.unwrap();
    assert_eq!(full.synchronous(), Synchronous::Full);
    assert_eq!(settings(&full).await, vec![2, 2, 2, 2], "FULL by default");
    full.close().await;
    let normal = Store::open_with(&db.url, Synchronous::Normal).await.unwrap();
    assert_eq!(settings(&normal).await, vec![1, 1, 1, 1], "NORMAL when chosen");
    normal.close().await;
    assert_eq!("normal".parse::<Synchronous>(), Ok(Synchronous::Normal));
    assert_eq!("full".parse::<Synchronous>(), Ok(Synchronous::Full));
    assert!("off".parse::<Synchronous>().unwrap_err().contains("`full`"));
}
