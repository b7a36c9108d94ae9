//! Idempotency records (TTL 24 h). The rule is [`crate::store::idempotency`]'s: this file
//! maps its records to items, and states two of its questions as conditions, since a
//! DynamoDB write cannot read first.

use super::*;
use crate::store::idempotency::{self, IdempotencyRecord, IdempotencyState};

/// [`IdempotencyRecord::is_free`], or no record at all.
const FREE: &str =
    "attribute_not_exists(pk) OR expires_at < :now OR (#st = :inflight AND locked_until < :now)";
/// [`IdempotencyRecord::is_held_by`] the hold with fingerprint `:f` and lock `:held`.
const HELD: &str = "fingerprint = :f AND #st = :inflight AND locked_until = :held";

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

/// `hold`'s key completed with `response`, on the condition that the request still holds
/// it ([`HELD`]).
fn completed_put(
    table: &str,
    hold: &IdempotencyHold,
    response: &StoredResponse,
    at: Timestamp,
) -> StoreResult<Put> {
    let done = IdempotencyRecord::completed(&hold.fingerprint, response, at);
    let (names, values) = held_by(hold);
    Put::builder()
        .table_name(table)
        .set_item(Some(idempotency_item(&hold.scope, &done)))
        .condition_expression(HELD)
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(values))
        .build()
        .map_err(StoreError::unavailable)
}

/// Inside a change's transaction: its request's idempotency key, completed on the condition
/// that the request still holds it (the transaction is refused otherwise); nothing without
/// one.
pub(super) fn completion_put(
    table: &str,
    c: Option<&IdempotencyCompletion>,
) -> StoreResult<Option<Put>> {
    c.map(|c| completed_put(table, &c.hold, &c.response, c.at))
        .transpose()
}

/// Whether a cancelled transaction was refused because the completion put at `at` (when
/// there is one) found the key no longer its request's.
pub(super) fn taken_over(
    failed: &[(usize, String)],
    at: usize,
    c: Option<&IdempotencyCompletion>,
) -> bool {
    c.is_some() && refused_at(failed, at)
}

impl DynamoStore {
    /// Writes `puts` and, with `completing`, the request's idempotency key, in one
    /// transaction: `IdempotencyKeyTakenOver` if the key is no longer the request's. The
    /// first `guarded` puts are changes guarded on their records as read: refused by that
    /// guard, or in a transaction conflict with another write of those records, the write is
    /// a `VersionConflict` (read them again). The others are new records, each conditioned
    /// on being new: `AlreadyExists` if one was there.
    pub(super) async fn write_completing(
        &self,
        mut puts: Vec<Put>,
        guarded: usize,
        completing: Option<&IdempotencyCompletion>,
    ) -> StoreResult<()> {
        let at = puts.len();
        puts.extend(completion_put(&self.table, completing)?);
        match self.transact(puts).await? {
            Ok(()) => Ok(()),
            Err(failed) if taken_over(&failed, at, completing) => {
                Err(StoreError::IdempotencyKeyTakenOver)
            }
            Err(failed)
                if failed
                    .iter()
                    .any(|(i, c)| *i < guarded && condition_or_conflict(c)) =>
            {
                Err(StoreError::VersionConflict { expected: 0 })
            }
            Err(failed) if failed.iter().any(|(_, c)| failed_code_is_condition(c)) => {
                Err(StoreError::AlreadyExists)
            }
            // A conflict with another write of the same items, a throttled item: retryable.
            Err(failed) => Err(cancelled(&failed)),
        }
    }
}

/// The names and values of [`HELD`] for `hold`.
fn held_by(hold: &IdempotencyHold) -> (HashMap<String, String>, Item) {
    let names = HashMap::from([("#st".to_owned(), "state".to_owned())]);
    let values = Item::from([
        (":f".to_owned(), s(&hold.fingerprint)),
        (
            ":inflight".to_owned(),
            s(IdempotencyState::InFlight.as_str()),
        ),
        (":held".to_owned(), n(hold.locked_until)),
    ]);
    (names, values)
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
        let (take, hold) = idempotency::take(scope, fingerprint, now);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(idempotency_item(scope, &take)))
            .condition_expression(FREE)
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":now", n(now.unix()))
            .expression_attribute_values(":inflight", s(IdempotencyState::InFlight.as_str()));
        match self.put_if(put).await {
            Ok(true) => return Ok(IdempotencyBegin::Started(hold)),
            Ok(false) => {}
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
        hold: &IdempotencyHold,
        response: &StoredResponse,
        now: Timestamp,
    ) -> StoreResult<bool> {
        // One put: a conditional PutItem, whose refusal means the key is not the hold's.
        let put = completed_put(&self.table, hold, response, now)?;
        Ok(self.transact(vec![put]).await?.is_ok())
    }

    async fn idempotency_release(&self, hold: &IdempotencyHold) -> StoreResult<()> {
        let (names, values) = held_by(hold);
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(idempotency_pk(&hold.scope)))
            .key("sk", s("IDEMP"))
            .condition_expression(HELD)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        // Not deleted: not this request's any more, or completed meanwhile; it stays.
        written(res).map(drop)
    }
}
