//! The local host's queues, kept in the store as SQS keeps its messages: a message is
//! written before its sender goes on, and removed once processed, so a host that stops
//! (or is killed) takes up at its next start what was queued or waiting for a retry.
//!
//! Every write here is lazy (see [`super::writer`]): committed before it is answered, so
//! it survives the process, and synced by the next durable commit. That keeps a webhook
//! dispatch from waiting on one sync per message, and loses nothing a sync matters for: the
//! outbox cursor that moves past a dispatched event is a durable commit after its messages,
//! and an order whose check message a power cut took is queued again by the upkeep.

use super::*;
use rusqlite::params;

/// One kept message: its row, its body, and when it is next due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub id: i64,
    pub body: String,
    pub visible_at: Timestamp,
}

impl EmbeddedStore {
    /// Keeps a message of `queue`, due at `visible_at`.
    pub async fn enqueue(
        &self,
        queue: &str,
        body: &str,
        visible_at: Timestamp,
    ) -> StoreResult<i64> {
        let (queue, body) = (queue.to_owned(), body.to_owned());
        self.tx_lazy(move |tx| {
            exec(
                tx,
                "INSERT INTO queue_messages (queue, body, visible_at) VALUES (?1, ?2, ?3)",
                params![queue, body, visible_at.unix_micros()],
            )
            .map_err(sql)?;
            Ok(tx.last_insert_rowid())
        })
        .await
    }

    /// Every message kept for `queue`, oldest first.
    pub async fn queued(&self, queue: &str) -> StoreResult<Vec<QueuedMessage>> {
        let queue = queue.to_owned();
        self.read(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT id, body, visible_at FROM queue_messages WHERE queue = ?1 ORDER BY id",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map([queue], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .map_err(sql)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, body, micros) = row.map_err(sql)?;
                // A time that does not read (written by hand?) makes the message due now.
                let visible_at = Timestamp::from_unix_micros(micros).unwrap_or_else(|| {
                    tracing::warn!(
                        id,
                        micros,
                        "a queued message's due time does not read; due now"
                    );
                    Timestamp::now()
                });
                out.push(QueuedMessage {
                    id,
                    body,
                    visible_at,
                });
            }
            Ok(out)
        })
        .await
    }

    /// Forgets a processed message. Lost with the machine's power, the message is processed
    /// again, as SQS may deliver a message twice; every consumer allows it.
    pub async fn dequeue(&self, id: i64) -> StoreResult<()> {
        self.tx_lazy(move |tx| {
            exec(tx, "DELETE FROM queue_messages WHERE id = ?1", [id]).map_err(sql)?;
            Ok(())
        })
        .await
    }

    /// Makes a message due again at `visible_at` (a retry). If lost, the message comes back
    /// early, and its consumer sends it back until it is due.
    pub async fn postpone(&self, id: i64, visible_at: Timestamp) -> StoreResult<()> {
        self.tx_lazy(move |tx| {
            exec(
                tx,
                "UPDATE queue_messages SET visible_at = ?2 WHERE id = ?1",
                params![id, visible_at.unix_micros()],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }
}
