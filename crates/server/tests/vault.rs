//! Collection, purpose-bound reads, identifiers and shredding over HTTP, on SQLite and PostgreSQL.

mod common;

use charter_testkit::TestDb;
use charter_vault::KeyWrapper as _;
use common::data::*;
use common::{backends, TestApp};
use serde_json::{json, Value};

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
        for table in ["subjects", "subject_identifiers", "field_values", "consent_events"] {
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
        let stored = String::from_utf8(charter_server::subject::open_value(&data_key, &id, sealed).unwrap()).unwrap();
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
        sqlx::query("INSERT INTO consent_events (subject_id, purpose, given, point, at_us, source) VALUES ($1, 'newsletter', 0, 'preferences', $2, 'preference_center')")
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
            assert!(r.body["record_id"].is_string(), "{point} keeps records: {}", r.body);
            sent.extend(fields.as_object().unwrap().clone());
            // Phone numbers are stored in their normal form (E.164).
            if let Some(phone) = sent.get_mut("phone") {
                *phone = json!(phone.as_str().unwrap().replace([' ', '-', '(', ')'], ""));
            }
        }
        // Each point's fields are in its own record; a purpose reads the categories it uses
        // from it.
        for (point, _, _, reads) in &cases {
            for (purpose, names) in reads {
                let r = app.read(&all, &id, &format!("purpose={purpose}&point={point}")).await;
                assert_eq!(r.status, 200, "{point} for {purpose}: {}", r.body);
                let got = only_record(&r.body, point);
                let mut keys: Vec<&str> = got.keys().map(String::as_str).collect();
                keys.sort_unstable();
                assert_eq!(&keys, names, "{point} for {purpose}: {}", r.body);
                for n in names {
                    assert_eq!(got[*n], sent[*n], "{point}: {n} for {purpose}");
                }
            }
        }
        let body = app.read(&all, &id, "purpose=user_content&point=user_content").await;
        assert_eq!(only_record(&body.body, "user_content")["body"], "Notes on the Analytical Engine");
        let survey = app.read(&all, &id, "purpose=surveys&fields=answers&point=survey").await;
        assert_eq!(only_record(&survey.body, "survey")["answers"], "More punched cards, please");
        let support = app.read(&all, &id, "purpose=support&fields=message&point=support").await;
        assert_eq!(only_record(&support.body, "support")["message"], "My engine jams");
        // Bookkeeping never sees the card account, whoever asks: the payment record is
        // withheld from it.
        let bk = app.read(&all, &id, "purpose=bookkeeping&fields=account").await;
        assert_eq!(bk.status, 200, "{}", bk.body);
        assert_eq!(bk.body["records"], json!([]), "{}", bk.body);
        assert_eq!(bk.body["withheld"], json!({ "category_not_in_purpose": 1 }), "{}", bk.body);

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
        for f in common::files(&dir.path().join("data/objects")) {
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
        assert_eq!(only_record(&found.body, "support")["message"], "Where are the docs?");
        let found = lookup("external_id=crm-00042&purpose=analytics").await;
        assert_eq!((found.status, found.body["subject_id"].as_str()), (200, Some(crm_id.as_str())), "{}", found.body);
        assert_eq!(only_record(&found.body, "analytics")["page"], "/docs");
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

/// A collection that found its subject before an erasure and writes after it is refused by
/// the store, so the identifier is never linked to the erased subject again; the same
/// person collected afterwards is a new subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_racing_an_erasure_does_not_relink_the_erased() {
    use charter_store::vault::{CollectError, CollectionWrite, RecordField, RecordWrite};
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
            profile: vec![],
            record: Some(RecordWrite {
                id: uuid::Uuid::new_v4().to_string(),
                wrapped_key: vec![2; 60],
                fields: vec![RecordField {
                    field: "message".into(),
                    category: "user.content.message".into(),
                    sealed: vec![1; 40],
                }],
            }),
            consents: vec![],
            objects: vec![],
            at_us: charter_store::now_us(),
        };
        assert!(matches!(app.state.store.write_collection(&late).await, Err(CollectError::Erased)));
        assert_eq!((app.count("subject_identifiers").await, app.count("field_values").await), (0, 0));
        assert_eq!(app.state.store.purge_erased(&id, 10).await.unwrap(), 1, "the support message's record");
        assert_eq!((app.count("records").await, app.count("record_fields").await), (0, 0));
        let again = app.collect(&site, "support", &message).await;
        assert_eq!(again.status, 201, "{}", again.body);
        assert_ne!(again.body["subject_id"].as_str().unwrap(), id, "a new subject, found by the same email");
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
        assert_eq!((app.count("subjects").await, app.count("records").await), (0, 0), "nothing stored");

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
        let email = read.body["records"][0]["fields"]["email"].as_str().unwrap().to_owned();
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

/// The fields of the one record a read returned, which `point` collected.
fn only_record<'a>(body: &'a Value, point: &str) -> &'a serde_json::Map<String, Value> {
    let records = body["records"].as_array().unwrap_or_else(|| panic!("no records: {body}"));
    assert_eq!(records.len(), 1, "{body}");
    assert_eq!(records[0]["point"], point, "{body}");
    records[0]["fields"].as_object().unwrap()
}
