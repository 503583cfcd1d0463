//! The organization, its workspaces and their memberships.

use sqlx::{Any, Executor, FromRow};

use crate::domain::{Role, UserId, WorkspaceId};

#[derive(Debug, Clone, FromRow)]
pub struct WorkspaceRow {
    #[sqlx(try_from = "i64")]
    pub id: WorkspaceId,
    pub name: String,
}

/// One membership of a user, with its workspace's name.
#[derive(Debug, Clone, FromRow)]
pub struct MembershipRow {
    #[sqlx(try_from = "i64")]
    pub workspace_id: WorkspaceId,
    pub workspace_name: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
}

/// One member of a workspace.
#[derive(Debug, Clone, FromRow)]
pub struct MemberRow {
    #[sqlx(try_from = "i64")]
    pub user_id: UserId,
    pub email: String,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub disabled_at: Option<i64>,
    pub joined_at: i64,
}

pub async fn organization_id<'e>(
    ex: impl Executor<'e, Database = Any>,
) -> Result<Option<i64>, crate::storage::Error> {
    sqlx::query_scalar("SELECT id FROM organizations ORDER BY id LIMIT 1")
        .fetch_optional(ex)
        .await
        .map_err(Into::into)
}

pub async fn insert_organization<'e>(
    ex: impl Executor<'e, Database = Any>,
    name: &str,
    now: i64,
) -> Result<i64, crate::storage::Error> {
    sqlx::query_scalar("INSERT INTO organizations (name, created_at) VALUES ($1, $2) RETURNING id")
        .bind(name)
        .bind(now)
        .fetch_one(ex)
        .await
        .map_err(Into::into)
}

pub async fn insert_workspace<'e>(
    ex: impl Executor<'e, Database = Any>,
    organization_id: i64,
    name: &str,
    now: i64,
) -> Result<i64, crate::storage::Error> {
    sqlx::query_scalar("INSERT INTO workspaces (organization_id, name, created_at) VALUES ($1, $2, $3) RETURNING id")
        .bind(organization_id)
        .bind(name)
        .bind(now)
        .fetch_one(ex)
        .await.map_err(Into::into)
}

pub async fn find_workspace_by_name<'e>(
    ex: impl Executor<'e, Database = Any>,
    name: &str,
) -> Result<Option<WorkspaceRow>, crate::storage::Error> {
    sqlx::query_as("SELECT id, name FROM workspaces WHERE name = $1")
        .bind(name)
        .fetch_optional(ex)
        .await
        .map_err(Into::into)
}

/// Renames a workspace; returns the rows changed (0 or 1).
pub async fn rename_workspace<'e>(
    ex: impl Executor<'e, Database = Any>,
    id: i64,
    name: &str,
) -> Result<u64, crate::storage::Error> {
    sqlx::query("UPDATE workspaces SET name = $1 WHERE id = $2")
        .bind(name)
        .bind(id)
        .execute(ex)
        .await
        .map(|r| r.rows_affected())
        .map_err(Into::into)
}

pub async fn insert_membership<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
    user_id: i64,
    role: Role,
    now: i64,
) -> Result<(), crate::storage::Error> {
    sqlx::query(
        "INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(workspace_id)
    .bind(user_id)
    .bind(role.as_str())
    .bind(now)
    .execute(ex)
    .await
    .map(|_| ())
    .map_err(Into::into)
}

pub async fn memberships_of_user<'e>(
    ex: impl Executor<'e, Database = Any>,
    user_id: i64,
) -> Result<Vec<MembershipRow>, crate::storage::Error> {
    sqlx::query_as(
        "SELECT m.workspace_id, w.name AS workspace_name, m.role \
         FROM memberships m JOIN workspaces w ON w.id = m.workspace_id \
         WHERE m.user_id = $1 ORDER BY w.name",
    )
    .bind(user_id)
    .fetch_all(ex)
    .await
    .map_err(Into::into)
}

/// Members of a workspace ordered by user id, after `after` (for paging).
pub async fn members_of_workspace<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<MemberRow>, crate::storage::Error> {
    sqlx::query_as(
        "SELECT u.id AS user_id, u.email, u.name, m.role, u.disabled_at, m.created_at AS joined_at \
         FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE m.workspace_id = $1 AND u.id > $2 AND u.kind = 'member' ORDER BY u.id LIMIT $3",
    )
    .bind(workspace_id)
    .bind(after)
    .bind(limit)
    .fetch_all(ex)
    .await
    .map_err(Into::into)
}

pub async fn find_member<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
    user_id: i64,
) -> Result<Option<MemberRow>, crate::storage::Error> {
    sqlx::query_as(
        "SELECT u.id AS user_id, u.email, u.name, m.role, u.disabled_at, m.created_at AS joined_at \
         FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE m.workspace_id = $1 AND u.id = $2 AND u.kind = 'member'",
    )
    .bind(workspace_id)
    .bind(user_id)
    .fetch_optional(ex)
    .await
    .map_err(Into::into)
}

pub async fn set_role<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
    user_id: i64,
    role: Role,
) -> Result<u64, crate::storage::Error> {
    sqlx::query("UPDATE memberships SET role = $1 WHERE workspace_id = $2 AND user_id = $3")
        .bind(role.as_str())
        .bind(workspace_id)
        .bind(user_id)
        .execute(ex)
        .await
        .map(|r| r.rows_affected())
        .map_err(Into::into)
}

pub async fn remove_membership<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
    user_id: i64,
) -> Result<u64, crate::storage::Error> {
    sqlx::query("DELETE FROM memberships WHERE workspace_id = $1 AND user_id = $2")
        .bind(workspace_id)
        .bind(user_id)
        .execute(ex)
        .await
        .map(|r| r.rows_affected())
        .map_err(Into::into)
}

pub async fn count_admins<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
) -> Result<i64, crate::storage::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE m.workspace_id = $1 AND m.role = 'admin' AND u.disabled_at IS NULL AND u.kind = 'member'",
    )
    .bind(workspace_id)
    .fetch_one(ex)
    .await.map_err(Into::into)
}

/// Names and emails of the active Admins of a workspace, for the help line.
pub async fn admin_contacts<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
) -> Result<Vec<(String, String)>, crate::storage::Error> {
    sqlx::query_as(
        "SELECT u.name, u.email FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE m.workspace_id = $1 AND m.role = 'admin' AND u.disabled_at IS NULL AND u.kind = 'member' ORDER BY u.id LIMIT 5",
    )
    .bind(workspace_id)
    .fetch_all(ex)
    .await.map_err(Into::into)
}

/// Serialises changes to memberships and account status inside a
/// transaction (the "at least one Admin" checks must see each other's
/// writes): PostgreSQL locks the organization row until commit, SQLite
/// takes its write lock at once.
pub async fn lock_memberships<'e>(
    ex: impl Executor<'e, Database = Any>,
) -> Result<(), crate::storage::Error> {
    sqlx::query("UPDATE organizations SET name = name")
        .execute(ex)
        .await
        .map(|_| ())
        .map_err(Into::into)
}
