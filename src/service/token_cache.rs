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
//!   second) before it answers, so the next request anywhere sees the
//!   change. An instance trusts its cache only while it keeps hearing its
//!   own announcements through its listener (within 2.5 s); a peer whose
//!   listener stalls or disconnects therefore stops trusting its cache
//!   before the 3 s acknowledgement wait for it runs out.
//! - instances sharing one SQLite file notice each other's commits through
//!   the file itself: every commit changes the WAL index header at the start
//!   of the `-shm` file (SQLite's own change detection reads the same bytes),
//!   and each lookup compares it (one small read, no query) before trusting
//!   the cache.
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
const HELLO_EVERY: Duration = Duration::from_secs(1);
const PEER_FORGOTTEN_AFTER: Duration = Duration::from_secs(5);
/// An instance that has not heard itself for this long stops trusting its cache.
const LISTENER_STALE_AFTER: Duration = Duration::from_millis(2500);
/// Longer than `LISTENER_STALE_AFTER`: a silent peer has stopped trusting
/// its cache by the time we stop waiting for it.
const ACK_TIMEOUT: Duration = Duration::from_secs(3);

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

/// Counters since start, for metrics (read at scrape time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Verifications answered from the cache.
    pub hits: u64,
    /// Verifications that queried the database while the cache was usable.
    pub misses: u64,
    /// Times the cache was emptied.
    pub invalidations: u64,
    /// Verifications that bypassed the cache because it was not trusted.
    pub fail_closed: u64,
    /// Acknowledgements from other instances for this instance's changes.
    pub acks: u64,
    /// Changes answered with some acknowledgement missing.
    pub ack_timeouts: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    fail_closed: AtomicU64,
    acks: AtomicU64,
    ack_timeouts: AtomicU64,
}

pub struct TokenCache {
    counters: Counters,
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
    /// PostgreSQL: when this instance last heard its own announcement, in
    /// milliseconds since `started` (0: never).
    heard_self_at: AtomicU64,
    needs_heartbeat: AtomicBool,
    started: Instant,
}

/// The state of an SQLite database as other processes change it: the WAL
/// index header (the first 96 bytes of the `-shm` file, which every commit
/// rewrites) and the size and modification time of the database file (for a
/// database not in WAL mode).
#[derive(PartialEq, Eq)]
struct FileState {
    shm_header: Option<[u8; 96]>,
    database: Option<(u64, SystemTime)>,
}

struct FileProbe {
    database: PathBuf,
    shm: PathBuf,
    /// The open `-shm` file with its device and inode (see `read_shm_header`).
    shm_file: Mutex<Option<(std::fs::File, u64, u64)>>,
    seen: Mutex<Option<FileState>>,
}

impl FileProbe {
    fn new(database: &Path) -> Self {
        let mut shm = database.as_os_str().to_owned();
        shm.push("-shm");
        Self {
            database: database.to_path_buf(),
            shm: PathBuf::from(shm),
            shm_file: Mutex::new(None),
            seen: Mutex::new(None),
        }
    }

    fn read(&self) -> FileState {
        let shm_header = self.read_shm_header();
        let database = std::fs::metadata(&self.database)
            .ok()
            .and_then(|m| Some((m.len(), m.modified().ok()?)));
        FileState {
            shm_header,
            database,
        }
    }

    /// Reads the WAL index header through a handle kept open for as long as
    /// the `-shm` file is the same file. Closing any descriptor of a file
    /// drops every POSIX lock this process holds on it, SQLite's own lock on
    /// the `-shm` included; another process opening the database would then
    /// believe itself alone and truncate the shared memory this process has
    /// mapped (SIGBUS). So the handle is only let go once the file has been
    /// replaced.
    fn read_shm_header(&self) -> Option<[u8; 96]> {
        use std::os::unix::fs::{FileExt, MetadataExt};
        let current = std::fs::metadata(&self.shm).ok()?;
        let Ok(mut held) = self.shm_file.lock() else {
            return None;
        };
        let same = held
            .as_ref()
            .is_some_and(|(_, dev, ino)| *dev == current.dev() && *ino == current.ino());
        if !same {
            let file = std::fs::File::open(&self.shm).ok()?;
            let meta = file.metadata().ok()?;
            *held = Some((file, meta.dev(), meta.ino()));
        }
        let (file, _, _) = held.as_ref()?;
        let mut header = [0u8; 96];
        file.read_exact_at(&mut header, 0).ok().map(|()| header)
    }

    /// Runs `on_change` (still holding the lock, so no lookup can slip in
    /// between) when the database changed since the last look. Returns
    /// whether it did.
    fn check(&self, on_change: impl FnOnce()) -> bool {
        let now = self.read();
        let Ok(mut seen) = self.seen.lock() else {
            on_change();
            return true;
        };
        let changed = seen.as_ref() != Some(&now) || now.database.is_none();
        if changed {
            on_change();
            *seen = Some(now);
        }
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
            counters: Counters::default(),
            entries: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            enabled: AtomicBool::new(false),
            pending_last_used: Mutex::new(HashMap::new()),
            file_probe: sqlite_file.map(FileProbe::new),
            peers: Peers::new(),
            heard_self_at: AtomicU64::new(0),
            needs_heartbeat: AtomicBool::new(false),
            started: Instant::now(),
        }
    }

    pub fn stats(&self) -> CacheStats {
        let c = &self.counters;
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            invalidations: c.invalidations.load(Ordering::Relaxed),
            fail_closed: c.fail_closed.load(Ordering::Relaxed),
            acks: c.acks.load(Ordering::Relaxed),
            ack_timeouts: c.ack_timeouts.load(Ordering::Relaxed),
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

    /// Whether the cache may be used now: enabled, and on PostgreSQL still
    /// hearing its own announcements.
    fn trusted(&self) -> bool {
        if !self.enabled.load(Ordering::Acquire) {
            return false;
        }
        if self.needs_heartbeat.load(Ordering::Acquire) {
            let heard = self.heard_self_at.load(Ordering::Acquire);
            let now = self.started.elapsed().as_millis() as u64;
            if heard == 0 || now.saturating_sub(heard) > LISTENER_STALE_AFTER.as_millis() as u64 {
                return false;
            }
        }
        true
    }

    fn cached(&self, digest: &str) -> Option<Arc<Entry>> {
        if !self.trusted() {
            self.counters.fail_closed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let found = if let Some(probe) = &self.file_probe
            && probe.check(|| self.clear())
        {
            None
        } else {
            self.entries
                .read()
                .ok()
                .and_then(|e| e.get(digest).cloned())
        };
        let counter = match found {
            Some(_) => &self.counters.hits,
            None => &self.counters.misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    fn remember(&self, digest: &str, entry: &Arc<Entry>, generation: u64) {
        if !self.trusted() {
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
            // Full: drop a tenth, whichever the map yields first, rather than
            // everything (the busiest tokens come back on their next request).
            let mut dropped = 0;
            entries.retain(|_, _| {
                dropped += 1;
                dropped > MAX_ENTRIES / 10
            });
        }
        entries.insert(digest.to_owned(), Arc::clone(entry));
    }

    /// Forgets every cached token on this instance.
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            entries.clear();
            self.counters.invalidations.fetch_add(1, Ordering::Relaxed);
        }
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
                self.counters.ack_timeouts.fetch_add(1, Ordering::Relaxed);
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
        self.needs_heartbeat.store(true, Ordering::Release);
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
            (Some("hello"), Some(peer), None, None) => {
                if peer == self.peers.id {
                    let now = self.started.elapsed().as_millis() as u64;
                    self.heard_self_at.store(now.max(1), Ordering::Release);
                } else {
                    self.peers.saw(peer);
                }
            }
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
                    self.counters.acks.fetch_add(1, Ordering::Relaxed);
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
