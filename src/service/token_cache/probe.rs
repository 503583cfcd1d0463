//! SQLite: noticing changes committed by other processes on the same file.
//!
//! Every commit in WAL mode rewrites the WAL index header, the first 96
//! bytes of the `-shm` file (SQLite's own change detection reads the same
//! bytes); `Db::commit_marker` reads them from memory, without a query or
//! a system call. Only when the header moved does the cache read the change
//! log (the rows triggers append on every change to tokens, members, users
//! and workspaces) after the last row it has read; most commits (sessions,
//! audit events, "last used" times) add no row there, so they evict
//! nothing.

use std::sync::Mutex;

use crate::storage::commit_marker::Header;

/// What a look at the header found.
#[derive(Debug, PartialEq, Eq)]
pub enum Look {
    /// Nothing committed since the last settled look.
    Unchanged,
    /// Something was committed (or the header can not be read): read the
    /// change log and `settle`.
    Changed(Option<Header>),
}

#[derive(Default)]
struct Seen {
    header: Option<Header>,
    version: Option<i64>,
}

/// The header and change-log row the cache last caught up with.
#[derive(Default)]
pub struct ChangeProbe {
    seen: Mutex<Seen>,
}

impl ChangeProbe {
    /// Compares `header` (`Db::commit_marker`, read now) with the last
    /// settled one.
    pub fn look(&self, header: Option<Header>) -> Look {
        let Ok(seen) = self.seen.lock() else {
            return Look::Changed(header);
        };
        match header {
            Some(h) if seen.header == Some(h) && seen.version.is_some() => Look::Unchanged,
            _ => Look::Changed(header),
        }
    }

    /// After a `Changed` look: `version` is how far the change log was read
    /// (and evicted from) after the look. Returns whether it moved.
    pub fn settle(&self, header: Option<Header>, version: i64) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return true;
        };
        let moved = seen.version != Some(version);
        // Versions only grow; an older answer (a slower concurrent look)
        // must not set the record back.
        if seen.version.is_none_or(|v| v <= version) {
            seen.version = Some(version);
            seen.header = header;
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_moved_version_counts_as_a_change() {
        let probe = ChangeProbe::default();
        let Look::Changed(h) = probe.look(Some([1; 96])) else {
            panic!("first look must ask")
        };
        assert!(probe.settle(h, 5), "first version seen");
        assert_eq!(probe.look(Some([1; 96])), Look::Unchanged);
        // A commit that is not about tokens: header moves, version does not.
        let Look::Changed(h) = probe.look(Some([2; 96])) else {
            panic!("header moved")
        };
        assert!(!probe.settle(h, 5));
        assert_eq!(probe.look(Some([2; 96])), Look::Unchanged);
        // A token change.
        let Look::Changed(h) = probe.look(Some([3; 96])) else {
            panic!("header moved")
        };
        assert!(probe.settle(h, 6));
        assert_eq!(probe.look(Some([3; 96])), Look::Unchanged);
    }

    #[test]
    fn an_unreadable_header_always_asks() {
        let probe = ChangeProbe::default();
        assert_eq!(probe.look(None), Look::Changed(None));
        probe.settle(None, 0);
        assert_eq!(probe.look(None), Look::Changed(None));
    }

    #[test]
    fn a_slower_older_answer_does_not_set_the_record_back() {
        let probe = ChangeProbe::default();
        probe.settle(Some([9; 96]), 7);
        assert!(probe.settle(Some([8; 96]), 6), "a different version clears");
        assert_eq!(
            probe.look(Some([9; 96])),
            Look::Unchanged,
            "the record kept version 7"
        );
    }
}
