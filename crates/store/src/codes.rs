//! One-time codes: issued for an address (known or not, so both look alike), counted per
//! address and per client for rate limits, and spent at most once within their attempts.
//! The store never sees a code: only its MAC, which the caller makes and compares.

use crate::{Store, StoreError};

/// A code to keep.
#[derive(Debug, Clone)]
pub struct NewCode {
    /// The challenge's random id, sent with the code.
    pub id: String,
    /// What the code proves: `preferences`, `request`.
    pub purpose: &'static str,
    /// The subject the address names; `None` when it names nobody (the code never verifies).
    pub subject_id: Option<String>,
    /// The address's blind index, in hex.
    pub address_blind: String,
    /// The client's network, for the per-client limit.
    pub client: Option<String>,
    /// The code's MAC, in hex.
    pub code_mac: String,
    pub created_at_us: i64,
    pub expires_at_us: i64,
}

/// A code being tried: what it was issued for, when it is still live and has attempts left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempted {
    pub purpose: String,
    pub subject_id: Option<String>,
    pub code_mac: String,
}

impl Store {
    /// How many codes were issued since `since_us` for the address, and for the client.
    pub async fn codes_issued_since(
        &self,
        address_blind: &str,
        client: Option<&str>,
        since_us: i64,
    ) -> Result<(i64, i64), StoreError> {
        let per_address: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM one_time_codes WHERE address_blind = $1 AND created_at_us >= $2")
                .bind(address_blind)
                .bind(since_us)
                .fetch_one(self.pool())
                .await?;
        let per_client: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM one_time_codes WHERE client = $1 AND created_at_us >= $2")
                .bind(client)
                .bind(since_us)
                .fetch_one(self.pool())
                .await?;
        Ok((per_address, per_client))
    }

    /// Keeps a new code.
    pub async fn insert_code(&self, c: &NewCode) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO one_time_codes (id, purpose, subject_id, address_blind, client, code_mac, created_at_us, \
             expires_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&c.id)
        .bind(c.purpose)
        .bind(&c.subject_id)
        .bind(&c.address_blind)
        .bind(&c.client)
        .bind(&c.code_mac)
        .bind(c.created_at_us)
        .bind(c.expires_at_us)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Counts one attempt at code `id` and returns what it was issued for, when it is
    /// unspent, unexpired at `now_us` and had fewer than `max_attempts` attempts; `None`
    /// otherwise (the attempt is counted all the same).
    pub async fn attempt_code(
        &self,
        id: &str,
        now_us: i64,
        max_attempts: i64,
    ) -> Result<Option<Attempted>, StoreError> {
        let row: Option<(String, Option<String>, String)> = sqlx::query_as(
            "UPDATE one_time_codes SET attempts = attempts + 1 \
             WHERE id = $1 AND used_at_us IS NULL AND expires_at_us > $2 AND attempts < $3 \
             RETURNING purpose, subject_id, code_mac",
        )
        .bind(id)
        .bind(now_us)
        .bind(max_attempts)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(purpose, subject_id, code_mac)| Attempted { purpose, subject_id, code_mac }))
    }

    /// Spends code `id`: true for the one caller that spends it, false for every other.
    pub async fn spend_code(&self, id: &str, now_us: i64) -> Result<bool, StoreError> {
        let spent = sqlx::query("UPDATE one_time_codes SET used_at_us = $2 WHERE id = $1 AND used_at_us IS NULL")
            .bind(id)
            .bind(now_us)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(spent == 1)
    }

    /// Drops codes issued before `before_us`: long expired, and past every rate limit's window.
    pub async fn drop_codes_before(&self, before_us: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM one_time_codes WHERE created_at_us < $1")
            .bind(before_us)
            .execute(self.pool())
            .await?
            .rows_affected())
    }
}
