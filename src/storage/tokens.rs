//! The `personal_access_tokens` table. Rows hold the SHA-256 digest of a
//! token and its last four characters, never the token itself.

use std::sync::Arc;

use sqlx::{Any, Executor, FromRow};

use crate::domain::{AccountKind, Role, Scope, TokenId, UserId, WorkspaceId};

/// Token metadata, as lists and the API show it.
#[derive(Debug, Clone, FromRow)]
pub struct TokenRow {
    #[sqlx(try_from = "i64")]
    pub id: TokenId,
    #[sqlx(try_from = "i64")]
    pub user_id: UserId,
    pub owner_email: String,
    #[sqlx(try_from = "String")]
    pub owner_kind: AccountKind,
    pub owner_name: String,
    #[sqlx(try_from = "i64")]
    pub workspace_id: WorkspaceId,
    pub workspace_name: String,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub scope: Scope,
    pub last4: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl TokenRow {
    /// Who holds the token, as people read it: a member's email, or a
    /// service account's name (it has no email).
    pub fn owner_label(&self) -> String {
        match self.owner_kind {
            AccountKind::Member => self.owner_email.clone(),
            AccountKind::ServiceAccount => format!("service account {}", self.owner_name),
        }
    }
}

/// Everything a request needs to decide what a token may do: the token, its
/// owner's status and the owner's current role in the token's workspace
/// (`None` when the owner is no longer a member).
#[derive(Debug, Clone, FromRow)]
pub struct AuthRow {
    #[sqlx(try_from = "i64")]
    pub token_id: TokenId,
    #[sqlx(try_from = "String")]
    pub token_name: Arc<str>,
    #[sqlx(try_from = "String")]
    pub scope: Scope,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    #[sqlx(try_from = "i64")]
    pub user_id: UserId,
    #[sqlx(try_from = "String")]
    pub email: Arc<str>,
    #[sqlx(try_from = "String")]
    pub user_name: Arc<str>,
    #[sqlx(try_from = "String")]
    pub kind: AccountKind,
    pub disabled_at: Option<i64>,
    #[sqlx(try_from = "i64")]
    pub workspace_id: WorkspaceId,
    #[sqlx(try_from = "String")]
    pub workspace_name: Arc<str>,
    #[sqlx(try_from = "Option<String>")]
    pub role: RoleIfMember,
}

/// The owner's role in the token's workspace, `None` when the owner is no
/// longer a member. Like every role column, a value that is not a role is an
/// error when the row is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleIfMember(pub Option<Role>);

impl TryFrom<Option<String>> for RoleIfMember {
    type Error = crate::domain::ValidationError;

    fn try_from(stored: Option<String>) -> Result<Self, Self::Error> {
        stored.map(Role::try_from).transpose().map(RoleIfMember)
    }
}

pub struct NewToken<'a> {
    pub user_id: i64,
    pub workspace_id: i64,
    pub name: &'a str,
    pub scope: Scope,
    pub digest: &'a str,
    pub last4: &'a str,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

macro_rules! select_row {
    () => {
        "SELECT t.id, t.user_id, u.email AS owner_email, u.kind AS owner_kind, u.name AS owner_name, t.workspace_id, w.name AS workspace_name, \
     t.name, t.scope, t.last4, t.created_at, t.expires_at, t.last_used_at \
     FROM personal_access_tokens t \
     JOIN users u ON u.id = t.user_id \
     JOIN workspaces w ON w.id = t.workspace_id"
    };
}

pub async fn insert<'e>(
    ex: impl Executor<'e, Database = Any>,
    token: &NewToken<'_>,
) -> Result<i64, crate::storage::Error> {
    sqlx::query_scalar(
        "INSERT INTO personal_access_tokens \
         (user_id, workspace_id, name, scope, digest, last4, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(token.user_id)
    .bind(token.workspace_id)
    .bind(token.name)
    .bind(token.scope.as_str())
    .bind(token.digest)
    .bind(token.last4)
    .bind(token.created_at)
    .bind(token.expires_at)
    .fetch_one(ex)
    .await
    .map_err(Into::into)
}

/// Live tokens (not expired at `now`) of a user.
pub async fn count_live<'e>(
    ex: impl Executor<'e, Database = Any>,
    user_id: i64,
    now: i64,
) -> Result<i64, crate::storage::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM personal_access_tokens \
         WHERE user_id = $1 AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(user_id)
    .bind(now)
    .fetch_one(ex)
    .await
    .map_err(Into::into)
}

pub async fn live_name_taken<'e>(
    ex: impl Executor<'e, Database = Any>,
    user_id: i64,
    name: &str,
    now: i64,
) -> Result<bool, crate::storage::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM personal_access_tokens \
         WHERE user_id = $1 AND name = $2 AND (expires_at IS NULL OR expires_at > $3)",
    )
    .bind(user_id)
    .bind(name)
    .bind(now)
    .fetch_one(ex)
    .await?;
    Ok(n > 0)
}

/// Every token of a user, newest first.
pub async fn list_for_user<'e>(
    ex: impl Executor<'e, Database = Any>,
    user_id: i64,
) -> Result<Vec<TokenRow>, crate::storage::Error> {
    sqlx::query_as(concat!(
        select_row!(),
        " WHERE t.user_id = $1 ORDER BY t.id DESC"
    ))
    .bind(user_id)
    .fetch_all(ex)
    .await
    .map_err(Into::into)
}

/// One page of a user's tokens in every workspace, by ascending id after `after`.
pub async fn page_for_user<'e>(
    ex: impl Executor<'e, Database = Any>,
    user_id: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<TokenRow>, crate::storage::Error> {
    sqlx::query_as(concat!(
        select_row!(),
        " WHERE t.user_id = $1 AND t.id > $2 ORDER BY t.id LIMIT $3"
    ))
    .bind(user_id)
    .bind(after)
    .bind(limit)
    .fetch_all(ex)
    .await
    .map_err(Into::into)
}

/// One page of a member's tokens in one workspace, by ascending id after `after`.
pub async fn page_for_member<'e>(
    ex: impl Executor<'e, Database = Any>,
    user_id: i64,
    workspace_id: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<TokenRow>, crate::storage::Error> {
    sqlx::query_as(concat!(
        select_row!(),
        " WHERE t.user_id = $1 AND t.workspace_id = $2 AND t.id > $3 ORDER BY t.id LIMIT $4"
    ))
    .bind(user_id)
    .bind(workspace_id)
    .bind(after)
    .bind(limit)
    .fetch_all(ex)
    .await
    .map_err(Into::into)
}

/// One page of a workspace's tokens, by ascending id after `after`.
pub async fn page_for_workspace<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<TokenRow>, crate::storage::Error> {
    sqlx::query_as(concat!(
        select_row!(),
        " WHERE t.workspace_id = $1 AND t.id > $2 ORDER BY t.id LIMIT $3"
    ))
    .bind(workspace_id)
    .bind(after)
    .bind(limit)
    .fetch_all(ex)
    .await
    .map_err(Into::into)
}

pub async fn find_for_user<'e>(
    ex: impl Executor<'e, Database = Any>,
    user_id: i64,
    id: i64,
) -> Result<Option<TokenRow>, crate::storage::Error> {
    sqlx::query_as(concat!(
        select_row!(),
        " WHERE t.user_id = $1 AND t.id = $2"
    ))
    .bind(user_id)
    .bind(id)
    .fetch_optional(ex)
    .await
    .map_err(Into::into)
}

pub async fn find_in_workspace<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
    id: i64,
) -> Result<Option<TokenRow>, crate::storage::Error> {
    sqlx::query_as(concat!(
        select_row!(),
        " WHERE t.workspace_id = $1 AND t.id = $2"
    ))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(ex)
    .await
    .map_err(Into::into)
}

pub async fn count_for_workspace<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
) -> Result<i64, crate::storage::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM personal_access_tokens WHERE workspace_id = $1")
        .bind(workspace_id)
        .fetch_one(ex)
        .await
        .map_err(Into::into)
}

/// How many tokens one member holds in one workspace.
pub async fn count_for_member_in_workspace<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
    user_id: i64,
) -> Result<i64, crate::storage::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM personal_access_tokens WHERE workspace_id = $1 AND user_id = $2",
    )
    .bind(workspace_id)
    .bind(user_id)
    .fetch_one(ex)
    .await
    .map_err(Into::into)
}

pub async fn delete<'e>(
    ex: impl Executor<'e, Database = Any>,
    id: i64,
) -> Result<u64, crate::storage::Error> {
    sqlx::query("DELETE FROM personal_access_tokens WHERE id = $1")
        .bind(id)
        .execute(ex)
        .await
        .map(|r| r.rows_affected())
        .map_err(Into::into)
}

/// Deletes every token of a user; returns the (id, name) of each.
pub async fn delete_all_for_user<'e>(
    ex: impl Executor<'e, Database = Any>,
    user_id: i64,
) -> Result<Vec<(i64, String)>, crate::storage::Error> {
    sqlx::query_as("DELETE FROM personal_access_tokens WHERE user_id = $1 RETURNING id, name")
        .bind(user_id)
        .fetch_all(ex)
        .await
        .map_err(Into::into)
}

/// Deletes every token of a workspace; returns the (id, name) of each.
pub async fn delete_all_in_workspace<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
) -> Result<Vec<(i64, String)>, crate::storage::Error> {
    sqlx::query_as("DELETE FROM personal_access_tokens WHERE workspace_id = $1 RETURNING id, name")
        .bind(workspace_id)
        .fetch_all(ex)
        .await
        .map_err(Into::into)
}

/// Deletes one member's tokens in one workspace; returns the (id, name) of each.
pub async fn delete_member_tokens_in_workspace<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
    user_id: i64,
) -> Result<Vec<(i64, String)>, crate::storage::Error> {
    sqlx::query_as("DELETE FROM personal_access_tokens WHERE workspace_id = $1 AND user_id = $2 RETURNING id, name")
        .bind(workspace_id)
        .bind(user_id)
        .fetch_all(ex)
        .await.map_err(Into::into)
}

/// The single query behind token authentication (on a cache miss).
pub async fn find_auth_by_digest<'e>(
    ex: impl Executor<'e, Database = Any>,
    digest: &str,
) -> Result<Option<AuthRow>, crate::storage::Error> {
    sqlx::query_as(
        "SELECT t.id AS token_id, t.name AS token_name, t.scope, t.expires_at, t.last_used_at, \
         u.id AS user_id, u.email, u.name AS user_name, u.kind, u.disabled_at, \
         w.id AS workspace_id, w.name AS workspace_name, m.role \
         FROM personal_access_tokens t \
         JOIN users u ON u.id = t.user_id \
         JOIN workspaces w ON w.id = t.workspace_id \
         LEFT JOIN memberships m ON m.workspace_id = t.workspace_id AND m.user_id = t.user_id \
         WHERE t.digest = $1",
    )
    .bind(digest)
    .fetch_optional(ex)
    .await
    .map_err(Into::into)
}

/// Gives a token a new secret, keeping everything else, but only while it
/// still has the secret `old_digest`: of concurrent rotations with one
/// secret, exactly one changes the row. Returns the rows changed (0 or 1).
pub async fn replace_secret<'e>(
    ex: impl Executor<'e, Database = Any>,
    id: i64,
    old_digest: &str,
    digest: &str,
    last4: &str,
) -> Result<u64, crate::storage::Error> {
    sqlx::query(
        "UPDATE personal_access_tokens SET digest = $1, last4 = $2 WHERE id = $3 AND digest = $4",
    )
    .bind(digest)
    .bind(last4)
    .bind(id)
    .bind(old_digest)
    .execute(ex)
    .await
    .map(|r| r.rows_affected())
    .map_err(Into::into)
}

/// Records uses to the minute, all in one transaction (one commit, so other
/// instances' change probes wake once); never moves a time backwards. The
/// column is left out of the token-change triggers, so this clears no cache.
pub async fn touch_last_used(
    pool: &sqlx::AnyPool,
    uses: &[(i64, i64)],
) -> Result<(), crate::storage::Error> {
    if uses.is_empty() {
        return Ok(());
    }
    // One statement per chunk, not one per token: with many distinct
    // tokens in use, a flush would otherwise run thousands of statements
    // (and on PostgreSQL as many rounds of the token triggers).
    let mut tx = pool.begin().await?;
    for chunk in uses.chunks(LAST_USED_CHUNK) {
        let values = (0..chunk.len())
            .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        // A join on the primary key: each listed token is found by its id.
        let sql = format!(
            "WITH used(id, at) AS (VALUES {values}) \
             UPDATE personal_access_tokens SET last_used_at = used.at FROM used \
             WHERE personal_access_tokens.id = used.id \
             AND (personal_access_tokens.last_used_at IS NULL \
                  OR personal_access_tokens.last_used_at < used.at)"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, at) in chunk {
            query = query.bind(*id).bind(*at);
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await.map_err(Into::into)
}

/// Tokens per "last used" statement. Small enough that parsing and binding
/// stay cheap (SQLite looks numbered parameters up by name, so their cost
/// grows with the square of their number), and every full chunk reuses one
/// prepared statement.
const LAST_USED_CHUNK: usize = 50;

/// The token with this digest, if it exists (for leak reports, which come
/// with a secret and nothing else).
pub async fn find_by_digest<'e>(
    ex: impl Executor<'e, Database = Any>,
    digest: &str,
) -> Result<Option<TokenRow>, crate::storage::Error> {
    sqlx::query_as(concat!(select_row!(), " WHERE t.digest = $1"))
        .bind(digest)
        .fetch_optional(ex)
        .await
        .map_err(Into::into)
}
