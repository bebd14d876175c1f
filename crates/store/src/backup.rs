//! What backups and restores ask of the database: a snapshot of a SQLite file, the
//! key-encryption-key versions the data needs, the objects whose bytes a restore puts
//! back, and old values a replayed rectification erases.

use std::path::Path;

use crate::{Backend, Store, StoreError};

impl Store {
    /// Writes a consistent copy of one SQLite schema (`main`, or `audit` for the chain's
    /// file) to `to`, which must not exist. SQLite only.
    pub async fn snapshot_sqlite(&self, schema: &str, to: &Path) -> Result<(), StoreError> {
        debug_assert!(self.backend() == Backend::Sqlite && matches!(schema, "main" | "audit"));
        let path = to.to_str().ok_or_else(|| sqlx::Error::Protocol("a backup path is not UTF-8".into()))?;
        sqlx::query(&format!("VACUUM {schema} INTO $1")).bind(path).execute(self.pool()).await?;
        Ok(())
    }

    /// The key-encryption-key versions that wrapped keys in the database need.
    pub async fn kek_versions_in_use(&self) -> Result<Vec<u32>, StoreError> {
        let versions: Vec<i64> = sqlx::query_scalar(
            "SELECT kek_version FROM subjects WHERE wrapped_key IS NOT NULL AND kek_version IS NOT NULL \
             UNION SELECT kek_version FROM jobs WHERE kek_version IS NOT NULL ORDER BY 1",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(versions.into_iter().filter_map(|v| u32::try_from(v).ok()).collect())
    }

    /// Where every stored object's bytes live.
    pub async fn object_locations(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT location FROM objects ORDER BY location").fetch_all(self.pool()).await?)
    }

    /// Deletes a subject's profile values of `fields` (a rectification's old values);
    /// how many went.
    pub async fn forget_values(&self, subject_id: &str, fields: &[String]) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let mut n = 0;
        for f in fields {
            n += sqlx::query("DELETE FROM field_values WHERE subject_id = $1 AND field = $2")
                .bind(subject_id)
                .bind(f)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        if n > 0 {
            self.purge_wal().await;
        }
        Ok(n)
    }
}
