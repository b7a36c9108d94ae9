//! In-process queue for the local host: messages go to a worker task in the same process.

use super::{Queue, QueueError};
use async_trait::async_trait;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Clone, Debug)]
pub struct LocalQueue {
    tx: mpsc::UnboundedSender<String>,
}

/// The consuming end, owned by the local host's worker.
pub type LocalReceiver = mpsc::UnboundedReceiver<String>;

impl LocalQueue {
    pub fn new() -> (Self, LocalReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }
}

#[async_trait]
impl Queue for LocalQueue {
    async fn send(&self, body: &str, delay_secs: u32) -> Result<(), QueueError> {
        let tx = self.tx.clone();
        let body = body.to_owned();
        if delay_secs == 0 {
            return tx
                .send(body)
                .map_err(|_| QueueError("the local worker has stopped".into()));
        }
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(delay_secs as u64)).await;
            let _ = tx.send(body);
        });
        Ok(())
    }
}
