//! Single-use claims (signature replay, nonces), with TTL.

use super::*;

#[async_trait]
impl ClaimStore for DynamoStore {
    async fn claim_once(
        &self,
        key: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<bool> {
        let (pk, sk) = claim_key(key);
        let mut item = base_item(pk, sk);
        item.insert("expires_at".into(), n(expires_at.unix()));
        item.insert("ttl".into(), n(expires_at.unix()));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", n(now.unix()));
        self.put_if(put).await.map_err(fault)
    }

    async fn release_claim(&self, key: &str, expires_at: Timestamp) -> StoreResult<()> {
        let (pk, sk) = claim_key(key);
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .condition_expression("expires_at = :mine")
            .expression_attribute_values(":mine", n(expires_at.unix()))
            .send()
            .await;
        // Not deleted: gone, or another claim of the key since, not ours to end.
        written(res).map(drop)
    }
}

/// A claim's item key.
fn claim_key(key: &str) -> (String, &'static str) {
    (format!("CLAIM#{key}"), "CLAIM")
}
