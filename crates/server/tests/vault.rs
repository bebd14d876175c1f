//! Collection, purpose-bound reads and shredding over HTTP, on SQLite and PostgreSQL.

mod common;

use std::io::{Read as _, Write as _};

use charter_store::testing::TestDb;
use charter_vault::KeyWrapper as _;
use common::{backends, Resp, TestApp};
use serde_json::{json, Value};

const EMAIL: &str = "ada.lovelace@analytical.example";
const NAME: &str = "Ada Byron-Lovelace";
const PASSWORD: &str = "correct-horse-battery-staple-19";

fn signup(email: &str) -> Value {
    json!({
        "subject": { "email": email },
        "fields": { "name": NAME, "email": email, "password": PASSWORD, "age_attestation": true },
        "consents": { "newsletter": true, "direct_marketing": false }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_precisely_and_stores_nothing() {
    for db in backends("vault_bad_input").await {
        let app = TestApp::spawn(&db).await;
        let key = app.key("site", &["registration"], &["signup", "support"]).await;
        let other = app.key("other", &["analytics"], &["newsletter"]).await;
        let revoked = app.key("old", &["registration"], &["signup"]).await;
        app.state.store.revoke_api_key("old", 1).await.unwrap();
        let mut ok = signup(EMAIL);
        let with = |path: &str, v: Value| {
            let mut b = ok.clone();
            let mut cur = &mut b;
            let parts: Vec<&str> = path.split('.').collect();
            for p in &parts[..parts.len() - 1] {
                cur = cur.get_mut(*p).unwrap();
            }
            cur.as_object_mut().unwrap().insert(parts[parts.len() - 1].to_owned(), v);
            b
        };
        let without = |path: &str| {
            let mut b = ok.clone();
            b["fields"].as_object_mut().unwrap().remove(path);
            b
        };
        let big = "x".repeat(2 * 1024 * 1024);
        struct Case<'a> {
            what: &'a str,
            token: Option<&'a str>,
            point: &'a str,
            body: String,
            status: u16,
            code: &'a str,
            says: &'a str,
        }
        let cases = vec![
            Case {
                what: "unknown point",
                token: Some(&key),
                point: "bogus",
                body: ok.to_string(),
                status: 404,
                code: "unknown_point",
                says: "no collection point of that name is in the policy",
            },
            Case {
                what: "undeclared field",
                token: Some(&key),
                point: "signup",
                body: with("fields.shoe_size", json!("42")).to_string(),
                status: 422,
                code: "undeclared_field",
                says: "a field that is not declared for collection point `signup` was sent",
            },
            Case {
                what: "undeclared field named like personal data",
                token: Some(&key),
                point: "signup",
                body: with("fields.charles@babbage", json!("1")).to_string(),
                status: 422,
                code: "undeclared_field",
                says: "a field that is not declared for collection point `signup` was sent",
            },
            Case {
                what: "consent to a purpose not in the policy",
                token: Some(&key),
                point: "signup",
                body: with("consents.babbage-difference-engine", json!(true)).to_string(),
                status: 422,
                code: "consent_not_asked",
                says: "a consent was given for a purpose that is not in the policy",
            },
            Case {
                what: "wrong type",
                token: Some(&key),
                point: "signup",
                body: with("fields.email", json!(12)).to_string(),
                status: 422,
                code: "wrong_type",
                says: "field `email` must be an email address",
            },
            Case {
                what: "malformed email",
                token: Some(&key),
                point: "signup",
                body: with("fields.email", json!("not-an-email")).to_string(),
                status: 422,
                code: "wrong_type",
                says: "field `email`",
            },
            Case {
                what: "over size",
                token: Some(&key),
                point: "signup",
                body: with("fields.name", json!("n".repeat(300))).to_string(),
                status: 422,
                code: "too_large",
                says: "limit of 256 bytes",
            },
            Case {
                what: "missing required",
                token: Some(&key),
                point: "signup",
                body: without("password").to_string(),
                status: 422,
                code: "missing_required",
                says: "`password`",
            },
            Case {
                what: "under age",
                token: Some(&key),
                point: "signup",
                body: with("fields.age_attestation", json!(false)).to_string(),
                status: 422,
                code: "under_minimum_age",
                says: "under 18",
            },
            Case {
                what: "consent not asked here",
                token: Some(&key),
                point: "signup",
                body: with("consents.surveys", json!(true)).to_string(),
                status: 422,
                code: "consent_not_asked",
                says: "`surveys`",
            },
            Case {
                what: "no subject",
                token: Some(&key),
                point: "signup",
                body: with("subject", json!({})).to_string(),
                status: 422,
                code: "bad_subject",
                says: "exactly one",
            },
            Case {
                what: "unknown subject id",
                token: Some(&key),
                point: "signup",
                body: with("subject", json!({ "id": uuid::Uuid::new_v4() })).to_string(),
                status: 404,
                code: "unknown_subject",
                says: "no such subject",
            },
            Case {
                what: "point that is not UTF-8",
                token: Some(&key),
                point: "%FF%FE",
                body: ok.to_string(),
                status: 400,
                code: "malformed_path",
                says: "not valid UTF-8",
            },
            Case {
                what: "malformed JSON",
                token: Some(&key),
                point: "signup",
                body: "{\"subject\": ".into(),
                status: 400,
                code: "malformed_json",
                says: "line 1",
            },
            Case {
                what: "unknown top-level key",
                token: Some(&key),
                point: "signup",
                body: with("extra", json!(1)).to_string(),
                status: 400,
                code: "malformed_json",
                says: "not valid JSON of the expected shape",
            },
            Case {
                what: "missing API key",
                token: None,
                point: "signup",
                body: ok.to_string(),
                status: 401,
                code: "missing_api_key",
                says: "Bearer",
            },
            Case {
                what: "unknown API key",
                token: Some("chk_nope"),
                point: "signup",
                body: ok.to_string(),
                status: 401,
                code: "invalid_api_key",
                says: "not known",
            },
            Case {
                what: "revoked API key",
                token: Some(&revoked),
                point: "signup",
                body: ok.to_string(),
                status: 401,
                code: "revoked_api_key",
                says: "revoked",
            },
            Case {
                what: "key without the point",
                token: Some(&other),
                point: "signup",
                body: ok.to_string(),
                status: 403,
                code: "point_not_granted_to_key",
                says: "`other` may not collect at `signup`",
            },
            Case {
                what: "oversized body",
                token: Some(&key),
                point: "signup",
                body: with("fields.name", json!(big)).to_string(),
                status: 413,
                code: "too_large",
                says: "1 MiB",
            },
        ];
        for c in &cases {
            let before = collect_refusals(&app).await.len();
            let r = app.raw("POST", &format!("/v1/collect/{}", c.point), c.token, Some(&c.body)).await;
            // A live key's refusal is one entry naming its code; a request without one writes none.
            let live = c.token == Some(key.as_str()) || c.token == Some(other.as_str());
            let after = collect_refusals(&app).await;
            assert_eq!(after.len(), before + usize::from(live), "{}: one entry for a live key", c.what);
            if live {
                let entry = after.last().unwrap();
                assert!(entry.contains(&format!("\"code\":\"{}\"", c.code)), "{}: {entry}", c.what);
            }
            assert_eq!(r.status, c.status, "{}: {}", c.what, r.body);
            assert_eq!(r.body["error"]["code"], c.code, "{}: {}", c.what, r.body);
            let msg = r.body["error"]["message"].as_str().unwrap_or_default();
            assert!(msg.contains(c.says), "{}: {msg}", c.what);
            assert!(
                !r.body.to_string().contains(EMAIL) && !r.body.to_string().contains(PASSWORD),
                "{}: no value echoed",
                c.what
            );
            for chosen in ["bogus", "shoe_size", "babbage"] {
                assert!(!r.body.to_string().contains(chosen), "{}: no caller-chosen name echoed: {}", c.what, r.body);
            }
        }
        for table in ["subjects", "subject_identifiers", "field_values", "consents"] {
            assert_eq!(app.count(table).await, 0, "{table} is empty after refused requests");
        }
        // Each refusal of a known key is in the chain by code; names the caller chose
        // (an undeclared field, a purpose or point not in the policy) are not.
        let all = collect_refusals(&app).await.join("\n");
        for chosen in ["babbage", "bogus", "shoe_size"] {
            assert!(!all.contains(chosen), "{chosen} in the audit chain: {all}");
        }
        assert!(all.contains("\"purpose\":\"surveys\""), "a declared purpose is named: {all}");
        // Alike refusals are one item with a count: many undeclared fields make one short entry.
        let mut many = ok.clone();
        for i in 0..500 {
            many["fields"][format!("extra_{i}")] = json!(1);
        }
        let r = app.collect(&key, "signup", &many).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (422, Some("undeclared_field")));
        let last: String = sqlx::query_scalar("SELECT detail FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
        let last: Value = serde_json::from_str(&last).unwrap();
        assert_eq!(
            last["refusals"],
            json!([{ "code": "undeclared_field", "point": "signup", "count": 500 }]),
            "{last}"
        );
        ok = signup(EMAIL);
        assert_eq!(app.collect(&key, "signup", &ok).await.status, 201);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_then_read_by_purpose() {
    for db in backends("vault_read").await {
        let app = TestApp::spawn(&db).await;
        let site = app
            .key("site", &["registration", "newsletter", "direct_marketing"], &["signup", "newsletter", "support"])
            .await;
        let analytics = app.key("analytics", &["analytics"], &[]).await;
        let r = app.collect(&site, "signup", &signup(EMAIL)).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.body["subject_id"].as_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok());
        // The same person at another point, typed differently, is the same subject.
        let again = app
            .collect(
                &site,
                "newsletter",
                &json!({ "subject": { "email": EMAIL.to_uppercase() }, "fields": { "email": EMAIL } }),
            )
            .await;
        assert_eq!(again.body["subject_id"], id.as_str());
        assert_eq!(app.count("subjects").await, 1);

        let read = app.read(&site, &id, "purpose=registration").await;
        assert_eq!(read.status, 200, "{}", read.body);
        assert_eq!(read.body["fields"]["email"], EMAIL);
        assert_eq!(read.body["fields"]["name"], NAME);
        assert_eq!(read.body["fields"]["age_attestation"], true);
        let some = app.read(&site, &id, "purpose=registration&fields=email").await;
        assert_eq!(some.body["fields"].as_object().unwrap().len(), 1);
        // The password is kept only as a salted argon2id hash: a purpose that covers its
        // category is told it is hashed, and gets neither it nor its hash.
        assert!(read.body["fields"]["password"].is_null(), "{}", read.body);
        assert_eq!(read.body["hashed"], json!(["password"]));
        let pw = app.read(&site, &id, "purpose=registration&fields=password").await;
        assert_eq!((pw.status, &pw.body["hashed"], &pw.body["missing"]), (200, &json!(["password"]), &json!([])));
        assert!(pw.body["fields"].as_object().unwrap().is_empty() && !pw.body.to_string().contains("argon2"));
        let view = app.state.store.subject_for_read(&id, "registration").await.unwrap().unwrap();
        let sealed = view.fields.iter().find(|f| f.field == "password").unwrap();
        let data_key = app.state.keys.unwrap(&id, view.subject.wrapped.as_ref().unwrap()).unwrap();
        let stored =
            String::from_utf8(data_key.open_field(&id, "password", &sealed.category, &sealed.sealed).unwrap()).unwrap();
        assert!(stored.starts_with("$argon2id$") && !stored.contains(PASSWORD), "only a salted hash is stored");
        assert!(
            charter_vault::check_password(PASSWORD, &stored) == Ok(true)
                && charter_vault::check_password("guess", &stored) == Ok(false)
        );
        // Consent given at signup opens the newsletter; refused direct marketing stays closed.
        assert_eq!(app.read(&site, &id, "purpose=newsletter&fields=email").await.status, 200);
        let dm = app.read(&site, &id, "purpose=direct_marketing&fields=email").await;
        assert_eq!(dm.status, 403);
        assert_eq!(dm.body["error"]["code"], "consent_missing");
        assert!(dm.body["fields"].is_null() && !dm.body.to_string().contains(EMAIL), "a denial carries no data");
        // Purpose not held by the key; category not in purpose.
        let nk = app.read(&analytics, &id, "purpose=registration").await;
        assert_eq!((nk.status, nk.body["error"]["code"].as_str()), (403, Some("purpose_not_granted_to_key")));
        let cat = app.read(&site, &id, "purpose=newsletter&fields=password").await;
        assert_eq!((cat.status, cat.body["error"]["code"].as_str()), (403, Some("category_not_in_purpose")));
        // Lookups by blind index.
        let found = app
            .raw(
                "GET",
                &format!("/v1/subjects/lookup?email={}&purpose=registration", EMAIL.replace('@', "%40")),
                Some(&site),
                None,
            )
            .await;
        assert_eq!(found.status, 200, "{}", found.body);
        assert_eq!(found.body["subject_id"], id.as_str());
        let nobody = app
            .raw("GET", "/v1/subjects/lookup?email=nobody%40x.example&purpose=registration", Some(&site), None)
            .await;
        assert_eq!(nobody.status, 404);
        let typo = app
            .raw("GET", "/v1/subjects/lookup?mail=someone%40x.example&purpose=registration", Some(&site), None)
            .await;
        assert_eq!((typo.status, typo.body["error"]["code"].as_str()), (400, Some("malformed_query")), "{}", typo.body);
        let says = typo.body["error"]["message"].as_str().unwrap();
        assert!(says.contains("not one this endpoint takes; expected one of `purpose`"), "{says}");
        assert!(!says.contains("`mail`"), "the caller's name is not echoed: {says}");
        assert!(!typo.body.to_string().contains("someone"), "the value is not echoed");
        // A key without the purpose is refused alike whether or not the subject exists, so
        // it cannot probe who is a subject through a purpose it does not hold.
        let probes = [
            format!("/v1/subjects/{id}/data?purpose=registration"),
            format!("/v1/subjects/{}/data?purpose=registration", uuid::Uuid::new_v4()),
            format!("/v1/subjects/lookup?email={}&purpose=registration", EMAIL.replace('@', "%40")),
            "/v1/subjects/lookup?email=nobody%40x.example&purpose=registration".to_owned(),
            format!("/v1/subjects/{id}/objects/{}?purpose=registration", uuid::Uuid::new_v4()),
            format!("/v1/subjects/{}/objects/{}?purpose=registration", uuid::Uuid::new_v4(), uuid::Uuid::new_v4()),
        ];
        for path in &probes {
            let r = app.raw("GET", path, Some(&analytics), None).await;
            assert_eq!((r.status, &r.body), (403, &nk.body), "{path}");
        }
        // Unknown and malformed ids are 404; a missing purpose is 400; no key is 401.
        assert_eq!(app.read(&site, &uuid::Uuid::new_v4().to_string(), "purpose=registration").await.status, 404);
        assert_eq!(app.read(&site, "not-a-uuid", "purpose=registration").await.status, 404);
        assert_eq!(app.read(&site, &id, "").await.body["error"]["code"], "missing_purpose");
        assert_eq!(
            app.raw("GET", &format!("/v1/subjects/{id}/data?purpose=registration"), None, None).await.status,
            401
        );
        // Every refusal of a live key is one `data.denied` entry, whose result is its code
        // ("denied" for fields refused by the decision), naming a purpose only when the
        // policy declares it and no subject the read did not find (a refusal before any
        // lookup names the well-formed id asked for).
        let denied = "SELECT result, purpose, subject FROM audit_log WHERE action = 'data.denied' ORDER BY seq";
        let before = sqlx::query(denied).fetch_all(app.state.store.pool()).await.unwrap().len();
        let unknown = uuid::Uuid::new_v4();
        let (reg, known) = (Some("registration"), Some(id.as_str()));
        struct Refused<'a> {
            path: String,
            key: &'a str,
            status: u16,
            code: &'a str,
            /// The entry's result: the code, or "denied" for fields the decision refused.
            result: &'a str,
            purpose: Option<&'a str>,
            subject: Option<&'a str>,
        }
        let case = |path: String, status, code, purpose| Refused {
            path,
            key: &site,
            status,
            code,
            result: code,
            purpose,
            subject: None,
        };
        let refused_reads = vec![
            case(format!("/v1/subjects/{unknown}/data?purpose=registration"), 404, "unknown_subject", reg),
            case("/v1/subjects/not-a-uuid/data?purpose=registration".into(), 404, "unknown_subject", reg),
            case("/v1/subjects/%FF/data?purpose=registration".into(), 400, "malformed_path", reg),
            case(format!("/v1/subjects/{id}/data"), 400, "missing_purpose", None),
            case(format!("/v1/subjects/{id}/data?purpose=babbage"), 400, "unknown_purpose", None),
            Refused {
                key: &analytics,
                subject: known,
                ..case(format!("/v1/subjects/{id}/data?purpose=registration"), 403, "purpose_not_granted_to_key", reg)
            },
            Refused {
                result: "denied",
                subject: known,
                ..case(
                    format!("/v1/subjects/{id}/data?purpose=newsletter&fields=password"),
                    403,
                    "category_not_in_purpose",
                    Some("newsletter"),
                )
            },
            case(
                "/v1/subjects/lookup?email=nobody%40x.example&purpose=registration".into(),
                404,
                "unknown_subject",
                reg,
            ),
            case("/v1/subjects/lookup?purpose=registration".into(), 422, "bad_subject", reg),
            case("/v1/subjects/lookup?email=babbage%40x.example&purpose=babbage".into(), 400, "unknown_purpose", None),
            case(
                "/v1/subjects/lookup?mail=babbage%40x.example&purpose=registration".into(),
                400,
                "malformed_query",
                None,
            ),
            case(format!("/v1/subjects/{id}/objects/{unknown}?purpose=registration"), 404, "unknown_object", reg),
        ];
        for c in &refused_reads {
            let r = app.raw("GET", &c.path, Some(c.key), None).await;
            assert_eq!(
                (r.status, r.body["error"]["code"].as_str()),
                (c.status, Some(c.code)),
                "{}: {}",
                c.path,
                r.body
            );
        }
        let entries: Vec<(String, Option<String>, Option<String>)> =
            sqlx::query_as(denied).fetch_all(app.state.store.pool()).await.unwrap();
        let entries = &entries[before..];
        assert_eq!(entries.len(), refused_reads.len(), "one entry per refusal: {entries:?}");
        for (c, entry) in refused_reads.iter().zip(entries) {
            let expected = (c.result.to_owned(), c.purpose.map(str::to_owned), c.subject.map(str::to_owned));
            assert_eq!(entry, &expected, "{}", c.path);
        }
        let details: Vec<String> =
            sqlx::query_scalar("SELECT detail FROM audit_log").fetch_all(app.state.store.pool()).await.unwrap();
        assert!(!details.join("\n").contains("babbage"), "no name the caller chose is in the chain");

        // Every collection, read, denial and disclosure is in the chain, without values.
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT action, detail FROM audit_log ORDER BY seq")
            .fetch_all(app.state.store.pool())
            .await
            .unwrap();
        let actions: Vec<&str> = rows.iter().map(|(a, _)| a.as_str()).collect();
        for a in ["data.collect", "data.read", "data.denied", "data.disclose"] {
            assert!(actions.contains(&a), "{a} missing from {actions:?}");
        }
        for (_, detail) in &rows {
            assert!(!detail.contains(EMAIL) && !detail.contains(NAME) && !detail.contains(PASSWORD), "{detail}");
        }

        // An objection closes a legitimate-interests purpose.
        let tracker = app.key("tracker", &["analytics"], &["analytics"]).await;
        let seen = app
            .collect(&tracker, "analytics", &json!({ "subject": { "id": id }, "fields": { "page": "/pricing" } }))
            .await;
        assert_eq!(seen.status, 201, "{}", seen.body);
        assert_eq!(app.read(&tracker, &id, "purpose=analytics&fields=page").await.status, 200);
        sqlx::query("INSERT INTO objections (subject_id, purpose, at_us) VALUES ($1, 'analytics', 1)")
            .bind(&id)
            .execute(app.state.store.pool())
            .await
            .unwrap();
        let objected = app.read(&tracker, &id, "purpose=analytics&fields=page").await;
        assert_eq!((objected.status, objected.body["error"]["code"].as_str()), (403, Some("objected")));
        // A later withdrawal of consent wins over the earlier grant.
        sqlx::query("INSERT INTO consents (subject_id, purpose, given, point, at_us) VALUES ($1, 'newsletter', 0, 'preferences', $2)")
            .bind(&id)
            .bind(charter_store::now_us() + 1)
            .execute(app.state.store.pool())
            .await
            .unwrap();
        let withdrawn = app.read(&site, &id, "purpose=newsletter&fields=email").await;
        assert_eq!((withdrawn.status, withdrawn.body["error"]["code"].as_str()), (403, Some("consent_missing")));

        assert_no_plaintext(&db, &[EMAIL, NAME, PASSWORD, "/pricing"]).await;

        // Shredding: the subject's key and indexes are gone; reads are refused as erased.
        let view = app.state.store.subject_for_read(&id, "registration").await.unwrap().unwrap();
        let wrapped = view.subject.wrapped.clone().unwrap();
        let sealed: Vec<Vec<u8>> = view.fields.iter().map(|f| f.sealed.clone()).collect();
        assert!(app.state.keys.unwrap(&id, &wrapped).is_ok(), "before the shred the key file opens the key");
        assert!(app.state.store.shred(&id, charter_store::now_us()).await.unwrap());
        // Neither the wrapped key nor any ciphertext is left anywhere in the database (on
        // SQLite: zeroed where it was, and gone from the WAL), so holding the key file and a
        // copy of the database opens nothing of the subject.
        let mut needles: Vec<&[u8]> = sealed.iter().map(Vec::as_slice).collect();
        needles.push(&wrapped.sealed);
        assert_absent(&db, &needles).await;
        let gone = app.read(&site, &id, "purpose=registration").await;
        assert_eq!((gone.status, gone.body["error"]["code"].as_str()), (403, Some("erased")));
        assert_eq!(
            app.raw(
                "GET",
                &format!("/v1/subjects/lookup?email={}&purpose=registration", EMAIL.replace('@', "%40")),
                Some(&site),
                None
            )
            .await
            .status,
            404
        );
        let s = app.state.store.subject(&id).await.unwrap().unwrap();
        assert!(s.wrapped.is_none(), "no wrapped key remains");
        assert_eq!(app.count("field_values").await, 0);
        app.stop().await;
    }
}

/// No seeded value is stored anywhere: every table of a PostgreSQL database
/// (bytea included, as hex), or every file of a SQLite database (WAL included).
async fn assert_no_plaintext(db: &TestDb, seeded: &[&str]) {
    let needles: Vec<&[u8]> = seeded.iter().map(|s| s.as_bytes()).collect();
    assert_absent(db, &needles).await;
}

/// None of `needles` is in the logs or anywhere in the database: in any file of a SQLite database (WAL,
/// free pages and the audit file included), or in any row of any table of a PostgreSQL
/// database (as text, and bytea as hex).
async fn assert_absent(db: &TestDb, needles: &[&[u8]]) {
    let hex_of = |s: &[u8]| s.iter().map(|b| format!("{b:02x}")).collect::<String>();
    // Nor in anything logged, at debug level, so far.
    let logged = common::logs();
    assert!(logged.windows(b"serving".len()).any(|w| w == b"serving"), "the logs are captured");
    for s in needles {
        assert!(!logged.windows(s.len()).any(|w| w == *s), "{:?} in the logs", String::from_utf8_lossy(s));
    }
    match db.path() {
        Some(dir) => {
            let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
            assert!(files.iter().any(|f| f.file_name() == "charter.db"), "the database file is scanned");
            assert!(files.iter().any(|f| f.file_name() == "charter-audit.db"), "the audit chain's file is scanned");
            for entry in files {
                let bytes = std::fs::read(entry.path()).unwrap();
                for s in needles {
                    assert!(
                        !bytes.windows(s.len()).any(|w| w == *s),
                        "{:?} in {}",
                        String::from_utf8_lossy(s),
                        entry.path().display()
                    );
                }
            }
        }
        None => {
            let tables = db.postgres_rows().await.expect("a PostgreSQL database");
            assert!(tables.len() >= 8, "{tables:?}");
            for (t, rows) in tables {
                for row in rows {
                    for s in needles {
                        let text = std::str::from_utf8(s).is_ok_and(|s| row.contains(s));
                        assert!(!text && !row.contains(&hex_of(s)), "{:?} in table {t}", String::from_utf8_lossy(s));
                    }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapped_ciphertext_does_not_open() {
    for db in backends("vault_swapped").await {
        let app = TestApp::spawn(&db).await;
        let site = app.key("site", &["registration"], &["signup"]).await;
        let a = app.collect(&site, "signup", &signup("a@one.example")).await.body["subject_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let b = app.collect(&site, "signup", &signup("b@two.example")).await.body["subject_id"]
            .as_str()
            .unwrap()
            .to_owned();
        // Move A's sealed email into B's row, and A's name into A's email field.
        move_sealed(&app, (&a, "email"), (&b, "email")).await;
        let r = app.read(&site, &b, "purpose=registration&fields=email").await;
        assert_eq!(r.status, 500, "a moved ciphertext fails to open: {}", r.body);
        assert!(!r.body.to_string().contains("a@one.example"));
        move_sealed(&app, (&a, "name"), (&a, "email")).await;
        assert_eq!(app.read(&site, &a, "purpose=registration&fields=email").await.status, 500);
        assert_eq!(
            app.read(&site, &a, "purpose=registration&fields=name").await.status,
            200,
            "untouched fields still open"
        );
        app.stop().await;
    }
}

/// Copies the sealed value of `from` (subject, field) over that of `to`, as someone with
/// write access to the database could.
async fn move_sealed(app: &TestApp, from: (&str, &str), to: (&str, &str)) {
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT sealed FROM field_values WHERE subject_id = $1 AND field = $2")
        .bind(from.0)
        .bind(from.1)
        .fetch_one(app.state.store.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE field_values SET sealed = $1 WHERE subject_id = $2 AND field = $3")
        .bind(sealed)
        .bind(to.0)
        .bind(to.1)
        .execute(app.state.store.pool())
        .await
        .unwrap();
}

impl TestApp {
    async fn upload(&self, token: &str, query: &str, content_type: &str, body: &[u8]) -> Resp {
        self.upload_at("support", token, query, content_type, body, false).await
    }

    /// Uploads `body` at `point`; `chunked` sends it in 64 KiB chunks with no declared length.
    async fn upload_at(
        &self,
        point: &str,
        token: &str,
        query: &str,
        content_type: &str,
        body: &[u8],
        chunked: bool,
    ) -> Resp {
        let (addr, path) = (self.addr.clone(), format!("/v1/collect/{point}/upload?{query}"));
        let (token, content_type, body) = (token.to_owned(), content_type.to_owned(), body.to_vec());
        tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            let length = if chunked {
                "Transfer-Encoding: chunked".to_owned()
            } else {
                format!("Content-Length: {}", body.len())
            };
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\n{length}\r\n\r\n"
            );
            s.write_all(head.as_bytes()).unwrap();
            if chunked {
                // The server may answer and close before the end: later writes may fail.
                for piece in body.chunks(64 * 1024) {
                    if s.write_all(format!("{:x}\r\n", piece.len()).as_bytes()).is_err()
                        || s.write_all(piece).is_err()
                        || s.write_all(b"\r\n").is_err()
                    {
                        break;
                    }
                }
                let _ = s.write_all(b"0\r\n\r\n");
            } else {
                let _ = s.write_all(&body);
            }
            let mut raw = Vec::new();
            let _ = s.read_to_end(&mut raw);
            let raw = String::from_utf8_lossy(&raw).into_owned();
            let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
            let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
            Resp { status, body: serde_json::from_str(rest).unwrap_or(Value::Null), head: head.to_owned() }
        })
        .await
        .unwrap()
    }

    async fn download(&self, token: &str, subject: &str, object: &str, purpose: &str) -> (u16, Vec<u8>) {
        let (addr, path, token) =
            (self.addr.clone(), format!("/v1/subjects/{subject}/objects/{object}?purpose={purpose}"), token.to_owned());
        tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n")
                .unwrap();
            let mut raw = Vec::new();
            s.read_to_end(&mut raw).unwrap();
            let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
            let head = String::from_utf8_lossy(&raw[..split]).into_owned();
            let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
            let mut body = raw[split + 4..].to_vec();
            if head.to_lowercase().contains("transfer-encoding: chunked") {
                body = dechunk(&body);
            }
            (status, body)
        })
        .await
        .unwrap()
    }
}

/// The details of the refused collections and uploads in the audit chain, in order.
async fn collect_refusals(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'data.collect' AND result = 'refused' ORDER BY seq")
        .fetch_all(app.state.store.pool())
        .await
        .unwrap()
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        b = &b[eol + 2..];
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[..n]);
        b = &b[n + 2..];
    }
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_sealed_bounded_and_purpose_checked() {
    for db in backends("vault_uploads").await {
        let app = TestApp::spawn(&db).await;
        let site = app.key("site", &["support"], &["support"]).await;
        let nosupport = app.key("ads", &["analytics"], &["newsletter"]).await;
        let body =
            json!({ "subject": { "email": EMAIL }, "fields": { "name": NAME, "email": EMAIL, "message": "hello" } });
        let id = app.collect(&site, "support", &body).await.body["subject_id"].as_str().unwrap().to_owned();
        let secret_line = b"CONFIDENTIAL-ATTACHMENT-LINE ";
        let content: Vec<u8> = secret_line.iter().copied().cycle().take(3 * 64 * 1024 + 123).collect();
        let q = format!("field=attachment&id={id}");

        let r = app.upload(&site, &q, "text/plain", &content).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let object = r.body["object_id"].as_str().unwrap().to_owned();
        assert_eq!(r.body["size"], content.len());
        let (status, back) = app.download(&site, &id, &object, "support").await;
        assert_eq!(status, 200);
        assert!(back == content, "the download is the upload, byte for byte");
        // An exact multiple of the chunk size round-trips too.
        let exact = vec![5u8; 2 * 64 * 1024];
        let o2 = app.upload(&site, &q, "text/plain", &exact).await.body["object_id"].as_str().unwrap().to_owned();
        assert!(app.download(&site, &id, &o2, "support").await.1 == exact);

        // Refusals store nothing, say why, and are in the audit chain.
        let before = app.count("objects").await;
        let refused_before = collect_refusals(&app).await.len();
        /// (what, query, content type, body, sent without a length, status, code, message)
        type Case<'a> = (&'a str, String, &'a str, Vec<u8>, bool, u16, &'a str, &'a str);
        let over = || vec![b'x'; 10 * 1024 * 1024 + 1];
        let cases: Vec<Case> = vec![
            ("over size", q.clone(), "text/plain", over(), false, 413, "too_large", "accepts at most 10485760 bytes"),
            // With no length declared, the size is enforced while the body streams in.
            ("over size, streamed", q.clone(), "text/plain", over(), true, 413, "too_large", "at most 10485760 bytes"),
            (
                "wrong content type",
                q.clone(),
                "application/x-msdownload",
                b"MZ".to_vec(),
                false,
                415,
                "unsupported_content_type",
                "accepts application/pdf, image/png, image/jpeg, text/plain; this upload's content type is not one of them",
            ),
            (
                "undeclared field",
                format!("field=avatar&id={id}"),
                "text/plain",
                b"x".to_vec(),
                false,
                422,
                "undeclared_field",
                "the field named is not declared for collection point `support`",
            ),
            (
                "not a file field",
                format!("field=message&id={id}"),
                "text/plain",
                b"x".to_vec(),
                false,
                422,
                "wrong_type",
                "field `message` of `support` is not a file",
            ),
            ("no field named", format!("id={id}"), "text/plain", b"x".to_vec(), false, 400, "missing_field", "?field="),
            (
                "query that does not parse",
                format!("field=attachment&colour=red&id={id}"),
                "text/plain",
                b"x".to_vec(),
                false,
                400,
                "malformed_query",
                "a query parameter is not one this endpoint takes; expected one of `field`",
            ),
            (
                "unknown subject",
                format!("field=attachment&id={}", uuid::Uuid::new_v4()),
                "text/plain",
                b"x".to_vec(),
                false,
                404,
                "unknown_subject",
                "no such subject",
            ),
        ];
        for (what, query, ct, bytes, chunked, status, code, says) in &cases {
            let r = app.upload_at("support", &site, query, ct, bytes, *chunked).await;
            assert_eq!((r.status, r.body["error"]["code"].as_str()), (*status, Some(*code)), "{what}: {}", r.body);
            let message = r.body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(says), "{what}: {message}");
        }
        let denied = app.upload(&nosupport, &q, "text/plain", b"x").await;
        assert_eq!((denied.status, denied.body["error"]["code"].as_str()), (403, Some("point_not_granted_to_key")));
        assert_eq!(app.count("objects").await, before, "no refused upload left a record");
        assert_eq!(
            collect_refusals(&app).await.len(),
            refused_before + cases.len() + 1,
            "every refusal is in the chain"
        );
        // Denied downloads carry no data.
        let (status, denied) = app.download(&nosupport, &id, &object, "analytics").await;
        assert_eq!(status, 403);
        assert!(!denied.windows(secret_line.len()).any(|w| w == secret_line));

        // On SQLite the objects live in the data directory: only ciphertext is there.
        let dir = app.stop().await;
        let stored = files_under(&dir.path().join("data/objects"));
        assert_eq!(stored.len(), 2, "exactly the two accepted uploads are stored, nothing of the refused: {stored:?}");
        for f in stored {
            let bytes = std::fs::read(&f).unwrap();
            assert!(!bytes.windows(secret_line.len()).any(|w| w == secret_line), "plaintext in {}", f.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_scanned_as_the_point_says() {
    for db in backends("vault_upload_scans").await {
        let line = "Please reach me at grace.hopper@cobol.example or +1 202 555 0147 about the bug.\n";
        let content: String = line.repeat(40_000); // about 3.3 MB: several scan windows
        for action in ["record", "anonymise", "reject"] {
            let policy = charter_policy::TENSOROPERA.replacen(
                "scan = \"record\" # P08: findings",
                &format!("scan = \"{action}\" # P08: findings"),
                1,
            );
            let app = TestApp::spawn_with_policy(&db, &policy).await;
            let site = app.key(&format!("site-{action}"), &["support"], &["support"]).await;
            let body = json!({ "subject": { "email": EMAIL }, "fields": { "name": NAME, "email": EMAIL, "message": "hello" } });
            let id = app.collect(&site, "support", &body).await.body["subject_id"].as_str().unwrap().to_owned();
            let before = app.count("objects").await;
            let r = app.upload(&site, &format!("field=attachment&id={id}"), "text/plain", content.as_bytes()).await;
            let last: String = sqlx::query_scalar("SELECT detail FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_one(app.state.store.pool())
                .await
                .unwrap();
            assert!(!last.contains("grace.hopper"), "{action}: the audit holds types and counts only: {last}");
            match action {
                "record" => {
                    assert_eq!(r.status, 201, "{}", r.body);
                    let object = r.body["object_id"].as_str().unwrap();
                    let (_, back) = app.download(&site, &id, object, "support").await;
                    assert!(back == content.as_bytes(), "recorded uploads are stored as sent");
                    assert!(
                        last.contains("\"EMAIL_ADDRESS\":40000") && last.contains("\"PHONE_NUMBER\":40000"),
                        "{last}"
                    );
                }
                "anonymise" => {
                    assert_eq!(r.status, 201, "{}", r.body);
                    let object = r.body["object_id"].as_str().unwrap();
                    let (_, back) = app.download(&site, &id, object, "support").await;
                    let back = String::from_utf8(back).unwrap();
                    assert_eq!(
                        back,
                        "Please reach me at <EMAIL_ADDRESS> or <PHONE_NUMBER> about the bug.\n".repeat(40_000)
                    );
                    assert_eq!(r.body["size"], back.len(), "the stored size is the anonymised size");
                }
                _ => {
                    assert_eq!(
                        (r.status, r.body["error"]["code"].as_str()),
                        (422, Some("personal_data_found")),
                        "{}",
                        r.body
                    );
                    assert!(!r.body.to_string().contains("grace.hopper"));
                    assert_eq!(app.count("objects").await, before, "nothing stored");
                    assert!(last.contains("\"refused\"") || last.contains("reject"), "{last}");
                }
            }
            app.stop().await;
        }
    }
}

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

/// The stored password hash of subject `id`, opened with its data key.
async fn stored_password_hash(app: &TestApp, id: &str) -> String {
    let (category, sealed) = app.state.store.field_value(id, "password").await.unwrap().unwrap();
    let subject = app.state.store.subject(id).await.unwrap().unwrap();
    let data_key = app.state.keys.unwrap(id, subject.wrapped.as_ref().unwrap()).unwrap();
    String::from_utf8(data_key.open_field(id, "password", &category, &sealed).unwrap()).unwrap()
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

/// Every collection point of the policy (P01–P09) takes what it declares, and each of its
/// purposes reads back exactly the categories it uses; files go through the upload
/// endpoint and come back through the same purpose check, and reading one for a purpose
/// shared with a processor records the disclosure (P08: Cloudflare for raw uploads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_collection_point_collects_and_reads_back_by_purpose() {
    for db in backends("vault_every_point").await {
        let app = TestApp::spawn(&db).await;
        let points: Vec<&str> = charter_policy::load("p.toml", charter_policy::TENSOROPERA)
            .unwrap()
            .policy
            .collection_points
            .keys()
            .map(|k| Box::leak(k.clone().into_boxed_str()) as &str)
            .collect();
        let purposes: Vec<&str> = charter_policy::load("p.toml", charter_policy::TENSOROPERA)
            .unwrap()
            .policy
            .purposes
            .keys()
            .map(|k| Box::leak(k.clone().into_boxed_str()) as &str)
            .collect();
        let all = app.key("all", &purposes, &points).await;
        let id = app.collect(&all, "signup", &signup(EMAIL)).await.body["subject_id"].as_str().unwrap().to_owned();
        let subject = json!({ "id": id });
        // (point, fields, consents, [(purpose, fields it reads back)])
        type Case<'a> = (&'a str, Value, Value, Vec<(&'a str, Vec<&'a str>)>);
        let cases: Vec<Case> = vec![
            (
                "payment",
                json!({ "name": NAME, "email": EMAIL, "account": "GB33BUKB20201555555555", "billing_address": "12 Marylebone Road, London" }),
                json!({}),
                vec![
                    ("payments", vec!["account", "billing_address", "email", "name"]),
                    ("bookkeeping", vec!["billing_address", "name"]),
                ],
            ),
            (
                "job_application",
                json!({ "name": NAME, "email": EMAIL, "phone": "+44 20 7946 0958", "position": "Analyst of engines", "cover_letter": "I have written the first program." }),
                json!({}),
                vec![("job_applications", vec!["cover_letter", "email", "name", "phone", "position"])],
            ),
            ("user_content", json!({ "body": "Notes on the Analytical Engine" }), json!({}), vec![]),
            ("survey", json!({ "answers": "More punched cards, please" }), json!({ "surveys": true }), vec![]),
            ("support", json!({ "name": NAME, "email": EMAIL, "message": "My engine jams" }), json!({}), vec![]),
        ];
        let mut sent = serde_json::Map::new();
        for (point, fields, consents, _) in &cases {
            let r =
                app.collect(&all, point, &json!({ "subject": subject, "fields": fields, "consents": consents })).await;
            assert_eq!((r.status, r.body["subject_id"].as_str()), (201, Some(id.as_str())), "{point}: {}", r.body);
            sent.extend(fields.as_object().unwrap().clone());
            // Phone numbers are stored in their normal form (E.164).
            if let Some(phone) = sent.get_mut("phone") {
                *phone = json!(phone.as_str().unwrap().replace([' ', '-', '(', ')'], ""));
            }
        }
        // A purpose reads its categories from every point: payment's name and email are
        // the same fields as signup's, last written wins.
        for (point, _, _, reads) in &cases {
            for (purpose, names) in reads {
                let r = app.read(&all, &id, &format!("purpose={purpose}")).await;
                assert_eq!(r.status, 200, "{point} for {purpose}: {}", r.body);
                let got = r.body["fields"].as_object().unwrap();
                let mut keys: Vec<&str> = got.keys().map(String::as_str).collect();
                keys.sort_unstable();
                assert_eq!(&keys, names, "{point} for {purpose}: {}", r.body);
                for n in names {
                    assert_eq!(got[*n], sent[*n], "{point}: {n} for {purpose}");
                }
            }
        }
        let body = app.read(&all, &id, "purpose=user_content").await;
        assert_eq!(body.body["fields"]["body"], "Notes on the Analytical Engine", "{}", body.body);
        let survey = app.read(&all, &id, "purpose=surveys&fields=answers").await;
        assert_eq!(survey.body["fields"]["answers"], "More punched cards, please", "{}", survey.body);
        let support = app.read(&all, &id, "purpose=support&fields=message").await;
        assert_eq!(support.body["fields"]["message"], "My engine jams", "{}", support.body);
        // Bookkeeping never sees the card account, whoever asks.
        let bk = app.read(&all, &id, "purpose=bookkeeping&fields=account").await;
        assert_eq!((bk.status, bk.body["error"]["code"].as_str()), (403, Some("category_not_in_purpose")));

        // Files: (point, field, content type, purpose, the processors it is disclosed to):
        // Google Cloud hosts applications and published content, Cloudflare raw uploads.
        let files = [
            (
                "job_application",
                "cv",
                "application/pdf",
                "job_applications",
                "user.employment.application",
                ["google_cloud"],
            ),
            ("user_content", "file", "image/png", "user_content", "user.content.upload", ["google_cloud"]),
            ("raw_upload", "file", "text/csv", "raw_data_storage", "user.content.upload", ["cloudflare"]),
        ];
        let mut contents = Vec::new();
        for (point, field, ct, purpose, category, recipients) in files {
            let content: Vec<u8> = format!("{point} {field} CONTENT-OF-{point}\n").repeat(5000).into_bytes();
            let r = app.upload_at(point, &all, &format!("field={field}&id={id}"), ct, &content, false).await;
            assert_eq!(r.status, 201, "{point}: {}", r.body);
            let object = r.body["object_id"].as_str().unwrap().to_owned();
            let before = app.count("audit_log").await;
            let (status, back) = app.download(&all, &id, &object, purpose).await;
            assert!(status == 200 && back == content, "{point}: the download is the upload");
            let rows: Vec<(String, String)> =
                sqlx::query_as("SELECT action, detail FROM audit_log WHERE seq > $1 ORDER BY seq")
                    .bind(before)
                    .fetch_all(app.state.store.pool())
                    .await
                    .unwrap();
            let disclosed: Vec<Value> = rows
                .iter()
                .filter(|(a, _)| a == "data.disclose")
                .map(|(_, d)| serde_json::from_str(d).unwrap())
                .collect();
            let expected: Vec<Value> =
                recipients.iter().map(|to| json!({ "recipient": to, "categories": [category] })).collect();
            assert_eq!(disclosed, expected, "{point}: {rows:?}");
            // Another purpose of the key that does not use the category gets nothing.
            let (status, denied) = app.download(&all, &id, &object, "newsletter").await;
            assert_eq!(status, 403, "{point}");
            assert!(!denied.windows(10).any(|w| content.windows(10).next() == Some(w)));
            contents.push(format!("CONTENT-OF-{point}"));
        }
        let mut seeded: Vec<&str> = sent.values().filter_map(Value::as_str).collect();
        seeded.extend(contents.iter().map(String::as_str));
        assert_no_plaintext(&db, &seeded).await;
        let dir = app.stop().await;
        for f in files_under(&dir.path().join("data/objects")) {
            let bytes = std::fs::read(&f).unwrap();
            for s in &seeded {
                assert!(!bytes.windows(s.len()).any(|w| w == s.as_bytes()), "{s:?} in {}", f.display());
            }
        }
    }
}

/// A server still running with a key file from before a rotation (one on another host
/// sharing the database, say) is refused new subjects, with nothing stored, rather than
/// storing data keys wrapped under a key-encryption key that no longer exists anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_new_subject_is_stored_under_a_retired_key_encryption_key() {
    for db in backends("vault_retired_kek").await {
        let app = TestApp::spawn(&db).await;
        let site = app.key("site", &["registration"], &["signup"]).await;
        let id = app.collect(&site, "signup", &signup(EMAIL)).await.body["subject_id"].as_str().unwrap().to_owned();
        assert_eq!(app.state.keys.kek_versions(), [1]);
        // What `charter keys rotate` records in the database when it retires version 1.
        app.state.store.retire_keks_and_rewrap(&[1], &[], charter_store::now_us()).await.unwrap();
        let (subjects, fields) = (app.count("subjects").await, app.count("field_values").await);
        let r = app.collect(&site, "signup", &signup("someone.new@analytical.example")).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (500, Some("internal")), "{}", r.body);
        let logged = String::from_utf8_lossy(&common::logs()).into_owned();
        assert!(logged.contains("key-encryption key version 1 was retired by a key rotation"), "the cause is logged");
        // The collection's entry came first, as it always does, and the next one says it failed.
        let last: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT seq, result, detail FROM audit_log WHERE action = 'data.collect' ORDER BY seq DESC LIMIT 2",
        )
        .fetch_all(app.state.store.pool())
        .await
        .unwrap();
        assert_eq!((last[1].1.as_str(), last[0].1.as_str()), ("ok", "failed"), "{last:?}");
        let failed: Value = serde_json::from_str(&last[0].2).unwrap();
        assert_eq!((failed["entry"].as_i64(), failed["reason"].as_str()), (Some(last[1].0), Some("kek_retired")));
        assert_eq!(
            (app.count("subjects").await, app.count("field_values").await),
            (subjects, fields),
            "nothing stored"
        );
        assert_eq!(app.count("subject_identifiers").await, 1);
        // A subject that already exists wraps nothing new: collecting for it still works.
        let again = app.collect(&site, "signup", &signup(EMAIL)).await;
        assert_eq!((again.status, again.body["subject_id"].as_str()), (201, Some(id.as_str())), "{}", again.body);
        app.stop().await;
    }
}

/// A phone number or an external id names a subject as an email does: the same person
/// arriving with it at another point, written differently, is the same subject, and a
/// lookup by it finds them; neither is stored in plaintext.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_and_external_id_name_the_same_subject_across_points() {
    for db in backends("vault_phone_external_id").await {
        let app = TestApp::spawn(&db).await;
        let key = app.key("site", &["analytics", "support"], &["analytics", "support"]).await;
        let page = |subject: Value| json!({ "subject": subject, "fields": { "page": "/docs" } });
        let by_phone = app.collect(&key, "analytics", &page(json!({ "phone": "+1 (202) 555-0147" }))).await;
        assert_eq!(by_phone.status, 201, "{}", by_phone.body);
        let phone_id = by_phone.body["subject_id"].as_str().unwrap().to_owned();
        let by_crm = app.collect(&key, "analytics", &page(json!({ "external_id": "crm-00042" }))).await;
        let crm_id = by_crm.body["subject_id"].as_str().unwrap().to_owned();
        assert_ne!(phone_id, crm_id);
        let support = json!({
            "subject": { "phone": "+12025550147" },
            "fields": { "name": NAME, "email": EMAIL, "message": "Where are the docs?" }
        });
        let again = app.collect(&key, "support", &support).await;
        assert_eq!(again.body["subject_id"], phone_id.as_str(), "the same phone, written differently: {}", again.body);
        let lookup = |query: &str| {
            let path = format!("/v1/subjects/lookup?{query}");
            let (app, key) = (&app, &key);
            async move { app.raw("GET", &path, Some(key), None).await }
        };
        let found = lookup("phone=%2B1%20202%20555%200147&purpose=support&fields=message").await;
        assert_eq!((found.status, found.body["subject_id"].as_str()), (200, Some(phone_id.as_str())), "{}", found.body);
        assert_eq!(found.body["fields"]["message"], "Where are the docs?");
        let found = lookup("external_id=crm-00042&purpose=analytics").await;
        assert_eq!((found.status, found.body["subject_id"].as_str()), (200, Some(crm_id.as_str())), "{}", found.body);
        assert_eq!(found.body["fields"]["page"], "/docs");
        // External ids are compared exactly; a national number is read in the policy's
        // region (TensorOpera's is the US), so it is the same number, and another
        // country's is another.
        assert_eq!(lookup("external_id=CRM-00042&purpose=analytics").await.status, 404);
        let national = lookup("phone=(202)%20555-0147&purpose=analytics").await;
        assert_eq!((national.status, national.body["subject_id"].as_str()), (200, Some(phone_id.as_str())));
        assert_eq!(lookup("phone=%2B44%2020%207946%200147&purpose=analytics").await.status, 404);
        assert_eq!(app.count("subjects").await, 2);
        assert_no_plaintext(&db, &["2025550147", "202) 555", "crm-00042", "Where are the docs"]).await;
        app.stop().await;
    }
}

/// At a file field that declares no content types, any is accepted, and the caller's
/// Content-Type text, which could be anything, stays out of the append-only audit chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeclared_content_type_is_not_recorded() {
    let db = TestDb::sqlite();
    let policy = charter_policy::TENSOROPERA.replacen(
        "content_types = [\"application/pdf\", \"image/png\", \"image/jpeg\", \"text/plain\"]\n",
        "",
        1,
    );
    assert_ne!(policy, charter_policy::TENSOROPERA, "the support attachment's content types are removed");
    let app = TestApp::spawn_with_policy(&db, &policy).await;
    let site = app.key("site", &["support"], &["support"]).await;
    let body = json!({ "subject": { "email": EMAIL }, "fields": { "name": NAME, "email": EMAIL, "message": "hello" } });
    let id = app.collect(&site, "support", &body).await.body["subject_id"].as_str().unwrap().to_owned();
    let chosen = "x-ada/lovelace-notes";
    let r = app.upload(&site, &format!("field=attachment&id={id}"), chosen, b"notes").await;
    assert_eq!(r.status, 201, "{}", r.body);
    let (action, detail): (String, String) =
        sqlx::query_as("SELECT action, detail FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!((action.as_str(), &detail["content_type"]), ("data.collect", &Value::Null), "{detail}");
    assert_eq!(detail["object"], r.body["object_id"]);
    // The object's own record keeps it (a download answers with it); the chain does not.
    let details: Vec<String> =
        sqlx::query_scalar("SELECT detail FROM audit_log").fetch_all(app.state.store.pool()).await.unwrap();
    assert!(details.iter().all(|d| !d.contains("lovelace")), "{details:?}");
    app.stop().await;
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

/// A collection that found its subject before an erasure and writes after it is refused by
/// the store, so the identifier is never linked to the erased subject again; the same
/// person collected afterwards is a new subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_racing_an_erasure_does_not_relink_the_erased() {
    use charter_store::vault::{CollectError, CollectionWrite, FieldWrite};
    for db in backends("vault_shred_race").await {
        let app = TestApp::spawn(&db).await;
        let site = app.key("site", &["support"], &["support"]).await;
        let message =
            json!({ "subject": { "email": EMAIL }, "fields": { "name": NAME, "email": EMAIL, "message": "hello" } });
        let id = app.collect(&site, "support", &message).await.body["subject_id"].as_str().unwrap().to_owned();
        let normal = app.state.identifiers.normalise(charter_vault::IdentifierKind::Email, EMAIL).unwrap();
        let blind = app.state.keys.blind_indexer().index(&normal);
        assert!(app.state.store.shred(&id, charter_store::now_us()).await.unwrap());
        // What the collection would write, having found the subject just before the shred.
        let late = CollectionWrite {
            subject_id: id.clone(),
            new_subject: None,
            identifier: Some(("email", blind)),
            point: "support".into(),
            fields: vec![FieldWrite {
                field: "message".into(),
                category: "user.content.message".into(),
                sealed: vec![1; 40],
                if_unset: false,
            }],
            consents: vec![],
            at_us: charter_store::now_us(),
        };
        assert!(matches!(app.state.store.write_collection(&late).await, Err(CollectError::Erased)));
        assert_eq!((app.count("subject_identifiers").await, app.count("field_values").await), (0, 0));
        let again = app.collect(&site, "support", &message).await;
        assert_eq!(again.status, 201, "{}", again.body);
        assert_ne!(again.body["subject_id"].as_str().unwrap(), id, "a new subject, found by the same email");
        app.stop().await;
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
        let (category, _) = app.state.store.field_value(&id, "password").await.unwrap().unwrap();
        let broken = data_key.seal_field(&id, "password", &category, b"$argon2id$broken-beyond-repair");
        sqlx::query("UPDATE field_values SET sealed = $1 WHERE subject_id = $2 AND field = 'password'")
            .bind(broken)
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

/// Errors name what the policy declares and otherwise say what kind of thing was wrong: a
/// name the caller chose (here one that looks like an email address) never comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_chosen_names_are_never_echoed() {
    const CANARY: &str = "zq7@example.org";
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let key = app.key("site", &["registration", "support"], &["signup", "support"]).await;
    let id = app.collect(&key, "signup", &signup(EMAIL)).await.body["subject_id"].as_str().unwrap().to_owned();
    let mut with_field = signup("grace@analytical.example");
    with_field["fields"][CANARY] = json!("x");
    let mut with_consent = signup("grace@analytical.example");
    with_consent["consents"][CANARY] = json!(true);
    let requests: Vec<(&str, String, Option<String>)> = vec![
        ("POST", format!("/v1/collect/{CANARY}"), Some(signup(EMAIL).to_string())),
        ("POST", "/v1/collect/signup".into(), Some(with_field.to_string())),
        ("POST", "/v1/collect/signup".into(), Some(with_consent.to_string())),
        ("GET", format!("/v1/subjects/{id}/data?purpose={CANARY}"), None),
        ("GET", format!("/v1/subjects/{id}/data?purpose=registration&{CANARY}=1"), None),
        ("GET", format!("/v1/subjects/{id}/data?purpose=registration&fields=name,{CANARY}"), None),
        ("GET", format!("/v1/subjects/lookup?email={EMAIL}&purpose={CANARY}"), None),
        ("POST", format!("/v1/collect/support/upload?field={CANARY}&id={id}"), Some("hello".into())),
        ("GET", format!("/v1/subjects/{id}/objects/{CANARY}?purpose=support"), None),
    ];
    for (method, path, body) in requests {
        let r = app.raw(method, &path, Some(&key), body.as_deref()).await;
        assert!(!r.body.to_string().contains(CANARY), "{method} {path} echoed the name: {}", r.body);
        assert!(r.status == 200 || r.status >= 400, "{method} {path}: {}", r.status);
    }
    let asked = app
        .raw("GET", &format!("/v1/subjects/{id}/data?purpose=registration&fields=name,{CANARY}"), Some(&key), None)
        .await;
    assert_eq!((asked.status, asked.body["undeclared"].as_u64()), (200, Some(1)), "{}", asked.body);
    let upload = app
        .upload_at(
            "support",
            &key,
            &format!("field=attachment&id={id}"),
            "application/x-zq7-example-org",
            b"hello",
            false,
        )
        .await;
    assert!(!upload.body.to_string().contains("zq7"), "{}", upload.body);
    app.stop().await;
}

/// Selectors and identifier fields are checked and put in one normal form: an empty,
/// blank or digitless value, or one with a control or invisible character, is refused
/// and stores nothing; the variants of one address (case, fullwidth, decomposed accents,
/// the Kelvin sign) are one subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifiers_are_checked_and_normalised() {
    for db in backends("vault_identifiers").await {
        let app = TestApp::spawn(&db).await;
        let key = app.key("site", &["support"], &["support"]).await;
        let message = |subject: Value, email: &str| json!({ "subject": subject, "fields": { "name": NAME, "email": email, "message": "hello" } });
        let refused = [
            json!({ "email": "" }),
            json!({ "email": "   " }),
            json!({ "phone": "call me" }),
            json!({ "phone": "+" }),
            json!({ "email": "ada\u{0}@analytical.example" }),
            json!({ "email": "ada\u{200B}@analytical.example" }),
            json!({ "email": "ad\u{AD}a@analytical.example" }),
            json!({ "external_id": "crm\u{7}1" }),
        ];
        for subject in refused {
            let r = app.collect(&key, "support", &message(subject.clone(), EMAIL)).await;
            assert_eq!(
                (r.status, r.body["error"]["code"].as_str()),
                (422, Some("bad_subject")),
                "{subject}: {}",
                r.body
            );
        }
        let field =
            app.collect(&key, "support", &message(json!({ "email": EMAIL }), "ada\u{200B}@analytical.example")).await;
        assert_eq!((field.status, field.body["error"]["code"].as_str()), (422, Some("wrong_type")), "{}", field.body);
        assert_eq!((app.count("subjects").await, app.count("field_values").await), (0, 0), "nothing stored");

        let variants = [
            "kelvin@analytical.example",
            "Kelvin@Analytical.Example",
            "\u{212A}elvin@analytical.example",
            "ｋｅｌｖｉｎ@ａｎａｌｙｔｉｃａｌ.ｅｘａｍｐｌｅ",
        ];
        let mut ids = std::collections::BTreeSet::new();
        for v in variants {
            let r = app.collect(&key, "support", &message(json!({ "email": v }), v)).await;
            assert_eq!(r.status, 201, "{v}: {}", r.body);
            ids.insert(r.body["subject_id"].as_str().unwrap().to_owned());
        }
        let accents = ["jose\u{301}@analytical.example", "jos\u{e9}@analytical.example"];
        for v in accents {
            let r = app.collect(&key, "support", &message(json!({ "email": v }), v)).await;
            ids.insert(r.body["subject_id"].as_str().unwrap().to_owned());
        }
        assert_eq!(ids.len(), 2, "one subject per address: {ids:?}");
        let read = app.read(&key, ids.iter().next().unwrap(), "purpose=support&fields=email").await;
        let email = read.body["fields"]["email"].as_str().unwrap().to_owned();
        assert!(["kelvin@analytical.example", "jos\u{e9}@analytical.example"].contains(&email.as_str()), "{email}");
        app.stop().await;
    }
}

/// A subject indexed under an identifier's earlier normal form is still found, and is
/// indexed under the new form from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subjects_indexed_before_the_normal_form_are_found_and_reindexed() {
    for db in backends("vault_reindex").await {
        let app = TestApp::spawn(&db).await;
        let key = app.key("site", &["support"], &["support"]).await;
        let fullwidth = "ｇｒａｃｅ@analytical.example";
        let body = json!({ "subject": { "email": "grace@analytical.example" }, "fields": { "name": NAME, "email": EMAIL, "message": "hi" } });
        let id = app.collect(&key, "support", &body).await.body["subject_id"].as_str().unwrap().to_owned();
        // As an earlier version indexed it: the fullwidth address, only trimmed and lower-cased.
        let indexer = app.state.keys.blind_indexer();
        let legacy = indexer.index_legacy(charter_vault::IdentifierKind::Email, fullwidth);
        sqlx::query("UPDATE subject_identifiers SET blind = $1 WHERE subject_id = $2")
            .bind(legacy.to_vec())
            .bind(&id)
            .execute(app.state.store.pool())
            .await
            .unwrap();
        let path = format!(
            "/v1/subjects/lookup?email={}&purpose=support",
            "%EF%BD%87%EF%BD%92%EF%BD%81%EF%BD%83%EF%BD%85%40analytical.example"
        );
        let found = app.raw("GET", &path, Some(&key), None).await;
        assert_eq!((found.status, found.body["subject_id"].as_str()), (200, Some(id.as_str())), "{}", found.body);
        let normal = app.state.identifiers.normalise(charter_vault::IdentifierKind::Email, fullwidth).unwrap();
        let blinds: Vec<Vec<u8>> = sqlx::query_scalar("SELECT blind FROM subject_identifiers WHERE subject_id = $1")
            .bind(&id)
            .fetch_all(app.state.store.pool())
            .await
            .unwrap();
        assert_eq!(blinds, vec![indexer.index(&normal).to_vec()], "re-indexed under the normal form only");
        let plain = app
            .raw("GET", "/v1/subjects/lookup?email=grace%40analytical.example&purpose=support", Some(&key), None)
            .await;
        assert_eq!(plain.body["subject_id"].as_str(), Some(id.as_str()), "the ordinary spelling finds them too");
        app.stop().await;
    }
}

/// A download opens the object's sealed chunks only as the client reads them: a client
/// that reads the first MiB of 64 and goes away leaves the rest unread and unopened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_stops_when_its_client_goes_away() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let key = app.key("storage", &["raw_data_storage"], &["signup", "raw_upload"]).await;
    let id = app.collect(&key, "signup", &signup(EMAIL)).await.body["subject_id"].as_str().unwrap().to_owned();
    let content: Vec<u8> = (0..64u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let up = app
        .upload_at("raw_upload", &key, &format!("field=file&id={id}"), "application/octet-stream", &content, false)
        .await;
    assert_eq!(up.status, 201, "{}", up.body);
    let object = up.body["object_id"].as_str().unwrap().to_owned();
    let (addr, path) = (app.addr.clone(), format!("/v1/subjects/{id}/objects/{object}?purpose=raw_data_storage"));
    let key2 = key.clone();
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key2}\r\n\r\n").unwrap();
        let mut first = vec![0u8; 1 << 20];
        s.read_exact(&mut first).unwrap();
    })
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let metrics = app.raw("GET", "/metrics", None, None).await.body.as_str().unwrap().to_owned();
    let opened: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("charter_download_chunks_opened_total "))
        .and_then(|n| n.parse().ok())
        .expect("the counter");
    assert!(opened < 512, "{opened} of 1,024 chunks opened for a client that read 16");
    app.stop().await;
}
