//! Passwords over HTTP, on SQLite and PostgreSQL: hashed, verified, set once, throttled.

mod common;

use charter_vault::KeyWrapper as _;
use common::data::*;
use common::{backends, TestApp};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_person_arriving_many_times_at_once_is_one_subject() {
    for db in backends("vault_same_person").await {
        let app = std::sync::Arc::new(TestApp::spawn(&db).await);
        let key = app.key("site", &["registration"], &["signup"]).await;
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let (app, key) = (app.clone(), key.clone());
                tokio::spawn(async move { app.collect(&key, "signup", &signup(EMAIL)).await })
            })
            .collect();
        let mut ids = std::collections::BTreeSet::new();
        for t in tasks {
            let r = t.await.unwrap();
            assert_eq!(r.status, 201, "{}", r.body);
            ids.insert(r.body["subject_id"].as_str().unwrap().to_owned());
        }
        assert_eq!(ids.len(), 1, "one person, one subject: {ids:?}");
        assert_eq!(app.count("subjects").await, 1);
        assert_eq!(app.count("subject_identifiers").await, 1);
        assert_eq!(app.count("field_values").await, 4);
        // Each collection's entry precedes its write; a write that lost the race for the
        // identifier is followed by an entry saying so, and its retry has an entry of its own.
        let rows: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT seq, result, detail FROM audit_log WHERE action = 'data.collect' ORDER BY seq")
                .fetch_all(app.state.store.pool())
                .await
                .unwrap();
        let ok: Vec<i64> = rows.iter().filter(|r| r.1 == "ok").map(|r| r.0).collect();
        let failed: Vec<Value> =
            rows.iter().filter(|r| r.1 == "failed").map(|r| serde_json::from_str(&r.2).unwrap()).collect();
        assert_eq!(ok.len() - failed.len(), 12, "{rows:?}");
        for f in &failed {
            assert_eq!(f["reason"], "identifier_race", "{f}");
            assert!(ok.contains(&f["entry"].as_i64().unwrap()), "{f}");
        }
    }
}

/// A sign-in (`login`, whose password is `verify = true`) checks the password against the
/// stored hash and stores nothing of it; a wrong password, or a person never signed up,
/// is refused alike, with nothing stored and the refusal in the audit chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_verifies_the_password_and_stores_nothing_of_it() {
    for db in backends("vault_sign_in").await {
        let app = TestApp::spawn(&db).await;
        let site = app.key("site", &["registration"], &["signup", "login"]).await;
        let id = app.collect(&site, "signup", &signup(EMAIL)).await.body["subject_id"].as_str().unwrap().to_owned();
        let hash = stored_password_hash(&app, &id).await;
        let login = |email: &str, password: &str| json!({ "subject": { "email": email }, "fields": { "email": email, "password": password } });

        let ok = app.collect(&site, "login", &login(EMAIL, PASSWORD)).await;
        assert_eq!((ok.status, ok.body["subject_id"].as_str()), (201, Some(id.as_str())), "{}", ok.body);
        assert_eq!(stored_password_hash(&app, &id).await, hash, "a sign-in does not replace the stored hash");

        let (subjects, fields) = (app.count("subjects").await, app.count("field_values").await);
        for (email, password) in [(EMAIL, "not-the-password"), ("nobody@analytical.example", PASSWORD)] {
            let r = app.collect(&site, "login", &login(email, password)).await;
            assert_eq!((r.status, r.body["error"]["code"].as_str()), (422, Some("verification_failed")), "{}", r.body);
            assert!(!r.body.to_string().contains(password), "the refusal does not echo the password");
        }
        assert_eq!((app.count("subjects").await, app.count("field_values").await), (subjects, fields));
        assert_eq!(stored_password_hash(&app, &id).await, hash, "a failed sign-in changes nothing");

        // Signing up again: the same password leaves the hash as it is; another is refused,
        // so a collection cannot take over someone's password.
        let again = app.collect(&site, "signup", &signup(EMAIL)).await;
        assert_eq!((again.status, again.body["subject_id"].as_str()), (201, Some(id.as_str())), "{}", again.body);
        let mut takeover = signup(EMAIL);
        takeover["fields"]["password"] = json!("someone-else's-password");
        let r = app.collect(&site, "signup", &takeover).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (422, Some("password_already_set")), "{}", r.body);
        assert_eq!(stored_password_hash(&app, &id).await, hash, "the stored hash is untouched");
        assert_eq!(app.collect(&site, "login", &login(EMAIL, PASSWORD)).await.status, 201);

        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT result, detail FROM audit_log WHERE action = 'data.collect' ORDER BY seq")
                .fetch_all(app.state.store.pool())
                .await
                .unwrap();
        let results: Vec<&str> = rows.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(results, ["ok", "ok", "refused", "refused", "ok", "refused", "ok"]);
        assert!(rows[1].1.contains(r#""verified":["password"]"#), "{}", rows[1].1);
        assert!(rows[2].1.contains("verification_failed"), "{}", rows[2].1);
        assert!(rows[5].1.contains("password_already_set"), "{}", rows[5].1);
        assert!(rows.iter().all(|(_, d)| !d.contains(PASSWORD) && !d.contains("argon2")));
        app.stop().await;
    }
}

/// Guessing passwords is throttled (P33): after five failed checks for one name (sign-ins,
/// or sign-ups repeating another password) every check for that name is refused with 429
/// and `Retry-After`, the right password included, and audited; names never stored are
/// throttled alike, so the refusal says nothing of who is a subject; guesses sent at once
/// cannot all pass; other names, a sign-up of someone new and collections without a
/// password are not affected, and a match clears the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_password_checks_are_throttled_per_name() {
    for db in backends("vault_throttle").await {
        let app = TestApp::spawn(&db).await;
        let site = app.key("site", &["registration"], &["signup", "login"]).await;
        let login = |email: &str, password: &str| json!({ "subject": { "email": email }, "fields": { "email": email, "password": password } });
        let id = app.collect(&site, "signup", &signup(EMAIL)).await.body["subject_id"].as_str().unwrap().to_owned();
        let other = "grace@analytical.example";
        assert_eq!(app.collect(&site, "signup", &signup(other)).await.status, 201);
        let nobody = "nobody@analytical.example";

        // Four failures, then a match: the count starts again.
        for _ in 0..4 {
            assert_eq!(app.collect(&site, "login", &login(EMAIL, "wrong")).await.status, 422);
        }
        assert_eq!(app.collect(&site, "login", &login(EMAIL, PASSWORD)).await.status, 201);
        // Five failures for each name: by email, by id (in capitals, the same id), by
        // repeated sign-ups with another password, and for someone never stored.
        let by_id =
            json!({ "subject": { "id": id.to_uppercase() }, "fields": { "email": EMAIL, "password": "wrong" } });
        let mut takeover = signup(other);
        takeover["fields"]["password"] = json!("someone-else's-password");
        for i in 0..5 {
            let r = app.collect(&site, "login", &login(EMAIL, "wrong")).await;
            assert_eq!((r.status, r.body["error"]["code"].as_str()), (422, Some("verification_failed")), "{i}");
            let r = app.collect(&site, "login", &by_id).await;
            assert_eq!((r.status, r.body["error"]["code"].as_str()), (422, Some("verification_failed")), "{i}");
            let r = app.collect(&site, "signup", &takeover).await;
            assert_eq!((r.status, r.body["error"]["code"].as_str()), (422, Some("password_already_set")), "{i}");
            let r = app.collect(&site, "login", &login(nobody, PASSWORD)).await;
            assert_eq!((r.status, r.body["error"]["code"].as_str()), (422, Some("verification_failed")), "{i}");
        }
        let collected = "SELECT COUNT(*) FROM audit_log WHERE action = 'data.collect' AND result = 'ok'";
        let ok_before: i64 = sqlx::query_scalar(collected).fetch_one(app.state.store.pool()).await.unwrap();
        let refused = [
            ("login", login(EMAIL, PASSWORD)),
            ("login", json!({ "subject": { "id": id }, "fields": { "email": EMAIL, "password": PASSWORD } })),
            ("signup", signup(other)),
            ("login", login(nobody, PASSWORD)),
        ];
        for (point, body) in &refused {
            let r = app.collect(&site, point, body).await;
            assert_eq!((r.status, r.body["error"]["code"].as_str()), (429, Some("too_many_attempts")), "{body}");
            let retry =
                r.head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("retry-after: ").map(str::to_owned));
            let retry: u64 = retry.expect("a Retry-After header").trim().parse().unwrap();
            assert!((1..=900).contains(&retry), "{retry}");
        }
        let ok_after: i64 = sqlx::query_scalar(collected).fetch_one(app.state.store.pool()).await.unwrap();
        assert_eq!(ok_after, ok_before, "no refused check was collected");
        // Guesses sent at once for a new name: at most five are checked, the rest refused.
        let guesses = (0..12).map(|i| {
            let body = login("charles@analytical.example", &format!("guess-{i}"));
            let app = &app;
            let site = &site;
            async move { app.collect(site, "login", &body).await.status }
        });
        let mut statuses = futures_util::future::join_all(guesses).await;
        statuses.sort_unstable();
        let checked = statuses.iter().filter(|s| **s == 422).count();
        assert!(checked <= 5 && statuses.iter().all(|s| [422, 429].contains(s)), "{statuses:?}");
        // A sign-up of someone new checks no password, so a throttled name can still sign up.
        assert_eq!(app.collect(&site, "signup", &signup(nobody)).await.status, 201);
        // Another name, and a collection that checks no password, are not affected.
        let third = "ada.byron@analytical.example";
        assert_eq!(app.collect(&site, "signup", &signup(third)).await.status, 201);
        assert_eq!(app.collect(&site, "login", &login(third, PASSWORD)).await.status, 201);
        let support = app.key("helpdesk", &["support"], &["support"]).await;
        let message =
            json!({ "subject": { "email": EMAIL }, "fields": { "name": NAME, "email": EMAIL, "message": "hello" } });
        assert_eq!(app.collect(&support, "support", &message).await.status, 201);
        // Each throttled refusal is in the chain by its code.
        let throttled: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'data.collect' AND result = 'refused' AND detail LIKE '%too_many_attempts%'",
        )
        .fetch_one(app.state.store.pool())
        .await
        .unwrap();
        let refused_at_once = statuses.iter().filter(|s| **s == 429).count();
        assert_eq!(usize::try_from(throttled).unwrap(), refused.len() + refused_at_once);
        assert_no_plaintext(&db, &[PASSWORD, "someone-else's-password", "guess-1"]).await;
        // The counts are in the database: another server on it refuses the same names.
        let beside = app.spawn_beside(&db).await;
        let r = beside.collect(&site, "login", &login(EMAIL, PASSWORD)).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (429, Some("too_many_attempts")), "{}", r.body);
        beside.stop().await;
        app.stop().await;
    }
}

/// "A password already set can only be repeated" holds under concurrency: four sign-ups
/// with different passwords for someone stored without one (a support message created
/// them) leave exactly one password set, the others refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sign_ups_set_one_password() {
    for db in backends("vault_password_race").await {
        let app = std::sync::Arc::new(TestApp::spawn(&db).await);
        let site = app.key("site", &["registration", "support"], &["signup", "support", "login"]).await;
        let message =
            json!({ "subject": { "email": EMAIL }, "fields": { "name": NAME, "email": EMAIL, "message": "hello" } });
        let id = app.collect(&site, "support", &message).await.body["subject_id"].as_str().unwrap().to_owned();
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let (app, site) = (app.clone(), site.clone());
                let mut body = signup(EMAIL);
                body["fields"]["password"] = json!(format!("password-number-{i}"));
                tokio::spawn(async move { (i, app.collect(&site, "signup", &body).await) })
            })
            .collect();
        let mut set = Vec::new();
        for t in tasks {
            let (i, r) = t.await.unwrap();
            match r.status {
                201 => set.push(i),
                _ => assert_eq!(r.body["error"]["code"], "password_already_set", "{}", r.body),
            }
        }
        assert_eq!(set.len(), 1, "exactly one sign-up sets the password: {set:?}");
        let stored = stored_password_hash(&app, &id).await;
        assert_eq!(charter_vault::check_password(&format!("password-number-{}", set[0]), &stored), Ok(true));
        let login = json!({ "subject": { "email": EMAIL }, "fields": { "email": EMAIL, "password": format!("password-number-{}", set[0]) } });
        assert_eq!(app.collect(&site, "login", &login).await.status, 201);
    }
}

/// A stored password hash that does not parse is an internal error (500, logged without
/// values), not a wrong password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_stored_hash_is_an_internal_error() {
    for db in backends("vault_bad_hash").await {
        let app = TestApp::spawn(&db).await;
        let site = app.key("site", &["registration"], &["signup", "login"]).await;
        let id = app.collect(&site, "signup", &signup(EMAIL)).await.body["subject_id"].as_str().unwrap().to_owned();
        let subject = app.state.store.subject(&id).await.unwrap().unwrap();
        let data_key = app.state.keys.unwrap(&id, subject.wrapped.as_ref().unwrap()).unwrap();
        let stored = app.state.store.field_value(&id, "password").await.unwrap().unwrap();
        let own = charter_vault::DataKey::generate();
        let broken = own.seal_field(&id, "password", &stored.category, b"$argon2id$broken-beyond-repair");
        let wrapped = data_key.wrap_own(&id, charter_vault::Holder::Value("password"), &own);
        sqlx::query(
            "UPDATE field_values SET sealed = $1, wrapped_key = $2 WHERE subject_id = $3 AND field = 'password'",
        )
        .bind(broken)
        .bind(wrapped)
        .bind(&id)
        .execute(app.state.store.pool())
        .await
        .unwrap();
        let login = json!({ "subject": { "email": EMAIL }, "fields": { "email": EMAIL, "password": PASSWORD } });
        let r = app.collect(&site, "login", &login).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (500, Some("internal")), "{}", r.body);
        let logs = String::from_utf8_lossy(&common::logs()).into_owned();
        assert!(logs.contains("a stored password hash is malformed"), "the cause is logged");
        assert!(!logs.contains("broken-beyond-repair") && !logs.contains(PASSWORD), "without values");
        app.stop().await;
    }
}
