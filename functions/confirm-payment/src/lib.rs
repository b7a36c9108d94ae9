//! SQS → one confirmation check of an order (`{"order_id": "po_…", "attempt": n}`).
//!
//! Counts each transfer's confirmations (head − block + 1) against what it requires. Not
//! enough yet: the next check is queued with a doubling delay. A transaction mined again in
//! another block (a reorg) is followed there; one that vanished stops counting, and sends
//! the order back to AWAITING_PAYMENT (with its event) when the rest fall short. All final:
//! COMPLETED, or EXECUTING_ORDER when a ChangeNOW exchange carries the payment on, which is
//! then checked the same way until it finishes (COMPLETED), is refunded (REFUNDED) or fails
//! (FAILED). Checks are idempotent: a redelivered or duplicate message finds the order
//! settled or unchanged and does nothing. A message that cannot be read, or keeps failing,
//! is reported as a batch item failure and reaches the DLQ after the queue's redrive count.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_http::LambdaEvent;
use payorders::payments::{self, AdvanceError, CheckMessage, Progress, Settler};
use payorders::queue::QueueError;
use payorders::routing::Router;
use payorders::*;
use std::sync::Arc;

pub struct Deps {
    pub settler: Settler,
    /// The exchange provider, for orders whose payment it routes.
    pub router: Option<Arc<dyn Router>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    #[error("malformed message: {0}")]
    Poison(String),
    #[error(transparent)]
    Advance(#[from] AdvanceError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("the invocation's time ran out during the check; the message comes back")]
    OutOfTime,
}

/// Processes one message; `Ok` means it is finished with (the next check, if any, is a new
/// message already queued).
pub async fn process(deps: &Deps, body: &str) -> Result<Progress, ConfirmError> {
    process_within(deps, body, None).await
}

/// [`process`] before `deadline`, the invocation's: the check gets until [`ANSWER_MARGIN`]
/// before it (it is then stopped, as a crash would stop it: what it wrote stands), and
/// queuing the next check until [`SEND_MARGIN`] before it, not cut short by the check's
/// margin (stopped after SQS took it, the message coming back would start a second series
/// of checks of the same round). Either stopped, the message is reported and comes back.
#[tracing::instrument(skip_all)]
pub async fn process_within(
    deps: &Deps,
    body: &str,
    deadline: Option<tokio::time::Instant>,
) -> Result<Progress, ConfirmError> {
    async fn before<T, E>(
        deadline: Option<tokio::time::Instant>,
        margin: std::time::Duration,
        work: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, ConfirmError>
    where
        ConfirmError: From<E>,
    {
        match deadline {
            None => Ok(work.await?),
            Some(d) => Ok(
                tokio::time::timeout_at(d.checked_sub(margin).unwrap_or(d), work)
                    .await
                    .map_err(|_| ConfirmError::OutOfTime)??,
            ),
        }
    }
    let msg: CheckMessage = serde_json::from_str(body)
        .map_err(|_| ConfirmError::Poison(body.chars().take(200).collect()))?;
    let check = payments::advance(
        &deps.settler,
        deps.router.as_deref(),
        &msg.order_id,
        msg.round,
        Timestamp::now(),
    );
    let progress = before(deadline, ANSWER_MARGIN, check).await?;
    if progress == Progress::Waiting {
        let next = msg.attempt.saturating_add(1);
        let send = payments::enqueue_check(&deps.settler, &msg.order_id, msg.round, next);
        before(deadline, SEND_MARGIN, send).await?;
    }
    tracing::info!(order_id = %msg.order_id, attempt = msg.attempt, ?progress, "confirmation check");
    Ok(progress)
}

/// What each invocation keeps in hand before its own timeout: a check starts, and runs,
/// only until this much is left.
pub const ANSWER_MARGIN: std::time::Duration = std::time::Duration::from_secs(2);
/// What is kept in hand to answer the batch once the check is done and its next one queued.
pub const SEND_MARGIN: std::time::Duration = std::time::Duration::from_millis(300);

/// The SQS handler: a message that failed is reported so SQS delivers it again (and, after
/// the redrive count, to the DLQ); the others are deleted.
///
/// Checks run one after another until [`ANSWER_MARGIN`] before the invocation's deadline: a
/// check still running then is stopped ([`process_within`]), and it and the checks not
/// started are reported, so SQS delivers them again. Cut off by the function's timeout
/// instead, the whole batch would come back, the checks already done included (each
/// queuing its next check again).
pub async fn handler(
    deps: &Deps,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_http::Error> {
    let deadline = payorders::runtime::invocation_deadline(&event.context);
    let mut response = SqsBatchResponse::default();
    for record in event.payload.records {
        let id = record.message_id.clone().unwrap_or_default();
        let body = record.body.as_deref().unwrap_or_default();
        let no_time = deadline.is_some_and(|d| d <= tokio::time::Instant::now() + ANSWER_MARGIN);
        let failed = no_time || report(&id, process_within(deps, body, deadline).await);
        if failed {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            response.batch_item_failures.push(f);
        }
    }
    Ok(response)
}

/// Whether a check failed (logged).
fn report(id: &str, result: Result<Progress, ConfirmError>) -> bool {
    match result {
        Ok(_) => false,
        Err(e) => {
            tracing::error!(error = %e, message_id = %id, "confirmation check failed");
            true
        }
    }
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    let deps = &payorders::runtime::OnFirstUse::new(|| async {
        let services = payorders::runtime::Services::from_env().await?;
        Ok::<_, payorders::runtime::BoxError>(Deps {
            settler: services.settler()?,
            router: services.router.clone(),
        })
    });
    lambda_http::lambda_runtime::run(lambda_http::service_fn(move |ev| async move {
        handler(deps.get().await?, ev).await
    }))
    .await
}
