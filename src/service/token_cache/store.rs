//! The bounded cache of verified token rows, by digest.
//!
//! `moka` bounds it (TinyLFU admission, LRU eviction) so a flood of distinct
//! tokens evicts the rarely used ones instead of growing memory or dropping
//! everything. A generation number, advanced by every clear under a write
//! lock that inserts take for reading, stops a lookup whose query began
//! before a change from putting the old row back afterwards.

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, RwLock};

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

pub struct Store {
    entries: moka::sync::Cache<TokenDigest, Arc<Entry>>,
    generation: RwLock<u64>,
}

impl Store {
    pub fn new(capacity: u64) -> Self {
        Self {
            entries: moka::sync::Cache::new(capacity),
            generation: RwLock::new(0),
        }
    }

    pub fn get(&self, digest: &TokenDigest) -> Option<Arc<Entry>> {
        self.entries.get(digest)
    }

    /// Read before a lookup query; hand it back to `insert`.
    pub fn generation(&self) -> Option<u64> {
        self.generation.read().ok().map(|g| *g)
    }

    /// Caches `entry` unless the cache was cleared since `generation` was
    /// read. Returns whether it did.
    pub fn insert(&self, digest: TokenDigest, entry: Arc<Entry>, generation: u64) -> bool {
        let Ok(current) = self.generation.read() else {
            return false;
        };
        if *current != generation {
            return false;
        }
        // Still holding the read lock: a clear waits until this insert is
        // done, and then removes it.
        self.entries.insert(digest, entry);
        true
    }

    /// Forgets every entry; lookups already under way will not cache theirs.
    pub fn clear(&self) {
        match self.generation.write() {
            Ok(mut generation) => {
                *generation += 1;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::token_cache::verdict::row;

    fn digest(n: u32) -> TokenDigest {
        TokenDigest::from_stored(format!("{n:064x}"))
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
        let store = Store::new(100);
        let g = store.generation().unwrap();
        for n in 0..10 {
            store.insert(digest(n), Arc::new(Entry::new(row(None, "admin"))), g);
        }
        store.clear();
        assert!((0..10).all(|n| store.get(&digest(n)).is_none()));
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let store = Store::new(50);
        let g = store.generation().unwrap();
        for n in 0..1_000 {
            store.insert(digest(n), Arc::new(Entry::new(row(None, "admin"))), g);
        }
        assert!(store.len() <= 50, "{} entries", store.len());
    }
}
