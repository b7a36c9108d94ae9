//! Idempotency records (TTL 24 h).

use super::*;

const IN_FLIGHT: &str = "in_flight";
const COMPLETED: &str = "completed";

#[async_trait]
impl IdempotencyStore for DynamoStore {
    async fn idempotency_begin(
        &self,
        scope: &IdempotencyScope,
        fingerprint: &str,
        now: Timestamp,
    ) -> StoreResult<IdempotencyBegin> {
        let pk = format!("IDEMP#{}", scope.storage_key());
        let expires = now.plus_seconds(IDEMPOTENCY_TTL_SECS).unix();
        let mut item = base_item(pk.clone(), "IDEMP");
        item.insert("fingerprint".into(), s(fingerprint));
        item.insert("state".into(), s(IN_FLIGHT));
        item.insert(
            "locked_until".into(),
            n(now.plus_seconds(IDEMPOTENCY_LOCK_SECS).unix()),
        );
        item.insert("expires_at".into(), n(expires));
        item.insert("ttl".into(), n(expires));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // Free, expired, or an in-flight lock left behind by a crashed request.
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now OR (#st = :inflight AND locked_until < :now)",
            )
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":now", n(now.unix()))
            .expression_attribute_values(":inflight", s(IN_FLIGHT))
            .send()
            .await;
        match put {
            Ok(_) => return Ok(IdempotencyBegin::Started),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {}
            Err(e) => return Err(fault(e)),
        }
        let Some(existing) = self.get_doc(&pk, "IDEMP").await? else {
            // Deleted between our write and read (released): let the caller retry.
            return Ok(IdempotencyBegin::InFlight);
        };
        if string_attr(&existing, "fingerprint")? != fingerprint {
            return Ok(IdempotencyBegin::Mismatch);
        }
        if string_attr(&existing, "state")? == COMPLETED {
            let resp = parse_doc(&string_attr(&existing, "response")?)?;
            return Ok(IdempotencyBegin::Replay(resp));
        }
        Ok(IdempotencyBegin::InFlight)
    }

    async fn idempotency_complete(
        &self,
        scope: &IdempotencyScope,
        fingerprint: &str,
        response: &StoredResponse,
        now: Timestamp,
    ) -> StoreResult<()> {
        let expires = now.plus_seconds(IDEMPOTENCY_TTL_SECS).unix();
        let mut item = base_item(format!("IDEMP#{}", scope.storage_key()), "IDEMP");
        item.insert("fingerprint".into(), s(fingerprint));
        item.insert("state".into(), s(COMPLETED));
        item.insert("response".into(), to_doc(response));
        item.insert("locked_until".into(), n(0));
        item.insert("expires_at".into(), n(expires));
        item.insert("ttl".into(), n(expires));
        self.put_item(item).await
    }

    async fn idempotency_release(
        &self,
        scope: &IdempotencyScope,
        fingerprint: &str,
    ) -> StoreResult<()> {
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("IDEMP#{}", scope.storage_key())))
            .key("sk", s("IDEMP"))
            .condition_expression("fingerprint = :f AND #st = :inflight")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":f", s(fingerprint))
            .expression_attribute_values(":inflight", s(IN_FLIGHT))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            Err(e) => Err(fault(e)),
        }
    }
}
