//! The ledger's neighbours on both backends: consent lapsed by a published material
//! change, one-time codes spent once within their attempts, choices applied all or none.

use charter_core::consent::{self, Source};
use charter_store::codes::NewCode;
use charter_store::consents::NewConsent;
use charter_store::policies::NewPolicyVersion;
use charter_store::requests::{Choices, Request};
use charter_store::Store;
use charter_testkit::TestDb;

async fn subject(store: &Store, id: &str, shredded: bool) {
    sqlx::query("INSERT INTO subjects (id, created_at_us, shredded_at_us) VALUES ($1, 1, $2)")
        .bind(id)
        .bind(shredded.then_some(2_i64))
        .execute(store.pool())
        .await
        .unwrap();
}

fn given(subject: Option<&str>, visitor: Option<&str>, purpose: &str, given: bool) -> NewConsent {
    NewConsent {
        subject_id: subject.map(str::to_owned),
        visitor_id: visitor.map(str::to_owned),
        purpose: purpose.to_owned(),
        given,
        at_us: 10,
        source: Source::Api.as_str(),
        point: None,
        policy_version: None,
        notice_hash: None,
        ip_prefix: None,
        agent: None,
        conflicts_with_gpc: false,
    }
}

fn version(material: bool) -> NewPolicyVersion {
    NewPolicyVersion {
        version: "2".into(),
        sha256: "ab".repeat(32),
        last_updated: "2026-12-05".into(),
        text: "version = \"2\"".into(),
        material,
        changes: "[\"purpose `newsletter` uses more personal data\"]".into(),
        published_at_us: 100,
    }
}

async fn now_for(store: &Store, subject: &str) -> std::collections::BTreeMap<String, bool> {
    let rows = store.subject_consents(subject).await.unwrap();
    consent::fold(rows.iter().map(|r| (r.answer.purpose.as_str(), r.answer.given)))
}

#[tokio::test]
async fn a_material_change_lapses_only_the_grants_in_force_for_widened_purposes() {
    for db in TestDb::backends("store_lapse").await {
        let store = Store::open(&db.url).await.unwrap();
        for id in ["a", "b"] {
            subject(&store, id, false).await;
        }
        let answers = [
            given(Some("a"), None, "newsletter", true),
            given(Some("a"), None, "analytics", true),
            given(Some("b"), None, "newsletter", true),
            given(Some("b"), None, "newsletter", false),
            given(None, Some("v1"), "newsletter", true),
            given(None, Some("v2"), "newsletter", false),
        ];
        assert!(store.append_consents(&answers).await.unwrap());
        let (seq, lapsed) = store.publish_policy(&version(true), &["newsletter".into()]).await.unwrap();
        assert_eq!(lapsed, 2, "a's grant and visitor v1's; b and v2 had withdrawn");
        assert_eq!(now_for(&store, "a").await.get("newsletter"), Some(&false));
        assert_eq!(now_for(&store, "a").await.get("analytics"), Some(&true), "another purpose stays");
        let a = store.subject_consents("a").await.unwrap();
        let last = &a.last().unwrap().answer;
        assert_eq!((last.source, last.policy_version.as_deref(), last.at_us), ("policy_change", Some("2"), 100));
        assert_eq!(store.subject_consents("b").await.unwrap().len(), 2, "nothing added for b");
        let v1 = store.visitor_consents("v1").await.unwrap();
        assert_eq!((v1.len(), v1[1].answer.given), (2, false));
        assert_eq!(store.visitor_consents("v2").await.unwrap().len(), 1);

        let in_force = store.policy_in_force().await.unwrap().unwrap();
        assert_eq!((in_force.seq, in_force.published.material, in_force.notified_at_us), (seq, true, None));
        assert_eq!(store.policy_seq().await.unwrap(), Some(seq));
        store.policy_notified(seq, 200).await.unwrap();
        assert_eq!(store.policy_in_force().await.unwrap().unwrap().notified_at_us, Some(200));
        assert_eq!(store.material_since(100).await.unwrap().map(|m| m.2), Some(100));
        assert_eq!(store.material_since(101).await.unwrap(), None);

        // A minor change lapses nothing and needs no notices.
        let (minor, lapsed) = store.publish_policy(&version(false), &[]).await.unwrap();
        assert_eq!((minor > seq, lapsed), (true, 0));
        assert_eq!(store.policy_in_force().await.unwrap().unwrap().notified_at_us, Some(100));
        assert_eq!(store.material_since(0).await.unwrap().map(|m| m.2), Some(100), "the last material one");
    }
}

fn code(id: &str, subject: Option<&str>, created: i64) -> NewCode {
    NewCode {
        id: id.to_owned(),
        purpose: "preferences",
        subject_id: subject.map(str::to_owned),
        address_blind: "blind".into(),
        client: Some("127.0.0.0/24".into()),
        code_mac: "mac".into(),
        created_at_us: created,
        expires_at_us: created + 600,
    }
}

#[tokio::test]
async fn codes_are_tried_three_times_and_spent_once() {
    for db in TestDb::backends("store_codes").await {
        let store = Store::open(&db.url).await.unwrap();
        subject(&store, "a", false).await;
        store.insert_code(&code("c1", Some("a"), 1000)).await.unwrap();
        store.insert_code(&code("c2", None, 1000)).await.unwrap();
        assert_eq!(store.codes_issued_since("blind", Some("127.0.0.0/24"), 1000).await.unwrap(), (2, 2));
        assert_eq!(store.codes_issued_since("blind", Some("10.0.0.0/24"), 1001).await.unwrap(), (0, 0));
        for _ in 0..3 {
            let tried = store.attempt_code("c1", 1100, 3).await.unwrap().unwrap();
            assert_eq!((tried.subject_id.as_deref(), tried.code_mac.as_str()), (Some("a"), "mac"));
        }
        assert_eq!(store.attempt_code("c1", 1100, 3).await.unwrap(), None, "out of attempts");
        assert!(store.attempt_code("c2", 1600, 3).await.unwrap().is_none(), "expired");
        assert!(store.attempt_code("nope", 1100, 3).await.unwrap().is_none());
        assert!(store.spend_code("c1", 1100).await.unwrap());
        assert!(!store.spend_code("c1", 1101).await.unwrap(), "spent once");
        assert_eq!(store.drop_codes_before(1001).await.unwrap(), 2);
    }
}

#[tokio::test]
async fn choices_are_applied_all_or_none() {
    for db in TestDb::backends("store_choices").await {
        let store = Store::open(&db.url).await.unwrap();
        subject(&store, "a", false).await;
        subject(&store, "gone", true).await;
        let request = |subject: &str| Request {
            id: format!("r-{subject}"),
            subject_id: Some(subject.to_owned()),
            kind: "objection".into(),
            jurisdiction: "gdpr".into(),
            status: "completed".into(),
            source: "preference_center".into(),
            details: "{\"purpose\":\"analytics\"}".into(),
            received_at_us: 5,
            completed_at_us: Some(5),
            ..Request::default()
        };
        let choices = |subject: &str| Choices {
            answers: vec![given(Some(subject), None, "newsletter", false)],
            object: vec!["analytics".into(), "product_improvement".into()],
            lift: vec![],
            requests: vec![request(subject)],
        };
        assert!(!store.apply_choices("gone", &choices("gone"), 5).await.unwrap(), "an erased subject");
        assert!(store.subject_consents("gone").await.unwrap().is_empty());
        assert!(store.subject_requests("gone").await.unwrap().is_empty());

        assert!(store.apply_choices("a", &choices("a"), 5).await.unwrap());
        assert_eq!(store.objections("a").await.unwrap(), ["analytics", "product_improvement"]);
        assert_eq!(store.subject_requests("a").await.unwrap(), vec![request("a")]);
        let lift = Choices { lift: vec!["analytics".into()], ..Choices::default() };
        assert!(store.apply_choices("a", &lift, 6).await.unwrap());
        assert_eq!(store.objections("a").await.unwrap(), ["product_improvement"]);
        // Objecting twice keeps one objection.
        assert!(store
            .apply_choices("a", &Choices { object: vec!["product_improvement".into()], ..Choices::default() }, 7)
            .await
            .unwrap());
        assert_eq!(store.objections("a").await.unwrap(), ["product_improvement"]);
    }
}

#[tokio::test]
async fn work_on_a_request_is_leased_and_resumed_after_a_crash() {
    for db in TestDb::backends("store_request_lease").await {
        let store = Store::open(&db.url).await.unwrap();
        subject(&store, "a", false).await;
        let r = Request {
            id: "r-1".into(),
            subject_id: Some("a".into()),
            kind: "restriction".into(),
            jurisdiction: "gdpr".into(),
            status: "in_progress".into(),
            source: "api".into(),
            details: "{}".into(),
            received_at_us: 1,
            ..Request::default()
        };
        let event = charter_store::requests::RequestEvent {
            at_us: 1,
            actor: "t".into(),
            action: "started".into(),
            status: "in_progress".into(),
            note: None,
        };
        store.insert_request(&r, &event).await.unwrap();
        assert_eq!(store.claim_request(100, 200).await.unwrap().map(|r| r.id), Some("r-1".into()));
        assert!(store.claim_request(150, 250).await.unwrap().is_none(), "held by the first claim");
        assert_eq!(
            store.claim_request(201, 300).await.unwrap().map(|r| r.id),
            Some("r-1".into()),
            "its server stopped: resumed"
        );
        let mut done = store.request("r-1").await.unwrap().unwrap();
        done.status = "completed".into();
        assert!(store.save_request("in_progress", &done, &event).await.unwrap());
        assert!(!store.save_request("in_progress", &done, &event).await.unwrap(), "moved once");
        assert!(store.claim_request(1000, 2000).await.unwrap().is_none(), "nothing left");
    }
}
