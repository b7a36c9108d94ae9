//! SQS adapter.

use super::{Queue, QueueError};
use async_trait::async_trait;

/// The longest visibility timeout asked of SQS: its 12 h limit counts from the message's
/// receipt, less the time a function may have spent on the message (at most its 75 s
/// timeout, and more to spare).
pub const MAX_VISIBILITY_SECS: u64 = 12 * 3600 - 600;

#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Makes a received message visible again after `secs`, at most [`MAX_VISIBILITY_SECS`]:
    /// SQS refuses a visibility timeout that ends more than 12 h after the message was
    /// received, and this message was received a little while ago. (A message back early
    /// finds its work not due yet, and is put off again for what is left.)
    pub async fn retry_after(&self, receipt_handle: &str, secs: u64) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(secs.min(MAX_VISIBILITY_SECS) as i32)
            .send()
            .await
            .map_err(|e| QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        Ok(())
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, body: &str, delay_secs: u32) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(delay_secs.min(900) as i32)
            .send()
            .await
            .map_err(|e| QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        Ok(())
    }
}
