//! `GET /transactions` (every verified transfer of the caller's orders, by order newest
//! first; `chain_id`, `currency`, `direction`, `status`, `order_id`, `created_gte`,
//! `created_lte` on when it was detected, `limit`, `cursor`) and
//! `GET /transactions/{chain_id}/{tx_hash}`: confirmations, block, from, to, amount, order.

use payorders::http::list::{Limit, PageCursor};
use payorders::http::{self, ApiError, Body, Params, Request, RequestExt, Response};
use payorders::runtime::Services;
use payorders::store::ListWindow;
use payorders::transactions::{self, Direction, TransactionFilter};
use payorders::*;
use serde::Deserialize;
use serde_json::json;

/// The query string of `GET /transactions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct ListTransactionsQuery {
    limit: Option<Limit>,
    cursor: Option<PageCursor>,
    /// Detected at or after.
    created_gte: Option<Timestamp>,
    /// Detected at or before.
    created_lte: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", param(value_type = Option<u64>))]
    chain_id: Option<ChainId>,
    /// A currency id, `<chain_id>:<token address | native>`.
    currency: Option<String>,
    /// `payment` (in) or `refund` (out).
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>))]
    direction: Option<Direction>,
    /// `confirming`, `confirmed` or `reorged`.
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>))]
    status: Option<TransferStatus>,
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>))]
    order_id: Option<OrderId>,
}

impl Params for ListTransactionsQuery {
    fn code(field: &str) -> &'static str {
        match field {
            "chain_id" => "INVALID_BLOCKCHAIN",
            "currency" => "UNSUPPORTED_CURRENCY",
            f => http::list::code(f).unwrap_or("INVALID_PARAMETER"),
        }
    }
}

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::limits::serve_read(&*svc.store, &req, |_| route(svc, &req)).await)
}

async fn route(svc: &Services, req: &Request) -> Result<Response<Body>, ApiError> {
    let ctx = http::auth(req)?;
    http::no_body(req)?;
    if http::path_segments(req).len() == 3 {
        let chain = http::path_id(req, "chain_id", "transaction", |s| {
            s.parse::<u64>()
                .ok()
                .and_then(|n| ChainId::new(n).ok())
                .ok_or(())
        })?;
        let hash = req
            .path_parameters_ref()
            .and_then(|p| p.first("tx_hash").map(str::to_owned))
            .unwrap_or_default();
        let found =
            transactions::find_transaction(&*svc.store, &ctx.org_id, ctx.mode, chain, &hash)
                .await?
                .unwrap_or_default();
        let first = found
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::not_found("transaction").with_param("tx_hash"))?;
        return Ok(http::json(200, &first));
    }
    let q: ListTransactionsQuery = http::request::query(req)?;
    if let (Some(a), Some(b)) = (q.created_gte, q.created_lte)
        && a > b
    {
        return Err(ApiError::invalid(
            "INVALID_TIMESTAMP",
            "created_gte",
            "created_gte is after created_lte",
        ));
    }
    let filter = TransactionFilter {
        chain_id: q.chain_id,
        currency: http::list::currency_filter(q.currency)?,
        direction: q.direction,
        status: q.status,
        order_id: q.order_id.clone(),
        created_gte: q.created_gte,
        created_lte: q.created_lte,
    };
    if let Some(id) = &q.order_id {
        // One order's transactions: all of them, on one page.
        let order = svc
            .store
            .get_order(id)
            .await?
            .filter(|o| o.organization_id == ctx.org_id && o.livemode == ctx.livemode())
            .ok_or_else(|| ApiError::not_found("order").with_param("order_id"))?;
        let data = transactions::transactions_of_order(&order, &filter);
        return Ok(http::json(
            200,
            &json!({"object": "list", "data": data, "has_more": false, "next_cursor": null}),
        ));
    }
    let mut w = ListWindow::new(ctx.org_id.clone(), ctx.mode);
    w.limit = q.limit.map_or(20, Limit::get);
    w.cursor = q.cursor.map(PageCursor::into_cursor);
    let page = transactions::list_transactions(&*svc.store, &w, &filter).await?;
    Ok(http::json(
        200,
        &json!({
            "object": "list",
            "data": page.data,
            "has_more": page.has_more,
            "next_cursor": page.next_cursor,
        }),
    ))
}

/// The Lambda function: takes events from the Runtime API until the sandbox ends. Its own
/// binary runs it, and so does the bundle that packages it (`bundles/`), when the function's
/// `Handler` names it.
#[cfg(feature = "aws")]
pub async fn serve_lambda() -> Result<(), lambda_http::Error> {
    payorders::runtime::serve_http_with_services(handler).await
}
