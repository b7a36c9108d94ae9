//! Request counters per caller and window (finished windows are dropped as they are met),
//! and each organization's own limits.

use super::*;
use rusqlite::params;

#[async_trait]
impl RateLimitStore for EmbeddedStore {
    async fn count_hit(&self, key: &str, window_ends: Timestamp) -> StoreResult<u64> {
        let key = key.to_owned();
        let now = Timestamp::now().unix();
        self.tx_lazy(move |tx| {
            // Finished windows are dropped as they are met (DynamoDB's TTL does it there).
            exec(
                tx,
                "DELETE FROM rate_hits WHERE expires_at < ?1",
                params![now],
            )
            .map_err(sql)?;
            let hits: i64 = row(
                tx,
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

    async fn hits(&self, key: &str) -> StoreResult<u64> {
        let key = key.to_owned();
        let now = Timestamp::now().unix();
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
