//! API keys: the record under its hash (read on every request) and a pointer by id.

use super::*;

#[async_trait]
impl KeyStore for DynamoStore {
    async fn create_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        let mut record = base_item(format!("APIKEY#{}", key.key_hash), "APIKEY");
        record.insert("doc".into(), to_doc(key));
        let mut pointer = base_item(format!("KEY#{}", key.id), "KEY");
        pointer.insert("key_hash".into(), s(&key.key_hash));
        match self
            .transact(vec![self.put(record, NEW)?, self.put(pointer, NEW)?])
            .await?
        {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::AlreadyExists),
        }
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

    async fn revoke_api_key(&self, id: &KeyId, at: Timestamp) -> StoreResult<ApiKey> {
        let mut key = self.get_api_key(id).await?.ok_or(StoreError::NotFound)?;
        if key.revoked_at.is_some() {
            return Ok(key);
        }
        key.revoked_at = Some(at);
        let mut record = base_item(format!("APIKEY#{}", key.key_hash), "APIKEY");
        record.insert("doc".into(), to_doc(&key));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await
            .map_err(fault)?;
        Ok(key)
    }
}
