//! The bounded cache of verified token rows, by digest, with the indexes
//! that let a change evict exactly the entries it concerns.
//!
//! `moka` bounds it (TinyLFU admission, LRU eviction) so a flood of distinct
//! tokens evicts the rarely used ones instead of growing memory or dropping
//! everything. Beside it, an index finds cached digests by token, by user
//! and by workspace. The index may name digests the cache has since let go
//! (evicting those is a no-op), never the reverse: a row is indexed before
//! it is cached. Past twice the cache's capacity the index keeps only what
//! the cache still holds, so memory stays bounded with the cache.
//!
//! A generation number, advanced by every eviction and clear under a write
//! lock that inserts take for reading, stops a lookup whose query began
//! before a change from putting the old row back afterwards.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use moka::notification::RemovalCause;

use super::changes::Change;
use crate::domain::TokenDigest;
use crate::storage::tokens::AuthRow;

/// A cached row and the last minute it was recorded as used.
pub struct Entry {
    pub row: AuthRow,
    pub last_used: AtomicI64,
}

impl Entry {
    pub fn new(row: AuthRow) -> Self {
        Self {
            last_used: AtomicI64::new(row.last_used_at.unwrap_or(0)),
            row,
        }
    }
}

/// A cached digest and the owner and workspace its row named.
struct Indexed {
    digest: TokenDigest,
    user: i64,
    workspace: i64,
}

#[derive(Default)]
struct Index {
    /// Token id → its cached digests (more than one only around a rotation).
    by_token: HashMap<i64, Vec<Indexed>>,
    /// User id → token ids with a cached digest.
    by_user: HashMap<i64, HashSet<i64>>,
    /// Workspace id → token ids with a cached digest.
    by_workspace: HashMap<i64, HashSet<i64>>,
    /// Indexed digests in all.
    len: usize,
}

impl Index {
    fn add(&mut self, row: &AuthRow, digest: &TokenDigest) {
        let digests = self.by_token.entry(row.token_id.0).or_default();
        let known = digests.iter().any(|i| {
            i.digest == *digest && i.user == row.user_id.0 && i.workspace == row.workspace_id.0
        });
        if !known {
            digests.push(Indexed {
                digest: digest.clone(),
                user: row.user_id.0,
                workspace: row.workspace_id.0,
            });
            self.len += 1;
        }
        self.by_user
            .entry(row.user_id.0)
            .or_default()
            .insert(row.token_id.0);
        self.by_workspace
            .entry(row.workspace_id.0)
            .or_default()
            .insert(row.token_id.0);
    }

    /// Removes and returns the digests of `token` that `pick` selects.
    fn take(&mut self, token: i64, pick: impl Fn(&Indexed) -> bool, out: &mut Vec<TokenDigest>) {
        let Some(digests) = self.by_token.remove(&token) else {
            return;
        };
        let (taken, remaining): (Vec<Indexed>, Vec<Indexed>) =
            digests.into_iter().partition(|i| pick(i));
        self.len -= taken.len();
        for gone in &taken {
            if !remaining.iter().any(|i| i.user == gone.user) {
                unlink(&mut self.by_user, gone.user, token);
            }
            if !remaining.iter().any(|i| i.workspace == gone.workspace) {
                unlink(&mut self.by_workspace, gone.workspace, token);
            }
        }
        if !remaining.is_empty() {
            self.by_token.insert(token, remaining);
        }
        out.extend(taken.into_iter().map(|i| i.digest));
    }

    /// Removes and returns the digests `change` concerns.
    fn take_change(&mut self, change: Change, out: &mut Vec<TokenDigest>) {
        let tokens = |set: Option<&HashSet<i64>>| -> Vec<i64> {
            set.map(|s| s.iter().copied().collect()).unwrap_or_default()
        };
        match change {
            Change::Token(token) => self.take(token, |_| true, out),
            Change::User(user) => {
                for token in tokens(self.by_user.get(&user)) {
                    self.take(token, |i| i.user == user, out);
                }
            }
            Change::Member { workspace, user } => {
                for token in tokens(self.by_user.get(&user)) {
                    self.take(token, |i| i.user == user && i.workspace == workspace, out);
                }
            }
            Change::Workspace(workspace) => {
                for token in tokens(self.by_workspace.get(&workspace)) {
                    self.take(token, |i| i.workspace == workspace, out);
                }
            }
        }
    }

    /// Keeps only the digests `cached` still holds.
    fn retain(&mut self, cached: impl Fn(&TokenDigest) -> bool) {
        let mut kept = Index::default();
        for (token, digests) in self.by_token.drain() {
            for i in digests.into_iter().filter(|i| cached(&i.digest)) {
                kept.by_user.entry(i.user).or_default().insert(token);
                kept.by_workspace
                    .entry(i.workspace)
                    .or_default()
                    .insert(token);
                kept.by_token.entry(token).or_default().push(i);
                kept.len += 1;
            }
        }
        *self = kept;
    }
}

fn unlink(map: &mut HashMap<i64, HashSet<i64>>, key: i64, token: i64) {
    if let Some(set) = map.get_mut(&key) {
        set.remove(&token);
        if set.is_empty() {
            map.remove(&key);
        }
    }
}

/// Entries that left the cache, by why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evicted {
    /// Because a change concerned them.
    pub by_change: u64,
    /// Pushed out (or not let in) by the bound on the cache's size.
    pub by_size: u64,
}

pub struct Store {
    /// Keys are SHA-256 digests, and only verified tokens get in, so a
    /// fast seeded hash does instead of SipHash's flood resistance.
    entries: moka::sync::Cache<TokenDigest, Arc<Entry>, foldhash::fast::RandomState>,
    capacity: u64,
    generation: RwLock<u64>,
    index: Mutex<Index>,
    by_change: AtomicU64,
    by_size: Arc<AtomicU64>,
}

impl Store {
    pub fn new(capacity: u64) -> Self {
        let by_size = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&by_size);
        let entries = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .eviction_listener(move |_, _, cause| {
                if cause == RemovalCause::Size {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build_with_hasher(foldhash::fast::RandomState::default());
        Self {
            entries,
            capacity,
            generation: RwLock::new(0),
            index: Mutex::new(Index::default()),
            by_change: AtomicU64::new(0),
            by_size,
        }
    }

    /// Entries evicted since start. Those the size bound pushed out are
    /// counted when the cache does its upkeep, so they may lag a little.
    pub fn evicted(&self) -> Evicted {
        Evicted {
            by_change: self.by_change.load(Ordering::Relaxed),
            by_size: self.by_size.load(Ordering::Relaxed),
        }
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        // A panic while holding the lock could leave an index that misses
        // cached digests; callers holding the generation lock clear instead.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, digest: &TokenDigest) -> Option<Arc<Entry>> {
        self.entries.get(digest)
    }

    /// Read before a lookup query; hand it back to `insert`.
    pub fn generation(&self) -> Option<u64> {
        self.generation.read().ok().map(|g| *g)
    }

    /// Caches `entry` unless an eviction or clear came since `generation`
    /// was read. Returns whether it did.
    pub fn insert(&self, digest: TokenDigest, entry: Arc<Entry>, generation: u64) -> bool {
        let oversized = {
            let Ok(current) = self.generation.read() else {
                return false;
            };
            if *current != generation {
                return false;
            }
            // Still holding the read lock: an eviction waits until this
            // insert is done, and then finds it in the index.
            let len = {
                let mut index = self.index();
                index.add(&entry.row, &digest);
                index.len
            };
            self.entries.insert(digest, entry);
            len as u64 > 2 * self.capacity
        };
        if oversized {
            self.shrink_index();
        }
        true
    }

    /// Drops from the index what the cache no longer holds. Under the write
    /// lock, so no insert is between indexing a row and caching it.
    fn shrink_index(&self) {
        let Ok(_generation) = self.generation.write() else {
            return;
        };
        let mut index = self.index();
        if index.len as u64 > 2 * self.capacity {
            self.entries.run_pending_tasks();
            index.retain(|digest| self.entries.contains_key(digest));
        }
    }

    /// Forgets the entries `changes` concern; lookups already under way
    /// will not cache theirs. Returns how many entries were found.
    pub fn evict(&self, changes: &[Change]) -> usize {
        let Ok(mut generation) = self.generation.write() else {
            // A poisoned lock: no insert can pass `insert` any more.
            self.entries.invalidate_all();
            return 0;
        };
        *generation += 1;
        let mut digests = Vec::new();
        {
            let mut index = self.index();
            for change in changes {
                index.take_change(*change, &mut digests);
            }
        }
        let mut found = 0;
        for digest in &digests {
            // The index may name digests the size bound already let go.
            if self.entries.remove(digest).is_some() {
                found += 1;
            }
        }
        self.by_change.fetch_add(found, Ordering::Relaxed);
        digests.len()
    }

    /// Forgets every entry; lookups already under way will not cache theirs.
    pub fn clear(&self) {
        match self.generation.write() {
            Ok(mut generation) => {
                *generation += 1;
                *self.index() = Index::default();
                self.entries.invalidate_all();
            }
            // A poisoned lock: no insert can pass `insert` any more.
            Err(_) => self.entries.invalidate_all(),
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    #[cfg(test)]
    fn indexed(&self) -> usize {
        self.index().len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{TokenId, UserId, WorkspaceId};
    use crate::service::token_cache::verdict::row;

    fn digest(n: u32) -> TokenDigest {
        TokenDigest::from_stored(format!("{n:064x}"))
    }

    /// Token `n`'s entry, owned by `user` in `workspace`.
    fn entry(n: u32, user: i64, workspace: i64) -> Arc<Entry> {
        let mut r = row(Some("read-write"), "read-write");
        r.token_id = TokenId(i64::from(n));
        r.user_id = UserId(user);
        r.workspace_id = WorkspaceId(workspace);
        Arc::new(Entry::new(r))
    }

    /// Tokens 1..=6: 1, 2 of user 10 in workspace 1; 3 of user 10 in
    /// workspace 2; 4 of user 20 in workspace 1; 5, 6 of user 30 in
    /// workspace 2.
    fn filled() -> Store {
        let store = Store::new(100);
        let g = store.generation().unwrap();
        for (n, user, workspace) in [
            (1, 10, 1),
            (2, 10, 1),
            (3, 10, 2),
            (4, 20, 1),
            (5, 30, 2),
            (6, 30, 2),
        ] {
            assert!(store.insert(digest(n), entry(n, user, workspace), g));
        }
        store
    }

    fn cached(store: &Store) -> Vec<u32> {
        (1..=6)
            .filter(|n| store.get(&digest(*n)).is_some())
            .collect()
    }

    #[test]
    fn each_change_evicts_exactly_the_entries_it_concerns() {
        let cases: [(Change, &[u32]); 5] = [
            (Change::Token(4), &[1, 2, 3, 5, 6]),
            (
                Change::Member {
                    workspace: 1,
                    user: 10,
                },
                &[3, 4, 5, 6],
            ),
            (Change::User(10), &[4, 5, 6]),
            (Change::Workspace(2), &[1, 2, 4]),
            (
                Change::Member {
                    workspace: 2,
                    user: 20,
                },
                &[1, 2, 3, 4, 5, 6],
            ),
        ];
        for (change, left) in cases {
            let store = filled();
            store.evict(&[change]);
            assert_eq!(cached(&store), left, "{change:?}");
        }
    }

    #[test]
    fn an_evicted_token_cached_again_is_evicted_again() {
        let store = filled();
        assert_eq!(store.evict(&[Change::Token(1)]), 1);
        let g = store.generation().unwrap();
        assert!(store.insert(digest(1), entry(1, 10, 1), g));
        assert_eq!(store.evict(&[Change::User(10)]), 3, "tokens 1, 2 and 3");
        assert_eq!(cached(&store), [4, 5, 6]);
        assert_eq!(store.indexed(), 3);
    }

    #[test]
    fn a_rotated_token_evicts_its_old_and_new_secret() {
        let store = Store::new(100);
        let g = store.generation().unwrap();
        store.insert(digest(1), entry(7, 10, 1), g);
        store.insert(digest(2), entry(7, 10, 1), g);
        store.evict(&[Change::Token(7)]);
        assert!(store.get(&digest(1)).is_none() && store.get(&digest(2)).is_none());
    }

    #[test]
    fn a_lookup_that_began_before_an_eviction_does_not_cache_its_row() {
        let store = filled();
        let before = store.generation().unwrap();
        store.evict(&[Change::Token(99)]);
        assert!(!store.insert(digest(9), entry(9, 10, 1), before));
        assert!(store.get(&digest(9)).is_none());
    }

    #[test]
    fn a_lookup_that_began_before_a_clear_does_not_cache_its_row() {
        let store = Store::new(100);
        let before = store.generation().unwrap();
        store.clear();
        assert!(!store.insert(digest(1), Arc::new(Entry::new(row(None, "admin"))), before));
        assert!(store.get(&digest(1)).is_none());
        let after = store.generation().unwrap();
        assert!(store.insert(digest(1), Arc::new(Entry::new(row(None, "admin"))), after));
        assert!(store.get(&digest(1)).is_some());
    }

    #[test]
    fn a_clear_forgets_every_entry() {
        let store = filled();
        store.clear();
        assert!(cached(&store).is_empty());
        assert_eq!(store.indexed(), 0);
    }

    #[test]
    fn evictions_are_counted_by_cause() {
        let store = filled();
        store.evict(&[Change::User(10)]);
        assert_eq!(
            store.evicted(),
            Evicted {
                by_change: 3,
                by_size: 0
            }
        );
        // Nothing of user 10 is cached any more: nothing more is counted.
        store.evict(&[Change::User(10), Change::Token(99)]);
        assert_eq!(store.evicted().by_change, 3);
        store.clear();
        assert_eq!(store.evicted().by_change, 3, "a clear is counted apart");

        let small = Store::new(50);
        let g = small.generation().unwrap();
        for n in 0..1_000 {
            small.insert(digest(n), entry(n, 1, 1), g);
        }
        let held = small.len();
        assert_eq!(small.evicted().by_size, 1_000 - held, "{held} held");
        assert_eq!(small.evicted().by_change, 0);
    }

    #[test]
    fn the_cache_and_its_index_stay_within_bounds() {
        let store = Store::new(50);
        let g = store.generation().unwrap();
        for n in 0..1_000 {
            store.insert(digest(n), entry(n, i64::from(n % 7), 1), g);
        }
        assert!(store.len() <= 50, "{} entries", store.len());
        assert!(store.indexed() <= 100, "{} indexed", store.indexed());
        // What the cache still holds is still found through the index.
        let held: Vec<u32> = (0..1_000)
            .filter(|n| store.get(&digest(*n)).is_some())
            .collect();
        assert!(!held.is_empty());
        store.evict(&[Change::Workspace(1)]);
        assert!(held.iter().all(|n| store.get(&digest(*n)).is_none()));
    }
}
