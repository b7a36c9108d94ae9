//! DynamoDB stream → analytics counters. For each new event record, the contributions of
//! `payorders::analytics::contributions` are added to the hour counters of the order's
//! organization and mode, each exactly once.
//!
//! Safe under redelivery and crashes: each contribution is written as one transaction of
//! its marker (`<order>#<fact>`, put only if absent) and its `ADD`s. A crash before that
//! write loses nothing (the record is retried and the write happens then); a crash after it
//! only means the retry finds the marker and adds nothing. There is no window between a
//! claim and an addition in which the event could be lost or counted twice.

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_http::LambdaEvent;
use payorders::analytics;
use payorders::store::{AnalyticsStore, StoreError};
use payorders::*;
use std::sync::Arc;

pub struct Deps {
    pub store: Arc<dyn AnalyticsStore>,
}

/// Adds what one event contributes; returns how many contributions this call applied
/// (0 for an event seen before).
#[tracing::instrument(skip_all, fields(event_id = %event.id, event_type = %event.event_type))]
pub async fn aggregate(deps: &Deps, event: &Event) -> Result<usize, StoreError> {
    aggregate_all(deps, std::slice::from_ref(event)).await
}

/// Adds what a batch of events contributes, with one call to the store (the local host's
/// outbox consumer: one commit per batch); how many contributions it applied. An event
/// whose contributions cannot be read is logged and skipped: that will not improve with
/// retries. Offering the batch again after an error counts each contribution once.
pub async fn aggregate_all(deps: &Deps, events: &[Event]) -> Result<usize, StoreError> {
    let mut contributions = Vec::new();
    for event in events {
        match analytics::contributions(event) {
            Ok(c) => contributions.extend(c),
            Err(e) => {
                tracing::error!(error = %e, event_id = %event.id, "event skipped by analytics")
            }
        }
    }
    let applied = deps.store.add_analytics_all(&contributions).await?;
    tracing::info!(
        events = events.len(),
        applied,
        offered = contributions.len(),
        "aggregated"
    );
    Ok(applied)
}

/// The stream handler: records in order; on the first failure, report it (and everything
/// after it) so Lambda retries from there and no event is skipped.
pub async fn handler(
    deps: &Deps,
    event: LambdaEvent<StreamEvent>,
) -> Result<DynamoDbEventResponse, lambda_http::Error> {
    let mut response = DynamoDbEventResponse::default();
    for record in &event.payload.records {
        let image = serde_json::to_value(&record.change.new_image).unwrap_or_default();
        let result = match payorders::store::stream_event(&record.event_name, &image) {
            None => Ok(()),
            Some(Err(e)) => {
                tracing::error!(error = %e, event_id = %record.event_id, "unreadable event record");
                Ok(())
            }
            Some(Ok(ev)) => aggregate(deps, &ev).await.map(|_| ()),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "aggregation failed; the batch will be retried from this record");
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
        Ok::<_, payorders::runtime::BoxError>(Deps { store: s.store })
    });
    lambda_http::lambda_runtime::run(lambda_http::service_fn(move |ev| async move {
        handler(deps.get().await?, ev).await
    }))
    .await
}
