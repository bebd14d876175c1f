//! The privacy team's console accounts and sessions. Tokens (setup links, session
//! cookies) are kept only as MACs the caller makes.

use sqlx::Row as _;

use crate::{Store, StoreError};

/// A console account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub id: String,
    pub email_blind: String,
    /// `privacy` (acts) or `auditor` (reads only).
    pub role: String,
    pub password_hash: Option<String>,
    pub totp_salt: String,
    pub setup_mac: Option<String>,
    pub setup_until_us: Option<i64>,
    pub created_at_us: i64,
    pub disabled_at_us: Option<i64>,
}

const COLUMNS: &str =
    "id, email_blind, role, password_hash, totp_salt, setup_mac, setup_until_us, created_at_us, disabled_at_us";

fn admin_from(r: &sqlx::any::AnyRow) -> Result<Admin, StoreError> {
    Ok(Admin {
        id: r.try_get("id")?,
        email_blind: r.try_get("email_blind")?,
        role: r.try_get("role")?,
        password_hash: r.try_get("password_hash")?,
        totp_salt: r.try_get("totp_salt")?,
        setup_mac: r.try_get("setup_mac")?,
        setup_until_us: r.try_get("setup_until_us")?,
        created_at_us: r.try_get("created_at_us")?,
        disabled_at_us: r.try_get("disabled_at_us")?,
    })
}

impl Store {
    /// Adds an account, or gives an existing one (same email) a new setup link; the
    /// account as stored.
    pub async fn put_admin(&self, a: &Admin) -> Result<Admin, StoreError> {
        let sql = format!(
            "INSERT INTO admins ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (email_blind) DO UPDATE SET role = excluded.role, setup_mac = excluded.setup_mac, \
             setup_until_us = excluded.setup_until_us, disabled_at_us = NULL RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(&a.id)
            .bind(&a.email_blind)
            .bind(&a.role)
            .bind(&a.password_hash)
            .bind(&a.totp_salt)
            .bind(&a.setup_mac)
            .bind(a.setup_until_us)
            .bind(a.created_at_us)
            .bind(a.disabled_at_us)
            .fetch_one(self.pool())
            .await?;
        admin_from(&row)
    }

    /// The account whose email has this blind index.
    pub async fn admin_by_email(&self, email_blind: &str) -> Result<Option<Admin>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM admins WHERE email_blind = $1"))
            .bind(email_blind)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(admin_from).transpose()
    }

    /// The account a live setup link (by its MAC) opens at `now_us`.
    pub async fn admin_by_setup(&self, setup_mac: &str, now_us: i64) -> Result<Option<Admin>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM admins WHERE setup_mac = $1 AND setup_until_us > $2"))
            .bind(setup_mac)
            .bind(now_us)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(admin_from).transpose()
    }

    /// Sets an account's password from its setup link, spending the link: false when the
    /// link was spent meanwhile.
    pub async fn finish_admin_setup(&self, id: &str, setup_mac: &str, password_hash: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE admins SET password_hash = $3, setup_mac = NULL, setup_until_us = NULL WHERE id = $1 AND setup_mac = $2",
        )
        .bind(id)
        .bind(setup_mac)
        .bind(password_hash)
        .execute(self.pool())
        .await?
        .rows_affected()
            == 1)
    }

    /// Starts a session.
    pub async fn add_admin_session(
        &self,
        token_mac: &str,
        admin_id: &str,
        expires_at_us: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO admin_sessions (token_mac, admin_id, expires_at_us) VALUES ($1, $2, $3)")
            .bind(token_mac)
            .bind(admin_id)
            .bind(expires_at_us)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The account of a live session at `now_us`, when it is not disabled.
    pub async fn admin_by_session(&self, token_mac: &str, now_us: i64) -> Result<Option<Admin>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM admins a JOIN admin_sessions s ON s.admin_id = a.id \
             WHERE s.token_mac = $1 AND s.expires_at_us > $2 AND a.disabled_at_us IS NULL",
            COLUMNS.split(", ").map(|c| format!("a.{c}")).collect::<Vec<_>>().join(", ")
        ))
        .bind(token_mac)
        .bind(now_us)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(admin_from).transpose()
    }

    /// Ends a session.
    pub async fn end_admin_session(&self, token_mac: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM admin_sessions WHERE token_mac = $1").bind(token_mac).execute(self.pool()).await?;
        Ok(())
    }
}
