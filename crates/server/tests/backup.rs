//! Backup, then erase a person and close another's account, then restore, on both
//! backends: the erased person stays unreadable and unknown to lookups, the closed
//! account stays closed, the chain is not rolled back and holds the restore; a backup
//! with a changed file or manifest is refused and nothing is touched.

mod common;

use std::path::Path;

use charter_server::backup::{self, RestoreError, Source, Target};
use charter_store::DataDir;
use common::data::{signup, EMAIL, NAME};
use common::rights::{approve, filed_and_verified, until_status};
use common::{backends, TestApp};
use serde_json::json;

const STAYS: &str = "stays@example.org";

fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_folder(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

async fn subject_id(app: &TestApp, key: &str, email: &str) -> String {
    let got = app.collect(key, "signup", &signup(email)).await;
    assert_eq!(got.status, 201, "{}", got.body);
    got.body["subject_id"].as_str().unwrap().to_owned()
}

fn lookup(email: &str) -> String {
    format!("/v1/subjects/lookup?email={}&purpose=registration", email.replace('@', "%40"))
}

async fn restore(db: &charter_testkit::TestDb, data: &Path, from: &Path) -> Result<backup::Restored, RestoreError> {
    let target = Target {
        data: DataDir::open_existing(data, Some(&db.url)).await.unwrap(),
        database_url: Some(db.url.clone()),
        object_store: None,
        policy: charter_policy::load("policy", charter_policy::TENSOROPERA).unwrap().policy,
    };
    backup::restore(target, from).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_backup_never_brings_an_erased_person_back() {
    for db in backends("backup_restore").await {
        let app = TestApp::spawn(&db).await;
        let site = app.key("site", &["registration", "breach_notification"], &["signup"]).await;
        let gone = subject_id(&app, &site, EMAIL).await;
        let stays = subject_id(&app, &site, STAYS).await;

        let folder = tempfile::tempdir().unwrap();
        let taken = folder.path().join("b1");
        let url = db.path().is_none().then(|| db.url.clone());
        let signer = app.state.keys.checkpoint_signer();
        let source = Source {
            store: &app.state.store,
            database_url: url.as_deref(),
            objects: app.state.objects.as_ref(),
            signer: &signer,
        };
        let manifest = backup::create(&source, &taken).await.unwrap();
        assert!(manifest.kek_versions == [1] && manifest.audit_seq > 0, "{manifest:?}");
        assert!(backup::create(&source, &taken).await.is_err(), "a backup never writes over another");
        let verifier = signer.verifier();
        backup::verify(&taken.join(backup::MANIFEST), &verifier).unwrap();
        for f in common::files(&taken) {
            let bytes = std::fs::read(&f).unwrap();
            assert!(!bytes.windows(EMAIL.len()).any(|w| w == EMAIL.as_bytes()), "{} holds the email", f.display());
            assert!(!bytes.windows(NAME.len()).any(|w| w == NAME.as_bytes()), "{} holds the name", f.display());
        }

        // After the backup: one person erased, another's account closed.
        let (rid, token, _) = filed_and_verified(&app, json!({ "type": "erasure", "email": EMAIL })).await;
        approve(&app, &rid).await;
        until_status(&app, &rid, &token, "completed").await;
        let closed =
            app.raw("POST", &format!("/v1/subjects/{stays}/close"), Some(&site), Some(r#"{"point":"signup"}"#)).await;
        assert!(closed.status == 200 || closed.status == 201, "{}", closed.body);
        let entries_before = charter_store::audit::head_seq(&app.state.store).await.unwrap();
        let dir = app.stop().await;
        let data = dir.path().join("data");

        // Changed backups are refused before anything is touched.
        let changed = folder.path().join("changed");
        copy_folder(&taken, &changed);
        let file = manifest.files.iter().find(|f| !f.path.starts_with("objects")).unwrap();
        let mut bytes = std::fs::read(changed.join(&file.path)).unwrap();
        bytes.push(0);
        std::fs::write(changed.join(&file.path), bytes).unwrap();
        let refused = restore(&db, &data, &changed).await.unwrap_err();
        assert!(matches!(&refused, RestoreError::Refused(m) if m.contains("differs")), "{refused}");
        let forged = folder.path().join("forged");
        copy_folder(&taken, &forged);
        let text = std::fs::read_to_string(forged.join(backup::MANIFEST)).unwrap();
        let seq = format!("\"audit_seq\": {}", manifest.audit_seq);
        std::fs::write(forged.join(backup::MANIFEST), text.replace(&seq, "\"audit_seq\": 999999")).unwrap();
        assert!(matches!(backup::verify(&forged, &verifier), Err(backup::VerifyError::Signature)));
        assert!(!data.join(charter_store::data_dir::RESTORE_PENDING).exists(), "a refusal marks nothing");

        let done = restore(&db, &data, &taken).await.unwrap();
        assert_eq!((done.replayed.erasures, done.replayed.closed_accounts), (1, 1), "{:?}", done.replayed);
        assert!(!data.join(charter_store::data_dir::RESTORE_PENDING).exists());

        let app = TestApp::spawn_in_dir(&db, dir).await;
        assert_eq!(app.raw("GET", &lookup(EMAIL), Some(&site), None).await.status, 404, "unknown to lookups");
        let read = app.read(&site, &gone, "purpose=registration").await;
        assert_ne!(read.status, 200, "{}", read.body);
        assert!(!read.body.to_string().contains(EMAIL));
        let erased = app.state.store.subject(&gone).await.unwrap().unwrap();
        assert!(erased.wrapped.is_none(), "the erased person's key is gone again");
        let kept = app.state.store.subject(&stays).await.unwrap().unwrap();
        assert!(kept.account_closed_at_us.is_some(), "the closed account stays closed");
        assert_eq!(app.raw("GET", &lookup(STAYS), Some(&site), None).await.status, 200);

        let entries = charter_store::audit::load_entries(&app.state.store).await.unwrap();
        assert!(entries.len() as i64 > entries_before, "the chain was not rolled back");
        assert!(entries.iter().any(|e| e.event.action == "backup.restore"), "the restore is in the chain");
        let verified = charter_store::audit::verify(&app.state.store, &verifier).await;
        assert!(verified.is_ok(), "{verified:?}");
        app.stop().await;
    }
}
