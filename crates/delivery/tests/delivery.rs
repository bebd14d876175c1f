//! Delivery against real servers on loopback: an SMTP sink, a webhook receiver, an SMS
//! gateway stand-in; on SQLite and, when configured, PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use charter_delivery::{enqueue, Config, Enqueue, Mail, Message, Seal, Senders, Sms, Webhook, Worker, WorkerSettings};
use charter_store::vault::CollectionWrite;
use charter_store::{now_us, AuditLog, DataDir, Store};
use charter_testkit::receiver::{signature_holds, Answer, Receiver};
use charter_testkit::smtp::SmtpSink;
use charter_testkit::TestDb;
use charter_vault::{DataKey, KeyFile, KeyWrapper as _};

const ADDRESS: &str = "ines.delacroix@example.net";

/// An opened data directory with its audit writer.
struct Env {
    dir: tempfile::TempDir,
    store: Store,
    keys: Arc<KeyFile>,
    audit: AuditLog,
    _lock: charter_store::DirLock,
}

async fn env(db: &TestDb) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let DataDir { keys, store, lock, .. } = DataDir::open(&dir.path().join("data"), Some(&db.url)).await.unwrap();
    let keys = Arc::new(keys);
    let (audit, _task) = AuditLog::start(&store, keys.checkpoint_signer());
    Env { dir, store, keys, audit, _lock: lock }
}

/// Settings that retry within milliseconds, so tests run fast.
fn fast() -> WorkerSettings {
    WorkerSettings {
        concurrency: 8,
        lease: Duration::from_secs(2),
        poll: Duration::from_millis(20),
        retry_base: Duration::from_millis(50),
        retry_cap: Duration::from_millis(400),
        send_timeout: Duration::from_secs(10),
    }
}

fn default_policy() -> charter_policy::LoadedPolicy {
    charter_policy::load("tensoropera.toml", charter_policy::TENSOROPERA).expect("the policy loads")
}

/// TensorOpera's policy with a processor reached by webhook at `url`.
fn policy_with_webhook(url: &str) -> charter_policy::LoadedPolicy {
    let text = format!(
        "{}\n[recipients.model_host]\nname = \"Model Host\"\nrole = \"processor\"\nservice = \"Hosts trained models\"\n\
         categories = [\"user.name\"]\npurposes = [\"registration\"]\ncountry = \"US\"\nsafeguard = \"art46_sccs\"\n\
         deletion = {{ webhook = \"{url}\" }}\n",
        charter_policy::TENSOROPERA
    );
    charter_policy::load("test-policy.toml", &text).expect("the test policy loads")
}

impl Env {
    fn worker(&self, config: &Config, policy: &charter_policy::LoadedPolicy) -> Worker {
        let senders = Senders::new(config, self.keys.clone(), &policy.policy, &self.dir.path().join("data")).unwrap();
        Worker::new(
            self.store.clone(),
            self.keys.clone(),
            self.audit.clone(),
            Arc::new(senders),
            config.worker.clone(),
            Arc::default(),
        )
    }

    /// A subject with a data key; its id and key.
    async fn subject(&self) -> (String, DataKey) {
        let id = uuid::Uuid::new_v4().to_string();
        let key = DataKey::generate();
        self.store
            .write_collection(&CollectionWrite {
                subject_id: id.clone(),
                new_subject: Some(self.keys.wrap(&id, &key)),
                identifier: None,
                point: "newsletter".into(),
                profile: vec![],
                record: None,
                consents: vec![],
                objects: vec![],
                at_us: now_us(),
            })
            .await
            .unwrap();
        (id, key)
    }

    async fn queue(&self, key: &str, message: Message, seal: Seal<'_>) -> String {
        let job =
            Enqueue { kind: "test", idempotency_key: key.to_owned(), message: &message, seal, max_attempts: None };
        enqueue(&self.store, &*self.keys, job, now_us()).await.unwrap().0
    }

    async fn states(&self) -> Vec<(String, i64)> {
        self.store.job_counts().await.unwrap()
    }

    async fn attempts_in_chain(&self) -> Vec<(String, Option<String>, String)> {
        sqlx::query_as("SELECT result, subject, detail FROM audit_log WHERE action = 'job.attempt' ORDER BY seq")
            .fetch_all(self.store.pool())
            .await
            .unwrap()
    }
}

fn mail(n: usize) -> Message {
    Message::Mail(Mail {
        to: ADDRESS.into(),
        subject: format!("Your request {n}"),
        text: format!("Dear Ines, message {n}.\n"),
        unsubscribe: Some(format!("https://privacy.example.com/u/{n}")),
        html: None,
    })
}

fn smtp(sink: &SmtpSink) -> Config {
    Config {
        smtp_url: Some(sink.url().into()),
        mail_from: Some("privacy@tensoropera.example".into()),
        worker: fast(),
        ..Config::default()
    }
}

/// Everything stored, as text, for leak scans: every row on PostgreSQL, every file on
/// SQLite (the database, its WAL and the audit file) and the outbox.
async fn stored_text(db: &TestDb, env: &Env) -> String {
    let mut out = String::new();
    if let Some(tables) = db.postgres_rows().await {
        for (t, rows) in tables {
            out.push_str(&t);
            out.push_str(&rows.join("\n"));
        }
    }
    for dir in [db.path(), Some(env.dir.path().to_owned())].into_iter().flatten() {
        for f in charter_testkit::files(&dir) {
            out.push_str(&String::from_utf8_lossy(&std::fs::read(f).unwrap_or_default()));
        }
    }
    out
}

#[tokio::test]
async fn mail_waits_out_an_smtp_outage_and_each_message_goes_once() {
    for db in TestDb::backends("delivery_smtp_outage").await {
        let env = env(&db).await;
        let mut sink = SmtpSink::start().await;
        sink.down();
        let (subject, key) = env.subject().await;
        let mut jobs = Vec::new();
        for n in 0..6 {
            jobs.push(env.queue(&format!("kek-{n}"), mail(n), Seal::KeyFile).await);
            jobs.push(
                env.queue(&format!("subject-{n}"), mail(100 + n), Seal::Subject { id: &subject, key: &key }).await,
            );
        }
        // Queuing a key twice queues one job.
        assert_eq!(env.queue("kek-0", mail(0), Seal::KeyFile).await, jobs[0]);

        let worker = env.worker(&smtp(&sink), &default_policy());
        let first = worker.round().await.unwrap();
        assert_eq!((first.claimed, first.retried, first.sent), (8, 8, 0), "the server is down: every attempt fails");
        tokio::time::sleep(Duration::from_millis(300)).await;
        sink.up().await;
        let total = worker.run_until_empty(|_, _| {}).await.unwrap();
        assert_eq!(total.dead, 0);

        let got = sink.received();
        let ids: std::collections::BTreeSet<String> = got.iter().filter_map(|m| m.header("Message-ID")).collect();
        assert_eq!(got.len(), 12, "each message once");
        assert_eq!(ids.len(), 12);
        for job in &jobs {
            assert!(ids.iter().any(|i| i.contains(job.as_str())), "the Message-ID comes from the job");
        }
        let one = &got[0];
        assert!(one.to[0].contains(ADDRESS), "{:?}", one.to);
        assert_eq!(one.header("List-Unsubscribe-Post").as_deref(), Some("List-Unsubscribe=One-Click"));
        assert!(one.header("List-Unsubscribe").unwrap().starts_with("<https://privacy.example.com/u/"));
        assert_eq!(env.states().await, vec![("done".to_owned(), 12)]);

        // The chain holds every attempt with its reply, and never the address or words.
        let chain = env.attempts_in_chain().await;
        assert!(chain.iter().filter(|(r, _, _)| r == "sent").count() == 12);
        assert!(chain.iter().any(|(r, _, d)| r == "failed" && d.contains("smtp unreachable")), "{chain:?}");
        assert!(chain.iter().any(|(_, s, _)| s.as_deref() == Some(subject.as_str())));
        assert!(chain.iter().all(|(_, _, d)| d.contains("\"channel\":\"mail\"")));
        let stored = stored_text(&db, &env).await;
        for secret in [ADDRESS, "ines.delacroix", "Dear Ines", "Your request"] {
            assert!(!stored.contains(secret), "`{secret}` is stored in clear");
        }
    }
}

#[tokio::test]
async fn a_refused_recipient_is_dead_at_once_and_can_be_requeued() {
    for db in TestDb::backends("delivery_refused").await {
        let env = env(&db).await;
        let sink = SmtpSink::start().await;
        sink.refuse_recipients(Some(550));
        let job = env.queue("refused", mail(1), Seal::KeyFile).await;
        let worker = env.worker(&smtp(&sink), &default_policy());
        let t = worker.run_until_empty(|_, _| {}).await.unwrap();
        assert_eq!((t.sent, t.dead), (0, 1), "a 5xx reply is permanent");
        let dead = env.store.list_jobs(Some("dead"), 10).await.unwrap();
        assert_eq!(dead[0].id, job);
        assert_eq!(dead[0].attempts, 1);
        assert_eq!(dead[0].last_error.as_deref(), Some("smtp 550"));

        sink.refuse_recipients(None);
        assert!(env.store.retry_job(&job, now_us()).await.unwrap());
        assert!(!env.store.retry_job(&job, now_us()).await.unwrap(), "only a dead job is requeued");
        assert_eq!(worker.run_until_empty(|_, _| {}).await.unwrap().sent, 1);
        assert_eq!(sink.received().len(), 1);
    }
}

#[tokio::test]
async fn a_transient_failure_is_retried_until_the_limit_then_dead() {
    for db in TestDb::backends("delivery_limit").await {
        let env = env(&db).await;
        let sink = SmtpSink::start().await;
        sink.refuse_recipients(Some(451));
        let message = mail(1);
        let job = Enqueue {
            kind: "test",
            idempotency_key: "limited".into(),
            message: &message,
            seal: Seal::KeyFile,
            max_attempts: Some(3),
        };
        enqueue(&env.store, &*env.keys, job, now_us()).await.unwrap();
        let t = env.worker(&smtp(&sink), &default_policy()).run_until_empty(|_, _| {}).await.unwrap();
        assert_eq!((t.claimed, t.retried, t.dead), (3, 2, 1));
        let dead = env.store.list_jobs(Some("dead"), 10).await.unwrap();
        assert_eq!(dead[0].last_error.as_deref(), Some("smtp 451 (after 3 attempts)"));
    }
}

#[tokio::test]
async fn webhooks_are_signed_retried_with_one_delivery_id_and_honour_retry_after() {
    for db in TestDb::backends("delivery_webhooks").await {
        let env = env(&db).await;
        let receiver = Receiver::start().await;
        let policy = policy_with_webhook(&format!("{}/hooks/charter", receiver.base));
        let worker = env.worker(&Config { worker: fast(), ..Config::default() }, &policy);
        let hook = |n: u32| {
            Message::Webhook(Webhook {
                recipient: "model_host".into(),
                event: "erasure.requested".into(),
                data: serde_json::json!({ "subject": format!("s-{n}") }),
            })
        };

        // Without a secret the call is not made: the operator must make one first.
        let early = env.queue("early", hook(0), Seal::KeyFile).await;
        assert_eq!(worker.run_until_empty(|_, _| {}).await.unwrap().dead, 1);
        assert!(receiver.requests().is_empty());
        let secret =
            charter_delivery::webhook::new_secret(&env.store, &env.keys, "model_host", now_us()).await.unwrap();
        assert!(env.store.retry_job(&early, now_us()).await.unwrap());
        worker.run_until_empty(|_, _| {}).await.unwrap();
        assert_eq!(receiver.requests().len(), 1);

        // 500, then 429 asking for a second, then 200: three calls, one delivery id.
        receiver.answer(&[Answer { status: 500, retry_after: None }, Answer { status: 429, retry_after: Some(1) }]);
        let job = env.queue("retried", hook(1), Seal::KeyFile).await;
        worker.run_until_empty(|_, _| {}).await.unwrap();
        let calls: Vec<_> = receiver.requests().into_iter().skip(1).collect();
        assert_eq!(calls.iter().map(|c| c.status).collect::<Vec<_>>(), vec![500, 429, 200]);
        for c in &calls {
            assert_eq!(c.header("charter-delivery"), Some(job.as_str()));
            assert!(signature_holds(&secret, c.header("charter-signature").unwrap(), &c.body), "signed");
            assert!(!signature_holds("whsec_other", c.header("charter-signature").unwrap(), &c.body));
            let body: serde_json::Value = serde_json::from_slice(&c.body).unwrap();
            assert_eq!(
                (body["event"].as_str(), body["data"]["subject"].as_str()),
                (Some("erasure.requested"), Some("s-1"))
            );
        }
        let chain = env.attempts_in_chain().await;
        let replies: Vec<&str> =
            chain.iter().filter(|(_, _, d)| d.contains(&job)).map(|(r, _, _)| r.as_str()).collect();
        assert_eq!(replies, vec!["failed", "failed", "sent"]);
        assert!(chain.iter().any(|(_, _, d)| d.contains(&job) && d.contains("http 429")));

        // Retry-After was honoured: a second or more between the 429 and the next call.
        let times: Vec<i64> = sqlx::query_scalar(
            "SELECT at_us FROM audit_log WHERE action = 'job.attempt' AND detail LIKE $1 ORDER BY seq",
        )
        .bind(format!("%{job}%"))
        .fetch_all(env.store.pool())
        .await
        .unwrap();
        assert!(times[2] - times[1] >= 900_000, "waited {} µs after the 429", times[2] - times[1]);

        // Other 4xx statuses are permanent.
        receiver.answer(&[Answer { status: 410, retry_after: None }]);
        env.queue("gone", hook(2), Seal::KeyFile).await;
        assert_eq!(worker.run_until_empty(|_, _| {}).await.unwrap().dead, 1);
    }
}

#[tokio::test]
async fn text_messages_go_to_the_gateway_in_e164_with_basic_auth() {
    for db in TestDb::backends("delivery_sms").await {
        let env = env(&db).await;
        let gateway = Receiver::start().await;
        let base = gateway.base.replace("http://", "http://AC123@");
        let config = Config {
            sms: Some(charter_delivery::sms::Gateway {
                url: format!("{base}/2010-04-01/Accounts/AC123/Messages.json"),
                from: "+15005550006".into(),
                token: "gateway-token".to_owned().into(),
            }),
            worker: fast(),
            ..Config::default()
        };
        let worker = env.worker(&config, &default_policy());
        env.queue(
            "sms",
            Message::Sms(Sms { to: "(415) 555-0134".into(), body: "Your code is 493817".into() }),
            Seal::KeyFile,
        )
        .await;
        env.queue("bad-number", Message::Sms(Sms { to: "call me".into(), body: "x".into() }), Seal::KeyFile).await;
        let t = worker.run_until_empty(|_, _| {}).await.unwrap();
        assert_eq!((t.sent, t.dead), (1, 1), "a number that cannot be put in E.164 is permanent");
        let calls = gateway.requests();
        assert_eq!(calls.len(), 1);
        let c = &calls[0];
        assert_eq!((c.method.as_str(), c.path.as_str()), ("POST", "/2010-04-01/Accounts/AC123/Messages.json"));
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode("AC123:gateway-token");
        assert_eq!(c.header("authorization"), Some(format!("Basic {auth}").as_str()));
        let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&c.body).unwrap();
        assert_eq!(
            form,
            vec![
                ("To".to_owned(), "+14155550134".to_owned()),
                ("From".to_owned(), "+15005550006".to_owned()),
                ("Body".to_owned(), "Your code is 493817".to_owned())
            ]
        );
        let stored = stored_text(&db, &env).await;
        assert!(!stored.contains("4155550134") && !stored.contains("493817"), "nothing of the message in clear");
    }
}

#[tokio::test]
async fn without_a_gateway_messages_are_sealed_in_the_outbox_and_erased_with_their_person() {
    let db = TestDb::sqlite();
    let env = env(&db).await;
    let worker = env.worker(&Config { worker: fast(), ..Config::default() }, &default_policy());
    assert!(worker.senders.mail.is_outbox());
    let job = env.queue("outbox", mail(7), Seal::KeyFile).await;
    let sms = env
        .queue("outbox-sms", Message::Sms(Sms { to: "+14155550134".into(), body: "code 493817".into() }), Seal::KeyFile)
        .await;
    let (subject, key) = env.subject().await;
    let theirs = env.queue("outbox-subject", mail(8), Seal::Subject { id: &subject, key: &key }).await;
    assert_eq!(worker.run_until_empty(|_, _| {}).await.unwrap().sent, 3);
    let outbox = charter_delivery::Outbox::new(env.dir.path().join("data/outbox"), env.keys.clone());
    let mut expected = vec![("mail", job.as_str()), ("mail", theirs.as_str()), ("sms", sms.as_str())];
    expected.sort();
    let listed = outbox.list().unwrap();
    assert_eq!(listed.iter().map(|e| (e.channel, e.id.as_str())).collect::<Vec<_>>(), expected);
    let (channel, eml) = outbox.show(&env.store, &job).await.unwrap();
    let eml = String::from_utf8(eml).unwrap();
    assert_eq!(channel, "mail");
    assert!(eml.contains(ADDRESS) && eml.contains(&format!("Message-ID: <{job}@localhost>")), "{eml}");
    assert!(outbox.show(&env.store, "../../keys").await.is_err() && outbox.show(&env.store, "0000").await.is_err());
    let stored = stored_text(&db, &env).await;
    assert!(!stored.contains(ADDRESS) && !stored.contains("493817"), "the outbox is sealed");

    let (_, before) = outbox.show(&env.store, &theirs).await.unwrap();
    assert!(String::from_utf8(before).unwrap().contains(&format!("<{theirs}@localhost>")));
    assert!(env.store.shred(&subject, now_us()).await.unwrap());
    let after = outbox.show(&env.store, &theirs).await.unwrap_err();
    assert!(matches!(after, charter_delivery::outbox::OutboxError::Erased(_)), "{after}");
    assert!(outbox.show(&env.store, &job).await.is_ok(), "a message to nobody erased still opens");
}

#[tokio::test]
async fn erasing_a_person_voids_their_messages_but_not_the_confirmation() {
    for db in TestDb::backends("delivery_erasure").await {
        let env = env(&db).await;
        let sink = SmtpSink::start().await;
        let (subject, key) = env.subject().await;
        let pending = env.queue("to-the-person", mail(1), Seal::Subject { id: &subject, key: &key }).await;
        let confirmation = env.queue("erasure-confirmation", mail(2), Seal::KeyFile).await;
        assert!(env.store.shred(&subject, now_us()).await.unwrap());
        let t = env.worker(&smtp(&sink), &default_policy()).run_until_empty(|_, _| {}).await.unwrap();
        assert_eq!((t.sent, t.voided), (1, 0), "the void happened at the shred, not at sending");
        let got = sink.received();
        assert_eq!(got.len(), 1);
        assert!(got[0].header("Message-ID").unwrap().contains(&confirmation));
        let void = env.store.list_jobs(Some("void"), 10).await.unwrap();
        assert_eq!(void.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), vec![pending.as_str()]);
        let left: Vec<u8> = sqlx::query_scalar("SELECT sealed FROM jobs WHERE id = $1")
            .bind(&pending)
            .fetch_one(env.store.pool())
            .await
            .unwrap();
        assert!(left.is_empty(), "a void job keeps no sealed message");
    }
}

#[tokio::test]
async fn a_job_under_a_retired_key_encryption_key_is_refused() {
    for db in TestDb::backends("delivery_retired_kek").await {
        let env = env(&db).await;
        let (subject, key) = env.subject().await;
        env.queue("before", mail(1), Seal::KeyFile).await;
        let version = env.keys.current_version();
        // What `charter keys rotate` records once every key is rewrapped: this key file is
        // from before the rotation.
        env.store.retire_keks_and_rewrap(&[version], &[], now_us()).await.unwrap();
        let job = Enqueue {
            kind: "test",
            idempotency_key: "after".into(),
            message: &mail(2),
            seal: Seal::KeyFile,
            max_attempts: None,
        };
        let refused = enqueue(&env.store, &*env.keys, job, now_us()).await.unwrap_err();
        assert!(refused.to_string().contains(&format!("version {version} was retired")), "{refused}");
        assert_eq!(env.store.list_jobs(None, 10).await.unwrap().len(), 1, "nothing of the refused job is stored");
        // A message to a subject is wrapped under the subject's key, not the key file.
        env.queue("to-subject", mail(3), Seal::Subject { id: &subject, key: &key }).await;
    }
}

#[tokio::test]
async fn a_lease_that_runs_out_lets_another_worker_send_the_job() {
    for db in TestDb::backends("delivery_lease").await {
        let env = env(&db).await;
        let sink = SmtpSink::start().await;
        let job = env.queue("leased", mail(1), Seal::KeyFile).await;
        // A worker that claims and then stops without a word.
        let now = now_us();
        let claimed = env.store.claim_jobs("crashed-worker", now, now + 300_000, 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        let worker = env.worker(&smtp(&sink), &default_policy());
        assert_eq!(worker.round().await.unwrap().claimed, 0, "the lease holds");
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(worker.run_until_empty(|_, _| {}).await.unwrap().sent, 1);
        assert!(sink.received()[0].header("Message-ID").unwrap().contains(&job));
        // The crashed worker's late word changes nothing.
        let late = [(job.clone(), charter_store::jobs::Finish::Dead { error: "late".into() })];
        assert_eq!(env.store.finish_jobs("crashed-worker", &late, now_us()).await.unwrap(), 0);
        assert_eq!(env.states().await, vec![("done".to_owned(), 1)]);
    }
}

#[tokio::test]
async fn two_workers_on_one_database_never_send_a_message_twice() {
    let Some(db) = TestDb::postgres("delivery_two_workers").await else { return };
    let env = env(&db).await;
    let sink = SmtpSink::start().await;
    sink.slow_down(Duration::from_millis(2));
    for n in 0..200 {
        env.queue(&format!("both-{n}"), mail(n), Seal::KeyFile).await;
    }
    let config = smtp(&sink);
    let (a, b) = (env.worker(&config, &default_policy()), env.worker(&config, &default_policy()));
    let (ta, tb) = tokio::join!(a.run_until_empty(|_, _| {}), b.run_until_empty(|_, _| {}));
    let (ta, tb) = (ta.unwrap(), tb.unwrap());
    assert_eq!(ta.sent + tb.sent, 200);
    assert!(ta.sent > 0 && tb.sent > 0, "both worked: {} and {}", ta.sent, tb.sent);
    let ids: std::collections::BTreeSet<String> =
        sink.received().iter().filter_map(|m| m.header("Message-ID")).collect();
    assert_eq!((sink.received().len(), ids.len()), (200, 200));
}
