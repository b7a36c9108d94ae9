//! `GET /pay-orders/{id}`: one order of the caller's organization and mode; anything else
//! (another organization's, the other mode's, a malformed id) is a 404.

use payorders::OrderId;
use payorders::http::{self, ApiError, Body, Request, Response, render};
use payorders::runtime::Services;

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::limits::serve_read(&*svc.store, &req, |_| get(svc, &req)).await)
}

async fn get(svc: &Services, req: &Request) -> Result<Response<Body>, ApiError> {
    let ctx = http::auth(req)?;
    http::no_body(req)?;
    let id = http::path_id(req, "id", "pay order", OrderId::parse)?;
    let order = http::load_own_order(&*svc.store, &ctx, &id).await?;
    Ok(http::json(200, &render::order(&order, &http::links(req))))
}
