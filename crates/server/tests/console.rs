//! The privacy team's console over HTTP: an account set up from its link with a TOTP
//! second factor, sign-in, the queue, approving, extending and denying with CSRF-checked
//! forms, requests entered by hand, a child's data erased, and an auditor who only reads.

mod common;

use charter_store::admins::Admin;
use common::data::{signup, EMAIL};
use common::{backends, TestApp};
use serde_json::json;

const PASSWORD: &str = "a long console passphrase";

/// An account with a known setup token, as `charter admin add` makes one.
async fn account(app: &TestApp, email: &str, role: &str) -> (Admin, String) {
    let normal = app.state.identifiers.normalise(charter_vault::IdentifierKind::Email, email).unwrap();
    let token = format!("setup-{role}");
    let now = charter_store::now_us();
    let admin = Admin {
        id: uuid::Uuid::new_v4().to_string(),
        email_blind: hex::encode(app.state.keys.blind_indexer().index(&normal)),
        role: role.into(),
        password_hash: None,
        totp_salt: "salt".into(),
        setup_mac: Some(charter_server::routes::admin::mac(&app.state, "admin.setup", &token)),
        setup_until_us: Some(now + 3_600_000_000),
        created_at_us: now,
        disabled_at_us: None,
    };
    (app.state.store.put_admin(&admin).await.unwrap(), token)
}

fn code(app: &TestApp, admin: &Admin) -> String {
    let secret = charter_server::routes::admin::totp_secret(&app.state, admin);
    format!("{:06}", charter_vault::totp::totp(&secret, (charter_store::now_us() / 1_000_000) as u64))
}

/// Sets the account up and signs in; the cookie line and the page's CSRF token.
async fn signed_in(app: &TestApp, email: &str, role: &str) -> (String, String) {
    let (admin, token) = account(app, email, role).await;
    let form = |pw: &str, c: &str| format!("t={token}&password={}&code={c}", pw.replace(' ', "+"));
    let page = app.page("GET", &format!("/admin/setup?t={token}"), None, &[]).await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("id=\"totp-secret\""));
    assert_eq!(app.page("POST", "/admin/setup", Some(&form("short", &code(app, &admin))), &[]).await.status, 400);
    assert_eq!(
        app.page("POST", "/admin/setup", Some(&form(PASSWORD, "000000")), &[]).await.status,
        400,
        "a wrong code"
    );
    assert_eq!(app.page("POST", "/admin/setup", Some(&form(PASSWORD, &code(app, &admin))), &[]).await.status, 200);
    assert_eq!(
        app.page("POST", "/admin/setup", Some(&form(PASSWORD, &code(app, &admin))), &[]).await.status,
        410,
        "a link works once"
    );
    let login =
        |pw: &str, c: &str| format!("email={}&password={}&code={c}", email.replace('@', "%40"), pw.replace(' ', "+"));
    assert_eq!(
        app.page("POST", "/admin/login", Some(&login("wrong password!", &code(app, &admin))), &[]).await.status,
        401
    );
    assert_eq!(app.page("POST", "/admin/login", Some(&login(PASSWORD, "000000")), &[]).await.status, 401);
    let ok = app.page("POST", "/admin/login", Some(&login(PASSWORD, &code(app, &admin))), &[]).await;
    assert_eq!(ok.status, 303);
    let set = ok.header("set-cookie").unwrap().to_owned();
    for flag in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(set.contains(flag), "{set}");
    }
    let cookie = format!("Cookie: {}", set.split(';').next().unwrap());
    let queue = app.page("GET", "/admin", None, &[&cookie]).await.text();
    let at = queue.find("name=\"csrf\" value=\"").unwrap() + 19;
    (cookie, queue[at..at + 64].to_owned())
}

/// Files and verifies a request for EMAIL; its id.
async fn verified(app: &TestApp, body: serde_json::Value) -> String {
    let seen = app.outbox_now().await;
    let filed = app.raw("POST", "/v1/requests", None, Some(&body.to_string())).await;
    let id = filed.body["request_id"].as_str().unwrap().to_owned();
    let fresh = app.new_message(&seen, "Your code").await;
    let at = fresh.find(" is ").unwrap() + 4;
    let code = fresh[at..at + 6].to_owned();
    let got =
        app.raw("POST", &format!("/v1/requests/{id}/verify"), None, Some(&json!({ "code": code }).to_string())).await;
    assert_eq!(got.status, 200, "{}", got.body);
    id
}

async fn status_of(app: &TestApp, id: &str) -> String {
    app.state.store.request(id).await.unwrap().unwrap().status
}

#[tokio::test]
async fn the_team_approves_extends_and_denies_from_the_console() {
    for db in backends("console_flow").await {
        let app = TestApp::spawn(&db).await;
        let site = app.key("site", &["registration"], &["signup"]).await;
        let subject =
            app.collect(&site, "signup", &signup(EMAIL)).await.body["subject_id"].as_str().unwrap().to_owned();
        assert_eq!(app.page("GET", "/admin", None, &[]).await.status, 303, "signed out: to the sign-in page");
        let (cookie, csrf) = signed_in(&app, "dpo@tensoropera.example", "privacy").await;

        let access = verified(&app, json!({ "type": "access", "email": EMAIL })).await;
        let queue = app.page("GET", "/admin", None, &[&cookie]).await.text();
        assert!(queue.contains(&access[..8]) && queue.contains("awaiting_approval"), "{queue}");
        let page = app.page("GET", &format!("/admin/requests/{access}"), None, &[&cookie]).await.text();
        assert!(page.contains("id=\"approve\""));
        let act = |what: &str, extra: &str, token: &str| format!("csrf={token}&action={what}{extra}");
        let path = format!("/admin/requests/{access}/act");
        assert_eq!(app.page("POST", &path, Some(&act("approve", "", "forged")), &[&cookie]).await.status, 403);
        assert_eq!(
            app.page("POST", &path, Some(&act("approve", "", &csrf)), &[]).await.status,
            303,
            "no session: to sign-in"
        );
        assert_eq!(status_of(&app, &access).await, "awaiting_approval", "nothing happened");
        assert_eq!(
            app.page("POST", &path, Some(&act("extend", "", &csrf)), &[&cookie]).await.status,
            400,
            "a reason is needed"
        );
        assert_eq!(
            app.page("POST", &path, Some(&act("extend", "&reason=Many+records", &csrf)), &[&cookie]).await.status,
            303
        );
        let r = app.state.store.request(&access).await.unwrap().unwrap();
        assert!(r.extended_due_at_us.unwrap() > r.due_at_us.unwrap());
        assert_eq!(
            app.page("POST", &path, Some(&act("extend", "&reason=Again", &csrf)), &[&cookie]).await.status,
            409,
            "once only"
        );
        assert_eq!(app.page("POST", &path, Some(&act("approve", "", &csrf)), &[&cookie]).await.status, 303);
        for _ in 0..100 {
            if status_of(&app, &access).await == "completed" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(status_of(&app, &access).await, "completed");

        let erasure = verified(&app, json!({ "type": "erasure", "email": EMAIL })).await;
        let deny = act("deny", "&reason=An+open+dispute+needs+the+records", &csrf);
        assert_eq!(
            app.page("POST", &format!("/admin/requests/{erasure}/act"), Some(&deny), &[&cookie]).await.status,
            303
        );
        let denied = app.state.store.request(&erasure).await.unwrap().unwrap();
        assert_eq!(
            (denied.status.as_str(), denied.reason.as_deref()),
            ("denied", Some("An open dispute needs the records"))
        );

        // A request received by post, entered by hand; a child's data erased.
        let manual = format!(
            "csrf={csrf}&type=objection&email={}&purpose=analytics&received=2026-12-01",
            EMAIL.replace('@', "%40")
        );
        let entered = app.page("POST", "/admin/requests/new", Some(&manual), &[&cookie]).await;
        assert_eq!(entered.status, 303, "{}", entered.text());
        let late = manual.replace("2026-12-01", "2026-10-01").replace("type=objection", "type=portability");
        assert_eq!(app.page("POST", "/admin/requests/new", Some(&late), &[&cookie]).await.status, 303);
        let queue = app.page("GET", "/admin", None, &[&cookie]).await.text();
        assert!(queue.contains("OVERDUE"), "a request received in October is past its month: {queue}");
        let metrics = app.raw("GET", "/metrics", None, None).await.body.as_str().unwrap().to_owned();
        assert!(metrics.contains("charter_requests_overdue{type=\"portability\"} 1"), "{metrics}");
        let future = manual.replace("2026-12-01", "2999-01-01");
        assert_eq!(app.page("POST", "/admin/requests/new", Some(&future), &[&cookie]).await.status, 400);
        let child = app
            .page("POST", "/admin/subjects/child", Some(&format!("csrf={csrf}&subject={subject}")), &[&cookie])
            .await;
        assert_eq!(child.status, 303);
        for _ in 0..100 {
            if app.state.store.subject(&subject).await.unwrap().unwrap().shredded_at_us.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(
            app.state.store.subject(&subject).await.unwrap().unwrap().shredded_at_us.is_some(),
            "the child's data is erased"
        );

        // An auditor reads and never acts.
        let (auditor, auditor_csrf) = signed_in(&app, "auditor@tensoropera.example", "auditor").await;
        assert_eq!(app.page("GET", &format!("/admin/requests/{access}"), None, &[&auditor]).await.status, 200);
        let tried =
            app.page("POST", "/admin/requests/new", Some(&manual.replace(&csrf, &auditor_csrf)), &[&auditor]).await;
        assert_eq!(tried.status, 403);
        let chain = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_log WHERE actor LIKE 'admin:%'")
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
        assert!(chain >= 6, "every admin step is in the audit chain: {chain}");
    }
}
