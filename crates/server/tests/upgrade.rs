//! A database written by the release before records opens after the upgrade and reads
//! back everything, on SQLite and PostgreSQL: the old schema is built with the old
//! migrations and old-style rows (one value per subject and field, sealed with the
//! subject's key; objects sealed with it too), then charter starts on it.

mod common;

use charter_testkit::TestDb;
use charter_vault::{DataKey, IdentifierKind, KeyFile, KeyWrapper as _, Normaliser};
use common::data::*;
use common::TestApp;
use serde_json::json;

/// The last migration of the release before records.
const LAST_OLD_MIGRATION: &str = "20261203000001";

/// Builds the old schema on `db` with the migrations the old release shipped.
async fn old_schema(db: &TestDb) -> sqlx::AnyPool {
    let backend = if db.path().is_some() { "sqlite" } else { "postgres" };
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/migrations").join(backend);
    let old = tempfile::tempdir().unwrap();
    let mut copied = 0;
    for entry in std::fs::read_dir(&from).unwrap().flatten() {
        let name = entry.file_name().into_string().unwrap();
        if name.as_str() <= LAST_OLD_MIGRATION || name.starts_with(LAST_OLD_MIGRATION) {
            std::fs::copy(entry.path(), old.path().join(&name)).unwrap();
            copied += 1;
        }
    }
    assert_eq!(copied, 5, "the old release had five migrations");
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    sqlx::migrate::Migrator::new(old.path()).await.unwrap().run(&pool).await.unwrap();
    pool
}

struct OldValue {
    field: &'static str,
    category: &'static str,
    point: &'static str,
    value: &'static str,
}

const OLD_VALUES: &[OldValue] = &[
    OldValue { field: "name", category: "user.name", point: "signup", value: NAME },
    OldValue { field: "email", category: "user.contact.email", point: "signup", value: EMAIL },
    OldValue { field: "message", category: "user.content.message", point: "support", value: "OLD-SUPPORT-MESSAGE" },
    OldValue { field: "page", category: "user.behavior.usage", point: "analytics", value: "/old/pricing" },
];

const OLD_FILE: &[u8] = b"OLD-ATTACHMENT-CONTENT\n";

/// One subject as the old release stored it, and one object of theirs at `support`.
async fn old_rows(pool: &sqlx::AnyPool, data: &std::path::Path) -> (String, String) {
    let keys = KeyFile::load_or_create(&data.join("keys.json")).unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    let key = DataKey::generate();
    let wrapped = keys.wrap(&id, &key);
    let at = charter_store::now_us() - 3_600_000_000;
    sqlx::query("INSERT INTO subjects (id, created_at_us, kek_version, wrapped_key) VALUES ($1, $2, $3, $4)")
        .bind(&id)
        .bind(at)
        .bind(i64::from(wrapped.kek_version))
        .bind(wrapped.sealed.clone())
        .execute(pool)
        .await
        .unwrap();
    let normal = Normaliser::new(Some("US"), false).unwrap().normalise(IdentifierKind::Email, EMAIL).unwrap();
    sqlx::query("INSERT INTO subject_identifiers (kind, blind, subject_id) VALUES ('email', $1, $2)")
        .bind(keys.blind_indexer().index(&normal).to_vec())
        .bind(&id)
        .execute(pool)
        .await
        .unwrap();
    for v in OLD_VALUES {
        sqlx::query(
            "INSERT INTO field_values (subject_id, field, category, point, sealed, collected_at_us) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(v.field)
        .bind(v.category)
        .bind(v.point)
        .bind(key.seal_field(&id, v.field, v.category, v.value.as_bytes()))
        .bind(at)
        .execute(pool)
        .await
        .unwrap();
    }
    let object = uuid::Uuid::new_v4().to_string();
    let location = format!("subjects/{id}/{object}");
    let sealed = charter_vault::stream::seal_all(&key, &id, &object, OLD_FILE);
    let path = data.join("objects").join(&location);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, sealed).unwrap();
    sqlx::query(
        "INSERT INTO objects (id, subject_id, point, field, category, content_type, size, location, collected_at_us) \
         VALUES ($1, $2, 'support', 'attachment', 'user.content.attachment', 'text/plain', $3, $4, $5)",
    )
    .bind(&object)
    .bind(&id)
    .bind(OLD_FILE.len() as i64)
    .bind(&location)
    .bind(at)
    .execute(pool)
    .await
    .unwrap();
    (id, object)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_written_before_records_reads_back_after_the_upgrade() {
    for db in TestDb::backends("upgrade_records").await {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let pool = old_schema(&db).await;
        let (id, object) = old_rows(&pool, &data).await;
        pool.close().await;

        let app = TestApp::spawn_in_dir(&db, dir).await;
        let purposes = ["registration", "breach_notification", "support", "analytics"];
        let key = app.key("site", &purposes, &["signup", "support", "analytics"]).await;
        let reg = app.read(&key, &id, "purpose=registration").await;
        assert_eq!(reg.status, 200, "{}", reg.body);
        assert_eq!(
            (reg.body["fields"]["name"].as_str(), reg.body["fields"]["email"].as_str()),
            (Some(NAME), Some(EMAIL))
        );
        assert_eq!(reg.body["records"], json!([]), "{}", reg.body);

        // Values at record points became one record of their point; the object its own.
        let support = app.read(&key, &id, "purpose=support&point=support").await;
        assert_eq!(support.status, 200, "{}", support.body);
        let records = support.body["records"].as_array().unwrap();
        assert_eq!(records.len(), 2, "{}", support.body);
        let message = records.iter().find(|r| r["fields"].get("message").is_some()).unwrap();
        assert_eq!(message["fields"]["message"], "OLD-SUPPORT-MESSAGE");
        let file = records.iter().find(|r| r["files"].as_array().is_some_and(|f| !f.is_empty())).unwrap();
        assert_eq!(file["files"][0]["object_id"], object.as_str());
        let (status, back) = app.download(&key, &id, &object, "support").await;
        assert_eq!((status, back.as_slice()), (200, OLD_FILE));
        let analytics = app.read(&key, &id, "purpose=analytics").await;
        assert_eq!(analytics.body["records"][0]["fields"]["page"], "/old/pricing", "{}", analytics.body);

        // The profile values moved to keys of their own; the moved ones left the profile.
        let profile: Vec<(String, Option<Vec<u8>>)> =
            sqlx::query_as("SELECT field, wrapped_key FROM field_values WHERE subject_id = $1 ORDER BY field")
                .bind(&id)
                .fetch_all(app.state.store.pool())
                .await
                .unwrap();
        let names: Vec<&str> = profile.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(names, ["email", "name"]);
        assert!(profile.iter().all(|(_, k)| k.is_some()), "each value has its own key");
        let found = app
            .raw(
                "GET",
                "/v1/subjects/lookup?email=ada.lovelace%40analytical.example&purpose=registration",
                Some(&key),
                None,
            )
            .await;
        assert_eq!(found.body["subject_id"], id.as_str(), "{}", found.body);
        let upgrades: Vec<String> = sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'data.upgrade'")
            .fetch_all(app.state.store.pool())
            .await
            .unwrap();
        assert_eq!(upgrades.len(), 1, "{upgrades:?}");
        let values: Vec<&str> = OLD_VALUES.iter().map(|v| v.value).collect();
        assert_no_plaintext(&db, &values).await;

        // A second start finds nothing left to rewrite.
        let records_before = app.count("records").await;
        let dir = app.stop().await;
        let again = TestApp::spawn_in_dir(&db, dir).await;
        assert_eq!(again.count("records").await, records_before);
        let upgrades: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'data.upgrade'")
            .fetch_one(again.state.store.pool())
            .await
            .unwrap();
        assert_eq!(upgrades, 1);
        assert_eq!(again.read(&key, &id, "purpose=registration").await.status, 200);
        again.stop().await;
    }
}
