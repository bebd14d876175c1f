//! The preference center: a one-time code by email proves who someone is (the same
//! answer whether or not the address is known), then their choices take effect at once,
//! go to the ledger and are logged as completed requests.

mod common;

use common::data::{assert_no_plaintext, signup, EMAIL};
use common::{backends, TestApp};

/// The value of the hidden field `name` in a page.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = page.find(&marker).unwrap_or_else(|| panic!("no field {name} in {page}")) + marker.len();
    page[at..].split('"').next().unwrap().to_owned()
}

/// The six-digit code in a message.
fn code_in(message: &str) -> String {
    let at = message.find(" is ").expect("the message gives the code") + 4;
    message[at..at + 6].to_owned()
}

/// The `Cookie` line that sends back the cookie a response set.
fn cookie_line(set_cookie: &str) -> String {
    format!("Cookie: {}", set_cookie.split(';').next().unwrap())
}

async fn signed_up(app: &TestApp) -> String {
    let site = app.key("site", &["registration", "newsletter", "direct_marketing"], &["signup"]).await;
    let made = app.collect(&site, "signup", &signup(EMAIL)).await;
    assert_eq!(made.status, 201, "{}", made.body);
    made.body["subject_id"].as_str().unwrap().to_owned()
}

/// Asks for a code for `email`; returns the page and its challenge.
async fn ask(app: &TestApp, email: &str) -> (u16, String, String) {
    let form = format!("email={}", email.replace('@', "%40"));
    let got = app.page("POST", "/preferences/code", Some(&form), &[]).await;
    let text = got.text();
    let challenge = if got.status == 200 { hidden(&text, "challenge") } else { String::new() };
    (got.status, text, challenge)
}

async fn verify(app: &TestApp, challenge: &str, code: &str) -> charter_testkit::http::Response {
    app.page("POST", "/preferences/verify", Some(&format!("challenge={challenge}&code={code}")), &[]).await
}

#[tokio::test]
async fn a_code_opens_the_choices_and_each_change_takes_effect_at_once() {
    for db in backends("preferences_flow").await {
        let app = TestApp::spawn(&db).await;
        let id = signed_up(&app).await;
        let reader = app.key("reader", &["newsletter", "analytics", "direct_marketing"], &[]).await;
        assert!(app.page("GET", "/preferences", None, &[]).await.text().contains("name=\"email\""));

        let (status, _, challenge) = ask(&app, EMAIL).await;
        assert_eq!(status, 200);
        let message = app.outbox(1).await.remove(0);
        assert!(message.contains(&format!("To: {EMAIL}")), "{message}");
        let code = code_in(&message);
        let wrong = if code == "000000" { "000001" } else { "000000" };
        assert_eq!(verify(&app, &challenge, wrong).await.status, 400, "a wrong code");
        let opened = verify(&app, &challenge, &code).await;
        assert_eq!(opened.status, 303, "{}", opened.text());
        let set = opened.header("set-cookie").unwrap().to_owned();
        for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/preferences"] {
            assert!(set.contains(flag), "{set}");
        }
        assert_eq!(verify(&app, &challenge, &code).await.status, 400, "a code is spent once");

        let cookie = cookie_line(&set);
        let page = app.page("GET", "/preferences", None, &[&cookie]).await.text();
        assert!(page.contains("id=\"consent-newsletter\" name=\"consent\" value=\"newsletter\" checked"), "{page}");
        let token = hidden(&page, "form");

        // Refused forms change nothing.
        let before = app.count("consent_events").await;
        let no_session = app.page("POST", "/preferences", Some(&format!("form={token}")), &[]).await;
        assert_eq!(no_session.status, 401);
        assert_eq!(app.page("POST", "/preferences", Some("form=forged"), &[&cookie]).await.status, 403);
        let odd =
            app.page("POST", "/preferences", Some(&format!("form={token}&consent=registration")), &[&cookie]).await;
        assert_eq!(odd.status, 400, "registration does not rest on consent: {}", odd.text());
        assert_eq!(app.count("consent_events").await, before);

        // Withdraw the newsletter (unticked), object to analytics, opt out of sale.
        let saved = app
            .page("POST", "/preferences", Some(&format!("form={token}&object=analytics&opt_out=on")), &[&cookie])
            .await;
        assert_eq!(saved.status, 200);
        assert!(saved.text().contains("Saved."));
        let newsletter = app.read(&reader, &id, "purpose=newsletter&fields=email").await;
        let analytics = app.read(&reader, &id, "purpose=analytics&fields=email").await;
        assert_eq!(newsletter.body["error"]["code"], "consent_missing", "{}", newsletter.body);
        assert_eq!(analytics.body["error"]["code"], "objected", "{}", analytics.body);
        let requests: Vec<(String, String, String)> =
            sqlx::query_as("SELECT type, status, source FROM requests ORDER BY type")
                .fetch_all(app.state.store.pool())
                .await
                .unwrap();
        let kinds: Vec<&str> = requests.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(kinds, ["ccpa_opt_out", "consent_withdrawal", "objection"]);
        assert!(requests.iter().all(|r| r.1 == "completed" && r.2 == "preference_center"));
        let rows = app.state.store.subject_consents(&id).await.unwrap();
        let last = &rows[rows.len() - 1].answer;
        assert_eq!((last.source, last.ip_prefix.as_deref()), ("preference_center", Some("127.0.0.0/24")));

        // Direct marketing objected to, as a whole; then the analytics objection lifted.
        let page = app.page("GET", "/preferences", None, &[&cookie]).await.text();
        assert!(page.contains("id=\"object-analytics\" name=\"object\" value=\"analytics\" checked"));
        let again = format!("form={token}&consent=direct_marketing&no_marketing=on&opt_out=on");
        assert_eq!(app.page("POST", "/preferences", Some(&again), &[&cookie]).await.status, 200);
        let marketing = app.read(&reader, &id, "purpose=direct_marketing&fields=email").await;
        assert_eq!(marketing.body["error"]["code"], "objected", "consent given, but the objection wins");
        let lifted = app.read(&reader, &id, "purpose=analytics&fields=email").await;
        assert_eq!(lifted.body["error"]["code"], "category_not_in_purpose", "no longer objected: {}", lifted.body);
        assert_eq!(app.state.store.objections(&id).await.unwrap(), ["direct_marketing", "newsletter"]);
        assert_eq!(app.count("requests").await, 4, "the marketing objection is one more request");

        assert_no_plaintext(&db, &[EMAIL]).await;
    }
}

#[tokio::test]
async fn unknown_addresses_get_the_same_answer_and_codes_are_limited() {
    for db in backends("preferences_unknown").await {
        let app = TestApp::spawn(&db).await;
        signed_up(&app).await;
        let (known_status, known_page, known_challenge) = ask(&app, EMAIL).await;
        let (unknown_status, unknown_page, unknown_challenge) = ask(&app, "nobody@example.org").await;
        assert_eq!((known_status, unknown_status), (200, 200));
        assert_eq!(
            known_page.replace(&known_challenge, "CHALLENGE"),
            unknown_page.replace(&unknown_challenge, "CHALLENGE"),
            "the same page, known or not"
        );
        assert_eq!(app.outbox(1).await.len(), 1, "only the known address gets a message");
        for code in ["000000", "123456", "999999"] {
            assert_eq!(verify(&app, &unknown_challenge, code).await.status, 400, "an unknown address never verifies");
        }

        // Three wrong attempts use a code up.
        let code = code_in(&app.outbox(1).await[0]);
        let wrong = if code == "000000" { "000001" } else { "000000" };
        for _ in 0..3 {
            assert_eq!(verify(&app, &known_challenge, wrong).await.status, 400);
        }
        assert_eq!(verify(&app, &known_challenge, &code).await.status, 400, "no attempts left");

        // Malformed input is refused plainly.
        assert_eq!(verify(&app, "not-a-challenge", "12").await.status, 400);
        let (bad_status, bad_page, _) = ask(&app, "not an address").await;
        assert_eq!(bad_status, 400);
        assert!(bad_page.contains("That email address"), "{bad_page}");

        // Five codes per address per hour, the same for a known and an unknown address.
        for email in [EMAIL, "nobody@example.org"] {
            let mut statuses = Vec::new();
            for _ in 0..5 {
                statuses.push(ask(&app, email).await.0);
            }
            assert_eq!(statuses, [200, 200, 200, 200, 429], "{email}: one was asked for already");
        }
    }
}
