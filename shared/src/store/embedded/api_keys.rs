//! API keys, unique by id and by hash.

use super::*;
use rusqlite::params;

#[async_trait]
impl KeyStore for EmbeddedStore {
    async fn create_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        let (id, hash, doc) = (key.id.to_string(), key.key_hash.clone(), to_doc(key));
        self.tx(move |tx| {
            insert_new(
                tx,
                "INSERT INTO api_keys (id, key_hash, doc) VALUES (?1, ?2, ?3)",
                params![id, hash, doc],
            )
        })
        .await
    }

    async fn get_api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {
        let h = key_hash.to_owned();
        self.tx(move |tx| one_doc(tx, "SELECT doc FROM api_keys WHERE key_hash = ?1", &h))
            .await
    }

    async fn get_api_key(&self, id: &KeyId) -> StoreResult<Option<ApiKey>> {
        let id = id.to_string();
        self.tx(move |tx| one_doc(tx, "SELECT doc FROM api_keys WHERE id = ?1", &id))
            .await
    }

    async fn revoke_api_key(&self, id: &KeyId, at: Timestamp) -> StoreResult<ApiKey> {
        let id = id.to_string();
        self.tx(move |tx| {
            let mut key: ApiKey = one_doc(tx, "SELECT doc FROM api_keys WHERE id = ?1", &id)?
                .ok_or(StoreError::NotFound)?;
            if key.revoked_at.is_none() {
                key.revoked_at = Some(at);
                tx.execute(
                    "UPDATE api_keys SET doc = ?2 WHERE id = ?1",
                    params![id, to_doc(&key)],
                )
                .map_err(sql)?;
            }
            Ok(key)
        })
        .await
    }
}
