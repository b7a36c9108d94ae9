//! `POST /pay-orders/{id}/cancel` `{reason?}`: cancels an order that is PENDING or
//! AWAITING_PAYMENT (409 otherwise) and emits `order.cancelled` in the same write, which
//! also keeps the answer for the request's `Idempotency-Key`.

use payorders::http::{self, ApiError, Body, Params, Request, Response, render};
use payorders::runtime::Services;
use payorders::store::StoreError;
use payorders::*;
use serde::Deserialize;

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::limits::serve_limited(&*svc.store, &req, |rid| cancel(svc, &req, rid)).await)
}

const MAX_REASON: usize = 500;
/// Re-reads after a concurrent write before giving up with a 409.
const ATTEMPTS: usize = 3;

/// The body of a cancel (may be empty).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CancelRequest {
    /// Why the order is cancelled (at most 500 characters).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    reason: Option<Reason>,
}

/// Why the merchant cancelled: at most 500 characters.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
struct Reason(String);

impl TryFrom<String> for Reason {
    type Error = &'static str;

    fn try_from(r: String) -> Result<Self, Self::Error> {
        if r.chars().count() <= MAX_REASON {
            Ok(Self(r))
        } else {
            Err("reason must be a string of at most 500 characters")
        }
    }
}

impl Params for CancelRequest {
    fn code(_field: &str) -> &'static str {
        "INVALID_REASON"
    }
}

async fn cancel(svc: &Services, req: &Request, rid: String) -> Result<Response<Body>, ApiError> {
    let ctx = http::auth(req)?;
    let id = http::path_id(req, "id", "pay order", OrderId::parse)?;
    http::idempotent(&*svc.store, &ctx, req, &rid, || async {
        let now = Timestamp::now();
        let body: CancelRequest = http::request::signed_json(&*svc.store, &ctx, req, true).await?;
        let reason = body.reason.map(|r| r.0);
        for _ in 0..ATTEMPTS {
            let order = http::load_own_order(&*svc.store, &ctx, &id).await?;
            let update = order
                .transition(now, OrderStatus::Cancelled, |o| {
                    o.cancellation_reason = reason.clone()
                })
                .map_err(|_| {
                    ApiError::conflict(
                        "ORDER_NOT_CANCELLABLE",
                        format!("an order in status {} cannot be cancelled", order.status),
                    )
                })?;
            // The answer is kept for the Idempotency-Key by the cancel's own write: a retry
            // after a crash between the two would find the order cancelled and answer 409.
            let resp = http::json(200, &render::order_view(update.order(), &http::links(req)));
            let update = update.completing(http::completion(&resp));
            match svc.store.update_order(&update).await {
                Ok(()) => return Ok(http::kept(resp)),
                Err(StoreError::VersionConflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::conflict(
            "CONCURRENT_UPDATE",
            "the order kept changing; retry the cancel",
        ))
    })
    .await
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    payorders::runtime::serve_http_with_services(handler).await
}
