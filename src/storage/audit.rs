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
) -> Result<(), crate::storage::Error> {
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
    .map(|_| ()).map_err(Into::into)
}

/// Which events a query returns, ready to bind: every field always binds
/// (no NULL parameters), so one static query serves every combination.
#[derive(Debug, Clone)]
pub struct AuditQuery {
    /// A `LIKE` pattern over the lower-cased actor label (`%` for any).
    pub actor_pattern: String,
    /// An exact action, or empty for any.
    pub action: String,
    /// Unix seconds, inclusive.
    pub from: i64,
    /// Unix seconds, exclusive.
    pub until: i64,
}

impl Default for AuditQuery {
    fn default() -> Self {
        Self {
            actor_pattern: "%".to_owned(),
            action: String::new(),
            from: i64::MIN,
            until: i64::MAX,
        }
    }
}

/// Events of a workspace, and account events (sign-ins, failed sign-ins,
/// password changes) of its members, newest first, with ids below `before`
/// (keyset paging: each page starts where the last one ended, however long
/// the log), narrowed by `query`. An account event names the member as
/// actor, or as target when nobody signed in (a failed sign-in).
pub async fn page<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
    query: &AuditQuery,
    before: i64,
    limit: i64,
) -> Result<Vec<AuditRow>, crate::storage::Error> {
    sqlx::query_as(
        "SELECT id, workspace_id, actor_user_id, actor_token_id, actor_label, action, target_id, \
         target_label, detail, ip, user_agent, created_at FROM audit_events \
         WHERE (workspace_id = $1 OR (workspace_id IS NULL AND COALESCE(actor_user_id, target_id) IN \
         (SELECT user_id FROM memberships WHERE workspace_id = $1))) \
         AND id < $2 AND LOWER(actor_label) LIKE $3 ESCAPE '\\' AND ($4 = '' OR action = $4) \
         AND created_at >= $5 AND created_at < $6 \
         ORDER BY id DESC LIMIT $7",
    )
    .bind(workspace_id)
    .bind(before)
    .bind(&query.actor_pattern)
    .bind(&query.action)
    .bind(query.from)
    .bind(query.until)
    .bind(limit)
    .fetch_all(ex)
    .await.map_err(Into::into)
}

/// The actions recorded for a workspace and its members, for the filter's
/// suggestions.
pub async fn actions<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
) -> Result<Vec<String>, crate::storage::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT action FROM audit_events \
         WHERE workspace_id = $1 OR workspace_id IS NULL ORDER BY action",
    )
    .bind(workspace_id)
    .fetch_all(ex)
    .await
    .map_err(Into::into)
}

/// A failed sign-in, counted into the row of its aggregate key: the first
/// one inserts the event, the next ones only raise its count.
pub async fn count_failed_sign_in<'e>(
    ex: impl Executor<'e, Database = Any>,
    aggregate_key: &str,
    e: &NewAuditEvent<'_>,
) -> Result<(), crate::storage::Error> {
    sqlx::query(
        "INSERT INTO audit_events (workspace_id, actor_user_id, actor_token_id, actor_label, action, \
         target_id, target_label, detail, ip, user_agent, created_at, aggregate_key, occurrences) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, '1 failed sign-in', $8, $9, $10, $11, 1) \
         ON CONFLICT (aggregate_key) DO UPDATE SET occurrences = audit_events.occurrences + 1, \
         detail = CAST(audit_events.occurrences + 1 AS TEXT) || ' failed sign-ins'",
    )
    .bind(e.workspace_id)
    .bind(e.actor_user_id)
    .bind(e.actor_token_id)
    .bind(e.actor_label)
    .bind(e.action)
    .bind(e.target_id)
    .bind(e.target_label)
    .bind(e.ip)
    .bind(e.user_agent)
    .bind(e.created_at)
    .bind(aggregate_key)
    .execute(ex)
    .await
    .map(|_| ()).map_err(Into::into)
}

/// Deletes events older than `cutoff`; returns how many.
pub async fn delete_older_than<'e>(
    ex: impl Executor<'e, Database = Any>,
    cutoff: i64,
) -> Result<u64, crate::storage::Error> {
    sqlx::query("DELETE FROM audit_events WHERE created_at < $1")
        .bind(cutoff)
        .execute(ex)
        .await
        .map(|r| r.rows_affected())
        .map_err(Into::into)
}
