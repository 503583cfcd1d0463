//! Installation-wide settings kept in the database (the cookie key), so that
//! every instance sharing the database shares them.

use sqlx::{Any, Executor};

pub async fn get<'e>(
    ex: impl Executor<'e, Database = Any>,
    name: &str,
) -> Result<Option<String>, crate::storage::Error> {
    sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
        .bind(name)
        .fetch_optional(ex)
        .await
        .map_err(Into::into)
}

/// Stores `value` unless the setting exists; first writer wins.
pub async fn insert_if_absent<'e>(
    ex: impl Executor<'e, Database = Any>,
    name: &str,
    value: &str,
) -> Result<(), crate::storage::Error> {
    sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(value)
        .execute(ex)
        .await
        .map(|_| ())
        .map_err(Into::into)
}
