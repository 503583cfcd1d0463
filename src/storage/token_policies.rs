//! The `token_policies` table: one row per workspace that has a policy, and
//! the queries that find the tokens outside it.

use sqlx::{Any, Executor, FromRow};

use crate::domain::TokenPolicy;
use crate::storage::tokens::TokenRow;

#[derive(Debug, Clone, FromRow)]
struct PolicyRow {
    max_lifetime_days: Option<i64>,
    require_expiry: i64,
}

/// The workspace's policy; no row means no policy.
pub async fn get<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
) -> Result<TokenPolicy, crate::storage::Error> {
    let row: Option<PolicyRow> = sqlx::query_as(
        "SELECT max_lifetime_days, require_expiry FROM token_policies WHERE workspace_id = $1",
    )
    .bind(workspace_id)
    .fetch_optional(ex)
    .await?;
    Ok(row
        .map(|r| TokenPolicy::from_stored(r.max_lifetime_days, r.require_expiry != 0))
        .unwrap_or_default())
}

pub async fn upsert<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
    policy: TokenPolicy,
    now: i64,
) -> Result<(), crate::storage::Error> {
    sqlx::query(
        "INSERT INTO token_policies (workspace_id, max_lifetime_days, require_expiry, updated_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (workspace_id) DO UPDATE SET max_lifetime_days = excluded.max_lifetime_days, \
         require_expiry = excluded.require_expiry, updated_at = excluded.updated_at",
    )
    .bind(workspace_id)
    .bind(policy.max_lifetime_days())
    .bind(i64::from(policy.requires_expiry()))
    .bind(now)
    .execute(ex)
    .await
    .map(|_| ())
    .map_err(Into::into)
}

/// The condition on token `t` for "outside the policy": no expiry where one
/// is required ($2 = 1), or a lifetime longer than $3 days (when not NULL).
macro_rules! outside {
    () => {
        "((t.expires_at IS NULL AND $2 = 1) \
          OR (t.expires_at IS NOT NULL AND $3 IS NOT NULL AND t.expires_at - t.created_at > $3 * 86400))"
    };
}

/// Live tokens of a workspace outside `policy` at `now`, oldest first.
pub async fn tokens_outside<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
    policy: TokenPolicy,
    now: i64,
) -> Result<Vec<TokenRow>, crate::storage::Error> {
    sqlx::query_as(concat!(
        "SELECT t.id, t.user_id, u.email AS owner_email, u.kind AS owner_kind, u.name AS owner_name, \
         t.workspace_id, w.name AS workspace_name, \
         t.name, t.scope, t.last4, t.created_at, t.expires_at, t.last_used_at \
         FROM personal_access_tokens t \
         JOIN users u ON u.id = t.user_id \
         JOIN workspaces w ON w.id = t.workspace_id \
         WHERE t.workspace_id = $1 AND (t.expires_at IS NULL OR t.expires_at > $4) AND ",
        outside!(),
        " ORDER BY t.id"
    ))
    .bind(workspace_id)
    .bind(i64::from(policy.requires_expiry()))
    .bind(policy.max_lifetime_days())
    .bind(now)
    .fetch_all(ex)
    .await.map_err(Into::into)
}

/// Deletes the workspace's live tokens outside `policy`; returns the
/// (id, name) of each.
pub async fn delete_tokens_outside<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
    policy: TokenPolicy,
    now: i64,
) -> Result<Vec<(i64, String)>, crate::storage::Error> {
    sqlx::query_as(concat!(
        "DELETE FROM personal_access_tokens WHERE id IN \
         (SELECT t.id FROM personal_access_tokens t WHERE t.workspace_id = $1 \
         AND (t.expires_at IS NULL OR t.expires_at > $4) AND ",
        outside!(),
        ") RETURNING id, name"
    ))
    .bind(workspace_id)
    .bind(i64::from(policy.requires_expiry()))
    .bind(policy.max_lifetime_days())
    .bind(now)
    .fetch_all(ex)
    .await
    .map_err(Into::into)
}
