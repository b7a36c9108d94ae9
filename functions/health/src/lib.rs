//! `GET /health` (liveness: the function runs) and `GET /health/ready` (readiness: the
//! store answers a cheap read). Both are public, behind no authorizer: they name no
//! organization and say nothing but whether the service can work.

use payorders::OrgId;
use payorders::http::{self, ApiError, Body, ErrorCode, Request, Response};
use payorders::runtime::Services;
use payorders::store::OrgStore;
use serde_json::json;
use std::time::Duration;

/// How long readiness waits for the store: a load balancer's check has a deadline too, and
/// a store slower than this is not ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(3);

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::serve(&req, |_| health(svc, &req)).await)
}

async fn health(svc: &Services, req: &Request) -> Result<Response<Body>, ApiError> {
    // The last segment, so a stage prefix in the path changes nothing.
    match http::path_segments(req).last() {
        Some(&"ready") => ready(&*svc.store).await,
        _ => Ok(http::json(200, &json!({ "status": "ok" }))),
    }
}

/// Ready when the store answers a read of one item (an organization that does not exist:
/// one `GetItem`, no data).
async fn ready(store: &dyn OrgStore) -> Result<Response<Body>, ApiError> {
    let probe = OrgId::from_digest(&[0; 16]);
    let outcome = tokio::time::timeout(READY_TIMEOUT, store.get_organization(&probe)).await;
    let cause = match outcome {
        Ok(Ok(_)) => return Ok(http::json(200, &json!({ "status": "ok", "store": "ok" }))),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} s", READY_TIMEOUT.as_secs()),
    };
    tracing::warn!(error = %cause, "not ready: the store does not answer");
    Err(ApiError::coded(
        ErrorCode::StoreUnavailable,
        "not ready: the order store does not answer; retry shortly",
    ))
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    payorders::runtime::serve_http_with_services(handler).await
}
