//! Token authentication with a verified-token cache, exact revocation and
//! coalesced "last used" writes.
//!
//! A database round trip per API request would cost more than everything else
//! the request does, so verified tokens are cached by digest. The cache stays
//! exact because every change that could alter a token's rights (deleting,
//! revoking or rotating a token; changing, disabling or removing its owner)
//! clears it, and the change is not answered before every instance has:
//! - this instance clears its cache directly after commit;
//! - instances sharing a PostgreSQL database hear `NOTIFY tollgate_auth`,
//!   sent inside the changing transaction so it goes out exactly at commit.
//!   Each clears its cache and acknowledges; the changing instance waits for
//!   the acknowledgement of every live peer (peers announce themselves every
//!   few seconds) before it answers, so the next request anywhere sees the
//!   change. A peer that does not answer within two seconds is logged and
//!   no longer waited for; while an instance's own listener is disconnected
//!   it bypasses its cache.
//! - instances sharing one SQLite file notice each other's commits through
//!   the file itself: every commit changes the size or modification time of
//!   the database or its WAL, and each lookup compares them (one `stat` per
//!   file, no query) before trusting the cache.
//!
//! A generation counter stops a lookup that raced with a change from putting
//! a stale entry back.
//!
//! Expiry is checked against `now` at every request, and the owner's role and
//! status are part of the cached entry, cleared with it when they change.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use rand::distr::{Alphanumeric, SampleString};
use sqlx::postgres::PgListener;
use tokio::sync::Notify;

use crate::domain::{PlainToken, Role, Scope, TokenId, UserId, WorkspaceId};
use crate::storage::organizations::role_of;
use crate::storage::tokens::AuthRow;
use crate::storage::{self, Backend, Db, Tx};

pub const CHANNEL: &str = "tollgate_auth";
const MAX_ENTRIES: usize = 100_000;
/// How often an instance tells its peers it is alive, and when they forget it.
const HELLO_EVERY: Duration = Duration::from_secs(2);
const PEER_FORGOTTEN_AFTER: Duration = Duration::from_secs(7);
const ACK_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// token id → minute it was last used, waiting to be written.
    pending_last_used: Mutex<HashMap<i64, i64>>,
    /// SQLite: notices commits made by other processes.
    file_probe: Option<FileProbe>,
    /// PostgreSQL: the other instances and their acknowledgements.
    peers: Peers,
}

/// Size and modification time of the SQLite file and its WAL.
struct FileProbe {
    files: [PathBuf; 2],
    seen: Mutex<Option<[(u64, SystemTime); 2]>>,
}

impl FileProbe {
    fn new(database: &Path) -> Self {
        let mut wal = database.as_os_str().to_owned();
        wal.push("-wal");
        Self {
            files: [database.to_path_buf(), PathBuf::from(wal)],
            seen: Mutex::new(None),
        }
    }

    /// True when the files changed since the last look (or can't be read).
    fn changed(&self) -> bool {
        let read = |p: &Path| {
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?)))
        };
        let Some(db) = read(&self.files[0]) else {
            return true;
        };
        let wal = read(&self.files[1]).unwrap_or((0, SystemTime::UNIX_EPOCH));
        let Ok(mut seen) = self.seen.lock() else {
            return true;
        };
        let changed = *seen != Some([db, wal]);
        *seen = Some([db, wal]);
        changed
    }
}

/// The invalidation protocol between instances sharing PostgreSQL. Messages
/// on the channel: `hello <id>`, `inv <origin> <seq>`, `ack <origin> <seq> <id>`.
struct Peers {
    id: String,
    next_seq: AtomicU64,
    live: Mutex<HashMap<String, Instant>>,
    acks: Mutex<HashMap<u64, HashSet<String>>>,
    acked: Notify,
}

impl Peers {
    fn new() -> Self {
        Self {
            id: Alphanumeric.sample_string(&mut rand::rng(), 12),
            next_seq: AtomicU64::new(1),
            live: Mutex::new(HashMap::new()),
            acks: Mutex::new(HashMap::new()),
            acked: Notify::new(),
        }
    }

    fn saw(&self, peer: &str) {
        if peer != self.id
            && let Ok(mut live) = self.live.lock()
        {
            live.insert(peer.to_owned(), Instant::now());
        }
    }

    fn live_peers(&self) -> Vec<String> {
        let Ok(mut live) = self.live.lock() else {
            return Vec::new();
        };
        live.retain(|_, seen| seen.elapsed() < PEER_FORGOTTEN_AFTER);
        live.keys().cloned().collect()
    }

    fn missing_acks(&self, seq: u64, peers: &[String]) -> Vec<String> {
        let acks = self.acks.lock().ok();
        let got = acks.as_ref().and_then(|a| a.get(&seq));
        peers
            .iter()
            .filter(|p| !got.is_some_and(|g| g.contains(*p)))
            .cloned()
            .collect()
    }
}

impl TokenCache {
    /// `sqlite_file`: the database file on SQLite, so that commits made by
    /// other processes on the same file are noticed.
    pub fn new(sqlite_file: Option<&Path>) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            enabled: AtomicBool::new(false),
            pending_last_used: Mutex::new(HashMap::new()),
            file_probe: sqlite_file.map(FileProbe::new),
            peers: Peers::new(),
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
        if self.file_probe.as_ref().is_some_and(FileProbe::changed) {
            self.clear();
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

    pub fn cached_len(&self) -> usize {
        self.entries.read().map(|e| e.len()).unwrap_or(0)
    }

    fn record_use(&self, entry: &Entry, now: i64) {
        let minute = now - now.rem_euclid(60);
        if entry.last_used.fetch_max(minute, Ordering::AcqRel) < minute
            && let Ok(mut pending) = self.pending_last_used.lock()
        {
            pending.insert(entry.row.token_id, minute);
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

    /// Inside a transaction that changes token rights: on PostgreSQL, queue
    /// the notification that goes out to every instance at commit.
    pub async fn announce_change(&self, db: &Db, tx: &mut Tx) -> Result<ChangeTicket, sqlx::Error> {
        let seq = self.peers.next_seq.fetch_add(1, Ordering::AcqRel);
        if db.backend() == Backend::Postgres {
            notify(&mut **tx, &format!("inv {} {seq}", self.peers.id)).await?;
        }
        Ok(ChangeTicket { seq })
    }

    /// After commit: clear this instance, then wait until every live peer has
    /// cleared its own cache (PostgreSQL).
    pub async fn after_commit(&self, db: &Db, ticket: ChangeTicket) {
        self.clear();
        if db.backend() != Backend::Postgres {
            return;
        }
        let peers = self.peers.live_peers();
        let deadline = Instant::now() + ACK_TIMEOUT;
        loop {
            let signal = self.peers.acked.notified();
            let missing = self.peers.missing_acks(ticket.seq, &peers);
            if missing.is_empty() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, signal).await.is_err() {
                tracing::warn!(
                    ?missing,
                    "instances did not acknowledge a token change in time"
                );
                break;
            }
        }
        if let Ok(mut acks) = self.peers.acks.lock() {
            acks.remove(&ticket.seq);
        }
    }

    /// Keeps a LISTEN connection open on PostgreSQL and runs the protocol
    /// described at the top. On SQLite the cache is usable at once.
    pub async fn listen(self: Arc<Self>, db: Db) {
        if db.backend() != Backend::Postgres {
            self.enabled.store(true, Ordering::Release);
            return;
        }
        loop {
            match PgListener::connect(db.url()).await {
                Ok(mut listener) => match listener.listen(CHANNEL).await {
                    Ok(()) => self.serve_notifications(&db, &mut listener).await,
                    Err(err) => tracing::warn!(error = %err, "LISTEN failed; token cache bypassed"),
                },
                Err(err) => {
                    tracing::warn!(error = %err, "token listener can not connect; token cache bypassed")
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn serve_notifications(&self, db: &Db, listener: &mut PgListener) {
        let hello = format!("hello {}", self.peers.id);
        if notify(db.pool(), &hello).await.is_err() {
            return;
        }
        // Anything cached before we listened may have missed a notification.
        self.clear();
        self.enabled.store(true, Ordering::Release);
        let mut hello_timer = tokio::time::interval(HELLO_EVERY);
        loop {
            tokio::select! {
                message = listener.try_recv() => match message {
                    Ok(Some(notification)) => self.on_message(db, notification.payload()).await,
                    Ok(None) | Err(_) => break,
                },
                _ = hello_timer.tick() => {
                    if let Err(err) = notify(db.pool(), &hello).await {
                        tracing::warn!(error = %err, "announcing this instance failed");
                    }
                }
            }
        }
        self.enabled.store(false, Ordering::Release);
        self.clear();
        tracing::warn!("token listener lost its connection; token cache bypassed");
    }

    async fn on_message(&self, db: &Db, payload: &str) {
        let mut words = payload.split(' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("hello"), Some(peer), None, None) => self.peers.saw(peer),
            (Some("inv"), Some(origin), Some(seq), None) => {
                self.peers.saw(origin);
                if origin != self.peers.id {
                    self.clear();
                    let ack = format!("ack {origin} {seq} {}", self.peers.id);
                    if let Err(err) = notify(db.pool(), &ack).await {
                        tracing::warn!(error = %err, "acknowledging a token change failed");
                    }
                }
            }
            (Some("ack"), Some(origin), Some(seq), Some(from)) => {
                self.peers.saw(from);
                if origin == self.peers.id {
                    if let (Ok(seq), Ok(mut acks)) = (seq.parse::<u64>(), self.peers.acks.lock()) {
                        acks.entry(seq).or_default().insert(from.to_owned());
                    }
                    self.peers.acked.notify_waiters();
                }
            }
            _ => tracing::warn!("ignoring an unknown message on the token channel"),
        }
    }
}

async fn notify<'e>(
    ex: impl sqlx::Executor<'e, Database = sqlx::Any>,
    payload: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(payload)
        .execute(ex)
        .await
        .map(|_| ())
}

/// Proof that a change was announced; handed to `after_commit`.
#[must_use]
pub struct ChangeTicket {
    seq: u64,
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
