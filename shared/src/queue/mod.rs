//! The queue port: what the async steps send to each other (SQS in AWS; under the local
//! host, `payorders_local::queue`, kept in the host's store).

#[cfg(feature = "sqs")]
mod sqs;

#[cfg(feature = "sqs")]
pub use sqs::SqsQueue;

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
#[error("queue unavailable: {0}")]
pub struct QueueError(pub String);

#[async_trait]
pub trait Queue: Send + Sync {
    /// Sends a message, visible after `delay_secs` (at most 900, SQS's limit).
    async fn send(&self, body: &str, delay_secs: u32) -> Result<(), QueueError>;
}

/// What a consumer decided about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Finished with: delete it.
    Done,
    /// Process it again after this many seconds (SQS: visibility timeout + batch failure).
    RetryAfter(u64),
}
