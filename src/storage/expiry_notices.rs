//! The `token_expiry_notices` table: which tokens' owners have been told
//! that their token expires soon.

use sqlx::{Any, Executor, FromRow};

/// A token whose owner is due a notice.
#[derive(Debug, Clone, FromRow)]
pub struct DueNotice {
    pub token_id: i64,
    pub token_name: String,
    pub last4: String,
    pub expires_at: i64,
    pub workspace_name: String,
    pub owner_email: String,
    pub owner_name: String,
}

/// Live tokens that expire by `until`, whose owner is enabled and has not
/// been told yet, and that were given a lifetime longer than `lead` seconds
/// (a token made to last a week needs no warning that it lasts a week).
pub async fn due<'e>(
    ex: impl Executor<'e, Database = Any>,
    now: i64,
    until: i64,
    lead: i64,
) -> Result<Vec<DueNotice>, crate::storage::Error> {
    sqlx::query_as(
        "SELECT t.id AS token_id, t.name AS token_name, t.last4, t.expires_at, \
         w.name AS workspace_name, u.email AS owner_email, u.name AS owner_name \
         FROM personal_access_tokens t \
         JOIN users u ON u.id = t.user_id \
         JOIN workspaces w ON w.id = t.workspace_id \
         WHERE t.expires_at > $1 AND t.expires_at <= $2 AND t.expires_at - t.created_at > $3 \
         AND u.disabled_at IS NULL AND u.kind = 'member' \
         AND NOT EXISTS (SELECT 1 FROM token_expiry_notices n WHERE n.token_id = t.id) \
         ORDER BY t.expires_at, t.id",
    )
    .bind(now)
    .bind(until)
    .bind(lead)
    .fetch_all(ex)
    .await
    .map_err(Into::into)
}

/// Claims the notice of a token before it is sent; false when another
/// instance (or an earlier run) already has.
pub async fn claim<'e>(
    ex: impl Executor<'e, Database = Any>,
    token_id: i64,
    expires_at: i64,
    now: i64,
) -> Result<bool, crate::storage::Error> {
    sqlx::query(
        "INSERT INTO token_expiry_notices (token_id, expires_at, sent_at) VALUES ($1, $2, $3) \
         ON CONFLICT (token_id) DO NOTHING",
    )
    .bind(token_id)
    .bind(expires_at)
    .bind(now)
    .execute(ex)
    .await
    .map(|r| r.rows_affected() == 1)
    .map_err(Into::into)
}

/// Gives a claim back after the email could not be sent, so that a later
/// run tries again.
pub async fn release<'e>(
    ex: impl Executor<'e, Database = Any>,
    token_id: i64,
) -> Result<(), crate::storage::Error> {
    sqlx::query("DELETE FROM token_expiry_notices WHERE token_id = $1")
        .bind(token_id)
        .execute(ex)
        .await
        .map(|_| ())
        .map_err(Into::into)
}
