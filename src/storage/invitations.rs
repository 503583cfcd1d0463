//! Invitations to a workspace. The invitation link's code is stored as a
//! SHA-256 digest only.
//!
//! An invitation is open while it is unaccepted, unexpired, and its inviter
//! is still an enabled Admin of the workspace: removing, demoting or
//! disabling an Admin (through the dashboard or straight in the database)
//! voids what they sent.

use sqlx::{Any, Executor, FromRow};

use crate::domain::{Role, WorkspaceId};

#[derive(Debug, Clone, FromRow)]
pub struct InvitationRow {
    pub id: i64,
    #[sqlx(try_from = "i64")]
    pub workspace_id: WorkspaceId,
    pub email: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub created_at: i64,
    pub expires_at: i64,
    pub accepted_at: Option<i64>,
    pub invited_by: Option<i64>,
    /// The inviter's email (empty when the account is gone).
    pub inviter_email: String,
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
        "i.id, i.workspace_id, i.email, i.role, i.created_at, i.expires_at, i.accepted_at, \
         i.invited_by, COALESCE(u.email, '') AS inviter_email \
         FROM invitations i LEFT JOIN users u ON u.id = i.invited_by"
    };
}

/// The condition that makes an invitation `i` open at `$now` (a parameter
/// named by the caller).
macro_rules! open_at {
    ($now:literal) => {
        concat!(
            "i.accepted_at IS NULL AND i.expires_at > ",
            $now,
            " AND EXISTS (SELECT 1 FROM memberships m JOIN users a ON a.id = m.user_id \
             WHERE m.workspace_id = i.workspace_id AND m.user_id = i.invited_by \
             AND m.role = 'admin' AND a.disabled_at IS NULL)"
        )
    };
}

pub async fn insert<'e>(
    ex: impl Executor<'e, Database = Any>,
    inv: &NewInvitation<'_>,
) -> Result<i64, crate::storage::Error> {
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
    .await.map_err(Into::into)
}

pub async fn find_open_by_code<'e>(
    ex: impl Executor<'e, Database = Any>,
    code_digest: &str,
    now: i64,
) -> Result<Option<InvitationRow>, crate::storage::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " WHERE i.code_digest = $1 AND ",
        open_at!("$2")
    ))
    .bind(code_digest)
    .bind(now)
    .fetch_optional(ex)
    .await
    .map_err(Into::into)
}

/// Marks an invitation accepted if it is still open (checked again here,
/// inside the accepting transaction); false when it is not.
pub async fn accept<'e>(
    ex: impl Executor<'e, Database = Any>,
    id: i64,
    now: i64,
) -> Result<bool, crate::storage::Error> {
    sqlx::query(concat!(
        "UPDATE invitations SET accepted_at = $1 WHERE id = $2 AND EXISTS (SELECT 1 FROM invitations i WHERE i.id = $2 AND ",
        open_at!("$1"),
        ")"
    ))
    .bind(now)
    .bind(id)
    .execute(ex)
    .await
    .map(|r| r.rows_affected() == 1).map_err(Into::into)
}

pub async fn pending_for_workspace<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
    now: i64,
) -> Result<Vec<InvitationRow>, crate::storage::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " WHERE i.workspace_id = $1 AND ",
        open_at!("$2"),
        " ORDER BY i.id DESC"
    ))
    .bind(workspace_id)
    .bind(now)
    .fetch_all(ex)
    .await
    .map_err(Into::into)
}

/// One pending invitation of a workspace.
pub async fn find_pending<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
    id: i64,
    now: i64,
) -> Result<Option<InvitationRow>, crate::storage::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " WHERE i.workspace_id = $1 AND i.id = $2 AND ",
        open_at!("$3")
    ))
    .bind(workspace_id)
    .bind(id)
    .bind(now)
    .fetch_optional(ex)
    .await
    .map_err(Into::into)
}

/// Deletes an unaccepted invitation of a workspace; false when there was none.
pub async fn delete_pending<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
    id: i64,
) -> Result<bool, crate::storage::Error> {
    sqlx::query(
        "DELETE FROM invitations WHERE workspace_id = $1 AND id = $2 AND accepted_at IS NULL",
    )
    .bind(workspace_id)
    .bind(id)
    .execute(ex)
    .await
    .map(|r| r.rows_affected() == 1)
    .map_err(Into::into)
}
