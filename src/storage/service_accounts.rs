//! Service accounts: `users` rows of kind `service_account`, each with one
//! membership (its workspace and role). They have no password and no
//! sign-in email; tokens, the token cache and revocation treat them as
//! any other token owner.

use sqlx::{Any, Executor, FromRow};

use crate::domain::{Role, UserId, WorkspaceId};

/// A service account as its pages show it.
#[derive(Debug, Clone, FromRow)]
pub struct ServiceAccountRow {
    #[sqlx(try_from = "i64")]
    pub id: UserId,
    pub name: String,
    #[sqlx(try_from = "i64")]
    pub workspace_id: WorkspaceId,
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// The email of the Admin who created it, while that account exists.
    pub created_by: Option<String>,
    pub created_at: i64,
    /// Its tokens, live or expired.
    pub tokens: i64,
}

macro_rules! select_row {
    () => {
        "SELECT u.id, u.name, m.workspace_id, m.role, c.email AS created_by, u.created_at, \
         (SELECT COUNT(*) FROM personal_access_tokens t WHERE t.user_id = u.id) AS tokens \
         FROM users u \
         JOIN memberships m ON m.user_id = u.id \
         LEFT JOIN users c ON c.id = u.created_by \
         WHERE u.kind = 'service_account'"
    };
}

/// Inserts the account's `users` row. `placeholder` fills the email column
/// (unique, never a valid address); the empty hash matches no password.
pub async fn insert<'e>(
    ex: impl Executor<'e, Database = Any>,
    placeholder: &str,
    name: &str,
    created_by: i64,
    now: i64,
) -> Result<i64, crate::storage::Error> {
    sqlx::query_scalar(
        "INSERT INTO users (email, name, password_hash, kind, created_by, created_at) \
         VALUES ($1, $2, '', 'service_account', $3, $4) RETURNING id",
    )
    .bind(placeholder)
    .bind(name)
    .bind(created_by)
    .bind(now)
    .fetch_one(ex)
    .await
    .map_err(Into::into)
}

/// The service accounts of a workspace, by name.
pub async fn list_in_workspace<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
) -> Result<Vec<ServiceAccountRow>, crate::storage::Error> {
    sqlx::query_as(concat!(
        select_row!(),
        " AND m.workspace_id = $1 ORDER BY u.name, u.id"
    ))
    .bind(workspace_id)
    .fetch_all(ex)
    .await
    .map_err(Into::into)
}

pub async fn find_in_workspace<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
    id: i64,
) -> Result<Option<ServiceAccountRow>, crate::storage::Error> {
    sqlx::query_as(concat!(
        select_row!(),
        " AND m.workspace_id = $1 AND u.id = $2"
    ))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(ex)
    .await
    .map_err(Into::into)
}

/// True when the workspace already has a service account of this name.
pub async fn name_taken<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
    name: &str,
) -> Result<bool, crate::storage::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM users u JOIN memberships m ON m.user_id = u.id \
         WHERE u.kind = 'service_account' AND m.workspace_id = $1 AND u.name = $2",
    )
    .bind(workspace_id)
    .bind(name)
    .fetch_one(ex)
    .await?;
    Ok(n > 0)
}

/// Deletes the account; its membership, tokens and sessions go with it
/// (foreign keys cascade). Returns the rows deleted (0 or 1).
pub async fn delete<'e>(
    ex: impl Executor<'e, Database = Any>,
    id: i64,
) -> Result<u64, crate::storage::Error> {
    sqlx::query("DELETE FROM users WHERE id = $1 AND kind = 'service_account'")
        .bind(id)
        .execute(ex)
        .await
        .map(|r| r.rows_affected())
        .map_err(Into::into)
}
