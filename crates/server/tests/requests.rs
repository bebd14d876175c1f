//! Rights requests end to end over HTTP on both backends: filed, verified with the code
//! from the outbox, fulfilled by the server's worker, and checked in the person's data.

mod common;

use std::time::Duration;

use common::data::{assert_no_plaintext, signup, EMAIL, NAME};
use common::rights::{approve, code_after, file, filed_and_verified, until_status};
use common::{backends, TestApp};
use serde_json::{json, Value};

#[tokio::test]
async fn an_objection_is_filed_verified_and_fulfilled_and_strangers_learn_nothing() {
    for db in backends("requests_objection").await {
        let app = TestApp::spawn(&db).await;
        let site = app.key("site", &["registration", "analytics"], &["signup"]).await;
        let id = app.collect(&site, "signup", &signup(EMAIL)).await.body["subject_id"].as_str().unwrap().to_owned();

        let body = |email: &str| json!({ "type": "objection", "email": email, "details": { "purpose": "analytics" } });
        let (known_status, known) = file(&app, body(EMAIL)).await;
        let (unknown_status, unknown) = file(&app, body("nobody@example.org")).await;
        assert_eq!((known_status, unknown_status), (202, 202));
        let shape = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(shape(&known), shape(&unknown));
        assert_eq!(
            (known["status"].as_str(), unknown["status"].as_str()),
            (Some("awaiting_verification"), Some("awaiting_verification"))
        );
        let stranger = unknown["request_id"].as_str().unwrap();
        for code in ["000000", "123456"] {
            let got = app
                .raw(
                    "POST",
                    &format!("/v1/requests/{stranger}/verify"),
                    None,
                    Some(&json!({ "code": code }).to_string()),
                )
                .await;
            assert_eq!((got.status, got.body["error"]["code"].as_str()), (400, Some("invalid_code")));
        }

        let rid = known["request_id"].as_str().unwrap();
        let code = code_after(&app, &[]).await;
        let wrong = if code == "000000" { "000001" } else { "000000" };
        let bad = app
            .raw("POST", &format!("/v1/requests/{rid}/verify"), None, Some(&json!({ "code": wrong }).to_string()))
            .await;
        assert_eq!(bad.status, 400);
        let ok = app
            .raw("POST", &format!("/v1/requests/{rid}/verify"), None, Some(&json!({ "code": code }).to_string()))
            .await;
        assert_eq!(ok.status, 200, "{}", ok.body);
        let token = ok.body["token"].as_str().unwrap();
        let done = until_status(&app, rid, token, "completed").await;
        let actions: Vec<&str> =
            done["timeline"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["received", "verified", "started", "completed"]);
        let reader = app.key("reader", &["analytics"], &[]).await;
        let read = app.read(&reader, &id, "purpose=analytics&fields=email").await;
        assert_eq!(read.body["error"]["code"], "objected", "{}", read.body);

        // Nobody else can follow it; a replayed code does nothing.
        let other = app.raw("GET", &format!("/v1/requests/{rid}?token=forged"), None, None).await;
        assert_eq!(other.status, 404);
        let stranger_token = app.raw("GET", &format!("/v1/requests/{stranger}?token={token}"), None, None).await;
        assert_eq!(stranger_token.status, 404, "a token is bound to its request");
        let replay = app
            .raw("POST", &format!("/v1/requests/{rid}/verify"), None, Some(&json!({ "code": code }).to_string()))
            .await;
        assert_eq!(replay.status, 400);
        assert_no_plaintext(&db, &[EMAIL, NAME]).await;
    }
}

#[tokio::test]
async fn bad_filings_are_refused_and_keep_nothing() {
    for db in backends("requests_refused").await {
        let app = TestApp::spawn(&db).await;
        let cases: Vec<(Value, u16, &str)> = vec![
            (json!({ "type": "telepathy", "email": EMAIL }), 422, "unknown_type"),
            (json!({ "type": "objection", "email": EMAIL }), 422, "unknown_purpose"),
            (
                json!({ "type": "consent_withdrawal", "email": EMAIL, "details": { "purpose": "registration" } }),
                422,
                "not_consent_based",
            ),
            (
                json!({ "type": "rectification", "email": EMAIL, "details": { "fields": { "shoe_size": "9" } } }),
                422,
                "bad_field",
            ),
            (json!({ "type": "access" }), 422, "bad_contact"),
            (json!({ "type": "access", "email": EMAIL, "phone": "+14155550100" }), 422, "bad_contact"),
            (json!({ "type": "access", "email": "not an address" }), 422, "bad_contact"),
            (json!({ "type": "access", "email": EMAIL, "jurisdiction": "mars" }), 422, "unknown_jurisdiction"),
            (json!({ "type": "access", "email": EMAIL, "surprise": 1 }), 400, "malformed_json"),
        ];
        for (body, status, code) in cases {
            let (got, answer) = file(&app, body.clone()).await;
            assert_eq!((got, answer["error"]["code"].as_str()), (status, Some(code)), "{body}: {answer}");
        }
        assert_eq!(app.count("requests").await, 0);
        let huge = json!({ "type": "access", "email": EMAIL, "details": { "pad": "x".repeat(100_000) } });
        assert_eq!(file(&app, huge).await.0, 413);
    }
}

#[tokio::test]
async fn an_access_request_is_approved_then_downloaded_a_few_times() {
    for db in backends("requests_access").await {
        let app = TestApp::spawn(&db).await;
        let site = app.key("site", &["registration"], &["signup", "support"]).await;
        let id = app.collect(&site, "signup", &signup(EMAIL)).await.body["subject_id"].as_str().unwrap().to_owned();
        for n in 0..3 {
            let body = json!({ "subject": { "id": id }, "fields": { "name": NAME, "email": EMAIL, "message": format!("Question {n}, with a comma") } });
            assert_eq!(app.collect(&site, "support", &body).await.status, 201);
        }
        let uploaded =
            app.upload(&site, &format!("field=attachment&id={id}"), "text/plain", b"my attached letter").await;
        assert_eq!(uploaded.status, 201, "{}", uploaded.body);
        let (rid, token, status) = filed_and_verified(&app, json!({ "type": "access", "email": EMAIL })).await;
        assert_eq!(status, "awaiting_approval", "the policy asks the team to approve access");
        let mut r = app.state.store.request(&rid).await.unwrap().unwrap();
        assert!(charter_server::rights::move_request(
            &app.state,
            &mut r,
            charter_core::requests::Move::Approve,
            "admin-test",
            None
        )
        .await
        .unwrap());
        let done = until_status(&app, &rid, &token, "completed").await;
        let link = done["download"].as_str().expect("a download link").to_owned();

        let dir = tempfile::tempdir().unwrap();
        for n in 0..3 {
            let got = app.page("GET", &link, None, &[]).await;
            assert_eq!(got.status, 200, "download {n}");
            assert_eq!(got.header("content-type"), Some("application/zip"));
            std::fs::write(dir.path().join(format!("{n}.zip")), &got.body).unwrap();
        }
        let gone = app.page("GET", &link, None, &[]).await;
        assert_eq!(gone.status, 410, "three downloads only");
        assert!(gone.text().contains("expired"));
        // Read by a ZIP reader that is not charter's.
        let listing = std::process::Command::new("python3")
            .arg("-c")
            .arg("import json,sys,zipfile;z=zipfile.ZipFile(sys.argv[1]);assert z.testzip() is None;d=json.loads(z.read('data.json'));f=[z.read(n).decode() for n in z.namelist() if n.startswith('files/')];print(json.dumps({'names':sorted(z.namelist()),'data':d,'files':f}))")
            .arg(dir.path().join("0.zip"))
            .output()
            .unwrap();
        assert!(listing.status.success(), "{}", String::from_utf8_lossy(&listing.stderr));
        let got: Value = serde_json::from_slice(&listing.stdout).unwrap();
        let names: Vec<&str> = got["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
        assert!(
            names.contains(&"data.json")
                && names.contains(&"summary.html")
                && names.contains(&"csv/user.contact.email.csv"),
            "{names:?}"
        );
        assert_eq!(got["files"], json!(["my attached letter"]), "the files, opened");
        let data = &got["data"];
        assert_eq!(data["schema"], "charter.export.v1");
        assert_eq!(data["profile"]["email"]["value"], EMAIL);
        assert_eq!(data["records"].as_array().unwrap().len(), 4, "three messages and the upload's record");
        assert!(data["consents"].as_array().unwrap().len() >= 2, "the consent history");
        assert!(data["about"]["purposes"].as_array().unwrap().len() > 1);
        assert_no_plaintext(&db, &[EMAIL, NAME, "Question 1, with a comma", "my attached letter"]).await;
    }
}

#[tokio::test]
async fn an_erasure_keeps_only_what_the_law_obliges_and_is_certified() {
    for db in backends("requests_erasure").await {
        let app = TestApp::spawn(&db).await;
        let site = app.key("site", &["registration", "payments"], &["signup", "payment", "support"]).await;
        let id = app.collect(&site, "signup", &signup(EMAIL)).await.body["subject_id"].as_str().unwrap().to_owned();
        let paid = json!({ "subject": { "id": id }, "fields": { "name": NAME, "email": EMAIL, "account": "GB33BUKB20201555555555", "billing_address": "12 Marylebone Road" } });
        assert_eq!(app.collect(&site, "payment", &paid).await.status, 201);
        let asked = json!({ "subject": { "id": id }, "fields": { "name": NAME, "email": EMAIL, "message": "Please forget me" } });
        assert_eq!(app.collect(&site, "support", &asked).await.status, 201);
        let support = app.key("support", &["support"], &["support"]).await;
        let uploaded =
            app.upload(&support, &format!("field=attachment&id={id}"), "text/plain", b"a letter to forget").await;
        assert_eq!(uploaded.status, 201, "{}", uploaded.body);
        let objects = app.data_dir().join("objects");
        assert_eq!(common::files(&objects).len(), 1, "the attachment is in object storage");

        let (rid, token, _) = filed_and_verified(&app, json!({ "type": "erasure", "email": EMAIL })).await;
        let mut r = app.state.store.request(&rid).await.unwrap().unwrap();
        assert!(charter_server::rights::move_request(
            &app.state,
            &mut r,
            charter_core::requests::Move::Approve,
            "admin-test",
            None
        )
        .await
        .unwrap());
        until_status(&app, &rid, &token, "completed").await;

        let mut told = false;
        for _ in 0..100 {
            told = app.outbox_now().await.iter().any(|m| m.contains("We erased your data") && m.contains(EMAIL));
            if told {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(told, "the confirmation reaches the address the person had, sealed under the key file");
        let per_point = app.state.store.records_per_point(&id).await.unwrap();
        assert_eq!(per_point, vec![("payment".to_owned(), 1)], "only the payment record is kept");
        assert!(common::files(&objects).is_empty(), "the attachment is gone from object storage");
        let subject = app.state.store.subject(&id).await.unwrap().unwrap();
        assert!(subject.restricted_at_us.is_some() && subject.wrapped.is_some(), "kept, restricted, its key alive");
        // Exactly the kept record still opens with the key file.
        let key = charter_vault::KeyWrapper::unwrap(&*app.state.keys, &id, subject.wrapped.as_ref().unwrap()).unwrap();
        let q = charter_store::records::PageQuery {
            subject_id: &id,
            point: None,
            after: charter_store::records::Position::start(),
            limit: 10,
        };
        let kept = app.state.store.records_page(&q).await.unwrap();
        assert_eq!(kept.len(), 1);
        let own = key.unwrap_own(&id, charter_vault::Holder::Record(&kept[0].id), &kept[0].wrapped_key).unwrap();
        let f = kept[0].fields.iter().find(|f| f.field == "account").unwrap();
        let plain = own.fields().open_in_record(&id, &kept[0].id, &f.field, &f.category, &f.sealed).unwrap();
        assert_eq!(plain, b"GB33BUKB20201555555555");
        let restricted = app.read(&site, &id, "purpose=payments&fields=account").await;
        assert_eq!(restricted.body["error"]["code"], "restricted", "kept, not used: {}", restricted.body);
        let again =
            app.raw("POST", "/v1/requests", None, Some(&json!({ "type": "access", "email": EMAIL }).to_string())).await;
        assert_eq!(again.status, 202, "nobody can tell an erased person from a stranger");
        let cert = app.raw("GET", &format!("/requests/{rid}/certificate?t={token}"), None, None).await;
        assert_eq!(cert.status, 200, "{}", cert.body);
        let body: Value = serde_json::from_str(cert.body["signed"].as_str().unwrap()).unwrap();
        assert_eq!(body["kept"][0]["point"], "payment");
        assert_eq!(body["erased"]["records"], 2, "the support message and the upload's own record");
        assert_eq!(body["erased"]["objects"], 1);
        let processors: Vec<&str> =
            body["processors"].as_array().unwrap().iter().map(|p| p["recipient"].as_str().unwrap()).collect();
        assert!(!processors.is_empty(), "the hosting processors are told");
        let verifier = app.state.keys.checkpoint_signer().verifier();
        let signature = hex::decode(cert.body["signature"].as_str().unwrap()).unwrap();
        assert!(verifier.verify(cert.body["signed"].as_str().unwrap().as_bytes(), &signature));
        assert_no_plaintext(&db, &[EMAIL, NAME, "Please forget me"]).await;
    }
}

#[tokio::test]
async fn asking_the_same_thing_twice_is_one_request() {
    for db in backends("requests_duplicate").await {
        let app = TestApp::spawn(&db).await;
        let site = app.key("site", &["registration"], &["signup"]).await;
        app.collect(&site, "signup", &signup(EMAIL)).await;
        let body = json!({ "type": "restriction", "email": EMAIL });
        let (first, _, _) = filed_and_verified(&app, body.clone()).await;
        let seen = app.outbox_now().await;
        let (status, filed) = file(&app, body).await;
        assert_eq!(status, 202);
        let second = filed["request_id"].as_str().unwrap().to_owned();
        let fresh = app.new_message(&seen, "Your code").await;
        let at = fresh.find(" is ").unwrap() + 4;
        let got = app
            .raw(
                "POST",
                &format!("/v1/requests/{second}/verify"),
                None,
                Some(&json!({ "code": &fresh[at..at + 6] }).to_string()),
            )
            .await;
        assert_eq!(got.body["status"], "duplicate", "{}", got.body);
        let r = app.state.store.request(&second).await.unwrap().unwrap();
        assert_eq!(r.duplicate_of.as_deref(), Some(first.as_str()));
    }
}

/// The code in the first message to reach the sink since `seen` messages.
async fn code_from_sink(sink: &charter_testkit::smtp::SmtpSink, seen: usize) -> String {
    for _ in 0..200 {
        let got = sink.received();
        if let Some(m) = got.iter().skip(seen).find(|m| m.data.contains("Your code")) {
            let at = m.data.find(" is ").unwrap() + 4;
            return m.data[at..at + 6].to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no new code reached the SMTP sink");
}

/// Files a request for EMAIL, verifies it with the code from the SMTP sink, approves it
/// when the policy asks, and waits until it is completed; returns its id.
async fn fulfilled(app: &TestApp, sink: &charter_testkit::smtp::SmtpSink, body: Value) -> String {
    let seen = sink.received().len();
    let (status, filed) = file(app, body.clone()).await;
    assert_eq!(status, 202, "{body}: {filed}");
    let id = filed["request_id"].as_str().unwrap().to_owned();
    let code = code_from_sink(sink, seen).await;
    let got =
        app.raw("POST", &format!("/v1/requests/{id}/verify"), None, Some(&json!({ "code": code }).to_string())).await;
    assert_eq!(got.status, 200, "{body}: {}", got.body);
    let token = got.body["token"].as_str().unwrap().to_owned();
    if got.body["status"] == "awaiting_approval" {
        approve(app, &id).await;
    }
    until_status(app, &id, &token, "completed").await;
    id
}

#[tokio::test]
async fn every_request_type_does_what_it_says() {
    for db in backends("requests_every_type").await {
        let sink = charter_testkit::smtp::SmtpSink::start().await;
        let processor = charter_testkit::receiver::Receiver::start().await;
        // One person asks many things within the hour: the policy allows them the codes.
        let policy = charter_policy::TENSOROPERA
            .replace("codes_per_address_per_hour = 5", "codes_per_address_per_hour = 50")
            .replacen(
                "deletion = { manual = \"https://support.google.com/cloud/contact/dpo\" }",
                &format!("deletion = {{ webhook = \"{}/erase\" }}", processor.base),
                1,
            );
        let app = TestApp::spawn_delivering(&db, &policy, &sink.url()).await;
        charter_delivery::webhook::new_secret(&app.state.store, &app.state.keys, "google_cloud", 0).await.unwrap();
        let site = app.key("site", &["registration", "newsletter", "direct_marketing"], &["signup"]).await;
        let id = app.collect(&site, "signup", &signup(EMAIL)).await.body["subject_id"].as_str().unwrap().to_owned();
        let reader = app.key("reader", &["registration", "newsletter", "audience_measurement"], &[]).await;
        let read = |purpose: &'static str| {
            let (app, reader, id) = (&app, reader.clone(), id.clone());
            async move { app.read(&reader, &id, &format!("purpose={purpose}&fields=email,name")).await }
        };
        assert_eq!(read("newsletter").await.status, 200);

        fulfilled(
            &app,
            &sink,
            json!({ "type": "consent_withdrawal", "email": EMAIL, "details": { "purpose": "newsletter" } }),
        )
        .await;
        assert_eq!(read("newsletter").await.body["error"]["code"], "consent_missing");
        let ledger = app.state.store.subject_consents(&id).await.unwrap();
        assert_eq!(ledger.last().map(|r| r.answer.source), Some("request"));

        fulfilled(&app, &sink, json!({ "type": "marketing_objection", "email": EMAIL })).await;
        assert_eq!(app.state.store.objections(&id).await.unwrap(), ["direct_marketing", "newsletter"]);

        fulfilled(&app, &sink, json!({ "type": "automated_decision_objection", "email": EMAIL })).await;
        let (status, opted) = file(&app, json!({ "type": "ccpa_opt_out", "email": EMAIL })).await;
        assert_eq!((status, opted["status"].as_str()), (202, Some("completed")), "no code: acted on at once");
        let (_, stranger) = file(&app, json!({ "type": "ccpa_opt_out", "email": "nobody@example.org" })).await;
        assert_eq!(stranger["status"], "completed", "the same answer for a stranger");
        let ledger = app.state.store.subject_consents(&id).await.unwrap();
        assert_eq!(
            ledger.last().map(|r| (r.answer.purpose.as_str(), r.answer.given)),
            Some(("*sale_or_sharing", false))
        );

        fulfilled(
            &app,
            &sink,
            json!({ "type": "rectification", "email": EMAIL, "details": { "fields": { "name": "Ada King" } } }),
        )
        .await;
        assert_eq!(read("registration").await.body["fields"]["name"], "Ada King", "corrected");
        fulfilled(&app, &sink, json!({ "type": "ccpa_correct", "email": EMAIL, "jurisdiction": "ccpa", "details": { "fields": { "name": "Ada Lovelace King" } } })).await;
        assert_eq!(read("registration").await.body["fields"]["name"], "Ada Lovelace King");

        fulfilled(&app, &sink, json!({ "type": "restriction", "email": EMAIL })).await;
        assert_eq!(read("registration").await.body["error"]["code"], "restricted");
        fulfilled(&app, &sink, json!({ "type": "restriction_lift", "email": EMAIL })).await;
        assert_eq!(read("registration").await.status, 200, "lifted");

        for kind in ["portability", "ccpa_know_categories", "ccpa_know_specific", "shine_the_light"] {
            let rid = fulfilled(&app, &sink, json!({ "type": kind, "email": EMAIL })).await;
            let r = app.state.store.request(&rid).await.unwrap().unwrap();
            assert_eq!(r.downloads_left, Some(3), "{kind} is answered by a download");
            assert_eq!(r.jurisdiction, if kind == "portability" { "gdpr" } else { "ccpa" });
        }
        for _ in 0..100 {
            if sink.received().iter().any(|m| m.data.contains("We corrected your data")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mail: Vec<String> = sink.received().into_iter().map(|m| m.data).collect();
        for said in [
            "We received your request",
            "Your request is complete",
            "We recorded the withdrawal of your consent",
            "We corrected your data",
        ] {
            assert!(mail.iter().any(|m| m.contains(said)), "the person is told: {said}");
        }
        let rid = fulfilled(&app, &sink, json!({ "type": "ccpa_delete", "email": EMAIL })).await;
        assert!(app.state.store.subject(&id).await.unwrap().unwrap().shredded_at_us.is_some(), "deleted");
        assert!(app.state.store.certificate(&rid).await.unwrap().is_some());
        for _ in 0..100 {
            if processor.requests().iter().any(|r| r.path == "/erase") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let hook = processor.requests().into_iter().find(|r| r.path == "/erase").expect("the processor is told");
        let told: Value = serde_json::from_slice(&hook.body).unwrap();
        assert_eq!(
            (told["event"].as_str(), told["data"]["request"].as_str()),
            (Some("erasure.requested"), Some(rid.as_str()))
        );
        assert_no_plaintext(&db, &[EMAIL, NAME, "Ada King"]).await;
    }
}

#[tokio::test]
async fn agents_phones_and_unverified_requests() {
    for db in backends("requests_agents").await {
        let app = TestApp::spawn(&db).await;
        let site = app.key("site", &["registration"], &["signup"]).await;
        let mut body = signup(EMAIL);
        body["fields"]["phone"] = json!("+1 415 555 0100");
        let id = app.collect(&site, "signup", &body).await.body["subject_id"].as_str().unwrap().to_owned();

        // A code by text message.
        let (status, filed) = file(&app, json!({ "type": "restriction", "phone": "(415) 555-0100" })).await;
        assert_eq!(status, 202, "{filed}");
        let texts = app.outbox(1).await;
        assert!(texts.iter().any(|t| t.contains("Your code")), "{texts:?}");

        // An agent's request waits for the team, then the person verifies.
        let (status, filed) = file(&app, json!({ "type": "access", "email": EMAIL, "agent": { "name": "Agent Smith", "authorisation": "Signed letter of 1 Dec" } })).await;
        assert_eq!((status, filed["status"].as_str()), (202, Some("agent_pending")));
        let rid = filed["request_id"].as_str().unwrap().to_owned();
        let r = app.state.store.request(&rid).await.unwrap().unwrap();
        assert!(r.agent && r.sealed_details.is_some(), "the authorisation is kept sealed");
        let mut r = r;
        assert!(charter_server::rights::move_request(
            &app.state,
            &mut r,
            charter_core::requests::Move::AgentApproved,
            "admin-test",
            None
        )
        .await
        .unwrap());
        assert_eq!(r.status, "awaiting_verification");

        // Never verified: expired by the sweep once the window passes.
        let mut stale = app.state.store.request(&rid).await.unwrap().unwrap();
        sqlx::query("UPDATE requests SET received_at_us = received_at_us - 8 * 86400000000 WHERE id = $1")
            .bind(&rid)
            .execute(app.state.store.pool())
            .await
            .unwrap();
        charter_server::rights::worker::sweep(&app.state).await.unwrap();
        stale = app.state.store.request(&stale.id).await.unwrap().unwrap();
        assert_eq!(stale.status, "expired");
        assert_no_plaintext(&db, &[EMAIL, "Agent Smith", "Signed letter"]).await;
        let _ = id;
    }
}

#[tokio::test]
async fn deadlines_remind_the_team_and_late_processors_escalate() {
    for db in backends("requests_reminders").await {
        let app = TestApp::spawn(&db).await;
        let site = app.key("site", &["registration"], &["signup"]).await;
        app.collect(&site, "signup", &signup(EMAIL)).await;
        let (id, _, status) = filed_and_verified(&app, json!({ "type": "access", "email": EMAIL })).await;
        assert_eq!(status, "awaiting_approval");
        let jobs = |kind: &'static str| {
            let pool = app.state.store.pool().clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM jobs WHERE kind = $1")
                    .bind(kind)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
        };
        charter_server::rights::worker::sweep(&app.state).await.unwrap();
        assert_eq!(jobs("mail.reminder").await, 0, "a month away: no reminder yet");
        sqlx::query("UPDATE requests SET due_at_us = $2 WHERE id = $1")
            .bind(&id)
            .bind(charter_store::now_us() + 86_400_000_000)
            .execute(app.state.store.pool())
            .await
            .unwrap();
        charter_server::rights::worker::sweep(&app.state).await.unwrap();
        charter_server::rights::worker::sweep(&app.state).await.unwrap();
        assert_eq!(jobs("mail.reminder").await, 1, "one reminder, however many sweeps");
        let events = app.state.store.request_events(&id).await.unwrap();
        assert!(events.iter().any(|e| e.action == "reminded"));

        let task = charter_store::erasure::ProcessorTask {
            request_id: id.clone(),
            recipient: "cloudflare".into(),
            channel: "manual".into(),
            delivery_id: None,
            status: "pending".into(),
            due_at_us: charter_store::now_us() - 1,
            updated_at_us: 0,
            escalated_at_us: None,
        };
        app.state.store.add_processor_tasks(&[task]).await.unwrap();
        charter_server::rights::worker::sweep(&app.state).await.unwrap();
        let tasks = app.state.store.processor_tasks(&id).await.unwrap();
        assert!(tasks[0].escalated_at_us.is_some(), "a processor late to confirm goes to the team");
        assert_eq!(jobs("mail.reminder").await, 2);
    }
}
