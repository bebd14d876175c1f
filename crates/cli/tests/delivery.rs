//! Delivery through the binary: `mail test`, the outbox, `jobs run | list | retry`,
//! webhook secrets, key rotation with queued messages, and `charter serve` killed with
//! SIGKILL mid-batch twenty times while it sends.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use charter_testkit::smtp::SmtpSink;
use common::{files, run, Server};

const ADDRESS: &str = "ada.lovelace@analytical.example";

fn out(o: &std::process::Output) -> (i32, String, String) {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (o.status.code().unwrap_or(-1), s(&o.stdout), s(&o.stderr))
}

/// A data directory made by creating an API key.
fn data_dir(cwd: &Path) {
    let made = run(cwd, &["apikey", "create", "--name", "setup", "--purposes", "support"]);
    assert!(made.status.success(), "{}", out(&made).2);
}

fn smtp_flags(sink: &SmtpSink) -> Vec<String> {
    vec!["--smtp-url".into(), sink.url(), "--mail-from".into(), "privacy@tensoropera.example".into()]
}

fn args<'a>(fixed: &[&'a str], more: &'a [String]) -> Vec<&'a str> {
    fixed.iter().copied().chain(more.iter().map(String::as_str)).collect()
}

#[test]
fn mail_test_the_outbox_and_the_queue_through_the_binary() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sink = rt.block_on(SmtpSink::start());
    let cwd = tempfile::tempdir().unwrap();
    data_dir(cwd.path());
    let smtp = smtp_flags(&sink);

    // Sent now, through SMTP, with the server's reply; links start with the public URL.
    let linked = args(&["mail", "test", "--to", ADDRESS, "--public-url", "https://privacy.example.com/"], &smtp);
    let (code, stdout, stderr) = out(&run(cwd.path(), &linked));
    assert_eq!((code, stdout.trim()), (0, "sent: smtp 250"), "{stderr}");
    assert_eq!(sink.received().len(), 1);
    assert!(sink.received()[0].data.contains("Our privacy notice: https://privacy.example.com/\r\n"));
    let bad_url = args(&["mail", "test", "--to", ADDRESS, "--public-url", "ftp://x"], &smtp);
    assert!(out(&run(cwd.path(), &bad_url)).2.contains("--public-url must be an http:// or https:// URL"));
    assert!(!stderr.contains(ADDRESS), "the address is not echoed: {stderr}");

    // Refused, unreachable, and bad input: each a clear reason and a non-zero exit.
    sink.refuse_recipients(Some(550));
    let (code, _, stderr) = out(&run(cwd.path(), &args(&["mail", "test", "--to", ADDRESS], &smtp)));
    assert_eq!(code, 1);
    assert!(stderr.contains("not sent: smtp 550"), "{stderr}");
    sink.refuse_recipients(None);
    let closed = ["--smtp-url", "smtp://127.0.0.1:1", "--mail-from", "privacy@tensoropera.example"];
    let (code, _, stderr) = out(&run(cwd.path(), &[&["mail", "test", "--to", ADDRESS][..], &closed[..]].concat()));
    assert_eq!(code, 1);
    assert!(stderr.contains("not sent: smtp unreachable"), "{stderr}");
    let (code, _, stderr) = out(&run(cwd.path(), &args(&["mail", "test", "--to", "not an address"], &smtp)));
    assert_eq!(code, 2);
    assert!(stderr.contains("--to is not an email address") && !stderr.contains("not an address\""), "{stderr}");
    let (code, _, stderr) = out(&run(cwd.path(), &["mail", "test", "--to", ADDRESS, "--smtp-url", &sink.url()]));
    assert_ne!(code, 0);
    assert!(stderr.contains("--smtp-url needs --mail-from"), "{stderr}");

    // Without SMTP, the message is sealed in the outbox; the operator opens it.
    let (code, stdout, _) = out(&run(cwd.path(), &["mail", "test", "--to", ADDRESS]));
    assert_eq!((code, stdout.trim()), (0, "sent: outbox"));
    let (_, listed, _) = out(&run(cwd.path(), &["outbox", "list"]));
    let id = listed.lines().nth(1).and_then(|l| l.split('\t').next()).expect("one message listed").to_owned();
    let (code, shown, _) = out(&run(cwd.path(), &["outbox", "show", &id]));
    assert_eq!(code, 0);
    assert!(shown.contains(&format!("To: {ADDRESS}")) && shown.contains("Subject: charter test message"), "{shown}");
    assert_eq!(out(&run(cwd.path(), &["outbox", "show", "no-such-id"])).0, 2);

    // Queued, then sent by a foreground worker; listed by state.
    let (code, stdout, _) = out(&run(cwd.path(), &args(&["mail", "test", "--to", ADDRESS, "--queue"], &smtp)));
    assert_eq!(code, 0);
    let job = stdout.trim().strip_prefix("queued job ").expect("the job's id").to_owned();
    let (_, queued, _) = out(&run(cwd.path(), &["jobs", "list", "--state", "queued"]));
    assert!(queued.contains(&job) && queued.contains("mail.test"), "{queued}");
    let (code, summary, stderr) = out(&run(cwd.path(), &args(&["jobs", "run", "--until-empty"], &smtp)));
    assert_eq!(code, 0, "{stderr}");
    assert!(summary.contains("sent 1"), "{summary}");
    assert_eq!(sink.received().len(), 2);
    let (_, done, _) = out(&run(cwd.path(), &["jobs", "list", "--state", "done"]));
    assert!(done.contains(&job), "{done}");
    assert_eq!(out(&run(cwd.path(), &["jobs", "retry", &job])).0, 2, "only a dead job is requeued");

    // Webhook secrets only for recipients reached by webhook.
    assert_eq!(out(&run(cwd.path(), &["recipients", "secret", "google_cloud"])).0, 2);
    assert_eq!(out(&run(cwd.path(), &["recipients", "secret", "nobody"])).0, 2);

    // A queued message survives a key rotation: its key is carried to the new KEK.
    let (_, stdout, _) = out(&run(cwd.path(), &args(&["mail", "test", "--to", ADDRESS, "--queue"], &smtp)));
    assert!(stdout.starts_with("queued job"));
    let rotated = run(cwd.path(), &["keys", "rotate"]);
    assert!(rotated.status.success(), "{}", out(&rotated).2);
    let (code, shown, _) = out(&run(cwd.path(), &["outbox", "show", &id]));
    assert!(code == 0 && shown.contains(ADDRESS), "the outbox opens after the rotation");
    let (code, summary, stderr) = out(&run(cwd.path(), &args(&["jobs", "run", "--until-empty"], &smtp)));
    assert_eq!(code, 0, "{stderr}");
    assert!(summary.contains("sent 1, retried 0, dead 0"), "{summary}");
    assert_eq!(sink.received().len(), 3);

    // Nothing of the address lies on disk in clear.
    for f in files(&cwd.path().join("charter-data")) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(!bytes.windows(ADDRESS.len()).any(|w| w == ADDRESS.as_bytes()), "{} holds the address", f.display());
    }
}

/// Queues `n` messages straight into the data directory's queue (on `url` when given).
fn queue_messages(rt: &tokio::runtime::Runtime, root: &Path, url: Option<&str>, n: usize) {
    rt.block_on(async {
        let data = charter_store::DataDir::open(root, url).await.unwrap();
        for i in 0..n {
            let message = charter_delivery::Message::Mail(charter_delivery::Mail {
                to: ADDRESS.into(),
                subject: format!("notice {i}"),
                text: "words".into(),
                unsubscribe: None,
                html: None,
            });
            let job = charter_delivery::Enqueue {
                kind: "test.kill",
                idempotency_key: format!("kill-{i}"),
                message: &message,
                seal: charter_delivery::Seal::KeyFile,
                max_attempts: Some(100),
            };
            charter_delivery::enqueue(&data.store, &data.keys, job, charter_store::now_us()).await.unwrap();
        }
        data.store.close().await;
    });
}

#[test]
fn a_server_killed_mid_batch_twenty_times_delivers_everything_once_per_kill_at_most() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sink = rt.block_on(SmtpSink::start());
    sink.slow_down(Duration::from_millis(15));
    let cwd = tempfile::tempdir().unwrap();
    data_dir(cwd.path());
    queue_messages(&rt, &cwd.path().join("charter-data"), None, 120);
    let flags = [
        smtp_flags(&sink),
        ["--job-lease", "0.5", "--job-poll", "0.05", "--job-retry-base", "0.05", "--job-concurrency", "1"]
            .map(String::from)
            .to_vec(),
    ]
    .concat();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut kills = 0;
    for round in 0..20u64 {
        let mut server = Server::start(cwd.path(), &flags);
        std::thread::sleep(Duration::from_millis(150 + (round * 37) % 200));
        server.child.kill().expect("SIGKILL");
        server.child.wait().unwrap();
        kills += 1;
    }
    let during = unique(&sink).len();
    assert!(during >= 20, "the killed servers were sending ({during} delivered between kills)");
    let server = Server::start(cwd.path(), &flags);
    let start = Instant::now();
    while unique(&sink).len() < 120 {
        assert!(start.elapsed() < Duration::from_secs(120), "only {} of 120 delivered", unique(&sink).len());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, logs) = server.stop();
    assert!(status.success(), "{logs}");
    let copies = unique(&sink);
    let twice: usize = copies.values().map(|n| n - 1).sum();
    eprintln!("{during} of 120 delivered between kills; {twice} delivered twice in {kills} kills");
    assert!(twice <= kills, "{twice} messages went twice in {kills} kills (one in flight at a time)");
    assert!(sink.received().len() >= 120);
    assert!(!logs.contains(ADDRESS));
    let (_, listed, _) = out(&run(cwd.path(), &["jobs", "list", "--state", "done", "--limit", "1000"]));
    let messages = listed.lines().filter(|l| !l.contains("retention.sweep")).count();
    assert_eq!(messages, 121, "every message is done");
}

/// Copies received per Message-ID.
fn unique(sink: &SmtpSink) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in sink.received() {
        *m.entry(r.header("Message-ID").unwrap_or_default()).or_insert(0) += 1;
    }
    m
}

#[test]
fn two_servers_on_one_postgresql_database_never_send_a_message_twice() {
    let Ok(server) = std::env::var(charter_testkit::POSTGRES_ENV) else {
        eprintln!("notice: two servers on PostgreSQL skipped; set {} to run it", charter_testkit::POSTGRES_ENV);
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(charter_testkit::TestDb::postgres_at(&server));
    let sink = rt.block_on(SmtpSink::start());
    sink.slow_down(Duration::from_millis(2));
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let made =
        run(one.path(), &["--database-url", &db.url, "apikey", "create", "--name", "setup", "--purposes", "support"]);
    assert!(made.status.success(), "{}", out(&made).2);
    // The second server shares the database and the key file, as servers on one database do.
    std::fs::create_dir_all(two.path().join("charter-data")).unwrap();
    std::fs::copy(one.path().join("charter-data/keys.json"), two.path().join("charter-data/keys.json")).unwrap();
    queue_messages(&rt, &one.path().join("charter-data"), Some(&db.url), 300);
    let flags =
        [smtp_flags(&sink), ["--database-url", &db.url, "--job-poll", "0.05"].map(String::from).to_vec()].concat();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (a, b) = (Server::start(one.path(), &flags), Server::start(two.path(), &flags));
    let start = Instant::now();
    while unique(&sink).len() < 300 {
        assert!(start.elapsed() < Duration::from_secs(120), "only {} of 300 delivered", unique(&sink).len());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let ((sa, la), (sb, lb)) = (a.stop(), b.stop());
    assert!(sa.success() && sb.success(), "{la}\n{lb}");
    assert_eq!(sink.received().len(), 300, "no message went twice while both servers lived");
    // Both servers sent: the chain names the worker of each attempt.
    let workers: Vec<String> = rt.block_on(async {
        let store = charter_store::Store::connect(&db.url).await.unwrap();
        let details = sqlx::query_scalar::<_, String>("SELECT detail FROM audit_log WHERE action = 'job.attempt'")
            .fetch_all(store.pool())
            .await
            .unwrap();
        store.close().await;
        details
    });
    let names: std::collections::BTreeSet<String> = workers
        .iter()
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok()?["worker"].as_str().map(str::to_owned))
        .collect();
    assert_eq!((workers.len(), names.len()), (300, 2), "300 attempts by two workers");
    drop(db);
}
