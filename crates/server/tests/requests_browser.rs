//! The rights journey in a real browser (headless Chromium through chromedriver): a person
//! asks for their data at the privacy center, confirms with the code from the SMTP sink,
//! the privacy team approves in the console (set up with its TOTP second factor), and the
//! person downloads the archive, whose contents are read back. Then the erasure journey:
//! the processor's signed webhook, its signed callback, and the certificate verified.
//! Screenshots are kept under `target/test-artifacts/requests/`.

mod common;

use std::time::{Duration, Instant};

use charter_testkit::receiver::{signature_holds, Receiver};
use charter_testkit::smtp::SmtpSink;
use common::browser::{call, session, start_driver, Session};
use common::data::{signup, EMAIL};
use common::TestApp;
use serde_json::{json, Value};

const REQUIRED: &str = "CHARTER_TEST_BROWSER_REQUIRED";
const ADMIN: &str = "dpo@tensoropera.example";
const PASSWORD: &str = "a long console passphrase";

/// The newest code the sink received for `to`, once `n` messages are there.
fn code_in_sink(sink: &SmtpSink, n: usize) -> String {
    let start = Instant::now();
    loop {
        let got = sink.received();
        if got.len() >= n {
            let m = got.iter().rev().find(|m| m.data.contains("Your code")).expect("a code");
            let at = m.data.find(" is ").unwrap() + 4;
            return m.data[at..at + 6].to_owned();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no code reached the sink");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_text(s: &Session<'_>, url: &str, want: &str) {
    let start = Instant::now();
    loop {
        s.go(url);
        if s.text().contains(want) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{url} never showed {want:?}: {}", s.text());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Files a request of `kind` at the privacy center and confirms it; the status page's URL.
fn ask(s: &Session<'_>, base: &str, sink: &SmtpSink, kind: &str, before: usize) -> String {
    s.go(&format!("{base}/requests"));
    s.click(&format!("type-{kind}"));
    s.type_into("email", EMAIL);
    s.screenshot_in("requests", &format!("{kind}-form"));
    s.click("send");
    s.wait_for("document.getElementById('code')");
    let code = code_in_sink(sink, before + 1);
    s.type_into("code", &code);
    s.click("confirm");
    s.wait_for("document.getElementById('status')");
    s.screenshot_in("requests", &format!("{kind}-status"));
    s.run("return location.href;").as_str().unwrap().to_owned()
}

fn totp_now(secret: &[u8]) -> String {
    format!("{:06}", charter_vault::totp::totp(secret, (charter_store::now_us() / 1_000_000) as u64))
}

/// Sets up the console account from its link.
fn set_up(s: &Session<'_>, base: &str, link: &str, secret: &[u8]) {
    s.go(&format!("{base}{link}"));
    s.type_into("password", PASSWORD);
    s.type_into("code", &totp_now(secret));
    s.screenshot_in("requests", "console-setup");
    s.click("set-up");
    s.wait_for("document.body.innerText.includes('set up')");
}

/// Signs in to the console.
fn sign_in(s: &Session<'_>, base: &str, secret: &[u8]) {
    let code = || totp_now(secret);
    s.go(&format!("{base}/admin/login"));
    s.type_into("email", ADMIN);
    s.type_into("password", PASSWORD);
    s.type_into("code", &code());
    s.click("sign-in");
    s.wait_for("document.body.innerText.includes('Open requests')");
}

fn approve(s: &Session<'_>, base: &str, status_url: &str) {
    let id = status_url.split("/requests/").nth(1).unwrap().split('?').next().unwrap();
    s.go(&format!("{base}/admin/requests/{id}"));
    s.screenshot_in("requests", "console-request");
    s.click("approve");
    s.wait_for("document.getElementById('status')");
}

/// A console account with a setup link, as `charter admin add` makes one.
async fn console_account(app: &TestApp) -> (charter_store::admins::Admin, String) {
    let normal = app.state.identifiers.normalise(charter_vault::IdentifierKind::Email, ADMIN).unwrap();
    let now = charter_store::now_us();
    let admin = charter_store::admins::Admin {
        id: uuid::Uuid::new_v4().to_string(),
        email_blind: hex::encode(app.state.keys.blind_indexer().index(&normal)),
        role: "privacy".into(),
        password_hash: None,
        totp_salt: "browser".into(),
        setup_mac: Some(charter_server::routes::admin::mac(&app.state, "admin.setup", "browser-setup")),
        setup_until_us: Some(now + 3_600_000_000),
        created_at_us: now,
        disabled_at_us: None,
    };
    (app.state.store.put_admin(&admin).await.unwrap(), "/admin/setup?t=browser-setup".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_gets_their_data_and_is_forgotten_through_the_pages() {
    let Some(driver) = start_driver() else {
        assert!(std::env::var(REQUIRED).is_err(), "{REQUIRED} is set but chromedriver does not start");
        eprintln!("notice: browser test skipped; install chromium and chromium-driver (or set {REQUIRED})");
        return;
    };
    let db = charter_testkit::TestDb::sqlite();
    let sink = SmtpSink::start().await;
    let processor = Receiver::start().await;
    let policy = charter_policy::TENSOROPERA.replacen(
        "deletion = { manual = \"https://support.google.com/cloud/contact/dpo\" }",
        &format!("deletion = {{ webhook = \"{}/erase\" }}", processor.base),
        1,
    );
    let app = TestApp::spawn_delivering(&db, &policy, &sink.url()).await;
    let secret =
        charter_delivery::webhook::new_secret(&app.state.store, &app.state.keys, "google_cloud", 0).await.unwrap();
    let site = app.key("site", &["registration"], &["signup"]).await;
    let subject = app.collect(&site, "signup", &signup(EMAIL)).await.body["subject_id"].as_str().unwrap().to_owned();
    let (admin, setup) = console_account(&app).await;
    let totp = charter_server::routes::admin::totp_secret(&app.state, &admin);
    let base = format!("http://{}", app.addr);

    let d = driver.addr.clone();
    let addr = app.addr.clone();
    let (zip, team_id) = tokio::task::block_in_place(|| {
        let person = session(&d);
        let status_url = ask(&person, &base, &sink, "access", 0);
        assert!(person.text().contains("awaiting approval"), "{}", person.text());
        let team = session(&d);
        set_up(&team, &base, &setup, &totp);
        sign_in(&team, &base, &totp);
        approve(&team, &base, &status_url);
        wait_text(&person, &status_url, "Download your data");
        person.screenshot_in("requests", "access-ready");
        let href = person.run("return document.getElementById('download').getAttribute('href');");
        let got =
            charter_testkit::http::send(&addr, &charter_testkit::http::Request::new("GET", href.as_str().unwrap()));
        assert_eq!(got.status, 200);
        call(&d, "DELETE", &person.path(""), &json!({}));
        (got.body, team.id.clone())
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("export.zip"), &zip).unwrap();
    let read = std::process::Command::new("python3")
        .arg("-c")
        .arg("import json,sys,zipfile;z=zipfile.ZipFile(sys.argv[1]);assert z.testzip() is None;print(z.read('data.json').decode())")
        .arg(dir.path().join("export.zip"))
        .output()
        .unwrap();
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    let data: Value = serde_json::from_slice(&read.stdout).unwrap();
    assert_eq!(
        (data["profile"]["email"]["value"].as_str(), data["subject"].as_str()),
        (Some(EMAIL), Some(subject.as_str()))
    );

    // The erasure journey: the processor is told by its signed webhook and confirms.
    let before = sink.received().len();
    let status_url = tokio::task::block_in_place(|| {
        let person = session(&d);
        let status_url = ask(&person, &base, &sink, "erasure", before);
        let team = Session { driver: &d, id: team_id.clone() };
        approve(&team, &base, &status_url);
        wait_text(&person, &status_url, "completed");
        person.screenshot_in("requests", "erasure-done");
        status_url
    });
    let start = Instant::now();
    let hook = loop {
        if let Some(h) = processor.requests().into_iter().find(|r| r.path == "/erase") {
            break h;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the processor was never told");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(signature_holds(&secret, hook.header("charter-signature").unwrap(), &hook.body), "signed with its secret");
    let delivery = hook.header("charter-delivery").unwrap().to_owned();
    let body = json!({ "delivery": delivery, "status": "completed" }).to_string();
    let now = charter_store::now_us() / 1_000_000;
    let signature = charter_delivery::webhook::signature(secret.as_bytes(), now, body.as_bytes());
    let forged = charter_delivery::webhook::signature(b"not the secret", now, body.as_bytes());
    for (header, want) in [(forged, 401), (signature, 200)] {
        let line = format!("Charter-Signature: {header}");
        let lines = [line.as_str()];
        let req = charter_testkit::http::Request {
            headers: &lines,
            ..charter_testkit::http::Request::new("POST", "/v1/processors/google_cloud/callback").json(&body)
        };
        assert_eq!(charter_testkit::http::send(&app.addr, &req).status, want);
    }
    let id = status_url.split("/requests/").nth(1).unwrap().split('?').next().unwrap().to_owned();
    let tasks = app.state.store.processor_tasks(&id).await.unwrap();
    assert!(tasks.iter().any(|t| t.recipient == "google_cloud" && t.status == "completed"), "{tasks:?}");
    let token = status_url.split("t=").nth(1).unwrap();
    let cert = charter_testkit::http::send(
        &app.addr,
        &charter_testkit::http::Request::new("GET", &format!("/requests/{id}/certificate?t={token}")),
    )
    .json(Value::Null);
    let verifier = app.state.keys.checkpoint_signer().verifier();
    assert!(verifier.verify(
        cert["signed"].as_str().unwrap().as_bytes(),
        &hex::decode(cert["signature"].as_str().unwrap()).unwrap()
    ));
    assert!(app.state.store.subject(&subject).await.unwrap().unwrap().shredded_at_us.is_some(), "erased");
}
