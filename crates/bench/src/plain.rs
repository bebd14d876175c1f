//! Baselines for `charter bench`: the same rows as the audit chain, written
//! without hashing, chaining or batching, so the chain's cost can be stated
//! as a ratio measured in the same run.

use charter_core::audit::AuditEvent;

use charter_store::Store;

/// Creates the baseline table (same columns as `audit_log`, no constraints beyond the key).
pub async fn create_plain_table(store: &Store) -> Result<(), sqlx::Error> {
    let blob = match store.backend() {
        charter_store::Backend::Sqlite => "BLOB",
        charter_store::Backend::Postgres => "BYTEA",
    };
    sqlx::query("DROP TABLE IF EXISTS bench_plain").execute(store.pool()).await?;
    sqlx::query(&format!(
        "CREATE TABLE bench_plain (seq BIGINT PRIMARY KEY, at_us BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, \
         subject TEXT, purpose TEXT, result TEXT NOT NULL, detail TEXT NOT NULL, prev_hash {blob} NOT NULL, hash {blob} NOT NULL)"
    ))
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Inserts one row into the baseline table, as a single autocommit statement.
pub async fn plain_insert(store: &Store, seq: i64, at_us: i64, e: &AuditEvent) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO bench_plain (seq, at_us, actor, action, subject, purpose, result, detail, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(seq)
    .bind(at_us)
    .bind(e.actor.clone())
    .bind(e.action.clone())
    .bind(e.subject.clone())
    .bind(e.purpose.clone())
    .bind(e.result.clone())
    .bind(e.detail.clone())
    .bind(vec![0u8; 32])
    .bind(vec![0u8; 32])
    .execute(store.pool())
    .await?;
    Ok(())
}
