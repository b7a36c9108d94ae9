//! The read-only connections of a file store, and the read snapshots they keep.
//!
//! Every read runs in a read transaction, a snapshot of what was committed when it began.
//! Beginning and ending one costs more than a read of a few rows SQLite has in memory: a
//! read lock on the write-ahead log (file locks through `fcntl`, under a mutex all the
//! process's connections share) taken and given back. A `GET /pay-orders/{id}` makes three
//! reads (the key, the organization's limits, the order), and their locking was about 15 %
//! of the host's CPU under load.
//!
//! So a connection keeps its read transaction open after a read, and its next read uses
//! the same snapshot if nothing has been committed since, by any connection of any
//! process. SQLite keeps a header of the log in the memory all connections to the file
//! share (the WAL-index header, <https://www.sqlite.org/walformat.html>); every commit
//! rewrites it. A connection notes the header before its snapshot begins; a later read on
//! it compares the header with that note and, when they differ (or the header is being
//! written), ends the transaction and begins a new one. A read therefore sees every commit
//! that finished before it began, exactly as a new transaction would; a write's own later
//! reads see it (the writer answers after its commit has rewritten the header).
//!
//! A snapshot is kept only when the header showed the log fully copied into the database
//! (SQLite then reads the database file under the log's read lock 0): the writer copies it
//! when it falls idle after lazy commits, which every API request makes, and SQLite when
//! the log reaches 1,000 pages. A kept snapshot of a log with frames still to copy would
//! keep the log from starting over, so it would grow with every write (a commit between
//! the note and the snapshot's start can still make one, which that commit, having changed
//! the header, has the sweep or the connection's next read end within [`SWEEP`]). Read
//! lock 0 does not, but it holds back the checkpoint that copies later commits' frames, so
//! a thread ends idle kept snapshots within [`SWEEP`] of a commit (and any transaction a
//! panicking read left open), and a connection in use ends its own at its next read.

use super::{StoreError, StoreResult, exec, row, sql, tune};
use rusqlite::{Connection, ffi};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// How many read-only connections a file store keeps.
const READERS: usize = 4;

/// How often idle kept snapshots are looked at (and ended when there was a commit).
const SWEEP: std::time::Duration = std::time::Duration::from_millis(20);

/// Read-only connections to a file store, each used by one call at a time.
pub(super) struct Readers {
    conns: Vec<Mutex<Reader>>,
    next: AtomicUsize,
    /// Whether the thread ends idle kept snapshots (tests stop it to look at one).
    sweeping: AtomicBool,
}

/// One read-only connection and the snapshot it keeps.
pub(super) struct Reader {
    pub(super) conn: Connection,
    /// The log's shared header (`None` if it cannot be mapped: no snapshot is kept).
    wal: Option<WalIndex>,
    /// The header noted before the kept transaction's snapshot began.
    kept: Option<Header>,
}

impl Readers {
    /// Opens the read-only connections to `path` (a file store the writer has set up), and
    /// the thread that ends idle kept snapshots; it stops when the connections are dropped.
    pub(super) fn open(path: &Path) -> StoreResult<Arc<Self>> {
        let mut conns = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let conn = Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(StoreError::unavailable)?;
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .map_err(StoreError::unavailable)?;
            tune(&conn)?;
            let mut reader = Reader {
                conn,
                wal: None,
                kept: None,
            };
            // A first read opens the connection's log and maps its shared memory; a database
            // not in WAL mode (a file system without shared memory) keeps no snapshot.
            let mode = reader.run(|c| {
                row(c, "PRAGMA journal_mode", [], |r| r.get::<_, String>(0)).map_err(sql)
            })?;
            if mode.eq_ignore_ascii_case("wal") {
                reader.wal = WalIndex::map(&reader.conn);
            }
            conns.push(Mutex::new(reader));
        }
        let readers = Arc::new(Self {
            conns,
            next: AtomicUsize::new(0),
            sweeping: AtomicBool::new(true),
        });
        let weak = Arc::downgrade(&readers);
        std::thread::Builder::new()
            .name("sqlite-readers".into())
            .spawn(move || sweep_loop(weak))
            .map_err(StoreError::unavailable)?;
        Ok(readers)
    }

    /// A connection no other call is using, if there is one.
    pub(super) fn free(&self) -> Option<MutexGuard<'_, Reader>> {
        self.conns.iter().find_map(take)
    }

    /// A free connection if there is one, else the next in turn once it is free.
    pub(super) fn any(&self) -> MutexGuard<'_, Reader> {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .find_map(|i| take(&self.conns[(start + i) % n]))
            .unwrap_or_else(|| {
                self.conns[start % n]
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
            })
    }

    /// Ends the kept snapshots of idle connections that a commit has made old, and the
    /// transactions panicking reads left open.
    pub(super) fn sweep(&self) {
        for conn in &self.conns {
            if let Some(mut reader) = take(conn)
                && !reader.conn.is_autocommit()
                && !reader.holds(reader.header())
            {
                reader.end();
            }
        }
    }

    /// Every connection, each once free (tests look at their statements).
    #[cfg(test)]
    pub(super) fn each(&self) -> impl Iterator<Item = MutexGuard<'_, Reader>> {
        self.conns
            .iter()
            .map(|c| c.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The connection if no call is using it. A read that panicked leaves its connection
/// as usable as any: the next read ends what transaction it left open.
fn take(conn: &Mutex<Reader>) -> Option<MutexGuard<'_, Reader>> {
    match conn.try_lock() {
        Ok(reader) => Some(reader),
        Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

fn sweep_loop(readers: Weak<Readers>) {
    loop {
        std::thread::sleep(SWEEP);
        match readers.upgrade() {
            Some(r) if r.sweeping.load(Ordering::Relaxed) => r.sweep(),
            Some(_) => {}
            None => return,
        }
    }
}

impl Reader {
    /// Runs `f` in a read transaction: the kept one when nothing was committed since its
    /// snapshot began, else a new one, kept afterwards when its log was fully copied.
    pub(super) fn run<T>(
        &mut self,
        f: impl FnOnce(&Connection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let now = self.header();
        if !self.holds(now) {
            // A kept snapshot a commit has made old, or a transaction a panicking read left.
            self.end();
            // The header was noted before the snapshot begins (at the first read), so the
            // snapshot has at least every commit the header shows.
            exec(&self.conn, "BEGIN", []).map_err(sql)?;
        }
        let out = f(&self.conn);
        match now {
            Some((header, true)) if out.is_ok() && !self.conn.is_autocommit() => {
                self.kept = Some(header)
            }
            _ => self.end(),
        }
        out
    }

    /// Whether the connection's kept snapshot still has everything committed, the header
    /// being `now`: the transaction is open and nothing was committed since its note.
    fn holds(&self, now: Option<(Header, bool)>) -> bool {
        self.kept.is_some() && now.map(|(h, _)| h) == self.kept && !self.conn.is_autocommit()
    }

    /// Ends the kept transaction (a read transaction: nothing of it to keep or undo).
    fn end(&mut self) {
        self.kept = None;
        if !self.conn.is_autocommit() {
            let _ = exec(&self.conn, "ROLLBACK", []);
        }
    }

    /// The log's shared header and whether the log was fully copied into the database, as
    /// SQLite reads them; `None` while a commit is writing the header, or without a
    /// mapping of it.
    fn header(&self) -> Option<(Header, bool)> {
        self.wal.as_ref()?.header()
    }

    /// Whether the connection keeps a read transaction open (tests).
    #[cfg(test)]
    pub(super) fn keeps(&self) -> bool {
        self.kept.is_some() && !self.conn.is_autocommit()
    }
}

/// The WAL-index header, words 0–11 of either copy (walformat.html, "The WAL-Index Header").
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Header([u32; HEADER_WORDS]);

/// The header is 48 bytes; the two copies are at 0 and 48.
const HEADER_WORDS: usize = 12;
/// `isInit` is the byte at offset 12 (word 3's first byte in memory).
const IS_INIT_WORD: usize = 3;
/// `mxFrame`, the last frame of the last commit, at offset 16.
const MX_FRAME_WORD: usize = 4;
/// `nBackfill` of the checkpoint information after the two copies, at offset 96: the frames
/// already copied into the database.
const N_BACKFILL_WORD: usize = 24;
/// SQLite's size of a region of the WAL-index (`WALINDEX_PGSZ`).
const REGION_BYTES: i32 = 32768;

/// The first region of a connection's mapping of the WAL-index, which holds the header.
struct WalIndex(*const AtomicU32);

// SAFETY: the region is shared memory SQLite maps for the connection's whole life, and is
// only ever read here, through atomic loads; the pointer moves with its connection.
unsafe impl Send for WalIndex {}

impl WalIndex {
    /// Asks the connection's file (the unix VFS) for its first WAL-index region, which its
    /// reads through the log have mapped; `None` when there is none.
    fn map(conn: &Connection) -> Option<Self> {
        // SAFETY: the handle is the live connection's; SQLITE_FCNTL_FILE_POINTER writes the
        // main database's `sqlite3_file` pointer, valid while the connection is open. xShmMap
        // (io methods version 2 and up) with bExtend = 0 returns the region the connection
        // has already mapped, or none, and does not extend the file; SQLite keeps a region
        // mapped until the connection closes its log (when the connection closes: a read-only
        // connection cannot leave WAL mode). The region lives in `Reader` beside the
        // connection and is dropped with it.
        unsafe {
            let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
            let rc = ffi::sqlite3_file_control(
                conn.handle(),
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_FILE_POINTER,
                (&raw mut file).cast(),
            );
            if rc != ffi::SQLITE_OK || file.is_null() || (*file).pMethods.is_null() {
                return None;
            }
            let methods = &*(*file).pMethods;
            let shm_map = methods.xShmMap.filter(|_| methods.iVersion >= 2)?;
            let mut region: *mut std::ffi::c_void = std::ptr::null_mut();
            let rc = shm_map(file, 0, REGION_BYTES, 0, &raw mut region);
            (rc == ffi::SQLITE_OK && !region.is_null()).then(|| Self(region.cast()))
        }
    }

    fn word(&self, i: usize) -> u32 {
        // SAFETY: the region is 32 KiB, aligned to a page; every index used is below 26.
        unsafe { &*self.0.add(i) }.load(Ordering::Acquire)
    }

    /// The header if its two copies agree (a commit writes the second, then the first) and
    /// it is initialised, with whether every frame has been copied into the database.
    fn header(&self) -> Option<(Header, bool)> {
        let first: [u32; HEADER_WORDS] = std::array::from_fn(|i| self.word(i));
        let second: [u32; HEADER_WORDS] = std::array::from_fn(|i| self.word(HEADER_WORDS + i));
        let init = first[IS_INIT_WORD].to_ne_bytes()[0] != 0;
        if first != second || !init {
            return None;
        }
        let copied = self.word(N_BACKFILL_WORD) == first[MX_FRAME_WORD];
        Some((Header(first), copied))
    }
}

#[cfg(test)]
mod tests {
    use super::super::EmbeddedStore;
    use super::*;
    use rusqlite::{OptionalExtension, params};

    fn open(dir: &tempfile::TempDir) -> EmbeddedStore {
        let store = EmbeddedStore::open(&dir.path().join("store.db")).unwrap();
        store.readers().sweeping.store(false, Ordering::Relaxed);
        store
    }

    /// Another connection to the file, as another process (the operator's CLI) has.
    fn other(dir: &tempfile::TempDir) -> Connection {
        let conn = Connection::open(dir.path().join("store.db")).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        conn
    }

    /// A passive checkpoint from `conn`: the log's frames, and how many are in the database.
    fn checkpoint(conn: &Connection) -> (i64, i64) {
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(1)?, r.get(2)?))
        })
        .unwrap()
    }

    const SET_CURSOR: &str = "INSERT INTO scan_cursors (chain_id, block) VALUES (?1, ?2) \
         ON CONFLICT (chain_id) DO UPDATE SET block = excluded.block";

    /// A write through the store's writer.
    async fn put(store: &EmbeddedStore, chain: i64, block: i64) {
        store
            .tx(move |tx| {
                exec(tx, SET_CURSOR, params![chain, block]).map_err(sql)?;
                Ok(())
            })
            .await
            .unwrap()
    }

    /// A write through another connection (another process).
    fn put_outside(outside: &Connection, chain: i64, block: i64) {
        outside.execute(SET_CURSOR, params![chain, block]).unwrap();
    }

    async fn get(store: &EmbeddedStore, chain: i64) -> Option<i64> {
        store
            .point(move |tx| {
                row(
                    tx,
                    "SELECT block FROM scan_cursors WHERE chain_id = ?1",
                    [chain],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql)
            })
            .await
            .unwrap()
    }

    /// How many transactions each connection has begun.
    fn begins(store: &EmbeddedStore) -> Vec<i32> {
        store
            .readers()
            .each()
            .map(|r| {
                let stmt = r.conn.prepare_cached("BEGIN").unwrap();
                stmt.get_status(rusqlite::StatementStatus::Run)
            })
            .collect()
    }

    fn keeping(store: &EmbeddedStore) -> Vec<bool> {
        store.readers().each().map(|r| r.keeps()).collect()
    }

    /// Reads `chain` until the first connection keeps its snapshot, copying the log into
    /// the database from `outside` in between (as the writer does once idle after lazy
    /// commits): a read after a commit begins a new snapshot, which lets the copy through.
    async fn read_until_kept(
        store: &EmbeddedStore,
        outside: &Connection,
        chain: i64,
    ) -> Option<i64> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let value = get(store, chain).await;
            if keeping(store)[0] {
                return value;
            }
            assert!(std::time::Instant::now() < deadline, "no snapshot was kept");
            checkpoint(outside);
        }
    }

    /// A file store whose first connection keeps a snapshot with chain 1 at block 10, and
    /// another connection to its file.
    async fn kept_at_ten() -> (tempfile::TempDir, EmbeddedStore, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let outside = other(&dir);
        put(&store, 1, 10).await;
        assert_eq!(read_until_kept(&store, &outside, 1).await, Some(10));
        (dir, store, outside)
    }

    /// Reads reuse a kept snapshot while nothing is committed, and see a commit as soon as
    /// it is made: by this store's writer (a request's own write) or by another connection
    /// to the file (another process).
    #[tokio::test]
    async fn a_kept_snapshot_serves_reads_until_a_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let outside = other(&dir);
        assert!(
            store.readers().each().all(|r| r.wal.is_some()),
            "mapped at open"
        );
        put(&store, 1, 10).await;
        assert_eq!(read_until_kept(&store, &outside, 1).await, Some(10));
        assert_eq!(keeping(&store), [true, false, false, false]);
        let before = begins(&store);
        for _ in 0..5 {
            assert_eq!(get(&store, 1).await, Some(10));
        }
        assert_eq!(
            begins(&store)[0],
            before[0],
            "the kept snapshot served every read"
        );
        assert!(keeping(&store)[0]);

        // The store's own write: the next read begins a snapshot that has it.
        put(&store, 1, 11).await;
        assert_eq!(get(&store, 1).await, Some(11));
        assert_eq!(begins(&store)[0], before[0] + 1);

        // Another process's writes, each seen by the next read.
        assert_eq!(read_until_kept(&store, &outside, 1).await, Some(11));
        put_outside(&outside, 1, 12);
        assert_eq!(get(&store, 1).await, Some(12));
        put_outside(&outside, 2, 1);
        assert_eq!(get(&store, 2).await, Some(1));
    }

    /// An idle kept snapshot holds back the checkpoint of a later commit until the sweep
    /// ends it, and the sweeping thread does so on its own.
    #[tokio::test]
    async fn idle_kept_snapshots_are_ended_after_a_commit() {
        let (_dir, store, outside) = kept_at_ten().await;

        // Nothing committed: the sweep leaves the snapshot kept.
        store.readers().sweep();
        assert!(keeping(&store)[0]);

        put_outside(&outside, 1, 11);
        let (log, copied) = checkpoint(&outside);
        assert!(copied < log, "the kept snapshot held the checkpoint back");
        store.readers().sweep();
        assert_eq!(keeping(&store), [false; READERS]);
        let (log, copied) = checkpoint(&outside);
        assert_eq!(copied, log);

        // The thread sweeps by itself.
        assert_eq!(read_until_kept(&store, &outside, 1).await, Some(11));
        store.readers().sweeping.store(true, Ordering::Relaxed);
        put_outside(&outside, 1, 12);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while keeping(&store)[0] {
            assert!(std::time::Instant::now() < deadline, "no sweep ended it");
            std::thread::sleep(SWEEP);
        }
    }

    /// After lazy commits the idle writer copies the log into the database (which syncs
    /// them), and when a reader's snapshot holds part of it back, tries again until all of
    /// it is copied.
    #[tokio::test]
    async fn an_idle_writer_copies_the_log_once_a_reader_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let outside = other(&dir);
        let copied = || {
            store
                .readers()
                .each()
                .next()
                .unwrap()
                .header()
                .map(|(_, c)| c)
        };
        // Another process reads through a snapshot of the log as it is now.
        outside.execute_batch("BEGIN").unwrap();
        outside
            .query_row("SELECT count(*) FROM scan_cursors", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap();
        store
            .tx_lazy(|tx| {
                exec(
                    tx,
                    "INSERT INTO scan_cursors (chain_id, block) VALUES (1, 1)",
                    [],
                )
                .map_err(sql)
            })
            .await
            .unwrap();
        // The writer's tries meanwhile cannot copy the new frames.
        tokio::time::sleep(LAZY_WAIT).await;
        assert_eq!(copied(), Some(false));
        outside.execute_batch("COMMIT").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while copied() != Some(true) {
            assert!(
                std::time::Instant::now() < deadline,
                "the log was not copied"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Many of the writer's idle tries (20 ms apart).
    const LAZY_WAIT: std::time::Duration = std::time::Duration::from_millis(300);

    /// Under writes with reads between them (each read beginning a new snapshot), the log
    /// still starts over once copied: it stays near SQLite's checkpoint size (1,000 pages)
    /// instead of growing with every write.
    #[tokio::test]
    async fn the_log_starts_over_under_writes_and_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("store.db")).unwrap();
        store
            .tx(|tx| {
                exec(
                    tx,
                    "CREATE TABLE scratch (n INTEGER PRIMARY KEY, v BLOB)",
                    [],
                )
                .map_err(sql)
            })
            .await
            .unwrap();
        let blob = vec![7u8; 16 * 1024];
        for n in 0..1_200i64 {
            let v = blob.clone();
            store
                .tx_lazy(move |tx| {
                    exec(
                        tx,
                        "INSERT INTO scratch (n, v) VALUES (?1, ?2)",
                        params![n, v],
                    )
                    .map_err(sql)
                })
                .await
                .unwrap();
            let back = store
                .point(move |tx| {
                    row(tx, "SELECT length(v) FROM scratch WHERE n = ?1", [n], |r| {
                        r.get::<_, i64>(0)
                    })
                    .map_err(sql)
                })
                .await
                .unwrap();
            assert_eq!(back, 16 * 1024);
        }
        let wal = std::fs::metadata(dir.path().join("store.db-wal"))
            .unwrap()
            .len();
        // 1,200 writes of 16 KiB are about 20 MB of frames.
        assert!(wal < 8 << 20, "the log grew to {wal} bytes");
    }

    /// A read that panics leaves its connection usable, and no transaction open for long:
    /// in a kept snapshot, the connection still sees later commits; in a new one, the
    /// sweep ends the transaction it left.
    #[tokio::test]
    async fn a_panicking_read_leaves_its_connection_usable() {
        let (_dir, store, outside) = kept_at_ten().await;
        let readers = store.readers();
        let panic_in_read = || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                readers.free().unwrap().run(|tx| -> StoreResult<()> {
                    row(tx, "SELECT count(*) FROM scan_cursors", [], |r| {
                        r.get::<_, i64>(0)
                    })
                    .map_err(sql)?;
                    panic!("a bad read")
                })
            }))
            .is_err()
        };
        assert!(panic_in_read());
        assert!(readers.conns[0].is_poisoned());
        assert_eq!(get(&store, 1).await, Some(10));
        put_outside(&outside, 1, 11);
        assert_eq!(get(&store, 1).await, Some(11));

        // After a commit the read begins a new snapshot (the log is not copied: not kept),
        // and panics inside it.
        put(&store, 1, 12).await;
        assert!(panic_in_read());
        let open = |r: &Reader| !r.conn.is_autocommit();
        assert!(
            readers.each().any(|r| open(&r) && !r.keeps()),
            "a transaction was left"
        );
        readers.sweep();
        assert!(readers.each().all(|r| !open(&r)));
        assert_eq!(get(&store, 1).await, Some(12));
    }
}
