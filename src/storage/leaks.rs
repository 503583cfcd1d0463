//! The `leak_reports` table: tokens revoked because a secret scanner found
//! them, kept so their owner and the workspace Admins see a notice.

use sqlx::{Any, Executor, FromRow};

#[derive(Debug, Clone, FromRow)]
pub struct LeakReportRow {
    pub id: i64,
    pub workspace_id: i64,
    pub user_id: Option<i64>,
    pub owner_email: Option<String>,
    pub token_id: i64,
    pub token_name: String,
    pub last4: String,
    pub url: String,
    pub source: String,
    pub reported_at: i64,
}

pub struct NewLeakReport<'a> {
    pub workspace_id: i64,
    pub user_id: i64,
    pub token_id: i64,
    pub token_name: &'a str,
    pub last4: &'a str,
    pub url: &'a str,
    pub source: &'a str,
    pub reported_at: i64,
}

pub async fn insert<'e>(
    ex: impl Executor<'e, Database = Any>,
    r: &NewLeakReport<'_>,
) -> Result<(), crate::storage::Error> {
    sqlx::query(
        "INSERT INTO leak_reports (workspace_id, user_id, token_id, token_name, last4, url, source, \
         reported_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(r.workspace_id)
    .bind(r.user_id)
    .bind(r.token_id)
    .bind(r.token_name)
    .bind(r.last4)
    .bind(r.url)
    .bind(r.source)
    .bind(r.reported_at)
    .execute(ex)
    .await
    .map(|_| ()).map_err(Into::into)
}

macro_rules! select_report {
    () => {
        "SELECT r.id, r.workspace_id, r.user_id, \
         CASE WHEN u.kind = 'service_account' THEN 'service account ' || u.name ELSE u.email END \
         AS owner_email, r.token_id, \
         r.token_name, r.last4, r.url, r.source, r.reported_at \
         FROM leak_reports r LEFT JOIN users u ON u.id = r.user_id"
    };
}

/// A member's tokens reported since `since`, newest first.
pub async fn for_user_since<'e>(
    ex: impl Executor<'e, Database = Any>,
    user_id: i64,
    since: i64,
    limit: i64,
) -> Result<Vec<LeakReportRow>, crate::storage::Error> {
    sqlx::query_as(concat!(
        select_report!(),
        " WHERE r.user_id = $1 AND r.reported_at >= $2 ORDER BY r.id DESC LIMIT $3"
    ))
    .bind(user_id)
    .bind(since)
    .bind(limit)
    .fetch_all(ex)
    .await
    .map_err(Into::into)
}

/// A workspace's tokens reported since `since`, newest first.
pub async fn for_workspace_since<'e>(
    ex: impl Executor<'e, Database = Any>,
    workspace_id: i64,
    since: i64,
    limit: i64,
) -> Result<Vec<LeakReportRow>, crate::storage::Error> {
    sqlx::query_as(concat!(
        select_report!(),
        " WHERE r.workspace_id = $1 AND r.reported_at >= $2 ORDER BY r.id DESC LIMIT $3"
    ))
    .bind(workspace_id)
    .bind(since)
    .bind(limit)
    .fetch_all(ex)
    .await
    .map_err(Into::into)
}
