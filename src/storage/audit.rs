//! The append-only `audit_events` table.

use sqlx::{Any, Executor, FromRow};

#[derive(Debug, Clone, FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub workspace_id: Option<i64>,
    pub actor_user_id: Option<i64>,
    pub actor_token_id: Option<i64>,
    pub actor_label: String,
    pub action: String,
    pub target_id: Option<i64>,
    pub target_label: String,
    pub detail: String,
    pub ip: String,
    pub user_agent: String,
    pub created_at: i64,
}

pub struct NewAuditEvent<'a> {
    pub workspace_id: Option<i64>,
    pub actor_user_id: Option<i64>,
    pub actor_token_id: Option<i64>,
    pub actor_label: &'a str,
    pub action: &'a str,
    pub target_id: Option<i64>,
    pub target_label: &'a str,
    pub detail: &'a str,
    pub ip: &'a str,
    pub user_agent: &'a str,
    pub created_at: i64,
}

pub async fn insert<'e>(
    ex: impl Executor<'e, Database = Any>,
    e: &NewAuditEvent<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_events (workspace_id, actor_user_id, actor_token_id, actor_label, action, \
         target_id, target_label, detail, ip, user_agent, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(e.workspace_id)
    .bind(e.actor_user_id)
    .bind(e.actor_token_id)
    .bind(e.actor_label)
    .bind(e.action)
    .bind(e.target_id)
    .bind(e.target_label)
    .bind(e.detail)
    .bind(e.ip)
    .bind(e.user_agent)
    .bind(e.created_at)
    .execute(ex)
    .await
    .map(|_| ())
}

/// Events of a workspace, and account events (sign-ins, password changes)
/// of its members, newest first, with ids below `before`.
pub async fn page<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
    before: i64,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, workspace_id, actor_user_id, actor_token_id, actor_label, action, target_id, \
         target_label, detail, ip, user_agent, created_at FROM audit_events \
         WHERE (workspace_id = $1 OR (workspace_id IS NULL AND actor_user_id IN \
         (SELECT user_id FROM memberships WHERE workspace_id = $1))) \
         AND id < $2 ORDER BY id DESC LIMIT $3",
    )
    .bind(workspace_id)
    .bind(before)
    .bind(limit)
    .fetch_all(ex)
    .await
}
