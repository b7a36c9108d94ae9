//! `POST /pay-orders/{id}/cancel` `{reason?}`: cancels an order that is PENDING or
//! AWAITING_PAYMENT (409 otherwise) and emits `order.cancelled` in the same write.

use payorders::http::{self, ApiError, Body, Request, Response, render};
use payorders::runtime::Services;
use payorders::store::StoreError;
use payorders::*;
use serde_json::Value;

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::serve(&req, |rid| cancel(svc, &req, rid)).await)
}

const MAX_REASON: usize = 500;
/// Re-reads after a concurrent write before giving up with a 409.
const ATTEMPTS: usize = 3;

async fn cancel(svc: &Services, req: &Request, rid: String) -> Result<Response<Body>, ApiError> {
    let ctx = http::auth(req)?;
    let id = http::path_id(req, "id", "pay order", OrderId::parse)?;
    http::idempotent(&*svc.store, &ctx, req, &rid, || async {
        let now = Timestamp::now();
        let body = http::signed_json(&*svc.store, &ctx, req, true, &["reason"]).await?;
        let reason = match body.get("reason") {
            None | Some(Value::Null) => None,
            Some(Value::String(r)) if r.chars().count() <= MAX_REASON => Some(r.clone()),
            Some(_) => {
                return Err(ApiError::invalid(
                    "INVALID_REASON",
                    "reason",
                    "reason must be a string of at most 500 characters",
                ));
            }
        };
        for _ in 0..ATTEMPTS {
            let order = get_order::load_own_order(&*svc.store, &ctx, &id).await?;
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
            match svc.store.update_order(&update).await {
                Ok(()) => return Ok(http::json(200, &render::order(update.order()))),
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
