//! Consent end to end through the binary: a campaign queued by `charter mail campaign`,
//! sent by a running server to an SMTP sink, unsubscribed from by a POST to its
//! List-Unsubscribe URL, after which the purpose no longer reads the person.

mod common;

use std::time::{Duration, Instant};

use charter_testkit::http::{send, Request};
use charter_testkit::smtp::SmtpSink;
use common::{request, run, Server};

const ADDRESS: &str = "grace.hopper@cobol.example";
const OTHER: &str = "alan.turing@bombe.example";

fn text(o: &std::process::Output) -> (i32, String, String) {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (o.status.code().unwrap_or(-1), s(&o.stdout), s(&o.stderr))
}

fn collect(addr: &str, token: &str, email: &str, newsletter: bool) -> String {
    let body = serde_json::json!({
        "subject": { "email": email },
        "fields": { "name": "Someone", "email": email, "password": "a long enough passphrase 1", "age_attestation": true },
        "consents": { "newsletter": newsletter },
    });
    let made = request(addr, "POST", "/v1/collect/signup", Some(token), &body.to_string());
    assert_eq!(made.status, 201, "{}", made.text());
    made.json(serde_json::Value::Null)["subject_id"].as_str().unwrap().to_owned()
}

#[test]
fn a_campaign_reaches_those_who_consented_and_one_click_unsubscribes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sink = rt.block_on(SmtpSink::start());
    let cwd = tempfile::tempdir().unwrap();
    let key = run(
        cwd.path(),
        &["apikey", "create", "--name", "site", "--purposes", "registration,newsletter", "--points", "signup"],
    );
    let (code, token, stderr) = text(&key);
    assert_eq!(code, 0, "{stderr}");
    let token = token.trim().to_owned();
    let smtp = ["--smtp-url", &sink.url(), "--mail-from", "privacy@tensoropera.example", "--job-poll", "0.05"];
    let server = Server::start(cwd.path(), &smtp);
    let yes = collect(&server.addr, &token, ADDRESS, true);
    collect(&server.addr, &token, OTHER, false);

    let template = cwd.path().join("news.md");
    std::fs::write(&template, "# News\n\nWe shipped **federated** training.\n").unwrap();
    let public = format!("http://{}", server.addr);
    let campaign = ["mail", "campaign", "--purpose", "newsletter", "--subject", "December news"];
    let args = [&campaign[..], &["--template", template.to_str().unwrap(), "--public-url", &public]].concat();
    let (code, stdout, stderr) = text(&run(cwd.path(), &args));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("queued 1 messages; 1 subjects not reachable"), "{stdout}");
    let (_, again, _) = text(&run(cwd.path(), &args));
    assert!(again.contains("queued 0 messages"), "the same campaign queues nothing twice: {again}");

    let start = Instant::now();
    while sink.received().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(30), "the campaign was not sent");
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = sink.received().remove(0);
    assert!(got.to.len() == 1 && got.to[0].contains(ADDRESS), "{:?}", got.to);
    assert_eq!(got.header("List-Unsubscribe-Post").as_deref(), Some("List-Unsubscribe=One-Click"));
    let url = got.header("List-Unsubscribe").expect("a List-Unsubscribe header");
    let url = url.trim_matches(|c| c == '<' || c == '>').to_owned();
    let path = url.strip_prefix(&public).expect("under the public URL").to_owned();
    assert!(path.starts_with("/unsubscribe/") && !path.contains(&yes), "the link names nobody in clear: {path}");
    assert!(got.data.contains("multipart/alternative") && got.data.contains("<strong>federated</strong>"));

    // The newsletter reads the person until they unsubscribe.
    let read = format!("/v1/subjects/{yes}/data?purpose=newsletter&fields=email");
    assert_eq!(request(&server.addr, "GET", &read, Some(&token), "").status, 200);
    let page = send(&server.addr, &Request::new("GET", &path));
    assert_eq!(page.status, 200);
    assert!(page.text().contains("List-Unsubscribe") && page.text().contains("<form method=\"post\""));
    assert_eq!(request(&server.addr, "GET", &read, Some(&token), "").status, 200, "a GET alone unsubscribes nobody");

    let forged = format!("{}x", &path);
    assert_eq!(send(&server.addr, &Request::new("POST", &forged).form("List-Unsubscribe=One-Click")).status, 404);
    assert_eq!(send(&server.addr, &Request::new("POST", &path).form("nothing=here")).status, 400);
    let one_click = send(&server.addr, &Request::new("POST", &path).form("List-Unsubscribe=One-Click"));
    assert_eq!(one_click.status, 200, "{}", one_click.text());
    assert!(one_click.header("location").is_none(), "no redirect");
    let refused = request(&server.addr, "GET", &read, Some(&token), "");
    assert_eq!(
        (refused.status, refused.json(serde_json::Value::Null)["error"]["code"].clone()),
        (403, "consent_missing".into())
    );
    // Again: still 200, and nothing more recorded.
    assert_eq!(send(&server.addr, &Request::new("POST", &path).form("List-Unsubscribe=One-Click")).status, 200);
    let history = request(&server.addr, "GET", &format!("/v1/subjects/{yes}/consents"), Some(&token), "");
    let rows = history.json(serde_json::Value::Null)["history"].as_array().unwrap().clone();
    let sources: Vec<&str> = rows.iter().map(|r| r["source"].as_str().unwrap()).collect();
    assert_eq!(sources, vec!["collection", "unsubscribe"], "one withdrawal however many clicks");

    let (status, logs) = server.stop();
    assert!(status.success(), "{logs}");
    assert!(!logs.contains(ADDRESS) && !logs.contains(OTHER));
}
