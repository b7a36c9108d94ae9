//! `GET /pay-orders`: the caller's orders, newest first, with cursor pagination and filters
//! (`status`, `mode`, `chain_id`, `currency`, `created_gte`, `created_lte`).

use payorders::http::{self, ApiError, Body, Request, Response, render};
use payorders::registry::registry;
use payorders::runtime::Services;
use payorders::store::{Cursor, ListWindow, OrderFilter};
use payorders::*;
use std::collections::BTreeMap;

pub async fn handler(svc: &Services, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::serve(&req, |_| list(svc, &req)).await)
}

async fn list(svc: &Services, req: &Request) -> Result<Response<Body>, ApiError> {
    let ctx = http::auth(req)?;
    http::no_body(req)?;
    let q = http::query(
        req,
        &[
            "limit",
            "cursor",
            "status",
            "mode",
            "chain_id",
            "currency",
            "created_gte",
            "created_lte",
        ],
    )?;
    let window = parse_window(&q, ListWindow::new(ctx.org_id.clone(), ctx.mode))?;
    let filter = OrderFilter {
        status: q
            .get("status")
            .map(|s| {
                OrderStatus::parse(s).ok_or_else(|| {
                    ApiError::invalid("INVALID_STATUS", "status", format!("unknown status {s}"))
                })
            })
            .transpose()?,
        mode: q
            .get("mode")
            .map(|m| {
                OrderMode::parse(m).ok_or_else(|| {
                    ApiError::invalid("INVALID_MODE", "mode", format!("unknown mode {m}"))
                })
            })
            .transpose()?,
        chain_id: q
            .get("chain_id")
            .map(|c| {
                ChainId::parse(c)
                    .map_err(|e| ApiError::invalid("INVALID_BLOCKCHAIN", "chain_id", e.to_string()))
            })
            .transpose()?,
        currency: q
            .get("currency")
            .map(|c| {
                registry().currency_by_id(c).map(|c| c.id).map_err(|e| {
                    ApiError::invalid(
                        "UNSUPPORTED_CURRENCY",
                        "currency",
                        format!("{e}; use a currency id such as 8453:native or 8453:0x…"),
                    )
                })
            })
            .transpose()?,
    };
    let page = svc.store.list_orders(&window, &filter).await?;
    Ok(http::json(200, &render::list(&page, render::order)))
}

/// The shared list parameters: `limit` (1-100, default 20), `cursor`, `created_gte`,
/// `created_lte`.
pub fn parse_window(
    q: &BTreeMap<String, String>,
    mut w: ListWindow,
) -> Result<ListWindow, ApiError> {
    if let Some(l) = q.get("limit") {
        w.limit = l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "INVALID_LIMIT",
                    "limit",
                    "limit must be an integer from 1 to 100",
                )
            })?;
    }
    if let Some(c) = q.get("cursor") {
        w.cursor = Some(
            Cursor::decode(c)
                .map_err(|e| ApiError::invalid("INVALID_CURSOR", "cursor", e.to_string()))?,
        );
    }
    let ts = |k: &str| {
        q.get(k)
            .map(|v| {
                Timestamp::parse(v)
                    .map_err(|e| ApiError::invalid("INVALID_TIMESTAMP", k, e.to_string()))
            })
            .transpose()
    };
    w.created_gte = ts("created_gte")?;
    w.created_lte = ts("created_lte")?;
    if let (Some(a), Some(b)) = (w.created_gte, w.created_lte) {
        if a > b {
            return Err(ApiError::invalid(
                "INVALID_TIMESTAMP",
                "created_gte",
                "created_gte is after created_lte",
            ));
        }
    }
    Ok(w)
}
