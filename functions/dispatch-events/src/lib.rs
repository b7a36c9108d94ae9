//! DynamoDB stream → webhook deliveries. For each new event record: one delivery per
//! enabled endpoint subscribed to its type (or `*`), plus the order's own `webhook_url`.
//!
//! Safe under retries and crashes at any step: a delivery's id is derived from (event,
//! destination), so a retried dispatch finds the delivery it made before instead of making
//! a second one, and re-queues it only while no attempt has started (a duplicate message is
//! harmless: `deliver-webhook` leases each attempt).

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_http::LambdaEvent;
use payorders::queue::Queue;
use payorders::store::{StoreError, WebhookStore};
use payorders::webhooks::{self, DeliveryMessage};
use payorders::*;
use std::sync::Arc;

pub struct Deps {
    pub store: Arc<dyn WebhookStore>,
    pub queue: Arc<dyn Queue>,
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] payorders::queue::QueueError),
}

/// Creates (at most once) and queues the deliveries of one event; returns how many
/// destinations it has.
#[tracing::instrument(skip_all, fields(event_id = %event.id, event_type = %event.event_type))]
pub async fn dispatch(deps: &Deps, event: &Event) -> Result<usize, DispatchError> {
    let mode = KeyMode::of(event.livemode);
    let mut targets: Vec<(Option<WebhookEndpointId>, String)> = deps
        .store
        .list_endpoints(&event.organization_id, mode)
        .await?
        .into_iter()
        .filter(|e| e.enabled && e.subscribes(event.event_type))
        .map(|e| (Some(e.id), e.url))
        .collect();
    if let Some(url) = event
        .data
        .object
        .get("webhook_url")
        .and_then(|v| v.as_str())
        && event.order_id.is_some()
    {
        targets.push((None, url.to_owned()));
    }
    let now = Timestamp::now();
    for (endpoint_id, url) in &targets {
        let delivery =
            webhooks::delivery::pending_delivery(event, endpoint_id.clone(), url.clone(), now);
        let created = deps.store.create_delivery(&delivery).await?;
        if !created {
            // Made by an earlier try of this dispatch: queue it again only if nothing has
            // happened to it yet (its message may have been lost with that try).
            let existing = deps.store.get_delivery(&delivery.id).await?;
            if !existing.is_some_and(|d| webhooks::delivery::awaits_first_attempt(&d)) {
                continue;
            }
        }
        deps.queue
            .send(&DeliveryMessage::new(&delivery.id).body(), 0)
            .await?;
    }
    tracing::info!(destinations = targets.len(), "dispatched");
    Ok(targets.len())
}

/// The event a stream record carries, if it is a new event record.
pub fn event_of(
    record: &aws_lambda_events::event::dynamodb::EventRecord,
) -> Option<Result<Event, String>> {
    let image = serde_json::to_value(&record.change.new_image).ok()?;
    payorders::store::stream_event(&record.event_name, &image)
}

/// The stream handler: records in order; on the first failure, report it (and everything
/// after it) so Lambda retries from there and no event is skipped.
pub async fn handler(
    deps: &Deps,
    event: LambdaEvent<StreamEvent>,
) -> Result<DynamoDbEventResponse, lambda_http::Error> {
    let mut response = DynamoDbEventResponse::default();
    for record in &event.payload.records {
        let result = match event_of(record) {
            None => Ok(()),
            Some(Err(e)) => {
                // A malformed record will not improve with retries; log and move on.
                tracing::error!(error = %e, event_id = %record.event_id, "unreadable event record");
                Ok(())
            }
            Some(Ok(ev)) => dispatch(deps, &ev).await.map(|_| ()),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "dispatch failed; the batch will be retried from this record");
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = record.change.sequence_number.clone();
            response.batch_item_failures.push(failure);
            break;
        }
    }
    Ok(response)
}
