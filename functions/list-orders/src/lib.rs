//! `GET /pay-orders`: the caller's orders, newest first, with cursor pagination and filters
//! (`status`, `mode`, `chain_id`, `currency`, `created_gte`, `created_lte`).

use payorders::http::list::{Limit, PageCursor, Window};
use payorders::http::{self, ApiError, Body, Params, Request, Response, render};
use payorders::runtime::Services;
use payorders::store::OrderFilter;
use payorders::*;
use serde::Deserialize;

/// The query string of `GET /pay-orders`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct ListOrdersQuery {
    limit: Option<Limit>,
    cursor: Option<PageCursor>,
    created_gte: Option<Timestamp>,
    created_lte: Option<Timestamp>,
    status: Option<OrderStatus>,
    mode: Option<OrderMode>,
    chain_id: Option<ChainId>,
    /// A currency id: `8453:native` or `8453:0x…`.
    currency: Option<String>,
}

impl Params for ListOrdersQuery {
    fn code(field: &str) -> &'static str {
        match field {
            "status" => "INVALID_STATUS",
            "mode" => "INVALID_MODE",
            "chain_id" => "INVALID_BLOCKCHAIN",
            "currency" => "UNSUPPORTED_CURRENCY",
            f => http::list::code(f).unwrap_or("INVALID_PARAMETER"),
        }
    }
}

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::limits::serve_read(&*svc.store, &req, |_| list(svc, &req)).await)
}

async fn list(svc: &Services, req: &Request) -> Result<Response<Body>, ApiError> {
    let ctx = http::auth(req)?;
    http::no_body(req)?;
    let q: ListOrdersQuery = http::request::query(req)?;
    let window = Window {
        limit: q.limit,
        cursor: q.cursor,
        created_gte: q.created_gte,
        created_lte: q.created_lte,
    }
    .for_caller(&ctx)?;
    let currency = http::list::currency_filter(q.currency)?;
    let filter = OrderFilter {
        status: q.status,
        mode: q.mode,
        chain_id: q.chain_id,
        currency,
    };
    let page = svc.store.list_orders(&window, &filter).await?;
    let links = http::links(req);
    Ok(http::json(
        200,
        &render::list(&page, |o| render::order(o, &links)),
    ))
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    payorders::runtime::serve_http_with_services(handler).await
}
