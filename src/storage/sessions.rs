//! Server-side session state. Rows are keyed by the SHA-256 of the session
//! key, so a copy of the table does not let anyone take over a session.

use sqlx::{Any, Executor};

pub async fn load<'e>(
    ex: impl Executor<'e, Database = Any>,
    key_digest: &str,
    now: i64,
) -> Result<Option<String>, crate::storage::Error> {
    sqlx::query_scalar("SELECT state FROM sessions WHERE key_digest = $1 AND expires_at > $2")
        .bind(key_digest)
        .bind(now)
        .fetch_optional(ex)
        .await
        .map_err(Into::into)
}

pub async fn insert<'e>(
    ex: impl Executor<'e, Database = Any>,
    key_digest: &str,
    user_id: Option<i64>,
    state: &str,
    expires_at: i64,
) -> Result<(), crate::storage::Error> {
    sqlx::query(
        "INSERT INTO sessions (key_digest, user_id, state, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(key_digest)
    .bind(user_id)
    .bind(state)
    .bind(expires_at)
    .execute(ex)
    .await
    .map(|_| ())
    .map_err(Into::into)
}

/// Returns the number of rows changed: 0 when the session was deleted.
pub async fn update<'e>(
    ex: impl Executor<'e, Database = Any>,
    key_digest: &str,
    user_id: Option<i64>,
    state: &str,
    expires_at: i64,
) -> Result<u64, crate::storage::Error> {
    sqlx::query(
        "UPDATE sessions SET user_id = $1, state = $2, expires_at = $3 WHERE key_digest = $4",
    )
    .bind(user_id)
    .bind(state)
    .bind(expires_at)
    .bind(key_digest)
    .execute(ex)
    .await
    .map(|r| r.rows_affected())
    .map_err(Into::into)
}

pub async fn update_expiry<'e>(
    ex: impl Executor<'e, Database = Any>,
    key_digest: &str,
    expires_at: i64,
) -> Result<(), crate::storage::Error> {
    sqlx::query("UPDATE sessions SET expires_at = $1 WHERE key_digest = $2")
        .bind(expires_at)
        .bind(key_digest)
        .execute(ex)
        .await
        .map(|_| ())
        .map_err(Into::into)
}

pub async fn delete<'e>(
    ex: impl Executor<'e, Database = Any>,
    key_digest: &str,
) -> Result<(), crate::storage::Error> {
    sqlx::query("DELETE FROM sessions WHERE key_digest = $1")
        .bind(key_digest)
        .execute(ex)
        .await
        .map(|_| ())
        .map_err(Into::into)
}

pub async fn delete_for_user<'e>(
    ex: impl Executor<'e, Database = Any>,
    user_id: i64,
) -> Result<u64, crate::storage::Error> {
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(ex)
        .await
        .map(|r| r.rows_affected())
        .map_err(Into::into)
}

pub async fn delete_expired<'e>(
    ex: impl Executor<'e, Database = Any>,
    now: i64,
) -> Result<u64, crate::storage::Error> {
    sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(ex)
        .await
        .map(|r| r.rows_affected())
        .map_err(Into::into)
}
