//! Invitations to a workspace. The invitation link's code is stored as a
//! SHA-256 digest only.

use sqlx::{Any, Executor, FromRow};

use crate::domain::Role;

#[derive(Debug, Clone, FromRow)]
pub struct InvitationRow {
    pub id: i64,
    pub workspace_id: i64,
    pub email: String,
    pub role: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub accepted_at: Option<i64>,
}

pub struct NewInvitation<'a> {
    pub workspace_id: i64,
    pub email: &'a str,
    pub role: Role,
    pub code_digest: &'a str,
    pub invited_by: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

macro_rules! columns {
    () => {
        "id, workspace_id, email, role, created_at, expires_at, accepted_at"
    };
}

pub async fn insert<'e>(
    ex: impl Executor<'e, Database = Any>,
    inv: &NewInvitation<'_>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO invitations (workspace_id, email, role, code_digest, invited_by, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(inv.workspace_id)
    .bind(inv.email)
    .bind(inv.role.as_str())
    .bind(inv.code_digest)
    .bind(inv.invited_by)
    .bind(inv.created_at)
    .bind(inv.expires_at)
    .fetch_one(ex)
    .await
}

pub async fn find_open_by_code<'e>(
    ex: impl Executor<'e, Database = Any>,
    code_digest: &str,
    now: i64,
) -> Result<Option<InvitationRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM invitations WHERE code_digest = $1 AND accepted_at IS NULL AND expires_at > $2"
    ))
    .bind(code_digest)
    .bind(now)
    .fetch_optional(ex)
    .await
}

/// Marks an open invitation accepted; false when someone else was first.
pub async fn accept<'e>(
    ex: impl Executor<'e, Database = Any>,
    id: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    sqlx::query("UPDATE invitations SET accepted_at = $1 WHERE id = $2 AND accepted_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(ex)
        .await
        .map(|r| r.rows_affected() == 1)
}

pub async fn pending_for_workspace<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
    now: i64,
) -> Result<Vec<InvitationRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM invitations WHERE workspace_id = $1 AND accepted_at IS NULL AND expires_at > $2 ORDER BY id DESC"
    ))
    .bind(workspace_id)
    .bind(now)
    .fetch_all(ex)
    .await
}
