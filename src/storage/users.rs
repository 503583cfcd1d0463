//! The `users` table.

use sqlx::{Any, Executor, FromRow};

use crate::domain::{AccountKind, UserId};

#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    #[sqlx(try_from = "i64")]
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
    #[sqlx(try_from = "String")]
    pub kind: AccountKind,
}

macro_rules! columns {
    () => {
        "id, email, name, password_hash, disabled_at, created_at, kind"
    };
}

pub async fn count<'e>(
    ex: impl Executor<'e, Database = Any>,
) -> Result<i64, crate::storage::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(ex)
        .await
        .map_err(Into::into)
}

pub async fn insert<'e>(
    ex: impl Executor<'e, Database = Any>,
    email: &str,
    name: &str,
    password_hash: &str,
    now: i64,
) -> Result<i64, crate::storage::Error> {
    sqlx::query_scalar("INSERT INTO users (email, name, password_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id")
        .bind(email)
        .bind(name)
        .bind(password_hash)
        .bind(now)
        .fetch_one(ex)
        .await.map_err(Into::into)
}

/// A member by email; service accounts have no sign-in email and are never
/// found here (so never signed in to, invited or matched by Basic auth).
pub async fn find_by_email<'e>(
    ex: impl Executor<'e, Database = Any>,
    email: &str,
) -> Result<Option<UserRow>, crate::storage::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM users WHERE email = $1 AND kind = 'member'"
    ))
    .bind(email)
    .fetch_optional(ex)
    .await
    .map_err(Into::into)
}

pub async fn find_by_id<'e>(
    ex: impl Executor<'e, Database = Any>,
    id: i64,
) -> Result<Option<UserRow>, crate::storage::Error> {
    sqlx::query_as(concat!("SELECT ", columns!(), " FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(ex)
        .await
        .map_err(Into::into)
}

pub async fn update_password<'e>(
    ex: impl Executor<'e, Database = Any>,
    id: i64,
    password_hash: &str,
) -> Result<(), crate::storage::Error> {
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(password_hash)
        .bind(id)
        .execute(ex)
        .await
        .map(|_| ())
        .map_err(Into::into)
}

pub async fn set_disabled<'e>(
    ex: impl Executor<'e, Database = Any>,
    id: i64,
    disabled_at: Option<i64>,
) -> Result<u64, crate::storage::Error> {
    sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2")
        .bind(disabled_at)
        .bind(id)
        .execute(ex)
        .await
        .map(|r| r.rows_affected())
        .map_err(Into::into)
}

/// Takes the write lock for one user's tokens inside a transaction.
///
/// Updating the user's row is the portable way to serialise token changes:
/// PostgreSQL locks the row until commit, SQLite takes its database write lock
/// at the first write instead of failing the transaction later. Quota, name
/// uniqueness and "revoke all" therefore see every token of the user.
/// Returns false when the user does not exist.
pub async fn lock_tokens<'e>(
    ex: impl Executor<'e, Database = Any>,
    id: i64,
) -> Result<bool, crate::storage::Error> {
    sqlx::query("UPDATE users SET token_version = token_version + 1 WHERE id = $1")
        .bind(id)
        .execute(ex)
        .await
        .map(|r| r.rows_affected() == 1)
        .map_err(Into::into)
}
