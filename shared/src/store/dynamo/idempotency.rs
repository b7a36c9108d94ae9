//! Idempotency records (TTL 24 h). The rule is [`crate::store::idempotency`]'s: this file
//! maps its records to items, and states two of its questions as conditions, since a
//! DynamoDB write cannot read first.

use super::*;
use crate::store::idempotency::{self, IdempotencyRecord, IdempotencyState};

/// [`IdempotencyRecord::is_free`], or no record at all.
const FREE: &str =
    "attribute_not_exists(pk) OR expires_at < :now OR (#st = :inflight AND locked_until < :now)";
/// [`IdempotencyRecord::releasable_by`] the fingerprint `:f`.
const RELEASABLE: &str = "fingerprint = :f AND #st = :inflight";

fn idempotency_pk(scope: &IdempotencyScope) -> String {
    format!("IDEMP#{}", scope.storage_key())
}

fn idempotency_item(scope: &IdempotencyScope, r: &IdempotencyRecord) -> Item {
    let mut item = base_item(idempotency_pk(scope), "IDEMP");
    item.insert("fingerprint".into(), s(&r.fingerprint));
    item.insert("state".into(), s(r.state.as_str()));
    if let Some(response) = &r.response {
        item.insert("response".into(), s(response));
    }
    item.insert("locked_until".into(), n(r.locked_until));
    item.insert("expires_at".into(), n(r.expires_at));
    item.insert("ttl".into(), n(r.expires_at));
    item
}

/// Inside a change's transaction: its request's idempotency key, completed (whatever was
/// there, as [`IdempotencyStore::idempotency_complete`] writes it); nothing without one.
pub(super) fn completion_put(
    table: &str,
    c: Option<&IdempotencyCompletion>,
) -> StoreResult<Option<Put>> {
    let Some(c) = c else { return Ok(None) };
    let done = IdempotencyRecord::completed(&c.fingerprint, &c.response, c.at);
    Put::builder()
        .table_name(table)
        .set_item(Some(idempotency_item(&c.scope, &done)))
        .build()
        .map(Some)
        .map_err(StoreError::unavailable)
}

fn idempotency_record(item: &Item) -> StoreResult<IdempotencyRecord> {
    Ok(IdempotencyRecord {
        fingerprint: string_attr(item, "fingerprint")?,
        state: IdempotencyState::parse(&string_attr(item, "state")?)?,
        response: item
            .get("response")
            .map(|_| string_attr(item, "response"))
            .transpose()?,
        locked_until: number_attr(item, "locked_until")?,
        expires_at: number_attr(item, "expires_at")?,
    })
}

#[async_trait]
impl IdempotencyStore for DynamoStore {
    async fn idempotency_begin(
        &self,
        scope: &IdempotencyScope,
        fingerprint: &str,
        now: Timestamp,
    ) -> StoreResult<IdempotencyBegin> {
        let take = IdempotencyRecord::in_flight(fingerprint, now);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(idempotency_item(scope, &take)))
            .condition_expression(FREE)
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":now", n(now.unix()))
            .expression_attribute_values(":inflight", s(IdempotencyState::InFlight.as_str()))
            .send()
            .await;
        match put {
            Ok(_) => return Ok(IdempotencyBegin::Started),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {}
            // A transaction is writing the key at this moment: a change completing it
            // (`NewOrder::completing`), so its request is still running.
            Err(SdkError::ServiceError(e)) if e.err().is_transaction_conflict_exception() => {
                return Ok(IdempotencyBegin::InFlight);
            }
            Err(e) => return Err(fault(e)),
        }
        let existing = self
            .get_doc(&idempotency_pk(scope), "IDEMP")
            .await?
            .map(|item| idempotency_record(&item))
            .transpose()?;
        idempotency::after_refused_take(existing.as_ref(), fingerprint)
    }

    async fn idempotency_complete(
        &self,
        scope: &IdempotencyScope,
        fingerprint: &str,
        response: &StoredResponse,
        now: Timestamp,
    ) -> StoreResult<()> {
        let done = IdempotencyRecord::completed(fingerprint, response, now);
        self.put_item(idempotency_item(scope, &done)).await
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
            .key("pk", s(idempotency_pk(scope)))
            .key("sk", s("IDEMP"))
            .condition_expression(RELEASABLE)
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":f", s(fingerprint))
            .expression_attribute_values(":inflight", s(IdempotencyState::InFlight.as_str()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            // Not this request's, or completed meanwhile: it stays.
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            Err(e) => Err(fault(e)),
        }
    }
}
