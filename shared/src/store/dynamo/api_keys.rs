//! API keys: the record under its hash (read on every request), a pointer by id, and a
//! copy in the organization's partition (`ORG#org` / `APIKEY#mode#id`) that lists them.
//! A change writes the record and the copy in one transaction, guarded on the record's
//! document as read, so a revocation and a roll never overwrite each other.

use super::capped::Capped;
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
    /// The put of `key`'s record, on the condition that the record is still `stored` (as
    /// read).
    fn guarded_key_put(&self, key: &ApiKey, stored: &Item) -> StoreResult<Put> {
        let old_doc = stored
            .get("doc")
            .cloned()
            .ok_or_else(|| StoreError::Corrupt("an API key record without its document".into()))?;
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(record_item(key)))
            .condition_expression("#doc = :old")
            .expression_attribute_names("#doc", "doc")
            .expression_attribute_values(":old", old_doc)
            .build()
            .map_err(StoreError::unavailable)
    }

    /// The puts of a new key: its record, the pointer to it by id, and its listing copy,
    /// each on the condition that it is new.
    fn new_key_puts(&self, key: &ApiKey) -> StoreResult<[Put; 3]> {
        let mut pointer = base_item(format!("KEY#{}", key.id), "KEY");
        pointer.insert("key_hash".into(), s(&key.key_hash));
        Ok([
            self.put(record_item(key), NEW)?,
            self.put(pointer, NEW)?,
            self.put(listing_item(key), NEW)?,
        ])
    }

    /// The put of `key`'s listing copy, whatever is there.
    fn listing_put(&self, key: &ApiKey) -> StoreResult<Put> {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(listing_item(key)))
            .build()
            .map_err(StoreError::unavailable)
    }

    /// A key's record by id (through its pointer), as stored and as read.
    async fn stored_key(&self, id: &KeyId) -> StoreResult<Option<(Item, ApiKey)>> {
        let Some(pointer) = self.get_doc(&format!("KEY#{id}"), "KEY").await? else {
            return Ok(None);
        };
        let pk = format!("APIKEY#{}", string_attr(&pointer, "key_hash")?);
        let Some(stored) = self.get_doc(&pk, "APIKEY").await? else {
            return Ok(None);
        };
        let key = doc(&stored)?;
        Ok(Some((stored, key)))
    }

    /// Reads, changes and writes a key; `NotFound` if unknown.
    async fn change_key(&self, id: &KeyId, change: impl Fn(&mut ApiKey)) -> StoreResult<ApiKey> {
        for attempt in 1..=5 {
            let (stored, mut key) = self.stored_key(id).await?.ok_or(StoreError::NotFound)?;
            let before = key.clone();
            change(&mut key);
            if key == before {
                return Ok(key);
            }
            let guarded = self.guarded_key_put(&key, &stored)?;
            // The listing copy follows the record (and is written for keys made before it
            // existed).
            let copy = self.listing_put(&key)?;
            match self.transact(vec![guarded, copy]).await? {
                Ok(()) => return Ok(key),
                // Changed since it was read, or by a transaction still in progress: read it
                // again and apply the change to what is there.
                Err(failed) if failed.iter().all(|(_, c)| condition_or_conflict(c)) => {
                    if failed.iter().any(|(_, c)| !failed_code_is_condition(c)) {
                        // The other transaction is still writing: give it a moment.
                        tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
                    }
                }
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
        let (org, mode, at) = (&key.organization_id, key.mode, key.created_at);
        let puts = self.new_key_puts(key)?.into();
        self.add_capped(Capped::ApiKeys, org, mode, at, puts, 0, completing)
            .await
    }

    async fn get_api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {
        self.get_doc(&format!("APIKEY#{key_hash}"), "APIKEY")
            .await?
            .map(|i| doc(&i))
            .transpose()
    }

    async fn get_api_key(&self, id: &KeyId) -> StoreResult<Option<ApiKey>> {
        Ok(self.stored_key(id).await?.map(|(_, key)| key))
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

    async fn roll_api_key(
        &self,
        old: &ApiKey,
        new: &ApiKey,
        until: Timestamp,
        completing: Option<&IdempotencyCompletion>,
    ) -> StoreResult<ApiKey> {
        let (stored, mut rolled) = self
            .stored_key(&old.id)
            .await?
            .ok_or(StoreError::NotFound)?;
        if rolled != *old {
            return Err(StoreError::VersionConflict { expected: 0 });
        }
        let adds = roll_adds_a_key(&rolled, new, until);
        rolled.expires_at = Some(rolled.expiry_when_rolled(until));
        let mut puts = vec![
            self.guarded_key_put(&rolled, &stored)?,
            self.listing_put(&rolled)?,
        ];
        puts.extend(self.new_key_puts(new)?);
        if adds {
            // The old key works on beside the new one: one more active key.
            let (org, mode, at) = (&new.organization_id, new.mode, new.created_at);
            self.add_capped(Capped::ApiKeys, org, mode, at, puts, 2, completing)
                .await?;
        } else {
            self.write_completing(puts, 2, completing).await?;
        }
        Ok(rolled)
    }

    async fn list_api_keys(&self, org: &OrgId, mode: KeyMode) -> StoreResult<Vec<ApiKey>> {
        let mut out: Vec<ApiKey> = self.org_records(org, &format!("APIKEY#{mode}#")).await?;
        sort_keys_newest_first(&mut out);
        Ok(out)
    }
}
