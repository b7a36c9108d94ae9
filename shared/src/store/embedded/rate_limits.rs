//! Request counters per caller and window, and each organization's own limits.
//!
//! A counter is counted in this process's memory and written to the database in batches
//! (at most once a second, by the hit that finds the last batch a second old), added to
//! what the row holds: a request no longer waits for a write, and the reads beside it keep
//! their pages (a commit makes every read-only connection drop its page cache). A counter
//! this process has not seen starts from its row. What a crash can take is the hits of the
//! last second; counting is a safeguard that lets a request through when it cannot count
//! anyway. Finished windows are dropped from memory and from the table at each batch.

use super::*;
use rusqlite::params;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};

/// How often the counters are written, in milliseconds.
const BATCH_MS: i64 = 1_000;

/// The counters of one store (shared by its clones).
#[derive(Default)]
pub(super) struct Hits {
    counters: Mutex<HashMap<String, Counter>>,
    /// When the last batch was taken, in epoch milliseconds.
    written_at: AtomicI64,
}

struct Counter {
    hits: u64,
    /// Hits not yet written.
    unwritten: u64,
    expires_at: i64,
}

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

    /// The hits to write, when the last batch is at least [`BATCH_MS`] old (or `force`);
    /// finished counters are dropped.
    fn batch(&self, now_ms: i64, force: bool) -> Option<Vec<(String, u64, i64)>> {
        let last = self.written_at.load(Ordering::Relaxed);
        if !force
            && (now_ms - last < BATCH_MS
                || self
                    .written_at
                    .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err())
        {
            return None;
        }
        let now = now_ms.div_euclid(1000);
        let mut counters = self.lock();
        counters.retain(|_, c| c.expires_at >= now);
        Some(
            counters
                .iter_mut()
                .filter(|(_, c)| c.unwritten > 0)
                .map(|(k, c)| (k.clone(), std::mem::take(&mut c.unwritten), c.expires_at))
                .collect(),
        )
    }
}

impl EmbeddedStore {
    /// Writes the counters' unwritten hits when a batch is due (or `force`).
    pub(super) async fn write_hits(&self, force: bool) -> StoreResult<()> {
        let now_ms = Timestamp::now().unix_micros().div_euclid(1000);
        let Some(batch) = self.hits.batch(now_ms, force) else {
            return Ok(());
        };
        let now = now_ms.div_euclid(1000);
        self.tx_lazy(move |tx| {
            exec(
                tx,
                "DELETE FROM rate_hits WHERE expires_at < ?1",
                params![now],
            )
            .map_err(sql)?;
            for (key, hits, expires_at) in &batch {
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
        .await
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
        if let Err(e) = self.write_hits(false).await {
            // The counts in memory stand; the table misses this batch's hits.
            tracing::warn!(error = %e, "rate counters not written");
        }
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

    /// Hits are counted in memory and written in batches, added to the row; another store on
    /// the same file (the host restarted) goes on from the row.
    #[tokio::test]
    async fn counters_are_written_in_batches_and_resumed_from_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let store = EmbeddedStore::open(&path).unwrap();
        // No batch falls due by itself in this test: each is forced.
        store.hits.written_at.store(i64::MAX, Ordering::Relaxed);
        let ends = Timestamp::now().plus_seconds(3600);
        for want in 1..=3 {
            assert_eq!(store.count_hit("k", ends).await.unwrap(), want);
        }
        assert_eq!(store.hits("k").await.unwrap(), 3);
        assert_eq!(stored(&store, "k").await, 0, "no batch was due");
        store.write_hits(true).await.unwrap();
        assert_eq!(stored(&store, "k").await, 3);
        // Written once: a second batch adds nothing.
        store.write_hits(true).await.unwrap();
        assert_eq!(stored(&store, "k").await, 3);

        let restarted = EmbeddedStore::open(&path).unwrap();
        restarted.hits.written_at.store(i64::MAX, Ordering::Relaxed);
        assert_eq!(restarted.hits("k").await.unwrap(), 3);
        assert_eq!(restarted.count_hit("k", ends).await.unwrap(), 4);
        assert_eq!(
            store.count_hit("k", ends).await.unwrap(),
            4,
            "each counts its own"
        );
        restarted.write_hits(true).await.unwrap();
        store.write_hits(true).await.unwrap();
        assert_eq!(
            stored(&store, "k").await,
            5,
            "the table has both processes' hits"
        );

        // A finished window is dropped from memory and from the table at the next batch.
        let past = Timestamp::now().plus_seconds(-5);
        assert_eq!(store.count_hit("old", past).await.unwrap(), 1);
        assert_eq!(store.hits("old").await.unwrap(), 0);
        store.write_hits(true).await.unwrap();
        assert!(store.hits.lock().get("old").is_none());
        let rows: i64 = store
            .read(|tx| {
                row(
                    tx,
                    "SELECT count(*) FROM rate_hits WHERE key = 'old'",
                    [],
                    |r| r.get(0),
                )
                .map_err(sql)
            })
            .await
            .unwrap();
        assert_eq!(rows, 0);
    }

    /// A batch falls due a second after the last one, taken by one hit of those that find it
    /// due.
    #[tokio::test]
    async fn a_batch_is_written_once_a_second() {
        let hits = Hits::default();
        let now = Timestamp::now().unix();
        let now_ms = now * 1000;
        hits.count("k", now + 60, now, Some(0)).unwrap();
        assert_eq!(
            hits.batch(now_ms, false).unwrap(),
            [("k".to_owned(), 1, now + 60)]
        );
        hits.count("k", now + 60, now, None).unwrap();
        assert_eq!(hits.batch(now_ms + 999, false), None);
        assert_eq!(hits.batch(now_ms + 1_000, false).unwrap().len(), 1);
        assert_eq!(hits.batch(now_ms + 1_001, false), None, "taken by one hit");
        assert_eq!(hits.batch(now_ms + 2_000, false).unwrap(), []);
    }
}
