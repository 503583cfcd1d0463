//! SQLite: a look, without a system call, at whether anything was committed.
//!
//! In WAL mode every commit, by any process, rewrites the WAL index header:
//! the first 96 bytes of the `-shm` file, which every connection maps into
//! memory (SQLite's own change detection compares the same bytes). Mapped
//! here too, the header is read with a copy from memory, where reading it
//! with `pread` cost a system call per request, and making sure the path
//! still named the same file cost a second one.
//!
//! The mapping is sound because this process keeps the file alive: a pinned
//! connection, opened after the pool's first and never used for queries,
//! holds SQLite's shared locks for the life of the handle. SQLite deletes
//! the `-shm` file only when its last connection closes, and truncates it
//! only when a first connection finds no other one, so while the pin is
//! open the file is neither replaced nor shortened under the mapping. (A
//! shortened file would make reading the mapping fault.) Only the file the
//! pin holds is ever mapped: should the path name another one (someone
//! deleted it by hand), `recheck`, run every second in the background,
//! drops the mapping, and from then on every request reads the change log,
//! as when nothing is mapped.
//!
//! The descriptor opened to map the file is never closed. Closing *any*
//! descriptor of a file drops every POSIX lock the process holds on it,
//! SQLite's included: SQLite's shared lock on the `-shm` file would be gone,
//! the next process to open the database would take the file for unused and
//! shorten it, and every mapping of it in this process, SQLite's own too,
//! would fault. One descriptor per database handle stays open for the life
//! of the process.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};

use memmap2::{Mmap, MmapOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};

/// The two copies of the WAL index header.
pub type Header = [u8; 96];

/// The smallest `-shm` file an initialised database has: one 32 KiB page of
/// the WAL index.
const SHM_PAGE: u64 = 32 * 1024;

struct Mapped {
    map: Mmap,
    inode: u64,
    /// Never closed (see the module's comment).
    _file: std::mem::ManuallyDrop<File>,
}

pub struct CommitMarker {
    shm: PathBuf,
    /// The inode of the `-shm` file the pin holds.
    pinned: Option<u64>,
    map: RwLock<Option<Mapped>>,
    /// Keeps the `-shm` file in place; `None` once closed.
    pin: Mutex<Option<SqliteConnection>>,
    closed: AtomicBool,
}

impl CommitMarker {
    /// Pins the database at `url` with a connection of its own and maps its
    /// WAL index. Call after the pool put the database in WAL mode.
    pub(super) async fn open(url: &str, database: &Path) -> Result<Self, sqlx::Error> {
        let mut pin = SqliteConnectOptions::from_str(url)?.connect().await?;
        // A read opens the WAL and its index and takes the shared locks the
        // connection then holds until it closes.
        sqlx::query("SELECT count(*) FROM sqlite_master")
            .execute(&mut pin)
            .await?;
        let mut shm = database.as_os_str().to_owned();
        shm.push("-shm");
        let shm = PathBuf::from(shm);
        let pinned = std::fs::metadata(&shm).ok().map(|m| m.ino());
        let marker = Self {
            shm,
            pinned,
            map: RwLock::new(None),
            pin: Mutex::new(Some(pin)),
            closed: AtomicBool::new(false),
        };
        marker.recheck();
        Ok(marker)
    }

    /// The header as it is now; `None` when the file is not mapped (then
    /// the caller must assume a change).
    pub fn read(&self) -> Option<Header> {
        let map = self.map.read().ok()?;
        let mapped = map.as_ref()?;
        // Another process may be writing these bytes: a volatile copy reads
        // whatever is there now. A read racing a commit sees the header from
        // before it, from after it, or a mix, which only looks like a change.
        let source = mapped.map.as_ptr().cast::<[u64; 12]>();
        // SAFETY: the mapping is at least `SHM_PAGE` bytes of a file that is
        // not shortened while the pin holds it (see the module's comment),
        // and page-aligned.
        let words = unsafe { std::ptr::read_volatile(source) };
        let mut header = [0u8; 96];
        for (chunk, word) in header.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        Some(header)
    }

    /// Maps the file the pin holds when the path names it and it is not
    /// mapped yet; drops the mapping when the path names another file.
    /// Cheap when nothing changed: one `stat`.
    pub fn recheck(&self) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let current = std::fs::metadata(&self.shm)
            .ok()
            .filter(|m| m.len() >= SHM_PAGE)
            .map(|m| m.ino());
        let held = current.is_some() && current == self.pinned;
        let mapped = self
            .map
            .read()
            .ok()
            .and_then(|m| m.as_ref().map(|m| m.inode));
        if held == mapped.is_some() {
            return;
        }
        let Ok(mut map) = self.map.write() else {
            return;
        };
        // `close` sets the flag before it takes this lock: a recheck that
        // began before it must not map the file again after it.
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        if !held {
            if map.take().is_some() {
                tracing::warn!(
                    "the database's -shm file was replaced; other processes' commits are now found by reading the change log on every token check"
                );
            }
            return;
        }
        *map = current.and_then(|inode| {
            // Never closed, whatever follows (see the module's comment).
            let file = std::mem::ManuallyDrop::new(File::open(&self.shm).ok()?);
            // The file may have been replaced or shortened since the stat.
            let meta = file.metadata().ok()?;
            if meta.ino() != inode || meta.len() < SHM_PAGE {
                return None;
            }
            // SAFETY: see `read`; the length mapped is within the file, and
            // it is the file the pin holds.
            let map = unsafe { MmapOptions::new().len(96).map(&*file) }.ok()?;
            Some(Mapped {
                map,
                inode,
                _file: file,
            })
        });
    }

    /// Closes the pin (at shutdown, after the pool), so the last connection
    /// can remove the `-shm` file as SQLite does.
    pub(super) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Ok(mut map) = self.map.write() {
            *map = None;
        }
        let pin = self.pin.lock().ok().and_then(|mut p| p.take());
        if let Some(pin) = pin {
            let _ = pin.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn database() -> (tempfile::TempDir, PathBuf, sqlx::SqlitePool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&pool)
            .await
            .unwrap();
        (dir, path, pool)
    }

    fn url(path: &Path) -> String {
        format!("sqlite://{}", path.display())
    }

    #[tokio::test]
    async fn a_commit_by_another_connection_moves_the_header_and_a_read_does_not() {
        let (_dir, path, pool) = database().await;
        let marker = CommitMarker::open(&url(&path), &path).await.unwrap();
        let before = marker.read().expect("mapped");
        sqlx::query("SELECT * FROM t").execute(&pool).await.unwrap();
        assert_eq!(marker.read(), Some(before), "a read commits nothing");
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&pool)
            .await
            .unwrap();
        assert_ne!(marker.read(), Some(before), "a commit moves the header");
    }

    #[tokio::test]
    async fn the_pin_keeps_the_file_when_every_other_connection_closes() {
        let (_dir, path, pool) = database().await;
        let marker = CommitMarker::open(&url(&path), &path).await.unwrap();
        let shm = marker.shm.clone();
        let inode = std::fs::metadata(&shm).unwrap().ino();
        pool.close().await;
        assert_eq!(std::fs::metadata(&shm).unwrap().ino(), inode);
        // Another process's commit (a new connection) is still seen.
        let before = marker.read().unwrap();
        let mut other = SqliteConnection::connect(&url(&path)).await.unwrap();
        sqlx::query("INSERT INTO t VALUES (2)")
            .execute(&mut other)
            .await
            .unwrap();
        assert_ne!(marker.read(), Some(before));
        other.close().await.unwrap();
        marker.close().await;
        assert!(!shm.exists(), "the last connection removes the file");
    }

    #[tokio::test]
    async fn a_file_the_pin_does_not_hold_is_never_mapped() {
        let (_dir, path, _pool) = database().await;
        let marker = CommitMarker::open(&url(&path), &path).await.unwrap();
        assert!(marker.read().is_some());
        let shm = marker.shm.clone();
        std::fs::remove_file(&shm).unwrap();
        std::fs::write(&shm, vec![7u8; SHM_PAGE as usize]).unwrap();
        marker.recheck();
        assert_eq!(marker.read(), None, "another file: nothing mapped");
        marker.recheck();
        assert_eq!(marker.read(), None, "and it stays so");
    }

    #[tokio::test]
    async fn nothing_is_mapped_after_close() {
        let (_dir, path, _pool) = database().await;
        let marker = CommitMarker::open(&url(&path), &path).await.unwrap();
        marker.close().await;
        marker.recheck();
        assert_eq!(marker.read(), None);
    }
}
