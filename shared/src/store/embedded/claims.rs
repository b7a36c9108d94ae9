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
}
