//! Request counters per caller and window: one atomic counter each, dropped by TTL.

use super::*;

#[async_trait]
impl RateLimitStore for DynamoStore {
    async fn count_hit(&self, key: &str, window_ends: Timestamp) -> StoreResult<u64> {
        // One atomic counter per window; TTL removes it (a little) after the window.
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("RATE#{key}")))
            .key("sk", s("RATE"))
            .update_expression("ADD hits :one SET #ttl = :ttl")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":ttl", n(window_ends.unix()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(fault)?;
        match out.attributes.as_ref().and_then(|a| a.get("hits")) {
            Some(AttributeValue::N(v)) => v
                .parse()
                .map_err(|_| StoreError::Corrupt("rate counter is not a number".into())),
            _ => Err(StoreError::Corrupt("rate counter missing".into())),
        }
    }
}
