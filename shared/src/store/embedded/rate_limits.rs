//! Request counters per caller and window; finished windows are dropped as they are met.

use super::*;
use rusqlite::params;

#[async_trait]
impl RateLimitStore for EmbeddedStore {
    async fn count_hit(&self, key: &str, window_ends: Timestamp) -> StoreResult<u64> {
        let key = key.to_owned();
        let now = Timestamp::now().unix();
        self.tx(move |tx| {
            // Finished windows are dropped as they are met (DynamoDB's TTL does it there).
            tx.execute("DELETE FROM rate_hits WHERE expires_at < ?1", params![now])
                .map_err(sql)?;
            let hits: i64 = tx
                .query_row(
                    "INSERT INTO rate_hits (key, hits, expires_at) VALUES (?1, 1, ?2) \
                     ON CONFLICT (key) DO UPDATE SET hits = hits + 1 RETURNING hits",
                    params![key, window_ends.unix()],
                    |r| r.get(0),
                )
                .map_err(sql)?;
            Ok(hits.max(0) as u64)
        })
        .await
    }
}
