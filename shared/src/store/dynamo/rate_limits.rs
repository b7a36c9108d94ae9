//! Request counters per caller and window: one atomic counter each, dropped by TTL; and
//! each organization's own limits, one item beside the organization.

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

    async fn hits(&self, key: &str) -> StoreResult<u64> {
        let Some(item) = self.get_doc(&format!("RATE#{key}"), "RATE").await? else {
            return Ok(0);
        };
        // TTL deletes lazily: a finished window may still be there.
        let expired = match item.get("ttl") {
            Some(AttributeValue::N(t)) => {
                t.parse::<i64>().is_ok_and(|t| t < Timestamp::now().unix())
            }
            _ => false,
        };
        match item.get("hits") {
            _ if expired => Ok(0),
            Some(AttributeValue::N(v)) => v
                .parse()
                .map_err(|_| StoreError::Corrupt("rate counter is not a number".into())),
            _ => Ok(0),
        }
    }

    async fn get_rate_limits(&self, org: &OrgId) -> StoreResult<RateLimits> {
        Ok(self
            .get_doc(&format!("ORG#{org}"), "LIMITS")
            .await?
            .map(|i| doc(&i))
            .transpose()?
            .unwrap_or_default())
    }

    async fn put_rate_limits(&self, org: &OrgId, limits: &RateLimits) -> StoreResult<()> {
        let mut item = base_item(format!("ORG#{org}"), "LIMITS");
        item.insert("doc".into(), to_doc(limits));
        self.put_item(item).await
    }
}
