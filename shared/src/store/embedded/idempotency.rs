//! Idempotency records (24 h). The rule is [`crate::store::idempotency`]'s: this file only
//! reads and writes its records, inside one transaction per call.

use super::*;
use crate::store::idempotency::{self, IdempotencyRecord, IdempotencyState};
use rusqlite::params;

fn read_record(tx: &Connection, key: &str) -> StoreResult<Option<IdempotencyRecord>> {
    let row = row(
        tx,
        "SELECT fingerprint, state, response, locked_until, expires_at \
             FROM idempotency WHERE key = ?1",
        [key],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        },
    )
    .optional()
    .map_err(sql)?;
    row.map(|(fingerprint, state, response, locked_until, expires_at)| {
        Ok(IdempotencyRecord {
            fingerprint,
            state: IdempotencyState::parse(&state)?,
            response,
            locked_until,
            expires_at,
        })
    })
    .transpose()
}

/// Inside a change's transaction: its request's idempotency key, completed (nothing
/// without one); refused, and with it the change, if the key is no longer the request's.
pub(super) fn write_completion(
    tx: &Connection,
    c: Option<&IdempotencyCompletion>,
) -> StoreResult<()> {
    let Some(c) = c else { return Ok(()) };
    if !complete(tx, &c.hold, &c.response, c.at)? {
        return Err(StoreError::IdempotencyKeyTakenOver);
    }
    Ok(())
}

/// Completes `hold`'s key with `response`, if it still holds it.
fn complete(
    tx: &Connection,
    hold: &IdempotencyHold,
    response: &StoredResponse,
    now: Timestamp,
) -> StoreResult<bool> {
    let key = hold.scope.storage_key();
    if !read_record(tx, &key)?.is_some_and(|r| r.is_held_by(hold)) {
        return Ok(false);
    }
    let done = IdempotencyRecord::completed(&hold.fingerprint, response, now);
    write_record(tx, &key, &done)?;
    Ok(true)
}

fn write_record(tx: &Connection, key: &str, r: &IdempotencyRecord) -> StoreResult<()> {
    exec(
        tx,
        "INSERT OR REPLACE INTO idempotency \
         (key, fingerprint, state, response, locked_until, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            key,
            r.fingerprint,
            r.state.as_str(),
            r.response,
            r.locked_until,
            r.expires_at
        ],
    )
    .map_err(sql)?;
    Ok(())
}

#[async_trait]
impl IdempotencyStore for EmbeddedStore {
    async fn idempotency_begin(
        &self,
        scope: &IdempotencyScope,
        fingerprint: &str,
        now: Timestamp,
    ) -> StoreResult<IdempotencyBegin> {
        let (scope, key, fp) = (scope.clone(), scope.storage_key(), fingerprint.to_owned());
        self.tx(move |tx| {
            let existing = read_record(tx, &key)?;
            if let Some(answer) = idempotency::begin_over(existing.as_ref(), &fp, now)? {
                return Ok(answer);
            }
            let (record, hold) = idempotency::take(&scope, &fp, now);
            write_record(tx, &key, &record)?;
            Ok(IdempotencyBegin::Started(hold))
        })
        .await
    }

    async fn idempotency_complete(
        &self,
        hold: &IdempotencyHold,
        response: &StoredResponse,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (hold, response) = (hold.clone(), response.clone());
        self.tx(move |tx| complete(tx, &hold, &response, now)).await
    }

    async fn idempotency_release(&self, hold: &IdempotencyHold) -> StoreResult<()> {
        let hold = hold.clone();
        self.tx(move |tx| {
            let key = hold.scope.storage_key();
            if read_record(tx, &key)?.is_some_and(|r| r.is_held_by(&hold)) {
                exec(tx, "DELETE FROM idempotency WHERE key = ?1", [&key]).map_err(sql)?;
            }
            Ok(())
        })
        .await
    }
}
