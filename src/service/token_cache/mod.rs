//! Token authentication with a verified-token cache, exact revocation and
//! coalesced "last used" writes.
//!
//! A database round trip per API request would cost more than everything
//! else the request does, so verified token rows are cached by digest. The
//! cache stays exact because every change that could alter a token's rights
//! (a token row; a member's role, status or membership; a workspace) is
//! seen by every instance before it is answered, including changes made in
//! an SQL console, which database triggers report together with what they
//! concern (`changes`). Each instance evicts only the entries a change
//! concerns (a token; a member's tokens in a workspace; a user's or a
//! workspace's tokens), and everything when a report can not be read
//! completely:
//! - on PostgreSQL, instances follow the protocol in `protocol`: triggers
//!   `NOTIFY` what changed at commit, every instance (the changing one
//!   included) evicts it and acknowledges, an instance whose listener lags
//!   stops trusting its cache, and a change is answered only once no
//!   instance can answer from an older cache;
//! - on SQLite, triggers append what changed to a log; an instance reads the
//!   new rows right after its own commits, and after other processes'
//!   commits, which `probe` notices.
//!
//! Parts: `changes` (what a change concerns), `verdict` (what a row allows
//! now), `store` (the bounded cache and its indexes), `last_used` (batched
//! "last used" times), `protocol`, `probe`.

mod changes;
mod last_used;
mod probe;
pub mod protocol;
mod store;
mod verdict;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::distr::{Alphanumeric, SampleString};
use tokio::sync::{Semaphore, mpsc};

use crate::clock::{Clock, SystemClock};
use crate::domain::PlainToken;
use crate::storage::auth_channel::{self, Listener};
use crate::storage::{self, Backend, Db, Tx};
use changes::{Change, Reading};
use last_used::LastUsed;
use probe::{ChangeProbe, Look};
use protocol::{Protocol, Reaction, Settings, Transport};
use store::{Entry, Store};

pub use verdict::{AuthFailure, Principal, judge};

/// Cached token rows at most; the least used go first.
const CAPACITY: u64 = 100_000;
/// Distinct tokens whose "last used" time may wait for the next flush.
const LAST_USED_CAPACITY: usize = 100_000;
/// Messages waiting to be published; past this they are dropped (which
/// only costs waits or cache bypasses, never exactness).
const OUTBOX: usize = 1_024;
/// Messages being published at once (each holds a pooled connection).
const PUBLISHING: usize = 8;
/// SQLite: change-log rows read at once; more waiting means everything is
/// forgotten instead (a mass change made in an SQL console).
const LOG_READ: usize = 1_000;
/// SQLite: change-log rows kept; an instance further behind forgets
/// everything.
const LOG_KEPT: i64 = 10_000;

/// Counters since start, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Verifications answered from the cache.
    pub hits: u64,
    /// Verifications that queried the database while the cache was usable.
    pub misses: u64,
    /// Times the cache was emptied.
    pub invalidations: u64,
    /// Changes that evicted only the entries they concern.
    pub evictions: u64,
    /// Cached entries those changes found and evicted.
    pub evicted_by_change: u64,
    /// Cached entries the size bound pushed out or did not let in (counted
    /// at the cache's upkeep, so a little late).
    pub evicted_by_size: u64,
    /// Verifications that bypassed the cache because this instance could
    /// not prove it current (PostgreSQL listener down or lagging).
    pub fail_closed: u64,
    /// Acknowledgements from other instances for this instance's changes.
    pub acks: u64,
    /// Changes answered at the staleness bound, some acknowledgement missing.
    pub ack_timeouts: u64,
    /// Change-log reads after another commit (SQLite).
    pub version_checks: u64,
    /// "Last used" times not recorded because the queue was full.
    pub last_used_dropped: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    evictions: AtomicU64,
    fail_closed: AtomicU64,
    version_checks: AtomicU64,
}

pub struct TokenCache {
    clock: Arc<dyn Clock>,
    db: Db,
    store: Store,
    last_used: LastUsed,
    backend: Backend,
    /// SQLite: commits of other processes.
    probe: Option<ChangeProbe>,
    /// SQLite: the last change-log row read (`None`: none read yet).
    log_seen: std::sync::Mutex<Option<i64>>,
    /// PostgreSQL: the protocol between instances, and its outbox.
    protocol: Arc<Protocol>,
    outbox: std::sync::Mutex<Option<mpsc::Receiver<String>>>,
    /// SQLite: the cache is usable once `listen` ran.
    ready: AtomicBool,
    counters: Counters,
}

/// Publishes through a bounded queue that a task drains into the database.
struct Outbox(mpsc::Sender<String>);

impl Transport for Outbox {
    fn publish(&self, payload: String) {
        if self.0.try_send(payload).is_err() {
            tracing::warn!("token channel outbox full; a message was dropped");
        }
    }
}

impl TokenCache {
    pub fn new(db: &Db) -> Self {
        Self::with_clock(db, Arc::new(SystemClock::new()))
    }

    pub fn with_clock(db: &Db, clock: Arc<dyn Clock>) -> Self {
        let (sender, receiver) = mpsc::channel(OUTBOX);
        let id = Alphanumeric.sample_string(&mut rand::rng(), 12);
        let protocol = Protocol::new(
            id,
            Arc::clone(&clock),
            Settings::default(),
            Box::new(Outbox(sender)),
        );
        Self {
            clock,
            db: db.clone(),
            store: Store::new(CAPACITY),
            last_used: LastUsed::new(LAST_USED_CAPACITY),
            backend: db.backend(),
            probe: db.sqlite_path().map(|_| ChangeProbe::default()),
            log_seen: std::sync::Mutex::new(None),
            protocol: Arc::new(protocol),
            outbox: std::sync::Mutex::new(Some(receiver)),
            ready: AtomicBool::new(false),
            counters: Counters::default(),
        }
    }

    pub fn stats(&self) -> CacheStats {
        let c = &self.counters;
        let evicted = self.store.evicted();
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            invalidations: c.invalidations.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
            evicted_by_change: evicted.by_change,
            evicted_by_size: evicted.by_size,
            fail_closed: c.fail_closed.load(Ordering::Relaxed),
            acks: self.protocol.acks(),
            ack_timeouts: self.protocol.timeouts(),
            version_checks: c.version_checks.load(Ordering::Relaxed),
            last_used_dropped: self.last_used.dropped(),
        }
    }

    /// Whether the cache may answer now: on PostgreSQL once the listener
    /// heard this instance's own heartbeat, on SQLite once `listen` ran.
    pub fn trusted(&self) -> bool {
        match self.backend {
            Backend::Postgres => self.protocol.trusted(),
            Backend::Sqlite => self.ready.load(Ordering::Acquire),
        }
    }

    /// Other instances this one has heard from lately (PostgreSQL), whose
    /// acknowledgements its changes wait for.
    pub fn live_peers(&self) -> usize {
        self.protocol.live_peers()
    }

    /// The worst-case time from a change's commit to its answer (PostgreSQL).
    pub fn worst_case_answer(&self) -> Duration {
        let s = self.protocol.settings();
        s.stale_after + s.margin
    }

    /// Checks a well-formed token: cache first, then one indexed query.
    /// `now` is unix seconds, for expiry.
    pub async fn authenticate(
        &self,
        db: &Db,
        token: &PlainToken,
        now: i64,
    ) -> Result<Result<Principal, AuthFailure>, storage::Error> {
        let digest = token.digest();
        let usable = self.usable(db).await?;
        let cached = if usable {
            self.store.get(&digest)
        } else {
            None
        };
        let entry = match cached {
            Some(entry) => {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                entry
            }
            None => {
                let counter = if usable {
                    &self.counters.misses
                } else {
                    &self.counters.fail_closed
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let generation = self.store.generation();
                let Some(row) =
                    storage::tokens::find_auth_by_digest(db.pool(), digest.as_str()).await?
                else {
                    return Ok(Err(AuthFailure::Unknown));
                };
                let entry = Arc::new(Entry::new(row));
                if let (true, Some(generation)) = (usable, generation) {
                    self.store
                        .insert(digest.clone(), Arc::clone(&entry), generation);
                }
                entry
            }
        };
        let verdict = judge(&entry.row, &digest, now);
        if verdict.is_ok() {
            self.last_used
                .record(&entry.last_used, entry.row.token_id.0, now);
        }
        Ok(verdict)
    }

    /// Whether the cache may answer now; on SQLite, first catches up with
    /// other processes' commits.
    async fn usable(&self, db: &Db) -> Result<bool, storage::Error> {
        match self.backend {
            Backend::Postgres => Ok(self.protocol.trusted()),
            Backend::Sqlite => {
                if !self.ready.load(Ordering::Acquire) {
                    return Ok(false);
                }
                let Some(probe) = &self.probe else {
                    // In-memory: no other process can change it.
                    return Ok(true);
                };
                if let Look::Changed(header) = probe.look(db.commit_marker()) {
                    self.counters.version_checks.fetch_add(1, Ordering::Relaxed);
                    let seen = self.catch_up(db).await?;
                    probe.settle(header, seen);
                }
                Ok(true)
            }
        }
    }

    /// SQLite: evicts what the change-log rows not read yet concern (or
    /// everything, when they can not all be read). Returns the sequence
    /// number read up to.
    async fn catch_up(&self, db: &Db) -> Result<i64, storage::Error> {
        let seen = *self.log_seen.lock().unwrap_or_else(|p| p.into_inner());
        let reading = match seen {
            Some(seen) => {
                let limit = i64::try_from(LOG_READ + 1).unwrap_or(i64::MAX);
                let rows = storage::auth_changes::after(db.pool(), seen, limit).await?;
                changes::read_log(seen, &rows, LOG_READ)
            }
            // Nothing read yet: whatever is cached may predate the log.
            None => Reading::Incomplete,
        };
        let upto = match reading {
            Reading::Nothing => return Ok(seen.unwrap_or_default()),
            Reading::Changes { changes, upto } => {
                self.evict(&changes);
                upto
            }
            Reading::Incomplete => {
                // Read before clearing: what commits later is read later.
                let latest = storage::auth_changes::latest(db.pool()).await?;
                self.clear();
                latest
            }
        };
        let mut seen = self.log_seen.lock().unwrap_or_else(|p| p.into_inner());
        // Concurrent readers: the furthest read wins.
        let furthest = seen.map_or(upto, |s| s.max(upto));
        *seen = Some(furthest);
        Ok(furthest)
    }

    /// Forgets the cached tokens `changes` concern, on this instance.
    fn evict(&self, changes: &[Change]) {
        self.store.evict(changes);
        self.counters.evictions.fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets every cached token on this instance.
    pub fn clear(&self) {
        self.store.clear();
        self.counters.invalidations.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes the coalesced "last used" times. Runs in the background and
    /// at shutdown; at most one write per token per minute.
    pub async fn flush_last_used(&self, db: &Db) -> Result<usize, storage::Error> {
        let pending = self.last_used.take();
        storage::tokens::touch_last_used(db.pool(), &pending).await?;
        Ok(pending.len())
    }

    /// Inside a transaction that changes token rights, last before its
    /// commit: on PostgreSQL, the end marker that goes out to every instance
    /// after the triggers' notifications; on SQLite, pruning the change log.
    pub async fn announce_change(&self, tx: &mut Tx) -> Result<ChangeTicket, storage::Error> {
        if self.backend != Backend::Postgres {
            storage::auth_changes::prune(&mut **tx, LOG_KEPT).await?;
            return Ok(ChangeTicket { wait: None });
        }
        let txid = auth_channel::mark_change(tx).await?;
        self.protocol.register(txid);
        Ok(ChangeTicket {
            wait: Some((txid, Arc::clone(&self.protocol))),
        })
    }

    /// After commit: on SQLite, evict what the change concerns here; on
    /// PostgreSQL, wait until every instance, this one included, has
    /// evicted it or can no longer answer from a cache older than it.
    pub async fn after_commit(&self, ticket: ChangeTicket) {
        let committed = self.clock.monotonic();
        match &ticket.wait {
            Some((txid, protocol)) => protocol.wait(*txid, committed).await,
            None => {
                if let Err(err) = self.catch_up(&self.db).await {
                    tracing::warn!(error = %err, "reading the token change log failed; token cache emptied");
                    self.clear();
                }
            }
        }
    }

    /// Runs in the background for the life of the server: on PostgreSQL the
    /// protocol's listener, heartbeats and outbox; on SQLite it marks the
    /// cache usable and rechecks, every second, that the mapped WAL index is
    /// still the database's.
    pub async fn listen(self: Arc<Self>, db: Db) {
        if self.backend != Backend::Postgres {
            self.ready.store(true, Ordering::Release);
            if self.probe.is_some() {
                // The fallback should the `-shm` file ever be replaced.
                let mut recheck = tokio::time::interval(Duration::from_secs(1));
                loop {
                    recheck.tick().await;
                    db.recheck_commit_marker();
                }
            }
            return;
        }
        let receiver = self.outbox.lock().ok().and_then(|mut o| o.take());
        if let Some(mut receiver) = receiver {
            let pool = db.pool().clone();
            // Several at once: on a slow link a heartbeat must not wait for
            // the one before it, nor an acknowledgement for heartbeats.
            let in_flight = Arc::new(Semaphore::new(PUBLISHING));
            tokio::spawn(async move {
                while let Some(payload) = receiver.recv().await {
                    let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
                        return;
                    };
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        if let Err(err) = auth_channel::publish(&pool, &payload).await {
                            tracing::warn!(error = %err, "publishing on the token channel failed");
                        }
                        drop(permit);
                    });
                }
            });
        }
        loop {
            match Listener::connect(&db).await {
                Ok(mut listener) => self.serve(&mut listener).await,
                Err(err) => {
                    tracing::warn!(error = %err, "token listener can not connect; token cache bypassed");
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn serve(&self, listener: &mut Listener) {
        self.protocol.listening();
        // Anything cached before we listened may have missed a notification.
        self.clear();
        let mut heartbeat = tokio::time::interval(self.protocol.settings().heartbeat_every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = listener.next() => match message {
                    Some(payload) => match self.protocol.on_message(&payload) {
                        Reaction::Evict(changes) => self.evict(&changes),
                        Reaction::Clear => self.clear(),
                        Reaction::Nothing => {}
                    },
                    None => break,
                },
                _ = heartbeat.tick() => self.protocol.heartbeat(),
            }
        }
        self.protocol.lost();
        self.clear();
        tracing::warn!("token listener lost its connection; token cache bypassed");
    }
}

/// Proof that a change was announced; handed to `after_commit`. Dropped
/// unused (the transaction failed), it forgets the change.
#[must_use]
pub struct ChangeTicket {
    wait: Option<(u64, Arc<Protocol>)>,
}

impl Drop for ChangeTicket {
    fn drop(&mut self) {
        if let Some((txid, protocol)) = &self.wait {
            protocol.finish(*txid);
        }
    }
}
