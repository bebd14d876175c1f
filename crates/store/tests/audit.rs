//! The audit chain on both backends: appends, concurrency, and every kind of tampering.

use charter_core::audit::{self, AuditEvent};
use charter_store::audit::verify;
use charter_store::{AuditLog, Store};
use charter_testkit::TestDb;
use charter_vault::KeyFile;
use sqlx::Row as _;

struct Chain {
    store: Store,
    keys: KeyFile,
    _keydir: tempfile::TempDir,
}

async fn open(db: &TestDb) -> Chain {
    let keydir = tempfile::tempdir().unwrap();
    let keys = KeyFile::load_or_create(&keydir.path().join("keys.json")).unwrap();
    let store = Store::open(&db.url).await.unwrap();
    Chain { store, keys, _keydir: keydir }
}

fn event(i: usize) -> AuditEvent {
    let mut e = AuditEvent::new(format!("writer-{}", i % 4), "test.event", "ok");
    e.subject = Some(format!("00000000-0000-4000-8000-{i:012}"));
    e.purpose = Some("analytics".into());
    e
}

async fn fill(c: &Chain, n: usize) {
    let (log, task) = AuditLog::start(&c.store, c.keys.checkpoint_signer());
    for i in 0..n {
        log.append(event(i)).await.unwrap();
    }
    drop(log);
    task.await.unwrap();
}

async fn verified(c: &Chain) -> Result<charter_store::VerifyReport, charter_store::VerifyError> {
    verify(&c.store, &c.keys.checkpoint_signer().verifier()).await
}

#[tokio::test]
async fn sequential_appends_verify_with_a_final_checkpoint() {
    for db in TestDb::backends("sequential_appends").await {
        let c = open(&db).await;
        fill(&c, 25).await;
        let report = verified(&c).await.unwrap();
        assert_eq!(report.entries, 25);
        assert_eq!(report.last_checkpoint, Some(25), "closing the writer signs the head");
        assert_eq!(report.unsigned_tail, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_in_one_process_keep_one_chain() {
    for db in TestDb::backends("concurrent_one_process").await {
        let c = open(&db).await;
        let (log, task) = AuditLog::start(&c.store, c.keys.checkpoint_signer());
        let mut handles = Vec::new();
        for w in 0..16 {
            let log = log.clone();
            handles.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..40 {
                    seqs.push(log.append(event(w * 1000 + i)).await.unwrap());
                }
                seqs
            }));
        }
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.unwrap());
        }
        all.sort_unstable();
        assert_eq!(all, (1..=640).collect::<Vec<i64>>(), "every append got its own place");
        drop(log);
        task.await.unwrap();
        assert_eq!(verified(&c).await.unwrap().entries, 640);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_writers_on_one_database_keep_one_chain() {
    // Each writer has its own pool and head cache, as separate processes do.
    for db in TestDb::backends("concurrent_several_writers").await {
        let c = open(&db).await;
        let mut tasks = Vec::new();
        for p in 0..4 {
            let store = Store::open(&db.url).await.unwrap();
            let signer = c.keys.checkpoint_signer();
            tasks.push(tokio::spawn(async move {
                let (log, writer) = AuditLog::start(&store, signer);
                let mut inner = Vec::new();
                for w in 0..4 {
                    let log = log.clone();
                    inner.push(tokio::spawn(async move {
                        for i in 0..25 {
                            log.append(event(p * 10_000 + w * 100 + i)).await.unwrap();
                        }
                    }));
                }
                for h in inner {
                    h.await.unwrap();
                }
                drop(log);
                writer.await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let report = verified(&c).await.unwrap();
        assert_eq!(report.entries, 400);
    }
}

async fn row(store: &Store, seq: i64) -> sqlx::any::AnyRow {
    sqlx::query(
        "SELECT actor, action, subject, purpose, result, detail, prev_hash, hash, at_us FROM audit_log WHERE seq = $1",
    )
    .bind(seq)
    .fetch_one(store.pool())
    .await
    .unwrap()
}

async fn overwrite(store: &Store, seq: i64, r: &sqlx::any::AnyRow) {
    sqlx::query("UPDATE audit_log SET actor=$1, action=$2, subject=$3, purpose=$4, result=$5, detail=$6, prev_hash=$7, hash=$8, at_us=$9 WHERE seq=$10")
        .bind(r.get::<String, _>(0))
        .bind(r.get::<String, _>(1))
        .bind(r.get::<Option<String>, _>(2))
        .bind(r.get::<Option<String>, _>(3))
        .bind(r.get::<String, _>(4))
        .bind(r.get::<String, _>(5))
        .bind(r.get::<Vec<u8>, _>(6))
        .bind(r.get::<Vec<u8>, _>(7))
        .bind(r.get::<i64, _>(8))
        .bind(seq)
        .execute(store.pool())
        .await
        .unwrap();
}

async fn exec(store: &Store, sql: &str) {
    sqlx::query(sql).execute(store.pool()).await.unwrap();
}

#[tokio::test]
async fn every_kind_of_tampering_is_named_at_its_first_bad_entry() {
    struct Case {
        what: &'static str,
        first_bad: i64,
    }
    let cases = [
        Case { what: "edit", first_bad: 7 },
        Case { what: "delete", first_bad: 7 },
        Case { what: "reorder", first_bad: 7 },
        // A forged entry that chains correctly onto 7 is indistinguishable by itself:
        // the chain breaks at the original entry it displaced, now numbered 9.
        Case { what: "insert", first_bad: 9 },
        Case { what: "truncate", first_bad: 20 },
        // A row slipped in before the first entry.
        Case { what: "insert before the start", first_bad: 0 },
        Case { what: "forged checkpoint", first_bad: 20 },
    ];
    for db in TestDb::backends("tampering").await {
        for case in &cases {
            // A fresh chain per case, in its own database file or schema.
            let case_db =
                if db.dir.is_some() { TestDb::sqlite() } else { TestDb::postgres("tampering").await.unwrap() };
            let c = open(&case_db).await;
            fill(&c, 20).await;
            assert!(verified(&c).await.is_ok());
            let s = &c.store;
            match case.what {
                "edit" => exec(s, "UPDATE audit_log SET result = 'denied' WHERE seq = 7").await,
                "delete" => exec(s, "DELETE FROM audit_log WHERE seq = 7").await,
                "reorder" => {
                    let (a, b) = (row(s, 7).await, row(s, 8).await);
                    overwrite(s, 7, &b).await;
                    overwrite(s, 8, &a).await;
                }
                "insert" => {
                    // Renumber 8.. up by one and slip a correctly self-hashed entry in at 8.
                    exec(s, "UPDATE audit_log SET seq = -seq WHERE seq >= 8").await;
                    exec(s, "UPDATE audit_log SET seq = 1 - seq WHERE seq < 0").await;
                    let prev = row(s, 7).await;
                    let prev_hash: [u8; 32] = prev.get::<Vec<u8>, _>(7).try_into().unwrap();
                    let forged = audit::chain(Some((7, prev_hash)), 1, AuditEvent::new("intruder", "test.event", "ok"));
                    sqlx::query("INSERT INTO audit_log (seq, at_us, actor, action, subject, purpose, result, detail, prev_hash, hash) VALUES ($1,$2,$3,$4,NULL,NULL,$5,$6,$7,$8)")
                        .bind(forged.seq).bind(forged.at_us).bind(forged.event.actor).bind(forged.event.action)
                        .bind(forged.event.result).bind(forged.event.detail).bind(forged.prev_hash.to_vec()).bind(forged.hash.to_vec())
                        .execute(s.pool()).await.unwrap();
                }
                "truncate" => exec(s, "DELETE FROM audit_log WHERE seq >= 20").await,
                "insert before the start" => {
                    exec(s, "INSERT INTO audit_log (seq, at_us, actor, action, subject, purpose, result, detail, prev_hash, hash) SELECT 0, at_us, actor, action, subject, purpose, result, detail, prev_hash, hash FROM audit_log WHERE seq = 1").await;
                }
                "forged checkpoint" => {
                    let other = tempfile::tempdir().unwrap();
                    let intruder = KeyFile::load_or_create(&other.path().join("k.json")).unwrap().checkpoint_signer();
                    let hash: Vec<u8> = row(s, 20).await.get(7);
                    let sig = intruder.sign(&audit::checkpoint_message(20, &hash.clone().try_into().unwrap()));
                    sqlx::query("UPDATE audit_checkpoint SET signature = $1 WHERE seq = 20")
                        .bind(sig.to_vec())
                        .execute(s.pool())
                        .await
                        .unwrap();
                }
                _ => unreachable!(),
            }
            let err = verified(&c).await.expect_err(case.what);
            assert_eq!(err.seq(), Some(case.first_bad), "{}: {err}", case.what);
        }
    }
}

#[tokio::test]
async fn close_stops_the_writer_with_a_final_checkpoint_while_handles_remain() {
    let db = TestDb::sqlite();
    let c = open(&db).await;
    let (log, task) = AuditLog::start(&c.store, c.keys.checkpoint_signer());
    let other_handle = log.clone();
    for i in 0..3 {
        log.append(event(i)).await.unwrap();
    }
    log.close().await.unwrap();
    task.await.unwrap();
    assert!(matches!(other_handle.append(event(9)).await, Err(charter_store::AuditError::Stopped)));
    let report = verified(&c).await.unwrap();
    assert_eq!((report.entries, report.last_checkpoint), (3, Some(3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_racing_a_close_are_written_or_refused_never_lost() {
    for db in TestDb::backends("appends_racing_close").await {
        let c = open(&db).await;
        let (log, task) = AuditLog::start(&c.store, c.keys.checkpoint_signer());
        let mut handles = Vec::new();
        for w in 0..8 {
            let log = log.clone();
            handles.push(tokio::spawn(async move {
                let mut written = 0;
                for i in 0..200 {
                    match log.append(event(w * 1000 + i)).await {
                        Ok(_) => written += 1,
                        Err(charter_store::AuditError::Stopped) => break,
                        Err(e) => panic!("append failed: {e}"),
                    }
                }
                written
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        log.close().await.unwrap();
        task.await.unwrap();
        let mut written = 0;
        for h in handles {
            // Every append came back: none is left waiting on a writer that has stopped.
            let n = tokio::time::timeout(std::time::Duration::from_secs(30), h).await.unwrap().unwrap();
            written += n;
        }
        let report = verified(&c).await.unwrap();
        assert_eq!(report.entries, written, "every acknowledged append is in the chain, and nothing else");
        assert_eq!(report.last_checkpoint, Some(written), "the close signs the last one");
    }
}

#[tokio::test]
async fn the_postgres_writer_takes_a_new_connection_after_losing_its_own() {
    let Some(db) = TestDb::postgres("writer_reconnects").await else { return };
    let c = open(&db).await;
    let (log, task) = AuditLog::start(&c.store, c.keys.checkpoint_signer());
    for i in 0..5 {
        log.append(event(i)).await.unwrap();
    }
    // The server ends the writer's session (an administrator, a failover, a restart).
    let killed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'INSERT INTO audit_%') t",
    )
    .fetch_one(c.store.pool())
    .await
    .unwrap();
    assert_eq!(killed, 1, "the writer has one connection of its own");
    // The append on the lost connection may fail; the writer then takes another.
    let mut written: i64 = 5;
    let mut failures = 0;
    for i in 5..15 {
        match log.append(event(i)).await {
            Ok(seq) => {
                written += 1;
                assert_eq!(seq, written, "the chain goes on from its head in the database");
            }
            Err(charter_store::AuditError::Write(_)) => failures += 1,
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert!(failures <= 1, "only the write on the lost connection fails, not {failures}");
    log.close().await.unwrap();
    task.await.unwrap();
    let report = verified(&c).await.unwrap();
    assert_eq!(report.entries, written);
    assert_eq!(report.last_checkpoint, Some(written));
}

/// Appends 30 events numbered from `from` and answers the last one's sequence number. Were
/// a cancelled append still counted as the one about to write, each would wait for the
/// writer's once-a-second tick, and the 30 would take 30 s: they must take less than 15.
async fn thirty_more_write_at_once(log: &AuditLog, from: usize) -> i64 {
    tokio::time::timeout(std::time::Duration::from_secs(15), async {
        let mut seq = 0;
        for i in from..from + 30 {
            seq = log.append(event(i)).await.unwrap();
        }
        seq
    })
    .await
    .expect("later appends are not left waiting")
}

/// `event(i)` appended on a task of its own.
fn spawn_append(log: &AuditLog, i: usize) -> tokio::task::JoinHandle<Result<i64, charter_store::audit::AuditError>> {
    let log = log.clone();
    tokio::spawn(async move { log.append(event(i)).await })
}

#[tokio::test]
async fn an_append_cancelled_while_it_waits_to_write_leaves_no_one_waiting() {
    for db in TestDb::backends("append_cancelled").await {
        let c = open(&db).await;
        let (log, task) = AuditLog::start(&c.store, c.keys.checkpoint_signer());
        // On this one-thread runtime a spawned append runs up to where it waits, then is
        // cancelled there. Now and then the writer answers it first: then another is tried.
        let mut tried = 0;
        loop {
            tried += 1;
            assert!(tried <= 20, "no append was cancelled while it waited in 20 tries");
            let append = spawn_append(&log, tried);
            tokio::task::yield_now().await;
            append.abort();
            match append.await {
                Err(e) if e.is_cancelled() => break,
                Ok(Ok(_)) => continue,
                other => panic!("an append neither written nor cancelled: {other:?}"),
            }
        }
        let seq = thirty_more_write_at_once(&log, tried + 1).await;
        drop(log);
        task.await.unwrap();
        // Whether the cancelled append's event was written first depends on the backend; the chain holds up either way.
        assert_eq!(verified(&c).await.unwrap().entries, seq);
    }
}

/// The first of several appends, cancelled while it yields for more to arrive, still has
/// what queued behind it written: the append waiting on it is answered, and later appends
/// write at once.
#[tokio::test]
async fn appends_queued_behind_a_cancelled_first_appender_are_written() {
    for db in TestDb::backends("first_cancelled").await {
        let c = open(&db).await;
        let (log, task) = AuditLog::start(&c.store, c.keys.checkpoint_signer());
        let (first, behind) = (spawn_append(&log, 1), spawn_append(&log, 2));
        // On this one-thread runtime the first append yields, the second queues behind it, and
        // the first, seeing the queue grow, yields again: there it is cancelled.
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        first.abort();
        let _ = first.await;
        let waited = tokio::time::timeout(std::time::Duration::from_secs(15), behind).await;
        assert!(waited.expect("the append behind the cancelled one is answered").unwrap().is_ok());
        let seq = thirty_more_write_at_once(&log, 3).await;
        drop(log);
        task.await.unwrap();
        assert_eq!(verified(&c).await.unwrap().entries, seq);
    }
}

/// Appends on several threads at once, a third of them cancelled soon after they start (some
/// while first on their thread, yielding for more to arrive): every append not cancelled is
/// answered with a sequence number of its own, and the chain holds every answered one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_on_several_threads_with_some_cancelled_are_all_answered() {
    for db in TestDb::backends("several_threads_cancelled").await {
        let c = open(&db).await;
        let (log, task) = AuditLog::start(&c.store, c.keys.checkpoint_signer());
        let mut kept = Vec::new();
        for round in 0..50 {
            for i in 0..8 {
                let append = spawn_append(&log, round * 8 + i);
                if i % 3 == 0 {
                    append.abort();
                } else {
                    kept.push(append);
                }
            }
        }
        let mut seqs = Vec::new();
        for append in kept {
            let answered = tokio::time::timeout(std::time::Duration::from_secs(15), append).await;
            seqs.push(answered.expect("an append not cancelled is answered").unwrap().unwrap());
        }
        seqs.sort_unstable();
        seqs.dedup();
        assert_eq!(seqs.len(), 250, "each answered append has a sequence number of its own");
        let last = log.append(event(1000)).await.unwrap();
        drop(log);
        task.await.unwrap();
        let report = verified(&c).await.unwrap();
        assert_eq!(report.entries, last, "the chain runs unbroken to the last append");
        assert!(seqs.iter().all(|s| *s < last), "every answered append is in it");
    }
}

/// The audit file of a SQLite database and its WAL and shared-memory files.
fn remove_audit_file(audit_file: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut f = audit_file.as_os_str().to_owned();
        f.push(suffix);
        let _ = std::fs::remove_file(f);
    }
}

/// A SQLite database from before the chain had a file of its own (its chain in the data
/// file, no audit file): opening it moves every entry and checkpoint to the audit file,
/// and the chain still verifies; opening it again changes nothing. A chain that differs
/// from the audit file's is refused with nothing dropped, and so is a database whose
/// audit file went missing.
#[tokio::test]
async fn an_older_sqlite_chain_moves_to_its_own_file_intact() {
    let db = TestDb::sqlite();
    let mut c = open(&db).await;
    fill(&c, 40).await;
    let before = verified(&c).await.unwrap();
    c.store.close().await;
    let data = db.path().unwrap().join("charter.db");
    let audit_file = charter_store::db::audit_file_beside(&data);
    assert_eq!(audit_file.file_name().unwrap(), "charter-audit.db");
    let put_back = |tamper: &str| {
        // The chain where the first migration made it, as older versions kept it.
        let conn = rusqlite::Connection::open(&data).unwrap();
        conn.execute("ATTACH DATABASE ?1 AS audit", [audit_file.to_str().unwrap()]).unwrap();
        conn.execute_batch(include_str!("../migrations/sqlite/20261129000001_audit.sql")).unwrap();
        conn.execute_batch(
            "INSERT INTO main.audit_log SELECT * FROM audit.audit_log;
             INSERT INTO main.audit_checkpoint SELECT * FROM audit.audit_checkpoint;
             DROP TABLE IF EXISTS main.audit_file_link;",
        )
        .unwrap();
        conn.execute_batch(tamper).unwrap();
    };
    let count_in_main = || {
        let conn = rusqlite::Connection::open(&data).unwrap();
        conn.query_row("SELECT COUNT(*) FROM main.audit_log", [], |r| r.get::<_, i64>(0)).unwrap()
    };

    // A chain in the data file that differs from the audit file's: refused, nothing dropped.
    put_back("UPDATE main.audit_log SET hash = zeroblob(32) WHERE seq = 5;");
    let refused = Store::open(&db.url).await.unwrap_err();
    assert!(matches!(refused, charter_store::StoreError::AuditFile(_)), "{refused}");
    assert!(refused.to_string().contains("differs"), "{refused}");
    assert_eq!(count_in_main(), 40, "the data file still holds its chain");

    // The older layout proper: the chain in the data file and no audit file at all.
    {
        let conn = rusqlite::Connection::open(&data).unwrap();
        conn.execute_batch(
            "DROP TABLE main.audit_log; DROP TABLE main.audit_checkpoint; DROP TABLE IF EXISTS main.audit_file_link;",
        )
        .unwrap();
    }
    put_back("DETACH DATABASE audit;");
    remove_audit_file(&audit_file);
    for _ in 0..2 {
        c.store = Store::open(&db.url).await.unwrap();
        let report = verified(&c).await.unwrap();
        assert_eq!((report.entries, report.last_checkpoint), (before.entries, before.last_checkpoint));
        let in_main: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM main.sqlite_master WHERE name IN ('audit_log', 'audit_checkpoint')",
        )
        .fetch_one(c.store.pool())
        .await
        .unwrap();
        assert_eq!(in_main, 0, "the data file no longer holds the chain");
        c.store.close().await;
    }
    let conn = rusqlite::Connection::open(&audit_file).unwrap();
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM audit_log", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 40, "every entry is in the audit file");
    drop(conn);

    // The audit file lost: refused, rather than a new chain starting at 1.
    remove_audit_file(&audit_file);
    let refused = Store::open(&db.url).await.unwrap_err();
    assert!(matches!(refused, charter_store::StoreError::AuditFile(_)), "{refused}");
    assert!(refused.to_string().contains("missing"), "{refused}");
}

/// Only a clash on the sequence number is a lost race, retried from the new head; any other
/// refusal by the database (here a trigger) fails the append at once with its own reason.
#[tokio::test]
async fn a_refused_write_is_an_error_not_a_race() {
    for db in TestDb::backends("refused_write").await {
        let c = open(&db).await;
        let (table, raise) = match c.store.backend() {
            charter_store::Backend::Sqlite => (
                "audit.audit_log",
                "CREATE TRIGGER audit.no_writes BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'writes refused'); END",
            ),
            charter_store::Backend::Postgres => (
                "audit_log",
                "CREATE FUNCTION no_writes() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'writes refused'; END $$ LANGUAGE plpgsql; \
                 CREATE TRIGGER no_writes BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION no_writes()",
            ),
        };
        let (log, task) = AuditLog::start(&c.store, c.keys.checkpoint_signer());
        log.append(event(0)).await.unwrap();
        for statement in raise.split("; CREATE") {
            let statement =
                if statement.starts_with("CREATE") { statement.to_owned() } else { format!("CREATE{statement}") };
            exec(&c.store, &statement).await;
        }
        let refused = log.append(event(1)).await.unwrap_err().to_string();
        assert!(refused.contains("writes refused"), "the database's reason, not a lost race: {refused}");
        let n: i64 =
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(c.store.pool()).await.unwrap();
        assert_eq!(n, 1);
        drop(log);
        let _ = task.await;
    }
}
