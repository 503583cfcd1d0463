//! SQL for the operator's commands: the migration state `tollgate check`
//! reports, and the online copy `tollgate backup` makes of an SQLite file.

use sqlx::migrate::Migrator;

use super::{Backend, Db};

/// How the migrations recorded in the database compare with those this
/// binary carries.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MigrationState {
    /// Known to this binary and applied.
    pub applied: usize,
    /// Known to this binary and not applied yet (applied at start).
    pub pending: Vec<i64>,
    /// Applied, but not known to this binary: the database is newer.
    pub unknown: Vec<i64>,
    /// Applied with a different checksum: the file was edited after release.
    pub changed: Vec<i64>,
    /// Recorded as failed: a migration stopped half way.
    pub failed: Vec<i64>,
}

impl Db {
    /// One plain connection attempt, without the pool's retries, so that an
    /// unreachable server is reported at once with its reason.
    pub async fn probe(url: &str) -> Result<(), crate::storage::Error> {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        Ok(sqlx::AnyConnection::connect(url).await?.close().await?)
    }

    /// Reads `_sqlx_migrations` (absent on a database never migrated).
    pub async fn migration_state(&self) -> Result<MigrationState, crate::storage::Error> {
        let migrator: &Migrator = self.migrator();
        let table_exists = match self.backend() {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_name = '_sqlx_migrations' AND table_schema = current_schema()"
            }
        };
        let exists: i64 = sqlx::query_scalar(table_exists)
            .fetch_one(self.pool())
            .await?;
        let recorded: Vec<(i64, Vec<u8>, i64)> = if exists > 0 {
            sqlx::query_as(
                "SELECT version, checksum, CASE WHEN success THEN 1 ELSE 0 END \
                 FROM _sqlx_migrations ORDER BY version",
            )
            .fetch_all(self.pool())
            .await?
        } else {
            Vec::new()
        };
        let known: Vec<_> = migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .collect();
        let mut state = MigrationState::default();
        for (version, checksum, success) in &recorded {
            match known.iter().find(|m| m.version == *version) {
                None => state.unknown.push(*version),
                Some(_) if *success == 0 => state.failed.push(*version),
                Some(m) if m.checksum.as_ref() != checksum.as_slice() => {
                    state.changed.push(*version)
                }
                Some(_) => state.applied += 1,
            }
        }
        state.pending = known
            .iter()
            .map(|m| m.version)
            .filter(|v| !recorded.iter().any(|(r, _, _)| r == v))
            .collect();
        Ok(state)
    }

    /// Writes a consistent copy of the SQLite database to `target` with
    /// `VACUUM INTO`: one read transaction, so the copy is the database as
    /// of one commit, while the server goes on reading and writing (WAL).
    pub async fn vacuum_into(&self, target: &std::path::Path) -> Result<(), crate::storage::Error> {
        sqlx::query("VACUUM INTO $1")
            .bind(target.to_string_lossy().into_owned())
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
