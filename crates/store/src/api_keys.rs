//! API keys: a random token shown once; only its SHA-256 is stored.

use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use sqlx::Row as _;

use crate::{Store, StoreError};

/// A key as stored (never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id.
    pub id: String,
    /// Its unique name, which the audit chain records as the actor.
    pub name: String,
    /// Purposes it may read for.
    pub purposes: Vec<String>,
    /// Collection points it may collect at.
    pub points: Vec<String>,
    /// When it was revoked.
    pub revoked_at_us: Option<i64>,
}

/// Why a key could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    /// The name is taken.
    #[error("an API key named `{0}` already exists")]
    NameTaken(String),
    /// The database failed.
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn split(list: &str) -> Vec<String> {
    list.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

impl Store {
    /// Creates a key and returns its token, the only time it exists outside the caller's hands.
    pub async fn create_api_key(
        &self,
        name: &str,
        purposes: &[String],
        points: &[String],
        at_us: i64,
    ) -> Result<String, ApiKeyError> {
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let token = format!("chk_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw));
        let result = sqlx::query(
            "INSERT INTO api_keys (id, name, token_hash, purposes, points, created_at_us) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(name)
        .bind(hash(&token))
        .bind(purposes.join(","))
        .bind(points.join(","))
        .bind(at_us)
        .execute(self.pool())
        .await;
        match result {
            Ok(_) => Ok(token),
            Err(sqlx::Error::Database(db)) if db.kind() == sqlx::error::ErrorKind::UniqueViolation => {
                Err(ApiKeyError::NameTaken(name.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The key a token belongs to, revoked or not.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn api_key_by_token(&self, token: &str) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query("SELECT id, name, purposes, points, revoked_at_us FROM api_keys WHERE token_hash = $1")
            .bind(hash(token))
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| {
            Ok(ApiKey {
                id: r.try_get(0)?,
                name: r.try_get(1)?,
                purposes: split(&r.try_get::<String, _>(2)?),
                points: split(&r.try_get::<String, _>(3)?),
                revoked_at_us: r.try_get(4)?,
            })
        })
        .transpose()
    }

    /// Revokes the key named `name`; returns whether one was revoked.
    pub async fn revoke_api_key(&self, name: &str, at_us: i64) -> Result<bool, StoreError> {
        let n = sqlx::query("UPDATE api_keys SET revoked_at_us = $2 WHERE name = $1 AND revoked_at_us IS NULL")
            .bind(name)
            .bind(at_us)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(n == 1)
    }
}
