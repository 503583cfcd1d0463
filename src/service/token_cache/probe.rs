//! SQLite: noticing changes committed by other processes on the same file.
//!
//! Every commit in WAL mode rewrites the WAL index header, the first 96
//! bytes of the `-shm` file (SQLite's own change detection reads the same
//! bytes). Reading them costs one `pread` and no query. Only when the
//! header moved does the cache read the change log (the rows triggers
//! append on every change to tokens, members, users and workspaces) after
//! the last row it has read; most commits (sessions, audit events, "last
//! used" times) add no row there, so they evict nothing.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

type Header = [u8; 96];

/// What a look at the file found.
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

pub struct ChangeProbe {
    shm: PathBuf,
    file: Mutex<Option<(File, u64)>>,
    seen: Mutex<Seen>,
}

impl ChangeProbe {
    pub fn new(database: &Path) -> Self {
        let mut shm = database.as_os_str().to_owned();
        shm.push("-shm");
        Self {
            shm: PathBuf::from(shm),
            file: Mutex::new(None),
            seen: Mutex::new(Seen::default()),
        }
    }

    fn read_header(&self) -> Option<Header> {
        let mut file = self.file.lock().ok()?;
        // SQLite deletes the file when its last connection closes and makes
        // a new one later: read the file the path names now, not the old one.
        let current = std::fs::metadata(&self.shm).ok()?.ino();
        if file.as_ref().is_none_or(|(_, ino)| *ino != current) {
            *file = File::open(&self.shm).ok().map(|f| (f, current));
        }
        let mut header = [0u8; 96];
        match file.as_ref()?.0.read_exact_at(&mut header, 0) {
            Ok(()) => Some(header),
            Err(_) => {
                // Reopened on the next look (the file may have been recreated).
                *file = None;
                None
            }
        }
    }

    pub fn look(&self) -> Look {
        let header = self.read_header();
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

    fn write(path: &Path, byte: u8) {
        std::fs::write(path, [byte; 128]).unwrap();
    }

    #[test]
    fn only_a_moved_version_counts_as_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let shm = dir.path().join("t.db-shm");
        let probe = ChangeProbe::new(&db);
        write(&shm, 1);
        let Look::Changed(h) = probe.look() else {
            panic!("first look must ask")
        };
        assert!(probe.settle(h, 5), "first version seen");
        assert_eq!(probe.look(), Look::Unchanged);
        // A commit that is not about tokens: header moves, version does not.
        write(&shm, 2);
        let Look::Changed(h) = probe.look() else {
            panic!("header moved")
        };
        assert!(!probe.settle(h, 5));
        assert_eq!(probe.look(), Look::Unchanged);
        // A token change.
        write(&shm, 3);
        let Look::Changed(h) = probe.look() else {
            panic!("header moved")
        };
        assert!(probe.settle(h, 6));
        assert_eq!(probe.look(), Look::Unchanged);
    }

    #[test]
    fn a_recreated_file_is_read_anew() {
        let dir = tempfile::tempdir().unwrap();
        let shm = dir.path().join("t.db-shm");
        let probe = ChangeProbe::new(&dir.path().join("t.db"));
        write(&shm, 1);
        let Look::Changed(h) = probe.look() else {
            panic!("first look must ask")
        };
        probe.settle(h, 1);
        std::fs::remove_file(&shm).unwrap();
        write(&shm, 2);
        assert_eq!(probe.look(), Look::Changed(Some([2; 96])));
    }

    #[test]
    fn an_unreadable_header_always_asks() {
        let dir = tempfile::tempdir().unwrap();
        let probe = ChangeProbe::new(&dir.path().join("none.db"));
        assert_eq!(probe.look(), Look::Changed(None));
        probe.settle(None, 0);
        assert_eq!(probe.look(), Look::Changed(None));
    }

    #[test]
    fn a_slower_older_answer_does_not_set_the_record_back() {
        let dir = tempfile::tempdir().unwrap();
        let shm = dir.path().join("t.db-shm");
        let probe = ChangeProbe::new(&dir.path().join("t.db"));
        write(&shm, 1);
        probe.settle(Some([9; 96]), 7);
        assert!(probe.settle(Some([8; 96]), 6), "a different version clears");
        write(&shm, 9);
        assert_eq!(probe.look(), Look::Unchanged, "the record kept version 7");
    }
}
