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
        let (key, completing) = (key.clone(), completing.cloned());
        self.tx(move |tx| {
            check_key_limit(
                &org_keys(tx, &key.organization_id, key.mode)?,
                key.created_at,
            )?;
            insert_key(tx, &key)?;
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
        let id = id.clone();
        self.point(move |tx| read_key(tx, &id)).await
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
        let (old, new, completing) = (old.clone(), new.clone(), completing.cloned());
        self.tx(move |tx| {
            let mut rolled = read_key(tx, &old.id)?.ok_or(StoreError::NotFound)?;
            if rolled != old {
                return Err(StoreError::VersionConflict { expected: 0 });
            }
            if roll_adds_a_key(&rolled, &new, until) {
                check_key_limit(
                    &org_keys(tx, &new.organization_id, new.mode)?,
                    new.created_at,
                )?;
            }
            rolled.expires_at = Some(rolled.expiry_when_rolled(until));
            insert_key(tx, &new)?;
            write_key(tx, &rolled)?;
            super::idempotency::write_completion(tx, completing.as_ref())?;
            Ok(rolled)
        })
        .await
    }

    async fn list_api_keys(&self, org: &OrgId, mode: KeyMode) -> StoreResult<Vec<ApiKey>> {
        let org = org.clone();
        let mut keys: Vec<ApiKey> = self.read(move |tx| org_keys(tx, &org, mode)).await?;
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
        let id = id.clone();
        self.tx(move |tx| {
            let mut key = read_key(tx, &id)?.ok_or(StoreError::NotFound)?;
            let before = key.clone();
            change(&mut key);
            if key != before {
                write_key(tx, &key)?;
            }
            Ok(key)
        })
        .await
    }
}

/// An organization's keys in one mode, in no order.
fn org_keys(tx: &Connection, org: &OrgId, mode: KeyMode) -> StoreResult<Vec<ApiKey>> {
    docs(
        tx,
        "SELECT doc FROM api_keys WHERE json_extract(doc, '$.organization_id') = ?1 \
         AND json_extract(doc, '$.mode') = ?2",
        params![org.as_str(), mode.as_str()],
    )
}

/// A key by id.
fn read_key(tx: &Connection, id: &KeyId) -> StoreResult<Option<ApiKey>> {
    one_doc(tx, "SELECT doc FROM api_keys WHERE id = ?1", id.as_str())
}

/// Stores a new key; `AlreadyExists` if its id or hash is taken.
fn insert_key(tx: &Connection, key: &ApiKey) -> StoreResult<()> {
    insert_new(
        tx,
        "INSERT INTO api_keys (id, key_hash, doc) VALUES (?1, ?2, ?3)",
        params![key.id.as_str(), key.key_hash, to_doc(key)],
    )
}

/// Writes a known key's changes.
fn write_key(tx: &Connection, key: &ApiKey) -> StoreResult<()> {
    exec(
        tx,
        "UPDATE api_keys SET doc = ?2 WHERE id = ?1",
        params![key.id.as_str(), to_doc(key)],
    )
    .map_err(sql)
    .map(drop)
}
