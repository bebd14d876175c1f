//! Records over HTTP, on SQLite and PostgreSQL: each collection at a record point adds a
//! record and never touches the profile; profile points fill or update what the policy
//! lets them; reads page through records and withhold what the purpose may not read.

mod common;

use std::collections::BTreeSet;

use common::data::Part;
use common::data::*;
use common::{backends, Resp, TestApp};
use serde_json::{json, Value};

const VICTIM: &str = "victim@analytical.example";
const MALLORY: &str = "mallory@example.net";

fn support(subject: Value, name: &str, email: &str, message: &str) -> Value {
    json!({ "subject": subject, "fields": { "name": name, "email": email, "message": message } })
}

fn record_ids(r: &Resp) -> Vec<String> {
    let records = r.body["records"].as_array().unwrap_or_else(|| panic!("no records: {}", r.body));
    records.iter().map(|x| x["record_id"].as_str().unwrap().to_owned()).collect()
}

/// The issue's overwrite: a support message naming a registered person, with another name
/// and email, lands in a record of its own; the registration read and the index are as
/// they were. Two messages are two records, both readable, newest first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_point_never_changes_the_profile() {
    for db in backends("records_no_overwrite").await {
        let app = TestApp::spawn(&db).await;
        let key = app.key("site", &["registration", "support"], &["signup", "support"]).await;
        let id = app.collect(&key, "signup", &signup(VICTIM)).await.body["subject_id"].as_str().unwrap().to_owned();
        let fields = app.count("field_values").await;

        let first = app.collect(&key, "support", &support(json!({ "email": VICTIM }), "Mallory", MALLORY, "hi")).await;
        assert_eq!((first.status, first.body["subject_id"].as_str()), (201, Some(id.as_str())), "{}", first.body);
        let first_record = first.body["record_id"].as_str().unwrap().to_owned();
        let second =
            app.collect(&key, "support", &support(json!({ "email": VICTIM }), NAME, VICTIM, "second message")).await;
        assert_eq!(second.status, 201, "{}", second.body);
        assert_ne!(second.body["record_id"], first.body["record_id"]);
        assert_eq!(app.count("field_values").await, fields, "the profile is untouched");

        let reg = app.read(&key, &id, "purpose=registration").await;
        assert_eq!(reg.status, 200, "{}", reg.body);
        assert_eq!(
            (reg.body["fields"]["name"].as_str(), reg.body["fields"]["email"].as_str()),
            (Some(NAME), Some(VICTIM))
        );
        let lookup =
            |email: &str| format!("/v1/subjects/lookup?email={}&purpose=registration", email.replace('@', "%40"));
        assert_eq!(app.raw("GET", &lookup(VICTIM), Some(&key), None).await.body["subject_id"], id.as_str());
        let mallory = app.raw("GET", &lookup(MALLORY), Some(&key), None).await;
        assert_eq!(mallory.status, 404, "a record's email indexes nothing: {}", mallory.body);

        let both = app.read(&key, &id, "purpose=support&point=support").await;
        assert_eq!(both.status, 200, "{}", both.body);
        assert_eq!(record_ids(&both), [second.body["record_id"].as_str().unwrap(), first_record.as_str()]);
        let messages: Vec<&str> =
            both.body["records"].as_array().unwrap().iter().map(|r| r["fields"]["message"].as_str().unwrap()).collect();
        assert_eq!(messages, ["second message", "hi"]);
        assert_eq!(both.body["records"][1]["fields"]["email"], MALLORY);
        assert!(both.body["records"][0]["collected_at"].as_str().unwrap().ends_with('Z'));

        // One record by id; another purpose's category is refused with its reason, no data.
        let path = |purpose: &str| format!("/v1/subjects/{id}/records/{first_record}?purpose={purpose}");
        let one = app.raw("GET", &path("support"), Some(&key), None).await;
        assert_eq!((one.status, one.body["record"]["fields"]["name"].as_str()), (200, Some("Mallory")), "{}", one.body);
        let analytics = app.key("tracker", &["analytics"], &["analytics"]).await;
        let refused = app.raw("GET", &path("analytics"), Some(&analytics), None).await;
        assert_eq!(
            (refused.status, refused.body["error"]["fields"]["record"].as_str()),
            (403, Some("category_not_in_purpose")),
            "{}",
            refused.body
        );
        assert!(!refused.body.to_string().contains("Mallory"));
        let unknown = format!("/v1/subjects/{id}/records/{}?purpose=support", uuid_like());
        assert_eq!(app.raw("GET", &unknown, Some(&key), None).await.status, 404);
        let garbage = format!("/v1/subjects/{id}/records/not-a-record?purpose=support");
        assert_eq!(app.raw("GET", &garbage, Some(&key), None).await.body["error"]["code"], "unknown_record");

        // The chain names the records read, by id only.
        let details: Vec<String> =
            sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'data.read' ORDER BY seq")
                .fetch_all(app.state.store.pool())
                .await
                .unwrap();
        assert!(details.iter().any(|d| d.contains(&first_record)), "{details:?}");
        assert_no_plaintext(&db, &[VICTIM, MALLORY, "Mallory", "second message", NAME]).await;
        app.stop().await;
    }
}

fn uuid_like() -> String {
    "00000000-0000-4000-8000-000000000000".to_owned()
}

/// A profile point fills what is not set and changes only the fields it `updates`; a
/// replaced value's ciphertext is gone; an email it updates moves the index, and one that
/// names another person is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_points_fill_and_update_as_the_policy_lets_them() {
    for db in backends("records_profile").await {
        let app = TestApp::spawn(&db).await;
        let points = ["signup", "newsletter", "account_settings"];
        let key = app.key("site", &["registration", "newsletter", "provide_services"], &points).await;
        let id = app.collect(&key, "signup", &signup(EMAIL)).await.body["subject_id"].as_str().unwrap().to_owned();

        // A newsletter sign-up naming a registered person never renames them.
        let news = json!({ "subject": { "email": EMAIL }, "fields": { "email": EMAIL, "name": "Someone Else" }, "consents": { "newsletter": true } });
        let r = app.collect(&key, "newsletter", &news).await;
        assert_eq!((r.status, r.body.get("record_id")), (201, None), "{}", r.body);
        // Both already held a value, so both were left as they were.
        assert_eq!(r.body["kept"], json!(["email", "name"]), "{}", r.body);
        assert_eq!(app.read(&key, &id, "purpose=registration&fields=name").await.body["fields"]["name"], NAME);

        // Account settings update the name: the second value is read, the first sealed
        // value is nowhere.
        let old = app.state.store.field_value(&id, "name").await.unwrap().unwrap().sealed;
        let settings = |fields: Value| json!({ "subject": { "id": id }, "fields": fields });
        let r = app.collect(&key, "account_settings", &settings(json!({ "name": "Ada King" }))).await;
        assert_eq!((r.status, r.body.get("kept")), (201, None), "{}", r.body);
        assert_eq!(app.read(&key, &id, "purpose=registration&fields=name").await.body["fields"]["name"], "Ada King");
        assert_absent(&db, &[&old]).await;

        // A new email moves the index with it.
        let moved = "ada.king@analytical.example";
        let r = app.collect(&key, "account_settings", &settings(json!({ "email": moved }))).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let lookup =
            |email: &str| format!("/v1/subjects/lookup?email={}&purpose=registration", email.replace('@', "%40"));
        let found = app.raw("GET", &lookup(moved), Some(&key), None).await;
        assert_eq!((found.status, found.body["subject_id"].as_str()), (200, Some(id.as_str())), "{}", found.body);
        assert_eq!(found.body["fields"]["email"], moved);
        assert_eq!(app.raw("GET", &lookup(EMAIL), Some(&key), None).await.status, 404, "the old address is unindexed");

        // Another person's address is refused, and nothing changes.
        let other = app.collect(&key, "signup", &signup(EMAIL)).await.body["subject_id"].as_str().unwrap().to_owned();
        assert_ne!(other, id);
        let taken = app.collect(&key, "account_settings", &settings(json!({ "email": EMAIL, "name": "X" }))).await;
        assert_eq!(
            (taken.status, taken.body["error"]["code"].as_str()),
            (409, Some("identifier_in_use")),
            "{}",
            taken.body
        );
        assert!(!taken.body.to_string().contains(EMAIL));
        assert_eq!(app.read(&key, &id, "purpose=registration&fields=name").await.body["fields"]["name"], "Ada King");

        // At a point that does not update an email, the field may not disagree with the
        // address the subject is named by.
        let mut mismatch = signup("grace@analytical.example");
        mismatch["fields"]["email"] = json!("hopper@analytical.example");
        let (subjects, identifiers) = (app.count("subjects").await, app.count("subject_identifiers").await);
        let r = app.collect(&key, "signup", &mismatch).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (422, Some("selector_mismatch")), "{}", r.body);
        assert_eq!((app.count("subjects").await, app.count("subject_identifiers").await), (subjects, identifiers));
        app.stop().await;
    }
}

/// A phone number given as a field at a profile point finds its person, as the email does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_field_at_a_profile_point_finds_its_subject() {
    for db in backends("records_phone_index").await {
        let app = TestApp::spawn(&db).await;
        let key = app.key("site", &["registration"], &["signup"]).await;
        let mut body = signup(EMAIL);
        body["fields"]["phone"] = json!("+44 20 7946 0958");
        let id = app.collect(&key, "signup", &body).await.body["subject_id"].as_str().unwrap().to_owned();
        let found =
            app.raw("GET", "/v1/subjects/lookup?phone=%2B442079460958&purpose=registration", Some(&key), None).await;
        assert_eq!((found.status, found.body["subject_id"].as_str()), (200, Some(id.as_str())), "{}", found.body);
        assert_no_plaintext(&db, &["7946 0958", "2079460958"]).await;
        app.stop().await;
    }
}

/// A file uploaded for a person charter does not know yet creates them, with the same
/// answer as for one it knows; `record=` attaches a file to a record already kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_create_their_person_and_join_records() {
    for db in backends("records_uploads").await {
        let app = TestApp::spawn(&db).await;
        let key = app.key("site", &["support"], &["support"]).await;
        let content = b"STACK-TRACE-OF-THE-ENGINE\n".repeat(100);
        let fresh =
            app.upload(&key, "field=attachment&email=new.person%40analytical.example", "text/plain", &content).await;
        assert_eq!(fresh.status, 201, "{}", fresh.body);
        let id = fresh.body["subject_id"].as_str().unwrap().to_owned();
        let again =
            app.upload(&key, "field=attachment&email=new.person%40analytical.example", "text/plain", &content).await;
        assert_eq!(again.body["subject_id"], id.as_str(), "{}", again.body);
        let keys_of = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<BTreeSet<_>>();
        assert_eq!(keys_of(&fresh.body), keys_of(&again.body), "the same shape whether or not the person was known");
        assert_eq!(app.count("subjects").await, 1);

        let message = support(json!({ "id": id }), NAME, EMAIL, "see attached");
        let record = app.collect(&key, "support", &message).await.body["record_id"].as_str().unwrap().to_owned();
        let joined =
            app.upload(&key, &format!("field=attachment&id={id}&record={record}"), "text/plain", &content).await;
        assert_eq!(joined.status, 201, "{}", joined.body);
        let one =
            app.raw("GET", &format!("/v1/subjects/{id}/records/{record}?purpose=support"), Some(&key), None).await;
        assert_eq!(one.body["record"]["fields"]["message"], "see attached", "{}", one.body);
        assert_eq!(one.body["record"]["files"][0]["object_id"], joined.body["object_id"], "{}", one.body);
        let (status, back) = app.download(&key, &id, joined.body["object_id"].as_str().unwrap(), "support").await;
        assert_eq!((status, back), (200, content.clone()));

        let unknown =
            app.upload(&key, &format!("field=attachment&id={id}&record={}", uuid_like()), "text/plain", &content).await;
        assert_eq!((unknown.status, unknown.body["error"]["code"].as_str()), (404, Some("unknown_record")));
        assert_no_plaintext(&db, &["STACK-TRACE-OF-THE-ENGINE", "new.person", "see attached"]).await;
        app.stop().await;
    }
}

/// Pages are complete and stable: a walk that began before new records arrived sees each
/// record that existed then exactly once. Records of another category are withheld and
/// counted; a bad limit or cursor is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_complete_under_concurrent_inserts() {
    for db in backends("records_paging").await {
        let app = TestApp::spawn(&db).await;
        let key = app.key("site", &["analytics", "support"], &["analytics", "support"]).await;
        let view = |n: usize| json!({ "subject": { "email": EMAIL }, "fields": { "page": format!("/p/{n}") } });
        let id = app.collect(&key, "analytics", &view(0)).await.body["subject_id"].as_str().unwrap().to_owned();
        for n in 1..120 {
            assert_eq!(app.collect(&key, "analytics", &view(n)).await.status, 201);
        }
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut added = 0;
        loop {
            let q = match &cursor {
                Some(c) => format!("purpose=analytics&limit=50&cursor={c}"),
                None => "purpose=analytics&limit=50".to_owned(),
            };
            let page = app.read(&key, &id, &q).await;
            assert_eq!(page.status, 200, "{}", page.body);
            seen.extend(record_ids(&page));
            // Between pages, new records arrive (newer than any the walk began with).
            for _ in 0..7 {
                app.collect(&key, "analytics", &view(1000 + added)).await;
                added += 1;
            }
            match page.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        let unique: BTreeSet<&String> = seen.iter().collect();
        assert_eq!((seen.len(), unique.len()), (120, 120), "each record once");

        // Support reads its own records; the page views are another category.
        app.collect(&key, "support", &support(json!({ "id": id }), NAME, EMAIL, "hello")).await;
        let r = app.read(&key, &id, "purpose=support&limit=10").await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["records"].as_array().unwrap().len(), 1, "{}", r.body);
        assert_eq!(r.body["withheld"], json!({ "category_not_in_purpose": 9 }), "{}", r.body);
        assert!(r.body["next_cursor"].is_string());

        for (q, code) in [
            ("purpose=analytics&limit=0", "bad_limit"),
            ("purpose=analytics&limit=201", "bad_limit"),
            ("purpose=analytics&limit=ten", "bad_limit"),
            ("purpose=analytics&cursor=%2F%2F", "bad_cursor"),
            ("purpose=analytics&cursor=bm90LWEtY3Vyc29y", "bad_cursor"),
            ("purpose=analytics&point=nowhere", "unknown_point"),
        ] {
            let r = app.read(&key, &id, q).await;
            assert_eq!((r.status, r.body["error"]["code"].as_str()), (400, Some(code)), "{q}: {}", r.body);
        }
        app.stop().await;
    }
}

/// An account closes once, at a profile point, with a key that holds its purposes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_closes_once() {
    for db in backends("records_close").await {
        let app = TestApp::spawn(&db).await;
        let purposes = ["registration", "breach_notification", "support"];
        let key = app.key("site", &purposes, &["signup", "support"]).await;
        let id = app.collect(&key, "signup", &signup(EMAIL)).await.body["subject_id"].as_str().unwrap().to_owned();
        let close = |point: &str, token: String| {
            let (app, path, body) = (&app, format!("/v1/subjects/{id}/close"), json!({ "point": point }).to_string());
            async move { app.raw("POST", &path, Some(&token), Some(&body)).await }
        };
        let narrow = app.key("narrow", &["support"], &["support"]).await;
        let r = close("signup", narrow).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (403, Some("purpose_not_granted_to_key")));
        let r = close("support", key.clone()).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (422, Some("not_an_account_point")));
        let r = close("nowhere", key.clone()).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (400, Some("unknown_point")));
        let first = close("signup", key.clone()).await;
        assert_eq!((first.status, first.body["already_closed"].as_bool()), (201, Some(false)), "{}", first.body);
        let second = close("signup", key.clone()).await;
        assert_eq!((second.status, second.body["already_closed"].as_bool()), (200, Some(true)));
        assert_eq!(first.body["closed_at"], second.body["closed_at"]);
        let closes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'account.close'")
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
        assert_eq!(closes, 2);
        // Closed just now: what is kept for `account+30d` is still readable, what is kept
        // for the account's life (the password) is not.
        let kept = app.read(&key, &id, "purpose=registration&fields=email,name").await;
        assert_eq!(kept.status, 200, "{}", kept.body);
        let all = app.read(&key, &id, "purpose=registration").await;
        assert_eq!(all.body["error"]["fields"]["password"], "retention_expired", "{}", all.body);
        app.stop().await;
    }
}

/// Shredding a person with many records is one flat step (the key and the indexes); the
/// rows that are left are purged afterwards, and open nothing meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shredding_reaches_every_record() {
    for db in backends("records_shred").await {
        let app = TestApp::spawn(&db).await;
        let key = app.key("site", &["support"], &["support"]).await;
        let mut id = String::new();
        for n in 0..30 {
            let r =
                app.collect(&key, "support", &support(json!({ "email": EMAIL }), NAME, EMAIL, &format!("m{n}"))).await;
            id = r.body["subject_id"].as_str().unwrap().to_owned();
        }
        assert_eq!(app.count("records").await, 30);
        assert!(app.state.store.shred(&id, charter_store::now_us()).await.unwrap());
        let r = app.read(&key, &id, "purpose=support").await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (403, Some("erased")), "{}", r.body);
        let mut purged = 0;
        loop {
            let n = app.state.store.purge_erased(&id, 7).await.unwrap();
            if n == 0 {
                break;
            }
            purged += n;
        }
        assert!(purged >= 30, "{purged}");
        assert_eq!((app.count("records").await, app.count("record_fields").await), (0, 0));
        assert!(app.state.store.erased_with_leftovers().await.unwrap().is_empty());
        app.stop().await;
    }
}

/// A web form's submission: fields and a file in one `multipart/form-data` request make
/// one record with its file; a refused part refuses the whole submission, nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_submission_is_one_record_or_nothing() {
    for db in backends("records_multipart").await {
        let app = TestApp::spawn(&db).await;
        let key = app.key("site", &["support"], &["support"]).await;
        let message = support(json!({ "email": EMAIL }), NAME, EMAIL, "MULTIPART-MESSAGE").to_string().into_bytes();
        let body = |bytes: &[u8]| Part { name: "body", content_type: "application/json", bytes: bytes.to_vec() };
        let file = |name, content_type, bytes: &[u8]| Part { name, content_type, bytes: bytes.to_vec() };
        let content = b"MULTIPART-ATTACHMENT-LINE\n".repeat(4000);

        let r = app.submit(&key, "support", &[body(&message), file("attachment", "text/plain", &content)]).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let (id, record) = (r.body["subject_id"].as_str().unwrap(), r.body["record_id"].as_str().unwrap());
        let one =
            app.raw("GET", &format!("/v1/subjects/{id}/records/{record}?purpose=support"), Some(&key), None).await;
        assert_eq!(one.body["record"]["fields"]["message"], "MULTIPART-MESSAGE", "{}", one.body);
        let files = one.body["record"]["files"].as_array().unwrap();
        assert_eq!(
            (files.len(), files[0]["field"].as_str(), files[0]["size"].as_u64()),
            (1, Some("attachment"), Some(content.len() as u64))
        );
        let (status, back) = app.download(&key, id, files[0]["object_id"].as_str().unwrap(), "support").await;
        assert_eq!((status, back == content), (200, true));
        let entry: String = sqlx::query_scalar(
            "SELECT detail FROM audit_log WHERE action = 'data.collect' AND result = 'ok' ORDER BY seq DESC LIMIT 1",
        )
        .fetch_one(app.state.store.pool())
        .await
        .unwrap();
        assert!(entry.contains("\"files\"") && entry.contains(record), "{entry}");

        // Refused parts: nothing more is stored, and no file is left behind.
        let stored = || async { (app.count("records").await, app.count("objects").await, app.count("subjects").await) };
        let before = stored().await;
        let objects = common::files(&app_objects(&app)).len();
        let cases: Vec<(Vec<Part>, u16, &str)> = vec![
            (vec![file("attachment", "image/gif", &content), body(&message)], 400, "missing_body_part"),
            (vec![body(&message), file("attachment", "image/gif", &content)], 415, "unsupported_content_type"),
            (
                vec![
                    body(&message),
                    file("attachment", "text/plain", &content),
                    file("attachment", "text/plain", b"x"),
                ],
                422,
                "duplicate_file",
            ),
            (
                vec![body(&message), file("attachment", "text/plain", &content), file("message", "text/plain", b"x")],
                422,
                "wrong_type",
            ),
            (vec![body(&message), file("notes", "text/plain", b"x")], 422, "undeclared_field"),
            (vec![body(b"{\"subject\": ")], 400, "malformed_json"),
            (vec![body(br#"{"subject":{"email":"x@y.example"},"fields":{"message":"m"}}"#)], 422, "missing_required"),
        ];
        for (parts, status, code) in cases {
            let r = app.submit(&key, "support", &parts).await;
            assert_eq!((r.status, r.body["error"]["code"].as_str()), (status, Some(code)), "{}", r.body);
            assert_eq!(stored().await, before, "{code}: nothing stored");
            assert_eq!(common::files(&app_objects(&app)).len(), objects, "{code}: no file left behind");
        }
        assert_no_plaintext(&db, &["MULTIPART-MESSAGE", "MULTIPART-ATTACHMENT-LINE"]).await;
        app.stop().await;
    }
}

/// The folder where the application keeps objects.
fn app_objects(app: &TestApp) -> std::path::PathBuf {
    app.data_dir().join("objects")
}
