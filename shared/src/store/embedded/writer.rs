//! Group commit: one thread owns the write connection and runs the writes queued to it.
//!
//! It takes every write waiting in the queue (up to [`MAX_GROUP`]), runs them one after
//! another inside one `BEGIN IMMEDIATE … COMMIT`, each in a savepoint of its own, commits
//! once (one sync of the log to disk under `synchronous = FULL`), and only then answers
//! each caller. A write that fails (an `Err`, or a panic) rolls back its own savepoint and
//! is answered with its own error; the others of the group are kept. Writes that arrive
//! while a group commits wait for the next group, so under load one sync serves many
//! requests and alone a write costs what it did before.
//!
//! Four writes are *lazy*: rate-limit counters (in batches, see [`super::rate_limits`]),
//! single-use claims (signature nonces, replays), audit entries and the local host's queue
//! messages (see [`super::queue`]). They are committed in a group of their own without
//! waiting for the sync (`synchronous = NORMAL` for that commit: atomic, kept through a
//! crash of the process, possibly lost with the machine's power) and answered at once. They are on disk with the next durable commit, which the
//! log orders after them, or at the latest when the writer falls idle ([`LAZY_SYNC`]): an
//! idle writer copies the log into the database (a checkpoint, which syncs the log first),
//! and tries again every [`LAZY_SYNC`] until all of it is copied (a reader's snapshot can
//! hold part of it back, and a checkpoint that copies nothing syncs nothing). What a
//! request changed (an order, a payment, a key) is durable before its answer is sent; a
//! lazy write that came before it in the log is synced by the same commit, and the writer
//! tries once more as it stops. What a power cut can take is the lazy writes not yet
//! synced: usually the last [`LAZY_SYNC`] of them (more under a steady stream of lazy
//! writes alone, until SQLite's checkpoint at 1,000 pages of log, or while another
//! process's snapshot holds the log back). They are a counter's last hits (counting is
//! already a safeguard that lets a request through when the store cannot count), claims of
//! requests that left nothing durable behind (whose replay therefore finds nothing of them
//! either), and the audit entries of changes that are themselves on disk (an entry is
//! written after its answer is made, and a failure to write one is logged, not answered,
//! on every store), and queue messages: a webhook's first attempt, whose outbox cursor is
//! moved by a durable commit after it (which syncs it too), and a confirmation check, whose
//! order the upkeep finds waiting and queues again.
//!
//! Within a group the writes run in order and each sees the ones before it, exactly as if
//! each had been its own transaction: a read-then-write guard inside a write closure holds
//! as before. Nobody is answered before the commit: a failed commit (or a transaction
//! SQLite rolled back on its own) fails every write of the group that had not failed.

use super::{StoreError, StoreResult};
use super::{exec, in_transaction};
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use tokio::sync::oneshot;

/// The most writes one transaction takes; more wait for the next.
const MAX_GROUP: usize = 256;

/// How long lazy commits may wait for a sync while the writer has nothing else to do: after
/// this long without a write, the writer copies the log into the database.
const LAZY_SYNC: std::time::Duration = std::time::Duration::from_millis(20);

/// One queued write: run in the group's transaction, then answered with the commit's outcome.
trait Job: Send {
    /// Whether its answer waits for the sync to disk (see the module docs).
    fn durable(&self) -> bool;
    /// Runs the write; `true` if it succeeded (its savepoint is to be kept).
    fn run(&mut self, tx: &Connection) -> bool;
    /// Answers the caller: the write's own result, or `failed` when it had succeeded (or
    /// never ran) but its group did not commit.
    fn answer(self: Box<Self>, failed: Option<&str>);
}

struct Pending<T, F> {
    durable: bool,
    f: Option<F>,
    out: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
{
    fn durable(&self) -> bool {
        self.durable
    }

    fn run(&mut self, tx: &Connection) -> bool {
        let Some(f) = self.f.take() else {
            return false;
        };
        let out = catch_unwind(AssertUnwindSafe(|| f(tx)))
            .unwrap_or_else(|_| Err(unavailable("the write panicked")));
        let ok = out.is_ok();
        self.out = Some(out);
        ok
    }

    fn answer(self: Box<Self>, failed: Option<&str>) {
        let out = match (self.out, failed) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), None) => Ok(v),
            (_, Some(why)) => Err(unavailable(why)),
            (None, None) => Err(unavailable("the write did not run")),
        };
        // A caller that stopped waiting (its request was dropped) needs no answer.
        let _ = self.reply.send(out);
    }
}

fn unavailable(why: &str) -> StoreError {
    StoreError::unavailable(std::io::Error::other(why.to_owned()))
}

/// The queue to the writer thread. Cheap to clone; the thread ends with the last clone.
#[derive(Clone)]
pub(super) struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
    /// How many groups were committed (tests look at how writes were grouped).
    #[cfg(test)]
    groups: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Writer {
    /// Starts the thread that owns `conn` from now on.
    pub(super) fn start(conn: Connection) -> StoreResult<Self> {
        super::tune(&conn)?;
        let (queue, jobs) = mpsc::channel();
        #[cfg(test)]
        let groups = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        #[cfg(test)]
        let counted = groups.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                write_loop(conn, jobs, move || {
                    #[cfg(test)]
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                })
            })
            .map_err(StoreError::unavailable)?;
        Ok(Self {
            queue,
            #[cfg(test)]
            groups,
        })
    }

    /// How many groups have been committed so far.
    #[cfg(test)]
    pub(super) fn groups(&self) -> usize {
        self.groups.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Queues `f` and waits for its answer (after its group's commit is on disk, or for a
    /// lazy write after the commit alone).
    pub(super) async fn run<T, F>(&self, durable: bool, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            durable,
            f: Some(f),
            out: None,
            reply,
        });
        self.queue
            .send(job)
            .map_err(|_| unavailable("the store's writer has stopped"))?;
        answer
            .await
            .map_err(|_| unavailable("the store's writer has stopped"))?
    }
}

fn write_loop(conn: Connection, jobs: mpsc::Receiver<Box<dyn Job>>, committed: impl Fn()) {
    let mut lazy: Vec<Box<dyn Job>> = Vec::new();
    let mut durable: Vec<Box<dyn Job>> = Vec::new();
    // Lazy commits not yet known to be on disk.
    let mut unsynced = false;
    loop {
        // Blocks for the first write of a group (syncing lazy commits if none comes soon),
        // then takes whatever else is already waiting.
        let first = if unsynced {
            match jobs.recv_timeout(LAZY_SYNC) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    unsynced = !checkpoint(&conn);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    checkpoint(&conn);
                    break;
                }
            }
        } else {
            match jobs.recv() {
                Ok(job) => job,
                Err(_) => break,
            }
        };
        let mut next = Some(first);
        while let Some(job) = next {
            if job.durable() {
                durable.push(job)
            } else {
                lazy.push(job)
            }
            next = (lazy.len() + durable.len() < MAX_GROUP)
                .then(|| jobs.try_recv().ok())
                .flatten();
        }
        // Lazy writes first: answered at their commit, they need not wait for the sync
        // of the durable ones, which then covers them too.
        for (group, sync) in [(&mut lazy, false), (&mut durable, true)] {
            if group.is_empty() {
                continue;
            }
            let failed = run_group(&conn, group, sync).err();
            if failed.is_none() {
                committed();
                // A durable commit syncs the lazy ones before it in the log.
                unsynced = !sync;
            }
            for job in group.drain(..) {
                job.answer(failed.as_deref());
            }
        }
    }
}

/// Copies the log into the database as far as no reader holds it back (a passive
/// checkpoint, which syncs the log before it copies from it, and the database after);
/// `true` when every frame is copied, so the log is on disk. Copying nothing (another
/// checkpoint running, or a reader holding back the first frame not yet copied) syncs
/// nothing. It also lets the readers keep their snapshots (see `super::readers`).
fn checkpoint(conn: &Connection) -> bool {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        let (busy, log, copied) = (
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        );
        // Without a log (in memory), 0, -1, -1: nothing to sync.
        Ok(busy == 0 && log == copied)
    })
    .unwrap_or(false)
}

/// Runs a group in one transaction and commits it; `Err` when nothing of it was committed.
/// With `sync`, the commit is on disk when this returns (`synchronous = FULL`); without,
/// it is committed but its sync is left to a later commit or checkpoint.
fn run_group(conn: &Connection, group: &mut [Box<dyn Job>], sync: bool) -> Result<(), String> {
    let mode = if sync {
        "PRAGMA synchronous = FULL"
    } else {
        "PRAGMA synchronous = NORMAL"
    };
    exec(conn, mode, []).map_err(|e| format!("cannot set the sync mode: {e}"))?;
    in_transaction(
        conn,
        "BEGIN IMMEDIATE",
        || run_jobs(conn, group),
        |what, e| format!("{what}: {e}"),
    )
}

/// Runs each write of a group in a savepoint of its own, inside the group's transaction.
fn run_jobs(conn: &Connection, group: &mut [Box<dyn Job>]) -> Result<(), String> {
    for job in group.iter_mut() {
        exec(conn, "SAVEPOINT w", []).map_err(|e| format!("cannot start a savepoint: {e}"))?;
        let ok = job.run(conn);
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (an I/O error, a full disk): the
            // writes before this one are gone too.
            return Err("the transaction was rolled back".into());
        }
        if !ok {
            exec(conn, "ROLLBACK TO w", [])
                .map_err(|e| format!("cannot roll back a savepoint: {e}"))?;
        }
        exec(conn, "RELEASE w", []).map_err(|e| format!("cannot end a savepoint: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use futures::FutureExt;
    use std::future::Future;
    use std::pin::Pin;
    use tokio::sync::oneshot;

    type Write<T> = Pin<Box<dyn Future<Output = StoreResult<T>> + Send>>;

    /// A store whose writer is held inside a first write until `release` is sent, so the
    /// writes queued meanwhile are committed together as the next group.
    async fn held(
        store: &EmbeddedStore,
    ) -> (tokio::task::JoinHandle<()>, std::sync::mpsc::Sender<()>) {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (inside, entered) = oneshot::channel::<()>();
        let s = store.clone();
        let hold = tokio::spawn(async move {
            s.tx(move |_| {
                let _ = inside.send(());
                let _ = wait.recv();
                Ok(())
            })
            .await
            .unwrap();
        });
        entered.await.unwrap();
        (hold, release)
    }

    /// Polls each write once (which queues it), then lets the writer go on.
    async fn queued<T>(store: &EmbeddedStore, writes: Vec<Write<T>>) -> Vec<StoreResult<T>> {
        queued_in(store, writes, 1).await
    }

    /// As [`queued`], committed as `groups` groups after the held one.
    async fn queued_in<T>(
        store: &EmbeddedStore,
        writes: Vec<Write<T>>,
        groups: usize,
    ) -> Vec<StoreResult<T>> {
        let (hold, release) = held(store).await;
        let before = store.writer.groups();
        let mut writes = writes;
        for w in &mut writes {
            assert!(
                w.as_mut().now_or_never().is_none(),
                "a write answered before its commit"
            );
        }
        release.send(()).unwrap();
        hold.await.unwrap();
        let out = futures::future::join_all(writes).await;
        // The held write's group, then all of these in one more.
        assert_eq!(
            store.writer.groups(),
            before + 1 + groups,
            "the writes were not grouped as expected"
        );
        out
    }

    /// A file store in a temporary directory, removed when the directory is dropped.
    fn temp_store() -> (EmbeddedStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (
            EmbeddedStore::open(&dir.path().join("store.db")).unwrap(),
            dir,
        )
    }

    fn claim(store: &EmbeddedStore, key: &'static str) -> Write<()> {
        let s = store.clone();
        Box::pin(async move {
            s.tx(move |tx| {
                insert_new(
                    tx,
                    "INSERT INTO claims (key, expires_at) VALUES (?1, 0)",
                    [key],
                )
            })
            .await
        })
    }

    async fn claimed(store: &EmbeddedStore) -> Vec<String> {
        store
            .read(|tx| texts(tx, "SELECT key FROM claims ORDER BY key"))
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_is_undone_alone_and_answered_alone() {
        let (store, dir) = temp_store();
        let s = store.clone();
        let writes: Vec<Write<()>> = vec![
            claim(&store, "a"),
            // The same key again, in the same group: only this one fails.
            claim(&store, "a"),
            // Writes, then fails: its own write is undone.
            Box::pin(async move {
                s.tx(|tx| {
                    tx.execute("INSERT INTO claims (key, expires_at) VALUES ('b', 0)", [])
                        .map_err(sql)?;
                    Err(StoreError::Corrupt("refused after writing".into()))
                })
                .await
            }),
            // Writes, then panics: undone too, and the writer goes on.
            {
                let s = store.clone();
                Box::pin(async move {
                    s.tx(|tx| {
                        tx.execute("INSERT INTO claims (key, expires_at) VALUES ('c', 0)", [])
                            .map_err(sql)?;
                        panic!("a bug in one write");
                    })
                    .await
                })
            },
            claim(&store, "d"),
        ];
        let out = queued(&store, writes).await;
        assert!(out[0].is_ok(), "{:?}", out[0]);
        assert!(
            matches!(out[1], Err(StoreError::AlreadyExists)),
            "{:?}",
            out[1]
        );
        assert!(
            matches!(out[2], Err(StoreError::Corrupt(_))),
            "{:?}",
            out[2]
        );
        assert!(
            matches!(out[3], Err(StoreError::Unavailable(_))),
            "{:?}",
            out[3]
        );
        assert!(out[4].is_ok(), "{:?}", out[4]);
        assert_eq!(claimed(&store).await, ["a", "d"]);

        // What was answered is on disk: a store opened afresh on the file reads it.
        drop(store);
        let again = EmbeddedStore::open(&dir.path().join("store.db")).unwrap();
        assert_eq!(claimed(&again).await, ["a", "d"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conflicting_writes_in_one_group_resolve_as_separate_transactions() {
        let (store, _dir) = temp_store();
        let org = OrgId::generate();
        let t0 = Timestamp::parse("2026-06-01T12:00:00Z").unwrap();
        let o = crate::testing::order(&org, false, t0);
        store
            .create_order(&NewOrder::new(o.clone()).unwrap())
            .await
            .unwrap();
        let a = o
            .transition(t0.plus_seconds(1), OrderStatus::Cancelled, |_| {})
            .unwrap();
        let b = o
            .transition(t0.plus_seconds(1), OrderStatus::AwaitingPayment, |_| {})
            .unwrap();
        let writes: Vec<Write<()>> = vec![
            {
                let (s, a) = (store.clone(), a.clone());
                Box::pin(async move { s.update_order(&a).await })
            },
            {
                let (s, b) = (store.clone(), b.clone());
                Box::pin(async move { s.update_order(&b).await })
            },
            // A new order with its event in the same group is not held back by the loser.
            {
                let (s, n) = (store.clone(), crate::testing::order(&org, false, t0));
                Box::pin(async move { s.create_order(&NewOrder::new(n).unwrap()).await })
            },
        ];
        let out = queued(&store, writes).await;
        // In queue order: the first wins, the second finds version 2.
        assert!(out[0].is_ok(), "{:?}", out[0]);
        assert!(
            matches!(out[1], Err(StoreError::VersionConflict { expected: 1 })),
            "{:?}",
            out[1]
        );
        assert!(out[2].is_ok(), "{:?}", out[2]);
        let stored = store.get_order(&o.id).await.unwrap().unwrap();
        assert_eq!(&stored, a.order());
        assert!(
            store
                .get_event(&a.event().unwrap().id)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .get_event(&b.event().unwrap().id)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_counters_lose_no_hit() {
        let (store, _dir) = temp_store();
        let ends = Timestamp::now().plus_seconds(3600);
        let hits = futures::future::join_all((0..40).map(|_| store.count_hit("k", ends))).await;
        let mut hits: Vec<u64> = hits.into_iter().map(Result::unwrap).collect();
        hits.sort();
        assert_eq!(hits, (1..=40).collect::<Vec<_>>());
        assert_eq!(store.hits("k").await.unwrap(), 40);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lazy_and_durable_writes_queued_together_commit_as_two_groups() {
        let (store, dir) = temp_store();
        let ends = Timestamp::now().plus_seconds(3600);
        let now = Timestamp::now();
        let writes: Vec<Write<()>> = vec![
            claim(&store, "durable"),
            lazy_claim(&store, "lazy", now, ends),
            lazy_claim(&store, "lazy too", now, ends),
        ];
        let out = queued_in(&store, writes, 2).await;
        assert!(out.iter().all(Result::is_ok), "{out:?}");
        // Both groups committed, the lazy one first: a store opened afresh reads them.
        drop(store);
        let again = EmbeddedStore::open(&dir.path().join("store.db")).unwrap();
        assert_eq!(claimed(&again).await, ["durable", "lazy", "lazy too"]);
    }

    fn lazy_claim(
        store: &EmbeddedStore,
        key: &'static str,
        now: Timestamp,
        ends: Timestamp,
    ) -> Write<()> {
        let s = store.clone();
        Box::pin(async move {
            assert!(s.claim_once(key, now, ends).await?);
            Ok(())
        })
    }
}
