//! API keys: the record under its hash (read on every request), a pointer by id, and a
//! copy in the organization's partition (`ORG#org` / `APIKEY#mode#id`) that lists them.
//! A change writes the record and the copy in one transaction, guarded on the record's
//! document as read, so a revocation and a roll never overwrite each other.

use super::*;

fn record_item(key: &ApiKey) -> Item {
    let mut record = base_item(format!("APIKEY#{}", key.key_hash), "APIKEY");
    record.insert("doc".into(), to_doc(key));
    record
}

fn listing_item(key: &ApiKey) -> Item {
    let mut item = base_item(
        format!("ORG#{}", key.organization_id),
        &format!("APIKEY#{}#{}", key.mode, key.id),
    );
    item.insert("doc".into(), to_doc(key));
    item
}

impl DynamoStore {
    /// Reads, changes and writes a key; `NotFound` if unknown.
    async fn change_key(&self, id: &KeyId, change: impl Fn(&mut ApiKey)) -> StoreResult<ApiKey> {
        for _ in 0..5 {
            let Some(pointer) = self.get_doc(&format!("KEY#{id}"), "KEY").await? else {
                return Err(StoreError::NotFound);
            };
            let pk = format!("APIKEY#{}", string_attr(&pointer, "key_hash")?);
            let stored = self
                .get_doc(&pk, "APIKEY")
                .await?
                .ok_or(StoreError::NotFound)?;
            let mut key: ApiKey = doc(&stored)?;
            let before = key.clone();
            change(&mut key);
            if key == before {
                return Ok(key);
            }
            let old_doc = stored.get("doc").cloned().ok_or_else(|| {
                StoreError::Corrupt("an API key record without its document".into())
            })?;
            let guarded = Put::builder()
                .table_name(&self.table)
                .set_item(Some(record_item(&key)))
                .condition_expression("#doc = :old")
                .expression_attribute_names("#doc", "doc")
                .expression_attribute_values(":old", old_doc)
                .build()
                .map_err(StoreError::unavailable)?;
            // The listing copy follows the record (and is written for keys made before it
            // existed).
            let copy = Put::builder()
                .table_name(&self.table)
                .set_item(Some(listing_item(&key)))
                .build()
                .map_err(StoreError::unavailable)?;
            match self.transact(vec![guarded, copy]).await? {
                Ok(()) => return Ok(key),
                Err(failed) if failed.iter().all(|(_, c)| failed_code_is_condition(c)) => continue,
                Err(failed) => return Err(cancelled(&failed)),
            }
        }
        Err(StoreError::VersionConflict { expected: 0 })
    }
}

#[async_trait]
impl KeyStore for DynamoStore {
    async fn create_api_key(
        &self,
        key: &ApiKey,
        completing: Option<&IdempotencyCompletion>,
    ) -> StoreResult<()> {
        let mut pointer = base_item(format!("KEY#{}", key.id), "KEY");
        pointer.insert("key_hash".into(), s(&key.key_hash));
        let puts = vec![
            self.put(record_item(key), NEW)?,
            self.put(pointer, NEW)?,
            self.put(listing_item(key), NEW)?,
        ];
        self.create_completing(puts, completing).await
    }

    async fn get_api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {
        self.get_doc(&format!("APIKEY#{key_hash}"), "APIKEY")
            .await?
            .map(|i| doc(&i))
            .transpose()
    }

    async fn get_api_key(&self, id: &KeyId) -> StoreResult<Option<ApiKey>> {
        let Some(pointer) = self.get_doc(&format!("KEY#{id}"), "KEY").await? else {
            return Ok(None);
        };
        self.get_api_key_by_hash(&string_attr(&pointer, "key_hash")?)
            .await
    }

    async fn get_org_api_key(
        &self,
        org: &OrgId,
        mode: KeyMode,
        id: &KeyId,
    ) -> StoreResult<Option<ApiKey>> {
        let copy = self
            .get_doc(&format!("ORG#{org}"), &format!("APIKEY#{mode}#{id}"))
            .await?;
        match copy {
            Some(item) => doc(&item).map(Some),
            // Keys made before the listing copy existed (until a change writes one).
            None => Ok(self
                .get_api_key(id)
                .await?
                .filter(|k| k.organization_id == *org && k.mode == mode)),
        }
    }

    async fn revoke_api_key(&self, id: &KeyId, at: Timestamp) -> StoreResult<ApiKey> {
        self.change_key(id, |key| {
            key.revoked_at.get_or_insert(at);
        })
        .await
    }

    async fn expire_api_key(&self, id: &KeyId, at: Timestamp) -> StoreResult<ApiKey> {
        self.change_key(id, |key| {
            key.expires_at = earlier_expiry(key, at);
        })
        .await
    }

    async fn list_api_keys(&self, org: &OrgId, mode: KeyMode) -> StoreResult<Vec<ApiKey>> {
        let mut out: Vec<ApiKey> = self.org_records(org, &format!("APIKEY#{mode}#")).await?;
        sort_keys_newest_first(&mut out);
        Ok(out)
    }
}
