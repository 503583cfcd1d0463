//! PostgreSQL's side of the token cache protocol (see
//! `service::token_cache::protocol`): the `LISTEN` connection, publishing a
//! message, and marking a transaction as a change to token rights.

use sqlx::postgres::PgListener;
use sqlx::{Any, AnyPool, Executor};

use crate::storage::{Db, Tx};

/// The channel every instance listens on. The triggers of migration
/// `20261130000011` notify it too, naming what changed.
pub const CHANNEL: &str = "tollgate_auth";

/// A `LISTEN tollgate_auth` connection of its own.
pub struct Listener(PgListener);

impl Listener {
    pub async fn connect(db: &Db) -> Result<Self, crate::storage::Error> {
        let mut listener = PgListener::connect(db.url()).await?;
        listener.listen(CHANNEL).await?;
        Ok(Self(listener))
    }

    /// The next message; `None` when the connection is lost (notifications
    /// may have been missed).
    pub async fn next(&mut self) -> Option<String> {
        match self.0.try_recv().await {
            Ok(Some(notification)) => Some(notification.payload().to_owned()),
            Ok(None) | Err(_) => None,
        }
    }
}

/// Sends `payload` to every listener.
pub async fn publish(pool: &AnyPool, payload: &str) -> Result<(), crate::storage::Error> {
    notify(pool, payload).await
}

async fn notify<'e>(
    ex: impl Executor<'e, Database = Any>,
    payload: &str,
) -> Result<(), crate::storage::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(payload)
        .execute(ex)
        .await
        .map(|_| ())
        .map_err(Into::into)
}

/// Inside a transaction that changes token rights, after its changes: its
/// id, and the end marker `inv <txid>` that the other instances
/// acknowledge. Delivered at commit, after the triggers' `chg` messages of
/// the same transaction (PostgreSQL delivers them in the order sent).
pub async fn mark_change(tx: &mut Tx) -> Result<u64, crate::storage::Error> {
    let txid: i64 = sqlx::query_scalar(
        "SELECT txid_current() FROM \
         (SELECT pg_notify($1, 'inv ' || txid_current()::text)) AS sent",
    )
    .bind(CHANNEL)
    .fetch_one(&mut **tx)
    .await?;
    Ok(u64::try_from(txid).unwrap_or_default())
}
