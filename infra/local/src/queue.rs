//! The local host's stand-in for an SQS queue (webhook deliveries, confirmation checks).
//!
//! With the host's own SQLite store, a message is kept in the store before `send` returns
//! and forgotten once its consumer is done with it; a retry moves when it is due. So, as
//! with SQS, a message outlives the process: a host that stops or is killed hands its
//! consumers, at its next start, every message still queued or waiting for a retry, each
//! when due. (The store's writes for this are lazy, synced by the next durable commit: see
//! `payorders::store::embedded`'s queue module for why a power cut loses nothing of them
//! that matters.) Without it (`--store dynamodb`) messages live in memory and a restart loses
//! them. Either way a message may be processed twice (a restart between its processing and
//! its removal), as SQS may deliver one twice; every consumer allows it.

use async_trait::async_trait;
use payorders::Timestamp;
use payorders::queue::{Queue, QueueError};
use payorders::store::embedded::EmbeddedStore;
use std::time::Duration;
use tokio::sync::mpsc;

/// A message handed to the consumer.
#[derive(Debug)]
pub struct Message {
    pub body: String,
    /// Where it is kept (its store and row), if it is.
    kept: Option<(EmbeddedStore, i64)>,
}

impl Message {
    /// Processed, or given up on: forgotten.
    pub async fn finished(&self) {
        if let Some((store, id)) = &self.kept
            && let Err(e) = store.dequeue(*id).await
        {
            tracing::warn!(error = %e, "could not forget a processed message; it is processed again at the next start");
        }
    }

    /// To be processed again in `secs`.
    pub async fn retry_in(&self, secs: u64) {
        if let Some((store, id)) = &self.kept {
            let due = Timestamp::now().plus_seconds(secs.min(i64::MAX as u64) as i64);
            if let Err(e) = store.postpone(*id, due).await {
                tracing::warn!(error = %e, "could not keep a message's retry time; after a restart it is tried at once");
            }
        }
    }
}

/// The consuming end.
pub type Receiver = mpsc::UnboundedReceiver<Message>;

#[derive(Clone, Debug)]
pub struct HostQueue {
    name: &'static str,
    store: Option<EmbeddedStore>,
    tx: mpsc::UnboundedSender<Message>,
}

impl HostQueue {
    /// The queue `name`, kept in `store` if given; what an earlier run left in it is handed
    /// to the consumer again, each message when it is due.
    pub async fn open(
        name: &'static str,
        store: Option<EmbeddedStore>,
    ) -> anyhow::Result<(Self, Receiver)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let queue = Self { name, store, tx };
        if let Some(store) = &queue.store {
            let now = Timestamp::now();
            let left = store.queued(name).await?;
            if !left.is_empty() {
                tracing::info!(
                    queue = name,
                    messages = left.len(),
                    "taking up the messages an earlier run left"
                );
            }
            for m in left {
                let wait = now.seconds_until_ceil(m.visible_at).max(0) as u64;
                queue.hand_over(
                    Message {
                        body: m.body,
                        kept: Some((store.clone(), m.id)),
                    },
                    wait,
                );
            }
        }
        Ok((queue, rx))
    }

    fn hand_over(&self, m: Message, delay_secs: u64) {
        if delay_secs == 0 {
            let _ = self.tx.send(m);
            return;
        }
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(delay_secs)).await;
            let _ = tx.send(m);
        });
    }
}

#[async_trait]
impl Queue for HostQueue {
    async fn send(&self, body: &str, delay_secs: u32) -> Result<(), QueueError> {
        if self.tx.is_closed() {
            return Err(QueueError("the local worker has stopped".into()));
        }
        let kept = match &self.store {
            Some(store) => {
                let due = Timestamp::now().plus_seconds(delay_secs.into());
                let id = store
                    .enqueue(self.name, body, due)
                    .await
                    .map_err(|e| QueueError(format!("cannot keep the message: {e}")))?;
                Some((store.clone(), id))
            }
            None => None,
        };
        self.hand_over(
            Message {
                body: body.to_owned(),
                kept,
            },
            delay_secs.into(),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file store in a fresh directory, opened again as a restarted host would.
    fn reopen(dir: &std::path::Path) -> EmbeddedStore {
        EmbeddedStore::open(&dir.join("payorders.sqlite")).unwrap()
    }

    async fn next(rx: &mut Receiver) -> Message {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a message within 5 s")
            .expect("the queue is open")
    }

    #[tokio::test]
    async fn a_message_outlives_the_process_until_it_is_finished() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (q, mut rx) = HostQueue::open("test", Some(reopen(dir.path())))
                .await
                .unwrap();
            q.send("first", 0).await.unwrap();
            q.send("second", 0).await.unwrap();
            q.send("third", 0).await.unwrap();
            // The first is processed; the second is to be retried in an hour; the third was
            // received but the process ends before it is processed.
            let first = next(&mut rx).await;
            assert_eq!(first.body, "first");
            first.finished().await;
            let second = next(&mut rx).await;
            second.retry_in(3600).await;
            assert_eq!(next(&mut rx).await.body, "third");
        }
        // Started again: the third comes back at once, the second is kept for later, and the
        // first is gone.
        let store = reopen(dir.path());
        let (q, mut rx) = HostQueue::open("test", Some(store.clone())).await.unwrap();
        assert_eq!(next(&mut rx).await.body, "third");
        let kept: Vec<_> = store.queued("test").await.unwrap();
        assert_eq!(
            kept.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
            ["second", "third"]
        );
        assert!(kept[0].visible_at > Timestamp::now().plus_seconds(3500));
        // Another queue of the same store is its own.
        let (_, mut other) = HostQueue::open("other", Some(store.clone())).await.unwrap();
        q.send("fourth", 0).await.unwrap();
        assert_eq!(next(&mut rx).await.body, "fourth");
        assert!(other.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_delayed_message_is_kept_with_its_time_and_comes_back_when_due() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (q, _rx) = HostQueue::open("test", Some(reopen(dir.path())))
                .await
                .unwrap();
            q.send("later", 1).await.unwrap();
        }
        let (_q, mut rx) = HostQueue::open("test", Some(reopen(dir.path())))
            .await
            .unwrap();
        assert!(rx.try_recv().is_err(), "not before it is due");
        assert_eq!(next(&mut rx).await.body, "later");
    }

    #[tokio::test]
    async fn without_a_store_messages_live_in_memory() {
        let (q, mut rx) = HostQueue::open("test", None).await.unwrap();
        q.send("m", 0).await.unwrap();
        let m = next(&mut rx).await;
        assert_eq!(m.body, "m");
        m.finished().await;
        drop(rx);
        assert!(q.send("n", 0).await.is_err(), "the consumer has stopped");
    }
}
