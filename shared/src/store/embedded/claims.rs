//! Single-use claims (signature replay, nonces) until they expire.

use super::*;
use rusqlite::params;

#[async_trait]
impl ClaimStore for EmbeddedStore {
    async fn claim_once(
        &self,
        key: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<bool> {
        let key = key.to_owned();
        self.tx_lazy(move |tx| {
            // Expired claims are dropped as they are met (DynamoDB's TTL does it there), so
            // the table holds only the live ones: every signed request leaves one. Claims
            // expire in about the order they were made (a signature's time plus a fixed
            // window), so the oldest few rows are the ones to look at: no index to keep up.
            exec(
                tx,
                "DELETE FROM claims WHERE rowid IN \
                     (SELECT rowid FROM claims ORDER BY rowid LIMIT 4) AND expires_at < ?1",
                params![now.unix()],
            )
            .map_err(sql)?;
            let changed = exec(
                tx,
                "INSERT INTO claims (key, expires_at) VALUES (?1, ?2) \
                     ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at \
                     WHERE claims.expires_at < ?3",
                params![key, expires_at.unix(), now.unix()],
            )
            .map_err(sql)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn release_claim(&self, key: &str, expires_at: Timestamp) -> StoreResult<()> {
        let key = key.to_owned();
        self.tx_lazy(move |tx| {
            exec(
                tx,
                "DELETE FROM claims WHERE key = ?1 AND expires_at = ?2",
                params![key, expires_at.unix()],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }
}
