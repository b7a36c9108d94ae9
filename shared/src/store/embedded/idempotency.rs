//! Idempotency records (24 h).

use super::*;
use rusqlite::params;

#[async_trait]
impl IdempotencyStore for EmbeddedStore {
    async fn idempotency_begin(
        &self,
        scope: &IdempotencyScope,
        fingerprint: &str,
        now: Timestamp,
    ) -> StoreResult<IdempotencyBegin> {
        let (key, fp) = (scope.storage_key(), fingerprint.to_owned());
        self.tx(move |tx| {
            let existing = tx
                .query_row(
                    "SELECT fingerprint, state, response, locked_until, expires_at \
                     FROM idempotency WHERE key = ?1",
                    [&key],
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
            let now_s = now.unix();
            if let Some((old_fp, state, response, locked_until, expires_at)) = existing {
                let live = expires_at >= now_s;
                let abandoned = state == "in_flight" && locked_until < now_s;
                if live && !abandoned {
                    if old_fp != fp {
                        return Ok(IdempotencyBegin::Mismatch);
                    }
                    if state == "completed" {
                        let resp = parse_doc(response.as_deref().unwrap_or("null"))?;
                        return Ok(IdempotencyBegin::Replay(resp));
                    }
                    return Ok(IdempotencyBegin::InFlight);
                }
            }
            tx.execute(
                "INSERT OR REPLACE INTO idempotency \
                 (key, fingerprint, state, response, locked_until, expires_at) \
                 VALUES (?1, ?2, 'in_flight', NULL, ?3, ?4)",
                params![
                    key,
                    fp,
                    now.plus_seconds(IDEMPOTENCY_LOCK_SECS).unix(),
                    now.plus_seconds(IDEMPOTENCY_TTL_SECS).unix()
                ],
            )
            .map_err(sql)?;
            Ok(IdempotencyBegin::Started)
        })
        .await
    }

    async fn idempotency_complete(
        &self,
        scope: &IdempotencyScope,
        fingerprint: &str,
        response: &StoredResponse,
        now: Timestamp,
    ) -> StoreResult<()> {
        let (key, fp, resp) = (
            scope.storage_key(),
            fingerprint.to_owned(),
            to_doc(response),
        );
        self.tx(move |tx| {
            tx.execute(
                "INSERT OR REPLACE INTO idempotency \
                 (key, fingerprint, state, response, locked_until, expires_at) \
                 VALUES (?1, ?2, 'completed', ?3, 0, ?4)",
                params![key, fp, resp, now.plus_seconds(IDEMPOTENCY_TTL_SECS).unix()],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn idempotency_release(
        &self,
        scope: &IdempotencyScope,
        fingerprint: &str,
    ) -> StoreResult<()> {
        let (key, fp) = (scope.storage_key(), fingerprint.to_owned());
        self.tx(move |tx| {
            tx.execute(
                "DELETE FROM idempotency WHERE key = ?1 AND fingerprint = ?2 AND state = 'in_flight'",
                params![key, fp],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }
}
