//! `GET /pay-orders/{id}`: one order of the caller's organization and mode; anything else
//! (another organization's, the other mode's, a malformed id) is a 404.

use payorders::http::{self, ApiError, Body, Request, Response, render};
use payorders::runtime::Services;
use payorders::{OrderId, PayOrder, auth::AuthContext, store::OrderStore};

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::serve(&req, |_| get(svc, &req)).await)
}

async fn get(svc: &Services, req: &Request) -> Result<Response<Body>, ApiError> {
    let ctx = http::auth(req)?;
    http::no_body(req)?;
    let id = http::path_id(req, "id", "pay order", OrderId::parse)?;
    let order = load_own_order(&*svc.store, &ctx, &id).await?;
    Ok(http::json(200, &render::order(&order)))
}

/// The caller's own order, or a 404 that does not reveal whether the id exists elsewhere.
pub async fn load_own_order(
    store: &dyn OrderStore,
    ctx: &AuthContext,
    id: &OrderId,
) -> Result<PayOrder, ApiError> {
    store
        .get_order(id)
        .await?
        .filter(|o| o.organization_id == ctx.org_id && o.livemode == ctx.livemode())
        .ok_or_else(|| ApiError::not_found("pay order").with_param("id"))
}
