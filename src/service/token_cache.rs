//! Token authentication with a verified-token cache, exact revocation and
//! coalesced "last used" writes.
//!
//! A database round trip per API request would cost more than everything else
//! the request does, so verified tokens are cached by digest. The cache stays
//! exact because every change that could alter a token's rights (deleting,
//! revoking or rotating a token; changing, disabling or removing its owner)
//! clears it after commit:
//! - on this instance, directly;
//! - on every other instance sharing a PostgreSQL database, through
//!   `NOTIFY tollgate_auth`, sent inside the changing transaction so that it
//!   goes out exactly at commit. The changing request waits for its own
//!   listener to hear the notification before answering, so by the time a
//!   client sees "deleted", every listening instance has been told.
//! While the PostgreSQL listener is not connected, the cache is bypassed.
//! A generation counter stops a lookup that raced with a change from putting
//! a stale entry back. SQLite serves a single instance; its cache is cleared
//! locally.
//!
//! Expiry is checked against `now` at every request, and the owner's role and
//! status are part of the cached entry, cleared with it when they change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::Notify;

use crate::domain::{PlainToken, Role, Scope, TokenId, UserId, WorkspaceId};
use crate::storage::organizations::role_of;
use crate::storage::tokens::AuthRow;
use crate::storage::{self, Backend, Db, Tx};

pub const CHANNEL: &str = "tollgate_auth";
const MAX_ENTRIES: usize = 100_000;

/// The caller of an API request, as its token and owner are *now*.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token_id: TokenId,
    pub token_name: String,
    pub scope: Scope,
    pub expires_at: Option<i64>,
    pub user_id: UserId,
    pub email: String,
    pub user_name: String,
    pub workspace_id: WorkspaceId,
    pub workspace_name: String,
    /// The owner's current role in the token's workspace.
    pub role: Role,
}

impl Principal {
    /// What the token may do: the lower of its scope and its owner's role.
    pub fn effective(&self) -> Role {
        self.scope.min(self.role)
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// Unknown, deleted, rotated out, or its owner no longer exists: 401.
    Unknown,
    /// Past its expiry: 401.
    Expired,
    /// The owner's account is disabled: 403.
    OwnerDisabled,
    /// The owner is no longer a member of the token's workspace: 403.
    NotAMember,
    /// The owner is now Read-Only, and Read-Only members can not use tokens: 403.
    OwnerReadOnly,
}

struct Entry {
    row: AuthRow,
    /// The last minute (unix seconds) recorded as "last used".
    last_used: AtomicI64,
}

pub struct TokenCache {
    entries: RwLock<HashMap<String, Arc<Entry>>>,
    generation: AtomicU64,
    /// False until the PostgreSQL listener is connected (always true on SQLite).
    enabled: AtomicBool,
    /// Counts notifications heard, to wait for our own echo.
    heard: AtomicU64,
    heard_signal: Notify,
    /// token id → minute it was last used, waiting to be written.
    pending_last_used: Mutex<HashMap<i64, i64>>,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenCache {
    pub fn new() -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            enabled: AtomicBool::new(false),
            heard: AtomicU64::new(0),
            heard_signal: Notify::new(),
            pending_last_used: Mutex::new(HashMap::new()),
        }
    }

    /// Checks a well-formed token: cache first, then one indexed query.
    pub async fn authenticate(
        &self,
        db: &Db,
        token: &PlainToken,
        now: i64,
    ) -> Result<Result<Principal, AuthFailure>, sqlx::Error> {
        let digest = token.digest();
        let entry = match self.cached(digest.as_str()) {
            Some(entry) => entry,
            None => {
                let generation = self.generation.load(Ordering::Acquire);
                let Some(row) =
                    storage::tokens::find_auth_by_digest(db.pool(), digest.as_str()).await?
                else {
                    return Ok(Err(AuthFailure::Unknown));
                };
                let entry = Arc::new(Entry {
                    last_used: AtomicI64::new(row.last_used_at.unwrap_or(0)),
                    row,
                });
                self.remember(digest.as_str(), &entry, generation);
                entry
            }
        };
        let verdict = judge(&entry.row, now);
        if verdict.is_ok() {
            self.record_use(&entry, now);
        }
        Ok(verdict)
    }

    fn cached(&self, digest: &str) -> Option<Arc<Entry>> {
        if !self.enabled.load(Ordering::Acquire) {
            return None;
        }
        self.entries.read().ok()?.get(digest).cloned()
    }

    fn remember(&self, digest: &str, entry: &Arc<Entry>, generation: u64) {
        if !self.enabled.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        // Checked under the write lock that `clear` also takes: a change that
        // committed after our query began has bumped the generation.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(digest.to_owned(), Arc::clone(entry));
    }

    /// Forgets every cached token on this instance.
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            entries.clear();
        }
    }

    /// For SQLite (one instance): the cache is usable at once.
    pub fn enable_local(&self) {
        self.enabled.store(true, Ordering::Release);
    }

    pub fn cached_len(&self) -> usize {
        self.entries.read().map(|e| e.len()).unwrap_or(0)
    }

    fn record_use(&self, entry: &Entry, now: i64) {
        let minute = now - now.rem_euclid(60);
        if entry.last_used.fetch_max(minute, Ordering::AcqRel) < minute {
            if let Ok(mut pending) = self.pending_last_used.lock() {
                pending.insert(entry.row.token_id, minute);
            }
        }
    }

    /// Writes the coalesced "last used" times. Runs in the background and at
    /// shutdown; at most one write per token per minute.
    pub async fn flush_last_used(&self, db: &Db) -> Result<usize, sqlx::Error> {
        let pending: Vec<(i64, i64)> = match self.pending_last_used.lock() {
            Ok(mut pending) => pending.drain().collect(),
            Err(_) => return Ok(0),
        };
        for (id, minute) in &pending {
            storage::tokens::touch_last_used(db.pool(), *id, *minute).await?;
        }
        Ok(pending.len())
    }

    /// Inside a transaction that changes token rights: on PostgreSQL, queue the
    /// notification that goes out to every instance at commit.
    pub async fn announce_change(&self, db: &Db, tx: &mut Tx) -> Result<ChangeTicket, sqlx::Error> {
        if db.backend() == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(CHANNEL)
                .execute(&mut **tx)
                .await?;
        }
        Ok(ChangeTicket {
            heard_before: self.heard.load(Ordering::Acquire),
        })
    }

    /// After commit: clear this instance and wait (briefly) until our own
    /// listener has heard the notification, which every other listening
    /// instance receives at the same moment.
    pub async fn after_commit(&self, db: &Db, ticket: ChangeTicket) {
        self.clear();
        if db.backend() != Backend::Postgres || !self.enabled.load(Ordering::Acquire) {
            return;
        }
        let wait = async {
            loop {
                let signal = self.heard_signal.notified();
                if self.heard.load(Ordering::Acquire) > ticket.heard_before {
                    return;
                }
                signal.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(2), wait)
            .await
            .is_err()
        {
            tracing::warn!("token change notification was not echoed within 2 s");
        }
    }

    /// Keeps a LISTEN connection open on PostgreSQL and clears the cache on
    /// every notification. The cache is used only while this is connected.
    pub async fn listen(self: Arc<Self>, db: Db) {
        if db.backend() != Backend::Postgres {
            self.enable_local();
            return;
        }
        loop {
            match PgListener::connect(db.url()).await {
                Ok(mut listener) => match listener.listen(CHANNEL).await {
                    Ok(()) => self.serve_notifications(&mut listener).await,
                    Err(err) => tracing::warn!(error = %err, "LISTEN failed; token cache bypassed"),
                },
                Err(err) => {
                    tracing::warn!(error = %err, "token listener can not connect; token cache bypassed")
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn serve_notifications(&self, listener: &mut PgListener) {
        // Anything cached before we listened may have missed a notification.
        self.clear();
        self.enabled.store(true, Ordering::Release);
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => {
                    self.clear();
                    self.heard.fetch_add(1, Ordering::AcqRel);
                    self.heard_signal.notify_waiters();
                }
                Ok(None) | Err(_) => {
                    self.enabled.store(false, Ordering::Release);
                    self.clear();
                    tracing::warn!("token listener lost its connection; token cache bypassed");
                    return;
                }
            }
        }
    }
}

/// Proof that a change was announced; handed to `after_commit`.
#[must_use]
pub struct ChangeTicket {
    heard_before: u64,
}

fn judge(row: &AuthRow, now: i64) -> Result<Principal, AuthFailure> {
    if row.expires_at.is_some_and(|at| at <= now) {
        return Err(AuthFailure::Expired);
    }
    if row.disabled_at.is_some() {
        return Err(AuthFailure::OwnerDisabled);
    }
    let role = row
        .role
        .as_deref()
        .map(role_of)
        .ok_or(AuthFailure::NotAMember)?;
    if !role.may_use_tokens() {
        return Err(AuthFailure::OwnerReadOnly);
    }
    Ok(Principal {
        token_id: TokenId(row.token_id),
        token_name: row.token_name.clone(),
        scope: role_of(&row.scope),
        expires_at: row.expires_at,
        user_id: UserId(row.user_id),
        email: row.email.clone(),
        user_name: row.user_name.clone(),
        workspace_id: WorkspaceId(row.workspace_id),
        workspace_name: row.workspace_name.clone(),
        role,
    })
}
