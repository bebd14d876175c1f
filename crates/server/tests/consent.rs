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
        assert_eq!(last["policy_version"], app.state.policy().policy.version.as_str());
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

const VISITOR: &str = "0123456789abcdef0123456789abcdef";
const ORIGIN: &str = "https://tensoropera.ai";

fn choice(visitor: &str, choices: Value, extra: Value) -> String {
    let notice = "ab".repeat(32);
    let mut body = json!({ "visitor": visitor, "choices": choices, "notice": notice });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body.to_string()
}

/// `POST /v1/consent` from `origin` (none when `None`), with extra header lines.
async fn banner_post(
    app: &TestApp,
    origin: Option<&str>,
    headers: &[&str],
    body: String,
) -> charter_testkit::http::Response {
    let addr = app.addr.clone();
    let mut lines: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    if let Some(o) = origin {
        lines.push(format!("Origin: {o}"));
    }
    tokio::task::spawn_blocking(move || {
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let req = charter_testkit::http::Request {
            headers: &lines,
            ..charter_testkit::http::Request::new("POST", "/v1/consent").json(&body)
        };
        charter_testkit::http::send(&addr, &req)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_banner_records_choices_from_listed_origins_only() {
    for db in backends("consent_banner").await {
        let app = TestApp::spawn(&db).await;
        let script = app.raw("GET", "/consent.js", None, None).await;
        assert_eq!(script.status, 200);
        let js = script.body.as_str().unwrap().to_owned();
        assert!(script.head.to_ascii_lowercase().contains("content-type: text/javascript"));
        for needle in ["\"analytics\"", "\"marketing\"", "_clck", "Microsoft Clarity", &*app.state.policy().notice_hash]
        {
            assert!(js.contains(needle), "{needle} not in the banner");
        }
        assert!(!js.contains("__CHARTER_CONFIG__"));

        let ok = banner_post(
            &app,
            Some(ORIGIN),
            &[],
            choice(VISITOR, json!({"analytics": true, "marketing": false}), json!({})),
        )
        .await;
        assert_eq!(ok.status, 200, "{}", ok.text());
        assert_eq!(ok.header("access-control-allow-origin"), Some(ORIGIN));
        let answer = ok.json(Value::Null);
        assert_eq!(answer["consents"], json!({"audience_measurement": true, "youtube_videos": false}));
        assert_eq!(answer["opted_out"], false);
        let rows = app.state.store.visitor_consents(VISITOR).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.answer.source == "banner"
            && r.answer.agent.is_none()
            && r.answer.ip_prefix.as_deref() == Some("127.0.0.0/24")));

        let before = app.count("consent_events").await;
        let refusals: [(Option<&str>, String, u16, &str); 6] = [
            (
                Some("https://evil.example"),
                choice(VISITOR, json!({"analytics": true}), json!({})),
                403,
                "origin_not_allowed",
            ),
            (Some(ORIGIN), choice("not-a-visitor", json!({"analytics": true}), json!({})), 400, "malformed_visitor"),
            (Some(ORIGIN), choice(VISITOR, json!({"strictly_necessary": false}), json!({})), 422, "unknown_category"),
            (Some(ORIGIN), choice(VISITOR, json!({}), json!({})), 422, "no_answer"),
            (
                Some(ORIGIN),
                choice(VISITOR, json!({"analytics": true}), json!({"notice": "x"})),
                400,
                "malformed_notice",
            ),
            (None, "{\"visitor\": ".to_owned(), 400, "malformed_json"),
        ];
        for (origin, body, status, code) in refusals {
            let got = banner_post(&app, origin, &[], body.clone()).await;
            assert_eq!((got.status, got.json(Value::Null)["error"]["code"].as_str()), (status, Some(code)), "{body}");
        }
        let huge = choice(VISITOR, json!({"analytics": true}), json!({"pad": "x".repeat(10_000)}));
        assert_eq!(banner_post(&app, Some(ORIGIN), &[], huge).await.status, 413);
        assert_eq!(app.count("consent_events").await, before, "nothing half-recorded");

        // A preflight from a listed origin, and from another.
        let addr = app.addr.clone();
        let (pre, evil) = tokio::task::spawn_blocking(move || {
            let pre = ["Origin: https://tensoropera.ai", "Access-Control-Request-Method: POST"];
            let evil = ["Origin: https://evil.example", "Access-Control-Request-Method: POST"];
            let send = |h: &[&str]| {
                charter_testkit::http::send(
                    &addr,
                    &charter_testkit::http::Request {
                        headers: h,
                        ..charter_testkit::http::Request::new("OPTIONS", "/v1/consent")
                    },
                )
            };
            (send(&pre), send(&evil))
        })
        .await
        .unwrap();
        assert_eq!((pre.status, pre.header("access-control-allow-origin")), (204, Some(ORIGIN)));
        assert_eq!(evil.status, 403);

        let gpc = app.raw("GET", "/.well-known/gpc.json", None, None).await;
        assert_eq!(gpc.body, json!({"gpc": true, "lastUpdate": app.state.policy().policy.last_updated}));
        let cookies = app.raw("GET", "/cookies", None, None).await;
        let page = cookies.body.as_str().unwrap();
        assert!(cookies.status == 200 && page.contains("<code>_clck</code>") && page.contains("Strictly necessary"));
    }
}

#[tokio::test]
async fn global_privacy_control_opts_out_and_a_conflicting_choice_needs_confirming() {
    for db in backends("consent_gpc").await {
        let app = TestApp::spawn(&db).await;
        let site = app.key("site", &["registration", "audience_measurement"], &["signup"]).await;
        let id = signed_up(&app, &site).await;
        // Consent given in the banner, then the visitor is collected: their history joins.
        let given = banner_post(&app, Some(ORIGIN), &[], choice(VISITOR, json!({"analytics": true}), json!({}))).await;
        assert_eq!(given.status, 200);
        assert_eq!(app.state.store.join_visitor(VISITOR, &id).await.unwrap(), 1);
        let state = |app: &TestApp| {
            let (store, id) = (app.state.store.clone(), id.clone());
            async move {
                store
                    .subject_for_read(&id, "audience_measurement")
                    .await
                    .unwrap()
                    .unwrap()
                    .state("audience_measurement")
            }
        };
        let policy = app.state.policy().policy.clone();
        let all = vec!["audience_measurement".to_owned()];
        assert_eq!(
            charter_core::access::decide_purpose(&policy, "audience_measurement", &all, &state(&app).await),
            Ok(())
        );

        // The header alone opts out: the next decision refuses with `opted_out`.
        let signal = banner_post(&app, Some(ORIGIN), &["Sec-GPC: 1"], choice(VISITOR, json!({}), json!({}))).await;
        assert_eq!(signal.status, 200, "{}", signal.text());
        assert_eq!(signal.json(Value::Null)["opted_out"], true);
        let denied = charter_core::access::decide_purpose(&policy, "audience_measurement", &all, &state(&app).await);
        assert_eq!(denied, Err(charter_core::access::Denial::OptedOut));
        let again = banner_post(&app, Some(ORIGIN), &["Sec-GPC: 1"], choice(VISITOR, json!({}), json!({}))).await;
        assert_eq!(again.status, 200);
        let gpc_rows =
            app.state.store.subject_consents(&id).await.unwrap().iter().filter(|r| r.answer.source == "gpc").count();
        assert_eq!(gpc_rows, 1, "the signal is recorded once");

        // "Accept all" against the signal: refused unless confirmed, then recorded as such.
        let accept = json!({"analytics": true, "marketing": true});
        let refused = banner_post(&app, Some(ORIGIN), &[], choice(VISITOR, accept.clone(), json!({"gpc": true}))).await;
        assert_eq!(
            (refused.status, refused.json(Value::Null)["error"]["code"].as_str()),
            (409, Some("conflicts_with_gpc"))
        );
        let confirmed = banner_post(
            &app,
            Some(ORIGIN),
            &[],
            choice(VISITOR, accept, json!({"gpc": true, "confirm_over_gpc": true})),
        )
        .await;
        assert_eq!(confirmed.status, 200, "{}", confirmed.text());
        assert_eq!(confirmed.json(Value::Null)["opted_out"], false);
        let rows = app.state.store.subject_consents(&id).await.unwrap();
        assert!(rows.iter().rev().take(3).all(|r| r.answer.conflicts_with_gpc), "recorded with conflicts_with_gpc");
        assert_eq!(
            charter_core::access::decide_purpose(&policy, "audience_measurement", &all, &state(&app).await),
            Ok(())
        );
        // The signal on later pages does not undo the confirmed choice.
        banner_post(&app, Some(ORIGIN), &["Sec-GPC: 1"], choice(VISITOR, json!({}), json!({}))).await;
        assert_eq!(
            charter_core::access::decide_purpose(&policy, "audience_measurement", &all, &state(&app).await),
            Ok(())
        );
    }
}

#[tokio::test]
async fn do_not_sell_opts_out_in_one_step_without_an_account() {
    for db in backends("consent_do_not_sell").await {
        let app = TestApp::spawn(&db).await;
        let page = app.raw("GET", "/do-not-sell", None, None).await;
        assert_eq!(page.status, 200);
        assert!(page.body.as_str().unwrap().contains("<form method=\"post\" action=\"/do-not-sell\">"));
        assert_eq!(app.count("consent_events").await, 0, "showing the page records nothing");

        let addr = app.addr.clone();
        let (with_gpc, posted) = tokio::task::spawn_blocking(move || {
            let gpc = charter_testkit::http::Request {
                headers: &["Sec-GPC: 1"],
                ..charter_testkit::http::Request::new("GET", "/do-not-sell")
            };
            let cookie = format!("Cookie: consent=%7B%22v%22%3A%22{VISITOR}%22%2C%22c%22%3A%7B%7D%7D");
            let lines = [cookie.as_str()];
            let post = charter_testkit::http::Request {
                headers: &lines,
                ..charter_testkit::http::Request::new("POST", "/do-not-sell").form("")
            };
            (charter_testkit::http::send(&addr, &gpc), charter_testkit::http::send(&addr, &post))
        })
        .await
        .unwrap();
        assert_eq!(with_gpc.status, 200);
        assert!(with_gpc.text().contains("Opt-out request honored"));
        assert!(
            with_gpc.header("set-cookie").is_some_and(|c| c.starts_with("consent=")),
            "a new visitor gets the essential cookie"
        );
        assert!(posted.text().contains("Opt-out request honored"));
        assert!(posted.header("set-cookie").is_none(), "a known visitor keeps theirs");
        let rows = app.state.store.visitor_consents(VISITOR).await.unwrap();
        let purposes: Vec<&str> = rows.iter().map(|r| r.answer.purpose.as_str()).collect();
        assert_eq!(purposes, vec!["*sale_or_sharing", "audience_measurement", "youtube_videos"]);
        assert!(rows.iter().all(|r| !r.answer.given && r.answer.source == "preference_center"));
        assert_eq!(app.count("consent_events").await, 6, "three by GPC for the new visitor, three by the button");
    }
}

#[tokio::test]
async fn a_collection_joins_the_visitors_answers_and_honours_gpc() {
    for db in backends("consent_collection_visitor").await {
        let app = TestApp::spawn(&db).await;
        let site = app.key("site", &["registration", "newsletter"], &["signup"]).await;
        let given = banner_post(&app, Some(ORIGIN), &[], choice(VISITOR, json!({"analytics": true}), json!({}))).await;
        assert_eq!(given.status, 200, "{}", given.text());

        // A malformed visitor id is refused and nothing is stored.
        let mut body = signup(EMAIL);
        body["visitor"] = json!("not-a-visitor");
        let refused = app.collect(&site, "signup", &body).await;
        assert_eq!((refused.status, refused.body["error"]["code"].as_str()), (422, Some("bad_visitor")));
        assert_eq!(app.count("subjects").await, 0);

        body["visitor"] = json!(VISITOR);
        let addr = app.addr.clone();
        let (token, text) = (site.clone(), body.to_string());
        let made = tokio::task::spawn_blocking(move || {
            let req = charter_testkit::http::Request {
                headers: &["Sec-GPC: 1"],
                ..charter_testkit::http::Request::new("POST", "/v1/collect/signup").json(&text).token(Some(&token))
            };
            charter_testkit::http::send(&addr, &req)
        })
        .await
        .unwrap();
        assert_eq!(made.status, 201, "{}", made.text());
        let id = made.json(Value::Null)["subject_id"].as_str().unwrap().to_owned();
        let rows = app.state.store.subject_consents(&id).await.unwrap();
        let seen: Vec<(&str, bool, &str)> =
            rows.iter().map(|r| (r.answer.purpose.as_str(), r.answer.given, r.answer.source)).collect();
        assert!(seen.iter().any(|r| r.1 && r.2 == "banner"), "the visitor's answers joined: {seen:?}");
        assert_eq!(seen.last(), Some(&("*sale_or_sharing", false, "gpc")), "{seen:?}");
        let gpc_rows = seen.iter().filter(|r| r.2 == "gpc").count();

        // Another collection with the signal records no second opt-out.
        let again = app.collect(&site, "signup", &signup(EMAIL)).await;
        assert_eq!(again.status, 201);
        assert_eq!(
            app.state.store.subject_consents(&id).await.unwrap().iter().filter(|r| r.answer.source == "gpc").count(),
            gpc_rows
        );
    }
}
