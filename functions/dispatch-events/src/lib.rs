//! DynamoDB stream → webhook deliveries. For each new event record: one delivery per
//! enabled endpoint subscribed to its type (or `*`), plus the order's own `webhook_url`,
//! each queued as a first-attempt message ([`FirstAttempt`]). Dispatch writes nothing:
//! `deliver-webhook` creates the delivery's record as it leases the first attempt.
//!
//! Safe under retries and crashes at any step: a delivery's id is derived from (event,
//! destination), so a retried dispatch queues the same deliveries again, never new ones,
//! and a duplicate message is harmless: `deliver-webhook` creates a delivery only where
//! there is none, and leases each attempt with a conditional write.

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_http::LambdaEvent;
use payorders::queue::Queue;
use payorders::store::{StoreError, WebhookStore};
use payorders::webhooks::{self, DeliveryMessage, FirstAttempt};
use payorders::*;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
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

/// The enabled and disabled endpoints of each organization and mode, read once for a
/// batch of events (one stream batch, or one pass of the local host's outbox) instead of
/// once per event. An endpoint added, changed or disabled while a batch is dispatched
/// counts from the next batch.
#[derive(Default)]
pub struct BatchEndpoints(HashMap<(OrgId, KeyMode), Vec<WebhookEndpoint>>);

impl BatchEndpoints {
    async fn of(
        &mut self,
        store: &dyn WebhookStore,
        org: &OrgId,
        mode: KeyMode,
    ) -> Result<&[WebhookEndpoint], StoreError> {
        let endpoints = match self.0.entry((org.clone(), mode)) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(new) => new.insert(store.list_endpoints(org, mode).await?),
        };
        Ok(endpoints)
    }
}

/// Queues the deliveries of one event; returns how many destinations it has.
pub async fn dispatch(deps: &Deps, event: &Event) -> Result<usize, DispatchError> {
    dispatch_in(deps, event, &mut BatchEndpoints::default()).await
}

/// [`dispatch`], for one event of a batch whose endpoints `batch` keeps.
#[tracing::instrument(skip_all, fields(event_id = %event.id, event_type = %event.event_type))]
pub async fn dispatch_in(
    deps: &Deps,
    event: &Event,
    batch: &mut BatchEndpoints,
) -> Result<usize, DispatchError> {
    let mode = KeyMode::of(event.livemode);
    let mut targets: Vec<Option<WebhookEndpointId>> = batch
        .of(&*deps.store, &event.organization_id, mode)
        .await?
        .iter()
        .filter(|e| e.enabled && e.subscribes(event.event_type))
        .map(|e| Some(e.id.clone()))
        .collect();
    if webhooks::order_webhook_url(event).is_some() {
        targets.push(None);
    }
    let now = Timestamp::now();
    for endpoint_id in &targets {
        let first = FirstAttempt::new(event, endpoint_id.clone(), now);
        deps.queue
            .send(&DeliveryMessage::First(first).body(), 0)
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
    let mut endpoints = BatchEndpoints::default();
    for record in &event.payload.records {
        let result = match event_of(record) {
            None => Ok(()),
            Some(Err(e)) => {
                // A malformed record will not improve with retries; log and move on.
                tracing::error!(error = %e, event_id = %record.event_id, "unreadable event record");
                Ok(())
            }
            Some(Ok(ev)) => dispatch_in(deps, &ev, &mut endpoints).await.map(|_| ()),
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

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    let deps = &payorders::runtime::OnFirstUse::new(|| async {
        let s = payorders::runtime::Services::from_env().await?;
        Ok::<_, payorders::runtime::BoxError>(Deps {
            queue: s.webhooks()?.clone(),
            store: s.store,
        })
    });
    lambda_http::lambda_runtime::run(lambda_http::service_fn(move |ev| async move {
        handler(deps.get().await?, ev).await
    }))
    .await
}
