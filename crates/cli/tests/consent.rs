//! Consent end to end through the binary: a campaign queued by `charter mail campaign`,
//! sent by a running server to an SMTP sink, unsubscribed from by a POST to its
//! List-Unsubscribe URL, after which the purpose no longer reads the person.

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
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
    // Signed with an Ed25519 DKIM key, checked below as a receiving server would.
    let seed = [7u8; 32];
    let key_file = cwd.path().join("dkim.key");
    std::fs::write(&key_file, base64::engine::general_purpose::STANDARD.encode(seed)).unwrap();
    let dkim =
        ["--dkim-key", key_file.to_str().unwrap(), "--dkim-selector", "mail", "--dkim-domain", "tensoropera.example"];
    let smtp = ["--smtp-url", &sink.url(), "--mail-from", "privacy@tensoropera.example", "--job-poll", "0.05"];
    let server = Server::start(cwd.path(), &[&smtp[..], &dkim[..]].concat());
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
    let public_key = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    let signed = charter_testkit::dkim::verify_ed25519(&got.data, &public_key).expect("the DKIM signature verifies");
    for header in ["List-Unsubscribe", "List-Unsubscribe-Post", "From", "Subject"] {
        assert!(signed.iter().any(|h| h.eq_ignore_ascii_case(header)), "{header} is signed: {signed:?}");
    }
    let altered = got.data.replacen("List-Unsubscribe: <", "List-Unsubscribe: <x", 1);
    assert!(charter_testkit::dkim::verify_ed25519(&altered, &public_key).is_err(), "an altered header fails");

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

/// Polls `f` every 50 ms until it is true; panics with `what` after 30 s.
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(30), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_material_policy_change_lapses_widened_consent_and_tells_everyone() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sink = rt.block_on(SmtpSink::start());
    let cwd = tempfile::tempdir().unwrap();
    let (old, new) = (cwd.path().join("policy.toml"), cwd.path().join("widened.toml"));
    std::fs::write(&old, charter_policy::TENSOROPERA).unwrap();
    let widened = charter_policy::TENSOROPERA.replacen(
        "categories = [\"user.name\", \"user.contact.email\"]\nbusiness_purpose = \"Marketing our own",
        "categories = [\"user.name\", \"user.contact.email\", \"user.behavior.usage\"]\nbusiness_purpose = \"Marketing our own",
        1,
    );
    assert_ne!(widened, charter_policy::TENSOROPERA, "the newsletter's categories were found");
    std::fs::write(&new, widened).unwrap();
    let key = ["apikey", "create", "--name", "site", "--purposes", "registration,newsletter", "--points", "signup"];
    let (code, token, stderr) = text(&run(cwd.path(), &key));
    assert_eq!(code, 0, "{stderr}");
    let token = token.trim().to_owned();
    let smtp = ["--smtp-url", &sink.url(), "--mail-from", "privacy@tensoropera.example", "--job-poll", "0.05"];
    let server = Server::start(cwd.path(), &[&smtp[..], &["--policy", old.to_str().unwrap()]].concat());
    let subscriber = collect(&server.addr, &token, ADDRESS, true);
    collect(&server.addr, &token, OTHER, false);
    let read = format!("/v1/subjects/{subscriber}/data?purpose=newsletter&fields=email");
    assert_eq!(request(&server.addr, "GET", &read, Some(&token), "").status, 200);

    // The first publication puts the running file in force; the server goes on as it was.
    let (code, stdout, stderr) = text(&run(cwd.path(), &["policy", "publish", old.to_str().unwrap()]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("becomes the policy in force"), "{stdout}");

    // A material change needs --yes; an invalid file is refused.
    let publish = ["policy", "publish", new.to_str().unwrap()];
    let (code, stdout, stderr) = text(&run(cwd.path(), &publish));
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(stdout.contains("[material] + purposes.newsletter.categories: \"user.behavior.usage\""), "{stdout}");
    assert!(stderr.contains("--yes"), "{stderr}");
    let broken = cwd.path().join("broken.toml");
    std::fs::write(&broken, "version = ").unwrap();
    assert_eq!(run(cwd.path(), &["policy", "publish", broken.to_str().unwrap()]).status.code(), Some(2));
    assert_eq!(request(&server.addr, "GET", &read, Some(&token), "").status, 200, "nothing was published");

    let (code, stdout, stderr) = text(&run(cwd.path(), &[&publish[..], &["--yes"]].concat()));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("consent lapsed for purposes whose scope grew (newsletter): 1 answers"), "{stdout}");
    assert!(stdout.contains("queued 2 notices"), "everyone with an address is told: {stdout}");

    // The running server takes the new version within seconds.
    wait_for("the server did not pick up the published policy", || {
        send(&server.addr, &Request::new("GET", "/")).text().contains("We updated this policy on 2024-03-29")
    });
    let notice = send(&server.addr, &Request::new("GET", "/")).text();
    assert!(notice.contains("purpose `newsletter` uses more personal data"), "the change in plain words");
    let refused = request(&server.addr, "GET", &read, Some(&token), "");
    assert_eq!(refused.json(serde_json::Value::Null)["error"]["code"], "consent_missing", "{}", refused.text());
    let consents = format!("/v1/subjects/{subscriber}/consents");
    let history = request(&server.addr, "GET", &consents, Some(&token), "").json(serde_json::Value::Null);
    let last = history["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["source"].as_str(), last["given"].as_bool()), (Some("policy_change"), Some(false)));
    assert_eq!(request(&server.addr, "POST", &consents, Some(&token), r#"{"newsletter": true}"#).status, 200);
    assert_eq!(request(&server.addr, "GET", &read, Some(&token), "").status, 200, "consent given again covers it");

    wait_for("the notices were not sent", || sink.received().len() >= 2);
    let mut to: Vec<String> = sink.received().iter().map(|m| m.to.join(",")).collect();
    to.sort();
    assert!(to[0].contains(OTHER) && to[1].contains(ADDRESS), "{to:?}");
    let notice_mail = &sink.received()[0];
    assert!(notice_mail.header("Subject").unwrap().contains("We updated our privacy policy"));
    assert!(notice_mail.data.contains("uses more personal data"));

    // Publishing again finds it in force and queues nobody twice.
    let (code, stdout, _) = text(&run(cwd.path(), &[&publish[..], &["--yes"]].concat()));
    assert_eq!(code, 0);
    assert!(stdout.contains("is already in force") && !stdout.contains("queued"), "{stdout}");

    let (status, logs) = server.stop();
    assert!(status.success(), "{logs}");
    assert!(!logs.contains(ADDRESS) && !logs.contains(OTHER));
    // A server started on a file that is not the published version refuses to start.
    let stale = run(cwd.path(), &["serve", "--listen", "127.0.0.1:0", "--policy", old.to_str().unwrap()]);
    let (code, _, stderr) = text(&stale);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("is not the policy in force") && stderr.contains("purposes.newsletter.categories"),
        "{stderr}"
    );
}
