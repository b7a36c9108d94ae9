//! Request counters per caller and window, and each organization's own limits.
//!
//! A counter is counted in this process's memory and written to the database in batches,
//! added to what the row holds: the first hit not yet written schedules a batch a second
//! later ([`BATCH_DELAY_MS`]), which writes every counter's unwritten hits at once. A request
//! waits for no write, and the reads beside it keep their pages (a commit makes every
//! read-only connection drop its page cache). A counter this process has not seen starts
//! from its row, so a restarted host goes on from the last batch. What a crash or a stop
//! can take is the hits counted since the last batch (at most about a second's); counting
//! is a safeguard that lets a request through when it cannot count anyway. Finished
//! windows are dropped from memory and from the table at each batch.

use super::*;
use rusqlite::params;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How long after the first unwritten hit its batch is written, in milliseconds.
const BATCH_DELAY_MS: u64 = 1_000;

/// The counters of one store (shared by its clones).
pub(super) struct Hits {
    counters: Mutex<HashMap<String, Counter>>,
    /// Whether a batch is scheduled.
    scheduled: AtomicBool,
    /// [`BATCH_DELAY_MS`] (tests change it).
    delay_ms: AtomicU64,
}

impl Default for Hits {
    fn default() -> Self {
        Self {
            counters: Default::default(),
            scheduled: AtomicBool::new(false),
            delay_ms: AtomicU64::new(BATCH_DELAY_MS),
        }
    }
}

struct Counter {
    hits: u64,
    /// Hits not yet written.
    unwritten: u64,
    expires_at: i64,
}

/// Hits to add to the table: key, hits, expiry.
type Batch = Vec<(String, u64, i64)>;

impl Hits {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Counter>> {
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The count of a live counter this process holds.
    fn known(&self, key: &str, now: i64) -> Option<u64> {
        self.lock()
            .get(key)
            .filter(|c| c.expires_at >= now)
            .map(|c| c.hits)
    }

    /// Counts a hit on a counter this process holds (`stored` is `None`), or starts it
    /// from its row's count; `None` when it needs the row first.
    fn count(&self, key: &str, expires_at: i64, now: i64, stored: Option<u64>) -> Option<u64> {
        let mut counters = self.lock();
        let counter = match counters.get_mut(key) {
            Some(c) if c.expires_at >= now => c,
            _ => {
                let hits = stored?;
                counters.entry(key.to_owned()).insert_entry(Counter {
                    hits,
                    unwritten: 0,
                    expires_at,
                });
                counters.get_mut(key)?
            }
        };
        counter.hits += 1;
        counter.unwritten += 1;
        Some(counter.hits)
    }

    /// Takes every counter's unwritten hits, after dropping the finished counters.
    fn take(&self, now: i64) -> Batch {
        let mut counters = self.lock();
        counters.retain(|_, c| c.expires_at >= now);
        counters
            .iter_mut()
            .filter(|(_, c)| c.unwritten > 0)
            .map(|(k, c)| (k.clone(), std::mem::take(&mut c.unwritten), c.expires_at))
            .collect()
    }

    /// Gives back the hits of a batch that was not written, to the counters still held.
    fn give_back(&self, batch: Batch) {
        let mut counters = self.lock();
        for (key, hits, _) in batch {
            if let Some(c) = counters.get_mut(&key) {
                c.unwritten += hits;
            }
        }
    }
}

impl EmbeddedStore {
    /// Schedules a batch unless one is: it writes the hits counted until it runs.
    fn schedule_hits(&self) {
        if self.hits.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            let delay = store.hits.delay_ms.load(Ordering::Relaxed);
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            // Cleared before the batch is taken: a hit counted after this schedules the next.
            store.hits.scheduled.store(false, Ordering::Release);
            if let Err(e) = store.write_hits().await {
                // Its hits were given back: the next batch, due a second from now, has them.
                tracing::warn!(error = %e, "rate counters not written");
                store.schedule_hits();
            }
        });
    }

    /// Writes every counter's unwritten hits now (a scheduled batch, or a test), and drops
    /// the finished windows' rows.
    pub(super) async fn write_hits(&self) -> StoreResult<()> {
        let now = Timestamp::now().unix();
        let batch = self.hits.take(now);
        let rows = batch.clone();
        let written = self
            .tx_lazy(move |tx| {
                exec(
                    tx,
                    "DELETE FROM rate_hits WHERE expires_at < ?1",
                    params![now],
                )
                .map_err(sql)?;
                for (key, hits, expires_at) in &rows {
                    exec(
                        tx,
                        "INSERT INTO rate_hits (key, hits, expires_at) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (key) DO UPDATE SET hits = hits + excluded.hits",
                        params![key, *hits as i64, expires_at],
                    )
                    .map_err(sql)?;
                }
                Ok(())
            })
            .await;
        if written.is_err() {
            self.hits.give_back(batch);
        }
        written
    }

    /// The count a live counter's row holds (0 for none).
    async fn stored_hits(&self, key: &str, now: i64) -> StoreResult<u64> {
        let key = key.to_owned();
        self.point(move |tx| {
            let hits: Option<i64> = row(
                tx,
                "SELECT hits FROM rate_hits WHERE key = ?1 AND expires_at >= ?2",
                params![key, now],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
            Ok(hits.unwrap_or(0).max(0) as u64)
        })
        .await
    }
}

#[async_trait]
impl RateLimitStore for EmbeddedStore {
    async fn count_hit(&self, key: &str, window_ends: Timestamp) -> StoreResult<u64> {
        let now = Timestamp::now().unix();
        let ends = window_ends.unix();
        let hits = match self.hits.count(key, ends, now, None) {
            Some(hits) => hits,
            None => {
                let stored = self.stored_hits(key, now).await?;
                self.hits
                    .count(key, ends, now, Some(stored))
                    .expect("a counter started from its row")
            }
        };
        self.schedule_hits();
        Ok(hits)
    }

    async fn hits(&self, key: &str) -> StoreResult<u64> {
        let now = Timestamp::now().unix();
        match self.hits.known(key, now) {
            Some(hits) => Ok(hits),
            None => self.stored_hits(key, now).await,
        }
    }

    async fn get_rate_limits(&self, org: &OrgId) -> StoreResult<RateLimits> {
        let id = org.to_string();
        self.point(move |tx| {
            one_doc(tx, "SELECT doc FROM rate_limits WHERE org_id = ?1", &id)
                .map(Option::unwrap_or_default)
        })
        .await
    }

    async fn put_rate_limits(&self, org: &OrgId, limits: &RateLimits) -> StoreResult<()> {
        let (id, doc) = (org.to_string(), to_doc(limits));
        self.tx(move |tx| {
            exec(
                tx,
                "INSERT INTO rate_limits (org_id, doc) VALUES (?1, ?2) \
                 ON CONFLICT (org_id) DO UPDATE SET doc = excluded.doc",
                params![id, doc],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn stored(store: &EmbeddedStore, key: &str) -> u64 {
        store
            .stored_hits(key, Timestamp::now().unix())
            .await
            .unwrap()
    }

    fn file_store(dir: &tempfile::TempDir, delay_ms: u64) -> EmbeddedStore {
        let store = EmbeddedStore::open(&dir.path().join("store.db")).unwrap();
        store.hits.delay_ms.store(delay_ms, Ordering::Relaxed);
        store
    }

    /// Hits are counted in memory and written in batches, added to the row; another store on
    /// the same file (the host restarted) goes on from the row.
    #[tokio::test]
    async fn counters_are_written_in_batches_and_resumed_from_the_table() {
        let dir = tempfile::tempdir().unwrap();
        // No scheduled batch runs within this test: each is written by hand.
        let store = file_store(&dir, 3_600_000);
        let ends = Timestamp::now().plus_seconds(3600);
        for want in 1..=3 {
            assert_eq!(store.count_hit("k", ends).await.unwrap(), want);
        }
        assert_eq!(store.hits("k").await.unwrap(), 3);
        assert_eq!(stored(&store, "k").await, 0, "no batch was written");
        store.write_hits().await.unwrap();
        assert_eq!(stored(&store, "k").await, 3);
        // Written once: a second batch adds nothing.
        store.write_hits().await.unwrap();
        assert_eq!(stored(&store, "k").await, 3);

        let restarted = file_store(&dir, 3_600_000);
        assert_eq!(restarted.hits("k").await.unwrap(), 3);
        assert_eq!(restarted.count_hit("k", ends).await.unwrap(), 4);
        assert_eq!(
            store.count_hit("k", ends).await.unwrap(),
            4,
            "each counts its own"
        );
        restarted.write_hits().await.unwrap();
        store.write_hits().await.unwrap();
        assert_eq!(
            stored(&store, "k").await,
            5,
            "the table has both processes' hits"
        );

        // A finished window is dropped from memory and from the table at the next batch.
        let past = Timestamp::now().plus_seconds(-5).unix();
        store
            .tx(move |tx| {
                exec(
                    tx,
                    "INSERT INTO rate_hits (key, hits, expires_at) VALUES ('finished', 7, ?1)",
                    params![past],
                )
                .map_err(sql)
                .map(drop)
            })
            .await
            .unwrap();
        assert_eq!(
            store
                .count_hit("old", Timestamp::from_unix(past).unwrap())
                .await
                .unwrap(),
            1
        );
        assert_eq!(store.hits("old").await.unwrap(), 0);
        store.write_hits().await.unwrap();
        assert!(store.hits.lock().get("old").is_none());
        let rows: Vec<String> = store
            .read(|tx| texts(tx, "SELECT key FROM rate_hits ORDER BY key"))
            .await
            .unwrap();
        assert_eq!(rows, ["k"]);
    }

    /// The first unwritten hit schedules a batch that writes, by itself, every hit counted
    /// until it runs; a hit after it schedules the next.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scheduled_batch_writes_the_hits_without_more_traffic() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(&dir, 50);
        let ends = Timestamp::now().plus_seconds(3600);
        for _ in 0..5 {
            store.count_hit("k", ends).await.unwrap();
        }
        until_stored(&store, "k", 5).await;
        store.count_hit("k", ends).await.unwrap();
        until_stored(&store, "k", 6).await;
    }

    /// A batch that was not written gives its hits back: the next one writes them.
    #[tokio::test]
    async fn a_failed_batch_gives_its_hits_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(&dir, 3_600_000);
        let ends = Timestamp::now().plus_seconds(3600);
        store.count_hit("k", ends).await.unwrap();
        store.count_hit("k", ends).await.unwrap();
        let schema =
            |sql_text: &'static str| store.tx(move |tx| tx.execute_batch(sql_text).map_err(sql));
        schema("DROP TABLE rate_hits").await.unwrap();
        assert!(store.write_hits().await.is_err());
        schema(SCHEMA).await.unwrap();
        store.count_hit("k", ends).await.unwrap();
        store.write_hits().await.unwrap();
        assert_eq!(stored(&store, "k").await, 3);
    }

    /// Waits (up to 10 s) for the row of `key` to hold `want`.
    async fn until_stored(store: &EmbeddedStore, key: &str, want: u64) {
        for _ in 0..200 {
            if stored(store, key).await == want {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "the row of {key} never held {want}: {}",
            stored(store, key).await
        );
    }
}
