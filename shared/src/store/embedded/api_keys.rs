//! API keys, unique by id and by hash.

use super::*;
use rusqlite::params;

#[async_trait]
impl KeyStore for EmbeddedStore {
    async fn create_api_key(
        &self,
        key: &ApiKey,
        completing: Option<&IdempotencyCompletion>,
    ) -> StoreResult<()> {
        let (id, hash, doc) = (key.id.to_string(), key.key_hash.clone(), to_doc(key));
        let completing = completing.cloned();
        self.tx(move |tx| {
            insert_new(
                tx,
                "INSERT INTO api_keys (id, key_hash, doc) VALUES (?1, ?2, ?3)",
                params![id, hash, doc],
            )?;
            super::idempotency::write_completion(tx, completing.as_ref())
        })
        .await
    }

    async fn get_api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {
        let h = key_hash.to_owned();
        self.point(move |tx| one_doc(tx, "SELECT doc FROM api_keys WHERE key_hash = ?1", &h))
            .await
    }

    async fn get_api_key(&self, id: &KeyId) -> StoreResult<Option<ApiKey>> {
        let id = id.to_string();
        self.point(move |tx| one_doc(tx, "SELECT doc FROM api_keys WHERE id = ?1", &id))
            .await
    }

    async fn get_org_api_key(
        &self,
        org: &OrgId,
        mode: KeyMode,
        id: &KeyId,
    ) -> StoreResult<Option<ApiKey>> {
        let org = org.clone();
        Ok(self
            .get_api_key(id)
            .await?
            .filter(|k| k.organization_id == org && k.mode == mode))
    }

    async fn revoke_api_key(&self, id: &KeyId, at: Timestamp) -> StoreResult<ApiKey> {
        self.change_key(id, move |key| {
            key.revoked_at.get_or_insert(at);
        })
        .await
    }

    async fn roll_api_key(
        &self,
        old: &ApiKey,
        new: &ApiKey,
        until: Timestamp,
        completing: Option<&IdempotencyCompletion>,
    ) -> StoreResult<ApiKey> {
        let (old, completing) = (old.clone(), completing.cloned());
        let (new_id, new_hash, new_doc) = (new.id.to_string(), new.key_hash.clone(), to_doc(new));
        self.tx(move |tx| {
            let id = old.id.to_string();
            let stored: ApiKey = one_doc(tx, "SELECT doc FROM api_keys WHERE id = ?1", &id)?
                .ok_or(StoreError::NotFound)?;
            if stored != old {
                return Err(StoreError::VersionConflict { expected: 0 });
            }
            let mut rolled = stored;
            rolled.expires_at = earlier_expiry(&rolled, until);
            insert_new(
                tx,
                "INSERT INTO api_keys (id, key_hash, doc) VALUES (?1, ?2, ?3)",
                params![new_id, new_hash, new_doc],
            )?;
            exec(
                tx,
                "UPDATE api_keys SET doc = ?2 WHERE id = ?1",
                params![id, to_doc(&rolled)],
            )
            .map_err(sql)?;
            super::idempotency::write_completion(tx, completing.as_ref())?;
            Ok(rolled)
        })
        .await
    }

    async fn list_api_keys(&self, org: &OrgId, mode: KeyMode) -> StoreResult<Vec<ApiKey>> {
        let org = org.to_string();
        let mut keys: Vec<ApiKey> = self
            .read(move |tx| {
                docs(
                    tx,
                    "SELECT doc FROM api_keys WHERE json_extract(doc, '$.organization_id') = ?1 \
                     AND json_extract(doc, '$.mode') = ?2",
                    params![org, mode.as_str()],
                )
            })
            .await?;
        sort_keys_newest_first(&mut keys);
        Ok(keys)
    }
}

impl EmbeddedStore {
    /// Reads, changes and writes a key in one transaction; `NotFound` if unknown.
    async fn change_key(
        &self,
        id: &KeyId,
        change: impl FnOnce(&mut ApiKey) + Send + 'static,
    ) -> StoreResult<ApiKey> {
        let id = id.to_string();
        self.tx(move |tx| {
            let mut key: ApiKey = one_doc(tx, "SELECT doc FROM api_keys WHERE id = ?1", &id)?
                .ok_or(StoreError::NotFound)?;
            let before = key.clone();
            change(&mut key);
            if key != before {
                exec(
                    tx,
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
