//! The cookie banner in a real browser (headless Chromium through chromedriver), on a
//! test site of another origin that includes it, a non-essential tag and an embed:
//! accept all, reject all, a granular choice, and Global Privacy Control. Each case
//! checks the cookies set, whether the tag ran, the embed's placeholder and the ledger;
//! a screenshot of each is kept under `target/test-artifacts/`.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::browser::{call, session, start_driver, Session};
use common::TestApp;
use serde_json::{json, Value};

const REQUIRED: &str = "CHARTER_TEST_BROWSER_REQUIRED";

/// A page of the test site: the banner, a measurement tag, a video embed.
fn site_page(charter: &str, gpc: bool) -> String {
    let gpc = if gpc {
        "<script>Object.defineProperty(navigator, 'globalPrivacyControl', { get: () => true });</script>"
    } else {
        ""
    };
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Site</title>{gpc}\
         <script src=\"http://{charter}/consent.js\" async></script></head><body>\
         <a href=\"#cookie-settings\">Cookie settings</a>\
         <script type=\"text/plain\" data-category=\"analytics\">document.cookie = '_clck=1; path=/'; window.tagRan = true;</script>\
         <iframe id=\"video\" data-src=\"/video\" data-category=\"marketing\" title=\"Video\"></iframe></body></html>"
    )
}

/// Serves the test site on a port of its own: `/gpc` with the GPC signal on, `/video`
/// as the embed, anything else as the plain page.
fn serve_site(listener: TcpListener, charter: String) -> String {
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]);
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let body = match path.as_str() {
                "/video" => "<p>video</p>".to_owned(),
                "/gpc" => site_page(&charter, true),
                _ => site_page(&charter, false),
            };
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

/// The visitor id in the banner's `consent` cookie.
fn visitor(s: &Session<'_>) -> String {
    let cookie = s.run("return decodeURIComponent((document.cookie.match(/(?:^|; )consent=([^;]*)/) || [])[1] || '');");
    let parsed: Value = serde_json::from_str(cookie.as_str().unwrap()).expect("the consent cookie holds the choice");
    parsed["v"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_banner_blocks_until_asked_and_records_each_choice() {
    let Some(driver) = start_driver() else {
        assert!(std::env::var(REQUIRED).is_err(), "{REQUIRED} is set but chromedriver does not start");
        eprintln!("notice: browser test skipped; install chromium and chromium-driver (or set {REQUIRED})");
        return;
    };
    let db = charter_testkit::TestDb::sqlite();
    // The site listens first, so the policy can list its origin.
    let placeholder = "\"https://www.tensoropera.ai\"]";
    let site_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let site_port = site_listener.local_addr().unwrap().port();
    let policy = charter_policy::TENSOROPERA
        .replace(placeholder, &format!("\"https://www.tensoropera.ai\", \"http://127.0.0.1:{site_port}\"]"));
    let app = TestApp::spawn_with_policy(&db, &policy).await;
    let charter = app.addr.clone();
    let site = format!("http://{}", serve_site(site_listener, charter.clone()));
    let d = driver.addr.clone();
    let visitors = tokio::task::spawn_blocking(move || {
        let mut visitors = Vec::new();
        for case in ["accept", "reject", "granular", "gpc"] {
            let s = session(&d);
            s.go(&format!("{site}/{}", if case == "gpc" { "gpc" } else { "" }));
            s.wait_for("document.getElementById('charter-banner')");
            assert_eq!(s.run("return !!window.tagRan;"), json!(false), "{case}: no tag before a choice");
            assert!(
                s.run("return document.getElementById('video').getAttribute('src');").is_null(),
                "{case}: the embed waits"
            );
            assert_eq!(s.run("return document.querySelectorAll('.charter-placeholder').length;"), json!(1));
            assert!(!s.cookies().iter().any(|c| c == "_clck"), "{case}: no analytics cookie before a choice");
            if case == "gpc" {
                assert!(s
                    .run("return document.getElementById('charter-banner').textContent;")
                    .as_str()
                    .unwrap()
                    .contains("Opt-out request honored"));
            }
            s.screenshot(&format!("{case}-asked"));
            match case {
                "accept" => s.click("charter-accept"),
                "reject" => s.click("charter-reject"),
                "granular" => {
                    s.click("charter-choose");
                    s.click("charter-analytics");
                    s.click("charter-save");
                }
                _ => {
                    s.run("window.confirm = function () { return false; };");
                    s.click("charter-accept");
                }
            }
            s.wait_for("!document.getElementById('charter-banner')");
            // With GPC on and the conflict not confirmed, both selling categories stay off
            // (TensorOpera's analytics and marketing both share data).
            let analytics = case == "accept" || case == "granular";
            let marketing = case == "accept";
            s.wait_for(if analytics { "window.tagRan === true" } else { "true" });
            assert_eq!(s.run("return !!window.tagRan;"), json!(analytics), "{case}: the tag");
            assert_eq!(s.cookies().iter().any(|c| c == "_clck"), analytics, "{case}: the tag's cookie");
            assert!(s.cookies().iter().any(|c| c == "consent"), "{case}: the essential cookie");
            let src = s.run("return document.getElementById('video').getAttribute('src');");
            assert_eq!(src.as_str() == Some("/video"), marketing, "{case}: the embed");
            assert_eq!(
                s.run("return document.querySelectorAll('.charter-placeholder').length;"),
                json!(u8::from(!marketing))
            );
            s.screenshot(&format!("{case}-chosen"));
            visitors.push((case, visitor(&s)));
            call(&d, "DELETE", &s.path(""), &json!({}));
        }
        visitors
    })
    .await
    .unwrap();
    // The ledger holds what each visitor chose (the banner's request may land just after).
    for (case, visitor) in visitors {
        let expected: &[(&str, bool)] = match case {
            "accept" => &[("audience_measurement", true), ("youtube_videos", true)],
            "reject" => &[("audience_measurement", false), ("youtube_videos", false)],
            "granular" => &[("audience_measurement", true), ("youtube_videos", false)],
            _ => &[("*sale_or_sharing", false), ("audience_measurement", false), ("youtube_videos", false)],
        };
        let start = Instant::now();
        loop {
            let rows = app.state.store.visitor_consents(&visitor).await.unwrap();
            let now = charter_core::consent::fold(rows.iter().map(|r| (r.answer.purpose.as_str(), r.answer.given)));
            let want: std::collections::BTreeMap<String, bool> =
                expected.iter().map(|(p, g)| ((*p).to_owned(), *g)).collect();
            if now == want {
                assert!(
                    rows.iter().all(|r| r.answer.agent.as_deref().is_some_and(|a| a.starts_with("Chrome"))),
                    "{case}"
                );
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "{case}: the ledger holds {now:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
