//! All SQL lives here and nothing else touches sqlx.
//!
//! One `Db` handle serves SQLite and PostgreSQL through `sqlx::Any`. Because
//! `Any` knows only integers, floats, text and bytes, every id is a 64-bit
//! integer and every time is unix seconds. Queries use `$1`-style parameters,
//! which both backends understand, so most SQL is written once; where a
//! dialect differs the variants stand side by side in the storage file.

pub mod audit;
pub mod auth_changes;
pub mod auth_channel;
pub mod commit_marker;
pub mod expiry_notices;
pub mod invitations;
pub mod leaks;
pub mod ops;
pub mod organizations;
pub mod service_accounts;
pub mod sessions;
pub mod settings;
pub mod token_policies;
pub mod tokens;
pub mod users;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Transaction};

/// A transaction on either backend. Services hold one and pass it back to
/// the functions here; they never run SQL on it themselves. Dropped without
/// `commit`, it rolls back.
pub struct Tx(Transaction<'static, Any>);

impl Tx {
    pub async fn commit(self) -> Result<(), Error> {
        Ok(self.0.commit().await?)
    }

    pub async fn rollback(self) -> Result<(), Error> {
        Ok(self.0.rollback().await?)
    }
}

impl std::ops::Deref for Tx {
    type Target = sqlx::AnyConnection;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// A database failure as the rest of the application sees it: it can ask
/// whether a UNIQUE constraint refused a write, and otherwise only report it.
/// Services never see sqlx's own error type.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(#[from] sqlx::Error);

impl Error {
    /// True when a UNIQUE constraint refused the write, on either backend.
    pub fn is_unique_violation(&self) -> bool {
        self.0
            .as_database_error()
            .is_some_and(|e| e.is_unique_violation())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    url: String,
    sqlite_path: Option<std::path::PathBuf>,
    /// SQLite with a file: the mapped WAL index header (`commit_marker`).
    marker: Option<std::sync::Arc<commit_marker::CommitMarker>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// Set on every SQLite connection the pool opens.
///
/// - `journal_mode = WAL`: readers work while one writer commits.
/// - `synchronous = FULL`: every commit syncs the WAL before it returns, so
///   an answered commit survives a process crash *and* a power loss or
///   kernel crash. `NORMAL` would also survive a killed process (the WAL
///   lives in the operating system's page cache until checkpointed), but a
///   power loss could take back the last commits, and here the last commit
///   may be a revocation: a deleted token must never come back. Writes are
///   few (token and member changes, sign-ins; "last used" times are
///   coalesced), so one sync per commit is cheap insurance.
/// - `foreign_keys = ON`: SQLite leaves them off unless asked, per connection.
/// - `busy_timeout = 10000`: a writer waits up to 10 s for the lock instead
///   of failing at once with "database is locked".
/// - `mmap_size = 268435456`: pages are read through a mapping of the first
///   256 MiB of the file instead of a `pread` and a copy each. A token not
///   in the cache is looked up among a million in pages scattered over the
///   file; the benchmark measured an uncached verification at 161 µs of
///   server CPU on a million stored tokens without it, 116 µs with it (116
///   and 99 µs on a thousand). Writes still go through the WAL as before.
pub const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; PRAGMA mmap_size = 268435456;";

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Db {
    /// Connects to `url` (`sqlite://…` or `postgres://…`), creating the
    /// SQLite file and its folder when they do not exist yet.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!("unsupported database URL: use sqlite://PATH or postgres://…");
        };
        let mut connect_url = url.to_owned();
        if backend == Backend::Sqlite {
            create_sqlite_folder(url)?;
            if !connect_url.contains("mode=") {
                connect_url.push_str(if connect_url.contains('?') {
                    "&mode=rwc"
                } else {
                    "?mode=rwc"
                });
            }
        }
        let options =
            AnyConnectOptions::from_str(&connect_url).context("reading the database URL")?;
        let connections = if backend == Backend::Sqlite {
            8
        } else {
            POSTGRES_CONNECTIONS
        };
        // PostgreSQL connections are kept for the life of the process (see
        // `hold_postgres_connections`); SQLite connections are files.
        let kept = backend == Backend::Postgres;
        let pool = AnyPoolOptions::new()
            .max_connections(connections)
            .min_connections(if kept { connections } else { 1 })
            .max_lifetime((!kept).then(|| Duration::from_secs(30 * 60)))
            .idle_timeout((!kept).then(|| Duration::from_secs(10 * 60)))
            .acquire_timeout(Duration::from_secs(10))
            // A ping before each use finds PostgreSQL connections the
            // network lost; an SQLite connection is a file in this process
            // and can not go stale, so the ping would only cost a round
            // trip to its thread on every query.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        sqlx::raw_sql(SQLITE_PRAGMAS).execute(conn).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .context("connecting to the database")?;
        if kept {
            hold_postgres_connections(&pool, connections).await?;
        }
        let sqlite_path = (backend == Backend::Sqlite)
            .then(|| sqlite_file(url))
            .flatten();
        let marker = match &sqlite_path {
            Some(path) => Some(std::sync::Arc::new(
                commit_marker::CommitMarker::open(&connect_url, path)
                    .await
                    .context("pinning the database file")?,
            )),
            None => None,
        };
        Ok(Self {
            pool,
            backend,
            url: url.to_owned(),
            sqlite_path,
            marker,
        })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        };
        migrator
            .run(&self.pool)
            .await
            .context("applying database migrations")?;
        Ok(())
    }

    /// The migrations this binary carries for this backend.
    pub fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL this handle was opened with (for a second connection such as
    /// PostgreSQL's LISTEN). Never log it: it may hold a password.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The SQLite database file, when there is one.
    pub fn sqlite_path(&self) -> Option<&std::path::Path> {
        self.sqlite_path.as_deref()
    }

    /// SQLite with a file: the WAL index header as it is now, which every
    /// commit of any process rewrites; read from memory, no system call.
    /// `None` when it can not be read (assume something changed).
    pub fn commit_marker(&self) -> Option<commit_marker::Header> {
        self.marker.as_ref()?.read()
    }

    /// Drops the mapped WAL index should the path name another file than
    /// the one the pin holds; run in the background every second (see
    /// `commit_marker`).
    pub fn recheck_commit_marker(&self) {
        if let Some(marker) = &self.marker {
            marker.recheck();
        }
    }

    pub async fn begin(&self) -> Result<Tx, Error> {
        Ok(Tx(self.pool.begin().await?))
    }

    /// A cheap round trip, for the readiness probe.
    pub async fn ping(&self) -> Result<(), Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(marker) = &self.marker {
            marker.close().await;
        }
    }

    /// Closes the database for good at shutdown. On SQLite, first moves
    /// every committed page from the WAL into the database file and empties
    /// the WAL, so the file on disk is complete on its own (a backup that
    /// copies only `tollgate.db` gets everything). Waits for connections in
    /// use to be returned.
    pub async fn shutdown(&self) -> Result<(), Error> {
        if self.backend == Backend::Sqlite {
            // (busy, WAL frames, frames checkpointed); busy = 1 means a
            // reader held the WAL and the checkpoint stayed partial.
            let (busy, _, _): (i32, i32, i32) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.pool)
                .await?;
            if busy != 0 {
                tracing::warn!("the WAL checkpoint at shutdown could not complete");
            }
        }
        self.close().await;
        Ok(())
    }
}

/// Connections to PostgreSQL each instance keeps open.
const POSTGRES_CONNECTIONS: u32 = 16;

/// Opens every PostgreSQL connection of the pool now, on the runtime that
/// called `connect` (the process's main one), and keeps them.
///
/// A connection's socket belongs to the runtime that opened it. The HTTP
/// server runs each worker on a runtime of its own, and at a graceful
/// shutdown an idle worker's runtime ends at once: a connection it had
/// opened would fail ("the Tokio context is being shut down") under a
/// request still being answered by another worker. Opened here, no
/// connection depends on a worker. Should one break later (the network),
/// the pool opens its replacement wherever it is needed.
async fn hold_postgres_connections(pool: &AnyPool, connections: u32) -> anyhow::Result<()> {
    let mut held = Vec::with_capacity(connections as usize);
    for _ in 0..connections {
        held.push(
            pool.acquire()
                .await
                .context("opening the database connections")?,
        );
    }
    Ok(())
}

fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

fn create_sqlite_folder(url: &str) -> anyhow::Result<()> {
    let Some(path) = sqlite_file(url) else {
        return Ok(());
    };
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating the folder {}", parent.display()))?;
    }
    Ok(())
}

/// A PostgreSQL URL with its database replaced by `name`, keeping the
/// credentials, host and query: `postgres://u@h:5432/postgres?x=y` →
/// `postgres://u@h:5432/NAME?x=y` (for tools that create databases).
pub fn url_with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pooled connection, not just the first, gets the pragmas.
    #[tokio::test]
    async fn sqlite_connections_use_wal_full_sync_foreign_keys_a_busy_timeout_and_mmap() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut conn = db.pool().acquire().await.unwrap();
            let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let synchronous: i32 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let foreign_keys: i32 = sqlx::query_scalar("PRAGMA foreign_keys")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let busy_timeout: i32 = sqlx::query_scalar("PRAGMA busy_timeout")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let mmap_size: i64 = sqlx::query_scalar("PRAGMA mmap_size")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(journal, "wal");
            assert_eq!(synchronous, 2, "FULL");
            assert_eq!(foreign_keys, 1);
            assert_eq!(busy_timeout, 10_000);
            assert_eq!(mmap_size, 268_435_456);
            held.push(conn);
        }
        drop(held);
        db.close().await;
    }

    #[test]
    fn the_database_of_a_url_is_replaced_and_the_rest_kept() {
        assert_eq!(
            url_with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(
            url_with_database("postgres://u@h", "t2"),
            "postgres://u@h/t2"
        );
    }
}
