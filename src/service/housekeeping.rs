//! What runs in the background or once at start-up and is no one's request:
//! dropping expired sessions and old audit events, and the settings every
//! instance must share.

use crate::service::{ServiceError, Tollgate};
use crate::storage::{self, Db};

impl Tollgate {
    /// Deletes sessions past their expiry and audit events older than
    /// `audit_days`; answers how many of each went.
    pub async fn clean_up(&self, audit_days: i64) -> Result<(u64, u64), ServiceError> {
        let now = self.now();
        let sessions = storage::sessions::delete_expired(self.db.pool(), now).await?;
        let cutoff = now - audit_days.saturating_mul(86_400);
        let events = storage::audit::delete_older_than(self.db.pool(), cutoff).await?;
        Ok((sessions, events))
    }
}

/// The value of a setting that every instance must share: the one already
/// stored, or `fresh` when none is (the first instance to ask stores it; the
/// others read what it stored).
pub async fn shared_setting(db: &Db, name: &str, fresh: &str) -> Result<String, ServiceError> {
    storage::settings::insert_if_absent(db.pool(), name, fresh).await?;
    storage::settings::get(db.pool(), name)
        .await?
        .ok_or_else(|| ServiceError::Unexpected(anyhow::anyhow!("the setting {name} vanished")))
}
