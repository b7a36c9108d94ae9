//! EventBridge schedule (every minute) → the order lifecycle's upkeep: unpaid orders past
//! `expires_at` become EXPIRED (`order.expired`), and orders whose confirmation check is
//! overdue (a lost or dead-lettered queue message) get a new check queued. See
//! `payorders::payments::expire`.

use lambda_http::LambdaEvent;
use payorders::Timestamp;
use payorders::payments::{self, Settler};
use serde_json::{Value, json};

/// The scheduled handler; the event's content does not matter. A failure is returned as an
/// error so the invocation is marked failed (the next run, a minute later, retries).
pub async fn handler(
    settler: &Settler,
    _event: LambdaEvent<Value>,
) -> Result<Value, lambda_http::Error> {
    let report = payments::upkeep(settler, Timestamp::now()).await?;
    if report.expired > 0 || report.requeued > 0 {
        tracing::info!(
            expired = report.expired,
            requeued = report.requeued,
            "order upkeep"
        );
    }
    Ok(json!(report))
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    payorders::runtime::serve_schedule_with_settler(handler).await
}
