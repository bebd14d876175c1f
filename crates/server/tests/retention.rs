//! The retention sweep on both backends, at an injected time: records are backdated in
//! the database and the sweep is run as of a chosen moment, never by sleeping. Rules
//! cross their deadline per record; holds keep what they cover; anonymised usage keeps
//! only its coarse part and only in groups of at least k; two servers sweeping one
//! PostgreSQL database share the work without doing any of it twice.

mod common;

use charter_server::retention::{Due, Sweep, Tally};
use charter_store::retention::Hold;
use common::data::assert_absent;
use common::{backends, TestApp};
use serde_json::{json, Value};

const DAY_US: i64 = 86_400_000_000;
const PRECISE_IP: &str = "203.0.113.77";
const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

fn visit(email: &str, ip: &str, location: &str) -> Value {
    json!({
        "subject": { "email": email },
        "fields": {
            "page": "/pricing?utm_source=mail&uid=889",
            "ip_address": ip,
            "browser": USER_AGENT,
            "os": "X11; Linux x86_64",
            "location": location,
            "cookie_id": "ck-5f1e0c9a",
        }
    })
}

/// Collects a visit and returns its record id.
async fn collect_visit(app: &TestApp, key: &str, body: &Value) -> String {
    let got = app.collect(key, "analytics", body).await;
    assert_eq!(got.status, 201, "{}", got.body);
    got.body["record_id"].as_str().unwrap().to_owned()
}

/// Moves a record's collection time `days` back from `now_us`.
async fn backdate(app: &TestApp, record: &str, now_us: i64, days: i64) {
    sqlx::query("UPDATE records SET collected_at_us = $1 WHERE id = $2")
        .bind(now_us - days * DAY_US)
        .bind(record)
        .execute(app.state.store.pool())
        .await
        .unwrap();
}

/// Runs a whole sweep, as sweep `id`, at `now_us`.
async fn run(app: &TestApp, now_us: i64, id: &str) -> Tally {
    let policy = app.state.policy();
    let sweep = Sweep {
        store: &app.state.store,
        keys: app.state.keys.as_ref(),
        objects: app.state.objects.as_ref(),
        policy: &policy.loaded.policy,
        now_us,
    };
    sweep.run(id, &mut |_, _| {}).await.unwrap()
}

/// The dry run at `now_us`, as (category, due, held) where something is due.
async fn plan(app: &TestApp, now_us: i64) -> Vec<(String, i64, i64)> {
    let policy = app.state.policy();
    let sweep = Sweep {
        store: &app.state.store,
        keys: app.state.keys.as_ref(),
        objects: app.state.objects.as_ref(),
        policy: &policy.loaded.policy,
        now_us,
    };
    let plan: Vec<Due> = sweep.plan().await.unwrap();
    plan.into_iter().filter(|d| d.due > 0).map(|d| (d.category, d.due, d.held)).collect()
}

fn tally(pairs: &[(&str, &'static str, u64)]) -> Tally {
    pairs.iter().map(|(c, o, n)| (((*c).to_owned(), *o), *n)).collect()
}

fn due(pairs: &[(&str, i64, i64)]) -> Vec<(String, i64, i64)> {
    pairs.iter().map(|(c, d, h)| ((*c).to_owned(), *d, *h)).collect()
}

const IP: &str = "user.device.ip_address";
const USAGE: &str = "user.behavior.usage";
const COOKIE: &str = "user.device.cookie_id";
const BROWSER: &str = "user.device.browser";
const OS: &str = "user.device.os";
const LOCATION: &str = "user.location.approximate";

/// The fields of a record that are anonymised, in field order (reads withhold values
/// past their retention, so the sweep's work is read from the store).
async fn anonymised(app: &TestApp, record: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT field FROM record_fields WHERE record_id = $1 AND anonymised_at_us IS NOT NULL ORDER BY field",
    )
    .bind(record)
    .fetch_all(app.state.store.pool())
    .await
    .unwrap()
}

async fn subject_of(app: &TestApp, key: &str, body: &Value) -> (String, String) {
    let got = app.collect(key, "analytics", body).await;
    assert_eq!(got.status, 201, "{}", got.body);
    (got.body["subject_id"].as_str().unwrap().to_owned(), got.body["record_id"].as_str().unwrap().to_owned())
}

/// Usage past 13 months is generalised in place, its cookie id deleted, the record
/// detached from its person and kept only where at least k = 5 records share its
/// quasi-identifiers; an address past 90 days is truncated and its record stays; a fresh
/// record is untouched; a second sweep finds nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_generalised_per_record_and_kept_only_in_groups_of_k() {
    for db in backends("retention_usage").await {
        let app = TestApp::spawn(&db).await;
        let key = app.key("site", &["analytics"], &["analytics"]).await;
        let now = charter_store::now_us();
        for i in 0..6 {
            let ip = if i == 0 { PRECISE_IP.to_owned() } else { format!("203.0.113.{}", 10 + i) };
            let record = collect_visit(&app, &key, &visit(&format!("p{i}@example.org"), &ip, "Berlin, DE")).await;
            backdate(&app, &record, now, 400).await;
        }
        for (i, ip) in ["198.51.100.7", "192.0.2.9"].iter().enumerate() {
            let record = collect_visit(&app, &key, &visit(&format!("q{i}@example.org"), ip, "Lyon, FR")).await;
            backdate(&app, &record, now, 400).await;
        }
        let (_, older) = subject_of(&app, &key, &visit("older@example.org", "198.51.100.200", "Oslo, NO")).await;
        backdate(&app, &older, now, 100).await;
        let (_, fresh) = subject_of(&app, &key, &visit("fresh@example.org", "198.51.100.201", "Oslo, NO")).await;

        let all = |n| [(BROWSER, n, 0), (COOKIE, n, 0), (OS, n, 0), (USAGE, n, 0), (IP, n + 1, 0), (LOCATION, n, 0)];
        let mut expected = due(&all(8));
        expected.sort();
        let mut planned = plan(&app, now).await;
        planned.sort();
        assert_eq!(planned, expected);

        let done = run(&app, now, "sweep-1").await;
        assert_eq!(
            done,
            tally(&[
                ("*", "detached", 8),
                ("*", "suppressed", 2),
                (BROWSER, "anonymised", 8),
                (COOKIE, "deleted", 8),
                (IP, "anonymised", 9),
                (LOCATION, "anonymised", 8),
                (OS, "anonymised", 8),
                (USAGE, "anonymised", 8),
            ])
        );
        assert_eq!(app.count("records").await, 2, "the detached records are gone");
        let kept = app.state.store.anonymous_records().await.unwrap();
        assert_eq!(kept.len(), 6, "only the group of six is kept: {kept:?}");
        for (point, day, group, values) in &kept {
            assert_eq!(point, "analytics");
            assert_eq!(day, &charter_core::retention::day_of_us(now - 400 * DAY_US));
            assert_eq!(
                group, "analytics|browser=Firefox|ip_address=203.0.113.0/24|location=DE|os=Linux",
                "the quasi-identifiers, generalised"
            );
            assert_eq!(values, r#"{"page":"/pricing"}"#, "the page without its query; no cookie id");
        }

        assert_eq!(anonymised(&app, &older).await, ["ip_address"], "only the address was due");
        assert!(anonymised(&app, &fresh).await.is_empty());

        assert!(run(&app, now, "sweep-2").await.is_empty(), "nothing is done twice");
        assert_absent(&db, &[PRECISE_IP.as_bytes(), b"uid=889", b"ck-5f1e0c9a", b"Berlin"]).await;
    }
}

/// A hold on a person keeps their due values and shows in the dry run; a record of the
/// same person not yet due is left alone; a hold on a category keeps everyone's; once
/// the holds end, the next sweep does what they kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_keep_what_they_cover_until_removed() {
    for db in backends("retention_holds").await {
        let app = TestApp::spawn(&db).await;
        let key = app.key("site", &["analytics"], &["analytics"]).await;
        let now = charter_store::now_us();
        let (held, held_old) = subject_of(&app, &key, &visit("held@example.org", "198.51.100.1", "Oslo, NO")).await;
        backdate(&app, &held_old, now, 100).await;
        let (_, free_old) = subject_of(&app, &key, &visit("free@example.org", "198.51.100.2", "Oslo, NO")).await;
        backdate(&app, &free_old, now, 100).await;
        let recent = collect_visit(&app, &key, &visit("free@example.org", "198.51.100.3", "Oslo, NO")).await;
        backdate(&app, &recent, now, 60).await;

        let hold = |id: &str, subject: Option<&str>, category: Option<&str>| Hold {
            id: id.to_owned(),
            subject_id: subject.map(str::to_owned),
            category: category.map(str::to_owned),
            reason: "litigation".to_owned(),
            created_at_us: now,
            removed_at_us: None,
        };
        app.state.store.add_hold(&hold("h-person", Some(&held), None)).await.unwrap();
        assert_eq!(plan(&app, now).await, due(&[(IP, 2, 1)]));
        assert_eq!(run(&app, now, "s1").await, tally(&[(IP, "anonymised", 1), (IP, "held", 1)]));
        assert!(anonymised(&app, &held_old).await.is_empty());
        assert_eq!(anonymised(&app, &free_old).await, ["ip_address"]);
        assert!(anonymised(&app, &recent).await.is_empty(), "per record: sixty days is not yet due");

        app.state.store.add_hold(&hold("h-category", None, Some(IP))).await.unwrap();
        assert!(app.state.store.remove_hold("h-person", now).await.unwrap());
        assert!(!app.state.store.remove_hold("h-person", now).await.unwrap(), "a hold ends once");
        assert_eq!(run(&app, now, "s2").await, tally(&[(IP, "held", 1)]));
        assert!(anonymised(&app, &held_old).await.is_empty());

        assert!(app.state.store.remove_hold("h-category", now).await.unwrap());
        assert_eq!(run(&app, now, "s3").await, tally(&[(IP, "anonymised", 1)]));
        assert_eq!(anonymised(&app, &held_old).await, ["ip_address"]);
        let holds = app.state.store.holds(true).await.unwrap();
        assert_eq!(holds.iter().filter(|h| h.removed_at_us.is_some()).count(), 2);
        assert!(app.state.store.holds(false).await.unwrap().is_empty());
    }
}

/// A closed account's profile is deleted 30 days after closure (its password at once),
/// and then the person, with nothing left, is crypto-shredded; an account closed ten
/// days ago keeps all but its password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_account_is_deleted_after_its_grace_period_and_shredded() {
    for db in backends("retention_closed").await {
        let app = TestApp::spawn(&db).await;
        let key = app.key("site", &["registration"], &["signup"]).await;
        let now = charter_store::now_us();
        let mut ids = Vec::new();
        for (email, closed_days_ago) in [("gone@example.org", 31), ("grace@example.org", 10)] {
            let got = app.collect(&key, "signup", &common::data::signup(email)).await;
            assert_eq!(got.status, 201, "{}", got.body);
            let id = got.body["subject_id"].as_str().unwrap().to_owned();
            assert!(app.state.store.close_account(&id, now - closed_days_ago * DAY_US).await.unwrap());
            ids.push(id);
        }
        let categories = |id: &str| {
            let id = id.to_owned();
            let pool = app.state.store.pool().clone();
            async move {
                let c: Vec<String> =
                    sqlx::query_scalar("SELECT category FROM field_values WHERE subject_id = $1 ORDER BY category")
                        .bind(id)
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                c
            }
        };
        let before = categories(&ids[1]).await;
        assert!(before.contains(&"user.account.credentials".to_owned()), "{before:?}");
        let done = run(&app, now, "s1").await;
        assert_eq!(done.get(&("*".to_owned(), "shredded")), Some(&1), "{done:?}");
        assert!(categories(&ids[0]).await.is_empty());
        let kept: Vec<String> = before.into_iter().filter(|c| c != "user.account.credentials").collect();
        assert_eq!(categories(&ids[1]).await, kept, "the grace period keeps the rest");
        let shredded: Vec<(String, Option<i64>)> =
            sqlx::query_as("SELECT id, shredded_at_us FROM subjects WHERE id IN ($1, $2)")
                .bind(&ids[0])
                .bind(&ids[1])
                .fetch_all(app.state.store.pool())
                .await
                .unwrap();
        assert_eq!(shredded.len(), 2);
        for (id, at) in shredded {
            assert_eq!(at.is_some(), id == ids[0], "only the account past its grace period is shredded");
        }
    }
}

/// Two servers sweeping one PostgreSQL database at once: every due value is handled by
/// exactly one of them, and nothing is left due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_one_sweep_without_double_work() {
    let Some(db) = backends("retention_two").await.into_iter().find(|d| d.path().is_none()) else {
        return;
    };
    let first = TestApp::spawn(&db).await;
    let second = first.spawn_beside(&db).await;
    let key = first.key("site", &["analytics"], &["analytics"]).await;
    let now = charter_store::now_us();
    let (_, record) = subject_of(&first, &key, &visit("many@example.org", "198.51.100.9", "Oslo, NO")).await;
    // 2,500 copies of one visit, 400 days old: copies of sealed values do not open
    // under another record's id, so the sweep deletes what it cannot generalise.
    let pool = first.state.store.pool();
    sqlx::query(
        "INSERT INTO records (id, subject_id, point, collected_at_us, wrapped_key)          SELECT r.id || '-' || g, r.subject_id, r.point, $2, r.wrapped_key FROM records r, generate_series(1, 2500) g          WHERE r.id = $1",
    )
    .bind(&record)
    .bind(now - 400 * DAY_US)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO record_fields (record_id, field, category, sealed)          SELECT f.record_id || '-' || g, f.field, f.category, f.sealed FROM record_fields f, generate_series(1, 2500) g          WHERE f.record_id = $1",
    )
    .bind(&record)
    .execute(pool)
    .await
    .unwrap();
    let planned = plan(&first, now).await;
    assert_eq!(planned.len(), 6, "{planned:?}");

    let (a, b) = tokio::join!(run(&first, now, "a"), run(&second, now, "b"));
    for (category, due, _) in &planned {
        let handled: u64 = [&a, &b]
            .iter()
            .flat_map(|t| t.iter())
            .filter(|((c, o), _)| c == category && (*o == "deleted" || *o == "anonymised"))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(i64::try_from(handled).unwrap(), *due, "{category}: a {a:?}, b {b:?}");
    }
    assert!(plan(&first, now).await.is_empty(), "nothing is left due");
    assert_eq!(first.count("records").await, 1, "only the fresh visit is left");
    let report = first.state.store.retention_report(now - 1, now + 1).await.unwrap();
    let deleted: i64 = report.iter().filter(|o| o.outcome == "deleted").map(|o| o.n).sum();
    assert_eq!(deleted, 6 * 2500, "the report counts each value once: {report:?}");
}
