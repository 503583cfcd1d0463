//! SQLite: the log of changes to token rights that the triggers of
//! migration `20261130000011` append to (`auth_changes`), read by every
//! instance sharing the file from the last sequence number it has seen.

use sqlx::{Any, Executor, FromRow};

/// One change: a token (`a` its id), a member (`a` the workspace, `b` the
/// user), a user or a workspace.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ChangeRow {
    pub seq: i64,
    pub kind: String,
    pub a: i64,
    pub b: Option<i64>,
}

/// The newest sequence number (0 when the log is empty).
pub async fn latest<'e>(
    ex: impl Executor<'e, Database = Any>,
) -> Result<i64, crate::storage::Error> {
    sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM auth_changes")
        .fetch_one(ex)
        .await
        .map_err(Into::into)
}

/// The first `limit` changes after `seq`, in order.
pub async fn after<'e>(
    ex: impl Executor<'e, Database = Any>,
    seq: i64,
    limit: i64,
) -> Result<Vec<ChangeRow>, crate::storage::Error> {
    sqlx::query_as("SELECT seq, kind, a, b FROM auth_changes WHERE seq > $1 ORDER BY seq LIMIT $2")
        .bind(seq)
        .bind(limit)
        .fetch_all(ex)
        .await
        .map_err(Into::into)
}

/// Keeps the newest `keep` changes. An instance that had not read the
/// older ones yet notices the gap and empties its cache.
pub async fn prune<'e>(
    ex: impl Executor<'e, Database = Any>,
    keep: i64,
) -> Result<(), crate::storage::Error> {
    sqlx::query("DELETE FROM auth_changes WHERE seq <= (SELECT MAX(seq) FROM auth_changes) - $1")
        .bind(keep)
        .execute(ex)
        .await
        .map(|_| ())
        .map_err(Into::into)
}
