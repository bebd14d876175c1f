//! The consent ledger through the API: answers given and withdrawn, the history, and the
//! very next read deciding by them; refusals that record nothing.

mod common;

use common::data::{signup, EMAIL};
use common::{backends, TestApp};
use serde_json::{json, Value};

async fn signed_up(app: &TestApp, site: &str) -> String {
    let made = app.collect(site, "signup", &signup(EMAIL)).await;
    assert_eq!(made.status, 201, "{}", made.body);
    made.body["subject_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn answers_through_the_api_decide_the_next_read_and_stay_in_the_history() {
    for db in backends("consent_api").await {
        let app = TestApp::spawn(&db).await;
        let site = app.key("site", &["registration", "newsletter", "direct_marketing"], &["signup"]).await;
        let id = signed_up(&app, &site).await;
        let path = format!("/v1/subjects/{id}/consents");

        let got = app.raw("GET", &path, Some(&site), None).await;
        assert_eq!(got.status, 200, "{}", got.body);
        assert_eq!(got.body["consents"], json!({"newsletter": true, "direct_marketing": false}));
        let sources: Vec<&Value> = got.body["history"].as_array().unwrap().iter().map(|r| &r["source"]).collect();
        assert_eq!(sources, vec!["collection", "collection"]);

        // Withdrawn: the very next read is refused; given again: allowed.
        let withdrawn = app.raw("POST", &path, Some(&site), Some(r#"{"newsletter": false}"#)).await;
        assert_eq!(withdrawn.status, 200, "{}", withdrawn.body);
        assert_eq!(withdrawn.body["consents"]["newsletter"], false);
        let read = app.read(&site, &id, "purpose=newsletter&fields=email").await;
        assert_eq!((read.status, read.body["error"]["code"].as_str()), (403, Some("consent_missing")));
        let given =
            app.raw("POST", &path, Some(&site), Some(r#"{"newsletter": true, "direct_marketing": true}"#)).await;
        assert_eq!(given.status, 200, "{}", given.body);
        assert_eq!(app.read(&site, &id, "purpose=newsletter&fields=email").await.status, 200);
        assert_eq!(app.read(&site, &id, "purpose=direct_marketing&fields=email").await.status, 200);

        let history = app.raw("GET", &path, Some(&site), None).await.body["history"].as_array().unwrap().clone();
        assert_eq!(history.len(), 5, "every answer stays");
        let last = &history[4];
        assert_eq!((last["source"].as_str(), last["given"].as_bool()), (Some("api"), Some(true)));
        assert_eq!(last["policy_version"], app.state.policy.policy.version.as_str());
        assert_eq!(last["notice_hash"].as_str().map(str::len), Some(64));
        let seqs: Vec<i64> = history.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in ledger order: {seqs:?}");
    }
}

#[tokio::test]
async fn refused_answers_record_nothing() {
    for db in backends("consent_api_refusals").await {
        let app = TestApp::spawn(&db).await;
        let site = app.key("site", &["registration", "newsletter"], &["signup"]).await;
        let analytics = app.key("analytics", &["analytics"], &[]).await;
        let id = signed_up(&app, &site).await;
        let path = format!("/v1/subjects/{id}/consents");
        let before = app.count("consent_events").await;
        let cases: [(&str, &str, u16, &str); 7] = [
            (&site, r#"{"nope": true}"#, 422, "unknown_purpose"),
            (&site, r#"{"analytics": false}"#, 422, "not_consent_based"),
            (&site, r#"{"newsletter": "no"}"#, 422, "not_boolean"),
            (&site, r#"{}"#, 422, "no_answer"),
            (&site, r#"{"newsletter": tru"#, 400, "malformed_json"),
            // The key holds newsletter but not direct marketing: nothing of the two is kept.
            (&site, r#"{"newsletter": false, "direct_marketing": true}"#, 403, "purpose_not_granted_to_key"),
            (&analytics, r#"{"newsletter": false}"#, 403, "purpose_not_granted_to_key"),
        ];
        for (key, body, status, code) in cases {
            let got = app.raw("POST", &path, Some(key), Some(body)).await;
            assert_eq!((got.status, got.body["error"]["code"].as_str()), (status, Some(code)), "{body}: {}", got.body);
        }
        let unknown = format!("/v1/subjects/{}/consents", uuid::Uuid::new_v4());
        let got = app.raw("POST", &unknown, Some(&site), Some(r#"{"newsletter": false}"#)).await;
        assert_eq!((got.status, got.body["error"]["code"].as_str()), (404, Some("unknown_subject")));
        assert_eq!(app.raw("GET", &path, Some(&analytics), None).await.status, 403);
        assert_eq!(app.raw("GET", &path, None, None).await.status, 401);
        assert_eq!(app.count("consent_events").await, before, "nothing half-recorded");

        // An erased subject takes no more answers.
        assert!(app.state.store.shred(&id, charter_store::now_us()).await.unwrap());
        let got = app.raw("POST", &path, Some(&site), Some(r#"{"newsletter": true}"#)).await;
        assert_eq!(got.status, 404, "{}", got.body);
        assert_eq!(app.count("consent_events").await, before);
    }
}
